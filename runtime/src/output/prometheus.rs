//! `--out prometheus=ADDR`: the run's totals on a live `/metrics` endpoint
//! (OpenMetrics text, via the official `prometheus-client` crate) for Grafana
//! during long soaks.
//!
//! Counters are the run's totals so far; a k6 rate `X` becomes two counters,
//! `volley_X_total` (true observations) and `volley_X_observations_total`
//! (all), so `rate(a)/rate(b)` gives the share over any window; time trends
//! become histograms in seconds, built from the run's HdrHistograms.
//! The snapshot is refreshed once per flush interval, only for the series
//! that changed; encoding happens on the serving thread, at scrape time.

use super::server::{Names, ServeError, Server};
use crate::aggregate::Aggregator;
use crate::engine::Observer;
use http_body_util::Full;
use hyper::body::Bytes;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit as PUnit};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use volley_protocols::metrics::{MetricKind, Slot, Unit};

#[derive(Clone, Debug, PartialEq)]
pub struct PrometheusOptions {
    pub addr: SocketAddr,
    /// After the run: keep serving until the final values were scraped once,
    /// at most this long.
    pub linger: Duration,
}

/// Histogram bucket bounds for time metrics, in seconds.
const TIME_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Bucket bounds for trends that are not times (e.g. rows returned).
const PLAIN_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1e3, 1e4, 1e5, 1e6,
];

#[derive(Debug, Clone)]
enum Value {
    Counter(u64),
    Rate {
        hits: u64,
        total: u64,
    },
    Gauge(f64),
    /// Bucket counts (not cumulative) with +Inf last, sum in display units.
    Histogram {
        count: u64,
        sum: f64,
        buckets: Vec<(f64, u64)>,
    },
}

#[derive(Debug)]
struct Family {
    kind: MetricKind,
    unit: Unit,
    series: BTreeMap<u32, (Vec<(String, String)>, Value)>,
}

#[derive(Debug, Default)]
struct Snapshot {
    families: BTreeMap<String, Family>,
    running: bool,
    elapsed: f64,
    /// Holds the run's final values.
    last: bool,
}

#[derive(Debug, Default)]
struct Shared {
    snapshot: Mutex<Snapshot>,
    /// Set once a scrape returned the final values.
    final_scraped: AtomicBool,
}

#[derive(Debug)]
struct SnapshotCollector(Arc<Shared>);

