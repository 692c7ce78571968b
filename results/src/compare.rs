//! `volley compare BASELINE.json CURRENT.json`: the same statistics of two
//! summary exports side by side, per metric and tag set, judged against a
//! regression limit. Computed from the raw series (histograms), so any
//! percentile and any tag filter can be compared exactly.
//!
//! Which way is worse depends on the metric: latency up, error rates and
//! error counts up, throughput down. Gauges and byte counts are not judged.

use std::fmt::Write as _;
use std::time::Duration;
use volley_model::judge::merged;
use volley_model::stats::Stats;
use volley_model::summary::{SeriesRecord, Summary};
use volley_model::units;
use volley_protocols::descriptor::Descriptor;
use volley_protocols::metrics::{MetricKind, Slot, Tags, Unit};

/// Throughput counters compared by default, beside the drivers' own
/// (their descriptors' `compare`).
const DEFAULT_THROUGHPUT: &[&str] = &["iterations"];
const FAILURE_WORDS: &[&str] = &["fail", "error", "lost", "drop", "timeout"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    Lower,
    Higher,
    /// Shown, never judged (gauges, bytes).
    Neither,
}

/// A metric counting failures: by its name, or a driver says so.
fn failure_like(metric: &str, drivers: &[Descriptor]) -> bool {
    FAILURE_WORDS.iter().any(|w| metric.contains(w)) || drivers.iter().any(|d| d.is_error(metric))
}

/// Which direction is an improvement for `stat` of `metric`.
pub fn better(
    metric: &str,
    kind: MetricKind,
    unit: Unit,
    stat: &str,
    drivers: &[Descriptor],
) -> Better {
    match kind {
        MetricKind::Gauge => Better::Neither,
        MetricKind::Trend if matches!(stat, "count" | "rate") => Better::Higher,
        MetricKind::Trend => Better::Lower,
        _ if failure_like(metric, drivers) => Better::Lower,
        MetricKind::Rate => Better::Higher,
        MetricKind::Counter if unit == Unit::Data => Better::Neither,
        MetricKind::Counter => Better::Higher,
    }
}

/// One `--metric`: `NAME[{tag:value,...}][:STAT]`.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricSpec {
    pub metric: String,
    pub filter: Option<Tags>,
    pub stat: Option<String>,
}

/// A `--metric` that is not `NAME[{tag:value}][:STAT]`.
#[derive(Debug, thiserror::Error)]
#[error(
    "--metric {spec:?}: {why}; write NAME, NAME:STAT or NAME{{tag:value}}:STAT, e.g. 'http_req_duration{{scenario:api}}:p(99)'"
)]
pub struct MetricSpecError {
    spec: String,
    why: Why,
}

#[derive(Debug, thiserror::Error)]
enum Why {
    #[error("no closing }}")]
    Unclosed,
    #[error("unexpected text after }}")]
    After,
    #[error("tag {0:?} is not key:value")]
    Tag(String),
    #[error("the metric name is empty")]
    NoName,
    #[error("unknown statistic {0:?} (use avg, min, med, max, p(N), count or rate)")]
    Stat(String),
}

/// A `--max-regression` that is not a percentage.
#[derive(Debug, thiserror::Error)]
pub enum PercentError {
    #[error("--max-regression {0:?}: write a percentage such as 10%")]
    NotNumber(String),
    #[error("--max-regression {0:?}: must be a percentage of 0 or more")]
    Negative(String),
}

/// Why two summaries cannot be compared as asked.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// A series does not decode; `what` is `baseline` or `current`.
    #[error("{what}: series {metric}{tags}: {e}")]
    Series {
        what: &'static str,
        metric: String,
        tags: Tags,
        e: volley_protocols::metrics::HistogramError,
    },
    #[error("--metric {metric}: the {what} summary has no such metric")]
    NoMetric { metric: String, what: &'static str },
    #[error("--metric {metric}{filter}: no series match these tags in either summary")]
    NoSeries { metric: String, filter: Tags },
}

