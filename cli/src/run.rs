//! One run of iam-pg: open the session, run -c, -f or standard input
//! through the psql engine, and map the outcome to an exit status.

use crate::args::{Action, Args};
use crate::output::Format;
use crate::print;
use crate::psql::{Engine, Flow, Options};
use crate::script;
use clap::CommandFactory;
use iam_pgconnect::{Config, Connection, ErrorCode};
use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};
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

/// psql's exit status for a script stopped by `ON_ERROR_STOP`.
pub const EXIT_SCRIPT_STOPPED: u8 = 3;

/// Runs -c, -f and standard input through the psql engine (see
/// `crate::psql`), as psql 15 does: actions in command-line order, exit
/// status 0, 1 (a -c failed, a file is missing), 3 (a script stopped by
/// ON_ERROR_STOP), and the broker's own 3 (denied) and 4 (unavailable)
/// when the session cannot be had or is lost.
pub fn main(args: Args) -> ExitCode {
    if args.actions.is_empty() && io::stdin().is_terminal() {
        return crate::interactive::main(&args);
    }
    let sql_only: Vec<&String> = args
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Command(c) if !c.starts_with('\\') => Some(c),
            _ => None,
        })
        .collect();
    if !args.params.is_empty()
        && sql_only.len() == args.actions.len()
        && !sql_only
            .iter()
            .any(|c| script::split(c).iter().any(|s| s.has_placeholders))
    {
        return usage(
            clap::error::ErrorKind::ArgumentConflict,
            "-p was given, but no statement has a %s or $n placeholder",
        );
    }
    // A bad -P is a usage error before anything connects, as in psql.
    if let Err(message) = args.print_opt() {
        return usage(clap::error::ErrorKind::InvalidValue, &message);
    }
    let conn = match config(&args).connect() {
        Ok(conn) => conn,
        Err(err) => {
            eprintln!("iam-pg: error: {err}");
            return ExitCode::from(exit_status(err.code()));
        }
    };
    let mut engine = match start_engine(&args, conn, false) {
        Ok(engine) => engine,
        Err(status) => return status,
    };

    let status = run_actions(&mut engine, &args);
    let lost = engine.lost();
    let flushed = engine.close();
    if let Some(code) = lost {
        return ExitCode::from(exit_status(code));
    }
    match flushed {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            eprintln!("iam-pg: error: cannot write the output: {e}");
            ExitCode::from(EXIT_DATABASE)
        }
        _ => ExitCode::from(status),
    }
}

/// The psql engine over an open session, as the arguments set it up:
/// print options (`-A -t -x -P …`), `-o`, `-q`, `-e -a -b -E`, `-v`, and
/// the start-up file unless `-X`. At the prompt (`interactive`) a write
/// session starts with `AUTOCOMMIT` off: changes wait for `COMMIT`.
pub fn start_engine(args: &Args, conn: Connection, interactive: bool) -> Result<Engine, ExitCode> {
    let print = args
        .print_opt()
        .map_err(|message| usage(clap::error::ErrorKind::InvalidValue, &message))?;
    // -o FILE: results to the file, messages still to the terminal.
    let output = match &args.output {
        Some(path) => match print::Output::file(path) {
            Ok(out) => Some(out),
            Err(e) => {
                eprintln!("iam-pg: error: cannot open {}: {e}", path.display());
                return Err(ExitCode::from(EXIT_DATABASE));
            }
        },
        None => None,
    };
    let mut variables = Vec::new();
    for v in &args.variables {
        match v.split_once('=') {
            Some((name, value)) => variables.push((name.to_owned(), Some(value.to_owned()))),
            None => variables.push((v.clone(), None)),
        }
    }
    let mut engine = Engine::new(
        conn,
        Options {
            print,
            params: args.params.clone(),
            interactive,
            legacy: (args.format != Format::Table).then_some(args.format),
            socket: config(args).socket_path(),
        },
    );
    if let Some(out) = output {
        engine.set_output(out);
    }
    let vars = engine.vars_mut();
    let mut settings: Vec<(&str, &str)> = Vec::new();
    if interactive && args.write {
        settings.push(("AUTOCOMMIT", "off"));
    }
    if args.quiet {
        settings.push(("QUIET", "on"));
    }
    if args.echo_all {
        settings.push(("ECHO", "all"));
    } else if args.echo_queries {
        settings.push(("ECHO", "queries"));
    } else if args.echo_errors {
        settings.push(("ECHO", "errors"));
    }
    if args.echo_hidden {
        settings.push(("ECHO_HIDDEN", "on"));
    }
    for (name, value) in settings {
        let _ = vars.set(name, value);
    }
    for (name, value) in &variables {
        let result = match value {
            Some(v) => vars.set(name, v),
            None => vars.unset(name),
        };
        if let Err(e) = result {
            eprintln!("iam-pg: error: {e}");
            return Err(ExitCode::from(EXIT_DATABASE));
        }
    }
    if !args.no_psqlrc {
        if let Some(rc) = startup_file() {
            if let Ok(f) = std::fs::File::open(&rc) {
                let dir = rc.parent().map(Path::to_path_buf).unwrap_or_default();
                let shown = rc.display().to_string();
                engine.run_source(&mut io::BufReader::new(f), Some(&shown), &dir);
            }
        }
    }
    Ok(engine)
}

