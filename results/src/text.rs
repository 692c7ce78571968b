//! The end-of-run summary in the terminal, shaped like k6's.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;
use volley_model::derive::values_with;
use volley_model::judge::merged;
use volley_model::summary::{MetricSummary, SeriesRecord, Summary, ThresholdResult};
use volley_model::trend_stats::{self, TrendStat};
use volley_model::units::{bytes, value};
use volley_protocols::descriptor::{Descriptor, fill};
use volley_protocols::duration::format_duration;
use volley_protocols::metrics::{MetricKind, PHASE_SETUP, PHASE_TEARDOWN, Slot, Tags, Unit};

fn dots(name: &str, width: usize) -> String {
    let mut s = name.to_string();
    s.push_str(&".".repeat(width.saturating_sub(name.chars().count()).max(2)));
    s.push(':');
    s
}

/// One metric's values on a line, as the terminal summary shows them; a
/// trend's `stats` (its `summary_trend_stats`) in their order.
pub fn stat_line(
    kind: MetricKind,
    unit: Unit,
    v: &BTreeMap<String, f64>,
    stats: &[TrendStat],
) -> String {
    let g = |k: &str| v.get(k).copied().unwrap_or(0.0);
    match kind {
        MetricKind::Counter => match unit {
            Unit::Data => format!("{:<10} {}/s", bytes(g("count")), bytes(g("rate"))),
            _ => format!("{:<10} {:.2}/s", value(unit, g("count")), g("rate")),
        },
        MetricKind::Rate => format!(
            "{:<9} ✓ {:<8} ✗ {}",
            format!("{:.2}%", g("rate") * 100.0),
            g("passes"),
            g("fails")
        ),
        MetricKind::Gauge => format!(
            "{:<10} min={:<8} max={}",
            value(unit, g("value")),
            value(unit, g("min")),
            value(unit, g("max"))
        ),
        MetricKind::Trend if g("never_recovered") > 0.0 => format!(
            "{} recovered: avg={} max={}; {} never recovered",
            g("count"),
            value(unit, g("avg")),
            value(unit, g("max")),
            g("never_recovered")
        ),
        MetricKind::Trend => {
            let cells: Vec<String> = stats
                .iter()
                .map(|t| {
                    let k = t.key();
                    let shown = match t {
                        TrendStat::Count => value(Unit::Default, g(&k)),
                        _ => value(unit, g(&k)),
                    };
                    format!("{k}={shown:<9}")
                })
                .collect();
            cells.join(" ").trim_end().to_string()
        }
    }
}

/// What a threshold saw, e.g. `p(95)=212.40ms`, `rate=0.52%`, `no data`.
pub fn threshold_observed(m: &MetricSummary, expr: &str, r: &ThresholdResult) -> String {
    let agg = expr.split(['<', '>', '=', '!']).next().unwrap_or("").trim();
    let never = m.values.get("never_recovered").copied().unwrap_or(0.0);
    match (r.value, r.no_data) {
        (_, true) => "no data".to_string(),
        (v, _) if never > 0.0 && v.is_none_or(f64::is_infinite) => {
            format!(
                "{agg}=never recovered ({never:.0} spike{})",
                if never == 1.0 { "" } else { "s" }
            )
        }
        (Some(v), _) if agg == "slope" => format!(
            "slope={}",
            volley_model::slope::format_rate(v, m.contains == Unit::Data)
        ),
        (Some(v), _) => {
            let shown = if matches!(agg, "rate") && m.kind == MetricKind::Rate {
                format!("{:.2}%", v * 100.0)
            } else if matches!(agg, "count" | "rate") {
                value(Unit::Default, v)
            } else {
                value(m.contains, v)
            };
            format!("{agg}={shown}")
        }
        _ => String::new(),
    }
}

