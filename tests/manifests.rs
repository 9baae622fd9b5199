//! The install manifests under `manifests/`, rendered the way users install
//! them (`kubectl kustomize`), must wire the webhook to the server as the code
//! defines it: routes from `Route::ALL`, container args the server's own CLI
//! accepts, ports and probes that match, and a Deployment that rollguard's own
//! policy admits unchanged. Needs `kubectl` (client only, no cluster) and
//! `kubernetes-validate` (pip, installed by `.ci/run`).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine as _;
use clap::Parser;
use rollguard::admission::Route;
use rollguard::cli::{Cli, Command as CliCommand, ServeArgs};
use rollguard::policy::{evaluate, EvalRequest, Mode, Stage};
use rollguard::rules::Action;
use rollguard::settings::Settings;
use rollguard::telemetry::LogFormat;
use rollguard::workload::WorkloadKind;
use serde_json::{json, Value};
use support::temp::TempDir;

/// Bound on every external command (kubectl, kubernetes-validate).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

const NAMESPACE: &str = "rollguard-system";

/// How an overlay provides the serving certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tls {
    /// The base alone: the Secret and caBundle come from an overlay.
    Missing,
    /// cert-manager Certificates and CA injection.
    CertManager,
    /// A Secret generated from files, caBundle copied from it.
    SelfManaged,
}

struct Variant {
    dir: &'static str,
    tls: Tls,
    audit: bool,
    strict: bool,
}

const VARIANTS: &[Variant] = &[
    Variant {
        dir: "base",
        tls: Tls::Missing,
        audit: false,
        strict: false,
    },
    Variant {
        dir: "overlays/cert-manager",
        tls: Tls::CertManager,
        audit: false,
        strict: false,
    },
    Variant {
        dir: "overlays/self-managed",
        tls: Tls::SelfManaged,
        audit: false,
        strict: false,
    },
    Variant {
        dir: "overlays/audit",
        tls: Tls::CertManager,
        audit: true,
        strict: false,
    },
    Variant {
        dir: "overlays/strict",
        tls: Tls::CertManager,
        audit: false,
        strict: true,
    },
];

struct Rendered {
    variant: &'static Variant,
    objects: Vec<Value>,
    /// The CA written for the self-managed overlay.
    ca_pem: Option<String>,
}

impl Rendered {
    fn name(&self) -> &str {
        self.variant.dir
    }

    fn all(&self, kind: &str) -> Vec<&Value> {
        self.objects.iter().filter(|o| o["kind"] == kind).collect()
    }

    fn one(&self, kind: &str) -> &Value {
        let found = self.all(kind);
        assert_eq!(
            found.len(),
            1,
            "{}: expected exactly one {kind}, found {}",
            self.name(),
            found.len()
        );
        found[0]
    }

    fn named(&self, kind: &str, name: &str) -> Option<&Value> {
        self.objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
    }

    fn deployment(&self) -> &Value {
        self.named("Deployment", "rollguard")
            .unwrap_or_else(|| panic!("{}: no Deployment rollguard", self.name()))
    }

    fn container(&self) -> &Value {
        let containers = array(
            &self.deployment()["spec"]["template"]["spec"]["containers"],
            "containers",
        );
        assert_eq!(containers.len(), 1, "{}: one container", self.name());
        &containers[0]
    }

    fn args(&self) -> Vec<String> {
        array(&self.container()["args"], "container args")
            .iter()
            .map(|a| text(a, "container arg").to_string())
            .collect()
    }

    fn serve_args(&self) -> ServeArgs {
        let args = self.args();
        let cli = Cli::try_parse_from(std::iter::once("rollguard".to_string()).chain(args.clone()))
            .unwrap_or_else(|err| {
                panic!(
                    "{}: the container args {args:?} are rejected by `rollguard`'s CLI:\n{err}",
                    self.name()
                )
            });
        assert_eq!(
            cli.log_format,
            LogFormat::Json,
            "{}: logs must be JSON in a cluster",
            self.name()
        );
        #[allow(irrefutable_let_patterns)]
        let CliCommand::Serve(serve) = cli.command
        else {
            panic!("{}: the container must run `rollguard serve`", self.name());
        };
        serve
    }

    /// containerPort of the container port with this name.
    fn container_port(&self, name: &str) -> i64 {
        let port = array(&self.container()["ports"], "container ports")
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{}: no container port named {name}", self.name()));
        int(&port["containerPort"], "containerPort")
    }

