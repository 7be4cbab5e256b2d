//! The protocol's operations, one file each (`open.rs`, `statement.rs`,
//! `transaction.rs`, `approval.rs`); `hello` and `ping` are one-liners here.

mod approval;
mod copy;
mod open;
mod savepoint;
mod statement;
mod transaction;

use crate::conn::{ClientConnection, Next};
use crate::error::RequestError;
use iam_pgbroker_proto::{Op, Request, Response, OLDEST_PROTOCOL_VERSION, PROTOCOL_VERSION};

/// Runs one request and queues its answer.
pub async fn dispatch(conn: &mut ClientConnection, request: Request) -> Next {
    let id = request.id;
    let op = request.op.name();
    let records_own = records_own_refusals(&request.op);
    // While a COPY FROM STDIN waits for its data, only its data and its
    // end (or the end of the session) may come.
    let copying = conn.session.as_ref().is_some_and(|s| s.session.copying());
    if copying
        && !matches!(
            request.op,
            Op::CopyData { .. } | Op::CopyDone | Op::CopyFail { .. } | Op::Close | Op::Ping
        )
    {
        let e = RequestError::BadRequest(format!(
            "a COPY FROM STDIN is in progress: send copy_data, copy_done or copy_fail, not {op}"
        ));
        return match conn
            .out
            .send(&Response::Error {
                id: Some(id),
                error: e.to_wire(),
            })
            .await
        {
            Ok(()) => Next::Continue,
            Err(_) => Next::Close,
        };
    }
    let result = match request.op {
        Op::Hello { version, .. } if version < OLDEST_PROTOCOL_VERSION => {
            Err(Reply::Error(RequestError::BadRequest(format!(
                "protocol version {version} is not spoken here; this broker speaks versions \
                 {OLDEST_PROTOCOL_VERSION} to {PROTOCOL_VERSION}"
            ))))
        }
        Op::Hello { version, .. } => {
            // The highest version both speak: an old client keeps the
            // values it knows (version 1), a new one gets every type.
            conn.protocol = version.min(PROTOCOL_VERSION);
            let frame = Response::Hello {
                id,
                version: conn.protocol,
                server: concat!("iam-pgbroker/", env!("CARGO_PKG_VERSION")).into(),
                max_line_bytes: conn.broker.config().limits.max_line_bytes,
            };
            send(conn, &frame).await
        }
        Op::Ping => send(conn, &Response::Pong { id }).await,
        Op::Status => status(conn, id).await,
        Op::Open(params) => open::open(conn, id, params).await,
        Op::Query { sql, params } => {
            let live = conn.live.clone();
            if let Some(l) = &live {
                l.statement_started(&sql);
            }
            let started = std::time::Instant::now();
            let ran = statement::run(conn, id, &sql, &params, statement::Kind::Query).await;
            crate::stats::STATEMENT_LATENCY.observe(started.elapsed());
            statement_ended(conn, live.as_deref());
            ran
        }
        Op::Execute { sql, params } => {
            let live = conn.live.clone();
            if let Some(l) = &live {
                l.statement_started(&sql);
            }
            let started = std::time::Instant::now();
            let ran = statement::run(conn, id, &sql, &params, statement::Kind::Execute).await;
            crate::stats::STATEMENT_LATENCY.observe(started.elapsed());
            statement_ended(conn, live.as_deref());
            ran
        }
        Op::Commit => {
            let done = transaction::commit(conn, id).await;
            if let Some(l) = &conn.live {
                l.transaction_ended();
            }
            done
        }
        Op::Rollback => {
            let done = transaction::rollback(conn, id).await;
            if let Some(l) = &conn.live {
                l.transaction_ended();
            }
            done
        }
        Op::Sessions => sessions(conn, id).await,
        Op::Instances => instances(conn, id).await,
        Op::Cancel { session } => cancel(conn, id, &session, false).await,
        Op::Terminate { session } => cancel(conn, id, &session, true).await,
        Op::Close => transaction::close(conn, id).await,
        Op::CopyOut { sql } => copy::copy_out(conn, id, &sql).await,
        Op::CopyIn { sql } => copy::copy_in(conn, id, &sql).await,
        Op::CopyData { data } => copy::copy_data(conn, data).await,
        Op::CopyDone => copy::copy_end(conn, id, None).await,
        Op::CopyFail { message } => copy::copy_end(conn, id, Some(&message)).await,
        Op::Savepoint { name } => {
            savepoint::run(conn, id, crate::session::SavepointOp::Define, &name).await
        }
        Op::ReleaseSavepoint { name } => {
            savepoint::run(conn, id, crate::session::SavepointOp::Release, &name).await
        }
        Op::RollbackToSavepoint { name } => {
            savepoint::run(conn, id, crate::session::SavepointOp::RollbackTo, &name).await
        }
        Op::RequestSubmit(params) => approval::submit(conn, id, params).await,
        Op::RequestList { all } => approval::list(conn, id, all).await,
        Op::RequestShow { request } => approval::show(conn, id, &request).await,
        Op::RequestApprove { request, comment } => {
            approval::approve(conn, id, &request, comment).await
        }
        Op::RequestReject { request, comment } => {
            approval::reject(conn, id, &request, &comment).await
        }
        Op::RequestCancel { request } => approval::cancel(conn, id, &request).await,
    };
    match result {
        Ok(next) => next,
        Err(Reply::Error(e)) => {
            let info = e.to_wire();
            conn.broker.stats().error(info.code.as_str());
            if is_refusal(&info, records_own) {
                crate::conn::record_refusal(
                    &conn.broker,
                    &conn.audit_peer,
                    conn.peer.uid,
                    Some(id),
                    op,
                    &info,
                );
            }
            tracing::info!(op, code = %info.code, message = %info.message, "request failed");
            if crate::fairness::over_refusal_limit(conn.peer.uid) {
                // A flood of refusals is slowed down, not only summarised.
                tokio::time::sleep(crate::fairness::REFUSAL_TARPIT).await;
            }
            match conn
                .out
                .send(&Response::Error {
                    id: Some(id),
                    error: info,
                })
                .await
            {
                Ok(()) => Next::Continue,
                Err(_) => Next::Close,
            }
        }
        Err(Reply::ClientGone) => Next::Close,
    }
}

