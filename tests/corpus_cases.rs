//! One test per finding of the corpus run (issue 11), each on a minimal
//! manifest cut from the corpus file named above it.

mod support;

use rollguard::check::{documents, parse, run, CheckOptions, Format, Input};
use rollguard::policy::{
    evaluate, EffectiveMode, EvalRequest, Mode, Stage, Verdict, MAX_WARNING_CHARS,
};
use rollguard::rules::{Action, Rule};
use rollguard::settings::Settings;
use rollguard::workload::WorkloadKind;
use serde_json::{json, Value};
use support::audit;

fn read(yaml: &str) -> Value {
    parse(&documents(yaml)[0]).expect("the case parses").value
}

fn verdict(yaml: &str, mode: Mode) -> Verdict {
    let object = read(yaml);
    let kind = WorkloadKind::from_object(&object).expect("a workload");
    evaluate(
        &EvalRequest {
            kind,
            object: &object,
            stage: Stage::Full,
            mode,
        },
        &Settings::default(),
    )
    .expect("evaluates")
}

fn check_text(yaml: &str, format: Format) -> (String, rollguard::check::Summary) {
    let options = CheckOptions {
        mode: Mode::Enforce,
        format,
        color: false,
        settings: Settings::default(),
    };
    let mut out = Vec::new();
    let summary = run(&[Input::Stdin], &options, &mut yaml.as_bytes(), &mut out).unwrap();
    (String::from_utf8(out).unwrap(), summary)
}

// jaegertracing__jaeger-operator/examples__tracegen.yaml (jaeger-agent sidecar ports).
const UDP_AGENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: tracegen
spec:
  replicas: 10
  selector:
    matchLabels:
      app: tracegen
  template:
    metadata:
      labels:
        app: tracegen
    spec:
      containers:
      - name: jaeger-agent
        image: jaegertracing/jaeger-agent:1.65.0
        ports:
        - containerPort: 6831
          name: jg-compact-trft
          protocol: UDP
        - containerPort: 6832
          name: jg-binary-trft
          protocol: UDP
";

#[test]
fn finding_1_no_readiness_probe_on_a_udp_only_container() {
    let v = verdict(UDP_AGENT, Mode::Enforce);
    assert!(
        !v.mutations.iter().any(|m| m.rule == Rule::ReadinessProbe),
        "{:?}",
        v.mutations
    );
    assert!(!v
        .violations
        .iter()
        .any(|v| v.rule == Rule::ReadinessMissing));
    // With a TCP port after the UDP ones, the probe goes on the TCP port.
    let mixed = UDP_AGENT.replace(
        "          name: jg-binary-trft\n          protocol: UDP\n",
        "          name: jg-binary-trft\n          protocol: UDP\n        - containerPort: 5778\n          name: http-config\n",
    );
    let v = verdict(&mixed, Mode::Enforce);
    let probe = v
        .mutations
        .iter()
        .find(|m| m.rule == Rule::ReadinessProbe)
        .expect("a probe on the TCP port");
    assert_eq!(probe.new, json!({"tcpSocket": {"port": "http-config"}}));
}

// istio__istio/samples__jwt-server__jwt-server.yaml
const JWT_SERVER: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: jwt-server
spec:
  replicas: 1
  selector:
    matchLabels:
      app: jwt-server
  template:
    metadata:
      labels:
        app: jwt-server
    spec:
      containers:
      - image: gcr.io/istio-testing/jwt-server:0.7
        name: jwt-server
        ports:
        - containerPort: 8000
      volumes:
      - name: certkeysecretresource
        secret:
          secretName: jwt-cert-key-secret
          defaultMode: 0400
";

#[test]
fn finding_2_yaml_output_keeps_octal_modes_as_kubectl_reads_them() {
    assert_eq!(
        read(JWT_SERVER)["spec"]["template"]["spec"]["volumes"][0]["secret"]["defaultMode"],
        json!(256)
    );
    let (yaml, summary) = check_text(JWT_SERVER, Format::Yaml);
    assert_eq!(summary.mutated, 1);
    assert!(!yaml.contains("400.0"), "{yaml}");
    let reread = read(&yaml);
    let expected = verdict(JWT_SERVER, Mode::Enforce).admitted;
    assert_eq!(
        reread, expected,
        "the output re-read is the original plus the patch"
    );
}

