//! Counters for `iam-pgbroker status` and systemd's STATUS= line.

use crate::sync::lock;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Upper bounds (seconds) of the latency histograms' buckets.
pub const BOUNDS: [f64; 10] = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0];

/// A latency histogram of fixed buckets, lock-free.
pub struct Histo {
    buckets: [AtomicU64; BOUNDS.len() + 1],
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Histo {
    /// An empty histogram.
    pub const fn new() -> Histo {
        Histo {
            buckets: [const { AtomicU64::new(0) }; BOUNDS.len() + 1],
            sum_us: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// One observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BOUNDS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BOUNDS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// `{"bounds": [...], "counts": [... one more, for +Inf], "sum": s, "count": n}`.
    pub fn to_json(&self) -> serde_json::Value {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        serde_json::json!({
            "bounds": BOUNDS,
            "counts": counts,
            "sum": self.sum_us.load(Ordering::Relaxed) as f64 / 1e6,
            "count": self.count.load(Ordering::Relaxed),
        })
    }
}

impl Default for Histo {
    fn default() -> Self {
        Histo::new()
    }
}

/// How long statements took, from request to answer.
pub static STATEMENT_LATENCY: Histo = Histo::new();
/// How long the audit's flushes to disk took.
pub static AUDIT_FSYNC: Histo = Histo::new();
/// Bytes written to the audit file.
pub static AUDIT_BYTES: AtomicU64 = AtomicU64::new(0);
/// New server connections that waited for one of a server's connecting
/// slots.
pub static CONNECT_WAITS: AtomicU64 = AtomicU64::new(0);

/// What the broker has done since it started.
pub struct Stats {
    started: Instant,
    statements: AtomicU64,
    sessions_total: AtomicU64,
    open: Mutex<BTreeMap<(u32, String), u64>>,
    errors: Mutex<BTreeMap<&'static str, u64>>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            started: Instant::now(),
            statements: AtomicU64::new(0),
            sessions_total: AtomicU64::new(0),
            open: Mutex::new(BTreeMap::new()),
            errors: Mutex::new(BTreeMap::new()),
        }
    }
}

impl Stats {
    /// A session of `uid` on `db` opened.
    pub fn session_opened(&self, uid: u32, db: &str) {
        self.sessions_total.fetch_add(1, Ordering::Relaxed);
        *lock(&self.open).entry((uid, db.to_owned())).or_default() += 1;
    }

    /// A session of `uid` on `db` ended.
    pub fn session_closed(&self, uid: u32, db: &str) {
        let mut open = lock(&self.open);
        let key = (uid, db.to_owned());
        if let Some(n) = open.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&key);
            }
        }
    }

    /// A statement ran (whatever its outcome).
    pub fn statement(&self) {
        self.statements.fetch_add(1, Ordering::Relaxed);
    }

    /// A request failed with `code`.
    pub fn error(&self, code: &'static str) {
        *lock(&self.errors).entry(code).or_default() += 1;
    }

    /// Sessions open now.
    pub fn open_sessions(&self) -> u64 {
        lock(&self.open).values().sum()
    }

    /// Statements served.
    pub fn statements(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    /// The one-line summary systemd shows (`STATUS=`).
    pub fn summary(&self) -> String {
        format!(
            "{} sessions open, {} statements served",
            self.open_sessions(),
            self.statements()
        )
    }

    /// Everything, as JSON, for the `status` operation.
    pub fn to_json(&self) -> serde_json::Value {
        let open: Vec<serde_json::Value> = lock(&self.open)
            .iter()
            .map(|((uid, db), n)| {
                let user = nix::unistd::User::from_uid((*uid).into())
                    .ok()
                    .flatten()
                    .map(|u| u.name);
                serde_json::json!({"uid": uid, "user": user, "db": db, "sessions": n})
            })
            .collect();
        serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_s": self.started.elapsed().as_secs(),
            "sessions_open": self.open_sessions(),
            "sessions_total": self.sessions_total.load(Ordering::Relaxed),
            "statements": self.statements(),
            "open": open,
            "errors": *lock(&self.errors),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_sessions_statements_and_errors() {
        let stats = Stats::default();
        stats.session_opened(1000, "czechidm");
        stats.session_opened(1000, "czechidm");
        stats.session_opened(0, "bridge");
        stats.statement();
        stats.error("denied");
        stats.error("denied");
        assert_eq!(stats.summary(), "3 sessions open, 1 statements served");
        stats.session_closed(1000, "czechidm");
        stats.session_closed(0, "bridge");
        let json = stats.to_json();
        assert_eq!(json["sessions_open"], 1);
        assert_eq!(json["sessions_total"], 3);
        assert_eq!(json["errors"]["denied"], 2);
        assert_eq!(json["open"][0]["db"], "czechidm");
    }
}
