//! Admission review bodies shared by the benchmarks (`benches/admission.rs`),
//! the load generator and the profiling loop (`examples/`): real reviews
//! captured from a kube-apiserver (`tests/fixtures/admission/`), re-encoded
//! compactly as the API server sends them, and grown to the sizes compared.
//!
//! Also the *floor*: the least work any admission webhook must do for a
//! review (parse the JSON, answer allowed with the uid), measured on the same
//! bodies so rollguard's cost can be read as a multiple of it.
//!
//! Included with `#[path]` by each target that needs it, so some targets use
//! only part of it.
#![allow(dead_code)]

use serde_json::{json, Value};

const POD_FIXTURE: &str =
    include_str!("../../tests/fixtures/admission/pod-create-from-replicaset.json");
const DEPLOYMENT_FIXTURE: &str =
    include_str!("../../tests/fixtures/admission/deployment-create.json");

/// Container counts of the size-scaling series.
pub const SCALING_CONTAINERS: [usize; 4] = [1, 10, 50, 100];

/// One request body of the benchmarks.
#[derive(Debug, Clone)]
pub struct Body {
    /// `typical-pod`, `deployment`, `pod-1`, `pod-10`, ...
    pub name: String,
    /// `Pod` or `Deployment`.
    pub kind: &'static str,
    pub containers: usize,
    /// The AdmissionReview, compact JSON.
    pub bytes: Vec<u8>,
}

impl Body {
    fn new(name: impl Into<String>, kind: &'static str, review: &Value) -> Body {
        let containers = containers_of(review).map_or(0, Vec::len);
        Body {
            name: name.into(),
            kind,
            containers,
            bytes: serde_json::to_vec(review).expect("a Value always encodes"),
        }
    }

    /// `request.object` of the review.
    pub fn object(&self) -> Value {
        let mut review: Value = serde_json::from_slice(&self.bytes).expect("valid JSON");
        review["request"]["object"].take()
    }
}

fn fixture(text: &str) -> Value {
    serde_json::from_str(text).expect("fixture is valid JSON")
}

fn containers_of(review: &Value) -> Option<&Vec<Value>> {
    let object = &review["request"]["object"];
    let spec = if object["kind"] == "Pod" {
        &object["spec"]
    } else {
        &object["spec"]["template"]["spec"]
    };
    spec["containers"].as_array()
}

fn pod_containers(review: &mut Value) -> &mut Vec<Value> {
    review["request"]["object"]["spec"]["containers"]
        .as_array_mut()
        .expect("the pod fixture has containers")
}

/// The captured Deployment CREATE review (one container).
pub fn deployment() -> Body {
    Body::new("deployment", "Deployment", &fixture(DEPLOYMENT_FIXTURE))
}

/// The captured Pod CREATE review (a pod made by a ReplicaSet) with its one
/// container copied until there are `n`, each with its own name and port.
pub fn pod_with_containers(n: usize) -> Body {
    assert!(n >= 1, "a pod has at least one container");
    let mut review = fixture(POD_FIXTURE);
    let containers = pod_containers(&mut review);
    let first = containers[0].clone();
    containers.truncate(1);
    for i in 1..n {
        let mut copy = first.clone();
        copy["name"] = json!(format!("{}-{i}", first["name"].as_str().unwrap_or("c")));
        copy["ports"][0]["containerPort"] = json!(8000 + i);
        containers.push(copy);
    }
    Body::new(format!("pod-{n}"), "Pod", &review)
}

