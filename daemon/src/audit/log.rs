//! The audit file: one JSON line per record, appended with one `write(2)`,
//! chained by SHA-256, failing closed.

use super::config::{AuditConfig, FsyncMode, ParamsMode};
use super::key::AuditKey;
use super::record::{write_body, AuditEvent, AuditRecord, ParamsRender, RotatedInfo};
use super::{timefmt, AuditError, ChainHash};
use std::cell::RefCell;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};
use tracing::{error, info, warn};

/// How often starting a watch of the audit file's folder is tried again
/// after it could not be started (meanwhile every record checks the path).
const WATCH_RETRY: Duration = Duration::from_secs(60);
/// How long the watch thread waits for events before it checks whether its
/// log still exists.
const WATCH_POLL_MS: u16 = 1000;
/// What the watch logs (at debug) when the file's name changed in its
/// folder; tests wait for it.
const WATCH_SAW: &str =
    "the audit file's name changed in its folder; the next record checks the path";
/// How often an ongoing outage is logged again.
const OUTAGE_LOG_EVERY: Duration = Duration::from_secs(60);
/// Buffers larger than this are not kept for reuse after a huge record.
const KEEP_BUFFER_BYTES: usize = 1 << 20;
/// The last line is searched for this far back at most when the chain is
/// picked up from an existing file.
const MAX_TAIL_BYTES: u64 = 256 << 20;

thread_local! {
    // The record body is serialized outside the file lock, into a buffer
    // each thread reuses: no allocation per record in the steady state.
    static BODY: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The audit log. Cheap to clone (all clones write the same file); share
/// it between tasks.
///
/// [`AuditLog::record`] is synchronous on purpose: under a mutex it does
/// one `stat` of the path and one `write(2)` of a line that is already
/// serialized — a few microseconds, less than handing the work to
/// `spawn_blocking` would cost. With `fsync = "always"` it also waits for
/// `fdatasync` (outside the mutex, shared by the records of concurrent
/// sessions); on the broker's runtime the worker thread first hands its
/// other sessions to another thread (`block_in_place`), so they go on
/// while this one waits for the disk.
#[derive(Clone)]
pub struct AuditLog {
    inner: Option<Arc<Inner>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Some(inner) => f
                .debug_struct("AuditLog")
                .field("path", &inner.path)
                .finish_non_exhaustive(),
            None => f.write_str("AuditLog(disabled)"),
        }
    }
}

struct Inner {
    path: PathBuf,
    fsync: FsyncMode,
    max_bytes: Option<u64>,
    params: ParamsMode,
    key: Option<AuditKey>,
    /// Anchor after this many records at the latest.
    anchor_records: u64,
    /// Anchor this often at the latest while records are written.
    anchor_interval: Duration,
    state: Mutex<State>,
    /// Serializes `fdatasync` calls; concurrent writers wait here and find
    /// their record already flushed by someone else's call (group commit).
    sync_lock: Mutex<()>,
    /// Highest record sequence number known to be on disk.
    synced: AtomicU64,
    /// A background flush failed: the next record flushes itself first and
    /// fails closed if that fails too.
    sync_failed: AtomicBool,
}

struct State {
    /// The open file, `None` until the path could be opened once.
    file: Option<Arc<File>>,
    /// (device, inode) of `file`, to notice the path now names another file.
    id: (u64, u64),
    /// Size of the file as last seen.
    len: u64,
    /// Hash of the last record written: the next record's `prev`.
    head: ChainHash,
    head_hex: [u8; 64],
    /// Records written since start.
    seq: u64,
    /// Records (lines) in the current file, for the anchors.
    lines: u64,
    /// Records written since the last anchor, and when that was.
    since_anchor: u64,
    last_anchor: Instant,
    /// A `rotated` record owed to the current file.
    pending: Option<Pending>,
    /// Lines chained but not yet written ([`AuditLog::record_deferred`]),
    /// then the line being written: one buffer, reused, so that both go
    /// out in one `write(2)`.
    line: Vec<u8>,
    outage: Option<Outage>,
    /// Last time a failed size rotation was logged.
    rotate_warned: Option<Instant>,
    /// Last time a failed write of deferred lines was logged.
    deferred_warned: Option<Instant>,
    /// Tells when the path may name another file; `None` (not started,
    /// or blind): every record checks the path.
    watch: Option<Arc<PathWatch>>,
    /// When starting `watch` was last tried.
    watch_tried: Option<Instant>,
}

struct Pending {
    why: &'static str,
    previous_file: Option<String>,
}

