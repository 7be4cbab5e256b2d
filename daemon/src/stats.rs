//! Counters for `iam-pgbroker status` and systemd's STATUS= line.

use crate::sync::lock;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

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
