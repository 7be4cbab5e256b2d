//! Limits that protect everyone else from one client: each gives a clear
//! error at once (never a hang), and the broker keeps serving.

use iam_pgbroker_tests::*;
use serde_json::json;
use std::time::{Duration, Instant};

fn code(frame: &serde_json::Value) -> &str {
    frame["error"]["code"].as_str().unwrap_or("<none>")
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn connections_over_the_limits_get_busy_at_once() {
    let broker = BrokerProcess::start_with(BrokerOptions {
        limits: "max_connections = 3\nmax_connections_per_uid = 2".into(),
        ..Default::default()
    });
    // The harness's readiness probe may still hold one of root's slots for
    // a moment after start: take the two slots once it is gone.
    let mut held: Vec<RawClient> = Vec::new();
    let answered = eventually(Duration::from_secs(10), || {
        held.clear();
        for _ in 0..2 {
            let mut client = RawClient::connect(&broker);
            if client.send(b"{\"id\":1,\"op\":\"ping\"}\n").is_err() {
                return false;
            }
            if !client.recv().is_some_and(|f| f["type"] == "pong") {
                return false;
            }
            held.push(client);
        }
        true
    });
    assert!(answered, "two connections of root were served");
    let started = Instant::now();
    let mut third = RawClient::connect(&broker);
    let refused = third.recv().expect("an answer without asking");
    assert_eq!(code(&refused), "busy", "{refused}");
    assert!(refused["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("uid 0"));
    assert!(third.recv().is_none(), "closed after the refusal");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "busy is immediate, not a wait"
    );
    // Another uid still gets the last slot; then the total limit applies.
    let ran = run(iam_pg(READER, &broker).args(["-c", "SELECT 1"]));
    assert_eq!(ran.code, 0, "{ran:?}");
    held.pop();
    assert!(eventually(Duration::from_secs(5), || {
        let mut again = RawClient::connect(&broker);
        again.send_json(json!({"id": 1, "op": "ping"}));
        again.recv().is_some_and(|f| f["type"] == "pong")
    }));
}

#[test]
fn a_result_over_the_row_limit_ends_with_limit_and_memory_stays_flat() {
    let broker = BrokerProcess::start_with(BrokerOptions {
        limits: "max_result_rows = 1000".into(),
        ..Default::default()
    });
    let mut raw = RawClient::connect(&broker);
    raw.call(json!({"id": 1, "op": "open"}));
    let before = rss_kib(broker.pid());
    let frames =
        raw.call(json!({"id": 2, "op": "query", "sql": "SELECT * FROM idm_identity_bench"}));
    let rows: usize = frames
        .iter()
        .filter(|f| f["type"] == "rows")
        .map(|f| f["rows"].as_array().map_or(0, Vec::len))
        .sum();
    let last = frames.last().expect("a last frame");
    assert_eq!(code(last), "limit", "{last}");
    assert!(rows <= 1000, "{rows} rows sent past the limit");
    let after = rss_kib(broker.pid());
    assert!(
        after < before + 32 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    // The session is usable again after a rollback.
    raw.call(json!({"id": 3, "op": "rollback"}));
    let f = raw.call(json!({"id": 4, "op": "query", "sql": "SELECT 1"}));
    assert_eq!(f.last().expect("done")["type"], "done", "{f:?}");
}

#[test]
fn a_result_over_the_byte_limit_ends_with_limit() {
    let broker = BrokerProcess::start_with(BrokerOptions {
        limits: "max_result_bytes = 200000".into(),
        ..Default::default()
    });
    let mut raw = RawClient::connect(&broker);
    raw.call(json!({"id": 1, "op": "open"}));
    let frames =
        raw.call(json!({"id": 2, "op": "query", "sql": "SELECT * FROM idm_identity_bench"}));
    assert_eq!(code(frames.last().expect("frame")), "limit");
}

#[test]
fn an_idle_connection_is_closed_and_its_transaction_rolled_back() {
    let app = Appliance::get();
    let table = app.scratch_table("idle", "id int, note text", "(1, 'original')");
    let broker = BrokerProcess::start_with(BrokerOptions {
        limits: "idle_timeout_ms = 500".into(),
        ..Default::default()
    });
    let mut raw = RawClient::connect(&broker);
    raw.call(json!({"id": 1, "op": "open", "readonly": false}));
    let f = raw.call(
        json!({"id": 2, "op": "execute", "sql": format!("UPDATE {table} SET note = 'idle'")}),
    );
    assert_eq!(f[0]["rows"], 1);
    let frame = raw.recv().expect("an error before the close");
    assert_eq!(code(&frame), "limit", "{frame}");
    assert!(raw.recv().is_none());
    assert_eq!(
        app.psql("czechidm", &format!("SELECT note FROM {table}")),
        "original"
    );
}

#[test]
fn half_a_line_and_silence_is_closed_after_the_request_timeout() {
    let broker = BrokerProcess::start_with(BrokerOptions {
        limits: "request_timeout_ms = 300".into(),
        ..Default::default()
    });
    let mut slow = RawClient::connect(&broker);
    slow.send(b"{\"id\": 1, \"op\": \"pi").expect("send");
    let started = Instant::now();
    let frame = slow.recv().expect("an error");
    assert_eq!(code(&frame), "limit", "{frame}");
    assert!(slow.recv().is_none());
    assert!(started.elapsed() < Duration::from_secs(10));
    // A slow but steady client is fine as long as each line completes.
    let mut steady = RawClient::connect(&broker);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        steady.call(json!({"id": 1, "op": "ping"}))[0]["type"],
        "pong"
    );
}

#[test]
fn query_iter_yields_rows_before_the_query_has_finished() {
    // The row limit ends the long result quickly once the point is made.
    let broker = BrokerProcess::start_with(BrokerOptions {
        limits: "max_result_rows = 200000".into(),
        ..Default::default()
    });
    let mut db = broker.client().db("bridge").connect().expect("connect");
    let session = db.session_info().session.clone();
    let mut rows = db
        .query_iter("SELECT g FROM generate_series(1, 30000000) g", &[])
        .expect("query_iter");
    let first = rows.next().expect("a row").expect("no error");
    assert_eq!(first[0], json!(1));
    // The server is still producing the result.
    let app = Appliance::get();
    let state = app.psql(
        "bridge",
        &format!(
            "SELECT state FROM pg_stat_activity WHERE application_name LIKE 'pgbroker {session}%'"
        ),
    );
    assert_eq!(
        state, "active",
        "the query was still running when the first row arrived"
    );
    drop(rows);
    db.rollback().expect("rollback");
    assert_eq!(
        db.query("SELECT 2 AS two", &[]).expect("usable")[0]["two"],
        json!(2)
    );
}
