use crate::param::{write_params, ToParam};
use crate::socket::Socket;
use crate::{wire, Error, Row};
use iam_pgbroker_proto::{
    json_string, Column, ErrorInfo, Identity, Op, OpenParams, Request, Response,
    DEFAULT_MAX_LINE_BYTES, OLDEST_PROTOCOL_VERSION, PROTOCOL_VERSION,
};
use serde_json::Value;
use std::fmt;
use std::io::{BufReader, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Hard limit on one frame from the broker. The broker sends rows in
/// chunks of about 64 KiB, so a line this long means a broken broker, not a
/// big result; the limit keeps a runaway line from eating the caller's
/// memory.
pub(crate) const MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;

/// How long `Drop` waits for each answer while rolling back and closing.
const DROP_TIMEOUT: Duration = Duration::from_secs(2);

/// What the broker said about the session when it opened it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SessionInfo {
    /// The broker's session id (also in the audit and in PostgreSQL's
    /// `application_name`).
    pub session: String,
    /// Database instance (`czechidm`, `bridge`).
    pub db: String,
    /// Database name inside the instance.
    pub dbname: String,
    /// Database user.
    pub user: String,
    /// Whether the session is read-only.
    pub readonly: bool,
    /// Name of the policy rule that granted the session.
    pub rule: String,
    /// Who the broker believes this process is (read from the kernel).
    pub identity: Identity,
    /// The broker's name and version, e.g. `iam-pgbroker/0.1.0`.
    pub server: String,
    /// The protocol version the broker speaks.
    pub protocol_version: u32,
}

/// An open session with the broker: one logical database connection.
///
/// The first statement after open, [`commit`](Connection::commit) or
/// [`rollback`](Connection::rollback) starts a transaction (read-only unless
/// the session was opened with `readonly(false)`); nothing is committed
/// unless `commit` is called. Dropping an unclosed connection rolls back and
/// closes it (best effort, waiting at most a few seconds).
///
/// Parameters are passed as `&[&dyn ToParam]`: `&[]` for none,
/// `&[&"admin", &3]` for `%s` or `$1`, `$2` placeholders (`%%` is a literal
/// `%` when there are parameters). See [`ToParam`] for the value mapping.
///
/// Manual transaction control, several commits on one connection:
///
/// ```no_run
/// # fn main() -> Result<(), iam_pgconnect::Error> {
/// let mut db = iam_pgconnect::Config::new()
///     .user("czechidm")
///     .readonly(false)
///     .connect()?;
/// let result = (|| {
///     db.execute("INSERT INTO idm_audit_log (msg) VALUES (%s)", &[&"step 1"])?;
///     db.commit()?;
///     db.execute(
///         "UPDATE idm_identity SET modified = now() WHERE username = %s",
///         &[&"admin"],
///     )?;
///     db.commit()
/// })();
/// if result.is_err() {
///     db.rollback()?;
/// }
/// db.close()?;
/// result
/// # }
/// ```
pub struct Connection {
    reader: BufReader<Socket>,
    next_id: u64,
    max_line_bytes: usize,
    info: SessionInfo,
    /// A `query` whose answer has not been read to the end (a `RowIter`
    /// that was forgotten); drained before the next request.
    pending: Option<u64>,
    /// Why the connection can no longer be used, once it cannot.
    broken: Option<String>,
    closed: bool,
    /// The broker's socket and the client's name and timeouts, for
    /// [`CancelHandle`]s (each opens a socket of its own).
    reach: Arc<Reach>,
    /// Where `notice` frames go; dropped without one.
    notices: Option<NoticeHandler>,
    /// The last `columns` frame's bytes after its id, and what they
    /// decoded to: the same statement's next frame is the same bytes, and
    /// is not decoded again.
    columns_cache: Option<(Vec<u8>, Arc<[Column]>)>,
    /// The last statement text sent, and its JSON.
    sql_cache: Option<(String, String)>,
    /// The frame being read, its buffer reused from frame to frame.
    line: Vec<u8>,
    /// The parameters of the request being sent, as JSON, likewise.
    params_json: Vec<u8>,
}

