//! Least privilege enforced twice: a read grant as the superuser `postgres`
//! reaches the data it may read and nothing else — with the guard on
//! (refused before PostgreSQL sees it), and, for every file, secret,
//! signal and catalog-secret case, with the guard's function and relation
//! checks off (the test-only `iam-pgbroker-unguarded`): PostgreSQL alone
//! refuses it, because a read session is never a superuser session.
//! Nothing of one session is visible to the next, across two real OS
//! users and within one.

use iam_pgbroker_tests::*;
use serde_json::{json, Value};
use std::process::Command;

/// A read session as the superuser `postgres` on czechidm.
fn read_session(broker: &BrokerProcess) -> RawClient {
    RawClient::open(broker, json!({"user": "postgres", "readonly": true}))
}

fn write_session(broker: &BrokerProcess) -> RawClient {
    RawClient::open(broker, json!({"user": "postgres", "readonly": false}))
}

/// Runs one statement in its own transaction (rolled back) and returns the
/// last frame.
fn run_one(raw: &mut RawClient, sql: &str) -> Value {
    let frames = raw.call(json!({"id": 2, "op": "query", "sql": sql}));
    raw.call(json!({"id": 3, "op": "rollback"}));
    frames.last().cloned().unwrap_or(Value::Null)
}

/// Every frame of one statement, rolled back.
fn run_all(raw: &mut RawClient, sql: &str) -> Vec<Value> {
    let frames = raw.call(json!({"id": 2, "op": "query", "sql": sql}));
    raw.call(json!({"id": 3, "op": "rollback"}));
    frames
}

fn first_row(raw: &mut RawClient, sql: &str) -> Value {
    let frames = run_all(raw, sql);
    frames
        .iter()
        .find(|f| f["type"] == "rows")
        .map(|f| f["rows"][0].clone())
        .unwrap_or_else(|| panic!("{sql}: {frames:?}"))
}

fn refused_before_postgres(last: &Value) -> bool {
    matches!(
        last["error"]["code"].as_str(),
        Some("forbidden_statement") | Some("read_only")
    ) || (last["error"]["code"] == "database" && last["error"]["sqlstate"] == "42601")
}

/// What must never reach a client: the content of server files, password
/// hashes, the pwfiles' passwords, a foreign server's password.
struct Secrets {
    markers: Vec<String>,
}

impl Secrets {
    fn of(app: &Appliance) -> Secrets {
        let mut markers = vec![
            "root:x:0:0".to_owned(),     // /etc/passwd
            "SCRAM-SHA-256$".to_owned(), // pg_authid.rolpassword
            "scram-sha-256".to_owned(),  // pg_hba.conf
            MAPPING_SECRET.to_owned(),
            LARGE_OBJECT_SECRET.to_owned(),
        ];
        for user in ["postgres", "czechidm"] {
            let pw = std::fs::read_to_string(app.pwfile("czechidm", user)).expect("pwfile");
            markers.push(pw.trim_end_matches('\n').to_owned());
        }
        Secrets { markers }
    }

    /// The first secret `frames` show, by index (never the secret itself:
    /// test output must not carry it either).
    fn leaked(&self, frames: &[Value]) -> Option<usize> {
        let text = serde_json::to_string(frames).unwrap_or_default();
        self.markers.iter().position(|m| text.contains(m.as_str()))
    }

    /// `frames` as text for a failure message, every secret blanked out.
    fn shown(&self, frames: &[Value]) -> String {
        let mut text = serde_json::to_string(frames).unwrap_or_default();
        for m in &self.markers {
            text = text.replace(m.as_str(), "<secret>");
        }
        text.chars().take(400).collect()
    }
}

const MAPPING_SECRET: &str = "mapping-secret-7Qx2";
const LARGE_OBJECT_SECRET: &str = "large-object-secret-9Kd4";

/// What a refused case could have changed, as one string: tables, roles,
/// large objects, prepared transactions, role settings, replication slots
/// and origins, statistics resets, and the files in the container's /tmp,
/// data folder and snapshot/slot folders.
fn snapshot(app: &Appliance, table: &str) -> String {
    let sql = format!(
        "SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM {table} x \
         UNION ALL SELECT md5(string_agg(i::text, '|' ORDER BY i.id)) FROM idm_identity i \
         UNION ALL SELECT string_agg(rolname || rolsuper::text || rolcanlogin::text, ',' ORDER BY rolname) \
                   FROM pg_roles WHERE rolname NOT LIKE 'iam\\_pgbroker\\_read%' \
         UNION ALL SELECT count(*)::text FROM pg_largeobject_metadata \
         UNION ALL SELECT count(*)::text FROM pg_prepared_xacts \
         UNION ALL SELECT count(*)::text FROM pg_db_role_setting \
                   WHERE setrole NOT IN (SELECT oid FROM pg_roles WHERE rolname LIKE 'iam\\_pgbroker\\_read%') \
         UNION ALL SELECT count(*)::text FROM pg_replication_slots \
         UNION ALL SELECT count(*)::text FROM pg_replication_origin \
         UNION ALL SELECT coalesce(stats_reset::text, '-') FROM pg_stat_bgwriter \
         UNION ALL SELECT coalesce(stats_reset::text, '-') FROM pg_stat_database WHERE datname = 'czechidm' \
         UNION ALL SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class WHERE relname LIKE '{table}%'"
    );
    let mut snap = app.psql("czechidm", &sql);
    let files = Command::new("docker")
        .args([
            "exec",
            &app.container("czechidm"),
            "sh",
            "-c",
            "ls -a /tmp /var/lib/postgresql $PGDATA/pg_snapshots $PGDATA/pg_replslot $PGDATA/pg_logical/snapshots",
        ])
        .output()
        .expect("docker exec ls");
    snap.push_str(&String::from_utf8_lossy(&files.stdout));
    snap
}

/// The application's own connection (as czechidm), standing in for
/// CzechIdM: a read session must not be able to end it. Killed on drop.
struct AppBackend {
    _child: KillOnDrop,
    pid: String,
}

impl AppBackend {
    /// The application's own connection, as `czechidm` over TCP.
    fn start(app: &Appliance, tag: &str) -> AppBackend {
        let marker = unique_name(tag);
        let login = format!(
            "PGPASSWORD=\"$(cat /secrets/czechidm.pwfile)\" psql -X -h 127.0.0.1 -U czechidm -d czechidm \
             -c \"SELECT pg_sleep(600) /* {marker} */\""
        );
        // As the container's root, who may read the pwfile.
        AppBackend::sleeping(app, None, &["sh", "-c", &login], "czechidm", &marker)
    }

