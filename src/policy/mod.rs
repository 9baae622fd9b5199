//! The policy engine: a pure function from an object and the settings to a
//! verdict (mutations, the patch, violations). No I/O, no clock, no globals:
//! the webhook ([`evaluate_owned`], on the object it decoded), `rollguard
//! check` and the tests ([`evaluate`]) run the same code.

mod findings;
pub mod grace;
pub mod prestop;
pub mod readiness;
pub mod serving;
pub mod strategy;

use serde_json::Value;
use thiserror::Error;

use crate::annotations::{self, Declared, ObjectMode, Problem};
use crate::patch::{self, Step};
use crate::rules::{Action, Rule};
use crate::settings::Settings;
use crate::workload::{ReadError, Workload, WorkloadKind};

pub use findings::{short as short_warning, short_field, Finding, Violation, MAX_WARNING_CHARS};

/// Which half of the admission work a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The mutating webhook: compute (and in enforce mode apply) mutations,
    /// and judge the rules the API server would refuse before validation
    /// (`REFUSED_BY_API_SERVER`).
    Mutate,
    /// The validating webhook: judge the object as it will be stored.
    Validate,
    /// Both, as `/audit` and `rollguard check` do: mutate, then judge the result.
    Full,
}

/// The mode the namespace (or the whole server) asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Audit,
}

/// The mode in force for one object, after its own annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EffectiveMode {
    Enforce,
    Audit,
    /// `rollguard.io/mode: off`: the object is left alone.
    Off,
}

#[derive(Debug, Clone, Copy)]
pub struct EvalRequest<'a> {
    pub kind: WorkloadKind,
    pub object: &'a Value,
    pub stage: Stage,
    pub mode: Mode,
}

/// One change rollguard makes (or would make) to an object.
#[derive(Debug, Clone, PartialEq)]
pub struct Mutation {
    pub rule: Rule,
    /// Where in the raw document the value goes.
    pub path: Vec<Step>,
    /// The same place for humans: `spec.template.spec.containers[web].lifecycle.preStop`.
    pub field: String,
    pub old: Option<Value>,
    pub new: Value,
    /// `Apply`, or `Warn` when the rule is configured to only suggest.
    pub action: Action,
}

impl Mutation {
    /// `field: old → new (rule)`, values in compact JSON.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.change(), self.rule)
    }

    /// The admission warning (at most 120 characters): rule, field and new
    /// value in words, e.g. `rollguard audit prestop-sleep: would set
    /// containers[app].lifecycle.preStop to sleep seconds 10`. When the whole
    /// value does not fit, it is left out rather than cut and the warning
    /// points to the audit annotation that carries [`Mutation::describe`].
    pub fn warning(&self, prefix: &str, verb: &str) -> String {
        let head = format!("{prefix}{}: {verb} {}", self.rule, short_field(&self.field));
        let full = format!("{head} to {}", words(&self.new));
        if full.chars().count() <= MAX_WARNING_CHARS {
            return full;
        }
        short_warning(&format!("{head} (value in audit annotation detail)"))
    }

    /// `field: old → new`, values in compact JSON.
    pub fn change(&self) -> String {
        let old = self
            .old
            .as_ref()
            .map_or_else(|| "unset".to_string(), compact);
        format!("{}: {} → {}", self.field, old, compact(&self.new))
    }
}

/// A JSON value as words: `{"sleep":{"seconds":10}}` → `sleep seconds 10`.
fn words(value: &Value) -> String {
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    out.push(key.clone());
                    walk(value, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|item| walk(item, out)),
            Value::String(s) => out.push(s.clone()),
            other => out.push(other.to_string()),
        }
    }
    let mut out = Vec::new();
    walk(value, &mut out);
    out.join(" ")
}

fn compact(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Everything the engine decided about one object.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub mode: EffectiveMode,
    /// Mutations made (enforce) or that would be made (audit); empty for the
    /// validate stage.
    pub mutations: Vec<Mutation>,
    /// The JSON Patch to return; empty unless enforce mode changed something.
    pub patch: json_patch::Patch,
    /// The object as rollguard admits it (with the patch applied); in the
    /// webhook, only the fields the rules read (`workload::OBJECT_SHAPE`).
    pub admitted: Value,
    /// Violations; empty for the mutate stage.
    pub violations: Vec<Violation>,
}

