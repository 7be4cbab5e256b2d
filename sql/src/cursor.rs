//! Where PostgreSQL's grammar stopped in a statement it rejects: the
//! `cursorpos` of the syntax error, so clients can show psql's `LINE n:`
//! with its caret.
//!
//! The `pg_query` crate reports a parse error as its message only. The
//! position is in the same libpg_query call's error (its `PgQueryError`,
//! the struct of `pg_query.h` in the crate's bundled libpg_query 18), so
//! it is asked for here through libpg_query's C interface, which the
//! crate links in. Only a statement already refused as a syntax error is
//! parsed again here; nothing about what is allowed depends on it.

use std::ffi::{c_char, c_int, CString};

/// `PgQueryError` of `pg_query.h`.
#[repr(C)]
struct PgQueryError {
    message: *mut c_char,
    funcname: *mut c_char,
    filename: *mut c_char,
    lineno: c_int,
    cursorpos: c_int,
    context: *mut c_char,
}

/// `PgQueryParseResult` of `pg_query.h`.
#[repr(C)]
struct PgQueryParseResult {
    parse_tree: *mut c_char,
    stderr_buffer: *mut c_char,
    error: *mut PgQueryError,
}

extern "C" {
    fn pg_query_parse(input: *const c_char) -> PgQueryParseResult;
    fn pg_query_free_parse_result(result: PgQueryParseResult);
}

/// The 1-based character position PostgreSQL's parser gives the error in
/// `sql`, as PostgreSQL's own `P` (position) field; `None` when `sql`
/// parses, or the parser names no position.
pub fn syntax_error_position(sql: &str) -> Option<u32> {
    let input = CString::new(sql).ok()?;
    // SAFETY: `input` is a NUL-terminated string that outlives the call;
    // libpg_query returns a result it owns, whose `error` is either null
    // or a valid PgQueryError until the result is freed, which happens
    // exactly once, after the position has been copied out.
    unsafe {
        let result = pg_query_parse(input.as_ptr());
        let position = if result.error.is_null() {
            None
        } else {
            u32::try_from((*result.error).cursorpos)
                .ok()
                .filter(|p| *p > 0)
        };
        pg_query_free_parse_result(result);
        position
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_postgresqls() {
        // psql: LINE 1: SELEC 1  with the caret under S (position 1).
        assert_eq!(syntax_error_position("SELEC 1"), Some(1));
        // "at or near FORM": position 10, in characters.
        assert_eq!(syntax_error_position("SELECT * FORM t"), Some(10));
        // FORM is read as a column alias; `t` is the error, the 17th
        // character (the 18th byte: positions count characters).
        assert_eq!(syntax_error_position("SELECT 'ž' FORM t"), Some(17));
        assert_eq!(syntax_error_position("SELECT 1"), None);
        // At the end of the input.
        assert_eq!(syntax_error_position("SELECT ("), Some(9));
    }
}
