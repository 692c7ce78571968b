//! A lean HTTP/1.1 client connection, owned by one VU.
//!
//! hyper's client runs each connection as a second task fed through a channel
//! (a 32-slot block of ~280-byte envelopes), with an 8 KiB write buffer and
//! 8-16 KiB of read buffers: ~25 KiB per connection in steady state and two
//! task switches per request. A VU needs none of it: it sends one request and
//! reads one response at a time. Heads and chunk sizes are parsed by
//! httparse (hyper's own parser); this module frames messages as RFC 9112
//! section 6 says, in one buffer that starts at one page.

use super::conn::{ErrorKind, Stream};
use super::link::{BodySink, Keep};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const INITIAL: usize = 4096;
const MAX_BUFFER: usize = 64 * 1024;
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 96;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

pub struct Head {
    pub status: u16,
    /// Only when asked for (checks and captures that read headers).
    pub headers: HeaderMap,
    framing: Framing,
}

pub struct H1 {
    io: Stream,
    /// Initialized bytes; unread data is `buf[start..end]`.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The peer asked to close, or the body ran to EOF: not reusable.
    closed: bool,
    /// Bytes of the current response seen (a close before any is labelled
    /// apart from one in the middle of the response).
    received: bool,
    /// The last read filled the buffer: grow it before the next one.
    grow: bool,
}

impl H1 {
    pub fn new(io: Stream) -> Self {
        Self {
            io,
            buf: Vec::new(),
            start: 0,
            end: 0,
            closed: false,
            received: false,
            grow: false,
        }
    }

    /// Can the next request go on this connection? Checked before every
    /// request (it costs no syscall unless the runtime saw the socket
    /// readable): a close the peer sent after its last response means a
    /// new connection, not a request written into a closed one.
    pub fn is_reusable(&mut self) -> bool {
        if !self.closed && !self.io.still_open() {
            self.closed = true;
        }
        !self.closed
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Why reading failed, told apart by whether any of the response came.
    fn io_err(&mut self, e: std::io::Error) -> ErrorKind {
        match ErrorKind::from_io(&e) {
            ErrorKind::Closed => self.eof(),
            kind => kind,
        }
    }

    /// The peer closed the connection before the response ended.
    fn eof(&mut self) -> ErrorKind {
        self.closed = true;
        if self.received {
            ErrorKind::ClosedMidResponse
        } else {
            ErrorKind::Closed
        }
    }

    pub async fn send(&mut self, request: &[u8]) -> Result<(), ErrorKind> {
        self.received = false;
        self.start = 0;
        self.end = 0;
        let written = match self.io.write_all(request).await {
            Ok(()) if matches!(self.io, Stream::Tls(_)) => self.io.flush().await,
            r => r,
        };
        written.map_err(|e| {
            self.closed = true;
            ErrorKind::from_io(&e)
        })
    }

    /// Read more bytes; 0 means EOF.
    async fn fill(&mut self) -> Result<usize, ErrorKind> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.end == self.buf.len() || (self.grow && self.buf.len() < MAX_BUFFER) {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.end == self.buf.len() || self.grow {
                let size = (self.buf.len() * 2).clamp(INITIAL, MAX_BUFFER.max(self.end * 2));
                self.buf.resize(size, 0);
            }
            self.grow = false;
        }
        let space = self.buf.len() - self.end;
        let n = match self.io.read(&mut self.buf[self.end..]).await {
            Ok(n) => n,
            Err(e) => {
                self.closed = true;
                return Err(self.io_err(e));
            }
        };
        self.end += n;
        self.grow = n == space;
        if n > 0 {
            self.received = true;
        }
        Ok(n)
    }

    /// Read the response head, skipping informational (1xx) responses.
    pub async fn read_head(&mut self, method: &Method, keep: Keep) -> Result<Head, ErrorKind> {
        loop {
            let parsed = {
                let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut resp = httparse::Response::new(&mut slots);
                match resp.parse(&self.buf[self.start..self.end]) {
                    Ok(httparse::Status::Complete(len)) => {
                        Some(interpret(&resp, len, method, keep)?)
                    }
                    Ok(httparse::Status::Partial) => None,
                    Err(_) => return Err(ErrorKind::Protocol),
                }
            };
            match parsed {
                Some((len, head, keep_alive)) => {
                    self.start += len;
                    if (100..200).contains(&head.status) && head.status != 101 {
                        continue;
                    }
                    if !keep_alive || head.status == 101 {
                        self.closed = true;
                    }
                    return Ok(head);
                }
                None => {
                    if self.end - self.start >= MAX_HEAD {
                        return Err(ErrorKind::Protocol);
                    }
                    if self.fill().await? == 0 {
                        return Err(self.eof());
                    }
                }
            }
        }
    }

