//! The RPM: built by `packaging/rpm/build-rpm` with `rpmbuild` from the
//! debug binaries this test run already has (a release build of the broker
//! takes minutes on CI's two cores; the package's layout and scriptlets do
//! not depend on the profile), then its file list, modes, config files,
//! scriptlets and payload checked, and `rpmlint` run on the spec and the
//! package.

use iam_pgbroker_tests::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn rpm_query(rpm: &Path, args: &[&str]) -> String {
    let ran = run(Command::new("rpm").arg("-qp").args(args).arg(rpm));
    assert_eq!(ran.code, 0, "rpm -qp {args:?}: {ran:?}");
    ran.stdout
}

/// Builds the package once for the tests of this module.
fn build() -> PathBuf {
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
    let rpm = PathBuf::from(ran.stdout.lines().last().expect("the rpm's path"));
    assert!(rpm.exists(), "{ran:?}");
    rpm
}

#[test]
fn rpm_holds_the_broker_the_cli_the_units_and_the_config() {
    let rpm = build();
    let files = rpm_query(&rpm, &["-l"]);
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
        "/var/log/iam-pgbroker",
        "/var/lib/iam-pgbroker",
    ] {
        assert!(files.contains(&expected), "{expected} missing: {files:#?}");
    }
    assert!(
        files
            .iter()
            .any(|f| f.starts_with("/usr/share/man/man1/iam-pg.1")),
        "man page missing: {files:#?}"
    );
    for doc in ["README.md", "operations.md", "protocol.md", "security.md"] {
        assert!(
            files
                .iter()
                .any(|f| f.starts_with("/usr/share/doc/iam-pgbroker") && f.ends_with(doc)),
            "{doc} missing: {files:#?}"
        );
    }

    // Root's alone: the policy, the audit, the audit key's folder.
    let long = rpm_query(&rpm, &["-lv"]);
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

    let config_files = rpm_query(&rpm, &["-c"]);
    for config in [
        "/etc/iam-pgbroker/config.toml",
        "/etc/logrotate.d/iam-pgbroker",
    ] {
        assert!(config_files.contains(config), "{config_files}");
    }

    // Enable the socket on install, stop on removal, restart on upgrade.
    let scripts = rpm_query(&rpm, &["--scripts"]);
    for expected in [
        "groupadd -r iam-pgbroker",
        "preset iam-pgbroker.socket",
        "disable --now iam-pgbroker.socket iam-pgbroker.service",
        "try-restart iam-pgbroker.service",
        "systemd-tmpfiles --create",
    ] {
        assert!(scripts.contains(expected), "{expected}:\n{scripts}");
    }

    // The payload holds the units as they are in the repository.
    let payload = rpm.with_extension("payload");
    std::fs::create_dir_all(&payload).unwrap();
    let ran = run(Command::new("sh")
        .arg("-c")
        .arg("rpm2cpio \"$0\" | cpio -idm --quiet -D \"$1\"")
        .arg(&rpm)
        .arg(&payload));
    assert_eq!(ran.code, 0, "{ran:?}");
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

    // rpmlint: no errors; its filters (iam-pgbroker.rpmlintrc) each say
    // why. Warnings are printed for the record.
    let lint = run(Command::new("rpmlint")
        .arg("-r")
        .arg(repo_root().join("packaging/rpm/iam-pgbroker.rpmlintrc"))
        .arg(repo_root().join("packaging/rpm/iam-pgbroker.spec"))
        .arg(&rpm));
    println!("{}", lint.stdout);
    let errors: Vec<&str> = lint
        .stdout
        .lines()
        .filter(|l| l.contains(": E: "))
        .collect();
    assert!(errors.is_empty(), "rpmlint errors:\n{}", errors.join("\n"));
    assert!(
        lint.stdout.contains("1 packages and 1 specfiles checked"),
        "{lint:?}"
    );

    let _ = std::fs::remove_dir_all(rpm.parent().unwrap());
}
