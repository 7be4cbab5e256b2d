//! `iam-pg request|requests|approve|reject|cancel`: two-person write
//! approval from the command line (`docs/approval.md`).
//!
//! The plain `iam-pg [-c SQL]…` form has no positional arguments, so a
//! first argument that is one of these words selects this parser; anything
//! else goes to [`crate::args::Args`] exactly as before.

use crate::run::{exit_status, EXIT_DATABASE, EXIT_USAGE};
use crate::script;
use clap::{Args, Parser, Subcommand};
use iam_pgbroker_proto::display::{escape_line, escape_text};
use iam_pgbroker_proto::{Changes, RowValues, DEFAULT_DB, DEFAULT_DB_USER};
use iam_pgconnect::{
    ApprovalRequest, Approvals, Change, Config, Error, RequestList, RequestState, ToParam,
};
use std::ffi::OsStr;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// The words that select the approval commands.
const COMMANDS: &[&str] = &["request", "requests", "approve", "reject", "cancel"];

/// Whether the first argument selects an approval command.
pub fn is_approval_command(first: Option<&OsStr>) -> bool {
    first
        .and_then(OsStr::to_str)
        .is_some_and(|w| COMMANDS.contains(&w))
}

const AFTER_HELP: &str = "\
Examples:
  # Alice asks (her rule has mode = \"request\"):
  iam-pg request -U czechidm --reason 'INC-4711: disable a leaver' \\
      -c 'UPDATE idm_identity SET disabled = true WHERE username = %s' -p jnovak
  # Bob reviews and decides (his rule has approve = true):
  iam-pg requests
  iam-pg request show 3f9c1a0b7d2e4c51
  iam-pg approve 3f9c1a0b7d2e4c51 --comment 'checked with HR'
  iam-pg reject 3f9c1a0b7d2e4c51 --comment 'wrong person'
  # Alice withdraws it instead:
  iam-pg cancel 3f9c1a0b7d2e4c51

The broker dry-runs a request when it is submitted (the statements run in a
transaction that is rolled back) and keeps each statement's row count. On
approval they run again in one transaction; if any count differs, nothing is
committed and the request is `drifted`: submit it again. Nobody approves
their own request.

Exit status: 0 success, 1 database error or a drifted or failed request,
2 usage error or bad request, 3 denied, 4 broker unavailable.";

/// Change requests: a write that a second person approves before it runs.
#[derive(Debug, Parser)]
#[command(name = "iam-pg", version, after_help = AFTER_HELP)]
pub struct ApprovalArgs {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Submit a change for another person to approve (or `request show ID`).
    #[command(
        args_conflicts_with_subcommands = true,
        subcommand_negates_reqs = true,
        after_help = AFTER_HELP
    )]
    Request(RequestArgs),
    /// List the change requests you may see: your own, and those you may
    /// approve.
    Requests {
        /// Requests in every state, not only pending ones.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Approve a request: it runs at once, and is committed only if every
    /// statement affects as many rows as in its dry run.
    Approve {
        /// The request's id.
        id: String,
        /// A comment for the requester and the audit.
        #[arg(long, value_name = "TEXT")]
        comment: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Reject a request, saying why.
    Reject {
        /// The request's id.
        id: String,
        /// Why it is rejected (required).
        #[arg(long, value_name = "TEXT", required = true)]
        comment: String,
        #[command(flatten)]
        common: Common,
    },
    /// Withdraw your own pending request.
    Cancel {
        /// The request's id.
        id: String,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Debug, Args)]
struct RequestArgs {
    #[command(subcommand)]
    show: Option<RequestCommand>,

    /// Database instance: the {db}-db container.
    #[arg(short = 'd', long = "db", value_name = "DB", default_value = DEFAULT_DB)]
    db: String,

    /// Database user the change runs as.
    #[arg(short = 'U', long = "user", value_name = "USER", default_value = DEFAULT_DB_USER)]
    user: String,

    /// Database name inside the instance [default: the instance name].
    #[arg(long, value_name = "NAME")]
    dbname: Option<String>,

    /// Why the change is needed (a ticket number); the approver reads it.
    #[arg(long, value_name = "TEXT", required = true)]
    reason: Option<String>,

    /// SQL of the change (repeatable; split on ';'; run in order in one
    /// transaction).
    #[arg(short = 'c', long = "command", value_name = "SQL", required = true)]
    commands: Vec<String>,

    /// A parameter value for %s or $n placeholders (repeatable; all of
    /// them go with every statement that has placeholders, as in plain
    /// iam-pg).
    #[arg(
        short = 'p',
        long = "param",
        value_name = "VALUE",
        allow_hyphen_values = true
    )]
    params: Vec<String>,

    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Subcommand)]
