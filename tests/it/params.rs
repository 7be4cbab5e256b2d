//! Placeholders: psycopg2's `%s` (with `%%`) and PostgreSQL's `$n`.

use iam_pgbroker_tests::*;
use serde_json::json;

fn query(raw: &mut RawClient, sql: &str, params: serde_json::Value) -> Vec<serde_json::Value> {
    raw.call(json!({"id": 2, "op": "query", "sql": sql, "params": params}))
}

fn opened(broker: &BrokerProcess) -> RawClient {
    let mut raw = RawClient::connect(broker);
    let f = raw.call(json!({"id": 1, "op": "open"}));
    assert_eq!(f[0]["type"], "opened", "{f:?}");
    raw
}

fn single_row(frames: &[serde_json::Value]) -> serde_json::Value {
    let rows = frames
        .iter()
        .find(|f| f["type"] == "rows")
        .unwrap_or_else(|| panic!("{frames:?}"));
    rows["rows"][0].clone()
}

#[test]
fn percent_s_inside_a_literal_is_untouched() {
    let broker = BrokerProcess::start();
    let mut raw = opened(&broker);
    let f = query(
        &mut raw,
        "SELECT '%s' AS lit, %s AS p, '100%%' AS pct, 7 %% 4 AS m",
        json!(["x"]),
    );
    // psycopg2 tools write `%%` for a literal percent even inside string
    // literals; `%s` in a literal is never a placeholder.
    assert_eq!(single_row(&f), json!(["%s", "x", "100%", 3]));
    // Without parameters nothing is converted, as in psycopg2.
    let f = query(&mut raw, "SELECT '100%' AS pct", json!([]));
    assert_eq!(single_row(&f), json!(["100%"]));
}

#[test]
fn dollar_placeholders_and_typing_by_the_server() {
    let broker = BrokerProcess::start();
    let mut raw = opened(&broker);
    let f = query(
        &mut raw,
        "SELECT $1::int + 1 AS n, $2::date AS d, $3::bool AS b, $4::int[] AS a, $5::jsonb AS j, $6::text IS NULL AS isnull",
        json!(["41", "2024-02-29", true, [1, 2, null], {"k": [1]}, null]),
    );
    assert_eq!(
        single_row(&f),
        json!([42, "2024-02-29", true, [1, 2, null], {"k": [1]}, true])
    );
}

#[test]
fn a_quote_in_a_parameter_is_data_not_sql() {
    let broker = BrokerProcess::start();
    let mut raw = opened(&broker);
    let f = query(
        &mut raw,
        "SELECT count(*) FROM idm_identity WHERE username = %s",
        json!(["x' OR '1'='1"]),
    );
    assert_eq!(single_row(&f), json!([0]));
}

#[test]
fn wrong_parameter_counts_are_bad_requests() {
    let broker = BrokerProcess::start();
    let mut raw = opened(&broker);
    let f = query(&mut raw, "SELECT %s, %s", json!(["only one"]));
    assert_eq!(
        f.last().map(|e| e["error"]["code"].clone()),
        Some(json!("bad_request")),
        "{f:?}"
    );
    let f = query(&mut raw, "SELECT $1::int", json!([1, 2]));
    assert_eq!(
        f.last().map(|e| e["error"]["code"].clone()),
        Some(json!("bad_request")),
        "{f:?}"
    );
    // The session is still usable (after the failed transaction is rolled back).
    raw.call(json!({"id": 3, "op": "rollback"}));
    let f = query(&mut raw, "SELECT 1", json!([]));
    assert_eq!(single_row(&f), json!([1]));
}
