//! iam-pgbroker-load: the load generator that `scripts/load` runs (one
//! process per OS user), and the client the reliability tests kill.
//!
//! ```text
//! iam-pgbroker-load work --socket S --connections N --seconds T
//!     [--db czechidm] [--user czechidm] [--write-table T] [--mix 80,15,5]
//!     [--reopen-every 100] [--think-ms 0] [--ramp-ms 0] [--label L]
//!     (think: a pause after each request, uniform in 0..2 × think-ms;
//!     ramp: the connections start evenly spread over ramp-ms)
//! iam-pgbroker-load misbehave --socket S --clients N --seconds T
//!     [--write-table T] [--max-line-bytes N] [--label L]
//! iam-pgbroker-load hold --socket S [--db D] [--user U] [--write SQL] --sql SQL
//! iam-pgbroker-load report [--set KEY=VALUE]... FILE...
//! iam-pgbroker-load attack --kind hog|nonreader|flood|tempfile --socket S
//!     --seconds T [--sessions N] [--db D] [--user U] [--dbnames a,b]
//!     [--reason-chars N] [--sql SQL] [--label L]
//! ```
//!
//! `work`: N connections (one thread each), each with a session doing a mix
//! of point lookups (`idm_identity_bench` by username), larger reads (1,000
//! rows) and, with `--write-table`, write transactions (an UPDATE of a
//! random row of the table and an INSERT into `<table>_log`, committed),
//! closing and reopening its session every `--reopen-every` requests (on
//! average; each session draws its own count).
//! Prints one JSON object: requests by kind, errors by code, latency
//! histograms, commits.
//!
//! `misbehave`: N clients that keep doing what clients should not: garbage
//! lines, half a line and silence, oversized lines, connect and vanish,
//! vanish mid-result, vanish mid-transaction (an UPDATE of `poison` in the
//! write table, never committed). Prints one JSON object: attempts and
//! outcomes per behaviour.
//!
//! `hold`: opens a session, runs `--write` (if given) with `execute`, sends
//! `--sql` as a query, reads until its first `rows` frame, prints
//! `HOLD <session>` and sleeps until killed.
//!
//! `attack` (issue 17, run as an unprivileged user): what one user could
//! do to starve the others, for `--seconds`, then one JSON object of what it
//! got (`attempts`, `outcomes` by answer, and per kind figures):
//! - `hog`: takes as many server connections as it can: `--sessions` (64)
//!   sessions at once, cycling through `--dbnames` and `--user`s (comma
//!   separated), closing and reopening half of them every second so that
//!   closed ones park idle in the pool; `held_max` is the most it held.
//! - `nonreader`: opens a session, asks for a huge result and reads
//!   nothing; sends a `ping` every 200 ms until the broker closes the
//!   connection; `cut_off_ms` the times that took; then again.
//! - `flood`: pipelines `open`s with `--reason-chars` (1000) character
//!   reasons as fast as it can, answers read by a second thread.
//! - `tempfile`: a read session sorting more than memory holds, over and
//!   over (`--sql` to change it).
//!
//! `report`: merges `work` and `misbehave` outputs and prints the summary
//! (a table on stderr, JSON on stdout); `--set` adds figures measured
//! elsewhere (RSS, fds, server connections).

use iam_pgconnect::{Config, Connection, Error};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        usage("a command is needed");
    }
    let command = args.remove(0);
    let opts = Opts::parse(args);
    match command.as_str() {
        "work" => work(&opts),
        "misbehave" => misbehave(&opts),
        "hold" => hold(&opts),
        "report" => report(&opts),
        "attack" => attack(&opts),
        other => usage(&format!("unknown command {other:?}")),
    }
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "iam-pgbroker-load: {problem} (work | misbehave | hold | report; see the source's header)"
    );
    std::process::exit(2);
}

/// `--key value` options, `--set k=v` repeated, the rest positional.
struct Opts {
    values: BTreeMap<String, String>,
    sets: Vec<(String, String)>,
    files: Vec<String>,
}

impl Opts {
    fn parse(args: Vec<String>) -> Opts {
        let mut values = BTreeMap::new();
        let mut sets = Vec::new();
        let mut files = Vec::new();
        let mut it = args.into_iter();
        while let Some(arg) = it.next() {
            if let Some(key) = arg.strip_prefix("--") {
                let value = it
                    .next()
                    .unwrap_or_else(|| usage(&format!("--{key} needs a value")));
                if key == "set" {
                    let (k, v) = value
                        .split_once('=')
                        .unwrap_or_else(|| usage("--set takes KEY=VALUE"));
                    sets.push((k.to_owned(), v.to_owned()));
                } else {
                    values.insert(key.to_owned(), value);
                }
            } else {
                files.push(arg);
            }
        }
        Opts {
            values,
            sets,
            files,
        }
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    fn req(&self, key: &str) -> &str {
        self.get(key)
            .unwrap_or_else(|| usage(&format!("--{key} is required")))
    }

    fn num(&self, key: &str, default: u64) -> u64 {
        match self.get(key) {
            None => default,
            Some(v) => v
                .parse()
                .unwrap_or_else(|_| usage(&format!("--{key} wants a number, not {v:?}"))),
        }
    }

    fn socket(&self) -> PathBuf {
        PathBuf::from(self.req("socket"))
    }
}

/// xorshift64*: enough randomness for picking rows, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Rng((seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ nanos ^ u64::from(std::process::id())) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// 1..=n.
    fn upto(&mut self, n: u64) -> u64 {
        self.next() % n + 1
    }
}

