//! How psql shows a value on a terminal: how many columns each character
//! takes, and how a value is cut into display lines (newlines split it,
//! a tab becomes spaces to the next multiple of 8, `\r` and other control
//! characters are shown escaped).

use super::width_table::{DOUBLE_WIDTH, ZERO_WIDTH};

fn in_table(table: &[(u32, u32)], cp: u32) -> bool {
    table
        .binary_search_by(|&(lo, hi)| {
            if hi < cp {
                std::cmp::Ordering::Less
            } else if lo > cp {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// The columns psql gives a character: `None` for a control character
/// (shown escaped), else 0, 1 or 2.
pub fn char_width(c: char) -> Option<usize> {
    let cp = c as u32;
    match cp {
        0 => Some(0),
        0x01..=0x1F | 0x7F..=0x9F => None,
        0x20..=0x7E => Some(1),
        _ if in_table(ZERO_WIDTH, cp) => Some(0),
        _ if in_table(DOUBLE_WIDTH, cp) => Some(2),
        _ => Some(1),
    }
}

/// Whether psql keeps the character: it silently drops the noncharacters
/// U+nFFFE and U+nFFFF of the supplementary planes when it validates the
/// text it prints.
fn kept(c: char) -> bool {
    let cp = c as u32;
    !(cp >= 0x1_0000 && cp & 0xFFFE == 0xFFFE)
}

/// The display width of a string that fits on one line (psql's
/// `pg_wcswidth`): control characters count nothing.
pub fn str_width(s: &str) -> usize {
    s.chars().filter_map(char_width).sum()
}

/// One display line of a value: its text as printed and its width.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub text: String,
    pub width: usize,
}

/// A value cut into display lines as psql prints it.
pub fn format_lines(s: &str) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut text = String::new();
    let mut width = 0usize;
    for c in s.chars().filter(|&c| kept(c)) {
        match c {
            '\n' => {
                lines.push(Line {
                    text: std::mem::take(&mut text),
                    width,
                });
                width = 0;
            }
            '\r' => {
                text.push_str("\\r");
                width += 2;
            }
            '\t' => loop {
                text.push(' ');
                width += 1;
                if width % 8 == 0 {
                    break;
                }
            },
            _ => match char_width(c) {
                Some(w) => {
                    text.push(c);
                    width += w;
                }
                None if (c as u32) < 0x80 => {
                    text.push_str(&format!("\\x{:02X}", c as u32));
                    width += 4;
                }
                None => {
                    text.push_str(&format!("\\u{:04X}", c as u32));
                    width += 6;
                }
            },
        }
    }
    lines.push(Line { text, width });
    lines
}

/// A value's display size: the width of its widest line and its number
/// of lines.
pub fn size(s: &str) -> (usize, usize) {
    let lines = format_lines(s);
    (
        lines.iter().map(|l| l.width).max().unwrap_or(0),
        lines.len(),
    )
}

/// The longest prefix of `s` (a formatted line) that fits in `target`
/// columns, but at least one character: its byte length and width.
pub fn prefix_fitting(s: &str, target: usize) -> (usize, usize) {
    let mut width = 0;
    for (at, c) in s.char_indices() {
        let w = char_width(c).unwrap_or(0);
        if target < width + w && width != 0 {
            return (at, width);
        }
        width += w;
    }
    (s.len(), width)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_of_scripts() {
        assert_eq!(str_width("Příliš žluťoučký kůň"), 20);
        assert_eq!(str_width("日本語"), 6);
        assert_eq!(str_width("😀"), 2);
        // e + combining acute accent: one column.
        assert_eq!(str_width("e\u{301}"), 1);
        // psql 15 gives ZERO WIDTH SPACE a column (its table predates
        // the rule that would make it 0); full-width A is two.
        assert_eq!(str_width("a\u{200B}b"), 3);
        assert_eq!(str_width("\u{FF21}"), 2);
    }

    #[test]
    fn controls_tabs_and_newlines() {
        let lines = format_lines("a\tb\r\nc\u{b}d\u{85}");
        assert_eq!(
            lines,
            [
                Line {
                    text: "a       b\\r".into(),
                    width: 11
                },
                Line {
                    text: "c\\x0Bd\\u0085".into(),
                    width: 12
                }
            ]
        );
        assert_eq!(size(""), (0, 1));
        assert_eq!(size("ab\n"), (2, 2));
    }

    #[test]
    fn noncharacters_are_dropped() {
        assert_eq!(format_lines("a\u{1FFFE}b")[0].text, "ab");
        assert_eq!(format_lines("a\u{FFFE}b")[0].text, "a\u{FFFE}b");
    }

    #[test]
    fn prefixes() {
        assert_eq!(prefix_fitting("abcdef", 3), (3, 3));
        assert_eq!(prefix_fitting("日本語", 3), (3, 2));
        assert_eq!(prefix_fitting("日本語", 1), (3, 2));
        assert_eq!(prefix_fitting("ab", 5), (2, 2));
    }
}
