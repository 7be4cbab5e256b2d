//! Splitting a script into statements, the way psql does: on `;` outside
//! string literals, quoted identifiers, comments, dollar quotes and
//! parentheses.
//!
//! The broker runs one statement per request, so a file or a `-c` with
//! several statements is split here. Quoting rules follow PostgreSQL's
//! lexer with `standard_conforming_strings = on` (the default since 9.1):
//!
//! - `'…'` with `''` for a quote; backslashes are ordinary characters,
//! - `E'…'` also treats `\'` and `\\` as escapes,
//! - `"…"` identifiers with `""` for a quote,
//! - `-- …` to the end of the line, `/* … */` nested,
//! - `$tag$ … $tag$` dollar quotes (the tag may be empty); a `$` inside an
//!   identifier (`a$b`) starts nothing, and `$1` is a parameter.
//!
//! Like psql, a `;` inside parentheses does not end a statement
//! (`CREATE RULE … DO (…; …)`). SQL-standard function bodies
//! (`BEGIN ATOMIC … END`) are not recognised; such a definition has to be
//! sent on its own with `-c`.
//!
//! An unterminated literal or comment runs to the end of the text, which is
//! then sent as one statement: PostgreSQL's own error names the problem
//! better than a guess here.

/// One statement of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The statement's text, trimmed, without the terminating `;`.
    pub sql: String,
    /// 1-based line of the text where the statement starts (its first
    /// token, or a comment right before it).
    pub line: usize,
    /// Whether it contains a `%s` or `$n` placeholder outside literals and
    /// comments, so that `-p` values go with it.
    pub has_placeholders: bool,
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

fn is_tag_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_tag_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// Position just past the closing quote of a string starting at `open`
/// (which holds `quote`), or the end of the text.
fn skip_quoted(s: &[u8], open: usize, quote: u8, backslash_escapes: bool) -> usize {
    let mut i = open + 1;
    while i < s.len() {
        match s[i] {
            b'\\' if backslash_escapes => i += 2,
            b if b == quote => {
                if s.get(i + 1) == Some(&quote) {
                    i += 2;
                } else {
                    return i + 1;
                }
            }
            _ => i += 1,
        }
    }
    s.len()
}

