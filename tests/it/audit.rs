//! The audit (issue 4, docs/audit.md): every session and statement of real
//! clients, run as other OS users, is in the file with who, where and what;
//! refusals too; nothing runs when its record cannot be written, and the
//! broker recovers by itself; the chain survives concurrency, rotation
//! (SIGHUP and size), restarts and shutdown; and `audit verify`, `audit
//! show` and `audit-hash` read it as documented.

use iam_pgbroker_tests::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

// ---------------------------------------------------------------------------
// Helpers

/// `id FLAG user`, trimmed.
fn id(flag: &str, user: &str) -> String {
    let ran = run(Command::new("id").args([flag, user]));
    assert_eq!(ran.code, 0, "{ran:?}");
    ran.stdout.trim().to_owned()
}

fn uid(user: &str) -> u64 {
    id("-u", user).parse().expect("uid")
}

fn gid(user: &str) -> u64 {
    id("-g", user).parse().expect("gid")
}

/// The user's groups by name, as a login gets them.
fn groups(user: &str) -> BTreeSet<String> {
    id("-Gn", user)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Runs `cmd` to completion and returns its output and its pid (the pid
/// the broker sees: `setpriv` execs the client in the same process).
fn run_pid(cmd: &mut Command) -> (Ran, i64) {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = i64::from(child.id());
    let out = child.wait_with_output().expect("wait");
    let ran = Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    (ran, pid)
}

/// `iam-pgbroker ARGS`.
fn broker_cli(args: &[&str]) -> Ran {
    run(Command::new(workspace_bin("iam-pgbroker"))
        .args(args)
        .stdin(Stdio::null()))
}

/// `iam-pgbroker audit verify FILES`.
fn verify(files: &[&Path]) -> Ran {
    let mut cmd = Command::new(workspace_bin("iam-pgbroker"));
    cmd.args(["audit", "verify"]).args(files);
    run(cmd.stdin(Stdio::null()))
}

fn audit_file(broker: &BrokerProcess) -> PathBuf {
    broker.dir.join("audit.jsonl")
}

/// The lines of a file (panics when it is missing).
fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::to_owned)
        .collect()
}

fn parse_lines(path: &Path) -> Vec<Value> {
    lines_of(path)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn event(r: &Value) -> &str {
    r["event"].as_str().unwrap_or("<none>")
}

/// The session id of the one `session_open` written for client `pid`.
fn session_of_pid(records: &[Value], pid: i64) -> String {
    let opens: Vec<&Value> = records
        .iter()
        .filter(|r| event(r) == "session_open" && r["peer"]["pid"] == pid)
        .collect();
    assert_eq!(
        opens.len(),
        1,
        "one session_open for pid {pid}: {records:#?}"
    );
    opens[0]["session"].as_str().expect("session id").to_owned()
}

/// The records of one session, in file order.
fn session_records<'a>(records: &'a [Value], session: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["session"] == session).collect()
}

fn events_of(records: &[&Value]) -> Vec<String> {
    records.iter().map(|r| event(r).to_owned()).collect()
}

fn is_hex(v: &Value, len: usize) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The container's `address:5432` on the appliance network.
fn container_address(db: &str) -> String {
    let app = Appliance::get();
    let ip = docker(&[
        "inspect",
        "-f",
        &format!(
            "{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}",
            app.network()
        ),
        &app.container(db),
    ]);
    format!("{ip}:5432")
}

/// What `/proc/PID/cmdline` says, as the audit joins it.
fn cmdline(program: &str, args: &[&str]) -> String {
    let mut line = workspace_bin(program).display().to_string();
    for a in args {
        line.push(' ');
        line.push_str(a);
    }
    line
}

/// Checks who and where on every record of a session.
fn assert_identity(records: &[&Value], user: &str, pid: i64, process: &str) {
    let groups: Vec<Value> = groups(user).into_iter().map(Value::from).collect();
    for r in records {
        let peer = &r["peer"];
        assert_eq!(peer["uid"], uid(user), "{r}");
        assert_eq!(peer["user"], user, "{r}");
        assert_eq!(peer["gid"], gid(user), "{r}");
        let mut got: Vec<Value> = peer["groups"].as_array().cloned().unwrap_or_default();
        got.sort_by_key(|g| g.as_str().unwrap_or_default().to_owned());
        assert_eq!(got, groups, "supplementary groups in {r}");
        assert_eq!(peer["pid"], pid, "{r}");
        assert_eq!(peer["process"], process, "{r}");
        if let Some(unit) = peer.get("unit") {
            let unit = unit.as_str().unwrap_or_default();
            assert!(
                unit.ends_with(".service") || unit.ends_with(".scope"),
                "{r}"
            );
        }
    }
}

/// Checks the target of every record of a session on czechidm.
fn assert_target(records: &[&Value], db_user: &str) {
    let app = Appliance::get();
    let address = container_address("czechidm");
    for r in records {
        let t = &r["target"];
        assert_eq!(t["db"], "czechidm", "{r}");
        assert_eq!(t["dbname"], "czechidm", "{r}");
        assert_eq!(t["db_user"], db_user, "{r}");
        assert_eq!(t["container"], app.container("czechidm"), "{r}");
        assert_eq!(t["address"], address, "{r}");
    }
}

fn table_with_row(tag: &str) -> String {
    Appliance::get().scratch_table(tag, "id int primary key, note text", "(1, 'original')")
}

fn note(table: &str) -> String {
    Appliance::get().psql(
        "czechidm",
        &format!("SELECT note FROM {table} WHERE id = 1"),
    )
}

fn code(frame: &Value) -> &str {
    frame["error"]["code"].as_str().unwrap_or("<none>")
}

// ---------------------------------------------------------------------------
// 1. Every operation, with who and where

