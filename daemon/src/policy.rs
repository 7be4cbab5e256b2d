//! Deny-by-default policy: which OS identities may open which database
//! instance, as which database user, in which mode.
//!
//! The shape is PostgreSQL's `peer` authentication with `pg_ident.conf`: an
//! OS identity *may connect as* a database identity. A grant, never an
//! equivalence.

use crate::peer::PeerIdentity;
use serde::Deserialize;
use std::fmt;

/// What a rule allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleMode {
    /// Read-only sessions.
    Read,
    /// Read-only sessions, and read-write sessions when the client asks.
    Write,
    /// Read-only sessions, and change requests that another person must
    /// approve before they run (`docs/approval.md`); never a read-write
    /// session.
    Request,
}

impl fmt::Display for RuleMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RuleMode::Read => "read",
            RuleMode::Write => "write",
            RuleMode::Request => "request",
        })
    }
}

/// One grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The rule's name (given, or `file:line`).
    pub name: String,
    /// Where it was written, `file:line`.
    pub source: String,
    /// OS user names it matches.
    pub users: Vec<String>,
    /// Numeric uids it matches.
    pub uids: Vec<u32>,
    /// OS group names it matches (primary or supplementary).
    pub groups: Vec<String>,
    /// Database instances it grants (`*`: all).
    pub dbs: Vec<String>,
    /// Database users it grants (`*`: all).
    pub db_users: Vec<String>,
    /// Databases inside the instance it grants besides the instance's own
    /// (`dbnames`; empty: only the own one; `*`: all).
    pub dbnames: Vec<String>,
    /// `work_mem` of its sessions, kB (default `[fair_share] work_mem_kb`).
    pub work_mem_kb: Option<u64>,
    /// `temp_file_limit` of its sessions, kB (default `[fair_share]
    /// temp_file_limit_kb`).
    pub temp_file_limit_kb: Option<u64>,
    /// Mode it grants.
    pub mode: RuleMode,
    /// Write sessions may also change the schema (CREATE, ALTER, DROP, …).
    pub ddl: bool,
    /// A session must give a reason (kept for the audit).
    pub require_reason: bool,
    /// Role the broker switches to (`SET ROLE`) right after connecting, so
    /// PostgreSQL's own privileges bound the session.
    pub db_role: Option<String>,
    /// Statement timeout for sessions under this rule, overriding the
    /// configured default.
    pub statement_timeout_ms: Option<u64>,
    /// Idle-in-transaction timeout for sessions under this rule.
    pub idle_in_transaction_timeout_ms: Option<u64>,
    /// May approve or reject other people's change requests for its `dbs`
    /// and `db_users`.
    pub approve: bool,
    /// Sessions log in with short-lived credentials from OpenBao's
    /// database secrets engine instead of the database user's password.
    pub dynamic_credentials: bool,
}

impl Rule {
    /// Whether this rule is about `peer`.
    pub fn matches(&self, peer: &PeerIdentity) -> bool {
        self.uids.contains(&peer.uid)
            || peer
                .user
                .as_deref()
                .is_some_and(|u| self.users.iter().any(|r| r == u))
            || peer
                .groups
                .iter()
                .filter_map(|g| g.name.as_deref())
                .any(|g| self.groups.iter().any(|r| r == g))
    }

    /// Whether it names instance `db` and database user `db_user`.
    pub fn grants(&self, db: &str, db_user: &str) -> bool {
        let any = |list: &[String], value: &str| list.iter().any(|v| v == "*" || v == value);
        any(&self.dbs, db) && any(&self.db_users, db_user)
    }

    /// Whether it covers database `dbname` of the instance (`None`: the
    /// instance's own database, which every rule covers).
    pub fn covers_dbname(&self, dbname: Option<&str>) -> bool {
        dbname.is_none_or(|d| self.dbnames.iter().any(|v| v == "*" || v == d))
    }
}

