//! `readiness-probe` (mutation), `readiness-missing` and
//! `readiness-is-liveness` (validations).
//!
//! Without a readiness probe a pod is Ready as soon as its containers start,
//! so a rollout sends traffic to (and deletes old pods for) pods that cannot
//! serve yet.

use crate::workload::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{json, Value};

use super::{serving, Context, Finding, Mutation};
use crate::annotations::Profile;
use crate::path;
use crate::rules::Rule;

/// Injects a readiness probe into the containers that should have one.
pub fn plan(spec: &PodSpec, ctx: &Context<'_>) -> Vec<Mutation> {
    let Some(action) = ctx.mutation_action(Rule::ReadinessProbe) else {
        return Vec::new();
    };
    let declared = ctx.declared;
    // A pull-based workload serves nothing: guessing a probe from a metrics
    // port would only restart healthy consumers. Its annotations opt it in.
    if declared.profile == Profile::PullBased && !declared.has_readiness_settings() {
        return Vec::new();
    }
    let candidates: Vec<(usize, &Container)> = spec
        .containers
        .iter()
        .enumerate()
        .filter(|(_, c)| c.readiness_probe.is_none() && !serving::skipped(c, ctx))
        .collect();
    let targets: Vec<(usize, &Container)> = match &declared.readiness_port {
        Some(port) => {
            let declaring: Vec<_> = candidates
                .iter()
                .copied()
                .filter(|(_, c)| container_declares(c, port))
                .collect();
            let anyone_declares = spec.containers.iter().any(|c| container_declares(c, port));
            if declaring.is_empty() && !anyone_declares {
                candidates.into_iter().take(1).collect()
            } else {
                declaring
            }
        }
        // Only a TCP port can answer a tcpSocket or httpGet probe: a probe on
        // a UDP port (jaeger-agent's 6831/UDP) keeps the pod unready forever.
        None => candidates
            .into_iter()
            .filter(|(_, c)| first_tcp_port(c).is_some() && serving::serves(c, spec, ctx))
            .collect(),
    };
    targets
        .into_iter()
        .filter_map(|(index, c)| {
            let port = declared
                .readiness_port
                .clone()
                .or_else(|| first_tcp_port(c))?;
            Some(Mutation {
                rule: Rule::ReadinessProbe,
                path: ctx.pod_spec_path(&path!["containers", index, "readinessProbe"]),
                field: ctx.container_field(&c.name, ".readinessProbe"),
                old: None,
                new: probe_json(declared.readiness_path.as_deref(), &port),
                action,
            })
        })
        .collect()
}

/// The first declared TCP port, by name when it has one (renumbering the port
/// then keeps the probe right). A port without `protocol` is TCP.
fn first_tcp_port(container: &Container) -> Option<IntOrString> {
    let port = container
        .ports
        .iter()
        .flatten()
        .find(|p| p.protocol.as_deref().is_none_or(|proto| proto == "TCP"))?;
    Some(match &port.name {
        Some(name) if !name.is_empty() => IntOrString::String(name.clone()),
        _ => IntOrString::Int(port.container_port),
    })
}

/// The problem with `rollguard.io/readiness-port` naming a port no container
/// declares: the kubelet cannot resolve the probe's port and the pod never
/// becomes Ready. A number needs no declaration (a container may listen on
/// a port it does not list).
pub fn undeclared_port(spec: &PodSpec, port: &IntOrString) -> Option<String> {
    let IntOrString::String(name) = port else {
        return None;
    };
    if spec.containers.iter().any(|c| container_declares(c, port)) {
        return None;
    }
    let names: Vec<&str> = spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| p.name.as_deref())
        .collect();
    let existing = if names.is_empty() {
        "no container declares a named port".to_string()
    } else {
        format!("declared port names are {}", names.join(", "))
    };
    Some(format!(
        "no container declares a port named {name}; {existing}: name one of them or give a number"
    ))
}

fn container_declares(container: &Container, port: &IntOrString) -> bool {
    container.ports.iter().flatten().any(|p| match port {
        IntOrString::Int(number) => p.container_port == *number,
        IntOrString::String(name) => p.name.as_deref() == Some(name.as_str()),
    })
}

fn probe_json(path: Option<&str>, port: &IntOrString) -> Value {
    let port = match port {
        IntOrString::Int(n) => json!(n),
        IntOrString::String(s) => json!(s),
    };
    match path {
        Some(path) => json!({"httpGet": {"path": path, "port": port}}),
        None => json!({"tcpSocket": {"port": port}}),
    }
}

pub fn check(spec: &PodSpec, ctx: &Context<'_>) -> Vec<Finding> {
    let mut found = Vec::new();
    for c in &spec.containers {
        if ctx.declared.profile == Profile::Serving
            && first_tcp_port(c).is_some()
            && c.readiness_probe.is_none()
            && serving::serves(c, spec, ctx)
        {
            found.push(Finding::new(
                Rule::ReadinessMissing,
                ctx.container_field(&c.name, ".readinessProbe"),
                format!(
                    "container {} declares a TCP port but has no readinessProbe",
                    c.name
                ),
            ));
        }
        if let (Some(readiness), Some(liveness)) = (&c.readiness_probe, &c.liveness_probe) {
            if readiness == liveness {
                found.push(Finding::new(
                    Rule::ReadinessIsLiveness,
                    ctx.container_field(&c.name, ".livenessProbe"),
                    format!(
                        "container {} has identical readiness and liveness probes",
                        c.name
                    ),
                ));
            }
        }
    }
    found
}
