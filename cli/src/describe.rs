//! `\d`, `\dt` and `\d NAME`: lists of relations and the columns of one,
//! laid out like psql's.
//!
//! psql builds these from catalog *functions* (`format_type`,
//! `pg_get_userbyid`, `pg_table_is_visible`, …). Here they are plain
//! SELECTs of `pg_catalog` tables and `information_schema` views, with
//! parameters for every name the user typed: the broker's SQL guard checks
//! these statements like any other, and plain catalog reads are what it
//! lets through in a read session. Every column is cast to `text` or `int`
//! because `information_schema` uses domains the broker does not map.

use crate::output;
use iam_pgconnect::{Column, Connection, Error, ToParam};
use serde_json::Value;

/// Which relations a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// `\dt`: tables (and partitioned tables).
    Tables,
    /// `\d`: also views, materialized views, sequences, foreign tables.
    Relations,
}

/// Folds one identifier as PostgreSQL does: `"Quoted"` keeps its case
/// (with `""` for a quote), anything else is lower-cased.
fn fold(part: &str) -> (String, bool) {
    match part
        .strip_prefix('"')
        .and_then(|p| p.strip_suffix('"'))
        .filter(|_| part.len() >= 2)
    {
        Some(inner) => (inner.replace("\"\"", "\""), true),
        None => (part.to_lowercase(), false),
    }
}

/// Splits `schema.name` at the first dot outside double quotes.
fn split_qualified(name: &str) -> (Option<&str>, &str) {
    let mut quoted = false;
    for (i, c) in name.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '.' if !quoted => return (Some(&name[..i]), &name[i + 1..]),
            _ => {}
        }
    }
    (None, name)
}

/// A psql pattern part as a `LIKE` pattern: `*` → `%`, `?` → `_`, and
/// the `LIKE` specials escaped. Quoted parts match literally.
fn like_pattern(part: &str) -> String {
    let (text, quoted) = fold(part);
    let mut out = String::new();
    for c in text.chars() {
        match c {
            '\\' | '%' | '_' => {
                out.push('\\');
                out.push(c);
            }
            '*' if !quoted => out.push('%'),
            '?' if !quoted => out.push('_'),
            c => out.push(c),
        }
    }
    out
}

