//! Routes for the flows real APIs have beyond JSON calls: a cookie session
//! login, redirect chains, a rate limit that answers 429 with Retry-After,
//! and a multipart upload. Each counts what it saw, so tests compare
//! volley's numbers with the server's own.

use super::{Body, State, json_response};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The cookie a session login sets.
pub const SESSION_COOKIE: &str = "vsession";

/// What these routes saw.
pub struct Flows {
    pub logins: AtomicU64,
    /// `POST /api/v1/session/logout` with a valid session cookie: that
    /// session is then refused until its user logs in again.
    pub logouts: AtomicU64,
    revoked: Mutex<std::collections::HashSet<u64>>,
    /// `GET /api/v1/session/me` with a valid session cookie, and without.
    pub authorised: AtomicU64,
    pub unauthorised: AtomicU64,
    /// Redirect route answers: each hop (3xx) and each end (200), by method.
    pub redirect_hops: AtomicU64,
    pub redirect_ends: AtomicU64,
    pub redirect_posts: AtomicU64,
    /// `GET /api/v1/limited`: answers per fixed window, and the 429s.
    limited: Mutex<BTreeMap<u64, u64>>,
    pub throttled: AtomicU64,
    started: Instant,
    /// Parts of every upload, in arrival order (at most 10,000 kept).
    uploads: Mutex<Vec<Part>>,
    pub upload_requests: AtomicU64,
    pub upload_failures: AtomicU64,
}

/// One multipart part as the server parsed it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub size: usize,
    pub sha256: String,
}

/// The window of the rate limit: one request is allowed per window.
const WINDOW: Duration = Duration::from_secs(1);

impl Default for Flows {
    fn default() -> Self {
        Self {
            logins: AtomicU64::new(0),
            logouts: AtomicU64::new(0),
            revoked: Mutex::default(),
            authorised: AtomicU64::new(0),
            unauthorised: AtomicU64::new(0),
            redirect_hops: AtomicU64::new(0),
            redirect_ends: AtomicU64::new(0),
            redirect_posts: AtomicU64::new(0),
            limited: Mutex::default(),
            throttled: AtomicU64::new(0),
            started: Instant::now(),
            uploads: Mutex::default(),
            upload_requests: AtomicU64::new(0),
            upload_failures: AtomicU64::new(0),
        }
    }
}

impl Flows {
    /// Most requests `GET /api/v1/limited` saw in one window.
    pub fn limited_peak(&self) -> u64 {
        let w = self.limited.lock().expect("limited");
        w.values().copied().max().unwrap_or(0)
    }

    pub fn limited_total(&self) -> u64 {
        let w = self.limited.lock().expect("limited");
        w.values().sum()
    }

    pub fn uploads(&self) -> Vec<Part> {
        self.uploads.lock().expect("uploads").clone()
    }

    pub fn to_json(&self) -> Value {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        json!({
            "logins": n(&self.logins),
            "logouts": n(&self.logouts),
            "authorised": n(&self.authorised),
            "unauthorised": n(&self.unauthorised),
            "redirect_hops": n(&self.redirect_hops),
            "redirect_ends": n(&self.redirect_ends),
            "redirect_posts": n(&self.redirect_posts),
            "limited_requests": self.limited_total(),
            "limited_peak_per_window": self.limited_peak(),
            "throttled": n(&self.throttled),
            "upload_requests": n(&self.upload_requests),
            "upload_failures": n(&self.upload_failures),
            "upload_parts": self.uploads.lock().expect("uploads").len(),
        })
    }

