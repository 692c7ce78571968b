//! volley's driver contract and protocol drivers.
//!
//! This crate knows nothing of executors, outputs or the CLI: the engine in
//! the `volley` crate schedules iterations, drivers do the protocol work and
//! record samples into the metrics shard they are handed.

pub mod data;
pub mod driver;
pub mod duration;
pub mod error;
pub mod http;
pub mod metrics;
pub mod pg;
pub mod procfs;
pub mod size;
pub mod span;
pub mod template;
pub mod webhook;
pub mod weights;
pub mod ws;

pub use driver::{BuildCtx, Defaults, Driver, Iteration, Stop, Vu, VuEnv, VuState};
pub use error::{ConfigError, ConfigErrorKind, PrepareError};
