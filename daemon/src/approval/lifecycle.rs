//! The life of a change request: submit (policy, guard, dry run, store),
//! approve (checks, run, compare counts, commit or roll back), reject,
//! cancel, expire, and reading requests back. Every step is an audit
//! record; every decision is written before it takes effect.

use super::grant;
use super::store::{self, LoadError, StoredRequest};
use crate::audit::{
    timefmt, AuditEvent, AuditKey, AuditPeer, AuditRecord, AuditTarget, Outcome, SessionMode,
};
use crate::broker::Broker;
use crate::config::Config;
use crate::error::RequestError;
use crate::peer::PeerIdentity;
use crate::session::{ChunkLimits, ServerTarget, Session, SessionSettings};
use iam_pgbroker_proto::{
    ApprovalRequest, ErrorCode, ErrorInfo, Person, RequestState, RequestStatement, SubmitParams,
};
use iam_pgbroker_sql::{Mode, RefusalKind, SqlGuard};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;
use time::OffsetDateTime;
use tracing::{error, info, warn};

/// Who acts on a request, as the kernel said when they connected.
pub struct Actor<'a> {
    /// Shared broker state.
    pub broker: &'a Broker,
    /// The caller's identity.
    pub peer: &'a PeerIdentity,
    /// The same, as the audit records it.
    pub audit_peer: &'a AuditPeer,
    /// The protocol request's id, for the audit.
    pub request: u64,
}

impl Actor<'_> {
    fn person(&self) -> Person {
        Person {
            uid: self.peer.uid,
            user: self.peer.user.clone(),
        }
    }

    /// A record of `event` on request `stored` by this actor.
    fn record<'r>(
        &'r self,
        event: AuditEvent,
        stored: &'r StoredRequest,
        target: &'r AuditTarget,
        approval: &'r Value,
    ) -> AuditRecord<'r> {
        AuditRecord {
            session: Some(&stored.request.id),
            request: Some(self.request),
            peer: Some(self.audit_peer),
            target: Some(target),
            mode: Some(SessionMode::Write),
            reason: Some(&stored.request.reason),
            rule: Some(stored.request.rule.as_str()).filter(|r| !r.is_empty()),
            approval: Some(approval),
            ..AuditRecord::new(event)
        }
    }
}

/// Where a run goes: dry run at submit, or the real one after approval.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    DryRun,
    Execute,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::DryRun => "dry_run",
            Phase::Execute => "execute",
        }
    }
}

/// Submits a change: the policy must grant `request` (or `write`) for the
/// instance and database user; every statement must pass the write-session
/// guard; the dry run must succeed. Only then is the request stored.
pub async fn submit(
    actor: &Actor<'_>,
    params: SubmitParams,
) -> Result<ApprovalRequest, RequestError> {
    let config = actor.broker.config();
    let audit = actor.broker.audit();
    let n = params.statements.len();
    if n == 0 {
        return Err(RequestError::BadRequest(
            "a change request needs at least one statement".into(),
        ));
    }
    if n > config.approval.max_statements {
        return Err(RequestError::BadRequest(format!(
            "a change request may have at most {} statements (approval.max_statements); this one has {n}",
            config.approval.max_statements
        )));
    }
    let id = store::new_id()
        .map_err(|e| RequestError::Internal(format!("cannot make a request id: {e}")))?;
    let instance = config.target(&params.db, params.dbname.as_deref());
    let now = OffsetDateTime::now_utc();
    let mut stored = StoredRequest {
        request: ApprovalRequest {
            id: id.clone(),
            state: RequestState::Pending,
            db: params.db.clone(),
            dbname: instance.dbname.clone(),
            db_user: params.user.clone(),
            requester: actor.person(),
            reason: params.reason.trim().to_owned(),
            rule: String::new(),
            statements: params
                .statements
                .iter()
                .map(|s| RequestStatement {
                    sql: s.sql.clone(),
                    params: s.params.clone(),
                    kind: String::new(),
                    dry_run_rows: 0,
                    rows: None,
                    changes: None,
                    changes_at_approval: None,
                })
                .collect(),
            submitted: timefmt::format_utc(now),
            expires: timefmt::format_utc(now + config.approval.expiry),
            decided_by: None,
            decided_at: None,
            comment: None,
            error: None,
        },
        requester_gid: actor.peer.gid,
        requester_groups: actor.peer.group_names(),
        db_role: None,
        statement_timeout_ms: config.database.statement_timeout_ms,
        idle_in_transaction_timeout_ms: config.database.idle_in_transaction_timeout_ms,
        xid: None,
    };
    let mut target = target_of(&stored);

    // The instance's own database needs no `dbnames` grant.
    let own_dbname = config.target(&params.db, None).dbname;
    let other_dbname = Some(instance.dbname.as_str()).filter(|d| *d != own_dbname);
    let rule = match grant::submit_rule(
        &config.policy,
        actor.peer,
        &params.db,
        &params.user,
        other_dbname,
    ) {
        Ok(rule) => rule,
        Err(why) => {
            return Err(refuse(
                actor,
                &stored,
                &target,
                "submit",
                RequestError::Denied(why),
            ))
        }
    };
    stored.request.rule = rule.name.clone();
    stored.db_role = rule.db_role.clone();
    if let Some(ms) = rule.statement_timeout_ms {
        stored.statement_timeout_ms = ms;
    }
    if let Some(ms) = rule.idle_in_transaction_timeout_ms {
        stored.idle_in_transaction_timeout_ms = ms;
    }

    // The guard of a write session, before anything reaches PostgreSQL:
    // a request may do exactly what a write session without DDL may.
    let guard = SqlGuard::new();
    for i in 0..n {
        let statement = &stored.request.statements[i];
        match guard_check(&guard, &statement.sql, statement.params.len(), rule.ddl) {
            Ok(kind) => stored.request.statements[i].kind = kind,
            Err((error, what)) => {
                let error = numbered(error, i, n);
                let info = error.to_wire();
                let approval = json!({"id": id, "phase": "submit", "statement": i + 1});
                let record = AuditRecord {
                    sql: Some(&statement.sql),
                    params: Some(&statement.params),
                    rule: what.as_deref(),
                    outcome: Some(Outcome::error(&info, None)),
                    ..actor.record(AuditEvent::StatementRefused, &stored, &target, &approval)
                };
                let _ = audit.record(&record);
                info!(request = %id, statement = i + 1, code = %info.code, "change request refused by the guard");
                return Err(error);
            }
        }
    }

    // Bounded per person: pending requests and what they hold.
    let key = key(actor.broker, &config)?;
    sweep(actor, &config, &key).await;
    let (pending, bytes) = actor
        .broker
        .approvals()
        .pending_of(&config.approval.dir, &key, actor.peer.uid)
        .map_err(|e| {
            RequestError::Internal(format!(
                "cannot read the change requests in {}: {e}",
                config.approval.dir.display()
            ))
        })?;
    let size = store::IndexEntry::of(&stored).bytes;
    let limit = if pending >= config.approval.max_pending_per_user {
        Some(format!(
            "{} has {pending} pending change requests, the most one person may have \
             (approval.max_pending_per_user); cancel one (iam-pg cancel ID) or wait for a decision",
            actor.peer.describe()
        ))
    } else if bytes + size > config.approval.max_pending_bytes_per_user {
        Some(format!(
            "{}'s pending change requests would hold {} bytes of statements, parameters and reasons, \
             more than approval.max_pending_bytes_per_user ({}); cancel one or wait for a decision",
            actor.peer.describe(),
            bytes + size,
            config.approval.max_pending_bytes_per_user
        ))
    } else {
        None
    };
    if let Some(message) = limit {
        return Err(refuse(
            actor,
            &stored,
            &target,
            "submit",
            RequestError::Limit(message),
        ));
    }

    // Fail closed: the dry run sends the statements to PostgreSQL, so the
    // submission is in the audit first.
    let approval = json!({
        "id": id,
        "requester": person_json(&stored.request.requester),
        "statements": n,
        "expires": stored.request.expires,
    });
    audit
        .record(&actor.record(AuditEvent::RequestSubmit, &stored, &target, &approval))
        .map_err(RequestError::Audit)?;

    let started = Instant::now();
    let ran = match run(actor, &config, &stored, Phase::DryRun, &mut target).await {
        Ok(ran) => ran,
        Err(e) => return Err(dry_run_failed(actor, &stored, &target, started, e)),
    };
    let Ran {
        mut session,
        rows,
        changes,
        error,
    } = ran;
    // A dry run never commits, whatever happened.
    let _ = session.rollback().await;
    let _ = session.close().await;
    if let Some((i, e)) = error {
        return Err(dry_run_failed(
            actor,
            &stored,
            &target,
            started,
            numbered(e, i, n),
        ));
    }
    for ((statement, count), changed) in
        stored.request.statements.iter_mut().zip(&rows).zip(changes)
    {
        statement.dry_run_rows = *count;
        statement.changes = changed;
    }

    if let Err(e) = actor
        .broker
        .approvals()
        .save(&config.approval.dir, &key, &stored)
    {
        error!(request = %id, dir = %config.approval.dir.display(), cause = %e, "cannot store a change request");
        let error = RequestError::Internal(format!(
            "the dry run succeeded but the request could not be stored in {}: {e}",
            config.approval.dir.display()
        ));
        return Err(dry_run_failed(actor, &stored, &target, started, error));
    }
    let approval = json!({
        "id": id,
        "requester": person_json(&stored.request.requester),
        "dry_run_rows": rows,
        "stored": true,
        "expires": stored.request.expires,
    });
    let record = AuditRecord {
        outcome: Some(Outcome::ok(
            Some(rows.iter().sum()),
            Some(started.elapsed()),
        )),
        ..actor.record(AuditEvent::RequestDryRun, &stored, &target, &approval)
    };
    // A request that is not in the audit chain must not be approvable.
    if let Err(e) = audit.record(&record) {
        let _ = actor
            .broker
            .approvals()
            .delete(&config.approval.dir, &key, &id);
        return Err(RequestError::Audit(e));
    }
    info!(request = %id, db = %stored.request.db, db_user = %stored.request.db_user, statements = n, rows = ?rows, "change request submitted");
    Ok(stored.request)
}

