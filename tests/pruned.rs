//! The webhook reads only the fields the rules use, straight from the bytes
//! (the typed view, `workload::ObjectView`). Reading the whole review into a
//! document first must give the same
//! answer, byte for byte, for every captured review and every example
//! manifest, on every route, in enforce and in audit mode. (tests/fuzz.rs
//! checks the same on thousands of mutated reviews.)

use std::path::Path;

use serde_json::{json, Value};

use rollguard::admission::{self, PolicyConfig, Route};

/// Every captured review: (file, body).
fn captured_reviews() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/admission");
    let reviews: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .map(|entry| {
            let path = entry.expect("entry").path();
            let body = std::fs::read(&path).expect("read");
            (path.display().to_string(), body)
        })
        .collect();
    assert!(
        reviews.len() >= 20,
        "only {} reviews under {}",
        reviews.len(),
        dir.display()
    );
    reviews
}

/// Every example manifest: (file, object).
fn example_manifests() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let manifests: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .expect("examples")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().and_then(|e| e.to_str()) == Some("yaml"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read");
            (
                path.display().to_string(),
                serde_saphyr::from_str(&text).expect("YAML"),
            )
        })
        .collect();
    assert!(
        manifests.len() >= 7,
        "only {} example manifests",
        manifests.len()
    );
    manifests
}

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
    let mut patched = 0;
    for (name, body) in captured_reviews() {
        patched += assert_same_answers(&name, &body);
    }
    assert!(
        patched > 0,
        "no review was patched: the comparison saw no mutation"
    );
}

#[test]
fn every_example_manifest_gets_the_answer_of_the_whole_object() {
    let mut patched = 0;
    for (file, manifest) in example_manifests() {
        // The same workload as each kind rollguard handles, and the pod its
        // template makes (created by a controller: generateName, no name).
        let kinds: &[&str] = if manifest["kind"] == "Deployment" {
            &["Deployment", "StatefulSet", "DaemonSet", "Pod"]
        } else {
            &[""]
        };
        for (kind, operation) in kinds
            .iter()
            .flat_map(|kind| ["CREATE", "UPDATE"].map(|operation| (*kind, operation)))
        {
            let mut object = manifest.clone();
            if kind == "Pod" {
                let mut metadata = object["spec"]["template"]["metadata"].clone();
                metadata["generateName"] = json!("web-7d4b9c-");
                metadata["namespace"] = object["metadata"]["namespace"].clone();
                object = json!({
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": metadata,
                    "spec": object["spec"]["template"]["spec"].clone(),
                });
            } else if !kind.is_empty() {
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
                    "name": object["metadata"].get("name").cloned().unwrap_or_default(),
                    "namespace": object["metadata"]["namespace"],
                    "operation": operation,
                    "userInfo": {"username": "kubernetes-admin"},
                    "object": object,
                    "oldObject": if operation == "UPDATE" { object.clone() } else { Value::Null },
                    "dryRun": false
                }
            });
            let body = serde_json::to_vec(&review).expect("encode");
            let name = format!("{file} as {kind} {operation}");
            patched += assert_same_answers(&name, &body);
        }
    }
    assert!(
        patched > 0,
        "no example was patched: the comparison saw no mutation"
    );
}

/// The rules read the pod spec through rollguard's own narrow structs; they
/// must read every field they have as k8s-openapi's full `PodSpec` reads it.
#[test]
fn the_rules_pod_spec_reads_what_k8s_openapi_reads() {
    use k8s_openapi::api::core::v1::PodSpec as FullPodSpec;
    use rollguard::workload::PodSpec;

    let mut specs: Vec<(String, Value)> = Vec::new();
    for (file, body) in captured_reviews() {
        let review: Value = serde_json::from_slice(&body).expect(&file);
        for side in ["object", "oldObject"] {
            let object = &review["request"][side];
            for spec in [&object["spec"]["template"]["spec"], &object["spec"]] {
                if spec.get("containers").is_some() {
                    specs.push((format!("{file} {side}"), spec.clone()));
                }
            }
        }
    }
    for (file, object) in example_manifests() {
        specs.push((file, object["spec"]["template"]["spec"].clone()));
    }
    // What the API server may send before it validates: nothing, or nulls.
    specs.push(("no containers".into(), json!({"restartPolicy": "Always"})));
    specs.push(("null containers".into(), json!({"containers": null})));
    specs.push((
        "nameless container".into(),
        json!({"containers": [{"image": "x"}]}),
    ));
    specs.push(("null name".into(), json!({"containers": [{"name": null}]})));

    assert!(specs.len() >= 30, "only {} pod specs", specs.len());
    for (name, spec) in specs {
        let full: FullPodSpec = serde_json::from_value(spec.clone()).expect(&name);
        let ours: PodSpec = serde_json::from_value(spec).expect(&name);
        assert_eq!(
            ours.termination_grace_period_seconds, full.termination_grace_period_seconds,
            "{name}"
        );
        assert_eq!(ours.containers.len(), full.containers.len(), "{name}");
        for (ours, full) in ours.containers.iter().zip(&full.containers) {
            assert_eq!(ours.name, full.name, "{name}");
            assert_eq!(ours.lifecycle.as_deref(), full.lifecycle.as_ref(), "{name}");
            assert_eq!(ours.ports, full.ports, "{name}");
            assert_eq!(
                ours.readiness_probe.as_deref(),
                full.readiness_probe.as_ref(),
                "{name}"
            );
            assert_eq!(
                ours.liveness_probe.as_deref(),
                full.liveness_probe.as_ref(),
                "{name}"
            );
        }
    }
}
