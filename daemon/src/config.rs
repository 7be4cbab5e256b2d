//! Configuration: the TOML file, its `policy.d` drop-ins, defaults that match
//! the appliance, and validation with file and line in every error.
//!
//! Loading is two steps, as in pgdog: deserialize into
//! `#[serde(deny_unknown_fields)]` structs (syntax, unknown keys and wrong
//! types fail here, with toml's line and column), then [`Config::validate`]
//! for what a type cannot say. A caller swaps the live config only when both
//! succeed.

use crate::policy::{Policy, Rule, RuleMode};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default location of the main configuration file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/iam-pgbroker/config.toml";

/// Why the configuration could not be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the schema. toml's own
    /// message carries the line and column.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's error (with line and column).
        #[source]
        source: toml::de::Error,
    },
    /// A file or folder that someone other than root could change: it is
    /// not read, as sudo refuses such files in `sudoers.d`.
    #[error("{path}: refused: {message}")]
    Unsafe {
        /// The file or folder as named (a symlink is named as found).
        path: PathBuf,
        /// Who could change it, and how to fix that.
        message: String,
    },
    /// A value is well-formed but not acceptable.
    #[error("{path}:{line}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line of the offending table or key.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// The whole configuration of a running broker.
#[derive(Debug, Clone)]
pub struct Config {
    /// The main file this was loaded from.
    pub path: PathBuf,
    /// `[server]`.
    pub server: ServerConfig,
    /// `[docker]`.
    pub docker: DockerConfig,
    /// `[database]` with its per-instance overrides.
    pub database: DatabaseConfig,
    /// `[limits]`.
    pub limits: LimitsConfig,
    /// `[fair_share]`: every user's share of what the broker hands out.
    pub fair_share: crate::fairness::FairShareConfig,
    /// `[pool]`.
    pub pool: PoolConfig,
    /// `[audit]`.
    pub audit: crate::audit::AuditConfig,
    /// `[approval]`: change requests.
    pub approval: crate::approval::ApprovalConfig,
    /// `[guard]`: what read sessions may run beyond what the guard knows.
    pub guard: GuardConfig,
    /// `[secrets]`: password sources and their order.
    pub secrets: crate::secrets::SecretsConfig,
    /// `[metrics]`: the HTTP endpoint (read at start).
    pub metrics: crate::metrics::MetricsConfig,
    /// The statement guard built from `[guard]` once per load, so every
    /// session of this configuration shares its verdict cache.
    pub sql_guard: iam_pgbroker_sql::SqlGuard,
    /// Rules from the main file and the drop-ins, in load order.
    pub policy: Policy,
    /// The drop-in files that were read, in order.
    pub dropins: Vec<PathBuf>,
}

/// `[server]`: the listening socket.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Path of the Unix socket.
    pub socket: PathBuf,
    /// Permission bits of the socket file.
    pub socket_mode: u32,
    /// Group that owns the socket file (members may connect; the policy
    /// decides what they get). `None` keeps the broker's own group.
    pub socket_group: Option<String>,
    /// Folder of policy drop-ins. Relative paths are relative to the folder
    /// of the main file.
    pub policy_dir: PathBuf,
    /// Members of this group (and root) may ask for `status`.
    pub admin_group: Option<String>,
    /// How long shutdown waits for sessions to roll back and close.
    #[serde(with = "duration_ms", rename = "shutdown_grace_ms")]
    pub shutdown_grace: Duration,
    /// Threads that serve connections; 0: one per CPU. Read at start only.
    pub worker_threads: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            socket: PathBuf::from(iam_pgbroker_proto::DEFAULT_SOCKET_PATH),
            socket_mode: 0o660,
            socket_group: None,
            policy_dir: PathBuf::from("policy.d"),
            admin_group: Some("iam-pgbroker-admin".into()),
            shutdown_grace: Duration::from_secs(10),
            worker_threads: 0,
        }
    }
}

/// `[docker]`: how containers are found.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DockerConfig {
    /// Path of the Docker Engine's socket.
    pub socket: PathBuf,
    /// Container name pattern; `{db}` is the instance name.
    pub container: String,
    /// Network whose address is used. `None`: the container's only network
    /// (several networks without this setting is an error, never a guess).
    pub network: Option<String>,
    /// Timeout of one Docker API call.
    #[serde(with = "duration_ms", rename = "timeout_ms")]
    pub timeout: Duration,
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            socket: PathBuf::from("/var/run/docker.sock"),
            container: "{db}-db".into(),
            network: None,
            timeout: Duration::from_secs(5),
        }
    }
}

