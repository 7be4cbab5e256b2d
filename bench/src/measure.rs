//! The measurements. Each runs the broker side and the direct side in the
//! same process, against the same database, interleaved where the
//! measurement is short, and returns medians.

use crate::machine::{context_switches, process_cpu_precise, rss_kib, CpuSnapshot, RssSampler};
use crate::report::{Goal, Line, Report, Unit};
use crate::stats::Samples;
use crate::target::{
    touch_broker_row, touch_direct_row, Result, Target, Usernames, BIG, BIG_ROWS, CLI_SQL,
    LOOKUP_BROKER, LOOKUP_DIRECT,
};
use futures_util::{pin_mut, TryStreamExt};
use std::hint::black_box;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// How much of everything.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Opens per side.
    pub opens: usize,
    /// Point lookups per variant.
    pub lookups: usize,
    /// Unmeasured point lookups per variant first.
    pub lookup_warmup: usize,
    /// Big-result runs per side (after one unmeasured run each).
    pub big_runs: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Rounds of (broker, direct) for the concurrent measurement.
    pub rounds: usize,
    /// Length of one side of one round.
    pub round_time: Duration,
    /// Whole-process runs per side.
    pub cli_runs: usize,
    /// Lookups counted under callgrind per process.
    pub counted_lookups: usize,
}

impl Plan {
    /// The full run (30-60 s) or the quick smoke run (5-10 s).
    pub fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                opens: 30,
                lookups: 300,
                lookup_warmup: 30,
                big_runs: 2,
                clients: 32,
                rounds: 1,
                round_time: Duration::from_secs(1),
                cli_runs: 8,
                counted_lookups: 100,
            }
        } else {
            Plan {
                opens: 200,
                lookups: 3000,
                lookup_warmup: 300,
                big_runs: 5,
                clients: 32,
                rounds: 3,
                round_time: Duration::from_secs(3),
                cli_runs: 30,
                counted_lookups: 1000,
            }
        }
    }
}

/// A current-thread runtime: the caller and the connection's driver share
/// one thread, which is the fastest tokio-postgres gets for one client.
fn single_thread() -> Result<Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn seconds(name: &str, key: &'static str, b: &Samples, d: &Samples, goal: Goal) -> Line {
    Line {
        name: name.into(),
        key,
        broker: b.median(),
        direct: d.median(),
        unit: Unit::Seconds,
        goal,
    }
}

/// `open`: client `connect()` until the session is ready vs a direct
/// tokio-postgres connect with SCRAM, interleaved.
pub fn open(t: &Target, plan: &Plan, report: &mut Report) -> Result<()> {
    let rt = single_thread()?;
    let mut broker_cpu = 0.0;
    let cfg = t.broker();
    let direct = t.direct();
    let (mut b, mut d) = (Samples::new(), Samples::new());
    for i in 0..plan.opens + 5 {
        let cpu = t.cpu.snapshot();
        let started = Instant::now();
        let conn = cfg.connect()?;
        let took = started.elapsed();
        conn.close()?;
        if i >= 5 {
            b.push(took);
            broker_cpu += cpu_of_broker(&cpu, t);
        }

        let took = rt.block_on(async {
            let started = Instant::now();
            let (client, connection) = direct.connect(tokio_postgres::NoTls).await?;
            let took = started.elapsed();
            // Dropping the client makes the driver send Terminate and end.
            drop(client);
            connection.await?;
            Ok::<_, tokio_postgres::Error>(took)
        })?;
        if i >= 5 {
            d.push(took);
        }
    }
    report.add(seconds("open", "open_ratio", &b, &d, Goal::AtMost(0.1)));
    broker_cpu_note(
        report,
        "open",
        "open + close",
        broker_cpu,
        plan.opens as u64,
    );
    Ok(())
}

/// Broker CPU seconds since `earlier` (0 when unknown).
fn cpu_of_broker(earlier: &CpuSnapshot, t: &Target) -> f64 {
    t.cpu.snapshot().since(earlier).broker.unwrap_or(0.0)
}

fn broker_cpu_note(report: &mut Report, name: &str, what: &str, secs: f64, ops: u64) {
    if secs > 0.0 {
        report.note(format!(
            "{name}: broker CPU per {what}: {}",
            crate::stats::fmt_secs(secs / ops.max(1) as f64)
        ));
    }
}

