//! Capacity and memory shaping for `volley serve`, so capacity answers can
//! be seen and tested: `--capacity N` (at most N API requests in flight, a
//! short queue beyond that, then 503) and `--leak KB_PER_S` (resident memory
//! grows steadily, as a leaking service's does). Also the target's own
//! numbers for monitors: `GET /api/metrics` (JSON) and `GET /metrics`
//! (Prometheus text).

use super::{Body, State, json_response};
use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, SemaphorePermit};

/// How long a request beyond capacity waits for a slot by default.
pub const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_millis(100);

/// In-flight limit with a bounded, time-limited queue.
pub struct Limiter {
    capacity: usize,
    permits: Semaphore,
    queue: usize,
    timeout: Duration,
    waiting: AtomicUsize,
    rejected: AtomicU64,
}

impl Limiter {
    pub fn new(capacity: usize, queue: usize, timeout: Duration) -> Self {
        Self {
            capacity,
            permits: Semaphore::new(capacity),
            queue,
            timeout,
            waiting: AtomicUsize::new(0),
            rejected: AtomicU64::new(0),
        }
    }

    /// A slot for one request; `None`: the queue is full or the wait ran
    /// out, answer 503.
    async fn enter(&self) -> Option<SemaphorePermit<'_>> {
        // Permits go to queued requests first (the semaphore is fair), so
        // this only succeeds when nobody waits.
        if let Ok(p) = self.permits.try_acquire() {
            return Some(p);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            self.rejected.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let got = tokio::time::timeout(self.timeout, self.permits.acquire()).await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        match got {
            Ok(Ok(p)) => Some(p),
            _ => {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    fn in_flight(&self) -> usize {
        self.capacity - self.permits.available_permits()
    }
}

/// The server's load shaping and what it did.
#[derive(Default)]
pub struct Load {
    pub limiter: Option<Limiter>,
    /// Bytes kept by `--leak` so far.
    pub leaked: Arc<AtomicU64>,
}

/// What a request got from the limiter.
pub enum Entry<'a> {
    Unlimited,
    Slot(#[allow(dead_code)] SemaphorePermit<'a>),
    Rejected,
}

impl Load {
    pub fn new(capacity: Option<usize>, queue: Option<usize>, timeout: Option<Duration>) -> Self {
        Self {
            limiter: capacity.map(|c| {
                let c = c.max(1);
                Limiter::new(
                    c,
                    queue.unwrap_or(c / 4),
                    timeout.unwrap_or(DEFAULT_QUEUE_TIMEOUT),
                )
            }),
            leaked: Arc::default(),
        }
    }

    pub async fn enter(&self) -> Entry<'_> {
        match &self.limiter {
            None => Entry::Unlimited,
            Some(l) => match l.enter().await {
                Some(p) => Entry::Slot(p),
                None => Entry::Rejected,
            },
        }
    }

    pub fn rejected(&self) -> u64 {
        self.limiter
            .as_ref()
            .map(|l| l.rejected.load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    pub fn in_flight(&self) -> usize {
        self.limiter.as_ref().map(Limiter::in_flight).unwrap_or(0)
    }

    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "rejected": self.rejected(),
            "leaked_bytes": self.leaked.load(Ordering::Relaxed),
        });
        if let Some(l) = &self.limiter {
            v["capacity"] = l.capacity.into();
            v["queue"] = l.queue.into();
            v["in_flight"] = l.in_flight().into();
        }
        v
    }
}

/// The 503 a request beyond capacity gets.
pub fn overloaded() -> Response<Body> {
    let mut r = json_response(
        503,
        &serde_json::json!({"error": "over capacity (--capacity): try again later"}),
    );
    r.headers_mut()
        .insert("retry-after", hyper::header::HeaderValue::from_static("1"));
    r
}

/// Grow resident memory by `kb_per_s` KiB per second, for ever: allocate,
/// write every byte (so the pages are resident), keep. The amount follows
/// the clock, so a late timer catches up instead of drifting.
pub fn start_leak(kb_per_s: f64, leaked: Arc<AtomicU64>) {
    if kb_per_s <= 0.0 {
        return;
    }
    tokio::spawn(async move {
        let started = Instant::now();
        let mut kept: Vec<Box<[u8]>> = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            let due = (started.elapsed().as_secs_f64() * kb_per_s * 1024.0) as u64;
            let mut have = leaked.load(Ordering::Relaxed);
            while have < due {
                let n = (due - have).min(64 * 1024) as usize;
                kept.push(std::hint::black_box(vec![0xA5u8; n].into_boxed_slice()));
                have += n as u64;
            }
            leaked.store(have, Ordering::Relaxed);
        }
    });
}

/// `GET /api/metrics` and `GET /metrics`: the target's own process numbers.
pub fn handle(state: &State, path: &str) -> Option<Response<Body>> {
    // Every GET passes through here: read /proc only for these two paths.
    if path != "/api/metrics" && path != "/metrics" {
        return None;
    }
    let me = volley_protocols::procfs::read(std::process::id()).ok();
    let rss = me.map(|s| s.rss_bytes).unwrap_or(0);
    let cpu = me.map(|s| s.cpu_seconds).unwrap_or(0.0);
    let total = state.stats.total();
    let load = &state.load;
    match path {
        "/api/metrics" => Some(json_response(
            200,
            &serde_json::json!({
                "process": {
                    "pid": std::process::id(),
                    "rss_bytes": rss,
                    "memory_usage_mb": rss as f64 / (1024.0 * 1024.0),
                    "cpu_seconds": cpu,
                },
                "requests": {
                    "total": total,
                    "in_flight": load.in_flight(),
                    "rejected": load.rejected(),
                },
                "leaked_bytes": load.leaked.load(Ordering::Relaxed),
            }),
        )),
        "/metrics" => {
            let text = format!(
                "# HELP process_resident_memory_bytes Resident memory size in bytes.\n\
# TYPE process_resident_memory_bytes gauge\n\
process_resident_memory_bytes {rss}\n\
# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n\
# TYPE process_cpu_seconds_total counter\n\
process_cpu_seconds_total {cpu}\n\
# HELP volley_serve_requests_total Requests answered.\n\
# TYPE volley_serve_requests_total counter\n\
volley_serve_requests_total {total}\n\
# HELP volley_serve_in_flight API requests being served (--capacity).\n\
# TYPE volley_serve_in_flight gauge\n\
volley_serve_in_flight {}\n\
# HELP volley_serve_rejected_total Requests answered 503 over capacity.\n\
# TYPE volley_serve_rejected_total counter\n\
volley_serve_rejected_total {}\n\
# HELP volley_serve_leaked_bytes Memory kept on purpose (--leak).\n\
# TYPE volley_serve_leaked_bytes gauge\n\
volley_serve_leaked_bytes {}\n",
                load.in_flight(),
                load.rejected(),
                load.leaked.load(Ordering::Relaxed)
            );
            Some(
                Response::builder()
                    .status(200)
                    .header("content-type", "text/plain; version=0.0.4")
                    .body(Full::new(Bytes::from(text)))
                    .expect("static response parts are valid"),
            )
        }
        _ => None,
    }
}
