//! `rollguard simulate`: each workload's rollout, as written and as admitted.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::durations::parse_duration;
use super::policy::PolicyArgs;
use super::CliError;
use crate::check;
use crate::rollout::report::{self, Output};
use crate::rollout::scenario::Assumptions;

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Files, directories (searched for *.yaml, *.yml, *.json) or - for stdin.
    #[arg(value_name = "PATH", default_value = "-")]
    pub paths: Vec<String>,

    /// text (figures and a ReplicaSet table) or svg (files into --out; no PNG:
    /// scripts/render-svg.sh screenshots SVGs with headless Chromium).
    #[arg(long, short, value_name = "FORMAT", value_enum, default_value_t = Output::Text)]
    pub output: Output,

    /// Directory the SVG files are written to.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Time from a pod's creation to Ready (default 5s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub ready_after: Option<Duration>,

    /// How long a stopped pod needs to terminate (its flush); default: preStop sleep
    /// plus shutdown-timeout from the annotations, else the grace period. The
    /// kubelet kills it at the grace period whatever this says.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub shutdown: Option<Duration>,

    /// Simulate a broken release: the new version never becomes Ready.
    #[arg(long)]
    pub never_ready: bool,

    #[command(flatten)]
    pub policy: PolicyArgs,
}

pub(super) fn run(args: SimulateArgs) -> Result<ExitCode, CliError> {
    let seconds = |d: Option<Duration>| d.map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
    let settings = args.policy.load().map_err(CliError::usage)?.settings;
    let inputs = check::expand(&args.paths).map_err(CliError::usage)?;
    let options = report::Options {
        output: args.output,
        out_dir: args.out,
        assume: Assumptions {
            ready_after: seconds(args.ready_after),
            shutdown: seconds(args.shutdown),
            new_never_ready: args.never_ready,
        },
        settings,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let summary = report::run(&inputs, &options, &mut std::io::stdin().lock(), &mut out)
        .map_err(CliError::usage)?;
    Ok(ExitCode::from(summary.exit_code()))
}
