//! Line charts over time, drawn as SVG by plotters and inlined in the page.

use plotters::prelude::*;

/// Long runs are drawn with at most this many points per line (a 4-hour soak
/// has 14,400 one-second intervals).
pub const MAX_POINTS: usize = 600;

const WIDTH: u32 = 640;
const HEIGHT: u32 = 240;

/// Every chart's margins, so the report's charts line up.
fn framed<'a, 'b, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, plotters::coord::Shift>,
) -> ChartBuilder<'a, 'b, DB> {
    let mut b = ChartBuilder::on(root);
    b.margin_top(12)
        .margin_right(18)
        .margin_left(6)
        .margin_bottom(6);
    b
}

/// How several seconds fold into one point when a run is long.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Fold {
    /// Per-second rates: the mean over the span.
    Mean,
    /// Latency percentiles and gauges: the highest second of the span, so
    /// spikes stay visible.
    Max,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum YUnit {
    Millis,
    PerSecond,
    Count,
    /// 1024-based, as memory is counted (KB, MB, GB).
    Bytes,
    Percent,
    Plain,
}

/// Something that happened at a moment or over a span, drawn over a chart:
/// a breaking point, a spike, a recovery.
#[derive(Clone, Debug)]
pub struct Mark {
    /// Seconds from the start of the run.
    pub x: f64,
    /// End of a span; `None`: a vertical line at `x`.
    pub until: Option<f64>,
    pub label: String,
    pub color: RGBColor,
}

pub struct Line {
    pub label: String,
    pub color: RGBColor,
    pub values: Vec<Option<f64>>,
}

pub struct ChartData {
    /// Bucket starts in seconds, one per value.
    pub t: Vec<u64>,
    /// Seconds per bucket: 1, or more for a long run's coarsened history.
    pub width: u64,
    pub lines: Vec<Line>,
    pub unit: YUnit,
    pub fold: Fold,
}

pub const PALETTE: [RGBColor; 8] = [
    RGBColor(37, 99, 235),
    RGBColor(234, 88, 12),
    RGBColor(22, 163, 74),
    RGBColor(147, 51, 234),
    RGBColor(219, 39, 119),
    RGBColor(13, 148, 136),
    RGBColor(202, 138, 4),
    RGBColor(100, 116, 139),
];
pub const P50: RGBColor = RGBColor(22, 163, 74);
pub const P95: RGBColor = RGBColor(234, 88, 12);
pub const P99: RGBColor = RGBColor(220, 38, 38);
pub const ERROR: RGBColor = RGBColor(220, 38, 38);

/// Seconds per point when `n` seconds are drawn.
pub fn span_for(n: usize) -> u64 {
    n.div_ceil(MAX_POINTS).max(1) as u64
}

/// Seconds per point when `n` seconds are drawn from buckets of `width`
/// seconds: whole buckets per point.
pub fn span_of(n: usize, width: u64) -> u64 {
    let width = width.max(1);
    span_for(n).div_ceil(width).saturating_mul(width)
}

/// Seconds the buckets starting at `t` cover.
fn seconds(t: &[u64], width: u64) -> usize {
    t.last()
        .map(|l| l.saturating_add(width.max(1)))
        .unwrap_or(0)
        .try_into()
        .unwrap_or(usize::MAX)
}

/// (x, value) points of a line; `None` is a gap.
type Points = Vec<(f64, Option<f64>)>;

/// The points of one line, folded to at most MAX_POINTS.
fn fold(t: &[u64], width: u64, values: &[Option<f64>], how: Fold) -> Points {
    let span = span_of(seconds(t, width), width);
    let mut out: Vec<(f64, Option<f64>)> = Vec::new();
    let mut bucket: Option<u64> = None;
    let mut acc: (f64, usize, Option<f64>) = (0.0, 0, None);
    let flush = |out: &mut Vec<(f64, Option<f64>)>, b: u64, acc: (f64, usize, Option<f64>)| {
        let x = b as f64 * span as f64 + span as f64 / 2.0;
        let v = match how {
            Fold::Mean if acc.1 > 0 => Some(acc.0 / acc.1 as f64),
            Fold::Mean => None,
            Fold::Max => acc.2,
        };
        out.push((x, v));
    };
    for (ti, v) in t.iter().zip(values) {
        let b = ti / span;
        if bucket.is_some_and(|cur| cur != b) {
            flush(&mut out, bucket.unwrap_or(0), acc);
            acc = (0.0, 0, None);
        }
        bucket = Some(b);
        if let Some(v) = v {
            acc.0 += v;
            acc.1 += 1;
            acc.2 = Some(acc.2.map_or(*v, |m: f64| m.max(*v)));
        }
    }
    if let Some(b) = bucket {
        flush(&mut out, b, acc);
    }
    out
}

