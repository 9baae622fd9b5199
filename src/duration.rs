//! Durations, read by one parser in two grammars: what users write in
//! annotations, flags and settings (`20s`, `1m30s`, `40m`, `1h`, or a bare
//! integer meaning seconds), and Go's `time.Duration` text, which the API
//! server writes in a webhook's `?timeout=` (`10s`, `1.5s`, `500ms`).

use std::time::Duration;

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

/// Parses a duration as users write it into whole seconds.
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
    for term in terms(text, &USER) {
        let term = term.map_err(|malformed| fail(malformed.reason()))?;
        let value: i64 = term.number.parse().map_err(|_| fail("number too large"))?;
        let factor = (term.unit.nanos / NANOS_PER_SECOND) as i64;
        total = value
            .checked_mul(factor)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| fail("duration too large"))?;
    }
    bounded(total)
}

/// Parses a duration flag: the forms of [`parse_seconds`], or whole
/// milliseconds (`250ms`) for the operational timeouts.
pub fn parse_flag(text: &str) -> Result<Duration, String> {
    if let Some(millis) = text.trim().strip_suffix("ms") {
        if !millis.is_empty() && millis.bytes().all(|b| b.is_ascii_digit()) {
            return millis
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| "number too large".to_string());
        }
    }
    let seconds =
        parse_seconds(text).map_err(|err| format!("{err}; accepted forms: {ACCEPTED_FORMS}"))?;
    u64::try_from(seconds)
        .map(Duration::from_secs)
        .map_err(|_| "duration cannot be negative".to_string())
}

/// Parses Go's `time.Duration` text (`10s`, `1m30s`, `1.5s`, `500ms`), the
/// form the API server writes; None for anything else, a sign included.
pub fn parse_go(text: &str) -> Option<Duration> {
    if text.is_empty() {
        return None;
    }
    let mut seconds = 0.0_f64;
    for term in terms(text, &GO) {
        let term = term.ok()?;
        let number: f64 = term.number.parse().ok()?;
        seconds += number * (term.unit.nanos as f64 / NANOS_PER_SECOND as f64);
    }
    Duration::try_from_secs_f64(seconds).ok()
}

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// A unit as a grammar spells it.
struct Unit {
    name: &'static str,
    nanos: u64,
}

const fn unit(name: &'static str, nanos: u64) -> Unit {
    Unit { name, nanos }
}

const HOUR: Unit = unit("h", 3600 * NANOS_PER_SECOND);
const MINUTE: Unit = unit("m", 60 * NANOS_PER_SECOND);
const SECOND: Unit = unit("s", NANOS_PER_SECOND);

/// What one caller accepts. The two differ only in these three.
struct Grammar {
    /// Numbers may have a fraction (`1.5s`).
    fractions: bool,
    /// Largest first.
    units: &'static [Unit],
    /// Each unit at most once, largest first (`1m30s`, never `30s1m`).
    ordered: bool,
}

/// Annotations, flags and settings.
const USER: Grammar = Grammar {
    fractions: false,
    units: &[HOUR, MINUTE, SECOND],
    ordered: true,
};

/// Go's `time.ParseDuration`, without a sign (a timeout has none).
const GO: Grammar = Grammar {
    fractions: true,
    units: &[
        HOUR,
        MINUTE,
        SECOND,
        unit("ms", 1_000_000),
        unit("us", 1_000),
        unit("µs", 1_000),
        unit("ns", 1),
    ],
    ordered: false,
};

/// One `<number><unit>` step of a duration; the number is not parsed yet.
struct Term<'a> {
    number: &'a str,
    unit: &'static Unit,
}

/// Why a text is not a sequence of terms of its grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Malformed {
    UnknownUnit,
    MissingNumber,
    OutOfOrder,
    MissingUnit,
}

impl Malformed {
    /// What users are told (the user grammar's units are h, m and s).
    fn reason(self) -> &'static str {
        match self {
            Malformed::UnknownUnit => "unexpected character; use h, m and s units",
            Malformed::MissingNumber => "a unit must follow a number",
            Malformed::OutOfOrder => "units must appear once each, largest first",
            Malformed::MissingUnit => "a number without a unit must stand alone",
        }
    }
}

/// The terms of `text` in order, up to and including the first malformed one.
fn terms<'a>(
    text: &'a str,
    grammar: &'static Grammar,
) -> impl Iterator<Item = Result<Term<'a>, Malformed>> + 'a {
    let mut rest = text;
    let mut last_rank = None;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let term = next_term(&mut rest, grammar, &mut last_rank);
        if term.is_err() {
            rest = "";
        }
        Some(term)
    })
}

fn next_term<'a>(
    rest: &mut &'a str,
    grammar: &'static Grammar,
    last_rank: &mut Option<usize>,
) -> Result<Term<'a>, Malformed> {
    let is_number = |c: char| c.is_ascii_digit() || (grammar.fractions && c == '.');
    let number_end = rest.find(|c| !is_number(c)).unwrap_or(rest.len());
    let (number, after) = rest.split_at(number_end);
    if after.is_empty() {
        return Err(Malformed::MissingUnit);
    }
    // The longest spelling wins: `ms` is not `m` followed by `s`.
    let (rank, unit) = grammar
        .units
        .iter()
        .enumerate()
        .filter(|(_, unit)| after.starts_with(unit.name))
        .max_by_key(|(_, unit)| unit.name.len())
        .ok_or(Malformed::UnknownUnit)?;
    if number.is_empty() {
        return Err(Malformed::MissingNumber);
    }
    if grammar.ordered {
        if last_rank.is_some_and(|last| rank <= last) {
            return Err(Malformed::OutOfOrder);
        }
        *last_rank = Some(rank);
    }
    *rest = &after[unit.name.len()..];
    Ok(Term { number, unit })
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
    fn go_durations_as_the_api_server_writes_them() {
        assert_eq!(parse_go("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_go("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_go("1h"), Some(Duration::from_secs(3600)));
        for bad in ["", "10", "s", "10x", "-1s", "1..5s", "10s;", "NaNs"] {
            assert_eq!(parse_go(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_the_go_grammar_takes_fractions_small_units_and_any_order() {
        for (text, go) in [
            ("1.5s", Duration::from_millis(1500)),
            (".5s", Duration::from_millis(500)),
            ("10ms", Duration::from_millis(10)),
            ("30s1m", Duration::from_secs(90)),
            ("1m1m", Duration::from_secs(120)),
        ] {
            assert_eq!(parse_go(text), Some(go), "{text}");
            assert!(parse_seconds(text).is_err(), "{text}");
        }
        for text in [" 10s", "10 s"] {
            assert_eq!(parse_go(text), None, "{text:?}");
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
