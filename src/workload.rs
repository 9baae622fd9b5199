//! Typed, read-only views of the objects rollguard handles: rollguard's own
//! structs for the pod spec (only the fields the rules read, each with its
//! k8s-openapi type), k8s-openapi types for the rest; writing goes into the
//! raw JSON.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::apps::v1::{DeploymentStrategy, StatefulSetUpdateStrategy};
use k8s_openapi::api::core::v1::{ContainerPort, Lifecycle, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

use crate::k8s_semantics as k8s;
use crate::patch::Step;
use crate::path;
use crate::pruned::Keep;

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

/// The fields of a pod spec the rules read, with k8s-openapi's types for each
/// field. Every other field (env, resources, volumes, security contexts: most
/// of an object) is skipped without being read into memory: deserialising the
/// whole `k8s_openapi` `PodSpec` was a tenth of a review.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    /// Missing or null reads as empty, as k8s-openapi reads it: the API
    /// server calls mutating webhooks before validating, so an object without
    /// containers reaches rollguard and must get the API server's own error.
    #[serde(default, deserialize_with = "null_as_default")]
    pub containers: Vec<Container>,
    pub termination_grace_period_seconds: Option<i64>,
}

/// What of an object the engine reads or writes; the webhook parses the
/// object of a review keeping only this ([`crate::pruned`]). Keep it in step
/// with [`Workload::read`], [`PodSpec`] and [`Container`]: a field read there
/// but not kept here would read as absent (tests/pruned.rs compares every
/// answer with one computed on the whole object).
/// Most containers in one pod spec that rollguard reviews. Memory for rules
/// and patch grows with every container (~10 KiB each); the webhook's own
/// memory limit must hold for any object the API server can send, and no
/// real pod comes near this. An object with more is allowed untouched, with
/// a warning; the containers past it are not even read into memory.
pub const MAX_CONTAINERS_REVIEWED: usize = 1000;

pub static OBJECT_SHAPE: Keep = Keep::Members(
    &[
        ("apiVersion", &Keep::All),
        ("kind", &Keep::All),
        ("metadata", &METADATA_SHAPE),
        (
            "spec",
            &Keep::Members(
                &[
                    (
                        "containers",
                        &Keep::EachUpTo(MAX_CONTAINERS_REVIEWED, &CONTAINER_SHAPE),
                    ),
                    ("terminationGracePeriodSeconds", &Keep::All),
                    ("replicas", &Keep::All),
                    ("strategy", &Keep::All),
                    ("minReadySeconds", &Keep::All),
                    ("progressDeadlineSeconds", &Keep::All),
                    ("podManagementPolicy", &Keep::All),
                    ("updateStrategy", &Keep::All),
                    (
                        "template",
                        &Keep::Members(
                            &[
                                (
                                    "metadata",
                                    &Keep::Members(&[("annotations", &Keep::All)], &Keep::Skip),
                                ),
                                ("spec", &POD_SPEC_SHAPE),
                            ],
                            &Keep::Skip,
                        ),
                    ),
                ],
                &Keep::Skip,
            ),
        ),
    ],
    &Keep::Skip,
);

static METADATA_SHAPE: Keep = Keep::Members(
    &[
        ("name", &Keep::All),
        ("generateName", &Keep::All),
        ("namespace", &Keep::All),
        ("annotations", &Keep::All),
        ("ownerReferences", &Keep::All),
    ],
    &Keep::Skip,
);

static POD_SPEC_SHAPE: Keep = Keep::Members(
    &[
        (
            "containers",
            &Keep::EachUpTo(MAX_CONTAINERS_REVIEWED, &CONTAINER_SHAPE),
        ),
        ("terminationGracePeriodSeconds", &Keep::All),
    ],
    &Keep::Skip,
);

static CONTAINER_SHAPE: Keep = Keep::Members(
    &[
        ("name", &Keep::All),
        ("image", &Keep::All),
        ("lifecycle", &Keep::All),
        ("ports", &Keep::All),
        ("readinessProbe", &Keep::All),
        ("livenessProbe", &Keep::All),
    ],
    &Keep::Skip,
);

/// The fields of a container the rules read.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    /// Missing or null reads as empty, as k8s-openapi reads it.
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    /// Matched by the skip list and the known sidecar images.
    pub image: Option<String>,
    pub lifecycle: Option<Lifecycle>,
    pub ports: Option<Vec<ContainerPort>>,
    pub readiness_probe: Option<Probe>,
    pub liveness_probe: Option<Probe>,
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
}

/// The fields of an owner reference the rules read.
#[derive(Debug, Clone, Default, Deserialize)]
struct OwnerReference {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    controller: Option<bool>,
}

