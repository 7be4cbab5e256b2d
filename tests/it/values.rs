//! Every value as PostgreSQL shows it (protocol version 2): all types come
//! through, each as the text psql prints, in the session's settings — also
//! on a pooled connection right after `ALTER DATABASE … SET`.

use iam_pgbroker_tests::*;
use serde_json::{json, Value};
use std::process::Command;

/// A session that said hello with protocol version 2.
fn text_session(broker: &BrokerProcess, open: Value) -> RawClient {
    let mut raw = RawClient::connect(broker);
    let hello = raw.call(json!({"id": 1, "op": "hello", "version": 2}));
    assert_eq!(hello[0]["version"], 2, "{hello:?}");
    let mut params = open;
    params["id"] = json!(2);
    params["op"] = json!("open");
    let opened = raw.call(params);
    assert_eq!(opened[0]["type"], "opened", "{opened:?}");
    raw
}

/// The columns and rows of one query, rolled back.
fn result(raw: &mut RawClient, sql: &str) -> (Vec<Value>, Vec<Value>) {
    let frames = raw.call(json!({"id": 3, "op": "query", "sql": sql}));
    raw.call(json!({"id": 4, "op": "rollback"}));
    let last = frames.last().cloned().unwrap_or(Value::Null);
    assert_eq!(last["type"], "done", "{sql}: {frames:?}");
    let columns = frames
        .iter()
        .find(|f| f["type"] == "columns")
        .and_then(|f| f["columns"].as_array().cloned())
        .unwrap_or_default();
    let rows = frames
        .iter()
        .filter(|f| f["type"] == "rows")
        .flat_map(|f| f["rows"].as_array().cloned().unwrap_or_default())
        .collect();
    (columns, rows)
}

/// psql's unaligned, tuples-only output of `sql`, one value per line.
fn psql_values(container: &str, db: &str, sql: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args(["exec", "-u", "postgres", container])
        .args([
            "psql",
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-R",
            "\u{1e}",
            "-F",
            "\u{1f}",
            "-d",
            db,
            "-c",
            sql,
        ])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim_end_matches('\n')
        .split('\u{1f}')
        .map(str::to_owned)
        .collect()
}

/// Expressions of (nearly) every kind of type a query returns, each
/// compared with what psql prints for the same expression.
const EXPRESSIONS: &[&str] = &[
    "'pg_class'::regclass",
    "'pg_catalog.lower(text)'::regprocedure",
    "'now'::regproc",
    "'int4'::regtype",
    "'pg_catalog'::regnamespace",
    "'postgres'::regrole",
    "'=(int4,int4)'::regoperator",
    "'english'::regconfig",
    "'(0,1)'::tid",
    "12.5::money",
    "'<a b=\"1\">x</a>'::xml",
    "to_tsvector('simple', 'Žluťoučký kůň úpěl')",
    "to_tsquery('simple', 'a & b')",
    "point(1.5, 2)",
    "'((0,0),(1,1))'::box",
    "'<(0,0),1>'::circle",
    "'[(0,0),(1,1)]'::lseg",
    "'((0,0),(1,0),(1,1))'::polygon",
    "B'1011'",
    "B'1011'::varbit",
    "'16/B374D848'::pg_lsn",
    "ROW(1, 'a', NULL, true)",
    "int4range(1, 5)",
    "tstzrange('2025-01-01 10:00+00', '2025-01-02 10:00+00')",
    "numrange(1.5, 2.25, '[]')",
    "daterange('2025-01-01', 'infinity')",
    "int4multirange(int4range(1, 3), int4range(5, 8))",
    "interval '1 year 2 months 3 days 04:05:06.5'",
    "interval '-1 hour 33 min'",
    "timestamptz '2025-11-03 06:04:21.872+00'",
    "timestamp '2025-11-03 06:04:21.872'",
    "date '2024-02-29'",
    "time '13:14:15.5'",
    "timetz '13:14:15+02'",
    "'infinity'::timestamptz",
    "1e100::float8",
    "2500.0::float8",
    "0.1::float4",
    "'NaN'::float8",
    "12.50::numeric",
    "'NaN'::numeric",
    "9007199254740993::int8",
    "'{\"b\": 2.50, \"a\": null, \"a\": 1}'::json",
    "'{\"b\": 2.50, \"a\": null}'::jsonb",
    "'null'::jsonb",
    "'1e2'::json",
    "'\\xdeadbeef'::bytea",
    "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid",
    "ARRAY['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid]",
    "ARRAY[1, NULL, 3]",
    "ARRAY[['a b', 'c\"d'], ['', NULL]]",
    "'[0:1]={7,8}'::int[]",
    "ARRAY[ROW(1, 'x')]",
    "ARRAY[int4range(1, 2)]",
    "'10.1.0.0/16'::cidr",
    "'10.1.2.3/16'::inet",
    "'08:00:2b:01:02:03'::macaddr",
    "'08:00:2b:01:02:03:04:05'::macaddr8",
    "'123'::xid",
    "'123'::xid8",
    "'42'::cid",
    "'1 2'::int2vector",
    "'1 2'::oidvector",
    "'txt'::name",
    "'x'::\"char\"",
    "'a'::bpchar(3)",
    "true",
    "NULL::text",
    "pg_stat_clear_snapshot()",
    "txid_current_snapshot() IS NOT NULL",
    "'Žluťoučký kůň'::text",
    "E'tab\\there'",
    "'{\"k\": \"v\"}'::jsonb -> 'k'",
    "gen_random_uuid() IS NOT NULL",
    "'2025-11-03'::date - 1",
    "(SELECT ARRAY_AGG(x) FROM generate_series(1, 3) x)",
    // Written by the broker from the binary form (every column of these
    // has a writer): each must still be PostgreSQL's own text.
    "timestamp '0044-03-15 12:00:00 BC'",
    "timestamp '0001-01-01 00:00:00'",
    "timestamp '10000-01-01 00:00:00.000001'",
    "timestamp '1999-12-31 23:59:59.999999'",
    "timestamp '2025-11-03 06:04:21.87'",
    "'-infinity'::timestamp",
    "'infinity'::timestamp",
    "1e-10::numeric",
    "(-0.000)::numeric",
    "123456789012345678901234567890.123456789::numeric",
    "'-12.5e3'::numeric",
    "(-32768)::int2",
    "2147483647::int4",
    "(-9223372036854775808)::int8",
    "4294967295::oid",
    "false",
    "'\\x'::bytea",
    "'\\x00ff10'::bytea",
    "'Žluťoučký'::varchar(20)",
    "'ab'::char(4)",
];

