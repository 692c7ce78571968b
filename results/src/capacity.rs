//! Capacity answers for people: the terminal's CAPACITY and MONITORS
//! sections, and the lines the report reuses.

use std::fmt::Write as _;
use volley_model::capacity::{BreakingPoint, Recovery, WindowStats};
use volley_model::monitor::{MonitorReport, gauge_text};
use volley_model::summary::Summary;
use volley_model::units::{level_text, secs_text};
use volley_protocols::metrics::Unit;

fn clock(rfc3339: &str) -> &str {
    rfc3339.get(11..19).unwrap_or(rfc3339)
}

fn window_text(w: &WindowStats) -> String {
    let mut parts = Vec::new();
    if let Some(p) = w.p95_ms {
        parts.push(format!("p95 {}", volley_model::units::ms(p)));
    }
    if let Some(e) = w.error_rate {
        parts.push(format!("errors {:.2}%", e * 100.0));
    }
    if parts.is_empty() {
        parts.push("no traffic".into());
    }
    parts.join(", ")
}

/// One line per breaking point, recovery and monitor, for the terminal.
pub fn render_text(s: &Summary) -> String {
    let cap = &s.capacity;
    let mut out = String::new();
    if !cap.breaking_points.is_empty() || !cap.recoveries.is_empty() {
        let _ = writeln!(out, "\n  █ CAPACITY\n");
        for b in &cap.breaking_points {
            let _ = writeln!(out, "    {} · {}", b.scenario, breaking_line(b));
        }
        for r in &cap.recoveries {
            let _ = writeln!(out, "    {} · {}", r.scenario, recovery_line(r));
        }
    }
    out.push_str(&render_monitors(&cap.monitors));
    out
}

pub fn breaking_line(b: &BreakingPoint) -> String {
    let signal = format!("{} {} over {}", b.signal, b.expr, secs_text(b.window_s));
    match (b.broke, b.broke_at) {
        (true, Some(level)) => {
            let held = match b.held {
                Some(h) => format!("held {} {}", level_text(h), b.unit),
                None => "held no level".to_string(),
            };
            let when = match (&b.at, b.at_s) {
                (Some(at), Some(s)) => format!(", {} UTC (+{})", clock(at), secs_text(s)),
                _ => String::new(),
            };
            format!(
                "{held}, broke at {} {}{when}: {} ({signal}){}",
                level_text(level),
                b.unit,
                b.observed_text,
                if b.aborted {
                    "; the run stopped there"
                } else {
                    ""
                }
            )
        }
        _ => format!(
            "did not break: held {} {} (the highest level reached); {signal} never crossed",
            level_text(b.held.unwrap_or(b.peak)),
            b.unit
        ),
    }
}

pub fn recovery_line(r: &Recovery) -> String {
    let stages = if r.stages.0 == r.stages.1 {
        format!("stage {}", r.stages.0)
    } else {
        format!("stages {}-{}", r.stages.0, r.stages.1)
    };
    let head = format!(
        "spike {} ({stages}, ended +{})",
        r.spike,
        secs_text(r.end_s)
    );
    let before = match &r.baseline {
        Some(b) => format!("before the spike {}", window_text(b)),
        None => "no traffic before the spike to compare with".into(),
    };
    let judged = format!(
        "within {:.0}% over {}",
        r.tolerance * 100.0,
        secs_text(r.window_s)
    );
    match (r.recovered, r.recovery_time_s) {
        (true, Some(t)) => format!(
            "{head}: recovered in {} ({}; {before}; {judged})",
            secs_text(t),
            r.last.as_ref().map(window_text).unwrap_or_default()
        ),
        _ => format!(
            "{head}: NEVER RECOVERED in {} watched ({}; {before}; {judged})",
            secs_text(r.watched_s),
            r.last
                .as_ref()
                .map(|w| format!("last {}", window_text(w)))
                .unwrap_or_else(|| "nothing measured after the spike".into())
        ),
    }
}

/// The terminal's MONITORS section.
pub fn render_monitors(monitors: &[MonitorReport]) -> String {
    if monitors.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n  █ MONITORS\n\n");
    for m in monitors {
        let errors = if m.errors > 0 {
            format!(", {} polls without a value", m.errors)
        } else {
            String::new()
        };
        let _ = writeln!(out, "    {} ({}{errors})", m.name, m.source);
        for g in &m.gauges {
            let v = |x: Option<f64>| {
                x.map(|x| gauge_text(&g.metric, g.unit, x))
                    .unwrap_or_else(|| "–".into())
            };
            let slope = g
                .slope_per_hour
                .map(|s| {
                    format!(
                        "slope {}",
                        volley_model::slope::format_rate(s, g.unit == Unit::Data)
                    )
                })
                .unwrap_or_else(|| "slope –".into());
            let _ = writeln!(
                out,
                "      {:<22} {:<10} min={:<10} max={:<10} {slope} ({} samples)",
                g.metric,
                v(g.value),
                v(g.min),
                v(g.max),
                g.samples
            );
        }
    }
    out
}
