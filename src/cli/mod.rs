//! The command line: one subcommand per job, each in its own file.

pub mod simulate;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "hearsay",
    version,
    about = "Cache-invalidation sidecar: gossips invalidations and config to every replica"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gossip core for many nodes in a deterministic simulation.
    Simulate(simulate::SimulateArgs),
}
