//! Compiling a column's spec into its generator, once, before any row:
//! which keys each generator takes, their bounds and distributions, the
//! columns a generator reads, and an error at the key that is wrong. The
//! per-cell path that the compiled generators run is in `generator`.

use crate::fakes::{self, Faker, Locale};
use crate::generator::{
    Gen, IntDist, JsonPart, MAX_POOL, MAX_SENTENCES, MAX_WORDS, PasswordGen, RefGen,
};
use crate::rng::{Permutation, Zipf, column_key, name_hash};
use crate::spec::{RawColumn, parse_int_range};
use crate::value::{DAY_US, Kind, Value, parse_time};
use std::sync::OnceLock;
use toml::Spanned;

/// Which keys each generator takes (besides gen, null_ratio, unique).
pub const ALLOWED: &[(&str, &[&str])] = &[
    ("seq", &["start", "step", "repeat"]),
    ("uuid", &[]),
    ("const", &["value"]),
    ("int", &["min", "max", "dist", "mean", "stddev", "exponent"]),
    ("float", &["min", "max", "dist", "mean", "stddev"]),
    (
        "decimal",
        &[
            "min", "max", "decimals", "dist", "mean", "stddev", "exponent",
        ],
    ),
    ("bool", &["probability"]),
    ("choice", &["values", "weights"]),
    ("first_name", &["locale"]),
    ("last_name", &["locale"]),
    ("name", &["locale"]),
    ("username", &["locale"]),
    ("company", &["locale"]),
    ("address", &["locale"]),
    ("street", &["locale"]),
    ("city", &["locale"]),
    ("state", &["locale"]),
    ("country", &["locale"]),
    ("zip", &["locale"]),
    ("postcode", &["locale"]),
    ("phone", &["locale"]),
    ("email", &["locale", "domain", "from"]),
    ("product", &[]),
    ("word", &[]),
    ("words", &["words"]),
    ("sentence", &["words"]),
    ("paragraph", &["words"]),
    ("timestamp", &["from", "to", "at"]),
    ("date", &["from", "to", "at"]),
    (
        "ref",
        &[
            "table",
            "column",
            "dist",
            "exponent",
            "per_parent",
            "distinct",
        ],
    ),
    ("json", &["template"]),
    ("password", &["scheme", "cost", "pool", "length"]),
];

pub fn gen_names() -> String {
    ALLOWED
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A column generator error, with the span of the offending key.
pub struct GenError {
    pub span: Option<std::ops::Range<usize>>,
    pub message: String,
}

fn err<T>(span: Option<std::ops::Range<usize>>, m: impl Into<String>) -> Result<T, GenError> {
    Err(GenError {
        span,
        message: m.into(),
    })
}

/// What compiling a column needs to know about the rest of the spec.
pub struct Ctx<'a> {
    pub seed: u64,
    pub table: &'a str,
    pub column: &'a str,
    /// Columns of this table, by name (for `from` and `at`).
    pub columns: &'a [String],
    pub locale: Locale,
    pub span: std::ops::Range<usize>,
}

impl Ctx<'_> {
    fn col(&self, name: &Spanned<String>) -> Result<usize, GenError> {
        let n = name.get_ref().trim();
        self.columns.iter().position(|c| c == n).map_or_else(
            || {
                err(
                    Some(name.span()),
                    format!(
                        "{}.{}: no column {n:?} in this table (it has: {})",
                        self.table,
                        self.column,
                        self.columns.join(", ")
                    ),
                )
            },
            Ok,
        )
    }
}

fn sp<T>(v: &Option<Spanned<T>>) -> Option<std::ops::Range<usize>> {
    v.as_ref().map(Spanned::span)
}

/// Keys set on a raw column, by name, for the "does not apply" check.
fn keys_set(r: &RawColumn) -> Vec<(&'static str, std::ops::Range<usize>)> {
    let mut v = Vec::new();
    macro_rules! k {
        ($($f:ident),*) => { $( if let Some(x) = &r.$f { v.push((stringify!($f), x.span())); } )* };
    }
    k!(
        start,
        step,
        repeat,
        value,
        min,
        max,
        dist,
        mean,
        stddev,
        exponent,
        decimals,
        probability,
        values,
        weights,
        locale,
        domain,
        from,
        to,
        at,
        table,
        column,
        per_parent,
        distinct,
        template,
        scheme,
        cost,
        pool,
        length,
        words
    );
    v
}

