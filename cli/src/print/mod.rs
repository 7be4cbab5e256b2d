//! psql's output, for `iam-pg`: the formats, borders and options of psql's
//! `\pset`, printed byte for byte as psql 15 prints them (its `print.c` is
//! the reference), and the destination they go to (standard output, a
//! pager, a file or a pipe from `\o` / `-o`).
//!
//! The formats: aligned (borders 0, 1, 2; line styles ascii, old-ascii,
//! unicode), wrapped, unaligned, CSV, each also expanded (`\x`), with
//! `\x auto`, titles, footers, `\pset null`, tuples only and psql's
//! display width of every character (`width`). HTML, LaTeX, asciidoc and
//! troff are not implemented (`\pset format html` says so).

mod aligned;
mod pset;
mod style;
mod width;
mod width_table;

pub use width::str_width;

use std::io::{self, IsTerminal, Write};
use std::process::{Child, ChildStdin, Command, Stdio};

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

#[cfg(test)]
impl Table {
    /// A table of a result's columns: headers, and the alignment psql
    /// gives each column's type (`None`: left).
    pub fn new(headers: Vec<String>, oids: &[Option<u32>]) -> Table {
        let aligns = headers
            .iter()
            .enumerate()
            .map(|(i, _)| {
                oids.get(i)
                    .copied()
                    .flatten()
                    .map_or(Align::Left, align_for_type)
            })
            .collect();
        Table {
            headers,
            aligns,
            ..Table::default()
        }
    }
}

/// A table ready to lay out: the options, and every cell as the text
/// printed (NULL already `\pset null`, numbers localized).
pub(crate) struct Content<'a> {
    opt: &'a PrintOpt,
    title: Option<&'a str>,
    headers: Vec<&'a str>,
    aligns: Vec<Align>,
    rows: Vec<Vec<String>>,
    footers: Option<&'a [String]>,
}

impl<'a> Content<'a> {
    fn new(opt: &'a PrintOpt, table: &'a Table) -> Content<'a> {
        let ncols = table.headers.len();
        let aligns: Vec<Align> = (0..ncols)
            .map(|i| table.aligns.get(i).copied().unwrap_or(Align::Left))
            .collect();
        let rows = table
            .rows
            .iter()
            .map(|row| {
                (0..ncols)
                    .map(|i| match row.get(i) {
                        Some(Some(v)) if opt.numeric_locale && aligns[i] == Align::Right => {
                            numeric_locale(v)
                        }
                        Some(Some(v)) => v.clone(),
                        _ => opt.null.clone(),
                    })
                    .collect()
            })
            .collect();
        Content {
            opt,
            title: table.title.as_deref().or(opt.title.as_deref()),
            headers: table.headers.iter().map(String::as_str).collect(),
            aligns,
            rows,
            footers: table.footers.as_deref(),
        }
    }

    /// The title, unless tuples only.
    fn title(&self) -> Option<&str> {
        self.title.filter(|_| !self.opt.tuples_only)
    }

    /// The footers printed under an aligned or unaligned table: the
    /// table's own, else `(n rows)` unless `\pset footer off`.
    fn footers_with_default(&self) -> Vec<String> {
        match self.footers {
            Some(f) => f.to_vec(),
            None if self.opt.footer => {
                let n = self.rows.len();
                vec![format!("({n} {})", if n == 1 { "row" } else { "rows" })]
            }
            None => Vec::new(),
        }
    }

    /// psql's estimate of the printed lines, to decide on the pager.
    fn pager_lines(&self, expanded: bool) -> usize {
        let mut lines = if expanded {
            (self.headers.len() + 1) * self.rows.len()
        } else {
            self.rows.len() + 1
        };
        if !self.opt.tuples_only {
            lines += self.footers.map_or(0, <[String]>::len);
        }
        lines
    }
}

