//! Gauges fitted second by second while the run goes: what monitors report
//! (last, lowest, highest, slope) and what `slope` thresholds judge, exact
//! over the whole run in constant memory, whatever the history keeps.

use volley_model::point::Point;
use volley_model::slope::Fit;
use volley_protocols::metrics::{MetricId, Registry, SeriesId, Tags};

#[derive(Clone, Debug)]
pub struct GaugeTrack {
    pub metric: String,
    pub filter: Tags,
    /// Seconds from the start left out of the slope (warm-up).
    pub after: f64,
    /// Seconds with a value.
    pub samples: u64,
    pub last: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Over (middle of the second, value) from `after` on.
    pub fit: Fit,
    metric_id: Option<MetricId>,
    /// Per series id: whether it feeds the track, once looked up.
    wanted: Vec<bool>,
    /// The series with exactly `filter`'s tags, once it exists: then it
    /// alone is the gauge (as `vus` is, beside `vus{scenario:a}`).
    exact: Option<SeriesId>,
}

impl GaugeTrack {
    pub fn new(metric: &str, filter: &Tags, after: f64) -> Self {
        Self {
            metric: metric.to_string(),
            filter: filter.clone(),
            after,
            samples: 0,
            last: None,
            min: None,
            max: None,
            fit: Fit::default(),
            metric_id: None,
            wanted: Vec::new(),
            exact: None,
        }
    }

    pub fn slope_per_hour(&self) -> Option<f64> {
        self.fit.per_hour()
    }

    /// Take second `k`'s points (ascending by series id).
    pub fn push(&mut self, k: u64, points: &[(SeriesId, Point)], registry: &Registry) {
        let Some(&(top, _)) = points.last() else {
            return;
        };
        if top as usize >= self.wanted.len() {
            self.look_up(registry);
        }
        let mut sum = None;
        let mut exact = None;
        for (id, p) in points {
            if let (true, Point::Gauge { value, .. }) =
                (self.wanted.get(*id as usize).copied().unwrap_or(false), p)
            {
                sum = Some(sum.unwrap_or(0.0) + value);
                if self.exact == Some(*id) {
                    exact = Some(*value);
                }
            }
        }
        let v = if self.exact.is_some() { exact } else { sum };
        let Some(v) = v else { return };
        self.samples += 1;
        self.last = Some(v);
        self.min = Some(self.min.map_or(v, |m| m.min(v)));
        self.max = Some(self.max.map_or(v, |m| m.max(v)));
        let t = k as f64 + 0.5;
        if t >= self.after {
            self.fit.push(t, v);
        }
    }

    /// New series appeared: see which of them feed the track.
    fn look_up(&mut self, registry: &Registry) {
        if self.metric_id.is_none() {
            self.metric_id = registry.metric_id(&self.metric);
        }
        let Some(m) = self.metric_id else { return };
        let all = registry.all_series();
        for (id, info) in all.iter().enumerate().skip(self.wanted.len()) {
            let hit = info.metric == m && info.tags.matches(&self.filter);
            if hit && info.tags == self.filter {
                self.exact = Some(id as SeriesId);
            }
            self.wanted.push(hit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use volley_protocols::metrics::{MetricKind, Unit};

    fn gauge(v: f64) -> Point {
        Point::Gauge {
            value: v,
            min: v,
            max: v,
        }
    }

    #[test]
    fn sums_matching_series_unless_one_has_exactly_the_filter() {
        let reg = Registry::new();
        let m = reg.metric("pg_connections", MetricKind::Gauge, Unit::Default);
        let a = reg.series(m, &Tags::new([("scenario", "db"), ("state", "active")]));
        let b = reg.series(m, &Tags::new([("scenario", "db"), ("state", "idle")]));
        let mut t = GaugeTrack::new("pg_connections", &Tags::new([("scenario", "db")]), 2.0);
        for k in 0..6u64 {
            t.push(k, &[(a, gauge(10.0 * k as f64)), (b, gauge(1.0))], &reg);
        }
        assert_eq!(t.samples, 6);
        assert_eq!((t.last, t.min, t.max), (Some(51.0), Some(1.0), Some(51.0)));
        // Seconds 2..5 only: 10 per second.
        assert!((t.fit.per_second().unwrap() - 10.0).abs() < 1e-9);

        let vus = reg.metric("vus", MetricKind::Gauge, Unit::Default);
        let all = reg.series(vus, &Tags::default());
        let one = reg.series(vus, &Tags::new([("scenario", "db")]));
        let mut t = GaugeTrack::new("vus", &Tags::default(), 0.0);
        t.push(0, &[(all, gauge(7.0)), (one, gauge(3.0))], &reg);
        assert_eq!(t.last, Some(7.0));
    }
}
