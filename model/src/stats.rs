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
    /// the runtime's gauge tracks); empty when they are not at hand.
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
                    s.min = s.shown(h, h.min());
                    s.max = s.shown(h, h.max());
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

    /// A histogram value in display units: time as HdrHistogram reports
    /// it; plain values (custom trends, kept in millionths) to the 3
    /// significant digits the histogram holds, so a token count of 10
    /// reads 10, not 9.99.
    fn shown(&self, h: &Histogram<u64>, v: u64) -> f64 {
        if self.unit == Unit::Time {
            return self.scale(v as f64);
        }
        let x = self.scale(h.median_equivalent(v) as f64);
        if x == 0.0 {
            return 0.0;
        }
        let step = 10f64.powi(x.abs().log10().floor() as i32 - 2);
        (x / step).round() * step
    }

    /// The p-th percentile (0..=100) in display units.
    pub fn quantile(&self, p: f64) -> f64 {
        match &self.hist {
            Some(h) if !h.is_empty() => self.shown(h, h.value_at_quantile(p / 100.0)),
            _ => 0.0,
        }
    }
}
