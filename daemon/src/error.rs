//! What can go wrong while serving a request, and how each failure maps to
//! the protocol's stable error codes.

use crate::docker::DockerError;
use crate::secrets::SecretError;
use iam_pgbroker_proto::{ErrorCode, ErrorInfo};

/// A request that could not be served. The cause is kept (`source()`), and
/// [`RequestError::to_wire`] turns it into the client's error frame.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The policy refused.
    #[error("{0}")]
    Denied(String),
    /// Malformed or out-of-order request.
    #[error("{0}")]
    BadRequest(String),
    /// The SQL guard refused the statement.
    #[error("{0}")]
    Forbidden(String),
    /// PostgreSQL's grammar rejects the statement (found by the guard,
    /// which parses with it; nothing was sent).
    #[error("{0}")]
    /// PostgreSQL's grammar rejects the statement: the message, and where
    /// the parser stopped (1-based characters), for psql's caret.
    Syntax(String, Option<u32>),
    /// A write in a read-only session, caught before PostgreSQL saw it.
    #[error("{0}")]
    ReadOnly(String),
    /// The container could not be resolved.
    #[error(transparent)]
    Docker(#[from] DockerError),
    /// The password could not be read.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// Connecting to PostgreSQL failed.
    #[error("cannot connect to {target}: {source}")]
    Connect {
        /// `container (address:port) as user`.
        target: String,
        /// Cause.
        #[source]
        source: tokio_postgres::Error,
    },
    /// PostgreSQL reported an error, or the connection to it broke.
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    /// Commit of a transaction that an earlier error aborted.
    #[error(
        "the transaction was aborted by an earlier error and has been rolled back, not committed"
    )]
    Aborted,
    /// The session's server connection is gone.
    #[error("the database connection was lost; open a new session")]
    ConnectionLost,
    /// The audit record could not be written, so nothing was run.
    #[error("the audit record could not be written: {0}")]
    Audit(#[from] crate::audit::AuditError),
    /// A configured limit was reached.
    #[error("{0}")]
    Limit(String),
    /// The broker cannot take the request now (the audit folder's reserve
    /// is reached); an administrator must act.
    #[error("{0}")]
    Unavailable(String),
    /// A shared resource is taken (server connections, sessions per
    /// user); trying again later may work.
    #[error("{0}")]
    Busy(String),
    /// A read session could not be given a role that is not a superuser
    /// (see [`crate::read_role`]); nothing ran.
    #[error("{0}")]
    ReadRole(String),
    /// A read session's connection turned out to be a superuser's: it was
    /// closed before anything ran on it.
    #[error("refusing to run a read session as {user}: PostgreSQL reports it a superuser")]
    ReadAsSuperuser {
        /// The database user.
        user: String,
    },
    /// A named object (a change request) does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A broker bug.
    #[error("internal error: {0}")]
    Internal(String),
    /// An error the broker reports in PostgreSQL's words without one from
    /// PostgreSQL at hand (a `COPY` the client abandoned).
    #[error("{}", .0.message)]
    Reported(Box<ErrorInfo>),
}

impl RequestError {
    /// PostgreSQL refused the password (`28P01`): the source may hold a
    /// newer one.
    pub fn is_auth_failure(&self) -> bool {
        match self {
            RequestError::Connect { source, .. } => source
                .as_db_error()
                .is_some_and(|db| db.code().code() == "28P01"),
            _ => false,
        }
    }

