//! One webhook VU: owns its connection, renders events, signs each delivery
//! as its kind says, checks the endpoint's answer against that kind.

use super::signature::{self, Key};
use super::{Kind, Locals, WebhookDriver, unix_now};
use crate::driver::{Iteration, Vu, VuEnv, VuState};
use crate::http::ErrorKind;
use crate::http::conn::ConnectTimes;
use crate::http::link::Link;
use crate::metrics::{Recorder, SeriesId};
use bytes::Bytes;
use http::HeaderValue;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

/// Signs deliveries, correctly or in the ways an attacker would.
pub(crate) struct Signer {
    /// A secret the endpoint does not know, for forgeries.
    wrong: Key,
    header: String,
}

impl Signer {
    pub(crate) fn new(rng: &mut fastrand::Rng) -> Self {
        let mut guess = String::from("whsec_");
        for _ in 0..32 {
            guess.push(rng.alphanumeric());
        }
        Self {
            wrong: Key::new(guess.as_bytes()),
            header: String::new(),
        }
    }

    /// The body to send and its Stripe-Signature value (None: unsigned).
    pub(crate) fn sign(
        &mut self,
        keys: &[Key],
        kind: Kind,
        payload: &Bytes,
        tolerance: u64,
        rng: &mut fastrand::Rng,
    ) -> (Bytes, Option<HeaderValue>) {
        let now = unix_now();
        // Past the tolerance by a margin, so clock skew cannot make it fresh.
        let stale = now - tolerance as i64 - 60;
        self.header.clear();
        let body = match kind {
            Kind::Unsigned => return (payload.clone(), None),
            Kind::Valid | Kind::Duplicate | Kind::OutOfOrder => {
                signature::write_header(&mut self.header, keys, now, payload);
                payload.clone()
            }
            Kind::Stale => {
                signature::write_header(&mut self.header, keys, stale, payload);
                payload.clone()
            }
            Kind::Forged => match rng.u8(0..3) {
                // Signed with a secret the endpoint does not have.
                0 => {
                    signature::write_header(
                        &mut self.header,
                        std::slice::from_ref(&self.wrong),
                        now,
                        payload,
                    );
                    payload.clone()
                }
                // Signed, then the amount changed in transit.
                1 => {
                    signature::write_header(&mut self.header, keys, now, payload);
                    tamper(payload)
                }
                // A captured old delivery whose timestamp was made fresh.
                _ => {
                    signature::write_header(&mut self.header, keys, stale, payload);
                    let rest = self.header.split_once(',').map(|(_, r)| r.to_string());
                    self.header.clear();
                    let _ = write!(self.header, "t={now}");
                    if let Some(r) = rest {
                        self.header.push(',');
                        self.header.push_str(&r);
                    }
                    payload.clone()
                }
            },
        };
        let value = HeaderValue::from_str(&self.header).expect("the header is ASCII");
        (body, Some(value))
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
    last: Option<(usize, Bytes)>,
    /// An event held back, to be delivered after newer ones (out of order),
    /// and how many deliveries went out since it was made.
    held: Option<(usize, Bytes)>,
    since_held: u64,
}

impl WebhookVu {
    pub(super) fn new(d: Arc<WebhookDriver>, env: VuEnv) -> Self {
        let rec = env.recorder;
        let mut state = d.inputs.state(env.index, env.seed);
        let signer = Signer::new(&mut state.rng);
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

    fn render(&mut self, event: usize) -> Bytes {
        let e = &self.d.events[event];
        // Rendered straight into the buffer that is sent (no copy), sized
        // from the last event so it does not grow piece by piece.
        let mut text = String::with_capacity(self.text_capacity);
        self.locals
            .render(&e.name, &e.template, &mut self.state, &mut text);
        self.text_capacity = self.text_capacity.max(text.len() + text.len() / 8);
        Bytes::from(text)
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

    /// Choose this iteration's delivery: its event, body and kind.
    fn choose(&mut self) -> (usize, Bytes, Kind) {
        let d = self.d.clone();
        if d.out_of_order && self.held.is_none() {
            let e = d.weights.pick(&mut self.state.rng);
            self.held = Some((e, self.render(e)));
            self.since_held = 0;
        }
        let kind = d.pick_kind(&mut self.state.rng);
        match kind {
            Kind::Duplicate if self.last.is_some() => {
                let (e, body) = self.last.clone().expect("checked");
                return (e, body, kind);
            }
            // Held back while newer events went out: deliver it now.
            Kind::OutOfOrder if self.since_held > 0 => {
                if let Some((e, body)) = self.held.take() {
                    return (e, body, kind);
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
        (e, self.render(e), kind)
    }

    async fn deliver(&mut self, scheduled: Option<Instant>) {
        let d = self.d.clone();
        let (event, payload, kind) = self.choose();
        let (body, sig) =
            self.signer
                .sign(&d.keys, kind, &payload, d.tolerance, &mut self.state.rng);
        // The driver's headers were copied in once; only the signature changes.
        match sig {
            Some(v) => self.headers.insert(signature::HEADER, v),
            None => self.headers.remove(signature::HEADER),
        };

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
            self.last = Some((event, payload));
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
    fn forgeries_fail_verification_and_valid_ones_pass() {
        let keys = [Key::new(b"whsec_test_secret")];
        let mut rng = fastrand::Rng::with_seed(1);
        let mut signer = Signer::new(&mut rng);
        let payload = Bytes::from_static(br#"{"id":"evt_1","amount":100}"#);
        let now = unix_now();
        let check = |body: &Bytes, h: &Option<HeaderValue>| {
            signature::verify(h.as_ref().map(|v| v.as_bytes()), body, &keys[0], 300, now)
        };
        for kind in [Kind::Valid, Kind::Duplicate, Kind::OutOfOrder] {
            let (b, h) = signer.sign(&keys, kind, &payload, 300, &mut rng);
            assert_eq!(b, payload, "sent byte for byte as signed");
            assert!(check(&b, &h).is_ok(), "{kind:?}");
        }
        let (b, h) = signer.sign(&keys, Kind::Stale, &payload, 300, &mut rng);
        assert_eq!(check(&b, &h), Err(signature::VerifyError::Stale));
        let (b, h) = signer.sign(&keys, Kind::Unsigned, &payload, 300, &mut rng);
        assert_eq!(check(&b, &h), Err(signature::VerifyError::Missing));
        // Every forgery variant is caught as a signature mismatch.
        for _ in 0..30 {
            let (b, h) = signer.sign(&keys, Kind::Forged, &payload, 300, &mut rng);
            assert_eq!(check(&b, &h), Err(signature::VerifyError::Mismatch));
        }
    }
}