#[test]
fn every_operation_is_recorded_with_the_callers_identity_and_target() {
    let table = table_with_row("au_ops");
    let broker = BrokerProcess::start();

    // A reader at the command line, with a reason and a parameter.
    let select = format!("SELECT note FROM {table} WHERE id = %s");
    let reader_args = [
        "-U",
        "czechidm",
        "--reason",
        "INC-4711 look up",
        "-c",
        &select,
        "-p",
        "1",
    ];
    let (ran, reader_pid) = run_pid(iam_pg(READER, &broker).args(reader_args));
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(ran.stdout.contains("original"), "{ran:?}");

    // A writer through the Rust library: update, read back, commit.
    let update = format!("UPDATE {table} SET note = %s WHERE id = 1");
    let update_step = format!("x:{update}");
    let select_step = format!("q:SELECT note FROM {table} WHERE id = 1");
    let discard_step = format!("x:UPDATE {table} SET note = 'discarded' WHERE id = 1");
    let writer_args = [
        "--user",
        "czechidm",
        "--write",
        "--reason",
        "INC-4712 fix note",
        "p:changed-by-writer",
        &update_step,
        &select_step,
        "commit",
        &discard_step,
        "rollback",
    ];
    let (ran, writer_pid) = run_pid(it_client(WRITER, &broker).args(writer_args));
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(note(&table), "changed-by-writer");

    let records = broker.audit_records();
    // Every line has a 27-character UTC time, in file order, and a prev.
    let times: Vec<&str> = records
        .iter()
        .map(|r| r["time"].as_str().expect("time"))
        .collect();
    for t in &times {
        assert!(
            t.len() == 27 && t.ends_with('Z') && t.as_bytes()[10] == b'T',
            "{t}"
        );
    }
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert!(records.iter().all(|r| is_hex(&r["prev"], 64)));
    assert_eq!(event(&records[0]), "broker_start");

    // The reader's session.
    let session = session_of_pid(&records, reader_pid);
    assert!(is_hex(&json!(session), 16), "{session}");
    let recs = session_records(&records, &session);
    assert_eq!(
        events_of(&recs),
        ["session_open", "statement", "result", "session_close"],
        "{recs:#?}"
    );
    assert_identity(&recs, READER, reader_pid, "iam-pg");
    assert_target(&recs, "czechidm");
    for r in &recs {
        assert_eq!(r["mode"], "read", "{r}");
        assert_eq!(r["reason"], "INC-4711 look up", "{r}");
        assert_eq!(r["rule"], "demo-reader", "{r}");
    }
    let (open, stmt, result, close) = (recs[0], recs[1], recs[2], recs[3]);
    let reader_cmdline = cmdline("iam-pg", &reader_args);
    for r in [open, close] {
        assert_eq!(r["peer"]["cmdline"], reader_cmdline, "{r}");
        assert_eq!(
            r["peer"]["exe"],
            workspace_bin("iam-pg").display().to_string(),
            "{r}"
        );
    }
    // Statement records name who, without the long process details.
    assert!(stmt["peer"].get("cmdline").is_none(), "{stmt}");
    assert_eq!(open["outcome"]["ok"], true, "{open}");
    assert!(open["outcome"]["duration_us"].is_u64(), "{open}");
    assert_eq!(stmt["sql"], select.as_str());
    assert_eq!(
        stmt["normalized"],
        format!("SELECT note FROM {table} WHERE id = $1")
    );
    assert!(is_hex(&stmt["fingerprint"], 16), "{stmt}");
    assert_eq!(stmt["kind"], "SELECT");
    assert_eq!(stmt["writes"], false);
    assert_eq!(stmt["param_count"], 1);
    assert!(is_hex(&stmt["params"][0]["hmac"], 64), "{stmt}");
    assert!(
        stmt.get("outcome").is_none(),
        "written before it ran: {stmt}"
    );
    assert_eq!(result["request"], stmt["request"]);
    assert_eq!(result["kind"], "SELECT");
    assert_eq!(result["outcome"]["ok"], true, "{result}");
    assert_eq!(result["outcome"]["rows"], 1, "{result}");
    assert!(result["outcome"]["duration_us"].is_u64(), "{result}");
    assert_eq!(close["why"], "client_close", "{close}");
    assert!(close["rolled_back"].is_boolean(), "{close}");

    // The writer's session.
    let session = session_of_pid(&records, writer_pid);
    let recs = session_records(&records, &session);
    assert_eq!(
        events_of(&recs),
        [
            "session_open",
            "statement",
            "result",
            "statement",
            "result",
            "commit",
            "result",
            "statement",
            "result",
            "rollback",
            "result",
            "session_close"
        ],
        "{recs:#?}"
    );
    assert_identity(&recs, WRITER, writer_pid, "it-client");
    assert_target(&recs, "czechidm");
    for r in &recs {
        assert_eq!(r["mode"], "write", "{r}");
        assert_eq!(r["reason"], "INC-4712 fix note", "{r}");
        assert_eq!(r["rule"], "demo-writer", "{r}");
    }
    let writer_cmdline = cmdline("it-client", &writer_args);
    assert_eq!(recs[0]["peer"]["cmdline"], writer_cmdline);
    assert_eq!(recs[11]["peer"]["cmdline"], writer_cmdline);
    let (stmt, result) = (recs[1], recs[2]);
    assert_eq!(stmt["sql"], update.as_str());
    assert_eq!(
        stmt["normalized"],
        format!("UPDATE {table} SET note = $1 WHERE id = $2")
    );
    assert_eq!(stmt["kind"], "UPDATE");
    assert_eq!(stmt["writes"], true);
    assert_eq!(stmt["param_count"], 1);
    assert!(is_hex(&stmt["params"][0]["hmac"], 64), "{stmt}");
    assert_eq!(result["outcome"]["rows"], 1, "rows affected: {result}");
    assert_eq!(result["writes"], true);
    // The SELECT with a constant has the reader's fingerprint: pg_query's,
    // which ignores constants.
    let (select_stmt, select_result) = (recs[3], recs[4]);
    assert_eq!(
        select_stmt["normalized"],
        format!("SELECT note FROM {table} WHERE id = $1")
    );
    assert_eq!(select_stmt["param_count"], 0);
    let reader_stmt = session_records(&records, &session_of_pid(&records, reader_pid))[1];
    assert_eq!(select_stmt["fingerprint"], reader_stmt["fingerprint"]);
    assert_eq!(select_result["outcome"]["rows"], 1);
    let (commit, commit_result) = (recs[5], recs[6]);
    assert!(commit.get("outcome").is_none(), "written before it ran");
    assert_eq!(commit_result["request"], commit["request"]);
    assert_eq!(commit_result["outcome"]["ok"], true, "{commit_result}");
    let (rollback, rollback_result, close) = (recs[9], recs[10], recs[11]);
    assert_eq!(recs[7]["sql"], discard_step[2..]);
    assert!(rollback.get("outcome").is_none(), "written before it ran");
    assert_eq!(rollback_result["request"], rollback["request"]);
    assert_eq!(rollback_result["outcome"]["ok"], true, "{rollback_result}");
    assert_eq!(close["why"], "client_close");
    assert_eq!(close["rolled_back"], false, "nothing was open: {close}");

    // Parameters are hashed: the statement records do not hold the value.
    let raw = std::fs::read_to_string(audit_file(&broker)).expect("audit file");
    for line in raw
        .lines()
        .filter(|l| l.contains("\"event\":\"statement\""))
    {
        assert!(!line.contains("changed-by-writer"), "{line}");
    }
    let ran = verify(&[&audit_file(&broker)]);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(ran.stdout.contains("chain intact"), "{ran:?}");
}

