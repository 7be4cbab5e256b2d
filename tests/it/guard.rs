//! The SQL guard through the real broker: a corpus of statements, each
//! refused one checked to change nothing (table checksums, files in the
//! container, server-side state), each allowed one checked to work.

use iam_pgbroker_tests::*;

/// The large object tests/it/least_privilege.rs plants (its content is a
/// secret the read cases go after).
const LARGE_OBJECT_OID: u32 = 424242;
use serde_json::{json, Value};

/// How a statement must fare.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// Works in read and write sessions.
    Read,
    /// Refused in read sessions (read_only, 25006); works in write sessions.
    Write,
    /// Refused in every session, without reaching PostgreSQL.
    Never,
    /// Refused in read and in plain write sessions; works only with a DDL grant.
    Ddl,
    /// Passes the guard everywhere; PostgreSQL refuses it in read sessions
    /// (permission denied: a read session as postgres runs as a read role),
    /// and it works in write sessions.
    PostgresRefusesRead,
}
use Expect::*;

/// `@t` is replaced by the test's scratch table.
const CORPUS: &[(&str, Expect)] = &[
    // Reads, in their many shapes.
    ("SELECT * FROM @t", Read),
    ("select count(*) from @t", Read),
    ("SELECT 1;", Read),
    ("  SELECT 1 ; ", Read),
    ("TABLE @t", Read),
    ("VALUES (1, 'a'), (2, 'b')", Read),
    ("SHOW server_version", Read),
    ("SHOW statement_timeout", Read),
    ("EXPLAIN SELECT * FROM @t", Read),
    // The guard lets a plan through, but PostgreSQL checks the plan's
    // privileges: the read role may only SELECT.
    ("EXPLAIN UPDATE @t SET note = 'x'", PostgresRefusesRead),
    ("EXPLAIN ANALYZE SELECT * FROM @t", Read),
    ("WITH x AS (SELECT * FROM @t) SELECT * FROM x", Read),
    ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT * FROM r", Read),
    ("SELECT id, note FROM @t WHERE note = 'one' ORDER BY id LIMIT 1", Read),
    ("SELECT now(), current_user, version()", Read),
    ("SELECT /* comment */ 1 -- trailing", Read),
    ("SELECT '%s', 'COMMIT; DELETE FROM @t'", Read),
    ("SELECT \"id\" FROM @t", Read),
    ("SELECT upper(note), length(note) FROM @t", Read),
    ("SELECT * FROM pg_stat_activity WHERE false", Read),
    ("SELECT encode(id::text::bytea, 'hex') FROM @t", Read),
    ("SELECT pg_backend_pid()", Read),
    ("SELECT txid_current_if_assigned()", Read),
    // Writes: refused in read sessions before PostgreSQL, allowed in write sessions.
    ("UPDATE @t SET note = 'changed'", Write),
    ("update @t set note = 'changed' where id = 1", Write),
    ("DELETE FROM @t", Write),
    ("INSERT INTO @t VALUES (100, 'new')", Write),
    ("INSERT INTO @t SELECT id + 1000, note FROM @t", Write),
    ("MERGE INTO @t USING (VALUES (1)) v(i) ON @t.id = v.i WHEN MATCHED THEN UPDATE SET note = 'm'", Write),
    ("WITH x AS (DELETE FROM @t RETURNING *) SELECT * FROM x", Write),
    ("WITH x AS (UPDATE @t SET note = 'w' RETURNING *) SELECT count(*) FROM x", Write),
    ("SELECT * FROM @t FOR UPDATE", Write),
    ("SELECT * FROM @t FOR SHARE", Write),
    ("SELECT * FROM @t FOR NO KEY UPDATE", Write),
    ("LOCK TABLE @t IN ACCESS EXCLUSIVE MODE", Write),
    ("EXPLAIN ANALYZE DELETE FROM @t", Write),
    ("UPDATE @t SET note = 'x' RETURNING *", Write),
    ("/* hidden */ UpDaTe @t SET note = 'mixed case'", Write),
    // DDL: only with a DDL grant.
    ("CREATE TABLE @t_new (x int)", Ddl),
    ("SELECT * INTO @t_copy FROM @t", Ddl),
    ("ALTER TABLE @t ADD COLUMN extra int", Ddl),
    ("DROP TABLE @t", Ddl),
    ("TRUNCATE @t", Ddl),
    ("CREATE INDEX ON @t (note)", Ddl),
    ("COMMENT ON TABLE @t IS 'x'", Ddl),
    ("GRANT SELECT ON @t TO PUBLIC", Ddl),
    ("CREATE TABLE @t_def (x text DEFAULT pg_read_file('/etc/passwd'))", Never),
    ("CREATE FUNCTION @t_f() RETURNS int LANGUAGE sql AS 'SELECT 1'", Ddl),
    // Transaction control: the broker's alone.
    ("BEGIN", Never),
    ("begin read write", Never),
    ("START TRANSACTION READ WRITE", Never),
    ("COMMIT", Never),
    ("END", Never),
    ("ROLLBACK", Never),
    ("ABORT", Never),
    ("SAVEPOINT s", Never),
    ("RELEASE SAVEPOINT s", Never),
    ("ROLLBACK TO SAVEPOINT s", Never),
    ("PREPARE TRANSACTION 'x'", Never),
    ("COMMIT PREPARED 'x'", Never),
    ("ROLLBACK PREPARED 'x'", Never),
    ("SET TRANSACTION READ WRITE", Never),
    ("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", Never),
    ("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE", Never),
    ("COMMIT; UPDATE @t SET note = 'escaped'", Never),
    ("SELECT 1; UPDATE @t SET note = 'x'", Never),
    ("SELECT 1; SELECT 2", Never),
    ("SELECT 1 -- %s\n; DELETE FROM @t", Never),
    // Session state.
    ("SET ROLE czechidm", Never),
    ("SET ROLE NONE", Never),
    ("RESET ROLE", Never),
    ("SET SESSION AUTHORIZATION czechidm", Never),
    ("RESET SESSION AUTHORIZATION", Never),
    ("SET default_transaction_read_only = off", Never),
    ("set statement_timeout to 0", Never),
    ("SET LOCAL statement_timeout = 0", Never),
    ("RESET ALL", Never),
    ("DISCARD ALL", Never),
    ("LISTEN chan", Never),
    ("NOTIFY chan", Never),
    ("UNLISTEN *", Never),
    ("PREPARE p AS SELECT 1", Never),
    ("EXECUTE p", Never),
    ("DEALLOCATE ALL", Never),
    ("DECLARE c CURSOR WITH HOLD FOR SELECT 1", Never),
    ("FETCH 1 FROM c", Never),
    ("CLOSE ALL", Never),
    ("SELECT set_config('default_transaction_read_only', 'off', false)", Never),
    ("SELECT pg_catalog.set_config('statement_timeout', '0', false)", Never),
    ("SELECT PG_CATALOG.\"set_config\"('role', 'czechidm', false)", Never),
    ("SELECT * FROM @t WHERE set_config('x.y', '1', false) IS NOT NULL", Never),
    // Outside the database.
    ("COPY (SELECT 1) TO PROGRAM 'touch /tmp/guard-pwned'", Never),
    ("copy @t to '/tmp/guard-pwned'", Never),
    ("COPY @t FROM '/etc/passwd'", Never),
    ("DO $$ BEGIN PERFORM 1; END $$", Never),
    ("CALL some_procedure()", Never),
    ("SELECT pg_read_file('/etc/passwd')", Never),
    ("select PG_READ_FILE('/etc/passwd')", Never),
    ("SELECT pg_catalog.pg_read_binary_file('/etc/passwd')", Never),
    ("SELECT * FROM pg_ls_dir('.')", Never),
    ("SELECT pg_stat_file('postgresql.conf')", Never),
    ("SELECT (SELECT pg_read_file('/etc/passwd'))", Never),
    ("SELECT * FROM @t WHERE note IN (SELECT pg_read_file('/etc/hostname'))", Never),
    ("WITH x AS (SELECT pg_read_file('/etc/passwd') AS f) SELECT * FROM x", Never),
    ("SELECT * FROM @t ORDER BY pg_read_file('/etc/passwd')", Never),
    ("SELECT * FROM @t GROUP BY id HAVING pg_read_file('/etc/passwd') IS NULL", Never),
    ("SELECT CASE WHEN true THEN pg_read_file('/etc/passwd') END", Never),
    ("SELECT coalesce(NULL, pg_read_file('/etc/passwd'))", Never),
    ("SELECT ARRAY[pg_read_file('/etc/passwd')]", Never),
    ("SELECT * FROM @t t1 JOIN @t t2 ON pg_read_file('/x') IS NULL", Never),
    ("SELECT * FROM @t, LATERAL (SELECT pg_read_file('/x')) l", Never),
    ("VALUES (pg_read_file('/etc/passwd'))", Never),
    ("SELECT lo_import('/etc/passwd')", Never),
    ("SELECT lo_from_bytea(0, 'x')", Never),
    ("SELECT lo_export(1, '/tmp/guard-pwned')", Never),
    ("SELECT pg_terminate_backend(pg_backend_pid())", Never),
    ("SELECT pg_cancel_backend(1)", Never),
    ("SELECT pg_reload_conf()", Never),
    ("SELECT pg_advisory_lock(42)", Never),
    ("SELECT pg_try_advisory_xact_lock(42)", Never),
    ("SELECT pg_notify('chan', 'x')", Never),
    ("SELECT dblink('host=x', 'SELECT 1')", Never),
    ("SELECT query_to_xml('DELETE FROM @t RETURNING 1', true, true, '')", Never),
    ("SELECT pg_sleep(1)", Never),
    ("SELECT * FROM pg_authid", Never),
    ("SELECT passwd FROM pg_shadow", Never),
    ("CHECKPOINT", Never),
    ("LOAD 'plpgsql'", Never),
    ("ALTER SYSTEM SET work_mem = '1GB'", Never),
    ("VACUUM @t", Ddl),
    // Broken input never runs.
    ("SEL/**/ECT 1", Never),
    ("SELECT 'unterminated", Never),
    ("", Never),
    ("-- only a comment", Never),
];

