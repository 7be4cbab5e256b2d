//! The prompt's backslash commands (`\q`, `\x`, `\d`, …): parsing and the
//! help text. What they do is in `interactive.rs` and `describe.rs`.

/// One backslash command, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaCommand {
    /// `\q`: leave (asking about an open write transaction).
    Quit,
    /// `\x [on|off]`: expanded display; `None` toggles.
    Expanded(Option<bool>),
    /// `\timing [on|off]`: print each statement's time; `None` toggles.
    Timing(Option<bool>),
    /// `\d` without a name: tables, views, sequences…, optionally matching
    /// a pattern (`\d idm_*`).
    ListRelations(Option<String>),
    /// `\dt [PATTERN]`: tables only.
    ListTables(Option<String>),
    /// `\d NAME`: the columns (and indexes) of one table or view.
    Describe(String),
    /// `\conninfo`: the session as the broker granted it.
    ConnInfo,
    /// `\?`: this list.
    Help,
    /// A backslash command we do not know, or one used wrongly; the text
    /// says which.
    Invalid(String),
}

/// What `\?` prints.
pub const HELP: &str = "\
General
  \\q                 quit (asks whether to commit when changes are pending)
  \\?                 show this help

Informational
  \\d [PATTERN]       list tables, views and sequences
  \\d NAME            describe a table or view: columns, types, defaults, indexes
  \\dt [PATTERN]      list tables
  \\conninfo          the session: database, database user, mode, the rule
                     that granted it, and who the broker sees you as

Formatting
  \\x [on|off]        toggle expanded display (one line per column)
  \\timing [on|off]   toggle printing the time each statement takes

Transactions
  A read session ends each statement's transaction at once, like psql's
  autocommit. A --write session opens a transaction with its first
  statement and keeps it until you type COMMIT or ROLLBACK; the prompt
  shows * while it is open and ! after an error (then only ROLLBACK
  helps). BEGIN is not needed.

PATTERN may use * and ? as wildcards and SCHEMA.NAME; names are folded to
lower case unless written in double quotes, as in psql.
";

/// Parses a line that starts with a backslash.
pub fn parse(line: &str) -> MetaCommand {
    let line = line.trim();
    let body = line.strip_prefix('\\').unwrap_or(line);
    let mut words = body.split_whitespace();
    let command = words.next().unwrap_or("");
    let rest: Vec<&str> = words.collect();
    let one_arg = |make: fn(Option<String>) -> MetaCommand| match rest.as_slice() {
        [] => make(None),
        [arg] => make(Some((*arg).to_owned())),
        _ => MetaCommand::Invalid(format!("\\{command}: too many arguments")),
    };
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
        "d" | "d+" => match rest.as_slice() {
            [] => MetaCommand::ListRelations(None),
            [arg] if arg.contains(['*', '?']) => MetaCommand::ListRelations(Some((*arg).into())),
            [arg] => MetaCommand::Describe((*arg).to_owned()),
            _ => MetaCommand::Invalid(format!("\\{command}: too many arguments")),
        },
        "dt" | "dt+" => one_arg(MetaCommand::ListTables),
        "conninfo" if rest.is_empty() => MetaCommand::ConnInfo,
        "?" | "help" => MetaCommand::Help,
        _ => MetaCommand::Invalid(format!("invalid command {line}. Try \\? for help.")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_commands() {
        use MetaCommand::*;
        assert_eq!(parse("\\q"), Quit);
        assert_eq!(parse("  \\q  "), Quit);
        assert_eq!(parse("\\x"), Expanded(None));
        assert_eq!(parse("\\x on"), Expanded(Some(true)));
        assert_eq!(parse("\\x OFF"), Expanded(Some(false)));
        assert_eq!(parse("\\timing"), Timing(None));
        assert_eq!(parse("\\d"), ListRelations(None));
        assert_eq!(parse("\\d idm_*"), ListRelations(Some("idm_*".into())));
        assert_eq!(parse("\\d idm_identity"), Describe("idm_identity".into()));
        assert_eq!(
            parse("\\d public.idm_identity"),
            Describe("public.idm_identity".into())
        );
        assert_eq!(parse("\\dt"), ListTables(None));
        assert_eq!(parse("\\dt bridge*"), ListTables(Some("bridge*".into())));
        assert_eq!(parse("\\conninfo"), ConnInfo);
        assert_eq!(parse("\\?"), Help);
    }

    #[test]
    fn refuses_what_it_does_not_know() {
        assert!(matches!(parse("\\frob"), MetaCommand::Invalid(m) if m.contains("\\frob")));
        assert!(matches!(parse("\\x maybe"), MetaCommand::Invalid(_)));
        assert!(matches!(parse("\\d a b"), MetaCommand::Invalid(_)));
        assert!(matches!(parse("\\q now"), MetaCommand::Invalid(_)));
    }
}
