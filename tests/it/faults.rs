//! The appliance misbehaving: missing or stopped containers, missing
//! pwfiles, no Docker — each gets its documented code, and the broker keeps
//! serving.

use iam_pgbroker_tests::*;
use serde_json::json;
use std::process::Command;

fn open(broker: &BrokerProcess, db: &str, user: &str) -> serde_json::Value {
    let mut raw = RawClient::connect(broker);
    let frames = raw.call(json!({"id": 1, "op": "open", "db": db, "user": user}));
    frames.last().cloned().expect("an answer")
}

fn error_code(frame: &serde_json::Value) -> &str {
    frame["error"]["code"].as_str().unwrap_or("<no error>")
}

#[test]
fn a_missing_container_is_not_found_and_named() {
    let broker = BrokerProcess::start();
    let db = unique_name("ghost");
    let f = open(&broker, &db, "postgres");
    assert_eq!(error_code(&f), "not_found", "{f}");
    assert!(
        f["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("{db}-db")),
        "{f}"
    );
    let ran = run(iam_pg(READER, &broker).args(["-d", "czechidm", "-c", "SELECT 1"]));
    assert_eq!(ran.code, 0, "others still served: {ran:?}");
}

#[test]
fn a_stopped_container_is_unavailable() {
    let app = Appliance::get();
    let db = unique_name("stopped");
    let name = format!("{}{db}-db", app.prefix);
    let image = Command::new("docker")
        .args([
            "inspect",
            "-f",
            "{{.Config.Image}}",
            &app.container("czechidm"),
        ])
        .output()
        .expect("docker inspect");
    let image = String::from_utf8_lossy(&image.stdout).trim().to_owned();
    let created = Command::new("docker")
        .args(["create", "--name", &name, "--label", "iam-dev=1", "--label"])
        .arg(format!("iam-dev-prefix={}", app.prefix))
        .arg(&image)
        .output()
        .expect("docker create");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let broker = BrokerProcess::start();
    let f = open(&broker, &db, "postgres");
    let _ = Command::new("docker").args(["rm", "-f", &name]).output();
    assert_eq!(error_code(&f), "unavailable", "{f}");
    let message = f["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&name) && message.contains("not running"),
        "{message}"
    );
    let cli_exit = run(iam_pg(READER, &broker).args(["-d", "czechidm", "-c", "SELECT 1"])).code;
    assert_eq!(cli_exit, 0);
}

#[test]
fn a_missing_pwfile_is_a_secret_error_naming_the_path() {
    let app = Appliance::get();
    let dir = app.root.join("brokers").join(unique_name("secrets"));
    std::fs::create_dir_all(&dir).expect("dir");
    let broker = BrokerProcess::start_with(BrokerOptions {
        pwfile: Some(format!("{}/{{db}}-{{user}}.pwfile", dir.display())),
        ..BrokerOptions::default()
    });
    let f = open(&broker, "czechidm", "postgres");
    assert_eq!(error_code(&f), "secret", "{f}");
    let expected = dir.join("czechidm-postgres.pwfile");
    assert!(
        f["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains(&expected.display().to_string()),
        "{f}"
    );
    let cli = run(iam_pg(READER, &broker).args(["-c", "SELECT 1"]));
    assert_eq!(cli.code, 4, "secret errors exit 4: {cli:?}");
    // A wrong password is the database's refusal, and never echoed.
    std::fs::write(&expected, "not-the-password\n").expect("write pwfile");
    let f = open(&broker, "czechidm", "postgres");
    assert_eq!(error_code(&f), "database", "{f}");
    assert_eq!(f["error"]["sqlstate"], "28P01", "{f}");
    assert!(!f.to_string().contains("not-the-password"));
    assert!(!broker.log().contains("not-the-password"));
}

#[test]
fn an_unreachable_docker_socket_is_unavailable() {
    for socket in ["/nonexistent/docker.sock", "/etc/hostname"] {
        let broker = BrokerProcess::start_with(BrokerOptions {
            docker_socket: Some(socket.into()),
            ..BrokerOptions::default()
        });
        let f = open(&broker, "czechidm", "postgres");
        assert_eq!(error_code(&f), "unavailable", "{socket}: {f}");
        assert!(
            f["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains(socket),
            "{f}"
        );
        let mut raw = RawClient::connect(&broker);
        assert_eq!(raw.call(json!({"id": 9, "op": "ping"}))[0]["type"], "pong");
    }
}

#[test]
fn real_secrets_never_reach_the_log_or_the_client() {
    let app = Appliance::get();
    let broker = BrokerProcess::start();
    let ran = run(iam_pg(READER, &broker).args(["-c", "SELECT 1"]));
    assert_eq!(ran.code, 0, "{ran:?}");
    for user in ["postgres", "czechidm"] {
        let secret = std::fs::read_to_string(app.pwfile("czechidm", user)).expect("pwfile");
        let secret = secret.trim_end();
        assert!(secret.len() >= 16);
        assert!(
            !broker.log().contains(secret),
            "password of {user} in the log"
        );
        assert!(!ran.stdout.contains(secret) && !ran.stderr.contains(secret));
    }
}

/// Even at debug level the broker's log carries no statement parameters
/// and no SCRAM verifier: the database and Docker libraries log at info
/// at most.
#[test]
fn debug_logs_carry_no_parameters_or_verifiers() {
    let broker = BrokerProcess::start();
    let secret = unique_name("param_secret");
    let mut raw = RawClient::connect(&broker);
    raw.call(serde_json::json!({"id": 1, "op": "hello", "version": 2}));
    raw.call(serde_json::json!({"id": 2, "op": "open", "user": "postgres"}));
    let frames = raw.call(serde_json::json!({"id": 3, "op": "query",
        "sql": "SELECT $1::text AS v, now() AS t", "params": [secret]}));
    assert!(frames.iter().any(|f| f["type"] == "done"), "{frames:?}");
    let log = broker.log();
    assert!(log.contains("DEBUG"), "the broker logs at debug in tests");
    assert!(!log.contains(&secret), "a parameter reached the log");
    assert!(
        !log.contains("SCRAM-SHA-256$"),
        "a verifier reached the log"
    );
}
