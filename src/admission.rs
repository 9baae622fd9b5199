//! AdmissionReview in, AdmissionReview out. Reads the envelope with kube's
//! admission types and the object as the engine's typed view, straight from
//! the bytes (members no one reads are skipped, not built), and encodes the
//! reply in the exact wire form the API server accepts. The patch touches
//! only the places rollguard writes, so fields it skipped or does not know
//! are never dropped.

use std::collections::BTreeMap;

use kube::core::admission::{AdmissionResponse, Operation};
use kube::core::{GroupVersionKind, GroupVersionResource, TypeMeta};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::outcome::Outcome;
use crate::policy::{self, EffectiveMode, EngineError, Mode, Stage, Verdict};
use crate::rules::{Action, Rule};
use crate::settings::Settings;
use crate::strict_json;
use crate::workload::{without_position, ObjectView, ViewError, WorkloadKind};

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
    answer_read_as(route, body, config, Reading::Typed)
}

/// [`answer`], reading the whole review with `serde_json::from_slice` first
/// and the typed view from that: what tests compare [`answer`] against, to
/// show that the fields it skips change nothing.
#[doc(hidden)]
pub fn answer_reading_everything(route: Route, body: &[u8], config: &PolicyConfig) -> ReviewReply {
    answer_read_as(route, body, config, Reading::Everything)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// Straight from the bytes: the envelope and the object's view, every
    /// other member skipped without being built.
    Typed,
    /// The whole review parsed into a document first.
    Everything,
}

fn answer_read_as(
    route: Route,
    body: &[u8],
    config: &PolicyConfig,
    reading: Reading,
) -> ReviewReply {
    let mut request = match read_request(body, reading) {
        Ok(request) => request,
        Err(message) => return plain(400, message, ReviewLog::default(), Outcome::BadRequest),
    };
    let mut log = ReviewLog {
        uid: request.uid.clone(),
        kind: request.kind.kind.clone(),
        namespace: request.namespace.clone().unwrap_or_default(),
        name: request.name.clone(),
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
        return reply(request.response(), log);
    };
    let view = match object.into_view() {
        Ok(view) => view,
        // The envelope skipped the object's text quickly; reading it found
        // what a full parser refuses.
        Err(err) if err.not_json => {
            let message = format!("request body is not JSON: {}", err.reason);
            return plain(400, message, ReviewLog::default(), Outcome::BadRequest);
        }
        Err(err) => {
            let message = format!(
                "rollguard could not evaluate {kind} {}: {}",
                log.name,
                err.of(kind)
            );
            return plain(500, message, log, Outcome::Error);
        }
    };
    log.name = display_name(&request.name, &view);
    let mode = if config.audit_only || route == Route::Audit {
        Mode::Audit
    } else {
        Mode::Enforce
    };
    match policy::evaluate_view(kind, &view, route.stage(), mode, &config.settings) {
        Ok(verdict) => match respond(&request, &verdict, &mut log) {
            Ok(response) => reply(response, log),
            Err(message) => plain(500, message, log, Outcome::Error),
        },
        Err(err @ (EngineError::TooManyContainers { .. } | EngineError::OverReadLimit { .. })) => {
            log.outcome = Outcome::Skipped;
            log.skipped = true;
            let mut response = request.response();
            response.warnings = Some(vec![err.to_string()]);
            log.warnings = 1;
            reply(response, log)
        }
        Err(err) => plain(
            500,
            format!("rollguard could not evaluate {kind} {}: {err}", log.name),
            log,
            Outcome::Error,
        ),
    }
}

/// The review as read: its envelope, as far as kube's `AdmissionRequest`
/// types it, and its object, not yet read.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", bound(deserialize = "O: Deserialize<'de>"))]
struct Review<O> {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    // The envelope's objects read as the view's do: never from an array.
    #[serde(default, deserialize_with = "crate::workload::json_object")]
    request: Option<Request<O>>,
}

