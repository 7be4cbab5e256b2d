//! `audit show`: records filtered and printed for people (a table) or
//! programs (the matching JSON lines, unchanged).
//!
//! A `statement`, `commit` or `rollback` record and the `result` record
//! that follows it (same `session` and `request`) are one row of the
//! table, and are filtered together: `--denied` finds a statement whose
//! result was a permission error. With `--json` the matching lines are
//! printed as they are, with the `result` of every printed statement.

use super::AuditError;
use serde_json::Value;
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{BufRead, Write};
use std::path::PathBuf;

/// Statements waiting for their result longer than this many records are
/// shown without it (the broker stopped before writing it).
const MAX_PENDING: usize = 10_000;
/// Longest `WHAT` column, in characters.
const WHAT_CHARS: usize = 200;

/// Which records to show. Every set condition must hold.
#[derive(Debug, Clone, Default)]
pub struct ShowFilter {
    /// `peer.user`.
    pub user: Option<String>,
    /// `peer.uid`.
    pub uid: Option<u32>,
    /// `target.db` or `target.dbname`.
    pub db: Option<String>,
    /// `session`.
    pub session: Option<String>,
    /// Records at or after this time stamp (a record time stamp, see
    /// [`super::timefmt::format_utc`]; compared as text).
    pub since: Option<String>,
    /// Records before this time stamp.
    pub until: Option<String>,
    /// Only what writes: statements the guard marked as writing, and
    /// commits of write sessions.
    pub writes: bool,
    /// Only refusals: refused sessions and statements, and outcomes
    /// `denied`, `forbidden_statement`, `read_only` or SQLSTATE 42501.
    pub denied: bool,
    /// Only records that mention a value (in the SQL text, the reason, or
    /// a parameter, plain or hashed).
    pub value: Option<ValueMatch>,
}

/// A value to look for.
#[derive(Debug, Clone)]
pub struct ValueMatch {
    /// The value as text.
    pub text: String,
    /// Its HMAC with the audit key, to match hashed parameters.
    pub hmac: Option<String>,
}

/// Why `show` stopped.
#[derive(Debug, thiserror::Error)]
pub enum ShowError {
    /// An input file could not be read.
    #[error(transparent)]
    Read(#[from] AuditError),
    /// The output could not be written (a closed pipe).
    #[error("cannot write the output: {0}")]
    Output(#[source] std::io::Error),
}

/// Prints the records of `paths` (in order) that match `filter` to `out`;
/// returns how many rows (or lines) were printed.
pub fn show(
    paths: &[PathBuf],
    filter: &ShowFilter,
    json: bool,
    out: &mut dyn Write,
) -> Result<u64, ShowError> {
    let mut printer: Box<dyn Printer + '_> = if json {
        Box::new(JsonPrinter {
            filter,
            out,
            printed_keys: HashSet::new(),
            count: 0,
        })
    } else {
        Box::new(TablePrinter::new(filter, out))
    };
    let mut line = Vec::new();
    for path in paths {
        let file = std::fs::File::open(path).map_err(|source| AuditError::Read {
            path: path.clone(),
            source,
        })?;
        let mut reader = std::io::BufReader::with_capacity(256 * 1024, file);
        loop {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .map_err(|source| AuditError::Read {
                    path: path.clone(),
                    source,
                })?;
            if n == 0 {
                break;
            }
            let content = line.strip_suffix(b"\n").unwrap_or(&line);
            // Lines that are not records (a torn line) are `verify`'s
            // business; `show` skips them.
            let Ok(value) = serde_json::from_slice::<Value>(content) else {
                continue;
            };
            if !value.is_object() {
                continue;
            }
            printer.line(content, value).map_err(ShowError::Output)?;
        }
    }
    printer.finish().map_err(ShowError::Output)
}

trait Printer {
    fn line(&mut self, raw: &[u8], value: Value) -> std::io::Result<()>;
    fn finish(&mut self) -> std::io::Result<u64>;
}

/// `(session, request)` of a record that has or is a `result`.
fn result_key(v: &Value) -> Option<(String, u64)> {
    Some((v["session"].as_str()?.to_owned(), v["request"].as_u64()?))
}

fn awaits_result(v: &Value) -> bool {
    matches!(
        v["event"].as_str(),
        Some("statement" | "commit" | "rollback")
    )
}

struct JsonPrinter<'a> {
    filter: &'a ShowFilter,
    out: &'a mut dyn Write,
    printed_keys: HashSet<(String, u64)>,
    count: u64,
}

