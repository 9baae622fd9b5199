//! The admission path against its floor.
//!
//! `cargo bench --bench admission` runs, for every body of
//! `benches/support/bodies.rs` (a typical 3-container Pod, the captured
//! Deployment, Pods with 1, 10, 50 and 100 containers):
//!
//! - `engine/mutate/*`, `engine/validate/*`: `policy::evaluate` alone, on the
//!   already-decoded object (validate judges the mutated object, as the
//!   validating webhook receives it);
//! - `answer/mutate/*`: the full review, `admission::answer(Route::Mutate)`:
//!   decode, evaluate, patch, encode;
//! - `floor/*`: the least work any webhook does with the same body: parse the
//!   JSON, answer allowed with the uid.
//!
//! Then, unless a filter is given, it prints a table of the same four
//! measured again in alternating rounds (medians), with the ratio of the full
//! path to the floor, and writes it as CSV to `target/perf/admission-scaling.csv`
//! (`scripts/plot_scaling.py` plots it). Nothing here asserts a time.

use std::hint::black_box;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use rollguard::admission::{self, PolicyConfig, Route};
use rollguard::policy::{self, EvalRequest, Mode, Stage};
use rollguard::workload::WorkloadKind;
use serde_json::Value;

/// As the rollguard binary (src/main.rs): rollguard and the floor measured
/// here allocate as the server does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "support/bodies.rs"]
mod bodies;

use bodies::Body;

/// The target of the issue for the typical Pod's full review path.
const TYPICAL_POD_TARGET_US: f64 = 30.0;
/// Alternating rounds of the ratio table, and the length of one batch.
const TABLE_ROUNDS: usize = 7;
const TABLE_BATCH: Duration = Duration::from_millis(40);

fn kind_of(body: &Body) -> WorkloadKind {
    match body.kind {
        "Pod" => WorkloadKind::Pod,
        "Deployment" => WorkloadKind::Deployment,
        other => panic!("no benchmark body of kind {other}"),
    }
}

/// One body with everything its benchmarks need, prepared once.
struct Prepared {
    body: Body,
    kind: WorkloadKind,
    object: Value,
    /// The object after mutation: what the validating webhook is sent.
    mutated: Value,
    outcome: &'static str,
}

impl Prepared {
    fn new(body: Body, config: &PolicyConfig) -> Prepared {
        let kind = kind_of(&body);
        let object = body.object();
        let mutated = policy::evaluate(&eval(kind, &object, Stage::Mutate), &config.settings)
            .unwrap_or_else(|err| panic!("{}: the engine failed: {err}", body.name))
            .admitted;
        let reply = admission::answer(Route::Mutate, &body.bytes, config);
        assert_eq!(
            reply.status,
            200,
            "{}: {}",
            body.name,
            String::from_utf8_lossy(&reply.body)
        );
        bodies::floor_answer(&body.bytes).expect("the floor answers every body");
        Prepared {
            kind,
            object,
            mutated,
            outcome: reply.log.outcome.label(),
            body,
        }
    }

    fn engine_mutate(&self, config: &PolicyConfig) {
        let request = eval(self.kind, &self.object, Stage::Mutate);
        black_box(policy::evaluate(black_box(&request), &config.settings).ok());
    }

    fn engine_validate(&self, config: &PolicyConfig) {
        let request = eval(self.kind, &self.mutated, Stage::Validate);
        black_box(policy::evaluate(black_box(&request), &config.settings).ok());
    }

    fn answer(&self, config: &PolicyConfig) {
        black_box(admission::answer(
            Route::Mutate,
            black_box(&self.body.bytes),
            config,
        ));
    }

    fn floor(&self) {
        black_box(bodies::floor_answer(black_box(&self.body.bytes)).ok());
    }
}

fn eval(kind: WorkloadKind, object: &Value, stage: Stage) -> EvalRequest<'_> {
    EvalRequest {
        kind,
        object,
        stage,
        mode: Mode::Enforce,
    }
}

