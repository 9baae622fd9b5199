//! Loading the policy settings: an optional YAML file, then command-line flags
//! on top. Invalid configuration stops start-up with a message naming the key.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use thiserror::Error;

use crate::duration;
use crate::rules::{Action, Rule};
use crate::settings::{PrestopHandler, Settings};

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("configuration file {path} is not valid: {message}")]
    Parse { path: String, message: String },
    #[error("configuration key `{key}` has an invalid value {value:?}: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
}

/// The YAML configuration file, as users write it (`rollguard.yaml`):
///
/// ```yaml
/// prestopSleep: 10s
/// shutdownBuffer: 5s
/// skipContainers: [istio-proxy, linkerd-proxy]
/// prestopHandler: sleep
/// rules:
///   readiness-missing: deny
///   rollout-fencepost: warn
/// ```
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigFile {
    pub prestop_sleep: Option<String>,
    pub shutdown_buffer: Option<String>,
    pub skip_containers: Option<Vec<String>>,
    pub prestop_handler: Option<String>,
    #[serde(default)]
    pub rules: BTreeMap<String, String>,
}

/// Values given on the command line; each wins over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub prestop_sleep: Option<String>,
    pub shutdown_buffer: Option<String>,
    pub skip_containers: Option<Vec<String>>,
    pub prestop_handler: Option<String>,
    /// `rule=action` pairs.
    pub rule_actions: Vec<String>,
}

/// Settings as loaded, and whether the preStop handler is still to be chosen
/// from the cluster's version.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub settings: Settings,
    pub auto_handler: bool,
}

/// Reads the file (if any) and applies the overrides on top of the defaults.
pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Loaded, ConfigError> {
    let file = match path {
        None => ConfigFile::default(),
        Some(path) => {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: shown.clone(),
                source,
            })?;
            parse_file(&text).map_err(|message| ConfigError::Parse {
                path: shown,
                message,
            })?
        }
    };
    Ok(Loaded {
        settings: resolve(&file, overrides)?,
        auto_handler: handler_is_auto(&file, overrides),
    })
}

/// Parses the YAML text of a configuration file.
pub fn parse_file(text: &str) -> Result<ConfigFile, String> {
    if text.trim().is_empty() {
        return Ok(ConfigFile::default());
    }
    serde_saphyr::from_str::<ConfigFile>(text).map_err(|err| err.to_string())
}

/// `prestopHandler: auto`: choose from the API server's version at start-up.
pub const AUTO: &str = "auto";

/// Every value of `prestopHandler` and `--prestop-handler`: auto, then each handler.
pub fn handler_values() -> impl Iterator<Item = &'static str> {
    std::iter::once(AUTO).chain(PrestopHandler::ALL.map(PrestopHandler::label))
}

fn effective_handler<'a>(file: &'a ConfigFile, overrides: &'a Overrides) -> Option<&'a str> {
    overrides
        .prestop_handler
        .as_deref()
        .or(file.prestop_handler.as_deref())
}

/// True when the preStop handler is `auto` or not configured at all: the
/// server then asks the API server (`rollguard check` assumes `sleep`).
pub fn handler_is_auto(file: &ConfigFile, overrides: &Overrides) -> bool {
    effective_handler(file, overrides).is_none_or(|text| text == AUTO)
}

/// Merges file values and overrides into settings, validating each key.
pub fn resolve(file: &ConfigFile, overrides: &Overrides) -> Result<Settings, ConfigError> {
    let mut settings = Settings::default();
    if let Some(text) = overrides
        .prestop_sleep
        .as_ref()
        .or(file.prestop_sleep.as_ref())
    {
        settings.prestop_sleep_seconds = seconds("prestopSleep", text)?;
    }
    if let Some(text) = overrides
        .shutdown_buffer
        .as_ref()
        .or(file.shutdown_buffer.as_ref())
    {
        settings.shutdown_buffer_seconds = seconds("shutdownBuffer", text)?;
    }
    if let Some(list) = overrides
        .skip_containers
        .as_ref()
        .or(file.skip_containers.as_ref())
    {
        if let Some(empty) = list.iter().find(|name| name.trim().is_empty()) {
            return Err(invalid(
                "skipContainers",
                empty,
                "container names cannot be empty",
            ));
        }
        settings.skip_containers = list.clone();
    }
    if let Some(text) = effective_handler(file, overrides).filter(|t| *t != AUTO) {
        settings.prestop_handler = text
            .parse::<PrestopHandler>()
            .map_err(|reason| invalid("prestopHandler", text, &format!("{reason}, {AUTO}")))?;
    }
    for (rule, action) in &file.rules {
        set_rule_action(&mut settings, &format!("rules.{rule}"), rule, action)?;
    }
    for pair in &overrides.rule_actions {
        let Some((rule, action)) = pair.split_once('=') else {
            return Err(invalid(
                "--rule",
                pair,
                "expected RULE=ACTION, for example readiness-missing=deny",
            ));
        };
        set_rule_action(&mut settings, "--rule", rule.trim(), action.trim())?;
    }
    Ok(settings)
}

