//! The policy engine: a pure function from an object and the settings to a
//! verdict (mutations, the patch, violations). No I/O, no clock, no globals:
//! the webhook ([`evaluate_view`], on the view it read from the review), `rollguard
//! check` and the tests ([`evaluate`]) run the same code.

mod findings;
pub mod grace;
pub mod prestop;
pub mod readiness;
pub mod serving;
pub mod strategy;

use std::borrow::Cow;

use serde_json::Value;
use thiserror::Error;

use crate::annotations::{self, Declared, ObjectMode, Problem};
use crate::patch::{self, Step};
use crate::rules::{Action, Rule};
use crate::settings::Settings;
use crate::workload::{ObjectView, ReadError, Workload, WorkloadKind, MAX_CONTAINERS_REVIEWED};

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

// The modes' words, as reports print them, `--mode` reads them and
// namespaces' `rollguard.io/mode` labels spell them; an object's own mode
// uses the annotation's words.
impl EffectiveMode {
    pub const ALL: [EffectiveMode; 3] = [
        EffectiveMode::Enforce,
        EffectiveMode::Audit,
        EffectiveMode::Off,
    ];

    pub fn label(self) -> &'static str {
        match self {
            EffectiveMode::Enforce => "enforce",
            EffectiveMode::Audit => ObjectMode::Audit.label(),
            EffectiveMode::Off => ObjectMode::Off.label(),
        }
    }
}

impl std::str::FromStr for EffectiveMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::label::parse(&EffectiveMode::ALL, EffectiveMode::label, s).ok_or_else(|| {
            format!(
                "unknown mode {s:?}: accepted values are {}",
                crate::label::list(&EffectiveMode::ALL, EffectiveMode::label)
            )
        })
    }
}

