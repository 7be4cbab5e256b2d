//! Scripts written for psql run unchanged with iam-pg (issue 16): the real
//! psql 15 (inside the database container, connected as the same database
//! user) and iam-pg (through the broker) run the same script files and
//! command lines; standard output, standard error (with `psql` read as
//! `iam-pg`) and the exit status must be the same.
//!
//! The scripts print through `\echo`, `\qecho`, `\gset` and command tags
//! rather than result tables: the tables are psql's output side, tested
//! where that is built.

use iam_pgbroker_tests::*;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// A folder of script files, present at the same path on the host and in
/// the container (so that `psql:FILE:LINE:` names the same file).
struct Scripts {
    dir: PathBuf,
}

impl Scripts {
    fn new(files: &[(&str, &str)]) -> Scripts {
        let dir = std::env::temp_dir().join(unique_name("psqlscripts"));
        std::fs::create_dir_all(&dir).expect("create the script folder");
        for (name, text) in files {
            std::fs::write(dir.join(name), text).expect("write a script");
        }
        // The demo users read the scripts and write `\o` files here.
        Command::new("chmod")
            .args(["-R", "a+rwX"])
            .arg(&dir)
            .status()
            .expect("chmod");
        let app = Appliance::get();
        docker(&[
            "exec",
            &app.container("czechidm"),
            "mkdir",
            "-p",
            &dir.display().to_string(),
        ]);
        for (name, _) in files {
            let path = dir.join(name).display().to_string();
            docker(&[
                "cp",
                &path,
                &format!("{}:{path}", app.container("czechidm")),
            ]);
        }
        Scripts { dir }
    }

    /// The real psql, as database user czechidm, in the script folder.
    fn psql(&self, args: &[&str], stdin: &str) -> Ran {
        let app = Appliance::get();
        let mut cmd = Command::new("docker");
        cmd.args(["exec", "-i", "-w"])
            .arg(&self.dir)
            .arg(app.container("czechidm"))
            .args([
                "sh",
                "-c",
                // The password stays inside the container.
                "PGPASSWORD=\"$(cat /secrets/czechidm.pwfile)\" exec psql -X -h 127.0.0.1 -U czechidm -d czechidm \"$@\"",
                "psql",
            ])
            .args(args);
        feed(&mut cmd, stdin)
    }

    /// iam-pg, as the demo writer through `broker`, in the script folder.
    fn iam_pg(&self, broker: &BrokerProcess, args: &[&str], stdin: &str) -> Ran {
        let mut cmd = iam_pg(WRITER, broker);
        cmd.current_dir(&self.dir)
            .args(["-X", "-d", "czechidm", "-U", "czechidm"])
            .args(args);
        feed(&mut cmd, stdin)
    }

    /// A file `\o` wrote in the container.
    fn psql_file(&self, name: &str) -> String {
        let app = Appliance::get();
        docker(&[
            "exec",
            &app.container("czechidm"),
            "cat",
            &self.dir.join(name).display().to_string(),
        ])
    }

    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }
}

impl Drop for Scripts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn feed(cmd: &mut Command, stdin: &str) -> Ran {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.as_bytes());
    }
    let out = child.wait_with_output().expect("wait");
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs the same arguments and input through psql and iam-pg and checks
/// that they behave the same; returns iam-pg's run.
fn same(scripts: &Scripts, broker: &BrokerProcess, args: &[&str], stdin: &str) -> Ran {
    let theirs = scripts.psql(args, stdin);
    let ours = scripts.iam_pg(broker, args, stdin);
    let expected_stderr = theirs.stderr.replace("psql:", "iam-pg:");
    assert_eq!(
        (ours.code, ours.stdout.as_str(), ours.stderr.as_str()),
        (
            theirs.code,
            theirs.stdout.as_str(),
            expected_stderr.as_str()
        ),
        "{args:?}\n--- psql:\n{theirs:?}\n--- iam-pg:\n{ours:?}"
    );
    ours
}

fn table(tag: &str) -> String {
    Appliance::get().scratch_table(tag, "id int primary key, note text", "(1, 'original')")
}

fn note(table: &str) -> String {
    Appliance::get().psql(
        "czechidm",
        &format!("SELECT note FROM {table} WHERE id = 1"),
    )
}

fn reset(table: &str) {
    Appliance::get().psql(
        "czechidm",
        &format!("UPDATE {table} SET note = 'original' WHERE id = 1"),
    );
}