    /// Read the body to its end: its length; its bytes go to `sink` when given.
    pub async fn read_body(
        &mut self,
        head: &Head,
        mut sink: Option<&mut (dyn BodySink + '_)>,
    ) -> Result<u64, ErrorKind> {
        let total = match head.framing {
            Framing::Empty => 0,
            Framing::Length(n) => {
                self.take(n, &mut sink).await?;
                n
            }
            Framing::UntilClose => {
                let mut n = 0;
                loop {
                    n += self.consume_available(u64::MAX, &mut sink);
                    if self.fill().await? == 0 {
                        break;
                    }
                }
                self.closed = true;
                n
            }
            Framing::Chunked => self.read_chunked(&mut sink).await?,
        };
        Ok(total)
    }

    fn consume_available(&mut self, max: u64, sink: &mut Option<&mut (dyn BodySink + '_)>) -> u64 {
        let take = ((self.end - self.start) as u64).min(max) as usize;
        if let Some(s) = sink.as_deref_mut()
            && take > 0
        {
            s.data(&self.buf[self.start..self.start + take]);
        }
        self.start += take;
        take as u64
    }

    /// Exactly `n` body bytes.
    async fn take(
        &mut self,
        n: u64,
        sink: &mut Option<&mut (dyn BodySink + '_)>,
    ) -> Result<(), ErrorKind> {
        let mut left = n;
        while left > 0 {
            if self.start == self.end && self.fill().await? == 0 {
                return Err(self.eof());
            }
            left -= self.consume_available(left, sink);
        }
        Ok(())
    }

    async fn read_chunked(
        &mut self,
        sink: &mut Option<&mut (dyn BodySink + '_)>,
    ) -> Result<u64, ErrorKind> {
        let mut total = 0;
        loop {
            let size = loop {
                match httparse::parse_chunk_size(&self.buf[self.start..self.end]) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        self.start += used;
                        break size;
                    }
                    Ok(httparse::Status::Partial) => self.need_more().await?,
                    Err(_) => return Err(ErrorKind::Protocol),
                }
            };
            if size == 0 {
                // Trailer fields, then an empty line.
                loop {
                    match find_crlf(&self.buf[self.start..self.end]) {
                        Some(0) => {
                            self.start += 2;
                            return Ok(total);
                        }
                        Some(i) => self.start += i + 2,
                        None => self.need_more().await?,
                    }
                }
            }
            self.take(size, sink).await?;
            total += size;
            while self.end - self.start < 2 {
                self.need_more().await?;
            }
            if &self.buf[self.start..self.start + 2] != b"\r\n" {
                return Err(ErrorKind::Protocol);
            }
            self.start += 2;
        }
    }

    async fn need_more(&mut self) -> Result<(), ErrorKind> {
        if self.end - self.start >= MAX_HEAD {
            return Err(ErrorKind::Protocol);
        }
        if self.fill().await? == 0 {
            return Err(self.eof());
        }
        Ok(())
    }
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

/// Status, framing and keep-alive of a parsed head (RFC 9112 6.3).
fn interpret(
    resp: &httparse::Response<'_, '_>,
    len: usize,
    method: &Method,
    keep: Keep,
) -> Result<(usize, Head, bool), ErrorKind> {
    let status = resp.code.ok_or(ErrorKind::Protocol)?;
    let mut keep_alive = resp.version == Some(1);
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut headers = HeaderMap::new();
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or(ErrorKind::Protocol)?;
            if length.is_some_and(|l| l != v) {
                return Err(ErrorKind::Protocol);
            }
            length = Some(v);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = h
                .value
                .rsplit(|b| *b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|b| *b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                }
            }
        }
        if keep.wants(h.name, status)
            && let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(h.name.as_bytes()),
                HeaderValue::from_bytes(h.value),
            )
        {
            headers.append(n, v);
        }
    }
    let framing = if *method == Method::HEAD
        || status == 204
        || status == 304
        || (100..200).contains(&status)
    {
        Framing::Empty
    } else if chunked {
        Framing::Chunked
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        keep_alive = false;
        Framing::UntilClose
    };
    Ok((
        len,
        Head {
            status,
            headers,
            framing,
        },
        keep_alive,
    ))
}

