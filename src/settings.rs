//! The server-wide policy settings the engine reads: defaults that annotations
//! can override, the sidecars to leave alone, the preStop handler, and the
//! action of every rule. Plain data; loading it from files and flags lives in
//! `config`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::rules::{Action, Rule};

/// How an injected preStop hook sleeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrestopHandler {
    /// The native `lifecycle.preStop.sleep` action (Kubernetes >= 1.30).
    Sleep,
    /// `exec: ["sleep", "N"]`, for older clusters (needs `sleep` in the image).
    Exec,
}

impl PrestopHandler {
    pub const ALL: [PrestopHandler; 2] = [PrestopHandler::Sleep, PrestopHandler::Exec];

    /// The word in configuration and `--prestop-handler`.
    pub fn label(self) -> &'static str {
        match self {
            PrestopHandler::Sleep => "sleep",
            PrestopHandler::Exec => "exec",
        }
    }
}

impl FromStr for PrestopHandler {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::label::parse(&PrestopHandler::ALL, PrestopHandler::label, s).ok_or_else(|| {
            format!(
                "unknown preStop handler {s:?}: accepted values are {}",
                crate::label::list(&PrestopHandler::ALL, PrestopHandler::label)
            )
        })
    }
}

impl fmt::Display for PrestopHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// preStop sleep injected when the workload does not declare one.
    pub prestop_sleep_seconds: i64,
    /// Added to preStop sleep + shutdown-timeout for the grace period.
    pub shutdown_buffer_seconds: i64,
    /// Containers (by name) that never get a preStop hook or readiness probe.
    pub skip_containers: Vec<String>,
    pub prestop_handler: PrestopHandler,
    /// Actions that differ from each rule's default.
    pub rule_actions: BTreeMap<Rule, Action>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            prestop_sleep_seconds: 10,
            shutdown_buffer_seconds: 5,
            skip_containers: vec!["istio-proxy".to_string(), "linkerd-proxy".to_string()],
            prestop_handler: PrestopHandler::Sleep,
            rule_actions: BTreeMap::new(),
        }
    }
}

impl Settings {
    /// The configured action of a rule, or its default.
    pub fn action(&self, rule: Rule) -> Action {
        self.rule_actions
            .get(&rule)
            .copied()
            .unwrap_or_else(|| rule.default_action())
    }

    /// True when the skip list names the container or its image: an entry
    /// matches the name, or the image's last path segment without tag or
    /// digest (`envoy` matches `docker.io/envoyproxy/envoy:v1.31`).
    pub fn is_skipped_container(&self, name: &str, image: Option<&str>) -> bool {
        let image = image.map(image_name);
        self.skip_containers
            .iter()
            .any(|skip| skip == name || image == Some(skip.as_str()))
    }
}

/// `registry:5000/org/envoy:v1@sha256:…` → `envoy`.
pub fn image_name(image: &str) -> &str {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last.split(':').next().unwrap_or(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_list_matches_name_or_image() {
        assert_eq!(
            image_name("docker.io/envoyproxy/envoy:v1.31@sha256:ab"),
            "envoy"
        );
        assert_eq!(image_name("registry:5000/envoy"), "envoy");
        let settings = Settings {
            skip_containers: vec!["envoy".into()],
            ..Settings::default()
        };
        assert!(settings.is_skipped_container("envoy", None));
        assert!(settings.is_skipped_container("proxy", Some("envoyproxy/envoy:v1.31")));
        assert!(!settings.is_skipped_container("proxy", Some("envoyproxy/envoy-gateway:v1")));
    }
}
