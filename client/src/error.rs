use iam_pgbroker_proto::{ErrorCode, ErrorInfo};
use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::path::Path;

/// PostgreSQL's SQLSTATE for "cannot execute … in a read-only transaction"
/// (psycopg2's `ReadOnlySqlTransaction`).
const SQLSTATE_READ_ONLY_SQL_TRANSACTION: &str = "25006";

/// An error from the broker, from the socket, or from reading a row.
///
/// Branch on [`Error::code`] or the `is_*` predicates; the message is for
/// people and may change between releases. Errors reported by PostgreSQL
/// carry its [`sqlstate`](Error::sqlstate), [`detail`](Error::detail) and
/// [`hint`](Error::hint).
///
/// Failures that happen on the client side map onto the protocol's codes:
/// a missing socket or a refused connection is [`ErrorCode::Unavailable`]
/// (as is a broker that stops answering or hangs up mid-session), a socket
/// the caller may not open is [`ErrorCode::Denied`], a broker that breaks the
/// protocol is [`ErrorCode::Internal`], and a request that cannot be sent
/// (too long) or a value read as the wrong type is
/// [`ErrorCode::BadRequest`].
pub struct Error(Box<ErrorInner>);

struct ErrorInner {
    kind: Kind,
    info: ErrorInfo,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

/// Where the error came from. Private so that new kinds never break callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An `error` frame sent by the broker.
    Broker,
    /// The socket could not be opened.
    Connect,
    /// Reading or writing the socket failed mid-session.
    Io,
    /// The broker did not answer within the read timeout.
    Timeout,
    /// The broker sent something this client does not understand.
    Protocol,
    /// The connection was already unusable before this call.
    Closed,
    /// The caller's request could not be sent (e.g. longer than the
    /// broker's line limit); the connection is still usable.
    Request,
    /// A column was missing or its value had another type.
    Column,
}

impl Error {
    fn new(kind: Kind, code: ErrorCode, message: impl Into<String>) -> Error {
        Error(Box::new(ErrorInner {
            kind,
            info: ErrorInfo::new(code, message),
            source: None,
        }))
    }

    fn with_source(mut self, source: impl Into<Box<dyn StdError + Send + Sync>>) -> Error {
        self.0.source = Some(source.into());
        self
    }

    /// An `error` frame.
    pub(crate) fn broker(info: ErrorInfo) -> Error {
        Error(Box::new(ErrorInner {
            kind: Kind::Broker,
            info,
            source: None,
        }))
    }

    /// The socket at `path` could not be connected to.
    pub(crate) fn connect(path: &Path, err: io::Error) -> Error {
        let shown = path.display();
        let env = iam_pgbroker_proto::SOCKET_ENV;
        let (code, message) = match err.kind() {
            io::ErrorKind::NotFound => (
                ErrorCode::Unavailable,
                format!(
                    "cannot connect to iam-pgbroker: socket {shown} does not exist \
                     (is iam-pgbroker running? set {env} to use another socket)"
                ),
            ),
            io::ErrorKind::ConnectionRefused => (
                ErrorCode::Unavailable,
                format!(
                    "cannot connect to iam-pgbroker: connection to {shown} refused \
                     (is iam-pgbroker running? set {env} to use another socket)"
                ),
            ),
            io::ErrorKind::PermissionDenied => (
                ErrorCode::Denied,
                format!(
                    "cannot connect to iam-pgbroker: permission denied on socket {shown} \
                     (set {env} to use another socket)"
                ),
            ),
            _ => (
                ErrorCode::Unavailable,
                format!(
                    "cannot connect to iam-pgbroker at {shown}: {err} \
                     (set {env} to use another socket)"
                ),
            ),
        };
        Error::new(Kind::Connect, code, message).with_source(err)
    }

    /// Reading or writing the socket failed; `doing` says what the client
    /// was doing ("reading the answer to query").
    pub(crate) fn io(doing: &str, err: io::Error) -> Error {
        match err.kind() {
            // A read timeout surfaces as WouldBlock on Unix.
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::new(
                Kind::Timeout,
                ErrorCode::Unavailable,
                format!("timed out {doing}"),
            )
            .with_source(err),
            io::ErrorKind::UnexpectedEof => Error::new(
                Kind::Io,
                ErrorCode::Unavailable,
                format!("iam-pgbroker closed the connection while {doing}"),
            )
            .with_source(err),
            _ => Error::new(
                Kind::Io,
                ErrorCode::Unavailable,
                format!("connection to iam-pgbroker failed while {doing}: {err}"),
            )
            .with_source(err),
        }
    }

    /// The broker sent something unexpected.
    pub(crate) fn protocol(message: impl Into<String>) -> Error {
        Error::new(
            Kind::Protocol,
            ErrorCode::Internal,
            format!("protocol error: {}", message.into()),
        )
    }

    /// The connection broke earlier (`why` is that earlier error's message).
    pub(crate) fn closed(why: &str) -> Error {
        Error::new(
            Kind::Closed,
            ErrorCode::Unavailable,
            format!("the connection to iam-pgbroker is no longer usable: {why}"),
        )
    }

    /// A request the client refuses to send.
    pub(crate) fn request(message: impl Into<String>) -> Error {
        Error::new(Kind::Request, ErrorCode::BadRequest, message)
    }

