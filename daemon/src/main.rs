use clap::{Parser, Subcommand};
use iam_pgbroker::broker::Broker;
use iam_pgbroker::config::{Config, DEFAULT_CONFIG_PATH};
use iam_pgbroker::{listener, server};
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
