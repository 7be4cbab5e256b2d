//! Fair share: no user of the broker can starve the others, the database
//! or the host (`[fair_share]`, docs/configuration.md).
//!
//! - **Server connections.** Every connection the broker opens to a
//!   PostgreSQL server holds a [`ServerPermit`], whether a session uses it
//!   or it idles in the pool. A server gives the broker at most its
//!   `max_connections`, less `superuser_reserved_connections` (and
//!   `reserved_connections` where it exists), less
//!   `server_reserve_connections` kept for the application itself — read
//!   from the server on its first connection and again every minute. When
//!   they are all taken, an idle pooled connection is closed first (the
//!   owner with most idle ones loses one); else the request waits in a fair
//!   queue (the waiting user holding fewest connections is served first)
//!   for at most `queue_timeout_ms`, then gets `busy`.
//! - **Sessions per user**: at most `max_sessions_per_uid` open at once;
//!   idle pooled connections per user: at most `max_idle_per_uid`.
//! - **Refusals** are recorded, at most `refusals_per_interval` per uid and
//!   `refusal_interval_ms`; beyond that they are counted and summarised in
//!   one `refusal_summary` record per uid and interval, never dropped
//!   silently.
//! - **The audit folder's free space**: below `audit_reserve_mb`, new
//!   sessions are refused (`unavailable`) and the broker logs an error,
//!   before the disk is full; open sessions finish and are recorded.

use crate::sync::lock;
use serde::{Deserialize, Deserializer};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tracing::{debug, error, info, warn};

/// `[fair_share]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FairShareConfig {
    /// Server connections left to the application (beyond the superuser's
    /// reserved slots): the broker uses at most `max_connections` less
    /// both.
    pub server_reserve_connections: usize,
    /// A further cap on server connections per server (0: only what the
    /// server's `max_connections` allows).
    pub max_server_connections: usize,
    /// Sessions one uid may have open at once.
    pub max_sessions_per_uid: usize,
    /// Idle pooled server connections kept per uid (all its pool keys
    /// together).
    pub max_idle_per_uid: usize,
    /// How long a session waits for a server connection when all are
    /// taken before it gets `busy`.
    #[serde(deserialize_with = "millis", rename = "queue_timeout_ms")]
    pub queue_timeout: Duration,
    /// A client that reads nothing of an answer for this long has its
    /// statement cancelled, its transaction rolled back and its connection
    /// closed (0: never).
    #[serde(deserialize_with = "millis", rename = "write_timeout_ms")]
    pub write_timeout: Duration,
    /// Longest request line of a peer that no policy rule names (a peer
    /// some rule names, and the administrators, get
    /// `[limits] max_line_bytes`).
    pub unnamed_max_line_bytes: usize,
    /// Refusals recorded one by one per uid and interval; more are counted
    /// and summarised.
    pub refusals_per_interval: u64,
    /// The interval of `refusals_per_interval`.
    #[serde(deserialize_with = "millis", rename = "refusal_interval_ms")]
    pub refusal_interval: Duration,
    /// Free space (MiB) kept in the audit file's filesystem: below it, new
    /// sessions are refused (0: not watched).
    pub audit_reserve_mb: u64,
    /// `temp_file_limit` of sessions, in kB, unless the rule says otherwise
    /// (0: PostgreSQL's own setting).
    pub temp_file_limit_kb: u64,
    /// `work_mem` of sessions, in kB, unless the rule says otherwise (0:
    /// PostgreSQL's own setting).
    pub work_mem_kb: u64,
    /// `lock_timeout` of read sessions, ms (0: none).
    pub read_lock_timeout_ms: u64,
}

impl Default for FairShareConfig {
    fn default() -> Self {
        FairShareConfig {
            server_reserve_connections: 10,
            max_server_connections: 0,
            max_sessions_per_uid: 16,
            max_idle_per_uid: 4,
            queue_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(15),
            unnamed_max_line_bytes: 16 * 1024,
            refusals_per_interval: 20,
            refusal_interval: Duration::from_secs(60),
            audit_reserve_mb: 256,
            temp_file_limit_kb: 1024 * 1024,
            work_mem_kb: 16 * 1024,
            read_lock_timeout_ms: 5_000,
        }
    }
}

