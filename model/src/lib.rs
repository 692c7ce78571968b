//! volley's model: what a run is made of and what it leaves, as plain data
//! and pure functions. Schedules and their maths, segments, thresholds and
//! their judge, units for people, and the run summary (with merge, capacity
//! and monitor results), derived from a run's series.
//!
//! Nothing here runs a load, reads a plan or renders a report: config,
//! runtime and results build on this crate; it depends on volley-protocols
//! alone (metric types, durations).

pub mod capacity;
pub mod derive;
pub mod history;
pub mod judge;
pub mod metrics;
pub mod monitor;
pub mod point;
pub mod schedule;
pub mod segment;
pub mod slope;
pub mod stats;
pub mod summary;
pub mod threshold;
pub mod trend_stats;
pub mod units;
