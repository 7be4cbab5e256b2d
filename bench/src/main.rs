//! iam-pgbroker-bench: the broker side by side with connecting to
//! PostgreSQL directly, in one run, against the same database.
//!
//! `scripts/bench` builds everything in release mode, brings up a
//! development appliance and a broker of its own, and runs this binary; see
//! docs/performance.md. Every figure is a median; every ratio is
//! broker ÷ direct (for throughput too, where higher is better).

mod machine;
mod measure;
mod report;
mod stats;
mod target;

use clap::Parser;
use machine::{loadavg, Machine};
use measure::Plan;
use report::Report;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use target::{read_pwfile, Target};

/// The measurements, in the order they run.
const ALL: [&str; 8] = [
    "open",
    "small_query",
    "audit",
    "big_result",
    "concurrent",
    "cli",
    "instructions",
    "syscalls",
];

/// Measures iam-pgbroker against direct PostgreSQL connections (run through
/// scripts/bench).
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The broker's socket.
    #[arg(long)]
    socket: PathBuf,
    /// The database container's address (direct connections and psql).
    #[arg(long)]
    host: String,
    /// The pwfile of the database user.
    #[arg(long)]
    pwfile: PathBuf,
    /// The broker's pid: its RSS is sampled during the big result.
    #[arg(long)]
    broker_pid: Option<u32>,
    /// PostgreSQL's port.
    #[arg(long, default_value_t = 5432)]
    port: u16,
    /// Database instance (the broker's `db`) and database name.
    #[arg(long, default_value = "czechidm")]
    db: String,
    /// Database user, both ways.
    #[arg(long, default_value = "postgres")]
    user: String,
    /// iam-pg binary (default: next to this one).
    #[arg(long)]
    iam_pg: Option<PathBuf>,
    /// The database container's cgroup CPU counter (cgroup v1
    /// `cpuacct.usage` or v2 `cpu.stat`), for CPU per lookup.
    #[arg(long)]
    db_cgroup: Option<PathBuf>,
    /// A broker like --socket's with `[audit] enabled = false`.
    #[arg(long, requires = "audit_always_socket")]
    audit_off_socket: Option<PathBuf>,
    /// A broker like --socket's with `[audit] fsync = "always"` (--socket's
    /// own broker has `fsync = "interval"`).
    #[arg(long, requires = "audit_off_socket")]
    audit_always_socket: Option<PathBuf>,
    /// PgBouncer's port on --pgbouncer-host (session mode, in front of the
    /// same database): a third column of the lookup and concurrent
    /// measurements.
    #[arg(long)]
    pgbouncer_port: Option<u16>,
    /// PgBouncer's address.
    #[arg(long, default_value = "127.0.0.1")]
    pgbouncer_host: String,
    /// PgBouncer's pid, for its CPU and context switches.
    #[arg(long)]
    pgbouncer_pid: Option<u32>,
    /// For `instructions`: the socket and pid of a broker under callgrind
    /// with the audit on, the same with the audit off, and PgBouncer's
    /// port and pid under callgrind; dumps go to --callgrind-dir.
    #[arg(long, requires_all = ["callgrind_pid", "callgrind_off_socket", "callgrind_off_pid", "callgrind_dir"])]
    callgrind_socket: Option<PathBuf>,
    #[arg(long)]
    callgrind_pid: Option<u32>,
    #[arg(long)]
    callgrind_off_socket: Option<PathBuf>,
    #[arg(long)]
    callgrind_off_pid: Option<u32>,
    #[arg(long, requires = "callgrind_pgbouncer_pid")]
    callgrind_pgbouncer_port: Option<u16>,
    #[arg(long)]
    callgrind_pgbouncer_pid: Option<u32>,
    #[arg(long)]
    callgrind_dir: Option<PathBuf>,
    /// psql binary.
    #[arg(long, default_value = "psql")]
    psql: PathBuf,
    /// Fewer iterations: a smoke run of a few seconds.
    #[arg(long)]
    quick: bool,
    /// Print one JSON object of ratios on stdout (the table goes to stderr).
    #[arg(long)]
    json: bool,
    /// Only these measurements (comma-separated: open, small_query, audit,
    /// big_result, concurrent, cli, instructions, syscalls).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    for name in &args.only {
        if !ALL.contains(&name.as_str()) {
            eprintln!(
                "bench: unknown measurement {name:?} (known: {})",
                ALL.join(", ")
            );
            return ExitCode::from(2);
        }
    }
    if let Some(pid) = args.broker_pid {
        // RSS and CPU of the wrong process would be worse than none.
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
        if !exe.to_string_lossy().contains("iam-pgbroker") {
            eprintln!(
                "bench: --broker-pid {pid} is not an iam-pgbroker process ({})",
                exe.display()
            );
            return ExitCode::from(2);
        }
    }
    let password = match read_pwfile(&args.pwfile) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("bench: {e}");
            return ExitCode::from(2);
        }
    };
    let iam_pg = args.iam_pg.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("iam-pg")))
            .unwrap_or_else(|| PathBuf::from("iam-pg"))
    });
    let target = Target {
        socket: args.socket.clone(),
        broker_pid: args.broker_pid,
        db: args.db.clone(),
        host: args.host.clone(),
        port: args.port,
        dbname: args.db.clone(),
        user: args.user.clone(),
        password,
        iam_pg,
        psql: args.psql.clone(),
        cpu: machine::CpuProbe {
            broker_pid: args.broker_pid,
            db_cgroup: args.db_cgroup.clone(),
        },
        audit: match (&args.audit_off_socket, &args.audit_always_socket) {
            (Some(off), Some(always)) => Some(target::AuditSockets {
                off: off.clone(),
                always: always.clone(),
            }),
            _ => None,
        },
        pgbouncer: args.pgbouncer_port.map(|port| target::Proxy {
            host: args.pgbouncer_host.clone(),
            port,
            pid: args.pgbouncer_pid,
        }),
        callgrind: match (
            &args.callgrind_socket,
            args.callgrind_pid,
            &args.callgrind_off_socket,
            args.callgrind_off_pid,
            &args.callgrind_dir,
        ) {
            (Some(on), Some(on_pid), Some(off), Some(off_pid), Some(dir)) => {
                Some(target::Callgrind {
                    audit_on: (on.clone(), on_pid),
                    audit_off: (off.clone(), off_pid),
                    pgbouncer: args.callgrind_pgbouncer_port.map(|port| target::Proxy {
                        host: args.pgbouncer_host.clone(),
                        port,
                        pid: args.callgrind_pgbouncer_pid,
                    }),
                    out_dir: dir.clone(),
                })
            }
            _ => None,
        },
    };
    let plan = Plan::new(args.quick);
    let machine = Machine::read();
    let load_before = loadavg();
    let started = Instant::now();

    let mut report = Report::default();
    let mut failed = false;
    for name in ALL {
        if !args.only.is_empty() && !args.only.iter().any(|o| o == name) {
            continue;
        }
        eprintln!("bench: {name}…");
        let t0 = Instant::now();
        let result = match name {
            "open" => measure::open(&target, &plan, &mut report),
            "small_query" => measure::small_query(&target, &plan, &mut report),
            "audit" => measure::audit(&target, &plan, &mut report),
            "big_result" => measure::big_result(&target, &plan, &mut report),
            "concurrent" => measure::concurrent(&target, &plan, &mut report),
            "instructions" => measure::instructions(&target, &plan, &mut report),
            "syscalls" => measure::syscalls(&target, &plan, &mut report),
            _ => measure::cli(&target, &plan, &mut report),
        };
        match result {
            Ok(()) => {
                eprintln!("bench: {name} took {:.1} s", t0.elapsed().as_secs_f64());
            }
            Err(e) => {
                failed = true;
                eprintln!("bench: {name} failed: {e}");
                report.note(format!("{name} failed: {e}"));
            }
        }
    }
    let header = vec![
        format!(
            "iam-pgbroker-bench ({} run, {:.0} s): {}",
            if args.quick { "quick" } else { "full" },
            started.elapsed().as_secs_f64(),
            machine.describe()
        ),
        format!(
            "load average {load_before} before, {} after; medians; ratio = broker ÷ direct",
            loadavg()
        ),
        String::new(),
    ];
    let table = report.table(&header);
    if args.json {
        eprint!("{table}");
        println!("{}", report.json());
    } else {
        print!("{table}");
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
