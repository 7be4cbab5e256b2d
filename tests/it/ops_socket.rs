//! Socket activation: the broker takes its listening socket from
//! `LISTEN_FDS` (as systemd's iam-pgbroker.socket hands it over) instead of
//! binding the configured path, and clients get answers on it.

use iam_pgbroker_tests::*;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A broker config with the standard policy whose own socket path is
/// never bound: (folder, config file, the configured socket path).
///
/// The harness writes the config when it starts a broker; that broker is
/// stopped again and its config reused, so these tests and the rest of the
/// suite cannot drift apart.
fn activated_config(tag: &str) -> (PathBuf, PathBuf, PathBuf) {
    let template = BrokerProcess::start();
    let text = std::fs::read_to_string(template.dir.join("config.toml")).expect("config");
    drop(template);
    let dir = Appliance::get().root.join("brokers").join(unique_name(tag));
    std::fs::create_dir_all(&dir).unwrap();
    // Clients run as other users: they must reach the socket's folder.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let configured = dir.join("configured.sock");
    let text = text
        .lines()
        .map(|l| {
            if l.starts_with("socket = ") && l.ends_with("pgbroker.sock\"") {
                format!("socket = \"{}\"", configured.display())
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(text.contains("configured.sock"), "{text}");
    let config = dir.join("config.toml");
    std::fs::write(&config, text).unwrap();
    (dir, config, configured)
}

fn log_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("broker.log")).unwrap_or_default()
}

fn identity_count() -> String {
    Appliance::get().psql("czechidm", "SELECT count(*) FROM idm_identity")
}

#[test]
fn systemd_socket_activate_hands_the_socket_over() {
    let (dir, config, configured) = activated_config("sd-activate");
    let socket = dir.join("activated.sock");
    let log = std::fs::File::create(dir.join("broker.log")).unwrap();
    // systemd-socket-activate binds the socket, waits for the first
    // connection, then execs the broker with LISTEN_FDS=1, LISTEN_PID and
    // LISTEN_FDNAMES, as systemd does for iam-pgbroker.socket.
    let _broker = KillOnDrop(
        Command::new("systemd-socket-activate")
            .arg("--listen")
            .arg(&socket)
            .arg("--fdname=pgbroker")
            .arg("--setenv=IAM_PGBROKER_LOG=debug")
            .arg(workspace_bin("iam-pgbroker"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("systemd-socket-activate (Debian's systemd package)"),
    );
    assert!(
        eventually(Duration::from_secs(10), || socket.exists()),
        "systemd-socket-activate did not bind {}:\n{}",
        socket.display(),
        log_of(&dir)
    );

    // The first connection starts the broker; it is queued until then.
    let mut conn = iam_pgconnect::Config::new()
        .socket(&socket)
        .read_timeout(Duration::from_secs(30))
        .connect()
        .unwrap_or_else(|e| panic!("connect: {e}\n{}", log_of(&dir)));
    let rows = conn
        .query("SELECT count(*)::text AS n FROM idm_identity", &[])
        .expect("query");
    assert_eq!(rows[0].get::<&str>("n"), identity_count());
    assert_eq!(conn.session_info().rule, "root");
    conn.close().expect("close");

    let log = log_of(&dir);
    assert!(log.contains("using the socket passed by systemd"), "{log}");
    assert!(
        !configured.exists(),
        "the broker bound its configured path although it was given a socket"
    );
}

/// The socket as iam-pgbroker.socket creates it (mode 0660, group
/// iam-pgbroker, made before the broker runs), handed over as fd 3 with
/// LISTEN_FDS/LISTEN_PID set by a shell that then execs the broker (so the
/// pid matches): a member of the group gets answers decided by the policy,
/// a user outside the group cannot even connect.
#[test]
fn listen_fds_socket_keeps_systemds_mode_and_group() {
    let (dir, config, configured) = activated_config("listen-fds");
    let socket = dir.join("activated.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
    let group = Command::new("getent")
        .args(["group", "iam-pgbroker"])
        .output()
        .expect("getent");
    let gid: u32 = String::from_utf8_lossy(&group.stdout)
        .split(':')
        .nth(2)
        .and_then(|g| g.trim().parse().ok())
        .expect("group iam-pgbroker exists (dev-appliance creates it)");
    std::os::unix::fs::chown(&socket, None, Some(gid)).expect("chown");
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o660)).unwrap();

    let fd = listener.as_raw_fd();
    let log = std::fs::File::create(dir.join("broker.log")).unwrap();
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(r#"export LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=pgbroker; exec "$0" "$@""#)
        .arg(workspace_bin("iam-pgbroker"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .env("IAM_PGBROKER_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    // SAFETY: between fork and exec only async-signal-safe calls (dup2,
    // fcntl) on descriptors this process owns.
    unsafe {
        command.pre_exec(move || {
            if fd == 3 {
                // dup2 onto itself would keep close-on-exec.
                let flags = libc::fcntl(3, libc::F_GETFD);
                if flags < 0 || libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let _broker = KillOnDrop(command.spawn().expect("start the broker"));
    // The broker has its own copy now, as under systemd.
    drop(listener);

    let iam_pg = workspace_bin("iam-pg");
    let reader = run(as_user(READER, &iam_pg).arg("--socket").arg(&socket).args([
        "--format",
        "csv",
        "-c",
        "SELECT count(*) FROM idm_identity",
    ]));
    assert_eq!(reader.code, 0, "{reader:?}\n{}", log_of(&dir));
    assert_eq!(
        reader.stdout.trim(),
        format!("count\n{}", identity_count()),
        "{reader:?}"
    );

    // In the group, but no rule: the policy refuses.
    let nobody = run(as_user(NOBODY, &iam_pg)
        .arg("--socket")
        .arg(&socket)
        .args(["-c", "SELECT 1"]));
    assert_eq!(nobody.code, 3, "{nobody:?}");

    // Outside the group: the socket's mode refuses before the broker is
    // asked (the client reports that as denied, exit 3, like a policy
    // refusal).
    let stranger = run(Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .arg(&iam_pg)
        .arg("--socket")
        .arg(&socket)
        .args(["-c", "SELECT 1"])
        .env_remove("IAM_PGBROKER_SOCKET")
        .stdin(Stdio::null()));
    assert_eq!(stranger.code, 3, "{stranger:?}");
    assert!(
        stranger.stderr.to_lowercase().contains("permission denied"),
        "{stranger:?}"
    );

    let log = log_of(&dir);
    assert!(log.contains("using the socket passed by systemd"), "{log}");
    assert!(!configured.exists(), "the broker bound its configured path");
}