/// `[database]`: defaults for every instance, and `[database.instance.NAME]`
/// overrides.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// Pwfile pattern; `{db}` and `{user}` are substituted.
    pub pwfile: String,
    /// PostgreSQL port inside the container.
    pub port: u16,
    /// Database name pattern; `{db}` is the instance name.
    pub dbname: String,
    /// Timeout of the connection to PostgreSQL (TCP + authentication).
    #[serde(with = "duration_ms", rename = "connect_timeout_ms")]
    pub connect_timeout: Duration,
    /// `statement_timeout` of every session (PostgreSQL cancels a statement
    /// that runs longer). 0 disables it. A rule may override it.
    pub statement_timeout_ms: u64,
    /// `idle_in_transaction_session_timeout`: PostgreSQL ends a session
    /// whose transaction stays open and idle longer (and rolls it back).
    /// 0 disables it. A rule may override it.
    pub idle_in_transaction_timeout_ms: u64,
    /// The group role of read sessions whose database user holds
    /// superuser-level power: they log in as `{read_role}_{uid}`, a member
    /// of it that may read every table and nothing else (the broker creates
    /// both; see docs/security.md).
    pub read_role: String,
    /// Per-instance overrides, keyed by instance name.
    pub instance: BTreeMap<String, InstanceOverride>,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            pwfile: "/data/volumes/{db}-db/secrets/{user}.pwfile".into(),
            port: 5432,
            dbname: "{db}".into(),
            connect_timeout: Duration::from_secs(5),
            statement_timeout_ms: 60_000,
            idle_in_transaction_timeout_ms: 600_000,
            read_role: "iam_pgbroker_read".into(),
            instance: BTreeMap::new(),
        }
    }
}

/// `[guard]`: functions, operators and types an administrator allows in read
/// sessions although the guard does not know them (the application's own
/// read-only helpers, an extension it was not built with). Each entry is
/// `name` or `schema.name`, `*` matching any run of characters. An entry
/// never overrides a refusal of the guard's table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardConfig {
    /// Functions read sessions may call.
    pub read_functions: Vec<String>,
    /// Operators read sessions may use.
    pub read_operators: Vec<String>,
    /// Types read sessions may name (casts, column definitions).
    pub read_types: Vec<String>,
}

