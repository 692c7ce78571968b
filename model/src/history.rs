//! Bounded time series: the run's history in buckets of one or more seconds.
//!
//! A bucket starts one second wide. When the history holds more buckets than
//! its cap, or more points than its budget, the width doubles and adjacent
//! buckets merge in place, so memory depends on the number of series, not on
//! the length of the run. Merging is exact for what adds up (counts, rate
//! hits and totals, trend counts, minima, maxima and means) and for a gauge's
//! last value, minimum and maximum. Percentiles do not merge: in a bucket
//! wider than a second, a trend's p50..p99 are the highest of its seconds'
//! (an upper bound of the bucket's own percentile, as a quantile of a
//! mixture never exceeds the largest quantile of its parts).

use crate::point::Point;

/// Points of one bucket, by series (or rollup) index, ascending.
pub type Points = Vec<(u32, Point)>;

/// Per-series history: at most this many buckets per series...
pub const SERIES_BUCKETS: usize = 1024;
/// ...and at most this many points over all series (about 20 MB): a run
/// with 3,500 series keeps 37 to 75 buckets of each, one with 7,500 series
/// 17 to 35.
pub const SERIES_POINTS: usize = 1 << 18;
/// Per-scenario rollups: per second for the first 8,192 s (2 h 16 min).
pub const ROLLUP_BUCKETS: usize = 8192;
pub const ROLLUP_POINTS: usize = 1 << 19;
/// A points budget never coarsens the history below this many buckets.
pub const MIN_BUCKETS: usize = 4;

#[derive(Clone, Debug, PartialEq)]
pub struct Bucket {
    /// First second the bucket covers (a multiple of the width).
    pub t: u64,
    pub points: Points,
}

#[derive(Clone, Debug)]
pub struct History {
    /// Seconds per bucket: 1, 2, 4, ...
    width: u64,
    cap: usize,
    budget: usize,
    /// Points held in all buckets.
    points: usize,
    buckets: Vec<Bucket>,
    /// Emptied point vectors, reused for new buckets: once the history is
    /// full its memory is allocated once, not churned.
    spare: Vec<Points>,
}

impl History {
    /// At most `cap` buckets and (down to [`MIN_BUCKETS`]) `budget` points.
    pub fn new(cap: usize, budget: usize) -> Self {
        Self {
            width: 1,
            cap: cap.max(MIN_BUCKETS),
            budget,
            points: 0,
            buckets: Vec::new(),
            spare: Vec::new(),
        }
    }

    pub fn width(&self) -> u64 {
        self.width
    }

    pub fn buckets(&self) -> &[Bucket] {
        &self.buckets
    }

