//! The recording half of the metrics pipeline.
//!
//! Drivers record into a worker-local [`Shard`] through a [`Recorder`]: a
//! vector indexed by series id, no lock, no channel per sample. The engine
//! swaps the shard out once per flush interval and merges it elsewhere.

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::Serializer as _;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub type MetricId = u32;
pub type SeriesId = u32;

/// The four k6 metric types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    Counter,
    Gauge,
    Rate,
    Trend,
}

/// What a metric's values are; time values are recorded in microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    Default,
    Time,
    Data,
}

/// Stored units per displayed unit of a trend's values: time is kept in µs
/// and shown in ms; plain values (a custom trend such as a cost) in
/// millionths, so fractions keep their digits in the integer histogram;
/// bytes as they are.
pub fn trend_scale(unit: Unit) -> f64 {
    match unit {
        Unit::Time => 1_000.0,
        Unit::Default => 1_000_000.0,
        Unit::Data => 1.0,
    }
}

#[derive(Clone, Debug)]
pub struct MetricDef {
    pub name: Arc<str>,
    pub kind: MetricKind,
    pub unit: Unit,
}

/// The `group` tag of `[setup]`'s samples, as k6 tags its setup().
pub const PHASE_SETUP: &str = "::setup";
/// The `group` tag of `[teardown]`'s samples.
pub const PHASE_TEARDOWN: &str = "::teardown";

/// A sorted set of tags. Cheap to clone; built only when a series is first seen.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Tags(Arc<BTreeMap<String, String>>);

impl Tags {
    pub fn new<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Tags(Arc::new(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        ))
    }

    /// A copy with one tag set (replacing any previous value).
    pub fn with(&self, key: &str, value: impl Into<String>) -> Self {
        let mut map = (*self.0).clone();
        map.insert(key.to_string(), value.into());
        Tags(Arc::new(map))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Tags of a `[setup]` or `[teardown]` sample (group `::setup` or
    /// `::teardown`): counted apart from the scenarios'.
    pub fn is_phase(&self) -> bool {
        matches!(self.get("group"), Some(PHASE_SETUP | PHASE_TEARDOWN))
    }

    /// True when every tag of `filter` is present here with the same value.
    pub fn matches(&self, filter: &Tags) -> bool {
        filter.iter().all(|(k, v)| self.get(k) == Some(v))
    }
}

impl std::fmt::Display for Tags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        write!(f, "{{{}}}", parts.join(","))
    }
}

#[derive(Clone, Debug)]
pub struct SeriesInfo {
    pub metric: MetricId,
    pub tags: Tags,
}

/// Distinct series a run keeps apart unless told otherwise.
pub const DEFAULT_MAX_SERIES: usize = 10_000;

/// The value a tag takes in the series new values fold into past the cap.
pub const OTHER: &str = "other";

/// Tags that never fold: few values by design, and what per-scenario
/// totals and monitors are found by.
const NEVER_FOLDED: &[&str] = &["scenario", "monitor"];

/// A tag whose new values were folded into `other` past the series cap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Folded {
    pub tag: String,
    /// The cap: distinct series kept apart.
    pub max_series: usize,
    /// Distinct values the tag had when the cap was reached.
    pub values: usize,
    /// A few of them, to recognise where they come from.
    pub examples: Vec<String>,
    /// Metrics whose series took an `other` value for this tag.
    pub metrics: Vec<String>,
}

/// What one metric's series looked like when the cap was reached.
struct Known {
    /// Values seen per tag key.
    values: HashMap<String, HashSet<String>>,
    /// The key with the most values: the one folded first.
    exploding: Option<String>,
}

struct Inner {
    metrics: Vec<MetricDef>,
    metric_by_name: HashMap<Arc<str>, MetricId>,
    series: Vec<SeriesInfo>,
    series_by_key: HashMap<(MetricId, Tags), SeriesId>,
    max_series: usize,
    known: HashMap<MetricId, Known>,
    folded: Vec<Folded>,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            metrics: Vec::new(),
            metric_by_name: HashMap::new(),
            series: Vec::new(),
            series_by_key: HashMap::new(),
            max_series: DEFAULT_MAX_SERIES,
            known: HashMap::new(),
            folded: Vec::new(),
        }
    }
}