impl FairShareConfig {
    /// What is wrong with the section, if anything.
    pub fn check(&self) -> Result<(), String> {
        if self.max_sessions_per_uid == 0 {
            return Err("fair_share.max_sessions_per_uid must be positive".into());
        }
        if self.queue_timeout.is_zero() {
            return Err("fair_share.queue_timeout_ms must be positive".into());
        }
        if self.unnamed_max_line_bytes < 1024 {
            return Err("fair_share.unnamed_max_line_bytes must be at least 1024".into());
        }
        if self.refusal_interval < Duration::from_secs(1) {
            return Err("fair_share.refusal_interval_ms must be at least 1000".into());
        }
        if self.work_mem_kb != 0 && self.work_mem_kb < 64 {
            return Err("fair_share.work_mem_kb must be 0 or at least 64".into());
        }
        Ok(())
    }
}

fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    Ok(Duration::from_millis(u64::deserialize(d)?))
}

/// How often the server's `max_connections` is read again.
const CAP_TTL: Duration = Duration::from_secs(60);

/// One PostgreSQL server's connections.
#[derive(Default)]
struct Gate {
    /// What the broker may use, once the server told (`None`: not yet).
    cap: Option<Cap>,
    /// Connections held, per uid.
    held: HashMap<u32, usize>,
    /// Waiting sessions, per uid, oldest first.
    waiting: BTreeMap<u32, VecDeque<Waiter>>,
}

#[derive(Clone, Copy)]
struct Cap {
    usable: usize,
    max_connections: usize,
    reserved: usize,
    learned: Instant,
}

struct Waiter {
    since: Instant,
    tx: oneshot::Sender<()>,
}

impl Gate {
    fn total(&self) -> usize {
        self.held.values().sum()
    }

    fn full(&self, config: &FairShareConfig) -> bool {
        let mut limit = self.cap.map(|c| c.usable).unwrap_or(usize::MAX);
        if config.max_server_connections > 0 {
            limit = limit.min(config.max_server_connections);
        }
        self.total() >= limit
    }

    /// Hands free room to waiters: the waiting uid holding fewest
    /// connections first (the longest waiting among equals).
    fn wake(&mut self, config: &FairShareConfig) {
        while !self.full(config) {
            let next = self
                .waiting
                .iter()
                .filter_map(|(uid, q)| q.front().map(|w| (*uid, w.since)))
                .min_by_key(|(uid, since)| (self.held.get(uid).copied().unwrap_or(0), *since));
            let Some((uid, _)) = next else { return };
            let Some(queue) = self.waiting.get_mut(&uid) else {
                return;
            };
            let Some(waiter) = queue.pop_front() else {
                return;
            };
            if queue.is_empty() {
                self.waiting.remove(&uid);
            }
            if waiter.tx.send(()).is_ok() {
                *self.held.entry(uid).or_default() += 1;
            }
        }
    }

    fn release(&mut self, uid: u32, config: &FairShareConfig) {
        if let Some(n) = self.held.get_mut(&uid) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.held.remove(&uid);
            }
        }
        self.wake(config);
    }
}

type ServerId = (IpAddr, u16);

struct Fair {
    config: Mutex<FairShareConfig>,
    gates: Mutex<HashMap<ServerId, Gate>>,
    sessions: Mutex<HashMap<u32, usize>>,
    refusals: Mutex<HashMap<u32, Refusals>>,
    pool: Mutex<Option<Weak<crate::pool::Pool>>>,
}

fn fair() -> &'static Fair {
    static FAIR: OnceLock<Fair> = OnceLock::new();
    FAIR.get_or_init(|| Fair {
        config: Mutex::new(FairShareConfig::default()),
        gates: Mutex::new(HashMap::new()),
        sessions: Mutex::new(HashMap::new()),
        refusals: Mutex::new(HashMap::new()),
        pool: Mutex::new(None),
    })
}

/// Applies `[fair_share]` (start and reload).
pub fn configure(config: &FairShareConfig) {
    *lock(&fair().config) = config.clone();
}

/// The section in force.
pub fn config() -> FairShareConfig {
    lock(&fair().config).clone()
}

/// The pool whose idle connections are closed first when a server's
/// connections are all taken.
pub fn set_pool(pool: &std::sync::Arc<crate::pool::Pool>) {
    *lock(&fair().pool) = Some(std::sync::Arc::downgrade(pool));
}

/// A server connection counted against its server's cap; released on drop.
#[derive(Debug)]
pub struct ServerPermit {
    server: ServerId,
    uid: u32,
}

impl Drop for ServerPermit {
    fn drop(&mut self) {
        let config = config();
        let mut gates = lock(&fair().gates);
        if let Some(gate) = gates.get_mut(&self.server) {
            gate.release(self.uid, &config);
        }
    }
}

