//! The input lexer, after psql's `psqlscan.l`: it copies SQL text into the
//! query buffer line by line, remembers across lines whether it is inside a
//! string, quoted identifier, dollar quote, comment or parentheses, and
//! stops at a `;` that ends a statement or at a backslash that starts a
//! meta-command. Outside quotes it substitutes psql variables: `:name`,
//! `:'name'` (as a literal), `:"name"` (as an identifier) and `:{?name}`
//! (`TRUE` or `FALSE`); unknown names are left as written.
//!
//! Quoting follows PostgreSQL with `standard_conforming_strings = on`:
//! backslashes escape only in `E'…'`. As in psql, whitespace and `--`
//! comments before a statement's first token are not copied, and `\;` and
//! `\:` put a literal `;` or `:` into the buffer. Not done: SQL-standard
//! function bodies (`BEGIN ATOMIC … END`, where psql 15 counts
//! `BEGIN`/`END`) end at their first `;`; send such a definition with
//! `-c` or end the inner statements with `\;`.

use super::vars::{quote_ident, quote_literal, valid_name, Vars};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    Normal,
    /// `'…'`; `true` for `E'…'`, where a backslash escapes.
    Quote(bool),
    /// `"…"`.
    Ident,
    /// `$tag$…$tag$`, holding the whole delimiter.
    Dollar(String),
    /// `/* … */`, nested to this depth.
    Comment(u32),
}

/// Why [`Lexer::scan`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// A `;` outside quotes and parentheses: the buffer holds a complete
    /// statement (with its `;`).
    Semicolon,
    /// A backslash outside quotes: a meta-command starts just after it.
    Backslash,
    /// The end of the line.
    Eol,
}

/// The lexer's state between lines.
#[derive(Debug, Clone)]
pub struct Lexer {
    mode: Mode,
    paren: u32,
}

impl Default for Lexer {
    fn default() -> Self {
        Self::new()
    }
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$' || !c.is_ascii()
}

fn is_var_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// Bytes that need a look in normal mode; all others are copied in runs.
fn is_special(b: u8) -> bool {
    matches!(
        b,
        b' ' | b'\t'
            | b'\n'
            | b'\r'
            | b'\x0c'
            | b'-'
            | b'/'
            | b'\''
            | b'"'
            | b'$'
            | b'('
            | b')'
            | b';'
            | b'\\'
            | b':'
    )
}

/// The length of the `$tag$` at the start of `s`, if one starts there.
fn dollar_tag_len(s: &[u8]) -> Option<usize> {
    if s.get(1) == Some(&b'$') {
        return Some(2);
    }
    let first = *s.get(1)?;
    if !(first.is_ascii_alphabetic() || first == b'_' || first >= 0x80) {
        return None;
    }
    let mut i = 2;
    while s
        .get(i)
        .is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80)
    {
        i += 1;
    }
    (s.get(i) == Some(&b'$')).then_some(i + 1)
}

/// A variable reference at the start of `s` (which begins with `:`):
/// its length and its substitution, when the variable is set.
/// `None` when `s` is no reference or names an unset variable.
pub fn variable_at(s: &str, vars: &Vars) -> Option<(usize, String)> {
    let b = s.as_bytes();
    match b.get(1)? {
        q @ (b'\'' | b'"') => {
            let end = s[2..].find(*q as char)? + 2;
            let name = &s[2..end];
            if !valid_name(name) {
                return None;
            }
            let value = vars.get(name)?;
            let text = if *q == b'\'' {
                quote_literal(value)
            } else {
                quote_ident(value)
            };
            Some((end + 1, text))
        }
        b'{' if b.get(2) == Some(&b'?') => {
            let end = s[3..].find('}')? + 3;
            let name = &s[3..end];
            if !valid_name(name) {
                return None;
            }
            let known = if vars.get(name).is_some() {
                "TRUE"
            } else {
                "FALSE"
            };
            Some((end + 1, known.to_owned()))
        }
        c if is_var_byte(*c) => {
            let mut end = 1;
            while b.get(end).copied().is_some_and(is_var_byte) {
                end += 1;
            }
            // Non-ASCII bytes are all taken, so `end` is a boundary.
            let value = vars.get(&s[1..end])?;
            Some((end, value.to_owned()))
        }
        _ => None,
    }
}

impl Lexer {
    pub fn new() -> Lexer {
        Lexer {
            mode: Mode::Normal,
            paren: 0,
        }
    }