/// Which refusals an operation records itself: statements and
/// transactions their `statement_refused`/`result`, `open` its
/// `session_refused` (all but the malformed), change requests their
/// `request_refused` (all but the malformed and the unknown).
#[derive(Clone, Copy)]
enum OwnRecords {
    None,
    AllButMalformed,
    All,
}

fn records_own_refusals(op: &Op) -> OwnRecords {
    match op {
        Op::Query { .. } | Op::Execute { .. } | Op::Commit | Op::Rollback | Op::Close => {
            OwnRecords::All
        }
        Op::Open(_)
        | Op::RequestSubmit(_)
        | Op::RequestApprove { .. }
        | Op::RequestReject { .. }
        | Op::RequestCancel { .. } => OwnRecords::AllButMalformed,
        _ => OwnRecords::None,
    }
}

/// Whether an error answer is a refusal the audit must have (its own
/// `refused` record, or a count in the summary).
fn is_refusal(info: &iam_pgbroker_proto::ErrorInfo, own: OwnRecords) -> bool {
    use iam_pgbroker_proto::ErrorCode as C;
    let refusal = matches!(
        info.code,
        C::Denied | C::BadRequest | C::Busy | C::NotFound | C::Limit
    );
    match own {
        OwnRecords::All => false,
        OwnRecords::AllButMalformed => refusal && info.code == C::BadRequest,
        OwnRecords::None => refusal,
    }
}

/// `status`: counters and pools, for root and the admin group only.
fn statement_ended(conn: &ClientConnection, live: Option<&crate::live::LiveSession>) {
    if let Some(l) = live {
        l.statement_ended(
            conn.session
                .as_ref()
                .is_some_and(|s| s.session.in_transaction()),
        );
    }
}

/// Root, or a member of `[server] admin_group`.
fn is_admin(conn: &ClientConnection) -> bool {
    let config = conn.broker.config();
    conn.peer.uid == 0
        || config.server.admin_group.as_deref().is_some_and(|g| {
            conn.peer
                .groups
                .iter()
                .any(|pg| pg.name.as_deref() == Some(g))
        })
}

/// `instances`: what the caller's rules name, for shell completion; a
/// rule's `"*"` stands for the instances whose containers run now.
async fn instances(conn: &mut ClientConnection, id: u64) -> Result<Next, Reply> {
    let config = conn.broker.config();
    let mut names = std::collections::BTreeSet::new();
    let mut any = false;
    for rule in config
        .policy
        .rules()
        .iter()
        .filter(|r| r.matches(&conn.peer))
    {
        for db in &rule.dbs {
            if db == "*" {
                any = true;
            } else {
                names.insert(db.clone());
            }
        }
    }
    if any {
        // Best effort: without Docker, the named ones.
        if let Ok(running) = conn
            .broker
            .resolver()
            .running_instances(&config.docker.container)
            .await
        {
            names.extend(running);
        }
    }
    let instances = names.into_iter().collect();
    send(conn, &Response::Instances { id, instances }).await
}

