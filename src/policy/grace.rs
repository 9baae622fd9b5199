//! `grace-period` (mutation) and `grace-below-shutdown` (validation).
//!
//! After the preStop hook, the app gets what is left of
//! terminationGracePeriodSeconds before SIGKILL. Too short kills it mid-flush;
//! far too long hides a missing graceful shutdown and stalls every rollout.

use crate::workload::PodSpec;
use serde_json::Value;

use super::{prestop, Context, Finding, Mutation};
use crate::duration::format_seconds;
use crate::k8s_semantics::DEFAULT_GRACE_PERIOD_SECONDS;
use crate::path;
use crate::rules::Rule;

/// Sets the grace period from the declared shutdown timeout, or raises it by
/// the injected preStop sleep so the app keeps its original shutdown budget.
pub fn plan(spec: &PodSpec, ctx: &Context<'_>, injected_sleep: Option<i64>) -> Vec<Mutation> {
    let Some(action) = ctx.mutation_action(Rule::GracePeriod) else {
        return Vec::new();
    };
    let current = spec.termination_grace_period_seconds;
    let grace = current.unwrap_or(DEFAULT_GRACE_PERIOD_SECONDS);
    let longest = prestop::longest_sleep(spec).max(injected_sleep.unwrap_or(0));
    let target = match (ctx.declared.shutdown_timeout, injected_sleep) {
        (Some(timeout), _) => longest
            .saturating_add(timeout)
            .saturating_add(ctx.settings.shutdown_buffer_seconds),
        (None, Some(sleep)) => grace.saturating_add(sleep),
        (None, None) => return Vec::new(),
    };
    // The API server refuses a preStop sleep longer than the grace period, and
    // one equal to it leaves the app no time at all.
    let target = target.max(longest.saturating_add(1));
    if current == Some(target) {
        return Vec::new();
    }
    vec![Mutation {
        rule: Rule::GracePeriod,
        path: ctx.pod_spec_path(&path!["terminationGracePeriodSeconds"]),
        field: format!("{}.terminationGracePeriodSeconds", ctx.pod_spec_field()),
        old: current.map(Value::from),
        new: Value::from(target),
        action,
    }]
}

/// `grace-below-shutdown`: SIGKILL would arrive before the declared shutdown
/// can finish.
pub fn check(spec: &PodSpec, ctx: &Context<'_>) -> Vec<Finding> {
    let Some(timeout) = ctx.declared.shutdown_timeout else {
        return Vec::new();
    };
    let grace = spec
        .termination_grace_period_seconds
        .unwrap_or(DEFAULT_GRACE_PERIOD_SECONDS);
    let sleep = prestop::longest_sleep(spec);
    let needed = sleep.saturating_add(timeout);
    if grace >= needed {
        return Vec::new();
    }
    vec![Finding::new(
        Rule::GraceBelowShutdown,
        format!("{}.terminationGracePeriodSeconds", ctx.pod_spec_field()),
        format!(
            "grace {grace}s < preStop {sleep}s + shutdown {}: killed mid-shutdown",
            format_seconds(timeout)
        ),
    )]
}
