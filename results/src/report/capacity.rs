//! The report's capacity answers: breaking points and recoveries as a table
//! and as marks on the scenario's charts, and one chart per monitor gauge
//! with its least-squares trend.

use super::chart::{self, ChartData, Fold, Mark, YUnit};
use super::timeline::{Combine, Timeline};
use super::{Figure, esc, figure_html, line, slug};
use crate::capacity::{breaking_line, recovery_line};
use plotters::style::RGBColor;
use std::fmt::Write as _;
use volley_model::monitor::{CPU, GaugeReport};
use volley_model::slope;
use volley_model::summary::Summary;
use volley_protocols::metrics::Unit;

const BROKE: RGBColor = RGBColor(220, 38, 38);
const SPIKE: RGBColor = RGBColor(234, 88, 12);
const RECOVERED: RGBColor = RGBColor(22, 163, 74);
const TREND: RGBColor = RGBColor(100, 116, 139);

/// Marks for the charts of one scenario.
pub fn marks(s: &Summary, scenario: &str) -> Vec<Mark> {
    let mut out = Vec::new();
    for b in s
        .capacity
        .breaking_points
        .iter()
        .filter(|b| b.scenario == scenario)
    {
        if let (Some(at), Some(level)) = (b.at_s, b.broke_at) {
            out.push(Mark {
                x: at,
                until: None,
                label: format!("broke at {} {}", trim(level), b.unit),
                color: BROKE,
            });
        }
    }
    for r in s
        .capacity
        .recoveries
        .iter()
        .filter(|r| r.scenario == scenario)
    {
        out.push(Mark {
            x: r.start_s,
            until: Some(r.end_s),
            label: format!("spike {}", r.spike),
            color: SPIKE,
        });
        let (until, label, color) = match r.recovery_time_s {
            Some(t) => (r.end_s + t, format!("recovered in {}", secs(t)), RECOVERED),
            None => (r.end_s + r.watched_s, "never recovered".to_string(), BROKE),
        };
        out.push(Mark {
            x: r.end_s,
            until: Some(until.max(r.end_s + 0.2)),
            label,
            color,
        });
    }
    out
}

