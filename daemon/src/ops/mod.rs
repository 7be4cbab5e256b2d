//! The protocol's operations, one file each (`open.rs`, `statement.rs`,
//! `transaction.rs`, `approval.rs`); `hello` and `ping` are one-liners here.

mod approval;
mod open;
mod statement;
mod transaction;

use crate::conn::{ClientConnection, Next};
use crate::error::RequestError;
use iam_pgbroker_proto::{Op, Request, Response, OLDEST_PROTOCOL_VERSION, PROTOCOL_VERSION};

/// Runs one request and queues its answer.
pub async fn dispatch(conn: &mut ClientConnection, request: Request) -> Next {
    let id = request.id;
    let op = request.op.name();
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
            statement::run(conn, id, &sql, &params, statement::Kind::Query).await
        }
        Op::Execute { sql, params } => {
            statement::run(conn, id, &sql, &params, statement::Kind::Execute).await
        }
        Op::Commit => transaction::commit(conn, id).await,
        Op::Rollback => transaction::rollback(conn, id).await,
        Op::Close => transaction::close(conn, id).await,
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
            tracing::info!(op, code = %info.code, message = %info.message, "request failed");
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

/// `status`: counters and pools, for root and the admin group only.
async fn status(conn: &mut ClientConnection, id: u64) -> Result<Next, Reply> {
    let config = conn.broker.config();
    let admin = conn.peer.uid == 0
        || config.server.admin_group.as_deref().is_some_and(|g| {
            conn.peer
                .groups
                .iter()
                .any(|pg| pg.name.as_deref() == Some(g))
        });
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
