//! `iam-pg` prints results byte for byte as psql 15 does: the real
//! `/usr/bin/psql` connected straight to the appliance's PostgreSQL and
//! `iam-pg` through the broker run the same query with the same output
//! options, and their standard outputs must be identical — for every
//! common type × every format (aligned with each border and line style,
//! unaligned with its separators, expanded, `\x auto`, CSV, wrapped,
//! tuples only, `\pset null`, footer off, title), and for command tags
//! and `-o FILE`.

use iam_pgbroker_tests::*;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

/// Queries, by name. `types` has one value of each common type, text in
/// Czech, CJK, emoji, combining marks, tabs, newlines, `\r`, control
/// characters; the others exercise row counts, multi-line values and
/// headers, and widths.
const QUERIES: &[(&str, &str)] = &[
    (
        "types",
        r#"SELECT 1::int2 AS i2, (-2147483647)::int4 AS i4, 9223372036854775807::int8 AS i8,
           'NaN'::numeric AS nan, 123456789.123456789012345678901234567890::numeric AS big,
           'Infinity'::float8 AS inf, '-0'::float8 AS negz, 1e20::float8 AS e20,
           'NaN'::float4 AS f4nan, 1.5::float4 AS f4, true AS b, false AS f,
           'Příliš žluťoučký kůň úpěl ďábelské ódy'::text AS cz, '日本語テキスト' AS cjk,
           '😀🎉 ok' AS emoji, E'e\u0301a\u0308 combined' AS comb, E'a\tb\tccc\td' AS tabs,
           E'line1\nline two\nl3' AS nl, E'cr\rhere' AS cr, '' AS empty, NULL::text AS nul,
           E'\\xdeadbeef'::bytea AS by, '2024-02-29'::date AS d, '13:45:06.5'::time AS t,
           '13:45:06+02'::timetz AS tz, '2024-02-29 13:45:06.123'::timestamp AS ts,
           '2024-02-29 13:45:06.123+00'::timestamptz AS tstz,
           '1 year 2 mons 3 days 04:05:06'::interval AS iv, '{{1,2},{3,NULL}}'::int[] AS arr,
           '{"a b","c\"d",NULL,""}'::text[] AS qarr, '{"a": [1, 2]}'::json AS js,
           '{"a": null}'::jsonb AS jb, 'null'::jsonb AS jnull,
           'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS u, '192.168.0.1/24'::inet AS ip,
           '10.0.0.0/8'::cidr AS net, 12.34::money AS m, '[1,5)'::int4range AS r,
           '[2024-01-01 00:00+00,2024-02-01 00:00+00)'::tstzrange AS tr,
           ROW(1, 'x y', NULL) AS comp, '<a>1</a>'::xml AS x, 26::oid AS o,
           E'ctl\x01\x7f' AS ctl, E'x\u0085y' AS c1"#,
    ),
    (
        "many",
        "SELECT g AS id, repeat('ab', g % 7) AS s, g * 1.5 AS n, \
         CASE WHEN g % 3 = 0 THEN NULL ELSE 'v' || g END AS maybe \
         FROM generate_series(1, 25) g",
    ),
    ("one", "SELECT 42 AS answer"),
    ("empty", "SELECT 1 AS a, 'x'::text AS b WHERE false"),
    (
        "multiline",
        "SELECT 'short' AS a, E'a\\nbb\\nccc' AS \"two\nlines\", 5 AS n \
         UNION ALL SELECT E'x\\ny', 'z', 100000",
    ),
    (
        "wide",
        "SELECT repeat('abcdefghij', 5) AS long_text, 'second column value' AS other, \
         g * 12345 AS num, md5(g::text) AS hash FROM generate_series(1, 3) g",
    ),
];

