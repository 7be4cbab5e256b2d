//! The `audit verify`, `audit show` and `audit-hash` commands, with their
//! output; `main.rs` only parses the arguments.
//!
//! Exit codes: 0 done (for `verify`: the chain is intact), 1 the chain is
//! broken, 2 the command could not do its work (a file cannot be read, bad
//! arguments).

use super::show::{show, ShowError, ShowFilter, ValueMatch};
use super::verify::verify_files;
use super::{timefmt, AuditConfig, AuditKey};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Exit code: the chain is broken.
pub const EXIT_BROKEN: u8 = 1;
/// Exit code: the command could not do its work.
pub const EXIT_ERROR: u8 = 2;

/// `audit verify FILE...`: checks the chain across the files, oldest
/// first, and prints the problems or a summary.
/// Where `audit verify` finds the anchors to check the file's end against.
#[derive(Debug, Clone)]
pub enum AnchorSource {
    /// This host's journal (`journalctl -o json AUDIT_ANCHOR=1`).
    Journal,
    /// A file of such JSON lines (exported from the journal, or shipped
    /// off the host).
    File(PathBuf),
}

/// `audit verify FILE... [--journal | --anchors FILE]`.
pub fn verify_command(
    files: &[PathBuf],
    anchors: Option<&AnchorSource>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let chain = verify_chain(files, out, err);
    let (Some(source), Some(last)) = (anchors, files.last()) else {
        return chain;
    };
    let anchors = match source {
        AnchorSource::Journal => super::anchors::journal_anchors(),
        AnchorSource::File(path) => std::fs::read_to_string(path)
            .map(|t| super::anchors::parse_anchors(&t))
            .map_err(|e| format!("cannot read {}: {e}", path.display())),
    };
    let anchors = match anchors {
        Ok(a) => a,
        Err(e) => {
            let _ = writeln!(err, "iam-pgbroker audit verify: {e}");
            return EXIT_ERROR;
        }
    };
    use super::anchors::AnchorVerdict;
    match super::anchors::check_file(last, &anchors) {
        Ok(AnchorVerdict::Holds { anchor }) => {
            let _ = writeln!(
                out,
                "anchors: {} holds the newest anchor of its file (record {}, hash {})",
                last.display(),
                anchor.records,
                anchor.head
            );
            chain
        }
        Ok(AnchorVerdict::EndsEarly {
            anchor,
            records,
            missing,
        }) => {
            let _ = writeln!(
                out,
                "anchors: {} ends before the last anchor: the journal says record {} of {} has hash {}, the file has {records} records: {missing} record{} missing (cut off, or rewritten from there on)",
                last.display(),
                anchor.records,
                anchor.file,
                anchor.head,
                if missing == 1 { "" } else { "s" }
            );
            EXIT_BROKEN
        }
        Ok(AnchorVerdict::Unknown) => {
            let _ = writeln!(
                out,
                "anchors: none of the {} anchors is in {}: nothing to compare its end with",
                anchors.len(),
                last.display()
            );
            chain
        }
        Err(e) => {
            let _ = writeln!(err, "iam-pgbroker audit verify: {}: {e}", last.display());
            EXIT_ERROR
        }
    }
}

fn verify_chain(files: &[PathBuf], out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let report = match verify_files(files) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(err, "iam-pgbroker audit verify: {e}");
            return EXIT_ERROR;
        }
    };
    for p in &report.problems {
        let _ = writeln!(out, "{p}");
    }
    if report.more_problems > 0 {
        let _ = writeln!(out, "… and {} more problems", report.more_problems);
    }
    let start = match report.first_prev {
        Some(p) if p.is_zero() => "the start of the chain".to_owned(),
        Some(p) => format!("after record {p} (an earlier file: verify it together with this one)"),
        None => "no records".to_owned(),
    };
    let files = if report.files.len() == 1 {
        String::new()
    } else {
        format!(" in {} files", report.files.len())
    };
    let problems = report.problems.len() as u64 + report.more_problems;
    let _ = if problems == 0 {
        writeln!(out, "{} records{files}, chain intact", report.records)
    } else {
        writeln!(
            out,
            "{} records{files}, chain BROKEN: {problems} problem{}",
            report.records,
            if problems == 1 { "" } else { "s" }
        )
    };
    let _ = writeln!(out, "starts at: {start}");
    if let Some(last) = report.last_hash {
        let _ = writeln!(out, "last hash: {last}");
    }
    if problems == 0 {
        0
    } else {
        EXIT_BROKEN
    }
}

/// Arguments of `audit show`.
#[derive(Debug, Clone, Default)]
pub struct ShowArgs {
    /// Files to read, oldest first; empty: the configured audit file.
    pub files: Vec<PathBuf>,
    /// Configuration file for the default audit file and the key.
    pub config: Option<PathBuf>,
    /// `--user`.
    pub user: Option<String>,
    /// `--uid`.
    pub uid: Option<u32>,
    /// `--db`.
    pub db: Option<String>,
    /// `--session`.
    pub session: Option<String>,
    /// `--since`, as given.
    pub since: Option<String>,
    /// `--until`, as given.
    pub until: Option<String>,
    /// `--writes`.
    pub writes: bool,
    /// `--denied`.
    pub denied: bool,
    /// `--value`.
    pub value: Option<String>,
    /// `--json`.
    pub json: bool,
}

