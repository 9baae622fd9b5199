//! `rollguard simulate` end to end: the README command runs, reports the
//! figures as written and as admitted, its exit codes follow `check`'s, its
//! SVGs are well-formed and render in a browser (headless Chromium: the test
//! fails without it), and the SVGs and README sample in the repository are
//! what it produces today.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use support::binary::output as rollguard;
use support::temp::TempDir;

/// The four stories of docs/rollouts.md, in the order the README lists them.
const STORIES: [&str; 4] = [
    "examples/01-stateful-ingester.yaml",
    "examples/02-pull-based-consumer.yaml",
    "examples/03-http-service.yaml",
    "examples/04-jvm-warmup.yaml",
];

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// `rollguard simulate ARGS -` with `input` on stdin.
fn simulate_stdin(args: &[&str], input: &str) -> Output {
    let mut child = support::binary::command()
        .arg("simulate")
        .args(args)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// The block of `text` about one workload.
fn block<'a>(text: &'a str, identity: &str) -> &'a str {
    text.split("\n\n")
        .find(|block| block.starts_with(identity))
        .unwrap_or_else(|| panic!("no {identity} in\n{text}"))
}

#[test]
fn simulate_examples_shows_each_rollout_before_and_after() {
    let out = rollguard(&["simulate", "examples/"]);
    let text = stdout(&out);
    // Every admitted rollout keeps a Ready pod and flushes one at a time.
    assert_eq!(out.status.code(), Some(0), "{text}");
    let ingester = block(&text, "Deployment/metrics/ingester");
    let (written, admitted) = ingester.split_once("as admitted").unwrap();
    // As written the kubelet kills each pod at the 30 s grace period, long
    // before its 40 min flush ends: one at a time, every flush lost.
    assert!(
        written.contains("killed at the 30s grace period"),
        "{ingester}"
    );
    assert!(written.contains("max terminating at once 1"), "{ingester}");
    assert!(written.contains("3 flushes cut short"), "{ingester}");
    assert!(admitted.contains("minReadySeconds 2415"), "{ingester}");
    assert!(admitted.contains("max terminating at once 1"), "{ingester}");
    assert!(!admitted.contains("cut short"), "{ingester}");
    assert!(ingester.contains("TIME  REVISION DESIRED CURRENT READY TERMINATING"));
    assert!(text.contains("denied by rollguard (stateful-recreate)"));
}

#[test]
fn simulate_reads_stdin_and_reports_bad_yaml_without_stopping() {
    let out = simulate_stdin(
        &["--never-ready"],
        "a: [\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: one}\nspec:\n  replicas: 1\n  strategy: {rollingUpdate: {maxSurge: 0, maxUnavailable: 1}}\n  template: {spec: {containers: [{name: a, image: a}]}}\n",
    );
    let text = stdout(&out);
    // Unreadable input: 2, as for `check`.
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("<stdin>:1:"), "{text}");
    assert!(text.contains("OUTAGE"), "{text}");
}

#[test]
fn an_object_that_cannot_be_read_is_named_and_exits_2() {
    let out = simulate_stdin(
        &[],
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: one, namespace: x}\nspec:\n  replicas: abc\n  template: {spec: {containers: [{name: a, image: a}]}}\n",
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("<stdin>:1: Deployment/x/one: spec.replicas"),
        "{text}"
    );
}

#[test]
fn a_harmful_admitted_rollout_exits_1_and_says_why() {
    // The checkout is admitted with a 40 s grace period; a 10 min shutdown is
    // killed at it.
    let out = rollguard(&[
        "simulate",
        "examples/03-http-service.yaml",
        "--shutdown",
        "10m",
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("harm as admitted: flush cut short"), "{text}");
    // Recreate, which rollguard leaves to a serving app that chose it: no
    // pod is Ready while the new ones start.
    let out = simulate_stdin(
        &[],
        &deployment("batch", "replicas: 2, strategy: {type: Recreate}"),
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("harm as admitted: outage"), "{text}");
}

/// A Deployment named `name` with `spec` (YAML flow mapping entries).
fn deployment(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec: {{{spec}, template: {{spec: {{containers: [{{name: a, image: a}}]}}}}}}\n---\n"
    )
}

#[test]
fn paused_on_delete_and_empty_workloads_say_what_happens() {
    let input = [
        deployment("paused", "replicas: 3, paused: true"),
        deployment("empty", "replicas: 0"),
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: manual}\nspec: {replicas: 2, serviceName: manual, updateStrategy: {type: OnDelete}, template: {spec: {containers: [{name: a, image: a}]}}}\n".to_string(),
    ]
    .concat();
    let out = simulate_stdin(&[], &input);
    let text = stdout(&out);
    let paused = block(&text, "Deployment/paused");
    assert!(
        paused.contains("paused (spec.paused): no rollout"),
        "{paused}"
    );
    assert!(!paused.contains("not done"), "{paused}");
    let empty = block(&text, "Deployment/empty");
    assert!(!empty.contains("OUTAGE"), "{empty}");
    let manual = block(&text, "StatefulSet/manual");
    assert!(
        manual.contains("OnDelete: nothing rolls; a pod is replaced only when someone deletes it"),
        "{manual}"
    );
    assert!(!manual.contains("not done after"), "{manual}");
}

