//! The HTML report: one self-contained page built from a [`Summary`] alone
//! (no network, no script; charts are SVG drawn here), so `volley run
//! --report`, `volley report SUMMARY.json` and merged summaries all render
//! the same page.
//!
//! Sections appear when their metrics exist, so every driver gets its charts
//! from the one pipeline: latency percentiles, throughput, errors and active
//! VUs per scenario, then the charts a driver's descriptor adds (WebSocket
//! sessions, webhook deliveries by kind, Postgres connections by state).
//! Which metrics each chart draws comes from the drivers' descriptors
//! (`Summary::drivers`), never from driver names. Latency lines are exact
//! per-second percentiles of the whole scenario: the aggregator merges each
//! second's histograms per scenario (percentiles do not add up across
//! series), keeping only the resulting points so memory stays flat over a
//! long soak.

mod capacity;
mod chart;
mod distribution;
mod timeline;

use chart::{ChartData, Fold, Line, YUnit};
use plotters::style::RGBColor;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;
use timeline::{Combine, Timeline};
use volley_model::judge::merged;
use volley_model::summary::{SeriesRecord, Summary};
use volley_model::units;
use volley_protocols::descriptor::{Descriptor, Fact, Figure as DriverFigure, fill};
use volley_protocols::duration::format_duration;
use volley_protocols::metrics::{MetricKind, Slot, Tags};

/// Throughput lines of every scenario, after its drivers' (their
/// descriptors' `throughput`): (metric, label).
const THROUGHPUT: &[(&str, &str)] = &[("iterations", "iterations/s")];

/// Error lines of every scenario, after its drivers' (their descriptors'
/// `errors`): (metric, label, count false observations of a rate).
const ERRORS: &[(&str, &str, bool)] = &[
    ("checks", "failed checks/s", true),
    ("dropped_iterations", "dropped iterations/s", false),
];

pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A fragment usable in an id attribute.
fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn hex(c: RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

struct Figure {
    id: String,
    title: String,
    data: ChartData,
    note: Option<String>,
    /// Each line's total over the run, shown in the legend instead of its
    /// peak (counts split by outcome).
    totals: Option<Vec<u64>>,
}

/// Render the report page.
pub fn render(s: &Summary) -> Result<String, String> {
    let series: Vec<(SeriesRecord, Slot)> = s
        .series
        .iter()
        .map(|r| {
            r.to_slot()
                .map(|slot| (r.clone(), slot))
                .map_err(|e| format!("series {}{}: {e}", r.metric, r.tags))
        })
        .collect::<Result<_, _>>()?;
    let elapsed = volley_protocols::duration::secs(s.volley.duration_s);
    let tl = Timeline::new(s);
    let drivers = s.drivers();

    let mut body = String::new();
    let verdict = verdict(s);
    body.push_str(&verdict.html);
    body.push_str(&facts(s, &series, elapsed, &drivers));
    body.push_str(&thresholds_table(s));
    body.push_str(&metrics_table(s));
    body.push_str(&capacity::section(s));

    let mut charts = 0usize;
    let mut nav = String::new();
    let mut sections = String::new();
    for sc in &s.volley.scenarios {
        let figures = scenario_figures(&tl, &sc.name, &sc.driver, &drivers);
        let marks = capacity::marks(s, &sc.name);
        let id = format!("scenario-{}", slug(&sc.name));
        let _ = write!(
            nav,
            "<li><a href=\"#{id}\">{}</a> <span class=\"dim\">{} · {}</span></li>",
            esc(&sc.name),
            esc(&sc.driver),
            esc(&sc.executor)
        );
        let _ = write!(
            sections,
            "<section class=\"scenario\" id=\"{id}\"><h2>Scenario {}</h2><p class=\"dim\">{} driver · {} · {} · up to {} VUs</p>",
            esc(&sc.name),
            esc(&sc.driver),
            esc(&sc.executor),
            esc(&sc.description),
            sc.max_vus
        );
        let distribution = distribution::figure(&series, &sc.name, &sc.driver, &drivers)?;
        if figures.is_empty() && distribution.is_none() {
            sections.push_str("<p class=\"dim\">No data was recorded for this scenario.</p>");
        } else {
            sections.push_str("<div class=\"charts\">");
            // The distribution follows the latency charts over time.
            let latency = format!("chart-{}-latency-", slug(&sc.name));
            let at = figures
                .iter()
                .rposition(|f| f.id.starts_with(&latency))
                .map_or(0, |i| i + 1);
            for (i, f) in figures.iter().enumerate() {
                if i == at
                    && let Some(d) = &distribution
                {
                    sections.push_str(d);
                    charts += 1;
                }
                sections.push_str(&figure_html(f, &marks)?);
                charts += 1;
            }
            if at >= figures.len()
                && let Some(d) = &distribution
            {
                sections.push_str(d);
                charts += 1;
            }
            sections.push_str("</div>");
        }
        let columns = volley_model::trend_stats::breakdown_columns(&s.volley.summary_trend_stats);
        sections.push_str(&breakdown_tables(
            &series, &sc.name, elapsed, &drivers, &columns,
        ));
        sections.push_str("</section>");
    }
    let (monitors, n) = capacity::monitors_section(s, &tl)?;
    charts += n;
    sections.push_str(&monitors);
    let errors = error_breakdown(&series, &drivers);

    let title = format!(
        "volley report: {} — {}",
        s.volley.plan,
        verdict.word.to_lowercase()
    );
    let mut page = String::with_capacity(body.len() + sections.len() + 8192);
    let _ = write!(
        page,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"generator\" content=\"volley {}\">\
<title>{}</title><style>{CSS}</style></head><body>\
<main data-charts=\"{charts}\"><header><h1>volley report</h1><p class=\"dim\">{} · started {} · ran {}</p></header>",
        esc(&s.volley.version),
        esc(&title),
        esc(&s.volley.plan),
        esc(&s.volley.started),
        format_duration(elapsed),
    );
    page.push_str(&body);
    if !s.volley.scenarios.is_empty() {
        let _ = write!(page, "<nav><h2>Scenarios</h2><ul>{nav}</ul></nav>");
    }
    page.push_str(&sections);
    page.push_str(&errors);
    let latency_note = if s.volley.merge.is_some() {
        "This run was merged from the parts of a distributed run: totals, tables and thresholds \
come from the parts' merged histograms and are exact; the per-second percentiles in the charts are the \
highest of the parts' for that second, an upper bound, as percentiles of separate parts do not merge"
    } else {
        "Latency charts show exact per-second percentiles of all of a scenario's samples"
    };
    let _ = write!(
        page,
        "<footer><p>{latency_note} (HdrHistogram, 3 significant digits; open-model latency counts from \
each arrival's scheduled start). \
Runs longer than {} seconds are drawn with one point per span of seconds: latency and gauges show the \
highest second of the span, rates its mean. Tables are computed from the whole run's histograms.</p>\
<p>volley {} · plan digest {} · segment {}</p></footer></main></body></html>",
        chart::MAX_POINTS,
        esc(&s.volley.version),
        esc(&s.volley.plan_digest),
        esc(&s.volley.segment)
    );
    page.push('\n');
    Ok(page)
}

struct Verdict {
    word: &'static str,
    html: String,
}

fn verdict(s: &Summary) -> Verdict {
    let mut total = 0;
    let mut judged = 0;
    let mut failed = Vec::new();
    for t in &s.volley.thresholds {
        for expr in &t.expressions {
            total += 1;
            let result = s.metrics.get(&t.key).and_then(|m| m.thresholds.get(expr));
            judged += usize::from(result.is_some());
            if let Some(m) = s.metrics.get(&t.key)
                && let Some(r) = result
                && !r.ok
            {
                failed.push((
                    t.key.clone(),
                    expr.clone(),
                    crate::text::threshold_observed(m, expr, r),
                ));
            }
        }
    }
    let (class, word, line) = if total == 0 {
        (
            "none",
            "NO THRESHOLDS",
            "The plan sets no thresholds: nothing was judged.".to_string(),
        )
    } else if judged == 0 {
        // A part of a distributed run (--no-thresholds): the merge judges.
        (
            "none",
            "NOT JUDGED",
            format!(
                "The plan's {total} threshold{} were not judged on this run (--no-thresholds); `volley merge` judges them on the merged parts.",
                if total == 1 { "" } else { "s" }
            ),
        )
    } else if failed.is_empty() {
        (
            "pass",
            "PASSED",
            format!(
                "All {total} threshold{} passed.",
                if total == 1 { "" } else { "s" }
            ),
        )
    } else {
        (
            "fail",
            "FAILED",
            format!("{} of {total} thresholds failed.", failed.len()),
        )
    };
    let mut html = format!(
        "<section id=\"verdict\" class=\"verdict {class}\"><p class=\"word\">{word}</p><p>{}</p>",
        esc(&line)
    );
    if !failed.is_empty() {
        html.push_str("<ul>");
        for (key, expr, seen) in &failed {
            let _ = write!(
                html,
                "<li><code>{}</code> <code>{}</code>: {}</li>",
                esc(key),
                esc(expr),
                esc(seen)
            );
        }
        html.push_str("</ul>");
    }
    if let Some(reason) = &s.volley.aborted {
        let _ = write!(
            html,
            "<p class=\"aborted\">The run stopped early: {}</p>",
            esc(reason)
        );
    }
    html.push_str("</section>");
    Verdict { word, html }
}

fn metric_value(s: &Summary, metric: &str, key: &str) -> Option<f64> {
    s.metrics.get(metric)?.values.get(key).copied()
}

fn facts(
    s: &Summary,
    series: &[(SeriesRecord, Slot)],
    elapsed: Duration,
    drivers: &[Descriptor],
) -> String {
    let info = &s.volley;
    let mut rows: Vec<(String, String)> = vec![
        ("Plan".into(), info.plan.clone()),
        ("Started".into(), info.started.clone()),
        ("Duration".into(), format_duration(elapsed)),
        ("Scenarios".into(), info.scenarios.len().to_string()),
    ];
    let peak = |m| {
        metric_value(s, m, "max")
            .map(|v| format!("{v:.0}"))
            .unwrap_or_else(|| "–".into())
    };
    rows.push(("Peak VUs busy".into(), peak("vus")));
    rows.push(("Peak VUs allocated".into(), peak("vus_max")));
    let count = |metric: &str, label: &str, rows: &mut Vec<(String, String)>| {
        if let Some(t) = merged(series, metric, &Tags::default()) {
            let st = t.stats(elapsed);
            rows.push((label.into(), format!("{} ({:.1}/s)", st.count, st.rate)));
        }
    };
    count("iterations", "Iterations", &mut rows);
    let facts = || drivers.iter().flat_map(|d| &d.facts);
    // The drivers' counts, then their shares.
    for f in facts() {
        if let Fact::Count { metric, label } = f {
            count(metric, label, &mut rows);
        }
    }
    for f in facts() {
        if let Fact::Percent { metric, label } = f
            && let Some(r) = metric_value(s, metric, "rate")
        {
            rows.push((label.clone(), format!("{:.2}%", r * 100.0)));
        }
    }
    for (metric, label) in [
        ("data_received", "Data received"),
        ("data_sent", "Data sent"),
    ] {
        if let Some(v) = metric_value(s, metric, "count") {
            rows.push((label.into(), units::bytes(v)));
        }
    }
    if info.segment != "1/1" {
        rows.push(("Segment".into(), info.segment.clone()));
    }
    if let Some(m) = &info.merge {
        rows.push((
            "Merged from".into(),
            format!(
                "{} part{} ({}), started within {} ms",
                m.parts.len(),
                if m.parts.len() == 1 { "" } else { "s" },
                crate::merge::segment_list("segment", &m.segments, m.of),
                m.start_skew_ms
            ),
        ));
        if !m.missing.is_empty() {
            rows.push((
                "Missing".into(),
                format!(
                    "{}: this report covers only part of the plan",
                    crate::merge::segment_list("segment", &m.missing, m.of)
                ),
            ));
        }
    }
    let mut html = String::from("<section id=\"facts\"><h2>Run</h2><dl class=\"facts\">");
    for (k, v) in rows {
        let _ = write!(html, "<div><dt>{}</dt><dd>{}</dd></div>", esc(&k), esc(&v));
    }
    html.push_str("</dl></section>");
    html
}

fn thresholds_table(s: &Summary) -> String {
    if s.volley.thresholds.is_empty() {
        return String::new();
    }
    let mut html = String::from(
        "<section id=\"thresholds\"><h2>Thresholds</h2><table><thead><tr><th></th><th>metric</th><th>threshold</th><th>observed</th></tr></thead><tbody>",
    );
    for t in &s.volley.thresholds {
        for expr in &t.expressions {
            let r = s
                .metrics
                .get(&t.key)
                .and_then(|m| m.thresholds.get(expr).map(|r| (m, r)));
            let (mark, class, seen) = match r {
                Some((m, r)) if r.no_data && r.ok => {
                    ("–", "nodata", crate::text::threshold_observed(m, expr, r))
                }
                Some((m, r)) if r.ok => ("✓", "ok", crate::text::threshold_observed(m, expr, r)),
                Some((m, r)) => ("✗", "bad", crate::text::threshold_observed(m, expr, r)),
                None => ("–", "nodata", "not evaluated".into()),
            };
            let _ = write!(
                html,
                "<tr class=\"{class}\"><td class=\"mark\">{mark}</td><td><code>{}</code></td><td><code>{}</code></td><td>{}</td></tr>",
                esc(&t.key),
                esc(expr),
                esc(&seen)
            );
        }
    }
    html.push_str("</tbody></table></section>");
    html
}

/// Every metric of the run with its totals, as the terminal summary lists
/// them: the plan's own (`[metrics.NAME]`) appear here like volley's.
fn metrics_table(s: &Summary) -> String {
    let stats = volley_model::trend_stats::of_names(&s.volley.summary_trend_stats);
    let mut html = String::from(
        "<section id=\"metrics\"><h2>Metrics</h2><table><thead><tr><th>metric</th><th>type</th><th>values</th></tr></thead><tbody>",
    );
    let mut any = false;
    for (name, m) in s.metrics.iter().filter(|(k, _)| !k.contains('{')) {
        any = true;
        let kind = match m.kind {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Rate => "rate",
            MetricKind::Trend => "trend",
        };
        let _ = write!(
            html,
            "<tr><td><code>{}</code></td><td>{kind}</td><td>{}</td></tr>",
            esc(name),
            esc(&crate::text::stat_line(
                m.kind, m.contains, &m.values, &stats
            ))
        );
    }
    if !any {
        return String::new();
    }
    html.push_str("</tbody></table></section>");
    html
}

fn scenario_figures(tl: &Timeline, sc: &str, driver: &str, drivers: &[Descriptor]) -> Vec<Figure> {
    let mut out = Vec::new();
    if tl.t.is_empty() {
        return out;
    }
    // Two clocks: the scenario's rollups (per second) and the per-series
    // history (coarser in a long run with many series).
    let per_series = Axis::new(&tl.t, tl.width());
    let per_scenario = Axis::new(&tl.rollup_t, tl.rollup_width());
    let figure = |axis: &Axis, kind: &str, title: String, lines, unit, fold, note| Figure {
        id: format!("chart-{}-{kind}", slug(sc)),
        title,
        data: ChartData {
            t: axis.t.to_vec(),
            width: axis.width,
            lines,
            unit,
            fold,
        },
        note: join_notes(note, axis.note.clone()),
        totals: None,
    };
    // Counts per second of a scenario: from its rollups when every metric
    // has one, else summed over its series.
    let rolled = |metrics: &[&str]| metrics.iter().all(|m| tl.has_rollup(m, sc));
    let rates = |m: &str, misses: bool, from_rollups: bool| {
        if from_rollups {
            tl.rollup_rates(m, sc, misses).unwrap_or_default()
        } else {
            tl.rates(&tl.series_in(m, sc), misses)
        }
    };

    // Latency percentiles.
    let mut latency: Vec<(&str, &str)> = drivers
        .iter()
        .flat_map(|d| &d.latency)
        .map(|l| (l.metric.as_str(), l.label.as_str()))
        .filter(|(m, _)| tl.has(m, sc))
        .collect();
    if latency.is_empty() && tl.has("iteration_duration", sc) {
        latency.push(("iteration_duration", "Iteration duration"));
    }
    for (metric, title) in latency {
        let (lines, note, axis) = match tl.percentiles(metric, sc) {
            Some(p) => (p, None, &per_scenario),
            None => (
                tl.percentile_bounds(metric, sc),
                Some(
                    "This summary has no per-scenario percentiles: each line is the highest \
                     percentile among the scenario's series, an upper bound."
                        .to_string(),
                ),
                &per_series,
            ),
        };
        let [p50, p95, p99] = lines;
        out.push(figure(
            axis,
            &format!("latency-{}", slug(metric)),
            format!("{title} ({metric})"),
            vec![
                line("p50", chart::P50, p50),
                line("p95", chart::P95, p95),
                line("p99", chart::P99, p99),
            ],
            YUnit::Millis,
            Fold::Max,
            note,
        ));
    }

    // Throughput.
    let shown: Vec<(&str, &str)> = drivers
        .iter()
        .flat_map(|d| &d.throughput)
        .map(|l| (l.metric.as_str(), l.label.as_str()))
        .chain(THROUGHPUT.iter().copied())
        .filter(|(m, _)| tl.has(m, sc))
        .collect();
    let from_rollups = rolled(&shown.iter().map(|s| s.0).collect::<Vec<_>>());
    let lines: Vec<Line> = shown
        .iter()
        .enumerate()
        .map(|(i, (m, label))| {
            let v = rates(m, false, from_rollups);
            line(label, chart::PALETTE[i % chart::PALETTE.len()], v)
        })
        .collect();
    if !lines.is_empty() {
        out.push(figure(
            if from_rollups {
                &per_scenario
            } else {
                &per_series
            },
            "throughput",
            "Throughput".into(),
            lines,
            YUnit::PerSecond,
            Fold::Mean,
            None,
        ));
    }

    // Errors.
    let shown: Vec<(&str, &str, bool)> = drivers
        .iter()
        .flat_map(|d| &d.errors)
        .map(|e| (e.metric.as_str(), e.label.as_str(), e.misses))
        .chain(ERRORS.iter().copied())
        .filter(|(m, ..)| tl.has(m, sc))
        .collect();
    let from_rollups = rolled(&shown.iter().map(|s| s.0).collect::<Vec<_>>());
    let mut lines: Vec<Line> = Vec::new();
    for (m, label, misses) in shown {
        if lines.iter().any(|l| l.label == label) {
            continue;
        }
        let v = rates(m, misses, from_rollups);
        let color = if lines.is_empty() {
            chart::ERROR
        } else {
            chart::PALETTE[(lines.len() + 3) % chart::PALETTE.len()]
        };
        lines.push(line(label, color, v));
    }
    if !lines.is_empty() {
        out.push(figure(
            if from_rollups {
                &per_scenario
            } else {
                &per_series
            },
            "errors",
            "Errors".into(),
            lines,
            YUnit::PerSecond,
            Fold::Mean,
            None,
        ));
    }

    // Active VUs.
    if tl.has("vus", sc) {
        // The most VUs busy in each second: a sample at its end would miss
        // iterations shorter than a second.
        let v = tl.values(
            &tl.series_in("vus", sc),
            Combine::SumGauge,
            timeline::gauge_max,
        );
        out.push(figure(
            &per_series,
            "vus",
            "VUs busy in an iteration (most per second)".into(),
            vec![line("VUs busy", chart::PALETTE[3], v)],
            YUnit::Count,
            Fold::Max,
            None,
        ));
    }

    // The drivers' own charts.
    for d in drivers {
        for f in &d.figures {
            if let Some(fig) = driver_figure(tl, sc, driver, d, f, &per_series, &per_scenario) {
                out.push(fig);
            }
        }
    }
    out
}

/// A chart a driver describes (sessions, deliveries by kind, server
/// connections by state, ...), when the scenario has its metrics.
fn driver_figure(
    tl: &Timeline,
    sc: &str,
    driver: &str,
    d: &Descriptor,
    f: &DriverFigure,
    per_series: &Axis,
    per_scenario: &Axis,
) -> Option<Figure> {
    let figure = |axis: &Axis, kind: &str, title: &str, lines, unit, fold, note| Figure {
        id: format!("chart-{}-{kind}", slug(sc)),
        title: title.to_string(),
        data: ChartData {
            t: axis.t.to_vec(),
            width: axis.width,
            lines,
            unit,
            fold,
        },
        note: join_notes(note, axis.note.clone()),
        totals: None,
    };
    match f {
        DriverFigure::Rates {
            id,
            title,
            lines,
            note,
        } => {
            if !tl.has(&lines.first()?.metric, sc) {
                return None;
            }
            let shown: Vec<_> = lines.iter().filter(|l| tl.has(&l.metric, sc)).collect();
            let metrics: Vec<&str> = shown.iter().map(|l| l.metric.as_str()).collect();
            let from_rollups = metrics.iter().all(|m| tl.has_rollup(m, sc));
            let lines = shown
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let v = if from_rollups {
                        tl.rollup_rates(&l.metric, sc, false).unwrap_or_default()
                    } else {
                        tl.rates(&tl.series_in(&l.metric, sc), false)
                    };
                    let color = if l.error {
                        chart::ERROR
                    } else {
                        chart::PALETTE[i % chart::PALETTE.len()]
                    };
                    line(&l.label, color, v)
                })
                .collect();
            let axis = if from_rollups {
                per_scenario
            } else {
                per_series
            };
            Some(figure(
                axis,
                id,
                title,
                lines,
                YUnit::PerSecond,
                Fold::Mean,
                note.clone(),
            ))
        }
        DriverFigure::RatesBy {
            id,
            title,
            metric,
            tags,
        } => {
            let series = tl.series_in(metric, sc);
            let tag = tags
                .iter()
                .find(|t| series.iter().any(|i| tl.tags(*i).get(t).is_some()))?;
            let lines = palette_lines(tl.grouped_rates(&series, tag, false).into_iter());
            Some(figure(
                per_series,
                id,
                title,
                lines,
                YUnit::PerSecond,
                Fold::Mean,
                None,
            ))
        }
        DriverFigure::GaugesBy {
            id,
            title,
            metric,
            tag,
        } => {
            // The scenario's own series, or run-wide ones shown with every
            // scenario of the driver.
            let mut series = tl.series_in(metric, sc);
            if series.is_empty() && driver == d.name {
                series = tl.series_of(metric, None);
            }
            if series.is_empty() {
                return None;
            }
            let lines = tl
                .grouped(&series, tag, Combine::SumGauge, tl.gauge())
                .into_iter();
            Some(figure(
                per_series,
                id,
                title,
                palette_lines(lines),
                YUnit::Count,
                Fold::Max,
                None,
            ))
        }
        DriverFigure::CountsBy {
            id,
            title,
            metric,
            lines,
        } => {
            let series = tl.series_in(metric, sc);
            if series.is_empty() {
                return None;
            }
            let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
            for i in series {
                let label = fill(lines, tl.tags(i), d).unwrap_or_else(|| "-".into());
                groups.entry(label).or_default().push(i);
            }
            let counted = tl.grouped_counts(groups);
            let totals = counted.iter().map(|(_, (_, n))| *n).collect();
            let lines = palette_lines(counted.into_iter().map(|(k, (v, _))| (k, v)));
            let mut f = figure(
                per_series,
                id,
                title,
                lines,
                YUnit::PerSecond,
                Fold::Mean,
                Some("Per second; the legend gives each line's total over the run.".into()),
            );
            f.totals = Some(totals);
            Some(f)
        }
        // A figure a newer build described: nothing to draw here.
        DriverFigure::Unknown => None,
    }
}