impl From<Mode> for EffectiveMode {
    fn from(mode: Mode) -> EffectiveMode {
        match mode {
            Mode::Enforce => EffectiveMode::Enforce,
            Mode::Audit => EffectiveMode::Audit,
        }
    }
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
    /// containers[app].lifecycle.preStop to sleep seconds 10`. A long
    /// container name is shortened to fit ([`findings::fit`]); the rule and
    /// the value are never cut. Only a value too long for any line is left
    /// out, pointing to the audit annotation that carries
    /// [`Mutation::describe`].
    pub fn warning(&self, prefix: &str, verb: &str) -> String {
        let head = format!("{prefix}{}: {verb} ", self.rule);
        let field = short_field(&self.field);
        findings::fit(&head, field, &format!(" to {}", words(&self.new)))
            .or_else(|| findings::fit(&head, field, " (value in audit annotation detail)"))
            .unwrap_or_else(|| short_warning(&format!("{head}{field}")))
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
    /// The object as rollguard admits it (the document with the patch
    /// applied) from [`evaluate`]; null from [`evaluate_view`], which has no
    /// whole document.
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
    /// More containers than rollguard reviews ([`MAX_CONTAINERS_REVIEWED`]):
    /// the object is left alone.
    #[error("rollguard did not review this {kind}: more than the {MAX_CONTAINERS_REVIEWED} containers it reviews")]
    TooManyContainers { kind: WorkloadKind },
    /// Lists or strings past what rollguard reads (`workload::MAX_ITEMS_REVIEWED`,
    /// `MAX_TEXT_BYTES_REVIEWED`): the view holds part of them, the object is left alone.
    #[error("rollguard did not review this {kind}: it has more than the {} list items or {} MiB of text it reads", crate::workload::MAX_ITEMS_REVIEWED, crate::workload::MAX_TEXT_BYTES_REVIEWED >> 20)]
    OverReadLimit { kind: WorkloadKind },
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

/// Evaluates one parsed document, as `rollguard check` and the tests do:
/// [`Verdict::admitted`] is the document with the patch applied.
pub fn evaluate(request: &EvalRequest<'_>, settings: &Settings) -> Result<Verdict, EngineError> {
    let view = ObjectView::from_value(request.object).map_err(|e| e.of(request.kind))?;
    let mut verdict = evaluate_view(request.kind, &view, request.stage, request.mode, settings)?;
    let mut admitted = request.object.clone();
    if !verdict.patch.0.is_empty() {
        json_patch::patch(&mut admitted, &verdict.patch).map_err(|err| {
            EngineError::Unwritable {
                field: err.to_string(),
            }
        })?;
    }
    verdict.admitted = admitted;
    Ok(verdict)
}

/// Evaluates the typed view of an object, as the webhook does with the view
/// it read from the review's bytes. [`Verdict::admitted`] is left null: the
/// webhook has no whole document, only the patch to send.
pub fn evaluate_view(
    kind: WorkloadKind,
    view: &ObjectView,
    stage: Stage,
    mode: Mode,
    settings: &Settings,
) -> Result<Verdict, EngineError> {
    if view.is_over_read_limit() {
        return Err(EngineError::OverReadLimit { kind });
    }
    let received = Workload::from_view(kind, view)?;
    if received.has_too_many_containers() {
        return Err(EngineError::TooManyContainers { kind });
    }
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
        if requested == Mode::Enforce && stage != Stage::Validate {
            let writes = copy_to_template(&received, kind, &[annotations::MODE]);
            verdict.patch = build_patch(kind, view, &writes)?.0;
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
        return Ok(verdict);
    }
    // Everything else judges what enforce mode would store: the object with
    // the patch applied. Enforce mode sends that patch; audit mode admits
    // the object unchanged.
    // Invalid annotations stop every change to the object.
    let mutations = if problems.is_empty() {
        plan_mutations(&received, &ctx)
    } else {
        Vec::new()
    };
    let writes = if problems.is_empty() {
        writes_of(&mutations, &received, &ctx)
    } else {
        Vec::new()
    };
    let (patch, would_admit) = build_patch(kind, view, &writes)?;
    drop(writes);
    if stage != Stage::Mutate {
        let judged = reread(kind, would_admit, received)?;
        verdict.violations = judge(&judged, &ctx, &problems);
    } else if enforced {
        let judged = reread(kind, would_admit, received)?;
        verdict.violations = judge_refused_by_api_server(&judged, &ctx);
    }
    if stage != Stage::Validate {
        verdict.mutations = mutations;
    }
    if enforced {
        verdict.patch = patch;
    }
    Ok(verdict)
}

/// The patch of `writes` against the view, and the view with it applied
/// (`None` when nothing changes): what the rules judge as admitted.
fn build_patch(
    kind: WorkloadKind,
    view: &ObjectView,
    writes: &[patch::Write<'_>],
) -> Result<(json_patch::Patch, Option<ObjectView>), EngineError> {
    if writes.is_empty() {
        return Ok((json_patch::Patch::default(), None));
    }
    let mut json = view.to_json();
    let patch = patch::build_and_apply(&mut json, writes)
        .map_err(|err| EngineError::Unwritable { field: err.pointer })?;
    if patch.0.is_empty() {
        return Ok((patch, None));
    }
    let admitted = ObjectView::from_value(&json).map_err(|e| e.of(kind))?;
    // The writes took an object at the read limit past it: never judge part.
    if admitted.is_over_read_limit() {
        return Err(EngineError::OverReadLimit { kind });
    }
    Ok((patch, Some(admitted)))
}

/// The workload as it would be admitted: read again from the patched view,
/// or the received one when nothing changes.
fn reread(
    kind: WorkloadKind,
    would_admit: Option<ObjectView>,
    received: Workload,
) -> Result<Workload, EngineError> {
    match would_admit {
        Some(view) => {
            drop(received);
            Ok(Workload::from_owned_view(kind, view)?)
        }
        None => Ok(received),
    }
}

/// `rollguard.io/mode: off` written on the workload only would leave its pods
/// to the Pod webhook, which sees only the template's annotations: the one
/// change made to an "off" workload is copying that annotation into its pod
/// template, so its pods are left alone too. Nothing else is touched.
///
/// Copies the workload's own values of `keys` into its pod template's
/// annotations where they differ, so its pods reach the same decisions.
fn copy_to_template(
    workload: &Workload,
    kind: WorkloadKind,
    keys: &[&'static str],
) -> Vec<patch::Write<'static>> {
    let Some(template_path) = kind.template_annotations_path() else {
        return Vec::new();
    };
    keys.iter()
        .filter_map(|key| {
            let value = workload.annotations.get(*key)?;
            (workload.template_annotations.get(*key) != Some(value)).then(|| {
                let mut path = template_path.clone();
                path.push(Step::from(*key));
                patch::Write {
                    path: Cow::Owned(path),
                    value: Cow::Owned(Value::String(value.clone())),
                }
            })
        })
        .collect()
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

/// The writes of the applied mutations and their record: the
/// `rollguard.io/mutated` annotation, and the workload's rollguard settings
/// copied to its pod template so the pods it creates reach the same decisions.
/// Metadata first, then the spec, as the patch lists them.
fn writes_of<'a>(
    mutations: &'a [Mutation],
    workload: &Workload,
    ctx: &Context<'_>,
) -> Vec<patch::Write<'a>> {
    let applied: Vec<&Mutation> = mutations
        .iter()
        .filter(|m| m.action == Action::Apply)
        .collect();
    let mut writes = Vec::new();
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
        for mutation in &applied {
            if !recorded.iter().any(|r| r == mutation.rule.name()) {
                recorded.push(mutation.rule.name().to_string());
            }
        }
        let path: Vec<Step> = crate::path!["metadata", "annotations", annotations::MUTATED].into();
        writes.push(patch::Write {
            path: Cow::Owned(path),
            value: Cow::Owned(Value::String(recorded.join(","))),
        });
    }
    writes.extend(copy_to_template(
        workload,
        ctx.kind,
        &annotations::SETTINGS_KEYS,
    ));
    writes.extend(applied.into_iter().map(|m| patch::Write {
        path: Cow::Borrowed(m.path.as_slice()),
        value: Cow::Borrowed(&m.new),
    }));
    writes
}

/// Rules with a case the API server refuses on its own, between the mutating
/// and the validating webhooks: the validating webhook never sees such an
/// object, so `/mutate` judges exactly that case and denies with rollguard's
/// message (rule, fix, waiver) instead of the API server's bare one. Only
/// that case: `min-ready-exceeds-deadline` whole (minReadySeconds >=
/// progressDeadlineSeconds), but of `prestop-exceeds-grace` only a native
/// sleep above the grace period; an exec sleep, or one equal to the grace
/// period, is admitted by the API server and judged by `/validate`.
pub const REFUSED_BY_API_SERVER: [Rule; 2] =
    [Rule::MinReadyExceedsDeadline, Rule::PrestopExceedsGrace];

fn judge_refused_by_api_server(judged: &Workload, ctx: &Context<'_>) -> Vec<Violation> {
    // Only the API server's own checks: the rest waits for the validating webhook.
    let mut found = prestop::check_refused_by_api_server(&judged.pod_spec, ctx);
    found.extend(strategy::check_min_ready(judged));
    debug_assert!(found
        .iter()
        .all(|f| REFUSED_BY_API_SERVER.contains(&f.rule)));
    violations(found, ctx)
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
