//! One VU's HTTP connection, shared by everything that speaks HTTP (the HTTP
//! and webhook drivers, monitors): our lean HTTP/1.1 (`h1.rs`) or the h2
//! crate for HTTP/2 (its I/O a task of its own: `H2Conn`), opened on first
//! use, reopened when the server closes it.
//!
//! A request is never sent twice: once written, whatever happens to it is
//! its outcome (the server may have read it before closing, so sending it
//! again would be a second request the caller counts once). A close the
//! server sent after its last response is seen before the next request
//! (`H1::is_reusable`); only an HTTP/2 request that never
//! left (the connection refused new streams) goes again, on a fresh connection.

use super::conn::{ConnectTimes, Connector, ErrorKind, H2Conn, IoCounters, Origin, Target};
use super::h1::{self, H1};
use bytes::Bytes;
use http::{HeaderMap, Method};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

/// Where a response body goes as it arrives.
pub trait BodySink {
    fn data(&mut self, bytes: &[u8]);
}

impl BodySink for Vec<u8> {
    fn data(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Which response headers an exchange keeps. Kept headers are the only
/// ones copied out of the read buffer, so a response with none of them
/// costs no allocation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Keep {
    /// Every header (checks and captures read them).
    pub all: bool,
    /// Set-Cookie, for the cookie jar.
    pub set_cookie: bool,
    /// Location on a redirect (3xx).
    pub location: bool,
    /// Retry-After on a 429.
    pub retry_after: bool,
}

impl Keep {
    pub const ALL: Keep = Keep {
        all: true,
        set_cookie: false,
        location: false,
        retry_after: false,
    };
    pub const NONE: Keep = Keep {
        all: false,
        set_cookie: false,
        location: false,
        retry_after: false,
    };

    #[inline]
    pub fn wants(&self, name: &str, status: u16) -> bool {
        self.all
            || (self.set_cookie && name.eq_ignore_ascii_case("set-cookie"))
            || (self.location
                && (300..400).contains(&status)
                && name.eq_ignore_ascii_case("location"))
            || (self.retry_after && status == 429 && name.eq_ignore_ascii_case("retry-after"))
    }
}

enum Open {
    H1 { origin: Origin, conn: H1 },
    H2(H2Use),
}

/// A VU's use of an HTTP/2 connection, its own or shared with other VUs on
/// its thread (`vus_per_connection`): its own handle for opening streams.
struct H2Use {
    slot: Rc<Slot>,
    sender: h2::client::SendRequest<Bytes>,
}

/// One HTTP/2 connection, once up. VUs that share it wait for the first one
/// to open it; when that fails, the next waiting VU tries.
struct Slot {
    /// The connection, and what it moved on the wire: taken by whichever of
    /// its VUs ends a request next (`Link::take_bytes`), so each byte is
    /// counted once, whichever VUs have left it.
    conn: tokio::sync::OnceCell<(H2Conn, Arc<IoCounters>)>,
    /// Set when it is in the thread's shared list.
    group: Option<u64>,
}

impl H2Use {
    fn of(slot: Rc<Slot>) -> Self {
        let sender = slot.conn().sender.clone();
        H2Use { slot, sender }
    }

    fn conn(&self) -> &H2Conn {
        self.slot.conn()
    }
}

impl Slot {
    fn conn(&self) -> &H2Conn {
        &self.opened().0
    }

    fn io(&self) -> &Arc<IoCounters> {
        &self.opened().1
    }

