//! `query` and `execute`: one statement each, inside the broker's
//! transaction, recorded in the audit before it runs.

use super::{session_of, Reply};
use crate::audit::{AuditEvent, AuditRecord, Outcome};
use crate::conn::{ClientConnection, Next};
use crate::error::RequestError;
use crate::session::Failure;
use serde_json::Value;
use std::time::Instant;
use tracing::{info, warn};

/// Whether the client wants the rows or only their count.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `query`: columns, rows, done.
    Query,
    /// `execute`: done only.
    Execute,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Query => "query",
            Kind::Execute => "execute",
        }
    }
}

pub async fn run(
    conn: &mut ClientConnection,
    id: u64,
    sql: &str,
    params: &[Value],
    kind: Kind,
) -> Result<Next, Reply> {
    let ClientConnection {
        session,
        audit_peer,
        broker,
        out,
        closing,
        ..
    } = conn;
    let open = session_of(session)?;
    let audit = broker.audit();
    let started = Instant::now();

    let checked = match open.session.check(sql, params.len()) {
        Ok(checked) => checked,
        Err(rejected) => {
            // Recorded best effort: nothing runs either way.
            let info = rejected.error.to_wire();
            let record = AuditRecord {
                request: Some(id),
                sql: Some(sql),
                params: Some(params),
                rule: rejected.what.as_deref(),
                outcome: Some(Outcome::error(&info, None)),
                ..open.record(audit_peer, AuditEvent::StatementRefused)
            };
            let _ = audit.record(&record);
            info!(session = %open.id, op = kind.name(), code = %info.code, "statement refused");
            return Err(Reply::Error(rejected.error));
        }
    };
    if checked.verdict.kind.starts_with("COPY") {
        return Err(Reply::Error(RequestError::BadRequest(format!(
            "{} runs through the copy_out and copy_in operations, not {}",
            checked.verdict.kind,
            kind.name()
        ))));
    }
    // Fail closed: a statement runs only once its record is written.
    let record = AuditRecord {
        request: Some(id),
        sql: Some(sql),
        statement_fields: audit
            .is_enabled()
            .then(|| checked.analysis.audit_fields(sql)),
        params: Some(params),
        kind: Some(checked.verdict.kind),
        writes: Some(checked.verdict.writes || checked.verdict.ddl),
        ..open.record(audit_peer, AuditEvent::Statement)
    };
    if let Err(e) = audit.record(&record) {
        return Err(Reply::Error(RequestError::Audit(e)));
    }
    broker.stats().statement();

    let result = match kind {
        Kind::Query => open.session.query(id, &checked, params, out).await,
        Kind::Execute => open.session.execute(id, &checked, params, out).await,
    };
    let elapsed = started.elapsed();
    if result.is_ok() {
        // The answer first, the result record after: the record is best
        // effort, and the client need not wait for its write. (Failed
        // statements are answered by the caller, after the record.) A
        // failed flush means the client is gone; the connection loop
        // notices on its own flush.
        let _ = out.flush().await;
    }
    let error_info = match &result {
        Err(Failure::Request(e)) => Some(e.to_wire()),
        _ => None,
    };
    let outcome = match (&result, &error_info) {
        (Ok(rows), _) => Outcome::ok(Some(*rows), Some(elapsed)),
        (Err(Failure::Request(_)), Some(info)) => Outcome::error(info, Some(elapsed)),
        // The client stopped reading: cut off, as below.
        (Err(Failure::Client(e)), _) if e.kind() == std::io::ErrorKind::TimedOut => Outcome {
            ok: false,
            code: Some("write_timeout"),
            ..Outcome::ok(None, Some(elapsed))
        },
        // The client vanished mid-result: what ran is rolled back with the
        // session.
        _ => Outcome {
            ok: false,
            code: Some("client_gone"),
            ..Outcome::ok(None, Some(elapsed))
        },
    };
    let record = AuditRecord {
        request: Some(id),
        kind: Some(checked.verdict.kind),
        writes: Some(checked.verdict.writes || checked.verdict.ddl),
        outcome: Some(outcome),
        ..open.record(audit_peer, AuditEvent::Result)
    };
    // The statement has run; its outcome is recorded best effort, written
    // with the next record (or the flush within the interval).
    audit.record_deferred(&record);

    let micros = elapsed.as_micros() as u64;
    let op = kind.name();
    match result {
        Ok(rows) => {
            info!(session = %open.id, op, kind = checked.verdict.kind, rows, micros, "statement done");
            Ok(Next::Continue)
        }
        Err(Failure::Request(e)) => {
            // What PostgreSQL said before the error comes before it.
            if open.session.send_notices(id, out).await.is_err() {
                return Err(Reply::ClientGone);
            }
            Err(Reply::Error(e))
        }
        Err(Failure::Client(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
            warn!(session = %open.id, op, micros, "the client stopped reading the result: cancelling the statement, rolling back and closing the connection");
            crate::fairness::WRITE_TIMEOUTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            open.session.cancel_statement().await;
            *closing = Some(crate::conn::CloseReason::WriteTimeout);
            Err(Reply::ClientGone)
        }
        Err(Failure::Client(_)) => {
            info!(session = %open.id, op, micros, "client went away during the result");
            // Nobody reads the rest: stop the statement before the session
            // is rolled back (the rollback would wait for it to finish).
            open.session.cancel_statement().await;
            Err(Reply::ClientGone)
        }
    }
}