/// `small_query`: a point lookup by username, per-query latency, through
/// one broker session vs one direct connection unprepared (tokio-postgres
/// prepares an unnamed statement each time) and prepared once.
pub fn small_query(t: &Target, plan: &Plan, report: &mut Report) -> Result<()> {
    let rt = single_thread()?;
    let mut conn = t.broker().connect()?;
    let (client, stmt) = rt.block_on(async {
        let client = t.connect_direct().await?;
        let stmt = client.prepare(LOOKUP_DIRECT).await?;
        Ok::<_, crate::target::BoxError>((client, stmt))
    })?;
    // PgBouncer's side, prepared like the fastest direct one.
    let bouncer = match &t.pgbouncer {
        Some(proxy) => Some(rt.block_on(async {
            let client = t.connect_via(Some(proxy)).await?;
            let stmt = client.prepare(LOOKUP_DIRECT).await?;
            Ok::<_, crate::target::BoxError>((client, stmt, proxy.pid))
        })?),
        None => None,
    };
    let variants = if bouncer.is_some() { 4 } else { 3 };
    let mut names = Usernames::new(1);
    let (mut b, mut u, mut p, mut g) = (
        Samples::new(),
        Samples::new(),
        Samples::new(),
        Samples::new(),
    );
    let mut cpu = t.cpu.snapshot();
    let precise = |pid: Option<u32>| pid.and_then(process_cpu_precise);
    let bouncer_pid = bouncer.as_ref().and_then(|(_, _, pid)| *pid);
    let (mut broker_cpu0, mut bouncer_cpu0) = (precise(t.broker_pid), precise(bouncer_pid));
    // The client's own CPU: everything each variant's client does runs on
    // this thread (the broker's blocking client; tokio-postgres with its
    // connection driven by this thread's runtime).
    let (mut client_broker, mut client_prepared) = (0.0, 0.0);
    for i in 0..plan.lookup_warmup + plan.lookups {
        let record = i >= plan.lookup_warmup;
        if i == plan.lookup_warmup {
            cpu = t.cpu.snapshot();
            broker_cpu0 = precise(t.broker_pid);
            bouncer_cpu0 = precise(bouncer_pid);
        }
        // Rotate the order, so no variant always follows another.
        for k in 0..variants {
            let name = names.next().unwrap_or_default();
            match (i + k) % variants {
                0 => {
                    let cpu0 = thread_cpu();
                    let started = Instant::now();
                    let rows = conn.query(LOOKUP_BROKER, &[&name])?;
                    black_box(rows.iter().map(touch_broker_row).sum::<usize>());
                    let took = started.elapsed();
                    let cpu = thread_cpu() - cpu0;
                    check_one(rows.len(), &name)?;
                    if record {
                        b.push(took);
                        client_broker += cpu;
                    }
                }
                1 => {
                    let (took, n) = rt.block_on(async {
                        let started = Instant::now();
                        let rows = client.query(LOOKUP_DIRECT, &[&name]).await?;
                        for row in &rows {
                            black_box(touch_direct_row(row)?);
                        }
                        Ok::<_, crate::target::BoxError>((started.elapsed(), rows.len()))
                    })?;
                    check_one(n, &name)?;
                    if record {
                        u.push(took);
                    }
                }
                2 => {
                    let cpu0 = thread_cpu();
                    let (took, n) = rt.block_on(prepared_lookup(&client, &stmt, &name))?;
                    let cpu = thread_cpu() - cpu0;
                    check_one(n, &name)?;
                    if record {
                        p.push(took);
                        client_prepared += cpu;
                    }
                }
                _ => {
                    let Some((client, stmt, _)) = &bouncer else {
                        continue;
                    };
                    let (took, n) = rt.block_on(prepared_lookup(client, stmt, &name))?;
                    check_one(n, &name)?;
                    if record {
                        g.push(took);
                    }
                }
            }
        }
    }
    let per_lookup =
        |now: Option<f64>, then: Option<f64>| Some((now? - then?) / plan.lookups as f64);
    let broker_cpu_precise = per_lookup(precise(t.broker_pid), broker_cpu0);
    let bouncer_cpu = per_lookup(precise(bouncer_pid), bouncer_cpu0);
    if bouncer.is_some() {
        report.add(Line {
            name: "small_query (vs PgBouncer, prepared)".into(),
            key: "small_query_ratio_pgbouncer",
            broker: b.median(),
            direct: g.median(),
            unit: Unit::Seconds,
            goal: Goal::Info,
        });
        report.add(Line {
            name: "proxy CPU per lookup, 1 client (vs PgBouncer)".into(),
            key: "small_query_cpu_ratio_pgbouncer",
            broker: broker_cpu_precise.unwrap_or(f64::NAN),
            direct: bouncer_cpu.unwrap_or(f64::NAN),
            unit: Unit::Seconds,
            goal: Goal::AtMost(1.5),
        });
        report.note(format!(
            "small_query: PgBouncer (session mode, prepared) ÷ direct prepared = {:.2}",
            crate::stats::ratio(g.median(), p.median())
        ));
    }
    report.add(Line {
        name: "client CPU per lookup (vs tokio-postgres, prepared)".into(),
        key: "client_cpu_ratio_prepared",
        broker: client_broker / plan.lookups as f64,
        direct: client_prepared / plan.lookups as f64,
        unit: Unit::Seconds,
        goal: Goal::AtMost(1.0),
    });
    let broker_cpu = cpu_of_broker(&cpu, t);
    // The floor for any broker process: a `ping` is the same two hops over
    // the Unix socket, with no database, guard or audit behind them.
    let mut pings = Samples::new();
    for _ in 0..plan.lookups.min(1000) {
        let started = Instant::now();
        conn.ping()?;
        pings.push(started.elapsed());
    }
    conn.close()?;
    report.note(format!(
        "small_query: a ping through the broker (no database, no guard, no audit) takes {}; \
         ping + direct prepared = {}, a ratio of {:.2} vs prepared: the floor for a lookup through a separate process",
        crate::stats::fmt_secs(pings.median()),
        crate::stats::fmt_secs(pings.median() + p.median()),
        crate::stats::ratio(pings.median() + p.median(), p.median()),
    ));
    for line in [
        Line {
            name: "small_query (direct: unprepared)".into(),
            key: "small_query_ratio_unprepared",
            broker: b.median(),
            direct: u.median(),
            unit: Unit::Seconds,
            goal: Goal::AtMost(1.0),
        },
        Line {
            name: "small_query (direct: prepared)".into(),
            key: "small_query_ratio_prepared",
            broker: b.median(),
            direct: p.median(),
            unit: Unit::Seconds,
            goal: Goal::AtMost(1.5),
        },
    ] {
        report.add(line);
    }
    broker_cpu_note(
        report,
        "small_query",
        "lookup",
        broker_cpu,
        plan.lookups as u64,
    );
    Ok(())
}