impl GuardConfig {
    fn validate(&self) -> Result<(), String> {
        for (key, list) in [
            ("read_functions", &self.read_functions),
            ("read_operators", &self.read_operators),
            ("read_types", &self.read_types),
        ] {
            for entry in list {
                let bad = entry.is_empty()
                    || entry.len() > 200
                    || entry.chars().any(|c| c.is_whitespace() || c.is_control());
                if bad {
                    return Err(format!(
                        "guard.{key} entry {entry:?} must be a name or schema.name (no spaces, at most 200 bytes)"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The guard these allowances make.
    pub fn sql_guard(&self) -> iam_pgbroker_sql::SqlGuard {
        iam_pgbroker_sql::SqlGuard::with_read_allowances(iam_pgbroker_sql::ReadAllowances {
            functions: self.read_functions.clone(),
            operators: self.read_operators.clone(),
            types: self.read_types.clone(),
        })
    }
}

/// `[database.instance.NAME]`: what differs for one instance.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceOverride {
    /// Container name (no pattern).
    pub container: Option<String>,
    /// Network name.
    pub network: Option<String>,
    /// Pwfile pattern (`{user}` substituted).
    pub pwfile: Option<String>,
    /// Port.
    pub port: Option<u16>,
    /// Default database name.
    pub dbname: Option<String>,
    /// Password sources of this instance, in order (instead of
    /// `[secrets] sources`).
    pub secrets: Option<Vec<crate::secrets::SourceKind>>,
}

/// `[limits]`: what protects everyone else from one client.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Hard limit on one request line, in bytes.
    pub max_line_bytes: usize,
    /// Rows per `rows` frame.
    pub rows_per_chunk: usize,
    /// Soft limit on the size of one `rows` frame, in bytes.
    pub chunk_bytes: usize,
    /// Client connections at once, all users together; more get `busy`.
    pub max_connections: usize,
    /// Client connections at once per uid; more get `busy`.
    pub max_connections_per_uid: usize,
    /// Rows one result may have; more end it with `limit` (0: no limit).
    pub max_result_rows: u64,
    /// Bytes (as JSON) one result may have; more end it with `limit`
    /// (0: no limit).
    pub max_result_bytes: u64,
    /// A connection that sends nothing for this long is closed (an open
    /// transaction is rolled back). 0: never.
    #[serde(with = "duration_ms", rename = "idle_timeout_ms")]
    pub idle_timeout: Duration,
    /// A request line must be complete this long after its first byte
    /// arrived; a client that sends half a line and stops is closed.
    #[serde(with = "duration_ms", rename = "request_timeout_ms")]
    pub request_timeout: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_line_bytes: iam_pgbroker_proto::DEFAULT_MAX_LINE_BYTES,
            rows_per_chunk: iam_pgbroker_proto::DEFAULT_ROWS_PER_CHUNK,
            chunk_bytes: iam_pgbroker_proto::DEFAULT_CHUNK_BYTES,
            max_connections: 512,
            max_connections_per_uid: 64,
            max_result_rows: 10_000_000,
            max_result_bytes: 2 * 1024 * 1024 * 1024,
            idle_timeout: Duration::from_secs(3600),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// `[pool]`: warm server connections.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolConfig {
    /// Idle connections kept per target (address, database, user, role).
    /// 0 disables pooling: every session connects afresh.
    pub max_idle_per_target: usize,
    /// An idle connection is closed after this long.
    #[serde(with = "duration_ms", rename = "idle_timeout_ms")]
    pub idle_timeout: Duration,
    /// A connection is closed instead of reused after this long.
    #[serde(with = "duration_ms", rename = "max_lifetime_ms")]
    pub max_lifetime: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_idle_per_target: 16,
            idle_timeout: Duration::from_secs(60),
            max_lifetime: Duration::from_secs(3600),
        }
    }
}

impl PoolConfig {
    /// The pool's limits.
    pub fn limits(&self) -> crate::pool::PoolLimits {
        crate::pool::PoolLimits {
            max_idle_per_key: self.max_idle_per_target,
            idle_timeout: self.idle_timeout,
            max_lifetime: self.max_lifetime,
        }
    }
}

/// A resolved instance: where to find its container and secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceTarget {
    /// Instance name (`czechidm`).
    pub db: String,
    /// Container name (`czechidm-db`).
    pub container: String,
    /// Network to take the address from.
    pub network: Option<String>,
    /// Port.
    pub port: u16,
    /// Database name to connect to.
    pub dbname: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MainFile {
    #[serde(default)]
    server: ServerConfig,
    #[serde(default)]
    docker: DockerConfig,
    #[serde(default)]
    database: DatabaseConfig,
    #[serde(default)]
    limits: LimitsConfig,
    #[serde(default)]
    pool: PoolConfig,
    #[serde(default)]
    audit: crate::audit::AuditConfig,
    #[serde(default)]
    approval: crate::approval::ApprovalConfig,
    #[serde(default)]
    guard: GuardConfig,
    #[serde(default)]
    secrets: crate::secrets::SecretsConfig,
    #[serde(default)]
    metrics: crate::metrics::MetricsConfig,
    #[serde(default)]
    fair_share: crate::fairness::FairShareConfig,
    #[serde(default)]
    rule: Vec<toml::Spanned<RuleFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DropinFile {
    #[serde(default)]
    rule: Vec<toml::Spanned<RuleFile>>,
}

/// One `[[rule]]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    name: Option<String>,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    uids: Vec<u32>,
    #[serde(default)]
    groups: Vec<String>,
    dbs: Vec<String>,
    db_users: Vec<String>,
    #[serde(default)]
    dbnames: Vec<String>,
    work_mem_kb: Option<u64>,
    temp_file_limit_kb: Option<u64>,
    mode: RuleMode,
    #[serde(default)]
    ddl: bool,
    #[serde(default)]
    require_reason: bool,
    db_role: Option<String>,
    statement_timeout_ms: Option<u64>,
    idle_in_transaction_timeout_ms: Option<u64>,
    #[serde(default)]
    approve: bool,
    #[serde(default)]
    dynamic_credentials: bool,
}

impl Config {
    /// Loads the main file and every `*.toml` drop-in of the policy folder
    /// (in name order, like `sudoers.d`), then validates the whole.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        check_trusted(path, false)?;
        let text = read(path)?;
        let main: MainFile = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })?;
        let mut rules = Vec::new();
        collect_rules(path, &text, main.rule, &mut rules)?;