// ---------------------------------------------------------------------------
// 2. Refusals

#[test]
fn refused_sessions_and_statements_are_recorded_with_the_refusal() {
    let table = table_with_row("au_refused");
    let broker = BrokerProcess::start();

    // Sessions the policy refuses: nobody at all, the reader for writing.
    let (nobody, nobody_pid) = run_pid(iam_pg(NOBODY, &broker).args(["-c", "SELECT 1"]));
    assert_eq!(nobody.code, 3, "{nobody:?}");
    let (no_write, no_write_pid) = run_pid(iam_pg(READER, &broker).args([
        "-U", "czechidm", "--write", "--reason", "try", "-c", "SELECT 1",
    ]));
    assert_eq!(no_write.code, 3, "{no_write:?}");
    // A session the policy allowed but PostgreSQL did not open.
    let (no_db, no_db_pid) =
        run_pid(iam_pg(READER, &broker).args(["--dbname", "au_no_such_db", "-c", "SELECT 1"]));
    assert_eq!(no_db.code, 1, "{no_db:?}");

    // Statements the guard or the read-only session refuses.
    let update = format!("UPDATE {table} SET note = 'reader' WHERE id = 1");
    let refused = [
        (
            "SELECT pg_read_file('/etc/passwd')",
            "forbidden_statement",
            "pg_read_file",
        ),
        (
            "COPY (SELECT 1) TO PROGRAM 'id'",
            "forbidden_statement",
            "COPY",
        ),
        (update.as_str(), "read_only", "UPDATE"),
        (
            "ALTER ROLE czechidm PASSWORD 'Tajne-heslo-1'",
            "forbidden_statement",
            "ALTER ROLE",
        ),
    ];
    let mut statement_pids = Vec::new();
    for (sql, _, _) in &refused {
        let (ran, pid) = run_pid(iam_pg(READER, &broker).args(["-U", "czechidm", "-c", sql]));
        assert_eq!(ran.code, 1, "{ran:?}");
        statement_pids.push((ran, pid));
    }
    assert_eq!(note(&table), "original");
    // A statement that fails in PostgreSQL ran: its result says how.
    let (failed, failed_pid) = run_pid(iam_pg(READER, &broker).args(["-c", "SELECT 1/0 AS boom"]));
    assert_eq!(failed.code, 1, "{failed:?}");

    let records = broker.audit_records();
    for (ran, pid, user, mode, why) in [
        (&nobody, nobody_pid, NOBODY, "read", "no rule grants it"),
        (&no_write, no_write_pid, READER, "write", "grants read only"),
    ] {
        let of_pid: Vec<&Value> = records.iter().filter(|r| r["peer"]["pid"] == pid).collect();
        assert_eq!(events_of(&of_pid), ["session_refused"], "{of_pid:#?}");
        let r = of_pid[0];
        assert_identity(&of_pid, user, pid, "iam-pg");
        assert!(r.get("session").is_none(), "no session was opened: {r}");
        assert!(
            r["peer"]["cmdline"]
                .as_str()
                .is_some_and(|c| c.ends_with("SELECT 1")),
            "{r}"
        );
        assert_eq!(r["mode"], mode, "{r}");
        assert_eq!(r["target"]["db"], "czechidm", "{r}");
        assert_eq!(r["outcome"]["ok"], false, "{r}");
        assert_eq!(r["outcome"]["code"], "denied", "{r}");
        let message = r["outcome"]["message"].as_str().expect("message");
        assert!(message.contains(why), "{r}");
        assert!(
            ran.stderr.contains(message),
            "the client got the same: {ran:?}"
        );
    }

    for ((sql, code, rule), (ran, pid)) in refused.iter().zip(&statement_pids) {
        let session = session_of_pid(&records, *pid);
        let recs = session_records(&records, &session);
        // Nothing ran: no `statement` record, only the refusal.
        assert_eq!(
            events_of(&recs),
            ["session_open", "statement_refused", "session_close"],
            "{sql}: {recs:#?}"
        );
        assert_identity(&recs, READER, *pid, "iam-pg");
        let r = recs[1];
        if sql.contains("PASSWORD") {
            // The text is left out; its normalized form has no constants.
            assert!(r.get("sql").is_none(), "{r}");
            assert_eq!(r["sql_redacted"], true, "{r}");
            assert_eq!(r["normalized"], "ALTER ROLE czechidm PASSWORD $1", "{r}");
        } else {
            assert_eq!(r["sql"], *sql, "{r}");
        }
        assert!(is_hex(&r["fingerprint"], 16), "{r}");
        assert!(r["normalized"].is_string(), "{r}");
        assert_eq!(r["rule"], *rule, "the guard's rule: {r}");
        assert_eq!(r["mode"], "read");
        assert_eq!(r["outcome"]["ok"], false, "{r}");
        assert_eq!(r["outcome"]["code"], *code, "{r}");
        if *code == "read_only" {
            // The sqlstate PostgreSQL itself would give.
            assert_eq!(r["outcome"]["sqlstate"], "25006", "{r}");
        } else {
            let message = r["outcome"]["message"].as_str().expect("message");
            assert!(ran.stderr.contains(message), "{ran:?} vs {r}");
        }
    }
    let of_pid: Vec<&Value> = records
        .iter()
        .filter(|r| r["peer"]["pid"] == no_db_pid)
        .collect();
    assert_eq!(events_of(&of_pid), ["session_open"], "{of_pid:#?}");
    let r = of_pid[0];
    assert!(is_hex(&r["session"], 16), "{r}");
    assert_eq!(r["rule"], "demo-reader", "{r}");
    assert_eq!(r["target"]["dbname"], "au_no_such_db", "{r}");
    assert_eq!(r["outcome"]["ok"], false, "{r}");
    assert_eq!(r["outcome"]["sqlstate"], "3D000", "{r}");

    // Passwords never appear anywhere in the file.
    let raw = std::fs::read_to_string(audit_file(&broker)).expect("audit file");
    assert!(!raw.contains("Tajne-heslo-1"), "{raw}");

    let session = session_of_pid(&records, failed_pid);
    let recs = session_records(&records, &session);
    assert_eq!(
        events_of(&recs),
        // iam-pg rolls the failed transaction back before it closes.
        [
            "session_open",
            "statement",
            "result",
            "rollback",
            "result",
            "session_close"
        ],
        "{recs:#?}"
    );
    let outcome = &recs[2]["outcome"];
    assert_eq!(outcome["ok"], false, "{outcome}");
    assert_eq!(outcome["code"], "database", "{outcome}");
    assert_eq!(outcome["sqlstate"], "22012", "{outcome}");
    assert!(
        outcome.get("message").is_none(),
        "PostgreSQL's message is not kept: {outcome}"
    );
    assert!(outcome["duration_us"].is_u64(), "{outcome}");
}

