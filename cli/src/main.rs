//! `iam-pg`: a psql-like command-line client for iam-pgbroker.
//!
//! Parses the arguments and hands over to [`run::main`]; see `iam-pg --help`.

mod approval;
mod args;
mod complete;
mod describe;
mod generate;
mod interactive;
mod meta;
mod output;
mod print;
mod psql;
mod run;
mod script;
mod sql_help;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    if let Some(status) = generate::from_args(std::env::args_os().skip(1)) {
        return status;
    }
    if approval::is_approval_command(std::env::args_os().nth(1).as_deref()) {
        return approval::main(approval::ApprovalArgs::parse());
    }
    // clap exits with status 2 on a usage error, which is ours too.
    run::main(args::Args::parse_all())
}
