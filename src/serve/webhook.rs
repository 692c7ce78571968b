//! `POST /webhooks/stripe`: a receiver that behaves as a careful Stripe
//! integration should. It verifies the signature as Stripe's libraries do
//! (any matching v1, constant-time, 300 s tolerance), answers 400 to what
//! fails, 200 to the rest, and processes each event id once (a duplicate is
//! acknowledged, not processed again). Everything is counted for
//! `/__volley/stats`, so tests compare what volley sent with what arrived.
//! `--webhook-insecure` accepts everything: the hole the forgery check finds.

use super::{Body, json_response};
use http_body_util::{BodyExt, Limited};
use hyper::Response;
use hyper::body::Incoming;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use volley_protocols::webhook::signature::{self, Key, VerifyError};

pub const PATH: &str = "/webhooks/stripe";

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

pub struct Receiver {
    key: Option<Key>,
    insecure: bool,
    received: AtomicU64,
    accepted: AtomicU64,
    duplicates: AtomicU64,
    processed: AtomicU64,
    rejected: Vec<AtomicU64>,
    seen: Mutex<Seen>,
}

impl Receiver {
    pub fn new(secret: Option<&str>, insecure: bool) -> Self {
        Self {
            key: secret.map(|s| Key::new(s.as_bytes())),
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
        let header = req
            .headers()
            .get(signature::HEADER)
            .map(|v| v.as_bytes().to_vec());
        let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return self.reject("payload_too_large", 413, "payload over 1 MiB");
            }
        };
        if !self.insecure {
            let Some(key) = &self.key else {
                return self.reject(
                    "not_configured",
                    500,
                    "this receiver has no signing secret: start volley serve with --webhook-secret whsec_... (or --webhook-insecure)",
                );
            };
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            if let Err(e) = signature::verify(
                header.as_deref(),
                &body,
                key,
                signature::DEFAULT_TOLERANCE_SECS,
                now,
            ) {
                return self.reject(e.reason(), 400, &rejection_message(e));
            }
        }
        let event: Option<Value> = serde_json::from_slice(&body).ok();
        let id = event
            .as_ref()
            .and_then(|v| v.get("id"))
            .and_then(Value::as_str);
        let ty = event
            .as_ref()
            .and_then(|v| v.get("type"))
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        let Some(id) = id else {
            if self.insecure {
                // Takes anything, as the careless endpoint it plays.
                self.accepted.fetch_add(1, Ordering::Relaxed);
                self.processed.fetch_add(1, Ordering::Relaxed);
                return json_response(200, &json!({"received": true}));
            }
            return self.reject(
                "invalid_payload",
                400,
                "the payload is not a Stripe event (a JSON object with an id)",
            );
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
            "mode": if self.insecure { "insecure" } else if self.key.is_some() { "verifying" } else { "not configured" },
            "received": self.received(),
            "accepted": self.accepted(),
            "rejected_total": self.rejected_total(),
            "rejected": rejected,
            "duplicates": self.duplicates(),
            "processed": self.processed(),
            "processed_by_type": by_type,
        })
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

fn rejection_message(e: VerifyError) -> String {
    match e {
        VerifyError::Stale => format!(
            "{e}: the signed timestamp is more than {}s old",
            signature::DEFAULT_TOLERANCE_SECS
        ),
        _ => e.to_string(),
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
