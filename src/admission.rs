//! AdmissionReview in, AdmissionReview out. Decodes the envelope with kube's
//! admission types and the object as raw JSON, keeping only the fields the
//! rules read or write ([`crate::pruned`]), and encodes the reply in the exact
//! wire form the API server accepts. The patch touches only the places
//! rollguard writes, so fields it skipped or does not know are never dropped.

use std::collections::BTreeMap;

use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use kube::core::{DynamicObject, TypeMeta};
use serde::Serialize;
use serde_json::Value;

use crate::outcome::Outcome;
use crate::policy::{self, EffectiveMode, Mode, Stage, Verdict};
use crate::pruned::{self, Expect, Keep};
use crate::rules::{Action, Rule};
use crate::settings::Settings;
use crate::workload::MAX_CONTAINERS_REVIEWED;
use crate::workload::{WorkloadKind, OBJECT_SHAPE};

const API_VERSION: &str = "admission.k8s.io/v1";

/// The admission routes the server exposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// `POST /mutate`: enforce-mode mutation (MutatingWebhookConfiguration).
    Mutate,
    /// `POST /validate`: enforce-mode validation (ValidatingWebhookConfiguration).
    Validate,
    /// `POST /audit`: report-only, every finding as a warning.
    Audit,
}

impl Route {
    pub const ALL: [Route; 3] = [Route::Mutate, Route::Validate, Route::Audit];

    pub fn path(self) -> &'static str {
        match self {
            Route::Mutate => "/mutate",
            Route::Validate => "/validate",
            Route::Audit => "/audit",
        }
    }

    /// Short name, used as a metrics label.
    pub fn name(self) -> &'static str {
        &self.path()[1..]
    }

    fn stage(self) -> Stage {
        match self {
            Route::Mutate => Stage::Mutate,
            Route::Validate => Stage::Validate,
            Route::Audit => Stage::Full,
        }
    }
}

/// What the policy side of the server needs: the settings, and whether the
/// whole server runs report-only (`--audit`).
#[derive(Debug, Clone, Default)]
pub struct PolicyConfig {
    pub settings: Settings,
    pub audit_only: bool,
}

/// What one review produced, for the HTTP layer to send, log and count.
#[derive(Debug, Clone)]
pub struct ReviewReply {
    /// HTTP status: 200 for any answered review, 400 for a body that is not
    /// an AdmissionReview, 500 for an internal error.
    pub status: u16,
    /// Response body: JSON AdmissionReview for 200, plain text otherwise.
    pub body: Vec<u8>,
    pub log: ReviewLog,
}

/// The facts about a review worth logging and counting. Never the object body.
#[derive(Debug, Clone, Default)]
pub struct ReviewLog {
    pub uid: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub operation: String,
    pub outcome: Outcome,
    pub rules: Vec<String>,
    pub warnings: usize,
    /// Mutation rules that changed the object (enforce mode), each once.
    pub mutated: Vec<Rule>,
    /// Violations in enforce mode, each rule once per action: `Deny`, or
    /// `Warn` (configured to warn, or a waived denial).
    pub violations: Vec<(Rule, Action)>,
    /// Audit mode: rules that would have mutated or judged the object, each once.
    pub audit_findings: Vec<Rule>,
    /// The object lowered its mode to `off` and was left alone.
    pub skipped: bool,
}

/// Answers one admission review body for a route.
pub fn answer(route: Route, body: &[u8], config: &PolicyConfig) -> ReviewReply {
    answer_read_as(route, body, config, Some(&REVIEW_SHAPE))
}