/// Output settings, as command-line options both programs take.
const SETTINGS: &[&[&str]] = &[
    &[],
    &["-P", "border=0"],
    &["-P", "border=2"],
    &["-P", "linestyle=unicode"],
    &["-P", "linestyle=unicode", "-P", "border=0"],
    &["-P", "linestyle=unicode", "-P", "border=2"],
    &["-P", "linestyle=old-ascii"],
    &["-P", "linestyle=old-ascii", "-P", "border=0"],
    &["-P", "linestyle=old-ascii", "-P", "border=2"],
    &["-A"],
    &["-A", "-t"],
    &["-A", "-F", ";"],
    &["-A", "-R", "#"],
    &["-A", "-z", "-0"],
    &["-A", "-x"],
    &["-x"],
    &["-x", "-P", "border=0"],
    &["-x", "-P", "border=2"],
    &["-x", "-P", "linestyle=unicode"],
    &["-x", "-P", "linestyle=unicode", "-P", "border=2"],
    &["-x", "-P", "linestyle=old-ascii"],
    &["-x", "-P", "linestyle=old-ascii", "-P", "border=0"],
    &["-x", "-t"],
    &["-x", "-t", "-P", "border=2"],
    &["-x", "-P", "null=(null)", "-P", "title=Records"],
    &["-P", "expanded=auto", "-P", "columns=40"],
    &["-P", "expanded=auto", "-P", "columns=400"],
    &["--csv"],
    &["--csv", "-t"],
    &["--csv", "-P", "csv_fieldsep=;"],
    &["--csv", "-x"],
    &["-t"],
    &["-P", "null=(null)"],
    &["-P", "footer=off"],
    &["-P", "title=Tabulka č. 1"],
    &["-A", "-P", "title=T"],
    &["-P", "format=wrapped", "-P", "columns=40"],
    &["-P", "format=wrapped", "-P", "columns=60", "-P", "border=2"],
    &[
        "-P",
        "format=wrapped",
        "-P",
        "columns=40",
        "-P",
        "linestyle=unicode",
    ],
    &["-P", "format=wrapped", "-P", "columns=40", "-x"],
    &["-P", "numericlocale=on"],
    &[
        "-P",
        "format=wrapped",
        "-P",
        "columns=30",
        "-P",
        "border=0",
        "-P",
        "linestyle=old-ascii",
    ],
    &[
        "-P",
        "format=wrapped",
        "-P",
        "columns=30",
        "-x",
        "-P",
        "border=2",
        "-P",
        "linestyle=unicode",
    ],
    &["-P", "format=wrapped", "-P", "columns=10"],
    &["-x", "-P", "border=2", "-P", "linestyle=old-ascii"],
    &[
        "-P",
        "title=A title longer than the narrow tables\nwith a second line",
    ],
    &["-A", "-x", "-t"],
];

/// The real psql 15 of this machine, connected over TCP to `db`'s
/// container as the superuser, in a UTF-8 locale (psql measures widths in
/// the client encoding), with nothing from the caller's environment or
/// ~/.psqlrc.
fn psql(db: &str) -> Command {
    let app = Appliance::get();
    let address = docker(&[
        "inspect",
        "-f",
        &format!(
            "{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}",
            app.network()
        ),
        &app.container(db),
    ]);
    let password = std::fs::read_to_string(app.pwfile(db, "postgres")).expect("pwfile");
    let mut cmd = Command::new("/usr/bin/psql");
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C.UTF-8")
        .env("PGCLIENTENCODING", "UTF8")
        .env("PGPASSWORD", password.trim_end())
        .args(["-X", "-h", &address, "-U", "postgres", "-d", db])
        .stdin(Stdio::null());
    cmd
}

