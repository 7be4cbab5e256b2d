//! What the performance work changed, as behaviour (never timing): the
//! broker-wide statement cache answers per mode and parameter count; a
//! broker with one worker thread and `fsync = "always"` serves concurrent
//! sessions; a pooled connection that a session never used goes back
//! clean; a session's name reaches PostgreSQL with its first statement and
//! survives a rollback.

use iam_pgbroker_tests::*;
use serde_json::{json, Value};
use std::process::{Command, Stdio};

fn first_row(frames: &[Value]) -> Value {
    frames
        .iter()
        .find(|x| x["type"] == "rows")
        .map(|x| x["rows"][0].clone())
        .unwrap_or_else(|| panic!("no rows: {frames:?}"))
}

#[test]
fn the_statement_cache_answers_per_mode_and_parameter_count() {
    let app = Appliance::get();
    let table = app.scratch_table("stcache", "id int primary key, note text", "(1, 'a')");
    let broker = BrokerProcess::start();
    let update = format!("UPDATE {table} SET note = %s WHERE id = 1");

    // The same text, read session first: refused as PostgreSQL would.
    let mut read = RawClient::open(&broker, json!({"db": "czechidm", "user": "postgres"}));
    for round in 0..3 {
        let f = read.call(json!({"id": 2, "op": "execute", "sql": update, "params": ["x"]}));
        assert_eq!(f[0]["error"]["code"], "read_only", "round {round}: {f:?}");
        read.call(json!({"id": 3, "op": "rollback"}));
    }
    // Then in a write session: allowed, every time.
    let mut write = RawClient::open(
        &broker,
        json!({"db": "czechidm", "user": "postgres", "readonly": false}),
    );
    for round in 0..3 {
        let f = write.call(
            json!({"id": 2, "op": "execute", "sql": update, "params": [format!("w{round}")]}),
        );
        assert_eq!(f[0]["type"], "done", "round {round}: {f:?}");
        assert_eq!(f[0]["rows"], 1);
    }
    write.call(json!({"id": 4, "op": "commit"}));
    // And the read session still refuses it after the write session's
    // answer was cached.
    let f = read.call(json!({"id": 5, "op": "execute", "sql": update, "params": ["x"]}));
    assert_eq!(f[0]["error"]["code"], "read_only", "{f:?}");

    // `%s` is a placeholder only with parameters: the same text with and
    // without them gives different answers.
    let text = "SELECT '%s' AS literal, %s AS param";
    let f = read.call(json!({"id": 6, "op": "query", "sql": text, "params": [7]}));
    assert_eq!(first_row(&f), json!(["%s", "7"]), "{f:?}");
    let f = read.call(json!({"id": 7, "op": "query", "sql": text}));
    assert_eq!(f[0]["error"]["sqlstate"], "42601", "{f:?}");
    read.call(json!({"id": 70, "op": "rollback"}));
    let f = read.call(json!({"id": 8, "op": "query", "sql": text, "params": [7]}));
    assert_eq!(first_row(&f), json!(["%s", "7"]), "{f:?}");
    // Too many parameters for the text: a clear error, every time.
    for id in [9, 10] {
        let f = read.call(json!({"id": id, "op": "query", "sql": "SELECT %s", "params": [1, 2]}));
        assert_eq!(f[0]["error"]["code"], "bad_request", "{f:?}");
    }

    let committed = app.psql(
        "czechidm",
        &format!("SELECT note FROM {table} WHERE id = 1"),
    );
    assert_eq!(committed, "w2");
    // Each statement's audit record has its shape, whether or not the
    // analysis came from the cache.
    let records = broker.audit_records();
    let shapes: Vec<&Value> = records
        .iter()
        .filter(|r| r["event"] == "statement" && r["sql"] == update.as_str())
        .map(|r| &r["fingerprint"])
        .collect();
    assert_eq!(shapes.len(), 3, "three write statements ran");
    assert!(
        shapes.iter().all(|f| f.is_string() && *f == shapes[0]),
        "{shapes:?}"
    );
}

