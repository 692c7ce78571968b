//! `volley merge PART...`: the summaries of the N segments of a distributed
//! run, merged into the summary of one run of the plan.
//!
//! What merges exactly: counters add, rates add hits and totals, latency
//! histograms (HdrHistogram, carried in every summary) add bucket by bucket,
//! so every percentile of the merged run is the percentile of all samples.
//! Rates per second are recomputed over the union of the parts' time windows.
//! The plan's thresholds, carried in each part, are judged on the merged data.
//!
//! What merges approximately: the per-second points (`intervals`,
//! `rollup_intervals`) hold percentiles, not histograms. Counts, means,
//! minima and maxima still merge exactly; a merged per-second percentile is
//! the highest of the parts' (a quantile of a mixture never exceeds the
//! largest quantile of its parts, so it is an upper bound, never hiding a
//! slow part). `MergeInfo` says so. Parts whose long histories were
//! coarsened to different bucket widths merge at the widest.
//!
//! Gauges: `vus` and `vus_max` count each part's own VUs, so they add up
//! (second by second; the total's min and max come from those sums). Other
//! gauges observe something shared (a database's connections, a target's
//! memory), so they do not add: the merged value is the latest part's, min
//! and max the extremes over the parts.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;
use volley_model::derive::derive;
use volley_model::metrics::ADDITIVE_GAUGES;
use volley_model::point::Point;
use volley_model::segment::Segment;
use volley_model::summary::{
    INTERVAL_PERCENTILES, IntervalRecord, MergeInfo, PartInfo, RunInfo, SeriesRecord, Summary,
};
use volley_model::threshold::{self, ThresholdSet};
use volley_protocols::metrics::{Slot, Tags};

/// One part: a summary export and the file it was read from.
pub struct Part {
    pub file: PathBuf,
    pub summary: Summary,
}

pub struct Options {
    /// Merge even when segments are missing (and say which).
    pub allow_partial: bool,
}

pub struct Merged {
    pub summary: Summary,
    pub series: Vec<(SeriesRecord, Slot)>,
    pub thresholds_ok: bool,
}

/// Why the parts do not merge.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("nothing to merge: give the part summaries, e.g. volley merge part-*.json")]
    Nothing,
    #[error(
        "{} comes from another plan than {}: {} (digest {}) vs {} (digest {}); merge only the parts of one distributed run",
        .0.part,
        .0.first,
        .0.plan,
        .0.digest,
        .0.first_plan,
        .0.first_digest
    )]
    OtherPlan(Box<OtherPlan>),
    #[error(
        "{part} and {first} carry different thresholds although their plan is the same (different ${{ENV}} values?); run every part with the same settings"
    )]
    Thresholds { part: String, first: String },
    #[error(
        "{part} splits the plan in {of} segments but {first} in {n}: run every part with the same --segment I/{n}"
    )]
    Split {
        part: String,
        of: u64,
        first: String,
        n: u64,
    },
    #[error("segment {s}/{n} appears twice: in {other} and in {part}; give each segment once")]
    Twice {
        s: u64,
        n: u64,
        other: String,
        part: String,
    },
    #[error(
        "{list} missing: the parts cover {covered} of {n}; give every part, or pass --allow-partial to merge what is there (the result then covers only part of the plan)"
    )]
    Missing {
        list: String,
        covered: usize,
        n: u64,
    },
    #[error(
        "{part}: segment {segment:?} is not I/N; was this file written by `volley run --summary-export`?"
    )]
    Segment { part: String, segment: String },
    #[error("threshold {key:?}: {e}")]
    Threshold {
        key: String,
        e: volley_protocols::ConfigError,
    },
    #[error(
        "{part}: series {metric}{tags}: {e}; the file is damaged, write it again with volley run --summary-export"
    )]
    Series {
        part: String,
        metric: String,
        tags: Tags,
        e: volley_protocols::metrics::HistogramError,
    },
    #[error(
        "{part}: {metric} is a {here:?} here but a {there:?} in another part; were the parts written by different volley versions?"
    )]
    Kind {
        part: String,
        metric: String,
        here: volley_protocols::metrics::MetricKind,
        there: volley_protocols::metrics::MetricKind,
    },
}

