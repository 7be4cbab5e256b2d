//! Fair share (issue 17): each attack, run by a real unprivileged user
//! against the real broker and PostgreSQL, is bounded — the tests assert
//! the bound, not a timing — and the other users keep working.

use iam_pgbroker_tests::*;
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

/// The load generator's `attack` and `hold`, run as `user`.
fn load_as(user: &str, broker: &BrokerProcess, args: &[&str]) -> Command {
    let mut cmd = as_user(user, &workspace_bin("iam-pgbroker-load"));
    cmd.args(args)
        .arg("--socket")
        .arg(&broker.socket)
        .env_remove("IAM_PGBROKER_SOCKET");
    cmd
}

fn attack(user: &str, broker: &BrokerProcess, args: &[&str]) -> Value {
    let ran = run(&mut load_as(user, broker, args));
    assert_eq!(ran.code, 0, "{ran:?}");
    serde_json::from_str(ran.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {ran:?}"))
}

fn status(broker: &BrokerProcess) -> Value {
    let mut raw = RawClient::connect(broker);
    let frames = raw.call(json!({"id": 1, "op": "status"}));
    frames
        .into_iter()
        .find(|f| f["type"] == "status")
        .map(|f| f["status"].clone())
        .unwrap_or_else(|| panic!("no status frame"))
}

fn uid_of(user: &str) -> u64 {
    let out = Command::new("id").args(["-u", user]).output().expect("id");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("uid")
}

const READER_AND_WRITER: &str = r#"
[[rule]]
name = "root"
uids = [0]
dbs = ["*"]
db_users = ["*"]
mode = "write"

[[rule]]
name = "reader"
users = ["iam-demo-reader"]
dbs = ["czechidm"]
db_users = ["czechidm", "postgres"]
mode = "read"

[[rule]]
name = "writer"
users = ["iam-demo-writer"]
dbs = ["czechidm"]
db_users = ["czechidm"]
mode = "write"
"#;

#[test]
fn a_connection_hog_gets_its_share_and_no_more() {
    let broker = BrokerProcess::start_with(BrokerOptions {
        policy: Some(READER_AND_WRITER.into()),
        extra: "[fair_share]\nmax_sessions_per_uid = 5\nmax_idle_per_uid = 2\nqueue_timeout_ms = 3000\n"
            .into(),
        ..Default::default()
    });
    // The hog of the issue: many sessions, under several pool keys
    // (database users, and databases of the instance its grant does not
    // name), half of them closed every second to park idle connections.
    let mut hog = Spawned::new(&mut load_as(
        READER,
        &broker,
        &[
            "attack",
            "--kind",
            "hog",
            "--seconds",
            "8",
            "--sessions",
            "40",
            "--user",
            "czechidm,postgres",
            "--dbnames",
            ",postgres,template1",
        ],
    ));
    hog.wait_for("HOG READY");
    // While it runs: the broker's connections stay within the reader's
    // share (5 sessions + 2 idle) — PostgreSQL's own count — and the
    // writer and the application still get theirs.
    for _ in 0..5 {
        // The broker's connections to the server, idle pooled ones
        // included: the reader's 5 sessions and 2 idle, the writer's one
        // session and its idle one, and a passing privilege probe.
        let in_use = status(&broker)["fair_share"]["servers"][0]["in_use"]
            .as_u64()
            .unwrap_or(99);
        assert!(in_use <= 5 + 2 + 2 + 1, "{in_use} server connections");
        let ran =
            run(iam_pg(WRITER, &broker).args(["-U", "czechidm", "-c", "SELECT 1 AS writer_ok"]));
        assert_eq!(ran.code, 0, "{ran:?}");
        assert!(ran.stdout.contains("writer_ok"), "{ran:?}");
        assert_eq!(Appliance::get().psql("czechidm", "SELECT 42"), "42");
        std::thread::sleep(Duration::from_millis(500));
    }
    // Its report is its last line.
    let line = hog.wait_for("\"attack\"");
    let _ = hog.child.wait();
    let report: Value = serde_json::from_str(&line).expect("hog report");
    assert!(
        report["held_max"].as_u64().unwrap_or(99) <= 5,
        "the hog held at most its 5 sessions: {report}"
    );
    let outcomes = &report["outcomes"];
    assert!(outcomes["busy"].as_u64().unwrap_or(0) > 0, "{report}");
    // dbnames: the grant covers the instance's own database only.
    assert!(outcomes["denied"].as_u64().unwrap_or(0) > 0, "{report}");
    let refused = run(iam_pg(READER, &broker).args(["--dbname", "postgres", "-c", "SELECT 1"]));
    assert_ne!(refused.code, 0, "{refused:?}");
    assert!(refused.stderr.contains("dbnames"), "{refused:?}");
    // Its idle connections are bounded per uid too, whatever the keys.
    let pools = status(&broker)["pools"].clone();
    let reader_uid = uid_of(READER);
    let idle: u64 = pools
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| {
            p["target"]
                .as_str()
                .is_some_and(|t| t.starts_with(&format!("uid {reader_uid} ")))
        })
        .map(|p| p["idle"].as_u64().unwrap_or(0))
        .sum();
    assert!(idle <= 2, "{pools}");
}

