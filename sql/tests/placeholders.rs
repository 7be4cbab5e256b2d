//! Byte-level tests of psycopg2-style placeholder conversion, and a property
//! test: conversion never changes text inside literals, quoted identifiers or
//! comments.

use std::borrow::Cow;

use iam_pgbroker_sql::{convert_placeholders, PlaceholderError};
use pg_query::protobuf::Token;
use proptest::prelude::*;

fn ok(sql: &str, n: usize) -> String {
    match convert_placeholders(sql, n) {
        Ok(s) => s.into_owned(),
        Err(e) => panic!("{sql:?} with {n} params: {e}"),
    }
}

fn err(sql: &str, n: usize) -> PlaceholderError {
    match convert_placeholders(sql, n) {
        Ok(s) => panic!("{sql:?} with {n} params converted to {s:?}"),
        Err(e) => e,
    }
}

#[test]
fn no_parameters_no_processing() {
    for sql in [
        "SELECT 5 % 3",
        "SELECT '%s'",
        "SELECT %s",
        "SELECT %(x)s",
        "SELECT 'unterminated %",
    ] {
        assert!(matches!(convert_placeholders(sql, 0), Ok(Cow::Borrowed(s)) if s == sql));
    }
}

#[test]
fn positional() {
    assert_eq!(ok("SELECT %s", 1), "SELECT $1");
    assert_eq!(ok("SELECT %s, %s, %s", 3), "SELECT $1, $2, $3");
    assert_eq!(
        ok("SELECT * FROM t WHERE a=%s AND b<>%s", 2),
        "SELECT * FROM t WHERE a=$1 AND b<>$2"
    );
    assert_eq!(ok("SELECT %s::int,(%s)", 2), "SELECT $1::int,($2)");
    assert_eq!(ok("SELECT %s%s", 2), "SELECT $1$2");
    let many: String = (0..12).map(|_| "%s").collect::<Vec<_>>().join(",");
    assert_eq!(
        ok(&format!("VALUES ({many})"), 12),
        "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)"
    );
}

#[test]
fn literal_percent() {
    assert_eq!(ok("SELECT %s, 100%%", 1), "SELECT $1, 100%");
    assert_eq!(ok("SELECT 5 %% 3, %s", 1), "SELECT 5 % 3, $1");
    assert_eq!(ok("SELECT %%s, %s", 1), "SELECT %s, $1");
    assert_eq!(ok("SELECT %%%s", 1), "SELECT %$1");
}

#[test]
fn literals_are_untouched() {
    assert_eq!(ok("SELECT '%s', %s", 1), "SELECT '%s', $1");
    // psycopg2's `%%` still means one percent inside a literal.
    assert_eq!(
        ok("SELECT 'it''s %s %% %d', %s", 1),
        "SELECT 'it''s %s % %d', $1"
    );
    assert_eq!(ok(r"SELECT E'\'%s', %s", 1), r"SELECT E'\'%s', $1");
    assert_eq!(ok(r"SELECT e'%s\\', %s", 1), r"SELECT e'%s\\', $1");
    assert_eq!(ok("SELECT $$%s$$, %s", 1), "SELECT $$%s$$, $1");
    assert_eq!(
        ok("SELECT $tag$ '%s' $$ %s $tag$, %s", 1),
        "SELECT $tag$ '%s' $$ %s $tag$, $1"
    );
    assert_eq!(ok("SELECT B'01', X'1F', %s", 1), "SELECT B'01', X'1F', $1");
    assert_eq!(ok(r"SELECT U&'%s\0041', %s", 1), r"SELECT U&'%s\0041', $1");
    assert_eq!(ok("SELECT 'a' 'b%s', %s", 1), "SELECT 'a' 'b%s', $1");
    assert_eq!(ok("SELECT N'%s', %s", 1), "SELECT N'%s', $1");
    // PostgreSQL continues a literal across a newline, in the first part's
    // escaping mode: `\'` below is an escaped quote, not the end.
    assert_eq!(
        ok("SELECT E'a'\n'\\'%s', %s", 1),
        "SELECT E'a'\n'\\'%s', $1"
    );
}

#[test]
fn quoted_identifiers_are_untouched() {
    assert_eq!(
        ok("SELECT \"a%s\" FROM t WHERE b = %s", 1),
        "SELECT \"a%s\" FROM t WHERE b = $1"
    );
    assert_eq!(ok("SELECT \"a\"\"%s\" , %s", 1), "SELECT \"a\"\"%s\" , $1");
    assert_eq!(ok("SELECT U&\"%s\" , %s", 1), "SELECT U&\"%s\" , $1");
}