    /// Forgets quotes and parentheses (after `\r`, or a buffer sent with
    /// `\g`).
    pub fn reset(&mut self) {
        *self = Lexer::new();
    }

    /// Whether a string, identifier, dollar quote or comment is open: an
    /// empty line then belongs to it.
    pub fn in_quote(&self) -> bool {
        self.mode != Mode::Normal
    }

    /// What psql's `%R` shows: `=` ready, `-` a statement continues, `'`
    /// `"` `$` in a quote, `*` in a comment, `(` in parentheses.
    #[allow(dead_code)] // through Engine::prompt_char, for the prompt
    pub fn prompt_char(&self, buffer_empty: bool) -> char {
        match &self.mode {
            Mode::Quote(_) => '\'',
            Mode::Ident => '"',
            Mode::Dollar(_) => '$',
            Mode::Comment(_) => '*',
            Mode::Normal if self.paren > 0 => '(',
            Mode::Normal if !buffer_empty => '-',
            Mode::Normal => '=',
        }
    }

    /// Copies `line[*pos..]` into `buf` until a statement ends, a
    /// meta-command starts, or the line ends; `*pos` is left just past
    /// what was consumed (past the `;`, or past the backslash).
    /// Variables are substituted when `vars` is given (psql does not in
    /// the skipped branch of an `\if`).
    pub fn scan(
        &mut self,
        line: &str,
        pos: &mut usize,
        buf: &mut String,
        vars: Option<&Vars>,
    ) -> Scan {
        let s = line.as_bytes();
        let mut i = *pos;
        while i < s.len() {
            match &mut self.mode {
                Mode::Normal => {}
                Mode::Quote(escapes) => {
                    let escapes = *escapes;
                    let mut j = i;
                    loop {
                        match s.get(j) {
                            None => {
                                buf.push_str(&line[i..]);
                                i = s.len();
                                break;
                            }
                            Some(b'\\') if escapes => j += 2,
                            Some(b'\'') if s.get(j + 1) == Some(&b'\'') => j += 2,
                            Some(b'\'') => {
                                buf.push_str(&line[i..=j]);
                                i = j + 1;
                                self.mode = Mode::Normal;
                                break;
                            }
                            Some(_) => j += 1,
                        }
                    }
                    // An escape at the very end may step past it.
                    i = i.min(s.len());
                    continue;
                }
                Mode::Ident => {
                    let mut j = i;
                    loop {
                        match s.get(j) {
                            None => {
                                buf.push_str(&line[i..]);
                                i = s.len();
                                break;
                            }
                            Some(b'"') if s.get(j + 1) == Some(&b'"') => j += 2,
                            Some(b'"') => {
                                buf.push_str(&line[i..=j]);
                                i = j + 1;
                                self.mode = Mode::Normal;
                                break;
                            }
                            Some(_) => j += 1,
                        }
                    }
                    continue;
                }
                Mode::Dollar(tag) => {
                    match line[i..].find(tag.as_str()) {
                        Some(at) => {
                            let end = i + at + tag.len();
                            buf.push_str(&line[i..end]);
                            i = end;
                            self.mode = Mode::Normal;
                        }
                        None => {
                            buf.push_str(&line[i..]);
                            i = s.len();
                        }
                    }
                    continue;
                }
                Mode::Comment(depth) => {
                    if s[i..].starts_with(b"/*") {
                        *depth += 1;
                        buf.push_str("/*");
                        i += 2;
                    } else if s[i..].starts_with(b"*/") {
                        *depth -= 1;
                        buf.push_str("*/");
                        i += 2;
                        if *depth == 0 {
                            self.mode = Mode::Normal;
                        }
                    } else {
                        let c = line[i..].chars().next().unwrap_or(' ');
                        buf.push(c);
                        i += c.len_utf8();
                    }
                    continue;
                }
            }

            // Normal mode.
            let b = s[i];
            if !is_special(b) {
                let mut j = i + 1;
                while j < s.len() && !is_special(s[j]) {
                    j += 1;
                }
                buf.push_str(&line[i..j]);
                i = j;
                continue;
            }
            let next = s.get(i + 1).copied();
            match b {
                b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => {
                    // Whitespace before the first token is not kept.
                    if !buf.is_empty() {
                        buf.push(b as char);
                    }
                    i += 1;
                }
                b'-' if next == Some(b'-') => {
                    // To the end of the line (a `-c` string may hold
                    // several lines).
                    let end = line[i..].find('\n').map_or(s.len(), |n| i + n);
                    if !buf.is_empty() {
                        buf.push_str(&line[i..end]);
                    }
                    i = end;
                }
                b'/' if next == Some(b'*') => {
                    self.mode = Mode::Comment(1);
                    buf.push_str("/*");
                    i += 2;
                }
                b'\'' => {
                    let mut chars = buf.chars().rev();
                    let e_prefix = matches!(chars.next(), Some('E' | 'e'))
                        && !chars.next().is_some_and(is_ident_char);
                    self.mode = Mode::Quote(e_prefix);
                    buf.push('\'');
                    i += 1;
                }
                b'"' => {
                    self.mode = Mode::Ident;
                    buf.push('"');
                    i += 1;
                }
                b'$' => {
                    let after_ident = buf.chars().next_back().is_some_and(is_ident_char);
                    match dollar_tag_len(&s[i..]).filter(|_| !after_ident) {
                        Some(len) => {
                            let tag = line[i..i + len].to_owned();
                            buf.push_str(&tag);
                            self.mode = Mode::Dollar(tag);
                            i += len;
                        }
                        None => {
                            buf.push('$');
                            i += 1;
                        }
                    }
                }
                b'(' => {
                    self.paren += 1;
                    buf.push('(');
                    i += 1;
                }
                b')' => {
                    self.paren = self.paren.saturating_sub(1);
                    buf.push(')');
                    i += 1;
                }
                b';' => {
                    buf.push(';');
                    i += 1;
                    if self.paren == 0 {
                        *pos = i;
                        return Scan::Semicolon;
                    }
                }
                b'\\' if matches!(next, Some(b';' | b':')) => {
                    buf.push(next.unwrap_or(b';') as char);
                    i += 2;
                }
                b'\\' => {
                    *pos = i + 1;
                    return Scan::Backslash;
                }
                b':' if next == Some(b':') => {
                    buf.push_str("::");
                    i += 2;
                }
                b':' => match vars.and_then(|v| variable_at(&line[i..], v)) {
                    Some((len, text)) => {
                        buf.push_str(&text);
                        i += len;
                    }
                    None => {
                        buf.push(':');
                        i += 1;
                    }
                },
                _ => {
                    buf.push(b as char);
                    i += 1;
                }
            }
        }
        *pos = s.len();
        Scan::Eol
    }
}

