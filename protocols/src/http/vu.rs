//! One HTTP VU: owns its connection and cookie jar, renders requests,
//! follows redirects, records what it saw.
//!
//! The per-request path avoids work that can be done once: static URLs are
//! parsed at build time, the header map is rebuilt in place, HTTP/1.1 goes
//! through our lean connection (link.rs, h1.rs) with no second task or channel,
//! the timeout timer is one per VU and only re-armed, series ids are cached.
//! An empty cookie jar and a response without Set-Cookie, Location or
//! Retry-After cost nothing: those headers are only looked at by name.

use super::check::Response;
use super::conn::{ConnectTimes, ErrorKind, Target};
use super::cookies::Jar;
use super::link::{BodySink, Keep, Link};
use super::record::Streamed;
use super::sse::Sse;
use super::{Flow, HttpDriver, Request};
use crate::driver::{Iteration, Vu, VuEnv, VuState};
use crate::metrics::{Recorder, SeriesId};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Uri, header};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::time::Sleep;
use url::Url;

/// Series ids of one (hop, method, status, error) combination.
struct Series {
    /// 0 for the request itself, N for its N-th redirect.
    hop: u32,
    /// An unnamed request's redirect hop is named by its own URL.
    hop_name: Option<Box<str>>,
    method: Method,
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

#[derive(Clone, Copy)]
struct StreamSeries {
    first_event: SeriesId,
    events: SeriesId,
    gap: SeriesId,
}

/// A request's series for one rendering of its tags.
struct Entry {
    tags: crate::metrics::Tags,
    http: Vec<Series>,
    /// One per `record` entry of the request.
    records: Vec<SeriesId>,
    stream: Option<StreamSeries>,
    throttled: Option<SeriesId>,
}

/// A request's entries: one when its tags are fixed, else one per
/// rendering of its templated tags.
#[derive(Default)]
struct Entries {
    fixed: Option<Entry>,
    by_tags: HashMap<Box<str>, Entry>,
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
    entries: Vec<Entries>,
    /// Per request: one `checks` series per check, then one per capture.
    check_series: Vec<Vec<SeriesId>>,
    /// `group_duration` per group.
    group_series: Vec<SeriesId>,
    data_sent: SeriesId,
    data_received: SeriesId,
    url: String,
    scratch: String,
    /// The rendered values of a request's templated tags.
    key: String,
    jar: Option<Jar>,
    cookie: String,
    sse_line: Vec<u8>,
    sse_data: Vec<u8>,
    /// The first iteration is over: `once` requests are done.
    once_done: bool,
    /// The group being timed: its index, start, and the end of its last request.
    open_group: Option<(usize, Instant, Instant)>,
    /// A strict driver's (`[setup]`, `[teardown]`) first failed request.
    failure: Option<String>,
}

impl HttpVu {
    pub(super) fn new(d: Arc<HttpDriver>, env: VuEnv) -> Self {
        let rec = env.recorder;
        let m = &d.metrics;
        let check_series = d
            .requests
            .iter()
            .map(|r| {
                let mut tags = d.tags.with("name", r.name.clone());
                if let Some(g) = r.group {
                    tags = tags.with("group", d.groups[g].clone());
                }
                r.checks
                    .iter()
                    .map(|c| c.name.clone())
                    .chain(r.captures.iter().map(|c| format!("captured {}", c.name)))
                    .map(|check| rec.series(m.checks, &tags.with("check", check)))
                    .collect()
            })
            .collect();
        let group_series = d
            .groups
            .iter()
            .map(|g| rec.series(m.group_duration, &d.tags.with("group", g.clone())))
            .collect();
        Self {
            state: d.inputs.state(env.index, env.seed),
            entries: d.requests.iter().map(|_| Entries::default()).collect(),
            check_series,
            group_series,
            data_sent: rec.series(m.sent, &d.tags),
            data_received: rec.series(m.received, &d.tags),
            rec,
            link: d.sharing.map_or_else(Link::default, Link::shared),
            headers: HeaderMap::new(),
            body: Vec::new(),
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            url: String::new(),
            scratch: String::new(),
            key: String::new(),
            jar: d.cookies.then(Jar::default),
            cookie: String::new(),
            sse_line: Vec::new(),
            sse_data: Vec::new(),
            once_done: false,
            open_group: None,
            failure: None,
            d,
        }
    }

