//! Numbers for people: milliseconds, bytes, values by unit, seconds, levels.

use volley_protocols::duration::format_duration;
use volley_protocols::metrics::Unit;

/// Milliseconds: `212.40ms`, `850µs`, `1m 3s`.
pub fn ms(v: f64) -> String {
    if v >= 1000.0 {
        format_duration(volley_protocols::duration::secs(v / 1000.0))
    } else if v >= 1.0 {
        format!("{v:.2}ms")
    } else {
        format!("{:.0}µs", v * 1000.0)
    }
}

/// Bytes: `45.2 MiB` (1024-based, see `volley_protocols::size`).
pub use volley_protocols::size::format_bytes as bytes;

pub fn value(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Time => ms(v),
        Unit::Data => bytes(v),
        Unit::Default => {
            if v.fract() == 0.0 && v.abs() < 1e15 {
                format!("{v:.0}")
            } else if v != 0.0 && v.abs() < 1.0 {
                // Three significant digits: a cost of $0.000212 is not 0.00.
                let decimals = (2 - v.abs().log10().floor() as i64).clamp(2, 12) as usize;
                format!("{v:.decimals$}")
            } else {
                format!("{v:.2}")
            }
        }
    }
}

/// Seconds as a duration; answers are whole seconds, so none is "0s".
pub fn secs_text(s: f64) -> String {
    if s < 0.0005 {
        return "0s".into();
    }
    format_duration(volley_protocols::duration::secs(s))
}

/// A load level: VUs are whole, rates may not be.
pub fn level_text(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}
