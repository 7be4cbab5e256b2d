//! The administrator's commands: `check-config` (like `visudo -c`,
//! `sshd -t`), `explain` (would this user be allowed, and by which rule) and
//! `status` (the running broker's counters, over its socket).

use crate::config::Config;
use crate::peer::{GroupInfo, PeerIdentity};
use crate::policy::{Access, PolicyDecision, Rule};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::path::Path;
use std::time::Duration;

/// The effective rules as a table, one line per rule, in the order they are
/// tried.
pub fn rules_table(config: &Config) -> String {
    let rows: Vec<[String; 7]> = config
        .policy
        .rules()
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                who(r),
                r.dbs.join(","),
                r.db_users.join(","),
                r.mode.to_string(),
                extras(r),
                r.source.clone(),
            ]
        })
        .collect();
    let header = ["RULE", "WHO", "DBS", "DB USERS", "MODE", "ALSO", "SOURCE"];
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<w$}  ");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&header);
    for row in &rows {
        line(&row.iter().map(String::as_str).collect::<Vec<_>>());
    }
    if rows.is_empty() {
        out.push_str("(no rules: every session is refused)\n");
    }
    out
}

fn who(r: &Rule) -> String {
    let mut parts = Vec::new();
    parts.extend(r.users.iter().map(|u| format!("user {u}")));
    parts.extend(r.uids.iter().map(|u| format!("uid {u}")));
    parts.extend(r.groups.iter().map(|g| format!("group {g}")));
    parts.join(", ")
}

fn extras(r: &Rule) -> String {
    let mut parts = Vec::new();
    if r.approve {
        parts.push("approves requests".to_owned());
    }
    if r.ddl {
        parts.push("ddl".to_owned());
    }
    if r.require_reason {
        parts.push("reason required".to_owned());
    }
    if r.approve {
        parts.push("approves change requests".to_owned());
    }
    if let Some(role) = &r.db_role {
        parts.push(format!("role {role}"));
    }
    if let Some(ms) = r.statement_timeout_ms {
        parts.push(format!("statement timeout {ms} ms"));
    }
    if let Some(ms) = r.idle_in_transaction_timeout_ms {
        parts.push(format!("idle-in-transaction timeout {ms} ms"));
    }
    parts.join(", ")
}

/// The report `check-config` prints for a valid configuration.
pub fn check_report(config: &Config) -> String {
    let mut out = format!("{}: OK\n", config.path.display());
    for dropin in &config.dropins {
        let _ = writeln!(out, "{}: OK", dropin.display());
    }
    let _ = writeln!(
        out,
        "socket {}, containers {}, pwfiles {}\n",
        config.server.socket.display(),
        config.docker.container,
        config.database.pwfile
    );
    out.push_str(&rules_table(config));
    out
}

/// Who may connect to the broker's socket, by its file mode: root always,
/// members of `group`, and everyone when `others` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketAccess {
    /// The socket file's group (gid and, when known, name).
    pub group: GroupInfo,
    /// The socket's mode lets anyone connect.
    pub others: bool,
    /// Where this was learnt: the socket file, or the configuration.
    pub from: String,
}

impl SocketAccess {
    /// The socket as it is now (the file, when it exists: under systemd it
    /// is the socket unit's), else as `[server]` says the broker would make
    /// it. `None` when neither says which group.
    pub fn of(config: &Config) -> Option<SocketAccess> {
        use std::os::unix::fs::MetadataExt;
        let group_name = |gid: u32| {
            nix::unistd::Group::from_gid(gid.into())
                .ok()
                .flatten()
                .map(|g| g.name)
        };
        if let Ok(meta) = std::fs::metadata(&config.server.socket) {
            return Some(SocketAccess {
                group: GroupInfo {
                    gid: meta.gid(),
                    name: group_name(meta.gid()),
                },
                others: meta.mode() & 0o002 != 0,
                from: format!("the socket {}", config.server.socket.display()),
            });
        }
        let name = config.server.socket_group.as_deref()?;
        let group = nix::unistd::Group::from_name(name).ok().flatten()?;
        Some(SocketAccess {
            group: GroupInfo {
                gid: group.gid.as_raw(),
                name: Some(group.name),
            },
            others: config.server.socket_mode & 0o002 != 0,
            from: format!("[server] socket_group of {}", config.path.display()),
        })
    }

    /// Whether `peer` may connect at all.
    pub fn admits(&self, peer: &PeerIdentity) -> bool {
        peer.uid == 0 || self.others || peer.groups.iter().any(|g| g.gid == self.group.gid)
    }

