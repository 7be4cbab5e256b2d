//! The sessions open now, for `iam-pgbroker sessions`, `cancel` and
//! `terminate` (PgBouncer's `SHOW CLIENTS`, with a way to end one).
//!
//! A connection registers its session when it opens and removes it when it
//! ends; the statement it runs and its transaction's age are kept current.
//! Nothing here holds the session itself: cancelling goes through
//! PostgreSQL's cancel key, terminating through a notification the
//! connection's own loop acts on (it rolls back and closes, as on
//! shutdown).

use crate::audit::AuditPeer;
use crate::sync::lock;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};
use tokio::sync::Notify;
use tokio_postgres::CancelToken;

/// Longest statement text kept for the view (characters).
const STATEMENT_CHARS: usize = 200;

/// One open session.
pub struct LiveSession {
    /// The broker's session id.
    pub id: String,
    /// Who, as the audit records them.
    pub peer: AuditPeer,
    /// Instance, database, database user.
    pub db: String,
    /// Database name.
    pub dbname: String,
    /// Database user.
    pub db_user: String,
    /// `read` or `write`.
    pub mode: &'static str,
    /// The granting rule.
    pub rule: String,
    /// When it opened.
    pub opened: SystemTime,
    /// PostgreSQL's pid of the session's connection.
    pub backend_pid: Option<i32>,
    cancel: Option<CancelToken>,
    state: Mutex<State>,
    cancelled: std::sync::atomic::AtomicBool,
    /// Notified to end the session (`terminate`).
    pub terminate: Notify,
}

#[derive(Default)]
struct State {
    txn_since: Option<Instant>,
    statement: Option<(String, Instant)>,
    /// Whether `statement` runs now (else it is a spent buffer, kept for
    /// the next one).
    running: bool,
}

impl LiveSession {
    /// A session to register.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: String,
        peer: AuditPeer,
        db: String,
        dbname: String,
        db_user: String,
        readonly: bool,
        rule: String,
        backend_pid: Option<i32>,
        cancel: Option<CancelToken>,
    ) -> LiveSession {
        LiveSession {
            id,
            peer,
            db,
            dbname,
            db_user,
            mode: if readonly { "read" } else { "write" },
            rule,
            opened: SystemTime::now(),
            backend_pid,
            cancel,
            state: Mutex::new(State::default()),
            cancelled: Default::default(),
            terminate: Notify::new(),
        }
    }

    /// A statement starts (its text, as sent; left out, as the audit
    /// leaves it out, when it mentions `PASSWORD`).
    pub fn statement_started(&self, sql: &str) {
        const LEFT_OUT: &str = "(left out: it mentions PASSWORD)";
        let now = Instant::now();
        let mut s = lock(&self.state);
        s.txn_since.get_or_insert(now);
        // The text's buffer is reused from statement to statement.
        let (text, at) = s.statement.get_or_insert_with(|| (String::new(), now));
        text.clear();
        if crate::audit::mentions_password(sql) {
            text.push_str(LEFT_OUT);
        } else {
            // No more characters than bytes: short texts are kept whole.
            let cut = if sql.len() <= STATEMENT_CHARS {
                sql.len()
            } else {
                sql.char_indices()
                    .nth(STATEMENT_CHARS)
                    .map_or(sql.len(), |(i, _)| i)
            };
            text.push_str(&sql[..cut]);
        }
        *at = now;
        s.running = true;
    }

    /// The statement ended; `in_transaction` says whether one stays open.
    pub fn statement_ended(&self, in_transaction: bool) {
        let mut s = lock(&self.state);
        s.running = false;
        if !in_transaction {
            s.txn_since = None;
        }
    }

    /// The transaction ended (commit, rollback).
    pub fn transaction_ended(&self) {
        lock(&self.state).txn_since = None;
    }

    /// Whether a cancel was sent from outside: it may land late, so the
    /// connection must not be pooled for someone else.
    pub fn was_cancelled(&self) -> bool {
        self.cancelled.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Asks PostgreSQL to cancel what runs now (best effort).
    pub fn cancel(&self) {
        self.cancelled
            .store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(token) = self.cancel.clone() {
            tokio::spawn(crate::session::cancel(token));
        }
    }

    /// The session as `sessions` shows it.
    pub fn view(&self) -> Value {
        let s = lock(&self.state);
        let opened = time::OffsetDateTime::from(self.opened);
        let running = s.statement.as_ref().filter(|_| s.running);
        json!({
            "session": self.id,
            "uid": self.peer.uid,
            "user": self.peer.user,
            "pid": self.peer.pid,
            "process": self.peer.process.process,
            // Left out, as the audit leaves it out, when it mentions
            // PASSWORD (`iam-pg -c "ALTER ROLE … PASSWORD '…'"`).
            "cmdline": self
                .peer
                .process
                .cmdline
                .as_deref()
                .filter(|c| !crate::audit::mentions_password(c)),
            "unit": self.peer.process.unit,
            "db": self.db,
            "dbname": self.dbname,
            "db_user": self.db_user,
            "mode": self.mode,
            "rule": self.rule,
            "opened": crate::audit::timefmt::format_utc(opened),
            "state": match (running, s.txn_since) {
                (Some(_), _) => "active",
                (None, Some(_)) => "idle in transaction",
                (None, None) => "idle",
            },
            "transaction_age_ms": s.txn_since.map(|t| t.elapsed().as_millis() as u64),
            "statement": running.map(|(text, _)| text),
            "statement_ms": running.map(|(_, at)| at.elapsed().as_millis() as u64),
            "backend_pid": self.backend_pid,
        })
    }
}