#[test]
fn variables_conditionals_and_echo_like_psql() {
    let scripts = Scripts::new(&[(
        "vars.sql",
        "\\set who 'O''Brien'\n\
         \\set n 41\n\
         SELECT :n + 1 AS answer, :'who' AS quoted, length(:'who') AS len \\gset\n\
         \\echo answer=:answer quoted=:quoted len=:len\n\
         \\echo -n no newline\n\
         \\echo ' and more'\n\
         \\if :{?answer}\n\
         \\echo has answer\n\
         \\elif true\n\
         \\echo not here\n\
         \\else\n\
         \\echo nor here\n\
         \\endif\n\
         \\if false\n\
         SELECT 1/0;\n\
         \\echo skipped\n\
         \\elif :{?len}\n\
         \\echo elif ran\n\
         \\endif\n\
         SELECT 'a;b' AS \"x;y\", $$c;d$$ AS z -- a comment; here\n\
         \\gset p_\n\
         \\echo :p_x;y :p_z :unknown\n\
         \\unset n\n\
         \\echo :n\n\
         \\qecho qecho goes to the output\n\
         \\warn warn goes to stderr\n",
    )]);
    let broker = BrokerProcess::start();
    let ran = same(&scripts, &broker, &["-f", "vars.sql"], "");
    assert!(
        ran.stdout.contains("answer=42 quoted=O'Brien len=7"),
        "{ran:?}"
    );
    assert!(ran.stdout.contains("has answer\nelif ran\n"), "{ran:?}");
    same(
        &scripts,
        &broker,
        &["-v", "ON_ERROR_STOP=1", "-f", "vars.sql"],
        "",
    );
    // The same lines on standard input.
    let text = std::fs::read_to_string(scripts.dir.join("vars.sql")).unwrap();
    same(&scripts, &broker, &[], &text);
}

#[test]
fn an_error_mid_script_with_and_without_on_error_stop() {
    let scripts = Scripts::new(&[(
        "broken.sql",
        "\\echo before\n\
         SELECT nope\n\
         FROM pg_class;\n\
         \\echo after the error\n\
         \\echo error=:ERROR sqlstate=:SQLSTATE last=:LAST_ERROR_SQLSTATE\n\
         \\echo :LAST_ERROR_MESSAGE\n\
         \\foo\n\
         SELECT 1 \\gset\n\
         \\echo error=:ERROR\n",
    )]);
    let broker = BrokerProcess::start();
    let ran = same(&scripts, &broker, &["-f", "broken.sql"], "");
    assert_eq!(ran.code, 0);
    assert!(ran.stderr.contains("iam-pg:broken.sql:3: ERROR:  column \"nope\" does not exist\nLINE 1: SELECT nope\n               ^\n"), "{ran:?}");
    let stopped = same(
        &scripts,
        &broker,
        &["-v", "ON_ERROR_STOP=1", "-f", "broken.sql"],
        "",
    );
    assert_eq!(stopped.code, 3);
    assert_eq!(stopped.stdout, "before\n");
    // -c: exit 1, no locus.
    let ran = same(
        &scripts,
        &broker,
        &["-c", "BEGIN; SELECT nope; SELECT 2"],
        "",
    );
    assert!(
        ran.stderr
            .contains("LINE 1: BEGIN; SELECT nope; SELECT 2\n                      ^"),
        "{ran:?}"
    );
    same(&scripts, &broker, &["-c", "\\foo"], "");
    same(
        &scripts,
        &broker,
        &[
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            "SELECT nope",
            "-c",
            "\\echo not reached",
        ],
        "",
    );
    same(
        &scripts,
        &broker,
        &["-c", "SELECT nope", "-c", "\\echo reached"],
        "",
    );
    // Syntax errors are found by the broker's guard (PostgreSQL's own
    // grammar, through pg_query) before PostgreSQL sees the text; the
    // guard gives the parser's position, so the caret is psql's too.
    let ran = same(&scripts, &broker, &["-c", "SELECT * FORM pg_class"], "");
    assert!(
        ran.stderr
            .contains("LINE 1: SELECT * FORM pg_class\n                 ^"),
        "{ran:?}"
    );
    same(
        &scripts,
        &broker,
        &[],
        "SELECT 1;\nSELECT 'ž',\n  2 FORM x;\nSELECT (;\n",
    );
    // A missing file: exit 1.
    let ours = scripts.iam_pg(&broker, &["-f", "missing.sql"], "");
    assert_eq!(ours.code, 1, "{ours:?}");
    assert_eq!(
        ours.stderr,
        "iam-pg: error: missing.sql: No such file or directory\n"
    );
    // An unclosed \if.
    same(
        &scripts,
        &broker,
        &["-v", "ON_ERROR_STOP=1"],
        "\\if true\n\\echo in\n",
    );
}

