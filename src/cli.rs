//! The command line: `serve` runs the webhook, `check` the same engine
//! offline, `rules` lists the rules, `certs` makes certificates.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tracing::{error, info, warn};

use crate::admission::PolicyConfig;
use crate::config::{self, Overrides};
use crate::policy::Mode;
use crate::reload::{CertFiles, Reloader};
use crate::server::{self, AppState, RunOptions, Timeouts};
use crate::telemetry::LogFormat;
use crate::{catalog, check};
use crate::{duration, tls};

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

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address of the HTTPS admission endpoints (/mutate, /validate, /audit).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,

    /// Address of the plain-HTTP ops endpoints (/healthz, /readyz, /metrics).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8080")]
    pub ops_listen: SocketAddr,

    /// PEM certificate chain, server certificate first.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of the certificate.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Serve an in-memory certificate for localhost (local testing only).
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    pub self_signed: bool,

    /// Report only: every finding becomes a warning, nothing is changed or denied.
    #[arg(long)]
    pub audit: bool,

    #[command(flatten)]
    pub policy: PolicyArgs,

    /// Largest admission request body accepted; larger ones get 413.
    #[arg(long, value_name = "BYTES", default_value_t = server::DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,

    /// After SIGTERM, keep serving this long with readiness failing, so the
    /// pod leaves the endpoints before the listener closes (e.g. 5, 5s).
    #[arg(long, value_name = "DURATION", default_value = "5", value_parser = parse_duration)]
    pub shutdown_delay: Duration,

    /// After the shutdown delay, wait at most this long for in-flight
    /// requests before exiting.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub drain_timeout: Duration,

    /// How often --tls-cert and --tls-key are re-read; a renewed pair is
    /// served without a restart. 0 turns reloading off.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub cert_reload_interval: Duration,

    /// Require admission clients (the kube-apiserver) to present a
    /// certificate issued by a CA in this PEM file.
    #[arg(long, value_name = "FILE")]
    pub client_ca: Option<PathBuf>,

    /// Connections served at once on --listen; at the cap the connection idle
    /// for longest is closed to make room for the new one.
    #[arg(long, value_name = "N", default_value_t = server::DEFAULT_MAX_CONNECTIONS as u64,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,

    /// HTTP/1 request headers must arrive within this; also how long an idle
    /// keep-alive connection stays open.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_nonzero_duration)]
    pub header_read_timeout: Duration,

    /// A connection with no request in flight for this long is closed
    /// (HTTP/2 with a GOAWAY); at the connection cap the idlest one is
    /// closed at once to make room.
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = parse_nonzero_duration)]
    pub idle_timeout: Duration,

    /// Upper bound on one admission request, body included; the API
    /// server's ?timeout= lowers it per request.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_nonzero_duration)]
    pub request_timeout: Duration,
}

/// The policy settings shared by `serve` and `check`.
#[derive(Debug, Args, Clone)]
pub struct PolicyArgs {
    /// YAML configuration file; flags win over it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// preStop sleep injected when a workload declares none (e.g. 10s).
    #[arg(long, value_name = "DURATION")]
    pub prestop_sleep: Option<String>,

    /// Added to preStop sleep and shutdown timeout for the grace period (e.g. 5s).
    #[arg(long, value_name = "DURATION")]
    pub shutdown_buffer: Option<String>,

    /// Containers that never get a preStop hook or readiness probe.
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub skip_containers: Option<Vec<String>>,

    /// How injected preStop hooks sleep: auto (ask the API server its version
    /// at start-up: native sleep from 1.30, exec before), sleep, or exec.
    #[arg(long, value_name = "HANDLER", value_parser = ["auto", "sleep", "exec"])]
    pub prestop_handler: Option<String>,

    /// Set a rule's action, e.g. --rule readiness-missing=deny (repeatable).
    #[arg(long = "rule", value_name = "RULE=ACTION")]
    pub rules: Vec<String>,
}

