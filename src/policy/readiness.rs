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
            match port {
                // A named port nobody declares can never be probed: `check`
                // refuses the annotation instead.
                IntOrString::String(_) if !anyone_declares => Vec::new(),
                // A number need not be declared to be listened on.
                IntOrString::Int(_) if !anyone_declares => candidates.into_iter().take(1).collect(),
                _ => declaring,
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

fn container_declares(container: &Container, port: &IntOrString) -> bool {
    container.ports.iter().flatten().any(|p| match port {
        IntOrString::Int(number) => p.container_port == *number,
        IntOrString::String(name) => p.name.as_deref() == Some(name.as_str()),
    })
}

/// Ports a message lists before "and N more": enough to spot a misspelt
/// name, and a message stays short whatever the object declares.
const PORTS_NAMED_IN_MESSAGES: usize = 5;

/// `rollguard.io/readiness-port` names a port no container declares: the
/// kubelet resolves a probe's named port from the container's own ports, so
/// the pod would never become Ready.
fn undeclared_port(spec: &PodSpec, name: &str) -> Finding {
    let mut ports = spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten());
    let shown: Vec<String> = ports
        .by_ref()
        .take(PORTS_NAMED_IN_MESSAGES)
        .map(|p| match &p.name {
            Some(port_name) if !port_name.is_empty() => {
                format!("{port_name} ({})", p.container_port)
            }
            _ => p.container_port.to_string(),
        })
        .collect();
    let declared = match (shown.is_empty(), ports.count()) {
        (true, _) => "none".to_string(),
        (false, 0) => shown.join(", "),
        (false, more) => format!("{} and {more} more", shown.join(", ")),
    };
    Finding::new(
        Rule::InvalidAnnotation,
        format!("metadata.annotations[{}]", crate::annotations::READINESS_PORT),
        format!("{name:?} is not valid: no container declares a port named {name}; declared ports: {declared}"),
    )
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
    if let Some(port @ IntOrString::String(name)) = &ctx.declared.readiness_port {
        if !spec.containers.iter().any(|c| container_declares(c, port)) {
            found.push(undeclared_port(spec, name));
        }
    }
    for c in &spec.containers {
        if ctx.declared.profile == Profile::Serving
            && first_tcp_port(c).is_some()
            && c.readiness_probe.is_none()
            && serving::serves(c, spec, ctx)
        {
            found.push(Finding::new(
                Rule::ReadinessMissing,
                ctx.container_field(&c.name, ".readinessProbe"),
                "declares a TCP port but has no readinessProbe",
            ));
        }
        if let (Some(readiness), Some(liveness)) = (&c.readiness_probe, &c.liveness_probe) {
            if readiness == liveness {
                found.push(Finding::new(
                    Rule::ReadinessIsLiveness,
                    ctx.container_field(&c.name, ""),
                    "identical readiness and liveness probes",
                ));
            }
        }
    }
    found
}
