//! What a driver says about itself, so that the live line, the capacity
//! watch, the plan's built-in thresholds, the terminal summary, the HTML
//! report and `volley compare` can show any driver without naming it.
//!
//! A descriptor is plain data: it travels in the summary export, so a
//! summary renders from itself alone, even with a build that lacks the
//! driver. Metric names here are the driver's own; a driver that records
//! none of a descriptor's metrics in a scenario gets none of its sections.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Descriptor {
    /// The name plans use: `driver = "NAME"`.
    pub name: String,
    /// Prefix of every metric the driver records, e.g. `http_`: a plan's
    /// own metrics (`[metrics.NAME]`) may not start with it.
    pub prefix: String,
    /// What one unit of the driver's work is called, plural ("requests").
    pub noun: String,
    /// The figures the live line shows; the first driver of the build with
    /// a metric in the plan is the one shown.
    pub headline: Headline,
    /// Latency charts of the report, the headline first.
    #[serde(default)]
    pub latency: Vec<Labelled>,
    /// Throughput lines of the report: counters count, trends their samples.
    #[serde(default)]
    pub throughput: Vec<Labelled>,
    /// Error lines of the report.
    #[serde(default)]
    pub errors: Vec<ErrorLine>,
    /// Tables per scenario and tag value (terminal summary and report).
    #[serde(default)]
    pub breakdowns: Vec<Breakdown>,
    /// Extra lines under a metric of the terminal summary's totals, for the
    /// series with one tag value, e.g. `{ expected_response:true }`.
    #[serde(default)]
    pub subtotals: Vec<Subtotal>,
    /// Thresholds every plan using the driver gets unless it sets its own
    /// on the metric.
    #[serde(default)]
    pub thresholds: Vec<BuiltInThreshold>,
    /// What the capacity watch compares before and after a spike when the
    /// plan does not say.
    #[serde(default)]
    pub recovery: Option<Recovery>,
    /// Rows of the report's "Run" facts.
    #[serde(default)]
    pub facts: Vec<Fact>,
    /// Charts of the report beyond latency, throughput and errors.
    #[serde(default)]
    pub figures: Vec<Figure>,
    /// Rows of the terminal summary's ERRORS table (and row heads of the
    /// report's error table).
    #[serde(default)]
    pub error_rows: Vec<ErrorRow>,
    /// Names of tag values, e.g. SQLSTATE 23505 is unique_violation.
    #[serde(default)]
    pub tag_names: BTreeMap<String, BTreeMap<String, String>>,
    /// What `volley compare` compares when not told.
    #[serde(default)]
    pub compare: CompareDefaults,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Headline {
    /// A trend: its p95 is shown.
    pub latency: String,
    /// A counter summed per second: "http_reqs" shows as "http req/s".
    pub throughput: String,
    /// A rate: its share of hits is shown as `<errors_word> 1.00%`.
    pub errors: String,
    pub errors_word: String,
}

