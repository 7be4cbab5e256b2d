//! One run of iam-pg: collect the statements, open the session, run them in
//! order, print results, commit or roll back, and map the outcome to an
//! exit status.

use crate::args::Args;
use crate::output::{Format, ResultPrinter};
use crate::print::{self, PrintOpt, Printing, Table};
use crate::script::{self, Statement};
use clap::CommandFactory;
use iam_pgconnect::{Config, Connection, Error, ErrorCode, ToParam};
use std::io::{self, IsTerminal, Read, Write};
use std::path::Path;
use std::process::ExitCode;

/// Exit statuses, documented in `--help`.
pub const EXIT_DATABASE: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
const EXIT_DENIED: u8 = 3;
pub const EXIT_UNAVAILABLE: u8 = 4;

/// The exit status for an error code.
pub fn exit_status(code: ErrorCode) -> u8 {
    match code {
        ErrorCode::Database
        | ErrorCode::ReadOnly
        | ErrorCode::ForbiddenStatement
        | ErrorCode::Limit => EXIT_DATABASE,
        ErrorCode::BadRequest => EXIT_USAGE,
        ErrorCode::Denied => EXIT_DENIED,
        ErrorCode::Unavailable
        | ErrorCode::NotFound
        | ErrorCode::Secret
        | ErrorCode::Busy
        | ErrorCode::AuditUnavailable => EXIT_UNAVAILABLE,
        // A broker bug or a code newer than this client: not the caller's
        // fault and not worth retrying, so the generic failure.
        ErrorCode::Internal | ErrorCode::Unknown => EXIT_DATABASE,
    }
}

/// A statement and where it came from, for error messages.
struct Job {
    statement: Statement,
    origin: String,
}

/// Why a run stopped early.
pub enum Failure {
    /// The broker or the client library reported an error; `at` is the
    /// index of the statement that failed, if one did.
    Db { err: Error, at: Option<usize> },
    /// Writing the results failed (e.g. the reader of a pipe went away).
    Output(io::Error),
}

pub fn main(args: Args) -> ExitCode {
    if args.commands.is_empty() && args.file.is_none() && io::stdin().is_terminal() {
        return crate::interactive::main(&args);
    }
    let jobs = match collect(&args) {
        Ok(jobs) => jobs,
        Err(status) => return status,
    };
    if !args.params.is_empty() && !jobs.iter().any(|j| j.statement.has_placeholders) {
        return usage(
            clap::error::ErrorKind::ArgumentConflict,
            "-p was given, but no statement has a %s or $n placeholder",
        );
    }

    let printing = match args.print_opt() {
        Ok(opt) => Printing {
            format: args.format,
            opt,
            quiet: args.quiet,
            to_stdout: args.output.is_none(),
        },
        Err(message) => return usage(clap::error::ErrorKind::InvalidValue, &message),
    };
    // -o FILE: results to the file, messages still to the terminal.
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => match std::fs::File::create(path) {
            Ok(file) => Box::new(io::BufWriter::new(file)),
            Err(e) => {
                eprintln!("iam-pg: error: cannot open {}: {e}", path.display());
                return ExitCode::from(EXIT_USAGE);
            }
        },
        None => Box::new(io::BufWriter::new(io::stdout().lock())),
    };
    let result = execute(&args, &printing, &jobs, &mut out);
    let flushed = out.flush();
    let failure = match (result, flushed) {
        (Ok(()), Ok(())) => return ExitCode::SUCCESS,
        (Err(f), _) => f,
        (Ok(()), Err(e)) => Failure::Output(e),
    };
    match failure {
        Failure::Db { err, at } => {
            eprintln!("iam-pg: error: {err}");
            if let Some(detail) = err.detail() {
                eprintln!("DETAIL:  {detail}");
            }
            if let Some(hint) = err.hint() {
                eprintln!("HINT:  {hint}");
            }
            if let (Some(k), true) = (at, jobs.len() > 1) {
                eprintln!(
                    "iam-pg: in statement {} of {} ({})",
                    k + 1,
                    jobs.len(),
                    jobs[k].origin
                );
            }
            if args.write && at.is_some() {
                eprintln!("iam-pg: the transaction was rolled back; nothing was committed");
            }
            ExitCode::from(exit_status(err.code()))
        }
        Failure::Output(err) => {
            // A closed pipe (`| head`) is the reader's choice, not news.
            if err.kind() != io::ErrorKind::BrokenPipe {
                eprintln!("iam-pg: error: cannot write the output: {err}");
            }
            ExitCode::from(EXIT_DATABASE)
        }
    }
}

