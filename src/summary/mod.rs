//! The run summary: raw series (mergeable: counters, rates, HDR histograms)
//! plus the k6-shaped view derived from them and the threshold verdicts.
//! One structure behind the terminal summary, `--summary-export`, merge,
//! compare and the HTML report.

mod text;

pub use text::{
    BREAKDOWNS, bytes as bytes_text, ms as ms_text, render_text, threshold_observed,
    value as value_text,
};

use crate::aggregate::{Interval, Point};
use crate::stats::Stats;
use crate::threshold::ThresholdSet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use volley_protocols::metrics::{MetricKind, Slot, Tags, Unit, decode_histogram, encode_histogram};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScenarioInfo {
    pub name: String,
    pub driver: String,
    pub executor: String,
    pub description: String,
    pub max_vus: u64,
    pub duration_s: f64,
    pub graceful_stop_s: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunInfo {
    pub version: String,
    pub plan: String,
    pub plan_digest: String,
    /// "I/N" of a distributed run; "1/1" otherwise.
    pub segment: String,
    pub started: String,
    pub started_unix_ms: u64,
    pub duration_s: f64,
    pub aborted: Option<String>,
    pub scenarios: Vec<ScenarioInfo>,
    /// The plan's thresholds, as written, so summaries can be judged again after a merge.
    pub thresholds: Vec<ThresholdSource>,
    /// Set by `volley merge`: which parts this summary was merged from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge: Option<crate::merge::MergeInfo>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ThresholdSource {
    pub key: String,
    pub expressions: Vec<String>,
}

/// Raw values of one series, exact enough to merge.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SeriesData {
    Counter {
        count: u64,
    },
    Rate {
        hits: u64,
        total: u64,
    },
    Gauge {
        value: f64,
        min: f64,
        max: f64,
    },
    /// HdrHistogram V2 (deflate), base64; time values in microseconds.
    Trend {
        histogram: String,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SeriesRecord {
    pub metric: String,
    pub unit: Unit,
    pub tags: Tags,
    #[serde(flatten)]
    pub data: SeriesData,
}

impl SeriesRecord {
    pub fn kind(&self) -> MetricKind {
        match self.data {
            SeriesData::Counter { .. } => MetricKind::Counter,
            SeriesData::Rate { .. } => MetricKind::Rate,
            SeriesData::Gauge { .. } => MetricKind::Gauge,
            SeriesData::Trend { .. } => MetricKind::Trend,
        }
    }

    pub fn to_slot(&self) -> Result<Slot, String> {
        Ok(match &self.data {
            SeriesData::Counter { count } => Slot::Counter(*count),
            SeriesData::Rate { hits, total } => Slot::Rate {
                hits: *hits,
                total: *total,
            },
            SeriesData::Gauge { value, min, max } => Slot::Gauge {
                last: *value,
                min: *min,
                max: *max,
            },
            SeriesData::Trend { histogram } => Slot::Trend(Box::new(decode_histogram(histogram)?)),
        })
    }

    pub fn from_slot(metric: &str, unit: Unit, tags: &Tags, slot: &Slot) -> Option<Self> {
        let data = match slot {
            Slot::Empty => return None,
            Slot::Counter(n) => SeriesData::Counter { count: *n },
            Slot::Rate { hits, total } => SeriesData::Rate {
                hits: *hits,
                total: *total,
            },
            Slot::Gauge { last, min, max } => SeriesData::Gauge {
                value: *last,
                min: *min,
                max: *max,
            },
            Slot::Trend(h) => SeriesData::Trend {
                histogram: encode_histogram(h),
            },
        };
        Some(Self {
            metric: metric.to_string(),
            unit,
            tags: tags.clone(),
            data,
        })
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ThresholdResult {
    pub ok: bool,
    /// The aggregated value compared (ms for time), when there was data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_data: bool,
}

/// k6's `metrics.<name>` entry.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MetricSummary {
    #[serde(rename = "type")]
    pub kind: MetricKind,
    pub contains: Unit,
    pub values: BTreeMap<String, f64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub thresholds: BTreeMap<String, ThresholdResult>,
}

/// One interval's points, with series named (not numbered) so files stand alone.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IntervalRecord {
    /// Seconds from the start of the run at which the interval began.
    pub t: u64,
    pub points: Vec<(usize, Point)>,
    /// Per-scenario percentiles: (index into `rollup_series`, point).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rollups: Vec<(usize, Point)>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    pub volley: RunInfo,
    pub metrics: BTreeMap<String, MetricSummary>,
    pub series: Vec<SeriesRecord>,
    /// Series referenced by `intervals` (index -> metric and tags).
    pub interval_series: Vec<(String, Tags)>,
    /// Trend metrics merged per scenario, referenced by `intervals[].rollups`
    /// (metric and `{scenario}` tag): exact per-second percentiles per scenario.
    #[serde(default)]
    pub rollup_series: Vec<(String, Tags)>,
    pub intervals: Vec<IntervalRecord>,
}

pub fn values_of(s: &Stats) -> BTreeMap<String, f64> {
    let mut v = BTreeMap::new();
    match s.kind {
        MetricKind::Counter => {
            v.insert("count".into(), s.count as f64);
            v.insert("rate".into(), s.rate);
        }
        MetricKind::Rate => {
            v.insert("rate".into(), s.rate);
            v.insert("passes".into(), s.count as f64);
            v.insert("fails".into(), (s.total - s.count) as f64);
        }
        MetricKind::Gauge => {
            v.insert("value".into(), s.value);
            v.insert("min".into(), s.min);
            v.insert("max".into(), s.max);
        }
        MetricKind::Trend => {
            v.insert("count".into(), s.count as f64);
            v.insert("avg".into(), s.avg);
            v.insert("min".into(), s.min);
            v.insert("med".into(), s.quantile(50.0));
            v.insert("max".into(), s.max);
            v.insert("p(90)".into(), s.quantile(90.0));
            v.insert("p(95)".into(), s.quantile(95.0));
            v.insert("p(99)".into(), s.quantile(99.0));
        }
    }
    v
}

/// Merge the series of `metric` whose tags include `filter`. A gauge with a
/// series of exactly these tags is read from that series alone.
pub fn merged(
    series: &[(SeriesRecord, Slot)],
    metric: &str,
    filter: &Tags,
) -> Option<(MetricKind, Unit, Slot)> {
    let matching: Vec<&(SeriesRecord, Slot)> = series
        .iter()
        .filter(|(r, _)| r.metric == metric && r.tags.matches(filter))
        .collect();
    let first = matching.first()?;
    let kind = first.0.kind();
    let exact = kind == MetricKind::Gauge && matching.iter().any(|(r, _)| r.tags == *filter);
    let mut slot = Slot::Empty;
    for (r, s) in &matching {
        if !exact || r.tags == *filter {
            slot.merge(s);
        }
    }
    Some((kind, first.0.unit, slot))
}

/// Compute the k6 view and threshold verdicts from raw series.
pub fn derive(
    series: &[(SeriesRecord, Slot)],
    thresholds: &[ThresholdSet],
    elapsed: Duration,
) -> (BTreeMap<String, MetricSummary>, bool) {
    let mut metrics = BTreeMap::new();
    let mut names: Vec<&str> = series.iter().map(|(r, _)| r.metric.as_str()).collect();
    names.sort();
    names.dedup();
    for name in names {
        if let Some((kind, unit, slot)) = merged(series, name, &Tags::default()) {
            let s = Stats::new(kind, unit, &slot, elapsed);
            metrics.insert(
                name.to_string(),
                MetricSummary {
                    kind,
                    contains: unit,
                    values: values_of(&s),
                    thresholds: BTreeMap::new(),
                },
            );
        }
    }
    let mut all_ok = true;
    for set in thresholds {
        let (kind, unit, slot) = merged(series, &set.metric, &set.filter).unwrap_or_else(|| {
            let kind = series
                .iter()
                .find(|(r, _)| r.metric == set.metric)
                .map(|(r, _)| r.kind())
                .unwrap_or(MetricKind::Counter);
            (kind, Unit::Default, Slot::Empty)
        });
        let stats = Stats::new(kind, unit, &slot, elapsed);
        let entry = metrics
            .entry(set.key.clone())
            .or_insert_with(|| MetricSummary {
                kind,
                contains: unit,
                values: values_of(&stats),
                thresholds: BTreeMap::new(),
            });
        for t in &set.items {
            let (ok, value) = t.eval(&stats);
            all_ok &= ok.unwrap_or(true);
            entry.thresholds.insert(
                t.source.clone(),
                ThresholdResult {
                    ok: ok.unwrap_or(true),
                    value,
                    no_data: ok.is_none(),
                },
            );
        }
    }
    (metrics, all_ok)
}

/// The run's series, as records paired with their slots.
pub fn collect_series(agg: &crate::aggregate::Aggregator) -> Vec<(SeriesRecord, Slot)> {
    let defs = agg.registry.metrics();
    let mut out = Vec::new();
    for (id, info) in agg.registry.all_series().iter().enumerate() {
        let Some(slot) = agg.totals.get(id) else {
            continue;
        };
        let def = &defs[info.metric as usize];
        if let Some(r) = SeriesRecord::from_slot(&def.name, def.unit, &info.tags, slot) {
            out.push((r, slot.clone()));
        }
    }
    out
}

/// The run's time series: series names, rollup names, and the intervals.
pub struct IntervalRecords {
    pub series: Vec<(String, Tags)>,
    pub rollups: Vec<(String, Tags)>,
    pub intervals: Vec<IntervalRecord>,
}

pub fn interval_records(agg: &crate::aggregate::Aggregator) -> IntervalRecords {
    let defs = agg.registry.metrics();
    let series: Vec<(String, Tags)> = agg
        .registry
        .all_series()
        .iter()
        .map(|s| (defs[s.metric as usize].name.to_string(), s.tags.clone()))
        .collect();
    let rollups = agg
        .rollups
        .iter()
        .map(|r| {
            (
                defs[r.metric as usize].name.to_string(),
                Tags::new([("scenario", r.scenario.as_str())]),
            )
        })
        .collect();
    let intervals = agg
        .intervals
        .iter()
        .map(|i: &Interval| IntervalRecord {
            t: i.index,
            points: i.points.iter().map(|(id, p)| (*id as usize, *p)).collect(),
            rollups: i.rollups.iter().map(|(id, p)| (*id as usize, *p)).collect(),
        })
        .collect();
    IntervalRecords {
        series,
        rollups,
        intervals,
    }
}
