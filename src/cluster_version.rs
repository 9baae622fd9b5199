//! `--prestop-handler auto`: ask the API server its version once, at start-up,
//! and inject the native `preStop.sleep` action where the cluster has it
//! (Kubernetes >= 1.30), `exec sleep` elsewhere. Never on the request path.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::version::Info;
use tracing::{info, warn};

use crate::settings::PrestopHandler;

/// The first minor release with the `sleep` lifecycle action on by default.
pub const NATIVE_SLEEP_SINCE_MINOR: u32 = 30;

/// How long start-up waits for the API server before falling back to exec.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// `major`/`minor` as the API server reports them; some providers append a
/// `+` to the minor (`"30+"`).
pub fn parse_version(info: &Info) -> Option<(u32, u32)> {
    let digits = |s: &str| -> Option<u32> {
        let n: String = s.chars().take_while(char::is_ascii_digit).collect();
        n.parse().ok()
    };
    match (digits(&info.major), digits(&info.minor)) {
        (Some(major), Some(minor)) => Some((major, minor)),
        // Fall back to gitVersion, e.g. "v1.31.2-gke.100".
        _ => {
            let git = info.git_version.trim_start_matches('v');
            let mut parts = git.split('.');
            Some((digits(parts.next()?)?, digits(parts.next()?)?))
        }
    }
}

/// The handler a cluster of this version supports.
pub fn handler_for(info: &Info) -> PrestopHandler {
    match parse_version(info) {
        Some((major, minor)) if major > 1 || (major == 1 && minor >= NATIVE_SLEEP_SINCE_MINOR) => {
            PrestopHandler::Sleep
        }
        _ => PrestopHandler::Exec,
    }
}

/// Asks the API server behind `client` its version; falls back to `exec`
/// (which works on every version) with one warning when it cannot.
pub async fn detect_with(client: kube::Client, timeout: Duration) -> PrestopHandler {
    match tokio::time::timeout(timeout, client.apiserver_version()).await {
        Ok(Ok(info)) => {
            let handler = handler_for(&info);
            info!(version = %info.git_version, handler = %handler, "chose the preStop handler from the API server version");
            handler
        }
        Ok(Err(err)) => fallback(&format!("the API server did not answer /version: {err}")),
        Err(_) => fallback(&format!(
            "the API server did not answer /version within {timeout:?}"
        )),
    }
}

/// Detects with the in-cluster configuration (or KUBECONFIG).
pub async fn detect() -> PrestopHandler {
    match tokio::time::timeout(LOOKUP_TIMEOUT, kube::Config::infer()).await {
        Ok(Ok(config)) => match kube::Client::try_from(config) {
            Ok(client) => detect_with(client, LOOKUP_TIMEOUT).await,
            Err(err) => fallback(&format!("cannot build a Kubernetes client: {err}")),
        },
        Ok(Err(err)) => fallback(&format!("no in-cluster configuration or KUBECONFIG: {err}")),
        Err(_) => fallback("loading the Kubernetes configuration timed out"),
    }
}

fn fallback(reason: &str) -> PrestopHandler {
    warn!(
        "{reason}; injecting exec sleep preStop hooks (set --prestop-handler sleep on Kubernetes >= 1.30 \
         to use the native sleep action)"
    );
    PrestopHandler::Exec
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(major: &str, minor: &str, git: &str) -> Info {
        Info {
            major: major.into(),
            minor: minor.into(),
            git_version: git.into(),
            ..Info::default()
        }
    }

    #[test]
    fn native_sleep_from_1_30_on() {
        assert_eq!(
            handler_for(&info("1", "30", "v1.30.0")),
            PrestopHandler::Sleep
        );
        assert_eq!(
            handler_for(&info("1", "36", "v1.36.1")),
            PrestopHandler::Sleep
        );
        assert_eq!(
            handler_for(&info("1", "30+", "v1.30.5-gke.1")),
            PrestopHandler::Sleep
        );
        assert_eq!(
            handler_for(&info("1", "29", "v1.29.9")),
            PrestopHandler::Exec
        );
        assert_eq!(
            handler_for(&info("1", "25", "v1.25.0")),
            PrestopHandler::Exec
        );
        assert_eq!(
            handler_for(&info("", "", "v1.31.2-eks-1")),
            PrestopHandler::Sleep
        );
        assert_eq!(handler_for(&info("", "", "garbage")), PrestopHandler::Exec);
    }
}
