//! The folder of change requests: one JSON file per request, sealed with
//! the audit key, replaced atomically (a temporary file, `fsync`, rename,
//! `fsync` of the folder), so that a crash leaves either the old or the new
//! state, never half of one.

use super::mac;
use crate::audit::{AuditError, AuditKey, AuditLog};
use crate::peer::{GroupInfo, PeerIdentity};
use iam_pgbroker_proto::{ApprovalRequest, RequestState};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// Version of the file format; part of the seal.
pub const FORMAT: u32 = 1;

/// A request file larger than this is refused unread (a request is bounded
/// by the broker's line limit, 1 MiB by default).
const MAX_FILE_BYTES: u64 = 64 << 20;

/// What a request file holds, all of it sealed: the request as clients see
/// it, and what the broker needs to run it as it was dry-run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredRequest {
    /// The request as `request_show` answers it.
    pub request: ApprovalRequest,
    /// The requester's primary gid when it submitted.
    pub requester_gid: u32,
    /// The requester's groups when it submitted: the policy is asked again
    /// at approval whether they still may submit this change.
    pub requester_groups: Vec<String>,
    /// The role of the requester's rule (`SET ROLE`), for the dry run and
    /// the execution alike.
    pub db_role: Option<String>,
    /// `statement_timeout` of both runs, ms.
    pub statement_timeout_ms: u64,
    /// `idle_in_transaction_session_timeout` of both runs, ms.
    pub idle_in_transaction_timeout_ms: u64,
    /// The transaction id of the execution, written (state still
    /// `executing`) just before its `COMMIT`: after a crash, PostgreSQL's
    /// `txid_status` of it says whether the change was committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xid: Option<String>,
}

impl StoredRequest {
    /// The requester as the policy sees a peer (no pid: it is not
    /// connected).
    pub fn requester_identity(&self) -> PeerIdentity {
        PeerIdentity {
            uid: self.request.requester.uid,
            gid: self.requester_gid,
            pid: 0,
            user: self.request.requester.user.clone(),
            groups: self
                .requester_groups
                .iter()
                .map(|name| GroupInfo {
                    gid: name.parse().unwrap_or(u32::MAX),
                    name: Some(name.clone()),
                })
                .collect(),
        }
    }
}

#[derive(Serialize)]
struct FileOut<'a> {
    format: u32,
    content: &'a StoredRequest,
    mac: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileIn {
    format: u32,
    content: StoredRequest,
    mac: String,
}

/// Why a request could not be read.
#[derive(Debug)]
pub enum LoadError {
    /// No file for this id.
    NotFound,
    /// The file could not be read.
    Io(io::Error),
    /// The file is corrupt, or was changed outside the broker: refused.
    Refused(String),
}

/// Whether `text` is a request id: 16 lower-case hex digits (so an id can
/// never name another path).
pub fn is_id(text: &str) -> bool {
    text.len() == 16 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A new request id: 16 hex digits from the kernel's random source.
pub fn new_id() -> io::Result<String> {
    let mut bytes = [0u8; 8];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(hex::encode(bytes))
}

fn path_of(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.json"))
}

/// Writes `content` as the file of its request, replacing the old one
/// atomically. Creates the folder (0700) when missing; files are 0600.
///
/// Blocking (a few small writes and two `fsync`s), like the audit's own
/// writes: change requests are rare and each must be on disk before it is
/// answered.
pub fn write(dir: &Path, key: &AuditKey, content: &StoredRequest) -> io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let id = &content.request.id;
    if !is_id(id) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{id:?} is not a request id"),
        ));
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let file = FileOut {
        format: FORMAT,
        content,
        mac: mac::seal(key, content),
    };
    let mut bytes = serde_json::to_vec_pretty(&file).map_err(io::Error::other)?;
    bytes.push(b'\n');
    let tmp = dir.join(format!(
        ".{id}.json.tmp.{}.{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path_of(dir, id))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    // The rename is durable only once the folder is.
    std::fs::File::open(dir)?.sync_all()
}

/// Reads and checks the file of request `id`.
pub fn read(dir: &Path, key: &AuditKey, id: &str) -> Result<StoredRequest, LoadError> {
    let path = path_of(dir, id);
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(LoadError::NotFound),
        Err(e) => return Err(LoadError::Io(e)),
    };
    let meta = file.metadata().map_err(LoadError::Io)?;
    if !meta.is_file() {
        return Err(LoadError::Refused("it is not a regular file".into()));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(LoadError::Refused(format!(
            "it is larger than {MAX_FILE_BYTES} bytes"
        )));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes).map_err(LoadError::Io)?;
    let parsed: FileIn = serde_json::from_slice(&bytes)
        .map_err(|e| LoadError::Refused(format!("it is not a request file: {e}")))?;
    if parsed.format != FORMAT {
        return Err(LoadError::Refused(format!(
            "it has format {}, this broker reads format {FORMAT}",
            parsed.format
        )));
    }
    if !mac::verify(key, &parsed.content, &parsed.mac) {
        return Err(LoadError::Refused(
            "its seal (MAC) does not match its content: it was changed outside the broker, or sealed with another key".into(),
        ));
    }
    if parsed.content.request.id != id {
        return Err(LoadError::Refused(format!(
            "it holds request {:?}",
            parsed.content.request.id
        )));
    }
    Ok(parsed.content)
}

