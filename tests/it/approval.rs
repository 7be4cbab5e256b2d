//! Two-person write approval with three real OS users: one asks, another
//! approves, a third may approve elsewhere only. Every refusal is checked
//! against the data and the audit.

use iam_pgbroker_tests::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const REQUESTER: &str = "iam-demo-requester";
const APPROVER: &str = "iam-demo-approver";
const APPROVER2: &str = "iam-demo-approver2";

/// The three people exist and may reach the socket. `scripts/dev-appliance`
/// creates them; an appliance brought up before they were added to it gets
/// them here, under the same lock the script takes.
fn ensure_users() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        Appliance::get();
        let script = format!(
            r#"lockdir=/run/lock; [ -d "$lockdir" ] && [ -w "$lockdir" ] || lockdir=/tmp
exec 8>"$lockdir/iam-dev-os-users.lock"; flock 8
getent group iam-pgbroker >/dev/null || groupadd --system iam-pgbroker
for u in {REQUESTER} {APPROVER} {APPROVER2}; do
    getent passwd "$u" >/dev/null || useradd --system --user-group --no-create-home \
        --home-dir /nonexistent --shell /bin/bash --comment "iam-pgbroker demo user" "$u"
    usermod -a -G iam-pgbroker "$u"
done"#
        );
        let ran = run(Command::new("sh").args(["-c", &script]));
        assert_eq!(ran.code, 0, "creating the demo users: {ran:?}");
    });
}

/// Requester asks, approver approves (and may also ask: self-approval must
/// still be refused), approver2 approves on bridge only.
fn policy() -> String {
    format!(
        r#"
[[rule]]
name = "root"
uids = [0]
dbs = ["*"]
db_users = ["*"]
mode = "write"

[[rule]]
name = "helpdesk-asks"
users = ["{REQUESTER}"]
dbs = ["czechidm"]
db_users = ["czechidm"]
mode = "request"

[[rule]]
name = "leads-approve"
users = ["{APPROVER}"]
dbs = ["czechidm"]
db_users = ["czechidm"]
mode = "request"
approve = true

[[rule]]
name = "bridge-approves"
users = ["{APPROVER2}"]
dbs = ["bridge", "czechidm"]
db_users = ["bridge"]
mode = "read"
approve = true

[[rule]]
name = "demo-writer"
users = ["iam-demo-writer"]
dbs = ["czechidm"]
db_users = ["czechidm"]
mode = "write"
"#
    )
}

/// A broker with the approval policy (or `policy`), its own request folder
/// and `approval` extra lines in `[approval]`.
fn start(policy: Option<String>, approval: &str) -> (BrokerProcess, PathBuf) {
    ensure_users();
    let dir = Appliance::get()
        .root
        .join("requests")
        .join(unique_name("r"));
    let broker = BrokerProcess::start_with(BrokerOptions {
        policy: Some(policy.unwrap_or_else(self::policy)),
        extra: format!("[approval]\ndir = \"{}\"\n{approval}\n", dir.display()),
        ..BrokerOptions::default()
    });
    (broker, dir)
}

fn table(rows: &str) -> String {
    Appliance::get().scratch_table("appr", "id int primary key, note text, n int", rows)
}

fn psql(sql: &str) -> String {
    Appliance::get().psql("czechidm", sql)
}

fn json_of(ran: &Ran) -> Value {
    serde_json::from_str(ran.stdout.trim()).unwrap_or_else(|_| panic!("not JSON: {ran:?}"))
}

/// `iam-pg ARGS` as `user`.
fn pg(user: &str, broker: &BrokerProcess, args: &[&str]) -> Ran {
    run(iam_pg(user, broker).args(args))
}

/// Submits a change as `user` on czechidm as czechidm; returns the request.
fn submit(user: &str, broker: &BrokerProcess, sql: &[&str], params: &[&str]) -> Value {
    let mut args = vec![
        "request",
        "-U",
        "czechidm",
        "--reason",
        "INC-4711: oprava",
        "--json",
    ];
    for s in sql {
        args.extend(["-c", s]);
    }
    for p in params {
        args.extend(["-p", p]);
    }
    let ran = pg(user, broker, &args);
    assert_eq!(ran.code, 0, "submit: {ran:?}");
    json_of(&ran)
}

fn show(user: &str, broker: &BrokerProcess, id: &str) -> Value {
    let ran = pg(user, broker, &["request", "show", id, "--json"]);
    assert_eq!(ran.code, 0, "show: {ran:?}");
    json_of(&ran)
}

/// Audit records about request `id` (they carry it as `session`).
fn records_of(broker: &BrokerProcess, id: &str) -> Vec<Value> {
    broker
        .audit_records()
        .into_iter()
        .filter(|r| r["session"] == id)
        .collect()
}

fn events(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["event"].as_str().unwrap_or("?").to_owned())
        .collect()
}

fn verify_chain(broker: &BrokerProcess) {
    let ran = run(Command::new(workspace_bin("iam-pgbroker"))
        .args(["audit", "verify"])
        .arg(broker.dir.join("audit.jsonl")));
    assert_eq!(ran.code, 0, "audit chain: {ran:?}");
}