// ---------------------------------------------------------------------------
// 3. Concurrency

fn concurrent_sessions_leave_whole_lines_and_an_intact_chain(fsync: &str) {
    const CLIENTS: usize = 20;
    const STATEMENTS: usize = 10;
    let broker = BrokerProcess::start_with(BrokerOptions {
        audit: format!("fsync = \"{fsync}\""),
        ..Default::default()
    });
    // The sessions are opened one after the other (each a fresh PostgreSQL
    // connection, which costs a SCRAM handshake), then all run their
    // statements at once. Long lines (a 3 KB constant in the SQL text)
    // make a torn or interleaved write visible.
    let sessions: Vec<(usize, iam_pgconnect::Connection)> = (0..CLIENTS)
        .map(|i| {
            let db = broker
                .client()
                .user("czechidm")
                .readonly(i % 2 == 0)
                .reason(format!("client {i}"))
                .connect()
                .unwrap_or_else(|e| panic!("client {i}: {e}"));
            (i, db)
        })
        .collect();
    let pad = "x".repeat(3000);
    let start = std::sync::Barrier::new(CLIENTS);
    std::thread::scope(|scope| {
        for (i, mut db) in sessions {
            let (pad, start) = (&pad, &start);
            scope.spawn(move || {
                start.wait();
                for j in 0..STATEMENTS {
                    let value = format!("value-{i}-{j}");
                    let sql = format!("SELECT %s AS v, {i} AS client, {j} AS n, '{pad}' AS pad");
                    let rows = db.query(&sql, &[&value]).expect("query");
                    assert_eq!(rows.len(), 1);
                }
                if i % 2 == 1 {
                    db.commit().expect("commit");
                }
                db.close().expect("close");
            });
        }
    });

    let path = audit_file(&broker);
    let raw = std::fs::read_to_string(&path).expect("audit file");
    assert!(raw.ends_with('\n'), "the file ends with a whole line");
    let records = parse_lines(&path);
    let ran = verify(&[&path]);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(
        ran.stdout
            .contains(&format!("{} records, chain intact", records.len())),
        "{ran:?}"
    );

    // Every session is whole, and its records are its own.
    let mut by_session: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.get("session").is_some()) {
        by_session
            .entry(r["session"].as_str().expect("session").to_owned())
            .or_default()
            .push(r);
    }
    assert_eq!(by_session.len(), CLIENTS, "{by_session:#?}");
    let mut clients = BTreeSet::new();
    for recs in by_session.values() {
        let i: usize = recs[0]["reason"]
            .as_str()
            .and_then(|r| r.strip_prefix("client "))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{}", recs[0]));
        assert!(clients.insert(i), "one session per client");
        let writer = i % 2 == 1;
        let mut expected = vec!["session_open"];
        for _ in 0..STATEMENTS {
            expected.extend(["statement", "result"]);
        }
        if writer {
            expected.extend(["commit", "result"]);
        }
        expected.push("session_close");
        assert_eq!(events_of(recs), expected, "client {i}");
        for r in recs {
            assert_eq!(r["reason"], format!("client {i}"), "{r}");
            assert_eq!(r["mode"], if writer { "write" } else { "read" }, "{r}");
            assert_eq!(r["peer"]["uid"], 0, "{r}");
            assert_eq!(r["peer"]["pid"], std::process::id(), "{r}");
        }
        for (j, pair) in recs[1..].chunks(2).take(STATEMENTS).enumerate() {
            let sql = pair[0]["sql"].as_str().expect("sql");
            assert_eq!(
                sql,
                format!("SELECT %s AS v, {i} AS client, {j} AS n, '{pad}' AS pad")
            );
            assert_eq!(pair[0]["param_count"], 1);
            assert_eq!(pair[1]["event"], "result");
            assert_eq!(pair[1]["request"], pair[0]["request"]);
            assert_eq!(pair[1]["outcome"]["rows"], 1, "{}", pair[1]);
        }
        let close = recs[recs.len() - 1];
        assert_eq!(close["why"], "client_close", "{close}");
    }
}

#[test]
fn concurrent_sessions_leave_whole_lines_and_an_intact_chain_fsync_interval() {
    concurrent_sessions_leave_whole_lines_and_an_intact_chain("interval");
}

#[test]
fn concurrent_sessions_leave_whole_lines_and_an_intact_chain_fsync_always() {
    concurrent_sessions_leave_whole_lines_and_an_intact_chain("always");
}

// ---------------------------------------------------------------------------
// 4. Fail closed

#[test]
fn an_audit_file_that_cannot_be_written_refuses_everything_with_audit_unavailable() {
    let table = table_with_row("au_full");
    let broker = BrokerProcess::start_with(BrokerOptions {
        audit_file: Some("/dev/full".into()),
        ..Default::default()
    });
    let update = format!("UPDATE {table} SET note = 'unaudited' WHERE id = 1");

    // A granted writer, through the library and at the command line.
    let ran = run(it_client(WRITER, &broker).args([
        "--user",
        "czechidm",
        "--write",
        &format!("x:{update}"),
        "commit",
    ]));
    assert_eq!(ran.code, 1, "{ran:?}");
    let frame: Value = serde_json::from_str(ran.stdout.lines().next().unwrap_or_default())
        .unwrap_or_else(|_| panic!("{ran:?}"));
    assert_eq!(code(&frame), "audit_unavailable", "{ran:?}");
    let ran = run(iam_pg(WRITER, &broker).args(["-U", "czechidm", "--write", "-c", &update]));
    assert_eq!(ran.code, 4, "{ran:?}");
    assert!(
        ran.stderr.contains("audit record could not be written"),
        "{ran:?}"
    );
    // Root too, and reading too.
    let mut raw = RawClient::connect(&broker);
    let frames = raw.call(json!({"id": 1, "op": "open", "user": "czechidm", "readonly": false}));
    assert_eq!(code(&frames[0]), "audit_unavailable", "{frames:?}");
    let ran = run(iam_pg(READER, &broker).args(["-c", "SELECT 1"]));
    assert_eq!(ran.code, 4, "{ran:?}");

    assert_eq!(note(&table), "original");
    // The broker still answers, and says why it refuses, loudly.
    assert_eq!(raw.call(json!({"id": 2, "op": "ping"}))[0]["type"], "pong");
    let log = broker.log();
    assert!(
        log.contains("AUDIT UNAVAILABLE") && log.contains("/dev/full"),
        "{log}"
    );
}

/// How often the broker's watch of the audit folder has seen the file's
/// name change (its debug line).
fn watch_saw(broker: &BrokerProcess) -> usize {
    broker
        .log()
        .matches("the audit file's name changed in its folder")
        .count()
}

