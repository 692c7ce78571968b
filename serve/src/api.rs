//! The demo JSON API: auth, wallet, catalogue with stock, event RSVPs, and a
//! slow report. In memory; counts every answer in `State::stats`.

use super::{Body, State, json_response};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Route labels, as `/__volley/stats` reports them.
pub const ROUTES: &[&str] = &[
    "GET /api/v1/health",
    "POST /api/v1/auth/login",
    "GET /api/v1/users/profile",
    "GET /api/v1/wallet/balance",
    "GET /api/v1/transactions",
    "GET /api/v1/cards",
    "GET /api/products",
    "GET /api/products/search",
    "GET /api/products/{id}",
    "POST /api/orders",
    "GET /api/events/{id}",
    "POST /api/events/{id}/rsvp",
    "GET /api/reports/inventory",
    "unmatched",
];

const PRODUCTS: usize = 1000;
const TIERS: [&str; 3] = ["free", "starter", "pro"];
const EVENTS: usize = 100;
const ADJECTIVES: &[&str] = &[
    "Classic", "Smart", "Eco", "Pro", "Mini", "Ultra", "Vintage", "Urban", "Solar", "Quiet",
];
const NOUNS: &[&str] = &[
    "Lamp",
    "Backpack",
    "Kettle",
    "Headphones",
    "Chair",
    "Bottle",
    "Watch",
    "Jacket",
    "Speaker",
    "Notebook",
];

pub struct Store {
    stock: Vec<AtomicI64>,
    seats: Vec<AtomicI64>,
    orders: AtomicU64,
    rsvps: AtomicU64,
}

/// Initial stock: the first 10 products are scarce, for sold-out (409) tests.
fn initial_stock(id: usize) -> i64 {
    if id <= 10 { 50 } else { 1_000_000 }
}

/// Initial seats: event 1 is small, for flash-crowd RSVP tests.
fn initial_seats(id: usize) -> i64 {
    if id == 1 { 100 } else { 100_000 }
}

impl Store {
    pub fn new() -> Self {
        Self {
            stock: (1..=PRODUCTS)
                .map(|id| AtomicI64::new(initial_stock(id)))
                .collect(),
            seats: (1..=EVENTS)
                .map(|id| AtomicI64::new(initial_seats(id)))
                .collect(),
            orders: AtomicU64::new(0),
            rsvps: AtomicU64::new(0),
        }
    }

    pub fn reset(&self) {
        for (i, s) in self.stock.iter().enumerate() {
            s.store(initial_stock(i + 1), Ordering::Relaxed);
        }
        for (i, s) in self.seats.iter().enumerate() {
            s.store(initial_seats(i + 1), Ordering::Relaxed);
        }
    }

    /// Take `n` from `pool[id-1]` if enough is left.
    fn take(pool: &[AtomicI64], id: usize, n: i64) -> Option<bool> {
        let cell = pool.get(id.checked_sub(1)?)?;
        Some(
            cell.fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                (left >= n).then_some(left - n)
            })
            .is_ok(),
        )
    }
}

fn product_name(id: usize) -> String {
    format!(
        "{} {}",
        ADJECTIVES[id % ADJECTIVES.len()],
        NOUNS[(id / ADJECTIVES.len()) % NOUNS.len()]
    )
}

fn product(id: usize, store: &Store) -> Value {
    json!({
        "id": id,
        "name": product_name(id),
        "price_cents": 499 + (id * 37 % 20_000),
        "stock": store.stock[id - 1].load(Ordering::Relaxed).max(0),
    })
}

fn query(req: &Request<Incoming>, key: &str) -> Option<String> {
    req.uri().query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k) == key).then(|| decode(v))
    })
}

