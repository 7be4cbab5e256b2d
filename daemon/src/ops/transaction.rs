//! `commit`, `rollback` and `close`.

use super::{send, session_of, Reply};
use crate::conn::{ClientConnection, Next};
use iam_pgbroker_proto::Response;
use tracing::info;

pub async fn commit(conn: &mut ClientConnection, id: u64) -> Result<Next, Reply> {
    let open = session_of(&mut conn.session)?;
    open.session.commit().await?;
    info!(session = %open.id, "commit");
    send(conn, &Response::Ok { id }).await
}

pub async fn rollback(conn: &mut ClientConnection, id: u64) -> Result<Next, Reply> {
    let open = session_of(&mut conn.session)?;
    open.session.rollback().await?;
    info!(session = %open.id, "rollback");
    send(conn, &Response::Ok { id }).await
}

/// Rolls back and ends the session; the connection closes after the answer.
/// `close` without a session is fine: it just ends the connection.
pub async fn close(conn: &mut ClientConnection, id: u64) -> Result<Next, Reply> {
    if let Some(open) = conn.session.take() {
        conn.broker.stats().session_closed(conn.peer.uid, &open.db);
        let result = open.session.close().await;
        info!(session = %open.id, "session closed by the client");
        result?;
    }
    conn.closing = Some(crate::conn::CloseReason::ClientClose);
    send(conn, &Response::Ok { id }).await?;
    let _ = conn.out.flush().await;
    Ok(Next::Close)
}
