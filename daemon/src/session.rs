//! A client's database session: one PostgreSQL connection and the
//! transaction the broker drives on it.
//!
//! Semantics follow psycopg2: the first statement after open, commit or
//! rollback starts a transaction — `BEGIN READ ONLY` unless a write session
//! was granted; `commit`/`rollback` end it; closing, a vanished client or
//! shutdown roll back. Nothing is committed that the client did not commit.

use crate::analysis::Analysis;
use crate::error::RequestError;
use crate::frame::FrameWriter;
use crate::pool::{Pool, PoolKey, ServerConn, IDLE_APPLICATION_NAME};
use crate::secrets::Password;
use crate::types::{
    is_supported, write_json_str, CellWriter, RawCell, Rendering, TextParam, TextWriter,
};
use futures_util::{pin_mut, TryStreamExt};
use iam_pgbroker_proto::{Column, Response};
use iam_pgbroker_sql::{Mode, Refusal, RefusalKind, SqlGuard, Verdict};
use serde_json::Value;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWrite;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};
use tracing::debug;

#[path = "session_copy.rs"]
mod copy;

/// Where and as whom to connect.
#[derive(Debug, Clone)]
pub struct ServerTarget {
    /// Container name, for messages.
    pub container: String,
    /// Container address.
    pub addr: IpAddr,
    /// Port.
    pub port: u16,
    /// Database name.
    pub dbname: String,
    /// Database user.
    pub user: String,
}

impl std::fmt::Display for ServerTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}:{}) database {} as {}",
            self.container, self.addr, self.port, self.dbname, self.user
        )
    }
}

/// What a session may do, fixed at open from the granting rule.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// The OS user the session serves: its pooled connections serve no one
    /// else.
    pub owner_uid: u32,
    /// Read-only (the default) or read-write.
    pub readonly: bool,
    /// Write sessions may change the schema.
    pub ddl: bool,
    /// Role to `SET ROLE` to right after connecting.
    pub db_role: Option<String>,
    /// `statement_timeout`, ms (0: none).
    pub statement_timeout_ms: u64,
    /// `idle_in_transaction_session_timeout`, ms (0: none).
    pub idle_in_transaction_timeout_ms: u64,
    /// `lock_timeout`, ms (0: none).
    pub lock_timeout_ms: u64,
    /// `work_mem`, kB (0: the server's).
    pub work_mem_kb: u64,
    /// `temp_file_limit`, kB (0: the server's).
    pub temp_file_limit_kb: u64,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Chunking of results.
    pub chunks: ChunkLimits,
}

/// Chunking of `rows` frames, and the limits of one result.
#[derive(Debug, Clone, Copy)]
pub struct ChunkLimits {
    /// Rows per frame.
    pub rows: usize,
    /// Bytes after which a frame is sent whatever its row count.
    pub bytes: usize,
    /// Rows one result may have (0: no limit).
    pub max_rows: u64,
    /// Bytes one result may have (0: no limit).
    pub max_bytes: u64,
}

/// Why a query or execute did not finish normally.
#[derive(Debug)]
pub enum Failure {
    /// The request failed; the caller sends this as an error frame.
    Request(RequestError),
    /// Writing to the client failed: the client is gone.
    Client(std::io::Error),
}

impl From<RequestError> for Failure {
    fn from(e: RequestError) -> Self {
        Failure::Request(e)
    }
}

/// A statement the guard let through.
#[derive(Debug)]
pub struct Checked {
    /// The text PostgreSQL will see (placeholders converted).
    pub sql: Arc<str>,
    /// What the guard found.
    pub verdict: Verdict,
    /// Everything known about the text (the audit's shape of it).
    pub analysis: Arc<Analysis>,
}

/// A statement refused before anything was sent.
#[derive(Debug)]
pub struct Rejected {
    /// The client's error.
    pub error: RequestError,
    /// The statement kind or function the guard refused, if it was the guard.
    pub what: Option<String>,
}