/// Two parts of different plans: the files and their plans.
#[derive(Debug)]
pub struct OtherPlan {
    part: String,
    first: String,
    plan: String,
    digest: String,
    first_plan: String,
    first_digest: String,
}

/// The segments a part covers: its own, or those of an earlier merge.
fn coverage(p: &Part) -> Result<(Vec<u64>, u64), MergeError> {
    if let Some(m) = &p.summary.volley.merge {
        return Ok((m.segments.clone(), m.of));
    }
    let seg = Segment::parse(&p.summary.volley.segment).map_err(|_| MergeError::Segment {
        part: name(p),
        segment: p.summary.volley.segment.clone(),
    })?;
    Ok((vec![seg.index + 1], seg.count))
}

fn name(p: &Part) -> String {
    p.file.display().to_string()
}

/// Check the parts belong together; returns the covered and missing segments and N.
fn check(parts: &[Part], opts: &Options) -> Result<(Vec<u64>, Vec<u64>, u64), MergeError> {
    let first = parts.first().ok_or(MergeError::Nothing)?;
    let info = &first.summary.volley;
    for p in &parts[1..] {
        let v = &p.summary.volley;
        if v.plan_digest != info.plan_digest {
            return Err(MergeError::OtherPlan(Box::new(OtherPlan {
                part: name(p),
                first: name(first),
                plan: v.plan.clone(),
                digest: v.plan_digest.clone(),
                first_plan: info.plan.clone(),
                first_digest: info.plan_digest.clone(),
            })));
        }
        if !same_thresholds(v, info) {
            return Err(MergeError::Thresholds {
                part: name(p),
                first: name(first),
            });
        }
    }
    let (_, n) = coverage(first)?;
    let mut owner: BTreeMap<u64, String> = BTreeMap::new();
    for p in parts {
        let (segs, of) = coverage(p)?;
        if of != n {
            return Err(MergeError::Split {
                part: name(p),
                of,
                first: name(first),
                n,
            });
        }
        for s in segs {
            if let Some(other) = owner.insert(s, name(p)) {
                return Err(MergeError::Twice {
                    s,
                    n,
                    other,
                    part: name(p),
                });
            }
        }
    }
    let covered: Vec<u64> = owner.keys().copied().collect();
    let missing: Vec<u64> = (1..=n).filter(|s| !owner.contains_key(s)).collect();
    if !missing.is_empty() && !opts.allow_partial {
        return Err(MergeError::Missing {
            list: segment_list("segment", &missing, n),
            covered: covered.len(),
            n,
        });
    }
    Ok((covered, missing, n))
}

fn same_thresholds(a: &RunInfo, b: &RunInfo) -> bool {
    a.thresholds.len() == b.thresholds.len()
        && a.thresholds
            .iter()
            .zip(&b.thresholds)
            .all(|(x, y)| x.key == y.key && x.expressions == y.expressions)
}

/// "segment 2/3", "segments 1/3, 3/3".
pub fn segment_list(word: &str, segs: &[u64], n: u64) -> String {
    let list: Vec<String> = segs.iter().map(|s| format!("{s}/{n}")).collect();
    format!(
        "{word}{} {}",
        if segs.len() == 1 { "" } else { "s" },
        list.join(", ")
    )
}

/// The plan's thresholds, parsed back from the sources a summary carries.
pub fn thresholds_of(info: &RunInfo) -> Result<Vec<ThresholdSet>, MergeError> {
    info.thresholds
        .iter()
        .map(|t| {
            let items: Vec<(serde_json::Value, std::ops::Range<usize>)> = t
                .expressions
                .iter()
                .map(|e| (serde_json::Value::from(e.as_str()), 0..0))
                .collect();
            let mut set =
                threshold::parse_set(&t.key, 0..0, &items).map_err(|e| MergeError::Threshold {
                    key: t.key.clone(),
                    e,
                })?;
            for item in &mut set.items {
                item.allow_empty = t.allow_empty.contains(&item.source);
            }
            Ok(set)
        })
        .collect()
}