/// `sessions`: every open session (root and the admin group only).
async fn sessions(conn: &mut ClientConnection, id: u64) -> Result<Next, Reply> {
    if !is_admin(conn) {
        let config = conn.broker.config();
        return Err(RequestError::Denied(format!(
            "{} may not list the broker's sessions: root and members of {} only",
            conn.peer.describe(),
            config.server.admin_group.as_deref().unwrap_or("no group")
        ))
        .into());
    }
    let sessions = conn.broker.live().views();
    send(conn, &Response::Sessions { id, sessions }).await
}

/// `cancel` (the session's own OS user, or an admin) and `terminate` (an
/// admin): each recorded in the audit, refused ones too.
async fn cancel(
    conn: &mut ClientConnection,
    id: u64,
    session: &str,
    terminate: bool,
) -> Result<Next, Reply> {
    let (verb, event) = if terminate {
        ("terminate", crate::audit::AuditEvent::SessionTerminate)
    } else {
        ("cancel", crate::audit::AuditEvent::SessionCancel)
    };
    let target = conn.broker.live().get(session);
    let allowed = is_admin(conn)
        || (!terminate && target.as_ref().is_some_and(|t| t.peer.uid == conn.peer.uid));
    let error = match &target {
        _ if !allowed => Some(RequestError::Denied(format!(
            "{} may not {verb} session {session}: {}",
            conn.peer.describe(),
            if terminate {
                "root and the admin group only"
            } else {
                "only its own OS user, root and the admin group"
            }
        ))),
        None => Some(RequestError::NotFound(format!("no open session {session}"))),
        Some(_) => None,
    };
    let info = error.as_ref().map(RequestError::to_wire);
    let record = crate::audit::AuditRecord {
        session: Some(session),
        request: Some(id),
        peer: Some(&conn.audit_peer),
        outcome: Some(match &info {
            Some(info) => crate::audit::Outcome::error(info, None),
            None => crate::audit::Outcome::ok(None, None),
        }),
        ..crate::audit::AuditRecord::new(event)
    };
    // Fail closed: what is not recorded is not done.
    conn.broker
        .audit()
        .record(&record)
        .map_err(RequestError::Audit)?;
    if let Some(e) = error {
        return Err(e.into());
    }
    if let Some(t) = target {
        tracing::info!(session, by = %conn.peer.describe(), "{verb} of a session");
        t.cancel();
        if terminate {
            t.terminate.notify_one();
        }
    }
    send(conn, &Response::Ok { id }).await
}

async fn status(conn: &mut ClientConnection, id: u64) -> Result<Next, Reply> {
    let config = conn.broker.config();
    let admin = is_admin(conn);
    if !admin {
        return Err(RequestError::Denied(format!(
            "{} may not read the broker's status: root and members of {} only",
            conn.peer.describe(),
            config.server.admin_group.as_deref().unwrap_or("no group")
        ))
        .into());
    }
    let status = conn.broker.status_json();
    send(conn, &Response::Status { id, status }).await
}

/// How an operation failed.
pub enum Reply {
    /// Answer with this error.
    Error(RequestError),
    /// The client cannot be written to.
    ClientGone,
}

impl From<RequestError> for Reply {
    fn from(e: RequestError) -> Self {
        Reply::Error(e)
    }
}

impl From<crate::docker::DockerError> for Reply {
    fn from(e: crate::docker::DockerError) -> Self {
        Reply::Error(e.into())
    }
}

impl From<crate::secrets::SecretError> for Reply {
    fn from(e: crate::secrets::SecretError) -> Self {
        Reply::Error(e.into())
    }
}

async fn send(conn: &mut ClientConnection, frame: &Response) -> Result<Next, Reply> {
    conn.out
        .send(frame)
        .await
        .map(|()| Next::Continue)
        .map_err(|_| Reply::ClientGone)
}

/// The open session, or the error for a statement sent before `open`.
fn session_of(
    session: &mut Option<crate::conn::OpenSession>,
) -> Result<&mut crate::conn::OpenSession, Reply> {
    session.as_mut().ok_or_else(|| {
        Reply::Error(RequestError::BadRequest(
            "no session is open: send `open` first".into(),
        ))
    })
}