    fn group_name(&self) -> String {
        self.group
            .name
            .clone()
            .unwrap_or_else(|| self.group.gid.to_string())
    }
}

/// What `check-config` warns about without failing: names this host does
/// not know, rules nobody can reach through the socket, rules an earlier
/// rule always decides first. One line each, naming the rule and its place.
pub fn policy_warnings(config: &Config) -> Vec<String> {
    let mut warnings = Vec::new();
    let socket = SocketAccess::of(config);
    let rules = config.policy.rules();
    for (i, rule) in rules.iter().enumerate() {
        let at = format!("rule {:?} ({})", rule.name, rule.source);
        for user in &rule.users {
            match identity_of(user) {
                Err(_) => warnings.push(format!("{at}: no user {user:?} on this host")),
                Ok(peer) => {
                    if let Some(s) = socket.as_ref().filter(|s| !s.admits(&peer)) {
                        warnings.push(format!(
                            "{at}: user {user:?} is not in group {:?} of {}, so cannot connect; the rule never applies to them (usermod -aG {} {user})",
                            s.group_name(),
                            s.from,
                            s.group_name()
                        ));
                    }
                }
            }
        }
        for uid in &rule.uids {
            match nix::unistd::User::from_uid((*uid).into()).ok().flatten() {
                None => warnings.push(format!("{at}: no user with uid {uid} on this host")),
                Some(entry) => {
                    if let Ok(peer) = identity_of(&entry.name) {
                        if let Some(s) = socket.as_ref().filter(|s| !s.admits(&peer)) {
                            warnings.push(format!(
                                "{at}: uid {uid} ({}) is not in group {:?} of {}, so cannot connect",
                                entry.name,
                                s.group_name(),
                                s.from
                            ));
                        }
                    }
                }
            }
        }
        for group in &rule.groups {
            match nix::unistd::Group::from_name(group).ok().flatten() {
                None => warnings.push(format!("{at}: no group {group:?} on this host")),
                Some(g) => {
                    // Only the group's listed members are known here (users
                    // whose primary group it is are not listed): warn only
                    // when every listed member is shut out.
                    if let Some(s) = socket.as_ref() {
                        let shut_out = g.gid.as_raw() != s.group.gid
                            && !s.others
                            && !g.mem.is_empty()
                            && g.mem
                                .iter()
                                .all(|m| identity_of(m).is_ok_and(|p| !s.admits(&p)));
                        if shut_out {
                            warnings.push(format!(
                                "{at}: no member of group {group:?} ({}) is in group {:?} of {}, so none can connect",
                                g.mem.join(", "),
                                s.group_name(),
                                s.from
                            ));
                        }
                    }
                }
            }
        }
        if let Some(earlier) = rules[..i].iter().find(|e| shadows(e, rule)) {
            warnings.push(format!(
                "{at} is never used: rule {:?} ({}) comes first and grants the same people at least the same",
                earlier.name, earlier.source
            ));
        }
    }
    warnings
}

/// Whether `first` decides every request `later` could: it names at least
/// the same people, instances and database users, and grants the same mode
/// (or write over read, since a write rule also grants read sessions).
fn shadows(first: &Rule, later: &Rule) -> bool {
    use crate::policy::RuleMode;
    fn covers<T: PartialEq>(a: &[T], b: &[T]) -> bool {
        b.iter().all(|x| a.contains(x))
    }
    fn covers_names(a: &[String], b: &[String]) -> bool {
        a.iter().any(|x| x == "*") || covers(a, b)
    }
    let mode =
        first.mode == later.mode || (first.mode == RuleMode::Write && later.mode == RuleMode::Read);
    mode && covers(&first.users, &later.users)
        && covers(&first.uids, &later.uids)
        && covers(&first.groups, &later.groups)
        && covers_names(&first.dbs, &later.dbs)
        && covers_names(&first.db_users, &later.db_users)
        // What `later` adds beyond the grant still changes nothing: the
        // first match's settings are used.
        && !later.approve
}