/// The calling thread's CPU time so far, in seconds.
fn thread_cpu() -> f64 {
    use nix::time::{clock_gettime, ClockId};
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(|t| t.tv_sec() as f64 + t.tv_nsec() as f64 * 1e-9)
        .unwrap_or(f64::NAN)
}

/// One prepared lookup on a tokio-postgres client (direct or through a
/// proxy): its wall time and row count.
async fn prepared_lookup(
    client: &tokio_postgres::Client,
    stmt: &tokio_postgres::Statement,
    name: &str,
) -> Result<(Duration, usize)> {
    let started = Instant::now();
    let rows = client.query(stmt, &[&name]).await?;
    for row in &rows {
        black_box(touch_direct_row(row)?);
    }
    Ok((started.elapsed(), rows.len()))
}

/// Lookups per turn in the audit measurement.
const AUDIT_BLOCK: usize = 30;

/// `audit`: the point lookup through three brokers that differ only in
/// their `[audit]`: off, `fsync = "interval"` (the main broker) and
/// `fsync = "always"`; one session each, per-query latency. The brokers
/// take turns in blocks of [`AUDIT_BLOCK`] lookups: one lookup each in turn
/// would measure three idle brokers waking up, not the audit.
pub fn audit(t: &Target, plan: &Plan, report: &mut Report) -> Result<()> {
    let Some(sockets) = &t.audit else {
        report.note("audit not measured: no --audit-off-socket / --audit-always-socket");
        return Ok(());
    };
    let mut conns = [
        t.broker_at(&sockets.off).connect()?,
        t.broker().connect()?,
        t.broker_at(&sockets.always).connect()?,
    ];
    let mut samples = [Samples::new(), Samples::new(), Samples::new()];
    let mut names = Usernames::new(3);
    let blocks = (plan.lookup_warmup + plan.lookups).div_ceil(AUDIT_BLOCK);
    for block in 0..blocks {
        for k in 0..3 {
            let which = (block + k) % 3;
            for j in 0..AUDIT_BLOCK {
                let name = names.next().unwrap_or_default();
                let started = Instant::now();
                let rows = conns[which].query(LOOKUP_BROKER, &[&name])?;
                black_box(rows.iter().map(touch_broker_row).sum::<usize>());
                let took = started.elapsed();
                check_one(rows.len(), &name)?;
                if block * AUDIT_BLOCK + j >= plan.lookup_warmup {
                    samples[which].push(took);
                }
            }
        }
    }
    for conn in conns {
        conn.close()?;
    }
    let [off, interval, always] = samples;
    report.add(Line {
        name: "audit fsync=interval (vs audit off)".into(),
        key: "audit_interval_ratio",
        broker: interval.median(),
        direct: off.median(),
        unit: Unit::Seconds,
        goal: Goal::AtMost(1.1),
    });
    report.add(Line {
        name: "audit fsync=always (vs audit off)".into(),
        key: "audit_always_ratio",
        broker: always.median(),
        direct: off.median(),
        unit: Unit::Seconds,
        goal: Goal::Info,
    });
    Ok(())
}

fn check_one(n: usize, name: &str) -> Result<()> {
    if n == 1 {
        Ok(())
    } else {
        Err(format!(
            "the lookup of {name} returned {n} rows, not 1 (is idm_identity_bench seeded?)"
        )
        .into())
    }
}

/// `big_result`: all 100,000 rows × 7 columns, each value read, through
/// the broker (`query_iter`) vs direct (`query_raw`, streaming); and the
/// broker's peak RSS growth over the RSS just before each run.
pub fn big_result(t: &Target, plan: &Plan, report: &mut Report) -> Result<()> {
    let rt = single_thread()?;
    let mut conn = t.broker().connect()?;
    let client = rt.block_on(t.connect_direct())?;
    let (mut b, mut d) = (Samples::new(), Samples::new());
    let mut growth_kib = 0u64;
    let (mut b_cpu, mut d_cpu) = (Window::default(), Window::default());
    // Run 0 is unmeasured for time, but its RSS counts: it is the first
    // big result this broker serves, when its buffers grow.
    for i in 0..=plan.big_runs {
        let base = t.broker_pid.and_then(rss_kib);
        let sampler = t
            .broker_pid
            .map(|pid| RssSampler::start(pid, Duration::from_millis(5)));
        let cpu = t.cpu.snapshot();
        let started = Instant::now();
        let mut rows = 0u64;
        let mut acc = 0usize;
        {
            let mut iter = conn.query_iter(BIG, &[])?;
            for row in &mut iter {
                acc += touch_broker_row(&row?);
                rows += 1;
            }
        }
        let took = started.elapsed();
        if i > 0 {
            b_cpu.add(&Window {
                ops: 1,
                cpu: t.cpu.snapshot().since(&cpu),
                proxy: ProxyProbe::default(),
            });
        }
        if let (Some(pid), Some(sampler), Some(base)) = (t.broker_pid, sampler, base) {
            growth_kib = growth_kib.max(sampler.finish(pid).saturating_sub(base));
        }
        black_box(acc);
        conn.rollback()?;
        check_rows(rows, "broker")?;
        if i > 0 {
            b.push(took);
        }

        let cpu = t.cpu.snapshot();
        let (took, rows) = rt.block_on(async {
            let started = Instant::now();
            let stream = client.query_raw(BIG, std::iter::empty::<&str>()).await?;
            pin_mut!(stream);
            let (mut rows, mut acc) = (0u64, 0usize);
            while let Some(row) = stream.try_next().await? {
                acc += touch_direct_row(&row)?;
                rows += 1;
            }
            black_box(acc);
            Ok::<_, crate::target::BoxError>((started.elapsed(), rows))
        })?;
        check_rows(rows, "direct")?;
        if i > 0 {
            d.push(took);
            d_cpu.add(&Window {
                ops: 1,
                cpu: t.cpu.snapshot().since(&cpu),
                proxy: ProxyProbe::default(),
            });
        }
    }
    conn.close()?;
    report.add(seconds(
        "big_result (100,000 rows × 7)",
        "big_result_ratio",
        &b,
        &d,
        Goal::AtMost(1.5),
    ));
    if t.broker_pid.is_some() {
        report.add(Line {
            name: "big_result broker RSS".into(),
            key: "big_result_rss_growth_mib",
            broker: growth_kib as f64 / 1024.0,
            direct: f64::NAN,
            unit: Unit::MiB,
            goal: Goal::AtMost(32.0),
        });
    }
    report.note(format!(
        "big_result: CPU per result through the broker: {}; direct: {}",
        b_cpu.cpu.per_op_ms(b_cpu.ops, true),
        d_cpu.cpu.per_op_ms(d_cpu.ops, false)
    ));
    Ok(())
}

