//! `POST /webhooks/<scheme>`: one receiver per signing scheme (stripe,
//! github, standard, shopify, slack), each behaving as a careful integration
//! of that provider should. It verifies the signature as the provider's
//! library does (constant-time; a 300 s tolerance where there is a
//! timestamp), answers 400 to what fails, 200 to the rest, and processes each
//! delivery once, by the scheme's duplicate key (a duplicate is acknowledged,
//! not processed again). Everything is counted for `/__volley/stats`, so
//! tests compare what volley sent with what arrived. `--webhook-insecure`
//! accepts everything: the hole the forgery check finds.
//!
//! One route per scheme rather than a switch: one server takes every scheme
//! at once (a plan may mix them), and the path says what it checks.

use super::{Body, json_response};
use http_body_util::{BodyExt, Limited};
use hyper::Response;
use hyper::body::Incoming;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use volley_protocols::webhook::scheme::{SCHEMES, Scheme};
use volley_protocols::webhook::signature::{self, Key, VerifyError};

/// Stripe's route, as before there were others.
pub const PATH: &str = "/webhooks/stripe";

/// The route of `scheme`: `/webhooks/<name>`.
pub fn path(scheme: Scheme) -> String {
    format!("/webhooks/{}", scheme.name())
}

/// Why a delivery was refused, as counted in the stats.
const REASONS: &[&str] = &[
    "missing_header",
    "malformed_header",
    "no_v1_signature",
    "signature_mismatch",
    "timestamp_outside_tolerance",
    "invalid_payload",
    "payload_too_large",
    "not_configured",
];

const MAX_BODY: usize = 1 << 20;

/// Event ids remembered for duplicate detection: the latest ones only, so a
/// soak test does not grow the server without bound (~27 MB when full). A
/// duplicate volley sends repeats a VU's last event, far inside this window.
const REMEMBERED_IDS: usize = 1 << 20;

/// Processed event ids (as 64-bit hashes: a collision among a million ids has
/// odds of ~1 in 30 million) in arrival order, and counts per event type.
struct Seen {
    ids: HashSet<u64>,
    order: VecDeque<u64>,
    capacity: usize,
    by_type: BTreeMap<String, u64>,
}

impl Seen {
    fn new(capacity: usize) -> Self {
        Self {
            ids: HashSet::new(),
            order: VecDeque::new(),
            capacity,
            by_type: BTreeMap::new(),
        }
    }

    /// True the first time an id is seen (within the window).
    fn first(&mut self, id: &str, ty: &str) -> bool {
        let mut h = DefaultHasher::new();
        id.hash(&mut h);
        let key = h.finish();
        if !self.ids.insert(key) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.ids.remove(&old);
        }
        *self.by_type.entry(ty.to_string()).or_default() += 1;
        true
    }

    fn clear(&mut self) {
        self.ids.clear();
        self.order.clear();
        self.by_type.clear();
    }
}

/// The receivers of every scheme, behind their routes.
pub struct Receivers {
    list: Vec<Receiver>,
}

impl Receivers {
    pub fn new(secret: Option<&str>, insecure: bool) -> Self {
        Self {
            list: SCHEMES
                .iter()
                .map(|s| Receiver::new(*s, secret, insecure))
                .collect(),
        }
    }

    /// The receiver behind `path`, if it is a webhook route.
    pub fn route(&self, path: &str) -> Option<&Receiver> {
        let name = path.strip_prefix("/webhooks/")?;
        Scheme::parse(name).map(|s| self.of(s))
    }

    pub fn of(&self, scheme: Scheme) -> &Receiver {
        &self.list[SCHEMES.iter().position(|s| *s == scheme).unwrap_or(0)]
    }

    fn sum(&self, f: impl Fn(&Receiver) -> u64) -> u64 {
        self.list.iter().map(f).sum()
    }

    /// Totals over every scheme (the stats' top-level counts).
    pub fn received(&self) -> u64 {
        self.sum(Receiver::received)
    }

    pub fn accepted(&self) -> u64 {
        self.sum(Receiver::accepted)
    }

    pub fn duplicates(&self) -> u64 {
        self.sum(Receiver::duplicates)
    }

    pub fn processed(&self) -> u64 {
        self.sum(Receiver::processed)
    }

    pub fn rejected(&self, reason: &str) -> u64 {
        self.sum(|r| r.rejected(reason))
    }

    pub fn rejected_total(&self) -> u64 {
        self.sum(Receiver::rejected_total)
    }

    pub fn processed_of(&self, ty: &str) -> u64 {
        self.sum(|r| r.processed_of(ty))
    }

    /// Why the standard route cannot verify (its secret is not whsec_ +
    /// base64), for `volley serve` to say at start.
    pub fn standard_unusable(&self) -> Option<&str> {
        self.of(Scheme::Standard).unusable.as_deref()
    }

