//! One HTTP VU: owns its connection, renders requests, records what it saw.
//!
//! The per-request path avoids work that can be done once: static URLs are
//! parsed at build time, the header map is rebuilt in place, HTTP/1.1 goes
//! through our lean connection (link.rs, h1.rs) with no second task or channel,
//! the timeout timer is one per VU and only re-armed, series ids are cached.

use super::check::Response;
use super::conn::{ConnectTimes, ErrorKind, Target};
use super::link::Link;
use super::{Flow, HttpDriver, Request};
use crate::driver::{Iteration, Vu, VuEnv, VuState};
use crate::metrics::{Recorder, SeriesId};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Uri};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;
use tokio::time::Sleep;

/// Series ids of one (request, status, error) combination.
struct Series {
    status: u16,
    error: Option<ErrorKind>,
    reqs: SeriesId,
    duration: SeriesId,
    waiting: SeriesId,
    connecting: SeriesId,
    tls: SeriesId,
    receiving: SeriesId,
    failed: SeriesId,
}

pub struct HttpVu {
    d: Arc<HttpDriver>,
    rec: Recorder,
    state: VuState,
    link: Link,
    /// The request's headers, rebuilt in place for each request.
    headers: HeaderMap,
    /// The response body, when a check or capture reads it.
    body: Vec<u8>,
    timer: Pin<Box<Sleep>>,
    series: Vec<Vec<Series>>,
    /// Per request: one `checks` series per check, then one per capture.
    check_series: Vec<Vec<SeriesId>>,
    data_sent: SeriesId,
    data_received: SeriesId,
    url: String,
    scratch: String,
}

impl HttpVu {
    pub(super) fn new(d: Arc<HttpDriver>, env: VuEnv) -> Self {
        let rec = env.recorder;
        let m = &d.metrics;
        let check_series = d
            .requests
            .iter()
            .map(|r| {
                let tags = d.tags.with("name", r.name.clone());
                r.checks
                    .iter()
                    .map(|c| c.name.clone())
                    .chain(r.captures.iter().map(|c| format!("captured {}", c.name)))
                    .map(|check| rec.series(m.checks, &tags.with("check", check)))
                    .collect()
            })
            .collect();
        Self {
            state: d.inputs.state(env.index, env.seed),
            series: d.requests.iter().map(|_| Vec::new()).collect(),
            check_series,
            data_sent: rec.series(m.sent, &d.tags),
            data_received: rec.series(m.received, &d.tags),
            rec,
            link: Link::default(),
            headers: HeaderMap::new(),
            body: Vec::new(),
            timer: Box::pin(tokio::time::sleep(std::time::Duration::ZERO)),
            url: String::new(),
            scratch: String::new(),
            d,
        }
    }

