//! The one table of what the guard allows and refuses.
//!
//! Every decision [`SqlGuard`](crate::SqlGuard) takes comes from a row of
//! [`RULES`] — the statement kinds, the clauses that turn a read into a write,
//! the reviewed functions, the relations that hold secrets — or, for a
//! function, operator or type no row names, from what PostgreSQL itself says
//! about it ([`crate::catalog`]: volatility, who may execute it, whether it
//! is built in or of which extension), turned into a permit by
//! [`function_rule`], [`operator_rule`] and [`type_rule`].
//!
//! Functions are an **allow-list** in read sessions: a read session runs a
//! function only when it is a built-in (or of a reviewed extension) that
//! PUBLIC may execute and that is immutable or stable, or a volatile one a
//! row here allows after review. Anything else — a function only superusers
//! may execute, one of an extension that reaches into server internals,
//! files or other servers, a volatile built-in nobody reviewed, a name the
//! guard does not know — is refused, with a message naming it.
//! `docs/security.md` embeds [`markdown_table`] and [`markdown_catalog`],
//! generated from the same rows and data, so the documentation cannot drift
//! from the code.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, OnceLock};

use crate::catalog::{catalog, CatalogFunction, CatalogOperator, Volatility};
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
    /// An operator used anywhere in the statement.
    Operator,
    /// A type named anywhere in the statement (a cast, a column definition).
    Type,
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
            RuleKind::Operator => "operator",
            RuleKind::Type => "type",
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
    /// Allowed in write sessions; refused in read sessions because the guard
    /// cannot tell what it does (a function, operator or type it does not
    /// know). Not a write: a write session runs it as any other statement.
    Unchecked,
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
            Permit::Unchecked | Permit::Write => matches!(mode, Mode::Write { .. }),
            Permit::Ddl => matches!(mode, Mode::Write { ddl: true }),
            Permit::Never => false,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Permit::Read => "every session",
            Permit::Unchecked => "write sessions (not known to be safe for read sessions)",
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

const fn operator(pattern: &'static str, permit: Permit, reason: &'static str) -> GuardRule {
    GuardRule {
        kind: RuleKind::Operator,
        pattern,
        permit,
        reason,
    }
}