enum RequestCommand {
    /// Show one request: statements, parameters, reason, requester, counts.
    Show {
        /// The request's id.
        id: String,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Debug, Args)]
struct Common {
    /// Print the broker's answer as JSON.
    #[arg(long)]
    json: bool,

    /// The broker's socket [default: $IAM_PGBROKER_SOCKET, else
    /// /run/iam-pgbroker/pgbroker.sock].
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
}

impl Common {
    fn connect(&self) -> Result<Approvals, Error> {
        let mut config = Config::new().client_name(concat!("iam-pg/", env!("CARGO_PKG_VERSION")));
        if let Some(socket) = &self.socket {
            config = config.socket(socket);
        }
        config.approvals()
    }
}

/// What a command answered.
enum Answer {
    One(Box<ApprovalRequest>),
    List(RequestList),
}

/// Runs an approval command and maps its outcome to an exit status.
pub fn main(args: ApprovalArgs) -> ExitCode {
    let (common, result) = match &args.command {
        Command::Request(r) => match &r.show {
            Some(RequestCommand::Show { id, common }) => (
                common,
                call(common, |a| a.show(id).map(|r| Answer::One(Box::new(r)))),
            ),
            None => match change(r) {
                Ok(change) => (
                    &r.common,
                    call(&r.common, |a| {
                        a.submit(&change).map(|r| Answer::One(Box::new(r)))
                    }),
                ),
                Err(status) => return status,
            },
        },
        Command::Requests { all, common } => {
            (common, call(common, |a| a.list(*all).map(Answer::List)))
        }
        Command::Approve {
            id,
            comment,
            common,
        } => (
            common,
            call(common, |a| {
                a.approve(id, comment.as_deref())
                    .map(|r| Answer::One(Box::new(r)))
            }),
        ),
        Command::Reject {
            id,
            comment,
            common,
        } => (
            common,
            call(common, |a| {
                a.reject(id, comment).map(|r| Answer::One(Box::new(r)))
            }),
        ),
        Command::Cancel { id, common } => (
            common,
            call(common, |a| a.cancel(id).map(|r| Answer::One(Box::new(r)))),
        ),
    };
    let answer = match result {
        Ok(answer) => answer,
        Err(err) => {
            // A request's errors quote its statements and values: the
            // requester's text, on the approver's terminal.
            eprintln!("iam-pg: error: {}", escape_line(&err.to_string()));
            if let Some(detail) = err.detail() {
                eprintln!("DETAIL:  {}", escape_line(detail));
            }
            if let Some(hint) = err.hint() {
                eprintln!("HINT:  {}", escape_line(hint));
            }
            return ExitCode::from(exit_status(err.code()));
        }
    };
    let submitted = matches!(&args.command, Command::Request(r) if r.show.is_none());
    let approved = matches!(&args.command, Command::Approve { .. });
    let mut out = io::stdout().lock();
    let printed = match &answer {
        Answer::One(r) if common.json => {
            writeln!(out, "{}", serde_json::to_string(r).unwrap_or_default())
        }
        Answer::List(l) if common.json => writeln!(
            out,
            "{}",
            serde_json::to_string(&l.requests).unwrap_or_default()
        ),
        Answer::One(r) if submitted => print_submitted(&mut out, r),
        Answer::One(r) => print_request(&mut out, r),
        Answer::List(l) => print_list(&mut out, &l.requests),
    };
    if let Err(e) = printed.and_then(|()| out.flush()) {
        if e.kind() != io::ErrorKind::BrokenPipe {
            eprintln!("iam-pg: error: cannot write the output: {e}");
        }
        return ExitCode::from(EXIT_DATABASE);
    }
    match answer {
        Answer::List(l) => {
            for id in &l.refused {
                eprintln!(
                    "iam-pg: warning: request {id} was refused by the broker: its file was changed outside the broker (see the broker's journal)"
                );
            }
            ExitCode::SUCCESS
        }
        // Only the approval that ran it fails with the request; showing a
        // drifted request is not an error.
        Answer::One(_) if !approved => ExitCode::SUCCESS,
        Answer::One(r) => match r.state {
            RequestState::Drifted | RequestState::Failed => {
                if !common.json {
                    eprintln!(
                        "iam-pg: request {} {}: nothing was committed{}",
                        r.id,
                        r.state,
                        match r.state {
                            RequestState::Failed =>
                                " that the broker could confirm; check the data",
                            _ if r.error.is_some() => "; submit it again",
                            _ =>
                                " (at approval it changed other rows, other values or another number of rows \
                                 than in the dry run: see DIFFERS above); submit it again",
                        }
                    );
                }
                ExitCode::from(EXIT_DATABASE)
            }
            _ => ExitCode::SUCCESS,
        },
    }
}

