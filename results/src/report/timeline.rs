//! Per-second values out of a summary's buckets, per scenario: the
//! per-series history (`intervals`, one or more seconds per bucket) and the
//! per-scenario rollups (`rollup_intervals`, per second for hours).

use std::collections::{BTreeMap, HashMap};
use volley_model::point::Point;
use volley_model::summary::Summary;
use volley_protocols::metrics::Tags;

/// How values of several series in one interval combine.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    /// Counts: add up; an interval without a point is 0.
    Sum,
    /// Gauges of disjoint series (e.g. connections per state): add up the
    /// last values; no point is no value.
    SumGauge,
}

pub struct Timeline<'a> {
    s: &'a Summary,
    /// Bucket start (seconds) per position in `intervals`.
    pub t: Vec<u64>,
    /// Bucket start per position in `rollup_intervals`.
    pub rollup_t: Vec<u64>,
    /// Seconds the run lasted, whole: the last bucket may cover fewer.
    end: u64,
    /// Series indices per metric name.
    by_metric: HashMap<&'a str, Vec<usize>>,
    rollups: HashMap<(&'a str, &'a str), usize>,
}

impl<'a> Timeline<'a> {
    pub fn new(s: &'a Summary) -> Self {
        let mut by_metric: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, (m, _)) in s.interval_series.iter().enumerate() {
            by_metric.entry(m.as_str()).or_default().push(i);
        }
        let mut rollups = HashMap::new();
        for (i, (m, tags)) in s.rollup_series.iter().enumerate() {
            if let Some(sc) = tags.get("scenario") {
                rollups.insert((m.as_str(), sc), i);
            }
        }
        Self {
            s,
            t: s.intervals.iter().map(|iv| iv.t).collect(),
            rollup_t: s.rollup_intervals.iter().map(|iv| iv.t).collect(),
            end: s.volley.duration_s.clamp(0.0, 1e15).ceil() as u64,
            by_metric,
            rollups,
        }
    }

    /// Seconds per bucket of the per-series history.
    pub fn width(&self) -> u64 {
        self.s.interval_s.max(1)
    }

    /// How a gauge's bucket is drawn: its value, or in a bucket of several
    /// seconds its highest (charts show the highest second of a span).
    pub fn gauge(&self) -> fn(&Point) -> Option<f64> {
        if self.width() > 1 {
            gauge_max
        } else {
            gauge_of
        }
    }

    /// Seconds per bucket of the rollups.
    pub fn rollup_width(&self) -> u64 {
        self.s.rollup_s.max(1)
    }

    /// Counts per bucket (starting at `t`, `width` wide) as counts per second.
    fn per_second(&self, t: &[u64], width: u64, counts: Vec<Option<f64>>) -> Vec<Option<f64>> {
        if width <= 1 {
            return counts;
        }
        t.iter()
            .zip(counts)
            .map(|(t, c)| {
                let covered = width.min(self.end.saturating_sub(*t)).max(1);
                c.map(|c| c / covered as f64)
            })
            .collect()
    }

    /// Per-second counts of `series` (see [`count_of`]), one per bucket.
    pub fn rates(&self, series: &[usize], misses: bool) -> Vec<Option<f64>> {
        let counts = self.values(series, Combine::Sum, |p| count_of(p, misses));
        self.per_second(&self.t, self.width(), counts)
    }

    /// [`rates`](Self::rates), one line per value of `tag`.
    pub fn grouped_rates(
        &self,
        series: &[usize],
        tag: &str,
        misses: bool,
    ) -> BTreeMap<String, Vec<Option<f64>>> {
        self.grouped(series, tag, Combine::Sum, |p| count_of(p, misses))
            .into_iter()
            .map(|(k, v)| (k, self.per_second(&self.t, self.width(), v)))
            .collect()
    }

    /// Per-second counts of each group of series (see [`count_of`]), with
    /// the group's total over the run.
    pub fn grouped_counts(
        &self,
        groups: BTreeMap<String, Vec<usize>>,
    ) -> BTreeMap<String, (Vec<Option<f64>>, u64)> {
        groups
            .into_iter()
            .map(|(k, ids)| {
                let counts = self.values(&ids, Combine::Sum, |p| count_of(p, false));
                let total = counts.iter().flatten().sum::<f64>() as u64;
                (k, (self.per_second(&self.t, self.width(), counts), total))
            })
            .collect()
    }

    /// Whether `metric` has per-scenario rollups for `scenario`.
    pub fn has_rollup(&self, metric: &str, scenario: &str) -> bool {
        self.rollups.contains_key(&(metric, scenario))
    }

    /// Per-second counts of `metric` over the whole scenario, one per rollup
    /// bucket (`None` without a rollup for it).
    pub fn rollup_rates(
        &self,
        metric: &str,
        scenario: &str,
        misses: bool,
    ) -> Option<Vec<Option<f64>>> {
        let r = *self.rollups.get(&(metric, scenario))?;
        let counts = self
            .s
            .rollup_intervals
            .iter()
            .map(|iv| {
                let p = iv.points.iter().find(|(i, _)| *i == r).map(|(_, p)| p);
                Some(p.and_then(|p| count_of(p, misses)).unwrap_or(0.0))
            })
            .collect();
        Some(self.per_second(&self.rollup_t, self.rollup_width(), counts))
    }

    pub fn tags(&self, series: usize) -> &'a Tags {
        &self.s.interval_series[series].1
    }

    /// Series of `metric` tagged with `scenario` (`None`: with no scenario
    /// tag, e.g. run-wide totals or a sampler outside any scenario).
    pub fn series_of(&self, metric: &str, scenario: Option<&str>) -> Vec<usize> {
        self.by_metric
            .get(metric)
            .map(|v| {
                v.iter()
                    .copied()
                    .filter(|i| self.tags(*i).get("scenario") == scenario)
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn series_in(&self, metric: &str, scenario: &str) -> Vec<usize> {
        self.series_of(metric, Some(scenario))
    }

    pub fn has(&self, metric: &str, scenario: &str) -> bool {
        !self.series_in(metric, scenario).is_empty()
    }

    /// One value per interval from the points of `series`.
    pub fn values(
        &self,
        series: &[usize],
        combine: Combine,
        value: impl Fn(&Point) -> Option<f64>,
    ) -> Vec<Option<f64>> {
        let mut wanted = vec![false; self.s.interval_series.len()];
        for i in series {
            wanted[*i] = true;
        }
        self.s
            .intervals
            .iter()
            .map(|iv| {
                let mut acc: Option<f64> = match combine {
                    Combine::Sum => Some(0.0),
                    Combine::SumGauge => None,
                };
                for (id, p) in &iv.points {
                    if wanted.get(*id).copied().unwrap_or(false)
                        && let Some(v) = value(p)
                    {
                        acc = Some(acc.unwrap_or(0.0) + v);
                    }
                }
                acc
            })
            .collect()
    }

    /// Like [`values`](Self::values), one line per value of `tag`.
    pub fn grouped(
        &self,
        series: &[usize],
        tag: &str,
        combine: Combine,
        value: impl Fn(&Point) -> Option<f64> + Copy,
    ) -> BTreeMap<String, Vec<Option<f64>>> {
        let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for i in series {
            let key = self.tags(*i).get(tag).unwrap_or("-").to_string();
            groups.entry(key).or_default().push(*i);
        }
        groups
            .into_iter()
            .map(|(k, ids)| (k, self.values(&ids, combine, value)))
            .collect()
    }

    /// Exact per-second percentiles of `metric` over the whole scenario, from
    /// the rollups the aggregator computed, one per rollup bucket. `None`
    /// when the summary has none (an older summary without them).
    pub fn percentiles(&self, metric: &str, scenario: &str) -> Option<[Vec<Option<f64>>; 3]> {
        let r = *self.rollups.get(&(metric, scenario))?;
        let mut out: [Vec<Option<f64>>; 3] = Default::default();
        for iv in &self.s.rollup_intervals {
            let p = iv.points.iter().find(|(i, _)| *i == r).map(|(_, p)| p);
            for (k, q) in [0usize, 1, 2].into_iter().zip(percentile_triple(p)) {
                out[k].push(q);
            }
        }
        Some(out)
    }

    /// Upper bound of each per-second percentile: the highest percentile among
    /// the scenario's series (a quantile of a mixture never exceeds the
    /// largest quantile of its parts). Used when there are no rollups.
    pub fn percentile_bounds(&self, metric: &str, scenario: &str) -> [Vec<Option<f64>>; 3] {
        let mut wanted = vec![false; self.s.interval_series.len()];
        for i in self.series_in(metric, scenario) {
            wanted[i] = true;
        }
        let mut out: [Vec<Option<f64>>; 3] = Default::default();
        for iv in &self.s.intervals {
            let mut top = [None::<f64>; 3];
            for (id, p) in &iv.points {
                if !wanted.get(*id).copied().unwrap_or(false) {
                    continue;
                }
                for (t, q) in top.iter_mut().zip(percentile_triple(Some(p))) {
                    if let Some(q) = q {
                        *t = Some(t.map_or(q, |x| x.max(q)));
                    }
                }
            }
            for (o, t) in out.iter_mut().zip(top) {
                o.push(t);
            }
        }
        out
    }
}

/// p50, p95, p99 of a trend point, in ms.
fn percentile_triple(p: Option<&Point>) -> [Option<f64>; 3] {
    match p {
        Some(Point::Trend { p50, p95, p99, .. }) => [
            Some(*p50 as f64 / 1000.0),
            Some(*p95 as f64 / 1000.0),
            Some(*p99 as f64 / 1000.0),
        ],
        _ => [None, None, None],
    }
}

/// Count-like value of a point: counters count, rates their true
/// observations (or false ones with `misses`), trends their samples.
pub fn count_of(p: &Point, misses: bool) -> Option<f64> {
    match *p {
        Point::Counter { count } => Some(count as f64),
        Point::Rate { hits, total } => Some(if misses {
            total.saturating_sub(hits)
        } else {
            hits
        } as f64),
        Point::Trend { count, .. } => Some(count as f64),
        Point::Gauge { .. } => None,
    }
}

/// A gauge's value in a one-second bucket.
pub fn gauge_of(p: &Point) -> Option<f64> {
    match *p {
        Point::Gauge { value, .. } => Some(value),
        _ => None,
    }
}

/// A gauge's highest value in a bucket (its value, in a one-second one).
pub fn gauge_max(p: &Point) -> Option<f64> {
    match *p {
        Point::Gauge { max, .. } => Some(max),
        _ => None,
    }
}