/// Waits until the watch has seen a change more than `seen` times.
fn wait_for_watch(broker: &BrokerProcess, seen: usize) {
    assert!(
        eventually(Duration::from_secs(10), || watch_saw(broker) > seen),
        "the broker's watch did not see the audit file renamed:\n{}",
        broker.log()
    );
}

#[test]
fn statements_are_refused_while_the_audit_is_unwritable_and_run_again_after() {
    let app = Appliance::get();
    let table = table_with_row("au_recover");
    let seq = unique_name("au_seq");
    app.psql(
        "czechidm",
        &format!("CREATE SEQUENCE {seq}; ALTER SEQUENCE {seq} OWNER TO czechidm;"),
    );
    // A short flush interval, so that the background flush also fails
    // during the outage (it flushes the records written just before).
    let broker = BrokerProcess::start_with(BrokerOptions {
        audit: "fsync_interval_ms = 100".into(),
        ..Default::default()
    });
    let path = audit_file(&broker);
    let before = broker.dir.join("audit.jsonl.before");

    let mut raw = RawClient::connect(&broker);
    let opened = raw.call(json!({"id": 1, "op": "open", "user": "czechidm", "readonly": false}));
    assert_eq!(opened[0]["type"], "opened", "{opened:?}");
    let f = raw.call(json!({"id": 2, "op": "execute",
        "sql": format!("UPDATE {table} SET note = 'first' WHERE id = 1")}));
    assert_eq!(f[0]["rows"], 1, "{f:?}");

    // The path now names a full disk; the old file keeps its records.
    let seen = watch_saw(&broker);
    std::fs::rename(&path, &before).expect("move the audit file");
    std::os::unix::fs::symlink("/dev/full", &path).expect("symlink to /dev/full");
    // The broker learns of it from its watch of the folder (inotify), a
    // moment later; a record written in that moment goes to the renamed
    // file (docs/audit.md).
    wait_for_watch(&broker, seen);

    let f = raw.call(json!({"id": 3, "op": "execute",
        "sql": format!("UPDATE {table} SET note = 'second' WHERE id = 1")}));
    assert_eq!(code(&f[0]), "audit_unavailable", "{f:?}");
    // nextval is not transactional: had it reached PostgreSQL, the
    // sequence would show it even after a rollback.
    let f = raw.call(json!({"id": 4, "op": "query", "sql": format!("SELECT nextval('{seq}')")}));
    assert_eq!(code(&f[0]), "audit_unavailable", "{f:?}");
    let f = raw.call(json!({"id": 5, "op": "commit"}));
    assert_eq!(code(&f[0]), "audit_unavailable", "{f:?}");
    let ran = run(iam_pg(WRITER, &broker).args([
        "-U",
        "czechidm",
        "--write",
        "-c",
        &format!("UPDATE {table} SET note = 'writer' WHERE id = 1"),
    ]));
    assert_eq!(ran.code, 4, "{ran:?}");
    assert_eq!(note(&table), "original", "nothing was committed");
    assert_eq!(
        app.psql("czechidm", &format!("SELECT is_called FROM {seq}")),
        "f",
        "nextval never reached PostgreSQL"
    );
    assert!(broker.log().contains("AUDIT UNAVAILABLE"));
    // Nearly always within one interval; recovery must not depend on it.
    let _ = eventually(Duration::from_secs(3), || {
        broker.log().contains("cannot flush the audit file to disk")
    });

    // Writable again: the same session goes on, no restart.
    std::fs::remove_file(&path).expect("remove the symlink");
    let f = raw.call(json!({"id": 6, "op": "query",
        "sql": format!("SELECT note FROM {table} WHERE id = 1")}));
    assert_eq!(f.last().map(|l| &l["type"]), Some(&json!("done")), "{f:?}");
    let rows: Vec<&Value> = f.iter().filter(|f| f["type"] == "rows").collect();
    assert_eq!(
        rows[0]["rows"][0][0], "first",
        "the refused UPDATE never ran: {f:?}"
    );
    let f = raw.call(json!({"id": 7, "op": "commit"}));
    assert_eq!(f[0]["type"], "ok", "{f:?}");
    assert_eq!(note(&table), "first");
    assert!(broker.log().contains("audit file writable again"));
    let ran = run(iam_pg(WRITER, &broker).args([
        "-U",
        "czechidm",
        "--write",
        "-c",
        &format!("UPDATE {table} SET note = 'writer' WHERE id = 1"),
    ]));
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(note(&table), "writer");

    // The chain continues in the new file; the refused requests are in
    // neither.
    let new = parse_lines(&path);
    assert_eq!(new[0]["event"], "rotated", "{:#?}", new[0]);
    let ran = verify(&[&before, &path]);
    assert_eq!(ran.code, 0, "{ran:?}");
    for file in [&before, &path] {
        let text = std::fs::read_to_string(file).expect("read");
        assert!(
            !text.contains("nextval") && !text.contains("'second'"),
            "{text}"
        );
    }
}

// ---------------------------------------------------------------------------
// 5. Tampering

#[test]
fn verify_names_the_line_of_an_edit_a_deletion_and_a_swap() {
    let broker = BrokerProcess::start();
    for n in 0..3 {
        let ran = run(iam_pg(READER, &broker).args(["-c", &format!("SELECT {n} AS n")]));
        assert_eq!(ran.code, 0, "{ran:?}");
    }
    let lines = lines_of(&audit_file(&broker));
    assert!(lines.len() >= 10, "{lines:#?}");
    let ran = verify(&[&audit_file(&broker)]);
    assert_eq!(ran.code, 0, "{ran:?}");

    // The first `result` line (1-based number), with lines after it.
    let k = lines
        .iter()
        .position(|l| l.contains("\"event\":\"result\""))
        .expect("a result")
        + 1;
    assert!(k + 2 <= lines.len());
    let tampered = |name: &str, lines: Vec<String>| -> (PathBuf, Ran) {
        let path = broker.dir.join(name);
        std::fs::write(&path, lines.join("\n") + "\n").expect("write copy");
        let ran = verify(&[&path]);
        assert_eq!(ran.code, 1, "{name}: {ran:?}");
        assert!(ran.stdout.contains("chain BROKEN"), "{name}: {ran:?}");
        (path, ran)
    };

    // An edited line: the line after it no longer links to it.
    let mut edited = lines.clone();
    assert!(edited[k - 1].contains("\"rows\":1"), "{}", edited[k - 1]);
    edited[k - 1] = edited[k - 1].replace("\"rows\":1", "\"rows\":0");
    let (path, ran) = tampered("edited.jsonl", edited);
    assert!(
        ran.stdout.contains(&format!(
            "{}:{}: prev does not match the hash of line {k}: line {k} was edited",
            path.display(),
            k + 1
        )),
        "{ran:?}"
    );
    assert!(ran.stdout.contains("1 problem"), "{ran:?}");

    // A deleted line: its successor, now line k, links to nothing.
    let mut deleted = lines.clone();
    deleted.remove(k - 1);
    let (path, ran) = tampered("deleted.jsonl", deleted);
    assert!(
        ran.stdout.contains(&format!(
            "{}:{k}: prev does not match the hash of line {}",
            path.display(),
            k - 1
        )) && ran.stdout.contains("deleted"),
        "{ran:?}"
    );

    // A reordered pair breaks three links.
    let mut swapped = lines.clone();
    swapped.swap(k - 1, k);
    let (path, ran) = tampered("swapped.jsonl", swapped);
    for at in [k, k + 1, k + 2] {
        assert!(
            ran.stdout.contains(&format!("{}:{at}: ", path.display())),
            "line {at}: {ran:?}"
        );
    }
    assert!(ran.stdout.contains("3 problems"), "{ran:?}");

    let ran = verify(&[&broker.dir.join("missing.jsonl")]);
    assert_eq!(ran.code, 2, "{ran:?}");
}