/// Metric and label names: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub(super) fn name(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// prometheus-client writes label values as given: escape them here.
fn label_value(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let snap = self.0.snapshot.lock().expect("snapshot lock");
        {
            let mut m = encoder.encode_descriptor(
                "running",
                "1 while the run sends load, 0 once it has ended (final values)",
                None,
                MetricType::Gauge,
            )?;
            m.encode_gauge(&(snap.running as i64))?;
        }
        {
            let mut m = encoder.encode_descriptor(
                "elapsed",
                "time since the run started",
                Some(&PUnit::Seconds),
                MetricType::Gauge,
            )?;
            m.encode_gauge(&snap.elapsed)?;
        }
        for (metric, fam) in &snap.families {
            let metric = name(metric);
            let unit = match (fam.kind, fam.unit) {
                (_, Unit::Time) => Some(PUnit::Seconds),
                (MetricKind::Counter | MetricKind::Gauge, Unit::Data) => Some(PUnit::Bytes),
                _ => None,
            };
            match fam.kind {
                MetricKind::Counter => {
                    let mut m = encoder.encode_descriptor(
                        &metric,
                        &format!("volley counter {metric}: total so far"),
                        unit.as_ref(),
                        MetricType::Counter,
                    )?;
                    for (labels, v) in fam.series.values() {
                        if let Value::Counter(n) = v {
                            m.encode_family(labels)?
                                .encode_counter::<NoLabelSet, _, u64>(n, None)?;
                        }
                    }
                }
                MetricKind::Rate => {
                    for (suffix, help) in [
                        ("", "true observations"),
                        ("_observations", "all observations"),
                    ] {
                        let full = format!("{metric}{suffix}");
                        let mut m = encoder.encode_descriptor(
                            &full,
                            &format!(
                                "volley rate {metric}: {help} (the rate is {metric}_total / {metric}_observations_total)"
                            ),
                            None,
                            MetricType::Counter,
                        )?;
                        for (labels, v) in fam.series.values() {
                            if let Value::Rate { hits, total } = v {
                                let n = if suffix.is_empty() { hits } else { total };
                                m.encode_family(labels)?
                                    .encode_counter::<NoLabelSet, _, u64>(n, None)?;
                            }
                        }
                    }
                }
                MetricKind::Gauge => {
                    let mut m = encoder.encode_descriptor(
                        &metric,
                        &format!("volley gauge {metric}: last value"),
                        unit.as_ref(),
                        MetricType::Gauge,
                    )?;
                    for (labels, v) in fam.series.values() {
                        if let Value::Gauge(x) = v {
                            m.encode_family(labels)?.encode_gauge(x)?;
                        }
                    }
                }
                MetricKind::Trend => {
                    let mut m = encoder.encode_descriptor(
                        &metric,
                        &format!("volley trend {metric}"),
                        unit.as_ref(),
                        MetricType::Histogram,
                    )?;
                    for (labels, v) in fam.series.values() {
                        if let Value::Histogram {
                            count,
                            sum,
                            buckets,
                        } = v
                        {
                            m.encode_family(labels)?
                                .encode_histogram::<NoLabelSet>(*sum, *count, buckets, None)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

fn value_of(slot: &Slot, unit: Unit) -> Option<Value> {
    Some(match slot {
        Slot::Empty => return None,
        Slot::Counter(n) => Value::Counter(*n),
        Slot::Rate { hits, total } => Value::Rate {
            hits: *hits,
            total: *total,
        },
        Slot::Gauge { last, .. } => Value::Gauge(*last),
        Slot::Trend(h) => {
            // Time is recorded in µs and exposed in seconds; plain values
            // are recorded in millionths.
            let stored = volley_protocols::metrics::trend_scale(unit);
            let (bounds, scale) = if unit == Unit::Time {
                (TIME_BUCKETS, 1e-3 / stored)
            } else {
                (PLAIN_BUCKETS, 1.0 / stored)
            };
            let mut buckets: Vec<(f64, u64)> = bounds.iter().map(|b| (*b, 0)).collect();
            buckets.push((f64::MAX, 0));
            for v in h.iter_recorded() {
                // A value counts in the first bucket whose bound holds it.
                let x = h.highest_equivalent(v.value_iterated_to()) as f64 * scale;
                let i = bounds.partition_point(|b| *b < x);
                buckets[i].1 += v.count_at_value();
            }
            Value::Histogram {
                count: h.len(),
                sum: h.mean() * h.len() as f64 * scale,
                buckets,
            }
        }
    })
}

/// The serving side of `--out prometheus`, and the observer feeding it.
pub struct Endpoint {
    pub addr: SocketAddr,
    pub linger: Duration,
    shared: Arc<Shared>,
    /// Intervals already taken into the snapshot.
    seen: u64,
    /// Stops serving when the endpoint is dropped.
    _server: Server,
}

impl Endpoint {
    /// Bind now (so a busy port fails before the run) and serve on a thread.
    pub fn start(opts: &PrometheusOptions) -> Result<Self, ServeError> {
        let shared = Arc::new(Shared::default());
        shared.snapshot.lock().expect("snapshot lock").running = true;
        let mut registry = Registry::with_prefix("volley");
        registry.register_collector(Box::new(SnapshotCollector(shared.clone())));
        let registry = Arc::new(registry);
        let serving = shared.clone();
        let names = Names {
            flag: "--out prometheus=",
            title: "the Prometheus endpoint",
            thread: "volley-prometheus",
            log: "prometheus endpoint",
        };
        let (server, addr) = Server::start(opts.addr, names, move |req| {
            respond(req, &registry, &serving)
        })?;
        eprintln!("prometheus: serving http://{addr}/metrics");
        Ok(Self {
            addr,
            shared,
            linger: opts.linger,
            seen: 0,
            _server: server,
        })
    }

    fn update(&mut self, agg: &Aggregator, elapsed: Duration, last: bool) {
        let mut changed: Vec<u32> = agg
            .since(self.seen)
            .iter()
            .flat_map(|iv| iv.points.iter().map(|(id, _)| *id))
            .collect();
        changed.sort_unstable();
        changed.dedup();
        self.seen = agg.completed();
        let defs = agg.registry.metrics();
        let series = agg.registry.all_series();
        // Values are computed before taking the lock: scrapes never wait on
        // histogram walks.
        let mut fresh = Vec::with_capacity(changed.len());
        for id in changed {
            let (Some(info), Some(slot)) = (series.get(id as usize), agg.totals.get(id as usize))
            else {
                continue;
            };
            let def = &defs[info.metric as usize];
            if let Some(v) = value_of(slot, def.unit) {
                let labels = info
                    .tags
                    .iter()
                    .map(|(k, v)| (name(k), label_value(v)))
                    .collect();
                fresh.push((def.clone(), id, labels, v));
            }
        }
        let mut snap = self.shared.snapshot.lock().expect("snapshot lock");
        for (def, id, labels, v) in fresh {
            snap.families
                .entry(def.name.to_string())
                .or_insert_with(|| Family {
                    kind: def.kind,
                    unit: def.unit,
                    series: BTreeMap::new(),
                })
                .series
                .insert(id, (labels, v));
        }
        snap.elapsed = elapsed.as_secs_f64();
        if last {
            snap.running = false;
            snap.last = true;
        }
    }

    /// A scrape has returned the run's final values.
    pub fn final_scraped(&self) -> bool {
        self.shared.final_scraped.load(Ordering::Acquire)
    }
}

impl Observer for Endpoint {
    fn on_interval(&mut self, agg: &Aggregator, elapsed: Duration) -> Option<String> {
        self.update(agg, elapsed, false);
        None
    }

    fn on_end(&mut self, agg: &Aggregator, elapsed: Duration) {
        self.update(agg, elapsed, true);
    }
}

fn respond(
    req: &hyper::Request<hyper::body::Incoming>,
    registry: &Registry,
    shared: &Shared,
) -> hyper::Response<Full<Bytes>> {
    let reply = |status: u16, ctype: &str, body: String| {
        hyper::Response::builder()
            .status(status)
            .header("content-type", ctype)
            .body(Full::new(Bytes::from(body)))
            .expect("a valid response")
    };
    if req.uri().path() != "/metrics" {
        return reply(
            404,
            "text/plain",
            "volley serves its metrics on /metrics\n".into(),
        );
    }
    let last = shared.snapshot.lock().expect("snapshot lock").last;
    let mut body = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut body, registry) {
        return reply(500, "text/plain", format!("cannot encode metrics: {e}\n"));
    }
    if last {
        shared.final_scraped.store(true, Ordering::Release);
    }
    reply(
        200,
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_hold_each_value_once() {
        let mut h = volley_protocols::metrics::new_histogram();
        for us in [500u64, 800, 3_000, 40_000, 2_000_000, 90_000_000] {
            h.record(us).unwrap();
        }
        let Some(Value::Histogram { count, buckets, .. }) =
            value_of(&Slot::Trend(Box::new(h)), Unit::Time)
        else {
            panic!("histogram")
        };
        assert_eq!(count, 6);
        assert_eq!(buckets.iter().map(|b| b.1).sum::<u64>(), 6);
        let at = |bound: f64| buckets.iter().find(|b| b.0 == bound).unwrap().1;
        assert_eq!(at(0.001), 2); // 0.5 ms, 0.8 ms
        assert_eq!(at(0.005), 1); // 3 ms
        assert_eq!(at(0.05), 1); // 40 ms
        assert_eq!(at(2.5), 1); // 2 s
        assert_eq!(buckets.last().unwrap(), &(f64::MAX, 1)); // 90 s
    }

    #[test]
    fn names_and_values_are_made_safe() {
        assert_eq!(name("http_req_duration"), "http_req_duration");
        assert_eq!(name("9x-y"), "_9x_y");
        assert_eq!(label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