    /// A superuser's connection (psql as postgres inside the container).
    fn start_superuser(app: &Appliance) -> AppBackend {
        let marker = unique_name("lp_su");
        let sql = format!("SELECT pg_sleep(600) /* {marker} */");
        AppBackend::sleeping(
            app,
            Some("postgres"),
            &["psql", "-X", "-d", "czechidm", "-c", &sql],
            "postgres",
            &marker,
        )
    }

    /// Runs `command` in the container (as `os_user`, else root): a
    /// connection that sleeps with `marker` in its text; finds its backend
    /// as database user `user`.
    fn sleeping(
        app: &Appliance,
        os_user: Option<&str>,
        command: &[&str],
        user: &str,
        marker: &str,
    ) -> AppBackend {
        let mut docker = Command::new("docker");
        docker.arg("exec");
        if let Some(u) = os_user {
            docker.args(["-u", u]);
        }
        let child = docker
            .arg(app.container("czechidm"))
            .args(command)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start a connection");
        let mut pid = String::new();
        let found = eventually(std::time::Duration::from_secs(20), || {
            pid = app.psql(
                "czechidm",
                &format!(
                    "SELECT pid FROM pg_stat_activity WHERE query LIKE '%{marker}%' \
                     AND usename = '{user}' AND pid <> pg_backend_pid()"
                ),
            );
            !pid.is_empty()
        });
        assert!(found, "the {user} connection did not show up");
        AppBackend {
            _child: KillOnDrop(child),
            pid,
        }
    }

    fn alive(&self, app: &Appliance) -> bool {
        app.psql(
            "czechidm",
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = {}",
                self.pid
            ),
        ) == "1"
    }
}

/// Sets up the secrets some cases go after: a foreign server's user
/// mapping with a password, and a large object with secret content.
fn plant_secrets(app: &Appliance) {
    app.psql(
        "czechidm",
        &format!(
            "SELECT pg_advisory_xact_lock(424242); \
             CREATE EXTENSION IF NOT EXISTS postgres_fdw; \
             CREATE SEQUENCE IF NOT EXISTS idm_seq_lp; \
             DO $$ BEGIN \
               IF NOT EXISTS (SELECT 1 FROM pg_foreign_server WHERE srvname = 'lp_remote') THEN \
                 CREATE SERVER lp_remote FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host 'localhost'); \
                 CREATE USER MAPPING FOR postgres SERVER lp_remote OPTIONS (user 'remote', password '{MAPPING_SECRET}'); \
               END IF; \
               IF NOT EXISTS (SELECT 1 FROM pg_largeobject_metadata WHERE oid = 424242) THEN \
                 PERFORM lo_from_bytea(424242, convert_to('{LARGE_OBJECT_SECRET}', 'UTF8')); \
               END IF; \
             END $$"
        ),
    );
}

/// How PostgreSQL alone holds a case of [`HELD`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// Refused: `42501` (insufficient privilege) or `25006` (read-only
    /// transaction).
    Refused,
    /// Filtered rather than refused (the views over secret catalogs, the
    /// server's memory statistics `pg_read_all_stats` may read): it may
    /// run, and shows no secret.
    Hidden,
    /// Runs, but only inside the session's transaction, which the broker
    /// rolls back (PostgreSQL lets any role create a large object, even in
    /// a READ ONLY transaction); the snapshot at the end shows nothing
    /// stayed.
    RolledBack,
}
use Held::*;

