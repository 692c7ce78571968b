//! `POST /api/v1/llm/chat`: an LLM-shaped peer. Streams its answer as
//! server-sent events, one token per event every `--llm-delay`, then a usage
//! block, then `[DONE]`, as chat-completion APIs do:
//!
//! ```text
//! data: {"token":"lorem"}
//! data: {"usage":{"prompt_tokens":3,"completion_tokens":12,"total_tokens":15,"cost":0.00015}}
//! data: [DONE]
//! ```
//!
//! `X-Cache: HIT` or `MISS` and the answer's length follow from the prompt
//! alone, so a run's numbers can be predicted and compared.

use super::{State, json_response};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use serde_json::{Value, json};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;

/// Price of one token, in millionths of a dollar (so a 20-token answer
/// costs $0.0002).
const MICRO_DOLLARS_PER_TOKEN: u64 = 10;

const WORDS: &[&str] = &[
    "load", "test", "the", "server", "answers", "quickly", "under", "pressure", "with", "tokens",
    "streamed", "one", "by", "one", "until", "done",
];

/// What the route sent, as `/__volley/stats` reports it under `llm`.
#[derive(Default)]
pub struct LlmStats {
    pub requests: AtomicU64,
    /// Answers streamed to their end (usage block sent).
    pub completed: AtomicU64,
    pub cache_hits: AtomicU64,
    /// Sum of every usage block's total_tokens.
    pub total_tokens: AtomicU64,
    /// Token events sent.
    pub token_events: AtomicU64,
    pub cost_micro_dollars: AtomicU64,
}

impl LlmStats {
    pub fn to_json(&self) -> Value {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        json!({
            "requests": n(&self.requests),
            "completed": n(&self.completed),
            "cache_hits": n(&self.cache_hits),
            "total_tokens": n(&self.total_tokens),
            "token_events": n(&self.token_events),
            "cost": n(&self.cost_micro_dollars) as f64 / 1e6,
        })
    }

    pub fn reset(&self) {
        for c in [
            &self.requests,
            &self.completed,
            &self.cache_hits,
            &self.total_tokens,
            &self.token_events,
            &self.cost_micro_dollars,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }
}

/// A response body fed by the task that writes the stream.
pub struct Streamed(mpsc::Receiver<Bytes>);

impl hyper::body::Body for Streamed {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

/// How the prompt decides the answer: (cache hit, completion tokens, prompt tokens).
pub fn shape(prompt: &str) -> (bool, u64, u64) {
    let h = crate::name_hash(prompt);
    let hit = (h >> 8) % 100 < 45;
    let completion = 8 + (h >> 24) % 25;
    let prompt_tokens = prompt.split_whitespace().count().max(1) as u64;
    (hit, completion, prompt_tokens)
}

pub async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Response<http_body_util::Either<super::Body, Streamed>> {
    use http_body_util::Either;
    let body = match Limited::new(req.into_body(), 1 << 20).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            state.stats.record_other(400);
            return json_response(400, &json!({"error": "unreadable body"})).map(Either::Left);
        }
    };
    let prompt = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("prompt")?.as_str().map(str::to_string));
    let Some(prompt) = prompt else {
        state.stats.record_other(400);
        return json_response(400, &json!({"error": "send JSON: {\"prompt\": \"...\"}"}))
            .map(Either::Left);
    };
    let (hit, completion, prompt_tokens) = shape(&prompt);
    let llm = &state.llm;
    llm.requests.fetch_add(1, Ordering::Relaxed);
    if hit {
        llm.cache_hits.fetch_add(1, Ordering::Relaxed);
    }
    state.stats.record_other(200);
    let delay = state.opts.llm_delay.unwrap_or(Duration::from_millis(20));
    let (tx, rx) = mpsc::channel(4);
    let st = state.clone();
    tokio::spawn(async move {
        let llm = &st.llm;
        for i in 0..completion {
            tokio::time::sleep(delay).await;
            let event = format!(
                "data: {}\n\n",
                json!({"token": WORDS[(i as usize) % WORDS.len()]})
            );
            if tx.send(Bytes::from(event)).await.is_err() {
                return;
            }
            llm.token_events.fetch_add(1, Ordering::Relaxed);
        }
        let total = prompt_tokens + completion;
        let micro = total * MICRO_DOLLARS_PER_TOKEN;
        let usage = json!({"usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": total,
            "cost": micro as f64 / 1e6,
        }});
        if tx
            .send(Bytes::from(format!("data: {usage}\n\n")))
            .await
            .is_err()
        {
            return;
        }
        llm.total_tokens.fetch_add(total, Ordering::Relaxed);
        llm.cost_micro_dollars.fetch_add(micro, Ordering::Relaxed);
        llm.completed.fetch_add(1, Ordering::Relaxed);
        let _ = tx.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
    });
    Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .header("x-cache", if hit { "HIT" } else { "MISS" })
        .body(Either::Right(Streamed(rx)))
        .expect("static response parts are valid")
}
