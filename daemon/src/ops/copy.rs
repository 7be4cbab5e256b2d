//! `copy_out`, `copy_in`, `copy_data`, `copy_done` and `copy_fail`:
//! `COPY … TO STDOUT` and `COPY … FROM STDIN` through the broker, checked
//! by the guard as the statements they are and audited as such (the
//! statement before it runs, its outcome when it ends).

use super::{send, session_of, Reply};
use crate::audit::{AuditEvent, AuditRecord, Outcome};
use crate::conn::{ClientConnection, Next};
use crate::error::RequestError;
use crate::session::Failure;
use iam_pgbroker_proto::Response;
use std::time::{Duration, Instant};
use tracing::info;

/// The statement kinds each operation takes.
const COPY_OUT: &str = "COPY TO STDOUT";
const COPY_IN: &str = "COPY FROM STDIN";

/// Guards and audits `sql` for `op`, which takes statements of `kind`.
fn checked(
    conn: &mut ClientConnection,
    id: u64,
    sql: &str,
    kind: &str,
) -> Result<crate::session::Checked, Reply> {
    let ClientConnection {
        session,
        audit_peer,
        broker,
        ..
    } = conn;
    let open = session_of(session)?;
    let audit = broker.audit();
    let checked = open.session.check(sql, 0).and_then(|c| {
        if c.verdict.kind == kind {
            Ok(c)
        } else {
            let op = if kind == COPY_OUT {
                "copy_out"
            } else {
                "copy_in"
            };
            Err(crate::session::Rejected {
                error: RequestError::BadRequest(format!(
                    "{op} takes one {} statement, not {}",
                    kind.replace(' ', " … "),
                    c.verdict.kind
                )),
                what: None,
            })
        }
    });
    let checked = match checked {
        Ok(c) => c,
        Err(rejected) => {
            let info = rejected.error.to_wire();
            let record = AuditRecord {
                request: Some(id),
                sql: Some(sql),
                rule: rejected.what.as_deref(),
                outcome: Some(Outcome::error(&info, None)),
                ..open.record(audit_peer, AuditEvent::StatementRefused)
            };
            let _ = audit.record(&record);
            return Err(Reply::Error(rejected.error));
        }
    };
    let record = AuditRecord {
        request: Some(id),
        sql: Some(sql),
        statement_fields: audit
            .is_enabled()
            .then(|| checked.analysis.audit_fields(sql)),
        kind: Some(checked.verdict.kind),
        writes: Some(checked.verdict.writes || checked.verdict.ddl),
        ..open.record(audit_peer, AuditEvent::Statement)
    };
    audit.record(&record).map_err(RequestError::Audit)?;
    broker.stats().statement();
    Ok(checked)
}

/// The outcome record of a COPY that ran.
fn record_result(
    conn: &ClientConnection,
    request: u64,
    kind: &'static str,
    result: &Result<u64, RequestError>,
    elapsed: Duration,
) {
    let Some(open) = conn.session.as_ref() else {
        return;
    };
    let info = result.as_ref().err().map(RequestError::to_wire);
    let outcome = match (result, &info) {
        (Ok(rows), _) => Outcome::ok(Some(*rows), Some(elapsed)),
        (_, Some(info)) => Outcome::error(info, Some(elapsed)),
        _ => Outcome::ok(None, Some(elapsed)),
    };
    let record = AuditRecord {
        request: Some(request),
        kind: Some(kind),
        outcome: Some(outcome),
        ..open.record(&conn.audit_peer, AuditEvent::Result)
    };
    let _ = conn.broker.audit().record(&record);
}

/// `copy_out`: `copy_data` frames, then `done`.
pub async fn copy_out(conn: &mut ClientConnection, id: u64, sql: &str) -> Result<Next, Reply> {
    let checked = checked(conn, id, sql, COPY_OUT)?;
    let started = Instant::now();
    let ClientConnection { session, out, .. } = conn;
    let open = session_of(session)?;
    let result = open.session.copy_out(id, &checked, out).await;
    if result.is_ok() {
        let _ = out.flush().await;
    }
    let (result, gone) = match result {
        Ok(rows) => (Ok(rows), false),
        Err(Failure::Request(e)) => (Err(e), false),
        Err(Failure::Client(_)) => (Err(RequestError::Internal("client_gone".into())), true),
    };
    record_result(conn, id, checked.verdict.kind, &result, started.elapsed());
    let open = session_of(&mut conn.session)?;
    match result {
        Ok(rows) => {
            info!(session = %open.id, rows, "copy out done");
            Ok(Next::Continue)
        }
        Err(_) if gone => {
            open.session.cancel_statement().await;
            Err(Reply::ClientGone)
        }
        Err(e) => {
            if open.session.send_notices(id, &mut conn.out).await.is_err() {
                return Err(Reply::ClientGone);
            }
            Err(Reply::Error(e))
        }
    }
}

/// `copy_in`: `copy_ready` once PostgreSQL waits for the data.
pub async fn copy_in(conn: &mut ClientConnection, id: u64, sql: &str) -> Result<Next, Reply> {
    let checked = checked(conn, id, sql, COPY_IN)?;
    let started = Instant::now();
    let open = session_of(&mut conn.session)?;
    match open.session.copy_in_start(id, &checked).await {
        Ok(()) => send(conn, &Response::CopyReady { id }).await,
        Err(e) => {
            let result: Result<u64, RequestError> = Err(e);
            record_result(conn, id, checked.verdict.kind, &result, started.elapsed());
            let open = session_of(&mut conn.session)?;
            if open.session.send_notices(id, &mut conn.out).await.is_err() {
                return Err(Reply::ClientGone);
            }
            result.map(|_| Next::Continue).map_err(Reply::Error)
        }
    }
}

/// `copy_data`: no answer (unless no COPY is in progress).
pub async fn copy_data(conn: &mut ClientConnection, data: String) -> Result<Next, Reply> {
    let open = session_of(&mut conn.session)?;
    open.session.copy_data(data).await?;
    Ok(Next::Continue)
}

/// `copy_done` (answered with `done`) and `copy_fail` (answered with the
/// error PostgreSQL gives an abandoned COPY).
pub async fn copy_end(
    conn: &mut ClientConnection,
    id: u64,
    fail: Option<&str>,
) -> Result<Next, Reply> {
    let open = session_of(&mut conn.session)?;
    let Some((request, kind, started)) = open.session.copy_in_request() else {
        let op = if fail.is_some() {
            "copy_fail"
        } else {
            "copy_done"
        };
        return Err(RequestError::BadRequest(format!(
            "{op} without a COPY FROM STDIN in progress"
        ))
        .into());
    };
    let result = match fail {
        None => open.session.copy_done().await,
        Some(message) => match open.session.copy_fail(message) {
            Ok(reported) => Err(reported),
            Err(e) => Err(e),
        },
    };
    record_result(conn, request, kind, &result, started.elapsed());
    let open = session_of(&mut conn.session)?;
    if open.session.send_notices(id, &mut conn.out).await.is_err() {
        return Err(Reply::ClientGone);
    }
    match result {
        Ok(rows) => {
            info!(session = %open.id, rows, "copy in done");
            send(
                conn,
                &Response::Done {
                    id,
                    rows,
                    command: kind.to_owned(),
                },
            )
            .await
        }
        Err(e) => Err(Reply::Error(e)),
    }
}
