//! Finding a database container's address through the Docker Engine API.

use crate::config::InstanceTarget;
use crate::sync::lock;
use bollard::errors::Error as BollardError;
use bollard::Docker;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

/// Why a container's address could not be found.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// The Docker Engine's socket cannot be reached.
    #[error("the Docker Engine at {socket} is unreachable: {source}")]
    Unreachable {
        /// Socket path.
        socket: String,
        /// Cause.
        #[source]
        source: BollardError,
    },
    /// No container has that name.
    #[error("container {container} does not exist")]
    NoSuchContainer {
        /// Container name.
        container: String,
    },
    /// The container exists but is not running.
    #[error("container {container} is not running (state: {state})")]
    NotRunning {
        /// Container name.
        container: String,
        /// Docker's state word (`exited`, `created`, …).
        state: String,
    },
    /// The container's networks do not give one address.
    #[error("container {container}: {problem}")]
    Address {
        /// Container name.
        container: String,
        /// What is wrong with its networks.
        problem: String,
    },
    /// Docker answered with an error we do not expect.
    #[error("Docker Engine error for container {container}: {source}")]
    Api {
        /// Container name.
        container: String,
        /// Cause.
        #[source]
        source: BollardError,
    },
}

/// Resolves `{db}-db` containers to addresses.
///
/// Addresses are cached only while a Docker event stream is known to be
/// watching (see [`ContainerResolver::watch_events`]): any event about a
/// container — it died, started, was renamed or attached to a network —
/// drops its entry, and losing the stream drops them all. The stream is
/// opened with `since` = the moment watching began, so events that happen
/// while the subscription is still being set up are replayed, not missed.
#[derive(Debug)]
pub struct ContainerResolver {
    /// The client, made on first use: a broker that starts while the Docker
    /// socket is missing must still serve (and answer `unavailable`).
    docker: std::sync::Mutex<Option<Docker>>,
    socket: String,
    timeout: Duration,
    cache: std::sync::Mutex<AddressCache>,
}

#[derive(Debug, Default)]
struct AddressCache {
    /// Whether an event stream covers the cached entries.
    watching: bool,
    /// (container, network) → address.
    entries: std::collections::HashMap<(String, Option<String>), IpAddr>,
}

/// Docker Engine API version we speak. 1.41 is Docker 20.10, the oldest
/// engine an appliance runs; every field used here exists there.
const API_VERSION: bollard::ClientVersion = bollard::ClientVersion {
    major_version: 1,
    minor_version: 41,
};

impl ContainerResolver {
    /// A resolver on the Docker socket at `socket`. Nothing is connected yet:
    /// a missing socket shows up as [`DockerError::Unreachable`] per call.
    pub fn new(socket: &Path, timeout: Duration) -> ContainerResolver {
        ContainerResolver {
            docker: std::sync::Mutex::new(None),
            socket: socket.display().to_string(),
            timeout,
            cache: std::sync::Mutex::new(AddressCache::default()),
        }
    }

    fn client(&self) -> Result<Docker, DockerError> {
        let mut slot = lock(&self.docker);
        if let Some(docker) = slot.as_ref() {
            return Ok(docker.clone());
        }
        let docker =
            Docker::connect_with_unix(&self.socket, self.timeout.as_secs().max(1), &API_VERSION)
                .map_err(|source| DockerError::Unreachable {
                    socket: self.socket.clone(),
                    source,
                })?;
        *slot = Some(docker.clone());
        Ok(docker)
    }