/// A statement ready to run.
struct Prepared {
    statement: tokio_postgres::Statement,
    params: Vec<TextParam>,
    /// The `columns` frame's list, serialized when it was prepared.
    columns: Arc<str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Txn {
    /// No transaction open: the next statement begins one.
    Idle,
    /// A transaction is open and healthy.
    Open,
    /// A statement failed: PostgreSQL has aborted the transaction and
    /// ignores everything until it is rolled back.
    Failed,
}

/// An open database session.
pub struct Session {
    /// The server connection; `None` only after `close` took it.
    conn: Option<ServerConn>,
    key: PoolKey,
    pool: Arc<Pool>,
    readonly: bool,
    mode: Mode,
    txn: Txn,
    chunks: ChunkLimits,
    /// The `rows` frames' buffer, kept from result to result (a fresh
    /// 65 KiB buffer per query made the allocator grow and trim its heap).
    rows_buffer: Vec<u8>,
    /// A cancel request was sent on this connection. It reaches the server
    /// some time later and cancels whatever runs then, so the connection
    /// is never pooled: it could cancel the next session's statement.
    cancelled: bool,
    /// A connection this session has not used yet.
    first_use: Option<FirstUse>,
    /// The session's `application_name` (the broker's tag), which a
    /// client's own name follows ([`crate::settings`]).
    app_name: String,
    /// A `COPY … FROM STDIN` waiting for its data.
    copy_in: Option<copy::CopyIn>,
    /// The session changed `DateStyle` or `bytea_output`: PostgreSQL
    /// prints every value whose text depends on them (the broker's own
    /// rendering assumes the connection's start values).
    rendering_changed: bool,
    /// The guard that checks this session's statements.
    guard: SqlGuard,
    /// Values as PostgreSQL's text form (protocol version 2), for every
    /// type, rather than typed JSON; PostgreSQL's notices as `notice`
    /// frames.
    text_values: bool,
    /// Dynamic credentials' lease: renewed while the session lives,
    /// revoked when it ends (declared after `conn`, so the connection is
    /// gone first). Such a connection is never pooled: its role is about
    /// to be dropped.
    lease: Option<crate::secrets::openbao::LeaseGuard>,
}

/// What a session owes its connection before its first transaction.
struct FirstUse {
    /// `SET application_name = …`, sent together with the first `BEGIN`.
    set: String,
    /// How to connect afresh if the pooled connection turns out dead (the
    /// server restarted or ended it while it was idle): nothing ran on it
    /// for this session yet, so a new connection is as good.
    again: Box<Reconnect>,
}

struct Reconnect {
    target: ServerTarget,
    password: Password,
    application_name: String,
    settings: SessionSettings,
}

impl Session {
    /// Opens a session on `target`: a warm pooled connection when one
    /// matches, else a new one authenticated with `password`. The
    /// connection is named `application_name`, so PostgreSQL's own logs
    /// show who it serves.
    pub async fn open(
        target: &ServerTarget,
        password: &Password,
        application_name: &str,
        settings: &SessionSettings,
        pool: Arc<Pool>,
    ) -> Result<Session, RequestError> {
        let key = PoolKey {
            uid: settings.owner_uid,
            addr: target.addr,
            port: target.port,
            dbname: target.dbname.clone(),
            user: target.user.clone(),
            db_role: settings.db_role.clone(),
            statement_timeout_ms: settings.statement_timeout_ms,
            idle_in_transaction_timeout_ms: settings.idle_in_transaction_timeout_ms,
            lock_timeout_ms: settings.lock_timeout_ms,
            password_hash: PoolKey::hash_password(password.expose()),
            work_mem_kb: settings.work_mem_kb,
            temp_file_limit_kb: settings.temp_file_limit_kb,
        };
        // Every connection starts with the pool's neutral name (the one
        // RESET ALL returns to); this session's name goes out with its
        // first BEGIN (no round trip of its own at open).
        let conn = match pool.take(&key) {
            Some(conn) => conn,
            None => connect(target, password, IDLE_APPLICATION_NAME, settings).await?,
        };
        // What the connection heard before (its reset) is no one's.
        conn.notices.clear();
        if settings.readonly && conn.superuser {
            // The second line behind read_role: never a superuser session
            // for a read grant, whatever the broker believed of the user.
            conn.discard();
            return Err(RequestError::ReadAsSuperuser {
                user: target.user.clone(),
            });
        }
        let first_use = FirstUse {
            set: format!(
                "SET application_name = '{}'",
                application_name.replace('\'', "''")
            ),
            again: Box::new(Reconnect {
                target: target.clone(),
                password: password.clone(),
                application_name: IDLE_APPLICATION_NAME.to_owned(),
                settings: settings.clone(),
            }),
        };
        let mode = if settings.readonly {
            Mode::Read
        } else {
            Mode::Write { ddl: settings.ddl }
        };
        Ok(Session {
            conn: Some(conn),
            key,
            pool,
            readonly: settings.readonly,
            mode,
            txn: Txn::Idle,
            chunks: settings.chunks,
            rows_buffer: Vec::new(),
            cancelled: false,
            first_use: Some(first_use),
            app_name: application_name.to_owned(),
            rendering_changed: false,
            copy_in: None,
            guard: SqlGuard::new(),
            text_values: false,
            lease: None,
        })
    }

    /// Checks this session's statements with `guard` (the configuration's,
    /// with what `[guard]` allows in read sessions) instead of the plain one.
    pub fn set_guard(&mut self, guard: SqlGuard) {
        self.guard = guard;
    }

    /// Sends values as PostgreSQL's text form and notices as `notice`
    /// frames (protocol version 2).
    pub fn set_text_values(&mut self, text: bool) {
        self.text_values = text;
    }

    /// Sends the notices PostgreSQL sent since the last call as `notice`
    /// frames for request `id` (protocol version 2; a version 1 client
    /// does not get them). Called before the frame that ends an answer.
    pub async fn send_notices<W: AsyncWrite + Unpin>(
        &mut self,
        id: u64,
        out: &mut FrameWriter<W>,
    ) -> Result<(), Failure> {
        let Some(conn) = self.conn.as_ref() else {
            return Ok(());
        };
        if !self.text_values {
            conn.notices.clear();
            return Ok(());
        }
        let (notices, dropped) = conn.notices.take();
        for notice in notices {
            out.send(&Response::Notice { id, notice })
                .await
                .map_err(Failure::Client)?;
        }
        if dropped > 0 {
            let notice = iam_pgbroker_proto::ErrorInfo {
                severity: Some("WARNING".into()),
                ..iam_pgbroker_proto::ErrorInfo::new(
                    iam_pgbroker_proto::ErrorCode::Limit,
                    format!(
                        "{dropped} more notices of this statement were left out (the broker sends at most {} per request)",
                        crate::notices::MAX_QUEUED
                    ),
                )
            };
            out.send(&Response::Notice { id, notice })
                .await
                .map_err(Failure::Client)?;
        }
        Ok(())
    }

    /// Holds `lease` for as long as the session lives; the connection is
    /// then closed instead of pooled, and the lease revoked.
    pub fn hold_lease(&mut self, lease: crate::secrets::openbao::LeaseGuard) {
        self.lease = Some(lease);
    }

    fn conn(&mut self) -> Result<&mut ServerConn, RequestError> {
        self.conn.as_mut().ok_or(RequestError::ConnectionLost)
    }

    fn client(&mut self) -> Result<&Client, RequestError> {
        Ok(&self.conn()?.client)
    }

    /// Whether the session is read-only.
    pub fn readonly(&self) -> bool {
        self.readonly
    }

    /// Whether a transaction is open (healthy or failed).
    pub fn in_transaction(&self) -> bool {
        self.txn != Txn::Idle
    }

    async fn begin_if_idle(&mut self) -> Result<(), RequestError> {
        if self.txn != Txn::Idle {
            return Ok(());
        }
        let begin = if self.readonly {
            "BEGIN READ ONLY"
        } else {
            "BEGIN READ WRITE"
        };
        match self.first_use.take() {
            None => self.client()?.batch_execute(begin).await?,
            Some(first) => {
                // The previous session's reset first (usually done long ago).
                let ready = self.conn()?.ready().await;
                if !ready || !self.begin_first(&first.set, begin).await? {
                    debug!("a pooled connection could not be used; connecting afresh");
                    // Gone before connecting: should that fail, the session
                    // must not hand the unusable connection back to the pool.
                    if let Some(dead) = self.conn.take() {
                        dead.discard();
                    }
                    let again = first.again;
                    let fresh = connect(
                        &again.target,
                        &again.password,
                        &again.application_name,
                        &again.settings,
                    )
                    .await?;
                    if self.readonly && fresh.superuser {
                        fresh.discard();
                        return Err(RequestError::ReadAsSuperuser {
                            user: again.target.user.clone(),
                        });
                    }
                    self.conn = Some(fresh);
                    if !self.begin_first(&first.set, begin).await? {
                        return Err(RequestError::ConnectionLost);
                    }
                }
            }
        }
        self.txn = Txn::Open;
        Ok(())
    }

