//! An administrator's safety nets (issue 18): drop-ins trusted only when
//! root alone can change them, check-config's warnings, explain by uid and
//! through the socket's group, and a broker that cannot start telling the
//! clients that wait on its socket why.

use iam_pgbroker_tests::*;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

fn broker_cmd() -> Command {
    Command::new(workspace_bin("iam-pgbroker"))
}

fn uid_of(user: &str) -> u32 {
    let out = Command::new("id").args(["-u", user]).output().expect("id");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("uid")
}

#[test]
fn a_drop_in_an_ordinary_user_could_change_is_refused_on_reload_and_by_check_config() {
    let broker = BrokerProcess::start();
    let config = broker.dir.join("config.toml");
    let dropin_dir = broker.dir.join("policy.d");
    std::fs::create_dir_all(&dropin_dir).expect("policy.d");
    // What the issue found: a world-writable file owned by an ordinary
    // user, granting that user access.
    let dropin = dropin_dir.join("50-mine.toml");
    std::fs::write(
        &dropin,
        format!("[[rule]]\nname = \"mine\"\nusers = [\"{NOBODY}\"]\ndbs = [\"czechidm\"]\ndb_users = [\"postgres\"]\nmode = \"read\"\n"),
    )
    .expect("drop-in");
    std::os::unix::fs::chown(&dropin, Some(uid_of(NOBODY)), None).expect("chown");
    std::fs::set_permissions(&dropin, std::fs::Permissions::from_mode(0o666)).expect("chmod");

    let ran = run(broker_cmd().args(["check-config", "--config"]).arg(&config));
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(
        ran.stderr.contains("50-mine.toml: refused")
            && ran
                .stderr
                .contains(&format!("owned by uid {}", uid_of(NOBODY))),
        "{ran:?}"
    );
    broker.signal(libc::SIGHUP);
    assert!(
        eventually(Duration::from_secs(10), || broker
            .log()
            .contains("reload refused")),
        "{}",
        broker.log()
    );
    assert_eq!(
        run(iam_pg(NOBODY, &broker).args(["-c", "SELECT 1"])).code,
        3,
        "the refused drop-in granted nothing"
    );

    // Root's file, but writable by everyone through a symlink's target.
    std::fs::remove_file(&dropin).expect("rm");
    let target = broker.dir.join("elsewhere.toml");
    std::fs::write(
        &target,
        format!("[[rule]]\nname = \"linked\"\nusers = [\"{NOBODY}\"]\ndbs = [\"czechidm\"]\ndb_users = [\"postgres\"]\nmode = \"read\"\n"),
    )
    .expect("target");
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o646)).expect("chmod");
    std::os::unix::fs::symlink(&target, dropin_dir.join("60-linked.toml")).expect("symlink");
    let ran = run(broker_cmd().args(["check-config", "--config"]).arg(&config));
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(
        ran.stderr.contains("target of the symlink") && ran.stderr.contains("everyone"),
        "{ran:?}"
    );
    // Fixed as the message says: accepted, and the rule applies.
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let ran = run(broker_cmd()
        .args(["check-config", "--quiet", "--config"])
        .arg(&config));
    assert_eq!((ran.code, ran.stdout.as_str()), (0, ""), "{ran:?}");
    broker.signal(libc::SIGHUP);
    assert!(
        eventually(Duration::from_secs(10), || run(
            iam_pg(NOBODY, &broker).args(["-c", "SELECT 1"])
        )
        .code
            == 0),
        "{}",
        broker.log()
    );
}