#[test]
fn a_change_goes_from_request_to_approval_to_an_audited_commit() {
    let (broker, dir) = start(None, "");
    let t = table("(1, 'Novák', 0), (2, 'Dvořák', 0)");

    // The requester may read but never write directly.
    let direct = pg(
        REQUESTER,
        &broker,
        &[
            "-U",
            "czechidm",
            "--write",
            "-c",
            &format!("UPDATE {t} SET n = 1"),
        ],
    );
    assert_eq!(direct.code, 3, "{direct:?}");
    assert!(direct.stderr.contains("change requests only"), "{direct:?}");
    let read = pg(
        REQUESTER,
        &broker,
        &["-U", "czechidm", "-c", &format!("SELECT count(*) FROM {t}")],
    );
    assert_eq!(read.code, 0, "{read:?}");

    // Submit: the human output names the id and the dry-run counts.
    let update = format!("UPDATE {t} SET note = %s WHERE id = %s");
    let insert = format!("INSERT INTO {t} VALUES (3, 'Černá', 0)");
    let ran = pg(
        REQUESTER,
        &broker,
        &[
            "request",
            "-U",
            "czechidm",
            "--reason",
            "INC-4711: příjmení",
            "-c",
            &update,
            "-c",
            &insert,
            "-p",
            "Nováková",
            "-p",
            "1",
        ],
    );
    assert_eq!(ran.code, 0, "{ran:?}");
    let first = ran.stdout.lines().next().unwrap_or_default().to_owned();
    let id = first
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    assert!(
        first.starts_with("request ") && first.ends_with(" pending"),
        "{ran:?}"
    );
    assert!(ran.stdout.contains("→ 1 row"), "{ran:?}");
    // The dry run was rolled back.
    assert_eq!(psql(&format!("SELECT note FROM {t} WHERE id = 1")), "Novák");
    assert_eq!(psql(&format!("SELECT count(*) FROM {t}")), "2");
    assert!(dir.join(format!("{id}.json")).exists());

    // Both see it; the approver sees everything needed to decide.
    for user in [REQUESTER, APPROVER] {
        let list = pg(user, &broker, &["requests", "--json"]);
        assert_eq!(list.code, 0, "{list:?}");
        assert!(
            json_of(&list)
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["id"] == id.as_str()),
            "{user}: {list:?}"
        );
    }
    let r = show(APPROVER, &broker, &id);
    assert_eq!(r["state"], "pending");
    assert_eq!(r["requester"]["user"], REQUESTER);
    assert_eq!(r["reason"], "INC-4711: příjmení");
    assert_eq!(r["rule"], "helpdesk-asks");
    assert_eq!(r["statements"][0]["sql"], update.as_str());
    assert_eq!(
        r["statements"][0]["params"],
        serde_json::json!(["Nováková", "1"])
    );
    assert_eq!(r["statements"][0]["dry_run_rows"], 1);
    assert_eq!(r["statements"][1]["kind"], "INSERT");
    let text = pg(APPROVER, &broker, &["request", "show", &id]);
    assert!(
        text.stdout.contains("Nováková") && text.stdout.contains("dry run: 1 row"),
        "{text:?}"
    );

    // Approve: executed, committed, with the counts.
    let ran = pg(
        APPROVER,
        &broker,
        &["approve", &id, "--comment", "ověřeno", "--json"],
    );
    assert_eq!(ran.code, 0, "{ran:?}");
    let done = json_of(&ran);
    assert_eq!(done["state"], "executed", "{done}");
    assert_eq!(done["decided_by"]["user"], APPROVER);
    assert_eq!(done["comment"], "ověřeno");
    assert_eq!(done["statements"][0]["rows"], 1);
    assert_eq!(done["statements"][1]["rows"], 1);
    assert_eq!(
        psql(&format!("SELECT note FROM {t} WHERE id = 1")),
        "Nováková"
    );
    assert_eq!(psql(&format!("SELECT note FROM {t} WHERE id = 3")), "Černá");
    assert_eq!(show(REQUESTER, &broker, &id)["state"], "executed");
    // Done means done: it can never run again.
    let again = pg(APPROVER, &broker, &["approve", &id]);
    assert_eq!(again.code, 2, "{again:?}");
    assert!(again.stderr.contains("executed, not pending"), "{again:?}");
    // Pending lists no longer show it; --all does.
    let pending = json_of(&pg(APPROVER, &broker, &["requests", "--json"]));
    assert!(pending
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["id"] != id.as_str()));
    let all = json_of(&pg(APPROVER, &broker, &["requests", "--all", "--json"]));
    assert!(all
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["id"] == id.as_str()));

    // The audit answers "who asked for this change and who let it through".
    let records = records_of(&broker, &id);
    let ev = events(&records);
    let pos = |e: &str| {
        ev.iter()
            .position(|x| x == e)
            .unwrap_or_else(|| panic!("no {e} in {ev:?}"))
    };
    assert!(pos("request_submit") < pos("request_dry_run"), "{ev:?}");
    assert!(pos("request_dry_run") < pos("request_approve"), "{ev:?}");
    assert!(pos("request_approve") < pos("request_execute"), "{ev:?}");
    let submit = &records[pos("request_submit")];
    assert_eq!(submit["peer"]["user"], REQUESTER);
    assert_eq!(submit["reason"], "INC-4711: příjmení");
    assert!(submit["peer"]["cmdline"]
        .as_str()
        .unwrap_or("")
        .contains("request"));
    let approve = &records[pos("request_approve")];
    assert_eq!(approve["peer"]["user"], APPROVER);
    assert_eq!(approve["approval"]["requester"]["user"], REQUESTER);
    assert_eq!(approve["approval"]["approver"]["user"], APPROVER);
    assert_eq!(approve["rule"], "leads-approve");
    let execute = &records[pos("request_execute")];
    assert_eq!(execute["approval"]["state"], "executed");
    assert_eq!(execute["approval"]["requester"]["user"], REQUESTER);
    assert_eq!(execute["approval"]["approver"]["user"], APPROVER);
    assert_eq!(execute["outcome"]["ok"], true);
    // Each statement is recorded before it runs, in the dry run and after
    // approval, with its parameters hashed.
    let statements: Vec<&Value> = records
        .iter()
        .filter(|r| r["event"] == "statement")
        .collect();
    assert_eq!(statements.len(), 4, "{ev:?}");
    assert_eq!(statements[0]["approval"]["phase"], "dry_run");
    assert_eq!(statements[0]["peer"]["user"], REQUESTER);
    assert_eq!(statements[2]["approval"]["phase"], "execute");
    assert_eq!(statements[2]["peer"]["user"], APPROVER);
    assert_eq!(statements[2]["writes"], true);
    assert!(statements[2]["params"][0]["hmac"].is_string());
    // (The submit record's command line holds what `-p` was given, as for
    // any iam-pg session; statement records never hold the value.)
    assert!(!serde_json::to_string(&statements)
        .unwrap()
        .contains("Nováková"));
    verify_chain(&broker);
}