/// The fields of kube's `AdmissionRequest`, with its types and required
/// fields; `oldObject` and `options` (any JSON) are skipped, and the user's
/// groups and extra are checked, not built. The `_` fields are only checked.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", bound(deserialize = "O: Deserialize<'de>"))]
struct Request<O> {
    uid: String,
    kind: GroupVersionKind,
    #[serde(default)]
    name: String,
    namespace: Option<String>,
    operation: Operation,
    object: Option<O>,
    #[serde(rename = "resource")]
    _resource: GroupVersionResource,
    #[serde(rename = "subResource")]
    _sub_resource: Option<String>,
    #[serde(rename = "requestKind")]
    _request_kind: Option<GroupVersionKind>,
    #[serde(rename = "requestResource")]
    _request_resource: Option<GroupVersionResource>,
    #[serde(rename = "requestSubResource")]
    _request_sub_resource: Option<String>,
    #[serde(rename = "userInfo")]
    _user_info: UserInfo,
    #[serde(rename = "dryRun", default)]
    _dry_run: bool,
}

/// `userInfo`: required, its fields typed as k8s-openapi types them.
#[derive(Deserialize)]
struct UserInfo {
    #[serde(rename = "username")]
    _username: Option<String>,
    #[serde(rename = "uid")]
    _uid: Option<String>,
    #[serde(rename = "groups")]
    _groups: Option<strict_json::Strings>,
    #[serde(rename = "extra")]
    _extra: Option<strict_json::StringLists>,
}

/// What the rest of a review uses of its request.
struct Reviewed<'a> {
    uid: String,
    kind: GroupVersionKind,
    name: String,
    namespace: Option<String>,
    operation: Operation,
    object: Option<Object<'a>>,
}

/// A review's object: read in the envelope's own pass, or (when that pass
/// failed) its JSON text or a parsed document, not yet read.
enum Object<'a> {
    View(Box<ObjectView>),
    Text(&'a RawValue),
    Document(Value),
}

impl Object<'_> {
    fn into_view(self) -> Result<ObjectView, ViewError> {
        match self {
            Object::View(view) => Ok(*view),
            Object::Text(raw) => ObjectView::from_json(raw.get()),
            Object::Document(value) => ObjectView::from_value(&value),
        }
    }

    fn is_json_object(&self) -> bool {
        match self {
            Object::View(_) => true,
            Object::Text(raw) => raw.get().starts_with('{'),
            Object::Document(value) => value.is_object(),
        }
    }

    fn is_null(&self) -> bool {
        match self {
            Object::View(_) => false,
            Object::Text(raw) => raw.get() == "null",
            Object::Document(value) => value.is_null(),
        }
    }
}

/// The object read as the view in the envelope's pass: a JSON object only.
struct InlineView(ObjectView);

impl<'de> Deserialize<'de> for InlineView {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let view: Option<ObjectView> = crate::workload::json_object(deserializer)?;
        Ok(InlineView(view.unwrap_or_default()))
    }
}

impl Reviewed<'_> {
    /// The reply that allows the request, as kube's
    /// `AdmissionResponse::from(&AdmissionRequest)` makes it.
    fn response(&self) -> AdmissionResponse {
        let mut response = AdmissionResponse::invalid("");
        response.types = TypeMeta {
            api_version: API_VERSION.to_string(),
            kind: "AdmissionReview".to_string(),
        };
        response.uid = self.uid.clone();
        response.allowed = true;
        response.result = kube::core::Status::default();
        response
    }
}

/// Reviews up to this size that the one-pass reader refuses are read once
/// more through a parsed document (members written twice keep their last
/// value, as the API server's decoder keeps them); parsing a whole document
/// costs its size times a small factor, so larger ones are not.
const REREAD_LIMIT_BYTES: usize = 256 * 1024;

