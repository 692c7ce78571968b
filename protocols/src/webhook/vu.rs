//! One webhook VU: owns its connection, renders events, signs each delivery
//! as its scheme and kind say, checks the endpoint's answer against that kind.

use super::scheme::{Scheme, Signed};
use super::signature::Key;
use super::{Kind, Locals, WebhookDriver, unix_now};
use crate::driver::{Iteration, Vu, VuEnv, VuState};
use crate::http::ErrorKind;
use crate::http::conn::ConnectTimes;
use crate::http::link::Link;
use crate::metrics::{Recorder, SeriesId};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use std::sync::Arc;
use std::time::Instant;

/// One rendered event: what a duplicate or an out-of-order delivery sends
/// again, body and id unchanged.
#[derive(Clone)]
pub(crate) struct Delivery {
    event: usize,
    body: Bytes,
    /// The value of the scheme's id header (GitHub, Standard Webhooks, Shopify).
    id: Option<HeaderValue>,
}

impl Delivery {
    pub(crate) fn new(scheme: Scheme, event: usize, body: Bytes, id: &str) -> Self {
        let id = scheme
            .id_header()
            .map(|_| HeaderValue::from_str(id).expect("generated ids are ASCII"));
        Self { event, body, id }
    }
}

/// The names of the headers a scheme sets per delivery, made once.
struct Names {
    signature: HeaderName,
    timestamp: Option<HeaderName>,
    /// The id header, and Shopify's X-Shopify-Event-Id beside it.
    id: Vec<HeaderName>,
    kind: Option<HeaderName>,
    /// Slack marks a redelivery with X-Slack-Retry-Num and -Reason.
    retry: Option<(HeaderName, HeaderName)>,
}

impl Names {
    fn of(scheme: Scheme) -> Self {
        let name = |h: &str| HeaderName::from_bytes(h.as_bytes()).expect("a valid header name");
        let mut id: Vec<HeaderName> = scheme.id_header().map(name).into_iter().collect();
        if scheme == Scheme::Shopify {
            id.push(name("X-Shopify-Event-Id"));
        }
        Self {
            signature: name(scheme.signature_header()),
            timestamp: scheme.timestamp_header().map(name),
            id,
            kind: scheme.type_header().map(name),
            retry: (scheme == Scheme::Slack)
                .then(|| (name("X-Slack-Retry-Num"), name("X-Slack-Retry-Reason"))),
        }
    }
}

/// Signs deliveries, correctly or in the ways an attacker would.
pub(crate) struct Signer {
    scheme: Scheme,
    names: Names,
    /// A secret the endpoint does not know, for forgeries.
    wrong: Key,
    header: String,
}

impl Signer {
    pub(crate) fn new(scheme: Scheme, rng: &mut fastrand::Rng) -> Self {
        let mut guess = [0u8; 32];
        rng.fill(&mut guess);
        Self {
            scheme,
            names: Names::of(scheme),
            wrong: Key::new(&guess),
            header: String::new(),
        }
    }

