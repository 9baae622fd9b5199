//! The one typed view of the objects rollguard handles ([`ObjectView`]: the
//! fields the rules read, each with its k8s-openapi type), and the workload
//! the rules see in it, with Kubernetes' defaults applied ([`Workload`]).

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::apps::v1::{DeploymentStrategy, StatefulSetUpdateStrategy};
use k8s_openapi::api::core::v1::{ContainerPort, Lifecycle, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::marker::PhantomData;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use crate::k8s_semantics as k8s;
use crate::patch::Step;
use crate::path;
use crate::strict_json::{Bounded, ReadBudget};

/// The kinds rollguard applies rules to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
    Pod,
}

impl WorkloadKind {
    /// Recognises a group/version/kind; anything else is left alone.
    pub fn from_gvk(group: &str, version: &str, kind: &str) -> Option<Self> {
        match (group, version, kind) {
            ("apps", "v1", "Deployment") => Some(WorkloadKind::Deployment),
            ("apps", "v1", "StatefulSet") => Some(WorkloadKind::StatefulSet),
            ("apps", "v1", "DaemonSet") => Some(WorkloadKind::DaemonSet),
            ("", "v1", "Pod") => Some(WorkloadKind::Pod),
            _ => None,
        }
    }

    /// Recognises an object's `apiVersion` and `kind` fields.
    pub fn from_object(object: &Value) -> Option<Self> {
        let api_version = object.get("apiVersion")?.as_str()?;
        let kind = object.get("kind")?.as_str()?;
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        Self::from_gvk(group, version, kind)
    }

    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::Pod => "Pod",
        }
    }

    /// Where the pod spec lives in the object.
    pub fn pod_spec_path(self) -> Vec<Step> {
        match self {
            WorkloadKind::Pod => path!["spec"].into(),
            _ => path!["spec", "template", "spec"].into(),
        }
    }

    /// Where the pod template's annotations live (workloads only).
    pub fn template_annotations_path(self) -> Option<Vec<Step>> {
        match self {
            WorkloadKind::Pod => None,
            _ => Some(path!["spec", "template", "metadata", "annotations"].into()),
        }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The object could not be read as the kind it claims to be.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("cannot read {kind} field `{field}`: {reason}")]
pub struct ReadError {
    pub kind: WorkloadKind,
    pub field: String,
    pub reason: String,
}

/// Where reading an [`ObjectView`] failed, before the kind is known: the
/// field (`spec.replicas`; empty for the object itself) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewError {
    pub field: String,
    pub reason: String,
    /// The text is not JSON as a full parser reads it (nesting past its
    /// depth limit, a lone surrogate escape), rather than a field of the
    /// wrong type.
    pub not_json: bool,
}

impl ViewError {
    pub fn of(self, kind: WorkloadKind) -> ReadError {
        ReadError {
            kind,
            field: self.field,
            reason: self.reason,
        }
    }

    fn from_path(error: serde_path_to_error::Error<serde_json::Error>) -> Self {
        let field = error.path().to_string();
        let error = error.into_inner();
        ViewError {
            field: if field == "." { String::new() } else { field },
            not_json: !error.is_data(),
            reason: without_position(error),
        }
    }
}

/// serde_json's message without its ` at line L column C`: the same error
/// reads the same whether the object came from bytes or from a parsed value.
pub fn without_position(error: serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(at) if error.line() > 0 => text[..at].to_string(),
        _ => text,
    }
}

/// Rollout settings of a Deployment, with Kubernetes' defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollout {
    pub replicas: i32,
    /// `RollingUpdate`, `Recreate`, or whatever else was written.
    pub strategy_type: String,
    pub max_surge: IntOrString,
    pub max_unavailable: IntOrString,
    pub progress_deadline_seconds: i32,
}

impl Rollout {
    pub fn is_rolling_update(&self) -> bool {
        self.strategy_type == "RollingUpdate"
    }

