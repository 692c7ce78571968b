//! The demo chat server on `/ws/chat`: rooms, broadcast to the other members,
//! pings answered; and faults on purpose: sessions dropped without a close
//! (`--ws-drop-rate`), broadcasts withheld (`--ws-loss-rate`) or delayed
//! (`--ws-delay`). Faults hit an exact share (every k-th session or delivery,
//! not a coin toss), and every one is counted, so tests compare exactly.
//!
//! Protocol (JSON text frames):
//! - `{"type":"join","room":"r","user":"u"}` -> `{"type":"joined","room":"r","user":"u","members":N}`
//!   (the room may also come from the URL: `/ws/chat?room=r&user=u`)
//! - `{"type":"message",...}` -> to every other member, with `room` and `sender` set
//! - `{"type":"leave"}`, `{"type":"ping"}` -> `{"type":"pong"}`

use super::{Body, State, json_response};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::time::sleep_until;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use volley_protocols::duration::DurRange;

/// When a session chosen by `--ws-drop-rate` is dropped, if not told otherwise.
pub const DEFAULT_DROP_AFTER: DurRange = DurRange {
    min: Duration::from_secs(1),
    max: Duration::from_secs(5),
};

#[derive(Default)]
pub struct ChatStats {
    pub sessions: AtomicU64,
    pub open: AtomicU64,
    pub drops: AtomicU64,
    pub joins: AtomicU64,
    pub messages: AtomicU64,
    pub deliveries: AtomicU64,
    pub withheld: AtomicU64,
    pub rejected: AtomicU64,
}

impl ChatStats {
    pub fn to_json(&self) -> Value {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        json!({
            "sessions": g(&self.sessions),
            "open": g(&self.open),
            "drops": g(&self.drops),
            "joins": g(&self.joins),
            "messages": g(&self.messages),
            "deliveries": g(&self.deliveries),
            "withheld": g(&self.withheld),
            "rejected": g(&self.rejected),
        })
    }
}

struct Out {
    at: Option<Instant>,
    text: Utf8Bytes,
}

struct Member {
    id: u64,
    tx: mpsc::UnboundedSender<Out>,
}

#[derive(Default)]
struct Room {
    members: Mutex<Vec<Member>>,
}

#[derive(Default)]
pub struct Chat {
    rooms: Mutex<HashMap<String, Arc<Room>>>,
    pub stats: ChatStats,
    /// Sessions and deliveries seen, for the exact fault shares.
    session_n: AtomicU64,
    delivery_n: AtomicU64,
}

impl Chat {
    pub fn reset(&self) {
        let s = &self.stats;
        for c in [
            &s.sessions,
            &s.drops,
            &s.joins,
            &s.messages,
            &s.deliveries,
            &s.withheld,
            &s.rejected,
            &self.session_n,
            &self.delivery_n,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }
}

/// The n-th event (0-based) is hit when it completes another whole `share`:
/// exactly floor(N * share) of the first N events.
fn hit(counter: &AtomicU64, share: f64) -> bool {
    if share <= 0.0 {
        return false;
    }
    let n = counter.fetch_add(1, Ordering::Relaxed) as f64;
    ((n + 1.0) * share).floor() > (n * share).floor()
}

/// Small buffers, as in the client: thousands of sessions stay cheap.
fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(1024 * 1024)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
}

fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.to_string())
    })
}