#[test]
fn nobody_approves_their_own_request_nor_one_outside_their_grant() {
    let (broker, _dir) = start(None, "");
    let t = table("(1, 'a', 0)");
    let r = submit(APPROVER, &broker, &[&format!("UPDATE {t} SET n = 7")], &[]);
    let id = r["id"].as_str().unwrap();

    let own = pg(APPROVER, &broker, &["approve", id]);
    assert_eq!(own.code, 3, "{own:?}");
    assert!(own.stderr.contains("own change request"), "{own:?}");
    let own = pg(APPROVER, &broker, &["reject", id, "--comment", "no"]);
    assert_eq!(own.code, 3, "{own:?}");

    // approve = true for bridge (and for czechidm as bridge) is not
    // approve for czechidm as czechidm.
    let elsewhere = pg(APPROVER2, &broker, &["approve", id]);
    assert_eq!(elsewhere.code, 3, "{elsewhere:?}");
    assert!(
        elsewhere.stderr.contains("no rule with approve = true"),
        "{elsewhere:?}"
    );
    let peek = pg(APPROVER2, &broker, &["request", "show", id]);
    assert_eq!(peek.code, 3, "{peek:?}");
    // A requester is not an approver.
    let requester = pg(REQUESTER, &broker, &["approve", id]);
    assert_eq!(requester.code, 3, "{requester:?}");
    let cancel = pg(REQUESTER, &broker, &["cancel", id]);
    assert_eq!(cancel.code, 3, "{cancel:?}");
    assert!(cancel.stderr.contains("only its requester"), "{cancel:?}");

    assert_eq!(psql(&format!("SELECT n FROM {t}")), "0");
    assert_eq!(show(APPROVER, &broker, id)["state"], "pending");

    // The requester withdraws it; then nobody can approve it.
    let ran = pg(APPROVER, &broker, &["cancel", id, "--json"]);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(json_of(&ran)["state"], "cancelled");

    // A rejected request: the comment is required and kept.
    let r2 = submit(REQUESTER, &broker, &[&format!("UPDATE {t} SET n = 8")], &[]);
    let id2 = r2["id"].as_str().unwrap();
    let usage = pg(APPROVER, &broker, &["reject", id2]);
    assert_eq!(usage.code, 2, "{usage:?}");
    let ran = pg(
        APPROVER,
        &broker,
        &["reject", id2, "--comment", "špatný uživatel", "--json"],
    );
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(json_of(&ran)["state"], "rejected");
    assert_eq!(json_of(&ran)["comment"], "špatný uživatel");
    let late = pg(APPROVER2, &broker, &["approve", id2]);
    assert_eq!(late.code, 3, "{late:?}");
    assert_eq!(psql(&format!("SELECT n FROM {t}")), "0");

    let refused: Vec<Value> = records_of(&broker, id)
        .into_iter()
        .filter(|r| r["event"] == "request_refused")
        .collect();
    assert!(refused.len() >= 5, "{refused:?}");
    assert!(refused.iter().all(|r| r["outcome"]["code"] == "denied"));
    assert!(refused
        .iter()
        .any(|r| r["peer"]["user"] == APPROVER2 && r["approval"]["action"] == "approve"));
    let ev = events(&records_of(&broker, id2));
    assert!(ev.contains(&"request_reject".to_owned()), "{ev:?}");
    assert!(events(&records_of(&broker, id)).contains(&"request_cancel".to_owned()));
    verify_chain(&broker);
}

#[test]
fn changed_data_rolls_back_and_marks_the_request_drifted() {
    let (broker, _dir) = start(None, "");
    let t = table("(1, 'a', 0), (2, 'b', 0)");
    let r = submit(
        REQUESTER,
        &broker,
        &[
            &format!("UPDATE {t} SET n = n + 1 WHERE note < %s"),
            &format!("DELETE FROM {t} WHERE id = 2"),
        ],
        &["c"],
    );
    let id = r["id"].as_str().unwrap();
    assert_eq!(r["statements"][0]["dry_run_rows"], 2);
    assert_eq!(r["statements"][1]["dry_run_rows"], 1);

    // Someone changes the data between the request and its approval.
    psql(&format!("INSERT INTO {t} VALUES (3, 'b2', 0)"));

    let ran = pg(APPROVER, &broker, &["approve", id]);
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(ran.stdout.contains("DIFFERS"), "{ran:?}");
    assert!(ran.stderr.contains("drifted"), "{ran:?}");
    // Rolled back: the statement that still matched is undone too.
    assert_eq!(
        psql(&format!(
            "SELECT string_agg(n::text, ',' ORDER BY id) FROM {t}"
        )),
        "0,0,0"
    );
    let r = show(REQUESTER, &broker, id);
    assert_eq!(r["state"], "drifted");
    assert_eq!(r["statements"][0]["rows"], 3);
    assert_eq!(r["statements"][1]["rows"], 1);
    assert_eq!(pg(APPROVER, &broker, &["approve", id]).code, 2);

    let execute = records_of(&broker, id)
        .into_iter()
        .find(|r| r["event"] == "request_execute")
        .expect("request_execute");
    assert_eq!(execute["outcome"]["code"], "drifted");
    assert_eq!(execute["approval"]["drift"][0]["statement"], 1);
    assert_eq!(execute["approval"]["drift"][0]["dry_run_rows"], 2);
    assert_eq!(execute["approval"]["drift"][0]["rows"], 3);

    // A statement that fails at approval (the row it inserts exists now)
    // drifts the same way, with the database's error.
    let r = submit(
        REQUESTER,
        &broker,
        &[&format!("INSERT INTO {t} VALUES (4, 'd', 0)")],
        &[],
    );
    let id = r["id"].as_str().unwrap();
    psql(&format!("INSERT INTO {t} VALUES (4, 'someone else', 0)"));
    let ran = pg(APPROVER, &broker, &["approve", id, "--json"]);
    assert_eq!(ran.code, 1, "{ran:?}");
    let r = json_of(&ran);
    assert_eq!(r["state"], "drifted");
    assert_eq!(r["error"]["sqlstate"], "23505", "{r}");
    assert_eq!(
        psql(&format!("SELECT note FROM {t} WHERE id = 4")),
        "someone else"
    );
}

