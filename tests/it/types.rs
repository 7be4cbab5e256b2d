//! Every row of DESIGN.md's type table, through the real broker from a real
//! PostgreSQL.

use iam_pgbroker_tests::*;
use serde_json::{json, Value};

fn one(raw: &mut RawClient, sql: &str) -> (Vec<Value>, Value) {
    let frames = raw.call(json!({"id": 2, "op": "query", "sql": sql}));
    let columns = frames[0]["columns"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("{sql}: {frames:?}"));
    let rows = frames
        .iter()
        .find(|f| f["type"] == "rows")
        .unwrap_or_else(|| panic!("{sql}: {frames:?}"));
    (columns, rows["rows"][0][0].clone())
}

#[test]
fn each_type_maps_as_documented() {
    let broker = BrokerProcess::start();
    let mut raw = RawClient::connect(&broker);
    raw.call(json!({"id": 1, "op": "open"}));
    let cases: &[(&str, Value, &str)] = &[
        ("SELECT NULL::int", Value::Null, "int4"),
        ("SELECT true", json!(true), "bool"),
        ("SELECT false", json!(false), "bool"),
        ("SELECT 32767::int2", json!(32767), "int2"),
        ("SELECT (-2147483648)::int4", json!(-2147483648i64), "int4"),
        (
            "SELECT 9007199254740993::int8",
            json!(9007199254740993i64),
            "int8",
        ),
        ("SELECT 'pg_class'::regclass::oid", json!(1259), "oid"),
        ("SELECT 1.5::float4", json!(1.5), "float4"),
        ("SELECT 0.1::float8", json!(0.1), "float8"),
        ("SELECT 'NaN'::float8", json!("NaN"), "float8"),
        ("SELECT '-Infinity'::float4", json!("-Infinity"), "float4"),
        ("SELECT 'Infinity'::float8", json!("Infinity"), "float8"),
        (
            "SELECT 12345678901234567890.123456789::numeric",
            json!("12345678901234567890.123456789"),
            "numeric",
        ),
        (
            "SELECT 0.000001::numeric(10,8)",
            json!("0.00000100"),
            "numeric",
        ),
        ("SELECT -5::numeric", json!("-5"), "numeric"),
        ("SELECT 'NaN'::numeric", json!("NaN"), "numeric"),
        (
            "SELECT 'Žluťoučký kůň'::text",
            json!("Žluťoučký kůň"),
            "text",
        ),
        ("SELECT 'Dvořák'::varchar(10)", json!("Dvořák"), "varchar"),
        ("SELECT 'ab'::char(4)", json!("ab  "), "bpchar"),
        ("SELECT 'idm_identity'::name", json!("idm_identity"), "name"),
        (
            "SELECT 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid",
            json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            "uuid",
        ),
        ("SELECT '\\xdeadbeef'::bytea", json!("\\xdeadbeef"), "bytea"),
        ("SELECT ''::bytea", json!("\\x"), "bytea"),
        ("SELECT '2024-02-29'::date", json!("2024-02-29"), "date"),
        ("SELECT '13:14:15.5'::time", json!("13:14:15.5"), "time"),
        (
            "SELECT '13:14:15+02'::timetz",
            json!("13:14:15+02:00"),
            "timetz",
        ),
        (
            "SELECT '2024-02-29 13:14:15.123456'::timestamp",
            json!("2024-02-29T13:14:15.123456"),
            "timestamp",
        ),
        (
            "SELECT '2024-02-29 13:14:15+01'::timestamptz",
            json!("2024-02-29T12:14:15+00:00"),
            "timestamptz",
        ),
        (
            "SELECT 'infinity'::timestamp",
            json!("infinity"),
            "timestamp",
        ),
        (
            "SELECT '1 year 2 months 3 days 04:05:06.5'::interval",
            json!("P1Y2M3DT4H5M6.5S"),
            "interval",
        ),
        ("SELECT '0'::interval", json!("PT0S"), "interval"),
        (
            "SELECT '{\"a\": [1, 2.5, null], \"b\": \"č\"}'::json",
            json!({"a": [1, 2.5, null], "b": "č"}),
            "json",
        ),
        (
            "SELECT '{\"a\": {\"b\": true}}'::jsonb",
            json!({"a": {"b": true}}),
            "jsonb",
        ),
        ("SELECT '[1,\n2]'::json", json!([1, 2]), "json"),
        ("SELECT ARRAY[1, NULL, 3]", json!([1, null, 3]), "_int4"),
        (
            "SELECT ARRAY[['a','b'],['c','d']]",
            json!([["a", "b"], ["c", "d"]]),
            "_text",
        ),
        ("SELECT '{}'::int[]", json!([]), "_int4"),
        (
            "SELECT ARRAY['2024-01-01'::date]",
            json!(["2024-01-01"]),
            "_date",
        ),
        (
            "SELECT ARRAY['{\"x\":1}'::jsonb]",
            json!([{"x": 1}]),
            "_jsonb",
        ),
        ("SELECT ARRAY[1.50::numeric]", json!(["1.50"]), "_numeric"),
        // Beyond the design's table, for catalog views (pg_stat_activity):
        ("SELECT '192.168.1.5'::inet", json!("192.168.1.5"), "inet"),
        ("SELECT '10.1.0.0/16'::inet", json!("10.1.0.0/16"), "inet"),
        ("SELECT '10.1.0.0/16'::cidr", json!("10.1.0.0/16"), "cidr"),
        ("SELECT '2001:db8::1'::inet", json!("2001:db8::1"), "inet"),
        (
            "SELECT '08:00:2b:01:02:03'::macaddr",
            json!("08:00:2b:01:02:03"),
            "macaddr",
        ),
        ("SELECT '42'::xid", json!(42), "xid"),
    ];
    for (sql, expected, type_name) in cases {
        let (columns, value) = one(&mut raw, sql);
        assert_eq!(&value, expected, "{sql}");
        assert_eq!(columns[0]["type"], *type_name, "{sql}");
    }
}

