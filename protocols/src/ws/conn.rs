//! Opening a WebSocket: TCP, TLS (rustls, ring provider) for wss://, the
//! HTTP/1.1 upgrade by tungstenite; and what can go wrong, as `error` tags.

use crate::http::HttpVersion;
use crate::http::conn::{Counting, ErrorKind as IoKind, IoCounters, tls_config};
use http::Uri;
use std::borrow::Cow;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
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
        })
    }

    fn from_io(e: &io::Error) -> Self {
        match IoKind::from_io(e) {
            IoKind::Refused => Fault::Refused,
            IoKind::Reset => Fault::Reset,
            IoKind::Timeout => Fault::ConnectTimeout,
            _ => Fault::Io,
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

/// TCP, or TLS over TCP; bytes counted below TLS, as on the wire.
pub enum Stream {
    Plain(Counting<TcpStream>),
    Tls(Box<TlsStream<Counting<TcpStream>>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

pub type Socket = WebSocketStream<Stream>;

/// Shared by the VUs of a scenario: TLS settings and resolved addresses.
pub struct Connector {
    tls: Arc<rustls::ClientConfig>,
    dns: Mutex<HashMap<(String, u16), Vec<SocketAddr>>>,
}

impl Connector {
    pub fn new(insecure: bool) -> Self {
        Self {
            // WebSocket upgrades are HTTP/1.1: offering h2 could make a server pick it.
            tls: Arc::new(tls_config(insecure, HttpVersion::Http1)),
            dns: Mutex::default(),
        }
    }

    async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Fault> {
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let key = (host.to_string(), port);
        if let Some(a) = self.dns.lock().expect("dns cache").get(&key) {
            return Ok(a.clone());
        }
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| Fault::Dns)?
            .collect();
        if addrs.is_empty() {
            return Err(Fault::Dns);
        }
        self.dns
            .lock()
            .expect("dns cache")
            .insert(key, addrs.clone());
        Ok(addrs)
    }

    /// Connect and upgrade. The request carries the URL, headers and subprotocols.
    pub async fn connect(&self, request: Request, io: &Rc<IoCounters>) -> Result<Socket, Fault> {
        let uri: &Uri = request.uri();
        let tls = match uri.scheme_str() {
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
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let mut last = Fault::Refused;
        let mut tcp = None;
        for addr in self.resolve(&host, port).await? {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = Fault::from_io(&e),
            }
        }
        let tcp = tcp.ok_or(last)?;
        let _ = tcp.set_nodelay(true);
        let counted = Counting::new(tcp, io.clone());
        let stream = if tls {
            let name =
                rustls::pki_types::ServerName::try_from(host).map_err(|_| Fault::InvalidUrl)?;
            let s = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, counted)
                .await
                .map_err(|_| Fault::Tls)?;
            Stream::Tls(Box::new(s))
        } else {
            Stream::Plain(counted)
        };
        let (ws, _resp) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(config()))
                .await
                .map_err(|e| Fault::from_handshake(&e))?;
        Ok(ws)
    }
}
