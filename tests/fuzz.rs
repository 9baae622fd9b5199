//! A fuzz harness on stable Rust over what the API server can send: the
//! AdmissionReview decoder and the engine behind it (`admission::answer`).
//!
//! Inputs are the real reviews in `tests/fixtures/admission/` and the
//! `examples/` manifests wrapped in reviews, mutated by a seeded PRNG: byte
//! flips, truncations, deleted and duplicated ranges, splices of two
//! reviews, inserted JSON tokens, and structure-aware edits of the JSON tree
//! (a value replaced by another type, a subtree grafted from elsewhere, keys
//! removed, rollguard annotations with odd values). Every case must:
//!
//! - not panic;
//! - answer 200, 400 or 500;
//! - on 200, be an `admission.k8s.io/v1` AdmissionReview echoing the uid,
//!   whose patch (if any) is base64 JSON Patch that applies to the object.
//!
//! `cargo test --test fuzz` runs a short deterministic pass. The long run
//! (docs/operations.md):
//!
//! ```sh
//! FUZZ_CASES=1000000 FUZZ_SEED=$RANDOM cargo test --release --test fuzz -- --nocapture
//! ```
//!
//! A failing case is written to `target/fuzz-findings/` and its seed and
//! index are printed, so it can be replayed and turned into a fixture.

mod support;

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::time::Instant;

use serde_json::{json, Value};

use rollguard::admission::{self, PolicyConfig, Route};

/// Cases in a plain `cargo test` run (debug build: about a second).
const DEFAULT_CASES: u64 = 1_500;
const DEFAULT_SEED: u64 = 0x5eed_2026_0501;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// xorshift64*: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn seeds() -> Vec<Value> {
    let mut seeds: Vec<Value> = support::fixtures::admission_reviews()
        .into_iter()
        .map(|(_, review)| review)
        .collect();
    let template = seeds
        .iter()
        .find(|r| r["request"]["kind"]["kind"] == "Deployment")
        .cloned()
        .expect("a Deployment review");
    for path in support::fixtures::example_paths() {
        let text = std::fs::read_to_string(&path).expect("example");
        let Ok(object) = serde_saphyr::from_str::<Value>(&text) else {
            continue;
        };
        let mut review = template.clone();
        let (group, version) = match object["apiVersion"]
            .as_str()
            .unwrap_or("v1")
            .split_once('/')
        {
            Some((group, version)) => (group.to_string(), version.to_string()),
            None => (String::new(), "v1".to_string()),
        };
        review["request"]["kind"] = json!({
            "group": group, "version": version, "kind": object["kind"].clone(),
        });
        review["request"]["name"] = object["metadata"]["name"].clone();
        review["request"]["object"] = object;
        seeds.push(review);
    }
    seeds
}

const TOKENS: &[&str] = &[
    "null",
    "true",
    "false",
    "0",
    "-1",
    "1e309",
    "-0",
    "1.5",
    "18446744073709551616",
    "\"\"",
    "{}",
    "[]",
    "[[]]",
    "{\"\":{}}",
    "\"\\u0000\"",
    "\"\\ud800\"",
    ",",
    ":",
    "\"",
    "{",
    "}",
    "[",
    "]",
    "\"100%\"",
    "\"0%\"",
    "\"-5%\"",
    "\"1h\"",
    "\"0s\"",
    "\"rollguard.io/mode\"",
    "\"off\"",
];

/// Values a field may be replaced with.
fn odd_value(rng: &mut Rng) -> Value {
    match rng.below(16) {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(0),
        3 => json!(-1),
        4 => json!(i64::MAX),
        5 => json!(u64::MAX),
        6 => json!(1.5),
        7 => json!(""),
        8 => json!("100%"),
        9 => json!("-1%"),
        10 => json!("2147483648"),
        11 => json!({}),
        12 => json!([]),
        13 => json!([{}]),
        14 => json!("x".repeat(rng.below(300))),
        _ => json!({ "name": "x", "port": rng.below(70_000) }),
    }
}

const ANNOTATION_VALUES: &[&str] = &[
    "off",
    "audit",
    "enforce",
    "",
    "0s",
    "1h",
    "99999999999h",
    "-1s",
    "1m30s",
    "serving",
    "stateful",
    "pull-based",
    "servng",
    "/ready",
    "http",
    "0",
    "65536",
    "prestop-sleep,,x",
    "invalid-annotation",
    "  ",
    "1e3s",
];

const ANNOTATION_KEYS: &[&str] = &[
    "rollguard.io/mode",
    "rollguard.io/profile",
    "rollguard.io/shutdown-timeout",
    "rollguard.io/prestop-sleep",
    "rollguard.io/warmup",
    "rollguard.io/readiness-path",
    "rollguard.io/readiness-port",
    "rollguard.io/waive",
    "rollguard.io/mutated",
    "rollguard.io/unknown",
];

