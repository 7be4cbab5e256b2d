//! Tab completion at the prompt, in the spirit of psql's `tab-complete.c`:
//! SQL keywords by their place in the statement, schemas, tables and
//! views, the columns of the tables the statement names, functions,
//! backslash commands and their arguments.
//!
//! The names come from the catalog through the broker, read once per
//! session (a few catalog queries) and again after a describe command or
//! a statement that may change the schema — never while the user types,
//! so Tab costs no round trip and cannot disturb an open transaction.
//! [`candidates`] is the decision, a pure function of the catalog and the
//! text before the cursor; [`Helper`] plugs it into rustyline.

use crate::describe::quote_ident;
use iam_pgconnect::{Connection, Error};
use rustyline::completion::{Completer, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::Context;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// One table, view, sequence… of the catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Relation {
    pub schema: String,
    pub name: String,
    /// Visible through the search path: completed without its schema.
    pub visible: bool,
}

/// What completion knows of the database.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub schemas: Vec<String>,
    pub relations: Vec<Relation>,
    /// Column names by `schema.relation`.
    pub columns: HashMap<String, Vec<String>>,
    /// Names of the functions the search path makes visible.
    pub functions: Vec<String>,
}

/// Caps on what is read, so a huge schema cannot make the prompt slow.
const MAX_RELATIONS: usize = 5000;
const MAX_COLUMNS: usize = 50000;

impl Catalog {
    /// Reads the catalog through the session (read-only queries of
    /// `pg_catalog`).
    pub fn load(conn: &mut Connection) -> Result<Catalog, Error> {
        let texts = |rows: Vec<iam_pgconnect::Row>| -> Vec<Vec<String>> {
            rows.iter()
                .map(|r| {
                    (0..r.len())
                        .map(|i| r.text(i).map(|t| t.into_owned()).unwrap_or_default())
                        .collect()
                })
                .collect()
        };
        let schemas = texts(conn.query(
            "SELECT n.nspname FROM pg_catalog.pg_namespace n \
             WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema' ORDER BY 1",
            &[],
        )?)
        .into_iter()
        .filter_map(|r| r.into_iter().next())
        .collect();
        let relations = texts(conn.query(
            &format!(
                "SELECT n.nspname, c.relname, pg_catalog.pg_table_is_visible(c.oid) \
                 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r','p','v','m','S','f') \
                   AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema' \
                 ORDER BY 1, 2 LIMIT {MAX_RELATIONS}"
            ),
            &[],
        )?)
        .into_iter()
        .map(|r| Relation {
            schema: r.first().cloned().unwrap_or_default(),
            name: r.get(1).cloned().unwrap_or_default(),
            visible: r.get(2).is_some_and(|v| v == "t"),
        })
        .collect();
        let mut columns: HashMap<String, Vec<String>> = HashMap::new();
        for r in texts(conn.query(
            &format!(
                "SELECT n.nspname, c.relname, a.attname \
                 FROM pg_catalog.pg_attribute a \
                 JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r','p','v','m','f') \
                   AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema' \
                 ORDER BY c.oid, a.attnum LIMIT {MAX_COLUMNS}"
            ),
            &[],
        )?) {
            if let [schema, table, column] = r.as_slice() {
                columns
                    .entry(format!("{schema}.{table}"))
                    .or_default()
                    .push(column.clone());
            }
        }
        let functions = texts(conn.query(
            "SELECT DISTINCT p.proname FROM pg_catalog.pg_proc p \
             WHERE pg_catalog.pg_function_is_visible(p.oid) AND p.prokind IN ('f','a','w') \
             ORDER BY 1",
            &[],
        )?)
        .into_iter()
        .filter_map(|r| r.into_iter().next())
        .collect();
        Ok(Catalog {
            schemas,
            relations,
            columns,
            functions,
        })
    }

    /// The columns of a table named as in a statement (`t`, `s.t`).
    fn columns_of(&self, name: &str) -> Vec<String> {
        let folded = fold(name);
        let key = if folded.contains('.') {
            Some(folded)
        } else {
            self.relations
                .iter()
                .find(|r| r.visible && r.name == folded)
                .map(|r| format!("{}.{}", r.schema, r.name))
        };
        key.and_then(|k| self.columns.get(&k).cloned())
            .unwrap_or_default()
    }
}

