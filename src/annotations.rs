//! The annotation contract: what users write on a workload, its pod template
//! or a pod, read into typed declarations. The workload's own annotation wins
//! over the template's. Anything under `rollguard.io/` that cannot be read is
//! a problem to report, never silently ignored.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::duration;
use crate::rules::{known_rule_names, Rule};

pub const PREFIX: &str = "rollguard.io/";
pub const PROFILE: &str = "rollguard.io/profile";
pub const SHUTDOWN_TIMEOUT: &str = "rollguard.io/shutdown-timeout";
pub const PRESTOP_SLEEP: &str = "rollguard.io/prestop-sleep";
pub const WARMUP: &str = "rollguard.io/warmup";
pub const READINESS_PATH: &str = "rollguard.io/readiness-path";
pub const READINESS_PORT: &str = "rollguard.io/readiness-port";
pub const WAIVE: &str = "rollguard.io/waive";
pub const MODE: &str = "rollguard.io/mode";
/// Written by rollguard: the rules that changed the object.
pub const MUTATED: &str = "rollguard.io/mutated";

/// The settings users may write; copied to pod templates on mutation.
pub const SETTINGS_KEYS: [&str; 8] = [
    PROFILE,
    SHUTDOWN_TIMEOUT,
    PRESTOP_SLEEP,
    WARMUP,
    READINESS_PATH,
    READINESS_PORT,
    WAIVE,
    MODE,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    #[default]
    Serving,
    Stateful,
    PullBased,
}

impl Profile {
    pub const ALL: [Profile; 3] = [Profile::Serving, Profile::Stateful, Profile::PullBased];

    /// The value of `rollguard.io/profile`.
    pub fn label(self) -> &'static str {
        match self {
            Profile::Serving => "serving",
            Profile::Stateful => "stateful",
            Profile::PullBased => "pull-based",
        }
    }
}

impl FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::label::parse(&Profile::ALL, Profile::label, s).ok_or_else(|| {
            format!(
                "accepted values are {}",
                crate::label::list(&Profile::ALL, Profile::label)
            )
        })
    }
}

/// The mode an object may lower itself to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectMode {
    Audit,
    Off,
}

impl ObjectMode {
    pub const ALL: [ObjectMode; 2] = [ObjectMode::Audit, ObjectMode::Off];

    /// The value of `rollguard.io/mode` (also the namespace label's).
    pub fn label(self) -> &'static str {
        match self {
            ObjectMode::Audit => "audit",
            ObjectMode::Off => "off",
        }
    }
}

impl FromStr for ObjectMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::label::parse(&ObjectMode::ALL, ObjectMode::label, s).ok_or_else(|| {
            format!(
                "accepted values are {} (an object can only lower its namespace's mode)",
                crate::label::list(&ObjectMode::ALL, ObjectMode::label)
            )
        })
    }
}

/// Where an effective annotation was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Object,
    Template,
}

/// One `rollguard.io/*` annotation in force, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub value: String,
    pub origin: Origin,
}

/// The `rollguard.io/*` annotations in force: the template's, overridden by
/// the object's own. `rollguard.io/mutated` is rollguard's record, not a
/// setting, and is left out.
pub fn effective(
    object: &BTreeMap<String, String>,
    template: &BTreeMap<String, String>,
) -> BTreeMap<String, Setting> {
    let mut merged = BTreeMap::new();
    for (source, origin) in [(template, Origin::Template), (object, Origin::Object)] {
        for (key, value) in source {
            if key.starts_with(PREFIX) && key != MUTATED {
                merged.insert(
                    key.clone(),
                    Setting {
                        value: value.clone(),
                        origin,
                    },
                );
            }
        }
    }
    merged
}

/// What the annotations declare, with defaults for what they do not.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Declared {
    pub profile: Profile,
    pub shutdown_timeout: Option<i64>,
    pub prestop_sleep: Option<i64>,
    pub warmup: Option<i64>,
    pub readiness_path: Option<String>,
    pub readiness_port: Option<IntOrString>,
    pub waive: BTreeSet<Rule>,
    pub mode: Option<ObjectMode>,
}

impl Declared {
    pub fn has_readiness_settings(&self) -> bool {
        self.readiness_path.is_some() || self.readiness_port.is_some()
    }
}

/// An annotation rollguard cannot read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub value: String,
    pub origin: Origin,
    pub reason: String,
}

/// Reads the effective annotations. Each unreadable one is a problem and
/// keeps its default, so one typo never hides the others.
pub fn parse(settings: &BTreeMap<String, Setting>) -> (Declared, Vec<Problem>) {
    let mut declared = Declared::default();
    let mut problems = Vec::new();
    for (key, setting) in settings {
        let value = setting.value.as_str();
        let result = match key.as_str() {
            PROFILE => value.trim().parse().map(|p| declared.profile = p),
            SHUTDOWN_TIMEOUT => parse_duration(value).map(|s| declared.shutdown_timeout = Some(s)),
            PRESTOP_SLEEP => parse_duration(value).map(|s| declared.prestop_sleep = Some(s)),
            WARMUP => parse_duration(value).map(|s| declared.warmup = Some(s)),
            READINESS_PATH => parse_path(value).map(|p| declared.readiness_path = Some(p)),
            READINESS_PORT => parse_port(value).map(|p| declared.readiness_port = Some(p)),
            WAIVE => parse_waive(value).map(|w| declared.waive = w),
            MODE => value.trim().parse().map(|m| declared.mode = Some(m)),
            _ => Err(format!(
                "unknown rollguard annotation; known keys are {}",
                SETTINGS_KEYS.join(", ")
            )),
        };
        if let Err(reason) = result {
            problems.push(Problem {
                key: key.clone(),
                value: value.to_string(),
                origin: setting.origin,
                reason,
            });
        }
    }
    (declared, problems)
}

