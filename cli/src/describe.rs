//! psql's describe commands (`\d`, `\d+`, `\dt`, `\di`, `\dv`, `\dm`,
//! `\ds`, `\dn`, `\df`, `\dT`, `\du`/`\dg`, `\dp`, `\l`, `\dx`, `\sf`,
//! `\sv`), as psql 15 gives them for a PostgreSQL 15 server.
//!
//! The catalog queries are the ones psql 15 sends (`psql -E` shows them),
//! built here from the same parts, and run through the broker like any
//! other statement: the guard lets them through in a read session because
//! every function they call only reads. What psql computes on the client
//! (role attributes, index and trigger footers, partition lists) is done
//! here the same way. The result is a [`Table`] with psql's title, headers
//! and footers, printed by [`Output::print_table`] with the session's
//! `\pset` options.
//!
//! Patterns follow psql's `processSQLNamePattern`: `*` and `?` are
//! wildcards, other regular-expression characters keep their meaning, a dot
//! separates schema and name, double quotes keep case and make everything
//! inside literal, and an unqualified pattern matches only what the search
//! path makes visible.

use crate::print::{Align, Output, PrintOpt, Table};
use iam_pgconnect::{Connection, Error};
use std::io::Write;

/// One row of a catalog query, every value in PostgreSQL's text form.
type Row = Vec<Option<String>>;

/// Runs one of psql's describe commands (`\d`, `\d+`, `\dt`, `\di`, `\l`,
/// `\du`, `\sf`, …) and prints its tables to `out` with `opt`, as psql 15
/// does. `cmd` is the command name without the backslash and with its
/// modifiers (`d`, `dt+`, `dtS`, `l+`, `sf`), `args` its arguments
/// (patterns), already variable-substituted. `None` when `cmd` is not a
/// describe command.
///
/// What psql reports as an error of the command ("Did not find any
/// relation named …", an improper pattern) is written to standard error
/// and is `Ok(false)`, after which psql's `-c` exits 1 and `ON_ERROR_STOP`
/// stops; `Ok(true)` is success. `Err` is an error of the session or of
/// PostgreSQL.
pub fn run_status(
    conn: &mut Connection,
    cmd: &str,
    args: &[String],
    opt: &PrintOpt,
    out: &mut Output,
) -> Option<Result<bool, Error>> {
    let command = Command::parse(cmd)?;
    let mut ctx = Ctx { conn, opt, out };
    let result = ctx.dispatch(&command, args);
    Some(match result {
        Ok(()) => Ok(true),
        Err(Failed::Db(err)) => Err(err),
        Err(Failed::Said(message)) => {
            eprintln!("{message}");
            Ok(false)
        }
        Err(Failed::Noted(message)) => {
            eprintln!("{message}");
            Ok(true)
        }
        Err(Failed::Output(e)) => {
            eprintln!("iam-pg: error: cannot write the output: {e}");
            Ok(false)
        }
    })
}

/// Whether `cmd` (without the backslash) is a describe command [`run`]
/// handles.
pub fn is_describe(cmd: &str) -> bool {
    Command::parse(cmd).is_some()
}

/// The describe commands, for `\?` and tab completion.
pub const COMMANDS: &[&str] = &[
    "d", "df", "di", "dm", "dn", "dp", "ds", "dt", "dT", "du", "dg", "dv", "dx", "l", "sf", "sv",
    "z",
];

/// What a describe command is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Command {
    kind: Kind,
    /// `+`.
    verbose: bool,
    /// `S`: system objects too.
    system: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// `\d`, `\d NAME`.
    Describe,
    /// `\dt`, `\di`, `\dv`, `\dm`, `\ds`, `\dE` and combinations (`\dtv`):
    /// the relkind letters.
    Relations(String),
    Schemas,
    Functions,
    Types,
    Roles,
    Privileges,
    Databases,
    Extensions,
    ShowFunction,
    ShowView,
}

impl Command {
    fn parse(cmd: &str) -> Option<Command> {
        let (kind, modifiers) = if let Some(rest) = cmd.strip_prefix("sf") {
            (Kind::ShowFunction, rest)
        } else if let Some(rest) = cmd.strip_prefix("sv") {
            (Kind::ShowView, rest)
        } else if let Some(rest) = cmd.strip_prefix('l') {
            (Kind::Databases, rest)
        } else if let Some(rest) = cmd.strip_prefix('z') {
            (Kind::Privileges, rest)
        } else if let Some(rest) = cmd.strip_prefix('d') {
            let letters: String = rest
                .chars()
                .take_while(|c| !matches!(c, '+' | 'S'))
                .collect();
            let modifiers = &rest[letters.len()..];
            let kind = match letters.as_str() {
                "" => Kind::Describe,
                "n" => Kind::Schemas,
                "f" => Kind::Functions,
                "T" => Kind::Types,
                "u" | "g" => Kind::Roles,
                "p" => Kind::Privileges,
                "x" => Kind::Extensions,
                l if !l.is_empty() && l.chars().all(|c| "tivmsE".contains(c)) => {
                    Kind::Relations(l.to_owned())
                }
                _ => return None,
            };
            (kind, modifiers)
        } else {
            return None;
        };
        let mut command = Command {
            kind,
            verbose: false,
            system: false,
        };
        for c in modifiers.chars() {
            match c {
                '+' => command.verbose = true,
                'S' => command.system = true,
                _ => return None,
            }
        }
        Some(command)
    }
}

