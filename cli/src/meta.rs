//! The prompt's backslash commands (`\q`, `\x`, `\d`, `\e`, `\h`, …):
//! parsing and the `\?` text. What they do is in `interactive.rs`,
//! `describe.rs` and `sql_help.rs`.

use crate::describe;

/// One backslash command, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaCommand {
    /// `\q`: leave (asking about an open write transaction).
    Quit,
    /// `\x [on|off]`: expanded display; `None` toggles.
    Expanded(Option<bool>),
    /// `\timing [on|off]`: print each statement's time; `None` toggles.
    Timing(Option<bool>),
    /// One of psql's describe commands (`\d`, `\dt+`, `\l`, `\sf`, …):
    /// the command without the backslash and its arguments.
    Describe { cmd: String, args: Vec<String> },
    /// `\e [FILE]`: edit the query buffer (or a file) and run it.
    Edit(Option<String>),
    /// `\h [COMMAND]`: SQL syntax help.
    SqlHelp(Option<String>),
    /// `\conninfo`: the session as the broker granted it.
    ConnInfo,
    /// `\?`: this list.
    Help,
    /// A backslash command we do not know, or one used wrongly; the text
    /// says which.
    Invalid(String),
}

/// What `\?` prints: psql's layout, with only what iam-pg does.
pub const HELP: &str = "\
General
  \\q                     quit iam-pg (asks whether to commit when changes are pending)
  \\conninfo              display information about the session: database, database
                         user, mode, the rule that granted it, and who the broker sees you as

Help
  \\? [commands]          show help on backslash commands
  \\h [NAME]              help on syntax of SQL commands, * for all commands

Query Buffer
  \\e [FILE]              edit the query buffer (or file) with an external editor
                         ($PSQL_EDITOR, $EDITOR, $VISUAL, else vi), then run it

Informational
  (options: S = show system objects, + = additional detail)
  \\d[S+]                 list tables, views, and sequences
  \\d[S+]  NAME           describe table, view, sequence, or index
  \\df[+]  [PATTERN]      list functions
  \\di[S+] [PATTERN]      list indexes
  \\dm[S+] [PATTERN]      list materialized views
  \\dn[S+] [PATTERN]      list schemas
  \\dp     [PATTERN]      list table, view, and sequence access privileges
  \\ds[S+] [PATTERN]      list sequences
  \\dt[S+] [PATTERN]      list tables
  \\dT[S+] [PATTERN]      list data types
  \\du[S+] [PATTERN]      list roles
  \\dg[S+] [PATTERN]      list roles
  \\dv[S+] [PATTERN]      list views
  \\dx     [PATTERN]      list extensions
  \\l[+]   [PATTERN]      list databases
  \\sf     FUNCNAME       show a function's definition
  \\sv     VIEWNAME       show a view's definition
  \\z      [PATTERN]      same as \\dp

Formatting
  \\x [on|off]            toggle expanded output
  \\timing [on|off]       toggle timing of commands

Transactions
  A read session ends each statement's transaction at once, like psql's
  autocommit. A --write session opens a transaction with its first
  statement and keeps it until you type COMMIT or ROLLBACK; the prompt
  shows * while it is open and ! after an error (then only ROLLBACK
  helps). BEGIN is not needed.

Keys
  Tab completes SQL keywords, schemas, tables, columns, functions and
  backslash commands (from the catalog, read once per session and again
  after \\d commands). Ctrl-C while a statement runs cancels it on the
  server; at the prompt it clears the line. Ctrl-D leaves like \\q.

PATTERN may use * and ? as wildcards and SCHEMA.NAME; names are folded to
lower case unless written in double quotes, as in psql.
";

/// Splits a backslash command's arguments as psql does: at white space,
/// with single- and double-quoted parts kept together (double quotes stay,
/// as they matter in patterns; single quotes go).
pub fn split_args(text: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                in_word = true;
                current.push('"');
                for d in chars.by_ref() {
                    current.push(d);
                    if d == '"' {
                        break;
                    }
                }
            }
            '\'' => {
                in_word = true;
                while let Some(d) = chars.next() {
                    if d == '\'' {
                        if chars.peek() == Some(&'\'') {
                            chars.next();
                            current.push('\'');
                            continue;
                        }
                        break;
                    }
                    current.push(d);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    args.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                current.push(c);
            }
        }
    }
    if in_word {
        args.push(current);
    }
    args
}

