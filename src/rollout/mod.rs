//! Rollouts as the controllers really run them: a pure model
//! ([`model`]), the scenario a manifest describes ([`scenario`]), and its
//! renderings for `rollguard simulate` ([`render`]).

pub mod model;
pub mod render;
pub mod report;
pub mod scenario;

pub use model::{simulate, Controller, Figures, Scenario, Timeline};
