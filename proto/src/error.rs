use serde::{Deserialize, Serialize};
use std::fmt;

/// Stable, machine-readable error codes. Clients branch on these; the
/// accompanying message is for people and may change between releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The policy does not grant this identity what it asked for.
    Denied,
    /// The request is malformed: invalid JSON or UTF-8, an unknown
    /// operation, wrong field types, an oversized line, or an operation
    /// that is not valid in the session's current state.
    BadRequest,
    /// The SQL guard refused the statement before it reached PostgreSQL.
    ForbiddenStatement,
    /// A write was attempted in a read-only session.
    ReadOnly,
    /// The database container (or another named object) does not exist.
    NotFound,
    /// The appliance cannot serve the request right now: the Docker Engine
    /// is unreachable, the container is stopped, PostgreSQL is down.
    Unavailable,
    /// The password could not be read (missing, unreadable or empty pwfile).
    Secret,
    /// PostgreSQL reported an error; `sqlstate`, `detail` and `hint` say more.
    Database,
    /// A configured limit was reached (rows, bytes, sizes, timeouts).
    Limit,
    /// Too many sessions; try again later.
    Busy,
    /// The audit record could not be written, so nothing was run.
    AuditUnavailable,
    /// A bug in the broker. The message says what; the log says more.
    Internal,
    /// A code this version of the protocol crate does not know (sent by a
    /// newer broker). Treat it like [`ErrorCode::Internal`].
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code as it appears on the wire, e.g. `"forbidden_statement"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Denied => "denied",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::ForbiddenStatement => "forbidden_statement",
            ErrorCode::ReadOnly => "read_only",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Secret => "secret",
            ErrorCode::Database => "database",
            ErrorCode::Limit => "limit",
            ErrorCode::Busy => "busy",
            ErrorCode::AuditUnavailable => "audit_unavailable",
            ErrorCode::Internal => "internal",
            ErrorCode::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of an `error` frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// Stable code.
    pub code: ErrorCode,
    /// One human-readable line. Never contains secrets.
    pub message: String,
    /// PostgreSQL's SQLSTATE, for `database` and `read_only` errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqlstate: Option<String>,
    /// PostgreSQL's DETAIL field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// PostgreSQL's HINT field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Where in the statement the error is: a 1-based character position
    /// in the text PostgreSQL received (`%s` converted to `$n`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<u32>,
    /// A position in [`ErrorInfo::internal_query`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_position: Option<u32>,
    /// The text of an internally generated statement (a PL/pgSQL
    /// function's) the error is in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_query: Option<String>,
    /// PostgreSQL's CONTEXT (`WHERE` field): the call stack, one line each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// The schema of the object the error is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// The table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// The column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// The data type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datatype: Option<String>,
    /// The constraint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraint: Option<String>,
    /// PostgreSQL's severity (`ERROR`, `FATAL`), untranslated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// The server's source file that raised it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Its line there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// The server's routine that raised it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routine: Option<String>,
}

impl ErrorInfo {
    /// An error with a code and a message, no database fields.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ErrorInfo {
        ErrorInfo {
            code,
            message: message.into(),
            sqlstate: None,
            detail: None,
            hint: None,
            position: None,
            internal_position: None,
            internal_query: None,
            context: None,
            schema: None,
            table: None,
            column: None,
            datatype: None,
            constraint: None,
            severity: None,
            file: None,
            line: None,
            routine: None,
        }
    }
}

impl fmt::Display for ErrorInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if let Some(state) = &self.sqlstate {
            write!(f, " (SQLSTATE {state})")?;
        }
        Ok(())
    }
}

/// Why a request line could not be decoded. Every variant maps to the
/// `bad_request` code; the message says which rule the line broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The line is not valid UTF-8.
    NotUtf8,
    /// The line is not a JSON object.
    InvalidJson(String),
    /// The object has no `op`, or an `op` this protocol does not define.
    UnknownOp(String),
    /// A field is missing or has the wrong type.
    InvalidField(String),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::NotUtf8 => f.write_str("request is not valid UTF-8"),
            DecodeError::InvalidJson(e) => write!(f, "request is not a JSON object: {e}"),
            DecodeError::UnknownOp(op) => write!(f, "unknown operation {op:?}"),
            DecodeError::InvalidField(e) => write!(f, "invalid request: {e}"),
        }
    }
}

impl std::error::Error for DecodeError {}