/// Length of the union of [start, end) windows, in ms.
fn union_ms(mut windows: Vec<(u64, u64)>) -> u64 {
    windows.sort();
    let mut total = 0;
    let mut cur: Option<(u64, u64)> = None;
    for (a, b) in windows {
        match cur {
            Some((ca, cb)) if a <= cb => cur = Some((ca, cb.max(b))),
            Some((ca, cb)) => {
                total += cb - ca;
                cur = Some((a, b));
            }
            None => cur = Some((a, b)),
        }
    }
    if let Some((a, b)) = cur {
        total += b - a;
    }
    total
}

fn end_ms(v: &RunInfo) -> u64 {
    v.started_unix_ms
        .saturating_add((v.duration_s.max(0.0) * 1000.0).round() as u64)
}

fn additive(metric: &str) -> bool {
    ADDITIVE_GAUGES.contains(&metric)
}

/// One series across the parts: (record of the first part, merged slot).
struct Acc {
    record: SeriesRecord,
    slot: Slot,
    /// Gauges: end of the part whose value is kept.
    latest_end: u64,
}

pub fn merge(parts: &[Part], opts: &Options) -> Result<Merged, MergeError> {
    let (covered, missing, n) = check(parts, opts)?;
    let first = &parts[0].summary.volley;
    let thresholds = thresholds_of(first)?;

    // Totals: series by (metric, tags), in order of first appearance.
    let mut index: HashMap<(String, Tags), usize> = HashMap::new();
    let mut accs: Vec<Acc> = Vec::new();
    for p in parts {
        let end = end_ms(&p.summary.volley);
        for r in &p.summary.series {
            let slot = r.to_slot().map_err(|e| MergeError::Series {
                part: name(p),
                metric: r.metric.clone(),
                tags: r.tags.clone(),
                e,
            })?;
            let key = (r.metric.clone(), r.tags.clone());
            let i = match index.get(&key) {
                Some(i) => *i,
                None => {
                    index.insert(key, accs.len());
                    accs.push(Acc {
                        record: r.clone(),
                        slot: Slot::Empty,
                        latest_end: 0,
                    });
                    accs.len() - 1
                }
            };
            let acc = &mut accs[i];
            if acc.record.kind() != r.kind() {
                return Err(MergeError::Kind {
                    part: name(p),
                    metric: r.metric.clone(),
                    here: r.kind(),
                    there: acc.record.kind(),
                });
            }
            match (&mut acc.slot, &slot) {
                (
                    Slot::Gauge { last, min, max },
                    Slot::Gauge {
                        last: l,
                        min: lo,
                        max: hi,
                    },
                ) => {
                    if additive(&r.metric) {
                        *last += l;
                        *min += lo;
                        *max += hi;
                    } else {
                        if end >= acc.latest_end {
                            *last = *l;
                        }
                        *min = min.min(*lo);
                        *max = max.max(*hi);
                    }
                }
                (s, o) => s.merge(o),
            }
            if matches!(slot, Slot::Gauge { .. }) {
                acc.latest_end = acc.latest_end.max(end);
            }
        }
    }

    // Time: parts are aligned by whole seconds since the earliest start.
    let t0 = parts
        .iter()
        .map(|p| p.summary.volley.started_unix_ms)
        .min()
        .unwrap_or(0);
    let t_last = parts
        .iter()
        .map(|p| p.summary.volley.started_unix_ms)
        .max()
        .unwrap_or(0);
    let windows: Vec<(u64, u64)> = parts
        .iter()
        .map(|p| (p.summary.volley.started_unix_ms, end_ms(&p.summary.volley)))
        .collect();
    let elapsed = Duration::from_millis(union_ms(windows));

    let merged = merge_intervals(parts, t0);
    let (interval_series, intervals) = (merged.series, merged.intervals);

    // Additive gauges' totals, bucket by bucket from the merged points.
    for acc in accs.iter_mut() {
        if !additive(&acc.record.metric) {
            continue;
        }
        let Some(id) = interval_series
            .iter()
            .position(|(m, t)| *m == acc.record.metric && *t == acc.record.tags)
        else {
            continue;
        };
        // (last, lowest, highest) of each bucket; no point is no VU.
        let values: Vec<(f64, f64, f64)> = intervals
            .iter()
            .map(|iv| {
                iv.points
                    .iter()
                    .find(|(i, _)| *i == id)
                    .and_then(|(_, p)| match p {
                        Point::Gauge { value, min, max } => Some((*value, *min, *max)),
                        _ => None,
                    })
                    .unwrap_or((0.0, 0.0, 0.0))
            })
            .collect();
        if let Some(last) = values.last() {
            acc.slot = Slot::Gauge {
                last: last.0,
                min: values.iter().map(|v| v.1).fold(f64::INFINITY, f64::min),
                max: values.iter().map(|v| v.2).fold(f64::NEG_INFINITY, f64::max),
            };
        }
    }

    let series: Vec<(SeriesRecord, Slot)> = accs
        .into_iter()
        .filter_map(|a| {
            let r =
                SeriesRecord::from_slot(&a.record.metric, a.record.unit, &a.record.tags, &a.slot)?;
            Some((r, a.slot))
        })
        .collect();
    let trend_stats = volley_model::trend_stats::of_names(&first.summary_trend_stats);
    let (metrics, thresholds_ok) = derive(&series, &thresholds, elapsed, &trend_stats);

    let mut by_start: Vec<&Part> = parts.iter().collect();
    by_start.sort_by_key(|p| p.summary.volley.started_unix_ms);
    let earliest = &by_start[0].summary.volley;
    let aborted: Vec<String> = by_start
        .iter()
        .filter_map(|p| {
            let v = &p.summary.volley;
            v.aborted
                .as_ref()
                .map(|a| format!("segment {}: {a}", v.segment))
        })
        .collect();
    let info = RunInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        plan: first.plan.clone(),
        plan_digest: first.plan_digest.clone(),
        segment: if missing.is_empty() {
            "1/1".to_string()
        } else {
            let list: Vec<String> = covered.iter().map(u64::to_string).collect();
            format!("{}/{n}", list.join(","))
        },
        started: earliest.started.clone(),
        started_unix_ms: t0,
        duration_s: elapsed.as_secs_f64(),
        aborted: (!aborted.is_empty()).then(|| aborted.join("; ")),
        scenarios: first.scenarios.clone(),
        thresholds: first.thresholds.clone(),
        summary_trend_stats: first.summary_trend_stats.clone(),
        folded: folded_of(parts),
        drivers: drivers_of(parts),
        merge: Some(MergeInfo {
            segments: covered,
            of: n,
            missing,
            parts: by_start
                .iter()
                .map(|p| {
                    let v = &p.summary.volley;
                    PartInfo {
                        file: name(p),
                        segment: v.segment.clone(),
                        version: v.version.clone(),
                        started: v.started.clone(),
                        started_unix_ms: v.started_unix_ms,
                        duration_s: v.duration_s,
                        aborted: v.aborted.clone(),
                    }
                })
                .collect(),
            start_skew_ms: t_last - t0,
            interval_percentiles: INTERVAL_PERCENTILES.to_string(),
        }),
    };
    Ok(Merged {
        summary: Summary {
            volley: info,
            metrics,
            series: series.iter().map(|(r, _)| r.clone()).collect(),
            interval_series,
            rollup_series: merged.rollups,
            interval_s: merged.interval_s,
            intervals,
            rollup_s: merged.rollup_s,
            rollup_intervals: merged.rollup_intervals,
            // Monitors are polled by segment 1 only, and breaking points and
            // recovery are stated in the plan's load: part 1's answers stand
            // for the run (judged on its interleaved share of the traffic).
            capacity: by_start
                .iter()
                .find(|p| p.summary.volley.segment.starts_with("1/"))
                .map(|p| p.summary.capacity.clone())
                .unwrap_or_default(),
        },
        series,
        thresholds_ok,
    })
}