/// A typical Pod review: the captured Pod with three containers (the app, a
/// log shipper, a metrics exporter) carrying the env, ports, resources,
/// probes and mounts real workloads have: about 8 KB of compact JSON.
pub fn typical_pod() -> Body {
    let mut review = fixture(POD_FIXTURE);
    let object = &mut review["request"]["object"];
    object["metadata"]["labels"]["app.kubernetes.io/name"] = json!("web");
    object["metadata"]["labels"]["app.kubernetes.io/version"] = json!("1.27.3");
    object["metadata"]["labels"]["app.kubernetes.io/part-of"] = json!("shop");
    object["metadata"]["labels"]["app.kubernetes.io/component"] = json!("frontend");
    object["metadata"]["labels"]["team"] = json!("storefront");
    object["metadata"]["annotations"] = json!({
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9113",
        "kubectl.kubernetes.io/default-container": "web",
        "checksum/config": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "checksum/secret": "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"
    });
    let token_mount = object["spec"]["containers"][0]["volumeMounts"][0].clone();
    object["spec"]["volumes"]
        .as_array_mut()
        .expect("volumes")
        .extend([
            json!({"name": "config", "configMap": {"name": "web-config", "defaultMode": 420}}),
            json!({"name": "logs", "emptyDir": {}}),
        ]);
    let mut web = object["spec"]["containers"][0].clone();
    web["args"] = json!(["--config=/etc/web/nginx.conf", "--log-format=json"]);
    web["ports"] = json!([
        {"name": "http", "containerPort": 80, "protocol": "TCP"},
        {"name": "admin", "containerPort": 8081, "protocol": "TCP"}
    ]);
    let mut env = vec![json!({"name": "GREETING", "value": "hello"})];
    env.extend(plain_env(&[
        ("LOG_LEVEL", "info"),
        ("UPSTREAM_URL", "http://api.backend.svc.cluster.local:8080"),
        ("CACHE_TTL_SECONDS", "300"),
        ("FEATURE_FLAGS", "new-checkout,fast-search"),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://otel-collector.observability:4317",
        ),
        ("OTEL_SERVICE_NAME", "web"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=production,service.namespace=shop",
        ),
        ("HTTP_READ_TIMEOUT", "15s"),
        ("HTTP_WRITE_TIMEOUT", "15s"),
        ("HTTP_IDLE_TIMEOUT", "60s"),
        ("SESSION_COOKIE_NAME", "shop_session"),
        (
            "STATIC_ASSETS_URL",
            "https://cdn.example.com/shop/web/1.27.3",
        ),
        ("TZ", "UTC"),
    ]));
    env.extend([
        field_env("POD_NAME", "metadata.name"),
        field_env("POD_NAMESPACE", "metadata.namespace"),
        field_env("POD_IP", "status.podIP"),
        json!({"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "web-db", "key": "password"}}}),
        json!({"name": "MEMORY_LIMIT", "valueFrom": {"resourceFieldRef": {"containerName": "web", "resource": "limits.memory", "divisor": "1Mi"}}}),
    ]);
    web["envFrom"] = json!([{"configMapRef": {"name": "web-env"}}, {"secretRef": {"name": "web-env-secrets", "optional": true}}]);
    web["env"] = json!(env);
    web["resources"] = resources("250m", "256Mi", "1", "512Mi");
    web["livenessProbe"] = json!({
        "httpGet": {"path": "/healthz", "port": 8081, "scheme": "HTTP"},
        "initialDelaySeconds": 10, "timeoutSeconds": 1, "periodSeconds": 10,
        "successThreshold": 1, "failureThreshold": 3
    });
    web["volumeMounts"] = json!([
        token_mount.clone(),
        {"name": "config", "mountPath": "/etc/web", "readOnly": true},
        {"name": "logs", "mountPath": "/var/log/web"}
    ]);
    web["securityContext"] = security_context();

    let mut shipper = base_container("log-shipper", "fluent/fluent-bit:3.1.4");
    shipper["args"] = json!(["--config=/fluent-bit/etc/fluent-bit.conf"]);
    shipper["env"] = json!(plain_env(&[
        (
            "FLUENT_ELASTICSEARCH_HOST",
            "logs.observability.svc.cluster.local"
        ),
        ("FLUENT_ELASTICSEARCH_PORT", "9200"),
        ("LOG_PATH", "/var/log/web/*.log"),
        ("FLUENT_BIT_FLUSH_SECONDS", "5"),
        ("FLUENT_BIT_LOG_LEVEL", "warn"),
        ("FLUENT_BIT_BUFFER_SIZE", "64k"),
        ("FLUENT_BIT_TAG_PREFIX", "kube.shop.web."),
    ]));
    shipper["ports"] = json!([{"name": "fb-metrics", "containerPort": 2020, "protocol": "TCP"}]);
    shipper["resources"] = resources("50m", "64Mi", "200m", "128Mi");
    shipper["volumeMounts"] = json!([
        token_mount.clone(),
        {"name": "logs", "mountPath": "/var/log/web", "readOnly": true}
    ]);
    shipper["securityContext"] = security_context();

    let mut exporter = base_container("metrics-exporter", "nginx/nginx-prometheus-exporter:1.3.0");
    exporter["args"] = json!(["--nginx.scrape-uri=http://localhost:8081/stub_status"]);
    exporter["ports"] = json!([{"name": "metrics", "containerPort": 9113, "protocol": "TCP"}]);
    exporter["env"] = json!(plain_env(&[("SSL_VERIFY", "false")]));
    exporter["resources"] = resources("10m", "16Mi", "100m", "32Mi");
    exporter["volumeMounts"] = json!([token_mount]);
    exporter["securityContext"] = security_context();

    object["spec"]["containers"] = json!([web, shipper, exporter]);
    object["spec"]["nodeSelector"] =
        json!({"kubernetes.io/os": "linux", "node.kubernetes.io/pool": "general"});
    object["spec"]["affinity"] = json!({
        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
            "weight": 100,
            "podAffinityTerm": {
                "labelSelector": {"matchLabels": {"app": "web"}},
                "topologyKey": "kubernetes.io/hostname"
            }
        }]}
    });
    object["spec"]["topologySpreadConstraints"] = json!([{
        "maxSkew": 1,
        "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": {"app": "web"}}
    }]);
    Body::new("typical-pod", "Pod", &review)
}

