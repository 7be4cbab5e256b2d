//! `\pset`: psql's option names, values, messages and error texts.

use super::{Expanded, Format, LineStyle, PagerUse, PrintOpt, Separator};

/// psql's boolean values: a case-insensitive prefix of true, false,
/// yes, no, or on/off (at least two letters), 1, 0.
pub fn parse_bool(value: &str) -> Option<bool> {
    let v = value.to_ascii_lowercase();
    let prefix_of = |word: &str, min: usize| v.len() >= min && word.starts_with(&v);
    if prefix_of("true", 1) || prefix_of("yes", 1) || prefix_of("on", 2) || v == "1" {
        Some(true)
    } else if prefix_of("false", 1) || prefix_of("no", 1) || prefix_of("off", 2) || v == "0" {
        Some(false)
    } else {
        None
    }
}

fn bool_error(value: &str, name: &str) -> String {
    format!("unrecognized value \"{value}\" for \"{name}\": Boolean expected")
}

fn enum_error(value: &str, name: &str, allowed: &str) -> String {
    format!("unrecognized value \"{value}\" for \"{name}\"\nAvailable values are: {allowed}.")
}

/// C's `atoi`: leading blanks, a sign, digits; anything else ends it.
fn atoi(s: &str) -> i64 {
    let s = s.trim_start();
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut n: i64 = 0;
    for b in digits.bytes().take_while(u8::is_ascii_digit) {
        n = n.saturating_mul(10).saturating_add(i64::from(b - b'0'));
    }
    if neg {
        -n
    } else {
        n
    }
}

const FORMATS: [&str; 9] = [
    "aligned",
    "asciidoc",
    "csv",
    "html",
    "latex",
    "latex-longtable",
    "troff-ms",
    "unaligned",
    "wrapped",
];

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Aligned => "aligned",
        Format::Unaligned => "unaligned",
        Format::Wrapped => "wrapped",
        Format::Csv => "csv",
    }
}

fn line_style_name(l: LineStyle) -> &'static str {
    match l {
        LineStyle::Ascii => "ascii",
        LineStyle::OldAscii => "old-ascii",
        LineStyle::Unicode => "unicode",
    }
}

