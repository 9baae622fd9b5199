//! Rollout strategy rules: `single-replica`, `pull-based-surge`,
//! `stateful-serial`, `warmup` (mutations) and `rollout-all-unavailable`,
//! `rollout-fencepost`, `stateful-recreate`, `stateful-parallel`,
//! `min-ready-exceeds-deadline` (validations). All judged with the deployment
//! controller's own rounding (see `k8s_semantics`).

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::{Context, Finding, Mutation};
use crate::annotations::Profile;
use crate::k8s_semantics::{self as k8s, show};
use crate::path;
use crate::rules::{Action, Rule};
use crate::workload::{Rollout, StatefulRollout, Workload, WorkloadKind};

/// The fields the strategy rules rewrite, as they stand while rules run.
#[derive(Debug, Clone)]
struct Plan {
    replicas: i32,
    max_surge: IntOrString,
    max_unavailable: IntOrString,
}

impl Plan {
    fn surge(&self) -> i32 {
        k8s::scaled_value(&self.max_surge, self.replicas, true).unwrap_or(0)
    }
    fn unavailable(&self) -> i32 {
        k8s::scaled_value(&self.max_unavailable, self.replicas, false).unwrap_or(0)
    }
    /// Rules that must hold at any scale (an autoscaler changes replicas,
    /// and a percentage with them) compare the written value, not the
    /// resolved one.
    fn surge_is(&self, n: i32) -> bool {
        self.max_surge == IntOrString::Int(n)
    }
    fn unavailable_is(&self, n: i32) -> bool {
        self.max_unavailable == IntOrString::Int(n)
    }
}

/// The (maxSurge, maxUnavailable) a rule wants, given the current plan.
type WantFn = fn(&Plan) -> (Option<i32>, Option<i32>);

/// `planned_grace`: the terminationGracePeriodSeconds `grace-period` writes, if any.
pub fn plan(workload: &Workload, ctx: &Context<'_>, planned_grace: Option<i64>) -> Vec<Mutation> {
    let mut mutations = plan_min_ready(workload, ctx, planned_grace);
    let Some(rollout) = workload.rollout.as_ref().filter(|r| r.is_rolling_update()) else {
        return mutations;
    };
    let original = Plan {
        replicas: rollout.replicas,
        max_surge: rollout.max_surge.clone(),
        max_unavailable: rollout.max_unavailable.clone(),
    };
    let profile = ctx.declared.profile;
    // A lone pod that binds a hostPort leaves no room for a surge pod beside
    // it on a one-node cluster: no rule forces surge-first on it
    // (`single-replica-host-port` warns instead).
    let surge_fits = !(rollout.replicas == 1 && host_port(workload).is_some());
    let mut current = original.clone();
    // Each rule states the values it wants; later rules win on the fields
    // they set. Stateful-serial covers 0 replicas too: the strategy must be
    // serial by the time an autoscaler brings the workload back.
    let rules: [(Rule, bool, WantFn); 4] = [
        (
            Rule::SingleReplica,
            rollout.replicas == 1 && surge_fits,
            |p| {
                (
                    (p.surge() < 1).then_some(1),
                    (p.unavailable() != 0).then_some(0),
                )
            },
        ),
        (
            Rule::PullBasedSurge,
            profile == Profile::PullBased && surge_fits,
            |p| {
                (
                    (p.surge() < 1).then_some(1),
                    (!p.unavailable_is(0)).then_some(0),
                )
            },
        ),
        (
            Rule::StatefulSerial,
            profile == Profile::Stateful && rollout.replicas != 1,
            |p| {
                (
                    (!p.surge_is(0)).then_some(0),
                    (!p.unavailable_is(1)).then_some(1),
                )
            },
        ),
        (
            Rule::Warmup,
            ctx.declared.warmup.is_some() && profile != Profile::Stateful && surge_fits,
            |p| {
                (
                    (!p.surge_is(1)).then_some(1),
                    (!p.unavailable_is(0)).then_some(0),
                )
            },
        ),
    ];
    let mut setters: [Option<(Rule, Action)>; 2] = [None, None];
    for (rule, applies, wants) in rules {
        let Some(action) = ctx.mutation_action(rule).filter(|_| applies) else {
            continue;
        };
        let (surge, unavailable) = wants(&current);
        if action == Action::Warn {
            // A suggestion only: report it, do not build on it.
            mutations.extend(field_mutation(
                rule,
                action,
                "maxSurge",
                &current.max_surge,
                surge,
            ));
            mutations.extend(field_mutation(
                rule,
                action,
                "maxUnavailable",
                &current.max_unavailable,
                unavailable,
            ));
            continue;
        }
        if let Some(value) = surge {
            current.max_surge = IntOrString::Int(value);
            setters[0] = Some((rule, action));
        }
        if let Some(value) = unavailable {
            current.max_unavailable = IntOrString::Int(value);
            setters[1] = Some((rule, action));
        }
    }
    for ((name, old, new), setter) in [
        ("maxSurge", &original.max_surge, &current.max_surge),
        (
            "maxUnavailable",
            &original.max_unavailable,
            &current.max_unavailable,
        ),
    ]
    .into_iter()
    .zip(setters)
    {
        if let Some((rule, action)) = setter.filter(|_| old != new) {
            let IntOrString::Int(value) = new else {
                continue;
            };
            mutations.extend(field_mutation(rule, action, name, old, Some(*value)));
        }
    }
    mutations
}