    pub fn reset(&self) {
        for c in [
            &self.logins,
            &self.logouts,
            &self.authorised,
            &self.unauthorised,
            &self.redirect_hops,
            &self.redirect_ends,
            &self.redirect_posts,
            &self.throttled,
            &self.upload_requests,
            &self.upload_failures,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        self.limited.lock().expect("limited").clear();
        self.revoked.lock().expect("revoked").clear();
        self.uploads.lock().expect("uploads").clear();
    }
}

/// Whether `path` is one of these routes.
pub fn owns(path: &str) -> bool {
    [
        "/api/v1/session/",
        "/api/v1/redirect/",
        "/api/v1/upload",
        "/api/v1/limited",
    ]
    .iter()
    .any(|p| path.starts_with(p))
}

pub async fn handle(state: &State, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method().clone();
    let f = &state.flows;
    let resp = match (&method, &segs[2..]) {
        (&Method::POST, ["session", "login"]) => login(f, req).await,
        (&Method::GET, ["session", "me"]) => me(f, &req),
        (&Method::POST, ["session", "logout"]) => {
            if let Some(id) = session_of(&req) {
                f.logouts.fetch_add(1, Ordering::Relaxed);
                f.revoked.lock().expect("revoked").insert(id);
            }
            let mut r = json_response(200, &json!({"logged_out": true}));
            set_cookie(&mut r, &format!("{SESSION_COOKIE}=; Path=/; Max-Age=0"));
            r
        }
        (_, ["redirect", rest]) => redirect(f, &req, rest).await,
        (&Method::GET, ["limited"]) => limited(f),
        (&Method::POST, ["upload"]) => upload(f, req).await,
        _ => json_response(404, &json!({"error": format!("no route {method} {path}")})),
    };
    state.stats.record_other(resp.status().as_u16());
    resp
}

/// A session token for a user id: `s_<id>_<check>`.
pub fn session_for(id: u64) -> String {
    format!("s_{id}_{:x}", id.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 36)
}

fn session_user(token: &str) -> Option<u64> {
    let (id, _) = token.strip_prefix("s_")?.split_once('_')?;
    let id: u64 = id.parse().ok()?;
    (session_for(id) == token).then_some(id)
}

fn set_cookie(r: &mut Response<Body>, value: &str) {
    if let Ok(v) = hyper::header::HeaderValue::from_str(value) {
        r.headers_mut().append(hyper::header::SET_COOKIE, v);
    }
}

async fn read_body(req: Request<Incoming>, limit: usize) -> Option<Bytes> {
    Some(
        Limited::new(req.into_body(), limit)
            .collect()
            .await
            .ok()?
            .to_bytes(),
    )
}

/// `POST /api/v1/session/login` with a JSON or form body `email`, `password`:
/// sets the session cookie and answers its token (also good as a Bearer
/// token); `?next=/path` answers 303 to it, as login forms do.
async fn login(f: &Flows, req: Request<Incoming>) -> Response<Body> {
    let next = req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|p| p.strip_prefix("next="))
            .map(str::to_string)
    });
    let form = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let Some(body) = read_body(req, 1 << 16).await else {
        return json_response(400, &json!({"error": "unreadable body"}));
    };
    let field = |name: &str| -> String {
        if form {
            String::from_utf8_lossy(&body)
                .split('&')
                .find_map(|p| p.split_once('=').filter(|(k, _)| *k == name))
                .map(|(_, v)| v.replace('+', " "))
                .unwrap_or_default()
        } else {
            serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get(name)?.as_str().map(str::to_string))
                .unwrap_or_default()
        }
    };
    let (email, password) = (field("email"), field("password"));
    if email.is_empty() || password.is_empty() {
        return json_response(401, &json!({"error": "email and password are required"}));
    }
    f.logins.fetch_add(1, Ordering::Relaxed);
    let id = crate::api::user_id(&email);
    f.revoked.lock().expect("revoked").remove(&id);
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax",
        session_for(id)
    );
    let mut r = match next.filter(|n| n.starts_with('/')) {
        Some(next) => Response::builder()
            .status(303)
            .header("location", next)
            .body(Body::new(Bytes::new()))
            .expect("static parts"),
        // The token too, for APIs that send it as Authorization: Bearer.
        None => json_response(200, &json!({"user_id": id, "token": session_for(id)})),
    };
    set_cookie(&mut r, &cookie);
    r
}

/// The user of the request's session (its cookie, or the same token as
/// `Authorization: Bearer`), if it holds a valid one.
fn session_of(req: &Request<Incoming>) -> Option<u64> {
    let bearer = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok()?.strip_prefix("Bearer "))
        .and_then(|t| session_user(t.trim()));
    bearer.or_else(|| {
        req.headers()
            .get_all(hyper::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| *k == SESSION_COOKIE)
            .and_then(|(_, v)| session_user(v))
    })
}

/// `GET /api/v1/session/me`: 200 with a session cookie not logged out,
/// else 401.
fn me(f: &Flows, req: &Request<Incoming>) -> Response<Body> {
    let user = session_of(req).filter(|id| !f.revoked.lock().expect("revoked").contains(id));
    match user {
        Some(id) => {
            f.authorised.fetch_add(1, Ordering::Relaxed);
            json_response(200, &json!({"user_id": id}))
        }
        None => {
            f.unauthorised.fetch_add(1, Ordering::Relaxed);
            json_response(
                401,
                &json!({"error": "no session: POST /api/v1/session/login first (the session is a cookie)"}),
            )
        }
    }
}

