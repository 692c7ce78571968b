//! volley's results: what a summary becomes for people and tools. The
//! terminal summary (k6-shaped, with capacity and monitor sections), the
//! merge of a distributed run's parts, compare of two runs, the HTML report
//! and JUnit XML. Every function here takes a `volley_model::summary::Summary`
//! (or its series) and nothing of a live run, so `volley run`, `volley
//! report`, `compare` and `merge` render the same from a file.
//!
//! Depends on volley-model and volley-protocols only (volley-runtime only to
//! build test fixtures).

pub mod capacity;
pub mod compare;
pub mod junit;
pub mod merge;
pub mod report;
pub mod text;