/// `audit show`: prints the matching records.
pub fn show_command(args: &ShowArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let config = match audit_config(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(err, "iam-pgbroker audit show: {e}");
            return EXIT_ERROR;
        }
    };
    let now = time::OffsetDateTime::now_utc();
    let bound = |text: &Option<String>| -> Result<Option<String>, String> {
        text.as_deref()
            .map(|t| timefmt::parse_bound(t, now).map(timefmt::format_utc))
            .transpose()
    };
    let (since, until) = match (bound(&args.since), bound(&args.until)) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(e), _) | (_, Err(e)) => {
            let _ = writeln!(err, "iam-pgbroker audit show: {e}");
            return EXIT_ERROR;
        }
    };
    let value = args.value.as_ref().map(|text| {
        // Parameters are kept as keyed hashes: look for the value's hash
        // too, when the key can be read (root only).
        let hmac = match AuditKey::load(&config.key_file) {
            Ok(key) => Some(key.hash(text.as_bytes())),
            Err(e) => {
                let _ = writeln!(
                    err,
                    "note: {e}; hashed parameters are not searched, only SQL text and plain values"
                );
                None
            }
        };
        ValueMatch {
            text: text.clone(),
            hmac,
        }
    });
    let filter = ShowFilter {
        user: args.user.clone(),
        uid: args.uid,
        db: args.db.clone(),
        session: args.session.clone(),
        since,
        until,
        writes: args.writes,
        denied: args.denied,
        value,
    };
    let files = if args.files.is_empty() {
        vec![config.file.clone()]
    } else {
        args.files.clone()
    };
    match show(&files, &filter, args.json, out) {
        Ok(0) if !args.json => {
            let _ = writeln!(err, "no records match");
            0
        }
        Ok(_) => 0,
        // The reader went away (`| head`): not an error.
        Err(ShowError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            let _ = writeln!(err, "iam-pgbroker audit show: {e}");
            EXIT_ERROR
        }
    }
}

/// `audit-hash VALUE`: the HMAC of VALUE with the audit key, as parameters
/// are recorded. `-` reads the value from the first line of standard input
/// (so it stays out of the shell history and the process list).
pub fn hash_command(
    value: &str,
    key: Option<&Path>,
    config: Option<&Path>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let key_path = match key {
        Some(k) => k.to_owned(),
        None => match audit_config(config) {
            Ok(c) => c.key_file,
            Err(e) => {
                let _ = writeln!(err, "iam-pgbroker audit-hash: {e}");
                return EXIT_ERROR;
            }
        },
    };
    let key = match AuditKey::load(&key_path) {
        Ok(k) => k,
        Err(e) => {
            let _ = writeln!(err, "iam-pgbroker audit-hash: {e}");
            return EXIT_ERROR;
        }
    };
    let value = if value == "-" {
        let mut line = String::new();
        if let Err(e) = std::io::stdin().read_line(&mut line) {
            let _ = writeln!(
                err,
                "iam-pgbroker audit-hash: cannot read standard input: {e}"
            );
            return EXIT_ERROR;
        }
        line.strip_suffix('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .unwrap_or(&line)
            .to_owned()
    } else {
        value.to_owned()
    };
    let _ = writeln!(out, "{}", key.hash(value.as_bytes()));
    0
}

/// The `[audit]` settings: from `config` when given, else from the default
/// configuration file when it exists, else the defaults.
fn audit_config(config: Option<&Path>) -> Result<AuditConfig, String> {
    match config {
        Some(path) => AuditConfig::from_config_file(path),
        None => {
            let default = Path::new(crate::config::DEFAULT_CONFIG_PATH);
            if default.exists() {
                AuditConfig::from_config_file(default)
            } else {
                Ok(AuditConfig::default())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditEvent, AuditLog, AuditRecord};
    use serde_json::json;

    #[test]
    fn verify_show_and_hash_end_to_end() {
        let dir =
            std::env::temp_dir().join(format!("iam-pgbroker-auditcli-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("audit.jsonl");
        let key = dir.join("audit.key");
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "[audit]\nfile = \"{}\"\nkey_file = \"{}\"\n",
                file.display(),
                key.display()
            ),
        )
        .unwrap();
        let cfg = AuditConfig::from_config_file(&config).unwrap();
        let log = AuditLog::open(&cfg).unwrap();
        let params = [json!("jan.novák")];
        log.record(&AuditRecord {
            session: Some("s1"),
            request: Some(1),
            sql: Some("DELETE FROM idm_identity WHERE username = %s"),
            kind: Some("DELETE"),
            writes: Some(true),
            params: Some(&params),
            ..AuditRecord::new(AuditEvent::Statement)
        })
        .unwrap();
        drop(log);

        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(
            verify_command(std::slice::from_ref(&file), None, &mut out, &mut err),
            0
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("1 records, chain intact"), "{text}");
        assert!(text.contains("starts at: the start of the chain"), "{text}");

        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(
            hash_command("jan.novák", None, Some(&config), &mut out, &mut err),
            0
        );
        let hash = String::from_utf8(out).unwrap().trim().to_owned();
        assert!(std::fs::read_to_string(&file).unwrap().contains(&hash));

        let args = ShowArgs {
            config: Some(config.clone()),
            value: Some("jan.novák".into()),
            writes: true,
            since: Some("1 hour ago".into()),
            ..ShowArgs::default()
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(show_command(&args, &mut out, &mut err), 0);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("DELETE FROM idm_identity"), "{text}");
        assert!(text.contains("no result"), "{text}");

        let bad = ShowArgs {
            since: Some("someday".into()),
            ..args
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(show_command(&bad, &mut out, &mut err), EXIT_ERROR);

        std::fs::write(&file, "{\"prev\":\"00\"}\n").unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(
            verify_command(&[file], None, &mut out, &mut err),
            EXIT_BROKEN
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