/// Standard output of `cmd`, which must succeed.
fn stdout_of(cmd: &mut Command, what: &str) -> Vec<u8> {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Bytes as readable text for a failure message.
fn shown(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace('\0', "\\0")
}

#[test]
fn every_type_in_every_format_is_printed_as_psql_prints_it() {
    let broker = BrokerProcess::start();
    let mut mismatches = Vec::new();
    let mut compared = 0;
    for (name, sql) in QUERIES {
        for settings in SETTINGS {
            let expected = stdout_of(psql("czechidm").args(*settings).args(["-c", sql]), "psql");
            // Anchors: psql's output really is captured, and is what it is.
            if *name == "one" && settings.is_empty() {
                assert_eq!(shown(&expected), " answer \n--------\n     42\n(1 row)\n\n");
            }
            if *name == "one" && *settings == ["-A", "-z", "-0"] {
                assert_eq!(expected, b"answer\x0042\0(1 row)\0");
            }
            let got = stdout_of(
                iam_pg(READER, &broker)
                    .env("LC_ALL", "C.UTF-8")
                    .args(["-d", "czechidm", "-U", "postgres"])
                    .args(*settings)
                    .args(["-c", sql]),
                "iam-pg",
            );
            compared += 1;
            if got != expected {
                mismatches.push(format!(
                    "{name} {settings:?}\n--- psql\n{}--- iam-pg\n{}",
                    shown(&expected),
                    shown(&got)
                ));
            }
        }
    }
    assert_eq!(compared, QUERIES.len() * SETTINGS.len());
    assert!(
        mismatches.is_empty(),
        "{} of {compared} outputs differ from psql's:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[test]
fn command_tags_are_psqls() {
    let broker = BrokerProcess::start();
    let app = Appliance::get();
    let statements = [
        "INSERT INTO {t} VALUES (1, 'a'), (2, 'b')",
        "UPDATE {t} SET name = 'c' WHERE id = 2",
        "INSERT INTO {t} VALUES (3, 'd') RETURNING id, name",
        "DELETE FROM {t} WHERE id > 1",
        "SELECT count(*) FROM {t}",
    ];
    let ours = app.scratch_table("psqltags", "id int, name text", "");
    let theirs = app.scratch_table("psqltags", "id int, name text", "");
    let mut psql_cmd = psql("czechidm");
    let mut iam_cmd = iam_pg(WRITER, &broker);
    iam_cmd.args(["-d", "czechidm", "-U", "czechidm", "--write"]);
    for s in statements {
        psql_cmd.args(["-c", &s.replace("{t}", &theirs)]);
        iam_cmd.args(["-c", &s.replace("{t}", &ours)]);
    }
    let expected = stdout_of(&mut psql_cmd, "psql");
    let got = stdout_of(&mut iam_cmd, "iam-pg");
    assert_eq!(shown(&got), shown(&expected));
    // The expected text is psql's, and it has the tags in it.
    let text = shown(&expected);
    for tag in ["INSERT 0 2\n", "UPDATE 1\n", "INSERT 0 1\n", "DELETE 2\n"] {
        assert!(text.contains(tag), "{tag:?} in {text}");
    }
    // -q: no tags, as psql -q.
    let quiet = stdout_of(
        iam_pg(WRITER, &broker).args([
            "-d",
            "czechidm",
            "-U",
            "czechidm",
            "--write",
            "-q",
            "-c",
            &format!("DELETE FROM {ours}"),
        ]),
        "iam-pg -q",
    );
    assert_eq!(shown(&quiet), "");
}

#[test]
fn output_file_holds_what_psql_writes() {
    let broker = BrokerProcess::start();
    let dir = std::env::temp_dir().join(unique_name("psql-output"));
    std::fs::create_dir_all(&dir).expect("mkdir");
    // The reader (another OS user) must be able to create its file.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let sql = "SELECT 'Žluťoučký' AS name, 7 AS n";
    let theirs = dir.join("psql.txt");
    let ours = dir.join("iam-pg.txt");
    let printed = stdout_of(
        psql("czechidm")
            .args(["-x", "-o"])
            .arg(&theirs)
            .args(["-c", sql]),
        "psql -o",
    );
    assert!(printed.is_empty());
    let printed = stdout_of(
        iam_pg(READER, &broker)
            .args(["-d", "czechidm", "-U", "postgres", "-x", "-o"])
            .arg(&ours)
            .args(["-c", sql]),
        "iam-pg -o",
    );
    assert!(printed.is_empty(), "{}", shown(&printed));
    let expected = std::fs::read(&theirs).expect("psql's file");
    assert!(shown(&expected).contains("-[ RECORD 1 ]"));
    assert_eq!(
        shown(&std::fs::read(&ours).expect("iam-pg's file")),
        shown(&expected)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_pset_is_refused_like_psql() {
    let broker = BrokerProcess::start();
    let ran = run(iam_pg(READER, &broker).args([
        "-d",
        "czechidm",
        "-U",
        "postgres",
        "-P",
        "linestyle=fancy",
        "-c",
        "SELECT 1",
    ]));
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(
        ran.stderr.contains(
            "could not set printing parameter \"linestyle=fancy\": \\pset: allowed line styles are ascii, old-ascii, unicode"
        ),
        "{ran:?}"
    );
}

/// `s` quoted for `sh`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A command line run on a pseudo-terminal of `rows` x `cols` (util-linux
/// `script`), standard input and output both the terminal, with
/// `PSQL_PAGER` marking every line the pager shows; returns the
/// transcript.
fn on_terminal(rows: u16, cols: u16, env: &str, argv: &[String]) -> String {
    let line: Vec<String> = argv.iter().map(|a| sh_quote(a)).collect();
    let shell = format!(
        "stty rows {rows} cols {cols}; PSQL_PAGER=\"sed 's/^/PAGER:/'\" {env} exec {}",
        line.join(" ")
    );
    let out = Command::new("script")
        .args(["-qec", &shell, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script");
    assert!(
        out.status.success(),
        "{shell}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// On a terminal both programs size output to the terminal (`\x auto`,
/// wrapped, `$COLUMNS`) and use the pager by psql's rules: taller than
/// the terminal, wider than it, `pager off`, `pager_min_lines`, `always`.
#[test]
fn on_a_terminal_the_width_and_the_pager_follow_psqls_rules() {
    let broker = BrokerProcess::start();
    let app = Appliance::get();
    let address = docker(&[
        "inspect",
        "-f",
        &format!(
            "{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}",
            app.network()
        ),
        &app.container("czechidm"),
    ]);
    let password = std::fs::read_to_string(app.pwfile("czechidm", "postgres")).expect("pwfile");
    let tall = "SELECT g AS n, 'row ' || g AS label FROM generate_series(1, 12) g";
    let wide = "SELECT g AS n, repeat('A', 60) AS wide FROM generate_series(1, 2) g";
    let cases: &[(&str, &str, &[&str])] = &[
        ("short, no pager", "", &["-c", "SELECT 1 AS one"]),
        ("taller than the terminal: paged", "", &["-c", tall]),
        ("pager off", "", &["-P", "pager=off", "-c", tall]),
        (
            "pager_min_lines",
            "",
            &["-P", "pager_min_lines=50", "-c", tall],
        ),
        (
            "pager always",
            "",
            &["-P", "pager=always", "-c", "SELECT 1 AS one"],
        ),
        ("wider than the terminal: paged", "", &["-c", wide]),
        (
            "\\x auto at the terminal's width",
            "",
            &["-P", "expanded=auto", "-c", wide],
        ),
        (
            "\\x auto at $COLUMNS",
            "COLUMNS=200",
            &["-P", "expanded=auto", "-c", wide],
        ),
        ("wrapped", "", &["-P", "format=wrapped", "-c", wide]),
        ("expanded, tall", "", &["-x", "-c", tall]),
        ("blank PSQL_PAGER: none", "PSQL_PAGER=' '", &["-c", tall]),
    ];
    let iam_pg_bin = workspace_bin("iam-pg");
    for (what, env, args) in cases {
        let mut theirs: Vec<String> = [
            "env",
            "-u",
            "PGTZ",
            "LC_ALL=C.UTF-8",
            "PGCLIENTENCODING=UTF8",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        theirs.push(format!("PGPASSWORD={}", password.trim_end()));
        theirs.extend(
            [
                "/usr/bin/psql",
                "-X",
                "-h",
                &address,
                "-U",
                "postgres",
                "-d",
                "czechidm",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        theirs.extend(args.iter().map(|s| s.to_string()));
        let mut ours: Vec<String> = [
            "setpriv",
            &format!("--reuid={READER}"),
            &format!("--regid={READER}"),
            "--init-groups",
            "--",
            "env",
            "LC_ALL=C.UTF-8",
            &format!("IAM_PGBROKER_SOCKET={}", broker.socket.display()),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        ours.push(iam_pg_bin.display().to_string());
        ours.extend(
            ["-d", "czechidm", "-U", "postgres"]
                .iter()
                .map(|s| s.to_string()),
        );
        ours.extend(args.iter().map(|s| s.to_string()));
        let expected = on_terminal(10, 50, env, &theirs);
        let got = on_terminal(10, 50, env, &ours);
        assert_eq!(got, expected, "{what}");
        let paged = expected.contains("PAGER:");
        let should_page =
            what.contains("paged") || what.contains("always") || *what == "expanded, tall";
        assert_eq!(
            paged, should_page,
            "{what}: psql's own behaviour\n{expected}"
        );
    }
}