impl Inner {
    /// The tags a new series of `metric` takes once the cap is reached: the
    /// exploding tag and any tag with a value not seen before become
    /// `other`; far past the cap (twice it), every tag but the never-folded.
    fn fold(&mut self, metric: MetricId, tags: &Tags) -> Tags {
        let series = &self.series;
        let known = self.known.entry(metric).or_insert_with(|| {
            let mut values: HashMap<String, HashSet<String>> = HashMap::new();
            for s in series.iter().filter(|s| s.metric == metric) {
                for (k, v) in s.tags.iter() {
                    if !NEVER_FOLDED.contains(&k) {
                        values
                            .entry(k.to_string())
                            .or_default()
                            .insert(v.to_string());
                    }
                }
            }
            let exploding = values
                .iter()
                .max_by_key(|(k, v)| (v.len(), std::cmp::Reverse((*k).clone())))
                .map(|(k, _)| k.clone());
            Known { values, exploding }
        });
        let all = series.len() >= self.max_series.saturating_mul(2);
        let mut out = BTreeMap::new();
        for (k, v) in tags.iter() {
            let fold = !NEVER_FOLDED.contains(&k)
                && (all
                    || known.exploding.as_deref() == Some(k)
                    || !known.values.get(k).is_some_and(|vals| vals.contains(v)));
            out.insert(k.to_string(), if fold { OTHER } else { v }.to_string());
            if fold && v != OTHER {
                let name = self.metrics[metric as usize].name.to_string();
                note_fold(&mut self.folded, k, known, &name, self.max_series);
            }
        }
        Tags(Arc::new(out))
    }
}

/// Remember (and say, the first time) that `tag` folds on `metric`.
fn note_fold(folded: &mut Vec<Folded>, tag: &str, known: &Known, metric: &str, max: usize) {
    if let Some(f) = folded.iter_mut().find(|f| f.tag == tag) {
        if !f.metrics.iter().any(|m| m == metric) {
            f.metrics.push(metric.to_string());
        }
        return;
    }
    let vals = known.values.get(tag);
    let mut examples: Vec<String> = vals
        .map(|v| v.iter().cloned().collect())
        .unwrap_or_default();
    examples.sort();
    examples.truncate(3);
    let f = Folded {
        tag: tag.to_string(),
        max_series: max,
        values: vals.map_or(0, HashSet::len),
        examples,
        metrics: vec![metric.to_string()],
    };
    tracing::warn!("{}", f.describe());
    folded.push(f);
}

impl Folded {
    /// One sentence: what was folded, why, and what to do.
    pub fn describe(&self) -> String {
        let examples = self
            .examples
            .iter()
            .map(|e| format!("{e:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let fix = if self.tag == "name" {
            "give such requests one `name` (a request's name defaults to its URL as written), or raise --max-series"
        } else {
            "raise --max-series to keep them apart"
        };
        format!(
            "more than {max} series: new values of tag `{tag}` ({n} value{s} when the cap was reached, e.g. {examples}) \
             are counted under `{tag}:{OTHER}` on {metrics}; totals stay exact; {fix}",
            max = self.max_series,
            tag = self.tag,
            n = self.values,
            s = if self.values == 1 { "" } else { "s" },
            metrics = self.metrics.join(", "),
        )
    }
}

/// Interns metric names and (metric, tags) series into small ids.
/// Locked only when a driver meets a series for the first time.
///
/// Past a cap on distinct series (10,000 unless set), a new series folds
/// into one whose exploding tag reads `other` (see [`Inner::fold`]): every
/// sample still counts, so totals stay exact; only the breakdown by that
/// tag stops growing, and memory with it.
#[derive(Default)]
pub struct Registry {
    inner: Mutex<Inner>,
}

impl Registry {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Keep at most `n` series apart (at least 1).
    pub fn set_max_series(&self, n: usize) {
        self.inner.lock().expect("registry lock").max_series = n.max(1);
    }

    pub fn max_series(&self) -> usize {
        self.inner.lock().expect("registry lock").max_series
    }

