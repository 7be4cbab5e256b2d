//! A read session is never a superuser session.
//!
//! The guard refuses what a read session may not do; this is the second
//! line, where PostgreSQL itself says no. A read session for a database
//! user that holds superuser-level power — a superuser, or a member of
//! `pg_read_server_files`, `pg_write_server_files`,
//! `pg_execute_server_program`, `pg_signal_backend`, or a role with
//! `REPLICATION` — logs in instead as a role of its own OS user,
//! `{read_role}_{uid}` (`iam_pgbroker_read_1001`): a LOGIN role without any
//! of those attributes, member of one group role `{read_role}` that may
//! read every table and sequence of every schema in the database, and
//! `pg_read_all_stats` — nothing else. So file access, `pg_authid`,
//! signals to other users' sessions, `COPY … PROGRAM`, server-side large
//! objects and `SET ROLE` back to the superuser are refused by PostgreSQL
//! even where a guard rule were missing: there is no superuser to return to.
//!
//! - One login role per OS user: PostgreSQL lets a role signal its own
//!   sessions (`pg_terminate_backend`), so a shared role would let one
//!   user's read session end another's; and pooled connections never
//!   cross OS users anyway.
//! - The broker provisions the roles itself, as the superuser whose pwfile
//!   it holds (idempotent, serialised across brokers by an advisory lock):
//!   the first read session per broker process, database and OS user runs
//!   it, and again whenever the role cannot log in.
//! - The login role's password is derived from the superuser's (HMAC), so
//!   it is stored nowhere and every broker of the appliance agrees on it;
//!   it reaches the server as a SCRAM verifier, never as text.
//! - Not `pg_read_all_data` (PostgreSQL 14+): its members read `pg_authid`
//!   and `pg_statistic` — password hashes — as measured on PostgreSQL 15.
//!   Explicit grants work the same on 12 and 13.

use crate::error::RequestError;
use crate::secrets::Password;
use crate::session::{self, ServerTarget, SessionSettings};
use crate::sync::lock;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// How long what the broker learned about a database user's privileges
/// holds before it asks again.
const PRIVILEGE_TTL: Duration = Duration::from_secs(300);

/// The roles whose members reach outside the database: such a database
/// user is treated like a superuser.
const DANGEROUS_ROLES: &[&str] = &[
    "pg_read_server_files",
    "pg_write_server_files",
    "pg_execute_server_program",
    "pg_signal_backend",
];

/// Does the connected user hold superuser-level power? One row, one bool.
const PRIVILEGE_SQL: &str = "SELECT r.rolsuper OR r.rolreplication OR EXISTS (\
     SELECT 1 FROM pg_catalog.pg_roles d \
     WHERE d.rolname IN ('pg_read_server_files', 'pg_write_server_files', \
                         'pg_execute_server_program', 'pg_signal_backend') \
       AND pg_catalog.pg_has_role(r.oid, d.oid, 'MEMBER')) \
     FROM pg_catalog.pg_roles r WHERE r.rolname = session_user";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct UserKey {
    addr: IpAddr,
    port: u16,
    user: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ProvisionKey {
    addr: IpAddr,
    port: u16,
    dbname: String,
    login: String,
    db_role: Option<String>,
}

/// What the broker knows about database users' privileges, and which read
/// roles it has provisioned, per server.
#[derive(Default)]
pub struct ReadRoles {
    privileged: Mutex<HashMap<UserKey, (bool, Instant)>>,
    provisioned: Mutex<HashSet<ProvisionKey>>,
}

/// How a read session logs in.
#[derive(Debug, Clone)]
pub struct ReadLogin {
    /// The target with the user the session logs in as.
    pub target: ServerTarget,
    /// That user's password.
    pub password: Password,
    /// The read role, when it is not the database user itself.
    pub read_role: Option<String>,
}

/// `settings` as the broker's own connections (the probe, provisioning)
/// need them: as the database user itself, without the rule's `db_role`.
fn own(settings: &SessionSettings) -> SessionSettings {
    SessionSettings {
        db_role: None,
        ..settings.clone()
    }
}

/// The login role of OS user `uid` under group role `group`.
pub fn login_role(group: &str, uid: u32) -> String {
    format!("{group}_{uid}")
}

/// A SQL identifier, double-quoted.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A SQL string literal (standard_conforming_strings is on since 9.1).
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The login role's password: HMAC-SHA256 of its name, keyed with the
/// superuser's password. Deterministic (every broker derives the same),
/// useless without the superuser's password.
fn derived_password(superuser: &Password, login: &str) -> Password {
    let mut mac = match Hmac::<Sha256>::new_from_slice(superuser.expose().as_bytes()) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; this arm cannot run.
        Err(_) => return Password::derived(String::new()),
    };
    mac.update(b"iam-pgbroker read role v1\0");
    mac.update(login.as_bytes());
    Password::derived(hex::encode(mac.finalize().into_bytes()))
}

