//! The RPMs: built by `packaging/rpm/build-rpm` with `rpmbuild` from the
//! debug binaries this test run already has (a release build of the broker
//! takes minutes on CI's two cores; the package's layout and scriptlets do
//! not depend on the profile), then the broker package's file list, modes,
//! config files, scriptlets and payload checked, the Python library's
//! (python3-iam-lib-pgconnect) file list, dependencies and payload, and
//! `rpmlint` run on the spec and both packages.

use iam_pgbroker_tests::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn rpm_query(rpm: &Path, args: &[&str]) -> String {
    let ran = run(Command::new("rpm").arg("-qp").args(args).arg(rpm));
    assert_eq!(ran.code, 0, "rpm -qp {args:?}: {ran:?}");
    ran.stdout
}

/// Builds the packages: iam-pgbroker's and python3-iam-lib-pgconnect's.
fn build() -> (PathBuf, PathBuf) {
    let out = std::env::temp_dir().join(unique_name("rpm"));
    // The binaries the rest of the suite runs.
    let bin = workspace_bin("iam-pgbroker");
    let profile = bin
        .parent()
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .expect("profile folder")
        .to_owned();
    let ran = run(Command::new(repo_root().join("packaging/rpm/build-rpm"))
        .args(["--profile", &profile, "--no-build", "--outdir"])
        .arg(&out)
        .current_dir(repo_root()));
    assert_eq!(ran.code, 0, "{ran:?}");
    let rpms: Vec<PathBuf> = ran.stdout.lines().map(PathBuf::from).collect();
    let [broker, python] = &rpms[..] else {
        panic!("two packages expected: {ran:?}");
    };
    for rpm in [broker, python] {
        assert!(rpm.exists(), "{ran:?}");
    }
    let name = |rpm: &Path| rpm_query(rpm, &["--qf", "%{NAME}"]);
    assert_eq!(name(broker), "iam-pgbroker");
    assert_eq!(name(python), "python3-iam-lib-pgconnect");
    (broker.clone(), python.clone())
}

/// Unpacks a package's payload into a folder beside it.
fn unpack(rpm: &Path) -> PathBuf {
    let payload = rpm.with_extension("payload");
    std::fs::create_dir_all(&payload).unwrap();
    let ran = run(Command::new("sh")
        .arg("-c")
        .arg("rpm2cpio \"$0\" | cpio -idm --quiet -D \"$1\"")
        .arg(rpm)
        .arg(&payload));
    assert_eq!(ran.code, 0, "{ran:?}");
    payload
}

#[test]
fn rpms_hold_the_broker_the_cli_the_units_the_config_and_the_python_library() {
    let (rpm, python) = build();
    check_broker_rpm(&rpm);
    check_python_rpm(&python, &rpm);

    // rpmlint: no errors; its filters (iam-pgbroker.rpmlintrc) each say
    // why. Warnings are printed for the record.
    let lint = run(Command::new("rpmlint")
        .arg("-r")
        .arg(repo_root().join("packaging/rpm/iam-pgbroker.rpmlintrc"))
        .arg(repo_root().join("packaging/rpm/iam-pgbroker.spec"))
        .arg(&rpm)
        .arg(&python));
    println!("{}", lint.stdout);
    let errors: Vec<&str> = lint
        .stdout
        .lines()
        .filter(|l| l.contains(": E: "))
        .collect();
    assert!(errors.is_empty(), "rpmlint errors:\n{}", errors.join("\n"));
    assert!(
        lint.stdout.contains("2 packages and 1 specfiles checked"),
        "{lint:?}"
    );

    let _ = std::fs::remove_dir_all(rpm.parent().unwrap());
}

