//! The client against a scripted fake broker: what it sends, how it
//! assembles answers, and how it cleans up.

use crate::fake_broker::{columns, done, error, rows, FakeBroker, Reply};
use crate::{Config, Error, ErrorCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn ops(requests: &[Value]) -> Vec<&str> {
    requests.iter().map(|r| r["op"].as_str().unwrap()).collect()
}

#[test]
fn handshake_sends_hello_then_open_and_keeps_the_session_info() {
    let broker = FakeBroker::with_queries(|_, _| unreachable!());
    let conn = broker
        .config()
        .db("bridge")
        .user("bridge")
        .readonly(false)
        .reason("ticket 42")
        .connect()
        .unwrap();
    let info = conn.session_info().clone();
    conn.close().unwrap();
    let reqs = broker.requests();
    assert_eq!(ops(&reqs), ["hello", "open", "close"]);
    assert_eq!(reqs[0]["id"], 1);
    assert_eq!(reqs[0]["version"], 2);
    assert!(reqs[0]["client"]
        .as_str()
        .unwrap()
        .starts_with("iam-pgconnect/"));
    assert_eq!(
        reqs[1],
        json!({"id": 2, "op": "open", "db": "bridge", "user": "bridge",
               "readonly": false, "reason": "ticket 42"})
    );
    assert_eq!(reqs[2]["id"], 3);
    assert_eq!(info.session, "s-1");
    assert_eq!(
        (info.db.as_str(), info.dbname.as_str()),
        ("bridge", "bridge")
    );
    assert!(!info.readonly);
    assert_eq!(info.rule, "test-rule");
    assert_eq!(info.identity.uid, 1000);
    assert_eq!(info.server, "fake-broker/0");
}

#[test]
fn rows_arriving_in_chunks_are_assembled_in_order() {
    let broker = FakeBroker::with_queries(|req, id| {
        assert_eq!(
            req["sql"],
            "SELECT username, n FROM t WHERE a = %s AND b = %s"
        );
        assert_eq!(req["params"], json!(["admin", 3]));
        Reply::frames(vec![
            columns(id, &["username", "n"]),
            rows(id, json!([["admin", 1], ["Jiří Dvořák", 2]])),
            rows(id, json!([])),
            rows(id, json!([["[SYSTEM]", null]])),
            done(id, 3, "SELECT"),
        ])
    });
    let mut db = broker.config().connect().unwrap();
    let result = db
        .query(
            "SELECT username, n FROM t WHERE a = %s AND b = %s",
            &[&"admin", &3],
        )
        .unwrap();
    assert_eq!(result.len(), 3);
    assert_eq!(result[1]["username"], "Jiří Dvořák");
    assert_eq!(result[2].get::<Option<i64>>("n"), None);
    assert_eq!(result[0].get::<i64>(1), 1);
    // One column list, shared by every row.
    assert!(std::ptr::eq(result[0].columns(), result[2].columns()));
    db.close().unwrap();
    assert_eq!(ops(&broker.requests()), ["hello", "open", "query", "close"]);
}

#[test]
fn query_iter_reports_columns_command_and_count() {
    let broker = FakeBroker::with_queries(|_, id| {
        Reply::frames(vec![columns(id, &[]), done(id, 3, "UPDATE")])
    });
    let mut db = broker.config().connect().unwrap();
    let mut it = db.query_iter("UPDATE t SET x = 1", &[]).unwrap();
    assert!(it.columns().is_empty());
    assert_eq!(it.command(), None);
    assert!(it.next().is_none());
    assert_eq!((it.command(), it.row_count()), (Some("UPDATE"), Some(3)));
    drop(it);
    db.close().unwrap();
}

#[test]
fn database_errors_keep_their_fields_and_the_session() {
    let broker = FakeBroker::with_queries(|_, id| {
        Reply::frames(vec![json!({"type": "error", "id": id, "error": {
            "code": "database", "message": "relation \"idm_identiti\" does not exist",
            "sqlstate": "42P01", "detail": "d", "hint": "h"}})])
    });
    let mut db = broker.config().connect().unwrap();
    let err = db.query("SELECT * FROM idm_identiti", &[]).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Database);
    assert_eq!(err.sqlstate(), Some("42P01"));
    assert_eq!((err.detail(), err.hint()), (Some("d"), Some("h")));
    assert_eq!(
        err.to_string(),
        "relation \"idm_identiti\" does not exist (SQLSTATE 42P01)"
    );
    assert!(!err.is_closed() && !err.is_read_only() && !err.is_denied());
    // The session is still usable after a database error.
    db.rollback().unwrap();
    db.ping().unwrap();
    db.close().unwrap();
    assert_eq!(
        ops(&broker.requests()),
        ["hello", "open", "query", "rollback", "ping", "close"]
    );
}

