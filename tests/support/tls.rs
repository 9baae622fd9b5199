//! TLS clients of the webhook: rustls configurations trusting given
//! certificates, reqwest clients over them, and raw TLS connections.

use std::net::SocketAddr;
use std::sync::Arc;

use rollguard::tls;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::WAIT_BOUND;

pub const H1: &[&[u8]] = &[b"http/1.1"];
pub const H2: &[&[u8]] = &[b"h2"];
pub const H2_AND_H1: &[&[u8]] = &[b"h2", b"http/1.1"];

/// Trusts every certificate in `trusted_pem`, presents `identity` (chain and
/// key PEM) when given, and offers `alpn`.
pub fn client_config(
    trusted_pem: &[&str],
    identity: Option<(&str, &str)>,
    alpn: &[&[u8]],
) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    for pem in trusted_pem {
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            roots
                .add(cert.expect("certificate PEM"))
                .expect("trust anchor");
        }
    }
    let builder = ClientConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots);
    let mut config = match identity {
        Some((cert_pem, key_pem)) => {
            let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .expect("client chain");
            let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("client key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client identity")
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// A reqwest client builder over `config`, each request bounded by
/// [`WAIT_BOUND`].
pub fn reqwest_builder(config: ClientConfig) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .timeout(WAIT_BOUND)
}

/// A reqwest client trusting `cert_pem`.
pub fn https_client(cert_pem: &str, alpn: &[&[u8]]) -> reqwest::Client {
    reqwest_builder(client_config(&[cert_pem], None, alpn))
        .build()
        .expect("client")
}

/// A reqwest client for a binary serving its own self-signed certificate
/// (`--self-signed`): any server certificate is trusted, each request is
/// bounded by `timeout`.
pub fn trusting_client(alpn: &[&[u8]], timeout: std::time::Duration) -> reqwest::Client {
    let cert = tls::self_signed().expect("certificate").cert_pem;
    let mut config = client_config(&[&cert], None, alpn);
    trust_any_server(&mut config);
    reqwest_builder(config)
        .timeout(timeout)
        .build()
        .expect("client")
}

/// A client for the plain-HTTP ops port. reqwest without a crypto provider
/// still wants a TLS configuration, so it gets one that trusts nothing useful.
pub fn plain_client() -> reqwest::Client {
    let unused = tls::self_signed().expect("certificate");
    https_client(&unused.cert_pem, H1)
}

/// A TLS connection to `addr` for the name `localhost`, to write requests
/// by hand.
pub async fn tls_connect(addr: SocketAddr, config: Arc<ClientConfig>) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("server name");
    TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .expect("TLS handshake")
}

/// Makes `config` accept any server certificate: for a binary that makes
/// its own self-signed one.
pub fn trust_any_server(config: &mut ClientConfig) {
    config
        .dangerous()
        .set_certificate_verifier(Arc::new(AnyServer(tls::provider())));
}

#[derive(Debug)]
struct AnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
