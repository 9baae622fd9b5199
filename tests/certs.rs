//! `rollguard certs`: the serving certificate chains to the generated CA,
//! carries the Service's DNS names, and a server using it is reachable by a
//! client that trusts only that CA.

mod support;

use std::time::Duration;

use rollguard::admission::PolicyConfig;
use rollguard::server::{self, AppState, RunOptions, Timeouts};
use rollguard::tls;
use serde_json::Value;
use support::temp::TempDir;
use support::tls::{client_config, reqwest_builder};

/// `rollguard certs` into a fresh directory.
fn generate() -> TempDir {
    let dir = TempDir::new();
    let output = support::binary::command()
        .args([
            "certs",
            "--service",
            "rollguard",
            "--namespace",
            "rollguard-system",
            "--out",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    dir
}

fn client_trusting(ca_pem: &str) -> reqwest::Client {
    reqwest_builder(client_config(&[ca_pem], None, &[]))
        .resolve(
            "rollguard.rollguard-system.svc",
            "127.0.0.1:0".parse().unwrap(),
        )
        .resolve(
            "rollguard.rollguard-system.svc.cluster.local",
            "127.0.0.1:0".parse().unwrap(),
        )
        .resolve("elsewhere.example.com", "127.0.0.1:0".parse().unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_server_with_the_generated_pair_is_trusted_through_the_ca_for_the_service_names() {
    let generated = generate();
    let dir = generated.path();
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    let read = |path: &std::path::Path| std::fs::read(path).expect("a generated file");
    let key = tls::parse_pem_pair(&read(&cert), &read(&key), &cert, &key)
        .expect("the pair loads and matches");
    let tls_config = tls::server_config(tls::CertResolver::new(key)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ops = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = RunOptions {
        tls_config,
        state: AppState::new(PolicyConfig::default()),
        timeouts: Timeouts {
            shutdown_delay: Duration::ZERO,
            drain: Duration::from_secs(1),
            ..Timeouts::default()
        },
    };
    let task = tokio::spawn(server::run(listener, ops, options, async move {
        let _ = stopped.await;
    }));
    let client = client_trusting(&std::fs::read_to_string(dir.join("ca.crt")).unwrap());
    for host in [
        "rollguard.rollguard-system.svc",
        "rollguard.rollguard-system.svc.cluster.local",
    ] {
        let mut answered = None;
        for _ in 0..100 {
            match client
                .post(format!("https://{host}:{port}/validate"))
                .body("{}")
                .send()
                .await
            {
                Ok(response) => {
                    answered = Some(response.status().as_u16());
                    break;
                }
                Err(err) if err.is_connect() && !format!("{err:?}").contains("certificate") => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(err) => panic!("{host}: {err:?}"),
            }
        }
        assert_eq!(
            answered,
            Some(400),
            "{host}: the handshake succeeded and the server answered"
        );
    }
    // A name the certificate does not carry is refused by the client.
    let err = client
        .post(format!("https://elsewhere.example.com:{port}/validate"))
        .body("{}")
        .send()
        .await
        .unwrap_err();
    assert!(
        format!("{err:?}").to_lowercase().contains("certificate"),
        "{err:?}"
    );
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[test]
fn the_secret_and_ca_bundle_patch_are_ready_for_kustomize() {
    use base64::Engine as _;
    let generated = generate();
    let dir = generated.path();
    let ca = std::fs::read_to_string(dir.join("ca.crt")).unwrap();
    let secret: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(dir.join("secret.yaml")).unwrap()).unwrap();
    assert_eq!(secret["kind"], "Secret");
    assert_eq!(secret["type"], "kubernetes.io/tls");
    assert_eq!(secret["metadata"]["name"], "rollguard-tls");
    assert_eq!(secret["metadata"]["namespace"], "rollguard-system");
    let decode = |v: &Value| {
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap())
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(decode(&secret["data"]["ca.crt"]), ca);
    assert_eq!(
        decode(&secret["data"]["tls.crt"]),
        std::fs::read_to_string(dir.join("tls.crt")).unwrap()
    );

    let patch = std::fs::read_to_string(dir.join("cabundle-patch.yaml")).unwrap();
    let docs: Vec<Value> = patch
        .split("\n---\n")
        .filter(|d| d.contains("kind:"))
        .map(|d| serde_saphyr::from_str(d.trim_start_matches("---\n")).unwrap())
        .collect();
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "MutatingWebhookConfiguration",
            "ValidatingWebhookConfiguration"
        ]
    );
    for doc in &docs {
        for webhook in doc["webhooks"].as_array().unwrap() {
            assert_eq!(decode(&webhook["clientConfig"]["caBundle"]), ca);
        }
    }
}
