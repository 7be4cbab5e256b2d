//! Warm server connections, so opening a session costs no SCRAM handshake
//! and no Docker round trip.
//!
//! Connections are pooled per [`PoolKey`]: the OS user they served,
//! address, port, database, user, role, timeouts and (a keyed hash of) the
//! password, so a rotated password or a moved container simply stops
//! matching the old connections, which then age out, and no connection
//! ever passes from one OS user to another. A connection comes back only
//! when its session ended cleanly, rolled back, and passed the reset
//! ([`RESET_SQL`]), which leaves nothing of the session behind — not even
//! the broker's own prepared statements or the session's name.

use crate::sync::lock;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_postgres::{Client, Statement};
use tracing::debug;

/// Resets a returning connection for whoever uses it next. The guard
/// refuses every statement that could leave such state; this is the second
/// line. `RESET ALL` goes back to the startup options — our timeouts and
/// the neutral [`IDLE_APPLICATION_NAME`] — and keeps the role (not a RESET
/// ALL parameter), which belong to the pool key. `DEALLOCATE ALL` drops the
/// broker's own prepared statements too (their texts, literals included,
/// are in `pg_prepared_statements`): the cache is cleared with them.
pub const RESET_SQL: &str = "CLOSE ALL; RESET ALL; DEALLOCATE ALL; UNLISTEN *; \
     SELECT pg_advisory_unlock_all(); DISCARD PLANS; DISCARD SEQUENCES; DISCARD TEMP";

/// The name of a connection no session is using: its startup name, which
/// `RESET ALL` returns to. A session names it with its first statement.
pub const IDLE_APPLICATION_NAME: &str = "pgbroker pool";

/// How long a returning connection's reset may take.
const RESET_TIMEOUT: Duration = Duration::from_secs(2);

/// What a pooled connection is for. Two sessions share connections only
/// when every field is equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolKey {
    /// The OS user whose sessions use it.
    pub uid: u32,
    /// Container address.
    pub addr: IpAddr,
    /// Port.
    pub port: u16,
    /// Database name.
    pub dbname: String,
    /// Database user.
    pub user: String,
    /// Role set at connect.
    pub db_role: Option<String>,
    /// `statement_timeout`, ms.
    pub statement_timeout_ms: u64,
    /// `idle_in_transaction_session_timeout`, ms.
    pub idle_in_transaction_timeout_ms: u64,
    /// `lock_timeout`, ms.
    pub lock_timeout_ms: u64,
    /// Hash of the password the connection authenticated with (SipHash with
    /// a per-process random key: not reversible, not stable across runs).
    pub password_hash: u64,
    /// `work_mem` and `temp_file_limit` startup options (kB).
    pub work_mem_kb: u64,
    /// See `work_mem_kb`.
    pub temp_file_limit_kb: u64,
}

impl PoolKey {
    /// The hash stored for `password`.
    pub fn hash_password(password: &str) -> u64 {
        // RandomState: keys differ per process, so the value is useless
        // outside this broker.
        static STATE: std::sync::OnceLock<std::collections::hash_map::RandomState> =
            std::sync::OnceLock::new();
        let state = STATE.get_or_init(Default::default);
        let mut h: DefaultHasher = std::hash::BuildHasher::build_hasher(state);
        password.hash(&mut h);
        h.finish()
    }
}

/// One PostgreSQL connection with its prepared-statement cache.
pub struct ServerConn {
    /// The client half (shared with a reset running in the background).
    pub client: Arc<Client>,
    /// PostgreSQL reported the session user a superuser at startup.
    pub superuser: bool,
    /// The database's and role's settings (`ALTER DATABASE/ROLE … SET`)
    /// when the connection started, which it rendered values in
    /// ([`crate::session::SETTINGS_SQL`]): a pooled connection whose
    /// settings changed since is not used again.
    pub settings: String,
    /// How it renders values whose text depends on a setting.
    pub rendering: crate::types::Rendering,
    /// PostgreSQL's pid of this connection.
    pub backend_pid: Option<i32>,
    /// The notices its task received, not yet sent to a client.
    pub notices: Arc<crate::notices::NoticeQueue>,
    /// The task driving the socket.
    pub connection: JoinHandle<()>,
    /// Its place under the server's cap ([`crate::fairness`]), given back
    /// when the connection is dropped.
    pub permit: Option<crate::fairness::ServerPermit>,
    /// The reset sent when the last session ended: whether it worked.
    reset: Option<JoinHandle<bool>>,
    /// Prepared statements by SQL text (least recently used dropped first).
    statements: HashMap<String, (CachedStatement, u64)>,
    uses: u64,
    created: Instant,
}