fn criterion_benches(c: &mut Criterion, prepared: &[Prepared], config: &PolicyConfig) {
    let mut engine = c.benchmark_group("engine");
    for p in prepared {
        engine.throughput(Throughput::Bytes(p.body.bytes.len() as u64));
        engine.bench_function(BenchmarkId::new("mutate", &p.body.name), |b| {
            b.iter(|| p.engine_mutate(config))
        });
        engine.bench_function(BenchmarkId::new("validate", &p.body.name), |b| {
            b.iter(|| p.engine_validate(config))
        });
    }
    engine.finish();

    let mut answer = c.benchmark_group("answer");
    for p in prepared {
        answer.throughput(Throughput::Bytes(p.body.bytes.len() as u64));
        answer.bench_function(BenchmarkId::new("mutate", &p.body.name), |b| {
            b.iter(|| p.answer(config))
        });
    }
    answer.finish();

    let mut floor = c.benchmark_group("floor");
    for p in prepared {
        floor.throughput(Throughput::Bytes(p.body.bytes.len() as u64));
        floor.bench_function(&p.body.name, |b| b.iter(|| p.floor()));
    }
    floor.finish();
}

// ------------------------------------------------------------------ ratio table

/// Nanoseconds per call of `f`, over a batch of about `TABLE_BATCH`.
fn per_call_ns(iterations: u64, mut f: impl FnMut()) -> f64 {
    let started = Instant::now();
    for _ in 0..iterations {
        f();
    }
    started.elapsed().as_nanos() as f64 / iterations as f64
}

fn iterations_for(mut f: impl FnMut()) -> u64 {
    // Warm up and size the batch from the warm figure.
    let mut once = per_call_ns(1, &mut f);
    for _ in 0..3 {
        once = once.min(per_call_ns(1, &mut f));
    }
    let wanted = TABLE_BATCH.as_nanos() as f64 / once.max(1.0);
    (wanted as u64).clamp(1, 1_000_000)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

struct Row<'a> {
    prepared: &'a Prepared,
    floor_us: f64,
    mutate_us: f64,
    validate_us: f64,
    answer_us: f64,
    /// Median over rounds of (answer / floor) measured back to back.
    ratio: f64,
}

fn measure_row<'a>(p: &'a Prepared, config: &PolicyConfig) -> Row<'a> {
    let floor_n = iterations_for(|| p.floor());
    let mutate_n = iterations_for(|| p.engine_mutate(config));
    let validate_n = iterations_for(|| p.engine_validate(config));
    let answer_n = iterations_for(|| p.answer(config));
    let (mut floor, mut mutate, mut validate, mut answer, mut ratio) =
        (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..TABLE_ROUNDS {
        let f = per_call_ns(floor_n, || p.floor());
        let a = per_call_ns(answer_n, || p.answer(config));
        mutate.push(per_call_ns(mutate_n, || p.engine_mutate(config)));
        validate.push(per_call_ns(validate_n, || p.engine_validate(config)));
        floor.push(f);
        answer.push(a);
        ratio.push(a / f);
    }
    Row {
        prepared: p,
        floor_us: median(&mut floor) / 1e3,
        mutate_us: median(&mut mutate) / 1e3,
        validate_us: median(&mut validate) / 1e3,
        answer_us: median(&mut answer) / 1e3,
        ratio: median(&mut ratio),
    }
}

fn csv_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("perf").join("admission-scaling.csv")
}