// ---------------------------------------------------------------------------
// 6. audit-hash

#[test]
fn audit_hash_prints_the_hmac_the_statement_record_holds() {
    let broker = BrokerProcess::start();
    let ran = run(iam_pg(READER, &broker).args(["-c", "SELECT %s::text AS who", "-p", "admin"]));
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(ran.stdout.contains("admin"), "{ran:?}");
    let ran = run(it_client(READER, &broker).args([
        "j:42",
        "j:null",
        "p:jan.novák",
        "q:SELECT %s::int AS n, %s::text AS nothing, %s::text AS who",
    ]));
    assert_eq!(ran.code, 0, "{ran:?}");

    let records = broker.audit_records();
    let statements: Vec<&Value> = records.iter().filter(|r| event(r) == "statement").collect();
    assert_eq!(statements.len(), 2, "{statements:#?}");
    let admin = statements[0]["params"][0]["hmac"]
        .as_str()
        .expect("hmac")
        .to_owned();
    let key = broker.dir.join("audit.key");
    let config = broker.dir.join("config.toml");
    let key_s = key.to_str().expect("path");
    let config_s = config.to_str().expect("path");

    let hash = |args: &[&str]| -> String {
        let ran = broker_cli(args);
        assert_eq!(ran.code, 0, "{ran:?}");
        assert_eq!(ran.stdout.lines().count(), 1, "{ran:?}");
        ran.stdout.trim().to_owned()
    };
    assert_eq!(hash(&["audit-hash", "admin", "--key", key_s]), admin);
    assert_eq!(hash(&["audit-hash", "admin", "--config", config_s]), admin);
    assert_ne!(hash(&["audit-hash", "admin2", "--key", key_s]), admin);
    // From standard input, out of the process list.
    let mut stdin_cmd = Command::new(workspace_bin("iam-pgbroker"));
    stdin_cmd
        .args(["audit-hash", "-", "--key", key_s])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = stdin_cmd.spawn().expect("spawn audit-hash");
    {
        use std::io::Write;
        let mut input = child.stdin.take().expect("stdin");
        input.write_all(b"admin\n").expect("write stdin");
    }
    let out = child.wait_with_output().expect("audit-hash -");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), admin);

    // A number is hashed as written, NULL stays null, UTF-8 as it is.
    let params = &statements[1]["params"];
    assert_eq!(
        params[0]["hmac"],
        hash(&["audit-hash", "42", "--key", key_s])
    );
    assert_eq!(params[1], Value::Null);
    assert_eq!(
        params[2]["hmac"],
        hash(&["audit-hash", "jan.novák", "--key", key_s])
    );

    // audit show --value finds the statement by its hashed parameter.
    let file = audit_file(&broker);
    let ran = broker_cli(&[
        "audit",
        "show",
        file.to_str().expect("path"),
        "--config",
        config_s,
        "--value",
        "admin",
        "--json",
    ]);
    assert_eq!(ran.code, 0, "{ran:?}");
    let shown: Vec<Value> = ran
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert!(
        shown
            .iter()
            .any(|r| event(r) == "statement" && r["sql"] == "SELECT %s::text AS who"),
        "{ran:?}"
    );
    assert!(
        !shown
            .iter()
            .any(|r| r["sql"].as_str().is_some_and(|s| s.contains("::int"))),
        "{ran:?}"
    );
}

// ---------------------------------------------------------------------------
// 7. Rotation

#[test]
fn sighup_rotation_keeps_the_chain_across_files() {
    let broker = BrokerProcess::start();
    let path = audit_file(&broker);
    let first = broker.dir.join("audit.jsonl.1");
    let second = broker.dir.join("audit.jsonl.2");
    let ran = run(iam_pg(READER, &broker).args(["-c", "SELECT 'before' AS w"]));
    assert_eq!(ran.code, 0, "{ran:?}");

    // logrotate: rename, then SIGHUP.
    std::fs::rename(&path, &first).expect("rename");
    broker.signal(libc::SIGHUP);
    assert!(
        eventually(Duration::from_secs(10), || path.exists()
            && !lines_of(&path).is_empty()),
        "the broker starts the new file on SIGHUP: {}",
        broker.log()
    );
    let old_len = lines_of(&first).len();
    let ran = run(iam_pg(READER, &broker).args(["-c", "SELECT 'after' AS w"]));
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(
        lines_of(&first).len(),
        old_len,
        "nothing more in the old file"
    );

    let new = parse_lines(&path);
    assert_eq!(new[0]["event"], "rotated", "{:#?}", new[0]);
    assert_eq!(new[0]["why"], "reopen", "{:#?}", new[0]);
    assert!(new
        .iter()
        .any(|r| r["sql"] == "SELECT 'after' AS w" && event(r) == "statement"));

    let ran = verify(&[&first, &path]);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(ran.stdout.contains("chain intact"), "{ran:?}");
    assert!(ran.stdout.contains("in 2 files"), "{ran:?}");
    // The new file alone starts after the old file's last record.
    let old = verify(&[&first]);
    let last = old
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("last hash: "))
        .unwrap_or_else(|| panic!("{old:?}"))
        .to_owned();
    assert_eq!(new[0]["prev"], last.as_str());
    let alone = verify(&[&path]);
    assert_eq!(alone.code, 0, "{alone:?}");
    assert!(
        alone
            .stdout
            .contains(&format!("starts at: after record {last}")),
        "{alone:?}"
    );
    // Out of order, the link is broken.
    assert_eq!(verify(&[&path, &first]).code, 1);

    // Renamed without SIGHUP: once the folder's watch has seen it, the next
    // record notices and continues the chain in a new file all the same.
    let seen = watch_saw(&broker);
    std::fs::rename(&path, &second).expect("rename");
    wait_for_watch(&broker, seen);
    let ran = run(iam_pg(READER, &broker).args(["-c", "SELECT 'unsignalled' AS w"]));
    assert_eq!(ran.code, 0, "{ran:?}");
    let newest = parse_lines(&path);
    assert_eq!(newest[0]["event"], "rotated");
    assert_eq!(newest[0]["why"], "vanished", "{:#?}", newest[0]);
    let ran = verify(&[&first, &second, &path]);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(ran.stdout.contains("in 3 files"), "{ran:?}");
}

