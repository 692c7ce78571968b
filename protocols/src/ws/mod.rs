//! The WebSocket chat driver: one VU is one participant with one connection;
//! an iteration is one session (connect, join a room, chat at a rate, leave).
//! Receivers measure fan-out latency from each message's send time, and the
//! room's shared log (see `room.rs`) tells which expected messages never came.

pub(crate) mod conn;
mod describe;
pub mod extract;
pub mod ids;
mod plan;
pub(crate) mod room;
pub mod sio;
mod vu;

pub use conn::Fault;
pub use vu::WsVu;

use crate::driver::Inputs;
use crate::driver::{BuildCtx, Driver, VuEnv};
use crate::duration::{Dur, DurRange};
use crate::error::ConfigError;
use crate::metrics::{MetricId, MetricKind, Registry, Tags, Unit};
use crate::template::{Template, TemplateEnv};
use extract::Extractor;
use http::{HeaderName, HeaderValue};
use plan::{CorrSpec, append_token, correlate_spec, sio_array, sio_emit, sio_only, ws_only};
use room::Room;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use toml::Spanned;

/// What a participant does after a session ends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reconnect {
    /// Open a new session after `reconnect_delay`, whatever ended the last one.
    #[default]
    Always,
    /// Come back only after a drop; a session that ended as planned is the last.
    OnDrop,
    /// One session per participant.
    Never,
}

/// What is spoken over the WebSocket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum Protocol {
    /// Frames as the templates write them (JSON or text).
    #[default]
    #[serde(rename = "websocket")]
    WebSocket,
    /// Socket.IO v5 over Engine.IO v4 (WebSocket transport).
    #[serde(rename = "socket.io")]
    SocketIo,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsOptions {
    pub url: Spanned<String>,
    pub protocol: Option<Protocol>,
    /// Socket.IO namespace ("/" by default).
    pub namespace: Option<Spanned<String>>,
    /// Socket.IO: the event of chat messages (default: the `message` template's event).
    pub message_event: Option<Spanned<String>>,
    /// Socket.IO: the event the server answers a join with (default: the join's ack).
    pub joined_event: Option<Spanned<String>>,
    /// Socket.IO: ask the server to acknowledge every chat message.
    pub ack: Option<Spanned<bool>>,
    /// How a delivered message refers back to what was sent.
    pub correlate: Option<Spanned<Value>>,
    #[serde(default)]
    pub headers: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub subprotocols: Vec<Spanned<String>>,
    pub room_size: Option<Spanned<u64>>,
    pub room: Option<Spanned<String>>,
    pub user: Option<Spanned<String>>,
    pub join: Option<Spanned<Value>>,
    pub message: Option<Spanned<Value>>,
    pub messages_per_minute: Option<Spanned<f64>>,
    pub session_duration: Option<DurRange>,
    pub reconnect: Option<Reconnect>,
    pub reconnect_delay: Option<DurRange>,
    pub deadline: Option<Spanned<Dur>>,
    pub connect_timeout: Option<Dur>,
    pub ping_interval: Option<Dur>,
    pub pong_timeout: Option<Dur>,
    #[serde(default)]
    pub receive: ReceiveSpec,
    pub insecure_skip_tls_verify: Option<bool>,
    pub tag_rooms: Option<bool>,
}

/// How to read what the server sends: JSON pointers (RFC 6901) into each frame.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiveSpec {
    #[serde(rename = "type")]
    pub type_ptr: Option<Spanned<String>>,
    pub id: Option<Spanned<String>>,
    pub sender: Option<Spanned<String>>,
    pub sent_at: Option<Spanned<String>>,
    /// The type of chat messages; other types are not chat (presence, acks...).
    pub message_type: Option<Spanned<String>>,
    /// The type of the server's answer to the join, when it sends one.
    pub joined_type: Option<Spanned<String>>,
    /// The type of the server's acknowledgement of a message, to its sender.
    pub ack_type: Option<Spanned<String>>,
    /// Where an acknowledgement names the message (what was in `{{ msg.id }}`).
    pub ack_id: Option<Spanned<String>>,
}