/// The statements that make `group` and `login` what this module promises,
/// run as the superuser in one transaction. Idempotent. `verifier` is the
/// SCRAM verifier of the login role's password.
pub fn provision_sql(group: &str, login: &str, verifier: &str, db_role: Option<&str>) -> String {
    let (g, l) = (ident(group), ident(login));
    let (gl, ll) = (literal(group), literal(login));
    let attributes = "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS";
    let mut sql = format!(
        "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('iam-pgbroker read roles'));\n\
         DO $provision$\n\
         DECLARE s record; o record; m record;\n\
         BEGIN\n\
         IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = {gl}) THEN\n\
           CREATE ROLE {g} NOLOGIN;\n\
         END IF;\n\
         ALTER ROLE {g} NOLOGIN {attributes};\n\
         IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = {ll}) THEN\n\
           CREATE ROLE {l} LOGIN;\n\
         END IF;\n\
         ALTER ROLE {l} LOGIN INHERIT {attributes} PASSWORD {verifier};\n\
         ALTER ROLE {l} SET default_transaction_read_only = on;\n\
         -- Nothing but the group: memberships someone else added go.\n\
         FOR m IN SELECT r.rolname FROM pg_catalog.pg_auth_members a\n\
                  JOIN pg_catalog.pg_roles r ON r.oid = a.roleid\n\
                  WHERE a.member = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = {ll})\n\
                    AND r.rolname <> {gl} LOOP\n\
           EXECUTE format('REVOKE %I FROM %I', m.rolname, {ll});\n\
         END LOOP;\n\
         GRANT {g} TO {l};\n\
         GRANT pg_read_all_stats TO {g};\n\
         -- The broker caps its sessions' temporary files (a superuser's\n\
         -- setting: PostgreSQL 15 lets it be granted).\n\
         IF pg_catalog.current_setting('server_version_num')::int >= 150000 THEN\n\
           EXECUTE format('GRANT SET ON PARAMETER temp_file_limit TO %I', {gl});\n\
         END IF;\n\
         EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), {gl});\n\
         FOR s IN SELECT n.nspname FROM pg_catalog.pg_namespace n\n\
                  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')\n\
                    AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)' LOOP\n\
           EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', s.nspname, {gl});\n\
           EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO %I', s.nspname, {gl});\n\
           EXECUTE format('GRANT SELECT ON ALL SEQUENCES IN SCHEMA %I TO %I', s.nspname, {gl});\n\
           -- Tables their owners create later are readable too.\n\
           FOR o IN SELECT DISTINCT r.rolname FROM pg_catalog.pg_roles r\n\
                    WHERE r.oid IN (SELECT nspowner FROM pg_catalog.pg_namespace WHERE nspname = s.nspname\n\
                                    UNION SELECT relowner FROM pg_catalog.pg_class c\n\
                                          JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace\n\
                                          WHERE cn.nspname = s.nspname) LOOP\n\
             EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I GRANT SELECT ON TABLES TO %I',\n\
                            o.rolname, s.nspname, {gl});\n\
             EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I GRANT SELECT ON SEQUENCES TO %I',\n\
                            o.rolname, s.nspname, {gl});\n\
           END LOOP;\n\
         END LOOP;\n",
        verifier = literal(verifier),
    );
    if let Some(role) = db_role {
        // The rule's narrower role: the read role may SET ROLE to it (a
        // RESET ROLE then returns to the read role, never further).
        sql.push_str(&format!("GRANT {} TO {g};\n", ident(role)));
    }
    sql.push_str("END $provision$;\n");
    sql
}

