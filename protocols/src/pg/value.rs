//! Parameters go to the server as text, the way psql and pgbench send them:
//! the server parses them for the statement's parameter types, so a template
//! such as `"{{ rand_int(1, 100) }}"` fits an int4, a numeric or a text
//! parameter alike. Captured columns come back in binary and are turned into
//! text here.

use std::error::Error;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_postgres::types::{Format, FromSql, IsNull, ToSql, Type, to_sql_checked};

type BoxError = Box<dyn Error + Sync + Send>;

/// A parameter in text format.
#[derive(Debug)]
pub struct TextParam<'a>(pub &'a str);

impl ToSql for TextParam<'_> {
    fn to_sql(&self, _ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, BoxError> {
        out.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    fn encode_format(&self, _ty: &Type) -> Format {
        Format::Text
    }

    to_sql_checked!();
}

/// A column's raw bytes, whatever its type (None for NULL).
pub struct Raw<'a>(pub Option<&'a [u8]>);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(Raw(Some(raw)))
    }

    fn from_sql_null(_ty: &Type) -> Result<Self, BoxError> {
        Ok(Raw(None))
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }
}

/// Types a capture can turn into text.
pub fn can_capture(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::BOOL
            | Type::INT2
            | Type::INT4
            | Type::INT8
            | Type::OID
            | Type::FLOAT4
            | Type::FLOAT8
            | Type::NUMERIC
            | Type::TEXT
            | Type::VARCHAR
            | Type::BPCHAR
            | Type::NAME
            | Type::UNKNOWN
            | Type::JSON
            | Type::JSONB
            | Type::UUID
            | Type::DATE
            | Type::TIMESTAMP
            | Type::TIMESTAMPTZ
    )
}

/// Write a binary value of type `ty` as the text PostgreSQL would accept back
/// as a parameter. NULL writes nothing. False when the value cannot be read.
pub fn write_text(ty: &Type, raw: Option<&[u8]>, out: &mut String) -> bool {
    let Some(raw) = raw else { return true };
    let int = |n: usize| -> Option<i64> {
        (raw.len() == n).then(|| {
            let mut b = [0u8; 8];
            b[8 - n..].copy_from_slice(raw);
            // Sign-extend from n bytes.
            i64::from_be_bytes(b) << (64 - 8 * n) >> (64 - 8 * n)
        })
    };
    match *ty {
        Type::BOOL => match raw {
            [0] => out.push_str("false"),
            [_] => out.push_str("true"),
            _ => return false,
        },
        Type::INT2 => return int(2).map(|v| write!(out, "{v}")).is_some(),
        Type::INT4 => return int(4).map(|v| write!(out, "{v}")).is_some(),
        Type::INT8 => return int(8).map(|v| write!(out, "{v}")).is_some(),
        Type::OID => {
            let Ok(b) = <[u8; 4]>::try_from(raw) else {
                return false;
            };
            let _ = write!(out, "{}", u32::from_be_bytes(b));
        }
        Type::FLOAT4 => {
            let Ok(b) = <[u8; 4]>::try_from(raw) else {
                return false;
            };
            let _ = write!(out, "{}", f32::from_be_bytes(b));
        }
        Type::FLOAT8 => {
            let Ok(b) = <[u8; 8]>::try_from(raw) else {
                return false;
            };
            let _ = write!(out, "{}", f64::from_be_bytes(b));
        }
        Type::NUMERIC => return numeric(raw, out),
        Type::JSONB => match raw.split_first() {
            Some((1, text)) => return push_utf8(text, out),
            _ => return false,
        },
        Type::UUID => {
            let Ok(b) = <[u8; 16]>::try_from(raw) else {
                return false;
            };
            let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
            out.push_str(
                uuid::Uuid::from_bytes(b)
                    .hyphenated()
                    .encode_lower(&mut buf),
            );
        }
        Type::DATE => {
            let Ok(b) = <[u8; 4]>::try_from(raw) else {
                return false;
            };
            let days = i32::from_be_bytes(b) as i64;
            let Some(t) = pg_epoch_plus(days * 86_400_000_000) else {
                return false;
            };
            let text = humantime::format_rfc3339_seconds(t).to_string();
            out.push_str(&text[..10]);
        }
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            let Ok(b) = <[u8; 8]>::try_from(raw) else {
                return false;
            };
            let Some(t) = pg_epoch_plus(i64::from_be_bytes(b)) else {
                return false;
            };
            let text = humantime::format_rfc3339_micros(t).to_string();
            if *ty == Type::TIMESTAMP {
                // No zone: the wall-clock time as stored.
                out.push_str(text.trim_end_matches('Z'));
            } else {
                out.push_str(&text);
            }
        }
        _ => return push_utf8(raw, out),
    }
    true
}

