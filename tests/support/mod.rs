//! What the integration tests share: temporary directories, TLS and HTTP
//! clients of the webhook, the in-process server, the compiled binary, the
//! fixtures, loopback helpers. Each test binary uses only part of it.
#![allow(dead_code)]

use std::time::Duration;

pub mod audit;
pub mod binary;
pub mod fixtures;
pub mod http;
pub mod json;
pub mod net;
pub mod server;
pub mod temp;
pub mod tls;

/// Upper bound for one wait inside a test (a port, a line, an exit, a
/// counter): it stops a hung test, it does not measure anything.
pub const WAIT_BOUND: Duration = Duration::from_secs(10);
