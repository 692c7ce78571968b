//! Sliding windows over the run's cumulative totals: the last N seconds of a
//! metric are its totals now minus its totals N seconds ago. Histograms
//! subtract exactly, so a window's p95 is the p95 of exactly its samples.

use std::collections::VecDeque;
use volley_protocols::metrics::Slot;

/// `now - before` for cumulative slots of one series set.
pub fn minus(now: &Slot, before: &Slot) -> Slot {
    match (now, before) {
        (Slot::Counter(a), Slot::Counter(b)) => Slot::Counter(a.saturating_sub(*b)),
        (
            Slot::Rate { hits, total },
            Slot::Rate {
                hits: h0,
                total: t0,
            },
        ) => Slot::Rate {
            hits: hits.saturating_sub(*h0),
            total: total.saturating_sub(*t0),
        },
        (Slot::Trend(a), Slot::Trend(b)) => {
            let mut h = (**a).clone();
            match h.subtract(&**b) {
                Ok(()) if h.is_empty() => Slot::Empty,
                Ok(()) => Slot::Trend(Box::new(h)),
                // Cannot happen for totals that only grow; keep what is known.
                Err(_) => now.clone(),
            }
        }
        // Gauges are levels, not sums: the window's is the latest.
        _ => now.clone(),
    }
}

/// Cumulative totals of one signal at the end of recent intervals.
pub struct Window {
    keep: u64,
    cums: VecDeque<(u64, Slot)>,
}

impl Window {
    /// Enough history for windows of up to `keep` seconds.
    pub fn new(keep: u64) -> Self {
        Self {
            keep: keep.max(1),
            cums: VecDeque::new(),
        }
    }

    /// The totals once interval `k` completed.
    pub fn push(&mut self, k: u64, cum: Slot) {
        self.cums.push_back((k, cum));
        // Keep the newest entry at or before k - keep: the base of the longest window.
        while self.cums.len() > 1 && self.cums[1].0 + self.keep <= k {
            self.cums.pop_front();
        }
    }

    /// What the last `secs` intervals recorded, and how many seconds that
    /// covers (fewer at the start of the run).
    pub fn last(&self, secs: u64) -> (Slot, u64) {
        let Some((k, now)) = self.cums.back() else {
            return (Slot::Empty, 0);
        };
        let base = k.checked_sub(secs);
        let before = base.and_then(|b| self.cums.iter().rev().find(|(i, _)| *i <= b));
        match before {
            Some((i, slot)) => (minus(now, slot), k - i),
            None => (now.clone(), k + 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use volley_protocols::metrics::new_histogram;

    fn trend(values: &[u64]) -> Slot {
        let mut h = new_histogram();
        for v in values {
            h.record(*v).unwrap();
        }
        Slot::Trend(Box::new(h))
    }

    #[test]
    fn windows_subtract_exactly() {
        let mut w = Window::new(2);
        let mut all = Vec::new();
        for k in 0..5u64 {
            all.push(100 * (k + 1));
            w.push(k, trend(&all));
        }
        // The last two seconds hold exactly the samples of k = 3 and 4.
        let (slot, secs) = w.last(2);
        assert_eq!(secs, 2);
        let Slot::Trend(h) = slot else { panic!() };
        assert_eq!(h.len(), 2);
        assert_eq!(h.min(), 400);
        let (one, secs) = w.last(1);
        assert_eq!(secs, 1);
        assert!(matches!(one, Slot::Trend(h) if h.len() == 1 && h.max() == 500));
        // Rates and counters subtract; the start of the run has no base.
        let mut r = Window::new(3);
        r.push(0, Slot::Rate { hits: 1, total: 10 });
        let (s, secs) = r.last(3);
        assert!(matches!(s, Slot::Rate { hits: 1, total: 10 }));
        assert_eq!(secs, 1);
        r.push(1, Slot::Rate { hits: 5, total: 20 });
        r.push(2, Slot::Rate { hits: 5, total: 30 });
        assert!(matches!(r.last(1).0, Slot::Rate { hits: 0, total: 10 }));
        assert!(matches!(r.last(2).0, Slot::Rate { hits: 4, total: 20 }));
        assert!(matches!(
            minus(&Slot::Counter(9), &Slot::Counter(4)),
            Slot::Counter(5)
        ));
    }
}
