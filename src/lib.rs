//! rollguard: a Kubernetes admission webhook that makes rolling upgrades safe.
#![forbid(unsafe_code)]

/// The allocator of every binary that links rollguard: the server, `check`,
/// the tests and the benchmarks (so the floor webhook they compare against
/// allocates the same way). A review allocates for every JSON node; glibc's
/// malloc and free were close to half of its instructions
/// (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod admission;
pub mod annotations;
pub mod catalog;
pub mod certs;
pub mod check;
pub mod cli;
pub mod cluster_version;
pub mod config;
pub mod duration;
pub mod k8s_semantics;
pub mod metrics;
pub mod patch;
pub mod policy;
pub mod pruned;
pub mod reload;
pub mod rollout;
pub mod rules;
pub mod server;
pub mod settings;
pub mod telemetry;
pub mod tls;
pub mod workload;
