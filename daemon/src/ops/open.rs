//! `open`: policy, container address, password, PostgreSQL connection.

use super::{send, Reply};
use crate::audit::{AuditEvent, AuditRecord, AuditTarget, Outcome, SessionMode};
use crate::conn::{ClientConnection, Next, OpenSession};
use crate::error::RequestError;
use crate::policy::{Access, PolicyDecision};
use crate::session::{ChunkLimits, ServerTarget, Session, SessionSettings};
use iam_pgbroker_proto::{OpenParams, Opened, Response};
use tracing::{debug, info, warn};

/// Longest `reason` kept, in characters.
const MAX_REASON_CHARS: usize = 1000;

pub async fn open(conn: &mut ClientConnection, id: u64, params: OpenParams) -> Result<Next, Reply> {
    if conn.session.is_some() {
        return Err(RequestError::BadRequest(
            "a session is already open on this connection; close it first".into(),
        )
        .into());
    }
    // Instance and user names become container names and file paths: only
    // plain names, never anything that could walk out of the secrets folder.
    check_name("db", &params.db)?;
    check_name("user", &params.user)?;
    if let Some(dbname) = &params.dbname {
        check_dbname(dbname)?;
    }
    if params
        .reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > MAX_REASON_CHARS)
    {
        return Err(RequestError::BadRequest(format!(
            "reason is longer than {MAX_REASON_CHARS} characters"
        ))
        .into());
    }

    let started = std::time::Instant::now();
    let mut audit_target = AuditTarget {
        db: params.db.clone(),
        dbname: params.dbname.clone(),
        db_user: params.user.clone(),
        ..AuditTarget::default()
    };
    let session_id = new_session_id();
    let (rule, session, slot) = match establish(conn, &params, &session_id, &mut audit_target).await
    {
        Ok(done) => done,
        Err((error, granted)) => {
            // Refusals and failures are recorded too, best effort: the
            // client gets its answer whether or not the record is written.
            let info = error.to_wire();
            let event = if granted.is_some() {
                AuditEvent::SessionOpen
            } else {
                AuditEvent::SessionRefused
            };
            let record = AuditRecord {
                session: granted.is_some().then_some(session_id.as_str()),
                request: Some(id),
                peer: Some(&conn.audit_peer),
                target: Some(&audit_target),
                mode: Some(SessionMode::of_readonly(params.readonly)),
                reason: params.reason.as_deref(),
                rule: granted.as_deref(),
                outcome: Some(Outcome::error(&info, Some(started.elapsed()))),
                ..AuditRecord::new(event)
            };
            // Refusals before a grant are rate limited per uid (counted and
            // summarised beyond it); failures after a grant always recorded.
            if granted.is_some()
                || crate::fairness::refusal_recorded(
                    &conn.audit_peer,
                    conn.peer.uid,
                    info.code.as_str(),
                )
            {
                let _ = conn.broker.audit().record(&record);
            }
            return Err(error.into());
        }
    };
    let parts = crate::audit::SessionParts::of(
        &session_id,
        &conn.audit_peer,
        &audit_target,
        crate::audit::Grant {
            mode: crate::audit::SessionMode::of_readonly(session.readonly()),
            reason: params.reason.as_deref(),
            rule: &rule.name,
        },
    );
    let open = OpenSession {
        parts,
        id: session_id,
        db: params.db,
        user: params.user,
        session,
        target: audit_target,
        rule: rule.name.clone(),
        reason: params.reason,
        slot: Some(slot),
    };
    // The session is recorded before the client may use it; without the
    // record there is no session.
    let record = AuditRecord {
        request: Some(id),
        outcome: Some(Outcome::ok(None, Some(started.elapsed()))),
        ..open.record(&conn.audit_peer, AuditEvent::SessionOpen)
    };
    if let Err(e) = conn.broker.audit().record(&record) {
        let _ = open.session.close().await;
        return Err(RequestError::Audit(e).into());
    }
    info!(
        session = %open.id,
        db = %open.db,
        dbname = open.target.dbname.as_deref().unwrap_or(""),
        db_user = %open.user,
        container = open.target.container.as_deref().unwrap_or(""),
        addr = open.target.address.as_deref().unwrap_or(""),
        readonly = open.session.readonly(),
        rule = %rule.name,
        db_role = rule.db_role.as_deref().unwrap_or(""),
        reason = open.reason.as_deref().unwrap_or(""),
        "session opened"
    );
    let opened = Response::Opened(Opened {
        id,
        session: open.id.clone(),
        db: open.db.clone(),
        dbname: open.target.dbname.clone().unwrap_or_default(),
        user: open.user.clone(),
        readonly: open.session.readonly(),
        rule: rule.name.clone(),
        identity: conn.peer.to_wire(),
    });
    conn.broker.stats().session_opened(conn.peer.uid, &open.db);
    let live = std::sync::Arc::new(crate::live::LiveSession::new(
        open.id.clone(),
        conn.audit_peer.clone(),
        open.db.clone(),
        open.target.dbname.clone().unwrap_or_default(),
        open.user.clone(),
        open.session.readonly(),
        rule.name.clone(),
        open.session.backend_pid(),
        open.session.cancel_token(),
    ));
    conn.broker.live().add(live.clone());
    conn.live = Some(live);
    conn.session = Some(open);
    send(conn, &opened).await
}

