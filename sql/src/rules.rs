//! The one table of what the guard allows and refuses.
//!
//! Every decision [`SqlGuard`](crate::SqlGuard) takes comes from a row of
//! [`RULES`]: the statement kinds, the clauses that turn a read into a write,
//! the functions that reach outside the database, and the relations that hold
//! secrets. `docs/security.md` embeds [`markdown_table`], generated from the
//! same rows, so the documentation cannot drift from the code.

use std::fmt;

use crate::guard::Mode;

/// What a [`GuardRule`] matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleKind {
    /// A statement kind, by the label the guard gives it (`"SELECT"`,
    /// `"COPY"`, `"SET ROLE"`, …).
    Statement,
    /// A clause that changes what a statement does: a locking clause,
    /// a data-modifying `WITH`, `SELECT … INTO`.
    Clause,
    /// A function called anywhere in the statement, by the last component of
    /// its name, lower-cased. `*` in the pattern matches any run of characters.
    Function,
    /// A relation (table or view) referenced anywhere in the statement, by its
    /// name without schema, lower-cased.
    Relation,
    /// The target of `INSERT`, `UPDATE`, `DELETE`, `MERGE` or `LOCK`, as
    /// `schema.name` when qualified, else `name`.
    WriteTarget,
}

impl RuleKind {
    fn as_str(self) -> &'static str {
        match self {
            RuleKind::Statement => "statement",
            RuleKind::Clause => "clause",
            RuleKind::Function => "function",
            RuleKind::Relation => "relation",
            RuleKind::WriteTarget => "write target",
        }
    }
}

/// The least a session must be granted for a rule's subject to pass.
///
/// Ordered from the most to the least permissive, so that the strictest of
/// several requirements is their maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permit {
    /// Allowed in every session, read-only ones included.
    Read,
    /// Allowed in write sessions only.
    Write,
    /// Allowed in write sessions whose grant says `ddl = true`.
    Ddl,
    /// Refused in every session.
    Never,
}

impl Permit {
    /// Whether a session in `mode` may do what this permit guards.
    pub fn allows(self, mode: Mode) -> bool {
        match self {
            Permit::Read => true,
            Permit::Write => matches!(mode, Mode::Write { .. }),
            Permit::Ddl => matches!(mode, Mode::Write { ddl: true }),
            Permit::Never => false,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Permit::Read => "every session",
            Permit::Write => "write sessions",
            Permit::Ddl => "write sessions with `ddl = true`",
            Permit::Never => "never",
        }
    }
}

impl fmt::Display for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of the guard's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardRule {
    /// What the row matches.
    pub kind: RuleKind,
    /// The statement label, or the function / relation name pattern
    /// (lower case, `*` matches any run of characters).
    pub pattern: &'static str,
    /// The least grant that lets it through.
    pub permit: Permit,
    /// Why: shown to the client in a refusal and in the documentation.
    pub reason: &'static str,
}

impl GuardRule {
    /// Whether `name` (already lower-cased) matches this row's pattern.
    pub fn matches(&self, name: &str) -> bool {
        glob_match(self.pattern, name)
    }
}

const fn stmt(pattern: &'static str, permit: Permit, reason: &'static str) -> GuardRule {
    GuardRule {
        kind: RuleKind::Statement,
        pattern,
        permit,
        reason,
    }
}

const fn clause(pattern: &'static str, permit: Permit, reason: &'static str) -> GuardRule {
    GuardRule {
        kind: RuleKind::Clause,
        pattern,
        permit,
        reason,
    }
}

const fn func(pattern: &'static str, permit: Permit, reason: &'static str) -> GuardRule {
    GuardRule {
        kind: RuleKind::Function,
        pattern,
        permit,
        reason,
    }
}

const fn rel(pattern: &'static str, permit: Permit, reason: &'static str) -> GuardRule {
    GuardRule {
        kind: RuleKind::Relation,
        pattern,
        permit,
        reason,
    }
}

const fn target(pattern: &'static str, permit: Permit, reason: &'static str) -> GuardRule {
    GuardRule {
        kind: RuleKind::WriteTarget,
        pattern,
        permit,
        reason,
    }
}

use Permit::{Ddl, Never, Read, Write};

