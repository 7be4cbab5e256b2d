//! The script engine: psql's main loop (`mainloop.c`) over the broker.
//!
//! Lines go in one at a time ([`Engine::feed_line`]), from `-f`, standard
//! input, `\i`, or a prompt that drives the engine. The lexer copies SQL
//! into the query buffer; a `;` sends it, a backslash runs a meta-command.
//! Statements run through the broker; transaction control typed as SQL
//! (`BEGIN`, `COMMIT`, `SAVEPOINT`, …) is mapped onto the broker's own
//! (see [`super::txn`]), with psql's `AUTOCOMMIT`: outside an explicit
//! transaction each statement commits on its own.
//!
//! Messages carry psql's locus: `iam-pg:FILE:LINE: ` when the input is a
//! file (`-f`, `\i`), nothing for standard input and `-c`.

use super::lexer::{is_blank, Lexer, Scan};
use super::report;
use super::slash::SlashScanner;
use super::txn::{classify, TxCommand};
use super::vars::{parse_bool, Echo, Vars};
use crate::output::{self, ResultPrinter};
use crate::print::{Output, PrintOpt, Table};
use iam_pgbroker_proto::{ErrorCode, ErrorInfo};
use iam_pgconnect::{Connection, Error, ToParam};
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The program name in messages, where psql writes `psql`.
pub const PROGRAM: &str = "iam-pg";

/// What the caller should do after a line or a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on reading.
    Continue,
    /// `\q`: stop reading this source.
    Quit,
    /// An error with `ON_ERROR_STOP` (or a lost connection): stop
    /// everything; see [`Engine::lost`].
    Stop,
}

/// The transaction as psql's prompt shows it (`%x`: nothing, `*`, `!`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxStatus {
    Idle,
    Open,
    Failed,
}

/// How the engine starts.
pub struct Options {
    /// psql's output options (`-A`, `-t`, `\pset`, …).
    pub print: PrintOpt,
    /// `-p` values, bound to every statement with `%s` or `$n`.
    pub params: Vec<String>,
    /// Lines come from a person at a terminal (errors never stop, no
    /// locus).
    pub interactive: bool,
    /// iam-pg's own `--format json` / `--format csv` output instead of
    /// psql's formats (kept for the scripts that use them).
    pub legacy: Option<output::Format>,
    /// The broker's socket, for `\conninfo`.
    pub socket: PathBuf,
}

/// psql's `\if` states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cond {
    /// In a true branch.
    True,
    /// In a false branch; a later `\elif` or `\else` may still run.
    False,
    /// Skipping: a branch already ran, or the enclosing one is skipped.
    Ignored,
    /// After `\else`, running.
    ElseTrue,
    /// After `\else`, skipping.
    ElseFalse,
}

/// One input source: its lexer, query buffer and `\if` stack, as psql
/// keeps them per `MainLoop`.
struct Frame {
    /// For messages: the file as named, `None` for stdin, `-c`, a prompt.
    name: Option<String>,
    line: u64,
    /// Where `\ir` looks.
    dir: PathBuf,
    lexer: Lexer,
    buf: String,
    prev: String,
    conds: Vec<Cond>,
    /// `\copy … from stdin`: the statement, and the data lines so far,
    /// until a line `\.`.
    copy_in: Option<(String, Vec<u8>)>,
}

impl Frame {
    fn new(name: Option<String>, dir: PathBuf) -> Frame {
        Frame {
            name,
            line: 0,
            dir,
            lexer: Lexer::new(),
            buf: String::new(),
            prev: String::new(),
            conds: Vec::new(),
            copy_in: None,
        }
    }

    fn active(&self) -> bool {
        self.conds
            .iter()
            .all(|c| matches!(c, Cond::True | Cond::ElseTrue))
    }
}

/// Where a query's result goes, and how (`\g`, `\gx`, `\gset`).
#[derive(Default)]
struct Send {
    dest: Option<Output>,
    expanded: bool,
    gset: Option<String>,
}

/// What a meta-command asks of the loop.
enum Slash {
    Ok,
    Error,
    Send(Send),
    Quit,
}

/// The script engine; see the module documentation.
pub struct Engine {
    conn: Connection,
    vars: Vars,
    opt: PrintOpt,
    out: Output,
    frame: Frame,
    txn: TxStatus,
    /// In a `-c` with several statements: one implicit transaction.
    implicit: bool,
    timing: bool,
    params: Vec<String>,
    legacy: Option<output::Format>,
    interactive: bool,
    /// A read-only script leaves the broker's transaction open between
    /// statements instead of committing each (nothing to commit, and the
    /// audit keeps one record per statement); an error still rolls back.
    defer_read_commit: bool,
    socket: PathBuf,
    locus: Arc<Mutex<String>>,
    lost: Option<ErrorCode>,
    last_error: Option<ErrorInfo>,
}

fn local_error(sqlstate: &str, message: impl Into<String>) -> ErrorInfo {
    let mut info = ErrorInfo::new(ErrorCode::Database, message);
    info.sqlstate = Some(sqlstate.to_owned());
    info.severity = Some("ERROR".to_owned());
    info
}

fn has_placeholders(sql: &str) -> bool {
    crate::script::split(sql).iter().any(|s| s.has_placeholders)
}

impl Engine {
    /// An engine over an open session.
    pub fn new(mut conn: Connection, options: Options) -> Engine {
        let locus = Arc::new(Mutex::new(String::new()));
        let notice_locus = Arc::clone(&locus);
        conn.set_notice_handler(move |info: &ErrorInfo| {
            let prefix = notice_locus.lock().map(|l| l.clone()).unwrap_or_default();
            eprint!(
                "{prefix}{}",
                report::format(
                    info,
                    None,
                    super::vars::Verbosity::Default,
                    super::vars::ShowContext::Errors
                )
            );
        });
        let mut vars = Vars::new();
        let info = conn.session_info().clone();
        vars.set_internal("DBNAME", info.dbname.clone());
        vars.set_internal("USER", info.user.clone());
        vars.set_internal("HOST", options.socket.display().to_string());
        let dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        Engine {
            conn,
            vars,
            opt: options.print,
            out: Output::stdout(),
            frame: Frame::new(None, dir),
            txn: TxStatus::Idle,
            implicit: false,
            timing: false,
            params: options.params,
            legacy: options.legacy,
            interactive: options.interactive,
            defer_read_commit: info.readonly && !options.interactive,
            socket: options.socket,
            locus,
            lost: None,
            last_error: None,
        }
    }

    /// Sends results to `out` instead of standard output (`-o FILE`).
    pub fn set_output(&mut self, out: Output) {
        self.out = out;
    }

    /// The query typed so far and not yet sent (the prompt's `\e`).
    pub fn query_buffer(&self) -> &str {
        &self.frame.buf
    }

    /// The last query sent (`\e` with an empty buffer, as psql).
    pub fn previous_query(&self) -> &str {
        &self.frame.prev
    }

    /// Forgets the query being typed (Ctrl-C at the prompt, `\e`).
    pub fn reset_buffer(&mut self) {
        self.frame.buf.clear();
        self.frame.lexer.reset();
    }

    /// The variables (`-v`, `\set`).
    pub fn vars_mut(&mut self) -> &mut Vars {
        &mut self.vars
    }

    /// The variables.
    pub fn vars(&self) -> &Vars {
        &self.vars
    }

    /// The transaction, for the prompt's `*` / `!`.
    pub fn tx_status(&self) -> TxStatus {
        self.txn
    }

    /// psql's `%R` for the prompt: `=`, `-`, `'`, `"`, `$`, `*`, `(`, and
    /// `@` inside a skipped `\if` branch.
    pub fn prompt_char(&self) -> char {
        if !self.frame.active() {
            return '@';
        }
        self.frame.lexer.prompt_char(self.frame.buf.is_empty())
    }

