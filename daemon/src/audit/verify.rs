//! `audit verify`: checks the hash chain over one or more files, in order.
//!
//! Every record ends with `"prev"`: the SHA-256 of the line before it
//! (without its newline). Verification recomputes each line's hash and
//! compares it with the next line's `prev`, across files. An edited line
//! breaks the link to the line after it; a deleted line breaks the link
//! from the line before it to the line after it; a reordered pair breaks
//! three links; a cut last line has no newline.
//!
//! The chain alone cannot notice the last record being edited or the file
//! being cut at a line boundary: compare the last hash with an anchor kept
//! elsewhere (the broker logs the head hash to the journal at start, stop
//! and rotation), or verify a file together with its successor.

use super::{AuditError, ChainHash};
use serde::Deserialize;
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// At most this many problems are kept in a report.
pub const MAX_PROBLEMS: usize = 50;

/// What verification found.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Records read (lines, broken ones included).
    pub records: u64,
    /// Files read, in order.
    pub files: Vec<PathBuf>,
    /// `prev` of the very first record: zero when the files begin the
    /// chain, else the hash of a record before them.
    pub first_prev: Option<ChainHash>,
    /// Hash of the last line.
    pub last_hash: Option<ChainHash>,
    /// The problems, in file order, at most [`MAX_PROBLEMS`].
    pub problems: Vec<Problem>,
    /// Problems found beyond [`MAX_PROBLEMS`].
    pub more_problems: u64,
}

impl VerifyReport {
    /// No problem found.
    pub fn intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// One place where the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: u64,
    /// What is wrong there, and what may have caused it.
    pub what: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.what)
    }
}

#[derive(Deserialize)]
struct Link<'a> {
    #[serde(borrow)]
    prev: Option<&'a str>,
    #[serde(borrow)]
    event: Option<&'a str>,
}

/// Checks the chain through `paths`, in the order given (oldest first).
/// I/O errors are errors; a broken chain is a report with problems.
pub fn verify_files(paths: &[PathBuf]) -> Result<VerifyReport, AuditError> {
    let mut report = VerifyReport::default();
    // The hash of the previous line and where it was.
    let mut previous: Option<(ChainHash, PathBuf, u64)> = None;
    for path in paths {
        let file = std::fs::File::open(path).map_err(|source| AuditError::Read {
            path: path.clone(),
            source,
        })?;
        verify_one(path, file, &mut previous, &mut report)?;
        report.files.push(path.clone());
    }
    report.last_hash = previous.map(|(h, _, _)| h);
    Ok(report)
}