#[test]
fn the_server_cap_sheds_idle_connections_then_queues_then_says_busy() {
    let broker = BrokerProcess::start_with(BrokerOptions {
        policy: Some(READER_AND_WRITER.into()),
        extra: "[fair_share]\nmax_server_connections = 3\nqueue_timeout_ms = 1500\n".into(),
        ..Default::default()
    });
    // The cap the server allows, from the server itself.
    let app = Appliance::get();
    let max: u64 = app
        .psql("czechidm", "SHOW max_connections")
        .parse()
        .expect("max");
    let su: u64 = app
        .psql("czechidm", "SHOW superuser_reserved_connections")
        .parse()
        .expect("reserved");
    let run_one =
        |user: &str| run(iam_pg(user, &broker).args(["-U", "czechidm", "-c", "SELECT 1 AS ok"]));
    assert_eq!(run_one(WRITER).code, 0);
    let servers = status(&broker)["fair_share"]["servers"].clone();
    assert_eq!(servers[0]["max_connections"], max, "{servers}");
    assert_eq!(servers[0]["usable"], max - su - 10, "{servers}");

    // Three sessions of the reader hold all three connections.
    let mut holders = Vec::new();
    for _ in 0..3 {
        let mut h = Spawned::new(&mut load_as(
            READER,
            &broker,
            &["hold", "--user", "czechidm", "--sql", "SELECT 1"],
        ));
        h.wait_for("HOLD");
        holders.push(KillOnDrop(h.child));
    }
    // The writer waits its bounded time, then gets busy with the reason.
    let busy = run_one(WRITER);
    assert_ne!(busy.code, 0, "{busy:?}");
    assert!(
        busy.stderr.contains("server connections") && busy.stderr.contains("try again later"),
        "{busy:?}"
    );
    // One holder leaves: its connection goes idle in the reader's pool,
    // and is closed for the writer, who is served.
    drop(holders.pop());
    let reader_uid = uid_of(READER);
    assert!(eventually(Duration::from_secs(10), || {
        status(&broker)["pools"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| {
                p["target"]
                    .as_str()
                    .is_some_and(|t| t.starts_with(&format!("uid {reader_uid} ")))
                    && p["idle"].as_u64() >= Some(1)
            })
    }));
    let served = run_one(WRITER);
    assert_eq!(served.code, 0, "{served:?}");
    // Never more than the cap.
    let fair = status(&broker)["fair_share"].clone();
    assert!(fair["servers"][0]["in_use"].as_u64() <= Some(3), "{fair}");
    assert!(fair["busy"].as_u64().unwrap_or(0) >= 1, "{fair}");
    let records = broker.audit_records();
    assert!(
        records
            .iter()
            .any(|r| r["event"] == "session_open" && r["outcome"]["code"] == "busy"),
        "the busy refusal is recorded"
    );
}