impl Printer for JsonPrinter<'_> {
    fn line(&mut self, raw: &[u8], value: Value) -> std::io::Result<()> {
        let key = result_key(&value);
        let print = if value["event"] == "result" {
            key.as_ref().is_some_and(|k| self.printed_keys.remove(k)) || self.filter.matches(&value)
        } else {
            let matches = self.filter.matches(&value);
            if matches && awaits_result(&value) {
                if let Some(k) = key {
                    self.printed_keys.insert(k);
                }
            }
            matches
        };
        if print {
            self.out.write_all(raw)?;
            self.out.write_all(b"\n")?;
            self.count += 1;
        }
        Ok(())
    }

    fn finish(&mut self) -> std::io::Result<u64> {
        self.out.flush()?;
        Ok(self.count)
    }
}

struct TablePrinter<'a> {
    filter: &'a ShowFilter,
    out: &'a mut dyn Write,
    /// Rows in file order; a statement waits here for its result.
    queue: VecDeque<(Value, bool)>,
    /// Absolute index (see `base`) of each waiting statement.
    waiting: HashMap<(String, u64), u64>,
    /// Absolute index of `queue[0]`.
    base: u64,
    header: bool,
    count: u64,
}

impl<'a> TablePrinter<'a> {
    fn new(filter: &'a ShowFilter, out: &'a mut dyn Write) -> Self {
        TablePrinter {
            filter,
            out,
            queue: VecDeque::new(),
            waiting: HashMap::new(),
            base: 0,
            header: false,
            count: 0,
        }
    }

    fn drain(&mut self, all: bool) -> std::io::Result<()> {
        while let Some((_, done)) = self.queue.front() {
            if !done && !all && self.queue.len() <= MAX_PENDING {
                break;
            }
            let Some((value, _)) = self.queue.pop_front() else {
                break;
            };
            if let Some(k) = result_key(&value) {
                if self.waiting.get(&k) == Some(&self.base) {
                    self.waiting.remove(&k);
                }
            }
            self.base += 1;
            if self.filter.matches(&value) {
                if !self.header {
                    writeln!(
                        self.out,
                        "{:<19}  {:<18} {:<22} {:<17} {:<24} WHAT",
                        "TIME (UTC)", "WHO", "DB", "EVENT", "OUTCOME"
                    )?;
                    self.header = true;
                }
                writeln!(self.out, "{}", table_row(&value))?;
                self.count += 1;
            }
        }
        Ok(())
    }
}

impl Printer for TablePrinter<'_> {
    fn line(&mut self, _raw: &[u8], mut value: Value) -> std::io::Result<()> {
        let key = result_key(&value);
        if value["event"] == "result" {
            if let Some(index) = key.as_ref().and_then(|k| self.waiting.remove(k)) {
                if let Some((row, done)) = self.queue.get_mut((index - self.base) as usize) {
                    if let Some(obj) = row.as_object_mut() {
                        obj.insert("outcome".into(), value["outcome"].take());
                    }
                    *done = true;
                }
                return self.drain(false);
            }
            self.queue.push_back((value, true));
        } else if awaits_result(&value) && key.is_some() {
            let index = self.base + self.queue.len() as u64;
            if let Some(k) = key {
                self.waiting.insert(k, index);
            }
            self.queue.push_back((value, false));
        } else {
            self.queue.push_back((value, true));
        }
        self.drain(false)
    }

    fn finish(&mut self) -> std::io::Result<u64> {
        self.drain(true)?;
        self.out.flush()?;
        Ok(self.count)
    }
}

impl ShowFilter {
    /// Whether a record (a statement merged with its result) matches.
    pub fn matches(&self, v: &Value) -> bool {
        let s = |v: &Value| v.as_str().map(str::to_owned);
        if let Some(user) = &self.user {
            if v["peer"]["user"].as_str() != Some(user) {
                return false;
            }
        }
        if let Some(uid) = self.uid {
            if v["peer"]["uid"].as_u64() != Some(u64::from(uid)) {
                return false;
            }
        }
        if let Some(db) = &self.db {
            let t = &v["target"];
            if t["db"].as_str() != Some(db) && t["dbname"].as_str() != Some(db) {
                return false;
            }
        }
        if let Some(session) = &self.session {
            if s(&v["session"]).as_ref() != Some(session) {
                return false;
            }
        }
        let time = v["time"].as_str().unwrap_or("");
        if self
            .since
            .as_ref()
            .is_some_and(|since| time < since.as_str())
        {
            return false;
        }
        if self
            .until
            .as_ref()
            .is_some_and(|until| time >= until.as_str())
        {
            return false;
        }
        if self.writes && !writes(v) {
            return false;
        }
        if self.denied && !denied(v) {
            return false;
        }
        if let Some(m) = &self.value {
            if !mentions(v, m) {
                return false;
            }
        }
        true
    }
}

