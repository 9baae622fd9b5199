//! AdmissionReview in, AdmissionReview out. (Stub: the engine lands next.)

use crate::settings::Settings;

/// The admission routes the server exposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// `POST /mutate`: enforce-mode mutation (MutatingWebhookConfiguration).
    Mutate,
    /// `POST /validate`: enforce-mode validation (ValidatingWebhookConfiguration).
    Validate,
    /// `POST /audit`: report-only, every finding as a warning.
    Audit,
}

impl Route {
    pub const ALL: [Route; 3] = [Route::Mutate, Route::Validate, Route::Audit];

    pub fn path(self) -> &'static str {
        match self {
            Route::Mutate => "/mutate",
            Route::Validate => "/validate",
            Route::Audit => "/audit",
        }
    }

    /// Short name, used as a metrics label.
    pub fn name(self) -> &'static str {
        &self.path()[1..]
    }
}

/// What the policy side of the server needs: the settings, and whether the
/// whole server runs report-only (`--audit`).
#[derive(Debug, Clone, Default)]
pub struct PolicyConfig {
    pub settings: Settings,
    pub audit_only: bool,
}

/// What one review produced, for the HTTP layer to send, log and count.
#[derive(Debug, Clone)]
pub struct ReviewReply {
    /// HTTP status: 200 for any answered review, 400 for a body that is not
    /// an AdmissionReview, 500 for an internal error.
    pub status: u16,
    /// Response body: JSON AdmissionReview for 200, plain text otherwise.
    pub body: Vec<u8>,
    pub log: ReviewLog,
}

/// The facts about a review worth logging and counting. Never the object body.
#[derive(Debug, Clone, Default)]
pub struct ReviewLog {
    pub uid: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub operation: String,
    /// `allowed`, `patched`, `denied`, `skipped`, `ignored`, `bad-request`, `error`.
    pub outcome: &'static str,
    pub rules: Vec<String>,
    pub warnings: usize,
}

/// Answers one admission review body for a route.
pub fn answer(_route: Route, _body: &[u8], _config: &PolicyConfig) -> ReviewReply {
    ReviewReply {
        status: 500,
        body: b"engine not wired yet".to_vec(),
        log: ReviewLog {
            outcome: "error",
            ..ReviewLog::default()
        },
    }
}
