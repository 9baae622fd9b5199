//! Runs one admission review body through rollguard N times, for profilers
//! that count instructions (callgrind), where wall time on a shared machine
//! is too noisy to compare a change against.
//!
//! ```sh
//! cargo build --release --example profile-answer
//! target/release/examples/profile-answer [BODY] [N] [answer|engine|floor|body]
//! scripts/callgrind_answer.sh          # instructions per review, answer vs floor
//! ```
//!
//! BODY is typical-pod (default), deployment or pod-N; the work is
//! `admission::answer(Route::Mutate)` (default), `policy::evaluate` alone, or
//! the floor (parse the JSON, answer allowed with the uid); `body` prints the
//! body once, for `scripts/callgrind_server.sh`.

use std::hint::black_box;
use std::process::ExitCode;

use rollguard::admission::{self, PolicyConfig, Route};
use rollguard::policy::{self, EvalRequest, Mode, Stage};
use rollguard::workload::WorkloadKind;

/// As the rollguard binary (src/main.rs): the answer and the floor
/// counted here allocate as the server does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../benches/support/bodies.rs"]
mod bodies;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let name = args.first().map_or("typical-pod", String::as_str);
    let iterations: u64 = match args.get(1).map(|n| n.parse()) {
        None => 1000,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            eprintln!("usage: profile-answer [BODY] [N] [answer|engine|floor]");
            return ExitCode::from(2);
        }
    };
    let work = args.get(2).map_or("answer", String::as_str);
    let Some(body) = bodies::by_name(name) else {
        eprintln!("unknown body {name:?}: typical-pod, deployment or pod-N");
        return ExitCode::from(2);
    };
    let config = PolicyConfig::default();
    let kind = if body.kind == "Pod" {
        WorkloadKind::Pod
    } else {
        WorkloadKind::Deployment
    };
    let object = body.object();
    let request = EvalRequest {
        kind,
        object: &object,
        stage: Stage::Mutate,
        mode: Mode::Enforce,
    };
    if work == "body" {
        // The body itself, for a load tool outside this repository (wrk).
        use std::io::Write as _;
        return match std::io::stdout().write_all(&body.bytes) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("cannot write the body: {err}");
                ExitCode::FAILURE
            }
        };
    }
    let mut bytes_out = 0usize;
    for _ in 0..iterations {
        bytes_out += match work {
            "answer" => black_box(admission::answer(
                Route::Mutate,
                black_box(&body.bytes),
                &config,
            ))
            .body
            .len(),
            "engine" => black_box(policy::evaluate(black_box(&request), &config.settings))
                .map_or(0, |v| v.patch.0.len()),
            "floor" => black_box(bodies::floor_answer(black_box(&body.bytes)))
                .map_or(0, |answer| answer.len()),
            other => {
                eprintln!("unknown work {other:?}: answer, engine, floor or body");
                return ExitCode::from(2);
            }
        };
    }
    println!(
        "{work} on {} ({} bytes) x {iterations}: {bytes_out} bytes out",
        body.name,
        body.bytes.len()
    );
    ExitCode::SUCCESS
}