fn writes(v: &Value) -> bool {
    match v["event"].as_str() {
        Some("statement" | "result") => match v["writes"].as_bool() {
            Some(w) => w,
            None => v["kind"].as_str().is_some_and(kind_writes),
        },
        Some("commit") => v["mode"] == "write",
        _ => false,
    }
}

/// For records without `writes`: the statement kinds that change data or
/// schema.
fn kind_writes(kind: &str) -> bool {
    matches!(kind, "INSERT" | "UPDATE" | "DELETE" | "MERGE" | "TRUNCATE")
        || ["CREATE", "ALTER", "DROP", "COMMENT", "GRANT", "REVOKE"]
            .iter()
            .any(|p| kind.starts_with(p))
}

fn denied(v: &Value) -> bool {
    if matches!(
        v["event"].as_str(),
        Some("session_refused" | "statement_refused" | "request_refused")
    ) {
        return true;
    }
    let o = &v["outcome"];
    matches!(
        o["code"].as_str(),
        Some("denied" | "forbidden_statement" | "read_only")
    ) || o["sqlstate"] == "42501"
}

fn mentions(v: &Value, m: &ValueMatch) -> bool {
    let contains = |field: &Value| field.as_str().is_some_and(|t| t.contains(&m.text));
    if contains(&v["sql"]) || contains(&v["reason"]) {
        return true;
    }
    v["params"].as_array().is_some_and(|params| {
        params.iter().any(|p| match p {
            Value::String(s) => *s == m.text,
            Value::Number(n) => n.to_string() == m.text,
            Value::Bool(b) => b.to_string() == m.text,
            Value::Object(o) => o
                .get("hmac")
                .and_then(Value::as_str)
                .zip(m.hmac.as_deref())
                .is_some_and(|(a, b)| a.eq_ignore_ascii_case(b)),
            _ => false,
        })
    })
}

/// A change request's event: `request ID by REQUESTER, approver APPROVER:
/// STATE "comment"` (`docs/approval.md`).
fn request_what(a: &Value) -> String {
    let mut t = format!("request {}", a["id"].as_str().unwrap_or("?"));
    if let Some(user) = a["requester"]["user"].as_str() {
        t.push_str(&format!(" by {user}"));
    }
    if let Some(user) = a["approver"]["user"].as_str() {
        t.push_str(&format!(", approver {user}"));
    }
    if let Some(action) = a["action"].as_str() {
        t.push_str(&format!(" ({action})"));
    }
    if let Some(state) = a["state"].as_str() {
        t.push_str(&format!(": {state}"));
    }
    if let Some(comment) = a["comment"].as_str() {
        t.push_str(&format!(" {comment:?}"));
    }
    t
}

fn table_row(v: &Value) -> String {
    let time = v["time"]
        .as_str()
        .map(|t| t.get(..19).unwrap_or(t).replacen('T', " ", 1))
        .unwrap_or_default();
    let peer = &v["peer"];
    let who = match (peer["user"].as_str(), peer["uid"].as_u64()) {
        (Some(u), Some(uid)) => format!("{u}({uid})"),
        (None, Some(uid)) => format!("uid {uid}"),
        _ => String::new(),
    };
    let t = &v["target"];
    let db = match (t["db_user"].as_str(), t["db"].as_str()) {
        (Some(u), Some(d)) => format!("{u}@{d}"),
        (None, Some(d)) => d.to_owned(),
        _ => String::new(),
    };
    let event = v["event"].as_str().unwrap_or("?");
    let row = format!(
        "{time:<19}  {:<18} {:<22} {:<17} {:<24} {}",
        cut(&who, 18),
        cut(&db, 22),
        cut(event, 17),
        cut(&outcome_text(v), 24),
        cut(&what(v), WHAT_CHARS)
    );
    // Statements, reasons, process names and user names are the writer's
    // text, read here by someone else: nothing in them reaches the
    // reader's terminal as a control character.
    iam_pgbroker_proto::display::escape_line(row.trim_end()).into_owned()
}

