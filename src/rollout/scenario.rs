//! The rollout a manifest describes: replicas, strategy and timings read from
//! a Deployment or StatefulSet, with what a manifest cannot say (how long a
//! pod takes to become Ready, how long it flushes) from flags or the
//! rollguard annotations.

use serde_json::Value;

use super::model::{Controller, Scenario};
use crate::annotations;
use crate::k8s_semantics as k8s;
use crate::workload::{Workload, WorkloadKind};

/// What the manifest cannot tell; `None` takes the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Assumptions {
    pub ready_after: Option<u32>,
    pub shutdown: Option<u32>,
    pub new_never_ready: bool,
}

/// Seconds to Ready when no flag says: a small app behind a readiness probe.
pub const DEFAULT_READY_AFTER: u32 = 5;

/// The scenario of a Deployment or StatefulSet; None for other kinds.
pub fn from_object(object: &Value, assume: Assumptions) -> Option<Result<Scenario, String>> {
    let kind = WorkloadKind::from_object(object)?;
    if !matches!(kind, WorkloadKind::Deployment | WorkloadKind::StatefulSet) {
        return None;
    }
    Some(read(kind, object, assume))
}

fn read(kind: WorkloadKind, object: &Value, assume: Assumptions) -> Result<Scenario, String> {
    let workload =
        Workload::read(kind, object).map_err(|e| format!("{}: {}", e.field, e.reason))?;
    let settings = annotations::effective(&workload.annotations, &workload.template_annotations);
    let (declared, _) = annotations::parse(&settings);
    // The flush lasts what the annotations declare; without them, up to the
    // grace period. Either way the kubelet kills the pod at the grace period
    // (the model cuts it there and says so).
    let grace = seconds(
        workload
            .pod_spec
            .termination_grace_period_seconds
            .unwrap_or(k8s::DEFAULT_GRACE_PERIOD_SECONDS),
    );
    let declared_shutdown = match (declared.prestop_sleep, declared.shutdown_timeout) {
        (None, None) => None,
        (sleep, timeout) => Some(sleep.unwrap_or(0).saturating_add(timeout.unwrap_or(0))),
    };
    let shutdown = assume
        .shutdown
        .unwrap_or_else(|| declared_shutdown.map_or(grace, seconds));
    let spec = object.get("spec");
    let field = |name: &str| spec.and_then(|s| s.get(name));
    // Beyond i32 the API server refuses the object; the model caps what it rolls.
    let replicas = field("replicas")
        .and_then(Value::as_i64)
        .map_or(k8s::DEFAULT_REPLICAS, |n| {
            i32::try_from(n).unwrap_or(if n < 0 { 0 } else { i32::MAX })
        });
    let paused = kind == WorkloadKind::Deployment
        && field("paused").and_then(Value::as_bool).unwrap_or(false);
    let controller = match kind {
        WorkloadKind::Deployment => match &workload.rollout {
            Some(r) if r.is_rolling_update() => {
                r.fenceposts()
                    .map_err(|err| format!("spec.strategy.rollingUpdate: {err}"))?;
                Controller::Rolling {
                    max_surge: r.max_surge.clone(),
                    max_unavailable: r.max_unavailable.clone(),
                }
            }
            _ => Controller::Recreate,
        },
        _ => match &workload.stateful_set {
            Some(s) => Controller::StatefulSet {
                ordered: s.ordered,
                max_unavailable: s.max_unavailable,
                partition: s.partition,
                on_delete: s.on_delete,
            },
            None => Controller::Recreate,
        },
    };
    Ok(Scenario {
        replicas,
        controller,
        min_ready_seconds: u32::try_from(workload.min_ready_seconds).unwrap_or(0),
        ready_after: assume.ready_after.unwrap_or(DEFAULT_READY_AFTER),
        shutdown,
        grace_period: grace,
        new_never_ready: assume.new_never_ready,
        paused,
    })
}

fn seconds(value: i64) -> u32 {
    u32::try_from(value.max(0))
        .unwrap_or(u32::MAX)
        .min(super::model::HORIZON_SECONDS)
}

/// `rollguard.io/profile: stateful` on the object or its pod template.
pub fn is_stateful(object: &Value) -> bool {
    let Some(kind) = WorkloadKind::from_object(object) else {
        return false;
    };
    Workload::read(kind, object).is_ok_and(|workload| {
        let settings =
            annotations::effective(&workload.annotations, &workload.template_annotations);
        annotations::parse(&settings).0.profile == annotations::Profile::Stateful
    })
}
