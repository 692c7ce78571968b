//! The k6 view of a run and its threshold verdicts, derived from its raw
//! series (at the end of a run, and again after a merge).

use crate::judge;
use crate::stats::Stats;
use crate::summary::{MetricSummary, SeriesRecord, ThresholdResult};
use crate::threshold::{Agg, ThresholdSet};
use crate::trend_stats::TrendStat;
use std::collections::BTreeMap;
use std::time::Duration;
use volley_protocols::metrics::{MetricKind, Slot, Tags};

/// k6's `values` of a metric: count and rate, passes and fails, or the
/// trend's statistics.
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

/// [`values_of`], with a trend's `summary_trend_stats` added beside the
/// statistics it always carries.
pub fn values_with(s: &Stats, trend_stats: &[TrendStat]) -> BTreeMap<String, f64> {
    let mut v = values_of(s);
    if s.kind == MetricKind::Trend && s.never_recovered == 0 {
        for t in trend_stats {
            v.entry(t.key()).or_insert_with(|| t.of(s));
        }
    }
    v
}

/// Compute the k6 view and threshold verdicts from raw series.
pub fn derive(
    series: &[(SeriesRecord, Slot)],
    thresholds: &[ThresholdSet],
    elapsed: Duration,
    trend_stats: &[TrendStat],
) -> (BTreeMap<String, MetricSummary>, bool) {
    derive_with(series, thresholds, elapsed, trend_stats, &|_, _| None)
}

/// [`derive`], with the run's gauge slopes at hand so `slope` thresholds can
/// be judged (without them they have no data): `slope(set, after)` is the
/// slope per hour of the set's gauge from `after` on.
pub fn derive_with(
    series: &[(SeriesRecord, Slot)],
    thresholds: &[ThresholdSet],
    elapsed: Duration,
    trend_stats: &[TrendStat],
    slope: &dyn Fn(&ThresholdSet, Duration) -> Option<f64>,
) -> (BTreeMap<String, MetricSummary>, bool) {
    let mut metrics = BTreeMap::new();
    let mut names: Vec<&str> = series.iter().map(|(r, _)| r.metric.as_str()).collect();
    names.sort();
    names.dedup();
    for name in names {
        if let Some(total) = judge::merged_split(series, name, &Tags::default()) {
            metrics.insert(
                name.to_string(),
                MetricSummary {
                    kind: total.kind,
                    contains: total.unit,
                    values: values_with(&total.stats(elapsed), trend_stats),
                    thresholds: BTreeMap::new(),
                },
            );
        }
    }
    let mut all_ok = true;
    for set in thresholds {
        let mut stats = judge::threshold_stats(series, set, elapsed);
        for t in &set.items {
            if let Agg::Slope { after, .. } = t.agg {
                stats.slopes.push((after, slope(set, after)));
            }
        }
        let entry = metrics
            .entry(set.key.clone())
            .or_insert_with(|| MetricSummary {
                kind: stats.kind,
                contains: stats.unit,
                values: values_with(&stats, trend_stats),
                thresholds: BTreeMap::new(),
            });
        for t in &set.items {
            let (ok, value) = t.eval(&stats);
            // A rate or trend with no sample to judge fails, unless the
            // threshold allows it: a filter that matched nothing must not pass.
            let judged = matches!(stats.kind, MetricKind::Rate | MetricKind::Trend);
            let ok = ok.unwrap_or(t.allow_empty || !judged);
            all_ok &= ok;
            entry.thresholds.insert(
                t.source.clone(),
                ThresholdResult {
                    ok,
                    value,
                    no_data: value.is_none(),
                },
            );
        }
    }
    (metrics, all_ok)
}