/// Latencies in buckets 2 % wide (bucket i holds ⌊ln µs / ln 1.02⌋ = i):
/// percentiles to within 1 %, mergeable across processes.
#[derive(Default, Clone)]
struct Histogram {
    buckets: BTreeMap<u32, u64>,
    count: u64,
    max_us: u64,
}

const BUCKET_BASE: f64 = 1.02;

impl Histogram {
    fn record(&mut self, d: Duration) {
        let us = (d.as_micros() as u64).max(1);
        let idx = ((us as f64).ln() / BUCKET_BASE.ln()).floor() as u32;
        *self.buckets.entry(idx).or_default() += 1;
        self.count += 1;
        self.max_us = self.max_us.max(us);
    }

    fn merge(&mut self, other: &Histogram) {
        for (k, v) in &other.buckets {
            *self.buckets.entry(*k).or_default() += v;
        }
        self.count += other.count;
        self.max_us = self.max_us.max(other.max_us);
    }

    /// The `q` quantile (0..1) in ms: the middle of its bucket.
    fn quantile_ms(&self, q: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let rank = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (idx, n) in &self.buckets {
            seen += n;
            if seen >= rank {
                return BUCKET_BASE.powf(f64::from(*idx) + 0.5) / 1000.0;
            }
        }
        self.max_us as f64 / 1000.0
    }

    fn to_json(&self) -> Value {
        let buckets: Map<String, Value> = self
            .buckets
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        json!({"count": self.count, "max_us": self.max_us, "buckets": buckets})
    }

    fn from_json(v: &Value) -> Histogram {
        let mut h = Histogram {
            count: v["count"].as_u64().unwrap_or(0),
            max_us: v["max_us"].as_u64().unwrap_or(0),
            ..Histogram::default()
        };
        if let Some(b) = v["buckets"].as_object() {
            for (k, n) in b {
                if let Ok(idx) = k.parse() {
                    h.buckets.insert(idx, n.as_u64().unwrap_or(0));
                }
            }
        }
        h
    }
}

/// What one `work` thread (and, merged, one process) did.
#[derive(Default)]
struct WorkStats {
    ok: BTreeMap<&'static str, u64>,
    latency: BTreeMap<&'static str, Histogram>,
    errors: BTreeMap<String, u64>,
    /// First few error messages, for the report.
    samples: Vec<String>,
    commits: u64,
}

impl WorkStats {
    fn done(&mut self, kind: &'static str, took: Duration) {
        *self.ok.entry(kind).or_default() += 1;
        self.latency.entry(kind).or_default().record(took);
    }

    fn error(&mut self, kind: &str, e: &Error) {
        let code = match e.sqlstate() {
            Some(state) => format!("{}/{state}", e.code().as_str()),
            None => e.code().as_str().to_owned(),
        };
        self.count_error(
            code,
            format!("{kind}: {}: {}", e.code().as_str(), e.message()),
        );
    }

    fn failed(&mut self, kind: &str, f: &Fail) {
        match f {
            Fail::Client(e) => self.error(kind, e),
            Fail::Short(m) => self.count_error("short_result".into(), format!("{kind}: {m}")),
        }
    }

    fn count_error(&mut self, code: String, sample: String) {
        *self.errors.entry(code).or_default() += 1;
        if self.samples.len() < 5 {
            self.samples.push(sample);
        }
    }

    fn merge(&mut self, other: WorkStats) {
        for (k, v) in other.ok {
            *self.ok.entry(k).or_default() += v;
        }
        for (k, h) in other.latency {
            self.latency.entry(k).or_default().merge(&h);
        }
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        for s in other.samples {
            if self.samples.len() < 10 {
                self.samples.push(s);
            }
        }
        self.commits += other.commits;
    }
}

struct WorkPlan {
    socket: PathBuf,
    db: String,
    user: String,
    write_table: Option<String>,
    /// Cumulative thresholds out of 100: lookup, bulk, (write = the rest).
    lookup: u64,
    bulk: u64,
    reopen_every: u64,
    think: Duration,
    /// Connections start spread over this long.
    ramp: Duration,
    connections: u64,
    deadline: Instant,
    label: String,
}

