//! volley's runtime: a loaded plan driven to its summary. Worker threads
//! (one current-thread runtime each) run lanes of VUs per scenario; each
//! worker's shard is flushed once a second to the aggregator, which keeps
//! totals, bounded history and the latest intervals for the observers (live
//! line, outputs, abort-on-fail thresholds, the capacity watch). Monitors
//! poll beside the VUs into the same pipeline.
//!
//! Depends on volley-config (the plan), volley-model and volley-protocols;
//! rendering the summary is volley-results', which this crate never imports.

pub mod aggregate;
pub mod capacity;
pub mod engine;
pub mod monitor;
pub mod output;
pub mod phase;
pub mod progress;
pub mod records;
pub mod run;
pub mod track;
