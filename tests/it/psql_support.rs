//! What `iam-pg` needs of the broker to be psql (issue 16): cancel from
//! another thread, PostgreSQL's notices, savepoints, the allowed session
//! settings (values still exactly what psql prints), and COPY.

use iam_pgbroker_tests::*;
use iam_pgconnect::ErrorCode;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Statements of a session still running on the server, by text.
fn running(app: &Appliance, db: &str, like: &str) -> String {
    app.psql(
        db,
        &format!(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' \
             AND pid <> pg_backend_pid() AND query LIKE '%{like}%'"
        ),
    )
}

#[test]
fn a_statement_is_cancelled_from_another_thread_and_the_session_goes_on() {
    let broker = BrokerProcess::start();
    let app = Appliance::get();
    let mut db = broker.client().db("bridge").connect().expect("connect");
    let session = db.session_info().session.clone();
    let handle = db.cancel_handle();
    assert_eq!(handle.session(), session);
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(800));
        handle.cancel()
    });
    let started = Instant::now();
    let err = db
        .execute(
            "SELECT count(*) FROM generate_series(1, 3000000000) /* hd-cancel-me */",
            &[],
        )
        .expect_err("the statement is cancelled");
    let took = started.elapsed();
    assert!(canceller.join().expect("thread").is_ok());
    assert_eq!(err.sqlstate(), Some("57014"), "{err}");
    assert_eq!(err.code(), ErrorCode::Database);
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_eq!(running(app, "bridge", "hd-cancel-me"), "0");
    // The transaction is aborted, as in psql; after a rollback the session
    // works.
    db.rollback().expect("rollback");
    let rows = db
        .query("SELECT 41 + 1 AS n", &[])
        .expect("query after cancel");
    assert_eq!(rows[0].get::<i64>("n"), 42);
    db.close().expect("close");

    let records = broker.audit_records();
    assert!(
        records.iter().any(|r| r["event"] == "session_cancel"
            && r["session"] == session.as_str()
            && r["outcome"]["ok"] == true),
        "the cancel is in the audit"
    );
}

#[test]
fn an_os_user_cancels_its_own_statement_through_the_client() {
    let broker = BrokerProcess::start();
    let started = Instant::now();
    let ran = run(it_client(READER, &broker).args([
        "--db",
        "bridge",
        "--user",
        "bridge",
        "cancel:700",
        "x:SELECT count(*) FROM generate_series(1, 3000000000)",
    ]));
    assert!(started.elapsed() < Duration::from_secs(15), "{ran:?}");
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(ran.stdout.contains("\"cancelled\":true"), "{ran:?}");
    assert!(ran.stdout.contains("\"sqlstate\":\"57014\""), "{ran:?}");
}

/// A function (made by the superuser, owned by the app user) that raises
/// notices of each kind.
fn notice_function(app: &Appliance) -> String {
    let name = unique_name("hd_notices");
    app.psql(
        "czechidm",
        &format!(
            "CREATE FUNCTION {name}(who text) RETURNS int LANGUAGE plpgsql AS $$ BEGIN \
             RAISE NOTICE 'ahoj %', who USING DETAIL = 'podrobnosti', HINT = 'rada'; \
             RAISE WARNING 'pozor'; RAISE INFO 'info'; \
             IF who = 'chyba' THEN RAISE EXCEPTION 'konec' USING ERRCODE = '22012'; END IF; \
             RETURN 1; END $$; ALTER FUNCTION {name}(text) OWNER TO czechidm"
        ),
    );
    name
}

