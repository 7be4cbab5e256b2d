//! The audit log against real files: the chain, restarts, concurrency,
//! failing closed and recovering, rotation.

use super::verify::verify_files;
use super::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

fn tempdir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "iam-pgbroker-audit-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn config(dir: &Path) -> AuditConfig {
    AuditConfig {
        file: dir.join("log/audit.jsonl"),
        key_file: dir.join("state/audit.key"),
        ..AuditConfig::default()
    }
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Waits until the log's watch has seen the file renamed or removed under
/// it (the kernel's event reaches the watch thread a moment later), so
/// that the next record checks the path.
fn noticed(log: &AuditLog) {
    wait_until("the watch saw nothing", || log.watch_noticed());
}

/// Polls `done` for up to ten seconds; fails with `failed` after that.
fn wait_until(failed: &str, done: impl Fn() -> bool) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !done() {
        assert!(std::time::Instant::now() < until, "{failed}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

fn statement(log: &AuditLog, request: u64, sql: &str) -> Result<ChainHash, AuditError> {
    log.record(&AuditRecord {
        session: Some("0123456789abcdef"),
        request: Some(request),
        sql: Some(sql),
        kind: Some("SELECT"),
        writes: Some(false),
        ..AuditRecord::new(AuditEvent::Statement)
    })
}

#[test]
fn a_chain_of_many_records_verifies() {
    let dir = tempdir("chain");
    let cfg = config(&dir);
    let log = AuditLog::open(&cfg).unwrap();
    for i in 0..500 {
        statement(
            &log,
            i,
            "SELECT * FROM idm_identity WHERE username = 'Šťastný'",
        )
        .unwrap();
    }
    let report = verify_files(std::slice::from_ref(&cfg.file)).unwrap();
    assert!(report.intact(), "{:?}", report.problems);
    assert_eq!(report.records, 500);
    assert_eq!(report.first_prev, Some(ChainHash::ZERO));
    assert_eq!(report.last_hash, Some(log.head()));
    let first = &lines(&cfg.file)[0];
    let time = first["time"].as_str().unwrap();
    assert_eq!(time.len(), 27, "{time}");
    assert!(time.ends_with('Z'));
    assert_eq!(
        first["normalized"],
        "SELECT * FROM idm_identity WHERE username = $1"
    );
    // Root-only file.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&cfg.file).unwrap().mode() & 0o777, 0o600);
}

#[test]
fn the_chain_continues_across_restarts() {
    let dir = tempdir("restart");
    let cfg = config(&dir);
    let log = AuditLog::open(&cfg).unwrap();
    log.record(&AuditRecord::new(AuditEvent::BrokerStart))
        .unwrap();
    statement(&log, 1, "SELECT 1").unwrap();
    let head = log.head();
    drop(log);
    let log = AuditLog::open(&cfg).unwrap();
    assert_eq!(log.head(), head);
    log.record(&AuditRecord::new(AuditEvent::BrokerStart))
        .unwrap();
    let report = verify_files(std::slice::from_ref(&cfg.file)).unwrap();
    assert!(report.intact(), "{:?}", report.problems);
    assert_eq!(report.records, 3);
    assert_eq!(
        lines(&cfg.file)[2]["broker"]["version"],
        env!("CARGO_PKG_VERSION")
    );
}

#[test]
fn concurrent_writers_never_interleave() {
    let dir = tempdir("concurrent");
    let cfg = config(&dir);
    let log = AuditLog::open(&cfg).unwrap();
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                // Lines of very different sizes, most beyond PIPE_BUF
                // (4 KiB), so interleaved writes would show.
                let sql = format!("SELECT '{}'", "x".repeat(1 + t * 619));
                for i in 0..100 {
                    statement(&log, i, &sql).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let records = lines(&cfg.file);
    assert_eq!(records.len(), 16 * 100);
    let report = verify_files(std::slice::from_ref(&cfg.file)).unwrap();
    assert!(report.intact(), "{:?}", report.problems);
}

#[test]
fn dev_full_fails_closed() {
    let dir = tempdir("devfull");
    let cfg = AuditConfig {
        file: PathBuf::from("/dev/full"),
        ..config(&dir)
    };
    let log = AuditLog::open(&cfg).unwrap();
    let err = statement(&log, 1, "SELECT 1").unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    assert!(matches!(err, AuditError::Write { .. }), "{err:?}");
    assert!(statement(&log, 2, "SELECT 1").is_err());
    assert_eq!(log.head(), ChainHash::ZERO);
}

#[test]
fn an_unwritable_file_fails_closed_and_recovers() {
    let dir = tempdir("recover");
    let cfg = config(&dir);
    let log = AuditLog::open(&cfg).unwrap();
    statement(&log, 1, "SELECT 1").unwrap();
    statement(&log, 2, "SELECT 2").unwrap();
    let before = log.head();
    // Keep the first file, then make the path a full disk.
    let kept = dir.join("kept.jsonl");
    std::fs::hard_link(&cfg.file, &kept).unwrap();
    let link = dir.join("log/full");
    std::os::unix::fs::symlink("/dev/full", &link).unwrap();
    std::fs::rename(&link, &cfg.file).unwrap();
    noticed(&log);
    for i in 3..6 {
        assert!(statement(&log, i, "SELECT 3").unwrap_err().is_unavailable());
    }
    // The chain did not advance for records that were not written.
    assert_eq!(log.head(), before);
    // Writable again: the next record goes to a new file that names the
    // last hash of the old one.
    std::fs::remove_file(&cfg.file).unwrap();
    noticed(&log);
    statement(&log, 6, "SELECT 6").unwrap();
    let new = lines(&cfg.file);
    assert_eq!(new[0]["event"], "rotated");
    assert_eq!(new[0]["why"], "vanished");
    assert_eq!(new[0]["prev"], before.to_hex());
    assert_eq!(new[1]["request"], 6);
    let report = verify_files(&[kept, cfg.file.clone()]).unwrap();
    assert!(report.intact(), "{:?}", report.problems);
    assert_eq!(report.records, 4);
}

#[test]
fn a_missing_folder_at_start_is_an_outage_not_a_crash() {
    let dir = tempdir("nodir");
    // A regular file where the folder should be: the audit file cannot be
    // created.
    std::fs::write(dir.join("log"), "").unwrap();
    let cfg = config(&dir);
    let log = AuditLog::open(&cfg).unwrap();
    assert!(statement(&log, 1, "SELECT 1").unwrap_err().is_unavailable());
    std::fs::remove_file(dir.join("log")).unwrap();
    statement(&log, 2, "SELECT 2").unwrap();
    let records = lines(&cfg.file);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["prev"], ChainHash::ZERO.to_hex());
}

#[test]
fn reopen_after_logrotate_keeps_the_chain() {
    let dir = tempdir("reopen");
    let cfg = config(&dir);
    let log = AuditLog::open(&cfg).unwrap();
    for i in 0..5 {
        statement(&log, i, "SELECT 1").unwrap();
    }
    let old = dir.join("log/audit.jsonl.1");
    std::fs::rename(&cfg.file, &old).unwrap();
    log.reopen().unwrap();
    // A second SIGHUP with nothing rotated changes nothing.
    log.reopen().unwrap();
    for i in 5..10 {
        statement(&log, i, "SELECT 1").unwrap();
    }
    let new = lines(&cfg.file);
    assert_eq!(new.len(), 6);
    assert_eq!(new[0]["event"], "rotated");
    assert_eq!(new[0]["why"], "reopen");
    // The new file alone verifies, and says where it starts.
    let alone = verify_files(std::slice::from_ref(&cfg.file)).unwrap();
    assert!(alone.intact());
    let old_report = verify_files(std::slice::from_ref(&old)).unwrap();
    assert_eq!(alone.first_prev, old_report.last_hash);
    let both = verify_files(&[old.clone(), cfg.file.clone()]).unwrap();
    assert!(both.intact(), "{:?}", both.problems);
    assert_eq!(both.records, 11);
    // Rotated without a SIGHUP: the next record notices.
    let older = dir.join("log/audit.jsonl.2");
    std::fs::rename(&cfg.file, &older).unwrap();
    std::fs::write(&cfg.file, "").unwrap();
    noticed(&log);
    statement(&log, 10, "SELECT 1").unwrap();
    assert_eq!(lines(&cfg.file)[0]["why"], "replaced");
    let all = verify_files(&[old, older, cfg.file.clone()]).unwrap();
    assert!(all.intact(), "{:?}", all.problems);
}

#[test]
fn size_rotation_chains_the_files() {
    let dir = tempdir("size");
    let cfg = AuditConfig {
        max_bytes: Some(64 * 1024),
        ..config(&dir)
    };
    let log = AuditLog::open(&cfg).unwrap();
    let sql = format!("SELECT '{}'", "y".repeat(1000));
    for i in 0..300 {
        statement(&log, i, &sql).unwrap();
    }
    // Walk back from the current file through each `rotated` record.
    let mut order = vec![cfg.file.clone()];
    loop {
        let first = lines(order.last().unwrap()).into_iter().next().unwrap();
        match first["previous_file"].as_str() {
            Some(prev) => order.push(PathBuf::from(prev)),
            None => break,
        }
    }
    order.reverse();
    assert!(order.len() >= 4, "{order:?}");
    for f in &order {
        assert!(std::fs::metadata(f).unwrap().len() <= 64 * 1024, "{f:?}");
    }
    let mut sorted = order.clone();
    sorted[..order.len() - 1].sort();
    assert_eq!(sorted, order, "rotated names sort in time order");
    let report = verify_files(&order).unwrap();
    assert!(report.intact(), "{:?}", report.problems);
    assert_eq!(report.records, 300 + order.len() as u64 - 1);
}

#[test]
fn a_torn_last_line_is_ended_and_reported() {
    let dir = tempdir("torn");
    let cfg = config(&dir);
    let log = AuditLog::open(&cfg).unwrap();
    statement(&log, 1, "SELECT 1").unwrap();
    drop(log);
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&cfg.file)
        .unwrap()
        .write_all(b"{\"time\":\"2026-")
        .unwrap();
    let log = AuditLog::open(&cfg).unwrap();
    statement(&log, 2, "SELECT 2").unwrap();
    let report = verify_files(std::slice::from_ref(&cfg.file)).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].line, 2);
    assert_eq!(report.records, 3);
}

