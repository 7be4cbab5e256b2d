//! What the broker learns from a statement's text alone, computed once per
//! distinct text and kept in a broker-wide cache.
//!
//! Every statement goes through PostgreSQL's scanner (`%s` → `$n`), its
//! parser (the guard) and, for the audit record, two more parser passes
//! (normalized text and fingerprint): about 40 µs of CPU for a short
//! lookup, which tools then send thousands of times with other values.
//! None of it depends on anything but the text, the number of parameters,
//! the session's mode and the guard (its table is static; what `[guard]`
//! allows in read sessions is part of the key, by the guard's id) — so the
//! answer for a text seen before is a hash lookup.
//!
//! The cache is bounded in entries and in text length: a text longer than
//! [`MAX_CACHED_TEXT`] is analysed every time and never kept.

use crate::sync::lock;
use iam_pgbroker_sql::{convert_placeholders, Mode, Refusal, SqlGuard, Verdict};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Distinct (text, parameter count, mode) kept; the least recently used
/// goes first.
pub const CAPACITY: usize = 512;

/// Longer texts are not kept (they are rarely repeated, and the cache's
/// memory stays below `CAPACITY` × a few times this).
pub const MAX_CACHED_TEXT: usize = 4096;

/// A statement text as the guard and the audit see it.
#[derive(Debug)]
pub struct Analysis {
    /// The converted text and the guard's answer, or why the placeholders
    /// are wrong (then the guard was not asked).
    pub result: Result<Converted, String>,
    /// Normalized text and fingerprint for the audit, computed the first
    /// time a record needs them (never when the audit is off).
    shape: OnceLock<Shape>,
    /// The record's `sql`…`fingerprint` fields as written, made the first
    /// time a record needs them.
    audit_fields: OnceLock<Box<[u8]>>,
}

/// A statement text whose placeholders were converted.
#[derive(Debug)]
pub struct Converted {
    /// The text PostgreSQL receives (`%s` → `$n`).
    pub sql: Arc<str>,
    /// The guard's answer for the mode the analysis was made for.
    pub verdict: Result<Verdict, Refusal>,
}

/// The audit's view of a statement: its constants replaced by `$n`, and
/// pg_query's fingerprint (`None` when the text does not parse).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shape {
    /// `SELECT * FROM t WHERE a = $1`.
    pub normalized: Option<String>,
    /// 16 hex digits, equal for texts that differ only in constants.
    pub fingerprint: Option<String>,
    /// The text mentions `PASSWORD` (the audit keeps only `normalized`).
    /// Placeholders (`%s`, `$n`) neither make nor break the word, so the
    /// client's text and PostgreSQL's give the same answer.
    pub redacted: bool,
}

impl Shape {
    /// Parses `sql` (the text PostgreSQL receives) twice: once to
    /// normalize, once to fingerprint.
    pub fn of(sql: &str) -> Shape {
        Shape {
            normalized: iam_pgbroker_sql::normalize(sql),
            fingerprint: iam_pgbroker_sql::fingerprint(sql),
            redacted: crate::audit::mentions_password(sql),
        }
    }
}

impl Analysis {
    /// Converts the placeholders and asks the guard, without the cache.
    pub fn compute(sql: &str, nparams: usize, mode: Mode, guard: &SqlGuard) -> Analysis {
        let result = convert_placeholders(sql, nparams)
            .map(|text| Converted {
                verdict: guard.check(&text, mode),
                sql: Arc::from(text.as_ref()),
            })
            .map_err(|e| e.to_string());
        Analysis {
            result,
            shape: OnceLock::new(),
            audit_fields: OnceLock::new(),
        }
    }

    /// The audit record's fields for this text, `original` being the text
    /// the client sent (the text the cache knows this analysis by):
    /// escaped once, not for every record.
    pub fn audit_fields(&self, original: &str) -> &[u8] {
        self.audit_fields
            .get_or_init(|| crate::audit::statement_fields(original, self.shape(original)).into())
    }

    /// The normalized text and fingerprint of what PostgreSQL receives
    /// (the client's text when its placeholders are wrong).
    pub fn shape(&self, original: &str) -> &Shape {
        self.shape.get_or_init(|| match &self.result {
            Ok(converted) => Shape::of(&converted.sql),
            Err(_) => Shape::of(original),
        })
    }
}

