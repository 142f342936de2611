//! `aiops`: the aiods AIOps platform command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The aiods AIOps platform.
#[derive(Debug, Parser)]
#[command(name = "aiops", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {}
}
