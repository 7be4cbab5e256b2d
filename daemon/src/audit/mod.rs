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
pub use record::{AuditEvent, AuditRecord, CloseWhy, Grant, Outcome, SessionMode, SessionParts};

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
        String::from_utf8(hex32(&self.0).to_vec()).unwrap_or_default()
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

/// 32 bytes as 64 lowercase hex digits, a byte pair at a time (two of
/// these per statement: the chain's head and a parameter's HMAC).
pub(crate) fn hex32(bytes: &[u8; 32]) -> [u8; 64] {
    const PAIRS: [[u8; 2]; 256] = {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut pairs = [[0u8; 2]; 256];
        let mut i = 0;
        while i < 256 {
            pairs[i] = [DIGITS[i >> 4], DIGITS[i & 0x0f]];
            i += 1;
        }
        pairs
    };
    let mut out = [0u8; 64];
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair.copy_from_slice(&PAIRS[usize::from(*b)]);
    }
    out
}

#[cfg(test)]
mod hex_tests {
    #[test]
    fn hex32_is_hex() {
        let mut bytes = [0u8; 32];
        for round in 0..16u8 {
            for (i, b) in bytes.iter_mut().enumerate() {
                *b = (i as u8)
                    .wrapping_mul(37)
                    .wrapping_add(round.wrapping_mul(16));
            }
            assert_eq!(
                super::hex32(&bytes).to_vec(),
                hex::encode(bytes).into_bytes()
            );
        }
    }
}
