//! `rollguard check --cluster`: the workloads already running, judged by the
//! same engine as files. Read-only (list only), one page at a time so memory
//! is bounded by `--page-size`, not by the cluster (a page is held as text and
//! each object parsed when it is judged; report output holds one namespace's
//! results). The default scope is the webhook's: its namespaceSelectors, read
//! as [`labelled_mode`] and [`EXCLUDED_NAMESPACES`].

use std::io::Write;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::ApiResource;
use kube::Client;
use serde_json::Value;

use super::{CheckError, CheckOptions, Session, Summary};
use crate::policy::Mode;
use crate::workload::WorkloadKind;

/// The label that opts a namespace into rollguard; its value is the mode.
pub const MODE_LABEL: &str = crate::annotations::MODE;

/// Which namespaces to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Those the webhook acts on (`rollguard.io/mode` enforce or audit, not
    /// excluded), each judged in its label's mode.
    Labelled,
    /// Namespaces matching a label selector, judged in `--mode`.
    Selector(String),
    /// These namespaces, judged in `--mode`.
    Named(Vec<String>),
    /// Every namespace, judged in `--mode`: one cluster-wide list per kind,
    /// or namespace by namespace for report output.
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
/// Transport failures read differently by their cause (slow, refused, TLS),
/// found by walking the error's source chain.
pub fn explain(err: &kube::Error, timeout: Duration) -> String {
    match err {
        kube::Error::Api(status) => match status.code {
            401 => format!("401 Unauthorized ({}): the credentials in the kubeconfig were refused; log in again or check the user of the current context", status.message),
            403 => format!("403 Forbidden ({}): grant list on this resource (manifests/components/check-rbac)", status.message),
            410 => format!("410 Gone ({}): the list expired while paging (the cluster changed faster than it was read); rerun, or raise --page-size", status.message),
            code => format!("API server error {code} ({}): retry later or check the API server's health", status.message),
        },
        kube::Error::HyperError(_) | kube::Error::Service(_) => match transport_cause(err) {
            Transport::Timeout => format!(
                "the API server did not answer in time (--timeout {timeout:?}): it is overloaded or the address is wrong; raise --timeout or check the server URL of the kubeconfig"
            ),
            Transport::Refused => format!(
                "the API server is unreachable: the connection was refused ({}); check the server URL of the kubeconfig and that the cluster is up",
                root_cause(err)
            ),
            Transport::Tls => format!(
                "the TLS handshake with the API server failed ({}); check certificate-authority-data of the kubeconfig (or that the URL names the server's certificate)",
                root_cause(err)
            ),
            Transport::Other => format!(
                "the API server is unreachable ({}); check the server URL of the kubeconfig and the network",
                root_cause(err)
            ),
        },
        other => other.to_string(),
    }
}

/// Why a request got no answer.
#[derive(Debug, PartialEq, Eq)]
enum Transport {
    Timeout,
    Refused,
    Tls,
    Other,
}

fn sources(err: &kube::Error) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
    std::iter::successors(Some(err as &(dyn std::error::Error + 'static)), |e| {
        e.source()
    })
}

fn transport_cause(err: &kube::Error) -> Transport {
    for cause in sources(err) {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::TimedOut => return Transport::Timeout,
                std::io::ErrorKind::ConnectionRefused => return Transport::Refused,
                _ => {}
            }
        }
        if cause.downcast_ref::<rustls::Error>().is_some() {
            return Transport::Tls;
        }
        let text = cause.to_string().to_ascii_lowercase();
        if text.contains("timed out") || text.contains("elapsed") {
            return Transport::Timeout;
        }
        if text.contains("certificate") || text.contains("tls") {
            return Transport::Tls;
        }
    }
    Transport::Other
}

/// The innermost message: the one that says what went wrong.
fn root_cause(err: &kube::Error) -> String {
    sources(err)
        .last()
        .map_or_else(|| err.to_string(), |e| e.to_string())
}