/// A server connection for `uid` to `addr:port`: at once when the cap
/// allows; else after an idle pooled connection is closed, or after
/// waiting in the fair queue; `Err` (the `busy` message) when
/// `queue_timeout_ms` passes first.
pub async fn server_permit(addr: IpAddr, port: u16, uid: u32) -> Result<ServerPermit, String> {
    let config = config();
    let server = (addr, port);
    let rx = {
        let mut gates = lock(&fair().gates);
        let gate = gates.entry(server).or_default();
        if !gate.full(&config) && gate.waiting.is_empty() {
            *gate.held.entry(uid).or_default() += 1;
            return Ok(ServerPermit { server, uid });
        }
        let (tx, rx) = oneshot::channel();
        gate.waiting.entry(uid).or_default().push_back(Waiter {
            since: Instant::now(),
            tx,
        });
        rx
    };
    QUEUED.fetch_add(1, Ordering::Relaxed);
    // Idle connections go first: closing one frees room for the queue.
    let pool = lock(&fair().pool).as_ref().and_then(Weak::upgrade);
    if let Some(pool) = pool {
        if pool.shed_idle(addr, port) {
            debug!("closed an idle pooled connection to make room");
        }
    }
    // Room may have appeared between the check and the queue.
    {
        let mut gates = lock(&fair().gates);
        if let Some(gate) = gates.get_mut(&server) {
            gate.wake(&config);
        }
    }
    let mut rx = rx;
    let handed = tokio::select! {
        got = &mut rx => got.is_ok(),
        _ = tokio::time::sleep(config.queue_timeout) => {
            // A permit handed over just now is still taken; after close
            // none can be.
            rx.close();
            rx.try_recv().is_ok()
        }
    };
    match handed {
        true => Ok(ServerPermit { server, uid }),
        false => {
            // Given up: the waiter's entry goes.
            let mut gates = lock(&fair().gates);
            let (usable, max, reserved, held) = match gates.get_mut(&server) {
                Some(gate) => {
                    let before = gate.total();
                    if let Some(queue) = gate.waiting.get_mut(&uid) {
                        queue.retain(|w| !w.tx.is_closed());
                        if queue.is_empty() {
                            gate.waiting.remove(&uid);
                        }
                    }
                    let cap = gate.cap;
                    (
                        cap.map(|c| c.usable),
                        cap.map(|c| c.max_connections),
                        cap.map(|c| c.reserved),
                        before,
                    )
                }
                None => (None, None, None, 0),
            };
            drop(gates);
            BUSY.fetch_add(1, Ordering::Relaxed);
            Err(match (usable, max, reserved) {
                (Some(usable), Some(max), Some(reserved)) => format!(
                    "all {usable} server connections the broker may use on {addr}:{port} are taken \
                     ({held} in use; the server's max_connections is {max}, {reserved} are kept for \
                     the application and superusers); waited {} ms; try again later",
                    config.queue_timeout.as_millis()
                ),
                _ => format!(
                    "all server connections the broker may use on {addr}:{port} are taken \
                     ({held} in use); waited {} ms; try again later",
                    config.queue_timeout.as_millis()
                ),
            })
        }
    }
}

/// Whether `addr:port`'s cap must be read (again).
pub fn cap_due(addr: IpAddr, port: u16) -> bool {
    let gates = lock(&fair().gates);
    gates
        .get(&(addr, port))
        .and_then(|g| g.cap)
        .is_none_or(|c| c.learned.elapsed() > CAP_TTL)
}

/// What the server said of its connections: `max_connections` and the
/// slots it reserves (superuser's, and `reserved_connections` where it
/// exists).
pub const CAP_SQL: &str = "SELECT pg_catalog.current_setting('max_connections'), \
     pg_catalog.current_setting('superuser_reserved_connections'), \
     coalesce(pg_catalog.current_setting('reserved_connections', true), '0')";

/// Records the server's cap from [`CAP_SQL`]'s answer.
pub fn learn_cap(addr: IpAddr, port: u16, max_connections: usize, reserved_by_server: usize) {
    let config = config();
    let reserved = reserved_by_server + config.server_reserve_connections;
    let usable = max_connections.saturating_sub(reserved).max(1);
    let mut gates = lock(&fair().gates);
    let gate = gates.entry((addr, port)).or_default();
    if gate.cap.map(|c| c.usable) != Some(usable) {
        info!(server = %addr, port, max_connections, reserved, usable, "server connections the broker may use");
    }
    gate.cap = Some(Cap {
        usable,
        max_connections,
        reserved,
        learned: Instant::now(),
    });
    gate.wake(&config);
}

