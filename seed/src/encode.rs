//! PostgreSQL's binary COPY format, and which encoding fits which column.

use crate::value::{DAY_US, Kind, PG_EPOCH_US, Value};
use bytes::{BufMut, BytesMut};

pub const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
pub const TRAILER: &[u8] = &[0xff, 0xff];

/// How one column's values go on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enc {
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric,
    Bool,
    Text,
    Uuid,
    Timestamp,
    Date,
    Json,
    Jsonb,
}

impl Enc {
    /// The encoding for a PostgreSQL base type, by oid (or name for
    /// extension types), or None when volley cannot write that type.
    pub fn for_type(oid: u32, name: &str, is_enum: bool) -> Option<Self> {
        Some(match oid {
            21 => Enc::Int2,
            23 => Enc::Int4,
            20 => Enc::Int8,
            700 => Enc::Float4,
            701 => Enc::Float8,
            1700 => Enc::Numeric,
            16 => Enc::Bool,
            25 | 1043 | 1042 | 19 => Enc::Text,
            2950 => Enc::Uuid,
            1114 | 1184 => Enc::Timestamp,
            1082 => Enc::Date,
            114 => Enc::Json,
            3802 => Enc::Jsonb,
            _ if is_enum || name == "citext" => Enc::Text,
            _ => return None,
        })
    }

    /// The type volley creates values for when there is no database to ask (dry runs).
    pub fn default_for(kind: Kind) -> Self {
        match kind {
            Kind::Int => Enc::Int8,
            Kind::Float => Enc::Float8,
            Kind::Decimal => Enc::Numeric,
            Kind::Bool => Enc::Bool,
            Kind::Text => Enc::Text,
            Kind::Uuid => Enc::Uuid,
            Kind::Time => Enc::Timestamp,
            Kind::Json => Enc::Jsonb,
        }
    }

    /// Does a generator of this kind fit a column with this encoding?
    pub fn accepts(self, kind: Kind) -> bool {
        use Enc::*;
        match kind {
            Kind::Int => matches!(self, Int2 | Int4 | Int8 | Numeric | Float4 | Float8),
            Kind::Float | Kind::Decimal => matches!(self, Numeric | Float4 | Float8),
            Kind::Bool => self == Bool,
            Kind::Text => self == Text,
            Kind::Uuid => matches!(self, Uuid | Text),
            Kind::Time => matches!(self, Timestamp | Date),
            Kind::Json => matches!(self, Json | Jsonb | Text),
        }
    }

    pub fn int_range(self) -> Option<(i64, i64)> {
        match self {
            Enc::Int2 => Some((i16::MIN as i64, i16::MAX as i64)),
            Enc::Int4 => Some((i32::MIN as i64, i32::MAX as i64)),
            _ => None,
        }
    }
}

/// Append one row: field count, then each field as length + bytes.
#[inline]
pub fn row(buf: &mut BytesMut, vals: &[Value], cols: &[(usize, Enc)]) {
    buf.put_i16(cols.len() as i16);
    for &(c, enc) in cols {
        field(buf, &vals[c], enc);
    }
}

#[inline]
pub fn field(buf: &mut BytesMut, v: &Value, enc: Enc) {
    match (v, enc) {
        (Value::Null, _) => buf.put_i32(-1),
        (Value::Int(i), Enc::Int2) => {
            buf.put_i32(2);
            buf.put_i16(*i as i16);
        }
        (Value::Int(i), Enc::Int4) => {
            buf.put_i32(4);
            buf.put_i32(*i as i32);
        }
        (Value::Int(i), Enc::Int8) => {
            buf.put_i32(8);
            buf.put_i64(*i);
        }
        (Value::Bool(b), _) => {
            buf.put_i32(1);
            buf.put_u8(u8::from(*b));
        }
        (Value::Text(s), Enc::Text) | (Value::Json(s), Enc::Json | Enc::Text) => {
            buf.put_i32(s.len() as i32);
            buf.put_slice(s.as_bytes());
        }
        (Value::Json(s), Enc::Jsonb) => {
            buf.put_i32(s.len() as i32 + 1);
            buf.put_u8(1);
            buf.put_slice(s.as_bytes());
        }
        (Value::Uuid(b), Enc::Uuid) => {
            buf.put_i32(16);
            buf.put_slice(b);
        }
        (Value::Time(us), Enc::Timestamp) => {
            buf.put_i32(8);
            buf.put_i64(us.saturating_sub(PG_EPOCH_US));
        }
        (Value::Time(us), Enc::Date) => {
            buf.put_i32(4);
            buf.put_i32(us.saturating_sub(PG_EPOCH_US).div_euclid(DAY_US) as i32);
        }
        (v, Enc::Float8) => {
            buf.put_i32(8);
            buf.put_f64(as_f64(v));
        }
        (v, Enc::Float4) => {
            buf.put_i32(4);
            buf.put_f32(as_f64(v) as f32);
        }
        (Value::Int(i), Enc::Numeric) => numeric(buf, i128::from(*i), 0),
        (Value::Dec(m, s), Enc::Numeric) => numeric(buf, i128::from(*m), *s),
        (Value::Float(f), Enc::Numeric) => {
            let (m, s) = float_digits(*f);
            numeric(buf, m, s)
        }
        (v, Enc::Text) => {
            // UUIDs (and anything else checked as text-compatible) in their text form.
            let mut s = String::new();
            v.write_text(&mut s);
            buf.put_i32(s.len() as i32);
            buf.put_slice(s.as_bytes());
        }
        // The checks before loading rule these out; keep the stream well formed anyway.
        _ => buf.put_i32(-1),
    }
}

