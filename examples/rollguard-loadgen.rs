//! rollguard-loadgen: rollguard's HTTPS admission server against a *floor*
//! server under the same load, in one run.
//!
//! ```sh
//! cargo run --release --example rollguard-loadgen            # 5 rounds × 3 s, 8 then 1 connection
//! cargo run --release --example rollguard-loadgen -- --help
//! ```
//!
//! Both servers run as child processes of this binary (`--serve floor|rollguard`),
//! so each has its own peak RSS, and both use rollguard's own TLS set-up
//! (`tls::self_signed`, `tls::server_config`) and accept loop
//! (`server::serve_tls`; rollguard through `server::run`, with its ops
//! server, metrics and one JSON log line per review, as deployed). The floor
//! does only what any admission webhook must: read the body, parse the JSON,
//! answer allowed with the uid (an axum router with one POST route).
//!
//! Load: N HTTP/1.1 keep-alive connections over TLS on 127.0.0.1 (TCP_NODELAY),
//! each sending requests back to back, after a warm-up; a round ends after
//! `--duration` or `--max-requests`, whichever comes first. Rounds alternate
//! floor, rollguard, floor, rollguard, ...; each round gets fresh servers.
//! Ratios are rollguard / floor within a round, then the median over rounds.
//! Figures are printed and written as CSV; nothing is asserted.

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use axum::body::Bytes;
use axum::routing::post;
use axum::Router;
use clap::{Parser, ValueEnum};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1;
use hyper::{header, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

use rollguard::admission::PolicyConfig;
use rollguard::metrics::Metrics;
use rollguard::server::{self, AppState, RunOptions, Timeouts};
use rollguard::telemetry::{self, LogFormat};
use rollguard::tls;

/// As the rollguard binary (src/main.rs): both servers, floor and
/// rollguard, allocate as the deployed server does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../benches/support/bodies.rs"]
mod bodies;

/// Targets of the issue, reported against (never asserted).
const TARGET_THROUGHPUT_RATIO: f64 = 0.8;
const TARGET_P99_RATIO: f64 = 1.5;
const TARGET_P50_RATIO_1_CONN: f64 = 1.3;
const TARGET_PEAK_RSS_MIB: f64 = 30.0;
const TARGET_READY_MS: f64 = 50.0;

/// Bound on one request, on a server's start-up and on its exit.
const REQUEST_BOUND: Duration = Duration::from_secs(5);
const START_BOUND: Duration = Duration::from_secs(10);
const EXIT_BOUND: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ServerKind {
    Floor,
    Rollguard,
}

impl ServerKind {
    fn name(self) -> &'static str {
        match self {
            ServerKind::Floor => "floor",
            ServerKind::Rollguard => "rollguard",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ServerLog {
    /// One JSON line per review on stderr, as the manifests deploy rollguard.
    Json,
    /// No log subscriber.
    Off,
}

#[derive(Debug, Parser)]
#[command(
    name = "rollguard-loadgen",
    about = "rollguard's admission server against a floor webhook under the same HTTPS load"
)]
struct Args {
    /// Rounds per connection count; each round runs the floor, then rollguard.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,

    /// Measured time per server per round, in seconds.
    #[arg(long, default_value = "3", value_parser = seconds)]
    duration: Duration,

    /// Unmeasured warm-up per server per round, in seconds.
    #[arg(long, default_value = "0.5", value_parser = seconds)]
    warmup: Duration,

    /// Most requests measured per server per round (the round ends at this
    /// count or after --duration, whichever comes first).
    #[arg(long, default_value_t = 2_000_000)]
    max_requests: u64,

    /// Connection counts to run, in order.
    #[arg(long, value_delimiter = ',', default_value = "8,1")]
    connections: Vec<usize>,

    /// Request body: typical-pod, deployment or pod-N (N containers).
    #[arg(long, default_value = "typical-pod")]
    body: String,

    /// Admission route the load is sent to (rollguard: /mutate, /validate, /audit).
    #[arg(long, default_value = "/mutate")]
    route: String,

    /// Worker threads of the load generator (1: a current-thread runtime).
    #[arg(long, default_value_t = 1)]
    client_threads: usize,

    /// rollguard's request log during the load.
    #[arg(long, value_enum, default_value_t = ServerLog::Json)]
    server_log: ServerLog,

    /// Where the servers' stderr goes (default: discarded).
    #[arg(long, value_name = "FILE")]
    server_stderr: Option<PathBuf>,

    /// The rollguard binary whose start-up is also timed (`rollguard serve
    /// --self-signed` to `/readyz` 200); default: `rollguard` in the parent
    /// directory of this example's, when it exists.
    #[arg(long, value_name = "FILE")]
    rollguard_bin: Option<PathBuf>,

    /// How many times the rollguard binary is started to time its start-up.
    #[arg(long, default_value_t = 5)]
    binary_starts: u32,

    /// CSV of every round (default: target/perf/loadgen.csv).
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,

    /// Internal: run one server in this process (used by the parent).
    #[arg(long, value_enum, hide = true)]
    serve: Option<ServerKind>,

    /// Internal: where a served child writes its ports and certificate.
    #[arg(long, hide = true)]
    port_file: Option<PathBuf>,
}

fn seconds(text: &str) -> Result<Duration, String> {
    let value: f64 = text
        .trim_end_matches('s')
        .parse()
        .map_err(|_| format!("expected seconds, e.g. 3 or 0.5, got {text:?}"))?;
    if !(0.0..=3600.0).contains(&value) {
        return Err(format!("{value} s is out of range (0..=3600)"));
    }
    Ok(Duration::from_secs_f64(value))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match (args.serve, &args.port_file) {
        (Some(kind), Some(port_file)) => serve_child(kind, port_file, &args),
        (Some(_), None) => Err(anyhow!("--serve needs --port-file")),
        (None, _) => run_benchmark(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("rollguard-loadgen: {err:#}");
            ExitCode::FAILURE
        }
    }
}

// ====================================================================== servers

/// What a child tells its parent once it listens.
#[derive(Debug, Clone)]
struct Listening {
    https: SocketAddr,
    ops: Option<SocketAddr>,
    cert_pem: String,
}

impl Listening {
    fn to_json(&self) -> Value {
        json!({
            "https": self.https.to_string(),
            "ops": self.ops.map(|a| a.to_string()),
            "certPem": self.cert_pem,
        })
    }

    fn from_json(value: &Value) -> Option<Listening> {
        Some(Listening {
            https: value["https"].as_str()?.parse().ok()?,
            ops: value["ops"].as_str().and_then(|a| a.parse().ok()),
            cert_pem: value["certPem"].as_str()?.to_string(),
        })
    }
}

/// Child mode: one server, the same way `rollguard serve --self-signed`
/// builds it, until stdin closes.
fn serve_child(kind: ServerKind, port_file: &Path, args: &Args) -> anyhow::Result<()> {
    if kind == ServerKind::Rollguard && args.server_log == ServerLog::Json {
        telemetry::init(LogFormat::Json)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        let generated = tls::self_signed()?;
        let tls_config = tls::server_config(tls::CertResolver::new(generated.certified_key))?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let https = listener.local_addr()?;
        let timeouts = Timeouts {
            shutdown_delay: Duration::ZERO,
            drain: Duration::from_secs(1),
            ..Timeouts::default()
        };
        match kind {
            ServerKind::Floor => {
                let listening = Listening {
                    https,
                    ops: None,
                    cert_pem: generated.cert_pem,
                };
                write_port_file(port_file, &listening)?;
                server::serve_tls(
                    listener,
                    tls_config,
                    floor_app(&args.route),
                    Arc::new(Metrics::new()),
                    timeouts,
                    stdin_closed(),
                )
                .await;
            }
            ServerKind::Rollguard => {
                let ops_listener = TcpListener::bind("127.0.0.1:0").await?;
                let listening = Listening {
                    https,
                    ops: Some(ops_listener.local_addr()?),
                    cert_pem: generated.cert_pem,
                };
                write_port_file(port_file, &listening)?;
                let options = RunOptions {
                    tls_config,
                    state: AppState::new(PolicyConfig::default()),
                    timeouts,
                };
                server::run(listener, ops_listener, options, stdin_closed()).await?;
            }
        }
        anyhow::Ok(())
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// The floor webhook: one POST route that parses the review and allows it.
fn floor_app(route: &str) -> Router {
    Router::new().route(
        route,
        post(|body: Bytes| async move {
            match bodies::floor_answer(&body) {
                Ok(answer) => (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    answer,
                ),
                Err(message) => (
                    StatusCode::BAD_REQUEST,
                    [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                    message.into_bytes(),
                ),
            }
        }),
    )
}

/// Written whole, then renamed, so the parent never reads half a file.
fn write_port_file(path: &Path, listening: &Listening) -> anyhow::Result<()> {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, listening.to_json().to_string())?;
    std::fs::rename(&partial, path)?;
    Ok(())
}

/// Completes when stdin reaches end of file: the parent closed it or died.
async fn stdin_closed() {
    let (closed, on_closed) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
        let _ = closed.send(());
    });
    let _ = on_closed.await;
}

/// A server child process, started and checked.
struct ChildServer {
    kind: ServerKind,
    child: Child,
    listening: Listening,
    /// Spawn to `/readyz` answering 200 (rollguard only).
    ready_after: Option<Duration>,
    /// Spawn to the first review answered over a fresh TLS connection.
    first_review_after: Duration,
}

fn spawn_server(
    kind: ServerKind,
    args: &Args,
    sequence: usize,
    runtime: &tokio::runtime::Runtime,
    probe: &Probe,
) -> anyhow::Result<ChildServer> {
    let port_file = std::env::temp_dir().join(format!(
        "rollguard-loadgen-{}-{sequence}.json",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&port_file);
    let stderr = match &args.server_stderr {
        Some(path) => Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open {}", path.display()))?,
        ),
        None => Stdio::null(),
    };
    let exe = std::env::current_exe().context("cannot find the loadgen binary")?;
    let server_log = match args.server_log {
        ServerLog::Json => "json",
        ServerLog::Off => "off",
    };
    let spawned = Instant::now();
    let mut child = Command::new(exe)
        .args(["--serve", kind.name(), "--port-file"])
        .arg(&port_file)
        .args(["--route", &args.route, "--server-log", server_log])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .context("cannot start a server child process")?;
    let started = wait_until_serving(&mut child, &port_file, spawned, runtime, probe);
    let _ = std::fs::remove_file(&port_file);
    match started {
        Ok((listening, ready_after, first_review_after)) => Ok(ChildServer {
            kind,
            child,
            listening,
            ready_after,
            first_review_after,
        }),
        Err(err) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(err.context(format!("the {} server did not start", kind.name())))
        }
    }
}

