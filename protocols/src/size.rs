//! Byte sizes for people, in one convention: IEC, 1024-based, with the
//! units that say so (KiB, MiB, GiB). Memory (RSS from /proc, ps, top) and
//! slope thresholds (`slope<100MB/h`, where MB is read as MiB) count in
//! 1024s, so every size volley prints does too.

const UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];

/// `v` bytes scaled to its unit: (value below 1024, unit).
pub fn scale(v: f64) -> (f64, &'static str) {
    let mut x = v.abs();
    let mut i = 0;
    while x >= 1024.0 && i < UNITS.len() - 1 {
        x /= 1024.0;
        i += 1;
    }
    (x.copysign(v), UNITS[i])
}

/// Three significant digits: `45.2 MiB`, `1.76 GiB`, `812 B`, `-12.0 KiB`.
pub fn format_bytes(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    let (x, unit) = scale(v);
    if unit == "B" {
        return format!("{x:.0} B");
    }
    format!("{} {unit}", sig3(x))
}

/// Three significant digits, no exponent.
pub fn sig3(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_1024_based_and_say_so() {
        assert_eq!(format_bytes(0.0), "0 B");
        assert_eq!(format_bytes(812.0), "812 B");
        assert_eq!(format_bytes(1024.0), "1.00 KiB");
        assert_eq!(format_bytes(-12.0 * 1024.0), "-12.0 KiB");
        assert_eq!(format_bytes(45.25 * 1024.0 * 1024.0), "45.2 MiB");
        assert_eq!(format_bytes(1.5e9), "1.40 GiB");
        assert_eq!(format_bytes(u64::MAX as f64), "16.0 EiB");
        assert!(format_bytes(u128::MAX as f64).ends_with(" YiB"));
        assert_eq!(format_bytes(f64::NAN), "–");
        assert_eq!(scale(3.0 * 1024.0 * 1024.0), (3.0, "MiB"));
    }
}
