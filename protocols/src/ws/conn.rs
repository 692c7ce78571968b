//! Opening a WebSocket: TCP, TLS (rustls, ring provider) for wss://, the
//! HTTP/1.1 upgrade (checked as tungstenite checks it), then tungstenite's
//! framing; and what can go wrong, as `error` tags.

use crate::http::HttpVersion;
use crate::http::conn::{
    ConnectTimes, Connector as HttpConnector, ErrorKind as IoKind, IoCounters, Origin, Stream,
};
use http::{HeaderValue, Uri};
use std::borrow::Cow;
use std::io;
use std::sync::Arc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, error::ProtocolError};

/// Bytes a session reads at a time, and the read buffer it keeps: chat frames
/// are a few hundred bytes (a larger frame grows the buffer while it comes).
const READ_BUFFER: usize = 1024;
/// The server's answer to the upgrade is refused past this size.
const MAX_ANSWER: usize = 16 * 1024;

/// Small buffers: tungstenite's defaults (128 KiB each) would cost more than a
/// gigabyte at 10,000 sessions. Chat frames are small; larger ones still work.
pub fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(1024 * 1024)
        .max_message_size(Some(16 << 20))
        .max_frame_size(Some(16 << 20))
}

/// Why a session failed, ended early, or a frame was not understood: the `error` tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Dns,
    Refused,
    ConnectTimeout,
    Tls,
    InvalidUrl,
    HandshakeStatus(u16),
    Handshake,
    JoinTimeout,
    Reset,
    ClosedByPeer(u16),
    PongTimeout,
    SendTimeout,
    Protocol,
    TooBig,
    Io,
    NonJson,
    NoSentAt,
    /// Socket.IO: no Engine.IO open packet within connect_timeout.
    EioNoOpen,
    /// Socket.IO: the first frame was not an Engine.IO open packet.
    EioBadOpen,
    /// Socket.IO: no ping from the server within pingInterval + pingTimeout.
    EioPingTimeout,
    /// Socket.IO: the server closed the Engine.IO session.
    EioClose,
    /// Socket.IO: no answer to CONNECT for the namespace.
    SioConnectTimeout,
    /// Socket.IO: the server refused the namespace.
    SioConnectError,
    /// Socket.IO: the server disconnected us from the namespace.
    SioDisconnect,
}

impl Fault {
    pub fn tag(self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            Fault::Dns => "dns lookup failed",
            Fault::Refused => "connection refused",
            Fault::ConnectTimeout => "connect timeout",
            Fault::Tls => "tls handshake failed",
            Fault::InvalidUrl => "invalid url",
            Fault::HandshakeStatus(s) => return Cow::Owned(format!("handshake status {s}")),
            Fault::Handshake => "handshake failed",
            Fault::JoinTimeout => "join timeout",
            Fault::Reset => "connection reset",
            Fault::ClosedByPeer(c) => return Cow::Owned(format!("closed by peer ({c})")),
            Fault::PongTimeout => "pong timeout",
            Fault::SendTimeout => "send timeout",
            Fault::Protocol => "protocol error",
            Fault::TooBig => "message too big",
            Fault::Io => "io error",
            Fault::NonJson => "non-json message",
            Fault::NoSentAt => "message without sent_at",
            Fault::EioNoOpen => "engine.io handshake: no open packet",
            Fault::EioBadOpen => "engine.io handshake: first frame not an open packet",
            Fault::EioPingTimeout => "engine.io ping timeout",
            Fault::EioClose => "engine.io close",
            Fault::SioConnectTimeout => "socket.io connect timeout",
            Fault::SioConnectError => "socket.io connect_error",
            Fault::SioDisconnect => "socket.io disconnect",
        })
    }

    fn from_io(e: &io::Error) -> Self {
        Self::from_kind(IoKind::from_io(e))
    }

    fn from_kind(k: IoKind) -> Self {
        match k {
            IoKind::Dns => Fault::Dns,
            IoKind::Refused => Fault::Refused,
            // An EOF mid-session is an abrupt end here, as a reset is.
            IoKind::Reset | IoKind::Closed | IoKind::ClosedMidResponse => Fault::Reset,
            IoKind::Timeout => Fault::ConnectTimeout,
            IoKind::Tls => Fault::Tls,
            IoKind::InvalidUrl => Fault::InvalidUrl,
            // Redirects are the HTTP driver's; a WebSocket connect never follows one.
            IoKind::Protocol
            | IoKind::NotHttp2
            | IoKind::TooManyRedirects
            | IoKind::BadRedirect => Fault::Protocol,
            IoKind::Io => Fault::Io,
        }
    }

    pub fn from_ws(e: &WsError) -> Self {
        match e {
            WsError::Io(e) => Self::from_io(e),
            WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => Fault::Reset,
            WsError::ConnectionClosed | WsError::AlreadyClosed => Fault::Reset,
            WsError::Http(resp) => Fault::HandshakeStatus(resp.status().as_u16()),
            WsError::HttpFormat(_) => Fault::Handshake,
            WsError::Tls(_) => Fault::Tls,
            WsError::Url(_) => Fault::InvalidUrl,
            WsError::Capacity(_) => Fault::TooBig,
            _ => Fault::Protocol,
        }
    }
}