const fn type_(pattern: &'static str, permit: Permit, reason: &'static str) -> GuardRule {
    GuardRule {
        kind: RuleKind::Type,
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

use Permit::{Ddl, Never, Read, Unchecked, Write};

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
const INTERNALS: &str =
    "initdb's, pg_upgrade's or extension scripts' internals: they change catalog state";
const TRIGGER: &str = "a trigger function: PostgreSQL calls it, a statement cannot";
const HANDLER: &str =
    "access-method, language or text-search internals: PostgreSQL calls them, a statement cannot";
const RANDOM: &str = "volatile only because its result is random";
const CLOCK: &str = "volatile only because it reads the clock or the session's time zone";
const SIZES: &str = "reads the size of a relation, database or tablespace";
const SERVER_STATE: &str =
    "reads the server's state (WAL positions, recovery, control data; no secrets)";
const ACTIVITY: &str = "reads locks, transactions or statistics";
const SAMPLE: &str = "a TABLESAMPLE method: reads a sample of the table";

/// The guard's table: every statement kind, clause, function and relation it
/// knows, with the least grant that lets it through.
///
/// Statement rows cover every statement PostgreSQL's grammar has; a statement
/// the guard does not know is refused ([`UNKNOWN_STATEMENT`]). Function rows
/// are the review on top of PostgreSQL's own catalog: see [`function_rule`]
/// for how a function no row names is judged.
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
    stmt(
        "SET",
        Read,
        "SET and SET LOCAL of an allowed setting (TimeZone, DateStyle, IntervalStyle, \
         extra_float_digits, bytea_output, client_min_messages, search_path, \
         statement_timeout, lock_timeout, work_mem, application_name; see \
         docs/security.md): undone before the connection serves another session",
    ),
    stmt("RESET", Read, "RESET of an allowed setting (as SET)"),
    stmt(
        "SET (other setting)",
        Never,
        "changes session state that would outlive the request; only the allowed settings \
         may be changed (TimeZone, DateStyle, IntervalStyle, extra_float_digits, bytea_output, \
         client_min_messages, search_path, statement_timeout, lock_timeout, work_mem, \
         application_name)",
    ),
    stmt(
        "RESET (other setting)",
        Never,
        "changes session state that would outlive the request; only the allowed settings may be reset",
    ),
    stmt(
        "RESET ALL",
        Never,
        "would also reset the broker's own settings of the session; RESET each setting instead",
    ),
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
        "COPY … PROGRAM runs shell commands and COPY … FILE reads and writes server files \
         (COPY … TO STDOUT and COPY … FROM STDIN travel through the broker)",
    ),
    stmt(
        "COPY TO STDOUT",
        Read,
        "streams a table or a query's result to the client (the query is checked as a SELECT)",
    ),
    stmt(
        "COPY FROM STDIN",
        Write,
        "writes the client's rows into a table, as INSERT does",
    ),
    stmt(
        "COPY (FORMAT binary)",
        Never,
        "binary COPY data cannot travel in the protocol's text frames; use the text or CSV format",
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
    // --- functions: reviewed rows ----------------------------------------------
    // A function no row names is judged by what PostgreSQL says about it
    // (`function_rule`). These rows are the review: every volatile built-in
    // (or of a reviewed extension) has one — a test makes sure — and so do
    // the immutable or stable ones that must not run (they run SQL of their
    // own or reach outside the database). Rows that refuse match the name
    // lower-cased, whatever its quoting; rows that allow match it exactly.
    // The first matching row wins.
    func("pg_read_*", Never, FILES),
    func("pg_stat_file", Never, FILES),
    func("pg_ls_*", Never, FILES),
    func("pg_file_*", Never, FILES),
    func("pg_logdir_ls", Never, FILES),
    func("pg_show_all_file_settings", Never, FILES),
    func("pg_hba_file_rules", Never, FILES),
    func("pg_ident_file_mappings", Never, FILES),
    func("pg_available_wal_summaries", Never, FILES),
    func("pg_wal_summary_contents", Never, FILES),
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
    func("set_limit", Never, SESSION),
    func(
        "pg_input_*",
        Unchecked,
        "runs the input function (and a domain's CHECK) of a type named as text, out of the guard's sight",
    ),
    func("pg_advisory_*", Never, ADVISORY),
    func("pg_try_advisory_*", Never, ADVISORY),
    func(
        "pg_export_snapshot",
        Never,
        "exports a snapshot: a file on the server that other sessions can import",
    ),
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
    func("binary_upgrade_*", Never, INTERNALS),
    func("pg_stop_making_pinned_objects", Never, INTERNALS),
    func("pg_nextoid", Never, INTERNALS),
    func("pg_extension_config_dump", Never, INTERNALS),
    func("ri_fkey_*", Never, TRIGGER),
    func("suppress_redundant_updates_trigger", Never, TRIGGER),
    func("tsvector_update_trigger*", Never, TRIGGER),
    func("unique_key_recheck", Never, TRIGGER),
    func("brinhandler", Never, HANDLER),
    func("bthandler", Never, HANDLER),
    func("ginhandler", Never, HANDLER),
    func("gisthandler", Never, HANDLER),
    func("hashhandler", Never, HANDLER),
    func("spghandler", Never, HANDLER),
    func("blhandler", Never, HANDLER),
    func("heap_tableam_handler", Never, HANDLER),
    func("amvalidate", Never, HANDLER),
    func("plpgsql_call_handler", Never, HANDLER),
    func("plpgsql_inline_handler", Never, HANDLER),
    func("plpgsql_validator", Never, HANDLER),
    func("dsnowball_*", Never, HANDLER),
    func("dintdict_*", Never, HANDLER),
    func("dxsyn_*", Never, HANDLER),
    func("unaccent_init", Never, HANDLER),
    func("unaccent_lexize", Never, HANDLER),
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
    // Volatile, and reviewed: harmless in a read session.
    func("txid_current", Read, INFO),
    func("pg_current_xact_id", Read, INFO),
    func("current_setting", Read, INFO),
    func("current_query", Read, INFO),
    func("random", Read, RANDOM),
    func("random_normal", Read, RANDOM),
    func("array_sample", Read, RANDOM),
    func("array_shuffle", Read, RANDOM),
    func("normal_rand", Read, RANDOM),
    func("gen_random_uuid", Read, RANDOM),
    func("gen_random_bytes", Read, RANDOM),
    func("gen_salt", Read, RANDOM),
    func("uuid_generate_v1", Read, RANDOM),
    func("uuid_generate_v1mc", Read, RANDOM),
    func("uuid_generate_v4", Read, RANDOM),
    func("pgp_pub_encrypt", Read, RANDOM),
    func("pgp_pub_encrypt_bytea", Read, RANDOM),
    func("pgp_sym_encrypt", Read, RANDOM),
    func("pgp_sym_encrypt_bytea", Read, RANDOM),
    func("clock_timestamp", Read, CLOCK),
    func("timeofday", Read, CLOCK),
    func("timezone", Read, CLOCK),
    func("currval", Read, "reads the session's own sequence values"),
    func("lastval", Read, "reads the session's own sequence values"),
    func("pg_sequence_last_value", Read, INFO),
    func("pg_relation_size", Read, SIZES),
    func("pg_table_size", Read, SIZES),
    func("pg_indexes_size", Read, SIZES),
    func("pg_total_relation_size", Read, SIZES),
    func("pg_database_size", Read, SIZES),
    func("pg_tablespace_size", Read, SIZES),
    func("pg_current_wal_lsn", Read, SERVER_STATE),
    func("pg_current_wal_insert_lsn", Read, SERVER_STATE),
    func("pg_current_wal_flush_lsn", Read, SERVER_STATE),
    func("pg_last_wal_receive_lsn", Read, SERVER_STATE),
    func("pg_last_wal_replay_lsn", Read, SERVER_STATE),
    func("pg_last_xact_replay_timestamp", Read, SERVER_STATE),
    func("pg_is_in_recovery", Read, SERVER_STATE),
    func("pg_is_in_backup", Read, SERVER_STATE),
    func("pg_is_wal_replay_paused", Read, SERVER_STATE),
    func("pg_get_wal_replay_pause_state", Read, SERVER_STATE),
    func("pg_get_wal_summarizer_state", Read, SERVER_STATE),
    func("pg_get_wal_resource_managers", Read, SERVER_STATE),
    func("pg_get_wait_events", Read, SERVER_STATE),
    func("pg_jit_available", Read, SERVER_STATE),
    func("pg_control_checkpoint", Read, SERVER_STATE),
    func("pg_control_init", Read, SERVER_STATE),
    func("pg_control_recovery", Read, SERVER_STATE),
    func("pg_control_system", Read, SERVER_STATE),
    func("pg_collation_actual_version", Read, SERVER_STATE),
    func("pg_database_collation_actual_version", Read, SERVER_STATE),
    func("pg_lock_status", Read, ACTIVITY),
    func("pg_blocking_pids", Read, ACTIVITY),
    func("pg_safe_snapshot_blocking_pids", Read, ACTIVITY),
    func("pg_isolation_test_session_is_blocked", Read, ACTIVITY),
    func("pg_notification_queue_usage", Read, ACTIVITY),
    func("pg_get_multixact_members", Read, ACTIVITY),
    func("pg_prepared_xact", Read, ACTIVITY),
    func("pg_xact_commit_timestamp", Read, ACTIVITY),
    func("pg_xact_commit_timestamp_origin", Read, ACTIVITY),
    func("pg_last_committed_xact", Read, ACTIVITY),
    func("pg_xact_status", Read, ACTIVITY),
    func("txid_status", Read, ACTIVITY),
    func("pg_stat_get_xact_*", Read, ACTIVITY),
    func("pg_stat_get_recovery_prefetch", Read, ACTIVITY),
    func("pg_stat_get_io", Read, ACTIVITY),
    func("pg_stat_statements", Read, ACTIVITY),
    func("pg_stat_statements_info", Read, ACTIVITY),
    func(
        "pg_stat_clear_snapshot",
        Read,
        "drops the session's own cached statistics snapshot",
    ),
    func(
        "pg_stat_force_next_flush",
        Read,
        "flushes the session's own statistics counters",
    ),
    func("pg_partition_ancestors", Read, INFO),
    func("pg_partition_tree", Read, INFO),
    func("currtid", Read, INFO),
    func("currtid2", Read, INFO),
    func("int_agg_state", Read, INFO),
    func("int_agg_final_array", Read, INFO),
    func("system", Read, SAMPLE),
    func("bernoulli", Read, SAMPLE),
    func("system_rows", Read, SAMPLE),
    func("system_time", Read, SAMPLE),
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
    rel(
        "user_mapping_options",
        Never,
        "reads passwords for foreign servers",
    ),
    rel(
        "_pg_user_mappings",
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
    rel(
        "pg_largeobject",
        Never,
        "holds the contents of large objects, files imported into the database among them",
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

/// The contrib extensions whose functions, operators and types are judged
/// like PostgreSQL's own (by volatility and privileges, with the reviewed
/// rows above): they compute on values and change nothing else. Every
/// other extension PostgreSQL ships (adminpack, dblink, postgres_fdw,
/// file_fdw, pageinspect, pg_buffercache, pg_surgery, pgstattuple,
/// pg_visibility, amcheck, xml2, …) reads server internals or files,
/// changes data pages or reaches other servers: its functions are refused
/// ([`UNREVIEWED_EXTENSION_FUNCTION`]).
pub static REVIEWED_EXTENSIONS: &[&str] = &[
    "btree_gin",
    "btree_gist",
    "citext",
    "cube",
    "dict_int",
    "dict_xsyn",
    "earthdistance",
    "fuzzystrmatch",
    "hstore",
    "intagg",
    "intarray",
    "isn",
    "lo",
    "ltree",
    "pg_stat_statements",
    "pg_trgm",
    "pgcrypto",
    "seg",
    "tablefunc",
    "tsm_system_rows",
    "tsm_system_time",
    "unaccent",
    "uuid-ossp",
    "bloom",
    "plpgsql",
];

/// A function PostgreSQL (or a reviewed extension) ships, immutable or
/// stable, that PUBLIC may execute, and that no row names.
pub static CATALOG_FUNCTION: GuardRule = func(
    "(any other function of PostgreSQL or a reviewed extension: immutable or stable, executable by PUBLIC)",
    Read,
    "computes or reads; changes nothing (PostgreSQL's own volatility and privileges say so)",
);

/// A function PostgreSQL grants to superusers only.
pub static RESTRICTED_FUNCTION: GuardRule = func(
    "(a function PostgreSQL lets only superusers, or roles granted it, execute)",
    Never,
    "reaches outside the database or controls the server (files, signals, WAL, backups, replication origins, statistics resets)",
);

/// A function of a contrib extension that is not in [`REVIEWED_EXTENSIONS`].
pub static UNREVIEWED_EXTENSION_FUNCTION: GuardRule = func(
    "(a function of any other contrib extension)",
    Never,
    "reads server internals or files, changes data pages, or reaches other servers (adminpack, dblink, pageinspect, …)",
);

/// A volatile function no row reviewed (a test keeps this empty for the
/// versions the catalog covers; it catches what a later version adds).
pub static UNREVIEWED_VOLATILE: GuardRule = func(
    "(a volatile function of PostgreSQL no row reviews)",
    Never,
    "volatile: it may change something, and nobody has checked that it does not",
);

/// A function the guard knows nothing about.
pub static UNKNOWN_FUNCTION: GuardRule = func(
    "(any other function: the application's own, or of an extension the guard does not know)",
    Unchecked,
    "the guard cannot tell what it does; read sessions run only functions it knows to be safe \
     (an administrator may allow the application's read-only helpers with [guard] read_functions)",
);

/// A function the administrator allowed for read sessions.
pub static CONFIGURED_FUNCTION: GuardRule = func(
    "(a function named in [guard] read_functions)",
    Read,
    "allowed in read sessions by the administrator",
);

/// An operator PostgreSQL (or a reviewed extension) ships whose functions
/// are all allowed in read sessions.
pub static CATALOG_OPERATOR: GuardRule = operator(
    "(any operator of PostgreSQL or a reviewed extension)",
    Read,
    "every function behind it is allowed in read sessions",
);

/// An operator of an unreviewed extension, or one behind which a function
/// that read sessions may not run sits.
pub static UNSAFE_OPERATOR: GuardRule = operator(
    "(an operator of any other extension, or over a function read sessions may not run)",
    Never,
    "runs a function the guard does not allow",
);

/// An operator the guard knows nothing about.
pub static UNKNOWN_OPERATOR: GuardRule = operator(
    "(any other operator)",
    Unchecked,
    "the guard cannot tell which function it runs (an administrator may allow it with [guard] read_operators)",
);

/// An operator the administrator allowed for read sessions.
pub static CONFIGURED_OPERATOR: GuardRule = operator(
    "(an operator named in [guard] read_operators)",
    Read,
    "allowed in read sessions by the administrator",
);

/// A type PostgreSQL (or a reviewed extension) ships.
pub static CATALOG_TYPE: GuardRule = type_(
    "(any type of PostgreSQL or a reviewed extension, arrays included)",
    Read,
    "its input and output functions are PostgreSQL's or the extension's own",
);

/// A type the guard knows nothing about.
pub static UNKNOWN_TYPE: GuardRule = type_(
    "(any other type)",
    Unchecked,
    "a cast to it may run a function the guard cannot see (a CREATE CAST function, a domain's CHECK); \
     an administrator may allow it with [guard] read_types",
);

/// A type the administrator allowed for read sessions.
pub static CONFIGURED_TYPE: GuardRule = type_(
    "(a type named in [guard] read_types)",
    Read,
    "allowed in read sessions by the administrator",
);

/// Functions, operators and types an administrator allows in read sessions
/// beyond what the guard knows (`[guard]` in the broker's configuration):
/// the application's own read-only helpers, an extension's functions.
///
/// A pattern is `name` or `schema.name`; `*` matches any run of characters.
/// `schema.name` also matches an unqualified call of `name` (PostgreSQL
/// resolves it through the search path). A pattern never overrides a
/// refusal: it only lets through what the guard does not know.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadAllowances {
    /// `[guard] read_functions`.
    pub functions: Vec<String>,
    /// `[guard] read_operators`.
    pub operators: Vec<String>,
    /// `[guard] read_types`.
    pub types: Vec<String>,
}

impl ReadAllowances {
    fn allows(patterns: &[String], schema: Option<&str>, name: &str) -> bool {
        patterns.iter().any(|p| match p.rsplit_once('.') {
            Some((s, n)) if !n.is_empty() => {
                glob_match(n, name) && schema.is_none_or(|schema| glob_match(s, schema))
            }
            _ => glob_match(p, name),
        })
    }
}

/// Whether a schema-qualified name can be PostgreSQL's own: unqualified,
/// or in `pg_catalog` / `information_schema`.
fn builtin_schema(schema: Option<&str>) -> bool {
    matches!(
        schema,
        None | Some("pg_catalog") | Some("information_schema")
    )
}

/// Whether an entry of `source` can be what `schema` names: PostgreSQL's
/// own live in `pg_catalog` and `information_schema`, an extension's in
/// whatever schema it was installed into.
fn source_fits(source: &str, schema: Option<&str>) -> bool {
    if source == "core" {
        builtin_schema(schema)
    } else {
        schema != Some("information_schema")
    }
}

fn reviewed_source(source: &str) -> bool {
    source == "core" || REVIEWED_EXTENSIONS.contains(&source)
}

/// The row that decides a call of function `schema.name` (`schema` `None`
/// when unqualified; `name` as PostgreSQL sees it after folding unquoted
/// identifiers).
///
/// 1. A reviewed row that refuses (or needs a write or DDL grant) matches
///    the name lower-cased, whatever its quoting or schema.
/// 2. Else, a name PostgreSQL (or a reviewed extension) ships is judged by
///    the catalog: a reviewed row that allows it; refused if only
///    superusers may execute it, if it is an unreviewed extension's, or if
///    it is volatile and no row reviewed it; allowed otherwise.
/// 3. Else it is unknown: refused in read sessions unless `allow` names it.
pub fn function_rule(
    schema: Option<&str>,
    name: &str,
    allow: &ReadAllowances,
) -> &'static GuardRule {
    let lower = name.to_lowercase();
    if let Some(rule) = RULES
        .iter()
        .find(|r| r.kind == RuleKind::Function && r.permit > Read && r.matches(&lower))
    {
        return rule;
    }
    let entries: Vec<&CatalogFunction> = catalog()
        .function(name)
        .iter()
        .filter(|f| source_fits(f.source, schema))
        .collect();
    if entries.is_empty() {
        return if ReadAllowances::allows(&allow.functions, schema, name) {
            &CONFIGURED_FUNCTION
        } else {
            &UNKNOWN_FUNCTION
        };
    }
    if let Some(rule) = RULES
        .iter()
        .find(|r| r.kind == RuleKind::Function && r.permit == Read && r.matches(name))
    {
        return rule;
    }
    if entries.iter().any(|f| !f.public) {
        return &RESTRICTED_FUNCTION;
    }
    let reviewed: Vec<&&CatalogFunction> = entries
        .iter()
        .filter(|f| reviewed_source(f.source))
        .collect();
    if reviewed.is_empty() {
        return &UNREVIEWED_EXTENSION_FUNCTION;
    }
    if reviewed
        .iter()
        .any(|f| f.volatility == Volatility::Volatile)
    {
        return &UNREVIEWED_VOLATILE;
    }
    &CATALOG_FUNCTION
}

/// The row that decides operator `schema.name` (`OPERATOR(schema.name)`
/// when qualified).
pub fn operator_rule(
    schema: Option<&str>,
    name: &str,
    allow: &ReadAllowances,
) -> &'static GuardRule {
    let entries: Vec<&CatalogOperator> = catalog()
        .operator(name)
        .iter()
        .filter(|o| source_fits(o.source, schema))
        .collect();
    if entries.is_empty() {
        return if ReadAllowances::allows(&allow.operators, schema, name) {
            &CONFIGURED_OPERATOR
        } else {
            &UNKNOWN_OPERATOR
        };
    }
    let safe = entries.iter().all(|o| {
        reviewed_source(o.source) && o.functions.split(',').all(operator_function_is_safe)
    });
    if safe {
        &CATALOG_OPERATOR
    } else {
        &UNSAFE_OPERATOR
    }
}

/// Whether the function behind an operator may run in a read session
/// (computed once per name: `=` alone has dozens of functions).
fn operator_function_is_safe(name: &str) -> bool {
    static SAFE: OnceLock<Mutex<HashMap<String, bool>>> = OnceLock::new();
    let cache = SAFE.get_or_init(Default::default);
    if let Some(known) = cache.lock().ok().and_then(|c| c.get(name).copied()) {
        return known;
    }
    let safe = function_rule(None, name, &ReadAllowances::default()).permit == Read;
    if let Ok(mut c) = cache.lock() {
        c.insert(name.to_owned(), safe);
    }
    safe
}

/// The row that decides type `schema.name` (a cast, a column definition).
pub fn type_rule(schema: Option<&str>, name: &str, allow: &ReadAllowances) -> &'static GuardRule {
    let known = catalog()
        .type_(name)
        .iter()
        .any(|t| source_fits(t.source, schema) && reviewed_source(t.source));
    if known {
        &CATALOG_TYPE
    } else if ReadAllowances::allows(&allow.types, schema, name) {
        &CONFIGURED_TYPE
    } else {
        &UNKNOWN_TYPE
    }
}

