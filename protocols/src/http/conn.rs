//! Connections owned by one VU: TCP (+ TLS), HTTP/1.1 or HTTP/2, byte counting.

use super::HttpVersion;
use bytes::Bytes;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Bytes a VU's connections moved on the wire (TLS records included).
/// Atomic because an HTTP/2 connection is driven by a task of its own
/// (`H2Conn`), which tokio may only spawn for a `Send` future.
#[derive(Default)]
pub struct IoCounters {
    pub sent: Counter,
    pub received: Counter,
}

impl IoCounters {
    /// Move `other`'s counts into these.
    pub fn absorb(&self, other: &IoCounters) {
        self.sent.add(other.sent.take());
        self.received.add(other.received.take());
    }
}

/// A byte count written by one task at a time and read by its VU.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The count so far, leaving zero.
    pub fn take(&self) -> u64 {
        self.0.swap(0, Ordering::Relaxed)
    }
}

pub struct Counting<S> {
    inner: S,
    counters: Arc<IoCounters>,
    /// Held while the connection is: it counts open loopback connections.
    _lease: Option<super::tcp::Lease>,
}

impl<S> Counting<S> {
    pub fn new(inner: S, counters: Arc<IoCounters>) -> Self {
        Self {
            inner,
            counters,
            _lease: None,
        }
    }

    fn leased(mut self, lease: Option<super::tcp::Lease>) -> Self {
        self._lease = lease;
        self
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counting<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        self.counters.received.add(n);
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counting<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.counters.sent.add(n as u64);
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r {
            self.counters.sent.add(n as u64);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A connected byte stream, plain or TLS (boxed: rustls state is large and
/// most connections are plain).
pub enum Stream {
    Plain(Counting<TcpStream>),
    Tls(Box<tokio_rustls::client::TlsStream<Counting<TcpStream>>>),
}

impl Stream {
    /// Whether an idle kept-alive connection can take the next request:
    /// false once the peer closed it (EOF, reset) or sent something unasked
    /// (a 408). Asks only what the runtime already knows: no syscall unless
    /// the socket was reported readable (a close is), no waker registered.
    pub fn still_open(&mut self) -> bool {
        match self {
            Stream::Plain(s) => {
                let mut probe = [0u8; 1];
                match s.inner.try_read(&mut probe) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => true,
                    Ok(n) => {
                        s.counters.received.add(n as u64);
                        false
                    }
                    Err(_) => false,
                }
            }
            // TLS must read whole records (a close_notify, a session ticket):
            // poll once with a waker that is never woken.
            Stream::Tls(s) => {
                let mut cx = Context::from_waker(std::task::Waker::noop());
                let mut probe = [0u8; 1];
                let mut rb = ReadBuf::new(&mut probe);
                matches!(
                    Pin::new(s.as_mut()).poll_read(&mut cx, &mut rb),
                    Poll::Pending
                )
            }
        }
    }
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

/// Where a connection goes: scheme + host + port.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Origin {
    pub https: bool,
    pub host: String,
    pub port: u16,
}

impl Origin {
    /// The origin of an absolute URL, or what is wrong with it.
    pub fn of(uri: &http::Uri) -> Result<Self, &'static str> {
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err("the scheme must be http:// or https://"),
        };
        let authority = uri.authority().ok_or("there is no host")?;
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or("there is no host")?;
        // `http` reads a port that does not fit in 16 bits as no port at all
        // (and the default one would be used): refuse it.
        let after_host = authority
            .as_str()
            .rsplit_once('@')
            .map_or(authority.as_str(), |(_, h)| h)
            .strip_prefix(host)
            .unwrap_or("");
        let port = match after_host.strip_prefix(':') {
            None | Some("") => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or("the port must be a number from 1 to 65535")?,
            ),
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = port.unwrap_or(if https { 443 } else { 80 });
        Ok(Self { https, host, port })
    }
}

/// A request URL with what each protocol version needs, computed once for
/// static URLs: the origin to connect to, the full URI (HTTP/2), the
/// origin-form path (HTTP/1.1) and the Host header.
pub struct Target {
    pub origin: Origin,
    pub full: http::Uri,
    pub path: http::Uri,
    pub host: http::HeaderValue,
}

/// A URL a user wrote that volley cannot send to, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{url:?} is not a valid URL: {reason}; write http[s]://host[:port][/path]")]
pub struct BadUrl {
    pub url: String,
    pub reason: String,
}

impl Target {
    /// From a URL a user wrote, with a message that says what is wrong.
    pub fn from_url(url: &str) -> Result<Self, BadUrl> {
        let bad = |e: &dyn std::fmt::Display| BadUrl {
            url: url.to_string(),
            reason: e.to_string(),
        };
        let full = http::Uri::try_from(url).map_err(|e| bad(&e))?;
        Self::checked(full).map_err(|e| bad(&e))
    }

