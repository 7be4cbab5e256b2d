//! One audit record: what the caller says ([`AuditRecord`]) and how it
//! becomes the body of a JSON line.

use super::config::ParamsMode;
use super::key::AuditKey;
use super::peer::{AuditPeer, AuditTarget};
use crate::analysis::Shape;
use crate::types::write_json_str;
use iam_pgbroker_proto::ErrorInfo;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::borrow::Cow;
use std::time::Duration;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditEvent {
    /// The broker started (first record after a start).
    BrokerStart,
    /// The broker is stopping (last record before a clean exit).
    BrokerStop,
    /// A session was opened, or opening it failed after the policy allowed
    /// it (`outcome` says which).
    SessionOpen,
    /// The policy refused a session.
    SessionRefused,
    /// A session ended (`why`).
    SessionClose,
    /// A statement is about to be sent to PostgreSQL. Written before it is
    /// sent; its `result` record follows.
    Statement,
    /// The guard (or the session's mode) refused a statement; nothing was
    /// sent.
    StatementRefused,
    /// A commit is about to be sent; its `result` follows.
    Commit,
    /// A rollback the client asked for is about to be sent; its `result`
    /// follows.
    Rollback,
    /// How a `statement`, `commit` or `rollback` with the same `session`
    /// and `request` ended.
    Result,
    /// A new audit file begins (size rotation, `SIGHUP` reopen, the file
    /// vanished). Written by the log itself.
    Rotated,
    /// A change request was submitted; written before its dry run
    /// (`approval` has the request id; `docs/approval.md`).
    RequestSubmit,
    /// How a change request's dry run ended: its counts, and whether it was
    /// stored.
    RequestDryRun,
    /// A change request was approved; written before it runs.
    RequestApprove,
    /// How an approved change request ran: `executed`, `drifted` or
    /// `failed`, with its counts.
    RequestExecute,
    /// A change request was rejected.
    RequestReject,
    /// A change request was withdrawn by its requester.
    RequestCancel,
    /// A change request expired unapproved.
    RequestExpire,
    /// An action on a change request was refused (self-approval, no
    /// `approve` grant, a request file changed outside the broker, …).
    RequestRefused,
    /// A request left `executing` (the broker stopped while running it)
    /// was settled by PostgreSQL's record of its transaction.
    RequestRecover,
    /// An ended request was removed after `[approval] retention_days`.
    RequestRemove,
    /// Someone cancelled a session's running statement (`cancel`).
    SessionCancel,
    /// An administrator ended a session (`terminate`).
    SessionTerminate,
    /// A request refused outside a session's statements: a malformed
    /// request, a denied `status` or `request_show`, `busy`, the audit
    /// reserve (`outcome` says which).
    Refused,
    /// Refusals of one uid over `[fair_share] refusals_per_interval`,
    /// counted and summarised in one record per interval.
    RefusalSummary,
}

impl AuditEvent {
    /// The name in the record.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditEvent::BrokerStart => "broker_start",
            AuditEvent::BrokerStop => "broker_stop",
            AuditEvent::SessionOpen => "session_open",
            AuditEvent::SessionRefused => "session_refused",
            AuditEvent::SessionClose => "session_close",
            AuditEvent::Statement => "statement",
            AuditEvent::StatementRefused => "statement_refused",
            AuditEvent::Commit => "commit",
            AuditEvent::Rollback => "rollback",
            AuditEvent::Result => "result",
            AuditEvent::Rotated => "rotated",
            AuditEvent::RequestSubmit => "request_submit",
            AuditEvent::RequestDryRun => "request_dry_run",
            AuditEvent::RequestApprove => "request_approve",
            AuditEvent::RequestExecute => "request_execute",
            AuditEvent::RequestReject => "request_reject",
            AuditEvent::RequestCancel => "request_cancel",
            AuditEvent::RequestExpire => "request_expire",
            AuditEvent::RequestRefused => "request_refused",
            AuditEvent::RequestRecover => "request_recover",
            AuditEvent::RequestRemove => "request_remove",
            AuditEvent::SessionCancel => "session_cancel",
            AuditEvent::SessionTerminate => "session_terminate",
            AuditEvent::Refused => "refused",
            AuditEvent::RefusalSummary => "refusal_summary",
        }
    }

    /// Session-level events carry the peer's full process details
    /// (executable, command line); the others only who it is.
    fn full_peer(self) -> bool {
        matches!(
            self,
            AuditEvent::SessionOpen
                | AuditEvent::SessionRefused
                | AuditEvent::SessionClose
                | AuditEvent::RequestSubmit
                | AuditEvent::RequestApprove
                | AuditEvent::RequestReject
                | AuditEvent::RequestCancel
                | AuditEvent::RequestRefused
        )
    }
}

/// What the session was granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionMode {
    /// Read-only.
    Read,
    /// Read-write.
    Write,
}

impl SessionMode {
    /// The name in the record.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionMode::Read => "read",
            SessionMode::Write => "write",
        }
    }

    /// `Read` for a read-only session, else `Write`.
    pub fn of_readonly(readonly: bool) -> SessionMode {
        if readonly {
            SessionMode::Read
        } else {
            SessionMode::Write
        }
    }
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseWhy {
    /// The client sent `close`.
    ClientClose,
    /// The client disconnected (or broke the protocol beyond repair).
    Disconnect,
    /// An idle or session timeout ended it.
    Timeout,
    /// The broker is shutting down.
    Shutdown,
    /// The database connection failed.
    Error,
    /// An administrator ended it.
    Terminated,
    /// The client read nothing of an answer for `[fair_share]
    /// write_timeout_ms`: its statement was cancelled and its transaction
    /// rolled back.
    WriteTimeout,
}

