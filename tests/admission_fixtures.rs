//! The real AdmissionReviews captured from kube-apiservers (1.25 without a
//! suffix, 1.36 with `-mutate`/`-validate`) through the admission handler.

mod support;

use base64::Engine as _;
use rollguard::admission::{answer, PolicyConfig, Route};
use serde_json::{json, Value};

fn fixtures() -> Vec<(String, Value)> {
    let fixtures = support::fixtures::admission_reviews();
    assert!(
        fixtures.len() >= 20,
        "fixtures missing in tests/fixtures/admission"
    );
    fixtures
}

fn decode_patch(response: &Value) -> Option<json_patch::Patch> {
    let patch = response.get("patch")?;
    let text = patch
        .as_str()
        .expect("patch must be a base64 string on the wire");
    assert_eq!(response["patchType"], "JSONPatch");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap();
    Some(serde_json::from_slice(&bytes).unwrap())
}

fn call(route: Route, review: &Value) -> Value {
    let reply = answer(
        route,
        &serde_json::to_vec(review).unwrap(),
        &PolicyConfig::default(),
    );
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(body["kind"], "AdmissionReview");
    assert_eq!(body["response"]["uid"], review["request"]["uid"]);
    body
}

#[test]
fn every_fixture_is_answered_with_the_uid_and_a_well_formed_envelope() {
    for (name, review) in fixtures() {
        for route in Route::ALL {
            let body = call(route, &review);
            let response = &body["response"];
            if route == Route::Mutate {
                assert_eq!(response["allowed"], true, "{name}");
            } else {
                assert!(
                    response.get("patch").is_none(),
                    "{name}: {route:?} must never patch"
                );
            }
            for warning in response["warnings"].as_array().into_iter().flatten() {
                assert!(
                    warning.as_str().unwrap().chars().count() <= 120,
                    "{name}: {warning}"
                );
            }
            for key in response["auditAnnotations"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k)
            {
                assert!(!key.contains('/'), "{name}: audit annotation key {key}");
            }
        }
    }
}

#[test]
fn mutation_patches_apply_to_the_received_object_and_a_second_pass_is_a_no_op() {
    for (name, review) in fixtures()
        .into_iter()
        .filter(|(n, _)| !n.ends_with("-validate"))
    {
        let body = call(Route::Mutate, &review);
        let mut object = review["request"]["object"].clone();
        // The bare pod runs `sleep` with no ports: nothing serves, nothing to fix.
        let bare = name.starts_with("pod-create") && !name.contains("replicaset");
        match decode_patch(&body["response"]) {
            Some(patch) => {
                json_patch::patch(&mut object, &patch).unwrap_or_else(|e| panic!("{name}: {e}"))
            }
            None => assert!(bare, "{name}: expected a patch"),
        }
        let mut again = review.clone();
        again["request"]["object"] = object;
        let second = call(Route::Mutate, &again);
        assert!(
            second["response"].get("patch").is_none(),
            "{name}: second pass patched"
        );
        // What was admitted passes validation.
        let validated = call(Route::Validate, &again);
        assert_eq!(
            validated["response"]["allowed"], true,
            "{name}: {validated}"
        );
        assert!(
            validated["response"].get("warnings").is_none(),
            "{name}: {validated}"
        );
    }
}

#[test]
fn replicaset_pods_without_a_name_are_mutated() {
    let (_, review) = fixtures()
        .into_iter()
        .find(|(n, _)| n == "pod-create-from-replicaset")
        .unwrap();
    assert!(review["request"].get("name").is_none());
    let reply = answer(
        Route::Mutate,
        &serde_json::to_vec(&review).unwrap(),
        &PolicyConfig::default(),
    );
    assert_eq!(reply.log.name, "web-5c6fdb94cf-*");
    assert_eq!(reply.log.outcome, "patched");
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    let patch = serde_json::to_value(decode_patch(&body["response"]).unwrap()).unwrap();
    assert_eq!(
        patch,
        json!([
            {"op": "add", "path": "/metadata/annotations", "value": {"rollguard.io/mutated": "prestop-sleep,readiness-probe,grace-period"}},
            {"op": "add", "path": "/spec/containers/0/lifecycle", "value": {"preStop": {"sleep": {"seconds": 10}}}},
            {"op": "add", "path": "/spec/containers/0/readinessProbe", "value": {"tcpSocket": {"port": 80}}},
            {"op": "replace", "path": "/spec/terminationGracePeriodSeconds", "value": 40},
        ])
    );
}

#[test]
fn validate_on_unmutated_fixtures_warns_about_missing_readiness() {
    let (_, review) = fixtures()
        .into_iter()
        .find(|(n, _)| n == "deployment-create-validate")
        .unwrap();
    let body = call(Route::Validate, &review);
    assert_eq!(body["response"]["allowed"], true);
    let warnings = body["response"]["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0]
        .as_str()
        .unwrap()
        .starts_with("rollguard readiness-missing"));
    assert_eq!(
        body["response"]["auditAnnotations"]["warned"],
        "readiness-missing"
    );
}

#[test]
fn audit_route_reports_would_be_mutations_without_a_patch() {
    let (_, review) = fixtures()
        .into_iter()
        .find(|(n, _)| n == "deployment-create")
        .unwrap();
    let body = call(Route::Audit, &review);
    let response = &body["response"];
    assert_eq!(response["allowed"], true);
    assert!(response.get("patch").is_none());
    let warnings: Vec<&str> = response["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("would set containers[web].lifecycle.preStop to sleep seconds")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("rollguard audit grace-period: would set")),
        "{warnings:?}"
    );
    assert_eq!(
        response["auditAnnotations"]["would-mutate"],
        "prestop-sleep,readiness-probe,grace-period"
    );
}
