//! The guard's corpus: statements with their expected outcome in each mode,
//! the evasions a careful attacker would try among them.

use std::collections::HashSet;

use iam_pgbroker_sql::{
    rules, GuardRule, Mode, Permit, Refusal, RefusalKind, RuleKind, SqlGuard, UNKNOWN_STATEMENT,
};

/// The expected outcome of one statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Allowed in every session.
    Read,
    /// Refused in read sessions, allowed in write sessions.
    Write,
    /// Allowed only in write sessions with a DDL grant.
    Ddl,
    /// Refused in every session.
    Never,
    /// Refused in read sessions for naming a function, operator or type the
    /// guard does not know (not a write: forbidden, not read-only); allowed
    /// in write sessions.
    Unchecked,
}

use Expect::{Ddl, Never, Read, Unchecked, Write};

const READ: Mode = Mode::Read;
const WRITE: Mode = Mode::Write { ddl: false };
const DDL: Mode = Mode::Write { ddl: true };

/// (expected, statement, what a refusal names — "" when not checked)
const CORPUS: &[(Expect, &str, &str)] = &[
    // --- plain reads ----------------------------------------------------------
    (Read, "SELECT count(*) FROM idm_identity", ""),
    (Read, "select id, username from idm_identity where username = $1", ""),
    (Read, "SELECT 1;", ""),
    (Read, "  SELECT 1 ; ", ""),
    (Read, "SELECT 1; -- trailing comment", ""),
    (Read, "/* leading */ SELECT 1", ""),
    (Read, "SELECT encode(id, 'hex')::uuid, first_name || ' ' || last_name FROM idm_identity WHERE state = 'VALID'", ""),
    (Read, "TABLE idm_identity", ""),
    (Read, "VALUES (1, 'a'), (2, 'b')", ""),
    (Read, "SELECT * FROM (VALUES (1), (2)) v(x) ORDER BY x DESC LIMIT 1", ""),
    (Read, "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT * FROM r", ""),
    (Read, "SELECT a.username FROM idm_identity a JOIN idm_identity b ON a.creator_id = b.id", ""),
    (Read, "SELECT username FROM idm_identity UNION SELECT 'Žluťoučký kůň'", ""),
    (Read, "SELECT lower(username), now(), current_user, txid_current(), pg_current_xact_id()", ""),
    (Read, "SELECT current_setting('default_transaction_read_only')", ""),
    (Read, "SELECT count(*) FILTER (WHERE disabled) OVER (PARTITION BY state) FROM idm_identity", ""),
    (Read, "SELECT 'pg_read_file(''/etc/passwd'')' AS harmless_text", ""),
    (Read, "SELECT \"pg_read_file\" FROM t", ""),
    (Read, "SELECT '; DROP TABLE idm_identity; --'", ""),
    (Read, "SELECT $$ COMMIT; UPDATE t SET x = 1 $$", ""),
    (Read, "SELECT t.lo_bound FROM ranges t", ""),
    // Names are judged by their last component, never by splitting a joined
    // string: this function is called `evil.lo_import`, not `lo_import`
    // (the guard fuzzer's oracle once got that wrong).
    (Unchecked, "SELECT x.\"evil.lo_import\"('a')", "x.evil.lo_import"),
    // A type named as text: its input function and a domain's CHECK run
    // out of the guard's sight (PostgreSQL 16+).
    (Unchecked, "SELECT pg_input_is_valid('x', 'app_domain')", "pg_input_is_valid"),
    (Unchecked, "SELECT * FROM pg_catalog.pg_input_error_info('x', 'int4')", "pg_input_error_info"),
    // An external entity is PostgreSQL's to refuse (it never loads one).
    (Read, "SELECT xmlparse(document '<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><x>&e;</x>')", ""),
    (Never, "SELECT \"evil.x\".lo_import('a')", "lo_import"),
    (Read, "SHOW server_version", ""),
    (Read, "SHOW ALL", ""),
    (Read, "EXPLAIN SELECT * FROM idm_identity", ""),
    (Read, "EXPLAIN ANALYZE SELECT * FROM idm_identity", ""),
    (Read, "EXPLAIN (ANALYZE, BUFFERS) SELECT 1", ""),
    (Read, "EXPLAIN DELETE FROM t", ""),
    (Read, "EXPLAIN UPDATE t SET x = 1", ""),
    (Read, "EXPLAIN WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", ""),
    (Read, "SELECT * FROM pg_roles", ""),
    (Read, "SELECT xpath('/a', '<a/>'::xml)", ""),
    (Read, "SELECT * FROM t TABLESAMPLE system (10)", ""),
    // --- writes ---------------------------------------------------------------
    (Write, "UPDATE idm_identity SET disabled = true WHERE username = 'admin'", "UPDATE"),
    (Write, "INSERT INTO t (a) VALUES (1) RETURNING *", "INSERT"),
    (Write, "DELETE FROM t USING u WHERE t.id = u.id", "DELETE"),
    (Write, "MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN UPDATE SET a = u.a", "MERGE"),
    (Write, "INSERT INTO t SELECT * FROM u ON CONFLICT DO NOTHING", "INSERT"),
    (Write, "WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", "WITH … INSERT / UPDATE / DELETE / MERGE"),
    (Write, "WITH x AS (UPDATE t SET a = 1 RETURNING *) SELECT * FROM x", "WITH … INSERT / UPDATE / DELETE / MERGE"),
    (Write, "WITH RECURSIVE x AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM x", "WITH … INSERT / UPDATE / DELETE / MERGE"),
    (Write, "SELECT * FROM (WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x) s", "WITH … INSERT / UPDATE / DELETE / MERGE"),
    (Write, "SELECT * FROM t FOR UPDATE", "FOR UPDATE / FOR NO KEY UPDATE / FOR SHARE / FOR KEY SHARE"),
    (Write, "SELECT * FROM t FOR KEY SHARE SKIP LOCKED", "FOR UPDATE / FOR NO KEY UPDATE / FOR SHARE / FOR KEY SHARE"),
    (Write, "SELECT * FROM (SELECT * FROM t FOR SHARE) s", "FOR UPDATE / FOR NO KEY UPDATE / FOR SHARE / FOR KEY SHARE"),
    (Write, "SELECT (SELECT a FROM t FOR NO KEY UPDATE LIMIT 1)", "FOR UPDATE / FOR NO KEY UPDATE / FOR SHARE / FOR KEY SHARE"),
    (Write, "LOCK TABLE t IN ACCESS EXCLUSIVE MODE", "LOCK"),
    (Write, "EXPLAIN ANALYZE DELETE FROM t", "DELETE"),
    (Write, "EXPLAIN (ANALYZE true) UPDATE t SET a = 1", "UPDATE"),
    (Write, "SELECT nextval('idm_seq')", "nextval"),
    (Write, "SELECT pg_catalog.setval('idm_seq', 1)", "setval"),
    (Write, "INSERT INTO t VALUES (nextval('s'))", "INSERT"),
    // --- schema changes ---------------------------------------------------------
    (Ddl, "CREATE TABLE t (a int)", "CREATE TABLE"),
    (Ddl, "CREATE TEMP TABLE t (a int)", "CREATE TABLE"),
    (Ddl, "CREATE TABLE t (a text DEFAULT 'x')", "CREATE TABLE"),
    (Ddl, "ALTER TABLE t ADD COLUMN b int", "ALTER TABLE"),
    (Ddl, "DROP TABLE t", "DROP"),
    (Ddl, "TRUNCATE t", "TRUNCATE"),
    (Ddl, "COMMENT ON TABLE t IS 'x'", "COMMENT"),
    (Ddl, "GRANT SELECT ON t TO reader", "GRANT"),
    (Ddl, "REVOKE SELECT ON t FROM reader", "REVOKE"),
    (Ddl, "CREATE INDEX ON t (a)", "CREATE INDEX"),
    (Ddl, "CREATE VIEW v AS SELECT * FROM t", "CREATE VIEW"),
    (Ddl, "CREATE MATERIALIZED VIEW m AS SELECT 1", "CREATE MATERIALIZED VIEW"),
    (Ddl, "CREATE TABLE n AS SELECT * FROM t", "CREATE TABLE AS"),
    (Ddl, "SELECT * INTO newt FROM t", "SELECT … INTO"),
    (Ddl, "CREATE SEQUENCE s", "CREATE SEQUENCE"),
    (Ddl, "CREATE SCHEMA s", "CREATE SCHEMA"),
    (Ddl, "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", "CREATE FUNCTION"),
    (Ddl, "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$", "CREATE FUNCTION"),
    (Ddl, "CREATE FUNCTION f() RETURNS int BEGIN ATOMIC SELECT 1; END", "CREATE FUNCTION"),
    (Ddl, "CREATE PROCEDURE p() LANGUAGE sql AS 'SELECT 1'", "CREATE PROCEDURE"),
    (Ddl, "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()", "CREATE TRIGGER"),
    (Ddl, "CREATE TYPE mood AS ENUM ('a', 'b')", "CREATE TYPE"),
    (Ddl, "ALTER TABLE t RENAME TO u", "ALTER … RENAME"),
    (Ddl, "VACUUM t", "VACUUM"),
    (Ddl, "ANALYZE t", "ANALYZE"),
    (Ddl, "REINDEX TABLE t", "REINDEX"),
    (Ddl, "CLUSTER t USING t_pkey", "CLUSTER"),
    (Ddl, "REFRESH MATERIALIZED VIEW m", "REFRESH MATERIALIZED VIEW"),
    (Ddl, "INSERT INTO pg_catalog.pg_description VALUES (1, 2, 0, 'x')", "pg_catalog.pg_description"),
    (Ddl, "UPDATE pg_proc SET prosrc = 'x' WHERE proname = 'f'", "pg_proc"),
    // --- transaction control ----------------------------------------------------
    (Never, "BEGIN", "BEGIN"),
    (Never, "START TRANSACTION READ WRITE", "START TRANSACTION"),
    (Never, "COMMIT", "COMMIT"),
    (Never, "END", "COMMIT"),
    (Never, "ROLLBACK", "ROLLBACK"),
    (Never, "ABORT", "ROLLBACK"),
    (Never, "SAVEPOINT s", "SAVEPOINT"),
    (Never, "RELEASE SAVEPOINT s", "RELEASE SAVEPOINT"),
    (Never, "ROLLBACK TO SAVEPOINT s", "ROLLBACK TO SAVEPOINT"),
    (Never, "PREPARE TRANSACTION 'x'", "PREPARE TRANSACTION"),
    (Never, "COMMIT PREPARED 'x'", "COMMIT PREPARED"),
    (Never, "ROLLBACK PREPARED 'x'", "ROLLBACK PREPARED"),
    (Never, "SET TRANSACTION READ WRITE", "SET TRANSACTION"),
    (Never, "set transaction isolation level serializable", "SET TRANSACTION"),
    (Never, "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE", "SET SESSION CHARACTERISTICS"),
    (Never, "SET CONSTRAINTS ALL DEFERRED", "SET CONSTRAINTS"),
    (Never, "COMMIT; UPDATE idm_identity SET disabled = false", "statement"),
    (Never, "SELECT 1; UPDATE t SET x = 1", "statement"),
    (Never, "SELECT 1;;SELECT 2", "statement"),
    // --- session state ----------------------------------------------------------
    (Never, "SET ROLE postgres", "SET ROLE"),
    (Never, "SET LOCAL ROLE postgres", "SET ROLE"),
    (Never, "RESET ROLE", "RESET (other setting)"),
    (Never, "SET SESSION AUTHORIZATION postgres", "SET SESSION AUTHORIZATION"),
    (Never, "SET SESSION AUTHORIZATION DEFAULT", "SET SESSION AUTHORIZATION"),
    // The allowed settings pass the guard; the broker checks the values
    // that depend on the grant (timeouts, work_mem).
    (Read, "SET statement_timeout = 0", "SET"),
    (Never, "SET LOCAL default_transaction_read_only = off", "SET (other setting)"),
    (Read, "set search_path to evil, public", "SET"),
    (Never, "SET search_path = pg_temp, public", "SET search_path"),
    (Never, "SET search_path = public, pg_catalog", "SET search_path"),
    (Read, "SET TIME ZONE 'UTC'", "SET"),
    (Read, "RESET timezone", "RESET"),
    (Read, "SET LOCAL IntervalStyle = iso_8601", "SET"),
    (Never, "SET client_encoding = 'LATIN2'", "SET (other setting)"),
    (Never, "SET NAMES 'LATIN2'", "SET (other setting)"),
    (Never, "SET standard_conforming_strings = off", "SET (other setting)"),
    (Never, "RESET ALL", "RESET ALL"),
    (Never, "DISCARD ALL", "DISCARD"),
    (Never, "SELECT set_config('default_transaction_read_only', 'off', false)", "set_config"),
    (Never, "SELECT pg_catalog.\"set_config\"('role', 'postgres', true)", "set_config"),
    (Never, "SELECT PG_CATALOG.SET_CONFIG('a', 'b', false)", "set_config"),
    (Never, "SELECT \"SET_CONFIG\"('a', 'b', false)", "set_config"),
    (Never, "SELECT setseed(0.5)", "setseed"),
    (Never, "LISTEN ch", "LISTEN"),
    (Never, "UNLISTEN *", "UNLISTEN"),
    (Never, "NOTIFY ch, 'x'", "NOTIFY"),
    (Never, "SELECT pg_notify('ch', 'x')", "pg_notify"),
    (Never, "PREPARE p AS UPDATE t SET x = 1", "PREPARE"),
    (Never, "EXECUTE p", "EXECUTE"),
    (Never, "EXPLAIN EXECUTE s0", "EXECUTE"),
    (Never, "DEALLOCATE ALL", "DEALLOCATE"),
    (Never, "DECLARE c CURSOR WITH HOLD FOR SELECT 1", "DECLARE CURSOR"),
    (Never, "EXPLAIN DECLARE c CURSOR FOR SELECT 1", "DECLARE CURSOR"),
    (Never, "FETCH ALL FROM c", "FETCH"),
    (Never, "MOVE NEXT IN c", "MOVE"),
    (Never, "CLOSE c", "CLOSE"),
    // --- outside the database ----------------------------------------------------
    (Never, "COPY (SELECT 1) TO PROGRAM 'id > /tmp/pwned'", "COPY"),
    (Never, "COPY t FROM '/etc/passwd'", "COPY"),
    (Read, "COPY t TO STDOUT", "COPY TO STDOUT"),
    (Read, "COPY idm_identity (id, username) TO STDOUT WITH (FORMAT csv, HEADER)", "COPY TO STDOUT"),
    (Read, "COPY (SELECT username FROM idm_identity WHERE disabled) TO STDOUT", "COPY TO STDOUT"),
    (Write, "copy (delete from t returning *) to stdout", "DELETE"),
    (Write, "COPY t (a, b) FROM STDIN", "COPY FROM STDIN"),
    (Write, "COPY t FROM STDIN WITH (FORMAT csv)", "COPY FROM STDIN"),
    (Never, "COPY t TO STDOUT (FORMAT binary)", "COPY (FORMAT binary)"),
    (Never, "COPY t FROM STDIN WITH BINARY", "COPY (FORMAT binary)"),
    (Never, "COPY (SELECT pg_read_file('/etc/passwd')) TO STDOUT", "pg_read_file"),
    (Never, "COPY pg_authid TO STDOUT", "pg_authid"),
    (Never, "COPY t TO '/tmp/out'", "COPY"),
    (Never, "DO $$ BEGIN PERFORM 1; END $$", "DO"),
    (Never, "CALL p()", "CALL"),
    (Never, "CHECKPOINT", "CHECKPOINT"),
    (Never, "LOAD 'auto_explain'", "LOAD"),
    (Never, "ALTER SYSTEM SET fsync = off", "ALTER SYSTEM"),
    (Never, "SELECT pg_read_file('/data/volumes/czechidm-db/secrets/postgres.pwfile')", "pg_read_file"),
    (Never, "SELECT/**/pg_read_file('x')", "pg_read_file"),
    (Never, "SELECT pg_read_binary_file('/etc/shadow')", "pg_read_binary_file"),
    (Never, "SELECT * FROM pg_ls_dir('.')", "pg_ls_dir"),
    (Never, "SELECT * FROM pg_ls_waldir()", "pg_ls_waldir"),
    (Never, "SELECT pg_stat_file('postgresql.conf')", "pg_stat_file"),
    (Never, "SELECT pg_file_write('x', 'y', false)", "pg_file_write"),
    (Never, "SELECT (SELECT pg_read_file('/etc/passwd'))", "pg_read_file"),
    (Never, "SELECT * FROM t WHERE a IN (SELECT pg_read_file('/etc/passwd'))", "pg_read_file"),
    (Never, "WITH x AS (SELECT pg_read_file('/etc/passwd')) SELECT * FROM x", "pg_read_file"),
    (Never, "SELECT * FROM t ORDER BY pg_read_file('/etc/passwd')", "pg_read_file"),
    (Never, "SELECT ('/etc/passwd'::text).pg_read_file", "pg_read_file (attribute notation)"),
    (Never, "SELECT lo_import('/etc/passwd')", "lo_import"),
    (Never, "SELECT lo_export(1234, '/tmp/x')", "lo_export"),
    (Never, "SELECT lo_from_bytea(0, 'x')", "lo_from_bytea"),
    (Never, "SELECT loread(lo_open(1, 262144), 100)", ""),
    (Never, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity", "pg_terminate_backend"),
    (Never, "SELECT pg_cancel_backend(1)", "pg_cancel_backend"),
    (Never, "SELECT pg_reload_conf()", "pg_reload_conf"),
    (Never, "SELECT pg_rotate_logfile()", "pg_rotate_logfile"),
    (Never, "SELECT pg_advisory_lock(1)", "pg_advisory_lock"),
    (Never, "SELECT pg_try_advisory_xact_lock(1)", "pg_try_advisory_xact_lock"),
    (Never, "SELECT dblink('host=evil', 'SELECT 1')", "dblink"),
    (Never, "SELECT dblink_exec('dbname=x', 'DROP TABLE t')", "dblink_exec"),
    (Never, "SELECT pg_sleep(3600)", "pg_sleep"),
    (Never, "SELECT pg_switch_wal()", "pg_switch_wal"),
    (Never, "SELECT pg_create_logical_replication_slot('s', 'test_decoding')", "pg_create_logical_replication_slot"),
    (Never, "SELECT pg_drop_replication_slot('s')", "pg_drop_replication_slot"),
    (Never, "SELECT query_to_xml('UPDATE t SET x = 1 RETURNING *', true, false, '')", "query_to_xml"),
    (Never, "SELECT table_to_xml('pg_authid', true, false, '')", "table_to_xml"),
    (Never, "SELECT * FROM ts_stat('SELECT vector FROM t')", "ts_stat"),
    (Never, "SELECT * FROM pg_authid", "pg_authid"),
    (Never, "SELECT rolpassword FROM pg_catalog.pg_authid WHERE rolname = 'postgres'", "pg_authid"),
    (Never, "TABLE pg_shadow", "pg_shadow"),
    (Never, "SELECT * FROM \"PG_AUTHID\"", "pg_authid"),
    (Never, "SELECT * FROM pg_user_mappings", "pg_user_mappings"),
    (Never, "SELECT * FROM pg_hba_file_rules", "pg_hba_file_rules"),
    (Never, "SELECT histogram_bounds FROM pg_stats WHERE tablename = 'pg_authid'", "pg_stats"),
    (Never, "SELECT stavalues1 FROM pg_statistic WHERE starelid = 'pg_authid'::regclass", "pg_statistic"),
    (Never, "SELECT subconninfo FROM pg_subscription", "pg_subscription"),
    (Never, "SELECT U&\"pg_\\0072ead_file\"('/etc/passwd')", "pg_read_file"),
    (Never, "SELECT pg_read_file/**/('/etc/passwd')", "pg_read_file"),
    (Never, "SELECT pg_catalog . pg_read_file --\n('/etc/passwd')", "pg_read_file"),
    (Never, "SELECT pg_read_file($$/etc/passwd$$)", "pg_read_file"),
    (Never, "sElEcT Pg_ReAd_FiLe('/etc/passwd')", "pg_read_file"),
    (Never, "SELECT x.c.pg_read_file FROM (SELECT '/etc/passwd'::text AS c) x", "pg_read_file (attribute notation)"),
    (Never, "CREATE EXTENSION dblink", "CREATE EXTENSION"),
    (Never, "CREATE FUNCTION f() RETURNS int LANGUAGE c AS '/tmp/evil.so', 'f'", "CREATE FUNCTION … LANGUAGE c"),
    (Never, "CREATE FUNCTION f() RETURNS int LANGUAGE plpython3u AS 'return 1'", "CREATE FUNCTION … LANGUAGE plpython3u"),
    // PostgreSQL's grammar turns a plain CREATE LANGUAGE into CREATE EXTENSION.
    (Never, "CREATE LANGUAGE plperlu", "CREATE EXTENSION"),
    (Never, "CREATE LANGUAGE plperlu HANDLER plperlu_call_handler", "CREATE LANGUAGE"),
    (Never, "CREATE SERVER s FOREIGN DATA WRAPPER file_fdw", "CREATE SERVER"),
    (Never, "CREATE FOREIGN TABLE f (a text) SERVER s OPTIONS (program 'id')", "CREATE FOREIGN TABLE"),
    (Never, "CREATE ROLE evil SUPERUSER", "CREATE ROLE"),
    (Never, "ALTER ROLE postgres PASSWORD 'x'", "ALTER ROLE"),
    (Never, "ALTER USER czechidm SET default_transaction_read_only = off", "ALTER ROLE"),
    (Never, "ALTER ROLE postgres RENAME TO x", "ALTER ROLE"),
    (Never, "GRANT pg_read_server_files TO reader", "GRANT ROLE"),
    (Never, "GRANT SET ON PARAMETER log_statement TO reader", "GRANT ON PARAMETER"),
    (Never, "ALTER DATABASE czechidm SET default_transaction_read_only = off", "ALTER DATABASE"),
    (Never, "CREATE DATABASE x", "CREATE DATABASE"),
    (Never, "DROP DATABASE czechidm", "DROP DATABASE"),
    (Never, "CREATE TABLESPACE ts LOCATION '/tmp'", "CREATE TABLESPACE"),
    (Never, "CREATE SUBSCRIPTION s CONNECTION 'host=evil' PUBLICATION p", "CREATE SUBSCRIPTION"),
    // --- refused whatever the surrounding statement -----------------------------------
    (Never, "CREATE TABLE t (a text DEFAULT pg_read_file('/etc/passwd'))", "pg_read_file"),
    (Never, "CREATE VIEW v AS SELECT * FROM pg_authid", "pg_authid"),
    (Never, "CREATE FUNCTION f() RETURNS text BEGIN ATOMIC SELECT pg_read_file('/etc/passwd'); END", "pg_read_file"),
    (Never, "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION lo_manage(a)", "lo_manage"),
    (Never, "UPDATE t SET a = pg_read_file('/etc/passwd')", "pg_read_file"),
    (Never, "INSERT INTO t VALUES (lo_import('/etc/passwd'))", "lo_import"),
    (Never, "DELETE FROM t WHERE pg_terminate_backend(1)", "pg_terminate_backend"),
    (Never, "EXPLAIN SELECT pg_read_file('/etc/passwd')", "pg_read_file"),
    (Never, "UPDATE pg_authid SET rolsuper = true", "pg_authid"),
    // --- not even a statement --------------------------------------------------------
    (Never, "", "statement"),
    (Never, "   ", "statement"),
    (Never, "-- only a comment", "statement"),
    (Never, ";", "statement"),
    (Never, "SEL/**/ECT 1", "statement"),
    (Never, "SELECT 'unterminated", "statement"),
    (Never, "SELECT %s", "statement"),
    (Never, "SELECT 1\0; DROP TABLE t", "statement"),
];

fn outcome(guard: &SqlGuard, sql: &str, mode: Mode) -> Result<&'static str, Refusal> {
    guard.check(sql, mode).map(|v| v.kind)
}