/// Approves a pending request and runs it: in one transaction as the
/// target database user, each statement's count compared with its dry run.
/// Equal counts commit (`executed`); any difference or a database error
/// rolls back (`drifted`). Exactly once: the request's lock is held from
/// the state check to the final write, and the state is `executing` on
/// disk before anything runs.
pub async fn approve(
    actor: &Actor<'_>,
    id: &str,
    comment: Option<String>,
) -> Result<ApprovalRequest, RequestError> {
    let config = actor.broker.config();
    let audit = actor.broker.audit();
    let key = key(actor.broker, &config)?;
    let _lock = actor.broker.approvals().lock(id).await;
    let stored = load(actor, &config, &key, id, true)?;
    let mut stored = settle(actor, &config, &key, stored).await;
    let mut target = target_of(&stored);
    let rule = check_decision(actor, &config, &stored, &target, "approve")?;
    // The requester's own grant may have been withdrawn since: a change
    // its author may no longer ask for is not run.
    let own_dbname = config.target(&stored.request.db, None).dbname;
    if let Err(why) = grant::submit_rule(
        &config.policy,
        &stored.requester_identity(),
        &stored.request.db,
        &stored.request.db_user,
        Some(stored.request.dbname.as_str()).filter(|d| *d != own_dbname),
    ) {
        let error = RequestError::Denied(format!(
            "the requester may no longer submit this change: {why}"
        ));
        return Err(refuse(actor, &stored, &target, "approve", error));
    }

    let approver = actor.person();
    record_decision(
        actor,
        AuditEvent::RequestApprove,
        &stored,
        &target,
        &rule.name,
        &approver,
        comment.as_deref(),
    )?;

    stored.request.state = RequestState::Executing;
    stored.request.decided_by = Some(approver.clone());
    stored.request.decided_at = Some(timefmt::format_utc(OffsetDateTime::now_utc()));
    stored.request.comment = comment;
    actor
        .broker
        .approvals()
        .save(&config.approval.dir, &key, &stored)
        .map_err(|e| {
            RequestError::Internal(format!(
                "cannot mark request {id} as executing, so it did not run: {e}"
            ))
        })?;

    let started = Instant::now();
    let ran = match run(actor, &config, &stored, Phase::Execute, &mut target).await {
        Ok(ran) => ran,
        Err(e) => return Err(back_to_pending(actor, &config, &key, stored, &target, e)),
    };
    let Ran {
        mut session,
        rows,
        changes,
        error,
    } = ran;
    for ((statement, count), changed) in
        stored.request.statements.iter_mut().zip(&rows).zip(changes)
    {
        statement.rows = Some(*count);
        // Content, not counts: the same rows, changed the same way.
        statement.changes_at_approval = match (&statement.changes, changed) {
            (Some(dry_run), Some(now)) => {
                super::changes::differing(dry_run, &now, config.approval.diff_rows)
            }
            // Captured in the dry run but not now (or the other way):
            // the statement is not what was approved.
            (Some(_), None) => Some(iam_pgbroker_proto::Changes {
                table: String::new(),
                key: Vec::new(),
                count: *count,
                rows: Vec::new(),
                digest: String::new(),
            }),
            (None, _) => None,
        };
    }
    let drifted = stored.request.statements.iter().any(|s| s.drifted());
    let n = stored.request.statements.len();
    let (state, failure) = match error {
        Some((_, e)) if !is_about_the_data(&e) => {
            // Nothing reached the data (the connection broke, the audit
            // failed): the request waits again.
            let _ = session.rollback().await;
            let _ = session.close().await;
            for statement in &mut stored.request.statements {
                statement.rows = None;
                statement.changes_at_approval = None;
            }
            return Err(back_to_pending(actor, &config, &key, stored, &target, e));
        }
        Some((i, e)) => {
            let _ = session.rollback().await;
            let _ = session.close().await;
            (RequestState::Drifted, Some(numbered_info(&e, i, n)))
        }
        None if drifted => {
            let _ = session.rollback().await;
            let _ = session.close().await;
            (RequestState::Drifted, None)
        }
        None => match remember_xid(actor, &config, &key, &mut stored, &mut session).await {
            Err(e) => {
                // Without its transaction id on disk a crash during the
                // commit could not be told from a rollback: not committed.
                let _ = session.rollback().await;
                let _ = session.close().await;
                return Err(back_to_pending(actor, &config, &key, stored, &target, e));
            }
            Ok(()) => match session.commit().await {
                Ok(()) => {
                    let _ = session.close().await;
                    (RequestState::Executed, None)
                }
                // PostgreSQL refused the commit (a deferred constraint, a
                // serialization failure): it rolled back.
                Err(RequestError::Postgres(e)) if e.as_db_error().is_some() => {
                    let _ = session.close().await;
                    (
                        RequestState::Drifted,
                        Some(RequestError::Postgres(e).to_wire()),
                    )
                }
                Err(e) => {
                    // The connection broke while committing: whether PostgreSQL
                    // committed is asked later, by its transaction id
                    // (`settle`, at the next read of the request).
                    let _ = session.close().await;
                    (RequestState::Executing, Some(e.to_wire()))
                }
            },
        },
    };
    stored.request.state = state;
    stored.request.error = failure;
    if let Err(e) = actor
        .broker
        .approvals()
        .save(&config.approval.dir, &key, &stored)
    {
        // The file still says `executing`: never run again, and `show`
        // tells people to look at the data and the audit.
        error!(request = %id, cause = %e, state = %state, "cannot write the final state of a change request");
    }

    let drift: Vec<Value> = stored
        .request
        .drift()
        .map(|(i, s)| {
            json!({
                "statement": i + 1,
                "dry_run_rows": s.dry_run_rows,
                "rows": s.rows,
                "dry_run_digest": s.changes.as_ref().map(|c| &c.digest),
                "digest": s.changes_at_approval.as_ref().map(|c| &c.digest),
            })
        })
        .collect();
    let message = match (&stored.request.error, drift.is_empty()) {
        (Some(info), _) => Some(info.message.clone()),
        (None, false) => Some(drift_text(&stored.request)),
        (None, true) => None,
    };
    let approval = json!({
        "id": id,
        "requester": person_json(&stored.request.requester),
        "approver": person_json(&approver),
        "state": state.as_str(),
        "dry_run_rows": stored.request.statements.iter().map(|s| s.dry_run_rows).collect::<Vec<_>>(),
        "rows": rows,
        "drift": drift,
    });
    let outcome = match state {
        RequestState::Executed => Outcome::ok(Some(rows.iter().sum()), Some(started.elapsed())),
        _ => Outcome {
            ok: false,
            code: Some(state.as_str()),
            sqlstate: stored
                .request
                .error
                .as_ref()
                .and_then(|e| e.sqlstate.as_deref()),
            message: message.as_deref().filter(|_| {
                // PostgreSQL's messages may quote values; keep only ours.
                stored
                    .request
                    .error
                    .as_ref()
                    .is_none_or(|e| e.sqlstate.is_none())
            }),
            ..Outcome::ok(None, Some(started.elapsed()))
        },
    };
    let record = AuditRecord {
        rule: Some(&rule.name),
        outcome: Some(outcome),
        ..actor.record(AuditEvent::RequestExecute, &stored, &target, &approval)
    };
    // What ran has ended; its outcome is recorded best effort.
    let _ = audit.record(&record);
    info!(request = %id, state = %state, rows = ?rows, approver = %actor.peer.describe(), "change request approved");
    Ok(stored.request)
}

