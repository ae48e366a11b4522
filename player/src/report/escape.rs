//! Text made safe for HTML: every string in the report comes from the store (user names,
//! reasons, commands) and may be hostile.

use std::fmt::Write as _;

/// `text` safe in HTML text and in a double- or single-quoted attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Controls (an escape sequence in a command) would be invisible or invalid.
            c if c.is_control() && c != '\n' && c != '\t' => {
                let _ = write!(out, "&#xfffd;");
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_and_both_quotes() {
        assert_eq!(
            escape("<a href='x'>\"&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&quot;&amp;&quot;&lt;/a&gt;"
        );
        assert_eq!(escape("a\u{1b}[31mb"), "a&#xfffd;[31mb");
        assert_eq!(escape("plain é"), "plain é");
    }
}