/// A frame read by `Connection::recv_with`. Returned once per frame and
/// taken apart at once: boxing the frame would cost an allocation per
/// frame to save a move.
#[allow(clippy::large_enum_variant)]
enum Answer<T> {
    /// Taken from its bytes without decoding.
    Known(T),
    /// Decoded.
    Frame(Response),
}

/// The first frame of a query's answer.
enum First {
    Columns(Arc<[Column]>),
    Frame(Box<Response>),
}

/// The bytes after the id of a `columns` frame for request `id`, as the
/// broker writes it (`{"type":"columns","id":7,"columns":[…]}`).
pub(crate) fn columns_tail(line: &[u8], id: u64) -> Option<&[u8]> {
    let rest = line.strip_prefix(br#"{"type":"columns","id":"#)?;
    let digits = rest.iter().position(|b| !b.is_ascii_digit())?;
    let mut got: u64 = 0;
    for d in &rest[..digits] {
        got = got.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    (digits > 0 && got == id).then_some(&rest[digits..])
}

/// What [`Connection::set_notice_handler`] installs.
type NoticeHandler = Box<dyn FnMut(&ErrorInfo) + Send>;

/// How to reach the broker again: a [`CancelHandle`]'s own socket.
#[derive(Debug)]
struct Reach {
    path: std::path::PathBuf,
    client_name: String,
    write_timeout: Option<Duration>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("session", &self.info.session)
            .field("db", &self.info.db)
            .field("user", &self.info.user)
            .field("readonly", &self.info.readonly)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

/// The socket before the session is open: `hello` and `open`.
struct Handshake {
    reader: BufReader<Socket>,
    next_id: u64,
}

impl Handshake {
    fn call(&mut self, op: Op, doing: &str) -> Result<Response, Error> {
        let id = self.next_id;
        self.next_id += 1;
        let line = Request { id, op }.encode();
        self.reader
            .get_mut()
            .write_all(line.as_bytes())
            .map_err(|e| Error::io(doing, e))?;
        let frame = wire::read_frame(&mut self.reader, doing)?;
        wire::answer(frame, id, doing)
    }
}

/// The client's read buffer: a whole rows frame (see the broker's
/// `chunk_bytes`, 64 KiB by default) plus its frame.
const READ_BUFFER: usize = 72 * 1024;

impl Connection {
    pub(crate) fn open(
        path: &Path,
        params: &OpenParams,
        client_name: &str,
        protocol: u32,
        read_timeout: Option<Duration>,
        write_timeout: Option<Duration>,
    ) -> Result<Connection, Error> {
        let mut stream = Socket::connect(path).map_err(|e| Error::connect(path, e))?;
        stream
            .set_read_timeout(read_timeout)
            .and_then(|()| stream.set_write_timeout(write_timeout))
            .map_err(|e| Error::io("setting socket timeouts", e))?;
        let mut hs = Handshake {
            // The broker's rows frames are up to 64 KiB: one read each,
            // instead of eight with std's default 8 KiB.
            reader: BufReader::with_capacity(READ_BUFFER, stream),
            next_id: 1,
        };
        let hello = Op::Hello {
            version: protocol,
            client: Some(client_name.to_owned()),
        };
        let (server, protocol_version, max_line_bytes) =
            match hs.call(hello, "saying hello to iam-pgbroker")? {
                Response::Hello {
                    version,
                    server,
                    max_line_bytes,
                    ..
                } => (server, version, max_line_bytes),
                other => return Err(wire::unexpected(&other, "hello")),
            };
        if !(OLDEST_PROTOCOL_VERSION..=protocol).contains(&protocol_version) {
            return Err(Error::protocol(format!(
                "{server} speaks protocol version {protocol_version}, \
                 this client speaks versions {OLDEST_PROTOCOL_VERSION} to {PROTOCOL_VERSION}"
            )));
        }
        // After a refused open the broker keeps the connection so that we
        // can read the error; returning drops (closes) the socket.
        let opened = match hs.call(Op::Open(params.clone()), "opening the session")? {
            Response::Opened(o) => o,
            other => return Err(wire::unexpected(&other, "opened")),
        };
        Ok(Connection {
            reach: Arc::new(Reach {
                path: path.to_owned(),
                client_name: client_name.to_owned(),
                write_timeout,
            }),
            notices: None,
            columns_cache: None,
            sql_cache: None,
            line: Vec::new(),
            params_json: Vec::new(),
            reader: hs.reader,
            next_id: hs.next_id,
            max_line_bytes: if max_line_bytes == 0 {
                DEFAULT_MAX_LINE_BYTES
            } else {
                max_line_bytes
            },
            info: SessionInfo {
                session: opened.session,
                db: opened.db,
                dbname: opened.dbname,
                user: opened.user,
                readonly: opened.readonly,
                rule: opened.rule,
                identity: opened.identity,
                server,
                protocol_version,
            },
            pending: None,
            broken: None,
            closed: false,
        })
    }

    /// What the broker said when it opened the session: session id,
    /// database, user, mode, the rule that granted it and the identity it
    /// read from the kernel.
    pub fn session_info(&self) -> &SessionInfo {
        &self.info
    }

    /// Runs a statement and returns all its rows.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), iam_pgconnect::Error> {
    /// let mut db = iam_pgconnect::connect()?;
    /// let rows = db.query("SELECT count(*) AS total FROM idm_identity", &[])?;
    /// let total: i64 = rows[0].get("total");
    ///
    /// // Parameters always via placeholders, never by formatting SQL:
    /// let rows = db.query(
    ///     "SELECT id, username FROM idm_identity WHERE username = %s",
    ///     &[&"admin"],
    /// )?;
    /// for row in &rows {
    ///     println!("{} {}", row["id"], row["username"]);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn query(&mut self, sql: &str, params: &[&dyn ToParam]) -> Result<Vec<Row>, Error> {
        self.query_iter(sql, params)?.collect()
    }

    /// Runs a statement and yields its rows as they arrive, without holding
    /// the whole result in memory.
    ///
    /// The iterator borrows the connection. Dropping it early reads and
    /// discards the rest of the answer, so the connection stays usable (for
    /// a huge result that takes as long as receiving it; a `LIMIT` is
    /// cheaper). After the last row, [`RowIter::command`] and
    /// [`RowIter::row_count`] give the command tag's verb and the row count.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), iam_pgconnect::Error> {
    /// let mut db = iam_pgconnect::connect()?;
    /// let mut rows = db.query_iter("SELECT username FROM idm_identity ORDER BY 1", &[])?;
    /// for row in &mut rows {
    ///     println!("{}", row?.get::<&str>("username"));
    /// }
    /// println!("{:?} rows", rows.row_count());
    /// # Ok(()) }
    /// ```
    pub fn query_iter(&mut self, sql: &str, params: &[&dyn ToParam]) -> Result<RowIter<'_>, Error> {
        let id = self.send_statement("query", sql, params)?;
        let (columns, done) = match self.recv_first(id, "reading the answer to query")? {
            First::Columns(columns) => (columns, None),
            // A broker may skip the header for a statement without result
            // columns; the result is the same as an empty one.
            First::Frame(frame) => match *frame {
                Response::Done { rows, command, .. } => {
                    (Vec::new().into(), Some(Done { rows, command }))
                }
                other => return Err(self.violation(&other, "columns")),
            },
        };
        let finished = done.is_some();
        if !finished {
            self.pending = Some(id);
        }
        Ok(RowIter {
            conn: self,
            id,
            columns,
            chunk: Vec::new().into_iter(),
            done,
            finished,
        })
    }

    /// Runs a statement and returns the number of rows it affected.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), iam_pgconnect::Error> {
    /// let mut db = iam_pgconnect::Config::new()
    ///     .user("czechidm")
    ///     .readonly(false)
    ///     .connect()?;
    /// let affected = db.execute(
    ///     "UPDATE idm_identity SET modified = now() WHERE username = %s",
    ///     &[&"admin"],
    /// )?;
    /// db.commit()?;
    /// println!("rows affected: {affected}");
    /// # Ok(()) }
    /// ```
    pub fn execute(&mut self, sql: &str, params: &[&dyn ToParam]) -> Result<u64, Error> {
        let id = self.send_statement("execute", sql, params)?;
        match self.recv(id, "reading the answer to execute")? {
            Response::Done { rows, .. } => Ok(rows),
            other => Err(self.violation(&other, "done")),
        }
    }

    /// Commits the open transaction (nothing happens when none is open).
    pub fn commit(&mut self) -> Result<(), Error> {
        self.expect_ok(Op::Commit)
    }

    /// Rolls back the open transaction (nothing happens when none is open).
    /// After a database error, roll back to use the session again.
    pub fn rollback(&mut self) -> Result<(), Error> {
        self.expect_ok(Op::Rollback)
    }

    /// Checks that the broker is alive and the session usable.
    pub fn ping(&mut self) -> Result<(), Error> {
        let id = self.send(Op::Ping)?;
        match self.recv(id, "waiting for pong")? {
            Response::Pong { .. } => Ok(()),
            other => Err(self.violation(&other, "pong")),
        }
    }

    /// Rolls back whatever is open and ends the session.
    ///
    /// The socket is closed even when this returns an error.
    pub fn close(mut self) -> Result<(), Error> {
        let result = self.expect_ok(Op::Close);
        self.closed = true;
        result
    }

    /// Changes the read timeout (`None`: wait as long as the broker takes).
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) -> Result<(), Error> {
        self.reader
            .get_mut()
            .set_read_timeout(timeout.filter(|t| !t.is_zero()))
            .map_err(|e| Error::io("setting the read timeout", e))
    }

    fn expect_ok(&mut self, op: Op) -> Result<(), Error> {
        let name = op.name();
        let id = self.send(op)?;
        match self.recv(id, &format!("reading the answer to {name}"))? {
            Response::Ok { .. } => Ok(()),
            other => Err(self.violation(&other, "ok")),
        }
    }

    /// Sends one request and returns its id.
    fn send(&mut self, op: Op) -> Result<u64, Error> {
        let id = self.next_request()?;
        let name = op.name();
        let line = Request { id, op }.encode();
        self.write_request(name, line.as_bytes())?;
        Ok(id)
    }

    /// Sends a `query` or `execute` (`op`) of `sql` without making an
    /// [`Op`] of it: a tool runs the same few texts again and again, and
    /// the JSON of the last one is kept for the next time.
    fn send_statement(
        &mut self,
        op: &'static str,
        sql: &str,
        params: &[&dyn ToParam],
    ) -> Result<u64, Error> {
        let id = self.next_request()?;
        let json = match &self.sql_cache {
            Some((text, json)) if text == sql => json,
            _ => &self.sql_cache.insert((sql.to_owned(), json_string(sql))).1,
        };
        write_params(params, &mut self.params_json);
        let line = Request::statement_line_raw(id, op, json, &self.params_json);
        self.write_request(op, &line)?;
        Ok(id)
    }

    /// The id of the next request, once the connection is ready for one
    /// (not broken, the rest of a forgotten result read).
    fn next_request(&mut self) -> Result<u64, Error> {
        if let Some(why) = &self.broken {
            return Err(Error::closed(why));
        }
        if self.pending.is_some() {
            self.drain()?;
        }
        let id = self.next_id;
        self.next_id += 1;
        Ok(id)
    }

    /// Writes a request's line (`name` for errors).
    fn write_request(&mut self, name: &str, line: &[u8]) -> Result<(), Error> {
        if line.len() > self.max_line_bytes {
            // Refused here, so the session stays usable; the broker would
            // answer bad_request anyway.
            return Err(Error::request(format!(
                "the {name} request is {} bytes, more than the broker's limit of {} bytes",
                line.len(),
                self.max_line_bytes
            )));
        }
        let written = self.reader.get_mut().write_all(line);
        written.map_err(|e| self.broke(Error::io(&format!("sending {name}"), e)))?;
        Ok(())
    }

    /// Reads the next frame of the answer to `id`. An `error` frame becomes
    /// `Err`; anything that leaves the socket out of step marks the
    /// connection broken.
    fn recv(&mut self, id: u64, doing: &str) -> Result<Response, Error> {
        match self.recv_with(id, doing, |_, _| None::<std::convert::Infallible>)? {
            Answer::Frame(frame) => Ok(frame),
            Answer::Known(never) => match never {},
        }
    }

    /// The first frame of a query's answer: its columns, from the cache
    /// when the frame's bytes are those of the last columns frame.
    fn recv_first(&mut self, id: u64, doing: &str) -> Result<First, Error> {
        let known = |conn: &Connection, line: &[u8]| {
            let tail = columns_tail(line, id)?;
            let (bytes, columns) = conn.columns_cache.as_ref()?;
            (tail == bytes.as_slice()).then(|| columns.clone())
        };
        Ok(match self.recv_with(id, doing, known)? {
            Answer::Known(columns) => First::Columns(columns),
            Answer::Frame(Response::Columns { columns, .. }) => {
                let columns: Arc<[Column]> = columns.into();
                if let Some(tail) = columns_tail(&self.line, id) {
                    self.columns_cache = Some((tail.to_vec(), columns.clone()));
                }
                First::Columns(columns)
            }
            Answer::Frame(other) => First::Frame(Box::new(other)),
        })
    }

    /// Reads frames until one that is not a notice (notices go to the
    /// handler) and returns it as the answer to `id`, or what `known`
    /// makes of its bytes before they are decoded. The frame's bytes stay
    /// in `self.line` until the next read.
    fn recv_with<T>(
        &mut self,
        id: u64,
        doing: &str,
        known: impl Fn(&Connection, &[u8]) -> Option<T>,
    ) -> Result<Answer<T>, Error> {
        loop {
            let read = wire::read_raw(&mut self.reader, &mut self.line, doing);
            read.map_err(|e| self.broke(e))?;
            if let Some(answer) = known(self, &self.line) {
                return Ok(Answer::Known(answer));
            }
            let frame = wire::decode(&self.line).map_err(|e| self.broke(e))?;
            self.keep_line();
            if let Response::Notice { notice, .. } = &frame {
                // Notices belong to the answer being read; they never end it.
                if let Some(handler) = self.notices.as_mut() {
                    handler(notice);
                }
                continue;
            }
            return wire::answer(frame, id, doing)
                .map(Answer::Frame)
                .map_err(|e| self.broke(e));
        }
    }

    /// Keeps the frame buffer for the next frame, unless a huge result
    /// grew it.
    fn keep_line(&mut self) {
        if self.line.capacity() > 1 << 20 {
            self.line = Vec::new();
        }
    }

    /// Reads and discards the rest of the pending `query` answer.
    fn drain(&mut self) -> Result<(), Error> {
        let Some(id) = self.pending else {
            return Ok(());
        };
        loop {
            match self.recv(id, "discarding the rest of a result") {
                Ok(Response::Rows { .. }) => {}
                Ok(Response::Done { .. }) => break,
                Ok(other) => return Err(self.violation(&other, "rows or done")),
                Err(e) if e.breaks_connection() => return Err(e),
                // The statement failed midway: its error frame ends the
                // answer, and nobody is left to read it.
                Err(_) => break,
            }
        }
        self.pending = None;
        Ok(())
    }

    /// Records that the connection is unusable when `err` says so.
    fn broke(&mut self, err: Error) -> Error {
        if err.breaks_connection() && self.broken.is_none() {
            self.broken = Some(err.message().to_owned());
            self.pending = None;
        }
        err
    }

    fn violation(&mut self, got: &Response, wanted: &str) -> Error {
        self.broke(wire::unexpected(got, wanted))
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if self.closed || self.broken.is_some() {
            return;
        }
        if self.pending.is_some() {
            // A forgotten result still streaming: draining it could take
            // long. Hanging up makes the broker roll back just the same.
            return;
        }
        // Best effort and bounded: a stuck broker must not hang the caller
        // (possibly unwinding from a panic). Errors are ignored; the broker
        // rolls back on disconnect anyway.
        let stream = self.reader.get_mut();
        let _ = stream.set_read_timeout(Some(DROP_TIMEOUT));
        let _ = stream.set_write_timeout(Some(DROP_TIMEOUT));
        if self.expect_ok(Op::Rollback).is_ok() {
            let _ = self.expect_ok(Op::Close);
        }
        self.closed = true;
    }
}