/// The rows that stand for what no row names: shown at the end of the
/// table, in this order.
pub static CATCH_ALL: &[&GuardRule] = &[
    &UNKNOWN_STATEMENT,
    &RESTRICTED_FUNCTION,
    &UNREVIEWED_EXTENSION_FUNCTION,
    &UNREVIEWED_VOLATILE,
    &CATALOG_FUNCTION,
    &UNKNOWN_FUNCTION,
    &CONFIGURED_FUNCTION,
    &CATALOG_OPERATOR,
    &UNSAFE_OPERATOR,
    &UNKNOWN_OPERATOR,
    &CONFIGURED_OPERATOR,
    &CATALOG_TYPE,
    &UNKNOWN_TYPE,
    &CONFIGURED_TYPE,
];

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

fn markdown_cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// The table as Markdown, for `docs/security.md`.
///
/// Rows with the same kind, permit and reason are merged into one line, so
/// the document stays readable while every pattern of [`RULES`] appears;
/// the rows for what no row names ([`CATCH_ALL`]) come last.
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
    let mut out = String::from(
        "| Kind | Statement, clause, function, operator, type or relation | Allowed in | Why |\n",
    );
    out.push_str("| --- | --- | --- | --- |\n");
    for (kind, permit, reason, patterns) in groups {
        let patterns: Vec<String> = patterns.iter().map(|p| format!("`{p}`")).collect();
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            kind.as_str(),
            markdown_cell(&patterns.join(", ")),
            permit,
            markdown_cell(reason)
        ));
    }
    for rule in CATCH_ALL {
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            rule.kind.as_str(),
            markdown_cell(rule.pattern.trim_start_matches('(').trim_end_matches(')')),
            rule.permit,
            markdown_cell(rule.reason)
        ));
    }
    out
}

