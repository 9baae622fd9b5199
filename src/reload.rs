//! Certificate hot reload: serve a renewed certificate without a restart.
//!
//! cert-manager renews before expiry and the kubelet updates the Secret
//! volume by writing a new timestamped directory and swapping the `..data`
//! symlink, so watching the files for writes misses it and inotify semantics
//! differ between volume types. Instead both files are re-read every
//! interval (they are a few kilobytes on tmpfs) and compared with what was
//! read before. A pair is loaded once it has read the same on two polls in a
//! row, so a reader racing a writer that updates the two files one after the
//! other never sees a half-written pair. A pair that does not load (garbage,
//! a key from another certificate) is refused: the previous certificate keeps
//! serving, the error is logged and counted once, and the files are tried
//! again only when they change again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::sign::CertifiedKey;
use tracing::{error, info, warn};

use crate::metrics::Metrics;
use crate::tls::{self, CertResolver, TlsError};

/// The certificate and key files of the webhook listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// What the two files held at one poll; a read error is kept as its message
/// so that a file that stays missing is reported once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contents {
    Read { cert: Vec<u8>, key: Vec<u8> },
    Unreadable(String),
}

impl CertFiles {
    fn read_both(&self) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
        let read = |path: &Path, what: &'static str| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                what,
                path: path.display().to_string(),
                source,
            })
        };
        Ok((read(&self.cert, "certificate")?, read(&self.key, "key")?))
    }

    /// Reads both files; paths are followed through symlinks on every read,
    /// so a swapped `..data` link is seen at once.
    pub fn read(&self) -> Contents {
        match self.read_both() {
            Ok((cert, key)) => Contents::Read { cert, key },
            Err(err) => Contents::Unreadable(err.to_string()),
        }
    }

    /// Reads and loads the pair, as at start-up; the contents are the
    /// baseline for [`Reloader::new`].
    pub fn load(&self) -> Result<(Arc<CertifiedKey>, Contents), TlsError> {
        let (cert, key) = self.read_both()?;
        let loaded = tls::parse_pem_pair(&cert, &key, &self.cert, &self.key)?;
        Ok((loaded, Contents::Read { cert, key }))
    }

    fn parse(&self, contents: &Contents) -> Result<Arc<CertifiedKey>, String> {
        match contents {
            Contents::Read { cert, key } => {
                tls::parse_pem_pair(cert, key, &self.cert, &self.key).map_err(|err| err.to_string())
            }
            Contents::Unreadable(message) => Err(message.clone()),
        }
    }
}

/// What one poll did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Poll {
    /// The files hold what was last loaded or refused.
    Unchanged,
    /// The files changed since the last poll; they are loaded once they read
    /// the same on the next one.
    Settling,
    /// The new pair is served from now on; it expires at `not_after`.
    Reloaded { not_after: Option<i64> },
    /// The new pair was refused; the previous one is still served.
    Refused(String),
}

/// Polls [`CertFiles`] and installs changed pairs into a [`CertResolver`].
#[derive(Debug)]
pub struct Reloader {
    files: CertFiles,
    resolver: Arc<CertResolver>,
    metrics: Arc<Metrics>,
    /// What the files held when last loaded or refused.
    settled: Contents,
    /// A change seen on the last poll, not yet stable.
    candidate: Option<Contents>,
}

impl Reloader {
    /// `baseline` is what the files held when the resolver's key was loaded
    /// ([`CertFiles::load`]).
    pub fn new(
        files: CertFiles,
        baseline: Contents,
        resolver: Arc<CertResolver>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Reloader {
            files,
            resolver,
            metrics,
            settled: baseline,
            candidate: None,
        }
    }

    /// Judges one reading of the files (from [`CertFiles::read`]).
    pub fn observe(&mut self, contents: Contents) -> Poll {
        if contents == self.settled {
            self.candidate = None;
            return Poll::Unchanged;
        }
        if self.candidate.as_ref() != Some(&contents) {
            self.candidate = Some(contents);
            return Poll::Settling;
        }
        self.candidate = None;
        let outcome = match self.files.parse(&contents) {
            Ok(key) => {
                let not_after = tls::expiry(&key);
                self.resolver.replace(key);
                self.metrics.record_certificate_reload();
                if let Some(not_after) = not_after {
                    self.metrics
                        .set_certificate_expiry(not_after.unix_timestamp());
                    info!(
                        cert = %self.files.cert.display(),
                        not_after = %not_after,
                        "serving certificate reloaded; new TLS handshakes use it"
                    );
                    if not_after < time::OffsetDateTime::now_utc() {
                        warn!(
                            cert = %self.files.cert.display(),
                            not_after = %not_after,
                            "the reloaded serving certificate has already expired"
                        );
                    }
                }
                Poll::Reloaded {
                    not_after: not_after.map(|t| t.unix_timestamp()),
                }
            }
            Err(message) => {
                self.metrics.record_certificate_reload_error();
                error!(
                    error = %message,
                    "changed TLS files refused; still serving the previous certificate (retried when the files change again)"
                );
                Poll::Refused(message)
            }
        };
        self.settled = contents;
        outcome
    }

