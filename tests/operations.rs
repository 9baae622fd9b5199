//! Operations: certificate rotation under load, SIGTERM under load, bad
//! input, client certificates, limits and metrics. Every test binds
//! 127.0.0.1 port 0, is bounded in requests and time, and waits on
//! conditions (readiness, a counter, a certificate) with a deadline rather
//! than fixed sleeps.
#![cfg(unix)]

mod support;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1;
use hyper::header;
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

use rollguard::admission::PolicyConfig;
use rollguard::server::{self, AppState, Timeouts};
use support::binary::{run_to_exit, Binary, LOOPBACK_SERVE};
use support::fixtures::admission_review as fixture;
use support::http::{closed_within, http_get, read_response};
use support::server::{quick_timeouts, start, TestServer};
use support::temp::TempDir;
use support::tls::H1;
use support::WAIT_BOUND;

/// Upper bound for any single test.
const TEST_BOUND: Duration = Duration::from_secs(40);

async fn bounded<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(TEST_BOUND, future)
        .await
        .expect("test exceeded its time bound")
}

// ---------------------------------------------------------------- certificates

/// A CA that issues serving and client certificates.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate with its key, in PEM, and its DER to compare with what a
/// server presents.
struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
    not_after: i64,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer =
            CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA");
        Ca { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for localhost and 127.0.0.1 (`server`) or a client
    /// certificate, valid for `days`, expiring on a whole second.
    fn issue(&self, purpose: ExtendedKeyUsagePurpose, days: i64) -> Leaf {
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let mut params = CertificateParams::new(names).expect("leaf params");
        params
            .distinguished_name
            .push(DnType::CommonName, "rollguard-test");
        params.extended_key_usages = vec![purpose];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        let not_after = (now + time::Duration::days(days))
            .replace_nanosecond(0)
            .expect("whole second");
        params.not_after = not_after;
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("leaf");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
            not_after: not_after.unix_timestamp(),
        }
    }

    fn server_leaf(&self, days: i64) -> Leaf {
        self.issue(ExtendedKeyUsagePurpose::ServerAuth, days)
    }
}

// ---------------------------------------------------------------- files

/// A Secret volume as the kubelet writes it: `tls.crt -> ..data/tls.crt`,
/// `..data -> ..<timestamp>`; an update writes a new timestamped directory,
/// points `..data_tmp` at it, renames that over `..data` and removes the old
/// directory.
struct SecretVolume {
    dir: TempDir,
    generation: usize,
}

impl SecretVolume {
    fn new(cert_pem: &str, key_pem: &str) -> SecretVolume {
        let mut volume = SecretVolume {
            dir: TempDir::new(),
            generation: 0,
        };
        volume.publish(cert_pem, key_pem);
        for name in ["tls.crt", "tls.key"] {
            std::os::unix::fs::symlink(format!("..data/{name}"), volume.dir.path().join(name))
                .expect("file symlink");
        }
        volume
    }

    fn cert(&self) -> String {
        self.dir.path().join("tls.crt").display().to_string()
    }

    fn key(&self) -> String {
        self.dir.path().join("tls.key").display().to_string()
    }

    fn timestamped(generation: usize) -> String {
        format!("..2026_05_01_10_00_{generation:02}.{generation:09}")
    }

    fn publish(&mut self, cert_pem: &str, key_pem: &str) {
        self.generation += 1;
        let name = Self::timestamped(self.generation);
        let data = self.dir.path().join(&name);
        std::fs::create_dir(&data).expect("data dir");
        std::fs::write(data.join("tls.crt"), cert_pem).expect("write cert");
        std::fs::write(data.join("tls.key"), key_pem).expect("write key");
        let tmp = self.dir.path().join("..data_tmp");
        std::os::unix::fs::symlink(&name, &tmp).expect("..data_tmp");
        std::fs::rename(&tmp, self.dir.path().join("..data")).expect("swap ..data");
        if self.generation > 1 {
            let old = self.dir.path().join(Self::timestamped(self.generation - 1));
            std::fs::remove_dir_all(old).expect("remove old data dir");
        }
    }
}

// ---------------------------------------------------------------- HTTP/1.1 over TLS

fn client_config(roots_pem: &[&str], identity: Option<(&str, &str)>) -> Arc<ClientConfig> {
    let mut config = support::tls::client_config(roots_pem, identity, H1);
    // A resumed session skips the certificate: every connection here must
    // show the one served now.
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// One keep-alive HTTP/1.1 connection and the certificate the server showed.
struct Conn {
    sender: http1::SendRequest<Full<Bytes>>,
    peer_cert: Vec<u8>,
}

struct Answer {
    status: u16,
    close: bool,
    body: Bytes,
}

async fn connect(addr: SocketAddr, config: &Arc<ClientConfig>) -> Result<Conn, String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").expect("server name");
    let stream = TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    let peer_cert = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .map(|cert| cert.to_vec())
        .ok_or("no peer certificate")?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(Conn { sender, peer_cert })
}

impl Conn {
    async fn post(&mut self, path: &str, body: Bytes) -> Result<Answer, String> {
        self.sender
            .ready()
            .await
            .map_err(|e| format!("connection not ready: {e}"))?;
        let request = hyper::Request::post(path)
            .header(header::HOST, "localhost")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .expect("request");
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = response.status().as_u16();
        let close = response
            .headers()
            .get(header::CONNECTION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("response body: {e}"))?
            .to_bytes();
        Ok(Answer {
            status,
            close,
            body,
        })
    }
}

