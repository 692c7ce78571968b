//! One GET at a time outside any scenario (a monitor polling a metrics
//! endpoint), over the same kept-alive connection code the drivers use.

use super::HttpVersion;
use super::conn::{BadUrl, ConnectTimes, Connector, ErrorKind, Target};
use super::link::Link;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use std::time::Duration;

/// Largest body kept; a metrics page is far smaller.
const MAX_BODY: usize = 16 << 20;

/// Why a GET gave no status and body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The connection or the exchange failed (refused, reset, TLS...).
    #[error("{}", .0.tag())]
    Failed(ErrorKind),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the body is larger than {MAX_BODY} bytes")]
    TooLarge,
}

pub struct Fetcher {
    connector: Connector,
    target: Target,
    headers: HeaderMap,
    link: Link,
}

impl Fetcher {
    /// A fetcher for `url`; the error says what is wrong with the URL.
    pub fn new(url: &str) -> Result<Self, BadUrl> {
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
    pub async fn get(&mut self, timeout: Duration) -> Result<(u16, Vec<u8>), FetchError> {
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
            Ok(Err(e)) => return Err(FetchError::Failed(e)),
            Err(_) => {
                self.link.close();
                return Err(FetchError::Timeout(timeout));
            }
        };
        if body.len() > MAX_BODY {
            return Err(FetchError::TooLarge);
        }
        Ok((status, body))
    }
}