/// The time axis of a chart: bucket starts, their width, and the note that
/// says how many seconds one point stands for.
struct Axis<'a> {
    t: &'a [u64],
    width: u64,
    note: Option<String>,
}

impl<'a> Axis<'a> {
    fn new(t: &'a [u64], width: u64) -> Self {
        let n = t.last().map_or(0, |l| l.saturating_add(width));
        let span = chart::span_of(usize::try_from(n).unwrap_or(usize::MAX), width);
        Self {
            t,
            width,
            note: (span > 1).then(|| format!("One point per {span} s.")),
        }
    }
}

fn line(label: &str, color: RGBColor, values: Vec<Option<f64>>) -> Line {
    Line {
        label: label.to_string(),
        color,
        values,
    }
}

/// One line per (label, values), in the palette's colours.
fn palette_lines(lines: impl Iterator<Item = (String, Vec<Option<f64>>)>) -> Vec<Line> {
    lines
        .enumerate()
        .map(|(i, (label, v))| line(&label, chart::PALETTE[i % chart::PALETTE.len()], v))
        .collect()
}

fn join_notes(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(format!("{a} {b}")),
        (a, b) => a.or(b),
    }
}

/// The key of the `i`th line: its colour, and its dash as the chart draws it.
fn swatch(i: usize, color: RGBColor) -> String {
    match i {
        0 => hex(color),
        _ => format!(
            "repeating-linear-gradient(90deg,{0} 0 4px,transparent 4px 7px)",
            hex(color)
        ),
    }
}

