//! Faults while sessions are open: Docker going away, pwfiles breaking and
//! passwords rotating, PostgreSQL killing a backend, a client killed
//! mid-result, SIGTERM with reads and writes open. Each against real
//! containers of its own and the real broker binary; docs/reliability.md
//! lists what each proves.

use iam_pgbroker_tests::*;
use serde_json::{json, Value};
use std::io::{Read as _, Write as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn code(frame: &Value) -> &str {
    frame["error"]["code"].as_str().unwrap_or("<none>")
}

fn message(frame: &Value) -> &str {
    frame["error"]["message"].as_str().unwrap_or_default()
}

/// A connection with `open` sent; the last frame of the answer.
fn open(broker: &BrokerProcess, db: &str, user: &str, readonly: bool) -> (RawClient, Value) {
    let mut raw = RawClient::connect(broker);
    let f = raw.call(json!({"id": 1, "op": "open", "db": db, "user": user, "readonly": readonly}));
    (raw, f.last().cloned().unwrap_or_default())
}

/// The last frame of a query.
fn query(raw: &mut RawClient, sql: &str) -> Value {
    let f = raw.call(json!({"id": 2, "op": "query", "sql": sql}));
    f.last().cloned().unwrap_or_default()
}

/// The single value a one-row, one-column query returned.
fn scalar(raw: &mut RawClient, sql: &str) -> Value {
    let f = raw.call(json!({"id": 2, "op": "query", "sql": sql}));
    let last = f.last().cloned().unwrap_or_default();
    assert_eq!(last["type"], "done", "{sql}: {f:?}");
    f.iter()
        .find(|fr| fr["type"] == "rows")
        .map(|fr| fr["rows"][0][0].clone())
        .unwrap_or_else(|| panic!("{sql}: no rows in {f:?}"))
}

/// psql's output in `x`, trimmed; panics on failure.
fn psql(x: &ExtraInstance, sql: &str) -> String {
    let out = x.psql(&x.db, sql);
    assert!(
        out.status.success(),
        "psql {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Open file descriptors of `pid`.
fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The broker's backends in `x` as `state` lines (the broker names its
/// connections `pgbroker <session> …`; everything in `x` is this test's).
fn broker_backends(x: &ExtraInstance) -> Vec<String> {
    let out = psql(
        x,
        "SELECT state FROM pg_stat_activity WHERE application_name LIKE 'pgbroker %' ORDER BY 1",
    );
    out.lines().map(str::to_owned).collect()
}

// ---------------------------------------------------------------------------
// The Docker socket goes away.

/// A stand-in for the Docker Engine's socket: a Unix socket at `path`
/// whose connections are passed through to the real one. `cut` is the
/// engine going away: the path disappears and every connection through it
/// (the broker's event stream and its API connections) ends, as when
/// dockerd stops.
struct DockerProxy {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<UnixStream>>>,
    acceptor: Option<std::thread::JoinHandle<()>>,
}

impl DockerProxy {
    fn start(path: &Path) -> DockerProxy {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).expect("bind the proxy socket");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let streams: Arc<Mutex<Vec<UnixStream>>> = Arc::default();
        let acceptor = {
            let (stop, streams) = (stop.clone(), streams.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let client = match listener.accept() {
                        Ok((client, _)) => client,
                        Err(_) => {
                            std::thread::sleep(Duration::from_millis(10));
                            continue;
                        }
                    };
                    let Ok(upstream) = UnixStream::connect("/var/run/docker.sock") else {
                        continue;
                    };
                    let _ = client.set_nonblocking(false);
                    let pipe = |mut from: UnixStream, mut to: UnixStream| {
                        std::thread::spawn(move || {
                            let mut buf = [0u8; 16 * 1024];
                            while let Ok(n) = from.read(&mut buf) {
                                if n == 0 || to.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                            let _ = to.shutdown(std::net::Shutdown::Write);
                        });
                    };
                    let mut kept = streams.lock().expect("lock");
                    for s in [&client, &upstream] {
                        kept.push(s.try_clone().expect("clone"));
                    }
                    pipe(
                        client.try_clone().expect("clone"),
                        upstream.try_clone().expect("clone"),
                    );
                    pipe(upstream, client);
                }
            })
        };
        DockerProxy {
            path: path.to_owned(),
            stop,
            streams,
            acceptor: Some(acceptor),
        }
    }

    /// The engine goes away: no socket, and open connections end.
    fn cut(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
        for s in self.streams.lock().expect("lock").drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for DockerProxy {
    fn drop(&mut self) {
        self.cut();
    }
}

#[test]
fn docker_going_away_keeps_open_sessions_and_new_ones_get_unavailable() {
    let x = ExtraInstance::start("dockergone");
    let app = Appliance::get();
    let dir = app.root.join("brokers").join(unique_name("dockerproxy"));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("docker.sock");
    let mut proxy = DockerProxy::start(&path);
    let broker = BrokerProcess::start_with(BrokerOptions {
        docker_socket: Some(path.display().to_string()),
        ..BrokerOptions::default()
    });

    // A session is open (its container's address cached while the event
    // stream watches), and the event stream is up.
    let (mut held, opened) = open(&broker, &x.db, "postgres", false);
    assert_eq!(opened["type"], "opened", "{opened}");
    assert_eq!(query(&mut held, "SELECT 1")["type"], "done");
    assert!(eventually(Duration::from_secs(10), || proxy
        .streams
        .lock()
        .map(|s| !s.is_empty())
        .unwrap_or(false)));

    proxy.cut();

    // The open session needs no Docker: it keeps working, transaction and
    // all.
    for _ in 0..3 {
        let f = query(&mut held, "SELECT count(*) FROM pg_class");
        assert_eq!(f["type"], "done", "the open session keeps working: {f}");
    }
    // A new session needs the address, and the cached one went with the
    // event stream: unavailable, naming the socket, not an answer from a
    // cache nothing watches any more.
    let refused = |db: &str| {
        let (_, f) = open(&broker, db, "postgres", true);
        code(&f) == "unavailable" && message(&f).contains(&path.display().to_string())
    };
    assert!(
        eventually(Duration::from_secs(5), || refused(&x.db)),
        "a new session on the cached container is unavailable:\n{}",
        broker.log()
    );
    let (_, f) = open(&broker, &x.db, "postgres", true);
    assert_eq!(code(&f), "unavailable", "and stays so: {f}");
    let (_, f) = open(&broker, "czechidm", "postgres", true);
    assert_eq!(code(&f), "unavailable", "never resolved before: {f}");
    // Not a socket at all.
    std::fs::write(&path, "not a socket\n").expect("write");
    let (_, f) = open(&broker, &x.db, "postgres", true);
    assert_eq!(code(&f), "unavailable", "a plain file: {f}");
    assert!(message(&f).contains(&path.display().to_string()), "{f}");
    std::fs::remove_file(&path).expect("rm");
    // Status and ping need no Docker either.
    let mut other = RawClient::connect(&broker);
    assert_eq!(
        other.call(json!({"id": 1, "op": "ping"}))[0]["type"],
        "pong"
    );
    let f = held.call(json!({"id": 3, "op": "commit"}));
    assert_eq!(f[0]["type"], "ok", "{f:?}");

    // Docker is back: new sessions work again, without a broker restart.
    let _proxy = DockerProxy::start(&path);
    let works = |db: &str| {
        let (mut raw, f) = open(&broker, db, "postgres", true);
        f["type"] == "opened" && query(&mut raw, "SELECT 1")["type"] == "done"
    };
    assert!(
        eventually(Duration::from_secs(10), || works(&x.db)),
        "{}",
        broker.log()
    );
    assert!(works("czechidm"));
    assert_eq!(query(&mut held, "SELECT 1")["type"], "done");
    assert!(!broker.log().contains("panicked"));
}

// ---------------------------------------------------------------------------
// Pwfiles break; passwords rotate.

#[test]
fn a_broken_pwfile_is_a_secret_error_and_a_rotated_password_is_used_at_once() {
    let x = ExtraInstance::start("rotate");
    let app = Appliance::get();
    let pwfile = app.pwfile(&x.db, "postgres");
    let old = std::fs::read_to_string(&pwfile).expect("pwfile");
    // Pooled connections live 10 s idle: long enough to be there for the
    // checks below, short enough to watch them go.
    let broker = BrokerProcess::start_with(BrokerOptions {
        extra: "[pool]\nidle_timeout_ms = 10000".into(),
        ..BrokerOptions::default()
    });
    let backend_pid = |broker: &BrokerProcess| {
        let (mut raw, f) = open(broker, &x.db, "postgres", true);
        assert_eq!(f["type"], "opened", "{f}");
        let pid = scalar(&mut raw, "SELECT pg_backend_pid()");
        raw.call(json!({"id": 9, "op": "close"}));
        pid
    };
    // A session stays open through everything below, on a connection of
    // its own.
    let (mut held, f) = open(&broker, &x.db, "postgres", true);
    assert_eq!(f["type"], "opened", "{f}");
    let first = backend_pid(&broker);
    assert_eq!(
        backend_pid(&broker),
        first,
        "the pool hands the same connection back while nothing changed"
    );

    // Missing, unreadable (a folder), dangling symlink, empty: each a
    // `secret` error naming the file, never a pooled connection instead.
    let shown = pwfile.display().to_string();
    let cases: [(&str, &dyn Fn()); 4] = [
        ("missing", &|| {}),
        ("a folder", &|| std::fs::create_dir(&pwfile).expect("mkdir")),
        ("a dangling symlink", &|| {
            std::os::unix::fs::symlink("/nonexistent/pw", &pwfile).expect("symlink")
        }),
        ("empty", &|| std::fs::write(&pwfile, "").expect("write")),
    ];
    for (what, break_it) in cases {
        let _ = std::fs::remove_file(&pwfile);
        let _ = std::fs::remove_dir(&pwfile);
        break_it();
        let (_, f) = open(&broker, &x.db, "postgres", true);
        assert_eq!(code(&f), "secret", "{what}: {f}");
        assert!(message(&f).contains(&shown), "{what}: {f}");
        assert!(
            !f.to_string().contains(old.trim()),
            "{what}: the password never shows"
        );
        assert_eq!(query(&mut held, "SELECT 1")["type"], "done", "{what}");
    }
    let _ = std::fs::remove_dir(&pwfile);
    let _ = std::fs::remove_file(&pwfile);

    // Rotation, file first: the new password is not yet the database's.
    // A pooled connection (made with the old password) would work — it is
    // not handed out, because the pool's key holds the password's hash.
    let new = format!("rotated-{}", unique_name("pw").replace('_', "-"));
    std::fs::write(&pwfile, format!("{new}\n")).expect("write pwfile");
    let (_, f) = open(&broker, &x.db, "postgres", true);
    assert_eq!(code(&f), "database", "{f}");
    assert_eq!(f["error"]["sqlstate"], "28P01", "{f}");
    assert!(!f.to_string().contains(&new));
    // Then the database: new sessions connect with the new password.
    // On psql's standard input, not its command line: Docker's events
    // (which the broker watches) carry an exec's command line.
    let mut alter = Command::new("docker")
        .args(["exec", "-i", "-u", "postgres", &x.container])
        .args(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &x.db])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("docker exec psql");
    alter
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("ALTER ROLE postgres PASSWORD '{new}';\n").as_bytes())
        .expect("write");
    assert!(alter.wait().expect("psql").success());
    let after = backend_pid(&broker);
    assert_ne!(after, first, "a new connection, not the pooled old one");
    assert_eq!(
        psql(
            &x,
            &format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {first}")
        ),
        "1",
        "the old connection was still pooled (so it was passed over)"
    );
    assert_eq!(backend_pid(&broker), after, "and the new one is pooled");
    // A session opened with the old password keeps its connection.
    assert_eq!(query(&mut held, "SELECT 2")["type"], "done");
    // The old pooled connection ages out.
    assert!(
        eventually(Duration::from_secs(30), || psql(
            &x,
            &format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {first}")
        ) == "0"),
        "the connection made with the old password is closed"
    );
    assert!(!broker.log().contains(&new) && !broker.log().contains(old.trim()));
}

// ---------------------------------------------------------------------------
// PostgreSQL terminates a backend.

#[test]
fn a_terminated_backend_fails_its_session_only_and_the_pool_recovers() {
    let x = ExtraInstance::start("terminate");
    psql(
        &x,
        "CREATE TABLE t (id int primary key, note text); INSERT INTO t VALUES (1, 'original')",
    );
    let broker = BrokerProcess::start();

    // An idle pooled connection is terminated: the next session must not
    // be handed the dead one.
    let (mut s0, f) = open(&broker, &x.db, "postgres", true);
    assert_eq!(f["type"], "opened", "{f}");
    let pooled = scalar(&mut s0, "SELECT pg_backend_pid()");
    s0.call(json!({"id": 9, "op": "close"}));
    psql(&x, &format!("SELECT pg_terminate_backend({pooled})"));
    let (mut victim, f) = open(&broker, &x.db, "postgres", false);
    assert_eq!(f["type"], "opened", "the first session after works: {f}");

    // Two sessions; the administrator terminates one's backend mid-
    // transaction.
    let f = victim.call(json!({"id": 2, "op": "execute", "sql": "UPDATE t SET note = 'doomed'"}));
    assert_eq!(f[0]["type"], "done", "{f:?}");
    let pid = scalar(&mut victim, "SELECT pg_backend_pid()");
    assert_ne!(pid, pooled);
    let (mut bystander, f) = open(&broker, &x.db, "postgres", true);
    assert_eq!(f["type"], "opened", "{f}");
    assert_eq!(query(&mut bystander, "SELECT 1")["type"], "done");
    assert_eq!(
        psql(&x, &format!("SELECT pg_terminate_backend({pid})")),
        "t"
    );

    let f = query(&mut victim, "SELECT note FROM t");
    let (c, state) = (code(&f), f["error"]["sqlstate"].as_str());
    assert!(
        c == "unavailable" || (c == "database" && state == Some("57P01")),
        "the victim gets a clear error: {f}"
    );
    let f = victim.call(json!({"id": 3, "op": "commit"}));
    assert_eq!(f[0]["type"], "error", "nothing to commit: {f:?}");
    assert_eq!(psql(&x, "SELECT note FROM t"), "original");
    // The bystander never noticed.
    for _ in 0..3 {
        assert_eq!(query(&mut bystander, "SELECT 1")["type"], "done");
    }
    // The victim can close; new sessions work at once.
    let f = victim.call(json!({"id": 4, "op": "close"}));
    assert!(!f.is_empty());
    for _ in 0..3 {
        let (mut raw, f) = open(&broker, &x.db, "postgres", true);
        assert_eq!(f["type"], "opened", "{f}");
        assert_eq!(query(&mut raw, "SELECT 1")["type"], "done");
    }
    assert!(!broker.log().contains("panicked"));
}

// ---------------------------------------------------------------------------
// A client killed mid-result.

#[test]
fn a_client_killed_mid_result_is_rolled_back_and_leaks_nothing() {
    let x = ExtraInstance::start("midresult");
    psql(
        &x,
        "CREATE TABLE t (id int primary key, note text); INSERT INTO t VALUES (1, 'original');
         CREATE TABLE big AS SELECT g AS id, md5(g::text) AS a, md5((g * 7)::text) AS b
           FROM generate_series(1, 200000) g",
    );
    let broker = BrokerProcess::start();
    // Warm up: one pooled connection for this target, the steady state.
    {
        let (mut raw, f) = open(&broker, &x.db, "postgres", true);
        assert_eq!(f["type"], "opened", "{f}");
        query(&mut raw, "SELECT 1");
        raw.call(json!({"id": 9, "op": "close"}));
    }
    assert!(eventually(Duration::from_secs(5), || broker_backends(&x) == ["idle"]));
    let baseline = fd_count(broker.pid());

    let cases = [
        // Rows that exist: the server finishes quickly anyway.
        "SELECT * FROM big",
        // A result the server would take minutes to produce: it must be
        // stopped, not left running for a reader that is gone.
        "SELECT a.id, a.a, b.b FROM big a CROSS JOIN big b",
    ];
    for sql in cases {
        let load = workspace_bin("iam-pgbroker-load");
        let mut cmd = Command::new(&load);
        cmd.args(["hold", "--socket"])
            .arg(&broker.socket)
            .args(["--db", &x.db, "--user", "postgres"])
            .args(["--write", "UPDATE t SET note = 'uncommitted' WHERE id = 1"])
            .args(["--sql", sql]);
        let mut held = Spawned::new(&mut cmd);
        let line = held.wait_for("HOLD");
        // Killed (and reaped) even when an assertion below fails.
        let Spawned { child, .. } = held;
        let mut held = KillOnDrop(child);
        let session = line.trim_start_matches("HOLD ").trim().to_owned();
        // Mid-result: the broker is blocked writing rows nobody reads.
        assert!(eventually(Duration::from_secs(5), || {
            broker_backends(&x).iter().any(|s| s == "active") || fd_count(broker.pid()) > baseline
        }));
        let killed = Instant::now();
        held.0.kill().expect("SIGKILL");
        let _ = held.0.wait();

        let settled = eventually(Duration::from_secs(10), || {
            let states = broker_backends(&x);
            states.iter().all(|s| s == "idle") && states.len() <= 1
        });
        assert!(
            settled,
            "{sql}: the broker's backends after the kill: {:?}\n{}",
            broker_backends(&x),
            broker.log()
        );
        let settled_in = killed.elapsed();
        assert_eq!(psql(&x, "SELECT note FROM t"), "original", "{sql}");
        assert!(
            eventually(Duration::from_secs(10), || fd_count(broker.pid())
                <= baseline),
            "{sql}: fds {} after, {baseline} before",
            fd_count(broker.pid())
        );
        let log = broker.log();
        assert!(
            log.contains(&session) && log.contains("rolled back"),
            "{sql}: {log}"
        );
        println!("{sql}: settled {settled_in:?} after the kill");
    }
    // And the pool still serves.
    let (mut raw, f) = open(&broker, &x.db, "postgres", true);
    assert_eq!(f["type"], "opened", "{f}");
    assert_eq!(query(&mut raw, "SELECT 1")["type"], "done");
}

// ---------------------------------------------------------------------------
// SIGTERM with sessions open.

#[test]
fn sigterm_rolls_back_tells_clients_records_why_and_a_new_broker_serves() {
    let app = Appliance::get();
    let table = app.scratch_table("term", "id int primary key, note text", "(1, 'original')");
    let mut broker = BrokerProcess::start();
    let grace = Duration::from_millis(5000); // tests/lib.rs: shutdown_grace_ms

    let (mut writer, f) = open(&broker, "czechidm", "czechidm", false);
    assert_eq!(f["type"], "opened", "{f}");
    let f = writer.call(json!({"id": 2, "op": "execute",
        "sql": format!("UPDATE {table} SET note = 'uncommitted' WHERE id = 1")}));
    assert_eq!(f[0]["type"], "done", "{f:?}");
    let (mut reader, f) = open(&broker, "czechidm", "postgres", true);
    assert_eq!(f["type"], "opened", "{f}");
    assert_eq!(
        query(&mut reader, &format!("SELECT note FROM {table}"))["type"],
        "done"
    );
    // And one in the middle of a statement that would run for a minute.
    let (mut busy, f) = open(&broker, "czechidm", "postgres", true);
    assert_eq!(f["type"], "opened", "{f}");
    let busy_session = f["session"].as_str().unwrap_or_default().to_owned();
    busy.send_json(json!({"id": 2, "op": "query",
        "sql": "SELECT count(*) FROM idm_identity_bench a CROSS JOIN idm_identity_bench b"}));
    assert!(eventually(Duration::from_secs(10), || app.psql(
        "czechidm",
        &format!(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' \
             AND application_name LIKE 'pgbroker {busy_session}%'"
        )
    ) == "1"));
    // And one whose client stopped reading its result: the broker is stuck
    // writing to it.
    let mut cmd = Command::new(workspace_bin("iam-pgbroker-load"));
    cmd.args(["hold", "--socket"])
        .arg(&broker.socket)
        .args(["--sql", "SELECT * FROM idm_identity_bench"]);
    let mut stuck = Spawned::new(&mut cmd);
    let held = stuck.wait_for("HOLD");
    let held = held.trim_start_matches("HOLD ").trim().to_owned();
    let Spawned { child, .. } = stuck;
    let stuck = KillOnDrop(child);
    // Stuck for sure only once the client's socket is full: the broker then
    // stops reading PostgreSQL, whose backend waits to write to it.
    assert!(
        eventually(Duration::from_secs(10), || app.psql(
            "czechidm",
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'ClientWrite' \
                 AND application_name LIKE 'pgbroker {held}%'"
            )
        ) == "1"),
        "the held session's backend waits to write"
    );
    let sessions: Vec<String> = broker
        .audit_records()
        .iter()
        .filter(|r| r["event"] == "session_open")
        .filter_map(|r| r["session"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(sessions.len(), 4, "{sessions:?}");

    let started = Instant::now();
    broker.signal(libc::SIGTERM);
    for (who, client) in [("writer", &mut writer), ("reader", &mut reader)] {
        let f = client.recv().expect("a frame before the close");
        assert_eq!(code(&f), "unavailable", "{who}: {f}");
        assert!(client.recv().is_none(), "{who}: closed after it");
    }
    // The running statement is cancelled rather than waited for: its
    // error, then the shutdown's.
    let f = std::iter::from_fn(|| busy.recv())
        .find(|f| f["type"] != "columns")
        .expect("the statement's answer");
    assert_eq!(f["error"]["sqlstate"], "57014", "cancelled: {f}");
    let f = busy.recv().expect("then the shutdown's");
    assert_eq!(code(&f), "unavailable", "{f}");
    assert!(busy.recv().is_none());
    let status = broker
        .wait_exit(grace + Duration::from_secs(5))
        .expect("the broker exits");
    let took = started.elapsed();
    drop(stuck);
    assert!(status.success(), "{status}");
    // Half the grace period for the client that reads nothing, then its
    // session is closed like the others: within the grace period.
    assert!(
        took >= grace / 2 && took < grace,
        "exits within the grace period: took {took:?}\n{}",
        broker.log()
    );
    assert_eq!(
        app.psql(
            "czechidm",
            &format!("SELECT note FROM {table} WHERE id = 1")
        ),
        "original"
    );

    // The audit's last records: each session's close, why and whether a
    // transaction was rolled back, then the broker's stop.
    let records = broker.audit_records();
    let last = records.last().expect("records");
    assert_eq!(last["event"], "broker_stop", "{last}");
    for session in &sessions {
        let close = records
            .iter()
            .find(|r| r["event"] == "session_close" && r["session"] == session.as_str())
            .unwrap_or_else(|| panic!("no session_close for {session}: {records:?}"));
        assert_eq!(close["why"], "shutdown", "{close}");
        // Each had a transaction open (the readers' read-only ones too).
        assert_eq!(close["rolled_back"], true, "{close}");
    }

    // A new broker on the same config serves.
    let again = Command::new(workspace_bin("iam-pgbroker"))
        .arg("serve")
        .arg("--config")
        .arg(broker.dir.join("config.toml"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start again");
    let _again = KillOnDrop(again);
    assert!(eventually(Duration::from_secs(20), || {
        UnixStream::connect(&broker.socket).is_ok()
    }));
    let (mut raw, f) = open(&broker, "czechidm", "czechidm", false);
    assert_eq!(f["type"], "opened", "{f}");
    let f = raw.call(json!({"id": 2, "op": "execute",
        "sql": format!("UPDATE {table} SET note = 'after' WHERE id = 1")}));
    assert_eq!(f[0]["type"], "done", "{f:?}");
    assert_eq!(raw.call(json!({"id": 3, "op": "commit"}))[0]["type"], "ok");
    assert_eq!(
        app.psql(
            "czechidm",
            &format!("SELECT note FROM {table} WHERE id = 1")
        ),
        "after"
    );
}

// ---------------------------------------------------------------------------
// PostgreSQL's idle-in-transaction timeout ends a forgotten transaction.

#[test]
fn an_idle_transaction_is_ended_by_postgresql_and_the_next_session_works() {
    let x = ExtraInstance::start("idletxn");
    psql(
        &x,
        "CREATE TABLE t (id int primary key, note text); INSERT INTO t VALUES (1, 'original')",
    );
    let broker = BrokerProcess::start_with(BrokerOptions {
        policy: Some(
            "[[rule]]\nname = \"root\"\nuids = [0]\ndbs = [\"*\"]\ndb_users = [\"*\"]\n\
             mode = \"write\"\nidle_in_transaction_timeout_ms = 500\n"
                .into(),
        ),
        ..BrokerOptions::default()
    });
    let (mut raw, f) = open(&broker, &x.db, "postgres", false);
    assert_eq!(f["type"], "opened", "{f}");
    let f = raw.call(json!({"id": 2, "op": "execute", "sql": "UPDATE t SET note = 'forgotten'"}));
    assert_eq!(f[0]["type"], "done", "{f:?}");
    // The client goes quiet with the row locked; PostgreSQL ends the
    // session and rolls back after 500 ms, releasing the lock.
    assert!(
        eventually(Duration::from_secs(10), || broker_backends(&x).is_empty()),
        "{:?}",
        broker_backends(&x)
    );
    assert_eq!(psql(&x, "SELECT note FROM t"), "original");
    let f = query(&mut raw, "SELECT note FROM t");
    let (c, state) = (code(&f), f["error"]["sqlstate"].as_str());
    assert!(
        c == "unavailable" || (c == "database" && state == Some("25P03")),
        "a clear error: {f}"
    );
    let f = raw.call(json!({"id": 3, "op": "commit"}));
    assert_eq!(f[0]["type"], "error", "nothing to commit: {f:?}");
    // Others can write the row at once, and new sessions work.
    let (mut next, f) = open(&broker, &x.db, "postgres", false);
    assert_eq!(f["type"], "opened", "{f}");
    let f = next.call(json!({"id": 2, "op": "execute", "sql": "UPDATE t SET note = 'next'"}));
    assert_eq!(f[0]["type"], "done", "{f:?}");
    assert_eq!(next.call(json!({"id": 3, "op": "commit"}))[0]["type"], "ok");
    assert_eq!(psql(&x, "SELECT note FROM t"), "next");
}