/// Rejects a pending request; `comment` says why.
pub async fn reject(
    actor: &Actor<'_>,
    id: &str,
    comment: String,
) -> Result<ApprovalRequest, RequestError> {
    let config = actor.broker.config();
    let key = key(actor.broker, &config)?;
    let _lock = actor.broker.approvals().lock(id).await;
    let mut stored = load(actor, &config, &key, id, true)?;
    let target = target_of(&stored);
    let rule = check_decision(actor, &config, &stored, &target, "reject")?;
    let approver = actor.person();
    record_decision(
        actor,
        AuditEvent::RequestReject,
        &stored,
        &target,
        &rule.name,
        &approver,
        Some(&comment),
    )?;
    stored.request.state = RequestState::Rejected;
    stored.request.decided_by = Some(approver);
    stored.request.decided_at = Some(timefmt::format_utc(OffsetDateTime::now_utc()));
    stored.request.comment = Some(comment);
    write_state(actor, &config, &key, &stored)?;
    info!(request = %id, by = %actor.peer.describe(), "change request rejected");
    Ok(stored.request)
}

/// Withdraws a pending request; only its requester may.
pub async fn cancel(actor: &Actor<'_>, id: &str) -> Result<ApprovalRequest, RequestError> {
    let config = actor.broker.config();
    let key = key(actor.broker, &config)?;
    let _lock = actor.broker.approvals().lock(id).await;
    let mut stored = load(actor, &config, &key, id, true)?;
    let target = target_of(&stored);
    if stored.request.requester.uid != actor.peer.uid {
        let error = RequestError::Denied(format!(
            "{} may not cancel request {id}: only its requester, {}, may",
            actor.peer.describe(),
            stored.request.requester
        ));
        return Err(refuse(actor, &stored, &target, "cancel", error));
    }
    if stored.request.state != RequestState::Pending {
        let error = not_pending(&stored, "cancelled");
        return Err(refuse(actor, &stored, &target, "cancel", error));
    }
    let approval = json!({"id": id, "requester": person_json(&stored.request.requester)});
    actor
        .broker
        .audit()
        .record(&actor.record(AuditEvent::RequestCancel, &stored, &target, &approval))
        .map_err(RequestError::Audit)?;
    stored.request.state = RequestState::Cancelled;
    stored.request.decided_by = Some(actor.person());
    stored.request.decided_at = Some(timefmt::format_utc(OffsetDateTime::now_utc()));
    write_state(actor, &config, &key, &stored)?;
    info!(request = %id, "change request cancelled by its requester");
    Ok(stored.request)
}