/// The start-up file: `$IAM_PGRC`, else `~/.iampgrc` (psql's `.psqlrc`
/// under iam-pg's name, so that a psqlrc written for a real server does
/// not run here by surprise).
fn startup_file() -> Option<PathBuf> {
    if let Some(rc) = std::env::var_os("IAM_PGRC") {
        return Some(PathBuf::from(rc));
    }
    let home = std::env::var_os("HOME")?;
    Some(Path::new(&home).join(".iampgrc"))
}

/// Runs the actions (or standard input); returns psql's exit status.
fn run_actions(engine: &mut Engine, args: &Args) -> u8 {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    if args.single_transaction {
        engine.begin_single();
    }
    let mut status = 0;
    if args.actions.is_empty() {
        let stdin = io::stdin();
        let flow = engine.run_source(&mut stdin.lock(), None, &cwd);
        status = if flow == Flow::Stop {
            EXIT_SCRIPT_STOPPED
        } else {
            0
        };
    }
    for action in &args.actions {
        status = match action {
            Action::Command(text) if text.starts_with('\\') => {
                u8::from(!engine.run_slash_command(text))
            }
            Action::Command(text) => u8::from(!engine.run_command(text)),
            Action::File(path) if path == Path::new("-") => {
                let stdin = io::stdin();
                match engine.run_source(&mut stdin.lock(), Some("<stdin>"), &cwd) {
                    Flow::Stop => EXIT_SCRIPT_STOPPED,
                    _ => 0,
                }
            }
            Action::File(path) => match std::fs::File::open(path) {
                Ok(f) => {
                    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
                    let shown = path.display().to_string();
                    match engine.run_source(&mut io::BufReader::new(f), Some(&shown), &dir) {
                        Flow::Stop => EXIT_SCRIPT_STOPPED,
                        _ => 0,
                    }
                }
                Err(e) => {
                    let why = match e.kind() {
                        io::ErrorKind::NotFound => "No such file or directory".to_owned(),
                        io::ErrorKind::PermissionDenied => "Permission denied".to_owned(),
                        _ => e.to_string(),
                    };
                    eprintln!("iam-pg: error: {}: {why}", path.display());
                    1
                }
            },
        };
        if engine.lost().is_some() || (status != 0 && engine.vars().settings().on_error_stop) {
            break;
        }
    }
    if args.single_transaction && !engine.end_single(status == 0) && status == 0 {
        status = 1;
    }
    status
}

/// Prints a usage error the way clap does (with the usage line) and
/// returns its exit status, 2.
pub fn usage(kind: clap::error::ErrorKind, message: &str) -> ExitCode {
    let err = Args::command().error(kind, message);
    let _ = err.print();
    ExitCode::from(err.exit_code() as u8)
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
}
