//! The run's summary in the terminal.

mod text;

pub use text::{BREAKDOWNS, render_text, threshold_observed};