/// One request, for its requester and for those who may approve it.
pub async fn show(actor: &Actor<'_>, id: &str) -> Result<ApprovalRequest, RequestError> {
    let config = actor.broker.config();
    let key = key(actor.broker, &config)?;
    // Reading does not wait for an approval that is running.
    let lock = actor.broker.approvals().try_lock(id);
    let mut stored = load(actor, &config, &key, id, lock.is_some())?;
    if lock.is_some() {
        stored = settle(actor, &config, &key, stored).await;
    }
    if !visible(actor, &config, &stored) {
        return Err(RequestError::Denied(format!(
            "{} may not see request {id}: it is not theirs, and no rule lets them approve changes to {} as {}",
            actor.peer.describe(),
            stored.request.db,
            stored.request.db_user
        )));
    }
    Ok(stored.request)
}

/// The requests the caller may see, oldest first: pending ones, or all
/// with `all`. Also the ids of files that were refused (changed outside
/// the broker).
pub async fn list(
    actor: &Actor<'_>,
    all: bool,
) -> Result<(Vec<ApprovalRequest>, Vec<String>), RequestError> {
    let config = actor.broker.config();
    let key = key(actor.broker, &config)?;
    sweep(actor, &config, &key).await;
    // The index says which requests qualify; only their files are read
    // (each to check its seal).
    let mut approvable: std::collections::HashMap<(String, String), bool> = Default::default();
    let (ids, mut refused) = actor
        .broker
        .approvals()
        .select(&config.approval.dir, &key, |e| {
            let wanted = all || matches!(e.state, RequestState::Pending | RequestState::Executing);
            wanted
                && (e.requester == actor.peer.uid
                    || *approvable
                        .entry((e.db.clone(), e.db_user.clone()))
                        .or_insert_with(|| {
                            grant::approve_rule(&config.policy, actor.peer, &e.db, &e.db_user)
                                .is_some()
                        }))
        })
        .map_err(|e| {
            RequestError::Internal(format!(
                "cannot list change requests in {}: {e}",
                config.approval.dir.display()
            ))
        })?;
    let mut requests = Vec::new();
    for id in ids {
        let lock = actor.broker.approvals().try_lock(&id);
        let loaded = match load(actor, &config, &key, &id, lock.is_some()) {
            Ok(stored) if lock.is_some() => Ok(settle(actor, &config, &key, stored).await),
            other => other,
        };
        match loaded {
            Ok(stored) => {
                if (all || stored.request.state == RequestState::Pending)
                    && visible(actor, &config, &stored)
                {
                    requests.push(stored.request);
                }
            }
            // Removed between listing and reading.
            Err(RequestError::NotFound(_)) => {}
            Err(_) => refused.push(id),
        }
    }
    requests.sort_by(|a, b| a.submitted.cmp(&b.submitted).then(a.id.cmp(&b.id)));
    Ok((requests, refused))
}

/// The key that seals request files.
fn key(broker: &Broker, config: &Config) -> Result<AuditKey, RequestError> {
    broker
        .approvals()
        .key(broker.audit(), &config.audit.key_file)
        .map_err(|e| {
            error!(cause = %e, "no key to seal change requests with");
            RequestError::Internal(format!("change requests cannot be sealed: {e}"))
        })
}

/// Reads request `id`, refusing (and reporting) a file changed outside the
/// broker, and, when the caller holds its lock (`locked`), marks it expired
/// when its time has passed. Without the lock the file is only read: it is
/// always replaced whole, so a read sees one state or the next.
fn load(
    actor: &Actor<'_>,
    config: &Config,
    key: &AuditKey,
    id: &str,
    locked: bool,
) -> Result<StoredRequest, RequestError> {
    let dir = &config.approval.dir;
    let mut stored = match store::read(dir, key, id) {
        Ok(stored) => stored,
        Err(LoadError::NotFound) => {
            return Err(RequestError::NotFound(format!("no change request {id}")))
        }
        Err(LoadError::Io(e)) => {
            error!(request = %id, dir = %dir.display(), cause = %e, "cannot read a change request");
            return Err(RequestError::Internal(format!(
                "cannot read change request {id}: {e}"
            )));
        }
        Err(LoadError::Refused(why)) => {
            error!(request = %id, dir = %dir.display(), "REFUSED a change request file: {why}; it will not be executed");
            let message = format!(
                "change request {id} is refused and will not be executed: {why} (see the broker's journal)"
            );
            let info = ErrorInfo::new(ErrorCode::Internal, message.clone());
            let approval =
                json!({"id": id, "action": "read", "file": dir.join(format!("{id}.json"))});
            let record = AuditRecord {
                session: Some(id),
                request: Some(actor.request),
                peer: Some(actor.audit_peer),
                outcome: Some(Outcome::error(&info, None)),
                approval: Some(&approval),
                ..AuditRecord::new(AuditEvent::RequestRefused)
            };
            let _ = actor.broker.audit().record(&record);
            return Err(RequestError::Internal(message));
        }
    };
    if locked && stored.request.state == RequestState::Pending && past(&stored.request.expires) {
        stored.request.state = RequestState::Expired;
        if let Err(e) = actor.broker.approvals().save(dir, key, &stored) {
            error!(request = %id, cause = %e, "cannot mark a change request expired");
        }
        let target = target_of(&stored);
        let approval = json!({
            "id": id,
            "requester": person_json(&stored.request.requester),
            "expires": stored.request.expires,
        });
        let record = AuditRecord {
            peer: None,
            ..actor.record(AuditEvent::RequestExpire, &stored, &target, &approval)
        };
        let _ = actor.broker.audit().record(&record);
        info!(request = %id, expires = %stored.request.expires, "change request expired");
    }
    Ok(stored)
}

/// Whether an RFC 3339 time has passed (an unreadable one has: a request
/// whose expiry cannot be read is not run).
fn past(time: &str) -> bool {
    match OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339) {
        Ok(t) => OffsetDateTime::now_utc() >= t,
        Err(_) => true,
    }
}

fn visible(actor: &Actor<'_>, config: &Config, stored: &StoredRequest) -> bool {
    stored.request.requester.uid == actor.peer.uid
        || grant::approve_rule(
            &config.policy,
            actor.peer,
            &stored.request.db,
            &stored.request.db_user,
        )
        .is_some()
}