/// The analysis of `sql` with `nparams` parameters in a session of `mode`
/// under `guard`, from the broker-wide cache when the same text was seen
/// before.
pub fn analyze(sql: &str, nparams: usize, mode: Mode, guard: &SqlGuard) -> Arc<Analysis> {
    if sql.len() > MAX_CACHED_TEXT {
        return Arc::new(Analysis::compute(sql, nparams, mode, guard));
    }
    let key = Key {
        nparams,
        mode,
        guard: guard.id(),
    };
    let cache = CACHE.get_or_init(|| Mutex::new(Cache::default()));
    if let Some(found) = lock(cache).get(sql, key) {
        return found;
    }
    // Computed outside the lock: a slow parse does not hold up everyone
    // else. Two sessions missing at once both compute; the second insert
    // replaces the first, with the same result.
    let analysis = Arc::new(Analysis::compute(sql, nparams, mode, guard));
    lock(cache).insert(sql, key, analysis.clone());
    analysis
}

/// How many analyses the cache holds now (for `status` and tests).
pub fn cached() -> usize {
    CACHE.get().map_or(0, |c| lock(c).entries)
}

static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();

/// What besides the text an answer depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    nparams: usize,
    mode: Mode,
    /// [`SqlGuard::id`]: what `[guard]` allows in read sessions.
    guard: u64,
}

/// Entries by text (so a lookup borrows the client's `&str`, no
/// allocation), then by [`Key`] — almost always one.
#[derive(Default)]
struct Cache {
    by_text: HashMap<Box<str>, Vec<Entry>>,
    entries: usize,
    clock: u64,
}

struct Entry {
    key: Key,
    analysis: Arc<Analysis>,
    used: u64,
}

impl Cache {
    fn get(&mut self, sql: &str, key: Key) -> Option<Arc<Analysis>> {
        self.clock += 1;
        let now = self.clock;
        let entry = self
            .by_text
            .get_mut(sql)?
            .iter_mut()
            .find(|e| e.key == key)?;
        entry.used = now;
        Some(entry.analysis.clone())
    }

    fn insert(&mut self, sql: &str, key: Key, analysis: Arc<Analysis>) {
        self.clock += 1;
        let used = self.clock;
        if let Some(entries) = self.by_text.get_mut(sql) {
            if let Some(e) = entries.iter_mut().find(|e| e.key == key) {
                e.analysis = analysis;
                e.used = used;
                return;
            }
        }
        if self.entries >= CAPACITY {
            self.evict();
        }
        self.by_text.entry(sql.into()).or_default().push(Entry {
            key,
            analysis,
            used,
        });
        self.entries += 1;
    }