#[test]
fn notices_reach_the_client_in_order_before_the_result_ends() {
    let broker = BrokerProcess::start();
    let app = Appliance::get();
    let f = notice_function(app);
    let mut db = broker
        .client()
        .user("czechidm")
        .readonly(false)
        .connect()
        .expect("connect");
    let seen: Arc<Mutex<Vec<iam_pgbroker_proto::ErrorInfo>>> = Arc::default();
    let sink = seen.clone();
    db.set_notice_handler(move |n| {
        if let Ok(mut v) = sink.lock() {
            v.push(n.clone());
        }
    });
    let rows = db
        .query(&format!("SELECT {f}('Dvořák') AS n"), &[])
        .expect("query");
    assert_eq!(rows.len(), 1);
    let got: Vec<(Option<String>, String)> = seen
        .lock()
        .expect("lock")
        .drain(..)
        .map(|n| (n.severity, n.message))
        .collect();
    assert_eq!(
        got,
        vec![
            (Some("NOTICE".into()), "ahoj Dvořák".into()),
            (Some("WARNING".into()), "pozor".into()),
            (Some("INFO".into()), "info".into()),
        ]
    );
    // Fields as PostgreSQL sent them; execute gets them too, and so does a
    // failing statement, before its error.
    db.execute(&format!("SELECT {f}('x')"), &[])
        .expect("execute");
    {
        let v = seen.lock().expect("lock");
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].sqlstate.as_deref(), Some("00000"));
        assert_eq!(v[0].detail.as_deref(), Some("podrobnosti"));
        assert_eq!(v[0].hint.as_deref(), Some("rada"));
        assert!(v[0].context.as_deref().unwrap_or("").contains("PL/pgSQL"));
        assert_eq!(v[1].sqlstate.as_deref(), Some("01000"));
    }
    seen.lock().expect("lock").clear();
    let err = db
        .execute(&format!("SELECT {f}('chyba')"), &[])
        .expect_err("raises");
    assert_eq!(err.sqlstate(), Some("22012"));
    assert_eq!(seen.lock().expect("lock").len(), 3);
    db.rollback().expect("rollback");
    db.close().expect("close");

    // On the wire: version 2 sends `notice` frames before `done`; version
    // 1 clients get none.
    let mut raw = RawClient::connect(&broker);
    assert_eq!(
        raw.call(json!({"id": 1, "op": "hello", "version": 2}))[0]["version"],
        2
    );
    let opened = raw.call(json!({"id": 2, "op": "open", "user": "czechidm", "readonly": false}));
    assert_eq!(opened[0]["type"], "opened", "{opened:?}");
    let frames = raw.call(json!({"id": 3, "op": "execute", "sql": format!("SELECT {f}('a')")}));
    let types: Vec<&str> = frames.iter().filter_map(|f| f["type"].as_str()).collect();
    assert_eq!(types, ["notice", "notice", "notice", "done"], "{frames:?}");
    assert_eq!(frames[0]["id"], 3);
    assert_eq!(frames[0]["notice"]["message"], "ahoj a");
    assert_eq!(frames[0]["notice"]["code"], "database");
    let mut old = RawClient::open(&broker, json!({"user": "czechidm", "readonly": false}));
    let frames = old.call(json!({"id": 3, "op": "execute", "sql": format!("SELECT {f}('a')")}));
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0]["type"], "done");
    app.psql("czechidm", &format!("DROP FUNCTION {f}(text)"));
}