    /// Tags whose new values were folded into `other` so far.
    pub fn folded(&self) -> Vec<Folded> {
        self.inner.lock().expect("registry lock").folded.clone()
    }

    /// Register (or look up) a metric. A name keeps the kind it was first given.
    pub fn metric(&self, name: &str, kind: MetricKind, unit: Unit) -> MetricId {
        let mut inner = self.inner.lock().expect("registry lock");
        if let Some(&id) = inner.metric_by_name.get(name) {
            return id;
        }
        let id = inner.metrics.len() as MetricId;
        let name: Arc<str> = name.into();
        inner.metrics.push(MetricDef {
            name: name.clone(),
            kind,
            unit,
        });
        inner.metric_by_name.insert(name, id);
        id
    }

    pub fn series(&self, metric: MetricId, tags: &Tags) -> SeriesId {
        let mut inner = self.inner.lock().expect("registry lock");
        if let Some(&id) = inner.series_by_key.get(&(metric, tags.clone())) {
            return id;
        }
        let folds = tags.iter().any(|(k, _)| !NEVER_FOLDED.contains(&k));
        let tags = if inner.series.len() >= inner.max_series && folds {
            let folded = inner.fold(metric, tags);
            if let Some(&id) = inner.series_by_key.get(&(metric, folded.clone())) {
                return id;
            }
            folded
        } else {
            tags.clone()
        };
        let id = inner.series.len() as SeriesId;
        inner.series.push(SeriesInfo {
            metric,
            tags: tags.clone(),
        });
        inner.series_by_key.insert((metric, tags), id);
        id
    }

    pub fn metrics(&self) -> Vec<MetricDef> {
        self.inner.lock().expect("registry lock").metrics.clone()
    }

    pub fn all_series(&self) -> Vec<SeriesInfo> {
        self.inner.lock().expect("registry lock").series.clone()
    }

    pub fn metric_id(&self, name: &str) -> Option<MetricId> {
        self.inner
            .lock()
            .expect("registry lock")
            .metric_by_name
            .get(name)
            .copied()
    }
}

/// One series' values over some window.
#[derive(Clone, Debug, Default)]
pub enum Slot {
    #[default]
    Empty,
    Counter(u64),
    Rate {
        hits: u64,
        total: u64,
    },
    Gauge {
        last: f64,
        min: f64,
        max: f64,
    },
    Trend(Box<Histogram<u64>>),
}

/// Record with auto-resize. (`saturating_record` would clamp values above the
/// current range instead of growing it.)
#[inline]
fn record(h: &mut Histogram<u64>, value: u64) {
    if h.record(value).is_err() {
        h.saturating_record(value);
    }
}

pub fn new_histogram() -> Histogram<u64> {
    // 3 significant digits, auto-resizing: small until large values show up.
    Histogram::new(3).expect("3 significant digits is valid")
}

impl Slot {
    pub fn is_empty(&self) -> bool {
        matches!(self, Slot::Empty)
    }

    /// Fold `other` into `self`. Gauges keep the newest value.
    pub fn merge(&mut self, other: &Slot) {
        match (&mut *self, other) {
            (_, Slot::Empty) => {}
            (Slot::Empty, o) => *self = o.clone(),
            // Saturating: a summary read from a file may hold any count.
            (Slot::Counter(a), Slot::Counter(b)) => *a = a.saturating_add(*b),
            (Slot::Rate { hits, total }, Slot::Rate { hits: h, total: t }) => {
                *hits = hits.saturating_add(*h);
                *total = total.saturating_add(*t);
            }
            (
                Slot::Gauge { last, min, max },
                Slot::Gauge {
                    last: l,
                    min: lo,
                    max: hi,
                },
            ) => {
                *last = *l;
                *min = min.min(*lo);
                *max = max.max(*hi);
            }
            (Slot::Trend(a), Slot::Trend(b)) => {
                // Auto-resizing histograms cannot fail to add.
                let _ = a.add(&**b);
            }
            (a, b) => tracing::warn!("cannot merge {a:?} with {b:?}: metric kinds differ"),
        }
    }
}

/// Worker-local values, indexed by series id.
#[derive(Default, Debug)]
pub struct Shard {
    pub slots: Vec<Slot>,
}

impl Shard {
    #[inline]
    fn slot(&mut self, id: SeriesId) -> &mut Slot {
        let i = id as usize;
        if i >= self.slots.len() {
            self.slots.resize_with(i + 1, Slot::default);
        }
        &mut self.slots[i]
    }

    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(Slot::is_empty)
    }
}