#[test]
fn read_only_errors_are_recognised() {
    let broker = FakeBroker::with_queries(|_, id| {
        Reply::frames(vec![json!({"type": "error", "id": id, "error": {
            "code": "database",
            "message": "cannot execute UPDATE in a read-only transaction",
            "sqlstate": "25006"}})])
    });
    let mut db = broker.config().connect().unwrap();
    let err = db
        .execute("UPDATE idm_identity SET x = 1", &[])
        .unwrap_err();
    assert!(err.is_read_only());
}

#[test]
fn an_error_after_some_rows_ends_the_result() {
    let broker = FakeBroker::with_queries(|_, id| {
        Reply::frames(vec![
            columns(id, &["x"]),
            rows(id, json!([[1], [2]])),
            error(id, "limit", "the result has more than 2 rows"),
        ])
    });
    let mut db = broker.config().connect().unwrap();
    let mut it = db.query_iter("SELECT x FROM big", &[]).unwrap();
    assert_eq!(it.next().unwrap().unwrap()[0], 1);
    assert_eq!(it.next().unwrap().unwrap()[0], 2);
    let err = it.next().unwrap().unwrap_err();
    assert_eq!(err.code(), ErrorCode::Limit);
    assert!(it.next().is_none());
    assert_eq!(it.command(), None);
    drop(it);
    db.ping().unwrap();
}

#[test]
fn query_collects_an_error_after_rows_as_err() {
    let broker = FakeBroker::with_queries(|_, id| {
        Reply::frames(vec![
            columns(id, &["x"]),
            rows(id, json!([[1]])),
            error(id, "database", "division by zero"),
        ])
    });
    let mut db = broker.config().connect().unwrap();
    let err = db.query("SELECT 1/x FROM t", &[]).unwrap_err();
    assert_eq!(err.message(), "division by zero");
    db.ping().unwrap();
}

#[test]
fn dropping_a_row_iterator_early_drains_the_rest() {
    let broker = FakeBroker::with_queries(|_, id| {
        let mut frames = vec![columns(id, &["n"])];
        for chunk in 0..50 {
            let chunk: Vec<Value> = (0..100).map(|i| json!([chunk * 100 + i])).collect();
            frames.push(rows(id, Value::Array(chunk)));
        }
        frames.push(done(id, 5000, "SELECT"));
        Reply::frames(frames)
    });
    let mut db = broker.config().connect().unwrap();
    {
        let mut it = db
            .query_iter("SELECT n FROM generate_series(0, 4999) n", &[])
            .unwrap();
        assert_eq!(it.next().unwrap().unwrap()[0], 0);
    }
    // The next request's answer is read in step: the rows were discarded.
    db.ping().unwrap();
    db.close().unwrap();
    assert_eq!(
        ops(&broker.requests()),
        ["hello", "open", "query", "ping", "close"]
    );
}

#[test]
fn a_forgotten_row_iterator_is_drained_before_the_next_request() {
    let broker = FakeBroker::with_queries(|_, id| {
        Reply::frames(vec![
            columns(id, &["n"]),
            rows(id, json!([[1], [2]])),
            done(id, 2, "SELECT"),
        ])
    });
    let mut db = broker.config().connect().unwrap();
    std::mem::forget(db.query_iter("SELECT n", &[]).unwrap());
    db.ping().unwrap();
    db.close().unwrap();
}

#[test]
fn dropping_an_open_connection_rolls_back_and_closes() {
    let broker = FakeBroker::with_queries(|_, id| Reply::frames(vec![done(id, 1, "UPDATE")]));
    let mut db = broker.config().readonly(false).connect().unwrap();
    assert_eq!(db.execute("UPDATE t SET x = 1", &[]).unwrap(), 1);
    drop(db);
    assert_eq!(
        ops(&broker.requests()),
        ["hello", "open", "execute", "rollback", "close"]
    );
}

#[test]
fn with_connection_commits_on_ok() {
    let broker = FakeBroker::with_queries(|_, id| Reply::frames(vec![done(id, 2, "UPDATE")]));
    let n = broker
        .config()
        .readonly(false)
        .with_connection(|db| db.execute("UPDATE t SET x = 1", &[]))
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(
        ops(&broker.requests()),
        ["hello", "open", "execute", "commit", "close"]
    );
}