fn work(opts: &Opts) {
    let connections = opts.num("connections", 10);
    let seconds = opts.num("seconds", 10);
    let mix: Vec<u64> = opts
        .get("mix")
        .unwrap_or("80,15,5")
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .unwrap_or_else(|_| usage("--mix is LOOKUP,BULK,WRITE"))
        })
        .collect();
    if mix.len() != 3 {
        usage("--mix is LOOKUP,BULK,WRITE");
    }
    let write_table = opts.get("write-table").map(str::to_owned);
    // Without a write table, writes become lookups.
    let (lookup, bulk) = if write_table.is_some() {
        (mix[0], mix[0] + mix[1])
    } else {
        (mix[0] + mix[2], mix[0] + mix[2] + mix[1])
    };
    let total = mix.iter().sum::<u64>().max(1);
    let plan = Arc::new(WorkPlan {
        socket: opts.socket(),
        db: opts.get("db").unwrap_or("czechidm").to_owned(),
        user: opts.get("user").unwrap_or("czechidm").to_owned(),
        write_table,
        lookup: lookup * 100 / total,
        bulk: bulk * 100 / total,
        reopen_every: opts.num("reopen-every", 100).max(1),
        think: Duration::from_millis(opts.num("think-ms", 0)),
        ramp: Duration::from_millis(opts.num("ramp-ms", 0)),
        connections,
        deadline: Instant::now() + Duration::from_secs(seconds),
        label: opts.get("label").unwrap_or("work").to_owned(),
    });
    let started = Instant::now();
    let threads: Vec<_> = (0..connections)
        .map(|i| {
            let plan = plan.clone();
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || work_thread(&plan, i))
                .expect("spawn a worker thread")
        })
        .collect();
    let mut stats = WorkStats::default();
    for t in threads {
        match t.join() {
            Ok(s) => stats.merge(s),
            Err(_) => *stats.errors.entry("worker_panic".into()).or_default() += 1,
        }
    }
    let latency: Map<String, Value> = stats
        .latency
        .iter()
        .map(|(k, h)| (k.to_string(), h.to_json()))
        .collect();
    let out = json!({
        "mode": "work",
        "label": plan.label,
        "uid": unsafe { libc::getuid() },
        "connections": connections,
        "seconds": started.elapsed().as_secs_f64(),
        "ok": stats.ok,
        "errors": stats.errors,
        "error_samples": stats.samples,
        "commits": stats.commits,
        "latency": latency,
        "cpu_s": round2(cpu_seconds()),
    });
    println!("{out}");
}

fn work_thread(plan: &WorkPlan, index: u64) -> WorkStats {
    let mut stats = WorkStats::default();
    let mut rng = Rng::new(index + 1);
    let config = Config::new()
        .socket(&plan.socket)
        .db(plan.db.clone())
        .user(plan.user.clone())
        .readonly(plan.write_table.is_none())
        .client_name(format!("iam-pgbroker-load/{}", plan.label))
        .read_timeout(Duration::from_secs(120));
    let mut session: Option<Connection> = None;
    std::thread::sleep(
        plan.ramp
            .mul_f64(index as f64 / plan.connections.max(1) as f64),
    );
    let mut used = 0u64;
    let mut reopen_at = plan.reopen_every;
    while Instant::now() < plan.deadline {
        if session.is_none() {
            let t = Instant::now();
            match config.connect() {
                Ok(c) => {
                    stats.done("open", t.elapsed());
                    session = Some(c);
                    used = 0;
                    // Uniform around the mean, so sessions do not all
                    // reopen at the same moment.
                    reopen_at = plan.reopen_every / 2 + rng.upto(plan.reopen_every);
                }
                Err(e) => {
                    stats.error("open", &e);
                    // Never spin against a broker that refuses.
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            }
        }
        let Some(db) = session.as_mut() else { continue };
        let roll = rng.upto(100);
        let t = Instant::now();
        let (kind, result) = if roll <= plan.lookup {
            ("lookup", lookup(db, &mut rng))
        } else if roll <= plan.bulk {
            ("bulk", bulk(db, &mut rng))
        } else {
            let r = write(db, plan, &mut rng);
            if r.is_ok() {
                stats.commits += 1;
            }
            ("write", r)
        };
        used += 1;
        match result {
            Ok(()) => stats.done(kind, t.elapsed()),
            Err(e) => {
                stats.failed(kind, &e);
                // Whatever failed, start clean: a new session.
                if let Some(db) = session.take() {
                    let _ = db.close();
                }
            }
        }
        if used >= reopen_at {
            if let Some(db) = session.take() {
                let t = Instant::now();
                match db.close() {
                    Ok(()) => stats.done("close", t.elapsed()),
                    Err(e) => stats.error("close", &e),
                }
            }
        }
        if !plan.think.is_zero() {
            // Uniform in 0..2 × think: the mean, without lockstep.
            let ms = plan.think.as_millis() as u64;
            std::thread::sleep(Duration::from_millis(rng.upto(2 * ms)));
        }
    }
    if let Some(db) = session.take() {
        if let Err(e) = db.close() {
            stats.error("close", &e);
        }
    }
    stats
}

/// Why a well-behaved request failed.
enum Fail {
    /// The broker (or the socket) said so.
    Client(Error),
    /// The answer had the wrong number of rows.
    Short(String),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        Fail::Client(e)
    }
}

fn expect_rows(got: usize, want: usize) -> Result<(), Fail> {
    if got == want {
        Ok(())
    } else {
        Err(Fail::Short(format!("{got} rows, expected {want}")))
    }
}

/// One row of `idm_identity_bench` by its unique username.
fn lookup(db: &mut Connection, rng: &mut Rng) -> Result<(), Fail> {
    let name = format!("user{:06}", rng.upto(100_000));
    let rows = db.query(
        "SELECT * FROM idm_identity_bench WHERE username = %s",
        &[&name],
    )?;
    expect_rows(rows.len(), 1)
}