#[test]
fn two_approvers_at_once_execute_a_request_once() {
    let policy = policy().replace(
        &format!(
            "users = [\"{APPROVER2}\"]\ndbs = [\"bridge\", \"czechidm\"]\ndb_users = [\"bridge\"]"
        ),
        &format!("users = [\"{APPROVER2}\"]\ndbs = [\"czechidm\"]\ndb_users = [\"czechidm\"]"),
    );
    assert!(policy.contains("db_users = [\"czechidm\"]\nmode = \"read\"\napprove = true"));
    let (broker, _dir) = start(Some(policy), "");
    let t = table("(1, 'a', 0)");
    for round in 0..3 {
        let r = submit(
            REQUESTER,
            &broker,
            &[&format!("UPDATE {t} SET n = n + 1")],
            &[],
        );
        let id = r["id"].as_str().unwrap();
        let mut a = iam_pg(APPROVER, &broker);
        a.args(["approve", id, "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut b = iam_pg(APPROVER2, &broker);
        b.args(["approve", id, "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let (a, b) = (a.spawn().expect("approver"), b.spawn().expect("approver2"));
        let outputs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
        let codes: Vec<i32> = outputs
            .iter()
            .map(|o| o.status.code().unwrap_or(-1))
            .collect();
        let text: Vec<String> = outputs
            .iter()
            .map(|o| {
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                )
            })
            .collect();
        assert_eq!(
            codes.iter().filter(|c| **c == 0).count(),
            1,
            "round {round}: {codes:?} {text:?}"
        );
        assert!(codes.contains(&2), "round {round}: {codes:?} {text:?}");
        assert!(text.iter().any(|t| t.contains("not pending")), "{text:?}");
        assert_eq!(
            psql(&format!("SELECT n FROM {t}")),
            (round + 1).to_string(),
            "round {round}"
        );
        let ev = events(&records_of(&broker, id));
        assert_eq!(
            ev.iter().filter(|e| *e == "request_execute").count(),
            1,
            "{ev:?}"
        );
        assert_eq!(
            ev.iter().filter(|e| *e == "request_approve").count(),
            1,
            "{ev:?}"
        );
    }
}

#[test]
fn an_expired_request_cannot_be_approved() {
    // 0.0005 h = 1.8 s.
    let (broker, _dir) = start(None, "expiry_hours = 0.0005");
    let t = table("(1, 'a', 0)");
    let r = submit(REQUESTER, &broker, &[&format!("UPDATE {t} SET n = 1")], &[]);
    let id = r["id"].as_str().unwrap();
    assert_eq!(r["state"], "pending");
    std::thread::sleep(Duration::from_millis(2500));
    let ran = pg(APPROVER, &broker, &["approve", id]);
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(ran.stderr.contains("expired"), "{ran:?}");
    assert_eq!(psql(&format!("SELECT n FROM {t}")), "0");
    assert_eq!(show(REQUESTER, &broker, id)["state"], "expired");
    let ev = events(&records_of(&broker, id));
    assert_eq!(
        ev.iter().filter(|e| *e == "request_expire").count(),
        1,
        "{ev:?}"
    );
    assert!(!ev.contains(&"request_approve".to_owned()), "{ev:?}");
}

#[test]
fn pending_requests_survive_a_restart_and_a_reload() {
    let (mut broker, dir) = start(None, "");
    let t = table("(1, 'a', 0)");
    let r = submit(REQUESTER, &broker, &[&format!("UPDATE {t} SET n = 5")], &[]);
    let id = r["id"].as_str().unwrap().to_owned();

    // A reload keeps it.
    broker.signal(libc::SIGHUP);
    assert!(eventually(Duration::from_secs(10), || broker
        .log()
        .contains("configuration reloaded")));
    assert_eq!(show(APPROVER, &broker, &id)["state"], "pending");

    // Stop the broker; start it again on the same configuration (same
    // socket, request folder and key).
    broker.signal(libc::SIGTERM);
    assert!(
        broker.wait_exit(Duration::from_secs(15)).is_some(),
        "broker did not stop"
    );
    let _again = restart(&broker);
    assert!(dir.join(format!("{id}.json")).exists());
    let list = json_of(&pg(APPROVER, &broker, &["requests", "--json"]));
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == id.as_str()),
        "{list}"
    );
    let ran = pg(APPROVER, &broker, &["approve", &id, "--json"]);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(json_of(&ran)["state"], "executed");
    assert_eq!(psql(&format!("SELECT n FROM {t}")), "5");
    verify_chain(&broker);
}

#[test]
fn a_request_file_changed_outside_the_broker_is_refused() {
    let (broker, dir) = start(None, "");
    let t = table("(1, 'a', 0)");
    let r = submit(
        REQUESTER,
        &broker,
        &[&format!("UPDATE {t} SET note = 'fixed' WHERE id = 1")],
        &[],
    );
    let id = r["id"].as_str().unwrap();
    let path = dir.join(format!("{id}.json"));
    let original = std::fs::read_to_string(&path).expect("request file");
    // Someone with access to the folder widens the change.
    let edited = original.replace("WHERE id = 1", "WHERE id > 0");
    assert_ne!(edited, original);
    std::fs::write(&path, &edited).unwrap();

    for args in [vec!["approve", id], vec!["request", "show", id]] {
        let ran = pg(APPROVER, &broker, &args);
        assert_eq!(ran.code, 1, "{args:?}: {ran:?}");
        assert!(
            ran.stderr.contains("refused") && ran.stderr.contains("changed outside the broker"),
            "{ran:?}"
        );
    }
    let list = pg(APPROVER, &broker, &["requests"]);
    assert_eq!(list.code, 0, "{list:?}");
    assert!(
        list.stderr.contains(&format!("request {id} was refused")),
        "{list:?}"
    );
    assert_eq!(psql(&format!("SELECT note FROM {t}")), "a");
    assert!(
        broker.log().contains("REFUSED a change request file"),
        "{}",
        broker.log()
    );
    let refused = records_of(&broker, id)
        .into_iter()
        .filter(|r| r["event"] == "request_refused")
        .count();
    assert!(refused >= 3, "{refused}");
    assert!(!events(&records_of(&broker, id)).contains(&"request_approve".to_owned()));

    // A forged file (a copy of a real one under a new id) is refused too.
    std::fs::write(&path, &original).unwrap();
    let forged = "0123456789abcdef";
    std::fs::write(dir.join(format!("{forged}.json")), &original).unwrap();
    let ran = pg(APPROVER, &broker, &["approve", forged]);
    assert_eq!(ran.code, 1, "{ran:?}");
    // The genuine file, restored, is whole again.
    let ran = pg(APPROVER, &broker, &["approve", id, "--json"]);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(psql(&format!("SELECT note FROM {t}")), "fixed");
}

#[test]
fn the_guard_refuses_in_a_request_what_it_refuses_in_a_write_session() {
    let (broker, dir) = start(None, "");
    let t = table("(1, 'a', 0)");
    for sql in [
        "COPY (SELECT 1) TO PROGRAM 'touch /tmp/iam-approval-pwned'".to_owned(),
        "SET ROLE postgres".to_owned(),
        format!("DROP TABLE {t}"),
        "SELECT pg_read_file('/etc/passwd')".to_owned(),
    ] {
        let write = pg(
            "iam-demo-writer",
            &broker,
            &["-U", "czechidm", "--write", "-c", &sql],
        );
        assert_eq!(write.code, 1, "write session: {sql}: {write:?}");
        // The guard's own words, the same in both (a request names the
        // statement when it has several).
        // iam-pg prints the refusal as psql prints an error, with the
        // broker's code after it: `ERROR:  why [forbidden_statement]`.
        let why = write
            .stderr
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("ERROR:  "))
            .map(|l| l.rsplit_once(" [").map_or(l, |(why, _)| why))
            .unwrap_or_else(|| panic!("{sql}: {write:?}"))
            .to_owned();
        let ran = pg(
            REQUESTER,
            &broker,
            &["request", "-U", "czechidm", "--reason", "x", "-c", &sql],
        );
        assert_eq!(ran.code, 1, "request: {sql}: {ran:?}");
        assert!(ran.stderr.contains(&why), "{sql}: {why}: {ran:?}");
    }
    // Transaction control: iam-pg maps a typed COMMIT onto the broker's
    // own (psql's behaviour, issue 16), but a change request carries only
    // its statements, and one that tries to end its transaction is refused.
    for sql in ["COMMIT".to_owned(), format!("UPDATE {t} SET n = 1; COMMIT")] {
        let ran = pg(
            REQUESTER,
            &broker,
            &["request", "-U", "czechidm", "--reason", "x", "-c", &sql],
        );
        assert_eq!(ran.code, 1, "request: {sql}: {ran:?}");
        assert!(ran.stderr.contains("COMMIT"), "request: {sql}: {ran:?}");
    }
    // A dry run that fails is not stored either.
    let ran = pg(
        REQUESTER,
        &broker,
        &[
            "request",
            "-U",
            "czechidm",
            "--reason",
            "x",
            "-c",
            &format!("INSERT INTO {t} VALUES (1, 'dup', 0)"),
        ],
    );
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(ran.stderr.contains("23505"), "{ran:?}");
    assert!(store_is_empty(&dir), "nothing was stored");
    assert_eq!(psql(&format!("SELECT count(*) FROM {t} WHERE n = 0")), "1");
    let refused = broker
        .audit_records()
        .into_iter()
        .filter(|r| r["event"] == "statement_refused" && r["peer"]["user"] == REQUESTER)
        .count();
    assert_eq!(refused, 6);
    let dry = broker
        .audit_records()
        .into_iter()
        .find(|r| r["event"] == "request_dry_run")
        .expect("request_dry_run");
    assert_eq!(dry["outcome"]["ok"], false);
    assert_eq!(dry["approval"]["stored"], false);
}