/// Policy, address, password, connection. On failure, the error and the
/// granting rule's name if the policy had granted the session.
async fn establish(
    conn: &ClientConnection,
    params: &OpenParams,
    session_id: &str,
    audit_target: &mut AuditTarget,
) -> Result<
    (
        Box<crate::policy::Rule>,
        Session,
        crate::fairness::SessionSlot,
    ),
    (RequestError, Option<String>),
> {
    let config = conn.broker.config();
    // The instance's own database needs no `dbnames` grant.
    let own_dbname = config.target(&params.db, None).dbname;
    let access = Access {
        db: &params.db,
        db_user: &params.user,
        write: !params.readonly,
        dbname: params.dbname.as_deref().filter(|d| *d != own_dbname),
    };
    let rule = match config.policy.decide(&conn.peer, access) {
        PolicyDecision::Allow(rule) => rule,
        PolicyDecision::Deny { reason } => {
            warn!(
                uid = conn.peer.uid,
                gid = conn.peer.gid,
                pid = conn.peer.pid,
                db = %params.db,
                db_user = %params.user,
                write = !params.readonly,
                "session refused by policy"
            );
            return Err((RequestError::Denied(reason), None));
        }
    };
    if rule.require_reason && params.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
        warn!(uid = conn.peer.uid, db = %params.db, rule = %rule.name, "session refused: no reason given");
        let error = RequestError::Denied(format!(
            "rule {:?} requires a reason for sessions on {} as {}: give one (iam-pg --reason, reason=...)",
            rule.name, params.db, params.user
        ));
        return Err((error, None));
    }
    let granted = || Some(rule.name.clone());
    // Before anything is spent on the session: the audit folder's reserve
    // and the user's share of sessions.
    if let Err(message) = crate::fairness::audit_reserve_check(&config.audit.file) {
        return Err((RequestError::Unavailable(message), None));
    }
    let slot = crate::fairness::session_slot(conn.peer.uid)
        .map_err(|message| (RequestError::Busy(message), None))?;
    let fair = crate::fairness::config();

    let instance = config.target(&params.db, params.dbname.as_deref());
    audit_target.dbname = Some(instance.dbname.clone());
    audit_target.container = Some(instance.container.clone());
    let addr = conn
        .broker
        .resolver()
        .resolve(&instance)
        .await
        .map_err(|e| (e.into(), granted()))?;
    audit_target.address = Some(format!("{addr}:{}", instance.port));
    let mut target = ServerTarget {
        container: instance.container.clone(),
        addr,
        port: instance.port,
        dbname: instance.dbname.clone(),
        user: params.user.clone(),
    };
    let app_name = application_name(session_id, &conn.peer);
    let settings = SessionSettings {
        owner_uid: conn.peer.uid,
        readonly: params.readonly,
        ddl: rule.ddl,
        db_role: rule.db_role.clone(),
        statement_timeout_ms: rule
            .statement_timeout_ms
            .unwrap_or(config.database.statement_timeout_ms),
        idle_in_transaction_timeout_ms: rule
            .idle_in_transaction_timeout_ms
            .unwrap_or(config.database.idle_in_transaction_timeout_ms),
        // A read session never waits long behind the application's locks
        // (nor makes later lockers queue behind its own wait).
        lock_timeout_ms: if params.readonly {
            fair.read_lock_timeout_ms
        } else {
            0
        },
        work_mem_kb: rule.work_mem_kb.unwrap_or(fair.work_mem_kb),
        temp_file_limit_kb: rule.temp_file_limit_kb.unwrap_or(fair.temp_file_limit_kb),
        connect_timeout: config.database.connect_timeout,
        chunks: ChunkLimits {
            rows: config.limits.rows_per_chunk,
            bytes: config.limits.chunk_bytes,
            max_rows: config.limits.max_result_rows,
            max_bytes: config.limits.max_result_bytes,
        },
    };
    let opened = if rule.dynamic_credentials {
        open_dynamic(
            conn,
            &config,
            &params.db,
            &mut target,
            &app_name,
            &settings,
            audit_target,
        )
        .await
    } else {
        open_with_secret(
            conn,
            &config,
            &params.db,
            &target,
            &app_name,
            &settings,
            audit_target,
        )
        .await
    };
    match opened {
        Ok(mut session) => {
            session.set_guard(config.sql_guard.clone());
            session.set_text_values(conn.protocol >= 2);
            Ok((rule, session, slot))
        }
        Err(e) => {
            // The address may be stale (the container moved between an event
            // and now): ask Docker again next time.
            conn.broker.resolver().invalidate(&target.container);
            Err((e, granted()))
        }
    }
}