type Named = Vec<(String, Tags)>;

/// Union of names; returns each part's old -> new index map.
fn union_names(lists: &[&Named]) -> (Named, Vec<Vec<usize>>) {
    let mut out: Named = Vec::new();
    let mut at: HashMap<(String, Tags), usize> = HashMap::new();
    let maps = lists
        .iter()
        .map(|list| {
            list.iter()
                .map(|k| {
                    *at.entry(k.clone()).or_insert_with(|| {
                        out.push(k.clone());
                        out.len() - 1
                    })
                })
                .collect()
        })
        .collect();
    (out, maps)
}

/// The parts' time series on one clock.
struct MergedIntervals {
    series: Named,
    rollups: Named,
    interval_s: u64,
    intervals: Vec<IntervalRecord>,
    rollup_s: u64,
    rollup_intervals: Vec<IntervalRecord>,
}

/// Merge the parts' buckets by wall-clock second since `t0`, at the widest
/// bucket width of any part.
fn merge_intervals(parts: &[Part], t0: u64) -> MergedIntervals {
    let (series, smap) = union_names(
        &parts
            .iter()
            .map(|p| &p.summary.interval_series)
            .collect::<Vec<_>>(),
    );
    let (rollups, rmap) = union_names(
        &parts
            .iter()
            .map(|p| &p.summary.rollup_series)
            .collect::<Vec<_>>(),
    );
    let adds: Vec<bool> = series.iter().map(|(m, _)| additive(m)).collect();
    let interval_s = parts
        .iter()
        .map(|p| p.summary.interval_s)
        .max()
        .unwrap_or(1);
    let rollup_s = parts.iter().map(|p| p.summary.rollup_s).max().unwrap_or(1);
    let shifts: Vec<u64> = parts
        .iter()
        .map(|p| ((p.summary.volley.started_unix_ms - t0) as f64 / 1000.0).round() as u64)
        .collect();
    let intervals = merge_buckets(
        parts.iter().map(|p| &p.summary.intervals),
        &smap,
        &shifts,
        interval_s,
        |id| adds[id],
    );
    let rollup_intervals = merge_buckets(
        parts.iter().map(|p| &p.summary.rollup_intervals),
        &rmap,
        &shifts,
        rollup_s,
        |_| false,
    );
    MergedIntervals {
        series,
        rollups,
        interval_s,
        intervals,
        rollup_s,
        rollup_intervals,
    }
}

