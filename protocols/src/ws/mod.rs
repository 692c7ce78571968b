//! The WebSocket chat driver: one VU is one participant with one connection;
//! an iteration is one session (connect, join a room, chat at a rate, leave).
//! Receivers measure fan-out latency from each message's send time, and the
//! room's shared log (see `room.rs`) tells which expected messages never came.

pub(crate) mod conn;
pub mod extract;
pub(crate) mod room;
mod vu;

pub use conn::Fault;
pub use vu::WsVu;

use crate::driver::Inputs;
use crate::driver::{BuildCtx, Driver, VuEnv};
use crate::duration::{Dur, DurRange};
use crate::error::ConfigError;
use crate::metrics::{MetricId, MetricKind, Registry, Tags, Unit};
use crate::template::{Scope, Template, TemplateEnv};
use extract::Extractor;
use http::{HeaderName, HeaderValue};
use room::Room;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsOptions {
    pub url: Spanned<String>,
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
            data_sent: r.metric("data_sent", Counter, Unit::Data),
            data_received: r.metric("data_received", Counter, Unit::Data),
        }
    }
}

/// Compiled `receive` section.
pub(crate) struct Recv {
    pub extractor: Extractor,
    pub type_slot: usize,
    pub id_slot: usize,
    pub sender_slot: usize,
    pub sent_at_slot: usize,
    pub message_type: Option<String>,
    pub joined_type: Option<String>,
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
                let mut scope = Scope {
                    vu: 0,
                    iter: 0,
                    vars: &[],
                    feeders: &[],
                    rows: &[],
                    locals: &locals,
                    rng: &mut rng,
                };
                let members = self.size.min(self.vus - i * self.size);
                Arc::new(Room::new(
                    i,
                    self.name.render_string(&mut scope),
                    members as usize,
                ))
            })
            .clone()
    }
}

fn at(span: Range<usize>) -> impl Fn(String) -> ConfigError {
    move |e| ConfigError::at(span.clone(), e)
}

/// A `join`/`message` value: a string is sent as written, a table as JSON.
fn compile_frame(
    env: &mut TemplateEnv<'_>,
    v: &Spanned<Value>,
) -> Result<(Template, String), ConfigError> {
    match v.get_ref() {
        Value::String(s) => Ok((env.compile(s).map_err(at(v.span()))?, s.clone())),
        Value::Object(_) | Value::Array(_) => Ok((
            env.compile_json(v.get_ref()).map_err(at(v.span()))?,
            v.get_ref().to_string(),
        )),
        _ => Err(ConfigError::at(
            v.span(),
            "a frame template is a string (sent as written) or a table (sent as JSON)",
        )),
    }
}

fn pointer(
    e: &mut Extractor,
    spec: &Option<Spanned<String>>,
    default: &str,
) -> Result<usize, ConfigError> {
    match spec {
        Some(p) => e.add(p.get_ref()).map_err(at(p.span())),
        None => Ok(e.add(default).expect("default pointers are valid")),
    }
}

impl WsDriver {
    pub fn build(o: WsOptions, ctx: &BuildCtx<'_>) -> Result<Self, ConfigError> {
        let defaults = ctx.defaults;
        let mut env = TemplateEnv::new(ctx.env, ctx.feeders, ctx.scenario);

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
        let url_src = if url_text.starts_with("ws://") || url_text.starts_with("wss://") {
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
                    "url {url_text:?} must start with ws:// or wss:// (or be a path on [defaults] base_url)"
                ),
            ));
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
            Some(v) => Some(compile_frame(&mut env, v)?.0),
            None => Some(
                env.compile_json(&serde_json::json!({
                    "type": "join", "room": "{{ room }}", "user": "{{ user }}"
                }))
                .expect("valid default"),
            ),
        };

        env.locals = LOCALS;
        let (message, message_src, message_span) = match &o.message {
            Some(v) => {
                let (t, src) = compile_frame(&mut env, v)?;
                (t, src, v.span())
            }
            None => {
                let v = serde_json::json!({
                    "type": "message",
                    "room": "{{ room }}",
                    "id": "{{ msg.id }}",
                    "sent_at": "{{ msg.sent_at }}",
                    "text": "{{ rand_string(24) }}"
                });
                (
                    env.compile_json(&v).expect("valid default"),
                    v.to_string(),
                    o.url.span(),
                )
            }
        };
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
        if rate > 0.0 && !message_src.contains("msg.sent_at") {
            tracing::warn!(
                "scenario {:?}: the message template has no {{{{ msg.sent_at }}}}, so ws_msg_latency can only come from a time the server adds",
                ctx.scenario
            );
        }

        let mut extractor = Extractor::default();
        let r = &o.receive;
        let type_slot = pointer(&mut extractor, &r.type_ptr, "/type")?;
        let id_slot = pointer(&mut extractor, &r.id, "/id")?;
        let sender_slot = pointer(&mut extractor, &r.sender, "/sender")?;
        let sent_at_slot = pointer(&mut extractor, &r.sent_at, "/sent_at")?;
        let slots = [type_slot, id_slot, sender_slot, sent_at_slot];
        for (i, a) in slots.iter().enumerate() {
            if slots[..i].contains(a) {
                return Err(ConfigError::at(
                    o.url.span(),
                    "receive: type, id, sender and sent_at must be different JSON pointers",
                ));
            }
        }
        let message_type = match &r.message_type {
            Some(t) if t.get_ref().is_empty() => None,
            Some(t) => Some(t.get_ref().clone()),
            None => Some("message".to_string()),
        };
        let joined_type = r
            .joined_type
            .as_ref()
            .map(|t| t.get_ref().clone())
            .filter(|t| !t.is_empty());

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
        let ping_interval = o
            .ping_interval
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(10));
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
            recv: Recv {
                extractor,
                type_slot,
                id_slot,
                sender_slot,
                sent_at_slot,
                message_type,
                joined_type,
            },
            connector: conn::Connector::new(insecure),
            inputs: Inputs::of(&env),
            metrics: Metrics::register(ctx.registry),
            nonce,
        })
    }
}

impl Driver for WsDriver {
    type Vu = WsVu;

    fn vu(self: &Arc<Self>, env: VuEnv) -> WsVu {
        WsVu::new(self.clone(), env)
    }

    fn used_feeders(&self) -> &[usize] {
        &self.inputs.used
    }
}
