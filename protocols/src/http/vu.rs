//! One HTTP VU: owns its connection, renders requests, records what it saw.

use super::check::Response;
use super::conn::{Conn, ConnectTimes, ErrorKind, IoCounters, Origin, Sender};
use super::{Flow, HttpDriver, Request};
use crate::driver::{Iteration, Vu, VuEnv, VuState};
use crate::metrics::{Recorder, SeriesId};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Uri};
use http_body_util::{BodyExt, Full};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

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

struct Exchange {
    status: u16,
    headers: HeaderMap,
    sent_at: Instant,
    headers_at: Instant,
}

pub struct HttpVu {
    d: Arc<HttpDriver>,
    rec: Recorder,
    state: VuState,
    conn: Option<Conn>,
    io: Rc<IoCounters>,
    series: Vec<Vec<Series>>,
    /// Per request: one `checks` series per check, then one per capture.
    check_series: Vec<Vec<SeriesId>>,
    data_sent: SeriesId,
    data_received: SeriesId,
    url: String,
    scratch: String,
    body: Vec<u8>,
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
            state: VuState::new(
                env.index,
                env.seed,
                d.vars,
                d.feeders.clone(),
                d.used_feeders.clone(),
            ),
            series: d.requests.iter().map(|_| Vec::new()).collect(),
            check_series,
            data_sent: rec.series(m.sent, &d.tags),
            data_received: rec.series(m.received, &d.tags),
            rec,
            conn: None,
            io: Rc::default(),
            url: String::new(),
            scratch: String::new(),
            body: Vec::new(),
            d,
        }
    }

    fn series(&mut self, i: usize, status: u16, error: Option<ErrorKind>) -> &Series {
        let pos = self.series[i]
            .iter()
            .position(|s| s.status == status && s.error == error);
        let pos = match pos {
            Some(p) => p,
            None => {
                let r = &self.d.requests[i];
                let mut tags = self
                    .d
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
                let m = &self.d.metrics;
                let s = |id| self.rec.series(id, &tags);
                let entry = Series {
                    status,
                    error,
                    reqs: s(m.reqs),
                    duration: s(m.duration),
                    waiting: s(m.waiting),
                    connecting: s(m.connecting),
                    tls: s(m.tls),
                    receiving: s(m.receiving),
                    failed: s(m.failed),
                };
                self.series[i].push(entry);
                self.series[i].len() - 1
            }
        };
        &self.series[i][pos]
    }

    async fn request(&mut self, i: usize, scheduled: Option<Instant>) {
        let d = self.d.clone();
        let r = &d.requests[i];
        let start = Instant::now();
        let sent_before = self.io.sent.get();
        let received_before = self.io.received.get();
        let mut times = ConnectTimes::default();

        let outcome = match self.build(r) {
            Ok(req) => {
                match tokio::time::timeout(r.timeout, self.exchange(r, req, &mut times)).await {
                    Ok(result) => result,
                    Err(_) => {
                        // The connection is mid-exchange: it cannot be reused.
                        self.conn = None;
                        Err(ErrorKind::Timeout)
                    }
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
                self.body.clear();
                (
                    0,
                    Some(e),
                    HeaderMap::new(),
                    start + times.connecting + times.tls,
                    end,
                )
            }
        };
        // k6: duration is sending + waiting + receiving, without connecting;
        // open models measure from the scheduled start instead.
        let duration = end - t0.unwrap_or(sent_at);
        let expected = error.is_none() && r.is_expected(status);
        let rec = self.rec.clone();
        let s = self.series(i, status, error);
        rec.add(s.reqs, 1);
        rec.time(s.duration, duration);
        rec.time(s.waiting, headers_at.saturating_duration_since(sent_at));
        rec.time(s.receiving, end.saturating_duration_since(headers_at));
        rec.time(s.connecting, times.connecting);
        rec.time(s.tls, times.tls);
        rec.rate(s.failed, !expected);
        rec.add(self.data_sent, self.io.sent.get() - sent_before);
        rec.add(self.data_received, self.io.received.get() - received_before);

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

    /// Render the request for this iteration.
    fn build(&mut self, r: &Request) -> Result<http::Request<Full<Bytes>>, ErrorKind> {
        let uri = match &r.static_uri {
            Some(u) => u.clone(),
            None => {
                self.url.clear();
                r.url.render(&mut self.state.scope(&[]), &mut self.url);
                Uri::try_from(self.url.as_str()).map_err(|_| ErrorKind::InvalidUrl)?
            }
        };
        let mut headers = r.static_headers.clone();
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
        let mut req = http::Request::new(Full::new(body));
        *req.method_mut() = r.method.clone();
        *req.uri_mut() = uri;
        *req.headers_mut() = headers;
        Ok(req)
    }

    async fn exchange(
        &mut self,
        r: &Request,
        mut req: http::Request<Full<Bytes>>,
        times: &mut ConnectTimes,
    ) -> Result<Exchange, ErrorKind> {
        let origin = Origin::of(req.uri()).map_err(|_| ErrorKind::InvalidUrl)?;
        let full_uri = req.uri().clone();
        let mut reused = true;
        loop {
            let usable =
                matches!(&self.conn, Some(c) if c.origin == origin && !c.sender.is_closed());
            if !usable {
                self.conn = None;
                reused = false;
                self.conn = Some(self.d.connector.connect(&origin, &self.io, times).await?);
            }
            let conn = self.conn.as_mut().expect("connected above");
            // HTTP/1.1 sends origin-form plus Host; HTTP/2 needs the full URI.
            if !conn.sender.is_h2() {
                if !req.headers().contains_key(http::header::HOST)
                    && let Some(a) = full_uri.authority()
                    && let Ok(v) = HeaderValue::from_str(a.as_str())
                {
                    req.headers_mut().insert(http::header::HOST, v);
                }
                if let Some(pq) = full_uri.path_and_query() {
                    *req.uri_mut() = Uri::from(pq.clone());
                }
            } else {
                *req.uri_mut() = full_uri.clone();
            }
            let sent_at = Instant::now();
            let result = match &mut conn.sender {
                Sender::H1(s) => match s.ready().await {
                    Ok(()) => s.try_send_request(req).await,
                    Err(e) => {
                        self.conn = None;
                        if reused {
                            continue;
                        }
                        return Err(ErrorKind::from_hyper(&e));
                    }
                },
                Sender::H2(s) => match s.ready().await {
                    Ok(()) => s.try_send_request(req).await,
                    Err(e) => {
                        self.conn = None;
                        if reused {
                            continue;
                        }
                        return Err(ErrorKind::from_hyper(&e));
                    }
                },
            };
            match result {
                Ok(resp) => {
                    let headers_at = Instant::now();
                    let (parts, mut body) = resp.into_parts();
                    self.body.clear();
                    while let Some(frame) = body.frame().await {
                        match frame {
                            Ok(f) => {
                                if r.needs_body
                                    && let Some(data) = f.data_ref()
                                {
                                    self.body.extend_from_slice(data);
                                }
                            }
                            Err(e) => {
                                self.conn = None;
                                return Err(ErrorKind::from_hyper(&e));
                            }
                        }
                    }
                    return Ok(Exchange {
                        status: parts.status.as_u16(),
                        headers: parts.headers,
                        sent_at,
                        headers_at,
                    });
                }
                Err(mut e) => {
                    self.conn = None;
                    // A kept-alive connection the server had closed: the request
                    // never left, so send it again on a fresh connection.
                    match e.take_message() {
                        Some(back) if reused => {
                            req = back;
                            *req.uri_mut() = full_uri.clone();
                            continue;
                        }
                        _ => return Err(ErrorKind::from_hyper(e.error())),
                    }
                }
            }
        }
    }
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
                let i = self.d.pick_weighted(&mut self.state.rng);
                self.request(i, it.scheduled).await;
            }
        }
    }
}
