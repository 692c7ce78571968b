//! k6-style thresholds: `"http_req_duration{scenario:api}" = ["p(95)<200"]`.

use crate::stats::Stats;
use serde_json::Value;
use std::ops::Range;
use std::time::Duration;
use volley_protocols::ConfigError;
use volley_protocols::duration::parse_duration;
use volley_protocols::metrics::{MetricKind, Tags, Unit};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Agg {
    Avg,
    Min,
    Max,
    Med,
    P(f64),
    Rate,
    Count,
    Value,
    /// Least-squares slope per hour of a gauge over the run's per-second
    /// values, from `after` on (skips warm-up). `bytes`: the limit was
    /// written with a byte unit (100MB/h).
    Slope {
        after: Duration,
        bytes: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    pub fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Eq => a == b,
            Op::Ne => a != b,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Threshold {
    pub source: String,
    pub agg: Agg,
    pub op: Op,
    pub value: f64,
    pub abort_on_fail: bool,
    pub delay_abort_eval: Duration,
    /// A rate or trend with no sample at the end passes instead of failing.
    pub allow_empty: bool,
    pub span: Range<usize>,
}

/// All thresholds on one metric (and tag filter).
#[derive(Clone, Debug)]
pub struct ThresholdSet {
    /// As written: `http_req_duration{scenario:api}`.
    pub key: String,
    pub metric: String,
    pub filter: Tags,
    pub items: Vec<Threshold>,
    pub span: Range<usize>,
}

/// A threshold key that is not `metric` or `metric{tag:value,...}`.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{0:?} is not a metric name")]
    Name(String),
    #[error("{0:?}: a tag filter ends with '}}', e.g. http_req_duration{{scenario:api}}")]
    Unclosed(String),
    #[error(
        "{0:?}: write one tag filter after the metric name, e.g. http_req_duration{{scenario:api,name:login}}, with no braces inside it or text after it"
    )]
    Braces(String),
    #[error("{key:?}: tag filter {part:?} must be name:value")]
    Pair { key: String, part: String },
    #[error("{0:?}: empty tag filter; remove the braces or add name:value")]
    Empty(String),
}

/// A threshold expression that is not `AGGREGATION OP LIMIT`.
#[derive(Debug, thiserror::Error)]
pub enum ExprError {
    #[error("{0:?} has no comparison; write e.g. \"p(95)<200\" or \"rate<0.01\"")]
    NoComparison(String),
    #[error("{0:?}: the comparison must be one of < <= > >= == !=")]
    Operator(String),
    #[error("{src:?}: {p} needs a number, e.g. p(95) or p(99.9)")]
    Percentile { src: String, p: String },
    #[error("{0:?}: a percentile is between 0 and 100")]
    PercentileRange(String),
    #[error(
        "{src:?}: unknown aggregation {agg:?}; use avg, min, max, med, p(N), rate, count, value or slope"
    )]
    Aggregation { src: String, agg: String },
    #[error("{src:?}: {e}")]
    Slope {
        src: String,
        e: crate::slope::RateError,
    },
    #[error("{src:?}: {e}")]
    Value { src: String, e: ValueError },
}

/// A limit that is neither a finite number nor a time.
#[derive(Debug, thiserror::Error)]
pub enum ValueError {
    #[error(
        "{0:?} is not a limit a value can be compared with; write a finite number, e.g. 200 or 0.01"
    )]
    NotFinite(String),
    #[error("{0:?} is not a number (time values may use ms, s, m)")]
    NotNumber(String),
}

/// Split `metric{tag:value,...}`.
pub fn parse_key(key: &str) -> Result<(String, Tags), KeyError> {
    let key = key.trim();
    let Some(open) = key.find('{') else {
        return valid_name(key).map(|n| (n, Tags::default()));
    };
    let name = valid_name(&key[..open])?;
    let inner = key[open + 1..]
        .strip_suffix('}')
        .ok_or_else(|| KeyError::Unclosed(key.into()))?;
    // One filter, nothing after it: `m{a:b}{c}` or `m{a:b}x}` is a typo, not a tag value.
    if inner.contains(['{', '}']) {
        return Err(KeyError::Braces(key.into()));
    }
    let mut pairs = Vec::new();
    for part in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once(':').ok_or_else(|| KeyError::Pair {
            key: key.into(),
            part: part.into(),
        })?;
        pairs.push((k.trim().to_string(), v.trim().to_string()));
    }
    if pairs.is_empty() {
        return Err(KeyError::Empty(key.into()));
    }
    Ok((name, Tags::new(pairs)))
}

