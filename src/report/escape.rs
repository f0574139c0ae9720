//! The one place where text from untrusted files (symbol names, commands) is made safe for its destination.

/// Longest name a view shows, in bytes: longer ones (only a hostile file has them; C++ names of deep
/// templates reach a few hundred) lose their middle. Views that repeat a name per line, per call or
/// per stack frame then write at most a fixed multiple of their input, whatever the names.
pub const MAX_SHOWN_NAME: usize = 1024;

/// A name cut to [`MAX_SHOWN_NAME`] bytes: its start and its end, with ` … ` between them.
pub fn cut_long(s: &str) -> std::borrow::Cow<'_, str> {
    if s.len() <= MAX_SHOWN_NAME {
        return s.into();
    }
    let keep = (MAX_SHOWN_NAME - " … ".len()) / 2;
    let mut head = keep;
    while !s.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = s.len() - keep;
    while !s.is_char_boundary(tail) {
        tail += 1;
    }
    format!("{} … {}", &s[..head], &s[tail..]).into()
}

/// For a terminal: control characters (ANSI escapes included) and the bidirectional controls of "Trojan
/// Source" (U+202E shows the rest of a line reversed) become visible `\u{..}` escapes.
pub fn terminal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || is_bidi_control(c) {
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
            c if is_bidi_control(c) => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    out
}

/// Where a string goes in an XML document; see [`xml`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XmlPlace {
    /// An attribute value: one line, every character visible.
    Attribute,
    /// The text of a CDATA section (`<![CDATA[…]]>`): line breaks and tabs kept.
    Cdata,
}

/// For XML: the one sanitiser every name and text goes through before an XML writer sees it.
///
/// What XML 1.0 cannot carry at all (C0 controls but tab, LF and CR; U+FFFE, U+FFFF) is replaced by a
/// visible escape (`\u{1b}`, `\0`), and so are C1 controls and DEL (terminal sequences in a CI log
/// viewer) and the bidirectional controls of "Trojan Source" (a name shown reversed on a CI page
/// misleads). In an attribute, tab, LF and CR become `\t`, `\n`, `\r` as well: a parser would turn
/// them into spaces, so a name with a line break would silently become another name. In CDATA, `]]>`
/// is split across two sections (`]]]]><![CDATA[>`), since it would end the section early.
///
/// The result is *not* entity-escaped: the writer (quick-xml, under junit-report) escapes `<`, `>`,
/// `&`, `'` and `"` in attributes itself, and CDATA needs no escaping.
pub fn xml(s: &str, place: XmlPlace) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        let keep_line_breaks = place == XmlPlace::Cdata && matches!(c, '\t' | '\n' | '\r');
        if !keep_line_breaks && hidden_in_xml(c) {
            // `\t`, `\n`, `\r`, `\0`, else `\u{..}`.
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    if place == XmlPlace::Cdata {
        out = out.replace("]]>", "]]]]><![CDATA[>");
    }
    out
}

/// Characters that XML 1.0 cannot carry, or that a viewer would not show as themselves.
fn hidden_in_xml(c: char) -> bool {
    c.is_control() // C0 (tab, LF and CR included), DEL, C1
        || matches!(c, '\u{FFFE}' | '\u{FFFF}')
        || is_bidi_control(c)
}

/// The Unicode bidirectional formatting characters, which reorder what follows them on screen.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// For a line of SVG text or a folded-stack frame: what [`xml`] would escape in an attribute is replaced
/// by U+FFFD (inferno escapes `<`, `>`, `&` itself; a folded line cannot carry escapes).
pub fn svg_text(s: &str) -> String {
    s.chars()
        .map(|c| if hidden_in_xml(c) { '\u{FFFD}' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_lose_their_middle_on_a_char_boundary() {
        assert_eq!(cut_long("short"), "short");
        let exact = "x".repeat(MAX_SHOWN_NAME);
        assert_eq!(cut_long(&exact), exact);
        let long = format!("start{}end", "é".repeat(100_000));
        let cut = cut_long(&long);
        assert!(cut.len() <= MAX_SHOWN_NAME, "{}", cut.len());
        assert!(
            cut.starts_with("startéé") && cut.ends_with("ééend"),
            "{cut}"
        );
        assert!(cut.contains(" … "));
    }

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
    fn xml_attributes_are_one_visible_line() {
        use XmlPlace::Attribute;
        // Specials are left to the writer, which escapes them.
        assert_eq!(xml("a<b>&\"'|`%\\", Attribute), "a<b>&\"'|`%\\");
        assert_eq!(xml("a\nb\tc\rd", Attribute), "a\\nb\\tc\\rd");
        assert_eq!(
            xml("\0\x1b[31m\x7f\u{85}", Attribute),
            "\\0\\u{1b}[31m\\u{7f}\\u{85}"
        );
        assert_eq!(xml("abc\u{202E}fed", Attribute), "abc\\u{202e}fed");
        assert_eq!(
            xml("\u{FFFE}\u{FFFF}\u{FFFD}", Attribute),
            "\\u{fffe}\\u{ffff}\u{FFFD}"
        );
        assert_eq!(xml("a]]>b", Attribute), "a]]>b");
        assert_eq!(xml("façade::größe<T>", Attribute), "façade::größe<T>");
    }

    #[test]
    fn xml_cdata_keeps_lines_and_cannot_close_the_section() {
        use XmlPlace::Cdata;
        assert_eq!(xml("a\nb\tc\r\n", Cdata), "a\nb\tc\r\n");
        assert_eq!(xml("x]]>y]]>", Cdata), "x]]]]><![CDATA[>y]]]]><![CDATA[>");
        assert_eq!(xml("\0\x1b[31m", Cdata), "\\0\\u{1b}[31m");
        // Split, the sections still read back as the original text.
        let written = format!("<![CDATA[{}]]>", xml("a]]>b", Cdata));
        let read: String = written
            .split("<![CDATA[")
            .filter_map(|s| s.strip_suffix("]]>"))
            .collect();
        assert_eq!(read, "a]]>b");
    }
}