    pub fn parse(full: http::Uri) -> Result<Self, ErrorKind> {
        Self::checked(full).map_err(|_| ErrorKind::InvalidUrl)
    }

    /// The target, or what is wrong with the URL.
    pub fn checked(full: http::Uri) -> Result<Self, &'static str> {
        let origin = Origin::of(&full)?;
        let authority = full.authority().ok_or("there is no host")?;
        let host = http::HeaderValue::from_str(authority.as_str())
            .map_err(|_| "the host is not a valid header value")?;
        // An empty path is "/" (RFC 9112 3.2.1): `http://h?q=1` asks for
        // `/?q=1`, never `?q=1`. Only such URLs pay for the rebuild.
        let full = match full.path_and_query() {
            Some(pq) if pq.as_str().starts_with('?') => {
                let fixed = http::uri::PathAndQuery::try_from(format!("/{}", pq.as_str()))
                    .map_err(|_| "the path is not valid")?;
                let mut parts = full.into_parts();
                parts.path_and_query = Some(fixed);
                http::Uri::from_parts(parts).map_err(|_| "the path is not valid")?
            }
            _ => full,
        };
        let path = match full.path_and_query() {
            Some(pq) => http::Uri::from(pq.clone()),
            None => http::Uri::from_static("/"),
        };
        Ok(Self {
            origin,
            full,
            path,
            host,
        })
    }
}

/// An HTTP/2 connection (the h2 crate, as hyper uses it, without hyper's
/// dispatch channel and per-request task): requests go out on `sender`
/// from the VU's task; the connection's I/O runs as a task of its own on the
/// VU's thread, so it is read while no request waits on it too (a VU
/// thinking, between iterations): PINGs and SETTINGS are answered, and a
/// GOAWAY or a close is seen before the next request, as hyper does.
pub struct H2Conn {
    pub origin: Origin,
    pub sender: h2::client::SendRequest<Bytes>,
    /// Set by the connection's task when it ends (closed, GOAWAY, error):
    /// it takes no more requests.
    ended: Arc<AtomicBool>,
    task: tokio::task::AbortHandle,
}

impl H2Conn {
    fn start(origin: Origin, sender: h2::client::SendRequest<Bytes>, io: H2Io) -> H2Conn {
        let ended = Arc::new(AtomicBool::new(false));
        let flag = ended.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = io.await {
                tracing::debug!("HTTP/2 connection ended: {e}");
            }
            flag.store(true, Ordering::Relaxed);
        })
        .abort_handle();
        H2Conn {
            origin,
            sender,
            ended,
            task,
        }
    }

    /// The connection ended: it takes no more requests.
    pub fn ended(&self) -> bool {
        self.ended.load(Ordering::Relaxed)
    }

    /// It refused a new stream (GOAWAY read, closing): no VU joins it.
    pub fn mark_ended(&self) {
        self.ended.store(true, Ordering::Relaxed);
    }
}

impl Drop for H2Conn {
    /// Forgetting the connection closes it, as dropping a socket does, even
    /// when the server still holds streams open.
    fn drop(&mut self) {
        self.task.abort();
    }
}

type H2Io = h2::client::Connection<Stream, Bytes>;

/// Timings of opening one connection.
#[derive(Default, Clone, Copy)]
pub struct ConnectTimes {
    pub connecting: Duration,
    pub tls: Duration,
}

/// Why a request did not get a response; becomes the `error` tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    Dns,
    /// Only connecting: nothing listened there.
    Refused,
    /// The peer reset the connection (RST) during the exchange.
    Reset,
    /// The peer closed the connection (EOF) before any of the response.
    Closed,
    /// The peer closed the connection in the middle of the response.
    ClosedMidResponse,
    Timeout,
    Tls,
    Protocol,
    /// `http_version = "2"` on http:// met a server answering in HTTP/1.1.
    NotHttp2,
    InvalidUrl,
    Io,
    /// Still redirected after `max_redirects` hops (a loop, or a long chain).
    TooManyRedirects,
    /// A redirect whose Location is not an http(s) URL.
    BadRedirect,
}