/// Reads the cap from a fresh connection (best effort: a server that does
/// not answer keeps the last known cap).
pub async fn learn_cap_from(addr: IpAddr, port: u16, client: &tokio_postgres::Client) {
    if !cap_due(addr, port) {
        return;
    }
    let Ok(rows) = client.simple_query(CAP_SQL).await else {
        return;
    };
    for message in rows {
        if let tokio_postgres::SimpleQueryMessage::Row(row) = message {
            let num = |i: usize| row.get(i).and_then(|v| v.parse::<usize>().ok());
            if let (Some(max), Some(su)) = (num(0), num(1)) {
                learn_cap(addr, port, max, su + num(2).unwrap_or(0));
            }
        }
    }
}

/// A session counted against `max_sessions_per_uid`; released on drop.
#[derive(Debug)]
pub struct SessionSlot {
    uid: u32,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let mut map = lock(&fair().sessions);
        if let Some(n) = map.get_mut(&self.uid) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.uid);
            }
        }
    }
}

/// Counts a session of `uid`, or says (the `busy` message) that it has
/// `max_sessions_per_uid` already. Root is counted but not capped: it can
/// reach the database without the broker anyway, and its work going
/// through the broker is what puts it in the audit (the server cap still
/// holds for it).
pub fn session_slot(uid: u32) -> Result<SessionSlot, String> {
    let max = if uid == 0 {
        usize::MAX
    } else {
        config().max_sessions_per_uid
    };
    let mut map = lock(&fair().sessions);
    let mine = map.entry(uid).or_default();
    if *mine >= max {
        return Err(format!(
            "uid {uid} already has {max} sessions open, the limit per user; close one or try again later"
        ));
    }
    *mine += 1;
    Ok(SessionSlot { uid })
}

/// Sessions open per uid now.
pub fn sessions_of(uid: u32) -> usize {
    lock(&fair().sessions).get(&uid).copied().unwrap_or(0)
}

/// Refusals of one uid in the current interval.
struct Refusals {
    since: Instant,
    since_wall: std::time::SystemTime,
    recorded: u64,
    /// Not recorded one by one, by code.
    counted: BTreeMap<String, u64>,
    peer: crate::audit::AuditPeer,
}

/// Whether a refusal of `peer` with error `code` is recorded on its own
/// (`true`), or only counted for the interval's summary.
pub fn refusal_recorded(peer: &crate::audit::AuditPeer, uid: u32, code: &str) -> bool {
    let config = config();
    let mut map = lock(&fair().refusals);
    let entry = map.entry(uid).or_insert_with(|| Refusals {
        since: Instant::now(),
        since_wall: std::time::SystemTime::now(),
        recorded: 0,
        counted: BTreeMap::new(),
        peer: peer.clone(),
    });
    if entry.recorded < config.refusals_per_interval {
        entry.recorded += 1;
        return true;
    }
    if entry.counted.is_empty() {
        warn!(
            uid,
            limit = config.refusals_per_interval,
            "refusals over the audit's rate limit: counting them for one summary record"
        );
    }
    *entry.counted.entry(code.to_owned()).or_default() += 1;
    SUMMARISED.fetch_add(1, Ordering::Relaxed);
    false
}

/// How long an answer to a refusal is held back once the uid is over its
/// refusal rate limit: a flood of refused requests then costs the broker
/// little (each connection waits between its refusals).
pub const REFUSAL_TARPIT: Duration = Duration::from_millis(100);

/// Whether `uid` is over its refusal rate limit in this interval.
pub fn over_refusal_limit(uid: u32) -> bool {
    lock(&fair().refusals)
        .get(&uid)
        .is_some_and(|r| !r.counted.is_empty())
}

/// One interval's refusals that were only counted.
pub struct RefusalSummary {
    /// Whose.
    pub peer: crate::audit::AuditPeer,
    /// Counts by error code.
    pub counted: BTreeMap<String, u64>,
    /// The interval's start.
    pub since: std::time::SystemTime,
}

impl RefusalSummary {
    /// The record's message: `123 refusals not recorded one by one since
    /// …: bad_request 100, denied 23`.
    pub fn message(&self) -> String {
        summary_message(&self.counted, self.since)
    }
}