/// A failure after which no other request can succeed: the credentials are
/// refused, or the API server does not answer. The run stops at the first.
fn ends_the_run(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(status) => status.code == 401,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// Whether a pod is judged through its owner, which rollguard lists: a
/// StatefulSet, a DaemonSet, or a ReplicaSet that a Deployment made (the
/// deployment controller labels its ReplicaSets' pods `pod-template-hash`).
/// Pods of Jobs, CronJobs, bare ReplicaSets or operators' resources are
/// judged themselves, as the webhook judges them at Pod CREATE.
fn judged_through_owner(pod: &Value) -> bool {
    let Some(owners) = pod
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
    else {
        return false;
    };
    let made_by_deployment = pod.pointer("/metadata/labels/pod-template-hash").is_some();
    owners
        .iter()
        .filter(|o| o.get("controller").and_then(Value::as_bool) == Some(true))
        .filter(|o| o.get("apiVersion").and_then(Value::as_str) == Some("apps/v1"))
        .any(|o| match o.get("kind").and_then(Value::as_str) {
            Some("StatefulSet" | "DaemonSet") => true,
            Some("ReplicaSet") => made_by_deployment,
            _ => false,
        })
}

/// A namespace to read and the mode its objects are judged in; `None` is
/// one cluster-wide list per kind.
type Target = (Option<String>, Mode);

/// What a labelled namespace's `rollguard.io/mode` value makes of it, as the
/// webhook configuration's namespaceSelectors do: `enforce` and `audit` are
/// judged in that mode (outside the excluded namespaces), `off` is not
/// judged, any other value is not judged and is worth a warning (the webhook
/// ignores it too, so the namespace is not protected).
pub fn labelled_mode(namespace: &str, value: &str) -> Result<Option<Mode>, String> {
    let mode = match value {
        "enforce" => Mode::Enforce,
        "audit" => Mode::Audit,
        "off" => return Ok(None),
        other => {
            return Err(format!(
                "namespace {namespace}: {MODE_LABEL}={other:?} is not enforce, audit or off: the webhook ignores it; not checked"
            ))
        }
    };
    if EXCLUDED_NAMESPACES.contains(&namespace) {
        return Err(format!(
            "namespace {namespace}: labelled {MODE_LABEL}={value}, but the webhook never acts there (excluded in manifests/base); not checked"
        ));
    }
    Ok(Some(mode))
}

/// The namespaces the shipped webhook configuration excludes even when
/// labelled (manifests/base/*webhookconfiguration.yaml, `NotIn`): rollguard
/// must always be able to (re)start itself and the system.
pub const EXCLUDED_NAMESPACES: [&str; 2] = ["kube-system", "rollguard-system"];

/// The namespaces to read and the mode each is judged in; warnings for
/// labelled namespaces that are not checked.
async fn targets(
    client: &Client,
    scope: &Scope,
    run_mode: Mode,
    per_namespace: bool,
    timeout: Duration,
) -> Result<(Vec<Target>, Vec<String>), ClusterError> {
    let selector = match scope {
        Scope::All if !per_namespace => return Ok((vec![(None, run_mode)], Vec::new())),
        Scope::All => None,
        Scope::Named(names) => {
            let named = names.iter().map(|n| (Some(n.clone()), run_mode)).collect();
            return Ok((named, Vec::new()));
        }
        // Every namespace with the key: the values are sorted out here, so
        // that the ones the webhook ignores can be named.
        Scope::Labelled => Some(MODE_LABEL.to_string()),
        Scope::Selector(selector) => Some(selector.clone()),
    };
    let api: Api<Namespace> = Api::all(client.clone());
    let mut params = ListParams::default();
    if let Some(selector) = &selector {
        params = params.labels(selector);
    }
    let list = api
        .list_metadata(&params)
        .await
        .map_err(|err| ClusterError::Namespaces(explain(&err, timeout)))?;
    let mut targets = Vec::new();
    let mut warnings = Vec::new();
    for ns in list.items {
        let Some(name) = ns.metadata.name else {
            continue;
        };
        if *scope != Scope::Labelled {
            targets.push((Some(name), run_mode));
            continue;
        }
        let value = ns
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(MODE_LABEL))
            .map_or("", String::as_str);
        match labelled_mode(&name, value) {
            Ok(Some(mode)) => targets.push((Some(name), mode)),
            Ok(None) => {}
            Err(warning) => warnings.push(warning),
        }
    }
    Ok((targets, warnings))
}