    /// `SET application_name` and `BEGIN` on a pooled connection's first
    /// use, in one round trip: two messages sent together (tokio-postgres
    /// sends a request when its future is first polled, and `join` polls
    /// both before waiting). Each is its own simple query, so the name is
    /// set outside the transaction and a later ROLLBACK keeps it.
    /// `Ok(false)`: the connection is dead (the server restarted or ended
    /// it while it was idle); nothing ran on it for this session.
    ///
    /// The database's and role's settings are asked in the same round trip:
    /// after an `ALTER DATABASE … SET timezone` a pooled connection still
    /// renders values in the old zone (its `RESET ALL` goes back to what
    /// was in force when it started), so one whose settings changed is not
    /// used (`Ok(false)`, and a new connection takes its place).
    async fn begin_first(&mut self, set: &str, begin: &str) -> Result<bool, RequestError> {
        let conn = self.conn()?;
        let (client, started_with) = (conn.client.clone(), conn.settings.clone());
        // In this order (join polls, and so sends, in argument order): the
        // query runs before the transaction, which its failure could not
        // abort.
        let (set, now, began) = futures_util::join!(
            client.batch_execute(set),
            client.simple_query(SETTINGS_SQL),
            client.batch_execute(begin)
        );
        let unchanged = match now {
            Ok(rows) => settings_of(&rows) == started_with,
            Err(_) => true,
        };
        match set.and(began) {
            Ok(()) if !unchanged => {
                debug!("the database's or role's settings changed since this connection started");
                Ok(false)
            }
            Ok(()) => Ok(true),
            Err(e) if e.is_closed() || client.is_closed() => {
                debug!(cause = %e, "pooled connection found dead");
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A result went over `max_result_rows` or `max_result_bytes` (`what`):
    /// the rows sent so far stay sent, the error frame says the result is
    /// incomplete, and the server stops working on it.
    fn over_limit(&mut self, what: &str) -> Failure {
        self.cancel_running();
        if self.txn == Txn::Open {
            self.txn = Txn::Failed;
        }
        RequestError::Limit(format!(
            "the result exceeds the limit of {what}; the rows before it were sent, the rest was not (narrow the query or page through it)"
        ))
        .into()
    }

    /// Asks the server to cancel the statement now running (best effort,
    /// over a separate connection, as PostgreSQL's protocol does it).
    fn cancel_running(&mut self) {
        self.cancelled = true;
        if let Some(conn) = self.conn.as_ref() {
            let token = conn.client.cancel_token();
            tokio::spawn(async move {
                if let Err(e) = token.cancel_query(NoTls).await {
                    debug!(cause = %e, "cancel request failed");
                }
            });
        }
    }

    /// Cancels the statement now running, if any: after a client vanished
    /// mid-result, the statement must not run on (holding its locks,
    /// burning the server) until it ends by itself or `statement_timeout`
    /// stops it. The connection is not pooled afterwards.
    pub async fn cancel_statement(&mut self) {
        if let Some(token) = self.cancel_token() {
            self.cancelled = true;
            cancel(token).await;
        }
    }

    /// PostgreSQL's pid of the session's connection.
    pub fn backend_pid(&self) -> Option<i32> {
        self.conn.as_ref().and_then(|c| c.backend_pid)
    }

    /// A cancel was sent from outside (`cancel`, `terminate`): it may land
    /// late, so the connection is not pooled for someone else.
    pub fn cancelled_from_outside(&mut self) {
        self.cancelled = true;
    }

    /// What cancels this session's running statement with [`cancel`],
    /// usable while the session itself is busy.
    pub fn cancel_token(&self) -> Option<tokio_postgres::CancelToken> {
        self.conn.as_ref().map(|c| c.client.cancel_token())
    }

    /// A statement that changes `DateStyle` or `bytea_output` turns the
    /// broker's own rendering of their types off for the rest of the
    /// session (also when it fails or is rolled back: PostgreSQL then
    /// prints them, which is always right).
    fn note_setting(&mut self, checked: &Checked) {
        if let Some(change) = &checked.verdict.setting {
            if crate::settings::changes_rendering(change) {
                self.rendering_changed = true;
            }
        }
    }

    /// Records that a statement failed inside the transaction.
    fn failed(&mut self, e: tokio_postgres::Error) -> RequestError {
        if self.txn == Txn::Open {
            self.txn = Txn::Failed;
        }
        RequestError::Postgres(e)
    }

    /// Converts placeholders and checks the statement with the guard.
    /// Sends nothing: when this fails, PostgreSQL never sees the statement
    /// and the transaction is as it was.
    ///
    /// A text seen before (with as many parameters, in a session of the
    /// same mode) is answered from the broker-wide cache
    /// ([`crate::analysis`]) without parsing it again.
    pub fn check(&self, sql: &str, nparams: usize) -> Result<Checked, Rejected> {
        let analysis = crate::analysis::analyze(sql, nparams, self.mode, &self.guard);
        let converted = match &analysis.result {
            Ok(converted) => converted,
            Err(e) => {
                return Err(Rejected {
                    error: RequestError::BadRequest(e.clone()),
                    what: None,
                })
            }
        };
        match &converted.verdict {
            Ok(verdict) => {
                let mut sql = converted.sql.clone();
                if let Some(change) = &verdict.setting {
                    let limits = crate::settings::SettingLimits {
                        statement_timeout_ms: self.key.statement_timeout_ms,
                        lock_timeout_ms: self.key.lock_timeout_ms,
                    };
                    match crate::settings::check(change, limits, &self.app_name) {
                        Ok(Some(own)) => sql = Arc::from(own),
                        Ok(None) => {}
                        Err(error) => {
                            return Err(Rejected {
                                error,
                                what: Some(format!("{} {}", verdict.kind, change.name)),
                            })
                        }
                    }
                }
                Ok(Checked {
                    sql,
                    verdict: verdict.clone(),
                    analysis: analysis.clone(),
                })
            }
            Err(r) => Err(Rejected {
                what: Some(r.what().to_owned()),
                error: refusal(r.clone(), self.mode),
            }),
        }
    }

    /// Begins the transaction if none is open and prepares a checked
    /// statement.
    async fn prepare(
        &mut self,
        checked: &Checked,
        params: &[Value],
    ) -> Result<Prepared, RequestError> {
        let sql = &checked.sql;
        // A dead pooled connection is replaced at the first BEGIN.
        if self.client()?.is_closed() && self.first_use.is_none() {
            return Err(RequestError::ConnectionLost);
        }
        self.begin_if_idle().await?;
        let cached = match self.conn()?.prepare_cached(sql).await {
            Ok(s) => s,
            Err(e) => return Err(self.failed(e)),
        };
        let statement = cached.statement;
        if statement.params().len() != params.len() {
            return Err(RequestError::BadRequest(format!(
                "statement has {} parameters but {} values were given",
                statement.params().len(),
                params.len()
            )));
        }
        Ok(Prepared {
            statement,
            params: params.iter().map(TextParam::from_json).collect(),
            columns: cached.columns,
        })
    }

    /// A statement failed on the server: the transaction is aborted, and a
    /// cached plan may be stale (after a schema change), so forget it.
    fn statement_failed(&mut self, sql: &str, e: tokio_postgres::Error) -> RequestError {
        if let Some(conn) = self.conn.as_mut() {
            conn.forget(sql);
        }
        self.failed(e)
    }

    /// Runs one statement and streams its result: a `columns` frame, `rows`
    /// chunks, and a `done` frame. On a request error, frames already sent
    /// stay sent; the caller follows them with the error frame.
    pub async fn query<W: AsyncWrite + Unpin>(
        &mut self,
        id: u64,
        checked: &Checked,
        params: &[Value],
        out: &mut FrameWriter<W>,
    ) -> Result<u64, Failure> {
        self.note_setting(checked);
        let Prepared {
            statement,
            params,
            columns,
        } = self.prepare(checked, params).await?;
        let writers: Vec<AnyWriter> = if self.text_values {
            // Version 2: PostgreSQL's text. Where the broker can write it
            // from the binary form for every column, it does (cheaper for
            // PostgreSQL); otherwise PostgreSQL writes it (`EXECUTE`).
            let rendering = if self.rendering_changed {
                Rendering::default()
            } else {
                self.conn()?.rendering
            };
            let text: Option<Vec<AnyWriter>> = statement
                .columns()
                .iter()
                .map(|c| TextWriter::for_type(c.type_(), rendering).map(AnyWriter::Text))
                .collect();
            match text {
                Some(writers) => writers,
                None => return self.query_text(id, checked, &statement, &params, out).await,
            }
        } else {
            statement
                .columns()
                .iter()
                .map(|c| AnyWriter::Json(CellWriter::for_type(c.type_())))
                .collect()
        };
        let (sql, verdict) = (&checked.sql, &checked.verdict);
        if let Some(c) = statement
            .columns()
            .iter()
            .find(|c| !self.text_values && !is_supported(c.type_()))
        {
            return Err(RequestError::BadRequest(format!(
                "column {:?} has type {}, which the broker cannot send as JSON; cast it, e.g. {}::text",
                c.name(),
                c.type_().name(),
                c.name()
            ))
            .into());
        }
        let stream = match self.client()?.query_raw(&statement, params.iter()).await {
            Ok(s) => s,
            Err(e) => return Err(self.statement_failed(sql, e).into()),
        };
        send_columns(out, id, &columns)
            .await
            .map_err(Failure::Client)?;

        pin_mut!(stream);
        let mut frames = RowsFrames::new(id, self.chunks, std::mem::take(&mut self.rows_buffer));
        loop {
            let row = match stream.try_next().await {
                Ok(Some(row)) => row,
                Ok(None) => break,
                Err(e) => {
                    // Rows already sent are the client's; the error frame
                    // that follows tells it the result is incomplete.
                    frames.flush(out).await?;
                    return Err(self.failed(e).into());
                }
            };
            frames.begin_row();
            for (i, writer) in writers.iter().enumerate() {
                frames.next_cell(i);
                let cell: RawCell<'_> = row.try_get(i).map_err(|e| self.failed(e))?;
                writer
                    .write(&mut frames.chunk, cell.0)
                    .map_err(|e| RequestError::Internal(e.to_string()))?;
            }
            match frames.end_row() {
                Err(what) => return Err(self.over_limit(&what)),
                Ok(true) => {
                    self.send_notices(id, out).await?;
                    frames.flush(out).await?
                }
                Ok(false) => {}
            }
        }
        frames.flush(out).await?;
        let total = frames.total;
        self.rows_buffer = frames.into_buffer();
        let count = stream.rows_affected().unwrap_or(total);
        self.send_notices(id, out).await?;
        send_done(out, id, count, verdict.kind).await?;
        Ok(count)
    }

    /// [`Session::query`] with every value as PostgreSQL's own text form:
    /// the statement, prepared as before (its plan cached, its columns'
    /// types known), runs as `EXECUTE name(literals)` in the simple query
    /// protocol, whose results are always text — the text psql prints and
    /// psycopg2 parses, in the session's `TimeZone`, `DateStyle`,
    /// `IntervalStyle`, `extra_float_digits` and `bytea_output`, for every
    /// type PostgreSQL can return (extensions' too). The parameters travel
    /// as `E'…'` literals that PostgreSQL converts by the parameters' types,
    /// as when they are bound as text.
    async fn query_text<W: AsyncWrite + Unpin>(
        &mut self,
        id: u64,
        checked: &Checked,
        statement: &tokio_postgres::Statement,
        params: &[TextParam],
        out: &mut FrameWriter<W>,
    ) -> Result<u64, Failure> {
        let (sql, verdict) = (&checked.sql, &checked.verdict);
        let Some(name) = statement_name(statement) else {
            return Err(RequestError::Internal(
                "cannot name the prepared statement to execute it".into(),
            )
            .into());
        };
        let mut execute = format!("EXECUTE {name}");
        if !params.is_empty() {
            let mut literals = Vec::with_capacity(params.len());
            for (i, p) in params.iter().enumerate() {
                match p.literal() {
                    Some(l) => literals.push(l),
                    None => {
                        return Err(RequestError::BadRequest(format!(
                        "parameter ${} contains a NUL character, which PostgreSQL text cannot hold",
                        i + 1
                    ))
                        .into())
                    }
                }
            }
            execute.push('(');
            execute.push_str(&literals.join(", "));
            execute.push(')');
        }
        let columns = columns_of(statement);
        let stream = match self.client()?.simple_query_raw(&execute).await {
            Ok(s) => s,
            Err(e) => return Err(self.statement_failed(sql, e).into()),
        };
        out.send(&Response::Columns { id, columns })
            .await
            .map_err(Failure::Client)?;
        pin_mut!(stream);
        let mut frames = RowsFrames::new(id, self.chunks, std::mem::take(&mut self.rows_buffer));
        let mut affected = None;
        loop {
            let row = match stream.try_next().await {
                Ok(Some(SimpleQueryMessage::Row(row))) => row,
                Ok(Some(SimpleQueryMessage::CommandComplete(n))) => {
                    affected = Some(n);
                    continue;
                }
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(e) => {
                    frames.flush(out).await?;
                    return Err(self.failed(e).into());
                }
            };
            frames.begin_row();
            for i in 0..row.len() {
                frames.next_cell(i);
                match row.try_get(i).map_err(|e| self.failed(e))? {
                    Some(text) => write_json_str(&mut frames.chunk, text),
                    None => frames.chunk.extend_from_slice(b"null"),
                }
            }
            match frames.end_row() {
                Err(what) => return Err(self.over_limit(&what)),
                Ok(true) => {
                    self.send_notices(id, out).await?;
                    frames.flush(out).await?
                }
                Ok(false) => {}
            }
        }
        frames.flush(out).await?;
        let total = frames.total;
        self.rows_buffer = frames.into_buffer();
        let count = affected.unwrap_or(total);
        self.send_notices(id, out).await?;
        send_done(out, id, count, verdict.kind).await?;
        Ok(count)
    }

    /// Runs one statement and answers with the rows it affected.
    pub async fn execute<W: AsyncWrite + Unpin>(
        &mut self,
        id: u64,
        checked: &Checked,
        params: &[Value],
        out: &mut FrameWriter<W>,
    ) -> Result<u64, Failure> {
        self.note_setting(checked);
        let Prepared {
            statement, params, ..
        } = self.prepare(checked, params).await?;
        let (sql, verdict) = (&checked.sql, &checked.verdict);
        let count = match self.client()?.execute_raw(&statement, params.iter()).await {
            Ok(n) => n,
            Err(e) => return Err(self.statement_failed(sql, e).into()),
        };
        self.send_notices(id, out).await?;
        send_done(out, id, count, verdict.kind).await?;
        Ok(count)
    }

    /// Commits the open transaction. A transaction that a failed statement
    /// aborted cannot commit: it is rolled back and the client told so.
    pub async fn commit(&mut self) -> Result<(), RequestError> {
        match self.txn {
            Txn::Idle => Ok(()),
            Txn::Open => {
                self.txn = Txn::Idle;
                self.client()?.batch_execute("COMMIT").await?;
                Ok(())
            }
            Txn::Failed => {
                self.rollback().await?;
                Err(RequestError::Aborted)
            }
        }
    }

    /// Runs one of the broker's savepoint statements (`SAVEPOINT "x"`,
    /// `RELEASE SAVEPOINT "x"`, `ROLLBACK TO SAVEPOINT "x"`), which it
    /// wrote itself from a validated name, in the transaction — begun
    /// first when none is open, as for any statement (psycopg2's
    /// semantics). A rollback to a savepoint heals a failed transaction,
    /// as in PostgreSQL.
    pub async fn savepoint<W: AsyncWrite + Unpin>(
        &mut self,
        id: u64,
        op: SavepointOp,
        name: &str,
        out: &mut FrameWriter<W>,
    ) -> Result<(), Failure> {
        if self.client()?.is_closed() && self.first_use.is_none() {
            return Err(RequestError::ConnectionLost.into());
        }
        self.begin_if_idle().await?;
        let sql = op.sql(name);
        let ran = self.client()?.batch_execute(&sql).await;
        self.send_notices(id, out).await?;
        match ran {
            Ok(()) => {
                if op == SavepointOp::RollbackTo {
                    self.txn = Txn::Open;
                }
                Ok(())
            }
            Err(e) => Err(self.failed(e).into()),
        }
    }

    /// Rolls back the open transaction, if any.
    pub async fn rollback(&mut self) -> Result<(), RequestError> {
        // An unfinished COPY FROM STDIN is abandoned first.
        self.copy_in = None;
        if self.txn != Txn::Idle {
            self.txn = Txn::Idle;
            if self.client()?.is_closed() {
                // The server has dropped the connection, and with it the
                // transaction: nothing was committed.
                return Err(RequestError::ConnectionLost);
            }
            self.client()?.batch_execute("ROLLBACK").await?;
        }
        Ok(())
    }

    /// Rolls back what is open and ends the session. The server connection
    /// goes back to the pool only when the rollback worked; its reset runs
    /// on afterwards, and the next session to take it waits for it
    /// ([`ServerConn::ready`]). A connection this session never used goes
    /// back as it came.
    pub async fn close(mut self) -> Result<(), RequestError> {
        let result = self.rollback().await;
        let Some(mut conn) = self.conn.take() else {
            return result;
        };
        if result.is_err() || conn.client.is_closed() || self.cancelled || self.lease.is_some() {
            conn.discard();
            return result;
        }
        if self.first_use.is_none() {
            conn.reset_in_background();
        }
        self.pool.put(self.key.clone(), conn);
        result
    }
}

/// The savepoint operations of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SavepointOp {
    /// `SAVEPOINT`.
    Define,
    /// `RELEASE SAVEPOINT`.
    Release,
    /// `ROLLBACK TO SAVEPOINT`.
    RollbackTo,
}

impl SavepointOp {
    /// The statement's kind, for the audit.
    pub fn kind(self) -> &'static str {
        match self {
            SavepointOp::Define => "SAVEPOINT",
            SavepointOp::Release => "RELEASE SAVEPOINT",
            SavepointOp::RollbackTo => "ROLLBACK TO SAVEPOINT",
        }
    }

    /// The statement for savepoint `name` (quoted as an identifier).
    pub fn sql(self, name: &str) -> String {
        format!("{} \"{}\"", self.kind(), name.replace('"', "\"\""))
    }

    /// Checks a savepoint name: what PostgreSQL accepts as a quoted
    /// identifier, without the truncation it would apply silently.
    pub fn check_name(name: &str) -> Result<(), RequestError> {
        if name.is_empty() || name.len() > 63 || name.contains('\0') {
            return Err(RequestError::BadRequest(format!(
                "a savepoint name must be 1 to 63 bytes without NUL, not {:?}",
                name.chars().take(80).collect::<String>()
            )));
        }
        Ok(())
    }
}

/// Asks the server to cancel the statement running on `token`'s connection
/// (sent when this returns, at most 2 s; the server acts on it shortly
/// after, and ignores it if the connection is idle by then).
pub async fn cancel(token: tokio_postgres::CancelToken) {
    match tokio::time::timeout(Duration::from_secs(2), token.cancel_query(NoTls)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => debug!(cause = %e, "cancel request failed"),
        Err(_) => debug!("cancel request timed out"),
    }
}

/// Connection attempts in progress at once per server (address and port).
/// A burst of opens — every tool reconnecting after a restart — would
/// otherwise start hundreds of authentications at once, each slowed down by
/// all the others until most of them time out and are retried, which keeps
/// the server as busy as before (500 at once on two cores: most failed).
/// Queued, they finish one after another at the rate the server accepts
/// them. Waiting for a slot counts against `connect_timeout_ms`; a pooled
/// connection needs no slot.
const CONNECTING_PER_SERVER: usize = 8;

fn connect_slots(addr: IpAddr, port: u16) -> Arc<tokio::sync::Semaphore> {
    type Slots = std::collections::HashMap<(IpAddr, u16), Arc<tokio::sync::Semaphore>>;
    static SLOTS: std::sync::OnceLock<std::sync::Mutex<Slots>> = std::sync::OnceLock::new();
    crate::sync::lock(SLOTS.get_or_init(Default::default))
        .entry((addr, port))
        .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(CONNECTING_PER_SERVER)))
        .clone()
}