#[test]
fn replicas_beyond_the_cap_are_said_to_be_capped() {
    let out = simulate_stdin(&[], &deployment("huge", "replicas: 2147483647"));
    let text = stdout(&out);
    assert!(
        text.contains("simulated 10000 of 2147483647 replicas"),
        "{text}"
    );
}

#[test]
fn svg_needs_an_output_directory() {
    let out = rollguard(&["simulate", "examples/", "--output", "svg"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--out DIR"));
}

/// Why `text` is not well-formed XML (elements nest and close, attributes
/// are quoted, `&` starts a known entity, one root), or None.
fn xml_error(text: &str) -> Option<String> {
    fn entities_ok(text: &str) -> bool {
        text.split('&').skip(1).all(|rest| {
            let name = rest.split(';').next().unwrap_or("");
            rest.contains(';')
                && (["amp", "lt", "gt", "quot", "apos"].contains(&name)
                    || name.strip_prefix('#').is_some_and(|n| {
                        !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric())
                    }))
        })
    }
    let mut open: Vec<String> = Vec::new();
    let mut roots = 0;
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some(start) = rest.find('<') else {
            if !open.is_empty() || !rest.trim().is_empty() {
                return Some(format!("text outside the root: {rest:?}"));
            }
            break;
        };
        let (content, tag) = rest.split_at(start);
        if content.contains('>') || !entities_ok(content) {
            return Some(format!("bad text: {content:?}"));
        }
        if open.is_empty() && !content.trim().is_empty() {
            return Some(format!("text outside the root: {content:?}"));
        }
        let Some(end) = tag.find('>') else {
            return Some(format!("unclosed tag {tag:?}"));
        };
        let inner = &tag[1..end];
        rest = &tag[end + 1..];
        if let Some(name) = inner.strip_prefix('/') {
            match open.pop() {
                Some(expected) if expected == name.trim() => {}
                other => return Some(format!("</{name}> closes {other:?}")),
            }
            continue;
        }
        let self_closing = inner.ends_with('/');
        let inner = inner.trim_end_matches('/');
        let name: String = inner.chars().take_while(|c| !c.is_whitespace()).collect();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Some(format!("bad element name in <{inner}>"));
        }
        // Attributes: name="value" pairs, nothing else.
        let mut attrs = inner[name.len()..].trim();
        while !attrs.is_empty() {
            let Some((key, value)) = attrs.split_once('=') else {
                return Some(format!("bad attributes in <{inner}>"));
            };
            let key = key.trim();
            let value = value.trim_start();
            let quote = value.chars().next().unwrap_or(' ');
            let close = value.get(1..).and_then(|v| v.find(quote)).map(|c| c + 1);
            let Some(close) = close.filter(|_| {
                (quote == '"' || quote == '\'')
                    && !key.is_empty()
                    && !key.contains(char::is_whitespace)
            }) else {
                return Some(format!("unquoted attribute {key} in <{inner}>"));
            };
            let value_text = &value[1..close];
            if value_text.contains('<') || !entities_ok(value_text) {
                return Some(format!("bad attribute value {value_text:?}"));
            }
            attrs = value[close + 1..].trim_start();
        }
        if open.is_empty() {
            roots += 1;
        }
        if !self_closing {
            open.push(name);
        }
    }
    match (open.last(), roots) {
        (Some(name), _) => Some(format!("<{name}> never closed")),
        (None, 1) => None,
        (None, n) => Some(format!("{n} root elements")),
    }
}