/// Cases PostgreSQL itself must refuse in a read session as `postgres`,
/// guard or no guard: files, secrets, signals, server control, the way
/// back to the superuser. `@app` is the application's backend pid, `@su`
/// a superuser backend's, `@other` another OS user's read session's.
/// Each must end as its [`Held`] says.
const HELD: &[(&str, Held)] = &[
    // Files on the server.
    ("SELECT pg_read_file('/etc/passwd')", Refused),
    ("SELECT pg_read_file('/etc/passwd', 0, 100)", Refused),
    ("SELECT pg_read_file('global/1260', 0, 8192, true)", Refused),
    ("SELECT pg_read_binary_file('global/1260')", Refused),
    (
        "SELECT pg_read_binary_file('/secrets/postgres.pwfile')",
        Refused,
    ),
    ("SELECT pg_read_file('pg_hba.conf')", Refused),
    ("SELECT pg_read_file_old('/etc/passwd', 0, 100)", Refused),
    (
        "SELECT pg_catalog.pg_read_file_old('global/1260', 0, 8192)",
        Refused,
    ),
    ("SELECT pg_stat_file('/etc/passwd')::text", Refused),
    (
        "SELECT pg_stat_file('postgresql.conf', true)::text",
        Refused,
    ),
    ("SELECT * FROM pg_ls_dir('.')", Refused),
    ("SELECT * FROM pg_ls_dir('/secrets')", Refused),
    ("SELECT * FROM pg_ls_waldir()", Refused),
    ("SELECT * FROM pg_ls_logdir()", Refused),
    ("SELECT * FROM pg_ls_tmpdir()", Refused),
    ("SELECT * FROM pg_ls_archive_statusdir()", Refused),
    ("SELECT * FROM pg_ls_logicalsnapdir()", Refused),
    ("SELECT * FROM pg_ls_logicalmapdir()", Refused),
    ("SELECT * FROM pg_ls_replslotdir('none')", Refused),
    ("SELECT lo_import('/etc/passwd')", Refused),
    (
        "SELECT lo_import('/secrets/postgres.pwfile', 515151)",
        Refused,
    ),
    ("SELECT lo_export(424242, '/tmp/lp-exported')", Refused),
    ("SELECT * FROM pg_hba_file_rules", Refused),
    ("SELECT * FROM pg_ident_file_mappings", Refused),
    ("SELECT * FROM pg_file_settings", Refused),
    ("SELECT pg_current_logfile()", Refused),
    ("SELECT * FROM pg_config", Refused),
    ("SELECT * FROM pg_show_all_file_settings()", Refused),
    (
        "SELECT pg_read_file(current_setting('data_directory') || '/global/1260')",
        Refused,
    ),
    ("SELECT * FROM pg_get_backend_memory_contexts()", Hidden),
    ("SELECT * FROM pg_get_shmem_allocations()", Hidden),
    // Secrets in the catalogs.
    ("SELECT rolname, rolpassword FROM pg_authid", Refused),
    ("SELECT * FROM pg_catalog.pg_authid", Refused),
    ("SELECT passwd FROM pg_shadow", Refused),
    (
        "SELECT starelid, stavalues1::text FROM pg_statistic",
        Refused,
    ),
    ("SELECT * FROM pg_user_mapping", Refused),
    ("SELECT subname, subconninfo FROM pg_subscription", Refused),
    ("SELECT * FROM pg_largeobject", Refused),
    ("SELECT lo_get(424242)", Refused),
    ("SELECT loread(lo_open(424242, 262144), 100)", Refused),
    (
        "SELECT table_to_xml('pg_authid', true, false, '')::text",
        Refused,
    ),
    (
        "SELECT query_to_xml('SELECT rolpassword FROM pg_authid', true, false, '')::text",
        Refused,
    ),
    ("SELECT * FROM pg_user_mappings", Hidden),
    (
        "SELECT * FROM information_schema.user_mapping_options",
        Hidden,
    ),
    ("SELECT * FROM information_schema._pg_user_mappings", Hidden),
    (
        "SELECT * FROM pg_stats WHERE tablename = 'pg_authid'",
        Hidden,
    ),
    ("SELECT * FROM pg_roles", Hidden),
    ("SELECT * FROM pg_user", Hidden),
    // Signals and server control.
    ("SELECT pg_terminate_backend(@app)", Refused),
    ("SELECT pg_cancel_backend(@app)", Refused),
    ("SELECT pg_terminate_backend(@su)", Refused),
    ("SELECT pg_cancel_backend(@su)", Refused),
    ("SELECT pg_terminate_backend(@other)", Refused),
    ("SELECT pg_cancel_backend(@other)", Refused),
    ("SELECT pg_reload_conf()", Refused),
    ("SELECT pg_rotate_logfile()", Refused),
    ("SELECT pg_rotate_logfile_old()", Refused),
    ("SELECT pg_promote()", Refused),
    ("SELECT pg_log_backend_memory_contexts(@su)", Refused),
    ("SELECT pg_switch_wal()::text", Refused),
    ("SELECT pg_create_restore_point('lp')::text", Refused),
    ("SELECT pg_backup_start('lp')::text", Refused),
    ("SELECT pg_wal_replay_pause()::text", Refused),
    (
        "SELECT pg_create_physical_replication_slot('lp_slot')::text",
        Refused,
    ),
    (
        "SELECT pg_create_logical_replication_slot('lp_slot', 'pgoutput')::text",
        Refused,
    ),
    ("SELECT pg_replication_origin_create('lp_origin')", Refused),
    ("SELECT pg_stat_reset()::text", Refused),
    ("SELECT pg_stat_reset_shared('bgwriter')::text", Refused),
    (
        "SELECT pg_stat_reset_single_table_counters('idm_identity'::regclass)::text",
        Refused,
    ),
    // The way back to the superuser.
    ("SELECT set_config('role', 'postgres', false)", Refused),
    ("SELECT set_config('role', 'czechidm', false)", Refused),
    (
        "SELECT set_config('session_authorization', 'postgres', false)",
        Refused,
    ),
    (
        "SELECT set_config('role', 'pg_read_server_files', false)",
        Refused,
    ),
    // An external entity in XML: PostgreSQL never loads one.
    (
        "SELECT xmlparse(document '<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><x>&e;</x>')::text",
        Hidden,
    ),
    // Writes: the transaction is READ ONLY, and the role may only SELECT.
    ("SELECT lo_from_bytea(0, 'x')", RolledBack),
    ("SELECT lo_unlink(424242)", Refused),
    ("SELECT lo_create(0)", RolledBack),
    ("SELECT nextval('idm_seq_lp')", Refused),
];