#[test]
fn with_connection_rolls_back_on_err() {
    let broker = FakeBroker::with_queries(|_, id| Reply::frames(vec![done(id, 2, "UPDATE")]));
    #[derive(Debug)]
    enum AppError {
        Db,
        Check,
    }
    impl From<Error> for AppError {
        fn from(_: Error) -> Self {
            AppError::Db
        }
    }
    let result: Result<(), AppError> = broker.config().readonly(false).with_connection(|db| {
        db.execute("UPDATE t SET x = 1", &[])?;
        Err(AppError::Check)
    });
    assert!(matches!(result, Err(AppError::Check)));
    assert_eq!(
        ops(&broker.requests()),
        ["hello", "open", "execute", "rollback", "close"]
    );
}

#[test]
fn with_connection_rolls_back_on_panic() {
    let broker = FakeBroker::with_queries(|_, id| Reply::frames(vec![done(id, 2, "UPDATE")]));
    let config = broker.config().readonly(false);
    let outcome = std::panic::catch_unwind(|| {
        config.with_connection(|db| -> Result<(), Error> {
            db.execute("UPDATE t SET x = 1", &[])?;
            panic!("bug in the caller");
        })
    });
    assert!(outcome.is_err());
    assert_eq!(
        ops(&broker.requests()),
        ["hello", "open", "execute", "rollback", "close"]
    );
}

#[test]
fn a_failed_commit_is_returned_and_rolled_back() {
    let broker = FakeBroker::start(|req, id| {
        if req["op"] == "commit" {
            let frame = json!({"type": "error", "id": id, "error": {"code": "database",
                "message": "could not serialize access", "sqlstate": "40001"}});
            return Reply::frames(vec![frame]);
        }
        Reply::frames(crate::fake_broker::standard(req, id).unwrap())
    });
    let err = broker.config().with_connection(|db| db.ping()).unwrap_err();
    assert_eq!(err.sqlstate(), Some("40001"));
    assert_eq!(
        ops(&broker.requests()),
        ["hello", "open", "ping", "commit", "rollback", "close"]
    );
}

#[test]
fn a_denied_open_is_reported_and_the_socket_closed() {
    let broker = FakeBroker::start(|req, id| {
        if req["op"] == "open" {
            return Reply::frames(vec![error(
                id,
                "denied",
                "no rule lets alice open czechidm as postgres for writing",
            )]);
        }
        Reply::frames(crate::fake_broker::standard(req, id).unwrap())
    });
    let err = broker.config().readonly(false).connect().unwrap_err();
    assert!(err.is_denied());
    assert_eq!(err.code(), ErrorCode::Denied);
    assert!(err.message().contains("no rule"), "{err}");
    // The fake broker's loop ends only when the client hangs up.
    assert_eq!(ops(&broker.requests()), ["hello", "open"]);
}

#[test]
fn a_missing_socket_names_the_path() {
    let path = std::env::temp_dir().join("iam-pgconnect-test-no-such.sock");
    let err = Config::new().socket(&path).connect().unwrap_err();
    assert!(err.is_unavailable());
    assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
    assert!(err.to_string().contains("IAM_PGBROKER_SOCKET"), "{err}");
    assert!(std::error::Error::source(&err).is_some());
}

#[test]
fn a_broker_that_hangs_up_mid_query_makes_the_connection_unusable() {
    let broker = FakeBroker::with_queries(|_, id| {
        Reply::hang_up(vec![columns(id, &["n"]), rows(id, json!([[1]]))])
    });
    let mut db = broker.config().connect().unwrap();
    let err = db.query("SELECT n FROM t", &[]).unwrap_err();
    assert!(err.is_unavailable() && err.is_closed(), "{err:?}");
    assert!(err.message().contains("closed the connection"), "{err}");
    let again = db.ping().unwrap_err();
    assert!(again.is_closed());
    assert!(again.message().contains("no longer usable"), "{again}");
    drop(db);
    assert_eq!(ops(&broker.requests()), ["hello", "open", "query"]);
}

#[test]
fn a_frame_for_another_request_is_a_protocol_error() {
    let broker = FakeBroker::with_queries(|_, id| Reply::frames(vec![done(id + 7, 0, "SELECT")]));
    let mut db = broker.config().connect().unwrap();
    let err = db.execute("SELECT 1", &[]).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Internal);
    assert!(err.is_closed());
}

#[test]
fn a_request_over_the_line_limit_is_refused_locally() {
    // The fake broker announces max_line_bytes = 4096.
    let broker = FakeBroker::with_queries(|_, _| unreachable!());
    let mut db = broker.config().connect().unwrap();
    let long = "x".repeat(5000);
    let err = db.query("SELECT %s", &[&long]).unwrap_err();
    assert_eq!(err.code(), ErrorCode::BadRequest);
    assert!(!err.is_closed());
    db.ping().unwrap();
    db.close().unwrap();
    assert_eq!(ops(&broker.requests()), ["hello", "open", "ping", "close"]);
}