#[test]
fn check_config_warns_about_what_this_host_lacks_and_rules_that_never_apply() {
    let broker = BrokerProcess::start_with(BrokerOptions {
        policy: Some(format!(
            r#"{STANDARD_POLICY}
[[rule]]
name = "ghosts"
users = ["no-such-user-18"]
uids = [4123456]
groups = ["no-such-group-18"]
dbs = ["no-such-instance-18"]
db_users = ["postgres"]
mode = "read"

[[rule]]
name = "outsider"
users = ["nobody"]
dbs = ["czechidm"]
db_users = ["postgres"]
mode = "read"

[[rule]]
name = "reader-again"
users = ["{READER}"]
dbs = ["bridge"]
db_users = ["bridge"]
mode = "read"
"#
        )),
        ..Default::default()
    });
    let config = broker.dir.join("config.toml");
    let ran = run(broker_cmd().args(["check-config", "--config"]).arg(&config));
    // Warnings, not errors.
    assert_eq!(ran.code, 0, "{ran:?}");
    for want in [
        "no user \"no-such-user-18\" on this host",
        "no user with uid 4123456 on this host",
        "no group \"no-such-group-18\" on this host",
        "no container",
        "user \"nobody\" is not in group \"iam-pgbroker\"",
        "rule \"reader-again\"",
        "is never used: rule \"demo-reader\"",
    ] {
        assert!(
            ran.stderr.contains(want),
            "{want:?} missing: {}",
            ran.stderr
        );
    }
    assert!(
        ran.stderr
            .contains(&format!("{}-db", "no-such-instance-18")),
        "the instance's container is named: {}",
        ran.stderr
    );
    // Nothing to warn about in the standard policy's own rules.
    assert!(!ran.stderr.contains("rule \"root\""), "{}", ran.stderr);
}

#[test]
fn explain_takes_a_uid_and_knows_who_cannot_reach_the_socket() {
    let broker = BrokerProcess::start_with(BrokerOptions {
        policy: Some(format!(
            "{STANDARD_POLICY}\n[[rule]]\nname = \"outsider\"\nusers = [\"nobody\"]\ndbs = [\"*\"]\ndb_users = [\"*\"]\nmode = \"read\"\n"
        )),
        ..Default::default()
    });
    let config = broker.dir.join("config.toml");
    let explain = |user: &str| {
        run(broker_cmd()
            .args([
                "explain", "--user", user, "--db", "bridge", "-U", "bridge", "--config",
            ])
            .arg(&config))
    };
    let reader_uid = uid_of(READER).to_string();
    let ran = explain(&reader_uid);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(
        ran.stdout.contains("ALLOWED") && ran.stdout.contains(READER),
        "{ran:?}"
    );
    // A rule grants it, but the socket's group keeps them out: the
    // answer is what the user would get.
    let ran = explain("nobody");
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(
        ran.stdout.contains("DENIED")
            && ran.stdout.contains("cannot connect")
            && ran.stdout.contains("iam-pgbroker"),
        "{ran:?}"
    );
    let ran = run(Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(workspace_bin("iam-pg"))
        .args(["-d", "bridge", "-U", "bridge", "-c", "SELECT 1"])
        .env("IAM_PGBROKER_SOCKET", &broker.socket));
    assert_ne!(ran.code, 0, "explain told the truth: {ran:?}");
}

