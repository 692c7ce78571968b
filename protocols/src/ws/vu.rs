//! One participant: one connection at a time, one session per iteration.

use super::conn::{Fault, Socket};
use super::extract::Val;
use super::ids::{self, OurId};
use super::room::{Member, Room};
use super::sio::{self, Packet};
use super::{Correlate, Reconnect, SLOTS, WsDriver};
use crate::driver::{Iteration, Stop, Vu, VuEnv, VuState};
use crate::http::conn::IoCounters;
use crate::metrics::{Recorder, SeriesId, Tags};
use futures_util::{SinkExt, StreamExt};
use http::HeaderValue;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::time::{sleep_until, timeout_at};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::{Bytes, Message, Utf8Bytes};

/// A connect or join still pending at the planned end counts as failed only
/// if it had been trying this long; a shorter one was merely cut by the end.
const HANG: Duration = Duration::from_secs(1);
/// How long to wait for the server's answer to our close.
const CLOSE_WAIT: Duration = Duration::from_secs(1);
const JOIN_PING: &[u8] = b"volley-join";
/// Settling more often than this buys nothing.
const SETTLE_MIN: Duration = Duration::from_millis(20);
/// An Engine.IO heartbeat longer than this is as good as none.
const HEARTBEAT_MAX: Duration = Duration::from_secs(24 * 3600);

fn eio_pong() -> Message {
    Message::Text(Utf8Bytes::from_static("3"))
}

/// Series of one room (or of the scenario, when rooms are not tagged).
#[derive(Clone)]
pub struct RoomSeries {
    tags: Tags,
    sessions: SeriesId,
    connecting: SeriesId,
    session_duration: SeriesId,
    sent: SeriesId,
    received: SeriesId,
    latency: SeriesId,
    lost: SeriesId,
    drop_rate: SeriesId,
    ping: SeriesId,
    ack_latency: SeriesId,
    acks_missing: SeriesId,
    data_sent: SeriesId,
    data_received: SeriesId,
}

impl RoomSeries {
    fn new(d: &WsDriver, room: &Room, rec: &Recorder) -> Self {
        let tags = if d.tag_rooms {
            d.tags.with("room", room.name.clone())
        } else {
            d.tags.clone()
        };
        let m = &d.metrics;
        let s = |id| rec.series(id, &tags);
        Self {
            sessions: s(m.sessions),
            connecting: s(m.connecting),
            session_duration: s(m.session_duration),
            sent: s(m.sent),
            received: s(m.received),
            latency: s(m.latency),
            lost: s(m.lost),
            drop_rate: s(m.drop_rate),
            ping: s(m.ping),
            ack_latency: s(m.ack_latency),
            acks_missing: s(m.acks_missing),
            // Bytes are per scenario, as the HTTP driver records them.
            data_sent: rec.series(m.data_sent, &d.tags),
            data_received: rec.series(m.data_received, &d.tags),
            tags,
        }
    }
}

/// How a session ended.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Outcome {
    /// Cut by the planned end before it was established: not a session.
    Abandoned,
    /// Ended by us at its planned end.
    Planned,
    /// Could not be established.
    Failed,
    /// Ended by the peer or the network before its planned end.
    Dropped,
}

enum Step {
    Continue,
    Joined,
    /// An Engine.IO ping: answer with a pong.
    EioPing,
    End(Fault),
}

/// Present in a room; leaves it when dropped (also when the engine cuts the session).
struct Presence<'a> {
    room: &'a Room,
    member: Member,
}

impl Drop for Presence<'_> {
    fn drop(&mut self) {
        self.room.remove(self.member.slot);
    }
}

/// Reused buffers for the template locals.
#[derive(Default)]
struct Locals {
    room_index: String,
    user: String,
    id: String,
    sent_at: String,
    seq: String,
}

pub struct WsVu {
    d: Arc<WsDriver>,
    rec: Recorder,
    state: VuState,
    room: Arc<Room>,
    slot: u32,
    s: RoomSeries,
    errors: Vec<(Fault, SeriesId)>,
    io: Arc<IoCounters>,
    io_seen: (u64, u64),
    locals: Locals,
    frame_cap: usize,
    failures: u32,
    /// Messages sent and not acknowledged yet (sequence number, send time),
    /// oldest first; kept across sessions so it stops allocating.
    acks: VecDeque<(u64, Instant)>,
}

fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

/// A send time as servers write it: seconds, milliseconds, microseconds or
/// nanoseconds since the epoch (told apart by size), or an RFC 3339 string.
fn sent_at_micros(v: &Val<'_>) -> Option<u64> {
    let n = match v {
        Val::Str(s) if s.contains(['-', ':']) => {
            let t = humantime::parse_rfc3339_weak(s.trim()).ok()?;
            return Some(t.duration_since(UNIX_EPOCH).ok()?.as_micros() as u64);
        }
        other => other.as_f64()?,
    };
    if !(n.is_finite() && n > 0.0) {
        return None;
    }
    Some(if n < 1e11 {
        n * 1e6
    } else if n < 1e14 {
        n * 1e3
    } else if n < 1e17 {
        n
    } else {
        n / 1e3
    } as u64)
}

impl WsVu {
    pub(super) fn new(d: Arc<WsDriver>, env: VuEnv) -> Self {
        let rec = env.recorder;
        let room = d.rooms.of(env.index);
        let slot = (env.index % d.rooms.size) as u32;
        let s = room
            .series
            .get_or_init(|| RoomSeries::new(&d, &room, &rec))
            .clone();
        let mut locals = Locals::default();
        let _ = write!(locals.room_index, "{}", room.index);
        Self {
            state: d.inputs.state(env.index, env.seed),
            rec,
            room,
            slot,
            s,
            errors: Vec::new(),
            io: Arc::default(),
            io_seen: (0, 0),
            locals,
            frame_cap: 64,
            failures: 0,
            acks: VecDeque::new(),
            d,
        }
    }

    fn error(&mut self, f: Fault) {
        let id = match self.errors.iter().find(|(k, _)| *k == f) {
            Some((_, id)) => *id,
            None => {
                let tags = self.s.tags.with("error", f.tag());
                let id = self.rec.series(self.d.metrics.errors, &tags);
                self.errors.push((f, id));
                id
            }
        };
        self.rec.add(id, 1);
    }

    fn flush_io(&mut self) {
        let (sent, received) = (self.io.sent.get(), self.io.received.get());
        if sent > self.io_seen.0 {
            self.rec.add(self.s.data_sent, sent - self.io_seen.0);
        }
        if received > self.io_seen.1 {
            self.rec
                .add(self.s.data_received, received - self.io_seen.1);
        }
        self.io_seen = (sent, received);
    }

    /// Render a template into a new frame.
    fn render(&mut self, which: Which) -> String {
        self.render_after(which, "", None)
    }

    /// Render a template into a new frame that starts with `head` and an
    /// acknowledgement id (Socket.IO: `42/chat,17["chat",{...}]`).
    fn render_after(&mut self, which: Which, head: &str, ack: Option<u64>) -> String {
        let d = &self.d;
        let room = &self.room;
        let l = &self.locals;
        let locals = [
            l.room_index.as_str(),
            room.name.as_str(),
            l.user.as_str(),
            l.id.as_str(),
            l.sent_at.as_str(),
            l.seq.as_str(),
        ];
        let mut scope = self.state.scope(&locals);
        let t = match which {
            Which::Url => &d.url,
            Which::Join => d.join.as_ref().expect("join is set"),
            Which::Message => &d.message,
            Which::Header(i) => &d.headers[i].1,
        };
        // The frame's own allocation, sized like the last one.
        let mut out = String::with_capacity(self.frame_cap);
        out.push_str(head);
        if let Some(a) = ack {
            let _ = write!(out, "{a}");
        }
        t.render(&mut scope, &mut out);
        self.frame_cap = self.frame_cap.max(out.len());
        out
    }

    fn request(&mut self) -> Result<Request, Fault> {
        let url = self.render(Which::Url);
        let mut req = url
            .as_str()
            .into_client_request()
            .map_err(|_| Fault::InvalidUrl)?;
        for i in 0..self.d.headers.len() {
            let value = self.render(Which::Header(i));
            if let Ok(v) = HeaderValue::from_str(&value) {
                req.headers_mut().insert(self.d.headers[i].0.clone(), v);
            }
        }
        if let Some(p) = &self.d.subprotocols {
            req.headers_mut()
                .insert("sec-websocket-protocol", p.clone());
        }
        Ok(req)
    }

