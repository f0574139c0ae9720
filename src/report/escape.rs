//! The one place where text from untrusted files (symbol names, commands) is made safe for its destination.

/// For a terminal: control characters (ANSI escapes included) become visible `\u{..}` escapes.
pub fn terminal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// For a markdown table cell or text: markdown and HTML specials are backslash-escaped or turned into
/// entities, newlines and control characters removed, so a name can neither break the table nor inject
/// markup.
pub fn markdown(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '|' | '`' | '*' | '_' | '[' | ']' | '\\' | '#' | '~' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// For XML or HTML text and attribute values.
pub fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Not allowed in XML 1.0 at all.
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{FFFD}'),
            '\u{FFFE}' | '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_escapes_ansi() {
        assert_eq!(terminal("a\x1b[31mb"), "a\\u{1b}[31mb");
        assert_eq!(terminal("operator<<"), "operator<<");
    }

    #[test]
    fn markdown_cannot_break_a_table_or_inject_html() {
        let s = markdown("a|b`c<script>*_x_*\nrow");
        assert!(!s.contains("<script>"));
        assert!(!s.contains('\n'));
        assert_eq!(s, "a\\|b\\`c&lt;script&gt;\\*\\_x\\_\\* row");
    }

    #[test]
    fn xml_escapes_specials_and_controls() {
        assert_eq!(xml("a<b>&\"'\x01"), "a&lt;b&gt;&amp;&quot;&apos;\u{FFFD}");
    }
}