fn trim(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn secs(s: f64) -> String {
    volley_model::units::secs_text(s)
}

/// The answers as a section under the thresholds.
pub fn section(s: &Summary) -> String {
    let cap = &s.capacity;
    if cap.breaking_points.is_empty() && cap.recoveries.is_empty() {
        return String::new();
    }
    let mut html = String::from("<section id=\"capacity\"><h2>Capacity</h2>");
    if !cap.breaking_points.is_empty() {
        html.push_str(
            "<table id=\"breaking-points\"><thead><tr><th></th><th>scenario</th><th>held</th><th>broke at</th><th>when</th><th>answer</th></tr></thead><tbody>",
        );
        for b in &cap.breaking_points {
            let (mark, class) = if b.broke {
                ("✗", "bad")
            } else {
                ("✓", "ok")
            };
            let level = |v: Option<f64>| {
                v.map(|v| format!("{} {}", trim(v), b.unit))
                    .unwrap_or_else(|| "–".into())
            };
            let when = match (&b.at, b.at_s) {
                (Some(at), Some(t)) => format!("{} (+{})", at, secs(t)),
                _ => "–".into(),
            };
            let _ = write!(
                html,
                "<tr class=\"{class}\"><td class=\"mark\">{mark}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td style=\"white-space:normal\">{}</td></tr>",
                esc(&b.scenario),
                esc(&level(if b.broke {
                    b.held
                } else {
                    b.held.or(Some(b.peak))
                })),
                esc(&level(b.broke_at)),
                esc(&when),
                esc(&breaking_line(b))
            );
        }
        html.push_str("</tbody></table>");
    }
    if !cap.recoveries.is_empty() {
        html.push_str(
            "<table id=\"recoveries\"><thead><tr><th></th><th>scenario</th><th>spike</th><th>recovery time</th><th>answer</th></tr></thead><tbody>",
        );
        for r in &cap.recoveries {
            let (mark, class, time) = match r.recovery_time_s {
                Some(t) => ("✓", "ok", secs(t)),
                None => ("✗", "bad", "never recovered".to_string()),
            };
            let _ = write!(
                html,
                "<tr class=\"{class}\"><td class=\"mark\">{mark}</td><td>{}</td><td>{}</td><td>{}</td><td style=\"white-space:normal\">{}</td></tr>",
                esc(&r.scenario),
                r.spike,
                esc(&time),
                esc(&recovery_line(r))
            );
        }
        html.push_str("</tbody></table>");
    }
    html.push_str("</section>");
    html
}

fn unit_of(g: &GaugeReport) -> YUnit {
    match (g.metric.as_str(), g.unit) {
        (CPU, _) => YUnit::Percent,
        (_, Unit::Data) => YUnit::Bytes,
        _ => YUnit::Plain,
    }
}

/// One chart per monitor gauge, with its fitted trend; and how many charts.
pub fn monitors_section(s: &Summary, tl: &Timeline) -> Result<(String, usize), String> {
    let monitors = &s.capacity.monitors;
    if monitors.is_empty() || tl.t.is_empty() {
        return Ok((String::new(), 0));
    }
    let mut html = String::from(
        "<section class=\"scenario\" id=\"monitors\"><h2>Monitors</h2><p class=\"dim\">Polled once per second during the run; the grey line is the least-squares trend.</p><div class=\"charts\">",
    );
    // The answers matter on the target's own charts too.
    let all: Vec<Mark> = s
        .volley
        .scenarios
        .iter()
        .flat_map(|sc| marks(s, &sc.name))
        .collect();
    let mut n = 0;
    for m in monitors {
        for g in &m.gauges {
            let ids: Vec<usize> = tl
                .series_of(&g.metric, None)
                .into_iter()
                .filter(|i| tl.tags(*i).get("monitor") == Some(m.name.as_str()))
                .collect();
            if ids.is_empty() {
                continue;
            }
            let values = tl.values(&ids, Combine::SumGauge, tl.gauge());
            // The middle of each bucket.
            let mid = tl.width() as f64 / 2.0;
            let mut lines = vec![line(&g.metric, chart::PALETTE[0], values.clone())];
            let bytes = g.unit == Unit::Data;
            if let Some(per_h) = g.slope_per_hour {
                // The fitted line through the points' mean.
                let pts: Vec<(f64, f64)> =
                    tl.t.iter()
                        .zip(&values)
                        .filter_map(|(t, v)| v.map(|v| (*t as f64 + mid, v)))
                        .collect();
                if !pts.is_empty() {
                    let n_pts = pts.len() as f64;
                    let mt = pts.iter().map(|p| p.0).sum::<f64>() / n_pts;
                    let mv = pts.iter().map(|p| p.1).sum::<f64>() / n_pts;
                    let per_s = per_h / 3600.0;
                    let fit =
                        tl.t.iter()
                            .map(|t| Some(mv + per_s * (*t as f64 + mid - mt)))
                            .collect();
                    lines.push(line(
                        &format!("trend {}", slope::format_rate(per_h, bytes)),
                        TREND,
                        fit,
                    ));
                }
            }
            let fig = Figure {
                id: format!("chart-monitor-{}-{}", slug(&m.name), slug(&g.metric)),
                title: format!("{} · {}", m.name, g.metric),
                data: ChartData {
                    t: tl.t.clone(),
                    width: tl.width(),
                    lines,
                    unit: unit_of(g),
                    fold: Fold::Max,
                },
                note: Some(m.source.clone()),
                totals: None,
            };
            html.push_str(&figure_html(&fig, &all)?);
            n += 1;
        }
    }
    html.push_str("</div></section>");
    Ok((html, n))
}
