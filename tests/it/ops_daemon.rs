//! The daemon as systemd and an administrator see it: sd_notify, reload on
//! SIGHUP, check-config, explain and status.

use iam_pgbroker_tests::*;
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::Duration;

fn broker_cmd() -> Command {
    Command::new(workspace_bin("iam-pgbroker"))
}

/// Reads notifications until one contains `want`.
fn expect_notification(socket: &UnixDatagram, want: &str) -> String {
    let mut buf = [0u8; 4096];
    let mut seen = Vec::new();
    loop {
        match socket.recv(&mut buf) {
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if text.contains(want) {
                    return text;
                }
                seen.push(text);
            }
            Err(e) => panic!("no {want:?} notification ({e}); saw {seen:?}"),
        }
    }
}

#[test]
fn ready_status_reloading_and_stopping_reach_the_service_manager() {
    let dir = Appliance::get()
        .root
        .join("brokers")
        .join(unique_name("notify"));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("notify.sock");
    let listener = UnixDatagram::bind(&path).expect("bind notify socket");
    listener
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut broker = BrokerProcess::start_with(BrokerOptions {
        env: vec![("NOTIFY_SOCKET".into(), path.display().to_string())],
        ..Default::default()
    });
    let ready = expect_notification(&listener, "READY=1");
    assert!(ready.contains("STATUS=0 sessions open"), "{ready}");
    // READY came after the socket was bound: a client is answered now.
    let ran = run(iam_pg(READER, &broker).args(["-c", "SELECT 1"]));
    assert_eq!(ran.code, 0, "{ran:?}");
    let status = expect_notification(&listener, "STATUS=");
    assert!(status.contains("statements served"), "{status}");

    broker.signal(libc::SIGHUP);
    expect_notification(&listener, "RELOADING=1");
    expect_notification(&listener, "READY=1");

    broker.signal(libc::SIGTERM);
    let stopping = expect_notification(&listener, "STOPPING=1");
    assert!(stopping.contains("STATUS=stopping"), "{stopping}");
    assert!(broker
        .wait_exit(Duration::from_secs(15))
        .is_some_and(|s| s.success()));
}

#[test]
fn sighup_applies_a_good_policy_and_keeps_the_old_one_when_the_new_is_bad() {
    let broker = BrokerProcess::start();
    let config = broker.dir.join("config.toml");
    let original = std::fs::read_to_string(&config).expect("config");
    // A session opened now keeps what it was granted across reloads.
    let mut before = RawClient::connect(&broker);
    let f = before.call(serde_json::json!({"id": 1, "op": "open", "db": "bridge"}));
    assert_eq!(f[0]["type"], "opened", "{f:?}");

    assert_eq!(
        run(iam_pg(NOBODY, &broker).args(["-c", "SELECT 1"])).code,
        3
    );
    let dropin_dir = broker.dir.join("policy.d");
    std::fs::create_dir_all(&dropin_dir).expect("policy.d");
    std::fs::write(
        dropin_dir.join("50-nobody.toml"),
        format!("[[rule]]\nname = \"now-allowed\"\nusers = [\"{NOBODY}\"]\ndbs = [\"czechidm\"]\ndb_users = [\"postgres\"]\nmode = \"read\"\n"),
    )
    .expect("drop-in");
    // Remove root's rule too: the open session must not lose its grant.
    std::fs::write(
        &config,
        original.replace(
            "name = \"root\"\nuids = [0]",
            "name = \"root\"\nuids = [4242424]",
        ),
    )
    .expect("config");
    broker.signal(libc::SIGHUP);
    assert!(
        eventually(Duration::from_secs(10), || run(
            iam_pg(NOBODY, &broker).args(["-c", "SELECT 1"])
        )
        .code
            == 0),
        "the new rule took effect:\n{}",
        broker.log()
    );
    let f = before.call(serde_json::json!({"id": 2, "op": "query", "sql": "SELECT 1"}));
    assert_eq!(
        f.last().expect("done")["type"],
        "done",
        "the open session kept its grant: {f:?}"
    );

    // A broken file: refused, logged, and the running policy stays.
    std::fs::write(
        dropin_dir.join("60-broken.toml"),
        "[[rule]]\nname = \"broken\"\nusers = [\"x\"]\nmode = \"superuser\"\n",
    )
    .expect("broken drop-in");
    broker.signal(libc::SIGHUP);
    assert!(
        eventually(Duration::from_secs(10), || broker
            .log()
            .contains("reload refused")),
        "{}",
        broker.log()
    );
    assert!(
        broker.log().contains("60-broken.toml"),
        "the error names the file"
    );
    assert_eq!(
        run(iam_pg(NOBODY, &broker).args(["-c", "SELECT 1"])).code,
        0,
        "old policy still in force"
    );
}