/// The final frame of a query.
#[derive(Debug, Clone)]
struct Done {
    rows: u64,
    command: String,
}

/// Rows of a query as they arrive; see [`Connection::query_iter`].
///
/// Yields `Err` once if the statement fails midway (after some rows), then
/// ends. Dropping it before the end discards the rest of the answer.
pub struct RowIter<'c> {
    conn: &'c mut Connection,
    id: u64,
    columns: Arc<[Column]>,
    chunk: std::vec::IntoIter<Vec<Value>>,
    done: Option<Done>,
    finished: bool,
}

impl fmt::Debug for RowIter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RowIter")
            .field("id", &self.id)
            .field("columns", &self.columns)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl RowIter<'_> {
    /// The result's columns, known before the first row (empty for a
    /// statement that returns no rows, such as `UPDATE` without
    /// `RETURNING`).
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The command tag's verb (`SELECT`, `UPDATE`, …), once the iterator
    /// has returned `None` after a successful statement.
    pub fn command(&self) -> Option<&str> {
        self.done.as_ref().map(|d| d.command.as_str())
    }

    /// Rows returned (or, for `INSERT`/`UPDATE`/`DELETE` without
    /// `RETURNING`, affected), once the iterator has returned `None` after
    /// a successful statement.
    pub fn row_count(&self) -> Option<u64> {
        self.done.as_ref().map(|d| d.rows)
    }

    fn fail(&mut self, err: Error) -> Option<Result<Row, Error>> {
        self.finished = true;
        if self.conn.pending == Some(self.id) {
            self.conn.pending = None;
        }
        Some(Err(err))
    }
}

