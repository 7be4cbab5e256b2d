//! The interactive prompt: what an operator uses instead of
//! `docker exec -it -u postgres czechidm-db psql`.
//!
//! One broker session for the whole prompt, driven line by line through
//! the same psql engine as `-c` and `-f` (`crate::psql`): variables,
//! `\if`, `\set`, `\pset`, `\g`, `\copy`, `\watch`, describe commands and
//! the broker's transaction control all behave as in a script. What only a
//! terminal has is here: line editing and history, Tab completion, `\e`,
//! `\h`, the question about pending changes on `\q`, and Ctrl-C.
//!
//! Transactions: a read session ends every statement's transaction at once
//! (psql's autocommit), so a prompt left open holds no locks and no
//! snapshot; a `--write` session starts with `AUTOCOMMIT` off, so its first
//! statement opens a transaction that waits for `COMMIT` or `ROLLBACK`
//! (`\set AUTOCOMMIT on` gives psql's default). Leaving with changes
//! pending asks; an unanswered question rolls back, since nothing may be
//! committed that was not meant to be.
//!
//! The prompt looks like psql's default (`%/%R%x%# `): the database name,
//! psql's `%R` (`=`, `-` while a statement continues, `'` in a quote, …),
//! `*` while a transaction is open and `!` after it failed, then `>` in a
//! read session and `#` in a write session — psql's `#` marks the
//! superuser, the one who can change things; here it marks the session
//! that can.
//!
//! Ctrl-C while a statement (or a describe command) runs asks the broker
//! to cancel it, from a thread that waits for SIGINT (the signal handler
//! itself only wakes it); the statement ends with PostgreSQL's "canceling
//! statement due to user request" and the session stays usable. Ctrl-C at
//! the prompt drops the statement being typed, as in psql.

use crate::args::Args;
use crate::complete::{self, Catalog};
use crate::meta::{self, MetaCommand};
use crate::psql::{Engine, Flow, TxStatus};
use crate::run::{self, exit_status, EXIT_DATABASE, EXIT_USAGE};
use crate::sql_help;
use iam_pgconnect::{CancelHandle, Error, ErrorCode};
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