fn valid_name(n: &str) -> Result<String, KeyError> {
    let n = n.trim();
    if n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(KeyError::Name(n.into()));
    }
    Ok(n.to_string())
}

/// Parse `p(95)<200`, `rate<0.01`, `count==0`, `avg<=1.5s`.
pub fn parse_expr(src: &str) -> Result<(Agg, Op, f64), ExprError> {
    let s: String = src.chars().filter(|c| !c.is_whitespace()).collect();
    let pos = s
        .find(['<', '>', '=', '!'])
        .ok_or_else(|| ExprError::NoComparison(src.into()))?;
    let (agg_text, rest) = s.split_at(pos);
    let (op, value_text) = if let Some(v) = rest.strip_prefix("<=") {
        (Op::Le, v)
    } else if let Some(v) = rest.strip_prefix(">=") {
        (Op::Ge, v)
    } else if let Some(v) = rest.strip_prefix("==") {
        (Op::Eq, v)
    } else if let Some(v) = rest.strip_prefix("!=") {
        (Op::Ne, v)
    } else if let Some(v) = rest.strip_prefix('<') {
        (Op::Lt, v)
    } else if let Some(v) = rest.strip_prefix('>') {
        (Op::Gt, v)
    } else {
        return Err(ExprError::Operator(src.into()));
    };
    let agg = match agg_text {
        "avg" => Agg::Avg,
        "min" => Agg::Min,
        "max" => Agg::Max,
        "med" => Agg::Med,
        "rate" => Agg::Rate,
        "count" => Agg::Count,
        "value" => Agg::Value,
        "slope" => Agg::Slope {
            after: Duration::ZERO,
            bytes: false,
        },
        p if p.starts_with("p(") && p.ends_with(')') => {
            let n: f64 = p[2..p.len() - 1]
                .parse()
                .map_err(|_| ExprError::Percentile {
                    src: src.into(),
                    p: p.into(),
                })?;
            if !(0.0..=100.0).contains(&n) {
                return Err(ExprError::PercentileRange(src.into()));
            }
            Agg::P(n)
        }
        other => {
            return Err(ExprError::Aggregation {
                src: src.into(),
                agg: other.into(),
            });
        }
    };
    if let Agg::Slope { after, .. } = agg {
        let (value, bytes) = crate::slope::parse_rate(value_text)
            .map_err(|e| ExprError::Slope { src: src.into(), e })?;
        return Ok((Agg::Slope { after, bytes }, op, value));
    }
    let value = parse_value(value_text).map_err(|e| ExprError::Value { src: src.into(), e })?;
    Ok((agg, op, value))
}

/// A number; time units (ms, s, m) convert to milliseconds as k6 compares trends in ms.
fn parse_value(v: &str) -> Result<f64, ValueError> {
    if let Ok(x) = v.parse::<f64>() {
        // NaN compares false with everything, inf true or false with
        // everything: the threshold would judge nothing.
        if !x.is_finite() {
            return Err(ValueError::NotFinite(v.into()));
        }
        return Ok(x);
    }
    parse_duration(v)
        .map(|d| d.as_secs_f64() * 1000.0)
        .map_err(|_| ValueError::NotNumber(v.into()))
}