impl MetricSpec {
    pub fn parse(s: &str) -> Result<Self, MetricSpecError> {
        let bad = |why: Why| MetricSpecError {
            spec: s.to_string(),
            why,
        };
        let (head, stat) = match s.find('{') {
            Some(open) => {
                let close = s[open..]
                    .find('}')
                    .map(|c| open + c)
                    .ok_or_else(|| bad(Why::Unclosed))?;
                let rest = &s[close + 1..];
                let stat = match rest.strip_prefix(':') {
                    Some(st) => Some(st),
                    None if rest.is_empty() => None,
                    None => return Err(bad(Why::After)),
                };
                (&s[..=close], stat)
            }
            None => match s.split_once(':') {
                Some((m, st)) => (m, Some(st)),
                None => (s, None),
            },
        };
        let (metric, filter) = match head.split_once('{') {
            Some((m, tags)) => {
                let tags = tags.trim_end_matches('}');
                let mut pairs = Vec::new();
                for p in tags.split(',').filter(|p| !p.trim().is_empty()) {
                    let (k, v) = p
                        .split_once(':')
                        .ok_or_else(|| bad(Why::Tag(p.to_string())))?;
                    pairs.push((k.trim().to_string(), v.trim().to_string()));
                }
                (m, Some(Tags::new(pairs)))
            }
            None => (head, None),
        };
        if metric.is_empty() {
            return Err(bad(Why::NoName));
        }
        if let Some(st) = stat
            && !valid_stat(st)
        {
            return Err(bad(Why::Stat(st.to_string())));
        }
        Ok(Self {
            metric: metric.to_string(),
            filter,
            stat: stat.map(str::to_string),
        })
    }
}

fn valid_stat(s: &str) -> bool {
    matches!(
        s,
        "avg" | "min" | "med" | "max" | "count" | "rate" | "value"
    ) || percentile(s).is_some()
}

fn percentile(s: &str) -> Option<f64> {
    let n: f64 = s.strip_prefix("p(")?.strip_suffix(')')?.parse().ok()?;
    (0.0..=100.0).contains(&n).then_some(n)
}

/// "10%" or "10" -> 0.10.
pub fn parse_percent(s: &str) -> Result<f64, PercentError> {
    let n: f64 = s
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| PercentError::NotNumber(s.into()))?;
    if !(n >= 0.0 && n.is_finite()) {
        return Err(PercentError::Negative(s.into()));
    }
    Ok(n / 100.0)
}

