//! Two-person write approval: a change one person submits, the broker
//! dry-runs and stores, and another person approves (or rejects) before it
//! touches the data. `docs/approval.md` describes the flow.

use crate::error::ErrorInfo;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// Parameters of [`crate::Op::RequestSubmit`]: one change, made of one or
/// more statements that run in one transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitParams {
    /// Database instance. Default `czechidm`.
    #[serde(default = "crate::request::default_db")]
    pub db: String,
    /// Database user the change runs as. Default `postgres`.
    #[serde(default = "crate::request::default_user")]
    pub user: String,
    /// Database name inside the instance. Default: the instance's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dbname: Option<String>,
    /// Why the change is needed (a ticket number); required, shown to the
    /// approver and kept in the audit.
    pub reason: String,
    /// The statements, in the order they run.
    pub statements: Vec<StatementSpec>,
}

/// One statement of a change, as submitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatementSpec {
    /// One SQL statement, with `$1..$n` or `%s` placeholders.
    pub sql: String,
    /// Its parameter values, bound as text (as in `execute`).
    #[serde(default)]
    pub params: Vec<Value>,
}

/// Where a change request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    /// Dry-run, stored, waiting for an approver.
    Pending,
    /// Approved; the broker is running it now (or stopped while it ran, in
    /// which case the outcome is not known: check the data).
    Executing,
    /// Approved and committed; every statement affected as many rows as in
    /// the dry run.
    Executed,
    /// Approved, but a statement affected a different number of rows than
    /// in its dry run (or failed): rolled back, nothing changed. Submit it
    /// again.
    Drifted,
    /// Approved, but the commit's outcome could not be learned (the
    /// database connection broke while committing).
    Failed,
    /// An approver refused it.
    Rejected,
    /// The requester withdrew it.
    Cancelled,
    /// Nobody approved it in time.
    Expired,
    /// A state this version of the protocol crate does not know.
    #[serde(other)]
    Unknown,
}

impl RequestState {
    /// The state as it appears on the wire, e.g. `"pending"`.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Pending => "pending",
            RequestState::Executing => "executing",
            RequestState::Executed => "executed",
            RequestState::Drifted => "drifted",
            RequestState::Failed => "failed",
            RequestState::Rejected => "rejected",
            RequestState::Cancelled => "cancelled",
            RequestState::Expired => "expired",
            RequestState::Unknown => "unknown",
        }
    }
}

impl fmt::Display for RequestState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A person as the broker read them from the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// User id.
    pub uid: u32,
    /// User name, when the user database knows it.
    #[serde(default)]
    pub user: Option<String>,
}

impl fmt::Display for Person {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.user {
            Some(user) => write!(f, "{user} (uid {})", self.uid),
            None => write!(f, "uid {}", self.uid),
        }
    }
}

/// One statement of a stored request, with its counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestStatement {
    /// The statement as submitted.
    pub sql: String,
    /// Its parameter values, as submitted.
    #[serde(default)]
    pub params: Vec<Value>,
    /// The statement kind the guard gave (`UPDATE`, `INSERT`, …).
    pub kind: String,
    /// Rows it affected in the dry run.
    pub dry_run_rows: u64,
    /// Rows it affected when it ran after approval (absent until then, and
    /// for statements after a failed one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// What its dry run changed, row by row (`INSERT`, `UPDATE`, `DELETE`;
    /// absent for statements whose content is not captured, which are
    /// compared by their row count only, and in requests stored before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Changes>,
    /// What it changed at approval, when that differed from the dry run
    /// (the execution was rolled back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes_at_approval: Option<Changes>,
}

/// What one statement changed, row by row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Changes {
    /// The table as the statement names it.
    pub table: String,
    /// Its primary key columns (empty: none, and an `UPDATE`'s rows show
    /// no `before`).
    #[serde(default)]
    pub key: Vec<String>,
    /// Rows changed (all of them, also beyond [`Changes::rows`]).
    pub count: u64,
    /// The changed rows, sorted, at most `[approval] diff_rows` of them.
    pub rows: Vec<ChangedRow>,
    /// SHA-256 over every changed row: equal digests, equal changes.
    pub digest: String,
}