#[test]
fn a_fix_script_with_begin_and_commit_in_a_write_session() {
    let t = table("fix");
    let scripts = Scripts::new(&[
        (
            "fix.sql",
            &format!(
                "BEGIN;\n\
                 UPDATE {t} SET note = 'fixed' WHERE id = 1;\n\
                 INSERT INTO {t} VALUES (2, 'new');\n\
                 DELETE FROM {t} WHERE id = 2;\n\
                 COMMIT;\n"
            ),
        ),
        (
            "fails.sql",
            &format!(
                "BEGIN;\n\
                 UPDATE {t} SET note = 'half' WHERE id = 1;\n\
                 UPDATE {t} SET id = 'x' WHERE id = 1;\n\
                 UPDATE {t} SET note = 'ignored' WHERE id = 1;\n\
                 \\echo :SQLSTATE\n\
                 COMMIT;\n\
                 \\echo :ERROR\n"
            ),
        ),
        (
            "autocommit.sql",
            &format!(
                "UPDATE {t} SET note = 'one' WHERE id = 1;\n\
                 SELECT nope;\n\
                 COMMIT;\n\
                 ROLLBACK;\n\
                 BEGIN;\n\
                 BEGIN;\n\
                 ROLLBACK;\n"
            ),
        ),
    ]);
    let broker = BrokerProcess::start();
    let args = ["--write", "-f", "fix.sql"];
    // psql first (its run commits), then iam-pg from the same start.
    let theirs = scripts.psql(&args[1..], "");
    assert_eq!(note(&t), "fixed");
    reset(&t);
    let ours = scripts.iam_pg(&broker, &args, "");
    assert_eq!(
        (ours.code, &ours.stdout, &ours.stderr),
        (theirs.code, &theirs.stdout, &theirs.stderr),
        "{ours:?}"
    );
    assert_eq!(
        ours.stdout,
        "BEGIN\nUPDATE 1\nINSERT 0 1\nDELETE 1\nCOMMIT\n"
    );
    assert_eq!(note(&t), "fixed");

    // An error inside BEGIN … COMMIT: the rest is refused, COMMIT rolls back.
    reset(&t);
    let theirs = scripts.psql(&["-f", "fails.sql"], "");
    assert_eq!(note(&t), "original");
    let ours = scripts.iam_pg(&broker, &["--write", "-f", "fails.sql"], "");
    assert_eq!(
        (ours.code, &ours.stdout, &ours.stderr),
        (
            theirs.code,
            &theirs.stdout,
            &theirs.stderr.replace("psql:", "iam-pg:")
        ),
        "{ours:?}"
    );
    assert!(
        ours.stdout.ends_with("25P02\nROLLBACK\nfalse\n"),
        "{ours:?}"
    );
    assert_eq!(note(&t), "original");

    // AUTOCOMMIT: each statement outside BEGIN commits on its own.
    let theirs = scripts.psql(&["-f", "autocommit.sql"], "");
    assert_eq!(note(&t), "one");
    reset(&t);
    let ours = scripts.iam_pg(&broker, &["--write", "-f", "autocommit.sql"], "");
    assert_eq!(
        (ours.code, &ours.stdout, &ours.stderr),
        (
            theirs.code,
            &theirs.stdout,
            &theirs.stderr.replace("psql:", "iam-pg:")
        ),
        "{ours:?}"
    );
    assert_eq!(note(&t), "one");
}

