//! rollguard: a Kubernetes admission webhook that makes rolling upgrades safe.
#![forbid(unsafe_code)]

/// mimalloc's settings (the binary's allocator, src/main.rs) for a process
/// with a memory limit, read from the environment when it starts (the image
/// and the shipped Deployment set them). By default it keeps memory freed
/// after a large review, per thread: a few large reviews on different
/// threads raised resident memory to 80 MB and kept it there, over the
/// shipped 64Mi limit. With these it returns to ~15 MB at no measured cost in
/// throughput (docs/operations.md).
pub const ALLOCATOR_ENV: [(&str, &str); 2] = [
    ("MIMALLOC_PURGE_DELAY", "0"),
    ("MIMALLOC_ARENA_EAGER_COMMIT", "0"),
];

pub mod admission;
pub(crate) mod annotations;
pub(crate) mod body_limit;
pub mod catalog;
pub(crate) mod certs;
pub mod check;
pub mod cli;
pub mod cluster_version;
pub mod config;
pub(crate) mod connections;
pub(crate) mod duration;
pub(crate) mod evaluation_pool;
pub(crate) mod k8s_semantics;
pub(crate) mod label;
pub mod metrics;
pub(crate) mod outcome;
pub mod patch;
pub mod policy;
pub(crate) mod reload;
pub mod rollout;
pub mod rules;
pub mod server;
pub mod settings;
pub(crate) mod strict_json;
pub mod telemetry;
pub mod tls;
pub mod workload;
