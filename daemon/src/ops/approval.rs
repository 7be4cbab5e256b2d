//! `request_submit`, `request_list`, `request_show`, `request_approve`,
//! `request_reject` and `request_cancel`: change requests. They need no
//! session: they act on the identity the kernel gave for the connection.
//! The rules live in `crate::approval`; this file checks the fields and
//! sends the answer.

use super::open::{check_dbname, check_name};
use super::{send, Reply};
use crate::approval::lifecycle::{self, Actor};
use crate::approval::store::is_id;
use crate::conn::{ClientConnection, Next};
use crate::error::RequestError;
use iam_pgbroker_proto::{ApprovalRequest, Response, SubmitParams};

/// Longest reason or comment kept, in characters (as `open`'s reason).
const MAX_TEXT_CHARS: usize = 1000;

fn actor(conn: &ClientConnection, id: u64) -> Actor<'_> {
    Actor {
        broker: &conn.broker,
        peer: &conn.peer,
        audit_peer: &conn.audit_peer,
        request: id,
    }
}

pub async fn submit(
    conn: &mut ClientConnection,
    id: u64,
    params: SubmitParams,
) -> Result<Next, Reply> {
    check_name("db", &params.db)?;
    check_name("user", &params.user)?;
    if let Some(dbname) = &params.dbname {
        check_dbname(dbname)?;
    }
    check_text("reason", Some(&params.reason), true)?;
    if params.statements.iter().any(|s| s.sql.trim().is_empty()) {
        return Err(RequestError::BadRequest("a statement is empty".into()).into());
    }
    let request = lifecycle::submit(&actor(conn, id), params).await?;
    send_request(conn, id, request).await
}

pub async fn list(conn: &mut ClientConnection, id: u64, all: bool) -> Result<Next, Reply> {
    let (requests, refused) = lifecycle::list(&actor(conn, id), all).await?;
    send(
        conn,
        &Response::Requests {
            id,
            requests,
            refused,
        },
    )
    .await
}

pub async fn show(conn: &mut ClientConnection, id: u64, request: &str) -> Result<Next, Reply> {
    check_id(request)?;
    let request = lifecycle::show(&actor(conn, id), request).await?;
    send_request(conn, id, request).await
}

pub async fn approve(
    conn: &mut ClientConnection,
    id: u64,
    request: &str,
    comment: Option<String>,
) -> Result<Next, Reply> {
    check_id(request)?;
    check_text("comment", comment.as_deref(), false)?;
    let comment = comment
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty());
    let request = lifecycle::approve(&actor(conn, id), request, comment).await?;
    send_request(conn, id, request).await
}

pub async fn reject(
    conn: &mut ClientConnection,
    id: u64,
    request: &str,
    comment: &str,
) -> Result<Next, Reply> {
    check_id(request)?;
    check_text("comment", Some(comment), true)?;
    let request = lifecycle::reject(&actor(conn, id), request, comment.trim().to_owned()).await?;
    send_request(conn, id, request).await
}

pub async fn cancel(conn: &mut ClientConnection, id: u64, request: &str) -> Result<Next, Reply> {
    check_id(request)?;
    let request = lifecycle::cancel(&actor(conn, id), request).await?;
    send_request(conn, id, request).await
}

/// Answers with the change request as it is now.
async fn send_request(
    conn: &mut ClientConnection,
    id: u64,
    request: ApprovalRequest,
) -> Result<Next, Reply> {
    let frame = Response::Request {
        id,
        request: Box::new(request),
    };
    send(conn, &frame).await
}

fn check_id(request: &str) -> Result<(), RequestError> {
    if is_id(request) {
        Ok(())
    } else {
        Err(RequestError::BadRequest(format!(
            "{request:?} is not a change request id (16 hex digits, as `iam-pg requests` shows)"
        )))
    }
}

fn check_text(field: &str, text: Option<&str>, required: bool) -> Result<(), RequestError> {
    match text {
        Some(t) if t.chars().count() > MAX_TEXT_CHARS => Err(RequestError::BadRequest(format!(
            "{field} is longer than {MAX_TEXT_CHARS} characters"
        ))),
        Some(t) if required && t.trim().is_empty() => Err(RequestError::BadRequest(format!(
            "{field} must not be empty"
        ))),
        None if required => Err(RequestError::BadRequest(format!("{field} is required"))),
        _ => Ok(()),
    }
}