fn check_rows(n: u64, side: &str) -> Result<()> {
    if n == BIG_ROWS {
        Ok(())
    } else {
        Err(format!("{side}: the big result had {n} rows, not {BIG_ROWS}").into())
    }
}

/// `concurrent`: `clients` sessions doing point lookups back to back for a
/// fixed time, through the broker (one thread per blocking client) vs as
/// many direct connections (one task each on a multi-threaded runtime);
/// total lookups per second, the median over rounds.
pub fn concurrent(t: &Target, plan: &Plan, report: &mut Report) -> Result<()> {
    let (mut b, mut d, mut g) = (Samples::new(), Samples::new(), Samples::new());
    let (mut b_cpu, mut d_cpu, mut g_cpu) =
        (Window::default(), Window::default(), Window::default());
    for round in 0..plan.rounds {
        let w = concurrent_broker(t, plan, round)?;
        b.push_value(w.ops as f64 / plan.round_time.as_secs_f64());
        b_cpu.add(&w);
        let w = concurrent_direct(t, plan, round, None)?;
        d.push_value(w.ops as f64 / plan.round_time.as_secs_f64());
        d_cpu.add(&w);
        if let Some(proxy) = &t.pgbouncer {
            let w = concurrent_direct(t, plan, round, Some(proxy))?;
            g.push_value(w.ops as f64 / plan.round_time.as_secs_f64());
            g_cpu.add(&w);
        }
    }
    report.add(Line {
        name: format!("concurrent ({} clients)", plan.clients),
        key: "concurrent_throughput_ratio",
        broker: b.median(),
        direct: d.median(),
        unit: Unit::PerSecond,
        goal: Goal::AtLeast(0.8),
    });
    report.note(format!(
        "concurrent: CPU per lookup through the broker: {}; direct: {}",
        b_cpu.cpu.per_op(b_cpu.ops, true),
        d_cpu.cpu.per_op(d_cpu.ops, false)
    ));
    if t.pgbouncer.is_some() {
        // Throughput "≥ PgBouncer's ratio": broker ÷ direct ≥ PgBouncer ÷
        // direct in the same run, that is broker ≥ PgBouncer.
        report.add(Line {
            name: format!("concurrent ({} clients, vs PgBouncer)", plan.clients),
            key: "concurrent_throughput_ratio_pgbouncer",
            broker: b.median(),
            direct: g.median(),
            unit: Unit::PerSecond,
            goal: Goal::AtLeast(1.0),
        });
        report.add(Line {
            name: format!(
                "proxy CPU per lookup, {} clients (vs PgBouncer)",
                plan.clients
            ),
            key: "concurrent_cpu_ratio_pgbouncer",
            broker: b_cpu.proxy_cpu_per_op(),
            direct: g_cpu.proxy_cpu_per_op(),
            unit: Unit::Seconds,
            goal: Goal::AtMost(1.5),
        });
        report.note(format!(
            "concurrent: PgBouncer ÷ direct throughput = {:.2}; context switches per lookup: broker {:.2}, PgBouncer {:.2} (goal for the broker ≤ 0.8)",
            crate::stats::ratio(g.median(), d.median()),
            b_cpu.switches_per_op(),
            g_cpu.switches_per_op(),
        ));
    }
    Ok(())
}

/// The proxy's (broker's or PgBouncer's) own CPU and context switches
/// over a window, read precisely (see [`process_cpu_precise`]).
#[derive(Debug, Clone, Copy, Default)]
struct ProxyProbe {
    cpu: Option<f64>,
    switches: Option<u64>,
}

impl ProxyProbe {
    fn read(pid: Option<u32>) -> ProxyProbe {
        ProxyProbe {
            cpu: pid.and_then(process_cpu_precise),
            switches: pid.and_then(context_switches),
        }
    }

    fn since(&self, earlier: &ProxyProbe) -> ProxyProbe {
        let cpu = match (self.cpu, earlier.cpu) {
            (Some(now), Some(then)) if now >= then => Some(now - then),
            _ => None,
        };
        let switches = match (self.switches, earlier.switches) {
            (Some(now), Some(then)) => now.checked_sub(then),
            _ => None,
        };
        ProxyProbe { cpu, switches }
    }
}