/// Removes the file of request `id`.
pub fn remove(dir: &Path, id: &str) -> io::Result<()> {
    std::fs::remove_file(path_of(dir, id))
}

/// The ids of the request files in `dir`, sorted; none when the folder does
/// not exist yet. Temporary files and anything else are skipped.
pub fn ids(dir: &Path) -> io::Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut ids = Vec::new();
    for entry in entries {
        let name = entry?.file_name();
        if let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json")) {
            if is_id(id) {
                ids.push(id.to_owned());
            }
        }
    }
    ids.sort();
    Ok(ids)
}

/// What the broker knows of a stored request without reading its file:
/// enough to list, count and expire requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// Its state when it was last written.
    pub state: RequestState,
    /// The requester's uid.
    pub requester: u32,
    /// Instance.
    pub db: String,
    /// Database user.
    pub db_user: String,
    /// When it was submitted (RFC 3339, UTC).
    pub submitted: String,
    /// When it ended (decided, or its expiry for an expired one).
    pub ended: Option<String>,
    /// Bytes of statements, parameters and reason: what a pending request
    /// holds of its requester's share.
    pub bytes: usize,
}

impl IndexEntry {
    /// The entry of `stored`.
    pub fn of(stored: &StoredRequest) -> IndexEntry {
        let r = &stored.request;
        let bytes = r.reason.len()
            + r.statements
                .iter()
                .map(|s| s.sql.len() + s.params.iter().map(|p| p.to_string().len()).sum::<usize>())
                .sum::<usize>();
        IndexEntry {
            state: r.state,
            requester: r.requester.uid,
            db: r.db.clone(),
            db_user: r.db_user.clone(),
            submitted: r.submitted.clone(),
            ended: match r.state {
                RequestState::Expired => Some(r.expires.clone()),
                _ => r.decided_at.clone(),
            },
            bytes,
        }
    }

    /// Whether the request's life is over (nothing can happen to it any
    /// more but removal).
    pub fn ended(&self) -> bool {
        !matches!(
            self.state,
            RequestState::Pending | RequestState::Executing | RequestState::Unknown
        )
    }
}

/// The index of one folder: read once, then kept by the broker's own
/// writes. Files it could not read are listed apart.
struct Index {
    dir: PathBuf,
    entries: std::collections::BTreeMap<String, IndexEntry>,
    refused: Vec<String>,
}

/// The broker's share of the approval machinery: one lock per request, so
/// that exactly one action changes a request at a time (two approvers at
/// once: the first runs it, the second finds it no longer pending), the
/// key that seals request files, and the index of the folder, so that
/// listing and counting read no file (the folder is this broker's own:
/// files others put there are seen at the next start).
#[derive(Default)]
pub struct ApprovalStore {
    locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
    key: Mutex<Option<AuditKey>>,
    index: Mutex<Option<Index>>,
}

impl ApprovalStore {
    /// Waits for and takes the lock of request `id`. Held across the
    /// read, the state check, the run and the final write.
    pub async fn lock(&self, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        self.entry(id).lock_owned().await
    }