    pub fn fenceposts(&self) -> Result<k8s::Fenceposts, String> {
        k8s::resolve_fenceposts(&self.max_surge, &self.max_unavailable, self.replicas)
    }
}

/// Update settings of a StatefulSet, with Kubernetes' defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatefulRollout {
    pub replicas: i32,
    /// `podManagementPolicy: OrderedReady` (the default) rather than Parallel.
    pub ordered: bool,
    /// `updateStrategy.type: OnDelete`.
    pub on_delete: bool,
    /// `rollingUpdate.maxUnavailable` resolved against replicas (rounded
    /// down, at least 1, as the StatefulSet controller does).
    pub max_unavailable: i32,
    /// `rollingUpdate.partition`.
    pub partition: i32,
    /// `maxUnavailable` as written, for messages.
    pub max_unavailable_written: Option<IntOrString>,
}

/// The object as the rules read it: every field any rule reads or writes,
/// each with its k8s-openapi type, and nothing else. It is deserialised
/// straight from a review's bytes (or from a parsed document, for `check`):
/// serde skips every member it does not name without building it, so this
/// struct is the one list of what rollguard reads. The engine writes only
/// below fields named here ([`crate::patch`] learns from this view which of
/// them exist), so fields it does not know are untouched by construction.
///
/// One view serves every kind: a Pod's pod spec is `spec`, a workload's is
/// `spec.template.spec`; each kind's reader takes the fields it has.
///
/// It is read within [`MAX_ITEMS_REVIEWED`] and [`MAX_TEXT_BYTES_REVIEWED`]
/// (see [`ObjectView::is_over_read_limit`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<Spec>,
    /// Some list or map was cut short at the read limit: the view is not the
    /// whole object, and no rule may judge or patch it.
    #[serde(skip)]
    over_read_limit: bool,
}

/// Most list elements and map entries (containers, ports, command and args
/// strings, probe headers, owner references, annotations; all lists and maps
/// of the view together) that rollguard reads from one object. Each costs
/// memory many times its JSON text (a 7 MB review of 294 000 ports took
/// 187 MiB), and the API server bounds few of these lists, so the bound is
/// per review, not per list. No real object comes near: a thousand
/// containers with a port each take 2000. An object with more is allowed
/// untouched with a warning, as one with too many containers; the elements
/// past the limit are checked but not read into memory.
pub const MAX_ITEMS_REVIEWED: usize = 10_000;

/// Most bytes of strings rollguard reads from one object: four times the
/// 256 KiB the API server allows for all of an object's annotations (a
/// workload has two sets, its own and its template's). A string is copied a
/// few times in a review; past this, as past [`MAX_ITEMS_REVIEWED`].
pub const MAX_TEXT_BYTES_REVIEWED: usize = 1024 * 1024;

/// The fields of [`ObjectView`], read within its budget.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ViewFields {
    #[serde(default, deserialize_with = "json_object")]
    metadata: Option<Metadata>,
    #[serde(default, deserialize_with = "json_object")]
    spec: Option<Spec>,
}

impl<'de> Deserialize<'de> for ObjectView {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let budget = ReadBudget::new(MAX_ITEMS_REVIEWED, MAX_TEXT_BYTES_REVIEWED);
        let ViewFields { metadata, spec } =
            ViewFields::deserialize(Bounded::new(deserializer, &budget))?;
        Ok(ObjectView {
            metadata,
            spec,
            over_read_limit: budget.exceeded(),
        })
    }
}

/// `metadata`: of the object, or of a pod template (which reads annotations only).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generate_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_references: Option<Vec<OwnerReference>>,
}

