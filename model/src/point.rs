//! One series over one interval (a second, or a longer bucket of a long
//! run's history), reduced to what charts and time-series outputs show.

use serde::{Deserialize, Serialize};
use volley_protocols::metrics::Slot;

/// One series in one interval, reduced to what charts and time-series outputs show.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Point {
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
    /// Time values in microseconds.
    Trend {
        count: u64,
        min: u64,
        max: u64,
        mean: f64,
        p50: u64,
        p90: u64,
        p95: u64,
        p99: u64,
    },
}

impl Point {
    pub fn of(slot: &Slot) -> Option<Point> {
        Some(match slot {
            Slot::Empty => return None,
            Slot::Counter(n) => Point::Counter { count: *n },
            Slot::Rate { hits, total } => Point::Rate {
                hits: *hits,
                total: *total,
            },
            Slot::Gauge { last, min, max } => Point::Gauge {
                value: *last,
                min: *min,
                max: *max,
            },
            Slot::Trend(h) => Point::Trend {
                count: h.len(),
                min: h.min(),
                max: h.max(),
                mean: h.mean(),
                p50: h.value_at_quantile(0.5),
                p90: h.value_at_quantile(0.9),
                p95: h.value_at_quantile(0.95),
                p99: h.value_at_quantile(0.99),
            },
        })
    }

    /// This point followed by `later` of the same series, as one point of
    /// the longer span. Percentiles become the higher of the two: an upper
    /// bound, not the span's percentile (see [`crate::history`]).
    pub fn then(&self, later: &Point) -> Point {
        match (*self, *later) {
            (Point::Counter { count: a }, Point::Counter { count: b }) => Point::Counter {
                count: a.saturating_add(b),
            },
            (
                Point::Rate {
                    hits: h1,
                    total: t1,
                },
                Point::Rate {
                    hits: h2,
                    total: t2,
                },
            ) => Point::Rate {
                hits: h1.saturating_add(h2),
                total: t1.saturating_add(t2),
            },
            (
                Point::Gauge {
                    min: lo1, max: hi1, ..
                },
                Point::Gauge {
                    value,
                    min: lo2,
                    max: hi2,
                },
            ) => Point::Gauge {
                value,
                min: lo1.min(lo2),
                max: hi1.max(hi2),
            },
            (
                Point::Trend {
                    count: c1,
                    min: mn1,
                    max: mx1,
                    mean: m1,
                    p50: a50,
                    p90: a90,
                    p95: a95,
                    p99: a99,
                },
                Point::Trend {
                    count: c2,
                    min: mn2,
                    max: mx2,
                    mean: m2,
                    p50: b50,
                    p90: b90,
                    p95: b95,
                    p99: b99,
                },
            ) => {
                let count = c1.saturating_add(c2);
                let empty = |c: u64| c == 0;
                Point::Trend {
                    count,
                    // An empty side has no minimum (its min and max are 0).
                    min: match (empty(c1), empty(c2)) {
                        (true, _) => mn2,
                        (_, true) => mn1,
                        _ => mn1.min(mn2),
                    },
                    max: mx1.max(mx2),
                    mean: if count == 0 {
                        0.0
                    } else {
                        (m1 * c1 as f64 + m2 * c2 as f64) / count as f64
                    },
                    p50: a50.max(b50),
                    p90: a90.max(b90),
                    p95: a95.max(b95),
                    p99: a99.max(b99),
                }
            }
            // Kinds never differ within one series; keep the later.
            (_, b) => b,
        }
    }
}
