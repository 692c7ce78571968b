//! The aggregator: merges worker shards per flush interval into cumulative
//! totals (full histograms), a bounded history of small points per series
//! and per scenario (see [`volley_model::history`]), and the latest intervals in
//! full for the observers that stream them (outputs, progress, capacity).

use crate::track::GaugeTrack;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use volley_model::history::{self, History};
use volley_model::judge::{self, SeriesTable};
use volley_model::point::Point;
use volley_protocols::metrics::{
    MetricDef, MetricId, MetricKind, Registry, SeriesId, SeriesInfo, Shard, Slot, Tags, Unit,
};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Interval {
    /// Interval k covers [k, k+1) seconds from the start of the run.
    pub index: u64,
    pub points: Vec<(SeriesId, Point)>,
    /// Per-scenario points of each counter, rate and trend (index into
    /// [`Aggregator::rollups`]): the scenario's sums, and its exact
    /// percentiles, computed here from the interval's merged histograms
    /// (percentiles do not add up across series).
    pub rollups: Vec<(u32, Point)>,
}

/// A counter, rate or trend metric within one scenario: what per-scenario
/// charts plot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rollup {
    pub metric: MetricId,
    pub scenario: String,
}

/// What a worker sends once per flush interval.
pub struct Flush {
    pub worker: usize,
    pub index: u64,
    pub shard: Shard,
    /// VUs busy in an iteration per scenario: at the flush, and the fewest
    /// and most since the worker's previous flush.
    pub active: Vec<VuSample>,
    /// VUs allocated per scenario, the same way.
    pub allocated: Vec<VuSample>,
    /// The worker's last flush.
    pub last: bool,
}

/// One VU count of one worker over a flush interval.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct VuSample {
    /// At the flush.
    pub now: u64,
    /// The fewest and the most during the interval.
    pub low: u64,
    pub peak: u64,
}

impl VuSample {
    /// A count that held all interval long.
    pub fn steady(n: u64) -> Self {
        Self {
            now: n,
            low: n,
            peak: n,
        }
    }

    fn add(&mut self, o: &VuSample) {
        self.now += o.now;
        self.low += o.low;
        self.peak += o.peak;
    }
}

#[derive(Default)]
struct Pending {
    slots: Vec<Slot>,
    active: Vec<VuSample>,
    allocated: Vec<VuSample>,
    /// Some flush of this interval came from a worker still running.
    running: bool,
}

pub struct Aggregator {
    pub registry: Arc<Registry>,
    seen: Vec<Option<u64>>,
    done: Vec<bool>,
    pending: BTreeMap<u64, Pending>,
    pub totals: Vec<Slot>,
    /// The intervals the latest `push` (or `finish`) completed, in full.
    recent: Vec<Interval>,
    /// Intervals completed so far.
    completed: u64,
    /// A new `push` started: the next completed interval replaces `recent`.
    stale: bool,
    /// Each series' points, coarsening as the run grows.
    pub history: History,
    /// Each rollup's points, per second (coarsening only past hours).
    pub rollup_history: History,
    /// Gauges fitted as the run goes (monitors, slope thresholds).
    pub tracks: Vec<GaugeTrack>,
    vus: SeriesId,
    vus_max: SeriesId,
    vus_by_scenario: Vec<SeriesId>,
    pub rollups: Vec<Rollup>,
    /// Per series id: its rollup, once looked up (`None` = not looked up yet).
    rollup_of: Vec<Option<Option<u32>>>,
}

