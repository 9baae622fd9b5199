//! The compiled `rollguard` binary: one-shot commands, and a running server
//! whose stderr is read line by line.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::http::wait_ready;
use super::WAIT_BOUND;

/// The binary, run as in production but isolated: the allocator settings
/// the image and the shipped Deployment set, and no cluster to find
/// (`--prestop-handler auto`, the default, must find none: tests never send
/// traffic beyond 127.0.0.1).
pub fn command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rollguard"));
    command
        .envs(rollguard::ALLOCATOR_ENV)
        .env("KUBECONFIG", "/nonexistent/rollguard-test-kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT");
    command
}

/// Runs the binary to completion with `args`, from the package root.
pub fn output(args: &[&str]) -> std::process::Output {
    command()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .expect("run rollguard")
}

/// The binary, its stderr lines as they come, and a kill on drop so a failed
/// test never leaves it running.
pub struct Binary {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

/// `serve` on loopback ports picked by the system, with the native preStop
/// sleep (no kube-apiserver version to detect).
pub const LOOPBACK_SERVE: [&str; 7] = [
    "serve",
    "--listen",
    "127.0.0.1:0",
    "--ops-listen",
    "127.0.0.1:0",
    "--prestop-handler",
    "sleep",
];

impl Binary {
    pub fn start(args: &[&str]) -> Binary {
        let mut child = command()
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start rollguard");
        let stderr = child.stderr.take().expect("stderr");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Binary {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Starts `serve` on loopback ports with `extra` flags and waits until
    /// it is ready: (https, ops).
    pub async fn serve(extra: &[&str]) -> (Binary, SocketAddr, SocketAddr) {
        let mut args = LOOPBACK_SERVE.to_vec();
        args.extend_from_slice(extra);
        let mut binary = Binary::start(&args);
        let https = binary.address_after("listening on https://");
        let ops = binary.address_after("ops on http://");
        wait_ready(ops).await;
        (binary, https, ops)
    }

    /// The first line (seen or upcoming) for which `find` returns something.
    pub fn wait_for<T>(&mut self, what: &str, find: impl Fn(&str) -> Option<T>) -> T {
        if let Some(found) = self.seen.iter().find_map(|line| find(line)) {
            return found;
        }
        let deadline = Instant::now() + WAIT_BOUND;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = find(&line);
                    self.seen.push(line);
                    if let Some(found) = found {
                        return found;
                    }
                }
                Err(_) => panic!(
                    "no log line with {what}; log so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Everything logged until the process closed stderr.
    pub fn rest_of_log(&mut self) -> String {
        let deadline = Instant::now() + WAIT_BOUND;
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }

    /// The address logged right after `marker`.
    pub fn address_after(&mut self, marker: &str) -> SocketAddr {
        self.wait_for(marker, |line| {
            let start = line.find(marker)? + marker.len();
            let rest = &line[start..];
            let end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
                .unwrap_or(rest.len());
            rest[..end].parse().ok()
        })
    }

    /// Sends SIGTERM, as the kubelet does.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits for the exit, blocking the thread.
    pub fn wait_exit(&mut self, bound: Duration) -> ExitStatus {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "rollguard did not exit in time");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the exit, letting the runtime's other tasks run.
    pub async fn wait_exit_async(&mut self, bound: Duration) -> ExitStatus {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "rollguard did not exit in time");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts the binary with `args` and waits for it to exit on its own: exit
/// code and log.
pub fn run_to_exit(args: &[&str]) -> (Option<i32>, String) {
    let mut binary = Binary::start(args);
    let status = binary.wait_exit(WAIT_BOUND);
    (status.code(), binary.rest_of_log())
}

/// Peak resident memory of a process, from /proc (Linux).
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// The shipped Deployment's memory limit (manifests/base/deployment.yaml).
pub const SHIPPED_MEMORY_LIMIT_MIB: u64 = 64;