fn store_is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|entries| entries.count() == 0)
        .unwrap_or(true)
}

/// Whether `text` holds a character a terminal would act on (a line feed
/// ends a line and is fine).
fn drives_a_terminal(text: &str) -> bool {
    text.chars()
        .any(|c| c != '\n' && iam_pgbroker_proto::display::is_unsafe(c))
}

/// The requester's text — statement, parameter, reason — reaches the
/// approver's screen, the auditor's and the administrator's log with
/// every control character shown escaped, so it cannot redraw what they
/// see (the attack: a CR and an erase-line that make a statement look like
/// another).
#[test]
fn a_requesters_text_never_drives_another_persons_terminal() {
    let (broker, _dir) = start(None, "");
    let t = table("(1, 'a', 0)");
    let sql = format!(
        "UPDATE {t} SET n = n + 1 WHERE note = %s /*\r  1. UPDATE {t} SET n = 0\x1b[K -- harmless */"
    );
    let ran = pg(
        REQUESTER,
        &broker,
        &[
            "request",
            "-U",
            "czechidm",
            "--reason",
            "INC-1\r\x1b[2J\u{202e}looks fine",
            "--json",
            "-c",
            &sql,
            "-p",
            "a\x1b[1A",
        ],
    );
    assert_eq!(ran.code, 0, "submit: {ran:?}");
    let request = json_of(&ran);
    // --json stays the raw text.
    assert_eq!(request["statements"][0]["sql"], sql.as_str());
    let id = request["id"].as_str().unwrap_or_default().to_owned();
    for view in [vec!["request", "show", id.as_str()], vec!["requests"]] {
        let ran = pg(APPROVER, &broker, &view);
        assert!(
            !drives_a_terminal(&ran.stdout) && !drives_a_terminal(&ran.stderr),
            "{view:?}: {ran:?}"
        );
        assert!(
            ran.stdout.contains("\\x1b["),
            "{view:?} shows the escape: {ran:?}"
        );
    }
    let shown = pg(APPROVER, &broker, &["request", "show", &id]);
    assert!(shown.stdout.contains("statements (1;"), "{shown:?}");
    assert!(shown.stdout.contains("$1 = 'a\\x1b[1A'"), "{shown:?}");
    assert!(
        shown
            .stdout
            .contains("reason     INC-1\\r\\x1b[2J\\u{202e}looks fine"),
        "{shown:?}"
    );
    // The approval's answer, and the audit and the log afterwards.
    let approved = pg(APPROVER, &broker, &["approve", &id]);
    assert!(
        !drives_a_terminal(&approved.stdout) && !drives_a_terminal(&approved.stderr),
        "{approved:?}"
    );
    let audit = run(Command::new(workspace_bin("iam-pgbroker"))
        .args(["audit", "show"])
        .arg(broker.dir.join("audit.jsonl")));
    assert_eq!(audit.code, 0, "{audit:?}");
    assert!(audit.stdout.contains("\\x1b[K"), "{audit:?}");
    assert!(!drives_a_terminal(&audit.stdout), "{audit:?}");
    // A session's reason is in the broker's log line for it.
    let opened = run(iam_pg(REQUESTER, &broker).args([
        "-U",
        "czechidm",
        "--reason",
        "ticket\r\x1b]0;owned\x07",
        "-c",
        "SELECT 1",
    ]));
    assert_eq!(opened.code, 0, "{opened:?}");
    let log = broker.log();
    assert!(
        log.contains("ticket\\r") && log.contains("]0;owned"),
        "{log}"
    );
    assert!(!drives_a_terminal(&log), "the broker's log: {log:?}");
}

