//! Command-line arguments.

use crate::output::Format;
use crate::print::{Expanded, Format as PrintFormat, PrintOpt, Separator};
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
  iam-pg -At -c 'SELECT username FROM idm_identity'   # psql's -A -t output, byte for byte
  iam-pg -U czechidm --write -v ON_ERROR_STOP=1 -f fix.sql   # BEGIN; ...; COMMIT; inside
  echo 'SELECT version()' | iam-pg

Interactive mode:
  On a terminal, without -c or -f, iam-pg opens a prompt like psql's: line
  editing, history in ~/.iam_pg_history ($IAM_PG_HISTORY), statements ended
  by ';' over as many lines as needed, and \\q, \\x, \\timing, \\dt, \\d TABLE,
  \\conninfo, \\?. A read session ends each statement's transaction at
  once. A --write session keeps one transaction open until you type COMMIT
  or ROLLBACK (the prompt shows WRITE, and * while changes are pending);
  leaving with changes pending asks whether to commit or roll back.

Scripts (as psql 15):
  -c and -f run in the order given, then the session ends; without them
  (and not at a terminal) standard input is read. A -c with SQL is one
  query: its statements run in one transaction, the first error ends it; a
  -c starting with \\ runs one backslash command. Files and standard input
  take psql's backslash commands (\\set, :var, \\if, \\gset, \\i, \\o,
  \\g, \\copy, \\echo, \\timing, \\watch, ...). AUTOCOMMIT is on: outside
  BEGIN ... COMMIT each statement commits on its own; BEGIN, COMMIT,
  ROLLBACK, SAVEPOINT, RELEASE and ROLLBACK TO become the broker's own
  transaction control; a transaction left open at the end is rolled back.
  -1 runs everything in one transaction. -v ON_ERROR_STOP=1 stops a script
  at its first error (exit status 3). The start-up file $IAM_PGRC, else
  ~/.iampgrc, is read first unless -X.

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
  0 success (also when statements of a script failed without
  ON_ERROR_STOP, as psql), 1 a -c failed or a file is missing, 2 usage
  error, 3 a script stopped by ON_ERROR_STOP or the session denied by the
  broker's policy, 4 broker or appliance unavailable (no socket,
  unavailable, not_found, secret, busy, audit_unavailable) or the session
  lost.

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

    /// Open a read-write session (the policy must grant it). Scripts
    /// commit each statement outside BEGIN ... COMMIT (psql's AUTOCOMMIT);
    /// at the prompt, changes wait for COMMIT.
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

    /// Run one command string: SQL (its statements in one transaction,
    /// as psql sends it) or one backslash command (repeatable, and mixed
    /// with -f: run in the order given).
    #[arg(short = 'c', long = "command", value_name = "COMMAND")]
    pub commands: Vec<String>,

    /// Run the commands of FILE, psql's way ("-" for standard input;
    /// repeatable).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Vec<PathBuf>,

    /// Output format: table is psql's (its options below apply); json
    /// and csv are iam-pg's own, streamed (csv tells NULL from '' by
    /// quoting; --csv is psql's CSV).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Expanded display: one block per row, a line per column (like
    /// psql's -x and \x).
    #[arg(short = 'x', long)]
    pub expanded: bool,

    /// Unaligned output, fields separated by | (-F), like psql's -A.
    #[arg(short = 'A', long = "no-align", help_heading = "psql output options")]
    pub no_align: bool,

    /// Rows only: no header, no row count, no title (psql's -t).
    #[arg(
        short = 't',
        long = "tuples-only",
        help_heading = "psql output options"
    )]
    pub tuples_only: bool,

    /// Field separator of unaligned output [default: |].
    #[arg(
        short = 'F',
        long = "field-separator",
        value_name = "SEP",
        allow_hyphen_values = true,
        help_heading = "psql output options"
    )]
    pub field_separator: Option<String>,

    /// Record separator of unaligned output [default: newline].
    #[arg(
        short = 'R',
        long = "record-separator",
        value_name = "SEP",
        allow_hyphen_values = true,
        help_heading = "psql output options"
    )]
    pub record_separator: Option<String>,

    /// Separate fields of unaligned output by a zero byte.
    #[arg(
        short = 'z',
        long = "field-separator-zero",
        help_heading = "psql output options"
    )]
    pub field_separator_zero: bool,

    /// Separate records of unaligned output by a zero byte.
    #[arg(
        short = '0',
        long = "record-separator-zero",
        help_heading = "psql output options"
    )]
    pub record_separator_zero: bool,

    /// psql's CSV output (psql --csv): header line, fields quoted only
    /// when needed, NULL and '' both empty.
    #[arg(long, conflicts_with = "format", help_heading = "psql output options")]
    pub csv: bool,

    /// Set a printing option like psql's \pset NAME VALUE (repeatable):
    /// border, columns, csv_fieldsep, expanded, fieldsep, fieldsep_zero,
    /// footer, format, linestyle, null, numericlocale, pager,
    /// pager_min_lines, recordsep, recordsep_zero, title, tuples_only.
    #[arg(
        short = 'P',
        long = "pset",
        value_name = "NAME[=VALUE]",
        help_heading = "psql output options"
    )]
    pub pset: Vec<String>,

    /// Write query results to FILE instead of standard output.
    #[arg(
        short = 'o',
        long = "output",
        value_name = "FILE",
        help_heading = "psql output options"
    )]
    pub output: Option<PathBuf>,

    /// Run quietly: no command tags (INSERT 0 1, CREATE TABLE), no
    /// informational messages.
    #[arg(short = 'q', long, help_heading = "psql output options")]
    pub quiet: bool,

    /// The broker's socket [default: $IAM_PGBROKER_SOCKET, else
    /// /run/iam-pgbroker/pgbroker.sock].
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Set psql variable NAME to VALUE (NAME alone unsets it).
    #[arg(
        short = 'v',
        long = "set",
        visible_alias = "variable",
        value_name = "NAME=VALUE"
    )]
    pub variables: Vec<String>,

    /// Run all -c and -f in one transaction: committed if all succeed,
    /// else rolled back.
    #[arg(short = '1', long = "single-transaction")]
    pub single_transaction: bool,

    /// Do not read the start-up file ($IAM_PGRC, else ~/.iampgrc).
    #[arg(short = 'X', long = "no-psqlrc")]
    pub no_psqlrc: bool,

    /// Echo every command sent to the broker.
    #[arg(short = 'e', long = "echo-queries")]
    pub echo_queries: bool,

    /// Echo every line read from the input.
    #[arg(short = 'a', long = "echo-all")]
    pub echo_all: bool,

    /// Echo commands that fail.
    #[arg(short = 'b', long = "echo-errors")]
    pub echo_errors: bool,

    /// Echo the catalog queries of backslash commands.
    #[arg(short = 'E', long = "echo-hidden")]
    pub echo_hidden: bool,

    /// No line editing at the prompt (accepted for psql compatibility).
    #[arg(short = 'n', long = "no-readline")]
    pub no_readline: bool,

    /// The -c and -f options in the order given (filled by
    /// [`Args::parse_all`]).
    #[arg(skip)]
    pub actions: Vec<Action>,
}