/// Cases the guard refuses in read sessions before PostgreSQL sees them,
/// and that are refused in write sessions too (`never`).
const REFUSED: &[(&str, bool)] = &[
    // Every route to a function.
    ("SELECT PG_READ_FILE('/etc/passwd')", true),
    ("SELECT \"pg_read_file\"('/etc/passwd')", true),
    ("SELECT pg_catalog.\"pg_read_file\"('/etc/passwd')", true),
    (
        "SELECT czechidm.pg_catalog.pg_read_file('/etc/passwd')",
        true,
    ),
    ("SELECT U&\"pg\\005fread\\005ffile\"('/etc/passwd')", true),
    ("SELECT U&\"pg!005fls!005fdir\" UESCAPE '!' ('.')", true),
    ("SELECT 'pg_read_file'::regproc", true),
    ("SELECT 'pg_catalog.pg_ls_dir(text)'::regprocedure", true),
    ("SELECT CAST('lo_import' AS regproc)", true),
    ("SELECT regproc 'pg_read_file_old'", true),
    ("SELECT ('x'::text).pg_read_file", true),
    ("SELECT t.note.pg_read_file FROM @t t", true),
    ("SELECT * FROM ROWS FROM (pg_ls_dir('.')) r", true),
    ("SELECT * FROM pg_ls_dir('.') WITH ORDINALITY", true),
    (
        "SELECT * FROM @t TABLESAMPLE system (length(pg_read_file('/etc/passwd')))",
        true,
    ),
    (
        "SELECT * FROM @t TABLESAMPLE bernoulli (1) REPEATABLE (length(pg_read_file('/x')))",
        true,
    ),
    ("SELECT pg_export_snapshot()", true),
    (
        "SELECT pg_export_snapshot() FROM generate_series(1, 1000)",
        true,
    ),
    ("SELECT pg_sleep(0.01)", true),
    ("SELECT pg_sleep_for('1 second')", true),
    ("SELECT pg_advisory_lock(42)", true),
    ("SELECT pg_try_advisory_lock_shared(42)", true),
    ("SELECT pg_advisory_xact_lock(42)", true),
    ("SELECT pg_notify('c', 'x')", true),
    ("SELECT set_config('statement_timeout', '0', false)", true),
    (
        "SELECT set_config('default_transaction_read_only', 'off', false)",
        true,
    ),
    ("SELECT setseed(0.5)", true),
    ("SELECT txid_current() FROM pg_ls_waldir()", true),
    ("SELECT cursor_to_xml('c', 1, false, false, '')", true),
    (
        "SELECT ts_stat('SELECT to_tsvector(rolpassword) FROM pg_authid')",
        true,
    ),
    (
        "SELECT ts_rewrite('a'::tsquery, 'SELECT ''a''::tsquery, ''b''::tsquery')",
        true,
    ),
    ("SELECT database_to_xml(true, false, '')", true),
    ("SELECT schema_to_xml('pg_catalog', true, false, '')", true),
    ("SELECT binary_upgrade_set_next_pg_authid_oid(1)", true),
    (
        "SELECT pg_nextoid('pg_authid', 'oid', 'pg_authid_oid_index')",
        true,
    ),
    ("SELECT \"RI_FKey_check_ins\"()", true),
    ("SELECT bthandler(NULL)", true),
    ("SELECT get_raw_page('pg_authid', 0)", true),
    (
        "SELECT * FROM heap_page_items(get_raw_page('pg_authid', 0))",
        true,
    ),
    ("SELECT dblink('host=localhost', 'SELECT 1')", true),
    ("SELECT dblink_connect_u('x', 'host=localhost')", true),
    ("SELECT pg_file_write('/tmp/x', 'x', false)", true),
    (
        "SELECT xpath_table('id', 'x', 'pg_authid', '/a', 'true')",
        true,
    ),
    ("SELECT pg_logical_emit_message(true, 'p', 'x')", true),
    ("SELECT pg_drop_replication_slot('x')", true),
    (
        "SELECT brin_summarize_new_values('idm_identity_pkey')",
        true,
    ),
    ("SELECT gin_clean_pending_list('x'::regclass)", true),
    ("SELECT * FROM pg_user_mappings", true),
    (
        "SELECT * FROM information_schema.user_mapping_options",
        true,
    ),
    ("SELECT * FROM information_schema._pg_user_mappings", true),
    ("SELECT * FROM pg_stats", true),
    ("SELECT * FROM pg_stats_ext", true),
    ("SELECT * FROM pg_catalog.pg_statistic_ext_data", true),
    ("SELECT * FROM \"pg_authid\"", true),
    ("SELECT * FROM PG_SHADOW", true),
    ("SELECT (SELECT rolpassword FROM pg_authid LIMIT 1)", true),
    (
        "WITH a AS (SELECT * FROM pg_authid) SELECT count(*) FROM a",
        true,
    ),
    (
        "SELECT * FROM idm_identity i JOIN pg_authid a ON a.rolname = i.username",
        true,
    ),
    (
        "SELECT * FROM idm_identity WHERE EXISTS (SELECT 1 FROM pg_shadow)",
        true,
    ),
    ("SELECT * FROM pg_largeobject", true),
    ("EXPLAIN SELECT * FROM pg_authid", true),
    ("EXPLAIN ANALYZE SELECT pg_read_file('/etc/passwd')", true),
    (
        "EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM pg_ls_dir('.')",
        true,
    ),
    (
        "SELECT 1 OPERATOR(pg_catalog.+) length(pg_read_file('/x'))",
        true,
    ),
    // What read sessions cannot tell is safe: the application's functions,
    // unknown operators and types.
    ("SELECT cleanup_identities()", false),
    ("SELECT public.cleanup_identities(1)", false),
    ("SELECT evil.lower('x')", false),
    ("SELECT \"LOWER\"('x')", false),
    ("SELECT 1 ### 2", false),
    ("SELECT 1 OPERATOR(evil.||/) 2", false),
    ("SELECT 'x'::app_secret_type", false),
    ("SELECT * FROM @t ORDER BY note USING ###", false),
    ("SELECT * FROM @t TABLESAMPLE evil_method (1)", false),
    ("SELECT 'cleanup_identities'::regproc", false),
    // Writes and locks: read-only sessions.
    ("SELECT * FROM @t FOR UPDATE", false),
    ("SELECT nextval('x')", false),
    (
        "WITH d AS (DELETE FROM @t RETURNING *) SELECT * FROM d",
        false,
    ),
    // Statements that are no read.
    ("COPY (SELECT 1) TO PROGRAM 'id'", true),
    ("COPY @t FROM '/etc/passwd'", true),
    ("COPY @t TO '/tmp/lp-out'", true),
    (
        "DO $$ BEGIN PERFORM pg_read_file('/etc/passwd'); END $$",
        true,
    ),
    ("CALL pg_catalog.pg_sleep(1)", true),
    ("SET ROLE postgres", true),
    ("RESET ROLE", true),
    ("SET SESSION AUTHORIZATION postgres", true),
    ("RESET SESSION AUTHORIZATION", true),
    ("LOAD 'postgres_fdw'", true),
    ("PREPARE p AS SELECT 1", true),
    ("LISTEN c", true),
    ("DECLARE c CURSOR WITH HOLD FOR SELECT 1", true),
    ("COMMIT; SELECT pg_read_file('/etc/passwd')", true),
    ("SELECT 1; SELECT pg_read_file('/etc/passwd')", true),
    (
        "CREATE TABLE @t_x AS SELECT pg_read_file('/etc/passwd')",
        true,
    ),
    (
        "CREATE TABLE @t_d (x text DEFAULT pg_read_file('/etc/passwd'))",
        true,
    ),
    (
        "CREATE TABLE @t_c (x text CHECK (pg_read_file('/etc/passwd') IS NOT NULL))",
        true,
    ),
];

/// Functions to put in every position of [`POSITIONS`]; all refused in
/// read sessions (the `bool`: in write sessions too).
const FUNCTIONS: &[(&str, bool)] = &[
    ("pg_read_file('/etc/passwd')", true),
    ("pg_read_file_old('/etc/passwd', 0, 10)", true),
    ("pg_ls_dir('.')", true),
    ("lo_import('/etc/passwd')", true),
    ("pg_export_snapshot()", true),
    ("set_config('statement_timeout', '0', false)", true),
    ("pg_terminate_backend(1)", true),
    ("query_to_xml('SELECT 1', true, false, '')", true),
    ("pg_catalog.pg_stat_file('postgresql.conf')", true),
    ("\"pg_read_binary_file\"('/etc/passwd')", true),
    ("U&\"pg\\005fls\\005fdir\"('.')", true),
    ("pg_sleep(0)", true),
    ("pg_advisory_lock(1)", true),
    ("cleanup_identities()", false),
];