impl Iterator for RowIter<'_> {
    type Item = Result<Row, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(values) = self.chunk.next() {
                if values.len() != self.columns.len() {
                    let err = Error::protocol(format!(
                        "a row has {} values for {} columns",
                        values.len(),
                        self.columns.len()
                    ));
                    let err = self.conn.broke(err);
                    return self.fail(err);
                }
                let values = if self.conn.info.protocol_version >= 2 {
                    crate::row::typed(&self.columns, values)
                } else {
                    values
                };
                return Some(Ok(Row::new(Arc::clone(&self.columns), values)));
            }
            if self.finished {
                return None;
            }
            match self.conn.recv(self.id, "reading rows") {
                Ok(Response::Rows { rows, .. }) => self.chunk = rows.into_iter(),
                Ok(Response::Done { rows, command, .. }) => {
                    self.done = Some(Done { rows, command });
                    self.finished = true;
                    self.conn.pending = None;
                    return None;
                }
                Ok(other) => {
                    let err = self.conn.violation(&other, "rows or done");
                    return self.fail(err);
                }
                Err(err) => return self.fail(err),
            }
        }
    }
}

impl Drop for RowIter<'_> {
    fn drop(&mut self) {
        if !self.finished {
            // Errors mark the connection broken; the next call reports it.
            let _ = self.conn.drain();
        }
    }
}