    /// A missing column or a value of the wrong type.
    pub(crate) fn column(
        message: impl Into<String>,
        source: Option<Box<dyn StdError + Send + Sync>>,
    ) -> Error {
        let mut err = Error::new(Kind::Column, ErrorCode::BadRequest, message);
        err.0.source = source;
        err
    }

    /// The stable code. Client-side failures map as described on [`Error`].
    pub fn code(&self) -> ErrorCode {
        self.0.info.code
    }

    /// The human-readable message (PostgreSQL's own message for database
    /// errors), without the SQLSTATE.
    pub fn message(&self) -> &str {
        &self.0.info.message
    }

    /// PostgreSQL's SQLSTATE, e.g. `"42P01"` for an unknown table.
    pub fn sqlstate(&self) -> Option<&str> {
        self.0.info.sqlstate.as_deref()
    }

    /// PostgreSQL's DETAIL field.
    pub fn detail(&self) -> Option<&str> {
        self.0.info.detail.as_deref()
    }

    /// PostgreSQL's HINT field.
    pub fn hint(&self) -> Option<&str> {
        self.0.info.hint.as_deref()
    }

    /// Every field the broker sent: for a database error PostgreSQL's
    /// position, context, schema, table, column, data type and constraint
    /// names and internal query, as far as PostgreSQL gave them.
    pub fn info(&self) -> &ErrorInfo {
        &self.0.info
    }

    /// The policy (or the socket's file permissions) does not let this OS
    /// identity do what it asked.
    pub fn is_denied(&self) -> bool {
        self.code() == ErrorCode::Denied
    }

    /// A write was attempted in a read-only session: the broker's
    /// `read_only` code, or PostgreSQL's SQLSTATE 25006 (psycopg2's
    /// `ReadOnlySqlTransaction`).
    pub fn is_read_only(&self) -> bool {
        self.code() == ErrorCode::ReadOnly
            || self.sqlstate() == Some(SQLSTATE_READ_ONLY_SQL_TRANSACTION)
    }

    /// The broker or the appliance cannot serve the request right now: the
    /// socket is missing or refuses connections, the broker hung up or
    /// timed out, or the broker reported `unavailable` (Docker or
    /// PostgreSQL down, container stopped).
    pub fn is_unavailable(&self) -> bool {
        self.code() == ErrorCode::Unavailable
    }

    /// The broker did not answer within the configured read timeout.
    pub fn is_timeout(&self) -> bool {
        self.0.kind == Kind::Timeout
    }

    /// The connection can no longer be used (the socket failed, timed out,
    /// or the broker broke the protocol); open a new one.
    pub fn is_closed(&self) -> bool {
        matches!(
            self.0.kind,
            Kind::Connect | Kind::Io | Kind::Timeout | Kind::Protocol | Kind::Closed
        )
    }

    /// Whether this error leaves the connection unusable.
    pub(crate) fn breaks_connection(&self) -> bool {
        matches!(
            self.0.kind,
            Kind::Io | Kind::Timeout | Kind::Protocol | Kind::Closed
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.info.message)?;
        if let Some(state) = &self.0.info.sqlstate {
            write!(f, " (SQLSTATE {state})")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("code", &self.0.info.code)
            .field("message", &self.0.info.message);
        if let Some(s) = &self.0.info.sqlstate {
            d.field("sqlstate", s);
        }
        if let Some(s) = &self.0.info.detail {
            d.field("detail", s);
        }
        if let Some(s) = &self.0.info.hint {
            d.field("hint", s);
        }
        if let Some(s) = &self.0.source {
            d.field("source", s);
        }
        d.finish()
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.0
            .source
            .as_ref()
            .map(|s| &**s as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_is_the_code_or_the_sqlstate() {
        let by_code = Error::broker(ErrorInfo::new(ErrorCode::ReadOnly, "nope"));
        assert!(by_code.is_read_only());
        let by_state = Error::broker(ErrorInfo {
            sqlstate: Some("25006".into()),
            ..ErrorInfo::new(
                ErrorCode::Database,
                "cannot execute UPDATE in a read-only transaction",
            )
        });
        assert!(by_state.is_read_only());
        assert_eq!(
            by_state.to_string(),
            "cannot execute UPDATE in a read-only transaction (SQLSTATE 25006)"
        );
        let other = Error::broker(ErrorInfo {
            sqlstate: Some("42P01".into()),
            ..ErrorInfo::new(ErrorCode::Database, "relation \"x\" does not exist")
        });
        assert!(!other.is_read_only());
        assert!(!other.is_closed());
    }

    #[test]
    fn missing_socket_names_the_path_and_the_variable() {
        let err = Error::connect(
            Path::new("/nowhere/pgbroker.sock"),
            io::Error::from(io::ErrorKind::NotFound),
        );
        assert!(err.is_unavailable());
        let text = err.to_string();
        assert!(text.contains("/nowhere/pgbroker.sock"), "{text}");
        assert!(text.contains("IAM_PGBROKER_SOCKET"), "{text}");
        assert!(err.source().is_some());
    }

    #[test]
    fn permission_denied_on_the_socket_is_denied() {
        let err = Error::connect(
            Path::new("/run/x.sock"),
            io::Error::from(io::ErrorKind::PermissionDenied),
        );
        assert!(err.is_denied());
    }

    #[test]
    fn timeouts_break_the_connection() {
        let err = Error::io(
            "reading the answer to query",
            io::Error::from(io::ErrorKind::WouldBlock),
        );
        assert!(err.is_timeout() && err.is_closed() && err.is_unavailable());
    }
}
