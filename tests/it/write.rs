//! Writes: refused unless asked for and granted; committed only when the
//! client commits; rolled back when anything else happens.

use iam_pgbroker_tests::*;
use serde_json::Value;
use std::time::Duration;

fn first_json(ran: &Ran) -> Value {
    let line = ran
        .stdout
        .lines()
        .next()
        .unwrap_or_else(|| panic!("no output: {ran:?}"));
    serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {ran:?}"))
}

fn table_with_row() -> String {
    Appliance::get().scratch_table("w", "id int primary key, note text", "(1, 'original')")
}

fn note(table: &str) -> String {
    Appliance::get().psql(
        "czechidm",
        &format!("SELECT note FROM {table} WHERE id = 1"),
    )
}

#[test]
fn readonly_default_refuses_an_update_with_25006() {
    let table = table_with_row();
    let broker = BrokerProcess::start();
    // WRITER has a write grant, but did not ask for a write session.
    let ran = run(it_client(WRITER, &broker).args([
        "--user",
        "czechidm",
        &format!("x:UPDATE {table} SET note = 'changed' WHERE id = 1"),
    ]));
    assert_eq!(ran.code, 1, "{ran:?}");
    let err = &first_json(&ran)["error"];
    assert_eq!(err["sqlstate"], "25006", "{ran:?}");
    assert_eq!(err["read_only"], true);
    assert_eq!(note(&table), "original");

    let cli = run(iam_pg(WRITER, &broker).args([
        "-U",
        "czechidm",
        "-c",
        &format!("UPDATE {table} SET note = 'x'"),
    ]));
    assert_eq!(cli.code, 1, "{cli:?}");
    assert!(
        cli.stderr
            .contains("ERROR:  cannot execute UPDATE in a read-only transaction"),
        "{cli:?}"
    );
    assert_eq!(note(&table), "original");
}

#[test]
fn readonly_false_without_a_write_grant_is_denied() {
    let table = table_with_row();
    let broker = BrokerProcess::start();
    let ran = run(it_client(READER, &broker).args([
        "--user",
        "czechidm",
        "--write",
        &format!("x:UPDATE {table} SET note = 'changed'"),
    ]));
    assert_eq!(ran.code, 1, "{ran:?}");
    let err = &first_json(&ran)["error"];
    assert_eq!(err["code"], "denied", "{ran:?}");
    assert!(
        err["message"]
            .as_str()
            .unwrap_or_default()
            .contains("read only"),
        "{ran:?}"
    );
    assert_eq!(note(&table), "original");
}

#[test]
fn a_granted_write_is_committed_by_the_closure_helper() {
    let table = table_with_row();
    let broker = BrokerProcess::start();
    let ran = run(it_client(WRITER, &broker).args([
        "--user",
        "czechidm",
        "--write",
        "--with",
        "p:changed",
        &format!("x:UPDATE {table} SET note = %s WHERE id = 1"),
        &format!("x:INSERT INTO {table} VALUES (2, 'second')"),
    ]));
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(first_json(&ran)["affected"], 1);
    assert_eq!(note(&table), "changed");
    let count = Appliance::get().psql("czechidm", &format!("SELECT count(*) FROM {table}"));
    assert_eq!(count, "2");
}

#[test]
fn the_closure_helper_rolls_back_when_the_closure_fails_or_panics() {
    let table = table_with_row();
    let broker = BrokerProcess::start();
    for ending in ["fail", "panic"] {
        let ran = run(it_client(WRITER, &broker).args([
            "--user",
            "czechidm",
            "--write",
            "--with",
            &format!("x:UPDATE {table} SET note = 'changed' WHERE id = 1"),
            ending,
        ]));
        assert_ne!(ran.code, 0, "{ran:?}");
        assert_eq!(note(&table), "original", "after {ending}");
    }
}

#[test]
fn manual_commit_then_rollback_in_one_session() {
    let table = table_with_row();
    let broker = BrokerProcess::start();
    let ran = run(it_client(WRITER, &broker).args([
        "--user",
        "czechidm",
        "--write",
        &format!("x:UPDATE {table} SET note = 'first' WHERE id = 1"),
        "commit",
        &format!("x:UPDATE {table} SET note = 'second' WHERE id = 1"),
        "rollback",
    ]));
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(note(&table), "first");
}

#[test]
fn the_cli_runs_several_commands_in_one_transaction_with_single_transaction() {
    // psql's -1: every -c in one transaction, rolled back if one fails.
    let table = table_with_row();
    let broker = BrokerProcess::start();
    let ok = run(iam_pg(WRITER, &broker).args([
        "-U",
        "czechidm",
        "--write",
        "-1",
        "-c",
        &format!("UPDATE {table} SET note = 'cli' WHERE id = 1"),
        "-c",
        &format!("INSERT INTO {table} VALUES (3, 'three')"),
    ]));
    assert_eq!(ok.code, 0, "{ok:?}");
    assert_eq!(note(&table), "cli");
    let failed = run(iam_pg(WRITER, &broker).args([
        "-U",
        "czechidm",
        "--write",
        "-1",
        "-c",
        &format!("UPDATE {table} SET note = 'lost' WHERE id = 1"),
        "-c",
        &format!("INSERT INTO {table} VALUES (3, 'duplicate')"),
    ]));
    assert_eq!(failed.code, 1, "{failed:?}");
    assert!(
        failed
            .stderr
            .contains("duplicate key value violates unique constraint"),
        "unique violation reported: {failed:?}"
    );
    assert_eq!(note(&table), "cli");
}

#[test]
fn a_client_killed_before_commit_leaves_the_row_unchanged() {
    let table = table_with_row();
    let broker = BrokerProcess::start();
    let mut child = Spawned::new(it_client(WRITER, &broker).args([
        "--user",
        "czechidm",
        "--write",
        &format!("x:UPDATE {table} SET note = 'uncommitted' WHERE id = 1"),
        "hang",
    ]));
    child.wait_for("HANG");
    child.child.kill().expect("SIGKILL");
    let _ = child.child.wait();
    assert_eq!(note(&table), "original");
    // The broker noticed and released the row: a new writer can update it
    // without waiting on the dead session's lock.
    assert!(eventually(Duration::from_secs(10), || broker
        .log()
        .contains("rolled back")));
    let ran = run(iam_pg(WRITER, &broker).args([
        "-U",
        "czechidm",
        "--write",
        "-c",
        &format!("UPDATE {table} SET note = 'next' WHERE id = 1"),
    ]));
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(note(&table), "next");
}

#[test]
fn sigterm_rolls_back_an_open_write_transaction() {
    let table = table_with_row();
    let mut broker = BrokerProcess::start();
    let mut child = Spawned::new(it_client(WRITER, &broker).args([
        "--user",
        "czechidm",
        "--write",
        &format!("x:UPDATE {table} SET note = 'uncommitted' WHERE id = 1"),
        "hang",
    ]));
    child.wait_for("HANG");
    broker.signal(libc::SIGTERM);
    let status = broker
        .wait_exit(Duration::from_secs(15))
        .expect("broker exits on SIGTERM");
    assert!(status.success(), "{status}");
    assert_eq!(note(&table), "original");
    let log = broker.log();
    assert!(
        log.contains("SIGTERM received") && log.contains("rolled back"),
        "{log}"
    );
    let _ = child.child.kill();
    let _ = child.child.wait();
}