    /// One of this run's ids in `v`: exactly (a pointer to the echoed id), or
    /// anywhere in its text (a text token).
    fn ours(&self, v: &Val<'_>, how: Correlate) -> Option<OurId> {
        let text = v.as_str()?;
        match how {
            Correlate::Exact => ids::parse_exact(&self.d.nonce, text),
            Correlate::Token => ids::find(&self.d.nonce, text),
        }
    }

    /// Read one frame's payload (in Socket.IO, an event's `["event", ...]`).
    /// Chat messages are counted and timed; ours are marked received in the
    /// member's window; acknowledgements of ours are timed.
    fn on_payload(&mut self, bytes: &[u8], member: Option<&mut Member>) -> Step {
        let d = self.d.clone();
        let r = &d.recv;
        let mut out: [Val<'_>; SLOTS] = Default::default();
        if r.extractor.extract(bytes, &mut out).is_err() {
            self.error(Fault::NonJson);
            return Step::Continue;
        }
        let ty = &out[r.type_slot];
        if let Some(j) = &r.joined_type
            && ty.eq_text(j)
        {
            return Step::Joined;
        }
        if let Some((ack_type, slot)) = &r.ack
            && ty.eq_text(ack_type)
        {
            // An id inside any text counts: acks name messages in many ways.
            if let Some(id) = self.ours(&out[*slot], Correlate::Token)
                && id.room == self.room.index
                && id.slot == self.slot
            {
                self.acked(id.seq);
            }
            return Step::Continue;
        }
        if let Some(m) = &r.message_type
            && !ty.eq_text(m)
        {
            return Step::Continue;
        }
        let id = &out[r.id_slot];
        if id.is_missing() {
            return Step::Continue;
        }
        let ours = self.ours(id, r.correlate);
        let own_echo = match ours {
            Some(o) => o.room == self.room.index && o.slot == self.slot,
            None => {
                let sender = &out[r.sender_slot];
                !sender.is_missing() && sender.eq_text(&self.locals.user)
            }
        };
        if own_echo {
            return Step::Continue;
        }
        self.rec.add(self.s.received, 1);
        // Ours carry their send time; others', where the server put one.
        match ours
            .map(|o| o.sent_at)
            .or_else(|| sent_at_micros(&out[r.sent_at_slot]))
        {
            Some(t) => self
                .rec
                .trend(self.s.latency, unix_micros().saturating_sub(t)),
            None => {
                self.error(Fault::NoSentAt);
            }
        }
        if let (Some(o), Some(m)) = (ours, member)
            && o.room == self.room.index
        {
            m.received(o.seq);
        }
        Step::Continue
    }

    /// One Socket.IO frame (an Engine.IO packet).
    fn on_sio(&mut self, text: &str, member: Option<&mut Member>) -> Step {
        let ns = self.d.sio.as_ref().map_or("/", |s| s.namespace.as_str());
        match sio::parse(ns, text) {
            Packet::Ping => Step::EioPing,
            Packet::Close => Step::End(Fault::EioClose),
            Packet::Disconnect => Step::End(Fault::SioDisconnect),
            Packet::ConnectError(data) => {
                self.d.hint_connect_error(data);
                Step::End(Fault::SioConnectError)
            }
            Packet::Event(payload) => self.on_payload(payload.as_bytes(), member),
            Packet::Ack(sio::JOIN_ACK) => Step::Joined,
            Packet::Ack(id) => {
                self.acked(id - 1);
                Step::Continue
            }
            Packet::Connect | Packet::Other => Step::Continue,
        }
    }

    /// Our message `seq` was acknowledged.
    fn acked(&mut self, seq: u64) {
        if let Some(i) = self.acks.iter().position(|&(s, _)| s == seq)
            && let Some((_, at)) = self.acks.remove(i)
        {
            self.rec.time(self.s.ack_latency, at.elapsed());
        }
    }

    /// Count the acknowledgements that did not come within the deadline (all
    /// of them, when `gone`); returns when the next one is due.
    fn expire_acks(&mut self, now: Instant, gone: bool) -> Option<Instant> {
        let deadline = self.d.deadline;
        let mut missing = 0;
        while let Some(&(_, at)) = self.acks.front() {
            if !gone && now.saturating_duration_since(at) < deadline {
                break;
            }
            self.acks.pop_front();
            missing += 1;
        }
        if missing > 0 {
            self.rec.add(self.s.acks_missing, missing);
        }
        self.acks.front().map(|&(_, at)| at + deadline)
    }

    fn on_message(
        &mut self,
        msg: Message,
        member: Option<&mut Member>,
        ping: &mut Option<Instant>,
    ) -> Step {
        let sio = self.d.sio.is_some();
        match msg {
            Message::Text(t) if sio => self.on_sio(t.as_str(), member),
            // Socket.IO binary attachments: not chat.
            Message::Binary(_) if sio => Step::Continue,
            Message::Text(t) => self.on_payload(t.as_bytes(), member),
            Message::Binary(b) => self.on_payload(&b, member),
            Message::Pong(p) => {
                if p.as_ref() == JOIN_PING {
                    if self.d.recv.joined_type.is_none() {
                        return Step::Joined;
                    }
                } else if let Some(sent) = ping.take() {
                    self.rec.time(self.s.ping, sent.elapsed());
                }
                Step::Continue
            }
            Message::Close(frame) => Step::End(Fault::ClosedByPeer(
                frame.map(|f| u16::from(f.code)).unwrap_or(1005),
            )),
            Message::Ping(_) | Message::Frame(_) => Step::Continue,
        }
    }

    async fn send(&mut self, ws: &mut Socket, text: String, by: Instant) -> Result<(), Fault> {
        match timeout_at(by.into(), ws.send(Message::text(text))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Fault::from_ws(&e)),
            Err(_) => Err(Fault::SendTimeout),
        }
    }