/// Template locals, in this order: each template sees a prefix of them.
const LOCALS: &[&str] = &[
    "room.index",
    "room",
    "user",
    "msg.id",
    "msg.sent_at",
    "msg.seq",
];
const ROOM_LOCALS: usize = 1;
const USER_LOCALS: usize = 2;
const SESSION_LOCALS: usize = 3;

/// More rooms than this are not tagged by default: a latency histogram per
/// room per worker would cost more memory than the sessions themselves.
const TAG_ROOMS_UP_TO: usize = 100;

pub(crate) struct Metrics {
    pub sessions: MetricId,
    pub connecting: MetricId,
    pub session_duration: MetricId,
    pub sent: MetricId,
    pub received: MetricId,
    pub latency: MetricId,
    pub lost: MetricId,
    pub drop_rate: MetricId,
    pub errors: MetricId,
    pub ping: MetricId,
    pub ack_latency: MetricId,
    pub acks_missing: MetricId,
    pub data_sent: MetricId,
    pub data_received: MetricId,
}

impl Metrics {
    fn register(r: &Registry) -> Self {
        use MetricKind::*;
        Self {
            sessions: r.metric("ws_sessions", Counter, Unit::Default),
            connecting: r.metric("ws_connecting", Trend, Unit::Time),
            session_duration: r.metric("ws_session_duration", Trend, Unit::Time),
            sent: r.metric("ws_msgs_sent", Counter, Unit::Default),
            received: r.metric("ws_msgs_received", Counter, Unit::Default),
            latency: r.metric("ws_msg_latency", Trend, Unit::Time),
            lost: r.metric("ws_msgs_lost", Counter, Unit::Default),
            drop_rate: r.metric("ws_drop_rate", Rate, Unit::Default),
            errors: r.metric("ws_errors", Counter, Unit::Default),
            ping: r.metric("ws_ping", Trend, Unit::Time),
            ack_latency: r.metric("ws_ack_latency", Trend, Unit::Time),
            acks_missing: r.metric("ws_acks_missing", Counter, Unit::Default),
            data_sent: r.metric("data_sent", Counter, Unit::Data),
            data_received: r.metric("data_received", Counter, Unit::Data),
        }
    }
}

/// Values read from a received frame, at most: type, id, sender, sent_at, ack id.
pub(crate) const SLOTS: usize = 5;

/// How the id at `Recv::id_slot` is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Correlate {
    /// The value is exactly the `{{ msg.id }}` that was sent.
    Exact,
    /// The value is text with the id somewhere inside it.
    Token,
}

/// Compiled `receive` section (in Socket.IO, pointers into the event's
/// `["event", payload]` array: the type is the event name).
pub(crate) struct Recv {
    pub extractor: Extractor,
    pub type_slot: usize,
    pub id_slot: usize,
    pub correlate: Correlate,
    pub sender_slot: usize,
    pub sent_at_slot: usize,
    pub message_type: Option<String>,
    pub joined_type: Option<String>,
    /// Acknowledgement frames: their type, and the slot of the id they carry.
    pub ack: Option<(String, usize)>,
}

/// Warnings said once per scenario, beside the `ws_errors` counts.
#[derive(Default)]
pub(crate) struct Hints {
    no_open: AtomicBool,
    bad_open: AtomicBool,
    connect_error: AtomicBool,
}

impl Hints {
    fn once(flag: &AtomicBool) -> bool {
        !flag.swap(true, Ordering::Relaxed)
    }
}