/// The VUs a run had: the most allocated at once (`vus_max`, what ran),
/// and the plans' limit when it is higher (arrival-rate pools that never
/// filled, scenarios that do not overlap).
fn vus_header(s: &Summary) -> String {
    let limit: u64 = s.volley.scenarios.iter().map(|x| x.max_vus).sum();
    let peak = s
        .metrics
        .get("vus_max")
        .and_then(|m| m.values.get("max"))
        .map(|v| *v as u64);
    let vus = |n: u64| format!("{n} VU{}", if n == 1 { "" } else { "s" });
    match peak {
        Some(p) if p < limit => format!("{} at most (limit {limit})", vus(p)),
        Some(p) => format!("{} at most", vus(p)),
        None => format!("up to {}", vus(limit)),
    }
}

pub fn render_text(s: &Summary, series: &[(SeriesRecord, Slot)]) -> String {
    let mut out = String::new();
    let drivers = s.drivers();
    let info = &s.volley;
    let elapsed = volley_protocols::duration::secs(info.duration_s);
    let stats = trend_stats::of_names(&info.summary_trend_stats);
    let columns = trend_stats::breakdown_columns(&info.summary_trend_stats);
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "  scenarios: {} scenario{}, {}, ran {}{}",
        info.scenarios.len(),
        if info.scenarios.len() == 1 { "" } else { "s" },
        vus_header(s),
        format_duration(elapsed),
        if info.segment != "1/1" {
            format!(" (segment {})", info.segment)
        } else {
            String::new()
        }
    );
    for sc in &info.scenarios {
        let _ = writeln!(
            out,
            "           * {} [{} / {}]: {}",
            sc.name, sc.driver, sc.executor, sc.description
        );
    }
    if let Some(reason) = &info.aborted {
        let _ = writeln!(out, "\n  ! run stopped early: {reason}");
    }
    for f in &info.folded {
        let _ = writeln!(out, "\n  ! {}", f.describe());
    }

    let with_thresholds: Vec<(&String, &MetricSummary)> = s
        .metrics
        .iter()
        .filter(|(_, m)| !m.thresholds.is_empty())
        .collect();
    if !with_thresholds.is_empty() {
        let _ = writeln!(out, "\n  █ THRESHOLDS\n");
        for (name, m) in with_thresholds {
            let _ = writeln!(out, "    {name}");
            for (expr, r) in &m.thresholds {
                let mark = if r.ok { "✓" } else { "✗" };
                let seen = threshold_observed(m, expr, r);
                let _ = writeln!(out, "    {mark} '{expr}' {seen}");
            }
        }
    }

    out.push_str(&crate::capacity::render_text(s));

    let _ = writeln!(out, "\n  █ TOTAL RESULTS\n");
    let width = s
        .metrics
        .iter()
        .filter(|(k, _)| !k.contains('{'))
        .map(|(k, _)| k.len())
        .max()
        .unwrap_or(10)
        .max(20)
        + 3;
    for (name, m) in s.metrics.iter().filter(|(k, _)| !k.contains('{')) {
        let _ = writeln!(
            out,
            "    {} {}",
            dots(name, width),
            stat_line(m.kind, m.contains, &m.values, &stats)
        );
        let subtotals = drivers.iter().flat_map(|d| &d.subtotals);
        for sub in subtotals.filter(|sub| sub.metric == *name) {
            let only = Tags::new([(sub.tag.as_str(), sub.value.as_str())]);
            if let Some(t) = merged(series, name, &only) {
                let _ = writeln!(
                    out,
                    "    {} {}",
                    dots(&format!("  {{ {}:{} }}", sub.tag, sub.value), width),
                    stat_line(
                        t.kind,
                        t.unit,
                        &values_with(&t.stats(elapsed), &stats),
                        &stats
                    )
                );
            }
        }
    }

    for b in drivers.iter().flat_map(|d| &d.breakdowns) {
        let (metric, tag) = (&b.metric, &b.tag);
        let table = breakdown(series, metric, &b.failed, tag, elapsed, &columns);
        if table.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "\n  █ {metric} BY SCENARIO AND {}\n",
            tag.to_uppercase()
        );
        let width = table
            .iter()
            .map(|(label, _)| label.chars().count())
            .max()
            .unwrap_or(0)
            .clamp(32, 64);
        let stats: String = columns
            .iter()
            .map(|c| format!(" {:>9}", c.heading()))
            .collect();
        let _ = writeln!(
            out,
            "    {:<width$} {:>8} {:>9}{stats} {:>8}",
            "scenario / name", "count", "rate/s", "failed"
        );
        for (label, row) in table {
            let label: String = label.chars().take(width).collect();
            let _ = writeln!(out, "    {label:<width$} {row}");
        }
    }
    let phases: Vec<String> = [("setup", PHASE_SETUP), ("teardown", PHASE_TEARDOWN)]
        .into_iter()
        .filter_map(|(label, group)| {
            let filter = Tags::new([("group", group)]);
            let reqs = merged(series, "http_reqs", &filter)?.stats(elapsed).count;
            let failed =
                merged(series, "http_req_failed", &filter).map_or(0, |f| f.stats(elapsed).count);
            Some(format!(
                "    {} {reqs} request{}, {failed} failed (group {group})",
                dots(label, 12),
                if reqs == 1 { "" } else { "s" }
            ))
        })
        .collect();
    if !phases.is_empty() {
        let _ = writeln!(
            out,
            "\n  █ SETUP AND TEARDOWN (counted apart from the scenarios)\n"
        );
        for line in phases {
            let _ = writeln!(out, "{line}");
        }
    }
    let errors = error_breakdown(series, &drivers);
    if !errors.is_empty() {
        let _ = writeln!(out, "\n  █ ERRORS\n");
        for (what, n) in errors {
            let _ = writeln!(out, "    {n:>8} × {what}");
        }
    }
    out
}