/// Position just past a (nested) block comment starting at `open`.
fn skip_block_comment(s: &[u8], open: usize) -> usize {
    let mut depth = 0usize;
    let mut i = open;
    while i < s.len() {
        if s[i..].starts_with(b"/*") {
            depth += 1;
            i += 2;
        } else if s[i..].starts_with(b"*/") {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    s.len()
}

/// The opening `$tag$` at `open`, if there is one there.
fn dollar_tag(s: &[u8], open: usize) -> Option<&[u8]> {
    let mut i = open + 1;
    if s.get(i) == Some(&b'$') {
        return Some(&s[open..=i]);
    }
    if !s.get(i).copied().is_some_and(is_tag_start) {
        return None;
    }
    while s.get(i).copied().is_some_and(is_tag_byte) {
        i += 1;
    }
    (s.get(i) == Some(&b'$')).then(|| &s[open..=i])
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Splits `text` into statements. Empty statements (only whitespace and
/// comments) are dropped.
pub fn split(text: &str) -> Vec<Statement> {
    scan(text).0
}

/// The statements of `text`, and the offset just past its last
/// terminating `;`.
fn scan(text: &str) -> (Vec<Statement>, Option<usize>) {
    let s = text.as_bytes();
    let mut last_terminator = None;
    let mut out = Vec::new();
    let mut start = 0; // where the current statement's text begins
    let mut first_content: Option<usize> = None;
    let mut placeholders = false;
    let mut depth = 0usize;
    let mut i = 0;

    // Lines are counted incrementally: statement starts only move forward.
    let mut counted_to = 0;
    let mut line = 1;
    let mut line_at = |pos: usize| {
        line += s[counted_to..pos].iter().filter(|&&b| b == b'\n').count();
        counted_to = pos;
        line
    };
    let mut push = |from: usize, to: usize, content: Option<usize>, ph: bool| {
        if let Some(pos) = content {
            // A comment right before the statement stays with it (the
            // audit shows it), but the reported line is its first token's.
            out.push(Statement {
                sql: text[from..to].trim().to_owned(),
                line: line_at(pos),
                has_placeholders: ph,
            });
        }
    };

    while i < s.len() {
        let token = i;
        let b = s[i];
        let next = s.get(i + 1).copied();
        let mut content = true;
        match b {
            b'\'' => {
                // E'…' (or e'…'): the E must start a token, not end a word.
                let e_prefix =
                    i > 0 && matches!(s[i - 1], b'E' | b'e') && (i < 2 || !is_ident_byte(s[i - 2]));
                i = skip_quoted(s, i, b'\'', e_prefix);
            }
            b'"' => i = skip_quoted(s, i, b'"', false),
            b'-' if next == Some(b'-') => {
                content = false;
                i = find(s, b"\n", i).unwrap_or(s.len());
            }
            b'/' if next == Some(b'*') => {
                content = false;
                i = skip_block_comment(s, i);
            }
            b'$' if i > 0 && is_ident_byte(s[i - 1]) => i += 1,
            b'$' if next.is_some_and(|c| c.is_ascii_digit()) => {
                placeholders = true;
                i += 2;
            }
            b'$' => match dollar_tag(s, i) {
                Some(tag) => {
                    let body = i + tag.len();
                    i = find(s, tag, body).map_or(s.len(), |end| end + tag.len());
                }
                None => i += 1,
            },
            b'%' if next == Some(b's') => {
                placeholders = true;
                i += 2;
            }
            // `%%` is a literal percent sign when there are parameters.
            b'%' if next == Some(b'%') => i += 2,
            b'(' => {
                depth += 1;
                i += 1;
            }
            b')' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b';' if depth == 0 => {
                push(start, i, first_content, placeholders);
                i += 1;
                last_terminator = Some(i);
                start = i;
                first_content = None;
                placeholders = false;
                continue;
            }
            b if b.is_ascii_whitespace() => {
                content = false;
                i += 1;
            }
            _ => i += 1,
        }
        if content && first_content.is_none() {
            first_content = Some(token);
        }
    }
    push(start, s.len(), first_content, placeholders);
    (out, last_terminator)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqls(text: &str) -> Vec<String> {
        split(text).into_iter().map(|s| s.sql).collect()
    }

    #[test]
    fn splits_on_semicolons() {
        assert_eq!(
            sqls("SELECT 1; SELECT 2;\nSELECT 3"),
            ["SELECT 1", "SELECT 2", "SELECT 3"]
        );
        assert_eq!(sqls("SELECT 1"), ["SELECT 1"]);
        assert_eq!(sqls("SELECT 1;"), ["SELECT 1"]);
    }

    #[test]
    fn drops_empty_and_comment_only_statements() {
        assert!(sqls("").is_empty());
        assert!(sqls(" ;; \n ; -- nothing\n/* at all */").is_empty());
        assert_eq!(sqls("SELECT 1;\n-- trailing comment\n"), ["SELECT 1"]);
    }

    #[test]
    fn keeps_a_leading_comment_with_its_statement() {
        let stmts = split("SELECT 1;\n\n-- disable the leaver\nUPDATE t SET x = 1;");
        assert_eq!(stmts[1].sql, "-- disable the leaver\nUPDATE t SET x = 1");
        // The reported line is the statement's first token's.
        assert_eq!(stmts[1].line, 4);
        assert_eq!(stmts[0].line, 1);
    }

    #[test]
    fn semicolons_inside_literals_and_identifiers_do_not_split() {
        assert_eq!(
            sqls("SELECT 'a;b', 'it''s; fine'; SELECT \"odd;\"\"name\" FROM t"),
            [
                "SELECT 'a;b', 'it''s; fine'",
                "SELECT \"odd;\"\"name\" FROM t"
            ]
        );
    }

    #[test]
    fn backslash_escapes_only_in_e_strings() {
        // In a standard string a backslash is ordinary: the string ends at
        // the second quote.
        assert_eq!(
            sqls(r"SELECT 'C:\'; SELECT 2"),
            [r"SELECT 'C:\'", "SELECT 2"]
        );
        assert_eq!(
            sqls(r"SELECT E'it\'s; \\'; SELECT 2"),
            [r"SELECT E'it\'s; \\'", "SELECT 2"]
        );
        assert_eq!(
            sqls(r"SELECT e'\';' ; SELECT 2"),
            [r"SELECT e'\';'", "SELECT 2"]
        );
        // A word ending in E is not an E-string prefix.
        assert_eq!(
            sqls(r"SELECT 1 AS some'\'; SELECT 2"),
            [r"SELECT 1 AS some'\'", "SELECT 2"]
        );
    }

    #[test]
    fn comments_hide_semicolons_and_nest() {
        assert_eq!(
            sqls("SELECT 1 -- not here;\n, 2; SELECT /* a /* b; */ c; */ 3"),
            ["SELECT 1 -- not here;\n, 2", "SELECT /* a /* b; */ c; */ 3"]
        );
        // `-` alone and `/` alone are operators.
        assert_eq!(sqls("SELECT 4-1; SELECT 4/2"), ["SELECT 4-1", "SELECT 4/2"]);
    }

    #[test]
    fn dollar_quotes() {
        let text = "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;\n\
                    CREATE FUNCTION g() RETURNS int AS $body$ BEGIN RETURN 1; END; $body$ \
                    LANGUAGE plpgsql;\nSELECT 3";
        let stmts = sqls(text);
        assert_eq!(stmts.len(), 3, "{stmts:?}");
        assert!(stmts[1].ends_with("$body$ LANGUAGE plpgsql"));
        // A different tag inside does not close the quote.
        assert_eq!(
            sqls("SELECT $a$ x $b$; $b$ ; $a$; SELECT 2"),
            ["SELECT $a$ x $b$; $b$ ; $a$", "SELECT 2"]
        );
        // `$` inside an identifier starts nothing.
        assert_eq!(sqls("SELECT a$b; SELECT 2"), ["SELECT a$b", "SELECT 2"]);
    }

    #[test]
    fn parentheses_hold_semicolons() {
        assert_eq!(
            sqls("CREATE RULE r AS ON INSERT TO t DO ALSO (SELECT 1; SELECT 2); SELECT 3"),
            [
                "CREATE RULE r AS ON INSERT TO t DO ALSO (SELECT 1; SELECT 2)",
                "SELECT 3"
            ]
        );
    }

    #[test]
    fn unterminated_text_runs_to_the_end() {
        assert_eq!(
            sqls("SELECT 1; SELECT 'oops; SELECT 2"),
            ["SELECT 1", "SELECT 'oops; SELECT 2"]
        );
        assert_eq!(sqls("SELECT $$ x; y"), ["SELECT $$ x; y"]);
        assert_eq!(sqls("SELECT 1 /* x; y"), ["SELECT 1 /* x; y"]);
    }

    #[test]
    fn finds_placeholders_outside_literals() {
        let p = |t: &str| split(t)[0].has_placeholders;
        assert!(p("SELECT * FROM idm_identity WHERE username = %s"));
        assert!(p("SELECT $1::int"));
        assert!(p("SELECT f($2)"));
        assert!(!p("SELECT 1"));
        assert!(!p("SELECT 10 % 3"));
        assert!(!p("SELECT 10 %% 3"));
        assert!(!p("SELECT * FROM t WHERE name LIKE 'a%s'"));
        assert!(!p("SELECT \"%s\" FROM t"));
        assert!(!p("SELECT 1 -- %s"));
        assert!(!p("SELECT 1 /* $1 */"));
        assert!(!p("SELECT $$ $1 $$"));
        assert!(!p("SELECT a$1 FROM t"));
        let stmts = split("SELECT 1; SELECT %s; SELECT 3");
        let flags: Vec<bool> = stmts.iter().map(|s| s.has_placeholders).collect();
        assert_eq!(flags, [false, true, false]);
    }

    #[test]
    fn utf8_passes_through() {
        assert_eq!(
            sqls("SELECT 'Jiří; Dvořák'; SELECT \"Příjmení\" FROM t"),
            ["SELECT 'Jiří; Dvořák'", "SELECT \"Příjmení\" FROM t"]
        );
    }

    #[test]
    fn line_numbers() {
        let stmts = split("SELECT 1;\nSELECT\n'a\nb';\n\n\n  SELECT 3;");
        let lines: Vec<usize> = stmts.iter().map(|s| s.line).collect();
        assert_eq!(lines, [1, 2, 7]);
    }
}