impl CloseWhy {
    /// The name in the record.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseWhy::ClientClose => "client_close",
            CloseWhy::Disconnect => "disconnect",
            CloseWhy::Timeout => "timeout",
            CloseWhy::Shutdown => "shutdown",
            CloseWhy::Error => "error",
            CloseWhy::Terminated => "terminated",
            CloseWhy::WriteTimeout => "write_timeout",
        }
    }
}

impl From<crate::conn::CloseReason> for CloseWhy {
    fn from(r: crate::conn::CloseReason) -> CloseWhy {
        use crate::conn::CloseReason as R;
        match r {
            R::ClientClose => CloseWhy::ClientClose,
            R::Disconnect => CloseWhy::Disconnect,
            R::Timeout => CloseWhy::Timeout,
            R::Shutdown => CloseWhy::Shutdown,
            R::Error => CloseWhy::Error,
            R::Terminated => CloseWhy::Terminated,
            R::WriteTimeout => CloseWhy::WriteTimeout,
        }
    }
}

/// How something ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Outcome<'a> {
    /// It succeeded.
    pub ok: bool,
    /// The protocol's error code (`denied`, `database`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'a str>,
    /// PostgreSQL's SQLSTATE.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sqlstate: Option<&'a str>,
    /// The broker's own message for a refusal. Never PostgreSQL's message:
    /// that can quote values (`invalid input syntax for type uuid: "…"`),
    /// which the `params` setting may be keeping out of the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<&'a str>,
    /// Rows returned or affected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// Time from the request to its answer, in microseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_us: Option<u64>,
}

impl<'a> Outcome<'a> {
    /// Success, with the row count where there is one.
    pub fn ok(rows: Option<u64>, duration: Option<Duration>) -> Outcome<'a> {
        Outcome {
            ok: true,
            rows,
            duration_us: duration.map(micros),
            ..Outcome::default()
        }
    }

    /// Failure, from the error frame the client gets. The message is kept
    /// only for the broker's own errors (those without a SQLSTATE).
    pub fn error(info: &'a ErrorInfo, duration: Option<Duration>) -> Outcome<'a> {
        Outcome {
            ok: false,
            code: Some(info.code.as_str()),
            sqlstate: info.sqlstate.as_deref(),
            message: if info.sqlstate.is_none() {
                Some(info.message.as_str())
            } else {
                None
            },
            rows: None,
            duration_us: duration.map(micros),
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// One event, as the caller describes it. Every field but `event` is
/// optional; the log adds `time` and `prev`, and for statements the
/// normalized text, the fingerprint and the parameters in the configured
/// form. Build it with struct update syntax:
///
/// ```
/// use iam_pgbroker::audit::{AuditEvent, AuditRecord};
///
/// let rec = AuditRecord {
///     session: Some("3f2a9c0d1e2b4a5c"),
///     request: Some(7),
///     sql: Some("UPDATE idm_identity SET disabled = true WHERE username = $1"),
///     kind: Some("UPDATE"),
///     writes: Some(true),
///     ..AuditRecord::new(AuditEvent::Statement)
/// };
/// # let _ = rec;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct AuditRecord<'a> {
    /// What happened.
    pub event: AuditEvent,
    /// The broker's session id (also in PostgreSQL's `application_name`).
    pub session: Option<&'a str>,
    /// The client's request id.
    pub request: Option<u64>,
    /// Who.
    pub peer: Option<&'a AuditPeer>,
    /// Where.
    pub target: Option<&'a AuditTarget>,
    /// Read or write session.
    pub mode: Option<SessionMode>,
    /// The reason the client gave at `open`.
    pub reason: Option<&'a str>,
    /// The policy rule that allowed (or the guard rule that refused).
    pub rule: Option<&'a str>,
    /// The statement as the client sent it.
    pub sql: Option<&'a str>,
    /// The statement's normalized text and fingerprint when the caller
    /// has them already ([`crate::analysis`]); else the log computes them
    /// from `sql` (two more parser passes).
    pub shape: Option<&'a Shape>,
    /// The statement kind the guard gave (`SELECT`, `UPDATE`, …).
    pub kind: Option<&'a str>,
    /// The guard says it writes (data, locks or schema).
    pub writes: Option<bool>,
    /// The statement's parameter values, as the client sent them.
    pub params: Option<&'a [Value]>,
    /// Why a session ended.
    pub why: Option<CloseWhy>,
    /// A transaction was open and has been rolled back (`session_close`).
    pub rolled_back: Option<bool>,
    /// How it ended.
    pub outcome: Option<Outcome<'a>>,
    /// A change request's details (`request_*` events): its id, requester,
    /// approver, comment, counts. Never parameter values.
    pub approval: Option<&'a Value>,
    /// The `sql`, `normalized` and `fingerprint` fields as written before
    /// for the same text ([`statement_fields`], cached with the statement's
    /// analysis); used in place of `sql` and `shape`, which are set too.
    pub statement_fields: Option<&'a [u8]>,
    /// `peer` (as statement records show it) and `target` serialized once
    /// for the session ([`SessionParts`]); used in place of serializing
    /// `peer` and `target` again. Set together with them, by
    /// `OpenSession::record`.
    pub parts: Option<&'a SessionParts>,
}

/// What every record of a session repeats — its id, the `peer` (the short
/// form statement records carry), the `target`, and the grant (`mode`,
/// `reason`, `rule`) — as JSON, serialized when the session opens: the
/// larger part of every statement and result record, escaped once instead
/// of twice per statement. The bytes are exactly what serializing them
/// per record gives; a record whose own values differ (a guard's rule on
/// `statement_refused`) has them serialized as given.
#[derive(Debug, Default)]
pub struct SessionParts {
    session: String,
    session_json: Vec<u8>,
    peer: Option<Box<RawValue>>,
    target: Option<Box<RawValue>>,
    mode: Option<SessionMode>,
    reason: Option<String>,
    rule: String,
    /// `"mode":…[,"reason":…],"rule":…`.
    grant_json: Vec<u8>,
}

/// The grant of a session, as [`SessionParts::of`] takes it.
#[derive(Debug, Clone, Copy)]
pub struct Grant<'a> {
    /// Read or write.
    pub mode: SessionMode,
    /// The reason given at `open`.
    pub reason: Option<&'a str>,
    /// The rule that allowed it.
    pub rule: &'a str,
}

impl SessionParts {
    /// The parts of the records of `session` by `peer` on `target`.
    pub fn of(
        session: &str,
        peer: &AuditPeer,
        target: &AuditTarget,
        grant: Grant<'_>,
    ) -> SessionParts {
        let mut session_json = Vec::with_capacity(session.len() + 2);
        write_json_str(&mut session_json, session);
        let mut grant_json = Vec::new();
        let mut o = Obj::inside(&mut grant_json);
        o.str("mode", grant.mode.as_str());
        o.opt_str("reason", grant.reason);
        o.str("rule", grant.rule);
        // Serializing plain strings and numbers does not fail; if it ever
        // did, records would serialize them themselves.
        SessionParts {
            session: session.to_owned(),
            session_json,
            peer: serde_json::value::to_raw_value(&PeerView::of(peer, false)).ok(),
            target: serde_json::value::to_raw_value(target).ok(),
            mode: Some(grant.mode),
            reason: grant.reason.map(str::to_owned),
            rule: grant.rule.to_owned(),
            grant_json,
        }
    }

    /// Whether `rec`'s grant fields are this session's.
    fn same_grant(&self, rec: &AuditRecord<'_>) -> bool {
        rec.mode.is_some()
            && rec.mode == self.mode
            && rec.reason == self.reason.as_deref()
            && rec.rule == Some(self.rule.as_str())
    }
}

impl<'a> AuditRecord<'a> {
    /// A record of `event` with nothing else set.
    pub fn new(event: AuditEvent) -> AuditRecord<'a> {
        AuditRecord {
            event,
            session: None,
            request: None,
            peer: None,
            target: None,
            mode: None,
            reason: None,
            rule: None,
            sql: None,
            shape: None,
            kind: None,
            writes: None,
            params: None,
            why: None,
            rolled_back: None,
            outcome: None,
            approval: None,
            parts: None,
            statement_fields: None,
        }
    }
}