fn call<T>(
    common: &Common,
    f: impl FnOnce(&mut Approvals) -> Result<T, Error>,
) -> Result<T, Error> {
    let mut approvals = common.connect()?;
    f(&mut approvals)
}

/// The change the arguments describe: each -c split on ';', the -p values
/// with every statement that has placeholders.
fn change(r: &RequestArgs) -> Result<Change, ExitCode> {
    let mut change = Change::new(r.reason.clone().unwrap_or_default())
        .db(&r.db)
        .user(&r.user);
    if let Some(dbname) = &r.dbname {
        change = change.dbname(dbname);
    }
    let params: Vec<&dyn ToParam> = r.params.iter().map(|p| p as &dyn ToParam).collect();
    let mut any_placeholders = false;
    let mut count = 0;
    for command in &r.commands {
        for statement in script::split(command) {
            any_placeholders |= statement.has_placeholders;
            let with: &[&dyn ToParam] = if statement.has_placeholders {
                &params
            } else {
                &[]
            };
            change = change.statement(statement.sql, with);
            count += 1;
        }
    }
    if count == 0 {
        eprintln!("iam-pg: error: the request has no statement (-c is empty)");
        return Err(ExitCode::from(EXIT_USAGE));
    }
    if !params.is_empty() && !any_placeholders {
        eprintln!("iam-pg: error: -p was given, but no statement has a %s or $n placeholder");
        return Err(ExitCode::from(EXIT_USAGE));
    }
    Ok(change)
}

fn rows(n: u64) -> String {
    if n == 1 {
        "1 row".into()
    } else {
        format!("{n} rows")
    }
}

/// `2026-11-27T21:36:52.874968Z` → `2026-11-27 21:36:52 UTC`.
fn when(time: &str) -> String {
    match time.get(..19) {
        Some(t) => format!("{} UTC", t.replacen('T', " ", 1)),
        None => time.to_owned(),
    }
}

fn print_submitted(out: &mut impl Write, r: &ApprovalRequest) -> io::Result<()> {
    writeln!(out, "request {} {}", r.id, r.state)?;
    writeln!(
        out,
        "waits for another person's approval until {} (iam-pg approve {})",
        when(&r.expires),
        r.id
    )?;
    writeln!(out, "dry run (rolled back):")?;
    for (i, s) in r.statements.iter().enumerate() {
        writeln!(
            out,
            "  {}. {} → {}",
            i + 1,
            escape_line(&one_line(&s.sql)),
            rows(s.dry_run_rows)
        )?;
    }
    Ok(())
}

