//! `audit verify --journal` / `--anchors FILE`: the file's end against the
//! anchors the broker wrote to the journal.
//!
//! The chain alone cannot tell a file whose last records were cut off (or
//! rewritten from some line on) from one that simply ends there. The broker
//! writes the head of the chain to the journal at start, stop, rotation,
//! `systemctl reload`, and at most every `anchor_interval_s` seconds or
//! `anchor_records` records (fields AUDIT_ANCHOR=1, AUDIT_FILE, AUDIT_HEAD,
//! AUDIT_RECORDS). A file that does not hold the head of the newest anchor
//! of its series ends before it: `AUDIT_RECORDS` minus the file's records
//! are missing.

use super::ChainHash;
use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

/// One anchor, as read from `journalctl -o json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    /// The audit file the broker was writing.
    pub file: String,
    /// The chain's head then.
    pub head: ChainHash,
    /// Records in that file up to the head.
    pub records: u64,
    /// When (journald's realtime stamp, µs), if known.
    pub time_us: Option<u64>,
}

/// Reads anchors from JSON lines (`journalctl -o json AUDIT_ANCHOR=1`,
/// oldest first); lines that are not anchors are skipped.
pub fn parse_anchors(text: &str) -> Vec<Anchor> {
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|v| {
            let field = |name: &str| v.get(name).and_then(|x| x.as_str()).map(str::to_owned);
            Some(Anchor {
                file: field("AUDIT_FILE")?,
                head: ChainHash::from_hex(&field("AUDIT_HEAD")?)?,
                records: field("AUDIT_RECORDS")?.parse().ok()?,
                time_us: field("__REALTIME_TIMESTAMP").and_then(|t| t.parse().ok()),
            })
        })
        .collect()
}

/// The anchors in this host's journal.
pub fn journal_anchors() -> Result<Vec<Anchor>, String> {
    let out = std::process::Command::new("journalctl")
        .args(["--no-pager", "-o", "json", "AUDIT_ANCHOR=1"])
        .output()
        .map_err(|e| format!("cannot run journalctl: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "journalctl failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(parse_anchors(&String::from_utf8_lossy(&out.stdout)))
}

/// What the anchors say about one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnchorVerdict {
    /// No anchor's head is in the file: the journal knows nothing of it
    /// (another host's file, or anchors that were not kept).
    Unknown,
    /// The file holds the newest anchor of its series.
    Holds {
        /// That anchor.
        anchor: Anchor,
    },
    /// The file ends before the newest anchor of its series.
    EndsEarly {
        /// The newest anchor, which the file does not hold.
        anchor: Anchor,
        /// Records in the file.
        records: u64,
        /// `anchor.records - records` (at least this many are missing).
        missing: u64,
    },
}

/// Checks `path` against `anchors` (oldest first).
///
/// A series is the anchors of one file: same `AUDIT_FILE`, records never
/// going down (a rotation starts the count again, and with it a new
/// series). The series that applies is the newest one with a head the file
/// holds.
pub fn check_file(path: &Path, anchors: &[Anchor]) -> std::io::Result<AnchorVerdict> {
    let reader = std::io::BufReader::with_capacity(256 * 1024, std::fs::File::open(path)?);
    let mut hashes: HashMap<ChainHash, u64> = HashMap::new();
    let mut records = 0u64;
    for line in reader.split(b'\n') {
        let line = line?;
        records += 1;
        hashes.insert(ChainHash::of(&line), records);
    }
    let mut series: Vec<Vec<&Anchor>> = Vec::new();
    let mut current: HashMap<&str, usize> = HashMap::new();
    for anchor in anchors {
        let index = match current.get(anchor.file.as_str()) {
            Some(&i)
                if series[i]
                    .last()
                    .is_some_and(|a| a.records <= anchor.records) =>
            {
                i
            }
            _ => {
                series.push(Vec::new());
                current.insert(&anchor.file, series.len() - 1);
                series.len() - 1
            }
        };
        series[index].push(anchor);
    }
    let Some(mine) = series
        .iter()
        .rev()
        .find(|s| s.iter().any(|a| hashes.contains_key(&a.head)))
    else {
        return Ok(AnchorVerdict::Unknown);
    };
    let Some(newest) = mine.last() else {
        return Ok(AnchorVerdict::Unknown);
    };
    if hashes.contains_key(&newest.head) {
        return Ok(AnchorVerdict::Holds {
            anchor: (*newest).clone(),
        });
    }
    Ok(AnchorVerdict::EndsEarly {
        anchor: (*newest).clone(),
        records,
        missing: newest.records.saturating_sub(records),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anchor_line(file: &str, head: &ChainHash, records: u64) -> String {
        serde_json::json!({
            "AUDIT_ANCHOR": "1",
            "AUDIT_FILE": file,
            "AUDIT_HEAD": head.to_hex(),
            "AUDIT_RECORDS": records.to_string(),
        })
        .to_string()
    }

    #[test]
    fn a_file_cut_before_the_last_anchor_says_how_many_records_are_missing() {
        let dir = std::env::temp_dir().join(format!("iam-pgbroker-anchors-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let lines: Vec<String> = (0..30).map(|i| format!("{{\"n\":{i}}}")).collect();
        let hash = |i: usize| ChainHash::of(lines[i].as_bytes());
        let journal = [
            anchor_line("/var/log/a.jsonl", &hash(4), 5),
            anchor_line("/other/host.jsonl", &ChainHash::of(b"x"), 3),
            anchor_line("/var/log/a.jsonl", &hash(19), 20),
            anchor_line("/var/log/a.jsonl", &hash(29), 30),
        ]
        .join("\n");
        let anchors = parse_anchors(&journal);
        assert_eq!(anchors.len(), 4);
        let whole = dir.join("whole.jsonl");
        std::fs::write(&whole, lines.join("\n") + "\n").unwrap();
        assert!(matches!(
            check_file(&whole, &anchors).unwrap(),
            AnchorVerdict::Holds { anchor } if anchor.records == 30
        ));
        let cut = dir.join("cut.jsonl");
        std::fs::write(&cut, lines[..20].join("\n") + "\n").unwrap();
        assert_eq!(
            check_file(&cut, &anchors).unwrap(),
            AnchorVerdict::EndsEarly {
                anchor: anchors[3].clone(),
                records: 20,
                missing: 10
            }
        );
        let stranger = dir.join("stranger.jsonl");
        std::fs::write(&stranger, "{}\n").unwrap();
        assert_eq!(
            check_file(&stranger, &anchors).unwrap(),
            AnchorVerdict::Unknown
        );
    }
}