/// How the log renders parameters.
pub(crate) struct ParamsRender<'k> {
    pub mode: ParamsMode,
    pub key: Option<&'k AuditKey>,
}

/// Rotation details, only on `rotated` records.
pub(super) struct RotatedInfo<'a> {
    pub why: &'a str,
    pub previous_file: Option<&'a str>,
}

/// Writes the record's body — a JSON object without `time` and `prev` —
/// into `out`: every field written by hand, in the order and the form
/// serde gives them (the tests check it byte for byte against the derived
/// serializer), with the session's peer and target from the bytes made at
/// open ([`SessionParts`]). Two of these per statement: cheap matters.
pub(crate) fn write_body(
    rec: &AuditRecord<'_>,
    render: &ParamsRender<'_>,
    rotated: Option<&RotatedInfo<'_>>,
    out: &mut Vec<u8>,
) {
    let mut o = Obj::new(out);
    // Event names are plain snake_case words (a test checks): no escaping.
    o.key("event");
    o.out.push(b'"');
    o.out.extend_from_slice(rec.event.as_str().as_bytes());
    o.out.push(b'"');
    o.opt_str(
        "why",
        rotated
            .map(|r| r.why)
            .or_else(|| rec.why.map(CloseWhy::as_str)),
    );
    o.opt_str("previous_file", rotated.and_then(|r| r.previous_file));
    if matches!(rec.event, AuditEvent::BrokerStart | AuditEvent::BrokerStop) {
        o.key("broker");
        o.out.extend_from_slice(b"{\"version\":");
        write_json_str(o.out, env!("CARGO_PKG_VERSION"));
        o.out.extend_from_slice(b",\"pid\":");
        o.int(u64::from(std::process::id()));
        o.out.push(b'}');
    }
    match (rec.session, rec.parts) {
        (Some(s), Some(parts)) if s == parts.session => {
            o.key("session");
            o.out.extend_from_slice(&parts.session_json);
        }
        _ => o.opt_str("session", rec.session),
    }
    o.opt_u64("request", rec.request);
    if let Some(p) = rec.peer {
        let full = rec.event.full_peer();
        o.key("peer");
        match rec.parts.and_then(|parts| parts.peer.as_deref()) {
            Some(raw) if !full => o.out.extend_from_slice(raw.get().as_bytes()),
            _ => o.serde(&PeerView::of(p, full)),
        }
    }
    if let Some(t) = rec.target {
        o.key("target");
        match rec.parts.and_then(|parts| parts.target.as_deref()) {
            Some(raw) => o.out.extend_from_slice(raw.get().as_bytes()),
            None => o.serde(t),
        }
    }
    match rec.parts {
        Some(parts) if parts.same_grant(rec) => o.fields(&parts.grant_json),
        _ => {
            o.opt_str("mode", rec.mode.map(SessionMode::as_str));
            o.opt_str("reason", rec.reason);
            o.opt_str("rule", rec.rule);
        }
    }
    match (rec.statement_fields, rec.sql) {
        (Some(fields), Some(_)) => o.fields(fields),
        (_, Some(sql)) => match rec.shape {
            Some(shape) => StatementShape::known(sql, shape),
            None => StatementShape::of(sql, rec.params.map_or(0, <[Value]>::len)),
        }
        .write(&mut o),
        (_, None) => {}
    }
    o.opt_str("kind", rec.kind);
    if let Some(w) = rec.writes {
        o.bool("writes", w);
    }
    if let Some(values) = rec.params {
        o.key("param_count");
        o.int(values.len() as u64);
        match render.mode {
            ParamsMode::Omit => {}
            ParamsMode::Plain => {
                o.key("params");
                o.serde(values);
            }
            ParamsMode::Hmac => {
                o.key("params");
                o.out.push(b'[');
                let mut text_buf = bytes::BytesMut::new();
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        o.out.push(b',');
                    }
                    match (param_text(v, &mut text_buf), render.key) {
                        (Some(text), Some(key)) => {
                            o.out.extend_from_slice(b"{\"hmac\":\"");
                            key.hash_hex_into(text, o.out);
                            o.out.extend_from_slice(b"\"}");
                        }
                        // SQL NULL; and no key (a log opened without one)
                        // never records the value itself.
                        _ => o.out.extend_from_slice(b"null"),
                    }
                }
                o.out.push(b']');
            }
        }
    }
    if let Some(r) = rec.rolled_back {
        o.bool("rolled_back", r);
    }
    if let Some(outcome) = &rec.outcome {
        o.key("outcome");
        let mut inner = Obj::new(o.out);
        inner.bool("ok", outcome.ok);
        inner.opt_str("code", outcome.code);
        inner.opt_str("sqlstate", outcome.sqlstate);
        inner.opt_str("message", outcome.message);
        inner.opt_u64("rows", outcome.rows);
        inner.opt_u64("duration_us", outcome.duration_us);
        inner.end();
    }
    if let Some(a) = rec.approval {
        o.key("approval");
        o.serde(a);
    }
    o.end();
}