/// What the approver sees is what runs: a statement that picks its rows or
/// values by something that differs between the dry run and the execution
/// ends `drifted` with nothing changed; one that picks them by something
/// the same in both (the session's name, user, client address — the dry
/// run and the execution share them) shows the approver the rows it really
/// changes, before and after.
#[test]
fn what_the_approver_sees_is_what_is_committed() {
    let (broker, _dir) = start(None, "");
    let t = Appliance::get().scratch_table(
        "apprc",
        "id int primary key, note text, n int, at timestamp",
        "(1, 'oriha', 0, NULL), (2, 'admin', 0, NULL)",
    );
    let state = || {
        psql(&format!("SELECT string_agg(id || ':' || note || ':' || n || ':' || (at IS NOT NULL), ',' ORDER BY id) FROM {t}"))
    };
    let approve = |sql: &str, params: &[&str]| -> (Value, Value, Ran) {
        let submitted = submit(REQUESTER, &broker, &[sql], params);
        let id = submitted["id"].as_str().unwrap_or_default().to_owned();
        let shown = pg(APPROVER, &broker, &["request", "show", &id]);
        assert_eq!(shown.code, 0, "{shown:?}");
        let ran = pg(APPROVER, &broker, &["approve", &id, "--json"]);
        (submitted, json_of(&ran), shown)
    };

    // The attack of issue 14: the row depends on the session's name. Both
    // runs carry the request's name, so the dry run already changes the
    // admin row — and the approver sees that before approving.
    let before = state();
    let (submitted, done, shown) = approve(
        &format!(
            "UPDATE {t} SET n = n + 1 WHERE note = CASE WHEN current_setting('application_name') \
             LIKE '%%iam-demo-requester%%' THEN %s ELSE 'admin' END /*\r  1. UPDATE … WHERE note = %s\x1b[K */"
        ),
        &["oriha"],
    );
    let changes = &submitted["statements"][0]["changes"];
    assert_eq!(changes["count"], 1, "{submitted}");
    assert_eq!(changes["key"], serde_json::json!(["id"]));
    assert_eq!(changes["rows"][0]["before"]["note"], "admin", "{changes}");
    assert_eq!(changes["rows"][0]["after"]["n"], 1, "{changes}");
    assert!(shown.stdout.contains("~ id=2  n: 0 → 1"), "{shown:?}");
    assert_eq!(done["state"], "executed", "{done}");
    assert_ne!(state(), before);
    assert!(
        state().starts_with("1:oriha:0:false,2:admin:1:"),
        "{}",
        state()
    );

    // The same user and client address in both runs: shown as they are.
    for sql in [
        format!("UPDATE {t} SET note = note || '-' || current_user || '-' || session_user WHERE id = 1"),
        format!("UPDATE {t} SET note = split_part(note, '-', 1) || '-' || coalesce(host(inet_client_addr()), 'local') WHERE id = 1"),
    ] {
        let (submitted, done, _) = approve(&sql, &[]);
        assert_eq!(done["state"], "executed", "{sql}: {done}");
        assert_eq!(
            done["statements"][0]["changes"]["rows"][0]["after"]["note"],
            submitted["statements"][0]["changes"]["rows"][0]["after"]["note"]
        );
    }

    // The transaction's own time compares equal: SET at = now() runs.
    let (submitted, done, shown) = approve(&format!("UPDATE {t} SET at = now() WHERE id = 2"), &[]);
    assert_eq!(done["state"], "executed", "{done}");
    assert_eq!(
        submitted["statements"][0]["changes"]["rows"][0]["after"]["at"],
        "now()"
    );
    assert!(shown.stdout.contains("at: NULL → now()"), "{shown:?}");

    // What differs between the runs drifts, and nothing is changed.
    for sql in [
        format!("UPDATE {t} SET n = pg_backend_pid() WHERE id = 1"),
        format!("UPDATE {t} SET note = now()::text WHERE id = 1"),
        format!("UPDATE {t} SET at = clock_timestamp() WHERE id = 1"),
        format!("UPDATE {t} SET n = n + 1 WHERE id = CASE WHEN random() < 2 THEN (SELECT max(id) FROM {t}) END"),
    ] {
        let before = state();
        let mut submitted = submit(REQUESTER, &broker, &[&sql], &[]);
        let id = submitted["id"].as_str().unwrap_or_default().to_owned();
        if sql.contains("max(id)") {
            // The data changes under it: another row is now the last.
            psql(&format!("INSERT INTO {t} VALUES (3, 'nový', 0, NULL)"));
            submitted["statements"][0]["changes"]["rows"][0]["before"]["id"] = 2.into();
        }
        let ran = pg(APPROVER, &broker, &["approve", &id]);
        assert_eq!(ran.code, 1, "{sql}: {ran:?}");
        assert!(ran.stdout.contains("DIFFERS"), "{sql}: {ran:?}");
        assert!(ran.stderr.contains("other rows, other values"), "{sql}: {ran:?}");
        let r = show(REQUESTER, &broker, &id);
        assert_eq!(r["state"], "drifted", "{sql}: {r}");
        let expected = if sql.contains("max(id)") {
            format!("{before},3:nový:0:false")
        } else {
            before
        };
        assert_eq!(state(), expected, "{sql}: nothing may change");
    }
    verify_chain(&broker);
}