pub(super) fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn page(req: &Request<Incoming>) -> (usize, usize) {
    let page = query(req, "page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1usize)
        .max(1);
    let per = query(req, "per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(20usize)
        .clamp(1, 100);
    (page, per)
}

/// The user id behind `Authorization: Bearer vt_<id>_<check>`.
fn user(req: &Request<Incoming>) -> Option<u64> {
    let token = req
        .headers()
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    let (id, check) = token.strip_prefix("vt_")?.split_once('_')?;
    let id: u64 = id.parse().ok()?;
    (check == format!("{:x}", id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40)).then_some(id)
}

/// The user an email logs in as, the same on every route and every run.
pub(crate) fn user_id(email: &str) -> u64 {
    crate::name_hash(email) % 1_000_000 + 1
}

fn token_for(email: &str) -> (u64, String) {
    let id = user_id(email);
    (
        id,
        format!("vt_{id}_{:x}", id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40),
    )
}

async fn body_json(req: Request<Incoming>) -> Option<Value> {
    let bytes = Limited::new(req.into_body(), 1 << 20)
        .collect()
        .await
        .ok()?
        .to_bytes();
    serde_json::from_slice(&bytes).ok()
}

fn unauthorized() -> Response<Body> {
    json_response(
        401,
        &json!({"error": "missing or invalid bearer token; POST /api/v1/auth/login first"}),
    )
}

pub async fn handle(state: &State, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method().clone();
    let route = match (&method, segs.as_slice()) {
        (&Method::GET, ["api", "v1", "health"]) => 0,
        (&Method::POST, ["api", "v1", "auth", "login"]) => 1,
        (&Method::GET, ["api", "v1", "users", "profile"]) => 2,
        (&Method::GET, ["api", "v1", "wallet", "balance"]) => 3,
        (&Method::GET, ["api", "v1", "transactions"]) => 4,
        (&Method::GET, ["api", "v1", "cards"]) => 5,
        (&Method::GET, ["api", "products"]) => 6,
        (&Method::GET, ["api", "products", "search"]) => 7,
        (&Method::GET, ["api", "products", _]) => 8,
        (&Method::POST, ["api", "orders"]) => 9,
        (&Method::GET, ["api", "events", _]) => 10,
        (&Method::POST, ["api", "events", _, "rsvp"]) => 11,
        (&Method::GET, ["api", "reports", "inventory"]) => 12,
        _ => ROUTES.len() - 1,
    };
    state.stats.arrive();
    let resp = if route == ROUTES.len() - 1 {
        json_response(404, &json!({"error": format!("no route {method} {path}")}))
    } else {
        let _slot = match state.load.enter().await {
            super::load::Entry::Rejected => {
                let resp = super::load::overloaded();
                state.stats.record(route, resp.status().as_u16());
                return resp;
            }
            slot => slot,
        };
        if let Some(lat) = &state.opts.latency {
            tokio::time::sleep(lat.pick(&mut fastrand::Rng::new())).await;
        }
        if state.opts.error_rate > 0.0 && fastrand::f64() < state.opts.error_rate {
            state.stats.injected_error();
            json_response(500, &json!({"error": "injected failure (--error-rate)"}))
        } else {
            answer(state, route, &segs, req).await
        }
    };
    state.stats.record(route, resp.status().as_u16());
    resp
}

async fn answer(
    state: &State,
    route: usize,
    segs: &[&str],
    req: Request<Incoming>,
) -> Response<Body> {
    let store = &state.api;
    match route {
        0 => json_response(200, &json!({"status": "ok"})),
        1 => {
            let Some(b) = body_json(req).await else {
                return json_response(
                    400,
                    &json!({"error": "send JSON: {\"email\": ..., \"password\": ...}"}),
                );
            };
            let email = b.get("email").and_then(Value::as_str).unwrap_or("");
            let password = b.get("password").and_then(Value::as_str).unwrap_or("");
            if email.is_empty() || password.is_empty() {
                return json_response(401, &json!({"error": "email and password are required"}));
            }
            let (id, token) = token_for(email);
            json_response(
                200,
                &json!({"token": token, "user_id": id, "expires_in": 3600}),
            )
        }
        2..=5 => {
            let Some(uid) = user(&req) else {
                return unauthorized();
            };
            match route {
                2 => json_response(
                    200,
                    &json!({"id": uid, "email": format!("user{uid}@example.test"), "name": format!("User {uid}"), "tier": TIERS[(uid % 3) as usize]}),
                ),
                3 => json_response(
                    200,
                    &json!({"user_id": uid, "balance_cents": (uid * 7919) % 1_000_000, "currency": "USD"}),
                ),
                4 => {
                    let (page, per) = page(&req);
                    let total = 250usize;
                    let start = (page - 1) * per;
                    let items: Vec<Value> = (start..(start + per).min(total))
                        .map(|i| json!({"id": format!("tx_{uid}_{i}"), "amount_cents": ((uid as usize + i) * 313) % 50_000, "kind": if i % 3 == 0 { "debit" } else { "credit" }}))
                        .collect();
                    json_response(
                        200,
                        &json!({"page": page, "per_page": per, "total": total, "items": items}),
                    )
                }
                _ => json_response(
                    200,
                    &json!({"cards": [{"id": format!("card_{uid}_1"), "brand": "visa", "last4": format!("{:04}", uid % 10_000)}]}),
                ),
            }
        }
        6 => {
            let (page, per) = page(&req);
            let start = (page - 1) * per;
            let items: Vec<Value> = (start + 1..=(start + per).min(PRODUCTS))
                .map(|id| product(id, store))
                .collect();
            json_response(
                200,
                &json!({"page": page, "per_page": per, "total": PRODUCTS, "items": items}),
            )
        }
        7 => {
            let q = query(&req, "q").unwrap_or_default().to_lowercase();
            let items: Vec<Value> = (1..=PRODUCTS)
                .filter(|id| product_name(*id).to_lowercase().contains(&q))
                .take(20)
                .map(|id| product(id, store))
                .collect();
            json_response(200, &json!({"q": q, "count": items.len(), "items": items}))
        }
        8 => match segs[2].parse::<usize>() {
            Ok(id) if (1..=PRODUCTS).contains(&id) => json_response(200, &product(id, store)),
            _ => json_response(404, &json!({"error": "no such product"})),
        },
        9 => {
            let Some(b) = body_json(req).await else {
                return json_response(
                    400,
                    &json!({"error": "send JSON: {\"product_id\": 1, \"quantity\": 1}"}),
                );
            };
            let id = b.get("product_id").and_then(Value::as_u64).unwrap_or(0) as usize;
            let qty = b.get("quantity").and_then(Value::as_i64).unwrap_or(1);
            if qty < 1 {
                return json_response(400, &json!({"error": "quantity must be at least 1"}));
            }
            match Store::take(&store.stock, id, qty) {
                None => json_response(404, &json!({"error": "no such product"})),
                Some(false) => json_response(409, &json!({"error": "sold out", "product_id": id})),
                Some(true) => {
                    let n = store.orders.fetch_add(1, Ordering::Relaxed) + 1;
                    json_response(
                        201,
                        &json!({"order_id": format!("ord_{n}"), "product_id": id, "quantity": qty}),
                    )
                }
            }
        }
        10 => match segs[2].parse::<usize>() {
            Ok(id) if (1..=EVENTS).contains(&id) => json_response(
                200,
                &json!({"id": id, "name": format!("Event {id}"), "seats_left": store.seats[id - 1].load(Ordering::Relaxed)}),
            ),
            _ => json_response(404, &json!({"error": "no such event"})),
        },
        11 => {
            let id = segs[2].parse::<usize>().unwrap_or(0);
            match Store::take(&store.seats, id, 1) {
                None => json_response(404, &json!({"error": "no such event"})),
                Some(false) => {
                    json_response(409, &json!({"error": "event is full", "event_id": id}))
                }
                Some(true) => {
                    let n = store.rsvps.fetch_add(1, Ordering::Relaxed) + 1;
                    json_response(
                        201,
                        &json!({"rsvp_id": format!("rsvp_{n}"), "event_id": id}),
                    )
                }
            }
        }
        _ => {
            // Slow on purpose: reports are where p99 goes to die.
            tokio::time::sleep(Duration::from_millis(150)).await;
            let units: i64 = store
                .stock
                .iter()
                .map(|s| s.load(Ordering::Relaxed).max(0))
                .sum();
            json_response(
                200,
                &json!({"products": PRODUCTS, "units_in_stock": units, "low_stock": store.stock.iter().filter(|s| s.load(Ordering::Relaxed) < 10).count()}),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_queries() {
        assert_eq!(decode("a+b%20c"), "a b c");
        assert_eq!(decode("100%"), "100%");
    }

    #[test]
    fn stock_runs_out() {
        let s = Store::new();
        assert_eq!(Store::take(&s.stock, 1, 50), Some(true));
        assert_eq!(Store::take(&s.stock, 1, 1), Some(false));
        assert_eq!(Store::take(&s.stock, 0, 1), None);
        s.reset();
        assert_eq!(Store::take(&s.stock, 1, 1), Some(true));
    }
}
