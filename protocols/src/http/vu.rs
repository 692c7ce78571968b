//! One HTTP VU: owns its connection, renders requests, records what it saw.
//!
//! The per-request path avoids work that can be done once: static URLs are
//! parsed at build time, header maps are recycled, HTTP/1.1 goes through our
//! lean connection (h1.rs) with no second task or channel,
//! the timeout timer is one per VU and only re-armed, series ids are cached.

use super::check::Response;
use super::conn::{Conn, ConnectTimes, Connector, ErrorKind, IoCounters, Origin, Sender, Target};
use super::h1::{self, H1};
use super::{Flow, HttpDriver, Request};
use crate::driver::{Iteration, Vu, VuEnv, VuState};
use crate::metrics::{Recorder, SeriesId};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Uri};
use http_body_util::{BodyExt, Full};
use std::pin::Pin;
use std::rc::Rc;
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

struct Exchange {
    status: u16,
    headers: HeaderMap,
    sent_at: Instant,
    headers_at: Instant,
}

/// A VU's connection: our lean HTTP/1.1, or hyper for HTTP/2.
enum Link {
    H1 { origin: Origin, conn: H1 },
    H2(Conn),
}

/// The VU's connection and the buffers it reuses.
struct Net {
    link: Option<Link>,
    io: Rc<IoCounters>,
    body: Vec<u8>,
    /// The request being written (HTTP/1.1).
    out: Vec<u8>,
    /// A header map from an earlier request, cleared and reused.
    spare: Option<HeaderMap>,
}