/// A session with the database user's password from the first source
/// that has one. A password PostgreSQL refuses that came from OpenBao's
/// cache is asked for again at once (it was rotated), and the session
/// opened with the new one.
async fn open_with_secret(
    conn: &ClientConnection,
    config: &crate::config::Config,
    db: &str,
    target: &ServerTarget,
    app_name: &str,
    settings: &SessionSettings,
    audit_target: &mut AuditTarget,
) -> Result<Session, RequestError> {
    let mut fresh = false;
    loop {
        let secret = conn
            .broker
            .secrets()
            .password(config, db, &target.user, fresh)
            .await?;
        debug!(source = %secret.source, cached = secret.cached, db_user = %target.user, "password found");
        let opened = if settings.readonly {
            open_read(
                conn,
                target,
                &secret.password,
                app_name,
                settings,
                audit_target,
            )
            .await
        } else {
            let pool = conn.broker.pool().clone();
            Session::open(target, &secret.password, app_name, settings, pool).await
        };
        match opened {
            Err(e) if secret.cached && !fresh && e.is_auth_failure() => {
                info!(source = %secret.source, db_user = %target.user, "PostgreSQL refused the cached password; asking the source again");
                fresh = true;
            }
            other => return other,
        }
    }
}

/// A session that logs in with short-lived credentials from OpenBao's
/// database secrets engine; the lease lives as long as the session and
/// is named in its audit records.
async fn open_dynamic(
    conn: &ClientConnection,
    config: &crate::config::Config,
    db: &str,
    target: &mut ServerTarget,
    app_name: &str,
    settings: &SessionSettings,
    audit_target: &mut AuditTarget,
) -> Result<Session, RequestError> {
    let login = conn
        .broker
        .secrets()
        .dynamic(config, db, &target.user)
        .await?;
    audit_target.lease = Some(login.lease.lease_id().to_owned());
    target.user = login.username.clone();
    // Never pooled, so the pool's reuse (and its read-role detour, which
    // is about long-lived superusers) does not apply.
    let mut session = Session::open(
        target,
        &login.password,
        app_name,
        settings,
        conn.broker.pool().clone(),
    )
    .await?;
    session.hold_lease(login.lease);
    Ok(session)
}