/// Answer the upgrade and run the session on its own task.
pub fn upgrade(state: Arc<State>, mut req: Request<Incoming>) -> Response<Body> {
    let headers = req.headers();
    let is_upgrade = headers
        .get(hyper::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let key = headers.get("sec-websocket-key").cloned();
    let (true, Some(key)) = (is_upgrade, key) else {
        return json_response(
            426,
            &json!({"error": "/ws/chat is a WebSocket endpoint: connect with ws://"}),
        );
    };
    // Take the first subprotocol offered, if any: a client that asks for one expects an answer.
    let protocol = headers
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|p| p.trim().to_string());
    let room = query_param(req.uri().query(), "room");
    let user = query_param(req.uri().query(), "user");
    let on = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on.await {
            Ok(up) => {
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(up),
                    Role::Server,
                    Some(config()),
                )
                .await;
                session(state, ws, room, user).await;
            }
            Err(e) => tracing::debug!("websocket upgrade failed: {e}"),
        }
    });
    let mut resp = Response::builder()
        .status(101)
        .header(hyper::header::CONNECTION, "Upgrade")
        .header(hyper::header::UPGRADE, "websocket")
        .header("sec-websocket-accept", derive_accept_key(key.as_bytes()));
    if let Some(p) = protocol {
        resp = resp.header("sec-websocket-protocol", p);
    }
    resp.body(Full::new(Bytes::new()))
        .expect("static response parts are valid")
}

type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

