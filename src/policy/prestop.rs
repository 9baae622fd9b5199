//! `prestop-sleep` (mutation) and `prestop-exceeds-grace` (validation).
//!
//! When a pod terminates, the kubelet sends SIGTERM while endpoint removal is
//! still propagating to kube-proxy and load balancers; a preStop sleep keeps
//! the app serving until nothing routes to it any more.

use k8s_openapi::api::core::v1::LifecycleHandler;

use crate::workload::{Container, PodSpec};
use serde_json::{json, Value};

use super::{Context, Finding, Mutation};
use crate::annotations::Profile;
use crate::k8s_semantics::DEFAULT_GRACE_PERIOD_SECONDS;
use crate::path;
use crate::rules::Rule;
use crate::settings::PrestopHandler;

/// The sleep rollguard injects for this object, or None when injection is
/// disabled (`rollguard.io/prestop-sleep: 0s`) or meaningless (`pull-based`:
/// nothing routes traffic to it).
pub fn configured_sleep(ctx: &Context<'_>) -> Option<i64> {
    if ctx.declared.profile == Profile::PullBased {
        return None;
    }
    // A DaemonSet rolls node by node: a default sleep costs every node's
    // rollout the sleep, and node agents rarely sit behind a load balancer.
    // Its rollguard.io/prestop-sleep opts it in. Its pods (owned by the
    // DaemonSet) are judged the same, so they stay as their template says.
    if ctx.node_agent && ctx.declared.prestop_sleep.is_none() {
        return None;
    }
    let seconds = ctx
        .declared
        .prestop_sleep
        .unwrap_or(ctx.settings.prestop_sleep_seconds);
    (seconds > 0).then_some(seconds)
}

/// The preStop handler JSON for a sleep of `seconds`.
pub fn handler_json(handler: PrestopHandler, seconds: i64) -> Value {
    match handler {
        PrestopHandler::Sleep => json!({"sleep": {"seconds": seconds}}),
        PrestopHandler::Exec => json!({"exec": {"command": ["sleep", seconds.to_string()]}}),
    }
}

/// Injects a preStop sleep into every serving container that has none.
pub fn plan(spec: &PodSpec, ctx: &Context<'_>) -> Vec<Mutation> {
    let (Some(action), Some(seconds)) = (
        ctx.mutation_action(Rule::PrestopSleep),
        configured_sleep(ctx),
    ) else {
        return Vec::new();
    };
    spec.containers
        .iter()
        .enumerate()
        .filter(|(_, c)| super::serving::serves(c, spec, ctx))
        .filter(|(_, c)| {
            c.lifecycle
                .as_ref()
                .and_then(|l| l.pre_stop.as_ref())
                .is_none()
        })
        .map(|(index, c)| Mutation {
            rule: Rule::PrestopSleep,
            path: ctx.pod_spec_path(&path!["containers", index, "lifecycle", "preStop"]),
            field: ctx.container_field(&c.name, ".lifecycle.preStop"),
            old: None,
            new: handler_json(ctx.settings.prestop_handler, seconds),
            action,
        })
        .collect()
}

pub fn declares_ports(container: &Container) -> bool {
    container
        .ports
        .as_ref()
        .is_some_and(|ports| !ports.is_empty())
}

/// Seconds a preStop handler sleeps: the native `sleep` action, or an exec of
/// `sleep N` directly or through `sh -c`.
pub fn handler_sleep_seconds(handler: &LifecycleHandler) -> Option<i64> {
    if let Some(sleep) = &handler.sleep {
        return Some(sleep.seconds);
    }
    let command = handler.exec.as_ref()?.command.as_ref()?;
    match command.as_slice() {
        [program, seconds] if is_program(program, "sleep") => parse_sleep_argument(seconds),
        [shell, flag, script] if is_shell(shell) && flag == "-c" => {
            let rest = script.trim().strip_prefix("sleep ")?.trim_start();
            let argument: String = rest
                .chars()
                .take_while(|c| !matches!(c, ';' | '&' | ' ' | '|'))
                .collect();
            parse_sleep_argument(&argument)
        }
        _ => None,
    }
}

fn is_program(path: &str, name: &str) -> bool {
    path == name || path.ends_with(&format!("/{name}"))
}

fn is_shell(path: &str) -> bool {
    ["sh", "bash", "ash", "dash"]
        .iter()
        .any(|shell| is_program(path, shell))
}