    fn entry(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        // Locks nobody holds or waits for any more are dropped here, so the
        // map stays as small as the requests in use.
        map.retain(|_, weak| weak.strong_count() > 0);
        match map.get(id).and_then(Weak::upgrade) {
            Some(lock) => lock,
            None => {
                let lock = Arc::new(tokio::sync::Mutex::new(()));
                map.insert(id.to_owned(), Arc::downgrade(&lock));
                lock
            }
        }
    }

    /// The lock of request `id` if nobody holds it now: for reads that
    /// should not wait for an approval that is running.
    pub fn try_lock(&self, id: &str) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        self.entry(id).try_lock_owned().ok()
    }

    /// Runs `f` on the index of `dir`, reading the folder first when this
    /// broker has not yet (or had another folder before a reload).
    fn with_index<T>(
        &self,
        dir: &Path,
        key: &AuditKey,
        f: impl FnOnce(&mut Index) -> T,
    ) -> io::Result<T> {
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        if index.as_ref().is_none_or(|i| i.dir != dir) {
            let mut fresh = Index {
                dir: dir.to_owned(),
                entries: Default::default(),
                refused: Vec::new(),
            };
            for id in ids(dir)? {
                match read(dir, key, &id) {
                    Ok(stored) => {
                        fresh.entries.insert(id, IndexEntry::of(&stored));
                    }
                    Err(LoadError::NotFound) => {}
                    Err(_) => fresh.refused.push(id),
                }
            }
            *index = Some(fresh);
        }
        match index.as_mut() {
            Some(i) => Ok(f(i)),
            None => Err(io::Error::other("the request index is missing")),
        }
    }

    /// Writes `content` (see [`write`]) and keeps the index.
    pub fn save(&self, dir: &Path, key: &AuditKey, content: &StoredRequest) -> io::Result<()> {
        write(dir, key, content)?;
        self.with_index(dir, key, |i| {
            i.refused.retain(|id| id != &content.request.id);
            i.entries
                .insert(content.request.id.clone(), IndexEntry::of(content));
        })
    }

    /// Removes request `id`'s file and its entry.
    pub fn delete(&self, dir: &Path, key: &AuditKey, id: &str) -> io::Result<()> {
        match remove(dir, id) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        self.with_index(dir, key, |i| {
            i.entries.remove(id);
            i.refused.retain(|r| r != id);
        })
    }

    /// The ids whose entries `keep` accepts, oldest first, and the ids of
    /// files that were refused when the folder was read.
    pub fn select(
        &self,
        dir: &Path,
        key: &AuditKey,
        mut keep: impl FnMut(&IndexEntry) -> bool,
    ) -> io::Result<(Vec<String>, Vec<String>)> {
        self.with_index(dir, key, |i| {
            let mut chosen: Vec<(&String, &IndexEntry)> =
                i.entries.iter().filter(|(_, e)| keep(e)).collect();
            chosen.sort_by(|a, b| a.1.submitted.cmp(&b.1.submitted).then(a.0.cmp(b.0)));
            (
                chosen.into_iter().map(|(id, _)| id.clone()).collect(),
                i.refused.clone(),
            )
        })
    }

    /// Requests by state.
    pub fn counts(
        &self,
        dir: &Path,
        key: &AuditKey,
    ) -> io::Result<std::collections::BTreeMap<&'static str, u64>> {
        self.with_index(dir, key, |i| {
            let mut counts = std::collections::BTreeMap::new();
            for e in i.entries.values() {
                *counts.entry(e.state.as_str()).or_default() += 1;
            }
            counts
        })
    }

    /// How many requests `uid` has pending, and their bytes.
    pub fn pending_of(&self, dir: &Path, key: &AuditKey, uid: u32) -> io::Result<(usize, usize)> {
        self.with_index(dir, key, |i| {
            i.entries
                .values()
                .filter(|e| e.requester == uid && e.state == RequestState::Pending)
                .fold((0, 0), |(n, bytes), e| (n + 1, bytes + e.bytes))
        })
    }

    /// The sealing key: the audit's HMAC key, which the log already holds
    /// with `params = "hmac"`; otherwise read (or created) from
    /// `[audit] key_file` once.
    pub fn key(&self, audit: &AuditLog, key_file: &Path) -> Result<AuditKey, AuditError> {
        if let Some(key) = audit.key() {
            return Ok(key.clone());
        }
        let mut cached = self.key.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(key) = cached.as_ref() {
            return Ok(key.clone());
        }
        let key = AuditKey::load_or_create(key_file)?;
        *cached = Some(key.clone());
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iam_pgbroker_proto::{Person, RequestState, RequestStatement};
    use serde_json::json;

    fn sample(id: &str) -> StoredRequest {
        StoredRequest {
            xid: None,
            request: ApprovalRequest {
                id: id.into(),
                state: RequestState::Pending,
                db: "czechidm".into(),
                dbname: "czechidm".into(),
                db_user: "czechidm".into(),
                requester: Person {
                    uid: 1001,
                    user: Some("alice".into()),
                },
                reason: "INC-1: oprava příjmení".into(),
                rule: "helpdesk".into(),
                statements: vec![RequestStatement {
                    sql: "UPDATE idm_identity SET last_name = %s WHERE username = %s".into(),
                    params: vec![json!("Dvořák"), json!("jdvorak"), json!(1.5), json!(null)],
                    kind: "UPDATE".into(),
                    dry_run_rows: 1,
                    rows: None,
                    changes: None,
                    changes_at_approval: None,
                }],
                submitted: "2026-11-27T21:00:00.000000Z".into(),
                expires: "2026-11-28T21:00:00.000000Z".into(),
                decided_by: None,
                decided_at: None,
                comment: None,
                error: None,
            },
            requester_gid: 1001,
            requester_groups: vec!["alice".into(), "iam-pgbroker".into()],
            db_role: None,
            statement_timeout_ms: 60_000,
            idle_in_transaction_timeout_ms: 600_000,
        }
    }

    fn tempdir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "iam-pgbroker-requests-{tag}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn written_files_read_back_and_edits_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempdir("rw");
        let key = AuditKey::from_bytes(&[9; 32]);
        let id = new_id().unwrap();
        assert!(is_id(&id));
        let stored = sample(&id);
        write(&dir, &key, &stored).unwrap();
        assert_eq!(read(&dir, &key, &id).unwrap(), stored);
        assert_eq!(ids(&dir).unwrap(), vec![id.clone()]);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&path_of(&dir, &id)), 0o600);

        // Another key: refused.
        let other = AuditKey::from_bytes(&[8; 32]);
        assert!(matches!(
            read(&dir, &other, &id),
            Err(LoadError::Refused(_))
        ));
        // An edited count: refused.
        let path = path_of(&dir, &id);
        let text = std::fs::read_to_string(&path).unwrap();
        let edited = text.replace("\"dry_run_rows\": 1", "\"dry_run_rows\": 7");
        assert_ne!(text, edited);
        std::fs::write(&path, edited).unwrap();
        let Err(LoadError::Refused(why)) = read(&dir, &key, &id) else {
            panic!("an edited file was accepted")
        };
        assert!(why.contains("changed outside the broker"), "{why}");
        // A file copied under another id: refused.
        let copy = new_id().unwrap();
        std::fs::write(path_of(&dir, &copy), text).unwrap();
        assert!(matches!(
            read(&dir, &key, &copy),
            Err(LoadError::Refused(_))
        ));
        // Garbage: refused; missing: not found.
        std::fs::write(&path, "{").unwrap();
        assert!(matches!(read(&dir, &key, &id), Err(LoadError::Refused(_))));
        assert!(matches!(
            read(&dir, &key, "0000000000000000"),
            Err(LoadError::NotFound)
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn ids_are_plain_hex() {
        assert!(is_id("0123456789abcdef"));
        for bad in ["0123456789ABCDEF", "../../etc/passw", "0123456789abcde", ""] {
            assert!(!is_id(bad), "{bad}");
        }
        assert!(ids(Path::new("/nonexistent/iam-pgbroker"))
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn one_holder_per_request() {
        let store = ApprovalStore::default();
        let a = store.lock("0123456789abcdef").await;
        let b = store.lock("fedcba9876543210").await;
        let waiting = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            store.lock("0123456789abcdef"),
        )
        .await;
        assert!(waiting.is_err(), "the same request was locked twice");
        assert!(store.try_lock("0123456789abcdef").is_none());
        drop((a, b));
        let _again = store.lock("0123456789abcdef").await;
    }
}
