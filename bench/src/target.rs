//! The two ways to the same database: through the broker, and directly
//! with the password in hand.

use std::path::PathBuf;
use std::time::Duration;
use tokio_postgres::{Client, NoTls};

/// Boxed error for the whole benchmark.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Result with [`BoxError`].
pub type Result<T> = std::result::Result<T, BoxError>;

/// The point lookup as a client of the broker writes it (psycopg2 style).
pub const LOOKUP_BROKER: &str = "SELECT id, username, first_name, last_name, email, state, created FROM idm_identity_bench WHERE username = %s";
/// The same lookup for tokio-postgres.
pub const LOOKUP_DIRECT: &str = "SELECT id, username, first_name, last_name, email, state, created FROM idm_identity_bench WHERE username = $1";
/// The big result: every row of the bench table, 7 columns.
pub const BIG: &str =
    "SELECT id, username, first_name, last_name, email, state, created FROM idm_identity_bench";
/// Rows in the bench table (scripts/dev-appliance seeds exactly this many).
pub const BIG_ROWS: u64 = 100_000;
/// What the CLI comparison runs.
pub const CLI_SQL: &str = "SELECT count(*) FROM idm_identity";

/// Where everything is.
#[derive(Debug, Clone)]
pub struct Target {
    /// The broker's socket.
    pub socket: PathBuf,
    /// The broker's pid, for RSS sampling.
    pub broker_pid: Option<u32>,
    /// Database instance the broker resolves (`czechidm`).
    pub db: String,
    /// The container's address.
    pub host: String,
    /// PostgreSQL's port.
    pub port: u16,
    /// Database name.
    pub dbname: String,
    /// Database user (through the broker and directly).
    pub user: String,
    /// The user's password, from the pwfile.
    pub password: String,
    /// `iam-pg`.
    pub iam_pg: PathBuf,
    /// `psql`.
    pub psql: PathBuf,
    /// CPU counters of the broker, the database and this process.
    pub cpu: crate::machine::CpuProbe,
    /// Brokers like the main one but with the audit off and with
    /// `fsync = "always"` (the main one has `fsync = "interval"`).
    pub audit: Option<AuditSockets>,
    /// PgBouncer in front of the same database (session mode), the anchor
    /// the broker's cost is compared with.
    pub pgbouncer: Option<Proxy>,
    /// Processes running under `valgrind --tool=callgrind`, for the
    /// instruction counts.
    pub callgrind: Option<Callgrind>,
}

/// A PostgreSQL-protocol proxy (PgBouncer): where it listens and its pid.
#[derive(Debug, Clone)]
pub struct Proxy {
    /// Listening address.
    pub host: String,
    /// Listening port.
    pub port: u16,
    /// Its pid, for CPU and context switches.
    pub pid: Option<u32>,
}

/// The processes the instruction counts are taken from, each started
/// under callgrind by scripts/bench.
#[derive(Debug, Clone)]
pub struct Callgrind {
    /// The broker with the audit on (`fsync = "interval"`): socket, pid.
    pub audit_on: (PathBuf, u32),
    /// The broker with the audit off: socket, pid.
    pub audit_off: (PathBuf, u32),
    /// PgBouncer.
    pub pgbouncer: Option<Proxy>,
    /// Where the callgrind output files are written
    /// (`callgrind.out.<pid>.<n>` after each dump).
    pub out_dir: PathBuf,
}

/// The sockets of the brokers the audit measurement compares.
#[derive(Debug, Clone)]
pub struct AuditSockets {
    /// `[audit] enabled = false`.
    pub off: PathBuf,
    /// `[audit] fsync = "always"`.
    pub always: PathBuf,
}

impl Target {
    /// A broker client configuration: the session every user gets by
    /// default (read-only).
    pub fn broker(&self) -> iam_pgconnect::Config {
        iam_pgconnect::Config::new()
            .socket(&self.socket)
            .db(&self.db)
            .dbname(&self.dbname)
            .user(&self.user)
            .read_timeout(Duration::from_secs(120))
            .client_name("iam-pgbroker-bench")
            // IAM_BENCH_PROTOCOL=1 measures version 1's typed JSON values
            // (the broker's binary path) against the default version 2's
            // text values.
            .protocol_version(
                std::env::var("IAM_BENCH_PROTOCOL")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(iam_pgconnect::PROTOCOL_VERSION),
            )
    }