    /// Points held over all buckets.
    pub fn len(&self) -> usize {
        self.points
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Points the history has room for, spare vectors included: what it
    /// takes in memory (about 80 bytes a point).
    pub fn capacity(&self) -> usize {
        let held: usize = self.buckets.iter().map(|b| b.points.capacity()).sum();
        held + self.spare.iter().map(Vec::capacity).sum::<usize>()
    }

    /// Add second `k`'s points (ascending by index; seconds in order).
    pub fn push(&mut self, k: u64, points: &[(u32, Point)]) {
        let t = k - k % self.width;
        match self.buckets.last_mut() {
            // A second never comes back after a later one; if one did, it
            // still counts (in the latest bucket).
            Some(b) if b.t >= t => {
                self.points -= b.points.len();
                fold(&mut b.points, points, &mut self.spare);
                self.points += b.points.len();
            }
            _ => {
                let mut v = self.spare.pop().unwrap_or_default();
                // Exactly: buckets are many, and doubling would leave each
                // with room for twice its points.
                v.reserve_exact(points.len());
                v.extend_from_slice(points);
                self.buckets.push(Bucket { t, points: v });
                self.points += points.len();
            }
        }
        while self.buckets.len() > self.cap
            || (self.points > self.budget && self.buckets.len() > MIN_BUCKETS)
        {
            self.coarsen();
        }
    }

    /// Double the width: each pair of adjacent buckets becomes one.
    fn coarsen(&mut self) {
        self.width = self.width.saturating_mul(2);
        let w = self.width;
        let mut kept = 0;
        for i in 0..self.buckets.len() {
            let t = self.buckets[i].t - self.buckets[i].t % w;
            if kept > 0 && self.buckets[kept - 1].t == t {
                let mut later = std::mem::take(&mut self.buckets[i].points);
                fold(&mut self.buckets[kept - 1].points, &later, &mut self.spare);
                later.clear();
                self.spare.push(later);
            } else {
                self.buckets.swap(kept, i);
                self.buckets[kept].t = t;
                kept += 1;
            }
        }
        self.buckets.truncate(kept);
        self.points = self.buckets.iter().map(|b| b.points.len()).sum();
    }
}

/// Fold the later `from` into the earlier `into` (both ascending by index),
/// building in a vector from `spare` (and leaving the old one there) when
/// `from` has series `into` lacks.
pub fn fold(into: &mut Points, from: &[(u32, Point)], spare: &mut Vec<Points>) {
    debug_assert!(into.is_sorted_by_key(|p| p.0) && from.is_sorted_by_key(|p| p.0));
    // Mostly the same series second after second: update in place.
    let mut i = 0;
    let mut new = 0;
    for (id, _) in from {
        while i < into.len() && into[i].0 < *id {
            i += 1;
        }
        if i == into.len() || into[i].0 != *id {
            new += 1;
        }
    }
    if new == 0 {
        let mut i = 0;
        for (id, p) in from {
            while into[i].0 < *id {
                i += 1;
            }
            into[i].1 = into[i].1.then(p);
        }
        return;
    }
    let mut out = spare.pop().unwrap_or_default();
    out.reserve_exact(into.len() + new);
    let (mut a, mut b) = (into.iter().peekable(), from.iter().peekable());
    loop {
        match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x.0 == y.0 => {
                out.push((x.0, x.1.then(&y.1)));
                a.next();
                b.next();
            }
            (Some(x), Some(y)) if x.0 < y.0 => {
                out.push(**x);
                a.next();
            }
            (Some(_), Some(y)) | (None, Some(y)) => {
                out.push(**y);
                b.next();
            }
            (Some(x), None) => {
                out.push(**x);
                a.next();
            }
            (None, None) => break,
        }
    }
    let mut old = std::mem::replace(into, out);
    old.clear();
    spare.push(old);
}