pub struct WsDriver {
    pub(crate) tags: Tags,
    pub(crate) tag_rooms: bool,
    pub(crate) url: Template,
    pub(crate) headers: Vec<(HeaderName, Template)>,
    pub(crate) subprotocols: Option<HeaderValue>,
    pub(crate) user: Template,
    pub(crate) join: Option<Template>,
    pub(crate) message: Template,
    pub(crate) rooms: Rooms,
    /// Mean gap between one participant's messages.
    pub(crate) interval: Option<Duration>,
    pub(crate) session_duration: Option<DurRange>,
    pub(crate) reconnect: Reconnect,
    pub(crate) reconnect_delay: DurRange,
    pub(crate) deadline: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) ping: Option<(Duration, Duration)>,
    pub(crate) recv: Recv,
    pub(crate) connector: conn::Connector,
    pub(crate) inputs: Inputs,
    pub(crate) metrics: Metrics,
    /// Distinguishes this run's message ids from anyone else's.
    pub(crate) nonce: String,
    /// Socket.IO framing, when `protocol = "socket.io"`.
    pub(crate) sio: Option<sio::Spec>,
    /// Senders wait for an acknowledgement of each message.
    pub(crate) acks: bool,
    pub(crate) scenario: String,
    pub(crate) hints: Hints,
}

impl WsDriver {
    /// The server never sent the Engine.IO open packet.
    pub(crate) fn hint_no_open(&self, url: &str) {
        if Hints::once(&self.hints.no_open) {
            tracing::warn!(
                "scenario {:?}: {url} sent no Engine.IO open packet within connect_timeout ({:?}), so the Engine.IO handshake failed: is it a Socket.IO server (its path is usually /socket.io/)? For a plain WebSocket server, remove protocol = \"socket.io\"",
                self.scenario,
                self.connect_timeout
            );
        }
    }

    /// The server's first frame was not an Engine.IO open packet.
    pub(crate) fn hint_bad_open(&self, url: &str, frame: &str) {
        if Hints::once(&self.hints.bad_open) {
            let shown: String = frame.chars().take(80).collect();
            tracing::warn!(
                "scenario {:?}: the Engine.IO handshake failed: the first frame from {url} is {shown:?}, not an Engine.IO open packet (0{{\"sid\":...,\"pingInterval\":...}}): is it a Socket.IO server? For a plain WebSocket server, remove protocol = \"socket.io\"",
                self.scenario
            );
        }
    }

    /// The server refused the namespace (CONNECT_ERROR).
    pub(crate) fn hint_connect_error(&self, data: &str) {
        if Hints::once(&self.hints.connect_error) {
            let ns = self.sio.as_ref().map_or("/", |s| s.namespace.as_str());
            tracing::warn!(
                "scenario {:?}: the server refused to connect to Socket.IO namespace {ns:?}: {}",
                self.scenario,
                sio::connect_error_message(data)
            );
        }
    }
}

/// The scenario's rooms, each made when its first member is: a plan may
/// name millions, and making them all up front would cost memory per VU
/// before anything runs (in `volley validate` too).
pub(crate) struct Rooms {
    count: u64,
    pub(crate) size: u64,
    /// The scenario's VUs (the last room may have fewer members).
    vus: u64,
    name: Template,
    made: Mutex<HashMap<u64, Arc<Room>>>,
}

impl Rooms {
    /// The room of VU `index` (once per VU, not per message).
    pub(crate) fn of(&self, vu: u64) -> Arc<Room> {
        let i = (vu / self.size).min(self.count - 1);
        let mut made = self.made.lock().unwrap_or_else(|e| e.into_inner());
        made.entry(i)
            .or_insert_with(|| {
                let idx = i.to_string();
                let locals = [idx.as_str()];
                // Seeded by room, so a random name is the same whichever member makes it.
                let mut rng = fastrand::Rng::with_seed(0x5eed ^ i);
                let members = self.size.min(self.vus - i * self.size);
                Arc::new(Room::new(
                    i,
                    self.name.render_locals(&locals, &mut rng),
                    members as usize,
                ))
            })
            .clone()
    }
}

fn at(span: Range<usize>) -> impl Fn(crate::template::TemplateError) -> ConfigError {
    move |e| e.at(span.clone())
}