/// Cancels the statement a [`Connection`] is running, from another thread
/// or a signal handler's helper thread: it opens its own socket to the
/// broker and sends the protocol's `cancel` for the session (allowed for
/// the session's own OS user).
///
/// The statement then fails with PostgreSQL's `57014` (`canceling
/// statement due to user request`) and the transaction is aborted, as
/// psql's Ctrl-C does it; roll back to go on. A cancel that arrives while
/// nothing runs does nothing.
///
/// ```no_run
/// # fn main() -> Result<(), iam_pgconnect::Error> {
/// let mut db = iam_pgconnect::connect()?;
/// let cancel = db.cancel_handle();
/// std::thread::spawn(move || {
///     std::thread::sleep(std::time::Duration::from_secs(1));
///     let _ = cancel.cancel();
/// });
/// let err = db.execute("SELECT pg_sleep(30)", &[]).unwrap_err();
/// assert_eq!(err.sqlstate(), Some("57014"));
/// db.rollback()?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct CancelHandle {
    session: String,
    reach: Arc<Reach>,
}

/// How long a cancel waits for the broker's answer.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(5);

impl CancelHandle {
    /// Asks the broker to cancel whatever the session is running; `Ok`
    /// when the request was delivered, whether or not a statement was
    /// running.
    pub fn cancel(&self) -> Result<(), Error> {
        let path = &self.reach.path;
        let mut stream = Socket::connect(path).map_err(|e| Error::connect(path, e))?;
        let timeout = Some(
            self.reach
                .write_timeout
                .unwrap_or(CANCEL_TIMEOUT)
                .min(CANCEL_TIMEOUT),
        );
        stream
            .set_read_timeout(Some(CANCEL_TIMEOUT))
            .and_then(|()| stream.set_write_timeout(timeout))
            .map_err(|e| Error::io("setting socket timeouts", e))?;
        let mut hs = Handshake {
            reader: BufReader::new(stream),
            next_id: 1,
        };
        let hello = Op::Hello {
            version: PROTOCOL_VERSION,
            client: Some(format!("{} (cancel)", self.reach.client_name)),
        };
        match hs.call(hello, "saying hello to iam-pgbroker")? {
            Response::Hello { .. } => {}
            other => return Err(wire::unexpected(&other, "hello")),
        }
        let cancel = Op::Cancel {
            session: self.session.clone(),
        };
        match hs.call(cancel, "cancelling the statement")? {
            Response::Ok { .. } => {}
            other => return Err(wire::unexpected(&other, "ok")),
        }
        // Goodbye; the broker also copes with a plain hang-up.
        let _ = hs.call(Op::Close, "closing the cancel connection");
        Ok(())
    }