/// `name` cut to PostgreSQL's limit for `application_name` (63 bytes), at a
/// character boundary.
pub fn application_name_cut(mut name: String) -> String {
    if name.len() > 63 {
        let mut cut = 63;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name.truncate(cut);
    }
    name
}

/// The settings `ALTER DATABASE … SET` and `ALTER ROLE … SET` give a new
/// connection as this user to this database, as one text; then what
/// [`Rendering`] needs of the connection's own.
pub const SETTINGS_SQL: &str = "SELECT coalesce(string_agg(pg_catalog.array_to_string(s.setconfig, ','), ';' \
     ORDER BY s.setdatabase, s.setrole), ''), \
     pg_catalog.current_setting('DateStyle') LIKE 'ISO%', \
     pg_catalog.current_setting('bytea_output') = 'hex', pg_catalog.pg_backend_pid() \
     FROM pg_catalog.pg_db_role_setting s \
     WHERE s.setdatabase IN (0, (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database())) \
       AND s.setrole IN (0, (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = session_user))";

/// How a connection renders values, from [`SETTINGS_SQL`]'s answer (the
/// guard refuses `SET` of `DateStyle` and `bytea_output`, and the pool's
/// reset restores them, so it holds for the connection's life).
fn rendering_of(rows: &[SimpleQueryMessage]) -> Rendering {
    rows.iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(Rendering {
                iso_dates: row.get(1) == Some("t"),
                hex_bytea: row.get(2) == Some("t"),
            }),
            _ => None,
        })
        .unwrap_or_default()
}

