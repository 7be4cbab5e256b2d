//! The audit: who queried what, written before it runs, in a file where an
//! edited, deleted or reordered record is detectable.
//!
//! - [`AuditLog`] appends one JSON line per event ([`AuditRecord`]) to the
//!   audit file. Every line ends with `"prev"`, the SHA-256 of the line
//!   before it, so the file is a hash chain ([`verify`] checks it). The
//!   chain continues across restarts, `SIGHUP` reopens ([`AuditLog::reopen`])
//!   and size rotations: a new file starts with a `rotated` record whose
//!   `prev` is the last hash of the file before.
//! - Fail closed: [`AuditLog::record`] returns an error when the line could
//!   not be written, and the caller refuses the request with
//!   `audit_unavailable`. The log repairs itself (reopens the path) on the
//!   next record.
//! - Parameters are recorded as HMAC-SHA256 of their text form by default
//!   ([`ParamsMode`]); `iam-pgbroker audit-hash VALUE` prints the hash to
//!   search for ([`AuditKey`]).
//! - [`show`] filters and prints records for people.
//!
//! `docs/audit.md` describes the record format field by field.
//!
//! ```no_run
//! use iam_pgbroker::audit::{AuditConfig, AuditEvent, AuditLog, AuditRecord};
//!
//! let log = AuditLog::open(&AuditConfig::default())?;
//! log.record(&AuditRecord::new(AuditEvent::BrokerStart))?;
//! # Ok::<(), iam_pgbroker::audit::AuditError>(())
//! ```

pub mod anchors;
pub mod cli;
mod config;
mod key;
mod log;
mod peer;
mod record;
pub mod show;
pub mod timefmt;
pub mod verify;

#[cfg(test)]
mod tests;

pub use config::{AuditConfig, FsyncMode, ParamsMode, DEFAULT_AUDIT_FILE, DEFAULT_KEY_FILE};
pub use key::AuditKey;
pub use log::AuditLog;
pub use peer::{AuditPeer, AuditTarget, ProcessInfo};
pub(crate) use record::{mentions_password, statement_fields};
pub use record::{AuditEvent, AuditRecord, CloseWhy, Outcome, SessionMode, SessionParts};

use std::fmt;
use std::path::PathBuf;

/// The SHA-256 of one record's line (without its newline): what the next
/// record carries as `prev`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChainHash(pub [u8; 32]);

impl ChainHash {
    /// All zeros: the `prev` of the first record of a new chain.
    pub const ZERO: ChainHash = ChainHash([0; 32]);

    /// The hash of `line` (without its trailing newline).
    pub fn of(line: &[u8]) -> ChainHash {
        use sha2::Digest;
        ChainHash(sha2::Sha256::digest(line).into())
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Option<ChainHash> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).ok()?;
        Some(ChainHash(out))
    }

    /// 64 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Whether this is [`ChainHash::ZERO`].
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 32]
    }
}

impl fmt::Display for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainHash({})", self.to_hex())
    }
}

/// Why the audit could not do what was asked. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The audit file could not be opened or created.
    #[error("audit file {path}: cannot open: {source}")]
    Open {
        /// The audit file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A record could not be written (disk full, I/O error, …): it does not
    /// count as written, and the request it was for must not run.
    #[error("audit file {path}: cannot write a record: {source}")]
    Write {
        /// The audit file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The record was written but could not be flushed to disk
    /// (`fsync = "always"`, or an earlier background flush failed).
    #[error("audit file {path}: cannot flush to disk: {source}")]
    Sync {
        /// The audit file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be read (the key, or a file given to `verify` or
    /// `show`).
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The HMAC key file exists but is not acceptable.
    #[error("audit key {path}: {message}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong (never the key itself).
        message: String,
    },
    /// The background flush thread could not be started.
    #[error("cannot start the audit flush thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The key file could not be created.
    #[error("audit key {path}: cannot create: {source}")]
    KeyCreate {
        /// The key file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

impl AuditError {
    /// Whether this is a write-side outage (the request must be refused with
    /// `audit_unavailable`), as opposed to a configuration problem.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            AuditError::Open { .. } | AuditError::Write { .. } | AuditError::Sync { .. }
        )
    }
}
