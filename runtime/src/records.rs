//! The run's series and time series as a summary carries them: totals as
//! mergeable records, history buckets with series named, not numbered.

use crate::aggregate::Aggregator;
use volley_model::summary::{IntervalRecord, SeriesRecord};
use volley_protocols::metrics::{Slot, Tags};

/// The run's series, as records paired with their slots.
pub fn collect_series(agg: &Aggregator) -> Vec<(SeriesRecord, Slot)> {
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

fn records(h: &volley_model::history::History) -> Vec<IntervalRecord> {
    h.buckets()
        .iter()
        .map(|b| IntervalRecord {
            t: b.t,
            points: b.points.iter().map(|(id, p)| (*id as usize, *p)).collect(),
            rollups: Vec::new(),
        })
        .collect()
}

pub fn interval_records(agg: &Aggregator) -> IntervalRecords {
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