/// A name as PostgreSQL folds it: quoted parts keep their case.
fn fold(name: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    for c in name.chars() {
        match c {
            '"' => quoted = !quoted,
            c if quoted => out.push(c),
            c => out.extend(c.to_lowercase()),
        }
    }
    out
}

/// Statements a line may start with.
const STARTERS: &[&str] = &[
    "ABORT",
    "BEGIN",
    "COMMIT",
    "COPY",
    "DELETE FROM",
    "END",
    "EXPLAIN",
    "INSERT INTO",
    "RELEASE",
    "RESET",
    "ROLLBACK",
    "SAVEPOINT",
    "SELECT",
    "SET",
    "SHOW",
    "START TRANSACTION",
    "TABLE",
    "UPDATE",
    "VALUES",
    "WITH",
];

/// What may follow a table in FROM.
const AFTER_TABLE: &[&str] = &[
    "AS",
    "CROSS JOIN",
    "FULL JOIN",
    "GROUP BY",
    "INNER JOIN",
    "JOIN",
    "LEFT JOIN",
    "LIMIT",
    "NATURAL JOIN",
    "OFFSET",
    "ON",
    "ORDER BY",
    "RIGHT JOIN",
    "USING",
    "WHERE",
];

/// Settings a session may show or set.
const SETTINGS: &[&str] = &[
    "application_name",
    "bytea_output",
    "client_encoding",
    "client_min_messages",
    "DateStyle",
    "extra_float_digits",
    "IntervalStyle",
    "lock_timeout",
    "search_path",
    "statement_timeout",
    "TimeZone",
    "work_mem",
];

/// Words after which a table name comes.
const TABLE_WORDS: &[&str] = &["FROM", "JOIN", "UPDATE", "INTO", "TABLE", "ONLY", "COPY"];

/// Words after which an expression (a column, a function) comes.
const EXPRESSION_WORDS: &[&str] = &[
    "SELECT",
    "WHERE",
    "AND",
    "OR",
    "BY",
    "ON",
    "HAVING",
    "RETURNING",
    "DISTINCT",
    "NOT",
    "(",
    "=",
    "<",
    ">",
    "<>",
    "!=",
    "<=",
    ">=",
    "+",
    "-",
    "*",
    "/",
    "||",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
];

/// The clause keywords that tell what a comma continues.
const CLAUSES: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "JOIN",
    "ON",
    "SET",
    "BY",
    "HAVING",
    "RETURNING",
    "INTO",
    "VALUES",
    "UPDATE",
    "USING",
];

/// A token of the statement before the cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Punct(String),
}

impl Token {
    fn upper(&self) -> String {
        match self {
            Token::Word(w) => w.to_ascii_uppercase(),
            Token::Punct(p) => p.clone(),
        }
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '"' | '$' | '\\')
}

/// In a backslash command's name, `+`, `S` and `?` belong to the word.
fn is_backslash_word_char(c: char) -> bool {
    is_word_char(c) || matches!(c, '+' | '?')
}

/// Splits SQL into words and punctuation, skipping string literals and
/// comments (what is inside them is no name).
fn tokens(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
            out.push(Token::Word("'literal'".into()));
        } else if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '"' || (c.is_alphanumeric() || c == '_' || c == '\\') {
            let start = i;
            let mut quoted = false;
            while i < chars.len() && (quoted || is_word_char(chars[i])) {
                if chars[i] == '"' {
                    quoted = !quoted;
                }
                i += 1;
            }
            out.push(Token::Word(chars[start..i].iter().collect()));
        } else {
            let start = i;
            i += 1;
            if matches!(c, '<' | '>' | '!' | '|') && matches!(chars.get(i), Some('=' | '>' | '|')) {
                i += 1;
            }
            out.push(Token::Punct(chars[start..i].iter().collect()));
        }
    }
    out
}

/// Keywords in the case the user types in: lower case when the word typed
/// so far has a lower-case letter (psql's `COMP_KEYWORD_CASE`
/// `preserve-upper`).
fn keyword_case(keyword: &str, typed: &str) -> String {
    if typed.chars().any(|c| c.is_ascii_lowercase()) {
        keyword.to_ascii_lowercase()
    } else {
        keyword.to_owned()
    }
}

