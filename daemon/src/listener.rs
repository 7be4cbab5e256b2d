//! The listening socket: taken from systemd (`LISTEN_FDS`) or bound here,
//! with the configured mode and group.

use crate::config::ServerConfig;
use std::io;
use std::os::fd::FromRawFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// Why the socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// Another broker answers on the path.
    #[error("another broker is already listening on {0}")]
    InUse(PathBuf),
    /// The path exists and is not a socket.
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    /// The configured group does not exist.
    #[error("socket group {0:?} does not exist")]
    NoSuchGroup(String),
    /// A system call failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// On which path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
}

/// The first socket systemd passed (`LISTEN_FDS`), if it passed one to us.
pub fn from_systemd() -> Option<UnixListener> {
    let pid: u32 = std::env::var("LISTEN_PID").ok()?.parse().ok()?;
    let fds: i32 = std::env::var("LISTEN_FDS").ok()?.parse().ok()?;
    if pid != std::process::id() || fds < 1 {
        return None;
    }
    // Children must not think the sockets are theirs.
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_FDNAMES");
    // SAFETY: by the sd_listen_fds protocol, fd 3 is an open socket that
    // systemd handed to this process and nothing else in it owns.
    Some(unsafe { UnixListener::from_raw_fd(3) })
}

/// Binds the configured path: replaces a stale socket file, refuses when
/// another broker answers, then applies mode and group.
pub fn bind(config: &ServerConfig) -> Result<UnixListener, ListenError> {
    let path = &config.socket;
    let io_err = |what: &'static str| {
        move |source| ListenError::Io {
            what,
            path: path.clone(),
            source,
        }
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => match UnixStream::connect(path) {
            Ok(_) => return Err(ListenError::InUse(path.clone())),
            // Nobody answers: a socket left by a broker that died.
            Err(_) => std::fs::remove_file(path).map_err(io_err("cannot remove stale socket"))?,
        },
        Ok(_) => return Err(ListenError::NotASocket(path.clone())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("cannot inspect")(e)),
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_err("cannot create the folder of"))?;
    }
    let gid = match &config.socket_group {
        Some(name) => Some(
            nix::unistd::Group::from_name(name)
                .ok()
                .flatten()
                .ok_or_else(|| ListenError::NoSuchGroup(name.clone()))?
                .gid,
        ),
        None => None,
    };
    let listener = UnixListener::bind(path).map_err(io_err("cannot bind"))?;
    set_owner_and_mode(path, gid, config.socket_mode)
        .map_err(io_err("cannot set permissions of"))?;
    Ok(listener)
}

fn set_owner_and_mode(path: &Path, gid: Option<nix::unistd::Gid>, mode: u32) -> io::Result<()> {
    if let Some(gid) = gid {
        nix::unistd::chown(path, None, Some(gid)).map_err(io::Error::from)?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(path: PathBuf) -> ServerConfig {
        ServerConfig {
            socket: path,
            socket_mode: 0o660,
            ..ServerConfig::default()
        }
    }

    #[test]
    fn replaces_stale_refuses_live_and_non_sockets() {
        let dir = std::env::temp_dir().join(format!("iam-pgbroker-listen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("run/broker.sock");
        let live = bind(&config(path.clone())).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        assert!(matches!(
            bind(&config(path.clone())),
            Err(ListenError::InUse(_))
        ));
        drop(live);
        // The file is still there but nobody listens: stale, replaced.
        assert!(path.exists());
        let _again = bind(&config(path.clone())).unwrap();
        let plain = dir.join("plain");
        std::fs::write(&plain, b"x").unwrap();
        assert!(matches!(
            bind(&config(plain)),
            Err(ListenError::NotASocket(_))
        ));
    }
}