fn backend_pid_of(rows: &[SimpleQueryMessage]) -> Option<i32> {
    rows.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => row.get(3).and_then(|p| p.parse().ok()),
        _ => None,
    })
}

fn settings_of(rows: &[SimpleQueryMessage]) -> String {
    rows.iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .unwrap_or_default()
}

/// The `columns` frame's list of a prepared statement's result, as JSON.
pub(crate) fn columns_json(statement: &tokio_postgres::Statement) -> Arc<str> {
    // Names and type names are strings, the oid a number: this does not
    // fail.
    serde_json::to_string(&columns_of(statement))
        .unwrap_or_else(|_| "[]".to_owned())
        .into()
}

/// Starts a frame written by hand: `{"type":"TYPE","id":ID` (the fields
/// in the order `Response`'s serde form has them).
fn frame_head(out: &mut Vec<u8>, frame_type: &str, id: u64) {
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(frame_type.as_bytes());
    out.extend_from_slice(b"\",\"id\":");
    out.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
}

/// A `columns` frame from its list serialized before ([`columns_json`]):
/// the bytes `Response::Columns` encodes to.
async fn send_columns<W: AsyncWrite + Unpin>(
    out: &mut FrameWriter<W>,
    id: u64,
    columns: &str,
) -> std::io::Result<()> {
    let mut line = Vec::with_capacity(columns.len() + 48);
    frame_head(&mut line, "columns", id);
    line.extend_from_slice(b",\"columns\":");
    line.extend_from_slice(columns.as_bytes());
    line.extend_from_slice(b"}\n");
    out.send_raw(&line).await
}