// kubernetes__ingress-nginx/deploy__static__provider__kind__deploy.yaml
const KIND_INGRESS: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ingress-nginx-controller
  namespace: ingress-nginx
spec:
  minReadySeconds: 0
  revisionHistoryLimit: 10
  selector:
    matchLabels:
      app.kubernetes.io/name: ingress-nginx
  strategy:
    rollingUpdate:
      maxUnavailable: 1
    type: RollingUpdate
  template:
    metadata:
      labels:
        app.kubernetes.io/name: ingress-nginx
    spec:
      containers:
      - name: controller
        image: registry.k8s.io/ingress-nginx/controller:v1.12.1
        ports:
        - containerPort: 80
          hostPort: 80
          name: http
          protocol: TCP
        - containerPort: 443
          hostPort: 443
          name: https
          protocol: TCP
";

#[test]
fn finding_3_single_replica_with_host_port_is_not_forced_to_surge_and_says_why() {
    let v = verdict(KIND_INGRESS, Mode::Enforce);
    assert!(
        !v.mutations.iter().any(|m| m.rule == Rule::SingleReplica),
        "{:?}",
        v.mutations
    );
    let warning = v
        .violations
        .iter()
        .find(|v| v.rule == Rule::SingleReplicaHostPort)
        .expect("a warning says why no surge is forced");
    assert_eq!(warning.action, Action::Warn);
    assert!(warning.detail.contains("hostPort 80"), "{}", warning.detail);
    assert!(
        warning.detail.contains("no surge fits"),
        "{}",
        warning.detail
    );
    // No other rule forces a surge on it either.
    for annotation in [
        "rollguard.io/profile: pull-based",
        "rollguard.io/warmup: 30s",
    ] {
        let annotated = KIND_INGRESS.replacen(
            "metadata:\n",
            &format!("metadata:\n  annotations:\n    {annotation}\n"),
            1,
        );
        let v = verdict(&annotated, Mode::Enforce);
        assert!(
            !v.mutations
                .iter()
                .any(|m| m.field.ends_with("maxUnavailable")),
            "{annotation}: {:?}",
            v.mutations
        );
        assert!(
            v.violations
                .iter()
                .any(|v| v.rule == Rule::SingleReplicaHostPort),
            "{annotation}"
        );
    }
    // Without the hostPort the single replica is made surge-first as before.
    let plain = KIND_INGRESS
        .replace("          hostPort: 80\n", "")
        .replace("          hostPort: 443\n", "");
    let v = verdict(&plain, Mode::Enforce);
    assert!(v.mutations.iter().any(|m| m.rule == Rule::SingleReplica));
    assert!(!v
        .violations
        .iter()
        .any(|v| v.rule == Rule::SingleReplicaHostPort));
}

#[test]
fn finding_5_duplicate_key_takes_the_last_value_with_a_warning() {
    // A ConfigMap in the corpus repeats a key; kubectl keeps the last value.
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: '1'\n  a: '2'\n";
    let (text, summary) = check_text(yaml, Format::Text);
    assert_eq!(summary.errors, 0, "{text}");
    assert!(
        text.contains("warning: <stdin>:7: duplicate key \"a\""),
        "{text}"
    );
    assert!(!text.contains("DuplicateKeyPolicy"), "{text}");
    assert_eq!(read(yaml)["data"]["a"], "2");
}

#[test]
fn finding_6_parse_errors_point_at_the_files_own_line() {
    // 17 lines, the error on the last: it was reported as :31.
    let mut yaml = "# Licensed under the Apache License\n".repeat(14);
    yaml.push_str("apiVersion: v1\nkind: ConfigMap\ndata: {a: [1\n");
    let (text, summary) = check_text(&yaml, Format::Text);
    assert_eq!(summary.errors, 1);
    let line: usize = text
        .split("<stdin>:")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse().ok())
        .expect("a line number");
    assert!((17..=18).contains(&line), "{text}");
}

fn audit_warnings(yaml: &str) -> Vec<String> {
    let response = audit::audit_response(&read(yaml));
    assert!(
        response["auditAnnotations"]["detail"].is_string(),
        "{response}"
    );
    audit::warnings(&response)
}