/// A handle to the current worker's shard. Cloned into every VU on that worker.
#[derive(Clone)]
pub struct Recorder {
    shard: Rc<RefCell<Shard>>,
    registry: Arc<Registry>,
}

impl Recorder {
    pub fn new(registry: Arc<Registry>) -> Self {
        Self {
            shard: Rc::default(),
            registry,
        }
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub fn series(&self, metric: MetricId, tags: &Tags) -> SeriesId {
        self.registry.series(metric, tags)
    }

    /// Count `n` on a counter series.
    #[inline]
    pub fn add(&self, id: SeriesId, n: u64) {
        let mut shard = self.shard.borrow_mut();
        match shard.slot(id) {
            Slot::Counter(c) => *c += n,
            s => *s = Slot::Counter(n),
        }
    }

    /// One observation of a rate (k6: the share of non-zero values).
    #[inline]
    pub fn rate(&self, id: SeriesId, hit: bool) {
        let mut shard = self.shard.borrow_mut();
        match shard.slot(id) {
            Slot::Rate { hits, total } => {
                *hits += hit as u64;
                *total += 1;
            }
            s => {
                *s = Slot::Rate {
                    hits: hit as u64,
                    total: 1,
                }
            }
        }
    }

    #[inline]
    pub fn gauge(&self, id: SeriesId, value: f64) {
        let mut shard = self.shard.borrow_mut();
        match shard.slot(id) {
            Slot::Gauge { last, min, max } => {
                *last = value;
                *min = min.min(value);
                *max = max.max(value);
            }
            s => {
                *s = Slot::Gauge {
                    last: value,
                    min: value,
                    max: value,
                }
            }
        }
    }

    /// A time observation, kept in microseconds.
    #[inline]
    pub fn time(&self, id: SeriesId, d: Duration) {
        self.trend(id, d.as_micros().min(u64::MAX as u128) as u64);
    }

    #[inline]
    pub fn trend(&self, id: SeriesId, value: u64) {
        let mut shard = self.shard.borrow_mut();
        match shard.slot(id) {
            Slot::Trend(h) => record(h, value),
            s => {
                let mut h = new_histogram();
                record(&mut h, value);
                *s = Slot::Trend(Box::new(h));
            }
        }
    }

    /// Take what was recorded since the last take.
    pub fn take(&self) -> Shard {
        std::mem::take(&mut *self.shard.borrow_mut())
    }
}

/// HdrHistogram V2 (deflate) + base64: the form summaries carry so that
/// results from several runs merge exactly.
pub fn encode_histogram(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    hdrhistogram::serialization::V2DeflateSerializer::new()
        .serialize(h, &mut buf)
        .expect("serializing to memory cannot fail");
    base64::engine::general_purpose::STANDARD.encode(buf)
}

/// A histogram in a summary that does not decode.
#[derive(Debug, thiserror::Error)]
pub enum HistogramError {
    #[error("histogram is not base64: {0}")]
    Base64(base64::DecodeError),
    #[error("histogram does not decode: {0:?}")]
    Decode(hdrhistogram::serialization::DeserializeError),
}

pub fn decode_histogram(text: &str) -> Result<Histogram<u64>, HistogramError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(HistogramError::Base64)?;
    let mut h: Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(HistogramError::Decode)?;
    h.auto(true);
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_takes() {
        let reg = Registry::new();
        let m = reg.metric("http_reqs", MetricKind::Counter, Unit::Default);
        let t = reg.metric("http_req_duration", MetricKind::Trend, Unit::Time);
        let tags = Tags::new([("scenario", "a")]);
        let (sc, st) = (reg.series(m, &tags), reg.series(t, &tags));
        assert_eq!(reg.series(m, &tags), sc, "interned");
        let rec = Recorder::new(reg);
        rec.add(sc, 1);
        rec.add(sc, 2);
        rec.time(st, Duration::from_millis(5));
        let shard = rec.take();
        assert!(matches!(shard.slots[sc as usize], Slot::Counter(3)));
        match &shard.slots[st as usize] {
            Slot::Trend(h) => assert_eq!(h.len(), 1),
            other => panic!("{other:?}"),
        }
        assert!(rec.take().is_empty());
    }