/// 1,000 rows from a random start.
fn bulk(db: &mut Connection, rng: &mut Rng) -> Result<(), Fail> {
    let from = format!("user{:06}", rng.upto(99_000));
    let rows = db.query(
        "SELECT id, username, first_name, last_name, email, disabled, created \
         FROM idm_identity_bench WHERE username >= %s ORDER BY username LIMIT 1000",
        &[&from],
    )?;
    expect_rows(rows.len(), 1000)
}

/// An UPDATE and an INSERT, committed.
fn write(db: &mut Connection, plan: &WorkPlan, rng: &mut Rng) -> Result<(), Fail> {
    let table = plan.write_table.as_deref().unwrap_or_default();
    let row = rng.upto(1000) as i64;
    let n = db.execute(
        &format!("UPDATE {table} SET n = n + 1 WHERE id = %s"),
        &[&row],
    )?;
    expect_rows(n as usize, 1)?;
    db.execute(
        &format!("INSERT INTO {table}_log (worker, row_id) VALUES (%s, %s)"),
        &[&plan.label, &row],
    )?;
    db.commit()?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Misbehaving clients.

const BEHAVIOURS: [&str; 6] = [
    "garbage",
    "half_line",
    "oversized",
    "vanish",
    "vanish_mid_result",
    "vanish_mid_transaction",
];

#[derive(Default)]
struct Outcomes {
    /// behaviour → outcome → count.
    seen: BTreeMap<&'static str, BTreeMap<String, u64>>,
}

fn misbehave(opts: &Opts) {
    let clients = opts.num("clients", 10);
    let seconds = opts.num("seconds", 10);
    let socket = Arc::new(opts.socket());
    let table = Arc::new(opts.get("write-table").map(str::to_owned));
    let max_line = opts.num("max-line-bytes", 1024 * 1024) as usize;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let threads: Vec<_> = (0..clients)
        .map(|i| {
            let socket = socket.clone();
            let table = table.clone();
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    let mut out = Outcomes::default();
                    let mut rng = Rng::new(1000 + i);
                    let mut n = i as usize;
                    while Instant::now() < deadline {
                        let behaviour = BEHAVIOURS[n % BEHAVIOURS.len()];
                        n += 1;
                        if behaviour == "vanish_mid_transaction" && table.is_none() {
                            continue;
                        }
                        let outcome = misbehave_once(
                            behaviour,
                            &socket,
                            table.as_deref(),
                            max_line,
                            &mut rng,
                        );
                        *out.seen
                            .entry(behaviour)
                            .or_default()
                            .entry(outcome)
                            .or_default() += 1;
                    }
                    out
                })
                .expect("spawn a misbehaving thread")
        })
        .collect();
    let mut all = Outcomes::default();
    for t in threads {
        if let Ok(o) = t.join() {
            for (b, m) in o.seen {
                for (k, v) in m {
                    *all.seen.entry(b).or_default().entry(k).or_default() += v;
                }
            }
        }
    }
    let out = json!({
        "mode": "misbehave",
        "label": opts.get("label").unwrap_or("misbehave"),
        "uid": unsafe { libc::getuid() },
        "clients": clients,
        "outcomes": all.seen,
        "cpu_s": round2(cpu_seconds()),
    });
    println!("{out}");
}

/// A raw connection, frames as JSON.
struct Raw {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Raw {
    fn connect(socket: &std::path::Path, timeout: Duration) -> std::io::Result<Raw> {
        let stream = UnixStream::connect(socket)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let reader = BufReader::new(stream.try_clone()?);
        Ok(Raw { stream, reader })
    }

    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// The next frame; `Ok(None)` at end of stream.
    fn recv(&mut self) -> std::io::Result<Option<Value>> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        serde_json::from_str(&line)
            .map(Some)
            .map_err(|e| std::io::Error::other(format!("frame is not JSON: {e}")))
    }

    /// Sends a request and reads up to its last frame.
    fn call(&mut self, request: Value) -> std::io::Result<Value> {
        let mut line = request.to_string();
        line.push('\n');
        self.send(line.as_bytes())?;
        loop {
            match self.recv()? {
                None => return Err(std::io::Error::other("closed")),
                Some(f) if matches!(f["type"].as_str(), Some("columns") | Some("rows")) => {}
                Some(f) => return Ok(f),
            }
        }
    }
}

fn code_of(frame: &Value) -> String {
    match frame["type"].as_str() {
        Some("error") => frame["error"]["code"]
            .as_str()
            .unwrap_or("error")
            .to_owned(),
        Some(t) => t.to_owned(),
        None => "not_a_frame".into(),
    }
}