/// Compile one column's generator and say what kind of values it makes
/// (None for refs: their kind is the parent column's).
pub fn compile(cx: &Ctx, r: &RawColumn, rows_hint: u64) -> Result<(Gen, Option<Kind>), GenError> {
    let Some(name) = &r.r#gen else {
        return err(
            Some(cx.span.clone()),
            format!(
                "{}.{}: missing key `gen` (one of: {})",
                cx.table,
                cx.column,
                gen_names()
            ),
        );
    };
    let gname = name.get_ref().as_str();
    let Some((_, allowed)) = ALLOWED.iter().find(|(n, _)| *n == gname) else {
        return err(
            Some(name.span()),
            format!(
                "{}.{}: unknown generator {gname:?}; use one of: {}",
                cx.table,
                cx.column,
                gen_names()
            ),
        );
    };
    for (k, span) in keys_set(r) {
        if !allowed.contains(&k) {
            let takes = if allowed.is_empty() {
                "no other keys".to_string()
            } else {
                allowed.join(", ")
            };
            return err(
                Some(span),
                format!(
                    "{}.{}: key `{k}` does not apply to gen = {gname:?} (it takes: {takes})",
                    cx.table, cx.column
                ),
            );
        }
    }
    let key = column_key(cx.seed, cx.table, cx.column);
    let unique = r.unique.as_ref().is_some_and(|u| *u.get_ref());
    let locale = match &r.locale {
        Some(l) => Locale::parse(l.get_ref()).ok_or_else(|| GenError {
            span: Some(l.span()),
            message: format!(
                "unknown locale {:?}; use one of: {}",
                l.get_ref(),
                fakes::LOCALES
            ),
        })?,
        None => cx.locale,
    };
    let here = || format!("{}.{} (gen = {gname:?})", cx.table, cx.column);
    let need_unique_ok = |g: &Gen| -> Result<(), GenError> {
        if unique && !g.is_unique() {
            return err(
                sp(&r.unique),
                format!(
                    "{}: unique = true is not possible for this generator; unique values come from seq, uuid, int, email, username, name or ref",
                    here()
                ),
            );
        }
        Ok(())
    };
    let (g, kind) = match gname {
        "seq" => {
            let repeat = r.repeat.as_ref().map_or(1, |v| *v.get_ref());
            if repeat == 0 {
                return err(
                    sp(&r.repeat),
                    format!("{}: repeat must be at least 1", here()),
                );
            }
            (
                Gen::Seq {
                    start: r.start.as_ref().map_or(1, |v| *v.get_ref()),
                    step: r.step.as_ref().map_or(1, |v| *v.get_ref()),
                    repeat,
                },
                Some(Kind::Int),
            )
        }
        "uuid" => (Gen::Uuid, Some(Kind::Uuid)),
        "const" => {
            let Some(v) = &r.value else {
                return err(
                    Some(cx.span.clone()),
                    format!("{}: missing key `value`", here()),
                );
            };
            let (val, kind) = toml_value(v.get_ref()).ok_or_else(|| GenError {
                span: Some(v.span()),
                message: format!("{}: this value cannot be stored", here()),
            })?;
            (Gen::Const(val), Some(kind))
        }
        "int" | "decimal" => {
            let decimals = if gname == "decimal" {
                r.decimals.as_ref().map_or(2, |d| *d.get_ref())
            } else {
                0
            };
            if decimals > 12 {
                return err(sp(&r.decimals), format!("{}: at most 12 decimals", here()));
            }
            let (min, max) = bounds(r, decimals, &here)?;
            let dist = int_dist(r, min, max, decimals, &here)?;
            let perm = if unique {
                if !matches!(dist, IntDist::Uniform) || gname == "decimal" {
                    return err(
                        sp(&r.unique),
                        format!("{}: unique works with uniform whole numbers only", here()),
                    );
                }
                let span = (max as i128 - min as i128 + 1) as u128;
                if span < u128::from(rows_hint) {
                    return err(
                        sp(&r.unique),
                        format!(
                            "{}: {rows_hint} unique values do not fit in {min}..{max}; widen the range",
                            here()
                        ),
                    );
                }
                Some(Permutation::new(span.min(u128::from(u64::MAX)) as u64, key))
            } else {
                None
            };
            if gname == "int" {
                (
                    Gen::Int {
                        min,
                        max,
                        dist,
                        unique: perm,
                    },
                    Some(Kind::Int),
                )
            } else {
                (
                    Gen::Decimal {
                        min,
                        max,
                        decimals,
                        dist,
                    },
                    Some(Kind::Decimal),
                )
            }
        }
        "float" => {
            let min = num(&r.min).ok_or_else(|| missing("min", r, cx, &here))?;
            let max = num(&r.max).ok_or_else(|| missing("max", r, cx, &here))?;
            for (v, k, at) in [(min, "min", &r.min), (max, "max", &r.max)] {
                if !v.is_finite() {
                    return err(
                        sp(at),
                        format!("{}: {k} = {v}: write a finite number", here()),
                    );
                }
            }
            if min > max {
                return err(sp(&r.min), format!("{}: min is above max", here()));
            }
            if !(max - min).is_finite() {
                return err(
                    sp(&r.min),
                    format!(
                        "{}: min..max is wider than a float holds; narrow it",
                        here()
                    ),
                );
            }
            let dist = match r.dist.as_ref().map(|d| d.get_ref().as_str()) {
                None | Some("uniform") => IntDist::Uniform,
                Some("normal") => {
                    // The middle, without overflowing near f64::MAX.
                    let mid = match (min + max) / 2.0 {
                        m if m.is_finite() => m,
                        _ => min / 2.0 + max / 2.0,
                    };
                    normal(r, mid, (max - min) / 6.0, 1.0, &here)?
                }
                Some(o) => {
                    return err(
                        sp(&r.dist),
                        format!(
                            "{}: dist {o:?} is not for floats; use uniform or normal",
                            here()
                        ),
                    );
                }
            };
            (Gen::Float { min, max, dist }, Some(Kind::Float))
        }
        "bool" => {
            let p = r.probability.as_ref().map_or(0.5, |p| *p.get_ref());
            if !(0.0..=1.0).contains(&p) {
                return err(
                    sp(&r.probability),
                    format!("{}: probability is between 0 and 1", here()),
                );
            }
            (Gen::Bool { p }, Some(Kind::Bool))
        }
        "choice" => {
            let Some(vs) = &r.values else {
                return err(
                    Some(cx.span.clone()),
                    format!("{}: missing key `values`", here()),
                );
            };
            if vs.get_ref().is_empty() {
                return err(Some(vs.span()), format!("{}: values is empty", here()));
            }
            let mut values = Vec::new();
            let mut kind = None;
            for v in vs.get_ref() {
                let (val, k) = toml_value(v).ok_or_else(|| GenError {
                    span: Some(vs.span()),
                    message: format!(
                        "{}: values must be plain strings, numbers or booleans",
                        here()
                    ),
                })?;
                if kind.is_some_and(|x| x != k) {
                    return err(Some(vs.span()), format!("{}: values mix types", here()));
                }
                kind = Some(k);
                values.push(val);
            }
            let weights: Vec<f64> = match &r.weights {
                Some(w) => {
                    if w.get_ref().len() != values.len() {
                        return err(
                            Some(w.span()),
                            format!(
                                "{}: {} weights for {} values; give one weight per value",
                                here(),
                                w.get_ref().len(),
                                values.len()
                            ),
                        );
                    }
                    // Finite, not below 0, and a finite sum above 0: shares of that sum.
                    let sum: f64 = w.get_ref().iter().sum();
                    if w.get_ref().iter().any(|x| !(x.is_finite() && *x >= 0.0))
                        || !(sum.is_finite() && sum > 0.0)
                    {
                        return err(
                            Some(w.span()),
                            format!(
                                "{}: weights must be finite numbers, 0 or above, not all 0; e.g. weights = [70, 20, 10]",
                                here()
                            ),
                        );
                    }
                    w.get_ref().clone()
                }
                None => vec![1.0; values.len()],
            };
            let mut acc = 0.0;
            let cumulative = weights
                .iter()
                .map(|w| {
                    acc += w;
                    acc
                })
                .collect();
            (Gen::Choice { values, cumulative }, kind)
        }
        "email" => {
            let from = r.from.as_ref().map(|f| cx.col(f)).transpose()?;
            (
                Gen::Email {
                    locale,
                    domain: r
                        .domain
                        .as_ref()
                        .map_or("example.test".to_string(), |d| d.get_ref().clone()),
                    from,
                    unique,
                },
                Some(Kind::Text),
            )
        }
        "product" => (Gen::Product, Some(Kind::Text)),
        "word" | "words" | "sentence" => {
            let (lo, hi) = match &r.words {
                Some(w) => parse_int_range(w.get_ref())
                    .filter(|(a, b)| *a >= 1 && *b <= MAX_WORDS)
                    .ok_or_else(|| GenError {
                        span: Some(w.span()),
                        message: format!(
                            "{}: words is a count or a range such as \"3..8\", from 1 to {MAX_WORDS} words",
                            here()
                        ),
                    })?,
                None if gname == "word" => (1, 1),
                None if gname == "words" => (2, 5),
                None => (4, 12),
            };
            (
                Gen::Words {
                    min: lo as usize,
                    max: hi as usize,
                    sentence: gname == "sentence",
                },
                Some(Kind::Text),
            )
        }
        "paragraph" => {
            let (lo, hi) = match &r.words {
                Some(w) => parse_int_range(w.get_ref())
                    .filter(|(_, b)| *b <= MAX_SENTENCES)
                    .ok_or_else(|| GenError {
                        span: Some(w.span()),
                        message: format!(
                            "{}: words (sentences here) is a count or a range such as \"3..6\", up to {MAX_SENTENCES} sentences",
                            here()
                        ),
                    })?,
                None => (3, 6),
            };
            (
                Gen::Paragraph {
                    min: lo.max(1) as usize,
                    max: hi.max(1) as usize,
                },
                Some(Kind::Text),
            )
        }
        "timestamp" | "date" => {
            if let Some(at) = &r.at {
                let (col, lo, hi) = parse_at(at.get_ref()).ok_or_else(|| GenError {
                    span: Some(at.span()),
                    message: format!(
                        "{}: write at = \"COLUMN + MIN..MAX\", e.g. \"created_at + 0..30d\"",
                        here()
                    ),
                })?;
                let column = cx.col(&Spanned::new(at.span(), col))?;
                (
                    Gen::After {
                        column,
                        min: lo,
                        max: hi,
                    },
                    Some(Kind::Time),
                )
            } else {
                let t = |v: &Option<Spanned<String>>, k: &str| -> Result<i64, GenError> {
                    let Some(s) = v else {
                        return err(
                            Some(cx.span.clone()),
                            format!(
                                "{}: missing key `{k}` (e.g. \"2025-01-01\"), or use at = \"other_column + 0..30d\"",
                                here()
                            ),
                        );
                    };
                    parse_time(s.get_ref()).ok_or_else(|| GenError {
                        span: Some(s.span()),
                        message: format!(
                            "{}: {:?} is not a time; write 2025-01-01 or 2025-01-01T12:00:00Z",
                            here(),
                            s.get_ref()
                        ),
                    })
                };
                let from = t(&r.from, "from")?;
                let mut to = t(&r.to, "to")?;
                if r.to
                    .as_ref()
                    .is_some_and(|s| !s.get_ref().contains([' ', 'T', 't']))
                {
                    to = to.saturating_add(DAY_US - 1); // a bare date means the whole day
                }
                if from > to {
                    return err(sp(&r.from), format!("{}: from is after to", here()));
                }
                (Gen::Timestamp { from, to }, Some(Kind::Time))
            }
        }
        "ref" => {
            let Some(t) = &r.table else {
                return err(
                    Some(cx.span.clone()),
                    format!("{}: missing key `table` (the parent table)", here()),
                );
            };
            let per_parent = match &r.per_parent {
                Some(p) => Some(
                    parse_int_range(p.get_ref())
                        .filter(|(a, _)| *a >= 0)
                        .ok_or_else(|| GenError {
                            span: Some(p.span()),
                            message: format!(
                                "{}: per_parent is a count or a range such as \"1..5\"",
                                here()
                            ),
                        })?,
                )
                .map(|(a, b)| (a as u64, b as u64)),
                None => None,
            };
            let dist_zipf = match r.dist.as_ref().map(|d| d.get_ref().as_str()) {
                None | Some("uniform") => None,
                Some("zipf") => Some(zipf_exponent(r, &here)?),
                Some(o) => {
                    return err(
                        sp(&r.dist),
                        format!("{}: dist {o:?}: use uniform or zipf", here()),
                    );
                }
            };
            let distinct = r.distinct.as_ref().is_some_and(|d| *d.get_ref());
            let modes = [per_parent.is_some(), dist_zipf.is_some(), distinct, unique]
                .iter()
                .filter(|x| **x)
                .count();
            if modes > 1 {
                return err(
                    Some(cx.span.clone()),
                    format!(
                        "{}: choose one of per_parent, dist = \"zipf\", distinct and unique",
                        here()
                    ),
                );
            }
            (
                Gen::Ref(Box::new(RefGen {
                    table: t.get_ref().clone(),
                    column: r
                        .column
                        .as_ref()
                        .map_or("id".into(), |c| c.get_ref().clone()),
                    table_idx: usize::MAX,
                    column_idx: usize::MAX,
                    dist_zipf,
                    per_parent,
                    distinct,
                    unique,
                    key,
                    ready: OnceLock::new(),
                })),
                None,
            )
        }
        "json" => {
            let Some(t) = &r.template else {
                return err(
                    Some(cx.span.clone()),
                    format!("{}: missing key `template`", here()),
                );
            };
            let mut parts = Vec::new();
            let mut lit = String::new();
            json_template(cx, t.get_ref(), "", &mut lit, &mut parts, rows_hint).map_err(
                |mut e| {
                    e.span = e.span.or(Some(t.span()));
                    e
                },
            )?;
            if !lit.is_empty() {
                parts.push(JsonPart::Lit(lit));
            }
            (Gen::Json(parts), Some(Kind::Json))
        }
        "password" => {
            if let Some(s) = &r.scheme
                && s.get_ref() != "bcrypt"
            {
                return err(
                    Some(s.span()),
                    format!(
                        "{}: scheme {:?}: only \"bcrypt\" is supported",
                        here(),
                        s.get_ref()
                    ),
                );
            }
            let cost = r.cost.as_ref().map_or(4, |c| *c.get_ref());
            if !(4..=31).contains(&cost) {
                return err(
                    sp(&r.cost),
                    format!(
                        "{}: bcrypt cost is 4..31 (4 is the fast test-only cost)",
                        here()
                    ),
                );
            }
            // No more distinct passwords than rows: each one costs a hash.
            let mut pool = r.pool.as_ref().map_or(1000, |p| *p.get_ref()).max(1);
            if pool > MAX_POOL {
                return err(
                    sp(&r.pool),
                    format!(
                        "{}: pool = {pool}: each password costs a bcrypt hash (~1 ms at cost 4); write pool = {MAX_POOL} or less",
                        here()
                    ),
                );
            }
            if rows_hint > 0 {
                pool = pool.min(rows_hint);
            }
            let length = r.length.as_ref().map_or(12, |l| *l.get_ref()) as usize;
            if !(4..=72).contains(&length) {
                return err(
                    sp(&r.length),
                    format!(
                        "{}: length is 4..72 (bcrypt reads 72 bytes at most)",
                        here()
                    ),
                );
            }
            (
                Gen::Password(Box::new(PasswordGen {
                    cost,
                    pool,
                    length,
                    key,
                    hashed: OnceLock::new(),
                })),
                Some(Kind::Text),
            )
        }
        other => {
            let what = Faker::parse(other).expect("every generator is handled");
            (
                Gen::Fake {
                    what,
                    locale,
                    unique,
                },
                Some(Kind::Text),
            )
        }
    };
    need_unique_ok(&g)?;
    Ok((g, kind))
}

