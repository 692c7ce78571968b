//! volley's engine: plans, executors, the metrics pipeline, thresholds and
//! summaries (the embedded demo target is the volley-serve crate). The
//! `volley` binary is a thin CLI over this library; integration tests use it
//! directly too.

pub mod capacity;
pub mod compare;
pub mod junit;
pub mod k8s;
pub mod merge;
pub mod report;
pub mod summary;