/// Why a describe command stopped.
enum Failed {
    Db(Error),
    /// A message psql prints as an error and goes on; the command failed.
    Said(String),
    /// A message psql prints as an error, yet the command succeeded (a
    /// list that found nothing: psql 15's listTables returns true).
    Noted(String),
    Output(std::io::Error),
}

impl From<Error> for Failed {
    fn from(err: Error) -> Self {
        Failed::Db(err)
    }
}

impl From<std::io::Error> for Failed {
    fn from(err: std::io::Error) -> Self {
        Failed::Output(err)
    }
}

type Res<T> = Result<T, Failed>;

// ---------------------------------------------------------------------
// Patterns

/// A string as an SQL literal (standard_conforming_strings is on in every
/// server the broker reaches).
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// One part of a psql pattern as a regular expression, anchored; `None`
/// when it matches everything (`*`).
fn pattern_part_regex(part: &str) -> Option<String> {
    let mut out = String::new();
    let mut quoted = false;
    let mut chars = part.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                out.push('"');
            }
            '"' => quoted = !quoted,
            '*' if !quoted => out.push_str(".*"),
            '?' if !quoted => out.push('.'),
            // `$` is never an anchor: names may contain it.
            '$' => out.push_str("\\$"),
            c if quoted && "|*+?()[]{}.^\\".contains(c) => {
                out.push('\\');
                out.push(c);
            }
            c if !quoted => out.extend(c.to_lowercase()),
            c => out.push(c),
        }
    }
    if out == ".*" {
        None
    } else {
        Some(format!("^({out})$"))
    }
}

/// Splits a pattern at the dots outside double quotes.
fn pattern_parts(pattern: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in pattern.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '.' if !quoted => {
                parts.push(&pattern[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&pattern[start..]);
    parts
}

/// The columns a pattern is matched against.
struct PatternVars<'a> {
    schema: Option<&'a str>,
    name: &'a str,
    alt_name: Option<&'a str>,
    visible: Option<&'a str>,
}

impl<'a> PatternVars<'a> {
    /// A pattern on one name column alone (databases, extensions, …).
    fn named(name: &'a str) -> Self {
        PatternVars {
            schema: None,
            name,
            alt_name: None,
            visible: None,
        }
    }
}

/// psql's filter of system objects for `\dn` and `\du` without `S` and
/// without a pattern: `condition` as the query's WHERE. Whether it began
/// one.
fn hide_system(sql: &mut String, system: bool, pattern: Option<&str>, condition: &str) -> bool {
    if system || pattern.is_some() {
        return false;
    }
    sql.push_str("WHERE ");
    sql.push_str(condition);
    sql.push('\n');
    true
}

/// [`pattern_conditions`], with psql's complaint about a bad pattern as
/// the command's error.
fn pattern_sql(pattern: Option<&str>, where_started: bool, vars: &PatternVars<'_>) -> Res<String> {
    pattern_conditions(pattern, where_started, vars).map_err(Failed::Said)
}

/// psql's `processSQLNamePattern`: the conditions for `pattern`, each
/// starting with ` AND ` (or `WHERE ` when `where_started` is false).
fn pattern_conditions(
    pattern: Option<&str>,
    where_started: bool,
    vars: &PatternVars<'_>,
) -> Result<String, String> {
    let mut conditions = Vec::new();
    match pattern {
        None => {
            if let Some(visible) = vars.visible {
                conditions.push(visible.to_owned());
            }
        }
        Some(pattern) => {
            let parts = pattern_parts(pattern);
            let (schema, name) = match parts.as_slice() {
                [name] => (None, *name),
                [schema, name] if vars.schema.is_some() => (Some(*schema), *name),
                // A database part must be the current database; psql
                // checks it, the broker's sessions only reach one.
                [_, schema, name] if vars.schema.is_some() => (Some(*schema), *name),
                _ => {
                    return Err(format!(
                        "improper qualified name (too many dotted names): {pattern}"
                    ))
                }
            };
            if let Some(regex) = pattern_part_regex(name) {
                let lit = literal(&regex);
                conditions.push(match vars.alt_name {
                    Some(alt) => format!(
                        "({} OPERATOR(pg_catalog.~) {lit} COLLATE pg_catalog.default\n        OR {alt} OPERATOR(pg_catalog.~) {lit} COLLATE pg_catalog.default)",
                        vars.name
                    ),
                    None => format!(
                        "{} OPERATOR(pg_catalog.~) {lit} COLLATE pg_catalog.default",
                        vars.name
                    ),
                });
            }
            match (schema, vars.schema) {
                (Some(schema), Some(var)) => {
                    if let Some(regex) = pattern_part_regex(schema) {
                        conditions.push(format!(
                            "{var} OPERATOR(pg_catalog.~) {} COLLATE pg_catalog.default",
                            literal(&regex)
                        ));
                    }
                }
                _ => {
                    if let Some(visible) = vars.visible {
                        conditions.push(visible.to_owned());
                    }
                }
            }
        }
    }
    let mut out = String::new();
    for (i, c) in conditions.iter().enumerate() {
        out.push_str(if i == 0 && !where_started {
            "WHERE "
        } else {
            "  AND "
        });
        out.push_str(c);
        out.push('\n');
    }
    Ok(out)
}

// ---------------------------------------------------------------------
// The commands

struct Ctx<'a> {
    conn: &'a mut Connection,
    opt: &'a PrintOpt,
    out: &'a mut Output,
}