#[test]
fn finding_7_audit_warnings_name_rule_field_and_whole_value_within_120_chars() {
    let long_name = UDP_AGENT
        .replace(
            "jaeger-agent",
            "a-container-name-long-enough-to-push-the-warning-past-the-limit",
        )
        .replace("protocol: UDP", "protocol: TCP");
    for yaml in [JWT_SERVER, long_name.as_str()] {
        let warnings = audit_warnings(yaml);
        assert!(!warnings.is_empty());
        for w in &warnings {
            assert!(w.chars().count() <= MAX_WARNING_CHARS, "{w}");
            assert!(!w.contains("{\"sl"), "{w}");
        }
    }
    let warnings = audit_warnings(JWT_SERVER);
    assert!(
        warnings.iter().any(|w| w
            == "rollguard audit prestop-sleep: would set containers[jwt-server].lifecycle.preStop to sleep seconds 10"),
        "{warnings:?}"
    );
    let typo = JWT_SERVER.replace(
        "  name: jwt-server\nspec:",
        "  name: jwt-server\n  annotations:\n    rollguard.io/shutdown-timout: 20s\nspec:",
    );
    let warnings = audit_warnings(&typo);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("rollguard.io/shutdown-timout")),
        "{warnings:?}"
    );
}

#[test]
fn finding_8_mode_off_on_the_workload_reaches_its_pods() {
    let off = JWT_SERVER.replace(
        "  name: jwt-server\nspec:",
        "  name: jwt-server\n  annotations:\n    rollguard.io/mode: \"off\"\nspec:",
    );
    let v = verdict(&off, Mode::Enforce);
    assert_eq!(v.mode, EffectiveMode::Off);
    assert!(v.mutations.is_empty());
    assert_eq!(
        v.admitted["spec"]["template"]["metadata"]["annotations"]["rollguard.io/mode"],
        "off"
    );
    assert_eq!(v.patch.0.len(), 1, "only the mode is copied: {:?}", v.patch);
    // A pod built from that template is left alone by the Pod webhook.
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "jwt-server-", "annotations": v.admitted["spec"]["template"]["metadata"]["annotations"].clone()},
        "spec": v.admitted["spec"]["template"]["spec"].clone(),
    });
    let pv = evaluate(
        &EvalRequest {
            kind: WorkloadKind::Pod,
            object: &pod,
            stage: Stage::Mutate,
            mode: Mode::Enforce,
        },
        &Settings::default(),
    )
    .unwrap();
    assert_eq!(pv.mode, EffectiveMode::Off);
    assert!(pv.patch.0.is_empty());
    // Mutating it again changes nothing more.
    let again = evaluate(
        &EvalRequest {
            kind: WorkloadKind::Deployment,
            object: &v.admitted,
            stage: Stage::Mutate,
            mode: Mode::Enforce,
        },
        &Settings::default(),
    )
    .unwrap();
    assert!(again.patch.0.is_empty());
}

#[test]
fn finding_11_one_object_checked_is_singular() {
    let (text, _) = check_text(JWT_SERVER, Format::Text);
    assert!(text.contains("1 object checked:"), "{text}");
}

#[test]
fn issue_14_item_5_a_readiness_port_name_nobody_declares_is_refused() {
    let yaml = JWT_SERVER
        .replace(
            "  name: jwt-server\nspec:",
            "  name: jwt-server\n  annotations:\n    rollguard.io/readiness-port: metrics\nspec:",
        )
        .replace(
            "        - containerPort: 8000\n",
            "        - containerPort: 8000\n          name: http\n",
        );
    let v = verdict(&yaml, Mode::Enforce);
    let denial = v
        .denials()
        .find(|v| v.rule == Rule::InvalidAnnotation)
        .expect("denied as invalid-annotation");
    assert!(
        denial.field.contains("rollguard.io/readiness-port"),
        "{}",
        denial.field
    );
    assert!(
        denial.detail.contains("metrics") && denial.detail.contains("http"),
        "{}",
        denial.detail
    );
    assert!(
        !v.mutations.iter().any(|m| m.rule == Rule::ReadinessProbe),
        "no probe on a port that does not exist"
    );
    // A port number needs no declaration.
    let numbered = yaml.replace("readiness-port: metrics", "readiness-port: \"9090\"");
    assert!(!verdict(&numbered, Mode::Enforce).denied());
}

