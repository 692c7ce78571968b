//! Pushing batches to a time-series database over HTTP, off the run's
//! threads. The observer hands a finished batch to a bounded queue and never
//! waits: when the queue is full (the database is slow or gone) the batch is
//! dropped and its points counted. One thread posts the batches in order,
//! each with a timeout; after the run it gets a bounded time to drain.
//! `https://` URLs go through rustls (the drivers' TLS stack, public roots
//! plus `ca=FILE`, or `insecure` for none).

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Batches waiting to be posted; past this, new ones are dropped.
const QUEUE: usize = 4;
/// How long the end of a run waits for queued batches to leave.
const DRAIN: Duration = Duration::from_secs(5);

/// Where to post: `host:port` and the path with its query.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub authority: String,
    pub path: String,
    pub headers: Vec<(&'static str, String)>,
    /// Set for `https://` URLs.
    pub tls: Option<Tls>,
}

/// TLS to the database: the name to verify, trusted CAs beside the public
/// roots (`ca=FILE`), or no verification at all (`insecure`).
#[derive(Clone, Debug, PartialEq)]
pub struct Tls {
    pub host: String,
    pub ca: Vec<rustls::pki_types::CertificateDer<'static>>,
    pub insecure: bool,
}

/// What a connection needs for TLS, made once before any load.
type Client = (
    std::sync::Arc<rustls::ClientConfig>,
    rustls::pki_types::ServerName<'static>,
);

fn client(spec: &str, tls: &Tls) -> Result<Client, String> {
    let files = volley_protocols::http::TlsFiles {
        client: None,
        roots: tls.ca.clone(),
    };
    let config = volley_protocols::http::Connector::with_tls(
        tls.insecure,
        volley_protocols::http::HttpVersion::Http1,
        &files,
    )
    .map_err(|e| format!("--out {spec}: {e}"))?
    .tls;
    let name = rustls::pki_types::ServerName::try_from(tls.host.clone()).map_err(|e| {
        format!(
            "--out {spec}: {:?} is not a TLS server name ({e})",
            tls.host
        )
    })?;
    Ok((config, name))
}

/// A request to make once before the first batch (e.g. `CREATE DATABASE`);
/// retried before each batch until it succeeds.
pub struct Setup {
    pub path: String,
    pub body: Vec<u8>,
    pub content_type: &'static str,
}

struct Batch {
    body: Vec<u8>,
    points: u64,
}

#[derive(Default)]
struct Stats {
    sent: AtomicU64,
    dropped: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// Milliseconds since `origin` after which queued batches are dropped
    /// unsent (0: no deadline yet).
    deadline_ms: AtomicU64,
}