    /// The error frame's body.
    pub fn to_wire(&self) -> ErrorInfo {
        match self {
            RequestError::Denied(m) => ErrorInfo::new(ErrorCode::Denied, m.clone()),
            RequestError::BadRequest(m) => ErrorInfo::new(ErrorCode::BadRequest, m.clone()),
            RequestError::Forbidden(m) => ErrorInfo::new(ErrorCode::ForbiddenStatement, m.clone()),
            RequestError::Syntax(m, position) => ErrorInfo {
                sqlstate: Some("42601".into()),
                position: *position,
                severity: Some("ERROR".into()),
                ..ErrorInfo::new(ErrorCode::Database, m.clone())
            },
            RequestError::ReadOnly(m) => ErrorInfo {
                // psycopg2's ReadOnlySqlTransaction: what tools already catch.
                sqlstate: Some("25006".into()),
                ..ErrorInfo::new(ErrorCode::ReadOnly, m.clone())
            },
            RequestError::Docker(e) => {
                let code = match e {
                    DockerError::NoSuchContainer { .. } => ErrorCode::NotFound,
                    _ => ErrorCode::Unavailable,
                };
                ErrorInfo::new(code, e.to_string())
            }
            RequestError::Secret(e) if e.is_unavailable() => {
                ErrorInfo::new(ErrorCode::Unavailable, e.to_string())
            }
            RequestError::Secret(e) => ErrorInfo::new(ErrorCode::Secret, e.to_string()),
            RequestError::Connect { target, source } => match source.as_db_error() {
                Some(db) => ErrorInfo {
                    sqlstate: Some(db.code().code().to_owned()),
                    detail: db.detail().map(str::to_owned),
                    hint: db.hint().map(str::to_owned),
                    ..ErrorInfo::new(
                        ErrorCode::Database,
                        format!("cannot connect to {target}: {}", db.message()),
                    )
                },
                None => ErrorInfo::new(
                    ErrorCode::Unavailable,
                    format!("cannot connect to {target}: {}", display_chain(source)),
                ),
            },
            RequestError::Postgres(e) => postgres_error(e),
            RequestError::Aborted => ErrorInfo {
                // in_failed_sql_transaction: what PostgreSQL says about
                // statements in such a transaction.
                sqlstate: Some("25P02".into()),
                ..ErrorInfo::new(ErrorCode::Database, self.to_string())
            },
            RequestError::ConnectionLost => {
                ErrorInfo::new(ErrorCode::Unavailable, self.to_string())
            }
            RequestError::Limit(m) => ErrorInfo::new(ErrorCode::Limit, m.clone()),
            RequestError::Busy(m) => ErrorInfo::new(ErrorCode::Busy, m.clone()),
            RequestError::Unavailable(m) => ErrorInfo::new(ErrorCode::Unavailable, m.clone()),
            RequestError::ReadRole(m) => ErrorInfo::new(ErrorCode::Unavailable, m.clone()),
            RequestError::ReadAsSuperuser { .. } => {
                ErrorInfo::new(ErrorCode::Unavailable, self.to_string())
            }
            RequestError::NotFound(m) => ErrorInfo::new(ErrorCode::NotFound, m.clone()),
            // The cause (a path, an errno) is for the journal, not the client.
            RequestError::Audit(_) => ErrorInfo::new(
                ErrorCode::AuditUnavailable,
                "the audit record could not be written, so nothing was run; see the broker's journal",
            ),
            RequestError::Internal(m) => ErrorInfo::new(ErrorCode::Internal, m.clone()),
            RequestError::Reported(info) => (**info).clone(),
        }
    }
}

fn postgres_error(e: &tokio_postgres::Error) -> ErrorInfo {
    match e.as_db_error() {
        Some(db) => {
            let code = if db.code().code() == "25006" {
                ErrorCode::ReadOnly
            } else {
                ErrorCode::Database
            };
            db_error_info(db, code)
        }
        None if e.is_closed() => ErrorInfo::new(
            ErrorCode::Unavailable,
            "the database connection was lost; open a new session",
        ),
        None => ErrorInfo::new(ErrorCode::Unavailable, display_chain(e)),
    }
}

/// Every field of a message PostgreSQL sent (an error or a notice), under
/// `code`.
pub fn db_error_info(db: &tokio_postgres::error::DbError, code: ErrorCode) -> ErrorInfo {
    let (position, internal_position, internal_query) = match db.position() {
        Some(tokio_postgres::error::ErrorPosition::Original(p)) => (Some(*p), None, None),
        Some(tokio_postgres::error::ErrorPosition::Internal { position, query }) => {
            (None, Some(*position), Some(query.clone()))
        }
        None => (None, None, None),
    };
    let own = |s: Option<&str>| s.map(str::to_owned);
    ErrorInfo {
        sqlstate: Some(db.code().code().to_owned()),
        detail: own(db.detail()),
        hint: own(db.hint()),
        position,
        internal_position,
        internal_query,
        context: own(db.where_()),
        schema: own(db.schema()),
        table: own(db.table()),
        column: own(db.column()),
        datatype: own(db.datatype()),
        constraint: own(db.constraint()),
        severity: Some(
            db.parsed_severity()
                .map_or_else(|| db.severity().to_owned(), |s| s.to_string()),
        ),
        file: own(db.file()),
        line: db.line(),
        routine: own(db.routine()),
        ..ErrorInfo::new(code, db.message().to_owned())
    }
}

/// An error with its causes, `a: b: c`, for errors whose `Display` hides
/// the interesting part in `source()`.
pub fn display_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(cause) = cur {
        let text = cause.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = cause.source();
    }
    s
}