/// Parse `[thresholds]`: each value is a list of expressions or of
/// `{ threshold = "...", abort_on_fail = true, delay_abort_eval = "10s" }`
/// (slopes also take `after = "5m"`: fit only the values from then on).
pub fn parse_set(
    key: &str,
    key_span: Range<usize>,
    items: &[(Value, Range<usize>)],
) -> Result<ThresholdSet, ConfigError> {
    let (metric, filter) = parse_key(key).map_err(|e| ConfigError::at(key_span.clone(), e))?;
    let mut out = Vec::new();
    for (item, span) in items {
        let err = |m: String| ConfigError::at(span.clone(), m);
        let (text, abort, delay, after, allow_empty) = match item {
            Value::String(s) => (s.clone(), false, Duration::ZERO, None, false),
            Value::Object(m) => {
                for k in m.keys() {
                    if ![
                        "threshold",
                        "abort_on_fail",
                        "delay_abort_eval",
                        "after",
                        "allow_empty",
                    ]
                    .contains(&k.as_str())
                    {
                        return Err(err(format!(
                            "unknown key {k:?} in a threshold; use threshold, abort_on_fail, delay_abort_eval, after, allow_empty"
                        )));
                    }
                }
                let text = m.get("threshold").and_then(Value::as_str).ok_or_else(|| {
                    err("a threshold table needs threshold = \"p(95)<200\"".into())
                })?;
                let abort = match m.get("abort_on_fail") {
                    None => false,
                    Some(Value::Bool(b)) => *b,
                    Some(_) => return Err(err("abort_on_fail must be true or false".into())),
                };
                let delay = match m.get("delay_abort_eval") {
                    None => Duration::ZERO,
                    Some(Value::String(s)) => parse_duration(s).map_err(|e| err(e.to_string()))?,
                    Some(_) => {
                        return Err(err("delay_abort_eval is a duration such as \"10s\"".into()));
                    }
                };
                let after = match m.get("after") {
                    None => None,
                    Some(Value::String(s)) => {
                        Some(parse_duration(s).map_err(|e| err(e.to_string()))?)
                    }
                    Some(_) => return Err(err("after is a duration such as \"5m\"".into())),
                };
                let allow_empty = match m.get("allow_empty") {
                    None => false,
                    Some(Value::Bool(b)) => *b,
                    Some(_) => return Err(err("allow_empty must be true or false".into())),
                };
                (text.to_string(), abort, delay, after, allow_empty)
            }
            _ => return Err(err("a threshold is a string such as \"p(95)<200\"".into())),
        };
        let (mut agg, op, value) = parse_expr(&text).map_err(|e| err(e.to_string()))?;
        if let Some(a) = after {
            match &mut agg {
                Agg::Slope { after, .. } => *after = a,
                _ => {
                    return Err(err(format!(
                        "after applies to slope thresholds (e.g. \"slope<100MB/h\"), not to {text:?}"
                    )));
                }
            }
        }
        if abort && matches!(agg, Agg::Slope { .. }) {
            return Err(err(
                "a slope is judged once the run is over; abort_on_fail does not apply to it".into(),
            ));
        }
        out.push(Threshold {
            source: text,
            agg,
            op,
            value,
            abort_on_fail: abort,
            delay_abort_eval: delay,
            allow_empty,
            span: span.clone(),
        });
    }
    Ok(ThresholdSet {
        key: key.to_string(),
        metric,
        filter,
        items: out,
        span: key_span,
    })
}

/// Which aggregations make sense for a metric kind.
pub fn check_fits(t: &Threshold, kind: MetricKind, metric: &str) -> Result<(), ConfigError> {
    let ok = match kind {
        MetricKind::Counter => matches!(t.agg, Agg::Count | Agg::Rate),
        MetricKind::Rate => matches!(t.agg, Agg::Rate | Agg::Count),
        MetricKind::Gauge => matches!(t.agg, Agg::Value | Agg::Min | Agg::Max | Agg::Slope { .. }),
        MetricKind::Trend => !matches!(t.agg, Agg::Rate | Agg::Value | Agg::Slope { .. }),
    };
    if ok {
        return Ok(());
    }
    let hint = match kind {
        MetricKind::Counter => "count or rate",
        MetricKind::Rate => "rate (or count)",
        MetricKind::Gauge => "value, min, max or slope",
        MetricKind::Trend => "avg, min, max, med, p(N) or count",
    };
    let slope = if matches!(t.agg, Agg::Slope { .. }) {
        " (slope is for gauges, e.g. target_rss{monitor:NAME})"
    } else {
        ""
    };
    Err(ConfigError::at(
        t.span.clone(),
        format!("{metric} is a {kind:?} metric; its thresholds use {hint}").to_lowercase() + slope,
    ))
}