impl PolicyArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            prestop_sleep: self.prestop_sleep.clone(),
            shutdown_buffer: self.shutdown_buffer.clone(),
            skip_containers: self.skip_containers.clone(),
            prestop_handler: self.prestop_handler.clone(),
            rule_actions: self.rules.clone(),
        }
    }

    /// The settings, or the configuration error that names the key.
    pub fn load(&self) -> Result<config::Loaded, config::ConfigError> {
        config::load(self.config.as_deref(), &self.overrides())
    }
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Files, directories (searched for *.yaml, *.yml, *.json) or - for stdin.
    #[arg(value_name = "PATH", default_value = "-")]
    pub paths: Vec<String>,

    /// text, yaml (the manifests as admitted), diff, json, sarif or report (OpenReports).
    #[arg(long, short, value_name = "FORMAT", default_value = "text")]
    pub output: check::Format,

    /// enforce (what the webhook would admit or deny) or audit (report only).
    #[arg(long, value_name = "MODE", default_value = "enforce", value_parser = ["enforce", "audit"])]
    pub mode: String,

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
    /// those labelled rollguard.io/mode, each judged in its label's mode).
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

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Files, directories (searched for *.yaml, *.yml, *.json) or - for stdin.
    #[arg(value_name = "PATH", default_value = "-")]
    pub paths: Vec<String>,

    /// text (figures and a ReplicaSet table) or svg (files into --out).
    #[arg(long, short, value_name = "FORMAT", default_value = "text")]
    pub output: crate::rollout::report::Output,

    /// Directory the SVG files are written to.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Time from a pod's creation to Ready (default 5s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub ready_after: Option<Duration>,

    /// How long a stopped pod terminates (its flush); default: preStop sleep plus
    /// shutdown-timeout from the annotations, else the grace period.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub shutdown: Option<Duration>,

    /// Simulate a broken release: the new version never becomes Ready.
    #[arg(long)]
    pub never_ready: bool,

    #[command(flatten)]
    pub policy: PolicyArgs,
}

#[derive(Debug, Args)]
pub struct RulesArgs {
    /// Print docs/rules.md instead of the plain list.
    #[arg(long)]
    pub markdown: bool,
}

#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Name of the webhook's Service.
    #[arg(long, default_value = "rollguard")]
    pub service: String,

    /// Namespace of the webhook's Service.
    #[arg(long, default_value = "rollguard-system")]
    pub namespace: String,

    /// Directory to write tls.crt, tls.key, ca.crt, secret.yaml and cabundle-patch.yaml into.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// Validity of the serving certificate in days (the CA lives ten times longer).
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(i64).range(1..=3650))]
    pub days: i64,
}

/// A duration as in annotations, or milliseconds (`250ms`).
fn parse_duration(text: &str) -> Result<Duration, String> {
    if let Some(millis) = text.trim().strip_suffix("ms") {
        if !millis.is_empty() && millis.bytes().all(|b| b.is_ascii_digit()) {
            return millis
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| "number too large".to_string());
        }
    }
    let seconds = duration::parse_seconds(text)
        .map_err(|err| format!("{err}; accepted forms: {}", duration::ACCEPTED_FORMS))?;
    u64::try_from(seconds)
        .map(Duration::from_secs)
        .map_err(|_| "duration cannot be negative".to_string())
}

fn parse_nonzero_duration(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        zero if zero.is_zero() => Err("must be longer than 0".to_string()),
        duration => Ok(duration),
    }
}

/// Runs the chosen command and returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Check(args) if args.cluster.cluster => Ok(check_cluster(args).await),
        Command::Check(args) => Ok(check(args)),
        Command::Rules(args) => {
            let text = if args.markdown {
                catalog::rules_markdown()
            } else {
                catalog::rules_text()
            };
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Certs(args) => certs(args),
        Command::Simulate(args) => Ok(simulate(args)),
    }
}