/// What one side of one round did while the clock ran.
#[derive(Debug, Clone, Copy, Default)]
struct Window {
    /// Lookups finished before the deadline.
    ops: u64,
    /// CPU used from the start to the deadline.
    cpu: CpuSnapshot,
    /// The proxy's own CPU and context switches in the window (none for
    /// direct connections).
    proxy: ProxyProbe,
}

impl Window {
    fn add(&mut self, other: &Window) {
        let sum = |a: Option<f64>, b: Option<f64>| Some(a.unwrap_or(0.0) + b?);
        self.ops += other.ops;
        let count = |a: Option<u64>, b: Option<u64>| Some(a.unwrap_or(0) + b?);
        self.proxy = ProxyProbe {
            cpu: sum(self.proxy.cpu, other.proxy.cpu),
            switches: count(self.proxy.switches, other.proxy.switches),
        };
        self.cpu = CpuSnapshot {
            broker: sum(self.cpu.broker, other.cpu.broker),
            db: sum(self.cpu.db, other.cpu.db),
            clients: sum(self.cpu.clients, other.cpu.clients),
        };
    }

    fn proxy_cpu_per_op(&self) -> f64 {
        self.proxy
            .cpu
            .map_or(f64::NAN, |c| c / self.ops.max(1) as f64)
    }

    fn switches_per_op(&self) -> f64 {
        self.proxy
            .switches
            .map_or(f64::NAN, |n| n as f64 / self.ops.max(1) as f64)
    }
}

fn concurrent_broker(t: &Target, plan: &Plan, round: usize) -> Result<Window> {
    // Two barriers: every client connected and warm (`ready`), then the
    // clock starts (`start`) — as on the direct side, where the deadline
    // is set only after every connection is up. (With one barrier the
    // clock ran while the 32 sessions authenticated, and the broker's
    // lookups were divided by a window they could not use.)
    let ready = Arc::new(Barrier::new(plan.clients + 1));
    let start = Arc::new(Barrier::new(plan.clients + 1));
    let deadline: Arc<OnceLock<Instant>> = Arc::new(OnceLock::new());
    let failed = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for c in 0..plan.clients {
        let (ready_at, start, deadline, failed) = (
            ready.clone(),
            start.clone(),
            deadline.clone(),
            failed.clone(),
        );
        let cfg = t.broker();
        threads.push(std::thread::spawn(move || -> Result<u64> {
            let mut names = Usernames::new((round * 1000 + c) as u64 + 17);
            // Open and warm up before the clock starts; on failure still
            // meet the barrier, or everyone waits forever.
            let ready = (|| {
                let mut conn = cfg.connect()?;
                for _ in 0..10 {
                    let name = names.next().unwrap_or_default();
                    conn.query(LOOKUP_BROKER, &[&name])?;
                }
                Ok::<_, crate::target::BoxError>(conn)
            })();
            if ready.is_err() {
                failed.store(true, Ordering::Relaxed);
            }
            ready_at.wait();
            start.wait();
            let mut conn = ready?;
            let until = *deadline.get().ok_or("no deadline")?;
            let mut done = 0u64;
            while !failed.load(Ordering::Relaxed) {
                let name = names.next().unwrap_or_default();
                let rows = conn.query(LOOKUP_BROKER, &[&name])?;
                black_box(rows.iter().map(touch_broker_row).sum::<usize>());
                if Instant::now() > until {
                    break;
                }
                done += 1;
            }
            conn.close()?;
            Ok(done)
        }));
    }
    ready.wait();
    let until = Instant::now() + plan.round_time;
    let _ = deadline.set(until);
    start.wait();
    let before = t.cpu.snapshot();
    let proxy_before = ProxyProbe::read(t.broker_pid);
    std::thread::sleep(until.saturating_duration_since(Instant::now()));
    let cpu = t.cpu.snapshot().since(&before);
    let proxy = ProxyProbe::read(t.broker_pid).since(&proxy_before);
    let mut total = 0u64;
    let mut first_error = None;
    for th in threads {
        match th.join() {
            Ok(Ok(n)) => total += n,
            Ok(Err(e)) => {
                failed.store(true, Ordering::Relaxed);
                first_error.get_or_insert(e);
            }
            Err(_) => {
                first_error.get_or_insert_with(|| "a client thread panicked".into());
            }
        }
    }
    match first_error {
        Some(e) => Err(format!("concurrent through the broker: {e}").into()),
        None => Ok(Window {
            ops: total,
            cpu,
            proxy,
        }),
    }
}

