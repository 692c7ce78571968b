//! Monitors as a summary carries them: each gauge's last, lowest and
//! highest value and its slope. Polled by the runtime, shown by volley-results.

use serde::{Deserialize, Serialize};
use volley_protocols::metrics::Unit;

/// Gauges of a process monitor, and the counter of polls that got no value.
pub const RSS: &str = "target_rss";
pub const CPU: &str = "target_cpu";
pub const ERRORS: &str = "monitor_errors";

/// One monitor in the summary: each gauge's last, lowest and highest value
/// and its least-squares slope over the run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MonitorReport {
    pub name: String,
    pub source: String,
    pub gauges: Vec<GaugeReport>,
    /// Polls that got no value.
    #[serde(default)]
    pub errors: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GaugeReport {
    pub metric: String,
    pub unit: Unit,
    pub samples: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Units (bytes for memory) per hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slope_per_hour: Option<f64>,
}

/// A monitor gauge's value: CPU in percent, memory in bytes (1024-based).
pub fn gauge_text(metric: &str, unit: Unit, v: f64) -> String {
    match (metric, unit) {
        (CPU, _) => format!("{v:.1}%"),
        (_, Unit::Data) => crate::slope::format_bytes(v),
        _ => crate::units::value(Unit::Default, v),
    }
}

/// The short name the live line gives a monitor gauge.
pub fn short(metric: &str) -> &str {
    match metric {
        RSS => "rss",
        CPU => "cpu",
        m => m,
    }
}