        let policy_dir = if main.server.policy_dir.is_absolute() {
            main.server.policy_dir.clone()
        } else {
            path.parent()
                .unwrap_or(Path::new("/"))
                .join(&main.server.policy_dir)
        };
        let dropins = list_dropins(&policy_dir)?;
        for dropin in &dropins {
            let text = read(dropin)?;
            let file: DropinFile = toml::from_str(&text).map_err(|source| ConfigError::Parse {
                path: dropin.clone(),
                source,
            })?;
            collect_rules(dropin, &text, file.rule, &mut rules)?;
        }

        let config = Config {
            path: path.to_owned(),
            server: main.server,
            docker: main.docker,
            database: main.database,
            limits: main.limits,
            pool: main.pool,
            audit: main.audit,
            approval: main.approval,
            sql_guard: main.guard.sql_guard(),
            guard: main.guard,
            secrets: main.secrets,
            metrics: main.metrics,
            fair_share: main.fair_share,
            policy: Policy::new(rules),
            dropins,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks what the types cannot: ranges, patterns, duplicate rule names.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: self.path.clone(),
            line: 0,
            message,
        };
        if self.server.socket_mode > 0o777 {
            return Err(invalid(format!(
                "server.socket_mode {:#o} is not a permission mode (at most 0o777)",
                self.server.socket_mode
            )));
        }
        if self.server.worker_threads > 256 {
            return Err(invalid(format!(
                "server.worker_threads {} is more than 256",
                self.server.worker_threads
            )));
        }
        if !self.docker.container.contains("{db}") {
            return Err(invalid(format!(
                "docker.container {:?} must contain {{db}}",
                self.docker.container
            )));
        }
        if !self.database.pwfile.contains("{user}") {
            return Err(invalid(format!(
                "database.pwfile {:?} must contain {{user}}",
                self.database.pwfile
            )));
        }
        self.audit.validate().map_err(&invalid)?;
        self.approval.validate().map_err(&invalid)?;
        self.guard.validate().map_err(&invalid)?;
        self.secrets.validate().map_err(&invalid)?;
        self.metrics.validate().map_err(&invalid)?;
        for (name, over) in &self.database.instance {
            if let Some(order) = &over.secrets {
                let key = format!("database.instance.{name}.secrets");
                crate::secrets::config::check_order(&key, order).map_err(&invalid)?;
                if order.contains(&crate::secrets::SourceKind::Openbao)
                    && self.secrets.openbao.is_none()
                {
                    return Err(invalid(format!(
                        "{key} names openbao, but there is no [secrets.openbao]"
                    )));
                }
            }
        }
        if self.secrets.openbao.is_none() {
            if let Some(rule) = self.policy.rules().iter().find(|r| r.dynamic_credentials) {
                return Err(invalid(format!(
                    "rule {:?} asks for dynamic_credentials, but there is no [secrets.openbao]",
                    rule.name
                )));
            }
        }
        let role = &self.database.read_role;
        let plain = !role.is_empty()
            && role.len() <= 40
            && role.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && role
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && !role.starts_with("pg_");
        if !plain {
            return Err(invalid(format!(
                "database.read_role {role:?} must be a plain lower-case name (a-z, 0-9, _; at most 40; not pg_…)"
            )));
        }
        if self.limits.max_line_bytes < 1024 {
            return Err(invalid(
                "limits.max_line_bytes must be at least 1024".into(),
            ));
        }
        if self.limits.max_connections == 0 || self.limits.max_connections_per_uid == 0 {
            return Err(invalid(
                "limits.max_connections and limits.max_connections_per_uid must be positive".into(),
            ));
        }
        if let Err(message) = self.fair_share.check() {
            return Err(invalid(message));
        }
        if self.limits.request_timeout.is_zero() {
            return Err(invalid("limits.request_timeout_ms must be positive".into()));
        }
        if self.limits.rows_per_chunk == 0 || self.limits.chunk_bytes == 0 {
            return Err(invalid(
                "limits.rows_per_chunk and limits.chunk_bytes must be positive".into(),
            ));
        }
        Ok(())
    }

    /// Where instance `db` lives, and which database name to use when the
    /// client names none.
    pub fn target(&self, db: &str, dbname: Option<&str>) -> InstanceTarget {
        let over = self.database.instance.get(db).cloned().unwrap_or_default();
        InstanceTarget {
            db: db.to_owned(),
            container: over
                .container
                .unwrap_or_else(|| self.docker.container.replace("{db}", db)),
            network: over.network.or_else(|| self.docker.network.clone()),
            port: over.port.unwrap_or(self.database.port),
            dbname: dbname.map(str::to_owned).unwrap_or_else(|| {
                over.dbname
                    .unwrap_or_else(|| self.database.dbname.replace("{db}", db))
            }),
        }
    }

    /// The password sources of instance `db`, in order.
    pub fn secret_sources(&self, db: &str) -> Vec<crate::secrets::SourceKind> {
        match self
            .database
            .instance
            .get(db)
            .and_then(|o| o.secrets.clone())
        {
            Some(order) => order,
            None => self.secret_sources_default(),
        }
    }

    /// The password sources of instances without an override.
    pub fn secret_sources_default(&self) -> Vec<crate::secrets::SourceKind> {
        self.secrets
            .sources
            .clone()
            .unwrap_or_else(|| crate::secrets::config::DEFAULT_ORDER.to_vec())
    }

    /// Path of the pwfile holding `user`'s password on instance `db`.
    pub fn pwfile(&self, db: &str, user: &str) -> PathBuf {
        let pattern = self
            .database
            .instance
            .get(db)
            .and_then(|o| o.pwfile.as_deref())
            .unwrap_or(&self.database.pwfile);
        PathBuf::from(pattern.replace("{db}", db).replace("{user}", user))
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Refuses a file (or, with `folder`, a folder) that anyone but root could
/// change: the policy grants database access, so whoever can write it is as
/// powerful as the broker (sudo's rule for `sudoers.d`). A symlink is
/// resolved and its target checked the same way. The broker's own uid is
/// trusted too, so a broker run by an unprivileged user for testing reads
/// that user's files; in production that uid is root.
pub fn check_trusted(path: &Path, folder: bool) -> Result<(), ConfigError> {
    use std::os::unix::fs::MetadataExt;
    let unsafe_ = |message: String| ConfigError::Unsafe {
        path: path.to_owned(),
        message,
    };
    let read_err = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let real = std::fs::canonicalize(path).map_err(read_err)?;
    let meta = std::fs::metadata(&real).map_err(read_err)?;
    let shown = if real != path {
        format!("{} (the target of the symlink)", real.display())
    } else {
        "it".to_owned()
    };
    if folder != meta.is_dir() {
        let want = if folder { "a folder" } else { "a regular file" };
        return Err(unsafe_(format!("{shown} is not {want}")));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != me {
        return Err(unsafe_(format!(
            "{shown} is owned by uid {}, not root; only root may own the broker's configuration (chown root:root)",
            meta.uid()
        )));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        let who = match mode & 0o022 {
            0o020 => "its group",
            0o002 => "everyone",
            _ => "its group and everyone",
        };
        return Err(unsafe_(format!(
            "{shown} is writable by {who} (mode {mode:04o}); only root may change the broker's configuration (chmod go-w)"
        )));
    }
    Ok(())
}

fn list_dropins(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    match std::fs::symlink_metadata(dir) {
        // No drop-in folder is a valid setup: all rules are in the main file.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        _ => check_trusted(dir, true)?,
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        // No drop-in folder is a valid setup: all rules are in the main file.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(ConfigError::Read {
                path: dir.to_owned(),
                source,
            })
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| ConfigError::Read {
            path: dir.to_owned(),
            source,
        })?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        // Like sudoers.d: editor backups and hidden files are not policy.
        if name.starts_with('.') || !name.ends_with(".toml") {
            continue;
        }
        check_trusted(&path, false)?;
        files.push(path);
    }
    files.sort();
    Ok(files)
}