/// A slope written in bytes (100MB/h) needs a gauge that counts bytes.
pub fn check_unit(t: &Threshold, unit: Unit, metric: &str) -> Result<(), ConfigError> {
    match t.agg {
        Agg::Slope { bytes: true, .. } if unit != Unit::Data => Err(ConfigError::at(
            t.span.clone(),
            format!(
                "{metric} does not count bytes; write its slope without a byte unit, e.g. \"slope<5/h\""
            ),
        )),
        _ => Ok(()),
    }
}

impl Agg {
    /// The aggregated value, in the unit thresholds compare (ms for time).
    pub fn of(self, s: &Stats) -> Option<f64> {
        if s.never_recovered > 0 {
            return Some(self.with_unfinished(s));
        }
        match (self, s.kind) {
            (Agg::Slope { after, .. }, _) => s
                .slopes
                .iter()
                .find(|(a, _)| *a == after)
                .and_then(|(_, slope)| *slope),
            (Agg::Count, _) => Some(s.count as f64),
            // A rate of no observations is no data, not 0%.
            (Agg::Rate, MetricKind::Rate) if s.total == 0 => None,
            (Agg::Rate, _) => Some(s.rate),
            (Agg::Value, _) => Some(s.value),
            (Agg::Min, MetricKind::Gauge) => Some(s.min),
            (Agg::Max, MetricKind::Gauge) => Some(s.max),
            (_, MetricKind::Trend) if s.count == 0 => None,
            (Agg::Avg, _) => Some(s.avg),
            (Agg::Min, _) => Some(s.min),
            (Agg::Max, _) => Some(s.max),
            (Agg::Med, _) => Some(s.quantile(50.0)),
            (Agg::P(p), _) => Some(s.quantile(p)),
        }
    }

    /// With observations that never ended (a spike never recovered from),
    /// which count as longer than any value: the maximum, the mean and the
    /// upper percentiles are unbounded.
    fn with_unfinished(self, s: &Stats) -> f64 {
        let done = s.count;
        let total = done + s.never_recovered;
        let quantile = |p: f64| {
            let rank = (p / 100.0 * total as f64).ceil().max(1.0) as u64;
            if rank > done {
                f64::INFINITY
            } else {
                // The same rank among the finished ones.
                s.quantile(rank as f64 * 100.0 / done as f64)
            }
        };
        match self {
            Agg::Count => total as f64,
            Agg::Rate => s.rate,
            Agg::Value | Agg::Slope { .. } => f64::NAN,
            Agg::Min if done > 0 => s.min,
            Agg::Min | Agg::Max | Agg::Avg => f64::INFINITY,
            Agg::Med => quantile(50.0),
            Agg::P(p) => quantile(p),
        }
    }
}