type Started = (Listening, Option<Duration>, Duration);

fn wait_until_serving(
    child: &mut Child,
    port_file: &Path,
    spawned: Instant,
    runtime: &tokio::runtime::Runtime,
    probe: &Probe,
) -> anyhow::Result<Started> {
    let poll = Duration::from_micros(200);
    let listening = loop {
        if let Ok(text) = std::fs::read_to_string(port_file) {
            let value: Value = serde_json::from_str(&text).context("unreadable port file")?;
            break Listening::from_json(&value).context("incomplete port file")?;
        }
        check_alive(child, spawned)?;
        std::thread::sleep(poll);
    };
    let ready_after = match listening.ops {
        Some(ops) => loop {
            if readyz_ok(ops) {
                break Some(spawned.elapsed());
            }
            check_alive(child, spawned)?;
            std::thread::sleep(poll);
        },
        None => None,
    };
    let first_review_after = runtime.block_on(async {
        loop {
            match probe.once(&listening).await {
                Ok(()) => break Ok(spawned.elapsed()),
                Err(err) if spawned.elapsed() > START_BOUND => break Err(err),
                Err(_) => tokio::time::sleep(poll).await,
            }
        }
    })?;
    Ok((listening, ready_after, first_review_after))
}

fn check_alive(child: &mut Child, spawned: Instant) -> anyhow::Result<()> {
    if let Some(status) = child.try_wait()? {
        bail!("it exited with {status} (see --server-stderr FILE)");
    }
    if spawned.elapsed() > START_BOUND {
        bail!("not listening after {START_BOUND:?}");
    }
    Ok(())
}

