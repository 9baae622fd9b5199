//! The command line: `serve` runs the webhook, `check` the same engine
//! offline, `simulate` its rollouts, `rules` lists the rules, `certs` makes
//! certificates. This file holds the parser and the dispatch; each command's
//! flags and wiring live in the file named after it.
//!
//! One error style for every command: its `run` returns `CliError` with
//! `?`, and only `run` here turns it into a message and an exit code.

mod certs;
mod check;
mod durations;
mod policy;
mod rules;
mod serve;
mod simulate;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use thiserror::Error;
use tracing::error;

use crate::telemetry::LogFormat;

pub use certs::CertsArgs;
pub use check::{CheckArgs, ClusterArgs};
pub use policy::PolicyArgs;
pub use rules::RulesArgs;
pub use serve::ServeArgs;
pub use simulate::SimulateArgs;

/// Exit code for invalid flags, configuration or TLS material: the same as
/// clap's usage errors, so scripts see one code for "fix your input".
pub const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(name = "rollguard", version, about, propagate_version = true)]
pub struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the admission webhook (HTTPS) and the ops endpoints (HTTP).
    Serve(ServeArgs),
    /// Run the webhook's engine over manifests, offline: what would be changed or denied.
    Check(CheckArgs),
    /// List every rule with its default action, why it exists and the fix.
    Rules(RulesArgs),
    /// Generate a CA and a serving certificate for the webhook Service.
    Certs(CertsArgs),
    /// Simulate each workload's rollout as the controllers run it, as written and as admitted.
    Simulate(SimulateArgs),
}

/// How a command fails.
#[derive(Debug, Error)]
enum CliError {
    /// Input the user must fix (flags, configuration, paths, TLS material)
    /// or a report that cannot be written: exit [`EXIT_USAGE`].
    #[error("{0}")]
    Usage(String),
    /// The command broke while running (TLS set-up, the listeners, writing
    /// certificates): exit 1, with the whole chain of causes logged by `main`.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl CliError {
    fn usage(err: impl std::fmt::Display) -> CliError {
        CliError::Usage(err.to_string())
    }

    fn failed(err: impl Into<anyhow::Error>) -> CliError {
        CliError::Failed(err.into())
    }
}

impl Cli {
    /// The log filter when `RUST_LOG` is not set. `check` keeps the kube
    /// client's own timestamped lines (with parts of response bodies) off the
    /// terminal: its report already says what failed and what to do.
    pub fn default_log_filter(&self) -> &'static str {
        match self.command {
            Command::Check(_) => "info,kube=off,kube_client=off",
            _ => "info",
        }
    }
}

/// Runs the chosen command and returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // `serve` reports through its log (JSON lines in a cluster); the offline
    // commands are tools whose stderr a person reads.
    let logged = matches!(cli.command, Command::Serve(_));
    let result = match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Check(args) => check::run(args).await,
        Command::Rules(args) => rules::run(&args),
        Command::Certs(args) => certs::run(args),
        Command::Simulate(args) => simulate::run(args),
    };
    match result {
        Ok(code) => Ok(code),
        Err(CliError::Usage(message)) => {
            if logged {
                error!("{message}");
            } else {
                eprintln!("rollguard: {message}");
            }
            Ok(ExitCode::from(EXIT_USAGE))
        }
        Err(CliError::Failed(err)) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
