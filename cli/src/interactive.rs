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
//! The prompt looks like psql's default (`%/%R%x%# `): the database name,
//! `=` (or `-` while a statement continues), `*` while a write session's
//! transaction is open and `!` after it failed, then `>` in a read session
//! and `#` in a write session — psql's `#` marks the superuser, the one
//! who can change things; here it marks the session that can.
//!
//! Ctrl-C while a statement (or a describe command) runs asks the broker
//! to cancel it, from a thread that waits for SIGINT (the signal handler
//! itself only wakes it); the statement ends with PostgreSQL's "canceling
//! statement due to user request" and the session stays usable. Ctrl-C at
//! the prompt drops the line being typed, as in psql.
//!
//! Every complete input — a backslash command, or SQL up to its `;` —
//! goes through [`Prompt::execute_input`].

use crate::args::Args;
use crate::complete::{self, Catalog};
use crate::describe;
use crate::meta::{self, MetaCommand};
use crate::output::Format;
use crate::print::{self, PrintOpt};
use crate::run::{self, exit_status, Failure, EXIT_DATABASE, EXIT_UNAVAILABLE, EXIT_USAGE};
use crate::script;
use crate::sql_help;
use iam_pgconnect::{CancelHandle, Connection, Error, ErrorCode};
use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;
use std::cell::RefCell;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

type LineEditor = rustyline::Editor<complete::Helper, FileHistory>;

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
    /// The statement typed so far (lines without their `;` yet).
    buffer: String,
    /// The last statement sent, for `\e` with an empty buffer.
    last_query: String,
    /// What Tab completes from, shared with the line editor.
    completion: Rc<RefCell<complete::State>>,
    /// The catalog is read again before the next prompt.
    catalog_stale: bool,
    /// Set while a statement runs: Ctrl-C then cancels it.
    running: Arc<AtomicBool>,
}

/// Cancels the session's statement on SIGINT while one runs. The signal
/// handler only wakes this thread (signal-hook's self-pipe); the cancel,
/// which opens a socket to the broker, is done here.
fn start_cancel_thread(handle: CancelHandle, running: Arc<AtomicBool>) {
    let mut signals = match signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT]) {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("iam-pg: warning: Ctrl-C cannot cancel statements: {e}");
            return;
        }
    };
    std::thread::spawn(move || {
        for _ in signals.forever() {
            if !running.load(Ordering::SeqCst) {
                continue;
            }
            // psql's words.
            match handle.cancel() {
                Ok(()) => eprintln!("Cancel request sent"),
                Err(err) => eprintln!("Could not send cancel request: {err}"),
            }
        }
    });
}

/// Marks a statement as running for as long as it lives.
struct Running<'a>(&'a AtomicBool);