/// `GET path` on the plain-HTTP ops port: the whole answer, status line first.
fn ops_get(ops: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = StdTcpStream::connect_timeout(&ops, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(1)))?;
    stream.set_nodelay(true)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

/// `GET /readyz`; true on 200.
fn readyz_ok(ops: SocketAddr) -> bool {
    ops_get(ops, "/readyz").is_ok_and(|answer| answer.starts_with("HTTP/1.1 200"))
}

/// Mean time rollguard spent in the review itself (decode, evaluate, patch,
/// encode), from its own histogram on `/metrics`, warm-up included.
fn server_review_mean_us(ops: SocketAddr, route: &str) -> Option<f64> {
    let metrics = ops_get(ops, "/metrics").ok()?;
    let label = format!("{{route=\"{}\"}}", route.trim_start_matches('/'));
    let value = |name: &str| {
        let prefix = format!("rollguard_admission_duration_seconds_{name}{label} ");
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(prefix.as_str()))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    let (sum, count) = (value("sum")?, value("count")?);
    (count > 0.0).then(|| sum / count * 1e6)
}

impl ChildServer {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Closes the child's stdin (it shuts down) and waits for it, killing it
    /// after `EXIT_BOUND`.
    fn stop(mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + EXIT_BOUND;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        eprintln!(
            "rollguard-loadgen: the {} server (pid {}) did not exit; killing it",
            self.kind.name(),
            self.pid()
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `VmHWM` (peak) and `VmRSS` (now) of a process, in KiB.
fn memory_kib(pid: u32) -> (Option<u64>, Option<u64>) {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return (None, None);
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    };
    (field("VmHWM:"), field("VmRSS:"))
}

// ====================================================================== client

/// A TLS + HTTP/1.1 client for one server: its certificate is the only
/// trust anchor, ALPN offers only http/1.1, as the kube-apiserver does for
/// service webhooks.
struct Client {
    connector: TlsConnector,
    addr: SocketAddr,
}

type Sender = http1::SendRequest<Full<Bytes>>;

impl Client {
    fn new(listening: &Listening) -> anyhow::Result<Client> {
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(
            listening.cert_pem.as_bytes(),
        )?)?;
        let mut config = ClientConfig::builder_with_provider(tls::provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Client {
            connector: TlsConnector::from(Arc::new(config)),
            addr: listening.https,
        })
    }

    async fn connect(&self) -> anyhow::Result<Sender> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::IpAddress(self.addr.ip().into());
        let tls = self.connector.connect(name, tcp).await?;
        let (sender, connection) = http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }
}

