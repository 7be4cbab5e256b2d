//! `query` and `execute`: one statement each, inside the broker's
//! transaction.

use super::{session_of, Reply};
use crate::conn::{ClientConnection, Next};
use crate::session::Failure;
use serde_json::Value;
use std::time::Instant;
use tracing::info;

pub async fn query(
    conn: &mut ClientConnection,
    id: u64,
    sql: &str,
    params: &[Value],
) -> Result<Next, Reply> {
    let open = session_of(&mut conn.session)?;
    conn.broker.stats().statement();
    let started = Instant::now();
    let result = open.session.query(id, sql, params, &mut conn.out).await;
    finish(&open.id, "query", started, result)
}

pub async fn execute(
    conn: &mut ClientConnection,
    id: u64,
    sql: &str,
    params: &[Value],
) -> Result<Next, Reply> {
    let open = session_of(&mut conn.session)?;
    conn.broker.stats().statement();
    let started = Instant::now();
    let result = open.session.execute(id, sql, params, &mut conn.out).await;
    finish(&open.id, "execute", started, result)
}

fn finish(
    session: &str,
    op: &'static str,
    started: Instant,
    result: Result<u64, Failure>,
) -> Result<Next, Reply> {
    let micros = started.elapsed().as_micros() as u64;
    match result {
        Ok(rows) => {
            info!(session, op, rows, micros, "statement done");
            Ok(Next::Continue)
        }
        Err(Failure::Request(e)) => Err(Reply::Error(e)),
        Err(Failure::Client(_)) => {
            info!(session, op, micros, "client went away during the result");
            Err(Reply::ClientGone)
        }
    }
}