pub struct Pusher {
    /// `influxdb=URL` as given, for messages.
    pub spec: String,
    tx: Option<SyncSender<Batch>>,
    stats: Arc<Stats>,
    origin: Instant,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Pusher {
    pub fn start(
        spec: String,
        target: Target,
        setup: Option<Setup>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let tls = target.tls.as_ref().map(|t| client(&spec, t)).transpose()?;
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let stats = Arc::new(Stats::default());
        let origin = Instant::now();
        let worker = Worker {
            target,
            tls,
            setup,
            timeout,
            stats: stats.clone(),
            origin,
        };
        let thread = std::thread::Builder::new()
            .name("volley-push".into())
            .spawn(move || worker.run(rx))
            .map_err(|e| format!("--out {spec}: cannot start a thread: {e}"))?;
        Ok(Self {
            spec,
            tx: Some(tx),
            stats,
            origin,
            thread: Some(thread),
        })
    }

    /// Queue a batch without waiting; a full queue drops it (counted).
    pub fn send(&self, body: Vec<u8>, points: u64) {
        if points == 0 {
            return;
        }
        let Some(tx) = &self.tx else { return };
        match tx.try_send(Batch { body, points }) {
            Ok(()) => {}
            Err(TrySendError::Full(b)) | Err(TrySendError::Disconnected(b)) => {
                self.stats.dropped.fetch_add(b.points, Ordering::Relaxed);
            }
        }
    }

    pub fn sent(&self) -> u64 {
        self.stats.sent.load(Ordering::Relaxed)
    }

    pub fn dropped(&self) -> u64 {
        self.stats.dropped.load(Ordering::Relaxed)
    }

    /// Wait (at most [`DRAIN`]) for the queued batches to leave; then a
    /// warning naming what was dropped and why, if anything was.
    pub fn finish(mut self) -> Option<String> {
        let deadline = self.origin.elapsed() + DRAIN;
        self.stats
            .deadline_ms
            .store(deadline.as_millis().max(1) as u64, Ordering::Relaxed);
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let dropped = self.dropped();
        (dropped > 0).then(|| {
            let why = self
                .stats
                .last_error
                .lock()
                .expect("error lock")
                .clone()
                .unwrap_or_else(|| "the queue was full".into());
            format!(
                "--out {}: {dropped} of {} points dropped (last error: {why})",
                self.spec,
                dropped + self.sent()
            )
        })
    }
}

struct Worker {
    target: Target,
    tls: Option<Client>,
    setup: Option<Setup>,
    timeout: Duration,
    stats: Arc<Stats>,
    origin: Instant,
}

impl Worker {
    fn run(mut self, rx: Receiver<Batch>) {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                self.fail(format!("cannot start a runtime: {e}"));
                for b in rx.iter() {
                    self.stats.dropped.fetch_add(b.points, Ordering::Relaxed);
                }
                return;
            }
        };
        for batch in rx.iter() {
            let Some(timeout) = self.time_left() else {
                self.stats
                    .dropped
                    .fetch_add(batch.points, Ordering::Relaxed);
                continue;
            };
            let result = rt.block_on(async {
                tokio::time::timeout(timeout, self.deliver(&batch.body))
                    .await
                    .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
            });
            match result {
                Ok(()) => {
                    self.stats.sent.fetch_add(batch.points, Ordering::Relaxed);
                }
                Err(e) => {
                    self.stats
                        .dropped
                        .fetch_add(batch.points, Ordering::Relaxed);
                    self.fail(e);
                }
            }
        }
    }

    /// The timeout for the next request, or None once past the drain deadline.
    fn time_left(&self) -> Option<Duration> {
        let deadline = self.stats.deadline_ms.load(Ordering::Relaxed);
        if deadline == 0 {
            return Some(self.timeout);
        }
        let left = Duration::from_millis(deadline).checked_sub(self.origin.elapsed())?;
        (!left.is_zero()).then(|| left.min(self.timeout))
    }

    fn fail(&self, e: String) {
        let mut last = self.stats.last_error.lock().expect("error lock");
        if last.is_none() {
            tracing::warn!("{e}");
        }
        *last = Some(e);
    }

    async fn deliver(&mut self, body: &[u8]) -> Result<(), String> {
        // Tried once: a user who may not create databases (403) writes into
        // one that exists, as k6 does; the error is said, the batch still goes.
        if let Some(s) = self.setup.take()
            && let Err(e) = post(
                &self.target,
                self.tls.as_ref(),
                &s.path,
                s.content_type,
                &[],
                s.body,
            )
            .await
        {
            self.fail(format!("creating the database: {e}"));
        }
        post(
            &self.target,
            self.tls.as_ref(),
            &self.target.path,
            "",
            &self.target.headers,
            body.to_vec(),
        )
        .await
    }
}

/// One POST on a fresh connection (one a second at most: no pool needed).
async fn post(
    target: &Target,
    tls: Option<&Client>,
    path: &str,
    content_type: &str,
    headers: &[(&'static str, String)],
    body: Vec<u8>,
) -> Result<(), String> {
    let stream = tokio::net::TcpStream::connect(&target.authority)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", target.authority))?;
    match tls {
        None => exchange(stream, target, path, content_type, headers, body).await,
        Some((config, name)) => {
            let stream = tokio_rustls::TlsConnector::from(config.clone())
                .connect(name.clone(), stream)
                .await
                .map_err(|e| format!("TLS with {}: {e}", target.authority))?;
            exchange(stream, target, path, content_type, headers, body).await
        }
    }
}

async fn exchange<S>(
    stream: S,
    target: &Target,
    path: &str,
    content_type: &str,
    headers: &[(&'static str, String)],
    body: Vec<u8>,
) -> Result<(), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut send, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("{}: {e}", target.authority))?;
    let conn = tokio::spawn(conn);
    let mut req = hyper::Request::post(path)
        .header("host", &target.authority)
        .header("user-agent", "volley");
    if !content_type.is_empty() {
        req = req.header("content-type", content_type);
    }
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let req = req
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let resp = send
        .send_request(req)
        .await
        .map_err(|e| format!("{}{path}: {e}", target.authority))?;
    let status = resp.status();
    let text = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    conn.abort();
    if status.is_success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&text);
    let text: String = text.trim().chars().take(300).collect();
    let scheme = if target.tls.is_some() {
        "https"
    } else {
        "http"
    };
    Err(format!(
        "{scheme}://{}{path} answered {status}: {text}",
        target.authority
    ))
}

/// The URL of a push output: `http://` or `https://` with a host; the URL
/// and the `host:port` to connect to (`default_port` when none is written).
pub fn parse_url(
    spec: &str,
    url_text: &str,
    example: &str,
    default_port: u16,
) -> Result<(url::Url, String), String> {
    let url = url::Url::parse(url_text).map_err(|e| {
        format!("--out {spec:?}: {url_text:?} is not a URL ({e}); write e.g. {example}")
    })?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!(
            "--out {spec:?}: the URL must be http:// or https:// (got {}://), e.g. {example}",
            url.scheme()
        ));
    }
    let host = url
        .host_str()
        .ok_or_else(|| format!("--out {spec:?}: the URL has no host; write e.g. {example}"))?;
    let authority = format!(
        "{host}:{}",
        explicit_port(&url, url_text).unwrap_or(default_port)
    );
    Ok((url, authority))
}