// prometheus-operator__kube-prometheus (kube-rbac-proxy beside the app) and
// flannel-io__flannel / cert-manager (only a metrics or healthz port).
const SIDECARS: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: kube-state-metrics
spec:
  replicas: 2
  selector:
    matchLabels:
      app: ksm
  template:
    metadata:
      labels:
        app: ksm
    spec:
      containers:
      - name: app
        image: registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.15.0
        ports:
        - containerPort: 8080
          name: web
      - name: kube-rbac-proxy-main
        image: quay.io/brancz/kube-rbac-proxy:v0.19.0
        ports:
        - containerPort: 8443
          name: https-main
      - name: exporter
        image: example.com/exporter:1
        ports:
        - containerPort: 9402
          name: http-metrics
        - containerPort: 9403
          name: healthz
";

#[test]
fn finding_4_helper_sidecars_and_metrics_only_containers_get_nothing() {
    let v = verdict(SIDECARS, Mode::Enforce);
    let touched: Vec<&str> = v
        .mutations
        .iter()
        .filter(|m| matches!(m.rule, Rule::PrestopSleep | Rule::ReadinessProbe))
        .map(|m| m.field.as_str())
        .collect();
    assert!(
        touched.iter().all(|f| f.contains("containers[app]")),
        "{touched:?}"
    );
    assert_eq!(
        touched.len(),
        2,
        "preStop and probe on the app: {touched:?}"
    );
    // The skip list matches by image as well as by name.
    let mut settings = Settings::default();
    settings
        .skip_containers
        .push("kube-state-metrics".to_string());
    let object = read(SIDECARS);
    let v = evaluate(
        &EvalRequest {
            kind: WorkloadKind::Deployment,
            object: &object,
            stage: Stage::Full,
            mode: Mode::Enforce,
        },
        &settings,
    )
    .unwrap();
    assert!(
        !v.mutations
            .iter()
            .any(|m| matches!(m.rule, Rule::PrestopSleep | Rule::ReadinessProbe)),
        "{:?}",
        v.mutations
    );
}

#[test]
fn finding_4_a_daemonset_gets_no_prestop_sleep_unless_it_asks() {
    let ds = JWT_SERVER
        .replace("kind: Deployment", "kind: DaemonSet")
        .replace("  replicas: 1\n", "");
    let v = verdict(&ds, Mode::Enforce);
    assert!(!v.mutations.iter().any(|m| m.rule == Rule::PrestopSleep));
    let asked = ds.replace(
        "  name: jwt-server\nspec:",
        "  name: jwt-server\n  annotations:\n    rollguard.io/prestop-sleep: 5s\nspec:",
    );
    let v = verdict(&asked, Mode::Enforce);
    assert!(v.mutations.iter().any(|m| m.rule == Rule::PrestopSleep));
}

// rook__rook/deploy__examples__direct-mount.yaml, with the maxUnavailable 1
// a user might write: hostNetwork binds every container port on the node.
const ROOK_DIRECT_MOUNT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: rook-direct-mount
  namespace: rook-ceph