fn field_mutation(
    rule: Rule,
    action: Action,
    name: &'static str,
    old: &IntOrString,
    new: Option<i32>,
) -> Option<Mutation> {
    let new = new?;
    if *old == IntOrString::Int(new) {
        return None;
    }
    Some(Mutation {
        rule,
        path: path!["spec", "strategy", "rollingUpdate", name].into(),
        field: format!("spec.strategy.rollingUpdate.{name}"),
        old: Some(Value::String(show(old))),
        new: Value::from(new),
        action,
    })
}

/// Headroom above minReadySeconds when rollguard raises progressDeadlineSeconds
/// with it: the API server refuses a deadline not above minReadySeconds, and
/// each replacement also needs time to become Ready.
pub const PROGRESS_DEADLINE_HEADROOM_SECONDS: i64 = 600;

/// The longest a stopped pod can keep terminating (flushing): its grace
/// period, after which the kubelet kills it. `grace-period` sets it to the
/// preStop sleep plus the declared shutdown and a buffer; `planned_grace` is
/// that value when it is being written, so a second pass reaches the same figure.
pub fn flush_seconds(workload: &Workload, planned_grace: Option<i64>) -> i64 {
    planned_grace
        .or(workload.pod_spec.termination_grace_period_seconds)
        .unwrap_or(k8s::DEFAULT_GRACE_PERIOD_SECONDS)
}