    /// Polls every `interval` until `stop` completes.
    pub async fn run(mut self, interval: Duration, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut stop => return,
                _ = ticks.tick() => {}
            }
            let files = self.files.clone();
            // The reads are tiny, but a stalled volume must not stall a
            // runtime worker.
            let contents = match tokio::task::spawn_blocking(move || files.read()).await {
                Ok(contents) => contents,
                Err(err) => Contents::Unreadable(format!("cannot read the TLS files: {err}")),
            };
            self.observe(contents);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "rollguard-reload-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn pair() -> (String, String) {
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        (generated.cert.pem(), generated.signing_key.serialize_pem())
    }

    fn setup() -> (TempDir, CertFiles, Reloader, Arc<Metrics>) {
        let dir = TempDir::new();
        let files = CertFiles {
            cert: dir.0.join("tls.crt"),
            key: dir.0.join("tls.key"),
        };
        let (cert, key) = pair();
        std::fs::write(&files.cert, cert).unwrap();
        std::fs::write(&files.key, key).unwrap();
        let (key, baseline) = files.load().unwrap();
        let metrics = Arc::new(Metrics::new());
        let reloader = Reloader::new(
            files.clone(),
            baseline,
            CertResolver::new(key),
            metrics.clone(),
        );
        (dir, files, reloader, metrics)
    }

    fn counter(metrics: &Metrics, name: &str) -> u64 {
        let text = metrics.encode();
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    }

    #[test]
    fn a_new_pair_is_loaded_once_it_reads_the_same_twice() {
        let (_dir, files, mut reloader, metrics) = setup();
        assert_eq!(reloader.observe(files.read()), Poll::Unchanged);
        let (cert, key) = pair();
        std::fs::write(&files.cert, &cert).unwrap();
        // Only the certificate so far: unstable, not loaded.
        assert_eq!(reloader.observe(files.read()), Poll::Settling);
        std::fs::write(&files.key, &key).unwrap();
        assert_eq!(reloader.observe(files.read()), Poll::Settling);
        assert!(matches!(
            reloader.observe(files.read()),
            Poll::Reloaded { not_after: Some(_) }
        ));
        assert_eq!(reloader.observe(files.read()), Poll::Unchanged);
        let served = reloader.resolver.current();
        let expected = rustls::pki_types::CertificateDer::from_pem_slice(cert.as_bytes());
        use rustls::pki_types::pem::PemObject as _;
        assert_eq!(served.cert[0].as_ref(), expected.unwrap().as_ref());
        assert_eq!(counter(&metrics, "rollguard_certificate_reloads_total"), 1);
        assert_eq!(
            counter(&metrics, "rollguard_certificate_reload_errors_total"),
            0
        );
    }

    #[test]
    fn a_broken_pair_is_refused_once_and_the_old_key_keeps_serving() {
        let (_dir, files, mut reloader, metrics) = setup();
        let before = reloader.resolver.current();
        let (cert, _) = pair();
        std::fs::write(&files.cert, cert).unwrap();
        assert_eq!(reloader.observe(files.read()), Poll::Settling);
        let Poll::Refused(message) = reloader.observe(files.read()) else {
            panic!("a mismatched pair must be refused");
        };
        assert!(message.contains("does not match"), "{message}");
        // Not retried while the files stay as they are.
        for _ in 0..5 {
            assert_eq!(reloader.observe(files.read()), Poll::Unchanged);
        }
        std::fs::write(&files.key, "garbage").unwrap();
        assert_eq!(reloader.observe(files.read()), Poll::Settling);
        assert!(matches!(reloader.observe(files.read()), Poll::Refused(_)));
        std::fs::remove_file(&files.key).unwrap();
        reloader.observe(files.read());
        let Poll::Refused(message) = reloader.observe(files.read()) else {
            panic!("a missing key must be refused");
        };
        assert!(message.contains("tls.key"), "{message}");
        assert!(Arc::ptr_eq(&before, &reloader.resolver.current()));
        assert_eq!(
            counter(&metrics, "rollguard_certificate_reload_errors_total"),
            3
        );
        assert_eq!(counter(&metrics, "rollguard_certificate_reloads_total"), 0);
    }
}
