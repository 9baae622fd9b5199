//! `rollguard check --cluster`: the workloads already running, judged by the
//! same engine as files. Read-only (list only), one page at a time so memory
//! is bounded by `--page-size`, not by the cluster.

use std::io::Write;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::ApiResource;
use kube::Client;
use serde_json::Value;

use super::{CheckError, CheckOptions, Session, Summary};
use crate::policy::{EffectiveMode, Mode};
use crate::workload::WorkloadKind;

/// The label that opts a namespace into rollguard; its value is the mode.
pub const MODE_LABEL: &str = crate::annotations::MODE;

/// Which namespaces to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Those labelled `rollguard.io/mode`, each judged in its label's mode.
    Labelled,
    /// Namespaces matching a label selector, judged in `--mode`.
    Selector(String),
    /// These namespaces, judged in `--mode`.
    Named(Vec<String>),
    /// Every namespace in one cluster-wide list per kind, judged in `--mode`.
    All,
}

#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub scope: Scope,
    /// Objects per list request (the memory bound).
    pub page_size: u32,
    /// Bound on connecting to and on each response of the API server.
    pub timeout: Duration,
    /// Show a progress line on stderr (only when it is a terminal).
    pub progress: bool,
}

/// A failure that stops the whole run (nothing could be listed).
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("no cluster configuration: {0}; set KUBECONFIG or run inside a cluster")]
    Config(String),
    #[error("cannot list namespaces: {0}")]
    Namespaces(String),
    #[error(transparent)]
    Check(#[from] CheckError),
}

/// The kinds read, in order, with the API they are listed from.
fn kinds() -> [(WorkloadKind, ApiResource); 4] {
    [
        (
            WorkloadKind::Deployment,
            ApiResource::erase::<Deployment>(&()),
        ),
        (
            WorkloadKind::StatefulSet,
            ApiResource::erase::<StatefulSet>(&()),
        ),
        (
            WorkloadKind::DaemonSet,
            ApiResource::erase::<DaemonSet>(&()),
        ),
        (WorkloadKind::Pod, ApiResource::erase::<Pod>(&())),
    ]
}

/// Connects with the kubeconfig (or in-cluster config) and the timeouts.
pub async fn client(timeout: Duration) -> Result<Client, ClusterError> {
    let config = kube::Config::infer()
        .await
        .map_err(|err| ClusterError::Config(err.to_string()))?;
    client_from(config, timeout)
}

/// A client for this configuration, every request bounded by `timeout`.
pub fn client_from(mut config: kube::Config, timeout: Duration) -> Result<Client, ClusterError> {
    config.connect_timeout = Some(timeout);
    config.read_timeout = Some(timeout);
    config.write_timeout = Some(timeout);
    Client::try_from(config).map_err(|err| ClusterError::Config(err.to_string()))
}

/// What to say about a failed request: what happened and what to do.
pub fn explain(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => match status.code {
            401 => format!("401 Unauthorized ({}): the credentials in the kubeconfig were refused; log in again or check the user of the current context", status.message),
            403 => format!("403 Forbidden ({}): grant list on this resource (manifests/components/check-rbac)", status.message),
            410 => format!("410 Gone ({}): the list expired while paging (the cluster changed faster than it was read); rerun, or raise --page-size", status.message),
            code => format!("API server error {code} ({}): retry later or check the API server's health", status.message),
        },
        kube::Error::HyperError(_) | kube::Error::Service(_) => format!(
            "the API server did not answer in time or is unreachable ({err}); check the server URL of the kubeconfig, the network, or raise --timeout"
        ),
        other => other.to_string(),
    }
}

/// Whether a pod is judged through its owner (a controller made it).
fn has_controller(object: &Value) -> bool {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|owners| {
            owners
                .iter()
                .any(|o| o.get("controller").and_then(Value::as_bool) == Some(true))
        })
}

/// The namespaces to read and the mode each is judged in.
async fn namespaces(
    client: &Client,
    scope: &Scope,
    run_mode: Mode,
) -> Result<Vec<(Option<String>, Mode)>, ClusterError> {
    let selector = match scope {
        Scope::All => return Ok(vec![(None, run_mode)]),
        Scope::Named(names) => {
            return Ok(names.iter().map(|n| (Some(n.clone()), run_mode)).collect())
        }
        Scope::Labelled => MODE_LABEL.to_string(),
        Scope::Selector(selector) => selector.clone(),
    };
    let api: Api<Namespace> = Api::all(client.clone());
    let list = api
        .list_metadata(&ListParams::default().labels(&selector))
        .await
        .map_err(|err| ClusterError::Namespaces(explain(&err)))?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|ns| {
            let mode = match (
                scope,
                ns.metadata.labels.as_ref().and_then(|l| l.get(MODE_LABEL)),
            ) {
                (Scope::Labelled, Some(value)) => match value.parse() {
                    Ok(EffectiveMode::Off) => return None,
                    Ok(EffectiveMode::Audit) => Mode::Audit,
                    _ => Mode::Enforce,
                },
                (Scope::Labelled, None) => Mode::Enforce,
                _ => run_mode,
            };
            ns.metadata.name.map(|name| (Some(name), mode))
        })
        .collect())
}

/// Lists every selected workload page by page and writes its report.
pub async fn run(
    client: Client,
    cluster: &ClusterOptions,
    options: &CheckOptions,
    out: &mut dyn Write,
) -> Result<Summary, ClusterError> {
    let targets = namespaces(&client, &cluster.scope, options.mode).await?;
    let mut session = Session::begin(options, out)?;
    let mut listed = 0usize;
    for (namespace, mode) in &targets {
        let judged = CheckOptions {
            mode: *mode,
            ..options.clone()
        };
        for (kind, resource) in kinds() {
            let api: Api<DynamicObject> = match namespace {
                Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
                None => Api::all_with(client.clone(), &resource),
            };
            let source = match namespace {
                Some(ns) => format!("cluster:{ns}/{}", resource.plural),
                None => format!("cluster:{}", resource.plural),
            };
            let mut params = ListParams::default().limit(cluster.page_size);
            loop {
                let page = match api.list(&params).await {
                    Ok(page) => page,
                    Err(err) => {
                        session.error(&source, &explain(&err), out)?;
                        break;
                    }
                };
                let next = page.metadata.continue_.clone().filter(|t| !t.is_empty());
                for item in page.items {
                    let mut object = serde_json::to_value(&item)
                        .map_err(|err| CheckError::Output(err.into()))?;
                    // List items carry no type: the list says what they are.
                    object["apiVersion"] = Value::String(resource.api_version.clone());
                    object["kind"] = Value::String(kind.name().to_string());
                    if kind == WorkloadKind::Pod && has_controller(&object) {
                        continue;
                    }
                    session.object(&source, &object, &judged, out)?;
                    listed += 1;
                }
                if cluster.progress {
                    eprint!("\rrollguard: {listed} workloads judged ({source})\x1b[K");
                }
                match next {
                    Some(token) => params = params.continue_token(&token),
                    None => break,
                }
            }
        }
    }
    if cluster.progress {
        eprintln!();
    }
    Ok(session.finish(out)?)
}