#[test]
fn savepoints_are_operations_and_their_sql_stays_refused() {
    let broker = BrokerProcess::start();
    let app = Appliance::get();
    let t = app.scratch_table("hd_sp", "n int4 PRIMARY KEY", "");
    let mut db = broker
        .client()
        .user("czechidm")
        .readonly(false)
        .connect()
        .expect("connect");
    db.execute(&format!("INSERT INTO {t} VALUES (1)"), &[])
        .expect("insert 1");
    db.savepoint("před dvojkou").expect("savepoint");
    db.execute(&format!("INSERT INTO {t} VALUES (2)"), &[])
        .expect("insert 2");
    // A failed statement aborts the transaction; rolling back to the
    // savepoint makes it usable again, as in PostgreSQL.
    let err = db
        .execute(&format!("INSERT INTO {t} VALUES (1)"), &[])
        .expect_err("duplicate");
    assert_eq!(err.sqlstate(), Some("23505"));
    db.rollback_to_savepoint("před dvojkou")
        .expect("rollback to");
    db.savepoint("b").expect("savepoint b");
    db.execute(&format!("INSERT INTO {t} VALUES (3)"), &[])
        .expect("insert 3");
    db.release_savepoint("b").expect("release");
    let err = db.release_savepoint("b").expect_err("released already");
    assert_eq!(err.sqlstate(), Some("3B001"), "{err}");
    // The failed RELEASE aborted the transaction; an older savepoint
    // still heals it.
    db.rollback_to_savepoint("před dvojkou")
        .expect("rollback to after a failed release");
    db.rollback().expect("rollback");
    // Again, committed this time.
    db.execute(&format!("INSERT INTO {t} VALUES (1)"), &[])
        .expect("insert 1");
    db.savepoint("s").expect("savepoint");
    db.execute(&format!("INSERT INTO {t} VALUES (2)"), &[])
        .expect("insert 2");
    db.rollback_to_savepoint("s").expect("rollback to");
    db.execute(&format!("INSERT INTO {t} VALUES (3)"), &[])
        .expect("insert 3");
    db.commit().expect("commit");
    assert_eq!(
        app.psql(
            "czechidm",
            &format!("SELECT string_agg(n::text, ',' ORDER BY n) FROM {t}")
        ),
        "1,3"
    );
    // The SQL forms are refused; names are checked.
    for sql in [
        "SAVEPOINT x",
        "RELEASE SAVEPOINT x",
        "ROLLBACK TO SAVEPOINT x",
    ] {
        let err = db.execute(sql, &[]).expect_err(sql);
        assert_eq!(err.code(), ErrorCode::ForbiddenStatement, "{sql}: {err}");
    }
    let err = db.savepoint("").expect_err("empty name");
    assert_eq!(err.code(), ErrorCode::BadRequest);
    let err = db.savepoint(&"x".repeat(64)).expect_err("long name");
    assert_eq!(err.code(), ErrorCode::BadRequest);
    // A name with a quote is quoted, not spliced.
    db.savepoint("a\"; COMMIT; --").expect("odd name");
    db.rollback().expect("rollback");
    let session = db.session_info().session.clone();
    db.close().expect("close");
    // Read sessions have them too.
    let mut read = broker.client().db("bridge").connect().expect("read");
    read.savepoint("r").expect("read savepoint");
    read.rollback_to_savepoint("r").expect("read rollback to");
    read.close().expect("close");

    let records = broker.audit_records();
    assert!(records.iter().any(|r| r["event"] == "statement"
        && r["session"] == session.as_str()
        && r["kind"] == "ROLLBACK TO SAVEPOINT"
        && r["sql"] == "ROLLBACK TO SAVEPOINT \"s\""));
}

/// `SET …` then `SELECT expr` through the broker, as text, and through the
/// real psql in the same database.
fn through_both(
    db: &mut iam_pgconnect::Connection,
    earlier: &[&str],
    set: &str,
    expr: &str,
) -> (String, String) {
    db.execute(set, &[])
        .unwrap_or_else(|e| panic!("{set}: {e}"));
    let rows = db
        .query(&format!("SELECT {expr} AS v"), &[])
        .unwrap_or_else(|e| panic!("{expr}: {e}"));
    let ours = rows[0].text(0).map(|t| t.into_owned()).unwrap_or_default();
    // psql's session gets every SET the broker's did; the value is the
    // last line, after the SET tags.
    let mut sql = String::new();
    for s in earlier.iter().chain([&set]) {
        sql.push_str(s);
        sql.push_str("; ");
    }
    let out = Appliance::get().psql("czechidm", &format!("{sql}SELECT {expr}"));
    let psql = out.lines().last().unwrap_or_default().to_owned();
    (ours, psql)
}