impl<'a> Running<'a> {
    fn new(flag: &'a AtomicBool) -> Running<'a> {
        flag.store(true, Ordering::SeqCst);
        Running(flag)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
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
        // As readline: Tab completes what all candidates share, a second
        // Tab lists them.
        .completion_type(rustyline::CompletionType::List)
        .build();
    let mut editor: LineEditor = match rustyline::Editor::with_config(editor_config) {
        Ok(editor) => editor,
        Err(e) => {
            eprintln!("iam-pg: error: cannot use the terminal: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let completion = Rc::new(RefCell::new(complete::State::default()));
    editor.set_helper(Some(complete::Helper {
        state: Rc::clone(&completion),
    }));
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
    let running = Arc::new(AtomicBool::new(false));
    start_cancel_thread(conn.cancel_handle(), Arc::clone(&running));
    let mut prompt = Prompt {
        conn,
        socket,
        write: args.write,
        transaction: Transaction::Idle,
        format: args.format,
        expanded: args.expanded,
        timing: false,
        buffer: String::new(),
        last_query: String::new(),
        completion,
        catalog_stale: true,
        running,
    };
    prompt.banner();
    let status = prompt.run(&mut editor);
    if let Some(path) = &history {
        save_history(&mut editor, path);
    }
    status
}

fn save_history(editor: &mut LineEditor, path: &Path) {
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

/// Statements after which the catalog that completion knows may be out of
/// date.
fn may_change_schema(sql: &str) -> bool {
    let first = sql
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    matches!(
        first.as_str(),
        "create" | "alter" | "drop" | "comment" | "grant" | "revoke" | "set" | "reset"
    )
}

/// A new file only this user can read, holding `text`, for `\e`.
fn temp_file(text: &str) -> io::Result<PathBuf> {
    let dir = std::env::var_os("TMPDIR")
        .filter(|d| !d.is_empty())
        .map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
    for n in 0..100u32 {
        let path = dir.join(format!("iam-pg.edit.{}.{n}.sql", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(mut f) => {
                f.write_all(text.as_bytes())?;
                if !text.is_empty() && !text.ends_with('\n') {
                    f.write_all(b"\n")?;
                }
                return Ok(path);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("no free temporary file name"))
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

    /// psql's default prompt, `%/%R%x%# `: `czechidm=> `, `czechidm-> `
    /// while a statement continues; in a write session `czechidm=# `,
    /// `czechidm=*# ` with changes pending, `czechidm=!# ` after an error.
    fn prompt(&self, continuation: bool) -> String {
        let info = self.conn.session_info();
        format!(
            "{}{}{}{} ",
            info.dbname,
            if continuation { '-' } else { '=' },
            match self.transaction {
                Transaction::Idle => "",
                Transaction::Open => "*",
                Transaction::Failed => "!",
            },
            if self.write { '#' } else { '>' },
        )
    }

    /// Reads the catalog for completion, when it may have changed and no
    /// transaction of the user's is open (a failure there would abort it).
    fn refresh_catalog(&mut self) {
        if !self.catalog_stale || self.transaction != Transaction::Idle {
            return;
        }
        self.catalog_stale = false;
        let loaded = {
            let _running = Running::new(&self.running);
            Catalog::load(&mut self.conn)
        };
        let _ = self.conn.rollback();
        // Without a catalog, Tab still completes keywords and commands.
        if let Ok(catalog) = loaded {
            self.completion.borrow_mut().catalog = catalog;
        }
    }

    fn run(&mut self, editor: &mut LineEditor) -> ExitCode {
        loop {
            self.refresh_catalog();
            self.completion.borrow_mut().earlier = self.buffer.clone();
            let continuation = !self.buffer.trim().is_empty();
            let line = match editor.readline(&self.prompt(continuation)) {
                Ok(line) => line,
                // Ctrl-C: forget the statement being typed.
                Err(ReadlineError::Interrupted) => {
                    self.buffer.clear();
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
                if meta::parse(trimmed) == MetaCommand::Quit {
                    return self.leave(editor);
                }
                if let Err(status) = self.execute_input(trimmed) {
                    return status;
                }
                continue;
            }
            if self.buffer.trim().is_empty() && matches!(trimmed, "quit" | "exit") {
                return self.leave(editor);
            }
            if !self.buffer.is_empty() {
                self.buffer.push('\n');
            }
            self.buffer.push_str(&line);
            if let Err(status) = self.run_complete(editor) {
                return status;
            }
        }
    }

    /// Runs what the buffer holds up to its last complete statement.
    fn run_complete(&mut self, editor: &mut LineEditor) -> Result<(), ExitCode> {
        let Some(end) = script::terminated_len(&self.buffer) else {
            return Ok(());
        };
        let complete = self.buffer[..end].to_owned();
        self.buffer = self.buffer[end..].trim_start().to_owned();
        let _ = editor.add_history_entry(complete.trim());
        self.execute_input(&complete)
    }

    /// Runs one complete input: a backslash command line, or SQL text
    /// ending with `;` (one or more statements). `Err` only when the
    /// session is gone. (The script engine replaces this with its own.)
    fn execute_input(&mut self, text: &str) -> Result<(), ExitCode> {
        let trimmed = text.trim();
        if trimmed.starts_with('\\') {
            return self.meta(meta::parse(trimmed));
        }
        self.last_query = trimmed.to_owned();
        for statement in script::split(text) {
            self.statement(&statement.sql)?;
            if may_change_schema(&statement.sql) {
                self.catalog_stale = true;
            }
        }
        Ok(())
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
            let _running = Running::new(&self.running);
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
    fn leave(&mut self, editor: &mut LineEditor) -> ExitCode {
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
            MetaCommand::SqlHelp(topic) => print!("{}", sql_help::help(topic.as_deref())),
            MetaCommand::ConnInfo => print!("{}", self.conninfo()),
            MetaCommand::Describe { cmd, args } => self.describe(&cmd, &args)?,
            MetaCommand::Edit(file) => self.edit(file.as_deref())?,
            MetaCommand::Invalid(message) => eprintln!("{message}"),
        }
        let _ = io::stdout().flush();
        Ok(())
    }

    /// The `\pset` options describe output is printed with.
    fn print_opt(&self) -> PrintOpt {
        PrintOpt {
            expanded: if self.expanded {
                print::Expanded::On
            } else {
                print::Expanded::Off
            },
            ..PrintOpt::default()
        }
    }

    /// A describe command. One that starts a transaction ends it again:
    /// `\d` must not make `\q` ask about a commit, nor hold locks.
    fn describe(&mut self, cmd: &str, args: &[String]) -> Result<(), ExitCode> {
        let was_idle = self.transaction == Transaction::Idle;
        let opt = self.print_opt();
        let mut out = print::Output::stdout();
        let result = {
            let _running = Running::new(&self.running);
            describe::run(&mut self.conn, cmd, args, &opt, &mut out)
        };
        let _ = out.flush();
        if let Some(Err(err)) = result {
            print_error(&err);
            self.after_error(&err)?;
        }
        if was_idle {
            let _ = self.conn.rollback();
            self.transaction = Transaction::Idle;
        }
        // What was described may have changed since the catalog was read.
        self.catalog_stale = true;
        Ok(())
    }

    /// `\e [FILE]`: the buffer (or the last statement, or FILE) in the
    /// user's editor; what comes back is run when it ends with `;`, else
    /// it becomes the buffer to go on typing, as in psql.
    fn edit(&mut self, file: Option<&str>) -> Result<(), ExitCode> {
        let editor = ["PSQL_EDITOR", "EDITOR", "VISUAL"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|e| !e.trim().is_empty()))
            .unwrap_or_else(|| "vi".to_owned());
        let (path, temporary) = match file {
            Some(f) => (PathBuf::from(f), false),
            None => {
                let initial = if self.buffer.trim().is_empty() {
                    self.last_query.clone()
                } else {
                    self.buffer.clone()
                };
                match temp_file(&initial) {
                    Ok(path) => (path, true),
                    Err(e) => {
                        eprintln!("iam-pg: error: could not open temporary file: {e}");
                        return Ok(());
                    }
                }
            }
        };
        // As psql: the editor setting is a shell command (it may carry
        // options), the file its last argument.
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("exec {editor} \"$1\""))
            .arg("iam-pg")
            .arg(&path)
            .status();
        let text = match status {
            Ok(s) if s.success() => std::fs::read_to_string(&path),
            Ok(s) => Err(io::Error::other(format!("the editor ended with {s}"))),
            Err(e) => Err(e),
        };
        if temporary {
            let _ = std::fs::remove_file(&path);
        }
        match text {
            Ok(text) => {
                self.buffer = text.trim_end().to_owned();
                if script::terminated_len(&self.buffer).is_some() {
                    // Shown as psql shows an edited buffer it runs.
                    println!("{}", self.buffer);
                    let Some(end) = script::terminated_len(&self.buffer) else {
                        return Ok(());
                    };
                    let complete = self.buffer[..end].to_owned();
                    self.buffer = self.buffer[end..].trim_start().to_owned();
                    return self.execute_input(&complete);
                }
            }
            Err(e) => eprintln!("iam-pg: error: \\e: {e}"),
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