/// The tables the statement names, with their aliases: `(alias or name,
/// name)`.
fn statement_tables(toks: &[Token]) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut in_from = false;
    let mut i = 0;
    while i < toks.len() {
        let up = toks[i].upper();
        let takes_table = match up.as_str() {
            "FROM" => {
                in_from = true;
                true
            }
            "JOIN" | "UPDATE" | "INTO" | "TABLE" => true,
            "," => in_from,
            "WHERE" | "GROUP" | "ORDER" | "LIMIT" | "SELECT" | "SET" | "ON" | "USING" => {
                in_from = false;
                false
            }
            _ => false,
        };
        if takes_table {
            if let Some(Token::Word(name)) = toks.get(i + 1) {
                let name_up = name.to_ascii_uppercase();
                if name_up == "ONLY" || name_up == "LATERAL" {
                    i += 1;
                    continue;
                }
                let mut alias = None;
                let mut j = i + 2;
                if toks.get(j).map(Token::upper).as_deref() == Some("AS") {
                    j += 1;
                }
                if let Some(Token::Word(a)) = toks.get(j) {
                    let a_up = a.to_ascii_uppercase();
                    let reserved = [
                        "WHERE",
                        "JOIN",
                        "LEFT",
                        "RIGHT",
                        "INNER",
                        "FULL",
                        "CROSS",
                        "NATURAL",
                        "ON",
                        "USING",
                        "GROUP",
                        "ORDER",
                        "LIMIT",
                        "OFFSET",
                        "SET",
                        "VALUES",
                        "SELECT",
                        "DEFAULT",
                        "RETURNING",
                        "WINDOW",
                        "HAVING",
                        "UNION",
                        "EXCEPT",
                        "INTERSECT",
                        "FOR",
                    ];
                    if !reserved.contains(&a_up.as_str()) {
                        alias = Some(fold(a));
                    }
                }
                let table = fold(name);
                found.push((alias.unwrap_or_else(|| table.clone()), table));
            }
        }
        i += 1;
    }
    found
}

/// The completions for the text before the cursor: where the word being
/// completed starts (a byte offset into `line`) and the candidates.
/// `earlier` is the statement's text on lines before this one.
pub fn candidates(catalog: &Catalog, earlier: &str, line: &str) -> (usize, Vec<String>) {
    let is_backslash = line.trim_start().starts_with('\\') && earlier.trim().is_empty();
    let word_char = if is_backslash {
        is_backslash_word_char
    } else {
        is_word_char
    };
    let start = line
        .char_indices()
        .rev()
        .take_while(|(_, c)| word_char(*c))
        .last()
        .map_or(line.len(), |(i, _)| i);
    let word = &line[start..];
    let mut list = if is_backslash {
        backslash(catalog, &line[..start], word)
    } else {
        let text = format!("{earlier}\n{}", &line[..start]);
        sql(catalog, &text, word)
    };
    list.sort();
    list.dedup();
    (start, list)
}

/// Matches names and keywords against what was typed: keywords by case,
/// names as PostgreSQL folds them.
fn filter(options: impl IntoIterator<Item = String>, word: &str) -> Vec<String> {
    let folded = fold(word);
    options
        .into_iter()
        .filter(|o| {
            o.starts_with(word)
                || fold(o).starts_with(&folded)
                || o.to_lowercase().starts_with(&folded)
        })
        .collect()
}

fn keywords(words: &[&str], typed: &str) -> Vec<String> {
    filter(words.iter().map(|k| keyword_case(k, typed)), typed)
}

/// Relations, unqualified when visible, and `schema.` prefixes; with a
/// dot typed, the relations of that schema.
fn relation_names(catalog: &Catalog, word: &str) -> Vec<String> {
    if let Some((schema, _)) = word.rsplit_once('.') {
        let schema_folded = fold(schema);
        return filter(
            catalog
                .relations
                .iter()
                .filter(|r| r.schema == schema_folded)
                .map(|r| format!("{}.{}", quote_ident(&r.schema), quote_ident(&r.name))),
            word,
        );
    }
    let mut names: Vec<String> = catalog
        .relations
        .iter()
        .filter(|r| r.visible)
        .map(|r| quote_ident(&r.name))
        .collect();
    names.extend(
        catalog
            .schemas
            .iter()
            .map(|s| format!("{}.", quote_ident(s))),
    );
    filter(names, word)
}

