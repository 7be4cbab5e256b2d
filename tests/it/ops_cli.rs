//! `iam-pg` at the prompt, driven through a real pseudo-terminal as the
//! operator would use it: a multi-line query, `\d idm_identity`,
//! `\conninfo`, the history file, and leaving a write session with changes
//! pending (rolled back or committed as answered).

use iam_pgbroker_tests::*;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

/// A program on the slave side of a pseudo-terminal, as its controlling
/// terminal; the test types on the master side and reads the screen.
pub(crate) struct Terminal {
    master: File,
    child: KillOnDrop,
    /// Everything the program wrote, raw.
    raw: Vec<u8>,
    /// How many cursor position queries were answered.
    answered: usize,
    /// Where in the (escape-free) screen text the last match ended.
    seen: usize,
}

/// The text of terminal output without escape sequences and carriage
/// returns, which line editing sprinkles between the characters.
fn strip_escapes(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => match chars.next() {
                // CSI: parameters, then one final byte in @..~.
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                // OSC: up to BEL.
                Some(']') => {
                    for c in chars.by_ref() {
                        if c == '\x07' {
                            break;
                        }
                    }
                }
                _ => {}
            },
            '\r' | '\x07' => {}
            c => out.push(c),
        }
    }
    out
}

impl Terminal {
    pub(crate) fn spawn(mut command: Command) -> Terminal {
        let (mut master, mut slave) = (-1, -1);
        let size = libc::winsize {
            ws_row: 50,
            ws_col: 200,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty writes two descriptors we then own.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            )
        };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both are open descriptors that nothing else owns.
        let (master, slave) = unsafe { (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        // The program must not inherit the master side.
        // SAFETY: fcntl on our own descriptor.
        unsafe { libc::fcntl(master.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
        command
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave))
            .env("TERM", "xterm");
        // SAFETY: setsid and ioctl are async-signal-safe; they make the
        // pseudo-terminal (stdin) the new session's controlling terminal.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = KillOnDrop(command.spawn().expect("spawn on the terminal"));
        // Drops the parent's copies of the slave side.
        drop(command);
        Terminal {
            master,
            child,
            raw: Vec::new(),
            answered: 0,
            seen: 0,
        }
    }

    pub(crate) fn screen(&self) -> String {
        strip_escapes(&self.raw)
    }

    /// Reads what the program wrote within `wait`.
    fn read_some(&mut self, wait: Duration) {
        let mut poll = libc::pollfd {
            fd: self.master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut poll, 1, wait.as_millis() as i32) };
        if ready <= 0 {
            return;
        }
        let mut buf = [0u8; 8192];
        match self.master.read(&mut buf) {
            Ok(n) => self.raw.extend_from_slice(&buf[..n]),
            // EIO: the program closed the terminal (it exited).
            Err(_) => std::thread::sleep(wait),
        }
        // Line editors may ask where the cursor is; a terminal answers.
        let queries = self.raw.windows(4).filter(|w| w == b"\x1b[6n").count();
        while self.answered < queries {
            self.answered += 1;
            let _ = self.master.write_all(b"\x1b[1;1R");
        }
    }

    /// Waits for `needle` after the last match; returns the screen text
    /// from the last match up to and including it.
    pub(crate) fn expect(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let screen = self.screen();
            if let Some(pos) = screen.get(self.seen..).and_then(|s| s.find(needle)) {
                let start = self.seen;
                self.seen += pos + needle.len();
                return screen[start..self.seen].to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "the terminal never showed {needle:?}; it shows:\n{}",
                &screen[self.seen.min(screen.len())..]
            );
            self.read_some(Duration::from_millis(100));
        }
    }

    /// Types `text`, then Enter.
    pub(crate) fn line(&mut self, text: &str) {
        self.keys(&format!("{text}\r"));
    }

    pub(crate) fn keys(&mut self, keys: &str) {
        self.master.write_all(keys.as_bytes()).expect("type");
    }

    pub(crate) fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.0.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "iam-pg did not exit; the terminal shows:\n{}",
                self.screen()
            );
            self.read_some(Duration::from_millis(50));
        }
    }
}

pub(crate) fn uid_of(user: &str) -> u32 {
    let out = Command::new("id").args(["-u", user]).output().expect("id");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("uid")
}

/// `iam-pg` for `user` on a terminal, with its own history file.
pub(crate) fn prompt(
    user: &str,
    broker: &BrokerProcess,
    history: &Path,
    args: &[&str],
) -> Terminal {
    let mut command = as_user(user, &workspace_bin("iam-pg"));
    command
        .arg("--socket")
        .arg(&broker.socket)
        .args(args)
        .env("IAM_PG_HISTORY", history);
    Terminal::spawn(command)
}

