//! Text one person wrote, made safe to show on another person's terminal.
//!
//! A statement, a parameter, a reason or a process name is written by
//! whoever sent it and read later by someone else: an approver at
//! `iam-pg request show`, an auditor at `iam-pgbroker audit show`, an
//! administrator reading the journal. A terminal interprets control
//! characters — ESC starts a sequence that can move the cursor, clear a
//! line or retitle the window, CR returns to the start of the line, BS
//! steps back — and bidirectional overrides reorder what follows, so raw
//! text could redraw the screen to show something other than what is
//! there. Every view of such text goes through these functions, which
//! show each of those characters as a visible escape (`\r`, `\x1b`,
//! `\u{202e}`) instead.
//!
//! ```
//! use iam_pgbroker_proto::display::{escape_line, escape_text};
//!
//! assert_eq!(escape_line("UPDATE t\r\x1b[K-- ok"), "UPDATE t\\r\\x1b[K-- ok");
//! assert_eq!(escape_line("a\nb"), "a\\nb");
//! // Multi-line text keeps its line breaks (a statement over several lines).
//! assert_eq!(escape_text("SELECT 1\nFROM t\u{202e}"), "SELECT 1\nFROM t\\u{202e}");
//! assert_eq!(escape_line("Žluťoučký kůň"), "Žluťoučký kůň");
//! ```

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether a terminal could act on `c` instead of showing it: C0 and C1
/// control characters, DEL, the bidirectional marks, embeddings, overrides
/// and isolates, the Unicode line and paragraph separators, and the
/// invisible zero-width space and byte-order mark.
pub fn is_unsafe(c: char) -> bool {
    matches!(
        c,
        '\u{0}'..='\u{1f}'
            | '\u{7f}'..='\u{9f}'
            | '\u{61c}'
            | '\u{200b}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
            | '\u{feff}'
    )
}

fn escape(text: &str, keep_newlines: bool) -> Cow<'_, str> {
    if keep_newlines {
        escape_except(text, &['\n'])
    } else {
        escape_except(text, &[])
    }
}

/// `text` with every unsafe character escaped except those in `keep`
/// (a log writer keeps the ESC of its own colours, which its formatter
/// has already escaped in every field).
pub fn escape_except<'a>(text: &'a str, keep: &[char]) -> Cow<'a, str> {
    let unsafe_here = |c: char| is_unsafe(c) && !keep.contains(&c);
    if !text.chars().any(unsafe_here) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if !unsafe_here(c) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

/// `text` on one line: every unsafe character escaped, line breaks and
/// tabs included. For reasons, names, parameters and table cells.
pub fn escape_line(text: &str) -> Cow<'_, str> {
    escape(text, false)
}

/// `text` with its line breaks kept and every other unsafe character
/// (CR and tab included) escaped. For statements shown over several lines;
/// the caller marks where each line belongs (see `iam-pg request show`).
pub fn escape_text(text: &str) -> Cow<'_, str> {
    escape(text, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_control_character_is_escaped_and_nothing_else() {
        for c in (0u32..0x3000).filter_map(char::from_u32) {
            let shown = escape_line(&c.to_string()).into_owned();
            if is_unsafe(c) {
                assert!(shown.starts_with('\\'), "{c:?} shown as {shown:?}");
                assert!(!shown.chars().any(is_unsafe), "{c:?} shown as {shown:?}");
            } else {
                assert_eq!(shown, c.to_string());
            }
        }
        for c in [
            '\x1b', '\r', '\x08', '\x07', '\x7f', '\u{9b}', '\u{202e}', '\u{2067}',
        ] {
            assert!(is_unsafe(c), "{c:?}");
        }
    }

    #[test]
    fn the_forms_are_readable() {
        assert_eq!(escape_line("\x1b[2J"), "\\x1b[2J");
        assert_eq!(escape_line("a\tb\r\n"), "a\\tb\\r\\n");
        assert_eq!(escape_line("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(escape_line("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(escape_text("a\r\nb\tc"), "a\\r\nb\\tc");
    }

    #[test]
    fn safe_text_is_not_copied() {
        assert!(matches!(escape_line("SELECT 'Ř' -- ok"), Cow::Borrowed(_)));
        assert!(matches!(escape_text("a\nb"), Cow::Borrowed(_)));
    }
}