/// A `join`/`message` value: a string is sent as written, a table as JSON.
fn compile_frame(env: &mut TemplateEnv<'_>, v: &Spanned<Value>) -> Result<Template, ConfigError> {
    match v.get_ref() {
        Value::String(s) => env.compile(s).map_err(at(v.span())),
        Value::Object(_) | Value::Array(_) => env.compile_json(v.get_ref()).map_err(at(v.span())),
        _ => Err(ConfigError::at(
            v.span(),
            "a frame template is a string (sent as written) or a table (sent as JSON)",
        )),
    }
}

/// Add a pointer (the plan's, else `default`) under `prefix` (Socket.IO's
/// payload is "/1" of the event array); errors point at the plan's pointer.
fn pointer(
    e: &mut Extractor,
    spec: &Option<Spanned<String>>,
    default: &str,
    prefix: &str,
) -> Result<usize, ConfigError> {
    let (text, span) = match spec {
        Some(p) => (p.get_ref().as_str(), Some(p.span())),
        None => (default, None),
    };
    let located = |m: extract::PointerError| match &span {
        Some(s) => ConfigError::at(s.clone(), m),
        None => ConfigError::new(m),
    };
    extract::parse_pointer(text).map_err(located)?;
    e.add(&format!("{prefix}{text}")).map_err(located)
}