    /// Where the volume backed by this Secret or ConfigMap is mounted.
    fn mount_of(&self, source: &str, name_field: &str) -> (String, PathBuf) {
        let spec = &self.deployment()["spec"]["template"]["spec"];
        let volume = array(&spec["volumes"], "volumes")
            .iter()
            .find(|v| v.get(source).is_some())
            .unwrap_or_else(|| panic!("{}: no {source} volume", self.name()));
        let object_name = text(&volume[source][name_field], name_field).to_string();
        let volume_name = text(&volume["name"], "volume name");
        let mount = array(&self.container()["volumeMounts"], "volumeMounts")
            .iter()
            .find(|m| m["name"] == volume_name)
            .unwrap_or_else(|| panic!("{}: volume {volume_name} is not mounted", self.name()));
        assert_eq!(mount["readOnly"], true, "{}: {volume_name}", self.name());
        (
            object_name,
            PathBuf::from(text(&mount["mountPath"], "mountPath")),
        )
    }

    fn webhooks(&self, kind: &str) -> Vec<&Value> {
        array(&self.one(kind)["webhooks"], "webhooks")
            .iter()
            .collect()
    }

    /// Every webhook entry with the kind of its configuration.
    fn entries(&self) -> Vec<(&'static str, &Value)> {
        let mut out = Vec::new();
        for kind in [
            "MutatingWebhookConfiguration",
            "ValidatingWebhookConfiguration",
        ] {
            out.extend(self.webhooks(kind).into_iter().map(|w| (kind, w)));
        }
        out
    }
}

fn array<'a>(value: &'a Value, what: &str) -> &'a Vec<Value> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("{what} is not a list: {value}"))
}

fn text<'a>(value: &'a Value, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {value}"))
}

fn int(value: &Value, what: &str) -> i64 {
    value
        .as_i64()
        .unwrap_or_else(|| panic!("{what} is not an integer: {value}"))
}

fn manifests_dir() -> PathBuf {
    support::fixtures::root().join("manifests")
}

