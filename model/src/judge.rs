//! The one judge: which series a question about `metric{filter}` reads,
//! what they add up to, and the numbers a threshold is compared with.
//!
//! Thresholds are judged twice in a run, with the same code: live, on the
//! aggregator's totals (abort_on_fail, the capacity watch's signals), and at
//! the end, on the summary's series (its verdicts, again after a merge). The
//! live side hands the runtime's series table, the end the summary's
//! records; both are a [`SeriesTable`].

use crate::stats::Stats;
use crate::summary::SeriesRecord;
use crate::threshold::ThresholdSet;
use std::time::Duration;
use volley_protocols::metrics::{MetricKind, Slot, Tags, Unit};

/// Series by metric name: each with its tags and values.
pub trait SeriesTable {
    /// Kind and unit of `metric`, when the table has it.
    fn def(&self, metric: &str) -> Option<(MetricKind, Unit)>;

    /// Calls `f` with the tags and values of every series of `metric` that
    /// holds a value.
    fn each(&self, metric: &str, f: &mut dyn FnMut(&Tags, &Slot));
}

/// A summary's series, or a run's as it is turned into one.
impl SeriesTable for [(SeriesRecord, Slot)] {
    fn def(&self, metric: &str) -> Option<(MetricKind, Unit)> {
        self.iter()
            .find(|(r, _)| r.metric == metric)
            .map(|(r, _)| (r.kind(), r.unit))
    }

    fn each(&self, metric: &str, f: &mut dyn FnMut(&Tags, &Slot)) {
        for (r, s) in self.iter().filter(|(r, _)| r.metric == metric) {
            f(&r.tags, s);
        }
    }
}

/// What the series of a metric matching a filter add up to.
#[derive(Clone, Debug)]
pub struct Total {
    pub kind: MetricKind,
    pub unit: Unit,
    pub slot: Slot,
    /// `recovery_time` observations of spikes never recovered from, counted
    /// apart (see [`merged_split`]); 0 from [`merged`].
    pub never_recovered: u64,
}

impl Total {
    /// The statistics of this total over a run of `elapsed`.
    pub fn stats(&self, elapsed: Duration) -> Stats {
        let mut s = Stats::new(self.kind, self.unit, &self.slot, elapsed);
        s.never_recovered = self.never_recovered;
        s
    }
}

/// Merge the series of `metric` whose tags include `filter`; None when none
/// does. Gauges do not add up across series, so a gauge with a series of
/// exactly these tags (`vus` beside `vus{scenario:a}`) is read from that
/// series alone.
pub fn merged<T: SeriesTable + ?Sized>(table: &T, metric: &str, filter: &Tags) -> Option<Total> {
    total(table, metric, filter, false)
}

/// Like [`merged`], but trend series tagged `recovered:false` (a spike the
/// target never recovered from: their value is only how long it was
/// watched) are counted apart instead of merged.
pub fn merged_split<T: SeriesTable + ?Sized>(
    table: &T,
    metric: &str,
    filter: &Tags,
) -> Option<Total> {
    total(table, metric, filter, true)
}

fn total<T: SeriesTable + ?Sized>(
    table: &T,
    metric: &str,
    filter: &Tags,
    split: bool,
) -> Option<Total> {
    let (kind, unit) = table.def(metric)?;
    // [setup] and [teardown] samples count only where the filter names a
    // group (`http_reqs{group:::setup}`): scenario numbers never hold them.
    let phases = filter.get("group").is_some();
    let counts = |tags: &Tags| tags.matches(filter) && (phases || !tags.is_phase());
    let (mut matched, mut exact, mut unfinished) = (false, false, false);
    table.each(metric, &mut |tags, _| {
        if counts(tags) {
            matched = true;
            exact |= tags == filter;
        }
        unfinished |= tags.get("recovered") == Some("false");
    });
    if !matched {
        return None;
    }
    let exact = exact && kind == MetricKind::Gauge;
    let split = split && unfinished && kind == MetricKind::Trend;
    let mut slot = Slot::Empty;
    let mut never_recovered = 0;
    table.each(metric, &mut |tags, s| {
        if !counts(tags) || (exact && tags != filter) {
            return;
        }
        match (split && tags.get("recovered") == Some("false"), s) {
            (true, Slot::Trend(h)) => never_recovered += h.len(),
            _ => slot.merge(s),
        }
    });
    Some(Total {
        kind,
        unit,
        slot,
        never_recovered,
    })
}