/// What every request carries.
#[derive(Clone)]
struct Probe {
    route: String,
    body: Bytes,
    /// The review's uid, which every answer must echo.
    uid: String,
}

impl Probe {
    fn request(&self) -> Request<Full<Bytes>> {
        Request::builder()
            .method(Method::POST)
            .uri(self.route.as_str())
            .header(header::HOST, "127.0.0.1")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(self.body.clone()))
            .expect("a valid request")
    }

    /// One review on a new connection; checks the answer is an
    /// AdmissionReview for this uid.
    async fn once(&self, listening: &Listening) -> anyhow::Result<()> {
        let client = Client::new(listening)?;
        let mut sender = tokio::time::timeout(REQUEST_BOUND, client.connect()).await??;
        let (status, body) = tokio::time::timeout(REQUEST_BOUND, send(&mut sender, self)).await??;
        let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if status != StatusCode::OK || answer["response"]["uid"] != self.uid.as_str() {
            bail!(
                "unexpected answer {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        Ok(())
    }
}

async fn send(sender: &mut Sender, probe: &Probe) -> anyhow::Result<(StatusCode, Bytes)> {
    sender.ready().await?;
    let response = sender.send_request(probe.request()).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// One connection's share of a round.
#[derive(Default)]
struct ConnectionResult {
    latencies_ns: Vec<u64>,
    errors: u64,
    last_completion: Option<Instant>,
}

/// The measured part of a round.
struct Load {
    requests: u64,
    errors: u64,
    elapsed: Duration,
    /// Sorted.
    latencies_ns: Vec<u64>,
}

impl Load {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn percentile_us(&self, p: f64) -> f64 {
        if self.latencies_ns.is_empty() {
            return f64::NAN;
        }
        let rank = (p * self.latencies_ns.len() as f64).ceil() as usize;
        let index = rank.clamp(1, self.latencies_ns.len()) - 1;
        self.latencies_ns[index] as f64 / 1e3
    }
}

/// Opens the connections, warms up, then measures until the duration or the
/// request budget runs out.
async fn drive(
    listening: &Listening,
    probe: &Probe,
    connections: usize,
    args: &Args,
) -> anyhow::Result<Load> {
    let client = Arc::new(Client::new(listening)?);
    let mut senders = Vec::with_capacity(connections);
    for _ in 0..connections {
        senders.push(tokio::time::timeout(REQUEST_BOUND, client.connect()).await??);
    }
    let measure_from = Instant::now() + args.warmup;
    let measure_until = measure_from + args.duration;
    let budget = Arc::new(AtomicU64::new(args.max_requests));
    let mut tasks = tokio::task::JoinSet::new();
    for mut sender in senders {
        let client = client.clone();
        let probe = probe.clone();
        let budget = budget.clone();
        tasks.spawn(async move {
            let mut result = ConnectionResult {
                latencies_ns: Vec::with_capacity(65_536),
                ..ConnectionResult::default()
            };
            loop {
                let started = Instant::now();
                if started >= measure_until {
                    break;
                }
                let measured = started >= measure_from;
                if measured
                    && budget
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                        .is_err()
                {
                    break;
                }
                let outcome = tokio::time::timeout(REQUEST_BOUND, send(&mut sender, &probe)).await;
                let finished = Instant::now();
                let ok = matches!(&outcome, Ok(Ok((status, _))) if *status == StatusCode::OK);
                if measured {
                    if ok {
                        result
                            .latencies_ns
                            .push((finished - started).as_nanos() as u64);
                    } else {
                        result.errors += 1;
                    }
                    result.last_completion = Some(finished);
                }
                if !matches!(outcome, Ok(Ok(_))) {
                    // The connection is unusable: open another.
                    match tokio::time::timeout(REQUEST_BOUND, client.connect()).await {
                        Ok(Ok(fresh)) => sender = fresh,
                        _ => tokio::time::sleep(Duration::from_millis(10)).await,
                    }
                }
            }
            result
        });
    }
    let mut latencies_ns = Vec::new();
    let mut errors = 0;
    let mut last = measure_from;
    while let Some(joined) = tasks.join_next().await {
        let result = joined.context("a load task failed")?;
        latencies_ns.extend(result.latencies_ns);
        errors += result.errors;
        if let Some(at) = result.last_completion {
            last = last.max(at);
        }
    }
    latencies_ns.sort_unstable();
    Ok(Load {
        requests: latencies_ns.len() as u64 + errors,
        errors,
        elapsed: last.saturating_duration_since(measure_from),
        latencies_ns,
    })
}

// ====================================================================== rounds

struct RoundResult {
    kind: ServerKind,
    connections: usize,
    round: u32,
    load: Load,
    peak_rss_kib: Option<u64>,
    rss_kib: Option<u64>,
    ready_after: Option<Duration>,
    first_review_after: Duration,
    /// rollguard only: mean in-server review time from its `/metrics`.
    review_mean_us: Option<f64>,
}

impl RoundResult {
    fn p50(&self) -> f64 {
        self.load.percentile_us(0.50)
    }
    fn p99(&self) -> f64 {
        self.load.percentile_us(0.99)
    }
    fn p999(&self) -> f64 {
        self.load.percentile_us(0.999)
    }
    fn peak_mib(&self) -> f64 {
        self.peak_rss_kib.map_or(f64::NAN, |k| k as f64 / 1024.0)
    }
}

fn run_round(
    kind: ServerKind,
    connections: usize,
    round: u32,
    args: &Args,
    sequence: &mut usize,
    runtime: &tokio::runtime::Runtime,
    probe: &Probe,
) -> anyhow::Result<RoundResult> {
    *sequence += 1;
    let server = spawn_server(kind, args, *sequence, runtime, probe)?;
    let load = runtime.block_on(drive(&server.listening, probe, connections, args));
    let (peak_rss_kib, rss_kib) = memory_kib(server.pid());
    let review_mean_us = server
        .listening
        .ops
        .and_then(|ops| server_review_mean_us(ops, &args.route));
    let ready_after = server.ready_after;
    let first_review_after = server.first_review_after;
    server.stop();
    Ok(RoundResult {
        kind,
        connections,
        round,
        load: load.with_context(|| format!("load on the {} server failed", kind.name()))?,
        peak_rss_kib,
        rss_kib,
        ready_after,
        first_review_after,
        review_mean_us,
    })
}

fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.into_iter().filter(|v| !v.is_nan()).collect();
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn round_line(r: &RoundResult) -> String {
    let mut line = format!(
        "  round {} {:<9} {:>9.0} req/s  p50 {:>7.1} µs  p99 {:>7.1} µs  p99.9 {:>7.1} µs  errors {:>3}  peak RSS {:>5.1} MiB (now {:>5.1})  first review {:>5.1} ms",
        r.round,
        r.kind.name(),
        r.load.rps(),
        r.p50(),
        r.p99(),
        r.p999(),
        r.load.errors,
        r.peak_mib(),
        r.rss_kib.map_or(f64::NAN, |k| k as f64 / 1024.0),
        ms(r.first_review_after),
    );
    if let Some(ready) = r.ready_after {
        let _ = write!(line, "  ready {:>5.1} ms", ms(ready));
    }
    if let Some(review) = r.review_mean_us {
        let _ = write!(line, "  in-server review {review:>5.1} µs");
    }
    line
}

/// Median figures of one server, and of the per-round ratios.
struct Summary {
    rps: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    errors: u64,
    peak_mib: f64,
}

fn summarize<'a>(rounds: impl Iterator<Item = &'a RoundResult> + Clone) -> Summary {
    Summary {
        rps: median(rounds.clone().map(|r| r.load.rps())),
        p50: median(rounds.clone().map(RoundResult::p50)),
        p99: median(rounds.clone().map(RoundResult::p99)),
        p999: median(rounds.clone().map(RoundResult::p999)),
        errors: rounds.clone().map(|r| r.load.errors).sum(),
        peak_mib: rounds.map(RoundResult::peak_mib).fold(f64::NAN, f64::max),
    }
}

struct Ratios {
    rps: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    peak: f64,
}

/// rollguard / floor in each round, then the median over rounds.
fn ratios(results: &[RoundResult], connections: usize) -> (Vec<(u32, Ratios)>, Ratios) {
    let pairs: Vec<(&RoundResult, &RoundResult)> = results
        .iter()
        .filter(|r| r.connections == connections && r.kind == ServerKind::Floor)
        .filter_map(|floor| {
            results
                .iter()
                .find(|r| {
                    r.connections == connections
                        && r.kind == ServerKind::Rollguard
                        && r.round == floor.round
                })
                .map(|rg| (floor, rg))
        })
        .collect();
    let per_round: Vec<(u32, Ratios)> = pairs
        .iter()
        .map(|(f, r)| {
            (
                f.round,
                Ratios {
                    rps: r.load.rps() / f.load.rps(),
                    p50: r.p50() / f.p50(),
                    p99: r.p99() / f.p99(),
                    p999: r.p999() / f.p999(),
                    peak: r.peak_mib() / f.peak_mib(),
                },
            )
        })
        .collect();
    let median_of = |pick: fn(&Ratios) -> f64| median(per_round.iter().map(|(_, r)| pick(r)));
    let medians = Ratios {
        rps: median_of(|r| r.rps),
        p50: median_of(|r| r.p50),
        p99: median_of(|r| r.p99),
        p999: median_of(|r| r.p999),
        peak: median_of(|r| r.peak),
    };
    (per_round, medians)
}

fn csv_path(args: &Args) -> PathBuf {
    args.csv.clone().unwrap_or_else(|| {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
            .join("perf")
            .join("loadgen.csv")
    })
}

fn write_csv(path: &Path, body: &bodies::Body, results: &[RoundResult]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut out = String::from(
        "server,connections,round,body,body_bytes,requests,errors,seconds,rps,p50_us,p99_us,p999_us,peak_rss_kib,rss_kib,ready_ms,first_review_ms,review_mean_us\n",
    );
    for r in results {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{:.3},{:.1},{:.1},{:.1},{:.1},{},{},{},{:.2},{}",
            r.kind.name(),
            r.connections,
            r.round,
            body.name,
            body.bytes.len(),
            r.load.requests,
            r.load.errors,
            r.load.elapsed.as_secs_f64(),
            r.load.rps(),
            r.p50(),
            r.p99(),
            r.p999(),
            r.peak_rss_kib.map_or(String::new(), |k| k.to_string()),
            r.rss_kib.map_or(String::new(), |k| k.to_string()),
            r.ready_after
                .map_or(String::new(), |d| format!("{:.2}", ms(d))),
            ms(r.first_review_after),
            r.review_mean_us
                .map_or(String::new(), |us| format!("{us:.1}")),
        );
    }
    std::fs::write(path, out)
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

fn run_benchmark(args: &Args) -> anyhow::Result<()> {
    if args.connections.is_empty() || args.connections.contains(&0) {
        bail!("--connections needs counts of at least 1");
    }
    if !args.route.starts_with('/') {
        bail!("--route must be a path such as /mutate");
    }
    let body = bodies::by_name(&args.body).with_context(|| {
        format!(
            "unknown --body {:?}: typical-pod, deployment or pod-N",
            args.body
        )
    })?;
    let uid = serde_json::from_slice::<Value>(&body.bytes)?["request"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let probe = Probe {
        route: args.route.clone(),
        body: Bytes::from(body.bytes.clone()),
        uid,
    };
    let runtime = if args.client_threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.client_threads)
            .enable_all()
            .build()?
    };

    println!("rollguard-loadgen: rollguard vs floor webhook, HTTPS (TLS 1.3, HTTP/1.1 keep-alive) on 127.0.0.1");
    println!(
        "  body {} ({} bytes, {} containers) POST {}; {} rounds per connection count, each {:.1} s measured after {:.1} s warm-up (at most {} requests)",
        body.name,
        body.bytes.len(),
        body.containers,
        args.route,
        args.rounds,
        args.duration.as_secs_f64(),
        args.warmup.as_secs_f64(),
        args.max_requests,
    );
    println!(
        "  servers: child processes, multi-thread tokio runtime ({} CPUs); rollguard log: {:?}; client: {} thread(s)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.server_log,
        args.client_threads.max(1),
    );

    let mut results = Vec::new();
    let mut sequence = 0;
    for &connections in &args.connections {
        println!();
        println!("{connections} connection(s):");
        for round in 1..=args.rounds {
            for kind in [ServerKind::Floor, ServerKind::Rollguard] {
                let result = run_round(
                    kind,
                    connections,
                    round,
                    args,
                    &mut sequence,
                    &runtime,
                    &probe,
                )?;
                println!("{}", round_line(&result));
                results.push(result);
            }
        }
        let (per_round, _) = ratios(&results, connections);
        for (round, r) in per_round {
            println!(
                "  round {round} rollguard/floor: req/s {:.2}x  p50 {:.2}x  p99 {:.2}x  p99.9 {:.2}x  peak RSS {:.2}x",
                r.rps, r.p50, r.p99, r.p999, r.peak
            );
        }
    }

    let binary_ready = time_binary_starts(args);
    print_summary(args, &results, &binary_ready);
    let path = csv_path(args);
    match write_csv(&path, &body, &results) {
        Ok(()) => println!("wrote {}", path.display()),
        Err(err) => eprintln!("rollguard-loadgen: cannot write {}: {err}", path.display()),
    }
    Ok(())
}

