//! Result formats: a psql-like aligned table, JSON, and CSV.
//!
//! Values arrive as JSON (see the type table in `docs/protocol.md`). In the
//! table and CSV a value is shown as text: `NULL` as nothing, booleans as
//! psql's `t`/`f`, numbers and strings as they are, arrays and JSON values
//! as compact JSON. JSON output keeps the values as received.

use iam_pgconnect::Column;
use serde_json::Value;
use std::io::{self, Write};

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns with a header and a row count, like psql.
    Table,
    /// One JSON array of objects per statement that returns rows.
    Json,
    /// A header line and one line per row (RFC 4180 quoting).
    Csv,
}

/// A value as text for the table and CSV; `None` for `NULL`.
pub fn text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::Bool(b) => Some(if *b { "t" } else { "f" }.to_owned()),
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Array(_) | Value::Object(_) => Some(value.to_string()),
    }
}

/// PostgreSQL types psql aligns to the right.
fn is_numeric_type(type_name: &str) -> bool {
    matches!(
        type_name,
        "int2" | "int4" | "int8" | "float4" | "float8" | "numeric" | "oid" | "money"
    )
}

/// Commands whose tag carries a row count (`UPDATE 3`); others print the
/// tag alone (`CREATE TABLE`).
fn tag_has_count(command: &str) -> bool {
    matches!(
        command,
        "SELECT" | "INSERT" | "UPDATE" | "DELETE" | "MERGE" | "FETCH" | "MOVE" | "COPY"
    )
}

/// The line psql prints for a statement without result columns:
/// `UPDATE 3`, `INSERT 0 1` (the 0 is the OID PostgreSQL no longer
/// assigns, still in the tag), `CREATE TABLE`.
pub fn command_tag(command: &str, rows: u64) -> String {
    if command == "INSERT" {
        format!("INSERT 0 {rows}")
    } else if tag_has_count(command) {
        format!("{command} {rows}")
    } else {
        command.to_owned()
    }
}

fn width(s: &str) -> usize {
    // Display columns as psql counts them (CJK and emoji two, combining
    // marks none).
    crate::print::str_width(s)
}

fn pad_right(out: &mut String, s: &str, w: usize) {
    out.push_str(s);
    out.extend(std::iter::repeat_n(' ', w.saturating_sub(width(s))));
}

fn pad_left(out: &mut String, s: &str, w: usize) {
    out.extend(std::iter::repeat_n(' ', w.saturating_sub(width(s))));
    out.push_str(s);
}

fn center(out: &mut String, s: &str, w: usize) {
    let room = w.saturating_sub(width(s));
    out.extend(std::iter::repeat_n(' ', room / 2));
    out.push_str(s);
    out.extend(std::iter::repeat_n(' ', room - room / 2));
}

/// Renders a result as psql's aligned format:
///
/// ```text
///  id | username
/// ----+----------
///   1 | admin
/// (1 row)
/// ```
///
/// A value with line breaks takes several lines, each but the last marked
/// with `+` as psql does. Trailing spaces are trimmed from every line.
pub fn table(columns: &[Column], rows: &[Vec<Value>]) -> String {
    // Each cell as its lines of text.
    let cells: Vec<Vec<Vec<String>>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|v| {
                    let t = text(v).unwrap_or_default();
                    t.split('\n')
                        .map(|l| l.trim_end_matches('\r').to_owned())
                        .collect()
                })
                .collect()
        })
        .collect();
    let mut widths: Vec<usize> = columns.iter().map(|c| width(&c.name)).collect();
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            for line in cell {
                *w = (*w).max(width(line));
            }
        }
    }
    let right: Vec<bool> = columns
        .iter()
        .map(|c| is_numeric_type(&c.type_name))
        .collect();

    let mut out = String::new();
    let mut line = String::new();
    let finish_line = |line: &mut String, out: &mut String| {
        out.push_str(line.trim_end());
        out.push('\n');
        line.clear();
    };

    for (i, (column, &w)) in columns.iter().zip(&widths).enumerate() {
        if i > 0 {
            line.push('|');
        }
        line.push(' ');
        center(&mut line, &column.name, w);
        line.push(' ');
    }
    finish_line(&mut line, &mut out);
    for (i, &w) in widths.iter().enumerate() {
        if i > 0 {
            line.push('+');
        }
        line.extend(std::iter::repeat_n('-', w + 2));
    }
    finish_line(&mut line, &mut out);

    for row in &cells {
        let height = row.iter().map(Vec::len).max().unwrap_or(1);
        for l in 0..height {
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    line.push('|');
                }
                line.push(' ');
                let part = cell.get(l).map_or("", String::as_str);
                if right[i] {
                    pad_left(&mut line, part, widths[i]);
                } else {
                    pad_right(&mut line, part, widths[i]);
                }
                // psql marks a value that continues on the next line.
                line.push(if l + 1 < cell.len() { '+' } else { ' ' });
            }
            finish_line(&mut line, &mut out);
        }
    }
    let n = rows.len();
    out.push_str(&format!("({n} {})\n", if n == 1 { "row" } else { "rows" }));
    out
}