#[test]
fn hashed_parameters_match_audit_hash() {
    let dir = tempdir("hmac");
    let cfg = config(&dir);
    let log = AuditLog::open(&cfg).unwrap();
    let params = [json!("jan.novák"), json!(7), Value::Null];
    log.record(&AuditRecord {
        sql: Some("UPDATE idm_identity SET version = %s WHERE username = %s AND x = %s"),
        params: Some(&params),
        ..AuditRecord::new(AuditEvent::Statement)
    })
    .unwrap();
    let key = AuditKey::load(&cfg.key_file).unwrap();
    let record = &lines(&cfg.file)[0];
    assert_eq!(
        record["params"][0]["hmac"],
        key.hash("jan.novák".as_bytes())
    );
    assert_eq!(record["params"][1]["hmac"], key.hash(b"7"));
    assert_eq!(record["params"][2], Value::Null);
    assert!(!std::fs::read_to_string(&cfg.file)
        .unwrap()
        .contains("novák"));
}

#[test]
fn fsync_always_and_disabled() {
    let dir = tempdir("always");
    let cfg = AuditConfig {
        fsync: FsyncMode::Always,
        ..config(&dir)
    };
    let log = AuditLog::open(&cfg).unwrap();
    statement(&log, 1, "SELECT 1").unwrap();
    log.flush().unwrap();
    assert_eq!(lines(&cfg.file).len(), 1);

    let off = AuditConfig {
        enabled: false,
        file: dir.join("off/audit.jsonl"),
        ..config(&dir)
    };
    let log = AuditLog::open(&off).unwrap();
    assert!(!log.is_enabled());
    statement(&log, 1, "SELECT 1").unwrap();
    assert!(!off.file.exists());
}

