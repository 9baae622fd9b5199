//! One object through `POST /audit`, as the API server would send it on
//! CREATE: the response (warnings, audit annotations).

use rollguard::admission::{answer, PolicyConfig, Route};
use serde_json::{json, Value};

pub fn audit_response(object: &Value) -> Value {
    let api_version = object["apiVersion"].as_str().unwrap_or("v1");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let body = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "audit",
            "kind": {"group": group, "version": version, "kind": object["kind"].clone()},
            "resource": {"group": group, "version": version, "resource": "x"},
            "operation": "CREATE",
            "namespace": "audit",
            "userInfo": {},
            "object": object,
        }
    });
    let reply = answer(
        Route::Audit,
        &serde_json::to_vec(&body).unwrap(),
        &PolicyConfig::default(),
    );
    let reply: Value = serde_json::from_slice(&reply.body).unwrap();
    reply["response"].clone()
}

/// The response's warnings.
pub fn warnings(response: &Value) -> Vec<String> {
    response["warnings"]
        .as_array()
        .map(|w| {
            w.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}