#[test]
fn check_config_accepts_the_shipped_example_and_names_file_and_line_of_errors() {
    let example = repo_root().join("systemd/config.toml");
    let ran = run(broker_cmd()
        .args(["check-config", "--config"])
        .arg(&example));
    assert_eq!(ran.code, 0, "{ran:?}");
    for name in ["root", "reporting", "db-admins", "RULE", "WHO", "MODE"] {
        assert!(
            ran.stdout.contains(name),
            "{name} missing from:\n{}",
            ran.stdout
        );
    }
    // Every documented key, uncommented, is a key the broker accepts.
    let text = std::fs::read_to_string(&example).expect("example");
    let dir = std::env::temp_dir().join(unique_name("allkeys"));
    std::fs::create_dir_all(&dir).expect("dir");
    let uncommented: String = text
        .lines()
        .map(|l| {
            let t = l.trim_start();
            match t.strip_prefix('#') {
                Some(rest)
                    if rest.starts_with('[')
                        || (rest.contains(" = ") && !rest.starts_with(' ')) =>
                {
                    rest.to_owned()
                }
                _ => l.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let all = dir.join("config.toml");
    std::fs::write(&all, uncommented).expect("write");
    let ran = run(broker_cmd().args(["check-config", "--config"]).arg(&all));
    assert_eq!(ran.code, 0, "an example key the broker rejects: {ran:?}");

    let broken = dir.join("broken.toml");
    std::fs::write(
        &broken,
        "[server]\nsocket = \"/x\"\n\n[limits]\nmax_line_byte = 5\n",
    )
    .expect("write");
    let ran = run(broker_cmd().args(["check-config", "--config"]).arg(&broken));
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(
        ran.stderr.contains("broken.toml")
            && ran.stderr.contains("line 5")
            && ran.stderr.contains("max_line_byte"),
        "{ran:?}"
    );
}

#[test]
fn explain_says_who_may_do_what_and_by_which_rule() {
    let broker = BrokerProcess::start();
    let config = broker.dir.join("config.toml");
    let explain = |args: &[&str]| {
        run(broker_cmd()
            .arg("explain")
            .args(args)
            .arg("--config")
            .arg(&config))
    };
    let ran = explain(&["--user", READER, "--db", "bridge", "-U", "bridge"]);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(
        ran.stdout.starts_with("ALLOWED") && ran.stdout.contains("demo-reader"),
        "{ran:?}"
    );
    let ran = explain(&["--user", READER, "--write", "-U", "czechidm"]);
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(
        ran.stdout.contains("DENIED") && ran.stdout.contains("read only"),
        "{ran:?}"
    );
    let ran = explain(&["--user", OPERATOR]);
    assert!(
        ran.stdout.contains("demo-operators") && ran.stdout.contains("iam-demo-ops"),
        "group rules name the group: {ran:?}"
    );
    let ran = explain(&["--user", "no-such-user-here"]);
    assert_eq!(ran.code, 2, "{ran:?}");
}

#[test]
fn status_is_for_root_and_admins_only() {
    let broker = BrokerProcess::start();
    let mut session = RawClient::connect(&broker);
    session.call(serde_json::json!({"id": 1, "op": "open", "db": "bridge"}));
    let ran = run(broker_cmd()
        .args(["status", "--json", "--socket"])
        .arg(&broker.socket));
    assert_eq!(ran.code, 0, "{ran:?}");
    let status: serde_json::Value = serde_json::from_str(ran.stdout.trim()).expect("json");
    assert!(
        status["sessions_open"].as_u64().unwrap_or(0) >= 1,
        "{status}"
    );
    assert!(status["uptime_s"].is_u64());
    let ran = run(broker_cmd()
        .args(["status", "--socket"])
        .arg(&broker.socket));
    assert!(
        ran.stdout.contains("sessions:") && ran.stdout.contains("bridge"),
        "{ran:?}"
    );
    let ran = run(as_user(READER, &workspace_bin("iam-pgbroker"))
        .args(["status", "--socket"])
        .arg(&broker.socket));
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(ran.stderr.contains("root and members"), "{ran:?}");
}
