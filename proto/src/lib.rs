//! The wire protocol of iam-pgbroker.
//!
//! One JSON object per line (UTF-8, `\n`-terminated) over a Unix stream
//! socket. The client sends a [`Request`] carrying an `id`; the broker answers
//! with one or more [`Response`] frames carrying the same `id`. A `query`
//! answers with a [`Response::Columns`] frame, any number of
//! [`Response::Rows`] chunks and a final [`Response::Done`]; every other
//! operation answers with exactly one frame.
//!
//! This crate holds types, limits and codes only: no sockets, no runtime, so
//! that the broker, the blocking client and any tool can share it (the same
//! split as `postgres-protocol` under `tokio-postgres`).
//!
//! ```
//! use iam_pgbroker_proto::{Request, Op, Response};
//!
//! let line = br#"{"id":1,"op":"query","sql":"SELECT 1","params":[]}"#;
//! let req = Request::decode(line).unwrap();
//! assert_eq!(req.id, 1);
//! assert!(matches!(req.op, Op::Query { .. }));
//!
//! let reply = Response::Pong { id: 1 };
//! assert_eq!(reply.encode(), "{\"type\":\"pong\",\"id\":1}\n");
//! ```
#![warn(missing_docs)]

mod approval;
pub mod display;
mod error;
mod request;
mod response;

pub use approval::{
    ApprovalRequest, ChangedRow, Changes, Person, RequestState, RequestStatement, RowValues,
    StatementSpec, SubmitParams,
};
pub use error::{DecodeError, ErrorCode, ErrorInfo};
pub use request::{json_string, Op, OpenParams, Request};
pub use response::{Column, Identity, Opened, Response};

/// The protocol version this crate speaks. A broker answers `hello` with
/// the highest version both sides speak ([`OLDEST_PROTOCOL_VERSION`] up to
/// this one); clients refuse a broker whose answer they do not speak.
///
/// - 1: values as typed JSON (`docs/protocol.md`, "Values, version 1");
///   types outside that table are refused.
/// - 2: every value as PostgreSQL's own text form (a JSON string, `null`
///   for SQL NULL), and each column's type OID: every type PostgreSQL can
///   return, rendered in the session's settings.
pub const PROTOCOL_VERSION: u32 = 2;

/// The oldest version a broker of this crate still speaks.
pub const OLDEST_PROTOCOL_VERSION: u32 = 1;

/// Default hard limit on one request line, in bytes (including the newline).
/// The broker's limit is configurable; it announces it in the `hello` reply.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1024 * 1024;

/// Default number of rows the broker packs into one `rows` frame.
pub const DEFAULT_ROWS_PER_CHUNK: usize = 256;

/// Default soft limit on the encoded size of one `rows` frame, in bytes: a
/// chunk is flushed as soon as it reaches this size, whatever its row count.
pub const DEFAULT_CHUNK_BYTES: usize = 64 * 1024;

/// Default path of the broker's socket.
pub const DEFAULT_SOCKET_PATH: &str = "/run/iam-pgbroker/pgbroker.sock";

/// Environment variable that overrides the socket path for clients.
pub const SOCKET_ENV: &str = "IAM_PGBROKER_SOCKET";

/// Default database instance (`{db}-db` container) when a client names none.
pub const DEFAULT_DB: &str = "czechidm";

/// Default database user when a client names none.
pub const DEFAULT_DB_USER: &str = "postgres";