impl Workload {
    pub fn read(kind: WorkloadKind, object: &Value) -> Result<Workload, ReadError> {
        let field = |path: &[Step]| crate::patch::get(object, path);
        let annotations = decode(
            kind,
            "metadata.annotations",
            field(&path!["metadata", "annotations"]),
        )?
        .unwrap_or_default();
        let template_annotations = match kind.template_annotations_path() {
            Some(path) => decode(kind, "spec.template.metadata.annotations", field(&path))?
                .unwrap_or_default(),
            None => BTreeMap::new(),
        };
        let pod_spec_name = match kind {
            WorkloadKind::Pod => "spec",
            _ => "spec.template.spec",
        };
        let pod_spec: PodSpec = decode(kind, pod_spec_name, field(&kind.pod_spec_path()))?
            .ok_or_else(|| ReadError {
                kind,
                field: pod_spec_name.to_string(),
                reason: "missing".to_string(),
            })?;
        let min_ready_seconds = match kind {
            WorkloadKind::Pod => 0,
            _ => decode(
                kind,
                "spec.minReadySeconds",
                field(&path!["spec", "minReadySeconds"]),
            )?
            .unwrap_or(0),
        };
        let rollout = match kind {
            WorkloadKind::Deployment => Some(read_rollout(object)?),
            _ => None,
        };
        let owners: Option<Vec<OwnerReference>> = decode(
            kind,
            "metadata.ownerReferences",
            field(&path!["metadata", "ownerReferences"]),
        )?;
        let owner_kind = owners
            .into_iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .map(|o| o.kind);
        let stateful_set = match kind {
            WorkloadKind::StatefulSet => Some(read_stateful_set(object)?),
            _ => None,
        };
        Ok(Workload {
            owner_kind,
            kind,
            annotations,
            template_annotations,
            pod_spec,
            rollout,
            stateful_set,
            min_ready_seconds,
        })
    }
}

fn read_rollout(object: &Value) -> Result<Rollout, ReadError> {
    let kind = WorkloadKind::Deployment;
    let spec = object.get("spec");
    let replicas: Option<i32> =
        decode(kind, "spec.replicas", spec.and_then(|s| s.get("replicas")))?;
    let strategy: Option<DeploymentStrategy> =
        decode(kind, "spec.strategy", spec.and_then(|s| s.get("strategy")))?;
    let deadline: Option<i32> = decode(
        kind,
        "spec.progressDeadlineSeconds",
        spec.and_then(|s| s.get("progressDeadlineSeconds")),
    )?;
    let strategy = strategy.unwrap_or_default();
    let rolling = strategy.rolling_update.unwrap_or_default();
    let rollout = Rollout {
        replicas: replicas.unwrap_or(k8s::DEFAULT_REPLICAS),
        strategy_type: strategy
            .type_
            .unwrap_or_else(|| "RollingUpdate".to_string()),
        max_surge: rolling
            .max_surge
            .unwrap_or_else(|| IntOrString::String(k8s::DEFAULT_MAX_SURGE.to_string())),
        max_unavailable: rolling
            .max_unavailable
            .unwrap_or_else(|| IntOrString::String(k8s::DEFAULT_MAX_UNAVAILABLE.to_string())),
        progress_deadline_seconds: deadline.unwrap_or(k8s::DEFAULT_PROGRESS_DEADLINE_SECONDS),
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

fn read_stateful_set(object: &Value) -> Result<StatefulRollout, ReadError> {
    let kind = WorkloadKind::StatefulSet;
    let spec = object.get("spec");
    let replicas: Option<i32> =
        decode(kind, "spec.replicas", spec.and_then(|s| s.get("replicas")))?;
    let replicas = replicas.unwrap_or(k8s::DEFAULT_REPLICAS);
    let policy: Option<String> = decode(
        kind,
        "spec.podManagementPolicy",
        spec.and_then(|s| s.get("podManagementPolicy")),
    )?;
    let strategy: Option<StatefulSetUpdateStrategy> = decode(
        kind,
        "spec.updateStrategy",
        spec.and_then(|s| s.get("updateStrategy")),
    )?;
    let strategy = strategy.unwrap_or_default();
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
        ordered: policy.as_deref() != Some("Parallel"),
        on_delete: strategy.type_.as_deref() == Some("OnDelete"),
        max_unavailable,
        partition: rolling.partition.unwrap_or(0).max(0),
        max_unavailable_written: rolling.max_unavailable,
    })
}

/// Decodes an optional field; `null` counts as absent.
fn decode<'a, T: Deserialize<'a>>(
    kind: WorkloadKind,
    field: &str,
    value: Option<&'a Value>,
) -> Result<Option<T>, ReadError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(value) => T::deserialize(value).map(Some).map_err(|err| ReadError {
            kind,
            field: field.to_string(),
            reason: err.to_string(),
        }),
    }
}