/// Instances the configuration names (rules and `[database.instance]`)
/// whose container this host's Docker does not have.
pub async fn instance_warnings(config: &Config) -> Vec<String> {
    use crate::docker::{ContainerResolver, DockerError};
    let mut names = std::collections::BTreeSet::new();
    for rule in config.policy.rules() {
        names.extend(rule.dbs.iter().filter(|d| *d != "*").cloned());
    }
    names.extend(config.database.instance.keys().cloned());
    let resolver = ContainerResolver::new(&config.docker.socket, config.docker.timeout);
    let mut warnings = Vec::new();
    for db in names {
        let target = config.target(&db, None);
        match resolver.resolve(&target).await {
            Ok(_) => {}
            Err(DockerError::NoSuchContainer { .. }) => warnings.push(format!(
                "instance {db:?}: no container {:?} on this host",
                target.container
            )),
            Err(DockerError::NotRunning { .. }) => warnings.push(format!(
                "instance {db:?}: container {:?} is not running",
                target.container
            )),
            Err(e @ DockerError::Unreachable { .. }) => {
                warnings.push(format!("instances not checked: {e}"));
                break;
            }
            // An address problem is the broker's to report per session.
            Err(_) => {}
        }
    }
    warnings
}

/// `explain`'s USER: a user name, or a uid (digits) as the kernel reports
/// it, which need not have a name.
pub fn identity_of_user_or_uid(user: &str) -> Result<PeerIdentity, String> {
    if let Ok(uid) = user.parse::<u32>() {
        return match nix::unistd::User::from_uid(uid.into()).ok().flatten() {
            Some(entry) => identity_of(&entry.name),
            None => Ok(PeerIdentity {
                uid,
                gid: uid,
                pid: 0,
                user: None,
                groups: Vec::new(),
            }),
        };
    }
    identity_of(user)
}

/// The identity an OS user would have when connecting: uid, primary group
/// and the groups of the group database.
pub fn identity_of(user: &str) -> Result<PeerIdentity, String> {
    let entry = nix::unistd::User::from_name(user)
        .map_err(|e| format!("cannot look up user {user:?}: {e}"))?
        .ok_or_else(|| format!("no such user: {user:?}"))?;
    let cname = std::ffi::CString::new(user).map_err(|_| format!("invalid user name {user:?}"))?;
    let gids = nix::unistd::getgrouplist(&cname, entry.gid).unwrap_or_else(|_| vec![entry.gid]);
    let mut groups = vec![GroupInfo {
        gid: entry.gid.as_raw(),
        name: nix::unistd::Group::from_gid(entry.gid)
            .ok()
            .flatten()
            .map(|g| g.name),
    }];
    for gid in gids {
        if gid != entry.gid {
            groups.push(GroupInfo {
                gid: gid.as_raw(),
                name: nix::unistd::Group::from_gid(gid)
                    .ok()
                    .flatten()
                    .map(|g| g.name),
            });
        }
    }
    Ok(PeerIdentity {
        uid: entry.uid.as_raw(),
        gid: entry.gid.as_raw(),
        pid: 0,
        user: Some(entry.name),
        groups,
    })
}

/// `explain`: whether `peer` may open `db` as `db_user`, and by which rule.
/// `Ok` when allowed (the text names the rule), `Err` with the reason.
pub fn explain(config: &Config, peer: &PeerIdentity, access: Access<'_>) -> Result<String, String> {
    let mode = if access.write { "write" } else { "read" };
    let groups = peer.group_names().join(", ");
    if let Some(socket) = SocketAccess::of(config).filter(|s| !s.admits(peer)) {
        return Err(format!(
            "DENIED: {} cannot connect: not in group {:?} of {} (groups: {groups}); no rule is consulted",
            peer.describe(),
            socket.group_name(),
            socket.from
        ));
    }
    match config.policy.decide(peer, access) {
        PolicyDecision::Allow(rule) => {
            let mut text = format!(
                "ALLOWED: {} (groups: {groups}) may open {} as {} ({mode})\n  by rule {:?} at {}",
                peer.describe(),
                access.db,
                access.db_user,
                rule.name,
                rule.source
            );
            let also = extras(&rule);
            if !also.is_empty() {
                let _ = write!(text, "\n  with: {also}");
            }
            Ok(text)
        }
        PolicyDecision::Deny { reason } => Err(format!("DENIED: {reason} (groups: {groups})")),
    }
}