/// Prints a usage error the way clap does (with the usage line) and
/// returns its exit status, 2.
pub fn usage(kind: clap::error::ErrorKind, message: &str) -> ExitCode {
    let err = Args::command().error(kind, message);
    let _ = err.print();
    ExitCode::from(err.exit_code() as u8)
}

/// The statements to run, from -c, -f or standard input.
fn collect(args: &Args) -> Result<Vec<Job>, ExitCode> {
    if !args.commands.is_empty() {
        let mut jobs = Vec::new();
        for (k, command) in args.commands.iter().enumerate() {
            for statement in script::split(command) {
                let mut origin = format!("-c #{}", k + 1);
                if statement.line > 1 {
                    origin.push_str(&format!(", line {}", statement.line));
                }
                jobs.push(Job { statement, origin });
            }
        }
        return Ok(jobs);
    }
    let (text, name) = match &args.file {
        Some(path) if path == Path::new("-") => (read_stdin()?, "<stdin>".to_owned()),
        Some(path) => match std::fs::read(path) {
            Ok(bytes) => (
                utf8(bytes, &path.display().to_string())?,
                path.display().to_string(),
            ),
            Err(e) => {
                eprintln!("iam-pg: error: cannot read {}: {e}", path.display());
                return Err(ExitCode::from(EXIT_USAGE));
            }
        },
        None => (read_stdin()?, "<stdin>".to_owned()),
    };
    Ok(script::split(&text)
        .into_iter()
        .map(|statement| Job {
            origin: format!("{name}:{}", statement.line),
            statement,
        })
        .collect())
}

fn read_stdin() -> Result<String, ExitCode> {
    let mut bytes = Vec::new();
    if let Err(e) = io::stdin().read_to_end(&mut bytes) {
        eprintln!("iam-pg: error: cannot read standard input: {e}");
        return Err(ExitCode::from(EXIT_USAGE));
    }
    utf8(bytes, "standard input")
}

fn utf8(bytes: Vec<u8>, name: &str) -> Result<String, ExitCode> {
    String::from_utf8(bytes).map_err(|e| {
        eprintln!(
            "iam-pg: error: {name} is not valid UTF-8 (at byte {})",
            e.utf8_error().valid_up_to()
        );
        ExitCode::from(EXIT_USAGE)
    })
}

/// The client configuration the arguments describe.
pub fn config(args: &Args) -> Config {
    let mut config = Config::new()
        .db(&args.db)
        .user(&args.user)
        .readonly(!args.write)
        .client_name(concat!("iam-pg/", env!("CARGO_PKG_VERSION")));
    if let Some(dbname) = &args.dbname {
        config = config.dbname(dbname);
    }
    if let Some(reason) = &args.reason {
        config = config.reason(reason);
    }
    if let Some(socket) = &args.socket {
        config = config.socket(socket);
    }
    config
}

/// Runs every statement in one session. Any failure ends the session
/// without a commit: a write session is rolled back, even when only the
/// output failed (a script piping `--write` output into a failing reader
/// must not have half its intent committed silently).
fn execute(
    args: &Args,
    printing: &Printing,
    jobs: &[Job],
    out: &mut impl Write,
) -> Result<(), Failure> {
    let mut conn = config(args)
        .connect()
        .map_err(|err| Failure::Db { err, at: None })?;
    let params: Vec<&dyn ToParam> = args.params.iter().map(|p| p as &dyn ToParam).collect();
    for (k, job) in jobs.iter().enumerate() {
        let params: &[&dyn ToParam] = if job.statement.has_placeholders {
            &params
        } else {
            &[]
        };
        if let Err(failure) = print_statement(&mut conn, &job.statement.sql, params, printing, out)
        {
            let _ = conn.rollback();
            let _ = conn.close();
            return Err(match failure {
                Failure::Db { err, .. } => Failure::Db { err, at: Some(k) },
                output => output,
            });
        }
    }
    if args.write {
        // On failure `conn` is dropped, which rolls back and closes.
        conn.commit().map_err(|err| Failure::Db {
            err,
            at: Some(jobs.len().saturating_sub(1)).filter(|_| !jobs.is_empty()),
        })?;
    }
    // Committed (or read-only): a failing close changes nothing.
    let _ = conn.close();
    Ok(())
}