    /// Send one chat message, unless the session's end has come.
    async fn chat(&mut self, ws: &mut Socket, end: Instant) -> Result<(), Fault> {
        let d = self.d.clone();
        let Some(seq) = self.room.send(self.slot, end) else {
            return Ok(());
        };
        let sent_at = unix_micros();
        let l = &mut self.locals;
        let id = OurId {
            room: self.room.index,
            slot: self.slot,
            seq,
            sent_at,
        };
        ids::write(&mut l.id, &d.nonce, id);
        l.sent_at.clear();
        let _ = write!(l.sent_at, "{sent_at}");
        l.seq.clear();
        let _ = write!(l.seq, "{seq}");
        let text = match &d.sio {
            // Socket.IO ack ids are the sequence number + 1 (0 is the join's).
            Some(s) => self.render_after(Which::Message, &s.emit, s.ack.then_some(seq + 1)),
            None => self.render(Which::Message),
        };
        let by = Instant::now() + d.ping.map(|p| p.1).unwrap_or(d.connect_timeout);
        let sent = Instant::now();
        match self.send(ws, text, by).await {
            Ok(()) => {
                self.rec.add(self.s.sent, 1);
                if d.acks {
                    self.acks.push_back((seq, sent));
                }
                self.flush_io();
                Ok(())
            }
            Err(f) => {
                self.room.failed(seq);
                Err(f)
            }
        }
    }

    /// Send the join and wait until the server has us in the room: its join
    /// answer when `joined_type` (Socket.IO: `joined_event`) is set; else, in
    /// Socket.IO, the acknowledgement of the join; else the pong to a ping
    /// sent after the join (a server handles one connection's frames in order).
    /// Socket.IO without a join: connecting to the namespace was the join.
    async fn join(&mut self, ws: &mut Socket, end: Instant) -> Result<(), Option<Fault>> {
        let d = self.d.clone();
        let started = Instant::now();
        let by = (started + d.connect_timeout).min(end);
        if d.join.is_some() {
            let text = match &d.sio {
                Some(s) => {
                    let ack = d.recv.joined_type.is_none().then_some(sio::JOIN_ACK);
                    self.render_after(Which::Join, &s.emit, ack)
                }
                None => self.render(Which::Join),
            };
            self.send(ws, text, by).await.map_err(Some)?;
        } else if d.sio.is_some() {
            return Ok(());
        }
        if d.sio.is_none() && d.recv.joined_type.is_none() {
            let ping = Message::Ping(Bytes::from_static(JOIN_PING));
            self.send_raw(ws, ping, by).await.map_err(Some)?;
        }
        let mut no_ping = None;
        loop {
            tokio::select! {
                _ = sleep_until(by.into()) => {
                    return if Instant::now() >= end && started.elapsed() < HANG {
                        Err(None)
                    } else {
                        Err(Some(Fault::JoinTimeout))
                    };
                }
                msg = ws.next() => match msg {
                    None => return Err(Some(Fault::Reset)),
                    Some(Err(e)) => return Err(Some(Fault::from_ws(&e))),
                    Some(Ok(m)) => match self.on_message(m, None, &mut no_ping) {
                        Step::Joined => return Ok(()),
                        Step::End(f) => return Err(Some(f)),
                        Step::EioPing => self.send_raw(ws, eio_pong(), by).await.map_err(Some)?,
                        Step::Continue => {}
                    },
                }
            }
        }
    }

