//! `iam-pg` at the prompt as an operator uses psql, in a real
//! pseudo-terminal, as an unprivileged OS user: a query and its table, Tab
//! completing a table, a column and a backslash command's argument, `\d`,
//! `\h`, `\e` with `EDITOR`, and Ctrl-C cancelling a running statement on
//! the server while the session stays usable.

use crate::ops_cli::{history_dir, Terminal};
use iam_pgbroker_tests::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

/// `iam-pg` for the reader on a terminal, with its own history and
/// `extra` environment.
fn reader_prompt(broker: &BrokerProcess, dir: &Path, extra: &[(&str, &Path)]) -> Terminal {
    let mut command = as_user(READER, &workspace_bin("iam-pg"));
    command
        .arg("--socket")
        .arg(&broker.socket)
        .env("IAM_PG_HISTORY", dir.join("history"));
    for (name, value) in extra {
        command.env(name, value);
    }
    Terminal::spawn(command)
}

#[test]
fn prompt_completes_describes_helps_and_edits() {
    let app = Appliance::get();
    let broker = BrokerProcess::start();
    let dir = history_dir(READER, &broker);
    // An editor that writes a statement into the file it is given.
    let editor = dir.join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nprintf 'SELECT 4242 AS edited_by_editor;\\n' > \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&editor, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut term = reader_prompt(&broker, &dir, &[("EDITOR", &editor)]);
    let count = app.psql("czechidm", "SELECT count(*) FROM idm_identity");

    // psql's prompt for a read session.
    term.expect("czechidm=> ");
    term.line("SELECT 40 + 2 AS answer;");
    let table = term.expect("(1 row)");
    assert!(table.contains("answer"), "{table}");
    assert!(table.lines().any(|l| l.trim() == "42"), "{table}");
    term.expect("czechidm=> ");

    // Tab completes the table name; the statement then runs on it.
    term.keys("SELECT count(*) AS tab_count FROM idm_identi");
    term.expect("idm_identi");
    term.keys("\t");
    term.expect("idm_identity");
    term.line(";");
    let result = term.expect("(1 row)");
    assert!(
        result.lines().any(|l| l.trim() == count),
        "the completed statement did not count idm_identity ({count}):\n{result}"
    );
    term.expect("czechidm=> ");

    // A column of the table the statement names.
    term.keys("SELECT count(*) AS named FROM idm_identity WHERE userna");
    term.expect("userna");
    term.keys("\t");
    term.expect("username");
    term.line("IS NOT NULL;");
    let result = term.expect("(1 row)");
    assert!(result.contains("named"), "{result}");
    term.expect("czechidm=> ");

    // A backslash command's argument, then the description.
    term.keys("\\d idm_identi");
    term.expect("idm_identi");
    term.keys("\t");
    term.expect("idm_identity");
    term.line("");
    let described = term.expect("czechidm=> ");
    assert!(
        !described.contains("Did not find"),
        "completion did not finish the name:\n{described}"
    );
    for column in ["username", "first_name", "email"] {
        assert!(described.contains(column), "{column} missing:\n{described}");
    }
    assert!(described.contains("character varying(255)"), "{described}");

    // \h in psql's layout.
    term.line("\\h SELECT");
    let help = term.expect("URL: https://www.postgresql.org/docs/15/sql-select.html");
    assert!(help.contains("Command:     SELECT"), "{help}");
    assert!(
        help.contains("Description: retrieve rows from a table or view"),
        "{help}"
    );
    term.expect("czechidm=> ");

    // \e: the editor's statement ends with `;`, so it runs.
    term.line("\\e");
    let edited = term.expect("(1 row)");
    assert!(edited.contains("edited_by_editor"), "{edited}");
    assert!(edited.lines().any(|l| l.trim() == "4242"), "{edited}");
    term.expect("czechidm=> ");

    term.line("\\q");
    let status = term.wait_exit();
    assert!(status.success(), "{status}\n{}", term.screen());
}

/// Ctrl-C while a statement runs cancels it on the server (the broker's
/// `cancel` through `CancelHandle`); the same session then runs the next
/// statement. Needs the client's `CancelHandle::cancel` (branch "server").
#[test]
fn ctrl_c_cancels_the_running_statement_and_the_session_goes_on() {
    let app = Appliance::get();
    let broker = BrokerProcess::start();
    let dir = history_dir(READER, &broker);
    let mut term = reader_prompt(&broker, &dir, &[]);
    let marker = unique_name("pty_cancel");
    let running = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%{marker}%' \
         AND state = 'active' AND pid <> pg_backend_pid()"
    );

    term.expect("czechidm=> ");
    // Long enough to outlive the test (the guard refuses pg_sleep).
    term.line(&format!(
        "SELECT count(*) AS {marker} FROM generate_series(1, 100000000000) g;"
    ));
    assert!(
        eventually(Duration::from_secs(20), || app.psql("czechidm", &running)
            == "1"),
        "the statement never ran on the server:\n{}",
        term.screen()
    );
    term.keys("\x03");
    let said = term.expect("canceling statement due to user request");
    assert!(said.contains("ERROR:  "), "{said}");
    term.expect("czechidm=> ");
    assert!(
        eventually(Duration::from_secs(5), || app.psql("czechidm", &running)
            == "0"),
        "the statement still runs on the server after Ctrl-C"
    );

    // The session is still there, and usable.
    term.line("SELECT 'still here' AS after_cancel;");
    let after = term.expect("(1 row)");
    assert!(after.contains("still here"), "{after}");
    term.expect("czechidm=> ");

    // Ctrl-C at the prompt drops the line being typed, as in psql.
    // As a person types: the line shows, then Ctrl-C, then a new prompt
    // (keys sent before the editor reads them may be dropped with the
    // interrupted line, as readline drops typeahead).
    term.keys("SELECT 'dropped");
    term.expect("SELECT 'dropped");
    term.keys("\x03");
    term.expect("czechidm=> ");
    term.line("SELECT 'typed anew' AS fresh;");
    let fresh = term.expect("(1 row)");
    // Had the line stayed, its open quote would have swallowed this one.
    assert!(fresh.contains("fresh"), "{fresh}");
    assert!(fresh.lines().any(|l| l.trim() == "typed anew"), "{fresh}");
    assert!(!fresh.contains("ERROR"), "{fresh}");

    term.line("\\q");
    let status = term.wait_exit();
    assert!(status.success(), "{status}\n{}", term.screen());
}
