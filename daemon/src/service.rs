//! `iam-pgbroker serve`: load the config, take or bind the socket, tell
//! systemd when ready, reload on SIGHUP, shut down gracefully on SIGTERM.

use crate::audit::{AuditEvent, AuditLog, AuditRecord};
use crate::broker::Broker;
use crate::config::Config;
use crate::notify::notify;
use crate::{listener, server};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info};

/// Runs the broker until SIGTERM or SIGINT.
pub fn serve(path: &Path) -> ExitCode {
    if !iam_pgbroker_sql::SqlGuard::function_checks_enabled() {
        error!(
            "TEST BUILD: the SQL guard's function, operator, type and relation checks are OFF \
             (a test-only build of the broker); never run this in production"
        );
    }
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            error!("cannot start: {e}");
            refuse_waiting_clients(listener::from_systemd(), "its configuration is invalid");
            return ExitCode::from(2);
        }
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if config.server.worker_threads > 0 {
        builder.worker_threads(config.server.worker_threads);
    }
    let runtime = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            error!(cause = %e, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(path, config))
}

async fn run(path: &Path, config: Config) -> ExitCode {
    let std_listener = match listener::from_systemd() {
        Some(l) => {
            info!("using the socket passed by systemd");
            l
        }
        None => match listener::bind(&config.server) {
            Ok(l) => l,
            Err(e) => {
                error!("{e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let listener = match std_listener
        .set_nonblocking(true)
        .and_then(|()| tokio::net::UnixListener::from_std(std_listener))
    {
        Ok(l) => l,
        Err(e) => {
            error!(cause = %e, "cannot use the listening socket");
            return ExitCode::FAILURE;
        }
    };
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        error!("cannot install signal handlers");
        return ExitCode::FAILURE;
    };
    let audit = if config.audit.enabled {
        match AuditLog::open(&config.audit) {
            Ok(log) => log,
            Err(e) => {
                // A missing or malformed key: a configuration problem, not
                // an outage (an unwritable file only makes statements wait
                // for it, see AuditLog).
                error!("cannot start the audit: {e}");
                refuse_waiting_clients(listener.into_std().ok(), "its audit cannot start");
                return ExitCode::from(2);
            }
        }
    } else {
        tracing::warn!(
            "the audit is disabled ([audit] enabled = false): statements run unrecorded"
        );
        AuditLog::disabled()
    };
    // A failure is logged by the audit itself; the broker still starts.
    let _ = audit.record(&AuditRecord::new(AuditEvent::BrokerStart));
    // [metrics] listen: bound before READY=1, so a wrong address fails the
    // start instead of going unnoticed.
    let metrics_listener = match config.metrics.listen {
        Some(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => Some(l),
            Err(e) => {
                error!(cause = %e, "cannot listen for metrics on {addr} ([metrics] listen; under systemd the unit's SocketBindDeny=any needs a SocketBindAllow= for it)");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let grace = config.server.shutdown_grace;
    // The path clients connect to (systemd's socket or the bound one): the
    // watchdog connects there as a client would.
    let own_socket = listener
        .local_addr()
        .ok()
        .and_then(|a| a.as_pathname().map(Path::to_owned));
    let socket = config.server.socket.clone();
    let rules = config.policy.rules().len();
    let broker = Arc::new(Broker::new(config, audit));
    info!(socket = %socket.display(), rules, "iam-pgbroker ready");
    notify(&format!("READY=1\nSTATUS={}", broker.stats().summary()));

    // SIGHUP: re-read config and policy; a bad file keeps the old ones.
    let reloader = {
        let broker = broker.clone();
        let path = path.to_owned();
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                notify("RELOADING=1");
                let _ = reload(&broker, &path);
                // logrotate's postrotate: continue the chain in a new file.
                if let Err(e) = broker.audit().reopen() {
                    error!("reopening the audit file failed: {e}");
                }
                broker.audit().anchor("reload");
                notify(&format!("READY=1\nSTATUS={}", broker.stats().summary()));
            }
        })
    };
    // STATUS= keeps `systemctl status` current.
    let status = {
        let broker = broker.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                notify(&format!("STATUS={}", broker.stats().summary()));
            }
        })
    };
    // The audit's head to the journal at least every anchor_interval_s
    // while records are written (AuditLog::anchor decides; this only asks).
    let anchors = {
        let broker = broker.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                broker.audit().anchor("interval");
            }
        })
    };
    let metrics = metrics_listener.map(|listener| {
        let broker = broker.clone();
        info!(listen = ?listener.local_addr().ok(), "metrics endpoint on");
        tokio::spawn(crate::metrics::serve_http(listener, move || {
            broker.status_json()
        }))
    });
    let watchdog = match (watchdog_interval(), own_socket) {
        (Some(every), Some(path)) => {
            info!(
                every_ms = every.as_millis() as u64,
                "watchdog on: pinging the socket"
            );
            Some(tokio::spawn(watchdog(path, every)))
        }
        (Some(_), None) => {
            error!("WatchdogSec= is set but the socket has no path to ping; no WATCHDOG=1 will be sent");
            None
        }
        _ => None,
    };
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => info!("SIGTERM received"),
            _ = int.recv() => info!("SIGINT received"),
        }
        notify("STOPPING=1\nSTATUS=stopping: rolling back open transactions");
    };
    server::run(listener, broker.clone(), shutdown, grace).await;
    reloader.abort();
    status.abort();
    anchors.abort();
    if let Some(m) = metrics {
        m.abort();
    }
    if let Some(w) = watchdog {
        w.abort();
    }
    let _ = broker
        .audit()
        .record(&AuditRecord::new(AuditEvent::BrokerStop));
    if let Err(e) = broker.audit().flush() {
        error!("flushing the audit file failed: {e}");
    }
    info!("stopped");
    ExitCode::SUCCESS
}