    /// Socket.IO's handshake on an open WebSocket: the server's Engine.IO open
    /// packet, then CONNECT to the namespace and its answer, by `by`.
    /// Returns the Engine.IO heartbeat: the most time between server pings.
    async fn sio_connect(
        &mut self,
        ws: &mut Socket,
        by: Instant,
        url: &str,
    ) -> Result<Duration, Fault> {
        let d = self.d.clone();
        let spec = d.sio.as_ref().expect("socket.io");
        let open = loop {
            match timeout_at(by.into(), ws.next()).await {
                Err(_) => return Err(Fault::EioNoOpen),
                Ok(None) => return Err(Fault::Reset),
                Ok(Some(Err(e))) => return Err(Fault::from_ws(&e)),
                Ok(Some(Ok(Message::Text(t)))) => match sio::parse_open(t.as_str()) {
                    Some(open) => break open,
                    None => {
                        d.hint_bad_open(url, t.as_str());
                        return Err(Fault::EioBadOpen);
                    }
                },
                Ok(Some(Ok(Message::Binary(_)))) => {
                    d.hint_bad_open(url, "(a binary frame)");
                    return Err(Fault::EioBadOpen);
                }
                Ok(Some(Ok(Message::Close(f)))) => {
                    return Err(Fault::ClosedByPeer(
                        f.map(|f| u16::from(f.code)).unwrap_or(1005),
                    ));
                }
                Ok(Some(Ok(_))) => {}
            }
        };
        self.send_raw(ws, Message::Text(spec.connect.clone()), by)
            .await?;
        loop {
            match timeout_at(by.into(), ws.next()).await {
                Err(_) => return Err(Fault::SioConnectTimeout),
                Ok(None) => return Err(Fault::Reset),
                Ok(Some(Err(e))) => return Err(Fault::from_ws(&e)),
                Ok(Some(Ok(Message::Text(t)))) => match sio::parse(&spec.namespace, t.as_str()) {
                    Packet::Connect => break,
                    Packet::Ping => self.send_raw(ws, eio_pong(), by).await?,
                    Packet::ConnectError(data) => {
                        d.hint_connect_error(data);
                        return Err(Fault::SioConnectError);
                    }
                    Packet::Close => return Err(Fault::EioClose),
                    Packet::Disconnect => return Err(Fault::SioDisconnect),
                    _ => {}
                },
                Ok(Some(Ok(Message::Close(f)))) => {
                    return Err(Fault::ClosedByPeer(
                        f.map(|f| u16::from(f.code)).unwrap_or(1005),
                    ));
                }
                Ok(Some(Ok(_))) => {}
            }
        }
        let beat = Duration::from_millis(open.ping_interval.saturating_add(open.ping_timeout));
        Ok(beat.min(HEARTBEAT_MAX))
    }