impl WsDriver {
    pub fn build(o: WsOptions, ctx: &BuildCtx<'_>) -> Result<Self, ConfigError> {
        let defaults = ctx.defaults;
        let mut env = ctx.templates();
        let socketio = o.protocol.unwrap_or_default() == Protocol::SocketIo;
        if socketio {
            let r = &o.receive;
            let event = "the type is the event name (message_event, joined_event)";
            ws_only("type", event, r.type_ptr.as_ref().map(|p| p.span()))?;
            ws_only(
                "message_type",
                "write message_event = \"...\" instead",
                r.message_type.as_ref().map(|p| p.span()),
            )?;
            ws_only(
                "joined_type",
                "write joined_event = \"...\" instead",
                r.joined_type.as_ref().map(|p| p.span()),
            )?;
            let ack = "Socket.IO acknowledges with its own packets: write ack = true";
            ws_only("ack_type", ack, r.ack_type.as_ref().map(|p| p.span()))?;
            ws_only("ack_id", ack, r.ack_id.as_ref().map(|p| p.span()))?;
        } else {
            sio_only("namespace", o.namespace.as_ref().map(|v| v.span()))?;
            sio_only("message_event", o.message_event.as_ref().map(|v| v.span()))?;
            sio_only("joined_event", o.joined_event.as_ref().map(|v| v.span()))?;
            sio_only("ack", o.ack.as_ref().map(|v| v.span()))?;
        }
        let sio_spec = match (socketio, &o.namespace) {
            (false, _) => None,
            (true, None) => Some(sio::Spec::new("/", false)),
            (true, Some(ns)) => {
                sio::check_namespace(ns.get_ref()).map_err(|e| ConfigError::at(ns.span(), e))?;
                Some(sio::Spec::new(ns.get_ref(), false))
            }
        };

        let room_size = match &o.room_size {
            Some(s) if *s.get_ref() == 0 => {
                return Err(ConfigError::at(s.span(), "room_size must be at least 1"));
            }
            Some(s) => *s.get_ref(),
            None => 10,
        };
        let room_count = ctx.max_vus.max(1).div_ceil(room_size);

        // Room names: rendered once per room, so every member agrees.
        let room_src = o
            .room
            .as_ref()
            .map(|r| (r.get_ref().as_str(), r.span()))
            .unwrap_or(("{{ scenario }}-{{ room.index }}", o.url.span()));
        let mut room_env = TemplateEnv::new(ctx.env, &[], ctx.scenario);
        room_env.locals = &LOCALS[..ROOM_LOCALS];
        let room_t = room_env
            .compile(room_src.0)
            .map_err(at(room_src.1.clone()))?;
        if room_t.is_static() && room_count > 1 {
            return Err(ConfigError::at(
                room_src.1,
                format!(
                    "room {:?} is the same for all {room_count} rooms, so their messages would mix; include {{{{ room.index }}}} (or set room_size to the number of VUs for one room)",
                    room_src.0
                ),
            ));
        }
        let rooms = Rooms {
            count: room_count,
            size: room_size,
            vus: ctx.max_vus.max(1),
            name: room_t,
            made: Mutex::default(),
        };

        env.locals = &LOCALS[..USER_LOCALS];
        let user = match &o.user {
            Some(u) => env.compile(u.get_ref()).map_err(at(u.span()))?,
            None => env.compile("user-{{ vu.id }}").expect("valid default"),
        };

        env.locals = &LOCALS[..SESSION_LOCALS];
        let url_text = o.url.get_ref().trim();
        let http_url = url_text.starts_with("http://") || url_text.starts_with("https://");
        let url_src = if url_text.starts_with("ws://")
            || url_text.starts_with("wss://")
            || (socketio && http_url)
        {
            url_text.to_string()
        } else if url_text.starts_with('/') {
            // A path on [defaults] base_url, with http(s) turned into ws(s).
            let base = defaults.base_url.as_ref().ok_or_else(|| {
                ConfigError::at(
                    o.url.span(),
                    format!("url {url_text:?} is a path but there is no base_url in [defaults]; write a full ws:// or wss:// URL"),
                )
            })?;
            let b = base.get_ref().trim_end_matches('/');
            let ws = if let Some(rest) = b.strip_prefix("https://") {
                format!("wss://{rest}")
            } else if let Some(rest) = b.strip_prefix("http://") {
                format!("ws://{rest}")
            } else {
                b.to_string()
            };
            format!("{ws}{url_text}")
        } else {
            return Err(ConfigError::at(
                o.url.span(),
                format!(
                    "url {url_text:?} must start with ws:// or wss://{} (or be a path on [defaults] base_url)",
                    if socketio {
                        ", http:// or https://"
                    } else {
                        ""
                    }
                ),
            ));
        };
        // Socket.IO: the Engine.IO path and query (`/socket.io/?EIO=4&transport=websocket`).
        let url_src = if socketio {
            sio::url(&url_src)
        } else {
            url_src
        };
        let url = env.compile(&url_src).map_err(at(o.url.span()))?;
        if let Some(text) = url.as_static() {
            let uri: http::Uri = text.parse().map_err(|e| {
                ConfigError::at(o.url.span(), format!("{text:?} is not a valid URL: {e}"))
            })?;
            if uri.host().is_none() {
                return Err(ConfigError::at(
                    o.url.span(),
                    format!("{text:?} has no host"),
                ));
            }
        }

        let mut headers = Vec::new();
        let mut all: BTreeMap<String, (Range<usize>, Spanned<String>)> = BTreeMap::new();
        for (k, v) in &defaults.headers {
            all.insert(k.to_lowercase(), (v.span(), v.clone()));
        }
        for (k, v) in &o.headers {
            all.insert(k.get_ref().to_lowercase(), (k.span(), v.clone()));
        }
        for (name, (key_span, value)) in &all {
            if matches!(
                name.as_str(),
                "connection"
                    | "upgrade"
                    | "sec-websocket-key"
                    | "sec-websocket-version"
                    | "sec-websocket-protocol"
            ) {
                return Err(ConfigError::at(
                    key_span.clone(),
                    format!(
                        "header {name:?} is set by the WebSocket handshake itself; use subprotocols = [...] for Sec-WebSocket-Protocol"
                    ),
                ));
            }
            let hn = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                ConfigError::at(
                    key_span.clone(),
                    format!("{name:?} is not a valid header name"),
                )
            })?;
            let t = env.compile(value.get_ref()).map_err(at(value.span()))?;
            if let Some(text) = t.as_static()
                && HeaderValue::from_str(&text).is_err()
            {
                return Err(ConfigError::at(
                    value.span(),
                    format!("{text:?} is not a valid header value"),
                ));
            }
            headers.push((hn, t));
        }
        let subprotocols = if o.subprotocols.is_empty() {
            None
        } else {
            for p in &o.subprotocols {
                let ok = !p.get_ref().is_empty()
                    && p.get_ref()
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
                if !ok {
                    return Err(ConfigError::at(
                        p.span(),
                        format!("{:?} is not a valid subprotocol name", p.get_ref()),
                    ));
                }
            }
            let joined: Vec<&str> = o
                .subprotocols
                .iter()
                .map(|p| p.get_ref().as_str())
                .collect();
            Some(HeaderValue::from_str(&joined.join(", ")).expect("checked above"))
        };

        let join = match &o.join {
            Some(v) if v.get_ref().as_str() == Some("") => None,
            Some(v) if socketio => {
                let (event, data) = sio_emit(v, "join")?;
                Some(
                    env.compile_json(&sio_array(&event, data))
                        .map_err(at(v.span()))?,
                )
            }
            Some(v) => Some(compile_frame(&mut env, v)?),
            None if socketio => Some(
                env.compile_json(&serde_json::json!([
                    "join", { "room": "{{ room }}", "user": "{{ user }}" }
                ]))
                .expect("valid default"),
            ),
            None => Some(
                env.compile_json(&serde_json::json!({
                    "type": "join", "room": "{{ room }}", "user": "{{ user }}"
                }))
                .expect("valid default"),
            ),
        };

        let corr = correlate_spec(&o.correlate)?;
        if let (CorrSpec::Pointer(p), Some(id)) = (&corr, &o.receive.id) {
            return Err(ConfigError::at(
                p.span(),
                format!(
                    "correlate and receive.id ({:?}) both say where the message's id comes back; keep correlate",
                    id.get_ref()
                ),
            ));
        }

        env.locals = LOCALS;
        // The message as JSON (or, for plain WebSocket, text as written), before compiling.
        let default_message = serde_json::json!({
            "type": "message",
            "room": "{{ room }}",
            "id": "{{ msg.id }}",
            "sent_at": "{{ msg.sent_at }}",
            "text": "{{ rand_string(24) }}"
        });
        let message_span = o.message.as_ref().map_or(o.url.span(), |m| m.span());
        let (mut message_json, message_raw, message_event) = match (&o.message, socketio) {
            (Some(v), true) => {
                let (event, data) = sio_emit(v, "message")?;
                (data, None, Some(event))
            }
            (None, true) => (Some(default_message), None, Some("message".to_string())),
            (Some(v), false) => match v.get_ref() {
                Value::Object(_) | Value::Array(_) => (Some(v.get_ref().clone()), None, None),
                Value::String(s) => (None, Some(s.clone()), None),
                _ => {
                    return Err(ConfigError::at(
                        v.span(),
                        "a frame template is a string (sent as written) or a table (sent as JSON)",
                    ));
                }
            },
            (None, false) => (Some(default_message), None, None),
        };
        let written = |j: &Option<Value>, raw: &Option<String>| match raw {
            Some(r) => r.clone(),
            None => j.as_ref().map(Value::to_string).unwrap_or_default(),
        };
        // A text token goes at the end of the message's text (unless there already).
        if let CorrSpec::Token {
            text, message_text, ..
        } = &corr
        {
            let candidates = match message_text {
                Some(p) => vec![p.as_str()],
                None => vec![text.get_ref().as_str(), "/text"],
            };
            let placed = message_json
                .as_mut()
                .is_some_and(|j| candidates.iter().any(|p| append_token(j, p)));
            if !placed && !written(&message_json, &message_raw).contains("msg.id") {
                return Err(ConfigError::at(
                    message_span.clone(),
                    format!(
                        "correlate: text_token puts {{{{ msg.id }}}} at the end of the message's text, but the message has no text at {:?}{}; set correlate.message_text to the pointer of the text in the message{}, or put {{{{ msg.id }}}} in the text yourself",
                        candidates[0],
                        if socketio { " of its data" } else { "" },
                        if socketio {
                            "'s data (\"\" when data is the text itself)"
                        } else {
                            ""
                        },
                    ),
                ));
            }
        }
        let message_src = written(&message_json, &message_raw);
        let message = match (&message_event, message_raw) {
            (Some(event), _) => env.compile_json(&sio_array(event, message_json.take())),
            (None, Some(raw)) => env.compile(&raw),
            (None, None) => env.compile_json(message_json.as_ref().expect("a table")),
        }
        .map_err(at(message_span.clone()))?;
        let rate = match &o.messages_per_minute {
            Some(r) if !(r.get_ref().is_finite() && *r.get_ref() >= 0.0) => {
                return Err(ConfigError::at(
                    r.span(),
                    "messages_per_minute must be a number >= 0 (0: participants only listen)",
                ));
            }
            Some(r) => *r.get_ref(),
            None => 6.0,
        };
        if rate > 0.0 && !message_src.contains("msg.id") {
            return Err(ConfigError::at(
                message_span,
                "the message template has no {{ msg.id }}: receivers could not tell which messages arrived; add e.g. id = \"{{ msg.id }}\"",
            ));
        }

        let mut extractor = Extractor::default();
        let r = &o.receive;
        let prefix = if socketio { "/1" } else { "" };
        let type_slot = if socketio {
            extractor.add("/0").expect("a valid pointer")
        } else {
            pointer(&mut extractor, &r.type_ptr, "/type", "")?
        };
        let (id_slot, correlate) = match &corr {
            CorrSpec::Default => (
                pointer(&mut extractor, &r.id, "/id", prefix)?,
                Correlate::Exact,
            ),
            CorrSpec::Pointer(p) => (
                pointer(&mut extractor, &Some(p.clone()), "", prefix)?,
                Correlate::Exact,
            ),
            CorrSpec::Token { text, .. } => (
                pointer(&mut extractor, &Some(text.clone()), "", prefix)?,
                Correlate::Token,
            ),
        };
        let sender_slot = pointer(&mut extractor, &r.sender, "/sender", prefix)?;
        let sent_at_slot = pointer(&mut extractor, &r.sent_at, "/sent_at", prefix)?;
        let slots = [type_slot, id_slot, sender_slot, sent_at_slot];
        for (i, a) in slots.iter().enumerate() {
            if slots[..i].contains(a) {
                let span = match &corr {
                    CorrSpec::Token { span, .. } => span.clone(),
                    CorrSpec::Pointer(p) => p.span(),
                    CorrSpec::Default => o.url.span(),
                };
                return Err(ConfigError::at(
                    span,
                    "receive: type, id (or correlate), sender and sent_at must be different JSON pointers",
                ));
            }
        }
        let ack = match &r.ack_type {
            Some(t) if t.get_ref().is_empty() => None,
            Some(t) => {
                let slot = match &r.ack_id {
                    Some(_) => pointer(&mut extractor, &r.ack_id, "", "")?,
                    None => id_slot,
                };
                Some((t.get_ref().clone(), slot))
            }
            None => {
                if let Some(p) = &r.ack_id {
                    return Err(ConfigError::at(
                        p.span(),
                        "receive.ack_id needs receive.ack_type: the type of the server's acknowledgement frames",
                    ));
                }
                None
            }
        };
        debug_assert!(extractor.fields() <= SLOTS);
        let event_name = |v: &Option<Spanned<String>>| -> Result<Option<String>, ConfigError> {
            match v {
                Some(e) if e.get_ref().is_empty() => {
                    Err(ConfigError::at(e.span(), "an event name cannot be empty"))
                }
                Some(e) => Ok(Some(e.get_ref().clone())),
                None => Ok(None),
            }
        };
        let message_type = if socketio {
            event_name(&o.message_event)?.or(message_event)
        } else {
            match &r.message_type {
                Some(t) if t.get_ref().is_empty() => None,
                Some(t) => Some(t.get_ref().clone()),
                None => Some("message".to_string()),
            }
        };
        let joined_type = if socketio {
            event_name(&o.joined_event)?
        } else {
            r.joined_type
                .as_ref()
                .map(|t| t.get_ref().clone())
                .filter(|t| !t.is_empty())
        };
        let sio_ack = o.ack.as_ref().is_some_and(|a| *a.get_ref());
        let sio_spec = sio_spec.map(|mut s| {
            s.ack = sio_ack;
            s
        });

        let deadline = match &o.deadline {
            Some(d) if d.get_ref().0.is_zero() => {
                return Err(ConfigError::at(
                    d.span(),
                    "deadline must be more than 0: it is how long a message may take before it counts as lost",
                ));
            }
            Some(d) => d.get_ref().0,
            None => Duration::from_secs(5),
        };
        // Socket.IO has its own heartbeat (the server's Engine.IO pings): no
        // WebSocket pings unless asked for.
        let ping_interval = o.ping_interval.map(|d| d.0).unwrap_or(if socketio {
            Duration::ZERO
        } else {
            Duration::from_secs(10)
        });
        let pong_timeout = o
            .pong_timeout
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(5));
        let connect_timeout = o
            .connect_timeout
            .or(defaults.timeout)
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(10));
        let insecure = o
            .insecure_skip_tls_verify
            .or(defaults.insecure_skip_tls_verify)
            .unwrap_or(false);
        let nonce = format!("{:08x}", fastrand::u32(..));
        Ok(Self {
            tags: ctx.tags.clone(),
            tag_rooms: o.tag_rooms.unwrap_or(room_count <= TAG_ROOMS_UP_TO as u64),
            url,
            headers,
            subprotocols,
            user,
            join,
            message,
            rooms,
            interval: (rate > 0.0).then(|| crate::duration::secs(60.0 / rate)),
            session_duration: o.session_duration.filter(|d| !d.is_zero()),
            reconnect: o.reconnect.unwrap_or_default(),
            reconnect_delay: o.reconnect_delay.unwrap_or(DurRange {
                min: Duration::from_secs(1),
                max: Duration::from_secs(1),
            }),
            deadline,
            connect_timeout,
            ping: (!ping_interval.is_zero()).then_some((ping_interval, pong_timeout)),
            acks: sio_ack || ack.is_some(),
            recv: Recv {
                extractor,
                type_slot,
                id_slot,
                correlate,
                sender_slot,
                sent_at_slot,
                message_type,
                joined_type,
                ack,
            },
            connector: conn::Connector::new(insecure),
            inputs: Inputs::of(&env),
            metrics: Metrics::register(ctx.registry),
            nonce,
            sio: sio_spec,
            scenario: ctx.scenario.to_string(),
            hints: Hints::default(),
        })
    }
}

impl Driver for WsDriver {
    type Vu = WsVu;
    type Options = WsOptions;
    const NAME: &'static str = "websocket";
    /// ~11-14 KB measured per held chat session.
    const VU_BYTES: u64 = 10_000;

    fn descriptor() -> crate::descriptor::Descriptor {
        describe::descriptor()
    }

    fn from_plan(
        options: WsOptions,
        ctx: &BuildCtx<'_>,
        at: std::ops::Range<usize>,
    ) -> Result<Self, ConfigError> {
        let _ = at;
        Self::build(options, ctx)
    }

    fn tag_values(&self, key: &str) -> Option<Vec<String>> {
        Some(self.tags.get(key).map(str::to_string).into_iter().collect())
    }

    fn vu(self: &Arc<Self>, env: VuEnv) -> WsVu {
        WsVu::new(self.clone(), env)
    }

    fn used_feeders(&self) -> &[usize] {
        &self.inputs.used
    }
}