/// What of a review the webhook reads: the request's envelope as far as
/// kube's `AdmissionRequest` types it, its object as far as the rules use it,
/// not its `oldObject`. Members of no known type are skipped, and lists no
/// rule reads are checked but not built, so memory per review follows what
/// is read, not what is sent (a review whose envelope carries millions of
/// array elements costs what its bytes cost).
static REVIEW_SHAPE: Keep = Keep::Members(
    &[
        ("apiVersion", &SCALAR),
        ("kind", &SCALAR),
        (
            "request",
            &Keep::Members(
                &[
                    ("object", &OBJECT_SHAPE),
                    ("oldObject", &Keep::Skip),
                    ("uid", &SCALAR),
                    ("kind", &GROUP_VERSION),
                    ("resource", &GROUP_VERSION),
                    ("subResource", &SCALAR),
                    ("requestKind", &GROUP_VERSION),
                    ("requestResource", &GROUP_VERSION),
                    ("requestSubResource", &SCALAR),
                    ("name", &SCALAR),
                    ("namespace", &SCALAR),
                    ("operation", &SCALAR),
                    (
                        "userInfo",
                        &Keep::Members(
                            &[
                                ("username", &SCALAR),
                                ("uid", &SCALAR),
                                ("groups", &Keep::Check(Expect::Strings)),
                                ("extra", &Keep::Check(Expect::StringLists)),
                            ],
                            &Keep::Skip,
                        ),
                    ),
                    ("dryRun", &SCALAR),
                    // A RawExtension: any JSON is valid, none is read.
                    ("options", &Keep::Skip),
                ],
                &Keep::Skip,
            ),
        ),
    ],
    &Keep::Skip,
);

static SCALAR: Keep = Keep::Check(Expect::Scalar);

/// A GroupVersionKind or GroupVersionResource.
static GROUP_VERSION: Keep = Keep::Members(
    &[
        ("group", &SCALAR),
        ("version", &SCALAR),
        ("kind", &SCALAR),
        ("resource", &SCALAR),
    ],
    &Keep::Skip,
);

/// [`answer`], reading the whole review with `serde_json::from_slice`: what
/// tests compare [`answer`] against, to show that the fields it skips change
/// nothing.
#[doc(hidden)]
pub fn answer_reading_everything(route: Route, body: &[u8], config: &PolicyConfig) -> ReviewReply {
    answer_read_as(route, body, config, None)
}

fn answer_read_as(
    route: Route,
    body: &[u8],
    config: &PolicyConfig,
    shape: Option<&'static Keep>,
) -> ReviewReply {
    let mut request = match decode(body, shape) {
        Ok(request) => request,
        Err(message) => return plain(400, message, ReviewLog::default(), Outcome::BadRequest),
    };
    let mut log = ReviewLog {
        uid: request.uid.clone(),
        kind: request.kind.kind.clone(),
        namespace: request.namespace.clone().unwrap_or_default(),
        name: display_name(&request.name, request.object.as_ref()),
        operation: operation_name(&request.operation).to_string(),
        ..ReviewLog::default()
    };
    let kind = WorkloadKind::from_gvk(
        &request.kind.group,
        &request.kind.version,
        &request.kind.kind,
    )
    .filter(|kind| handles(*kind, &request.operation));
    let (Some(kind), Some(object)) = (kind, request.object.take()) else {
        log.outcome = Outcome::Ignored;
        return reply(AdmissionResponse::from(&request), log);
    };
    if has_too_many_containers(&object) {
        log.outcome = Outcome::Skipped;
        log.skipped = true;
        let mut response = AdmissionResponse::from(&request);
        response.warnings = Some(vec![format!(
            "rollguard did not review this {kind}: more than the {MAX_CONTAINERS_REVIEWED} containers it reviews"
        )]);
        log.warnings = 1;
        return reply(response, log);
    }
    let mode = if config.audit_only || route == Route::Audit {
        Mode::Audit
    } else {
        Mode::Enforce
    };
    match policy::evaluate_owned(kind, object, route.stage(), mode, &config.settings) {
        Ok(verdict) => {
            let response = respond(&request, &verdict, &mut log);
            match response {
                Ok(response) => reply(response, log),
                Err(message) => plain(500, message, log, Outcome::Error),
            }
        }
        Err(err) => plain(
            500,
            format!("rollguard could not evaluate {kind} {}: {err}", log.name),
            log,
            Outcome::Error,
        ),
    }
}