const READS: &str = "reads data";
const WRITES: &str = "writes data";
const TX: &str = "the broker owns transaction control: use the protocol's commit and rollback";
const SESSION: &str = "changes session state that would outlive the request";
const CURSOR: &str = "cursors and prepared statements outlive the request";
const SCHEMA: &str = "changes the schema";
const MAINTENANCE: &str = "maintenance that rewrites or locks whole tables";
const OUTSIDE: &str = "reaches outside the database (foreign servers, files, programs)";
const ROLES: &str = "changes roles, passwords or settings of every future session";
const SERVER_CODE: &str = "installs code that runs inside the server process";
const FILES: &str = "reads or writes files on the database server";
const LARGE_OBJECTS: &str =
    "large objects: lo_import/lo_export read and write server files, and large objects outlive the session";
const SIGNALS: &str = "signals or controls other server processes";
const CONFIG: &str = "changes configuration of the session or the server";
const ADVISORY: &str = "advisory locks can outlive the statement and block other clients";
const WAL: &str = "server-wide WAL, backup and replication control";
const SQL_TEXT: &str = "builds and runs its own SQL from its arguments, out of the guard's sight";
const INFO: &str = "read-only information";
const STATS: &str = "holds sample values of every column, password hashes in pg_authid included";

/// The guard's table: every statement kind, clause, function and relation it
/// knows, with the least grant that lets it through.
///
/// Statement rows cover every statement PostgreSQL's grammar has; a statement
/// the guard does not know is refused ([`UNKNOWN_STATEMENT`]). Function rows are
/// a deny list: a function not listed here is allowed (it still runs inside
/// the broker's `READ ONLY` transaction in read sessions). The first matching
/// function row wins.
pub static RULES: &[GuardRule] = &[
    // --- reading -----------------------------------------------------------
    stmt("SELECT", Read, "reads data (also TABLE name)"),
    stmt("VALUES", Read, READS),
    stmt("SHOW", Read, "reads a setting"),
    stmt(
        "EXPLAIN",
        Read,
        "plans a statement without running it (its functions and relations are still checked); \
         EXPLAIN ANALYZE runs it, so the explained statement must be allowed itself",
    ),
    // --- writing -----------------------------------------------------------
    stmt("INSERT", Write, WRITES),
    stmt("UPDATE", Write, WRITES),
    stmt("DELETE", Write, WRITES),
    stmt("MERGE", Write, WRITES),
    stmt("LOCK", Write, "locks tables until the transaction ends"),
    clause(
        "FOR UPDATE / FOR NO KEY UPDATE / FOR SHARE / FOR KEY SHARE",
        Write,
        "locks rows",
    ),
    clause(
        "WITH … INSERT / UPDATE / DELETE / MERGE",
        Write,
        "a data-modifying WITH writes data",
    ),
    clause("SELECT … INTO", Ddl, "creates a table"),
    // --- transaction control -------------------------------------------------
    stmt("BEGIN", Never, TX),
    stmt("START TRANSACTION", Never, TX),
    stmt("COMMIT", Never, TX),
    stmt("ROLLBACK", Never, TX),
    stmt("SAVEPOINT", Never, TX),
    stmt("RELEASE SAVEPOINT", Never, TX),
    stmt("ROLLBACK TO SAVEPOINT", Never, TX),
    stmt("PREPARE TRANSACTION", Never, TX),
    stmt("COMMIT PREPARED", Never, TX),
    stmt("ROLLBACK PREPARED", Never, TX),
    stmt("SET TRANSACTION", Never, TX),
    stmt("SET SESSION CHARACTERISTICS", Never, TX),
    stmt("SET CONSTRAINTS", Never, TX),
    // --- session state -------------------------------------------------------
    stmt("SET", Never, SESSION),
    stmt("RESET", Never, SESSION),
    stmt("SET ROLE", Never, "changes the role the session acts as"),
    stmt(
        "SET SESSION AUTHORIZATION",
        Never,
        "changes the user the session acts as",
    ),
    stmt("DISCARD", Never, SESSION),
    stmt("LISTEN", Never, "notifications outlive the request"),
    stmt("UNLISTEN", Never, "notifications outlive the request"),
    stmt("NOTIFY", Never, "sends notifications to other sessions"),
    stmt("PREPARE", Never, CURSOR),
    stmt(
        "EXECUTE",
        Never,
        "runs a prepared statement the guard cannot see (possibly the broker's own)",
    ),
    stmt("DEALLOCATE", Never, CURSOR),
    stmt("DECLARE CURSOR", Never, CURSOR),
    stmt("FETCH", Never, CURSOR),
    stmt("MOVE", Never, CURSOR),
    stmt("CLOSE", Never, CURSOR),
    // --- outside the database, server control ----------------------------------
    stmt(
        "COPY",
        Never,
        "COPY … PROGRAM runs shell commands and COPY … FILE reads and writes server files",
    ),
    stmt("DO", Never, "runs procedural code the guard cannot see"),
    stmt(
        "CALL",
        Never,
        "procedures can commit and run code the guard cannot see",
    ),
    stmt("CHECKPOINT", Never, "server-wide I/O"),
    stmt("LOAD", Never, "loads a shared library into the server"),
    stmt("ALTER SYSTEM", Never, "writes the server configuration"),
    stmt("CREATE DATABASE", Never, "server-wide"),
    stmt("ALTER DATABASE", Never, ROLES),
    stmt("DROP DATABASE", Never, "server-wide"),
    stmt("CREATE ROLE", Never, ROLES),
    stmt("ALTER ROLE", Never, ROLES),
    stmt("DROP ROLE", Never, ROLES),
    stmt("GRANT ROLE", Never, ROLES),
    stmt("REVOKE ROLE", Never, ROLES),
    stmt(
        "GRANT ON PARAMETER",
        Never,
        "lets roles change server settings",
    ),
    stmt("CREATE TABLESPACE", Never, "uses a directory on the server"),
    stmt("ALTER TABLESPACE", Never, "uses a directory on the server"),
    stmt("DROP TABLESPACE", Never, "uses a directory on the server"),
    stmt("CREATE LANGUAGE", Never, SERVER_CODE),
    stmt(
        "CREATE FUNCTION … LANGUAGE (not sql or plpgsql)",
        Never,
        "C, internal and untrusted languages run code inside the server process",
    ),
    stmt("CREATE EXTENSION", Never, SERVER_CODE),
    stmt("ALTER EXTENSION", Never, SERVER_CODE),
    stmt("CREATE FOREIGN DATA WRAPPER", Never, OUTSIDE),
    stmt("ALTER FOREIGN DATA WRAPPER", Never, OUTSIDE),
    stmt("CREATE SERVER", Never, OUTSIDE),
    stmt("ALTER SERVER", Never, OUTSIDE),
    stmt("CREATE USER MAPPING", Never, OUTSIDE),
    stmt("ALTER USER MAPPING", Never, OUTSIDE),
    stmt("DROP USER MAPPING", Never, OUTSIDE),
    stmt("CREATE FOREIGN TABLE", Never, OUTSIDE),
    stmt("IMPORT FOREIGN SCHEMA", Never, OUTSIDE),
    stmt("CREATE SUBSCRIPTION", Never, OUTSIDE),
    stmt("ALTER SUBSCRIPTION", Never, OUTSIDE),
    stmt("DROP SUBSCRIPTION", Never, OUTSIDE),
    stmt("CREATE PUBLICATION", Never, WAL),
    stmt("ALTER PUBLICATION", Never, WAL),
    // --- maintenance -------------------------------------------------------
    stmt("VACUUM", Ddl, MAINTENANCE),
    stmt("ANALYZE", Ddl, MAINTENANCE),
    stmt("CLUSTER", Ddl, MAINTENANCE),
    stmt("REINDEX", Ddl, MAINTENANCE),
    stmt("REFRESH MATERIALIZED VIEW", Ddl, MAINTENANCE),
    // --- DDL ---------------------------------------------------------------
    stmt(
        "CREATE FUNCTION",
        Ddl,
        "changes the schema; a function body given as a string is not checked by the guard",
    ),
    stmt(
        "CREATE PROCEDURE",
        Ddl,
        "changes the schema; a procedure body given as a string is not checked by the guard",
    ),
    stmt("ALTER FUNCTION", Ddl, SCHEMA),
    stmt("CREATE TABLE", Ddl, SCHEMA),
    stmt("CREATE TABLE AS", Ddl, SCHEMA),
    stmt("CREATE MATERIALIZED VIEW", Ddl, SCHEMA),
    stmt("CREATE VIEW", Ddl, SCHEMA),
    stmt("CREATE INDEX", Ddl, SCHEMA),
    stmt("CREATE SEQUENCE", Ddl, SCHEMA),
    stmt("ALTER SEQUENCE", Ddl, SCHEMA),
    stmt("ALTER TABLE", Ddl, SCHEMA),
    stmt("ALTER TABLE ALL IN TABLESPACE", Ddl, SCHEMA),
    stmt("DROP", Ddl, SCHEMA),
    stmt(
        "TRUNCATE",
        Ddl,
        "removes all rows at once, bypassing row-level checks",
    ),
    stmt("COMMENT", Ddl, SCHEMA),
    stmt("SECURITY LABEL", Ddl, SCHEMA),
    stmt("GRANT", Ddl, "changes privileges"),
    stmt("REVOKE", Ddl, "changes privileges"),
    stmt("ALTER DEFAULT PRIVILEGES", Ddl, "changes privileges"),
    stmt("CREATE SCHEMA", Ddl, SCHEMA),
    stmt("CREATE TYPE", Ddl, SCHEMA),
    stmt("ALTER TYPE", Ddl, SCHEMA),
    stmt("CREATE DOMAIN", Ddl, SCHEMA),
    stmt("ALTER DOMAIN", Ddl, SCHEMA),
    stmt("CREATE AGGREGATE", Ddl, SCHEMA),
    stmt("CREATE OPERATOR", Ddl, SCHEMA),
    stmt("ALTER OPERATOR", Ddl, SCHEMA),
    stmt("CREATE OPERATOR CLASS", Ddl, SCHEMA),
    stmt("CREATE OPERATOR FAMILY", Ddl, SCHEMA),
    stmt("ALTER OPERATOR FAMILY", Ddl, SCHEMA),
    stmt("CREATE COLLATION", Ddl, SCHEMA),
    stmt("ALTER COLLATION", Ddl, SCHEMA),
    stmt("CREATE TEXT SEARCH", Ddl, SCHEMA),
    stmt("ALTER TEXT SEARCH", Ddl, SCHEMA),
    stmt("CREATE CAST", Ddl, SCHEMA),
    stmt("CREATE CONVERSION", Ddl, SCHEMA),
    stmt("CREATE TRANSFORM", Ddl, SCHEMA),
    stmt("CREATE ACCESS METHOD", Ddl, SCHEMA),
    stmt("CREATE STATISTICS", Ddl, SCHEMA),
    stmt("ALTER STATISTICS", Ddl, SCHEMA),
    stmt("CREATE TRIGGER", Ddl, SCHEMA),
    stmt("CREATE EVENT TRIGGER", Ddl, SCHEMA),
    stmt("ALTER EVENT TRIGGER", Ddl, SCHEMA),
    stmt("CREATE RULE", Ddl, SCHEMA),
    stmt("CREATE POLICY", Ddl, SCHEMA),
    stmt("ALTER POLICY", Ddl, SCHEMA),
    stmt("ALTER … RENAME", Ddl, SCHEMA),
    stmt("ALTER … SET SCHEMA", Ddl, SCHEMA),
    stmt("ALTER … OWNER TO", Ddl, SCHEMA),
    stmt("ALTER … DEPENDS ON EXTENSION", Ddl, SCHEMA),
    stmt("DROP OWNED", Ddl, SCHEMA),
    stmt("REASSIGN OWNED", Ddl, SCHEMA),
    // --- functions ---------------------------------------------------------
    func("pg_read_file", Never, FILES),
    func("pg_read_binary_file", Never, FILES),
    func("pg_stat_file", Never, FILES),
    func("pg_ls_*", Never, FILES),
    func("pg_file_*", Never, FILES),
    func("pg_logdir_ls", Never, FILES),
    func("pg_show_all_file_settings", Never, FILES),
    func("pg_hba_file_rules", Never, FILES),
    func("pg_ident_file_mappings", Never, FILES),
    func("lo_*", Never, LARGE_OBJECTS),
    func("loread", Never, LARGE_OBJECTS),
    func("lowrite", Never, LARGE_OBJECTS),
    func("pg_terminate_backend", Never, SIGNALS),
    func("pg_cancel_backend", Never, SIGNALS),
    func("pg_signal_backend", Never, SIGNALS),
    func("pg_reload_conf", Never, CONFIG),
    func("pg_rotate_logfile*", Never, SIGNALS),
    func("pg_promote", Never, SIGNALS),
    func("pg_log_backend_memory_contexts", Never, SIGNALS),
    func("pg_wal_replay_*", Never, SIGNALS),
    func("pg_xlog_replay_*", Never, SIGNALS),
    func("set_config", Never, CONFIG),
    func("setseed", Never, SESSION),
    func("pg_advisory_*", Never, ADVISORY),
    func("pg_try_advisory_*", Never, ADVISORY),
    func("dblink*", Never, "connects to other servers"),
    func("pg_notify", Never, "sends notifications to other sessions"),
    func(
        "pg_sleep*",
        Never,
        "ties up a server connection (the statement timeout would end it, but the slot is held)",
    ),
    func("pg_switch_wal", Never, WAL),
    func("pg_switch_xlog", Never, WAL),
    func("pg_create_restore_point", Never, WAL),
    func("pg_start_backup", Never, WAL),
    func("pg_stop_backup", Never, WAL),
    func("pg_backup_*", Never, WAL),
    func("pg_log_standby_snapshot", Never, WAL),
    func("pg_logical_emit_message", Never, WAL),
    func("pg_replication_*", Never, WAL),
    func("pg_create_*_replication_slot", Never, WAL),
    func("pg_copy_*_replication_slot", Never, WAL),
    func("pg_drop_replication_slot", Never, WAL),
    func("pg_logical_slot_*", Never, WAL),
    func("pg_sync_replication_slots", Never, WAL),
    func("pg_stat_reset*", Never, "resets server-wide statistics"),
    func(
        "pg_stat_statements_reset",
        Never,
        "resets server-wide statistics",
    ),
    func("query_to_xml*", Never, SQL_TEXT),
    func("cursor_to_xml*", Never, SQL_TEXT),
    func("table_to_xml*", Never, SQL_TEXT),
    func("schema_to_xml*", Never, SQL_TEXT),
    func("database_to_xml*", Never, SQL_TEXT),
    func("ts_stat", Never, SQL_TEXT),
    func("ts_rewrite", Never, SQL_TEXT),
    func("crosstab*", Never, SQL_TEXT),
    func("connectby", Never, SQL_TEXT),
    func(
        "nextval",
        Write,
        "advances a sequence (PostgreSQL refuses it in read-only transactions)",
    ),
    func("setval", Write, "sets a sequence"),
    func("brin_summarize_*", Ddl, MAINTENANCE),
    func("brin_desummarize_range", Ddl, MAINTENANCE),
    func("gin_clean_pending_list", Ddl, MAINTENANCE),
    func("pg_import_system_collations", Ddl, SCHEMA),
    func("pg_restore_*_stats", Ddl, "changes planner statistics"),
    func("pg_clear_*_stats", Ddl, "changes planner statistics"),
    func("pg_truncate_visibility_map", Ddl, MAINTENANCE),
    func("txid_current", Read, INFO),
    func("pg_current_xact_id", Read, INFO),
    func("current_setting", Read, INFO),
    // --- relations ---------------------------------------------------------
    rel("pg_authid", Never, "reads password hashes"),
    rel("pg_shadow", Never, "reads password hashes"),
    rel(
        "pg_user_mapping",
        Never,
        "reads passwords for foreign servers",
    ),
    rel(
        "pg_user_mappings",
        Never,
        "reads passwords for foreign servers",
    ),
    rel("pg_statistic", Never, STATS),
    rel("pg_stats", Never, STATS),
    rel("pg_statistic_ext_data", Never, STATS),
    rel("pg_stats_ext", Never, STATS),
    rel("pg_stats_ext_exprs", Never, STATS),
    rel(
        "pg_subscription",
        Never,
        "holds connection strings with passwords",
    ),
    rel("pg_hba_file_rules", Never, FILES),
    rel("pg_ident_file_mappings", Never, FILES),
    rel("pg_file_settings", Never, FILES),
    target("pg_catalog.*", Ddl, "changes the system catalogs"),
    target("pg_toast.*", Ddl, "changes the system catalogs"),
    target("information_schema.*", Ddl, "changes the system catalogs"),
    target("pg_*", Ddl, "changes the system catalogs"),
];