/// Every function, operator and type of the catalog with what the guard
/// makes of it, as Markdown: the allow-list in full, for
/// `docs/security.md`.
pub fn markdown_catalog() -> String {
    let none = ReadAllowances::default();
    let mut by_rule: Vec<(&'static GuardRule, Vec<String>)> = Vec::new();
    let mut add = |rule: &'static GuardRule, entry: String| match by_rule
        .iter_mut()
        .find(|(r, _)| std::ptr::eq(*r, rule))
    {
        Some((_, list)) => list.push(entry),
        None => by_rule.push((rule, vec![entry])),
    };
    let mut seen = std::collections::HashSet::new();
    for f in catalog().functions() {
        if seen.insert(f.name) {
            let sources: Vec<&str> = catalog()
                .function(f.name)
                .iter()
                .map(|e| e.source)
                .collect();
            let label = if sources == ["core"] {
                format!("`{}`", f.name)
            } else {
                format!("`{}` ({})", f.name, sources.join(", "))
            };
            add(function_rule(None, f.name, &none), label);
        }
    }
    let functions = by_rule;
    let mut out = String::new();
    out.push_str(&format!(
        "PostgreSQL {} with every contrib extension: {} function names, {} operator names, {} type names \
         (`sql/catalog/*.tsv`, written by `scripts/guard-catalog`).\n\n",
        versions(),
        seen.len(),
        catalog().operators().iter().map(|o| o.name).collect::<std::collections::HashSet<_>>().len(),
        catalog().types().iter().map(|t| t.name).collect::<std::collections::HashSet<_>>().len(),
    ));
    out.push_str("| Functions | Allowed in | Why | How many |\n| --- | --- | --- | --- |\n");
    let mut rows: Vec<&(&'static GuardRule, Vec<String>)> = functions.iter().collect();
    rows.sort_by_key(|(r, _)| (r.permit, r.pattern));
    for (rule, names) in &rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            markdown_cell(rule.pattern.trim_start_matches('(').trim_end_matches(')')),
            rule.permit,
            markdown_cell(rule.reason),
            names.len()
        ));
    }
    for (rule, names) in rows {
        out.push_str(&format!(
            "\n<details><summary>{} ({}): {} names</summary>\n\n{}\n\n</details>\n",
            markdown_cell(rule.pattern.trim_start_matches('(').trim_end_matches(')')),
            rule.permit,
            names.len(),
            names.join(", ")
        ));
    }
    let mut unsafe_ops: Vec<&str> = catalog()
        .operators()
        .iter()
        .map(|o| o.name)
        .filter(|name| operator_rule(None, name, &none).permit != Read)
        .collect();
    unsafe_ops.dedup();
    out.push_str(&format!(
        "\nOperators not allowed in read sessions (every other one of the catalog is): {}.\n",
        if unsafe_ops.is_empty() {
            String::from("none")
        } else {
            unsafe_ops
                .iter()
                .map(|o| format!("`{o}`"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    ));
    out
}

/// The major versions the catalog was read from, `13, 15, 17`.
fn versions() -> String {
    let mut all: Vec<&str> = catalog()
        .functions()
        .iter()
        .flat_map(|f| f.versions.split(','))
        .collect();
    all.sort_by_key(|v| v.parse::<u32>().unwrap_or(0));
    all.dedup();
    all.join(", ")
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

    /// The review covers every volatile function the catalog holds: a new
    /// PostgreSQL version that adds one fails here until a row judges it.
    #[test]
    fn every_volatile_function_is_reviewed() {
        let none = ReadAllowances::default();
        let unreviewed: Vec<&str> = catalog()
            .functions()
            .iter()
            .filter(|f| reviewed_source(f.source) && f.volatility == Volatility::Volatile)
            .map(|f| f.name)
            .filter(|name| std::ptr::eq(function_rule(None, name, &none), &UNREVIEWED_VOLATILE))
            .collect();
        assert!(
            unreviewed.is_empty(),
            "review these volatile functions: {unreviewed:?}"
        );
    }

    #[test]
    fn what_postgresql_says_decides() {
        let none = ReadAllowances::default();
        let rule = |schema: Option<&str>, name: &str| function_rule(schema, name, &none);
        // Only superusers may execute it: refused, found by its privileges.
        assert!(std::ptr::eq(
            rule(None, "pg_ls_tmpdir"),
            find(RuleKind::Function, "pg_ls_*").unwrap()
        ));
        assert!(std::ptr::eq(rule(None, "pg_config"), &RESTRICTED_FUNCTION));
        assert!(std::ptr::eq(
            rule(None, "pg_get_backend_memory_contexts"),
            &RESTRICTED_FUNCTION
        ));
        // Immutable or stable, PUBLIC may run it: allowed.
        assert!(std::ptr::eq(rule(None, "lower"), &CATALOG_FUNCTION));
        assert!(std::ptr::eq(
            rule(Some("pg_catalog"), "to_char"),
            &CATALOG_FUNCTION
        ));
        assert!(std::ptr::eq(rule(None, "similarity"), &CATALOG_FUNCTION));
        // Volatile, reviewed.
        assert_eq!(rule(None, "gen_random_uuid").permit, Read);
        assert_eq!(rule(None, "pg_read_file_old").permit, Never);
        assert_eq!(rule(None, "pg_export_snapshot").permit, Never);
        assert_eq!(rule(None, "nextval").permit, Write);
        // An extension that reaches into the server.
        assert!(std::ptr::eq(
            rule(None, "get_raw_page"),
            &UNREVIEWED_EXTENSION_FUNCTION
        ));
        assert!(std::ptr::eq(
            rule(None, "pgstattuple"),
            &RESTRICTED_FUNCTION
        ));
        assert!(std::ptr::eq(
            rule(None, "xpath_table"),
            &UNREVIEWED_EXTENSION_FUNCTION
        ));
        // Not the built-in: another schema's function of that name.
        assert!(std::ptr::eq(
            rule(Some("public"), "lower"),
            &UNKNOWN_FUNCTION
        ));
        assert!(std::ptr::eq(rule(None, "LOWER"), &UNKNOWN_FUNCTION));
        assert!(std::ptr::eq(
            rule(None, "cleanup_identities"),
            &UNKNOWN_FUNCTION
        ));
        // A refusing row wins whatever the spelling.
        assert_eq!(rule(Some("public"), "PG_READ_FILE").permit, Never);
    }

    #[test]
    fn read_allowances_only_add_what_the_guard_does_not_know() {
        let allow = ReadAllowances {
            functions: vec![
                "idm.identity_*".into(),
                "helper".into(),
                "pg_read_file".into(),
            ],
            operators: vec!["###".into()],
            types: vec!["public.mood".into()],
        };
        let f = |schema: Option<&str>, name: &str| function_rule(schema, name, &allow);
        assert!(std::ptr::eq(
            f(Some("idm"), "identity_name"),
            &CONFIGURED_FUNCTION
        ));
        assert!(std::ptr::eq(f(None, "identity_name"), &CONFIGURED_FUNCTION));
        assert!(std::ptr::eq(
            f(Some("other"), "identity_name"),
            &UNKNOWN_FUNCTION
        ));
        assert!(std::ptr::eq(f(Some("x"), "helper"), &CONFIGURED_FUNCTION));
        assert_eq!(f(None, "pg_read_file").permit, Never);
        assert!(std::ptr::eq(
            operator_rule(None, "###", &allow),
            &CONFIGURED_OPERATOR
        ));
        assert!(std::ptr::eq(
            operator_rule(None, "=", &allow),
            &CATALOG_OPERATOR
        ));
        assert!(std::ptr::eq(
            operator_rule(Some("evil"), "||/", &allow),
            &UNKNOWN_OPERATOR
        ));
        assert!(std::ptr::eq(
            type_rule(None, "mood", &allow),
            &CONFIGURED_TYPE
        ));
        assert!(std::ptr::eq(type_rule(None, "int4", &allow), &CATALOG_TYPE));
        assert!(std::ptr::eq(
            type_rule(None, "other", &allow),
            &UNKNOWN_TYPE
        ));
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
