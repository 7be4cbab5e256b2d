//! Who is on the other end of the socket, from the kernel.
//!
//! `SO_PEERCRED` gives uid, gid and pid as they were at `connect()`;
//! `SO_PEERGROUPS` (Linux ≥ 4.13) gives the supplementary groups the same
//! way. Names come from the user and group databases. Nothing the client
//! says about itself is used.

use std::fmt;
use std::os::fd::AsRawFd;

/// A group of the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    /// Group id.
    pub gid: u32,
    /// Group name, when the group database knows it.
    pub name: Option<String>,
}

/// The peer's identity, read right after `accept()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Process id at connect time.
    pub pid: i32,
    /// User name, when the user database knows it.
    pub user: Option<String>,
    /// Primary and supplementary groups, primary first.
    pub groups: Vec<GroupInfo>,
}

/// Why the peer's identity could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// `SO_PEERCRED` failed.
    #[error("cannot read the peer's credentials: {0}")]
    Credentials(#[source] std::io::Error),
}

impl PeerIdentity {
    /// Reads the identity of the process connected on `stream`.
    ///
    /// Blocking (the user and group databases may be NSS lookups): call it
    /// from `spawn_blocking`.
    pub fn from_stream(stream: &impl AsRawFd) -> Result<PeerIdentity, PeerError> {
        let fd = stream.as_raw_fd();
        let cred = peer_cred(fd).map_err(PeerError::Credentials)?;
        let user = nix::unistd::User::from_uid(cred.uid.into()).ok().flatten();
        let user_name = user.as_ref().map(|u| u.name.clone());
        let mut gids = vec![cred.gid];
        match peer_groups(fd) {
            Ok(list) => gids.extend(list),
            // Older kernels lack SO_PEERGROUPS: fall back to the group
            // database, which is what the process had at login.
            Err(_) => {
                if let Some(u) = &user {
                    if let Ok(cname) = std::ffi::CString::new(u.name.clone()) {
                        if let Ok(list) =
                            nix::unistd::getgrouplist(&cname, nix::unistd::Gid::from_raw(cred.gid))
                        {
                            gids.extend(list.into_iter().map(|g| g.as_raw()));
                        }
                    }
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        gids.retain(|g| seen.insert(*g));
        let groups = gids
            .into_iter()
            .map(|gid| GroupInfo {
                gid,
                name: nix::unistd::Group::from_gid(gid.into())
                    .ok()
                    .flatten()
                    .map(|g| g.name),
            })
            .collect();
        Ok(PeerIdentity {
            uid: cred.uid,
            gid: cred.gid,
            pid: cred.pid,
            user: user_name,
            groups,
        })
    }

    /// `uid 1001 (alice)`: how errors and logs name the peer.
    pub fn describe(&self) -> String {
        match &self.user {
            Some(name) => format!("uid {} ({name})", self.uid),
            None => format!("uid {}", self.uid),
        }
    }

    /// Group names, for the wire and the audit.
    pub fn group_names(&self) -> Vec<String> {
        self.groups
            .iter()
            .map(|g| g.name.clone().unwrap_or_else(|| g.gid.to_string()))
            .collect()
    }

    /// The wire form sent in the `opened` frame.
    pub fn to_wire(&self) -> iam_pgbroker_proto::Identity {
        iam_pgbroker_proto::Identity {
            uid: self.uid,
            user: self.user.clone(),
            gid: self.gid,
            groups: self.group_names(),
            pid: self.pid,
        }
    }
}

impl fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

fn peer_cred(fd: i32) -> std::io::Result<libc::ucred> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` is a valid, writable ucred and `len` its size.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(cred)
}

fn peer_groups(fd: i32) -> std::io::Result<Vec<u32>> {
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut len = (groups.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: `groups` is a valid, writable buffer of `len` bytes.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if rc == 0 {
            groups.truncate(len as usize / std::mem::size_of::<libc::gid_t>());
            return Ok(groups);
        }
        let err = std::io::Error::last_os_error();
        // ERANGE: the buffer was too small and `len` now holds the size needed.
        if err.raw_os_error() == Some(libc::ERANGE) && groups.len() < 65536 {
            let needed = len as usize / std::mem::size_of::<libc::gid_t>();
            groups.resize(needed.max(groups.len() * 2), 0);
            continue;
        }
        return Err(err);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_identity_over_a_socketpair() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let me = PeerIdentity::from_stream(&a).unwrap();
        assert_eq!(me.uid, nix::unistd::getuid().as_raw());
        assert_eq!(me.gid, nix::unistd::getgid().as_raw());
        assert_eq!(me.pid, std::process::id() as i32);
        assert_eq!(me.groups.first().map(|g| g.gid), Some(me.gid));
    }
}