/// A statement's `sql` (or `sql_redacted`), `normalized` and `fingerprint`
/// fields as [`write_body`] writes them, without braces: made once per
/// statement text and handed back in [`AuditRecord::statement_fields`].
pub(crate) fn statement_fields(sql: &str, shape: &Shape) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 * sql.len() + 64);
    let mut o = Obj::inside(&mut out);
    StatementShape::known(sql, shape).write(&mut o);
    out
}

impl StatementShape<'_> {
    fn write(&self, o: &mut Obj<'_>) {
        if self.redacted {
            o.key("sql_redacted");
            o.out.extend_from_slice(b"true");
        } else {
            o.str("sql", self.sql);
        }
        o.opt_str("normalized", self.normalized.as_deref());
        o.opt_str("fingerprint", self.fingerprint.as_deref());
    }
}

/// A JSON object being written: keys are the record's own field names,
/// which need no escaping.
struct Obj<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl<'o> Obj<'o> {
    fn new(out: &'o mut Vec<u8>) -> Obj<'o> {
        out.push(b'{');
        Obj::inside(out)
    }

    /// Fields without the braces, for an object written elsewhere
    /// ([`Obj::fields`]).
    fn inside(out: &'o mut Vec<u8>) -> Obj<'o> {
        Obj { out, first: true }
    }

    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    /// Fields written before (`"k":v,"k2":v2`), as they are.
    fn fields(&mut self, fields: &[u8]) {
        if fields.is_empty() {
            return;
        }
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.extend_from_slice(fields);
    }

    fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        write_json_str(self.out, value);
    }

    fn opt_str(&mut self, key: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.str(key, v);
        }
    }