/// A prepared statement's result columns as the protocol describes them.
fn columns_of(statement: &tokio_postgres::Statement) -> Vec<Column> {
    statement
        .columns()
        .iter()
        .map(|c| Column {
            name: c.name().to_owned(),
            type_name: c.type_().name().to_owned(),
            oid: Some(c.type_().oid()),
        })
        .collect()
}

/// The server-side name of a prepared statement. tokio-postgres keeps it
/// to itself but shows it in `Debug` (`Statement { name: "s12", … }`);
/// `None` if that ever changes (the text path then answers an internal
/// error, which a test would catch).
fn statement_name(statement: &tokio_postgres::Statement) -> Option<String> {
    let shown = format!("{statement:?}");
    let name = shown.split_once("name: \"")?.1.split_once('"')?.0;
    let plain = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    plain.then(|| name.to_owned())
}

/// A new connection to `target`, named `application_name` until a session
/// names it.
pub(crate) async fn connect(
    target: &ServerTarget,
    password: &Password,
    application_name: &str,
    settings: &SessionSettings,
) -> Result<ServerConn, RequestError> {
    let connect_timeout = settings.connect_timeout;
    // A place under the server's cap first (fair queue, bounded wait).
    let permit = crate::fairness::server_permit(target.addr, target.port, settings.owner_uid)
        .await
        .map_err(RequestError::Busy)?;
    let mut temp_file_limit_kb = settings.temp_file_limit_kb;
    if crate::fairness::temp_file_limit_refused(target.addr, target.port, &target.user) {
        temp_file_limit_kb = 0;
    }
    let (client, connection) = loop {
        let mut config = tokio_postgres::Config::new();
        // Timeouts are startup options: the session starts with them, and the
        // guard refuses every way of changing them (SET, set_config).
        config.options(format!(
            "-c statement_timeout={} -c idle_in_transaction_session_timeout={} -c lock_timeout={}{}",
            settings.statement_timeout_ms,
            settings.idle_in_transaction_timeout_ms,
            settings.lock_timeout_ms,
            crate::fairness::server_options(settings.work_mem_kb, temp_file_limit_kb)
        ));
        config
            .hostaddr(target.addr)
            .port(target.port)
            .user(&target.user)
            .password(password.expose())
            .dbname(&target.dbname)
            .application_name(application_name)
            .connect_timeout(connect_timeout);
        let slots = connect_slots(target.addr, target.port);
        let attempt = async {
            // Held through authentication only.
            if slots.available_permits() == 0 {
                crate::stats::CONNECT_WAITS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            let _slot = slots.acquire().await;
            config.connect(NoTls).await
        };
        match tokio::time::timeout(connect_timeout, attempt).await {
            Ok(Ok(pair)) => break pair,
            // `temp_file_limit` is a superuser's setting: a login that may
            // not set it (PostgreSQL < 15, or no GRANT SET ON PARAMETER)
            // connects without it, and the broker remembers.
            Ok(Err(source))
                if temp_file_limit_kb > 0
                    && source.as_db_error().is_some_and(|db| {
                        db.code().code() == "42501" && db.message().contains("temp_file_limit")
                    }) =>
            {
                crate::fairness::note_temp_file_limit_refused(
                    target.addr,
                    target.port,
                    &target.user,
                );
                temp_file_limit_kb = 0;
            }
            Ok(Err(source)) => {
                return Err(RequestError::Connect {
                    target: target.to_string(),
                    source,
                })
            }
            Err(_) => {
                return Err(RequestError::Limit(format!(
                    "connecting to {target} took longer than {} ms",
                    connect_timeout.as_millis()
                )))
            }
        }
    };
    // PostgreSQL reports it at startup (and whenever the session
    // authorization changes, which the guard refuses).
    let superuser = connection.parameter("is_superuser") != Some("off");
    let notices = Arc::new(crate::notices::NoticeQueue::default());
    let connection = tokio::spawn(crate::notices::drive(connection, notices.clone()));
    if let Some(role) = &settings.db_role {
        // The one guarantee PostgreSQL itself gives: a role without write
        // privileges. The guard refuses SET ROLE and RESET ROLE, and the
        // pool's reset keeps the role, so the client cannot switch back.
        let set_role = format!("SET ROLE \"{}\"", role.replace('"', "\"\""));
        if let Err(source) = client.batch_execute(&set_role).await {
            connection.abort();
            return Err(RequestError::Connect {
                target: format!("{target} (SET ROLE {role})"),
                source,
            });
        }
    }
    // What this connection renders values in (see `begin_first`).
    let (settings, rendering, backend_pid) = match client.simple_query(SETTINGS_SQL).await {
        Ok(rows) => (
            settings_of(&rows),
            rendering_of(&rows),
            backend_pid_of(&rows),
        ),
        Err(_) => (String::new(), Rendering::default(), None),
    };
    crate::fairness::learn_cap_from(target.addr, target.port, &client).await;
    let mut conn = ServerConn::new(client, connection, superuser);
    conn.permit = Some(permit);
    conn.notices = notices;
    conn.settings = settings;
    conn.rendering = rendering;
    conn.backend_pid = backend_pid;
    Ok(conn)
}

/// How one column's cells are written: version 1's typed JSON, or version
/// 2's text.
enum AnyWriter {
    Json(CellWriter),
    Text(TextWriter),
}

impl AnyWriter {
    fn write(
        &self,
        out: &mut Vec<u8>,
        raw: Option<&[u8]>,
    ) -> Result<(), crate::types::DecodeError> {
        match self {
            AnyWriter::Json(w) => w.write(out, raw),
            AnyWriter::Text(w) => w.write(out, raw),
        }
    }
}

/// The `rows` frames of one result, written straight into a buffer: a
/// frame is sent when it holds `rows_per_chunk` rows or `chunk_bytes`
/// bytes, and the result's limits (`max_result_rows`, `max_result_bytes`)
/// are checked after every row.
struct RowsFrames {
    prefix: Vec<u8>,
    chunk: Vec<u8>,
    in_chunk: usize,
    total: u64,
    sent_bytes: u64,
    limits: ChunkLimits,
}

impl RowsFrames {
    /// Frames of the result of `id`, written into `buffer` (its contents
    /// are dropped, its capacity used).
    fn new(id: u64, limits: ChunkLimits, buffer: Vec<u8>) -> RowsFrames {
        let mut chunk = buffer;
        chunk.clear();
        chunk.reserve(limits.bytes + 1024);
        RowsFrames {
            prefix: {
                let mut p = Vec::with_capacity(40);
                frame_head(&mut p, "rows", id);
                p.extend_from_slice(b",\"rows\":[");
                p
            },
            chunk,
            in_chunk: 0,
            total: 0,
            sent_bytes: 0,
            limits,
        }
    }

    fn begin_row(&mut self) {
        if self.in_chunk == 0 {
            self.chunk.extend_from_slice(&self.prefix);
        } else {
            self.chunk.push(b',');
        }
        self.chunk.push(b'[');
    }

    fn next_cell(&mut self, i: usize) {
        if i > 0 {
            self.chunk.push(b',');
        }
    }

    /// Ends a row: `Ok(true)` when the frame is full and should be sent,
    /// `Err(what)` when the result is over a limit.
    fn end_row(&mut self) -> Result<bool, String> {
        self.chunk.push(b']');
        self.in_chunk += 1;
        self.total += 1;
        let l = self.limits;
        if l.max_rows > 0 && self.total > l.max_rows {
            return Err(format!("{} rows", l.max_rows));
        }
        if l.max_bytes > 0 && self.sent_bytes + self.chunk.len() as u64 > l.max_bytes {
            return Err(format!("{} bytes", l.max_bytes));
        }
        Ok(self.in_chunk >= l.rows || self.chunk.len() >= l.bytes)
    }

    /// The buffer, for the next result (unless a huge row grew it).
    fn into_buffer(self) -> Vec<u8> {
        if self.chunk.capacity() <= 1 << 20 {
            self.chunk
        } else {
            Vec::new()
        }
    }

    async fn flush<W: AsyncWrite + Unpin>(
        &mut self,
        out: &mut FrameWriter<W>,
    ) -> Result<(), Failure> {
        self.sent_bytes += self.chunk.len() as u64;
        flush_chunk(out, &mut self.chunk, &mut self.in_chunk).await
    }
}

async fn flush_chunk<W: AsyncWrite + Unpin>(
    out: &mut FrameWriter<W>,
    chunk: &mut Vec<u8>,
    in_chunk: &mut usize,
) -> Result<(), Failure> {
    if *in_chunk == 0 {
        return Ok(());
    }
    chunk.extend_from_slice(b"]}\n");
    out.send_raw(chunk).await.map_err(Failure::Client)?;
    chunk.clear();
    *in_chunk = 0;
    Ok(())
}

async fn send_done<W: AsyncWrite + Unpin>(
    out: &mut FrameWriter<W>,
    id: u64,
    rows: u64,
    command: &str,
) -> Result<(), Failure> {
    let mut line = Vec::with_capacity(64);
    frame_head(&mut line, "done", id);
    line.extend_from_slice(b",\"rows\":");
    line.extend_from_slice(itoa::Buffer::new().format(rows).as_bytes());
    line.extend_from_slice(b",\"command\":");
    write_json_str(&mut line, command);
    line.extend_from_slice(b"}\n");
    out.send_raw(&line).await.map_err(Failure::Client)
}

/// The guard's refusal as the client's error: a write in a read session is
/// what PostgreSQL would say (25006, psycopg2's ReadOnlySqlTransaction); a
/// syntax error is PostgreSQL's 42601; the rest is `forbidden_statement`.
fn refusal(r: Refusal, mode: Mode) -> RequestError {
    match r.kind() {
        RefusalKind::NeedsWrite | RefusalKind::NeedsDdl if mode == Mode::Read => {
            RequestError::ReadOnly(read_only_message(r.what()))
        }
        RefusalKind::Syntax => RequestError::Syntax(r.to_string(), r.position()),
        _ => RequestError::Forbidden(r.to_string()),
    }
}

/// PostgreSQL's own words for a write in a read-only transaction, which
/// tools match on: `cannot execute UPDATE in a read-only transaction`,
/// `… SELECT FOR UPDATE …`, `… nextval() …`.
fn read_only_message(what: &str) -> String {
    let what = if what.starts_with("FOR ") {
        format!("SELECT {what}")
    } else if what
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        format!("{what}()")
    } else {
        what.to_owned()
    };
    format!("cannot execute {what} in a read-only transaction")
}