#[test]
fn a_broker_that_cannot_start_tells_the_waiting_client_and_exits_2() {
    let broker = BrokerProcess::start();
    let dir = broker.dir.clone();
    drop(broker);
    let config = dir.join("config.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    assert!(text.contains("[limits]\n"), "{text}");
    std::fs::write(
        &config,
        text.replace("[limits]\n", "[limits]\nmax_line_byte = 5\n"),
    )
    .expect("config");
    let socket = dir.join("activated.sock");
    let log = std::fs::File::create(dir.join("failed.log")).expect("log");
    // As iam-pgbroker.socket does: the socket exists first, the broker is
    // started by the first connection and handed the socket.
    let mut activate = KillOnDrop(
        Command::new("systemd-socket-activate")
            .arg("--listen")
            .arg(&socket)
            .arg(workspace_bin("iam-pgbroker"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("systemd-socket-activate"),
    );
    assert!(eventually(Duration::from_secs(10), || socket.exists()));
    let ran = run(Command::new(workspace_bin("iam-pg"))
        .args(["-c", "SELECT 1"])
        .env("IAM_PGBROKER_SOCKET", &socket));
    assert_eq!(ran.code, 4, "unavailable: {ran:?}");
    assert!(
        ran.stderr
            .contains("the broker cannot start (its configuration is invalid): see journalctl -u iam-pgbroker"),
        "{ran:?}"
    );
    // The reason stays in the log (the journal), not with the client.
    assert!(!ran.stderr.contains("max_line_byte"), "{ran:?}");
    let status = activate.0.wait().expect("wait");
    assert_eq!(status.code(), Some(2));
    let log = std::fs::read_to_string(dir.join("failed.log")).unwrap_or_default();
    assert!(
        log.contains("cannot start") && log.contains("max_line_byte") && log.contains("ERROR"),
        "{log}"
    );
}

#[test]
fn metrics_from_the_command_and_the_loopback_endpoint() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let broker = BrokerProcess::start_with(BrokerOptions {
        extra: format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
        ..Default::default()
    });
    assert_eq!(
        run(iam_pg(READER, &broker).args(["-d", "bridge", "-U", "bridge", "-c", "SELECT 1"])).code,
        0
    );
    assert_eq!(
        run(iam_pg(NOBODY, &broker).args(["-c", "SELECT 1"])).code,
        3
    );
    let ran = run(broker_cmd()
        .args(["metrics", "--socket"])
        .arg(&broker.socket));
    assert_eq!(ran.code, 0, "{ran:?}");
    for want in [
        "# TYPE iam_pgbroker_statements counter",
        "iam_pgbroker_errors_total{code=\"denied\"}",
        "iam_pgbroker_sessions_opened_total",
        // Refusals by reason, latency and the audit's writes and flushes.
        "iam_pgbroker_refusals_total{reason=\"denied\"} 1",
        "# TYPE iam_pgbroker_statement_duration_seconds histogram",
        "iam_pgbroker_statement_duration_seconds_count 1",
        "iam_pgbroker_statement_duration_seconds_bucket{le=\"+Inf\"} 1",
        "# TYPE iam_pgbroker_audit_written_bytes counter",
        "# TYPE iam_pgbroker_audit_fsync_duration_seconds histogram",
        "# TYPE iam_pgbroker_pool_connect_waits counter",
        "# EOF",
    ] {
        assert!(ran.stdout.contains(want), "{want} missing:\n{}", ran.stdout);
    }
    let bytes: u64 = ran
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("iam_pgbroker_audit_written_bytes_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(bytes > 100, "the audit wrote: {bytes}");
    // An open session shows by rule and state, and its connection in use.
    let mut open = Spawned::new(it_client(READER, &broker).args(["q:SELECT 1 AS v", "hang"]));
    open.wait_for("HANG");
    let ran = run(broker_cmd()
        .args(["metrics", "--socket"])
        .arg(&broker.socket));
    assert!(
        ran.stdout
            .contains("iam_pgbroker_sessions_by_rule{rule=\"reader\",state=\"idle\"} 1")
            || ran.stdout.contains("iam_pgbroker_sessions_by_rule{"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains(
            "iam_pgbroker_pool_in_use_connections{db=\"czechidm\",db_user=\"postgres\"} 1"
        ),
        "{}",
        ran.stdout
    );
    let _ = open.child.kill();
    // Like status: root and the admin group only.
    let ran = run(as_user(READER, &workspace_bin("iam-pgbroker"))
        .args(["metrics", "--socket"])
        .arg(&broker.socket));
    assert_eq!(ran.code, 1, "{ran:?}");

    use std::io::{Read, Write};
    let mut http = std::net::TcpStream::connect(("127.0.0.1", port)).expect("endpoint");
    http.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("request");
    let mut answer = String::new();
    http.read_to_string(&mut answer).expect("answer");
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.contains("application/openmetrics-text"), "{answer}");
    assert!(answer.contains("iam_pgbroker_statements_total"), "{answer}");
    assert!(
        !answer.contains(READER),
        "no user names on the endpoint: {answer}"
    );

    // Anything but loopback needs saying so.
    let config = broker.dir.join("config.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        text.replace("listen = \"127.0.0.1:", "listen = \"0.0.0.0:"),
    )
    .expect("config");
    let ran = run(broker_cmd().args(["check-config", "--config"]).arg(&config));
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(ran.stderr.contains("allow_remote"), "{ran:?}");
}