impl ErrorKind {
    pub fn tag(self) -> &'static str {
        match self {
            ErrorKind::Dns => "dns lookup failed",
            ErrorKind::Refused => "connection refused",
            ErrorKind::Reset => "connection reset",
            ErrorKind::Closed => "connection closed before response",
            ErrorKind::ClosedMidResponse => "connection closed mid-response",
            ErrorKind::Timeout => "request timeout",
            ErrorKind::Tls => "tls handshake failed",
            ErrorKind::Protocol => "protocol error",
            ErrorKind::NotHttp2 => {
                "server does not speak HTTP/2 (h2c prior knowledge): use http_version = \"1.1\""
            }
            ErrorKind::InvalidUrl => "invalid url",
            ErrorKind::Io => "io error",
            ErrorKind::TooManyRedirects => "too many redirects",
            ErrorKind::BadRedirect => "invalid redirect location",
        }
    }

    pub fn from_io(e: &io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => ErrorKind::Refused,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => ErrorKind::Reset,
            // TLS: the peer closed without a close_notify.
            io::ErrorKind::UnexpectedEof => ErrorKind::Closed,
            io::ErrorKind::TimedOut => ErrorKind::Timeout,
            _ => ErrorKind::Io,
        }
    }

    /// An HTTP/2 connection whose first bytes from the server were not a
    /// frame: an HTTP/1.1 answer ("HTTP/1.1 400 ...") read as a frame header
    /// announces a frame of megabytes, which h2 refuses as FRAME_SIZE_ERROR
    /// (no HTTP/2 server sends one larger than the 16 KiB it was allowed).
    pub fn not_http2(e: &(dyn std::error::Error + 'static)) -> bool {
        let mut src = Some(e);
        while let Some(s) = src {
            if let Some(h) = s.downcast_ref::<h2::Error>() {
                return h.is_go_away()
                    && h.is_library()
                    && h.reason() == Some(h2::Reason::FRAME_SIZE_ERROR);
            }
            src = s.source();
        }
        false
    }

    /// The socket's errors as HTTP/1.1 tags them, the rest protocol errors.
    /// h2 reports the peer's close (EOF) as a BrokenPipe of its own making
    /// (no OS error number): that is a close, as on HTTP/1.1, not a reset
    /// (hyper tagged it "connection reset").
    pub fn from_h2(e: &h2::Error) -> Self {
        if Self::not_http2(e) {
            return ErrorKind::NotHttp2;
        }
        match e.get_io() {
            Some(io) if io.kind() == io::ErrorKind::BrokenPipe && io.raw_os_error().is_none() => {
                ErrorKind::Closed
            }
            Some(io) => Self::from_io(io),
            None => ErrorKind::Protocol,
        }
    }
}

/// Shared by all VUs of a driver: TLS settings and resolved addresses.
pub struct Connector {
    pub tls: Arc<rustls::ClientConfig>,
    pub version: HttpVersion,
    dns: Mutex<HashMap<(String, u16), Vec<SocketAddr>>>,
}

/// A client certificate (mTLS) and private CAs, read from PEM files at load.
#[derive(Debug, Default)]
pub struct TlsFiles {
    pub client: Option<(
        Vec<rustls::pki_types::CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    )>,
    /// Trusted beside the public roots (`ca_file`).
    pub roots: Vec<rustls::pki_types::CertificateDer<'static>>,
}

impl TlsFiles {
    pub fn is_empty(&self) -> bool {
        self.client.is_none() && self.roots.is_empty()
    }
}

impl Connector {
    pub fn new(insecure: bool, version: HttpVersion) -> Self {
        Self::with_tls(insecure, version, &TlsFiles::default()).expect("no certificate to refuse")
    }

    /// With a client certificate and private CAs; refused when a
    /// certificate does not parse or the key does not fit it.
    pub fn with_tls(
        insecure: bool,
        version: HttpVersion,
        files: &TlsFiles,
    ) -> Result<Self, TlsError> {
        Ok(Self {
            tls: Arc::new(tls_config(insecure, version, files)?),
            version,
            dns: Mutex::default(),
        })
    }