fn figure_html(f: &Figure, marks: &[chart::Mark]) -> Result<String, String> {
    let svg =
        chart::svg_marked(&f.data, &f.title, marks).map_err(|e| format!("chart {}: {e}", f.id))?;
    let mut html = format!(
        "<figure class=\"chart\" id=\"{}\"><figcaption><strong>{}</strong><span class=\"legend\">",
        esc(&f.id),
        esc(&f.title)
    );
    for (i, l) in f.data.lines.iter().enumerate() {
        if let Some(total) = f.totals.as_ref().and_then(|t| t.get(i)) {
            let _ = write!(
                html,
                "<span class=\"key\" data-line=\"{0}\" data-total=\"{total}\"><i style=\"background:{1}\"></i>{0} <b>{total}</b></span>",
                esc(&l.label),
                swatch(i, l.color),
            );
            continue;
        }
        let swatch = swatch(i, l.color);
        let peak = l
            .values
            .iter()
            .flatten()
            .copied()
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
        let peak = match peak {
            // Counts format as plain numbers (the axis hides fractions).
            Some(p) if f.data.unit == YUnit::Count => chart::axis_value(p, YUnit::PerSecond),
            Some(p) => chart::axis_value(p, f.data.unit),
            None => "–".into(),
        };
        let _ = write!(
            html,
            "<span class=\"key\"><i style=\"background:{}\"></i>{} <b>peak {}</b></span>",
            swatch,
            esc(&l.label),
            esc(&peak)
        );
    }
    html.push_str("</span></figcaption>");
    html.push_str(&svg);
    if let Some(n) = &f.note {
        let _ = write!(html, "<p class=\"note\">{}</p>", esc(n));
    }
    html.push_str("</figure>");
    Ok(html)
}

