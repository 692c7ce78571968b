//! Monitors at run time: the pollers that sample each `[monitors.NAME]`
//! once per second into worker 0's shard, the check before any load that
//! every monitor can be read, the live line's part and the summary's.

mod preflight;
mod sample;

pub use preflight::{MonitorError, prepare};

use crate::aggregate::Aggregator;
use sample::{SampleError, Sampler};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use volley_config::monitor::MonitorSpec;
use volley_model::monitor::{ERRORS, GaugeReport, MonitorReport, gauge_text, short};
use volley_model::point::Point;
use volley_model::summary::SeriesRecord;
use volley_protocols::metrics::{MetricKind, Recorder, SeriesId, Slot, Tags, Unit};

/// Poll every monitor of the plan once per second, from `t0` on, into
/// `rec` (worker 0's shard). Runs until the worker drops it.
pub async fn poll_all(monitors: Arc<[MonitorSpec]>, rec: Recorder, t0: Instant) {
    for i in 0..monitors.len() {
        tokio::task::spawn_local(poll_one(monitors.clone(), i, rec.clone(), t0));
    }
}

async fn poll_one(monitors: Arc<[MonitorSpec]>, i: usize, rec: Recorder, t0: Instant) {
    let m = &monitors[i];
    let mut sampler = match Sampler::new(m, &rec) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("monitor {}: {e}", m.name);
            return;
        }
    };
    let reg = rec.registry().clone();
    let errors = reg.metric(ERRORS, MetricKind::Counter, Unit::Default);
    let tags = Tags::new([("monitor", m.name.as_str())]);
    let mut error_ids: Vec<(SampleError, SeriesId)> = Vec::new();
    let mut warned = false;
    let mut k: u64 = 0;
    loop {
        let due = t0 + Duration::from_secs(k) + Duration::from_millis(500);
        tokio::time::sleep_until(due.into()).await;
        if let Err(what) = sampler.sample(&rec, m.timeout).await {
            let id = match error_ids.iter().find(|(w, _)| *w == what) {
                Some((_, id)) => *id,
                None => {
                    let id = rec.series(errors, &tags.with("error", what.tag()));
                    error_ids.push((what, id));
                    id
                }
            };
            rec.add(id, 1);
            if !warned {
                warned = true;
                tracing::warn!("monitor {} ({}): {}", m.name, m.describe(), what.tag());
            }
        }
        // One sample per second; after a stall, resume with the current second.
        k = (k + 1).max(t0.elapsed().as_secs());
    }
}

/// `srv rss 45.2 MiB cpu 12.0%` for the live line, from the last second.
pub fn live_text(agg: &Aggregator) -> Option<String> {
    // Registered only by plans with monitors.
    agg.registry.metric_id(ERRORS)?;
    let iv = agg.last()?;
    let series = agg.registry.all_series();
    let defs = agg.registry.metrics();
    let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (id, p) in &iv.points {
        let Point::Gauge { value, .. } = p else {
            continue;
        };
        let Some(info) = series.get(*id as usize) else {
            continue;
        };
        let Some(name) = info.tags.get("monitor") else {
            continue;
        };
        let def = &defs[info.metric as usize];
        by.entry(name.to_string()).or_default().push(format!(
            "{} {}",
            short(&def.name),
            gauge_text(&def.name, def.unit, *value)
        ));
    }
    if by.is_empty() {
        return None;
    }
    Some(
        by.into_iter()
            .map(|(n, parts)| format!("{n} {}", parts.join(" ")))
            .collect::<Vec<_>>()
            .join(" | "),
    )
}

/// What the aggregator fits for the monitors (see `crate::track`).
pub fn track(monitors: &[MonitorSpec], agg: &mut Aggregator) {
    for m in monitors {
        let tags = Tags::new([("monitor", m.name.as_str())]);
        for g in m.gauges() {
            agg.track(g, &tags, 0.0);
        }
    }
}

/// The monitors' summary, from the run's gauge tracks and totals.
pub fn reports(
    monitors: &[MonitorSpec],
    agg: &Aggregator,
    series: &[(SeriesRecord, Slot)],
) -> Vec<MonitorReport> {
    let registry = &agg.registry;
    let defs = registry.metrics();
    monitors
        .iter()
        .map(|m| {
            let tags = Tags::new([("monitor", m.name.as_str())]);
            let gauges = m
                .gauges()
                .into_iter()
                .map(|g| {
                    let unit = registry
                        .metric_id(g)
                        .map(|i| defs[i as usize].unit)
                        .unwrap_or(Unit::Default);
                    let t = agg.tracked(g, &tags, 0.0);
                    GaugeReport {
                        metric: g.to_string(),
                        unit,
                        samples: t.map_or(0, |t| t.samples),
                        value: t.and_then(|t| t.last),
                        min: t.and_then(|t| t.min),
                        max: t.and_then(|t| t.max),
                        slope_per_hour: t.and_then(|t| t.slope_per_hour()),
                    }
                })
                .collect();
            let errors = series
                .iter()
                .filter(|(r, _)| r.metric == ERRORS && r.tags.get("monitor") == Some(&m.name))
                .map(|(_, s)| match s {
                    Slot::Counter(n) => *n,
                    _ => 0,
                })
                .sum();
            MonitorReport {
                name: m.name.clone(),
                source: m.describe(),
                gauges,
                errors,
            }
        })
        .collect()
}