struct Outage {
    since: Instant,
    refused: u64,
    last_logged: Instant,
}

impl AuditLog {
    /// Opens (creating when missing) the audit file for appending, and
    /// picks up the chain from its last line. With `params = "hmac"` the
    /// key is read, or created on first start.
    ///
    /// Fails only when the key cannot be had (a configuration problem).
    /// An audit file that cannot be opened is not an error here: the broker
    /// starts, says so loudly, refuses every statement with
    /// `audit_unavailable` and opens the file as soon as it can.
    ///
    /// With `enabled = false` the log records nothing (see
    /// [`AuditLog::disabled`]).
    pub fn open(config: &AuditConfig) -> Result<AuditLog, AuditError> {
        if !config.enabled {
            warn!("the audit is DISABLED ([audit] enabled = false): statements run unrecorded; use this only to measure the audit's cost");
            return Ok(AuditLog::disabled());
        }
        let key = match config.params {
            ParamsMode::Hmac => Some(AuditKey::load_or_create(&config.key_file)?),
            ParamsMode::Plain | ParamsMode::Omit => None,
        };
        let inner = Arc::new(Inner {
            path: config.file.clone(),
            fsync: config.fsync,
            max_bytes: config.max_bytes,
            params: config.params,
            key,
            anchor_records: config.anchor_records.max(1),
            anchor_interval: Duration::from_secs(config.anchor_interval_s.max(1)),
            state: Mutex::new(State {
                file: None,
                id: (0, 0),
                len: 0,
                head: ChainHash::ZERO,
                head_hex: hex_of(&ChainHash::ZERO),
                seq: 0,
                lines: 0,
                since_anchor: 0,
                last_anchor: Instant::now(),
                pending: None,
                line: Vec::new(),
                outage: None,
                rotate_warned: None,
                deferred_warned: None,
                watch: None,
                watch_tried: None,
            }),
            sync_lock: Mutex::new(()),
            synced: AtomicU64::new(0),
            sync_failed: AtomicBool::new(false),
        });
        {
            let mut st = inner.lock();
            if let Err(e) = inner.first_open(&mut st) {
                inner.failed(&mut st, e);
            }
        }
        if config.fsync == FsyncMode::Interval {
            let every = Duration::from_millis(config.fsync_interval_ms.max(1));
            let weak = Arc::downgrade(&inner);
            std::thread::Builder::new()
                .name("audit-fsync".into())
                .spawn(move || flush_every(weak, every))
                .map_err(AuditError::Thread)?;
        }
        Ok(AuditLog { inner: Some(inner) })
    }

    /// A log that records nothing and never fails: `[audit] enabled =
    /// false`, for the benchmark's comparison only.
    pub fn disabled() -> AuditLog {
        AuditLog { inner: None }
    }

    /// Whether records are written at all.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// The audit file (`None` when disabled).
    pub fn path(&self) -> Option<&Path> {
        self.inner.as_deref().map(|i| i.path.as_path())
    }

    /// The key parameters are hashed with (`None` unless `params =
    /// "hmac"`); change requests are sealed with it too.
    pub fn key(&self) -> Option<&AuditKey> {
        self.inner.as_deref().and_then(|i| i.key.as_ref())
    }

    /// The hash of the last record written: the `prev` of the next one.
    /// Logged at start and stop so that the journal holds anchors an
    /// attacker who rewrites the file would also have to forge.
    pub fn head(&self) -> ChainHash {
        match &self.inner {
            Some(inner) => {
                let mut st = inner.lock();
                inner.write_deferred(&mut st);
                st.head
            }
            None => ChainHash::ZERO,
        }
    }

    /// Writes one record and returns its hash. When this returns `Ok`, the
    /// line is in the file (and on disk with `fsync = "always"`); only then
    /// may what it describes run. On `Err` nothing may run: refuse the
    /// request with `audit_unavailable`. The log logs the outage itself
    /// (once, then once a minute) and recovers by itself: every record
    /// retries, reopening the path when it has vanished or been replaced.
    pub fn record(&self, rec: &AuditRecord<'_>) -> Result<ChainHash, AuditError> {
        self.record_as(rec, false)
    }

    /// Records what ran, best effort: with `fsync = "interval"` the line is
    /// chained now and written with the next record's `write(2)`, or by
    /// the flush thread within `fsync_interval_ms`, whichever comes first
    /// (before any anchor, rotation or reopen, and at shutdown); with
    /// `fsync = "always"` it is written at once, as [`AuditLog::record`]
    /// does. For `result` records of statements that have run, which
    /// nothing waits for: a crash before the write loses the line, never
    /// the chain (nothing after it was written either).
    pub fn record_deferred(&self, rec: &AuditRecord<'_>) {
        let _ = self.record_as(rec, true);
    }