/// `\pset numericlocale`: digits grouped by three with `,`, as psql does
/// in the C and English locales. Values that do not look like a number
/// (money) are left alone.
fn numeric_locale(v: &str) -> String {
    if !v.chars().all(|c| "0123456789+-.eE".contains(c)) {
        return v.to_owned();
    }
    let (sign, rest) = match v.strip_prefix(['-', '+']) {
        Some(rest) => (&v[..1], rest),
        None => ("", v),
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let mut out = String::from(sign);
    for (i, c) in rest[..digits].chars().enumerate() {
        if i > 0 && (digits - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out.push_str(&rest[digits..]);
    out
}

fn separator(out: &mut String, sep: &Separator) {
    if sep.zero {
        out.push('\0');
    } else {
        out.push_str(&sep.text);
    }
}

/// The unaligned format (`-A`): fields joined by `\pset fieldsep`,
/// records by `recordsep`.
fn unaligned(out: &mut String, c: &Content) {
    let opt = c.opt;
    let mut need_recordsep = false;
    if let Some(title) = c.title() {
        out.push_str(title);
        separator(out, &opt.record_sep);
    }
    if !opt.tuples_only {
        for (i, h) in c.headers.iter().enumerate() {
            if i > 0 {
                separator(out, &opt.field_sep);
            }
            out.push_str(h);
        }
        need_recordsep = true;
    }
    for row in &c.rows {
        for (i, v) in row.iter().enumerate() {
            if need_recordsep {
                separator(out, &opt.record_sep);
                need_recordsep = false;
            }
            out.push_str(v);
            if i + 1 < row.len() {
                separator(out, &opt.field_sep);
            } else {
                need_recordsep = true;
            }
        }
    }
    if !opt.tuples_only {
        for f in c.footers_with_default() {
            if need_recordsep {
                separator(out, &opt.record_sep);
            }
            out.push_str(&f);
            need_recordsep = true;
        }
    }
    // The last record ends with a newline whatever the record separator,
    // except a zero byte one.
    if need_recordsep {
        if opt.record_sep.zero {
            out.push('\0');
        } else {
            out.push('\n');
        }
    }
}

/// Unaligned and expanded: `name|value` lines, records separated by an
/// empty record.
fn unaligned_vertical(out: &mut String, c: &Content) {
    let opt = c.opt;
    let mut need_recordsep = false;
    if let Some(title) = c.title() {
        out.push_str(title);
        need_recordsep = true;
    }
    for row in &c.rows {
        for (i, v) in row.iter().enumerate() {
            if need_recordsep {
                separator(out, &opt.record_sep);
                separator(out, &opt.record_sep);
                need_recordsep = false;
            }
            out.push_str(c.headers[i]);
            separator(out, &opt.field_sep);
            out.push_str(v);
            if i + 1 < row.len() {
                separator(out, &opt.record_sep);
            } else {
                need_recordsep = true;
            }
        }
    }
    if !opt.tuples_only {
        if let Some(footers) = c.footers {
            separator(out, &opt.record_sep);
            for f in footers {
                separator(out, &opt.record_sep);
                out.push_str(f);
            }
        }
    }
    if need_recordsep {
        if opt.record_sep.zero {
            out.push('\0');
        } else {
            out.push('\n');
        }
    }
}

/// A CSV field, quoted as `psql --csv` quotes: when it holds the
/// separator, a quote, CR or LF, is exactly `\.`, or the separator is
/// `\` or `.`.
fn csv_field(out: &mut String, v: &str, sep: char) {
    if v.contains(sep) || v.contains(['\r', '\n', '"']) || v == "\\." || sep == '\\' || sep == '.' {
        out.push('"');
        out.push_str(&v.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(v);
    }
}

/// CSV: a header line unless tuples only, no title, no footer.
fn csv(out: &mut String, c: &Content) {
    let sep = c.opt.csv_field_sep;
    if !c.opt.tuples_only {
        for (i, h) in c.headers.iter().enumerate() {
            if i > 0 {
                out.push(sep);
            }
            csv_field(out, h, sep);
        }
        out.push('\n');
    }
    for row in &c.rows {
        for (i, v) in row.iter().enumerate() {
            csv_field(out, v, sep);
            out.push(if i + 1 < row.len() { sep } else { '\n' });
        }
    }
}

/// CSV and expanded: a `name,value` line per column.
fn csv_vertical(out: &mut String, c: &Content) {
    let sep = c.opt.csv_field_sep;
    for row in &c.rows {
        for (i, v) in row.iter().enumerate() {
            csv_field(out, c.headers[i], sep);
            out.push(sep);
            csv_field(out, v, sep);
            out.push('\n');
        }
    }
}

/// Lays a table out as psql prints it. `columns` is the width to fit
/// (`\x auto`, wrapped), 0 when unknown (output not to a terminal and no
/// `\pset columns`). Returns the text and psql's estimate of its lines
/// for the pager (`usize::MAX`: wider than the terminal).
pub fn render(opt: &PrintOpt, table: &Table, columns: usize) -> (String, usize) {
    let c = Content::new(opt, table);
    let mut out = String::new();
    let expanded = opt.expanded == Expanded::On;
    let lines = match opt.format {
        Format::Aligned | Format::Wrapped if expanded => aligned::vertical(&mut out, &c, columns),
        Format::Aligned | Format::Wrapped => aligned::text(&mut out, &c, columns),
        Format::Unaligned if expanded => {
            unaligned_vertical(&mut out, &c);
            c.pager_lines(true)
        }
        Format::Unaligned => {
            unaligned(&mut out, &c);
            c.pager_lines(false)
        }
        Format::Csv if expanded => {
            csv_vertical(&mut out, &c);
            c.pager_lines(true)
        }
        Format::Csv => {
            csv(&mut out, &c);
            c.pager_lines(false)
        }
    };
    (out, lines)
}

/// The terminal's size (columns, rows), if standard output is one.
fn terminal_size() -> Option<(usize, usize)> {
    let ws = rustix::termios::tcgetwinsize(io::stdout()).ok()?;
    Some((usize::from(ws.ws_col), usize::from(ws.ws_row)))
}

/// The width psql fits output to on a terminal: `\pset columns`, else
/// `$COLUMNS`, else the terminal's.
fn terminal_columns(opt: &PrintOpt) -> usize {
    if opt.columns > 0 {
        return opt.columns as usize;
    }
    let env = std::env::var("COLUMNS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    if env > 0 {
        return env;
    }
    terminal_size().map_or(0, |(cols, _)| cols)
}

/// The pager command: `$PSQL_PAGER`, else `$PAGER`, else `pager` (as
/// Debian's psql; `more` where there is none). `None` when the variable
/// is set but blank: no pager.
fn pager_command() -> Option<String> {
    let chosen = std::env::var("PSQL_PAGER")
        .ok()
        .or_else(|| std::env::var("PAGER").ok());
    match chosen {
        Some(p) if p.trim().is_empty() => None,
        Some(p) => Some(p),
        None => {
            let on_path = std::env::var_os("PATH").is_some_and(|path| {
                std::env::split_paths(&path).any(|d| d.join("pager").is_file())
            });
            Some(if on_path { "pager" } else { "more" }.to_owned())
        }
    }
}

/// Whether psql would page `lines` lines: the pager is on, standard
/// input and output are terminals, and the output is at least as tall as
/// the terminal (and `pager_min_lines`), or the pager is always used.
fn wants_pager(opt: &PrintOpt, lines: usize) -> bool {
    if opt.pager == PagerUse::Off || !io::stdin().is_terminal() || !io::stdout().is_terminal() {
        return false;
    }
    match terminal_size() {
        None => true,
        Some((_, rows)) => {
            opt.pager == PagerUse::Always
                || (lines >= rows && lines >= opt.pager_min_lines as usize)
        }
    }
}

/// Runs `command` with `sh -c`, its standard input a pipe.
fn spawn_shell(command: &str) -> io::Result<(Child, ChildStdin)> {
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::piped())
        .spawn()?;
    let stdin = child
        .stdin
        .take()
        .ok_or_else(|| io::Error::other("no pipe to the command"))?;
    Ok((child, stdin))
}

/// Prints a table to `out` as psql would: when `to_stdout` and standard
/// output is a terminal, fitted to its width (`\x auto`, wrapped) and
/// through the pager when psql would page it.
pub fn print_to(
    out: &mut dyn Write,
    opt: &PrintOpt,
    table: &Table,
    to_stdout: bool,
) -> io::Result<()> {
    let tty = to_stdout && io::stdout().is_terminal();
    let columns = if tty {
        terminal_columns(opt)
    } else {
        opt.columns as usize
    };
    let (text, lines) = render(opt, table, columns);
    if tty && wants_pager(opt, lines) {
        if let Some(command) = pager_command() {
            out.flush()?;
            // If the pager cannot start, print without it, as psql.
            if let Ok((mut child, mut stdin)) = spawn_shell(&command) {
                let written = stdin.write_all(text.as_bytes());
                drop(stdin);
                let _ = child.wait();
                return match written {
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
                    other => other,
                };
            }
        }
    }
    out.write_all(text.as_bytes())
}

/// The alignment of a result column: by its type OID (protocol version
/// 2), else by its type name.
pub fn align_for_column(column: &iam_pgconnect::Column) -> Align {
    match column.oid {
        Some(oid) => align_for_type(oid),
        None => match column.type_name.as_str() {
            "int2" | "int4" | "int8" | "float4" | "float8" | "numeric" | "oid" | "xid" | "xid8"
            | "cid" | "money" => Align::Right,
            _ => Align::Left,
        },
    }
}

/// Where output goes: standard output (through a pager when psql would
/// use one), a file, or a pipe (`\o |cmd`).
pub struct Output {
    inner: Box<dyn Write>,
    /// Standard output: the terminal's width applies, and the pager.
    is_stdout: bool,
    /// The command of `\o |cmd`, waited for when the output is dropped.
    child: Option<Child>,
}

impl Output {
    pub fn stdout() -> Output {
        Output {
            inner: Box::new(io::stdout()),
            is_stdout: true,
            child: None,
        }
    }

    /// Output to any writer, laid out as for a file (no terminal width,
    /// no pager).
    pub fn writer(w: impl Write + 'static) -> Output {
        Output {
            inner: Box::new(w),
            is_stdout: false,
            child: None,
        }
    }

    /// `\o FILE`, `-o FILE`: output to a file (created or truncated).
    pub fn file(path: &std::path::Path) -> io::Result<Output> {
        Ok(Output::writer(std::fs::File::create(path)?))
    }

    /// `\o |COMMAND`: output to a shell command's standard input; the
    /// command is waited for when the output is closed (dropped).
    pub fn pipe(command: &str) -> io::Result<Output> {
        let (child, stdin) = spawn_shell(command)?;
        Ok(Output {
            inner: Box::new(stdin),
            is_stdout: false,
            child: Some(child),
        })
    }

    /// Whether this is standard output (not `\o` elsewhere).
    pub fn is_stdout(&self) -> bool {
        self.is_stdout
    }

    /// Prints a table with the options, through the pager when standard
    /// output is a terminal and the table is taller (or wider) than it.
    pub fn print_table(&mut self, opt: &PrintOpt, table: &Table) -> io::Result<()> {
        let to_stdout = self.is_stdout;
        print_to(&mut self.inner, opt, table, to_stdout)
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

impl Drop for Output {
    fn drop(&mut self) {
        let _ = self.inner.flush();
        if let Some(mut child) = self.child.take() {
            // Close the pipe first so that the command sees its end.
            self.inner = Box::new(io::sink());
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two-row table whose output below was printed by psql 15.18
    /// (`SELECT 'short' AS a, E'a\nbb\nccc' AS "multi\nline header", 5 AS n
    /// UNION ALL SELECT E'x\ny', 'z', 100000`).
    fn multi() -> Table {
        let mut t = Table::new(
            vec!["a".into(), "multi\\nline header".into(), "n".into()],
            &[Some(25), Some(25), Some(23)],
        );
        t.rows = vec![
            vec![
                Some("short".into()),
                Some("a\nbb\nccc".into()),
                Some("5".into()),
            ],
            vec![Some("x\ny".into()), Some("z".into()), Some("100000".into())],
        ];
        t
    }

    fn with(settings: &[(&str, Option<&str>)]) -> PrintOpt {
        let mut opt = PrintOpt::default();
        for (name, value) in settings {
            opt.pset(name, *value).unwrap();
        }
        opt
    }

    fn show(settings: &[(&str, Option<&str>)], table: &Table) -> String {
        render(&with(settings), table, 0).0
    }

    #[test]
    fn aligned_with_continuation_marks() {
        assert_eq!(
            show(&[], &multi()),
            "   a   | multi\\nline header |   n    
-------+--------------------+--------
 short | a                 +|      5
       | bb                +| 
       | ccc                | 
 x    +| z                  | 100000
 y     |                    | 
(2 rows)

"
        );
    }

    #[test]
    fn unicode_border_2() {
        assert_eq!(
            show(
                &[("border", Some("2")), ("linestyle", Some("unicode"))],
                &multi()
            ),
            "┌───────┬────────────────────┬────────┐
│   a   │ multi\\nline header │   n    │
├───────┼────────────────────┼────────┤
│ short │ a                 ↵│      5 │
│       │ bb                ↵│        │
│       │ ccc                │        │
│ x    ↵│ z                  │ 100000 │
│ y     │                    │        │
└───────┴────────────────────┴────────┘
(2 rows)

"
        );
    }

    #[test]
    fn expanded_border_0_old_ascii() {
        let settings = [
            ("expanded", None),
            ("border", Some("0")),
            ("linestyle", Some("old-ascii")),
        ];
        assert_eq!(
            show(&settings, &multi()),
            "* Record 1              
a                  short
multi\\nline header a
                   bb
                   ccc
n                  5
* Record 2              
a                  x
                   y
multi\\nline header z
n                  100000

"
        );
    }

    #[test]
    fn empty_results() {
        let mut t = multi();
        t.rows.clear();
        assert_eq!(show(&[("expanded", None)], &t), "(0 rows)\n\n");
        assert_eq!(
            show(&[("format", Some("unaligned"))], &t),
            "a|multi\\nline header|n\n(0 rows)\n"
        );
        assert_eq!(show(&[("format", Some("unaligned")), ("t", None)], &t), "");
    }

    #[test]
    fn unaligned_with_zero_bytes() {
        let settings = [
            ("format", Some("unaligned")),
            ("fieldsep_zero", None),
            ("recordsep_zero", None),
        ];
        assert_eq!(
            show(&settings, &multi()),
            "a\0multi\\nline header\0n\0short\0a\nbb\nccc\u{0}5\0x\ny\0z\u{0}100000\0(2 rows)\0"
        );
    }

    #[test]
    fn csv_quotes_like_psql() {
        assert_eq!(
            show(&[("format", Some("csv"))], &multi()),
            "a,multi\\nline header,n\nshort,\"a\nbb\nccc\",5\n\"x\ny\",z,100000\n"
        );
        let mut t = Table::new(vec!["v".into()], &[None]);
        t.rows = vec![
            vec![Some("\\.".into())],
            vec![Some("a;b".into())],
            vec![Some("q\"".into())],
            vec![None],
            vec![Some(String::new())],
        ];
        assert_eq!(
            show(&[("format", Some("csv")), ("csv_fieldsep", Some(";"))], &t),
            "v\n\"\\.\"\n\"a;b\"\n\"q\"\"\"\n\n\n"
        );
    }

    #[test]
    fn null_title_and_footer() {
        let mut t = Table::new(vec!["x".into()], &[Some(23)]);
        t.rows = vec![vec![None]];
        assert_eq!(
            show(
                &[("null", Some("(null)")), ("title", Some("Nice title"))],
                &t
            ),
            "Nice title\n   x    \n--------\n (null)\n(1 row)\n\n"
        );
        assert_eq!(show(&[("footer", Some("off"))], &t), " x \n---\n  \n\n");
        assert_eq!(show(&[("t", None)], &t), "  \n\n");
    }

    #[test]
    fn expanded_auto_switches_when_too_wide() {
        let opt = with(&[("expanded", Some("auto"))]);
        let wide = render(&opt, &multi(), 20).0;
        assert!(wide.starts_with("-[ RECORD 1 ]"), "{wide}");
        let narrow = render(&opt, &multi(), 200).0;
        assert!(narrow.starts_with("   a   |"), "{narrow}");
        // Without a known width (not a terminal) psql never switches.
        assert!(render(&opt, &multi(), 0).0.starts_with("   a   |"));
    }

    #[test]
    fn numbers_grouped_for_numericlocale() {
        for (v, expected) in [
            ("1234567.891", "1,234,567.891"),
            ("-1000", "-1,000"),
            ("999", "999"),
            ("NaN", "NaN"),
            ("$1,000.00", "$1,000.00"),
            ("1e20", "1e20"),
        ] {
            assert_eq!(numeric_locale(v), expected);
        }
    }

    #[test]
    fn file_and_pipe_outputs() {
        let dir = std::env::temp_dir().join(format!("iam-pg-print-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut t = Table::new(vec!["n".into()], &[Some(23)]);
        t.rows = vec![vec![Some("7".into())]];
        let expected = " n \n---\n 7\n(1 row)\n\n";

        let file = dir.join("file.txt");
        let mut out = Output::file(&file).unwrap();
        assert!(!out.is_stdout());
        out.print_table(&PrintOpt::default(), &t).unwrap();
        drop(out);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), expected);

        // \o |cmd: the command gets the text; dropping the output waits
        // for it, so the file is complete afterwards.
        let piped = dir.join("piped.txt");
        let mut out = Output::pipe(&format!("tr n N > '{}'", piped.display())).unwrap();
        out.print_table(&PrintOpt::default(), &t).unwrap();
        writeln!(out, "tail").unwrap();
        drop(out);
        assert_eq!(
            std::fs::read_to_string(&piped).unwrap(),
            format!("{}tail\n", expected.replace('n', "N"))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn right_aligned_types() {
        for oid in [20, 21, 23, 26, 700, 701, 790, 1700] {
            assert_eq!(align_for_type(oid), Align::Right, "{oid}");
        }
        for oid in [16, 25, 1043, 1082, 1114, 3802, 2950] {
            assert_eq!(align_for_type(oid), Align::Left, "{oid}");
        }
    }
}