pub struct HttpVu {
    d: Arc<HttpDriver>,
    rec: Recorder,
    state: VuState,
    net: Net,
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
            net: Net {
                link: None,
                io: Rc::default(),
                body: Vec::new(),
                out: Vec::new(),
                spare: None,
            },
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
        let sent_before = self.net.io.sent.get();
        let received_before = self.net.io.received.get();
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
                parsed.as_ref().map_err(|e| *e)
            }
        };
        let outcome = match target {
            Ok(target) => {
                let mut headers = self.net.spare.take().unwrap_or_default();
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
                let exchange =
                    self.net
                        .exchange(&d.connector, r, target, headers, body, &mut times);
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
                    self.net.link = None;
                }
                self.net.body.clear();
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
        rec.add(self.data_sent, self.net.io.sent.get() - sent_before);
        rec.add(
            self.data_received,
            self.net.io.received.get() - received_before,
        );

        if !r.checks.is_empty() || !r.captures.is_empty() {
            let json = if r.needs_json {
                serde_json::from_slice::<serde_json::Value>(&self.net.body).ok()
            } else {
                None
            };
            let resp = Response {
                status,
                headers: &headers,
                body: &self.net.body,
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
        let mut headers = headers;
        headers.clear();
        self.net.spare = Some(headers);
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

impl Net {
    async fn exchange(
        &mut self,
        connector: &Connector,
        r: &Request,
        target: &Target,
        headers: HeaderMap,
        body: Bytes,
        times: &mut ConnectTimes,
    ) -> Result<Exchange, ErrorKind> {
        let mut headers = Some(headers);
        let mut reused = true;
        loop {
            let usable = match &mut self.link {
                Some(Link::H1 { origin, conn }) => *origin == target.origin && conn.is_reusable(),
                Some(Link::H2(c)) => c.origin == target.origin && !c.sender.is_closed(),
                None => false,
            };
            if !usable {
                self.link = None;
                reused = false;
                // Boxed: the TLS handshake's state machine would otherwise make
                // every request's future (moved on each call) several KB.
                let (stream, h2) =
                    Box::pin(connector.connect_stream(&target.origin, &self.io, times)).await?;
                self.link = Some(if h2 {
                    Link::H2(Box::pin(connector.handshake_on(&target.origin, stream, true)).await?)
                } else {
                    Link::H1 {
                        origin: target.origin.clone(),
                        conn: H1::new(stream),
                    }
                });
            }
            let outcome = match self.link.as_mut().expect("connected above") {
                Link::H1 { conn, .. } => {
                    let hm = headers
                        .as_ref()
                        .expect("headers are kept for HTTP/1.1 retries");
                    self.out.clear();
                    let path = target.path.path_and_query().map_or("/", |p| p.as_str());
                    h1::write_request(
                        &mut self.out,
                        &r.method,
                        path,
                        target.host.as_bytes(),
                        hm,
                        &body,
                    );
                    let sent_at = Instant::now();
                    let sink = r.needs_body.then_some(&mut self.body);
                    match h1_exchange(conn, &self.out, r, sink).await {
                        Ok((status, response_headers, headers_at)) => Ok(Exchange {
                            status,
                            headers: response_headers,
                            sent_at,
                            headers_at,
                        }),
                        // The server had closed this kept-alive connection before
                        // reading the request: send it again on a fresh one.
                        Err(_)
                            if reused && conn.nothing_received() && h1::idempotent(&r.method) =>
                        {
                            self.link = None;
                            continue;
                        }
                        Err(e) => Err(e),
                    }
                }
                Link::H2(c) => {
                    let mut req = http::Request::new(Full::new(body.clone()));
                    *req.method_mut() = r.method.clone();
                    *req.headers_mut() = headers.take().unwrap_or_default();
                    *req.uri_mut() = target.full.clone();
                    let sent_at = Instant::now();
                    match h2_exchange(&mut c.sender, req, r, &mut self.body).await {
                        Ok((status, headers, headers_at)) => Ok(Exchange {
                            status,
                            headers,
                            sent_at,
                            headers_at,
                        }),
                        Err(_) if reused => {
                            // A closed multiplexed connection: one retry, fresh.
                            self.link = None;
                            reused = false;
                            headers = Some(HeaderMap::new());
                            continue;
                        }
                        Err(e) => Err(e),
                    }
                }
            };
            let closed = match &self.link {
                Some(Link::H1 { conn, .. }) => conn.is_closed(),
                _ => false,
            };
            if closed || outcome.is_err() {
                self.link = None;
            }
            if let Some(mut hm) = headers {
                hm.clear();
                self.spare = Some(hm);
            }
            return outcome;
        }
    }
}

async fn h1_exchange(
    conn: &mut H1,
    request: &[u8],
    r: &Request,
    sink: Option<&mut Vec<u8>>,
) -> Result<(u16, HeaderMap, Instant), ErrorKind> {
    conn.send(request).await?;
    let head = conn.read_head(&r.method, r.needs_headers).await?;
    let headers_at = Instant::now();
    let mut sink = sink;
    if let Some(b) = sink.as_deref_mut() {
        b.clear();
    }
    conn.read_body(&head, sink).await?;
    Ok((head.status, head.headers, headers_at))
}

async fn h2_exchange(
    sender: &mut Sender,
    req: http::Request<Full<Bytes>>,
    r: &Request,
    body_buf: &mut Vec<u8>,
) -> Result<(u16, HeaderMap, Instant), ErrorKind> {
    let Sender::H2(s) = sender else {
        return Err(ErrorKind::Protocol);
    };
    s.ready().await.map_err(|e| ErrorKind::from_hyper(&e))?;
    let resp = s
        .send_request(req)
        .await
        .map_err(|e| ErrorKind::from_hyper(&e))?;
    let headers_at = Instant::now();
    let status = resp.status().as_u16();
    let (mut parts, mut body) = resp.into_parts();
    if !r.needs_headers {
        parts.headers.clear();
    }
    body_buf.clear();
    while let Some(frame) = body.frame().await {
        let f = frame.map_err(|e| ErrorKind::from_hyper(&e))?;
        if r.needs_body
            && let Some(data) = f.data_ref()
        {
            body_buf.extend_from_slice(data);
        }
    }
    Ok((status, parts.headers, headers_at))
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
