//! No second implementation: the webhook (through its HTTP handler) and
//! `rollguard check` reach the same verdicts on the same objects.

use std::path::Path;

use axum::body::Body;
use base64::Engine as _;
use http_body_util::BodyExt;
use rollguard::admission::PolicyConfig;
use rollguard::check::{expand, run, CheckOptions, Format};
use rollguard::policy::Mode;
use rollguard::server::{app, AppState};
use rollguard::settings::Settings;
use serde_json::{json, Value};
use tower::ServiceExt;

fn review(object: &Value, uid: &str) -> Value {
    let kind = object["kind"].as_str().unwrap();
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "apps", "version": "v1", "kind": kind},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "namespace": object["metadata"]["namespace"],
            "name": object["metadata"]["name"],
            "operation": "CREATE",
            "userInfo": {"username": "ci"},
            "object": object,
        }
    })
}

async fn call(path: &str, review: &Value) -> Value {
    let request = axum::http::Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(review).unwrap()))
        .unwrap();
    let response = app(AppState::new(PolicyConfig::default()))
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn webhook_and_check_agree_on_every_example() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let inputs = expand(&[examples.display().to_string()]).unwrap();
    let options = CheckOptions {
        mode: Mode::Enforce,
        format: Format::Json,
        color: false,
        settings: Settings::default(),
    };
    let mut out = Vec::new();
    run(&inputs, &options, &mut std::io::empty(), &mut out).unwrap();
    let entries: Vec<Value> = serde_json::from_slice(&out).unwrap();
    assert_eq!(entries.len(), 7);

    for entry in entries {
        let path = entry["file"].as_str().unwrap();
        let object: Value =
            serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();

        let mutated = call("/mutate", &review(&object, "u-mutate")).await;
        let patch: Value = match mutated["response"]["patch"].as_str() {
            Some(text) => serde_json::from_slice(
                &base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .unwrap(),
            )
            .unwrap(),
            None => json!([]),
        };
        assert_eq!(
            patch, entry["patch"],
            "{path}: the webhook patched differently"
        );

        let mut admitted = object.clone();
        let patch: json_patch::Patch = serde_json::from_value(patch).unwrap();
        json_patch::patch(&mut admitted, &patch).unwrap();
        let validated = call("/validate", &review(&admitted, "u-validate")).await;
        let webhook_denied: Vec<&str> = validated["response"]["auditAnnotations"]["denied"]
            .as_str()
            .map(|s| s.split(',').collect())
            .unwrap_or_default();
        let check_denied: Vec<&str> = entry["violations"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["action"] == "deny")
            .map(|v| v["rule"].as_str().unwrap())
            .collect();
        assert_eq!(webhook_denied, check_denied, "{path}");
        assert_eq!(
            validated["response"]["allowed"],
            check_denied.is_empty(),
            "{path}"
        );
        assert_eq!(entry["denied"], !check_denied.is_empty(), "{path}");
    }
}
