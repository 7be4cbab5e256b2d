//! Numbers in request parameters keep their value: a double parses to the
//! nearest double, so encoding it again gives the same text (the broker
//! binds that text), and integers stay exact.

use iam_pgbroker_proto::{Op, Request};
use serde_json::Value;

fn params(line: &str) -> Vec<Value> {
    match Request::decode(line.as_bytes()).expect("decodes").op {
        Op::Query { params, .. } | Op::Execute { params, .. } => params,
        other => panic!("{other:?}"),
    }
}

#[test]
fn doubles_parse_to_the_nearest_double_and_print_the_same() {
    // 3.333e37 is what fuzzing found: serde_json's default parser made it
    // 3.3329999999999997e37.
    for text in [
        "3.333e37",
        "0.1",
        "0.30000000000000004",
        "1.7976931348623157e308",
        "5e-324",
        "2.2250738585072014e-308",
        "-8.98846567431158e307",
        "123456.789e3",
    ] {
        let got = params(&format!(
            r#"{{"id":1,"op":"query","sql":"SELECT $1","params":[{text}]}}"#
        ));
        let expected: f64 = text.parse().expect("a double");
        assert_eq!(got[0].as_f64(), Some(expected), "{text}");
        let again = params(&format!(
            r#"{{"id":1,"op":"query","sql":"SELECT $1","params":[{}]}}"#,
            got[0]
        ));
        assert_eq!(again, got, "{text} → {} → {}", got[0], again[0]);
    }
}

#[test]
fn integers_stay_exact() {
    for text in [
        "9007199254740993",
        "18446744073709551615",
        "-9223372036854775808",
    ] {
        let got = params(&format!(
            r#"{{"id":1,"op":"execute","sql":"SELECT $1","params":[{text}]}}"#
        ));
        assert_eq!(got[0].to_string(), text);
    }
}