fn breakdown_tables(
    series: &[(SeriesRecord, Slot)],
    sc: &str,
    elapsed: Duration,
    drivers: &[Descriptor],
    columns: &[volley_model::trend_stats::TrendStat],
) -> String {
    let headings: String = columns
        .iter()
        .map(|c| format!("<th>{}</th>", esc(&c.heading())))
        .collect();
    let mut html = String::new();
    for b in drivers.iter().flat_map(|d| &d.breakdowns) {
        let (metric, failed, tag) = (&b.metric, &b.failed, &b.tag);
        let scoped = Tags::new([("scenario", sc)]);
        let mut names: Vec<String> = series
            .iter()
            .filter(|(r, _)| r.metric == *metric && r.tags.matches(&scoped))
            .map(|(r, _)| r.tags.get(tag).unwrap_or("-").to_string())
            .collect();
        if names.is_empty() {
            continue;
        }
        names.sort();
        names.dedup();
        let _ = write!(
            html,
            "<h3>{} by {} <span class=\"dim\">({metric})</span></h3><table class=\"num\"><thead><tr><th>{}</th><th>count</th><th>rate/s</th>{headings}<th>errors</th></tr></thead><tbody>",
            esc(&b.label),
            esc(tag),
            esc(tag)
        );
        let mut rows: Vec<(String, Tags)> = names
            .into_iter()
            .map(|n| {
                let f = if n == "-" {
                    scoped.clone()
                } else {
                    scoped.with(tag, n.clone())
                };
                (n, f)
            })
            .collect();
        if rows.len() > 1 {
            rows.push(("all".into(), scoped.clone()));
        }
        for (name, filter) in rows {
            let Some(total) = merged(series, metric, &filter) else {
                continue;
            };
            let (unit, st) = (total.unit, total.stats(elapsed));
            let errors = merged(series, failed, &filter)
                .map(|f| f.stats(elapsed))
                .map(|f| match f.kind {
                    MetricKind::Rate => format!("{} ({:.2}%)", f.count, f.rate * 100.0),
                    _ => f.count.to_string(),
                })
                .unwrap_or_else(|| "–".into());
            let v = |x: f64| units::value(unit, x);
            let class = if name == "all" && filter == scoped {
                " class=\"total\""
            } else {
                ""
            };
            let _ = write!(
                html,
                "<tr{class}><td>{}</td><td>{}</td><td>{:.2}</td>{}<td>{}</td></tr>",
                esc(&name),
                st.count,
                st.rate,
                columns
                    .iter()
                    .map(|c| format!("<td>{}</td>", v(c.of(&st))))
                    .collect::<String>(),
                esc(&errors)
            );
        }
        html.push_str("</tbody></table>");
    }
    html
}