/// One -c or -f, in command-line order (psql 15 runs them in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Command(String),
    File(PathBuf),
}

impl Args {
    /// Parses the process's arguments (exiting on a usage error, status
    /// 2) and records the order of -c and -f.
    pub fn parse_all() -> Args {
        Self::parse_all_from(std::env::args_os()).unwrap_or_else(|e| e.exit())
    }

    /// [`Args::parse_all`] over given arguments.
    pub fn parse_all_from<I, T>(args: I) -> Result<Args, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Args::command().try_get_matches_from(args)?;
        let mut parsed = Args::from_arg_matches(&matches)?;
        let mut ordered: Vec<(usize, Action)> = Vec::new();
        if let Some(idx) = matches.indices_of("commands") {
            ordered.extend(
                idx.zip(&parsed.commands)
                    .map(|(i, c)| (i, Action::Command(c.clone()))),
            );
        }
        if let Some(idx) = matches.indices_of("file") {
            ordered.extend(
                idx.zip(&parsed.file)
                    .map(|(i, f)| (i, Action::File(f.clone()))),
            );
        }
        ordered.sort_by_key(|(i, _)| *i);
        parsed.actions = ordered.into_iter().map(|(_, a)| a).collect();
        Ok(parsed)
    }
}

impl Args {
    /// The printing options the command line sets, in psql's order of
    /// effect: the flags (-x, -A, --csv, -t, -F, -z, -R, -0), then each
    /// -P in turn. An error names the -P that psql would refuse.
    pub fn print_opt(&self) -> Result<PrintOpt, String> {
        let mut opt = PrintOpt::default();
        if self.expanded {
            opt.expanded = Expanded::On;
        }
        if self.no_align {
            opt.format = PrintFormat::Unaligned;
        }
        if self.csv {
            opt.format = PrintFormat::Csv;
        }
        opt.tuples_only = self.tuples_only;
        if let Some(sep) = &self.field_separator {
            opt.field_sep = Separator {
                text: sep.clone(),
                zero: false,
            };
        }
        opt.field_sep.zero |= self.field_separator_zero;
        if let Some(sep) = &self.record_separator {
            opt.record_sep = Separator {
                text: sep.clone(),
                zero: false,
            };
        }
        opt.record_sep.zero |= self.record_separator_zero;
        for setting in &self.pset {
            let (name, value) = match setting.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (setting.as_str(), None),
            };
            opt.pset(name, value)
                .map_err(|e| format!("could not set printing parameter \"{setting}\": {e}"))?;
        }
        Ok(opt)
    }
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
        assert_eq!(a.file, [PathBuf::from("-")]);
        assert_eq!((a.db.as_str(), a.user.as_str()), ("czechidm", "postgres"));
        assert_eq!(a.format, Format::Table);
    }

    #[test]
    fn psql_output_options() {
        let a = Args::try_parse_from([
            "iam-pg",
            "-A",
            "-t",
            "-F",
            ";",
            "-R",
            "#",
            "-x",
            "-P",
            "null=(null)",
            "-P",
            "border=2",
            "-P",
            "footer",
            "-o",
            "out.txt",
            "-q",
            "-c",
            "SELECT 1",
        ])
        .unwrap();
        let opt = a.print_opt().unwrap();
        assert_eq!(opt.format, PrintFormat::Unaligned);
        assert!(opt.tuples_only && !opt.footer);
        assert_eq!(opt.expanded, Expanded::On);
        assert_eq!(
            (opt.field_sep.text.as_str(), opt.record_sep.text.as_str()),
            (";", "#")
        );
        assert_eq!((opt.null.as_str(), opt.border), ("(null)", 2));
        assert_eq!(a.output, Some(PathBuf::from("out.txt")));
        assert!(a.quiet);

        let a = Args::try_parse_from(["iam-pg", "-z", "-0", "--csv", "-c", "x"]).unwrap();
        let opt = a.print_opt().unwrap();
        assert!(opt.field_sep.zero && opt.record_sep.zero);
        assert_eq!(opt.format, PrintFormat::Csv);

        let a = Args::try_parse_from(["iam-pg", "-P", "format=html", "-c", "x"]).unwrap();
        assert!(a.print_opt().unwrap_err().contains("format=html"));
        let a = Args::try_parse_from(["iam-pg", "-P", "bogus", "-c", "x"]).unwrap();
        assert_eq!(
            a.print_opt().unwrap_err(),
            "could not set printing parameter \"bogus\": \\pset: unknown option: bogus"
        );
        assert!(Args::try_parse_from(["iam-pg", "--csv", "--format", "json"]).is_err());
    }

    #[test]
    fn commands_and_files_keep_their_order() {
        let a = Args::parse_all_from([
            "iam-pg",
            "-f",
            "a.sql",
            "-c",
            "SELECT 1",
            "-v",
            "x=1",
            "-1Xq",
            "-f",
            "b.sql",
            "-c",
            "\\echo hi",
        ])
        .unwrap();
        assert_eq!(
            a.actions,
            [
                Action::File("a.sql".into()),
                Action::Command("SELECT 1".into()),
                Action::File("b.sql".into()),
                Action::Command("\\echo hi".into()),
            ]
        );
        assert_eq!(a.variables, ["x=1"]);
        assert!(a.single_transaction && a.no_psqlrc && a.quiet);
    }

    #[test]
    fn usage_errors_exit_2() {
        let err = Args::try_parse_from(["iam-pg", "--format", "xml"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
