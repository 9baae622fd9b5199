//! rollguard: a Kubernetes admission webhook that makes rolling upgrades safe.
#![forbid(unsafe_code)]

pub mod admission;
pub mod config;
pub mod duration;
pub mod rules;
pub mod settings;