type LineEditor = rustyline::Editor<complete::Helper, FileHistory>;

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
    engine: Engine,
    socket: PathBuf,
    write: bool,
    /// The lines of the statement being typed, for the history.
    typed: String,
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
    let engine = match run::start_engine(args, conn, true) {
        Ok(engine) => engine,
        Err(status) => return status,
    };
    let mut prompt = Prompt {
        engine,
        socket,
        write: args.write,
        typed: String::new(),
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
    fn banner(&mut self) {
        let info = self.engine.connection().session_info().clone();
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
    /// `czechidm=*# ` with a transaction open, `czechidm=!# ` after an
    /// error.
    fn prompt(&mut self) -> String {
        let state = self.engine.prompt_char();
        let tx = match self.engine.tx_status() {
            TxStatus::Idle => "",
            TxStatus::Open => "*",
            TxStatus::Failed => "!",
        };
        let dbname = self.engine.connection().session_info().dbname.clone();
        format!("{dbname}{state}{tx}{} ", if self.write { '#' } else { '>' })
    }

    /// Reads the catalog for completion, when it may have changed and no
    /// transaction of the user's is open (a failure there would abort it).
    fn refresh_catalog(&mut self) {
        if !self.catalog_stale || self.engine.tx_status() != TxStatus::Idle {
            return;
        }
        self.catalog_stale = false;
        let conn = self.engine.connection();
        let loaded = {
            let _running = Running::new(&self.running);
            Catalog::load(conn)
        };
        let _ = conn.rollback();
        // Without a catalog, Tab still completes keywords and commands.
        if let Ok(catalog) = loaded {
            self.completion.borrow_mut().catalog = catalog;
        }
    }

    fn run(&mut self, editor: &mut LineEditor) -> ExitCode {
        loop {
            self.refresh_catalog();
            self.completion.borrow_mut().earlier = self.engine.query_buffer().to_owned();
            let line = match editor.readline(&self.prompt()) {
                Ok(line) => line,
                // Ctrl-C: forget the statement being typed.
                Err(ReadlineError::Interrupted) => {
                    self.engine.reset_buffer();
                    self.typed.clear();
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
                // What only the prompt has; everything else is the
                // engine's, as in a script.
                match meta::parse(trimmed) {
                    MetaCommand::Quit => {
                        let _ = editor.add_history_entry(trimmed);
                        return self.leave(editor);
                    }
                    MetaCommand::Edit(file) => {
                        let _ = editor.add_history_entry(trimmed);
                        if let Err(status) = self.edit(file.as_deref()) {
                            return status;
                        }
                        continue;
                    }
                    MetaCommand::SqlHelp(topic) => {
                        let _ = editor.add_history_entry(trimmed);
                        print!("{}", sql_help::help(topic.as_deref()));
                        let _ = io::stdout().flush();
                        continue;
                    }
                    MetaCommand::Help => {
                        let _ = editor.add_history_entry(trimmed);
                        // The prompt's own commands, then the script
                        // engine's (which a script's `\\?` shows alone).
                        let scripting = crate::psql::engine::HELP;
                        let from = scripting.find("Query Buffer").unwrap_or(0);
                        print!("{}\n{}", meta::HELP, &scripting[from..]);
                        let _ = io::stdout().flush();
                        continue;
                    }
                    MetaCommand::ConnInfo => {
                        let _ = editor.add_history_entry(trimmed);
                        print!("{}", self.conninfo());
                        let _ = io::stdout().flush();
                        continue;
                    }
                    _ => {}
                }
            }
            if self.engine.query_buffer().trim().is_empty()
                && matches!(trimmed, "quit" | "exit" | "\\q")
            {
                return self.leave(editor);
            }
            match self.feed(&line) {
                Ok(()) => {}
                Err(status) => return status,
            }
            if self.engine.query_buffer().is_empty() && !self.typed.trim().is_empty() {
                let _ = editor.add_history_entry(self.typed.trim());
                self.typed.clear();
            }
        }
    }

    /// One line to the engine, marked as running for Ctrl-C. `Err` when
    /// the session is gone.
    fn feed(&mut self, line: &str) -> Result<(), ExitCode> {
        if !self.typed.is_empty() {
            self.typed.push('\n');
        }
        self.typed.push_str(line);
        let flow = {
            let _running = Running::new(&self.running);
            self.engine.feed_line(line)
        };
        let _ = io::stdout().flush();
        let trimmed = line.trim_start();
        if trimmed.starts_with("\\d") || may_change_schema(trimmed) {
            self.catalog_stale = true;
        }
        if let Some(code) = self.engine.lost() {
            eprintln!("iam-pg: the connection to the broker was lost");
            return Err(ExitCode::from(exit_status(code)));
        }
        if flow == Flow::Quit {
            // `\q` inside a line the prompt did not see first.
            return Err(ExitCode::SUCCESS);
        }
        Ok(())
    }

    /// Leaves the prompt: asks about pending changes, then closes.
    fn leave(&mut self, editor: &mut LineEditor) -> ExitCode {
        let mut status = ExitCode::SUCCESS;
        match self.engine.tx_status() {
            TxStatus::Idle => {}
            TxStatus::Failed => {
                let _ = self.engine.connection().rollback();
                println!("The transaction had failed; it was rolled back.");
            }
            TxStatus::Open => loop {
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
                let conn = self.engine.connection();
                let result = if commit {
                    conn.commit().map(|()| "COMMIT")
                } else {
                    conn.rollback().map(|()| "ROLLBACK")
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
        let _ = self.engine.connection().rollback();
        status
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
                let initial = if self.engine.query_buffer().trim().is_empty() {
                    self.engine.previous_query().to_owned()
                } else {
                    self.engine.query_buffer().to_owned()
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
                // As psql: the edited text replaces the buffer; shown, and
                // run up to its last `;` as if typed.
                self.engine.reset_buffer();
                self.typed.clear();
                let text = text.trim_end();
                if text.contains(';') {
                    println!("{text}");
                }
                for line in text.lines() {
                    self.feed(line)?;
                }
            }
            Err(e) => eprintln!("iam-pg: error: \\e: {e}"),
        }
        Ok(())
    }

    /// `\conninfo`: the session as the broker opened it, and who the broker
    /// believes this process is (read from the kernel, not from anything
    /// iam-pg said).
    fn conninfo(&mut self) -> String {
        let info = self.engine.connection().session_info().clone();
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