/// Start-up of the shipped binary, as a Deployment runs it.
struct BinaryReady {
    binary: PathBuf,
    /// Spawn to `/readyz` 200, per start.
    ready_ms: Vec<f64>,
}

fn time_binary_starts(args: &Args) -> Option<BinaryReady> {
    let binary = args.rollguard_bin.clone().or_else(|| {
        let exe = std::env::current_exe().ok()?;
        let sibling = exe.parent()?.parent()?.join("rollguard");
        sibling.is_file().then_some(sibling)
    })?;
    let mut ready_ms = Vec::new();
    for _ in 0..args.binary_starts {
        match time_binary_start(&binary) {
            Ok(ready) => ready_ms.push(ms(ready)),
            Err(err) => {
                eprintln!(
                    "rollguard-loadgen: cannot time {}: {err:#}",
                    binary.display()
                );
                return None;
            }
        }
    }
    Some(BinaryReady { binary, ready_ms })
}

/// A port free right now on 127.0.0.1 (the binary binds it a moment later).
fn free_port() -> std::io::Result<SocketAddr> {
    std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()
}

fn time_binary_start(binary: &Path) -> anyhow::Result<Duration> {
    let (https, ops) = (free_port()?, free_port()?);
    let spawned = Instant::now();
    let mut child = Command::new(binary)
        .args(["--log-format", "json", "serve", "--self-signed", "--listen"])
        .arg(https.to_string())
        .arg("--ops-listen")
        .arg(ops.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let ready = loop {
        if readyz_ok(ops) {
            break Ok(spawned.elapsed());
        }
        if let Err(err) = check_alive(&mut child, spawned) {
            break Err(err);
        }
        std::thread::sleep(Duration::from_micros(200));
    };
    // Only its start-up is measured: no need for a graceful stop.
    let _ = child.kill();
    let _ = child.wait();
    ready
}

fn print_summary(args: &Args, results: &[RoundResult], binary_ready: &Option<BinaryReady>) {
    println!();
    println!(
        "summary: medians over {} rounds; ratio = rollguard / floor in each round, then the median",
        args.rounds
    );
    println!(
        "{:>5} {:<15} {:>10} {:>9} {:>9} {:>9} {:>7} {:>10}",
        "conns", "server", "req/s", "p50 µs", "p99 µs", "p99.9 µs", "errors", "peak MiB"
    );
    for &connections in &args.connections {
        for kind in [ServerKind::Floor, ServerKind::Rollguard] {
            let s = summarize(
                results
                    .iter()
                    .filter(move |r| r.connections == connections && r.kind == kind),
            );
            println!(
                "{:>5} {:<15} {:>10.0} {:>9.1} {:>9.1} {:>9.1} {:>7} {:>10.1}",
                connections,
                kind.name(),
                s.rps,
                s.p50,
                s.p99,
                s.p999,
                s.errors,
                s.peak_mib
            );
        }
        let (_, r) = ratios(results, connections);
        println!(
            "{:>5} {:<15} {:>9.2}x {:>8.2}x {:>8.2}x {:>8.2}x {:>7} {:>9.2}x",
            connections, "rollguard/floor", r.rps, r.p50, r.p99, r.p999, "", r.peak
        );
    }

    let rollguard = || results.iter().filter(|r| r.kind == ServerKind::Rollguard);
    let ready_ms: Vec<f64> = rollguard().filter_map(|r| r.ready_after.map(ms)).collect();
    let ready_median = median(ready_ms.iter().copied());
    let ready_max = ready_ms.iter().copied().fold(f64::NAN, f64::max);
    let first_rg = median(rollguard().map(|r| ms(r.first_review_after)));
    let first_floor = median(
        results
            .iter()
            .filter(|r| r.kind == ServerKind::Floor)
            .map(|r| ms(r.first_review_after)),
    );
    println!();
    println!(
        "ready after start (spawn -> /readyz 200), rollguard server child: median {ready_median:.1} ms, max {ready_max:.1} ms over {} starts",
        ready_ms.len()
    );
    let binary_median = binary_ready.as_ref().map(|b| {
        let median_ms = median(b.ready_ms.iter().copied());
        println!(
            "ready after start, `{} serve --self-signed` (default config, prestopHandler auto): median {median_ms:.1} ms, max {:.1} ms over {} starts",
            b.binary.display(),
            b.ready_ms.iter().copied().fold(f64::NAN, f64::max),
            b.ready_ms.len()
        );
        median_ms
    });
    println!(
        "first review answered after spawn (new TLS connection): rollguard median {first_rg:.1} ms, floor median {first_floor:.1} ms"
    );
    for &connections in &args.connections {
        let review = median(
            rollguard()
                .filter(|r| r.connections == connections)
                .filter_map(|r| r.review_mean_us),
        );
        println!(
            "rollguard in-server review time (its /metrics histogram, mean per round, median) at {connections} connection(s): {review:.1} µs"
        );
    }

    println!();
    println!("targets (reported, not asserted):");
    let peak_rg = rollguard()
        .map(RoundResult::peak_mib)
        .fold(f64::NAN, f64::max);
    let mut lines: Vec<(String, String, String, bool)> = Vec::new();
    if args.connections.contains(&8) {
        let (_, r) = ratios(results, 8);
        lines.push((
            "throughput at 8 connections".into(),
            format!(">= {TARGET_THROUGHPUT_RATIO:.2}x floor"),
            format!("{:.2}x", r.rps),
            r.rps >= TARGET_THROUGHPUT_RATIO,
        ));
        lines.push((
            "p99 at 8 connections".into(),
            format!("<= {TARGET_P99_RATIO:.2}x floor"),
            format!("{:.2}x", r.p99),
            r.p99 <= TARGET_P99_RATIO,
        ));
    }
    if args.connections.contains(&1) {
        let (_, r) = ratios(results, 1);
        lines.push((
            "p50 at 1 connection".into(),
            format!("<= {TARGET_P50_RATIO_1_CONN:.2}x floor"),
            format!("{:.2}x", r.p50),
            r.p50 <= TARGET_P50_RATIO_1_CONN,
        ));
    }
    lines.push((
        "rollguard peak RSS under load".into(),
        format!("<= {TARGET_PEAK_RSS_MIB:.0} MiB"),
        format!("{peak_rg:.1} MiB"),
        peak_rg <= TARGET_PEAK_RSS_MIB,
    ));
    lines.push((
        "ready after start (median)".into(),
        format!("< {TARGET_READY_MS:.0} ms"),
        format!("{ready_median:.1} ms"),
        ready_median < TARGET_READY_MS,
    ));
    if let Some(binary_median) = binary_median {
        lines.push((
            "ready after start, the binary".into(),
            format!("< {TARGET_READY_MS:.0} ms"),
            format!("{binary_median:.1} ms"),
            binary_median < TARGET_READY_MS,
        ));
    }
    for (what, target, value, met) in lines {
        println!("  {what:<31} {target:<16} {value:>10}  {}", verdict(met));
    }
    println!(
        "  {:<31} {:<16} {:>10}  see `cargo bench --bench admission`",
        "full review path, typical Pod", "<= 30 µs", "-"
    );
}
