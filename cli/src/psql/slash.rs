//! Reading a meta-command and its arguments from the rest of a line, as
//! psql's `psqlscan_slash.l` does: the command name runs to whitespace or
//! the next backslash; arguments are separated by whitespace and end at the
//! end of the line, at the next unquoted backslash (another meta-command)
//! or at `\\` (back to SQL).
//!
//! In an argument, `'…'` is a string with `''` for a quote and C-like
//! escapes (`\n`, `\t`, octal, `\xHH`), `"…"` is kept with its quotes, and
//! `:name`, `:'name'`, `:"name"` are substituted as in SQL. Backquoted shell
//! commands are not run (kept as written).

use super::lexer::variable_at;
use super::vars::Vars;

/// A cursor over the rest of a line after a backslash.
pub struct SlashScanner<'a> {
    line: &'a str,
    pos: usize,
    /// `\\` ended the arguments: SQL continues after it.
    ended: bool,
}

impl<'a> SlashScanner<'a> {
    /// `pos` is just past the backslash.
    pub fn new(line: &'a str, pos: usize) -> SlashScanner<'a> {
        SlashScanner {
            line,
            pos,
            ended: false,
        }
    }

    /// Where scanning of the line resumes after the command.
    pub fn pos(&self) -> usize {
        self.pos
    }

    fn bytes(&self) -> &'a [u8] {
        self.line.as_bytes()
    }

    /// The command name (without the backslash). Empty for `\\` seen at
    /// the start of SQL, which psql treats as a no-op separator.
    pub fn command(&mut self) -> String {
        let b = self.bytes();
        let start = self.pos;
        if b.get(start) == Some(&b'\\') {
            self.pos += 1;
            return String::new();
        }
        let mut i = start;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'\\' {
            i += 1;
        }
        self.pos = i;
        self.line[start..i].to_owned()
    }

