//! What `volley validate` says about a plan, beside its scenarios.

use crate::plan::{Plan, Scenario};
use std::fmt::Write as _;
use volley_protocols::duration::format_duration;

/// What `volley validate` says about breaking points, spikes and monitors.
pub fn capacity(plan: &Plan) -> String {
    let mut out = String::new();
    let with: Vec<&Scenario> = plan
        .scenarios
        .iter()
        .filter(|s| !s.capacity.is_empty())
        .collect();
    if !with.is_empty() {
        let _ = writeln!(out, "capacity:");
    }
    for sc in with {
        for b in &sc.capacity.breaking {
            let _ = writeln!(
                out,
                "  {}: breaks when {}{} {} over {}{}",
                sc.name,
                b.metric,
                b.filter,
                b.expr,
                format_duration(b.window),
                if b.abort {
                    " (stops the run there)"
                } else {
                    ""
                }
            );
        }
        let Some(r) = &sc.capacity.recovery else {
            continue;
        };
        for (i, s) in sc.capacity.spikes.iter().enumerate() {
            let at = sc.start_time;
            let _ = writeln!(
                out,
                "  {}: spike {} = stages {}-{} ({} to {}); recovered when p95 of {}{} is within {:.0}% of the {} before it",
                sc.name,
                i + 1,
                s.stages.0,
                s.stages.1,
                format_duration(at + s.start),
                format_duration(at + s.end),
                r.latency,
                r.errors
                    .as_ref()
                    .map(|e| format!(" and the {e} rate"))
                    .unwrap_or_default(),
                r.tolerance * 100.0,
                format_duration(r.window)
            );
        }
    }
    if !plan.monitors.is_empty() {
        let _ = writeln!(out, "monitors (polled every second):");
        for m in plan.monitors.iter() {
            let _ = writeln!(
                out,
                "  {}: {} -> {}",
                m.name,
                m.describe(),
                m.gauges()
                    .iter()
                    .map(|g| format!("{g}{{monitor:{}}}", m.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    out
}