/// Sends one request (`op` and its fields) to the broker at `socket` and
/// returns the answer frame, or the error frame's message.
pub fn ask(socket: &Path, request: serde_json::Value) -> Result<serde_json::Value, String> {
    let mut stream = std::os::unix::net::UnixStream::connect(socket)
        .map_err(|e| format!("cannot connect to {}: {e}", socket.display()))?;
    let timeout = Some(Duration::from_secs(10));
    let _ = stream.set_read_timeout(timeout);
    let _ = stream.set_write_timeout(timeout);
    let mut line = request.to_string();
    line.push('\n');
    stream
        .write_all(line.as_bytes())
        .map_err(|e| format!("cannot send to {}: {e}", socket.display()))?;
    let mut answer = String::new();
    BufReader::new(&stream)
        .read_line(&mut answer)
        .map_err(|e| format!("no answer from {}: {e}", socket.display()))?;
    let frame: serde_json::Value =
        serde_json::from_str(&answer).map_err(|e| format!("unreadable answer: {e}"))?;
    match frame["type"].as_str() {
        Some("error") | None => Err(iam_pgbroker_proto::display::escape_line(
            frame["error"]["message"]
                .as_str()
                .unwrap_or("unexpected answer"),
        )
        .into_owned()),
        Some(_) => Ok(frame),
    }
}

/// Asks the broker at `socket` for its status.
pub fn fetch_status(socket: &Path) -> Result<serde_json::Value, String> {
    ask(socket, serde_json::json!({"id": 1, "op": "status"})).map(|f| f["status"].clone())
}

/// Asks the broker at `socket` for its open sessions.
pub fn fetch_sessions(socket: &Path) -> Result<Vec<serde_json::Value>, String> {
    ask(socket, serde_json::json!({"id": 1, "op": "sessions"}))
        .map(|f| f["sessions"].as_array().cloned().unwrap_or_default())
}

/// The sessions as one JSON array.
pub fn sessions_json(sessions: &[serde_json::Value]) -> String {
    serde_json::Value::Array(sessions.to_vec()).to_string()
}

/// `cancel` or `terminate` (`op`) session `session` at `socket`.
pub fn end_session(socket: &Path, op: &str, session: &str) -> Result<(), String> {
    ask(
        socket,
        serde_json::json!({"id": 1, "op": op, "session": session}),
    )
    .map(|_| ())
}

/// `sessions` for a person: one line per session, everything other people
/// wrote escaped.
pub fn sessions_text(sessions: &[serde_json::Value]) -> String {
    use iam_pgbroker_proto::display::escape_line;
    if sessions.is_empty() {
        return "(no open sessions)\n".to_owned();
    }
    let mut out = format!(
        "{:<16}  {:<24} {:<22} {:<5} {:<19} {:>8} {:>7}  STATEMENT\n",
        "SESSION", "WHO (PROCESS)", "DB_USER@DB", "MODE", "STATE", "TXN_AGE", "BACKEND"
    );
    for s in sessions {
        let who = format!(
            "{}({}) {}",
            s["user"].as_str().unwrap_or("?"),
            s["uid"],
            s["process"].as_str().unwrap_or("")
        );
        let age = s["transaction_age_ms"]
            .as_u64()
            .map(|ms| format!("{:.1}s", ms as f64 / 1000.0))
            .unwrap_or_default();
        let statement = match (s["statement"].as_str(), s["statement_ms"].as_u64()) {
            (Some(sql), Some(ms)) => format!(
                "{} ({:.1}s)",
                sql.split_whitespace().collect::<Vec<_>>().join(" "),
                ms as f64 / 1000.0
            ),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{:<16}  {:<24} {:<22} {:<5} {:<19} {:>8} {:>7}  {}",
            s["session"].as_str().unwrap_or("?"),
            escape_line(&who),
            escape_line(&format!(
                "{}@{}",
                s["db_user"].as_str().unwrap_or("?"),
                s["db"].as_str().unwrap_or("?")
            )),
            s["mode"].as_str().unwrap_or("?"),
            s["state"].as_str().unwrap_or("?"),
            age,
            s["backend_pid"]
                .as_i64()
                .map(|p| p.to_string())
                .unwrap_or_default(),
            escape_line(&statement)
        );
    }
    out
}

