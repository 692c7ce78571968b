//! A scenario's latency distribution over the whole run, from the merged
//! HdrHistograms the summary carries: the percentile curve on the "nines"
//! axis (HdrHistogram's classic plot), and the percentiles people quote.

use super::chart::{self, Distribution, YUnit};
use super::esc;
use std::fmt::Write as _;
use volley_model::judge::merged;
use volley_model::summary::SeriesRecord;
use volley_protocols::descriptor::Descriptor;
use volley_protocols::metrics::{Slot, Tags, Unit, trend_scale};

/// Points per halving of the distance to 100%: HdrHistogram's default for
/// its percentile output.
const TICKS_PER_HALF: u32 = 5;

/// At most this many points per curve (5 per halving reach 1 - 2^-800).
const MAX_POINTS: usize = 4096;

/// The percentiles listed under the curve, as far as the samples reach.
const QUOTED: [(f64, &str); 5] = [
    (50.0, "p50"),
    (90.0, "p90"),
    (99.0, "p99"),
    (99.9, "p99.9"),
    (99.99, "p99.99"),
];

/// The metric a scenario's distribution shows: its driver's headline
/// latency, else the first latency metric of any driver it recorded, else
/// `iteration_duration`.
fn metric_of<'a>(
    has: &dyn Fn(&str) -> bool,
    driver: &str,
    drivers: &'a [Descriptor],
) -> Option<(&'a str, &'a str)> {
    let own = drivers.iter().find(|d| d.name == driver);
    let headline = own.and_then(|d| {
        let m = d.headline.latency.as_str();
        let label = d
            .latency
            .iter()
            .find(|l| l.metric == m)
            .map_or(m, |l| l.label.as_str());
        has(m).then_some((m, label))
    });
    headline
        .or_else(|| {
            drivers
                .iter()
                .flat_map(|d| &d.latency)
                .find(|l| has(&l.metric))
                .map(|l| (l.metric.as_str(), l.label.as_str()))
        })
        .or_else(|| {
            has("iteration_duration").then_some(("iteration_duration", "Iteration duration"))
        })
}

/// The distribution chart of scenario `sc` as a `<figure>`, or nothing when
/// it recorded no latency.
pub fn figure(
    series: &[(SeriesRecord, Slot)],
    sc: &str,
    driver: &str,
    drivers: &[Descriptor],
) -> Result<Option<String>, String> {
    let scoped = Tags::new([("scenario", sc)]);
    let trend = |m: &str| match merged(series, m, &scoped) {
        Some(t) => match t.slot {
            Slot::Trend(h) if !h.is_empty() => Some((t.unit, h)),
            _ => None,
        },
        None => None,
    };
    let Some((metric, label)) = metric_of(&|m| trend(m).is_some(), driver, drivers) else {
        return Ok(None);
    };
    let Some((unit, h)) = trend(metric) else {
        return Ok(None);
    };
    let scale = trend_scale(unit);
    let value = |v: u64| v as f64 / scale;
    let mut points: Vec<(f64, f64)> = vec![(0.0, value(h.value_at_quantile(0.0)))];
    // About TICKS_PER_HALF points per halving of the distance to 100%; a
    // bound, should a damaged histogram make the iterator step forever.
    for it in h.iter_quantiles(TICKS_PER_HALF).take(MAX_POINTS) {
        let q = it.quantile_iterated_to();
        if points.last().is_some_and(|p| p.0 >= q) {
            continue;
        }
        points.push((q, value(it.value_iterated_to())));
    }
    if points.last().is_some_and(|p| p.0 < 1.0) {
        points.push((1.0, value(h.max())));
    }
    let count = h.len();
    let y = if unit == Unit::Time {
        YUnit::Millis
    } else {
        YUnit::Plain
    };
    let d = Distribution {
        points,
        count,
        unit: y,
        color: chart::PALETTE[0],
        y_desc: if unit == Unit::Time {
            "latency".into()
        } else {
            metric.into()
        },
    };
    let what = if unit == Unit::Time {
        "Latency distribution"
    } else {
        "Distribution"
    };
    let title = format!("{what}: {label} ({metric})");
    let id = format!("chart-{}-distribution", super::slug(sc));
    let svg = chart::distribution_svg(&d, &title).map_err(|e| format!("chart {id}: {e}"))?;
    let shown = |v: f64| match y {
        YUnit::Millis => volley_model::units::value(unit, v),
        _ => chart::axis_value(v, y),
    };
    let mut html = format!(
        "<figure class=\"chart\" id=\"{}\" data-metric=\"{}\" data-count=\"{count}\" data-points=\"{}\"><figcaption><strong>{}</strong><span class=\"legend\">",
        esc(&id),
        esc(metric),
        d.points
            .iter()
            .map(|(q, v)| format!("{q}:{v}"))
            .collect::<Vec<_>>()
            .join(" "),
        esc(&title)
    );
    // The quoted percentiles, as far as the samples reach: p99.99 of 500
    // samples would only repeat the largest.
    for (p, name) in QUOTED {
        if p > 50.0 && (count as f64) < 100.0 / (100.0 - p) {
            break;
        }
        let v = value(h.value_at_quantile(p / 100.0));
        let _ = write!(
            html,
            "<span class=\"key\" data-p=\"{p}\" data-value=\"{v}\">{name} <b>{}</b></span>",
            esc(&shown(v))
        );
    }
    let max = value(h.max());
    let _ = write!(
        html,
        "<span class=\"key\" data-p=\"100\" data-value=\"{max}\">max <b>{}</b></span><span class=\"key\">samples <b>{count}</b></span></span></figcaption>{svg}<p class=\"note\">Whole run, all of the scenario's samples (HdrHistogram, 3 significant digits). The x axis is the share of samples at or below the value, in nines: each step right is ten times rarer.</p></figure>",
        esc(&shown(max))
    );
    Ok(Some(html))
}