#[test]
fn size_rotation_keeps_the_chain_across_files() {
    let broker = BrokerProcess::start_with(BrokerOptions {
        audit: "max_bytes = 65536".into(),
        ..Default::default()
    });
    let pad = "x".repeat(3000);
    let steps: Vec<String> = (0..40)
        .map(|n| format!("q:SELECT {n} AS n, '{pad}' AS pad"))
        .collect();
    let ran = run(it_client(READER, &broker).args(&steps));
    assert_eq!(ran.code, 0, "{ran:?}");

    // FILE.<UTC time> names sort in time order; the live file is last.
    let mut rotated: Vec<PathBuf> = std::fs::read_dir(&broker.dir)
        .expect("broker folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("audit.jsonl.2"))
        })
        .collect();
    rotated.sort();
    assert!(!rotated.is_empty(), "no rotation: {}", broker.log());
    for file in &rotated {
        let len = std::fs::metadata(file).expect("size").len();
        assert!(len <= 65536, "{} has {len} bytes", file.display());
    }
    let live = audit_file(&broker);
    let first = parse_lines(&live);
    assert_eq!(first[0]["event"], "rotated", "{:#?}", first[0]);
    assert_eq!(first[0]["why"], "size");
    assert_eq!(
        first[0]["previous_file"],
        rotated[rotated.len() - 1].display().to_string()
    );
    let mut files: Vec<&Path> = rotated.iter().map(PathBuf::as_path).collect();
    files.push(&live);
    let ran = verify(&files);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(ran.stdout.contains("chain intact"), "{ran:?}");
    // All 40 statements, each once, across the files.
    let statements: usize = files
        .iter()
        .map(|f| {
            parse_lines(f)
                .iter()
                .filter(|r| event(r) == "statement")
                .count()
        })
        .sum();
    assert_eq!(statements, 40);
}

#[test]
fn the_chain_continues_across_a_restart_and_a_torn_last_line() {
    let mut first = BrokerProcess::start();
    let path = audit_file(&first);
    let ran = run(iam_pg(READER, &first).args(["-c", "SELECT 'first broker' AS w"]));
    assert_eq!(ran.code, 0, "{ran:?}");
    first.signal(libc::SIGTERM);
    first.wait_exit(Duration::from_secs(15)).expect("stops");
    let stopped = lines_of(&path).len();
    // A crash in the middle of a write leaves a line without its newline.
    {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        file.write_all(b"{\"time\":\"2026-").expect("append");
    }

    let second = BrokerProcess::start_with(BrokerOptions {
        audit_file: Some(path.display().to_string()),
        ..Default::default()
    });
    let ran = run(iam_pg(READER, &second).args(["-c", "SELECT 'second broker' AS w"]));
    assert_eq!(ran.code, 0, "{ran:?}");
    drop(second);

    let lines = lines_of(&path);
    assert_eq!(
        lines[stopped], "{\"time\":\"2026-",
        "the torn line was ended"
    );
    let after: Vec<Value> = lines[stopped + 1..]
        .iter()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(after[0]["event"], "broker_start", "{:#?}", after[0]);
    assert!(after
        .iter()
        .any(|r| r["sql"] == "SELECT 'second broker' AS w"));
    // One problem, the torn line; the chain goes on through it.
    let ran = verify(&[&path]);
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(
        ran.stdout.contains(&format!(
            "{}:{}: not a complete JSON record",
            path.display(),
            stopped + 1
        )),
        "{ran:?}"
    );
    assert!(ran.stdout.contains("chain BROKEN: 1 problem"), "{ran:?}");
    assert!(
        ran.stdout.contains("starts at: the start of the chain"),
        "{ran:?}"
    );
}

// ---------------------------------------------------------------------------
// 8. Shutdown

#[test]
fn sigterm_records_why_open_sessions_closed_then_broker_stop() {
    let table = table_with_row("au_term");
    let mut broker = BrokerProcess::start();
    let mut writer = Spawned::new(it_client(WRITER, &broker).args([
        "--user",
        "czechidm",
        "--write",
        &format!("x:UPDATE {table} SET note = 'uncommitted' WHERE id = 1"),
        "hang",
    ]));
    let mut reader = Spawned::new(it_client(READER, &broker).args(["q:SELECT 1 AS one", "hang"]));
    writer.wait_for("HANG");
    reader.wait_for("HANG");
    let writer_pid = i64::from(writer.child.id());
    let reader_pid = i64::from(reader.child.id());

    // PostgreSQL's own view names the session and the person behind it.
    let records = broker.audit_records();
    let writer_session = session_of_pid(&records, writer_pid);
    let reader_session = session_of_pid(&records, reader_pid);
    let app_name = Appliance::get().psql(
        "czechidm",
        &format!(
            "SELECT application_name FROM pg_stat_activity WHERE application_name LIKE 'pgbroker {writer_session} %'"
        ),
    );
    assert_eq!(
        app_name,
        format!(
            "pgbroker {writer_session} {WRITER}({}) pid {writer_pid}",
            uid(WRITER)
        )
    );

    broker.signal(libc::SIGTERM);
    let status = broker
        .wait_exit(Duration::from_secs(15))
        .expect("broker exits on SIGTERM");
    assert!(status.success(), "{status}");
    for child in [&mut writer, &mut reader] {
        let _ = child.child.kill();
        let _ = child.child.wait();
    }
    assert_eq!(note(&table), "original");

    let records = broker.audit_records();
    let last = records.last().expect("records");
    assert_eq!(event(last), "broker_stop", "{last}");
    assert_eq!(last["broker"]["pid"], broker_pid_of(&records), "{last}");
    // Between the first shutdown close and broker_stop: only the closes.
    let first_close = records
        .iter()
        .position(|r| event(r) == "session_close")
        .expect("a session_close");
    let tail: Vec<&Value> = records[first_close..records.len() - 1].iter().collect();
    assert_eq!(
        events_of(&tail),
        ["session_close", "session_close"],
        "{tail:#?}"
    );
    for (session, user, pid, rolled_back) in [
        (&writer_session, WRITER, writer_pid, true),
        (&reader_session, READER, reader_pid, true),
    ] {
        let close = tail
            .iter()
            .find(|r| r["session"] == session.as_str())
            .unwrap_or_else(|| panic!("{session} closed: {tail:#?}"));
        assert_eq!(close["why"], "shutdown", "{close}");
        assert_eq!(close["rolled_back"], rolled_back, "{close}");
        assert_identity(&[close], user, pid, "it-client");
    }
    let ran = verify(&[&audit_file(&broker)]);
    assert_eq!(ran.code, 0, "{ran:?}");
}

