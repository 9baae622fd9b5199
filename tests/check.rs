//! `rollguard check` over `examples/`: golden output for every format, exit
//! codes, and hostile input (malformed YAML, unknown kinds, no metadata).
//! Run with `ROLLGUARD_BLESS=1` to rewrite the golden files.

use std::path::Path;

use rollguard::check::{expand, run, CheckOptions, Format, Input, Summary};
use rollguard::policy::Mode;
use rollguard::settings::Settings;

fn options(format: Format, mode: Mode) -> CheckOptions {
    CheckOptions {
        mode,
        format,
        color: false,
        settings: Settings::default(),
    }
}

/// The report, with the files named from the package root (the inputs are
/// absolute paths, never relative to the current directory), as
/// `rollguard check examples` run there names them.
fn check(inputs: &[Input], format: Format, mode: Mode, stdin: &str) -> (Summary, String) {
    let mut out = Vec::new();
    let summary = run(
        inputs,
        &options(format, mode),
        &mut stdin.as_bytes(),
        &mut out,
    )
    .unwrap();
    let out = String::from_utf8(out).unwrap();
    (summary, out.replace(&format!("{}/", root().display()), ""))
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn examples() -> Vec<Input> {
    expand(&[root().join("examples").display().to_string()]).unwrap()
}

fn golden(name: &str, actual: &str) {
    let path = root().join("tests/golden").join(name);
    if std::env::var_os("ROLLGUARD_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == actual,
        "{name} differs from the golden file (ROLLGUARD_BLESS=1 rewrites it):\n{actual}"
    );
}

#[test]
fn examples_golden_text_yaml_diff_json_and_audit() {
    for (format, mode, file) in [
        (Format::Text, Mode::Enforce, "examples.txt"),
        (Format::Yaml, Mode::Enforce, "examples.yaml"),
        (Format::Diff, Mode::Enforce, "examples.diff"),
        (Format::Json, Mode::Enforce, "examples.json"),
        (Format::Text, Mode::Audit, "examples-audit.txt"),
    ] {
        let (summary, out) = check(&examples(), format, mode, "");
        golden(file, &out);
        assert_eq!(summary.objects, 7, "{file}");
        // Audit mode reports the same denials as would-be denials: no failure.
        let (denied, would_deny, exit) = match mode {
            Mode::Enforce => (3, 0, 1),
            Mode::Audit => (0, 3, 0),
        };
        assert_eq!(
            (summary.denied, summary.would_deny),
            (denied, would_deny),
            "{file}"
        );
        assert_eq!(summary.exit_code(), exit, "{file}");
    }
}

#[test]
fn sarif_output_is_valid_json_with_errors_for_denials_and_notes_for_mutations() {
    let (_, out) = check(&examples(), Format::Sarif, Mode::Enforce, "");
    golden("examples.sarif", &out);
    let sarif: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let run = &sarif["runs"][0];
    assert_eq!(
        run["tool"]["driver"]["rules"].as_array().unwrap().len(),
        rollguard::rules::Rule::ALL.len()
    );
    let results = run["results"].as_array().unwrap();
    let errors: Vec<&str> = results
        .iter()
        .filter(|r| r["level"] == "error")
        .map(|r| r["ruleId"].as_str().unwrap())
        .collect();
    assert_eq!(
        errors,
        [
            "stateful-recreate",
            "prestop-exceeds-grace",
            "invalid-annotation",
            "rollout-all-unavailable"
        ]
    );
    assert!(results
        .iter()
        .any(|r| r["level"] == "note" && r["ruleId"] == "prestop-sleep"));
    assert_eq!(
        results[0]["locations"][0]["physicalLocation"]["region"]["startLine"],
        4
    );
}

#[test]
fn json_output_is_one_entry_per_object_with_position() {
    let (_, out) = check(&examples(), Format::Json, Mode::Enforce, "");
    let entries: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(entries.len(), 7);
    let ingester = &entries[0];
    assert_eq!(ingester["file"], "examples/01-stateful-ingester.yaml");
    assert_eq!(ingester["line"], 4);
    assert_eq!(ingester["name"], "ingester");
    assert!(ingester["patch"].as_array().is_some_and(|p| !p.is_empty()));
}

#[test]
fn yaml_output_applies_mutations_and_passes_other_documents_through_verbatim() {
    let stdin = "# a config map stays exactly as written\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: v\n---\n"
        .to_string()
        + &std::fs::read_to_string(root().join("examples/03-http-service.yaml")).unwrap();
    let (summary, out) = check(&[Input::Stdin], Format::Yaml, Mode::Enforce, &stdin);
    assert_eq!(summary.exit_code(), 0);
    assert!(
        out.starts_with("---\n# a config map stays exactly as written\napiVersion: v1\n"),
        "{out}"
    );
    let docs: Vec<serde_json::Value> = out
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_saphyr::from_str(d).unwrap())
        .collect();
    assert_eq!(docs.len(), 2);
    let spec = &docs[1]["spec"]["template"]["spec"];
    assert_eq!(spec["terminationGracePeriodSeconds"], 40);
    assert_eq!(
        spec["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"],
        10
    );
}

