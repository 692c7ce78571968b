//! What generators make, and how it reads as text (CSV exports, JSON).

use std::fmt::Write as _;

/// Microseconds between 1970-01-01 and 2000-01-01 (PostgreSQL's epoch).
pub const PG_EPOCH_US: i64 = 946_684_800_000_000;
pub const DAY_US: i64 = 86_400_000_000;

/// The kind of values a generator makes; checked against the column's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Int,
    Float,
    Decimal,
    Bool,
    Text,
    Uuid,
    Time,
    Json,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Int => "whole numbers",
            Kind::Float => "floating-point numbers",
            Kind::Decimal => "decimal numbers",
            Kind::Bool => "true/false",
            Kind::Text => "text",
            Kind::Uuid => "UUIDs",
            Kind::Time => "timestamps",
            Kind::Json => "JSON",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub enum Value {
    #[default]
    Null,
    Int(i64),
    Float(f64),
    /// mantissa, digits after the point
    Dec(i64, u32),
    Bool(bool),
    Text(String),
    Uuid([u8; 16]),
    /// microseconds since 1970-01-01 UTC
    Time(i64),
    Json(String),
}

impl Value {
    /// Reuse this slot's string buffer for a text value.
    #[inline]
    pub fn text_buf(&mut self) -> &mut String {
        if !matches!(self, Value::Text(_)) {
            *self = Value::Text(String::new());
        }
        match self {
            Value::Text(s) => {
                s.clear();
                s
            }
            _ => unreachable!(),
        }
    }

    #[inline]
    pub fn json_buf(&mut self) -> &mut String {
        if !matches!(self, Value::Json(_)) {
            *self = Value::Json(String::new());
        }
        match self {
            Value::Json(s) => {
                s.clear();
                s
            }
            _ => unreachable!(),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) | Value::Json(s) => Some(s),
            _ => None,
        }
    }

    /// The text form PostgreSQL and CSV readers accept.
    pub fn write_text(&self, out: &mut String) {
        match self {
            Value::Null => {}
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Float(f) => {
                let _ = write!(out, "{f}");
            }
            Value::Dec(m, s) => write_decimal(*m, *s, out),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Text(s) | Value::Json(s) => out.push_str(s),
            Value::Uuid(b) => {
                let _ = write!(out, "{}", uuid::Uuid::from_bytes(*b));
            }
            Value::Time(us) => write_time(*us, out),
        }
    }

    /// As a JSON value inside a template.
    pub fn write_json(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Int(_) | Value::Dec(..) | Value::Bool(_) => self.write_text(out),
            Value::Float(f) if f.is_finite() => self.write_text(out),
            Value::Float(_) => out.push_str("null"),
            Value::Json(s) => out.push_str(s),
            Value::Text(s) => {
                out.push_str(&serde_json::to_string(s).unwrap_or_default());
            }
            Value::Uuid(_) | Value::Time(_) => {
                out.push('"');
                self.write_text(out);
                out.push('"');
            }
        }
    }
}

pub fn write_decimal(m: i64, scale: u32, out: &mut String) {
    if scale == 0 {
        let _ = write!(out, "{m}");
        return;
    }
    let p = 10u64.pow(scale);
    let a = m.unsigned_abs();
    let sign = if m < 0 { "-" } else { "" };
    let _ = write!(out, "{sign}{}.{:0w$}", a / p, a % p, w = scale as usize);
}

/// RFC 3339 in UTC with microseconds when there are any.
pub fn write_time(us: i64, out: &mut String) {
    let secs = us.div_euclid(1_000_000);
    let frac = us.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, mo, d) = civil_from_days(days);
    let _ = write!(
        out,
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    if frac != 0 {
        let _ = write!(out, ".{frac:06}");
    }
    out.push('Z');
}

/// Howard Hinnant's civil_from_days: days since 1970-01-01 to (y, m, d).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Years PostgreSQL's timestamps hold (4713 BC is year -4712).
const YEARS: std::ops::RangeInclusive<i64> = -4712..=294_276;

/// "2025-01-01", "2025-01-01 12:00:00", "2025-01-01T12:00:00Z", with an
/// optional +hh:mm offset: microseconds since 1970 (UTC). None for what is
/// not a time, or past the years PostgreSQL holds.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, rest) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    };
    let mut it = date.splitn(3, '-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: i64 = it.next()?.parse().ok()?;
    let d: i64 = it.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || !YEARS.contains(&y) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    let (clock, offset_s) = split_offset(rest)?;
    let mut us = days.checked_mul(DAY_US)?;
    if !clock.is_empty() {
        let mut parts = clock.splitn(3, ':');
        let h: i64 = parts.next()?.parse().ok()?;
        let mi: i64 = parts.next().unwrap_or("0").parse().ok()?;
        let sec = parts.next().unwrap_or("0");
        let (whole, frac) = sec.split_once('.').unwrap_or((sec, ""));
        let sec: i64 = whole.parse().ok()?;
        if !(0..=23).contains(&h) || !(0..=59).contains(&mi) || !(0..=60).contains(&sec) {
            return None;
        }
        let mut frac_us = 0i64;
        for (i, c) in frac.chars().take(6).enumerate() {
            frac_us += i64::from(c.to_digit(10)?) * 10i64.pow(5 - i as u32);
        }
        us = us.checked_add(((h * 60 + mi) * 60 + sec) * 1_000_000 + frac_us)?;
    }
    us.checked_sub(offset_s * 1_000_000)
}

fn split_offset(rest: &str) -> Option<(&str, i64)> {
    if let Some(c) = rest.strip_suffix(['Z', 'z']) {
        return Some((c, 0));
    }
    if let Some(i) = rest.rfind(['+', '-']) {
        let (c, off) = (&rest[..i], &rest[i..]);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (h, m) = off[1..].split_once(':').unwrap_or((&off[1..], "0"));
        let h: i64 = h.parse().ok()?;
        let m: i64 = m.parse().ok()?;
        if !(0..=23).contains(&h) || !(0..=59).contains(&m) {
            return None;
        }
        return Some((c, sign * (h * 3600 + m * 60)));
    }
    Some((rest, 0))
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        for s in [
            "2025-01-01T00:00:00Z",
            "1999-12-31T23:59:59.500000Z",
            "2024-02-29T12:30:00Z",
        ] {
            let us = parse_time(s).unwrap();
            let mut out = String::new();
            write_time(us, &mut out);
            assert_eq!(out, s);
        }
        assert_eq!(parse_time("2025-01-01"), parse_time("2025-01-01T00:00:00Z"));
        assert_eq!(
            parse_time("2025-01-01 02:00:00+02:00"),
            parse_time("2025-01-01T00:00:00Z")
        );
        assert_eq!(parse_time("1970-01-01"), Some(0));
        assert_eq!(parse_time("2025-13-01"), None);
        assert_eq!(parse_time("soon"), None);
    }

    #[test]
    fn decimals_print_exactly() {
        let mut s = String::new();
        write_decimal(-1205, 2, &mut s);
        assert_eq!(s, "-12.05");
        s.clear();
        write_decimal(7, 3, &mut s);
        assert_eq!(s, "0.007");
    }
}