fn write_csv(rows: &[Row<'_>]) -> std::io::Result<PathBuf> {
    let path = csv_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
    writeln!(
        out,
        "body,kind,containers,bytes,floor_us,engine_mutate_us,engine_validate_us,answer_us,answer_over_floor,outcome"
    )?;
    for r in rows {
        let b = &r.prepared.body;
        writeln!(
            out,
            "{},{},{},{},{:.3},{:.3},{:.3},{:.3},{:.3},{}",
            b.name,
            b.kind,
            b.containers,
            b.bytes.len(),
            r.floor_us,
            r.mutate_us,
            r.validate_us,
            r.answer_us,
            r.ratio,
            r.prepared.outcome
        )?;
    }
    out.flush()?;
    Ok(path)
}

fn ratio_table(prepared: &[Prepared], config: &PolicyConfig) {
    println!();
    println!(
        "rollguard admission path vs floor: medians of {TABLE_ROUNDS} alternating rounds of ~{} ms batches",
        TABLE_BATCH.as_millis()
    );
    println!("  floor  = serde_json::from_slice::<Value> + allowed response with the uid");
    println!("  engine = policy::evaluate on the decoded object (mutate; validate on the mutated object)");
    println!("  answer = admission::answer(Route::Mutate): decode, evaluate, patch, encode");
    println!();
    println!(
        "{:<12} {:>7} {:>5} {:>9} {:>10} {:>10} {:>10} {:>7} {:>9}  outcome",
        "body",
        "bytes",
        "ctrs",
        "floor µs",
        "mutate µs",
        "valid. µs",
        "answer µs",
        "ns/B",
        "ans/floor"
    );
    let rows: Vec<Row<'_>> = prepared.iter().map(|p| measure_row(p, config)).collect();
    for r in &rows {
        let b = &r.prepared.body;
        println!(
            "{:<12} {:>7} {:>5} {:>9.1} {:>10.1} {:>10.1} {:>10.1} {:>7.2} {:>8.2}x  {}",
            b.name,
            b.bytes.len(),
            b.containers,
            r.floor_us,
            r.mutate_us,
            r.validate_us,
            r.answer_us,
            r.answer_us * 1e3 / b.bytes.len() as f64,
            r.ratio,
            r.prepared.outcome
        );
    }
    if let Some(typical) = rows.iter().find(|r| r.prepared.body.name == "typical-pod") {
        let verdict = if typical.answer_us <= TYPICAL_POD_TARGET_US {
            "met"
        } else {
            "MISSED"
        };
        println!();
        println!(
            "target: full review path of the typical Pod <= {TYPICAL_POD_TARGET_US} µs: {:.1} µs ({verdict}); {:.2}x the floor",
            typical.answer_us, typical.ratio
        );
    }
    match write_csv(&rows) {
        Ok(path) => println!("wrote {}", path.display()),
        Err(err) => eprintln!("cannot write {}: {err}", csv_path().display()),
    }
}

/// The table runs under `cargo bench` (which passes `--bench`) when no
/// filter narrows the run; `ROLLGUARD_BENCH_TABLE=0` turns it off.
fn table_wanted(args: &[String]) -> bool {
    const TAKES_VALUE: &[&str] = &[
        "--save-baseline",
        "-s",
        "--baseline",
        "-b",
        "--baseline-lenient",
        "--load-baseline",
        "--sample-size",
        "--warm-up-time",
        "--measurement-time",
        "--nresamples",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--plotting-backend",
        "--output-format",
        "--format",
        "--color",
        "-c",
    ];
    if std::env::var("ROLLGUARD_BENCH_TABLE").as_deref() == Ok("0") {
        return false;
    }
    if !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--list") {
        return false;
    }
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        if arg == "--profile-time" || !arg.starts_with('-') {
            return false;
        }
        if TAKES_VALUE.contains(&arg.as_str()) {
            rest.next();
        }
    }
    true
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let config = PolicyConfig::default();
    let prepared: Vec<Prepared> = bodies::all()
        .into_iter()
        .map(|body| Prepared::new(body, &config))
        .collect();

    // 24 benchmarks of 3 s each: the whole run stays near two minutes. 40
    // samples fit the 100-container Pod's ~1.5 ms review in 2 s.
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(40)
        .configure_from_args();
    criterion_benches(&mut criterion, &prepared, &config);
    criterion.final_summary();

    if table_wanted(&args) {
        ratio_table(&prepared, &config);
    }
}
