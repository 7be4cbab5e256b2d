//! `[approval]` in the configuration file.

use serde::{Deserialize, Deserializer};
use std::path::PathBuf;
use std::time::Duration;

/// Default folder of stored change requests.
pub const DEFAULT_REQUESTS_DIR: &str = "/var/lib/iam-pgbroker/requests";

/// Longest expiry accepted: a pending change should not outlive the
/// situation it was written for.
const MAX_EXPIRY: Duration = Duration::from_secs(90 * 24 * 3600);

/// `[approval]`: where change requests are kept and how long they wait.
///
/// Read on every request, so a reload applies it; requests already stored
/// keep the expiry they were given.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalConfig {
    /// One file per request, written atomically; created mode 0700.
    pub dir: PathBuf,
    /// How long a request waits for approval, in hours (fractions allowed:
    /// `0.5` is 30 minutes).
    #[serde(rename = "expiry_hours", deserialize_with = "hours")]
    pub expiry: Duration,
    /// Most statements one request may have.
    pub max_statements: usize,
    /// `lock_timeout` of the dry run and the execution, ms (0: none): a
    /// request never queues long behind the application's locks, nor
    /// holds a queue up behind it.
    pub lock_timeout_ms: u64,
    /// Most pending requests one OS user may have at once.
    pub max_pending_per_user: usize,
    /// Most bytes of statements, parameters and reason one OS user's
    /// pending requests may hold together.
    pub max_pending_bytes_per_user: usize,
    /// How long an ended request (executed, rejected, cancelled, expired,
    /// drifted, failed) is kept before it is removed, in days; the audit
    /// keeps its story. Fractions allowed; 0 keeps them forever.
    #[serde(rename = "retention_days", deserialize_with = "days")]
    pub retention: Duration,
    /// Changed rows per statement kept for the approver to read (the
    /// content check covers every row, beyond this too).
    pub diff_rows: usize,
}

impl Default for ApprovalConfig {
    fn default() -> Self {
        ApprovalConfig {
            dir: PathBuf::from(DEFAULT_REQUESTS_DIR),
            expiry: Duration::from_secs(24 * 3600),
            max_statements: 100,
            lock_timeout_ms: 5_000,
            max_pending_per_user: 20,
            max_pending_bytes_per_user: 1024 * 1024,
            retention: Duration::from_secs(30 * 24 * 3600),
            diff_rows: 200,
        }
    }
}

impl ApprovalConfig {
    /// Checks what the types cannot say; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.dir.as_os_str().is_empty() || !self.dir.is_absolute() {
            return Err("approval.dir must be an absolute path".into());
        }
        if self.expiry.is_zero() || self.expiry > MAX_EXPIRY {
            return Err(
                "approval.expiry_hours must be more than 0 and at most 2160 (90 days)".into(),
            );
        }
        if !(1..=10_000).contains(&self.max_statements) {
            return Err("approval.max_statements must be between 1 and 10000".into());
        }
        if self.lock_timeout_ms > 3_600_000 {
            return Err("approval.lock_timeout_ms must be at most 3600000 (an hour)".into());
        }
        if !(1..=10_000).contains(&self.max_pending_per_user) {
            return Err("approval.max_pending_per_user must be between 1 and 10000".into());
        }
        if !(1024..=1024 * 1024 * 1024).contains(&self.max_pending_bytes_per_user) {
            return Err(
                "approval.max_pending_bytes_per_user must be between 1024 and 1073741824".into(),
            );
        }
        if self.retention > Duration::from_secs(36_500 * 24 * 3600) {
            return Err("approval.retention_days must be at most 36500".into());
        }
        if !(1..=100_000).contains(&self.diff_rows) {
            return Err("approval.diff_rows must be between 1 and 100000".into());
        }
        Ok(())
    }
}

/// An integer or a fraction of days.
fn days<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    Ok(hours(d)? * 24)
}

/// An integer or a fraction of hours.
fn hours<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Number {
        Int(u64),
        Float(f64),
    }
    let hours = match Number::deserialize(d)? {
        Number::Int(n) => n as f64,
        Number::Float(f) => f,
    };
    if !hours.is_finite() || !(0.0..=1e6).contains(&hours) {
        return Err(serde::de::Error::custom(
            "expiry_hours and retention_days must be non-negative numbers",
        ));
    }
    Ok(Duration::from_secs_f64(hours * 3600.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_integers_and_fractions() {
        let c: ApprovalConfig = toml::from_str("").unwrap();
        assert_eq!(c, ApprovalConfig::default());
        assert!(c.validate().is_ok());
        let c: ApprovalConfig = toml::from_str("expiry_hours = 2").unwrap();
        assert_eq!(c.expiry, Duration::from_secs(7200));
        let c: ApprovalConfig = toml::from_str("dir = \"/tmp/r\"\nexpiry_hours = 0.001").unwrap();
        assert_eq!(c.expiry, Duration::from_millis(3600));
        assert!(c.validate().is_ok());
        assert!(toml::from_str::<ApprovalConfig>("expiry_hours = -1").is_err());
        assert!(toml::from_str::<ApprovalConfig>("expiry_hour = 1").is_err());
        let zero: ApprovalConfig = toml::from_str("expiry_hours = 0").unwrap();
        assert!(zero.validate().unwrap_err().contains("expiry_hours"));
        let relative: ApprovalConfig = toml::from_str("dir = \"requests\"").unwrap();
        assert!(relative.validate().unwrap_err().contains("absolute"));
    }
}