/// The options after a push output's URL, as parsed.
pub struct PushOptions {
    pub tags: Vec<(String, String)>,
    pub timeout: Duration,
    /// For an `https://` URL (refused with `http://`).
    pub tls: Option<Tls>,
}

/// `push=DURATION`, `timeout=DURATION` (5 s unless set), `tag=KEY:VALUE`
/// (its key through `tag_key`), and for `https://` `ca=FILE` and
/// `insecure`; `push` keeps its default unless set.
pub fn parse_options<'a>(
    spec: &str,
    url: &url::Url,
    parts: impl Iterator<Item = &'a str>,
    push: &mut Duration,
    tag_key: impl Fn(&str) -> String,
) -> Result<PushOptions, String> {
    let mut o = PushOptions {
        tags: vec![],
        timeout: Duration::from_secs(5),
        tls: None,
    };
    let mut tls = Tls {
        host: url
            .host_str()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        ca: vec![],
        insecure: false,
    };
    let mut tls_option = None;
    let dur = |v: &str, what: &str| {
        volley_protocols::duration::parse_duration(v)
            .map_err(|e| format!("--out {spec:?}: {what}: {e}"))
            .and_then(|d| {
                if d.is_zero() || d > Duration::from_secs(3600) {
                    Err(format!(
                        "--out {spec:?}: {what}={v} must be more than 0 and at most 1h"
                    ))
                } else {
                    Ok(d)
                }
            })
    };
    for opt in parts {
        match opt.split_once('=') {
            Some(("push", v)) => *push = dur(v, "push")?,
            Some(("timeout", v)) => o.timeout = dur(v, "timeout")?,
            Some(("ca", v)) => {
                tls.ca.extend(read_ca(spec, v)?);
                tls_option = Some("ca=");
            }
            None if opt == "insecure" => {
                tls.insecure = true;
                tls_option = Some("insecure");
            }
            Some(("insecure", v)) => {
                tls.insecure = match v {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(format!(
                            "--out {spec:?}: insecure={v}: write insecure (or insecure=true / insecure=false)"
                        ));
                    }
                };
                tls_option = Some("insecure");
            }
            Some(("tag", v)) => match v.split_once(':') {
                Some((k, val)) if !k.is_empty() && !val.is_empty() => {
                    o.tags.push((tag_key(k), val.to_string()))
                }
                _ => {
                    return Err(format!(
                        "--out {spec:?}: tag={v}: write tag=KEY:VALUE (e.g. tag=testid:nightly)"
                    ));
                }
            },
            _ => {
                return Err(format!(
                    "--out {spec:?}: unknown option {opt:?}; the options are push=DURATION, timeout=DURATION, tag=KEY:VALUE, and for https:// ca=FILE and insecure"
                ));
            }
        }
    }
    if url.scheme() == "https" {
        o.tls = Some(tls);
    } else if let Some(what) = tls_option {
        return Err(format!(
            "--out {spec:?}: {what} is for https:// URLs; write the URL with https://"
        ));
    }
    Ok(o)
}

/// `ca=FILE`: PEM certificates to trust beside the public roots.
fn read_ca(
    spec: &str,
    path: &str,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path)
        .map_err(|e| format!("--out {spec:?}: ca={path}: cannot read the file: {e}"))?;
    volley_protocols::http::pem_certificates(&bytes)
        .map_err(|why| format!("--out {spec:?}: ca={path}: {why}"))
}

/// The URL as messages show it: a password in it is not printed.
pub(crate) fn shown(url: &url::Url) -> String {
    let mut u = url.clone();
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    }
    u.to_string()
}

/// The port as written in `text`: `Url::port` is None for one equal to the
/// scheme's default (`http://db:80/x`), which is still what the user asked.
pub(crate) fn explicit_port(url: &url::Url, text: &str) -> Option<u16> {
    url.port().or_else(|| {
        let after = text.split_once("://").map_or(text, |(_, r)| r);
        let authority = after.split(['/', '?', '#']).next().unwrap_or("");
        let hostport = authority.rsplit('@').next().unwrap_or("");
        let port = match hostport.rsplit_once(']') {
            Some((_, rest)) => rest.strip_prefix(':')?,
            None => hostport.rsplit_once(':')?.1,
        };
        port.parse().ok()
    })
}
