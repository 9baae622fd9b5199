//! rollguard over the real manifests of `../shared/corpus` (423 files from 23
//! public projects, see its SOURCES.md), read from there, never copied here.
//! What a new user expects: every file a YAML 1.1 parser reads is read, no
//! panic, admitted objects schema-valid for two Kubernetes versions, a second
//! pass mutates nothing, pods built from admitted templates are no-ops,
//! `--output yaml` re-read is the original plus the patch, no probe on a
//! UDP-only container, and no audit warning over 120 characters.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use rollguard::check::{documents, parse, run, CheckOptions, Format, Input};
use rollguard::policy::{evaluate, EvalRequest, Mode, Stage, MAX_WARNING_CHARS};
use rollguard::rules::Rule;
use rollguard::settings::Settings;
use rollguard::workload::WorkloadKind;
use serde_json::{json, Value};
use support::audit;
use support::temp::TempDir;

/// The Kubernetes minors the admitted objects are validated against.
const VERSIONS: [&str; 2] = ["1.30", "1.33"];

/// The corpus, beside the checkout. Missing, the test fails (a required
/// input that silently passes would hide every regression it guards):
/// `ROLLGUARD_SKIP_CORPUS=1` skips it on purpose.
fn corpus() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var_os("ROLLGUARD_SKIP_CORPUS").is_some() {
        eprintln!("SKIPPED: ROLLGUARD_SKIP_CORPUS is set");
        return None;
    }
    panic!(
        "the corpus is missing: expected at {} (the real manifests listed in its SOURCES.md, \
         beside the checkout); set ROLLGUARD_SKIP_CORPUS=1 to skip this test on purpose",
        dir.display()
    );
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(yaml_files(&path));
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The files PyYAML (a YAML 1.1 parser, as kubectl's go-yaml v2) reads, in one
/// process.
fn yaml11_readable(files: &[PathBuf]) -> Vec<PathBuf> {
    let script = "import sys, yaml\n\
                  for p in sys.stdin.read().splitlines():\n\
                  \x20   try:\n\
                  \x20       list(yaml.safe_load_all(open(p, encoding='utf-8')))\n\
                  \x20       print(p)\n\
                  \x20   except Exception:\n\
                  \x20       pass\n";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 with PyYAML (a kubernetes-validate dependency) is needed");
    {
        use std::io::Write;
        let list: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(list.join("\n").as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(PathBuf::from)
        .collect()
}

/// What PyYAML (YAML 1.1, timestamps left as strings, as kubectl's JSON
/// conversion leaves them) reads from `{id}.in.yaml` and `{id}.out.yaml`, in
/// one process: an independent check of rollguard's own reader and writer.
fn yaml11_values(dir: &Path, ids: &[String]) -> (Vec<Value>, Vec<Value>) {
    let script = "import json, sys, yaml\n\
                  L = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)\n\
                  class K(L): pass\n\
                  K.yaml_implicit_resolvers = {k: [r for r in v if r[0] != 'tag:yaml.org,2002:timestamp'] for k, v in L.yaml_implicit_resolvers.items()}\n\
                  def keys(v):\n\
                  \x20   if isinstance(v, dict): return {(json.dumps(k) if not isinstance(k, str) else k): keys(x) for k, x in v.items()}\n\
                  \x20   if isinstance(v, list): return [keys(x) for x in v]\n\
                  \x20   return v\n\
                  for p in sys.argv[1:]:\n\
                  \x20   print(json.dumps(keys(yaml.load(open(p, encoding='utf-8'), Loader=K)), default=str))\n";
    let files: Vec<PathBuf> = ids
        .iter()
        .flat_map(|id| {
            [
                dir.join(format!("{id}.in.yaml")),
                dir.join(format!("{id}.out.yaml")),
            ]
        })
        .collect();
    let out = Command::new("python3")
        .args(["-c", script])
        .args(&files)
        .output()
        .expect("python3 with PyYAML (tests/requirements.txt) is needed");
    assert!(
        out.status.success(),
        "PyYAML: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let values: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(values.len(), files.len());
    let (ins, outs): (Vec<_>, Vec<_>) = values
        .chunks(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .unzip();
    (ins, outs)
}

fn eval(kind: WorkloadKind, object: &Value, stage: Stage) -> rollguard::policy::Verdict {
    evaluate(
        &EvalRequest {
            kind,
            object,
            stage,
            mode: Mode::Enforce,
        },
        &Settings::default(),
    )
    .expect("a corpus workload evaluates")
}

fn check_yaml(text: &str) -> String {
    let options = CheckOptions {
        mode: Mode::Enforce,
        format: Format::Yaml,
        color: false,
        settings: Settings::default(),
    };
    let mut out = Vec::new();
    run(&[Input::Stdin], &options, &mut text.as_bytes(), &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn udp_only(container: &Value) -> bool {
    let ports = container["ports"].as_array().cloned().unwrap_or_default();
    !ports.is_empty() && ports.iter().all(|p| p["protocol"] == "UDP")
}

#[test]
fn corpus_is_read_and_admitted_as_a_careful_engineer_expects() {
    let Some(dir) = corpus() else {
        return;
    };
    let files = yaml_files(&dir);
    assert!(files.len() > 400, "{} files", files.len());
    let readable = yaml11_readable(&files);
    assert!(readable.len() > 400, "PyYAML read {} files", readable.len());
    let temp = TempDir::new();
    let out_dir = temp.path();
    std::fs::create_dir_all(out_dir.join("original")).unwrap();
    std::fs::create_dir_all(out_dir.join("admitted")).unwrap();
    std::fs::create_dir_all(out_dir.join("yaml11")).unwrap();
    let mut patches = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let mut written = Vec::new();
    let mut workloads = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let name = file.strip_prefix(&dir).unwrap().display().to_string();
        for doc in documents(&text) {
            let parsed = match parse(&doc) {
                Ok(parsed) => parsed,
                Err(err) => {
                    if readable.contains(file) {
                        failures.push(format!("{name}:{}: not read: {}", err.line, err.message));
                    }
                    continue;
                }
            };
            let object = parsed.value;
            let Some(kind) = WorkloadKind::from_object(&object) else {
                continue;
            };
            workloads += 1;
            let full = eval(kind, &object, Stage::Full);
            let admitted = full.admitted.clone();
            // A second pass mutates nothing.
            let again = eval(kind, &admitted, Stage::Mutate);
            if !again.patch.0.is_empty() {
                failures.push(format!(
                    "{name}:{}: not idempotent: {:?}",
                    doc.line, again.patch
                ));
            }
            // `check --output yaml` re-read is the original plus the patch.
            let output = check_yaml(&doc.text);
            let reread = parse(&documents(&output)[0]).map(|p| p.value);
            if reread.as_ref() != Ok(&admitted) {
                failures.push(format!(
                    "{name}:{}: --output yaml re-read differs",
                    doc.line
                ));
            }
            // No probe on a UDP-only container.
            let spec = match kind {
                WorkloadKind::Pod => &admitted["spec"],
                _ => &admitted["spec"]["template"]["spec"],
            };
            for c in spec["containers"].as_array().into_iter().flatten() {
                let had = object.pointer(&format!(
                    "{}/containers",
                    if kind == WorkloadKind::Pod {
                        "/spec"
                    } else {
                        "/spec/template/spec"
                    }
                ));
                let original = had
                    .and_then(Value::as_array)
                    .and_then(|cs| cs.iter().find(|o| o["name"] == c["name"]));
                let injected = original.is_some_and(|o| o["readinessProbe"].is_null())
                    && !c["readinessProbe"].is_null();
                if udp_only(c) && injected {
                    failures.push(format!(
                        "{name}:{}: probe on UDP-only {}",
                        doc.line, c["name"]
                    ));
                }
            }
            // Pods built from the admitted template are no-ops.
            if kind != WorkloadKind::Pod && full.mode != rollguard::policy::EffectiveMode::Off {
                let template = &admitted["spec"]["template"];
                let pod = json!({
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "generateName": "corpus-",
                        "annotations": template["metadata"]["annotations"].clone(),
                        // As the controller creates it.
                        "ownerReferences": [{
                            "apiVersion": "apps/v1",
                            "kind": if kind == WorkloadKind::Deployment { "ReplicaSet" } else { kind.name() },
                            "name": "owner", "uid": "u", "controller": true,
                        }],
                    },
                    "spec": template["spec"].clone(),
                });
                let pv = eval(WorkloadKind::Pod, &pod, Stage::Mutate);
                let changes_beyond_grace: Vec<_> = pv
                    .mutations
                    .iter()
                    .filter(|m| {
                        m.rule != Rule::GracePeriod
                            || spec["terminationGracePeriodSeconds"].is_number()
                    })
                    .collect();
                if !changes_beyond_grace.is_empty() {
                    failures.push(format!(
                        "{name}:{}: pod from the template is mutated: {:?}",
                        doc.line,
                        changes_beyond_grace
                            .iter()
                            .map(|m| m.describe())
                            .collect::<Vec<_>>()
                    ));
                }
            }
            // Audit warnings: at most 120 characters, whole (never cut: no
            // `…`), never a JSON value.
            for w in audit::warnings(&audit::audit_response(&object)) {
                if w.chars().count() > MAX_WARNING_CHARS || w.contains('…') || w.contains("{\"") {
                    failures.push(format!("{name}:{}: warning {w:?}", doc.line));
                }
            }
            if !full.patch.0.is_empty() {
                let id = format!("{:04}.json", written.len());
                std::fs::write(
                    out_dir.join("original").join(&id),
                    serde_json::to_vec(&object).unwrap(),
                )
                .unwrap();
                std::fs::write(
                    out_dir.join("admitted").join(&id),
                    serde_json::to_vec(&admitted).unwrap(),
                )
                .unwrap();
                std::fs::write(
                    out_dir.join("yaml11").join(format!("{id}.in.yaml")),
                    &doc.text,
                )
                .unwrap();
                std::fs::write(
                    out_dir.join("yaml11").join(format!("{id}.out.yaml")),
                    &output,
                )
                .unwrap();
                patches.push((format!("{name}:{}", doc.line), full.patch.clone()));
                written.push(id);
            }
        }
    }
    // The same round trip through an independent YAML 1.1 reader (PyYAML):
    // the output reads as the original plus the patch.
    let (ins, outs) = yaml11_values(&out_dir.join("yaml11"), &written);
    for ((place, patch), (original, output)) in patches.iter().zip(ins.into_iter().zip(outs)) {
        let mut expected = original;
        match json_patch::patch(&mut expected, patch) {
            Ok(()) if expected == output => {}
            Ok(()) => failures.push(format!(
                "{place}: PyYAML reads --output yaml as {output}, not the original plus the patch {expected}"
            )),
            Err(err) => failures.push(format!("{place}: patch on PyYAML's reading: {err}")),
        }
    }
    assert!(workloads > 500, "{workloads} workloads");
    assert!(written.len() > 100, "{} mutated workloads", written.len());
    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Some corpus files are invalid as written (a StatefulSet without
    // serviceName, `value: true` in an env var): rollguard must add no error,
    // judged per error of each object (an object invalid as written may not
    // get a second error either).
    for version in VERSIONS {
        let original = invalid(&out_dir.join("original"), &written, version);
        let admitted = invalid(&out_dir.join("admitted"), &written, version);
        let as_original = |line: &String| line.replace("/admitted/", "/original/");
        let added: Vec<&String> = admitted
            .iter()
            .filter(|l| !original.contains(&as_original(l)))
            .collect();
        assert!(
            added.is_empty(),
            "rollguard made corpus objects invalid for Kubernetes {version}:\n{added:#?}"
        );
    }
}

/// The `ERROR` lines of one kubernetes-validate run over every file.
fn invalid(dir: &Path, ids: &[String], version: &str) -> Vec<String> {
    let output = Command::new("kubernetes-validate")
        .args(["--strict", "--quiet", "-k", version])
        .args(ids.iter().map(|id| dir.join(id)))
        .output()
        .expect("kubernetes-validate is not installed: run scripts/test-deps.sh (.ci/run does)");
    let report = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    report
        .lines()
        .filter(|l| l.starts_with("ERROR"))
        .map(String::from)
        .collect()
}