/// One misbehaviour; the outcome as a word: `expected:<what>` when the
/// broker did what its limits promise, anything else is reported as is.
fn misbehave_once(
    behaviour: &'static str,
    socket: &std::path::Path,
    table: Option<&str>,
    max_line: usize,
    rng: &mut Rng,
) -> String {
    let result = (|| -> std::io::Result<String> {
        let mut raw = Raw::connect(socket, Duration::from_secs(30))?;
        Ok(match behaviour {
            "garbage" => {
                let mut junk: Vec<u8> = (0..rng.upto(200)).map(|_| rng.next() as u8).collect();
                junk.retain(|b| *b != b'\n');
                junk.push(b'\n');
                raw.send(&junk)?;
                let answer = raw.recv()?.map(|f| code_of(&f)).unwrap_or("eof".into());
                // Still usable afterwards.
                let pong = raw.call(json!({"id": 2, "op": "ping"}))?;
                if answer == "bad_request" && pong["type"] == "pong" {
                    "expected:bad_request".into()
                } else {
                    format!("{answer}+{}", code_of(&pong))
                }
            }
            "half_line" => {
                raw.send(b"{\"id\": 1, \"op\": \"pi")?;
                let answer = raw.recv()?.map(|f| code_of(&f)).unwrap_or("eof".into());
                let then = raw.recv()?.map(|f| code_of(&f)).unwrap_or("eof".into());
                if answer == "limit" && then == "eof" {
                    "expected:limit".into()
                } else {
                    format!("{answer}+{then}")
                }
            }
            "oversized" => {
                let mut line = b"{\"id\":1,\"op\":\"query\",\"sql\":\"SELECT '".to_vec();
                line.resize(max_line + 4096, b'x');
                line.extend_from_slice(b"'\"}\n");
                // The broker may close before taking all of it.
                let _ = raw.send(&line);
                let answer = match raw.recv() {
                    Ok(f) => f.map(|f| code_of(&f)).unwrap_or("eof".into()),
                    Err(e) => format!("io:{:?}", e.kind()),
                };
                if answer == "bad_request" {
                    "expected:bad_request".into()
                } else {
                    answer
                }
            }
            "vanish" => {
                if rng.upto(2) == 1 {
                    raw.send(b"{\"id\":1,\"op\":\"hello\",\"version\":1}\n")?;
                }
                "expected:vanished".into()
            }
            "vanish_mid_result" => {
                let opened = raw.call(json!({"id": 1, "op": "open", "user": "postgres"}))?;
                if opened["type"] != "opened" {
                    return Ok(format!("open:{}", code_of(&opened)));
                }
                raw.send(
                    b"{\"id\":2,\"op\":\"query\",\"sql\":\"SELECT * FROM idm_identity_bench\"}\n",
                )?;
                let first = raw.recv()?.map(|f| code_of(&f)).unwrap_or("eof".into());
                if first == "columns" {
                    "expected:vanished_mid_result".into()
                } else {
                    first
                }
            }
            "vanish_mid_transaction" => {
                let opened = raw
                    .call(json!({"id": 1, "op": "open", "user": "czechidm", "readonly": false}))?;
                if opened["type"] != "opened" {
                    return Ok(format!("open:{}", code_of(&opened)));
                }
                let sql = format!(
                    "UPDATE {} SET poison = poison + 1 WHERE id = {}",
                    table.unwrap_or("missing_table"),
                    rng.upto(1000)
                );
                let done = raw.call(json!({"id": 2, "op": "execute", "sql": sql}))?;
                if done["type"] == "done" {
                    "expected:vanished_mid_transaction".into()
                } else {
                    code_of(&done)
                }
            }
            _ => "unknown".into(),
        })
    })();
    match result {
        Ok(outcome) => outcome,
        Err(e) => format!("io:{:?}", e.kind()),
    }
}

// ---------------------------------------------------------------------------
// hold: for the reliability tests.