/// A random path to a node of `value` (root included).
fn random_path(rng: &mut Rng, value: &Value) -> Vec<PathStep> {
    let mut path = Vec::new();
    let mut node = value;
    loop {
        let children = match node {
            Value::Object(map) if !map.is_empty() => map.len(),
            Value::Array(items) if !items.is_empty() => items.len(),
            _ => return path,
        };
        if !path.is_empty() && rng.chance(4) {
            return path;
        }
        let index = rng.below(children);
        node = match node {
            Value::Object(map) => {
                let (key, child) = map.iter().nth(index).expect("index in range");
                path.push(PathStep::Key(key.clone()));
                child
            }
            Value::Array(items) => {
                path.push(PathStep::Index(index));
                &items[index]
            }
            _ => unreachable!("only containers have children"),
        };
    }
}

#[derive(Debug, Clone)]
enum PathStep {
    Key(String),
    Index(usize),
}

fn node_mut<'a>(value: &'a mut Value, path: &[PathStep]) -> &'a mut Value {
    path.iter().fold(value, |node, step| match step {
        PathStep::Key(key) => &mut node[key.as_str()],
        PathStep::Index(index) => &mut node[*index],
    })
}

fn node<'a>(value: &'a Value, path: &[PathStep]) -> &'a Value {
    path.iter().fold(value, |node, step| match step {
        PathStep::Key(key) => &node[key.as_str()],
        PathStep::Index(index) => &node[*index],
    })
}

/// One structure-aware edit of a review, mostly inside `request.object`.
fn edit_tree(rng: &mut Rng, review: &mut Value, donors: &[Value]) {
    let inside_object = review["request"]["object"].is_object() && !rng.chance(5);
    let target = if inside_object {
        &mut review["request"]["object"]
    } else {
        review
    };
    match rng.below(5) {
        0 | 1 => {
            let path = random_path(rng, target);
            *node_mut(target, &path) = odd_value(rng);
        }
        2 => {
            let donor = rng.pick(donors);
            let from = random_path(rng, donor);
            let graft = node(donor, &from).clone();
            let path = random_path(rng, target);
            *node_mut(target, &path) = graft;
        }
        3 => {
            let path = random_path(rng, target);
            if let Some((last, parent)) = path.split_last() {
                match (node_mut(target, parent), last) {
                    (Value::Object(map), PathStep::Key(key)) => {
                        map.remove(key);
                    }
                    (Value::Array(items), PathStep::Index(index)) if *index < items.len() => {
                        items.remove(*index);
                    }
                    _ => {}
                }
            }
        }
        _ => {
            let key = *rng.pick(ANNOTATION_KEYS);
            let value = *rng.pick(ANNOTATION_VALUES);
            let where_ = if rng.chance(2) {
                "/metadata/annotations"
            } else {
                "/spec/template/metadata/annotations"
            };
            if let Some(Value::Object(map)) = target.pointer_mut(where_) {
                map.insert(key.to_string(), json!(value));
            } else if let Some(Value::Object(metadata)) = target.pointer_mut("/metadata") {
                metadata.insert("annotations".to_string(), json!({ key: value }));
            }
        }
    }
}

/// One byte-level edit.
fn edit_bytes(rng: &mut Rng, bytes: &mut Vec<u8>, donors: &[Vec<u8>]) {
    if bytes.is_empty() {
        bytes.extend_from_slice(rng.pick(TOKENS).as_bytes());
        return;
    }
    let at = rng.below(bytes.len());
    match rng.below(7) {
        0 => bytes[at] ^= 1 << rng.below(8),
        1 => bytes[at] = *rng.pick(b"\"{}[],:0-\\\xff\x00 e."),
        2 => bytes.truncate(at),
        3 => {
            let end = (at + 1 + rng.below(64)).min(bytes.len());
            bytes.drain(at..end);
        }
        4 => {
            let end = (at + 1 + rng.below(256)).min(bytes.len());
            let copy = bytes[at..end].to_vec();
            let to = rng.below(bytes.len());
            bytes.splice(to..to, copy);
        }
        5 => {
            let donor = rng.pick(donors);
            let from = rng.below(donor.len().max(1));
            bytes.truncate(at);
            bytes.extend_from_slice(&donor[from.min(donor.len())..]);
        }
        _ => {
            let token = rng.pick(TOKENS).as_bytes();
            bytes.splice(at..at, token.iter().copied());
        }
    }
}