fn print_request(out: &mut impl Write, r: &ApprovalRequest) -> io::Result<()> {
    writeln!(out, "request    {}", r.id)?;
    match r.state {
        RequestState::Pending => {
            writeln!(out, "state      pending (expires {})", when(&r.expires))?
        }
        state => writeln!(out, "state      {state}")?,
    }
    writeln!(
        out,
        "requester  {}, {}",
        escape_line(&r.requester.to_string()),
        when(&r.submitted)
    )?;
    writeln!(
        out,
        "target     {} as {} (database {})",
        escape_line(&r.db),
        escape_line(&r.db_user),
        escape_line(&r.dbname)
    )?;
    writeln!(out, "reason     {}", escape_line(&r.reason))?;
    writeln!(out, "rule       {}", escape_line(&r.rule))?;
    if let Some(by) = &r.decided_by {
        let verb = match r.state {
            RequestState::Rejected => "rejected",
            RequestState::Cancelled => "cancelled",
            _ => "approved",
        };
        write!(out, "{verb:<10} by {}", escape_line(&by.to_string()))?;
        if let Some(at) = &r.decided_at {
            write!(out, ", {}", when(at))?;
        }
        writeln!(out)?;
    }
    if let Some(comment) = &r.comment {
        writeln!(out, "comment    {}", escape_line(comment))?;
    }
    if let Some(error) = &r.error {
        writeln!(out, "error      {}", escape_line(&error.to_string()))?;
    }
    let n = r.statements.len();
    writeln!(
        out,
        "statements ({n}; control characters shown escaped, a statement's further lines behind |)"
    )?;
    for (i, s) in r.statements.iter().enumerate() {
        print_statement(out, i + 1, &s.sql)?;
        for (k, p) in s.params.iter().enumerate() {
            let shown = match p {
                serde_json::Value::String(text) => format!("'{}'", text.replace('\'', "''")),
                serde_json::Value::Null => "NULL".to_owned(),
                other => other.to_string(),
            };
            writeln!(out, "     ${} = {}", k + 1, escape_line(&shown))?;
        }
        match s.rows {
            Some(n) if n != s.dry_run_rows => writeln!(
                out,
                "     dry run: {}; at approval: {}  <-- DIFFERS",
                rows(s.dry_run_rows),
                rows(n)
            )?,
            Some(n) => writeln!(
                out,
                "     dry run: {}; at approval: {}",
                rows(s.dry_run_rows),
                rows(n)
            )?,
            None => writeln!(out, "     dry run: {}", rows(s.dry_run_rows))?,
        }
        match &s.changes {
            Some(c) => print_changes(out, "changes (dry run, rolled back)", &s.kind, c)?,
            None => writeln!(
                out,
                "     (what it changes is not captured for this statement; only its row count is compared)"
            )?,
        }
        if let Some(c) = &s.changes_at_approval {
            print_changes(
                out,
                "at approval, instead (rolled back)  <-- DIFFERS",
                &s.kind,
                c,
            )?;
        }
    }
    Ok(())
}

/// A statement's changed rows as before → after: the key and every
/// changed column of an `UPDATE`, every column of an inserted (`+`) or
/// deleted (`-`) row; long values and bytea abbreviated (`--json` has them
/// whole).
fn print_changes(out: &mut impl Write, title: &str, kind: &str, c: &Changes) -> io::Result<()> {
    let key = if c.key.is_empty() {
        "no primary key".to_owned()
    } else {
        format!("key {}", c.key.join(", "))
    };
    writeln!(
        out,
        "     {title}: {} in {} ({key})",
        rows(c.count),
        escape_line(&c.table)
    )?;
    for row in &c.rows {
        let line = match (&row.before, &row.after) {
            (Some(before), Some(after)) => {
                let keys: Vec<String> = c
                    .key
                    .iter()
                    .map(|k| format!("{k}={}", cell(after.get(k))))
                    .collect();
                let changed: Vec<String> = after
                    .0
                    .iter()
                    .filter(|(col, v)| before.get(col) != Some(v))
                    .map(|(col, v)| format!("{col}: {} → {}", cell(before.get(col)), cell(Some(v))))
                    .collect();
                let changed = if changed.is_empty() {
                    "(no value changed)".to_owned()
                } else {
                    changed.join("; ")
                };
                format!("~ {}  {changed}", keys.join(" "))
            }
            (None, Some(after)) if kind == "UPDATE" => {
                format!(
                    "~ (no primary key: the row before is not known) {}",
                    columns(after)
                )
            }
            (None, Some(after)) => format!("+ {}", columns(after)),
            (Some(before), None) => format!("- {}", columns(before)),
            (None, None) => "(empty row)".to_owned(),
        };
        writeln!(out, "       {}", escape_line(&line))?;
    }
    if c.not_shown() > 0 {
        writeln!(
            out,
            "       … and {} more (not kept for display; the content check covers every row)",
            rows(c.not_shown())
        )?;
    }
    Ok(())
}