struct Ground {
    app: &'static Appliance,
    table: String,
}

impl Ground {
    /// Everything a refused statement could have changed, as one string.
    /// What a refused statement could have changed. Tests run side by side
    /// on one appliance: the read roles brokers provision for their users
    /// and the large object tests/it/least_privilege.rs plants are theirs,
    /// not this corpus's, and are left out.
    fn snapshot(&self) -> String {
        let t = &self.table;
        let sql = format!(
            "SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM {t} x \
             UNION ALL SELECT md5(string_agg(i::text, '|' ORDER BY i.id)) FROM idm_identity i \
             UNION ALL SELECT string_agg(rolname || rolsuper::text, ',' ORDER BY rolname) FROM pg_roles \
                       WHERE rolname NOT LIKE 'iam\\_pgbroker\\_read%' \
             UNION ALL SELECT count(*)::text FROM pg_largeobject_metadata WHERE oid <> {LARGE_OBJECT_OID} \
             UNION ALL SELECT count(*)::text FROM pg_prepared_xacts \
             UNION ALL SELECT count(*)::text FROM pg_db_role_setting \
                       WHERE setrole NOT IN (SELECT oid FROM pg_roles WHERE rolname LIKE 'iam\\_pgbroker\\_read%') \
             UNION ALL SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class WHERE relname LIKE '{t}%'"
        );
        let mut snap = self.app.psql("czechidm", &sql);
        let files = std::process::Command::new("docker")
            .args([
                "exec",
                &self.app.container("czechidm"),
                "sh",
                "-c",
                "ls -a /tmp /var/lib/postgresql",
            ])
            .output()
            .expect("docker exec ls");
        snap.push_str(&String::from_utf8_lossy(&files.stdout));
        snap
    }
}

