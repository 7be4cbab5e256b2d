use crate::{Connection, Error};
use iam_pgbroker_proto::{OpenParams, DEFAULT_SOCKET_PATH, SOCKET_ENV};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How to connect: which database instance, as which database user, in
/// which mode, through which socket.
///
/// Every setting has the seed library's default: `db = "czechidm"`,
/// `user = "postgres"`, the database name equal to `db`, read-only. The
/// socket is [`socket`](Config::socket) if set, else the environment
/// variable `IAM_PGBROKER_SOCKET` if set and non-empty, else
/// `/run/iam-pgbroker/pgbroker.sock`.
///
/// ```no_run
/// # fn main() -> Result<(), iam_pgconnect::Error> {
/// let mut db = iam_pgconnect::Config::new()
///     .db("bridge")
///     .user("bridge")
///     .reason("nightly consistency check")
///     .connect()?;
/// let rows = db.query("SELECT current_user", &[])?;
/// println!("{}", rows[0]["current_user"]);
/// db.close()
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    open: OpenParams,
    socket: Option<PathBuf>,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    client_name: String,
    protocol: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config::new()
    }
}

impl Config {
    /// The defaults: `czechidm` as `postgres`, read-only.
    pub fn new() -> Config {
        Config {
            open: OpenParams::default(),
            socket: None,
            read_timeout: None,
            write_timeout: None,
            client_name: concat!("iam-pgconnect/", env!("CARGO_PKG_VERSION")).to_owned(),
            protocol: iam_pgbroker_proto::PROTOCOL_VERSION,
        }
    }

    /// The highest protocol version to ask for (default: the newest this
    /// library speaks). Version 1 gives version 1's typed JSON values and
    /// refuses the types it has no JSON for; it is here for comparing the
    /// two (`scripts/bench`), not for tools.
    pub fn protocol_version(mut self, version: u32) -> Config {
        self.protocol = version.clamp(
            iam_pgbroker_proto::OLDEST_PROTOCOL_VERSION,
            iam_pgbroker_proto::PROTOCOL_VERSION,
        );
        self
    }

    /// The database instance (the `{db}-db` container), e.g. `"bridge"`.
    pub fn db(mut self, db: impl Into<String>) -> Config {
        self.open.db = db.into();
        self
    }

    /// The database user to connect as, e.g. `"czechidm"`.
    pub fn user(mut self, user: impl Into<String>) -> Config {
        self.open.user = user.into();
        self
    }

    /// The database name inside the instance, when it differs from `db`.
    pub fn dbname(mut self, dbname: impl Into<String>) -> Config {
        self.open.dbname = Some(dbname.into());
        self
    }

    /// `false` asks for a session that may write; the broker's policy must
    /// grant it. Default `true`.
    pub fn readonly(mut self, readonly: bool) -> Config {
        self.open.readonly = readonly;
        self
    }

    /// Why the session is opened. Recorded in the audit; required by policy
    /// rules with `require_reason`.
    pub fn reason(mut self, reason: impl Into<String>) -> Config {
        self.open.reason = Some(reason.into());
        self
    }

    /// The broker's socket. Wins over `IAM_PGBROKER_SOCKET`.
    pub fn socket(mut self, path: impl Into<PathBuf>) -> Config {
        self.socket = Some(path.into());
        self
    }

    /// How long to wait for each answer frame before giving up with a
    /// timeout error (which leaves the connection unusable). Default: wait
    /// as long as the broker takes — it enforces its own statement timeout.
    /// A zero duration means no timeout.
    pub fn read_timeout(mut self, timeout: Duration) -> Config {
        self.read_timeout = Some(timeout).filter(|t| !t.is_zero());
        self
    }

    /// How long a write to the socket may block. Default: no limit. A zero
    /// duration means no timeout.
    pub fn write_timeout(mut self, timeout: Duration) -> Config {
        self.write_timeout = Some(timeout).filter(|t| !t.is_zero());
        self
    }

    /// The client name sent in `hello`, for the broker's log; default
    /// `iam-pgconnect/<version>`. Tools built on this library set their own
    /// (`iam-pg/0.1.0`).
    pub fn client_name(mut self, name: impl Into<String>) -> Config {
        self.client_name = name.into();
        self
    }

    /// The socket path [`connect`](Config::connect) will use: the explicit
    /// one, else `IAM_PGBROKER_SOCKET`, else the default.
    pub fn socket_path(&self) -> PathBuf {
        resolve_socket(self.socket.as_deref(), std::env::var_os(SOCKET_ENV))
    }