/// Whether the object's pod spec has more than [`MAX_CONTAINERS_REVIEWED`]
/// containers (the pruned read stops counting just past it).
fn has_too_many_containers(object: &Value) -> bool {
    let Some(spec) = object.get("spec") else {
        return false;
    };
    let pod_spec = spec
        .get("template")
        .and_then(|template| template.get("spec"))
        .unwrap_or(spec);
    let count = pod_spec
        .get("containers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    count > MAX_CONTAINERS_REVIEWED
}

/// The request with the object kept as raw JSON (pruned to what the rules
/// use): the typed envelope is read without it.
struct Request {
    uid: String,
    kind: kube::core::GroupVersionKind,
    name: String,
    namespace: Option<String>,
    operation: Operation,
    object: Option<Value>,
    envelope: AdmissionRequest<DynamicObject>,
}

impl From<&Request> for AdmissionResponse {
    fn from(request: &Request) -> Self {
        AdmissionResponse::from(&request.envelope)
    }
}

fn decode(body: &[u8], shape: Option<&'static Keep>) -> Result<Request, String> {
    let parsed = match shape {
        Some(shape) => pruned::from_slice(body, shape),
        None => serde_json::from_slice(body),
    };
    let mut review = parsed.map_err(|err| format!("request body is not JSON: {err}"))?;
    let api_version = review
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = review.get("kind").and_then(Value::as_str).unwrap_or("");
    if kind != "AdmissionReview" || api_version != API_VERSION {
        return Err(format!(
            "expected an AdmissionReview of apiVersion {API_VERSION}, got kind {kind:?} apiVersion {api_version:?}; \
             set admissionReviewVersions: [v1] in the webhook configuration"
        ));
    }
    let Some(Value::Object(mut request)) = review
        .as_object_mut()
        .and_then(|review| review.remove("request"))
    else {
        return Err("AdmissionReview has no request".to_string());
    };
    let object = request.remove("object").filter(|o| !o.is_null());
    request.remove("oldObject");
    // The request alone: kube's AdmissionReview flattens its type fields, which
    // makes serde buffer the whole request once more before reading it.
    let mut envelope: AdmissionRequest<DynamicObject> =
        serde_json::from_value(Value::Object(request))
            .map_err(|err| format!("AdmissionReview request is malformed: {err}"))?;
    envelope.types = TypeMeta {
        api_version: API_VERSION.to_string(),
        kind: "AdmissionReview".to_string(),
    };
    if envelope.uid.is_empty() {
        return Err("AdmissionReview request has an empty uid".to_string());
    }
    if object.as_ref().is_some_and(|o| !o.is_object()) {
        return Err("AdmissionReview request.object is not a JSON object".to_string());
    }
    Ok(Request {
        uid: envelope.uid.clone(),
        kind: envelope.kind.clone(),
        name: envelope.name.clone(),
        namespace: envelope.namespace.clone(),
        operation: envelope.operation.clone(),
        object,
        envelope,
    })
}

fn handles(kind: WorkloadKind, operation: &Operation) -> bool {
    match kind {
        // A running pod's spec is immutable: only creation can be shaped.
        WorkloadKind::Pod => matches!(operation, Operation::Create),
        _ => matches!(operation, Operation::Create | Operation::Update),
    }
}

fn operation_name(operation: &Operation) -> &'static str {
    match operation {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

/// Pods created by a ReplicaSet have no name yet, only a generateName prefix.
fn display_name(name: &str, object: Option<&Value>) -> String {
    if !name.is_empty() {
        return name.to_string();
    }
    let metadata = object.and_then(|o| o.get("metadata"));
    if let Some(name) = metadata.and_then(|m| m.get("name")).and_then(Value::as_str) {
        return name.to_string();
    }
    match metadata
        .and_then(|m| m.get("generateName"))
        .and_then(Value::as_str)
    {
        Some(prefix) => format!("{prefix}*"),
        None => String::new(),
    }
}

/// The patch as the JSON the reply carries (`encode` writes it as base64
/// with patchType JSONPatch; kube's `with_patch` would take a copy first).
fn patch_bytes(patch: &json_patch::Patch) -> Result<Vec<u8>, String> {
    serde_json::to_vec(patch).map_err(|err| format!("cannot encode the patch: {err}"))
}

fn respond(
    request: &Request,
    verdict: &Verdict,
    log: &mut ReviewLog,
) -> Result<AdmissionResponse, String> {
    let mut response = AdmissionResponse::from(request);
    log.rules = verdict
        .rules_fired()
        .iter()
        .map(|r| r.name().to_string())
        .collect();
    let mut warnings = Vec::new();
    let mut audit: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    // The full text behind each (short) warning, for the audit log.
    let mut details: Vec<String> = Vec::new();
    match verdict.mode {
        EffectiveMode::Off => {
            log.outcome = Outcome::Skipped;
            log.skipped = true;
            // The only patch of an "off" object: its mode copied into the
            // pod template, so its pods are left alone too.
            if !verdict.patch.0.is_empty() {
                response.patch = Some(patch_bytes(&verdict.patch)?);
            }
            return Ok(response);
        }
        EffectiveMode::Audit => {
            for m in &verdict.mutations {
                warnings.push(m.warning("rollguard audit ", "would set"));
                details.push(m.describe());
                audit.entry("would-mutate").or_default().push(m.rule.name());
            }
            for v in &verdict.violations {
                let verb = if v.action == Action::Deny {
                    "would deny"
                } else {
                    "warns"
                };
                warnings.push(v.warning(&format!("rollguard audit {verb} ")));
                details.push(v.message());
                let key = if v.action == Action::Deny {
                    "would-deny"
                } else {
                    "would-warn"
                };
                audit.entry(key).or_default().push(v.rule.name());
            }
            log.audit_findings = verdict.rules_fired();
            log.outcome = Outcome::Audited;
        }
        EffectiveMode::Enforce => {
            for m in verdict
                .mutations
                .iter()
                .filter(|m| m.action == Action::Warn)
            {
                warnings.push(m.warning("rollguard ", "suggests setting"));
                details.push(m.describe());
                audit.entry("suggested").or_default().push(m.rule.name());
            }
            for m in verdict
                .mutations
                .iter()
                .filter(|m| m.action == Action::Apply)
            {
                audit.entry("mutated").or_default().push(m.rule.name());
            }
            for v in verdict
                .violations
                .iter()
                .filter(|v| v.action == Action::Warn)
            {
                warnings.push(v.warning("rollguard "));
                details.push(v.message());
                let key = if v.waived { "waived" } else { "warned" };
                audit.entry(key).or_default().push(v.rule.name());
            }
            for v in &verdict.violations {
                if !log.violations.contains(&(v.rule, v.action)) {
                    log.violations.push((v.rule, v.action));
                }
            }
            let denials: Vec<String> = verdict.denials().map(|v| v.message()).collect();
            if !denials.is_empty() {
                for v in verdict.denials() {
                    audit.entry("denied").or_default().push(v.rule.name());
                }
                response = response.deny(denials.join("\n"));
                log.outcome = Outcome::Denied;
            } else if !verdict.patch.0.is_empty() {
                response.patch = Some(patch_bytes(&verdict.patch)?);
                for m in verdict
                    .mutations
                    .iter()
                    .filter(|m| m.action == Action::Apply)
                {
                    if !log.mutated.contains(&m.rule) {
                        log.mutated.push(m.rule);
                    }
                }
                log.outcome = Outcome::Patched;
            } else {
                log.outcome = Outcome::Allowed;
            }
        }
    }
    for (key, mut rules) in audit {
        rules.dedup();
        response
            .audit_annotations
            .insert(key.to_string(), rules.join(","));
    }
    if !details.is_empty() {
        response
            .audit_annotations
            .insert("detail".to_string(), details.join("\n"));
    }
    log.warnings = warnings.len();
    if !warnings.is_empty() {
        response.warnings = Some(warnings);
    }
    Ok(response)
}

fn reply(response: AdmissionResponse, log: ReviewLog) -> ReviewReply {
    match encode(response) {
        Ok(body) => ReviewReply {
            status: 200,
            body,
            log,
        },
        Err(message) => plain(500, message, log, Outcome::Error),
    }
}

/// Serialises the reply. kube's response type would write the patch as an
/// array of numbers; the API server only accepts a base64 string, with
/// `patchType: JSONPatch` beside it.
pub fn encode(response: AdmissionResponse) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    let review = WireReview {
        api_version: API_VERSION,
        kind: "AdmissionReview",
        response: WireResponse {
            uid: &response.uid,
            allowed: response.allowed,
            status: &response.result,
            patch_type: response.patch.as_ref().map(|_| "JSONPatch"),
            patch: response
                .patch
                .as_ref()
                .map(|bytes| base64::engine::general_purpose::STANDARD.encode(bytes)),
            // Sorted: the same review always gets the same bytes.
            audit_annotations: response
                .audit_annotations
                .iter()
                .map(|(key, value)| (key.as_str(), value.as_str()))
                .collect(),
            warnings: response.warnings.as_deref(),
        },
    };
    serde_json::to_vec(&review).map_err(|err| format!("cannot encode the AdmissionReview: {err}"))
}

/// The reply as the API server reads it (`admission.k8s.io/v1`), written
/// straight from kube's response without an intermediate JSON tree.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireReview<'a> {
    api_version: &'static str,
    kind: &'static str,
    response: WireResponse<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireResponse<'a> {
    uid: &'a str,
    allowed: bool,
    status: &'a kube::core::Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    audit_annotations: BTreeMap<&'a str, &'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    warnings: Option<&'a [String]>,
}