/// Every clause a function can hide in. `{f}` is the function call.
const POSITIONS: &[&str] = &[
    "SELECT {f}",
    "SELECT * FROM @t WHERE note = {f}::text",
    "SELECT * FROM @t JOIN @t t2 ON t2.note = {f}::text",
    "SELECT count(*) FROM @t GROUP BY {f}::text",
    "SELECT count(*) FROM @t HAVING count(*) > length({f}::text)",
    "SELECT * FROM @t ORDER BY {f}::text",
    "SELECT * FROM @t LIMIT length({f}::text)",
    "SELECT * FROM @t OFFSET length({f}::text)",
    "SELECT row_number() OVER (ORDER BY {f}::text) FROM @t",
    "SELECT count(*) FILTER (WHERE {f}::text IS NOT NULL) FROM @t",
    "WITH x AS (SELECT {f} AS v) SELECT * FROM x",
    "SELECT * FROM @t, LATERAL (SELECT {f}) l",
    "VALUES ({f})",
    "SELECT (SELECT {f})",
    "SELECT EXISTS (SELECT {f})",
    "SELECT CASE WHEN true THEN {f}::text END",
    "SELECT coalesce({f}::text, 'x')",
    "SELECT ARRAY[{f}::text]",
    "EXPLAIN SELECT {f}",
    "EXPLAIN ANALYZE SELECT {f}",
    "SELECT * FROM @t WHERE id IN (SELECT length({f}::text))",
    "SELECT 1 UNION SELECT length({f}::text)",
    "SELECT string_agg({f}::text, ',') FROM @t",
];

/// Ordinary IdM reads, as an operator or a tool writes them: they must work
/// in a read session as postgres (running as the read role).
const ALLOWED: &[&str] = &[
    "SELECT count(*) FROM idm_identity",
    "SELECT username, first_name, last_name FROM idm_identity WHERE state = 'VALID' ORDER BY username",
    "SELECT encode(id, 'hex') FROM idm_identity WHERE username = 'admin'",
    "SELECT encode(id, 'hex')::uuid FROM idm_identity LIMIT 3",
    "SELECT to_char(created, 'YYYY-MM-DD HH24:MI') FROM idm_identity ORDER BY created LIMIT 5",
    "SELECT age(now(), created) FROM idm_identity LIMIT 1",
    "SELECT state, array_agg(username ORDER BY username) FROM idm_identity GROUP BY state",
    "SELECT json_agg(json_build_object('user', username, 'mail', email)) FROM idm_identity",
    "SELECT jsonb_agg(to_jsonb(i) - 'id') FROM idm_identity i WHERE disabled",
    "SELECT username FROM idm_identity WHERE username ~ '^[a-z]+$'",
    "SELECT username FROM idm_identity WHERE last_name ILIKE '%ová'",
    "SELECT username FROM idm_identity WHERE email LIKE '%@example.com' ESCAPE '\\'",
    "SELECT regexp_replace(email, '@.*$', '') FROM idm_identity",
    "SELECT created + interval '30 days', created::date - date '2024-01-01' FROM idm_identity",
    "SELECT date_trunc('month', created), count(*) FROM idm_identity GROUP BY 1 ORDER BY 1",
    "SELECT extract(epoch FROM created)::bigint FROM idm_identity LIMIT 1",
    "SELECT gen_random_uuid()",
    "SELECT now(), current_timestamp, clock_timestamp(), statement_timestamp(), localtimestamp",
    "SELECT current_date, current_time, timeofday()",
    "SELECT created AT TIME ZONE 'Europe/Prague' FROM idm_identity LIMIT 1",
    "SELECT random() < 2, floor(random() * 10)::int < 10",
    "WITH v AS (SELECT * FROM idm_identity WHERE state = 'VALID') SELECT count(*) FROM v",
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10) SELECT sum(i) FROM n",
    "SELECT username, row_number() OVER (PARTITION BY state ORDER BY created) FROM idm_identity",
    "SELECT username, lag(username) OVER w, lead(username) OVER w FROM idm_identity WINDOW w AS (ORDER BY username)",
    "SELECT rank() OVER (ORDER BY version DESC NULLS LAST), dense_rank() OVER (ORDER BY state) FROM idm_identity",
    "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY version) FROM idm_identity",
    "SELECT count(*) FILTER (WHERE disabled), count(*) FILTER (WHERE NOT disabled) FROM idm_identity",
    "SELECT state, disabled, count(*) FROM idm_identity GROUP BY GROUPING SETS ((state), (disabled), ())",
    "SELECT DISTINCT ON (state) state, username FROM idm_identity ORDER BY state, created",
    "SELECT username FROM idm_identity ORDER BY username LIMIT 2 OFFSET 1",
    "SELECT username FROM idm_identity UNION SELECT '[SYSTEM]' EXCEPT SELECT 'nobody'",
    "SELECT a.username, b.username FROM idm_identity a LEFT JOIN idm_identity b ON b.id = a.creator_id",
    "SELECT * FROM idm_identity i WHERE EXISTS (SELECT 1 FROM idm_identity j WHERE j.creator_id = i.id)",
    "SELECT username FROM idm_identity WHERE state IN ('VALID', 'LEFT') AND version = ANY (ARRAY[0, 1, 2])",
    "SELECT * FROM idm_identity, LATERAL (SELECT length(username) AS l) x WHERE x.l > 3",
    "SELECT coalesce(phone, '-'), nullif(title_before, ''), greatest(version, 0), least(version, 100) FROM idm_identity",
    "SELECT string_agg(username, ', ' ORDER BY username) FROM idm_identity",
    "SELECT lower(username), upper(last_name), initcap(first_name), length(email) FROM idm_identity",
    "SELECT substring(email FROM 1 FOR 5), position('@' IN email), split_part(email, '@', 2) FROM idm_identity",
    "SELECT trim(both ' ' FROM first_name), overlay(username PLACING 'x' FROM 1 FOR 1) FROM idm_identity",
    "SELECT format('%s %s <%s>', first_name, last_name, email), concat_ws(' ', title_before, last_name) FROM idm_identity",
    "SELECT md5(username), encode(sha256(convert_to(username, 'UTF8')), 'hex') FROM idm_identity",
    "SELECT CASE state WHEN 'VALID' THEN 'ok' ELSE 'other' END FROM idm_identity",
    "SELECT make_date(2025, 1, 31), to_timestamp(0), justify_interval(interval '40 days')",
    "SELECT '{\"a\": {\"b\": 1}}'::jsonb -> 'a' ->> 'b', jsonb_path_query('{\"a\": 2}', '$.a')",
    "SELECT ARRAY[1, 2] @> ARRAY[1], ARRAY[1] && ARRAY[1, 3], cardinality(ARRAY[1, 2, 3])",
    "SELECT unnest(ARRAY['a', 'b']), generate_series(1, 3)",
    "SELECT 1.5::numeric(10, 2), '42'::int, 'x'::text, '2025-01-01'::date, 'true'::boolean",
    "SELECT * FROM idm_identity TABLESAMPLE system (50) REPEATABLE (1)",
    "VALUES (1, 'a'), (2, 'b')",
    "TABLE idm_identity",
    "SHOW server_version",
    "SHOW TimeZone",
    "SELECT current_user, session_user, version(), pg_backend_pid() > 0, inet_client_addr() IS NOT NULL",
    "SELECT current_setting('TimeZone'), txid_current() > 0, pg_current_xact_id()",
    "SELECT pg_size_pretty(pg_total_relation_size('idm_identity')), pg_relation_size('idm_identity') >= 0",
    "SELECT pid, state, left(query, 20) FROM pg_stat_activity WHERE datname = current_database()",
    "SELECT relation::regclass::text, mode, granted FROM pg_locks WHERE relation IS NOT NULL",
    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'idm_identity'",
    "SELECT c.relname, n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = 'idm_identity'",
    "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = 'idm_identity'::regclass",
    "SELECT 'idm_identity'::regclass::text, 'int4pl'::regproc::text, 'int4'::regtype::text",
    "SELECT has_table_privilege('idm_identity', 'SELECT')",
    "SELECT xmlelement(name identity, username)::text FROM idm_identity LIMIT 1",
    "SELECT username || ' (' || state || ')' FROM idm_identity",
    "SELECT count(*) FROM idm_identity WHERE created BETWEEN '2024-01-01' AND now()",
    "SELECT to_tsvector('simple', last_name) @@ to_tsquery('simple', 'Dvořák') FROM idm_identity",
    "EXPLAIN SELECT * FROM idm_identity WHERE username = 'admin'",
    "EXPLAIN ANALYZE SELECT count(*) FROM idm_identity",
    "SELECT rolname FROM pg_roles WHERE rolsuper",
];