#[test]
fn comments_are_untouched() {
    assert_eq!(ok("SELECT %s -- %s %d %\n", 1), "SELECT $1 -- %s %d %\n");
    assert_eq!(ok("SELECT /* %s %( */ %s", 1), "SELECT /* %s %( */ $1");
    assert_eq!(
        ok("SELECT /* a /* %s */ %s */ %s", 1),
        "SELECT /* a /* %s */ %s */ $1"
    );
    assert_eq!(ok("SELECT %s --%s", 1), "SELECT $1 --%s");
}

#[test]
fn utf8_around_placeholders() {
    assert_eq!(
        ok("SELECT 'Žluťoučký %s' AS kůň, %s AS příjmení", 1),
        "SELECT 'Žluťoučký %s' AS kůň, $1 AS příjmení"
    );
}

#[test]
fn dollar_parameters_pass_through() {
    let sql = "SELECT $1, $2 % 3, '%s'";
    assert!(matches!(convert_placeholders(sql, 2), Ok(Cow::Borrowed(s)) if s == sql));
    // The server checks the count of $n.
    assert!(matches!(
        convert_placeholders("SELECT $1", 3),
        Ok(Cow::Borrowed(_))
    ));
}

#[test]
fn mixing_is_an_error() {
    assert_eq!(
        err("SELECT $1, %s", 2),
        PlaceholderError::Mixed { offset: 11 }
    );
    // `%%s` is a literal percent followed by s, not a placeholder.
    assert!(convert_placeholders("SELECT $1, 7 %%s", 1).is_ok());
}

#[test]
fn count_mismatch() {
    let e = err("SELECT %s, %s", 3);
    assert_eq!(
        e,
        PlaceholderError::Count {
            placeholders: 2,
            params: 3
        }
    );
    assert_eq!(
        e.to_string(),
        "statement has 2 placeholders but 3 parameters were given"
    );
    assert_eq!(
        err("SELECT %s, %s", 1),
        PlaceholderError::Count {
            placeholders: 2,
            params: 1
        }
    );
    assert_eq!(
        err("SELECT '%s'", 1),
        PlaceholderError::Count {
            placeholders: 0,
            params: 1
        }
    );
    assert_eq!(
        err("SELECT 100%%", 1),
        PlaceholderError::Count {
            placeholders: 0,
            params: 1
        }
    );
}

#[test]
fn unsupported_placeholders() {
    assert_eq!(
        err("SELECT %d", 1),
        PlaceholderError::Unsupported {
            offset: 7,
            found: 'd'
        }
    );
    assert_eq!(
        err("SELECT %s, %f", 1),
        PlaceholderError::Unsupported {
            offset: 11,
            found: 'f'
        }
    );
    assert_eq!(
        err("SELECT 5 % 3, %s", 1),
        PlaceholderError::Unsupported {
            offset: 9,
            found: ' '
        }
    );
    assert_eq!(
        err("SELECT %é", 1),
        PlaceholderError::Unsupported {
            offset: 7,
            found: 'é'
        }
    );
    let named = err("SELECT %(name)s", 1);
    assert_eq!(named, PlaceholderError::Named { offset: 7 });
    assert!(named.to_string().contains("not supported"), "{named}");
    assert_eq!(
        err("SELECT %s, %", 1),
        PlaceholderError::Lone { offset: 11 }
    );
    assert_eq!(err("SELECT %'x'", 1), PlaceholderError::Lone { offset: 7 });
    assert_eq!(
        err("SELECT %--x\n", 1),
        PlaceholderError::Lone { offset: 7 }
    );
}

#[test]
fn scanner_errors() {
    assert!(matches!(
        err("SELECT 'unterminated %s", 1),
        PlaceholderError::Scan(_)
    ));
    assert!(matches!(err("SELECT $$ %s", 1), PlaceholderError::Scan(_)));
    assert!(matches!(err("SELECT \"%s", 1), PlaceholderError::Scan(_)));
    assert!(matches!(err("SELECT /* %s", 1), PlaceholderError::Scan(_)));
    assert!(matches!(err("SELECT %s\0", 1), PlaceholderError::Scan(_)));
}

/// The placeholder trick a caller might try: a second statement in the text
/// survives conversion and is then refused by the guard, and a value can
/// never become SQL because it is bound, not spliced.
#[test]
fn conversion_then_guard() {
    use iam_pgbroker_sql::{Mode, SqlGuard};
    let guard = SqlGuard::new();
    let sql = ok("SELECT %s; UPDATE t SET a = 1", 1);
    assert!(guard.check(&sql, Mode::Read).is_err());
    let sql = ok("SELECT * FROM t WHERE a = %s -- '; DROP TABLE t; --", 1);
    assert_eq!(guard.check(&sql, Mode::Read).unwrap().kind, "SELECT");
    let sql = ok("SELECT '%s'' ; COMMIT; --', %s", 1);
    assert_eq!(guard.check(&sql, Mode::Read).unwrap().kind, "SELECT");
}