impl ReadRoles {
    /// How a read session for `target.user` logs in: as that user when it
    /// holds no superuser-level power, else as OS user `uid`'s read role
    /// under group `group` (provisioned first, if this broker has not yet).
    pub async fn login(
        &self,
        target: &ServerTarget,
        password: &Password,
        uid: u32,
        group: &str,
        settings: &SessionSettings,
    ) -> Result<ReadLogin, RequestError> {
        let key = UserKey {
            addr: target.addr,
            port: target.port,
            user: target.user.clone(),
        };
        let known = lock(&self.privileged)
            .get(&key)
            .filter(|(_, at)| at.elapsed() < PRIVILEGE_TTL)
            .map(|(privileged, _)| *privileged);
        let privileged = match known {
            Some(p) => p,
            None => {
                let p = probe(target, password, settings).await?;
                lock(&self.privileged).insert(key, (p, Instant::now()));
                p
            }
        };
        if !privileged {
            return Ok(ReadLogin {
                target: target.clone(),
                password: password.clone(),
                read_role: None,
            });
        }
        let login = login_role(group, uid);
        self.provision(target, password, group, &login, settings, false)
            .await?;
        Ok(ReadLogin {
            target: ServerTarget {
                user: login.clone(),
                ..target.clone()
            },
            password: derived_password(password, &login),
            read_role: Some(login),
        })
    }

    /// Forgets what is known of `target.user`: a connection as that user
    /// turned out to be a superuser's after all.
    pub fn mark_privileged(&self, target: &ServerTarget) {
        let key = UserKey {
            addr: target.addr,
            port: target.port,
            user: target.user.clone(),
        };
        lock(&self.privileged).insert(key, (true, Instant::now()));
    }

    /// Provisions the read role again even if this broker did before (its
    /// login failed: another broker, or an administrator, changed it).
    pub async fn reprovision(
        &self,
        superuser: &ServerTarget,
        password: &Password,
        group: &str,
        login: &str,
        settings: &SessionSettings,
    ) -> Result<(), RequestError> {
        self.provision(superuser, password, group, login, settings, true)
            .await
    }