/// psql's quoting of a value in the `\pset` listing.
fn quoted(s: &str) -> String {
    let mut out = String::from("'");
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\'' => out.push_str("\\'"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

/// The names `\pset` lists, in psql's order.
const NAMES: [&str; 21] = [
    "border",
    "columns",
    "csv_fieldsep",
    "expanded",
    "fieldsep",
    "fieldsep_zero",
    "footer",
    "format",
    "linestyle",
    "null",
    "numericlocale",
    "pager",
    "pager_min_lines",
    "recordsep",
    "recordsep_zero",
    "tableattr",
    "title",
    "tuples_only",
    "unicode_border_linestyle",
    "unicode_column_linestyle",
    "unicode_header_linestyle",
];

impl PrintOpt {
    /// `\pset NAME [VALUE]` (and the shortcuts `\a`, `\t`, `\x`, `\f`, `\C`
    /// map onto it): sets the option and returns the line psql prints for
    /// it ("Border style is 2."), or psql's error message (without the
    /// trailing newline; some are two lines). An empty message means psql
    /// prints nothing (`\pset footer off`). An empty NAME lists every
    /// option, as `\pset` alone does.
    pub fn pset(&mut self, name: &str, value: Option<&str>) -> Result<String, String> {
        match (name, value) {
            ("format", Some(v)) => {
                let lower = v.to_ascii_lowercase();
                let matches: Vec<&str> = FORMATS
                    .iter()
                    .copied()
                    .filter(|f| f.starts_with(&lower) && !lower.is_empty())
                    .collect();
                let chosen = if matches.contains(&lower.as_str()) {
                    lower.as_str()
                } else {
                    match matches.as_slice() {
                        [one] => one,
                        [a, b, ..] => {
                            return Err(format!(
                                "\\pset: ambiguous abbreviation \"{v}\" matches both \"{a}\" and \"{b}\""
                            ))
                        }
                        [] => {
                            return Err(format!(
                                "\\pset: allowed formats are {}",
                                FORMATS.join(", ")
                            ))
                        }
                    }
                };
                self.format = match chosen {
                    "aligned" => Format::Aligned,
                    "unaligned" => Format::Unaligned,
                    "wrapped" => Format::Wrapped,
                    "csv" => Format::Csv,
                    other => {
                        return Err(format!(
                            "\\pset: format {other} is not supported by iam-pg (aligned, csv, unaligned, wrapped are)"
                        ))
                    }
                };
            }
            ("linestyle", Some(v)) => {
                let lower = v.to_ascii_lowercase();
                let pick = |name: &str| !lower.is_empty() && name.starts_with(&lower);
                self.line_style = if pick("ascii") {
                    LineStyle::Ascii
                } else if pick("old-ascii") {
                    LineStyle::OldAscii
                } else if pick("unicode") {
                    LineStyle::Unicode
                } else {
                    return Err("\\pset: allowed line styles are ascii, old-ascii, unicode".into());
                };
            }
            (
                "unicode_border_linestyle"
                | "unicode_column_linestyle"
                | "unicode_header_linestyle",
                Some(v),
            ) => {
                let lower = v.to_ascii_lowercase();
                if lower.is_empty() || !"single".starts_with(&lower) {
                    if !lower.is_empty() && "double".starts_with(&lower) {
                        return Err(format!("\\pset: {name} double is not supported by iam-pg"));
                    }
                    let what = match name {
                        "unicode_border_linestyle" => "border",
                        "unicode_column_linestyle" => "column",
                        _ => "header",
                    };
                    return Err(format!(
                        "\\pset: allowed Unicode {what} line styles are single, double"
                    ));
                }
            }
            ("border", Some(v)) => {
                // psql keeps an unsigned short; more than 2 draws as 2.
                let n = atoi(v) as u16;
                self.border = u8::try_from(n).unwrap_or(u8::MAX);
                return Ok(format!("Border style is {n}."));
            }
            ("x" | "expanded" | "vertical", Some(v)) => {
                if v.eq_ignore_ascii_case("auto") {
                    self.expanded = Expanded::Auto;
                } else {
                    match parse_bool(v) {
                        Some(true) => self.expanded = Expanded::On,
                        Some(false) => self.expanded = Expanded::Off,
                        None => return Err(enum_error(v, name, "on, off, auto")),
                    }
                }
            }
            ("x" | "expanded" | "vertical", None) => {
                self.expanded = if self.expanded == Expanded::Off {
                    Expanded::On
                } else {
                    Expanded::Off
                };
            }
            ("csv_fieldsep", Some(v)) => {
                if v.len() != 1 {
                    return Err("\\pset: csv_fieldsep must be a single one-byte character".into());
                }
                if matches!(v, "\"" | "\n" | "\r") {
                    return Err(
                        "\\pset: csv_fieldsep cannot be a double quote, a newline, or a carriage return"
                            .into(),
                    );
                }
                self.csv_field_sep = v.chars().next().unwrap_or(',');
            }
            // psql sets these three silently when given a value.
            ("numericlocale", Some(v)) => {
                self.numeric_locale = parse_bool(v).ok_or_else(|| bool_error(v, name))?;
                return Ok(String::new());
            }
            ("numericlocale", None) => self.numeric_locale = !self.numeric_locale,
            ("footer", Some(v)) => {
                self.footer = parse_bool(v).ok_or_else(|| bool_error(v, name))?;
                return Ok(String::new());
            }
            ("footer", None) => self.footer = !self.footer,
            ("t" | "tuples_only", Some(v)) => {
                self.tuples_only = parse_bool(v).ok_or_else(|| bool_error(v, name))?;
                return Ok(String::new());
            }
            ("t" | "tuples_only", None) => self.tuples_only = !self.tuples_only,
            ("null", Some(v)) => self.null = v.to_owned(),
            ("fieldsep", Some(v)) => {
                self.field_sep = Separator {
                    text: v.to_owned(),
                    zero: false,
                }
            }
            ("fieldsep_zero", _) => self.field_sep.zero = true,
            ("recordsep", Some(v)) => {
                self.record_sep = Separator {
                    text: v.to_owned(),
                    zero: false,
                }
            }
            ("recordsep_zero", _) => self.record_sep.zero = true,
            ("C" | "title", v) => self.title = v.map(str::to_owned),
            ("T" | "tableattr", _) => {
                return Err("\\pset: tableattr is not supported by iam-pg (no HTML output)".into())
            }
            ("pager", Some(v)) => {
                self.pager = if v.eq_ignore_ascii_case("always") {
                    PagerUse::Always
                } else {
                    match parse_bool(v) {
                        Some(true) => PagerUse::On,
                        Some(false) => PagerUse::Off,
                        None => return Err(enum_error(v, name, "on, off, always")),
                    }
                };
            }
            ("pager", None) => {
                self.pager = if self.pager == PagerUse::On {
                    PagerUse::Off
                } else {
                    PagerUse::On
                };
            }
            ("pager_min_lines", Some(v)) => {
                let n = atoi(v) as i32;
                self.pager_min_lines = u32::try_from(n).unwrap_or(0);
                return Ok(lines_message(n));
            }
            ("columns", Some(v)) => {
                let n = atoi(v) as i32;
                self.columns = u32::try_from(n).unwrap_or(0);
                return Ok(columns_message(n));
            }
            ("", None) => return Ok(self.pset_list()),
            (
                "format"
                | "linestyle"
                | "border"
                | "csv_fieldsep"
                | "null"
                | "fieldsep"
                | "recordsep"
                | "pager_min_lines"
                | "columns"
                | "unicode_border_linestyle"
                | "unicode_column_linestyle"
                | "unicode_header_linestyle",
                None,
            ) => {}
            _ => return Err(format!("\\pset: unknown option: {name}")),
        }
        Ok(self.pset_info(name))
    }

    /// The line psql prints for option `name`'s current value.
    fn pset_info(&self, name: &str) -> String {
        match name {
            "border" => format!("Border style is {}.", self.border),
            "columns" => columns_message(self.columns as i32),
            "x" | "expanded" | "vertical" => match self.expanded {
                Expanded::Auto => "Expanded display is used automatically.".into(),
                e => format!("Expanded display is {}.", on_off(e == Expanded::On)),
            },
            "csv_fieldsep" => format!("Field separator for CSV is \"{}\".", self.csv_field_sep),
            "fieldsep" | "fieldsep_zero" if self.field_sep.zero => {
                "Field separator is zero byte.".into()
            }
            "fieldsep" | "fieldsep_zero" => {
                format!("Field separator is \"{}\".", self.field_sep.text)
            }
            "footer" => format!("Default footer is {}.", on_off(self.footer)),
            "format" => format!("Output format is {}.", format_name(self.format)),
            "linestyle" => format!("Line style is {}.", line_style_name(self.line_style)),
            "null" => format!("Null display is \"{}\".", self.null),
            "numericlocale" => format!(
                "Locale-adjusted numeric output is {}.",
                on_off(self.numeric_locale)
            ),
            "pager" => match self.pager {
                PagerUse::On => "Pager is used for long output.".into(),
                PagerUse::Always => "Pager is always used.".into(),
                PagerUse::Off => "Pager usage is off.".into(),
            },
            "pager_min_lines" => lines_message(self.pager_min_lines as i32),
            "recordsep" | "recordsep_zero" if self.record_sep.zero => {
                "Record separator is zero byte.".into()
            }
            "recordsep" | "recordsep_zero" if self.record_sep.text == "\n" => {
                "Record separator is <newline>.".into()
            }
            "recordsep" | "recordsep_zero" => {
                format!("Record separator is \"{}\".", self.record_sep.text)
            }
            "C" | "title" => match &self.title {
                Some(t) => format!("Title is \"{t}\"."),
                None => "Title is unset.".into(),
            },
            "t" | "tuples_only" => format!("Tuples only is {}.", on_off(self.tuples_only)),
            "unicode_border_linestyle" => "Unicode border line style is \"single\".".into(),
            "unicode_column_linestyle" => "Unicode column line style is \"single\".".into(),
            "unicode_header_linestyle" => "Unicode header line style is \"single\".".into(),
            _ => String::new(),
        }
    }

    /// What `\pset` alone prints: every option and its value.
    pub fn pset_list(&self) -> String {
        let lines: Vec<String> = NAMES
            .iter()
            .map(|&name| {
                let value = match name {
                    "border" => self.border.to_string(),
                    "columns" => self.columns.to_string(),
                    "csv_fieldsep" => quoted(&self.csv_field_sep.to_string()),
                    "expanded" => match self.expanded {
                        Expanded::Auto => "auto".into(),
                        e => on_off(e == Expanded::On).into(),
                    },
                    "fieldsep" if self.field_sep.zero => "''".into(),
                    "fieldsep" => quoted(&self.field_sep.text),
                    "fieldsep_zero" => on_off(self.field_sep.zero).into(),
                    "footer" => on_off(self.footer).into(),
                    "format" => format_name(self.format).into(),
                    "linestyle" => line_style_name(self.line_style).into(),
                    "null" => quoted(&self.null),
                    "numericlocale" => on_off(self.numeric_locale).into(),
                    "pager" => match self.pager {
                        PagerUse::Off => "0",
                        PagerUse::On => "1",
                        PagerUse::Always => "2",
                    }
                    .into(),
                    "pager_min_lines" => self.pager_min_lines.to_string(),
                    "recordsep" if self.record_sep.zero => "''".into(),
                    "recordsep" => quoted(&self.record_sep.text),
                    "recordsep_zero" => on_off(self.record_sep.zero).into(),
                    "title" => self.title.as_deref().map(quoted).unwrap_or_default(),
                    "tuples_only" => on_off(self.tuples_only).into(),
                    "tableattr" => String::new(),
                    _ => "single".into(),
                };
                format!("{name:<24} {value}")
            })
            .collect();
        lines.join("\n")
    }
}

fn lines_message(n: i32) -> String {
    format!(
        "Pager won't be used for less than {n} {}.",
        if n == 1 { "line" } else { "lines" }
    )
}

fn columns_message(n: i32) -> String {
    if n == 0 {
        "Target width is unset.".into()
    } else {
        format!("Target width is {n}.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(opt: &mut PrintOpt, name: &str, value: Option<&str>) -> Result<String, String> {
        opt.pset(name, value)
    }

    /// The messages, checked against psql 15.18 by hand (`psql -c
    /// '\pset …'`).
    #[test]
    fn messages_are_psqls() {
        let mut o = PrintOpt::default();
        let cases: &[(&str, Option<&str>, Result<&str, &str>)] = &[
            ("border", Some("2"), Ok("Border style is 2.")),
            ("border", None, Ok("Border style is 2.")),
            ("border", Some("x"), Ok("Border style is 0.")),
            ("border", Some("-1"), Ok("Border style is 65535.")),
            ("expanded", None, Ok("Expanded display is on.")),
            ("expanded", Some("auto"), Ok("Expanded display is used automatically.")),
            ("x", None, Ok("Expanded display is off.")),
            ("expanded", Some("maybe"), Err("unrecognized value \"maybe\" for \"expanded\"\nAvailable values are: on, off, auto.")),
            ("format", None, Ok("Output format is aligned.")),
            ("format", Some("u"), Ok("Output format is unaligned.")),
            ("format", Some("a"), Err("\\pset: ambiguous abbreviation \"a\" matches both \"aligned\" and \"asciidoc\"")),
            ("format", Some("foo"), Err("\\pset: allowed formats are aligned, asciidoc, csv, html, latex, latex-longtable, troff-ms, unaligned, wrapped")),
            ("format", Some("c"), Ok("Output format is csv.")),
            ("format", Some("w"), Ok("Output format is wrapped.")),
            ("null", Some("(null)"), Ok("Null display is \"(null)\".")),
            ("null", None, Ok("Null display is \"(null)\".")),
            ("footer", None, Ok("Default footer is off.")),
            ("footer", Some("on"), Ok("")),
            ("footer", Some("maybe"), Err("unrecognized value \"maybe\" for \"footer\": Boolean expected")),
            ("t", None, Ok("Tuples only is on.")),
            ("tuples_only", Some("off"), Ok("")),
            ("title", Some("Foo"), Ok("Title is \"Foo\".")),
            ("title", None, Ok("Title is unset.")),
            ("fieldsep", Some(";"), Ok("Field separator is \";\".")),
            ("fieldsep_zero", None, Ok("Field separator is zero byte.")),
            ("fieldsep", None, Ok("Field separator is zero byte.")),
            ("recordsep", None, Ok("Record separator is <newline>.")),
            ("recordsep", Some("x"), Ok("Record separator is \"x\".")),
            ("recordsep_zero", None, Ok("Record separator is zero byte.")),
            ("numericlocale", None, Ok("Locale-adjusted numeric output is on.")),
            ("pager", None, Ok("Pager usage is off.")),
            ("pager", Some("always"), Ok("Pager is always used.")),
            ("pager", Some("on"), Ok("Pager is used for long output.")),
            ("pager", Some("5"), Err("unrecognized value \"5\" for \"pager\"\nAvailable values are: on, off, always.")),
            ("pager_min_lines", Some("10"), Ok("Pager won't be used for less than 10 lines.")),
            ("columns", Some("80"), Ok("Target width is 80.")),
            ("columns", Some("0"), Ok("Target width is unset.")),
            ("linestyle", Some("u"), Ok("Line style is unicode.")),
            ("linestyle", Some("x"), Err("\\pset: allowed line styles are ascii, old-ascii, unicode")),
            ("csv_fieldsep", Some(";"), Ok("Field separator for CSV is \";\".")),
            ("csv_fieldsep", Some("ab"), Err("\\pset: csv_fieldsep must be a single one-byte character")),
            ("foo", None, Err("\\pset: unknown option: foo")),
        ];
        for (name, value, expected) in cases {
            let got = set(&mut o, name, *value);
            assert_eq!(
                got.as_deref().map_err(String::as_str),
                *expected,
                "\\pset {name} {value:?}"
            );
        }
    }

    #[test]
    fn the_listing_is_psqls() {
        let o = PrintOpt::default();
        let expected = "\
border                   1
columns                  0
csv_fieldsep             ','
expanded                 off
fieldsep                 '|'
fieldsep_zero            off
footer                   on
format                   aligned
linestyle                ascii
null                     ''
numericlocale            off
pager                    1
pager_min_lines          0
recordsep                '\\n'
recordsep_zero           off
tableattr                
title                    
tuples_only              off
unicode_border_linestyle single
unicode_column_linestyle single
unicode_header_linestyle single";
        assert_eq!(o.pset_list(), expected);
    }

    #[test]
    fn booleans() {
        for (v, b) in [
            ("on", Some(true)),
            ("OFF", Some(false)),
            ("o", None),
            ("t", Some(true)),
            ("y", Some(true)),
            ("n", Some(false)),
            ("1", Some(true)),
            ("0", Some(false)),
            ("maybe", None),
            ("", None),
        ] {
            assert_eq!(parse_bool(v), b, "{v}");
        }
    }
}
