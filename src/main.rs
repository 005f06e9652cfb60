//! The `hearsay` binary: parse the command line, run the subcommand.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use hearsay::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Simulate(args) => hearsay::cli::simulate::run(args).map(|r| {
            if r.undelivered == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }),
    };
    result.unwrap_or_else(|e| {
        eprintln!("hearsay: {e:#}");
        ExitCode::from(1)
    })
}