    fn record_as(&self, rec: &AuditRecord<'_>, deferred: bool) -> Result<ChainHash, AuditError> {
        let Some(inner) = &self.inner else {
            return Ok(ChainHash::ZERO);
        };
        let deferred = deferred && inner.fsync == FsyncMode::Interval;
        BODY.with(|cell| {
            // A record never re-enters the log, but a panic elsewhere could
            // leave the cell borrowed: use a fresh buffer then.
            let mut fresh = Vec::new();
            let mut guard = cell.try_borrow_mut();
            let body = match &mut guard {
                Ok(b) => &mut **b,
                Err(_) => &mut fresh,
            };
            body.clear();
            write_body(rec, &inner.render(), None, body);
            if deferred {
                let mut st = inner.lock();
                inner.defer_line(&mut st, body);
                crate::stats::AUDIT_BYTES.fetch_add(body.len() as u64, Ordering::Relaxed);
                return Ok(st.head);
            }
            let result = inner.append(body);
            if result.is_ok() {
                crate::stats::AUDIT_BYTES.fetch_add(body.len() as u64, Ordering::Relaxed);
                let why = match rec.event {
                    AuditEvent::BrokerStart => Some("start"),
                    AuditEvent::BrokerStop => Some("stop"),
                    _ => None,
                };
                let mut st = inner.lock();
                if let Some(why) = why {
                    inner.anchor_locked(&mut st, why);
                } else if st.since_anchor >= inner.anchor_records {
                    inner.anchor_locked(&mut st, "records");
                }
            }
            if body.capacity() > KEEP_BUFFER_BYTES {
                *body = Vec::new();
            }
            result
        })
    }

    /// Whether the next record checks the path: the watch has seen the
    /// file's name change (or there is no working watch). Tests wait for
    /// it after renaming the file under the log.
    #[cfg(test)]
    pub(crate) fn watch_noticed(&self) -> bool {
        let Some(inner) = &self.inner else {
            return false;
        };
        let st = inner.lock();
        st.watch
            .as_ref()
            .is_none_or(|w| w.blind.load(Ordering::Acquire) || w.changed.load(Ordering::Acquire))
    }

    /// Anchors the head in the journal (see the audit's anchors in
    /// `docs/audit.md`): always with `why = "reload"`, else (`"interval"`)
    /// only when records were written since the last anchor and
    /// `anchor_interval_s` has passed.
    pub fn anchor(&self, why: &'static str) {
        let Some(inner) = &self.inner else { return };
        let mut st = inner.lock();
        let due = why != "interval"
            || (st.since_anchor > 0 && st.last_anchor.elapsed() >= inner.anchor_interval);
        if due {
            inner.anchor_locked(&mut st, why);
        }
    }