/// `spec` of any handled kind: a Pod's pod spec fields, and the rollout
/// fields of Deployments, StatefulSets and DaemonSets.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// A Pod's containers.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "containers_up_to_limit"
    )]
    pub containers: Option<Vec<Container>>,
    /// A Pod's grace period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub termination_grace_period_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Deployments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<DeploymentStrategy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<i32>,
    /// Deployments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress_deadline_seconds: Option<i32>,
    /// StatefulSets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_management_policy: Option<String>,
    /// StatefulSets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_strategy: Option<StatefulSetUpdateStrategy>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "json_object"
    )]
    pub template: Option<Template>,
}

/// `spec.template` of a workload.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Template {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "json_object"
    )]
    pub metadata: Option<Metadata>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "json_object"
    )]
    pub spec: Option<PodSpec>,
}

/// The fields of a pod spec the rules read. Every other field (env,
/// resources, volumes, security contexts: most of an object) is skipped
/// without being read into memory.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    /// Missing or null reads as empty, as k8s-openapi reads it: the API
    /// server calls mutating webhooks before validating, so an object without
    /// containers reaches rollguard and must get the API server's own error.
    /// Past [`MAX_CONTAINERS_REVIEWED`], one empty container stands for all
    /// the rest, which are not read into memory.
    #[serde(default, deserialize_with = "containers_or_empty")]
    pub containers: Vec<Container>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub termination_grace_period_seconds: Option<i64>,
    /// Every container port binds on the node, as a hostPort does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_network: Option<bool>,
}

/// Most containers in one pod spec that rollguard reviews. Memory for rules
/// and patch grows with every container (~10 KiB each); the webhook's own
/// memory limit must hold for any object the API server can send, and no
/// real pod comes near this. An object with more is allowed untouched, with
/// a warning; the containers past it are not even read into memory.
pub const MAX_CONTAINERS_REVIEWED: usize = 1000;

/// The fields of a container the rules read.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    /// Missing or null reads as empty, as k8s-openapi reads it.
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    /// Matched by the skip list and the known sidecar images.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    // Boxed, as most containers have none of these: a container then takes
    // ~100 bytes instead of ~1.2 KiB, and a pod spec of a thousand of them
    // is copied a few times in a review.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Box<Lifecycle>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<ContainerPort>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Box<Probe>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<Box<Probe>>,
}

/// The fields of an owner reference the rules read.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct OwnerReference {
    #[serde(default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<bool>,
}

/// A field whose `null` means its default, as k8s-openapi reads required
/// fields.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

/// A nested object of the view: a JSON object or null, never an array
/// (serde's derived structs would also read `[a, b]` as a struct's fields in
/// order, which no Kubernetes reader does).
pub(crate) fn json_object<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: de::Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct ObjectOrNull<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectOrNull<T> {
        type Value = Option<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        // Read as a struct, not a map: a map may be cut short at the read
        // limit (strict_json::Bounded), a struct's fields never are.
        fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_struct("object", &[], self)
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
        }
    }

    deserializer.deserialize_option(ObjectOrNull(PhantomData))
}

/// A pod spec's containers (null: none), the first
/// [`MAX_CONTAINERS_REVIEWED`] read; past them one empty container stands for
/// all the rest, which are checked but not built.
fn containers_up_to_limit<'de, D>(deserializer: D) -> Result<Option<Vec<Container>>, D::Error>
where
    D: de::Deserializer<'de>,
{
    struct UpToLimit;

    impl<'de> Visitor<'de> for UpToLimit {
        type Value = Option<Vec<Container>>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array of containers")
        }

        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_seq(self)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut containers = Vec::new();
            while containers.len() < MAX_CONTAINERS_REVIEWED {
                match seq.next_element::<Container>()? {
                    Some(container) => containers.push(container),
                    None => return Ok(Some(containers)),
                }
            }
            if seq.next_element::<de::IgnoredAny>()?.is_some() {
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                containers.push(Container::default());
            }
            Ok(Some(containers))
        }
    }

    deserializer.deserialize_option(UpToLimit)
}

fn containers_or_empty<'de, D>(deserializer: D) -> Result<Vec<Container>, D::Error>
where
    D: de::Deserializer<'de>,
{
    containers_up_to_limit(deserializer).map(Option::unwrap_or_default)
}

