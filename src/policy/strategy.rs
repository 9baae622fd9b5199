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
    // A lone pod that binds a hostPort (or runs on the host network) leaves
    // no room for a surge pod beside it on a one-node cluster: no rule
    // forces surge-first on it (`single-replica-host-port` warns instead).
    let surge_fits = !(rollout.replicas == 1 && host_port(workload).is_some());
    let mut current = original.clone();
    // Each rule states the values it wants; later rules win on the fields
    // they set. Stateful-serial covers 0 replicas too: the strategy must be
    // serial by the time an autoscaler brings the workload back.
    let rules: [(Rule, bool, WantFn); 5] = [
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
        // One replica: surge-first 1/0, so the lone pod stays until its
        // replacement is available; several: 0/1. Both absolute, so with
        // minReadySeconds covering the flush either stays one at a time at
        // every count a scale reaches. A lone hostPort pod leaves no room
        // for a surge pod: 0/1 there too.
        (
            Rule::StatefulSerial,
            profile == Profile::Stateful && !(rollout.replicas == 1 && surge_fits),
            |p| {
                (
                    (!p.surge_is(0)).then_some(0),
                    (!p.unavailable_is(1)).then_some(1),
                )
            },
        ),
        (
            Rule::StatefulSerial,
            profile == Profile::Stateful && rollout.replicas == 1 && surge_fits,
            |p| {
                (
                    (!p.surge_is(1)).then_some(1),
                    (!p.unavailable_is(0)).then_some(0),
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

/// The longest minReadySeconds rollguard writes: both fields are int32, and
/// progressDeadlineSeconds must stay above it.
pub const MAX_MIN_READY_SECONDS: i64 = i32::MAX as i64 - 1;

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
/// holds it back until the previous flush is over. At every replica count,
/// one included: a scale (never seen by the webhook) can bring it to three.
/// Either raise also lifts progressDeadlineSeconds above it, so the API
/// server never refuses the result. A flush beyond what int32 can cover is
/// left alone: `stateful-parallel` then says one at a time is not guaranteed.
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
    let mut want = |rule: Rule, action: Action, seconds: i64| {
        if seconds <= MAX_MIN_READY_SECONDS && wanted.is_none_or(|(_, _, w)| seconds > w) {
            wanted = Some((rule, action, seconds));
        }
    };
    if let (Some(action), Some(warmup)) = (ctx.mutation_action(Rule::Warmup), ctx.declared.warmup) {
        want(Rule::Warmup, action, warmup);
    }
    let serial_deployment = workload.kind == WorkloadKind::Deployment
        && ctx.declared.profile == Profile::Stateful
        && workload
            .rollout
            .as_ref()
            .is_some_and(|r| r.is_rolling_update());
    if let Some(action) = ctx
        .mutation_action(Rule::StatefulSerial)
        .filter(|_| serial_deployment)
    {
        want(
            Rule::StatefulSerial,
            action,
            flush_seconds(workload, planned_grace),
        );
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
            let raised = target
                .saturating_add(PROGRESS_DEADLINE_HEADROOM_SECONDS)
                .min(i64::from(i32::MAX));
            mutations.push(Mutation {
                rule,
                path: path!["spec", "progressDeadlineSeconds"].into(),
                field: "spec.progressDeadlineSeconds".to_string(),
                old: Some(Value::from(deadline)),
                new: Value::from(raised),
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
                    "minReady {}s >= deadline {}s: every rollout reports failure",
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
        // With one replica, serial and Recreate stop the same single pod. A
        // rollout at a count scaled up since starts with an UPDATE of the
        // Deployment, judged again at its live replicas.
        if stateful && rollout.strategy_type == "Recreate" && rollout.replicas != 1 {
            found.push(Finding::new(
                Rule::StatefulRecreate,
                "spec.strategy.type",
                format!(
                    "Recreate at {} replicas: {} flush together, 0 ready meanwhile",
                    rollout.replicas, rollout.replicas
                ),
            ));
        }
        return found;
    }
    found.extend(check_rolling(rollout));
    if stateful {
        // One stateful-parallel finding at a time: the strategy first.
        match check_parallel_at_any_scale(rollout) {
            Some(parallel) => found.push(parallel),
            None => found.extend(check_flush_overlap(workload)),
        }
    }
    if let (1, Some(bound)) = (rollout.replicas, host_port(workload)) {
        if rollout.fenceposts().is_ok_and(|f| f.unavailable >= 1) {
            found.push(Finding::new(
                Rule::SingleReplicaHostPort,
                "spec.strategy.rollingUpdate",
                format!("1 replica on {bound}: no surge fits its node, down each rollout"),
            ));
        }
    }
    found
}

/// What binds a port on the node, as the warning names it: the first
/// container `hostPort`, or `hostNetwork: true` (every container port binds
/// on the node). A surge pod that binds it cannot schedule beside the old
/// one (ingress-nginx for kind, rook's direct-mount, on one node).
fn host_port(workload: &Workload) -> Option<String> {
    let spec = &workload.pod_spec;
    let bound = spec.containers.iter().find_map(|c| {
        c.ports
            .iter()
            .flatten()
            .find_map(|p| p.host_port.filter(|n| *n > 0))
            .map(|port| format!("hostPort {port}"))
    });
    bound.or_else(|| (spec.host_network == Some(true)).then(|| "hostNetwork".to_string()))
}

/// A stateful Deployment whose minReadySeconds is below the flush: the
/// controller stops the next old pod once the replacement is available, while
/// the previous one still flushes (see `plan_min_ready`). A flush longer than
/// an int32 minReadySeconds can cover is never guaranteed one at a time.
fn check_flush_overlap(workload: &Workload) -> Option<Finding> {
    let flush = flush_seconds(workload, None);
    let min_ready = i64::from(workload.min_ready_seconds);
    if min_ready >= flush {
        return None;
    }
    let detail = if flush > MAX_MIN_READY_SECONDS {
        format!("grace {flush}s > int32 minReady: flushes may overlap")
    } else {
        format!("{min_ready} < {flush}s flush: the next pod stops mid-flush")
    };
    Some(Finding::new(
        Rule::StatefulParallel,
        "spec.minReadySeconds",
        detail,
    ))
}

/// The most old pods a rolling update of a stateful Deployment stops
/// together at `replicas`, with minReadySeconds covering the flush: every
/// unavailable slot at the start, and each surge pod's old counterpart once
/// the new ones are available together.
fn stopped_together(rollout: &Rollout, replicas: i32) -> i32 {
    k8s::resolve_fenceposts(&rollout.max_surge, &rollout.max_unavailable, replicas).map_or(0, |f| {
        f.surge
            .saturating_add(f.effective_unavailable())
            .min(replicas)
    })
}

/// Replica counts a scale can reach, searched for the first one at which a
/// percentage lets two pods go: 1% reaches 2 by 200 replicas.
const SCALE_SEARCHED: std::ops::RangeInclusive<i32> = 1..=1000;

/// The first count in [`SCALE_SEARCHED`] at which `together` exceeds 1, and
/// its value. `together` never falls as replicas grow (percentages resolve
/// monotonically, and at least one pod is always allowed), so the largest
/// count answers first whether there is one at all.
fn first_parallel_count(together: impl Fn(i32) -> i32) -> Option<(i32, i32)> {
    if together(*SCALE_SEARCHED.end()) <= 1 {
        return None;
    }
    SCALE_SEARCHED
        .map(|n| (n, together(n)))
        .find(|&(_, at_once)| at_once > 1)
}

/// `stateful-parallel` on the strategy as written: an autoscaler or `kubectl
/// scale` changes replicas without the webhook, and a percentage with them.
fn check_parallel_at_any_scale(rollout: &Rollout) -> Option<Finding> {
    let now = stopped_together(rollout, rollout.replicas);
    let (replicas, together) = if now > 1 {
        (rollout.replicas, now)
    } else {
        first_parallel_count(|n| stopped_together(rollout, n))?
    };
    let f = k8s::resolve_fenceposts(&rollout.max_surge, &rollout.max_unavailable, replicas).ok()?;
    let written = format!(
        "{}/{}",
        show(&rollout.max_surge),
        show(&rollout.max_unavailable)
    );
    let resolved = format!("{}/{}", f.surge, f.effective_unavailable());
    Some(Finding::new(
        Rule::StatefulParallel,
        "spec.strategy.rollingUpdate",
        format!(
            "surge/unavailable {} {}: {together} flush at once",
            written_as(&written, &resolved),
            at_replicas(replicas, rollout.replicas),
        ),
    ))
}

fn check_rolling(rollout: &Rollout) -> Vec<Finding> {
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
                "{surge_text}/{unavailable_text} is 0/0 at {replicas} {}: maxUnavailable 1 is used",
                replicas_word(replicas)
            ),
        ));
    } else if replicas >= 1 && f.unavailable >= replicas {
        found.push(Finding::new(
            Rule::RolloutAllUnavailable,
            "spec.strategy.rollingUpdate.maxUnavailable",
            format!(
                "{unavailable_text} is {} of {replicas} {}: all may be down at once",
                f.unavailable,
                replicas_word(replicas)
            ),
        ));
    }
    found
}

/// The most pods of a StatefulSet `maxUnavailable` lets the controller delete
/// together at `replicas` (`updateStatefulSetAfterInvariantEstablished`):
/// resolved rounding down, at least 1, among the ordinals at or above the
/// partition.
fn deleted_together(set: &StatefulRollout, replicas: i32) -> i32 {
    let max_unavailable = match &set.max_unavailable_written {
        None => 1,
        Some(value) => k8s::scaled_value(value, replicas, false)
            .unwrap_or(1)
            .max(1),
    };
    max_unavailable.min(replicas.saturating_sub(set.partition).max(0))
}

/// StatefulSets delete up to maxUnavailable outdated pods at once, OrderedReady
/// or Parallel. Judged as written: a scale changes replicas (and the count
/// above the partition) without the webhook, so only an absolute 1 (or none)
/// keeps it to one at every count.
fn check_stateful_set(set: &StatefulRollout, stateful: bool) -> Vec<Finding> {
    if !stateful {
        return Vec::new();
    }
    if set.on_delete {
        return vec![Finding::new(
            Rule::StatefulOnDelete,
            "spec.updateStrategy.type",
            "OnDelete: pods roll as they are deleted; delete them one at a time",
        )];
    }
    let now = deleted_together(set, set.replicas);
    let found = if now > 1 {
        Some((set.replicas, now))
    } else {
        // Counts above the partition: the pods a rollout updates.
        let above = |n: i32| n.saturating_add(set.partition);
        first_parallel_count(|n| deleted_together(set, above(n)))
            .map(|(n, together)| (above(n), together))
    };
    let Some((replicas, together)) = found else {
        return Vec::new();
    };
    let written = set
        .max_unavailable_written
        .as_ref()
        .map(show)
        .unwrap_or_default();
    vec![Finding::new(
        Rule::StatefulParallel,
        "spec.updateStrategy.rollingUpdate.maxUnavailable",
        format!(
            "maxUnavailable {} {}: {together} flush at once",
            written_as(&written, &together.to_string()),
            at_replicas(replicas, set.replicas)
        ),
    )]
}

/// `25%/25% is 1/1`, or just `1/0` when written as it resolves.
fn written_as(written: &str, resolved: &str) -> String {
    if written == resolved {
        written.to_string()
    } else {
        format!("{written} is {resolved}")
    }
}

/// `at 3 replicas` when that is the written count, else `if scaled to 4`.
fn at_replicas(replicas: i32, written: i32) -> String {
    if replicas == written {
        format!("at {replicas} {}", replicas_word(replicas))
    } else {
        format!("if scaled to {replicas}")
    }
}

fn replicas_word(replicas: i32) -> &'static str {
    if replicas == 1 {
        "replica"
    } else {
        "replicas"
    }
}
