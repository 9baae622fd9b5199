//! `rollguard check`: the engine over files, or over what a cluster runs.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::builder::PossibleValue;
use clap::{Args, ValueEnum};

use super::durations::parse_nonzero_duration;
use super::policy::PolicyArgs;
use super::CliError;
use crate::check::cluster::{self, ClusterOptions, Scope};
use crate::check::{self as engine, CheckError, CheckOptions, Format};
use crate::policy::{EffectiveMode, Mode};

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Files, directories (searched for *.yaml, *.yml, *.json) or - for stdin.
    #[arg(value_name = "PATH", default_value = "-", conflicts_with = "cluster")]
    pub paths: Vec<String>,

    /// text, yaml (the manifests as admitted), diff, json, sarif or report (OpenReports).
    #[arg(long, short, value_name = "FORMAT", default_value_t = Format::Text)]
    pub output: Format,

    /// enforce (what the webhook would admit or deny; the default) or audit
    /// (report only). With --cluster, only for -n, -l or -A: by default each
    /// labelled namespace is judged in its label's mode.
    #[arg(long, value_name = "MODE", value_enum)]
    pub mode: Option<Mode>,

    /// Never colour the text output (it is coloured only on a terminal).
    #[arg(long)]
    pub no_color: bool,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    #[command(flatten)]
    pub policy: PolicyArgs,
}

/// `check --cluster`: judge what is running (read-only, through the kubeconfig).
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Read the workloads of the cluster instead of files (default namespaces:
    /// those labelled rollguard.io/mode=enforce or audit, outside kube-system
    /// and rollguard-system, as the webhook selects them; each judged in its
    /// label's mode).
    #[arg(long)]
    pub cluster: bool,

    /// Only these namespaces (repeatable), judged in --mode.
    #[arg(long, short = 'n', value_name = "NAMESPACE", requires = "cluster")]
    pub namespace: Vec<String>,

    /// Every namespace, judged in --mode.
    #[arg(long, short = 'A', requires = "cluster", conflicts_with_all = ["namespace", "selector"])]
    pub all_namespaces: bool,

    /// Namespaces matching this label selector, judged in --mode.
    #[arg(
        long,
        short = 'l',
        value_name = "SELECTOR",
        requires = "cluster",
        conflicts_with = "namespace"
    )]
    pub selector: Option<String>,

    /// Objects per list request: memory is bounded by one page.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10000), requires = "cluster")]
    pub page_size: u32,

    /// Bound on connecting to the API server and on each of its answers.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_nonzero_duration)]
    pub timeout: Duration,
}

/// `--mode`: a run is judged as an enforcing or an auditing namespace would
/// be (`off` would judge nothing). The words are the modes' labels.
impl ValueEnum for Mode {
    fn value_variants<'a>() -> &'a [Self] {
        &[Mode::Enforce, Mode::Audit]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(EffectiveMode::from(*self).label()))
    }
}

pub(super) async fn run(args: CheckArgs) -> Result<ExitCode, CliError> {
    if args.cluster.cluster {
        return run_cluster(args).await;
    }
    let inputs = engine::expand(&args.paths).map_err(CliError::usage)?;
    let (options, _) = options(&args)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let summary = engine::run(&inputs, &options, &mut std::io::stdin().lock(), &mut out)
        .map_err(CliError::usage)?;
    Ok(ExitCode::from(summary.exit_code()))
}

async fn run_cluster(args: CheckArgs) -> Result<ExitCode, CliError> {
    let (mut options, auto_handler) = options(&args)?;
    let flags = &args.cluster;
    let scope = if flags.all_namespaces {
        Scope::All
    } else if let Some(selector) = &flags.selector {
        Scope::Selector(selector.clone())
    } else if !flags.namespace.is_empty() {
        Scope::Named(flags.namespace.clone())
    } else {
        Scope::Labelled
    };
    if scope == Scope::Labelled && args.mode.is_some() {
        return Err(CliError::usage(
            "--mode applies to --namespace, --selector or --all-namespaces: without them each namespace \
             labelled rollguard.io/mode is judged in its label's mode, as the webhook judges it",
        ));
    }
    let cluster = ClusterOptions {
        scope,
        page_size: flags.page_size,
        timeout: flags.timeout,
        progress: std::io::stderr().is_terminal(),
    };
    let client = cluster::client(cluster.timeout)
        .await
        .map_err(CliError::usage)?;
    if auto_handler {
        // As `serve` does at start-up: the handler the cluster's version has.
        options.settings.prestop_handler =
            crate::cluster_version::detect_with(client.clone(), cluster.timeout).await;
    }
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let result = cluster::run(client, &cluster, &options, &mut out).await;
    let flushed = out.flush();
    let summary = result.map_err(CliError::usage)?;
    flushed.map_err(|err| CliError::usage(CheckError::Output(err)))?;
    Ok(ExitCode::from(summary.exit_code()))
}

/// The engine's options for `check`, from files or the cluster alike, and
/// whether the preStop handler is `auto`. Offline there is no cluster to
/// ask: `auto` means the native sleep of current Kubernetes (pass
/// --prestop-handler exec for older clusters); `--cluster` asks the cluster.
fn options(args: &CheckArgs) -> Result<(CheckOptions, bool), CliError> {
    let loaded = args.policy.load().map_err(CliError::usage)?;
    let options = CheckOptions {
        mode: args.mode.unwrap_or(Mode::Enforce),
        format: args.output,
        color: !args.no_color
            && std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none(),
        settings: loaded.settings,
    };
    Ok((options, loaded.auto_handler))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn check_args(args: &[&str]) -> CheckArgs {
        let cli = Cli::try_parse_from(["rollguard", "check"].iter().chain(args)).unwrap();
        let Command::Check(args) = cli.command else {
            panic!("expected check");
        };
        args
    }

    #[test]
    fn mode_and_output_are_read_by_their_labels() {
        let defaults = check_args(&[]);
        assert_eq!((defaults.mode, defaults.output), (None, Format::Text));
        let audit = check_args(&["--mode", "audit", "--output", "sarif"]);
        assert_eq!(
            (audit.mode, audit.output),
            (Some(Mode::Audit), Format::Sarif)
        );
        for mode in ["off", "Audit"] {
            assert!(Cli::try_parse_from(["rollguard", "check", "--mode", mode]).is_err());
        }
        let unknown = Cli::try_parse_from(["rollguard", "check", "-o", "xml"]).unwrap_err();
        assert!(
            unknown
                .to_string()
                .contains("accepted values are text, yaml, diff, json, sarif, report"),
            "{unknown}"
        );
    }
}