/// The direct side of a round, or PgBouncer's with `via`.
fn concurrent_direct(
    t: &Target,
    plan: &Plan,
    round: usize,
    via: Option<&crate::target::Proxy>,
) -> Result<Window> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let clients = plan.clients;
    let round_time = plan.round_time;
    rt.block_on(async {
        // Connect and prepare before the clock starts.
        let mut conns = Vec::new();
        for c in 0..clients {
            let client = t.connect_via(via).await?;
            let stmt = client.prepare(LOOKUP_DIRECT).await?;
            let mut names = Usernames::new((round * 1000 + c) as u64 + 17);
            for _ in 0..10 {
                let name = names.next().unwrap_or_default();
                client.query(&stmt, &[&name]).await?;
            }
            conns.push((client, stmt, names));
        }
        let start = Arc::new(tokio::sync::Barrier::new(clients + 1));
        let deadline: Arc<OnceLock<Instant>> = Arc::new(OnceLock::new());
        let mut tasks = Vec::new();
        for (client, stmt, mut names) in conns {
            let (start, deadline) = (start.clone(), deadline.clone());
            tasks.push(tokio::spawn(async move {
                start.wait().await;
                let until = *deadline.get().ok_or("no deadline")?;
                let mut done = 0u64;
                loop {
                    let name = names.next().unwrap_or_default();
                    let rows = client.query(&stmt, &[&name]).await?;
                    for row in &rows {
                        black_box(touch_direct_row(row)?);
                    }
                    if Instant::now() > until {
                        break;
                    }
                    done += 1;
                }
                Ok::<_, crate::target::BoxError>(done)
            }));
        }
        // The deadline is set once every task is connected and warm: the
        // barrier opens only when all have arrived.
        let until = Instant::now() + round_time;
        let _ = deadline.set(until);
        start.wait().await;
        let before = t.cpu.snapshot();
        let pid = via.and_then(|p| p.pid);
        let proxy_before = ProxyProbe::read(pid);
        tokio::time::sleep_until(until.into()).await;
        let cpu = t.cpu.snapshot().since(&before);
        let proxy = ProxyProbe::read(pid).since(&proxy_before);
        let mut total = 0u64;
        for task in tasks {
            total += task.await??;
        }
        Ok::<_, crate::target::BoxError>(Window {
            ops: total,
            cpu,
            proxy,
        })
    })
}

/// `cli`: `iam-pg -c` vs `psql -c` with PGPASSWORD, as whole processes,
/// interleaved; wall time.
pub fn cli(t: &Target, plan: &Plan, report: &mut Report) -> Result<()> {
    let iam_pg = || {
        let mut c = Command::new(&t.iam_pg);
        c.arg("-c")
            .arg(CLI_SQL)
            .env("IAM_PGBROKER_SOCKET", &t.socket);
        c
    };
    let psql = || {
        let mut c = Command::new(&t.psql);
        c.args(["-h", &t.host, "-p", &t.port.to_string()])
            .args(["-U", &t.user, "-d", &t.dbname, "-c", CLI_SQL])
            .env("PGPASSWORD", &t.password);
        c
    };
    let (mut b, mut d) = (Samples::new(), Samples::new());
    for i in 0..plan.cli_runs + 2 {
        let took = run(iam_pg())?;
        if i >= 2 {
            b.push(took);
        }
        let took = run(psql())?;
        if i >= 2 {
            d.push(took);
        }
    }
    report.add(seconds(
        "cli (iam-pg -c vs psql -c)",
        "cli_vs_psql_ratio",
        &b,
        &d,
        Goal::AtMost(0.5),
    ));
    Ok(())
}

