//! `--out prometheus-rw=http://HOST:PORT/api/v1/write`: Prometheus remote
//! write (a snappy-compressed protobuf `WriteRequest`), named as k6's
//! remote-write output names its series: `k6_` and the metric, counters
//! `_total`, rates `_rate` (and their counts, `_total` for true and
//! `_observations_total` for all, as the scrape endpoint names them),
//! gauges as they are, and trends as one gauge per
//! statistic (`k6_http_req_duration_p95`, `_avg`, `_min`, `_max`, `_med`,
//! `_p90`, `_p99`, `_count`, `_sum`), times in seconds. Every value is the
//! run's total so far, as k6 sends them.

use super::push::{self, Pusher, Target};
use crate::aggregate::Aggregator;
use crate::engine::Observer;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use volley_protocols::metrics::{Slot, Unit};

/// The remote-write protobuf messages (prometheus/prompb/types.proto), just
/// the fields a sample needs.
mod pb {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WriteRequest {
        #[prost(message, repeated, tag = "1")]
        pub timeseries: Vec<TimeSeries>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(double, tag = "1")]
        pub value: f64,
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct RemoteWriteOptions {
    pub url: String,
    pub target: Target,
    pub tags: Vec<(String, String)>,
    pub push: Duration,
    pub timeout: Duration,
}

/// `http[s]://host:port/api/v1/write[,push=5s][,timeout=5s][,tag=k:v]...`
/// (and for https `ca=FILE`, `insecure`)
pub fn parse(spec: &str, arg: &str) -> Result<RemoteWriteOptions, String> {
    let mut parts = arg.split(',');
    let url_text = parts.next().unwrap_or_default();
    let (url, authority) = push::parse_url(
        spec,
        url_text,
        "prometheus-rw=http://127.0.0.1:9090/api/v1/write",
        9090,
    )?;
    let mut path = url.path().to_string();
    if let Some(q) = url.query() {
        path = format!("{path}?{q}");
    }
    let mut opts = RemoteWriteOptions {
        url: push::shown(&url),
        target: Target {
            authority,
            path,
            headers: vec![
                ("content-type", "application/x-protobuf".into()),
                ("content-encoding", "snappy".into()),
                ("x-prometheus-remote-write-version", "0.1.0".into()),
            ],
            tls: None,
        },
        tags: vec![],
        push: Duration::from_secs(5),
        timeout: Duration::from_secs(5),
    };
    let o = push::parse_options(spec, &url, parts, &mut opts.push, super::prometheus::name)?;
    (opts.tags, opts.timeout, opts.target.tls) = (o.tags, o.timeout, o.tls);
    Ok(opts)
}

/// The series of one slot: (name suffix, value).
fn values(slot: &Slot, unit: Unit) -> Vec<(&'static str, f64)> {
    match slot {
        Slot::Empty => vec![],
        Slot::Counter(n) => vec![("total", *n as f64)],
        // k6 sends the share alone; the counts (named as the scrape
        // endpoint names them) let a panel count failures by tag over time.
        Slot::Rate { hits, total } => vec![
            (
                "rate",
                if *total > 0 {
                    *hits as f64 / *total as f64
                } else {
                    0.0
                },
            ),
            ("total", *hits as f64),
            ("observations_total", *total as f64),
        ],
        Slot::Gauge { last, .. } => vec![("", *last)],
        Slot::Trend(h) => {
            // Stored in µs (time) or millionths; sent in seconds or units.
            let per = volley_protocols::metrics::trend_scale(unit);
            let scale = if unit == Unit::Time {
                1e-3 / per
            } else {
                1.0 / per
            };
            let q = |p: f64| h.value_at_quantile(p) as f64 * scale;
            vec![
                ("min", h.min() as f64 * scale),
                ("max", h.max() as f64 * scale),
                ("avg", h.mean() * scale),
                ("med", q(0.5)),
                ("p90", q(0.9)),
                ("p95", q(0.95)),
                ("p99", q(0.99)),
                ("count", h.len() as f64),
                ("sum", h.mean() * h.len() as f64 * scale),
            ]
        }
    }
}

/// A `WriteRequest` with every series' total so far, at `ts` (ms).
fn request(agg: &Aggregator, extra: &[(String, String)], ts: i64) -> pb::WriteRequest {
    let defs = agg.registry.metrics();
    let mut out = Vec::new();
    for (info, slot) in agg.registry.all_series().iter().zip(&agg.totals) {
        let def = &defs[info.metric as usize];
        series(&mut out, &def.name, def.unit, &info.tags, extra, slot, ts);
    }
    pb::WriteRequest { timeseries: out }
}

/// The time series of one slot (one per statistic for a trend).
fn series(
    out: &mut Vec<pb::TimeSeries>,
    metric: &str,
    unit: Unit,
    tags: &volley_protocols::metrics::Tags,
    extra: &[(String, String)],
    slot: &Slot,
    ts: i64,
) {
    let base = format!("k6_{}", super::prometheus::name(metric));
    let mut labels: Vec<pb::Label> = tags
        .iter()
        .map(|(k, v)| (super::prometheus::name(k), v.to_string()))
        .chain(extra.iter().cloned())
        .filter(|(_, v)| !v.is_empty())
        .map(|(name, value)| pb::Label { name, value })
        .collect();
    // Sorted by name and unique, as the protocol asks.
    labels.sort_by(|a, b| a.name.cmp(&b.name));
    labels.dedup_by(|a, b| a.name == b.name);
    for (suffix, value) in values(slot, unit) {
        if !value.is_finite() {
            continue;
        }
        let name = if suffix.is_empty() {
            base.clone()
        } else {
            format!("{base}_{suffix}")
        };
        let mut l = Vec::with_capacity(labels.len() + 1);
        l.push(pb::Label {
            name: "__name__".into(),
            value: name,
        });
        l.extend(labels.iter().cloned());
        out.push(pb::TimeSeries {
            labels: l,
            samples: vec![pb::Sample {
                value,
                timestamp: ts,
            }],
        });
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub struct RemoteWriteOutput {
    opts: RemoteWriteOptions,
    pusher: Option<Pusher>,
    last_push: Option<Duration>,
    last_ts: i64,
}

impl RemoteWriteOutput {
    pub fn start(opts: RemoteWriteOptions) -> Result<Self, String> {
        let pusher = Pusher::start(
            format!("prometheus-rw={}", opts.url),
            opts.target.clone(),
            None,
            opts.timeout,
        )?;
        Ok(Self {
            opts,
            pusher: Some(pusher),
            last_push: None,
            last_ts: 0,
        })
    }

    fn push(&mut self, agg: &Aggregator, elapsed: Duration, last: bool) {
        if !last && self.last_push.is_some_and(|t| elapsed - t < self.opts.push) {
            return;
        }
        self.last_push = Some(elapsed);
        // One sample per series and timestamp: never send the same one twice.
        let ts = now_ms().max(self.last_ts + 1);
        self.last_ts = ts;
        self.send(request(agg, &self.opts.tags, ts));
    }

    /// The end-of-run answers, as one more request after the last.
    pub(super) fn answers(&mut self, items: &[super::Answer]) {
        let ts = now_ms().max(self.last_ts + 1);
        self.last_ts = ts;
        let mut out = Vec::new();
        for a in items {
            series(
                &mut out,
                &a.metric,
                a.unit,
                &a.tags,
                &self.opts.tags,
                &a.slot,
                ts,
            );
        }
        self.send(pb::WriteRequest { timeseries: out });
    }

    fn send(&self, req: pb::WriteRequest) {
        let points = req.timeseries.len() as u64;
        let raw = prost::Message::encode_to_vec(&req);
        match snap::raw::Encoder::new().compress_vec(&raw) {
            Ok(body) => {
                if let Some(p) = &self.pusher {
                    p.send(body, points);
                }
            }
            Err(e) => tracing::warn!("prometheus-rw: cannot compress: {e}"),
        }
    }

    pub fn dropped(&self) -> u64 {
        self.pusher.as_ref().map_or(0, |p| p.dropped())
    }

    pub fn finish(mut self) -> Option<String> {
        self.pusher.take().and_then(|p| p.finish())
    }
}

impl Observer for RemoteWriteOutput {
    fn on_interval(&mut self, agg: &Aggregator, elapsed: Duration) -> Option<String> {
        self.push(agg, elapsed, false);
        None
    }

    fn on_end(&mut self, agg: &Aggregator, elapsed: Duration) {
        self.push(agg, elapsed, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_remote_write_urls() {
        let o = parse("x", "http://127.0.0.1:9090/api/v1/write,push=1s,tag=env:ci").unwrap();
        assert_eq!(o.target.authority, "127.0.0.1:9090");
        assert_eq!(o.target.path, "/api/v1/write");
        assert_eq!(o.push, Duration::from_secs(1));
        let o = parse("x", "https://h/api/v1/write,insecure").unwrap();
        assert_eq!(o.target.authority, "h:9090");
        assert!(
            o.target
                .tls
                .as_ref()
                .is_some_and(|t| t.insecure && t.host == "h")
        );
        for bad in ["localhost:9090", "ftp://h/api/v1/write", "http://h/w,x=1"] {
            assert!(parse("x", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn trends_become_k6_statistics_in_seconds() {
        let mut h = volley_protocols::metrics::new_histogram();
        for us in [1_000u64, 2_000, 3_000] {
            h.record(us).unwrap();
        }
        let v = values(&Slot::Trend(Box::new(h)), Unit::Time);
        let get = |k: &str| v.iter().find(|(n, _)| *n == k).unwrap().1;
        assert_eq!(get("count"), 3.0);
        assert!((get("avg") - 0.002).abs() < 1e-5);
        assert!((get("sum") - 0.006).abs() < 1e-4);
        assert_eq!(values(&Slot::Counter(7), Unit::Default), [("total", 7.0)]);
        assert_eq!(
            values(&Slot::Rate { hits: 1, total: 4 }, Unit::Default),
            [("rate", 0.25), ("total", 1.0), ("observations_total", 4.0)]
        );
    }
}