fn read_request(body: &[u8], reading: Reading) -> Result<Reviewed<'_>, String> {
    let not_json = |err: serde_json::Error| format!("request body is not JSON: {err}");
    let whole = |body: &[u8]| -> Result<Reviewed<'static>, String> {
        let value: Value = serde_json::from_slice(body).map_err(not_json)?;
        let review = Review::<Value>::deserialize(&value).map_err(malformed)?;
        checked(review, Object::Document)
    };
    if reading == Reading::Everything {
        return whole(body);
    }
    // One pass reads the envelope and the object's view.
    match strict_json::from_slice::<Review<InlineView>>(body) {
        Ok(review) => return checked(review, |inline| Object::View(Box::new(inline.0))),
        // A member written twice: derived readers refuse it, a parsed
        // document keeps the last value, as the API server's decoder does.
        // It also reads the object only for the kinds rollguard handles.
        Err(_) if body.len() <= REREAD_LIMIT_BYTES => return whole(body),
        Err(_) => {}
    }
    // A large review that failed: the envelope first, then the object, to
    // tell a malformed envelope (400) from an unreadable object (500).
    match strict_json::from_slice::<Review<&RawValue>>(body) {
        Ok(review) => checked(review, Object::Text),
        Err(err) if err.is_data() => Err(malformed(err)),
        Err(err) => Err(not_json(err)),
    }
}

fn malformed(err: serde_json::Error) -> String {
    format!(
        "AdmissionReview request is malformed: {}",
        without_position(err)
    )
}

fn checked<'a, O>(
    review: Review<O>,
    object: impl Fn(O) -> Object<'a>,
) -> Result<Reviewed<'a>, String> {
    let api_version = review.api_version.as_deref().unwrap_or("");
    let kind = review.kind.as_deref().unwrap_or("");
    if kind != "AdmissionReview" || api_version != API_VERSION {
        return Err(format!(
            "expected an AdmissionReview of apiVersion {API_VERSION}, got kind {kind:?} apiVersion {api_version:?}; \
             set admissionReviewVersions: [v1] in the webhook configuration"
        ));
    }
    let Some(request) = review.request else {
        return Err("AdmissionReview has no request".to_string());
    };
    if request.uid.is_empty() {
        return Err("AdmissionReview request has an empty uid".to_string());
    }
    let request = Reviewed {
        uid: request.uid,
        kind: request.kind,
        name: request.name,
        namespace: request.namespace,
        operation: request.operation,
        object: request.object.map(object).filter(|o| !o.is_null()),
    };
    if request.object.as_ref().is_some_and(|o| !o.is_json_object()) {
        return Err("AdmissionReview request.object is not a JSON object".to_string());
    }
    Ok(request)
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
fn display_name(name: &str, view: &ObjectView) -> String {
    if !name.is_empty() {
        return name.to_string();
    }
    let metadata = view.metadata.as_ref();
    if let Some(name) = metadata.and_then(|m| m.name.as_deref()) {
        return name.to_string();
    }
    match metadata.and_then(|m| m.generate_name.as_deref()) {
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
    request: &Reviewed<'_>,
    verdict: &Verdict,
    log: &mut ReviewLog,
) -> Result<AdmissionResponse, String> {
    let mut response = request.response();
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
    /// `encode` writes kube's response fields itself (to put the patch in as
    /// base64); it must write every field kube's own serialisation writes, so
    /// a field a newer kube adds is not silently dropped. And the reply
    /// rollguard starts from is the one kube makes from the same request.
    #[test]
    fn the_reply_carries_every_field_of_kubes_own_serialisation() {
        use kube::core::admission::{AdmissionRequest, AdmissionReview};
        use kube::core::DynamicObject;

        let body = include_bytes!("../tests/fixtures/admission/pod-create.json");
        let review: AdmissionReview<DynamicObject> =
            serde_json::from_slice(body).expect("a captured review");
        let kubes_request: AdmissionRequest<DynamicObject> = review.try_into().expect("a request");
        let ours = read_request(body, Reading::Typed).expect("a captured review");
        assert_eq!(
            serde_json::to_value(ours.response().into_review()).unwrap(),
            serde_json::to_value(AdmissionResponse::from(&kubes_request).into_review()).unwrap()
        );

        let patch: json_patch::Patch = serde_json::from_value(serde_json::json!([
            {"op": "add", "path": "/metadata/annotations", "value": {"a/b": "c"}}
        ]))
        .unwrap();
        let mut allowed = ours.response().with_patch(patch).unwrap();
        allowed.warnings = Some(vec!["careful".to_string()]);
        allowed
            .audit_annotations
            .insert("mutated".to_string(), "prestop-sleep".to_string());
        let denied = ours.response().deny("no");
        for response in [allowed, denied, ours.response()] {
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