fn columns(row: &RowValues) -> String {
    row.0
        .iter()
        .map(|(col, v)| format!("{col}={}", cell(Some(v))))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A value for a person: NULL, a string as it is, bytea (`\x…`) and long
/// values abbreviated.
fn cell(value: Option<&serde_json::Value>) -> String {
    let text = match value {
        None | Some(serde_json::Value::Null) => return "NULL".to_owned(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    if let Some(hex) = text.strip_prefix("\\x") {
        if hex.len() > 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return format!(
                "\\x{}…{} ({} bytes)",
                &hex[..8],
                &hex[hex.len() - 4..],
                hex.len() / 2
            );
        }
    }
    if text.chars().count() > 40 {
        let head: String = text.chars().take(36).collect();
        return format!("{head}… ({} chars)", text.chars().count());
    }
    text
}

/// Statement `n`: its first line after the number, every further line
/// behind a `|` gutter, so no line of a statement can pass for the start
/// of another, and every control character escaped.
fn print_statement(out: &mut impl Write, n: usize, sql: &str) -> io::Result<()> {
    let text = escape_text(sql);
    let mut lines = text.split('\n');
    writeln!(out, "  {n}. {}", lines.next().unwrap_or_default())?;
    for line in lines {
        writeln!(out, "     | {line}")?;
    }
    Ok(())
}

fn print_list(out: &mut impl Write, requests: &[ApprovalRequest]) -> io::Result<()> {
    if requests.is_empty() {
        return writeln!(out, "(no change requests)");
    }
    writeln!(
        out,
        "{:<16}  {:<9}  {:<24}  {:<24}  {:<23}  REASON",
        "ID", "STATE", "REQUESTER", "TARGET", "SUBMITTED"
    )?;
    for r in requests {
        let requester = r
            .requester
            .user
            .clone()
            .unwrap_or_else(|| r.requester.uid.to_string());
        writeln!(
            out,
            "{:<16}  {:<9}  {:<24}  {:<24}  {:<23}  {}",
            r.id,
            r.state.as_str(),
            cut(&escape_line(&requester), 24),
            cut(&escape_line(&format!("{}@{}", r.db_user, r.db)), 24),
            when(&r.submitted),
            escape_line(&one_line(&r.reason))
        )?;
    }
    Ok(())
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut t: String = text.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<ApprovalArgs, clap::Error> {
        ApprovalArgs::try_parse_from(std::iter::once("iam-pg").chain(args.iter().copied()))
    }

    /// The attack of issue 14: a CR and an erase-line sequence that would
    /// redraw the approver's screen to show an innocent statement.
    #[test]
    fn request_text_cannot_redraw_the_screen() {
        let sql = "UPDATE idm_identity SET version = version + 1 WHERE username = CASE WHEN x \
                   THEN %s ELSE 'admin' END /*\r  1. UPDATE … WHERE username = %s\x1b[K -- ok */\n\
                   \u{202e}2. DELETE";
        let r = ApprovalRequest {
            id: "0123456789abcdef".into(),
            state: RequestState::Pending,
            db: "czechidm".into(),
            dbname: "czechidm".into(),
            db_user: "czechidm".into(),
            requester: iam_pgbroker_proto::Person {
                uid: 1001,
                user: Some("req\x1b]0;x\x07".into()),
            },
            reason: "INC-4711\nstatements\n  1. harmless\u{9b}2J".into(),
            rule: "requests".into(),
            statements: vec![iam_pgbroker_proto::RequestStatement {
                sql: sql.into(),
                params: vec![serde_json::json!("oriha\r\x1b[1A"), serde_json::Value::Null],
                kind: "UPDATE".into(),
                dry_run_rows: 1,
                rows: None,
                changes: None,
                changes_at_approval: None,
            }],
            submitted: "2026-12-06T10:00:00Z".into(),
            expires: "2026-12-07T10:00:00Z".into(),
            decided_by: None,
            decided_at: None,
            comment: Some("ok\x08\x08no".into()),
            error: None,
        };
        for printed in [
            {
                let mut out = Vec::new();
                print_request(&mut out, &r).unwrap();
                out
            },
            {
                let mut out = Vec::new();
                print_list(&mut out, std::slice::from_ref(&r)).unwrap();
                out
            },
            {
                let mut out = Vec::new();
                print_submitted(&mut out, &r).unwrap();
                out
            },
        ] {
            let text = String::from_utf8(printed).unwrap();
            let bad: Vec<char> = text
                .chars()
                .filter(|&c| iam_pgbroker_proto::display::is_unsafe(c) && c != '\n')
                .collect();
            assert!(bad.is_empty(), "{bad:?} in\n{text}");
        }
        let mut out = Vec::new();
        print_request(&mut out, &r).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("statements (1;"), "{text}");
        assert!(text.contains("\\r  1. UPDATE"), "{text}");
        assert!(text.contains("\\x1b[K"), "{text}");
        // The statement's second line is behind the gutter, not a "2.".
        assert!(text.contains("\n     | \\u{202e}2. DELETE\n"), "{text}");
        assert!(
            text.contains("     $1 = 'oriha\\r\\x1b[1A'\n     $2 = NULL\n"),
            "{text}"
        );
        assert!(
            text.contains("reason     INC-4711\\nstatements\\n  1. harmless\\u{9b}2J\n"),
            "{text}"
        );
    }

    #[test]
    fn definition_is_consistent() {
        ApprovalArgs::command().debug_assert();
    }

    #[test]
    fn only_the_words_select_it() {
        for word in COMMANDS {
            assert!(is_approval_command(Some(OsStr::new(word))));
        }
        for other in ["-c", "--write", "requestx", "show"] {
            assert!(!is_approval_command(Some(OsStr::new(other))), "{other}");
        }
        assert!(!is_approval_command(None));
    }

    #[test]
    fn the_documented_forms_parse() {
        let a = parse(&[
            "request",
            "-U",
            "czechidm",
            "--reason",
            "INC-1",
            "-c",
            "UPDATE t SET x = %s",
            "-p",
            "-5",
        ])
        .unwrap();
        let Command::Request(r) = a.command else {
            panic!("not a request")
        };
        assert!(r.show.is_none());
        assert_eq!((r.db.as_str(), r.user.as_str()), ("czechidm", "czechidm"));
        assert_eq!(r.params, ["-5"]);
        assert!(change(&r).is_ok());

        let a = parse(&["request", "show", "3f9c1a0b7d2e4c51", "--json"]).unwrap();
        let Command::Request(r) = a.command else {
            panic!("not a request")
        };
        assert!(
            matches!(r.show, Some(RequestCommand::Show { ref id, ref common }) if id == "3f9c1a0b7d2e4c51" && common.json)
        );

        assert!(matches!(
            parse(&["requests", "--all"]).unwrap().command,
            Command::Requests { all: true, .. }
        ));
        assert!(matches!(
            parse(&["approve", "ab", "--comment", "ok"])
                .unwrap()
                .command,
            Command::Approve { .. }
        ));
        assert!(parse(&["cancel", "ab"]).is_ok());
    }

    #[test]
    fn usage_errors_exit_2() {
        for bad in [
            &["request", "-c", "UPDATE t SET x = 1"][..],
            &["request", "--reason", "x"],
            &["reject", "ab"],
            &["approve"],
            &["request", "--reason", "x", "-c", "SELECT 1", "show", "ab"],
        ] {
            let err = parse(bad).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad:?}");
        }
    }
}