fn verify_one(
    path: &Path,
    file: std::fs::File,
    previous: &mut Option<(ChainHash, PathBuf, u64)>,
    report: &mut VerifyReport,
) -> Result<(), AuditError> {
    let mut reader = std::io::BufReader::with_capacity(256 * 1024, file);
    let mut line = Vec::new();
    let mut number = 0u64;
    let problem = |report: &mut VerifyReport, line: u64, what: String| {
        if report.problems.len() < MAX_PROBLEMS {
            report.problems.push(Problem {
                file: path.to_owned(),
                line,
                what,
            });
        } else {
            report.more_problems += 1;
        }
    };
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|source| AuditError::Read {
                path: path.to_owned(),
                source,
            })?;
        if n == 0 {
            break;
        }
        number += 1;
        report.records += 1;
        let complete = line.last() == Some(&b'\n');
        let content = if complete {
            &line[..line.len() - 1]
        } else {
            &line[..]
        };
        let hash = ChainHash::of(content);
        if !complete {
            problem(
                report,
                number,
                "incomplete record (no newline at the end of the file): the broker stopped \
                 in the middle of a write, or the file was cut"
                    .into(),
            );
            *previous = Some((hash, path.to_owned(), number));
            continue;
        }
        let link = match serde_json::from_slice::<Link<'_>>(content) {
            Ok(l) => l,
            Err(_) => {
                let what = if serde_json::from_slice::<serde_json::Value>(content).is_ok() {
                    "not an audit record (not a JSON object with \"prev\")"
                } else {
                    "not a complete JSON record: the line was cut, edited by hand, or torn by a crash"
                };
                problem(report, number, what.into());
                *previous = Some((hash, path.to_owned(), number));
                continue;
            }
        };
        let prev = link.prev.and_then(ChainHash::from_hex);
        match (prev, &*previous) {
            (None, _) => problem(
                report,
                number,
                "the record has no valid \"prev\" (64 hex digits): edited, or not an audit record"
                    .into(),
            ),
            (Some(p), None) => report.first_prev = Some(p),
            (Some(p), Some((expected, at_file, at_line))) if p != *expected => {
                let what = if number == 1 {
                    format!(
                        "does not continue {} (which ends at line {at_line} with hash {expected}): \
                         the files are out of order, a file between them is missing, or either was edited{}",
                        at_file.display(),
                        if p.is_zero() { "; this file starts a new chain" } else { "" }
                    )
                } else if p.is_zero() {
                    format!(
                        "starts a new chain (prev is zero) in the middle of the file, after line {at_line}: \
                         records before it were replaced, or a new chain was appended ({})",
                        link.event.unwrap_or("?")
                    )
                } else {
                    format!(
                        "prev does not match the hash of line {at_line}: line {at_line} was edited, \
                         or records between them were deleted or moved"
                    )
                };
                problem(report, number, what);
            }
            (Some(_), Some(_)) => {}
        }
        *previous = Some((hash, path.to_owned(), number));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chain of `n` lines built by hand, independent of the writer.
    fn chain(n: usize) -> Vec<String> {
        let mut prev = ChainHash::ZERO;
        (0..n)
            .map(|i| {
                let line =
                    format!("{{\"event\":\"statement\",\"request\":{i},\"prev\":\"{prev}\"}}");
                prev = ChainHash::of(line.as_bytes());
                line
            })
            .collect()
    }

    fn check(name: &str, lines: &[String], tail: &str) -> VerifyReport {
        let dir = std::env::temp_dir().join(format!("iam-pgbroker-verify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        let mut text = lines.join("\n");
        text.push('\n');
        text.push_str(tail);
        std::fs::write(&path, text).unwrap();
        verify_files(&[path]).unwrap()
    }

    #[test]
    fn intact_chain() {
        let lines = chain(100);
        let r = check("intact", &lines, "");
        assert!(r.intact(), "{:?}", r.problems);
        assert_eq!(r.records, 100);
        assert_eq!(r.first_prev, Some(ChainHash::ZERO));
        assert_eq!(r.last_hash, Some(ChainHash::of(lines[99].as_bytes())));
    }

    #[test]
    fn edited_line_breaks_the_next_link() {
        let mut lines = chain(10);
        lines[4] = lines[4].replace("\"request\":4", "\"request\":44");
        let r = check("edited", &lines, "");
        assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
        assert_eq!(r.problems[0].line, 6);
        assert!(r.problems[0].what.contains("line 5 was edited"));
    }

    #[test]
    fn deleted_line_is_found() {
        let mut lines = chain(10);
        lines.remove(3);
        let r = check("deleted", &lines, "");
        assert_eq!(r.problems.len(), 1);
        assert_eq!(r.problems[0].line, 4);
        assert!(r.problems[0].what.contains("deleted"));
    }

    #[test]
    fn reordered_pair_is_found() {
        let mut lines = chain(10);
        lines.swap(3, 4);
        let r = check("reordered", &lines, "");
        let at: Vec<u64> = r.problems.iter().map(|p| p.line).collect();
        assert_eq!(at, [4, 5, 6]);
    }

    #[test]
    fn truncated_last_line_is_found() {
        let lines = chain(5);
        let mut cut = lines[..4].to_vec();
        let r = check("truncated", &cut, &lines[4][..20]);
        assert_eq!(r.problems.len(), 1);
        assert_eq!(r.problems[0].line, 5);
        assert!(r.problems[0].what.contains("incomplete"));
        // A torn line in the middle (a crash, then more records).
        cut[2] = cut[2][..15].to_string();
        let r = check("torn", &cut, "");
        assert_eq!(r.problems[0].line, 3);
        assert!(r.problems[0].what.contains("not a complete JSON record"));
    }

    #[test]
    fn across_files_in_order_only() {
        let lines = chain(10);
        let dir = std::env::temp_dir().join(format!("iam-pgbroker-verify2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = dir.join("a");
        let b = dir.join("b");
        std::fs::write(&a, lines[..6].join("\n") + "\n").unwrap();
        std::fs::write(&b, lines[6..].join("\n") + "\n").unwrap();
        let r = verify_files(&[a.clone(), b.clone()]).unwrap();
        assert!(r.intact(), "{:?}", r.problems);
        assert_eq!(r.records, 10);
        let r = verify_files(std::slice::from_ref(&b)).unwrap();
        assert!(r.intact());
        assert_eq!(r.first_prev, Some(ChainHash::of(lines[5].as_bytes())));
        let r = verify_files(&[b.clone(), a.clone()]).unwrap();
        assert_eq!(r.problems.len(), 1);
        assert_eq!((r.problems[0].file.clone(), r.problems[0].line), (a, 1));
        assert!(r.problems[0].what.contains("does not continue"));
    }
}