    /// The instances whose containers run now: the names of running
    /// containers that fit `pattern` (`{db}-db`), with `{db}` taken out.
    pub async fn running_instances(&self, pattern: &str) -> Result<Vec<String>, DockerError> {
        let Some((prefix, suffix)) = pattern.split_once("{db}") else {
            return Ok(Vec::new());
        };
        let docker = self.client()?;
        let listed = docker
            .list_containers(None::<bollard::query_parameters::ListContainersOptions>)
            .await
            .map_err(|source| DockerError::Api {
                container: pattern.to_owned(),
                source,
            })?;
        let mut names: Vec<String> = listed
            .into_iter()
            .flat_map(|c| c.names.unwrap_or_default())
            .filter_map(|n| {
                let n = n.trim_start_matches('/');
                let db = n.strip_prefix(prefix)?.strip_suffix(suffix)?;
                (!db.is_empty()).then(|| db.to_owned())
            })
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// The address of `target`'s container: it must exist and run, and have
    /// exactly one usable address on the configured (or only) network.
    pub async fn resolve(&self, target: &InstanceTarget) -> Result<IpAddr, DockerError> {
        let key = (target.container.clone(), target.network.clone());
        if let Some(addr) = lock(&self.cache).entries.get(&key) {
            return Ok(*addr);
        }
        let addr = self.inspect(target).await?;
        let mut cache = lock(&self.cache);
        if cache.watching {
            cache.entries.insert(key, addr);
        }
        Ok(addr)
    }

    /// Forgets `container`'s cached address (a connection to it failed).
    pub fn invalidate(&self, container: &str) {
        lock(&self.cache).entries.retain(|(c, _), _| c != container);
    }

    /// Watches Docker events for as long as the returned future runs,
    /// invalidating cached addresses; calls `gone(addr)` for the address of
    /// a container that stopped or changed, so pooled connections to it
    /// can be closed. Reconnects with a back-off when the stream breaks.
    pub async fn watch_events(&self, gone: impl Fn(IpAddr) + Send + Sync) {
        use futures_util::StreamExt;
        let mut backoff = Duration::from_millis(500);
        loop {
            // A client of its own: the event stream lives far longer than
            // the per-request timeout.
            let docker = match Docker::connect_with_unix(&self.socket, 24 * 3600, &API_VERSION) {
                Ok(d) => d,
                Err(e) => {
                    tracing::debug!(cause = %e, "Docker events: socket unavailable");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    continue;
                }
            };
            let since = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs().saturating_sub(1))
                .unwrap_or(0)
                .to_string();
            let mut filters = std::collections::HashMap::new();
            filters.insert("type", vec!["container", "network"]);
            let options = bollard::query_parameters::EventsOptionsBuilder::new()
                .since(&since)
                .filters(&filters)
                .build();
            let mut events = Box::pin(docker.events(Some(options)));
            // Replay from `since` covers the gap until the stream is up.
            lock(&self.cache).watching = true;
            while let Some(event) = events.next().await {
                match event {
                    Ok(message) => {
                        backoff = Duration::from_millis(500);
                        self.on_event(&message, &gone);
                    }
                    Err(e) => {
                        tracing::warn!(cause = %e, "Docker event stream broke; address cache off until it is back");
                        break;
                    }
                }
            }
            let dropped: Vec<IpAddr> = {
                let mut cache = lock(&self.cache);
                cache.watching = false;
                cache.entries.drain().map(|(_, a)| a).collect()
            };
            for addr in dropped {
                gone(addr);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }

    fn on_event(&self, message: &bollard::models::EventMessage, gone: &impl Fn(IpAddr)) {
        let action = message.action.as_deref().unwrap_or("");
        // Events that cannot change an address.
        if matches!(
            action,
            "exec_create" | "exec_start" | "exec_die" | "top" | "attach" | "resize"
        ) || action.starts_with("exec_")
            || action.starts_with("health_status")
        {
            return;
        }
        let name = message
            .actor
            .as_ref()
            .and_then(|a| a.attributes.as_ref())
            .and_then(|attrs| attrs.get("name"))
            .cloned();
        let is_container = message.typ == Some(bollard::models::EventMessageTypeEnum::CONTAINER);
        let mut cache = lock(&self.cache);
        let mut dropped = Vec::new();
        cache.entries.retain(|(container, _), addr| {
            // Network events name the network, not the container: drop all.
            let hit = !is_container || Some(container) == name.as_ref() || action == "rename";
            if hit {
                dropped.push(*addr);
            }
            !hit
        });
        drop(cache);
        if !dropped.is_empty() {
            tracing::debug!(
                action,
                container = name.as_deref().unwrap_or("?"),
                "Docker event: address cache entry dropped"
            );
        }
        for addr in dropped {
            gone(addr);
        }
    }

    async fn inspect(&self, target: &InstanceTarget) -> Result<IpAddr, DockerError> {
        let name = &target.container;
        let info = self
            .client()?
            .inspect_container(
                name,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
            .map_err(|source| self.classify(name, source))?;

        let running = info.state.as_ref().and_then(|s| s.running).unwrap_or(false);
        if !running {
            let state = info
                .state
                .as_ref()
                .and_then(|s| s.status)
                .map(|s| s.to_string())
                .unwrap_or_else(|| "unknown".into());
            return Err(DockerError::NotRunning {
                container: name.clone(),
                state,
            });
        }

        let networks = info
            .network_settings
            .and_then(|n| n.networks)
            .unwrap_or_default();
        let address = |problem: String| DockerError::Address {
            container: name.clone(),
            problem,
        };
        let (net_name, endpoint) = match &target.network {
            Some(wanted) => networks
                .iter()
                .find(|(n, _)| *n == wanted)
                .ok_or_else(|| address(format!("is not attached to network {wanted}")))?,
            None => {
                let mut iter = networks.iter();
                match (iter.next(), iter.next()) {
                    (Some(only), None) => only,
                    (None, _) => return Err(address("is attached to no network".into())),
                    (Some(_), Some(_)) => {
                        let mut names: Vec<&str> = networks.keys().map(String::as_str).collect();
                        names.sort_unstable();
                        return Err(address(format!(
                            "is attached to several networks ({}); set docker.network",
                            names.join(", ")
                        )));
                    }
                }
            }
        };
        let ip = endpoint
            .ip_address
            .as_deref()
            .filter(|s| !s.is_empty())
            .or(endpoint
                .global_ipv6_address
                .as_deref()
                .filter(|s| !s.is_empty()))
            .ok_or_else(|| address(format!("has no address on network {net_name}")))?;
        ip.parse().map_err(|_| {
            address(format!(
                "has an unreadable address {ip:?} on network {net_name}"
            ))
        })
    }

    fn classify(&self, container: &str, source: BollardError) -> DockerError {
        match source {
            BollardError::DockerResponseServerError {
                status_code: 404, ..
            } => DockerError::NoSuchContainer {
                container: container.to_owned(),
            },
            BollardError::DockerResponseServerError { .. } => DockerError::Api {
                container: container.to_owned(),
                source,
            },
            // Everything else is transport: socket missing, refused, timed
            // out, not speaking HTTP.
            _ => DockerError::Unreachable {
                socket: self.socket.clone(),
                source,
            },
        }
    }
}
