//! The `aiods-lab` command line, as a library function so other binaries (the end-to-end tests
//! package) can run the very same program: [`run`].

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::experiment::{self, ExperimentArgs, LoadArgs, Mode};
use crate::mttr::{self, MttrArgs};

/// The lab beside the aiods platform: the demo, experiments and measurements.
#[derive(Debug, Parser)]
#[command(name = "aiods-lab", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The whole idea in one command: the platform, the five food-delivery services, a
    /// one-minute experiment with crashes, the report, then the dashboard until Ctrl-C.
    Demo(ExperimentArgs),
    /// Run a topology (the built-in food-delivery one by default) under the load of a
    /// scenario and a chaos schedule, and write a report (the seed's Tables 4 and 5,
    /// MTTD/MTTR, latency over time).
    Experiment(ExperimentArgs),
    /// The experiment's load with no fault (through the platform), or straight at a running
    /// service with `--url`.
    Load(LoadArgs),
    /// Kill and hang each service in turn, one failure at a time: MTTD / MTTR percentiles.
    Mttr(MttrArgs),
    /// Run one food-delivery service in this process (used by the built-in topology).
    #[command(hide = true)]
    Serve {
        /// `order-service`, `consumer-service`, `kitchen-service`, `accounting-service` or
        /// `notification-service`.
        service: String,
    },
}

/// Parses the command line and runs `aiods-lab`.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        // The service installs its own providers and runtime.
        Command::Serve { service } => crate::serve::serve(&service),
        Command::Demo(a) => experiment::run(a, Mode::Demo, command_line()),
        Command::Experiment(a) => experiment::run(a, Mode::Experiment, command_line()),
        Command::Load(a) => experiment::run_load(a, command_line()),
        Command::Mttr(a) => mttr::run(a),
    }
}

/// `aiods-lab demo --users 5`, for the report.
fn command_line() -> String {
    std::iter::once("aiods-lab".to_owned())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn old_and_new_topology_flags() {
        for flag in ["-c", "--topology", "--config"] {
            let cli =
                Cli::try_parse_from(["aiods-lab", "experiment", flag, "t.toml"]).expect("parses");
            let Command::Experiment(a) = cli.command else {
                panic!("not an experiment");
            };
            assert_eq!(a.topology.as_deref(), Some(std::path::Path::new("t.toml")));
        }
        assert!(
            Cli::try_parse_from(["aiods-lab", "load", "--url", "http://x", "-c", "t.toml"])
                .is_err()
        );
    }
}
