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
use std::collections::{BTreeMap, HashMap};
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

#[derive(Clone, Debug)]
pub struct MetricDef {
    pub name: Arc<str>,
    pub kind: MetricKind,
    pub unit: Unit,
}

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

#[derive(Default)]
struct Inner {
    metrics: Vec<MetricDef>,
    metric_by_name: HashMap<Arc<str>, MetricId>,
    series: Vec<SeriesInfo>,
    series_by_key: HashMap<(MetricId, Tags), SeriesId>,
}

/// Interns metric names and (metric, tags) series into small ids.
/// Locked only when a driver meets a series for the first time.
#[derive(Default)]
pub struct Registry {
    inner: Mutex<Inner>,
}

impl Registry {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
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
        let id = inner.series.len() as SeriesId;
        inner.series.push(SeriesInfo {
            metric,
            tags: tags.clone(),
        });
        inner.series_by_key.insert((metric, tags.clone()), id);
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

pub fn decode_histogram(text: &str) -> Result<Histogram<u64>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("histogram is not base64: {e}"))?;
    let mut h: Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("histogram does not decode: {e:?}"))?;
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
    fn tags_match_filters() {
        let t = Tags::new([("scenario", "api"), ("status", "200")]);
        assert!(t.matches(&Tags::new([("scenario", "api")])));
        assert!(!t.matches(&Tags::new([("scenario", "web")])));
        assert_eq!(t.to_string(), "{scenario:api,status:200}");
    }
}
