//! `rollguard serve`: the admission webhook (HTTPS) and the ops endpoints
//! (HTTP), with the TLS material checked before anything is bound.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tracing::{info, warn};

use super::durations::{parse_duration, parse_nonzero_duration};
use super::policy::PolicyArgs;
use super::CliError;
use crate::admission::PolicyConfig;
use crate::reload::{CertFiles, Reloader};
use crate::server::{self, AppState, RunOptions, Timeouts};
use crate::tls;

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

    /// Bytes all admission request bodies buffered at once may hold
    /// together (at least --max-body-bytes). A request that finds no room
    /// within a second gets 503 with Retry-After. Memory grows with it: keep
    /// it well under the container's memory limit.
    #[arg(long, value_name = "BYTES", default_value_t = server::DEFAULT_MAX_BUFFERED_BODY_BYTES)]
    pub max_buffered_body_bytes: usize,

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

    /// A TLS handshake must complete within this (at the connection cap,
    /// connections still in their handshake are closed first).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_nonzero_duration)]
    pub tls_handshake_timeout: Duration,

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

pub(super) async fn run(args: ServeArgs) -> Result<ExitCode, CliError> {
    warn_unless_allocator_bounded();
    if args.max_buffered_body_bytes < args.max_body_bytes {
        return Err(CliError::usage(format!(
            "--max-buffered-body-bytes {} is smaller than --max-body-bytes {}: a body at the limit \
             could never be read; raise --max-buffered-body-bytes to at least {} (and the memory \
             limit with it), or lower --max-body-bytes",
            args.max_buffered_body_bytes, args.max_body_bytes, args.max_body_bytes
        )));
    }
    let loaded = args.policy.load().map_err(CliError::usage)?;
    let mut settings = loaded.settings;
    if loaded.auto_handler {
        settings.prestop_handler = crate::cluster_version::detect().await;
    }

    let (certified_key, watched) = match (&args.tls_cert, &args.tls_key, args.self_signed) {
        (Some(cert), Some(key), false) => {
            let files = CertFiles {
                cert: cert.clone(),
                key: key.clone(),
            };
            let (key, baseline) = files.load().map_err(CliError::usage)?;
            (key, Some((files, baseline)))
        }
        (None, None, true) => {
            warn!("serving a self-signed certificate: only clients told to trust it can connect");
            let key = tls::self_signed()
                .context("cannot create the self-signed certificate")?
                .certified_key;
            (key, None)
        }
        _ => {
            return Err(CliError::usage(
                "no TLS certificate: pass --tls-cert FILE --tls-key FILE (for example the tls.crt \
                 and tls.key of a cert-manager Secret), or --self-signed for a local test",
            ));
        }
    };
    let clients = args
        .client_ca
        .as_deref()
        .map(tls::client_verifier)
        .transpose()
        .map_err(CliError::usage)?;
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
    .with_max_buffered_body_bytes(args.max_buffered_body_bytes)
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
            tls_handshake: args.tls_handshake_timeout,
            header_read: args.header_read_timeout,
            idle: args.idle_timeout,
            shutdown_delay: args.shutdown_delay,
            drain: args.drain_timeout,
            max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
        },
    };
    let served = server::serve(args.listen, args.ops_listen, options).await;
    let _ = stop_reloading.send(());
    if let Some(reloading) = reloading {
        let _ = reloading.await;
    }
    served.map_err(CliError::failed)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use crate::telemetry::LogFormat;
    use clap::Parser;
    use std::path::Path;

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