/// A 200 whose AdmissionReview answers `uid`.
fn check_answer(answer: &Answer, uid: &str) -> Result<(), String> {
    if answer.status != 200 {
        return Err(format!(
            "status {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        ));
    }
    let review: Value = serde_json::from_slice(&answer.body).map_err(|e| e.to_string())?;
    if review["response"]["uid"] != uid {
        return Err(format!("wrong uid in {review}"));
    }
    Ok(())
}

// ---------------------------------------------------------------- metrics

/// The samples of an OpenMetrics exposition: name and labels → value.
struct Scrape(Vec<(String, BTreeMap<String, String>, f64)>);

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let mut samples = Vec::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (series, value) = line.rsplit_once(' ').expect("sample line");
            let value: f64 = value.parse().expect("sample value");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let inner = rest.strip_suffix('}').expect("closing brace");
                    let labels = inner
                        .split(',')
                        .filter(|pair| !pair.is_empty())
                        .map(|pair| {
                            let (key, value) = pair.split_once('=').expect("label");
                            (key.to_string(), value.trim_matches('"').to_string())
                        })
                        .collect();
                    (name.to_string(), labels)
                }
                None => (series.to_string(), BTreeMap::new()),
            };
            samples.push((name, labels, value));
        }
        Scrape(samples)
    }

    /// The sample with exactly these labels; 0 when absent.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.0
            .iter()
            .find(|(n, l, _)| n == name && *l == wanted)
            .map_or(0.0, |(_, _, v)| *v)
    }

    /// Sum over every series of `name` whose labels include `labels`.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }
}

async fn scrape(ops: SocketAddr) -> Scrape {
    let (status, body) = http_get(ops, "/metrics").await.expect("scrape");
    assert_eq!(status, 200, "{body}");
    Scrape::parse(&body)
}

/// Polls the metrics until `name` reaches `at_least`.
async fn wait_counter(ops: SocketAddr, name: &str, at_least: f64) -> f64 {
    let deadline = Instant::now() + WAIT_BOUND;
    loop {
        let value = scrape(ops).await.value(name, &[]);
        if value >= at_least {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{name} stayed at {value}, expected {at_least}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

// ---------------------------------------------------------------- fixtures

fn with_uid(mut review: Value, uid: &str) -> Value {
    review["request"]["uid"] = json!(uid);
    review
}

fn body(review: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(review).expect("encode"))
}

/// A review of an `examples/` manifest, shaped like a real CREATE.
fn example_review(file: &str, uid: &str) -> Value {
    let object = support::fixtures::example(file);
    let mut review = fixture("deployment-create");
    review["request"]["uid"] = json!(uid);
    review["request"]["name"] = object["metadata"]["name"].clone();
    review["request"]["namespace"] = object["metadata"]["namespace"].clone();
    review["request"]["object"] = object;
    review
}

// ---------------------------------------------------------------- load

/// What the load workers saw.
#[derive(Default)]
struct Load {
    ok: AtomicUsize,
    /// Requests answered after `mark` was set.
    ok_after_mark: AtomicUsize,
    failures: Mutex<Vec<String>>,
    connections: AtomicUsize,
    /// `Connection: close` answers received.
    closes: AtomicUsize,
    stop: AtomicBool,
    mark: AtomicBool,
}

impl Load {
    fn fail(&self, what: String) {
        self.failures.lock().expect("lock").push(what);
    }

    fn failures(&self) -> Vec<String> {
        self.failures.lock().expect("lock").clone()
    }
}

/// Sends reviews back to back (one per `pace`) on one keep-alive connection
/// until told to stop; reconnects only when the server asks to close.
fn spawn_worker(
    id: usize,
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    load: Arc<Load>,
    pace: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let review = fixture("deployment-create");
        let mut conn: Option<Conn> = None;
        let mut n = 0usize;
        while !load.stop.load(Ordering::SeqCst) {
            let current = match conn.as_mut() {
                Some(current) => current,
                None => match connect(addr, &config).await {
                    Ok(fresh) => {
                        load.connections.fetch_add(1, Ordering::SeqCst);
                        conn.insert(fresh)
                    }
                    Err(err) => {
                        load.fail(format!("worker {id}: {err}"));
                        tokio::time::sleep(pace).await;
                        continue;
                    }
                },
            };
            n += 1;
            let uid = format!("load-{id}-{n}");
            let answer = current
                .post("/mutate?timeout=10s", body(&with_uid(review.clone(), &uid)))
                .await;
            match answer.and_then(|a| check_answer(&a, &uid).map(|()| a)) {
                Ok(answer) => {
                    load.ok.fetch_add(1, Ordering::SeqCst);
                    if load.mark.load(Ordering::SeqCst) {
                        load.ok_after_mark.fetch_add(1, Ordering::SeqCst);
                    }
                    if answer.close {
                        load.closes.fetch_add(1, Ordering::SeqCst);
                        conn = None;
                    }
                }
                Err(err) => {
                    load.fail(format!("worker {id} request {n}: {err}"));
                    conn = None;
                }
            }
            tokio::time::sleep(pace).await;
        }
    })
}

