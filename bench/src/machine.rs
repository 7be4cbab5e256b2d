//! What the numbers were measured on: CPU, memory, load, and a broker
//! process's resident memory.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The machine, read from /proc.
#[derive(Debug, Clone)]
pub struct Machine {
    /// CPUs available to this process.
    pub cpus: usize,
    /// `model name` of the first CPU.
    pub cpu_model: String,
    /// MemTotal, MiB.
    pub mem_mib: u64,
}

impl Machine {
    /// Reads /proc/cpuinfo and /proc/meminfo; unknown parts stay empty.
    pub fn read() -> Machine {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| field(&s, "model name"))
            .unwrap_or_else(|| "unknown CPU".into());
        let mem_mib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| field(&s, "MemTotal"))
            .and_then(|v| kib(&v))
            .map(|k| k / 1024)
            .unwrap_or(0);
        Machine {
            cpus,
            cpu_model,
            mem_mib,
        }
    }

    /// One line: `2 CPUs (AMD EPYC), 23.5 GiB`.
    pub fn describe(&self) -> String {
        format!(
            "{} CPU{} ({}), {:.1} GiB memory",
            self.cpus,
            if self.cpus == 1 { "" } else { "s" },
            self.cpu_model,
            self.mem_mib as f64 / 1024.0
        )
    }
}

/// The 1, 5 and 15 minute load averages, as /proc/loadavg writes them.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

/// `Key:   value` from a /proc file.
fn field(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k.trim() == key).then(|| v.trim().to_owned())
    })
}

/// `1234 kB` → 1234.
fn kib(v: &str) -> Option<u64> {
    v.split_whitespace().next()?.parse().ok()
}

/// VmRSS of `pid`, KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    kib(&field(&status, "VmRSS")?)
}

/// CPU time (user + system) of `pid` so far, seconds. Linux counts it in
/// clock ticks of 1/100 s.
pub fn process_cpu(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; the fields after it do not.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13
    // after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// CPU time of every thread of `pid` so far, seconds, to the nanosecond
/// (the scheduler's `/proc/PID/task/*/schedstat`), where `/proc/PID/stat`
/// counts in ticks of 10 ms: too coarse for a few thousand lookups.
pub fn process_cpu_precise(pid: u32) -> Option<f64> {
    let mut ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).ok();
        // A thread that ended between the listing and the read is gone
        // with its time; the others still count.
        if let Some(on_cpu) = stat.and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok()) {
            ns += on_cpu;
        }
    }
    Some(ns as f64 / 1e9)
}

/// Voluntary plus involuntary context switches of every thread of `pid`.
pub fn context_switches(pid: u32) -> Option<u64> {
    let mut n = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        for key in ["voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"] {
            n += field(&status, key)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Some(n)
}

/// CPU time of a cgroup so far, seconds: cgroup v1 `cpuacct.usage`
/// (nanoseconds) or cgroup v2 `cpu.stat` (`usage_usec`).
pub fn cgroup_cpu(file: &std::path::Path) -> Option<f64> {
    let text = std::fs::read_to_string(file).ok()?;
    if file.file_name()? == "cpu.stat" {
        let usec: f64 = field_space(&text, "usage_usec")?.parse().ok()?;
        Some(usec / 1e6)
    } else {
        let nsec: f64 = text.trim().parse().ok()?;
        Some(nsec / 1e9)
    }
}

fn field_space(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().to_owned())
    })
}

/// Who burns the CPU: the broker, the database container, this process.
#[derive(Debug, Clone, Default)]
pub struct CpuProbe {
    /// The broker's pid.
    pub broker_pid: Option<u32>,
    /// The database container's cgroup CPU file.
    pub db_cgroup: Option<std::path::PathBuf>,
}

/// CPU seconds consumed so far by each party (None: not known).
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSnapshot {
    /// The broker.
    pub broker: Option<f64>,
    /// The database container.
    pub db: Option<f64>,
    /// This process (the clients).
    pub clients: Option<f64>,
}

impl CpuProbe {
    /// Reads every counter now.
    pub fn snapshot(&self) -> CpuSnapshot {
        CpuSnapshot {
            broker: self.broker_pid.and_then(process_cpu),
            db: self.db_cgroup.as_deref().and_then(cgroup_cpu),
            clients: process_cpu(std::process::id()),
        }
    }
}

