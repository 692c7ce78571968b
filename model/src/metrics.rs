//! Metrics volley records itself, beside the drivers' own.

use volley_protocols::metrics::{MetricKind, Registry, Unit};

/// Metrics the engine itself records, registered before the drivers' own.
pub fn register_engine(r: &Registry) {
    r.metric("iterations", MetricKind::Counter, Unit::Default);
    r.metric("iteration_duration", MetricKind::Trend, Unit::Time);
    r.metric("dropped_iterations", MetricKind::Counter, Unit::Default);
    r.metric("interrupted_iterations", MetricKind::Counter, Unit::Default);
    r.metric("vus", MetricKind::Gauge, Unit::Default);
    r.metric("vus_max", MetricKind::Gauge, Unit::Default);
}

/// Metrics whose values exist only once the run is over (capacity answers).
pub const POST_RUN_METRICS: &[&str] = &["recovery_time", "capacity_held", "capacity_broke"];

/// Gauges that count each part's own share, so parts add up.
pub const ADDITIVE_GAUGES: &[&str] = &["vus", "vus_max"];