    /// Reopens the path (for `SIGHUP` after logrotate renamed the file).
    /// When the path names a new file, the chain continues there: its first
    /// record is a `rotated` record whose `prev` is the last hash of the
    /// old file. When it names the same file, nothing happens.
    pub fn reopen(&self) -> Result<(), AuditError> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        let mut st = inner.lock();
        let result = inner.check_path(&mut st, true).and_then(|()| {
            if st.pending.is_some() {
                inner.write_pending(&mut st)
            } else {
                Ok(())
            }
        });
        match result {
            Ok(()) => {
                inner.recovered(&mut st);
                Ok(())
            }
            Err(e) => Err(inner.failed(&mut st, e)),
        }
    }

    /// Flushes written records to disk now (at shutdown, after
    /// `broker_stop`).
    pub fn flush(&self) -> Result<(), AuditError> {
        match &self.inner {
            Some(inner) => {
                let seq = {
                    let mut st = inner.lock();
                    inner.write_deferred(&mut st);
                    st.seq
                };
                inner.sync_through(seq)
            }
            None => Ok(()),
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // State changes only after a write succeeded, so a panic while the
        // lock was held leaves nothing half-updated.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn render(&self) -> ParamsRender<'_> {
        ParamsRender {
            mode: self.params,
            key: self.key.as_ref(),
        }
    }

    fn append(&self, body: &[u8]) -> Result<ChainHash, AuditError> {
        let mut st = self.lock();
        let seq = match self.append_locked(&mut st, body) {
            Ok(seq) => seq,
            Err(e) => return Err(self.failed(&mut st, e)),
        };
        let hash = st.head;
        self.recovered(&mut st);
        drop(st);
        if self.fsync == FsyncMode::Always {
            if let Err(e) = off_the_workers(|| self.sync_through(seq)) {
                let mut st = self.lock();
                return Err(self.failed(&mut st, e));
            }
        }
        Ok(hash)
    }

    fn append_locked(&self, st: &mut State, body: &[u8]) -> Result<u64, AuditError> {
        // The path first: when it names another file now (the outage was
        // repaired), the chain moves there. A failed flush of the file left
        // behind must not keep every record refused.
        if st.file.is_none() {
            self.first_open(st)?;
        } else if self.path_check_due(st) {
            self.check_path(st, false)?;
        }
        if self.sync_failed.load(Ordering::Acquire) {
            // A background flush failed: flush ourselves before anything
            // else counts as recorded.
            if let Some(file) = &st.file {
                file.sync_data().map_err(|source| AuditError::Sync {
                    path: self.path.clone(),
                    source,
                })?;
            }
            self.sync_failed.store(false, Ordering::Release);
            info!(path = %self.path.display(), "audit file flushes again");
        }
        if let Some(max) = self.max_bytes {
            // The line is the body plus time and prev (~110 bytes).
            if st.len > 0 && st.len + body.len() as u64 + 128 > max {
                self.rotate_by_size(st);
            }
        }
        if st.pending.is_some() {
            self.write_pending(st)?;
        }
        self.write_line(st, body)
    }

    /// Opens the path for the first time and picks up the chain from its
    /// last line.
    fn first_open(&self, st: &mut State) -> Result<(), AuditError> {
        let (file, meta) = open_append(&self.path)?;
        st.lines = count_lines(&file, &meta);
        let mut head = ChainHash::ZERO;
        let mut len = meta.len();
        if meta.is_file() && len > 0 {
            let tail = read_tail(&file, len).map_err(|source| AuditError::Open {
                path: self.path.clone(),
                source,
            })?;
            head = tail.hash;
            if tail.torn {
                // The broker stopped in the middle of a write (or the file
                // was cut). End that line so records start on their own;
                // `audit verify` reports it as incomplete, and the chain
                // continues from its bytes.
                error!(path = %self.path.display(), "the audit file ends with an incomplete record; `audit verify` will report it");
                write_once(&file, b"\n").map_err(|source| AuditError::Write {
                    path: self.path.clone(),
                    source,
                })?;
                len += 1;
                st.lines += 1;
            }
        }
        st.file = Some(Arc::new(file));
        st.id = (meta.dev(), meta.ino());
        st.len = len;
        st.head = head;
        st.head_hex = hex_of(&head);
        info!(path = %self.path.display(), head = %head, "audit file open");
        self.anchor_locked(st, "open");
        Ok(())
    }

    /// Whether the path must be checked before this record: when the
    /// folder's watch saw the file's name come or go (renamed, deleted,
    /// replaced), or when there is no watch. The check is a `stat` of the
    /// path; without the watch every record would pay for it.
    ///
    /// A watch is started here when there is none, before the `stat` that
    /// follows, so that nothing between the two is missed.
    fn path_check_due(&self, st: &mut State) -> bool {
        if let Some(w) = &st.watch {
            if !w.blind.load(Ordering::Acquire) {
                return w.changed.swap(false, Ordering::AcqRel);
            }
            st.watch = None;
        }
        if st.watch_tried.is_none_or(|t| t.elapsed() >= WATCH_RETRY) {
            st.watch_tried = Some(Instant::now());
            st.watch = match PathWatch::start(&self.path) {
                Ok(watch) => Some(watch),
                Err(e) => {
                    warn!(path = %self.path.display(), cause = %e, "cannot watch the audit file's folder (inotify); every record checks the path instead");
                    None
                }
            };
        }
        true
    }

    /// Reopens the path when it no longer names the open file (renamed by
    /// logrotate, deleted, replaced); the new file owes a `rotated` record.
    /// `sighup`: asked for by [`AuditLog::reopen`], else noticed while
    /// recording.
    fn check_path(&self, st: &mut State, sighup: bool) -> Result<(), AuditError> {
        if st.file.is_none() {
            return self.first_open(st);
        }
        let why = match std::fs::metadata(&self.path) {
            Ok(m) if (m.dev(), m.ino()) == st.id => {
                st.len = m.len();
                return Ok(());
            }
            _ if sighup => "reopen",
            Ok(_) => "replaced",
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "vanished",
            Err(source) => {
                return Err(AuditError::Open {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let (file, meta) = open_append(&self.path)?;
        self.write_deferred(st);
        self.switch_to(st, file, &meta);
        // The newest reason wins; a file named by an unwritten size
        // rotation is still the one the chain continues from.
        let previous_file = st.pending.take().and_then(|p| p.previous_file);
        st.pending = Some(Pending { why, previous_file });
        warn!(path = %self.path.display(), why, "audit file reopened; the chain continues in the new file");
        Ok(())
    }

    /// Renames the full file to `FILE.<UTC time>` and starts a new one.
    /// A failure here is not an outage: the file grows past the limit, and
    /// that is logged.
    fn rotate_by_size(&self, st: &mut State) {
        self.write_deferred(st);
        let target = rotated_name(&self.path);
        let result = std::fs::rename(&self.path, &target).and_then(|()| {
            open_append(&self.path).map_err(|e| match e {
                AuditError::Open { source, .. } => source,
                other => std::io::Error::other(other.to_string()),
            })
        });
        match result {
            Ok((file, meta)) => {
                self.switch_to(st, file, &meta);
                st.pending = Some(Pending {
                    why: "size",
                    previous_file: Some(target.to_string_lossy().into_owned()),
                });
                info!(path = %self.path.display(), previous = %target.display(), "audit file rotated by size");
            }
            Err(e) => {
                if st
                    .rotate_warned
                    .is_none_or(|t| t.elapsed() >= OUTAGE_LOG_EVERY)
                {
                    warn!(path = %self.path.display(), cause = %e, "cannot rotate the audit file; it grows past max_bytes");
                    st.rotate_warned = Some(Instant::now());
                }
            }
        }
    }

    fn switch_to(&self, st: &mut State, file: File, meta: &std::fs::Metadata) {
        if let Some(old) = st.file.take() {
            // Records already written to the old file must not depend on a
            // flush of the new one.
            if let Err(e) = old.sync_data() {
                warn!(cause = %e, "cannot flush the previous audit file");
            }
        }
        st.lines = count_lines(&file, meta);
        st.file = Some(Arc::new(file));
        st.id = (meta.dev(), meta.ino());
        st.len = meta.len();
    }

    /// Writes the chain's head to the journal: an anchor outside the file,
    /// so a file cut or rewritten at its end no longer ends where the
    /// journal says it did (`audit verify --journal`). Structured fields:
    /// AUDIT_ANCHOR=1, AUDIT_FILE, AUDIT_HEAD, AUDIT_RECORDS (records in
    /// the file up to the head), AUDIT_WHY.
    fn anchor_locked(&self, st: &mut State, why: &'static str) {
        if st.file.is_none() {
            return;
        }
        // An anchor names a line that is in the file.
        if !self.write_deferred(st) {
            return;
        }
        info!(
            audit_anchor = 1u8,
            audit_file = %self.path.display(),
            audit_head = %st.head,
            audit_records = st.lines,
            audit_why = why,
            "audit chain anchor: record {} of {} has hash {}",
            st.lines,
            self.path.display(),
            st.head
        );
        st.since_anchor = 0;
        st.last_anchor = Instant::now();
    }

    fn write_pending(&self, st: &mut State) -> Result<(), AuditError> {
        let Some(pending) = &st.pending else {
            return Ok(());
        };
        let mut body = Vec::with_capacity(256);
        let info = RotatedInfo {
            why: pending.why,
            previous_file: pending.previous_file.as_deref(),
        };
        write_body(
            &AuditRecord::new(AuditEvent::Rotated),
            &self.render(),
            Some(&info),
            &mut body,
        );
        self.write_line(st, &body)?;
        st.pending = None;
        info!(path = %self.path.display(), head = %st.head, "new audit file started");
        Ok(())
    }

    /// `{"time":…,<body>,"prev":…}\n` in one `write(2)`. The chain advances
    /// only when the whole line was written.
    ///
    /// Lines deferred before it ([`AuditLog::record_deferred`]) go out in
    /// the same `write(2)`, ahead of it. When the write fails they stay
    /// pending; the new line is not chained.
    fn write_line(&self, st: &mut State, body: &[u8]) -> Result<u64, AuditError> {
        let Some(file) = st.file.clone() else {
            return Err(AuditError::Write {
                path: self.path.clone(),
                source: std::io::Error::other("the audit file is not open"),
            });
        };
        let start = st.line.len();
        push_line(&mut st.line, body, &st.head_hex);
        if let Err(source) = write_once(&file, &st.line) {
            self.undo_partial(&file, st.len);
            st.line.truncate(start);
            return Err(AuditError::Write {
                path: self.path.clone(),
                source,
            });
        }
        st.len += st.line.len() as u64;
        chain_from(st, start);
        st.line.clear();
        if st.line.capacity() > KEEP_BUFFER_BYTES {
            st.line = Vec::new();
        }
        Ok(st.seq)
    }

    /// Chains a line without writing it: it waits in `st.line` for the
    /// next write. With no file open it is dropped (the record is best
    /// effort), and the chain stays as it was.
    fn defer_line(&self, st: &mut State, body: &[u8]) {
        if st.file.is_none() {
            return;
        }
        let start = st.line.len();
        push_line(&mut st.line, body, &st.head_hex);
        chain_from(st, start);
    }

    /// Writes the deferred lines, if any. `false` when they could not be
    /// written (they stay pending; the outage is the next record's to
    /// report).
    fn write_deferred(&self, st: &mut State) -> bool {
        if st.line.is_empty() {
            return true;
        }
        let Some(file) = st.file.clone() else {
            return false;
        };
        match write_once(&file, &st.line) {
            Ok(()) => {
                st.len += st.line.len() as u64;
                st.line.clear();
                true
            }
            Err(e) => {
                self.undo_partial(&file, st.len);
                // The flush thread retries every interval: say it once a
                // minute, as an outage is.
                if st
                    .deferred_warned
                    .is_none_or(|t| t.elapsed() >= OUTAGE_LOG_EVERY)
                {
                    warn!(path = %self.path.display(), cause = %e, "cannot write deferred audit records yet");
                    st.deferred_warned = Some(Instant::now());
                }
                false
            }
        }
    }

    /// After a short write, cut the file back to where the line began, so
    /// the next record does not continue a torn one.
    fn undo_partial(&self, file: &File, len_before: u64) {
        let Ok(meta) = file.metadata() else { return };
        if meta.is_file() && meta.len() > len_before {
            if let Err(e) = file.set_len(len_before) {
                error!(path = %self.path.display(), cause = %e, "cannot remove a partly written audit record; `audit verify` will report it");
            }
        }
    }

    /// Flushes until at least record `seq` is on disk.
    fn sync_through(&self, seq: u64) -> Result<(), AuditError> {
        if self.synced.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        let _turn = self.sync_lock.lock().unwrap_or_else(|p| p.into_inner());
        if self.synced.load(Ordering::Acquire) >= seq {
            // Someone else's flush covered our record.
            return Ok(());
        }
        let (file, upto) = {
            let st = self.lock();
            (st.file.clone(), st.seq)
        };
        if let Some(file) = file {
            let started = std::time::Instant::now();
            file.sync_data().map_err(|source| AuditError::Sync {
                path: self.path.clone(),
                source,
            })?;
            crate::stats::AUDIT_FSYNC.observe(started.elapsed());
        }
        self.synced.fetch_max(upto, Ordering::AcqRel);
        Ok(())
    }

    /// The background flush of `fsync = "interval"`.
    fn flush_now(&self) {
        let seq = {
            let mut st = self.lock();
            self.write_deferred(&mut st);
            st.seq
        };
        if self.synced.load(Ordering::Acquire) >= seq {
            return;
        }
        if let Err(e) = self.sync_through(seq) {
            if !self.sync_failed.swap(true, Ordering::AcqRel) {
                error!(path = %self.path.display(), cause = %e, "cannot flush the audit file to disk; the next statement waits for a flush and is refused if it fails");
            }
        }
    }

    /// Notes a failure (logging the start of an outage, then once a minute)
    /// and hands the error back.
    fn failed(&self, st: &mut State, err: AuditError) -> AuditError {
        let now = Instant::now();
        match &mut st.outage {
            None => {
                error!(
                    path = %self.path.display(),
                    cause = %err,
                    "AUDIT UNAVAILABLE: records cannot be written; every statement is refused (audit_unavailable) until they can"
                );
                st.outage = Some(Outage {
                    since: now,
                    refused: 1,
                    last_logged: now,
                });
            }
            Some(o) => {
                o.refused += 1;
                if now.duration_since(o.last_logged) >= OUTAGE_LOG_EVERY {
                    error!(
                        path = %self.path.display(),
                        cause = %err,
                        refused = o.refused,
                        for_s = now.duration_since(o.since).as_secs(),
                        "AUDIT STILL UNAVAILABLE: statements are being refused"
                    );
                    o.last_logged = now;
                }
            }
        }
        err
    }

    fn recovered(&self, st: &mut State) {
        if let Some(o) = st.outage.take() {
            warn!(
                path = %self.path.display(),
                refused = o.refused,
                after_ms = o.since.elapsed().as_millis() as u64,
                "audit file writable again; statements run again"
            );
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(file) = &st.file {
            if !st.line.is_empty() {
                let _ = write_once(file, &st.line);
            }
            let _ = file.sync_data();
        }
    }
}

/// Runs `f`, which waits for the disk, without stalling the other tasks of
/// the runtime's worker thread it is called on: on the multi-threaded
/// runtime the worker hands its other tasks to another thread first
/// (`block_in_place`). Elsewhere (a current-thread runtime, no runtime)
/// it just runs `f`.
fn off_the_workers<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

fn flush_every(weak: Weak<Inner>, every: Duration) {
    loop {
        std::thread::sleep(every);
        match weak.upgrade() {
            Some(inner) => inner.flush_now(),
            None => return,
        }
    }
}

/// Makes the line that starts at `start` in `st.line` (the last one, its
/// newline included) the head of the chain, and counts it.
fn chain_from(st: &mut State, start: usize) {
    let end = st.line.len();
    st.head = ChainHash::of(&st.line[start..end - 1]);
    st.head_hex = hex_of(&st.head);
    st.seq += 1;
    st.lines += 1;
    st.since_anchor += 1;
}

/// Appends `{"time":…,<body>,"prev":…}\n` to `out`.
fn push_line(out: &mut Vec<u8>, body: &[u8], prev_hex: &[u8; 64]) {
    // `body` is a JSON object with at least "event": drop its braces.
    let inner = &body[1..body.len() - 1];
    out.extend_from_slice(b"{\"time\":\"");
    timefmt::write_now(out);
    out.extend_from_slice(b"\",");
    out.extend_from_slice(inner);
    out.extend_from_slice(b",\"prev\":\"");
    out.extend_from_slice(prev_hex);
    out.extend_from_slice(b"\"}\n");
}

/// A watch (inotify) of the audit file's folder: set when an entry of the
/// file's name is created, deleted or renamed (logrotate's rename, a
/// deleted or replaced file), so that records check the path only then.
/// Its thread ends within a second of the last reference going away.
///
/// The kernel queues the event at the rename or unlink itself; the thread
/// sets `changed` as soon as it runs. A record written in between goes to
/// the file the broker has open: after a rename that is the renamed file,
/// and the chain continues in the new one; after a deletion it is the
/// deleted file — as it was between a `stat` and its `write` when every
/// record checked the path.
struct PathWatch {
    /// The file's name in the folder changed since the last check.
    changed: AtomicBool,
    /// The watch stopped (the folder itself went away or was renamed, the
    /// event queue overflowed, a read failed): check every record.
    blind: AtomicBool,
}

impl PathWatch {
    /// A watch of `path`'s folder, or why there is none.
    fn start(path: &Path) -> std::io::Result<Arc<PathWatch>> {
        use nix::sys::inotify::{AddWatchFlags as F, InitFlags, Inotify};
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .ok_or_else(|| std::io::Error::other("the path names no file"))?
            .to_os_string();
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)?;
        inotify.add_watch(
            dir,
            F::IN_CREATE
                | F::IN_DELETE
                | F::IN_MOVED_FROM
                | F::IN_MOVED_TO
                | F::IN_DELETE_SELF
                | F::IN_MOVE_SELF
                | F::IN_ONLYDIR,
        )?;
        let watch = Arc::new(PathWatch {
            changed: AtomicBool::new(false),
            blind: AtomicBool::new(false),
        });
        let weak = Arc::downgrade(&watch);
        std::thread::Builder::new()
            .name("audit-watch".into())
            .spawn(move || watch_folder(&inotify, &name, &weak))?;
        Ok(watch)
    }
}

fn watch_folder(
    inotify: &nix::sys::inotify::Inotify,
    name: &std::ffi::OsStr,
    weak: &Weak<PathWatch>,
) {
    use nix::errno::Errno;
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use nix::sys::inotify::AddWatchFlags as F;
    use std::os::fd::AsFd;
    loop {
        let ready = {
            let mut fds = [PollFd::new(inotify.as_fd(), PollFlags::POLLIN)];
            poll(&mut fds, PollTimeout::from(WATCH_POLL_MS))
        };
        let Some(watch) = weak.upgrade() else { return };
        let events = match ready {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => inotify.read_events(),
            Err(e) => Err(e),
        };
        match events {
            Ok(events) => {
                for e in events {
                    if e.mask.intersects(
                        F::IN_Q_OVERFLOW | F::IN_IGNORED | F::IN_DELETE_SELF | F::IN_MOVE_SELF,
                    ) {
                        watch.blind.store(true, Ordering::Release);
                        return;
                    }
                    if e.name.as_deref() == Some(name) {
                        watch.changed.store(true, Ordering::Release);
                        tracing::debug!(mask = ?e.mask, "{WATCH_SAW}");
                    }
                }
            }
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(_) => {
                watch.blind.store(true, Ordering::Release);
                return;
            }
        }
    }
}

/// Records in an audit file: its line feeds (read once, when the broker
/// opens a file; an unreadable file counts 0 and the anchors say so).
fn count_lines(file: &File, meta: &std::fs::Metadata) -> u64 {
    use std::io::Read;
    // Only a regular file has an end (a test's /dev/full has none).
    if !meta.is_file() {
        return 0;
    }
    let file = match File::open(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(file)
    )) {
        Ok(f) => f,
        Err(_) => return 0,
    };
    let mut remaining = meta.len();
    let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
    let mut buf = [0u8; 1 << 16];
    let mut lines = 0u64;
    while remaining > 0 {
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                lines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
                remaining = remaining.saturating_sub(n as u64);
            }
        }
    }
    lines
}

/// Opens `path` for appending (0600, created with its folder, 0750, when
/// missing).
fn open_append(path: &Path) -> Result<(File, std::fs::Metadata), AuditError> {
    let open_error = |source| AuditError::Open {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o750)
                .create(dir)
                .map_err(open_error)?;
        }
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(open_error)?;
    let meta = file.metadata().map_err(open_error)?;
    Ok((file, meta))
}