// Change requests (`approval/`): their dry run and their execution run
// statements with no client to stream to.
impl Session {
    /// Runs SQL the broker wrote itself — never a client's text, so the
    /// guard does not see it: the content check of change requests, built
    /// from a statement the guard allowed — in the session's transaction,
    /// with the client's parameter values, and returns every row with its
    /// columns as text (each column must be of type `text`).
    pub(crate) async fn broker_rows(
        &mut self,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<Vec<Option<String>>>, RequestError> {
        if self.client()?.is_closed() && self.first_use.is_none() {
            return Err(RequestError::ConnectionLost);
        }
        self.begin_if_idle().await?;
        let statement = match self.conn()?.prepare(sql).await {
            Ok(s) => s,
            Err(e) => return Err(self.failed(e)),
        };
        let params: Vec<TextParam> = params.iter().map(TextParam::from_json).collect();
        let rows = match self.client()?.query_raw(&statement, params.iter()).await {
            Ok(stream) => stream.try_collect::<Vec<_>>().await,
            Err(e) => Err(e),
        };
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => return Err(self.statement_failed(sql, e)),
        };
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut cells = Vec::with_capacity(row.len());
            for i in 0..row.len() {
                match row.try_get::<_, Option<String>>(i) {
                    Ok(v) => cells.push(v),
                    Err(e) => return Err(self.statement_failed(sql, e)),
                }
            }
            out.push(cells);
        }
        Ok(out)
    }

    /// Runs a checked statement in the broker's transaction and returns the
    /// rows it affected (or returned), sending no frames.
    pub async fn execute_counted(
        &mut self,
        checked: &Checked,
        params: &[Value],
    ) -> Result<u64, RequestError> {
        let Prepared {
            statement, params, ..
        } = self.prepare(checked, params).await?;
        match self.client()?.execute_raw(&statement, params.iter()).await {
            Ok(n) => Ok(n),
            Err(e) => Err(self.statement_failed(&checked.sql, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cached_columns_list_makes_the_frame_serde_makes() {
        let columns = vec![
            Column {
                name: "username".into(),
                type_name: "varchar".into(),
                oid: Some(1043),
            },
            Column {
                name: "ünïcode \"quoted\"\n".into(),
                type_name: "_text".into(),
                oid: Some(1009),
            },
        ];
        let json = serde_json::to_string(&columns).unwrap();
        let mut out = FrameWriter::new(Vec::new());
        send_columns(&mut out, 18_446_744_073_709_551_615, &json)
            .await
            .unwrap();
        out.flush().await.unwrap();
        let expected = Response::Columns {
            id: u64::MAX,
            columns,
        }
        .encode();
        assert_eq!(String::from_utf8(out.into_inner()).unwrap(), expected);
    }
}
