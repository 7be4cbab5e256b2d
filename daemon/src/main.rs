use clap::{Parser, Subcommand};
use iam_pgbroker::config::{Config, DEFAULT_CONFIG_PATH};
use iam_pgbroker::policy::Access;
use iam_pgbroker::{admin, audit, service};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
    /// Validate the configuration and every policy drop-in, and print the
    /// effective rules (like `visudo -c`, `sshd -t`). Exit 0 when valid, 2
    /// with file and line when not.
    ///
    /// Also warns, without failing, about users, groups, uids and instances
    /// this host does not have, rules whose users cannot connect to the
    /// socket, and rules an earlier rule always decides first.
    CheckConfig {
        /// Configuration file.
        #[arg(long, short, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
        /// Print nothing when valid and skip the warnings and the password
        /// sources: the unit's ExecReload uses it before it signals the
        /// broker, so `systemctl reload` fails on an invalid file.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Would USER be allowed, and by which rule?
    Explain {
        /// OS user name or uid (as the kernel would report it when they
        /// connect). Whether the socket's mode and group let them connect
        /// at all is checked first.
        #[arg(long, short)]
        user: String,
        /// Database instance.
        #[arg(long, short, default_value = iam_pgbroker_proto::DEFAULT_DB)]
        db: String,
        /// Database user.
        #[arg(long = "db-user", short = 'U', default_value = iam_pgbroker_proto::DEFAULT_DB_USER)]
        db_user: String,
        /// Ask about a read-write session.
        #[arg(long)]
        write: bool,
        /// Configuration file.
        #[arg(long, short, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Show the running broker's sessions, statements, errors and pools
    /// (root and the admin group only).
    Status {
        /// The broker's socket (default: from the configuration).
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Configuration file (for the socket path).
        #[arg(long, short, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the running broker's sessions: who, where, state, the age of
    /// the open transaction, the statement running and for how long, the
    /// PostgreSQL backend pid (root and the admin group only).
    Sessions {
        /// The broker's socket (default: from the configuration).
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Configuration file (for the socket path).
        #[arg(long, short, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// Cancel the statement a session runs now; the session stays open
    /// (its own OS user, root and the admin group; audited).
    Cancel {
        /// The session id (from `sessions`).
        session: String,
        /// The broker's socket (default: from the configuration).
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Configuration file (for the socket path).
        #[arg(long, short, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// End a session: its statement cancelled, its transaction rolled back,
    /// its connection closed (root and the admin group; audited).
    Terminate {
        /// The session id (from `sessions`).
        session: String,
        /// The broker's socket (default: from the configuration).
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Configuration file (for the socket path).
        #[arg(long, short, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Print the running broker's metrics in the OpenMetrics text format
    /// (what Prometheus scrapes; root and the admin group only, like
    /// `status`). `[metrics] listen` serves the same over HTTP.
    Metrics {
        /// The broker's socket (default: from the configuration).
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Configuration file (for the socket path).
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
    ///
    /// With --journal (or --anchors), also compares the end of the last
    /// file with the chain heads the broker wrote to the journal: a file
    /// that ends before the newest anchor is reported with how many
    /// records are missing (exit 1).
    Verify {
        /// Audit files, oldest first (e.g. audit.jsonl.1 audit.jsonl).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Read the anchors from this host's journal.
        #[arg(long, conflicts_with = "anchors")]
        journal: bool,
        /// Read the anchors from FILE (`journalctl -o json AUDIT_ANCHOR=1`
        /// output).
        #[arg(long, value_name = "FILE")]
        anchors: Option<PathBuf>,
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
    // Read before clap, so that they are in neither the man page nor the
    // completions they generate (as iam-pg does).
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if let [option, value] = args.as_slice() {
        use clap::CommandFactory;
        match option.to_str() {
            Some("--generate-man") => {
                return match iam_pgbroker::generate::man_pages(Cli::command(), Path::new(value)) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("iam-pgbroker: cannot write the man pages: {e}");
                        ExitCode::from(2)
                    }
                };
            }
            Some("--generate-completions") => {
                let name = value.to_string_lossy();
                return match iam_pgbroker::generate::completions_for(
                    Cli::command(),
                    &name,
                    &mut std::io::stdout().lock(),
                ) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("iam-pgbroker: {e}");
                        ExitCode::from(2)
                    }
                };
            }
            _ => {}
        }
    }
    let cli = Cli::parse();
    let filter = || {
        let filter = tracing_subscriber::EnvFilter::try_from_env("IAM_PGBROKER_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        // Whatever level is asked for, the libraries never log below info:
        // at debug they write what others' secrets travel in — tokio-postgres
        // every statement (parameter values of EXECUTE, a role's SCRAM
        // verifier), bollard Docker's event stream (other people's `docker
        // exec` command lines), the HTTP clients OpenBao's answers.
        let mut filter = filter;
        for quiet in [
            "tokio_postgres=info",
            "bollard=info",
            "hyper=info",
            "hyper_util=info",
            "reqwest=info",
            "h2=info",
            "rustls=info",
        ] {
            if let Ok(directive) = quiet.parse() {
                filter = filter.add_directive(directive);
            }
        }
        filter
    };
    // Under systemd (stderr is the journal's stream): journald's native
    // protocol, one entry per event with its priority and fields.
    let journal = if iam_pgbroker::journal::stderr_is_journal() {
        iam_pgbroker::journal::JournalLayer::new().ok()
    } else {
        None
    };
    match journal {
        Some(layer) => {
            use tracing_subscriber::layer::SubscriberExt;
            use tracing_subscriber::util::SubscriberInitExt;
            tracing_subscriber::registry()
                .with(filter())
                .with(layer)
                .init();
        }
        None => {
            // Colours only for a person at a terminal; log files get plain
            // text. Either way, text someone else wrote (process names,
            // statements in errors) cannot drive the reader's terminal.
            let colours = std::io::stderr().is_terminal();
            tracing_subscriber::fmt()
                .with_writer(move || {
                    iam_pgbroker::log_writer::EscapingWriter::new(std::io::stderr(), colours)
                })
                .with_ansi(colours)
                .with_env_filter(filter())
                .init();
        }
    }
    match cli.command {
        Command::Serve { config } => service::serve(&config),
        Command::CheckConfig { config, quiet } => check_config(&config, quiet),
        Command::Explain {
            user,
            db,
            db_user,
            write,
            config,
        } => explain(&config, &user, &db, &db_user, write),
        Command::Status {
            socket,
            config,
            json,
        } => status(socket, &config, json),
        Command::Metrics { socket, config } => metrics(socket, &config),
        Command::Sessions {
            socket,
            config,
            json,
        } => sessions(socket, &config, json),
        Command::Cancel {
            session,
            socket,
            config,
        } => end_session(socket, &config, "cancel", &session),
        Command::Terminate {
            session,
            socket,
            config,
        } => end_session(socket, &config, "terminate", &session),
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
        AuditCommand::Verify {
            files,
            journal,
            anchors,
        } => {
            let source = match (journal, anchors) {
                (_, Some(file)) => Some(audit::cli::AnchorSource::File(file)),
                (true, None) => Some(audit::cli::AnchorSource::Journal),
                (false, None) => None,
            };
            audit::cli::verify_command(&files, source.as_ref(), &mut out, &mut err)
        }
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

fn check_config(path: &Path, quiet: bool) -> ExitCode {
    // Run by the unit's ExecReload, stderr is the journal's stream: one
    // line with syslog's "<3>" makes the error one entry at PRIORITY=3
    // (`journalctl -p err`), and `systemctl status` shows it.
    let journal = iam_pgbroker::journal::stderr_is_journal();
    match Config::load(path) {
        Err(e) if journal => {
            eprintln!(
                "<3>iam-pgbroker: {}",
                iam_pgbroker_proto::display::escape_line(&e.to_string())
            );
            ExitCode::from(2)
        }
        Ok(_) if quiet => ExitCode::SUCCESS,
        Ok(config) => {
            print!("{}", admin::check_report(&config));
            let mut warnings = admin::policy_warnings(&config);
            match small_runtime() {
                Ok(rt) => {
                    warnings.extend(rt.block_on(admin::instance_warnings(&config)));
                    print!("{}", rt.block_on(admin::sources_report(&config)));
                }
                Err(e) => eprintln!("iam-pgbroker: cannot check the password sources: {e}"),
            }
            // Warnings name users and files an administrator wrote; still,
            // nothing in them may drive the terminal.
            for w in &warnings {
                eprintln!(
                    "iam-pgbroker: warning: {}",
                    iam_pgbroker_proto::display::escape_line(w)
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("iam-pgbroker: {e}");
            ExitCode::from(2)
        }
    }
}

fn explain(path: &Path, user: &str, db: &str, db_user: &str, write: bool) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("iam-pgbroker: {e}");
            return ExitCode::from(2);
        }
    };
    let peer = match admin::identity_of_user_or_uid(user) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("iam-pgbroker: {e}");
            return ExitCode::from(2);
        }
    };
    let access = Access {
        db,
        db_user,
        write,
        dbname: None,
    };
    match admin::explain(&config, &peer, access) {
        Ok(text) => {
            println!("{text}");
            let dynamic = match config.policy.decide(&peer, access) {
                iam_pgbroker::policy::PolicyDecision::Allow(rule) => rule.dynamic_credentials,
                _ => false,
            };
            match small_runtime() {
                Ok(rt) => println!(
                    "  password: {}",
                    rt.block_on(admin::password_source(&config, db, db_user, dynamic))
                ),
                Err(e) => eprintln!("iam-pgbroker: cannot check the password sources: {e}"),
            }
            ExitCode::SUCCESS
        }
        Err(text) => {
            println!("{text}");
            ExitCode::from(1)
        }
    }
}

fn socket_of(socket: Option<PathBuf>, config: &Path) -> PathBuf {
    match socket {
        Some(s) => s,
        None => match Config::load(config) {
            Ok(c) => c.server.socket,
            // Without a readable config, the packaged default.
            Err(_) => PathBuf::from(iam_pgbroker_proto::DEFAULT_SOCKET_PATH),
        },
    }
}

fn metrics(socket: Option<PathBuf>, config: &Path) -> ExitCode {
    match admin::fetch_status(&socket_of(socket, config)) {
        Ok(status) => {
            print!("{}", iam_pgbroker::metrics::render(&status));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("iam-pgbroker: {e}");
            ExitCode::from(1)
        }
    }
}

fn status(socket: Option<PathBuf>, config: &Path, json: bool) -> ExitCode {
    let socket = socket_of(socket, config);
    match admin::fetch_status(&socket) {
        Ok(status) => {
            if json {
                println!("{status}");
            } else {
                print!("{}", admin::status_text(&status));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("iam-pgbroker: {e}");
            ExitCode::from(1)
        }
    }
}

fn sessions(socket: Option<PathBuf>, config: &Path, json: bool) -> ExitCode {
    let socket = socket_of(socket, config);
    match admin::fetch_sessions(&socket) {
        Ok(list) => {
            if json {
                println!("{}", admin::sessions_json(&list));
            } else {
                print!("{}", admin::sessions_text(&list));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("iam-pgbroker: {e}");
            ExitCode::from(1)
        }
    }
}

fn end_session(socket: Option<PathBuf>, config: &Path, op: &str, session: &str) -> ExitCode {
    let socket = socket_of(socket, config);
    match admin::end_session(&socket, op, session) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("iam-pgbroker: {e}");
            ExitCode::from(1)
        }
    }
}

/// A one-thread runtime for the commands that ask OpenBao.
fn small_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}