impl Threshold {
    /// Some(pass) or None when the metric has no data to judge.
    pub fn eval(&self, s: &Stats) -> (Option<bool>, Option<f64>) {
        match self.agg.of(s) {
            Some(v) => (Some(self.op.holds(v, self.value)), Some(v)),
            None => (None, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_k6_expressions() {
        assert_eq!(
            parse_expr("p(95)<200").unwrap(),
            (Agg::P(95.0), Op::Lt, 200.0)
        );
        assert_eq!(
            parse_expr("p(99.9) <= 1s").unwrap(),
            (Agg::P(99.9), Op::Le, 1000.0)
        );
        assert_eq!(parse_expr("rate<0.01").unwrap(), (Agg::Rate, Op::Lt, 0.01));
        assert_eq!(parse_expr("count==0").unwrap(), (Agg::Count, Op::Eq, 0.0));
        assert!(parse_expr("p95<200").is_err());
        assert!(parse_expr("avg 200").is_err());
        assert!(parse_expr("avg<fast").is_err());
    }

    #[test]
    fn refuses_limits_that_judge_nothing() {
        for expr in [
            "max<NaN",
            "avg<inf",
            "p(95)<-inf",
            "rate<infinity",
            "count>=nan",
        ] {
            let e = parse_expr(expr).unwrap_err().to_string();
            assert!(e.contains("finite number"), "{expr}: {e}");
        }
        let huge = format!("max<{}", "9".repeat(400));
        assert!(
            parse_expr(&huge).is_err(),
            "a number too large for f64 is inf"
        );
        for slope in [
            format!("slope<{}/h", "9".repeat(400)),
            "slope<inf/h".into(),
            "slope<NaN".into(),
        ] {
            assert!(parse_expr(&slope).is_err(), "{slope}");
        }
    }

    #[test]
    fn parses_slopes() {
        let (agg, op, v) = parse_expr("slope<100MB/h").unwrap();
        assert_eq!(
            agg,
            Agg::Slope {
                after: Duration::ZERO,
                bytes: true
            }
        );
        assert_eq!((op, v), (Op::Lt, 100.0 * 1024.0 * 1024.0));
        assert_eq!(parse_expr("slope <= 2/m").unwrap().2, 120.0);
        assert!(parse_expr("slope<100MB/week").is_err());
        let items = [(
            serde_json::json!({"threshold": "slope<1GB/h", "after": "5m"}),
            0..1,
        )];
        let set = parse_set("target_rss{monitor:a}", 0..1, &items).unwrap();
        assert!(
            matches!(set.items[0].agg, Agg::Slope { after, .. } if after == Duration::from_secs(300))
        );
        let bad = [(
            serde_json::json!({"threshold": "max<1", "after": "5m"}),
            0..1,
        )];
        assert!(
            parse_set("target_rss", 0..1, &bad).is_err(),
            "after is for slopes"
        );
        let abort = [(
            serde_json::json!({"threshold": "slope<1GB/h", "abort_on_fail": true}),
            0..1,
        )];
        assert!(parse_set("target_rss", 0..1, &abort).is_err());
    }

    #[test]
    fn slopes_and_unfinished_observations_evaluate() {
        use volley_protocols::metrics::Slot;
        let mut s = Stats::new(
            MetricKind::Gauge,
            Unit::Data,
            &Slot::Gauge {
                last: 3.0,
                min: 1.0,
                max: 3.0,
            },
            Duration::from_secs(3),
        );
        assert_eq!(
            Agg::Slope {
                after: Duration::ZERO,
                bytes: true
            }
            .of(&s),
            None
        );
        s.slopes = vec![(Duration::ZERO, Some(3600.0))];
        let per_h = Agg::Slope {
            after: Duration::ZERO,
            bytes: true,
        }
        .of(&s)
        .unwrap();
        assert!((per_h - 3600.0).abs() < 1e-6);
        // One spike recovered in 2 s, one never: the max is unbounded.
        let mut h = volley_protocols::metrics::new_histogram();
        h.record(2_000_000).unwrap();
        let mut t = Stats::new(
            MetricKind::Trend,
            Unit::Time,
            &Slot::Trend(Box::new(h)),
            Duration::from_secs(3),
        );
        t.never_recovered = 1;
        assert_eq!(Agg::Max.of(&t), Some(f64::INFINITY));
        assert_eq!(Agg::Count.of(&t), Some(2.0));
        assert!((Agg::Min.of(&t).unwrap() - 2000.0).abs() < 2.0);
        assert!((Agg::P(50.0).of(&t).unwrap() - 2000.0).abs() < 2.0);
        assert_eq!(Agg::P(95.0).of(&t), Some(f64::INFINITY));
        let (ok, _) = Threshold {
            source: "max<30s".into(),
            agg: Agg::Max,
            op: Op::Lt,
            value: 30_000.0,
            abort_on_fail: false,
            delay_abort_eval: Duration::ZERO,
            allow_empty: false,
            span: 0..0,
        }
        .eval(&t);
        assert_eq!(ok, Some(false));
    }

    #[test]
    fn parses_keys() {
        let (m, t) = parse_key("http_req_duration{scenario:api, name:login}").unwrap();
        assert_eq!(m, "http_req_duration");
        assert_eq!(t.get("name"), Some("login"));
        assert!(parse_key("http_req_duration{scenario}").is_err());
        assert!(parse_key("bad name").is_err());
        for junk in [
            "http_req_duration{name:x}{{ü}}",
            "http_req_duration{name:x}}",
            "http_req_duration{name:{x}}",
            "http_req_duration{name:x}y}",
        ] {
            let e = parse_key(junk).unwrap_err().to_string();
            assert!(e.contains("one tag filter"), "{junk}: {e}");
        }
    }
}