/// Each part's records, renumbered by `maps` and re-bucketed to `width`
/// after `shifts`, folded together bucket by bucket.
fn merge_buckets<'a>(
    parts: impl Iterator<Item = &'a Vec<IntervalRecord>>,
    maps: &[Vec<usize>],
    shifts: &[u64],
    width: u64,
    additive: impl Fn(usize) -> bool,
) -> Vec<IntervalRecord> {
    let mut by_t: BTreeMap<u64, BTreeMap<usize, Point>> = BTreeMap::new();
    for (pi, records) in parts.enumerate() {
        let renumbered: Vec<(u64, Vec<(u32, Point)>)> = records
            .iter()
            .map(|iv| {
                let pts = iv
                    .points
                    .iter()
                    .filter_map(|(id, p)| Some((*maps[pi].get(*id)? as u32, *p)))
                    .collect();
                (iv.t, pts)
            })
            .collect();
        let buckets = volley_model::history::rebucket(
            renumbered.iter().map(|(t, p)| (*t, p.as_slice())),
            shifts[pi],
            width,
        );
        for b in buckets {
            let points = by_t.entry(b.t).or_default();
            for (id, pt) in &b.points {
                fold(points, *id as usize, pt, additive(*id as usize));
            }
        }
    }
    by_t.into_iter()
        .map(|(t, points)| IntervalRecord {
            t,
            points: points.into_iter().collect(),
            rollups: Vec::new(),
        })
        .collect()
}

/// Every part's drivers, each once (the first part's description).
fn drivers_of(parts: &[Part]) -> Vec<volley_protocols::descriptor::Descriptor> {
    let mut out: Vec<volley_protocols::descriptor::Descriptor> = Vec::new();
    for d in parts.iter().flat_map(|p| &p.summary.volley.drivers) {
        if !out.iter().any(|o| o.name == d.name) {
            out.push(d.clone());
        }
    }
    out
}

