//! One GET at a time outside any scenario (a monitor polling a metrics
//! endpoint), over the same kept-alive connection code the drivers use.

use super::HttpVersion;
use super::conn::{ConnectTimes, Connector, Target};
use super::link::Link;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use std::time::Duration;

/// Largest body kept; a metrics page is far smaller.
const MAX_BODY: usize = 16 << 20;

pub struct Fetcher {
    connector: Connector,
    target: Target,
    headers: HeaderMap,
    link: Link,
}

impl Fetcher {
    pub fn new(url: &str) -> Result<Self, String> {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::USER_AGENT,
            HeaderValue::from_static("volley-monitor"),
        );
        Ok(Self {
            connector: Connector::new(false, HttpVersion::Auto),
            target: Target::from_url(url)?,
            headers,
            link: Link::default(),
        })
    }

    /// GET the URL: the status and the body.
    pub async fn get(&mut self, timeout: Duration) -> Result<(u16, Vec<u8>), String> {
        let mut body = Vec::new();
        let mut times = ConnectTimes::default();
        let empty = Bytes::new();
        let exchange = self.link.exchange(
            &self.connector,
            &Method::GET,
            &self.target,
            &self.headers,
            &empty,
            false,
            Some(&mut body),
            &mut times,
        );
        let status = match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(x)) => x.status,
            Ok(Err(e)) => return Err(e.tag().to_string()),
            Err(_) => {
                self.link.close();
                return Err(format!("no answer within {timeout:?}"));
            }
        };
        if body.len() > MAX_BODY {
            return Err(format!("the body is larger than {MAX_BODY} bytes"));
        }
        Ok((status, body))
    }
}