#[test]
fn one_worker_thread_with_fsync_always_serves_concurrent_sessions() {
    let app = Appliance::get();
    let table = app.scratch_table("oneworker", "id int primary key, n int", "(1, 0)");
    let broker = BrokerProcess::start_with(BrokerOptions {
        server: "worker_threads = 1".into(),
        audit: "fsync = \"always\"".into(),
        ..Default::default()
    });
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let config = broker
                .client()
                .db("czechidm")
                .user("postgres")
                .readonly(false);
            let table = table.clone();
            std::thread::spawn(move || {
                let mut db = config.connect().expect("connect");
                for i in 0..20 {
                    let rows = db.query("SELECT %s::int AS i", &[&i]).expect("query");
                    assert_eq!(rows[0].get::<i64>("i"), i64::from(i), "thread {t}");
                    db.execute(&format!("UPDATE {table} SET n = n + 1 WHERE id = 1"), &[])
                        .expect("update");
                    db.commit().expect("commit");
                }
                db.close().expect("close");
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a client thread panicked");
    }
    assert_eq!(
        app.psql("czechidm", &format!("SELECT n FROM {table}")),
        "160"
    );
    let verify = Command::new(workspace_bin("iam-pgbroker"))
        .args(["audit", "verify"])
        .arg(broker.dir.join("audit.jsonl"))
        .stdin(Stdio::null())
        .output()
        .expect("audit verify runs");
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let commits = broker
        .audit_records()
        .iter()
        .filter(|r| r["event"] == "commit")
        .count();
    assert_eq!(commits, 160);
}

#[test]
fn a_session_that_ran_nothing_hands_its_connection_on_clean_and_names_come_with_the_first_statement(
) {
    let policy = format!(
        "[[rule]]\nname = \"root-ddl\"\nuids = [0]\ndbs = [\"bridge\"]\ndb_users = [\"postgres\"]\nmode = \"write\"\nddl = true\n{STANDARD_POLICY}"
    );
    let broker = BrokerProcess::start_with(BrokerOptions {
        policy: Some(policy),
        ..Default::default()
    });
    let params = json!({"db": "bridge", "readonly": false});
    // Warm one connection, leaving state the reset must remove.
    let mut a = RawClient::open(&broker, params.clone());
    let backend =
        first_row(&a.call(json!({"id": 2, "op": "query", "sql": "SELECT pg_backend_pid()"})));
    let f = a.call(json!({"id": 3, "op": "execute", "sql": "CREATE TEMP TABLE leftover (x int)"}));
    assert_eq!(f[0]["type"], "done", "{f:?}");
    assert_eq!(a.call(json!({"id": 4, "op": "commit"}))[0]["type"], "ok");
    assert_eq!(a.call(json!({"id": 9, "op": "close"}))[0]["type"], "ok");

    // Sessions that take it and run nothing give it back as it was.
    for _ in 0..3 {
        let mut idle = RawClient::open(&broker, params.clone());
        assert_eq!(idle.call(json!({"id": 9, "op": "close"}))[0]["type"], "ok");
    }

    let mut b = RawClient::open(&broker, params);
    let session = broker
        .audit_records()
        .iter()
        .rev()
        .find(|r| r["event"] == "session_open")
        .and_then(|r| r["session"].as_str().map(str::to_owned))
        .expect("the session was recorded");
    let f = b.call(json!({"id": 5, "op": "query",
        "sql": "SELECT pg_backend_pid(), to_regclass('pg_temp.leftover') IS NULL, application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()"}));
    let row = first_row(&f);
    assert_eq!(row[0], backend[0], "the same server connection was reused");
    assert_eq!(
        row[1], true,
        "the reset removed the first session's temp table"
    );
    let name = row[2].as_str().unwrap_or_default().to_owned();
    assert!(name.starts_with(&format!("pgbroker {session} ")), "{name}");
    // The name was set outside the transaction: a rollback keeps it.
    assert_eq!(b.call(json!({"id": 6, "op": "rollback"}))[0]["type"], "ok");
    let f = b.call(json!({"id": 7, "op": "query",
        "sql": "SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()"}));
    assert_eq!(first_row(&f)[0], name.as_str());
}
