//! Capacity answers for people: the terminal's CAPACITY and MONITORS sections.

mod text;

pub use text::{breaking_line, recovery_line, render_text};