/// A column of `row` as text ("" for NULL).
fn col(row: &Row, i: usize) -> &str {
    row.get(i).and_then(|v| v.as_deref()).unwrap_or("")
}

fn is_true(row: &Row, i: usize) -> bool {
    col(row, i) == "t"
}

fn left(n: usize) -> Vec<Align> {
    vec![Align::Left; n]
}

impl Ctx<'_> {
    fn query(&mut self, sql: &str) -> Res<Vec<Row>> {
        let rows = self.conn.query(sql, &[])?;
        Ok(rows
            .iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| r.text(i).map(|t| t.into_owned()))
                    .collect()
            })
            .collect())
    }

    /// A query's result as a table: headers from the columns, psql's
    /// alignment for their types.
    fn query_table(&mut self, sql: &str, title: &str) -> Res<Table> {
        let rows = self.conn.query(sql, &[])?;
        let (headers, aligns) = match rows.first() {
            Some(r) => (
                r.columns().iter().map(|c| c.name.clone()).collect(),
                r.columns()
                    .iter()
                    .map(|c| crate::print::align_for_type(c.oid.unwrap_or(25)))
                    .collect(),
            ),
            None => (Vec::new(), Vec::new()),
        };
        let data = rows
            .iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| r.text(i).map(|t| t.into_owned()))
                    .collect()
            })
            .collect();
        Ok(Table {
            title: Some(title.to_owned()),
            headers,
            aligns,
            rows: data,
            footers: None,
        })
    }

    fn print(&mut self, table: &Table) -> Res<()> {
        self.out.print_table(self.opt, table)?;
        Ok(())
    }

    fn dispatch(&mut self, command: &Command, args: &[String]) -> Res<()> {
        let pattern = args.first().map(String::as_str);
        let (v, s) = (command.verbose, command.system);
        match &command.kind {
            Kind::Describe => match pattern {
                None => self.list_relations("tvmsE", None, v, s),
                Some(_) => {
                    for p in args {
                        self.describe_details(p, v, s)?;
                    }
                    Ok(())
                }
            },
            Kind::Relations(letters) => self.list_relations(letters, pattern, v, s),
            Kind::Schemas => self.list_schemas(pattern, v, s),
            Kind::Functions => self.list_functions(pattern, v, s),
            Kind::Types => self.list_types(pattern, v, s),
            Kind::Roles => self.list_roles(pattern, v, s),
            Kind::Privileges => self.list_privileges(pattern),
            Kind::Databases => self.list_databases(pattern, v),
            Kind::Extensions => self.list_extensions(pattern),
            Kind::ShowFunction => self.show_function(&args.join(" "), v),
            Kind::ShowView => self.show_view(&args.join(" "), v),
        }
    }

    /// `\d` without a pattern, `\dt`, `\di`, `\dv`, `\dm`, `\ds`, `\dE`.
    fn list_relations(
        &mut self,
        letters: &str,
        pattern: Option<&str>,
        verbose: bool,
        system: bool,
    ) -> Res<()> {
        let has = |c| letters.contains(c);
        let (tables, indexes, views, matviews, seqs, foreign) =
            (has('t'), has('i'), has('v'), has('m'), has('s'), has('E'));
        let mut sql = String::from(
            "SELECT n.nspname as \"Schema\",\n  c.relname as \"Name\",\n  \
             CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' \
             WHEN 'i' THEN 'index' WHEN 'S' THEN 'sequence' WHEN 't' THEN 'TOAST table' \
             WHEN 'f' THEN 'foreign table' WHEN 'p' THEN 'partitioned table' WHEN 'I' THEN 'partitioned index' END as \"Type\",\n  \
             pg_catalog.pg_get_userbyid(c.relowner) as \"Owner\"",
        );
        if indexes {
            sql.push_str(",\n c2.relname as \"Table\"");
        }
        if verbose {
            sql.push_str(
                ",\n  CASE c.relpersistence WHEN 'p' THEN 'permanent' WHEN 't' THEN 'temporary' WHEN 'u' THEN 'unlogged' END as \"Persistence\"",
            );
            if tables || matviews || indexes {
                sql.push_str(",\n  am.amname as \"Access method\"");
            }
            sql.push_str(
                ",\n  pg_catalog.pg_size_pretty(pg_catalog.pg_table_size(c.oid)) as \"Size\",\n  \
                 pg_catalog.obj_description(c.oid, 'pg_class') as \"Description\"",
            );
        }
        sql.push_str(
            "\nFROM pg_catalog.pg_class c\n     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace",
        );
        if verbose && (tables || matviews || indexes) {
            sql.push_str("\n     LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam");
        }
        if indexes {
            sql.push_str(
                "\n     LEFT JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid\n     \
                 LEFT JOIN pg_catalog.pg_class c2 ON i.indrelid = c2.oid",
            );
        }
        let mut kinds = String::new();
        if tables {
            kinds.push_str("'r','p',");
            if system || pattern.is_some() {
                kinds.push_str("'t',");
            }
        }
        if views {
            kinds.push_str("'v',");
        }
        if matviews {
            kinds.push_str("'m',");
        }
        if indexes {
            kinds.push_str("'i','I',");
        }
        if seqs {
            kinds.push_str("'S',");
        }
        if system || pattern.is_some() {
            kinds.push_str("'s',");
        }
        if foreign {
            kinds.push_str("'f',");
        }
        sql.push_str(&format!("\nWHERE c.relkind IN ({kinds}'')\n"));
        if !system && pattern.is_none() {
            sql.push_str(
                "      AND n.nspname <> 'pg_catalog'\n      AND n.nspname !~ '^pg_toast'\n      AND n.nspname <> 'information_schema'\n",
            );
        }
        sql.push_str(&pattern_sql(
            pattern,
            true,
            &PatternVars {
                schema: Some("n.nspname"),
                name: "c.relname",
                alt_name: None,
                visible: Some("pg_catalog.pg_table_is_visible(c.oid)"),
            },
        )?);
        sql.push_str("ORDER BY 1,2;");
        let table = self.query_table(&sql, "List of relations")?;
        if table.rows.is_empty() {
            return Err(Failed::Noted(match pattern {
                // psql 15 says "relation" whatever the letters.
                Some(p) => format!("Did not find any relation named \"{p}\"."),
                None => "Did not find any relations.".to_owned(),
            }));
        }
        self.print(&table)
    }

    /// `\dn`.
    fn list_schemas(&mut self, pattern: Option<&str>, verbose: bool, system: bool) -> Res<()> {
        let mut sql = String::from(
            "SELECT n.nspname AS \"Name\",\n  pg_catalog.pg_get_userbyid(n.nspowner) AS \"Owner\"",
        );
        if verbose {
            sql.push_str(
                ",\n  pg_catalog.array_to_string(n.nspacl, E'\\n') AS \"Access privileges\",\n  \
                 pg_catalog.obj_description(n.oid, 'pg_namespace') AS \"Description\"",
            );
        }
        sql.push_str("\nFROM pg_catalog.pg_namespace n\n");
        let where_started = hide_system(
            &mut sql,
            system,
            pattern,
            "n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'",
        );
        sql.push_str(&pattern_sql(
            pattern,
            where_started,
            &PatternVars::named("n.nspname"),
        )?);
        sql.push_str("ORDER BY 1;");
        let table = self.query_table(&sql, "List of schemas")?;
        self.print_or_headers(
            table,
            &["Name", "Owner", "Access privileges", "Description"],
            verbose,
            2,
        )
    }

    /// A table with no rows still has psql's headers.
    fn print_or_headers(
        &mut self,
        mut table: Table,
        headers: &[&str],
        verbose: bool,
        plain: usize,
    ) -> Res<()> {
        if table.headers.is_empty() {
            let n = if verbose { headers.len() } else { plain };
            table.headers = headers.iter().take(n).map(|h| (*h).to_owned()).collect();
            table.aligns = left(n);
        }
        self.print(&table)
    }

    /// `\df`.
    fn list_functions(&mut self, pattern: Option<&str>, verbose: bool, system: bool) -> Res<()> {
        let mut sql = String::from(
            "SELECT n.nspname as \"Schema\",\n  p.proname as \"Name\",\n  \
             pg_catalog.pg_get_function_result(p.oid) as \"Result data type\",\n  \
             pg_catalog.pg_get_function_arguments(p.oid) as \"Argument data types\",\n \
             CASE p.prokind\n  WHEN 'a' THEN 'agg'\n  WHEN 'w' THEN 'window'\n  WHEN 'p' THEN 'proc'\n  ELSE 'func'\n END as \"Type\"",
        );
        if verbose {
            sql.push_str(
                ",\n CASE\n  WHEN p.provolatile = 'i' THEN 'immutable'\n  WHEN p.provolatile = 's' THEN 'stable'\n  WHEN p.provolatile = 'v' THEN 'volatile'\n END as \"Volatility\",\n \
                 CASE\n  WHEN p.proparallel = 'r' THEN 'restricted'\n  WHEN p.proparallel = 's' THEN 'safe'\n  WHEN p.proparallel = 'u' THEN 'unsafe'\n END as \"Parallel\",\n \
                 pg_catalog.pg_get_userbyid(p.proowner) as \"Owner\",\n \
                 CASE WHEN prosecdef THEN 'definer' ELSE 'invoker' END AS \"Security\",\n \
                 pg_catalog.array_to_string(p.proacl, E'\\n') AS \"Access privileges\",\n \
                 l.lanname as \"Language\",\n \
                 p.prosrc as \"Source code\",\n \
                 pg_catalog.obj_description(p.oid, 'pg_proc') as \"Description\"",
            );
        }
        sql.push_str(
            "\nFROM pg_catalog.pg_proc p\n     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace\n",
        );
        if verbose {
            sql.push_str("     LEFT JOIN pg_catalog.pg_language l ON l.oid = p.prolang\n");
        }
        sql.push_str(&pattern_sql(
            pattern,
            false,
            &PatternVars {
                schema: Some("n.nspname"),
                name: "p.proname",
                alt_name: None,
                visible: Some("pg_catalog.pg_function_is_visible(p.oid)"),
            },
        )?);
        if !system && pattern.is_none() {
            sql.push_str(if sql.contains("\nWHERE ") {
                "      AND n.nspname <> 'pg_catalog'\n      AND n.nspname <> 'information_schema'\n"
            } else {
                "WHERE n.nspname <> 'pg_catalog'\n      AND n.nspname <> 'information_schema'\n"
            });
        }
        sql.push_str("ORDER BY 1, 2, 4;");
        let table = self.query_table(&sql, "List of functions")?;
        self.print_or_headers(
            table,
            &[
                "Schema",
                "Name",
                "Result data type",
                "Argument data types",
                "Type",
                "Volatility",
                "Parallel",
                "Owner",
                "Security",
                "Access privileges",
                "Language",
                "Source code",
                "Description",
            ],
            verbose,
            5,
        )
    }

    /// `\dT`.
    fn list_types(&mut self, pattern: Option<&str>, verbose: bool, system: bool) -> Res<()> {
        let mut sql = String::from(
            "SELECT n.nspname as \"Schema\",\n  pg_catalog.format_type(t.oid, NULL) AS \"Name\",\n",
        );
        if verbose {
            sql.push_str(
                "  t.typname AS \"Internal name\",\n  \
                 CASE WHEN t.typrelid != 0\n      THEN CAST('tuple' AS pg_catalog.text)\n    WHEN t.typlen < 0\n      THEN CAST('var' AS pg_catalog.text)\n    ELSE CAST(t.typlen AS pg_catalog.text)\n  END AS \"Size\",\n  \
                 pg_catalog.array_to_string(\n      ARRAY(\n          SELECT e.enumlabel\n          FROM pg_catalog.pg_enum e\n          WHERE e.enumtypid = t.oid\n          ORDER BY e.enumsortorder\n      ),\n      E'\\n'\n  ) AS \"Elements\",\n  \
                 pg_catalog.pg_get_userbyid(t.typowner) AS \"Owner\",\n\
                 pg_catalog.array_to_string(t.typacl, E'\\n') AS \"Access privileges\",\n",
            );
        }
        sql.push_str(
            "  pg_catalog.obj_description(t.oid, 'pg_type') as \"Description\"\n\
             FROM pg_catalog.pg_type t\n     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace\n\
             WHERE (t.typrelid = 0 OR (SELECT c.relkind = 'c' FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid))\n  \
             AND NOT EXISTS(SELECT 1 FROM pg_catalog.pg_type el WHERE el.oid = t.typelem AND el.typarray = t.oid)\n",
        );
        if !system && pattern.is_none() {
            sql.push_str(
                "      AND n.nspname <> 'pg_catalog'\n      AND n.nspname <> 'information_schema'\n",
            );
        }
        sql.push_str(&pattern_sql(
            pattern,
            true,
            &PatternVars {
                schema: Some("n.nspname"),
                name: "t.typname",
                alt_name: Some("pg_catalog.format_type(t.oid, NULL)"),
                visible: Some("pg_catalog.pg_type_is_visible(t.oid)"),
            },
        )?);
        sql.push_str("ORDER BY 1, 2;");
        let table = self.query_table(&sql, "List of data types")?;
        if table.headers.is_empty() {
            let mut table = table;
            table.headers = if verbose {
                vec![
                    "Schema",
                    "Name",
                    "Internal name",
                    "Size",
                    "Elements",
                    "Owner",
                    "Access privileges",
                    "Description",
                ]
            } else {
                vec!["Schema", "Name", "Description"]
            }
            .into_iter()
            .map(String::from)
            .collect();
            table.aligns = left(table.headers.len());
            return self.print(&table);
        }
        self.print(&table)
    }

    /// `\du`, `\dg`: the attributes are put together here, as psql does.
    fn list_roles(&mut self, pattern: Option<&str>, verbose: bool, system: bool) -> Res<()> {
        let mut sql = String::from(
            "SELECT r.rolname, r.rolsuper, r.rolinherit,\n  r.rolcreaterole, r.rolcreatedb, r.rolcanlogin,\n  \
             r.rolconnlimit, r.rolvaliduntil::pg_catalog.text,\n  \
             ARRAY(SELECT b.rolname\n        FROM pg_catalog.pg_auth_members m\n        JOIN pg_catalog.pg_roles b ON (m.roleid = b.oid)\n        WHERE m.member = r.oid)::pg_catalog.text as memberof",
        );
        if verbose {
            sql.push_str(",\n  pg_catalog.shobj_description(r.oid, 'pg_authid') AS description");
        }
        sql.push_str("\n, r.rolreplication\n, r.rolbypassrls\nFROM pg_catalog.pg_roles r\n");
        let where_started = hide_system(&mut sql, system, pattern, "r.rolname !~ '^pg_'");
        sql.push_str(&pattern_sql(
            pattern,
            where_started,
            &PatternVars::named("r.rolname"),
        )?);
        sql.push_str("ORDER BY 1;");
        let rows = self.query(&sql)?;
        let tail = if verbose { 1 } else { 0 };
        let mut out_rows = Vec::new();
        for row in &rows {
            let mut attrs: Vec<String> = Vec::new();
            if is_true(row, 1) {
                attrs.push("Superuser".into());
            }
            if !is_true(row, 2) {
                attrs.push("No inheritance".into());
            }
            if is_true(row, 3) {
                attrs.push("Create role".into());
            }
            if is_true(row, 4) {
                attrs.push("Create DB".into());
            }
            if !is_true(row, 5) {
                attrs.push("Cannot login".into());
            }
            if is_true(row, 9 + tail) {
                attrs.push("Replication".into());
            }
            if is_true(row, 10 + tail) {
                attrs.push("Bypass RLS".into());
            }
            let limit: i64 = col(row, 6).parse().unwrap_or(-1);
            if limit >= 0 {
                attrs.push(match limit {
                    0 => "No connections".into(),
                    1 => "1 connection".into(),
                    n => format!("{n} connections"),
                });
            }
            if !col(row, 7).is_empty() {
                attrs.push(format!("Password valid until {}", col(row, 7)));
            }
            let mut cells = vec![
                Some(col(row, 0).to_owned()),
                Some(attrs.join(", ")),
                Some(col(row, 8).to_owned()),
            ];
            if verbose {
                cells.push(Some(col(row, 9).to_owned()));
            }
            out_rows.push(cells);
        }
        let mut headers = vec!["Role name", "Attributes", "Member of"];
        if verbose {
            headers.push("Description");
        }
        let table = Table {
            title: Some("List of roles".into()),
            aligns: left(headers.len()),
            headers: headers.into_iter().map(String::from).collect(),
            rows: out_rows,
            // psql prints no row count under the roles.
            footers: Some(Vec::new()),
        };
        self.print(&table)
    }

    /// `\dp`, `\z`.
    fn list_privileges(&mut self, pattern: Option<&str>) -> Res<()> {
        let mut sql = String::from(
            "SELECT n.nspname as \"Schema\",\n  c.relname as \"Name\",\n  \
             CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' \
             WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign table' WHEN 'p' THEN 'partitioned table' END as \"Type\",\n  \
             pg_catalog.array_to_string(c.relacl, E'\\n') AS \"Access privileges\",\n  \
             pg_catalog.array_to_string(ARRAY(\n    SELECT attname || E':\\n  ' || pg_catalog.array_to_string(attacl, E'\\n  ')\n    \
             FROM pg_catalog.pg_attribute a\n    WHERE attrelid = c.oid AND NOT attisdropped AND attacl IS NOT NULL\n  ), E'\\n') AS \"Column privileges\",\n  \
             pg_catalog.array_to_string(ARRAY(\n    SELECT polname\n    || CASE WHEN NOT polpermissive THEN\n       E' (RESTRICTIVE)'\n       ELSE '' END\n    \
             || CASE WHEN polcmd != '*' THEN\n           E' (' || polcmd::pg_catalog.text || E'):'\n       ELSE E':'\n       END\n    \
             || CASE WHEN polqual IS NOT NULL THEN\n           E'\\n  (u): ' || pg_catalog.pg_get_expr(polqual, polrelid)\n       ELSE E''\n       END\n    \
             || CASE WHEN polwithcheck IS NOT NULL THEN\n           E'\\n  (c): ' || pg_catalog.pg_get_expr(polwithcheck, polrelid)\n       ELSE E''\n       END    \
             || CASE WHEN polroles <> '{0}' THEN\n           E'\\n  to: ' || pg_catalog.array_to_string(\n               ARRAY(\n                   SELECT rolname\n                   FROM pg_catalog.pg_roles\n                   WHERE oid = ANY (polroles)\n                   ORDER BY 1\n               ), E', ')\n       ELSE E''\n       END\n    \
             FROM pg_catalog.pg_policy pol\n    WHERE polrelid = c.oid), E'\\n')\n    AS \"Policies\"\n\
             FROM pg_catalog.pg_class c\n     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace\n\
             WHERE c.relkind IN ('r','v','m','S','f','p')\n",
        );
        if pattern.is_none() {
            sql.push_str("  AND n.nspname !~ '^pg_'\n");
        }
        sql.push_str(&pattern_sql(
            pattern,
            true,
            &PatternVars {
                schema: Some("n.nspname"),
                name: "c.relname",
                alt_name: None,
                visible: Some("pg_catalog.pg_table_is_visible(c.oid)"),
            },
        )?);
        sql.push_str("ORDER BY 1, 2;");
        let table = self.query_table(&sql, "Access privileges")?;
        self.print_or_headers(
            table,
            &[
                "Schema",
                "Name",
                "Type",
                "Access privileges",
                "Column privileges",
                "Policies",
            ],
            true,
            6,
        )
    }

    /// `\l`.
    fn list_databases(&mut self, pattern: Option<&str>, verbose: bool) -> Res<()> {
        let mut sql = String::from(
            "SELECT\n  d.datname as \"Name\",\n  pg_catalog.pg_get_userbyid(d.datdba) as \"Owner\",\n  \
             pg_catalog.pg_encoding_to_char(d.encoding) as \"Encoding\",\n  \
             d.datcollate as \"Collate\",\n  d.datctype as \"Ctype\",\n  \
             d.daticulocale as \"ICU Locale\",\n  \
             CASE d.datlocprovider WHEN 'c' THEN 'libc' WHEN 'i' THEN 'icu' END AS \"Locale Provider\",\n  \
             pg_catalog.array_to_string(d.datacl, E'\\n') AS \"Access privileges\"",
        );
        if verbose {
            sql.push_str(
                ",\n  CASE WHEN pg_catalog.has_database_privilege(d.datname, 'CONNECT')\n       \
                 THEN pg_catalog.pg_size_pretty(pg_catalog.pg_database_size(d.datname))\n       \
                 ELSE 'No Access'\n  END as \"Size\",\n  t.spcname as \"Tablespace\",\n  \
                 pg_catalog.shobj_description(d.oid, 'pg_database') as \"Description\"",
            );
        }
        sql.push_str("\nFROM pg_catalog.pg_database d\n");
        if verbose {
            sql.push_str("  JOIN pg_catalog.pg_tablespace t on d.dattablespace = t.oid\n");
        }
        sql.push_str(&pattern_sql(
            pattern,
            false,
            &PatternVars::named("d.datname"),
        )?);
        sql.push_str("ORDER BY 1;");
        let table = self.query_table(&sql, "List of databases")?;
        self.print_or_headers(
            table,
            &[
                "Name",
                "Owner",
                "Encoding",
                "Collate",
                "Ctype",
                "ICU Locale",
                "Locale Provider",
                "Access privileges",
                "Size",
                "Tablespace",
                "Description",
            ],
            verbose,
            8,
        )
    }

    /// `\dx`.
    fn list_extensions(&mut self, pattern: Option<&str>) -> Res<()> {
        let mut sql = String::from(
            "SELECT e.extname AS \"Name\", e.extversion AS \"Version\", n.nspname AS \"Schema\", c.description AS \"Description\"\n\
             FROM pg_catalog.pg_extension e LEFT JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace \
             LEFT JOIN pg_catalog.pg_description c ON c.objoid = e.oid AND c.classoid = 'pg_catalog.pg_extension'::pg_catalog.regclass\n",
        );
        sql.push_str(&pattern_sql(
            pattern,
            false,
            &PatternVars::named("e.extname"),
        )?);
        sql.push_str("ORDER BY 1;");
        let table = self.query_table(&sql, "List of installed extensions")?;
        self.print_or_headers(
            table,
            &["Name", "Version", "Schema", "Description"],
            true,
            4,
        )
    }

    /// `\sf NAME[(ARGS)]`: the function's `CREATE OR REPLACE` command.
    fn show_function(&mut self, name: &str, numbered: bool) -> Res<()> {
        if name.trim().is_empty() {
            return Err(Failed::Said("\\sf: function name is required".into()));
        }
        // psql casts the name to regproc (regprocedure with arguments);
        // the guard reads such a literal as a call of the function it
        // names, so the look-up is by to_regproc(), which only reads.
        let look_up = if name.contains('(') {
            "to_regprocedure"
        } else {
            "to_regproc"
        };
        let rows = self.query(&format!(
            "SELECT pg_catalog.pg_get_functiondef(f) FROM pg_catalog.{look_up}({}) AS f WHERE f IS NOT NULL",
            literal(name.trim())
        ))?;
        let Some(def) = rows.first().map(|r| col(r, 0).to_owned()) else {
            return Err(Failed::Said(format!(
                "ERROR:  function \"{}\" does not exist",
                name.trim()
            )));
        };
        let text = if numbered {
            with_line_numbers(&def, true)
        } else if def.ends_with('\n') {
            def
        } else {
            format!("{def}\n")
        };
        self.out.write_all(text.as_bytes())?;
        Ok(())
    }

    /// `\sv NAME`: the view's `CREATE OR REPLACE VIEW` command.
    fn show_view(&mut self, name: &str, numbered: bool) -> Res<()> {
        if name.trim().is_empty() {
            return Err(Failed::Said("\\sv: view name is required".into()));
        }
        let rows = self.query(&format!(
            "SELECT nspname, relname, relkind,\n  pg_catalog.pg_get_viewdef(c.oid, true),\n  \
             pg_catalog.array_to_string(array_remove(array_remove(c.reloptions,'check_option=local'),'check_option=cascaded'), ', ') AS reloptions,\n  \
             CASE WHEN 'check_option=local' = ANY (c.reloptions) THEN 'LOCAL'::text \
             WHEN 'check_option=cascaded' = ANY (c.reloptions) THEN 'CASCADED'::text ELSE NULL END AS checkoption\n\
             FROM pg_catalog.pg_class c\n LEFT JOIN pg_catalog.pg_namespace n ON c.relnamespace = n.oid\n\
             WHERE c.oid = {}::pg_catalog.regclass::pg_catalog.oid",
            literal(name.trim())
        ))?;
        let Some(row) = rows.first() else {
            return Err(Failed::Said(format!("\"{}\" is not a view", name.trim())));
        };
        let kind = if col(row, 2) == "m" {
            "MATERIALIZED VIEW"
        } else if col(row, 2) == "v" {
            "OR REPLACE VIEW"
        } else {
            return Err(Failed::Said(format!("\"{}\" is not a view", name.trim())));
        };
        let mut text = format!(
            "CREATE {kind} {}.{}",
            quote_ident(col(row, 0)),
            quote_ident(col(row, 1))
        );
        if !col(row, 4).is_empty() {
            text.push_str(&format!("\n WITH ({})", col(row, 4)));
        }
        text.push_str(" AS\n");
        let def = col(row, 3);
        text.push_str(def.strip_suffix(';').unwrap_or(def));
        if !col(row, 5).is_empty() {
            text.push_str(&format!("\n  WITH {} CHECK OPTION", col(row, 5)));
        }
        text.push('\n');
        if numbered {
            text = with_line_numbers(&text, false);
        }
        self.out.write_all(text.as_bytes())?;
        Ok(())
    }
}

