//! TLS material for the webhook listener: PEM files or an in-memory
//! self-signed certificate, and the rustls server configuration.
//!
//! The certificate is served through [`CertResolver`] rather than baked into
//! the `ServerConfig`, so it rotates (cert-manager renewals) without
//! restarting the listener: `crate::reload` builds a new key with
//! [`parse_pem_pair`] and hands it to [`CertResolver::replace`].
//!
//! With a client CA ([`client_verifier`]) the listener requires a client
//! certificate chaining to it: only the kube-apiserver, given that
//! certificate, can call the webhook.

use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use thiserror::Error;

/// ALPN protocols offered, best first. The kube-apiserver speaks HTTP/1.1 to
/// service webhooks and may negotiate h2 for URL webhooks.
pub const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("cannot read TLS {what} file {path}: {source}")]
    Read {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("TLS certificate file {path} holds no certificate: expected one or more PEM blocks starting with -----BEGIN CERTIFICATE-----")]
    NoCertificate { path: String },
    #[error("TLS {what} file {path} is not valid PEM: {reason}")]
    BadPem {
        what: &'static str,
        path: String,
        reason: String,
    },
    #[error("TLS key file {path} holds no private key: {hint}")]
    NoKey { path: String, hint: &'static str },
    #[error("TLS key file {path} holds a key rustls cannot use (supported: RSA, ECDSA P-256/P-384, Ed25519): {reason}")]
    UnusableKey { path: String, reason: String },
    #[error("the first certificate in {path} is not a valid X.509 certificate: {reason}")]
    BadCertificate { path: String, reason: String },
    #[error("TLS key file {key_path} does not match the certificate in {cert_path}: the first certificate must be the one issued for this key (check that the files come from the same Secret)")]
    KeyMismatch { cert_path: String, key_path: String },
    #[error("client CA file {path} cannot be used to verify client certificates: {reason}")]
    ClientCa { path: String, reason: String },
    #[error("cannot generate a self-signed certificate: {0}")]
    SelfSigned(#[from] rcgen::Error),
    #[error("cannot build the TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The crypto provider used everywhere: ring, passed explicitly so that no
/// process-wide default has to be installed.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a certificate chain and its private key from PEM contents already
/// read (the paths only name the files in errors), and checks that the key
/// belongs to the first certificate, so a mismatched Secret fails at start-up
/// instead of at every handshake.
pub fn parse_pem_pair(
    cert_bytes: &[u8],
    key_bytes: &[u8],
    cert_path: &Path,
    key_path: &Path,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let cert_shown = cert_path.display().to_string();
    let key_shown = key_path.display().to_string();
    let chain = CertificateDer::pem_slice_iter(cert_bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| TlsError::BadPem {
            what: "certificate",
            path: cert_shown.clone(),
            reason: err.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate { path: cert_shown });
    }

    let key = PrivateKeyDer::from_pem_slice(key_bytes).map_err(|err| match err {
        pem::Error::NoItemsFound => TlsError::NoKey {
            path: key_shown.clone(),
            hint: missing_key_hint(key_bytes),
        },
        other => TlsError::BadPem {
            what: "key",
            path: key_shown.clone(),
            reason: other.to_string(),
        },
    })?;

    certified_key(chain, key, &cert_shown, &key_shown)
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.display().to_string(),
        source,
    })
}

fn missing_key_hint(bytes: &[u8]) -> &'static str {
    let text = String::from_utf8_lossy(bytes);
    if text.contains("ENCRYPTED PRIVATE KEY") {
        "the key is encrypted; decrypt it first (openssl pkey -in KEY -out KEY.plain)"
    } else if text.contains("BEGIN CERTIFICATE") {
        "it holds a certificate; are --tls-cert and --tls-key swapped?"
    } else {
        "expected a PEM block starting with -----BEGIN PRIVATE KEY-----, -----BEGIN RSA PRIVATE KEY----- or -----BEGIN EC PRIVATE KEY-----"
    }
}

fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_shown: &str,
    key_shown: &str,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let signing_key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|err| TlsError::UnusableKey {
            path: key_shown.to_string(),
            reason: err.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    // Parsed here so that a pair whose certificate rustls would only reject
    // at handshake time is refused when it is loaded.
    if let Err(err) = x509_parser::parse_x509_certificate(certified.end_entity_cert()?) {
        return Err(TlsError::BadCertificate {
            path: cert_shown.to_string(),
            reason: err.to_string(),
        });
    }
    match certified.keys_match() {
        // `Unknown`: the key cannot tell its public half; nothing to compare.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(Arc::new(certified))
        }
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::KeyMismatch {
                cert_path: cert_shown.to_string(),
                key_path: key_shown.to_string(),
            })
        }
        Err(other) => Err(TlsError::BadCertificate {
            path: cert_shown.to_string(),
            reason: other.to_string(),
        }),
    }
}

/// An in-memory self-signed certificate, for local runs and tests.
pub struct SelfSigned {
    pub certified_key: Arc<CertifiedKey>,
    /// The certificate in PEM, for clients that must trust it.
    pub cert_pem: String,
}

impl std::fmt::Debug for SelfSigned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfSigned")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// Generates a certificate for `localhost` and `127.0.0.1` with a fresh key.
pub fn self_signed() -> Result<SelfSigned, TlsError> {
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    let cert_pem = generated.cert.pem();
    let chain = vec![generated.cert.der().clone()];
    let key = PrivateKeyDer::Pkcs8(generated.signing_key.serialize_der().into());
    let certified_key = certified_key(chain, key, "<self-signed>", "<self-signed>")?;
    Ok(SelfSigned {
        certified_key,
        cert_pem,
    })
}

/// Serves whichever certificate was installed last; `replace` swaps it for
/// new handshakes while established connections keep theirs.
#[derive(Debug)]
pub struct CertResolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertResolver {
    pub fn new(key: Arc<CertifiedKey>) -> Arc<Self> {
        Arc::new(CertResolver {
            current: RwLock::new(key),
        })
    }

    pub fn replace(&self, key: Arc<CertifiedKey>) {
        // A poisoned lock still holds a valid Arc: keep going with it.
        let mut current = self.current.write().unwrap_or_else(|err| err.into_inner());
        *current = key;
    }

    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|err| err.into_inner())
            .clone()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The server configuration: ring, TLS 1.2 and 1.3, no client certificates,
/// ALPN `h2` and `http/1.1`.
pub fn server_config(resolver: Arc<CertResolver>) -> Result<Arc<ServerConfig>, TlsError> {
    server_config_with_client_auth(resolver, None)
}

/// [`server_config`], requiring client certificates accepted by `clients`
/// when given (see [`client_verifier`]).
pub fn server_config_with_client_auth(
    resolver: Arc<CertResolver>,
    clients: Option<Arc<dyn ClientCertVerifier>>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let builder =
        ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let builder = match clients {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// A verifier that requires every client to present a certificate chaining
/// to one of the CA certificates in the PEM file `ca_path` (`--client-ca`).
pub fn client_verifier(ca_path: &Path) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let shown = ca_path.display().to_string();
    let fail = |reason: String| TlsError::ClientCa {
        path: shown.clone(),
        reason,
    };
    let bytes = read(ca_path, "client CA")?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| fail(format!("not valid PEM: {err}")))?;
    if certs.is_empty() {
        return Err(fail(
            "it holds no certificate: expected PEM blocks starting with -----BEGIN CERTIFICATE-----"
                .to_string(),
        ));
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|err| fail(format!("not a usable CA certificate: {err}")))?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|err| fail(err.to_string()))
}