/// A folder the user may write its history into.
pub(crate) fn history_dir(user: &str, broker: &BrokerProcess) -> std::path::PathBuf {
    let dir = broker.dir.join(unique_name("history"));
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(uid_of(user)), None).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

#[test]
fn prompt_runs_a_query_describes_a_table_and_shows_the_session() {
    let app = Appliance::get();
    let broker = BrokerProcess::start();
    let history = history_dir(READER, &broker).join("history");
    let mut term = prompt(READER, &broker, &history, &[]);

    term.expect("czechidm=> ");
    // A statement over two lines: the prompt continues with `->`.
    term.line("SELECT count(*) AS total_identities");
    term.expect("czechidm-> ");
    term.line("FROM idm_identity;");
    let result = term.expect("(1 row)");
    let count = app.psql("czechidm", "SELECT count(*) FROM idm_identity");
    assert!(
        result.lines().any(|l| l.trim() == count),
        "count {count} not in:\n{result}"
    );
    term.expect("czechidm=> ");

    term.line("\\d idm_identity");
    term.expect("Table \"public.idm_identity\"");
    let described = term.expect("czechidm=> ");
    let truth = app.psql(
        "czechidm",
        "SELECT column_name || '|' || is_nullable FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name = 'idm_identity' ORDER BY ordinal_position",
    );
    for column in truth.lines() {
        let (name, nullable) = column.split_once('|').unwrap();
        let line = described
            .lines()
            .find(|l| l.split('|').next().map(str::trim) == Some(name))
            .unwrap_or_else(|| panic!("column {name} missing:\n{described}"));
        assert_eq!(
            line.contains("not null"),
            nullable == "NO",
            "{name}: {line}\n{described}"
        );
    }
    assert!(described.contains("character varying(255)"), "{described}");
    assert!(
        described.contains("\"idm_identity_pkey\" PRIMARY KEY, btree (id)"),
        "{described}"
    );

    term.line("\\conninfo");
    let info = term.expect("czechidm=> ");
    assert!(info.contains("read-only"), "{info}");
    assert!(info.contains("rule \"demo-reader\""), "{info}");
    assert!(
        info.contains(&format!("uid {} ({READER})", uid_of(READER))),
        "{info}"
    );
    assert!(info.contains("iam-pgbroker"), "{info}");

    term.line("\\q");
    let status = term.wait_exit();
    assert!(status.success(), "{status}\n{}", term.screen());

    // The history is the user's alone: statements may hold personal data.
    let saved = std::fs::read_to_string(&history).expect("history written");
    assert!(saved.contains("total_identities"), "{saved}");
    assert_eq!(
        std::fs::metadata(&history).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

/// A write session with an uncommitted change, left with `\q` or Ctrl-D:
/// the prompt asks, and the answer decides.
fn leave_with_pending_change(answer: &str, leave: &str) -> (String, String) {
    let app = Appliance::get();
    let broker = BrokerProcess::start();
    let table = app.scratch_table("ops_cli", "id int PRIMARY KEY, v text", "(1, 'before')");
    let history = history_dir(WRITER, &broker).join("history");
    let mut term = prompt(WRITER, &broker, &history, &["-U", "czechidm", "--write"]);

    term.expect("READ-WRITE session");
    term.expect("czechidm=# ");
    term.line(&format!("UPDATE {table} SET v = 'after' WHERE id = 1;"));
    term.expect("UPDATE 1");
    // The prompt now says a change is pending.
    term.expect("czechidm=*# ");
    let meanwhile = app.psql("czechidm", &format!("SELECT v FROM {table}"));
    assert_eq!(meanwhile, "before", "visible before the commit");

    term.keys(leave);
    term.expect("Commit or roll back? [c/r] ");
    term.line(answer);
    let said = term.expect(if answer == "c" { "COMMIT" } else { "ROLLBACK" });
    let status = term.wait_exit();
    assert!(status.success(), "{status}\n{}", term.screen());
    (
        app.psql("czechidm", &format!("SELECT v FROM {table}")),
        said,
    )
}

#[test]
fn leaving_a_write_session_with_r_rolls_back() {
    let (value, _) = leave_with_pending_change("r", "\\q\r");
    assert_eq!(value, "before");
}

#[test]
fn leaving_a_write_session_with_c_commits() {
    // Ctrl-D leaves like \q.
    let (value, _) = leave_with_pending_change("c", "\x04");
    assert_eq!(value, "after");
}
