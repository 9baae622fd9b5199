//! Durations as users write them in annotations: `20s`, `1m30s`, `40m`, `1h`,
//! or a bare integer meaning seconds.

use thiserror::Error;

/// The forms accepted, quoted in every error message.
pub const ACCEPTED_FORMS: &str = "20s, 1m30s, 40m, 1h, or a bare number of seconds";

/// Upper bound: a week. Anything longer is a typo, and it keeps arithmetic on
/// grace periods far away from overflow.
pub const MAX_SECONDS: i64 = 7 * 24 * 3600;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("{reason}")]
pub struct DurationError {
    pub reason: String,
}

/// Parses a duration into whole seconds.
pub fn parse_seconds(text: &str) -> Result<i64, DurationError> {
    let fail = |reason: &str| DurationError {
        reason: reason.to_string(),
    };
    let text = text.trim();
    if text.is_empty() {
        return Err(fail("empty duration"));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return bounded(text.parse::<i64>().map_err(|_| fail("number too large"))?);
    }
    let mut total: i64 = 0;
    let mut digits = String::new();
    let mut last_unit_rank = u8::MAX;
    for ch in text.chars() {
        if ch.is_ascii_digit() {
            digits.push(ch);
            continue;
        }
        let (rank, factor) = match ch {
            'h' => (3, 3600),
            'm' => (2, 60),
            's' => (1, 1),
            _ => return Err(fail("unexpected character; use h, m and s units")),
        };
        if digits.is_empty() {
            return Err(fail("a unit must follow a number"));
        }
        if rank >= last_unit_rank {
            return Err(fail("units must appear once each, largest first"));
        }
        last_unit_rank = rank;
        let value: i64 = digits.parse().map_err(|_| fail("number too large"))?;
        total = value
            .checked_mul(factor)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| fail("duration too large"))?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(fail("a number without a unit must stand alone"));
    }
    bounded(total)
}

fn bounded(seconds: i64) -> Result<i64, DurationError> {
    if seconds > MAX_SECONDS {
        return Err(DurationError {
            reason: format!("longer than the maximum of {MAX_SECONDS}s (one week)"),
        });
    }
    Ok(seconds)
}

/// Formats seconds the way users write them (`2400` → `40m`, `90` → `1m30s`).
pub fn format_seconds(seconds: i64) -> String {
    if seconds <= 0 {
        return "0s".to_string();
    }
    let (h, m, s) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_forms() {
        for (text, seconds) in [
            ("20s", 20),
            ("1m30s", 90),
            ("40m", 2400),
            ("1h", 3600),
            ("1h0m5s", 3605),
            ("45", 45),
            ("0s", 0),
            ("0", 0),
            (" 10s ", 10),
        ] {
            assert_eq!(parse_seconds(text), Ok(seconds), "{text}");
        }
    }

    #[test]
    fn rejects_malformed_durations() {
        for text in [
            "",
            "s",
            "10x",
            "1.5s",
            "-5s",
            "10ms",
            "5s1m",
            "1m1m",
            "10 s",
            "1d",
            "20sec",
            "99999999h",
            "9999999999999999999999",
        ] {
            assert!(parse_seconds(text).is_err(), "{text:?} should be rejected");
        }
    }

    #[test]
    fn formats_round_trip() {
        for seconds in [0, 1, 59, 60, 90, 2400, 3600, 3661, 86_400] {
            assert_eq!(parse_seconds(&format_seconds(seconds)), Ok(seconds));
        }
        assert_eq!(format_seconds(2400), "40m");
        assert_eq!(format_seconds(90), "1m30s");
    }
}