    /// The session this handle cancels in.
    pub fn session(&self) -> &str {
        &self.session
    }
}

/// psql-facing session features: cancel, notices, COPY, savepoints.
impl Connection {
    /// A handle that cancels this session's running statement from
    /// another thread.
    pub fn cancel_handle(&self) -> CancelHandle {
        CancelHandle {
            session: self.info.session.clone(),
            reach: Arc::clone(&self.reach),
        }
    }

    /// Calls `handler` for each NOTICE, WARNING or INFO message PostgreSQL
    /// sends (the notice's `severity`, `sqlstate`, `message`, `detail`,
    /// `hint`, `position`, `context` are in the [`ErrorInfo`] fields),
    /// in the order PostgreSQL sent them, before the statement's result
    /// ends. Without a handler, notices are dropped. Needs protocol
    /// version 2 (an older broker sends none).
    pub fn set_notice_handler<F>(&mut self, handler: F)
    where
        F: FnMut(&ErrorInfo) + Send + 'static,
    {
        self.notices = Some(Box::new(handler));
    }

    /// Runs `COPY … TO STDOUT` (text or CSV format) and writes the data,
    /// as PostgreSQL sends it, to `sink` while it arrives (memory stays
    /// bounded); returns the number of rows. A failing `sink` ends the
    /// call with its error once the broker's answer is read to the end.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), iam_pgconnect::Error> {
    /// let mut db = iam_pgconnect::connect()?;
    /// let mut out = std::io::stdout();
    /// let rows = db.copy_out("COPY idm_identity (username) TO STDOUT WITH (FORMAT csv)", &mut out)?;
    /// eprintln!("{rows} rows");
    /// # Ok(()) }
    /// ```
    pub fn copy_out(&mut self, sql: &str, sink: &mut dyn std::io::Write) -> Result<u64, Error> {
        let id = self.send(Op::CopyOut {
            sql: sql.to_owned(),
        })?;
        let mut failed: Option<std::io::Error> = None;
        loop {
            match self.recv(id, "reading COPY data")? {
                Response::CopyData { data, .. } => {
                    if failed.is_none() {
                        if let Err(e) = sink.write_all(data.as_bytes()) {
                            failed = Some(e);
                        }
                    }
                }
                Response::Done { rows, .. } => {
                    return match failed.or_else(|| sink.flush().err()) {
                        Some(e) => Err(Error::io("writing COPY data", e)),
                        None => Ok(rows),
                    };
                }
                other => return Err(self.violation(&other, "copy_data or done")),
            }
        }
    }

