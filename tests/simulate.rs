//! `rollguard simulate` end to end: the README command runs, reports the
//! figures as written and as admitted, and its SVGs render in a browser
//! (headless Chromium; skipped when it is not installed).

mod support;

use std::process::Command;

use support::binary::output as rollguard;
use support::temp::TempDir;

#[test]
fn simulate_examples_shows_each_rollout_before_and_after() {
    let out = rollguard(&["simulate", "examples/"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let ingester = text
        .split("\n\n")
        .find(|block| block.starts_with("Deployment/metrics/ingester"))
        .unwrap();
    assert!(ingester.contains("max terminating at once 3"), "{ingester}");
    assert!(ingester.contains("minReadySeconds 2415"), "{ingester}");
    assert!(ingester.contains("max terminating at once 1"), "{ingester}");
    assert!(ingester.contains("TIME  REVISION DESIRED CURRENT READY TERMINATING"));
    assert!(text.contains("denied by rollguard (stateful-recreate)"));
}

#[test]
fn simulate_reads_stdin_and_reports_bad_yaml_without_stopping() {
    let mut child = support::binary::command()
        .args(["simulate", "--never-ready", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a: [\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: one}\nspec:\n  replicas: 1\n  strategy: {rollingUpdate: {maxSurge: 0, maxUnavailable: 1}}\n  template: {spec: {containers: [{name: a, image: a}]}}\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("<stdin>:1:"), "{text}");
    assert!(text.contains("OUTAGE"), "{text}");
}

#[test]
fn svg_needs_an_output_directory() {
    let out = rollguard(&["simulate", "examples/", "--output", "svg"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--out DIR"));
}

#[test]
fn svgs_are_written_and_render_in_chromium() {
    // A directory that does not exist yet: simulate creates it.
    let temp = TempDir::new();
    let dir = temp.path().join("svg");
    let out = rollguard(&[
        "simulate",
        "examples/01-stateful-ingester.yaml",
        "--output",
        "svg",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svg = dir.join("deployment_metrics_ingester.admitted.svg");
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(text.trim_end().ends_with("</svg>"));
    // 3 old + 3 new lanes, each with at least one state rectangle.
    assert!(text.matches("<rect x=").count() >= 6 + 5);
    let script = support::fixtures::root().join("scripts/render-svg.sh");
    let png_dir = dir.join("png");
    let rendered = Command::new("sh")
        .arg(script)
        .arg(&png_dir)
        .arg(&svg)
        .output()
        .unwrap();
    assert!(
        rendered.status.success(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    if String::from_utf8_lossy(&rendered.stderr).contains("skipping") {
        eprintln!("chromium absent: render check skipped");
    } else {
        let png = std::fs::read(png_dir.join("deployment_metrics_ingester.admitted.png")).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    }
}