    fn opened(&self) -> &(H2Conn, Arc<IoCounters>) {
        self.conn
            .get()
            .expect("an H2Use's slot holds its connection")
    }
}

/// The shared HTTP/2 connections of this thread, as (origin, slot). The list
/// holds one reference to a slot; each VU using it (or waiting for it to
/// open) holds another. Looked at only when a VU opens a connection, never
/// per request.
type SharedList = RefCell<Vec<(Origin, Rc<Slot>)>>;

thread_local! {
    static SHARED: SharedList = const { RefCell::new(Vec::new()) };
}

impl Drop for H2Use {
    /// The last VU to leave a shared connection takes it off the list, which
    /// closes it.
    fn drop(&mut self) {
        leave(&self.slot);
    }
}

fn leave(slot: &Rc<Slot>) {
    if slot.group.is_some() && Rc::strong_count(slot) == 2 {
        let _ = SHARED.try_with(|l| l.borrow_mut().retain(|(_, s)| !Rc::ptr_eq(s, slot)));
    }
}

/// A shared slot of `sh.group` to `origin` with room for one more VU, or a
/// new one, listed for the next VUs.
fn take_slot(sh: Sharing, origin: &Origin) -> Rc<Slot> {
    SHARED.with(|l| {
        let mut l = l.borrow_mut();
        l.retain(|(_, s)| !s.conn.get().is_some_and(|(c, _)| c.ended()));
        let found = l.iter().find(|(o, s)| {
            s.group == Some(sh.group) && o == origin && Rc::strong_count(s) - 1 < sh.per
        });
        if let Some((_, s)) = found {
            return s.clone();
        }
        let s = Rc::new(Slot {
            conn: tokio::sync::OnceCell::new(),
            group: Some(sh.group),
        });
        l.push((origin.clone(), s.clone()));
        s
    })
}

/// Moves `from`'s counts into `into` when dropped while armed: the bytes of
/// a shared connection that never came up are its opener's.
struct Absorb {
    from: Arc<IoCounters>,
    into: Arc<IoCounters>,
    armed: bool,
}

impl Drop for Absorb {
    fn drop(&mut self) {
        if self.armed {
            self.into.absorb(&self.from);
        }
    }
}

/// What opening a connection gave when it is not an HTTP/2 one to share.
enum NotShared {
    Failed(ErrorKind),
    /// The server chose HTTP/1.1 (ALPN): the VU keeps it for itself.
    H1(super::conn::Stream),
}

/// `vus_per_connection`: VUs of one scenario on one thread share HTTP/2
/// connections, up to `per` on each, as h2load's `-m` streams do.
#[derive(Clone, Copy, Debug)]
pub struct Sharing {
    /// Told apart per scenario (`Sharing::new`).
    pub group: u64,
    pub per: usize,
}

impl Sharing {
    pub fn new(per: usize) -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Sharing {
            group: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            per,
        }
    }
}

/// What came back, and when: `sent_at` is after any connecting, `headers_at`
/// when the response head arrived.
pub struct Exchange {
    pub status: u16,
    /// Only when asked for (`keep_headers`); empty otherwise.
    pub headers: HeaderMap,
    pub sent_at: Instant,
    pub headers_at: Instant,
}

#[derive(Default)]
pub struct Link {
    open: Option<Open>,
    io: Arc<IoCounters>,
    /// The HTTP/1.1 request being written, reused.
    out: Vec<u8>,
    share: Option<Sharing>,
}

impl Link {
    /// A link whose HTTP/2 connections are shared with other VUs.
    pub fn shared(share: Sharing) -> Self {
        Link {
            share: Some(share),
            ..Link::default()
        }
    }

    /// Bytes sent and received on the wire so far (TLS records included).
    pub fn bytes(&self) -> (u64, u64) {
        (self.io.sent.get(), self.io.received.get())
    }

    /// Bytes sent and received since the last call: the VU's own
    /// connections', or all of a shared HTTP/2 connection's since any of its
    /// VUs last took them (each byte is counted once, by one VU).
    pub fn take_bytes(&self) -> (u64, u64) {
        let io = match &self.open {
            Some(Open::H2(c)) => c.slot.io(),
            _ => &self.io,
        };
        let own = (io.sent.take(), io.received.take());
        if Arc::ptr_eq(io, &self.io) {
            own
        } else {
            // What the VU's own connections moved before it joined.
            (own.0 + self.io.sent.take(), own.1 + self.io.received.take())
        }
    }

    /// Forget the connection (e.g. after a timeout cut an exchange short).
    pub fn close(&mut self) {
        self.forget();
    }

    /// Drop the connection; what a shared one moved and no VU has taken yet
    /// becomes this VU's, so it is counted even when this VU was its last.
    fn forget(&mut self) {
        if let Some(Open::H2(c)) = &self.open
            && !Arc::ptr_eq(c.slot.io(), &self.io)
        {
            self.io.absorb(c.slot.io());
        }
        self.open = None;
    }

    /// Send one request and read its whole response. The body goes to `sink`
    /// when given (cleared first); response headers are kept only when asked.
    #[allow(clippy::too_many_arguments)]
    pub async fn exchange(
        &mut self,
        connector: &Connector,
        method: &Method,
        target: &Target,
        headers: &HeaderMap,
        body: &Bytes,
        keep_headers: bool,
        mut sink: Option<&mut Vec<u8>>,
        times: &mut ConnectTimes,
    ) -> Result<Exchange, ErrorKind> {
        if let Some(b) = sink.as_deref_mut() {
            b.clear();
        }
        let keep = if keep_headers { Keep::ALL } else { Keep::NONE };
        let sink = sink.map(|b| b as &mut dyn BodySink);
        self.exchange_with(connector, method, target, headers, body, keep, sink, times)
            .await
    }

