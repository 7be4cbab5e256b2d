//! `commit`, `rollback` and `close`, each in the audit.

use super::{send, session_of, Reply};
use crate::audit::{AuditEvent, AuditRecord, Outcome};
use crate::conn::{ClientConnection, CloseReason, Next};
use crate::error::RequestError;
use iam_pgbroker_proto::Response;
use std::time::Instant;
use tracing::info;

/// Commits. Fail closed: a commit whose record cannot be written is not
/// done (the transaction stays open; the client may roll back).
pub async fn commit(conn: &mut ClientConnection, id: u64) -> Result<Next, Reply> {
    let ClientConnection {
        session,
        audit_peer,
        broker,
        out,
        ..
    } = conn;
    let open = session_of(session)?;
    if open.session.in_transaction() {
        let record = AuditRecord {
            request: Some(id),
            ..open.record(audit_peer, AuditEvent::Commit)
        };
        broker
            .audit()
            .record(&record)
            .map_err(RequestError::Audit)?;
        let started = Instant::now();
        let result = open.session.commit().await;
        let info = result.as_ref().err().map(RequestError::to_wire);
        let outcome = match &info {
            None => Outcome::ok(None, Some(started.elapsed())),
            Some(info) => Outcome::error(info, Some(started.elapsed())),
        };
        let record = AuditRecord {
            request: Some(id),
            outcome: Some(outcome),
            ..open.record(audit_peer, AuditEvent::Result)
        };
        let _ = broker.audit().record(&record);
        // A deferred trigger's NOTICE comes with the commit.
        if open.session.send_notices(id, out).await.is_err() {
            return Err(Reply::ClientGone);
        }
        result?;
        info!(session = %open.id, "commit");
    }
    send(conn, &Response::Ok { id }).await
}

/// Rolls back. Never refused for want of an audit record: undoing is always
/// allowed (the record is best effort).
pub async fn rollback(conn: &mut ClientConnection, id: u64) -> Result<Next, Reply> {
    let ClientConnection {
        session,
        audit_peer,
        broker,
        ..
    } = conn;
    let open = session_of(session)?;
    if open.session.in_transaction() {
        let record = AuditRecord {
            request: Some(id),
            ..open.record(audit_peer, AuditEvent::Rollback)
        };
        let _ = broker.audit().record(&record);
        let result = open.session.rollback().await;
        let info = result.as_ref().err().map(RequestError::to_wire);
        let record = AuditRecord {
            request: Some(id),
            outcome: Some(match &info {
                None => Outcome::ok(None, None),
                Some(info) => Outcome::error(info, None),
            }),
            ..open.record(audit_peer, AuditEvent::Result)
        };
        let _ = broker.audit().record(&record);
        result?;
        info!(session = %open.id, "rollback");
    }
    send(conn, &Response::Ok { id }).await
}

/// Rolls back and ends the session; the connection closes after the answer.
/// `close` without a session is fine: it just ends the connection.
pub async fn close(conn: &mut ClientConnection, id: u64) -> Result<Next, Reply> {
    conn.closing = Some(CloseReason::ClientClose);
    if let Some(open) = conn.session.take() {
        conn.broker.stats().session_closed(conn.peer.uid, &open.db);
        let in_txn = open.session.in_transaction();
        let record = AuditRecord {
            request: Some(id),
            why: Some(CloseReason::ClientClose.into()),
            rolled_back: Some(in_txn),
            ..open.record(&conn.audit_peer, AuditEvent::SessionClose)
        };
        let _ = conn.broker.audit().record(&record);
        let result = open.session.close().await;
        info!(session = %open.id, rolled_back = in_txn, "session closed by the client");
        result?;
    }
    send(conn, &Response::Ok { id }).await?;
    let _ = conn.out.flush().await;
    Ok(Next::Close)
}