/// Every expression through the broker equals psql's text, and no query
/// is refused for its result's type.
#[test]
fn every_value_is_the_text_psql_prints() {
    let app = Appliance::get();
    let broker = BrokerProcess::start();
    let mut raw = text_session(&broker, json!({"user": "postgres", "readonly": false}));
    let container = app.container("czechidm");
    let mut differences = Vec::new();
    for expr in EXPRESSIONS {
        let sql = format!("SELECT {expr} AS v");
        let (columns, rows) = result(&mut raw, &sql);
        assert!(columns[0]["oid"].as_u64().is_some(), "{sql}: {columns:?}");
        assert!(!rows.is_empty(), "{sql}: no row");
        let ours = match &rows[0][0] {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            other => panic!("{sql}: a text value, not {other}"),
        };
        let theirs = psql_values(&container, "czechidm", &sql).join("");
        if ours != theirs {
            differences.push(format!("{expr}: broker {ours:?}, psql {theirs:?}"));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));

    // Text columns are written by the broker from the binary form (the
    // statement runs as itself); a column of another type makes
    // PostgreSQL write the text (the statement runs as EXECUTE).
    let (_, rows) = result(
        &mut raw,
        "SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid()",
    );
    assert!(
        rows[0][0]
            .as_str()
            .unwrap_or("")
            .starts_with("SELECT query"),
        "{rows:?}"
    );
    let (_, rows) = result(
        &mut raw,
        "SELECT query, now() FROM pg_stat_activity WHERE pid = pg_backend_pid()",
    );
    assert!(
        rows[0][0].as_str().unwrap_or("").starts_with("EXECUTE "),
        "{rows:?}"
    );
    // A jsonb null is not SQL NULL.
    let (_, rows) = result(&mut raw, "SELECT 'null'::jsonb, NULL::jsonb");
    assert_eq!(rows[0], json!(["null", null]));
    // void, record, and a row of a table: no refusal.
    let (_, rows) = result(
        &mut raw,
        "SELECT pg_stat_clear_snapshot(), (1, 'a'), i FROM idm_identity i LIMIT 1",
    );
    assert_eq!(rows[0][0], "");
    assert_eq!(rows[0][1], "(1,a)");
}

