//! PostgreSQL's notices (`RAISE NOTICE`, `WARNING`s, `INFO`, and what
//! `client_min_messages` lets through) on their way to the client.
//!
//! tokio-postgres hands a connection's asynchronous messages to whoever
//! drives the connection's task ([`drive`]): notices are kept in the
//! connection's [`NoticeQueue`] in the order the server sent them, and the
//! session sends them as `notice` frames (protocol version 2) before the
//! frame that ends the request — the messages before a row reach the queue
//! before the row reaches the session, so none is late. The queue is
//! bounded: past [`MAX_QUEUED`] notices in one request the rest are
//! counted, not kept, and the client is told how many were left out.

use crate::sync::lock;
use futures_util::StreamExt;
use iam_pgbroker_proto::{ErrorCode, ErrorInfo};
use std::collections::VecDeque;
use std::sync::Mutex;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::AsyncMessage;
use tracing::debug;

/// Notices kept per request at most; later ones are counted only.
pub const MAX_QUEUED: usize = 1000;

/// A connection's notices not yet sent.
#[derive(Default)]
pub struct NoticeQueue {
    inner: Mutex<Queued>,
}

#[derive(Default)]
struct Queued {
    notices: VecDeque<ErrorInfo>,
    dropped: u64,
}

impl NoticeQueue {
    /// Keeps `notice`, or counts it when the queue is full.
    pub fn push(&self, notice: ErrorInfo) {
        let mut q = lock(&self.inner);
        if q.notices.len() >= MAX_QUEUED {
            q.dropped += 1;
        } else {
            q.notices.push_back(notice);
        }
    }

    /// Everything queued, oldest first, and how many were left out; the
    /// queue is empty afterwards.
    pub fn take(&self) -> (Vec<ErrorInfo>, u64) {
        let mut q = lock(&self.inner);
        let dropped = std::mem::take(&mut q.dropped);
        (q.notices.drain(..).collect(), dropped)
    }

    /// Forgets everything queued (what a previous session, or a version 1
    /// client, does not get).
    pub fn clear(&self) {
        let mut q = lock(&self.inner);
        q.notices.clear();
        q.dropped = 0;
    }
}

/// Drives a PostgreSQL connection until it ends, keeping its notices in
/// `queue` (tokio-postgres's own driver would only log and drop them).
pub async fn drive<S, T>(
    mut connection: tokio_postgres::Connection<S, T>,
    queue: std::sync::Arc<NoticeQueue>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    while let Some(message) = messages.next().await {
        match message {
            Ok(AsyncMessage::Notice(db)) => queue.push(notice_info(&db)),
            Ok(_) => {}
            Err(e) => {
                debug!(cause = %e, "database connection ended with an error");
                return;
            }
        }
    }
}

/// A notice as the protocol sends it: every field PostgreSQL sent, as in
/// an `error` frame (the code is `database`).
pub fn notice_info(db: &tokio_postgres::error::DbError) -> ErrorInfo {
    crate::error::db_error_info(db, ErrorCode::Database)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_keeps_order_and_counts_what_it_drops() {
        let q = NoticeQueue::default();
        for i in 0..MAX_QUEUED + 5 {
            q.push(ErrorInfo::new(ErrorCode::Database, format!("n{i}")));
        }
        let (kept, dropped) = q.take();
        assert_eq!(kept.len(), MAX_QUEUED);
        assert_eq!(kept[0].message, "n0");
        assert_eq!(kept[MAX_QUEUED - 1].message, format!("n{}", MAX_QUEUED - 1));
        assert_eq!(dropped, 5);
        assert_eq!(q.take(), (Vec::new(), 0));
        q.push(ErrorInfo::new(ErrorCode::Database, "x"));
        q.clear();
        assert_eq!(q.take(), (Vec::new(), 0));
    }
}
