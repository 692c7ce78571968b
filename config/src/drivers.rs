//! The drivers this build knows: registered in volley-protocols (one line
//! each in its `lib.rs`), re-exported here for the plan loader.

pub use volley_protocols::drivers::{AnyDriver, NAMES as DRIVERS, build, vu_bytes};
