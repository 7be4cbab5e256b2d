//! Arbitrary text and parameter count to the placeholder conversion. It must
//! never panic, and when it succeeds every literal, quoted identifier and
//! comment of the input is in the output, in order: unchanged, except that
//! psycopg2's escaped percent `%%` in a string constant becomes `%`.

#![no_main]

use std::borrow::Cow;

use iam_pgbroker_sql::convert_placeholders;
use libfuzzer_sys::fuzz_target;
use pg_query::protobuf::Token;

fuzz_target!(|data: &[u8]| {
    let Some((&n, text)) = data.split_first() else {
        return;
    };
    let Ok(sql) = std::str::from_utf8(text) else {
        return;
    };
    let nparams = usize::from(n % 8);
    let Ok(converted) = convert_placeholders(sql, nparams) else {
        return;
    };
    if let Cow::Borrowed(unchanged) = converted {
        // No parameters, or text in `$n` style: passed through untouched.
        assert_eq!(unchanged, sql);
        return;
    }
    assert!(nparams > 0, "{sql:?} changed without parameters");
    let scanned =
        pg_query::scan(sql).expect("conversion succeeded, so the scanner accepted the text");
    let mut rest: &str = &converted;
    for token in &scanned.tokens {
        let text = &sql[token.start as usize..token.end as usize];
        let expected = match Token::try_from(token.token) {
            Ok(Token::Sconst | Token::Usconst) => text.replace("%%", "%"),
            Ok(
                Token::Bconst | Token::Xconst | Token::SqlComment | Token::CComment | Token::Uident,
            ) => text.to_owned(),
            Ok(Token::Ident) if text.starts_with('"') => text.to_owned(),
            _ => continue,
        };
        match rest.find(&expected) {
            Some(at) => rest = &rest[at + expected.len()..],
            None => panic!("{expected:?} (from {text:?}) of {sql:?} is not in {converted:?}"),
        }
    }
});
