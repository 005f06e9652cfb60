//! The `hearsay` binary: parse the command line, run the subcommand, turn
//! failures into exit codes (64 for usage and settings, 1 otherwise).
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use hearsay::cli::{Cli, dispatch};

fn main() -> ExitCode {
    hearsay::shutdown::stop_with_parent();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 64 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("hearsay: {f}");
            ExitCode::from(f.exit_code())
        }
    }
}