/// Compact time-axis labels: 45s, 1m30s, 2h, 1h15m.
pub fn axis_time(secs: f64) -> String {
    // Short runs get ticks at half seconds: label whole seconds only.
    if (secs - secs.round()).abs() > 0.01 {
        return String::new();
    }
    let s = secs.max(0.0).round() as u64;
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    match (h, m, sec) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, sec) => format!("{m}m{sec}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

pub fn axis_value(v: f64, unit: YUnit) -> String {
    match unit {
        YUnit::Count if v.fract() != 0.0 => String::new(),
        YUnit::Millis if v >= 1000.0 => format!("{}s", trim(v / 1000.0)),
        YUnit::Millis => format!("{}ms", trim(v)),
        YUnit::Percent => format!("{}%", trim(v)),
        YUnit::Bytes => {
            let (x, unit) = volley_protocols::size::scale(v);
            format!("{}{unit}", trim(x))
        }
        _ if v >= 1e6 => format!("{}M", trim(v / 1e6)),
        _ if v >= 1e3 => format!("{}k", trim(v / 1e3)),
        _ => trim(v),
    }
}

fn trim(v: f64) -> String {
    let s = if v.abs() >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// The chart as an `<svg>` element, with `marks` drawn over it.
pub fn svg_marked(data: &ChartData, title: &str, marks: &[Mark]) -> Result<String, String> {
    let lines: Vec<(&Line, Points)> = data
        .lines
        .iter()
        .map(|l| (l, fold(&data.t, data.width, &l.values, data.fold)))
        .collect();
    let x_max = (seconds(&data.t, data.width) as f64).max(1.0);
    // Ticks fall on round numbers of the unit the x axis counts in: seconds,
    // minutes or hours, by the run's length.
    let x_unit = if x_max > 7200.0 {
        3600.0
    } else if x_max > 600.0 {
        60.0
    } else {
        1.0
    };
    let lines: Vec<(&Line, Points)> = lines
        .into_iter()
        .map(|(l, pts)| (l, pts.into_iter().map(|(x, y)| (x / x_unit, y)).collect()))
        .collect();
    let y_top = lines
        .iter()
        .flat_map(|(_, pts)| pts.iter().filter_map(|p| p.1))
        .fold(0.0f64, f64::max);
    let y_max = match data.unit {
        // Whole numbers of VUs or connections: leave room for the top one.
        YUnit::Count => (y_top * 1.12).ceil().max(1.0),
        _ if y_top > 0.0 => y_top * 1.12,
        _ => 1.0,
    };
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = framed(&root)
            .x_label_area_size(26)
            .y_label_area_size(58)
            .build_cartesian_2d(0f64..x_max / x_unit, 0f64..y_max)
            .map_err(|e| e.to_string())?;
        let grey = RGBColor(100, 100, 100);
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(RGBColor(225, 225, 225))
            .axis_style(RGBColor(170, 170, 170))
            .label_style(("sans-serif", 13).into_font().color(&grey))
            .x_labels(7)
            .y_labels(5)
            .x_label_formatter(&|x| axis_time(*x * x_unit))
            .y_label_formatter(&|y| axis_value(*y, data.unit))
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, (line, pts)) in lines.iter().enumerate() {
            // Lines after the first are dashed, so two that coincide (requests
            // and iterations per second, failed requests and failed checks)
            // both show. The pattern is set after drawing: plotters tags the
            // line with an opacity that `dash_lines` turns into a dasharray.
            let color = match DASHES.get(i.wrapping_sub(1)) {
                Some((tag, _)) => line.color.mix(*tag),
                None => line.color.to_rgba(),
            };
            let style = ShapeStyle {
                color,
                filled: false,
                stroke_width: 2,
            };
            for seg in segments(pts) {
                if seg.len() == 1 {
                    chart
                        .draw_series(std::iter::once(Circle::new(seg[0], 3, style.filled())))
                        .map_err(|e| e.to_string())?;
                } else {
                    chart
                        .draw_series(LineSeries::new(seg, style))
                        .map_err(|e| e.to_string())?;
                }
            }
        }
        for m in marks {
            let x0 = (m.x / x_unit).clamp(0.0, x_max / x_unit);
            let color = m.color;
            match m.until {
                Some(until) => {
                    let x1 = (until / x_unit).clamp(x0, x_max / x_unit);
                    chart
                        .draw_series(std::iter::once(Rectangle::new(
                            [(x0, 0.0), (x1, y_max)],
                            color.mix(0.13).filled(),
                        )))
                        .map_err(|e| e.to_string())?;
                }
                None => {
                    chart
                        .draw_series(LineSeries::new(
                            vec![(x0, 0.0), (x0, y_max)],
                            ShapeStyle {
                                color: color.to_rgba(),
                                filled: false,
                                stroke_width: 2,
                            },
                        ))
                        .map_err(|e| e.to_string())?;
                }
            }
            if !m.label.is_empty() {
                chart
                    .draw_series(std::iter::once(Text::new(
                        m.label.clone(),
                        (x0, y_max),
                        ("sans-serif", 12).into_font().color(&color),
                    )))
                    .map_err(|e| e.to_string())?;
            }
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(named(dash_lines(out), title))
}

/// The SVG with an accessible name, and no fixed size so CSS can scale it.
fn named(svg: String, title: &str) -> String {
    let open = format!(
        "<svg role=\"img\" aria-label=\"{}\" class=\"plot\" ",
        super::esc(title)
    );
    svg.replacen("<svg ", &open, 1)
}

/// Where quantile `q` (0..=1) sits on HdrHistogram's "nines" axis:
/// -log10(1 - q), so 90% is at 1, 99% at 2, 99.9% at 3; the top (q = 1) and
/// anything past it at `top`.
pub fn nines(q: f64, top: f64) -> f64 {
    if q >= 1.0 {
        return top;
    }
    (-(1.0 - q.max(0.0)).log10()).min(top)
}

/// The label of a point of the nines axis: 0%, 50%, 90%, 99%, 99.9%, ...
pub fn nines_label(x: f64) -> String {
    if (x - 2f64.log10()).abs() < 1e-9 {
        return "50%".into();
    }
    if (x - x.round()).abs() > 1e-9 || x < 0.0 {
        return String::new();
    }
    let k = x.round() as usize;
    let pct = 100.0 * (1.0 - 10f64.powi(-(k as i32)));
    format!("{pct:.*}%", k.saturating_sub(2))
}

/// A whole run's distribution of one metric: its value at each quantile.
pub struct Distribution {
    /// (quantile 0..=1, value) with quantiles rising.
    pub points: Vec<(f64, f64)>,
    /// Samples in the histogram: the axis runs to the quantile of its last.
    pub count: u64,
    pub unit: YUnit,
    pub color: RGBColor,
    /// What the y axis counts ("latency").
    pub y_desc: String,
}

impl Distribution {
    /// The right end of the nines axis: one sample in `count` is past
    /// 1 - 1/count, so the axis goes as far as the samples say (at least 90%).
    pub fn top(&self) -> f64 {
        (self.count.max(1) as f64).log10().max(1.0)
    }
}

/// The nines axis: linear in -log10(1 - q), ticks at the given points only.
struct NinesAxis {
    top: f64,
    keys: Vec<f64>,
}

impl Ranged for NinesAxis {
    type FormatOption = plotters::coord::ranged1d::DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let share = (v / self.top).clamp(0.0, 1.0);
        limit.0 + (f64::from(limit.1 - limit.0) * share).round() as i32
    }

    fn key_points<H: plotters::coord::ranged1d::KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.keys.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        0.0..self.top
    }
}