    /// The same session through the broker listening on `socket`.
    pub fn broker_at(&self, socket: &std::path::Path) -> iam_pgconnect::Config {
        self.broker().socket(socket)
    }

    /// A tokio-postgres configuration with the password (SCRAM).
    pub fn direct(&self) -> tokio_postgres::Config {
        self.config_at(&self.host, self.port)
    }

    /// The same at another address. (`host` and `port` add to a Config's
    /// list of addresses, tried in order, so each address gets a Config
    /// of its own.)
    fn config_at(&self, host: &str, port: u16) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host(host)
            .port(port)
            .dbname(&self.dbname)
            .user(&self.user)
            .password(&self.password)
            .connect_timeout(Duration::from_secs(10));
        c
    }

    /// A direct connection whose driver runs as a task on the current
    /// runtime. Call inside a runtime.
    pub async fn connect_direct(&self) -> Result<Client> {
        self.connect_via(None).await
    }

    /// Like [`Target::connect_direct`], through `proxy` when given (same
    /// database, user and password).
    pub async fn connect_via(&self, proxy: Option<&Proxy>) -> Result<Client> {
        let config = match proxy {
            Some(p) => self.config_at(&p.host, p.port),
            None => self.direct(),
        };
        let (client, connection) = config.connect(NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }
}

/// Reads a pwfile as the broker does: the first line, one trailing newline
/// stripped.
pub fn read_pwfile(path: &std::path::Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let line = text.split('\n').next().unwrap_or("");
    Ok(line.strip_suffix('\r').unwrap_or(line).to_owned())
}

/// A fixed pseudo-random walk over the bench table's usernames
/// (`user000001` … `user100000`), so point lookups hit different rows.
#[derive(Debug, Clone)]
pub struct Usernames(u64);

impl Usernames {
    /// A walk from `seed` (any value).
    pub fn new(seed: u64) -> Usernames {
        Usernames(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
}

impl Iterator for Usernames {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        // xorshift64
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        Some(format!("user{:06}", 1 + x % BIG_ROWS))
    }
}

/// Reads every value of a broker row (the JSON the client decoded).
pub fn touch_broker_row(row: &iam_pgconnect::Row) -> usize {
    row.values()
        .iter()
        .map(|v| match v {
            serde_json::Value::String(s) => s.len(),
            serde_json::Value::Null => 0,
            _ => 1,
        })
        .sum()
}

/// Decodes every column of a direct row into its Rust type.
pub fn touch_direct_row(row: &tokio_postgres::Row) -> Result<usize> {
    let id: &[u8] = row.try_get(0)?;
    let username: &str = row.try_get(1)?;
    let first: Option<&str> = row.try_get(2)?;
    let last: Option<&str> = row.try_get(3)?;
    let email: Option<&str> = row.try_get(4)?;
    let state: &str = row.try_get(5)?;
    let created: std::time::SystemTime = row.try_get(6)?;
    let secs = created
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as usize & 1)
        .unwrap_or(0);
    Ok(id.len()
        + username.len()
        + first.map_or(0, str::len)
        + last.map_or(0, str::len)
        + email.map_or(0, str::len)
        + state.len()
        + secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_in_range_and_vary() {
        let names: Vec<String> = Usernames::new(7).take(1000).collect();
        assert!(names
            .iter()
            .all(|n| n.len() == 10 && n.starts_with("user") && n != "user000000"));
        let distinct: std::collections::HashSet<_> = names.iter().collect();
        assert!(distinct.len() > 990);
        assert_ne!(
            Usernames::new(1).next(),
            Usernames::new(2).next(),
            "seeds give different walks"
        );
    }

    #[test]
    fn pwfile_first_line_without_newline() {
        let dir = std::env::temp_dir().join(format!("iam-bench-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("p.pwfile");
        std::fs::write(&f, "s3cret\n").unwrap();
        assert_eq!(read_pwfile(&f).unwrap(), "s3cret");
        std::fs::write(&f, "s3cret").unwrap();
        assert_eq!(read_pwfile(&f).unwrap(), "s3cret");
        assert!(read_pwfile(&dir.join("missing"))
            .unwrap_err()
            .to_string()
            .contains("missing"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
