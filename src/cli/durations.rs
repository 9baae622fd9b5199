//! Duration flags: the annotations' forms (`20s`, `1m30s`, a bare number of
//! seconds), plus milliseconds for the operational timeouts.

use std::time::Duration;

use crate::duration;

/// A duration as in annotations, or milliseconds (`250ms`).
pub(super) fn parse_duration(text: &str) -> Result<Duration, String> {
    duration::parse_flag(text)
}

pub(super) fn parse_nonzero_duration(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        zero if zero.is_zero() => Err("must be longer than 0".to_string()),
        duration => Ok(duration),
    }
}
