//! One client connection: its identity, its session, and the loop that
//! reads requests and answers them in order.

use crate::audit::{
    AuditEvent, AuditPeer, AuditRecord, AuditTarget, ProcessInfo, SessionMode, SessionParts,
};
use crate::broker::Broker;
use crate::client_socket::{self, ClientRead, ClientWrite};
use crate::frame::{FrameWriter, LineError, LineReader, ReadTimeouts};
use crate::ops;
use crate::peer::{Credentials, PeerIdentity};
use crate::session::Session;
use iam_pgbroker_proto::{ErrorCode, ErrorInfo, Op, Request, Response};
use std::sync::Arc;
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
    /// Where, for the audit.
    pub target: AuditTarget,
    /// The granting rule's name.
    pub rule: String,
    /// The reason given at open.
    pub reason: Option<String>,
    /// Its place under `[fair_share] max_sessions_per_uid`.
    pub slot: Option<crate::fairness::SessionSlot>,
    /// The connection's peer and `target` as the audit writes them,
    /// serialized once ([`OpenSession::record`] hands them to every
    /// record).
    pub parts: SessionParts,
}

impl OpenSession {
    /// A record of `event` in this session by `peer`, the connection's
    /// peer (the one `parts` was made of).
    pub fn record<'a>(&'a self, peer: &'a AuditPeer, event: AuditEvent) -> AuditRecord<'a> {
        AuditRecord {
            parts: Some(&self.parts),
            session: Some(&self.id),
            peer: Some(peer),
            target: Some(&self.target),
            mode: Some(SessionMode::of_readonly(self.session.readonly())),
            rule: Some(&self.rule),
            reason: self.reason.as_deref(),
            ..AuditRecord::new(event)
        }
    }
}

/// Per-connection state that the operations work on.
pub struct ClientConnection {
    /// Who is connected, from the kernel.
    pub peer: PeerIdentity,
    /// The same, with process details, as the audit records it.
    pub audit_peer: AuditPeer,
    /// Shared broker state.
    pub broker: Arc<Broker>,
    /// The open session, after a successful `open`.
    pub session: Option<OpenSession>,
    /// Where answers go.
    pub out: FrameWriter<ClientWrite>,
    /// Why the connection is ending, once it is.
    pub closing: Option<CloseReason>,
    /// The protocol version agreed at `hello` (1 without one): version 2
    /// sends every value as PostgreSQL's text form.
    pub protocol: u32,
    /// The open session as `sessions` shows it, once opened.
    pub live: Option<std::sync::Arc<crate::live::LiveSession>>,
}

/// Why a connection (and its session) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client sent `close`.
    ClientClose,
    /// The client went away (end of stream, reset).
    Disconnect,
    /// The idle or request timeout passed.
    Timeout,
    /// The broker is shutting down.
    Shutdown,
    /// A protocol error that ends the connection (oversized line).
    Error,
    /// An administrator ended it (`iam-pgbroker terminate`).
    Terminated,
    /// The client stopped reading an answer (`[fair_share]
    /// write_timeout_ms`).
    WriteTimeout,
}