fn session(broker: &BrokerProcess, readonly: bool) -> RawClient {
    let mut raw = RawClient::connect(broker);
    let f = raw.call(json!({"id": 1, "op": "open", "readonly": readonly}));
    assert_eq!(f[0]["type"], "opened", "{f:?}");
    raw
}

fn run_statement(raw: &mut RawClient, sql: &str) -> Value {
    let frames = raw.call(json!({"id": 2, "op": "query", "sql": sql}));
    // Each statement in its own transaction, rolled back: allowed writes
    // leave nothing behind either, and an aborted transaction is cleared.
    raw.call(json!({"id": 3, "op": "rollback"}));
    frames.last().cloned().unwrap_or(Value::Null)
}

fn refused_before_postgres(last: &Value) -> bool {
    matches!(
        last["error"]["code"].as_str(),
        Some("forbidden_statement") | Some("read_only")
    ) || (last["error"]["code"] == "database" && last["error"]["sqlstate"] == "42601")
}

#[test]
fn the_corpus_changes_nothing_it_should_not() {
    assert!(CORPUS.len() >= 80, "corpus has {} statements", CORPUS.len());
    let app = Appliance::get();
    let table = app.scratch_table(
        "g",
        "id int primary key, note text",
        "(1, 'one'), (2, 'two')",
    );
    let ground = Ground {
        app,
        table: table.clone(),
    };
    // The worst case: the postgres superuser, in read and in write (no DDL)
    // sessions.
    let broker = BrokerProcess::start();
    let before = ground.snapshot();
    let mut read = session(&broker, true);
    let mut write = session(&broker, false);
    let mut failures = Vec::new();
    for (template, expect) in CORPUS {
        let sql = template.replace("@t", &table);
        let in_read = run_statement(&mut read, &sql);
        let in_write = run_statement(&mut write, &sql);
        let ok = |v: &Value| v["type"] == "done";
        let good = match expect {
            Read => ok(&in_read) && ok(&in_write),
            Write => {
                in_read["error"]["code"] == "read_only"
                    && in_read["error"]["sqlstate"] == "25006"
                    && ok(&in_write)
            }
            Never | Ddl => refused_before_postgres(&in_read) && refused_before_postgres(&in_write),
            PostgresRefusesRead => in_read["error"]["sqlstate"] == "42501" && ok(&in_write),
        };
        if !good {
            failures.push(format!(
                "{expect:?} {sql:?}\n  read:  {in_read}\n  write: {in_write}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {}:\n{}",
        failures.len(),
        CORPUS.len(),
        failures.join("\n")
    );
    assert_eq!(
        ground.snapshot(),
        before,
        "a refused statement changed something"
    );

    // No server-side state left in the sessions that ran the corpus (their
    // own backends: other tests take advisory locks of their own meanwhile);
    // the read session ran as root's read role, never as the superuser.
    for (raw, user) in [(&mut read, "iam_pgbroker_read_0"), (&mut write, "postgres")] {
        let f = raw.call(json!({"id": 4, "op": "query", "sql":
            "SELECT current_user, session_user, current_setting('statement_timeout'), \
                    (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()), \
                    (SELECT count(*) FROM pg_prepared_statements WHERE from_sql), \
                    (SELECT count(*) FROM pg_cursors WHERE name <> ''), \
                    (SELECT count(*) FROM pg_listening_channels())"}));
        let row = &f
            .iter()
            .find(|x| x["type"] == "rows")
            .unwrap_or_else(|| panic!("{f:?}"))["rows"][0];
        assert_eq!(row, &json!([user, user, "1min", 0, 0, 0, 0]), "{f:?}");
    }
}

#[test]
fn ddl_needs_a_ddl_grant() {
    let app = Appliance::get();
    let table = app.scratch_table("ddl", "id int", "(1)");
    let policy = format!(
        "{STANDARD_POLICY}\n[[rule]]\nname = \"schema-admins\"\nusers = [\"{OPERATOR}\"]\ndbs = [\"czechidm\"]\ndb_users = [\"czechidm\"]\nmode = \"write\"\nddl = true\n"
    );
    let broker = BrokerProcess::start_with(BrokerOptions {
        policy: Some(policy),
        ..Default::default()
    });
    let create = format!("CREATE TABLE {table}_made (x int); ALTER TABLE {table} ADD COLUMN y int");
    // One statement per -c; both in one transaction, committed.
    let parts: Vec<&str> = create.split("; ").collect();
    let ran = run(iam_pg(OPERATOR, &broker)
        .args(["-U", "czechidm", "--write", "-c", parts[0], "-c", parts[1]]));
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(
        app.psql(
            "czechidm",
            &format!("SELECT count(*) FROM pg_class WHERE relname = '{table}_made'")
        ),
        "1"
    );
    // The writer's rule has no ddl: the same statement is refused.
    let ran = run(iam_pg(WRITER, &broker).args([
        "-U",
        "czechidm",
        "--write",
        "-c",
        &format!("DROP TABLE {table}"),
    ]));
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(
        ran.stderr.contains("DDL") || ran.stderr.contains("not allowed"),
        "{ran:?}"
    );
    assert_eq!(
        app.psql("czechidm", &format!("SELECT count(*) FROM {table}")),
        "1"
    );
}

#[test]
fn require_reason_refuses_sessions_without_one() {
    let policy = format!(
        "[[rule]]\nname = \"fixers\"\nusers = [\"{WRITER}\"]\ndbs = [\"czechidm\"]\ndb_users = [\"czechidm\"]\nmode = \"write\"\nrequire_reason = true\n"
    );
    let broker = BrokerProcess::start_with(BrokerOptions {
        policy: Some(policy),
        ..Default::default()
    });
    let ran = run(iam_pg(WRITER, &broker).args(["-U", "czechidm", "-c", "SELECT 1"]));
    assert_eq!(ran.code, 3, "{ran:?}");
    assert!(ran.stderr.contains("reason"), "{ran:?}");
    let ran =
        run(iam_pg(WRITER, &broker).args(["-U", "czechidm", "--reason", "   ", "-c", "SELECT 1"]));
    assert_eq!(ran.code, 3, "a blank reason is no reason: {ran:?}");
    let ran = run(iam_pg(WRITER, &broker).args([
        "-U",
        "czechidm",
        "--reason",
        "ticket 42",
        "-c",
        "SELECT 1",
    ]));
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(broker.log().contains("ticket 42"));
}

#[test]
fn db_role_bounds_the_session_by_postgres_privileges() {
    let app = Appliance::get();
    let table = app.scratch_table("role", "id int", "(1)");
    app.psql(
        "czechidm",
        &format!("GRANT SELECT ON {table} TO iam_reader"),
    );
    let policy = format!(
        "[[rule]]\nname = \"reports\"\nusers = [\"{READER}\"]\ndbs = [\"czechidm\"]\ndb_users = [\"postgres\"]\nmode = \"write\"\ndb_role = \"iam_reader\"\n"
    );
    let broker = BrokerProcess::start_with(BrokerOptions {
        policy: Some(policy),
        ..Default::default()
    });
    let ran = run(iam_pg(READER, &broker).args(["--format", "csv", "-c", "SELECT current_user"]));
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(ran.stdout.trim(), "current_user\niam_reader");
    // Even a write session granted by the rule cannot write: the role has
    // SELECT only, and PostgreSQL itself says no.
    let ran = run(iam_pg(READER, &broker).args(["--write", "-c", &format!("DELETE FROM {table}")]));
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(
        ran.stderr.contains("ERROR:  permission denied for table"),
        "{ran:?}"
    );
    assert_eq!(
        app.psql("czechidm", &format!("SELECT count(*) FROM {table}")),
        "1"
    );
}

#[test]
fn timeouts_come_from_the_config_and_cannot_be_changed() {
    let policy = format!(
        "{STANDARD_POLICY}\n[[rule]]\nname = \"quick\"\nusers = [\"{OPERATOR}\"]\ndbs = [\"bridge\"]\ndb_users = [\"postgres\"]\nmode = \"read\"\nstatement_timeout_ms = 200\n"
    );
    let broker = BrokerProcess::start_with(BrokerOptions {
        policy: Some(policy),
        extra: String::new(),
        ..Default::default()
    });
    let ran = run(iam_pg(OPERATOR, &broker).args([
        "-d",
        "bridge",
        "--format",
        "csv",
        "-c",
        "SHOW statement_timeout",
        "-c",
        "SHOW idle_in_transaction_session_timeout",
    ]));
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(
        ran.stdout.contains("200ms") && ran.stdout.contains("10min"),
        "{ran:?}"
    );
    // A statement over the limit is cancelled by PostgreSQL (57014).
    let ran = run(iam_pg(OPERATOR, &broker).args([
        "-d",
        "bridge",
        "-c",
        "SELECT count(*) FROM generate_series(1, 100000000)",
    ]));
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(
        ran.stderr
            .contains("ERROR:  canceling statement due to statement timeout"),
        "{ran:?}"
    );
    let ran =
        run(iam_pg(OPERATOR, &broker).args(["-d", "bridge", "-c", "SET statement_timeout = 0"]));
    assert_eq!(ran.code, 1, "{ran:?}");
}