    /// Set the headers of delivery `d` in `headers` (signature, timestamp,
    /// id, event type) as its `kind` says, and return the body to send.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn prepare(
        &mut self,
        headers: &mut HeaderMap,
        keys: &[Key],
        kind: Kind,
        d: &Delivery,
        type_value: Option<&HeaderValue>,
        tolerance: u64,
        rng: &mut fastrand::Rng,
    ) -> Bytes {
        let now = unix_now();
        // Past the tolerance by a margin, so clock skew cannot make it fresh.
        let stale = now - tolerance as i64 - 60;
        // Rewriting the timestamp is a forgery only where one is signed.
        let variants = if self.scheme.has_timestamp() { 3 } else { 2 };
        let wrong = std::slice::from_ref(&self.wrong);
        // (signing keys, body altered after signing, signed time, time shown)
        let (keys, tampered, signed, shown) = match kind {
            Kind::Valid | Kind::Duplicate | Kind::OutOfOrder | Kind::Unsigned => {
                (keys, false, now, now)
            }
            Kind::Stale => (keys, false, stale, stale),
            Kind::Forged => match rng.u8(0..variants) {
                // Signed with a secret the endpoint does not have.
                0 => (wrong, false, now, now),
                // Signed, then the amount changed in transit.
                1 => (keys, true, now, now),
                // A captured old delivery whose timestamp was made fresh.
                _ => (keys, false, stale, now),
            },
        };
        let n = &self.names;
        if kind == Kind::Unsigned {
            headers.remove(&n.signature);
        } else {
            self.header.clear();
            let id = d.id.as_ref().map(HeaderValue::as_bytes).unwrap_or_default();
            let s = Signed {
                id,
                timestamp: signed,
                shown,
            };
            self.scheme
                .write_signature(&mut self.header, keys, s, &d.body);
            let value = HeaderValue::from_str(&self.header).expect("the header is ASCII");
            headers.insert(n.signature.clone(), value);
        }
        if let Some(h) = &n.timestamp {
            headers.insert(h.clone(), HeaderValue::from(shown));
        }
        if let Some(v) = &d.id {
            for h in &n.id {
                headers.insert(h.clone(), v.clone());
            }
        }
        if let (Some(h), Some(v)) = (&n.kind, type_value) {
            headers.insert(h.clone(), v.clone());
        }
        if let Some((num, reason)) = &n.retry {
            if kind == Kind::Duplicate {
                headers.insert(num.clone(), HeaderValue::from_static("1"));
                headers.insert(reason.clone(), HeaderValue::from_static("http_timeout"));
            } else {
                headers.remove(num);
                headers.remove(reason);
            }
        }
        if tampered {
            tamper(&d.body)
        } else {
            d.body.clone()
        }
    }
}

/// The body with the last digit of its first `"amount":` changed (still
/// valid JSON), or with a space added when it has no amount.
fn tamper(payload: &Bytes) -> Bytes {
    let mut v = payload.to_vec();
    const KEY: &[u8] = b"\"amount\":";
    let at = v.windows(KEY.len()).position(|w| w == KEY);
    let digits_end = at.map(|i| {
        let start = i + KEY.len();
        start + v[start..].iter().take_while(|b| b.is_ascii_digit()).count()
    });
    match (at, digits_end) {
        (Some(i), Some(end)) if end > i + KEY.len() => {
            let d = &mut v[end - 1];
            *d = b'0' + (*d - b'0' + 1) % 10;
        }
        _ => v.push(b' '),
    }
    Bytes::from(v)
}

/// Series ids of one (event, kind, status, error) combination.
struct Series {
    status: u16,
    error: Option<ErrorKind>,
    deliveries: SeriesId,
    duration: SeriesId,
    failed: SeriesId,
    forgery: SeriesId,
}

pub struct WebhookVu {
    d: Arc<WebhookDriver>,
    rec: Recorder,
    state: VuState,
    locals: Locals,
    signer: Signer,
    link: Link,
    /// The driver's headers plus this delivery's signature.
    headers: http::HeaderMap,
    /// Per event, per kind.
    series: Vec<[Vec<Series>; 6]>,
    data_sent: SeriesId,
    data_received: SeriesId,
    text_capacity: usize,
    /// The last event the endpoint acknowledged: what a duplicate resends.
    last: Option<Delivery>,
    /// An event held back, to be delivered after newer ones (out of order),
    /// and how many deliveries went out since it was made.
    held: Option<Delivery>,
    since_held: u64,
}

impl WebhookVu {
    pub(super) fn new(d: Arc<WebhookDriver>, env: VuEnv) -> Self {
        let rec = env.recorder;
        let mut state = d.inputs.state(env.index, env.seed);
        let signer = Signer::new(d.scheme, &mut state.rng);
        Self {
            series: d.events.iter().map(|_| Default::default()).collect(),
            data_sent: rec.series(d.metrics.sent, &d.tags),
            data_received: rec.series(d.metrics.received, &d.tags),
            rec,
            state,
            locals: Locals::default(),
            signer,
            link: Link::default(),
            headers: d.headers.clone(),
            text_capacity: 1024,
            last: None,
            held: None,
            since_held: 0,
            d,
        }
    }