/// `status` for a person. User names, instance names and pool targets
/// come from other people's sessions: each is escaped
/// ([`iam_pgbroker_proto::display`]) so none of it drives the terminal.
pub fn status_text(status: &serde_json::Value) -> String {
    use iam_pgbroker_proto::display::escape_line;
    let mut out = String::new();
    let uptime = status["uptime_s"].as_u64().unwrap_or(0);
    let _ = writeln!(
        out,
        "iam-pgbroker {}, up {}h {:02}m {:02}s",
        status["version"].as_str().unwrap_or("?"),
        uptime / 3600,
        uptime / 60 % 60,
        uptime % 60
    );
    let _ = writeln!(
        out,
        "sessions: {} open, {} since start; statements served: {}",
        status["sessions_open"], status["sessions_total"], status["statements"]
    );
    if let Some(open) = status["open"].as_array().filter(|a| !a.is_empty()) {
        out.push_str("\nopen sessions\n  USER (UID)                DB              SESSIONS\n");
        for o in open {
            let who = format!(
                "{} ({})",
                escape_line(o["user"].as_str().unwrap_or("?")),
                o["uid"]
            );
            let _ = writeln!(
                out,
                "  {who:<25} {:<15} {}",
                escape_line(o["db"].as_str().unwrap_or("?")),
                o["sessions"]
            );
        }
    }
    if let Some(errors) = status["errors"].as_object().filter(|e| !e.is_empty()) {
        out.push_str("\nerrors by code\n");
        for (code, n) in errors {
            let _ = writeln!(out, "  {:<20} {n}", escape_line(code));
        }
    }
    if let Some(pools) = status["pools"].as_array().filter(|p| !p.is_empty()) {
        out.push_str("\nidle server connections\n");
        for p in pools {
            let _ = writeln!(
                out,
                "  {:<60} {}",
                escape_line(p["target"].as_str().unwrap_or("?")),
                p["idle"]
            );
        }
    }
    let fair = &status["fair_share"];
    if let Some(servers) = fair["servers"].as_array().filter(|s| !s.is_empty()) {
        out.push_str(
            "
server connections (fair share)
",
        );
        for s in servers {
            let _ = writeln!(
                out,
                "  {:<24} in use {} of {} usable (max_connections {}), {} waiting",
                escape_line(s["server"].as_str().unwrap_or("?")),
                s["in_use"],
                s["usable"],
                s["max_connections"],
                s["waiting"]
            );
        }
    }
    let reserve = &fair["audit_reserve"];
    if let Some(bytes) = reserve["reserve_bytes"].as_u64().filter(|b| *b > 0) {
        let mib = |v: &serde_json::Value| {
            v.as_u64()
                .map(|b| format!("{} MiB", b / (1024 * 1024)))
                .unwrap_or_else(|| "?".into())
        };
        let _ = writeln!(
            out,
            "
audit folder: {} free, reserve {}{}",
            mib(&reserve["free_bytes"]),
            bytes / (1024 * 1024),
            if reserve["below"] == true {
                " MiB: BELOW THE RESERVE, new sessions are refused"
            } else {
                " MiB"
            }
        );
    }
    out
}

/// Which source would give the password of `db_user` on `db` now (read
/// from it, so a missing entry or an unreachable OpenBao shows), or, for
/// a rule with `dynamic_credentials`, where the short-lived role would
/// come from. Never the password.
pub async fn password_source(config: &Config, db: &str, db_user: &str, dynamic: bool) -> String {
    if dynamic {
        return match &config.secrets.openbao {
            Some(bao) => format!(
                "dynamic credentials from openbao {} {}/creds/{}",
                bao.address,
                bao.database_mount,
                crate::secrets::config::substitute(&bao.database_role, db, db_user)
            ),
            None => "dynamic credentials, but [secrets.openbao] is not configured".into(),
        };
    }
    let sources = crate::secrets::SecretSources::default();
    match sources.password(config, db, db_user, false).await {
        Ok(secret) => secret.source,
        Err(e) => format!("none: {e}"),
    }
}

/// `check-config`'s part on passwords: the order of the sources, and for
/// every instance and database user the rules name literally, the source
/// that has its password.
pub async fn sources_report(config: &Config) -> String {
    let order = |list: Vec<crate::secrets::SourceKind>| {
        list.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
    };
    let mut out = format!(
        "\npassword sources, in order: {}\n",
        order(config.secret_sources_default())
    );
    for (name, over) in &config.database.instance {
        if over.secrets.is_some() {
            let _ = writeln!(
                out,
                "  instance {name}: {}",
                order(config.secret_sources(name))
            );
        }
    }
    let mut pairs = std::collections::BTreeMap::new();
    for rule in config.policy.rules() {
        for db in rule.dbs.iter().filter(|d| *d != "*") {
            for user in rule.db_users.iter().filter(|u| *u != "*") {
                let dynamic = pairs.entry((db.clone(), user.clone())).or_insert(false);
                *dynamic |= rule.dynamic_credentials;
            }
        }
    }
    for ((db, user), dynamic) in pairs {
        let source = password_source(config, &db, &user, dynamic).await;
        let _ = writeln!(out, "  {db} as {user}: {source}");
    }
    out
}
