//! Who (the peer and its process) and where (the target) of a record.

use crate::peer::PeerIdentity;
use serde::Serialize;
use std::path::Path;

/// Longest command line kept, in bytes.
const MAX_CMDLINE_BYTES: usize = 4096;

/// What `/proc` says about the peer's process, read once per connection.
///
/// Only uid, gid and pid come from the kernel's socket credentials; the
/// process name and command line are whatever the process set (a program
/// can rename itself), so they describe, they do not prove. The executable
/// path and the cgroup are the kernel's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProcessInfo {
    /// `/proc/PID/comm`: the process name (at most 15 bytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
    /// `/proc/PID/exe`: the executable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    /// `/proc/PID/cmdline`, arguments separated by spaces, cut at 4 KiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<String>,
    /// The systemd unit (`*.service` or `*.scope`) from `/proc/PID/cgroup`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

impl ProcessInfo {
    /// Reads `/proc/PID/{comm,exe,cmdline,cgroup}`. Whatever cannot be read
    /// (the process is gone, hidepid, not our namespace) is `None`.
    pub fn of(pid: i32) -> ProcessInfo {
        ProcessInfo::from_proc(Path::new("/proc"), pid)
    }

    fn from_proc(proc_root: &Path, pid: i32) -> ProcessInfo {
        if pid <= 0 {
            return ProcessInfo::default();
        }
        let dir = proc_root.join(pid.to_string());
        let process = std::fs::read(dir.join("comm")).ok().map(|b| {
            String::from_utf8_lossy(&b)
                .trim_end_matches('\n')
                .to_owned()
        });
        let exe = std::fs::read_link(dir.join("exe"))
            .ok()
            .map(|p| p.to_string_lossy().into_owned());
        let cmdline = std::fs::read(dir.join("cmdline"))
            .ok()
            .filter(|b| !b.is_empty())
            .map(|b| cmdline_text(&b));
        let unit = std::fs::read_to_string(dir.join("cgroup"))
            .ok()
            .and_then(|text| unit_of_cgroup(&text));
        ProcessInfo {
            process,
            exe,
            cmdline,
            unit,
        }
    }
}

/// NUL-separated arguments as one line, cut at [`MAX_CMDLINE_BYTES`] on a
/// character boundary.
fn cmdline_text(raw: &[u8]) -> String {
    let raw = raw.strip_suffix(b"\0").unwrap_or(raw);
    let mut text: String = String::from_utf8_lossy(raw)
        .chars()
        .map(|c| if c == '\0' { ' ' } else { c })
        .collect();
    if text.len() > MAX_CMDLINE_BYTES {
        let mut cut = MAX_CMDLINE_BYTES;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// The innermost `.service` or `.scope` of the process's cgroup path: the
/// unified hierarchy (`0::/…`) when there is one, else systemd's named one.
fn unit_of_cgroup(text: &str) -> Option<String> {
    let path = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .or_else(|| {
            text.lines()
                .find_map(|l| l.split_once(":name=systemd:").map(|(_, p)| p))
        })?;
    path.rsplit('/')
        .find(|c| c.ends_with(".service") || c.ends_with(".scope"))
        .map(str::to_owned)
}

/// The peer as the audit records it: kernel identity plus process details.
/// Build it once per connection ([`AuditPeer::new`]) and reference it from
/// every record of that connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditPeer {
    /// User id.
    pub uid: u32,
    /// User name.
    pub user: Option<String>,
    /// Primary group id.
    pub gid: u32,
    /// Primary and supplementary groups, by name (gid when unnamed).
    pub groups: Vec<String>,
    /// Process id at connect time.
    pub pid: i32,
    /// Process details from `/proc`.
    #[serde(flatten)]
    pub process: ProcessInfo,
}

impl AuditPeer {
    /// The identity plus `/proc/PID` details. Reads `/proc` (blocking, but
    /// cheap): call it where the identity is read, in `spawn_blocking`.
    pub fn new(identity: &PeerIdentity) -> AuditPeer {
        AuditPeer::with_process(identity, ProcessInfo::of(identity.pid))
    }

    /// The identity with process details read elsewhere.
    pub fn with_process(identity: &PeerIdentity, process: ProcessInfo) -> AuditPeer {
        AuditPeer {
            uid: identity.uid,
            user: identity.user.clone(),
            gid: identity.gid,
            groups: identity.group_names(),
            pid: identity.pid,
            process,
        }
    }
}

/// The database side of a record. Fields are `None` where not yet known
/// (a refused session has no container address).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AuditTarget {
    /// Instance (`czechidm`).
    pub db: String,
    /// Database name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dbname: Option<String>,
    /// Database user.
    pub db_user: String,
    /// Container name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// `address:port` connected to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The role a read session logged in as instead of `db_user`, which
    /// holds superuser-level power (see `read_role`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_role: Option<String>,
    /// The OpenBao lease of a session with dynamic credentials (its id,
    /// never the credentials).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_from_cgroup_files() {
        assert_eq!(
            unit_of_cgroup("0::/system.slice/idm-sync.service\n").as_deref(),
            Some("idm-sync.service")
        );
        assert_eq!(
            unit_of_cgroup("0::/user.slice/user-1000.slice/session-3.scope\n").as_deref(),
            Some("session-3.scope")
        );
        assert_eq!(
            unit_of_cgroup(
                "0::/user.slice/user-1000.slice/user@1000.service/app.slice/backup.service\n"
            )
            .as_deref(),
            Some("backup.service")
        );
        assert_eq!(
            unit_of_cgroup("12:pids:/x\n1:name=systemd:/system.slice/cron.service\n").as_deref(),
            Some("cron.service")
        );
        assert_eq!(unit_of_cgroup("0::/\n"), None);
        assert_eq!(unit_of_cgroup("0::/docker/abc123\n"), None);
    }

    #[test]
    fn cmdline_spaces_and_cut() {
        assert_eq!(
            cmdline_text(b"iam-pg\0-d\0czechidm\0"),
            "iam-pg -d czechidm"
        );
        let long = "é".repeat(3000);
        let text = cmdline_text(long.as_bytes());
        assert!(text.len() <= MAX_CMDLINE_BYTES + '…'.len_utf8());
        assert!(text.ends_with('…'));
    }

    #[test]
    fn our_own_process() {
        let me = ProcessInfo::of(std::process::id() as i32);
        assert!(me.process.is_some());
        assert!(me.cmdline.is_some());
        assert!(me.exe.is_some());
        assert_eq!(ProcessInfo::of(0), ProcessInfo::default());
    }
}
