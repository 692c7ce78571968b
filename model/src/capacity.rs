//! Capacity answers as a summary carries them: breaking points, recoveries
//! after spikes, monitors. Found by the runtime's watch, shown by volley-results.

use crate::monitor::MonitorReport;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CapacitySummary {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub breaking_points: Vec<BreakingPoint>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recoveries: Vec<Recovery>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub monitors: Vec<MonitorReport>,
}

impl CapacitySummary {
    pub fn is_empty(&self) -> bool {
        self.breaking_points.is_empty() && self.recoveries.is_empty() && self.monitors.is_empty()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BreakingPoint {
    pub scenario: String,
    /// The signal with its filter, e.g. `http_req_failed{scenario:ramp}`.
    pub signal: String,
    pub expr: String,
    pub window_s: f64,
    /// What levels count: "VUs", "iterations/s".
    pub unit: String,
    pub broke: bool,
    /// The level in the second the signal first crossed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broke_at: Option<f64>,
    /// That second, from the start of the run, and as a UTC time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// The signal over the window that crossed (ms for time), and as shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<f64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub observed_text: String,
    /// The highest level before the break at which a second of load stayed
    /// within the signal's limit; without a break, the highest level reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<f64>,
    /// The highest level the scenario reached while watched.
    pub peak: f64,
    /// The run stopped here (`abort = true`).
    #[serde(default)]
    pub aborted: bool,
}

/// p95 latency and error rate over one window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowStats {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    pub samples: u64,
    pub seconds: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Recovery {
    pub scenario: String,
    /// 1-based, per scenario.
    pub spike: usize,
    /// First and last stage of the spike (1-based).
    pub stages: (usize, usize),
    /// The spike's start and end, from the start of the run.
    pub start_s: f64,
    pub end_s: f64,
    pub window_s: f64,
    pub tolerance: f64,
    pub latency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<String>,
    /// The window before the spike; `None`: no traffic then to compare with.
    pub baseline: Option<WindowStats>,
    pub recovered: bool,
    /// From the end of the spike to the start of the first window back
    /// within tolerance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_time_s: Option<f64>,
    /// How long after the spike it was watched (until recovery, the next
    /// spike, or the end of the scenario or run).
    pub watched_s: f64,
    /// The window that recovered, or the last one seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<WindowStats>,
}