#[test]
fn single_transaction_and_multi_statement_commands_are_atomic() {
    let t = table("atomic");
    let scripts = Scripts::new(&[]);
    let broker = BrokerProcess::start();
    // One -c with several statements is one transaction in psql.
    let c = format!("UPDATE {t} SET note = 'lost' WHERE id = 1; SELECT 1/0");
    let theirs = scripts.psql(&["-c", &c], "");
    assert_eq!(note(&t), "original");
    let ours = scripts.iam_pg(&broker, &["--write", "-c", &c], "");
    assert_eq!(
        (ours.code, &ours.stdout, &ours.stderr),
        (theirs.code, &theirs.stdout, &theirs.stderr),
        "{ours:?}"
    );
    assert_eq!(note(&t), "original");

    // -1 wraps every -c; a failure rolls all back.
    let first = format!("UPDATE {t} SET note = 'first' WHERE id = 1");
    let args = [
        "-1",
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        first.as_str(),
        "-c",
        "SELECT nope",
    ];
    let theirs = scripts.psql(&args, "");
    assert_eq!(note(&t), "original");
    let mut with_write = vec!["--write"];
    with_write.extend_from_slice(&args);
    let ours = scripts.iam_pg(&broker, &with_write, "");
    assert_eq!(
        (ours.code, &ours.stdout, &ours.stderr),
        (theirs.code, &theirs.stdout, &theirs.stderr),
        "{ours:?}"
    );
    assert_eq!(note(&t), "original");
    // And commits when all succeed.
    let ours = scripts.iam_pg(
        &broker,
        &["--write", "-1", "-c", &first, "-c", "\\echo ok"],
        "",
    );
    assert_eq!(
        (ours.code, ours.stdout.as_str()),
        (0, "UPDATE 1\nok\n"),
        "{ours:?}"
    );
    assert_eq!(note(&t), "first");
}

#[test]
fn include_output_redirection_and_g() {
    let scripts = Scripts::new(&[
        (
            "main.sql",
            "\\echo main\n\
             \\i sub/inc.sql\n\
             \\echo back from=:from\n\
             \\o out.txt\n\
             \\qecho into the file\n\
             SELECT 7 AS seven \\gset\n\
             \\o\n\
             \\qecho to stdout again :seven\n\
             \\i nope.sql\n\
             SELECT 1\n\
             \\p\n\
             \\r\n\
             \\p\n",
        ),
        ("inc.sql", "\\echo wrong folder\n"),
    ]);
    std::fs::create_dir_all(scripts.dir.join("sub")).unwrap();
    std::fs::write(
        scripts.dir.join("sub/inc.sql"),
        "\\echo in sub\n\\set from sub\n\\ir inc2.sql\nSELECT broken;\n",
    )
    .unwrap();
    std::fs::write(
        scripts.dir.join("sub/inc2.sql"),
        "\\echo relative include\n",
    )
    .unwrap();
    let app = Appliance::get();
    for f in ["sub/inc.sql", "sub/inc2.sql"] {
        let path = scripts.dir.join(f).display().to_string();
        docker(&[
            "exec",
            &app.container("czechidm"),
            "mkdir",
            "-p",
            &scripts.dir.join("sub").display().to_string(),
        ]);
        docker(&[
            "cp",
            &path,
            &format!("{}:{path}", app.container("czechidm")),
        ]);
    }
    Command::new("chmod")
        .args(["-R", "a+rwX"])
        .arg(&scripts.dir)
        .status()
        .unwrap();
    let broker = BrokerProcess::start();
    let ran = same(&scripts, &broker, &["-f", "main.sql"], "");
    assert!(
        ran.stdout
            .contains("in sub\nrelative include\nback from=sub\n"),
        "{ran:?}"
    );
    assert!(
        ran.stderr
            .contains("iam-pg:sub/inc.sql:4: ERROR:  column \"broken\""),
        "{ran:?}"
    );
    // (`docker` trims what the container printed.)
    assert_eq!(
        scripts.file("out.txt").trim_end(),
        scripts.psql_file("out.txt")
    );
    assert_eq!(scripts.file("out.txt"), "into the file\n");
}

#[test]
fn quiet_echo_and_command_tags() {
    let scripts = Scripts::new(&[(
        "tags.sql",
        "SELECT 1 WHERE false \\gset\n\
         \\set QUIET on\n\
         BEGIN;\n\
         COMMIT;\n\
         \\set QUIET off\n\
         \\set ON_ERROR_STOP maybe\n\
         \\set ECHO queries\n\
         SELECT 2 AS two \\gset\n\
         \\echo :two\n",
    )]);
    let broker = BrokerProcess::start();
    same(&scripts, &broker, &["-f", "tags.sql"], "");
    same(&scripts, &broker, &["-q", "-f", "tags.sql"], "");
    same(&scripts, &broker, &["-a", "-f", "tags.sql"], "");
    same(&scripts, &broker, &["-e", "-c", "SELECT nope"], "");
    same(
        &scripts,
        &broker,
        &["-b", "-f", "tags.sql", "-c", "SELECT nope"],
        "",
    );
}