struct Session {
    state: Arc<State>,
    id: u64,
    tx: mpsc::UnboundedSender<Out>,
    joined: Option<(Arc<Room>, String, String)>,
    rng: fastrand::Rng,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Session {
    fn chat(&self) -> &Chat {
        &self.state.chat
    }

    fn reply(&self, v: Value) {
        let _ = self.tx.send(Out {
            at: None,
            text: v.to_string().into(),
        });
    }

    fn join(&mut self, room_name: String, user: String) {
        self.leave();
        let chat = &self.state.chat;
        let room = chat
            .rooms
            .lock()
            .expect("rooms")
            .entry(room_name.clone())
            .or_default()
            .clone();
        {
            let mut members = room.members.lock().expect("room");
            members.push(Member {
                id: self.id,
                tx: self.tx.clone(),
            });
            // Under the room's lock: every broadcast that counts us comes after this answer.
            self.reply(json!({"type": "joined", "room": room_name, "user": user, "members": members.len()}));
        }
        chat.stats.joins.fetch_add(1, Ordering::Relaxed);
        self.joined = Some((room, room_name, user));
    }

    fn leave(&mut self) {
        let Some((room, name, _)) = self.joined.take() else {
            return;
        };
        let mut rooms = self.chat().rooms.lock().expect("rooms");
        let mut members = room.members.lock().expect("room");
        members.retain(|m| m.id != self.id);
        if members.is_empty() {
            rooms.remove(&name);
        }
    }

    fn broadcast(&mut self, mut msg: serde_json::Map<String, Value>) {
        let Some((room, name, user)) = &self.joined else {
            self.reply(json!({"type": "error", "error": "join a room first: {\"type\":\"join\",\"room\":\"...\"}"}));
            return;
        };
        let chat = &self.state.chat;
        chat.stats.messages.fetch_add(1, Ordering::Relaxed);
        msg.insert("room".into(), Value::String(name.clone()));
        msg.insert("sender".into(), Value::String(user.clone()));
        let text: Utf8Bytes = Value::Object(msg).to_string().into();
        let at = self
            .state
            .opts
            .ws_delay
            .map(|d| Instant::now() + d.pick(&mut self.rng));
        let loss = self.state.opts.ws_loss_rate;
        let members = room.members.lock().expect("room");
        for m in members.iter().filter(|m| m.id != self.id) {
            if hit(&chat.delivery_n, loss) {
                chat.stats.withheld.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if m.tx
                .send(Out {
                    at,
                    text: text.clone(),
                })
                .is_ok()
            {
                chat.stats.deliveries.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn on_text(&mut self, text: &str, room_q: &Option<String>, user_q: &Option<String>) {
        let Ok(Value::Object(mut msg)) = serde_json::from_str::<Value>(text) else {
            self.chat().stats.rejected.fetch_add(1, Ordering::Relaxed);
            self.reply(
                json!({"type": "error", "error": "frames are JSON objects with a \"type\""}),
            );
            return;
        };
        let name = |v: Option<&Value>| match v {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        match msg.get("type").and_then(Value::as_str) {
            Some("message") => self.broadcast(std::mem::take(&mut msg)),
            Some("join") => {
                let room = name(msg.get("room"))
                    .or_else(|| room_q.clone())
                    .unwrap_or_else(|| "lobby".into());
                let user = name(msg.get("user"))
                    .or_else(|| user_q.clone())
                    .unwrap_or_else(|| format!("guest-{}", self.id));
                self.join(room, user);
            }
            Some("leave") => self.leave(),
            Some("ping") => self.reply(json!({"type": "pong"})),
            _ => {
                self.chat().stats.rejected.fetch_add(1, Ordering::Relaxed);
                self.reply(json!({"type": "error", "error": "unknown type; use join, message, leave or ping"}));
            }
        }
    }
}

/// The next frame to send: waits for one, then for its delivery time.
/// Cancel-safe: a frame taken from the queue stays in `pending` until sent.
async fn next_out(rx: &mut mpsc::UnboundedReceiver<Out>, pending: &mut Option<Out>) -> Option<Out> {
    if pending.is_none() {
        *pending = Some(rx.recv().await?);
    }
    if let Some(at) = pending.as_ref().and_then(|o| o.at) {
        sleep_until(at.into()).await;
    }
    pending.take()
}

async fn session(
    state: Arc<State>,
    mut ws: Socket,
    room_q: Option<String>,
    user_q: Option<String>,
) {
    let chat = &state.chat;
    chat.stats.sessions.fetch_add(1, Ordering::Relaxed);
    chat.stats.open.fetch_add(1, Ordering::Relaxed);
    let mut rng = fastrand::Rng::new();
    let drop_at = hit(&chat.session_n, state.opts.ws_drop_rate).then(|| {
        let after = state.opts.ws_drop_after.unwrap_or(DEFAULT_DROP_AFTER);
        Instant::now() + after.pick(&mut rng)
    });
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut s = Session {
        state: state.clone(),
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        tx,
        joined: None,
        rng,
    };
    if let Some(room) = &room_q {
        let user = user_q.clone().unwrap_or_else(|| format!("guest-{}", s.id));
        s.join(room.clone(), user);
    }
    let stop = state.stop.clone();
    let mut pending = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = sleep_until(drop_at.unwrap_or_else(Instant::now).into()), if drop_at.is_some() => {
                // Abruptly: no close frame, the socket just goes away.
                chat.stats.drops.fetch_add(1, Ordering::Relaxed);
                break;
            }
            out = next_out(&mut rx, &mut pending) => {
                let Some(out) = out else { break };
                if ws.send(Message::Text(out.text)).await.is_err() {
                    break;
                }
            }
            msg = ws.next() => match msg {
                None | Some(Err(_)) => break,
                Some(Ok(Message::Text(t))) => s.on_text(t.as_str(), &room_q, &user_q),
                Some(Ok(Message::Binary(b))) => match std::str::from_utf8(&b) {
                    Ok(t) => s.on_text(t, &room_q, &user_q),
                    Err(_) => {
                        chat.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    }
                },
                // Pings are answered by tungstenite; a close is answered, then the stream ends.
                Some(Ok(_)) => {}
            }
        }
    }
    s.leave();
    chat.stats.open.fetch_sub(1, Ordering::Relaxed);
}

/// Stats of the chat server, for `/__volley/stats`.
pub fn stats_json(state: &State) -> Value {
    state.chat.stats.to_json()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_shares_are_exact() {
        for (share, n, want) in [(0.25, 20, 5), (0.1, 95, 9), (1.0, 7, 7), (0.0, 10, 0)] {
            let c = AtomicU64::new(0);
            let got = (0..n).filter(|_| hit(&c, share)).count();
            assert_eq!(got, want, "share {share} of {n}");
        }
    }

    #[test]
    fn query_params() {
        assert_eq!(
            query_param(Some("a=1&room=r2"), "room").as_deref(),
            Some("r2")
        );
        assert_eq!(query_param(None, "room"), None);
    }
}
