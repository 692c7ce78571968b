//! Durations as users write them in k6: "500ms", "2m30s", "1h", "1.5s".

use serde::{Deserialize, Deserializer};
use std::fmt;
use std::time::Duration;

/// The longest duration a plan may write: 100 years. Far beyond any test,
/// and far enough from `Duration`'s and the clock's limits that sums of
/// durations (stages, start times, `--start-at`) cannot overflow.
pub const MAX: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Seconds as a duration, for numbers that come from arithmetic or from a
/// file (a summary export): NaN and negatives are 0, anything longer is
/// [`MAX`]. `Duration::from_secs_f64` panics on all of those.
pub fn secs(x: f64) -> Duration {
    if x.is_nan() || x <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(x).map_or(MAX, |d| d.min(MAX))
}

/// A duration as written that volley cannot read; each holds the text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration; write e.g. \"30s\", \"500ms\" or \"2m30s\"")]
    Empty,
    #[error("{0:?} is not a duration; write e.g. \"30s\", \"500ms\", \"2m30s\" or \"1h\"")]
    Invalid(String),
    #[error("duration {text:?} has no unit; write e.g. \"{value}s\" or \"{value}ms\"")]
    NoUnit { text: String, value: f64 },
    #[error("duration {0:?} is longer than 100 years; write a shorter one, e.g. \"1h\" or \"30d\"")]
    TooLong(String),
    #[error("range {0:?} ends before it starts; write the smaller value first")]
    Backwards(String),
}

/// Parse "500ms", "2m30s", "1h5m", "1.5s", "250us". A bare number is refused:
/// the unit is what makes a plan readable.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(bad(text));
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| bad(text))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            "" => {
                return Err(DurationError::NoUnit {
                    text: text.to_string(),
                    value,
                });
            }
            _ => return Err(bad(text)),
        };
        total += value * scale;
    }
    match Duration::try_from_secs_f64(total) {
        Ok(d) if d <= MAX => Ok(d),
        _ => Err(DurationError::TooLong(text.to_string())),
    }
}

fn bad(text: &str) -> DurationError {
    DurationError::Invalid(text.to_string())
}

/// Format like k6 does in its summary: "1m30s", "250ms", "1.2s".
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    let secs = d.as_secs_f64();
    if secs >= 60.0 {
        let total = secs.round() as u64;
        let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
        let mut out = String::new();
        if h > 0 {
            out.push_str(&format!("{h}h"));
        }
        if m > 0 || h > 0 {
            out.push_str(&format!("{m}m"));
        }
        out.push_str(&format!("{s}s"));
        out
    } else if secs >= 1.0 {
        trim_float(secs, "s")
    } else if secs >= 0.001 {
        trim_float(secs * 1e3, "ms")
    } else {
        trim_float(secs * 1e6, "µs")
    }
}

fn trim_float(v: f64, unit: &str) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}{unit}")
}

/// A duration field in a plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
            .map(Dur)
            .map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

/// A fixed duration or a range "1s..3s" picked uniformly each time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurRange {
    pub min: Duration,
    pub max: Duration,
}

impl DurRange {
    pub fn parse(text: &str) -> Result<Self, DurationError> {
        match text.split_once("..") {
            Some((a, b)) => {
                let (min, max) = (parse_duration(a)?, parse_duration(b)?);
                if max < min {
                    return Err(DurationError::Backwards(text.to_string()));
                }
                Ok(Self { min, max })
            }
            None => {
                let d = parse_duration(text)?;
                Ok(Self { min: d, max: d })
            }
        }
    }

    pub fn pick(&self, rng: &mut fastrand::Rng) -> Duration {
        if self.max == self.min {
            return self.min;
        }
        let span = (self.max - self.min).as_nanos() as u64;
        self.min + Duration::from_nanos(rng.u64(0..=span))
    }

    pub fn is_zero(&self) -> bool {
        self.max.is_zero()
    }
}

impl<'de> Deserialize<'de> for DurRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DurRange::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_k6_durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m30s").unwrap(), Duration::from_secs(150));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
    }

    #[test]
    fn refuses_unitless_and_garbage() {
        assert_eq!(
            parse_duration("30").unwrap_err().to_string(),
            "duration \"30\" has no unit; write e.g. \"30s\" or \"30ms\""
        );
        assert_eq!(
            parse_duration("fast"),
            Err(DurationError::Invalid("fast".into()))
        );
        assert!(parse_duration("5x").is_err());
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert_eq!(
            DurRange::parse("3s..1s").unwrap_err().to_string(),
            "range \"3s..1s\" ends before it starts; write the smaller value first"
        );
    }

    #[test]
    fn refuses_durations_too_long_to_hold() {
        for text in [
            "18446744073709551616s",
            "99999999999999h",
            &format!("{}s", "9".repeat(400)),
        ] {
            let e = parse_duration(text).unwrap_err();
            assert!(matches!(e, DurationError::TooLong(_)), "{text}: {e}");
            assert!(
                e.to_string().contains("longer than 100 years"),
                "{text}: {e}"
            );
        }
        assert!(parse_duration("36500d").is_ok());
        assert!(parse_duration("36501d").is_err());
    }

    #[test]
    fn seconds_from_numbers_never_panic() {
        assert_eq!(secs(f64::NAN), Duration::ZERO);
        assert_eq!(secs(-1.0), Duration::ZERO);
        assert_eq!(secs(1e300), MAX);
        assert_eq!(secs(f64::INFINITY), MAX);
        assert_eq!(secs(1.5), Duration::from_millis(1500));
    }

    #[test]
    fn ranges() {
        let r = DurRange::parse("1s..3s").unwrap();
        assert_eq!(
            (r.min, r.max),
            (Duration::from_secs(1), Duration::from_secs(3))
        );
        let mut rng = fastrand::Rng::with_seed(1);
        for _ in 0..100 {
            let d = r.pick(&mut rng);
            assert!(d >= r.min && d <= r.max);
        }
        assert!(DurRange::parse("3s..1s").is_err());
    }

    #[test]
    fn formats() {
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }
}
