//! Blocking client for iam-pgbroker: the appliance's PostgreSQL databases
//! without root, pwfiles or the Docker socket.
//!
//! This is the Rust counterpart of the Python library `iam-lib-pgconnect`.
//! Instead of `docker exec -it -u postgres czechidm-db psql -d czechidm`, a
//! program asks the local broker, which checks the caller's OS identity
//! against its policy, audits every statement and talks to PostgreSQL. The
//! client speaks JSON lines over the broker's Unix socket
//! (`/run/iam-pgbroker/pgbroker.sock`, or `$IAM_PGBROKER_SOCKET`); it needs
//! no runtime and no privileges.
//!
//! Sessions are read-only unless opened with `readonly(false)` (and the
//! policy grants a write). Nothing is committed unless you commit.
//!
//! # Reading
//!
//! ```no_run
//! # fn main() -> Result<(), iam_pgconnect::Error> {
//! let mut db = iam_pgconnect::connect()?; // czechidm, as postgres, read-only
//!
//! let rows = db.query("SELECT count(*) AS total FROM idm_identity", &[])?;
//! println!("{}", rows[0]["total"]);
//!
//! // Parameters always via placeholders (%s or $1), never by formatting SQL:
//! let rows = db.query(
//!     "SELECT id, username FROM idm_identity WHERE username = %s",
//!     &[&"admin"],
//! )?;
//! for row in &rows {
//!     println!("{} {}", row["id"], row["username"]);
//! }
//! db.close()
//! # }
//! ```
//!
//! # Writing: the `with` block
//!
//! [`with_connection`] and [`Config::with_connection`] mirror the seed
//! library's `with connect(...) as db:` — commit when the closure returns
//! `Ok`, roll back when it returns `Err` or panics, always close:
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let user_id = "0b1c2d3e4f5061728394a5b6c7d8e9f0";
//! use iam_pgconnect::Config;
//!
//! let affected = Config::new()
//!     .user("czechidm")
//!     .readonly(false)
//!     .with_connection(|db| -> Result<u64, Box<dyn std::error::Error>> {
//!         db.execute("INSERT INTO idm_audit_log (msg) VALUES (%s)", &[&"start"])?;
//!         let n = db.execute(
//!             "UPDATE idm_identity SET disabled = true WHERE id = decode(%s, 'hex')",
//!             &[&user_id],
//!         )?;
//!         db.execute("INSERT INTO idm_audit_log (msg) VALUES (%s)", &[&"done"])?;
//!         Ok(n)
//!     })?;
//! println!("rows affected: {affected}");
//! # Ok(()) }
//! ```
//!
//! Without `readonly(false)` the write fails with [`Error::is_read_only`]
//! (PostgreSQL's SQLSTATE 25006, psycopg2's `ReadOnlySqlTransaction`).
//!
//! # Manual commit and rollback
//!
//! ```no_run
//! # fn main() -> Result<(), iam_pgconnect::Error> {
//! let mut db = iam_pgconnect::Config::new()
//!     .user("czechidm")
//!     .readonly(false)
//!     .connect()?;
//! let result = (|| {
//!     db.execute("INSERT INTO idm_audit_log (msg) VALUES (%s)", &[&"one"])?;
//!     db.commit()?;
//!     db.execute("INSERT INTO idm_audit_log (msg) VALUES (%s)", &[&"two"])?;
//!     db.commit()
//! })();
//! if result.is_err() {
//!     db.rollback()?;
//! }
//! db.close()?;
//! # result }
//! ```
//!
//! # Another database instance
//!
//! ```no_run
//! # fn main() -> Result<(), iam_pgconnect::Error> {
//! use iam_pgconnect::Config;
//!
//! let mut conn = Config::new().db("bridge").connect()?;
//! println!("{:?}", conn.query("SELECT current_database()", &[])?);
//!
//! let mut conn = Config::new().db("bridge").user("bridge").connect()?;
//! println!("{:?}", conn.query("SELECT current_user", &[])?);
//! # Ok(()) }
//! ```
//!
//! # Parameters
//!
//! Parameters are a slice of [`ToParam`] trait objects, as in the `postgres`
//! crate: `&[]` for none, `&[&"admin", &3, &None::<i64>]` for several. Use
//! `%s` (psycopg2 style; `%%` is a literal `%` when there are parameters) or
//! `$1..$n`. Values are bound as text, so PostgreSQL parses them by the
//! parameter's type.
//!
//! # Errors
//!
//! [`Error`] answers [`code`](Error::code) (the protocol's stable
//! [`ErrorCode`]), [`sqlstate`](Error::sqlstate),
//! [`is_denied`](Error::is_denied), [`is_read_only`](Error::is_read_only) and
//! [`is_unavailable`](Error::is_unavailable). A database error aborts the
//! transaction, as in PostgreSQL; [`Connection::rollback`] makes the session
//! usable again.
//!
//! # Two-person approval
//!
//! Where the policy gives `mode = "request"`, a person may not write but
//! may ask: [`Config::approvals`] connects for change requests,
//! [`Approvals::submit`] sends a [`Change`] (dry-run and stored by the
//! broker), and another person's [`Approvals::approve`] runs it — committed
//! only if every statement affects as many rows as in the dry run. See
//! `docs/approval.md`.
#![warn(missing_docs)]

mod approval;
mod config;
mod connection;
mod error;
mod param;
pub mod pgtypes;
mod row;
mod socket;
mod wire;

#[cfg(test)]
mod fake_broker;
#[cfg(test)]
mod protocol_tests;

pub use approval::{Approvals, Change, RequestList};
pub use config::Config;
pub use connection::{CancelHandle, Connection, RowIter, SessionInfo};
pub use error::Error;
pub use iam_pgbroker_proto::{
    ApprovalRequest, Column, ErrorCode, ErrorInfo, Identity, Person, RequestState,
    RequestStatement, PROTOCOL_VERSION,
};
pub use param::ToParam;
pub use row::{ColumnIndex, ConversionError, FromValue, Row, RowValues};

/// Connects with the defaults: database instance `czechidm`, as database
/// user `postgres`, read-only, through `$IAM_PGBROKER_SOCKET` or
/// `/run/iam-pgbroker/pgbroker.sock`. Use [`Config`] for anything else.
///
/// ```no_run
/// # fn main() -> Result<(), iam_pgconnect::Error> {
/// let mut db = iam_pgconnect::connect()?;
/// let rows = db.query("SELECT count(*) FROM idm_identity", &[])?;
/// println!("{}", rows[0]["count"]);
/// db.close()
/// # }
/// ```
pub fn connect() -> Result<Connection, Error> {
    Config::new().connect()
}

/// Runs `f` in a default session (see [`connect`]) and commits when it
/// returns `Ok`, rolls back when it returns `Err` or panics, and always
/// closes; see [`Config::with_connection`].
///
/// ```no_run
/// # fn main() -> Result<(), iam_pgconnect::Error> {
/// let names: Vec<String> = iam_pgconnect::with_connection(|db| {
///     db.query("SELECT username FROM idm_identity ORDER BY 1 LIMIT 5", &[])?
///         .iter()
///         .map(|row| row.try_get("username"))
///         .collect()
/// })?;
/// # Ok(()) }
/// ```
pub fn with_connection<T, E, F>(f: F) -> Result<T, E>
where
    F: FnOnce(&mut Connection) -> Result<T, E>,
    E: From<Error>,
{
    Config::new().with_connection(f)
}