/// The checks every decision (approve, reject) shares, in this order:
/// not the requester's own, an `approve` grant for its instance and
/// database user (so that nobody else learns more than "denied"), still
/// pending. The approver's rule.
fn check_decision(
    actor: &Actor<'_>,
    config: &Config,
    stored: &StoredRequest,
    target: &AuditTarget,
    action: &str,
) -> Result<crate::policy::Rule, RequestError> {
    // Two people, whatever the rules say: the same uid never decides on
    // its own change (root included).
    if stored.request.requester.uid == actor.peer.uid {
        let hint = if action == "reject" {
            "; withdraw it with `iam-pg cancel`"
        } else {
            "; another person must approve it"
        };
        let error = RequestError::Denied(format!(
            "nobody may {action} their own change request: {} submitted {}{hint}",
            actor.peer.describe(),
            stored.request.id
        ));
        return Err(refuse(actor, stored, target, action, error));
    }
    let rule = approver_rule(actor, config, stored, target, action)?;
    if stored.request.state != RequestState::Pending {
        let verb = if action == "approve" {
            "approved"
        } else {
            "rejected"
        };
        return Err(refuse(
            actor,
            stored,
            target,
            action,
            not_pending(stored, verb),
        ));
    }
    Ok(rule)
}

fn approver_rule(
    actor: &Actor<'_>,
    config: &Config,
    stored: &StoredRequest,
    target: &AuditTarget,
    action: &str,
) -> Result<crate::policy::Rule, RequestError> {
    let r = &stored.request;
    grant::approve_rule(&config.policy, actor.peer, &r.db, &r.db_user).ok_or_else(|| {
        let error = RequestError::Denied(format!(
            "{} may not {action} changes to {} as {}: no rule with approve = true grants it",
            actor.peer.describe(),
            r.db,
            r.db_user
        ));
        refuse(actor, stored, target, action, error)
    })
}

fn not_pending(stored: &StoredRequest, verb: &str) -> RequestError {
    let r = &stored.request;
    match r.state {
        RequestState::Expired => RequestError::BadRequest(format!(
            "request {} expired at {} and can no longer be {verb}; the requester must submit it again",
            r.id, r.expires
        )),
        state => RequestError::BadRequest(format!(
            "request {} is {state}, not pending: it can no longer be {verb}",
            r.id
        )),
    }
}

/// Records a refused action on a request (best effort) and returns the
/// error to answer with.
fn refuse(
    actor: &Actor<'_>,
    stored: &StoredRequest,
    target: &AuditTarget,
    action: &str,
    error: RequestError,
) -> RequestError {
    let info = error.to_wire();
    warn!(request = %stored.request.id, action, uid = actor.peer.uid, code = %info.code, "change request action refused: {}", info.message);
    let approval = json!({
        "id": stored.request.id,
        "action": action,
        "requester": person_json(&stored.request.requester),
    });
    let record = AuditRecord {
        outcome: Some(Outcome::error(&info, None)),
        ..actor.record(AuditEvent::RequestRefused, stored, target, &approval)
    };
    let _ = actor.broker.audit().record(&record);
    error
}

fn write_state(
    actor: &Actor<'_>,
    config: &Config,
    key: &AuditKey,
    stored: &StoredRequest,
) -> Result<(), RequestError> {
    actor
        .broker
        .approvals()
        .save(&config.approval.dir, key, stored)
        .map_err(|e| {
            error!(request = %stored.request.id, cause = %e, "cannot write a change request");
            RequestError::Internal(format!(
                "cannot write change request {}: {e}",
                stored.request.id
            ))
        })
}

/// A dry run that failed: recorded, and the request is not stored.
fn dry_run_failed(
    actor: &Actor<'_>,
    stored: &StoredRequest,
    target: &AuditTarget,
    started: Instant,
    error: RequestError,
) -> RequestError {
    let info = error.to_wire();
    let approval = json!({"id": stored.request.id, "stored": false});
    let record = AuditRecord {
        outcome: Some(Outcome::error(&info, Some(started.elapsed()))),
        ..actor.record(AuditEvent::RequestDryRun, stored, target, &approval)
    };
    let _ = actor.broker.audit().record(&record);
    info!(request = %stored.request.id, code = %info.code, "change request's dry run failed; not stored");
    error
}

/// An approved request that could not run (nothing reached the data):
/// pending again, so that it can be approved once the cause is gone.
fn back_to_pending(
    actor: &Actor<'_>,
    config: &Config,
    key: &AuditKey,
    mut stored: StoredRequest,
    target: &AuditTarget,
    error: RequestError,
) -> RequestError {
    stored.request.state = RequestState::Pending;
    stored.request.decided_by = None;
    stored.request.decided_at = None;
    stored.request.comment = None;
    stored.xid = None;
    for statement in &mut stored.request.statements {
        statement.rows = None;
        statement.changes_at_approval = None;
    }
    let _ = write_state(actor, config, key, &stored);
    let info = error.to_wire();
    let approval = json!({
        "id": stored.request.id,
        "requester": person_json(&stored.request.requester),
        "approver": person_json(&actor.person()),
        "state": "pending",
    });
    let record = AuditRecord {
        outcome: Some(Outcome::error(&info, None)),
        ..actor.record(AuditEvent::RequestExecute, &stored, target, &approval)
    };
    let _ = actor.broker.audit().record(&record);
    warn!(request = %stored.request.id, code = %info.code, "an approved change request could not run; it is pending again");
    error
}

/// Writes the execution's transaction id next to the `executing` state,
/// just before its `COMMIT`: if the broker stops during the commit,
/// PostgreSQL's `txid_status` of it tells later whether it was committed.
async fn remember_xid(
    actor: &Actor<'_>,
    config: &Config,
    key: &AuditKey,
    stored: &mut StoredRequest,
    session: &mut Session,
) -> Result<(), RequestError> {
    let rows = session
        .broker_rows("SELECT pg_catalog.txid_current()::text", &[])
        .await?;
    let xid = rows
        .into_iter()
        .next()
        .and_then(|r| r.into_iter().next().flatten())
        .ok_or_else(|| RequestError::Internal("PostgreSQL gave no transaction id".into()))?;
    stored.xid = Some(xid);
    actor
        .broker
        .approvals()
        .save(&config.approval.dir, key, stored)
        .map_err(|e| {
            RequestError::Internal(format!(
                "cannot record the transaction of request {}, so it was not committed: {e}",
                stored.request.id
            ))
        })
}