    fn skip_space(&mut self) {
        let b = self.bytes();
        while self.pos < b.len() && b[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    /// Whether the arguments are over (end of line, another backslash,
    /// `\\`); consumes a `\\`.
    fn at_end(&mut self) -> bool {
        if self.ended {
            return true;
        }
        self.skip_space();
        let b = self.bytes();
        match b.get(self.pos) {
            None => true,
            Some(b'\\') => {
                if b.get(self.pos + 1) == Some(&b'\\') {
                    self.pos += 2;
                    self.ended = true;
                }
                true
            }
            Some(_) => false,
        }
    }

    /// The next argument, psql's `OT_NORMAL`; variables are substituted
    /// when `vars` is given.
    pub fn arg(&mut self, vars: Option<&Vars>) -> Option<String> {
        if self.at_end() {
            return None;
        }
        let line = self.line;
        let b = self.bytes();
        let mut out = String::new();
        let mut i = self.pos;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'\\' {
            match b[i] {
                b'\'' => i = single_quoted(line, i + 1, &mut out),
                b'"' => {
                    let mut j = i + 1;
                    loop {
                        match b.get(j) {
                            None => break,
                            Some(b'"') if b.get(j + 1) == Some(&b'"') => j += 2,
                            Some(b'"') => {
                                j += 1;
                                break;
                            }
                            Some(_) => j += 1,
                        }
                    }
                    out.push_str(&line[i..j]);
                    i = j;
                }
                b':' => match vars.and_then(|v| variable_at(&line[i..], v)) {
                    Some((len, text)) => {
                        // psql pastes `:'x'` here without the E prefix's
                        // leading space.
                        out.push_str(text.strip_prefix(' ').unwrap_or(&text));
                        i += len;
                    }
                    None => {
                        out.push(':');
                        i += 1;
                    }
                },
                _ => {
                    let c = line[i..].chars().next().unwrap_or(' ');
                    out.push(c);
                    i += c.len_utf8();
                }
            }
        }
        self.pos = i;
        Some(out)
    }

    /// All remaining arguments.
    pub fn args(&mut self, vars: Option<&Vars>) -> Vec<String> {
        let mut all = Vec::new();
        while let Some(a) = self.arg(vars) {
            all.push(a);
        }
        all
    }

    /// The rest of the line as written (psql's `OT_WHOLE_LINE`, for `\!`
    /// and `\copy`), trimmed.
    pub fn rest_of_line(&mut self) -> String {
        let rest = self.line[self.pos..].trim().to_owned();
        self.pos = self.line.len();
        self.ended = true;
        rest
    }

    /// A file name or `|command` (psql's `OT_FILEPIPE`, for `\o`, `\g`).
    pub fn file_or_pipe(&mut self, vars: Option<&Vars>) -> Option<String> {
        if self.at_end() {
            return None;
        }
        if self.bytes().get(self.pos) == Some(&b'|') {
            return Some(self.rest_of_line());
        }
        self.arg(vars)
    }
}

/// Reads a single-quoted argument from `start` (just past the quote) into
/// `out`; returns the position after the closing quote.
fn single_quoted(line: &str, start: usize, out: &mut String) -> usize {
    let b = line.as_bytes();
    let mut i = start;
    while i < b.len() {
        match b[i] {
            b'\'' if b.get(i + 1) == Some(&b'\'') => {
                out.push('\'');
                i += 2;
            }
            b'\'' => return i + 1,
            b'\\' if i + 1 < b.len() => {
                i += 1;
                match b[i] {
                    b'n' => out.push('\n'),
                    b't' => out.push('\t'),
                    b'b' => out.push('\x08'),
                    b'r' => out.push('\r'),
                    b'f' => out.push('\x0c'),
                    b'0'..=b'7' => {
                        let mut v = 0u32;
                        let mut n = 0;
                        while n < 3 && i < b.len() && (b'0'..=b'7').contains(&b[i]) {
                            v = v * 8 + u32::from(b[i] - b'0');
                            i += 1;
                            n += 1;
                        }
                        out.push(char::from_u32(v).unwrap_or('?'));
                        continue;
                    }
                    b'x' => {
                        let mut v = 0u32;
                        let mut n = 0;
                        i += 1;
                        while n < 2 && i < b.len() && b[i].is_ascii_hexdigit() {
                            v = v * 16 + (b[i] as char).to_digit(16).unwrap_or(0);
                            i += 1;
                            n += 1;
                        }
                        out.push(char::from_u32(v).unwrap_or('?'));
                        continue;
                    }
                    _ => {
                        let c = line[i..].chars().next().unwrap_or(' ');
                        out.push(c);
                        i += c.len_utf8();
                        continue;
                    }
                }
                i += 1;
            }
            _ => {
                let c = line[i..].chars().next().unwrap_or(' ');
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(text: &str, vars: &Vars) -> (String, Vec<String>, usize) {
        let mut s = SlashScanner::new(text, 0);
        let cmd = s.command();
        let args = s.args(Some(vars));
        (cmd, args, s.pos())
    }

    #[test]
    fn command_and_arguments() {
        let v = Vars::new();
        let (cmd, args, _) = scan("echo hello  'big world' 'it''s' \"Q x\"", &v);
        assert_eq!(cmd, "echo");
        assert_eq!(args, ["hello", "big world", "it's", "\"Q x\""]);
        let (_, args, _) = scan(r"echo 'a\tb\n' '\101\x42'", &v);
        assert_eq!(args, ["a\tb\n", "AB"]);
    }

    #[test]
    fn arguments_end_at_backslashes() {
        let v = Vars::new();
        let line = r"echo a \echo b";
        let (cmd, args, pos) = scan(line, &v);
        assert_eq!((cmd.as_str(), args), ("echo", vec!["a".to_owned()]));
        assert_eq!(&line[pos..], r"\echo b");
        let line = r"x on \\ SELECT 1;";
        let (_, args, pos) = scan(line, &v);
        assert_eq!(args, ["on"]);
        assert_eq!(&line[pos..], " SELECT 1;");
    }

    #[test]
    fn variables_in_arguments() {
        let mut v = Vars::new();
        v.set("x", "it's").unwrap();
        let (_, args, _) = scan("echo :x :'x' :\"x\" :nope pre:x", &v);
        assert_eq!(args, ["it's", "'it''s'", "\"it's\"", ":nope", "preit's"]);
    }

    #[test]
    fn whole_line_and_pipes() {
        let mut s = SlashScanner::new("o |sort -r > x ", 0);
        assert_eq!(s.command(), "o");
        assert_eq!(s.file_or_pipe(None).as_deref(), Some("|sort -r > x"));
        let mut s = SlashScanner::new("copy t from 'f.csv' csv  ", 0);
        s.command();
        assert_eq!(s.rest_of_line(), "t from 'f.csv' csv");
    }
}