fn column_names(catalog: &Catalog, toks: &[Token], word: &str) -> Vec<String> {
    let tables = statement_tables(toks);
    if let Some((qualifier, _)) = word.rsplit_once('.') {
        let q = fold(qualifier);
        let table = tables
            .iter()
            .find(|(alias, _)| *alias == q)
            .map_or(q.clone(), |(_, t)| t.clone());
        return filter(
            catalog
                .columns_of(&table)
                .into_iter()
                .map(|c| format!("{qualifier}.{}", quote_ident(&c))),
            word,
        );
    }
    let mut names: Vec<String> = tables
        .iter()
        .flat_map(|(_, t)| catalog.columns_of(t))
        .map(|c| quote_ident(&c))
        .collect();
    names.extend(tables.iter().map(|(alias, _)| format!("{alias}.")));
    names.extend(catalog.functions.iter().cloned());
    filter(names, word)
}

fn sql(catalog: &Catalog, text: &str, word: &str) -> Vec<String> {
    // Only the statement being typed counts.
    let statement = text.rsplit_once(';').map_or(text, |(_, s)| s);
    let toks = tokens(statement);
    let Some(last) = toks.last() else {
        return keywords(STARTERS, word);
    };
    let prev = last.upper();
    let prev2 = toks
        .len()
        .checked_sub(2)
        .and_then(|i| toks.get(i))
        .map(Token::upper)
        .unwrap_or_default();
    let first = toks.first().map(Token::upper).unwrap_or_default();
    let clause = toks
        .iter()
        .rev()
        .map(Token::upper)
        .find(|t| CLAUSES.contains(&t.as_str()))
        .unwrap_or_default();
    match prev.as_str() {
        "INSERT" => keywords(&["INTO"], word),
        "DELETE" => keywords(&["FROM"], word),
        "ORDER" | "GROUP" => keywords(&["BY"], word),
        "LEFT" | "RIGHT" | "FULL" | "INNER" | "CROSS" | "NATURAL" => {
            keywords(&["JOIN", "OUTER JOIN"], word)
        }
        "EXPLAIN" => keywords(
            &[
                "ANALYZE", "VERBOSE", "SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "(",
            ],
            word,
        ),
        "ANALYZE" | "VERBOSE" if first == "EXPLAIN" => keywords(
            &["SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "VERBOSE"],
            word,
        ),
        "SHOW" => filter(
            SETTINGS
                .iter()
                .map(|s| s.to_string())
                .chain([keyword_case("ALL", word)]),
            word,
        ),
        "RESET" => filter(
            SETTINGS
                .iter()
                .map(|s| s.to_string())
                .chain([keyword_case("ALL", word)]),
            word,
        ),
        "SET" if first != "UPDATE" => filter(
            SETTINGS
                .iter()
                .map(|s| s.to_string())
                .chain(["SESSION", "LOCAL", "TIME ZONE"].map(|k| keyword_case(k, word))),
            word,
        ),
        "BEGIN" | "START" => keywords(
            &[
                "TRANSACTION",
                "WORK",
                "ISOLATION LEVEL",
                "READ ONLY",
                "READ WRITE",
            ],
            word,
        ),
        "ROLLBACK" => keywords(&["TO SAVEPOINT", "WORK", "TRANSACTION"], word),
        "RELEASE" => keywords(&["SAVEPOINT"], word),
        "WITH" if toks.len() == 1 => keywords(&["RECURSIVE"], word),
        p if TABLE_WORDS.contains(&p) => relation_names(catalog, word),
        "SET" => column_names(catalog, &toks, word),
        "," if clause == "FROM" => relation_names(catalog, word),
        "," if clause == "UPDATE" || clause == "INTO" => Vec::new(),
        p if EXPRESSION_WORDS.contains(&p) || p == "," => {
            let mut names = column_names(catalog, &toks, word);
            if p == "SELECT" {
                names.extend(keywords(&["DISTINCT", "*"], word));
            }
            names
        }
        _ => {
            // After a table in FROM: the clauses that may follow.
            if let Token::Word(_) = last {
                if TABLE_WORDS.contains(&prev2.as_str()) || prev2 == "," && clause == "FROM" {
                    return keywords(AFTER_TABLE, word);
                }
                if clause == "WHERE" || clause == "ON" || clause == "SELECT" {
                    return keywords(
                        &[
                            "AND",
                            "OR",
                            "IS NULL",
                            "IS NOT NULL",
                            "IN",
                            "LIKE",
                            "ILIKE",
                            "BETWEEN",
                            "FROM",
                            "AS",
                            "ORDER BY",
                            "GROUP BY",
                            "LIMIT",
                        ],
                        word,
                    );
                }
            }
            Vec::new()
        }
    }
}

/// Backslash commands, and their arguments.
fn backslash(catalog: &Catalog, before: &str, word: &str) -> Vec<String> {
    let words = crate::meta::split_args(before);
    let Some(command) = words.first() else {
        let mut all: Vec<String> = crate::describe::COMMANDS
            .iter()
            .flat_map(|c| {
                [format!("\\{c}")].into_iter().chain(
                    ["+", "S", "S+"]
                        .iter()
                        .filter(|_| c.starts_with('d'))
                        .map(move |m| format!("\\{c}{m}")),
                )
            })
            .collect();
        all.extend(["\\?", "\\conninfo", "\\e", "\\h", "\\q", "\\timing", "\\x"].map(String::from));
        return filter(all, word);
    };
    let cmd = command
        .trim_start_matches('\\')
        .trim_end_matches(['+', 'S']);
    match cmd {
        "d" | "dt" | "dv" | "dm" | "ds" | "di" | "dp" | "z" | "sv" => relation_names(catalog, word),
        "df" | "sf" => filter(catalog.functions.iter().cloned(), word),
        "dn" => filter(catalog.schemas.iter().map(|s| quote_ident(s)), word),
        "h" | "help" => keywords(&crate::sql_help::names().collect::<Vec<_>>(), word),
        "x" | "timing" => filter(["on", "off"].map(String::from), word),
        _ => Vec::new(),
    }
}

/// What the prompt shares with the line editor: the catalog and the
/// statement typed so far on earlier lines.
#[derive(Debug, Default)]
pub struct State {
    pub catalog: Catalog,
    pub earlier: String,
}

/// The rustyline helper: completion only.
pub struct Helper {
    pub state: Rc<RefCell<State>>,
}

impl Completer for Helper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let state = self.state.borrow();
        let before = line.get(..pos).unwrap_or(line);
        let (start, list) = candidates(&state.catalog, &state.earlier, before);
        let unique = list.len() == 1;
        Ok((
            start,
            list.into_iter()
                .map(|c| Pair {
                    display: c.clone(),
                    // As readline: a unique completion gets its space,
                    // unless more of the name follows (`schema.`).
                    replacement: if unique && !c.ends_with('.') {
                        format!("{c} ")
                    } else {
                        c
                    },
                })
                .collect(),
        ))
    }
}

