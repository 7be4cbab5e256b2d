//! The content check of change requests: what each statement changes,
//! row by row, in the dry run and again at approval.
//!
//! Counts say too little: a statement can change one row in the dry run
//! and another, just as one, when it runs (by asking the clock, its
//! backend's pid, or the data itself). So each `INSERT`, `UPDATE` and
//! `DELETE` runs rewritten to return every row it changes, before and
//! after ([`iam_pgbroker_sql::capture`]); the rows, sorted, give a SHA-256
//! digest; the approver reads the first `[approval] diff_rows` of them;
//! and the execution commits only if its digest equals the dry run's.
//!
//! One thing necessarily differs between the two runs and is allowed to:
//! the transaction's own time. A timestamp in a new row that equals the
//! transaction's `now()` is recorded as `"now()"` in both, so
//! `SET modified = now()` compares equal; `clock_timestamp()`, `random()`
//! and sequences do not, and drift.

use crate::error::RequestError;
use crate::session::{Checked, Session};
use iam_pgbroker_proto::{ChangedRow, Changes, RowValues};
use iam_pgbroker_sql::capture::{capture_sql, change_target, ChangeKind};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The transaction's `now()` as `row_to_json` writes it, for a
/// `timestamptz` and a `timestamp` column.
pub struct Clock {
    with_zone: String,
    without_zone: String,
}

/// What stands in a row for the transaction's `now()`.
const NOW: &str = "\"now()\"";

impl Clock {
    /// Reads the clock of the session's transaction (beginning it).
    pub async fn of(session: &mut Session) -> Result<Clock, RequestError> {
        let rows = session
            .broker_rows(
                "SELECT pg_catalog.to_json(pg_catalog.now())::text, \
                 pg_catalog.to_json(pg_catalog.now()::timestamp)::text",
                &[],
            )
            .await?;
        let mut cells = rows.into_iter().next().unwrap_or_default().into_iter();
        Ok(Clock {
            with_zone: cells.next().flatten().unwrap_or_default(),
            without_zone: cells.next().flatten().unwrap_or_default(),
        })
    }

    fn neutral(&self, row: String) -> String {
        let mut row = row;
        for stamp in [&self.with_zone, &self.without_zone] {
            if !stamp.is_empty() && row.contains(stamp.as_str()) {
                row = row.replace(stamp.as_str(), NOW);
            }
        }
        row
    }
}

/// The primary key columns of `table` (quoted), in key order.
async fn primary_key(session: &mut Session, table: &str) -> Result<Vec<String>, RequestError> {
    let rows = session
        .broker_rows(
            "SELECT a.attname::text FROM pg_catalog.pg_index i \
             JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) \
             WHERE i.indrelid = pg_catalog.to_regclass($1) AND i.indisprimary \
             ORDER BY pg_catalog.array_position(i.indkey::int2[], a.attnum)",
            &[Value::String(table.to_owned())],
        )
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect())
}

/// Runs one checked statement of a change request: its row count, and
/// what it changed when it is an `INSERT`, `UPDATE` or `DELETE` (other
/// statements are compared by their count alone).
pub async fn run_statement(
    session: &mut Session,
    checked: &Checked,
    params: &[Value],
    clock: &Clock,
    shown: usize,
) -> Result<(u64, Option<Changes>), RequestError> {
    let Some(target) = change_target(&checked.sql) else {
        return Ok((session.execute_counted(checked, params).await?, None));
    };
    let key = primary_key(session, &target.quoted()).await?;
    let sql = capture_sql(&checked.sql, &key).map_err(|e| {
        RequestError::Internal(format!("cannot capture what the statement changes: {e}"))
    })?;
    let rows = session.broker_rows(&sql, params).await?;
    let count = rows.len() as u64;
    let mut changed: Vec<(Option<String>, Option<String>)> = rows
        .into_iter()
        .map(|row| {
            let mut cells = row.into_iter();
            let before = cells.next().flatten();
            let after = cells.next().flatten().map(|a| clock.neutral(a));
            (before, after)
        })
        .collect();
    changed.sort();
    let mut digest = Sha256::new();
    for (before, after) in &changed {
        digest.update(before.as_deref().unwrap_or("-").as_bytes());
        digest.update(b"\t");
        digest.update(after.as_deref().unwrap_or("-").as_bytes());
        digest.update(b"\n");
    }
    let table = match &target.schema {
        Some(schema) => format!("{schema}.{}", target.table),
        None => target.table.clone(),
    };
    let rows = changed
        .iter()
        .take(shown)
        .map(|(before, after)| ChangedRow {
            before: before.as_deref().map(row_values),
            after: after.as_deref().map(row_values),
        })
        .collect();
    // An UPDATE whose table has no primary key shows no `before`: say so
    // by an empty key (the digest still covers every new row).
    let key = if target.kind == ChangeKind::Update || !key.is_empty() {
        key
    } else {
        Vec::new()
    };
    Ok((
        count,
        Some(Changes {
            table,
            key,
            count,
            rows,
            digest: hex::encode(digest.finalize()),
        }),
    ))
}

/// A row as `row_to_json` wrote it, its columns in order.
fn row_values(text: &str) -> RowValues {
    serde_json::from_str(text)
        .unwrap_or_else(|_| RowValues(vec![("(row)".to_owned(), Value::String(text.to_owned()))]))
}

/// What `at_approval` changed that `dry_run` did not, and the other way
/// round, when their digests differ: the rows of each that the other
/// lacks, at most `shown` of them.
pub fn differing(dry_run: &Changes, at_approval: &Changes, shown: usize) -> Option<Changes> {
    if dry_run.digest == at_approval.digest {
        return None;
    }
    let rows = at_approval
        .rows
        .iter()
        .filter(|r| !dry_run.rows.contains(r))
        .take(shown)
        .cloned()
        .collect();
    Some(Changes {
        rows,
        ..at_approval.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transactions_time_is_neutral_and_nothing_else() {
        let clock = Clock {
            with_zone: "\"2026-12-06T10:00:00.123456+01:00\"".into(),
            without_zone: "\"2026-12-06T10:00:00.123456\"".into(),
        };
        assert_eq!(
            clock.neutral(r#"{"a":"2026-12-06T10:00:00.123456","b":"2026-12-06T10:00:00.123457","c":"2026-12-06T10:00:00.123456+01:00"}"#.into()),
            r#"{"a":"now()","b":"2026-12-06T10:00:00.123457","c":"now()"}"#
        );
    }

    #[test]
    fn unreadable_rows_are_kept_as_text() {
        let r = row_values("not json");
        assert_eq!(r.0[0].1, Value::String("not json".into()));
        let r = row_values(r#"{"z":1,"a":2}"#);
        assert_eq!(r.0[0].0, "z");
    }
}