fn push_utf8(raw: &[u8], out: &mut String) -> bool {
    match std::str::from_utf8(raw) {
        Ok(s) => {
            out.push_str(s);
            true
        }
        Err(_) => false,
    }
}

/// 2000-01-01T00:00:00Z plus `micros`.
fn pg_epoch_plus(micros: i64) -> Option<SystemTime> {
    let epoch = UNIX_EPOCH + Duration::from_secs(946_684_800);
    if micros >= 0 {
        epoch.checked_add(Duration::from_micros(micros as u64))
    } else {
        epoch.checked_sub(Duration::from_micros(micros.unsigned_abs()))
    }
}

/// NUMERIC's binary form: ndigits, weight, sign, dscale, then base-10000 digits.
fn numeric(raw: &[u8], out: &mut String) -> bool {
    if raw.len() < 8 {
        return false;
    }
    let word = |i: usize| u16::from_be_bytes([raw[i], raw[i + 1]]);
    let ndigits = word(0) as usize;
    let weight = word(2) as i16 as i32;
    let sign = word(4);
    let dscale = word(6) as usize;
    if raw.len() != 8 + 2 * ndigits {
        return false;
    }
    match sign {
        0xC000 => {
            out.push_str("NaN");
            return true;
        }
        0xD000 => {
            out.push_str("Infinity");
            return true;
        }
        0xF000 => {
            out.push_str("-Infinity");
            return true;
        }
        0x4000 => out.push('-'),
        _ => {}
    }
    let digit = |i: i32| -> u16 {
        if i >= 0 && (i as usize) < ndigits {
            word(8 + 2 * i as usize)
        } else {
            0
        }
    };
    // Integer part: groups 0..=weight.
    if weight < 0 {
        out.push('0');
    } else {
        for i in 0..=weight {
            if i == 0 {
                let _ = write!(out, "{}", digit(i));
            } else {
                let _ = write!(out, "{:04}", digit(i));
            }
        }
    }
    if dscale > 0 {
        out.push('.');
        let mut written = 0;
        let mut i = weight + 1;
        while written < dscale {
            let group = digit(i);
            for p in [1000, 100, 10, 1] {
                if written == dscale {
                    break;
                }
                out.push(char::from(b'0' + (group / p % 10) as u8));
                written += 1;
            }
            i += 1;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(ty: Type, raw: &[u8]) -> String {
        let mut s = String::new();
        assert!(write_text(&ty, Some(raw), &mut s), "{ty} {raw:?}");
        s
    }

    #[test]
    fn integers_and_bools() {
        assert_eq!(text(Type::INT4, &42i32.to_be_bytes()), "42");
        assert_eq!(text(Type::INT4, &(-7i32).to_be_bytes()), "-7");
        assert_eq!(text(Type::INT2, &(-2i16).to_be_bytes()), "-2");
        assert_eq!(
            text(Type::INT8, &9_000_000_000i64.to_be_bytes()),
            "9000000000"
        );
        assert_eq!(text(Type::BOOL, &[1]), "true");
        assert_eq!(text(Type::FLOAT8, &1.5f64.to_be_bytes()), "1.5");
        assert!(!write_text(&Type::INT4, Some(&[1, 2]), &mut String::new()));
    }

    #[test]
    fn numeric_values() {
        // 12345.678: weight 1, digits [1, 2345, 6780], dscale 3.
        let mut raw = vec![];
        for w in [3u16, 1, 0, 3, 1, 2345, 6780] {
            raw.extend_from_slice(&w.to_be_bytes());
        }
        assert_eq!(text(Type::NUMERIC, &raw), "12345.678");
        // -0.05: weight -1, digits [500], dscale 2.
        let mut raw = vec![];
        for w in [1u16, (-1i16) as u16, 0x4000, 2, 500] {
            raw.extend_from_slice(&w.to_be_bytes());
        }
        assert_eq!(text(Type::NUMERIC, &raw), "-0.05");
        // 0: no digits.
        let raw = [0u8, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(text(Type::NUMERIC, &raw), "0");
    }

    #[test]
    fn times_and_text() {
        assert_eq!(
            text(Type::TIMESTAMPTZ, &0i64.to_be_bytes()),
            "2000-01-01T00:00:00.000000Z"
        );
        assert_eq!(text(Type::DATE, &1i32.to_be_bytes()), "2000-01-02");
        assert_eq!(text(Type::TEXT, b"abc"), "abc");
        assert_eq!(text(Type::JSONB, b"\x01{\"a\":1}"), "{\"a\":1}");
    }
}
