//! Warm server connections: reused, and clean for whoever comes next.

use iam_pgbroker_tests::*;
use serde_json::{json, Value};

fn row(raw: &mut RawClient, sql: &str) -> Value {
    let f = raw.call(json!({"id": 2, "op": "query", "sql": sql}));
    f.iter()
        .find(|x| x["type"] == "rows")
        .map(|x| x["rows"][0].clone())
        .unwrap_or_else(|| panic!("{sql}: {f:?}"))
}

fn close(mut raw: RawClient) {
    assert_eq!(raw.call(json!({"id": 9, "op": "close"}))[0]["type"], "ok");
    assert!(raw.recv().is_none());
}

#[test]
fn the_next_client_on_the_same_server_connection_sees_a_pristine_session() {
    let app = Appliance::get();
    let table = app.scratch_table("pool", "id int primary key, note text", "(1, 'original')");
    // Rules are tried in order (like pg_hba.conf): the narrow one first.
    let policy = format!(
        "[[rule]]\nname = \"root-ddl\"\nuids = [0]\ndbs = [\"bridge\"]\ndb_users = [\"postgres\"]\nmode = \"write\"\nddl = true\n{STANDARD_POLICY}"
    );
    let broker = BrokerProcess::start_with(BrokerOptions {
        policy: Some(policy),
        ..Default::default()
    });

    // A write session that leaves all it can: a temp table (DDL grant), an
    // uncommitted update, a lock.
    let mut a = RawClient::open(&broker, json!({"db": "bridge", "readonly": false}));
    let backend = row(&mut a, "SELECT pg_backend_pid()");
    let f = a.call(json!({"id": 3, "op": "execute", "sql": "CREATE TEMP TABLE leftover (x int)"}));
    assert_eq!(f[0]["type"], "done", "{f:?}");
    a.call(json!({"id": 4, "op": "commit"}));
    a.call(json!({"id": 5, "op": "execute", "sql": "CREATE TEMP TABLE uncommitted (x int)"}));
    close(a);

    let mut b = RawClient::open(&broker, json!({"db": "bridge", "readonly": false}));
    assert_eq!(
        row(&mut b, "SELECT pg_backend_pid()"),
        backend,
        "the server connection was reused"
    );
    assert_eq!(
        row(&mut b, "SELECT to_regclass('pg_temp.leftover') IS NULL, to_regclass('pg_temp.uncommitted') IS NULL, current_user, session_user, current_setting('statement_timeout'), (SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory')"),
        json!([true, true, "postgres", "postgres", "1min", 0])
    );
    let name = row(
        &mut b,
        "SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()",
    );
    let session_b = b.call(json!({"id": 6, "op": "ping"}));
    assert_eq!(session_b[0]["type"], "pong");
    assert!(
        name[0]
            .as_str()
            .unwrap_or_default()
            .starts_with("pgbroker "),
        "{name}"
    );
    close(b);

    // An update rolled back by close is gone for the next session too.
    let mut w = RawClient::open(&broker, json!({"user": "postgres", "readonly": false}));
    let backend = row(&mut w, "SELECT pg_backend_pid()");
    let f = w.call(
        json!({"id": 3, "op": "execute", "sql": format!("UPDATE {table} SET note = 'dirty'")}),
    );
    assert_eq!(f[0]["rows"], 1, "{f:?}");
    close(w);
    let mut r = RawClient::open(&broker, json!({"user": "postgres", "readonly": false}));
    assert_eq!(row(&mut r, "SELECT pg_backend_pid()"), backend);
    assert_eq!(
        row(&mut r, &format!("SELECT note FROM {table}")),
        json!(["original"])
    );
    close(r);
}

#[test]
fn each_session_gets_its_own_application_name_on_a_reused_connection() {
    let broker = BrokerProcess::start();
    let mut names = Vec::new();
    let mut backends = Vec::new();
    for _ in 0..2 {
        let mut raw = RawClient::open(&broker, json!({"db": "bridge"}));
        backends.push(row(&mut raw, "SELECT pg_backend_pid()"));
        names.push(row(
            &mut raw,
            "SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()",
        ));
        close(raw);
    }
    assert_eq!(backends[0], backends[1]);
    assert_ne!(
        names[0], names[1],
        "the session id in application_name changes"
    );
}

#[test]
fn a_role_bound_session_never_reuses_an_unbound_connection() {
    let policy = format!(
        "[[rule]]\nname = \"reports\"\nusers = [\"{READER}\"]\ndbs = [\"bridge\"]\ndb_users = [\"postgres\"]\nmode = \"read\"\ndb_role = \"iam_reader\"\n{STANDARD_POLICY}"
    );
    let broker = BrokerProcess::start_with(BrokerOptions {
        policy: Some(policy),
        ..Default::default()
    });
    // Root warms an unbound connection to bridge (a read session as the
    // superuser postgres: it runs as root's read role)…
    let mut raw = RawClient::open(&broker, json!({"db": "bridge"}));
    assert_eq!(
        row(&mut raw, "SELECT current_user"),
        json!(["iam_pgbroker_read_0"])
    );
    close(raw);
    // …which the reader, bound to iam_reader, must not get.
    let ran = run(iam_pg(READER, &broker).args([
        "-d",
        "bridge",
        "--format",
        "csv",
        "-c",
        "SELECT current_user",
    ]));
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(ran.stdout.trim(), "current_user\niam_reader");
}