/// `/api/v1/redirect/N[?status=302]`: N redirects to N-1 with that status,
/// 0 answers 200 with the method and body size that arrived.
/// `/api/v1/redirect/loop` redirects to itself; `/api/v1/redirect/to?url=U` to U.
async fn redirect(f: &Flows, req: &Request<Incoming>, rest: &str) -> Response<Body> {
    let query = req.uri().query().unwrap_or("");
    let param = |k: &str| {
        query
            .split('&')
            .find_map(|p| p.split_once('=').filter(|(n, _)| *n == k).map(|(_, v)| v))
    };
    let status = param("status")
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| matches!(s, 301 | 302 | 303 | 307 | 308))
        .unwrap_or(302);
    if req.method() == Method::POST {
        f.redirect_posts.fetch_add(1, Ordering::Relaxed);
    }
    let hop = |to: String| {
        f.redirect_hops.fetch_add(1, Ordering::Relaxed);
        Response::builder()
            .status(status)
            .header("location", to)
            .body(Body::new(Bytes::new()))
            .expect("static parts")
    };
    match rest {
        "loop" => hop("/api/v1/redirect/loop".into()),
        "to" => match param("url") {
            Some(u) => hop(super::api::decode(u)),
            None => json_response(400, &json!({"error": "give ?url=..."})),
        },
        n => match n.parse::<u32>() {
            Ok(0) => {
                f.redirect_ends.fetch_add(1, Ordering::Relaxed);
                let auth = req.headers().contains_key(hyper::header::AUTHORIZATION);
                json_response(
                    200,
                    &json!({"method": req.method().as_str(), "authorization": auth}),
                )
            }
            Ok(n) => hop(format!("/api/v1/redirect/{}?status={status}", n - 1)),
            Err(_) => json_response(
                404,
                &json!({"error": "redirect/N, redirect/loop or redirect/to?url="}),
            ),
        },
    }
}

/// `GET /api/v1/limited`: one request per one-second window is answered
/// 200; the rest 429 with Retry-After (seconds to the next window).
fn limited(f: &Flows) -> Response<Body> {
    let elapsed = f.started.elapsed();
    let window = elapsed.as_millis() as u64 / WINDOW.as_millis() as u64;
    let seen = {
        let mut w = f.limited.lock().expect("limited");
        let c = w.entry(window).or_default();
        *c += 1;
        *c
    };
    if seen == 1 {
        return json_response(200, &json!({"window": window}));
    }
    f.throttled.fetch_add(1, Ordering::Relaxed);
    let left = WINDOW.saturating_sub(elapsed - WINDOW * window as u32);
    let mut r = json_response(429, &json!({"error": "rate limited", "window": window}));
    r.headers_mut().insert(
        "retry-after",
        hyper::header::HeaderValue::from(left.as_secs_f64().ceil().max(1.0) as u64),
    );
    r
}

/// `POST /api/v1/upload` (multipart/form-data): the parts as parsed, each
/// with its size and SHA-256.
async fn upload(f: &Flows, req: Request<Incoming>) -> Response<Body> {
    f.upload_requests.fetch_add(1, Ordering::Relaxed);
    let fail = |why: String| {
        f.upload_failures.fetch_add(1, Ordering::Relaxed);
        json_response(400, &json!({"error": why}))
    };
    let boundary = match req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(multer::parse_boundary)
    {
        Some(Ok(b)) => b,
        _ => return fail("send multipart/form-data with a boundary".into()),
    };
    let Some(body) = read_body(req, 32 << 20).await else {
        return fail("body too large or unreadable".into());
    };
    let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(body) });
    let mut mp = multer::Multipart::new(stream, boundary);
    let mut parts = Vec::new();
    loop {
        match mp.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or("").to_string();
                let filename = field.file_name().map(str::to_string);
                let content_type = field.content_type().map(|m| m.to_string());
                match field.bytes().await {
                    Ok(b) => parts.push(Part {
                        name,
                        filename,
                        content_type,
                        size: b.len(),
                        sha256: hex(&Sha256::digest(&b)),
                    }),
                    Err(e) => return fail(format!("part {name:?}: {e}")),
                }
            }
            Ok(None) => break,
            Err(e) => return fail(format!("not multipart: {e}")),
        }
    }
    {
        let mut kept = f.uploads.lock().expect("uploads");
        let room = 10_000usize.saturating_sub(kept.len());
        kept.extend(parts.iter().take(room).cloned());
    }
    json_response(200, &json!({ "parts": parts }))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
