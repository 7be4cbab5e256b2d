//! `iam-pgbroker sessions`, `cancel` and `terminate`: who holds which
//! session doing what, and a way to end one — for root and the admin
//! group, `cancel` also for the session's own OS user; each audited.

use iam_pgbroker_tests::*;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

fn broker_cmd(broker: &BrokerProcess, user: Option<&str>, args: &[&str]) -> Ran {
    let bin = workspace_bin("iam-pgbroker");
    let mut cmd = match user {
        Some(u) => as_user(u, &bin),
        None => Command::new(bin),
    };
    cmd.args(args).arg("--socket").arg(&broker.socket);
    run(&mut cmd)
}

fn sessions(broker: &BrokerProcess) -> Vec<Value> {
    let ran = broker_cmd(broker, None, &["sessions", "--json"]);
    assert_eq!(ran.code, 0, "{ran:?}");
    serde_json::from_str::<Vec<Value>>(ran.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {ran:?}"))
}

/// The session of `user` whose state is `state`, once it shows.
fn session_of(broker: &BrokerProcess, user: &str, state: &str) -> Value {
    let mut found = Value::Null;
    let shown = eventually(Duration::from_secs(15), || {
        found = sessions(broker)
            .into_iter()
            .find(|s| s["user"] == user && s["state"] == state)
            .unwrap_or(Value::Null);
        !found.is_null()
    });
    assert!(
        shown,
        "no {state} session of {user}: {:?}",
        sessions(broker)
    );
    found
}

#[test]
fn an_administrator_sees_cancels_and_ends_sessions() {
    let broker = BrokerProcess::start();
    // A long statement (a few seconds of counting), as READER.
    let mut long = Spawned::new(
        it_client(READER, &broker)
            .args(["q:SELECT count(*) AS n FROM generate_series(1, 400000000)"]),
    );
    let active = session_of(&broker, READER, "active");
    let id = active["session"].as_str().unwrap_or_default().to_owned();
    assert!(active["statement"]
        .as_str()
        .unwrap_or("")
        .contains("generate_series"));
    assert!(
        active["backend_pid"].as_i64().is_some_and(|p| p > 0),
        "{active}"
    );
    assert_eq!(active["mode"], "read");
    assert!(
        active["process"]
            .as_str()
            .unwrap_or("")
            .starts_with("it-client"),
        "{active}"
    );
    // The backend pid is the one PostgreSQL shows.
    let pid = active["backend_pid"].to_string();
    assert_eq!(
        Appliance::get().psql(
            "czechidm",
            &format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}")
        ),
        "1"
    );

    // Someone else may neither list nor cancel it.
    let denied = broker_cmd(&broker, Some(OPERATOR), &["sessions"]);
    assert_ne!(denied.code, 0, "{denied:?}");
    let denied = broker_cmd(&broker, Some(OPERATOR), &["cancel", &id]);
    assert_ne!(denied.code, 0, "{denied:?}");
    assert!(denied.stderr.contains("may not cancel"), "{denied:?}");
    // Its own OS user may: the statement ends with PostgreSQL's 57014.
    let own = broker_cmd(&broker, Some(READER), &["cancel", &id]);
    assert_eq!(own.code, 0, "{own:?}");
    let answer = long.wait_for("error");
    assert!(answer.contains("57014"), "{answer}");
    let _ = long.child.wait();

    // Root ends an idle-in-transaction write session: rolled back, closed.
    let t = Appliance::get().scratch_table("sess", "id int primary key, n int", "(1, 0)");
    let mut idle = Spawned::new(it_client(WRITER, &broker).args([
        "--user",
        "czechidm",
        "--write",
        &format!("x:UPDATE {t} SET n = 5"),
        "hang",
    ]));
    idle.wait_for("HANG");
    let waiting = session_of(&broker, WRITER, "idle in transaction");
    let wid = waiting["session"].as_str().unwrap_or_default().to_owned();
    assert!(
        waiting["transaction_age_ms"].as_u64().is_some(),
        "{waiting}"
    );
    let ended = broker_cmd(&broker, None, &["terminate", &wid]);
    assert_eq!(ended.code, 0, "{ended:?}");
    assert!(eventually(Duration::from_secs(10), || !sessions(&broker)
        .iter()
        .any(|s| s["session"] == wid.as_str())));
    assert_eq!(
        Appliance::get().psql("czechidm", &format!("SELECT n FROM {t}")),
        "0"
    );
    let _ = idle.child.kill();

    let records = broker.audit_records();
    let has = |event: &str, session: &str, ok: bool| {
        records
            .iter()
            .any(|r| r["event"] == event && r["session"] == session && r["outcome"]["ok"] == ok)
    };
    assert!(
        has("session_cancel", &id, false),
        "the refused cancel is recorded"
    );
    assert!(has("session_cancel", &id, true));
    assert!(has("session_terminate", &wid, true));
    assert!(records.iter().any(|r| r["event"] == "session_close"
        && r["session"] == wid.as_str()
        && r["why"] == "terminated"));
    // The text view escapes and lists.
    let text = broker_cmd(&broker, None, &["sessions"]);
    assert_eq!(text.code, 0, "{text:?}");
}

/// `iam-pg -d <TAB>` completes the instances the user's rules name (the
/// running ones for a rule's "*"), asked from the broker.
#[test]
fn iam_pg_completes_the_instances_a_user_may_open() {
    let broker = BrokerProcess::start();
    let list = |user: &str| {
        let ran = run(iam_pg(user, &broker).arg("--list-instances"));
        assert_eq!(ran.code, 0, "{ran:?}");
        ran.stdout.lines().map(str::to_owned).collect::<Vec<_>>()
    };
    assert_eq!(list(READER), ["bridge", "czechidm"]);
    assert_eq!(list(WRITER), ["czechidm"]);
    assert!(list(NOBODY).is_empty());
    let root = run(Command::new(workspace_bin("iam-pg"))
        .arg("--list-instances")
        .env("IAM_PGBROKER_SOCKET", &broker.socket));
    assert!(
        root.stdout.lines().any(|l| l == "czechidm") && root.stdout.lines().any(|l| l == "bridge"),
        "root's \"*\" lists the running instances: {root:?}"
    );

    // Through bash's own completion machinery, as READER.
    let bin_dir = workspace_bin("iam-pg")
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let script = "source <(iam-pg --generate-completions bash); \
                  COMP_WORDS=(iam-pg -d cz); COMP_CWORD=2; _iam_pg_with_instances; \
                  printf '%s\\n' \"${COMPREPLY[@]}\"";
    let ran = run(as_user(READER, std::path::Path::new("/bin/bash"))
        .args(["-c", script])
        .env("PATH", format!("{bin_dir}:/usr/bin:/bin"))
        .env("IAM_PGBROKER_SOCKET", &broker.socket));
    assert_eq!(ran.stdout.trim(), "czechidm", "{ran:?}");
}