/// Lists every selected workload page by page and writes its report. With
/// [`Scope::Labelled`] each namespace is judged in its label's mode and
/// `options.mode` is not used (the CLI refuses `--mode` there).
pub async fn run(
    client: Client,
    cluster: &ClusterOptions,
    options: &CheckOptions,
    out: &mut dyn Write,
) -> Result<Summary, ClusterError> {
    // A Report per namespace is written when that namespace is done, so a
    // cluster-wide run lists namespace by namespace.
    let per_namespace = options.format == super::Format::Report;
    let (targets, warnings) = targets(
        &client,
        &cluster.scope,
        options.mode,
        per_namespace,
        cluster.timeout,
    )
    .await?;
    let mut session = Session::begin(options, out)?;
    for warning in &warnings {
        session.warning("cluster", warning, out)?;
    }
    let mut lister = Lister {
        client,
        cluster,
        listed: 0,
    };
    'targets: for (namespace, mode) in &targets {
        let judged = CheckOptions {
            mode: *mode,
            ..options.clone()
        };
        for (kind, resource) in kinds() {
            let list = List {
                namespace: namespace.as_deref(),
                kind,
                resource: &resource,
            };
            if let Stop::Run = lister.list(&list, &judged, &mut session, out).await? {
                break 'targets;
            }
        }
        session.namespaces_done(out)?;
    }
    if cluster.progress {
        eprintln!();
    }
    Ok(session.finish(out)?)
}

/// One page of a list as the API server sent it. The items stay raw JSON
/// text until each is judged: a page is held once as text, then one object
/// at a time as a tree, even from a server that ignores `limit`.
#[derive(serde::Deserialize)]
struct RawPage {
    #[serde(default)]
    metadata: RawListMeta,
    #[serde(default)]
    items: Vec<Box<serde_json::value::RawValue>>,
}

#[derive(serde::Deserialize, Default)]
struct RawListMeta {
    #[serde(rename = "continue", default)]
    continue_: Option<String>,
}

/// One list: a kind in a namespace (or cluster-wide).
struct List<'a> {
    namespace: Option<&'a str>,
    kind: WorkloadKind,
    resource: &'a ApiResource,
}

impl List<'_> {
    fn source(&self) -> String {
        match self.namespace {
            Some(ns) => format!("cluster:{ns}/{}", self.resource.plural),
            None => format!("cluster:{}", self.resource.plural),
        }
    }
}

/// What ended a list.
enum Stop {
    /// This list is done (read, or its error reported): go on with the next.
    List,
    /// No other request can succeed: the run ends here.
    Run,
}

struct Lister<'a> {
    client: Client,
    cluster: &'a ClusterOptions,
    listed: usize,
}