impl Aggregator {
    pub fn new(registry: Arc<Registry>, workers: usize, scenarios: &[String]) -> Self {
        let vus_m = registry.metric("vus", MetricKind::Gauge, Unit::Default);
        let vus_max_m = registry.metric("vus_max", MetricKind::Gauge, Unit::Default);
        let vus = registry.series(vus_m, &Tags::default());
        let vus_max = registry.series(vus_max_m, &Tags::default());
        let vus_by_scenario = scenarios
            .iter()
            .map(|s| registry.series(vus_m, &Tags::new([("scenario", s.as_str())])))
            .collect();
        Self {
            registry,
            seen: vec![None; workers],
            done: vec![false; workers],
            pending: BTreeMap::new(),
            totals: Vec::new(),
            recent: Vec::new(),
            completed: 0,
            stale: false,
            history: History::new(history::SERIES_BUCKETS, history::SERIES_POINTS),
            rollup_history: History::new(history::ROLLUP_BUCKETS, history::ROLLUP_POINTS),
            tracks: Vec::new(),
            vus,
            vus_max,
            vus_by_scenario,
            rollups: Vec::new(),
            rollup_of: Vec::new(),
        }
    }

    /// Keep at most `points` points of per-series history (see
    /// [`History`]); call before the first push.
    pub fn set_history_points(&mut self, points: usize) {
        self.history = History::new(history::SERIES_BUCKETS, points);
    }

    /// Fit `metric`'s gauge (the series with exactly `filter`'s tags, else
    /// the sum of those matching) second by second, leaving out the first
    /// `after` seconds of the slope; call before the first push.
    pub fn track(&mut self, metric: &str, filter: &Tags, after: f64) {
        if !self
            .tracks
            .iter()
            .any(|t| t.metric == metric && t.filter == *filter && t.after == after)
        {
            self.tracks.push(GaugeTrack::new(metric, filter, after));
        }
    }

    /// The track of `metric` with exactly this filter and warm-up.
    pub fn tracked(&self, metric: &str, filter: &Tags, after: f64) -> Option<&GaugeTrack> {
        self.tracks
            .iter()
            .find(|t| t.metric == metric && t.filter == *filter && t.after == after)
    }

    /// How many intervals have completed.
    pub fn completed(&self) -> u64 {
        self.completed
    }

    /// The intervals completed after the first `seen` ones, in full, as far
    /// as the latest `push` (or `finish`) completed them: observers called
    /// after each push see every interval.
    pub fn since(&self, seen: u64) -> &[Interval] {
        let first = self.completed - self.recent.len() as u64;
        let skip = seen.saturating_sub(first).min(self.recent.len() as u64);
        &self.recent[skip as usize..]
    }

    /// The latest completed interval, in full.
    pub fn last(&self) -> Option<&Interval> {
        self.recent.last()
    }

    /// Take one worker flush; returns how many intervals became complete.
    pub fn push(&mut self, f: Flush) -> usize {
        self.stale = true;
        let p = self.pending.entry(f.index).or_default();
        merge_slots(&mut p.slots, f.shard.slots);

        add(&mut p.active, &f.active);
        add(&mut p.allocated, &f.allocated);
        p.running |= !f.last;
        self.seen[f.worker] = Some(f.index);
        if f.last {
            self.done[f.worker] = true;
        }
        let mut n = 0;
        while let Some((&k, _)) = self.pending.first_key_value() {
            let complete = self
                .seen
                .iter()
                .zip(&self.done)
                .all(|(s, d)| *d || s.is_some_and(|s| s >= k));
            if !complete {
                break;
            }
            self.finalize(k);
            n += 1;
        }
        n
    }

    /// Close every interval still open (end of run).
    pub fn finish(&mut self) {
        self.stale = true;
        let keys: Vec<u64> = self.pending.keys().copied().collect();
        for k in keys {
            self.finalize(k);
        }
    }