/// The tags folded into `other` in any part, once each.
fn folded_of(parts: &[Part]) -> Vec<volley_protocols::metrics::Folded> {
    let mut out: Vec<volley_protocols::metrics::Folded> = Vec::new();
    for f in parts.iter().flat_map(|p| &p.summary.volley.folded) {
        match out.iter_mut().find(|o| o.tag == f.tag) {
            Some(o) => {
                o.values = o.values.max(f.values);
                for m in &f.metrics {
                    if !o.metrics.contains(m) {
                        o.metrics.push(m.clone());
                    }
                }
            }
            None => out.push(f.clone()),
        }
    }
    out
}

fn fold(into: &mut BTreeMap<usize, Point>, id: usize, p: &Point, additive: bool) {
    match into.get_mut(&id) {
        None => {
            into.insert(id, *p);
        }
        Some(acc) => *acc = merge_points(acc, p, additive),
    }
}

/// Two parts' points of one series in one second (or bucket). Counts add
/// and percentiles take the higher, as for two seconds of one series
/// ([`Point::then`]); gauges observe the parts apart.
pub fn merge_points(a: &Point, b: &Point, additive: bool) -> Point {
    // Kinds never differ within one series; if they did, keep the first.
    if std::mem::discriminant(a) != std::mem::discriminant(b) {
        return *a;
    }
    match (*a, *b) {
        (
            Point::Gauge {
                value: v1,
                min: lo1,
                max: hi1,
            },
            Point::Gauge {
                value: v2,
                min: lo2,
                max: hi2,
            },
        ) => {
            if additive {
                Point::Gauge {
                    value: v1 + v2,
                    min: lo1 + lo2,
                    max: hi1 + hi2,
                }
            } else {
                Point::Gauge {
                    value: v1.max(v2),
                    min: lo1.min(lo2),
                    max: hi1.max(hi2),
                }
            }
        }
        _ => a.then(b),
    }
}

/// What a merge covered, for the terminal: one line per fact.
pub fn describe(s: &Summary) -> Vec<String> {
    let Some(m) = &s.volley.merge else {
        return Vec::new();
    };
    let mut out = vec![format!(
        "merged {} part{} of {} ({}); started {} ms apart",
        m.parts.len(),
        if m.parts.len() == 1 { "" } else { "s" },
        s.volley.plan,
        segment_list("segment", &m.segments, m.of),
        m.start_skew_ms
    )];
    if !m.missing.is_empty() {
        out.push(format!(
            "PARTIAL: {} missing; the merged numbers cover {} of {} segments of the plan",
            segment_list("segment", &m.missing, m.of),
            m.segments.len(),
            m.of
        ));
    }
    if m.start_skew_ms > 1000 {
        out.push(format!(
            "the parts started {:.1} s apart: totals and thresholds are exact, but their per-second series are aligned only to the second; start every part with the same --start-at",
            m.start_skew_ms as f64 / 1000.0
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn union_of_windows() {
        assert_eq!(union_ms(vec![(0, 10), (5, 12)]), 12);
        assert_eq!(union_ms(vec![(20, 30), (0, 10)]), 20);
        assert_eq!(union_ms(vec![(0, 10), (2, 3), (10, 11)]), 11);
        assert_eq!(union_ms(vec![]), 0);
    }

    #[test]
    fn points_merge() {
        let t = |count, mean, p99| Point::Trend {
            count,
            min: 1,
            max: p99,
            mean,
            p50: 5,
            p90: 8,
            p95: 9,
            p99,
        };
        let Point::Trend {
            count, mean, p99, ..
        } = merge_points(&t(1, 10.0, 100), &t(3, 2.0, 40), false)
        else {
            unreachable!()
        };
        assert_eq!((count, mean, p99), (4, 4.0, 100));
        let g = |v| Point::Gauge {
            value: v,
            min: v,
            max: v,
        };
        assert_eq!(merge_points(&g(3.0), &g(4.0), true), g(7.0));
        assert_eq!(
            merge_points(&g(3.0), &g(4.0), false),
            Point::Gauge {
                value: 4.0,
                min: 3.0,
                max: 4.0
            }
        );
    }
}