    async fn send_raw(&mut self, ws: &mut Socket, m: Message, by: Instant) -> Result<(), Fault> {
        match timeout_at(by.into(), ws.send(m)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Fault::from_ws(&e)),
            Err(_) => Err(Fault::SendTimeout),
        }
    }

    fn gap(&mut self, interval: Duration) -> Duration {
        // ±50% around the mean: the rate holds, participants do not send in step.
        interval.mul_f64(0.5 + self.state.rng.f64())
    }

    fn record_lost(&mut self, n: u64) {
        if n > 0 {
            self.rec.add(self.s.lost, n);
        }
    }

    fn end_session(&mut self, started: Instant, outcome: Outcome) -> Outcome {
        // Zero lost shows as 0 in the summary (and thresholds on it have data).
        self.rec.add(self.s.lost, 0);
        if self.d.acks {
            self.rec.add(self.s.acks_missing, 0);
        }
        self.rec.time(self.s.session_duration, started.elapsed());
        self.rec.rate(self.s.drop_rate, outcome != Outcome::Planned);
        self.flush_io();
        outcome
    }

    async fn session(&mut self, end: Instant, stop: &Stop) -> Outcome {
        let d = self.d.clone();
        let started = Instant::now();
        let connect_by = (started + d.connect_timeout).min(end);
        // Cut by the planned end rather than failed: see HANG.
        let cut = || Instant::now() >= end && started.elapsed() < HANG;
        // The task holds this future for the whole session, as large as its
        // largest state plus whatever lives across two awaits: the request
        // is gone before the first, and connecting, joining and closing
        // (TCP, TLS, the upgrade: kilobytes) are boxed.
        let (connect, url) = {
            let request = match self.request() {
                Ok(r) => r,
                Err(f) => return self.failed(f),
            };
            let url = d.sio.is_some().then(|| request.uri().to_string());
            (Box::pin(d.connector.connect(request, &self.io)), url)
        };
        let mut ws = match timeout_at(connect_by.into(), connect).await {
            Ok(Ok(ws)) => ws,
            Ok(Err(f)) => return self.failed(f),
            Err(_) if cut() => return Outcome::Abandoned,
            Err(_) => return self.failed(Fault::ConnectTimeout),
        };
        // Socket.IO: connecting includes the Engine.IO and namespace handshakes.
        let heartbeat = match &url {
            Some(url) => match Box::pin(self.sio_connect(&mut ws, connect_by, url)).await {
                Ok(beat) => Some(beat),
                Err(Fault::EioNoOpen | Fault::SioConnectTimeout) if cut() => {
                    return Outcome::Abandoned;
                }
                Err(f) => {
                    if f == Fault::EioNoOpen {
                        d.hint_no_open(url);
                    }
                    return self.failed(f);
                }
            },
            None => None,
        };
        drop(url);
        self.failures = 0;
        self.rec.add(self.s.sessions, 1);
        self.rec.time(self.s.connecting, started.elapsed());

        match Box::pin(self.join(&mut ws, end)).await {
            Ok(()) => {}
            Err(Some(f)) => {
                self.error(f);
                return self.end_session(started, Outcome::Dropped);
            }
            Err(None) => {
                Box::pin(self.close(&mut ws)).await;
                return self.end_session(started, Outcome::Planned);
            }
        }
        let room = self.room.clone();
        let mut p = Presence {
            room: &room,
            member: room.join(self.slot),
        };
        let mut ping_sent: Option<Instant> = None;
        let fault = self
            .converse(&mut ws, &mut p, &mut ping_sent, heartbeat, end, stop)
            .await;

        room.leave(&mut p.member);
        if let Some(f) = fault {
            // Ended early: what was on its way to us can no longer arrive.
            self.error(f);
            let now = Instant::now();
            let s = room.settle(&mut p.member, now, d.deadline, true);
            self.record_lost(s.lost);
            self.expire_acks(now, true);
            return self.end_session(started, Outcome::Dropped);
        }
        self.wind_down(&mut ws, &mut p, &mut ping_sent).await;
        Box::pin(self.close(&mut ws)).await;
        self.end_session(started, Outcome::Planned)
    }

    /// The session proper, in the room until its end: send at the planned
    /// rate, read what comes, ping, settle what others sent. Some(fault)
    /// when it ended early.
    async fn converse(
        &mut self,
        ws: &mut Socket,
        p: &mut Presence<'_>,
        ping_sent: &mut Option<Instant>,
        heartbeat: Option<Duration>,
        end: Instant,
        stop: &Stop,
    ) -> Option<Fault> {
        let d = self.d.clone();
        let room = p.room;
        let now = Instant::now();
        let mut next_send = d.interval.map(|i| now + self.gap(i));
        let mut next_ping = d.ping.map(|(every, _)| now + every);
        // Engine.IO: the server pings; none for this long means it is gone.
        let mut last_eio_ping = now;
        // Nothing sent from now on can be lost before `now + deadline`.
        let mut next_settle = now + d.deadline;
        let timer = tokio::time::sleep_until(end.into());
        tokio::pin!(timer);
        // The run stopping early (Ctrl-C, abort_on_fail) ends the session as planned.
        let stopped = stop.fired();
        tokio::pin!(stopped);

        loop {
            let pong_due = ping_sent.zip(d.ping).map(|(t, (_, timeout))| t + timeout);
            let heartbeat_due = heartbeat.and_then(|b| last_eio_ping.checked_add(b));
            let ack_due = self.acks.front().map(|&(_, at)| at + d.deadline);
            let wake = [
                Some(end),
                next_send,
                next_ping,
                pong_due,
                Some(next_settle),
                heartbeat_due,
                ack_due,
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(end);
            if timer.deadline() != tokio::time::Instant::from(wake) {
                timer.as_mut().reset(wake.into());
            }
            tokio::select! {
                biased;
                _ = &mut stopped => return None,
                _ = &mut timer => {
                    let now = Instant::now();
                    if now >= end {
                        return None;
                    }
                    if pong_due.is_some_and(|t| now >= t) {
                        return Some(Fault::PongTimeout);
                    }
                    if heartbeat_due.is_some_and(|t| now >= t) {
                        return Some(Fault::EioPingTimeout);
                    }
                    if let Some(t) = next_send && now >= t {
                        if let Err(f) = self.chat(ws, end).await {
                            return Some(f);
                        }
                        // Keep the rate when late, without a burst to catch up.
                        next_send = d.interval.map(|i| now.checked_sub(i).map_or(t, |x| t.max(x)) + self.gap(i));
                    }
                    if let Some(t) = next_ping && now >= t {
                        let by = now + d.ping.map(|p| p.1).unwrap_or_default();
                        if let Err(f) = self.send_raw(ws, Message::Ping(Bytes::from_static(b"volley")), by).await {
                            return Some(f);
                        }
                        if ping_sent.is_none() {
                            *ping_sent = Some(now);
                        }
                        next_ping = d.ping.map(|(every, _)| now + every);
                    }
                    if ack_due.is_some_and(|t| now >= t) {
                        self.expire_acks(now, false);
                    }
                    if now >= next_settle {
                        // Settle when the oldest unsettled message's deadline comes:
                        // an idle room wakes its members once per deadline, not more.
                        let s = room.settle(&mut p.member, now, d.deadline, false);
                        self.record_lost(s.lost);
                        self.flush_io();
                        next_settle = match s.next {
                            Some(t) => t.max(now + SETTLE_MIN),
                            None => now + d.deadline,
                        };
                    }
                }
                msg = ws.next() => match msg {
                    None => return Some(Fault::Reset),
                    Some(Err(e)) => return Some(Fault::from_ws(&e)),
                    Some(Ok(m)) => match self.on_message(m, Some(&mut p.member), ping_sent) {
                        Step::End(f) => return Some(f),
                        Step::EioPing => {
                            last_eio_ping = Instant::now();
                            if let Err(f) = self.eio_pong(ws).await {
                                return Some(f);
                            }
                        }
                        Step::Joined | Step::Continue => {}
                    },
                }
            }
        }
    }

    /// The planned end: stop sending, wait for what others sent while we
    /// were here and for the acknowledgements of what we sent (each until
    /// its deadline).
    async fn wind_down(
        &mut self,
        ws: &mut Socket,
        p: &mut Presence<'_>,
        ping_sent: &mut Option<Instant>,
    ) {
        let deadline = self.d.deadline;
        let room = p.room;
        loop {
            let now = Instant::now();
            let s = room.settle(&mut p.member, now, deadline, false);
            self.record_lost(s.lost);
            let ack_due = self.expire_acks(now, false);
            if s.done && ack_due.is_none() {
                return;
            }
            let room_due = (!s.done).then(|| s.next.unwrap_or(now + SETTLE_MIN));
            let wake = room_due
                .into_iter()
                .chain(ack_due)
                .min()
                .unwrap_or(now + SETTLE_MIN);
            let gone = tokio::select! {
                _ = sleep_until(wake.into()) => false,
                msg = ws.next() => match msg {
                    None | Some(Err(_)) => true,
                    Some(Ok(m)) => match self.on_message(m, Some(&mut p.member), ping_sent) {
                        Step::End(_) => true,
                        Step::EioPing => self.eio_pong(ws).await.is_err(),
                        Step::Joined | Step::Continue => false,
                    },
                }
            };
            if gone {
                let now = Instant::now();
                let s = room.settle(&mut p.member, now, deadline, true);
                self.record_lost(s.lost);
                self.expire_acks(now, true);
                return;
            }
        }
    }

    async fn eio_pong(&mut self, ws: &mut Socket) -> Result<(), Fault> {
        let by = Instant::now() + self.d.connect_timeout;
        self.send_raw(ws, eio_pong(), by).await
    }

    /// Close politely (Socket.IO: leave the namespace first) and wait briefly
    /// for the server's answer.
    async fn close(&mut self, ws: &mut Socket) {
        let leave = self.d.sio.as_ref().map(|s| s.disconnect.clone());
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            if let Some(leave) = leave {
                let _ = ws.send(Message::Text(leave)).await;
            }
            if ws.close(None).await.is_ok() {
                while let Some(Ok(_)) = ws.next().await {}
            }
        })
        .await;
    }

    fn failed(&mut self, f: Fault) -> Outcome {
        self.failures += 1;
        self.rec.add(self.s.sessions, 1);
        self.rec.rate(self.s.drop_rate, true);
        self.error(f);
        self.flush_io();
        Outcome::Failed
    }
}