/// Re-bucket (seconds-from-start, points) records of width `from` into
/// buckets of width `to`, shifted by `shift` seconds: what a merge of parts
/// with different widths (or start times) does. Points of the same bucket
/// fold in time order.
pub fn rebucket<'a>(
    records: impl IntoIterator<Item = (u64, &'a [(u32, Point)])>,
    shift: u64,
    to: u64,
) -> Vec<Bucket> {
    let to = to.max(1);
    let mut out: Vec<Bucket> = Vec::new();
    let mut spare = Vec::new();
    for (t, points) in records {
        let t = t.saturating_add(shift);
        let t = t - t % to;
        let mut sorted = points.to_vec();
        sorted.sort_by_key(|p| p.0);
        match out.last_mut() {
            Some(b) if b.t == t => fold(&mut b.points, &sorted, &mut spare),
            _ => out.push(Bucket { t, points: sorted }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trend(count: u64, min: u64, max: u64, mean: f64, p95: u64) -> Point {
        Point::Trend {
            count,
            min,
            max,
            mean,
            p50: min,
            p90: p95,
            p95,
            p99: max,
        }
    }

    /// Ten series: counters, rates, gauges and trends, every second.
    fn second(k: u64) -> Points {
        (0..10u32)
            .map(|id| {
                let p = match id % 4 {
                    0 => Point::Counter { count: k + 1 },
                    1 => Point::Rate {
                        hits: k % 2,
                        total: 1,
                    },
                    2 => Point::Gauge {
                        value: k as f64,
                        min: k as f64,
                        max: k as f64,
                    },
                    _ => trend(2, 10 + k, 20 + k, 15.0 + k as f64, 19 + k),
                };
                (id, p)
            })
            .collect()
    }

    #[test]
    fn totals_stay_exact_and_buckets_stay_under_the_cap() {
        let mut h = History::new(16, usize::MAX);
        let n = 1000u64;
        for k in 0..n {
            h.push(k, &second(k));
            assert!(h.buckets().len() <= 16, "{k}: {}", h.buckets().len());
        }
        // 1000 s in at most 16 buckets: 64 s each.
        assert_eq!(h.width(), 64);
        assert_eq!(h.buckets().len(), 16);
        assert!(h.buckets().iter().all(|b| b.t % 64 == 0));
        assert!(h.buckets().windows(2).all(|w| w[0].t < w[1].t));
        let all = |id: u32| {
            h.buckets()
                .iter()
                .filter_map(move |b| b.points.iter().find(|p| p.0 == id).map(|p| p.1))
        };
        let counted: u64 = all(0)
            .map(|p| match p {
                Point::Counter { count } => count,
                _ => panic!("{p:?}"),
            })
            .sum();
        assert_eq!(counted, (1..=n).sum::<u64>());
        let (hits, total) = all(1).fold((0, 0), |acc, p| match p {
            Point::Rate { hits, total } => (acc.0 + hits, acc.1 + total),
            _ => panic!("{p:?}"),
        });
        assert_eq!((hits, total), (n / 2, n));
        // Gauges: the last value of each bucket, its lowest and highest.
        let Some(Point::Gauge { value, min, max }) = all(2).next_back() else {
            panic!()
        };
        assert_eq!((value, min, max), (999.0, 960.0, 999.0));
        // Trends: exact count, min, max, mean; p95 the highest second's.
        let Some(Point::Trend {
            count,
            min,
            max,
            mean,
            p95,
            ..
        }) = all(3).next()
        else {
            panic!()
        };
        assert_eq!((count, min, max, p95), (128, 10, 83, 82));
        assert!((mean - (15.0 + 31.5)).abs() < 1e-9, "{mean}");
        let trend_count: u64 = all(3)
            .map(|p| match p {
                Point::Trend { count, .. } => count,
                _ => 0,
            })
            .sum();
        assert_eq!(trend_count, 2 * n);
    }

    #[test]
    fn memory_is_allocated_once_then_reused() {
        let mut h = History::new(16, usize::MAX);
        for k in 0..20_000u64 {
            h.push(k, &second(k));
            // 16 buckets of 10 points, and the one that makes it coarsen.
            assert!(h.capacity() <= 17 * 10, "{k}: {}", h.capacity());
        }
        assert_eq!(h.width(), 2048);
    }

    #[test]
    fn a_points_budget_coarsens_earlier_but_not_below_the_floor() {
        let mut h = History::new(1024, 200);
        for k in 0..100 {
            h.push(k, &second(k));
            assert!(h.len() <= 200 || h.buckets().len() <= MIN_BUCKETS);
        }
        assert_eq!(h.len(), h.buckets().len() * 10);
        assert!(h.buckets().len() <= 20);
        // A budget smaller than one bucket stops at the floor.
        let mut tiny = History::new(1024, 1);
        for k in 0..100 {
            tiny.push(k, &second(k));
        }
        assert!(tiny.buckets().len() <= MIN_BUCKETS);
        assert!(tiny.buckets().len() >= MIN_BUCKETS / 2);
    }

    #[test]
    fn series_that_come_and_go_are_kept() {
        let mut h = History::new(4, usize::MAX);
        for k in 0..40u64 {
            // Series k % 7 only, plus series 100 every third second.
            let mut pts = vec![(k as u32 % 7, Point::Counter { count: 1 })];
            if k % 3 == 0 {
                pts.push((100, Point::Counter { count: 2 }));
            }
            h.push(k, &pts);
        }
        let mut per_id = std::collections::BTreeMap::new();
        for b in h.buckets() {
            assert!(b.points.is_sorted_by_key(|p| p.0));
            for (id, p) in &b.points {
                let Point::Counter { count } = p else {
                    panic!()
                };
                *per_id.entry(*id).or_insert(0) += count;
            }
        }
        assert_eq!(per_id[&100], 2 * 14);
        assert_eq!((0..7).map(|i| per_id[&i]).sum::<u64>(), 40);
    }

    #[test]
    fn rebucketing_keeps_counts() {
        let recs: Vec<(u64, Points)> = (0..10).map(|k| (k * 2, second(k))).collect();
        let out = rebucket(recs.iter().map(|(t, p)| (*t, p.as_slice())), 3, 8);
        assert_eq!(out.iter().map(|b| b.t).collect::<Vec<_>>(), [0, 8, 16]);
        let counted: u64 = out
            .iter()
            .flat_map(|b| &b.points)
            .filter(|p| p.0 == 0)
            .map(|p| match p.1 {
                Point::Counter { count } => count,
                _ => 0,
            })
            .sum();
        assert_eq!(counted, (1..=10).sum::<u64>());
    }
}