#[test]
fn a_read_grant_as_postgres_reaches_the_data_and_nothing_else() {
    let app = Appliance::get();
    plant_secrets(app);
    let secrets = Secrets::of(app);
    let table = app.scratch_table(
        "lp",
        "id int primary key, note text",
        "(1, 'one'), (2, 'two')",
    );
    let broker = BrokerProcess::start();
    let mut read = read_session(&broker);
    let mut write = write_session(&broker);
    // The read session runs as root's read role: not a superuser.
    assert_eq!(
        first_row(&mut read, "SELECT current_user, session_user, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)"),
        json!(["iam_pgbroker_read_0", "iam_pgbroker_read_0", false])
    );
    let before = snapshot(app, &table);
    let mut cases = 0usize;
    let mut failures = Vec::new();

    // Every function in every position, and the specials: refused by the
    // guard before PostgreSQL sees them.
    let mut refused: Vec<(String, bool)> = Vec::new();
    for (f, never) in FUNCTIONS {
        for p in POSITIONS {
            refused.push((p.replace("{f}", f).replace("@t", &table), *never));
        }
    }
    for (sql, never) in REFUSED {
        refused.push((sql.replace("@t", &table), *never));
    }
    // The cases PostgreSQL holds alone: with the guard on, refused before
    // PostgreSQL or by it, never a secret shown.
    for (template, _) in HELD {
        cases += 1;
        let sql = template
            .replace("@app", "1")
            .replace("@su", "1")
            .replace("@other", "1");
        let frames = run_all(&mut read, &sql);
        let last = frames.last().cloned().unwrap_or(Value::Null);
        let by_postgres = matches!(last["error"]["sqlstate"].as_str(), Some("42501" | "25006"));
        if !(refused_before_postgres(&last) || by_postgres || last["type"] == "done") {
            failures.push(format!("{sql:?}: {}", secrets.shown(&frames)));
        }
        if let Some(i) = secrets.leaked(&frames) {
            failures.push(format!("{sql:?} showed secret #{i}"));
        }
    }
    for (sql, never) in &refused {
        cases += 1;
        let in_read = run_all(&mut read, sql);
        let last = in_read.last().cloned().unwrap_or(Value::Null);
        if !refused_before_postgres(&last) {
            failures.push(format!(
                "read session ran {sql:?}: {}",
                secrets.shown(&in_read)
            ));
        }
        if *never {
            let in_write = run_all(&mut write, sql);
            let last = in_write.last().cloned().unwrap_or(Value::Null);
            if !refused_before_postgres(&last) {
                failures.push(format!(
                    "write session ran {sql:?}: {}",
                    secrets.shown(&in_write)
                ));
            }
        }
    }
    // Ordinary reads work, and show no secret.
    for sql in ALLOWED {
        cases += 1;
        let frames = run_all(&mut read, sql);
        if frames.last().map(|f| f["type"] != "done").unwrap_or(true) {
            failures.push(format!(
                "read session refused {sql:?}: {}",
                secrets.shown(&frames)
            ));
        }
        if let Some(i) = secrets.leaked(&frames) {
            failures.push(format!("{sql:?} showed secret #{i}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cases}:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(cases >= 400, "the corpus has {cases} cases");
    assert_eq!(
        snapshot(app, &table),
        before,
        "a refused statement changed something"
    );
    // Nothing was left in the sessions, nor is their role any other now.
    for (raw, user) in [(&mut read, "iam_pgbroker_read_0"), (&mut write, "postgres")] {
        assert_eq!(
            first_row(raw, "SELECT current_user, session_user, current_setting('statement_timeout'), \
                 (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()), \
                 (SELECT count(*) FROM pg_prepared_statements WHERE from_sql), \
                 (SELECT count(*) FROM pg_cursors WHERE name <> ''), (SELECT count(*) FROM pg_listening_channels())"),
            json!([user, user, "1min", 0, 0, 0, 0])
        );
    }
    eprintln!(
        "least privilege, guard on: {cases} cases, {} refused, {} allowed",
        refused.len(),
        ALLOWED.len()
    );
}

#[test]
fn postgresql_alone_holds_files_secrets_and_signals() {
    let app = Appliance::get();
    plant_secrets(app);
    let secrets = Secrets::of(app);
    let table = app.scratch_table("lpu", "id int primary key, note text", "(1, 'one')");
    let application = AppBackend::start(app, "lp_app");
    // A superuser backend, and another OS user's read session, to signal.
    let superuser = AppBackend::start_superuser(app);
    let broker = BrokerProcess::start_with(BrokerOptions {
        unguarded: true,
        ..Default::default()
    });
    assert!(
        broker.log().contains("TEST BUILD"),
        "the unguarded broker says so loudly:\n{}",
        broker.log()
    );
    let mut other = Spawned::new(it_client(READER, &broker).args([
        "--user",
        "postgres",
        "q:SELECT pg_backend_pid() AS v",
        "hang",
    ]));
    let other_pid = first_value(&other.wait_for("rows")).to_string();
    other.wait_for("HANG");
    let mut read = read_session(&broker);
    // The guard's function checks are off: what it would refuse reaches
    // PostgreSQL (a harmless stand-in shows it).
    let last = run_one(
        &mut read,
        "SELECT pg_advisory_lock(7)::text, pg_advisory_unlock(7)",
    );
    assert_eq!(
        last["type"], "done",
        "the unguarded broker lets functions through: {last}"
    );
    assert_eq!(
        first_row(
            &mut read,
            "SELECT current_user, (SELECT rolsuper FROM pg_roles WHERE rolname = session_user)"
        ),
        json!(["iam_pgbroker_read_0", false])
    );
    let before = snapshot(app, &table);
    let mut failures = Vec::new();
    let mut holding = 0usize;
    for (template, held) in HELD {
        let sql = template
            .replace("@app", &application.pid)
            .replace("@su", &superuser.pid)
            .replace("@other", &other_pid);
        let frames = run_all(&mut read, &sql);
        let last = frames.last().cloned().unwrap_or(Value::Null);
        let sqlstate = last["error"]["sqlstate"].as_str().unwrap_or("");
        let refused_by_postgres = matches!(sqlstate, "42501" | "25006");
        let ok = match held {
            Refused => refused_by_postgres,
            Hidden => secrets.leaked(&frames).is_none(),
            RolledBack => refused_by_postgres || last["type"] == "done",
        };
        if ok {
            holding += 1;
        } else {
            failures.push(format!(
                "{sql:?}: {}{}",
                secrets.shown(&frames),
                secrets
                    .leaked(&frames)
                    .map(|i| format!(" (showed secret #{i})"))
                    .unwrap_or_default()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "PostgreSQL let {} of {} through:\n{}",
        failures.len(),
        HELD.len(),
        failures.join("\n")
    );
    assert!(
        application.alive(app),
        "the application's connection was ended"
    );
    assert!(superuser.alive(app), "a superuser's connection was ended");
    assert_eq!(
        snapshot(app, &table),
        before,
        "a refused statement changed something"
    );
    // Still the read role, however the session tried to leave it.
    assert_eq!(
        first_row(&mut read, "SELECT current_user, session_user"),
        json!(["iam_pgbroker_read_0", "iam_pgbroker_read_0"])
    );
    let _ = other.child.kill();
    eprintln!(
        "least privilege, guard off: PostgreSQL alone held {holding} of {} cases",
        HELD.len()
    );
}

/// Two real OS users back to back, and one user twice: the next session
/// finds nothing of the last — no prepared statements (the broker's cache
/// included), settings, locks, names or statement text — and idle pooled
/// connections show neither name nor statement.
#[test]
fn nothing_of_one_session_is_visible_to_the_next() {
    let app = Appliance::get();
    // The unguarded broker: even what the guard would refuse (set_config,
    // advisory locks) is cleared by the reset.
    let broker = BrokerProcess::start_with(BrokerOptions {
        unguarded: true,
        ..Default::default()
    });
    let literal = unique_name("lp_literal");
    // Searched for in two halves, so the search's own text never matches.
    let (head, tail) = literal.split_at(5);
    // First user: READER, leaving what it can.
    let first = values(
        READER,
        &broker,
        &[
            "SELECT pg_backend_pid() AS v",
            &format!("SELECT '{literal}' AS v"),
            "SELECT set_config('work_mem', '77MB', false) AS v",
            "SELECT set_config('search_path', 'pg_catalog', false) AS v",
            "SELECT pg_advisory_lock(4242)::text AS v",
            "SELECT current_setting('application_name') AS v",
        ],
    );
    let first_pid = first[0].to_string();
    assert_eq!(first[1], json!(literal));
    assert!(
        first[5].as_str().unwrap_or_default().contains(READER),
        "a session is named after its user: {first:?}"
    );

    // Idle in the pool: a neutral name, no statement text.
    let shown = || {
        app.psql(
            "czechidm",
            &format!(
                "SELECT application_name || '|' || query FROM pg_stat_activity WHERE pid = {first_pid}"
            ),
        )
    };
    assert!(
        eventually(std::time::Duration::from_secs(5), || shown()
            == "pgbroker pool|"),
        "an idle pooled connection shows {:?}",
        shown()
    );

    // Second user: OPERATOR — another OS user never gets that connection,
    // nor sees READER's statements anywhere.
    let second = values(
        OPERATOR,
        &broker,
        &[
            "SELECT pg_backend_pid() AS v",
            "SELECT count(*) AS v FROM pg_prepared_statements",
            &format!(
                "SELECT count(*) AS v FROM pg_stat_activity WHERE query LIKE '%' || '{head}' || '{tail}' || '%' \
                 AND pid <> pg_backend_pid()"
            ),
        ],
    );
    assert_ne!(
        second[0].to_string(),
        first_pid,
        "another OS user got READER's connection"
    );
    // This session's two statements, nothing of READER's.
    assert_eq!(
        second[1],
        json!(2),
        "only this session's statements are prepared: {second:?}"
    );
    assert_eq!(
        second[2],
        json!(0),
        "READER's statement text is visible: {second:?}"
    );

    // READER again: the same connection, reset.
    let again = values(
        READER,
        &broker,
        &[
            "SELECT pg_backend_pid() AS v",
            "SELECT count(*) AS v FROM pg_prepared_statements",
            "SELECT current_setting('work_mem') || ' ' || current_setting('search_path') AS v",
            "SELECT count(*) AS v FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
            &format!(
                "SELECT count(*) AS v FROM pg_prepared_statements WHERE statement LIKE '%' || '{head}' || '{tail}' || '%'"
            ),
        ],
    );
    assert_eq!(
        again[0].to_string(),
        first_pid,
        "the pooled connection was reused: {again:?}"
    );
    // Its own two statements are prepared; nothing of the last session.
    assert_eq!(again[1], json!(2), "{again:?}");
    // The broker's own work_mem ([fair_share] work_mem_kb, a startup
    // option), not the previous session's 77MB.
    assert_eq!(again[2], json!("16MB \"$user\", public"), "{again:?}");
    assert_eq!(again[3], json!(0), "{again:?}");
    assert_eq!(again[4], json!(0), "{again:?}");
}

/// The first column of the first row of an it-client `q:` line.
fn first_value(line: &str) -> Value {
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    v["rows"][0]["v"].clone()
}

/// Runs `queries` (each selecting a column `v`) in one session as OS user
/// `user` (it-client, the Rust client in a process of its own) and returns
/// each one's first value.
fn values(user: &str, broker: &BrokerProcess, queries: &[&str]) -> Vec<Value> {
    let mut cmd = it_client(user, broker);
    cmd.args(["--user", "postgres"]);
    for q in queries {
        cmd.arg(format!("q:{q}"));
    }
    let ran = run(&mut cmd);
    assert_eq!(ran.code, 0, "{ran:?}");
    ran.stdout
        .lines()
        .filter(|l| l.contains("\"rows\""))
        .map(first_value)
        .collect()
}

/// The broker the RPM ships has no way to switch the guard off: the
/// test-only mode exists only in the test-only binary.
#[test]
fn the_real_broker_has_no_unguarded_mode() {
    let marker = b"IAM_PGBROKER_UNGUARDED_FOR_TESTS";
    let has = |name: &str| {
        let bytes = std::fs::read(workspace_bin(name)).expect("read binary");
        bytes.windows(marker.len()).any(|w| w == marker)
    };
    assert!(has("iam-pgbroker-unguarded"), "the test build has it");
    assert!(!has("iam-pgbroker"), "the real broker must not have it");
}

/// PostgreSQL 13 (the appliances still on it) and 17: the same read role,
/// by explicit grants, holds there too.
#[test]
fn read_sessions_run_as_a_read_role_on_postgresql_13_and_17() {
    for major in ["13", "17"] {
        let instance = ExtraInstance::start_major(&format!("lp{major}"), major);
        let created = instance.psql(
            &instance.db,
            "CREATE TABLE lp_data (id int, note text); INSERT INTO lp_data VALUES (1, 'Žluťoučký kůň'); \
             CREATE SCHEMA app; CREATE TABLE app.later (x int);",
        );
        assert!(
            created.status.success(),
            "{}",
            String::from_utf8_lossy(&created.stderr)
        );
        for unguarded in [false, true] {
            let broker = BrokerProcess::start_with(BrokerOptions {
                unguarded,
                ..Default::default()
            });
            let mut raw = RawClient::open(&broker, json!({"db": instance.db, "user": "postgres"}));
            let version = first_row(
                &mut raw,
                "SELECT current_setting('server_version_num')::int / 10000",
            );
            assert_eq!(version, json!([major.parse::<i64>().unwrap_or(0)]));
            assert_eq!(
                first_row(&mut raw, "SELECT current_user, note FROM lp_data"),
                json!(["iam_pgbroker_read_0", "Žluťoučký kůň"])
            );
            assert_eq!(
                first_row(&mut raw, "SELECT count(*) FROM app.later"),
                json!([0])
            );
            for sql in [
                "SELECT pg_read_file('/etc/passwd')",
                "SELECT rolpassword FROM pg_authid",
                "SELECT * FROM pg_ls_dir('.')",
                "SELECT set_config('role', 'postgres', false)",
                "SELECT lo_import('/etc/passwd')",
            ] {
                let last = run_one(&mut raw, sql);
                let held = if unguarded {
                    last["error"]["sqlstate"] == "42501"
                } else {
                    refused_before_postgres(&last)
                };
                assert!(
                    held,
                    "PostgreSQL {major}, unguarded={unguarded}: {sql}: {last}"
                );
            }
        }
        // A table created after the read role was provisioned is readable
        // too (default privileges of its owner).
        let later = instance.psql(
            &instance.db,
            "CREATE TABLE lp_later (x int); INSERT INTO lp_later VALUES (5)",
        );
        assert!(later.status.success());
        let broker = BrokerProcess::start();
        let mut raw = RawClient::open(&broker, json!({"db": instance.db, "user": "postgres"}));
        assert_eq!(first_row(&mut raw, "SELECT x FROM lp_later"), json!([5]));
    }
}

/// What the broker logs about such functions.
const DEFINER_WARNING: &str = "executable by read sessions' roles";

/// A `SECURITY DEFINER` function a superuser owns runs with the
/// superuser's rights for whoever may execute it — PUBLIC, by default.
/// No grant can keep one role from it, so: the guard refuses it in read
/// sessions (the application's functions are unknown to it), the broker
/// names it in its log when it provisions the read role, and once the
/// administrator revokes it from PUBLIC as the log says, PostgreSQL
/// alone refuses it too.
#[test]
fn a_superusers_security_definer_function_is_named_refused_and_revocable() {
    let instance = ExtraInstance::start("lpsd");
    let created = instance.psql(
        &instance.db,
        "CREATE SCHEMA app; \
         CREATE FUNCTION app.peek() RETURNS bigint LANGUAGE sql SECURITY DEFINER \
           AS 'SELECT count(*) FROM pg_authid WHERE rolpassword IS NOT NULL';",
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let broker = BrokerProcess::start();
    let mut raw = RawClient::open(&broker, json!({"db": instance.db, "user": "postgres"}));
    let last = run_one(&mut raw, "SELECT app.peek()");
    assert_eq!(last["error"]["code"], "forbidden_statement", "{last}");
    assert!(
        eventually(std::time::Duration::from_secs(5), || broker
            .log()
            .contains(DEFINER_WARNING)),
        "{}",
        broker.log()
    );
    assert!(
        broker
            .log()
            .lines()
            .any(|l| l.contains(DEFINER_WARNING) && l.contains("app.peek()")),
        "{}",
        broker.log()
    );

    // Revoked from PUBLIC, as the log asks: PostgreSQL refuses it alone.
    let revoked = instance.psql(
        &instance.db,
        "REVOKE EXECUTE ON FUNCTION app.peek() FROM PUBLIC",
    );
    assert!(revoked.status.success());
    let unguarded = BrokerProcess::start_with(BrokerOptions {
        unguarded: true,
        ..Default::default()
    });
    let mut raw = RawClient::open(&unguarded, json!({"db": instance.db, "user": "postgres"}));
    let last = run_one(&mut raw, "SELECT app.peek()");
    assert_eq!(last["error"]["sqlstate"], "42501", "{last}");
    assert!(
        !unguarded.log().contains(DEFINER_WARNING),
        "{}",
        unguarded.log()
    );
}