impl Hinter for Helper {
    type Hint = String;
}
impl Highlighter for Helper {}
impl Validator for Helper {}
impl rustyline::Helper for Helper {}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        let rel = |schema: &str, name: &str, visible| Relation {
            schema: schema.into(),
            name: name.into(),
            visible,
        };
        let mut columns = HashMap::new();
        columns.insert(
            "public.idm_identity".to_owned(),
            vec![
                "id".to_owned(),
                "username".to_owned(),
                "first_name".to_owned(),
            ],
        );
        columns.insert(
            "public.idm_role".to_owned(),
            vec!["id".to_owned(), "name".to_owned()],
        );
        Catalog {
            schemas: vec!["public".into(), "audit".into()],
            relations: vec![
                rel("public", "idm_identity", true),
                rel("public", "idm_role", true),
                rel("public", "Mixed", true),
                rel("audit", "idm_audit", false),
            ],
            columns,
            functions: vec!["lower".into(), "upper".into(), "length".into()],
        }
    }

    fn complete(line: &str) -> Vec<String> {
        candidates(&catalog(), "", line).1
    }

    #[test]
    fn statement_keywords_at_the_start_in_the_case_typed() {
        assert_eq!(complete("SEL"), vec!["SELECT"]);
        assert_eq!(complete("sel"), vec!["select"]);
        assert!(complete("").contains(&"UPDATE".to_owned()));
        // Nothing typed yet: upper case, as psql's preserve-upper.
        assert_eq!(complete("insert "), vec!["INTO"]);
        assert_eq!(complete("insert i"), vec!["into"]);
        assert_eq!(complete("DELETE "), vec!["FROM"]);
        assert_eq!(complete("SELECT 1; ROLL"), vec!["ROLLBACK"]);
    }

    #[test]
    fn tables_after_from_join_update_into() {
        assert_eq!(complete("SELECT * FROM idm_i"), vec!["idm_identity"]);
        assert_eq!(
            complete("SELECT * FROM idm_identity i JOIN idm_r"),
            vec!["idm_role"]
        );
        assert_eq!(complete("UPDATE idm_r"), vec!["idm_role"]);
        assert_eq!(complete("insert into idm_ro"), vec!["idm_role"]);
        // Not visible: only with its schema; schemas complete with a dot.
        assert_eq!(complete("SELECT * FROM aud"), vec!["audit."]);
        assert_eq!(complete("SELECT * FROM audit.i"), vec!["audit.idm_audit"]);
        // Upper-case names are quoted, as they must be.
        assert_eq!(complete("SELECT * FROM \"Mi"), vec!["\"Mixed\""]);
        assert_eq!(complete("SELECT * FROM a, idm_r"), vec!["idm_role"]);
    }

    #[test]
    fn columns_of_the_tables_in_the_statement() {
        let after_where = complete("SELECT * FROM idm_identity WHERE user");
        assert_eq!(after_where, vec!["username"]);
        // The cursor is at the end: after a table and the start of a word,
        // the clauses.
        assert_eq!(
            complete("SELECT i.f FROM idm_identity i"),
            vec!["inner join"]
        );
        assert_eq!(
            complete("SELECT * FROM idm_identity i WHERE i.first"),
            vec!["i.first_name"]
        );
        assert_eq!(complete("UPDATE idm_role SET na"), vec!["name"]);
        // Functions with the columns.
        assert_eq!(
            complete("SELECT * FROM idm_identity WHERE low"),
            vec!["lower"]
        );
        // Columns of a table named later on an earlier line do not count,
        // but the earlier lines do.
        assert_eq!(
            candidates(&catalog(), "SELECT *\nFROM idm_role r", "WHERE r.na").1,
            vec!["r.name"]
        );
    }

    #[test]
    fn clauses_after_a_table() {
        assert!(complete("SELECT * FROM idm_identity WH").contains(&"WHERE".to_owned()));
        assert!(complete("select * from idm_identity or").contains(&"order by".to_owned()));
    }

    #[test]
    fn settings_after_set_show() {
        assert_eq!(complete("SHOW time"), vec!["TimeZone"]);
        assert_eq!(complete("SET statement_t"), vec!["statement_timeout"]);
    }

    #[test]
    fn backslash_commands_and_their_arguments() {
        assert!(complete("\\d").contains(&"\\dt".to_owned()));
        assert!(complete("\\d").contains(&"\\d+".to_owned()));
        assert_eq!(complete("\\con"), vec!["\\conninfo"]);
        assert_eq!(complete("\\d idm_id"), vec!["idm_identity"]);
        assert_eq!(complete("\\dt+ idm_r"), vec!["idm_role"]);
        assert_eq!(complete("\\dn au"), vec!["audit"]);
        assert_eq!(complete("\\df low"), vec!["lower"]);
        assert_eq!(complete("\\h sel"), vec!["select"]);
        assert_eq!(complete("\\x o"), vec!["off", "on"]);
    }

    #[test]
    fn literals_are_no_names() {
        assert_eq!(tokens("SELECT 'FROM x' FROM t").len(), 4);
        assert_eq!(
            statement_tables(&tokens(
                "SELECT * FROM idm_identity AS i JOIN idm_role r ON"
            )),
            vec![
                ("i".to_owned(), "idm_identity".to_owned()),
                ("r".to_owned(), "idm_role".to_owned())
            ]
        );
    }

    #[test]
    fn the_word_starts_where_psql_would() {
        assert_eq!(candidates(&catalog(), "", "SELECT * FROM idm_i").0, 14);
        assert_eq!(candidates(&catalog(), "", "\\d idm_i").0, 3);
        assert_eq!(candidates(&catalog(), "", "SELECT lower(user").0, 13);
    }
}
