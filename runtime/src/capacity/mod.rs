//! Capacity answers at run time: breaking points and recoveries are watched
//! live, as an engine observer over sliding windows of the run's exact
//! totals (histograms subtract), so `abort = true` can stop the run at the
//! breaking point with the answer kept. After the run they become summary
//! fields and metrics (`capacity_held`, `capacity_broke`, `recovery_time`)
//! that thresholds judge. The questions are read by volley-config.

mod watch;
pub mod window;

pub use watch::Watch;

/// Below these, a difference from the baseline is noise, not degradation:
/// p95 within 1 ms, error rate within 0.1 percentage points.
const P95_SLACK_MS: f64 = 1.0;
const ERROR_SLACK: f64 = 0.001;