/// Every error the run counted, by scenario and what went wrong: unexpected
/// HTTP statuses and transport errors, failed checks, SQLSTATEs, WebSocket
/// and webhook failures.
fn error_breakdown(series: &[(SeriesRecord, Slot)], drivers: &[Descriptor]) -> String {
    // (scenario, metric, what) -> count
    let mut rows: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    let describe = |tags: &Tags, skip: &[String], d: Option<&Descriptor>| -> String {
        tags.iter()
            .filter(|(k, _)| *k != "scenario" && !skip.iter().any(|s| s == k))
            .map(|(k, v)| match d.and_then(|d| d.tag_name(k, v)) {
                Some(name) => format!("{k}={v} ({name})"),
                None => format!("{k}={v}"),
            })
            .collect::<Vec<_>>()
            .join(" · ")
    };
    // A failed status check and the unexpected response that failed it are
    // one error: it is listed under the status (or transport error), and
    // the check row keeps only the failures no such response explains.
    let key = |r: &SeriesRecord| {
        (
            r.tags.get("scenario").unwrap_or("-").to_string(),
            r.tags.get("name").unwrap_or("").to_string(),
        )
    };
    let unexpected_response = |r: &SeriesRecord| {
        r.metric == "http_reqs" && r.tags.get("expected_response") == Some("false")
    };
    let mut unexpected: BTreeMap<(String, String), u64> = BTreeMap::new();
    for (r, slot) in series {
        if let Slot::Counter(n) = slot
            && unexpected_response(r)
        {
            *unexpected.entry(key(r)).or_default() += n;
        }
    }
    let mut status_checks: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (r, _) in series {
        if r.metric == "checks"
            && let Some(c) = r.tags.get("check").filter(|c| c.starts_with("status "))
        {
            status_checks.entry(key(r)).or_default().push(c.to_string());
        }
    }
    let expected = ["expected_response".to_string()];
    for (r, slot) in series {
        let sc = r.tags.get("scenario").unwrap_or("-").to_string();
        let hits = match slot {
            Slot::Counter(n) => *n,
            Slot::Rate { hits, .. } => *hits,
            _ => 0,
        };
        // A driver's own rows (e.g. HTTP responses by status), then the
        // failed checks, then the error lines' series tag by tag.
        let headed = drivers.iter().find_map(|d| {
            let row = d
                .error_rows
                .iter()
                .find(|row| !row.head.is_empty() && row.takes(&r.metric, &r.tags))?;
            Some((
                fill(&row.head, &r.tags, d)?,
                describe(&r.tags, &row.hide, Some(d)),
            ))
        });
        let line_of = |d: &&Descriptor| d.errors.iter().any(|e| e.table && e.metric == r.metric);
        let (n, what) = match (headed, r.metric.as_str(), slot) {
            (Some((head, rest)), ..) => {
                let also = match status_checks.get(&key(r)) {
                    Some(c) if unexpected_response(r) => {
                        format!(" · failed check {}", c.join(", "))
                    }
                    _ => String::new(),
                };
                (hits, format!("{head} · {rest}{also}"))
            }
            (None, "checks", Slot::Rate { hits, total }) => {
                let mut failed = total.saturating_sub(*hits);
                if r.tags
                    .get("check")
                    .is_some_and(|c| c.starts_with("status "))
                    && let Some(u) = unexpected.get_mut(&key(r))
                {
                    let shown = failed.min(*u);
                    *u -= shown;
                    failed -= shown;
                }
                (failed, describe(&r.tags, &[], None))
            }
            (None, m, _) if ERRORS.iter().any(|(e, _, _)| *e == m) => {
                (hits, describe(&r.tags, &expected, None))
            }
            (None, ..) => match drivers.iter().find(line_of) {
                Some(d) => (hits, describe(&r.tags, &expected, Some(d))),
                None => continue,
            },
        };
        if n > 0 {
            *rows.entry((sc, r.metric.clone(), what)).or_default() += n;
        }
    }
    let mut html = String::from("<section id=\"errors\"><h2>Errors</h2>");
    if rows.is_empty() {
        html.push_str(
            "<p>No errors: every response was expected, every check passed.</p></section>",
        );
        return html;
    }
    let mut rows: Vec<((String, String, String), u64)> = rows.into_iter().collect();
    // Most frequent first, per scenario.
    rows.sort_by(|(a, na), (b, nb)| a.0.cmp(&b.0).then(nb.cmp(na)).then(a.cmp(b)));
    html.push_str(
        "<table><thead><tr><th>scenario</th><th>metric</th><th>what</th><th class=\"r\">count</th></tr></thead><tbody>",
    );
    for ((sc, metric, what), n) in rows {
        let what = if what.is_empty() {
            "–".to_string()
        } else {
            what
        };
        let _ = write!(
            html,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td class=\"r\">{n}</td></tr>",
            esc(&sc),
            esc(&metric),
            esc(&what)
        );
    }
    html.push_str("</tbody></table></section>");
    html
}

