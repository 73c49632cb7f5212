//! Quoting a word for a POSIX shell: the one rule the image builder's customize script and the
//! runner's guest commands share.
//!
//! Invariant: the output is part of the image cache key (the customize script is hashed), so a
//! change to the safe set rebuilds every image. A word made only of safe characters goes bare;
//! anything else goes in single quotes, with `'` written as `'\''`, so the shell sees exactly
//! the word that was given.

/// Characters that go bare: none of them is special to `sh` in the middle of a word.
const SAFE: &[u8] = b"-_./=:+@,";

/// Quote `s` as one word for a POSIX shell.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || SAFE.contains(&b)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_words_go_bare() {
        assert_eq!(sh_quote("plain-word_1.0"), "plain-word_1.0");
        assert_eq!(sh_quote("/srv/mail/x.lock"), "/srv/mail/x.lock");
        assert_eq!(sh_quote("user=alice,uid:5000+1@lab"), "user=alice,uid:5000+1@lab");
    }

    #[test]
    fn anything_else_is_single_quoted() {
        assert_eq!(sh_quote("two words"), "'two words'");
        assert_eq!(sh_quote("FETCH 1:3 (BODY[])"), "'FETCH 1:3 (BODY[])'");
        assert_eq!(sh_quote("$HOME"), "'$HOME'");
        assert_eq!(sh_quote("user%i"), "'user%i'");
        assert_eq!(sh_quote("a*b?"), "'a*b?'");
        assert_eq!(sh_quote(""), "''");
    }

    #[test]
    fn a_single_quote_is_closed_escaped_and_reopened() {
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(sh_quote("'"), r"''\'''");
    }
}