/// One `write(2)`; a short write is an error (the caller undoes it).
fn write_once(file: &File, buf: &[u8]) -> std::io::Result<()> {
    match (&*file).write(buf) {
        Ok(n) if n == buf.len() => Ok(()),
        Ok(n) => Err(std::io::Error::new(
            std::io::ErrorKind::WriteZero,
            format!("short write: {n} of {} bytes", buf.len()),
        )),
        Err(e) => Err(e),
    }
}

struct Tail {
    /// Hash of the last line (complete or not), without its newline.
    hash: ChainHash,
    /// The file does not end with a newline.
    torn: bool,
}

/// Finds the last line of a file of `len > 0` bytes.
fn read_tail(file: &File, len: u64) -> std::io::Result<Tail> {
    let mut last = [0u8; 1];
    file.read_exact_at(&mut last, len - 1)?;
    let torn = last[0] != b'\n';
    let end = if torn { len } else { len - 1 };
    let mut start = 0u64;
    let mut pos = end;
    let mut chunk = vec![0u8; 64 * 1024];
    while pos > 0 {
        let from = pos.saturating_sub(chunk.len() as u64);
        let part = &mut chunk[..(pos - from) as usize];
        file.read_exact_at(part, from)?;
        if let Some(i) = part.iter().rposition(|b| *b == b'\n') {
            start = from + i as u64 + 1;
            break;
        }
        if end - from > MAX_TAIL_BYTES {
            return Err(std::io::Error::other(format!(
                "the last line is longer than {MAX_TAIL_BYTES} bytes: not an audit file"
            )));
        }
        pos = from;
    }
    let mut line = vec![0u8; (end - start) as usize];
    file.read_exact_at(&mut line, start)?;
    Ok(Tail {
        hash: ChainHash::of(&line),
        torn,
    })
}

/// `FILE.20261127T210503.123456Z` (names sort in time order), with `-1`,
/// `-2`, … in the unlikely case that exists.
fn rotated_name(path: &Path) -> PathBuf {
    let stamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second].[subsecond digits:6]Z"
        ))
        .unwrap_or_else(|_| "rotated".into());
    let base = format!("{}.{stamp}", path.display());
    let mut candidate = PathBuf::from(&base);
    let mut n = 1;
    while candidate.exists() {
        candidate = PathBuf::from(format!("{base}-{n}"));
        n += 1;
    }
    candidate
}

fn hex_of(hash: &ChainHash) -> [u8; 64] {
    super::hex32(&hash.0)
}