    /// The session, for callers that need it between lines.
    pub fn connection(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// The code of the error that ended the session, if one did.
    pub fn lost(&self) -> Option<ErrorCode> {
        self.lost
    }

    fn settings(&self) -> super::vars::Settings {
        self.vars.settings()
    }

    /// The prefix of messages: `iam-pg:FILE:LINE: ` for file input.
    fn prefix(&self) -> String {
        match &self.frame.name {
            Some(name) => format!("{PROGRAM}:{name}:{}: ", self.frame.line),
            None => String::new(),
        }
    }

    /// A client-side error (psql's `pg_log_error`).
    fn client_error(&self, message: &str) {
        match &self.frame.name {
            Some(_) => eprintln!("{}error: {message}", self.prefix()),
            None => eprintln!("{message}"),
        }
    }

    fn client_warning(&self, message: &str) {
        match &self.frame.name {
            Some(_) => eprintln!("{}warning: {message}", self.prefix()),
            None => eprintln!("{message}"),
        }
    }

    fn notice(&self, severity: &str, message: &str) {
        let mut info = ErrorInfo::new(ErrorCode::Database, message);
        info.severity = Some(severity.to_owned());
        eprint!(
            "{}{}",
            self.prefix(),
            report::format(
                &info,
                None,
                self.settings().verbosity,
                self.settings().show_context
            )
        );
    }

    /// Prints a command tag (`BEGIN`, `UPDATE 3`) unless `QUIET`.
    fn tag(&mut self, tag: &str) {
        if !self.settings().quiet {
            let _ = writeln!(self.out, "{tag}");
        }
    }

    // ---- input ------------------------------------------------------

    /// Runs a whole source (a file, standard input) in a frame of its
    /// own, as psql's `MainLoop`: `name` is the file as named for
    /// messages (`None` for standard input). Returns `Stop` when an error
    /// stopped it (`ON_ERROR_STOP`), else `Continue` (also after `\q`,
    /// which ends only this source).
    pub fn run_source(&mut self, reader: &mut dyn BufRead, name: Option<&str>, dir: &Path) -> Flow {
        let frame = Frame::new(name.map(str::to_owned), dir.to_path_buf());
        let saved = std::mem::replace(&mut self.frame, frame);
        let flow = self.run_lines(reader);
        self.frame = saved;
        self.update_locus();
        flow
    }

    fn run_lines(&mut self, reader: &mut dyn BufRead) -> Flow {
        let mut raw = Vec::new();
        loop {
            raw.clear();
            match reader.read_until(b'\n', &mut raw) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    self.client_error(&format!("could not read input: {e}"));
                    return Flow::Stop;
                }
            }
            if raw.last() == Some(&b'\n') {
                raw.pop();
            }
            let line = match std::str::from_utf8(&raw) {
                Ok(l) => l.to_owned(),
                Err(e) => {
                    self.frame.line += 1;
                    self.client_error(&format!(
                        "invalid byte sequence for encoding \"UTF8\" (at byte {})",
                        e.valid_up_to()
                    ));
                    return Flow::Stop;
                }
            };
            match self.feed_line(&line) {
                Flow::Continue => {}
                Flow::Quit => return Flow::Continue,
                Flow::Stop => return Flow::Stop,
            }
        }
        self.finish()
    }

    /// The end of a source: an unterminated statement is sent (except at
    /// a prompt), an unclosed `\if` reported.
    pub fn finish(&mut self) -> Flow {
        let stop = self.settings().on_error_stop && !self.interactive;
        if self.frame.copy_in.is_some() {
            // The data ended without `\.`: psql sends what it has.
            if !self.end_copy_in() && stop {
                return Flow::Stop;
            }
        }
        if !self.interactive && !self.frame.buf.is_empty() && self.frame.active() {
            let sql = std::mem::take(&mut self.frame.buf);
            let ok = self.send(&sql, (&sql, 0), Send::default());
            self.frame.prev = sql;
            if self.lost.is_some() || (!ok && stop) {
                return Flow::Stop;
            }
        }
        if !self.frame.conds.is_empty() {
            self.client_error("reached EOF without finding closing \\endif(s)");
            if stop {
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    fn update_locus(&self) {
        if let Ok(mut l) = self.locus.lock() {
            *l = self.prefix();
        }
    }

    /// Processes one line of input (without its newline), as psql's main
    /// loop does.
    pub fn feed_line(&mut self, line: &str) -> Flow {
        self.frame.line += 1;
        self.update_locus();
        let line = if self.frame.line == 1 {
            line.strip_prefix('\u{feff}').unwrap_or(line)
        } else {
            line
        };
        if self.frame.copy_in.is_some() {
            return self.copy_in_line(line);
        }
        if line.is_empty() && !self.frame.lexer.in_quote() {
            return Flow::Continue;
        }
        if self.settings().echo == Echo::All && !self.interactive {
            println!("{line}");
        }
        let _ = io::stdout().flush();
        let added_nl = if self.frame.buf.is_empty() {
            None
        } else {
            self.frame.buf.push('\n');
            Some(self.frame.buf.len())
        };
        let die_on_error = self.settings().on_error_stop && !self.interactive;
        let mut added_nl = added_nl;
        let mut pos = 0;
        let mut success = true;
        while success || !die_on_error {
            let active = self.frame.active();
            let vars = active.then_some(&self.vars);
            let scan = self
                .frame
                .lexer
                .scan(line, &mut pos, &mut self.frame.buf, vars);
            match scan {
                Scan::Semicolon => {
                    let sql = std::mem::take(&mut self.frame.buf);
                    if active {
                        success = self.send(&sql, (&sql, 0), Send::default());
                    } else if self.interactive {
                        self.client_error(
                            "query ignored; use \\endif or Ctrl-C to exit current \\if block",
                        );
                    }
                    self.frame.prev = sql;
                    added_nl = None;
                }
                Scan::Backslash => {
                    // A line with only a meta-command leaves the buffer
                    // as it was.
                    if added_nl == Some(self.frame.buf.len()) {
                        self.frame.buf.pop();
                    }
                    added_nl = None;
                    match self.slash(line, &mut pos) {
                        Slash::Ok => {}
                        Slash::Error => success = false,
                        Slash::Quit => return Flow::Quit,
                        Slash::Send(send) => {
                            let sql = if self.frame.buf.is_empty() {
                                self.frame.prev.clone()
                            } else {
                                std::mem::take(&mut self.frame.buf)
                            };
                            success = self.send(&sql, (&sql, 0), send);
                            self.frame.prev = sql;
                            self.frame.lexer.reset();
                        }
                    }
                }
                Scan::Eol => break,
            }
            if self.lost.is_some() {
                return Flow::Stop;
            }
            if self.frame.copy_in.is_some() {
                // The rest of a `\copy … from stdin` line is data; psql
                // ignores it too.
                break;
            }
        }
        if !success && die_on_error {
            return Flow::Stop;
        }
        Flow::Continue
    }

    // ---- -c ---------------------------------------------------------

    /// `-c SQL`: psql sends the string as one query, so its statements
    /// run in one implicit transaction (unless it has its own `BEGIN` /
    /// `COMMIT`), every result is printed, the first error stops the rest,
    /// and variables are not substituted. Returns success.
    pub fn run_command(&mut self, text: &str) -> bool {
        if self.settings().echo == Echo::All {
            println!("{text}");
        }
        self.frame = Frame::new(None, self.frame.dir.clone());
        self.update_locus();
        // Statements, each with its byte offset in `text`.
        let mut stmts: Vec<(String, usize)> = Vec::new();
        let mut lexer = Lexer::new();
        let mut buf = String::new();
        let mut pos = 0;
        loop {
            match lexer.scan(text, &mut pos, &mut buf, None) {
                Scan::Semicolon => {
                    let start = pos.saturating_sub(buf.len());
                    if !is_blank(&buf) {
                        stmts.push((std::mem::take(&mut buf), start));
                    }
                    buf.clear();
                }
                // Not a meta-command inside SQL: PostgreSQL gets it.
                Scan::Backslash => buf.push('\\'),
                Scan::Eol => break,
            }
        }
        if !is_blank(&buf) {
            let start = text.len().saturating_sub(buf.len());
            stmts.push((buf, start));
        }
        if stmts.is_empty() {
            return true;
        }
        if self.settings().echo == Echo::Queries {
            println!("{text}");
        }
        let implicit = stmts.len() > 1 && self.txn == TxStatus::Idle;
        if implicit {
            self.implicit = true;
        }
        let mut ok = true;
        for (sql, start) in &stmts {
            let offset = text[..(*start).min(text.len())].chars().count();
            ok = self.send_quiet_echo(sql, (text, offset));
            if !ok || self.lost.is_some() {
                break;
            }
        }
        if self.implicit {
            self.implicit = false;
            let end = if ok && self.txn == TxStatus::Open {
                self.conn.commit()
            } else {
                self.conn.rollback()
            };
            self.txn = TxStatus::Idle;
            if let Err(err) = end {
                self.report(&err, None, None);
                ok = false;
            }
        }
        ok
    }

    /// `-c '\command …'`: one line of meta-commands. Returns success.
    pub fn run_slash_command(&mut self, text: &str) -> bool {
        self.frame = Frame::new(None, self.frame.dir.clone());
        self.update_locus();
        let mut pos = 1;
        let ok = match self.slash(text, &mut pos) {
            Slash::Ok | Slash::Quit => true,
            Slash::Error => false,
            Slash::Send(send) => {
                let sql = self.frame.prev.clone();
                self.send(&sql, (&sql, 0), send)
            }
        };
        if self.frame.copy_in.is_some() {
            // `-c '\copy t from stdin'` reads standard input.
            let mut stdin = io::stdin().lock();
            let flow = self.run_lines_in_frame(&mut stdin);
            return ok && flow == Flow::Continue;
        }
        ok
    }

    fn run_lines_in_frame(&mut self, reader: &mut dyn BufRead) -> Flow {
        let mut raw = Vec::new();
        while self.frame.copy_in.is_some() {
            raw.clear();
            match reader.read_until(b'\n', &mut raw) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if raw.last() == Some(&b'\n') {
                raw.pop();
            }
            let line = String::from_utf8_lossy(&raw).into_owned();
            self.copy_in_line(&line);
        }
        if self.frame.copy_in.is_some() && !self.end_copy_in() {
            return Flow::Stop;
        }
        Flow::Continue
    }

    // ---- -1 and the end ---------------------------------------------

    /// `-1`: everything that follows runs in one transaction.
    pub fn begin_single(&mut self) {
        self.txn = TxStatus::Open;
    }

    /// The end of `-1`: commit when everything succeeded (and the
    /// transaction is not aborted), else roll back; silent like psql.
    /// Returns false when the commit failed.
    pub fn end_single(&mut self, success: bool) -> bool {
        let result = if success && self.txn == TxStatus::Open {
            self.conn.commit()
        } else {
            self.conn.rollback()
        };
        self.txn = TxStatus::Idle;
        match result {
            Ok(()) => true,
            Err(err) => {
                self.report(&err, None, None);
                false
            }
        }
    }

    /// Ends the session: an open transaction is rolled back (psql's
    /// server does the same when psql exits), the output flushed.
    pub fn close(mut self) -> io::Result<()> {
        if self.txn != TxStatus::Idle {
            let _ = self.conn.rollback();
        }
        let flushed = self.out.flush();
        let _ = self.conn.close();
        flushed
    }

    // ---- statements -------------------------------------------------

    /// `send` with the `-e` echo done by `run_command` for the whole
    /// string.
    fn send_quiet_echo(&mut self, sql: &str, shown: (&str, usize)) -> bool {
        let echo = self.settings().echo;
        if echo == Echo::Queries {
            let _ = self.vars.set("ECHO", "none");
            let ok = self.send(sql, shown, Send::default());
            let _ = self.vars.set("ECHO", "queries");
            ok
        } else {
            self.send(sql, shown, Send::default())
        }
    }

    /// Sends one query buffer: transaction control is done here, the rest
    /// goes to the broker. `shown` is the text an error position counts
    /// in, with the statement's character offset in it.
    fn send(&mut self, sql: &str, shown: (&str, usize), send: Send) -> bool {
        if is_blank(sql) {
            return true;
        }
        if self.settings().echo == Echo::Queries {
            println!("{sql}");
            let _ = io::stdout().flush();
        }
        self.update_locus();
        let ok = match classify(sql) {
            Some(cmd) => self.transaction(cmd, sql),
            None => self.statement(sql, shown, send),
        };
        if !ok && self.settings().echo == Echo::Errors {
            eprintln!("{}STATEMENT:  {sql}", self.prefix());
        }
        let _ = self.out.flush();
        ok
    }

    fn succeeded(&mut self, rows: u64) {
        self.vars.set_internal("ERROR", "false");
        self.vars.set_internal("SQLSTATE", "00000");
        self.vars.set_internal("ROW_COUNT", rows.to_string());
    }

    /// Prints an error as psql does and records it in the variables.
    fn report_info(&mut self, info: &ErrorInfo, shown: Option<(&str, usize)>, sql: Option<&str>) {
        let s = self.settings();
        eprint!(
            "{}{}",
            self.prefix(),
            report::format(info, shown, s.verbosity, s.show_context)
        );
        // psql's ECHO=errors line comes from `send`, after any failure.
        let _ = sql;
        let state = info.sqlstate.clone().unwrap_or_default();
        self.vars.set_internal("ERROR", "true");
        self.vars.set_internal("SQLSTATE", state.clone());
        self.vars.set_internal("ROW_COUNT", "0");
        self.vars
            .set_internal("LAST_ERROR_MESSAGE", info.message.clone());
        self.vars.set_internal("LAST_ERROR_SQLSTATE", state);
        self.last_error = Some(info.clone());
    }

    fn report(&mut self, err: &Error, shown: Option<(&str, usize)>, sql: Option<&str>) {
        if err.is_closed() || err.is_unavailable() {
            self.lost = Some(err.code());
        }
        self.report_info(err.info(), shown, sql);
    }

    /// A statement failed: in a transaction it is now aborted; outside
    /// one, the broker's transaction is rolled back.
    fn after_failure(&mut self, autocommitted: bool) {
        if autocommitted {
            if let Err(err) = self.conn.rollback() {
                if err.is_closed() {
                    self.lost = Some(err.code());
                }
            }
            self.txn = TxStatus::Idle;
        } else {
            self.txn = TxStatus::Failed;
        }
    }

    fn aborted_error(&mut self, sql: &str) -> bool {
        let info = local_error(
            "25P02",
            "current transaction is aborted, commands ignored until end of transaction block",
        );
        self.report_info(&info, None, Some(sql));
        false
    }

    fn statement(&mut self, sql: &str, shown: (&str, usize), send: Send) -> bool {
        if self.txn == TxStatus::Failed {
            return self.aborted_error(sql);
        }
        let autocommit = self.txn == TxStatus::Idle && self.settings().autocommit && !self.implicit;
        if self.txn == TxStatus::Idle && !autocommit {
            self.txn = TxStatus::Open;
        }
        let started = Instant::now();
        let result = self.query(sql, send);
        let elapsed = started.elapsed();
        let ok = match result {
            Ok(ok) => {
                if autocommit && !self.defer_read_commit {
                    if let Err(err) = self.conn.commit() {
                        self.report(&err, None, Some(sql));
                        self.after_failure(true);
                        return false;
                    }
                }
                ok
            }
            Err(err) => {
                self.report(&err, Some(shown), Some(sql));
                self.after_failure(autocommit);
                false
            }
        };
        if self.timing {
            println!("{}", timing_line(elapsed));
        }
        ok
    }

    /// Runs a query and prints (or `\gset`s) its result. `Ok(false)`:
    /// the query ran but `\gset` or the output failed.
    fn query(&mut self, sql: &str, send: Send) -> Result<bool, Error> {
        let all: Vec<&dyn ToParam> = self.params.iter().map(|p| p as &dyn ToParam).collect();
        let params: &[&dyn ToParam] = if !all.is_empty() && has_placeholders(sql) {
            &all
        } else {
            &[]
        };
        let mut iter = self.conn.query_iter(sql, params)?;
        let columns = iter.columns().to_vec();
        if let (Some(format), None) = (self.legacy, &send.gset) {
            let mut values = Vec::new();
            for row in &mut iter {
                values.push(row?.into_values());
            }
            let command = iter.command().unwrap_or_default().to_owned();
            let count = iter.row_count().unwrap_or_default();
            drop(iter);
            self.succeeded(count);
            let printed = (|| {
                let mut printer = ResultPrinter::begin(format, &mut self.out, &columns)?;
                for v in values {
                    printer.row(v)?;
                }
                printer.finish(&command, count)
            })();
            return Ok(self.output_done(printed));
        }
        let mut rows = Vec::new();
        for row in &mut iter {
            let row = row?;
            rows.push(row.values().iter().map(output::text).collect::<Vec<_>>());
        }
        let command = iter.command().unwrap_or_default().to_owned();
        let count = iter.row_count().unwrap_or_default();
        drop(iter);
        self.succeeded(count);
        if let Some(prefix) = send.gset {
            return Ok(self.gset(&prefix, &columns, rows));
        }
        let mut opt = self.opt.clone();
        if send.expanded {
            opt.expanded = crate::print::Expanded::On;
        }
        let quiet = self.settings().quiet;
        let out: &mut Output = match send.dest {
            Some(mut dest) => {
                let printed = print_result(&mut dest, &opt, &columns, rows, &command, count, quiet)
                    .and_then(|()| dest.flush());
                return Ok(self.output_done(printed));
            }
            None => &mut self.out,
        };
        let printed = print_result(out, &opt, &columns, rows, &command, count, quiet);
        Ok(self.output_done(printed))
    }

    fn output_done(&mut self, printed: io::Result<()>) -> bool {
        match printed {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => true,
            Err(e) => {
                self.client_error(&format!("could not print result table: {e}"));
                false
            }
        }
    }

    fn gset(
        &mut self,
        prefix: &str,
        columns: &[iam_pgconnect::Column],
        rows: Vec<Vec<Option<String>>>,
    ) -> bool {
        // A failed \\gset fails the query: psql's ERROR is true.
        let row = match rows.len() {
            0 => {
                self.client_error("no rows returned for \\gset");
                self.vars.set_internal("ERROR", "true");
                return false;
            }
            1 => &rows[0],
            _ => {
                self.client_error("more than one row returned for \\gset");
                self.vars.set_internal("ERROR", "true");
                return false;
            }
        };
        for (column, value) in columns.iter().zip(row) {
            let name = format!("{prefix}{}", column.name);
            let result = match value {
                Some(v) => self.vars.set(&name, v),
                None => self.vars.unset(&name),
            };
            if let Err(e) = result {
                // psql stops at the first name it cannot set.
                self.client_error(&e);
                self.vars.set_internal("ERROR", "true");
                return false;
            }
        }
        true
    }

    /// Transaction control typed as SQL, onto the broker's.
    fn transaction(&mut self, cmd: TxCommand, sql: &str) -> bool {
        match cmd {
            TxCommand::Begin => {
                if self.implicit {
                    self.implicit = false;
                } else if self.txn != TxStatus::Idle {
                    self.notice("WARNING", "there is already a transaction in progress");
                } else {
                    self.txn = TxStatus::Open;
                }
                self.succeeded(0);
                self.tag("BEGIN");
                true
            }
            TxCommand::Commit | TxCommand::Rollback => {
                let commit = cmd == TxCommand::Commit;
                self.implicit = false;
                if self.txn == TxStatus::Idle {
                    self.notice("WARNING", "there is no transaction in progress");
                    self.succeeded(0);
                    self.tag(if commit { "COMMIT" } else { "ROLLBACK" });
                    return true;
                }
                let aborted = self.txn == TxStatus::Failed;
                self.txn = TxStatus::Idle;
                let result = if commit && !aborted {
                    self.conn.commit()
                } else {
                    self.conn.rollback()
                };
                match result {
                    Ok(()) => {
                        self.succeeded(0);
                        // PostgreSQL answers COMMIT of an aborted
                        // transaction with ROLLBACK.
                        self.tag(if commit && !aborted {
                            "COMMIT"
                        } else {
                            "ROLLBACK"
                        });
                        true
                    }
                    Err(err) => {
                        self.report(&err, None, Some(sql));
                        false
                    }
                }
            }
            TxCommand::Savepoint(name) | TxCommand::Release(name) | TxCommand::RollbackTo(name) => {
                let kind = match classify(sql) {
                    Some(TxCommand::Savepoint(_)) => 0,
                    Some(TxCommand::Release(_)) => 1,
                    _ => 2,
                };
                let what = ["SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT"][kind];
                if self.txn == TxStatus::Idle && !self.implicit {
                    if kind == 0 && !self.settings().autocommit {
                        self.txn = TxStatus::Open;
                    } else {
                        let info = local_error(
                            "25P01",
                            format!("{what} can only be used in transaction blocks"),
                        );
                        self.report_info(&info, None, Some(sql));
                        return false;
                    }
                }
                if self.txn == TxStatus::Failed && kind != 2 {
                    return self.aborted_error(sql);
                }
                let result = match kind {
                    0 => self.conn.savepoint(&name),
                    1 => self.conn.release_savepoint(&name),
                    _ => self.conn.rollback_to_savepoint(&name),
                };
                match result {
                    Ok(()) => {
                        if kind == 2 {
                            self.txn = TxStatus::Open;
                        }
                        self.succeeded(0);
                        self.tag(["SAVEPOINT", "RELEASE", "ROLLBACK"][kind]);
                        true
                    }
                    Err(err) => {
                        self.report(&err, None, Some(sql));
                        if self.txn == TxStatus::Open {
                            self.txn = TxStatus::Failed;
                        }
                        false
                    }
                }
            }
            TxCommand::Unsupported(why) => {
                let info = local_error("0A000", why);
                self.report_info(&info, None, Some(sql));
                if self.txn == TxStatus::Open {
                    self.txn = TxStatus::Failed;
                }
                false
            }
        }
    }

    // ---- meta-commands ----------------------------------------------

    /// Runs the meta-command after the backslash at `*pos`; leaves `*pos`
    /// where SQL scanning resumes.
    fn slash(&mut self, line: &str, pos: &mut usize) -> Slash {
        let mut sc = SlashScanner::new(line, *pos);
        let cmd = sc.command();
        let result = if self.frame.active() || is_conditional(&cmd) {
            self.command(&cmd, &mut sc)
        } else {
            // Skipped branch: eat the arguments unexpanded.
            if takes_whole_line(&cmd) {
                sc.rest_of_line();
            } else {
                sc.args(None);
            }
            Slash::Ok
        };
        *pos = sc.pos();
        result
    }

    /// Warns about arguments a command does not take (psql's message).
    fn extra_args(&self, cmd: &str, sc: &mut SlashScanner<'_>) {
        while let Some(a) = sc.arg(Some(&self.vars)) {
            self.client_warning(&format!("\\{cmd}: extra argument \"{a}\" ignored"));
        }
    }

    fn arg(&self, sc: &mut SlashScanner<'_>) -> Option<String> {
        sc.arg(Some(&self.vars))
    }

    fn command(&mut self, cmd: &str, sc: &mut SlashScanner<'_>) -> Slash {
        let ok = |b: bool| if b { Slash::Ok } else { Slash::Error };
        match cmd {
            // `\\` at the start of SQL: a separator, nothing to do.
            "" => Slash::Ok,
            "if" | "elif" | "else" | "endif" => self.conditional(cmd, sc),
            "q" | "quit" => {
                self.extra_args(cmd, sc);
                Slash::Quit
            }
            "set" => {
                let args = sc.args(Some(&self.vars));
                match args.split_first() {
                    None => {
                        let listing: Vec<String> = self
                            .vars
                            .iter()
                            .map(|(k, v)| format!("{k} = '{v}'"))
                            .collect();
                        for l in listing {
                            let _ = writeln!(io::stdout(), "{l}");
                        }
                        Slash::Ok
                    }
                    Some((name, values)) => match self.vars.set(name, &values.concat()) {
                        Ok(()) => Slash::Ok,
                        Err(e) => {
                            self.client_error(&e);
                            Slash::Error
                        }
                    },
                }
            }
            "unset" => match self.arg(sc) {
                None => {
                    self.client_error("\\unset: missing required argument");
                    Slash::Error
                }
                Some(name) => {
                    self.extra_args(cmd, sc);
                    match self.vars.unset(&name) {
                        Ok(()) => Slash::Ok,
                        Err(e) => {
                            self.client_error(&e);
                            Slash::Error
                        }
                    }
                }
            },
            "echo" | "qecho" | "warn" => {
                let mut args = sc.args(Some(&self.vars));
                let newline = if args.first().map(String::as_str) == Some("-n") {
                    args.remove(0);
                    false
                } else {
                    true
                };
                let text = format!("{}{}", args.join(" "), if newline { "\n" } else { "" });
                match cmd {
                    "echo" => {
                        let _ = self.out.flush();
                        print!("{text}");
                        let _ = io::stdout().flush();
                    }
                    "qecho" => {
                        let _ = self.out.write_all(text.as_bytes());
                    }
                    _ => eprint!("{text}"),
                }
                Slash::Ok
            }
            "i" | "include" | "ir" | "include_relative" => match self.arg(sc) {
                None => {
                    self.client_error(&format!("\\{cmd}: missing required argument"));
                    Slash::Error
                }
                Some(file) => {
                    self.extra_args(cmd, sc);
                    let relative = cmd.starts_with("ir") || cmd == "include_relative";
                    ok(self.include(&file, relative))
                }
            },
            "o" | "out" => {
                let target = sc.file_or_pipe(Some(&self.vars));
                let _ = self.out.flush();
                match target {
                    None => {
                        self.out = Output::stdout();
                        Slash::Ok
                    }
                    Some(t) => match open_output(&t) {
                        Ok(o) => {
                            self.out = o;
                            Slash::Ok
                        }
                        Err(e) => {
                            self.client_error(&format!("{t}: {e}"));
                            Slash::Error
                        }
                    },
                }
            }
            "g" | "gx" => {
                let target = sc.file_or_pipe(Some(&self.vars));
                let dest = match target {
                    None => None,
                    Some(t) => match open_output(&t) {
                        Ok(o) => Some(o),
                        Err(e) => {
                            self.client_error(&format!("{t}: {e}"));
                            return Slash::Error;
                        }
                    },
                };
                Slash::Send(Send {
                    dest,
                    expanded: cmd == "gx",
                    gset: None,
                })
            }
            "gset" => {
                let prefix = self.arg(sc).unwrap_or_default();
                self.extra_args(cmd, sc);
                Slash::Send(Send {
                    gset: Some(prefix),
                    ..Send::default()
                })
            }
            "p" | "print" => {
                self.extra_args(cmd, sc);
                let buf = if self.frame.buf.is_empty() {
                    &self.frame.prev
                } else {
                    &self.frame.buf
                };
                if buf.is_empty() {
                    println!("Query buffer is empty.");
                } else {
                    println!("{buf}");
                }
                Slash::Ok
            }
            "r" | "reset" => {
                self.extra_args(cmd, sc);
                self.frame.buf.clear();
                self.frame.lexer.reset();
                if !self.settings().quiet {
                    println!("Query buffer reset (cleared).");
                }
                Slash::Ok
            }
            "pset" => {
                let name = self.arg(sc);
                let value = self.arg(sc);
                self.extra_args(cmd, sc);
                match name {
                    None => {
                        self.client_error("\\pset: missing required argument");
                        Slash::Error
                    }
                    Some(n) => ok(self.pset(&n, value.as_deref())),
                }
            }
            "a" => {
                self.extra_args(cmd, sc);
                let to = if self.opt.format == crate::print::Format::Aligned {
                    "unaligned"
                } else {
                    "aligned"
                };
                ok(self.pset("format", Some(to)))
            }
            "t" | "x" => {
                let value = self.arg(sc);
                self.extra_args(cmd, sc);
                let name = if cmd == "t" {
                    "tuples_only"
                } else {
                    "expanded"
                };
                ok(self.pset(name, value.as_deref()))
            }
            "f" | "C" => {
                let value = self.arg(sc);
                self.extra_args(cmd, sc);
                let name = if cmd == "f" { "fieldsep" } else { "title" };
                ok(self.pset(name, value.as_deref()))
            }
            "H" | "html" => {
                self.extra_args(cmd, sc);
                ok(self.pset("format", Some("html")))
            }
            "timing" => {
                let value = self.arg(sc);
                self.extra_args(cmd, sc);
                match value {
                    None => self.timing = !self.timing,
                    Some(v) => match parse_bool(&v) {
                        Some(b) => self.timing = b,
                        None => {
                            self.client_error(&format!(
                                "unrecognized value \"{v}\" for \"\\timing\": Boolean expected"
                            ));
                            return Slash::Error;
                        }
                    },
                }
                if !self.settings().quiet {
                    println!("Timing is {}.", if self.timing { "on" } else { "off" });
                }
                Slash::Ok
            }
            "watch" => {
                let value = self.arg(sc);
                self.extra_args(cmd, sc);
                ok(self.watch(value.as_deref()))
            }
            "copy" => {
                let rest = sc.rest_of_line();
                ok(self.copy(&rest))
            }
            "conninfo" => {
                self.extra_args(cmd, sc);
                print!("{}", self.conninfo());
                Slash::Ok
            }
            "!" => {
                let rest = sc.rest_of_line();
                ok(self.shell(&rest))
            }
            "cd" => {
                let dir = self.arg(sc);
                self.extra_args(cmd, sc);
                let dir = dir
                    .or_else(|| std::env::var("HOME").ok())
                    .unwrap_or_else(|| "/".to_owned());
                match std::env::set_current_dir(&dir) {
                    Ok(()) => Slash::Ok,
                    Err(e) => {
                        self.client_error(&format!(
                            "\\cd: could not change directory to \"{dir}\": {e}"
                        ));
                        Slash::Error
                    }
                }
            }
            "setenv" => {
                let name = self.arg(sc);
                let value = self.arg(sc);
                self.extra_args(cmd, sc);
                match name {
                    None => {
                        self.client_error("\\setenv: missing required argument");
                        Slash::Error
                    }
                    Some(n) if n.contains('=') => {
                        self.client_error("environment variable name must not contain \"=\"");
                        Slash::Error
                    }
                    // Single-threaded here: no other thread reads the
                    // environment while it changes.
                    Some(n) => {
                        match value {
                            Some(v) => std::env::set_var(&n, v),
                            None => std::env::remove_var(&n),
                        }
                        Slash::Ok
                    }
                }
            }
            "getenv" => {
                let var = self.arg(sc);
                let env = self.arg(sc);
                self.extra_args(cmd, sc);
                match (var, env) {
                    (Some(var), Some(env)) => {
                        if let Ok(value) = std::env::var(&env) {
                            if let Err(e) = self.vars.set(&var, &value) {
                                self.client_error(&e);
                                return Slash::Error;
                            }
                        }
                        Slash::Ok
                    }
                    _ => {
                        self.client_error("\\getenv: missing required argument");
                        Slash::Error
                    }
                }
            }
            "errverbose" => {
                self.extra_args(cmd, sc);
                match &self.last_error {
                    None => println!("There is no previous error."),
                    Some(info) => eprint!(
                        "{}",
                        report::format(
                            info,
                            None,
                            super::vars::Verbosity::Verbose,
                            super::vars::ShowContext::Always
                        )
                    ),
                }
                Slash::Ok
            }
            "?" => {
                sc.args(None);
                print!("{}", HELP);
                Slash::Ok
            }
            _ => {
                let args = sc.args(Some(&self.vars));
                let result = crate::describe::run_status(
                    &mut self.conn,
                    cmd,
                    &args,
                    &self.opt,
                    &mut self.out,
                );
                // A describe command outside the user's transaction ends
                // the one its catalog reads opened: no snapshot or lock
                // is held after `\d` at an idle prompt.
                if result.is_some() && self.txn == TxStatus::Idle {
                    let _ = self.conn.rollback();
                }
                match result {
                    Some(Ok(true)) => Slash::Ok,
                    // psql printed its own error ("Did not find any
                    // relation named …"): the command failed.
                    Some(Ok(false)) => Slash::Error,
                    Some(Err(err)) => {
                        self.report(&err, None, None);
                        Slash::Error
                    }
                    None => {
                        if self.interactive {
                            eprintln!("invalid command \\{cmd}\nTry \\? for help.");
                        } else {
                            self.client_error(&format!("invalid command \\{cmd}"));
                        }
                        Slash::Error
                    }
                }
            }
        }
    }

    fn pset(&mut self, name: &str, value: Option<&str>) -> bool {
        match self.opt.pset(name, value) {
            Ok(message) => {
                if !self.settings().quiet && !message.is_empty() {
                    println!("{message}");
                }
                true
            }
            Err(e) => {
                self.client_error(&e);
                false
            }
        }
    }

    fn conditional(&mut self, cmd: &str, sc: &mut SlashScanner<'_>) -> Slash {
        let top = self.frame.conds.last().copied();
        // The expression is evaluated only where psql does: a skipped
        // branch's `\if` / `\elif` are not expanded.
        let outer_active = {
            let n = self.frame.conds.len();
            self.frame.conds[..n.saturating_sub(if cmd == "if" { 0 } else { 1 })]
                .iter()
                .all(|c| matches!(c, Cond::True | Cond::ElseTrue))
        };
        match cmd {
            "if" => {
                if !self.frame.active() {
                    sc.args(None);
                    self.frame.conds.push(Cond::Ignored);
                    return Slash::Ok;
                }
                let (value, ok) = self.expression(cmd, sc);
                self.frame
                    .conds
                    .push(if value { Cond::True } else { Cond::False });
                if ok {
                    Slash::Ok
                } else {
                    Slash::Error
                }
            }
            "elif" => match top {
                None => {
                    sc.args(None);
                    self.client_error("\\elif: no matching \\if");
                    Slash::Error
                }
                Some(Cond::ElseTrue | Cond::ElseFalse) => {
                    sc.args(None);
                    self.client_error("\\elif: cannot occur after \\else");
                    Slash::Error
                }
                Some(Cond::False) if outer_active => {
                    let (value, ok) = self.expression(cmd, sc);
                    if let Some(c) = self.frame.conds.last_mut() {
                        *c = if value { Cond::True } else { Cond::False };
                    }
                    if ok {
                        Slash::Ok
                    } else {
                        Slash::Error
                    }
                }
                Some(_) => {
                    sc.args(None);
                    if let Some(c) = self.frame.conds.last_mut() {
                        *c = Cond::Ignored;
                    }
                    Slash::Ok
                }
            },
            "else" => {
                self.extra_args(cmd, sc);
                match top {
                    None => {
                        self.client_error("\\else: no matching \\if");
                        Slash::Error
                    }
                    Some(Cond::ElseTrue | Cond::ElseFalse) => {
                        self.client_error("\\else: cannot occur after \\else");
                        Slash::Error
                    }
                    Some(c) => {
                        let next = if c == Cond::False && outer_active {
                            Cond::ElseTrue
                        } else {
                            Cond::ElseFalse
                        };
                        if let Some(top) = self.frame.conds.last_mut() {
                            *top = next;
                        }
                        Slash::Ok
                    }
                }
            }
            _ => {
                self.extra_args(cmd, sc);
                if self.frame.conds.pop().is_none() {
                    self.client_error("\\endif: no matching \\if");
                    return Slash::Error;
                }
                Slash::Ok
            }
        }
    }

    /// An `\if` / `\elif` expression: its arguments joined, as a boolean.
    fn expression(&mut self, cmd: &str, sc: &mut SlashScanner<'_>) -> (bool, bool) {
        let text = sc.args(Some(&self.vars)).join(" ");
        match parse_bool(&text) {
            Some(v) => (v, true),
            None => {
                self.client_error(&format!(
                    "unrecognized value \"{text}\" for \"\\{cmd} expression\": Boolean expected"
                ));
                (false, false)
            }
        }
    }

    fn include(&mut self, file: &str, relative: bool) -> bool {
        let path = if relative && !Path::new(file).is_absolute() {
            self.frame.dir.join(file)
        } else {
            PathBuf::from(file)
        };
        let opened = std::fs::File::open(&path);
        let f = match opened {
            Ok(f) => f,
            Err(e) => {
                self.client_error(&format!("{file}: {}", io_message(&e)));
                return false;
            }
        };
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let shown = path.display().to_string();
        let mut reader = io::BufReader::new(f);
        self.run_source(&mut reader, Some(&shown), &dir) == Flow::Continue
    }

    fn conninfo(&self) -> String {
        let info = self.conn.session_info();
        format!(
            "You are connected to database \"{}\" as user \"{}\" through iam-pgbroker (instance \"{}\", socket \"{}\", {} session {}).\n",
            info.dbname,
            info.user,
            info.db,
            self.socket.display(),
            if info.readonly { "read-only" } else { "read-write" },
            info.session,
        )
    }

    fn shell(&mut self, command: &str) -> bool {
        let _ = self.out.flush();
        let _ = io::stdout().flush();
        let status = if command.is_empty() {
            let shell = std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".to_owned());
            std::process::Command::new(shell).status()
        } else {
            std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(command)
                .status()
        };
        match status {
            Ok(s) if s.success() => true,
            Ok(_) => false,
            Err(e) => {
                self.client_error(&format!("\\!: {e}"));
                false
            }
        }
    }

    /// `\watch [SECONDS]`: runs the last query again and again until it
    /// fails (or the process is interrupted).
    fn watch(&mut self, seconds: Option<&str>) -> bool {
        let interval = match seconds {
            None => 2.0,
            Some(s) => match s.parse::<f64>() {
                Ok(v) if v >= 0.0 && v.is_finite() => v,
                _ => {
                    self.client_error(&format!("\\watch: incorrect interval value \"{s}\""));
                    return false;
                }
            },
        };
        let sql = if self.frame.buf.is_empty() {
            self.frame.prev.clone()
        } else {
            std::mem::take(&mut self.frame.buf)
        };
        if is_blank(&sql) {
            self.client_error("\\watch cannot be used with an empty query");
            return false;
        }
        self.frame.prev = sql.clone();
        self.frame.lexer.reset();
        let title = self.opt.title.clone();
        loop {
            let stamp = utc_stamp();
            self.opt.title = Some(match &title {
                Some(t) => format!("{t}\t{stamp} (every {interval}s)\n"),
                None => format!("{stamp} (every {interval}s)\n"),
            });
            let ok = self.send(&sql, (&sql, 0), Send::default());
            if !ok || self.lost.is_some() {
                self.opt.title = title;
                return false;
            }
            let _ = self.out.flush();
            std::thread::sleep(Duration::from_secs_f64(interval));
        }
    }

    // ---- \copy ------------------------------------------------------

    fn copy(&mut self, rest: &str) -> bool {
        let parsed = match parse_copy(rest) {
            Ok(p) => p,
            Err(e) => {
                self.client_error(&format!("\\copy: {e}"));
                return false;
            }
        };
        if self.txn == TxStatus::Failed {
            return self.aborted_error(rest);
        }
        match parsed.direction {
            CopyDirection::From => {
                let sql = format!("COPY {} FROM STDIN {}", parsed.target, parsed.options)
                    .trim_end()
                    .to_owned();
                match parsed.place {
                    CopyPlace::Std => {
                        // The data follows in this input, up to `\.`.
                        if self.interactive {
                            println!("Enter data to be copied followed by a newline.\nEnd with a backslash and a period on a line by itself, or an EOF signal.");
                        }
                        self.frame.copy_in = Some((sql, Vec::new()));
                        true
                    }
                    CopyPlace::Pstd => {
                        let mut stdin = io::stdin().lock();
                        self.copy_in_from(&sql, &mut stdin)
                    }
                    CopyPlace::File(path) => match std::fs::File::open(&path) {
                        Ok(f) => {
                            let mut reader = io::BufReader::new(f);
                            self.copy_in_from(&sql, &mut reader)
                        }
                        Err(e) => {
                            self.client_error(&format!("{path}: {}", io_message(&e)));
                            false
                        }
                    },
                }
            }
            CopyDirection::To => {
                let sql = format!("COPY {} TO STDOUT {}", parsed.target, parsed.options)
                    .trim_end()
                    .to_owned();
                // psql: `stdout` is the query output (`\o` moves it),
                // `pstdout` psql's own standard output; a COPY whose data
                // went where the results go prints no `COPY n` after it.
                let to_results = match &parsed.place {
                    CopyPlace::Std => true,
                    CopyPlace::Pstd => self.out.is_stdout(),
                    CopyPlace::File(_) => false,
                };
                let (result, written) = match &parsed.place {
                    CopyPlace::Std => copy_into(&mut self.conn, &sql, &mut self.out),
                    CopyPlace::Pstd => {
                        let _ = self.out.flush();
                        copy_into(&mut self.conn, &sql, &mut io::stdout())
                    }
                    CopyPlace::File(path) => match std::fs::File::create(path) {
                        Ok(f) => copy_into(&mut self.conn, &sql, &mut io::BufWriter::new(f)),
                        Err(e) => {
                            self.client_error(&format!("{path}: {}", io_message(&e)));
                            return false;
                        }
                    },
                };
                // A file that could not be completed is the error to tell,
                // unless the COPY itself failed first.
                if let (Ok(_), Err(e), CopyPlace::File(path)) = (&result, &written, &parsed.place) {
                    self.client_error(&format!("{path}: {}", io_message(e)));
                    return false;
                }
                self.copy_done(result, &sql, !to_results)
            }
        }
    }

    fn copy_in_from(&mut self, sql: &str, source: &mut dyn io::Read) -> bool {
        let autocommit = self.txn == TxStatus::Idle && self.settings().autocommit && !self.implicit;
        let result = self.conn.copy_in(sql, source);
        let ok = self.copy_done(result, sql, true);
        if autocommit {
            let end = if ok {
                self.conn.commit()
            } else {
                self.conn.rollback()
            };
            if let Err(err) = end {
                self.report(&err, None, Some(sql));
                return false;
            }
        } else if !ok {
            self.txn = TxStatus::Failed;
        } else {
            self.txn = TxStatus::Open;
        }
        ok
    }

    /// The end of a COPY: its row count, and psql's `COPY n` tag unless
    /// the data went where the results go.
    fn copy_done(&mut self, result: Result<u64, Error>, sql: &str, tag: bool) -> bool {
        match result {
            Ok(n) => {
                self.succeeded(n);
                if tag {
                    self.tag(&format!("COPY {n}"));
                }
                true
            }
            Err(err) => {
                self.report(&err, None, Some(sql));
                false
            }
        }
    }

    fn copy_in_line(&mut self, line: &str) -> Flow {
        if line == "\\." {
            let ok = self.end_copy_in();
            if !ok && self.settings().on_error_stop && !self.interactive {
                return Flow::Stop;
            }
            return Flow::Continue;
        }
        if let Some((_, data)) = &mut self.frame.copy_in {
            data.extend_from_slice(line.as_bytes());
            data.push(b'\n');
        }
        Flow::Continue
    }

    fn end_copy_in(&mut self) -> bool {
        match self.frame.copy_in.take() {
            None => true,
            Some((sql, data)) => {
                let mut source = io::Cursor::new(data);
                self.copy_in_from(&sql, &mut source)
            }
        }
    }
}

fn io_message(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "No such file or directory".to_owned(),
        io::ErrorKind::PermissionDenied => "Permission denied".to_owned(),
        _ => e.to_string(),
    }
}

/// `COPY … TO STDOUT` into `sink`, then flushed: the COPY's outcome and
/// the flush's, kept apart so neither hides the other.
fn copy_into(
    conn: &mut Connection,
    sql: &str,
    sink: &mut dyn Write,
) -> (Result<u64, Error>, io::Result<()>) {
    let result = conn.copy_out(sql, sink);
    (result, sink.flush())
}

/// `\o` / `\g` targets: a file, or `|command`.
fn open_output(target: &str) -> io::Result<Output> {
    match target.strip_prefix('|') {
        Some(command) => Output::pipe(command.trim()),
        None => Output::file(Path::new(target)),
    }
}

fn print_result(
    out: &mut Output,
    opt: &PrintOpt,
    columns: &[iam_pgconnect::Column],
    rows: Vec<Vec<Option<String>>>,
    command: &str,
    count: u64,
    quiet: bool,
) -> io::Result<()> {
    // psql prints a statement's tag when it returns no columns, and after
    // the table of INSERT/UPDATE/DELETE/MERGE … RETURNING.
    let tag = if columns.is_empty() {
        !command.is_empty()
    } else {
        let table = Table {
            title: opt.title.clone(),
            headers: columns.iter().map(|c| c.name.clone()).collect(),
            aligns: columns.iter().map(crate::print::align_for_column).collect(),
            rows,
            footers: None,
        };
        out.print_table(opt, &table)?;
        matches!(command, "INSERT" | "UPDATE" | "DELETE" | "MERGE")
    };
    if tag && !quiet {
        writeln!(out, "{}", output::command_tag(command, count))?;
    }
    Ok(())
}

/// psql's `\timing` line.
fn timing_line(elapsed: Duration) -> String {
    let ms = elapsed.as_secs_f64() * 1000.0;
    if ms < 1000.0 {
        return format!("Time: {ms:.3} ms");
    }
    let mut seconds = ms / 1000.0;
    let mut minutes = (seconds / 60.0).floor();
    seconds -= 60.0 * minutes;
    if minutes < 60.0 {
        return format!("Time: {ms:.3} ms ({:02}:{seconds:06.3})", minutes as u64);
    }
    let mut hours = (minutes / 60.0).floor();
    minutes -= 60.0 * hours;
    if hours < 24.0 {
        return format!(
            "Time: {ms:.3} ms ({:02}:{:02}:{seconds:06.3})",
            hours as u64, minutes as u64
        );
    }
    let days = (hours / 24.0).floor();
    hours -= 24.0 * days;
    format!(
        "Time: {ms:.3} ms ({days:.0} d {:02}:{:02}:{seconds:06.3})",
        hours as u64, minutes as u64
    )
}

/// The time for `\watch`'s title, like C's `%c` (in UTC).
fn utc_stamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86_400;
    let (h, m, s) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{weekday} {} {d:2} {h:02}:{m:02}:{s:02} {year}",
        months[(month - 1) as usize]
    )
}

