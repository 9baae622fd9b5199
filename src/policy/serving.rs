//! Which containers serve traffic, from what the manifest says: only those
//! get a preStop sleep and an injected readiness probe.
//!
//! A container serves when it is not on the skip list (by name or image),
//! is not a known helper sidecar (kube-rbac-proxy, configmap-reload,
//! jaeger-agent, envoy, node-driver-registrar…) beside another container,
//! and either
//! - declares a port that is not only for monitoring (`metrics`, `healthz`,
//!   probe ports), or
//! - declares no `ports:` at all but has a readiness or liveness probe on a
//!   port (`httpGet`, `tcpSocket` or `grpc`): it listens there, and a
//!   Service may reach it without the port being declared (zipkin, jaeger,
//!   grafana, skywalking-ui in the corpus).
//!
//! rollguard sees one object at a time, so a container that serves through
//! a Service with neither `ports:` nor a probe is not seen as serving:
//! declare its port (kubectl explain pod.spec.containers.ports).

use crate::settings::image_name;
use crate::workload::{Container, PodSpec};

use super::Context;

/// Images of helper sidecars: they proxy, reload or ship data for the main
/// container, whose own shutdown and readiness are what matter.
pub const SIDECAR_IMAGES: [&str; 8] = [
    "kube-rbac-proxy",
    "configmap-reload",
    "prometheus-config-reloader",
    "jaeger-agent",
    "envoy",
    "csi-node-driver-registrar",
    "livenessprobe",
    "oauth2-proxy",
];

/// Port names that only serve monitoring or the kubelet's probes. Port names
/// are lowercase by validation (IANA_SVC_NAME), so no case folding is needed.
fn is_auxiliary_port(name: &str) -> bool {
    name.contains("metrics")
        || name.contains("health")
        || name.contains("probe")
        || matches!(name, "monitoring" | "prometheus" | "profiling" | "pprof")
}

/// On the configured skip list, by name or image.
pub fn skipped(container: &Container, ctx: &Context<'_>) -> bool {
    ctx.settings
        .is_skipped_container(&container.name, container.image.as_deref())
}

/// A known helper sidecar next to at least one other container.
fn is_helper_sidecar(container: &Container, spec: &PodSpec) -> bool {
    let Some(image) = container.image.as_deref() else {
        return false;
    };
    let name = image_name(image);
    spec.containers.len() > 1
        && SIDECAR_IMAGES.iter().any(|known| {
            name.strip_suffix(known)
                .is_some_and(|rest| rest.is_empty() || rest.ends_with('-'))
        })
}

/// A readiness or liveness probe that connects to a port.
fn probes_a_port(container: &Container) -> bool {
    [&container.readiness_probe, &container.liveness_probe]
        .into_iter()
        .flatten()
        .any(|probe| probe.http_get.is_some() || probe.tcp_socket.is_some() || probe.grpc.is_some())
}

/// True when the container serves traffic (see the module documentation).
pub fn serves(container: &Container, spec: &PodSpec, ctx: &Context<'_>) -> bool {
    let serving_port = match container.ports.as_deref() {
        None | Some([]) => probes_a_port(container),
        Some(ports) => ports
            .iter()
            .any(|p| !p.name.as_deref().is_some_and(is_auxiliary_port)),
    };
    serving_port && !skipped(container, ctx) && !is_helper_sidecar(container, spec)
}