/// Every type PostgreSQL 15 has in pg_type that a query can return without
/// an extension (base, enum, range, multirange, composite and domain types
/// of pg_catalog and information_schema, and their arrays) comes through:
/// nothing is refused for its type.
#[test]
fn no_query_is_refused_for_a_result_type() {
    let app = Appliance::get();
    let types = app.psql(
        "czechidm",
        "SELECT string_agg(format('NULL::%s', t.oid::regtype), ', ' ORDER BY t.oid) \
         FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
         WHERE n.nspname IN ('pg_catalog', 'information_schema') AND t.typtype IN ('b', 'e', 'r', 'm', 'c', 'd') \
           AND t.typisdefined AND NOT (t.typtype = 'b' AND t.typname LIKE 'pg\\_%' AND t.typname NOT IN ('pg_lsn', 'pg_snapshot')) \
           AND t.typname NOT IN ('unknown')",
    );
    let count = types.matches("NULL::").count();
    assert!(count > 150, "{count} types");
    let broker = BrokerProcess::start();
    let mut raw = text_session(&broker, json!({"user": "postgres", "readonly": false}));
    let (columns, rows) = result(&mut raw, &format!("SELECT {types}"));
    assert_eq!(columns.len(), count);
    assert!(rows[0]
        .as_array()
        .is_some_and(|r| r.iter().all(Value::is_null)));
    eprintln!("{count} types of pg_type came through");
}

/// Values are rendered in what the database and the role say, as a fresh
/// connection would be — also a pooled one, right after the change.
#[test]
fn values_follow_the_databases_settings_on_pooled_connections_too() {
    let instance = ExtraInstance::start("tz");
    let broker = BrokerProcess::start();
    let sql = "SELECT timestamptz '2025-11-03 06:04:21.872+00' AS t, interval '1 hour 33 min 55 s' AS i, \
               '\\x41'::bytea AS b, 0.1::float8 + 0.2 AS f";
    // Columns the broker writes itself, under a DateStyle it does not.
    let own = "SELECT timestamp '2025-11-03 06:04:21.872' AS ts, '\\x41'::bytea AS b";
    let ours_of = |db: &str, sql: &str| {
        let mut raw = text_session(&broker, json!({"db": db, "user": "postgres"}));
        let (_, rows) = result(&mut raw, sql);
        raw.call(json!({"id": 9, "op": "close"}));
        rows[0].clone()
    };
    let ours = |db: &str| ours_of(db, sql);
    let before = ours(&instance.db);
    assert_eq!(
        ours_of(&instance.db, own),
        json!(["2025-11-03 06:04:21.872", "\\x41"])
    );
    assert_eq!(
        before,
        json!([
            "2025-11-03 06:04:21.872+00",
            "01:33:55",
            "\\x41",
            "0.30000000000000004"
        ])
    );
    let set = instance.psql(
        &instance.db,
        &format!(
            "ALTER DATABASE \"{}\" SET timezone = 'Europe/Prague'; ALTER DATABASE \"{}\" SET intervalstyle = 'iso_8601'; \
             ALTER DATABASE \"{}\" SET bytea_output = 'escape'; ALTER DATABASE \"{}\" SET extra_float_digits = 0",
            instance.db, instance.db, instance.db, instance.db
        ),
    );
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    // The next session takes the pooled connection of the last one.
    let after = ours(&instance.db);
    let psql = psql_values(&instance.container, &instance.db, sql);
    assert_eq!(after, json!(psql), "the broker renders as psql does now");
    assert_eq!(
        after,
        json!(["2025-11-03 07:04:21.872+01", "PT1H33M55S", "A", "0.3"])
    );
    let set = instance.psql(
        &instance.db,
        &format!(
            "ALTER DATABASE \"{}\" SET datestyle = 'German, DMY'",
            instance.db
        ),
    );
    assert!(set.status.success());
    let german = ours_of(&instance.db, own);
    assert_eq!(
        german,
        json!(psql_values(&instance.container, &instance.db, own))
    );
    assert_eq!(german, json!(["03.11.2025 06:04:21.872", "A"]));
}

/// An old client (protocol version 1) keeps the values it knows.
#[test]
fn version_one_clients_keep_typed_json() {
    let broker = BrokerProcess::start();
    let mut raw = RawClient::open(&broker, json!({"user": "postgres"}));
    let frames = raw.call(json!({"id": 3, "op": "query", "sql": "SELECT 1::int8 AS n, true AS b, '{\"a\": 1}'::jsonb AS j"}));
    let rows = frames
        .iter()
        .find(|f| f["type"] == "rows")
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(rows["rows"][0], json!([1, true, {"a": 1}]));
}

