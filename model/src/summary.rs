//! The run summary: raw series (mergeable: counters, rates, HDR histograms)
//! plus the k6-shaped view derived from them and the threshold verdicts.
//! One structure behind the terminal summary, `--summary-export`, merge,
//! compare and the HTML report; the view is derived in [`crate::derive`].

use crate::capacity::CapacitySummary;
use crate::point::Point;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use volley_protocols::descriptor::Descriptor;
use volley_protocols::metrics::{
    HistogramError, MetricKind, Slot, Tags, Unit, decode_histogram, encode_histogram,
};

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
    pub merge: Option<MergeInfo>,
    /// Tags whose new values were counted under `other` once the run had
    /// `--max-series` series.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub folded: Vec<volley_protocols::metrics::Folded>,
    /// `summary_trend_stats`: the trend statistics the summary shows, in
    /// order; empty: the default (see `trend_stats::DEFAULT`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub summary_trend_stats: Vec<String>,
    /// What the plan's drivers show of themselves, so that the summary
    /// renders alone (summaries from before it render with this build's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drivers: Vec<Descriptor>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ThresholdSource {
    pub key: String,
    pub expressions: Vec<String>,
    /// The expressions written with `allow_empty = true`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_empty: Vec<String>,
}

/// How a merged summary's per-second percentiles were combined.
pub const INTERVAL_PERCENTILES: &str = "max-of-parts";

/// Where a merged summary came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MergeInfo {
    /// Segments the merged data covers (1-based), out of `of`.
    pub segments: Vec<u64>,
    pub of: u64,
    /// Segments no part covered (only with `--allow-partial`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<u64>,
    pub parts: Vec<PartInfo>,
    /// The largest gap between two parts' start times.
    pub start_skew_ms: u64,
    /// Per-second percentiles do not merge exactly: how they were combined
    /// ("max-of-parts": an upper bound). Totals and thresholds are exact.
    pub interval_percentiles: String,
}

impl MergeInfo {
    pub fn complete(&self) -> bool {
        self.missing.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartInfo {
    pub file: String,
    pub segment: String,
    pub version: String,
    pub started: String,
    pub started_unix_ms: u64,
    pub duration_s: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted: Option<String>,
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

    pub fn to_slot(&self) -> Result<Slot, HistogramError> {
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
    #[serde(skip_serializing_if = "CapacitySummary::is_empty")]
    pub capacity: CapacitySummary,
}

impl Summary {
    /// The drivers to render this summary with: this build's, each as the
    /// summary describes it when it does, then the summary's drivers this
    /// build does not know.
    pub fn drivers(&self) -> Vec<Descriptor> {
        let own = &self.volley.drivers;
        let mut out: Vec<Descriptor> = volley_protocols::drivers::descriptors()
            .iter()
            .map(|d| own.iter().find(|o| o.name == d.name).unwrap_or(d).clone())
            .collect();
        for d in own {
            if !out.iter().any(|o| o.name == d.name) {
                out.push(d.clone());
            }
        }
        out
    }

    /// The times a summary read from a file carries must be times: a damaged
    /// or hand-edited file (`duration_s: 1e300`, an interval at second
    /// 2^64-1) is refused before report, compare or merge compute with it.
    pub fn check_times(&self) -> Result<(), TimesError> {
        let max_s = volley_protocols::duration::MAX.as_secs_f64();
        let secs = |what: String, v: f64| {
            if (0.0..=max_s).contains(&v) {
                Ok(())
            } else {
                Err(TimesError::Length {
                    what,
                    v,
                    max: max_s,
                })
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
            return Err(TimesError::Start(info.started_unix_ms));
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
                return Err(TimesError::Second {
                    field,
                    i,
                    t: iv.t,
                    max: max_s,
                });
            }
        }
        Ok(())
    }
}

/// A time in a summary file that no run has.
#[derive(Debug, thiserror::Error)]
pub enum TimesError {
    #[error("{what} is {v}, not a run's length in seconds (0 to {max})")]
    Length { what: String, v: f64, max: f64 },
    #[error("volley.started_unix_ms is {0}, past the year 9999")]
    Start(u64),
    #[error("{field}[{i}].t is {t}, not a second of a run (0 to {max})")]
    Second {
        field: &'static str,
        i: usize,
        t: u64,
        max: f64,
    },
}

/// A bucket width of 0 in a summary file.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is 0: it counts the seconds in each bucket, at least 1")]
pub struct ZeroWidth(&'static str);

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
    capacity: CapacitySummary,
}

impl TryFrom<SummaryFile> for Summary {
    type Error = ZeroWidth;

    fn try_from(mut f: SummaryFile) -> Result<Self, ZeroWidth> {
        for (field, v) in [("interval_s", f.interval_s), ("rollup_s", f.rollup_s)] {
            if v == 0 {
                return Err(ZeroWidth(field));
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
