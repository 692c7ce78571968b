//! volley's driver contract and protocol drivers.
//!
//! This crate knows nothing of executors, outputs or the CLI: the engine in
//! the `volley` crate schedules iterations, drivers do the protocol work and
//! record samples into the metrics shard they are handed.

mod connection;
pub mod data;
pub mod descriptor;
pub mod driver;
pub mod duration;
pub mod echo;
pub mod error;
pub mod http;
pub mod metrics;
pub mod pg;
pub mod procfs;
mod registry;
pub mod size;
pub mod span;
pub mod template;
pub mod webhook;
pub mod weights;
pub mod ws;

// The drivers of this build, one line each: the variant of `AnyDriver`
// and the type implementing `Driver` (docs/architecture.md, "Adding a
// driver").
registry::drivers! {
    Http(http::HttpDriver),
    Webhook(webhook::WebhookDriver),
    Postgres(pg::PgDriver),
    Ws(ws::WsDriver),
    Echo(echo::EchoDriver),
}

pub use driver::{BuildCtx, Defaults, Driver, Iteration, Stop, Vu, VuEnv, VuState};
pub use error::{ConfigError, ConfigErrorKind, PrepareError};