#[test]
fn lists_are_checked_item_by_item() {
    let list = r#"{"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a"},
         "spec": {"replicas": 1, "strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
                  "selector": {}, "template": {"spec": {"containers": [{"name": "a", "image": "x"}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}}
    ]}"#;
    let (summary, out) = check(&[Input::Stdin], Format::Text, Mode::Enforce, list);
    assert_eq!(
        (summary.objects, summary.mutated, summary.passed_through),
        (2, 1, 1)
    );
    assert!(out.contains("Deployment/a (<stdin>:1)"), "{out}");
    assert!(
        out.contains("maxUnavailable: 1 → 0 (single-replica)"),
        "{out}"
    );
}

#[test]
fn malformed_yaml_is_an_error_with_file_and_line_and_the_rest_is_still_checked() {
    let text = "apiVersion: v1\nkind: ConfigMap\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: [unclosed\n---\n"
        .to_string()
        + &std::fs::read_to_string(root().join("examples/03-http-service.yaml")).unwrap();
    let (summary, out) = check(&[Input::Stdin], Format::Text, Mode::Enforce, &text);
    assert_eq!(summary.errors, 1);
    assert_eq!(summary.exit_code(), 2);
    assert!(out.contains("error: <stdin>:"), "{out}");
    assert!(out.trim_end().ends_with(", 1 error"), "{out}");
    assert!(out.contains("Deployment/shop/checkout"), "{out}");
}

#[test]
fn documents_without_metadata_or_of_unknown_kinds_are_handled() {
    let text = "kind: Deployment\napiVersion: apps/v1\nspec:\n  selector: {}\n  template:\n    spec:\n      containers: [{name: a, image: x}]\n---\napiVersion: example.com/v1\nkind: Widget\nspec: {size: 3}\n---\njust a string\n";
    let (summary, out) = check(&[Input::Stdin], Format::Text, Mode::Enforce, text);
    assert_eq!(summary.objects, 3);
    assert_eq!(summary.errors, 0, "{out}");
    assert_eq!(summary.passed_through, 2);
    assert!(
        out.contains("Deployment/<unnamed> (<stdin>:1): ok"),
        "{out}"
    );
}

#[test]
fn objects_the_engine_cannot_read_are_errors_with_positions() {
    let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: bad}\nspec:\n  replicas: many\n  selector: {}\n  template: {spec: {containers: []}}\n";
    let (summary, out) = check(&[Input::Stdin], Format::Text, Mode::Enforce, text);
    assert_eq!(summary.exit_code(), 2);
    assert!(
        out.contains("<stdin>:1: Deployment/bad: cannot read Deployment field `spec.replicas`"),
        "{out}"
    );
}

#[test]
fn missing_paths_are_usage_errors() {
    let err = expand(&["no/such/dir".to_string()]).unwrap_err();
    assert!(err.to_string().contains("no/such/dir"), "{err}");
}