    fn int(&mut self, value: u64) {
        self.out
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    fn opt_u64(&mut self, key: &str, value: Option<u64>) {
        if let Some(v) = value {
            self.key(key);
            self.int(v);
        }
    }

    fn bool(&mut self, key: &str, value: bool) {
        self.key(key);
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
    }

    /// A value through serde (the peer's full form, a target without
    /// parts, plain parameters, a change request's details).
    fn serde<T: Serialize + ?Sized>(&mut self, value: &T) {
        // These types serialize without failing (no maps with non-string
        // keys, no failing Serialize impls); `null` keeps the line JSON if
        // one ever did.
        if serde_json::to_writer(&mut *self.out, value).is_err() {
            self.out.extend_from_slice(b"null");
        }
    }

    fn end(self) {
        self.out.push(b'}');
    }
}

/// [`write_body`] through serde: the reference the hand-written writer is
/// checked against byte for byte.
#[cfg(test)]
fn write_body_serde(
    rec: &AuditRecord<'_>,
    render: &ParamsRender<'_>,
    rotated: Option<&RotatedInfo<'_>>,
    out: &mut Vec<u8>,
) {
    let statement = rec.sql.map(|sql| match rec.shape {
        Some(shape) => StatementShape::known(sql, shape),
        None => StatementShape::of(sql, rec.params.map_or(0, <[Value]>::len)),
    });
    let mut text_buf = bytes::BytesMut::new();
    let params: Option<Vec<ParamOut<'_>>> = match (rec.params, render.mode) {
        (None, _) | (_, ParamsMode::Omit) => None,
        (Some(values), ParamsMode::Plain) => Some(values.iter().map(ParamOut::Plain).collect()),
        (Some(values), ParamsMode::Hmac) => Some(
            values
                .iter()
                .map(|v| match (param_text(v, &mut text_buf), render.key) {
                    (None, _) => ParamOut::Null,
                    (Some(text), Some(key)) => ParamOut::Hmac {
                        hmac: key.hash(text),
                    },
                    // No key (a log opened without one) never records the
                    // value itself.
                    (Some(_), None) => ParamOut::Null,
                })
                .collect(),
        ),
    };
    let body = Body {
        event: rec.event.as_str(),
        why: rotated
            .map(|r| r.why)
            .or_else(|| rec.why.map(CloseWhy::as_str)),
        previous_file: rotated.and_then(|r| r.previous_file),
        broker: matches!(rec.event, AuditEvent::BrokerStart | AuditEvent::BrokerStop).then(|| {
            BrokerInfo {
                version: env!("CARGO_PKG_VERSION"),
                pid: std::process::id(),
            }
        }),
        session: rec.session,
        request: rec.request,
        peer: rec.peer.map(|p| {
            let full = rec.event.full_peer();
            match rec.parts.and_then(|parts| parts.peer.as_deref()) {
                Some(raw) if !full => Either::Raw(raw),
                _ => Either::Value(PeerView::of(p, full)),
            }
        }),
        target: rec.target.map(
            |t| match rec.parts.and_then(|parts| parts.target.as_deref()) {
                Some(raw) => Either::Raw(raw),
                None => Either::Value(t),
            },
        ),
        mode: rec.mode,
        reason: rec.reason,
        rule: rec.rule,
        sql: statement
            .as_ref()
            .and_then(|s| (!s.redacted).then_some(s.sql)),
        sql_redacted: statement
            .as_ref()
            .is_some_and(|s| s.redacted)
            .then_some(true),
        normalized: statement.as_ref().and_then(|s| s.normalized.as_deref()),
        fingerprint: statement.as_ref().and_then(|s| s.fingerprint.as_deref()),
        kind: rec.kind,
        writes: rec.writes,
        param_count: rec.params.map(<[Value]>::len),
        params,
        rolled_back: rec.rolled_back,
        outcome: rec.outcome.as_ref(),
        approval: rec.approval,
    };
    // Serializing these types cannot fail (no maps with non-string keys, no
    // failing Serialize impls); a failure would be a bug, caught by tests.
    serde_json::to_writer(&mut *out, &body).expect("audit record serializes");
}

/// The text PostgreSQL receives for a parameter (`None` for SQL NULL): the
/// same conversion the session binds with, so `audit-hash VALUE` matches
/// what was sent.
fn param_text<'b>(value: &Value, buf: &'b mut bytes::BytesMut) -> Option<&'b [u8]> {
    use tokio_postgres::types::{IsNull, ToSql, Type};
    buf.clear();
    let param = crate::types::TextParam::from_json(value);
    match param.to_sql(&Type::TEXT, buf) {
        Ok(IsNull::No) => Some(&buf[..]),
        Ok(IsNull::Yes) | Err(_) => None,
    }
}

/// What the audit keeps of a statement's text.
struct StatementShape<'a> {
    sql: &'a str,
    normalized: Option<Cow<'a, str>>,
    fingerprint: Option<Cow<'a, str>>,
    /// The text may hold a password (`… PASSWORD '…'`): only the normalized
    /// form, whose constants are `$n`, is kept.
    redacted: bool,
}

impl<'a> StatementShape<'a> {
    /// `nparams`: psycopg2's `%s` only means a placeholder when
    /// parameters are given; the shape is that of the text PostgreSQL sees.
    fn of(sql: &'a str, nparams: usize) -> StatementShape<'a> {
        let seen = iam_pgbroker_sql::convert_placeholders(sql, nparams)
            .unwrap_or(std::borrow::Cow::Borrowed(sql));
        let shape = Shape::of(&seen);
        StatementShape {
            sql,
            normalized: shape.normalized.map(Cow::Owned),
            fingerprint: shape.fingerprint.map(Cow::Owned),
            redacted: mentions_password(sql),
        }
    }

    /// The shape computed before (by the statement cache).
    fn known(sql: &'a str, shape: &'a Shape) -> StatementShape<'a> {
        StatementShape {
            sql,
            normalized: shape.normalized.as_deref().map(Cow::Borrowed),
            fingerprint: shape.fingerprint.as_deref().map(Cow::Borrowed),
            redacted: shape.redacted,
        }
    }
}

/// Whether `password` appears as a word (not as part of `idm_password` or
/// `password_hash`), in any case.
pub(crate) fn mentions_password(sql: &str) -> bool {
    const WORD: &[u8] = b"password";
    let bytes = sql.as_bytes();
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80;
    let at = |i: usize| {
        bytes
            .get(i..i + WORD.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(WORD))
            && (i == 0 || !is_word(bytes[i - 1]))
            && bytes.get(i + WORD.len()).is_none_or(|b| !is_word(*b))
    };
    // Every statement passes here: eight bytes at a time, looking closer
    // only at words that hold a `p` or `P`.
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let has_zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGH != 0;
    let mut i = 0;
    while i + 8 <= bytes.len() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[i..i + 8]);
        // Setting 0x20 folds `P` onto `p` (and nothing else onto it).
        let w = u64::from_ne_bytes(word) | (ONES * 0x20);
        if has_zero(w ^ (ONES * u64::from(b'p'))) && (i..i + 8).any(at) {
            return true;
        }
        i += 8;
    }
    (i..bytes.len()).any(at)
}