    #[test]
    fn large_values_are_not_clamped() {
        let reg = Registry::new();
        let t = reg.metric("t", MetricKind::Trend, Unit::Time);
        let id = reg.series(t, &Tags::default());
        let rec = Recorder::new(reg);
        for v in [1_500u64, 20_000, 3_000_000] {
            rec.trend(id, v);
        }
        let Slot::Trend(h) = &rec.take().slots[id as usize] else {
            panic!("trend")
        };
        assert_eq!(h.min(), h.lowest_equivalent(1_500));
        assert_eq!(h.max(), h.highest_equivalent(3_000_000));
        assert_eq!(h.value_at_quantile(0.5), h.highest_equivalent(20_000));
    }

    #[test]
    fn histogram_round_trip() {
        let mut h = new_histogram();
        for v in 1..10_000u64 {
            h.record(v * 7).unwrap();
        }
        let back = decode_histogram(&encode_histogram(&h)).unwrap();
        assert_eq!(back.len(), h.len());
        assert_eq!(back.value_at_quantile(0.95), h.value_at_quantile(0.95));
    }

    #[test]
    fn past_the_cap_new_values_fold_into_other() {
        let reg = Registry::new();
        reg.set_max_series(10);
        let m = reg.metric("http_reqs", MetricKind::Counter, Unit::Default);
        let tags = |name: &str, status: &str| {
            Tags::new([("scenario", "api"), ("name", name), ("status", status)])
        };
        let first: Vec<SeriesId> = (0..10)
            .map(|i| reg.series(m, &tags(&format!("/item/{i}"), "200")))
            .collect();
        assert_eq!(first, (0..10).collect::<Vec<_>>());
        assert!(reg.folded().is_empty());
        // Past the cap: the name folds, the known status stays.
        let a = reg.series(m, &tags("/item/10", "200"));
        let b = reg.series(m, &tags("/item/11", "200"));
        assert_eq!(a, b);
        assert_eq!(reg.all_series()[a as usize].tags, tags(OTHER, "200"));
        // A status never seen folds too; known series still resolve.
        let c = reg.series(m, &tags("/item/12", "503"));
        assert_eq!(reg.all_series()[c as usize].tags, tags(OTHER, OTHER));
        assert_eq!(reg.series(m, &tags("/item/3", "200")), 3);
        // Never folded: the scenario (and monitor) tag.
        let d = reg.series(m, &Tags::new([("scenario", "new")]));
        assert_eq!(
            reg.all_series()[d as usize].tags,
            Tags::new([("scenario", "new")])
        );
        let f = reg.folded();
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!(f[0].tag, "name");
        assert_eq!(f[0].values, 10);
        assert_eq!(f[0].examples, ["/item/0", "/item/1", "/item/2"]);
        assert_eq!(f[0].metrics, ["http_reqs"]);
        let text = f[0].describe();
        assert!(text.contains("tag `name`"), "{text}");
        assert!(text.contains("name:other"), "{text}");
        assert!(text.contains("\"/item/0\""), "{text}");
        // Recording into the folded series counts every sample.
        let rec = Recorder::new(reg.clone());
        for i in 10..1000 {
            rec.add(reg.series(m, &tags(&format!("/item/{i}"), "200")), 1);
        }
        assert!(reg.all_series().len() <= 13);
        assert!(matches!(rec.take().slots[a as usize], Slot::Counter(990)));
    }

    #[test]
    fn tags_match_filters() {
        let t = Tags::new([("scenario", "api"), ("status", "200")]);
        assert!(t.matches(&Tags::new([("scenario", "api")])));
        assert!(!t.matches(&Tags::new([("scenario", "web")])));
        assert_eq!(t.to_string(), "{scenario:api,status:200}");
    }
}