/// Opens a new connection, checks it answers a review, and returns the
/// certificate it presented.
async fn probe(addr: SocketAddr, config: &Arc<ClientConfig>, load: &Load, n: usize) -> Vec<u8> {
    let uid = format!("probe-{n}");
    let mut conn = match connect(addr, config).await {
        Ok(conn) => conn,
        Err(err) => {
            load.fail(format!("probe {n}: {err}"));
            return Vec::new();
        }
    };
    let review = with_uid(fixture("deployment-create"), &uid);
    match conn
        .post("/mutate", body(&review))
        .await
        .and_then(|a| check_answer(&a, &uid))
    {
        Ok(()) => {
            load.ok.fetch_add(1, Ordering::SeqCst);
        }
        Err(err) => load.fail(format!("probe {n}: {err}")),
    }
    conn.peer_cert
}

// ---------------------------------------------------------------- rotation

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_rotated_the_kubelet_way_under_load_drops_no_request_and_a_broken_pair_changes_only_the_error_counter(
) {
    bounded(async {
        let ca = Ca::new("rotation CA");
        let first = ca.server_leaf(30);
        let mut volume = SecretVolume::new(&first.cert_pem, &first.key_pem);
        let (cert, key) = (volume.cert(), volume.key());
        let (mut binary, https, ops) = Binary::serve(&[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--cert-reload-interval",
            "100ms",
            "--shutdown-delay",
            "0",
        ])
        .await;
        let config = client_config(&[&ca.pem()], None);
        let started = Instant::now();
        let load = Arc::new(Load::default());
        let workers: Vec<_> = (0..3)
            .map(|id| spawn_worker(id, https, config.clone(), load.clone(), Duration::from_millis(10)))
            .collect();
        let mut probes = 0usize;
        let before = scrape(ops).await;
        assert_eq!(
            before.value("rollguard_certificate_expiry_timestamp_seconds", &[]),
            first.not_after as f64
        );
        probes += 1;
        assert_eq!(probe(https, &config, &load, probes).await, first.der);

        // New connections present the new certificate once it is published.
        let wait_for_cert = |leaf_der: Vec<u8>, load: Arc<Load>, mut probes: usize| {
            let config = config.clone();
            async move {
                let deadline = Instant::now() + WAIT_BOUND;
                loop {
                    probes += 1;
                    if probe(https, &config, &load, probes).await == leaf_der {
                        return probes;
                    }
                    assert!(Instant::now() < deadline, "the new certificate was never served");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        let second = ca.server_leaf(60);
        volume.publish(&second.cert_pem, &second.key_pem);
        probes = wait_for_cert(second.der.clone(), load.clone(), probes).await;
        let after_second = scrape(ops).await;
        assert_eq!(after_second.value("rollguard_certificate_reloads_total", &[]), 1.0);
        assert_eq!(
            after_second.value("rollguard_certificate_expiry_timestamp_seconds", &[]),
            second.not_after as f64
        );

        // A key from another certificate, then garbage: refused, one error
        // each, and the second certificate keeps serving.
        let stranger = ca.server_leaf(90);
        volume.publish(&ca.server_leaf(90).cert_pem, &stranger.key_pem);
        wait_counter(ops, "rollguard_certificate_reload_errors_total", 1.0).await;
        volume.publish("-----BEGIN CERTIFICATE-----\ngarbage\n", "not a key");
        wait_counter(ops, "rollguard_certificate_reload_errors_total", 2.0).await;
        for _ in 0..3 {
            probes += 1;
            assert_eq!(probe(https, &config, &load, probes).await, second.der);
        }
        let refused = scrape(ops).await;
        assert_eq!(refused.value("rollguard_certificate_reloads_total", &[]), 1.0);
        assert_eq!(
            refused.value("rollguard_certificate_expiry_timestamp_seconds", &[]),
            second.not_after as f64
        );

        // A good pair after the broken ones is served again.
        let third = ca.server_leaf(120);
        volume.publish(&third.cert_pem, &third.key_pem);
        probes = wait_for_cert(third.der.clone(), load.clone(), probes).await;

        // At least 200 requests in all, however fast the machine.
        let deadline = Instant::now() + WAIT_BOUND;
        while load.ok.load(Ordering::SeqCst) < 200 {
            assert!(Instant::now() < deadline, "no load: {:?}", load.failures());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        load.stop.store(true, Ordering::SeqCst);
        for worker in workers {
            worker.await.expect("worker");
        }
        let elapsed = started.elapsed();
        let after = scrape(ops).await;
        assert_eq!(after.value("rollguard_certificate_reloads_total", &[]), 2.0);
        assert_eq!(after.value("rollguard_certificate_reload_errors_total", &[]), 2.0);
        assert_eq!(
            after.value("rollguard_certificate_expiry_timestamp_seconds", &[]),
            third.not_after as f64
        );
        let failures = load.failures();
        assert!(failures.is_empty(), "failed requests: {failures:#?}");
        let ok = load.ok.load(Ordering::SeqCst);
        assert!(ok >= 200, "only {ok} requests in {elapsed:?}");
        // The keep-alive connections lived through every rotation.
        assert_eq!(load.connections.load(Ordering::SeqCst), 3);
        eprintln!(
            "rotation: {ok} requests answered in {elapsed:?} ({probes} probe connections), 0 failed; 2 reloads, 2 refused"
        );

        binary.terminate();
        let status = binary.wait_exit_async(WAIT_BOUND).await;
        let log = binary.rest_of_log();
        assert_eq!(status.code(), Some(0), "{log}");
        assert!(log.contains("serving certificate reloaded"), "{log}");
        assert!(log.contains("does not match"), "{log}");
    })
    .await;
}

// ---------------------------------------------------------------- drain

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_fails_readiness_at_once_serves_through_the_delay_and_exits_zero() {
    bounded(async {
        let ca = Ca::new("drain CA");
        let leaf = ca.server_leaf(30);
        let dir = TempDir::new();
        let cert = dir.write("tls.crt", &leaf.cert_pem);
        let key = dir.write("tls.key", &leaf.key_pem);
        let delay = Duration::from_secs(1);
        let drain = Duration::from_secs(2);
        let (mut binary, https, ops) = Binary::serve(&[
            "--tls-cert",
            cert.to_str().expect("utf-8"),
            "--tls-key",
            key.to_str().expect("utf-8"),
            "--shutdown-delay",
            "1",
            "--drain-timeout",
            "2",
        ])
        .await;
        let config = client_config(&[&ca.pem()], None);
        let load = Arc::new(Load::default());
        let workers: Vec<_> = (0..3)
            .map(|id| spawn_worker(id, https, config.clone(), load.clone(), Duration::from_millis(5)))
            .collect();
        let deadline = Instant::now() + WAIT_BOUND;
        while load.ok.load(Ordering::SeqCst) < 30 {
            assert!(Instant::now() < deadline, "no load: {:?}", load.failures());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        let signalled = Instant::now();
        load.mark.store(true, Ordering::SeqCst);
        binary.terminate();
        loop {
            let (status, _) = http_get(ops, "/readyz").await.expect("readyz during the delay");
            if status == 503 {
                break;
            }
            assert!(signalled.elapsed() < WAIT_BOUND, "readiness never failed");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // Requests answered between SIGTERM and the first failed readiness.
        let before_unready = load.ok_after_mark.load(Ordering::SeqCst);

        // Load runs on through the delay, stopping a little before the
        // listener closes (by then the endpoints have moved elsewhere).
        tokio::time::sleep((delay - Duration::from_millis(200)).saturating_sub(signalled.elapsed()))
            .await;
        load.stop.store(true, Ordering::SeqCst);
        for worker in workers {
            worker.await.expect("worker");
        }
        let status = binary.wait_exit_async(delay + drain + Duration::from_secs(2)).await;
        let exited = signalled.elapsed();
        let log = binary.rest_of_log();
        assert_eq!(status.code(), Some(0), "{log}");
        // The drain ended when the connections closed, not at its bound.
        assert!(!log.contains("still open after the drain bound"), "{log}");
        assert!(log.contains("shutdown complete"), "{log}");

        let failures = load.failures();
        assert!(failures.is_empty(), "failed requests: {failures:#?}");
        let during_delay = load.ok_after_mark.load(Ordering::SeqCst);
        assert!(during_delay >= 20, "only {during_delay} requests during the delay");
        // Readiness failed at once: most of the delay's requests were
        // answered after it failed (each on a new connection by then), not
        // before (on kept-alive ones).
        assert!(
            before_unready <= during_delay - before_unready,
            "readiness failed after {before_unready} of the {during_delay} requests of the delay"
        );
        // Busy keep-alive connections were told to close and reconnected.
        let closes = load.closes.load(Ordering::SeqCst);
        assert!(closes >= 3, "{closes} Connection: close answers");
        eprintln!(
            "drain: readiness failed after {before_unready} requests; {} requests in all, {during_delay} during the delay, {closes} connections closed by Connection: close, 0 failed; exit 0 after {exited:?}",
            load.ok.load(Ordering::SeqCst)
        );
    })
    .await;
}

// ---------------------------------------------------------------- client certificates

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_client_ca_only_clients_holding_its_certificates_are_answered() {
    bounded(async {
        let server_ca = Ca::new("serving CA");
        let serving = server_ca.server_leaf(30);
        let clients_ca = Ca::new("kube-apiserver clients CA");
        let apiserver = clients_ca.issue(ExtendedKeyUsagePurpose::ClientAuth, 30);
        let impostor = Ca::new("another CA").issue(ExtendedKeyUsagePurpose::ClientAuth, 30);
        let dir = TempDir::new();
        let cert = dir.write("tls.crt", &serving.cert_pem);
        let key = dir.write("tls.key", &serving.key_pem);
        let client_ca = dir.write("client-ca.crt", clients_ca.pem());
        let (mut binary, https, ops) = Binary::serve(&[
            "--tls-cert",
            cert.to_str().expect("utf-8"),
            "--tls-key",
            key.to_str().expect("utf-8"),
            "--client-ca",
            client_ca.to_str().expect("utf-8"),
            "--shutdown-delay",
            "0",
        ])
        .await;
        let review = with_uid(fixture("deployment-create"), "mtls-1");

        let attempt = |config: Arc<ClientConfig>| {
            let review = review.clone();
            async move {
                let mut conn = connect(https, &config).await?;
                let answer = conn.post("/mutate", body(&review)).await?;
                check_answer(&answer, "mtls-1")
            }
        };
        let anonymous = attempt(client_config(&[&server_ca.pem()], None)).await;
        assert!(anonymous.is_err(), "answered without a client certificate");
        let stranger = attempt(client_config(
            &[&server_ca.pem()],
            Some((&impostor.cert_pem, &impostor.key_pem)),
        ))
        .await;
        assert!(stranger.is_err(), "answered a certificate from another CA");
        attempt(client_config(
            &[&server_ca.pem()],
            Some((&apiserver.cert_pem, &apiserver.key_pem)),
        ))
        .await
        .expect("the API server's certificate is accepted");

        let metrics = scrape(ops).await;
        assert!(metrics.value("rollguard_tls_handshake_failures_total", &[]) >= 2.0);
        assert_eq!(
            metrics.sum("rollguard_admission_requests_total", &[("route", "mutate")]),
            1.0
        );
        binary.terminate();
        let status = binary.wait_exit_async(WAIT_BOUND).await;
        assert_eq!(status.code(), Some(0), "{}", binary.rest_of_log());
    })
    .await;
}

#[test]
fn an_unusable_client_ca_stops_serve_with_code_2_naming_the_file() {
    let dir = TempDir::new();
    let not_a_ca = dir.write("client-ca.crt", "hello\n");
    let mut args = LOOPBACK_SERVE.to_vec();
    args.extend([
        "--self-signed",
        "--client-ca",
        not_a_ca.to_str().expect("utf-8"),
    ]);
    let (code, log) = run_to_exit(&args);
    assert_eq!(code, Some(2), "{log}");
    assert!(log.contains("client-ca.crt"), "{log}");
}

// ---------------------------------------------------------------- in-process server

impl TestServer {
    fn config(&self) -> Arc<ClientConfig> {
        client_config(&[&self.cert_pem], None)
    }

    async fn tls(&self) -> tokio_rustls::client::TlsStream<TcpStream> {
        support::tls::tls_connect(self.https, self.config()).await
    }

    /// One raw HTTP/1.1 exchange on a new connection.
    async fn exchange(&self, head: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
        let mut stream = self.tls().await;
        stream.write_all(head.as_bytes()).await.expect("write head");
        stream.write_all(body).await.expect("write body");
        read_response(&mut stream).await
    }

    async fn post_raw(&self, content_type: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
        let head = format!(
            "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        self.exchange(&head, body).await
    }

    async fn assert_healthy(&self, uid: &str) {
        let mut conn = connect(self.https, &self.config()).await.expect("connect");
        let review = with_uid(fixture("deployment-create"), uid);
        let answer = conn
            .post("/validate", body(&review))
            .await
            .expect("request");
        check_answer(&answer, uid).expect("a valid review is answered");
    }
}

// ---------------------------------------------------------------- bad input

#[tokio::test]
async fn a_corpus_of_bad_input_gets_the_right_status_and_the_server_stays_healthy() {
    bounded(async {
        let timeouts = Timeouts {
            header_read: Duration::from_millis(800),
            ..quick_timeouts()
        };
        let state = AppState::new(PolicyConfig::default());
        let metrics = state.metrics.clone();
        let server = start(state, timeouts).await;

        let valid = fixture("deployment-create-validate");
        let valid_text = serde_json::to_string(&valid).expect("encode");
        let mutated = |edit: &dyn Fn(&mut Value)| {
            let mut review = valid.clone();
            edit(&mut review);
            serde_json::to_vec(&review).expect("encode")
        };
        let mut non_utf8 = valid_text.clone().into_bytes();
        let at = valid_text.find("\"web\"").expect("a string to break") + 1;
        non_utf8.splice(at..at + 1, [0xff, 0xfe]);
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));

        let corpus: Vec<(&str, Vec<u8>)> = vec![
            ("empty body", Vec::new()),
            ("truncated JSON", valid_text.as_bytes()[..valid_text.len() / 2].to_vec()),
            ("not JSON", b"kind: AdmissionReview\n".to_vec()),
            ("non-UTF-8", non_utf8),
            ("100k-deep nesting", deep.into_bytes()),
            ("deep nesting inside the object", {
                let nested = format!("{}1{}", "[".repeat(20_000), "]".repeat(20_000));
                valid_text
                    .replacen("\"replicas\"", &format!("\"deep\": {nested}, \"replicas\""), 1)
                    .into_bytes()
            }),
            (
                "wrong apiVersion",
                mutated(&|r| r["apiVersion"] = json!("admission.k8s.io/v1beta1")),
            ),
            ("wrong kind", mutated(&|r| r["kind"] = json!("Pod"))),
            ("a JSON array", b"[]".to_vec()),
            (
                "missing request",
                mutated(&|r| {
                    r.as_object_mut().expect("object").remove("request");
                }),
            ),
            ("request not an object", mutated(&|r| r["request"] = json!("x"))),
            ("uid a number", mutated(&|r| r["request"]["uid"] = json!(5))),
            ("empty uid", mutated(&|r| r["request"]["uid"] = json!(""))),
            ("operation a list", mutated(&|r| r["request"]["operation"] = json!(["CREATE"]))),
            ("unknown operation", mutated(&|r| r["request"]["operation"] = json!("EXPLODE"))),
            ("kind a string", mutated(&|r| r["request"]["kind"] = json!("Deployment"))),
            ("object a list", mutated(&|r| r["request"]["object"] = json!([1, 2]))),
            ("object a string", mutated(&|r| r["request"]["object"] = json!("{}"))),
        ];
        let mut bad_requests = 0.0;
        for (name, bytes) in &corpus {
            let (status, head, reply) = server.post_raw("application/json", bytes).await;
            assert_eq!(
                status,
                400,
                "{name}: {}",
                String::from_utf8_lossy(&reply)
            );
            assert!(head.contains("content-type: text/plain"), "{name}: {head}");
            bad_requests += 1.0;
        }
        server.assert_healthy("after-corpus").await;

        // Wrong field types inside the object are the engine's business: a
        // verdict or a 500, never a crash.
        let odd = mutated(&|r| r["request"]["object"]["spec"]["replicas"] = json!("three"));
        let (status, _, _) = server.post_raw("application/json", &odd).await;
        assert!(status == 200 || status == 500, "{status}");

        // Content type: the API server always sends application/json; any
        // other type (or none) is read the same way, as documented.
        for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
            let (status, _, _) = server.post_raw(content_type, valid_text.as_bytes()).await;
            assert_eq!(status, 200, "{content_type}");
        }
        let head = format!(
            "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
            valid_text.len()
        );
        let (status, _, _) = server.exchange(&head, valid_text.as_bytes()).await;
        assert_eq!(status, 200, "no content type");

        // 10 MiB: refused from its Content-Length, before it is read.
        let mut stream = server.tls().await;
        let size = 10 * 1024 * 1024;
        stream
            .write_all(
                format!(
                    "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
                )
                .as_bytes(),
            )
            .await
            .expect("write head");
        let (mut reader, mut writer) = tokio::io::split(stream);
        let upload = tokio::spawn(async move {
            let chunk = vec![b' '; 64 * 1024];
            for _ in 0..size / chunk.len() {
                if writer.write_all(&chunk).await.is_err() {
                    break;
                }
            }
        });
        let (status, _, _) = read_response(&mut reader).await;
        assert_eq!(status, 413);
        upload.abort();
        server.assert_healthy("after-10-mib").await;

        // Headers at one byte per 200 ms: cut at the 800 ms header deadline,
        // which is not renewed by each byte. On tokio's paused clock, which
        // the server's timers run on: the bound is measured, not the
        // machine's speed.
        let mut slow = server.tls().await;
        tokio::time::pause();
        let started = tokio::time::Instant::now();
        let request = b"POST /validate HTTP/1.1\r\nHost: localhost\r\n";
        let mut cut = false;
        for byte in request {
            if slow.write_all(&[*byte]).await.is_err() {
                cut = true;
                break;
            }
            let mut probe = [0u8; 256];
            match tokio::time::timeout(Duration::from_millis(200), slow.read(&mut probe)).await {
                Ok(Ok(0) | Err(_)) => {
                    cut = true;
                    break;
                }
                Ok(Ok(_)) => {
                    cut = true;
                    break;
                }
                Err(_) => {}
            }
            assert!(started.elapsed() < WAIT_BOUND);
        }
        let slow_cut_after = started.elapsed();
        tokio::time::resume();
        assert!(cut, "the slow client was never cut off");
        assert!(
            slow_cut_after >= Duration::from_millis(700) && slow_cut_after < Duration::from_secs(3),
            "cut after {slow_cut_after:?}"
        );
        server.assert_healthy("after-slow-headers").await;

        let scraped = Scrape::parse(&metrics.encode());
        assert_eq!(
            scraped.sum(
                "rollguard_admission_requests_total",
                &[("outcome", "bad-request")]
            ),
            bad_requests
        );
        assert_eq!(
            scraped.sum(
                "rollguard_admission_requests_total",
                &[("outcome", "too-large")]
            ),
            1.0
        );
        eprintln!(
            "bad input: {} cases answered 400, 10 MiB answered 413, slow headers cut after {slow_cut_after:?}",
            corpus.len()
        );
        server.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn a_trickled_body_is_cut_at_the_api_servers_timeout_with_408() {
    bounded(async {
        // A byte every 50 ms is under the default body pace, which would cut
        // it after a second (tests/server.rs): a loose pace leaves it to the
        // time bounds.
        let state = AppState::new(PolicyConfig::default())
            .with_request_timeout(Duration::from_secs(3))
            .with_body_pace(server::BodyPace {
                grace: Duration::from_secs(60),
                bytes_per_second: 1,
            });
        let metrics = state.metrics.clone();
        let server = start(state, quick_timeouts()).await;
        let (status, head, cut_after, mut reader) = trickle(
            &server,
            "POST /validate?timeout=1s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
        )
        .await;
        assert_eq!(status, 408);
        assert!(head.contains("connection: close"), "{head}");
        // The query's 1 s, not the server's 3 s bound.
        assert!(
            cut_after >= Duration::from_millis(900) && cut_after < Duration::from_millis(2500),
            "{cut_after:?}"
        );
        assert!(closed_within(&mut reader, WAIT_BOUND).await);

        // Without a query the server's own bound applies.
        let (status, _, bound_after, _) = trickle(
            &server,
            "POST /audit HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n",
        )
        .await;
        assert_eq!(status, 408);
        assert!(
            bound_after >= Duration::from_millis(2900) && bound_after < Duration::from_secs(5),
            "{bound_after:?}"
        );

        server.assert_healthy("after-trickle").await;
        let scraped = Scrape::parse(&metrics.encode());
        assert_eq!(
            scraped.sum("rollguard_admission_requests_total", &[("outcome", "timeout")]),
            2.0
        );
        server.stop().await.expect("clean stop");
    })
    .await;
}

/// Sends `head` (declaring a body longer than what follows) and `{`, then a
/// byte every 50 ms until the server answers: its status and head, when it
/// answered, and the reading half of the connection. Time is tokio's paused
/// clock, which the server's request budget runs on: the bound is measured,
/// not the machine's speed.
async fn trickle(
    server: &TestServer,
    head: &str,
) -> (
    u16,
    String,
    Duration,
    tokio::io::ReadHalf<tokio_rustls::client::TlsStream<TcpStream>>,
) {
    let mut stream = server.tls().await;
    stream
        .write_all(format!("{head}{{").as_bytes())
        .await
        .expect("write head");
    tokio::time::pause();
    let started = tokio::time::Instant::now();
    let (mut reader, mut writer) = tokio::io::split(stream);
    let trickle = tokio::spawn(async move {
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if writer.write_all(b" ").await.is_err() {
                break;
            }
        }
    });
    let (status, head, _) = read_response(&mut reader).await;
    let answered_after = started.elapsed();
    tokio::time::resume();
    trickle.abort();
    (status, head, answered_after, reader)
}

// ---------------------------------------------------------------- limits

#[tokio::test]
async fn at_the_cap_the_idlest_connection_makes_room_and_busy_ones_are_kept() {
    bounded(async {
        let timeouts = Timeouts {
            max_connections: 2,
            ..quick_timeouts()
        };
        let server = start(AppState::new(PolicyConfig::default()), timeouts).await;
        let mut first = connect(server.https, &server.config())
            .await
            .expect("first");
        let mut second = connect(server.https, &server.config())
            .await
            .expect("second");
        // The second connection answered last: the first is the idlest.
        let review = with_uid(fixture("deployment-create"), "at-cap");
        let answer = second
            .post("/validate", body(&review))
            .await
            .expect("request");
        check_answer(&answer, "at-cap").expect("answered at the cap");

        // A third client is served at once, not left waiting in the backlog.
        let name = ServerName::try_from("localhost").expect("server name");
        let tcp = TcpStream::connect(server.https).await.expect("connect");
        let third = tokio::time::timeout(
            WAIT_BOUND,
            TlsConnector::from(server.config()).connect(name, tcp),
        )
        .await
        .expect("the third connection is served although two were open")
        .expect("handshake");

        let review = with_uid(fixture("deployment-create"), "after");
        assert!(
            first.post("/validate", body(&review)).await.is_err(),
            "the idlest connection was closed to make room"
        );
        let answer = second
            .post("/validate", body(&review))
            .await
            .expect("the more recent connection is kept");
        check_answer(&answer, "after").expect("answered");
        drop(third);
        drop(second);
        server.stop().await.expect("clean stop");
    })
    .await;
}

#[tokio::test]
async fn once_shutting_down_http1_answers_carry_connection_close() {
    bounded(async {
        let timeouts = Timeouts {
            shutdown_delay: Duration::from_secs(2),
            ..quick_timeouts()
        };
        let mut server = start(AppState::new(PolicyConfig::default()), timeouts).await;
        let mut conn = connect(server.https, &server.config())
            .await
            .expect("connect");
        let review = with_uid(fixture("deployment-create"), "before");
        let answer = conn
            .post("/validate", body(&review))
            .await
            .expect("request");
        assert!(!answer.close);

        server.request_shutdown();
        let deadline = Instant::now() + WAIT_BOUND;
        while http_get(server.ops, "/readyz").await.expect("readyz").0 != 503 {
            assert!(Instant::now() < deadline, "readiness never failed");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let review = with_uid(fixture("deployment-create"), "during");
        let answer = conn
            .post("/validate", body(&review))
            .await
            .expect("request");
        check_answer(&answer, "during").expect("answered during the delay");
        assert!(
            answer.close,
            "no Connection: close during the shutdown delay"
        );
        server.stop().await.expect("clean stop");
    })
    .await;
}

// ---------------------------------------------------------------- metrics

/// Posts a review that must be answered, and returns its `response`.
async fn send(conn: &mut Conn, path: &str, review: Value) -> Value {
    let uid = review["request"]["uid"].as_str().expect("uid").to_string();
    let answer = conn.post(path, body(&review)).await.expect("request");
    check_answer(&answer, &uid).expect("answered");
    let reply: Value = serde_json::from_slice(&answer.body).expect("JSON");
    reply["response"].clone()
}

#[tokio::test]
async fn scraped_counters_equal_the_reviews_sent() {
    bounded(async {
        let server = start(AppState::new(PolicyConfig::default()), quick_timeouts()).await;
        let before = scrape(server.ops).await;
        assert_eq!(
            before.value(
                "rollguard_build_info",
                &[("version", env!("CARGO_PKG_VERSION"))]
            ),
            1.0
        );
        for rule in rollguard::rules::Rule::ALL {
            assert_eq!(
                before.value("rollguard_audit_findings_total", &[("rule", rule.name())]),
                0.0,
                "{rule}"
            );
        }

        let mut conn = connect(server.https, &server.config())
            .await
            .expect("connect");
        // Expected counts, from what the answers say (audit annotations).
        let mut mutations: BTreeMap<String, f64> = BTreeMap::new();
        let mut violations: BTreeMap<(String, String), f64> = BTreeMap::new();
        let mut findings: BTreeMap<String, f64> = BTreeMap::new();
        let count = |map: &mut BTreeMap<String, f64>, rules: &Value| {
            for rule in rules
                .as_str()
                .unwrap_or("")
                .split(',')
                .filter(|r| !r.is_empty())
            {
                *map.entry(rule.to_string()).or_default() += 1.0;
            }
        };

        for (i, name) in [
            "deployment-create",
            "deployment-update",
            "pod-create-from-replicaset",
        ]
        .into_iter()
        .enumerate()
        {
            let response = send(
                &mut conn,
                "/mutate",
                with_uid(fixture(name), &format!("m{i}")),
            )
            .await;
            assert!(response["patch"].is_string(), "{name} was not patched");
            count(&mut mutations, &response["auditAnnotations"]["mutated"]);
        }
        for (i, file) in [
            "10-denied-stateful-recreate.yaml",
            "12-denied-all-unavailable.yaml",
        ]
        .into_iter()
        .enumerate()
        {
            let response = send(
                &mut conn,
                "/validate",
                example_review(file, &format!("v{i}")),
            )
            .await;
            assert_eq!(response["allowed"], false, "{file} was not denied");
            let annotations = &response["auditAnnotations"];
            for (key, action) in [("denied", "deny"), ("warned", "warn"), ("waived", "warn")] {
                let mut rules = BTreeMap::new();
                count(&mut rules, &annotations[key]);
                for (rule, n) in rules {
                    *violations.entry((rule, action.to_string())).or_default() += n;
                }
            }
        }
        let response = send(
            &mut conn,
            "/audit",
            with_uid(fixture("deployment-create"), "a0"),
        )
        .await;
        let annotations = &response["auditAnnotations"];
        let mut audited = BTreeMap::new();
        for key in ["would-mutate", "would-deny", "would-warn"] {
            count(&mut audited, &annotations[key]);
        }
        // A rule counts once per object even when listed under two keys.
        for rule in audited.keys() {
            *findings.entry(rule.clone()).or_default() += 1.0;
        }
        let mut off = with_uid(fixture("deployment-create"), "off");
        off["request"]["object"]["metadata"]["annotations"]["rollguard.io/mode"] = json!("off");
        // On the template too: else the one patch copies it there.
        off["request"]["object"]["spec"]["template"]["metadata"]["annotations"]
            ["rollguard.io/mode"] = json!("off");
        let response = send(&mut conn, "/mutate", off).await;
        assert!(response.get("patch").is_none());
        let bad = conn
            .post("/validate", Bytes::from_static(b"{\"kind\":"))
            .await
            .expect("bad");
        assert_eq!(bad.status, 400);

        let after = scrape(server.ops).await;
        let requests =
            |labels: &[(&str, &str)]| after.sum("rollguard_admission_requests_total", labels);
        assert_eq!(requests(&[]), 8.0);
        assert_eq!(
            requests(&[("route", "mutate"), ("outcome", "patched")]),
            3.0
        );
        assert_eq!(
            requests(&[("route", "validate"), ("outcome", "denied")]),
            2.0
        );
        assert_eq!(requests(&[("route", "audit"), ("outcome", "audited")]), 1.0);
        assert_eq!(
            requests(&[
                ("route", "mutate"),
                ("kind", "Deployment"),
                ("outcome", "skipped")
            ]),
            1.0
        );
        assert_eq!(
            requests(&[("route", "validate"), ("outcome", "bad-request")]),
            1.0
        );
        assert_eq!(
            after.sum("rollguard_admission_duration_seconds_count", &[]),
            8.0
        );

        assert!(mutations.contains_key("prestop-sleep"), "{mutations:?}");
        assert_eq!(
            after.sum("rollguard_mutations_total", &[]),
            mutations.values().sum::<f64>()
        );
        for (rule, n) in &mutations {
            assert_eq!(
                after.value("rollguard_mutations_total", &[("rule", rule)]),
                *n,
                "{rule}"
            );
        }
        assert!(violations.contains_key(&("stateful-recreate".to_string(), "deny".to_string())));
        assert_eq!(
            after.sum("rollguard_violations_total", &[]),
            violations.values().sum::<f64>()
        );
        for ((rule, action), n) in &violations {
            assert_eq!(
                after.value(
                    "rollguard_violations_total",
                    &[("rule", rule), ("action", action)]
                ),
                *n,
                "{rule} {action}"
            );
        }
        assert!(!findings.is_empty());
        assert_eq!(
            after.sum("rollguard_audit_findings_total", &[]),
            findings.values().sum::<f64>()
        );
        for (rule, n) in &findings {
            assert_eq!(
                after.value("rollguard_audit_findings_total", &[("rule", rule)]),
                *n,
                "{rule}"
            );
        }
        assert_eq!(
            after.value("rollguard_skipped_total", &[("kind", "Deployment")]),
            1.0
        );
        assert_eq!(after.sum("rollguard_skipped_total", &[]), 1.0);
        assert_eq!(after.value("rollguard_connections_open", &[]), 1.0);
        drop(conn);
        server.stop().await.expect("clean stop");
    })
    .await;
}