/// PostgreSQL's record of transaction `xid` on the request's database:
/// `committed`, `aborted`, `in progress`, or `None` when it is too old to
/// tell.
async fn xact_status(
    actor: &Actor<'_>,
    config: &Arc<Config>,
    stored: &StoredRequest,
    xid: &str,
) -> Result<Option<String>, RequestError> {
    let mut target = target_of(stored);
    let mut session = connect(actor, config, stored, &mut target).await?;
    let rows = session
        .broker_rows(
            "SELECT pg_catalog.txid_status($1::text::bigint)",
            &[Value::String(xid.to_owned())],
        )
        .await;
    let _ = session.rollback().await;
    let _ = session.close().await;
    Ok(rows?
        .into_iter()
        .next()
        .and_then(|r| r.into_iter().next().flatten()))
}

/// A request left `executing` — the broker stopped while running it, or
/// the connection broke during its `COMMIT` — settled by what PostgreSQL
/// recorded: its transaction committed (`executed`), or not (`failed`,
/// nothing changed). Without a transaction id the broker never sent the
/// `COMMIT`. While PostgreSQL still runs the transaction, or cannot be
/// reached, the request stays `executing` and is asked again at the next
/// read. Called with the request's lock held, so no execution of it runs
/// in this broker.
async fn settle(
    actor: &Actor<'_>,
    config: &Arc<Config>,
    key: &AuditKey,
    mut stored: StoredRequest,
) -> StoredRequest {
    if stored.request.state != RequestState::Executing {
        return stored;
    }
    let id = stored.request.id.clone();
    let (state, why) = match stored.xid.clone() {
        None => (
            RequestState::Failed,
            "the broker stopped while running it, before its COMMIT: nothing was committed".to_owned(),
        ),
        Some(xid) => match xact_status(actor, config, &stored, &xid).await {
            Ok(Some(s)) if s == "committed" => (
                RequestState::Executed,
                format!("PostgreSQL committed its transaction {xid}"),
            ),
            Ok(Some(s)) if s == "aborted" => (
                RequestState::Failed,
                format!("PostgreSQL rolled its transaction {xid} back: nothing was committed"),
            ),
            Ok(Some(_)) => return stored,
            Ok(None) => (
                RequestState::Failed,
                format!(
                    "PostgreSQL no longer knows whether its transaction {xid} committed; check the data"
                ),
            ),
            Err(e) => {
                warn!(request = %id, cause = %e, "cannot ask PostgreSQL how an interrupted change request ended; asking again later");
                return stored;
            }
        },
    };
    stored.request.state = state;
    stored.request.error = match state {
        RequestState::Failed => Some(ErrorInfo::new(ErrorCode::Internal, why.clone())),
        _ => None,
    };
    if let Err(e) = actor
        .broker
        .approvals()
        .save(&config.approval.dir, key, &stored)
    {
        error!(request = %id, cause = %e, "cannot write how an interrupted change request ended");
    }
    let target = target_of(&stored);
    let approval = json!({
        "id": id,
        "requester": person_json(&stored.request.requester),
        "state": state.as_str(),
        "xid": stored.xid,
    });
    let outcome = match state {
        RequestState::Executed => Outcome::ok(None, None),
        _ => Outcome {
            ok: false,
            code: Some(state.as_str()),
            message: Some(&why),
            ..Outcome::ok(None, None)
        },
    };
    let record = AuditRecord {
        peer: None,
        outcome: Some(outcome),
        ..actor.record(AuditEvent::RequestRecover, &stored, &target, &approval)
    };
    let _ = actor.broker.audit().record(&record);
    warn!(request = %id, state = %state, "an interrupted change request was settled: {why}");
    stored
}

/// At start: settles every request a stopped broker left `executing`
/// ([`settle`]), acting as the broker itself.
pub async fn settle_at_start(broker: Arc<Broker>) {
    let me = PeerIdentity {
        uid: nix::unistd::getuid().as_raw(),
        gid: nix::unistd::getgid().as_raw(),
        pid: std::process::id() as i32,
        user: Some("iam-pgbroker".to_owned()),
        groups: Vec::new(),
    };
    let audit_peer = AuditPeer::with_process(&me, Default::default());
    let actor = Actor {
        broker: &broker,
        peer: &me,
        audit_peer: &audit_peer,
        request: 0,
    };
    let config = broker.config();
    let Ok(key) = key(&broker, &config) else {
        return;
    };
    let ids = match broker.approvals().select(&config.approval.dir, &key, |e| {
        e.state == RequestState::Executing
    }) {
        Ok((ids, _)) => ids,
        Err(e) => {
            warn!(dir = %config.approval.dir.display(), cause = %e, "cannot read the change requests at start");
            return;
        }
    };
    for id in ids {
        let _lock = broker.approvals().lock(&id).await;
        if let Ok(stored) = load(&actor, &config, &key, &id, true) {
            settle(&actor, &config, &key, stored).await;
        }
    }
}

/// Removes the ended requests whose end is more than `[approval]
/// retention_days` ago; the audit keeps their story, and a
/// `request_remove` record says when they went.
async fn sweep(actor: &Actor<'_>, config: &Config, key: &AuditKey) {
    let retention = config.approval.retention;
    if retention.is_zero() {
        return;
    }
    let days = retention.as_secs_f64() / 86_400.0;
    let cutoff = OffsetDateTime::now_utc() - retention;
    let old = |t: &str| {
        OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .map(|t| t < cutoff)
            .unwrap_or(false)
    };
    let dir = &config.approval.dir;
    let ids = match actor.broker.approvals().select(dir, key, |e| {
        e.ended() && old(e.ended.as_deref().unwrap_or(&e.submitted))
    }) {
        Ok((ids, _)) => ids,
        Err(e) => {
            warn!(dir = %dir.display(), cause = %e, "cannot look for change requests to remove");
            return;
        }
    };
    for id in ids {
        let Some(_lock) = actor.broker.approvals().try_lock(&id) else {
            continue;
        };
        let stored = match store::read(dir, key, &id) {
            Ok(stored) => stored,
            Err(_) => continue,
        };
        let target = target_of(&stored);
        let approval = json!({
            "id": id,
            "requester": person_json(&stored.request.requester),
            "state": stored.request.state.as_str(),
            "retention_days": days,
        });
        let record = AuditRecord {
            peer: None,
            ..actor.record(AuditEvent::RequestRemove, &stored, &target, &approval)
        };
        // Removed only once the audit says so.
        if actor.broker.audit().record(&record).is_err() {
            return;
        }
        match actor.broker.approvals().delete(dir, key, &id) {
            Ok(()) => {
                info!(request = %id, state = %stored.request.state, days, "removed an ended change request after its retention")
            }
            Err(e) => warn!(request = %id, cause = %e, "cannot remove an ended change request"),
        }
    }
}