#[test]
fn a_client_that_stops_reading_is_cut_off_and_its_transaction_rolled_back() {
    let table = Appliance::get().scratch_table(
        "fs_nonreader",
        "id int primary key, note text",
        "(1, 'original')",
    );
    let broker = BrokerProcess::start_with(BrokerOptions {
        policy: Some(READER_AND_WRITER.into()),
        extra: "[fair_share]\nwrite_timeout_ms = 2000\n".into(),
        ..Default::default()
    });
    // A write transaction, then a huge result the client never reads.
    let update = format!("UPDATE {table} SET note = 'held' WHERE id = 1");
    let mut holder = Spawned::new(&mut load_as(
        WRITER,
        &broker,
        &[
            "hold",
            "--user",
            "czechidm",
            "--write",
            &update,
            "--sql",
            "SELECT b.*, repeat('x', 2000) AS pad FROM idm_identity_bench b",
        ],
    ));
    let held = holder.wait_for("HOLD");
    let _holder = KillOnDrop(holder.child);
    let session = held.trim_start_matches("HOLD ").trim().to_owned();
    // The broker gives up on it: the statement is cancelled, the update
    // rolled back, the row lock gone (the holder process is still alive).
    let app = Appliance::get();
    assert!(
        eventually(Duration::from_secs(60), || {
            app.psql(
                "czechidm",
                &format!(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pgbroker {session}%'"
                ),
            ) == "0"
        }),
        "the non-reader's backend is released"
    );
    let updated = app.psql(
        "czechidm",
        &format!(
            "SET lock_timeout = '2s'; UPDATE {table} SET note = 'app' WHERE id = 1 RETURNING note"
        ),
    );
    assert!(updated.lines().any(|l| l == "app"), "{updated}");
    let records = broker.audit_records();
    let of: Vec<&Value> = records
        .iter()
        .filter(|r| r["session"] == session.as_str())
        .collect();
    assert!(
        of.iter()
            .any(|r| r["event"] == "result" && r["outcome"]["code"] == "write_timeout"),
        "{of:#?}"
    );
    assert!(
        of.iter().any(|r| r["event"] == "session_close"
            && r["why"] == "write_timeout"
            && r["rolled_back"] == true),
        "{of:#?}"
    );
    // The others were never affected.
    let ran = run(iam_pg(READER, &broker).args(["-c", "SELECT 1 AS ok"]));
    assert_eq!(ran.code, 0, "{ran:?}");
}

/// Records of `uid`'s refusals: one by one, and the counts of summaries.
fn refusals_of(records: &[Value], uid: u64) -> (u64, u64) {
    let mine = records.iter().filter(|r| r["peer"]["uid"] == uid);
    let mut single = 0;
    let mut summarised = 0;
    for r in mine {
        match r["event"].as_str() {
            Some("session_refused") | Some("refused") => single += 1,
            Some("refusal_summary") => {
                let message = r["outcome"]["message"].as_str().unwrap_or("");
                summarised += message
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
            }
            _ => {}
        }
    }
    (single, summarised)
}

#[test]
fn an_audit_flood_is_rate_limited_and_summarised_never_dropped() {
    let broker = BrokerProcess::start_with(BrokerOptions {
        extra: "[fair_share]\nrefusals_per_interval = 5\nrefusal_interval_ms = 1000\n".into(),
        ..Default::default()
    });
    let report = attack(
        NOBODY,
        &broker,
        &["attack", "--kind", "flood", "--seconds", "3"],
    );
    let answered: u64 = report["outcomes"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(code, _)| code.as_str() != "opened")
        .map(|(_, n)| n.as_u64().unwrap_or(0))
        .sum();
    // Over the limit, refusals are slowed down (100 ms each) as well as
    // summarised: the flooder got more than its 5 a second, and far fewer
    // than it could send.
    assert!(answered > 20, "{report}");
    assert!(answered < 3 * 5 + 3 * 10 + 60, "{report}");
    let uid = uid_of(NOBODY);
    // Every refusal is in the audit: on its own, or counted in a summary
    // (summaries are written every few seconds).
    assert!(
        eventually(Duration::from_secs(20), || {
            let (single, summarised) = refusals_of(&broker.audit_records(), uid);
            single + summarised == answered
        }),
        "refusals recorded {:?} of {answered}",
        refusals_of(&broker.audit_records(), uid)
    );
    let (single, _) = refusals_of(&broker.audit_records(), uid);
    // At most 5 a second on their own (the run lasted 3 s, summaries
    // included in the next few).
    assert!(single <= 5 * 8, "{single} refusals recorded one by one");
    // Others are served meanwhile and after.
    let ran = run(iam_pg(READER, &broker).args(["-c", "SELECT 1 AS ok"]));
    assert_eq!(ran.code, 0, "{ran:?}");
}