pub struct Options {
    /// Fraction, e.g. 0.1 for 10%.
    pub max_regression: f64,
    pub metrics: Vec<MetricSpec>,
    /// Also compare per value of these tags (within each scenario).
    pub by: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Row {
    pub metric: String,
    pub tags: Tags,
    pub stat: String,
    pub kind: MetricKind,
    pub unit: Unit,
    pub baseline: Option<f64>,
    pub current: Option<f64>,
    pub better: Better,
    pub regressed: bool,
}

impl Row {
    /// Relative change, current over baseline.
    pub fn change(&self) -> Option<f64> {
        match (self.baseline, self.current) {
            (Some(b), Some(c)) if b != 0.0 => Some((c - b) / b),
            (Some(_), Some(0.0)) => Some(0.0),
            _ => None,
        }
    }
}

pub struct Comparison {
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
    pub max_regression: f64,
}

impl Comparison {
    pub fn regressed(&self) -> usize {
        self.rows.iter().filter(|r| r.regressed).count()
    }
}

struct Side {
    series: Vec<(SeriesRecord, Slot)>,
    elapsed: Duration,
}

impl Side {
    fn new(s: &Summary, what: &'static str) -> Result<Self, CompareError> {
        let series = s
            .series
            .iter()
            .map(|r| {
                r.to_slot()
                    .map(|slot| (r.clone(), slot))
                    .map_err(|e| CompareError::Series {
                        what,
                        metric: r.metric.clone(),
                        tags: r.tags.clone(),
                        e,
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            series,
            elapsed: volley_protocols::duration::secs(s.volley.duration_s),
        })
    }

    fn has(&self, metric: &str) -> bool {
        self.series.iter().any(|(r, _)| r.metric == metric)
    }

    fn stats(&self, metric: &str, filter: &Tags) -> Option<Stats> {
        Some(merged(&self.series[..], metric, filter)?.stats(self.elapsed))
    }

    fn tag_values(&self, metric: &str, within: &Tags, tag: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .series
            .iter()
            .filter(|(r, _)| r.metric == metric && r.tags.matches(within))
            .filter_map(|(r, _)| r.tags.get(tag).map(str::to_string))
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

fn stat_value(st: &Stats, stat: &str) -> Option<f64> {
    Some(match stat {
        "avg" => st.avg,
        "min" => st.min,
        "max" => st.max,
        "med" => st.quantile(50.0),
        "count" => st.count as f64,
        "rate" => st.rate,
        "value" => st.value,
        p => st.quantile(percentile(p)?),
    })
}

fn default_stat(kind: MetricKind) -> &'static str {
    match kind {
        MetricKind::Trend => "p(95)",
        MetricKind::Rate | MetricKind::Counter => "rate",
        MetricKind::Gauge => "value",
    }
}

pub fn compare(base: &Summary, cur: &Summary, opts: &Options) -> Result<Comparison, CompareError> {
    let b = Side::new(base, "baseline")?;
    let c = Side::new(cur, "current")?;
    let mut notes = Vec::new();
    if base.volley.plan_digest != cur.volley.plan_digest {
        notes.push(format!(
            "the plans differ ({} vs {}): comparing the metrics they share",
            base.volley.plan, cur.volley.plan
        ));
    }
    // The baseline's drivers, then any only the current run has.
    let mut drivers = base.drivers();
    for d in cur.drivers() {
        if !drivers.iter().any(|o| o.name == d.name) {
            drivers.push(d);
        }
    }
    let trends: Vec<&str> = drivers
        .iter()
        .flat_map(|d| d.compare.trends.iter().map(String::as_str))
        .collect();
    let throughput = |name: &str| {
        DEFAULT_THROUGHPUT.contains(&name)
            || drivers
                .iter()
                .any(|d| d.compare.throughput.iter().any(|t| t == name))
    };
    let built_in = |name: &str| {
        volley_protocols::drivers::built_in_prefix(name).is_some()
            || drivers.iter().any(|d| name.starts_with(&d.prefix))
    };
    let explicit = !opts.metrics.is_empty();
    let specs: Vec<MetricSpec> = if explicit {
        for m in &opts.metrics {
            for (side, what) in [(&b, "baseline"), (&c, "current")] {
                if !side.has(&m.metric) {
                    return Err(CompareError::NoMetric {
                        metric: m.metric.clone(),
                        what,
                    });
                }
            }
        }
        opts.metrics.clone()
    } else {
        let mut names: Vec<&str> = base.series.iter().map(|r| r.metric.as_str()).collect();
        names.sort();
        names.dedup();
        let mut chosen = Vec::new();
        for name in names {
            let Some(r) = base.series.iter().find(|r| r.metric == name) else {
                continue;
            };
            // The plan's own metrics ([metrics.NAME]) were declared to be watched.
            let custom = !built_in(name);
            let wanted = match r.kind() {
                _ if custom => true,
                MetricKind::Trend => trends.contains(&name),
                MetricKind::Gauge => false,
                _ => failure_like(name, &drivers) || name == "checks" || throughput(name),
            };
            if !wanted {
                continue;
            }
            if !c.has(name) {
                notes.push(format!("{name}: only in the baseline"));
                continue;
            }
            chosen.push(MetricSpec {
                metric: name.to_string(),
                filter: None,
                stat: None,
            });
        }
        // Headline latencies first, then rates and counts.
        chosen.sort_by_key(|m| {
            trends
                .iter()
                .position(|t| *t == m.metric)
                .unwrap_or(usize::MAX)
        });
        chosen
    };

    let scenarios: Vec<String> = base
        .volley
        .scenarios
        .iter()
        .map(|s| s.name.clone())
        .filter(|n| cur.volley.scenarios.iter().any(|s| s.name == *n))
        .collect();
    let mut rows = Vec::new();
    for spec in &specs {
        let mut filters: Vec<Tags> = Vec::new();
        match &spec.filter {
            Some(f) => filters.push(f.clone()),
            None => {
                filters.push(Tags::default());
                if base.volley.scenarios.len() > 1 || !opts.by.is_empty() {
                    for sc in &scenarios {
                        let f = Tags::new([("scenario", sc.as_str())]);
                        if b.stats(&spec.metric, &f).is_some() {
                            filters.push(f);
                        }
                    }
                }
            }
        }
        let mut broken = Vec::new();
        for tag in &opts.by {
            for f in &filters {
                if f.is_empty() && !scenarios.is_empty() {
                    continue;
                }
                for v in b.tag_values(&spec.metric, f, tag) {
                    broken.push(f.with(tag, v));
                }
            }
        }
        filters.extend(broken);
        for filter in filters {
            let bs = b.stats(&spec.metric, &filter);
            let cs = c.stats(&spec.metric, &filter);
            let Some(any) = bs.as_ref().or(cs.as_ref()) else {
                if spec.filter.is_some() {
                    return Err(CompareError::NoSeries {
                        metric: spec.metric.clone(),
                        filter,
                    });
                }
                continue;
            };
            let (kind, unit) = (any.kind, any.unit);
            let stat = spec
                .stat
                .clone()
                .unwrap_or_else(|| default_stat(kind).to_string());
            let baseline = bs.as_ref().and_then(|s| stat_value(s, &stat));
            let current = cs.as_ref().and_then(|s| stat_value(s, &stat));
            let better = better(&spec.metric, kind, unit, &stat, &drivers);
            let regressed = match (baseline, current, better) {
                (_, _, Better::Neither) => false,
                (Some(b), Some(c), Better::Lower) => {
                    if b == 0.0 {
                        c > 0.0
                    } else {
                        (c - b) / b > opts.max_regression
                    }
                }
                (Some(b), Some(c), Better::Higher) => b > 0.0 && (b - c) / b > opts.max_regression,
                // Gone from the current run: the statistic cannot be judged
                // better; a missing throughput is a regression.
                (Some(b), None, Better::Higher) => b > 0.0,
                (None, Some(c), Better::Lower) => c > 0.0,
                _ => false,
            };
            rows.push(Row {
                metric: spec.metric.clone(),
                tags: filter,
                stat,
                kind,
                unit,
                baseline,
                current,
                better,
                regressed,
            });
        }
    }
    Ok(Comparison {
        rows,
        notes,
        max_regression: opts.max_regression,
    })
}

fn shown(v: Option<f64>, kind: MetricKind, unit: Unit, stat: &str) -> String {
    let Some(v) = v else {
        return "–".into();
    };
    match (kind, stat) {
        (MetricKind::Rate, "rate") => format!("{:.3}%", v * 100.0),
        (MetricKind::Counter | MetricKind::Trend, "rate") => match unit {
            Unit::Data => format!("{}/s", units::bytes(v)),
            _ => format!("{v:.2}/s"),
        },
        (_, "count") => format!("{v:.0}"),
        _ => units::value(unit, v),
    }
}

pub fn render_table(c: &Comparison) -> String {
    let mut out = String::new();
    let label = |r: &Row| {
        if r.tags.is_empty() {
            r.metric.clone()
        } else {
            format!("{}{}", r.metric, r.tags)
        }
    };
    let width = c
        .rows
        .iter()
        .map(|r| label(r).chars().count())
        .max()
        .unwrap_or(10)
        .max(10);
    let _ = writeln!(
        out,
        "  {:<width$}  {:<7} {:>13} {:>13} {:>9}",
        "metric", "stat", "baseline", "current", "change"
    );
    for r in &c.rows {
        let change = match (r.change(), r.baseline, r.current) {
            (Some(ch), _, _) => format!("{:+.1}%", ch * 100.0),
            (None, Some(_), Some(_)) => "new".into(),
            (None, None, Some(_)) => "new".into(),
            (None, Some(_), None) => "gone".into(),
            _ => "–".into(),
        };
        let verdict = if r.regressed {
            "✗ regressed"
        } else if r.better == Better::Neither {
            ""
        } else {
            "✓"
        };
        let _ = writeln!(
            out,
            "  {:<width$}  {:<7} {:>13} {:>13} {:>9}  {verdict}",
            label(r),
            r.stat,
            shown(r.baseline, r.kind, r.unit, &r.stat),
            shown(r.current, r.kind, r.unit, &r.stat),
            change
        );
    }
    for n in &c.notes {
        let _ = writeln!(out, "\n  note: {n}");
    }
    let limit = c.max_regression * 100.0;
    let n = c.regressed();
    let _ = writeln!(
        out,
        "\n  {}",
        if n == 0 {
            format!(
                "no regression beyond {limit}% ({} statistics compared)",
                c.rows.len()
            )
        } else {
            format!(
                "{n} of {} statistics regressed by more than {limit}%",
                c.rows.len()
            )
        }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_specs_parse() {
        let m = MetricSpec::parse("http_req_duration{scenario:api,name:login}:p(99)").unwrap();
        assert_eq!(m.metric, "http_req_duration");
        assert_eq!(
            m.filter,
            Some(Tags::new([("scenario", "api"), ("name", "login")]))
        );
        assert_eq!(m.stat.as_deref(), Some("p(99)"));
        let m = MetricSpec::parse("http_reqs:rate").unwrap();
        assert_eq!((m.filter, m.stat.as_deref()), (None, Some("rate")));
        assert_eq!(MetricSpec::parse("checks").unwrap().stat, None);
        for bad in ["x:p(101)", "x{a:b", "x{a}", "x{a:b}y", ":avg", "x:median"] {
            assert!(MetricSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn directions_per_metric_kind() {
        use MetricKind::*;
        assert_eq!(
            better("http_req_duration", Trend, Unit::Time, "p(95)", &[]),
            Better::Lower
        );
        assert_eq!(
            better("http_req_failed", Rate, Unit::Default, "rate", &[]),
            Better::Lower
        );
        assert_eq!(
            better("checks", Rate, Unit::Default, "rate", &[]),
            Better::Higher
        );
        assert_eq!(
            better("http_reqs", Counter, Unit::Default, "rate", &[]),
            Better::Higher
        );
        assert_eq!(
            better("dropped_iterations", Counter, Unit::Default, "rate", &[]),
            Better::Lower
        );
        assert_eq!(
            better("data_sent", Counter, Unit::Data, "rate", &[]),
            Better::Neither
        );
        assert_eq!(
            better("vus", Gauge, Unit::Default, "value", &[]),
            Better::Neither
        );
    }

    #[test]
    fn percentages_parse() {
        assert_eq!(parse_percent("10%").unwrap(), 0.1);
        assert_eq!(parse_percent("2.5").unwrap(), 0.025);
        assert!(parse_percent("-1%").is_err());
        assert!(parse_percent("ten").is_err());
    }
}