fn set_rule_action(
    settings: &mut Settings,
    key: &str,
    rule: &str,
    action: &str,
) -> Result<(), ConfigError> {
    let parsed_rule = rule
        .parse::<Rule>()
        .map_err(|reason| invalid(key, rule, &reason))?;
    let parsed_action = action
        .parse::<Action>()
        .map_err(|reason| invalid(key, action, &reason))?;
    parsed_rule
        .accepts(parsed_action)
        .map_err(|reason| invalid(key, action, &reason))?;
    settings.rule_actions.insert(parsed_rule, parsed_action);
    Ok(())
}

fn seconds(key: &str, text: &str) -> Result<i64, ConfigError> {
    duration::parse_seconds(text).map_err(|err| {
        invalid(
            key,
            text,
            &format!("{err}; accepted forms: {}", duration::ACCEPTED_FORMS),
        )
    })
}

fn invalid(key: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_configuration_gives_the_documented_defaults() {
        let settings = resolve(&parse_file("").unwrap(), &Overrides::default()).unwrap();
        assert_eq!(settings, Settings::default());
        assert_eq!(settings.prestop_sleep_seconds, 10);
        assert_eq!(settings.shutdown_buffer_seconds, 5);
        assert_eq!(settings.skip_containers, ["istio-proxy", "linkerd-proxy"]);
    }

    #[test]
    fn file_values_apply_and_flags_win_over_them() {
        let file = parse_file(
            "prestopSleep: 15s\nshutdownBuffer: 1m\nprestopHandler: exec\nskipContainers: [envoy]\nrules:\n  readiness-missing: deny\n",
        )
        .unwrap();
        let overrides = Overrides {
            prestop_sleep: Some("20".into()),
            rule_actions: vec!["rollout-fencepost=warn".into()],
            ..Overrides::default()
        };
        let settings = resolve(&file, &overrides).unwrap();
        assert_eq!(settings.prestop_sleep_seconds, 20);
        assert_eq!(settings.shutdown_buffer_seconds, 60);
        assert_eq!(settings.prestop_handler, PrestopHandler::Exec);
        assert_eq!(settings.skip_containers, ["envoy"]);
        assert_eq!(settings.action(Rule::ReadinessMissing), Action::Deny);
        assert_eq!(settings.action(Rule::RolloutFencepost), Action::Warn);
        assert_eq!(settings.action(Rule::StatefulParallel), Action::Deny);
    }

    #[test]
    fn the_handler_is_auto_unless_set_to_sleep_or_exec() {
        let unset = ConfigFile::default();
        assert!(handler_is_auto(&unset, &Overrides::default()));
        let auto = parse_file("prestopHandler: auto\n").unwrap();
        assert!(handler_is_auto(&auto, &Overrides::default()));
        assert_eq!(
            resolve(&auto, &Overrides::default())
                .unwrap()
                .prestop_handler,
            PrestopHandler::Sleep
        );
        let flag = Overrides {
            prestop_handler: Some("exec".into()),
            ..Overrides::default()
        };
        assert!(!handler_is_auto(&auto, &flag));
        assert_eq!(
            resolve(&auto, &flag).unwrap().prestop_handler,
            PrestopHandler::Exec
        );
    }

    #[test]
    fn unknown_keys_are_named_in_the_error() {
        let err = parse_file("prestopSleeps: 10s\n").unwrap_err();
        assert!(err.contains("prestopSleeps"), "{err}");
    }

    #[test]
    fn invalid_values_name_the_key_and_the_fix() {
        let cases = [
            ("prestopSleep: ten\n", "prestopSleep"),
            ("prestopHandler: auto-magic\n", "prestopHandler"),
            ("rules:\n  no-such-rule: deny\n", "rules.no-such-rule"),
            (
                "rules:\n  readiness-missing: maybe\n",
                "rules.readiness-missing",
            ),
            ("rules:\n  prestop-sleep: deny\n", "rules.prestop-sleep"),
        ];
        for (text, key) in cases {
            let file = parse_file(text).unwrap();
            let err = resolve(&file, &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("`{key}`")), "{text}: {err}");
            assert!(
                err.contains("accepted") || err.contains("known rules"),
                "{err}"
            );
        }
        let overrides = Overrides {
            rule_actions: vec!["readiness-missing".into()],
            ..Overrides::default()
        };
        let err = resolve(&ConfigFile::default(), &overrides).unwrap_err();
        assert!(err.to_string().contains("RULE=ACTION"), "{err}");
    }
}