/// Whether a failed statement says something about the data (so the
/// request drifted), rather than about the broker or the connection (so
/// nothing ran and it may be approved again).
fn is_about_the_data(e: &RequestError) -> bool {
    matches!(
        e.to_wire().code,
        ErrorCode::Database
            | ErrorCode::ReadOnly
            | ErrorCode::ForbiddenStatement
            | ErrorCode::BadRequest
    )
}

/// What running a request's statements gave.
struct Ran {
    /// The session, its transaction still open (or aborted).
    session: Session,
    /// Rows of each statement that ran, in order.
    rows: Vec<u64>,
    /// What each statement that ran changed, where it is captured.
    changes: Vec<Option<iam_pgbroker_proto::Changes>>,
    /// The statement that failed (0-based), and why.
    error: Option<(usize, RequestError)>,
}

/// Connects as the request's database user and runs its statements in one
/// transaction, each recorded before it runs. `Err` when nothing could run
/// (no connection); a failing statement stops the run and is in
/// [`Ran::error`]. The caller commits or rolls back.
async fn run(
    actor: &Actor<'_>,
    config: &Arc<Config>,
    stored: &StoredRequest,
    phase: Phase,
    target: &mut AuditTarget,
) -> Result<Ran, RequestError> {
    let mut session = connect(actor, config, stored, target).await?;
    let audit = actor.broker.audit();
    let mut rows = Vec::new();
    let mut changes = Vec::new();
    let mut error = None;
    // The transaction's own time, the one thing allowed to differ between
    // the dry run and the execution (`changes`).
    let clock = match super::changes::Clock::of(&mut session).await {
        Ok(clock) => clock,
        Err(e) => {
            return Ok(Ran {
                session,
                rows,
                changes,
                error: Some((0, e)),
            })
        }
    };
    for (i, statement) in stored.request.statements.iter().enumerate() {
        let checked = match session.check(&statement.sql, statement.params.len()) {
            Ok(checked) => checked,
            Err(rejected) => {
                error = Some((i, rejected.error));
                break;
            }
        };
        let approval = json!({
            "id": stored.request.id,
            "phase": phase.as_str(),
            "statement": i + 1,
            "requester": person_json(&stored.request.requester),
        });
        let record = AuditRecord {
            sql: Some(&statement.sql),
            params: Some(&statement.params),
            kind: Some(checked.verdict.kind),
            writes: Some(checked.verdict.writes || checked.verdict.ddl),
            ..actor.record(AuditEvent::Statement, stored, target, &approval)
        };
        if let Err(e) = audit.record(&record) {
            error = Some((i, RequestError::Audit(e)));
            break;
        }
        actor.broker.stats().statement();
        let started = Instant::now();
        let result = super::changes::run_statement(
            &mut session,
            &checked,
            &statement.params,
            &clock,
            config.approval.diff_rows,
        )
        .await;
        let info = result.as_ref().err().map(RequestError::to_wire);
        let outcome = match (&result, &info) {
            (Ok((n, _)), _) => Outcome::ok(Some(*n), Some(started.elapsed())),
            (Err(_), Some(info)) => Outcome::error(info, Some(started.elapsed())),
            (Err(_), None) => Outcome::default(),
        };
        let record = AuditRecord {
            kind: Some(checked.verdict.kind),
            writes: Some(checked.verdict.writes || checked.verdict.ddl),
            outcome: Some(outcome),
            ..actor.record(AuditEvent::Result, stored, target, &approval)
        };
        let _ = audit.record(&record);
        match result {
            Ok((n, changed)) => {
                rows.push(n);
                changes.push(changed);
            }
            Err(e) => {
                error = Some((i, e));
                break;
            }
        }
    }
    Ok(Ran {
        session,
        rows,
        changes,
        error,
    })
}

/// A read-write session as the request's database user, under the role
/// and timeouts of the requester's rule (the same for the dry run and the
/// execution, so that their counts compare).
async fn connect(
    actor: &Actor<'_>,
    config: &Arc<Config>,
    stored: &StoredRequest,
    target: &mut AuditTarget,
) -> Result<Session, RequestError> {
    let r = &stored.request;
    let instance = config.target(&r.db, Some(&r.dbname));
    target.container = Some(instance.container.clone());
    let addr = actor.broker.resolver().resolve(&instance).await?;
    target.address = Some(format!("{addr}:{}", instance.port));
    let password = actor
        .broker
        .secrets()
        .password(config, &r.db, &r.db_user, false)
        .await?
        .password;
    let server = ServerTarget {
        container: instance.container.clone(),
        addr,
        port: instance.port,
        dbname: instance.dbname.clone(),
        user: r.db_user.clone(),
    };
    let settings = SessionSettings {
        owner_uid: actor.peer.uid,
        readonly: false,
        ddl: false,
        db_role: stored.db_role.clone(),
        statement_timeout_ms: stored.statement_timeout_ms,
        idle_in_transaction_timeout_ms: stored.idle_in_transaction_timeout_ms,
        // The dry run must not queue behind (or in front of) the
        // application's locks for long; the execution runs with the same
        // setting, so no statement can tell the two apart by it.
        lock_timeout_ms: config.approval.lock_timeout_ms,
        work_mem_kb: crate::fairness::config().work_mem_kb,
        temp_file_limit_kb: crate::fairness::config().temp_file_limit_kb,
        connect_timeout: config.database.connect_timeout,
        chunks: ChunkLimits {
            rows: config.limits.rows_per_chunk,
            bytes: config.limits.chunk_bytes,
            max_rows: config.limits.max_result_rows,
            max_bytes: config.limits.max_result_bytes,
        },
    };
    let app_name = application_name(&r.id);
    let pool = actor.broker.pool().clone();
    match Session::open(&server, &password, &app_name, &settings, pool).await {
        Ok(session) => Ok(session),
        Err(e) => {
            actor.broker.resolver().invalidate(&server.container);
            Err(e)
        }
    }
}