    async fn resolve(&self, origin: &Origin) -> Result<Vec<SocketAddr>, ErrorKind> {
        if let Ok(ip) = origin.host.parse::<std::net::IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, origin.port)]);
        }
        let key = (origin.host.clone(), origin.port);
        if let Some(addrs) = self.dns.lock().expect("dns cache").get(&key) {
            return Ok(addrs.clone());
        }
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((origin.host.as_str(), origin.port))
            .await
            .map_err(|_| ErrorKind::Dns)?
            .collect();
        if addrs.is_empty() {
            return Err(ErrorKind::Dns);
        }
        self.dns
            .lock()
            .expect("dns cache")
            .insert(key, addrs.clone());
        Ok(addrs)
    }

    /// Start HTTP/2 on a connected stream (HTTP/1.1 is ours: h1.rs), with
    /// hyper's client settings.
    pub async fn h2_handshake(&self, origin: &Origin, stream: Stream) -> Result<H2Conn, ErrorKind> {
        let (sender, io) = h2::client::Builder::new()
            .initial_window_size(2 << 20)
            .initial_connection_window_size(5 << 20)
            .max_send_buffer_size(1 << 20)
            .enable_push(false)
            .handshake::<_, Bytes>(stream)
            .await
            .map_err(|e| ErrorKind::from_h2(&e))?;
        Ok(H2Conn::start(origin.clone(), sender, io))
    }

    /// TCP (and TLS) to `origin`, with connect and handshake times. The bool
    /// says whether to speak HTTP/2 (negotiated by ALPN, or asked for on h2c).
    pub async fn connect_stream(
        &self,
        origin: &Origin,
        counters: &Arc<IoCounters>,
        times: &mut ConnectTimes,
    ) -> Result<(Stream, bool), ErrorKind> {
        let addrs = self.resolve(origin).await?;
        let started = Instant::now();
        let mut last = ErrorKind::Refused;
        let mut tcp = None;
        for addr in addrs {
            match super::tcp::connect(addr).await {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = ErrorKind::from_io(&e),
            }
        }
        let (tcp, lease) = tcp.ok_or(last)?;
        let _ = tcp.set_nodelay(true);
        times.connecting = started.elapsed();
        let io = Counting::new(tcp, counters.clone()).leased(lease);
        if origin.https {
            let tls_started = Instant::now();
            let name = rustls::pki_types::ServerName::try_from(origin.host.clone())
                .map_err(|_| ErrorKind::InvalidUrl)?;
            let stream = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, io)
                .await
                .map_err(|_| ErrorKind::Tls)?;
            times.tls = tls_started.elapsed();
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
            Ok((Stream::Tls(Box::new(stream)), h2))
        } else {
            Ok((Stream::Plain(io), self.version == HttpVersion::Http2))
        }
    }
}

/// TLS files rustls refuses.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("ca_file: a certificate does not parse ({0})")]
    Root(rustls::Error),
    #[error(
        "client_key is not the key of client_cert: give the key the certificate was issued for"
    )]
    KeyMismatch,
    #[error("client_cert/client_key: {0}")]
    Client(rustls::Error),
}

/// rustls with the ring provider; also used by the WebSocket driver (HTTP/1.1 only).
fn tls_config(
    insecure: bool,
    version: HttpVersion,
    files: &TlsFiles,
) -> Result<rustls::ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions");
    let builder = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
    } else {
        let mut roots =
            rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for cert in &files.roots {
            roots.add(cert.clone()).map_err(TlsError::Root)?;
        }
        builder.with_root_certificates(roots)
    };
    let mut config = match &files.client {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain.clone(), key.clone_key())
            .map_err(|e| match e {
                rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch,
                e => TlsError::Client(e),
            })?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = match version {
        HttpVersion::Http1 => vec![b"http/1.1".to_vec()],
        HttpVersion::Http2 => vec![b"h2".to_vec()],
        HttpVersion::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
    };
    Ok(config)
}

/// `insecure_skip_tls_verify`: for staging certificates, as k6's option.
#[derive(Debug)]
pub(crate) struct AcceptAny(pub(crate) Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> Result<Target, BadUrl> {
        Target::from_url(url)
    }

    #[test]
    fn ports_outside_16_bits_or_zero_are_refused_not_defaulted() {
        for url in [
            "http://h:70000/",
            "http://h:65536",
            "http://[::1]:99999/x",
            "http://h:0/",
        ] {
            let e = target(url)
                .err()
                .unwrap_or_else(|| panic!("{url} accepted"));
            assert!(e.to_string().contains("1 to 65535"), "{e}");
        }
        assert_eq!(target("http://h:65535/").unwrap().origin.port, 65535);
        assert_eq!(target("http://u:p@[::1]:8080/").unwrap().origin.port, 8080);
        assert_eq!(target("https://[::1]/").unwrap().origin.port, 443);
        assert_eq!(target("http://h:/").unwrap().origin.port, 80);
    }

    #[test]
    fn an_empty_path_is_slash_for_both_versions() {
        let t = target("http://h:8080?q=lamp").unwrap();
        assert_eq!(t.path.to_string(), "/?q=lamp");
        assert_eq!(t.full.to_string(), "http://h:8080/?q=lamp");
        assert_eq!(target("http://h").unwrap().path.to_string(), "/");
    }
}