fn missing(k: &str, _r: &RawColumn, cx: &Ctx, here: &dyn Fn() -> String) -> GenError {
    GenError {
        span: Some(cx.span.clone()),
        message: format!("{}: missing key `{k}`", here()),
    }
}

fn num(v: &Option<Spanned<toml::Value>>) -> Option<f64> {
    match v.as_ref()?.get_ref() {
        toml::Value::Integer(i) => Some(*i as f64),
        toml::Value::Float(f) => Some(*f),
        toml::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A bound as a whole number of 10^-decimals units, exactly when written as text.
fn scaled(v: &toml::Value, decimals: u32) -> Option<i64> {
    let p = 10i64.checked_pow(decimals)?;
    match v {
        toml::Value::Integer(i) => i.checked_mul(p),
        toml::Value::Float(f) => {
            let x = (f * p as f64).round();
            (x.abs() < 9.0e18).then_some(x as i64)
        }
        toml::Value::String(s) => {
            let s = s.trim();
            let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
            let (w, f) = s.split_once('.').unwrap_or((s, ""));
            if f.len() > decimals as usize || w.is_empty() && f.is_empty() {
                return None;
            }
            let w: i64 = if w.is_empty() { 0 } else { w.parse().ok()? };
            let mut frac: i64 = if f.is_empty() { 0 } else { f.parse().ok()? };
            frac *= 10i64.pow(decimals - f.len() as u32);
            let m = w.checked_mul(p)?.checked_add(frac)?;
            Some(if neg { -m } else { m })
        }
        _ => None,
    }
}

fn bounds(r: &RawColumn, decimals: u32, here: &dyn Fn() -> String) -> Result<(i64, i64), GenError> {
    let get = |v: &Option<Spanned<toml::Value>>, k: &str| -> Result<i64, GenError> {
        let Some(v) = v else {
            return err(None, format!("{}: missing key `{k}`", here()));
        };
        scaled(v.get_ref(), decimals).ok_or_else(|| GenError {
            span: Some(v.span()),
            message: if decimals == 0 {
                format!("{}: {k} must be a whole number", here())
            } else {
                format!(
                    "{}: {k} must be a number with at most {decimals} decimals",
                    here()
                )
            },
        })
    };
    let min = get(&r.min, "min")?;
    let max = get(&r.max, "max")?;
    if min > max {
        return err(sp(&r.min), format!("{}: min is above max", here()));
    }
    Ok((min, max))
}

fn int_dist(
    r: &RawColumn,
    min: i64,
    max: i64,
    decimals: u32,
    here: &dyn Fn() -> String,
) -> Result<IntDist, GenError> {
    let p = 10f64.powi(decimals as i32);
    Ok(match r.dist.as_ref().map(|d| d.get_ref().as_str()) {
        None | Some("uniform") => IntDist::Uniform,
        Some("normal") => normal(
            r,
            (min as f64 + max as f64) / 2.0,
            (max as f64 - min as f64) / 6.0,
            p,
            here,
        )?,
        Some("zipf") => IntDist::Zipf(Zipf::new(
            // The count of values in min..=max, up to all 2^64 of them.
            (i128::from(max) - i128::from(min) + 1).min(i128::from(u64::MAX)) as u64,
            zipf_exponent(r, here)?,
        )),
        Some(o) => {
            return err(
                sp(&r.dist),
                format!(
                    "{}: unknown dist {o:?}; use uniform, normal or zipf",
                    here()
                ),
            );
        }
    })
}

/// A normal distribution's mean and stddev (given in the spec's units,
/// `unit` of them per generated unit): finite, and the stddev not below 0.
fn normal(
    r: &RawColumn,
    mean: f64,
    sd: f64,
    unit: f64,
    here: &dyn Fn() -> String,
) -> Result<IntDist, GenError> {
    let m = r.mean.as_ref().map_or(mean, |m| m.get_ref() * unit);
    if !m.is_finite() {
        return err(
            sp(&r.mean),
            format!(
                "{}: mean = {}: write a finite number, within min..max",
                here(),
                r.mean.as_ref().map_or(m, |m| *m.get_ref())
            ),
        );
    }
    let s = r.stddev.as_ref().map_or(sd, |s| s.get_ref() * unit);
    if !(s.is_finite() && s >= 0.0) {
        return err(
            sp(&r.stddev),
            format!(
                "{}: stddev = {}: write a finite number, 0 or above",
                here(),
                r.stddev.as_ref().map_or(s, |s| *s.get_ref())
            ),
        );
    }
    Ok(IntDist::Normal { mean: m, sd: s })
}

/// Zipf's exponent s: the k-th value has weight 1/k^s. Any finite s above 0
/// is a distribution; 0 is the uniform one (said with dist = "uniform"),
/// below 0 the last value would be the most common, and NaN or infinity is
/// no distribution at all (the sampler would never return).
fn zipf_exponent(r: &RawColumn, here: &dyn Fn() -> String) -> Result<f64, GenError> {
    let s = r.exponent.as_ref().map_or(1.1, |e| *e.get_ref());
    if s.is_finite() && s > 0.0 {
        return Ok(s);
    }
    err(
        sp(&r.exponent),
        format!(
            "{}: exponent = {s} is no zipf distribution: the exponent must be a finite number above 0 (1.1 by default; higher, the first values take more rows); for equal chances write dist = \"uniform\"",
            here()
        ),
    )
}

/// A TOML scalar as a stored value.
pub fn toml_value(v: &toml::Value) -> Option<(Value, Kind)> {
    Some(match v {
        toml::Value::String(s) => (Value::Text(s.clone()), Kind::Text),
        toml::Value::Integer(i) => (Value::Int(*i), Kind::Int),
        toml::Value::Float(f) => (Value::Float(*f), Kind::Float),
        toml::Value::Boolean(b) => (Value::Bool(*b), Kind::Bool),
        toml::Value::Datetime(d) => (Value::Time(parse_time(&d.to_string())?), Kind::Time),
        toml::Value::Array(_) | toml::Value::Table(_) => {
            let j = serde_json::to_string(v).ok()?;
            (Value::Json(j), Kind::Json)
        }
    })
}

/// "created_at + 0..30d" -> (column, min µs, max µs).
fn parse_at(s: &str) -> Option<(String, i64, i64)> {
    let (col, sign, rest) = match s.find(['+', '-']) {
        Some(i) => (&s[..i], if &s[i..=i] == "-" { -1 } else { 1 }, &s[i + 1..]),
        None => (s, 1, "0"),
    };
    let col = col.trim();
    if col.is_empty() {
        return None;
    }
    let (a, b) = rest.split_once("..").unwrap_or((rest, rest));
    let a = dur_us(a)?;
    let b = dur_us(b)?;
    let (lo, hi) = if sign > 0 { (a, b) } else { (-b, -a) };
    (lo <= hi).then(|| (col.to_string(), lo, hi))
}

fn dur_us(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.chars().all(|c| c.is_ascii_digit()) && !s.is_empty() {
        // A bare number with no unit: only 0 is unambiguous.
        return (s.parse::<u64>().ok()? == 0).then_some(0);
    }
    humantime::parse_duration(s)
        .ok()
        .and_then(|d| i64::try_from(d.as_micros()).ok())
}

/// Walk a JSON template: tables with a `gen` key are nested generators.
fn json_template(
    cx: &Ctx,
    v: &toml::Value,
    path: &str,
    lit: &mut String,
    parts: &mut Vec<JsonPart>,
    rows_hint: u64,
) -> Result<(), GenError> {
    match v {
        toml::Value::Table(t) if t.contains_key("gen") => {
            // Spans need a document: re-read the nested table as one.
            let text = toml::to_string(t).unwrap_or_default();
            let raw: RawColumn = toml::from_str(&text).map_err(|e: toml::de::Error| GenError {
                span: None,
                message: format!(
                    "{}.{}: template at {path:?}: {}",
                    cx.table,
                    cx.column,
                    e.message().trim_end()
                ),
            })?;
            let sub_name = format!("{}{path}", cx.column);
            let sub = Ctx {
                seed: cx.seed,
                table: cx.table,
                column: &sub_name,
                columns: cx.columns,
                locale: cx.locale,
                span: cx.span.clone(),
            };
            // Its spans are in the re-read text: point at the template instead.
            let (g, _) = compile(&sub, &raw, rows_hint).map_err(|mut e| {
                e.span = None;
                e
            })?;
            if matches!(g, Gen::Ref(_)) {
                return err(
                    None,
                    format!(
                        "{}.{}: a ref cannot sit inside a JSON template",
                        cx.table, cx.column
                    ),
                );
            }
            if !lit.is_empty() {
                parts.push(JsonPart::Lit(std::mem::take(lit)));
            }
            let k = column_key(cx.seed, cx.table, &sub_name) ^ name_hash(path);
            parts.push(JsonPart::Gen(Box::new(g), k));
        }
        toml::Value::Table(t) => {
            lit.push('{');
            for (i, (k, v)) in t.iter().enumerate() {
                if i > 0 {
                    lit.push(',');
                }
                lit.push_str(&serde_json::to_string(k).unwrap_or_default());
                lit.push(':');
                json_template(cx, v, &format!("{path}.{k}"), lit, parts, rows_hint)?;
            }
            lit.push('}');
        }
        toml::Value::Array(a) => {
            lit.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    lit.push(',');
                }
                json_template(cx, v, &format!("{path}[{i}]"), lit, parts, rows_hint)?;
            }
            lit.push(']');
        }
        other => lit.push_str(&serde_json::to_string(other).unwrap_or_default()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::Cell;

    fn raw(s: &str) -> RawColumn {
        toml::from_str(s).unwrap()
    }

    fn build(s: &str) -> Gen {
        let cols = vec![
            "created_at".to_string(),
            "name".to_string(),
            "x".to_string(),
        ];
        let cx = Ctx {
            seed: 42,
            table: "t",
            column: "x",
            columns: &cols,
            locale: Locale::En,
            span: 0..0,
        };
        match compile(&cx, &raw(s), 1000) {
            Ok((g, _)) => g,
            Err(e) => panic!("{}", e.message),
        }
    }

    fn cell(g: &Gen, row: u64, vals: &[Value]) -> Value {
        let mut v = Value::Null;
        g.make(
            &Cell {
                row,
                key: 99,
                row_values: vals,
                group: None,
                plaintext: false,
            },
            &mut v,
        );
        v
    }

    #[test]
    fn choice_follows_weights() {
        let g = build(
            r#"gen = "choice"
values = ["free", "starter", "pro"]
weights = [70, 20, 10]"#,
        );
        let mut counts = std::collections::HashMap::new();
        for r in 0..100_000 {
            *counts
                .entry(cell(&g, r, &[]).as_str().unwrap().to_string())
                .or_insert(0u32) += 1;
        }
        let share = |k: &str| f64::from(counts[k]) / 100_000.0;
        assert!((share("free") - 0.7).abs() < 0.01, "{counts:?}");
        assert!((share("starter") - 0.2).abs() < 0.01, "{counts:?}");
        assert!((share("pro") - 0.1).abs() < 0.01, "{counts:?}");
    }

    #[test]
    fn int_normal_and_zipf_shapes() {
        let n =
            build("gen = \"int\"\nmin = 0\nmax = 100\ndist = \"normal\"\nmean = 50\nstddev = 10");
        let xs: Vec<i64> = (0..50_000)
            .map(|r| match cell(&n, r, &[]) {
                Value::Int(i) => i,
                _ => unreachable!(),
            })
            .collect();
        let mean = xs.iter().sum::<i64>() as f64 / xs.len() as f64;
        assert!((mean - 50.0).abs() < 0.5, "{mean}");
        let within = xs.iter().filter(|x| (40..=60).contains(*x)).count() as f64 / xs.len() as f64;
        assert!((within - 0.68).abs() < 0.03, "one stddev holds {within}");
        assert!(xs.iter().all(|x| (0..=100).contains(x)));

        let z = build("gen = \"int\"\nmin = 1\nmax = 1000\ndist = \"zipf\"\nexponent = 1.0");
        let mut ones = 0;
        let mut twos = 0;
        for r in 0..100_000 {
            match cell(&z, r, &[]) {
                Value::Int(1) => ones += 1,
                Value::Int(2) => twos += 1,
                _ => {}
            }
        }
        let ratio = f64::from(ones) / f64::from(twos);
        assert!(
            (ratio - 2.0).abs() < 0.2,
            "1 is twice as common as 2: {ratio}"
        );
    }

    #[test]
    fn unique_int_never_repeats() {
        let g = build("gen = \"int\"\nmin = 10\nmax = 1009\nunique = true");
        let mut seen = std::collections::HashSet::new();
        for r in 0..1000 {
            let Value::Int(i) = cell(&g, r, &[]) else {
                unreachable!()
            };
            assert!((10..=1009).contains(&i));
            assert!(seen.insert(i));
        }
    }

    #[test]
    fn bool_probability_and_decimal_bounds() {
        let b = build("gen = \"bool\"\nprobability = 0.25");
        let t = (0..40_000)
            .filter(|r| cell(&b, *r, &[]) == Value::Bool(true))
            .count();
        assert!((t as f64 / 40_000.0 - 0.25).abs() < 0.01);
        let d = build("gen = \"decimal\"\nmin = \"9.99\"\nmax = \"19.99\"");
        for r in 0..1000 {
            let Value::Dec(m, 2) = cell(&d, r, &[]) else {
                unreachable!()
            };
            assert!((999..=1999).contains(&m));
        }
    }

    #[test]
    fn relative_timestamps_stay_in_their_window() {
        let g = build("gen = \"timestamp\"\nat = \"created_at + 1h..2d\"");
        let base = parse_time("2025-03-01").unwrap();
        for r in 0..1000 {
            let Value::Time(t) = cell(&g, r, &[Value::Time(base), Value::Null, Value::Null]) else {
                unreachable!()
            };
            assert!(t >= base + 3_600_000_000 && t <= base + 2 * DAY_US);
        }
    }

    #[test]
    fn emails_follow_the_name_and_are_unique() {
        let g = build("gen = \"email\"\nfrom = \"name\"\nunique = true");
        let v = cell(
            &g,
            7,
            &[Value::Null, Value::Text("José Núñez".into()), Value::Null],
        );
        assert_eq!(v.as_str(), Some("jose.nunez7@example.test"));
    }

    #[test]
    fn json_templates_nest_generators() {
        let g = build(
            "gen = \"json\"\ntemplate = { source = \"seed\", score = { gen = \"int\", min = 1, max = 5 }, tags = [\"a\"] }",
        );
        let v = cell(&g, 3, &[]);
        let j: serde_json::Value = serde_json::from_str(v.as_str().unwrap()).unwrap();
        assert_eq!(j["source"], "seed");
        assert_eq!(j["tags"][0], "a");
        let s = j["score"].as_i64().unwrap();
        assert!((1..=5).contains(&s));
    }

    #[test]
    fn passwords_store_a_bcrypt_hash_of_the_exported_plaintext() {
        let g = build("gen = \"password\"\npool = 3");
        let mut v = Value::Null;
        let mut c = Cell {
            row: 5,
            key: 1,
            row_values: &[],
            group: None,
            plaintext: false,
        };
        g.make(&c, &mut v);
        let hash = v.as_str().unwrap().to_string();
        c.plaintext = true;
        g.make(&c, &mut v);
        let plain = v.as_str().unwrap();
        assert!(hash.starts_with("$2a$04$"), "{hash}");
        assert!(bcrypt::verify(plain, &hash).unwrap());
    }

    #[test]
    fn misplaced_keys_are_named() {
        let cols = vec!["x".to_string()];
        let cx = Ctx {
            seed: 1,
            table: "t",
            column: "x",
            columns: &cols,
            locale: Locale::En,
            span: 0..0,
        };
        let e = compile(
            &cx,
            &raw("gen = \"int\"\nmin = 1\nmax = 2\nweights = [1]"),
            10,
        )
        .err()
        .unwrap();
        assert!(
            e.message
                .contains("key `weights` does not apply to gen = \"int\""),
            "{}",
            e.message
        );
    }
}