    /// [`Link::exchange`], keeping the headers `keep` names and handing the
    /// body to any sink (e.g. an event-stream parser) chunk by chunk.
    #[allow(clippy::too_many_arguments)]
    pub async fn exchange_with(
        &mut self,
        connector: &Connector,
        method: &Method,
        target: &Target,
        headers: &HeaderMap,
        body: &Bytes,
        keep: Keep,
        mut sink: Option<&mut (dyn BodySink + '_)>,
        times: &mut ConnectTimes,
    ) -> Result<Exchange, ErrorKind> {
        let mut reused = true;
        // After a request a connection refused: a new connection, not a shared one.
        let mut join = true;
        loop {
            let usable = match &mut self.open {
                Some(Open::H1 { origin, conn }) => *origin == target.origin && conn.is_reusable(),
                // A close or GOAWAY that came while it sat idle has been
                // read by the connection's task.
                Some(Open::H2(c)) => c.conn().origin == target.origin && !c.conn().ended(),
                None => false,
            };
            if !usable {
                self.forget();
                reused = false;
                if let Some(sh) = self.share
                    && join
                {
                    let slot = take_slot(sh, &target.origin);
                    reused = slot.conn.initialized();
                    // The connection's own counters, not this VU's: its
                    // bytes are counted after this VU leaves it. Until it
                    // is up, what it moved is this VU's, even when a
                    // timeout drops this future half way.
                    let io = Arc::new(IoCounters::default());
                    let mut guard = Absorb {
                        from: io.clone(),
                        into: self.io.clone(),
                        armed: true,
                    };
                    let opened = slot
                        .conn
                        .get_or_try_init(|| {
                            Box::pin(async {
                                let (stream, h2) = connector
                                    .connect_stream(&target.origin, &io, times)
                                    .await
                                    .map_err(NotShared::Failed)?;
                                if !h2 {
                                    return Err(NotShared::H1(stream));
                                }
                                connector
                                    .h2_handshake(&target.origin, stream)
                                    .await
                                    .map(|c| (c, io.clone()))
                                    .map_err(NotShared::Failed)
                            })
                        })
                        .await
                        .map(|_| ());
                    match opened {
                        Ok(()) => {
                            guard.armed = false;
                            self.open = Some(Open::H2(H2Use::of(slot)));
                        }
                        Err(not) => {
                            leave(&slot);
                            match not {
                                NotShared::Failed(e) => return Err(e),
                                NotShared::H1(stream) => {
                                    guard.armed = false;
                                    io.absorb(&self.io);
                                    self.io = io;
                                    self.open = Some(Open::H1 {
                                        origin: target.origin.clone(),
                                        conn: H1::new(stream),
                                    })
                                }
                            }
                        }
                    }
                }
            }
            if self.open.is_none() {
                // Boxed: the TLS handshake's state machine would otherwise make
                // every request's future (moved on each call) several KB.
                let (stream, h2) =
                    Box::pin(connector.connect_stream(&target.origin, &self.io, times)).await?;
                self.open = Some(if h2 {
                    let c = Box::pin(connector.h2_handshake(&target.origin, stream)).await?;
                    let slot = Slot {
                        conn: tokio::sync::OnceCell::new_with(Some((c, self.io.clone()))),
                        group: None,
                    };
                    Open::H2(H2Use::of(Rc::new(slot)))
                } else {
                    Open::H1 {
                        origin: target.origin.clone(),
                        conn: H1::new(stream),
                    }
                });
            }
            let result = match self.open.as_mut().expect("connected above") {
                Open::H1 { conn, .. } => {
                    self.out.clear();
                    let path = target.path.path_and_query().map_or("/", |p| p.as_str());
                    h1::write_request(
                        &mut self.out,
                        method,
                        path,
                        target.host.as_bytes(),
                        headers,
                        body,
                    );
                    let sent_at = Instant::now();
                    h1_exchange(conn, &self.out, method, keep, sink.as_deref_mut())
                        .await
                        .map(|(status, headers, headers_at)| Exchange {
                            status,
                            headers,
                            sent_at,
                            headers_at,
                        })
                }
                Open::H2(c) => {
                    let mut req = http::Request::new(());
                    *req.method_mut() = method.clone();
                    *req.headers_mut() = headers.clone();
                    *req.uri_mut() = target.full.clone();
                    h2_headers(&mut req, body);
                    let sent_at = Instant::now();
                    match h2_exchange(c, req, body, keep, sink.as_deref_mut()).await {
                        Ok((status, headers, headers_at)) => Ok(Exchange {
                            status,
                            headers,
                            sent_at,
                            headers_at,
                        }),
                        // The kept-alive connection had closed and the
                        // request was never sent: nothing reached the
                        // server, so it goes once, on a fresh connection.
                        Err(H2Error::Unsent(_)) if reused => {
                            c.conn().mark_ended();
                            join = false;
                            self.forget();
                            continue;
                        }
                        Err(H2Error::Unsent(e) | H2Error::Failed(e)) => Err(e),
                    }
                }
            };
            let closed = matches!(&self.open, Some(Open::H1 { conn, .. }) if conn.is_closed());
            if closed || result.is_err() {
                self.forget();
            }
            return result;
        }
    }
}

async fn h1_exchange(
    conn: &mut H1,
    request: &[u8],
    method: &Method,
    keep: Keep,
    sink: Option<&mut (dyn BodySink + '_)>,
) -> Result<(u16, HeaderMap, Instant), ErrorKind> {
    conn.send(request).await?;
    let head = conn.read_head(method, keep).await?;
    let headers_at = Instant::now();
    conn.read_body(&head, sink).await?;
    Ok((head.status, head.headers, headers_at))
}

enum H2Error {
    /// The request never left: the connection took no new stream.
    Unsent(ErrorKind),
    /// Sent (or maybe sent): its outcome.
    Failed(ErrorKind),
}

/// What hyper does to a request before h2 sees it: headers that only mean
/// something on an HTTP/1.1 connection go (h2 refuses them), and a body's
/// length is said.
fn h2_headers(req: &mut http::Request<()>, body: &Bytes) {
    use http::header::{CONTENT_LENGTH, TE};
    let has_payload = !matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::DELETE | Method::CONNECT
    );
    let h = req.headers_mut();
    // Rare: one pass over the names finds them.
    let hop = |n: &http::HeaderName| {
        matches!(
            n.as_str(),
            "connection" | "keep-alive" | "proxy-connection" | "transfer-encoding" | "upgrade"
        ) || (n == TE && h.get(TE).is_some_and(|v| v != "trailers"))
    };
    if h.keys().any(hop) {
        let names: Vec<_> = h.keys().filter(|n| hop(n)).cloned().collect();
        for n in names {
            h.remove(n);
        }
    }
    if (!body.is_empty() || has_payload) && !h.contains_key(CONTENT_LENGTH) {
        h.insert(CONTENT_LENGTH, http::HeaderValue::from(body.len()));
    }
}

async fn h2_exchange(
    c: &mut H2Use,
    req: http::Request<()>,
    body: &Bytes,
    keep: Keep,
    mut sink: Option<&mut (dyn BodySink + '_)>,
) -> Result<(u16, HeaderMap, Instant), H2Error> {
    let unsent = |e: h2::Error| H2Error::Unsent(ErrorKind::from_h2(&e));
    // Room for one more stream (the server's limit on concurrent streams),
    // or the connection is gone and the request never leaves.
    std::future::poll_fn(|cx| c.sender.poll_ready(cx))
        .await
        .map_err(unsent)?;
    let (mut response, mut send) = c
        .sender
        .send_request(req, body.is_empty())
        .map_err(unsent)?;
    let failed = |e: h2::Error| {
        H2Error::Failed(match ErrorKind::from_h2(&e) {
            ErrorKind::Closed => ErrorKind::ClosedMidResponse,
            kind => kind,
        })
    };
    if !body.is_empty() {
        // Queued whole; it leaves as the peer's flow-control window allows.
        send.send_data(body.clone(), true).map_err(failed)?;
    }
    let resp = (&mut response)
        .await
        .map_err(|e| H2Error::Failed(ErrorKind::from_h2(&e)))?;
    let headers_at = Instant::now();
    let status = resp.status().as_u16();
    let (mut parts, mut recv) = resp.into_parts();
    if !keep.all {
        let mut kept = HeaderMap::new();
        for (name, value) in &parts.headers {
            if keep.wants(name.as_str(), status) {
                kept.append(name.clone(), value.clone());
            }
        }
        parts.headers = kept;
    }
    while let Some(data) = std::future::poll_fn(|cx| recv.poll_data(cx)).await {
        let data = data.map_err(failed)?;
        let _ = recv.flow_control().release_capacity(data.len());
        if let Some(out) = sink.as_deref_mut() {
            out.data(&data);
        }
    }
    Ok((status, parts.headers, headers_at))
}
