//! volley's engine: plans, executors, the metrics pipeline, thresholds and
//! summaries (the embedded demo target is the volley-serve crate). The
//! `volley` binary is a thin CLI over this library; integration tests use it
//! directly too.

pub mod aggregate;
pub mod capacity;
pub mod compare;
pub mod engine;
pub mod junit;
pub mod k8s;
pub mod merge;
pub mod monitor;
pub mod output;
pub mod progress;
pub mod report;
pub mod run;
pub mod summary;
pub mod track;