/// The numbers `set` is judged on: its metric and filter over a run of
/// `elapsed`. With no series matching, empty numbers of the metric's kind
/// (a counter's when the table does not have the metric): a count is then
/// 0, a trend has no data.
pub fn threshold_stats<T: SeriesTable + ?Sized>(
    table: &T,
    set: &ThresholdSet,
    elapsed: Duration,
) -> Stats {
    let total = merged_split(table, &set.metric, &set.filter).unwrap_or_else(|| Total {
        kind: table
            .def(&set.metric)
            .map_or(MetricKind::Counter, |(kind, _)| kind),
        unit: Unit::Default,
        slot: Slot::Empty,
        never_recovered: 0,
    });
    total.stats(elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::threshold;

    fn record(metric: &str, tags: &Tags, slot: Slot) -> (SeriesRecord, Slot) {
        let unit = match slot {
            Slot::Trend(_) => Unit::Time,
            _ => Unit::Default,
        };
        let r = SeriesRecord::from_slot(metric, unit, tags, &slot).expect("a value");
        (r, slot)
    }

    #[test]
    fn setup_and_teardown_count_only_where_a_group_is_named() {
        let sc = Tags::new([("scenario", "api")]);
        let setup = Tags::new([("group", "::setup")]);
        let teardown = Tags::new([("group", "::teardown")]);
        let table = [
            record("http_reqs", &sc, Slot::Counter(30)),
            record("http_reqs", &setup, Slot::Counter(1)),
            record("http_reqs", &teardown, Slot::Counter(2)),
        ];
        let count = |filter: &Tags| match merged(&table[..], "http_reqs", filter).map(|t| t.slot) {
            Some(Slot::Counter(n)) => n,
            other => panic!("{other:?}"),
        };
        assert_eq!(count(&Tags::default()), 30);
        assert_eq!(count(&sc), 30);
        assert_eq!(count(&setup), 1);
        assert_eq!(count(&teardown), 2);
        // Only phase samples: the scenarios' total has none.
        let only = [record("http_reqs", &setup, Slot::Counter(1))];
        assert!(merged(&only[..], "http_reqs", &Tags::default()).is_none());
    }

    fn gauge(v: f64) -> Slot {
        Slot::Gauge {
            last: v,
            min: v,
            max: v,
        }
    }

    #[test]
    fn gauges_are_read_from_the_exact_series_counters_add_up() {
        let a = Tags::new([("scenario", "a")]);
        let b = Tags::new([("scenario", "b")]);
        let series = [
            record("vus", &Tags::default(), gauge(7.0)),
            record("vus", &a, gauge(3.0)),
            record("vus", &b, gauge(4.0)),
            record("http_reqs", &a.with("status", "200"), Slot::Counter(5)),
            record("http_reqs", &a.with("status", "500"), Slot::Counter(2)),
            record("http_reqs", &b, Slot::Counter(1)),
        ];
        let t = &series[..];
        let v = merged(t, "vus", &Tags::default()).unwrap();
        assert!(matches!(v.slot, Slot::Gauge { last, .. } if last == 7.0));
        // No series with exactly {status:200}: the matching ones are summed.
        let reqs = merged(t, "http_reqs", &a).unwrap();
        assert!(matches!(reqs.slot, Slot::Counter(7)));
        assert!(merged(t, "http_reqs", &Tags::new([("scenario", "c")])).is_none());
        assert!(merged(t, "nope", &Tags::default()).is_none());
    }

    #[test]
    fn unrecovered_spikes_count_apart_only_when_judged() {
        let sc = Tags::new([("scenario", "a")]);
        let trend = |micros: u64| {
            let mut h = volley_protocols::metrics::new_histogram();
            h.record(micros).unwrap();
            Slot::Trend(Box::new(h))
        };
        let series = [
            record(
                "recovery_time",
                &sc.with("spike", "1").with("recovered", "true"),
                trend(2_000_000),
            ),
            record(
                "recovery_time",
                &sc.with("spike", "2").with("recovered", "false"),
                trend(9_000_000),
            ),
        ];
        let t = &series[..];
        let all = merged(t, "recovery_time", &sc).unwrap();
        assert!(matches!(&all.slot, Slot::Trend(h) if h.len() == 2));
        let judged = merged_split(t, "recovery_time", &sc).unwrap();
        assert!(matches!(&judged.slot, Slot::Trend(h) if h.len() == 1));
        assert_eq!(judged.never_recovered, 1);
        // A spike never recovered from fails any limit on the maximum.
        let set = threshold::parse_set(
            "recovery_time",
            0..0,
            &[(serde_json::Value::from("max<60s"), 0..0)],
        )
        .unwrap();
        let stats = threshold_stats(t, &set, Duration::from_secs(60));
        assert_eq!(set.items[0].eval(&stats).0, Some(false));
    }

    #[test]
    fn a_threshold_without_series_judges_empty_numbers_of_its_kind() {
        let series = [record(
            "http_req_duration",
            &Tags::new([("scenario", "a")]),
            Slot::Trend(Box::new(volley_protocols::metrics::new_histogram())),
        )];
        let t = &series[..];
        let set = |key: &str, expr: &str| {
            threshold::parse_set(key, 0..0, &[(serde_json::Value::from(expr), 0..0)]).unwrap()
        };
        // A trend with no samples has no data; a counter nobody wrote is 0.
        let p95 = set("http_req_duration{scenario:b}", "p(95)<200");
        let s = threshold_stats(t, &p95, Duration::from_secs(1));
        assert_eq!(s.kind, MetricKind::Trend);
        assert_eq!(p95.items[0].eval(&s).0, None);
        let count = set("http_reqs", "count>0");
        let s = threshold_stats(t, &count, Duration::from_secs(1));
        assert_eq!(s.kind, MetricKind::Counter);
        assert_eq!(count.items[0].eval(&s), (Some(false), Some(0.0)));
    }
}
