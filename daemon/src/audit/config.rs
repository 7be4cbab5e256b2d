//! `[audit]` in the configuration file.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Default audit file.
pub const DEFAULT_AUDIT_FILE: &str = "/var/log/iam-pgbroker/audit.jsonl";
/// Default HMAC key file.
pub const DEFAULT_KEY_FILE: &str = "/var/lib/iam-pgbroker/audit.key";

/// `[audit]`: where records go, how parameters are kept, how durable a
/// record is before the statement runs.
///
/// Read once at start: a `SIGHUP` reopens the same file but does not apply
/// changes to this section (restart the broker for that).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// `false` turns the audit off: statements run unrecorded. Only for
    /// measuring what the audit costs; production keeps it on.
    pub enabled: bool,
    /// The audit file (JSON lines, appended).
    pub file: PathBuf,
    /// The HMAC key for parameter values: 32 random bytes as hex, created
    /// (mode 0600) on first start when missing. Needed only with
    /// `params = "hmac"`.
    pub key_file: PathBuf,
    /// How statement parameters are recorded.
    pub params: ParamsMode,
    /// When a record is flushed to disk.
    pub fsync: FsyncMode,
    /// With `fsync = "interval"`: how often written records are flushed.
    pub fsync_interval_ms: u64,
    /// Rotate when the file would grow past this many bytes: the file is
    /// renamed to `FILE.<UTC time>` and a new one started. `None`: no size
    /// limit (rotate with logrotate and `SIGHUP`).
    pub max_bytes: Option<u64>,
    /// Write the chain's head to the journal (an anchor, see
    /// `docs/audit.md`) at least this often while records are written…
    pub anchor_interval_s: u64,
    /// …and after at most this many records. Also at start, stop,
    /// rotation and `systemctl reload`.
    pub anchor_records: u64,
}

/// How statement parameters are recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamsMode {
    /// `{"hmac": "<hex>"}`: HMAC-SHA256 of the value's text form with the
    /// broker's key. Searchable (`audit-hash`), not readable.
    Hmac,
    /// The value itself, as the client sent it (JSON).
    Plain,
    /// Not recorded (only their number).
    Omit,
}

/// When a record reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncMode {
    /// `fdatasync` after every record, before the statement runs: a record
    /// survives a power loss. Costs a disk flush per statement (concurrent
    /// sessions share flushes).
    Always,
    /// Written to the kernel before the statement runs (survives a broker
    /// crash), flushed to disk every `fsync_interval_ms` (a power loss can
    /// lose up to that much).
    Interval,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            enabled: true,
            file: PathBuf::from(DEFAULT_AUDIT_FILE),
            key_file: PathBuf::from(DEFAULT_KEY_FILE),
            params: ParamsMode::Hmac,
            fsync: FsyncMode::Interval,
            fsync_interval_ms: 1000,
            max_bytes: None,
            anchor_interval_s: 60,
            anchor_records: 1000,
        }
    }
}

impl AuditConfig {
    /// Checks what the types cannot say; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.file.as_os_str().is_empty() {
            return Err("audit.file must not be empty".into());
        }
        if self.params == ParamsMode::Hmac && self.key_file.as_os_str().is_empty() {
            return Err("audit.key_file must not be empty with params = \"hmac\"".into());
        }
        if self.fsync == FsyncMode::Interval && !(1..=60_000).contains(&self.fsync_interval_ms) {
            return Err("audit.fsync_interval_ms must be between 1 and 60000".into());
        }
        if !(1..=86_400).contains(&self.anchor_interval_s) {
            return Err("audit.anchor_interval_s must be between 1 and 86400".into());
        }
        if self.anchor_records == 0 {
            return Err("audit.anchor_records must be positive".into());
        }
        if let Some(max) = self.max_bytes {
            if max < 64 * 1024 {
                return Err("audit.max_bytes must be at least 65536".into());
            }
        }
        Ok(())
    }

    /// The `[audit]` table of a configuration file, ignoring everything
    /// else in it: what `audit show` and `audit-hash` need, without
    /// loading (and validating) the policy.
    pub fn from_config_file(path: &Path) -> Result<AuditConfig, String> {
        #[derive(Deserialize)]
        struct OnlyAudit {
            #[serde(default)]
            audit: AuditConfig,
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        let parsed: OnlyAudit =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        parsed
            .audit
            .validate()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(parsed.audit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c: AuditConfig = toml::from_str("").unwrap();
        assert_eq!(c, AuditConfig::default());
        assert!(c.validate().is_ok());
        let c: AuditConfig = toml::from_str(
            "file = \"/tmp/a.jsonl\"\nparams = \"plain\"\nfsync = \"always\"\nmax_bytes = 1048576\n",
        )
        .unwrap();
        assert_eq!(c.params, ParamsMode::Plain);
        assert_eq!(c.fsync, FsyncMode::Always);
        assert_eq!(c.max_bytes, Some(1 << 20));
        assert!(toml::from_str::<AuditConfig>("params = \"md5\"").is_err());
        assert!(toml::from_str::<AuditConfig>("fsycn = \"always\"").is_err());
        let tiny = AuditConfig {
            max_bytes: Some(10),
            ..AuditConfig::default()
        };
        assert!(tiny.validate().unwrap_err().contains("max_bytes"));
    }

    #[test]
    fn reads_only_the_audit_table() {
        let dir =
            std::env::temp_dir().join(format!("iam-pgbroker-auditcfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.toml");
        std::fs::write(
            &path,
            "[server]\nwhatever = 1\n[audit]\nfile = \"/x/audit.jsonl\"\n",
        )
        .unwrap();
        let c = AuditConfig::from_config_file(&path).unwrap();
        assert_eq!(c.file, Path::new("/x/audit.jsonl"));
        std::fs::write(&path, "[audit]\nfiel = \"/x\"\n").unwrap();
        let err = AuditConfig::from_config_file(&path).unwrap_err();
        assert!(err.contains("fiel") && err.contains("config.toml"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