#[test]
fn anchors_reach_the_journal_every_n_records_and_verify_finds_a_cut_tail() {
    use crate::journal::JournalLayer;
    use tracing_subscriber::layer::SubscriberExt;
    let dir = tempdir("anchors");
    let journal = dir.join("journal.sock");
    let server = std::os::unix::net::UnixDatagram::bind(&journal).unwrap();
    server
        .set_read_timeout(Some(std::time::Duration::from_millis(200)))
        .unwrap();
    let cfg = AuditConfig {
        anchor_records: 10,
        ..config(&dir)
    };
    let subscriber =
        tracing_subscriber::registry().with(JournalLayer::to_socket(&journal).unwrap());
    tracing::subscriber::with_default(subscriber, || {
        let log = AuditLog::open(&cfg).unwrap();
        for i in 0..35 {
            statement(&log, i, "SELECT 1").unwrap();
        }
        log.anchor("reload");
    });
    // The journal's side: turn each datagram into the JSON line
    // `journalctl -o json` would print.
    let mut exported = String::new();
    let mut buf = vec![0u8; 65536];
    while let Ok(n) = server.recv(&mut buf) {
        let mut fields = serde_json::Map::new();
        let mut rest = &buf[..n];
        while let Some(nl) = rest.iter().position(|b| *b == b'\n') {
            let name = String::from_utf8_lossy(&rest[..nl]).into_owned();
            let len = u64::from_le_bytes(rest[nl + 1..nl + 9].try_into().unwrap()) as usize;
            let value = String::from_utf8_lossy(&rest[nl + 9..nl + 9 + len]).into_owned();
            fields.insert(name, value.into());
            rest = &rest[nl + 10 + len..];
        }
        exported.push_str(&serde_json::Value::Object(fields).to_string());
        exported.push('\n');
    }
    let anchors = crate::audit::anchors::parse_anchors(&exported);
    let records: Vec<u64> = anchors.iter().map(|a| a.records).collect();
    // At open (0), after every 10 records, and at reload (35).
    assert_eq!(records, [0, 10, 20, 30, 35], "{exported}");
    let anchors_file = dir.join("anchors.json");
    std::fs::write(&anchors_file, &exported).unwrap();
    let cut = dir.join("cut.jsonl");
    let text = std::fs::read_to_string(&cfg.file).unwrap();
    let kept: Vec<&str> = text.lines().take(25).collect();
    std::fs::write(&cut, kept.join("\n") + "\n").unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let source = crate::audit::cli::AnchorSource::File(anchors_file.clone());
    let code = crate::audit::cli::verify_command(&[cut], Some(&source), &mut out, &mut err);
    let out = String::from_utf8_lossy(&out);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("chain intact"),
        "the chain alone sees nothing: {out}"
    );
    assert!(
        out.contains("ends before the last anchor") && out.contains("10 records missing"),
        "{out}"
    );
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = crate::audit::cli::verify_command(
        std::slice::from_ref(&cfg.file),
        Some(&source),
        &mut out,
        &mut err,
    );
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&out));
}