fn summary_message(counted: &BTreeMap<String, u64>, since: std::time::SystemTime) -> String {
    let total: u64 = counted.values().sum();
    let by: Vec<String> = counted
        .iter()
        .map(|(code, n)| format!("{code} {n}"))
        .collect();
    let since = since
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "{total} refusals over the rate limit not recorded one by one in the interval since \
         unix time {since}: {}",
        by.join(", ")
    )
}

/// Ends the intervals that are over (all of them with `all`): the
/// summaries of what was only counted, to be recorded.
pub fn due_summaries(all: bool) -> Vec<RefusalSummary> {
    let interval = config().refusal_interval;
    let mut map = lock(&fair().refusals);
    let mut out = Vec::new();
    map.retain(|_, r| {
        if !all && r.since.elapsed() < interval {
            return true;
        }
        if !r.counted.is_empty() {
            out.push(RefusalSummary {
                peer: r.peer.clone(),
                counted: std::mem::take(&mut r.counted),
                since: r.since_wall,
            });
        }
        false
    });
    out
}

/// Records the summaries that are due (every few seconds, and at shutdown
/// with `all`).
pub fn record_summaries(audit: &crate::audit::AuditLog, all: bool) {
    for summary in due_summaries(all) {
        let message = summary.message();
        let outcome = crate::audit::Outcome {
            ok: false,
            code: Some("rate_limited"),
            message: Some(&message),
            ..crate::audit::Outcome::ok(None, None)
        };
        let record = crate::audit::AuditRecord {
            peer: Some(&summary.peer),
            outcome: Some(outcome),
            ..crate::audit::AuditRecord::new(crate::audit::AuditEvent::RefusalSummary)
        };
        if let Err(e) = audit.record(&record) {
            error!(cause = %e, "{message}; the summary could not be recorded");
        }
    }
}

/// Refusals only counted (summarised), since start.
pub static SUMMARISED: AtomicU64 = AtomicU64::new(0);
/// Sessions that waited for a server connection, since start.
pub static QUEUED: AtomicU64 = AtomicU64::new(0);
/// Sessions that got `busy` after waiting, since start.
pub static BUSY: AtomicU64 = AtomicU64::new(0);
/// Clients that stopped reading and were cut off, since start.
pub static WRITE_TIMEOUTS: AtomicU64 = AtomicU64::new(0);
/// Sessions refused for the audit reserve, since start.
pub static RESERVE_REFUSALS: AtomicU64 = AtomicU64::new(0);
static BELOW_RESERVE: AtomicBool = AtomicBool::new(false);

/// Free bytes in the filesystem holding `file` (its folder).
pub fn free_bytes(file: &Path) -> Option<u64> {
    let dir = file.parent().filter(|p| !p.as_os_str().is_empty())?;
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and a writable statvfs.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return None;
    }
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// `Err` (the client's message) when the audit file's filesystem has less
/// free space than `audit_reserve_mb`: new sessions are refused then. Logs
/// an error when the reserve is first reached, and when it is back.
pub fn audit_reserve_check(file: &Path) -> Result<(), String> {
    let reserve_mb = config().audit_reserve_mb;
    if reserve_mb == 0 {
        return Ok(());
    }
    let Some(free) = free_bytes(file) else {
        return Ok(());
    };
    let reserve = reserve_mb.saturating_mul(1024 * 1024);
    if free < reserve {
        if !BELOW_RESERVE.swap(true, Ordering::Relaxed) {
            error!(
                free_mb = free / (1024 * 1024),
                reserve_mb,
                folder = %file.parent().unwrap_or(Path::new("/")).display(),
                "AUDIT FOLDER NEARLY FULL: refusing new sessions until free space is back above the reserve; open sessions finish"
            );
        }
        RESERVE_REFUSALS.fetch_add(1, Ordering::Relaxed);
        return Err(format!(
            "the audit folder has {} MiB free, less than its reserve of {reserve_mb} MiB: \
             new sessions are refused until an administrator makes room",
            free / (1024 * 1024)
        ));
    }
    if BELOW_RESERVE.swap(false, Ordering::Relaxed) {
        info!(
            free_mb = free / (1024 * 1024),
            reserve_mb, "audit folder back above its reserve: sessions are accepted again"
        );
    }
    Ok(())
}