fn breakdown(
    series: &[(SeriesRecord, Slot)],
    metric: &str,
    failed: &str,
    tag: &str,
    elapsed: Duration,
    columns: &[TrendStat],
) -> Vec<(String, String)> {
    let mut groups: BTreeMap<(String, String), ()> = BTreeMap::new();
    for (r, _) in series.iter().filter(|(r, _)| r.metric == metric) {
        let sc = r.tags.get("scenario").unwrap_or("-").to_string();
        let name = r.tags.get(tag).unwrap_or("-").to_string();
        groups.insert((sc, name), ());
    }
    let mut rows = Vec::new();
    for (sc, name) in groups.keys() {
        let mut filter = Tags::new([("scenario", sc.as_str())]);
        if name != "-" {
            filter = filter.with(tag, name.clone());
        }
        let Some(total) = merged(series, metric, &filter) else {
            continue;
        };
        let (unit, st) = (total.unit, total.stats(elapsed));
        let fail = merged(series, failed, &filter)
            .map(|f| f.stats(elapsed))
            .map(|f| match f.kind {
                MetricKind::Rate => format!("{:.2}%", f.rate * 100.0),
                _ => format!("{}", f.count),
            })
            .unwrap_or_else(|| "-".into());
        let label = format!("{sc} · {name}");
        rows.push((
            label,
            format!(
                "{:>8} {:>9.2}{} {:>8}",
                st.count,
                st.rate,
                columns
                    .iter()
                    .map(|c| format!(" {:>9}", value(unit, c.of(&st))))
                    .collect::<String>(),
                fail
            ),
        ));
    }
    rows
}

/// The rows the drivers list as errors (unexpected HTTP statuses and
/// transport errors, WebSocket errors, failed queries by SQLSTATE, ...),
/// most frequent first.
fn error_breakdown(series: &[(SeriesRecord, Slot)], drivers: &[Descriptor]) -> Vec<(String, u64)> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for (r, slot) in series {
        let n = match slot {
            Slot::Counter(n) => *n,
            Slot::Rate { hits, .. } => *hits,
            _ => continue,
        };
        if n == 0 {
            continue;
        }
        let rows = drivers
            .iter()
            .flat_map(|d| d.error_rows.iter().map(move |row| (d, row)));
        for (d, row) in rows.filter(|(_, row)| row.takes(&r.metric, &r.tags)) {
            if let Some(what) = fill(&row.text, &r.tags, d) {
                *counts.entry(what).or_default() += n;
                break;
            }
        }
    }
    let mut v: Vec<(String, u64)> = counts.into_iter().collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.1));
    v
}