/// The write-session guard (no DDL) on one statement, placeholders
/// converted first: the statement kind, or the error and what the guard
/// refused. A lock that blocks readers (`EXCLUSIVE`, `ACCESS EXCLUSIVE`)
/// would stall every reader of the table from the dry run on: only a rule
/// with `ddl` (`blocking_locks`) may ask for one.
fn guard_check(
    guard: &SqlGuard,
    sql: &str,
    nparams: usize,
    blocking_locks: bool,
) -> Result<String, (RequestError, Option<String>)> {
    let converted = iam_pgbroker_sql::convert_placeholders(sql, nparams)
        .map_err(|e| (RequestError::BadRequest(e.to_string()), None))?;
    match guard.check(&converted, Mode::Write { ddl: false }) {
        Ok(_)
            if !blocking_locks
                && iam_pgbroker_sql::capture::blocks_readers(&converted).is_some() =>
        {
            let mode = iam_pgbroker_sql::capture::blocks_readers(&converted).unwrap_or_default();
            Err((
                RequestError::Forbidden(format!(
                    "LOCK … IN {mode} MODE is not allowed in a change request: it blocks every reader \
                     of the table, from the dry run on (only a rule with ddl = true may ask for it)"
                )),
                Some(format!("LOCK {mode}")),
            ))
        }
        Ok(verdict) => Ok(verdict.kind.to_owned()),
        Err(r) => {
            let what = Some(r.what().to_owned());
            let error = match r.kind() {
                RefusalKind::Syntax => RequestError::Syntax(r.to_string(), r.position()),
                _ => RequestError::Forbidden(r.to_string()),
            };
            Err((error, what))
        }
    }
}

/// Names the statement in the broker's own messages when there are
/// several (PostgreSQL's errors keep their text: the audit names the
/// statement).
fn numbered(error: RequestError, i: usize, n: usize) -> RequestError {
    if n < 2 {
        return error;
    }
    let at = |m: String| format!("statement {} of {n}: {m}", i + 1);
    match error {
        RequestError::BadRequest(m) => RequestError::BadRequest(at(m)),
        RequestError::Forbidden(m) => RequestError::Forbidden(at(m)),
        // The position is within one statement of several: left out.
        RequestError::Syntax(m, _) => RequestError::Syntax(at(m), None),
        RequestError::ReadOnly(m) => RequestError::ReadOnly(at(m)),
        other => other,
    }
}

/// The wire form of a statement's error, naming the statement.
fn numbered_info(error: &RequestError, i: usize, n: usize) -> ErrorInfo {
    let mut info = error.to_wire();
    if n > 1 {
        info.message = format!("statement {} of {n}: {}", i + 1, info.message);
    }
    info
}

/// `statement 1: 1 row in the dry run, 2 at approval; statement 2: other
/// rows or values than in the dry run`
fn drift_text(request: &ApprovalRequest) -> String {
    request
        .drift()
        .map(|(i, s)| {
            let now = s.rows.unwrap_or(0);
            if now != s.dry_run_rows {
                format!(
                    "statement {}: {} in the dry run, {} at approval",
                    i + 1,
                    rows_text(s.dry_run_rows),
                    rows_text(now)
                )
            } else {
                format!(
                    "statement {}: {} as in the dry run, but other rows or other values",
                    i + 1,
                    rows_text(now)
                )
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn rows_text(n: u64) -> String {
    if n == 1 {
        "1 row".into()
    } else {
        format!("{n} rows")
    }
}

/// Records an approval or a rejection (written before the request's state
/// changes: without the record nothing happens).
fn record_decision(
    actor: &Actor<'_>,
    event: AuditEvent,
    stored: &StoredRequest,
    target: &AuditTarget,
    rule: &str,
    approver: &Person,
    comment: Option<&str>,
) -> Result<(), RequestError> {
    let decision = json!({
        "id": stored.request.id,
        "requester": person_json(&stored.request.requester),
        "approver": person_json(approver),
        "comment": comment,
    });
    let record = AuditRecord {
        rule: Some(rule),
        ..actor.record(event, stored, target, &decision)
    };
    actor
        .broker
        .audit()
        .record(&record)
        .map_err(RequestError::Audit)?;
    Ok(())
}

fn person_json(p: &Person) -> Value {
    json!({"uid": p.uid, "user": p.user})
}

fn target_of(stored: &StoredRequest) -> AuditTarget {
    AuditTarget {
        db: stored.request.db.clone(),
        dbname: Some(stored.request.dbname.clone()),
        db_user: stored.request.db_user.clone(),
        container: None,
        address: None,
        read_role: None,
        lease: None,
    }
}

/// `pgbroker request <id>`: the same for the dry run and the execution,
/// so that a statement cannot tell whether it is being reviewed or run by
/// its session's name (`pg_stat_activity` names the request; the audit
/// says who ran it).
fn application_name(id: &str) -> String {
    crate::session::application_name_cut(format!("pgbroker request {id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_of_a_write_session_without_ddl() {
        let guard = SqlGuard::new();
        assert_eq!(
            guard_check(&guard, "UPDATE t SET x = %s WHERE id = %s", 2, false).unwrap(),
            "UPDATE"
        );
        for (sql, what) in [
            ("COPY t TO PROGRAM 'id'", "COPY"),
            ("SET ROLE postgres", "SET"),
            ("DROP TABLE t", "DROP"),
            ("COMMIT", "COMMIT"),
            (
                "LOCK TABLE t IN ACCESS EXCLUSIVE MODE",
                "LOCK ACCESS EXCLUSIVE",
            ),
            ("LOCK t", "LOCK ACCESS EXCLUSIVE"),
            ("LOCK t IN EXCLUSIVE MODE", "LOCK EXCLUSIVE"),
        ] {
            let (error, refused) = guard_check(&guard, sql, 0, false).unwrap_err();
            assert!(
                matches!(error, RequestError::Forbidden(_)),
                "{sql}: {error:?}"
            );
            assert!(
                refused.as_deref().unwrap_or("").contains(what),
                "{sql}: {refused:?}"
            );
        }
        assert!(matches!(
            guard_check(&guard, "UPDATE t SET x = %(name)s", 1, false),
            Err((RequestError::BadRequest(_), None))
        ));
        assert!(matches!(
            guard_check(&guard, "UPDAT t", 0, false),
            Err((RequestError::Syntax(..), _))
        ));
    }

    #[test]
    fn locks_that_block_readers_need_a_ddl_rule() {
        let guard = SqlGuard::new();
        assert_eq!(
            guard_check(&guard, "LOCK t IN ACCESS EXCLUSIVE MODE", 0, true).unwrap(),
            "LOCK"
        );
        assert_eq!(
            guard_check(&guard, "LOCK t IN ROW EXCLUSIVE MODE", 0, false).unwrap(),
            "LOCK"
        );
    }

    #[test]
    fn expiry_times() {
        assert!(past("2000-01-01T00:00:00.000000Z"));
        assert!(!past("2999-01-01T00:00:00.000000Z"));
        assert!(past("not a time"));
    }

    #[test]
    fn several_statements_are_numbered() {
        let e = numbered(RequestError::Forbidden("COPY is not allowed".into()), 1, 3);
        assert_eq!(e.to_string(), "statement 2 of 3: COPY is not allowed");
        let e = numbered(RequestError::Forbidden("x".into()), 0, 1);
        assert_eq!(e.to_string(), "x");
    }
}