fn collect_rules(
    path: &Path,
    text: &str,
    raw: Vec<toml::Spanned<RuleFile>>,
    out: &mut Vec<Rule>,
) -> Result<(), ConfigError> {
    for spanned in raw {
        let line = line_of(text, spanned.span().start);
        let r = spanned.into_inner();
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            line,
            message,
        };
        let name = r.name.unwrap_or_else(|| {
            format!(
                "{}:{line}",
                path.file_name().unwrap_or_default().to_string_lossy()
            )
        });
        if r.users.is_empty() && r.uids.is_empty() && r.groups.is_empty() {
            return Err(invalid(format!(
                "rule {name:?} matches nobody: give users, uids or groups"
            )));
        }
        if r.dbs.is_empty() || r.db_users.is_empty() {
            return Err(invalid(format!(
                "rule {name:?} grants nothing: dbs and db_users must not be empty (\"*\" means all)"
            )));
        }
        for value in r
            .users
            .iter()
            .chain(&r.groups)
            .chain(&r.dbs)
            .chain(&r.db_users)
        {
            if value.is_empty() || value.chars().any(char::is_whitespace) {
                return Err(invalid(format!(
                    "rule {name:?}: {value:?} is not a valid name"
                )));
            }
        }
        if r.ddl && r.mode != RuleMode::Write {
            return Err(invalid(format!(
                "rule {name:?}: ddl = true needs mode = \"write\""
            )));
        }
        if let Some(role) = &r.db_role {
            if !is_plain_identifier(role) {
                return Err(invalid(format!(
                    "rule {name:?}: db_role {role:?} is not a plain role name (letters, digits, '_', '$')"
                )));
            }
        }
        if let Some(first) = out.iter().find(|existing: &&Rule| existing.name == name) {
            return Err(invalid(format!(
                "rule name {name:?} is used twice: first at {}, again here",
                first.source
            )));
        }
        out.push(Rule {
            name,
            source: format!("{}:{line}", path.display()),
            users: r.users,
            uids: r.uids,
            groups: r.groups,
            dbs: r.dbs,
            db_users: r.db_users,
            dbnames: r.dbnames,
            work_mem_kb: r.work_mem_kb,
            temp_file_limit_kb: r.temp_file_limit_kb,
            mode: r.mode,
            ddl: r.ddl,
            require_reason: r.require_reason,
            db_role: r.db_role,
            statement_timeout_ms: r.statement_timeout_ms,
            idle_in_transaction_timeout_ms: r.idle_in_transaction_timeout_ms,
            approve: r.approve,
            dynamic_credentials: r.dynamic_credentials,
        });
    }
    Ok(())
}