/// Parses a line that starts with a backslash.
pub fn parse(line: &str) -> MetaCommand {
    let line = line.trim();
    let body = line.strip_prefix('\\').unwrap_or(line);
    let (command, rest_text) = body
        .split_once(char::is_whitespace)
        .map_or((body, ""), |(c, r)| (c, r.trim()));
    let rest = split_args(rest_text);
    let switch = |make: fn(Option<bool>) -> MetaCommand| match rest.as_slice() {
        [] => make(None),
        [v] if v.eq_ignore_ascii_case("on") => make(Some(true)),
        [v] if v.eq_ignore_ascii_case("off") => make(Some(false)),
        _ => MetaCommand::Invalid(format!("\\{command}: expected on or off")),
    };
    match command {
        "q" | "quit" if rest.is_empty() => MetaCommand::Quit,
        "x" => switch(MetaCommand::Expanded),
        "timing" => switch(MetaCommand::Timing),
        "conninfo" if rest.is_empty() => MetaCommand::ConnInfo,
        "?" => MetaCommand::Help,
        "h" | "help" => MetaCommand::SqlHelp((!rest_text.is_empty()).then(|| rest_text.to_owned())),
        "e" | "edit" => match rest.as_slice() {
            [] => MetaCommand::Edit(None),
            [file] => MetaCommand::Edit(Some(file.clone())),
            _ => MetaCommand::Invalid(format!("\\{command}: too many arguments")),
        },
        c if describe::is_describe(c) => MetaCommand::Describe {
            cmd: c.to_owned(),
            args: rest,
        },
        _ => MetaCommand::Invalid(format!("invalid command \\{command}\nTry \\? for help.")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn describe(cmd: &str, args: &[&str]) -> MetaCommand {
        MetaCommand::Describe {
            cmd: cmd.into(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    #[test]
    fn parses_the_commands() {
        use MetaCommand::*;
        assert_eq!(parse("\\q"), Quit);
        assert_eq!(parse("  \\q  "), Quit);
        assert_eq!(parse("\\x"), Expanded(None));
        assert_eq!(parse("\\x on"), Expanded(Some(true)));
        assert_eq!(parse("\\x OFF"), Expanded(Some(false)));
        assert_eq!(parse("\\timing"), Timing(None));
        assert_eq!(parse("\\d"), describe("d", &[]));
        assert_eq!(parse("\\d idm_*"), describe("d", &["idm_*"]));
        assert_eq!(
            parse("\\d+ public.idm_identity"),
            describe("d+", &["public.idm_identity"])
        );
        assert_eq!(parse("\\dtS+ bridge*"), describe("dtS+", &["bridge*"]));
        assert_eq!(parse("\\d \"My Table\""), describe("d", &["\"My Table\""]));
        assert_eq!(parse("\\l"), describe("l", &[]));
        assert_eq!(parse("\\sf f(int)"), describe("sf", &["f(int)"]));
        assert_eq!(parse("\\conninfo"), ConnInfo);
        assert_eq!(parse("\\?"), Help);
        assert_eq!(parse("\\h"), SqlHelp(None));
        assert_eq!(parse("\\h select"), SqlHelp(Some("select".into())));
        assert_eq!(
            parse("\\h ROLLBACK TO"),
            SqlHelp(Some("ROLLBACK TO".into()))
        );
        assert_eq!(parse("\\e"), Edit(None));
        assert_eq!(parse("\\e /tmp/q.sql"), Edit(Some("/tmp/q.sql".into())));
    }

    #[test]
    fn arguments_keep_quotes_as_psql() {
        assert_eq!(
            split_args("a  \"b c\" 'd e' 'it''s'"),
            vec!["a", "\"b c\"", "d e", "it's"]
        );
        assert!(split_args("   ").is_empty());
    }

    #[test]
    fn refuses_what_it_does_not_know() {
        assert!(matches!(parse("\\frob"), MetaCommand::Invalid(m) if m.contains("\\frob")));
        assert!(matches!(parse("\\x maybe"), MetaCommand::Invalid(_)));
        assert!(matches!(parse("\\q now"), MetaCommand::Invalid(_)));
        assert!(matches!(parse("\\dq"), MetaCommand::Invalid(_)));
    }
}
