//! Least-squares slopes of gauges over time ("does memory grow?"), and the
//! units thresholds write them in: `100MB/h`, `512KB/s`, `2.5/m`.
//!
//! Byte units count in 1024s (KB = KiB), as /proc, ps and top do, and as
//! `volley serve --leak KB_PER_S` does; they are printed as KiB, MiB, GiB.

use volley_protocols::size;

/// The least-squares slope of (seconds, value) points, per second. `None`
/// without two distinct times.
pub fn per_second(points: &[(f64, f64)]) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let mt = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mv = points.iter().map(|p| p.1).sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (t, v) in points {
        sxy += (t - mt) * (v - mv);
        sxx += (t - mt) * (t - mt);
    }
    (sxx > 0.0).then(|| sxy / sxx)
}

/// A least-squares fit taken one point at a time (Welford's updates, stable
/// over hours of byte-sized values): the slope of any number of points in
/// constant memory, equal to [`per_second`] over the same points.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Fit {
    n: f64,
    mt: f64,
    mv: f64,
    sxx: f64,
    sxy: f64,
}

impl Fit {
    pub fn push(&mut self, t: f64, v: f64) {
        self.n += 1.0;
        let dt = t - self.mt;
        self.mt += dt / self.n;
        self.mv += (v - self.mv) / self.n;
        self.sxx += dt * (t - self.mt);
        self.sxy += dt * (v - self.mv);
    }

    /// The slope per second; `None` without two distinct times.
    pub fn per_second(&self) -> Option<f64> {
        (self.n >= 2.0 && self.sxx > 0.0).then(|| self.sxy / self.sxx)
    }

    pub fn per_hour(&self) -> Option<f64> {
        self.per_second().map(|s| s * 3600.0)
    }
}

/// The slope per hour of the points at or after `after` seconds.
pub fn per_hour_after(points: &[(f64, f64)], after: f64) -> Option<f64> {
    let kept: Vec<(f64, f64)> = points.iter().copied().filter(|p| p.0 >= after).collect();
    per_second(&kept).map(|s| s * 3600.0)
}

const BYTE_UNITS: &[(&str, f64)] = &[
    ("b", 1.0),
    ("kb", 1024.0),
    ("kib", 1024.0),
    ("mb", 1024.0 * 1024.0),
    ("mib", 1024.0 * 1024.0),
    ("gb", 1024.0 * 1024.0 * 1024.0),
    ("gib", 1024.0 * 1024.0 * 1024.0),
    ("tb", 1024.0 * 1024.0 * 1024.0 * 1024.0),
    ("tib", 1024.0 * 1024.0 * 1024.0 * 1024.0),
];

/// A slope limit that does not read as an amount per time.
#[derive(Debug, thiserror::Error)]
pub enum RateError {
    #[error("{text:?}: unknown time unit {unit:?}; write a slope as e.g. 100MB/h, 512KB/s or 2/m")]
    TimeUnit { text: String, unit: String },
    #[error("{0:?} is not a slope; write e.g. 100MB/h, 512KB/s or 2/m")]
    NotSlope(String),
    #[error("{0:?}: the amount must be a finite number; write e.g. 100MB/h, 512KB/s or 2/m")]
    NotFinite(String),
    #[error("{text:?}: unknown unit {unit:?}; use B, KB, MB or GB (1024-based)")]
    ByteUnit { text: String, unit: String },
}

/// Parse a rate such as `100MB/h`, `512KB/s`, `2.5/m` or `0` into base
/// units (bytes, or the gauge's own unit) per hour; no time unit means per
/// hour. The bool says whether a byte unit was written.
pub fn parse_rate(text: &str) -> Result<(f64, bool), RateError> {
    let t = text.trim();
    let (amount, per) = match t.split_once('/') {
        Some((a, p)) => (a.trim(), p.trim()),
        None => (t, "h"),
    };
    let seconds = match per.to_ascii_lowercase().as_str() {
        "s" | "sec" | "second" => 1.0,
        "m" | "min" | "minute" => 60.0,
        "h" | "hr" | "hour" => 3600.0,
        "d" | "day" => 86_400.0,
        other => {
            return Err(RateError::TimeUnit {
                text: text.into(),
                unit: other.into(),
            });
        }
    };
    let split = amount
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(amount.len());
    let (num, unit) = amount.split_at(split);
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| RateError::NotSlope(text.into()))?;
    if !n.is_finite() {
        return Err(RateError::NotFinite(text.into()));
    }
    let (factor, bytes) = if unit.is_empty() {
        (1.0, false)
    } else {
        let u = unit.trim().to_ascii_lowercase();
        let f = BYTE_UNITS
            .iter()
            .find(|(name, _)| *name == u)
            .map(|(_, f)| *f)
            .ok_or_else(|| RateError::ByteUnit {
                text: text.into(),
                unit: unit.into(),
            })?;
        (f, true)
    };
    Ok((n * factor * 3600.0 / seconds, bytes))
}

