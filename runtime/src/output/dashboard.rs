//! `--dashboard 127.0.0.1:5665`: a live web page while the run goes. One
//! self-contained HTML page (no network assets) and a server-sent-events
//! stream (`/events`) of the same per-second intervals the other outputs
//! get: per scenario the second's points, the totals so far, the thresholds
//! judged on them, and the errors. A page opened late replays the seconds
//! it missed. After the run the last event carries the final totals; the
//! page stays up `--dashboard-linger`.

use super::rows::Values;
use super::server::{Names, ServeError, Server};
use crate::aggregate::Aggregator;
use crate::engine::Observer;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Bytes, Frame};
use serde::Serialize;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;
use volley_model::judge;
use volley_model::point::Point;
use volley_model::threshold::ThresholdSet;
use volley_protocols::metrics::{MetricKind, Slot};

const PAGE: &str = include_str!("dashboard.html");
/// Seconds replayed to a page opened late (older ones are dropped first).
const HISTORY: usize = 3600;

#[derive(Default, Serialize)]
struct Scenario {
    /// The most VUs busy at once in the second.
    vus: f64,
    /// Metric name to the second's values (times in ms).
    m: BTreeMap<String, Values>,
}

#[derive(Default, Serialize)]
struct Total {
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<f64>,
}

#[derive(Serialize)]
struct Verdict {
    key: String,
    source: String,
    /// None: no data yet.
    ok: Option<bool>,
    observed: Option<f64>,
}

#[derive(Serialize)]
struct Event<'a> {
    t: u64,
    elapsed: f64,
    running: bool,
    scenarios: BTreeMap<&'a str, Scenario>,
    totals: BTreeMap<String, Total>,
    thresholds: Vec<Verdict>,
    errors: BTreeMap<String, u64>,
}

/// The events so far: `(kind, JSON)`, and how many older ones were dropped.
#[derive(Default)]
struct History {
    events: std::collections::VecDeque<(&'static str, Arc<str>)>,
    dropped: u64,
}

struct Shared {
    history: Mutex<History>,
    tx: broadcast::Sender<Bytes>,
}

fn frame(kind: &str, json: &str) -> Bytes {
    Bytes::from(format!("event: {kind}\ndata: {json}\n\n"))
}

pub struct Dashboard {
    pub addr: SocketAddr,
    pub linger: Duration,
    thresholds: Vec<ThresholdSet>,
    shared: Arc<Shared>,
    seen: u64,
    /// Stops serving when the dashboard is dropped.
    _server: Server,
}

/// `ADDR` of `--dashboard` (loopback unless told otherwise).
pub fn parse_addr(s: &str) -> Result<SocketAddr, AddrError> {
    s.parse().map_err(|_| AddrError(s.into()))
}

/// `--dashboard ADDR` that is not an address.
#[derive(Debug, thiserror::Error)]
#[error("--dashboard {0:?}: not an address to listen on; write e.g. --dashboard 127.0.0.1:5665")]
pub struct AddrError(String);

impl Dashboard {
    /// Bind now (a busy port fails before the run) and serve on a thread.
    pub fn start(
        addr: SocketAddr,
        linger: Duration,
        thresholds: Vec<ThresholdSet>,
    ) -> Result<Self, ServeError> {
        let (tx, _) = broadcast::channel(64);
        let shared = Arc::new(Shared {
            history: Mutex::new(Default::default()),
            tx,
        });
        let serving = shared.clone();
        let names = Names {
            flag: "--dashboard ",
            title: "the dashboard",
            thread: "volley-dashboard",
            log: "dashboard",
        };
        let (server, addr) = Server::start(addr, names, move |req| respond(req, &serving))?;
        eprintln!("dashboard: http://{addr}/");
        Ok(Self {
            addr,
            linger,
            thresholds,
            shared,
            seen: 0,
            _server: server,
        })
    }