/// One CSV field, quoted when RFC 4180 requires it. `NULL` is an empty,
/// unquoted field and an empty string is `""`, as in `psql --csv`, so the
/// two stay distinguishable.
pub fn csv_field(value: Option<&str>) -> String {
    match value {
        None => String::new(),
        Some("") => "\"\"".to_owned(),
        Some(s) if s.contains([',', '"', '\n', '\r']) => {
            format!("\"{}\"", s.replace('"', "\"\""))
        }
        Some(s) => s.to_owned(),
    }
}

/// Writes one CSV record, `\n`-terminated.
pub fn csv_record<'a>(
    out: &mut impl Write,
    fields: impl IntoIterator<Item = Option<&'a str>>,
) -> io::Result<()> {
    let line: Vec<String> = fields.into_iter().map(csv_field).collect();
    writeln!(out, "{}", line.join(","))
}

/// Prints one statement's result in a format, streaming where the format
/// allows (CSV and JSON); the table needs every row to size its columns.
pub struct ResultPrinter<'w, W: Write> {
    format: Format,
    out: &'w mut W,
    columns: Vec<Column>,
    buffered: Vec<Vec<Value>>,
    count: u64,
}

impl<'w, W: Write> ResultPrinter<'w, W> {
    /// Starts a result with these columns. Nothing is printed for a
    /// statement without columns until [`ResultPrinter::finish`].
    pub fn begin(format: Format, out: &'w mut W, columns: &[Column]) -> io::Result<Self> {
        if !columns.is_empty() {
            match format {
                Format::Table => {}
                Format::Json => out.write_all(b"[")?,
                Format::Csv => csv_record(out, columns.iter().map(|c| Some(c.name.as_str())))?,
            }
        }
        Ok(ResultPrinter {
            format,
            out,
            columns: columns.to_vec(),
            buffered: Vec::new(),
            count: 0,
        })
    }

    /// Adds a row (its values in column order).
    pub fn row(&mut self, values: Vec<Value>) -> io::Result<()> {
        self.count += 1;
        match self.format {
            Format::Table => self.buffered.push(values),
            Format::Json => {
                let sep = if self.count == 1 { "\n" } else { ",\n" };
                self.out.write_all(sep.as_bytes())?;
                // Written by hand rather than through a map so that keys
                // keep the column order.
                self.out.write_all(b"{")?;
                for (i, (column, value)) in self.columns.iter().zip(&values).enumerate() {
                    if i > 0 {
                        self.out.write_all(b",")?;
                    }
                    serde_json::to_writer(&mut *self.out, &column.name)?;
                    self.out.write_all(b":")?;
                    serde_json::to_writer(&mut *self.out, value)?;
                }
                self.out.write_all(b"}")?;
            }
            Format::Csv => {
                let texts: Vec<Option<String>> = values.iter().map(text).collect();
                csv_record(self.out, texts.iter().map(Option::as_deref))?;
            }
        }
        Ok(())
    }