    /// The read and write timeouts of the socket.
    pub(crate) fn timeouts(&self) -> (Option<Duration>, Option<Duration>) {
        (self.read_timeout, self.write_timeout)
    }

    /// The client name sent in `hello`.
    pub(crate) fn name(&self) -> &str {
        &self.client_name
    }

    /// Connects to the broker and opens the session.
    ///
    /// Fails with [`Error::is_unavailable`] when the socket is missing or
    /// refuses connections (the message names the socket), with
    /// [`Error::is_denied`] when the policy does not grant the session, and
    /// with the broker's code (`not_found`, `secret`, `unavailable`, …) when
    /// the database cannot be reached.
    pub fn connect(&self) -> Result<Connection, Error> {
        Connection::open(
            &self.socket_path(),
            &self.open,
            &self.client_name,
            self.protocol,
            self.read_timeout,
            self.write_timeout,
        )
    }

    /// Runs `f` in a session, the way the seed library's `with` block does:
    /// when `f` returns `Ok` the transaction is committed, when it returns
    /// `Err` or panics it is rolled back, and the connection is always
    /// closed.
    ///
    /// The closure's error type needs `From<iam_pgconnect::Error>` so that
    /// `?` works inside it and connect or commit failures can be returned;
    /// `Box<dyn std::error::Error>` and `iam_pgconnect::Error` itself both
    /// qualify. A failing commit is returned as the error (nothing was
    /// committed); a failing close after a successful commit is ignored,
    /// since the data is committed and the broker rolls back nothing else.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), iam_pgconnect::Error> {
    /// let user_id = "0b1c2d3e4f5061728394a5b6c7d8e9f0";
    /// iam_pgconnect::Config::new()
    ///     .user("czechidm")
    ///     .readonly(false)
    ///     .reason("disable a leaver")
    ///     .with_connection(|db| {
    ///         db.execute("INSERT INTO idm_audit_log (msg) VALUES (%s)", &[&"start"])?;
    ///         db.execute(
    ///             "UPDATE idm_identity SET disabled = true WHERE id = decode(%s, 'hex')",
    ///             &[&user_id],
    ///         )?;
    ///         db.execute("INSERT INTO idm_audit_log (msg) VALUES (%s)", &[&"done"])?;
    ///         Ok(())
    ///         // Committed here, after the closure returned Ok.
    ///     })
    /// # }
    /// ```
    pub fn with_connection<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Connection) -> Result<T, E>,
        E: From<Error>,
    {
        let mut conn = self.connect()?;
        // A panic in `f` unwinds through `conn`, whose Drop rolls back and
        // closes: the guard is the connection itself.
        match f(&mut conn) {
            Ok(value) => {
                // On failure `conn` is dropped here, which rolls back.
                conn.commit()?;
                let _ = conn.close();
                Ok(value)
            }
            Err(err) => {
                let _ = conn.rollback();
                let _ = conn.close();
                Err(err)
            }
        }
    }
}

fn resolve_socket(explicit: Option<&Path>, env: Option<OsString>) -> PathBuf {
    match (explicit, env) {
        (Some(path), _) => path.to_owned(),
        (None, Some(path)) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from(DEFAULT_SOCKET_PATH),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_seed() {
        let c = Config::new();
        assert_eq!(c.open, OpenParams::default());
        assert!(c.client_name.starts_with("iam-pgconnect/"));
    }

    #[test]
    fn socket_precedence() {
        // The environment is process-wide and tests run in parallel, so the
        // rule is tested on the pure function.
        let env = || Some(OsString::from("/env.sock"));
        let explicit = Some(Path::new("/explicit.sock"));
        assert_eq!(resolve_socket(explicit, env()), Path::new("/explicit.sock"));
        assert_eq!(resolve_socket(None, env()), Path::new("/env.sock"));
        assert_eq!(
            resolve_socket(None, Some(OsString::new())),
            Path::new(DEFAULT_SOCKET_PATH)
        );
        assert_eq!(resolve_socket(None, None), Path::new(DEFAULT_SOCKET_PATH));
        let c = Config::new().socket("/tmp/x.sock");
        assert_eq!(c.socket_path(), PathBuf::from("/tmp/x.sock"));
    }

    #[test]
    fn builder_sets_open_params() {
        let c = Config::new()
            .db("bridge")
            .user("bridge")
            .dbname("bridge2")
            .readonly(false)
            .reason("why")
            .read_timeout(Duration::ZERO);
        assert_eq!(
            c.open,
            OpenParams {
                db: "bridge".into(),
                user: "bridge".into(),
                dbname: Some("bridge2".into()),
                readonly: false,
                reason: Some("why".into()),
            }
        );
        assert_eq!(c.read_timeout, None);
    }
}