impl Verdict {
    /// True when the object must be rejected.
    pub fn denied(&self) -> bool {
        self.mode == EffectiveMode::Enforce && self.denials().next().is_some()
    }

    pub fn denials(&self) -> impl Iterator<Item = &Violation> {
        self.violations.iter().filter(|v| v.action == Action::Deny)
    }

    /// Rule names that fired, mutations first, without repeats.
    pub fn rules_fired(&self) -> Vec<Rule> {
        let mut rules: Vec<Rule> = Vec::new();
        for rule in self
            .mutations
            .iter()
            .map(|m| m.rule)
            .chain(self.violations.iter().map(|v| v.rule))
        {
            if !rules.contains(&rule) {
                rules.push(rule);
            }
        }
        rules
    }
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum EngineError {
    #[error(transparent)]
    Unreadable(#[from] ReadError),
    #[error("cannot write {field} into the object: a parent field is not an object")]
    Unwritable { field: String },
}

/// What the rules read besides the object: settings and declarations.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub kind: WorkloadKind,
    /// A DaemonSet or one of its pods ([`Workload::is_node_agent`]).
    pub node_agent: bool,
    pub settings: &'a Settings,
    pub declared: &'a Declared,
}

impl Context<'_> {
    /// Human path of the pod spec: `spec.template.spec` or `spec`.
    pub fn pod_spec_field(&self) -> &'static str {
        match self.kind {
            WorkloadKind::Pod => "spec",
            _ => "spec.template.spec",
        }
    }

    pub fn container_field(&self, name: &str, rest: &str) -> String {
        format!("{}.containers[{name}]{rest}", self.pod_spec_field())
    }

    /// Path into the pod spec in the raw document.
    pub fn pod_spec_path(&self, rest: &[Step]) -> Vec<Step> {
        let mut path = self.kind.pod_spec_path();
        path.extend_from_slice(rest);
        path
    }

    fn action(&self, rule: Rule) -> Action {
        self.settings.action(rule)
    }

    /// The action of a mutation rule, or None when it is off.
    pub fn mutation_action(&self, rule: Rule) -> Option<Action> {
        match self.settings.action(rule) {
            Action::Off => None,
            action => Some(action),
        }
    }
}

/// Evaluates one object lent by the caller (it is copied once).
pub fn evaluate(request: &EvalRequest<'_>, settings: &Settings) -> Result<Verdict, EngineError> {
    evaluate_owned(
        request.kind,
        request.object.clone(),
        request.stage,
        request.mode,
        settings,
    )
}