/// A prepared statement and its result columns as the `columns` frame
/// lists them, serialized once when it was prepared.
#[derive(Clone)]
pub struct CachedStatement {
    /// The statement.
    pub statement: Statement,
    /// `[{"name":…,"type":…,"oid":…},…]`.
    pub columns: Arc<str>,
}

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 256;

impl ServerConn {
    /// Wraps a fresh connection.
    pub fn new(client: Client, connection: JoinHandle<()>, superuser: bool) -> ServerConn {
        ServerConn {
            client: Arc::new(client),
            superuser,
            settings: String::new(),
            rendering: Default::default(),
            backend_pid: None,
            notices: Arc::default(),
            connection,
            permit: None,
            reset: None,
            statements: HashMap::new(),
            uses: 0,
            created: Instant::now(),
        }
    }

    /// The prepared statement for `sql`, preparing it on a miss. A repeated
    /// statement skips PostgreSQL's parse round trip.
    pub async fn prepare(&mut self, sql: &str) -> Result<Statement, tokio_postgres::Error> {
        Ok(self.prepare_cached(sql).await?.statement)
    }

    /// [`ServerConn::prepare`], with the statement's `columns` list.
    pub async fn prepare_cached(
        &mut self,
        sql: &str,
    ) -> Result<CachedStatement, tokio_postgres::Error> {
        self.uses += 1;
        if let Some((cached, used)) = self.statements.get_mut(sql) {
            *used = self.uses;
            return Ok(cached.clone());
        }
        let statement = self.client.prepare(sql).await?;
        let statement = CachedStatement {
            columns: crate::session::columns_json(&statement),
            statement,
        };
        if self.statements.len() >= STATEMENT_CACHE {
            if let Some(oldest) = self
                .statements
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
            {
                self.statements.remove(&oldest);
            }
        }
        self.statements
            .insert(sql.to_owned(), (statement.clone(), self.uses));
        Ok(statement)
    }

    /// Forgets a statement whose use failed (its plan may be stale after a
    /// schema change).
    pub fn forget(&mut self, sql: &str) {
        self.statements.remove(sql);
    }

    /// Sends [`RESET_SQL`] without waiting for the answer: the session
    /// that ended need not wait for it, and whoever takes the connection
    /// next waits in [`ServerConn::ready`] (by then the answer is usually
    /// long there). A server that does not answer within 2 s fails it.
    pub fn reset_in_background(&mut self) {
        // Dropping the statements closes them on the server (tokio-postgres
        // sends Close, queued ahead of the reset); DEALLOCATE ALL makes sure.
        self.statements.clear();
        let client = self.client.clone();
        self.reset = Some(tokio::spawn(async move {
            let reset = async {
                client.batch_execute(RESET_SQL).await?;
                // An empty query, so that pg_stat_activity shows no text of
                // the session (nor the reset) while the connection idles.
                client.batch_execute("").await
            };
            match tokio::time::timeout(RESET_TIMEOUT, reset).await {
                Ok(Ok(())) => true,
                Ok(Err(e)) => {
                    debug!(cause = %e, "reset failed; the connection will not be used again");
                    false
                }
                Err(_) => {
                    debug!("reset timed out; the connection will not be used again");
                    false
                }
            }
        }));
    }

    /// Waits for the reset sent by the previous session, if any: `false`
    /// when it failed, and the connection must not be used.
    pub async fn ready(&mut self) -> bool {
        match self.reset.take() {
            None => true,
            Some(reset) => matches!(reset.await, Ok(true)),
        }
    }

    /// Ends the connection without waiting for the server.
    pub fn discard(self) {
        if let Some(reset) = &self.reset {
            reset.abort();
        }
        drop(self.client);
        self.connection.abort();
    }
}

struct Idle {
    conn: ServerConn,
    since: Instant,
}

/// Pool limits.
#[derive(Debug, Clone, Copy)]
pub struct PoolLimits {
    /// Idle connections kept per key.
    pub max_idle_per_key: usize,
    /// An idle connection older than this is closed.
    pub idle_timeout: Duration,
    /// Any connection older than this is closed instead of reused.
    pub max_lifetime: Duration,
}

/// Idle connections, per key.
pub struct Pool {
    idle: Mutex<HashMap<PoolKey, Vec<Idle>>>,
    limits: Mutex<PoolLimits>,
}

/// A snapshot for `status`.
#[derive(Debug, Clone)]
pub struct PoolStat {
    /// The target, `user@addr:port/dbname`.
    pub target: String,
    /// Idle connections.
    pub idle: usize,
}

impl Pool {
    /// An empty pool.
    pub fn new(limits: PoolLimits) -> Pool {
        Pool {
            idle: Mutex::new(HashMap::new()),
            limits: Mutex::new(limits),
        }
    }

    /// Applies new limits (reload).
    pub fn set_limits(&self, limits: PoolLimits) {
        *lock(&self.limits) = limits;
    }

