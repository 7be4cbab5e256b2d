//! Test harness: the development appliance, broker processes with their own
//! configs, and clients run as real other OS users.
//!
//! The appliance (containers, pwfiles, demo users) is brought up once per
//! run by `scripts/test` (which sets `IAM_TEST_ROOT` and `IAM_TEST_PREFIX`);
//! when those are unset, the harness brings up its own under
//! `/tmp/iamtest-local`, serialized with `flock` so parallel test processes
//! share it. Every test starts its own broker process with its own socket
//! and policy, and uses its own table names, so tests run in parallel.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The demo users that `scripts/dev-appliance up` creates.
pub const READER: &str = "iam-demo-reader";
/// May write to czechidm as czechidm.
pub const WRITER: &str = "iam-demo-writer";
/// No rule names this user.
pub const NOBODY: &str = "iam-demo-nobody";
/// Member of the group `iam-demo-ops`.
pub const OPERATOR: &str = "iam-demo-operator";

/// The policy most tests use: root may do anything (for in-process Rust
/// clients), the demo users what the dev appliance grants them.
pub const STANDARD_POLICY: &str = r#"
[[rule]]
name = "root"
uids = [0]
dbs = ["*"]
db_users = ["*"]
mode = "write"

[[rule]]
name = "demo-reader"
users = ["iam-demo-reader"]
dbs = ["czechidm", "bridge"]
db_users = ["postgres", "czechidm", "bridge"]
mode = "read"
dbnames = ["*"]

[[rule]]
name = "demo-writer"
users = ["iam-demo-writer"]
dbs = ["czechidm"]
db_users = ["czechidm"]
mode = "write"

[[rule]]
name = "demo-operators"
groups = ["iam-demo-ops"]
dbs = ["czechidm"]
db_users = ["postgres"]
mode = "read"
"#;