/// Errors carry every field PostgreSQL sends: position, context, schema,
/// table, column, data type and constraint names.
#[test]
fn errors_carry_every_field_postgresql_sends() {
    let app = Appliance::get();
    let t = app.scratch_table("errf", "id int primary key, note text NOT NULL", "(1, 'a')");
    let broker = BrokerProcess::start();
    let mut raw = text_session(&broker, json!({"user": "postgres", "readonly": false}));
    let error = |raw: &mut RawClient, sql: &str| {
        let frames = raw.call(json!({"id": 3, "op": "query", "sql": sql}));
        raw.call(json!({"id": 4, "op": "rollback"}));
        frames
            .last()
            .map(|f| f["error"].clone())
            .unwrap_or(Value::Null)
    };
    let e = error(&mut raw, "SELECT id, nosuch FROM idm_identity");
    assert_eq!(e["sqlstate"], "42703");
    assert_eq!(e["position"], 12, "{e}");
    assert_eq!(e["severity"], "ERROR");
    let e = error(&mut raw, &format!("INSERT INTO {t} VALUES (1, 'b')"));
    assert_eq!(e["sqlstate"], "23505");
    assert_eq!(e["constraint"], format!("{t}_pkey"), "{e}");
    assert_eq!(e["table"], t.as_str());
    assert_eq!(e["schema"], "public");
    assert!(
        e["detail"].as_str().unwrap_or("").contains("(id)=(1)"),
        "{e}"
    );
    let e = error(&mut raw, &format!("INSERT INTO {t} VALUES (2, NULL)"));
    assert_eq!(e["sqlstate"], "23502");
    assert_eq!(e["column"], "note", "{e}");
    let e = error(
        &mut raw,
        "SELECT 1 / (SELECT count(*) - count(*) FROM generate_series(1, 2))",
    );
    assert_eq!(e["sqlstate"], "22012");
    let e = error(
        &mut raw,
        "SELECT jsonb_path_query('{}', '$.a ? (@ like_regex \"(\")')",
    );
    assert!(e["sqlstate"].is_string(), "{e}");
    let e = error(&mut raw, "SELECT xmlparse(document '<a>')");
    assert!(e["context"].is_string() || e["detail"].is_string(), "{e}");
}

/// The Rust client reads the new types: their text, `reg*` as names,
/// ranges, intervals, timestamptz in the session's zone, arrays.
#[test]
fn the_rust_client_reads_every_type() {
    use iam_pgconnect::pgtypes::{Interval, Range, TimestampTz};
    let broker = BrokerProcess::start();
    let mut db = iam_pgconnect::Config::new()
        .socket(&broker.socket)
        .readonly(true)
        .connect()
        .expect("connect");
    let rows = db
        .query(
            "SELECT 'pg_class'::regclass AS r, timestamptz '2025-11-03 06:04:21.872+00' AT TIME ZONE 'UTC' AS naive, \
             timestamptz '2025-11-03 06:04:21.872+00' AS t, interval '1 day 02:00' AS i, int4range(1, 5) AS rg, \
             ARRAY[1, 2, NULL] AS a, 12.50::numeric AS n, 9007199254740993::int8 AS big, true AS b, \
             'null'::jsonb AS jn, 1.5::money AS m",
            &[],
        )
        .expect("query");
    let r = &rows[0];
    assert_eq!(r.get::<&str>("r"), "pg_class");
    assert_eq!(r.text("r").as_deref(), Some("pg_class"));
    let t: TimestampTz = r.get("t");
    assert_eq!(t.unix_micros(), 1_762_149_861_872_000);
    assert_eq!(r.get::<TimestampTz>("naive").unix_micros(), t.unix_micros());
    assert_eq!(
        r.get::<Interval>("i"),
        Interval {
            months: 0,
            days: 1,
            microseconds: 7_200_000_000
        }
    );
    let range: Range = r.get("rg");
    assert_eq!(
        (range.lower.as_deref(), range.upper.as_deref()),
        (Some("1"), Some("5"))
    );
    assert_eq!(r.get::<Vec<Option<i64>>>("a"), vec![Some(1), Some(2), None]);
    assert_eq!(r.get::<&str>("n"), "12.50");
    assert_eq!(r.get::<i64>("big"), 9_007_199_254_740_993);
    assert!(r.get::<bool>("b"));
    assert_eq!(r.get::<&str>("jn"), "null");
    assert_eq!(r.oid("m"), Some(790));
    assert_eq!(db.session_info().protocol_version, 2);
}
