//! Opening a WebSocket: TCP, TLS (rustls, ring provider) for wss://, the
//! HTTP/1.1 upgrade by tungstenite; and what can go wrong, as `error` tags.

use crate::http::HttpVersion;
use crate::http::conn::{
    ConnectTimes, Connector as HttpConnector, ErrorKind as IoKind, IoCounters, Origin, Stream,
};
use http::Uri;
use std::borrow::Cow;
use std::io;
use std::rc::Rc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, error::ProtocolError};

/// Small buffers: tungstenite's defaults (128 KiB each) would cost more than a
/// gigabyte at 10,000 sessions. Chat frames are small; larger ones still work.
pub fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
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

    /// Failures of the handshake itself (as opposed to the transport under it).
    fn from_handshake(e: &WsError) -> Self {
        match Self::from_ws(e) {
            Fault::Protocol => Fault::Handshake,
            f => f,
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
    pub async fn connect(&self, request: Request, io: &Rc<IoCounters>) -> Result<Socket, Fault> {
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
        let (ws, _resp) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(config()))
                .await
                .map_err(|e| Fault::from_handshake(&e))?;
        Ok(ws)
    }
}