/// Runs a whole process to its end, output captured as a pipe would.
fn run(mut cmd: Command) -> Result<Duration> {
    cmd.stdin(Stdio::null());
    let started = Instant::now();
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    let took = started.elapsed();
    if !out.status.success() {
        return Err(format!(
            "{:?} failed ({}): {}",
            cmd.get_program(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(took)
}

/// `instructions`: user-space instructions per point lookup, counted by
/// callgrind in the broker (audit on and audit off) and in PgBouncer, for
/// the same lookups. Unlike times, the counts do not drift with the
/// machine's load: the same build gives the same figure to a few tenths
/// of a percent. Each process runs under `valgrind --tool=callgrind`
/// (started by scripts/bench); a dump after the warm-up discards start-up
/// and connection costs, the next dump holds exactly the counted lookups
/// (callgrind zeroes its counters at each dump).
pub fn instructions(t: &Target, plan: &Plan, report: &mut Report) -> Result<()> {
    let cg = t
        .callgrind
        .as_ref()
        .ok_or("no processes under callgrind (scripts/bench starts them)")?;
    let n = plan.counted_lookups;
    let on = count_broker(t, &cg.audit_on, n, &cg.out_dir, "broker-audit-on")?;
    let off = count_broker(t, &cg.audit_off, n, &cg.out_dir, "broker-audit-off")?;
    let bouncer = match &cg.pgbouncer {
        Some(proxy) => count_pgbouncer(t, proxy, n, &cg.out_dir)?,
        None => f64::NAN,
    };
    let ((on, on_sha), (off, off_sha)) = (on, off);
    report.add(Line {
        name: "instructions per lookup, audit on (vs PgBouncer)".into(),
        key: "instructions_per_lookup",
        broker: on,
        direct: bouncer,
        unit: Unit::Count,
        goal: Goal::AtMost(20_000.0),
    });
    report.add(Line {
        name: "  the same without SHA-256's blocks".into(),
        key: "instructions_per_lookup_without_sha256",
        broker: on - on_sha,
        direct: bouncer,
        unit: Unit::Count,
        goal: Goal::AtMost(20_000.0),
    });
    report.add(Line {
        name: "instructions per lookup in the audit (on − off)".into(),
        key: "instructions_audit_per_lookup",
        broker: on - off,
        direct: f64::NAN,
        unit: Unit::Count,
        goal: Goal::AtMost(6_000.0),
    });
    report.add(Line {
        name: "  the same without SHA-256's blocks".into(),
        key: "instructions_audit_per_lookup_without_sha256",
        broker: (on - on_sha) - (off - off_sha),
        direct: f64::NAN,
        unit: Unit::Count,
        goal: Goal::AtMost(6_000.0),
    });
    report.note(format!(
        "instructions: {n} lookups per process under callgrind; broker audit off {off:.0} per lookup; \
         SHA-256's block function {on_sha:.0} per lookup with the audit on (the chain's two hashes \
         and the parameter's HMAC, in software: valgrind has no SHA extensions{}); \
         broker audit on ÷ PgBouncer = {:.1}",
        if cpu_has_sha_extensions() {
            "; this CPU has them, and outside valgrind the broker uses them: \
             about 20 times fewer instructions per block, see docs/performance.md"
        } else {
            ", nor has this CPU"
        },
        crate::stats::ratio(on, bouncer)
    ));
    Ok(())
}

fn count_broker(
    t: &Target,
    (socket, pid): &(std::path::PathBuf, u32),
    n: usize,
    dir: &std::path::Path,
    label: &str,
) -> Result<(f64, f64)> {
    let mut conn = t.broker_at(socket).connect()?;
    let mut names = Usernames::new(7);
    for _ in 0..50 {
        let name = names.next().unwrap_or_default();
        conn.query(LOOKUP_BROKER, &[&name])?;
    }
    let poke = || {
        let _ = std::os::unix::net::UnixStream::connect(socket);
    };
    callgrind_dump(*pid, dir, &poke, None)?;
    for _ in 0..n {
        let name = names.next().unwrap_or_default();
        let rows = conn.query(LOOKUP_BROKER, &[&name])?;
        check_one(rows.len(), &name)?;
    }
    let dump = callgrind_dump(*pid, dir, &poke, Some(label))?;
    conn.close()?;
    Ok((dump.total as f64 / n as f64, dump.sha as f64 / n as f64))
}

fn count_pgbouncer(
    t: &Target,
    proxy: &crate::target::Proxy,
    n: usize,
    dir: &std::path::Path,
) -> Result<f64> {
    let pid = proxy.pid.ok_or("PgBouncer under callgrind has no pid")?;
    let rt = single_thread()?;
    rt.block_on(async {
        let client = t.connect_via(Some(proxy)).await?;
        let stmt = client.prepare(LOOKUP_DIRECT).await?;
        let mut names = Usernames::new(7);
        for _ in 0..50 {
            let name = names.next().unwrap_or_default();
            client.query(&stmt, &[&name]).await?;
        }
        let poke = || {
            let _ = std::net::TcpStream::connect((proxy.host.as_str(), proxy.port));
        };
        callgrind_dump(pid, dir, &poke, None)?;
        for _ in 0..n {
            let name = names.next().unwrap_or_default();
            let rows = client.query(&stmt, &[&name]).await?;
            check_one(rows.len(), &name)?;
        }
        let dump = callgrind_dump(pid, dir, &poke, Some("pgbouncer"))?;
        Ok(dump.total as f64 / n as f64)
    })
}

/// Whether this CPU has the SHA extensions, which the broker's SHA-256
/// uses when it runs natively (the `sha2` crate looks at run time).
fn cpu_has_sha_extensions() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("sha")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("sha2")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// The instructions of one callgrind dump.
#[derive(Debug, Clone, Copy)]
struct Dump {
    /// All of them.
    total: u64,
    /// Those in SHA-256's block function (the chain's hashes and the
    /// parameters' HMACs; valgrind has no SHA extensions, so under it they
    /// are computed in software even where the CPU has them).
    sha: u64,
}

/// The self cost (`Ir`) of the functions whose name contains `name` in a
/// callgrind dump written with `--compress-strings=no`: the cost lines of
/// each `fn=` block, without the inclusive costs of the calls it makes
/// (the line after each `calls=`).
fn self_cost_of(dump: &str, name: &str) -> u64 {
    let mut inside = false;
    let mut after_call = false;
    let mut sum = 0;
    for line in dump.lines() {
        if let Some(f) = line.strip_prefix("fn=") {
            inside = f.contains(name);
            after_call = false;
        } else if line.starts_with("calls=") {
            after_call = true;
        } else if line.starts_with(|c: char| c.is_ascii_digit() || "+-*".contains(c)) {
            if after_call {
                after_call = false;
            } else if inside {
                sum += line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|c| c.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    sum
}

/// Asks callgrind in `pid` to dump (which zeroes its counters) and returns
/// the instructions (`Ir`) of that dump: the `totals:` line of the newest
/// `callgrind.out.<pid>.<k>` in `dir`. With `IAM_BENCH_PROFILE=DIR` in
/// the environment, a dump with a `keep` label is moved there as
/// `LABEL.callgrind` (for `callgrind_annotate`) instead of deleted.
///
/// Valgrind takes the request only while the process runs, and vgdb
/// cannot force it here (no ptrace into another process in this
/// sandbox): PgBouncer waits in `epoll_wait` until a client comes. So
/// while the dump is pending, `poke` makes the process run — a connection
/// opened and closed. Its cost lands in one of the two windows around the
/// dump: one accept-and-close among the counted lookups at most, well
/// under a percent of 1,000 lookups.
fn callgrind_dump(
    pid: u32,
    dir: &std::path::Path,
    poke: &dyn Fn(),
    keep: Option<&str>,
) -> Result<Dump> {
    let newest = |dir: &std::path::Path| -> Option<(u64, std::path::PathBuf)> {
        let prefix = format!("callgrind.out.{pid}.");
        std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let k = name.strip_prefix(&prefix)?.parse::<u64>().ok()?;
                Some((k, e.path()))
            })
            .max_by_key(|(k, _)| *k)
    };
    let before = newest(dir).map(|(k, _)| k);
    // vgdb finds the process by files it made as its user: run it as that
    // user (PgBouncer runs as postgres).
    let owner = std::fs::metadata(format!("/proc/{pid}"))?;
    let mut control = Command::new("callgrind_control")
        .arg("-d")
        .arg(pid.to_string())
        .uid(owner.uid())
        .gid(owner.gid())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mut result = Err(format!("callgrind in {pid} wrote no dump to {}", dir.display()).into());
    for i in 0..300 {
        if let Some((k, path)) = newest(dir) {
            if Some(k) != before {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                // `totals:` ends the file: only then is the dump whole
                // (`summary:` at its top is there from the start).
                let total = text.lines().rev().find_map(|l| {
                    l.strip_prefix("totals:")
                        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                });
                if let Some(total) = total {
                    let sha = self_cost_of(&text, "sha2::sha256::");
                    match (keep, std::env::var_os("IAM_BENCH_PROFILE")) {
                        (Some(label), Some(to)) => {
                            let to = std::path::Path::new(&to).join(format!("{label}.callgrind"));
                            if std::fs::rename(&path, &to).is_err() {
                                let _ = std::fs::copy(&path, &to);
                                let _ = std::fs::remove_file(&path);
                            }
                        }
                        _ => {
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                    result = Ok(Dump { total, sha });
                    break;
                }
            }
        }
        if i % 4 == 3 {
            poke();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = control.kill();
    let _ = control.wait();
    result
}

/// `syscalls`: system calls per point lookup in the main broker (audit on,
/// `fsync = "interval"`) and in PgBouncer, one client each, counted by the
/// kernel's `raw_syscalls:sys_enter` tracepoint (`perf stat -p`, every
/// thread of the process) over a fixed number of lookups. Like the
/// instruction count, the figure does not move with the machine's load;
/// the few calls of idle threads (timers, the audit's flush) over the
/// window are included, as they are part of the cost.
pub fn syscalls(t: &Target, plan: &Plan, report: &mut Report) -> Result<()> {
    let n = plan.counted_lookups * 2;
    let pid = t.broker_pid.ok_or("no broker pid")?;
    let mut conn = t.broker().connect()?;
    let mut names = Usernames::new(11);
    for _ in 0..50 {
        let name = names.next().unwrap_or_default();
        conn.query(LOOKUP_BROKER, &[&name])?;
    }
    let broker = count_syscalls(pid, || {
        for _ in 0..n {
            let name = names.next().unwrap_or_default();
            let rows = conn.query(LOOKUP_BROKER, &[&name])?;
            check_one(rows.len(), &name)?;
        }
        Ok(())
    })?;
    conn.close()?;
    let bouncer = match &t.pgbouncer {
        Some(proxy @ crate::target::Proxy { pid: Some(pgb), .. }) => {
            let rt = single_thread()?;
            let count = rt.block_on(async {
                let client = t.connect_via(Some(proxy)).await?;
                let stmt = client.prepare(LOOKUP_DIRECT).await?;
                for _ in 0..50 {
                    let name = names.next().unwrap_or_default();
                    client.query(&stmt, &[&name]).await?;
                }
                let counting = Perf::start(*pgb)?;
                for _ in 0..n {
                    let name = names.next().unwrap_or_default();
                    let (_, rows) = prepared_lookup(&client, &stmt, &name).await?;
                    check_one(rows, &name)?;
                }
                counting.stop()
            })?;
            Some(count)
        }
        _ => None,
    };
    let per = |count: Option<u64>| count.map_or(f64::NAN, |c| c as f64 / n as f64);
    report.add(Line {
        name: "syscalls per lookup, audit on (vs PgBouncer)".into(),
        key: "syscalls_per_lookup",
        broker: per(Some(broker)),
        direct: per(bouncer),
        unit: Unit::Count,
        goal: Goal::AtMost(7.0),
    });
    report.note(format!(
        "syscalls: {n} lookups per process, every thread, by perf's raw_syscalls:sys_enter"
    ));
    Ok(())
}

/// Counts the system calls of `pid` while `work` runs.
fn count_syscalls(pid: u32, work: impl FnOnce() -> Result<()>) -> Result<u64> {
    let counting = Perf::start(pid)?;
    let worked = work();
    let count = counting.stop();
    worked?;
    count
}

/// `perf stat -e raw_syscalls:sys_enter -p PID`, running.
struct Perf {
    child: std::process::Child,
    out: std::path::PathBuf,
}

impl Perf {
    fn start(pid: u32) -> Result<Perf> {
        let out =
            std::env::temp_dir().join(format!("iam-bench-perf-{}-{pid}.csv", std::process::id()));
        let _ = std::fs::remove_file(&out);
        let child = Command::new("perf")
            .args(["stat", "-x", ",", "-e", "raw_syscalls:sys_enter", "-p"])
            .arg(pid.to_string())
            .arg("-o")
            .arg(&out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run perf (Debian's linux-perf): {e}"))?;
        // perf opens its counters on every thread before it counts; give it
        // the time (idle threads make few calls meanwhile).
        std::thread::sleep(Duration::from_millis(300));
        Ok(Perf { child, out })
    }

    /// Stops perf (SIGINT, as at a terminal) and reads its count.
    fn stop(mut self) -> Result<u64> {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        let _ = std::fs::remove_file(&self.out);
        text.lines()
            .find(|l| l.contains("raw_syscalls:sys_enter"))
            .and_then(|l| l.split(',').next()?.trim().parse::<u64>().ok())
            .ok_or_else(|| format!("perf counted no system calls: {}", text.trim()).into())
    }
}