/// Every open session, by id.
#[derive(Default)]
pub struct LiveSessions {
    sessions: Mutex<HashMap<String, Arc<LiveSession>>>,
}

impl LiveSessions {
    /// Registers `session`.
    pub fn add(&self, session: Arc<LiveSession>) {
        lock(&self.sessions).insert(session.id.clone(), session);
    }

    /// Forgets session `id`.
    pub fn remove(&self, id: &str) {
        lock(&self.sessions).remove(id);
    }

    /// Session `id`, if open.
    pub fn get(&self, id: &str) -> Option<Arc<LiveSession>> {
        lock(&self.sessions).get(id).cloned()
    }

    /// Every open session's view, oldest first.
    pub fn views(&self) -> Vec<Value> {
        let mut all: Vec<Arc<LiveSession>> = lock(&self.sessions).values().cloned().collect();
        all.sort_by_key(|s| s.opened);
        all.iter().map(|s| s.view()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::ProcessInfo;

    fn session(cmdline: &str) -> LiveSession {
        let peer = AuditPeer {
            uid: 1001,
            user: Some("jnovak".into()),
            gid: 1001,
            groups: vec![],
            pid: 42,
            process: ProcessInfo {
                process: Some("iam-pg".into()),
                exe: None,
                cmdline: Some(cmdline.into()),
                unit: None,
            },
        };
        LiveSession::new(
            "0123456789abcdef".into(),
            peer,
            "czechidm".into(),
            "czechidm".into(),
            "czechidm".into(),
            false,
            "dba".into(),
            Some(7),
            None,
        )
    }

    #[test]
    fn states_follow_statements_and_transactions() {
        let s = session("iam-pg -c SELECT");
        assert_eq!(s.view()["state"], "idle");
        s.statement_started("UPDATE t SET n = 1");
        assert_eq!(s.view()["state"], "active");
        assert_eq!(s.view()["statement"], "UPDATE t SET n = 1");
        s.statement_ended(true);
        assert_eq!(s.view()["state"], "idle in transaction");
        assert!(s.view()["transaction_age_ms"].is_u64());
        s.transaction_ended();
        assert_eq!(s.view()["state"], "idle");
        assert_eq!(s.view()["backend_pid"], 7);
    }

    #[test]
    fn what_mentions_a_password_is_left_out_as_in_the_audit() {
        let s = session("iam-pg -c \"ALTER ROLE app PASSWORD 'Tajné-1'\"");
        s.statement_started("ALTER ROLE app PASSWORD 'Tajné-1'");
        let view = s.view().to_string();
        assert!(!view.contains("Tajné-1"), "{view}");
        assert!(view.contains("left out"), "{view}");
    }
}
