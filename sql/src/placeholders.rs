//! psycopg2-style `%s` placeholders, converted to PostgreSQL's `$1`, `$2`, …
//!
//! PostgreSQL's own scanner (`pg_query::scan`) finds the string constants,
//! quoted identifiers and comments, so a `%s` inside them is left alone, and
//! the conversion sees the text exactly as the server's lexer will.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::ops::Range;

use pg_query::protobuf::Token;

/// Why placeholders could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlaceholderError {
    /// PostgreSQL's scanner rejects the text (an unterminated literal, …).
    #[error("cannot scan the statement: {0}")]
    Scan(String),
    /// `%(name)s`: psycopg2's named placeholders; the broker takes positional
    /// parameters only.
    #[error("named placeholder %(…)s at byte {offset} is not supported: use %s with positional parameters")]
    Named {
        /// Byte offset of the `%`.
        offset: usize,
    },
    /// `%d`, `%f`, …: psycopg2 raises on these too.
    #[error("unsupported placeholder %{found} at byte {offset}: use %s for a parameter and %% for a literal %")]
    Unsupported {
        /// Byte offset of the `%`.
        offset: usize,
        /// The character after the `%`.
        found: char,
    },
    /// A `%` with nothing after it (end of text, or right before a literal,
    /// identifier or comment).
    #[error("lone % at byte {offset}: use %% for a literal %")]
    Lone {
        /// Byte offset of the `%`.
        offset: usize,
    },
    /// Both `%s` and `$n` in one statement.
    #[error("statement mixes %s and $n placeholders (%s at byte {offset})")]
    Mixed {
        /// Byte offset of the first `%s`.
        offset: usize,
    },
    /// The number of `%s` differs from the number of parameters.
    #[error("statement has {placeholders} placeholders but {params} parameters were given")]
    Count {
        /// `%s` in the statement.
        placeholders: usize,
        /// Parameters given.
        params: usize,
    },
}

/// Converts psycopg2-style placeholders to PostgreSQL's.
///
/// - With no parameters the text passes through unchanged: psycopg2 does no
///   `%` processing then, so `LIKE 'a%'` and `5 % 3` just work.
/// - Otherwise, outside string constants (`'…'`, `E'…'`, `$tag$…$tag$`,
///   `B'…'`, `X'…'`, `U&'…'`), quoted identifiers and comments, `%s` becomes
///   `$1`, `$2`, … in order and `%%` becomes `%`; any other `%` is an error.
///   Inside string constants, `%s` is never a placeholder, but `%%` still
///   becomes `%`: tools written for psycopg2 double every literal percent,
///   also in `LIKE 'Dvo%%'`, and must keep meaning `LIKE 'Dvo%'`. Quoted
///   identifiers and comments are not changed at all.
/// - Text that already uses `$n` is returned unchanged (PostgreSQL checks the
///   count); `%s` next to `$n` is an error.
/// - The number of `%s` must equal `nparams`.
///
/// ```
/// use iam_pgbroker_sql::convert_placeholders;
///
/// let sql = "SELECT id FROM idm_identity WHERE username = %s AND email LIKE '%s%%' AND 7 %% 2 = %s";
/// assert_eq!(
///     convert_placeholders(sql, 2).unwrap(),
///     "SELECT id FROM idm_identity WHERE username = $1 AND email LIKE '%s%' AND 7 % 2 = $2"
/// );
/// assert_eq!(
///     convert_placeholders("SELECT %s", 2).unwrap_err().to_string(),
///     "statement has 1 placeholders but 2 parameters were given"
/// );
/// ```
pub fn convert_placeholders(sql: &str, nparams: usize) -> Result<Cow<'_, str>, PlaceholderError> {
    if nparams == 0 {
        return Ok(Cow::Borrowed(sql));
    }
    let layout = Layout::scan(sql)?;
    let bytes = sql.as_bytes();

    if layout.has_dollar_params {
        // Native `$n` text: `%` is PostgreSQL's modulo operator there.
        for code in &layout.code {
            if let Some(offset) = find_percent_s(&bytes[code.clone()]) {
                return Err(PlaceholderError::Mixed {
                    offset: code.start + offset,
                });
            }
        }
        return Ok(Cow::Borrowed(sql));
    }

    let mut out = String::with_capacity(sql.len() + 2 * nparams);
    let mut copied = 0;
    let mut placeholders = 0;
    let mut strings = layout.strings.iter().peekable();
    // Copies everything up to `until`, unescaping `%%` in the string
    // constants on the way.
    let mut copy_until = |out: &mut String, copied: &mut usize, until: usize| {
        while let Some(lit) = strings.next_if(|lit| lit.start < until) {
            out.push_str(&sql[*copied..lit.start]);
            out.push_str(&sql[lit.clone()].replace("%%", "%"));
            *copied = lit.end;
        }
        out.push_str(&sql[*copied..until]);
        *copied = until;
    };
    for code in &layout.code {
        let mut i = code.start;
        while i < code.end {
            if bytes[i] != b'%' {
                i += 1;
                continue;
            }
            let next = if i + 1 < code.end {
                Some(bytes[i + 1])
            } else {
                None
            };
            match next {
                Some(b's') => {
                    copy_until(&mut out, &mut copied, i);
                    placeholders += 1;
                    // Writing to a String cannot fail.
                    let _ = write!(out, "${placeholders}");
                    i += 2;
                    copied = i;
                }
                Some(b'%') => {
                    copy_until(&mut out, &mut copied, i);
                    out.push('%');
                    i += 2;
                    copied = i;
                }
                Some(b'(') => return Err(PlaceholderError::Named { offset: i }),
                Some(_) => {
                    let found = sql[i + 1..].chars().next().unwrap_or('?');
                    return Err(PlaceholderError::Unsupported { offset: i, found });
                }
                None => return Err(PlaceholderError::Lone { offset: i }),
            }
        }
    }
    copy_until(&mut out, &mut copied, sql.len());

    if placeholders != nparams {
        return Err(PlaceholderError::Count {
            placeholders,
            params: nparams,
        });
    }
    Ok(Cow::Owned(out))
}

