//! One client connection: its identity, its session, and the loop that
//! reads requests and answers them in order.

use crate::broker::Broker;
use crate::frame::{FrameWriter, LineError, LineReader};
use crate::ops;
use crate::peer::PeerIdentity;
use crate::session::Session;
use iam_pgbroker_proto::{ErrorCode, ErrorInfo, Request, Response};
use std::sync::Arc;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::broadcast;
use tracing::{debug, info, warn, Instrument};

/// How long an oversized line's sender is given to stop sending before the
/// connection is closed.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);
/// How much of an oversized line's remainder is read and discarded at most.
const LINGER_BYTES: usize = 64 * 1024 * 1024;

/// A session that `open` established.
pub struct OpenSession {
    /// The broker's session id.
    pub id: String,
    /// Database instance.
    pub db: String,
    /// Database user.
    pub user: String,
    /// The database session.
    pub session: Session,
}

/// Per-connection state that the operations work on.
pub struct ClientConnection {
    /// Who is connected, from the kernel.
    pub peer: PeerIdentity,
    /// Shared broker state.
    pub broker: Arc<Broker>,
    /// The open session, after a successful `open`.
    pub session: Option<OpenSession>,
    /// Where answers go.
    pub out: FrameWriter<OwnedWriteHalf>,
}

/// What the loop does after a request.
pub enum Next {
    /// Read the next request.
    Continue,
    /// Close the connection (after `close`, or when the client is gone).
    Close,
}

/// Serves one accepted connection until the client closes it, breaks the
/// protocol beyond repair, or the broker shuts down.
pub async fn serve(stream: UnixStream, broker: Arc<Broker>, mut shutdown: broadcast::Receiver<()>) {
    let std_stream = match stream.into_std() {
        Ok(s) => s,
        Err(e) => {
            warn!(cause = %e, "cannot take over an accepted connection");
            return;
        }
    };
    // Identity lookups may go through NSS (LDAP, sssd): keep them off the
    // async workers.
    let (std_stream, peer) = match tokio::task::spawn_blocking(move || {
        let peer = PeerIdentity::from_stream(&std_stream);
        (std_stream, peer)
    })
    .await
    {
        Ok((s, Ok(peer))) => (s, peer),
        Ok((_, Err(e))) => {
            warn!(cause = %e, "refusing a connection whose peer cannot be identified");
            return;
        }
        Err(e) => {
            warn!(cause = %e, "identity lookup failed");
            return;
        }
    };
    let stream = match UnixStream::from_std(std_stream) {
        Ok(s) => s,
        Err(e) => {
            warn!(cause = %e, "cannot register an accepted connection");
            return;
        }
    };
    let span = tracing::info_span!(
        "client",
        uid = peer.uid,
        gid = peer.gid,
        pid = peer.pid,
        user = peer.user.as_deref().unwrap_or("?")
    );
    async move {
        debug!("client connected");
        let (read, write) = stream.into_split();
        let max = broker.config().limits.max_line_bytes;
        let mut conn = ClientConnection {
            peer,
            broker,
            session: None,
            out: FrameWriter::new(write),
        };
        conn.run(LineReader::new(read, max), &mut shutdown).await;
        conn.finish().await;
    }
    .instrument(span)
    .await
}

impl ClientConnection {
    async fn run(
        &mut self,
        mut lines: LineReader<OwnedReadHalf>,
        shutdown: &mut broadcast::Receiver<()>,
    ) {
        loop {
            let line = tokio::select! {
                line = lines.next_line() => line,
                _ = shutdown.recv() => {
                    let rolled_back = self.session.as_ref().is_some_and(|s| s.session.in_transaction());
                    let message = if rolled_back {
                        "the broker is shutting down; the open transaction was rolled back"
                    } else {
                        "the broker is shutting down"
                    };
                    let _ = self.reply_error(None, ErrorInfo::new(ErrorCode::Unavailable, message)).await;
                    return;
                }
            };
            let line = match line {
                Ok(Some(line)) => line,
                Ok(None) => {
                    if lines.has_partial() {
                        debug!("client closed the connection mid-line");
                    }
                    return;
                }
                Err(LineError::TooLong { max }) => {
                    warn!(max, "request line too long; closing the connection");
                    let info = ErrorInfo::new(
                        ErrorCode::BadRequest,
                        format!("request line exceeds {max} bytes; closing the connection"),
                    );
                    if self.reply_error(None, info).await.is_ok() {
                        // Closing with unread input makes the kernel reset
                        // the connection, which can destroy the error frame
                        // before the client reads it. Half-close, then
                        // discard what the client is still sending, briefly.
                        let _ = self.out.shutdown().await;
                        let _ = tokio::time::timeout(LINGER, lines.discard_until_eof(LINGER_BYTES))
                            .await;
                    }
                    return;
                }
                Err(LineError::Io(e)) => {
                    debug!(cause = %e, "reading from the client failed");
                    return;
                }
            };
            let request = match Request::decode(&line) {
                Ok(r) => r,
                Err(e) => {
                    let id = Request::peek_id(&line);
                    warn!(cause = %e, "bad request");
                    let info = ErrorInfo::new(ErrorCode::BadRequest, e.to_string());
                    if self.reply_error(id, info).await.is_err() {
                        return;
                    }
                    continue;
                }
            };
            match ops::dispatch(self, request).await {
                Next::Continue => {}
                Next::Close => return,
            }
            if self.out.flush().await.is_err() {
                debug!("client went away before reading its answer");
                return;
            }
        }
    }

    /// Sends an error frame and flushes.
    pub async fn reply_error(&mut self, id: Option<u64>, error: ErrorInfo) -> std::io::Result<()> {
        self.out.send(&Response::Error { id, error }).await?;
        self.out.flush().await
    }

    /// Rolls back and closes whatever session is still open.
    async fn finish(&mut self) {
        if let Some(open) = self.session.take() {
            self.broker.stats().session_closed(self.peer.uid, &open.db);
            let in_txn = open.session.in_transaction();
            match open.session.close().await {
                Ok(()) if in_txn => {
                    info!(session = %open.id, "client gone with a transaction open; rolled back")
                }
                Ok(()) => info!(session = %open.id, "session closed"),
                Err(e) => {
                    warn!(session = %open.id, cause = %e, "closing the session failed; the server rolls back on disconnect")
                }
            }
        }
    }
}