    /// Record the open group's duration, if one is open.
    fn close_group(&mut self) {
        if let Some((g, start, end)) = self.open_group.take() {
            self.rec
                .time(self.group_series[g], end.saturating_duration_since(start));
        }
    }

    /// One request of the flow, timed into its group.
    async fn step(&mut self, i: usize, it: &Iteration, first: bool) {
        let group = self.d.requests[i].group;
        if self.open_group.map(|g| g.0) != group {
            self.close_group();
            if let Some(g) = group {
                let now = Instant::now();
                self.open_group = Some((g, now, now));
            }
        }
        let end = self
            .request(i, it, if first { it.scheduled } else { None })
            .await;
        if let Some(g) = &mut self.open_group {
            g.2 = end;
        }
        // Here, not in `request`: its locals are gone while the VU thinks.
        if let Some(tt) = self.d.requests[i].think_time {
            tokio::time::sleep(tt.pick(&mut self.state.rng)).await;
        }
    }

    /// Send request `i` and follow its redirects; returns when its last
    /// response ended (before any Retry-After wait).
    async fn request(&mut self, i: usize, it: &Iteration, scheduled: Option<Instant>) -> Instant {
        let d = &*self.d;
        let r = &d.requests[i];
        let start = Instant::now();

        self.key.clear();
        for (n, (_, t)) in r.dynamic_tags.iter().enumerate() {
            if n > 0 {
                self.key.push('\u{1f}');
            }
            t.render(&mut self.state.scope(&[]), &mut self.key);
        }

        let parsed;
        let first_target = match &r.static_target {
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
        // The URL of the hop being sent, when the jar or a redirect needs it.
        // Boxed, as `hop_target` below: rare, and would grow every future.
        let mut hop_url: Option<Box<Url>> = None;
        let mut body = Bytes::new();
        if first_target.is_ok() {
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
            body = r.body.render(&mut self.state.scope(&[]));
            if !r.cookies.is_empty()
                && let Some(jar) = &mut self.jar
                && let Some(u) = url_of(r, 0, &self.url, &mut hop_url)
            {
                for (name, t) in &r.cookies {
                    self.scratch.clear();
                    t.render(&mut self.state.scope(&[]), &mut self.scratch);
                    jar.set(name, &self.scratch, u);
                }
            }
        }
        // A Cookie header the plan wrote, joined with the jar's.
        let user_cookie = match &self.jar {
            Some(jar) if !jar.is_empty() => self.headers.get(header::COOKIE).cloned(),
            _ => None,
        };
        let keep = Keep {
            all: r.needs_headers,
            set_cookie: self.jar.is_some(),
            location: r.max_redirects > 0,
            retry_after: d.honor_429.is_some(),
        };

        let mut method = r.method.clone();
        let mut hop: u32 = 0;
        // Boxed: only redirects need them, and they would grow every
        // iteration's future.
        let mut hop_target: Option<Box<Target>> = None;
        let mut hop_start = start;
        loop {
            let target = match (hop, &hop_target) {
                (0, _) => first_target,
                (_, Some(t)) => Ok(&**t),
                (_, None) => Err(ErrorKind::BadRedirect),
            };
            let mut times = ConnectTimes::default();
            if let (Some(jar), Ok(_)) = (&self.jar, &target)
                && !jar.is_empty()
            {
                self.headers.remove(header::COOKIE);
                let cookie = match url_of(r, hop, &self.url, &mut hop_url) {
                    Some(u) if jar.header(u, &mut self.cookie) => {
                        if let Some(mine) = user_cookie.as_ref().and_then(|v| v.to_str().ok()) {
                            self.cookie.insert_str(0, "; ");
                            self.cookie.insert_str(0, mine);
                        }
                        HeaderValue::from_str(&self.cookie).ok()
                    }
                    _ => user_cookie.clone(),
                };
                if let Some(c) = cookie {
                    self.headers.insert(header::COOKIE, c);
                }
            }

            let entry = entry(&mut self.entries[i], &self.key, &self.rec, d, r);
            let stream_ids = entry.stream;
            let event_records: Vec<_> = if r.stream {
                r.records
                    .iter()
                    .zip(&entry.records)
                    .filter(|(rc, _)| rc.per_event)
                    .map(|(rc, id)| (rc, *id))
                    .collect()
            } else {
                Vec::new()
            };
            let mut streamed = Streamed::default();
            let mut first_event = None;
            let outcome = match target {
                Ok(target) => {
                    // Re-arming to a later deadline is a cheap update in tokio's wheel.
                    self.timer.as_mut().reset((hop_start + r.timeout).into());
                    let mut sse = None;
                    let sink: Option<&mut dyn BodySink> = match stream_ids {
                        // Boxed: only streams need it.
                        Some(ids) => Some(&mut **sse.insert(Box::new(Sse::new(
                            &self.rec,
                            ids.gap,
                            &event_records,
                            &mut self.sse_line,
                            &mut self.sse_data,
                        )))),
                        None => {
                            self.body.clear();
                            r.needs_body.then_some(&mut self.body as &mut dyn BodySink)
                        }
                    };
                    let exchange = self.link.exchange_with(
                        &d.connector,
                        &method,
                        target,
                        &self.headers,
                        &body,
                        keep,
                        sink,
                        &mut times,
                    );
                    let res = tokio::select! {
                        biased;
                        res = exchange => res,
                        _ = self.timer.as_mut() => Err(ErrorKind::Timeout),
                    };
                    if let Some(sse) = &sse {
                        streamed.events = sse.events;
                        if let (Some(f), Some(l)) = (sse.first, sse.last) {
                            streamed.span = l - f;
                        }
                        first_event = sse.first;
                    }
                    res
                }
                Err(e) => Err(e),
            };
            let end = Instant::now();
            let t0 = match scheduled {
                Some(s) if hop == 0 && s < start => Some(s),
                _ => None,
            };
            let (status, mut error, headers, sent_at, headers_at) = match outcome {
                Ok(x) => (x.status, None, x.headers, x.sent_at, x.headers_at),
                Err(e) => {
                    if e == ErrorKind::Timeout {
                        // Cut mid-exchange: the connection cannot be reused.
                        self.link.close();
                    }
                    self.body.clear();
                    let at = hop_start + times.connecting + times.tls;
                    (0, Some(e), HeaderMap::new(), at, end)
                }
            };

            if let Some(jar) = &mut self.jar
                && headers.contains_key(header::SET_COOKIE)
                && let Some(u) = url_of(r, hop, &self.url, &mut hop_url)
            {
                jar.store(headers.get_all(header::SET_COOKIE).iter(), u);
            }
            // Where a redirect goes next, if it is followed.
            let mut next: Option<(Url, Target)> = None;
            if error.is_none()
                && matches!(status, 301 | 302 | 303 | 307 | 308)
                && r.max_redirects > 0
                && let Some(loc) = headers.get(header::LOCATION)
            {
                if hop >= r.max_redirects {
                    error = Some(ErrorKind::TooManyRedirects);
                } else {
                    let resolved = loc
                        .to_str()
                        .ok()
                        .and_then(|loc| url_of(r, hop, &self.url, &mut hop_url)?.join(loc).ok());
                    // Checked here, so a hop that cannot be sent is this
                    // response's error, never a sample of its own.
                    let target = resolved
                        .filter(|u| matches!(u.scheme(), "http" | "https"))
                        .and_then(|u| {
                            let t = Uri::try_from(u.as_str()).ok()?;
                            Some((u, Target::parse(t).ok()?))
                        });
                    match target {
                        Some(t) => next = Some(t),
                        None => error = Some(ErrorKind::BadRedirect),
                    }
                }
            }

            // k6: duration is sending + waiting + receiving, without connecting;
            // open models measure from the scheduled start instead.
            let duration = end - t0.unwrap_or(sent_at);
            // A redirect that is followed is a step of the request, not a failure.
            let expected = error.is_none() && (next.is_some() || r.is_expected(status));
            let hop_name = (hop > 0 && !r.named)
                .then(|| hop_url.as_deref().map(name_of))
                .flatten();
            let rec = &self.rec;
            let s = series(
                entry, rec, d, hop, hop_name, &method, status, error, expected,
            );
            rec.add(s.reqs, 1);
            rec.time(s.duration, duration);
            rec.time(s.waiting, headers_at.saturating_duration_since(sent_at));
            rec.time(s.receiving, end.saturating_duration_since(headers_at));
            rec.time(s.connecting, times.connecting);
            rec.time(s.tls, times.tls);
            rec.rate(s.failed, !expected);
            let (sent, received) = self.link.take_bytes();
            rec.add(self.data_sent, sent);
            rec.add(self.data_received, received);

            if let Some((u, target)) = next {
                // 303, and 301/302 after a POST, become a GET without a
                // body, as browsers do; 307 and 308 keep both.
                let to_get = match status {
                    303 => method != Method::HEAD,
                    301 | 302 => method == Method::POST,
                    _ => false,
                };
                if to_get {
                    method = Method::GET;
                    body = Bytes::new();
                    self.headers.remove(header::CONTENT_TYPE);
                    self.headers.remove(header::CONTENT_LENGTH);
                }
                let same_origin = url_of(r, hop, &self.url, &mut hop_url).is_some_and(|from| {
                    from.scheme() == u.scheme()
                        && from.host_str() == u.host_str()
                        && from.port_or_known_default() == u.port_or_known_default()
                });
                hop += 1;
                if !same_origin {
                    // Credentials are for the origin they were written for.
                    self.headers.remove(header::AUTHORIZATION);
                    self.headers.remove(header::HOST);
                }
                hop_target = Some(Box::new(target));
                hop_url = Some(Box::new(u));
                hop_start = Instant::now();
                continue;
            }

            if let Some(ids) = stream_ids
                && error.is_none()
            {
                rec.add(ids.events, streamed.events);
                if let Some(f) = first_event {
                    rec.time(ids.first_event, f.saturating_duration_since(sent_at));
                }
            }
            let honor = d.honor_429;
            if d.strict {
                self.fail_unless_accepted(i, status, error);
            }
            self.finish(i, status, &headers, duration, &streamed);
            if status == 429
                && let Some(max) = honor
            {
                // Boxed: rare, and a timer would grow every iteration's future.
                Box::pin(self.honor_retry_after(i, &headers, max, it)).await;
            }
            return end;
        }
    }

    /// Checks, captures and records on a request's last response.
    fn finish(
        &mut self,
        i: usize,
        status: u16,
        headers: &HeaderMap,
        duration: Duration,
        streamed: &Streamed,
    ) {
        let d = &*self.d;
        let r = &d.requests[i];
        if r.checks.is_empty() && r.captures.is_empty() && r.records.is_empty() {
            return;
        }
        let json = if r.needs_json {
            serde_json::from_slice::<serde_json::Value>(&self.body).ok()
        } else {
            None
        };
        let resp = Response {
            status,
            headers,
            body: &self.body,
            json: json.as_ref(),
            duration,
        };
        let rec = &self.rec;
        let ids = &self.check_series[i];
        for (c, id) in r.checks.iter().zip(ids) {
            rec.rate(*id, c.eval(&resp));
        }
        for (c, id) in r.captures.iter().zip(&ids[r.checks.len()..]) {
            let value = c.extract(&resp);
            rec.rate(*id, value.is_some());
            if d.strict && value.is_none() && self.failure.is_none() {
                self.failure = Some(format!(
                    "request {:?} ({}) was answered {status} without the value it captures as {:?}",
                    r.name, r.method, c.name
                ));
            }
            self.state.vars[c.var] = value.unwrap_or_default();
        }
        if !r.records.is_empty() {
            let entry = entry(&mut self.entries[i], &self.key, rec, d, r);
            for (rc, id) in r.records.iter().zip(&entry.records) {
                if !rc.per_event {
                    rc.observe(rec, *id, &resp, streamed);
                }
            }
        }
    }

    /// A strict driver's request failed unless it was answered with a 2xx
    /// (or a status its `checks.status` accepts).
    fn fail_unless_accepted(&mut self, i: usize, status: u16, error: Option<ErrorKind>) {
        let r = &self.d.requests[i];
        let why = match error {
            Some(e) => format!("failed: {}", e.tag()),
            None if r.expected.is_empty() && !(200..300).contains(&status) => format!(
                "was answered {status}, not 2xx (to accept it, add checks = {{ status = [200, {status}] }})"
            ),
            None if !r.expected.is_empty() && !r.expected.contains(&status) => format!(
                "was answered {status}, which its checks.status does not accept ({:?})",
                r.expected
            ),
            None => return,
        };
        if self.failure.is_none() {
            self.failure = Some(format!("request {:?} ({}) {why}", r.name, r.method));
        }
    }

    /// Every request once, in order, stopping at the first that fails (a
    /// strict driver's: `[setup]`, `[teardown]`); the captured values.
    pub(super) async fn run_phase(&mut self) -> Result<Vec<String>, String> {
        let it = Iteration {
            number: 0,
            scheduled: None,
            deadline: None,
            stop: crate::driver::Stop::default(),
        };
        self.state.begin(0);
        for i in 0..self.d.requests.len() {
            self.step(i, &it, i == 0).await;
            if let Some(why) = self.failure.take() {
                return Err(why);
            }
        }
        Ok(self.state.vars.clone())
    }

    /// `on_429 = "honor"`: wait what the server asked (capped, and never
    /// past the scenario's end or a stop), recorded as http_req_throttled.
    async fn honor_retry_after(
        &mut self,
        i: usize,
        headers: &HeaderMap,
        max: Duration,
        it: &Iteration,
    ) {
        let Some(mut wait) = headers
            .get(header::RETRY_AFTER)
            .and_then(|v| retry_after(v, SystemTime::now()))
        else {
            return;
        };
        wait = wait.min(max);
        let now = Instant::now();
        if let Some(deadline) = it.deadline {
            wait = wait.min(deadline.saturating_duration_since(now));
        }
        let stop = it.stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.fired() => {}
        }
        let d = &*self.d;
        let r = &d.requests[i];
        let entry = entry(&mut self.entries[i], &self.key, &self.rec, d, r);
        let id = match entry.throttled {
            Some(id) => id,
            None => {
                let id = self.rec.series(d.metrics.throttled, &entry.tags);
                entry.throttled = Some(id);
                id
            }
        };
        self.rec.time(id, now.elapsed());
    }
}

/// The URL of hop `hop` of request `r` (the jar and redirects key by it):
/// a static URL as parsed at load, else parsed once into `slot`.
fn url_of<'a>(
    r: &'a Request,
    hop: u32,
    text: &str,
    slot: &'a mut Option<Box<Url>>,
) -> Option<&'a Url> {
    if hop == 0
        && let Some(u) = &r.static_url
    {
        return Some(u);
    }
    if slot.is_none() {
        *slot = match &r.static_target {
            Some(t) if hop == 0 => Url::parse(&t.full.to_string()).ok(),
            _ => Url::parse(text).ok(),
        }
        .map(Box::new);
    }
    slot.as_deref()
}