#[derive(Clone, Copy)]
enum Which {
    Url,
    Join,
    Message,
    Header(usize),
}

impl Vu for WsVu {
    async fn iteration(&mut self, it: Iteration) {
        self.state.begin(it.number);
        let now = Instant::now();
        let d = self.d.clone();
        // The user name may use iteration values: render it per session.
        {
            let room = &self.room;
            let mut user = std::mem::take(&mut self.locals.user);
            user.clear();
            let locals = [self.locals.room_index.as_str(), room.name.as_str()];
            d.user.render(&mut self.state.scope(&locals), &mut user);
            self.locals.user = user;
        }
        let own_end = d
            .session_duration
            .map(|r| now + r.pick(&mut self.state.rng));
        let end = match (it.deadline, own_end) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => now + Duration::from_secs(365 * 24 * 3600),
        };
        if end <= now + Duration::from_millis(1) {
            // Too short for a session: let its time pass instead of returning
            // at once, so a VU whose sessions all fall short does not spin.
            sleep_until(end.into()).await;
            return;
        }
        let outcome = self.session(end, &it.stop).await;
        let again = match outcome {
            Outcome::Abandoned => return,
            Outcome::Planned => d.reconnect == Reconnect::Always,
            Outcome::Failed | Outcome::Dropped => d.reconnect != Reconnect::Never,
        };
        if it.stop.is_fired() {
            return;
        }
        let pause = if again {
            let mut p = d.reconnect_delay.pick(&mut self.state.rng);
            if outcome == Outcome::Failed {
                // Back off from a target that refuses us, instead of spinning.
                let backoff = Duration::from_millis(250) * (1 << self.failures.min(5)) / 2;
                p = p.max(backoff);
            }
            Some(Instant::now() + p)
        } else {
            it.deadline
        };
        if let Some(at) = pause {
            let at = it.deadline.map_or(at, |dl| at.min(dl));
            sleep_until(at.into()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    /// A chat VU's iteration future lives in its task for the whole session:
    /// at 50,000 sessions each KB of it is 50 MB. The rare, large parts
    /// (connecting, TLS, the handshake, joining, closing) are boxed.
    #[test]
    fn an_iteration_future_stays_small() {
        let size = crate::driver::iteration_future_size::<WsDriver>(
            "url = \"ws://127.0.0.1:1/ws/chat\"\n",
        );
        assert!(size <= 2048, "the iteration future is {size} bytes");
    }

    #[test]
    fn send_times_in_any_unit() {
        let us = 1_700_000_000_123_456u64;
        for v in [
            Val::U64(us),
            Val::U64(us / 1000),
            Val::F64(us as f64 / 1e6),
            Val::U64(us * 1000),
            Val::Str(Cow::Borrowed("1700000000123456")),
        ] {
            let got = sent_at_micros(&v).unwrap();
            assert!(got.abs_diff(us) < 1000, "{v:?} -> {got}");
        }
        let t = sent_at_micros(&Val::Str("2023-11-14T22:13:20.5Z".into())).unwrap();
        assert_eq!(t, 1_700_000_000_500_000);
        assert_eq!(sent_at_micros(&Val::Missing), None);
        assert_eq!(sent_at_micros(&Val::Str("soon".into())), None);
    }
}