    fn render(&mut self, event: usize) -> Delivery {
        let d = &self.d;
        let e = &d.events[event];
        // Rendered straight into the buffer that is sent (no copy), sized
        // from the last event so it does not grow piece by piece.
        let mut text = String::with_capacity(self.text_capacity);
        self.locals
            .render(d.scheme, &e.name, &e.template, &mut self.state, &mut text);
        self.text_capacity = self.text_capacity.max(text.len() + text.len() / 8);
        Delivery::new(d.scheme, event, Bytes::from(text), &self.locals.id)
    }

    fn series(
        &mut self,
        event: usize,
        kind: Kind,
        status: u16,
        error: Option<ErrorKind>,
    ) -> &Series {
        let list = &mut self.series[event][kind.index()];
        let pos = match list
            .iter()
            .position(|s| s.status == status && s.error == error)
        {
            Some(p) => p,
            None => {
                let m = &self.d.metrics;
                let mut tags = self
                    .d
                    .tags
                    .with("event", self.d.events[event].name.clone())
                    .with("kind", kind.tag())
                    .with("status", status.to_string());
                if let Some(e) = error {
                    tags = tags.with("error", e.tag());
                }
                let s = |id| self.rec.series(id, &tags);
                list.push(Series {
                    status,
                    error,
                    deliveries: s(m.deliveries),
                    duration: s(m.duration),
                    failed: s(m.failed),
                    forgery: s(m.forgery),
                });
                list.len() - 1
            }
        };
        &list[pos]
    }

    /// Choose this iteration's delivery and its kind.
    fn choose(&mut self) -> (Delivery, Kind) {
        let d = self.d.clone();
        if d.out_of_order && self.held.is_none() {
            let e = d.weights.pick(&mut self.state.rng);
            self.held = Some(self.render(e));
            self.since_held = 0;
        }
        let kind = d.pick_kind(&mut self.state.rng);
        match kind {
            Kind::Duplicate if self.last.is_some() => {
                return (self.last.clone().expect("checked"), kind);
            }
            // Held back while newer events went out: deliver it now.
            Kind::OutOfOrder if self.since_held > 0 => {
                if let Some(held) = self.held.take() {
                    return (held, kind);
                }
            }
            _ => {}
        }
        // Nothing to resend or hold back yet: a fresh, valid delivery.
        let kind = match kind {
            Kind::Duplicate | Kind::OutOfOrder => Kind::Valid,
            k => k,
        };
        let e = d.weights.pick(&mut self.state.rng);
        (self.render(e), kind)
    }

    async fn deliver(&mut self, scheduled: Option<Instant>) {
        let d = self.d.clone();
        let (delivery, kind) = self.choose();
        let event = delivery.event;
        // The driver's headers were copied in once; only the scheme's change.
        let body = self.signer.prepare(
            &mut self.headers,
            &d.keys,
            kind,
            &delivery,
            d.events[event].type_value.as_ref(),
            d.tolerance,
            &mut self.state.rng,
        );

        let start = Instant::now();
        let (sent_before, received_before) = self.link.bytes();
        let mut times = ConnectTimes::default();
        let result = tokio::time::timeout(
            d.timeout,
            self.link.exchange(
                &d.connector,
                &http::Method::POST,
                &d.target,
                &self.headers,
                &body,
                false,
                None,
                &mut times,
            ),
        )
        .await;
        let end = Instant::now();
        let (status, error, sent_at) = match result {
            Ok(Ok(x)) => (x.status, None, x.sent_at),
            Ok(Err(e)) => (0, Some(e), start + times.connecting + times.tls),
            Err(_) => {
                // Mid-exchange: the connection cannot be reused.
                self.link.close();
                (
                    0,
                    Some(ErrorKind::Timeout),
                    start + times.connecting + times.tls,
                )
            }
        };
        // Open models measure from the scheduled start (no coordinated omission).
        let t0 = match scheduled {
            Some(s) if s < start => s,
            _ => sent_at,
        };
        let right = error.is_none() && kind.answered_right(status);
        let accepted = error.is_none() && (200..300).contains(&status);
        let rec = self.rec.clone();
        let s = self.series(event, kind, status, error);
        rec.add(s.deliveries, 1);
        rec.time(s.duration, end.saturating_duration_since(t0));
        rec.rate(s.failed, !right);
        if !kind.must_accept() {
            rec.add(s.forgery, u64::from(accepted));
        }
        let (sent, received) = self.link.bytes();
        rec.add(self.data_sent, sent - sent_before);
        rec.add(self.data_received, received - received_before);

        if accepted && matches!(kind, Kind::Valid | Kind::OutOfOrder) {
            self.last = Some(delivery);
        }
        if kind != Kind::OutOfOrder {
            self.since_held += 1;
        }
    }
}

