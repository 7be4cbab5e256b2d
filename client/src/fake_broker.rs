//! A scripted stand-in for the broker, for protocol-level unit tests of the
//! client: it answers each request line with canned frames and records what
//! the client sent. End-to-end tests against the real broker live in
//! `tests/`.

use crate::Config;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Answers for one request: frames to send, then whether to hang up.
pub(crate) struct Reply {
    pub frames: Vec<Value>,
    pub hang_up: bool,
}

impl Reply {
    pub fn frames(frames: Vec<Value>) -> Reply {
        Reply {
            frames,
            hang_up: false,
        }
    }

    pub fn hang_up(frames: Vec<Value>) -> Reply {
        Reply {
            frames,
            hang_up: true,
        }
    }
}

pub(crate) struct FakeBroker {
    pub path: PathBuf,
    dir: PathBuf,
    handle: Option<JoinHandle<Vec<Value>>>,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl FakeBroker {
    /// Serves one connection; `respond` gets each request and its id.
    pub fn start(mut respond: impl FnMut(&Value, u64) -> Reply + Send + 'static) -> FakeBroker {
        let dir = std::env::temp_dir().join(format!(
            "iam-pgconnect-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pgbroker.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let handle = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            // A client that misbehaves must not hang the test run.
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut writer = stream.try_clone().unwrap();
            let mut seen = Vec::new();
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                let req: Value = serde_json::from_str(&line).unwrap();
                let id = req["id"].as_u64().unwrap();
                seen.push(req.clone());
                let reply = respond(&req, id);
                let mut out = String::new();
                for frame in reply.frames {
                    out.push_str(&frame.to_string());
                    out.push('\n');
                }
                if writer.write_all(out.as_bytes()).is_err() || reply.hang_up {
                    break;
                }
                if req["op"] == "close" {
                    break;
                }
            }
            seen
        });
        FakeBroker {
            path,
            dir,
            handle: Some(handle),
        }
    }

    /// A broker that answers the session operations like the real one and
    /// `query`/`execute` through `respond`.
    pub fn with_queries(
        mut respond: impl FnMut(&Value, u64) -> Reply + Send + 'static,
    ) -> FakeBroker {
        FakeBroker::start(move |req, id| match standard(req, id) {
            Some(frames) => Reply::frames(frames),
            None => respond(req, id),
        })
    }

    pub fn config(&self) -> Config {
        Config::new()
            .socket(&self.path)
            .read_timeout(Duration::from_secs(10))
    }

    /// Waits for the connection to end and returns the requests received.
    pub fn requests(mut self) -> Vec<Value> {
        self.handle.take().unwrap().join().unwrap()
    }
}

impl Drop for FakeBroker {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The real broker's answers to the operations that have only one.
pub(crate) fn standard(req: &Value, id: u64) -> Option<Vec<Value>> {
    let frame = match req["op"].as_str()? {
        "hello" => json!({
            "type": "hello", "id": id, "version": 1,
            "server": "fake-broker/0", "max_line_bytes": 4096
        }),
        "open" => opened(id, req),
        "commit" | "rollback" | "close" => json!({"type": "ok", "id": id}),
        "ping" => json!({"type": "pong", "id": id}),
        _ => return None,
    };
    Some(vec![frame])
}

pub(crate) fn opened(id: u64, req: &Value) -> Value {
    json!({
        "type": "opened", "id": id, "session": "s-1",
        "db": req["db"], "dbname": req["dbname"].as_str().or(req["db"].as_str()),
        "user": req["user"], "readonly": req["readonly"], "rule": "test-rule",
        "identity": {"uid": 1000, "user": "alice", "gid": 1000,
                     "groups": ["alice", "idm"], "pid": 4242}
    })
}

pub(crate) fn columns(id: u64, names: &[&str]) -> Value {
    let cols: Vec<Value> = names
        .iter()
        .map(|n| json!({"name": n, "type": "text"}))
        .collect();
    json!({"type": "columns", "id": id, "columns": cols})
}

pub(crate) fn rows(id: u64, rows: Value) -> Value {
    json!({"type": "rows", "id": id, "rows": rows})
}

pub(crate) fn done(id: u64, rows: u64, command: &str) -> Value {
    json!({"type": "done", "id": id, "rows": rows, "command": command})
}

pub(crate) fn error(id: u64, code: &str, message: &str) -> Value {
    json!({"type": "error", "id": id, "error": {"code": code, "message": message}})
}