/// [`evaluate`] on an object the caller gives away, as the webhook does with
/// the object it decoded: enforce mode writes the mutations into it in place
/// and returns it as [`Verdict::admitted`], without a second copy.
pub fn evaluate_owned(
    kind: WorkloadKind,
    object: Value,
    stage: Stage,
    mode: Mode,
    settings: &Settings,
) -> Result<Verdict, EngineError> {
    let received = Workload::read(kind, &object)?;
    let declared_settings =
        annotations::effective(&received.annotations, &received.template_annotations);
    let (declared, problems) = annotations::parse(&declared_settings);
    let requested = mode;
    let mode = effective_mode(mode, declared.mode);
    let mut verdict = Verdict {
        mode,
        mutations: Vec::new(),
        patch: json_patch::Patch::default(),
        admitted: Value::Null,
        violations: Vec::new(),
    };
    if mode == EffectiveMode::Off {
        verdict.admitted = object;
        if requested == Mode::Enforce && stage != Stage::Validate {
            verdict.patch = mode_off_reaches_pods(&received, kind, &mut verdict.admitted)?;
        }
        return Ok(verdict);
    }
    let ctx = Context {
        kind,
        node_agent: received.is_node_agent(),
        settings,
        declared: &declared,
    };
    let enforced = mode == EffectiveMode::Enforce;
    // Validating an enforced object judges it as it will be stored.
    if stage == Stage::Validate && enforced {
        verdict.violations = judge(&received, &ctx, &problems);
        verdict.admitted = object;
        return Ok(verdict);
    }
    // Everything else judges what enforce mode would store. Enforce mode
    // stores it, so the mutations go into the received object in place;
    // audit mode admits the object unchanged, so they go into a copy.
    let (mut would_admit, unchanged) = if enforced {
        (object, None)
    } else {
        (object.clone(), Some(object))
    };
    let mut writes = patch::Writes::new();
    // Invalid annotations stop every change to the object.
    let mutations = if problems.is_empty() {
        let mutations = plan_mutations(&received, &ctx);
        apply(&mut would_admit, &mutations, &received, &ctx, &mut writes)?;
        mutations
    } else {
        Vec::new()
    };
    if stage != Stage::Mutate {
        let judged = Workload::read(kind, &would_admit)?;
        verdict.violations = judge(&judged, &ctx, &problems);
    } else if enforced {
        verdict.violations =
            judge_refused_by_api_server(kind, &received, &would_admit, &mutations, &ctx)?;
    }
    if stage != Stage::Validate {
        verdict.mutations = mutations;
    }
    verdict.admitted = match unchanged {
        Some(object) => object,
        None => {
            verdict.patch = writes.patch(&would_admit);
            would_admit
        }
    };
    Ok(verdict)
}

/// `rollguard.io/mode: off` written on the workload only would leave its pods
/// to the Pod webhook, which sees only the template's annotations: the one
/// change made to an "off" workload is copying that annotation into its pod
/// template, so its pods are left alone too. Nothing else is touched.
fn mode_off_reaches_pods(
    workload: &Workload,
    kind: WorkloadKind,
    doc: &mut Value,
) -> Result<json_patch::Patch, EngineError> {
    let mut writes = patch::Writes::new();
    copy_to_template(workload, kind, &[annotations::MODE], &mut writes, doc)?;
    Ok(writes.patch(doc))
}