/// Version 2's text cells arrive typed where JSON holds them exactly, and
/// keep PostgreSQL's text form otherwise; arrays read as vectors.
#[test]
fn version_two_values_keep_postgresqls_text() {
    let broker = FakeBroker::with_queries(|_, id| {
        Reply::frames(vec![
            json!({"type": "columns", "id": id, "columns": [
                {"name": "n", "type": "int8", "oid": 20},
                {"name": "b", "type": "bool", "oid": 16},
                {"name": "t", "type": "timestamptz", "oid": 1184},
                {"name": "j", "type": "jsonb", "oid": 3802},
                {"name": "a", "type": "_int4", "oid": 1007},
                {"name": "f", "type": "float8", "oid": 701},
                {"name": "s", "type": "_text", "oid": 1009}]}),
            json!({"type": "rows", "id": id, "rows": [[
                "9007199254740993", "t", "2025-11-03 07:04:21.872+01", "null",
                "{1,NULL,3}", "1e+100", "{\"a b\",\"c\\\"d\",NULL}"]]}),
            json!({"type": "done", "id": id, "rows": 1, "command": "SELECT"}),
        ])
    });
    let mut db = broker.config().connect().unwrap();
    let rows = db.query("SELECT …", &[]).unwrap();
    let r = &rows[0];
    assert_eq!(r.get::<i64>("n"), 9_007_199_254_740_993);
    assert!(r.get::<bool>("b"));
    assert_eq!(r.text("t").as_deref(), Some("2025-11-03 07:04:21.872+01"));
    assert_eq!(r["j"], json!("null"), "a jsonb null is not SQL NULL");
    assert_eq!(r.get::<Vec<Option<i32>>>("a"), vec![Some(1), None, Some(3)]);
    assert_eq!(r.get::<f64>("f"), 1e100);
    assert_eq!(r.text("f").as_deref(), Some("1e+100"));
    assert_eq!(
        r.get::<Vec<Option<String>>>("s"),
        vec![Some("a b".to_owned()), Some("c\"d".to_owned()), None]
    );
    assert_eq!(r.text("b").as_deref(), Some("t"));
    assert_eq!(r.oid("t"), Some(1184));
}

#[test]
fn another_protocol_version_is_refused() {
    let broker = FakeBroker::start(|_, id| {
        Reply::frames(vec![json!({"type": "hello", "id": id, "version": 3,
            "server": "future-broker/9", "max_line_bytes": 1024})])
    });
    let err = broker.config().connect().unwrap_err();
    assert_eq!(err.code(), ErrorCode::Internal);
    assert!(err.message().contains("version 3"), "{err}");
}

#[test]
fn a_silent_broker_times_out_and_drop_does_not_hang() {
    let broker = FakeBroker::with_queries(|_, _| Reply::frames(vec![]));
    let mut db = broker
        .config()
        .read_timeout(Duration::from_millis(200))
        .connect()
        .unwrap();
    let started = Instant::now();
    let err = db.execute("SELECT pg_sleep(60)", &[]).unwrap_err();
    assert!(err.is_timeout() && err.is_closed(), "{err:?}");
    drop(db);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(ops(&broker.requests()), ["hello", "open", "execute"]);
}

#[test]
fn errors_and_connections_can_cross_threads() {
    fn send_sync<T: Send + Sync + 'static>() {}
    fn send<T: Send>() {}
    send_sync::<Error>();
    send::<crate::Connection>();
    send_sync::<crate::Row>();
}

#[test]
fn a_columns_frame_is_known_by_its_bytes_after_the_id() {
    use crate::connection::columns_tail;
    let line = br#"{"type":"columns","id":17,"columns":[{"name":"n","type":"int8","oid":20}]}"#;
    assert_eq!(
        columns_tail(line, 17),
        Some(&br#","columns":[{"name":"n","type":"int8","oid":20}]}"#[..])
    );
    // Another request's frame, another frame, another form: not from the
    // cache (the full decode decides).
    assert_eq!(columns_tail(line, 1), None);
    assert_eq!(
        columns_tail(br#"{"type":"rows","id":17,"rows":[]}"#, 17),
        None
    );
    assert_eq!(
        columns_tail(br#"{"id":17,"type":"columns","columns":[]}"#, 17),
        None
    );
    assert_eq!(
        columns_tail(
            br#"{"type":"columns","id":99999999999999999999999,"columns":[]}"#,
            17
        ),
        None
    );
}