/// The percentile curve as an `<svg>` element: HdrHistogram's classic plot,
/// value against percentile on the nines axis.
pub fn distribution_svg(d: &Distribution, title: &str) -> Result<String, String> {
    let top = d.top();
    let y_top = d.points.iter().map(|p| p.1).fold(0.0f64, f64::max);
    let y_max = if y_top > 0.0 { y_top * 1.12 } else { 1.0 };
    let mut keys = vec![0.0, 2f64.log10()];
    keys.extend((1..=top.floor() as u32).map(f64::from));
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = framed(&root)
            .x_label_area_size(40)
            .y_label_area_size(76)
            .build_cartesian_2d(NinesAxis { top, keys }, 0f64..y_max)
            .map_err(|e| e.to_string())?;
        let grey = RGBColor(100, 100, 100);
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(RGBColor(225, 225, 225))
            .axis_style(RGBColor(170, 170, 170))
            .label_style(("sans-serif", 13).into_font().color(&grey))
            .axis_desc_style(("sans-serif", 13).into_font().color(&grey))
            .x_desc("percentile")
            .y_desc(d.y_desc.as_str())
            .y_labels(5)
            .x_label_formatter(&|x| nines_label(*x))
            .y_label_formatter(&|y| axis_value(*y, d.unit))
            .draw()
            .map_err(|e| e.to_string())?;
        let pts: Vec<(f64, f64)> = d.points.iter().map(|(q, v)| (nines(*q, top), *v)).collect();
        let style = ShapeStyle {
            color: d.color.to_rgba(),
            filled: false,
            stroke_width: 2,
        };
        if pts.len() == 1 {
            chart
                .draw_series(std::iter::once(Circle::new(pts[0], 3, style.filled())))
                .map_err(|e| e.to_string())?;
        } else {
            chart
                .draw_series(LineSeries::new(pts, style))
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(named(out, title))
}

/// Dash patterns of the second, third, ... line, each behind the opacity
/// that marks it in plotters' SVG (no other element is drawn with these).
pub const DASHES: [(f64, &str); 3] = [(0.991, "7 4"), (0.992, "2 3"), (0.993, "9 3 2 3")];

fn dash_lines(svg: String) -> String {
    DASHES.iter().fold(svg, |svg, (tag, dash)| {
        svg.replace(
            &format!("opacity=\"{tag}\""),
            &format!("opacity=\"1\" stroke-dasharray=\"{dash}\""),
        )
    })
}

/// Runs of points without gaps.
fn segments(pts: &[(f64, Option<f64>)]) -> Vec<Vec<(f64, f64)>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    for (x, y) in pts {
        match y {
            Some(y) => cur.push((*x, *y)),
            None if !cur.is_empty() => out.push(std::mem::take(&mut cur)),
            None => {}
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_runs_fold_to_few_points() {
        let t: Vec<u64> = (0..14_400).collect();
        // A one-second spike in a flat line.
        let v: Vec<Option<f64>> = t
            .iter()
            .map(|x| Some(if *x == 5_000 { 1_000.0 } else { 1.0 }))
            .collect();
        assert_eq!(span_for(14_400), 24);
        let mean = fold(&t, 1, &v, Fold::Mean);
        assert!(mean.len() <= MAX_POINTS, "{}", mean.len());
        let max = fold(&t, 1, &v, Fold::Max);
        assert_eq!(max.iter().filter(|p| p.1 == Some(1_000.0)).count(), 1);
        let peak = mean.iter().filter_map(|p| p.1).fold(0.0, f64::max);
        assert!((peak - (1_000.0 + 23.0) / 24.0).abs() < 1e-9, "{peak}");
        // Short runs keep every second.
        let short = fold(&[0, 1, 2], 1, &[Some(1.0), None, Some(3.0)], Fold::Max);
        assert_eq!(short, vec![(0.5, Some(1.0)), (1.5, None), (2.5, Some(3.0))]);
        assert_eq!(segments(&short).len(), 2);
        // Coarse buckets: one point per whole bucket, or per several.
        let coarse = fold(
            &[0, 8, 16],
            8,
            &[Some(1.0), Some(2.0), Some(3.0)],
            Fold::Max,
        );
        assert_eq!(
            coarse,
            vec![(4.0, Some(1.0)), (12.0, Some(2.0)), (20.0, Some(3.0))]
        );
        let t: Vec<u64> = (0..1000).map(|i| i * 16).collect();
        let v = vec![Some(1.0); 1000];
        assert_eq!(span_of(16_000, 16), 32);
        assert!(fold(&t, 16, &v, Fold::Mean).len() <= MAX_POINTS);
    }

    #[test]
    fn axis_labels_read_well() {
        assert_eq!(axis_value(1500.0, YUnit::Millis), "1.5s");
        assert_eq!(axis_value(12.5, YUnit::Millis), "12.5ms");
        assert_eq!(axis_value(2500.0, YUnit::PerSecond), "2.5k");
        assert_eq!(axis_time(90.0), "1m30s");
    }

    #[test]
    fn draws_an_svg() {
        let data = ChartData {
            t: vec![0, 1, 2],
            width: 1,
            lines: vec![Line {
                label: "p95".into(),
                color: P95,
                values: vec![Some(1.0), Some(2.0), Some(1.5)],
            }],
            unit: YUnit::Millis,
            fold: Fold::Max,
        };
        let s = svg_marked(&data, "latency <p95>", &[]).unwrap();
        assert!(s.starts_with("<svg role=\"img\" aria-label=\"latency &lt;p95&gt;\""));
        assert!(s.contains("<polyline"));
        let marks = [
            Mark {
                x: 1.0,
                until: None,
                label: "broke at 30 VUs".into(),
                color: ERROR,
            },
            Mark {
                x: 0.5,
                until: Some(2.0),
                label: "spike 1".into(),
                color: P95,
            },
        ];
        let marked = svg_marked(&data, "latency", &marks).unwrap();
        assert!(marked.contains("broke at 30 VUs") && marked.contains("spike 1"));
        assert!(marked.contains("<rect"));
        assert_eq!(axis_value(45.0 * 1024.0 * 1024.0, YUnit::Bytes), "45MiB");
    }

    #[test]
    fn the_nines_axis_reads_as_percentiles() {
        assert_eq!(nines(0.0, 4.0), 0.0);
        assert!((nines(0.9, 4.0) - 1.0).abs() < 1e-9);
        assert!((nines(0.999, 4.0) - 3.0).abs() < 1e-9);
        assert_eq!(nines(1.0, 4.0), 4.0);
        assert_eq!(nines(0.999_999, 4.0), 4.0);
        let labels: Vec<String> = [0.0, 2f64.log10(), 1.0, 2.0, 3.0, 4.0, 6.0, 1.5]
            .into_iter()
            .map(nines_label)
            .collect();
        assert_eq!(
            labels,
            ["0%", "50%", "90%", "99%", "99.9%", "99.99%", "99.9999%", ""]
        );
        let d = Distribution {
            points: vec![(0.0, 1.0), (0.5, 2.0), (0.99, 5.0), (1.0, 9.0)],
            count: 1000,
            unit: YUnit::Millis,
            color: P95,
            y_desc: "latency".into(),
        };
        assert!((d.top() - 3.0).abs() < 1e-9);
        let s = distribution_svg(&d, "distribution").unwrap();
        assert!(s.starts_with("<svg role=\"img\" aria-label=\"distribution\""));
        assert!(s.contains("<polyline"), "{s}");
        assert!(
            s.contains("\n99.9%\n") && s.contains("\npercentile\n"),
            "{s}"
        );
    }

    #[test]
    fn coinciding_lines_are_both_visible() {
        // Requests and iterations per second: the same numbers every second.
        let same = vec![Some(50.0), Some(52.0), Some(49.0)];
        let data = ChartData {
            t: vec![0, 1, 2],
            width: 1,
            lines: vec![
                Line {
                    label: "requests/s".into(),
                    color: P95,
                    values: same.clone(),
                },
                Line {
                    label: "iterations/s".into(),
                    color: ERROR,
                    values: same,
                },
            ],
            unit: YUnit::PerSecond,
            fold: Fold::Mean,
        };
        let s = svg_marked(&data, "throughput", &[]).unwrap();
        let lines: Vec<&str> = s
            .split("<polyline")
            .skip(1)
            .filter(|l| l.contains("stroke-width=\"2\""))
            .collect();
        assert_eq!(lines.len(), 2, "{s}");
        assert!(!lines[0].contains("stroke-dasharray"), "the first is solid");
        assert!(
            lines[1].contains("stroke-dasharray=\"7 4\""),
            "{}",
            lines[1]
        );
        assert!(!s.contains("0.991"), "the tag is gone");
    }
}