/// A redirect hop's name when its request has none: its URL without the
/// query, as k6 names requests by URL.
fn name_of(u: &Url) -> Box<str> {
    let mut s = format!("{}://{}", u.scheme(), u.host_str().unwrap_or(""));
    if let Some(p) = u.port() {
        s.push_str(&format!(":{p}"));
    }
    s.push_str(u.path());
    s.into()
}

/// `Retry-After`: delta seconds or an HTTP date (RFC 9110 10.2.3).
pub(super) fn retry_after(v: &HeaderValue, now: SystemTime) -> Option<Duration> {
    let s = v.to_str().ok()?.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Some(Duration::from_secs(
            secs.min(crate::duration::MAX.as_secs()),
        ));
    }
    let when = httpdate::parse_http_date(s).ok()?;
    Some(when.duration_since(now).unwrap_or_default())
}

/// The entry of request `r` for the tag values in `key`, made on first use.
fn entry<'a>(
    e: &'a mut Entries,
    key: &str,
    rec: &Recorder,
    d: &HttpDriver,
    r: &Request,
) -> &'a mut Entry {
    let make = |key: &str| {
        let mut tags = r.tags.clone();
        for ((name, _), value) in r.dynamic_tags.iter().zip(key.split('\u{1f}')) {
            tags = tags.with(name, value);
        }
        let m = &d.metrics;
        Entry {
            records: r
                .records
                .iter()
                .map(|rc| rec.series(rc.metric, &tags))
                .collect(),
            stream: r.stream.then(|| StreamSeries {
                first_event: rec.series(m.first_event, &tags),
                events: rec.series(m.events, &tags),
                gap: rec.series(m.gap, &tags),
            }),
            throttled: None,
            http: Vec::new(),
            tags,
        }
    };
    if r.dynamic_tags.is_empty() {
        return e.fixed.get_or_insert_with(|| make(""));
    }
    if !e.by_tags.contains_key(key) {
        e.by_tags.insert(key.into(), make(key));
    }
    e.by_tags.get_mut(key).expect("inserted above")
}

