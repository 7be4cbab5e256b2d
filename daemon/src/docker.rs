//! Finding a database container's address through the Docker Engine API.

use crate::config::InstanceTarget;
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
#[derive(Debug)]
pub struct ContainerResolver {
    /// The client, made on first use: a broker that starts while the Docker
    /// socket is missing must still serve (and answer `unavailable`).
    docker: std::sync::Mutex<Option<Docker>>,
    socket: String,
    timeout: Duration,
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
        }
    }

    fn client(&self) -> Result<Docker, DockerError> {
        let mut slot = match self.docker.lock() {
            Ok(slot) => slot,
            Err(poisoned) => poisoned.into_inner(),
        };
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

    /// The address of `target`'s container: it must exist and run, and have
    /// exactly one usable address on the configured (or only) network.
    pub async fn resolve(&self, target: &InstanceTarget) -> Result<IpAddr, DockerError> {
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