/// `\sf+`, `\sv+`: the lines numbered, as psql does. For a function the
/// header (up to the line starting its body: `AS `, `BEGIN `, `RETURN `)
/// is indented instead, so that the numbers match what PostgreSQL's
/// error messages count in the body.
fn with_line_numbers(text: &str, function: bool) -> String {
    let mut out = String::new();
    let mut in_header = function;
    let mut n = 1;
    for line in text.lines() {
        if in_header
            && ["AS ", "BEGIN ", "RETURN "]
                .iter()
                .any(|p| line.starts_with(p))
        {
            in_header = false;
        }
        if in_header {
            out.push_str(&format!("        {line}\n"));
        } else {
            out.push_str(&format!("{n:<7} {line}\n"));
            n += 1;
        }
    }
    out
}

/// An identifier quoted when PostgreSQL would need it (psql's
/// `fmtId`): lower-case letters, digits and `_`, not starting with a
/// digit, stay bare.
pub fn quote_ident(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

mod details;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_with_their_modifiers() {
        let c = Command::parse("d").unwrap();
        assert_eq!(
            (c.kind, c.verbose, c.system),
            (Kind::Describe, false, false)
        );
        let c = Command::parse("dtS+").unwrap();
        assert_eq!(
            (c.kind, c.verbose, c.system),
            (Kind::Relations("t".into()), true, true)
        );
        assert_eq!(Command::parse("dg").unwrap().kind, Kind::Roles);
        assert_eq!(Command::parse("l+").unwrap().kind, Kind::Databases);
        assert_eq!(Command::parse("sf").unwrap().kind, Kind::ShowFunction);
        assert_eq!(
            Command::parse("dtv").unwrap().kind,
            Kind::Relations("tv".into())
        );
        assert!(Command::parse("dq").is_none());
        assert!(Command::parse("dt+x").is_none());
        assert!(Command::parse("echo").is_none());
        assert!(Command::parse("q").is_none());
    }

    #[test]
    fn patterns_become_psqls_regular_expressions() {
        assert_eq!(pattern_part_regex("idm_*").as_deref(), Some("^(idm_.*)$"));
        assert_eq!(pattern_part_regex("IDM?x").as_deref(), Some("^(idm.x)$"));
        assert_eq!(pattern_part_regex("*"), None);
        assert_eq!(
            pattern_part_regex("\"Foo*\"").as_deref(),
            Some("^(Foo\\*)$")
        );
        assert_eq!(
            pattern_part_regex("\"a\"\"b\"").as_deref(),
            Some("^(a\"b)$")
        );
        assert_eq!(pattern_part_regex("a$b").as_deref(), Some("^(a\\$b)$"));
        // Unquoted, regular-expression characters keep their meaning.
        assert_eq!(pattern_part_regex("(a|b)+").as_deref(), Some("^((a|b)+)$"));
        assert_eq!(pattern_parts("\"a.b\".c"), vec!["\"a.b\"", "c"]);
        assert_eq!(pattern_parts("s.t"), vec!["s", "t"]);
    }

    #[test]
    fn pattern_conditions_as_psql_writes_them() {
        let vars = PatternVars {
            schema: Some("n.nspname"),
            name: "c.relname",
            alt_name: None,
            visible: Some("pg_catalog.pg_table_is_visible(c.oid)"),
        };
        assert_eq!(
            pattern_conditions(Some("idm_identity"), true, &vars).unwrap(),
            "  AND c.relname OPERATOR(pg_catalog.~) '^(idm_identity)$' COLLATE pg_catalog.default\n  AND pg_catalog.pg_table_is_visible(c.oid)\n"
        );
        assert_eq!(
            pattern_conditions(Some("public.*"), false, &vars).unwrap(),
            "WHERE n.nspname OPERATOR(pg_catalog.~) '^(public)$' COLLATE pg_catalog.default\n"
        );
        assert_eq!(
            pattern_conditions(Some("it's"), true, &vars).unwrap(),
            "  AND c.relname OPERATOR(pg_catalog.~) '^(it''s)$' COLLATE pg_catalog.default\n  AND pg_catalog.pg_table_is_visible(c.oid)\n"
        );
        assert!(pattern_conditions(Some("a.b.c.d"), true, &vars).is_err());
    }

    #[test]
    fn identifiers_quoted_when_needed() {
        assert_eq!(quote_ident("idm_identity"), "idm_identity");
        assert_eq!(quote_ident("Idm"), "\"Idm\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident("1a"), "\"1a\"");
    }
}