#[test]
fn allowed_settings_change_values_exactly_as_psql_prints_them() {
    let broker = BrokerProcess::start();
    let mut db = broker.client().connect().expect("connect");
    let cases = [
        (
            "SET TIME ZONE 'Europe/Prague'",
            "'2024-07-01 12:00:00+00'::timestamptz",
        ),
        (
            "SET TimeZone = 'Asia/Kolkata'",
            "'2024-01-01 00:00:00+00'::timestamptz",
        ),
        (
            "SET IntervalStyle = iso_8601",
            "'1 year 2 mons 3 days 04:05:06.5'::interval",
        ),
        (
            "SET IntervalStyle = sql_standard",
            "'-1 day -00:00:01'::interval",
        ),
        ("SET bytea_output = escape", "'\\x41ff00'::bytea"),
        ("SET extra_float_digits = 0", "0.1::float8 + 0.2::float8"),
        ("SET extra_float_digits = 3", "0.1::float4"),
        (
            "SET DateStyle = 'SQL, DMY'",
            "'2024-02-29 13:14:15.5'::timestamp",
        ),
        ("SET DateStyle = 'German'", "'2024-02-29'::date"),
        (
            "SET DateStyle = 'Postgres, MDY'",
            "'2024-02-29 13:14:15+01'::timestamptz",
        ),
        // The types the broker otherwise prints itself, alone in a result.
        ("SET bytea_output = escape", "'Tajné'::bytea"),
        (
            "SET DateStyle = 'SQL, MDY'",
            "'2024-02-29 13:14:15'::timestamp",
        ),
    ];
    let mut earlier = Vec::new();
    for (set, expr) in cases {
        let (ours, psql) = through_both(&mut db, &earlier, set, expr);
        assert_eq!(ours, psql, "{set}; {expr}");
        earlier.push(set);
    }
    // SHOW answers what PostgreSQL answers.
    let rows = db.query("SHOW DateStyle", &[]).expect("show");
    assert_eq!(rows[0].text(0).as_deref(), Some("SQL, MDY"));
    db.execute("RESET DateStyle", &[]).expect("reset");
    let rows = db.query("SHOW DateStyle", &[]).expect("show");
    assert_eq!(rows[0].text(0).as_deref(), Some("ISO, MDY"));
    // A SET in a transaction that rolls back is undone (PostgreSQL's rule),
    // one that commits stays; SET LOCAL ends with the transaction.
    db.commit().expect("commit");
    db.execute("SET LOCAL TIME ZONE 'America/New_York'", &[])
        .expect("set local");
    let rows = db.query("SHOW TimeZone", &[]).expect("show");
    assert_eq!(rows[0].text(0).as_deref(), Some("America/New_York"));
    db.rollback().expect("rollback");
    let rows = db.query("SHOW TimeZone", &[]).expect("show");
    assert_eq!(rows[0].text(0).as_deref(), Some("Asia/Kolkata"));
    db.close().expect("close");

    // The next session on the pooled connection starts from the defaults.
    let mut next = broker.client().connect().expect("connect");
    let rows = next
        .query(
            "SELECT current_setting('TimeZone') AS tz, current_setting('bytea_output') AS b, \
             current_setting('IntervalStyle') AS i, current_setting('extra_float_digits') AS f, \
             '\\x41'::bytea AS v",
            &[],
        )
        .expect("query");
    let fresh = Appliance::get().psql(
        "czechidm",
        "SELECT current_setting('TimeZone') || '|' || current_setting('bytea_output') || '|' || \
         current_setting('IntervalStyle') || '|' || current_setting('extra_float_digits')",
    );
    let ours: Vec<String> = (0..4)
        .map(|i| rows[0].text(i).map(|t| t.into_owned()).unwrap_or_default())
        .collect();
    assert_eq!(ours.join("|"), fresh);
    assert_eq!(rows[0].text(4).as_deref(), Some("\\x41"));
    next.close().expect("close");
}