/// A request cannot stall every reader of a table from its dry run on.
#[test]
fn a_request_may_not_take_a_lock_that_blocks_readers() {
    let (broker, _dir) = start(None, "");
    let t = table("(1, 'a', 0)");
    let update = format!("UPDATE {t} SET n = 1");
    for lock in [
        "LOCK TABLE {t} IN ACCESS EXCLUSIVE MODE",
        "LOCK {t}",
        "LOCK {t} IN EXCLUSIVE MODE",
    ] {
        let sql = lock.replace("{t}", &t);
        let ran = request(REQUESTER, &broker, &[&sql, &update]);
        assert_ne!(ran.code, 0, "{sql}: {ran:?}");
        assert!(ran.stderr.contains("blocks every reader"), "{sql}: {ran:?}");
    }
    let ran = request(
        REQUESTER,
        &broker,
        &[&format!("LOCK {t} IN ROW EXCLUSIVE MODE"), &update],
    );
    assert_eq!(ran.code, 0, "{ran:?}");
}

/// `iam-pg request -U czechidm --reason x -c SQL…` as `user`, the answer as
/// it is (refusals included).
fn request(user: &str, broker: &BrokerProcess, sql: &[&str]) -> Ran {
    let mut args = vec!["request", "-U", "czechidm", "--reason", "x"];
    for s in sql {
        args.extend(["-c", s]);
    }
    pg(user, broker, &args)
}

/// Starts `broker`'s configuration again (same socket, request folder and
/// key) after it stopped, and waits until it listens.
fn restart(broker: &BrokerProcess) -> KillOnDrop {
    let log = std::fs::OpenOptions::new()
        .append(true)
        .open(broker.dir.join("broker.log"))
        .expect("log");
    let again = KillOnDrop(
        Command::new(workspace_bin("iam-pgbroker"))
            .args(["serve", "--config"])
            .arg(broker.dir.join("config.toml"))
            .env("IAM_PGBROKER_LOG", "debug")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("restart iam-pgbroker"),
    );
    assert!(
        eventually(Duration::from_secs(20), || {
            std::os::unix::net::UnixStream::connect(&broker.socket).is_ok()
        }),
        "restarted broker did not listen:\n{}",
        broker.log()
    );
    again
}

