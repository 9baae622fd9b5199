//! Every object rollguard admits must be valid against the official OpenAPI
//! schema of the Kubernetes versions it supports: the closest stand-in for a
//! real kube-apiserver here. Needs `kubernetes-validate` (pip), which
//! `.ci/run` installs.

mod support;

use std::path::PathBuf;
use std::process::Command;

use base64::Engine as _;
use rollguard::admission::{answer, PolicyConfig, Route};
use rollguard::policy::{evaluate, EvalRequest, Mode, Stage};
use rollguard::settings::{PrestopHandler, Settings};
use rollguard::workload::WorkloadKind;
use serde_json::Value;
use support::fixtures;
use support::temp::TempDir;

/// Native `preStop.sleep` needs 1.30; exec sleep works everywhere.
const SLEEP_VERSIONS: &[u32] = &[30, 33, 36, 37];
const EXEC_VERSIONS: &[u32] = &[25, 30, 36, 37];

/// An admitted object, and the oldest Kubernetes minor it can be valid for
/// (captures from 1.36 carry status fields older schemas do not know).
type Admitted = (String, Value, u32);

fn settings(handler: PrestopHandler) -> Settings {
    Settings {
        prestop_handler: handler,
        ..Settings::default()
    }
}

fn fixture_objects(handler: PrestopHandler) -> Vec<Admitted> {
    let config = PolicyConfig {
        settings: settings(handler),
        audit_only: false,
    };
    let mut out = Vec::new();
    for path in fixtures::admission_review_paths() {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let review: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let reply = answer(Route::Mutate, &std::fs::read(&path).unwrap(), &config);
        let body: Value = serde_json::from_slice(&reply.body).unwrap();
        let mut object = review["request"]["object"].clone();
        if let Some(patch) = body["response"]["patch"].as_str() {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(patch)
                .unwrap();
            let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
            json_patch::patch(&mut object, &patch).unwrap();
        }
        let since = if name.ends_with("-mutate") || name.ends_with("-validate") {
            36
        } else {
            25
        };
        out.push((format!("fixture-{name}"), object, since));
    }
    out
}

fn example_objects(handler: PrestopHandler) -> Vec<Admitted> {
    let mut out = Vec::new();
    for path in fixtures::example_paths() {
        let object: Value =
            serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let Some(kind) = WorkloadKind::from_object(&object) else {
            continue;
        };
        let request = EvalRequest {
            kind,
            object: &object,
            stage: Stage::Full,
            mode: Mode::Enforce,
        };
        let verdict = evaluate(&request, &settings(handler)).unwrap();
        if !verdict.denied() {
            let name = path.file_stem().unwrap().to_string_lossy().to_string();
            // Written for current clusters (one uses the native sleep itself).
            out.push((format!("example-{name}"), verdict.admitted, 30));
        }
    }
    out
}

/// The objects as files in `dir`, each with its oldest Kubernetes minor.
fn write_all(dir: &TempDir, objects: &[Admitted]) -> Vec<(PathBuf, u32)> {
    objects
        .iter()
        .map(|(name, object, since)| {
            let path = dir.write(
                &format!("{name}.json"),
                serde_json::to_vec_pretty(object).unwrap(),
            );
            (path, *since)
        })
        .collect()
}

fn validate(versions: &[u32], files: &[(PathBuf, u32)]) {
    for minor in versions {
        let version = format!("1.{minor}");
        let files: Vec<&PathBuf> = files
            .iter()
            .filter(|(_, since)| since <= minor)
            .map(|(p, _)| p)
            .collect();
        assert!(!files.is_empty());
        let output = Command::new("kubernetes-validate")
            .args(["--strict", "--quiet", "-k", &version])
            .args(files)
            .output()
            .expect(
                "kubernetes-validate is not installed: run scripts/test-deps.sh (.ci/run does)",
            );
        let report = String::from_utf8_lossy(&output.stdout).to_string()
            + &String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && !report.contains("ERROR"),
            "admitted objects are not valid for Kubernetes {version}:\n{report}"
        );
    }
}

#[test]
fn admitted_objects_with_native_sleep_are_schema_valid() {
    let mut objects = fixture_objects(PrestopHandler::Sleep);
    objects.extend(example_objects(PrestopHandler::Sleep));
    assert!(objects.len() > 25);
    let dir = TempDir::new();
    validate(SLEEP_VERSIONS, &write_all(&dir, &objects));
}

#[test]
fn admitted_objects_with_exec_sleep_are_schema_valid_back_to_1_25() {
    let mut objects = fixture_objects(PrestopHandler::Exec);
    objects.extend(example_objects(PrestopHandler::Exec));
    let dir = TempDir::new();
    validate(EXEC_VERSIONS, &write_all(&dir, &objects));
}