impl CpuSnapshot {
    /// CPU used since `earlier`.
    pub fn since(&self, earlier: &CpuSnapshot) -> CpuSnapshot {
        let d = |a: Option<f64>, b: Option<f64>| Some(a? - b?);
        CpuSnapshot {
            broker: d(self.broker, earlier.broker),
            db: d(self.db, earlier.db),
            clients: d(self.clients, earlier.clients),
        }
    }

    /// `broker 120 µs, PostgreSQL 60 µs, clients 30 µs` per one of `ops`,
    /// leaving out what is unknown (and the broker when `with_broker` is
    /// false).
    pub fn per_op(&self, ops: u64, with_broker: bool) -> String {
        self.per_op_in(ops, with_broker, 1e6, "µs")
    }

    /// Like [`CpuSnapshot::per_op`], in milliseconds.
    pub fn per_op_ms(&self, ops: u64, with_broker: bool) -> String {
        self.per_op_in(ops, with_broker, 1e3, "ms")
    }

    fn per_op_in(&self, ops: u64, with_broker: bool, scale: f64, unit: &str) -> String {
        let ops = ops.max(1) as f64;
        let mut parts = Vec::new();
        let mut add = |name: &str, v: Option<f64>| {
            if let Some(v) = v {
                parts.push(format!("{name} {:.0} {unit}", v / ops * scale));
            }
        };
        if with_broker {
            add("broker", self.broker);
        }
        add("PostgreSQL", self.db);
        add("clients", self.clients);
        parts.join(", ")
    }
}

/// Samples a process's VmRSS in a thread and keeps the peak.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl RssSampler {
    /// Starts sampling `pid` every `every`.
    pub fn start(pid: u32, every: Duration) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(rss_kib(pid).unwrap_or(0)));
        let thread = {
            let (stop, peak) = (stop.clone(), peak.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(now) = rss_kib(pid) {
                        peak.fetch_max(now, Ordering::Relaxed);
                    }
                    std::thread::sleep(every);
                }
            })
        };
        RssSampler {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    /// Stops sampling (one last sample) and returns the peak, KiB.
    pub fn finish(mut self, pid: u32) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(now) = rss_kib(pid) {
            self.peak.fetch_max(now, Ordering::Relaxed);
        }
        self.peak.load(Ordering::Relaxed)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_fields() {
        let text = "Name:\tx\nVmRSS:\t   1234 kB\nThreads:\t2\n";
        assert_eq!(field(text, "VmRSS").as_deref(), Some("1234 kB"));
        assert_eq!(kib("1234 kB"), Some(1234));
        assert_eq!(field(text, "VmHWM"), None);
    }

    #[test]
    fn cpu_counters() {
        assert!(process_cpu(std::process::id()).is_some());
        let dir = std::env::temp_dir().join(format!("iam-bench-cg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cpuacct.usage"), "2500000000\n").unwrap();
        assert_eq!(cgroup_cpu(&dir.join("cpuacct.usage")), Some(2.5));
        std::fs::write(dir.join("cpu.stat"), "usage_usec 1500000\nuser_usec 1\n").unwrap();
        assert_eq!(cgroup_cpu(&dir.join("cpu.stat")), Some(1.5));
        let _ = std::fs::remove_dir_all(&dir);
        let a = CpuSnapshot {
            broker: Some(1.0),
            db: Some(2.0),
            clients: None,
        };
        let b = CpuSnapshot {
            broker: Some(1.5),
            db: Some(2.25),
            clients: Some(9.0),
        };
        let d = b.since(&a);
        assert_eq!(d.per_op(1000, true), "broker 500 µs, PostgreSQL 250 µs");
        assert_eq!(d.per_op(1000, false), "PostgreSQL 250 µs");
        assert_eq!(d.per_op_ms(1, true), "broker 500 ms, PostgreSQL 250 ms");
    }

    #[test]
    fn samples_our_own_process() {
        let pid = std::process::id();
        assert!(rss_kib(pid).unwrap() > 0);
        let sampler = RssSampler::start(pid, Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(5));
        assert!(sampler.finish(pid) > 0);
        assert!(Machine::read().cpus >= 1);
    }
}