/// The running development appliance.
pub struct Appliance {
    /// `IAM_DEV_ROOT` of the appliance.
    pub root: PathBuf,
    /// `IAM_DEV_PREFIX` of its containers.
    pub prefix: String,
}

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// A workspace binary (`iam-pgbroker`, `iam-pg`), from the target folder the
/// test binary runs from.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/debug/deps/it-HASH → target/debug; target/debug/it-client → target/debug
    let mut dir = exe.parent().expect("exe folder").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace` and `cargo build -p iam-pgbroker-unguarded` first (scripts/test does)",
        path.display()
    );
    path
}

impl Appliance {
    /// The shared appliance, brought up on first use.
    pub fn get() -> &'static Appliance {
        static APPLIANCE: OnceLock<Appliance> = OnceLock::new();
        APPLIANCE.get_or_init(|| {
            let (root, prefix, external) = match (
                std::env::var("IAM_TEST_ROOT"),
                std::env::var("IAM_TEST_PREFIX"),
            ) {
                (Ok(root), Ok(prefix)) => (PathBuf::from(root), prefix, true),
                _ => (
                    PathBuf::from("/tmp/iamtest-local"),
                    "iamtest-local-".to_owned(),
                    false,
                ),
            };
            let app = Appliance { root, prefix };
            if !external || !app.root.join("etc/config.toml").exists() {
                app.up();
            }
            app
        })
    }

    fn up(&self) {
        let script = repo_root().join("scripts/dev-appliance");
        let out = Command::new("flock")
            .arg("/tmp/iamtest-appliance.lock")
            .arg(&script)
            .arg("up")
            .env("IAM_DEV_ROOT", &self.root)
            .env("IAM_DEV_PREFIX", &self.prefix)
            .env("IAM_DEV_NO_BROKER", "1")
            .stdin(Stdio::null())
            .output()
            .expect("run scripts/dev-appliance");
        assert!(
            out.status.success(),
            "dev-appliance up failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The container of instance `db`.
    pub fn container(&self, db: &str) -> String {
        format!("{}{db}-db", self.prefix)
    }

    /// The Docker network of the appliance.
    pub fn network(&self) -> String {
        format!("{}iam-dev", self.prefix)
    }

    /// The pwfile of `user` on `db`.
    pub fn pwfile(&self, db: &str, user: &str) -> PathBuf {
        self.root
            .join(format!("data/volumes/{db}-db/secrets/{user}.pwfile"))
    }

    /// Runs SQL as the superuser inside `db`'s container (not through the
    /// broker): the ground truth tests compare against. Panics on error.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let mut out = self.psql_output(db, sql);
        // Tests run in parallel against one server: two GRANTs touching
        // the same catalog row at once make one fail with PostgreSQL's
        // "tuple concurrently updated"; run again, as a person would.
        for _ in 0..3 {
            if out.status.success()
                || !String::from_utf8_lossy(&out.stderr).contains("tuple concurrently updated")
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
            out = self.psql_output(db, sql);
        }
        assert!(
            out.status.success(),
            "psql in {db} failed for {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
    }

    /// Like [`Appliance::psql`], returning the raw output.
    pub fn psql_output(&self, db: &str, sql: &str) -> Output {
        Command::new("docker")
            .args(["exec", "-u", "postgres", &self.container(db)])
            .args([
                "psql",
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                db,
                "-c",
                sql,
            ])
            .stdin(Stdio::null())
            .output()
            .expect("docker exec psql")
    }

    /// Creates a fresh table for one test in czechidm, owned by the app
    /// user `czechidm`, and returns its name.
    pub fn scratch_table(&self, tag: &str, columns: &str, rows: &str) -> String {
        let name = unique_name(tag);
        let mut sql =
            format!("CREATE TABLE {name} ({columns}); ALTER TABLE {name} OWNER TO czechidm;");
        if !rows.is_empty() {
            sql.push_str(&format!("INSERT INTO {name} VALUES {rows};"));
        }
        self.psql("czechidm", &sql);
        name
    }
}

/// A name unique to this process and call: `{tag}_{pid}_{n}`.
pub fn unique_name(tag: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{tag}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Extra settings for one broker.
#[derive(Default, Clone)]
pub struct BrokerOptions {
    /// Policy rules (TOML `[[rule]]` tables); default [`STANDARD_POLICY`].
    pub policy: Option<String>,
    /// Docker socket path; default the real one.
    pub docker_socket: Option<String>,
    /// Pwfile pattern; default the appliance's.
    pub pwfile: Option<String>,
    /// Extra lines appended to the `[limits]` table.
    pub limits: String,
    /// Extra lines appended to the `[server]` table.
    pub server: String,
    /// Extra lines appended to the `[audit]` table.
    pub audit: String,
    /// The audit file; default `{dir}/audit.jsonl` (which
    /// [`BrokerProcess::audit_records`] reads).
    pub audit_file: Option<String>,
    /// Extra environment variables of the broker process.
    pub env: Vec<(String, String)>,
    /// Extra top-level TOML appended at the end (e.g. instance overrides).
    pub extra: String,
    /// Run the test-only broker whose guard checks no function, operator,
    /// type or relation (`iam-pgbroker-unguarded`, built by scripts/test
    /// on its own), to show what PostgreSQL's privileges hold alone.
    pub unguarded: bool,
}

/// A broker process with its own config and socket; killed on drop.
pub struct BrokerProcess {
    child: Option<Child>,
    /// Its socket.
    pub socket: PathBuf,
    /// Its folder (config, log).
    pub dir: PathBuf,
}

impl BrokerProcess {
    /// Starts a broker with the standard policy.
    pub fn start() -> BrokerProcess {
        BrokerProcess::start_with(BrokerOptions::default())
    }

    /// Starts a broker with `options`, waiting until its socket accepts.
    pub fn start_with(options: BrokerOptions) -> BrokerProcess {
        let app = Appliance::get();
        let dir = app.root.join("brokers").join(unique_name("b"));
        std::fs::create_dir_all(&dir).expect("broker folder");
        let socket = dir.join("pgbroker.sock");
        let config = format!(
            r#"[server]
socket = "{socket}"
socket_mode = 0o660
socket_group = "iam-pgbroker"
shutdown_grace_ms = 5000
{server}

[docker]
socket = "{docker}"
container = "{prefix}{{db}}-db"
network = "{network}"

[database]
pwfile = "{pwfile}"

[limits]
{limits}

[audit]
file = "{audit_file}"
key_file = "{dir}/audit.key"
{audit}

{extra}

{policy}
"#,
            socket = socket.display(),
            server = options.server,
            docker = options
                .docker_socket
                .as_deref()
                .unwrap_or("/var/run/docker.sock"),
            prefix = app.prefix,
            network = app.network(),
            pwfile = options.pwfile.clone().unwrap_or_else(|| format!(
                "{}/data/volumes/{{db}}-db/secrets/{{user}}.pwfile",
                app.root.display()
            )),
            limits = options.limits,
            dir = dir.display(),
            audit_file = options
                .audit_file
                .clone()
                .unwrap_or_else(|| format!("{}/audit.jsonl", dir.display())),
            audit = options.audit,
            extra = options.extra,
            policy = options.policy.as_deref().unwrap_or(STANDARD_POLICY),
        );
        std::fs::write(dir.join("config.toml"), config).expect("write config");
        let log = std::fs::File::create(dir.join("broker.log")).expect("log file");
        let (binary, unguarded) = if options.unguarded {
            ("iam-pgbroker-unguarded", "1")
        } else {
            ("iam-pgbroker", "0")
        };
        let child = Command::new(workspace_bin(binary))
            .env("IAM_PGBROKER_UNGUARDED_FOR_TESTS", unguarded)
            .arg("serve")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .env("IAM_PGBROKER_LOG", "debug")
            .envs(options.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start iam-pgbroker");
        let mut broker = BrokerProcess {
            child: Some(child),
            socket,
            dir,
        };
        broker.wait_ready();
        broker
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("broker exited early ({status}):\n{}", self.log());
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("broker did not start listening:\n{}", self.log());
    }

    /// The audit file's records so far, parsed: every complete line (the
    /// broker may be writing the next one as the file is read: a record is
    /// there once its newline is).
    pub fn audit_records(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.dir.join("audit.jsonl")).unwrap_or_default();
        let complete = match text.rfind('\n') {
            Some(end) => &text[..=end],
            None => "",
        };
        complete
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("audit line is not JSON ({e}): {l}"))
            })
            .collect()
    }

    /// The broker's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("broker.log")).unwrap_or_default()
    }

    /// The broker's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Sends `signal` to the broker.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.pid() as i32, signal);
        }
    }

    /// Waits for the broker to exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// A Rust client config pointed at this broker.
    pub fn client(&self) -> iam_pgconnect::Config {
        iam_pgconnect::Config::new()
            .socket(&self.socket)
            .read_timeout(Duration::from_secs(30))
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A command run as OS user `user` (uid, gid and supplementary groups of
/// that user, like a login), via `setpriv`.
pub fn as_user(user: &str, program: &Path) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={user}"))
        .arg(format!("--regid={user}"))
        .arg("--init-groups")
        .arg("--")
        .arg(program)
        .env_remove("IAM_PGBROKER_SOCKET")
        .stdin(Stdio::null());
    cmd
}

/// `iam-pg` run as `user` against `broker`.
pub fn iam_pg(user: &str, broker: &BrokerProcess) -> Command {
    let mut cmd = as_user(user, &workspace_bin("iam-pg"));
    cmd.env("IAM_PGBROKER_SOCKET", &broker.socket);
    cmd
}

/// The test client (`it-client`, the Rust client library in a process of
/// its own) run as `user` against `broker`.
pub fn it_client(user: &str, broker: &BrokerProcess) -> Command {
    let mut cmd = as_user(user, &workspace_bin("it-client"));
    cmd.env("IAM_PGBROKER_SOCKET", &broker.socket);
    cmd
}

/// Output as text, with the exit code, for assertions with context.
pub struct Ran {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `cmd` to completion.
pub fn run(cmd: &mut Command) -> Ran {
    let out = cmd.output().expect("run command");
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl std::fmt::Debug for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A child process whose stdout is read line by line (to wait for a
/// "ready" marker before killing it).
pub struct Spawned {
    /// The process.
    pub child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Spawned {
    /// Spawns `cmd` with piped stdout.
    pub fn new(cmd: &mut Command) -> Spawned {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("spawn");
        let stdout = child.stdout.take().expect("stdout");
        Spawned {
            child,
            lines: BufReader::new(stdout).lines(),
        }
    }

    /// Reads lines until one contains `marker`; panics (with stderr) at EOF.
    pub fn wait_for(&mut self, marker: &str) -> String {
        for line in self.lines.by_ref() {
            let line = line.expect("read child stdout");
            if line.contains(marker) {
                return line;
            }
        }
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        panic!("child ended before printing {marker:?}: {err}");
    }
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A raw protocol client: bytes in, JSON frames out. For tests that speak
/// the protocol badly on purpose.
pub struct RawClient {
    stream: std::os::unix::net::UnixStream,
    reader: BufReader<std::os::unix::net::UnixStream>,
}

impl RawClient {
    /// Connects to `broker` as the current user (root).
    pub fn connect(broker: &BrokerProcess) -> RawClient {
        let stream = std::os::unix::net::UnixStream::connect(&broker.socket).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let reader = BufReader::new(stream.try_clone().expect("clone"));
        RawClient { stream, reader }
    }

    /// Connects and opens a session: `open` with `params` (`db`, `user`,
    /// `readonly`, …) merged in; panics unless the answer is `opened`.
    pub fn open(broker: &BrokerProcess, params: serde_json::Value) -> RawClient {
        let mut raw = RawClient::connect(broker);
        let mut request = serde_json::json!({"id": 1, "op": "open"});
        if let (Some(obj), Some(extra)) = (request.as_object_mut(), params.as_object()) {
            obj.extend(extra.clone());
        }
        let f = raw.call(request);
        assert_eq!(f[0]["type"], "opened", "{f:?}");
        raw
    }

    /// Sends raw bytes.
    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        self.stream.write_all(bytes)
    }

    /// Sends one JSON value as a line.
    pub fn send_json(&mut self, value: serde_json::Value) {
        let mut line = value.to_string();
        line.push('\n');
        self.send(line.as_bytes()).expect("send");
    }

    /// Reads one frame; `None` at end of stream.
    pub fn recv(&mut self) -> Option<serde_json::Value> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(serde_json::from_str(&line).expect("frame is JSON")),
            Err(e) => panic!("reading a frame failed: {e}"),
        }
    }

    /// Sends a request and reads frames up to its last one (`done`, `ok`,
    /// `opened`, `pong`, `hello` or `error`; `notice` frames come before it).
    pub fn call(&mut self, request: serde_json::Value) -> Vec<serde_json::Value> {
        self.send_json(request);
        let mut frames = Vec::new();
        while let Some(frame) = self.recv() {
            let last = !matches!(
                frame["type"].as_str(),
                Some("columns") | Some("rows") | Some("notice")
            );
            frames.push(frame);
            if last {
                break;
            }
        }
        frames
    }
}

/// A database container of its own, for tests that stop, restart or break
/// it without disturbing the shared appliance. Removed on drop.
pub struct ExtraInstance {
    /// The instance name (`db` in an `open`).
    pub db: String,
    /// The container's name.
    pub container: String,
}

impl ExtraInstance {
    /// Starts a PostgreSQL container `{prefix}{db}-db` on the appliance's
    /// network with a fresh postgres password in the appliance's pwfile
    /// layout, and creates database `{db}` in it.
    pub fn start(tag: &str) -> ExtraInstance {
        let image = docker(&[
            "inspect",
            "-f",
            "{{.Config.Image}}",
            &Appliance::get().container("czechidm"),
        ]);
        ExtraInstance::start_image(tag, &image)
    }

    /// Like [`ExtraInstance::start`], with PostgreSQL `major` (13, 15 or
    /// 17) from scripts/build-pg-image (built locally on first use, a
    /// minute or two; cached by tag afterwards).
    pub fn start_major(tag: &str, major: &str) -> ExtraInstance {
        let out = Command::new(repo_root().join("scripts/build-pg-image"))
            .env("IAM_PG_MAJOR", major)
            .stdin(Stdio::null())
            .output()
            .expect("run scripts/build-pg-image");
        assert!(
            out.status.success(),
            "build-pg-image {major} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let image = stdout.lines().last().unwrap_or_default().trim().to_owned();
        ExtraInstance::start_image(tag, &image)
    }

    fn start_image(tag: &str, image: &str) -> ExtraInstance {
        let app = Appliance::get();
        let db = unique_name(tag).replace('_', "-");
        let container = app.container(&db);
        let secrets = app.root.join(format!("data/volumes/{db}-db/secrets"));
        std::fs::create_dir_all(&secrets).expect("secrets dir");
        let mut bytes = [0u8; 18];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes))
            .expect("urandom");
        let password: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let pwfile = secrets.join("postgres.pwfile");
        std::fs::write(&pwfile, format!("{password}\n")).expect("pwfile");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pwfile, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let _ = Command::new("docker")
            .args(["rm", "-f", &container])
            .output();
        docker(&[
            "run",
            "-d",
            "--name",
            &container,
            "--network",
            &app.network(),
            "--label",
            "iam-dev=1",
            "--label",
            &format!("iam-dev-prefix={}", app.prefix),
            "--stop-signal",
            "SIGINT",
            "--stop-timeout",
            "10",
            "-v",
            &format!("{}:/secrets:ro", secrets.display()),
            "-e",
            "POSTGRES_PASSWORD_FILE=/secrets/postgres.pwfile",
            image,
        ]);
        let instance = ExtraInstance { db, container };
        instance.wait_ready();
        let created = instance.psql("postgres", &format!("CREATE DATABASE \"{}\"", instance.db));
        assert!(
            created.status.success(),
            "{}",
            String::from_utf8_lossy(&created.stderr)
        );
        instance
    }

    /// Waits until the server accepts queries.
    pub fn wait_ready(&self) {
        let ready = eventually(Duration::from_secs(60), || {
            self.psql("postgres", "SELECT 1").status.success()
        });
        assert!(ready, "{} did not become ready", self.container);
    }

    /// psql as the superuser in database `dbname` of this container.
    pub fn psql(&self, dbname: &str, sql: &str) -> Output {
        Command::new("docker")
            .args([
                "exec",
                "-u",
                "postgres",
                &self.container,
                "psql",
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                dbname,
                "-c",
                sql,
            ])
            .stdin(Stdio::null())
            .output()
            .expect("docker exec psql")
    }

    /// The container's address on the appliance network.
    pub fn address(&self) -> String {
        let app = Appliance::get();
        docker(&[
            "inspect",
            "-f",
            &format!(
                "{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}",
                app.network()
            ),
            &self.container,
        ])
    }
}

impl Drop for ExtraInstance {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.container])
            .output();
    }
}

/// Runs `docker ARGS`, panics on failure, returns trimmed stdout.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("docker");
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

// ---------------------------------------------------------------------------
// Operations tests (tests/it/ops_*.rs): brokers started outside
// `BrokerProcess` (socket activation, the shipped example config).

impl RawClient {
    /// Connects to the socket at `path` as the current user (root).
    pub fn connect_path(path: &Path) -> RawClient {
        let stream = std::os::unix::net::UnixStream::connect(path)
            .unwrap_or_else(|e| panic!("connect {}: {e}", path.display()));
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let reader = BufReader::new(stream.try_clone().expect("clone"));
        RawClient { stream, reader }
    }
}

/// A child process that is killed (and reaped) when dropped, for brokers
/// a test starts itself.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