/// The end of the serving certificate's validity (`notAfter`); `None` only
/// for a key not built by this module (every loaded certificate parses).
pub fn expiry(key: &CertifiedKey) -> Option<time::OffsetDateTime> {
    let cert = key.end_entity_cert().ok()?;
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    Some(parsed.validity().not_after.to_datetime())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The certificate and key files, read and checked as the server does.
    fn load_pem_files(cert_path: &Path, key_path: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
        let cert_bytes = read(cert_path, "certificate")?;
        let key_bytes = read(key_path, "key")?;
        parse_pem_pair(&cert_bytes, &key_bytes, cert_path, key_path)
    }
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "rollguard-tls-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, text).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn generated() -> rcgen::CertifiedKey<rcgen::KeyPair> {
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap()
    }

    #[test]
    fn matching_pem_files_load() {
        let dir = TempDir::new();
        let pair = generated();
        let cert = dir.write("tls.crt", &pair.cert.pem());
        let key = dir.write("tls.key", &pair.signing_key.serialize_pem());
        let loaded = load_pem_files(&cert, &key).unwrap();
        assert_eq!(loaded.cert.len(), 1);
        assert_eq!(loaded.cert[0].as_ref(), pair.cert.der().as_ref());
    }

    #[test]
    fn a_key_from_another_certificate_is_rejected_naming_both_files() {
        let dir = TempDir::new();
        let cert = dir.write("tls.crt", &generated().cert.pem());
        let key = dir.write("tls.key", &generated().signing_key.serialize_pem());
        let err = load_pem_files(&cert, &key).unwrap_err();
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains("tls.crt") && message.contains("tls.key"),
            "{message}"
        );
    }

    #[test]
    fn swapped_files_get_a_hint() {
        let dir = TempDir::new();
        let pair = generated();
        let cert = dir.write("tls.crt", &pair.cert.pem());
        let key = dir.write("tls.key", &pair.signing_key.serialize_pem());
        let message = load_pem_files(&key, &cert).unwrap_err().to_string();
        assert!(message.contains("holds no certificate"), "{message}");
        let other = dir.write("cert-again.pem", &pair.cert.pem());
        let message = load_pem_files(&cert, &other).unwrap_err().to_string();
        assert!(message.contains("swapped"), "{message}");
    }

    #[test]
    fn missing_and_garbled_files_are_named() {
        let dir = TempDir::new();
        let missing = dir.0.join("nope.crt");
        let key = dir.write("tls.key", &generated().signing_key.serialize_pem());
        let message = load_pem_files(&missing, &key).unwrap_err().to_string();
        assert!(
            message.contains("nope.crt") && message.contains("certificate"),
            "{message}"
        );

        let garbled = dir.write(
            "bad.crt",
            "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
        );
        let message = load_pem_files(&garbled, &key).unwrap_err().to_string();
        assert!(
            message.contains("bad.crt") && message.contains("not valid PEM"),
            "{message}"
        );

        let empty = dir.write("empty.key", "");
        let cert = dir.write("tls.crt", &generated().cert.pem());
        let message = load_pem_files(&cert, &empty).unwrap_err().to_string();
        assert!(
            message.contains("empty.key") && message.contains("BEGIN PRIVATE KEY"),
            "{message}"
        );
    }

    #[test]
    fn self_signed_covers_localhost_and_loopback_and_parses_back() {
        let generated = self_signed().unwrap();
        let der = CertificateDer::from_pem_slice(generated.cert_pem.as_bytes()).unwrap();
        assert_eq!(der.as_ref(), generated.certified_key.cert[0].as_ref());
        assert!(!format!("{generated:?}").contains("PRIVATE"));
    }

    #[test]
    fn a_client_ca_must_hold_a_ca_certificate() {
        let dir = TempDir::new();
        let ca = dir.write("ca.crt", &generated().cert.pem());
        assert!(client_verifier(&ca).is_ok());
        let resolver = CertResolver::new(self_signed().unwrap().certified_key);
        let config = server_config_with_client_auth(resolver, Some(client_verifier(&ca).unwrap()));
        assert!(config.is_ok());

        let key_only = dir.write("key.pem", &generated().signing_key.serialize_pem());
        let message = client_verifier(&key_only).unwrap_err().to_string();
        assert!(
            message.contains("key.pem") && message.contains("no certificate"),
            "{message}"
        );
        let missing = dir.0.join("missing-ca.crt");
        let message = client_verifier(&missing).unwrap_err().to_string();
        assert!(message.contains("missing-ca.crt"), "{message}");
    }

    #[test]
    fn expiry_is_the_certificates_not_after() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 7, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let dir = TempDir::new();
        let cert_path = dir.write("tls.crt", &cert.pem());
        let key_path = dir.write("tls.key", &key.serialize_pem());
        let loaded = load_pem_files(&cert_path, &key_path).unwrap();
        assert_eq!(
            expiry(&loaded).unwrap().unix_timestamp(),
            rcgen::date_time_ymd(2031, 7, 1).unix_timestamp()
        );
    }

    #[test]
    fn resolver_serves_the_replacement() {
        let first = self_signed().unwrap().certified_key;
        let second = self_signed().unwrap().certified_key;
        let resolver = CertResolver::new(first.clone());
        assert!(Arc::ptr_eq(&resolver.current(), &first));
        resolver.replace(second.clone());
        assert!(Arc::ptr_eq(&resolver.current(), &second));
        let config = server_config(resolver).unwrap();
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }
}