#[test]
fn corpus_size() {
    assert!(
        CORPUS.len() >= 100,
        "corpus has {} statements",
        CORPUS.len()
    );
}

#[test]
fn corpus() {
    let guard = SqlGuard::new();
    let mut failures = Vec::new();
    for &(expect, sql, what) in CORPUS {
        let read = outcome(&guard, sql, READ);
        let write = outcome(&guard, sql, WRITE);
        let ddl = outcome(&guard, sql, DDL);
        let got = match (&read, &write, &ddl) {
            (Ok(_), Ok(_), Ok(_)) => Some(Read),
            (Err(r), Ok(_), Ok(_)) if r.kind() == RefusalKind::Forbidden => Some(Unchecked),
            (Err(_), Ok(_), Ok(_)) => Some(Write),
            (Err(_), Err(_), Ok(_)) => Some(Ddl),
            (Err(_), Err(_), Err(_)) => Some(Never),
            _ => None,
        };
        if got != Some(expect) {
            failures.push(format!(
                "{sql:?}: expected {expect:?}, got read={read:?} write={write:?} ddl={ddl:?}"
            ));
            continue;
        }
        // The refusal in the most permissive mode that refuses names `what`.
        let refusal = [&ddl, &write, &read]
            .into_iter()
            .find_map(|r| r.as_ref().err());
        if let (Some(refusal), false) = (refusal, what.is_empty()) {
            if refusal.what() != what {
                failures.push(format!(
                    "{sql:?}: refusal names {:?}, expected {what:?} ({refusal})",
                    refusal.what()
                ));
            }
        }
        // A write-only statement's refusal in read sessions says so.
        if expect == Write {
            let refusal = read.as_ref().unwrap_err();
            if refusal.kind() != RefusalKind::NeedsWrite || !refusal.needs_write() {
                failures.push(format!(
                    "{sql:?}: read refusal should be NeedsWrite: {refusal:?}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every statement and clause row of the table is exercised by the corpus,
/// so a row cannot be dead (a mistyped label would show up here).
#[test]
fn corpus_covers_every_statement_row() {
    let guard = SqlGuard::new();
    let mut seen: HashSet<&'static str> = HashSet::new();
    for &(_, sql, _) in CORPUS.iter().chain(EXTRA_STATEMENTS) {
        for mode in [READ, WRITE, DDL] {
            match guard.check(sql, mode) {
                Ok(v) => {
                    seen.insert(v.kind);
                }
                Err(r) => {
                    if let Some(rule) = r.rule() {
                        assert_ne!(
                            rule, &UNKNOWN_STATEMENT,
                            "{sql:?} is not known to the guard"
                        );
                        seen.insert(rule.pattern);
                    }
                }
            }
        }
    }
    let missing: Vec<&str> = rules()
        .iter()
        .filter(|r| matches!(r.kind, RuleKind::Statement | RuleKind::Clause))
        .map(|r| r.pattern)
        .filter(|p| !seen.contains(p))
        .collect();
    assert!(
        missing.is_empty(),
        "rows without a corpus statement: {missing:?}"
    );
}

/// One statement for every remaining row, so that each label the guard
/// produces is known to have a row.
const EXTRA_STATEMENTS: &[(Expect, &str, &str)] = &[
    (Never, "ALTER SUBSCRIPTION s DISABLE", ""),
    (Never, "DROP SUBSCRIPTION s", ""),
    (Never, "CREATE PUBLICATION p FOR ALL TABLES", ""),
    (Never, "ALTER PUBLICATION p ADD TABLE t", ""),
    (Never, "DROP ROLE evil", ""),
    (Never, "REVOKE pg_read_server_files FROM reader", ""),
    (Never, "ALTER TABLESPACE ts SET (seq_page_cost = 1)", ""),
    (Never, "DROP TABLESPACE ts", ""),
    (Never, "ALTER EXTENSION dblink UPDATE", ""),
    (Never, "CREATE FOREIGN DATA WRAPPER w", ""),
    (Never, "ALTER FOREIGN DATA WRAPPER w OPTIONS (a 'b')", ""),
    (Never, "ALTER SERVER s OPTIONS (host 'evil')", ""),
    (Never, "CREATE USER MAPPING FOR public SERVER s", ""),
    (
        Never,
        "ALTER USER MAPPING FOR public SERVER s OPTIONS (password 'x')",
        "",
    ),
    (Never, "DROP USER MAPPING FOR public SERVER s", ""),
    (
        Never,
        "IMPORT FOREIGN SCHEMA public FROM SERVER s INTO x",
        "",
    ),
    (Ddl, "ALTER FUNCTION f() STABLE", ""),
    (Ddl, "ALTER SEQUENCE s RESTART", ""),
    (Ddl, "ALTER TABLE ALL IN TABLESPACE a SET TABLESPACE b", ""),
    (Ddl, "SECURITY LABEL ON TABLE t IS 'x'", ""),
    (
        Ddl,
        "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO reader",
        "",
    ),
    (Ddl, "ALTER TYPE mood ADD VALUE 'c'", ""),
    (Ddl, "CREATE DOMAIN d AS int", ""),
    (Ddl, "ALTER DOMAIN d SET NOT NULL", ""),
    (
        Ddl,
        "CREATE AGGREGATE a (int) (sfunc = int4pl, stype = int)",
        "",
    ),
    (
        Ddl,
        "CREATE OPERATOR === (leftarg = int, rightarg = int, function = int4eq)",
        "",
    ),
    (Ddl, "ALTER OPERATOR === (int, int) OWNER TO x", ""),
    (
        Ddl,
        "ALTER OPERATOR === (int, int) SET (restrict = eqsel)",
        "",
    ),
    (
        Ddl,
        "CREATE OPERATOR CLASS c FOR TYPE int USING btree AS OPERATOR 1 <",
        "",
    ),
    (Ddl, "CREATE OPERATOR FAMILY f USING btree", ""),
    (
        Ddl,
        "ALTER OPERATOR FAMILY f USING btree ADD OPERATOR 1 < (int, int)",
        "",
    ),
    (Ddl, "CREATE COLLATION c (locale = 'C')", ""),
    (Ddl, "ALTER COLLATION c REFRESH VERSION", ""),
    (
        Ddl,
        "CREATE TEXT SEARCH CONFIGURATION c (copy = simple)",
        "",
    ),
    (
        Ddl,
        "ALTER TEXT SEARCH CONFIGURATION c DROP MAPPING FOR word",
        "",
    ),
    (Ddl, "CREATE CAST (int AS text) WITH INOUT", ""),
    (
        Ddl,
        "CREATE CONVERSION c FOR 'LATIN1' TO 'UTF8' FROM iso8859_1_to_utf8",
        "",
    ),
    (
        Ddl,
        "CREATE TRANSFORM FOR int LANGUAGE sql (FROM SQL WITH FUNCTION f(internal))",
        "",
    ),
    (
        Ddl,
        "CREATE ACCESS METHOD m TYPE TABLE HANDLER heap_tableam_handler",
        "",
    ),
    (Ddl, "CREATE STATISTICS s ON a, b FROM t", ""),
    (Ddl, "ALTER STATISTICS s SET STATISTICS 10", ""),
    (
        Ddl,
        "CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE FUNCTION f()",
        "",
    ),
    (Ddl, "ALTER EVENT TRIGGER e DISABLE", ""),
    (
        Ddl,
        "CREATE RULE r AS ON INSERT TO t DO INSTEAD NOTHING",
        "",
    ),
    (Ddl, "CREATE POLICY p ON t USING (true)", ""),
    (Ddl, "ALTER POLICY p ON t USING (false)", ""),
    (Ddl, "ALTER TABLE t SET SCHEMA s", ""),
    (Ddl, "ALTER FUNCTION f() DEPENDS ON EXTENSION e", ""),
    (Ddl, "DROP OWNED BY x", ""),
    (Ddl, "REASSIGN OWNED BY x TO y", ""),
];

#[test]
fn extra_statements() {
    let guard = SqlGuard::new();
    for &(expect, sql, _) in EXTRA_STATEMENTS {
        let r = guard.check(sql, READ).is_ok();
        let w = guard.check(sql, WRITE).is_ok();
        let d = guard.check(sql, DDL).is_ok();
        let got = match (r, w, d) {
            (true, true, true) => Read,
            (false, true, true) => Write,
            (false, false, true) => Ddl,
            _ => Never,
        };
        assert_eq!(got, expect, "{sql:?}: {:?}", guard.check(sql, DDL));
    }
}

/// A refused function is found in every position a statement can hold an
/// expression.
#[test]
fn forbidden_function_in_every_position() {
    const F: &str = "pg_read_file('/etc/passwd')";
    const POSITIONS: &[&str] = &[
        "SELECT {f}",
        "SELECT {f} AS x",
        "SELECT * FROM {f}",
        "SELECT * FROM ROWS FROM ({f}) r",
        "SELECT * FROM t, LATERAL (SELECT {f}) l",
        "SELECT * FROM t WHERE a = {f}",
        "SELECT * FROM t JOIN u ON t.a = {f}",
        "SELECT * FROM t LEFT JOIN u USING (a) WHERE u.b = {f}",
        "SELECT a FROM t GROUP BY {f}",
        "SELECT a FROM t GROUP BY ROLLUP (a, {f})",
        "SELECT a FROM t GROUP BY a HAVING count(*) > length({f})",
        "SELECT * FROM t ORDER BY {f}",
        "SELECT * FROM t LIMIT length({f})",
        "SELECT * FROM t OFFSET length({f})",
        "SELECT * FROM t FETCH FIRST length({f}) ROWS ONLY",
        "SELECT rank() OVER (ORDER BY {f}) FROM t",
        "SELECT rank() OVER w FROM t WINDOW w AS (PARTITION BY {f})",
        "SELECT sum(a) FILTER (WHERE {f} IS NOT NULL) FROM t",
        "SELECT string_agg(a, ',' ORDER BY {f}) FROM t",
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY length({f})) FROM t",
        "SELECT DISTINCT ON ({f}) a FROM t",
        "VALUES ({f})",
        "VALUES (1), ((SELECT {f}))",
        "SELECT (SELECT {f})",
        "SELECT EXISTS (SELECT {f})",
        "SELECT 1 WHERE 'x' = ANY (SELECT {f})",
        "SELECT 1 UNION SELECT {f}",
        "SELECT 1 INTERSECT (SELECT 1 EXCEPT SELECT {f})",
        "WITH x AS (SELECT {f}) SELECT * FROM x",
        "WITH RECURSIVE x(n) AS (SELECT 1 UNION ALL SELECT length({f}) FROM x) SELECT * FROM x",
        "WITH x AS MATERIALIZED (SELECT 1) SELECT {f} FROM x",
        "SELECT CASE WHEN true THEN {f} ELSE 'x' END",
        "SELECT CASE {f} WHEN 'a' THEN 1 END",
        "SELECT coalesce(NULL, {f})",
        "SELECT nullif({f}, 'x')",
        "SELECT greatest({f}, 'x')",
        "SELECT lower(upper({f}))",
        "SELECT {f}::int",
        "SELECT CAST({f} AS int)",
        "SELECT ARRAY[{f}]",
        "SELECT ROW({f}, 1)",
        "SELECT ({f}, 1)",
        "SELECT ({f})[1]",
        "SELECT {f} COLLATE \"C\"",
        "SELECT {f} IS NULL",
        "SELECT {f} BETWEEN 'a' AND 'b'",
        "SELECT 'a' LIKE {f}",
        "SELECT {f} IN ('a', 'b')",
        "SELECT NOT ({f} = 'x')",
        "SELECT * FROM t TABLESAMPLE bernoulli (length({f}))",
        "SELECT * FROM t TABLESAMPLE system (1) REPEATABLE (length({f}))",
        "SELECT xmlelement(name a, {f})",
        "SELECT json_build_object('a', {f})",
        "SELECT * FROM json_to_record({f}::json) AS r(a int)",
        "SELECT * FROM XMLTABLE('/a' PASSING CAST({f} AS xml) COLUMNS a text)",
        "SELECT * FROM JSON_TABLE({f}::jsonb, '$' COLUMNS (a text))",
        "SELECT {f} FROM t FOR UPDATE",
        "INSERT INTO t VALUES ({f})",
        "INSERT INTO t SELECT {f}",
        "INSERT INTO t (a) VALUES (1) ON CONFLICT (a) DO UPDATE SET b = {f}",
        "INSERT INTO t VALUES (1) RETURNING {f}",
        "UPDATE t SET a = {f}",
        "UPDATE t SET (a, b) = (SELECT {f}, 1)",
        "UPDATE t SET a = 1 FROM u WHERE u.b = {f}",
        "UPDATE t SET a = 1 RETURNING {f}",
        "DELETE FROM t WHERE a = {f}",
        "DELETE FROM t USING (SELECT {f} AS a) u WHERE t.a = u.a",
        "DELETE FROM t RETURNING {f}",
        "MERGE INTO t USING u ON t.a = {f} WHEN MATCHED THEN DELETE",
        "MERGE INTO t USING u ON true WHEN MATCHED AND u.a = {f} THEN DELETE",
        "MERGE INTO t USING u ON true WHEN NOT MATCHED THEN INSERT VALUES ({f})",
        "MERGE INTO t USING u ON true WHEN MATCHED THEN UPDATE SET a = {f}",
        "WITH x AS (UPDATE t SET a = 1 RETURNING {f}) SELECT * FROM x",
        "EXPLAIN SELECT {f}",
        "EXPLAIN ANALYZE SELECT {f}",
        "EXPLAIN (COSTS off) UPDATE t SET a = {f}",
        "CREATE TABLE t (a text DEFAULT {f})",
        "CREATE TABLE t (a text CHECK (a <> {f}))",
        "CREATE TABLE t (a text GENERATED ALWAYS AS ({f}) STORED)",
        "ALTER TABLE t ALTER a SET DEFAULT {f}",
        "CREATE INDEX ON t (({f}))",
        "CREATE INDEX ON t (a) WHERE a = {f}",
        "CREATE VIEW v AS SELECT {f}",
        "CREATE MATERIALIZED VIEW v AS SELECT {f}",
        "CREATE TABLE n AS SELECT {f}",
        "SELECT {f} INTO n",
        "CREATE FUNCTION g() RETURNS text RETURN {f}",
        "CREATE POLICY p ON t USING (a = {f})",
        "CREATE RULE r AS ON INSERT TO t DO ALSO SELECT {f}",
        "CREATE DOMAIN d AS text CHECK (VALUE <> {f})",
        "COMMENT ON TABLE t IS 'x'; SELECT {f}",
    ];
    let guard = SqlGuard::new();
    let mut failures = Vec::new();
    for template in POSITIONS {
        let sql = template.replace("{f}", F);
        for mode in [READ, WRITE, DDL] {
            match guard.check(&sql, mode) {
                Ok(v) => failures.push(format!("{sql:?} allowed in {mode:?}: {v:?}")),
                Err(r) if r.is_syntax_error() => failures.push(format!("{sql:?}: {r}")),
                Err(r) => {
                    // Multi-statement text is refused before the functions
                    // are looked at; everything else must name the function.
                    if r.kind() != RefusalKind::MultipleStatements && r.what() != "pg_read_file" {
                        failures.push(format!(
                            "{sql:?} in {mode:?}: refused for {r}, not pg_read_file"
                        ));
                    }
                }
            }
        }
    }
    assert!(POSITIONS.len() >= 80);
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every function row refuses (or needs a grant for) a name it matches,
/// whatever the quoting, case or schema; a row that allows applies to the
/// built-ins it names, called as PostgreSQL would resolve them, and to
/// nothing spelled otherwise.
#[test]
fn every_function_row_applies() {
    let guard = SqlGuard::new();
    for rule in rules()
        .iter()
        .filter(|r| r.kind == RuleKind::Function && r.permit == Permit::Read)
    {
        let names: Vec<(&str, &str)> = iam_pgbroker_sql::catalog::catalog()
            .functions()
            .iter()
            .filter(|f| rule.matches(f.name))
            .map(|f| (f.name, f.source))
            .collect();
        assert!(
            !names.is_empty(),
            "{rule:?} names no function of the catalog"
        );
        for (name, source) in names {
            let mut spellings = vec![name.to_owned(), format!("\"{name}\"")];
            let mut elsewhere = vec![format!("\"{}\"", name.to_uppercase())];
            let in_extension = iam_pgbroker_sql::catalog::catalog()
                .function(name)
                .iter()
                .any(|f| f.source != "core");
            if source == "core" {
                spellings.push(format!("pg_catalog.{name}"));
                if !in_extension {
                    // Not the built-in: another schema's function of that name.
                    elsewhere.push(format!("evil.{name}"));
                }
            } else {
                // An extension's functions live in whatever schema it was
                // installed into.
                spellings.push(format!("public.{name}"));
            }
            for spelled in spellings {
                check_permit(&guard, &format!("SELECT {spelled}()"), rule);
            }
            for spelled in elsewhere {
                let sql = format!("SELECT {spelled}()");
                let refusal = guard
                    .check(&sql, READ)
                    .expect_err(&format!("{sql} is not {rule:?}"));
                assert_eq!(
                    refusal.rule().map(|r| r.permit),
                    Some(Permit::Unchecked),
                    "{sql}"
                );
            }
        }
    }
    for rule in rules()
        .iter()
        .filter(|r| r.kind == RuleKind::Function && r.permit > Permit::Read)
    {
        let name = rule.pattern.replace('*', "x");
        for spelled in [
            name.clone(),
            name.to_uppercase(),
            format!("pg_catalog.{name}"),
            format!("\"{name}\""),
            format!("PG_CATALOG.\"{name}\""),
            format!("public.{name}"),
        ] {
            let sql = format!("SELECT {spelled}()");
            check_permit(&guard, &sql, rule);
            let sql = format!("SELECT * FROM t WHERE a IN (SELECT b FROM {spelled}(1) b)");
            check_permit(&guard, &sql, rule);
        }
    }
}

/// Every relation row applies in FROM, JOIN and sub-queries.
#[test]
fn every_relation_row_applies() {
    let guard = SqlGuard::new();
    for rule in rules().iter().filter(|r| r.kind == RuleKind::Relation) {
        let name = rule.pattern;
        for sql in [
            format!("SELECT * FROM {name}"),
            format!("SELECT * FROM pg_catalog.{name}"),
            format!("SELECT * FROM t JOIN \"{name}\" a ON true"),
            format!("SELECT (SELECT count(*) FROM {} x)", name.to_uppercase()),
            format!("TABLE {name}"),
        ] {
            check_permit(&guard, &sql, rule);
        }
    }
}

fn check_permit(guard: &SqlGuard, sql: &str, rule: &GuardRule) {
    for mode in [READ, WRITE, DDL] {
        let result = guard.check(sql, mode);
        match result {
            Ok(_) => assert!(
                rule.permit.allows(mode),
                "{sql:?} allowed in {mode:?} despite {rule:?}"
            ),
            Err(refusal) => {
                assert!(
                    !rule.permit.allows(mode),
                    "{sql:?} refused in {mode:?}: {refusal}"
                );
                assert_eq!(refusal.rule(), Some(rule), "{sql:?}: {refusal}");
            }
        }
    }
    if rule.permit == Permit::Never {
        assert!(guard.check(sql, DDL).is_err());
    }
}

#[test]
fn refusal_messages() {
    let guard = SqlGuard::new();
    let msg = |sql: &str, mode| guard.check(sql, mode).unwrap_err().to_string();
    assert!(msg("COPY t TO '/tmp/x'", DDL).starts_with("COPY is not allowed through the broker: "));
    assert_eq!(
        msg("SELECT pg_read_file('x')", DDL),
        "function pg_read_file is not allowed: reads or writes files on the database server"
    );
    assert_eq!(
        msg("SELECT 1; SELECT 2", READ),
        "only one statement per request"
    );
    assert_eq!(
        msg("UPDATE t SET a = 1", READ),
        "UPDATE needs a write session"
    );
    assert_eq!(msg("", READ), "empty statement");
    assert_eq!(
        msg("CREATE TABLE t (a int)", WRITE),
        "CREATE TABLE needs a write session with a DDL grant: changes the schema"
    );
    assert_eq!(
        msg("SELECT nextval('s')", READ),
        "function nextval needs a write session: advances a sequence (PostgreSQL refuses it in read-only transactions)"
    );
    assert_eq!(
        msg("SELECT * FROM pg_authid", DDL),
        "relation pg_authid is not allowed through the broker: reads password hashes"
    );
    assert!(msg("SELEC 1", READ).starts_with("syntax error at or near"));
}

#[test]
fn verdicts() {
    let guard = SqlGuard::new();
    let v = guard.check("SELECT 1", READ).unwrap();
    assert_eq!((v.kind, v.writes, v.ddl), ("SELECT", false, false));
    let v = guard.check("UPDATE t SET a = 1", WRITE).unwrap();
    assert_eq!((v.kind, v.writes, v.ddl), ("UPDATE", true, false));
    let v = guard.check("SELECT nextval('s')", WRITE).unwrap();
    assert_eq!((v.kind, v.writes, v.ddl), ("SELECT", true, false));
    let v = guard.check("CREATE TABLE t (a int)", DDL).unwrap();
    assert_eq!((v.kind, v.writes, v.ddl), ("CREATE TABLE", true, true));
    let v = guard.check("EXPLAIN DELETE FROM t", READ).unwrap();
    assert_eq!((v.kind, v.writes, v.ddl), ("EXPLAIN", false, false));
    let v = guard.check("EXPLAIN ANALYZE DELETE FROM t", WRITE).unwrap();
    assert_eq!((v.kind, v.writes, v.ddl), ("EXPLAIN", true, false));
    let v = guard.check("SHOW work_mem", READ).unwrap();
    assert_eq!(v.kind, "SHOW");
    let v = guard.check("VALUES (1)", READ).unwrap();
    assert_eq!(v.kind, "VALUES");
}

/// The guard is meant to run on many threads at once.
#[test]
fn concurrent_checks() {
    let guard = SqlGuard::new();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..200 {
                    for &(expect, sql, _) in CORPUS {
                        assert_eq!(guard.check(sql, READ).is_ok(), expect == Read, "{sql:?}");
                    }
                }
            });
        }
    });
}
