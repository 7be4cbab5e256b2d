//! Errors and notices printed as psql prints them: `ERROR:  message`, the
//! `LINE n:` excerpt with a caret under the error position (libpq's
//! `reportErrorPosition`: at most 60 columns around the position, `...`
//! where the line is cut), then `DETAIL:`, `HINT:`, `QUERY:`, `CONTEXT:`.

use super::vars::{ShowContext, Verbosity};
use iam_pgbroker_proto::{ErrorCode, ErrorInfo};

/// Columns of a query line shown around an error position.
const DISPLAY_SIZE: usize = 60;
/// How close to the cut end of the line the caret may come.
const MIN_RIGHT_CUT: usize = 10;

/// The `LINE n: …` and caret lines for a 1-based character position in
/// `query`, or nothing when the position is outside it.
pub fn error_position(query: &str, position: usize) -> String {
    let Some(loc) = position.checked_sub(1) else {
        return String::new();
    };
    let chars: Vec<char> = query
        .chars()
        .map(|c| if c == '\t' { ' ' } else { c })
        .collect();
    // The line holding `loc`: its number, first and end character.
    let mut line_no = 1;
    let mut begin = 0;
    let mut end = chars.len();
    for (n, &c) in chars.iter().enumerate() {
        if c == '\r' || c == '\n' {
            if n < loc {
                // "\r\n" counts once.
                if c == '\r' || n == 0 || chars[n - 1] != '\r' {
                    line_no += 1;
                }
                begin = n + 1;
            } else {
                end = n;
                break;
            }
        }
    }
    if loc > end {
        return String::new();
    }
    // One screen column per character: close enough for the scripts this
    // serves (wide East Asian characters would shift the caret).
    let (mut from, mut to) = (begin, end);
    let (mut cut_left, mut cut_right) = (false, false);
    if to - from > DISPLAY_SIZE {
        if from + DISPLAY_SIZE >= loc + MIN_RIGHT_CUT {
            to = from + DISPLAY_SIZE;
            cut_right = true;
        } else {
            if loc + MIN_RIGHT_CUT < to {
                to = loc + MIN_RIGHT_CUT;
                cut_right = true;
            }
            if to - from > DISPLAY_SIZE {
                from = to - DISPLAY_SIZE;
                cut_left = true;
            }
        }
    }
    let mut prefix = format!("LINE {line_no}: ");
    if cut_left {
        prefix.push_str("...");
    }
    let text: String = chars[from..to].iter().collect();
    let caret_at = prefix.chars().count() + (loc - from);
    format!(
        "{prefix}{text}{}\n{}^\n",
        if cut_right { "..." } else { "" },
        " ".repeat(caret_at)
    )
}