impl Lister<'_> {
    /// Pages through one list, judging each object. A continue token seen
    /// twice, or an empty page that still has one, ends the list with an
    /// error (a server that loops would otherwise be read forever); a 410 on
    /// a continue request lists once more from the start, skipping the
    /// objects already judged.
    async fn list(
        &mut self,
        list: &List<'_>,
        judged: &CheckOptions,
        session: &mut Session,
        out: &mut dyn Write,
    ) -> Result<Stop, ClusterError> {
        let api: Api<DynamicObject> = match list.namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, list.resource),
            None => Api::all_with(self.client.clone(), list.resource),
        };
        let url = kube::core::Request::new(api.resource_url());
        let source = list.source();
        let page_size = self.cluster.page_size;
        let mut tokens = std::collections::HashSet::new();
        let mut judged_uids = std::collections::HashSet::new();
        let mut restarted = false;
        let mut warned_oversize = false;
        let mut token: Option<String> = None;
        loop {
            let mut params = ListParams::default().limit(page_size);
            if let Some(token) = &token {
                params = params.continue_token(token);
            }
            let answer = match url.list(&params) {
                Ok(request) => self.client.request_text(request).await,
                Err(err) => Err(kube::Error::BuildRequest(err)),
            };
            let page = match answer {
                Ok(text) => match serde_json::from_str::<RawPage>(&text) {
                    Ok(page) => page,
                    Err(err) => {
                        let message = format!(
                            "the API server's answer is not a list of {}: {err}; check the API server",
                            list.resource.plural
                        );
                        session.error(list.namespace, &source, &message, out)?;
                        return Ok(Stop::List);
                    }
                },
                Err(kube::Error::Api(status))
                    if status.code == 410 && token.is_some() && !restarted =>
                {
                    restarted = true;
                    token = None;
                    tokens.clear();
                    session.warning(
                        &source,
                        "410 Gone: the list expired while paging; listed again from the start, \
                         skipping objects already judged (objects changed meanwhile are judged as first read)",
                        out,
                    )?;
                    continue;
                }
                Err(err) => {
                    let mut message = explain(&err, self.cluster.timeout);
                    let stop = if ends_the_run(&err) {
                        message.push_str("; stopped: no further list was requested");
                        Stop::Run
                    } else {
                        Stop::List
                    };
                    session.error(list.namespace, &source, &message, out)?;
                    return Ok(stop);
                }
            };
            if page.items.len() > page_size as usize && !warned_oversize {
                warned_oversize = true;
                session.warning(
                    &source,
                    &format!(
                        "the API server answered {} objects for limit {page_size}: it ignores limit, \
                         so memory follows its pages, not --page-size",
                        page.items.len()
                    ),
                    out,
                )?;
            }
            let next = page.metadata.continue_.clone().filter(|t| !t.is_empty());
            let empty = page.items.is_empty();
            let paged = restarted || token.is_some() || next.is_some();
            for item in page.items {
                let object: Value = match serde_json::from_str(item.get()) {
                    Ok(object) => object,
                    Err(err) => {
                        let message = format!("an item of the list is not an object: {err}");
                        session.error(list.namespace, &source, &message, out)?;
                        continue;
                    }
                };
                drop(item);
                if paged {
                    let uid = object.pointer("/metadata/uid").and_then(Value::as_str);
                    if let Some(uid) = uid {
                        if !judged_uids.insert(uid.to_string()) {
                            continue;
                        }
                    }
                }
                self.judge(list, &source, object, judged, session, out)?;
            }
            if self.cluster.progress {
                eprint!(
                    "\rrollguard: {} workloads judged ({source})\x1b[K",
                    self.listed
                );
            }
            let Some(next) = next else {
                return Ok(Stop::List);
            };
            let problem = if empty {
                Some("an empty page that still has a continue token")
            } else if !tokens.insert(next.clone()) {
                Some("a continue token it had already sent")
            } else {
                None
            };
            if let Some(problem) = problem {
                let message = format!(
                    "the API server answered {problem}: paging would never end; stopped this list \
                     (the objects so far are judged); check the API server or an aggregated API in front of it"
                );
                session.error(list.namespace, &source, &message, out)?;
                return Ok(Stop::List);
            }
            token = Some(next);
        }
    }

    fn judge(
        &mut self,
        list: &List<'_>,
        source: &str,
        mut object: Value,
        judged: &CheckOptions,
        session: &mut Session,
        out: &mut dyn Write,
    ) -> Result<(), ClusterError> {
        let expected = list.kind.name();
        if let Some(kind) = object.get("kind").and_then(Value::as_str) {
            if !kind.is_empty() && kind != expected {
                let name = super::display_name(&object);
                let message = format!(
                    "the list of {} holds {name} of kind {kind}: not judged as a {expected}; check the API server",
                    list.resource.plural
                );
                session.error(list.namespace, source, &message, out)?;
                return Ok(());
            }
        }
        // List items usually carry no type: the list says what they are.
        object["apiVersion"] = Value::String(list.resource.api_version.clone());
        object["kind"] = Value::String(expected.to_string());
        if list.kind == WorkloadKind::Pod && judged_through_owner(&object) {
            return Ok(());
        }
        session.object(source, &object, judged, out)?;
        self.listed += 1;
        Ok(())
    }
}