/// `warmup`: minReadySeconds at least the declared warm-up. `stateful-serial`:
/// minReadySeconds at least the flush, because the Deployment controller
/// counts a terminating pod as gone and stops the next old pod as soon as the
/// replacement is available (`reconcileOldReplicaSets`); only minReadySeconds
/// holds it back until the previous flush is over. Either raise also lifts
/// progressDeadlineSeconds above it, so the API server never refuses the result.
fn plan_min_ready(
    workload: &Workload,
    ctx: &Context<'_>,
    planned_grace: Option<i64>,
) -> Vec<Mutation> {
    if workload.kind == WorkloadKind::Pod {
        return Vec::new();
    }
    let current = i64::from(workload.min_ready_seconds);
    let mut wanted: Option<(Rule, Action, i64)> = None;
    if let (Some(action), Some(warmup)) = (ctx.mutation_action(Rule::Warmup), ctx.declared.warmup) {
        wanted = Some((Rule::Warmup, action, warmup));
    }
    let serial_deployment = workload.kind == WorkloadKind::Deployment
        && ctx.declared.profile == Profile::Stateful
        && workload
            .rollout
            .as_ref()
            .is_some_and(|r| r.is_rolling_update() && r.replicas != 1);
    if let Some(action) = ctx
        .mutation_action(Rule::StatefulSerial)
        .filter(|_| serial_deployment)
    {
        let flush = flush_seconds(workload, planned_grace);
        if wanted.is_none_or(|(_, _, w)| flush > w) {
            wanted = Some((Rule::StatefulSerial, action, flush));
        }
    }
    let Some((rule, action, target)) = wanted.filter(|&(_, _, t)| t > current) else {
        return Vec::new();
    };
    let mut mutations = vec![Mutation {
        rule,
        path: path!["spec", "minReadySeconds"].into(),
        field: "spec.minReadySeconds".to_string(),
        old: Some(Value::from(workload.min_ready_seconds)),
        new: Value::from(target),
        action,
    }];
    if let Some(rollout) = workload.rollout.as_ref() {
        let deadline = i64::from(rollout.progress_deadline_seconds);
        if deadline <= target {
            mutations.push(Mutation {
                rule,
                path: path!["spec", "progressDeadlineSeconds"].into(),
                field: "spec.progressDeadlineSeconds".to_string(),
                old: Some(Value::from(deadline)),
                new: Value::from(target + PROGRESS_DEADLINE_HEADROOM_SECONDS),
                action,
            });
        }
    }
    mutations
}

/// `min-ready-exceeds-deadline`: a Deployment whose minReadySeconds reaches
/// its progressDeadlineSeconds.
pub fn check_min_ready(workload: &Workload) -> Option<Finding> {
    let rollout = workload.rollout.as_ref()?;
    (i64::from(workload.min_ready_seconds) >= i64::from(rollout.progress_deadline_seconds)).then(
        || {
            Finding::new(
                Rule::MinReadyExceedsDeadline,
                "spec.minReadySeconds",
                format!(
                    "minReadySeconds {} is not below progressDeadlineSeconds {}",
                    workload.min_ready_seconds, rollout.progress_deadline_seconds
                ),
            )
        },
    )
}

pub fn check(workload: &Workload, ctx: &Context<'_>) -> Vec<Finding> {
    if let Some(set) = &workload.stateful_set {
        return check_stateful_set(set, ctx.declared.profile == Profile::Stateful);
    }
    let Some(rollout) = &workload.rollout else {
        return Vec::new();
    };
    let mut found: Vec<Finding> = check_min_ready(workload).into_iter().collect();
    let stateful = ctx.declared.profile == Profile::Stateful;
    if !rollout.is_rolling_update() {
        // With one replica, serial and Recreate stop the same single pod.
        if stateful && rollout.strategy_type == "Recreate" && rollout.replicas != 1 {
            found.push(Finding::new(
                Rule::StatefulRecreate,
                "spec.strategy.type",
                format!(
                    "Recreate stops all {} replicas at once: {} flush together, 0 ready meanwhile",
                    rollout.replicas, rollout.replicas
                ),
            ));
        }
        return found;
    }
    let parallel = check_rolling(rollout, stateful);
    // One stateful-parallel finding at a time: the strategy first.
    let overlap = stateful
        && rollout.replicas != 1
        && parallel.iter().all(|f| f.rule != Rule::StatefulParallel);
    found.extend(parallel);
    if overlap {
        found.extend(check_flush_overlap(workload));
    }
    if let (1, Some((container, port))) = (rollout.replicas, host_port(workload)) {
        if rollout.fenceposts().is_ok_and(|f| f.unavailable >= 1) {
            found.push(Finding::new(
                Rule::SingleReplicaHostPort,
                "spec.strategy.rollingUpdate",
                format!(
                    "1 replica binds hostPort {port} (container {container}): no surge is forced, \
                     the pod is down during each rollout"
                ),
            ));
        }
    }
    found
}

