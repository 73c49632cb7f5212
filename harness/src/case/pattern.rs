//! Line patterns: what `on_log`, `wait_for_log`, `log_absent` and `matches` look for.
//!
//! A pattern matches a line when it matches some part of it (it is unanchored): plain text
//! matches itself, `*` any run of characters within the line, `?` any one character; `\*`,
//! `\?` and `\\` are the literal characters. So `"lockd: server * not responding"` finds
//! `"... kernel: lockd: server filer not responding, still trying"`. Patterns are not regular
//! expressions: the library has no regex engine, and globs are enough for log lines while
//! being impossible to get subtly wrong.

use serde::{Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(char),
    Any,
    Star,
}

/// A validated line pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    source: String,
    /// The pattern between two implicit stars (it is unanchored).
    toks: Vec<Tok>,
}

impl Pattern {
    /// Check and compile a pattern. The error is the message to show at the value.
    pub fn new(source: &str) -> Result<Pattern, String> {
        if source.is_empty() {
            return Err("empty pattern".into());
        }
        if source.contains(['\n', '\r']) {
            return Err("a pattern matches within one line: it cannot contain a line break".into());
        }
        let mut toks = vec![Tok::Star];
        let mut chars = source.chars();
        while let Some(c) = chars.next() {
            toks.push(match c {
                '*' => Tok::Star,
                '?' => Tok::Any,
                '\\' => match chars.next() {
                    Some(e @ ('*' | '?' | '\\')) => Tok::Lit(e),
                    Some(e) => {
                        return Err(format!(
                            "`\\{e}` is not an escape in a pattern: only `\\*`, `\\?` and `\\\\` are"
                        ))
                    }
                    None => return Err("a pattern cannot end with a lone `\\`".into()),
                },
                c => Tok::Lit(c),
            });
        }
        toks.push(Tok::Star);
        Ok(Pattern {
            source: source.to_string(),
            toks,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the pattern matches somewhere in `line`.
    pub fn matches_line(&self, line: &str) -> bool {
        let s: Vec<char> = line.chars().collect();
        glob(&self.toks, &s)
    }

    /// The first line of `text` the pattern matches: its 1-based number and the line.
    pub fn first_match<'t>(&self, text: &'t str) -> Option<(usize, &'t str)> {
        text.lines()
            .enumerate()
            .find(|(_, l)| self.matches_line(l))
            .map(|(i, l)| (i + 1, l))
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

/// Whole-string glob match with backtracking to the last star: linear in practice, at worst
/// O(pattern × line).
fn glob(p: &[Tok], s: &[char]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(Tok::Star) => {
                star = Some((pi, si));
                pi += 1;
                continue;
            }
            Some(Tok::Any) => {
                pi += 1;
                si += 1;
                continue;
            }
            Some(Tok::Lit(c)) if *c == s[si] => {
                pi += 1;
                si += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, ss)) => {
                pi = sp + 1;
                si = ss + 1;
                star = Some((sp, ss + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|t| *t == Tok::Star)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_anywhere_in_a_line() {
        let table = [
            ("Error:", "imap(alice): Error: Corrupted index", true),
            ("Error:", "imap(alice): Info: Disconnected", false),
            (
                "lockd: server * not responding",
                "kernel: lockd: server filer not responding, still trying",
                true,
            ),
            (
                "lockd: server * not responding",
                "kernel: lockd: server filer OK",
                false,
            ),
            ("+OK 3 *", "+OK 3 1234", true),
            ("+OK 3 *", "+OK 13 1234", false),
            ("+OK ? messages", "+OK 3 messages", true),
            ("+OK ? messages", "+OK 13 messages", false),
            ("a*b*c", "xxaxxbxxcxx", true),
            ("a*b*c", "xxaxxcxxbxx", false),
            ("\\*", "a * b", true),
            ("\\*", "a b", false),
            ("\\?\\\\", "what?\\", true),
            ("é?", "café!", true),
            ("***", "", true),
        ];
        for (pat, line, want) in table {
            assert_eq!(
                Pattern::new(pat).unwrap().matches_line(line),
                want,
                "{pat:?} on {line:?}"
            );
        }
    }

    #[test]
    fn first_match_names_the_line_number() {
        let p = Pattern::new("GRANTED").unwrap();
        assert_eq!(p.first_match("a\nb GRANTED c\nGRANTED"), Some((2, "b GRANTED c")));
        assert_eq!(p.first_match("a\nb\n"), None);
    }

    #[test]
    fn bad_patterns_are_rejected() {
        assert_eq!(Pattern::new("").unwrap_err(), "empty pattern");
        assert_eq!(
            Pattern::new("a\nb").unwrap_err(),
            "a pattern matches within one line: it cannot contain a line break"
        );
        assert_eq!(
            Pattern::new("ab\\").unwrap_err(),
            "a pattern cannot end with a lone `\\`"
        );
        assert_eq!(
            Pattern::new("\\d+").unwrap_err(),
            "`\\d` is not an escape in a pattern: only `\\*`, `\\?` and `\\\\` are"
        );
    }
}