fn hold(opts: &Opts) {
    let socket = opts.socket();
    let mut raw = Raw::connect(&socket, Duration::from_secs(60)).unwrap_or_else(|e| {
        eprintln!("hold: connect: {e}");
        std::process::exit(1)
    });
    let write = opts.get("write");
    let opened = raw
        .call(json!({
            "id": 1, "op": "open",
            "db": opts.get("db").unwrap_or("czechidm"),
            "user": opts.get("user").unwrap_or("postgres"),
            "readonly": write.is_none(),
        }))
        .unwrap_or_else(|e| fail(&format!("open: {e}")));
    if opened["type"] != "opened" {
        fail(&format!("open: {opened}"));
    }
    if let Some(sql) = write {
        let done = raw
            .call(json!({"id": 2, "op": "execute", "sql": sql}))
            .unwrap_or_else(|e| fail(&format!("execute: {e}")));
        if done["type"] != "done" {
            fail(&format!("execute: {done}"));
        }
    }
    let mut line = json!({"id": 3, "op": "query", "sql": opts.req("sql")}).to_string();
    line.push('\n');
    raw.send(line.as_bytes())
        .unwrap_or_else(|e| fail(&format!("query: {e}")));
    loop {
        match raw.recv() {
            Ok(Some(f)) if f["type"] == "rows" => break,
            Ok(Some(f)) if f["type"] == "columns" => {}
            other => fail(&format!("expected rows, got {other:?}")),
        }
    }
    println!("HOLD {}", opened["session"].as_str().unwrap_or("?"));
    let _ = std::io::stdout().flush();
    // Read nothing more: the broker's writes back up until it is killed.
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

// ---------------------------------------------------------------------------
// attack

fn attack(opts: &Opts) {
    let kind = opts.req("kind").to_owned();
    let seconds = opts.num("seconds", 10);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let mut extra = Map::new();
    let mut attempts = 0u64;
    match kind.as_str() {
        "hog" => attack_hog(opts, deadline, &mut attempts, &mut outcomes, &mut extra),
        "nonreader" => attack_nonreader(opts, deadline, &mut attempts, &mut outcomes, &mut extra),
        "flood" => attack_flood(opts, deadline, &mut attempts, &mut outcomes, &mut extra),
        "tempfile" => attack_tempfile(opts, deadline, &mut attempts, &mut outcomes),
        other => usage(&format!("unknown attack {other:?}")),
    }
    let mut out = json!({
        "label": opts.get("label").unwrap_or(&kind),
        "attack": kind,
        "attempts": attempts,
        "outcomes": outcomes,
    });
    if let Some(map) = out.as_object_mut() {
        map.extend(extra);
    }
    println!("{out}");
}

fn list(opts: &Opts, key: &str, default: &str) -> Vec<String> {
    opts.get(key)
        .unwrap_or(default)
        .split(',')
        .map(str::to_owned)
        .collect()
}

fn attack_hog(
    opts: &Opts,
    deadline: Instant,
    attempts: &mut u64,
    outcomes: &mut BTreeMap<String, u64>,
    extra: &mut Map<String, Value>,
) {
    let socket = opts.socket();
    let sessions = opts.num("sessions", 64) as usize;
    let dbnames = list(opts, "dbnames", "");
    let users = list(opts, "user", "czechidm");
    let db = opts.get("db").unwrap_or("czechidm").to_owned();
    let mut held: Vec<Raw> = Vec::new();
    let mut held_max = 0usize;
    let mut turn = 0usize;
    let mut ready = false;
    while Instant::now() < deadline {
        let mut failures_this_round = 0usize;
        while held.len() < sessions && Instant::now() < deadline {
            turn += 1;
            *attempts += 1;
            let mut open = json!({
                "id": 1, "op": "open", "db": db,
                "user": users[turn % users.len()], "readonly": true,
            });
            let dbname = &dbnames[turn % dbnames.len()];
            if !dbname.is_empty() {
                open["dbname"] = json!(dbname);
            }
            let answer = Raw::connect(&socket, Duration::from_secs(60))
                .and_then(|mut raw| raw.call(open).map(|f| (raw, f)));
            match answer {
                Ok((mut raw, f)) if f["type"] == "opened" => {
                    // A statement, so the session surely holds its connection.
                    let _ = raw.call(json!({"id": 2, "op": "query", "sql": "SELECT 1"}));
                    *outcomes.entry("opened".into()).or_default() += 1;
                    held.push(raw);
                }
                Ok((_, f)) => {
                    failures_this_round += 1;
                    *outcomes.entry(code_of(&f)).or_default() += 1
                }
                Err(e) => {
                    failures_this_round += 1;
                    *outcomes.entry(format!("io: {}", e.kind())).or_default() += 1
                }
            }
            held_max = held_max.max(held.len());
            if failures_this_round > sessions {
                break;
            }
        }
        if !ready {
            ready = true;
            println!("HOG READY {}", held.len());
            let _ = std::io::stdout().flush();
        }
        std::thread::sleep(Duration::from_millis(1000));
        // Half of them closed cleanly: their connections go idle in the pool.
        let keep = held.len() / 2;
        for mut raw in held.drain(keep..) {
            let _ = raw.call(json!({"id": 9, "op": "close"}));
        }
    }
    extra.insert("held_max".into(), json!(held_max));
}

/// A connection with the attacker's read session open (`--db`, `--user`),
/// or `None` with why counted in `outcomes` (after a pause when the
/// broker refused it).
fn open_read_session(
    opts: &Opts,
    socket: &std::path::Path,
    timeout: Duration,
    outcomes: &mut BTreeMap<String, u64>,
) -> Option<Raw> {
    let Ok(mut raw) = Raw::connect(socket, timeout) else {
        *outcomes.entry("connect_failed".into()).or_default() += 1;
        return None;
    };
    let open = json!({"id": 1, "op": "open", "db": opts.get("db").unwrap_or("czechidm"),
                      "user": opts.get("user").unwrap_or("czechidm"), "readonly": true});
    match raw.call(open) {
        Ok(f) if f["type"] == "opened" => Some(raw),
        Ok(f) => {
            *outcomes.entry(code_of(&f)).or_default() += 1;
            std::thread::sleep(Duration::from_millis(200));
            None
        }
        Err(_) => {
            *outcomes.entry("open_failed".into()).or_default() += 1;
            None
        }
    }
}

fn attack_nonreader(
    opts: &Opts,
    deadline: Instant,
    attempts: &mut u64,
    outcomes: &mut BTreeMap<String, u64>,
    extra: &mut Map<String, Value>,
) {
    let socket = opts.socket();
    let sql = opts
        .get("sql")
        .unwrap_or("SELECT b.*, repeat('x', 2000) AS pad FROM idm_identity_bench b");
    let mut cut_off = Vec::new();
    while Instant::now() < deadline {
        *attempts += 1;
        let Some(mut raw) = open_read_session(opts, &socket, Duration::from_secs(60), outcomes)
        else {
            continue;
        };
        let line = format!("{}\n", json!({"id": 2, "op": "query", "sql": sql}));
        if raw.send(line.as_bytes()).is_err() {
            continue;
        }
        let started = Instant::now();
        // Read nothing; a ping now and then shows when the broker closed.
        let _ = raw
            .stream
            .set_write_timeout(Some(Duration::from_millis(200)));
        let cut = loop {
            std::thread::sleep(Duration::from_millis(200));
            match raw.stream.write(b"{\"id\":3,\"op\":\"ping\"}\n") {
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                    ) =>
                {
                    break true
                }
                _ => {}
            }
            if Instant::now() > deadline + Duration::from_secs(120) {
                break false;
            }
        };
        if cut {
            cut_off.push(started.elapsed().as_millis() as u64);
            *outcomes.entry("cut_off".into()).or_default() += 1;
        } else {
            *outcomes.entry("never_cut_off".into()).or_default() += 1;
        }
    }
    extra.insert("cut_off_ms".into(), json!(cut_off));
}