    /// Totals as before, plus each scheme's own counts under `schemes`.
    pub fn to_json(&self) -> Value {
        let mut rejected: BTreeMap<&str, u64> = BTreeMap::new();
        let mut by_type: BTreeMap<String, u64> = BTreeMap::new();
        for r in &self.list {
            for (reason, c) in REASONS.iter().zip(&r.rejected) {
                let n = c.load(Ordering::Relaxed);
                if n > 0 {
                    *rejected.entry(reason).or_default() += n;
                }
            }
            for (ty, n) in &r.seen.lock().expect("webhook ids").by_type {
                *by_type.entry(ty.clone()).or_default() += n;
            }
        }
        let schemes: serde_json::Map<String, Value> = self
            .list
            .iter()
            .map(|r| (r.scheme.name().to_string(), r.to_json()))
            .collect();
        json!({
            "mode": self.list[0].mode(),
            "received": self.received(),
            "accepted": self.accepted(),
            "rejected_total": self.rejected_total(),
            "rejected": rejected,
            "duplicates": self.duplicates(),
            "processed": self.processed(),
            "processed_by_type": by_type,
            "schemes": schemes,
        })
    }

    pub fn reset(&self) {
        for r in &self.list {
            r.reset();
        }
    }
}

pub struct Receiver {
    scheme: Scheme,
    key: Option<Key>,
    /// Why `key` is None although a secret was given.
    unusable: Option<String>,
    insecure: bool,
    received: AtomicU64,
    accepted: AtomicU64,
    duplicates: AtomicU64,
    processed: AtomicU64,
    rejected: Vec<AtomicU64>,
    seen: Mutex<Seen>,
}

impl Receiver {
    pub fn new(scheme: Scheme, secret: Option<&str>, insecure: bool) -> Self {
        let key = secret.map(|s| scheme.key(s));
        Self {
            scheme,
            unusable: key
                .as_ref()
                .and_then(|k| k.as_ref().err().map(ToString::to_string)),
            key: key.and_then(Result::ok),
            insecure,
            received: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            processed: AtomicU64::new(0),
            rejected: REASONS.iter().map(|_| AtomicU64::new(0)).collect(),
            seen: Mutex::new(Seen::new(REMEMBERED_IDS)),
        }
    }

    fn reject(&self, reason: &str, status: u16, message: &str) -> Response<Body> {
        if let Some(i) = REASONS.iter().position(|r| *r == reason) {
            self.rejected[i].fetch_add(1, Ordering::Relaxed);
        }
        json_response(status, &json!({"error": message, "reason": reason}))
    }

    pub async fn handle(&self, req: hyper::Request<Incoming>) -> Response<Body> {
        self.received.fetch_add(1, Ordering::Relaxed);
        let (parts, body) = req.into_parts();
        let headers = parts.headers;
        let body = match Limited::new(body, MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return self.reject("payload_too_large", 413, "payload over 1 MiB");
            }
        };
        if !self.insecure {
            let Some(key) = &self.key else {
                let msg = match &self.unusable {
                    Some(why) => format!(
                        "this receiver cannot use the signing secret: {why} (start volley serve with such a --webhook-secret)"
                    ),
                    None => "this receiver has no signing secret: start volley serve with --webhook-secret (or --webhook-insecure)".to_string(),
                };
                return self.reject("not_configured", 500, &msg);
            };
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            if let Err(e) =
                self.scheme
                    .verify(&headers, &body, key, signature::DEFAULT_TOLERANCE_SECS, now)
            {
                return self.reject(e.reason(), 400, &rejection_message(self.scheme, e));
            }
        }
        let event: Option<Value> = serde_json::from_slice(&body).ok();
        let header = |name: Option<&str>| {
            name.and_then(|n| headers.get(n))
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        // The duplicate key and the event type, where this scheme keeps them.
        let field = |path: &[&str]| {
            let mut v = event.as_ref()?;
            for p in path {
                v = v.get(p)?;
            }
            v.as_str().map(str::to_string)
        };
        let id = match self.scheme {
            Scheme::Stripe => field(&["id"]),
            Scheme::Slack => field(&["event_id"]),
            s => header(s.id_header()),
        };
        let ty = match self.scheme {
            Scheme::Stripe | Scheme::Standard => field(&["type"]),
            Scheme::Slack => field(&["event", "type"]),
            s => header(s.type_header()),
        };
        let ty = ty.as_deref().unwrap_or("unknown");
        let Some(id) = id.as_deref() else {
            if self.insecure {
                // Takes anything, as the careless endpoint it plays.
                self.accepted.fetch_add(1, Ordering::Relaxed);
                self.processed.fetch_add(1, Ordering::Relaxed);
                return json_response(200, &json!({"received": true}));
            }
            let why = match self.scheme {
                Scheme::Stripe => "the payload is not a Stripe event (a JSON object with an id)",
                Scheme::Slack => {
                    "the payload is not a Slack event callback (a JSON object with an event_id)"
                }
                Scheme::Github => {
                    "no X-GitHub-Delivery header: a redelivery could not be told apart"
                }
                Scheme::Standard => "no webhook-id header: a redelivery could not be told apart",
                Scheme::Shopify => {
                    "no X-Shopify-Webhook-Id header: a redelivery could not be told apart"
                }
            };
            return self.reject("invalid_payload", 400, why);
        };
        let fresh = self.seen.lock().expect("webhook ids").first(id, ty);
        self.accepted.fetch_add(1, Ordering::Relaxed);
        if fresh {
            self.processed.fetch_add(1, Ordering::Relaxed);
            json_response(200, &json!({"received": true}))
        } else {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
            json_response(200, &json!({"received": true, "duplicate": true}))
        }
    }

    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    pub fn duplicates(&self) -> u64 {
        self.duplicates.load(Ordering::Relaxed)
    }

