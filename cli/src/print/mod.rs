//! psql's output, for `iam-pg`: the formats, borders and options of psql's
//! `\pset`, printed byte for byte as psql 15 prints them (its `print.c` is
//! the reference), and the destination they go to (standard output, a
//! pager, a file or a pipe from `\o` / `-o`).
//!
//! SKELETON: the interface the rest of `iam-pg` codes against. The bodies
//! are placeholders to be replaced by the real implementation.

use std::io::{self, Write};

/// `\pset format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Aligned,
    Unaligned,
    Wrapped,
    Csv,
}

/// `\x` / `\pset expanded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expanded {
    Off,
    On,
    Auto,
}

/// `\pset linestyle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineStyle {
    Ascii,
    OldAscii,
    Unicode,
}

/// `\pset pager`: 0 off, 1 on (when the output is taller than the
/// terminal), 2 always.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PagerUse {
    Off,
    On,
    Always,
}

/// A field or record separator (`\pset fieldsep`, `fieldsep_zero`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Separator {
    pub text: String,
    /// The zero byte instead of `text` (`-z`, `-0`).
    pub zero: bool,
}

/// Everything `\pset` sets, with psql's defaults.
#[derive(Debug, Clone)]
pub struct PrintOpt {
    pub format: Format,
    pub expanded: Expanded,
    /// 0, 1 or 2.
    pub border: u8,
    /// `-t`, `\t`: no header, no footer.
    pub tuples_only: bool,
    /// `\pset footer`: the `(n rows)` line.
    pub footer: bool,
    /// `\pset null`.
    pub null: String,
    pub field_sep: Separator,
    pub record_sep: Separator,
    pub csv_field_sep: char,
    /// `\pset title` / `\C`.
    pub title: Option<String>,
    pub line_style: LineStyle,
    pub pager: PagerUse,
    pub pager_min_lines: u32,
    pub numeric_locale: bool,
    /// `\pset columns`: 0 = the terminal's width.
    pub columns: u32,
}

impl Default for PrintOpt {
    fn default() -> Self {
        PrintOpt {
            format: Format::Aligned,
            expanded: Expanded::Off,
            border: 1,
            tuples_only: false,
            footer: true,
            null: String::new(),
            field_sep: Separator {
                text: "|".into(),
                zero: false,
            },
            record_sep: Separator {
                text: "\n".into(),
                zero: false,
            },
            csv_field_sep: ',',
            title: None,
            line_style: LineStyle::Ascii,
            pager: PagerUse::On,
            pager_min_lines: 0,
            numeric_locale: false,
            columns: 0,
        }
    }
}

impl PrintOpt {
    /// `\pset NAME [VALUE]` (and the shortcuts `\a`, `\t`, `\x`, `\f`, `\C`
    /// map onto it): sets the option and returns the line psql prints for
    /// it ("Border style is 2."), or psql's error message.
    pub fn pset(&mut self, name: &str, value: Option<&str>) -> Result<String, String> {
        let _ = (name, value);
        Err(format!("\\pset: unknown option: {name}"))
    }
}

/// How a column's values are aligned (psql: numbers right, the rest left).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// The alignment psql gives a column of this type OID.
pub fn align_for_type(oid: u32) -> Align {
    // int8, int2, int4, oid, xid, cid, float4, float8, money, numeric, xid8
    match oid {
        20 | 21 | 23 | 26 | 28 | 29 | 700 | 701 | 790 | 1700 | 5069 => Align::Right,
        _ => Align::Left,
    }
}

/// One table to print: a query's result, or a describe command's.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// Printed above the table (describe commands, `\pset title`).
    pub title: Option<String>,
    pub headers: Vec<String>,
    pub aligns: Vec<Align>,
    /// `None` is SQL NULL.
    pub rows: Vec<Vec<Option<String>>>,
    /// `None`: the default footer, `(n rows)`; `Some`: these lines
    /// instead (describe's "Indexes:" …).
    pub footers: Option<Vec<String>>,
}

/// Where output goes: standard output (through a pager when psql would
/// use one), a file, or a pipe (`\o |cmd`).
pub struct Output {
    inner: Box<dyn Write>,
}

impl Output {
    pub fn stdout() -> Output {
        Output {
            inner: Box::new(io::stdout()),
        }
    }

    /// `\o FILE`, `-o FILE`: output to a file (created or truncated).
    pub fn file(path: &std::path::Path) -> io::Result<Output> {
        Ok(Output {
            inner: Box::new(std::fs::File::create(path)?),
        })
    }

    /// `\o |COMMAND`: output to a shell command's standard input.
    pub fn pipe(command: &str) -> io::Result<Output> {
        let _ = command;
        Err(io::Error::other("\\o |command is not supported yet"))
    }

    /// Prints a table with the options, through the pager when standard
    /// output is a terminal and the table is taller than it.
    pub fn print_table(&mut self, opt: &PrintOpt, table: &Table) -> io::Result<()> {
        let _ = opt;
        for row in &table.rows {
            let cells: Vec<&str> = row.iter().map(|c| c.as_deref().unwrap_or("")).collect();
            writeln!(self.inner, "{}", cells.join("|"))?;
        }
        Ok(())
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