#[test]
fn enums_citext_and_czechidm_ids() {
    let app = Appliance::get();
    let ty = unique_name("mood");
    app.psql(
        "czechidm",
        &format!("CREATE TYPE {ty} AS ENUM ('sad', 'happy')"),
    );
    // An application's own type is not known to the guard: the
    // administrator names it for read sessions.
    let broker = BrokerProcess::start_with(BrokerOptions {
        extra: "[guard]\nread_types = [\"mood_*\"]\n".into(),
        ..Default::default()
    });
    let mut raw = RawClient::connect(&broker);
    raw.call(json!({"id": 1, "op": "open"}));
    let (_, value) = one(&mut raw, &format!("SELECT 'happy'::{ty}"));
    assert_eq!(value, json!("happy"));
    let (_, value) = one(&mut raw, &format!("SELECT ARRAY['sad'::{ty}]"));
    assert_eq!(value, json!(["sad"]));
    // CzechIdM ids: 16-byte bytea, read as uuid by encode(id, 'hex')::uuid.
    let (_, value) = one(
        &mut raw,
        "SELECT encode(id, 'hex')::uuid FROM idm_identity WHERE username = 'admin'",
    );
    let truth = app.psql(
        "czechidm",
        "SELECT encode(id, 'hex')::uuid FROM idm_identity WHERE username = 'admin'",
    );
    assert_eq!(value, json!(truth));
    let has_citext = app.psql(
        "czechidm",
        "SELECT count(*) FROM pg_available_extensions WHERE name = 'citext'",
    );
    assert_eq!(has_citext, "1", "citext ships with PostgreSQL's contrib");
    app.psql("czechidm", "CREATE EXTENSION IF NOT EXISTS citext");
    let (columns, value) = one(&mut raw, "SELECT 'MiXeD'::citext");
    assert_eq!(
        (columns[0]["type"].clone(), value),
        (json!("citext"), json!("MiXeD"))
    );
}

#[test]
fn an_unsupported_type_is_refused_with_a_cast_hint() {
    let broker = BrokerProcess::start();
    let mut raw = RawClient::connect(&broker);
    raw.call(json!({"id": 1, "op": "open"}));
    let frames = raw
        .call(json!({"id": 2, "op": "query", "sql": "SELECT to_tsvector('simple', 'a b') AS doc"}));
    let error = &frames.last().expect("a frame")["error"];
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("doc") && message.contains("tsvector") && message.contains("::text"),
        "{frames:?}"
    );
    assert!(
        frames.iter().all(|f| f["type"] != "rows"),
        "no rows before the error"
    );
    raw.call(json!({"id": 3, "op": "rollback"}));
    let (_, value) = one(&mut raw, "SELECT to_tsvector('simple', 'a b')::text");
    assert_eq!(value, json!("'a':1 'b':2"));
}