/// A role name the broker can quote safely and an administrator can read:
/// what PostgreSQL accepts unquoted, any case.
fn is_plain_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        && name.len() <= 63
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map(|before| before.bytes().filter(|b| *b == b'\n').count() + 1)
        .unwrap_or(1)
}

mod duration_ms {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    fn tempdir(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("iam-pgbroker-config-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn empty_file_gives_appliance_defaults() {
        let dir = tempdir("empty");
        let path = write(&dir, "config.toml", "");
        let config = Config::load(&path).unwrap();
        assert_eq!(
            config.server.socket,
            Path::new("/run/iam-pgbroker/pgbroker.sock")
        );
        assert_eq!(config.docker.socket, Path::new("/var/run/docker.sock"));
        let t = config.target("czechidm", None);
        assert_eq!(
            (t.container.as_str(), t.port, t.dbname.as_str()),
            ("czechidm-db", 5432, "czechidm")
        );
        assert_eq!(
            config.pwfile("bridge", "postgres"),
            Path::new("/data/volumes/bridge-db/secrets/postgres.pwfile")
        );
        assert!(config.policy.rules().is_empty());
    }

    #[test]
    fn unknown_keys_name_file_and_line() {
        let dir = tempdir("unknown");
        let path = write(
            &dir,
            "config.toml",
            "[server]\nsocket = \"/x\"\nsokcet_mode = 1\n",
        );
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(err.contains("config.toml"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("sokcet_mode"), "{err}");
    }

    #[test]
    fn bad_mode_names_the_line() {
        let dir = tempdir("badmode");
        let text =
            "\n[[rule]]\nusers = [\"a\"]\ndbs = [\"*\"]\ndb_users = [\"*\"]\nmode = \"admin\"\n";
        let path = write(&dir, "config.toml", text);
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(err.contains("line 6"), "{err}");
    }

    #[test]
    fn rule_matching_nobody_is_refused_with_its_line() {
        let dir = tempdir("nobody");
        let text = "[server]\n\n[[rule]]\nname = \"x\"\ndbs = [\"*\"]\ndb_users = [\"*\"]\nmode = \"read\"\n";
        let path = write(&dir, "config.toml", text);
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(
            err.ends_with("matches nobody: give users, uids or groups"),
            "{err}"
        );
        assert!(err.contains("config.toml:3:"), "{err}");
    }

    #[test]
    fn dropins_are_read_in_name_order_and_backups_skipped() {
        let dir = tempdir("dropins");
        let path = write(
            &dir,
            "config.toml",
            "[[rule]]\nname = \"main\"\nusers = [\"root\"]\ndbs = [\"*\"]\ndb_users = [\"*\"]\nmode = \"write\"\n",
        );
        let rule = |n: &str| {
            format!("[[rule]]\nname = \"{n}\"\nuids = [1]\ndbs = [\"a\"]\ndb_users = [\"b\"]\nmode = \"read\"\n")
        };
        write(&dir, "policy.d/20-b.toml", &rule("b"));
        write(&dir, "policy.d/10-a.toml", &rule("a"));
        write(&dir, "policy.d/10-a.toml~", &rule("backup"));
        write(&dir, "policy.d/.hidden.toml", &rule("hidden"));
        let config = Config::load(&path).unwrap();
        let names: Vec<_> = config
            .policy
            .rules()
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(names, ["main", "a", "b"]);
        let bad = write(&dir, "policy.d/30-c.toml", &rule("a"));
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(
            err.contains(&bad.display().to_string())
                && err.contains("used twice: first at ")
                && err.contains("10-a.toml:1"),
            "{err}"
        );
    }

    #[test]
    fn files_others_could_change_are_refused_like_sudoers_d() {
        use std::os::unix::fs::PermissionsExt;
        let chmod = |p: &Path, mode: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
        };
        let dir = tempdir("trust");
        let path = write(&dir, "config.toml", "");
        let rule = "[[rule]]\nname = \"x\"\nuids = [1]\ndbs = [\"a\"]\ndb_users = [\"b\"]\nmode = \"read\"\n";
        let dropin = write(&dir, "policy.d/50-x.toml", rule);
        Config::load(&path).unwrap();

        // A world-writable drop-in: refused, named, with the fix.
        chmod(&dropin, 0o666);
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("50-x.toml")
                && err.contains("writable by its group and everyone")
                && err.contains("chmod go-w"),
            "{err}"
        );
        chmod(&dropin, 0o644);
        // A group-writable main file and policy folder.
        chmod(&path, 0o664);
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("config.toml: refused") && err.contains("its group"),
            "{err}"
        );
        chmod(&path, 0o644);
        chmod(&dir.join("policy.d"), 0o777);
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(err.contains("policy.d: refused"), "{err}");
        chmod(&dir.join("policy.d"), 0o755);