/// The cached series of this hop, method, status and error.
#[allow(clippy::too_many_arguments)]
fn series<'a>(
    entry: &'a mut Entry,
    rec: &Recorder,
    d: &HttpDriver,
    hop: u32,
    hop_name: Option<Box<str>>,
    method: &Method,
    status: u16,
    error: Option<ErrorKind>,
    expected: bool,
) -> &'a Series {
    if let Some(p) = entry.http.iter().position(|s| {
        s.hop == hop
            && s.status == status
            && s.error == error
            && s.method == *method
            && s.hop_name == hop_name
    }) {
        return &entry.http[p];
    }
    let mut tags = entry
        .tags
        .with("method", method.as_str())
        .with("status", status.to_string())
        .with("expected_response", expected.to_string());
    if hop > 0 {
        tags = tags.with("redirect", hop.to_string());
    }
    if let Some(n) = &hop_name {
        tags = tags.with("name", n.to_string());
    }
    if let Some(e) = error {
        tags = tags.with("error", e.tag());
    }
    let m = &d.metrics;
    let s = |id| rec.series(id, &tags);
    entry.http.push(Series {
        hop,
        hop_name,
        method: method.clone(),
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
    entry.http.last().expect("just pushed")
}

impl Vu for HttpVu {
    async fn iteration(&mut self, it: Iteration) {
        self.state.begin(it.number);
        if self.d.reset_cookies
            && let Some(jar) = &mut self.jar
        {
            jar.clear();
        }
        let mut first = true;
        match self.d.flow {
            Flow::Sequence => {
                for i in 0..self.d.requests.len() {
                    if self.d.requests[i].once && self.once_done {
                        continue;
                    }
                    self.step(i, &it, first).await;
                    first = false;
                }
            }
            Flow::Weighted => {
                if !self.once_done {
                    for i in 0..self.d.requests.len() {
                        if self.d.requests[i].once {
                            self.step(i, &it, first).await;
                            first = false;
                        }
                    }
                }
                let i = self.d.weights.pick(&mut self.state.rng);
                self.step(i, &it, first).await;
            }
        }
        self.close_group();
        self.once_done = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let v = |s: &'static str| HeaderValue::from_static(s);
        assert_eq!(retry_after(&v("2"), now), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(&v(" 0 "), now), Some(Duration::ZERO));
        // 1_700_000_000 is Tue, 14 Nov 2023 22:13:20 GMT.
        assert_eq!(
            retry_after(&v("Tue, 14 Nov 2023 22:13:25 GMT"), now),
            Some(Duration::from_secs(5))
        );
        // A date in the past: no wait.
        assert_eq!(
            retry_after(&v("Tue, 14 Nov 2023 22:00:00 GMT"), now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&v("soon"), now), None);
        assert_eq!(retry_after(&v("-1"), now), None);
        // Past any clock: capped, not an overflow.
        assert!(retry_after(&v("18446744073709551615"), now).is_some());
    }
}

#[cfg(test)]
mod size {
    /// The iteration future is created and moved for every iteration: what
    /// redirects, streams and the jar add must not make it much larger.
    #[tokio::test]
    async fn an_iteration_future_stays_small() {
        let size = crate::driver::iteration_future_size::<super::HttpDriver>(
            "[[requests]]\nurl = \"http://127.0.0.1:1/\"\n",
        );
        eprintln!("iteration future: {size} bytes");
        // 1776 bytes before redirects, streams and the jar (2136 with them).
        assert!(size < 3072, "{size} bytes");
    }
}
