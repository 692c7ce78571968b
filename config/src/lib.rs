//! volley's plan loader: a plan file read into what a run needs, or refused
//! with file:line:col before any traffic is sent. `${ENV}` substitution,
//! the executors' keys, `[data]` feeders, `[metrics]`, `[monitors]`,
//! capacity questions (`breaking_point`, spikes, `recovery`), `[thresholds]`
//! checked against the metrics the plan records, and the drivers built
//! through volley-protocols.
//!
//! Depends on volley-model and volley-protocols only: it knows nothing of
//! how a run is driven (volley-runtime) or shown (volley-results).

pub mod capacity;
pub mod describe;
pub mod drivers;
pub mod env;
pub mod executor;
pub mod machine;
pub mod monitor;
pub mod plan;
pub mod schema;

/// `with_driver!(any, d => body)`, made with the list of drivers in
/// volley-protocols.
pub use volley_protocols::with_driver;
