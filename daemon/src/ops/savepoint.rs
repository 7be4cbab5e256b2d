//! `savepoint`, `release_savepoint` and `rollback_to_savepoint`: the
//! broker owns transaction control, so savepoints are operations (the
//! guard refuses their SQL), with a validated name; each is audited as the
//! statement it runs.

use super::{send, session_of, Reply};
use crate::audit::{AuditEvent, AuditRecord, Outcome};
use crate::conn::{ClientConnection, Next};
use crate::error::RequestError;
use crate::session::{Failure, SavepointOp};
use iam_pgbroker_proto::Response;
use std::time::Instant;
use tracing::info;

pub async fn run(
    conn: &mut ClientConnection,
    id: u64,
    op: SavepointOp,
    name: &str,
) -> Result<Next, Reply> {
    let ClientConnection {
        session,
        audit_peer,
        broker,
        out,
        ..
    } = conn;
    let open = session_of(session)?;
    SavepointOp::check_name(name)?;
    let sql = op.sql(name);
    let audit = broker.audit();
    // Fail closed, as for any statement.
    let record = AuditRecord {
        request: Some(id),
        sql: Some(&sql),
        kind: Some(op.kind()),
        writes: Some(false),
        ..open.record(audit_peer, AuditEvent::Statement)
    };
    audit.record(&record).map_err(RequestError::Audit)?;
    broker.stats().statement();
    let started = Instant::now();
    let result = open.session.savepoint(id, op, name, out).await;
    let info = match &result {
        Err(Failure::Request(e)) => Some(e.to_wire()),
        _ => None,
    };
    let outcome = match (&result, &info) {
        (Ok(()), _) => Outcome::ok(None, Some(started.elapsed())),
        (_, Some(info)) => Outcome::error(info, Some(started.elapsed())),
        _ => Outcome {
            ok: false,
            code: Some("client_gone"),
            ..Outcome::ok(None, Some(started.elapsed()))
        },
    };
    let record = AuditRecord {
        request: Some(id),
        kind: Some(op.kind()),
        outcome: Some(outcome),
        ..open.record(audit_peer, AuditEvent::Result)
    };
    let _ = audit.record(&record);
    match result {
        Ok(()) => {
            info!(session = %open.id, kind = op.kind(), "savepoint");
            send(conn, &Response::Ok { id }).await
        }
        Err(Failure::Request(e)) => Err(Reply::Error(e)),
        Err(Failure::Client(_)) => Err(Reply::ClientGone),
    }
}