pub type Socket = WebSocketStream<Stream>;

/// Shared by the VUs of a scenario: the HTTP driver's connector (TLS
/// settings, resolved addresses), offering only HTTP/1.1 over TLS since a
/// WebSocket upgrade is HTTP/1.1.
pub struct Connector {
    inner: HttpConnector,
}

impl Connector {
    pub fn new(insecure: bool) -> Self {
        Self {
            inner: HttpConnector::new(insecure, HttpVersion::Http1),
        }
    }

    /// Connect and upgrade. The request carries the URL, headers and subprotocols.
    pub async fn connect(&self, request: Request, io: &Arc<IoCounters>) -> Result<Socket, Fault> {
        let uri: &Uri = request.uri();
        let https = match uri.scheme_str() {
            Some("wss") => true,
            Some("ws") => false,
            _ => return Err(Fault::InvalidUrl),
        };
        let host = uri
            .host()
            .ok_or(Fault::InvalidUrl)?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let origin = Origin { https, host, port };
        let mut times = ConnectTimes::default();
        let (stream, _) = self
            .inner
            .connect_stream(&origin, io, &mut times)
            .await
            .map_err(Fault::from_kind)?;
        upgrade(stream, &request).await
    }
}

/// The HTTP/1.1 upgrade, done here rather than by tungstenite's handshake:
/// that one reads into a 4 KiB buffer which the session then keeps as its
/// read buffer (4 KiB per session, most of a chat session's memory). Here
/// what follows the answer is handed over in a buffer of `READ_BUFFER`.
async fn upgrade(mut stream: Stream, request: &Request) -> Result<Socket, Fault> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let io = |e: io::Error| Fault::from_io(&e);
    // `into_client_request` set Host, Connection, Upgrade, the version and a fresh key.
    let key = request
        .headers()
        .get("sec-websocket-key")
        .ok_or(Fault::Handshake)?;
    let mut buf = Vec::with_capacity(READ_BUFFER);
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    buf.extend_from_slice(b"GET ");
    buf.extend_from_slice(path.as_bytes());
    buf.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in request.headers() {
        buf.extend_from_slice(name.as_str().as_bytes());
        buf.extend_from_slice(b": ");
        buf.extend_from_slice(value.as_bytes());
        buf.extend_from_slice(b"\r\n");
    }
    buf.extend_from_slice(b"\r\n");
    stream.write_all(&buf).await.map_err(io)?;
    stream.flush().await.map_err(io)?;
    buf.clear();
    let head = loop {
        if buf.len() >= MAX_ANSWER {
            return Err(Fault::Handshake);
        }
        // A server that closes before answering in full: as tungstenite says it.
        if stream.read_buf(&mut buf).await.map_err(io)? == 0 {
            return Err(Fault::Handshake);
        }
        // As many as tungstenite accepts; not held across an await.
        let mut headers = [httparse::EMPTY_HEADER; 124];
        let mut answer = httparse::Response::new(&mut headers);
        match answer.parse(&buf) {
            Ok(httparse::Status::Complete(n)) => {
                check_answer(&answer, key, request)?;
                break n;
            }
            Ok(httparse::Status::Partial) => {}
            Err(_) => return Err(Fault::Handshake),
        }
    };
    // Frames the server sent right after its answer stay first in line.
    let part = if head == buf.len() {
        Vec::with_capacity(READ_BUFFER)
    } else {
        let mut part = Vec::with_capacity(READ_BUFFER.max(buf.len() - head));
        part.extend_from_slice(&buf[head..]);
        part
    };
    drop(buf);
    Ok(WebSocketStream::from_partially_read(stream, part, Role::Client, Some(config())).await)
}

/// RFC 6455 4.1: status 101, Upgrade: websocket, Connection: Upgrade, the
/// accept key derived from ours, and a subprotocol only if we offered it.
fn check_answer(
    answer: &httparse::Response<'_, '_>,
    key: &HeaderValue,
    request: &Request,
) -> Result<(), Fault> {
    let code = answer.code.unwrap_or(0);
    if code != 101 {
        return Err(Fault::HandshakeStatus(code));
    }
    let header = |name: &str| {
        answer
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    let is = |name: &str, want: &str| {
        header(name)
            .and_then(|v| std::str::from_utf8(v).ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case(want))
    };
    if !is("upgrade", "websocket") || !is("connection", "upgrade") {
        return Err(Fault::Handshake);
    }
    let accept = derive_accept_key(key.as_bytes());
    if header("sec-websocket-accept") != Some(accept.as_bytes()) {
        return Err(Fault::Handshake);
    }
    let offered = request.headers().get("sec-websocket-protocol");
    match (header("sec-websocket-protocol"), offered) {
        (None, None) => Ok(()),
        (Some(chosen), Some(offered)) => {
            let chosen = std::str::from_utf8(chosen).map_err(|_| Fault::Handshake)?;
            let offered = offered.to_str().map_err(|_| Fault::Handshake)?;
            if offered.split(',').any(|p| p.trim() == chosen.trim()) {
                Ok(())
            } else {
                Err(Fault::Handshake)
            }
        }
        _ => Err(Fault::Handshake),
    }
}