#[cfg(test)]
#[derive(Serialize)]
struct Body<'a> {
    event: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    why: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_file: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    broker: Option<BrokerInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer: Option<Either<'a, PeerView<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<Either<'a, &'a AuditTarget>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mode: Option<SessionMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sql: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sql_redacted: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    normalized: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fingerprint: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    writes: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    param_count: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    params: Option<Vec<ParamOut<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rolled_back: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<&'a Outcome<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    approval: Option<&'a Value>,
}

#[cfg(test)]
/// A value to serialize, or its JSON serialized before.
#[derive(Serialize)]
#[serde(untagged)]
enum Either<'a, T> {
    Value(T),
    Raw(&'a RawValue),
}

#[cfg(test)]
#[derive(Serialize)]
struct BrokerInfo {
    version: &'static str,
    pid: u32,
}

#[cfg(test)]
#[derive(Serialize)]
#[serde(untagged)]
enum ParamOut<'a> {
    Hmac { hmac: String },
    Plain(&'a Value),
    Null,
}

#[derive(Serialize)]
struct PeerView<'a> {
    uid: u32,
    user: Option<&'a str>,
    gid: u32,
    groups: &'a [String],
    pid: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    process: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unit: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exe: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cmdline: Option<&'a str>,
    /// The command line was left out because it mentions `PASSWORD`
    /// (`iam-pg -c "ALTER ROLE … PASSWORD '…'"`), as `sql_redacted`.
    #[serde(skip_serializing_if = "Option::is_none")]
    cmdline_redacted: Option<bool>,
}