impl Changes {
    /// Rows changed but not kept in [`Changes::rows`].
    pub fn not_shown(&self) -> u64 {
        self.count.saturating_sub(self.rows.len() as u64)
    }
}

/// One changed row: as it was, and as it is after the statement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangedRow {
    /// The row before (`UPDATE` by primary key, `DELETE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<RowValues>,
    /// The row after (`INSERT`, `UPDATE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<RowValues>,
}

/// A row's columns in the table's order, each with its value as
/// PostgreSQL's `row_to_json` gives it (a timestamp that equals the
/// transaction's `now()` is the string `"now()"`). A JSON object on the
/// wire.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RowValues(pub Vec<(String, Value)>);

impl RowValues {
    /// The value of `column`.
    pub fn get(&self, column: &str) -> Option<&Value> {
        self.0.iter().find(|(c, _)| c == column).map(|(_, v)| v)
    }
}

impl Serialize for RowValues {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for RowValues {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Ordered;
        impl<'de> serde::de::Visitor<'de> for Ordered {
            type Value = RowValues;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a row as a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RowValues, A::Error> {
                let mut columns = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    columns.push((k, v));
                }
                Ok(RowValues(columns))
            }
        }
        d.deserialize_map(Ordered)
    }
}

impl RequestStatement {
    /// Whether it ran after approval and changed something else than in
    /// the dry run: another row count, or other rows or values.
    pub fn drifted(&self) -> bool {
        self.rows.is_some_and(|n| n != self.dry_run_rows) || self.changes_at_approval.is_some()
    }
}

/// A change request as the broker shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    /// The request's id, 16 hex digits.
    pub id: String,
    /// Where it is in its life.
    pub state: RequestState,
    /// Database instance.
    pub db: String,
    /// Database name.
    pub dbname: String,
    /// Database user the change runs as.
    pub db_user: String,
    /// Who submitted it.
    pub requester: Person,
    /// Why (as submitted).
    pub reason: String,
    /// The policy rule that let the requester submit it.
    pub rule: String,
    /// The statements, in order, with their dry-run counts.
    pub statements: Vec<RequestStatement>,
    /// When it was submitted (UTC, RFC 3339).
    pub submitted: String,
    /// When it expires unless approved (UTC, RFC 3339).
    pub expires: String,
    /// Who approved, rejected or cancelled it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<Person>,
    /// When (UTC, RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<String>,
    /// The approver's comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Why it drifted or failed, when a statement or the commit failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
}

impl ApprovalRequest {
    /// The statements whose count after approval differed from the dry run.
    pub fn drift(&self) -> impl Iterator<Item = (usize, &RequestStatement)> {
        self.statements
            .iter()
            .enumerate()
            .filter(|(_, s)| s.drifted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_unknown_ones_decode() {
        for state in [
            RequestState::Pending,
            RequestState::Executing,
            RequestState::Executed,
            RequestState::Drifted,
            RequestState::Failed,
            RequestState::Rejected,
            RequestState::Cancelled,
            RequestState::Expired,
        ] {
            let text = serde_json::to_string(&state).unwrap();
            assert_eq!(text, format!("\"{state}\""));
            assert_eq!(serde_json::from_str::<RequestState>(&text).unwrap(), state);
        }
        assert_eq!(
            serde_json::from_str::<RequestState>("\"archived\"").unwrap(),
            RequestState::Unknown
        );
    }

    #[test]
    fn rows_keep_their_column_order() {
        let text = r#"{"id":"\\x01","username":"admin","disabled":false,"version":3}"#;
        let row: RowValues = serde_json::from_str(text).unwrap();
        let names: Vec<&str> = row.0.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(names, ["id", "username", "disabled", "version"]);
        assert_eq!(serde_json::to_string(&row).unwrap(), text);
        assert_eq!(row.get("version"), Some(&Value::from(3)));
    }

    #[test]
    fn drift_compares_counts() {
        let s = |dry, rows| RequestStatement {
            sql: "UPDATE t SET x = 1".into(),
            params: vec![],
            kind: "UPDATE".into(),
            dry_run_rows: dry,
            rows,
            changes: None,
            changes_at_approval: None,
        };
        assert!(!s(1, None).drifted());
        assert!(!s(1, Some(1)).drifted());
        assert!(s(1, Some(2)).drifted());
    }
}