    async fn provision(
        &self,
        superuser: &ServerTarget,
        password: &Password,
        group: &str,
        login: &str,
        settings: &SessionSettings,
        force: bool,
    ) -> Result<(), RequestError> {
        let key = ProvisionKey {
            addr: superuser.addr,
            port: superuser.port,
            dbname: superuser.dbname.clone(),
            login: login.to_owned(),
            db_role: settings.db_role.clone(),
        };
        if !force && lock(&self.provisioned).contains(&key) {
            return Ok(());
        }
        if let Some(role) = &settings.db_role {
            check_db_role(superuser, password, role, settings).await?;
        }
        let verifier = postgres_protocol::password::scram_sha_256(
            derived_password(password, login).expose().as_bytes(),
        );
        let sql = provision_sql(group, login, &verifier, settings.db_role.as_deref());
        let conn =
            session::connect(superuser, password, "pgbroker provisioning", &own(settings)).await?;
        let result = conn
            .client
            .batch_execute(&format!("BEGIN;\n{sql}COMMIT;"))
            .await;
        let definers = match result {
            Ok(()) => conn
                .client
                .simple_query(&definer_sql(group))
                .await
                .map(|rows| {
                    rows.iter()
                        .filter_map(|m| match m {
                            tokio_postgres::SimpleQueryMessage::Row(row) => {
                                row.get(0).map(str::to_owned)
                            }
                            _ => None,
                        })
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        conn.discard();
        if !definers.is_empty() {
            // The one way back to superuser rights that a role cannot be
            // denied by a grant: PUBLIC may execute these. The guard refuses
            // them in read sessions (functions it does not know); PostgreSQL
            // alone would not.
            warn!(
                server = %superuser,
                functions = %definers.join(", "),
                "SECURITY DEFINER functions owned by a superuser are executable by read sessions' roles; \
                 REVOKE EXECUTE … FROM PUBLIC on them (docs/security.md, \"Read roles\")"
            );
        }
        match result {
            Ok(()) => {
                info!(
                    role = login,
                    group,
                    server = %superuser,
                    "read role provisioned: read sessions as {} run as {login}",
                    superuser.user
                );
                lock(&self.provisioned).insert(key);
                Ok(())
            }
            Err(source) => {
                warn!(cause = %source, role = login, server = %superuser, "provisioning the read role failed");
                Err(RequestError::ReadRole(format!(
                    "read sessions as {} must not run as a superuser, and the read role {login} could not be set up on {}: {}",
                    superuser.user,
                    superuser.container,
                    crate::error::display_chain(&source)
                )))
            }
        }
    }
}

/// The `SECURITY DEFINER` functions owned by a role with superuser-level
/// power that `group` may execute (through PUBLIC, usually), outside
/// PostgreSQL's own schemas: each one runs with its owner's rights.
fn definer_sql(group: &str) -> String {
    format!(
        "SELECT p.oid::pg_catalog.regprocedure::text FROM pg_catalog.pg_proc p \
         JOIN pg_catalog.pg_roles o ON o.oid = p.proowner \
         WHERE p.prosecdef \
           AND p.pronamespace NOT IN ('pg_catalog'::pg_catalog.regnamespace, \
                                      'information_schema'::pg_catalog.regnamespace) \
           AND (o.rolsuper OR EXISTS (SELECT 1 FROM pg_catalog.pg_roles d \
                WHERE d.rolname IN ({}) AND pg_catalog.pg_has_role(o.oid, d.oid, 'MEMBER'))) \
           AND pg_catalog.has_function_privilege({}, p.oid, 'EXECUTE') \
         ORDER BY 1",
        DANGEROUS_ROLES
            .iter()
            .map(|r| literal(r))
            .collect::<Vec<_>>()
            .join(", "),
        literal(group)
    )
}

/// Refuses to hand a read role a `db_role` that holds superuser-level power.
async fn check_db_role(
    superuser: &ServerTarget,
    password: &Password,
    role: &str,
    settings: &SessionSettings,
) -> Result<(), RequestError> {
    let conn =
        session::connect(superuser, password, "pgbroker provisioning", &own(settings)).await?;
    let sql = format!(
        "SELECT r.rolsuper OR r.rolreplication OR EXISTS (\
           SELECT 1 FROM pg_catalog.pg_roles d WHERE d.rolname IN ({}) \
             AND pg_catalog.pg_has_role(r.oid, d.oid, 'MEMBER')) \
         FROM pg_catalog.pg_roles r WHERE r.rolname = {}",
        DANGEROUS_ROLES
            .iter()
            .map(|r| literal(r))
            .collect::<Vec<_>>()
            .join(", "),
        literal(role)
    );
    let rows = conn.client.simple_query(&sql).await;
    conn.discard();
    let dangerous = rows
        .map_err(RequestError::Postgres)?
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(|v| v == "t"),
            _ => None,
        });
    match dangerous {
        Some(false) => Ok(()),
        Some(true) => Err(RequestError::ReadRole(format!(
            "db_role {role} holds superuser-level power; a read session may not take it"
        ))),
        None => Err(RequestError::ReadRole(format!(
            "db_role {role} does not exist on {}",
            superuser.container
        ))),
    }
}

/// Connects as `target.user` and asks whether it holds superuser-level
/// power (superuser from the connection's own report, the rest by query).
async fn probe(
    target: &ServerTarget,
    password: &Password,
    settings: &SessionSettings,
) -> Result<bool, RequestError> {
    let conn = session::connect(target, password, "pgbroker probe", &own(settings)).await?;
    if conn.superuser {
        conn.discard();
        return Ok(true);
    }
    let rows = conn.client.simple_query(PRIVILEGE_SQL).await;
    conn.discard();
    let privileged = rows
        .map_err(RequestError::Postgres)?
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(|v| v == "t"),
            _ => None,
        })
        .unwrap_or(true);
    Ok(privileged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_passwords_depend_on_both_inputs_and_nothing_else() {
        let a = Password::derived("superuser secret".into());
        let b = Password::derived("other secret".into());
        let x = derived_password(&a, "iam_pgbroker_read_1001");
        assert_eq!(
            x.expose(),
            derived_password(&a, "iam_pgbroker_read_1001").expose()
        );
        assert_ne!(
            x.expose(),
            derived_password(&a, "iam_pgbroker_read_1002").expose()
        );
        assert_ne!(
            x.expose(),
            derived_password(&b, "iam_pgbroker_read_1001").expose()
        );
        assert_eq!(x.expose().len(), 64);
        assert!(!x.expose().contains("secret"));
    }

    #[test]
    fn provisioning_quotes_every_name() {
        let sql = provision_sql("g\"x", "l'y", "SCRAM-SHA-256$4096:abc", Some("r\"o"));
        assert!(sql.contains("CREATE ROLE \"g\"\"x\" NOLOGIN"), "{sql}");
        assert!(sql.contains("rolname = 'l''y'"), "{sql}");
        assert!(sql.contains("PASSWORD 'SCRAM-SHA-256$4096:abc'"), "{sql}");
        assert!(sql.contains("GRANT \"r\"\"o\" TO \"g\"\"x\""), "{sql}");
        assert!(
            !sql.contains("pg_read_all_data"),
            "pg_read_all_data reads pg_authid"
        );
    }

    #[test]
    fn login_roles_are_per_os_user() {
        assert_eq!(
            login_role("iam_pgbroker_read", 1001),
            "iam_pgbroker_read_1001"
        );
    }
}