    /// Drops the least recently used eighth, so a full cache scans its
    /// entries once per `CAPACITY / 8` misses, not on every one.
    fn evict(&mut self) {
        let mut uses: Vec<u64> = self
            .by_text
            .values()
            .flat_map(|v| v.iter().map(|e| e.used))
            .collect();
        let cut = (CAPACITY / 8).max(1).min(uses.len());
        if cut == 0 {
            return;
        }
        let (_, threshold, _) = uses.select_nth_unstable(cut - 1);
        let threshold = *threshold;
        let mut removed = 0;
        self.by_text.retain(|_, entries| {
            let before = entries.len();
            entries.retain(|e| e.used > threshold);
            removed += before - entries.len();
            !entries.is_empty()
        });
        self.entries -= removed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analyze(sql: &str, nparams: usize, mode: Mode) -> Arc<Analysis> {
        super::analyze(sql, nparams, mode, &SqlGuard::new())
    }

    fn key(mode: Mode) -> Key {
        Key {
            nparams: 0,
            mode,
            guard: 0,
        }
    }

    fn verdict(a: &Analysis) -> Option<&Result<Verdict, Refusal>> {
        a.result.as_ref().ok().map(|c| &c.verdict)
    }

    #[test]
    fn same_text_is_analysed_once_per_mode() {
        let sql = "SELECT id FROM analysis_test_t WHERE name = %s";
        let a = analyze(sql, 1, Mode::Read);
        let b = analyze(sql, 1, Mode::Read);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(
            a.result.as_ref().map(|c| &*c.sql),
            Ok("SELECT id FROM analysis_test_t WHERE name = $1")
        );
        assert_eq!(
            a.result.as_ref().unwrap().verdict.as_ref().unwrap().kind,
            "SELECT"
        );
        // Another mode or parameter count is another answer.
        let w = analyze(sql, 1, Mode::Write { ddl: false });
        assert!(!Arc::ptr_eq(&a, &w));
        let none = analyze(sql, 0, Mode::Read);
        assert_eq!(
            none.result.as_ref().map(|c| &*c.sql),
            Ok("SELECT id FROM analysis_test_t WHERE name = %s"),
            "without parameters %s is not a placeholder"
        );
    }

    #[test]
    fn cached_answers_equal_fresh_ones() {
        let texts = [
            ("UPDATE analysis_t SET a = 1", Mode::Read),
            ("UPDATE analysis_t SET a = 1", Mode::Write { ddl: false }),
            ("DROP TABLE analysis_t", Mode::Write { ddl: false }),
            (
                "SELECT pg_read_file('/etc/passwd')",
                Mode::Write { ddl: true },
            ),
            ("SELEC 1", Mode::Read),
            ("SELECT 1; SELECT 2", Mode::Read),
        ];
        for (sql, mode) in texts {
            let fresh = Analysis::compute(sql, 0, mode, &SqlGuard::new());
            let first = analyze(sql, 0, mode);
            let again = analyze(sql, 0, mode);
            assert_eq!(verdict(&first), verdict(&fresh), "{sql}");
            assert_eq!(verdict(&again), verdict(&fresh), "{sql}");
            assert_eq!(again.shape(sql), fresh.shape(sql), "{sql}");
        }
    }

    #[test]
    fn another_guard_is_another_answer() {
        let sql = "SELECT analysis_helper()";
        let plain = SqlGuard::new();
        let allowing = SqlGuard::with_read_allowances(iam_pgbroker_sql::ReadAllowances {
            functions: vec!["analysis_helper".into()],
            ..Default::default()
        });
        let refused = super::analyze(sql, 0, Mode::Read, &plain);
        let allowed = super::analyze(sql, 0, Mode::Read, &allowing);
        assert!(verdict(&refused).is_some_and(|v| v.is_err()));
        assert!(verdict(&allowed).is_some_and(|v| v.is_ok()));
        // And each keeps its own answer.
        assert!(Arc::ptr_eq(
            &refused,
            &super::analyze(sql, 0, Mode::Read, &plain)
        ));
        assert!(Arc::ptr_eq(
            &allowed,
            &super::analyze(sql, 0, Mode::Read, &allowing)
        ));
    }

    #[test]
    fn wrong_placeholders_are_remembered_as_such() {
        let a = analyze("SELECT %s, %s", 1, Mode::Read);
        assert!(a.result.is_err(), "the guard was not asked");
        assert!(a.shape("SELECT %s, %s").normalized.is_none());
    }

    #[test]
    fn long_texts_are_not_kept() {
        let sql = format!("SELECT '{}'", "x".repeat(MAX_CACHED_TEXT));
        let a = analyze(&sql, 0, Mode::Read);
        let b = analyze(&sql, 0, Mode::Read);
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!(verdict(&a), verdict(&b));
    }

    #[test]
    fn eviction_keeps_the_cache_bounded_and_recent_entries() {
        let mut cache = Cache::default();
        let dummy = || {
            Arc::new(Analysis::compute(
                "SELECT 1",
                0,
                Mode::Read,
                &SqlGuard::new(),
            ))
        };
        let read = key(Mode::Read);
        cache.insert("keep", read, dummy());
        for i in 0..CAPACITY * 3 {
            // "keep" is used all the time, so it survives every eviction.
            assert!(cache.get("keep", read).is_some(), "round {i}");
            cache.insert(&format!("SELECT {i}"), read, dummy());
            assert!(cache.entries <= CAPACITY);
        }
        let counted: usize = cache.by_text.values().map(Vec::len).sum();
        assert_eq!(counted, cache.entries);
        assert!(cache.get("SELECT 0", read).is_none());
        assert!(cache
            .get(&format!("SELECT {}", CAPACITY * 3 - 1), read)
            .is_some());
    }
}
