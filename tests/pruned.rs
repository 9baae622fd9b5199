//! The webhook reads only the fields the rules use (`rollguard::pruned`,
//! `workload::OBJECT_SHAPE`). Reading the whole object must give the same
//! answer, byte for byte, for every captured review and every example
//! manifest, on every route, in enforce and in audit mode. (tests/fuzz.rs
//! checks the same on thousands of mutated reviews.)

use std::path::Path;

use serde_json::{json, Value};

use rollguard::admission::{self, PolicyConfig, Route};

fn configs() -> [PolicyConfig; 2] {
    [
        PolicyConfig::default(),
        PolicyConfig {
            audit_only: true,
            ..PolicyConfig::default()
        },
    ]
}

fn assert_same_answers(name: &str, body: &[u8]) -> usize {
    let mut patched = 0;
    for config in configs() {
        for route in Route::ALL {
            let pruned = admission::answer(route, body, &config);
            let whole = admission::answer_reading_everything(route, body, &config);
            assert_eq!(pruned.status, whole.status, "{name} {route:?}");
            assert_eq!(
                String::from_utf8_lossy(&pruned.body),
                String::from_utf8_lossy(&whole.body),
                "{name} {route:?} audit_only={}",
                config.audit_only
            );
            if pruned.body.windows(8).any(|w| w == b"\"patch\":") {
                patched += 1;
            }
        }
    }
    patched
}

#[test]
fn every_captured_review_gets_the_answer_of_the_whole_object() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/admission");
    let mut reviews = 0;
    let mut patched = 0;
    for entry in std::fs::read_dir(&dir).expect("fixtures") {
        let path = entry.expect("entry").path();
        let body = std::fs::read(&path).expect("read");
        patched += assert_same_answers(&path.display().to_string(), &body);
        reviews += 1;
    }
    assert!(
        reviews >= 20,
        "only {reviews} reviews under {}",
        dir.display()
    );
    assert!(
        patched > 0,
        "no review was patched: the comparison saw no mutation"
    );
}

#[test]
fn every_example_manifest_gets_the_answer_of_the_whole_object() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut objects = 0;
    let mut patched = 0;
    for entry in std::fs::read_dir(&dir).expect("examples") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        let manifest: Value = serde_saphyr::from_str(&text).expect("YAML");
        // The same workload as each kind rollguard handles with a template.
        let kinds: &[&str] = if manifest["kind"] == "Deployment" {
            &["Deployment", "StatefulSet", "DaemonSet"]
        } else {
            &[""]
        };
        for (kind, operation) in kinds
            .iter()
            .flat_map(|kind| ["CREATE", "UPDATE"].map(|operation| (*kind, operation)))
        {
            let mut object = manifest.clone();
            if !kind.is_empty() {
                object["kind"] = json!(kind);
            }
            let (group, version) = match object["apiVersion"].as_str().expect("apiVersion") {
                "v1" => ("", "v1"),
                other => other.split_once('/').expect("group/version"),
            };
            let review = json!({
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "request": {
                    "uid": "0b5cd4a1-3e0c-4a5e-9a51-6f1d2a7c9e10",
                    "kind": {"group": group, "version": version, "kind": object["kind"]},
                    "resource": {"group": group, "version": version, "resource": "deployments"},
                    "name": object["metadata"]["name"],
                    "namespace": object["metadata"]["namespace"],
                    "operation": operation,
                    "userInfo": {"username": "kubernetes-admin"},
                    "object": object,
                    "oldObject": if operation == "UPDATE" { object.clone() } else { Value::Null },
                    "dryRun": false
                }
            });
            let body = serde_json::to_vec(&review).expect("encode");
            patched += assert_same_answers(&format!("{} as {kind}", path.display()), &body);
        }
        objects += 1;
    }
    assert!(objects >= 7, "only {objects} example manifests");
    assert!(
        patched > 0,
        "no example was patched: the comparison saw no mutation"
    );
}