fn is_conditional(cmd: &str) -> bool {
    matches!(cmd, "if" | "elif" | "else" | "endif")
}

fn takes_whole_line(cmd: &str) -> bool {
    matches!(cmd, "!" | "copy")
}

#[derive(Debug, PartialEq, Eq)]
enum CopyDirection {
    From,
    To,
}

#[derive(Debug, PartialEq, Eq)]
enum CopyPlace {
    /// `stdin` / `stdout`: the command's input (data follows, up to
    /// `\.`) or iam-pg's output.
    Std,
    /// `pstdin` / `pstdout`: the process's standard input / output.
    Pstd,
    File(String),
}

#[derive(Debug, PartialEq, Eq)]
struct CopySpec {
    target: String,
    direction: CopyDirection,
    place: CopyPlace,
    options: String,
}

/// Parses `\copy`'s arguments: `table [(columns)] | (query)`, `from` or
/// `to`, a file (`'quoted'` or bare), `stdin`, `stdout`, `pstdin`,
/// `pstdout`, then COPY's options as written (`with` optional).
fn parse_copy(text: &str) -> Result<CopySpec, String> {
    let b = text.as_bytes();
    let mut i = 0;
    let mut depth = 0u32;
    let mut quote: Option<u8> = None;
    // Find a top-level `from` / `to` word after the target.
    let mut split = None;
    while i < b.len() {
        let c = b[i];
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        match c {
            b'\'' | b'"' => quote = Some(c),
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            _ if depth == 0
                && i > 0
                && !c.is_ascii_whitespace()
                && (b[i - 1].is_ascii_whitespace() || b[i - 1] == b')') =>
            {
                let word_end = text[i..]
                    .find(|ch: char| ch.is_ascii_whitespace())
                    .map_or(text.len(), |n| i + n);
                let word = text[i..word_end].to_ascii_lowercase();
                if word == "from" || word == "to" {
                    split = Some((i, word_end, word == "from"));
                    break;
                }
                i = word_end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    let (at, end, from) = split.ok_or_else(|| "parse error at end of line".to_owned())?;
    let target = text[..at].trim().to_owned();
    if target.is_empty() {
        return Err("arguments required".to_owned());
    }
    let rest = text[end..].trim_start();
    let (word, after) = if let Some(stripped) = rest.strip_prefix('\'') {
        let mut value = String::new();
        let mut chars = stripped.char_indices().peekable();
        let mut close = None;
        while let Some((k, ch)) = chars.next() {
            if ch == '\'' {
                if chars.peek().map(|&(_, c)| c) == Some('\'') {
                    value.push('\'');
                    chars.next();
                    continue;
                }
                close = Some(k);
                break;
            }
            value.push(ch);
        }
        let close = close.ok_or_else(|| "unterminated quoted string".to_owned())?;
        (Some(value), &stripped[close + 1..])
    } else {
        let word_end = rest
            .find(|ch: char| ch.is_ascii_whitespace())
            .unwrap_or(rest.len());
        if word_end == 0 {
            return Err("parse error at end of line".to_owned());
        }
        let w = &rest[..word_end];
        let place = match w.to_ascii_lowercase().as_str() {
            "stdin" | "stdout" => Some(CopyPlace::Std),
            "pstdin" | "pstdout" => Some(CopyPlace::Pstd),
            "program" => return Err("PROGRAM is not supported by iam-pg".to_owned()),
            _ => None,
        };
        if let Some(place) = place {
            let options = strip_with(&rest[word_end..]);
            return Ok(CopySpec {
                target,
                direction: if from {
                    CopyDirection::From
                } else {
                    CopyDirection::To
                },
                place,
                options,
            });
        }
        (Some(w.to_owned()), &rest[word_end..])
    };
    Ok(CopySpec {
        target,
        direction: if from {
            CopyDirection::From
        } else {
            CopyDirection::To
        },
        place: CopyPlace::File(word.unwrap_or_default()),
        options: strip_with(after),
    })
}

/// COPY's options after the source; a leading `with` is kept (COPY
/// accepts it) but whitespace is normalised at the ends.
fn strip_with(text: &str) -> String {
    text.trim().to_owned()
}

pub const HELP: &str = "\
General
  \\q                     quit iam-pg
  \\conninfo              the session: database, user, broker socket
  \\copy ...              COPY through the broker: to|from 'file', stdin, stdout, pstdin, pstdout
Query Buffer
  \\g [FILE|'|'CMD]       send the buffer (results to a file or a command)
  \\gx [FILE]             as \\g, expanded output
  \\gset [PREFIX]         send the buffer, store the one row's values in variables
  \\watch [SEC]           send the buffer again every SEC seconds
  \\p  \\r                 show / reset the buffer
Input/Output
  \\echo [-n] TEXT  \\qecho TEXT  \\warn TEXT
  \\i FILE  \\ir FILE      run commands from a file (\\ir: relative to this file)
  \\o [FILE|'|'CMD]       send query results to a file or a command
Conditionals
  \\if EXPR  \\elif EXPR  \\else  \\endif
Formatting
  \\a  \\C [TITLE]  \\f [SEP]  \\H  \\pset [NAME [VALUE]]  \\t [on|off]  \\x [on|off|auto]
Informational
  \\d[S+] [NAME]  \\dt  \\di  \\dv  \\dn  \\du  \\l  \\sf  (see psql)
Variables
  \\set [NAME [VALUE]]  \\unset NAME  \\getenv VAR ENVVAR  \\setenv NAME [VALUE]
Operating System
  \\cd [DIR]  \\! [COMMAND]  \\timing [on|off]
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_arguments() {
        let p =
            parse_copy("idm_identity (id, username) to '/tmp/x y.csv' with (format csv)").unwrap();
        assert_eq!(p.target, "idm_identity (id, username)");
        assert_eq!(p.direction, CopyDirection::To);
        assert_eq!(p.place, CopyPlace::File("/tmp/x y.csv".into()));
        assert_eq!(p.options, "with (format csv)");
        let p = parse_copy("(SELECT 'from', 1) TO stdout csv header").unwrap();
        assert_eq!(p.target, "(SELECT 'from', 1)");
        assert_eq!(p.place, CopyPlace::Std);
        assert_eq!(p.options, "csv header");
        let p = parse_copy("t FROM pstdin").unwrap();
        assert_eq!(
            (p.direction, p.place),
            (CopyDirection::From, CopyPlace::Pstd)
        );
        let p = parse_copy("t from data.csv csv").unwrap();
        assert_eq!(p.place, CopyPlace::File("data.csv".into()));
        assert!(parse_copy("t").is_err());
        assert!(parse_copy("t from program 'ls'").is_err());
    }

    #[test]
    fn timing_lines() {
        assert_eq!(timing_line(Duration::from_micros(1234)), "Time: 1.234 ms");
        assert_eq!(
            timing_line(Duration::from_millis(61_500)),
            "Time: 61500.000 ms (01:01.500)"
        );
        assert_eq!(
            timing_line(Duration::from_millis(3_723_004)),
            "Time: 3723004.000 ms (01:02:03.004)"
        );
    }
}
