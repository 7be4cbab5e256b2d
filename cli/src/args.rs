//! Command-line arguments.

use crate::output::Format;
use clap::Parser;
use iam_pgbroker_proto::{DEFAULT_DB, DEFAULT_DB_USER};
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Examples:
  iam-pg                           # interactive prompt; \\? lists its commands
  iam-pg -U czechidm --write       # interactive, read-write: COMMIT to keep changes
  iam-pg -c 'SELECT count(*) FROM idm_identity'
  iam-pg -c 'SELECT id, username FROM idm_identity WHERE username = %s' -p admin
  iam-pg -d bridge -U bridge -c 'SELECT current_user'
  iam-pg -U czechidm --write --reason 'INC-1234: disable a leaver' \\
      -c 'UPDATE idm_identity SET disabled = true WHERE username = %s' -p jnovak
  iam-pg --format csv -c 'SELECT username, email FROM idm_identity' > identities.csv
  iam-pg -U czechidm --write -f fix.sql
  echo 'SELECT version()' | iam-pg

Interactive mode:
  On a terminal, without -c or -f, iam-pg opens a prompt like psql's: line
  editing, history in ~/.iam_pg_history ($IAM_PG_HISTORY), statements ended
  by ';' over as many lines as needed, and \\q, \\x, \\timing, \\dt, \\d TABLE,
  \\conninfo, \\?. A read session ends each statement's transaction at
  once. A --write session keeps one transaction open until you type COMMIT
  or ROLLBACK (the prompt shows WRITE, and * while changes are pending);
  leaving with changes pending asks whether to commit or roll back.

Statements:
  Several -c, or the statements of a file or of standard input, run in order
  in one session and one transaction. Each -c and the file are split on ';'
  (outside quotes, comments and dollar quotes). A read session is closed at
  the end; with --write the transaction is committed at the end, and rolled
  back if any statement fails.

Parameters:
  Each -p VALUE is a string, bound as text (PostgreSQL parses it by the
  parameter's type). All -p values go, in order, with every statement that
  has a %s or $n placeholder; statements without placeholders get none. Write
  %% for a literal % in a statement that has parameters.

Change requests (two-person approval, for rules with mode = \"request\"):
  iam-pg request -U czechidm --reason TEXT -c SQL [-p VALUE]...
  iam-pg requests [--all]    iam-pg request show ID
  iam-pg approve ID [--comment TEXT]    iam-pg reject ID --comment TEXT
  iam-pg cancel ID           (see iam-pg request --help)

Exit status:
  0 success, 1 database error (database, read_only, forbidden_statement,
  limit, or an internal error), 2 usage error or bad request, 3 denied by the
  broker's policy, 4 broker or appliance unavailable (no socket, unavailable,
  not_found, secret, busy, audit_unavailable).

The broker's socket is --socket, else $IAM_PGBROKER_SOCKET, else
/run/iam-pgbroker/pgbroker.sock.";

/// Runs SQL on the appliance's PostgreSQL databases through iam-pgbroker.
///
/// Sessions are read-only unless --write is given and the broker's policy
/// grants it. Every statement is audited by the broker.
#[derive(Debug, Parser)]
#[command(name = "iam-pg", version, after_help = AFTER_HELP)]
pub struct Args {
    /// Database instance: the {db}-db container.
    #[arg(short = 'd', long = "db", value_name = "DB", default_value = DEFAULT_DB)]
    pub db: String,

    /// Database user to connect as.
    #[arg(short = 'U', long = "user", value_name = "USER", default_value = DEFAULT_DB_USER)]
    pub user: String,

    /// Database name inside the instance [default: the instance name].
    #[arg(long, value_name = "NAME")]
    pub dbname: Option<String>,

    /// Open a read-write session (the policy must grant it). With -c or
    /// -f the transaction is committed at the end; at the prompt, when you
    /// type COMMIT.
    #[arg(long)]
    pub write: bool,

    /// Why you are connecting; recorded in the audit, required by some
    /// policy rules.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,

    /// A parameter value for %s or $n placeholders (repeatable; see below).
    #[arg(
        short = 'p',
        long = "param",
        value_name = "VALUE",
        allow_hyphen_values = true
    )]
    pub params: Vec<String>,

    /// SQL to run (repeatable; run in order in one transaction).
    #[arg(
        short = 'c',
        long = "command",
        value_name = "SQL",
        conflicts_with = "file"
    )]
    pub commands: Vec<String>,

    /// Run the statements of FILE ("-" for standard input).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Expanded display: one block per row, a line per column (like
    /// psql's -x and \x).
    #[arg(short = 'x', long)]
    pub expanded: bool,

    /// The broker's socket [default: $IAM_PGBROKER_SOCKET, else
    /// /run/iam-pgbroker/pgbroker.sock].
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn parses_the_documented_forms() {
        let a = Args::try_parse_from([
            "iam-pg",
            "-d",
            "bridge",
            "-U",
            "bridge",
            "--write",
            "--reason",
            "fix",
            "-p",
            "-5",
            "-p",
            "admin",
            "-c",
            "SELECT 1",
            "-c",
            "SELECT %s",
            "--format",
            "csv",
        ])
        .unwrap();
        assert_eq!((a.db.as_str(), a.user.as_str()), ("bridge", "bridge"));
        assert!(a.write);
        assert_eq!(a.params, ["-5", "admin"]);
        assert_eq!(a.commands, ["SELECT 1", "SELECT %s"]);
        assert_eq!(a.format, Format::Csv);

        let a = Args::try_parse_from(["iam-pg", "-f", "-"]).unwrap();
        assert_eq!(a.file, Some(PathBuf::from("-")));
        assert_eq!((a.db.as_str(), a.user.as_str()), ("czechidm", "postgres"));
        assert_eq!(a.format, Format::Table);
    }

    #[test]
    fn usage_errors_exit_2() {
        let err = Args::try_parse_from(["iam-pg", "-c", "x", "-f", "y"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let err = Args::try_parse_from(["iam-pg", "--format", "xml"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