/// Loads `path` anew and swaps it in for new sessions; open sessions keep
/// what they were granted. An invalid file is logged and the old
/// configuration stays. `Err` carries that error.
pub fn reload(broker: &Broker, path: &Path) -> Result<(), crate::config::ConfigError> {
    match Config::load(path) {
        Ok(config) => {
            let rules = config.policy.rules().len();
            broker.replace_config(config);
            info!(rules, "configuration reloaded");
            Ok(())
        }
        Err(e) => {
            error!("reload refused, keeping the running configuration: {e}");
            Err(e)
        }
    }
}

/// Half of systemd's `WatchdogSec=` (`WATCHDOG_USEC`), when it is meant
/// for this process (`WATCHDOG_PID`, when set, is ours).
fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Feeds systemd's watchdog only with proof that the broker serves: every
/// `every`, it connects to its own socket as a client would, sends `ping`
/// and waits for the answer; only then `WATCHDOG=1`. A broker whose accept
/// loop, connection tasks or runtime are stuck stops answering, the
/// watchdog runs out, and systemd restarts it (Restart=on-failure).
async fn watchdog(path: std::path::PathBuf, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match tokio::time::timeout(every, ping(&path)).await {
            Ok(Ok(())) => notify("WATCHDOG=1"),
            Ok(Err(e)) => {
                tracing::warn!(cause = %e, "watchdog: the broker's socket does not answer")
            }
            Err(_) => tracing::warn!("watchdog: no answer from the broker's socket in time"),
        }
    }
}

async fn ping(path: &Path) -> std::io::Result<()> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let mut stream = tokio::net::UnixStream::connect(path).await?;
    stream.write_all(b"{\"id\":1,\"op\":\"ping\"}\n").await?;
    let mut line = String::new();
    tokio::io::BufReader::new(&mut stream)
        .read_line(&mut line)
        .await?;
    // Any frame is an answer: even `busy` (at the connection limit) shows
    // the broker accepts and answers.
    if line.trim_end().ends_with('}') {
        Ok(())
    } else {
        Err(std::io::Error::other("an incomplete answer"))
    }
}

/// Before a failed start ends the process: answers every client already
/// waiting on the socket systemd passed, so they read why instead of
/// waiting, and so the socket's queue is empty and systemd does not start
/// the broker again at once for the same clients (the socket unit stays
/// listening; see the service unit's Restart= and StartLimit settings).
/// The reason itself is in the journal, not sent: a client may be anyone
/// in the socket's group.
fn refuse_waiting_clients(listener: Option<std::os::unix::net::UnixListener>, why: &str) {
    use iam_pgbroker_proto::{ErrorCode, ErrorInfo, Response};
    use std::io::Write as _;
    let Some(listener) = listener else { return };
    if listener.set_nonblocking(true).is_err() {
        return;
    }
    let frame = Response::Error {
        id: None,
        error: ErrorInfo::new(
            ErrorCode::Unavailable,
            format!("the broker cannot start ({why}): see journalctl -u iam-pgbroker"),
        ),
    };
    let Ok(mut line) = serde_json::to_vec(&frame) else {
        return;
    };
    line.push(b'\n');
    let mut answered = 0usize;
    // Bounded: a flood of new clients must not keep a failed start alive.
    while answered < 1024 {
        let Ok((mut stream, _)) = listener.accept() else {
            break;
        };
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
        let _ = stream.write_all(&line);
        // Half-close, then take what the client still sends (its hello)
        // until it closes: closing at once would fail that write with a
        // broken pipe before the client has read why.
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
        let mut sink = [0u8; 4096];
        for _ in 0..16 {
            match std::io::Read::read(&mut stream, &mut sink) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        answered += 1;
    }
    if answered > 0 {
        info!(
            clients = answered,
            "told the waiting clients that the broker cannot start"
        );
    }
}