/// A metric and what to call it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Labelled {
    pub metric: String,
    pub label: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorLine {
    pub metric: String,
    pub label: String,
    /// Count a rate's false observations rather than its hits.
    #[serde(default)]
    pub misses: bool,
    /// Listed in the report's error table, row by row of its tags (false
    /// when an `error_rows` entry lists the same failures better).
    #[serde(default)]
    pub table: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Breakdown {
    /// A trend, broken down per scenario and value of `tag`.
    pub metric: String,
    /// Its failures: a rate (shown as a share) or a counter.
    pub failed: String,
    pub tag: String,
    /// What the rows count, for the report's heading ("Requests").
    pub label: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Subtotal {
    pub metric: String,
    pub tag: String,
    pub value: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BuiltInThreshold {
    pub metric: String,
    pub expression: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Recovery {
    /// A trend.
    pub latency: String,
    /// A rate.
    pub errors: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fact {
    /// The metric's count over the run, and its rate.
    Count { metric: String, label: String },
    /// A rate metric's share of hits.
    Percent { metric: String, label: String },
    /// A kind a newer build wrote: skipped, so its summary still renders.
    #[serde(other)]
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Figure {
    /// Per-second rates of a scenario's metrics, drawn when the first
    /// exists; later lines when theirs do.
    Rates {
        id: String,
        title: String,
        lines: Vec<RateLine>,
        #[serde(default)]
        note: Option<String>,
    },
    /// Per-second rates of `metric`, one line per value of the first of
    /// `tags` its series carry.
    RatesBy {
        id: String,
        title: String,
        metric: String,
        tags: Vec<String>,
    },
    /// A gauge summed per value of `tag`. Series without a scenario (a
    /// run-wide sampler) show with every scenario of this driver.
    GaugesBy {
        id: String,
        title: String,
        metric: String,
        tag: String,
    },
    /// Per-second counts of `metric` (counters count, trends their
    /// samples), one line per outcome: the first of `lines` (forms, as in
    /// [`ErrorRow`]) that fits a series names its line, e.g. `{error}` for
    /// a request that got no answer, then `{status}`. The legend shows each
    /// line's total over the run.
    CountsBy {
        id: String,
        title: String,
        metric: String,
        lines: Vec<String>,
    },
    /// A kind a newer build wrote: skipped, so its summary still renders.
    #[serde(other)]
    Unknown,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RateLine {
    pub metric: String,
    pub label: String,
    /// Drawn in the error colour.
    #[serde(default)]
    pub error: bool,
}

/// One kind of row of an error table. A form is text with `{tag}` (the
/// tag's value; the form does not fit a series without it), `{tag|x}`
/// (the value, or x when the series has no such tag) and `{tag=}` (the
/// name of the value in `tag_names`, or nothing).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorRow {
    /// A counter (counted) or a rate (its hits).
    pub metric: String,
    /// Only the series with these tags.
    #[serde(default)]
    pub only: BTreeMap<String, String>,
    /// The terminal's row: the first form that fits.
    pub text: Vec<String>,
    /// The report's row head (the first form that fits), its other tags
    /// following but for `hide`. Empty: the report lists the metric through
    /// its error line instead.
    #[serde(default)]
    pub head: Vec<String>,
    #[serde(default)]
    pub hide: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CompareDefaults {
    /// Latency trends compared (and listed first, in this order).
    #[serde(default)]
    pub trends: Vec<String>,
    /// Throughput counters compared.
    #[serde(default)]
    pub throughput: Vec<String>,
}

/// Shorthands for writing descriptors.
pub fn labelled(metric: &str, label: &str) -> Labelled {
    Labelled {
        metric: metric.into(),
        label: label.into(),
    }
}

/// An error line of a rate's hits or a counter.
pub fn error_line(metric: &str, label: &str, table: bool) -> ErrorLine {
    ErrorLine {
        metric: metric.into(),
        label: label.into(),
        misses: false,
        table,
    }
}

pub fn breakdown(metric: &str, failed: &str, tag: &str, label: &str) -> Breakdown {
    Breakdown {
        metric: metric.into(),
        failed: failed.into(),
        tag: tag.into(),
        label: label.into(),
    }
}

pub fn forms(texts: &[&str]) -> Vec<String> {
    texts.iter().map(|t| t.to_string()).collect()
}

impl Descriptor {
    /// The name of a tag's value, when the driver knows one.
    pub fn tag_name(&self, tag: &str, value: &str) -> Option<&str> {
        self.tag_names.get(tag)?.get(value).map(String::as_str)
    }

    /// Whether `metric` is one of this driver's error metrics.
    pub fn is_error(&self, metric: &str) -> bool {
        self.errors.iter().any(|e| e.metric == metric) || self.headline.errors == metric
    }
}

impl ErrorRow {
    /// Whether a series with `tags` belongs to this row.
    pub fn takes(&self, metric: &str, tags: &crate::metrics::Tags) -> bool {
        self.metric == metric && self.only.iter().all(|(k, v)| tags.get(k) == Some(v))
    }
}

/// The first of `forms` whose required tags `tags` has, filled in.
pub fn fill(forms: &[String], tags: &crate::metrics::Tags, d: &Descriptor) -> Option<String> {
    forms.iter().find_map(|f| fill_one(f, tags, d))
}

fn fill_one(form: &str, tags: &crate::metrics::Tags, d: &Descriptor) -> Option<String> {
    let mut out = String::with_capacity(form.len() + 16);
    let mut rest = form;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}').map(|c| open + c) else {
            out.push_str(&rest[open..]);
            return Some(out);
        };
        let inner = &rest[open + 1..close];
        if let Some(tag) = inner.strip_suffix('=') {
            let name = tags.get(tag).and_then(|v| d.tag_name(tag, v));
            out.push_str(name.unwrap_or(""));
        } else if let Some((tag, default)) = inner.split_once('|') {
            out.push_str(tags.get(tag).unwrap_or(default));
        } else {
            out.push_str(tags.get(inner)?);
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Tags;

    #[test]
    fn a_form_fits_when_its_required_tags_are_there() {
        let mut d = Descriptor::default();
        d.tag_names.insert(
            "sqlstate".into(),
            [("23505".to_string(), "unique_violation".to_string())].into(),
        );
        let forms = vec![
            "SQLSTATE {sqlstate} {sqlstate=} ({error|error}, {name|-})".to_string(),
            "{error|error} ({name|-})".to_string(),
        ];
        let t = Tags::new([("sqlstate", "23505"), ("name", "insert")]);
        assert_eq!(
            fill(&forms, &t, &d).as_deref(),
            Some("SQLSTATE 23505 unique_violation (error, insert)")
        );
        let t = Tags::new([("error", "timeout")]);
        assert_eq!(fill(&forms, &t, &d).as_deref(), Some("timeout (-)"));
        assert_eq!(fill(&forms[..1], &t, &d), None);
    }

    fn rates_by_kind() -> Figure {
        Figure::RatesBy {
            id: "x-kinds".into(),
            title: "X by kind".into(),
            metric: "x_duration".into(),
            tags: vec!["kind".into()],
        }
    }

    #[test]
    fn a_descriptor_survives_json() {
        let d = Descriptor {
            name: "x".into(),
            figures: vec![rates_by_kind()],
            facts: vec![Fact::Count {
                metric: "x_reqs".into(),
                label: "X requests".into(),
            }],
            ..Default::default()
        };
        let text = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Descriptor>(&text).unwrap(), d);
    }

    /// A summary written by a newer build (a figure or fact kind this build
    /// does not know) still reads: the unknown ones are skipped.
    #[test]
    fn kinds_from_a_newer_build_read_as_unknown() {
        let mut v = serde_json::to_value(Descriptor {
            name: "x".into(),
            figures: vec![rates_by_kind()],
            ..Default::default()
        })
        .unwrap();
        v["figures"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"kind": "heatmap", "id": "x-heat", "bins": 40}));
        v["facts"] = serde_json::json!([{"kind": "sparkline", "metric": "x_reqs"}]);
        let d: Descriptor = serde_json::from_value(v).unwrap();
        assert_eq!(d.figures.len(), 2);
        assert_eq!(d.figures[1], Figure::Unknown);
        assert_eq!(d.facts, vec![Fact::Unknown]);
    }
}