/// Runs one statement and prints its result in `format` (expanded when
/// the flag says so), psql's defaults otherwise.
pub fn run_statement(
    conn: &mut Connection,
    sql: &str,
    params: &[&dyn ToParam],
    (format, expanded): (Format, bool),
    out: &mut impl Write,
) -> Result<(), Failure> {
    let mut opt = PrintOpt::default();
    if expanded {
        opt.expanded = print::Expanded::On;
    }
    let printing = Printing {
        format,
        ..Printing::table(opt)
    };
    print_statement(conn, sql, params, &printing, out)
}

/// Runs one statement and prints its result as `printing` says: psql's
/// table formats (then, as psql, the command tag of a statement without
/// result columns, or of INSERT/UPDATE/DELETE/MERGE … RETURNING), or
/// iam-pg's JSON and CSV.
pub fn print_statement(
    conn: &mut Connection,
    sql: &str,
    params: &[&dyn ToParam],
    printing: &Printing,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let db = |err| Failure::Db { err, at: None };
    let mut rows = conn.query_iter(sql, params).map_err(db)?;
    if printing.format != Format::Table {
        let mut printer =
            ResultPrinter::begin(printing.format, out, rows.columns()).map_err(Failure::Output)?;
        for row in &mut rows {
            printer
                .row(row.map_err(db)?.into_values())
                .map_err(Failure::Output)?;
        }
        let command = rows.command().unwrap_or_default().to_owned();
        let count = rows.row_count().unwrap_or_default();
        return printer.finish(&command, count).map_err(Failure::Output);
    }
    let columns = rows.columns().to_vec();
    let mut table = Table {
        headers: columns.iter().map(|c| c.name.clone()).collect(),
        aligns: columns.iter().map(print::align_for_column).collect(),
        ..Table::default()
    };
    for row in &mut rows {
        let row = row.map_err(db)?;
        table.rows.push(
            (0..columns.len())
                .map(|i| row.text(i).map(|t| t.into_owned()))
                .collect(),
        );
    }
    let command = rows.command().unwrap_or_default().to_owned();
    let count = rows.row_count().unwrap_or_default();
    let tag = if columns.is_empty() {
        !command.is_empty()
    } else {
        print::print_to(out, &printing.opt, &table, printing.to_stdout).map_err(Failure::Output)?;
        matches!(command.as_str(), "INSERT" | "UPDATE" | "DELETE" | "MERGE")
    };
    if tag && !printing.quiet {
        writeln!(out, "{}", crate::output::command_tag(&command, count))
            .map_err(Failure::Output)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses() {
        use ErrorCode::*;
        for (code, status) in [
            (Database, 1),
            (ReadOnly, 1),
            (ForbiddenStatement, 1),
            (Limit, 1),
            (Internal, 1),
            (Unknown, 1),
            (BadRequest, 2),
            (Denied, 3),
            (Unavailable, 4),
            (NotFound, 4),
            (Secret, 4),
            (Busy, 4),
            (AuditUnavailable, 4),
        ] {
            assert_eq!(exit_status(code), status, "{code}");
        }
    }

    #[test]
    fn a_missing_socket_exits_4() {
        let args = <Args as clap::Parser>::try_parse_from([
            "iam-pg",
            "--socket",
            "/nonexistent/iam-pg-test.sock",
            "-c",
            "SELECT 1",
        ])
        .unwrap();
        let jobs = collect(&args).unwrap_or_else(|_| panic!("collect failed"));
        let mut out = Vec::new();
        let printing = Printing::table(PrintOpt::default());
        match execute(&args, &printing, &jobs, &mut out) {
            Err(Failure::Db { err, at: None }) => {
                assert_eq!(exit_status(err.code()), 4);
                assert!(err.to_string().contains("/nonexistent/iam-pg-test.sock"));
            }
            _ => panic!("expected a connection failure"),
        }
    }

    #[test]
    fn commands_are_split_and_located() {
        let args = <Args as clap::Parser>::try_parse_from([
            "iam-pg",
            "-c",
            "SELECT 1; SELECT %s",
            "-c",
            "SELECT 3",
        ])
        .unwrap();
        let jobs = collect(&args).unwrap_or_else(|_| panic!("collect failed"));
        let summary: Vec<(&str, &str, bool)> = jobs
            .iter()
            .map(|j| {
                (
                    j.statement.sql.as_str(),
                    j.origin.as_str(),
                    j.statement.has_placeholders,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("SELECT 1", "-c #1", false),
                ("SELECT %s", "-c #1", true),
                ("SELECT 3", "-c #2", false)
            ]
        );
    }
}