#[test]
fn exit_statuses_for_scripts() {
    let scripts = Scripts::new(&[]);
    let broker = BrokerProcess::start();
    // ON_ERROR_STOP on standard input: 3, as psql.
    let ran = same(
        &scripts,
        &broker,
        &["-v", "ON_ERROR_STOP=1"],
        "\\echo one\nSELECT nope;\n\\echo two\n",
    );
    assert_eq!(ran.code, 3);
    // No session: the broker's own statuses (psql would say 2).
    let mut cmd = iam_pg(NOBODY, &broker);
    let ran = run(cmd.args(["-c", "SELECT 1"]));
    assert_eq!(ran.code, 3, "{ran:?}");
    let mut cmd = as_user(WRITER, &workspace_bin("iam-pg"));
    cmd.env("IAM_PGBROKER_SOCKET", "/nonexistent/iam-pg.sock");
    let ran = run(cmd.args(["-f", "-"]));
    assert_eq!(ran.code, 4, "{ran:?}");
    // A statement the broker refuses is an error like any other.
    let ran = scripts.iam_pg(
        &broker,
        &["-v", "ON_ERROR_STOP=1"],
        "DROP TABLE idm_identity;\n\\echo not reached\n",
    );
    assert_eq!(ran.code, 3, "{ran:?}");
    assert!(ran.stderr.starts_with("ERROR:  "), "{ran:?}");
    assert_eq!(ran.stdout, "");
}

#[test]
fn copy_to_and_from_client_files_like_psql() {
    let t = table("copy");
    let scripts = Scripts::new(&[("in.csv", "2,two\n3,\"th,ree\"\n4,\n")]);
    let broker = BrokerProcess::start();

    // Out (a read session may): a query and a table, to a client file and
    // to standard output, through COPY … TO STDOUT.
    let out = format!(
        "\\copy (SELECT id, note, NULL AS n FROM {t} ORDER BY id) to 'out.csv' csv header\n\
         \\copy {t} to stdout\n\
         \\copy {t} (note) to pstdout with (format csv, force_quote *)\n"
    );
    let ran = same(&scripts, &broker, &[], &out);
    // psql prints `COPY n` only when the data went to a file.
    assert_eq!(ran.stdout, "COPY 1\n1\toriginal\n\"original\"\n", "{ran:?}");
    assert_eq!(scripts.file("out.csv"), "id,note,n\n1,original,\n");
    // (docker exec's output loses the last newline.)
    assert_eq!(
        scripts.file("out.csv").trim_end(),
        scripts.psql_file("out.csv")
    );

    // A read session may not copy in: PostgreSQL's own refusal, as psql
    // connected read-only would get it (the broker's guard says it first).
    let refused = scripts.iam_pg(&broker, &[], &format!("\\copy {t} from 'in.csv' csv\n"));
    assert!(refused.stderr.contains("ERROR:  "), "{refused:?}");
    assert_eq!(
        Appliance::get().psql("czechidm", &format!("SELECT count(*) FROM {t}")),
        "1"
    );

    // In, in a write session, inside the script's transaction: what psql
    // copies, iam-pg copies (each into its own copy of the table).
    let script = |table: &str| {
        format!("BEGIN;\n\\copy {table} from 'in.csv' csv\nCOMMIT;\nSELECT count(*), count(note) FROM {table};\n")
    };
    let theirs = scripts.psql(&[], &script(&t));
    let mine = table("copy_in");
    let ours = scripts.iam_pg(&broker, &["--write"], &script(&mine));
    assert_eq!(
        (ours.code, ours.stdout.as_str(), ours.stderr.as_str()),
        (theirs.code, theirs.stdout.as_str(), theirs.stderr.as_str()),
        "--- psql:\n{theirs:?}\n--- iam-pg:\n{ours:?}"
    );
    let rows = |table: &str| {
        Appliance::get().psql(
            "czechidm",
            &format!("SELECT string_agg(id || ':' || coalesce(note, 'NULL'), ' ' ORDER BY id) FROM {table}"),
        )
    };
    assert_eq!(rows(&mine), "1:original 2:two 3:th,ree 4:NULL");
    assert_eq!(rows(&mine), rows(&t));
}