    pub fn processed(&self) -> u64 {
        self.processed.load(Ordering::Relaxed)
    }

    /// Rejections for one reason (see the stats' `rejected` keys).
    pub fn rejected(&self, reason: &str) -> u64 {
        REASONS
            .iter()
            .position(|r| *r == reason)
            .map(|i| self.rejected[i].load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    pub fn rejected_total(&self) -> u64 {
        self.rejected
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Events processed (first deliveries) of one type.
    pub fn processed_of(&self, ty: &str) -> u64 {
        let seen = self.seen.lock().expect("webhook ids");
        seen.by_type.get(ty).copied().unwrap_or(0)
    }

    pub fn to_json(&self) -> Value {
        let rejected: BTreeMap<&str, u64> = REASONS
            .iter()
            .zip(&self.rejected)
            .map(|(r, c)| (*r, c.load(Ordering::Relaxed)))
            .filter(|(_, c)| *c > 0)
            .collect();
        let by_type = self.seen.lock().expect("webhook ids").by_type.clone();
        json!({
            "path": path(self.scheme),
            "mode": self.mode(),
            "received": self.received(),
            "accepted": self.accepted(),
            "rejected_total": self.rejected_total(),
            "rejected": rejected,
            "duplicates": self.duplicates(),
            "processed": self.processed(),
            "processed_by_type": by_type,
        })
    }

    fn mode(&self) -> &'static str {
        if self.insecure {
            "insecure"
        } else if self.key.is_some() {
            "verifying"
        } else {
            "not configured"
        }
    }

    pub fn reset(&self) {
        for c in [
            &self.received,
            &self.accepted,
            &self.duplicates,
            &self.processed,
        ]
        .into_iter()
        .chain(&self.rejected)
        {
            c.store(0, Ordering::Relaxed);
        }
        self.seen.lock().expect("webhook ids").clear();
    }
}

fn rejection_message(scheme: Scheme, e: VerifyError) -> String {
    let tolerance = signature::DEFAULT_TOLERANCE_SECS;
    match (scheme, e) {
        (Scheme::Stripe, VerifyError::Stale) => {
            format!("{e}: the signed timestamp is more than {tolerance}s old")
        }
        (Scheme::Stripe, _) => e.to_string(),
        (_, VerifyError::Missing) => match (scheme.timestamp_header(), scheme.id_header()) {
            (Some(t), Some(i)) => format!(
                "missing required headers: {i}, {t} and {} are all needed",
                scheme.signature_header()
            ),
            (Some(t), None) => format!(
                "missing required headers: {t} and {} are both needed",
                scheme.signature_header()
            ),
            _ => format!("no {} header", scheme.signature_header()),
        },
        (_, VerifyError::Malformed) => format!(
            "{} is not a whole number of unix seconds",
            scheme.timestamp_header().unwrap_or("the timestamp")
        ),
        (_, VerifyError::Stale) => format!(
            "timestamp outside the tolerance zone: {} is more than {tolerance}s from now",
            scheme.timestamp_header().unwrap_or("the timestamp")
        ),
        (_, VerifyError::NoV1 | VerifyError::Mismatch) => format!(
            "no signature in {} matches the expected signature for the payload",
            scheme.signature_header()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::Seen;

    #[test]
    fn remembers_the_latest_ids_only() {
        let mut seen = Seen::new(3);
        for id in ["evt_1", "evt_2", "evt_3"] {
            assert!(seen.first(id, "charge.succeeded"), "{id} is new");
        }
        assert!(
            !seen.first("evt_3", "charge.succeeded"),
            "a repeat is a duplicate"
        );
        assert!(seen.first("evt_4", "invoice.paid"));
        assert_eq!((seen.ids.len(), seen.order.len()), (3, 3), "bounded");
        assert!(
            !seen.first("evt_2", "charge.succeeded"),
            "still inside the window"
        );
        assert!(
            seen.first("evt_1", "charge.succeeded"),
            "evt_1 left the window"
        );
        assert_eq!(seen.by_type.get("charge.succeeded"), Some(&4));
        assert_eq!(seen.by_type.get("invoice.paid"), Some(&1));
    }
}
