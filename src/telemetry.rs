//! Logging set-up: human text or one JSON object per line, filtered by
//! `RUST_LOG` (default `info`). Logs go to stderr so that stdout stays free
//! for command output.

use std::io::IsTerminal;

use thiserror::Error;
use tracing_subscriber::filter::{EnvFilter, LevelFilter};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Debug, Error)]
pub enum TelemetryError {
    #[error("RUST_LOG is not a valid log filter: {0} (example: RUST_LOG=info,rollguard=debug)")]
    Filter(String),
    #[error("cannot install the logger: {0}")]
    Install(String),
}

/// Installs the global subscriber. Fails on an invalid `RUST_LOG` rather than
/// silently logging at another level than the one asked for.
pub fn init(format: LogFormat) -> Result<(), TelemetryError> {
    init_with_default(format, "info")
}

/// As [`init`], with these directives when `RUST_LOG` is not set (a command
/// can keep a library's own log lines off a person's terminal).
pub fn init_with_default(format: LogFormat, default: &str) -> Result<(), TelemetryError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(_) => EnvFilter::builder()
            .with_default_directive(LevelFilter::INFO.into())
            .from_env()
            .map_err(|err| TelemetryError::Filter(err.to_string()))?,
        Err(_) => EnvFilter::builder()
            .parse(default)
            .map_err(|err| TelemetryError::Filter(err.to_string()))?,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
    installed.map_err(|err| TelemetryError::Install(err.to_string()))
}