fn simulate(args: SimulateArgs) -> ExitCode {
    use crate::rollout::{report, scenario::Assumptions};
    let seconds = |d: Option<Duration>| d.map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
    let result = args
        .policy
        .load()
        .map_err(|err| err.to_string())
        .and_then(|loaded| {
            let inputs = check::expand(&args.paths).map_err(|err| err.to_string())?;
            let options = report::Options {
                output: args.output,
                out_dir: args.out.clone(),
                assume: Assumptions {
                    ready_after: seconds(args.ready_after),
                    shutdown: seconds(args.shutdown),
                    new_never_ready: args.never_ready,
                },
                settings: loaded.settings,
            };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            report::run(&inputs, &options, &mut std::io::stdin().lock(), &mut out)
                .map_err(|err| err.to_string())
        });
    match result {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(err) => {
            eprintln!("rollguard: {err}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn check(args: CheckArgs) -> ExitCode {
    let inputs = match check::expand(&args.paths) {
        Ok(inputs) => inputs,
        Err(err) => {
            eprintln!("rollguard: {err}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let Some(options) = check_options(&args) else {
        return ExitCode::from(EXIT_USAGE);
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match check::run(&inputs, &options, &mut std::io::stdin().lock(), &mut out) {
        Ok(summary) => ExitCode::from(summary.exit_code()),
        Err(err) => {
            eprintln!("rollguard: {err}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

async fn check_cluster(args: CheckArgs) -> ExitCode {
    use check::cluster::{ClusterOptions, Scope};
    use std::io::IsTerminal;
    let Some(options) = check_options(&args) else {
        return ExitCode::from(EXIT_USAGE);
    };
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
    let cluster = ClusterOptions {
        scope,
        page_size: flags.page_size,
        timeout: flags.timeout,
        progress: std::io::stderr().is_terminal(),
    };
    let client = match check::cluster::client(cluster.timeout).await {
        Ok(client) => client,
        Err(err) => {
            eprintln!("rollguard: {err}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let result = check::cluster::run(client, &cluster, &options, &mut out).await;
    let flushed = std::io::Write::flush(&mut out);
    match (result, flushed) {
        (Ok(summary), Ok(())) => ExitCode::from(summary.exit_code()),
        (Err(err), _) => {
            eprintln!("rollguard: {err}");
            ExitCode::from(EXIT_USAGE)
        }
        (_, Err(err)) => {
            eprintln!("rollguard: cannot write the report: {err}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// The engine's options for `check`, from files or the cluster alike.
fn check_options(args: &CheckArgs) -> Option<check::CheckOptions> {
    use std::io::IsTerminal;
    // Offline there is no cluster to ask: `auto` means the native sleep of
    // current Kubernetes; pass --prestop-handler exec for older clusters.
    let settings = match args.policy.load() {
        Ok(loaded) => loaded.settings,
        Err(err) => {
            eprintln!("rollguard: {err}");
            return None;
        }
    };
    Some(check::CheckOptions {
        mode: if args.mode == "audit" {
            Mode::Audit
        } else {
            Mode::Enforce
        },
        format: args.output,
        color: !args.no_color
            && std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none(),
        settings,
    })
}

fn certs(args: CertsArgs) -> anyhow::Result<ExitCode> {
    let request = crate::certs::CertRequest {
        service: args.service,
        namespace: args.namespace,
        valid_days: args.days,
    };
    let bundle = crate::certs::generate(&request)?;
    for path in crate::certs::write(&bundle, &request, &args.out)? {
        println!("wrote {path}");
    }
    println!("serving certificate for {}", bundle.dns_names.join(", "));
    Ok(ExitCode::SUCCESS)
}

/// The allocator reads its settings before `main`: all the server can do is
/// say when they are missing.
fn warn_unless_allocator_bounded() {
    for (name, value) in crate::ALLOCATOR_ENV {
        if std::env::var(name).ok().as_deref() != Some(value) {
            warn!(
                "{name} is not {value}: memory freed after large reviews stays with the process; \
                 set {name}={value} in the environment (the image and the shipped Deployment do)"
            );
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    warn_unless_allocator_bounded();
    let settings = match args.policy.load() {
        Ok(loaded) if loaded.auto_handler => {
            let mut settings = loaded.settings;
            settings.prestop_handler = crate::cluster_version::detect().await;
            settings
        }
        Ok(loaded) => loaded.settings,
        Err(err) => {
            error!("{err}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };

    let (certified_key, watched) = match (&args.tls_cert, &args.tls_key, args.self_signed) {
        (Some(cert), Some(key), false) => {
            let files = CertFiles {
                cert: cert.clone(),
                key: key.clone(),
            };
            match files.load() {
                Ok((key, baseline)) => (key, Some((files, baseline))),
                Err(err) => {
                    error!("{err}");
                    return Ok(ExitCode::from(EXIT_USAGE));
                }
            }
        }
        (None, None, true) => {
            warn!("serving a self-signed certificate: only clients told to trust it can connect");
            let key = tls::self_signed()
                .context("cannot create the self-signed certificate")?
                .certified_key;
            (key, None)
        }
        _ => {
            error!(
                "no TLS certificate: pass --tls-cert FILE --tls-key FILE (for example the tls.crt \
                 and tls.key of a cert-manager Secret), or --self-signed for a local test"
            );
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    let clients = match args
        .client_ca
        .as_deref()
        .map(tls::client_verifier)
        .transpose()
    {
        Ok(clients) => clients,
        Err(err) => {
            error!("{err}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    if let Some(ca) = &args.client_ca {
        info!(client_ca = %ca.display(), "admission clients must present a certificate from this CA");
    }
    let not_after = tls::expiry(&certified_key);
    let resolver = tls::CertResolver::new(certified_key);
    let tls_config = tls::server_config_with_client_auth(resolver.clone(), clients)
        .context("cannot build the TLS configuration")?;

    let state = AppState::new(PolicyConfig {
        settings,
        audit_only: args.audit,
    })
    .with_max_body_bytes(args.max_body_bytes)
    .with_request_timeout(args.request_timeout);
    if let Some(not_after) = not_after {
        state
            .metrics
            .set_certificate_expiry(not_after.unix_timestamp());
        info!(not_after = %not_after, "serving certificate loaded");
    }

    let (stop_reloading, reloading_stopped) = tokio::sync::oneshot::channel::<()>();
    let reloading = match watched {
        Some((files, baseline)) if !args.cert_reload_interval.is_zero() => {
            info!(
                cert = %files.cert.display(),
                key = %files.key.display(),
                interval_ms = u64::try_from(args.cert_reload_interval.as_millis()).unwrap_or(u64::MAX),
                "reloading the serving certificate when its files change"
            );
            let reloader = Reloader::new(files, baseline, resolver, state.metrics.clone());
            Some(tokio::spawn(reloader.run(
                args.cert_reload_interval,
                async move {
                    let _ = reloading_stopped.await;
                },
            )))
        }
        _ => None,
    };

    let options = RunOptions {
        tls_config,
        state,
        timeouts: Timeouts {
            header_read: args.header_read_timeout,
            idle: args.idle_timeout,
            shutdown_delay: args.shutdown_delay,
            drain: args.drain_timeout,
            max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
            ..Timeouts::default()
        },
    };
    let served = server::serve(args.listen, args.ops_listen, options).await;
    let _ = stop_reloading.send(());
    if let Some(reloading) = reloading {
        let _ = reloading.await;
    }
    served?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use std::path::Path;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_flags_parse() {
        let cli = Cli::try_parse_from([
            "rollguard",
            "serve",
            "--self-signed",
            "--listen",
            "127.0.0.1:9443",
            "--skip-containers",
            "envoy,vault-agent",
            "--rule",
            "readiness-missing=deny",
            "--rule",
            "rollout-fencepost=warn",
            "--shutdown-delay",
            "1m",
            "--log-format",
            "json",
        ])
        .unwrap();
        assert_eq!(cli.log_format, LogFormat::Json);
        let Command::Serve(args) = cli.command else {
            panic!("expected serve");
        };
        assert!(args.self_signed);
        assert_eq!(args.listen.port(), 9443);
        assert_eq!(args.ops_listen.port(), 8080);
        assert_eq!(
            args.policy.skip_containers.as_deref(),
            Some(&["envoy".to_string(), "vault-agent".to_string()][..])
        );
        assert_eq!(args.policy.rules.len(), 2);
        assert_eq!(args.shutdown_delay, Duration::from_secs(60));
        assert_eq!(args.max_body_bytes, 7_340_032);
        assert_eq!(args.cert_reload_interval, Duration::from_secs(10));
        assert_eq!(args.max_connections, 1024);
        assert_eq!(args.request_timeout, Duration::from_secs(30));
        assert_eq!(args.header_read_timeout, Duration::from_secs(10));
        assert_eq!(args.idle_timeout, server::DEFAULT_IDLE_TIMEOUT);
        assert_eq!(args.drain_timeout, Duration::from_secs(10));
        assert!(args.client_ca.is_none());
    }

    #[test]
    fn operational_flags_accept_milliseconds_and_reject_a_zero_cap() {
        let cli = Cli::try_parse_from([
            "rollguard",
            "serve",
            "--self-signed",
            "--cert-reload-interval",
            "100ms",
            "--header-read-timeout",
            "1s",
            "--request-timeout",
            "250ms",
            "--drain-timeout",
            "3",
            "--max-connections",
            "8",
            "--client-ca",
            "ca.crt",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("expected serve");
        };
        assert_eq!(args.cert_reload_interval, Duration::from_millis(100));
        assert_eq!(args.header_read_timeout, Duration::from_secs(1));
        assert_eq!(args.request_timeout, Duration::from_millis(250));
        assert_eq!(args.drain_timeout, Duration::from_secs(3));
        assert_eq!(args.max_connections, 8);
        assert_eq!(args.client_ca.as_deref(), Some(Path::new("ca.crt")));
        let zero = Cli::try_parse_from(["rollguard", "serve", "--max-connections", "0"]);
        assert!(zero.is_err());
        let bad = Cli::try_parse_from(["rollguard", "serve", "--request-timeout", "ms"]);
        assert!(bad.is_err());
        let instant = Cli::try_parse_from(["rollguard", "serve", "--header-read-timeout", "0"]);
        assert!(instant.is_err());
    }

    #[test]
    fn self_signed_conflicts_with_files_and_cert_needs_key() {
        let conflict = Cli::try_parse_from([
            "rollguard",
            "serve",
            "--self-signed",
            "--tls-cert",
            "a",
            "--tls-key",
            "b",
        ]);
        assert!(conflict.is_err());
        let lonely = Cli::try_parse_from(["rollguard", "serve", "--tls-cert", "a"]);
        assert!(lonely.unwrap_err().to_string().contains("--tls-key"));
        let bad_handler = Cli::try_parse_from(["rollguard", "serve", "--prestop-handler", "magic"]);
        assert!(bad_handler.is_err());
        let bad_delay = Cli::try_parse_from(["rollguard", "serve", "--shutdown-delay", "soon"]);
        assert!(bad_delay
            .unwrap_err()
            .to_string()
            .contains("accepted forms"));
    }
}