fn result(log: &AuditLog, request: u64) {
    log.record_deferred(&AuditRecord {
        session: Some("0123456789abcdef"),
        request: Some(request),
        kind: Some("SELECT"),
        outcome: Some(Outcome::ok(Some(1), None)),
        ..AuditRecord::new(AuditEvent::Result)
    });
}

fn events(path: &Path) -> Vec<String> {
    lines(path)
        .iter()
        .map(|l| l["event"].as_str().unwrap_or("?").to_owned())
        .collect()
}

#[test]
fn deferred_records_ride_with_the_next_write_and_keep_the_chain() {
    let dir = tempdir("deferred");
    let cfg = AuditConfig {
        fsync_interval_ms: 200,
        ..config(&dir)
    };
    let log = AuditLog::open(&cfg).unwrap();
    statement(&log, 1, "SELECT 1").unwrap();
    result(&log, 1);
    // Chained, not yet written: the next record takes it along.
    assert_eq!(events(&cfg.file), ["statement"]);
    statement(&log, 2, "SELECT 2").unwrap();
    assert_eq!(events(&cfg.file), ["statement", "result", "statement"]);
    let report = verify_files(std::slice::from_ref(&cfg.file)).unwrap();
    assert!(report.intact(), "{:?}", report.problems);
    assert_eq!(report.records, 3);
    // Alone, it reaches the file with the next flush.
    result(&log, 2);
    wait_until("the deferred record was not written", || {
        events(&cfg.file).len() >= 4
    });
    // Before a rotation too: it stays in the file it was chained in.
    result(&log, 3);
    let old = dir.join("log/audit.jsonl.1");
    std::fs::rename(&cfg.file, &old).unwrap();
    log.reopen().unwrap();
    statement(&log, 4, "SELECT 4").unwrap();
    assert_eq!(
        events(&old),
        ["statement", "result", "statement", "result", "result"]
    );
    assert_eq!(events(&cfg.file), ["rotated", "statement"]);
    let both = verify_files(&[old, cfg.file.clone()]).unwrap();
    assert!(both.intact(), "{:?}", both.problems);
    assert_eq!(both.last_hash, Some(log.head()));
    // The path replaced under it (here by a full disk): the deferred line
    // goes to the file it was chained in, before the log moves on.
    let kept = dir.join("kept.jsonl");
    std::fs::hard_link(&cfg.file, &kept).unwrap();
    result(&log, 4);
    let link = dir.join("log/full");
    std::os::unix::fs::symlink("/dev/full", &link).unwrap();
    std::fs::rename(&link, &cfg.file).unwrap();
    noticed(&log);
    assert!(statement(&log, 5, "SELECT 5").unwrap_err().is_unavailable());
    std::fs::remove_file(&cfg.file).unwrap();
    noticed(&log);
    statement(&log, 6, "SELECT 6").unwrap();
    let all = verify_files(&[kept.clone(), cfg.file.clone()]).unwrap();
    assert!(all.intact(), "{:?}", all.problems);
    assert_eq!(events(&kept), ["rotated", "statement", "result"]);
    assert_eq!(events(&cfg.file), ["rotated", "statement"]);

    // With fsync = "always" nothing waits.
    let dir = tempdir("deferred-always");
    let cfg = AuditConfig {
        fsync: FsyncMode::Always,
        ..config(&dir)
    };
    let log = AuditLog::open(&cfg).unwrap();
    statement(&log, 1, "SELECT 1").unwrap();
    result(&log, 1);
    assert_eq!(events(&cfg.file), ["statement", "result"]);
}