    fn finalize(&mut self, k: u64) {
        let Some(mut p) = self.pending.remove(&k) else {
            return;
        };
        // Workers' counts add up (each runs its own VUs); the sum of their
        // peaks may exceed the run's true peak by VUs that peaked at
        // different moments of the same second, never fall short of it.
        let sum = |v: &[VuSample]| {
            let mut t = VuSample::default();
            v.iter().for_each(|x| t.add(x));
            t
        };
        let (busy, alloc) = (sum(&p.active), sum(&p.allocated));
        // After every worker finished, the VUs have retired: the last
        // interval shows what it held before, or nothing when it held none.
        let done = !p.running;
        if !done || alloc.peak > 0 {
            let busy_gauge = |s: VuSample| {
                if done {
                    (s.peak, s.peak, s.peak)
                } else {
                    (s.now, s.low, s.peak)
                }
            };
            let (last, min, max) = busy_gauge(busy);
            set_gauge(&mut p.slots, self.vus, last, min, max);
            // Allocation only grows until the VUs retire at the end: an
            // interval's allocation is its peak (retiring does not read as
            // fewer VUs allocated).
            set_gauge(
                &mut p.slots,
                self.vus_max,
                alloc.peak,
                alloc.peak,
                alloc.peak,
            );
            for (i, id) in self.vus_by_scenario.iter().enumerate() {
                let (last, min, max) = busy_gauge(p.active.get(i).copied().unwrap_or_default());
                set_gauge(&mut p.slots, *id, last, min, max);
            }
        }
        let mut points = Vec::new();
        for (id, slot) in p.slots.iter().enumerate() {
            if let Some(point) = Point::of(slot) {
                points.push((id as SeriesId, point));
            }
        }
        let rollups = self.roll_up(&p.slots);
        merge_slots(&mut self.totals, p.slots);
        self.history.push(k, &points);
        self.rollup_history.push(k, &rollups);
        for t in &mut self.tracks {
            t.push(k, &points, &self.registry);
        }
        if self.stale {
            self.recent.clear();
            self.stale = false;
        }
        self.completed += 1;
        self.recent.push(Interval {
            index: k,
            points,
            rollups,
        });
    }

    /// Merge one interval's counters, rates and trend histograms per
    /// (metric, scenario): the scenario's per-second sums and exact
    /// percentiles, kept as small points.
    fn roll_up(&mut self, slots: &[Slot]) -> Vec<(u32, Point)> {
        let mut merged: Vec<Slot> = Vec::new();
        let mut series = None;
        for (id, slot) in slots.iter().enumerate() {
            if matches!(slot, Slot::Empty | Slot::Gauge { .. }) {
                continue;
            }
            if self.rollup_of.len() <= id {
                self.rollup_of.resize(id + 1, None);
            }
            let rid = match self.rollup_of[id] {
                Some(r) => r,
                None => {
                    let all = series.get_or_insert_with(|| self.registry.all_series());
                    let r = all.get(id).and_then(|info| {
                        let scenario = info.tags.get("scenario")?;
                        let key = Rollup {
                            metric: info.metric,
                            scenario: scenario.to_string(),
                        };
                        Some(match self.rollups.iter().position(|x| *x == key) {
                            Some(i) => i as u32,
                            None => {
                                self.rollups.push(key);
                                (self.rollups.len() - 1) as u32
                            }
                        })
                    });
                    self.rollup_of[id] = Some(r);
                    r
                }
            };
            if let Some(r) = rid {
                let r = r as usize;
                if merged.len() <= r {
                    merged.resize_with(r + 1, Slot::default);
                }
                merged[r].merge(slot);
            }
        }
        merged
            .iter()
            .enumerate()
            .filter_map(|(r, slot)| Some((r as u32, Point::of(slot)?)))
            .collect()
    }

    /// The run's totals so far as a table of series, for the judge
    /// (`volley_model::judge`): what thresholds and capacity signals read.
    pub fn totals(&self) -> Totals<'_> {
        Totals {
            defs: self.registry.metrics(),
            series: self.registry.all_series(),
            slots: &self.totals,
        }
    }

    /// Totals of `metric` over every series whose tags include `filter`
    /// (see [`judge::merged`]).
    pub fn total(&self, metric: &str, filter: &Tags) -> Slot {
        judge::merged(&self.totals(), metric, filter).map_or(Slot::Empty, |t| t.slot)
    }
}

