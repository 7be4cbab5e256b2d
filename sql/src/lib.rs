//! SQL analysis for iam-pgbroker, on PostgreSQL's own parser
//! ([libpg_query](https://github.com/pganalyze/libpg_query) through the
//! `pg_query` crate): what the guard sees is what the server will run.
//!
//! - [`SqlGuard`] checks one statement against the session's [`Mode`] and
//!   the one table of rules, [`RULES`], over PostgreSQL's own catalog of
//!   its functions, operators and types ([`catalog`]): transaction control,
//!   session state, `COPY`, `DO`, functions that reach outside the database
//!   and relations that hold password hashes are refused; in read sessions
//!   functions are an allow-list (built-in, immutable or stable, executable
//!   by PUBLIC, or reviewed); writes need a write session and schema
//!   changes a DDL grant.
//! - [`convert_placeholders`] turns psycopg2's `%s` into `$1`, `$2`, …
//!   without touching literals, quoted identifiers or comments.
//! - [`normalize`] and [`fingerprint`] give the audit a statement's shape.
//!
//! ```
//! use iam_pgbroker_sql::{convert_placeholders, Mode, SqlGuard};
//!
//! let guard = SqlGuard::new();
//! let sql = convert_placeholders("SELECT * FROM idm_identity WHERE username = %s", 1).unwrap();
//! let verdict = guard.check(&sql, Mode::Read).unwrap();
//! assert_eq!(verdict.kind, "SELECT");
//!
//! let refusal = guard.check("COMMIT; UPDATE idm_identity SET disabled = true", Mode::Read).unwrap_err();
//! assert_eq!(refusal.to_string(), "only one statement per request");
//! ```
//!
//! libpg_query is thread-safe (its memory contexts are per thread), so one
//! [`SqlGuard`] can serve every session concurrently.

#![warn(missing_docs)]

pub mod capture;
pub mod catalog;
mod cursor;
mod guard;
mod placeholders;
mod rules;
pub mod settings;
mod walk;

pub use guard::{copy_header, Mode, Refusal, RefusalKind, SqlGuard, Verdict};
pub use placeholders::{convert_placeholders, PlaceholderError};
pub use rules::{
    function_rule, markdown_catalog, markdown_table, operator_rule, rules, type_rule, GuardRule,
    Permit, ReadAllowances, RuleKind, CATCH_ALL, REVIEWED_EXTENSIONS, RULES, UNKNOWN_STATEMENT,
};
pub use settings::{SettingChange, ALLOWED_SETTINGS};

/// The statement with its constants replaced by `$n`, as pg_query normalizes
/// it (`SELECT * FROM t WHERE a = 'x'` → `SELECT * FROM t WHERE a = $1`);
/// `None` when it does not parse.
///
/// This parses the text again (libpg_query has no entry point that reuses a
/// tree); call it once per statement, for the audit record.
pub fn normalize(sql: &str) -> Option<String> {
    pg_query::normalize(sql).ok()
}

/// pg_query's fingerprint of the statement: 16 hex digits, equal for
/// statements that differ only in constants; `None` when it does not parse.
///
/// Like [`normalize`], this parses the text again.
pub fn fingerprint(sql: &str) -> Option<String> {
    pg_query::fingerprint(sql, 0, 0).ok().map(|f| f.hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_and_fingerprint() {
        assert_eq!(
            normalize("SELECT * FROM t WHERE a = 'x'").as_deref(),
            Some("SELECT * FROM t WHERE a = $1")
        );
        let a = fingerprint("SELECT * FROM t WHERE a = 'x'").unwrap();
        let b = fingerprint("select * from t where a = 'y'").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 16);
        assert_eq!(normalize("SELEC"), None);
        assert_eq!(fingerprint("SELEC"), None);
    }
}