/// Whether `sql` has anything but whitespace, comments and semicolons
/// (psql sends such a buffer and PostgreSQL answers with nothing).
pub fn is_blank(sql: &str) -> bool {
    let stripped: String = {
        let mut out = String::new();
        let mut depth = 0u32;
        let b = sql.as_bytes();
        let mut i = 0;
        let mut quote: Option<u8> = None;
        while i < b.len() {
            if let Some(q) = quote {
                if b[i] == q {
                    quote = None;
                }
                out.push('x');
                i += 1;
                continue;
            }
            if depth > 0 {
                if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                } else if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else {
                    i += 1;
                }
                continue;
            }
            if b[i..].starts_with(b"/*") {
                depth += 1;
                i += 2;
            } else if b[i..].starts_with(b"--") {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            } else {
                if b[i] == b'\'' || b[i] == b'"' {
                    quote = Some(b[i]);
                }
                out.push(if b[i] < 0x80 { b[i] as char } else { 'x' });
                i += 1;
            }
        }
        out
    };
    stripped.chars().all(|c| c.is_whitespace() || c == ';')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds lines as the engine does and returns the statements and the
    /// backslash positions seen.
    fn run(lines: &[&str], vars: &Vars) -> (Vec<String>, Vec<String>, String) {
        let mut lexer = Lexer::new();
        let mut buf = String::new();
        let mut stmts = Vec::new();
        let mut cmds = Vec::new();
        for line in lines {
            if !buf.is_empty() {
                buf.push('\n');
            }
            let mut pos = 0;
            loop {
                match lexer.scan(line, &mut pos, &mut buf, Some(vars)) {
                    Scan::Semicolon => stmts.push(std::mem::take(&mut buf)),
                    Scan::Backslash => {
                        // The rest of the line is the command here.
                        cmds.push(line[pos..].to_owned());
                        break;
                    }
                    Scan::Eol => break,
                }
            }
        }
        (stmts, cmds, buf)
    }

    fn stmts(lines: &[&str]) -> Vec<String> {
        run(lines, &Vars::new()).0
    }

    #[test]
    fn statements_end_at_semicolons() {
        assert_eq!(
            stmts(&["SELECT 1; SELECT 2;", "  SELECT", "3;"]),
            ["SELECT 1;", "SELECT 2;", "SELECT\n3;"]
        );
        let (s, _, rest) = run(&["SELECT 1; SELECT"], &Vars::new());
        assert_eq!((s, rest.as_str()), (vec!["SELECT 1;".to_owned()], "SELECT"));
    }

    #[test]
    fn leading_whitespace_and_line_comments_are_dropped() {
        assert_eq!(
            stmts(&["-- a comment; here", "   SELECT 1 -- trailing; too", ";"]),
            ["SELECT 1 -- trailing; too\n;"]
        );
        // A block comment is kept, as psql does.
        assert_eq!(stmts(&["/* c; */ SELECT 1;"]), ["/* c; */ SELECT 1;"]);
    }

    #[test]
    fn quotes_hide_semicolons_across_lines() {
        assert_eq!(
            stmts(&["SELECT 'a;", "b', \"x;\"\"y\";"]),
            ["SELECT 'a;\nb', \"x;\"\"y\";"]
        );
        assert_eq!(
            stmts(&[r"SELECT E'it\'s;', 'C:\'; SELECT 2;"]),
            [r"SELECT E'it\'s;', 'C:\';", "SELECT 2;"]
        );
        assert_eq!(
            stmts(&["CREATE FUNCTION f() RETURNS int AS $b$", "BEGIN RETURN 1; END;", "$b$ LANGUAGE plpgsql;"]),
            ["CREATE FUNCTION f() RETURNS int AS $b$\nBEGIN RETURN 1; END;\n$b$ LANGUAGE plpgsql;"]
        );
        assert_eq!(
            stmts(&["SELECT a$b; SELECT $1;"]),
            ["SELECT a$b;", "SELECT $1;"]
        );
        assert_eq!(
            stmts(&["SELECT /* a /* b; */ c; */ 1;"]),
            ["SELECT /* a /* b; */ c; */ 1;"]
        );
        assert_eq!(
            stmts(&["CREATE RULE r AS ON INSERT TO t DO (SELECT 1; SELECT 2);"]).len(),
            1
        );
    }

    #[test]
    fn backslashes_start_commands_outside_quotes() {
        let (s, c, rest) = run(&["SELECT 1 \\g", "SELECT '\\x' \\gset"], &Vars::new());
        assert!(s.is_empty());
        assert_eq!(c, ["g", "gset"]);
        assert_eq!(rest, "SELECT 1 \nSELECT '\\x' ");
        assert_eq!(stmts(&["SELECT 1 \\; SELECT 2;"]), ["SELECT 1 ; SELECT 2;"]);
    }

    #[test]
    fn variables_are_substituted_outside_quotes() {
        let mut v = Vars::new();
        v.set("t", "idm_identity").unwrap();
        v.set("name", "O'Brien").unwrap();
        let (s, _, _) = run(
            &["SELECT :name, :'name', :\"t\", ':t', :unknown, 1::int, :{?t}, :{?nope};"],
            &v,
        );
        assert_eq!(
            s,
            ["SELECT O'Brien, 'O''Brien', \"idm_identity\", ':t', :unknown, 1::int, TRUE, FALSE;"]
        );
    }

    #[test]
    fn prompt_state() {
        let mut lexer = Lexer::new();
        let mut buf = String::new();
        let mut pos = 0;
        lexer.scan("SELECT (1, '", &mut pos, &mut buf, None);
        assert_eq!(lexer.prompt_char(false), '\'');
        assert!(lexer.in_quote());
        pos = 0;
        lexer.scan("x'", &mut pos, &mut buf, None);
        assert_eq!(lexer.prompt_char(false), '(');
        pos = 0;
        lexer.scan(") /* open", &mut pos, &mut buf, None);
        assert_eq!(lexer.prompt_char(false), '*');
    }

    #[test]
    fn blank_statements() {
        assert!(is_blank(";"));
        assert!(is_blank("/* only a comment */ ;"));
        assert!(is_blank("-- x\n;"));
        assert!(!is_blank("SELECT 1;"));
        assert!(!is_blank("'/*'"));
    }
}