    fn publish(&mut self, agg: &Aggregator, elapsed: Duration, running: bool) {
        let defs = agg.registry.metrics();
        let series = agg.registry.all_series();
        let mut events = Vec::new();
        let intervals = agg.since(self.seen);
        self.seen = agg.completed();
        for (i, iv) in intervals.iter().enumerate() {
            let span = (elapsed.as_secs_f64() - iv.index as f64).clamp(1e-3, 1.0);
            let mut scenarios: BTreeMap<&str, Scenario> = BTreeMap::new();
            for (r, point) in &iv.rollups {
                let Some(roll) = agg.rollups.get(*r as usize) else {
                    continue;
                };
                let def = &defs[roll.metric as usize];
                scenarios
                    .entry(roll.scenario.as_str())
                    .or_default()
                    .m
                    .insert(def.name.to_string(), Values::of(point, def.unit, span));
            }
            for (id, point) in &iv.points {
                let Some(info) = series.get(*id as usize) else {
                    continue;
                };
                if &*defs[info.metric as usize].name != "vus" {
                    continue;
                }
                // The most VUs busy at once in the second: an arrival-rate VU
                // is busy for milliseconds, the instant's count mostly 0.
                if let (Point::Gauge { max, .. }, Some(sc)) = (point, info.tags.get("scenario")) {
                    scenarios.entry(sc).or_default().vus += max;
                }
            }
            // Totals and thresholds as of the latest second only.
            let last = i + 1 == intervals.len();
            let (totals, thresholds, errors) = if last {
                self.totals(agg, elapsed)
            } else {
                Default::default()
            };
            let ev = Event {
                t: iv.index,
                elapsed: elapsed.as_secs_f64(),
                running: running || !last,
                scenarios,
                totals,
                thresholds,
                errors,
            };
            if let Ok(json) = serde_json::to_string(&ev) {
                let kind = if ev.running { "point" } else { "end" };
                events.push((kind, json));
            }
        }
        if intervals.is_empty() && !running {
            // The run ended with no new second: still say so, with totals.
            let (totals, thresholds, errors) = self.totals(agg, elapsed);
            let ev = Event {
                t: agg.completed(),
                elapsed: elapsed.as_secs_f64(),
                running,
                scenarios: BTreeMap::new(),
                totals,
                thresholds,
                errors,
            };
            if let Ok(json) = serde_json::to_string(&ev) {
                events.push(("end", json));
            }
        }
        let mut h = self.shared.history.lock().expect("history lock");
        for (kind, json) in events {
            if h.events.len() >= HISTORY {
                h.events.pop_front();
                h.dropped += 1;
            }
            // No page open is fine: nobody to tell.
            let _ = self.shared.tx.send(frame(kind, &json));
            h.events.push_back((kind, json.into()));
        }
    }

    #[allow(clippy::type_complexity)]
    fn totals(
        &self,
        agg: &Aggregator,
        elapsed: Duration,
    ) -> (BTreeMap<String, Total>, Vec<Verdict>, BTreeMap<String, u64>) {
        let defs = agg.registry.metrics();
        let series = agg.registry.all_series();
        let mut totals: BTreeMap<String, Total> = BTreeMap::new();
        let mut errors = BTreeMap::new();
        let mut untagged: BTreeMap<String, f64> = BTreeMap::new();
        for (info, slot) in series.iter().zip(&agg.totals) {
            let def = &defs[info.metric as usize];
            let name: &str = &def.name;
            let t = totals.entry(name.to_string()).or_default();
            match slot {
                Slot::Empty => {}
                Slot::Counter(n) => *t.count.get_or_insert(0) += n,
                Slot::Rate { hits, total } => {
                    *t.count.get_or_insert(0) += hits;
                    *t.total.get_or_insert(0) += total;
                }
                // The aggregator writes a gauge both untagged and per
                // scenario (vus, vus_max): the untagged series is the total.
                Slot::Gauge { last, .. } if info.tags.is_empty() => {
                    untagged.insert(name.to_string(), *last);
                }
                Slot::Gauge { last, .. } => *t.value.get_or_insert(0.0) += last,
                Slot::Trend(h) => *t.count.get_or_insert(0) += h.len(),
            }
            if def.kind == MetricKind::Counter && name == "http_reqs" {
                let n = match slot {
                    Slot::Counter(n) => *n,
                    _ => 0,
                };
                let status = info.tags.get("status").unwrap_or("0");
                let what = match info.tags.get("error") {
                    Some(e) => Some(format!("error {e}")),
                    None if status.parse::<u16>().is_ok_and(|s| s >= 400 || s == 0) => {
                        Some(format!("status {status}"))
                    }
                    None => None,
                };
                if let Some(what) = what {
                    let key = match info.tags.get("name") {
                        Some(n) => format!("{what} ({n})"),
                        None => what,
                    };
                    *errors.entry(key).or_default() += n;
                }
            }
        }
        for (name, v) in untagged {
            totals.entry(name).or_default().value = Some(v);
        }
        let table = agg.totals();
        let mut verdicts = Vec::new();
        for set in &self.thresholds {
            let stats = judge::threshold_stats(&table, set, elapsed);
            for t in &set.items {
                let (ok, observed) = t.eval(&stats);
                verdicts.push(Verdict {
                    key: set.key.clone(),
                    source: t.source.clone(),
                    ok,
                    observed: observed.filter(|v| v.is_finite()),
                });
            }
        }
        (totals, verdicts, errors)
    }
}

impl Observer for Dashboard {
    fn on_interval(&mut self, agg: &Aggregator, elapsed: Duration) -> Option<String> {
        self.publish(agg, elapsed, true);
        None
    }