/// The row used for a statement the guard has no row for: refused.
pub static UNKNOWN_STATEMENT: GuardRule = GuardRule {
    kind: RuleKind::Statement,
    pattern: "(statement kind not known to the guard)",
    permit: Never,
    reason: "the guard refuses what it does not know",
};

/// The guard's table, see [`RULES`].
pub fn rules() -> &'static [GuardRule] {
    RULES
}

/// The first row of `kind` whose pattern matches `name`.
#[cfg(test)]
fn find(kind: RuleKind, name: &str) -> Option<&'static GuardRule> {
    RULES.iter().find(|r| r.kind == kind && r.matches(name))
}

/// The statement row labelled `label`; [`UNKNOWN_STATEMENT`] when there is none
/// (a test makes sure every label the guard produces has a row).
pub(crate) fn statement(label: &str) -> &'static GuardRule {
    RULES
        .iter()
        .find(|r| matches!(r.kind, RuleKind::Statement | RuleKind::Clause) && r.pattern == label)
        .unwrap_or(&UNKNOWN_STATEMENT)
}

/// `*` matches any run of characters (also none); everything else literally.
fn glob_match(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        // No `*` at all: exact match.
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// The table as Markdown, for `docs/security.md`.
///
/// Rows with the same kind, permit and reason are merged into one line, so
/// the document stays readable while every pattern of [`RULES`] appears.
pub fn markdown_table() -> String {
    let mut groups: Vec<(RuleKind, Permit, &'static str, Vec<&'static str>)> = Vec::new();
    for rule in RULES {
        match groups
            .iter_mut()
            .find(|(k, p, r, _)| *k == rule.kind && *p == rule.permit && *r == rule.reason)
        {
            Some(group) => group.3.push(rule.pattern),
            None => groups.push((rule.kind, rule.permit, rule.reason, vec![rule.pattern])),
        }
    }
    let mut out =
        String::from("| Kind | Statement, clause, function or relation | Allowed in | Why |\n");
    out.push_str("| --- | --- | --- | --- |\n");
    for (kind, permit, reason, patterns) in groups {
        let patterns: Vec<String> = patterns.iter().map(|p| format!("`{p}`")).collect();
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            kind.as_str(),
            patterns.join(", "),
            permit,
            reason.replace('|', "\\|")
        ));
    }
    out.push_str(&format!(
        "| statement | any other statement | {} | {} |\n",
        UNKNOWN_STATEMENT.permit, UNKNOWN_STATEMENT.reason
    ));
    out.push_str(
        "| function | any other function | every session | runs inside the broker's transaction (READ ONLY in read sessions) |\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob() {
        assert!(glob_match("lo_*", "lo_import"));
        assert!(glob_match("lo_*", "lo_"));
        assert!(!glob_match("lo_*", "loread"));
        assert!(glob_match(
            "pg_create_*_replication_slot",
            "pg_create_logical_replication_slot"
        ));
        assert!(!glob_match(
            "pg_create_*_replication_slot",
            "pg_create_restore_point"
        ));
        assert!(glob_match("set_config", "set_config"));
        assert!(!glob_match("set_config", "set_config2"));
        assert!(!glob_match("set_config", "set_confi"));
        assert!(glob_match("a*b*c", "abc"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*bc*c", "abc"));
        assert!(glob_match("*", ""));
        assert!(glob_match("pg_catalog.*", "pg_catalog.pg_proc"));
    }

    #[test]
    fn patterns_are_lower_case_and_unique() {
        for rule in RULES {
            if matches!(
                rule.kind,
                RuleKind::Function | RuleKind::Relation | RuleKind::WriteTarget
            ) {
                assert_eq!(rule.pattern, rule.pattern.to_lowercase(), "{rule:?}");
            }
            let same = RULES
                .iter()
                .filter(|r| r.kind == rule.kind && r.pattern == rule.pattern)
                .count();
            assert_eq!(same, 1, "duplicate row {rule:?}");
        }
    }

    #[test]
    fn no_function_row_is_shadowed() {
        // First match wins, so a row must not be fully hidden behind an
        // earlier, broader one.
        for (i, rule) in RULES.iter().enumerate() {
            if rule.kind != RuleKind::Function || rule.pattern.contains('*') {
                continue;
            }
            let first = find(RuleKind::Function, rule.pattern).unwrap();
            assert_eq!(
                first, &RULES[i],
                "{} is shadowed by {first:?}",
                rule.pattern
            );
        }
    }

    #[test]
    fn markdown_mentions_every_pattern() {
        let md = markdown_table();
        for rule in RULES {
            assert!(
                md.contains(&format!("`{}`", rule.pattern)),
                "{}",
                rule.pattern
            );
        }
    }
}