/// Renders rows under a centered title, like psql's catalog listings.
/// `footer` keeps the `(n rows)` line.
fn titled(title: &str, columns: &[Column], rows: &[Vec<Value>], footer: bool) -> String {
    let body = output::table(columns, rows);
    let mut lines: Vec<&str> = body.lines().collect();
    if !footer {
        lines.pop();
    }
    // The separator line is never trimmed, so it has the table's width.
    let width = lines.get(1).map_or(0, |l| l.chars().count());
    let pad = width.saturating_sub(title.chars().count()) / 2;
    let mut out = format!("{}{title}\n", " ".repeat(pad));
    for line in lines {
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn text_columns(names: &[&str]) -> Vec<Column> {
    names
        .iter()
        .map(|n| Column {
            name: (*n).to_owned(),
            type_name: "text".to_owned(),
            oid: Some(25),
        })
        .collect()
}

fn rows(
    conn: &mut Connection,
    sql: &str,
    params: &[&dyn ToParam],
) -> Result<Vec<Vec<Value>>, Error> {
    Ok(conn
        .query(sql, params)?
        .into_iter()
        .map(|r| r.into_values())
        .collect())
}

/// `\d [PATTERN]` and `\dt [PATTERN]`.
pub fn list(
    conn: &mut Connection,
    listing: Listing,
    pattern: Option<&str>,
) -> Result<String, Error> {
    let (schema, name) = match pattern {
        Some(p) => split_qualified(p),
        None => (None, "*"),
    };
    let schema = like_pattern(schema.unwrap_or("*"));
    let name = like_pattern(name);
    let kinds = match listing {
        Listing::Tables => "'r', 'p'",
        Listing::Relations => "'r', 'p', 'v', 'm', 'S', 'f'",
    };
    let sql = format!(
        "SELECT n.nspname::text AS \"Schema\", c.relname::text AS \"Name\", \
                CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table' \
                     WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' \
                     WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign table' END AS \"Type\", \
                r.rolname::text AS \"Owner\" \
         FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_catalog.pg_roles r ON r.oid = c.relowner \
         WHERE c.relkind IN ({kinds}) \
           AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema' \
           AND n.nspname::text LIKE $1::text AND c.relname::text LIKE $2::text \
         ORDER BY 1, 2"
    );
    let found = rows(conn, &sql, &[&schema, &name])?;
    if found.is_empty() {
        return Ok(match pattern {
            Some(p) => format!("Did not find any relation named \"{p}\".\n"),
            None => "Did not find any relations.\n".to_owned(),
        });
    }
    Ok(titled(
        "List of relations",
        &text_columns(&["Schema", "Name", "Type", "Owner"]),
        &found,
        true,
    ))
}

/// The type of an `information_schema.columns` row as psql's
/// `format_type` spells it (`character varying(255)`, `numeric(10,2)`,
/// `text[]`).
fn type_name(
    data_type: &str,
    udt_name: &str,
    length: Option<i64>,
    precision: Option<i64>,
    scale: Option<i64>,
) -> String {
    match (data_type, length, precision) {
        ("character varying" | "character" | "bit" | "bit varying", Some(n), _) => {
            format!("{data_type}({n})")
        }
        ("numeric", _, Some(p)) => format!("numeric({p},{})", scale.unwrap_or(0)),
        ("ARRAY", _, _) => {
            let element = udt_name.strip_prefix('_').unwrap_or(udt_name);
            let element = match element {
                "int2" => "smallint",
                "int4" => "integer",
                "int8" => "bigint",
                "float4" => "real",
                "float8" => "double precision",
                "bool" => "boolean",
                "varchar" => "character varying",
                "bpchar" => "character",
                "timestamp" => "timestamp without time zone",
                "timestamptz" => "timestamp with time zone",
                "time" => "time without time zone",
                "timetz" => "time with time zone",
                other => other,
            };
            format!("{element}[]")
        }
        ("USER-DEFINED", _, _) => udt_name.to_owned(),
        _ => data_type.to_owned(),
    }
}

fn str_at(row: &[Value], i: usize) -> &str {
    row.get(i).and_then(Value::as_str).unwrap_or("")
}

fn int_at(row: &[Value], i: usize) -> Option<i64> {
    row.get(i).and_then(Value::as_i64)
}

/// `\d NAME`: columns with type, collation, nullability and default, then
/// the indexes.
pub fn describe(conn: &mut Connection, name: &str) -> Result<String, Error> {
    let (schema, table) = split_qualified(name);
    let table = fold(table).0;
    let schema = schema.map(|s| fold(s).0);
    // Without a schema, the table in `public` wins, else the first
    // schema by name: psql would follow search_path, which takes a
    // function call to read.
    let found = rows(
        conn,
        "SELECT table_schema::text, table_type::text \
         FROM information_schema.tables \
         WHERE table_name::text = $1::text \
           AND ($2::text = '' OR table_schema::text = $2::text) \
           AND table_schema !~ '^pg_' AND table_schema <> 'information_schema' \
         ORDER BY table_schema <> 'public', table_schema \
         LIMIT 1",
        &[&table, &schema.clone().unwrap_or_default()],
    )?;
    let Some(first) = found.first() else {
        return Ok(format!("Did not find any relation named \"{name}\".\n"));
    };
    let schema = str_at(first, 0).to_owned();
    let kind = match str_at(first, 1) {
        "VIEW" => "View",
        "FOREIGN" => "Foreign table",
        _ => "Table",
    };
    let columns = rows(
        conn,
        "SELECT column_name::text, data_type::text, udt_name::text, \
                character_maximum_length::int, numeric_precision::int, numeric_scale::int, \
                collation_name::text, is_nullable::text, column_default::text, \
                is_identity::text, identity_generation::text, \
                is_generated::text, generation_expression::text \
         FROM information_schema.columns \
         WHERE table_schema::text = $1::text AND table_name::text = $2::text \
         ORDER BY ordinal_position",
        &[&schema, &table],
    )?;
    let shown: Vec<Vec<Value>> = columns
        .iter()
        .map(|c| {
            let data_type = str_at(c, 1);
            let precision = (data_type == "numeric").then(|| int_at(c, 4)).flatten();
            let default = if str_at(c, 9) == "YES" {
                format!("generated {} as identity", str_at(c, 10).to_lowercase())
            } else if str_at(c, 11) == "ALWAYS" {
                format!("generated always as ({}) stored", str_at(c, 12))
            } else {
                str_at(c, 8).to_owned()
            };
            vec![
                Value::from(str_at(c, 0)),
                Value::from(type_name(
                    data_type,
                    str_at(c, 2),
                    int_at(c, 3),
                    precision,
                    int_at(c, 5),
                )),
                Value::from(str_at(c, 6)),
                Value::from(if str_at(c, 7) == "NO" { "not null" } else { "" }),
                Value::from(default),
            ]
        })
        .collect();
    let mut out = titled(
        &format!("{kind} \"{schema}.{table}\""),
        &text_columns(&["Column", "Type", "Collation", "Nullable", "Default"]),
        &shown,
        false,
    );

    let indexes = rows(
        conn,
        "SELECT i.indexname::text, x.indisprimary, x.indisunique, i.indexdef::text \
         FROM pg_catalog.pg_indexes i \
         JOIN pg_catalog.pg_namespace n ON n.nspname = i.schemaname \
         JOIN pg_catalog.pg_class c ON c.relname = i.indexname AND c.relnamespace = n.oid \
         JOIN pg_catalog.pg_index x ON x.indexrelid = c.oid \
         WHERE i.schemaname::text = $1::text AND i.tablename::text = $2::text \
         ORDER BY x.indisprimary DESC, x.indisunique DESC, i.indexname",
        &[&schema, &table],
    )?;
    if !indexes.is_empty() {
        out.push_str("Indexes:\n");
        for index in &indexes {
            let kind = match (index.get(1), index.get(2)) {
                (Some(Value::Bool(true)), _) => "PRIMARY KEY, ",
                (_, Some(Value::Bool(true))) => "UNIQUE, ",
                _ => "",
            };
            // `CREATE INDEX … ON t USING btree (col)` → `btree (col)`.
            let definition = str_at(index, 3);
            let method = definition
                .split_once(" USING ")
                .map_or(definition, |(_, m)| m);
            out.push_str(&format!("    \"{}\" {kind}{method}\n", str_at(index, 0)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fold_like_postgresql() {
        assert_eq!(fold("IDM_Identity"), ("idm_identity".into(), false));
        assert_eq!(fold("\"IdM\"\"x\""), ("IdM\"x".into(), true));
        assert_eq!(split_qualified("public.t"), (Some("public"), "t"));
        assert_eq!(split_qualified("\"a.b\".t"), (Some("\"a.b\""), "t"));
        assert_eq!(split_qualified("t"), (None, "t"));
    }

    #[test]
    fn patterns_become_like_patterns() {
        assert_eq!(like_pattern("idm_*"), "idm\\_%");
        assert_eq!(like_pattern("A?c"), "a_c");
        assert_eq!(like_pattern("\"A*%\""), "A*\\%");
        assert_eq!(like_pattern("*"), "%");
    }

    #[test]
    fn types_as_psql_spells_them() {
        assert_eq!(
            type_name("character varying", "varchar", Some(255), None, None),
            "character varying(255)"
        );
        assert_eq!(
            type_name("character varying", "varchar", None, None, None),
            "character varying"
        );
        assert_eq!(
            type_name("numeric", "numeric", None, Some(10), Some(2)),
            "numeric(10,2)"
        );
        assert_eq!(type_name("numeric", "numeric", None, None, None), "numeric");
        assert_eq!(type_name("ARRAY", "_int4", None, None, None), "integer[]");
        assert_eq!(type_name("ARRAY", "_uuid", None, None, None), "uuid[]");
        assert_eq!(
            type_name("USER-DEFINED", "citext", None, None, None),
            "citext"
        );
        assert_eq!(
            type_name("timestamp without time zone", "timestamp", None, None, None),
            "timestamp without time zone"
        );
    }

    #[test]
    fn titles_are_centered_and_footers_optional() {
        let columns = text_columns(&["Column", "Type"]);
        let rows = vec![vec![Value::from("id"), Value::from("uuid")]];
        let out = titled("Table \"public.t\"", &columns, &rows, false);
        assert_eq!(
            out,
            "Table \"public.t\"\n Column | Type\n--------+------\n id     | uuid\n"
        );
        assert!(titled("x", &columns, &rows, true).ends_with("(1 row)\n"));
    }
}

/// Runs one of psql's describe commands (`\d`, `\d+`, `\dt`, `\di`, `\l`,
/// `\du`, `\sf`, …) and prints its tables to `out` with `opt`, as psql 15
/// does. `cmd` is the command name without the backslash and with its
/// modifiers (`d`, `dt+`, `dtS`, `l+`, `sf`), `args` its arguments
/// (patterns), already variable-substituted. `None` when `cmd` is not a
/// describe command.
///
/// SKELETON: the interface the script engine calls; the implementation
/// replaces this body.
#[allow(dead_code)]
pub fn run(
    conn: &mut Connection,
    cmd: &str,
    args: &[String],
    opt: &crate::print::PrintOpt,
    out: &mut crate::print::Output,
) -> Option<Result<(), Error>> {
    let _ = (conn, cmd, args, opt, out);
    None
}