        // A symlink is judged by its target.
        let outside = write(&dir, "elsewhere/60-y.toml", &rule.replace("\"x\"", "\"y\""));
        chmod(&outside, 0o646);
        std::os::unix::fs::symlink(&outside, dir.join("policy.d/60-y.toml")).unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("60-y.toml: refused")
                && err.contains("target of the symlink")
                && err.contains("everyone"),
            "{err}"
        );
        chmod(&outside, 0o644);
        assert_eq!(Config::load(&path).unwrap().policy.rules().len(), 2);

        // Owned by an ordinary user (only root can hand a file over).
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::chown(&outside, Some(65534), None).unwrap();
            let err = Config::load(&path).unwrap_err().to_string();
            assert!(err.contains("owned by uid 65534, not root"), "{err}");
        }
    }

    #[test]
    fn instance_overrides_apply() {
        let dir = tempdir("override");
        let text = "[docker]\ncontainer = \"dev-{db}-db\"\n[database.instance.bridge]\ndbname = \"bridge_main\"\nport = 6543\npwfile = \"/s/{user}.pw\"\n";
        let path = write(&dir, "config.toml", text);
        let config = Config::load(&path).unwrap();
        let t = config.target("bridge", None);
        assert_eq!(
            (t.container.as_str(), t.port, t.dbname.as_str()),
            ("dev-bridge-db", 6543, "bridge_main")
        );
        assert_eq!(config.target("bridge", Some("other")).dbname, "other");
        assert_eq!(config.pwfile("bridge", "bridge"), Path::new("/s/bridge.pw"));
        assert_eq!(config.target("czechidm", None).container, "dev-czechidm-db");
    }
}