/// `lines` sent by `user` over one connection; the answers.
fn raw_as(user: &str, broker: &BrokerProcess, lines: &[&str]) -> Vec<Value> {
    let script = r#"
import socket, sys, json
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall("".join(l + "\n" for l in sys.argv[2:]).encode())
s.shutdown(socket.SHUT_WR)
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
sys.stdout.write(data.decode())
"#;
    let mut cmd = as_user(user, std::path::Path::new("/usr/bin/python3"));
    cmd.arg("-c").arg(script).arg(&broker.socket).args(lines);
    let ran = run(&mut cmd);
    assert_eq!(ran.code, 0, "{ran:?}");
    ran.stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn every_refusal_has_its_record() {
    let broker = BrokerProcess::start();
    let long_name = "x".repeat(100);
    let open_bad = json!({"id": 2, "op": "open", "db": "../etc", "user": "postgres"}).to_string();
    let open_long = json!({"id": 3, "op": "open", "db": "czechidm", "user": long_name}).to_string();
    let answers = raw_as(
        READER,
        &broker,
        &[
            "this is not json",
            &open_bad,
            &open_long,
            r#"{"id":4,"op":"status"}"#,
            r#"{"id":5,"op":"request_show","request":"nosuchrequest0000"}"#,
            r#"{"id":6,"op":"sessions"}"#,
        ],
    );
    assert_eq!(answers.len(), 6, "{answers:#?}");
    assert!(answers.iter().all(|a| a["type"] == "error"), "{answers:#?}");
    let uid = uid_of(READER);
    assert!(eventually(Duration::from_secs(5), || {
        refusals_of(&broker.audit_records(), uid).0 >= 6
    }));
    let records = broker.audit_records();
    let refused: Vec<&Value> = records
        .iter()
        .filter(|r| r["peer"]["uid"] == uid && r["event"] == "refused")
        .collect();
    let requests: Vec<Value> = refused.iter().map(|r| r["request"].clone()).collect();
    for id in [2, 3, 4, 5, 6] {
        assert!(requests.contains(&json!(id)), "request {id}: {refused:#?}");
    }
    assert!(
        refused
            .iter()
            .any(|r| r["outcome"]["code"] == "bad_request" && r["request"].is_null()),
        "the malformed line: {refused:#?}"
    );
    // A user no rule names gets a small line limit before any grant.
    let big = json!({"id": 1, "op": "ping", "pad": "p".repeat(20_000)}).to_string();
    let answers = raw_as(NOBODY, &broker, &[&big]);
    assert_eq!(answers.len(), 1, "{answers:#?}");
    assert!(
        answers[0]["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("exceeds 16384 bytes"),
        "{answers:#?}"
    );
}

#[test]
fn below_the_audit_reserve_new_sessions_are_refused_and_open_ones_finish() {
    // A small filesystem of its own for the audit folder.
    let dir = Appliance::get()
        .root
        .join("brokers")
        .join(unique_name("fs_reserve"));
    std::fs::create_dir_all(&dir).expect("mount point");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
        .arg(&dir)
        .status()
        .expect("mount");
    assert!(mounted.success(), "mount tmpfs (the tests run as root)");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(dir.clone());
    let audit = dir.join("audit.jsonl");
    let broker = BrokerProcess::start_with(BrokerOptions {
        audit_file: Some(audit.display().to_string()),
        extra: "[fair_share]\naudit_reserve_mb = 8\n".into(),
        ..Default::default()
    });
    let mut open = RawClient::connect(&broker);
    let opened = open.call(json!({"id": 1, "op": "open"}));
    assert!(opened.iter().any(|f| f["type"] == "opened"), "{opened:?}");

    // The folder fills up (10 of 16 MiB): below the reserve.
    std::fs::write(dir.join("filler"), vec![0u8; 10 * 1024 * 1024]).expect("filler");
    let refused = run(iam_pg(READER, &broker).args(["-c", "SELECT 1"]));
    assert_ne!(refused.code, 0, "{refused:?}");
    assert!(refused.stderr.contains("reserve"), "{refused:?}");
    let reserve = status(&broker)["fair_share"]["audit_reserve"].clone();
    assert_eq!(reserve["below"], true, "{reserve}");
    assert_eq!(reserve["reserve_bytes"], 8 * 1024 * 1024, "{reserve}");
    assert!(
        broker.log().contains("AUDIT FOLDER NEARLY FULL"),
        "loud log"
    );
    // The open session goes on, and is recorded.
    let ran = open.call(json!({"id": 2, "op": "query", "sql": "SELECT 7 AS seven"}));
    assert!(ran.iter().any(|f| f["type"] == "done"), "{ran:?}");
    let closed = open.call(json!({"id": 3, "op": "close"}));
    assert!(!closed.iter().any(|f| f["type"] == "error"), "{closed:?}");
    let text = std::fs::read_to_string(&audit).expect("audit");
    assert!(text.contains("SELECT 7 AS seven"), "statement recorded");
    assert!(text.contains("\"session_close\""), "close recorded");
    // Room again: sessions again.
    std::fs::remove_file(dir.join("filler")).expect("rm filler");
    let ran = run(iam_pg(READER, &broker).args(["-c", "SELECT 1 AS ok"]));
    assert_eq!(ran.code, 0, "{ran:?}");
}

#[test]
fn temp_files_work_mem_and_read_lock_timeout_are_capped_per_rule() {
    let policy = r#"
[[rule]]
name = "root"
uids = [0]
dbs = ["*"]
db_users = ["*"]
mode = "write"

[[rule]]
name = "reader"
users = ["iam-demo-reader"]
dbs = ["czechidm"]
db_users = ["postgres", "czechidm"]
mode = "read"
temp_file_limit_kb = 2048
work_mem_kb = 1024
"#;
    let broker = BrokerProcess::start_with(BrokerOptions {
        policy: Some(policy.into()),
        ..Default::default()
    });
    let show = run(iam_pg(READER, &broker).args([
        "-U",
        "postgres",
        "--format",
        "csv",
        "-c",
        "SELECT current_setting('work_mem'), current_setting('temp_file_limit'), current_setting('lock_timeout')",
    ]));
    assert_eq!(show.code, 0, "{show:?}");
    assert!(show.stdout.contains("1MB,2MB,5s"), "{show:?}");
    // The temp-file hog: a sort larger than 2 MB is stopped by PostgreSQL.
    let report = attack(
        READER,
        &broker,
        &[
            "attack",
            "--kind",
            "tempfile",
            "--seconds",
            "2",
            "--user",
            "postgres",
        ],
    );
    let outcomes = report["outcomes"].as_object().cloned().unwrap_or_default();
    assert!(
        outcomes.keys().all(|k| k == "database:53400"),
        "every sort stopped at temp_file_limit: {report}"
    );
    assert!(outcomes.contains_key("database:53400"), "{report}");
    // Writers are unaffected by the reader's cap (their own defaults).
    let ran = run(iam_pg(READER, &broker).args(["-c", "SELECT 1 AS ok"]));
    assert_eq!(ran.code, 0, "{ran:?}");
}

#[test]
fn every_fair_share_key_is_documented_and_shipped() {
    let docs = std::fs::read_to_string(repo_root().join("docs/configuration.md")).expect("docs");
    let shipped = std::fs::read_to_string(repo_root().join("systemd/config.toml")).expect("config");
    for key in [
        "server_reserve_connections",
        "max_server_connections",
        "max_sessions_per_uid",
        "max_idle_per_uid",
        "queue_timeout_ms",
        "write_timeout_ms",
        "unnamed_max_line_bytes",
        "refusals_per_interval",
        "refusal_interval_ms",
        "audit_reserve_mb",
        "work_mem_kb",
        "temp_file_limit_kb",
        "read_lock_timeout_ms",
    ] {
        assert!(docs.contains(&format!("| `{key}` |")), "{key} in docs");
        assert!(shipped.contains(&format!("#{key} = ")), "{key} shipped");
    }
    assert!(docs.contains("| `dbnames` |"), "rule key dbnames in docs");
    assert!(
        docs.contains("| `work_mem_kb`, `temp_file_limit_kb` |"),
        "rule keys in docs"
    );
    for key in ["dbnames", "work_mem_kb, temp_file_limit_kb"] {
        assert!(shipped.contains(key), "rule key {key} shipped");
    }
}