    async fn request(&mut self, i: usize, scheduled: Option<Instant>) {
        let d = &*self.d;
        let r = &d.requests[i];
        let start = Instant::now();
        let (sent_before, received_before) = self.link.bytes();
        let mut times = ConnectTimes::default();

        let parsed;
        let target = match &r.static_target {
            Some(t) => Ok(t),
            None => {
                self.url.clear();
                r.url.render(&mut self.state.scope(&[]), &mut self.url);
                parsed = Uri::try_from(self.url.as_str())
                    .map_err(|_| ErrorKind::InvalidUrl)
                    .and_then(Target::parse);
                if parsed.is_err() {
                    r.tell_invalid_url(&self.url);
                }
                parsed.as_ref().map_err(|e| *e)
            }
        };
        let outcome = match target {
            Ok(target) => {
                let headers = &mut self.headers;
                headers.clear();
                for (k, v) in &r.static_headers {
                    headers.append(k.clone(), v.clone());
                }
                for (name, t) in &r.dynamic_headers {
                    self.scratch.clear();
                    t.render(&mut self.state.scope(&[]), &mut self.scratch);
                    if let Ok(v) = HeaderValue::from_str(&self.scratch) {
                        headers.insert(name.clone(), v);
                    }
                }
                let body = match &r.body {
                    Some(t) => {
                        let mut s = String::new();
                        t.render(&mut self.state.scope(&[]), &mut s);
                        Bytes::from(s)
                    }
                    None => Bytes::new(),
                };
                // Re-arming to a later deadline is a cheap update in tokio's wheel.
                self.timer.as_mut().reset((start + r.timeout).into());
                let sink = r.needs_body.then_some(&mut self.body);
                let exchange = self.link.exchange(
                    &d.connector,
                    &r.method,
                    target,
                    &self.headers,
                    &body,
                    r.needs_headers,
                    sink,
                    &mut times,
                );
                tokio::select! {
                    biased;
                    res = exchange => res,
                    _ = self.timer.as_mut() => Err(ErrorKind::Timeout),
                }
            }
            Err(e) => Err(e),
        };
        let end = Instant::now();
        let t0 = match scheduled {
            Some(s) if s < start => Some(s),
            _ => None,
        };

        let (status, error, headers, sent_at, headers_at) = match outcome {
            Ok(x) => (x.status, None, x.headers, x.sent_at, x.headers_at),
            Err(e) => {
                if e == ErrorKind::Timeout {
                    // Cut mid-exchange: the connection cannot be reused.
                    self.link.close();
                }
                self.body.clear();
                let at = start + times.connecting + times.tls;
                (0, Some(e), HeaderMap::new(), at, end)
            }
        };
        // k6: duration is sending + waiting + receiving, without connecting;
        // open models measure from the scheduled start instead.
        let duration = end - t0.unwrap_or(sent_at);
        let expected = error.is_none() && r.is_expected(status);
        let rec = &self.rec;
        let s = series(&mut self.series[i], rec, d, r, status, error);
        rec.add(s.reqs, 1);
        rec.time(s.duration, duration);
        rec.time(s.waiting, headers_at.saturating_duration_since(sent_at));
        rec.time(s.receiving, end.saturating_duration_since(headers_at));
        rec.time(s.connecting, times.connecting);
        rec.time(s.tls, times.tls);
        rec.rate(s.failed, !expected);
        let (sent, received) = self.link.bytes();
        rec.add(self.data_sent, sent - sent_before);
        rec.add(self.data_received, received - received_before);

        if !r.checks.is_empty() || !r.captures.is_empty() {
            let json = if r.needs_json {
                serde_json::from_slice::<serde_json::Value>(&self.body).ok()
            } else {
                None
            };
            let resp = Response {
                status,
                headers: &headers,
                body: &self.body,
                json: json.as_ref(),
                duration,
            };
            let ids = &self.check_series[i];
            for (c, id) in r.checks.iter().zip(ids) {
                rec.rate(*id, c.eval(&resp));
            }
            for (c, id) in r.captures.iter().zip(&ids[r.checks.len()..]) {
                let value = c.extract(&resp);
                rec.rate(*id, value.is_some());
                self.state.vars[c.var] = value.unwrap_or_default();
            }
        }
        if let Some(tt) = &r.think_time {
            tokio::time::sleep(tt.pick(&mut self.state.rng)).await;
        }
    }
}

/// The cached series of request `r` for this status and error.
fn series<'a>(
    cache: &'a mut Vec<Series>,
    rec: &Recorder,
    d: &HttpDriver,
    r: &Request,
    status: u16,
    error: Option<ErrorKind>,
) -> &'a Series {
    if let Some(p) = cache
        .iter()
        .position(|s| s.status == status && s.error == error)
    {
        return &cache[p];
    }
    let mut tags = d
        .tags
        .with("name", r.name.clone())
        .with("method", r.method.as_str())
        .with("status", status.to_string())
        .with(
            "expected_response",
            (error.is_none() && r.is_expected(status)).to_string(),
        );
    if let Some(e) = error {
        tags = tags.with("error", e.tag());
    }
    let m = &d.metrics;
    let s = |id| rec.series(id, &tags);
    cache.push(Series {
        status,
        error,
        reqs: s(m.reqs),
        duration: s(m.duration),
        waiting: s(m.waiting),
        connecting: s(m.connecting),
        tls: s(m.tls),
        receiving: s(m.receiving),
        failed: s(m.failed),
    });
    cache.last().expect("just pushed")
}

impl Vu for HttpVu {
    async fn iteration(&mut self, it: Iteration) {
        self.state.begin(it.number);
        match self.d.flow {
            Flow::Sequence => {
                for i in 0..self.d.requests.len() {
                    self.request(i, if i == 0 { it.scheduled } else { None })
                        .await;
                }
            }
            Flow::Weighted => {
                let i = self.d.weights.pick(&mut self.state.rng);
                self.request(i, it.scheduled).await;
            }
        }
    }
}
