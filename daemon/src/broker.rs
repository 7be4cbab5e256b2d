//! The state every client connection shares: the live configuration, the
//! Docker resolver and the password provider.

use crate::audit::AuditLog;
use crate::config::Config;
use crate::docker::ContainerResolver;
use crate::pool::Pool;
use crate::secrets::SecretSources;
use crate::stats::Stats;
use crate::sync::lock;
use std::sync::{Arc, RwLock};

/// Shared broker state.
pub struct Broker {
    config: RwLock<Arc<Config>>,
    resolver: ContainerResolver,
    pool: Arc<Pool>,
    /// What read sessions log in as (never a superuser).
    read_roles: crate::read_role::ReadRoles,
    /// The sessions open now.
    live: crate::live::LiveSessions,
    /// Password sources; OpenBao's token and cache live here.
    secrets: SecretSources,
    stats: Stats,
    audit: AuditLog,
    /// Change requests: per-request locks and the key that seals them.
    approvals: crate::approval::ApprovalStore,
    /// Client connections per uid, for the connection limits.
    connections: std::sync::Mutex<std::collections::HashMap<u32, usize>>,
}

/// A client connection counted against the limits; released on drop.
pub struct ConnectionSlot {
    broker: Arc<Broker>,
    uid: u32,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut map = lock(&self.broker.connections);
        if let Some(n) = map.get_mut(&self.uid) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.uid);
            }
        }
    }
}

impl Broker {
    /// A broker serving `config`, recording to `audit`.
    pub fn new(config: Config, audit: AuditLog) -> Broker {
        let resolver = ContainerResolver::new(&config.docker.socket, config.docker.timeout);
        let pool = Arc::new(Pool::new(config.pool.limits()));
        crate::fairness::configure(&config.fair_share);
        crate::fairness::set_pool(&pool);
        Broker {
            config: RwLock::new(Arc::new(config)),
            resolver,
            pool,
            read_roles: Default::default(),
            live: Default::default(),
            secrets: Default::default(),
            stats: Stats::default(),
            audit,
            approvals: Default::default(),
            connections: Default::default(),
        }
    }

    /// The configuration in force now. A session keeps the snapshot it was
    /// opened with.
    pub fn config(&self) -> Arc<Config> {
        // A poisoned lock only means a panic elsewhere while swapping an Arc;
        // the Arc inside is still whole.
        match self.config.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the configuration for sessions opened from now on.
    pub fn replace_config(&self, config: Config) {
        let mut guard = match self.config.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        self.pool.set_limits(config.pool.limits());
        crate::fairness::configure(&config.fair_share);
        *guard = Arc::new(config);
    }

    /// Watches Docker events until the future is dropped: a container that
    /// stops, restarts or moves loses its cached address and its pooled
    /// connections.
    pub async fn watch_docker(&self) {
        let pool = self.pool.clone();
        self.resolver
            .watch_events(move |addr| pool.reap(Some(addr)))
            .await
    }

    /// Counts a new connection of `uid`, or says which limit it would pass
    /// (the caller answers `busy` at once rather than letting it wait).
    pub fn admit(self: &Arc<Self>, uid: u32) -> Result<ConnectionSlot, String> {
        let limits = self.config().limits.clone();
        let mut map = lock(&self.connections);
        let total: usize = map.values().sum();
        if total >= limits.max_connections {
            return Err(format!(
                "the broker is at its limit of {} connections; try again later",
                limits.max_connections
            ));
        }
        let mine = map.entry(uid).or_default();
        if *mine >= limits.max_connections_per_uid {
            return Err(format!(
                "uid {uid} already has {} connections, the limit per user; close some or try again later",
                limits.max_connections_per_uid
            ));
        }
        *mine += 1;
        Ok(ConnectionSlot {
            broker: self.clone(),
            uid,
        })
    }

    /// Client connections open now.
    pub fn connection_count(&self) -> usize {
        lock(&self.connections).values().sum()
    }

    /// The audit log.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// Change requests (`docs/approval.md`).
    pub fn approvals(&self) -> &crate::approval::ApprovalStore {
        &self.approvals
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Everything `status` reports: counters and pools.
    pub fn status_json(&self) -> serde_json::Value {
        let mut status = self.stats.to_json();
        status["pools"] = self
            .pool
            .stats()
            .into_iter()
            .map(|p| serde_json::json!({"target": p.target, "idle": p.idle}))
            .collect();
        status["secrets"] = self.secrets.health(&self.config());
        // Sessions by rule and state, and server connections in use by
        // database user and instance.
        let mut by_rule: std::collections::BTreeMap<(String, String), u64> = Default::default();
        let mut in_use: std::collections::BTreeMap<(String, String), u64> = Default::default();
        for s in self.live.views() {
            let text = |k: &str| s[k].as_str().unwrap_or("?").to_owned();
            *by_rule.entry((text("rule"), text("state"))).or_default() += 1;
            *in_use.entry((text("db"), text("db_user"))).or_default() += 1;
        }
        status["live"] = by_rule
            .into_iter()
            .map(|((rule, state), n)| serde_json::json!({"rule": rule, "state": state, "sessions": n}))
            .collect();
        status["in_use"] = in_use
            .into_iter()
            .map(|((db, db_user), n)| serde_json::json!({"db": db, "db_user": db_user, "connections": n}))
            .collect();
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        status["connect_waits"] = crate::stats::CONNECT_WAITS.load(relaxed).into();
        status["statement_latency"] = crate::stats::STATEMENT_LATENCY.to_json();
        status["audit"] = serde_json::json!({
            "bytes": crate::stats::AUDIT_BYTES.load(relaxed),
            "fsync": crate::stats::AUDIT_FSYNC.to_json(),
        });
        let config = self.config();
        status["fair_share"] = crate::fairness::status_json(&config.audit.file);
        if let Ok(key) = self.approvals.key(&self.audit, &config.audit.key_file) {
            if let Ok(counts) = self.approvals.counts(&config.approval.dir, &key) {
                status["approvals"] = serde_json::json!(counts);
            }
        }
        status
    }

    /// The pool of warm server connections.
    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    /// The container resolver.
    pub fn resolver(&self) -> &ContainerResolver {
        &self.resolver
    }

    /// The sessions open now (`sessions`, `cancel`, `terminate`).
    pub fn live(&self) -> &crate::live::LiveSessions {
        &self.live
    }

    /// What read sessions log in as.
    pub fn read_roles(&self) -> &crate::read_role::ReadRoles {
        &self.read_roles
    }

    /// The password sources.
    pub fn secrets(&self) -> &SecretSources {
        &self.secrets
    }
}