    fn on_end(&mut self, agg: &Aggregator, elapsed: Duration) {
        self.publish(agg, elapsed, false);
    }
}

type Body = BoxBody<Bytes, Infallible>;

/// The page with the seconds so far inside it, so it shows them as soon as
/// it loads (and a page saved after the run keeps them); the stream then
/// continues from the next one.
fn page(shared: &Shared) -> String {
    let h = shared.history.lock().expect("history lock");
    let mut initial = String::from("[");
    for (i, (kind, json)) in h.events.iter().enumerate() {
        if i > 0 {
            initial.push(',');
        }
        initial.push_str(&format!("[\"{kind}\",{json}]"));
    }
    initial.push(']');
    let next = h.dropped + h.events.len() as u64;
    drop(h);
    // Inside <script>: no "</script>" from a scenario or error name.
    let initial = initial.replace('<', "\\u003c");
    PAGE.replace("/*INITIAL*/[]", &initial)
        .replace("/*NEXT*/0", &next.to_string())
}

fn respond(req: &hyper::Request<hyper::body::Incoming>, shared: &Shared) -> hyper::Response<Body> {
    let plain = |status: u16, ctype: &str, body: Bytes| {
        hyper::Response::builder()
            .status(status)
            .header("content-type", ctype)
            .header("cache-control", "no-store")
            .body(Full::new(body).boxed())
            .expect("a valid response")
    };
    match req.uri().path() {
        "/" => plain(200, "text/html; charset=utf-8", Bytes::from(page(shared))),
        "/events" => {
            // `from=N`: the events the page already holds (it came with them).
            let from: u64 = req
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("from="))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            // Replay and subscribe under the lock: no second missed or repeated.
            let (past, rx) = {
                let h = shared.history.lock().expect("history lock");
                let skip = from.saturating_sub(h.dropped) as usize;
                let past: Vec<Bytes> = h
                    .events
                    .iter()
                    .skip(skip)
                    .map(|(k, j)| frame(k, j))
                    .collect();
                (past, shared.tx.subscribe())
            };
            let replay = futures_util::stream::iter(past.into_iter().map(|b| Ok(Frame::data(b))));
            let live = futures_util::stream::unfold(rx, |mut rx| async move {
                loop {
                    match rx.recv().await {
                        Ok(b) => return Some((Ok(Frame::data(b)), rx)),
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            });
            use futures_util::StreamExt;
            let body = StreamBody::new(replay.chain(live));
            hyper::Response::builder()
                .status(200)
                .header("content-type", "text/event-stream")
                .header("cache-control", "no-store")
                .body(BodyExt::boxed(body))
                .expect("a valid response")
        }
        _ => plain(
            404,
            "text/plain",
            Bytes::from_static(b"the dashboard is at / and its stream at /events\n"),
        ),
    }
}
