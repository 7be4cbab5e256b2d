//! The line styles of `\pset linestyle`: which strings draw the rules,
//! the column separators and the continuation marks.

use super::LineStyle;

/// One horizontal rule (top, below the header, bottom) or the data
/// lines' vertical bars.
pub struct Rule {
    pub h: &'static str,
    pub left: &'static str,
    pub mid: &'static str,
    pub right: &'static str,
}

pub struct Style {
    pub top: Rule,
    pub middle: Rule,
    pub bottom: Rule,
    pub data: Rule,
    /// Column separator beside a value continued after a newline.
    pub midvrule_nl: &'static str,
    /// … beside a wrapped value.
    pub midvrule_wrap: &'static str,
    /// … beside a column that has no more lines in this row.
    pub midvrule_blank: &'static str,
    pub header_nl_left: &'static str,
    pub header_nl_right: &'static str,
    pub nl_left: &'static str,
    pub nl_right: &'static str,
    pub wrap_left: &'static str,
    pub wrap_right: &'static str,
    /// Whether continuation marks have a column of their own at the
    /// right of a border 0 table.
    pub wrap_right_border: bool,
}

const fn rule(h: &'static str, left: &'static str, mid: &'static str, right: &'static str) -> Rule {
    Rule {
        h,
        left,
        mid,
        right,
    }
}

static ASCII: Style = Style {
    top: rule("-", "+", "+", "+"),
    middle: rule("-", "+", "+", "+"),
    bottom: rule("-", "+", "+", "+"),
    data: rule("", "|", "|", "|"),
    midvrule_nl: "|",
    midvrule_wrap: "|",
    midvrule_blank: "|",
    header_nl_left: " ",
    header_nl_right: "+",
    nl_left: " ",
    nl_right: "+",
    wrap_left: ".",
    wrap_right: ".",
    wrap_right_border: true,
};

static OLD_ASCII: Style = Style {
    top: rule("-", "+", "+", "+"),
    middle: rule("-", "+", "+", "+"),
    bottom: rule("-", "+", "+", "+"),
    data: rule("", "|", "|", "|"),
    midvrule_nl: ":",
    midvrule_wrap: ";",
    midvrule_blank: " ",
    header_nl_left: "+",
    header_nl_right: " ",
    nl_left: " ",
    nl_right: " ",
    wrap_left: " ",
    wrap_right: " ",
    wrap_right_border: false,
};

// Box drawing, single lines (psql's unicode style with the default
// unicode_*_linestyle single).
static UNICODE: Style = Style {
    top: rule("\u{2500}", "\u{250C}", "\u{252C}", "\u{2510}"),
    middle: rule("\u{2500}", "\u{251C}", "\u{253C}", "\u{2524}"),
    bottom: rule("\u{2500}", "\u{2514}", "\u{2534}", "\u{2518}"),
    data: rule("", "\u{2502}", "\u{2502}", "\u{2502}"),
    midvrule_nl: "\u{2502}",
    midvrule_wrap: "\u{2502}",
    midvrule_blank: "\u{2502}",
    header_nl_left: " ",
    header_nl_right: "\u{21B5}",
    nl_left: " ",
    nl_right: "\u{21B5}",
    wrap_left: "\u{2026}",
    wrap_right: "\u{2026}",
    wrap_right_border: true,
};

pub fn style(line_style: LineStyle) -> &'static Style {
    match line_style {
        LineStyle::Ascii => &ASCII,
        LineStyle::OldAscii => &OLD_ASCII,
        LineStyle::Unicode => &UNICODE,
    }
}