fn plain(status: u16, message: String, mut log: ReviewLog, outcome: Outcome) -> ReviewReply {
    log.outcome = outcome;
    ReviewReply {
        status,
        body: message.into_bytes(),
        log,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    /// `encode` writes kube's response fields itself (to put the patch in as
    /// base64); it must write every field kube's own serialisation writes, so
    /// a field a newer kube adds is not silently dropped.
    #[test]
    fn the_reply_carries_every_field_of_kubes_own_serialisation() {
        let body = include_bytes!("../tests/fixtures/admission/pod-create.json");
        let request = decode(body, None).expect("a captured review");
        let patch: json_patch::Patch = serde_json::from_value(serde_json::json!([
            {"op": "add", "path": "/metadata/annotations", "value": {"a/b": "c"}}
        ]))
        .unwrap();
        let mut allowed = AdmissionResponse::from(&request).with_patch(patch).unwrap();
        allowed.warnings = Some(vec!["careful".to_string()]);
        allowed
            .audit_annotations
            .insert("mutated".to_string(), "prestop-sleep".to_string());
        let denied = AdmissionResponse::from(&request).deny("no");
        for response in [allowed, denied, AdmissionResponse::from(&request)] {
            let mut kubes = serde_json::to_value(response.clone().into_review()).unwrap();
            if let Some(numbers) = kubes["response"].get("patch").cloned() {
                let bytes: Vec<u8> = serde_json::from_value(numbers).unwrap();
                kubes["response"]["patch"] =
                    Value::from(base64::engine::general_purpose::STANDARD.encode(bytes));
            }
            let ours: Value = serde_json::from_slice(&encode(response).unwrap()).unwrap();
            assert_eq!(ours, kubes);
        }
    }
}
