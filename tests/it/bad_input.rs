//! Malformed requests: each gets a `bad_request` answer (an oversized line
//! also closes its connection), nothing panics, and a second client keeps
//! working throughout.

use iam_pgbroker_tests::*;
use serde_json::json;

fn code(frame: &serde_json::Value) -> &str {
    frame["error"]["code"].as_str().unwrap_or("<none>")
}

#[test]
fn malformed_requests_get_errors_while_others_are_served() {
    let broker = BrokerProcess::start();
    let mut good = RawClient::connect(&broker);
    assert_eq!(
        good.call(json!({"id": 1, "op": "open"}))[0]["type"],
        "opened"
    );
    let check_good = |good: &mut RawClient| {
        let f = good.call(json!({"id": 2, "op": "query", "sql": "SELECT 1"}));
        assert_eq!(f.last().expect("done")["type"], "done", "{f:?}");
    };

    let mut bad = RawClient::connect(&broker);
    let cases: &[(&[u8], Option<u64>)] = &[
        (b"this is not json\n", None),
        (b"{\"id\": 5, \"op\": \"frobnicate\"}\n", Some(5)),
        (b"{\"id\": 6, \"op\": \"query\", \"sql\": 42}\n", Some(6)),
        (b"{\"id\": \"seven\", \"op\": \"ping\"}\n", None),
        (
            b"{\"id\": 8, \"op\": \"open\", \"readonly\": \"no\"}\n",
            Some(8),
        ),
        (
            b"{\"id\": 9, \"op\": \"query\", \"sql\": \"\xff\xfe\"}\n",
            Some(9),
        ),
        (b"[1, 2, 3]\n", None),
        (b"\n", None),
        (
            b"{\"id\": 10, \"op\": \"query\", \"sql\": \"SELECT 1\"}\n",
            Some(10),
        ),
        (b"{\"id\": 11, \"op\": \"commit\"}\n", Some(11)),
    ];
    for (line, id) in cases {
        bad.send(line).expect("send");
        let frame = bad
            .recv()
            .expect("an answer, and the connection stays open");
        assert_eq!(
            code(&frame),
            "bad_request",
            "{:?} -> {frame}",
            String::from_utf8_lossy(line)
        );
        assert_eq!(frame["id"], json!(id), "{frame}");
        check_good(&mut good);
    }
    // Out of order: a statement before open says what to do.
    let f = bad.call(json!({"id": 12, "op": "execute", "sql": "SELECT 1"}));
    assert!(
        f[0]["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("open"),
        "{f:?}"
    );
    // The bad client can still do the right thing.
    assert_eq!(bad.call(json!({"id": 13, "op": "ping"}))[0]["type"], "pong");
    check_good(&mut good);
}

#[test]
fn an_oversized_line_is_refused_and_its_connection_closed() {
    let broker = BrokerProcess::start_with(BrokerOptions {
        limits: "max_line_bytes = 65536".into(),
        ..BrokerOptions::default()
    });
    let mut good = RawClient::connect(&broker);
    good.call(json!({"id": 1, "op": "open"}));
    let mut bad = RawClient::connect(&broker);
    let big = format!(
        "{{\"id\":1,\"op\":\"query\",\"sql\":\"SELECT '{}'\"}}\n",
        "x".repeat(200_000)
    );
    // The broker may close before reading all of it: a failed write is fine.
    let _ = bad.send(big.as_bytes());
    let frame = bad.recv().expect("an error before the close");
    assert_eq!(code(&frame), "bad_request", "{frame}");
    assert!(frame["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("65536"));
    assert!(
        bad.recv().is_none(),
        "connection closed after an oversized line"
    );
    let f = good.call(json!({"id": 2, "op": "query", "sql": "SELECT 2"}));
    assert_eq!(f.last().expect("done")["type"], "done");
    // A line just under the limit is fine.
    let mut ok = RawClient::connect(&broker);
    ok.call(json!({"id": 1, "op": "open"}));
    let sql = format!("SELECT length('{}')", "y".repeat(60_000));
    let f = ok.call(json!({"id": 2, "op": "query", "sql": sql}));
    assert_eq!(f.last().expect("done")["type"], "done", "{f:?}");
}

#[test]
fn a_client_that_vanishes_mid_line_or_mid_result_does_not_hurt_others() {
    let broker = BrokerProcess::start();
    {
        let mut half = RawClient::connect(&broker);
        half.send(b"{\"id\": 1, \"op\": \"ope").expect("send");
    }
    {
        let mut reader = RawClient::connect(&broker);
        reader.call(json!({"id": 1, "op": "open"}));
        reader
            .send_json(json!({"id": 2, "op": "query", "sql": "SELECT * FROM idm_identity_bench"}));
        let _ = reader.recv();
        // Dropped here with most of 100,000 rows unread.
    }
    let mut good = RawClient::connect(&broker);
    good.call(json!({"id": 1, "op": "open"}));
    let f = good.call(json!({"id": 2, "op": "query", "sql": "SELECT 3"}));
    assert_eq!(f.last().expect("done")["type"], "done");
    assert!(!broker.log().contains("panicked"));
}

#[test]
fn a_database_error_aborts_until_rollback_and_commit_does_not_pretend() {
    let broker = BrokerProcess::start();
    let mut raw = RawClient::connect(&broker);
    raw.call(json!({"id": 1, "op": "open"}));
    let f = raw.call(json!({"id": 2, "op": "query", "sql": "SELECT 1/0"}));
    assert_eq!(
        f.last().expect("error")["error"]["sqlstate"],
        "22012",
        "{f:?}"
    );
    let f = raw.call(json!({"id": 3, "op": "query", "sql": "SELECT 1"}));
    assert_eq!(
        f.last().expect("error")["error"]["sqlstate"],
        "25P02",
        "{f:?}"
    );
    let f = raw.call(json!({"id": 4, "op": "commit"}));
    assert_eq!(
        f[0]["error"]["sqlstate"], "25P02",
        "commit of an aborted transaction is an error: {f:?}"
    );
    let f = raw.call(json!({"id": 5, "op": "query", "sql": "SELECT 1"}));
    assert_eq!(
        f.last().expect("done")["type"],
        "done",
        "usable again: {f:?}"
    );
}
