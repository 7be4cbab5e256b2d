//! The state every client connection shares: the live configuration, the
//! Docker resolver and the password provider.

use crate::config::Config;
use crate::docker::ContainerResolver;
use crate::pool::Pool;
use crate::secrets::PwfileProvider;
use crate::stats::Stats;
use std::sync::{Arc, RwLock};

/// Shared broker state.
pub struct Broker {
    config: RwLock<Arc<Config>>,
    resolver: ContainerResolver,
    pool: Arc<Pool>,
    stats: Stats,
}

impl Broker {
    /// A broker serving `config`.
    pub fn new(config: Config) -> Broker {
        let resolver = ContainerResolver::new(&config.docker.socket, config.docker.timeout);
        let pool = Arc::new(Pool::new(config.pool.limits()));
        Broker {
            config: RwLock::new(Arc::new(config)),
            resolver,
            pool,
            stats: Stats::default(),
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

    /// The password provider for a configuration snapshot.
    pub fn passwords(config: &Arc<Config>) -> PwfileProvider {
        let config = config.clone();
        PwfileProvider::new(move |db, user| config.pwfile(db, user))
    }
}