/// The first container port bound on the node: a surge pod that binds it
/// cannot schedule beside the old one (ingress-nginx for kind on one node).
fn host_port(workload: &Workload) -> Option<(&str, i32)> {
    workload.pod_spec.containers.iter().find_map(|c| {
        c.ports
            .iter()
            .flatten()
            .find_map(|p| p.host_port.filter(|n| *n > 0))
            .map(|port| (c.name.as_str(), port))
    })
}

/// A stateful Deployment whose minReadySeconds is below the flush: the
/// controller stops the next old pod once the replacement is available, while
/// the previous one still flushes (see `plan_min_ready`).
fn check_flush_overlap(workload: &Workload) -> Option<Finding> {
    let flush = flush_seconds(workload, None);
    let min_ready = i64::from(workload.min_ready_seconds);
    (min_ready < flush).then(|| {
        Finding::new(
            Rule::StatefulParallel,
            "spec.minReadySeconds",
            format!(
                "minReadySeconds {min_ready} < {}s flush: the next pod stops while the last still flushes",
                flush
            ),
        )
    })
}

fn check_rolling(rollout: &Rollout, stateful: bool) -> Vec<Finding> {
    let Ok(f) = rollout.fenceposts() else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let replicas = rollout.replicas;
    let (surge_text, unavailable_text) = (show(&rollout.max_surge), show(&rollout.max_unavailable));
    let explicit_zeros =
        rollout.max_surge == IntOrString::Int(0) && rollout.max_unavailable == IntOrString::Int(0);
    let fencepost = f.both_zero && (replicas >= 1 || explicit_zeros);
    if fencepost {
        found.push(Finding::new(
            Rule::RolloutFencepost,
            "spec.strategy.rollingUpdate",
            format!(
                "maxSurge {surge_text} and maxUnavailable {unavailable_text} both resolve to 0 for {replicas} {}",
                replicas_word(replicas)
            ),
        ));
    } else if replicas >= 1 && f.unavailable >= replicas {
        found.push(Finding::new(
            Rule::RolloutAllUnavailable,
            "spec.strategy.rollingUpdate.maxUnavailable",
            format!(
                "maxUnavailable {unavailable_text} resolves to {} for {replicas} {}: every pod may be down at once",
                f.unavailable,
                replicas_word(replicas)
            ),
        ));
    }
    if stateful && f.effective_unavailable() > 1 {
        found.push(Finding::new(
            Rule::StatefulParallel,
            "spec.strategy.rollingUpdate.maxUnavailable",
            format!(
                "maxUnavailable {unavailable_text} resolves to {} for {replicas} replicas: {} stateful pods flush at once",
                f.effective_unavailable(),
                f.effective_unavailable()
            ),
        ));
    }
    found
}

/// StatefulSets delete up to maxUnavailable outdated pods at once
/// (`updateStatefulSetAfterInvariantEstablished`), OrderedReady or Parallel.
fn check_stateful_set(set: &StatefulRollout, stateful: bool) -> Vec<Finding> {
    if !stateful {
        return Vec::new();
    }
    if set.on_delete {
        return vec![Finding::new(
            Rule::StatefulOnDelete,
            "spec.updateStrategy.type",
            "OnDelete: pods roll only as they are deleted; delete them one at a time",
        )];
    }
    let at_once = set.max_unavailable.min(set.replicas - set.partition);
    if at_once <= 1 {
        return Vec::new();
    }
    let written = set
        .max_unavailable_written
        .as_ref()
        .map(show)
        .unwrap_or_default();
    vec![Finding::new(
        Rule::StatefulParallel,
        "spec.updateStrategy.rollingUpdate.maxUnavailable",
        format!(
            "maxUnavailable {written} resolves to {at_once}: {at_once} stateful pods flush at once"
        ),
    )]
}

fn replicas_word(replicas: i32) -> &'static str {
    if replicas == 1 {
        "replica"
    } else {
        "replicas"
    }
}