fn parse_duration(value: &str) -> Result<i64, String> {
    duration::parse_seconds(value)
        .map_err(|err| format!("{err}; accepted forms are {}", duration::ACCEPTED_FORMS))
}

fn parse_path(value: &str) -> Result<String, String> {
    let path = value.trim();
    if path.starts_with('/') && !path.chars().any(char::is_whitespace) {
        Ok(path.to_string())
    } else {
        Err("accepted values are an HTTP path starting with /, such as /ready".to_string())
    }
}

/// A port number (1-65535) or an IANA service name, as a probe port accepts.
fn parse_port(value: &str) -> Result<IntOrString, String> {
    let value = value.trim();
    let accepted = "accepted values are a port number 1-65535 or a container port name \
                    (lower-case letters, digits and '-', at most 15 characters)";
    if value.bytes().all(|b| b.is_ascii_digit()) && !value.is_empty() {
        return match value.parse::<i32>() {
            Ok(port) if (1..=65535).contains(&port) => Ok(IntOrString::Int(port)),
            _ => Err(accepted.to_string()),
        };
    }
    let valid_name = !value.is_empty()
        && value.len() <= 15
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && value.bytes().any(|b| b.is_ascii_lowercase())
        && !value.starts_with('-')
        && !value.ends_with('-')
        && !value.contains("--");
    if valid_name {
        Ok(IntOrString::String(value.to_string()))
    } else {
        Err(accepted.to_string())
    }
}

fn parse_waive(value: &str) -> Result<BTreeSet<Rule>, String> {
    let mut rules = BTreeSet::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let rule = name.parse::<Rule>().map_err(|_| {
            format!(
                "{name:?} is not a rule; known rules are {}",
                known_rule_names()
            )
        })?;
        if rule == Rule::InvalidAnnotation {
            return Err(
                "invalid-annotation cannot be waived: fix the annotation instead".to_string(),
            );
        }
        rules.insert(rule);
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn workload_annotation_wins_over_template() {
        let object = map(&[(PROFILE, "stateful")]);
        let template = map(&[(PROFILE, "pull-based"), (WARMUP, "3s"), ("other.io/x", "y")]);
        let merged = effective(&object, &template);
        assert_eq!(merged[PROFILE].value, "stateful");
        assert_eq!(merged[PROFILE].origin, Origin::Object);
        assert_eq!(merged[WARMUP].origin, Origin::Template);
        assert!(!merged.contains_key("other.io/x"));
        let (declared, problems) = parse(&merged);
        assert!(problems.is_empty());
        assert_eq!(declared.profile, Profile::Stateful);
        assert_eq!(declared.warmup, Some(3));
    }

    #[test]
    fn every_setting_is_read() {
        let merged = effective(
            &map(&[
                (PROFILE, "pull-based"),
                (SHUTDOWN_TIMEOUT, "1m30s"),
                (PRESTOP_SLEEP, "0s"),
                (WARMUP, "40"),
                (READINESS_PATH, "/ready"),
                (READINESS_PORT, "http"),
                (WAIVE, "rollout-fencepost, stateful-parallel"),
                (MODE, "audit"),
                (MUTATED, "whatever"),
            ]),
            &BTreeMap::new(),
        );
        let (declared, problems) = parse(&merged);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            declared,
            Declared {
                profile: Profile::PullBased,
                shutdown_timeout: Some(90),
                prestop_sleep: Some(0),
                warmup: Some(40),
                readiness_path: Some("/ready".into()),
                readiness_port: Some(IntOrString::String("http".into())),
                waive: [Rule::RolloutFencepost, Rule::StatefulParallel].into(),
                mode: Some(ObjectMode::Audit),
            }
        );
    }

    #[test]
    fn profile_and_mode_labels_round_trip() {
        for profile in Profile::ALL {
            assert_eq!(profile.label().parse::<Profile>(), Ok(profile));
        }
        for mode in ObjectMode::ALL {
            assert_eq!(mode.label().parse::<ObjectMode>(), Ok(mode));
        }
    }

    #[test]
    fn malformed_and_unknown_values_are_problems_naming_the_accepted_forms() {
        let cases = [
            (PROFILE, "stateless", "serving, stateful, pull-based"),
            (SHUTDOWN_TIMEOUT, "forty minutes", "1m30s"),
            (PRESTOP_SLEEP, "-1", "1m30s"),
            (WARMUP, "3ms", "1m30s"),
            (READINESS_PATH, "ready", "starting with /"),
            (READINESS_PORT, "70000", "1-65535"),
            (READINESS_PORT, "HTTP", "port name"),
            (WAIVE, "rollout-fencepost,nope", "known rules"),
            (WAIVE, "invalid-annotation", "cannot be waived"),
            (MODE, "enforce", "only lower"),
            ("rollguard.io/shutdown-timout", "20s", "known keys"),
        ];
        for (key, value, hint) in cases {
            let (_, problems) = parse(&effective(&map(&[(key, value)]), &BTreeMap::new()));
            assert_eq!(problems.len(), 1, "{key}={value}");
            assert!(
                problems[0].reason.contains(hint),
                "{key}={value}: {}",
                problems[0].reason
            );
            assert_eq!(problems[0].key, key);
            assert_eq!(problems[0].value, value);
        }
    }
}