    /// Runs `COPY … FROM STDIN` (write sessions) with the data read from
    /// `source` in pieces as it is sent (memory stays bounded); returns
    /// the number of rows. The data must be UTF-8 text (the text or CSV
    /// format); if `source` fails or is not UTF-8, the COPY is abandoned
    /// (PostgreSQL fails it, and the transaction with it) and the error
    /// returned.
    pub fn copy_in(&mut self, sql: &str, source: &mut dyn std::io::Read) -> Result<u64, Error> {
        let id = self.send(Op::CopyIn {
            sql: sql.to_owned(),
        })?;
        match self.recv(id, "starting COPY FROM STDIN")? {
            Response::CopyReady { .. } => {}
            other => return Err(self.violation(&other, "copy_ready")),
        }
        // Pieces well under the line limit, even if every byte needs a
        // six-byte JSON escape.
        let piece = (self.max_line_bytes / 8).clamp(1024, 64 * 1024);
        let mut buf = vec![0u8; piece];
        let mut carry: Vec<u8> = Vec::new();
        let failure = loop {
            let n = match source.read(&mut buf) {
                Ok(0) => {
                    if carry.is_empty() {
                        break None;
                    }
                    break Some(Error::request(
                        "the COPY data ends in the middle of a UTF-8 character",
                    ));
                }
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => break Some(Error::io("reading COPY data", e)),
            };
            carry.extend_from_slice(&buf[..n]);
            // Send what is whole UTF-8; keep an incomplete character for
            // the next read.
            let whole = match std::str::from_utf8(&carry) {
                Ok(_) => carry.len(),
                Err(e) if e.error_len().is_none() => e.valid_up_to(),
                Err(_) => {
                    break Some(Error::request(
                        "the COPY data is not UTF-8 text (binary COPY is not supported)",
                    ))
                }
            };
            let rest = carry.split_off(whole);
            let data = String::from_utf8(std::mem::replace(&mut carry, rest)).unwrap_or_default();
            if !data.is_empty() {
                self.send(Op::CopyData { data })?;
            }
        };
        match failure {
            None => {
                let id = self.send(Op::CopyDone)?;
                match self.recv(id, "finishing COPY FROM STDIN")? {
                    Response::Done { rows, .. } => Ok(rows),
                    other => Err(self.violation(&other, "done")),
                }
            }
            Some(err) => {
                let id = self.send(Op::CopyFail {
                    message: err.message().to_owned(),
                })?;
                // PostgreSQL's error for the abandoned COPY is expected;
                // the caller gets the reason.
                let _ = self.recv(id, "abandoning COPY FROM STDIN");
                Err(err)
            }
        }
    }

    /// `SAVEPOINT name` through the broker's transaction control (the SQL
    /// form is refused by the broker's guard). Begins the transaction when
    /// none is open, as any statement does. `name` is the savepoint's name
    /// as PostgreSQL keeps it: SQL's `SAVEPOINT Foo` is `foo`, `"Foo"` is
    /// `Foo`.
    pub fn savepoint(&mut self, name: &str) -> Result<(), Error> {
        self.expect_ok(Op::Savepoint {
            name: name.to_owned(),
        })
    }

    /// `RELEASE SAVEPOINT name`.
    pub fn release_savepoint(&mut self, name: &str) -> Result<(), Error> {
        self.expect_ok(Op::ReleaseSavepoint {
            name: name.to_owned(),
        })
    }

    /// `ROLLBACK TO SAVEPOINT name`: undoes what ran since the savepoint;
    /// after a failed statement the transaction is usable again.
    pub fn rollback_to_savepoint(&mut self, name: &str) -> Result<(), Error> {
        self.expect_ok(Op::RollbackToSavepoint {
            name: name.to_owned(),
        })
    }
}
