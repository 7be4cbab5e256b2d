//! What the policy says about change requests: who may submit them and who
//! may approve them, for which instance and database user.

use crate::peer::PeerIdentity;
use crate::policy::{Policy, Rule, RuleMode};

/// The first rule that lets `peer` submit change requests for `db` as
/// `db_user`: `mode = "request"` (or `"write"`, which may write directly
/// and so may also ask first). `dbname` is a database of the instance
/// other than its own, which the rule's `dbnames` must name, as for a
/// session. `Err` says why not, safe to show.
pub fn submit_rule(
    policy: &Policy,
    peer: &PeerIdentity,
    db: &str,
    db_user: &str,
    dbname: Option<&str>,
) -> Result<Rule, String> {
    let mut read_only: Option<&Rule> = None;
    let mut other_dbname: Option<&Rule> = None;
    for rule in policy.rules().iter().filter(|r| r.matches(peer)) {
        if !rule.grants(db, db_user) {
            continue;
        }
        if !rule.covers_dbname(dbname) {
            other_dbname.get_or_insert(rule);
            continue;
        }
        match rule.mode {
            RuleMode::Request | RuleMode::Write => return Ok(rule.clone()),
            RuleMode::Read => {
                read_only.get_or_insert(rule);
            }
        }
    }
    let who = peer.describe();
    if let (None, Some(rule), Some(dbname)) = (read_only, other_dbname, dbname) {
        return Err(format!(
            "{who} may not submit changes to database {dbname:?} of {db} as {db_user}: rule {:?} covers only the instance's own database{} (dbnames)",
            rule.name,
            if rule.dbnames.is_empty() {
                String::new()
            } else {
                format!(" and {}", rule.dbnames.join(", "))
            }
        ));
    }
    Err(match read_only {
        Some(rule) => format!(
            "{who} may not submit changes to {db} as {db_user}: rule {:?} grants read only",
            rule.name
        ),
        None => format!(
            "{who} may not submit changes to {db} as {db_user}: no rule with mode \"request\" grants it"
        ),
    })
}

/// The first rule with `approve = true` that lets `peer` approve change
/// requests for `db` as `db_user`.
pub fn approve_rule(policy: &Policy, peer: &PeerIdentity, db: &str, db_user: &str) -> Option<Rule> {
    policy
        .rules()
        .iter()
        .find(|r| r.approve && r.matches(peer) && r.grants(db, db_user))
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::GroupInfo;

    fn peer(uid: u32, user: &str, groups: &[&str]) -> PeerIdentity {
        PeerIdentity {
            uid,
            gid: uid,
            pid: 1,
            user: Some(user.into()),
            groups: groups
                .iter()
                .map(|g| GroupInfo {
                    gid: 5000,
                    name: Some((*g).into()),
                })
                .collect(),
        }
    }

    fn rule(name: &str, groups: &[&str], dbs: &[&str], mode: RuleMode, approve: bool) -> Rule {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
        Rule {
            name: name.into(),
            source: "test:1".into(),
            users: vec![],
            uids: vec![],
            groups: v(groups),
            dbs: v(dbs),
            db_users: v(&["*"]),
            dbnames: vec![],
            work_mem_kb: None,
            temp_file_limit_kb: None,
            mode,
            ddl: false,
            require_reason: false,
            db_role: None,
            statement_timeout_ms: None,
            idle_in_transaction_timeout_ms: None,
            approve,
            dynamic_credentials: false,
        }
    }

    #[test]
    fn request_and_write_rules_may_submit_read_rules_may_not() {
        let policy = Policy::new(vec![
            rule("read", &["helpdesk"], &["*"], RuleMode::Read, false),
            rule("ask", &["ops"], &["czechidm"], RuleMode::Request, false),
            rule("dba", &["dba"], &["*"], RuleMode::Write, false),
        ]);
        let alice = peer(1001, "alice", &["helpdesk", "ops"]);
        assert_eq!(
            submit_rule(&policy, &alice, "czechidm", "czechidm", None)
                .unwrap()
                .name,
            "ask"
        );
        let err = submit_rule(&policy, &alice, "bridge", "bridge", None).unwrap_err();
        assert!(err.contains("grants read only"), "{err}");
        let bob = peer(1002, "bob", &["dba"]);
        assert_eq!(
            submit_rule(&policy, &bob, "bridge", "postgres", None)
                .unwrap()
                .name,
            "dba"
        );
        let nobody = peer(1003, "eve", &[]);
        assert!(submit_rule(&policy, &nobody, "czechidm", "czechidm", None)
            .unwrap_err()
            .contains("no rule"));
    }

    #[test]
    fn another_database_of_the_instance_needs_dbnames() {
        let mut wide = rule("wide", &["dba"], &["*"], RuleMode::Request, false);
        wide.dbnames = vec!["postgres".into()];
        let policy = Policy::new(vec![
            rule("ask", &["ops"], &["czechidm"], RuleMode::Request, false),
            wide,
        ]);
        let alice = peer(1001, "alice", &["ops"]);
        let err =
            submit_rule(&policy, &alice, "czechidm", "czechidm", Some("template1")).unwrap_err();
        assert!(
            err.contains("covers only the instance's own database"),
            "{err}"
        );
        let dan = peer(1005, "dan", &["dba"]);
        assert_eq!(
            submit_rule(&policy, &dan, "czechidm", "czechidm", Some("postgres"))
                .unwrap()
                .name,
            "wide"
        );
        assert!(submit_rule(&policy, &dan, "czechidm", "czechidm", Some("template1")).is_err());
    }

    #[test]
    fn approve_needs_the_flag_for_that_db() {
        let policy = Policy::new(vec![
            rule("dba", &["dba"], &["*"], RuleMode::Write, false),
            rule("lead", &["leads"], &["czechidm"], RuleMode::Read, true),
        ]);
        let lead = peer(1004, "carol", &["leads"]);
        assert_eq!(
            approve_rule(&policy, &lead, "czechidm", "czechidm").map(|r| r.name),
            Some("lead".into())
        );
        assert!(approve_rule(&policy, &lead, "bridge", "bridge").is_none());
        // Writing is not approving.
        let dba = peer(1005, "dan", &["dba"]);
        assert!(approve_rule(&policy, &dba, "czechidm", "czechidm").is_none());
    }
}
