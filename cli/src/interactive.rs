//! The interactive prompt: what an operator uses instead of
//! `docker exec -it -u postgres czechidm-db psql`.
//!
//! One broker session for the whole prompt. Transactions follow what the
//! broker allows and what psql users expect:
//!
//! - a read session ends every statement's transaction at once (psql's
//!   autocommit), so a prompt left open holds no locks and no snapshot;
//! - a `--write` session opens a transaction with its first statement and
//!   keeps it until the operator types `COMMIT` or `ROLLBACK`, which the
//!   prompt turns into the broker's `commit`/`rollback` (the broker refuses
//!   transaction control in SQL). Leaving with changes pending asks; an
//!   unanswered question rolls back, since nothing may be committed that
//!   was not meant to be.
//!
//! Ctrl-C at the prompt drops the statement being typed. While a statement
//! runs, Ctrl-C ends iam-pg (the protocol has no cancel yet); the broker then
//! rolls back whatever was open.

use crate::args::Args;
use crate::describe::{self, Listing};
use crate::meta::{self, MetaCommand};
use crate::output::Format;
use crate::run::{self, exit_status, Failure, EXIT_DATABASE, EXIT_UNAVAILABLE, EXIT_USAGE};
use crate::script;
use iam_pgconnect::{Connection, Error, ErrorCode};
use rustyline::error::ReadlineError;
use rustyline::DefaultEditor;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// Where the broker's transaction stands, as far as the prompt knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transaction {
    /// None open (or only one the prompt ends itself).
    Idle,
    /// A write session ran statements since the last commit or rollback.
    Open,
    /// A statement failed: PostgreSQL aborted the transaction, and only a
    /// rollback helps.
    Failed,
}

/// Transaction control typed as SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TransactionCommand {
    Begin,
    Commit,
    Rollback,
}

/// `COMMIT`, `END`, `ROLLBACK`, `ABORT` (with `WORK` or `TRANSACTION`),
/// `BEGIN …`, `START TRANSACTION …`: recognised so that they do what a psql
/// user means. `ROLLBACK TO SAVEPOINT`, `COMMIT AND CHAIN` and the like are
/// sent as written (and the broker refuses them).
fn transaction_command(sql: &str) -> Option<TransactionCommand> {
    let mut rest = sql;
    // A comment before the statement stays with it (see script::split).
    loop {
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix("--") {
            rest = r.split_once('\n').map_or("", |(_, r)| r);
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map_or("", |(_, r)| r);
        } else {
            break;
        }
    }
    let words: Vec<String> = rest
        .split_whitespace()
        .map(str::to_ascii_lowercase)
        .collect();
    let (first, tail) = words.split_first()?;
    let plain_tail = tail.len() <= 1 && tail.iter().all(|w| w == "work" || w == "transaction");
    match first.as_str() {
        "commit" | "end" if plain_tail => Some(TransactionCommand::Commit),
        "rollback" | "abort" if plain_tail => Some(TransactionCommand::Rollback),
        "begin" => Some(TransactionCommand::Begin),
        "start" if tail.first().is_some_and(|w| w == "transaction") => {
            Some(TransactionCommand::Begin)
        }
        _ => None,
    }
}

/// The history file: `$IAM_PG_HISTORY`, else `~/.iam_pg_history` (an
/// empty `IAM_PG_HISTORY` keeps no history).
fn history_path() -> Option<PathBuf> {
    match std::env::var_os("IAM_PG_HISTORY") {
        Some(p) if p.is_empty() => None,
        Some(p) => Some(PathBuf::from(p)),
        None => std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| Path::new(&h).join(".iam_pg_history")),
    }
}

fn print_error(err: &Error) {
    // psql's layout, with the broker's code where it is not PostgreSQL's
    // own error: the code is what docs/operations.md is indexed by.
    if err.code() == ErrorCode::Database {
        eprintln!("ERROR:  {err}");
    } else {
        eprintln!("ERROR:  {err} [{}]", err.code());
    }
    if let Some(detail) = err.detail() {
        eprintln!("DETAIL:  {detail}");
    }
    if let Some(hint) = err.hint() {
        eprintln!("HINT:  {hint}");
    }
}

struct Prompt {
    conn: Connection,
    socket: PathBuf,
    write: bool,
    transaction: Transaction,
    format: Format,
    expanded: bool,
    timing: bool,
}