impl Vu for WebhookVu {
    async fn iteration(&mut self, it: Iteration) {
        self.state.begin(it.number);
        self.deliver(it.scheduled).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tampering_keeps_json_valid_and_changes_the_amount() {
        let body = Bytes::from_static(br#"{"amount":1999,"x":{"amount":5}}"#);
        let t = tamper(&body);
        assert_eq!(&t[..], br#"{"amount":1990,"x":{"amount":5}}"#);
        let none = Bytes::from_static(br#"{"id":"evt_1"}"#);
        assert_eq!(&tamper(&none)[..], br#"{"id":"evt_1"} "#);
    }

    #[test]
    fn forgeries_fail_verification_and_valid_ones_pass_in_every_scheme() {
        use crate::webhook::scheme::SCHEMES;
        use crate::webhook::signature::VerifyError;
        for scheme in SCHEMES {
            let key = scheme
                .key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
                .unwrap();
            let keys = [key.clone()];
            let mut rng = fastrand::Rng::with_seed(1);
            let mut signer = Signer::new(scheme, &mut rng);
            let payload = Bytes::from_static(br#"{"id":"evt_1","amount":100}"#);
            let d = Delivery::new(
                scheme,
                0,
                payload.clone(),
                "0b6a4c4e-2d1f-4f7a-9a53-3c1b0f2e8d71",
            );
            let ty = HeaderValue::from_static("push");
            let mut send = |kind| {
                let mut h = HeaderMap::new();
                let b = signer.prepare(&mut h, &keys, kind, &d, Some(&ty), 300, &mut rng);
                (b, h)
            };
            let check = |b: &Bytes, h: &HeaderMap| scheme.verify(h, b, &key, 300, unix_now());
            for kind in [Kind::Valid, Kind::Duplicate, Kind::OutOfOrder] {
                let (b, h) = send(kind);
                assert_eq!(b, payload, "sent byte for byte as signed");
                assert_eq!(check(&b, &h), Ok(()), "{scheme:?} {kind:?}");
                if let Some(id) = scheme.id_header() {
                    assert_eq!(h[id], "0b6a4c4e-2d1f-4f7a-9a53-3c1b0f2e8d71");
                }
                if let Some(t) = scheme.type_header() {
                    assert_eq!(h[t], "push");
                }
                let retry = h.get("x-slack-retry-num").is_some();
                assert_eq!(retry, scheme == Scheme::Slack && kind == Kind::Duplicate);
            }
            if scheme.has_timestamp() {
                let (b, h) = send(Kind::Stale);
                assert_eq!(check(&b, &h), Err(VerifyError::Stale), "{scheme:?}");
            }
            let (b, h) = send(Kind::Unsigned);
            assert_eq!(check(&b, &h), Err(VerifyError::Missing), "{scheme:?}");
            // Every forgery variant is caught as a signature mismatch.
            for _ in 0..30 {
                let (b, h) = send(Kind::Forged);
                assert_eq!(check(&b, &h), Err(VerifyError::Mismatch), "{scheme:?}");
            }
        }
    }
}