fn check_broker_rpm(rpm: &Path) {
    let files = rpm_query(rpm, &["-l"]);
    println!("{files}");
    let files: Vec<&str> = files.lines().collect();
    for expected in [
        "/usr/bin/iam-pgbroker",
        "/usr/bin/iam-pg",
        "/usr/lib/systemd/system/iam-pgbroker.service",
        "/usr/lib/systemd/system/iam-pgbroker.socket",
        "/usr/lib/systemd/system-preset/80-iam-pgbroker.preset",
        "/usr/lib/sysusers.d/iam-pgbroker.conf",
        "/usr/lib/tmpfiles.d/iam-pgbroker.conf",
        "/etc/iam-pgbroker",
        "/etc/iam-pgbroker/config.toml",
        "/etc/iam-pgbroker/policy.d",
        "/etc/iam-pgbroker/policy.d/README",
        "/etc/logrotate.d/iam-pgbroker",
        "/usr/share/bash-completion/completions/iam-pg",
        "/usr/share/zsh/site-functions/_iam-pg",
        "/usr/share/bash-completion/completions/iam-pgbroker",
        "/usr/share/zsh/site-functions/_iam-pgbroker",
        "/usr/share/licenses/iam-pgbroker/LICENSE",
        "/var/log/iam-pgbroker",
        "/var/lib/iam-pgbroker",
    ] {
        assert!(files.contains(&expected), "{expected} missing: {files:#?}");
    }
    for page in [
        "/usr/share/man/man1/iam-pg.1",
        "/usr/share/man/man8/iam-pgbroker.8",
        "/usr/share/man/man5/iam-pgbroker.toml.5",
    ] {
        assert!(
            files.iter().any(|f| f.starts_with(page)),
            "{page} missing: {files:#?}"
        );
    }
    // The units' Documentation= names files the package installs.
    for unit in [
        "systemd/iam-pgbroker.service",
        "systemd/iam-pgbroker.socket",
    ] {
        let text = std::fs::read_to_string(repo_root().join(unit)).unwrap();
        for doc in text
            .lines()
            .filter_map(|l| l.strip_prefix("Documentation="))
            .flat_map(str::split_whitespace)
        {
            let found = match (doc.strip_prefix("file://"), doc.strip_prefix("man:")) {
                (Some(path), _) => files.contains(&path),
                (_, Some(page)) => {
                    let (name, section) = page.trim_end_matches(')').split_once('(').unwrap();
                    files.iter().any(|f| {
                        f.starts_with(&format!("/usr/share/man/man{section}/{name}.{section}"))
                    })
                }
                _ => false,
            };
            assert!(found, "{unit}: Documentation={doc} is not in the package");
        }
    }
    for doc in [
        "README.md",
        "operations.md",
        "protocol.md",
        "security.md",
        "configuration.md",
        "audit.md",
        "approval.md",
    ] {
        assert!(
            files
                .iter()
                .any(|f| f.starts_with("/usr/share/doc/iam-pgbroker") && f.ends_with(doc)),
            "{doc} missing: {files:#?}"
        );
    }

    // Root's alone: the policy, the audit, the audit key's folder.
    let long = rpm_query(rpm, &["-lv"]);
    let mode_of = |path: &str| -> String {
        long.lines()
            .find(|l| l.ends_with(&format!(" {path}")))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("{path} not in:\n{long}"))
            .to_owned()
    };
    assert_eq!(mode_of("/etc/iam-pgbroker/config.toml"), "-rw-------");
    assert_eq!(mode_of("/var/log/iam-pgbroker"), "drwxr-x---");
    assert_eq!(mode_of("/var/lib/iam-pgbroker"), "drwx------");
    assert_eq!(mode_of("/usr/bin/iam-pgbroker"), "-rwxr-xr-x");

    let config_files = rpm_query(rpm, &["-c"]);
    for config in [
        "/etc/iam-pgbroker/config.toml",
        "/etc/logrotate.d/iam-pgbroker",
    ] {
        assert!(config_files.contains(config), "{config_files}");
    }

    // Enable the socket on install, stop on removal, restart on upgrade.
    let scripts = rpm_query(rpm, &["--scripts"]);
    for expected in [
        // The group from the sysusers snippet (the macro's fallback here).
        "systemd-sysusers --replace=/usr/lib/sysusers.d/iam-pgbroker.conf",
        "g iam-pgbroker -",
        "preset iam-pgbroker.socket",
        "systemctl start iam-pgbroker.socket",
        "disable --now iam-pgbroker.socket iam-pgbroker.service",
        "try-restart iam-pgbroker.service",
        "systemd-tmpfiles --create",
    ] {
        assert!(scripts.contains(expected), "{expected}:\n{scripts}");
    }

    // The payload holds the units as they are in the repository.
    let payload = unpack(rpm);
    for (packaged, source) in [
        (
            "usr/lib/systemd/system/iam-pgbroker.service",
            "systemd/iam-pgbroker.service",
        ),
        (
            "usr/lib/systemd/system/iam-pgbroker.socket",
            "systemd/iam-pgbroker.socket",
        ),
        ("etc/iam-pgbroker/config.toml", "systemd/config.toml"),
    ] {
        assert_eq!(
            std::fs::read(payload.join(packaged)).unwrap(),
            std::fs::read(repo_root().join(source)).unwrap(),
            "{packaged} differs from {source}"
        );
    }
    let version = run(Command::new(payload.join("usr/bin/iam-pg")).arg("--version"));
    assert!(version.stdout.starts_with("iam-pg "), "{version:?}");
}