#[test]
fn the_xml_check_finds_what_a_browser_would_refuse() {
    assert_eq!(
        xml_error(r#"<svg a="1"><rect b="x"/><text>a &amp; b</text></svg>"#),
        None
    );
    for broken in [
        r#"<svg><text>a & b</text></svg>"#,
        r#"<svg><rect></svg>"#,
        r#"<svg a=1></svg>"#,
        r#"<svg></svg><svg></svg>"#,
        r#"<svg><text x="<">a</text></svg>"#,
        r#"<svg><rect x="1"/"#,
        r#"<svg><rect x="1/></svg>"#,
    ] {
        assert!(xml_error(broken).is_some(), "{broken} passed");
    }
}

/// Runs scripts/render-svg.sh on `svgs`; the PNG of each.
fn screenshots(out_dir: &Path, svgs: &[&Path]) -> Vec<Vec<u8>> {
    let script = support::fixtures::root().join("scripts/render-svg.sh");
    let rendered = Command::new("sh")
        .arg(script)
        .arg(out_dir)
        .args(svgs)
        .output()
        .unwrap();
    assert!(
        rendered.status.success(),
        "render-svg failed (install chromium: scripts/test-deps.sh):\n{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    svgs.iter()
        .map(|svg| {
            let name = svg.file_stem().unwrap().to_str().unwrap();
            let png = std::fs::read(out_dir.join(format!("{name}.png"))).unwrap();
            assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{name}: not a PNG");
            png
        })
        .collect()
}

/// The `width="…" height="…"` of the root element.
fn declared_size(svg: &str) -> (&str, &str) {
    let attr = |name: &str| {
        let start = svg.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
        &svg[start..start + svg[start..].find('"').unwrap()]
    };
    (attr("width"), attr("height"))
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
    assert!(out.status.success(), "{}", stdout(&out));
    let written = dir.join("deployment_metrics_ingester.written.svg");
    let admitted = dir.join("deployment_metrics_ingester.admitted.svg");
    for svg in [&written, &admitted] {
        let text = std::fs::read_to_string(svg).unwrap();
        assert_eq!(xml_error(&text), None, "{}", svg.display());
        assert!(text.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        // 3 old + 3 new lanes, each with at least one state rectangle, and the legend.
        assert!(text.matches("<rect x=").count() >= 6 + 5);
    }
    // The same size with nothing drawn: a blank page compresses to a tiny
    // PNG, a chart with text and lanes does not.
    let text = std::fs::read_to_string(&written).unwrap();
    let (width, height) = declared_size(&text);
    let blank = temp.write(
        "blank.svg",
        format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"><rect width="100%" height="100%" fill="white"/></svg>"#
        ),
    );
    let png_dir = dir.join("png");
    let pngs = screenshots(&png_dir, &[&written, &admitted, &blank]);
    let blank_size = pngs[2].len();
    for (png, svg) in pngs.iter().zip([&written, &admitted]) {
        println!(
            "{}: {} bytes of PNG, blank {blank_size}",
            svg.display(),
            png.len()
        );
        assert!(
            png.len() > 4 * blank_size,
            "{} rendered as a blank page ({} bytes, blank {blank_size})",
            svg.display(),
            png.len()
        );
    }
}

#[test]
fn render_script_fails_without_a_browser() {
    let temp = TempDir::new();
    let svg = temp.write(
        "a.svg",
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>"#,
    );
    let script = support::fixtures::root().join("scripts/render-svg.sh");
    let out = Command::new("sh")
        .arg(script)
        .arg(temp.path().join("png"))
        .arg(&svg)
        .env("CHROMIUM", "/nonexistent/chromium")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("install chromium: scripts/test-deps.sh"));
}

fn sorted_svgs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "svg"))
        .collect();
    files.sort();
    files
}

#[test]
fn docs_svgs_are_what_simulate_draws_today() {
    let temp = TempDir::new();
    let out_dir = temp.path().join("rollouts");
    let mut args = vec!["simulate"];
    args.extend(STORIES);
    args.extend(["--output", "svg", "--out", out_dir.to_str().unwrap()]);
    let out = rollguard(&args);
    assert!(out.status.success(), "{}", stdout(&out));
    let docs = support::fixtures::root().join("docs/rollouts");
    let generated = sorted_svgs(&out_dir);
    let committed = sorted_svgs(&docs);
    let names = |files: &[PathBuf]| -> Vec<String> {
        files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    let regenerate =
        "regenerate: cargo run -- simulate examples/0*.yaml --output svg --out docs/rollouts";
    assert_eq!(names(&committed), names(&generated), "{regenerate}");
    for (committed, generated) in committed.iter().zip(&generated) {
        assert!(
            std::fs::read(committed).unwrap() == std::fs::read(generated).unwrap(),
            "{} differs from what simulate draws; {regenerate}",
            committed.display()
        );
    }
}

#[test]
fn readme_sample_is_a_real_run() {
    let readme = std::fs::read_to_string(support::fixtures::root().join("README.md")).unwrap();
    let section = readme
        .split("## `rollguard simulate`")
        .nth(1)
        .expect("README has a simulate section");
    let section = section.split("\n## ").next().unwrap();
    let sample = section
        .split("```text\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("README simulate section has a ```text sample");
    let out = rollguard(&["simulate", STORIES[0]]);
    assert_eq!(
        sample.trim_end(),
        stdout(&out).trim_end(),
        "README simulate sample: paste the output of `rollguard simulate {}`",
        STORIES[0]
    );
}