/// A snapshot of the run's series (their metric and tags) beside the
/// aggregator's totals: taken once per question, so the judge walks it
/// without the registry's lock.
pub struct Totals<'a> {
    defs: Vec<MetricDef>,
    series: Vec<SeriesInfo>,
    slots: &'a [Slot],
}

impl SeriesTable for Totals<'_> {
    fn def(&self, metric: &str) -> Option<(MetricKind, Unit)> {
        self.defs
            .iter()
            .find(|d| &*d.name == metric)
            .map(|d| (d.kind, d.unit))
    }

    fn each(&self, metric: &str, f: &mut dyn FnMut(&Tags, &Slot)) {
        let Some(id) = self.defs.iter().position(|d| &*d.name == metric) else {
            return;
        };
        for (info, slot) in self.series.iter().zip(self.slots) {
            if info.metric as usize == id && !slot.is_empty() {
                f(&info.tags, slot);
            }
        }
    }
}

fn add(into: &mut Vec<VuSample>, from: &[VuSample]) {
    if into.len() < from.len() {
        into.resize(from.len(), VuSample::default());
    }
    for (a, b) in into.iter_mut().zip(from) {
        a.add(b);
    }
}

fn merge_slots(into: &mut Vec<Slot>, from: Vec<Slot>) {
    if into.len() < from.len() {
        into.resize_with(from.len(), Slot::default);
    }
    for (i, s) in from.into_iter().enumerate() {
        match &mut into[i] {
            slot @ Slot::Empty => *slot = s,
            slot => slot.merge(&s),
        }
    }
}