/// Output of a finished command.
struct Finished {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs a command with a time bound; panics with `missing` when the program
/// is not installed.
fn run(command: &mut Command, missing: &str) -> Finished {
    let shown = format!("{command:?}");
    let mut child = match command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => panic!("{missing}"),
        Err(err) => panic!("cannot run {shown}: {err}"),
    };
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut buf = String::new();
        let _ = out.read_to_string(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = String::new();
        let _ = err.read_to_string(&mut buf);
        buf
    });
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{shown} did not finish within {COMMAND_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Finished {
        success: status.success(),
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

fn kustomize(dir: &Path) -> String {
    let finished = run(
        Command::new("kubectl").arg("kustomize").arg(dir),
        "kubectl is not installed: the manifests tests render manifests/ with \
         `kubectl kustomize` (client only, no cluster needed); install kubectl",
    );
    assert!(
        finished.success,
        "`kubectl kustomize {}` failed:\n{}",
        dir.display(),
        finished.stderr
    );
    finished.stdout
}

/// Splits kustomize's output on `---` lines and parses each document.
fn parse_documents(yaml: &str) -> Vec<Value> {
    let mut documents = Vec::new();
    let mut current = String::new();
    let mut flush = |current: &mut String| {
        if !current.trim().is_empty() {
            let value: Value = serde_saphyr::from_str(current)
                .unwrap_or_else(|err| panic!("rendered YAML does not parse: {err}\n{current}"));
            documents.push(value);
        }
        current.clear();
    };
    for line in yaml.lines() {
        if line == "---" {
            flush(&mut current);
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    flush(&mut current);
    documents
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            // Never copy real certificates (and private keys) around.
            if entry.file_name() != "certs" {
                copy_tree(&entry.path(), &target);
            }
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Renders the self-managed overlay from a copy of manifests/ holding
/// throwaway certificate files (what `rollguard certs --out` writes), so the
/// working tree's `certs/` is never read or written. Returns the CA PEM.
fn render_self_managed() -> (String, String) {
    let copy = TempDir::new();
    let root = copy.path();
    copy_tree(&manifests_dir(), root);
    let certs = root.join("overlays/self-managed/certs");
    std::fs::create_dir_all(&certs).unwrap();
    let generated = rcgen::generate_simple_self_signed(vec![
        format!("rollguard.{NAMESPACE}.svc"),
        format!("rollguard.{NAMESPACE}.svc.cluster.local"),
    ])
    .unwrap();
    let ca = generated.cert.pem();
    std::fs::write(certs.join("tls.crt"), &ca).unwrap();
    std::fs::write(certs.join("tls.key"), generated.signing_key.serialize_pem()).unwrap();
    std::fs::write(certs.join("ca.crt"), &ca).unwrap();
    let yaml = kustomize(&root.join("overlays/self-managed"));
    (yaml, ca)
}

/// Every variant, rendered once per test binary.
fn rendered() -> &'static [Rendered] {
    static RENDERED: OnceLock<Vec<Rendered>> = OnceLock::new();
    RENDERED.get_or_init(|| {
        VARIANTS
            .iter()
            .map(|variant| {
                let (yaml, ca_pem) = if variant.tls == Tls::SelfManaged {
                    let (yaml, ca) = render_self_managed();
                    (yaml, Some(ca))
                } else {
                    (kustomize(&manifests_dir().join(variant.dir)), None)
                };
                Rendered {
                    variant,
                    objects: parse_documents(&yaml),
                    ca_pem,
                }
            })
            .collect()
    })
}

#[test]
fn every_variant_renders_the_whole_install() {
    for r in rendered() {
        for kind in [
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "Service",
            "Deployment",
            "PodDisruptionBudget",
            "MutatingWebhookConfiguration",
            "ValidatingWebhookConfiguration",
        ] {
            r.one(kind);
        }
        assert_eq!(r.one("Namespace")["metadata"]["name"], NAMESPACE);
        let cluster_scoped = [
            "Namespace",
            "ClusterRole",
            "ClusterRoleBinding",
            "MutatingWebhookConfiguration",
            "ValidatingWebhookConfiguration",
        ];
        for object in &r.objects {
            let kind = text(&object["kind"], "kind");
            let metadata = &object["metadata"];
            assert_eq!(
                metadata["labels"]["app.kubernetes.io/name"],
                "rollguard",
                "{}: {kind} {} lacks the common label",
                r.name(),
                metadata["name"]
            );
            if cluster_scoped.contains(&kind) {
                assert!(metadata.get("namespace").is_none(), "{}: {kind}", r.name());
            } else {
                assert_eq!(
                    metadata["namespace"],
                    NAMESPACE,
                    "{}: {kind} {}",
                    r.name(),
                    metadata["name"]
                );
            }
        }
        let extra: BTreeSet<&str> = r
            .objects
            .iter()
            .map(|o| text(&o["kind"], "kind"))
            .filter(|k| !cluster_scoped.contains(k))
            .filter(|k| {
                ![
                    "ServiceAccount",
                    "ConfigMap",
                    "Service",
                    "Deployment",
                    "PodDisruptionBudget",
                ]
                .contains(k)
            })
            .collect();
        let expected: BTreeSet<&str> = match r.variant.tls {
            Tls::Missing => BTreeSet::new(),
            Tls::CertManager => ["Certificate", "Issuer"].into(),
            Tls::SelfManaged => ["Secret"].into(),
        };
        assert_eq!(extra, expected, "{}: unexpected object kinds", r.name());
    }
}

#[test]
fn webhook_entries_route_to_the_servers_paths() {
    let known: BTreeSet<&str> = Route::ALL.iter().map(|r| r.path()).collect();
    for r in rendered() {
        let mut used = BTreeSet::new();
        let mut routes = BTreeMap::new();
        for (kind, entry) in r.entries() {
            let path = text(&entry["clientConfig"]["service"]["path"], "service path");
            assert!(
                known.contains(path),
                "{}: {kind} entry {} calls {path}, which the server does not serve ({known:?})",
                r.name(),
                entry["name"]
            );
            used.insert(path);
            let name = text(&entry["name"], "webhook name").to_string();
            assert!(
                routes.insert((kind, name.clone()), path).is_none(),
                "{}: {kind} has two entries named {name}",
                r.name()
            );
        }
        let expected = BTreeMap::from([
            (
                (
                    "MutatingWebhookConfiguration",
                    "enforce.rollguard.io".to_string(),
                ),
                Route::Mutate.path(),
            ),
            (
                (
                    "ValidatingWebhookConfiguration",
                    "enforce.rollguard.io".to_string(),
                ),
                Route::Validate.path(),
            ),
            (
                (
                    "ValidatingWebhookConfiguration",
                    "audit.rollguard.io".to_string(),
                ),
                Route::Audit.path(),
            ),
        ]);
        assert_eq!(routes, expected, "{}: webhook entries", r.name());
        assert_eq!(used, known, "{}: every route is used", r.name());
    }
}

#[test]
fn webhook_entries_reach_the_service_and_the_https_listener() {
    for r in rendered() {
        let service = r.one("Service");
        let service_port = array(&service["spec"]["ports"], "service ports")
            .iter()
            .find(|p| p["port"] == 443)
            .unwrap_or_else(|| panic!("{}: the Service has no port 443", r.name()));
        assert_eq!(service_port["targetPort"], "https", "{}", r.name());
        let https = r.container_port("https");
        assert_eq!(https, 8443, "{}", r.name());
        let serve = r.serve_args();
        assert_eq!(
            i64::from(serve.listen.port()),
            https,
            "{}: --listen must be the container port named https",
            r.name()
        );
        assert_eq!(
            i64::from(serve.ops_listen.port()),
            r.container_port("ops"),
            "{}: --ops-listen must be the container port named ops",
            r.name()
        );
        assert!(serve.listen.ip().is_unspecified(), "{}", r.name());
        assert!(serve.ops_listen.ip().is_unspecified(), "{}", r.name());
        let ops_port = array(&service["spec"]["ports"], "service ports")
            .iter()
            .find(|p| p["name"] == "ops")
            .unwrap_or_else(|| panic!("{}: the Service has no ops port", r.name()));
        assert_eq!(ops_port["targetPort"], "ops", "{}", r.name());

        let pod_labels = r.deployment()["spec"]["template"]["metadata"]["labels"]
            .as_object()
            .unwrap();
        for (what, selector) in [
            ("Service", &service["spec"]["selector"]),
            (
                "Deployment",
                &r.deployment()["spec"]["selector"]["matchLabels"],
            ),
            (
                "PodDisruptionBudget",
                &r.one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
            ),
        ] {
            let selector = selector.as_object().unwrap();
            assert!(!selector.is_empty(), "{}: {what} selector", r.name());
            for (key, value) in selector {
                assert_eq!(
                    pod_labels.get(key),
                    Some(value),
                    "{}: the {what} selector does not select the rollguard pods",
                    r.name()
                );
            }
        }

        for (kind, entry) in r.entries() {
            let client = &entry["clientConfig"];
            assert!(client.get("url").is_none(), "{}: {kind}", r.name());
            let target = &client["service"];
            assert_eq!(
                target["name"],
                service["metadata"]["name"],
                "{}: {kind}",
                r.name()
            );
            assert_eq!(
                target["namespace"],
                service["metadata"]["namespace"],
                "{}: {kind}",
                r.name()
            );
            assert_eq!(target["port"], 443, "{}: {kind}", r.name());
        }
    }
}

#[test]
fn webhook_entries_are_scoped_and_bounded() {
    let apps: BTreeSet<String> = ["daemonsets", "deployments", "statefulsets"]
        .iter()
        .map(|s| format!("apps/v1/{s}:CREATE,UPDATE"))
        .collect();
    for r in rendered() {
        for (kind, entry) in r.entries() {
            let name = text(&entry["name"], "webhook name");
            let at = format!("{}: {kind} {name}", r.name());
            let mode = if name.starts_with("audit.") {
                "audit"
            } else {
                "enforce"
            };
            let expressions = array(
                &entry["namespaceSelector"]["matchExpressions"],
                "matchExpressions",
            );
            assert!(
                entry["namespaceSelector"].get("matchLabels").is_none(),
                "{at}"
            );
            assert!(
                expressions.contains(&json!({
                    "key": "rollguard.io/mode", "operator": "In", "values": [mode]
                })),
                "{at}: must select namespaces labelled rollguard.io/mode={mode}: {expressions:?}"
            );
            let excluded = expressions
                .iter()
                .find(|e| e["key"] == "kubernetes.io/metadata.name" && e["operator"] == "NotIn")
                .unwrap_or_else(|| panic!("{at}: no kubernetes.io/metadata.name NotIn"));
            let excluded = array(&excluded["values"], "excluded namespaces");
            for namespace in ["kube-system", NAMESPACE] {
                assert!(excluded.contains(&json!(namespace)), "{at}: {namespace}");
            }
            assert_eq!(
                r.deployment()["metadata"]["namespace"],
                NAMESPACE,
                "{at}: rollguard must run in the namespace its webhooks exclude"
            );
            assert_eq!(entry["sideEffects"], "None", "{at}");
            assert_eq!(entry["admissionReviewVersions"], json!(["v1"]), "{at}");
            let timeout = int(&entry["timeoutSeconds"], "timeoutSeconds");
            assert!((1..=5).contains(&timeout), "{at}: timeoutSeconds {timeout}");
            assert_eq!(entry["matchPolicy"], "Equivalent", "{at}");
            if kind == "MutatingWebhookConfiguration" {
                assert_eq!(entry["reinvocationPolicy"], "IfNeeded", "{at}");
            }
            let fail_closed = r.variant.strict && mode == "enforce";
            let expected_policy = if fail_closed { "Fail" } else { "Ignore" };
            assert_eq!(entry["failurePolicy"], expected_policy, "{at}");

            let mut rules = BTreeSet::new();
            for rule in array(&entry["rules"], "rules") {
                assert_eq!(rule["scope"], "Namespaced", "{at}");
                let ops: Vec<&str> = array(&rule["operations"], "operations")
                    .iter()
                    .map(|o| text(o, "operation"))
                    .collect();
                for group in array(&rule["apiGroups"], "apiGroups") {
                    for version in array(&rule["apiVersions"], "apiVersions") {
                        for resource in array(&rule["resources"], "resources") {
                            let group = text(group, "apiGroup");
                            let gv = if group.is_empty() {
                                text(version, "apiVersion").to_string()
                            } else {
                                format!("{group}/{}", text(version, "apiVersion"))
                            };
                            rules.insert(format!(
                                "{gv}/{}:{}",
                                text(resource, "resource"),
                                ops.join(",")
                            ));
                        }
                    }
                }
            }
            let mut expected = apps.clone();
            expected.insert("v1/pods:CREATE".to_string());
            assert_eq!(rules, expected, "{at}: rules");
        }
    }
}

#[test]
fn the_ca_reaches_every_webhook_entry() {
    for r in rendered() {
        let (secret_name, _) = r.mount_of("secret", "secretName");
        let service = &r.one("Service")["metadata"];
        let dns = [
            format!("{}.{}.svc", service["name"].as_str().unwrap(), NAMESPACE),
            format!(
                "{}.{}.svc.cluster.local",
                service["name"].as_str().unwrap(),
                NAMESPACE
            ),
        ];
        for kind in [
            "MutatingWebhookConfiguration",
            "ValidatingWebhookConfiguration",
        ] {
            let configuration = r.one(kind);
            let inject =
                &configuration["metadata"]["annotations"]["cert-manager.io/inject-ca-from"];
            let bundles: Vec<&Value> = r
                .webhooks(kind)
                .iter()
                .map(|w| &w["clientConfig"]["caBundle"])
                .collect();
            match r.variant.tls {
                Tls::Missing => {
                    assert!(inject.is_null(), "{}: {kind}", r.name());
                    assert!(bundles.iter().all(|b| b.is_null()), "{}: {kind}", r.name());
                }
                Tls::CertManager => {
                    assert!(bundles.iter().all(|b| b.is_null()), "{}: {kind}", r.name());
                    let reference = text(inject, "inject-ca-from");
                    assert_eq!(
                        reference,
                        format!("{NAMESPACE}/rollguard-serving"),
                        "{}",
                        r.name()
                    );
                    let (namespace, name) = reference.split_once('/').unwrap();
                    let certificate = r.named("Certificate", name).unwrap_or_else(|| {
                        panic!("{}: {kind} injects from a missing Certificate", r.name())
                    });
                    assert_eq!(certificate["metadata"]["namespace"], namespace);
                    let spec = &certificate["spec"];
                    assert_eq!(
                        spec["secretName"],
                        secret_name.as_str(),
                        "{}: the serving Certificate must write the Secret the pods mount",
                        r.name()
                    );
                    let names = array(&spec["dnsNames"], "dnsNames");
                    for dns in &dns {
                        assert!(names.contains(&json!(dns)), "{}: {dns}", r.name());
                    }
                    // Its issuer chain exists in the same rendering.
                    let mut issuer_name = text(&spec["issuerRef"]["name"], "issuerRef");
                    for _ in 0..3 {
                        let issuer = r
                            .named("Issuer", issuer_name)
                            .unwrap_or_else(|| panic!("{}: no Issuer {issuer_name}", r.name()));
                        if issuer["spec"].get("selfSigned").is_some() {
                            break;
                        }
                        let ca_secret = text(&issuer["spec"]["ca"]["secretName"], "ca secret");
                        let ca = r
                            .all("Certificate")
                            .into_iter()
                            .find(|c| c["spec"]["secretName"] == ca_secret)
                            .unwrap_or_else(|| {
                                panic!("{}: no Certificate writes {ca_secret}", r.name())
                            });
                        assert_eq!(ca["spec"]["isCA"], true, "{}", r.name());
                        issuer_name = text(&ca["spec"]["issuerRef"]["name"], "issuerRef");
                    }
                }
                Tls::SelfManaged => {
                    assert!(inject.is_null(), "{}: {kind}", r.name());
                    let secret = r.named("Secret", &secret_name).unwrap_or_else(|| {
                        panic!("{}: no Secret {secret_name} for the pods", r.name())
                    });
                    assert_eq!(secret["type"], "kubernetes.io/tls", "{}", r.name());
                    for key in ["tls.crt", "tls.key", "ca.crt"] {
                        assert!(secret["data"][key].is_string(), "{}: {key}", r.name());
                    }
                    // kustomize wraps long base64 values at 70 columns; the API
                    // server's base64 decoding ignores the line breaks.
                    let expected = r.ca_pem.as_deref().unwrap().as_bytes();
                    for bundle in bundles {
                        let joined: String = text(bundle, "caBundle")
                            .chars()
                            .filter(|c| *c != '\n')
                            .collect();
                        let decoded = base64::engine::general_purpose::STANDARD
                            .decode(joined)
                            .unwrap_or_else(|err| {
                                panic!("{}: {kind} caBundle is not base64: {err}", r.name())
                            });
                        assert_eq!(
                            decoded,
                            expected,
                            "{}: {kind} caBundle must be ca.crt",
                            r.name()
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn container_args_parse_with_the_servers_cli_and_match_the_mounts() {
    for r in rendered() {
        let serve = r.serve_args();
        assert_eq!(
            serve.audit,
            r.variant.audit,
            "{}: --audit is set only by the audit overlay",
            r.name()
        );
        assert!(!serve.self_signed, "{}", r.name());
        let (_, tls_dir) = r.mount_of("secret", "secretName");
        let cert = serve.tls_cert.as_ref().expect("--tls-cert");
        let key = serve.tls_key.as_ref().expect("--tls-key");
        assert_eq!(cert, &tls_dir.join("tls.crt"), "{}", r.name());
        assert_eq!(key, &tls_dir.join("tls.key"), "{}", r.name());

        // The config file is a key of the mounted ConfigMap, and the server
        // accepts its content.
        let (config_map, config_dir) = r.mount_of("configMap", "name");
        let config = serve.policy.config.as_ref().expect("--config");
        assert_eq!(config.parent(), Some(config_dir.as_path()), "{}", r.name());
        let file_name = config.file_name().unwrap().to_str().unwrap();
        let config_map = r
            .named("ConfigMap", &config_map)
            .unwrap_or_else(|| panic!("{}: no ConfigMap {config_map}", r.name()));
        let content = text(&config_map["data"][file_name], "configuration");
        configured_settings(content);
    }
}

fn configured_settings(content: &str) -> Settings {
    let file = rollguard::config::parse_file(content)
        .unwrap_or_else(|err| panic!("the shipped rollguard.yaml does not parse: {err}"));
    rollguard::config::resolve(&file, &rollguard::config::Overrides::default())
        .unwrap_or_else(|err| panic!("the shipped rollguard.yaml is invalid: {err}"))
}

#[test]
fn probes_shutdown_and_rollout_fit_the_server() {
    for r in rendered() {
        let container = r.container();
        let ops = r.container_port("ops");
        for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
            let get = &container[probe]["httpGet"];
            assert_eq!(get["path"], path, "{}: {probe}", r.name());
            let port = &get["port"];
            assert!(
                port == "ops" || port == ops,
                "{}: {probe} must use the ops port, not {port}",
                r.name()
            );
        }
        assert_ne!(container["readinessProbe"], container["livenessProbe"]);

        let pod = &r.deployment()["spec"]["template"]["spec"];
        let sleep = int(
            &container["lifecycle"]["preStop"]["sleep"]["seconds"],
            "preStop sleep",
        );
        let grace = int(
            &pod["terminationGracePeriodSeconds"],
            "terminationGracePeriodSeconds",
        );
        // preStop, then the server's shutdown delay (5s) and drain (10s).
        assert!(
            sleep >= 1 && grace >= sleep + 15,
            "{}: grace {grace}s",
            r.name()
        );

        let spec = &r.deployment()["spec"];
        assert!(int(&spec["replicas"], "replicas") >= 2, "{}", r.name());
        assert_eq!(spec["strategy"]["type"], "RollingUpdate", "{}", r.name());
        assert_eq!(spec["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
        assert_eq!(spec["strategy"]["rollingUpdate"]["maxSurge"], 1);
        let min_ready = int(&spec["minReadySeconds"], "minReadySeconds");
        assert!((1..=30).contains(&min_ready), "{}", r.name());
        assert_eq!(
            r.one("PodDisruptionBudget")["spec"]["minAvailable"],
            1,
            "{}",
            r.name()
        );
        let anti =
            &pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"];
        assert_eq!(
            anti[0]["podAffinityTerm"]["topologyKey"],
            "kubernetes.io/hostname",
            "{}",
            r.name()
        );
    }
}

#[test]
fn the_pods_are_hardened_and_bounded() {
    for r in rendered() {
        let pod = &r.deployment()["spec"]["template"]["spec"];
        let container = r.container();
        assert_eq!(pod["serviceAccountName"], "rollguard", "{}", r.name());
        for (what, context) in [
            ("pod", &pod["securityContext"]),
            ("container", &container["securityContext"]),
        ] {
            assert_eq!(context["runAsNonRoot"], true, "{}: {what}", r.name());
            assert_eq!(context["runAsUser"], 65532, "{}: {what}", r.name());
            assert_eq!(
                context["seccompProfile"]["type"],
                "RuntimeDefault",
                "{}: {what}",
                r.name()
            );
        }
        let context = &container["securityContext"];
        assert_eq!(context["readOnlyRootFilesystem"], true, "{}", r.name());
        assert_eq!(context["allowPrivilegeEscalation"], false, "{}", r.name());
        assert_eq!(
            context["capabilities"]["drop"],
            json!(["ALL"]),
            "{}",
            r.name()
        );
        assert!(context.get("privileged").is_none_or(|p| p == false));
        let resources = &container["resources"];
        for field in ["/requests/cpu", "/requests/memory", "/limits/memory"] {
            assert!(
                resources.pointer(field).is_some_and(Value::is_string),
                "{}: resources{field}",
                r.name()
            );
        }
        assert!(container["image"].as_str().unwrap().contains(':'));
    }
}

#[test]
fn rbac_allows_only_reading_the_server_version() {
    for r in rendered() {
        for kind in ["Role", "RoleBinding"] {
            assert!(r.all(kind).is_empty(), "{}: no {kind} needed", r.name());
        }
        let role = r.one("ClusterRole");
        assert_eq!(
            role["rules"],
            json!([{"nonResourceURLs": ["/version"], "verbs": ["get"]}]),
            "{}",
            r.name()
        );
        let binding = r.one("ClusterRoleBinding");
        assert_eq!(binding["roleRef"]["kind"], "ClusterRole");
        assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
        let account = r.one("ServiceAccount");
        assert_eq!(
            binding["subjects"],
            json!([{
                "kind": "ServiceAccount",
                "name": account["metadata"]["name"],
                "namespace": account["metadata"]["namespace"],
            }]),
            "{}",
            r.name()
        );
        assert_eq!(
            r.deployment()["spec"]["template"]["spec"]["serviceAccountName"],
            account["metadata"]["name"],
            "{}",
            r.name()
        );
    }
}

/// rollguard's own Deployment, and the pods it creates, pass rollguard's
/// policy unchanged: no denial, no warning, an empty patch.
#[test]
fn rollguard_admits_its_own_deployment_unchanged() {
    for r in rendered() {
        let deployment = r.deployment();
        let template = &deployment["spec"]["template"];
        let pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "generateName": "rollguard-",
                "namespace": NAMESPACE,
                "labels": template["metadata"]["labels"],
                "annotations": template["metadata"]["annotations"],
            },
            "spec": template["spec"],
        });
        let (config_map, _) = r.mount_of("configMap", "name");
        let shipped = configured_settings(text(
            &r.named("ConfigMap", &config_map).unwrap()["data"]["rollguard.yaml"],
            "configuration",
        ));
        for settings in [Settings::default(), shipped] {
            for (kind, object) in [
                (WorkloadKind::Deployment, deployment),
                (WorkloadKind::Pod, &pod),
            ] {
                let verdict = evaluate(
                    &EvalRequest {
                        kind,
                        object,
                        stage: Stage::Full,
                        mode: Mode::Enforce,
                    },
                    &settings,
                )
                .unwrap_or_else(|err| panic!("{}: {kind}: {err}", r.name()));
                let denials: Vec<String> = verdict
                    .violations
                    .iter()
                    .filter(|v| v.action == Action::Deny)
                    .map(|v| v.message())
                    .collect();
                assert!(
                    denials.is_empty(),
                    "{}: rollguard denies its own {kind}:\n{}",
                    r.name(),
                    denials.join("\n")
                );
                let warnings: Vec<String> =
                    verdict.violations.iter().map(|v| v.message()).collect();
                assert!(
                    warnings.is_empty(),
                    "{}: rollguard warns about its own {kind}:\n{}",
                    r.name(),
                    warnings.join("\n")
                );
                let changes: Vec<String> = verdict.mutations.iter().map(|m| m.describe()).collect();
                assert!(
                    verdict.patch.0.is_empty() && changes.is_empty(),
                    "{}: rollguard would change its own {kind}: {changes:?}",
                    r.name()
                );
            }
        }
    }
}

/// The Kubernetes objects are valid against the official schemas (cert-manager
/// CRDs are not known to kubernetes-validate and are checked above instead).
#[test]
fn rendered_objects_are_schema_valid() {
    const CORE: &[&str] = &[
        "v1",
        "apps/v1",
        "policy/v1",
        "rbac.authorization.k8s.io/v1",
        "admissionregistration.k8s.io/v1",
    ];
    let dir = TempDir::new();
    let mut files = Vec::new();
    for r in rendered() {
        for object in &r.objects {
            let api_version = text(&object["apiVersion"], "apiVersion");
            if !CORE.contains(&api_version) {
                assert_eq!(
                    api_version,
                    "cert-manager.io/v1",
                    "{}: unexpected API {api_version}",
                    r.name()
                );
                continue;
            }
            let name = format!(
                "{}-{}-{}.json",
                r.name().replace('/', "-"),
                object["kind"].as_str().unwrap(),
                object["metadata"]["name"].as_str().unwrap()
            );
            files.push(dir.write(&name, serde_json::to_vec_pretty(object).unwrap()));
        }
    }
    // Native preStop sleep needs 1.30, the oldest version the manifests support.
    for version in ["1.30", "1.33"] {
        let finished = run(
            Command::new("kubernetes-validate")
                .args(["--strict", "--quiet", "-k", version])
                .args(&files),
            "kubernetes-validate is not installed: run scripts/test-deps.sh (.ci/run does)",
        );
        let report = finished.stdout + &finished.stderr;
        assert!(
            finished.success && !report.contains("ERROR"),
            "rendered manifests are not valid for Kubernetes {version}:\n{report}"
        );
    }
}

/// The install docs only point at manifests that exist.
#[test]
fn docs_name_existing_manifests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for doc in ["docs/install.md", "certs/README.md"] {
        let content = std::fs::read_to_string(root.join(doc))
            .unwrap_or_else(|err| panic!("cannot read {doc}: {err}"));
        let mut seen = 0;
        for (index, _) in content.match_indices("manifests/") {
            let path: String = content[index..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "/-_.".contains(*c))
                .collect();
            let path = path.trim_end_matches(['.', '/']);
            // Paths inside the self-managed certs/ folder exist only once generated.
            if path.contains("/certs/") || path.ends_with("/certs") {
                continue;
            }
            assert!(
                root.join(path).exists(),
                "{doc} names {path}, which does not exist"
            );
            seen += 1;
        }
        assert!(seen > 0, "{doc} names no manifests");
        for example in content.match_indices("examples/") {
            let path: String = content[example.0..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "/-_.".contains(*c))
                .collect();
            assert!(root.join(&path).exists(), "{doc} names {path}");
        }
    }
}

#[test]
fn every_variant_sets_the_allocator_to_return_freed_memory() {
    for variant in rendered() {
        let env = array(&variant.container()["env"], "container env");
        for (name, value) in rollguard::ALLOCATOR_ENV {
            assert!(
                env.iter().any(|e| e["name"] == name && e["value"] == value),
                "{}: {name}={value} missing from the container env {env:?}",
                variant.name()
            );
        }
    }
    let dockerfile = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile"),
    )
    .expect("Dockerfile");
    for (name, value) in rollguard::ALLOCATOR_ENV {
        assert!(
            dockerfile.contains(&format!("{name}={value}")),
            "Dockerfile lacks {name}"
        );
    }
}

/// The optional role for `rollguard check --cluster` renders on its own and
/// can only list the kinds `check --cluster` reads: no get, watch or write,
/// and nothing else (secrets least of all).
#[test]
fn the_check_rbac_component_only_lists_what_check_cluster_reads() {
    let copy = TempDir::new();
    let root = copy.path();
    copy_tree(&manifests_dir(), &root.join("manifests"));
    let overlay = root.join("overlay");
    std::fs::create_dir_all(&overlay).unwrap();
    std::fs::write(
        overlay.join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
         components:\n  - ../manifests/components/check-rbac\n",
    )
    .unwrap();
    let objects = parse_documents(&kustomize(&overlay));
    drop(copy);

    assert_eq!(objects.len(), 1, "{objects:?}");
    let role = &objects[0];
    assert_eq!(role["kind"], "ClusterRole");
    assert_eq!(role["metadata"]["name"], "rollguard-check");
    let mut granted = Vec::new();
    for rule in array(&role["rules"], "rules") {
        assert_eq!(rule["verbs"], serde_json::json!(["list"]), "{rule}");
        for group in array(&rule["apiGroups"], "apiGroups") {
            for resource in array(&rule["resources"], "resources") {
                granted.push(format!(
                    "{}/{}",
                    text(group, "apiGroup"),
                    text(resource, "resource")
                ));
            }
        }
    }
    granted.sort();
    assert_eq!(
        granted,
        [
            "/namespaces",
            "/pods",
            "apps/daemonsets",
            "apps/deployments",
            "apps/statefulsets"
        ]
    );
}

/// The sample binding next to the check role binds exactly that role, and
/// stays out of the rendered component (its subject is the user's to name).
#[test]
fn the_check_rbac_sample_binding_binds_the_check_role() {
    let dir = manifests_dir().join("components/check-rbac");
    let text = std::fs::read_to_string(dir.join("clusterrolebinding.example.yaml")).unwrap();
    let bindings = parse_documents(&text);
    assert_eq!(bindings.len(), 1);
    let binding = &bindings[0];
    assert_eq!(binding["kind"], "ClusterRoleBinding");
    assert_eq!(
        binding["roleRef"],
        serde_json::json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                           "name": "rollguard-check"})
    );
    assert!(!array(&binding["subjects"], "subjects").is_empty());
    let kustomization = std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap();
    assert!(
        !kustomization.contains("\n  - clusterrolebinding"),
        "{kustomization}"
    );
}
