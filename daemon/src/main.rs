use clap::{Parser, Subcommand};
use iam_pgbroker::broker::Broker;
use iam_pgbroker::config::{Config, DEFAULT_CONFIG_PATH};
use iam_pgbroker::{audit, listener, server};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tracing::{error, info};

/// iam-pgbroker: audited, policy-checked access to the appliance's
/// PostgreSQL containers for unprivileged users.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker.
    Serve {
        /// Configuration file.
        #[arg(long, short, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Check or read the audit file.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Print the HMAC of VALUE with the audit key: what a parameter equal
    /// to VALUE looks like in the audit file (needs read access to the key).
    AuditHash {
        /// The value as PostgreSQL receives it (text); `-` reads it from
        /// standard input.
        value: String,
        /// The key file.
        #[arg(long, conflicts_with = "config")]
        key: Option<PathBuf>,
        /// Configuration file whose `[audit] key_file` to use.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain of FILE... (oldest first); exit 0 when intact,
    /// 1 when broken.
    Verify {
        /// Audit files, oldest first (e.g. audit.jsonl.1 audit.jsonl).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print records as a table, or the matching JSON lines.
    Show {
        /// Audit files, oldest first; default: the configured file.
        files: Vec<PathBuf>,
        /// Configuration file (for the default file and the key).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Only this user's records (OS user name).
        #[arg(long)]
        user: Option<String>,
        /// Only this uid's records.
        #[arg(long)]
        uid: Option<u32>,
        /// Only this database instance (or database name).
        #[arg(long)]
        db: Option<String>,
        /// Only this session.
        #[arg(long)]
        session: Option<String>,
        /// From this time on: 2026-11-20, "2026-11-20 14:30" (UTC),
        /// RFC 3339, today, yesterday, 7d, "7 days ago".
        #[arg(long, allow_hyphen_values = true)]
        since: Option<String>,
        /// Before this time (same forms as --since).
        #[arg(long, allow_hyphen_values = true)]
        until: Option<String>,
        /// Only what writes: writing statements and commits of write
        /// sessions.
        #[arg(long)]
        writes: bool,
        /// Only refusals: refused sessions and statements, permission
        /// errors.
        #[arg(long)]
        denied: bool,
        /// Only records that mention VALUE: in the SQL text, the reason, or
        /// a parameter (hashed parameters are matched with the key).
        #[arg(long)]
        value: Option<String>,
        /// Print the matching records as JSON lines, unchanged.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal; journald and log files
        // get plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("IAM_PGBROKER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match cli.command {
        Command::Serve { config } => serve(config),
        Command::Audit { command } => ExitCode::from(audit(command)),
        Command::AuditHash { value, key, config } => ExitCode::from(audit::cli::hash_command(
            &value,
            key.as_deref(),
            config.as_deref(),
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        )),
    }
}

fn audit(command: AuditCommand) -> u8 {
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    match command {
        AuditCommand::Verify { files } => audit::cli::verify_command(&files, &mut out, &mut err),
        AuditCommand::Show {
            files,
            config,
            user,
            uid,
            db,
            session,
            since,
            until,
            writes,
            denied,
            value,
            json,
        } => {
            let args = audit::cli::ShowArgs {
                files,
                config,
                user,
                uid,
                db,
                session,
                since,
                until,
                writes,
                denied,
                value,
                json,
            };
            audit::cli::show_command(&args, &mut out, &mut err)
        }
    }
}

fn serve(path: PathBuf) -> ExitCode {
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            error!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!(cause = %e, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
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
        let grace = config.server.shutdown_grace;
        let socket = config.server.socket.clone();
        let rules = config.policy.rules().len();
        let broker = Arc::new(Broker::new(config));
        info!(socket = %socket.display(), rules, "iam-pgbroker ready");
        server::run(listener, broker, shutdown_signal(), grace).await;
        info!("stopped");
        ExitCode::SUCCESS
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        error!("cannot install signal handlers; stop the broker with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received"),
        _ = int.recv() => info!("SIGINT received"),
    }
}
