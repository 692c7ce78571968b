//! One GET at a time outside any scenario (a monitor polling a metrics
//! endpoint): the driver's connector (TLS by rustls, HTTP/1.1 or HTTP/2) and
//! one kept-alive connection, reopened when the server closes it.

use super::HttpVersion;
use super::conn::{Body, Conn, ConnectTimes, Connector, IoCounters, Sender, Target};
use http::{HeaderValue, Method, Request, Uri};
use http_body_util::BodyExt;
use std::rc::Rc;
use std::time::Duration;

/// Largest body read; a metrics page is far smaller.
const MAX_BODY: usize = 16 << 20;

pub struct Fetcher {
    connector: Connector,
    target: Target,
    conn: Option<Conn>,
    io: Rc<IoCounters>,
}

impl Fetcher {
    pub fn new(url: &str) -> Result<Self, String> {
        let full = Uri::try_from(url).map_err(|e| format!("{url:?} is not a valid URL: {e}"))?;
        let target = Target::parse(full)
            .map_err(|_| format!("{url:?} must be an absolute http:// or https:// URL"))?;
        Ok(Self {
            connector: Connector::new(false, HttpVersion::Auto),
            target,
            conn: None,
            io: Rc::default(),
        })
    }

    /// GET the URL: the status and the body. Runs on a `LocalSet` (the
    /// connection's task is spawned locally).
    pub async fn get(&mut self, timeout: Duration) -> Result<(u16, Vec<u8>), String> {
        match tokio::time::timeout(timeout, self.exchange()).await {
            Ok(r) => r,
            Err(_) => {
                self.conn = None;
                Err(format!("no answer within {timeout:?}"))
            }
        }
    }

    async fn exchange(&mut self) -> Result<(u16, Vec<u8>), String> {
        let mut reused = true;
        loop {
            if !matches!(&self.conn, Some(c) if !c.sender.is_closed()) {
                reused = false;
                let mut times = ConnectTimes::default();
                let c = self
                    .connector
                    .connect(&self.target.origin, &self.io, &mut times)
                    .await
                    .map_err(|e| e.tag().to_string())?;
                self.conn = Some(c);
            }
            let c = self.conn.as_mut().expect("connected above");
            let mut req = Request::new(Body::default());
            *req.method_mut() = Method::GET;
            if c.sender.is_h2() {
                *req.uri_mut() = self.target.full.clone();
            } else {
                *req.uri_mut() = self.target.path.clone();
                req.headers_mut()
                    .insert(http::header::HOST, self.target.host.clone());
            }
            req.headers_mut().insert(
                http::header::USER_AGENT,
                HeaderValue::from_static("volley-monitor"),
            );
            let ready = match &mut c.sender {
                Sender::H1(s) => s.ready().await,
                Sender::H2(s) => s.ready().await,
            };
            if ready.is_err() {
                self.conn = None;
                if reused {
                    continue;
                }
                return Err("connection closed".into());
            }
            let sent = match &mut c.sender {
                Sender::H1(s) => s.try_send_request(req).await,
                Sender::H2(s) => s.try_send_request(req).await,
            };
            let resp = match sent {
                Ok(r) => r,
                Err(e) => {
                    self.conn = None;
                    if reused {
                        continue;
                    }
                    return Err(super::ErrorKind::from_hyper(e.error()).tag().to_string());
                }
            };
            let status = resp.status().as_u16();
            let mut body = Vec::new();
            let mut b = resp.into_body();
            while let Some(frame) = b.frame().await {
                let f = frame.map_err(|e| {
                    self.conn = None;
                    super::ErrorKind::from_hyper(&e).tag().to_string()
                })?;
                if let Some(d) = f.data_ref() {
                    if body.len() + d.len() > MAX_BODY {
                        self.conn = None;
                        return Err(format!("the body is larger than {MAX_BODY} bytes"));
                    }
                    body.extend_from_slice(d);
                }
            }
            return Ok((status, body));
        }
    }
}