fn plain_env(pairs: &[(&str, &str)]) -> Vec<Value> {
    pairs
        .iter()
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect()
}

fn field_env(name: &str, path: &str) -> Value {
    json!({"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}})
}

fn resources(cpu: &str, memory: &str, cpu_limit: &str, memory_limit: &str) -> Value {
    json!({
        "requests": {"cpu": cpu, "memory": memory},
        "limits": {"cpu": cpu_limit, "memory": memory_limit}
    })
}

fn security_context() -> Value {
    json!({
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "runAsNonRoot": true,
        "capabilities": {"drop": ["ALL"]}
    })
}

fn base_container(name: &str, image: &str) -> Value {
    json!({
        "name": name,
        "image": image,
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent"
    })
}

/// Every body the benchmarks run: the typical Pod, the Deployment, then the
/// size-scaling series.
pub fn all() -> Vec<Body> {
    let mut bodies = vec![typical_pod(), deployment()];
    bodies.extend(SCALING_CONTAINERS.iter().map(|&n| pod_with_containers(n)));
    bodies
}

/// Looks a body up by name: `typical-pod`, `deployment` or `pod-N`.
pub fn by_name(name: &str) -> Option<Body> {
    match name {
        "typical-pod" => Some(typical_pod()),
        "deployment" => Some(deployment()),
        _ => name
            .strip_prefix("pod-")
            .and_then(|n| n.parse().ok())
            .filter(|&n| n >= 1)
            .map(pod_with_containers),
    }
}

/// The floor: what any admission webhook must do with a review. Parse the
/// body as JSON and answer `allowed` with the request's uid.
pub fn floor_answer(body: &[u8]) -> Result<Vec<u8>, String> {
    let review: Value = serde_json::from_slice(body).map_err(|err| err.to_string())?;
    let uid = review
        .pointer("/request/uid")
        .and_then(Value::as_str)
        .ok_or("the review has no request.uid")?;
    let response = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": uid, "allowed": true}
    });
    serde_json::to_vec(&response).map_err(|err| err.to_string())
}