// --- property test ---------------------------------------------------------------

/// The texts of the scanner's literal, quoted-identifier and comment tokens.
/// The protected pieces of `sql`; with `unescape`, string constants as the
/// conversion must leave them (`%%` → `%`, psycopg2's escaped percent).
fn protected(sql: &str, unescape: bool) -> Vec<String> {
    let scanned = pg_query::scan(sql).expect("generated SQL scans");
    scanned
        .tokens
        .iter()
        .filter_map(|t| {
            let text = &sql[t.start as usize..t.end as usize];
            match Token::try_from(t.token) {
                Ok(Token::Sconst | Token::Usconst) if unescape => Some(text.replace("%%", "%")),
                Ok(Token::Sconst | Token::Usconst | Token::Bconst | Token::Xconst) => {
                    Some(text.to_owned())
                }
                Ok(Token::SqlComment | Token::CComment | Token::Uident) => Some(text.to_owned()),
                Ok(Token::Ident) if text.starts_with('"') => Some(text.to_owned()),
                _ => None,
            }
        })
        .collect()
}

/// Characters that stress the conversion inside protected pieces.
fn tricky() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("%s"),
            Just("%%"),
            Just("%"),
            Just("%d"),
            Just("%(x)s"),
            Just("$1"),
            Just("s"),
            Just(" "),
            Just("a"),
            Just("č"),
            Just("\\"),
            Just("-"),
            Just("/"),
            Just("*"),
            Just(";"),
        ],
        0..8,
    )
    .prop_map(|v| v.concat())
}

#[derive(Debug, Clone)]
enum Piece {
    /// Code: becomes `$n`, `%` or stays.
    Code(&'static str),
    /// A protected piece, verbatim.
    Protected(String),
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        prop_oneof![
            Just("%s"),
            Just("%%"),
            Just("5 %% 3"),
            Just("a"),
            Just(","),
            Just("="),
            Just("("),
            Just(")"),
            Just("SELECT"),
            Just("::int"),
        ]
        .prop_map(Piece::Code),
        tricky().prop_map(|s| Piece::Protected(format!("'{}'", s.replace('\'', "''")))),
        tricky().prop_map(|s| Piece::Protected(format!(
            "E'{}'",
            s.replace('\\', "\\\\").replace('\'', "\\'")
        ))),
        tricky().prop_map(|s| Piece::Protected(format!("$q${}$q$", s.replace('$', "")))),
        tricky().prop_map(|s| Piece::Protected(format!("\"x{}\"", s.replace('"', "\"\"")))),
        tricky().prop_map(|s| Piece::Protected(format!("-- {}\n", s))),
        tricky().prop_map(|s| Piece::Protected(format!("/* {} */", s.replace(['*', '/'], "")))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn protected_text_never_changes(pieces in proptest::collection::vec(piece(), 1..20)) {
        // Pieces are separated by a comma so that neighbours cannot merge
        // into other tokens (`E` + `'…'`, `-` + `-- …`), nor two literals
        // into one (PostgreSQL continues a literal across a newline, in the
        // first one's escaping mode).
        let sql: String = pieces
            .iter()
            .map(|p| match p {
                Piece::Code(c) => (*c).to_owned(),
                Piece::Protected(p) => p.clone(),
            })
            .collect::<Vec<_>>()
            .join(" , ");
        let nparams = pieces
            .iter()
            .filter(|p| matches!(p, Piece::Code("%s")))
            .count();
        let before = protected(&sql, true);
        let converted = convert_placeholders(&sql, nparams.max(1));
        if nparams == 0 {
            // Only `%%` and words: one parameter is one too many.
            let expected = Err(PlaceholderError::Count { placeholders: 0, params: 1 });
            prop_assert_eq!(converted, expected);
            return Ok(());
        }
        let converted = converted.map_err(|e| TestCaseError::fail(format!("{sql:?}: {e}")))?;
        prop_assert_eq!(&before, &protected(&converted, false), "{:?} -> {:?}", sql, converted);

        // And the code around them is converted exactly.
        let mut n = 0;
        let expected: String = pieces
            .iter()
            .map(|p| match p {
                Piece::Code("%s") => {
                    n += 1;
                    format!("${n}")
                }
                Piece::Code(c) => c.replace("%%", "%"),
                Piece::Protected(p) if p.starts_with(['\'', 'E', '$']) => p.replace("%%", "%"),
                Piece::Protected(p) => p.clone(),
            })
            .collect::<Vec<_>>()
            .join(" , ");
        prop_assert_eq!(converted.as_ref(), expected.as_str());
    }

    #[test]
    fn never_panics(sql in ".{0,64}", n in 0usize..4) {
        let _ = convert_placeholders(&sql, n);
    }
}
