//! Summary statistics of a metric (or a tag-filtered part of it).

use hdrhistogram::Histogram;
use std::time::Duration;
use volley_protocols::metrics::{MetricKind, Slot, Unit};

#[derive(Clone, Debug)]
pub struct Stats {
    pub kind: MetricKind,
    pub unit: Unit,
    /// Counter: the sum. Rate: the non-zero observations. Trend: samples.
    pub count: u64,
    /// Rate: all observations.
    pub total: u64,
    /// Counter: per second over the run. Rate: share of non-zero observations.
    pub rate: f64,
    /// Gauge: last value.
    pub value: f64,
    /// Trend (ms for time metrics) or gauge.
    pub min: f64,
    pub max: f64,
    pub avg: f64,
    pub hist: Option<Histogram<u64>>,
    /// Gauge: least-squares slope per hour from each warm-up on (see
    /// `crate::track`); empty when the run's tracks are not at hand.
    pub slopes: Vec<(Duration, Option<f64>)>,
    /// recovery_time: spikes the target never recovered from. They count as
    /// longer than any value (see `Agg::of`).
    pub never_recovered: u64,
}

impl Stats {
    pub fn new(kind: MetricKind, unit: Unit, slot: &Slot, elapsed: Duration) -> Self {
        let mut s = Stats {
            kind,
            unit,
            count: 0,
            total: 0,
            rate: 0.0,
            value: 0.0,
            min: 0.0,
            max: 0.0,
            avg: 0.0,
            hist: None,
            slopes: Vec::new(),
            never_recovered: 0,
        };
        let secs = elapsed.as_secs_f64();
        match slot {
            Slot::Empty => {}
            Slot::Counter(n) => {
                s.count = *n;
                s.rate = if secs > 0.0 { *n as f64 / secs } else { 0.0 };
            }
            Slot::Rate { hits, total } => {
                s.count = *hits;
                s.total = *total;
                s.rate = if *total > 0 {
                    *hits as f64 / *total as f64
                } else {
                    0.0
                };
            }
            Slot::Gauge { last, min, max } => {
                s.value = *last;
                s.min = *min;
                s.max = *max;
            }
            Slot::Trend(h) => {
                s.count = h.len();
                if !h.is_empty() {
                    s.min = s.scale(h.min() as f64);
                    s.max = s.scale(h.max() as f64);
                    s.avg = s.scale(h.mean());
                }
                s.rate = if secs > 0.0 {
                    h.len() as f64 / secs
                } else {
                    0.0
                };
                s.hist = Some((**h).clone());
            }
        }
        s
    }

    /// Time values are kept in µs and shown in ms, as k6 does; plain trend
    /// values (custom metrics) are kept in millionths.
    fn scale(&self, v: f64) -> f64 {
        v / volley_protocols::metrics::trend_scale(self.unit)
    }

    /// The p-th percentile (0..=100) in display units.
    pub fn quantile(&self, p: f64) -> f64 {
        match &self.hist {
            Some(h) if !h.is_empty() => self.scale(h.value_at_quantile(p / 100.0) as f64),
            _ => 0.0,
        }
    }
}
