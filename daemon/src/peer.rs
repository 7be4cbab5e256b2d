//! Who is on the other end of the socket, from the kernel.
//!
//! `SO_PEERCRED` gives uid, gid and pid as they were at `connect()`;
//! `SO_PEERGROUPS` (Linux ≥ 4.13) gives the supplementary groups the same
//! way. Names come from the user and group databases. Nothing the client
//! says about itself is used.

use std::collections::HashMap;
use std::fmt;
use std::os::fd::AsRawFd;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

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

/// What the kernel says about the peer: no lookups, never blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Process id at connect time.
    pub pid: i32,
    /// Primary and supplementary groups, primary first, no duplicates;
    /// `None` on kernels without `SO_PEERGROUPS` (then the group database
    /// says, which is a lookup).
    pub gids: Option<Vec<u32>>,
}

impl Credentials {
    /// `SO_PEERCRED` and `SO_PEERGROUPS` of the process connected on
    /// `stream`.
    pub fn of(stream: &impl AsRawFd) -> Result<Credentials, PeerError> {
        let fd = stream.as_raw_fd();
        let cred = peer_cred(fd).map_err(PeerError::Credentials)?;
        let gids = peer_groups(fd).ok().map(|list| {
            let mut gids = vec![cred.gid];
            gids.extend(list);
            let mut seen = std::collections::HashSet::new();
            gids.retain(|g| seen.insert(*g));
            gids
        });
        Ok(Credentials {
            uid: cred.uid,
            gid: cred.gid,
            pid: cred.pid,
            gids,
        })
    }

    /// The identity with names from the cache of recent lookups, when it
    /// has every name needed; `None` means a lookup is due
    /// ([`Credentials::resolve`], which may block).
    pub fn resolve_cached(&self) -> Option<PeerIdentity> {
        let gids = self.gids.as_ref()?;
        let cache = names();
        let cache = crate::sync::lock(cache);
        let now = Instant::now();
        let user = cache.users.fresh(self.uid, now)?;
        let groups = gids
            .iter()
            .map(|&gid| {
                cache
                    .groups
                    .fresh(gid, now)
                    .map(|name| GroupInfo { gid, name })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(PeerIdentity {
            uid: self.uid,
            gid: self.gid,
            pid: self.pid,
            user,
            groups,
        })
    }

    /// The identity with names from the user and group databases.
    ///
    /// Blocking (the databases may be NSS lookups: LDAP, sssd): call it
    /// from `spawn_blocking`. What it finds is kept for
    /// [`NAMES_KEPT_FOR`], for [`Credentials::resolve_cached`].
    pub fn resolve(&self) -> PeerIdentity {
        let user = nix::unistd::User::from_uid(self.uid.into()).ok().flatten();
        let gids = match &self.gids {
            Some(gids) => gids.clone(),
            // Older kernels lack SO_PEERGROUPS: fall back to the group
            // database, which is what the process had at login.
            None => {
                let mut gids = vec![self.gid];
                if let Some(u) = &user {
                    if let Ok(cname) = std::ffi::CString::new(u.name.clone()) {
                        if let Ok(list) =
                            nix::unistd::getgrouplist(&cname, nix::unistd::Gid::from_raw(self.gid))
                        {
                            gids.extend(list.into_iter().map(|g| g.as_raw()));
                        }
                    }
                }
                let mut seen = std::collections::HashSet::new();
                gids.retain(|g| seen.insert(*g));
                gids
            }
        };
        let user = user.map(|u| u.name);
        let groups: Vec<GroupInfo> = gids
            .into_iter()
            .map(|gid| GroupInfo {
                gid,
                name: nix::unistd::Group::from_gid(gid.into())
                    .ok()
                    .flatten()
                    .map(|g| g.name),
            })
            .collect();
        let mut cache = crate::sync::lock(names());
        let now = Instant::now();
        cache.users.keep(self.uid, user.clone(), now);
        for g in &groups {
            cache.groups.keep(g.gid, g.name.clone(), now);
        }
        PeerIdentity {
            uid: self.uid,
            gid: self.gid,
            pid: self.pid,
            user,
            groups,
        }
    }
}

/// How long a name from the user or group database is reused. Short: a
/// renamed user or group reaches the policy within seconds, while a burst
/// of connections from the same tool costs one lookup (and no hand-off to
/// a blocking thread). Ids without a name are looked up every
/// time (a user created a moment ago must not stay nameless).
pub const NAMES_KEPT_FOR: Duration = Duration::from_secs(5);

/// Entries kept at most per table; past it the table starts afresh.
const NAMES_KEPT_MAX: usize = 4096;

#[derive(Default)]
struct NameCache {
    users: NameTable,
    groups: NameTable,
}

#[derive(Default)]
struct NameTable(HashMap<u32, (String, Instant)>);

impl NameTable {
    /// `Some(name)` when a name seen lately is kept; `None`: look it up.
    fn fresh(&self, id: u32, now: Instant) -> Option<Option<String>> {
        let (name, at) = self.0.get(&id)?;
        (now.duration_since(*at) < NAMES_KEPT_FOR).then(|| Some(name.clone()))
    }

    fn keep(&mut self, id: u32, name: Option<String>, now: Instant) {
        match name {
            Some(name) => {
                if self.0.len() >= NAMES_KEPT_MAX {
                    self.0
                        .retain(|_, (_, at)| now.duration_since(*at) < NAMES_KEPT_FOR);
                    if self.0.len() >= NAMES_KEPT_MAX {
                        self.0.clear();
                    }
                }
                self.0.insert(id, (name, now));
            }
            None => {
                self.0.remove(&id);
            }
        }
    }
}

fn names() -> &'static Mutex<NameCache> {
    static NAMES: OnceLock<Mutex<NameCache>> = OnceLock::new();
    NAMES.get_or_init(Default::default)
}

impl PeerIdentity {
    /// Reads the identity of the process connected on `stream`, looking up
    /// every name.
    ///
    /// Blocking (the user and group databases may be NSS lookups): call it
    /// from `spawn_blocking`.
    pub fn from_stream(stream: &impl AsRawFd) -> Result<PeerIdentity, PeerError> {
        Ok(Credentials::of(stream)?.resolve())
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

    #[test]
    fn cached_names_equal_looked_up_ones() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let creds = Credentials::of(&a).unwrap();
        let looked_up = creds.resolve();
        // Root and its groups have names on every machine this runs on.
        assert!(looked_up.user.is_some());
        assert_eq!(creds.resolve_cached(), Some(looked_up));
    }

    #[test]
    fn nameless_ids_and_old_names_are_looked_up_again() {
        let mut table = NameTable::default();
        let then = Instant::now();
        table.keep(7, Some("seven".into()), then);
        assert_eq!(table.fresh(7, then), Some(Some("seven".into())));
        assert_eq!(table.fresh(7, then + NAMES_KEPT_FOR), None);
        table.keep(7, None, then);
        assert_eq!(table.fresh(7, then), None);
        for id in 0..(NAMES_KEPT_MAX as u32 + 10) {
            table.keep(id, Some(id.to_string()), then);
        }
        assert!(table.0.len() <= NAMES_KEPT_MAX);
    }
}