#[test]
fn sessions_ended_by_a_disconnect_or_a_timeout_say_so() {
    let table = table_with_row("au_gone");
    let broker = BrokerProcess::start_with(BrokerOptions {
        // Long enough for the writer to be killed before it is idle.
        limits: "idle_timeout_ms = 2000".into(),
        ..Default::default()
    });
    // A writer killed in the middle of a transaction.
    let mut writer = Spawned::new(it_client(WRITER, &broker).args([
        "--user",
        "czechidm",
        "--write",
        &format!("x:UPDATE {table} SET note = 'uncommitted' WHERE id = 1"),
        "hang",
    ]));
    writer.wait_for("HANG");
    let writer_pid = i64::from(writer.child.id());
    writer.child.kill().expect("SIGKILL");
    let _ = writer.child.wait();
    // A session left idle past the limit.
    let mut idle = RawClient::connect(&broker);
    let opened = idle.call(json!({"id": 1, "op": "open"}));
    let idle_session = opened[0]["session"].as_str().expect("session").to_owned();
    let frame = idle.recv().expect("the idle limit's error");
    assert_eq!(code(&frame), "limit", "{frame}");

    let closed = |session: &str| {
        broker
            .audit_records()
            .into_iter()
            .find(|r| event(r) == "session_close" && r["session"] == session)
    };
    let records = broker.audit_records();
    let writer_session = session_of_pid(&records, writer_pid);
    assert!(eventually(Duration::from_secs(10), || closed(
        &writer_session
    )
    .is_some()
        && closed(&idle_session).is_some()));
    let gone = closed(&writer_session).expect("writer closed");
    assert_eq!(gone["why"], "disconnect", "{gone}");
    assert_eq!(gone["rolled_back"], true, "{gone}");
    assert_identity(&[&gone], WRITER, writer_pid, "it-client");
    let timed_out = closed(&idle_session).expect("idle closed");
    assert_eq!(timed_out["why"], "timeout", "{timed_out}");
    assert_eq!(timed_out["rolled_back"], false, "{timed_out}");
    assert_eq!(note(&table), "original");
}

/// The broker pid in the `broker_start` record.
fn broker_pid_of(records: &[Value]) -> Value {
    let start = records
        .iter()
        .find(|r| event(r) == "broker_start")
        .expect("broker_start");
    start["broker"]["pid"].clone()
}

// ---------------------------------------------------------------------------
// 9. audit show

#[test]
fn audit_show_lists_writes_refusals_and_json_lines() {
    let table = table_with_row("au_show");
    let broker = BrokerProcess::start();
    let update = format!("UPDATE {table} SET note = 'shown' WHERE id = 1");
    let ran = run(iam_pg(WRITER, &broker).args([
        "-U",
        "czechidm",
        "--write",
        "--reason",
        "INC-9 show",
        "-c",
        &update,
    ]));
    assert_eq!(ran.code, 0, "{ran:?}");
    let reader_select = format!("SELECT note FROM {table}");
    let ran = run(iam_pg(READER, &broker).args(["-U", "czechidm", "-c", &reader_select]));
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(
        run(iam_pg(NOBODY, &broker).args(["-c", "SELECT 1"])).code,
        3
    );
    let forbidden = "SELECT pg_read_file('/etc/passwd')";
    assert_eq!(run(iam_pg(READER, &broker).args(["-c", forbidden])).code, 1);
    let file = audit_file(&broker);
    let file_s = file.to_str().expect("path");
    let show = |args: &[&str]| -> Ran {
        let mut all = vec!["audit", "show", file_s];
        all.extend_from_slice(args);
        let ran = broker_cli(&all);
        assert_eq!(ran.code, 0, "{args:?}: {ran:?}");
        ran
    };

    // The writer's writes: the UPDATE and its commit, nobody else's.
    let ran = show(&["--user", WRITER, "--writes"]);
    assert!(ran.stdout.starts_with("TIME (UTC)"), "{ran:?}");
    assert!(ran.stdout.contains(&update), "{ran:?}");
    assert!(ran.stdout.contains(WRITER), "{ran:?}");
    assert!(ran.stdout.contains("commit"), "{ran:?}");
    assert!(!ran.stdout.contains(READER), "{ran:?}");
    assert!(!ran.stdout.contains(&reader_select), "{ran:?}");
    assert!(!ran.stdout.contains("session_open"), "{ran:?}");

    // Refusals: the refused session and the refused statement.
    let ran = show(&["--denied"]);
    assert!(ran.stdout.contains("session_refused"), "{ran:?}");
    assert!(ran.stdout.contains(NOBODY), "{ran:?}");
    assert!(ran.stdout.contains("statement_refused"), "{ran:?}");
    assert!(ran.stdout.contains(forbidden), "{ran:?}");
    assert!(!ran.stdout.contains(&update), "{ran:?}");

    // JSON lines, unchanged: the same records as in the file.
    let ran = show(&["--user", WRITER, "--writes", "--json"]);
    let shown: Vec<Value> = ran
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    assert!(!shown.is_empty(), "{ran:?}");
    let raw = std::fs::read_to_string(&file).expect("audit file");
    for line in ran.stdout.lines() {
        assert!(raw.lines().any(|l| l == line), "printed as written: {line}");
    }
    for r in &shown {
        assert_eq!(r["peer"]["user"], WRITER, "{r}");
        assert!(["statement", "commit", "result"].contains(&event(r)), "{r}");
    }
    assert!(shown
        .iter()
        .any(|r| event(r) == "statement" && r["sql"] == update.as_str() && r["writes"] == true));
    assert!(shown.iter().any(|r| event(r) == "commit"));
    let ran = show(&["--denied", "--json"]);
    let events: BTreeSet<String> = ran
        .stdout
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}"));
            event(&v).to_owned()
        })
        .collect();
    assert_eq!(
        events,
        BTreeSet::from(["session_refused".to_owned(), "statement_refused".to_owned()]),
        "{ran:?}"
    );
}