/// What the policy is asked.
#[derive(Debug, Clone, Copy)]
pub struct Access<'a> {
    /// Database instance.
    pub db: &'a str,
    /// Database user.
    pub db_user: &'a str,
    /// Whether a read-write session is asked for.
    pub write: bool,
    /// A database of the instance other than its own, if one is asked for.
    pub dbname: Option<&'a str>,
}

/// The policy's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyDecision {
    /// Granted by this rule (the first that grants the access).
    Allow(Box<Rule>),
    /// Refused; the reason is safe to show the client.
    Deny {
        /// Why, in one line.
        reason: String,
    },
}

/// The ordered set of rules.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    rules: Vec<Rule>,
}

impl Policy {
    /// A policy from rules in load order.
    pub fn new(rules: Vec<Rule>) -> Policy {
        Policy { rules }
    }

    /// The rules in load order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Decides whether `peer` may have `access`. Deny unless a rule grants it.
    pub fn decide(&self, peer: &PeerIdentity, access: Access<'_>) -> PolicyDecision {
        let mut read_only_grant: Option<&Rule> = None;
        let mut other_dbname: Option<&Rule> = None;
        for rule in self.rules.iter().filter(|r| r.matches(peer)) {
            if !rule.grants(access.db, access.db_user) {
                continue;
            }
            if !rule.covers_dbname(access.dbname) {
                other_dbname.get_or_insert(rule);
                continue;
            }
            if access.write && rule.mode != RuleMode::Write {
                read_only_grant.get_or_insert(rule);
                continue;
            }
            return PolicyDecision::Allow(Box::new(rule.clone()));
        }
        let mode = if access.write { "write" } else { "read" };
        let who = peer.describe();
        let reason = match (read_only_grant, other_dbname, access.dbname) {
            (None, Some(rule), Some(dbname)) => format!(
                "{who} may not open database {dbname:?} of {} as {}: rule {:?} covers only the instance's own database{} (dbnames)",
                access.db,
                access.db_user,
                rule.name,
                if rule.dbnames.is_empty() {
                    String::new()
                } else {
                    format!(" and {}", rule.dbnames.join(", "))
                }
            ),
            (grant, _, _) => match grant {
            Some(rule) if rule.mode == RuleMode::Request => format!(
                "{who} may not write to {} as {} directly: rule {:?} grants change requests only; submit the change for approval (iam-pg request)",
                access.db, access.db_user, rule.name
            ),
            Some(rule) => format!(
                "{who} may not write to {} as {}: rule {:?} grants read only",
                access.db, access.db_user, rule.name
            ),
            None => format!(
                "{who} may not open {} as {} ({mode}): no rule grants it",
                access.db, access.db_user
            ),
            },
        };
        PolicyDecision::Deny { reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::GroupInfo;

    fn peer(uid: u32, user: &str, groups: &[&str]) -> PeerIdentity {
        PeerIdentity {
            uid,
            gid: uid,
            pid: 42,
            user: Some(user.into()),
            groups: groups
                .iter()
                .enumerate()
                .map(|(i, g)| GroupInfo {
                    gid: 5000 + i as u32,
                    name: Some((*g).into()),
                })
                .collect(),
        }
    }

    fn rule(
        name: &str,
        users: &[&str],
        groups: &[&str],
        dbs: &[&str],
        db_users: &[&str],
        mode: RuleMode,
    ) -> Rule {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
        Rule {
            name: name.into(),
            source: "test:1".into(),
            users: v(users),
            uids: vec![],
            groups: v(groups),
            dbs: v(dbs),
            db_users: v(db_users),
            dbnames: vec![],
            work_mem_kb: None,
            temp_file_limit_kb: None,
            mode,
            ddl: false,
            require_reason: false,
            db_role: None,
            statement_timeout_ms: None,
            idle_in_transaction_timeout_ms: None,
            approve: false,
            dynamic_credentials: false,
        }
    }

    fn granted_by(decision: PolicyDecision) -> Option<String> {
        match decision {
            PolicyDecision::Allow(rule) => Some(rule.name),
            PolicyDecision::Deny { .. } => None,
        }
    }

    fn access<'a>(db: &'a str, db_user: &'a str, write: bool) -> Access<'a> {
        Access {
            db,
            db_user,
            write,
            dbname: None,
        }
    }

    #[test]
    fn deny_by_default() {
        let policy = Policy::default();
        let d = policy.decide(
            &peer(1001, "alice", &[]),
            access("czechidm", "postgres", false),
        );
        assert_eq!(
            d,
            PolicyDecision::Deny {
                reason:
                    "uid 1001 (alice) may not open czechidm as postgres (read): no rule grants it"
                        .into()
            }
        );
    }

    #[test]
    fn read_rule_does_not_grant_write() {
        let policy = Policy::new(vec![rule(
            "r",
            &["alice"],
            &[],
            &["czechidm"],
            &["*"],
            RuleMode::Read,
        )]);
        let alice = peer(1001, "alice", &[]);
        assert!(matches!(
            policy.decide(&alice, access("czechidm", "postgres", false)),
            PolicyDecision::Allow { .. }
        ));
        let PolicyDecision::Deny { reason } =
            policy.decide(&alice, access("czechidm", "postgres", true))
        else {
            panic!("write granted by a read rule")
        };
        assert!(reason.contains("grants read only"), "{reason}");
        assert!(matches!(
            policy.decide(&alice, access("bridge", "postgres", false)),
            PolicyDecision::Deny { .. }
        ));
    }

    #[test]
    fn groups_uids_and_wildcards() {
        let mut by_uid = rule("u", &[], &[], &["*"], &["bridge"], RuleMode::Write);
        by_uid.uids = vec![7];
        let policy = Policy::new(vec![
            rule(
                "ops",
                &[],
                &["ops"],
                &["czechidm"],
                &["postgres"],
                RuleMode::Read,
            ),
            by_uid,
        ]);
        let op = peer(1002, "bob", &["users", "ops"]);
        assert_eq!(
            granted_by(policy.decide(&op, access("czechidm", "postgres", false))).as_deref(),
            Some("ops")
        );
        assert!(matches!(
            policy.decide(&op, access("czechidm", "czechidm", false)),
            PolicyDecision::Deny { .. }
        ));
        let seven = peer(7, "svc", &[]);
        assert_eq!(
            granted_by(policy.decide(&seven, access("anything", "bridge", true))).as_deref(),
            Some("u")
        );
    }

    #[test]
    fn a_later_write_rule_wins_over_an_earlier_read_rule() {
        let policy = Policy::new(vec![
            rule("r", &["alice"], &[], &["*"], &["*"], RuleMode::Read),
            rule(
                "w",
                &["alice"],
                &[],
                &["czechidm"],
                &["czechidm"],
                RuleMode::Write,
            ),
        ]);
        let alice = peer(1001, "alice", &[]);
        assert_eq!(
            granted_by(policy.decide(&alice, access("czechidm", "czechidm", true))).as_deref(),
            Some("w")
        );
        assert_eq!(
            granted_by(policy.decide(&alice, access("czechidm", "czechidm", false))).as_deref(),
            Some("r")
        );
    }

    #[test]
    fn a_request_rule_reads_but_never_writes() {
        let policy = Policy::new(vec![rule(
            "q",
            &["alice"],
            &[],
            &["czechidm"],
            &["czechidm"],
            RuleMode::Request,
        )]);
        let alice = peer(1001, "alice", &[]);
        assert_eq!(
            granted_by(policy.decide(&alice, access("czechidm", "czechidm", false))).as_deref(),
            Some("q")
        );
        let PolicyDecision::Deny { reason } =
            policy.decide(&alice, access("czechidm", "czechidm", true))
        else {
            panic!("write granted by a request rule")
        };
        assert!(reason.contains("change requests only"), "{reason}");
    }
}