const CSS: &str = r#"
:root{--fg:#1f2937;--dim:#6b7280;--line:#e5e7eb;--ok:#15803d;--bad:#b91c1c;--bg:#f8fafc}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:1360px;margin:0 auto;padding:24px}
h1{margin:0;font-size:26px}
h2{font-size:20px;margin:32px 0 8px}
h3{font-size:16px;margin:20px 0 6px}
.dim{color:var(--dim);font-weight:normal}
code{font:13px ui-monospace,SFMono-Regular,Menlo,monospace;background:#eef2f7;padding:1px 4px;border-radius:3px}
.verdict{margin:20px 0;padding:16px 20px;border-radius:8px;border:1px solid}
.verdict .word{margin:0;font-size:28px;font-weight:700;letter-spacing:.04em}
.verdict.pass{background:#f0fdf4;border-color:#86efac;color:var(--ok)}
.verdict.fail{background:#fef2f2;border-color:#fca5a5;color:var(--bad)}
.verdict.none{background:#fff;border-color:var(--line)}
.verdict ul{margin:8px 0 0;padding-left:20px;color:var(--fg)}
.aborted{font-weight:600}
.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:8px;margin:0}
.facts div{background:#fff;border:1px solid var(--line);border-radius:6px;padding:8px 12px}
.facts dt{color:var(--dim);font-size:13px}
.facts dd{margin:0;font-weight:600;word-break:break-all}
table{border-collapse:collapse;background:#fff;width:100%;margin:6px 0 12px;font-size:14px}
th,td{border-bottom:1px solid var(--line);padding:5px 10px;text-align:left;white-space:nowrap}
th{background:#f1f5f9;font-weight:600}
table.num td:not(:first-child),table.num th:not(:first-child),.r{text-align:right;font-variant-numeric:tabular-nums}
tr.total td{font-weight:600;border-top:2px solid var(--line)}
tr.ok .mark{color:var(--ok)} tr.bad .mark,tr.bad td{color:var(--bad)} tr.nodata{color:var(--dim)}
.mark{font-weight:700;width:1.5em}
nav ul{margin:0;padding-left:20px}
.scenario{margin-top:28px;border-top:1px solid var(--line)}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:14px}
figure.chart{margin:0;background:#fff;border:1px solid var(--line);border-radius:8px;padding:10px 12px}
figcaption{display:flex;flex-wrap:wrap;gap:4px 14px;align-items:baseline;font-size:14px}
.legend{display:flex;flex-wrap:wrap;gap:4px 12px;color:var(--dim);font-size:13px}
.key i{display:inline-block;width:12px;height:3px;margin:0 5px 3px 0;vertical-align:middle}
.key b{font-weight:600;color:var(--fg)}
svg.plot{display:block;width:100%;height:auto;margin-top:6px}
.note{color:var(--dim);font-size:12px;margin:4px 0 0}
footer{margin-top:36px;color:var(--dim);font-size:13px}
@media print{body{background:#fff}.charts{grid-template-columns:1fr 1fr}figure.chart{break-inside:avoid}}
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use volley_model::summary::{RunInfo, ScenarioInfo, ThresholdSource};
    use volley_protocols::metrics::{MetricKind::*, Recorder, Registry, Unit};
    use volley_runtime::aggregate::{Aggregator, Flush, VuSample};

    /// A summary as a run with websocket, webhook and postgres scenarios
    /// would leave it: three one-second intervals through the aggregator.
    fn mixed_summary() -> Summary {
        let reg = Registry::new();
        volley_model::metrics::register_engine(&reg);
        let names = ["chat", "stripe", "db"].map(String::from);
        let mut agg = Aggregator::new(reg.clone(), 1, &names);
        let t = |sc: &str| Tags::new([("scenario", sc)]);
        let m = |n: &str, k, u| reg.metric(n, k, u);
        let (sessions, drops, lat, sent) = (
            m("ws_sessions", Counter, Unit::Default),
            m("ws_drop_rate", Rate, Unit::Default),
            m("ws_msg_latency", Trend, Unit::Time),
            m("ws_msgs_sent", Counter, Unit::Default),
        );
        let (hook, hook_failed) = (
            m("webhook_duration", Trend, Unit::Time),
            m("webhook_failed", Rate, Unit::Default),
        );
        let (q, wait, conns, qfail) = (
            m("pg_query_duration", Trend, Unit::Time),
            m("pg_pool_wait", Trend, Unit::Time),
            m("pg_connections", Gauge, Unit::Default),
            m("pg_query_failed", Counter, Unit::Default),
        );
        for i in 0..3u64 {
            let rec = Recorder::new(reg.clone());
            let room = t("chat").with("room", "room-0");
            rec.add(rec.series(sessions, &room), 5);
            rec.rate(rec.series(drops, &room), i == 1);
            rec.add(rec.series(sent, &room), 20);
            for ms in [10, 20, 30] {
                rec.time(rec.series(lat, &room), Duration::from_millis(ms));
            }
            for kind in ["valid", "forged", "duplicate"] {
                let tags = t("stripe").with("event", "invoice.paid").with("kind", kind);
                rec.time(rec.series(hook, &tags), Duration::from_millis(5));
                rec.rate(rec.series(hook_failed, &tags), false);
            }
            let db = t("db").with("name", "account");
            rec.time(rec.series(q, &db), Duration::from_millis(2));
            rec.time(rec.series(wait, &t("db")), Duration::from_millis(40));
            for (state, n) in [("active", 10.0), ("idle", 2.0)] {
                rec.gauge(rec.series(conns, &t("db").with("state", state)), n);
            }
            rec.add(rec.series(qfail, &db.with("sqlstate", "53300")), i + 1);
            agg.push(Flush {
                worker: 0,
                index: i,
                shard: rec.take(),
                active: [5, 2, 10].map(VuSample::steady).to_vec(),
                allocated: [5, 2, 10].map(VuSample::steady).to_vec(),
                last: i == 2,
            });
        }
        let series = volley_runtime::records::collect_series(&agg);
        let elapsed = Duration::from_secs(3);
        let (metrics, _) = volley_model::derive::derive(&series, &[], elapsed, &[]);
        let records = volley_runtime::records::interval_records(&agg);
        let scenarios = [
            ("chat", "websocket"),
            ("stripe", "webhook"),
            ("db", "postgres"),
        ]
        .map(|(name, driver)| ScenarioInfo {
            name: name.into(),
            driver: driver.into(),
            executor: "constant-vus".into(),
            description: "3s".into(),
            max_vus: 10,
            duration_s: 3.0,
            graceful_stop_s: 0.0,
        })
        .to_vec();
        Summary {
            volley: RunInfo {
                version: "test".into(),
                plan: "mixed.toml".into(),
                plan_digest: "0".into(),
                segment: "1/1".into(),
                started: "2026-01-01T00:00:00Z".into(),
                started_unix_ms: 0,
                duration_s: 3.0,
                aborted: None,
                scenarios,
                thresholds: Vec::<ThresholdSource>::new(),
                merge: None,
                folded: Vec::new(),
                summary_trend_stats: Vec::new(),
                drivers: Vec::new(),
            },
            metrics,
            series: series.into_iter().map(|(r, _)| r).collect(),
            interval_series: records.series,
            rollup_series: records.rollups,
            interval_s: records.interval_s,
            intervals: records.intervals,
            rollup_s: records.rollup_s,
            rollup_intervals: records.rollup_intervals,
            capacity: Default::default(),
        }
    }

    fn chart_ids(html: &str) -> Vec<&str> {
        html.split("<figure class=\"chart\" id=\"")
            .skip(1)
            .map(|p| p.split('"').next().unwrap())
            .collect()
    }

    #[test]
    fn every_driver_gets_its_charts_and_tables() {
        let s = mixed_summary();
        let html = render(&s).unwrap();
        let ids = chart_ids(&html);
        for want in [
            "chart-chat-latency-ws_msg_latency",
            "chart-chat-throughput",
            "chart-chat-errors",
            "chart-chat-vus",
            "chart-chat-ws-sessions",
            "chart-stripe-latency-webhook_duration",
            "chart-stripe-webhook-kinds",
            "chart-db-latency-pg_query_duration",
            "chart-db-latency-pg_pool_wait",
            "chart-db-pg-connections",
            // The headline latency's distribution over the whole run.
            "chart-chat-distribution",
            "chart-stripe-distribution",
            "chart-db-distribution",
        ] {
            assert!(ids.contains(&want), "{want} in {ids:?}");
        }
        assert_eq!(html.matches("<svg").count(), ids.len());
        assert!(html.contains(&format!("data-charts=\"{}\"", ids.len())));
        assert!(html.contains("NO THRESHOLDS"));
        // Webhook kinds and connection states are the legends' lines.
        let kinds = html
            .split("id=\"chart-stripe-webhook-kinds\"")
            .nth(1)
            .unwrap();
        let kinds = kinds.split("</figcaption>").next().unwrap();
        for k in ["valid", "forged", "duplicate"] {
            assert!(kinds.contains(k), "{k}");
        }
        let conns = html.split("id=\"chart-db-pg-connections\"").nth(1).unwrap();
        assert!(conns.contains("active <b>peak 10</b>"), "{conns}");
        let db = html.split("id=\"chart-db-distribution\"").nth(1).unwrap();
        assert!(db.starts_with(" data-metric=\"pg_query_duration\" data-count=\"3\""));
        // Tables per query name / event type, and SQLSTATEs named.
        assert!(html.contains("Queries by name"));
        assert!(html.contains("Webhook deliveries by event"));
        assert!(html.contains("sqlstate=53300 (too_many_connections)"));
        assert!(
            html.contains("<td class=\"r\">6</td>"),
            "1+2+3 failed queries"
        );
    }

    #[test]
    fn latency_lines_come_from_exact_rollups() {
        let s = mixed_summary();
        let tl = Timeline::new(&s);
        let [p50, _, p99] = tl.percentiles("ws_msg_latency", "chat").unwrap();
        // Samples 10, 20, 30 ms each second.
        assert_eq!(p50.len(), 3);
        assert!(
            p50.iter()
                .all(|v| v.is_some_and(|v| (v - 20.0).abs() < 0.05))
        );
        assert!(
            p99.iter()
                .all(|v| v.is_some_and(|v| (v - 30.0).abs() < 0.05))
        );
        // Without rollups (an older summary) the page still renders, with
        // upper bounds and a note saying so.
        let mut old = s.clone();
        old.rollup_series.clear();
        old.rollup_intervals.clear();
        let html = render(&old).unwrap();
        assert!(html.contains("an upper bound"));
        assert_eq!(
            chart_ids(&html).len(),
            chart_ids(&render(&s).unwrap()).len()
        );
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(slug("my scenario/1"), "my-scenario-1");
    }
}
