//! `volley serve`: the embedded demo target. A JSON API shaped like the
//! services teams test, with injectable latency and errors, and a stats
//! endpoint (`/__volley/stats`) so tests compare volley's counts with the
//! server's own.

mod api;
pub mod chat;
pub mod flows;
pub mod llm;
pub mod load;
mod stats;
pub mod webhook;

pub use stats::Stats;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use volley_protocols::duration::DurRange;

/// FNV-1a of a text: stable across builds and runs, as std's hasher is not.
fn name_hash(s: &str) -> u64 {
    let mut h = fnv::FnvHasher::default();
    std::hash::Hasher::write(&mut h, s.as_bytes());
    std::hash::Hasher::finish(&h)
}

#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    /// Delay added to every API response.
    pub latency: Option<DurRange>,
    /// Share of API requests answered 500.
    pub error_rate: f64,
    /// Signing secret of `POST /webhooks/<scheme>` (`whsec_...`; the
    /// standard route needs `whsec_` + base64).
    pub webhook_secret: Option<String>,
    /// Accept every webhook delivery unverified (to see forgery checks fire).
    pub webhook_insecure: bool,
    /// Share of chat sessions closed abruptly (no close frame) mid-session.
    pub ws_drop_rate: f64,
    /// When a session chosen for a drop is dropped, after it opens (default 1s..5s).
    pub ws_drop_after: Option<DurRange>,
    /// Share of chat deliveries (one message to one member) silently withheld.
    pub ws_loss_rate: f64,
    /// Delay before a chat message is delivered to the other members.
    pub ws_delay: Option<DurRange>,
    /// At most this many API requests in flight; beyond, a short queue, then 503.
    pub capacity: Option<usize>,
    /// Requests that may wait for a slot (default: a quarter of `capacity`).
    pub queue: Option<usize>,
    /// How long one may wait (default 100ms).
    pub queue_timeout: Option<std::time::Duration>,
    /// Grow resident memory by this many KiB per second (a leak, on purpose).
    pub leak_kb_per_s: f64,
    /// Delay before each token `POST /api/v1/llm/chat` streams (default 20ms).
    pub llm_delay: Option<std::time::Duration>,
}

pub type Body = Full<Bytes>;

pub struct State {
    pub opts: ServeOptions,
    pub stats: Stats,
    pub api: api::Store,
    pub webhooks: webhook::Receivers,
    pub chat: chat::Chat,
    /// Cancelled when the server stops: long-lived sessions end with it.
    pub stop: CancellationToken,
    pub load: load::Load,
    pub flows: flows::Flows,
    pub llm: llm::LlmStats,
}

pub struct Server {
    pub addr: SocketAddr,
    pub state: Arc<State>,
    stop: CancellationToken,
}

impl Server {
    /// Bind and serve in the background on the current runtime.
    pub async fn start(addr: SocketAddr, opts: ServeOptions) -> std::io::Result<Server> {
        // A deep accept queue: thousands of chat participants may connect within a second.
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(4096)?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let load = load::Load::new(opts.capacity, opts.queue, opts.queue_timeout);
        load::start_leak(opts.leak_kb_per_s, load.leaked.clone());
        let state = Arc::new(State {
            load,
            webhooks: webhook::Receivers::new(
                opts.webhook_secret.as_deref(),
                opts.webhook_insecure,
            ),
            opts,
            stats: Stats::default(),
            api: api::Store::new(),
            chat: chat::Chat::default(),
            stop: stop.clone(),
            flows: flows::Flows::default(),
            llm: llm::LlmStats::default(),
        });
        tokio::spawn(accept_loop(listener, state.clone(), stop.clone()));
        Ok(Server { addr, state, stop })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The chat endpoint: `ws://ADDR/ws/chat`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws/chat", self.addr)
    }

    pub fn shutdown(&self) {
        self.stop.cancel();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>, stop: CancellationToken) {
    loop {
        let (tcp, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait, don't spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => return,
        };
        let _ = tcp.set_nodelay(true);
        let state = state.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let state = state.clone();
                async move {
                    // The one streamed answer; everything else is one body.
                    let resp = if req.uri().path() == "/api/v1/llm/chat"
                        && req.method() == hyper::Method::POST
                    {
                        llm::handle(state, req).await
                    } else {
                        handle(state, req).await.map(http_body_util::Either::Left)
                    };
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), svc);
            tokio::select! {
                _ = conn => {}
                _ = stop.cancelled() => {}
            }
        });
    }
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    if let Some(rest) = path.strip_prefix("/__volley/") {
        return stats::handle(&state, req.method(), rest);
    }
    if path == "/ws/chat" {
        return chat::upgrade(state, req);
    }
    if req.method() == hyper::Method::GET
        && let Some(resp) = load::handle(&state, &path)
    {
        return resp;
    }
    if flows::owns(&path) {
        return flows::handle(&state, req).await;
    }
    if req.method() == hyper::Method::POST
        && let Some(receiver) = state.webhooks.route(&path)
    {
        let resp = receiver.handle(req).await;
        state.stats.record_other(resp.status().as_u16());
        return resp;
    }
    api::handle(&state, req).await
}

pub fn json_response(status: u16, value: &serde_json::Value) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid")
}