fn outcome_text(v: &Value) -> String {
    let o = &v["outcome"];
    if o.is_null() {
        return if awaits_result(v) {
            "no result".into()
        } else {
            String::new()
        };
    }
    let mut text = if o["ok"] == true {
        match o["rows"].as_u64() {
            Some(1) => "ok, 1 row".to_owned(),
            Some(n) => format!("ok, {n} rows"),
            None => "ok".to_owned(),
        }
    } else {
        let mut t = o["code"].as_str().unwrap_or("error").to_owned();
        if let Some(state) = o["sqlstate"].as_str() {
            t.push(' ');
            t.push_str(state);
        }
        t
    };
    if let Some(us) = o["duration_us"].as_u64() {
        text.push_str(&format!(", {:.1} ms", us as f64 / 1000.0));
    }
    text
}

fn what(v: &Value) -> String {
    let str_of = |f: &str| v[f].as_str().unwrap_or("");
    let mut text = match str_of("event") {
        "statement" | "statement_refused" => {
            let mut t = v["sql"]
                .as_str()
                .or_else(|| v["normalized"].as_str())
                .unwrap_or("")
                .to_owned();
            if let Some(n) = v["param_count"].as_u64().filter(|n| *n > 0) {
                t.push_str(&format!(" [{n} param{}]", if n == 1 { "" } else { "s" }));
            }
            t
        }
        "session_open" | "session_refused" => {
            let mut t = str_of("mode").to_owned();
            if !str_of("rule").is_empty() {
                t.push_str(&format!(" rule {}", str_of("rule")));
            }
            if !str_of("reason").is_empty() {
                t.push_str(&format!(" reason {:?}", str_of("reason")));
            }
            if let Some(p) = v["peer"]["process"].as_str() {
                t.push_str(&format!(" via {p}"));
            }
            if let Some(u) = v["peer"]["unit"].as_str() {
                t.push_str(&format!(" ({u})"));
            }
            t
        }
        "session_close" => {
            let mut t = str_of("why").to_owned();
            if v["rolled_back"] == true {
                t.push_str(", open transaction rolled back");
            }
            t
        }
        "broker_start" | "broker_stop" => format!(
            "iam-pgbroker {} pid {}",
            v["broker"]["version"].as_str().unwrap_or("?"),
            v["broker"]["pid"]
        ),
        e if e.starts_with("request_") => request_what(&v["approval"]),
        "rotated" => match v["previous_file"].as_str() {
            Some(f) => format!("{} (previous file {f})", str_of("why")),
            None => str_of("why").to_owned(),
        },
        _ => String::new(),
    };
    if let Some(m) = v["outcome"]["message"].as_str() {
        if !text.is_empty() {
            text.push_str(" — ");
        }
        text.push_str(m);
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// At most `n` characters, `…` marking a cut.
fn cut(text: &str, n: usize) -> String {
    if text.chars().count() <= n {
        text.to_owned()
    } else {
        let mut t: String = text.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn write_file(name: &str, records: &[Value]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("iam-pgbroker-show-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        let text: String = records.iter().map(|r| format!("{r}\n")).collect();
        std::fs::write(&path, text).unwrap();
        path
    }

    fn records() -> Vec<Value> {
        let alice = json!({"uid": 1001, "user": "alice", "gid": 1001, "groups": [], "pid": 9});
        let bob = json!({"uid": 1002, "user": "bob", "gid": 1002, "groups": [], "pid": 10});
        let t = json!({"db": "czechidm", "dbname": "czechidm", "db_user": "czechidm"});
        vec![
            json!({"time": "2026-11-20T10:00:00.000000Z", "event": "session_open", "session": "s1", "peer": alice, "target": t, "mode": "write", "rule": "admins", "reason": "ticket 42", "outcome": {"ok": true}}),
            json!({"time": "2026-11-20T10:00:01.000000Z", "event": "statement", "session": "s1", "request": 2, "peer": alice, "target": t, "mode": "write", "sql": "UPDATE idm_identity SET disabled = true WHERE username = %s", "kind": "UPDATE", "writes": true, "param_count": 1, "params": [{"hmac": "ab12"}]}),
            json!({"time": "2026-11-20T10:00:01.000100Z", "event": "statement", "session": "s2", "request": 1, "peer": bob, "target": t, "mode": "read", "sql": "SELECT 1", "kind": "SELECT", "writes": false}),
            json!({"time": "2026-11-20T10:00:01.000200Z", "event": "result", "session": "s1", "request": 2, "peer": alice, "target": t, "kind": "UPDATE", "writes": true, "outcome": {"ok": true, "rows": 1, "duration_us": 2100}}),
            json!({"time": "2026-11-20T10:00:01.000300Z", "event": "result", "session": "s2", "request": 1, "peer": bob, "target": t, "kind": "SELECT", "writes": false, "outcome": {"ok": false, "code": "database", "sqlstate": "42501"}}),
            json!({"time": "2026-11-20T10:00:02.000000Z", "event": "commit", "session": "s1", "request": 3, "peer": alice, "target": t, "mode": "write"}),
            json!({"time": "2026-11-20T10:00:02.000100Z", "event": "result", "session": "s1", "request": 3, "peer": alice, "target": t, "mode": "write", "outcome": {"ok": true}}),
            json!({"time": "2026-11-21T09:00:00.000000Z", "event": "statement_refused", "session": "s2", "request": 2, "peer": bob, "target": t, "mode": "read", "sql": "COPY x TO PROGRAM 'sh'", "outcome": {"ok": false, "code": "forbidden_statement", "message": "COPY is not allowed"}}),
        ]
    }

    fn run(filter: &ShowFilter, json: bool) -> String {
        // A file per call: tests run in parallel, and one writing the file
        // while another reads it made them fail now and then.
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = write_file(&format!("{}{n}", if json { "j" } else { "t" }), &records());
        let mut out = Vec::new();
        show(&[path], filter, json, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_writers_text_cannot_drive_the_readers_terminal() {
        let v = json!({
            "time": "2026-12-06T10:00:00.000Z",
            "event": "statement",
            "peer": {"uid": 1001, "user": "mallory\u{1b}]0;x\u{7}", "process": "x\rroot"},
            "target": {"db": "czechidm", "db_user": "postgres"},
            "sql": "SELECT 1 /*\r\u{1b}[2K harmless */\n  FROM t\u{202e}",
        });
        let row = table_row(&v);
        assert!(
            !row.chars().any(iam_pgbroker_proto::display::is_unsafe),
            "{row:?}"
        );
        // Whitespace (CR and line feeds included) is one space in a table
        // row; everything else a terminal acts on is escaped.
        assert!(
            row.contains("/* \\x1b[2K harmless */ FROM t\\u{202e}"),
            "{row}"
        );
        let open = json!({
            "time": "2026-12-06T10:00:00.000Z",
            "event": "session_open",
            "peer": {"uid": 1001, "user": "mallory", "process": "tool\u{1b}[31m"},
            "target": {"db": "czechidm", "db_user": "postgres"},
            "mode": "read",
            "reason": "INC-1\r\u{9b}2J",
        });
        let row = table_row(&open);
        assert!(
            !row.chars().any(iam_pgbroker_proto::display::is_unsafe),
            "{row:?}"
        );
    }

    #[test]
    fn table_merges_results_into_their_statements() {
        let text = run(&ShowFilter::default(), false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1 + 5, "{text}");
        assert!(lines[2].contains("alice(1001)") && lines[2].contains("czechidm@czechidm"));
        assert!(lines[2].contains("ok, 1 row, 2.1 ms"), "{}", lines[2]);
        assert!(lines[2]
            .contains("UPDATE idm_identity SET disabled = true WHERE username = %s [1 param]"));
        assert!(lines[3].contains("database 42501"), "{}", lines[3]);
        assert!(lines[5].contains("COPY is not allowed"));
    }

    #[test]
    fn filters() {
        let writes = ShowFilter {
            writes: true,
            ..ShowFilter::default()
        };
        let text = run(&writes, false);
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.contains("UPDATE") && text.contains("commit"));

        let denied = ShowFilter {
            denied: true,
            ..ShowFilter::default()
        };
        let text = run(&denied, false);
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.contains("SELECT 1") && text.contains("COPY"));

        let bob_later = ShowFilter {
            user: Some("bob".into()),
            since: Some("2026-11-21T00:00:00.000000Z".into()),
            ..ShowFilter::default()
        };
        assert_eq!(run(&bob_later, false).lines().count(), 2);

        let by_value = ShowFilter {
            value: Some(ValueMatch {
                text: "jan.novak".into(),
                hmac: Some("AB12".into()),
            }),
            ..ShowFilter::default()
        };
        // JSON: the statement and its result, unchanged.
        let text = run(&by_value, true);
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["event"], "statement");
        assert_eq!(lines[1]["event"], "result");

        let uid = ShowFilter {
            uid: Some(1001),
            db: Some("czechidm".into()),
            until: Some("2026-11-20T10:00:01.500000Z".into()),
            ..ShowFilter::default()
        };
        assert_eq!(run(&uid, true).lines().count(), 3);
    }
}
