//! The shipped systemd units and snippets: the sandbox's exposure score,
//! `systemd-analyze verify`, sysusers/tmpfiles/logrotate applied to a
//! scratch root, and the example config as a fixture the broker starts
//! with.

use iam_pgbroker_tests::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The exposure `systemd-analyze security` may report at most (the goal
/// of issue 7; PgBouncer's shipped unit scores 9.2).
const MAX_EXPOSURE: f64 = 2.0;

fn systemd_dir() -> PathBuf {
    repo_root().join("systemd")
}

/// A fresh folder under the test root.
fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique_name(tag));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn service_exposure_is_at_most_2() {
    let ran = run(Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(systemd_dir().join("iam-pgbroker.service")));
    assert_eq!(ran.code, 0, "{ran:?}");
    let line = ran
        .stdout
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no score in the output: {ran:?}"));
    // "→ Overall exposure level for iam-pgbroker.service: 1.7 OK 🙂"
    let score: f64 = line
        .rsplit_once(": ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the score from {line:?}"));
    println!("{line}");
    assert!(
        score <= MAX_EXPOSURE,
        "exposure {score} is above {MAX_EXPOSURE}; what is open:\n{}",
        ran.stdout
            .lines()
            .filter(|l| l.starts_with('✗'))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// `systemd-analyze verify` checks that the commands exist, so the units
/// are verified inside a scratch root that has them where the RPM puts
/// them (and the manager's own units, which the dependencies name).
#[test]
fn units_pass_systemd_analyze_verify() {
    let root = scratch("verify-root");
    let units = root.join("etc/systemd/system");
    for dir in ["usr/bin", "bin", "usr/lib/systemd"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::create_dir_all(&units).unwrap();
    std::fs::copy(
        workspace_bin("iam-pgbroker"),
        root.join("usr/bin/iam-pgbroker"),
    )
    .unwrap();
    std::fs::copy("/bin/kill", root.join("bin/kill")).expect("/bin/kill (procps)");
    let copied = run(Command::new("cp")
        .args(["-r", "/lib/systemd/system"])
        .arg(root.join("usr/lib/systemd/")));
    assert_eq!(copied.code, 0, "{copied:?}");
    for unit in ["iam-pgbroker.service", "iam-pgbroker.socket"] {
        std::fs::copy(systemd_dir().join(unit), units.join(unit)).unwrap();
    }
    // The man pages Documentation= names, generated as the RPM build
    // does; verify runs `man` for each, which finds them on MANPATH.
    let man = root.join("usr/share/man");
    let generated = run(Command::new(workspace_bin("iam-pgbroker"))
        .arg("--generate-man")
        .arg(&man));
    assert_eq!(generated.code, 0, "{generated:?}");
    for (page, section) in [("iam-pgbroker.8", "8"), ("iam-pgbroker.toml.5", "5")] {
        let dir = man.join(format!("man{section}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::rename(man.join(page), dir.join(page)).unwrap();
    }
    let ran = run(Command::new("systemd-analyze")
        .env("MANPATH", &man)
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .arg(units.join("iam-pgbroker.service"))
        .arg(units.join("iam-pgbroker.socket")));
    let _ = std::fs::remove_dir_all(&root);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(ran.stdout.trim(), "", "{ran:?}");
    assert_eq!(ran.stderr.trim(), "", "{ran:?}");
}

#[test]
fn sysusers_and_tmpfiles_create_the_group_and_folders() {
    let root = scratch("sysusers-root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    let ran = run(Command::new("systemd-sysusers")
        .arg(format!("--root={}", root.display()))
        .arg(systemd_dir().join("iam-pgbroker.sysusers")));
    assert_eq!(ran.code, 0, "{ran:?}");
    let group = std::fs::read_to_string(root.join("etc/group")).unwrap();
    assert!(
        group.lines().any(|l| l.starts_with("iam-pgbroker:")),
        "{group}"
    );

    let ran = run(Command::new("systemd-tmpfiles")
        .args(["--create"])
        .arg(format!("--root={}", root.display()))
        .arg(systemd_dir().join("iam-pgbroker.tmpfiles")));
    assert_eq!(ran.code, 0, "{ran:?}");
    // The same modes as the unit's LogsDirectoryMode= / StateDirectoryMode=.
    assert_eq!(mode(&root.join("var/log/iam-pgbroker")), 0o750);
    assert_eq!(mode(&root.join("var/lib/iam-pgbroker")), 0o700);
    let service = std::fs::read_to_string(systemd_dir().join("iam-pgbroker.service")).unwrap();
    assert!(service.contains("LogsDirectoryMode=0750"));
    assert!(service.contains("StateDirectoryMode=0700"));
    let _ = std::fs::remove_dir_all(&root);
}

/// The logrotate snippet, pointed at a scratch folder, rotates the audit
/// file and leaves creating the next one to the broker (which continues
/// the chain there; tests/it/audit.rs); its postrotate tolerates a broker
/// that is not running (here: no systemd at all).
#[test]
fn logrotate_rotates_the_audit_file() {
    if Command::new("logrotate")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        panic!("logrotate is not installed (scripts/test installs it)");
    }
    let dir = scratch("logrotate");
    let logs = dir.join("log");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::set_permissions(&logs, std::fs::Permissions::from_mode(0o750)).unwrap();
    std::fs::write(logs.join("audit.jsonl"), "{\"record\":1}\n").unwrap();
    let shipped = std::fs::read_to_string(systemd_dir().join("iam-pgbroker.logrotate")).unwrap();
    assert!(shipped.contains("/var/log/iam-pgbroker/*.jsonl"));
    let config = dir.join("logrotate.conf");
    std::fs::write(
        &config,
        shipped.replace("/var/log/iam-pgbroker/", &format!("{}/", logs.display())),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let ran = run(Command::new("logrotate")
        .args(["--force", "--verbose", "--state"])
        .arg(dir.join("state"))
        .arg(&config));
    assert_eq!(ran.code, 0, "{ran:?}");
    let names: Vec<String> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("audit.jsonl-")),
        "{names:?}"
    );
    let fresh = logs.join("audit.jsonl");
    assert!(
        !fresh.exists(),
        "logrotate must not create the file the broker creates"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The shipped example config is a fixture: the broker starts with it
/// (with the socket moved to a scratch path, and its policy.d README,
/// which must not be read as policy), answers, and applies its policy:
/// root is granted by rule "root", a user it does not name is refused.
///
/// When `iam-pgbroker check-config` exists, this is where it belongs too.
#[test]
fn example_config_starts_the_broker() {
    let dir = scratch("example-config");
    let socket = dir.join("pgbroker.sock");
    let example = std::fs::read_to_string(systemd_dir().join("config.toml")).unwrap();
    let commented = "#socket = \"/run/iam-pgbroker/pgbroker.sock\"";
    assert!(
        example.contains(commented),
        "the example lost its socket line"
    );
    let config = example.replace(commented, &format!("socket = \"{}\"", socket.display()));
    std::fs::create_dir_all(dir.join("policy.d")).unwrap();
    std::fs::copy(
        systemd_dir().join("policy.d/README"),
        dir.join("policy.d/README"),
    )
    .unwrap();
    // Everyone may connect: the test is about the policy, not the mode.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();

    // The audit goes to the scratch folder, not to the host's
    // /var/log/iam-pgbroker. A broker that has no [audit] section yet
    // refuses the table: then it writes no audit, and the example is used
    // as it is.
    let audit = format!(
        "\n[audit]\nfile = \"{}\"\nkey_file = \"{}\"\n",
        dir.join("audit.jsonl").display(),
        dir.join("audit.key").display()
    );
    let broker_log = || std::fs::read_to_string(dir.join("broker.log")).unwrap_or_default();
    let mut started = None;
    for text in [format!("{config}{audit}"), config.clone()] {
        std::fs::write(dir.join("config.toml"), &text).unwrap();
        let log = std::fs::File::create(dir.join("broker.log")).unwrap();
        let mut broker = KillOnDrop(
            Command::new(workspace_bin("iam-pgbroker"))
                .arg("serve")
                .arg("--config")
                .arg(dir.join("config.toml"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start iam-pgbroker"),
        );
        let child = &mut broker.0;
        let up = eventually(Duration::from_secs(20), || {
            std::os::unix::net::UnixStream::connect(&socket).is_ok()
                || matches!(child.try_wait(), Ok(Some(_)))
        });
        let exited = child.try_wait().ok().flatten();
        if up && exited.is_none() {
            started = Some(broker);
            break;
        }
        assert!(
            broker_log().contains("unknown field `audit`"),
            "broker did not start with the example config ({exited:?}):\n{}",
            broker_log()
        );
    }
    let broker = started.expect("the broker started");
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();

    // The protocol answers: hello and a refused open as a user no rule
    // names. Root's open needs the appliance's containers, which the
    // example config (rightly) does not name.
    let mut raw = RawClient::connect_path(&socket);
    let hello = raw.call(serde_json::json!({"id": 1, "op": "hello", "version": 1}));
    assert_eq!(hello[0]["type"], "hello", "{hello:?}");

    let nobody = run(as_user(NOBODY, &workspace_bin("iam-pg"))
        .arg("--socket")
        .arg(&socket)
        .args(["-c", "SELECT 1"]));
    assert_eq!(nobody.code, 3, "{nobody:?}");
    assert!(nobody.stderr.contains("no rule grants it"), "{nobody:?}");

    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);
}