/// `10` or `10s`, as coreutils and busybox sleep accept.
fn parse_sleep_argument(text: &str) -> Option<i64> {
    text.trim().trim_end_matches('s').parse::<i64>().ok()
}

/// The preStop sleep of a container, if it has one rollguard can read.
pub fn container_sleep(container: &Container) -> Option<i64> {
    handler_sleep_seconds(container.lifecycle.as_ref()?.pre_stop.as_ref()?)
}

/// The longest preStop sleep among the (non-init) containers.
pub fn longest_sleep(spec: &PodSpec) -> i64 {
    spec.containers
        .iter()
        .filter_map(container_sleep)
        .max()
        .unwrap_or(0)
}

/// `prestop-exceeds-grace`: a sleep as long as the grace period leaves the app
/// no time to stop after SIGTERM.
pub fn check(spec: &PodSpec, ctx: &Context<'_>) -> Vec<Finding> {
    let grace = grace_seconds(spec);
    spec.containers
        .iter()
        .filter_map(|c| container_sleep(c).map(|sleep| (c, sleep)))
        .filter(|(_, sleep)| *sleep >= grace)
        .map(|(c, sleep)| {
            Finding::new(
                Rule::PrestopExceedsGrace,
                ctx.container_field(&c.name, ".lifecycle.preStop"),
                format!("sleep {sleep}s >= grace {grace}s: no time to stop after SIGTERM"),
            )
        })
        .collect()
}

/// The part of `prestop-exceeds-grace` the API server refuses itself, before
/// any validating webhook: a native `sleep.seconds` above the grace period
/// (`validateSleepAction` in pkg/apis/core/validation compares
/// `sleep.Seconds > gracePeriod`; an equal sleep and exec sleeps pass). That
/// much `/mutate` denies; the rest waits for `/validate`.
pub fn check_refused_by_api_server(spec: &PodSpec, ctx: &Context<'_>) -> Vec<Finding> {
    let grace = grace_seconds(spec);
    spec.containers
        .iter()
        .filter_map(|c| {
            let handler = c.lifecycle.as_ref()?.pre_stop.as_ref()?;
            Some((c, handler.sleep.as_ref()?.seconds))
        })
        .filter(|(_, sleep)| *sleep > grace)
        .map(|(c, sleep)| {
            Finding::new(
                Rule::PrestopExceedsGrace,
                ctx.container_field(&c.name, ".lifecycle.preStop.sleep.seconds"),
                format!("sleep {sleep}s > grace {grace}s: the API server refuses it"),
            )
        })
        .collect()
}

fn grace_seconds(spec: &PodSpec) -> i64 {
    spec.termination_grace_period_seconds
        .unwrap_or(DEFAULT_GRACE_PERIOD_SECONDS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(command: &[&str]) -> LifecycleHandler {
        serde_json::from_value(json!({"exec": {"command": command}})).unwrap()
    }

    #[test]
    fn reads_native_and_exec_sleeps() {
        let native: LifecycleHandler =
            serde_json::from_value(json!({"sleep": {"seconds": 7}})).unwrap();
        assert_eq!(handler_sleep_seconds(&native), Some(7));
        assert_eq!(handler_sleep_seconds(&exec(&["sleep", "15"])), Some(15));
        assert_eq!(
            handler_sleep_seconds(&exec(&["/bin/sleep", "15s"])),
            Some(15)
        );
        assert_eq!(
            handler_sleep_seconds(&exec(&["sh", "-c", "sleep 20"])),
            Some(20)
        );
        assert_eq!(
            handler_sleep_seconds(&exec(&["/bin/sh", "-c", "sleep 20; nginx -s quit"])),
            Some(20)
        );
        assert_eq!(handler_sleep_seconds(&exec(&["nginx", "-s", "quit"])), None);
        assert_eq!(
            handler_sleep_seconds(&exec(&["sh", "-c", "echo sleep 5"])),
            None
        );
        assert_eq!(handler_sleep_seconds(&exec(&["sleep", "infinity"])), None);
    }

    #[test]
    fn handler_json_follows_the_configured_handler() {
        assert_eq!(
            handler_json(PrestopHandler::Sleep, 10),
            json!({"sleep": {"seconds": 10}})
        );
        assert_eq!(
            handler_json(PrestopHandler::Exec, 10),
            json!({"exec": {"command": ["sleep", "10"]}})
        );
    }
}