/// Copies the workload's own values of `keys` into its pod template's
/// annotations where they differ, so its pods reach the same decisions.
fn copy_to_template(
    workload: &Workload,
    kind: WorkloadKind,
    keys: &[&'static str],
    writes: &mut patch::Writes,
    doc: &mut Value,
) -> Result<(), EngineError> {
    let Some(template_path) = kind.template_annotations_path() else {
        return Ok(());
    };
    for key in keys {
        if let Some(value) = workload.annotations.get(*key) {
            if workload.template_annotations.get(*key) != Some(value) {
                let mut path = template_path.clone();
                path.push(Step::from(*key));
                write(
                    writes,
                    doc,
                    &path,
                    Value::String(value.clone()),
                    "spec.template.metadata.annotations",
                )?;
            }
        }
    }
    Ok(())
}

fn effective_mode(requested: Mode, object: Option<ObjectMode>) -> EffectiveMode {
    match (requested, object) {
        (_, Some(ObjectMode::Off)) => EffectiveMode::Off,
        (Mode::Audit, _) | (_, Some(ObjectMode::Audit)) => EffectiveMode::Audit,
        (Mode::Enforce, None) => EffectiveMode::Enforce,
    }
}

/// Every mutation the rules ask for, in order: pod spec first (the grace
/// period depends on the injected preStop), then the rollout strategy.
fn plan_mutations(workload: &Workload, ctx: &Context<'_>) -> Vec<Mutation> {
    let mut mutations = prestop::plan(&workload.pod_spec, ctx);
    let injected_sleep = mutations
        .iter()
        .find(|m| m.rule == Rule::PrestopSleep && m.action == Action::Apply)
        .and(prestop::configured_sleep(ctx));
    mutations.extend(readiness::plan(&workload.pod_spec, ctx));
    let grace = grace::plan(&workload.pod_spec, ctx, injected_sleep);
    let planned_grace = grace
        .iter()
        .find(|m| m.action == Action::Apply)
        .and_then(|m| m.new.as_i64());
    mutations.extend(grace);
    mutations.extend(strategy::plan(workload, ctx, planned_grace));
    mutations
}

/// Writes applied mutations into the document, then records them: the
/// `rollguard.io/mutated` annotation, and the workload's rollguard settings
/// copied to its pod template so the pods it creates reach the same decisions.
fn apply(
    doc: &mut Value,
    mutations: &[Mutation],
    workload: &Workload,
    ctx: &Context<'_>,
    writes: &mut patch::Writes,
) -> Result<(), EngineError> {
    let mut applied: Vec<Rule> = Vec::new();
    for mutation in mutations.iter().filter(|m| m.action == Action::Apply) {
        write(
            writes,
            doc,
            &mutation.path,
            mutation.new.clone(),
            &mutation.field,
        )?;
        if !applied.contains(&mutation.rule) {
            applied.push(mutation.rule);
        }
    }
    if !applied.is_empty() {
        let mut recorded: Vec<String> = workload
            .annotations
            .get(annotations::MUTATED)
            .map(|text| {
                text.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        for rule in applied {
            if !recorded.iter().any(|r| r == rule.name()) {
                recorded.push(rule.name().to_string());
            }
        }
        write(
            writes,
            doc,
            &crate::path!["metadata", "annotations", annotations::MUTATED],
            Value::String(recorded.join(",")),
            "metadata.annotations",
        )?;
    }
    copy_to_template(workload, ctx.kind, &annotations::SETTINGS_KEYS, writes, doc)
}

fn write(
    writes: &mut patch::Writes,
    doc: &mut Value,
    path: &[Step],
    value: Value,
    field: &str,
) -> Result<(), EngineError> {
    if writes.set(doc, path, value) {
        Ok(())
    } else {
        Err(EngineError::Unwritable {
            field: field.to_string(),
        })
    }
}

/// Rules whose violation the API server refuses on its own, between the
/// mutating and the validating webhooks: the validating webhook never sees
/// such an object, so `/mutate` judges them and denies with rollguard's
/// message (rule, fix, waiver) instead of the API server's bare one.
pub const REFUSED_BY_API_SERVER: [Rule; 2] =
    [Rule::MinReadyExceedsDeadline, Rule::PrestopExceedsGrace];

fn judge_refused_by_api_server(
    kind: WorkloadKind,
    received: &Workload,
    would_admit: &Value,
    mutations: &[Mutation],
    ctx: &Context<'_>,
) -> Result<Vec<Violation>, EngineError> {
    // Re-read only when something was written: most objects are judged as received.
    let rewritten;
    let judged = if mutations.iter().any(|m| m.action == Action::Apply) {
        rewritten = Workload::read(kind, would_admit)?;
        &rewritten
    } else {
        received
    };
    // Only the checks of these rules: the others wait for the validating webhook.
    let mut found = prestop::check(&judged.pod_spec, ctx);
    found.extend(strategy::check_min_ready(judged));
    debug_assert!(found
        .iter()
        .all(|f| REFUSED_BY_API_SERVER.contains(&f.rule)));
    Ok(violations(found, ctx))
}

/// Every validation finding, with the configured action and waivers applied.
fn judge(workload: &Workload, ctx: &Context<'_>, problems: &[Problem]) -> Vec<Violation> {
    let mut found: Vec<Finding> = problems.iter().map(findings::annotation_problem).collect();
    found.extend(grace::check(&workload.pod_spec, ctx));
    found.extend(prestop::check(&workload.pod_spec, ctx));
    found.extend(readiness::check(&workload.pod_spec, ctx));
    found.extend(strategy::check(workload, ctx));
    violations(found, ctx)
}

/// Findings as violations, with the configured action and waivers applied.
fn violations(found: Vec<Finding>, ctx: &Context<'_>) -> Vec<Violation> {
    found
        .into_iter()
        .filter_map(|finding| {
            let action = ctx.action(finding.rule);
            let waived = action == Action::Deny && ctx.declared.waive.contains(&finding.rule);
            match action {
                Action::Off | Action::Apply => None,
                Action::Deny if waived => Some(Violation::new(finding, Action::Warn, true)),
                action => Some(Violation::new(finding, action, false)),
            }
        })
        .collect()
}
