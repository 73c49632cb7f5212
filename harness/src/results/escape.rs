//! Escaping of hostile text (anything a guest may have written) for `report.html` and
//! `junit.xml`.
//!
//! Architecture invariant: every piece of text a renderer did not write itself goes through
//! one of these. Controls and noncharacters are parse errors in HTML (a NUL is even dropped or
//! replaced differently by each browser) and either illegal or discouraged in XML 1.0 (most C0
//! controls, U+FFFE and U+FFFF make the whole file unparseable), so both outputs replace them
//! with U+FFFD; they are never meaningful in a report.

/// For HTML text and attribute values: tab, newline and carriage return stay.
pub fn html(s: &str) -> String {
    escape(s, Markup::Html)
}

/// For XML character data: `\r` becomes a character reference, since parsers turn it into
/// `\n`.
pub fn xml_text(s: &str) -> String {
    escape(s, Markup::XmlText)
}

/// For XML attribute values: whitespace other than a space is written as a character
/// reference, because parsers normalize it to spaces otherwise.
pub fn xml_attr(s: &str) -> String {
    escape(s, Markup::XmlAttr)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Markup {
    Html,
    XmlText,
    XmlAttr,
}

fn escape(s: &str, to: Markup) -> String {
    let xml = to != Markup::Html;
    let attr = to == Markup::XmlAttr;
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' if xml => out.push_str("&apos;"),
            '\'' => out.push_str("&#39;"),
            '\r' if xml => out.push_str("&#13;"),
            '\n' if attr => out.push_str("&#10;"),
            '\t' if attr => out.push_str("&#9;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if forbidden(c) => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// C0 and C1 controls and the noncharacters.
fn forbidden(c: char) -> bool {
    let u = u32::from(c);
    u < 0x20 || (0x7f..=0x9f).contains(&u) || (0xfdd0..=0xfdef).contains(&u) || u & 0xfffe == 0xfffe
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_characters_are_escaped() {
        let s = "<a href=\"x\">it's & it's</a>";
        assert_eq!(
            html(s),
            "&lt;a href=&quot;x&quot;&gt;it&#39;s &amp; it&#39;s&lt;/a&gt;"
        );
        assert_eq!(
            xml_text(s),
            "&lt;a href=&quot;x&quot;&gt;it&apos;s &amp; it&apos;s&lt;/a&gt;"
        );
        assert_eq!(xml_attr(s), xml_text(s));
    }

    #[test]
    fn whitespace_survives_where_each_parser_keeps_it() {
        assert_eq!(html("a\r\n\tb"), "a\r\n\tb");
        assert_eq!(xml_text("a\r\n\tb"), "a&#13;\n\tb");
        assert_eq!(xml_attr("a\r\n\tb"), "a&#13;&#10;&#9;b");
    }

    #[test]
    fn controls_and_noncharacters_are_replaced() {
        let hostile = "\u{0}\u{7}\u{1b}[31m\u{7f}\u{85}\u{fdd0}\u{fffe}\u{ffff}\u{1fffe}ok é";
        let want = "\u{fffd}\u{fffd}\u{fffd}[31m\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}ok é";
        assert_eq!(html(hostile), want);
        assert_eq!(xml_text(hostile), want);
        assert_eq!(xml_attr(hostile), want);
    }
}
