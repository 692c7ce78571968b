//! The run summary: raw series (mergeable: counters, rates, HDR histograms)
//! plus the k6-shaped view derived from them and the threshold verdicts.
//! One structure behind the terminal summary, `--summary-export`, merge,
//! compare and the HTML report.

mod text;

pub use text::{
    BREAKDOWNS, bytes as bytes_text, ms as ms_text, render_text, stat_line, threshold_observed,
    value as value_text,
};

use crate::aggregate::Point;
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
    /// Tags whose new values were counted under `other` once the run had
    /// `--max-series` series.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub folded: Vec<volley_protocols::metrics::Folded>,
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

/// One bucket's points (one second, or more in a long run's history), with
/// series named (not numbered) so files stand alone.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IntervalRecord {
    /// Seconds from the start of the run at which the bucket began.
    pub t: u64,
    /// (index into `interval_series`, or into `rollup_series` in
    /// `rollup_intervals`; point).
    pub points: Vec<(usize, Point)>,
    /// Older summaries only: per-scenario percentiles here, (index into
    /// `rollup_series`, point). Read into `rollup_intervals`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rollups: Vec<(usize, Point)>,
}

fn one() -> u64 {
    1
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "SummaryFile")]
pub struct Summary {
    pub volley: RunInfo,
    pub metrics: BTreeMap<String, MetricSummary>,
    pub series: Vec<SeriesRecord>,
    /// Series referenced by `intervals` (index -> metric and tags).
    pub interval_series: Vec<(String, Tags)>,
    /// Counters, rates and trends merged per scenario, referenced by
    /// `rollup_intervals` (metric and `{scenario}` tag): the scenario's
    /// per-second sums and exact per-second percentiles.
    pub rollup_series: Vec<(String, Tags)>,
    /// Seconds each record of `intervals` covers: 1, doubling as a long
    /// run's per-series history is coarsened to stay bounded (see
    /// `crate::history`). In records wider than 1 s a trend's percentiles
    /// are the highest of its seconds' (an upper bound).
    pub interval_s: u64,
    pub intervals: Vec<IntervalRecord>,
    /// Seconds each record of `rollup_intervals` covers (1 for hours).
    pub rollup_s: u64,
    pub rollup_intervals: Vec<IntervalRecord>,
    /// Breaking points, recoveries after spikes, monitors (absent in older summaries).
    #[serde(skip_serializing_if = "crate::capacity::CapacitySummary::is_empty")]
    pub capacity: crate::capacity::CapacitySummary,
}

impl Summary {
    /// The times a summary read from a file carries must be times: a damaged
    /// or hand-edited file (`duration_s: 1e300`, an interval at second
    /// 2^64-1) is refused before report, compare or merge compute with it.
    pub fn check_times(&self) -> Result<(), String> {
        let max_s = volley_protocols::duration::MAX.as_secs_f64();
        let secs = |what: String, v: f64| {
            if (0.0..=max_s).contains(&v) {
                Ok(())
            } else {
                Err(format!(
                    "{what} is {v}, not a run's length in seconds (0 to {max_s})"
                ))
            }
        };
        let info = &self.volley;
        secs("volley.duration_s".into(), info.duration_s)?;
        for (i, sc) in info.scenarios.iter().enumerate() {
            secs(format!("volley.scenarios[{i}].duration_s"), sc.duration_s)?;
            secs(
                format!("volley.scenarios[{i}].graceful_stop_s"),
                sc.graceful_stop_s,
            )?;
        }
        // 9999-12-31T23:59:59.999Z, the last instant RFC 3339 can write.
        const LAST_MS: u64 = 253_402_300_799_999;
        if info.started_unix_ms > LAST_MS {
            return Err(format!(
                "volley.started_unix_ms is {}, past the year 9999",
                info.started_unix_ms
            ));
        }
        for (field, width) in [("interval_s", self.interval_s), ("rollup_s", self.rollup_s)] {
            secs(field.into(), width as f64)?;
        }
        for (field, records) in [
            ("intervals", &self.intervals),
            ("rollup_intervals", &self.rollup_intervals),
        ] {
            if let Some((i, iv)) = records
                .iter()
                .enumerate()
                .find(|(_, iv)| iv.t as f64 > max_s)
            {
                return Err(format!(
                    "{field}[{i}].t is {}, not a second of a run (0 to {max_s})",
                    iv.t
                ));
            }
        }
        Ok(())
    }
}

/// A summary as files hold it, older ones included: no bucket widths (one
/// second), rollups inside `intervals`.
#[derive(Deserialize)]
struct SummaryFile {
    volley: RunInfo,
    metrics: BTreeMap<String, MetricSummary>,
    series: Vec<SeriesRecord>,
    interval_series: Vec<(String, Tags)>,
    #[serde(default)]
    rollup_series: Vec<(String, Tags)>,
    #[serde(default = "one")]
    interval_s: u64,
    intervals: Vec<IntervalRecord>,
    #[serde(default = "one")]
    rollup_s: u64,
    #[serde(default)]
    rollup_intervals: Vec<IntervalRecord>,
    #[serde(default)]
    capacity: crate::capacity::CapacitySummary,
}