#[test]
fn settings_outside_the_allow_list_or_the_grant_are_refused() {
    let broker = BrokerProcess::start();
    let mut db = broker.client().db("bridge").connect().expect("connect");
    let session = db.session_info().session.clone();
    for sql in [
        "SET ROLE postgres",
        "SET SESSION AUTHORIZATION postgres",
        "RESET ALL",
        "SET default_transaction_read_only = off",
        "SET standard_conforming_strings = off",
        "SET search_path = pg_temp, public",
        "SET search_path = public, pg_catalog",
        // The standard broker's [limits] statement_timeout is 60 s.
        "SET statement_timeout = 0",
        "SET statement_timeout = '2min'",
        "SET LOCAL statement_timeout = 600000",
        "SET work_mem = '2GB'",
    ] {
        let err = db.execute(sql, &[]).expect_err(sql);
        assert_eq!(err.code(), ErrorCode::ForbiddenStatement, "{sql}: {err}");
    }
    // Within the rule: a shorter statement_timeout works, and PostgreSQL
    // applies it.
    db.execute("SET statement_timeout = '1s'", &[])
        .expect("shorter timeout");
    let err = db
        .execute("SELECT count(*) FROM generate_series(1, 3000000000)", &[])
        .expect_err("timed out");
    assert_eq!(err.sqlstate(), Some("57014"));
    db.rollback().expect("rollback");
    db.execute("SET work_mem = '64MB'", &[]).expect("work_mem");
    db.execute("SET search_path = \"$user\", public", &[])
        .expect("search_path");
    // application_name keeps the broker's tag in front.
    db.execute("SET application_name = 'psql'", &[])
        .expect("application_name");
    let rows = db
        .query("SELECT current_setting('application_name') AS a", &[])
        .expect("query");
    let name = rows[0].text(0).map(|t| t.into_owned()).unwrap_or_default();
    assert!(
        name.starts_with(&format!("pgbroker {session} ")) && name.ends_with(": psql"),
        "{name}"
    );
    db.close().expect("close");
    let refused: Vec<Value> = broker
        .audit_records()
        .into_iter()
        .filter(|r| r["event"] == "statement_refused" && r["session"] == session.as_str())
        .collect();
    assert!(refused.len() >= 11, "{refused:?}");
}

#[test]
fn copy_out_streams_what_psql_copies() {
    let broker = BrokerProcess::start();
    let app = Appliance::get();
    let t = app.scratch_table(
        "hd_copy_out",
        "n int4, name text, note text",
        "(1, 'Dvořák', 'a\tb'), (2, 'Šárka', NULL), (3, 'x,\"y\"', E'line\\nbreak')",
    );
    let mut db = broker.client().user("czechidm").connect().expect("connect");
    for sql in [
        format!("COPY {t} TO STDOUT"),
        format!("COPY {t} (name, n) TO STDOUT WITH (FORMAT csv, HEADER)"),
        format!("COPY (SELECT n, upper(name) FROM {t} WHERE n > 1 ORDER BY n) TO STDOUT"),
    ] {
        let mut ours = Vec::new();
        let rows = db.copy_out(&sql, &mut ours).expect(&sql);
        let out = app.psql_output("czechidm", &sql);
        assert!(out.status.success(), "{sql}");
        // psql prints the data, then its COPY tag.
        let psql = String::from_utf8_lossy(&out.stdout);
        let psql = psql
            .strip_suffix(&format!("COPY {rows}\n"))
            .unwrap_or(&psql);
        assert_eq!(String::from_utf8_lossy(&ours), psql, "{sql}");
        let expected = if sql.contains("n > 1") { 2 } else { 3 };
        assert_eq!(rows, expected, "{sql}");
    }
    // Big: many frames, bounded by the chunk size.
    let mut big = Vec::new();
    let rows = db
        .copy_out(
            "COPY (SELECT g, repeat('ž', 100) FROM generate_series(1, 20000) g) TO STDOUT",
            &mut big,
        )
        .expect("big copy");
    assert_eq!(rows, 20000);
    assert_eq!(big.iter().filter(|b| **b == b'\n').count(), 20000);
    // Refused: files, programs, binary, secrets, and COPY through query.
    for sql in [
        format!("COPY {t} TO '/tmp/hd-out'"),
        "COPY (SELECT 1) TO PROGRAM 'id'".to_owned(),
        format!("COPY {t} TO STDOUT (FORMAT binary)"),
        "COPY pg_authid TO STDOUT".to_owned(),
    ] {
        let err = db.copy_out(&sql, &mut Vec::new()).expect_err(&sql);
        assert_eq!(err.code(), ErrorCode::ForbiddenStatement, "{sql}: {err}");
    }
    let err = db
        .query(&format!("COPY {t} TO STDOUT"), &[])
        .expect_err("COPY through query");
    assert_eq!(err.code(), ErrorCode::BadRequest, "{err}");
    let err = db
        .copy_out(&format!("COPY {t} FROM STDIN"), &mut Vec::new())
        .expect_err("copy_out of a COPY FROM");
    assert!(
        matches!(err.code(), ErrorCode::BadRequest | ErrorCode::ReadOnly),
        "{err}"
    );
    // The session goes on.
    let rows = db.query("SELECT 1 AS one", &[]).expect("after");
    assert_eq!(rows[0].get::<i64>("one"), 1);
    let session = db.session_info().session.clone();
    db.close().expect("close");
    let records = broker.audit_records();
    assert!(records.iter().any(|r| r["event"] == "statement"
        && r["session"] == session.as_str()
        && r["kind"] == "COPY TO STDOUT"));
    assert!(records.iter().any(|r| r["event"] == "result"
        && r["session"] == session.as_str()
        && r["kind"] == "COPY TO STDOUT"
        && r["outcome"]["rows"] == 20000));
}