impl CloseReason {
    /// The word used in logs and the audit.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::ClientClose => "client_close",
            CloseReason::Disconnect => "disconnect",
            CloseReason::Timeout => "timeout",
            CloseReason::Shutdown => "shutdown",
            CloseReason::Error => "error",
            CloseReason::Terminated => "terminated",
            CloseReason::WriteTimeout => "write_timeout",
        }
    }
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
    // The kernel's word first, and /proc/PID now, while the peer is surely
    // still there; neither blocks.
    let creds = match Credentials::of(&stream) {
        Ok(c) => c,
        Err(e) => {
            warn!(cause = %e, "refusing a connection whose peer cannot be identified");
            return;
        }
    };
    let process = ProcessInfo::of(creds.pid);
    // Names may need the user and group databases (NSS: LDAP, sssd): a
    // lookup runs off the async workers; names seen in the last seconds
    // are reused without one.
    let peer = match creds.resolve_cached() {
        Some(peer) => peer,
        None => match tokio::task::spawn_blocking(move || creds.resolve()).await {
            Ok(peer) => peer,
            Err(e) => {
                warn!(cause = %e, "identity lookup failed");
                return;
            }
        },
    };
    let audit_peer = AuditPeer::with_process(&peer, process);
    let span = tracing::info_span!(
        "client",
        uid = peer.uid,
        gid = peer.gid,
        pid = peer.pid,
        user = peer.user.as_deref().unwrap_or("?")
    );
    async move {
        debug!("client connected");
        let (read, write) = match client_socket::split(stream) {
            Ok(halves) => halves,
            Err(e) => {
                warn!(cause = %e, "cannot register the connection with the runtime");
                return;
            }
        };
        let slot = match broker.admit(peer.uid) {
            Ok(slot) => slot,
            Err(message) => {
                warn!("connection refused: {message}");
                broker.stats().error("busy");
                record_refusal(
                    &broker,
                    &audit_peer,
                    peer.uid,
                    None,
                    "connect",
                    &ErrorInfo::new(ErrorCode::Busy, message.clone()),
                );
                let mut out = FrameWriter::new(write);
                out.set_write_timeout(Some(crate::fairness::config().write_timeout));
                let frame = Response::Error {
                    id: None,
                    error: ErrorInfo::new(ErrorCode::Busy, message),
                };
                if out.send(&frame).await.is_ok() {
                    let _ = out.shutdown().await;
                }
                return;
            }
        };
        let config = broker.config();
        let fair = crate::fairness::config();
        // A peer no rule names (and who is no administrator) can do
        // nothing but be refused: its lines are kept small, so its
        // refusals cannot flood the audit with long texts.
        let named = peer.uid == 0
            || config.policy.rules().iter().any(|r| r.matches(&peer))
            || config
                .server
                .admin_group
                .as_deref()
                .is_some_and(|g| peer.groups.iter().any(|pg| pg.name.as_deref() == Some(g)));
        let max = if named {
            config.limits.max_line_bytes
        } else {
            config
                .limits
                .max_line_bytes
                .min(fair.unnamed_max_line_bytes)
        };
        drop(config);
        let mut out = FrameWriter::new(write);
        out.set_write_timeout(Some(fair.write_timeout));
        let mut conn = ClientConnection {
            peer,
            audit_peer,
            broker,
            session: None,
            out,
            closing: None,
            protocol: 1,
            live: None,
        };
        conn.run(LineReader::new(read, max), &mut shutdown).await;
        conn.finish().await;
        drop(slot);
    }
    .instrument(span)
    .await
}

/// Records a refusal outside a session's statements (`refused`), within
/// the uid's rate limit; beyond it the refusal is counted for the
/// interval's summary ([`crate::fairness`]). Best effort: the client gets
/// its answer either way.
pub fn record_refusal(
    broker: &Broker,
    peer: &AuditPeer,
    uid: u32,
    request: Option<u64>,
    op: &str,
    info: &ErrorInfo,
) {
    if !crate::fairness::refusal_recorded(peer, uid, info.code.as_str()) {
        return;
    }
    let mut message = format!("{op}: {}", info.message);
    // A refusal's message may quote what the client sent: kept short.
    if message.len() > 300 {
        let mut cut = 300;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push('…');
    }
    let record = AuditRecord {
        request,
        peer: Some(peer),
        outcome: Some(crate::audit::Outcome {
            ok: false,
            code: Some(info.code.as_str()),
            message: Some(&message),
            ..crate::audit::Outcome::ok(None, None)
        }),
        ..AuditRecord::new(AuditEvent::Refused)
    };
    let _ = broker.audit().record(&record);
}

/// Until when a connection that sees the shutdown now may still write to
/// its client: half the grace period (the rest is for rolling back and
/// recording).
fn shutdown_deadline(grace: std::time::Duration) -> tokio::time::Instant {
    tokio::time::Instant::now() + grace / 2
}

