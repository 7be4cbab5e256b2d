//! Reads as allowed users, refusals for others: identity comes from the
//! kernel, the policy decides.

use iam_pgbroker_tests::*;
use serde_json::Value;

fn json_lines(ran: &Ran) -> Vec<Value> {
    ran.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}\n{ran:?}")))
        .collect()
}

fn identity_count() -> i64 {
    Appliance::get()
        .psql("czechidm", "SELECT count(*) FROM idm_identity")
        .parse()
        .expect("count")
}

#[test]
fn seed_example_count_as_reader_through_the_rust_client() {
    let broker = BrokerProcess::start();
    let ran = run(it_client(READER, &broker).arg("q:SELECT count(*) AS total FROM idm_identity"));
    assert_eq!(ran.code, 0, "{ran:?}");
    let lines = json_lines(&ran);
    assert_eq!(
        lines[0]["rows"][0]["total"],
        Value::from(identity_count()),
        "{ran:?}"
    );
}

#[test]
fn seed_example_count_as_reader_through_the_cli() {
    let broker = BrokerProcess::start();
    let ran = run(iam_pg(READER, &broker).args([
        "-c",
        "SELECT count(*) FROM idm_identity",
        "--format",
        "csv",
    ]));
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(
        ran.stdout.trim(),
        format!("count\n{}", identity_count()),
        "{ran:?}"
    );
}

#[test]
fn parameterized_lookup_returns_utf8_intact() {
    let broker = BrokerProcess::start();
    let ran = run(it_client(READER, &broker).args([
        "p:admin",
        "q:SELECT username, last_name FROM idm_identity WHERE username = %s",
        "q:SELECT first_name, last_name FROM idm_identity WHERE last_name LIKE 'Dvo%' ORDER BY 1",
    ]));
    assert_eq!(ran.code, 0, "{ran:?}");
    let lines = json_lines(&ran);
    assert_eq!(lines[0]["rows"][0]["last_name"], "Administrator");
    let truth = Appliance::get().psql(
        "czechidm",
        "SELECT last_name FROM idm_identity WHERE last_name LIKE 'Dvo%' ORDER BY first_name LIMIT 1",
    );
    assert!(truth.contains('ř'), "seed data lacks diacritics: {truth}");
    assert_eq!(lines[1]["rows"][0]["last_name"], Value::from(truth));
}

#[test]
fn reader_may_open_bridge_as_the_app_user() {
    let broker = BrokerProcess::start();
    let ran = run(it_client(READER, &broker).args([
        "--db",
        "bridge",
        "--user",
        "bridge",
        "q:SELECT current_database() AS db, current_user AS who",
    ]));
    assert_eq!(ran.code, 0, "{ran:?}");
    let lines = json_lines(&ran);
    assert_eq!(lines[0]["rows"][0]["db"], "bridge");
    assert_eq!(lines[0]["rows"][0]["who"], "bridge");
}

#[test]
fn a_stranger_is_denied_and_told_who_was_refused() {
    let broker = BrokerProcess::start();
    let ran = run(it_client(NOBODY, &broker).arg("q:SELECT 1"));
    assert_eq!(ran.code, 1, "{ran:?}");
    let err = &json_lines(&ran)[0]["error"];
    assert_eq!(err["code"], "denied", "{ran:?}");
    assert_eq!(err["denied"], true);
    let message = err["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(NOBODY) && message.contains("czechidm"),
        "{message}"
    );

    let cli = run(iam_pg(NOBODY, &broker).args(["-c", "SELECT 1"]));
    assert_eq!(cli.code, 3, "denied exits 3: {cli:?}");
    assert!(
        cli.stderr.contains("denied") || cli.stderr.contains("may not"),
        "{cli:?}"
    );
    assert!(broker.log().contains("session refused by policy"));
}

#[test]
fn reader_is_denied_databases_and_users_no_rule_grants() {
    let broker = BrokerProcess::start();
    let ran =
        run(iam_pg(READER, &broker).args(["-d", "czechidm", "-U", "iam_reader", "-c", "SELECT 1"]));
    assert_eq!(ran.code, 3, "{ran:?}");
    let ran = run(iam_pg(WRITER, &broker).args(["-d", "bridge", "-c", "SELECT 1"]));
    assert_eq!(ran.code, 3, "{ran:?}");
}

#[test]
fn a_group_grants_its_members() {
    let broker = BrokerProcess::start();
    let ran =
        run(iam_pg(OPERATOR, &broker).args(["-c", "SELECT 42 AS answer", "--format", "json"]));
    assert_eq!(ran.code, 0, "{ran:?}");
    let rows: Value = serde_json::from_str(&ran.stdout).expect("json output");
    assert_eq!(rows[0]["answer"], 42);
    // The group rule grants postgres only.
    let ran = run(iam_pg(OPERATOR, &broker).args(["-U", "czechidm", "-c", "SELECT 1"]));
    assert_eq!(ran.code, 3, "{ran:?}");
}

#[test]
fn the_broker_reports_the_kernel_identity() {
    let broker = BrokerProcess::start();
    let ran = run(it_client(OPERATOR, &broker)
        .arg("q:SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()"));
    assert_eq!(ran.code, 0, "{ran:?}");
    let name = json_lines(&ran)[0]["rows"][0]["application_name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        name.starts_with("pgbroker ") && name.contains(OPERATOR),
        "{name}"
    );
}

#[test]
fn streams_a_large_result_in_chunks() {
    let broker = BrokerProcess::start();
    let mut raw = RawClient::connect(&broker);
    raw.call(serde_json::json!({"id": 1, "op": "open"}));
    let frames = raw.call(serde_json::json!({"id": 2, "op": "query",
        "sql": "SELECT username, first_name, last_name FROM idm_identity_bench ORDER BY username LIMIT 5000"}));
    let chunks = frames.iter().filter(|f| f["type"] == "rows").count();
    assert!(chunks > 1, "5000 rows arrived in {chunks} chunk(s)");
    let rows: usize = frames
        .iter()
        .filter(|f| f["type"] == "rows")
        .map(|f| f["rows"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(rows, 5000);
    let done = frames.last().expect("done");
    assert_eq!(
        (done["type"].as_str(), done["rows"].as_u64()),
        (Some("done"), Some(5000))
    );
}
