//! The connection keys `[defaults]`, HTTP and webhook scenarios share
//! (`base_url`, `headers`, `timeout`, TLS and `http_version`), declared
//! once. serde's `flatten` cannot go with `deny_unknown_fields` (which names
//! a mistyped key), so [`with_connection_keys!`] writes them into each
//! options struct where `..connection` stands, keeping the order of keys
//! serde lists in an "unknown key" error.

use crate::duration::Dur;
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// `http_version` of `[defaults]` and of HTTP and webhook scenarios.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum HttpVersion {
    /// HTTP/2 when the server offers it over TLS (ALPN), else HTTP/1.1.
    #[default]
    #[serde(rename = "auto")]
    Auto,
    #[serde(rename = "1.1")]
    Http1,
    /// HTTP/2 only; on http:// URLs by prior knowledge (h2c).
    #[serde(rename = "2")]
    Http2,
}

/// The connection keys of a scenario, as it wrote them.
#[derive(Clone, Copy)]
pub(crate) struct ConnKeys<'a> {
    pub base_url: Option<&'a Spanned<String>>,
    pub headers: &'a BTreeMap<Spanned<String>, Spanned<String>>,
    pub timeout: Option<Dur>,
    pub http_version: Option<HttpVersion>,
    pub insecure_skip_tls_verify: Option<bool>,
    pub client_cert: Option<&'a Spanned<String>>,
    pub client_key: Option<&'a Spanned<String>>,
    pub ca_file: Option<&'a Spanned<String>>,
}

/// Declares an options struct with the connection keys where `..connection`
/// stands. `struct Name<headers = K>` keys `headers` by `K` (`[defaults]`
/// keys them by plain strings); without it they are spanned, and the struct
/// gets `connection()`, its keys as [`ConnKeys`].
macro_rules! with_connection_keys {
    (
        $(#[$meta:meta])*
        pub struct $name:ident<headers = $hk:ty> {
            $( $(#[$fm:meta])* pub $f:ident : $ft:ty, )*
            ..connection,
            $( $(#[$am:meta])* pub $a:ident : $at:ty, )*
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $( $(#[$fm])* pub $f: $ft, )*
            pub base_url: Option<toml::Spanned<String>>,
            #[serde(default)]
            pub headers: std::collections::BTreeMap<$hk, toml::Spanned<String>>,
            pub timeout: Option<$crate::duration::Dur>,
            pub insecure_skip_tls_verify: Option<bool>,
            pub http_version: Option<$crate::connection::HttpVersion>,
            /// PEM client certificate and its key, for servers that ask for
            /// one (mTLS).
            pub client_cert: Option<toml::Spanned<String>>,
            pub client_key: Option<toml::Spanned<String>>,
            /// PEM certificates of private CAs to trust beside the public roots.
            pub ca_file: Option<toml::Spanned<String>>,
            $( $(#[$am])* pub $a: $at, )*
        }
    };
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($body:tt)*
        }
    ) => {
        $crate::connection::with_connection_keys! {
            $(#[$meta])*
            pub struct $name<headers = toml::Spanned<String>> {
                $($body)*
            }
        }

        impl $name {
            /// The connection keys as the scenario wrote them.
            pub(crate) fn connection(&self) -> $crate::connection::ConnKeys<'_> {
                $crate::connection::ConnKeys {
                    base_url: self.base_url.as_ref(),
                    headers: &self.headers,
                    timeout: self.timeout,
                    http_version: self.http_version,
                    insecure_skip_tls_verify: self.insecure_skip_tls_verify,
                    client_cert: self.client_cert.as_ref(),
                    client_key: self.client_key.as_ref(),
                    ca_file: self.ca_file.as_ref(),
                }
            }
        }
    };
}
pub(crate) use with_connection_keys;