impl TryFrom<SummaryFile> for Summary {
    type Error = String;

    fn try_from(mut f: SummaryFile) -> Result<Self, String> {
        for (field, v) in [("interval_s", f.interval_s), ("rollup_s", f.rollup_s)] {
            if v == 0 {
                return Err(format!(
                    "`{field}` is 0: it counts the seconds in each bucket, at least 1"
                ));
            }
        }
        if f.rollup_intervals.is_empty() && f.intervals.iter().any(|iv| !iv.rollups.is_empty()) {
            // Older summaries: rollups per second beside the points.
            f.rollup_s = f.interval_s;
            f.rollup_intervals = f
                .intervals
                .iter_mut()
                .map(|iv| IntervalRecord {
                    t: iv.t,
                    points: std::mem::take(&mut iv.rollups),
                    rollups: Vec::new(),
                })
                .collect();
        }
        Ok(Summary {
            volley: f.volley,
            metrics: f.metrics,
            series: f.series,
            interval_series: f.interval_series,
            rollup_series: f.rollup_series,
            interval_s: f.interval_s,
            intervals: f.intervals,
            rollup_s: f.rollup_s,
            rollup_intervals: f.rollup_intervals,
            capacity: f.capacity,
        })
    }
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
            v.insert("fails".into(), s.total.saturating_sub(s.count) as f64);
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
            if s.never_recovered > 0 {
                v.insert("never_recovered".into(), s.never_recovered as f64);
            }
        }
    }
    v
}

/// Like [`merged`], but trend series tagged `recovered:false` (a spike the
/// target never recovered from: their value is only how long it was
/// watched) are counted apart instead of merged.
pub fn merged_split(
    series: &[(SeriesRecord, Slot)],
    metric: &str,
    filter: &Tags,
) -> Option<(MetricKind, Unit, Slot, u64)> {
    let (kind, unit, slot) = merged(series, metric, filter)?;
    if kind != MetricKind::Trend
        || !series
            .iter()
            .any(|(r, _)| r.metric == metric && r.tags.get("recovered") == Some("false"))
    {
        return Some((kind, unit, slot, 0));
    }
    let mut done = Slot::Empty;
    let mut never = 0;
    for (r, s) in series
        .iter()
        .filter(|(r, _)| r.metric == metric && r.tags.matches(filter))
    {
        match (r.tags.get("recovered"), s) {
            (Some("false"), Slot::Trend(h)) => never += h.len(),
            _ => done.merge(s),
        }
    }
    Some((kind, unit, done, never))
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
    derive_with(series, thresholds, elapsed, None)
}

/// [`derive`], with the run's gauge tracks at hand so `slope` thresholds
/// can be judged (without them they have no data).
pub fn derive_with(
    series: &[(SeriesRecord, Slot)],
    thresholds: &[ThresholdSet],
    elapsed: Duration,
    agg: Option<&crate::aggregate::Aggregator>,
) -> (BTreeMap<String, MetricSummary>, bool) {
    let mut metrics = BTreeMap::new();
    let mut names: Vec<&str> = series.iter().map(|(r, _)| r.metric.as_str()).collect();
    names.sort();
    names.dedup();
    for name in names {
        if let Some((kind, unit, slot, never)) = merged_split(series, name, &Tags::default()) {
            let mut s = Stats::new(kind, unit, &slot, elapsed);
            s.never_recovered = never;
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
        let (kind, unit, slot, never) = merged_split(series, &set.metric, &set.filter)
            .unwrap_or_else(|| {
                let kind = series
                    .iter()
                    .find(|(r, _)| r.metric == set.metric)
                    .map(|(r, _)| r.kind())
                    .unwrap_or(MetricKind::Counter);
                (kind, Unit::Default, Slot::Empty, 0)
            });
        let mut stats = Stats::new(kind, unit, &slot, elapsed);
        stats.never_recovered = never;
        if let Some(agg) = agg {
            for t in &set.items {
                if let crate::threshold::Agg::Slope { after, .. } = t.agg {
                    let slope = agg
                        .tracked(&set.metric, &set.filter, after.as_secs_f64())
                        .and_then(|t| t.slope_per_hour());
                    stats.slopes.push((after, slope));
                }
            }
        }
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

/// The run's time series: series names, rollup names, and their buckets.
pub struct IntervalRecords {
    pub series: Vec<(String, Tags)>,
    pub rollups: Vec<(String, Tags)>,
    pub interval_s: u64,
    pub intervals: Vec<IntervalRecord>,
    pub rollup_s: u64,
    pub rollup_intervals: Vec<IntervalRecord>,
}

fn records(h: &crate::history::History) -> Vec<IntervalRecord> {
    h.buckets()
        .iter()
        .map(|b| IntervalRecord {
            t: b.t,
            points: b.points.iter().map(|(id, p)| (*id as usize, *p)).collect(),
            rollups: Vec::new(),
        })
        .collect()
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
    IntervalRecords {
        series,
        rollups,
        interval_s: agg.history.width(),
        intervals: records(&agg.history),
        rollup_s: agg.rollup_history.width(),
        rollup_intervals: records(&agg.rollup_history),
    }
}