/// Serialize a request head (and body) into `out`.
pub fn write_request(
    out: &mut Vec<u8>,
    method: &Method,
    path: &str,
    host: &[u8],
    headers: &HeaderMap,
    body: &[u8],
) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if !headers.contains_key(http::header::HOST) {
        out.extend_from_slice(b"host: ");
        out.extend_from_slice(host);
        out.extend_from_slice(b"\r\n");
    }
    for (k, v) in headers {
        out.extend_from_slice(k.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let needs_length =
        !body.is_empty() || matches!(*method, Method::POST | Method::PUT | Method::PATCH);
    if needs_length && !headers.contains_key(http::header::CONTENT_LENGTH) {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(body.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

#[cfg(test)]
mod tests {
    //! Against a raw TCP peer on loopback that answers with crafted bytes.
    use super::*;
    use crate::http::conn::{Counting, IoCounters};
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// A peer that, per connection, reads one request head per answer and
    /// writes the answers in order, closing after the last one.
    async fn peer(answers: Vec<Vec<&'static [u8]>>) -> std::net::SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            for conn_answers in answers {
                let (mut s, _) = l.accept().await.unwrap();
                for a in conn_answers {
                    let mut seen = Vec::new();
                    let mut b = [0u8; 1024];
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        let n = s.read(&mut b).await.unwrap();
                        if n == 0 {
                            return;
                        }
                        seen.extend_from_slice(&b[..n]);
                    }
                    s.write_all(a).await.unwrap();
                }
            }
        });
        addr
    }

    async fn connect(addr: std::net::SocketAddr) -> H1 {
        let tcp = TcpStream::connect(addr).await.unwrap();
        H1::new(Stream::Plain(Counting::new(
            tcp,
            Arc::new(IoCounters::default()),
        )))
    }

    async fn get(c: &mut H1, method: Method) -> Result<(u16, Vec<u8>), ErrorKind> {
        let mut out = Vec::new();
        write_request(&mut out, &method, "/x", b"h", &HeaderMap::new(), b"");
        c.send(&out).await?;
        let head = c.read_head(&method, Keep::ALL).await?;
        let mut body = Vec::new();
        let n = c.read_body(&head, Some(&mut body)).await?;
        assert_eq!(n as usize, body.len());
        Ok((head.status, body))
    }

    #[tokio::test]
    async fn content_length_and_keep_alive() {
        let addr = peer(vec![vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n",
        ]])
        .await;
        let mut c = connect(addr).await;
        assert_eq!(
            get(&mut c, Method::GET).await.unwrap(),
            (200, b"hello".to_vec())
        );
        assert!(c.is_reusable());
        assert_eq!(get(&mut c, Method::GET).await.unwrap(), (201, vec![]));
    }

    #[tokio::test]
    async fn chunked_with_extensions_and_trailers() {
        let addr = peer(vec![vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: t\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        ]])
        .await;
        let mut c = connect(addr).await;
        let (status, body) = get(&mut c, Method::GET).await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(body, b"Wikipedia in\r\n\r\nchunks.");
        // The trailer was consumed: the next response parses cleanly.
        assert_eq!(
            get(&mut c, Method::GET).await.unwrap(),
            (200, b"ok".to_vec())
        );
    }

    #[tokio::test]
    async fn body_until_close_and_connection_close() {
        let addr = peer(vec![
            vec![b"HTTP/1.1 200 OK\r\n\r\nall of it"],
            vec![b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi"],
        ])
        .await;
        let mut c = connect(addr).await;
        assert_eq!(
            get(&mut c, Method::GET).await.unwrap(),
            (200, b"all of it".to_vec())
        );
        assert!(!c.is_reusable());
        let mut c = connect(addr).await;
        assert_eq!(
            get(&mut c, Method::GET).await.unwrap(),
            (200, b"hi".to_vec())
        );
        assert!(!c.is_reusable());
    }

    #[tokio::test]
    async fn head_204_and_informational() {
        let addr = peer(vec![vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
        ]])
        .await;
        let mut c = connect(addr).await;
        assert_eq!(get(&mut c, Method::HEAD).await.unwrap(), (200, vec![]));
        assert_eq!(get(&mut c, Method::GET).await.unwrap(), (204, vec![]));
        assert_eq!(
            get(&mut c, Method::GET).await.unwrap(),
            (200, b"x".to_vec())
        );
    }

    #[tokio::test]
    async fn large_head_and_body_grow_the_buffer() {
        let big_header: &'static [u8] = Box::leak(
            format!(
                "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 100000\r\n\r\n{}",
                "a".repeat(20_000),
                "b".repeat(100_000)
            )
            .into_bytes()
            .into_boxed_slice(),
        );
        let addr = peer(vec![vec![big_header]]).await;
        let mut c = connect(addr).await;
        let (status, body) = get(&mut c, Method::GET).await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(body.len(), 100_000);
    }

    #[tokio::test]
    async fn a_closed_connection_is_seen_before_reuse_or_reported() {
        // The peer answers once (keep-alive) and then closes.
        let addr = peer(vec![vec![b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]]).await;
        let mut c = connect(addr).await;
        get(&mut c, Method::GET).await.unwrap();
        // Once the runtime has seen the FIN, the connection is not reused
        // (however short the idle time).
        let mut polls = 0;
        while c.is_reusable() {
            assert!(polls < 1000, "the close was never noticed");
            polls += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Written into anyway, the request fails as closed (or reset), not
        // as anything about connecting.
        let addr = peer(vec![vec![b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]]).await;
        let mut c = connect(addr).await;
        get(&mut c, Method::GET).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let e = get(&mut c, Method::GET).await.unwrap_err();
        assert!(matches!(e, ErrorKind::Closed | ErrorKind::Reset), "{e:?}");
        assert!(c.is_closed());
    }

    #[tokio::test]
    async fn a_close_mid_response_is_told_apart() {
        let addr = peer(vec![vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
        ]])
        .await;
        let mut c = connect(addr).await;
        assert_eq!(
            get(&mut c, Method::GET).await.unwrap_err(),
            ErrorKind::ClosedMidResponse
        );
    }

    #[tokio::test]
    async fn malformed_answers_are_protocol_errors() {
        let addr = peer(vec![
            vec![b"NOT HTTP\r\n\r\n"],
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc"],
            vec![b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"],
        ])
        .await;
        for _ in 0..3 {
            let mut c = connect(addr).await;
            assert_eq!(
                get(&mut c, Method::GET).await.unwrap_err(),
                ErrorKind::Protocol
            );
        }
    }

    #[tokio::test]
    async fn byte_counters_equal_what_the_peer_saw() {
        // A peer that records how many bytes it read and wrote.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let answer: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
        let peer = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let (mut read, mut written) = (0u64, 0u64);
            for _ in 0..2 {
                let mut seen = Vec::new();
                let mut b = [0u8; 1024];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") || seen.len() < 4 {
                    let n = s.read(&mut b).await.unwrap();
                    seen.extend_from_slice(&b[..n]);
                }
                // The request has a 2-byte body after its head.
                while !seen.ends_with(b"{}") {
                    let n = s.read(&mut b).await.unwrap();
                    seen.extend_from_slice(&b[..n]);
                }
                read += seen.len() as u64;
                s.write_all(answer).await.unwrap();
                written += answer.len() as u64;
            }
            (read, written)
        });
        let counters = Arc::new(IoCounters::default());
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut c = H1::new(Stream::Plain(Counting::new(tcp, counters.clone())));
        for _ in 0..2 {
            let mut out = Vec::new();
            write_request(
                &mut out,
                &Method::POST,
                "/p",
                b"h",
                &HeaderMap::new(),
                b"{}",
            );
            c.send(&out).await.unwrap();
            let head = c.read_head(&Method::POST, Keep::NONE).await.unwrap();
            c.read_body(&head, None).await.unwrap();
        }
        let (read, written) = peer.await.unwrap();
        assert_eq!(counters.sent.get(), read);
        assert_eq!(counters.received.get(), written);
    }

    #[test]
    fn serializes_requests() {
        let mut out = Vec::new();
        let mut h = HeaderMap::new();
        h.insert("x-a", HeaderValue::from_static("1"));
        write_request(
            &mut out,
            &Method::POST,
            "/p?q=1",
            b"example.test:8080",
            &h,
            b"{}",
        );
        assert_eq!(
            out,
            b"POST /p?q=1 HTTP/1.1\r\nhost: example.test:8080\r\nx-a: 1\r\ncontent-length: 2\r\n\r\n{}"
        );
    }
}