    /// Ends the result. `command` and `rows` are the broker's final frame.
    /// Statements without columns print their command tag in the table
    /// format and nothing in JSON and CSV (their outcome is the exit status).
    pub fn finish(self, command: &str, rows: u64) -> io::Result<()> {
        if self.columns.is_empty() {
            if self.format == Format::Table && !command.is_empty() {
                writeln!(self.out, "{}", command_tag(command, rows))?;
            }
            return Ok(());
        }
        match self.format {
            Format::Table => {
                let rendered = table(&self.columns, &self.buffered);
                self.out.write_all(rendered.as_bytes())?;
                self.out.write_all(b"\n")?;
            }
            Format::Json => {
                let end: &[u8] = if self.count == 0 { b"]\n" } else { b"\n]\n" };
                self.out.write_all(end)?;
            }
            Format::Csv => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lines(lines: &[&str]) -> String {
        lines.iter().map(|l| format!("{l}\n")).collect()
    }

    fn cols(spec: &[(&str, &str)]) -> Vec<Column> {
        spec.iter()
            .map(|(n, t)| Column {
                name: (*n).into(),
                type_name: (*t).into(),
                oid: None,
            })
            .collect()
    }

    #[test]
    fn table_layout_like_psql() {
        let columns = cols(&[
            ("id", "int8"),
            ("username", "varchar"),
            ("disabled", "bool"),
        ]);
        let rows = vec![
            vec![json!(1), json!("admin"), json!(false)],
            vec![json!(12345), json!("Jiří Dvořák"), Value::Null],
        ];
        let expected = lines(&[
            "  id   |  username   | disabled",
            "-------+-------------+----------",
            "     1 | admin       | f",
            " 12345 | Jiří Dvořák |",
            "(2 rows)",
        ]);
        assert_eq!(table(&columns, &rows), expected);
    }

    #[test]
    fn table_widths_count_characters_not_bytes() {
        let columns = cols(&[("příjmení", "text"), ("n", "int4")]);
        let rows = vec![vec![json!("Šťastný"), json!(7)]];
        let expected = lines(&[
            " příjmení | n",
            "----------+---",
            " Šťastný  | 7",
            "(1 row)",
        ]);
        assert_eq!(table(&columns, &rows), expected);
    }

    #[test]
    fn table_multiline_values_are_marked() {
        let columns = cols(&[("description", "text"), ("x", "text")]);
        let rows = vec![vec![json!("first\nsecond line"), json!("a")]];
        let expected = lines(&[
            " description | x",
            "-------------+---",
            " first      +| a",
            " second line |",
            "(1 row)",
        ]);
        assert_eq!(table(&columns, &rows), expected);
    }

    #[test]
    fn table_without_rows_and_with_json_values() {
        let columns = cols(&[("a", "text")]);
        assert_eq!(table(&columns, &[]), " a\n---\n(0 rows)\n");
        let columns = cols(&[("tags", "_text"), ("doc", "jsonb"), ("amount", "numeric")]);
        let rows = vec![vec![json!(["x", "y"]), json!({"k": 1}), json!("12.50")]];
        let out = table(&columns, &rows);
        assert!(out.contains(r#" ["x","y"] | {"k":1} |  12.50"#), "{out}");
    }

    #[test]
    fn csv_quoting() {
        assert_eq!(csv_field(None), "");
        assert_eq!(csv_field(Some("")), "\"\"");
        assert_eq!(csv_field(Some("plain")), "plain");
        assert_eq!(csv_field(Some("Dvořák")), "Dvořák");
        assert_eq!(csv_field(Some("a,b")), "\"a,b\"");
        assert_eq!(csv_field(Some("say \"hi\"")), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field(Some("two\nlines")), "\"two\nlines\"");
        assert_eq!(csv_field(Some("cr\r")), "\"cr\r\"");
        assert_eq!(csv_field(Some(" spaced ")), " spaced ");
    }

    fn printed(format: Format, columns: &[Column], rows: Vec<Vec<Value>>) -> String {
        let mut out = Vec::new();
        let mut p = ResultPrinter::begin(format, &mut out, columns).unwrap();
        let n = rows.len() as u64;
        for values in rows {
            p.row(values).unwrap();
        }
        p.finish("SELECT", n).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn csv_output() {
        let columns = cols(&[("username", "text"), ("email", "text"), ("ok", "bool")]);
        let out = printed(
            Format::Csv,
            &columns,
            vec![
                vec![json!("admin"), Value::Null, json!(true)],
                vec![json!("Novák, Jan"), json!(""), json!(false)],
            ],
        );
        assert_eq!(out, "username,email,ok\nadmin,,t\n\"Novák, Jan\",\"\",f\n");
    }

    #[test]
    fn json_output_keeps_values_and_column_order() {
        let columns = cols(&[("z", "text"), ("a", "int8"), ("n", "text")]);
        let out = printed(
            Format::Json,
            &columns,
            vec![
                vec![json!("Jiří"), json!(1), Value::Null],
                vec![json!("x"), json!(2), json!("y")],
            ],
        );
        assert_eq!(
            out,
            "[\n{\"z\":\"Jiří\",\"a\":1,\"n\":null},\n{\"z\":\"x\",\"a\":2,\"n\":\"y\"}\n]\n"
        );
        let parsed: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed[1]["a"], 2);
        assert_eq!(printed(Format::Json, &columns, vec![]), "[]\n");
    }

    #[test]
    fn commands_without_columns() {
        for (format, expected) in [
            (Format::Table, "UPDATE 3\n"),
            (Format::Json, ""),
            (Format::Csv, ""),
        ] {
            let mut out = Vec::new();
            let p = ResultPrinter::begin(format, &mut out, &[]).unwrap();
            p.finish("UPDATE", 3).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), expected);
        }
        assert_eq!(command_tag("CREATE TABLE", 0), "CREATE TABLE");
        assert_eq!(command_tag("INSERT", 1), "INSERT 0 1");
        assert_eq!(command_tag("DELETE", 0), "DELETE 0");
    }
}
