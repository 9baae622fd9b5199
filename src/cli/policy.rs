//! The policy flags shared by `serve`, `check` and `simulate`: a
//! configuration file and the flags that win over it.

use std::path::PathBuf;

use clap::builder::PossibleValuesParser;
use clap::Args;

use crate::config::{self, Overrides};

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
    #[arg(long, value_name = "HANDLER", value_parser = PossibleValuesParser::new(config::handler_values()))]
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