fn attack_flood(
    opts: &Opts,
    deadline: Instant,
    attempts: &mut u64,
    outcomes: &mut BTreeMap<String, u64>,
    extra: &mut Map<String, Value>,
) {
    let socket = opts.socket();
    let reason = "r".repeat(opts.num("reason-chars", 1000) as usize);
    let mut bytes_sent = 0u64;
    while Instant::now() < deadline {
        let Ok(raw) = Raw::connect(&socket, Duration::from_secs(10)) else {
            *outcomes.entry("connect_failed".into()).or_default() += 1;
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        let Ok(reader) = raw.stream.try_clone() else {
            continue;
        };
        let answered = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = answered.clone();
        let answers = std::thread::spawn(move || {
            let mut counts: BTreeMap<String, u64> = BTreeMap::new();
            let mut lines = BufReader::new(reader);
            let mut line = String::new();
            while lines.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                let code = serde_json::from_str::<Value>(&line)
                    .map(|f| code_of(&f))
                    .unwrap_or_else(|_| "not_a_frame".into());
                *counts.entry(code).or_default() += 1;
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                line.clear();
            }
            counts
        });
        let mut raw = raw;
        // Pipelined, 20 at a time, at most 40 unanswered.
        let mut batch = String::new();
        for i in 0..20u64 {
            batch.push_str(
                &json!({"id": i, "op": "open", "db": "czechidm", "user": "postgres",
                                   "reason": reason})
                .to_string(),
            );
            batch.push('\n');
        }
        let mut sent = 0u64;
        while Instant::now() < deadline {
            if sent.saturating_sub(answered.load(std::sync::atomic::Ordering::Relaxed)) >= 40 {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            if raw.send(batch.as_bytes()).is_err() {
                break;
            }
            sent += 20;
            *attempts += 20;
            bytes_sent += batch.len() as u64;
        }
        let _ = raw.stream.shutdown(std::net::Shutdown::Write);
        if let Ok(counts) = answers.join() {
            for (code, n) in counts {
                *outcomes.entry(code).or_default() += n;
            }
        }
    }
    extra.insert("bytes_sent".into(), json!(bytes_sent));
}

fn attack_tempfile(
    opts: &Opts,
    deadline: Instant,
    attempts: &mut u64,
    outcomes: &mut BTreeMap<String, u64>,
) {
    let socket = opts.socket();
    let sql = opts.get("sql").unwrap_or(
        "SELECT count(*) FROM (SELECT g::text AS t FROM generate_series(1, 3000000) g ORDER BY 1) s",
    );
    while Instant::now() < deadline {
        let Some(mut raw) = open_read_session(opts, &socket, Duration::from_secs(120), outcomes)
        else {
            continue;
        };
        while Instant::now() < deadline {
            *attempts += 1;
            match raw.call(json!({"id": 2, "op": "query", "sql": sql})) {
                Ok(f) if f["type"] == "done" => *outcomes.entry("done".into()).or_default() += 1,
                Ok(f) => {
                    let code = match f["error"]["sqlstate"].as_str() {
                        Some(state) => format!("{}:{state}", code_of(&f)),
                        None => code_of(&f),
                    };
                    *outcomes.entry(code).or_default() += 1;
                    let _ = raw.call(json!({"id": 3, "op": "rollback"}));
                }
                Err(_) => break,
            }
        }
    }
}

fn fail(message: &str) -> ! {
    eprintln!("hold: {message}");
    std::process::exit(1);
}

// ---------------------------------------------------------------------------
// report

fn report(opts: &Opts) {
    let mut ok: BTreeMap<String, u64> = BTreeMap::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut latency: BTreeMap<String, Histogram> = BTreeMap::new();
    let mut samples: Vec<String> = Vec::new();
    let mut commits = 0u64;
    let mut connections = 0u64;
    let mut seconds = 0f64;
    let mut processes = Vec::new();
    let mut outcomes: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut misbehaving = 0u64;
    let mut load_cpu = 0f64;
    for file in &opts.files {
        let mut text = String::new();
        std::fs::File::open(file)
            .and_then(|mut f| f.read_to_string(&mut text))
            .unwrap_or_else(|e| usage(&format!("{file}: {e}")));
        let Some(v) = text
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str::<Value>(l).ok())
        else {
            eprintln!("report: {file} holds no result (did the process fail?)");
            *errors.entry(format!("no_result:{file}")).or_default() += 1;
            continue;
        };
        load_cpu += v["cpu_s"].as_f64().unwrap_or(0.0);
        match v["mode"].as_str() {
            Some("work") => {
                processes.push(
                    json!({"label": v["label"], "uid": v["uid"], "connections": v["connections"]}),
                );
                connections += v["connections"].as_u64().unwrap_or(0);
                seconds = seconds.max(v["seconds"].as_f64().unwrap_or(0.0));
                commits += v["commits"].as_u64().unwrap_or(0);
                for (k, n) in v["ok"].as_object().into_iter().flatten() {
                    *ok.entry(k.clone()).or_default() += n.as_u64().unwrap_or(0);
                }
                for (k, n) in v["errors"].as_object().into_iter().flatten() {
                    *errors.entry(k.clone()).or_default() += n.as_u64().unwrap_or(0);
                }
                for (k, h) in v["latency"].as_object().into_iter().flatten() {
                    latency
                        .entry(k.clone())
                        .or_default()
                        .merge(&Histogram::from_json(h));
                }
                for s in v["error_samples"].as_array().into_iter().flatten() {
                    if samples.len() < 10 {
                        samples.push(s.as_str().unwrap_or_default().to_owned());
                    }
                }
            }
            Some("misbehave") => {
                misbehaving += v["clients"].as_u64().unwrap_or(0);
                for (b, m) in v["outcomes"].as_object().into_iter().flatten() {
                    for (k, n) in m.as_object().into_iter().flatten() {
                        *outcomes
                            .entry(b.clone())
                            .or_default()
                            .entry(k.clone())
                            .or_default() += n.as_u64().unwrap_or(0);
                    }
                }
            }
            _ => eprintln!("report: {file}: not a load result"),
        }
    }
    let mut requests = Histogram::default();
    for (k, h) in &latency {
        if k != "open" && k != "close" {
            requests.merge(h);
        }
    }
    let lat = |h: &Histogram| {
        json!({
            "count": h.count,
            "p50_ms": round2(h.quantile_ms(0.50)),
            "p99_ms": round2(h.quantile_ms(0.99)),
            "max_ms": round2(h.max_us as f64 / 1000.0),
        })
    };
    let mut per_kind = Map::new();
    for (k, h) in &latency {
        per_kind.insert(k.clone(), lat(h));
    }
    let done: u64 = requests.count;
    let unexpected: u64 = outcomes
        .values()
        .flat_map(|m| m.iter())
        .filter(|(k, _)| !k.starts_with("expected:"))
        .map(|(_, n)| n)
        .sum();
    let measured: Map<String, Value> = opts
        .sets
        .iter()
        .map(|(k, v)| {
            let value = v
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::from(v.clone()));
            (k.clone(), value)
        })
        .collect();
    let summary = json!({
        "connections": connections,
        "misbehaving_clients": misbehaving,
        "seconds": round2(seconds),
        "requests": done,
        "requests_per_second": round2(done as f64 / seconds.max(0.001)),
        "ok": ok,
        "commits": commits,
        "errors": errors,
        "error_samples": samples,
        "latency": lat(&requests),
        "latency_by_kind": per_kind,
        "misbehaviour": outcomes,
        "misbehaviour_unexpected": unexpected,
        "processes": processes,
        "load_generator_cpu_s": round2(load_cpu),
        "measured": measured,
    });
    // The table, for people.
    let mut t = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(
        t,
        "{connections} connections + {misbehaving} misbehaving clients, {:.1} s",
        seconds
    );
    let _ = writeln!(
        t,
        "requests done: {done} ({:.0}/s), commits {commits}",
        done as f64 / seconds.max(0.001)
    );
    let _ = writeln!(
        t,
        "latency (well-behaved, all requests): p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms",
        requests.quantile_ms(0.5),
        requests.quantile_ms(0.99),
        requests.max_us as f64 / 1000.0
    );
    for (k, h) in &latency {
        let _ = writeln!(
            t,
            "  {k:<8} {:>9}  p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.1} ms",
            h.count,
            h.quantile_ms(0.5),
            h.quantile_ms(0.99),
            h.max_us as f64 / 1000.0
        );
    }
    if errors.is_empty() {
        let _ = writeln!(t, "errors: none");
    } else {
        let _ = writeln!(t, "errors by code: {}", json!(errors));
        for s in &samples {
            let _ = writeln!(t, "  e.g. {s}");
        }
    }
    let _ = writeln!(
        t,
        "misbehaving clients (unexpected outcomes: {unexpected}):"
    );
    for (b, m) in &outcomes {
        let _ = writeln!(t, "  {b:<24} {}", json!(m));
    }
    let _ = writeln!(t, "load generators' CPU: {load_cpu:.1} s");
    for (k, v) in &opts.sets {
        let _ = writeln!(t, "{k}: {v}");
    }
    eprint!("{t}");
    println!("{summary}");
}

/// CPU seconds (user + system) this process has used, all threads.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