fn as_f64(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Dec(m, s) => *m as f64 / 10f64.powi(*s as i32),
        _ => f64::NAN,
    }
}

/// A float as mantissa and decimal digits (its shortest exact-enough text form).
fn float_digits(f: f64) -> (i128, u32) {
    if !f.is_finite() {
        return (0, 0);
    }
    let s = format!("{f}");
    let (w, fr) = s.split_once('.').unwrap_or((&s, ""));
    let fr = &fr[..fr.len().min(15)];
    let m: i128 = format!("{w}{fr}").parse().unwrap_or(0);
    (m, fr.len() as u32)
}

/// NUMERIC's binary form: base-10000 digits around the decimal point.
fn numeric(buf: &mut BytesMut, m: i128, scale: u32) {
    let neg = m < 0;
    let a = m.unsigned_abs();
    let p = 10u128.pow(scale);
    let (int, frac) = (a / p, a % p);
    let mut int_groups = Vec::new();
    let mut x = int;
    while x > 0 {
        int_groups.push((x % 10_000) as i16);
        x /= 10_000;
    }
    int_groups.reverse();
    // Fraction digits, padded on the right to whole groups of four.
    let frac_groups_n = scale.div_ceil(4);
    let mut frac_scaled = frac * 10u128.pow(frac_groups_n * 4 - scale);
    let mut frac_groups = vec![0i16; frac_groups_n as usize];
    for g in frac_groups.iter_mut().rev() {
        *g = (frac_scaled % 10_000) as i16;
        frac_scaled /= 10_000;
    }
    let mut weight = int_groups.len() as i16 - 1;
    let mut digits: Vec<i16> = int_groups.into_iter().chain(frac_groups).collect();
    while digits.first() == Some(&0) {
        digits.remove(0);
        weight -= 1;
    }
    while digits.last() == Some(&0) {
        digits.pop();
    }
    if digits.is_empty() {
        weight = 0;
    }
    buf.put_i32(8 + 2 * digits.len() as i32);
    buf.put_i16(digits.len() as i16);
    buf.put_i16(weight);
    buf.put_u16(if neg && !digits.is_empty() { 0x4000 } else { 0 });
    buf.put_u16(scale as u16);
    for d in digits {
        buf.put_i16(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(m: i128, s: u32) -> Vec<i16> {
        let mut b = BytesMut::new();
        numeric(&mut b, m, s);
        b[4..]
            .chunks(2)
            .map(|c| i16::from_be_bytes([c[0], c[1]]))
            .collect()
    }

    #[test]
    fn numeric_groups_digits_around_the_point() {
        // 12345.67 = 1 2345 . 6700 -> ndigits 3, weight 1, dscale 2
        assert_eq!(num(1_234_567, 2), vec![3, 1, 0, 2, 1, 2345, 6700]);
        // -0.05 -> 0500 at weight -1
        assert_eq!(num(-5, 2), vec![1, -1, 0x4000, 2, 500]);
        // 0 -> no digits
        assert_eq!(num(0, 2), vec![0, 0, 0, 2]);
        // 10000 -> 1 at weight 1 (trailing zero group dropped)
        assert_eq!(num(10_000, 0), vec![1, 1, 0, 0, 1]);
    }
}