/// Pending requests are bounded per person, in number and in bytes; ended
/// ones are removed after their retention, with a record in the audit.
#[test]
fn requests_are_bounded_per_person_and_ended_ones_go_after_their_retention() {
    let (broker, dir) = start(
        None,
        "max_pending_per_user = 2\nmax_pending_bytes_per_user = 4096\nretention_days = 0.00002",
    );
    let t = table("(1, 'a', 0)");
    let update = format!("UPDATE {t} SET n = n + 1");
    let first = submit(REQUESTER, &broker, &[&update], &[]);
    let second = submit(REQUESTER, &broker, &[&update], &[]);
    let third = request(REQUESTER, &broker, &[&update]);
    assert_ne!(third.code, 0, "{third:?}");
    assert!(third.stderr.contains("max_pending_per_user"), "{third:?}");
    // Another person's share is their own.
    let other = submit(APPROVER, &broker, &[&update], &[]);
    assert_eq!(other["state"], "pending");
    // Withdrawn, the share is free again — but not for a request too big.
    let first_id = first["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(pg(REQUESTER, &broker, &["cancel", &first_id]).code, 0);
    let big = format!("{update} /* {} */", "x".repeat(5000));
    let ran = request(REQUESTER, &broker, &[&big]);
    assert_ne!(ran.code, 0, "{ran:?}");
    assert!(ran.stderr.contains("max_pending_bytes_per_user"), "{ran:?}");
    submit(REQUESTER, &broker, &[&update], &[]);
    let refused = broker
        .audit_records()
        .into_iter()
        .filter(|r| r["event"] == "request_refused" && r["outcome"]["code"] == "limit")
        .count();
    assert_eq!(refused, 2, "each refusal is in the audit");

    // The metrics count requests by state.
    let metrics = run(Command::new(workspace_bin("iam-pgbroker"))
        .args(["metrics", "--socket"])
        .arg(&broker.socket));
    assert!(
        metrics
            .stdout
            .contains("iam_pgbroker_approval_requests{state=\"pending\"} 3"),
        "{metrics:?}"
    );
    // The cancelled request goes after its retention (1.7 s); the pending
    // ones stay.
    std::thread::sleep(Duration::from_secs(3));
    let all = json_of(&pg(REQUESTER, &broker, &["requests", "--all", "--json"]));
    let ids: Vec<&str> = all
        .as_array()
        .map(|a| a.iter().filter_map(|r| r["id"].as_str()).collect())
        .unwrap_or_default();
    assert!(!ids.contains(&first_id.as_str()), "{all}");
    assert!(ids.contains(&second["id"].as_str().unwrap_or("?")), "{all}");
    assert!(!dir.join(format!("{first_id}.json")).exists());
    assert!(broker
        .audit_records()
        .iter()
        .any(|r| r["event"] == "request_remove" && r["session"] == first_id.as_str()));
    verify_chain(&broker);
}

/// The broker dies while an approved request runs. At the next start the
/// request is settled by PostgreSQL's own record of its transaction:
/// committed after all (the backend finished the COMMIT it was waiting
/// in), rolled back, or never sent to COMMIT.
#[test]
fn an_interrupted_execution_is_settled_by_postgresql() {
    let app = Appliance::get();
    let parent = app.scratch_table("apprp", "id int primary key", "(1)");
    let child = app.scratch_table(
        "apprk",
        &format!(
            "id int primary key, pid int REFERENCES {parent} DEFERRABLE INITIALLY DEFERRED, n int"
        ),
        "(1, 1, 0)",
    );
    for (case, locker, statement) in [
        // The deferred foreign key waits at COMMIT for the parent row.
        (
            "committed",
            format!("BEGIN; SELECT * FROM {parent} WHERE id = 1 FOR UPDATE; SELECT pg_sleep(4); COMMIT;"),
            format!("INSERT INTO {child} VALUES (10, 1, 0)"),
        ),
        (
            "rolled back",
            format!("BEGIN; SELECT * FROM {parent} WHERE id = 1 FOR UPDATE; SELECT pg_sleep(4); \
                     DELETE FROM {child} WHERE pid = 1; DELETE FROM {parent} WHERE id = 1; COMMIT;"),
            format!("INSERT INTO {child} VALUES (20, 1, 0)"),
        ),
        // The statement itself waits: the broker dies before its COMMIT.
        (
            "never committed",
            format!("BEGIN; SELECT * FROM {child} WHERE id = 1 FOR UPDATE; SELECT pg_sleep(4); COMMIT;"),
            format!("UPDATE {child} SET n = 30 WHERE id = 1"),
        ),
    ] {
        psql(&format!("INSERT INTO {parent} VALUES (1) ON CONFLICT DO NOTHING; INSERT INTO {child} VALUES (1, 1, 0) ON CONFLICT DO NOTHING"));
        let (mut broker, _dir) = start(None, "lock_timeout_ms = 0");
        let r = submit(REQUESTER, &broker, &[&statement], &[]);
        let id = r["id"].as_str().unwrap_or_default().to_owned();
        let mut held = KillOnDrop(
            Command::new("docker")
                .args(["exec", "-i", "-u", "postgres", &app.container("czechidm")])
                .args(["psql", "-X", "-q", "-d", "czechidm", "-c", &locker])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .expect("locker"),
        );
        assert!(eventually(Duration::from_secs(10), || psql(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) \
             WHERE a.query LIKE '%pg_sleep(4)%' AND l.locktype = 'transactionid' AND l.granted"
        ) != "0"));
        let _approving = KillOnDrop(
            iam_pg(APPROVER, &broker)
                .args(["approve", &id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("approve"),
        );
        let waiting = format!(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgbroker request {id}' \
             AND wait_event_type = 'Lock'"
        );
        assert!(
            eventually(Duration::from_secs(10), || psql(&waiting) == "1"),
            "{case}: the execution does not wait"
        );
        broker.signal(libc::SIGKILL);
        assert!(broker.wait_exit(Duration::from_secs(10)).is_some());
        let _ = held.0.wait();
        let gone = format!(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgbroker request {id}'"
        );
        assert!(eventually(Duration::from_secs(20), || psql(&gone) == "0"), "{case}");

        let _again = restart(&broker);
        // Settled at the start, before anyone asks.
        let recorded = || {
            broker
                .audit_records()
                .iter()
                .any(|r| r["event"] == "request_recover" && r["session"] == id.as_str())
        };
        assert!(
            eventually(Duration::from_secs(15), recorded),
            "{case}: not settled at start:\n{}",
            broker.log()
        );
        let settled = show(REQUESTER, &broker, &id);
        let recovered = broker
            .audit_records()
            .into_iter()
            .find(|r| r["event"] == "request_recover" && r["session"] == id.as_str());
        match case {
            "committed" => {
                assert_eq!(settled["state"], "executed", "{settled}");
                assert_eq!(psql(&format!("SELECT count(*) FROM {child} WHERE id = 10")), "1");
                assert_eq!(recovered.map(|r| r["outcome"]["ok"].clone()), Some(true.into()));
            }
            "rolled back" => {
                assert_eq!(settled["state"], "failed", "{settled}");
                assert!(settled["error"]["message"].as_str().unwrap_or("").contains("rolled its transaction"), "{settled}");
                assert_eq!(psql(&format!("SELECT count(*) FROM {child} WHERE id = 20")), "0");
                assert!(recovered.is_some());
            }
            _ => {
                assert_eq!(settled["state"], "failed", "{settled}");
                assert!(settled["error"]["message"].as_str().unwrap_or("").contains("before its COMMIT"), "{settled}");
                assert_eq!(psql(&format!("SELECT n FROM {child} WHERE id = 1")), "0");
                assert!(recovered.is_some());
            }
        }
        verify_chain(&broker);
    }
}