/// What `status` shows under `fair_share`.
pub fn status_json(audit_file: &Path) -> serde_json::Value {
    let config = config();
    let servers: Vec<serde_json::Value> = lock(&fair().gates)
        .iter()
        .map(|((addr, port), gate)| {
            serde_json::json!({
                "server": format!("{addr}:{port}"),
                "usable": gate.cap.map(|c| c.usable),
                "max_connections": gate.cap.map(|c| c.max_connections),
                "reserved": gate.cap.map(|c| c.reserved),
                "in_use": gate.total(),
                "waiting": gate.waiting.values().map(VecDeque::len).sum::<usize>(),
            })
        })
        .collect();
    let relaxed = Ordering::Relaxed;
    serde_json::json!({
        "servers": servers,
        "queued": QUEUED.load(relaxed),
        "busy": BUSY.load(relaxed),
        "write_timeouts": WRITE_TIMEOUTS.load(relaxed),
        "refusals_summarised": SUMMARISED.load(relaxed),
        "audit_reserve": {
            "reserve_bytes": config.audit_reserve_mb.saturating_mul(1024 * 1024),
            "free_bytes": free_bytes(audit_file),
            "below": BELOW_RESERVE.load(relaxed),
            "refused": RESERVE_REFUSALS.load(relaxed),
        },
    })
}

/// The startup options of a session's settings that bound its use of the
/// server: `work_mem` and `temp_file_limit` (kB; 0 leaves PostgreSQL's).
pub fn server_options(work_mem_kb: u64, temp_file_limit_kb: u64) -> String {
    let mut out = String::new();
    if work_mem_kb > 0 {
        out.push_str(&format!(" -c work_mem={work_mem_kb}kB"));
    }
    if temp_file_limit_kb > 0 {
        out.push_str(&format!(" -c temp_file_limit={temp_file_limit_kb}kB"));
    }
    out
}

type LoginId = (IpAddr, u16, String);

fn temp_refused() -> &'static Mutex<std::collections::HashSet<LoginId>> {
    static SET: OnceLock<Mutex<std::collections::HashSet<LoginId>>> = OnceLock::new();
    SET.get_or_init(Default::default)
}

/// Whether PostgreSQL refused `temp_file_limit` to `user` before (a
/// superuser's setting: it needs PostgreSQL 15's `GRANT SET ON PARAMETER`).
pub fn temp_file_limit_refused(addr: IpAddr, port: u16, user: &str) -> bool {
    lock(temp_refused()).contains(&(addr, port, user.to_owned()))
}

/// Remembers that `user` may not set `temp_file_limit`, and says so once.
pub fn note_temp_file_limit_refused(addr: IpAddr, port: u16, user: &str) {
    if lock(temp_refused()).insert((addr, port, user.to_owned())) {
        warn!(
            server = %addr,
            port,
            db_user = user,
            "PostgreSQL does not let this login set temp_file_limit: its sessions run without the cap \
             (GRANT SET ON PARAMETER temp_file_limit TO the user, PostgreSQL 15+)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiters_are_served_fewest_held_first() {
        let config = FairShareConfig::default();
        let mut gate = Gate {
            cap: Some(Cap {
                usable: 3,
                max_connections: 13,
                reserved: 10,
                learned: Instant::now(),
            }),
            ..Gate::default()
        };
        gate.held.insert(1, 2);
        gate.held.insert(2, 1);
        let (hog_tx, mut hog_rx) = oneshot::channel();
        let (fair_tx, mut fair_rx) = oneshot::channel();
        let early = Instant::now();
        gate.waiting.entry(1).or_default().push_back(Waiter {
            since: early,
            tx: hog_tx,
        });
        gate.waiting.entry(3).or_default().push_back(Waiter {
            since: early + Duration::from_millis(5),
            tx: fair_tx,
        });
        gate.wake(&config);
        assert!(hog_rx.try_recv().is_err() && fair_rx.try_recv().is_err());
        // uid 1 releases one: uid 3 (holding none) is served, not uid 1.
        gate.release(1, &config);
        assert!(fair_rx.try_recv().is_ok());
        assert!(hog_rx.try_recv().is_err());
        assert_eq!(gate.held.get(&3), Some(&1));
        assert_eq!(gate.total(), 3);
    }

    #[test]
    fn the_summary_names_counts_by_code() {
        let mut counted = BTreeMap::new();
        counted.insert("bad_request".to_owned(), 3);
        counted.insert("denied".to_owned(), 2);
        let m = summary_message(&counted, std::time::UNIX_EPOCH);
        assert!(m.starts_with("5 refusals"), "{m}");
        assert!(m.ends_with("bad_request 3, denied 2"), "{m}");
    }
}