/// The request that was running when shutdown began: its statement is
/// cancelled (again every half second, since a cancel that reaches the
/// server between two statements is ignored), and at `deadline` it is given
/// up on — a client that reads nothing would otherwise keep it forever.
async fn in_flight_at_shutdown(
    mut dispatch: std::pin::Pin<&mut impl std::future::Future<Output = Next>>,
    cancel: Option<tokio_postgres::CancelToken>,
    deadline: tokio::time::Instant,
) -> Next {
    if cancel.is_some() {
        info!("shutting down: cancelling the running statement");
    }
    loop {
        if let Some(token) = &cancel {
            crate::session::cancel(token.clone()).await;
        }
        let wait = std::time::Duration::from_millis(500)
            .min(deadline.saturating_duration_since(tokio::time::Instant::now()));
        match tokio::time::timeout(wait, dispatch.as_mut()).await {
            Ok(next) => return next,
            Err(_) if tokio::time::Instant::now() >= deadline => {
                warn!("shutting down: the request does not finish (a client that reads nothing?); closing the connection");
                return Next::Close;
            }
            Err(_) => {}
        }
    }
}

impl ClientConnection {
    async fn run(
        &mut self,
        mut lines: LineReader<ClientRead>,
        shutdown: &mut broadcast::Receiver<()>,
    ) {
        // Set at shutdown: until when the connection may still write to its
        // client (a client that reads nothing must not keep the session
        // from being rolled back and recorded within the grace period).
        let mut stopping: Option<tokio::time::Instant> = None;
        // One wait for the shutdown for the whole connection: a wait made
        // anew for every request registers and unregisters each time.
        let stop = shutdown.recv();
        tokio::pin!(stop);
        loop {
            if let Some(until) = stopping {
                self.shut_down_by(until).await;
                return;
            }
            let timeouts = {
                let config = self.broker.config();
                ReadTimeouts {
                    idle: Some(config.limits.idle_timeout).filter(|d| !d.is_zero()),
                    request: config.limits.request_timeout,
                }
            };
            let live = self.live.clone();
            let terminated = async {
                match &live {
                    Some(l) => l.terminate.notified().await,
                    None => std::future::pending().await,
                }
            };
            let line = tokio::select! {
                line = lines.next_line_timed(timeouts) => line,
                _ = &mut stop => {
                    let grace = self.broker.config().server.shutdown_grace;
                    self.shut_down_by(shutdown_deadline(grace)).await;
                    return;
                }
                _ = terminated => {
                    info!("session terminated by an administrator");
                    self.closing = Some(CloseReason::Terminated);
                    let info = ErrorInfo::new(
                        ErrorCode::Unavailable,
                        "the session was terminated by an administrator; its transaction was rolled back",
                    );
                    let _ = self.reply_error(None, info).await;
                    return;
                }
            };
            let line = match line {
                Ok(Some(line)) => line,
                Ok(None) => {
                    if lines.has_partial() {
                        debug!("client closed the connection mid-line");
                    }
                    self.closing = Some(CloseReason::Disconnect);
                    return;
                }
                Err(LineError::TooLong { max }) => {
                    warn!(max, "request line too long; closing the connection");
                    self.closing = Some(CloseReason::Error);
                    let info = ErrorInfo::new(
                        ErrorCode::BadRequest,
                        format!("request line exceeds {max} bytes; closing the connection"),
                    );
                    record_refusal(
                        &self.broker,
                        &self.audit_peer,
                        self.peer.uid,
                        None,
                        "too_long",
                        &info,
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
                    self.closing = Some(CloseReason::Disconnect);
                    return;
                }
                Err(e @ (LineError::Idle(_) | LineError::Incomplete(_))) => {
                    info!(cause = %e, "closing the connection");
                    let message = match e {
                        LineError::Idle(d) => format!(
                            "no request for {} s; closing the connection (an open transaction was rolled back)",
                            d.as_secs()
                        ),
                        _ => format!("{e}; closing the connection"),
                    };
                    let _ = self
                        .reply_error(None, ErrorInfo::new(ErrorCode::Limit, message))
                        .await;
                    let _ = self.out.shutdown().await;
                    self.closing = Some(CloseReason::Timeout);
                    return;
                }
            };
            let request = match Request::decode(&line) {
                Ok(r) => r,
                Err(e) => {
                    let id = Request::peek_id(&line);
                    warn!(cause = %e, "bad request");
                    let info = ErrorInfo::new(ErrorCode::BadRequest, e.to_string());
                    record_refusal(
                        &self.broker,
                        &self.audit_peer,
                        self.peer.uid,
                        id,
                        "malformed",
                        &info,
                    );
                    if crate::fairness::over_refusal_limit(self.peer.uid) {
                        tokio::time::sleep(crate::fairness::REFUSAL_TARPIT).await;
                    }
                    if self.reply_error(id, info).await.is_err() {
                        self.closing = Some(CloseReason::Disconnect);
                        return;
                    }
                    continue;
                }
            };
            // A statement is the one request that may run long: shutdown
            // cancels it, so the session still rolls back, closes and is
            // recorded within the grace period.
            let cancel = match request.op {
                Op::Query { .. } | Op::Execute { .. } | Op::CopyOut { .. } | Op::CopyDone => {
                    self.session.as_ref().and_then(|s| s.session.cancel_token())
                }
                _ => None,
            };
            let grace = self.broker.config().server.shutdown_grace;
            let next = {
                let dispatch = ops::dispatch(self, request);
                tokio::pin!(dispatch);
                tokio::select! {
                    next = &mut dispatch => next,
                    _ = &mut stop => {
                        let until = shutdown_deadline(grace);
                        stopping = Some(until);
                        // A client that reads nothing keeps the answer from
                        // being written: give up on it after half the grace
                        // period, so that the session is still rolled back
                        // and recorded before the broker exits.
                        in_flight_at_shutdown(dispatch, cancel, until).await
                    }
                }
            };
            if stopping.is_some() {
                // What is queued goes out with the shutdown's frame, within
                // the same bound.
                if matches!(next, Next::Close) {
                    self.closing = Some(CloseReason::Shutdown);
                    return;
                }
                continue;
            }
            match next {
                Next::Continue => {}
                Next::Close => {
                    self.closing.get_or_insert(CloseReason::Disconnect);
                    return;
                }
            }
            if self.out.flush().await.is_err() {
                debug!("client went away before reading its answer");
                self.closing = Some(CloseReason::Disconnect);
                return;
            }
        }
    }

    /// [`ClientConnection::shut_down`], given up at `until` (the client
    /// reads nothing); the session is rolled back and recorded either way.
    async fn shut_down_by(&mut self, until: tokio::time::Instant) {
        if tokio::time::timeout_at(until, self.shut_down())
            .await
            .is_err()
        {
            warn!("shutting down: the client reads nothing; closing the connection");
            self.closing = Some(CloseReason::Shutdown);
        }
    }

    /// Tells the client the broker is shutting down; `finish` then rolls
    /// back and closes its session.
    async fn shut_down(&mut self) {
        let rolled_back = self
            .session
            .as_ref()
            .is_some_and(|s| s.session.in_transaction());
        let message = if rolled_back {
            "the broker is shutting down; the open transaction was rolled back"
        } else {
            "the broker is shutting down"
        };
        self.closing = Some(CloseReason::Shutdown);
        let _ = self
            .reply_error(None, ErrorInfo::new(ErrorCode::Unavailable, message))
            .await;
    }

    /// Sends an error frame and flushes.
    pub async fn reply_error(&mut self, id: Option<u64>, error: ErrorInfo) -> std::io::Result<()> {
        self.out.send(&Response::Error { id, error }).await?;
        self.out.flush().await
    }

    /// Rolls back and closes whatever session is still open.
    async fn finish(&mut self) {
        let cancelled = match self.live.take() {
            Some(live) => {
                self.broker.live().remove(&live.id);
                live.was_cancelled()
            }
            None => false,
        };
        if let Some(mut open) = self.session.take() {
            if cancelled {
                open.session.cancelled_from_outside();
            }
            self.broker.stats().session_closed(self.peer.uid, &open.db);
            let reason = self.closing.unwrap_or(CloseReason::Disconnect);
            let why = reason.as_str();
            let in_txn = open.session.in_transaction();
            let record = AuditRecord {
                why: Some(reason.into()),
                rolled_back: Some(in_txn),
                ..open.record(&self.audit_peer, AuditEvent::SessionClose)
            };
            // Best effort: the session ends whether or not this is written.
            let _ = self.broker.audit().record(&record);
            match open.session.close().await {
                Ok(()) if in_txn => {
                    info!(session = %open.id, why, "session ended with a transaction open; rolled back")
                }
                Ok(()) => info!(session = %open.id, why, "session closed"),
                Err(e) => {
                    warn!(session = %open.id, cause = %e, "closing the session failed; the server rolls back on disconnect")
                }
            }
        }
    }
}