/// An error (or notice) as psql prints it, every line ending in `\n`.
/// `query` is the text the position counts in (and the offset, in
/// characters, of the statement sent within it).
pub fn format(
    info: &ErrorInfo,
    query: Option<(&str, usize)>,
    verbosity: Verbosity,
    show_context: ShowContext,
) -> String {
    let severity = info.severity.as_deref().unwrap_or("ERROR");
    let mut out = String::new();
    // The broker's own refusals carry its code, so that the operator can
    // look it up (docs/operations.md is indexed by it).
    let own = !matches!(info.code, ErrorCode::Database | ErrorCode::ReadOnly);
    let message = if own {
        format!("{} [{}]", info.message, info.code)
    } else {
        info.message.clone()
    };
    match (verbosity, &info.sqlstate) {
        (Verbosity::Sqlstate, Some(state)) => {
            out.push_str(&format!("{severity}:  {state}\n"));
            return out;
        }
        (Verbosity::Verbose, Some(state)) => {
            out.push_str(&format!("{severity}:  {state}: {message}\n"))
        }
        _ => out.push_str(&format!("{severity}:  {message}\n")),
    }
    if verbosity == Verbosity::Terse || verbosity == Verbosity::Sqlstate {
        return out;
    }
    if let (Some(pos), Some((text, offset))) = (info.position, query) {
        out.push_str(&error_position(text, pos as usize + offset));
    } else if let (Some(pos), Some(internal)) = (info.internal_position, &info.internal_query) {
        out.push_str(&error_position(internal, pos as usize));
    }
    if let Some(detail) = &info.detail {
        out.push_str(&format!("DETAIL:  {detail}\n"));
    }
    if let Some(hint) = &info.hint {
        out.push_str(&format!("HINT:  {hint}\n"));
    }
    if let Some(internal) = &info.internal_query {
        out.push_str(&format!("QUERY:  {internal}\n"));
    }
    let context = match show_context {
        ShowContext::Never => false,
        ShowContext::Errors => !matches!(severity, "NOTICE" | "WARNING" | "INFO" | "LOG" | "DEBUG"),
        ShowContext::Always => true,
    };
    if let (true, Some(ctx)) = (context, &info.context) {
        out.push_str(&format!("CONTEXT:  {ctx}\n"));
    }
    if verbosity == Verbosity::Verbose {
        for (label, value) in [
            ("SCHEMA NAME", &info.schema),
            ("TABLE NAME", &info.table),
            ("COLUMN NAME", &info.column),
            ("DATATYPE NAME", &info.datatype),
            ("CONSTRAINT NAME", &info.constraint),
        ] {
            if let Some(v) = value {
                out.push_str(&format!("{label}:  {v}\n"));
            }
        }
        if let (Some(routine), Some(file), Some(line)) = (&info.routine, &info.file, info.line) {
            out.push_str(&format!("LOCATION:  {routine}, {file}:{line}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caret_under_the_position() {
        assert_eq!(
            error_position("SELECT x FROM t;", 8),
            "LINE 1: SELECT x FROM t;\n               ^\n"
        );
        assert_eq!(
            error_position("SELECT 1,\n  nope\nFROM t;", 13),
            "LINE 2:   nope\n          ^\n"
        );
        assert_eq!(error_position("SELECT 1;", 50), "");
        assert_eq!(error_position("SELECT 1;", 0), "");
    }

    #[test]
    fn long_lines_are_cut_around_the_position() {
        let long = format!(
            "SELECT {} FROM nowhere WHERE {} true;",
            "a, ".repeat(40),
            "b AND ".repeat(10)
        );
        let loc = long.find("nowhere").unwrap() + 1;
        let shown = error_position(&long, loc);
        let first = shown.lines().next().unwrap();
        assert!(first.starts_with("LINE 1: ..."), "{shown}");
        assert!(first.ends_with("..."), "{shown}");
        let caret = shown.lines().nth(1).unwrap();
        let col = caret.len() - 1;
        assert_eq!(&first[col..col + 7], "nowhere");
        // Near the start: cut on the right only.
        let shown = error_position(&long, 3);
        assert!(shown.starts_with("LINE 1: SELECT a, a"), "{shown}");
        assert!(shown.lines().next().unwrap().ends_with("..."));
    }

    #[test]
    fn error_layout() {
        let mut info = ErrorInfo::new(ErrorCode::Database, "relation \"nope\" does not exist");
        info.sqlstate = Some("42P01".into());
        info.severity = Some("ERROR".into());
        info.position = Some(15);
        info.hint = Some("Look elsewhere.".into());
        assert_eq!(
            format(
                &info,
                Some(("SELECT 1 FROM nope;", 0)),
                Verbosity::Default,
                ShowContext::Errors
            ),
            "ERROR:  relation \"nope\" does not exist\nLINE 1: SELECT 1 FROM nope;\n                      ^\nHINT:  Look elsewhere.\n"
        );
        assert_eq!(
            format(&info, None, Verbosity::Terse, ShowContext::Errors),
            "ERROR:  relation \"nope\" does not exist\n"
        );
        let refused = ErrorInfo::new(ErrorCode::ForbiddenStatement, "DROP TABLE is not allowed");
        assert_eq!(
            format(&refused, None, Verbosity::Default, ShowContext::Errors),
            "ERROR:  DROP TABLE is not allowed [forbidden_statement]\n"
        );
    }
}