fn set_gauge(slots: &mut Vec<Slot>, id: SeriesId, last: u64, min: u64, max: u64) {
    let i = id as usize;
    if slots.len() <= i {
        slots.resize_with(i + 1, Slot::default);
    }
    slots[i] = Slot::Gauge {
        last: last as f64,
        min: min as f64,
        max: max as f64,
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use volley_protocols::metrics::Recorder;

    #[test]
    fn intervals_complete_when_every_worker_reported() {
        let reg = Registry::new();
        let m = reg.metric("http_reqs", MetricKind::Counter, Unit::Default);
        let id = reg.series(m, &Tags::new([("scenario", "a")]));
        let mut agg = Aggregator::new(reg.clone(), 2, &["a".to_string()]);
        let flush = |worker, index, n, last| {
            let rec = Recorder::new(reg.clone());
            rec.add(id, n);
            Flush {
                worker,
                index,
                shard: rec.take(),
                active: vec![VuSample::steady(3)],
                allocated: vec![VuSample::steady(3)],
                last,
            }
        };
        assert_eq!(agg.push(flush(0, 0, 5, false)), 0);
        assert_eq!(agg.push(flush(1, 0, 7, false)), 1);
        let first = &agg.since(0)[0];
        assert!(first.points.contains(&(id, Point::Counter { count: 12 })));
        assert_eq!(agg.push(flush(1, 1, 1, true)), 0);
        assert_eq!(agg.push(flush(0, 1, 2, true)), 1);
        assert!(matches!(
            agg.total("http_reqs", &Tags::default()),
            Slot::Counter(15)
        ));
        assert_eq!(agg.completed(), 2);
        assert_eq!(agg.since(1).len(), 1);
        assert!(agg.since(2).is_empty());
        assert!(
            matches!(agg.total("vus", &Tags::default()), Slot::Gauge { last, .. } if last == 6.0)
        );
    }

    #[test]
    fn history_stays_bounded_however_long_the_run() {
        // 1,000 series for 1,500 s: 1.5M points if every second were kept.
        let reg = Registry::new();
        let m = reg.metric("http_reqs", MetricKind::Counter, Unit::Default);
        let ids: Vec<SeriesId> = (0..1000)
            .map(|i| {
                reg.series(
                    m,
                    &Tags::new([("scenario", "a")]).with("name", format!("/item/{i}")),
                )
            })
            .collect();
        let mut agg = Aggregator::new(reg.clone(), 1, &["a".to_string()]);
        agg.set_history_points(50_000);
        let seconds = 1500u64;
        for k in 0..seconds {
            let rec = Recorder::new(reg.clone());
            for id in &ids {
                rec.add(*id, 1 + k % 3);
            }
            agg.push(Flush {
                worker: 0,
                index: k,
                shard: rec.take(),
                active: vec![VuSample::steady(1)],
                allocated: vec![VuSample::steady(1)],
                last: k + 1 == seconds,
            });
            assert!(agg.history.len() <= 50_000, "{k}: {}", agg.history.len());
        }
        let width = agg.history.width();
        assert!(width >= 32, "{width}");
        assert!(agg.history.buckets().len() * width as usize >= seconds as usize);
        // Every count is still in the history, per series too.
        let want: u64 = (0..seconds).map(|k| 1 + k % 3).sum();
        let of = |id: SeriesId| -> u64 {
            agg.history
                .buckets()
                .iter()
                .flat_map(|b| &b.points)
                .filter(|p| p.0 == id)
                .map(|p| match p.1 {
                    Point::Counter { count } => count,
                    _ => 0,
                })
                .sum()
        };
        assert_eq!(of(ids[0]), want);
        assert_eq!(of(ids[999]), want);
        // The scenario's rollup stays per second, with the same total.
        assert_eq!(agg.rollup_history.width(), 1);
        assert_eq!(agg.rollup_history.buckets().len(), seconds as usize);
        let rolled: u64 = agg
            .rollup_history
            .buckets()
            .iter()
            .flat_map(|b| &b.points)
            .map(|p| match p.1 {
                Point::Counter { count } => count,
                _ => 0,
            })
            .sum();
        assert_eq!(rolled, want * 1000);
        assert!(
            matches!(agg.total("http_reqs", &Tags::default()), Slot::Counter(n) if n == want * 1000)
        );
    }

    #[test]
    fn rollups_are_exact_percentiles_per_scenario() {
        let reg = Registry::new();
        let m = reg.metric("http_req_duration", MetricKind::Trend, Unit::Time);
        let a = Tags::new([("scenario", "a")]);
        let (fast, slow, other) = (
            reg.series(m, &a.with("name", "fast")),
            reg.series(m, &a.with("name", "slow")),
            reg.series(m, &Tags::new([("scenario", "b")])),
        );
        let mut agg = Aggregator::new(reg.clone(), 1, &["a".to_string(), "b".to_string()]);
        let rec = Recorder::new(reg.clone());
        // 90 fast samples and 10 slow ones: p50 of the scenario is fast,
        // p95 slow; neither series alone has both.
        for _ in 0..90 {
            rec.trend(fast, 1_000);
        }
        for _ in 0..10 {
            rec.trend(slow, 50_000);
        }
        rec.trend(other, 7);
        agg.push(Flush {
            worker: 0,
            index: 0,
            shard: rec.take(),
            active: vec![VuSample::steady(1), VuSample::steady(1)],
            allocated: vec![VuSample::steady(1), VuSample::steady(1)],
            last: true,
        });
        let iv = agg.last().unwrap();
        assert_eq!(agg.rollups.len(), 2);
        let ra = agg
            .rollups
            .iter()
            .position(|r| r.scenario == "a" && r.metric == m)
            .unwrap() as u32;
        let (_, p) = iv.rollups.iter().find(|(r, _)| *r == ra).unwrap();
        let Point::Trend {
            count, p50, p95, ..
        } = *p
        else {
            panic!("{p:?}")
        };
        assert_eq!(count, 100);
        assert_eq!(p50, 1_000);
        assert!((49_950..=50_050).contains(&p95), "{p95}");
        // Totals and thresholds see the series, never the rollups.
        assert!(matches!(
            agg.total("http_req_duration", &a),
            Slot::Trend(h) if h.len() == 100
        ));
    }
}