impl<'a> PeerView<'a> {
    fn of(p: &'a AuditPeer, full: bool) -> PeerView<'a> {
        let cmdline = p.process.cmdline.as_deref().filter(|_| full);
        let redacted = cmdline.is_some_and(mentions_password);
        PeerView {
            uid: p.uid,
            user: p.user.as_deref(),
            gid: p.gid,
            groups: &p.groups,
            pid: p.pid,
            process: p.process.process.as_deref(),
            unit: p.process.unit.as_deref(),
            exe: p.process.exe.as_deref().filter(|_| full),
            cmdline: cmdline.filter(|_| !redacted),
            cmdline_redacted: redacted.then_some(true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::peer::ProcessInfo;
    use serde_json::json;

    fn body(rec: &AuditRecord<'_>, mode: ParamsMode, key: Option<&AuditKey>) -> Value {
        let mut out = Vec::new();
        write_body(rec, &ParamsRender { mode, key }, None, &mut out);
        serde_json::from_slice(&out).unwrap()
    }

    fn peer() -> AuditPeer {
        AuditPeer {
            uid: 1001,
            user: Some("alice".into()),
            gid: 1001,
            groups: vec!["alice".into(), "idm-admins".into()],
            pid: 4242,
            process: ProcessInfo {
                process: Some("iam-pg".into()),
                exe: Some("/usr/bin/iam-pg".into()),
                cmdline: Some("iam-pg -d czechidm".into()),
                unit: Some("session-3.scope".into()),
            },
        }
    }

    #[test]
    fn statement_with_hashed_params() {
        let key = AuditKey::from_bytes(&[7; 32]);
        let p = peer();
        let params = [
            json!("jan.novák"),
            json!(42),
            Value::Null,
            json!(["a", "b c"]),
        ];
        let sql = "UPDATE idm_identity SET disabled = true WHERE username = %s AND x = %s AND y = %s AND z = any(%s)";
        let rec = AuditRecord {
            session: Some("s1"),
            request: Some(3),
            peer: Some(&p),
            sql: Some(sql),
            kind: Some("UPDATE"),
            writes: Some(true),
            params: Some(&params),
            ..AuditRecord::new(AuditEvent::Statement)
        };
        let v = body(&rec, ParamsMode::Hmac, Some(&key));
        assert_eq!(v["event"], "statement");
        assert_eq!(v["param_count"], 4);
        assert_eq!(v["params"][0]["hmac"], key.hash("jan.novák".as_bytes()));
        assert_eq!(v["params"][1]["hmac"], key.hash(b"42"));
        assert_eq!(v["params"][2], Value::Null);
        assert_eq!(v["params"][3]["hmac"], key.hash(b"{\"a\",\"b c\"}"));
        assert_eq!(
            v["normalized"],
            "UPDATE idm_identity SET disabled = $5 WHERE username = $1 AND x = $2 AND y = $3 AND z = any($4)"
        );
        assert_eq!(v["fingerprint"].as_str().unwrap().len(), 16);
        // Statement records name who, without the long process details.
        assert_eq!(v["peer"]["user"], "alice");
        assert_eq!(v["peer"]["unit"], "session-3.scope");
        assert!(v["peer"].get("cmdline").is_none());
        assert!(!v.to_string().contains("jan.nov"));

        let v = body(&rec, ParamsMode::Plain, None);
        assert_eq!(v["params"][0], "jan.novák");
        let v = body(&rec, ParamsMode::Omit, None);
        assert!(v.get("params").is_none());
        assert_eq!(v["param_count"], 4);
    }

    #[test]
    fn the_hand_written_body_is_the_serde_body() {
        let key = AuditKey::from_bytes(&[7; 32]);
        let mut p = peer();
        let mut redacted_peer = peer();
        redacted_peer.process.cmdline = Some("iam-pg -c \"ALTER ROLE x PASSWORD 'y'\"".into());
        let target = AuditTarget {
            db: "czechidm".into(),
            dbname: Some("czech\"idm\u{1}".into()),
            db_user: "czechidm".into(),
            container: Some("czechidm-db".into()),
            address: Some("172.18.0.2:5432".into()),
            ..AuditTarget::default()
        };
        let params = [
            json!("jan.novák\n\t\u{7f}"),
            json!(42),
            Value::Null,
            json!(["a", "b c"]),
            json!({"k": [1.5, null]}),
        ];
        let approval = json!({"id": "ab", "requester": {"uid": 1, "user": "x"}});
        let db_error = ErrorInfo {
            sqlstate: Some("22P02".into()),
            ..ErrorInfo::new(iam_pgbroker_proto::ErrorCode::Database, "secret \"quoted\"")
        };
        let denied = ErrorInfo::new(
            iam_pgbroker_proto::ErrorCode::Denied,
            "no rule\u{0}grants it",
        );
        let shape = Shape::of("SELECT * FROM t WHERE a = $1");
        let fields = statement_fields("SELECT * FROM t WHERE a = $1", &shape);
        let secret_shape = Shape::of("ALTER ROLE x PASSWORD $1");
        let secret_fields = statement_fields("ALTER ROLE x PASSWORD $1", &secret_shape);
        for who in [&p, &redacted_peer] {
            let parts = SessionParts::of(
                "0123456789abcdef",
                who,
                &target,
                Grant {
                    mode: SessionMode::Write,
                    reason: Some("INC-1 é \\ /"),
                    rule: "rule \"r\"",
                },
            );
            let base = |event| AuditRecord {
                session: Some("0123456789abcdef"),
                request: Some(u64::MAX),
                peer: Some(who),
                target: Some(&target),
                mode: Some(SessionMode::Write),
                rule: Some("rule \"r\""),
                reason: Some("INC-1 é \\ /"),
                ..AuditRecord::new(event)
            };
            let records = [
                AuditRecord {
                    sql: Some("SELECT * FROM t WHERE a = %s AND b = '\"\\\r'"),
                    params: Some(&params),
                    kind: Some("SELECT"),
                    writes: Some(false),
                    ..base(AuditEvent::Statement)
                },
                AuditRecord {
                    sql: Some("SELECT * FROM t WHERE a = $1"),
                    shape: Some(&shape),
                    params: Some(&params[..1]),
                    parts: Some(&parts),
                    ..base(AuditEvent::Statement)
                },
                AuditRecord {
                    sql: Some("SELECT * FROM t WHERE a = $1"),
                    shape: Some(&shape),
                    statement_fields: Some(&fields),
                    params: Some(&params[..1]),
                    parts: Some(&parts),
                    ..base(AuditEvent::Statement)
                },
                AuditRecord {
                    sql: Some("ALTER ROLE x PASSWORD $1"),
                    shape: Some(&secret_shape),
                    statement_fields: Some(&secret_fields),
                    ..base(AuditEvent::StatementRefused)
                },
                AuditRecord {
                    sql: Some("ALTER ROLE x PASSWORD 'geheim'"),
                    outcome: Some(Outcome::error(&denied, None)),
                    parts: Some(&parts),
                    ..base(AuditEvent::StatementRefused)
                },
                AuditRecord {
                    sql: Some("SELECT 1"),
                    rule: Some("guard: no \"functions\""),
                    session: Some("another"),
                    parts: Some(&parts),
                    ..base(AuditEvent::StatementRefused)
                },
                AuditRecord {
                    reason: None,
                    mode: Some(SessionMode::Read),
                    parts: Some(&parts),
                    ..base(AuditEvent::Commit)
                },
                AuditRecord {
                    outcome: Some(Outcome::ok(Some(3), Some(Duration::from_micros(1234)))),
                    kind: Some("UPDATE"),
                    writes: Some(true),
                    parts: Some(&parts),
                    ..base(AuditEvent::Result)
                },
                AuditRecord {
                    outcome: Some(Outcome::error(&db_error, Some(Duration::from_secs(2)))),
                    ..base(AuditEvent::Result)
                },
                AuditRecord {
                    why: Some(CloseWhy::WriteTimeout),
                    rolled_back: Some(false),
                    parts: Some(&parts),
                    ..base(AuditEvent::SessionClose)
                },
                AuditRecord {
                    parts: Some(&parts),
                    outcome: Some(Outcome::ok(None, None)),
                    ..base(AuditEvent::SessionOpen)
                },
                AuditRecord {
                    approval: Some(&approval),
                    ..base(AuditEvent::RequestSubmit)
                },
                AuditRecord::new(AuditEvent::BrokerStart),
                AuditRecord {
                    params: Some(&[]),
                    ..AuditRecord::new(AuditEvent::Refused)
                },
            ];
            let rotated = RotatedInfo {
                why: "size",
                previous_file: Some("/var/log/a\"b"),
            };
            for rec in &records {
                for mode in [ParamsMode::Hmac, ParamsMode::Plain, ParamsMode::Omit] {
                    for key in [Some(&key), None] {
                        for rot in [None, Some(&rotated)] {
                            let render = ParamsRender { mode, key };
                            let (mut fast, mut reference) = (Vec::new(), Vec::new());
                            write_body(rec, &render, rot, &mut fast);
                            write_body_serde(rec, &render, rot, &mut reference);
                            assert_eq!(
                                String::from_utf8(fast).unwrap(),
                                String::from_utf8(reference).unwrap(),
                                "{:?} {mode:?}",
                                rec.event
                            );
                        }
                    }
                }
            }
        }
        p.user = None;
        let parts = SessionParts::of(
            "s2",
            &p,
            &target,
            Grant {
                mode: SessionMode::Read,
                reason: None,
                rule: "r",
            },
        );
        let rec = AuditRecord {
            peer: Some(&p),
            parts: Some(&parts),
            ..AuditRecord::new(AuditEvent::Statement)
        };
        let render = ParamsRender {
            mode: ParamsMode::Hmac,
            key: None,
        };
        let (mut fast, mut reference) = (Vec::new(), Vec::new());
        write_body(&rec, &render, None, &mut fast);
        write_body_serde(&rec, &render, None, &mut reference);
        assert_eq!(fast, reference);
    }

    #[test]
    fn event_names_need_no_escaping() {
        use AuditEvent as E;
        for e in [
            E::BrokerStart,
            E::BrokerStop,
            E::SessionOpen,
            E::SessionRefused,
            E::SessionClose,
            E::Statement,
            E::StatementRefused,
            E::Commit,
            E::Rollback,
            E::Result,
            E::Rotated,
            E::RequestSubmit,
            E::RequestDryRun,
            E::RequestApprove,
            E::RequestExecute,
            E::RequestReject,
            E::RequestCancel,
            E::RequestExpire,
            E::RequestRefused,
            E::RequestRecover,
            E::RequestRemove,
            E::SessionCancel,
            E::SessionTerminate,
            E::Refused,
            E::RefusalSummary,
        ] {
            let name = e.as_str();
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name}"
            );
            assert_eq!(serde_json::to_value(e).unwrap(), name);
        }
    }

    #[test]
    fn session_records_carry_the_command_line() {
        let p = peer();
        let rec = AuditRecord {
            peer: Some(&p),
            why: Some(CloseWhy::Disconnect),
            rolled_back: Some(true),
            ..AuditRecord::new(AuditEvent::SessionClose)
        };
        let v = body(&rec, ParamsMode::Hmac, None);
        assert_eq!(v["peer"]["cmdline"], "iam-pg -d czechidm");
        assert_eq!(v["peer"]["exe"], "/usr/bin/iam-pg");
        assert_eq!(v["why"], "disconnect");
        assert_eq!(v["rolled_back"], true);
    }

    #[test]
    fn passwords_in_sql_are_redacted() {
        let rec = AuditRecord {
            sql: Some("ALTER ROLE czechidm PASSWORD 'Tajné-heslo1'"),
            ..AuditRecord::new(AuditEvent::StatementRefused)
        };
        let v = body(&rec, ParamsMode::Hmac, None);
        assert!(!v.to_string().contains("Tajné"), "{v}");
        assert_eq!(v["sql_redacted"], true);
        assert!(v["normalized"].as_str().unwrap().contains("PASSWORD $1"));
        assert!(mentions_password("alter user x with Password 'y'"));
        assert!(!mentions_password("SELECT * FROM idm_password"));
        assert!(!mentions_password("SELECT password_hash FROM t"));
        assert!(mentions_password("SELECT password FROM idm_password"));
        // Wherever the word falls in the eight-byte steps.
        for pad in 0..20 {
            let spaces = " ".repeat(pad);
            assert!(mentions_password(&format!("{spaces}PassWord")), "{pad}");
            assert!(
                mentions_password(&format!("{spaces}password 'x' ;")),
                "{pad}"
            );
            assert!(!mentions_password(&format!("{spaces}xpassword")), "{pad}");
            assert!(!mentions_password(&format!("{spaces}passwords")), "{pad}");
            assert!(!mentions_password(&format!("{spaces}passwor")), "{pad}");
        }

        // Nor through the command line of the client that sent it.
        let mut p = peer();
        p.process.cmdline = Some("iam-pg -c ALTER ROLE czechidm PASSWORD 'Tajné-heslo1'".into());
        let rec = AuditRecord {
            peer: Some(&p),
            ..AuditRecord::new(AuditEvent::SessionOpen)
        };
        let v = body(&rec, ParamsMode::Hmac, None);
        assert!(!v.to_string().contains("Tajné"), "{v}");
        assert_eq!(v["peer"]["cmdline_redacted"], true);
        assert_eq!(v["peer"]["exe"], "/usr/bin/iam-pg");
        let v = body(
            &AuditRecord {
                peer: Some(&peer()),
                ..AuditRecord::new(AuditEvent::SessionOpen)
            },
            ParamsMode::Hmac,
            None,
        );
        assert!(v["peer"].get("cmdline_redacted").is_none(), "{v}");
    }

    #[test]
    fn database_error_messages_are_not_kept() {
        let db = ErrorInfo {
            sqlstate: Some("22P02".into()),
            ..ErrorInfo::new(
                iam_pgbroker_proto::ErrorCode::Database,
                "invalid input syntax for type uuid: \"secret\"",
            )
        };
        let o = Outcome::error(&db, Some(Duration::from_micros(1500)));
        assert_eq!(
            serde_json::to_value(o).unwrap(),
            json!({"ok": false, "code": "database", "sqlstate": "22P02", "duration_us": 1500})
        );
        let denied = ErrorInfo::new(iam_pgbroker_proto::ErrorCode::Denied, "no rule grants it");
        assert_eq!(
            Outcome::error(&denied, None).message,
            Some("no rule grants it")
        );
    }
}