fn check_python_rpm(python: &Path, broker: &Path) {
    let files = rpm_query(python, &["-l"]);
    println!("{files}");
    let files: Vec<&str> = files.lines().collect();
    assert_eq!(rpm_query(python, &["--qf", "%{ARCH}"]), "noarch");
    let evr = rpm_query(python, &["--qf", "%{VERSION}-%{RELEASE}"]);
    let version = rpm_query(python, &["--qf", "%{VERSION}"]);
    assert_eq!(evr, rpm_query(broker, &["--qf", "%{VERSION}-%{RELEASE}"]));

    // The modules as they are in python/src, nothing else of python/ (no
    // tests, no __pycache__, no egg-info), in purelib.
    let init = files
        .iter()
        .find(|f| f.ends_with("/iam_lib_pgconnect/__init__.py"))
        .unwrap_or_else(|| panic!("__init__.py missing: {files:#?}"));
    let sitelib = init.trim_end_matches("/iam_lib_pgconnect/__init__.py");
    assert!(
        sitelib.starts_with("/usr/lib/python3") && sitelib.ends_with("/site-packages"),
        "{sitelib}"
    );
    let source = repo_root().join("python/src/iam_lib_pgconnect");
    let mut modules: Vec<String> = std::fs::read_dir(&source)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".py"))
        .collect();
    modules.sort();
    assert!(modules.len() >= 4, "{modules:?}");
    let distinfo = format!("{sitelib}/iam_lib_pgconnect-{version}.dist-info");
    let mut expected: Vec<String> = vec![format!("{sitelib}/iam_lib_pgconnect"), distinfo.clone()];
    expected.extend(
        modules
            .iter()
            .map(|m| format!("{sitelib}/iam_lib_pgconnect/{m}")),
    );
    // The metadata rpm and python3dist() provides are generated from; no
    // RECORD (pip must not uninstall rpm's files) and no direct_url.json
    // (pointing into the build folder), as with %pyproject_install.
    for meta in ["INSTALLER", "METADATA", "WHEEL", "top_level.txt"] {
        expected.push(format!("{distinfo}/{meta}"));
    }
    let mut packaged: Vec<String> = files
        .iter()
        .filter(|f| f.starts_with(sitelib))
        .map(|f| f.to_string())
        .collect();
    packaged.sort();
    expected.sort();
    assert_eq!(packaged, expected, "the Python files differ");
    // Besides: the README, in the package's doc folder.
    let others: Vec<&&str> = files.iter().filter(|f| !f.starts_with(sitelib)).collect();
    assert!(
        others
            .iter()
            .all(|f| f.starts_with("/usr/share/doc/python3-iam-lib-pgconnect")),
        "files outside site-packages and the docs: {others:#?}"
    );
    let readme = others
        .iter()
        .find(|f| f.ends_with("/README.md"))
        .unwrap_or_else(|| panic!("README.md missing: {others:#?}"));

    // Replaces the old package iam-lib-pgconnect and answers to its name;
    // needs the broker and the Python the files were installed for.
    let provides = rpm_query(python, &["--provides"]);
    assert!(
        provides
            .lines()
            .any(|l| l == format!("iam-lib-pgconnect = {evr}")),
        "{provides}"
    );
    let obsoletes = rpm_query(python, &["--obsoletes"]);
    assert!(
        obsoletes
            .lines()
            .any(|l| l == format!("iam-lib-pgconnect < {evr}")),
        "{obsoletes}"
    );
    let requires = rpm_query(python, &["--requires"]);
    assert!(
        requires
            .lines()
            .any(|l| l == format!("iam-pgbroker = {evr}")),
        "{requires}"
    );
    assert!(
        requires.lines().any(|l| l.starts_with("python(abi) = 3.")),
        "{requires}"
    );

    // The payload holds the modules as they are in the repository, the
    // README, and the package imports from it with the version the RPM
    // carries (python/src/iam_lib_pgconnect/__init__.py's __version__ and
    // the workspace's version in Cargo.toml go together).
    let payload = unpack(python);
    for module in &modules {
        let packaged = payload.join(format!("{}/iam_lib_pgconnect/{module}", &sitelib[1..]));
        assert_eq!(
            std::fs::read(&packaged).unwrap(),
            std::fs::read(source.join(module)).unwrap(),
            "{module} differs"
        );
    }
    assert_eq!(
        std::fs::read(payload.join(&readme[1..])).unwrap(),
        std::fs::read(repo_root().join("python/README.md")).unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(payload.join(&distinfo[1..]).join("INSTALLER")).unwrap(),
        "rpm\n"
    );
    let imported = run(Command::new("/usr/bin/python3")
        .args(["-I", "-B", "-c"])
        .arg("import sys; sys.path.insert(0, sys.argv[1]); import iam_lib_pgconnect as m; print(m.__version__, m.__file__)")
        .arg(payload.join(&sitelib[1..])));
    assert_eq!(imported.code, 0, "{imported:?}");
    assert!(
        imported.stdout.starts_with(&format!("{version} {}", payload.display())),
        "__version__ differs from the RPM's Version {version}, or imported from elsewhere: {imported:?}"
    );
}