/// The first `%s` in `code`, as psycopg2 would read it (`%%s` is a literal
/// `%` followed by `s`).
fn find_percent_s(code: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i + 1 < code.len() {
        match (code[i], code[i + 1]) {
            (b'%', b'%') => i += 2,
            (b'%', b's') => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// The statement split by PostgreSQL's scanner.
struct Layout {
    /// Byte ranges outside literals, quoted identifiers and comments, in
    /// order.
    code: Vec<Range<usize>>,
    /// Byte ranges of string constants (`'…'`, `E'…'`, `U&'…'`,
    /// `$tag$…$tag$`), in order.
    strings: Vec<Range<usize>>,
    /// A `$n` parameter token outside those ranges.
    has_dollar_params: bool,
}

impl Layout {
    fn scan(sql: &str) -> Result<Layout, PlaceholderError> {
        let scanned = pg_query::scan(sql).map_err(|e| match e {
            pg_query::Error::Conversion(_) => {
                PlaceholderError::Scan(String::from("the statement contains a NUL byte"))
            }
            pg_query::Error::Scan(message) => PlaceholderError::Scan(message),
            other => PlaceholderError::Scan(other.to_string()),
        })?;
        let mut code = Vec::new();
        let mut strings = Vec::new();
        let mut has_dollar_params = false;
        let mut start = 0usize;
        for token in &scanned.tokens {
            let kind = Token::try_from(token.token).ok();
            if kind == Some(Token::Param) {
                has_dollar_params = true;
            }
            if !kind.is_some_and(|k| is_protected(k, token, sql)) {
                continue;
            }
            let (Ok(from), Ok(to)) = (usize::try_from(token.start), usize::try_from(token.end))
            else {
                return Err(bad_token());
            };
            // The scanner reports tokens in order, on character boundaries;
            // anything else would mean we misread its output, so refuse
            // rather than guess.
            if from < start
                || to < from
                || to > sql.len()
                || !sql.is_char_boundary(from)
                || !sql.is_char_boundary(to)
            {
                return Err(bad_token());
            }
            code.push(start..from);
            if matches!(kind, Some(Token::Sconst | Token::Usconst)) {
                strings.push(from..to);
            }
            start = to;
        }
        code.push(start..sql.len());
        code.retain(|r| !r.is_empty());
        Ok(Layout {
            code,
            strings,
            has_dollar_params,
        })
    }
}

fn bad_token() -> PlaceholderError {
    PlaceholderError::Scan(String::from("unexpected token positions from the scanner"))
}

/// String constants of every kind, quoted identifiers and comments.
fn is_protected(kind: Token, token: &pg_query::protobuf::ScanToken, sql: &str) -> bool {
    match kind {
        Token::Sconst | Token::Usconst | Token::Bconst | Token::Xconst => true,
        Token::SqlComment | Token::CComment => true,
        Token::Uident => true,
        // Plain identifiers share the token with quoted ones.
        Token::Ident => usize::try_from(token.start)
            .ok()
            .and_then(|s| sql.as_bytes().get(s))
            .is_some_and(|b| *b == b'"'),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(sql: &str, n: usize) -> String {
        convert_placeholders(sql, n).unwrap().into_owned()
    }

    #[test]
    fn find_percent_s_skips_escaped() {
        assert_eq!(find_percent_s(b"%%s"), None);
        assert_eq!(find_percent_s(b"a %s"), Some(2));
        assert_eq!(find_percent_s(b"%%%s"), Some(2));
    }

    #[test]
    fn basic() {
        assert_eq!(conv("SELECT %s, %s", 2), "SELECT $1, $2");
        assert_eq!(conv("SELECT %s::int", 1), "SELECT $1::int");
        assert_eq!(conv("a=%s", 1), "a=$1");
    }
}
