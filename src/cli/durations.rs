//! Duration flags: the annotations' forms (`20s`, `1m30s`, a bare number of
//! seconds), plus milliseconds for the operational timeouts.

use std::time::Duration;

use crate::duration;

/// A duration as in annotations, or milliseconds (`250ms`).
pub(super) fn parse_duration(text: &str) -> Result<Duration, String> {
    if let Some(millis) = text.trim().strip_suffix("ms") {
        if !millis.is_empty() && millis.bytes().all(|b| b.is_ascii_digit()) {
            return millis
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| "number too large".to_string());
        }
    }
    let seconds = duration::parse_seconds(text)
        .map_err(|err| format!("{err}; accepted forms: {}", duration::ACCEPTED_FORMS))?;
    u64::try_from(seconds)
        .map(Duration::from_secs)
        .map_err(|_| "duration cannot be negative".to_string())
}

pub(super) fn parse_nonzero_duration(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        zero if zero.is_zero() => Err("must be longer than 0".to_string()),
        duration => Ok(duration),
    }
}
