//! The drivers this build knows, behind one enum so the engine can be
//! generic over each (no boxing on the hot path).

use serde::Deserialize;
use std::sync::Arc;
use toml::Spanned;
use toml::de::{DeValue, ValueDeserializer};
use volley_protocols::http::{HttpDriver, HttpOptions};
use volley_protocols::pg::{PgDriver, PgOptions};
use volley_protocols::webhook::{WebhookDriver, WebhookOptions};
use volley_protocols::ws::{WsDriver, WsOptions};
use volley_protocols::{BuildCtx, ConfigError, Driver};

pub const DRIVERS: &[&str] = &["http", "webhook", "websocket", "postgres"];

pub enum AnyDriver {
    Http(Arc<HttpDriver>),
    Webhook(Arc<WebhookDriver>),
    Ws(Arc<WsDriver>),
    Postgres(Arc<PgDriver>),
}

/// Run `$body` with `$d` bound to the concrete `Arc<Driver>`.
#[macro_export]
macro_rules! with_driver {
    ($any:expr, $d:ident => $body:expr) => {
        match $any {
            $crate::drivers::AnyDriver::Http($d) => $body,
            $crate::drivers::AnyDriver::Webhook($d) => $body,
            $crate::drivers::AnyDriver::Ws($d) => $body,
            $crate::drivers::AnyDriver::Postgres($d) => $body,
        }
    };
}

/// Memory one VU of a driver takes at least (measured: README, "How fast,
/// measured"), so that plans needing more than the machine has are refused.
pub fn vu_bytes(driver: &str) -> u64 {
    match driver {
        // ~10 KB measured per HTTP VU with its connection; webhook VUs are HTTP's.
        "http" | "webhook" => 8_000,
        // ~11-14 KB per held chat session.
        "websocket" => 10_000,
        _ => 8_000,
    }
}

pub fn build(
    name: &Spanned<String>,
    options: Spanned<DeValue<'_>>,
    ctx: &BuildCtx<'_>,
) -> Result<AnyDriver, ConfigError> {
    match name.get_ref().as_str() {
        "http" => {
            let o = HttpOptions::deserialize(ValueDeserializer::from(options))?;
            Ok(AnyDriver::Http(Arc::new(HttpDriver::build(o, ctx)?)))
        }
        "webhook" => {
            // Errors about a missing option point at the scenario's name.
            let at = name.span();
            let o = WebhookOptions::deserialize(ValueDeserializer::from(options))?;
            let d = WebhookDriver::build(o, ctx).map_err(|e| e.or_at(at))?;
            Ok(AnyDriver::Webhook(Arc::new(d)))
        }
        "websocket" => {
            let o = WsOptions::deserialize(ValueDeserializer::from(options))?;
            Ok(AnyDriver::Ws(Arc::new(WsDriver::build(o, ctx)?)))
        }
        "postgres" => {
            let o = PgOptions::deserialize(ValueDeserializer::from(options))?;
            Ok(AnyDriver::Postgres(Arc::new(PgDriver::build(o, ctx)?)))
        }
        other => Err(ConfigError::at(
            name.span(),
            format!(
                "unknown driver {other:?}; this build has {}",
                DRIVERS.join(", ")
            ),
        )),
    }
}

impl AnyDriver {
    pub fn used_feeders(&self) -> &[usize] {
        with_driver!(self, d => d.used_feeders())
    }

    pub async fn prepare(&self) -> Result<(), volley_protocols::PrepareError> {
        with_driver!(self, d => d.prepare().await)
    }
}