#[test]
fn copy_in_writes_as_insert_would_in_write_sessions_only() {
    let broker = BrokerProcess::start();
    let app = Appliance::get();
    let t = app.scratch_table("hd_copy_in", "n int4 PRIMARY KEY, name text", "");
    let mut db = broker
        .client()
        .user("czechidm")
        .readonly(false)
        .connect()
        .expect("connect");
    // Pieces split in the middle of rows and of a UTF-8 character.
    let mut data = String::new();
    for i in 1..=5000 {
        data.push_str(&format!("{i}\tŘehoř č. {i}\n"));
    }
    struct Dribble<'a>(&'a [u8]);
    impl std::io::Read for Dribble<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(buf.len()).min(7777);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let rows = db
        .copy_in(
            &format!("COPY {t} FROM STDIN"),
            &mut Dribble(data.as_bytes()),
        )
        .expect("copy in");
    assert_eq!(rows, 5000);
    let rows = db
        .copy_in(
            &format!("COPY {t} (name, n) FROM STDIN WITH (FORMAT csv)"),
            &mut "\"a,b\",6001\nŽ,6002\n".as_bytes(),
        )
        .expect("csv");
    assert_eq!(rows, 2);
    db.commit().expect("commit");
    assert_eq!(
        app.psql(
            "czechidm",
            &format!("SELECT count(*), max(name) FILTER (WHERE n = 4999), min(name) FILTER (WHERE n = 6001) FROM {t}")
        ),
        "5002|Řehoř č. 4999|a,b"
    );
    // Bad data: PostgreSQL's error at the end, the transaction aborted,
    // and the session usable after rollback.
    let err = db
        .copy_in(&format!("COPY {t} FROM STDIN"), &mut "x\ty\n".as_bytes())
        .expect_err("bad row");
    assert_eq!(err.sqlstate(), Some("22P02"), "{err}");
    let err = db.execute("SELECT 1", &[]).expect_err("aborted");
    assert_eq!(err.sqlstate(), Some("25P02"));
    db.rollback().expect("rollback");
    // A source that fails abandons the COPY.
    struct Broken;
    impl std::io::Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk on fire"))
        }
    }
    let err = db
        .copy_in(&format!("COPY {t} FROM STDIN"), &mut Broken)
        .expect_err("broken source");
    assert!(err.message().contains("disk on fire"), "{err}");
    db.rollback().expect("rollback");
    assert_eq!(db.execute("SELECT 1", &[]).expect("usable"), 1);
    db.close().expect("close");

    // Read sessions: refused as an INSERT would be; nothing changed.
    let mut read = broker.client().user("czechidm").connect().expect("read");
    let err = read
        .copy_in(&format!("COPY {t} FROM STDIN"), &mut "9\tx\n".as_bytes())
        .expect_err("read session");
    assert!(err.is_read_only(), "{err}");
    read.close().expect("close");
    assert_eq!(
        app.psql("czechidm", &format!("SELECT count(*) FROM {t}")),
        "5002"
    );
}