impl ObjectView {
    /// Reads the view from a parsed document, naming the field that cannot
    /// be read.
    pub fn from_value(value: &Value) -> Result<ObjectView, ViewError> {
        match ObjectView::deserialize(value) {
            Ok(view) => Ok(view),
            // Again, tracking the path, only to say where it failed.
            Err(_) => match serde_path_to_error::deserialize(value) {
                Ok(view) => Ok(view),
                Err(error) => Err(ViewError::from_path(error)),
            },
        }
    }

    /// Reads the view from JSON text (the object of a large review whose
    /// envelope was read on its own), naming the field that cannot be read.
    pub fn from_json(text: &str) -> Result<ObjectView, ViewError> {
        match crate::strict_json::from_str::<ObjectView>(text) {
            Ok(view) => Ok(view),
            // Again, tracking the path, only to say where it failed.
            Err(_) => {
                let mut deserializer = serde_json::Deserializer::from_str(text);
                let strict = crate::strict_json::Strict(&mut deserializer);
                serde_path_to_error::deserialize::<_, ObjectView>(strict)
                    .map_err(ViewError::from_path)
            }
        }
    }

    /// Whether a list or map of the object went past [`MAX_ITEMS_REVIEWED`]
    /// or its strings past [`MAX_TEXT_BYTES_REVIEWED`]: the view then holds
    /// part of them only, and the object must be left alone.
    pub fn is_over_read_limit(&self) -> bool {
        self.over_read_limit
    }

    /// The view as JSON: the fields it read, nothing else. The engine works
    /// out from it which parents of a write exist, and judges the object it
    /// would admit by applying its patch to it.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// A typed view of one object.
#[derive(Debug, Clone)]
pub struct Workload {
    pub kind: WorkloadKind,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// `spec.template.metadata.annotations` (empty for a Pod).
    pub template_annotations: BTreeMap<String, String>,
    pub pod_spec: PodSpec,
    /// Deployments only.
    pub rollout: Option<Rollout>,
    /// StatefulSets only.
    pub stateful_set: Option<StatefulRollout>,
    /// `spec.minReadySeconds` (workloads only; 0 when unset).
    pub min_ready_seconds: i32,
    /// The kind of the controller that owns the object (a Pod's DaemonSet).
    pub owner_kind: Option<String>,
}

impl Workload {
    /// A DaemonSet, or a Pod its DaemonSet creates: one pod per node.
    pub fn is_node_agent(&self) -> bool {
        self.kind == WorkloadKind::DaemonSet || self.owner_kind.as_deref() == Some("DaemonSet")
    }

    /// Whether the pod spec has more containers than rollguard reviews.
    pub fn has_too_many_containers(&self) -> bool {
        self.pod_spec.containers.len() > MAX_CONTAINERS_REVIEWED
    }

    /// Reads a parsed document as `kind`.
    pub fn read(kind: WorkloadKind, object: &Value) -> Result<Workload, ReadError> {
        let view = ObjectView::from_value(object).map_err(|e| e.of(kind))?;
        Workload::from_view(kind, &view)
    }

    /// Reads the view as `kind`, with Kubernetes' defaults applied.
    pub fn from_view(kind: WorkloadKind, view: &ObjectView) -> Result<Workload, ReadError> {
        Workload::from_owned_view(kind, view.clone())
    }