/// A slope per hour for people: `+1.76 GB/h`, `-12.0 KB/h`, `+0.25/h`.
pub fn format_rate(per_hour: f64, bytes: bool) -> String {
    if !per_hour.is_finite() {
        return "–".into();
    }
    let sign = if per_hour < 0.0 { "-" } else { "+" };
    let v = per_hour.abs();
    if bytes {
        let (x, unit) = size::scale(v);
        return format!("{sign}{} {unit}/h", size::sig3(x));
    }
    format!("{sign}{}/h", size::sig3(v))
}

/// Bytes for people, 1024-based like the slope units: `45.2 MiB`.
pub use volley_protocols::size::format_bytes;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_fit_equals_the_batch_one() {
        // Four hours of a 1 GB process leaking 3 MB/h, with noise.
        let pts: Vec<(f64, f64)> = (0..14_400)
            .map(|s| {
                let t = s as f64 + 0.5;
                let noise = ((s * 7919) % 1000) as f64 * 1024.0;
                (t, 1e9 + t * 3.0 * 1024.0 * 1024.0 / 3600.0 + noise)
            })
            .collect();
        let mut fit = Fit::default();
        for (t, v) in &pts {
            fit.push(*t, *v);
        }
        let (a, b) = (fit.per_second().unwrap(), per_second(&pts).unwrap());
        assert!((a - b).abs() < 1e-9 * b.abs(), "{a} vs {b}");
        assert_eq!(Fit::default().per_second(), None);
        let mut one = Fit::default();
        one.push(1.0, 5.0);
        one.push(1.0, 6.0);
        assert_eq!(one.per_second(), None, "one time is no slope");
    }

    #[test]
    fn least_squares_slope() {
        let pts: Vec<(f64, f64)> = (0..10).map(|t| (t as f64, 3.0 * t as f64 + 7.0)).collect();
        assert!((per_second(&pts).unwrap() - 3.0).abs() < 1e-12);
        assert_eq!(per_second(&pts[..1]), None);
        assert_eq!(per_second(&[(1.0, 1.0), (1.0, 5.0)]), None);
        // Warm-up skipped: a jump in the first seconds does not count.
        let mut warm = pts.clone();
        warm[0].1 = -1000.0;
        assert!((per_hour_after(&warm, 1.0).unwrap() - 3.0 * 3600.0).abs() < 1e-6);
    }

    #[test]
    fn parses_rates() {
        let mb = 1024.0 * 1024.0;
        assert_eq!(parse_rate("100MB/h").unwrap(), (100.0 * mb, true));
        assert_eq!(
            parse_rate("512KB/s").unwrap(),
            (512.0 * 1024.0 * 3600.0, true)
        );
        assert_eq!(parse_rate("1.5 GiB / h").unwrap().0, 1.5 * 1024.0 * mb);
        assert_eq!(parse_rate("2/m").unwrap(), (120.0, false));
        assert_eq!(parse_rate("0").unwrap(), (0.0, false));
        assert!(parse_rate("100MB/week").is_err());
        assert!(parse_rate("100XB/h").is_err());
        assert!(parse_rate("fast").is_err());
    }

    #[test]
    fn formats_rates() {
        assert_eq!(format_rate(1024.0 * 1024.0 * 1800.0, true), "+1.76 GiB/h");
        assert_eq!(format_rate(-12.0 * 1024.0, true), "-12.0 KiB/h");
        assert_eq!(format_rate(0.25, false), "+0.25/h");
        assert_eq!(format_bytes(45.25 * 1024.0 * 1024.0), "45.2 MiB");
    }
}