spec:
  replicas: 1
  strategy:
    rollingUpdate:
      maxSurge: 0
      maxUnavailable: 1
  selector:
    matchLabels:
      app: rook-direct-mount
  template:
    metadata:
      labels:
        app: rook-direct-mount
    spec:
      dnsPolicy: ClusterFirstWithHostNet
      containers:
        - name: rook-direct-mount
          image: docker.io/rook/ceph:master
          command: [\"/bin/bash\"]
      hostNetwork: true
";

#[test]
fn finding_3_host_network_counts_as_a_host_port_for_a_single_replica() {
    let v = verdict(ROOK_DIRECT_MOUNT, Mode::Enforce);
    assert!(
        !v.mutations
            .iter()
            .any(|m| m.field.ends_with("maxUnavailable")),
        "{:?}",
        v.mutations
    );
    let warning = v
        .violations
        .iter()
        .find(|v| v.rule == Rule::SingleReplicaHostPort)
        .expect("a warning says why no surge is forced");
    assert!(warning.detail.contains("hostNetwork"), "{}", warning.detail);
    for w in audit_warnings(ROOK_DIRECT_MOUNT) {
        assert!(
            w.chars().count() <= MAX_WARNING_CHARS && !w.contains('…'),
            "{w}"
        );
    }
    // Off the host network, the single replica is made surge-first.
    let v = verdict(
        &ROOK_DIRECT_MOUNT.replace("hostNetwork: true", "hostNetwork: false"),
        Mode::Enforce,
    );
    assert!(
        v.mutations.iter().any(|m| m.rule == Rule::SingleReplica),
        "{:?}",
        v.mutations
    );
}

// istio__istio/samples__addons__extras__zipkin.yaml: no `ports:`, but a
// readiness probe on the port it serves.
const ZIPKIN: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: zipkin
spec:
  selector:
    matchLabels:
      app: zipkin
  template:
    metadata:
      labels:
        app: zipkin
    spec:
      containers:
        - name: zipkin
          image: docker.io/openzipkin/zipkin-slim:3.4.0
          readinessProbe:
            httpGet:
              path: /health
              port: 9411
";

#[test]
fn finding_4_a_container_probed_on_a_port_serves_without_declaring_ports() {
    let v = verdict(ZIPKIN, Mode::Enforce);
    assert!(
        v.mutations
            .iter()
            .any(|m| m.rule == Rule::PrestopSleep && m.field.contains("containers[zipkin]")),
        "{:?}",
        v.mutations
    );
    // Its probe is its own: none is injected.
    assert!(!v.mutations.iter().any(|m| m.rule == Rule::ReadinessProbe));
    // No ports and no probe on one: nothing says it serves.
    let silent = ZIPKIN.replace(
        "          readinessProbe:\n            httpGet:\n              path: /health\n              port: 9411\n",
        "          readinessProbe:\n            exec:\n              command: [\"true\"]\n",
    );
    let v = verdict(&silent, Mode::Enforce);
    assert!(
        !v.mutations.iter().any(|m| m.rule == Rule::PrestopSleep),
        "{:?}",
        v.mutations
    );
}

// argoproj__argo-cd/manifests__install.yaml: the longest container name of
// the corpus that gets a mutation.
const ARGOCD_APPLICATIONSET: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: argocd-applicationset-controller
spec:
  selector:
    matchLabels:
      app.kubernetes.io/name: argocd-applicationset-controller
  template:
    metadata:
      labels:
        app.kubernetes.io/name: argocd-applicationset-controller
    spec:
      containers:
        - name: argocd-applicationset-controller
          image: quay.io/argoproj/argocd:v3.1.0
          ports:
            - containerPort: 7000
              name: webhook
            - containerPort: 8080
              name: metrics
          livenessProbe:
            httpGet:
              path: /healthz
              port: 8080
          readinessProbe:
            httpGet:
              path: /healthz
              port: 8080
";

#[test]
fn finding_7_a_long_container_name_is_shortened_never_the_rule_or_value() {
    let warnings = audit_warnings(ARGOCD_APPLICATIONSET);
    assert!(!warnings.is_empty());
    for w in &warnings {
        assert!(w.chars().count() <= MAX_WARNING_CHARS, "{w}");
        assert!(!w.contains('…') && !w.contains("value in audit"), "{w}");
    }
    let prestop = warnings
        .iter()
        .find(|w| w.contains("prestop-sleep"))
        .expect("a prestop-sleep warning");
    assert!(
        prestop.ends_with(".lifecycle.preStop to sleep seconds 10"),
        "{prestop}"
    );
    assert!(prestop.contains("containers[argocd-"), "{prestop}");
    let same = warnings
        .iter()
        .find(|w| w.contains("readiness-is-liveness"))
        .expect("a readiness-is-liveness warning");
    assert!(
        same.ends_with("identical readiness and liveness probes"),
        "{same}"
    );
    assert_eq!(same.matches("argocd").count(), 1, "the name once: {same}");
}

#[test]
fn finding_5_every_duplicate_key_of_etcd_controller_is_warned() {
    // kubernetes__examples/_archived__openshift-origin__etcd-controller.yaml
    // repeats `selector:`; a second repeat is added to show each is named.
    let yaml = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: etcd
spec:
  selector:
    matchLabels:
      name: etcd
  strategy:
    type: Recreate
  replicas: 3
  selector:
    matchLabels:
      name: etcd
  replicas: 1
  template:
    metadata:
      labels:
        name: etcd
    spec:
      containers:
      - name: member
        image: openshift/etcd-20-centos7
";
    let (text, summary) = check_text(yaml, Format::Text);
    assert_eq!(summary.errors, 0, "{text}");
    for (line, key) in [(12, "selector"), (15, "replicas")] {
        assert!(
            text.contains(&format!("warning: <stdin>:{line}: duplicate key \"{key}\"")),
            "{text}"
        );
    }
    assert_eq!(read(yaml)["spec"]["replicas"], 1);
}

#[test]
fn finding_6_second_document_errors_give_the_files_line_and_column() {
    let yaml = "apiVersion: v1\nkind: ConfigMap\n---\t# the next one\n# a\n# b\nkind: ConfigMap\ndata: {a: [1\n";
    let (text, summary) = check_text(yaml, Format::Text);
    assert_eq!(summary.errors, 1, "{text}");
    // `data: {a: [1`: the unclosed `[` is the 11th character of line 7.
    assert!(text.contains("<stdin>:7:11: "), "{text}");
    assert!(!text.contains("at line"), "saphyr's own position: {text}");
    assert!(!text.contains("from_str_multiple"), "{text}");
}

#[test]
fn finding_2_yaml_11_booleans_and_quoted_strings_round_trip() {
    let yaml = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: d
  labels:
    quoted-on: \"on\"
    quoted-yes: 'yes'
    quoted-y: \"y\"
spec:
  selector:
    matchLabels:
      app: d
  template:
    metadata:
      labels:
        app: d
    spec:
      hostIPC: no
      enableServiceLinks: off
      containers:
        - name: app
          image: app
          stdin: yes
          tty: on
          ports:
            - containerPort: 80
";
    let original = read(yaml);
    assert_eq!(original["metadata"]["labels"]["quoted-on"], "on");
    assert_eq!(original["spec"]["template"]["spec"]["hostIPC"], false);
    assert_eq!(
        original["spec"]["template"]["spec"]["containers"][0]["tty"],
        true
    );
    let (out, _) = check_text(yaml, Format::Yaml);
    let reread = read(&out);
    let v = verdict(yaml, Mode::Enforce);
    assert!(!v.patch.0.is_empty());
    assert_eq!(reread, v.admitted, "{out}");
}

#[test]
fn finding_10_yaml_output_fixed_in_git_is_in_sync() {
    // GoogleCloudPlatform__microservices-demo/release__kubernetes-manifests.yaml:
    // a grace period of 5 set in git, which rollguard raises.
    let yaml = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: frontend
spec:
  selector:
    matchLabels:
      app: frontend
  template:
    metadata:
      labels:
        app: frontend
    spec:
      terminationGracePeriodSeconds: 5
      containers:
        - name: server
          image: frontend:v0.10.6
          ports:
          - containerPort: 8080
          readinessProbe:
            httpGet:
              path: /_healthz
              port: 8080
";
    let (fixed, summary) = check_text(yaml, Format::Yaml);
    assert!(summary.mutated >= 1, "{fixed}");
    assert_eq!(summary.exit_code(), 0);
    let (again, summary) = check_text(&fixed, Format::Text);
    assert_eq!(summary.mutated, 0, "{again}");
    assert_eq!(summary.exit_code(), 0, "{again}");
    assert_eq!(check_text(&fixed, Format::Yaml).0, fixed);
}

#[test]
fn finding_10_gitops_ignore_list_names_every_setting_copied_into_the_template() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/gitops.md")).unwrap();
    // The settings rollguard copies into the pod template (SETTINGS_KEYS).
    for key in [
        "rollguard.io/profile",
        "rollguard.io/shutdown-timeout",
        "rollguard.io/prestop-sleep",
        "rollguard.io/warmup",
        "rollguard.io/readiness-path",
        "rollguard.io/readiness-port",
        "rollguard.io/waive",
        "rollguard.io/mode",
    ] {
        let entry = format!(".spec.template.metadata.annotations[\"{key}\"]");
        assert!(doc.contains(&entry), "docs/gitops.md lacks {entry}");
    }
    for field in [".spec.progressDeadlineSeconds", ".spec.minReadySeconds"] {
        assert!(doc.contains(field), "docs/gitops.md lacks {field}");
    }
}