    /// [`Workload::from_view`] on a view given away: its containers and
    /// annotations move into the workload instead of being copied.
    pub fn from_owned_view(kind: WorkloadKind, view: ObjectView) -> Result<Workload, ReadError> {
        let ObjectView { metadata, spec, .. } = view;
        let has_spec = spec.is_some();
        let mut metadata = metadata.unwrap_or_default();
        let mut spec = spec.unwrap_or_default();
        let annotations = metadata.annotations.take().unwrap_or_default();
        let owner_kind = metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .map(|o| o.kind.clone());
        let (pod_spec, template_annotations, min_ready_seconds) = match kind {
            WorkloadKind::Pod => {
                if !has_spec {
                    return Err(missing(kind, "spec"));
                }
                let containers = spec.containers.take().unwrap_or_default();
                let pod_spec = PodSpec {
                    containers,
                    termination_grace_period_seconds: spec.termination_grace_period_seconds,
                    // A Pod has no rollout: hostNetwork only matters to a workload's.
                    host_network: None,
                };
                (pod_spec, BTreeMap::new(), 0)
            }
            _ => {
                let template = spec.template.take().unwrap_or_default();
                let pod_spec = template
                    .spec
                    .ok_or_else(|| missing(kind, "spec.template.spec"))?;
                let template_annotations = template
                    .metadata
                    .and_then(|m| m.annotations)
                    .unwrap_or_default();
                (
                    pod_spec,
                    template_annotations,
                    spec.min_ready_seconds.unwrap_or(0),
                )
            }
        };
        Ok(Workload {
            owner_kind,
            kind,
            annotations,
            template_annotations,
            pod_spec,
            rollout: match kind {
                WorkloadKind::Deployment => Some(read_rollout(&spec)?),
                _ => None,
            },
            stateful_set: match kind {
                WorkloadKind::StatefulSet => Some(read_stateful_set(&spec)?),
                _ => None,
            },
            min_ready_seconds,
        })
    }
}

fn missing(kind: WorkloadKind, field: &str) -> ReadError {
    ReadError {
        kind,
        field: field.to_string(),
        reason: "missing".to_string(),
    }
}

fn read_rollout(spec: &Spec) -> Result<Rollout, ReadError> {
    let kind = WorkloadKind::Deployment;
    let strategy = spec.strategy.clone().unwrap_or_default();
    let rolling = strategy.rolling_update.unwrap_or_default();
    let rollout = Rollout {
        replicas: spec.replicas.unwrap_or(k8s::DEFAULT_REPLICAS),
        strategy_type: strategy
            .type_
            .unwrap_or_else(|| "RollingUpdate".to_string()),
        max_surge: rolling
            .max_surge
            .unwrap_or_else(|| IntOrString::String(k8s::DEFAULT_MAX_SURGE.to_string())),
        max_unavailable: rolling
            .max_unavailable
            .unwrap_or_else(|| IntOrString::String(k8s::DEFAULT_MAX_UNAVAILABLE.to_string())),
        progress_deadline_seconds: spec
            .progress_deadline_seconds
            .unwrap_or(k8s::DEFAULT_PROGRESS_DEADLINE_SECONDS),
    };
    if rollout.is_rolling_update() {
        rollout.fenceposts().map_err(|reason| ReadError {
            kind,
            field: "spec.strategy.rollingUpdate".to_string(),
            reason,
        })?;
    }
    Ok(rollout)
}

fn read_stateful_set(spec: &Spec) -> Result<StatefulRollout, ReadError> {
    let kind = WorkloadKind::StatefulSet;
    let replicas = spec.replicas.unwrap_or(k8s::DEFAULT_REPLICAS);
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    let rolling = strategy.rolling_update.unwrap_or_default();
    let max_unavailable = match &rolling.max_unavailable {
        None => 1,
        Some(value) => k8s::scaled_value(value, replicas, false)
            .map_err(|reason| ReadError {
                kind,
                field: "spec.updateStrategy.rollingUpdate.maxUnavailable".to_string(),
                reason,
            })?
            .max(1),
    };
    Ok(StatefulRollout {
        replicas,
        ordered: spec.pod_management_policy.as_deref() != Some("Parallel"),
        on_delete: strategy.type_.as_deref() == Some("OnDelete"),
        max_unavailable,
        partition: rolling.partition.unwrap_or(0).max(0),
        max_unavailable_written: rolling.max_unavailable,
    })
}