/// A read session: as the database user when it holds no superuser-level
/// power, else as the OS user's read role ([`crate::read_role`]). A read
/// role that cannot log in (another broker or an administrator changed it)
/// is provisioned again, once; a user the broker believed harmless who
/// turns out a superuser gets the read role instead.
async fn open_read(
    conn: &ClientConnection,
    target: &ServerTarget,
    password: &crate::secrets::Password,
    app_name: &str,
    settings: &SessionSettings,
    audit_target: &mut AuditTarget,
) -> Result<Session, RequestError> {
    let roles = conn.broker.read_roles();
    let group = conn.broker.config().database.read_role.clone();
    let mut retried = false;
    loop {
        let login = roles
            .login(target, password, conn.peer.uid, &group, settings)
            .await?;
        audit_target.read_role = login.read_role.clone();
        let pool = conn.broker.pool().clone();
        match Session::open(&login.target, &login.password, app_name, settings, pool).await {
            Ok(session) => return Ok(session),
            Err(RequestError::ReadAsSuperuser { .. }) if !retried && login.read_role.is_none() => {
                warn!(db_user = %target.user, "database user is a superuser after all; using the read role");
                roles.mark_privileged(target);
            }
            Err(RequestError::Connect { source, .. })
                if !retried
                    && login.read_role.is_some()
                    && source
                        .as_db_error()
                        .is_some_and(|db| matches!(db.code().code(), "28P01" | "28000")) =>
            {
                let role = login.read_role.as_deref().unwrap_or_default();
                warn!(
                    role,
                    "the read role could not log in; provisioning it again"
                );
                roles
                    .reprovision(target, password, &group, role, settings)
                    .await?;
            }
            Err(e) => return Err(e),
        }
        retried = true;
    }
}

/// A database name PostgreSQL can take: 1 to 63 bytes, no NUL.
pub(super) fn check_dbname(dbname: &str) -> Result<(), RequestError> {
    if dbname.is_empty() || dbname.len() > 63 || dbname.contains('\0') {
        return Err(RequestError::BadRequest(
            "dbname must be 1 to 63 bytes without NUL".into(),
        ));
    }
    Ok(())
}

pub(super) fn check_name(field: &str, value: &str) -> Result<(), RequestError> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && !value.starts_with(['.', '-'])
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && !value.contains("..");
    if ok {
        Ok(())
    } else {
        Err(RequestError::BadRequest(format!(
            "{field} {value:?} is not a valid name (letters, digits, '_', '-', '.'; at most 63)"
        )))
    }
}

/// 16 hex digits from the kernel's random source (`getrandom(2)`: no file
/// to open, and it works where /dev is not mounted).
fn new_session_id() -> String {
    let mut bytes = [0u8; 8];
    // SAFETY: `bytes` is a valid, writable buffer of its length.
    let got = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if got != bytes.len() as isize {
        // Not possible for 8 bytes once the pool is initialised, which it
        // is long before a service starts; time and pid still make a
        // unique id on this host.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        bytes = (nanos ^ (std::process::id() as u64) << 48).to_be_bytes();
    }
    let mut id = String::with_capacity(16);
    for b in bytes {
        use std::fmt::Write as _;
        let _ = write!(id, "{b:02x}");
    }
    id
}

/// `pgbroker <session> <user>(<uid>) pid <pid>`, cut to PostgreSQL's 63
/// bytes, so `pg_stat_activity` and the server log name the caller.
fn application_name(session: &str, peer: &crate::peer::PeerIdentity) -> String {
    crate::session::application_name_cut(format!(
        "pgbroker {session} {}({}) pid {}",
        peer.user.as_deref().unwrap_or("?"),
        peer.uid,
        peer.pid
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_escape_are_refused() {
        for bad in [
            "",
            "..",
            "../etc",
            "a/b",
            "-x",
            ".hidden",
            "a b",
            "a..b",
            &"x".repeat(64),
        ] {
            assert!(check_name("user", bad).is_err(), "{bad:?}");
        }
        for good in ["postgres", "czechidm", "bridge", "iam_reader", "a-b.c"] {
            assert!(check_name("user", good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn session_ids_are_hex_and_differ() {
        let (a, b) = (new_session_id(), new_session_id());
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