    fn limits(&self) -> PoolLimits {
        *lock(&self.limits)
    }

    /// A warm connection for `key`, if one is idle and alive.
    pub fn take(&self, key: &PoolKey) -> Option<ServerConn> {
        let limits = self.limits();
        let mut idle = lock(&self.idle);
        let list = idle.get_mut(key)?;
        while let Some(entry) = list.pop() {
            let stale = entry.since.elapsed() > limits.idle_timeout
                || entry.conn.created.elapsed() > limits.max_lifetime;
            if stale || entry.conn.client.is_closed() {
                entry.conn.discard();
                continue;
            }
            return Some(entry.conn);
        }
        None
    }

    /// Returns a connection that was reset and is idle.
    pub fn put(&self, key: PoolKey, conn: ServerConn) {
        let limits = self.limits();
        if conn.client.is_closed() || conn.created.elapsed() > limits.max_lifetime {
            conn.discard();
            return;
        }
        let mut idle = lock(&self.idle);
        // Per OS user too, all its keys together: one user cannot park the
        // server's connections under many keys (dbname, user, role).
        let per_uid = crate::fairness::config().max_idle_per_uid;
        let of_uid: usize = idle
            .iter()
            .filter(|(k, _)| k.uid == key.uid)
            .map(|(_, list)| list.len())
            .sum();
        if of_uid >= per_uid {
            conn.discard();
            return;
        }
        let list = idle.entry(key).or_default();
        if list.len() >= limits.max_idle_per_key {
            conn.discard();
            return;
        }
        list.push(Idle {
            conn,
            since: Instant::now(),
        });
    }

    /// Closes idle connections past their idle timeout, and those of
    /// `addr` when it is given (the container went away or moved).
    pub fn reap(&self, addr: Option<IpAddr>) {
        let limits = self.limits();
        let mut idle = lock(&self.idle);
        let mut closed = 0usize;
        for (key, list) in idle.iter_mut() {
            let gone = addr == Some(key.addr);
            list.retain_mut(|entry| {
                let keep = !gone
                    && entry.since.elapsed() <= limits.idle_timeout
                    && entry.conn.created.elapsed() <= limits.max_lifetime
                    && !entry.conn.client.is_closed();
                if !keep {
                    closed += 1;
                }
                keep
            });
        }
        // Dropping an entry drops its client handle; tokio-postgres then
        // sends Terminate and the connection task ends.
        idle.retain(|_, list| !list.is_empty());
        if closed > 0 {
            debug!(closed, "closed idle server connections");
        }
    }

    /// Closes one idle connection to `addr:port` to make room under the
    /// server's cap: the oldest of the OS user with most idle connections
    /// there. `false` when none is idle.
    pub fn shed_idle(&self, addr: IpAddr, port: u16) -> bool {
        let shed = {
            let mut idle = lock(&self.idle);
            let mut per_uid: HashMap<u32, usize> = HashMap::new();
            for (k, list) in idle.iter() {
                if k.addr == addr && k.port == port {
                    *per_uid.entry(k.uid).or_default() += list.len();
                }
            }
            let Some((uid, _)) = per_uid
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .max_by_key(|(uid, n)| (*n, std::cmp::Reverse(*uid)))
            else {
                return false;
            };
            let oldest = idle
                .iter()
                .filter(|(k, _)| k.uid == uid && k.addr == addr && k.port == port)
                .filter_map(|(k, list)| list.first().map(|e| (k.clone(), e.since)))
                .min_by_key(|(_, since)| *since)
                .map(|(k, _)| k);
            let Some(key) = oldest else { return false };
            let entry = idle.get_mut(&key).and_then(|list| {
                if list.is_empty() {
                    None
                } else {
                    Some(list.remove(0))
                }
            });
            idle.retain(|_, list| !list.is_empty());
            entry
        };
        // Dropped outside the pool's lock: its permit goes back to the
        // server's queue.
        match shed {
            Some(entry) => {
                entry.conn.discard();
                true
            }
            None => false,
        }
    }

    /// Idle connections per target.
    pub fn stats(&self) -> Vec<PoolStat> {
        let idle = lock(&self.idle);
        let mut out: Vec<PoolStat> = idle
            .iter()
            .map(|(k, list)| PoolStat {
                target: format!(
                    "uid {} {}{}@{}:{}/{}",
                    k.uid,
                    k.user,
                    k.db_role
                        .as_deref()
                        .map(|r| format!(" (role {r})"))
                        .unwrap_or_default(),
                    k.addr,
                    k.port,
                    k.dbname
                ),
                idle: list.len(),
            })
            .collect();
        out.sort_by(|a, b| a.target.cmp(&b.target));
        out
    }

    /// Total idle connections.
    pub fn idle_count(&self) -> usize {
        lock(&self.idle).values().map(Vec::len).sum()
    }
}