/// Runs the prompt until `\q` or Ctrl-D.
pub fn main(args: &Args) -> ExitCode {
    if !args.params.is_empty() {
        return run::usage(
            clap::error::ErrorKind::ArgumentConflict,
            "-p goes with -c or -f; at the prompt, write values into the statement",
        );
    }
    let config = run::config(args);
    let socket = config.socket_path();
    let conn = match config.connect() {
        Ok(conn) => conn,
        Err(err) => {
            eprintln!("iam-pg: error: {err}");
            return ExitCode::from(exit_status(err.code()));
        }
    };
    let editor_config = rustyline::Config::builder()
        .auto_add_history(false)
        .history_ignore_space(true)
        .build();
    let mut editor = match DefaultEditor::with_config(editor_config) {
        Ok(editor) => editor,
        Err(e) => {
            eprintln!("iam-pg: error: cannot use the terminal: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let history = history_path();
    if let Some(path) = &history {
        match editor.load_history(path) {
            Ok(()) => {}
            Err(ReadlineError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => eprintln!(
                "iam-pg: warning: cannot read the history {}: {e}",
                path.display()
            ),
        }
    }
    let mut prompt = Prompt {
        conn,
        socket,
        write: args.write,
        transaction: Transaction::Idle,
        format: args.format,
        expanded: args.expanded,
        timing: false,
    };
    prompt.banner();
    let status = prompt.run(&mut editor);
    if let Some(path) = &history {
        save_history(&mut editor, path);
    }
    status
}

fn save_history(editor: &mut DefaultEditor, path: &Path) {
    // Statements may hold personal data: the file is the user's alone,
    // as psql's is.
    let saved = editor
        .save_history(path)
        .map_err(|e| e.to_string())
        .and_then(|()| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| e.to_string())
        });
    if let Err(e) = saved {
        eprintln!(
            "iam-pg: warning: cannot write the history {}: {e}",
            path.display()
        );
    }
}

impl Prompt {
    fn banner(&self) {
        let info = self.conn.session_info();
        println!(
            "iam-pg {} through {}. Type \\? for help, \\q to quit.",
            env!("CARGO_PKG_VERSION"),
            info.server
        );
        if self.write {
            println!(
                "READ-WRITE session on {} as {}: changes are kept only when you COMMIT.",
                info.db, info.user
            );
        }
        println!();
    }

    /// `czechidm(postgres)=> `; `czechidm(czechidm)[WRITE]=*> ` in a write
    /// session with changes pending; `-` instead of `=` while a statement
    /// continues, as in psql.
    fn prompt(&self, continuation: bool) -> String {
        let info = self.conn.session_info();
        format!(
            "{}({}){}{}{}> ",
            info.dbname,
            info.user,
            if self.write { "[WRITE]" } else { "" },
            if continuation { '-' } else { '=' },
            match self.transaction {
                Transaction::Idle => "",
                Transaction::Open => "*",
                Transaction::Failed => "!",
            }
        )
    }

    fn run(&mut self, editor: &mut DefaultEditor) -> ExitCode {
        let mut buffer = String::new();
        loop {
            let line = match editor.readline(&self.prompt(!buffer.trim().is_empty())) {
                Ok(line) => line,
                // Ctrl-C: forget the statement being typed.
                Err(ReadlineError::Interrupted) => {
                    buffer.clear();
                    continue;
                }
                // Ctrl-D.
                Err(ReadlineError::Eof) => return self.leave(editor),
                Err(e) => {
                    eprintln!("iam-pg: error: cannot read the terminal: {e}");
                    return self.leave(editor);
                }
            };
            let trimmed = line.trim();
            if trimmed.starts_with('\\') {
                let _ = editor.add_history_entry(trimmed);
                match meta::parse(trimmed) {
                    MetaCommand::Quit => return self.leave(editor),
                    command => {
                        if let Err(status) = self.meta(command) {
                            return status;
                        }
                    }
                }
                continue;
            }
            if buffer.trim().is_empty() && matches!(trimmed, "quit" | "exit") {
                return self.leave(editor);
            }
            if !buffer.is_empty() {
                buffer.push('\n');
            }
            buffer.push_str(&line);
            let Some(end) = script::terminated_len(&buffer) else {
                continue;
            };
            let complete = buffer[..end].to_owned();
            buffer = buffer[end..].trim_start().to_owned();
            let _ = editor.add_history_entry(complete.trim());
            for statement in script::split(&complete) {
                if let Err(status) = self.statement(&statement.sql) {
                    return status;
                }
            }
        }
    }

    /// Runs one statement. `Err` only when the session is gone.
    fn statement(&mut self, sql: &str) -> Result<(), ExitCode> {
        match transaction_command(sql) {
            Some(TransactionCommand::Begin) => {
                println!(
                    "NOTICE:  a transaction starts with the first statement; BEGIN is not needed"
                );
                return Ok(());
            }
            Some(TransactionCommand::Commit) => return self.end_transaction(true),
            Some(TransactionCommand::Rollback) => return self.end_transaction(false),
            None => {}
        }
        let started = Instant::now();
        let result = {
            let stdout = io::stdout();
            let mut out = stdout.lock();
            let result = run::run_statement(
                &mut self.conn,
                sql,
                &[],
                (self.format, self.expanded),
                &mut out,
            );
            let _ = out.flush();
            result
        };
        let elapsed = started.elapsed();
        match result {
            Ok(()) if self.write => self.transaction = Transaction::Open,
            // Autocommit: end the read transaction now.
            Ok(()) => {
                if let Err(err) = self.conn.commit() {
                    print_error(&err);
                    self.after_error(&err)?;
                }
            }
            Err(Failure::Db { err, .. }) => {
                print_error(&err);
                self.after_error(&err)?;
            }
            Err(Failure::Output(e)) => {
                eprintln!("iam-pg: error: cannot write the output: {e}");
            }
        }
        if self.timing {
            println!("Time: {:.3} ms", elapsed.as_secs_f64() * 1000.0);
        }
        Ok(())
    }

    /// What an error leaves behind. `Err` when the broker is gone.
    fn after_error(&mut self, err: &Error) -> Result<(), ExitCode> {
        if err.is_closed() || (err.code() == ErrorCode::Unavailable && self.conn.ping().is_err()) {
            eprintln!(
                "iam-pg: the connection to the broker was lost{}",
                if self.transaction == Transaction::Idle {
                    ""
                } else {
                    "; the open transaction was rolled back"
                }
            );
            return Err(ExitCode::from(EXIT_UNAVAILABLE));
        }
        if !self.write {
            let _ = self.conn.rollback();
        } else if matches!(err.code(), ErrorCode::Database | ErrorCode::ReadOnly) {
            // PostgreSQL aborted the transaction. Other codes (the guard,
            // a bad request) mean nothing reached PostgreSQL.
            self.transaction = Transaction::Failed;
        }
        Ok(())
    }

    /// `COMMIT` / `ROLLBACK` typed at the prompt.
    fn end_transaction(&mut self, commit: bool) -> Result<(), ExitCode> {
        if self.transaction == Transaction::Idle {
            println!("WARNING:  there is no transaction in progress");
        }
        let failed = self.transaction == Transaction::Failed;
        let result = if commit && !failed {
            self.conn.commit().map(|()| "COMMIT")
        } else {
            self.conn.rollback().map(|()| "ROLLBACK")
        };
        match result {
            Ok(tag) => {
                if commit && failed {
                    println!("NOTICE:  the transaction had failed; nothing was committed");
                }
                println!("{tag}");
                self.transaction = Transaction::Idle;
            }
            Err(err) => {
                print_error(&err);
                self.after_error(&err)?;
                // A failed commit has rolled back (docs/protocol.md).
                self.transaction = Transaction::Idle;
            }
        }
        Ok(())
    }

    /// Leaves the prompt: asks about pending changes, then closes.
    fn leave(&mut self, editor: &mut DefaultEditor) -> ExitCode {
        let mut status = ExitCode::SUCCESS;
        match self.transaction {
            Transaction::Idle => {}
            Transaction::Failed => {
                let _ = self.conn.rollback();
                println!("The transaction had failed; it was rolled back.");
            }
            Transaction::Open => loop {
                let answer = editor.readline(
                    "There are changes that are not committed. Commit or roll back? [c/r] ",
                );
                let commit = match answer.as_deref().map(|a| a.trim().to_ascii_lowercase()) {
                    Ok(a) if a == "c" || a == "commit" => true,
                    Ok(a) if a == "r" || a == "rollback" => false,
                    Ok(_) => continue,
                    // Ctrl-C, Ctrl-D or a broken terminal: nothing is
                    // committed that was not asked for.
                    Err(_) => false,
                };
                let result = if commit {
                    self.conn.commit().map(|()| "COMMIT")
                } else {
                    self.conn.rollback().map(|()| "ROLLBACK")
                };
                match result {
                    Ok(tag) => println!("{tag}"),
                    Err(err) => {
                        print_error(&err);
                        status = ExitCode::from(EXIT_DATABASE);
                    }
                }
                break;
            },
        }
        // A no-op after the answer above: the broker rolls back anything
        // still open when the session closes.
        let _ = self.conn.rollback();
        status
    }

    /// Runs a backslash command other than `\q`.
    fn meta(&mut self, command: MetaCommand) -> Result<(), ExitCode> {
        let on_off = |on: bool| if on { "on" } else { "off" };
        match command {
            MetaCommand::Quit => {}
            MetaCommand::Expanded(on) => {
                self.expanded = on.unwrap_or(!self.expanded);
                println!("Expanded display is {}.", on_off(self.expanded));
            }
            MetaCommand::Timing(on) => {
                self.timing = on.unwrap_or(!self.timing);
                println!("Timing is {}.", on_off(self.timing));
            }
            MetaCommand::Help => print!("{}", meta::HELP),
            MetaCommand::ConnInfo => print!("{}", self.conninfo()),
            MetaCommand::ListRelations(pattern) => {
                self.catalog(|conn| describe::list(conn, Listing::Relations, pattern.as_deref()))?
            }
            MetaCommand::ListTables(pattern) => {
                self.catalog(|conn| describe::list(conn, Listing::Tables, pattern.as_deref()))?
            }
            MetaCommand::Describe(name) => self.catalog(|conn| describe::describe(conn, &name))?,
            MetaCommand::Invalid(message) => eprintln!("{message}"),
        }
        let _ = io::stdout().flush();
        Ok(())
    }

    /// Runs a catalog look-up. One that starts a transaction ends it again:
    /// `\d` must not make `\q` ask about a commit, nor hold locks.
    fn catalog(
        &mut self,
        look_up: impl FnOnce(&mut Connection) -> Result<String, Error>,
    ) -> Result<(), ExitCode> {
        let was_idle = self.transaction == Transaction::Idle;
        match look_up(&mut self.conn) {
            Ok(text) => print!("{text}"),
            Err(err) => {
                print_error(&err);
                self.after_error(&err)?;
            }
        }
        if was_idle {
            let _ = self.conn.rollback();
            self.transaction = Transaction::Idle;
        }
        Ok(())
    }

    /// `\conninfo`: the session as the broker opened it, and who the broker
    /// believes this process is (read from the kernel, not from anything
    /// iam-pg said).
    fn conninfo(&self) -> String {
        let info = self.conn.session_info();
        let id = &info.identity;
        let mode = if info.readonly {
            "read-only"
        } else {
            "read-write"
        };
        let user = id.user.as_deref().unwrap_or("?");
        format!(
            "You are connected to database \"{dbname}\" (instance {db}) as database user \"{dbuser}\", \
             {mode},\n\
             through {server} at \"{socket}\".\n\
             Granted by rule \"{rule}\"; session {session} (the audit and PostgreSQL's \
             application_name name it).\n\
             The broker sees you as uid {uid} ({user}), gid {gid}, groups {groups}; pid {pid}.\n",
            dbname = info.dbname,
            db = info.db,
            dbuser = info.user,
            server = info.server,
            socket = self.socket.display(),
            rule = info.rule,
            session = info.session,
            uid = id.uid,
            gid = id.gid,
            groups = id.groups.join(", "),
            pid = id.pid,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_transaction_control() {
        use TransactionCommand::*;
        for (sql, expected) in [
            ("COMMIT", Some(Commit)),
            ("commit work", Some(Commit)),
            ("END TRANSACTION", Some(Commit)),
            ("-- done\nCOMMIT", Some(Commit)),
            ("/* x */ rollback", Some(Rollback)),
            ("ABORT", Some(Rollback)),
            ("ROLLBACK TO SAVEPOINT a", None),
            ("COMMIT AND CHAIN", None),
            ("BEGIN", Some(Begin)),
            ("begin isolation level serializable", Some(Begin)),
            ("START TRANSACTION READ WRITE", Some(Begin)),
            ("START", None),
            ("SELECT 'commit'", None),
            ("UPDATE t SET commit = 1", None),
        ] {
            assert_eq!(transaction_command(sql), expected, "{sql}");
        }
    }

    #[test]
    fn history_file_place() {
        // One test for both, as the environment is process-wide.
        std::env::set_var("IAM_PG_HISTORY", "/tmp/h");
        assert_eq!(history_path(), Some(PathBuf::from("/tmp/h")));
        std::env::set_var("IAM_PG_HISTORY", "");
        assert_eq!(history_path(), None);
        std::env::remove_var("IAM_PG_HISTORY");
        std::env::set_var("HOME", "/home/op");
        assert_eq!(
            history_path(),
            Some(PathBuf::from("/home/op/.iam_pg_history"))
        );
    }
}