/// Why a case failed.
fn check(route: Route, input: &[u8], status: u16, body: &[u8]) -> Result<(), String> {
    if ![200, 400, 500].contains(&status) {
        return Err(format!("status {status}"));
    }
    if status != 200 {
        return Ok(());
    }
    let review: Value =
        serde_json::from_slice(body).map_err(|e| format!("200 body is not JSON: {e}"))?;
    if review["apiVersion"] != "admission.k8s.io/v1" || review["kind"] != "AdmissionReview" {
        return Err(format!("200 body is not an AdmissionReview: {review}"));
    }
    let request: Value = serde_json::from_slice(input)
        .map_err(|e| format!("input answered 200 but is not JSON: {e}"))?;
    let response = &review["response"];
    if response["uid"] != request["request"]["uid"] || !response["uid"].is_string() {
        return Err(format!(
            "uid {} answered as {}",
            request["request"]["uid"], response["uid"]
        ));
    }
    if !response["allowed"].is_boolean() {
        return Err("response.allowed is not a boolean".to_string());
    }
    if let Some(patch) = response.get("patch") {
        use base64::Engine as _;
        if route != Route::Mutate {
            return Err(format!("{route:?} returned a patch"));
        }
        let text = patch.as_str().ok_or("patch is not a string")?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| format!("patch is not base64: {e}"))?;
        let patch: json_patch::Patch =
            serde_json::from_slice(&bytes).map_err(|e| format!("patch is not JSON Patch: {e}"))?;
        let mut object = request["request"]["object"].clone();
        json_patch::patch(&mut object, &patch)
            .map_err(|e| format!("patch does not apply to the object: {e}"))?;
        if response["patchType"] != "JSONPatch" {
            return Err("patch without patchType JSONPatch".to_string());
        }
    }
    Ok(())
}

/// The engine's error without the object's name, to group 500s.
fn error_kind(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let reason = text.split_once(": ").map_or(&*text, |(_, rest)| rest);
    reason.chars().take(90).collect()
}

#[test]
fn mutated_admission_reviews_never_panic_and_answer_well_formed() {
    let cases = env_u64("FUZZ_CASES", DEFAULT_CASES);
    let seed = env_u64("FUZZ_SEED", DEFAULT_SEED);
    let seeds = seeds();
    let seed_bytes: Vec<Vec<u8>> = seeds
        .iter()
        .map(|s| serde_json::to_vec(s).expect("encode"))
        .collect();
    let configs = [
        PolicyConfig::default(),
        PolicyConfig {
            audit_only: true,
            ..PolicyConfig::default()
        },
    ];
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    let mut patched = 0u64;
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut failures: Vec<String> = Vec::new();
    let started = Instant::now();

    for case in 0..cases {
        let mut rng = Rng::new(seed ^ case.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut review = rng.pick(&seeds).clone();
        let tree_edits = rng.below(4);
        for _ in 0..tree_edits {
            edit_tree(&mut rng, &mut review, &seeds);
        }
        let mut input = serde_json::to_vec(&review).expect("encode");
        // Half the cases stay valid JSON, to reach the engine.
        if rng.chance(2) {
            for _ in 0..=rng.below(3) {
                edit_bytes(&mut rng, &mut input, &seed_bytes);
            }
        }
        let route = *rng.pick(&Route::ALL);
        let config = rng.pick(&configs);

        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            admission::answer(route, &input, config)
        }));
        let verdict = match outcome {
            Ok(reply) => {
                *statuses.entry(reply.status).or_default() += 1;
                if reply.status == 200 && reply.body.windows(8).any(|w| w == b"\"patch\":") {
                    patched += 1;
                }
                if reply.status == 500 {
                    *errors.entry(error_kind(&reply.body)).or_default() += 1;
                }
                check(route, &input, reply.status, &reply.body).and_then(|()| {
                    // Skipping the fields no rule reads changes no answer.
                    let whole = admission::answer_reading_everything(route, &input, config);
                    if whole.status != reply.status
                        || (reply.status == 200 && whole.body != reply.body)
                    {
                        Err(format!(
                            "answered {} {} but {} {} when the whole object is read",
                            reply.status,
                            String::from_utf8_lossy(&reply.body),
                            whole.status,
                            String::from_utf8_lossy(&whole.body)
                        ))
                    } else {
                        Ok(())
                    }
                })
            }
            Err(_) => Err("panicked".to_string()),
        };
        if let Err(reason) = verdict {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-findings");
            let _ = std::fs::create_dir_all(&dir);
            let file = dir.join(format!("seed-{seed}-case-{case}.json"));
            let _ = std::fs::write(&file, &input);
            failures.push(format!(
                "case {case} ({route:?}, audit_only {}): {reason}; input in {}",
                config.audit_only,
                file.display()
            ));
            if failures.len() >= 10 {
                break;
            }
        }
    }
    let elapsed = started.elapsed();
    eprintln!(
        "fuzz: {cases} cases (seed {seed}) in {elapsed:.2?} ({:.0}/s); statuses {statuses:?}; {patched} patched; {} findings",
        cases as f64 / elapsed.as_secs_f64().max(1e-9),
        failures.len()
    );
    let mut errors: Vec<_> = errors.into_iter().collect();
    errors.sort_by_key(|entry| std::cmp::Reverse(entry.1));
    for (reason, count) in errors.iter().take(8) {
        eprintln!("fuzz: 500 x{count}: {reason}");
    }
    assert!(failures.is_empty(), "findings:\n{}", failures.join("\n"));
    // The mutations must reach the engine, not only the JSON parser.
    assert!(
        statuses.get(&200).copied().unwrap_or(0) * 4 >= cases,
        "too few cases reached the engine: {statuses:?}"
    );
}
