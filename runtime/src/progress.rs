//! The live progress line: a bar on a terminal, a plain line every few
//! seconds otherwise (CI logs).

use crate::aggregate::Aggregator;
use crate::engine::Observer;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;
use volley_model::point::Point;
use volley_model::stats::Stats;
use volley_protocols::descriptor::Descriptor;
use volley_protocols::duration::format_duration;
use volley_protocols::metrics::Tags;

pub struct Progress {
    bar: Option<ProgressBar>,
    total: Duration,
    last_plain: Duration,
    quiet: bool,
    /// The drivers whose headline figures may be shown, in order of
    /// preference: the first with a metric in the plan is.
    drivers: &'static [Descriptor],
}

impl Progress {
    pub fn new(total: Duration, quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::new(total.as_millis().max(1) as u64);
            b.set_style(
                ProgressStyle::with_template("{spinner} [{bar:24}] {msg}")
                    .expect("static template")
                    .progress_chars("=> "),
            );
            b
        });
        Self {
            bar,
            total,
            last_plain: Duration::ZERO,
            quiet,
            drivers: volley_protocols::drivers::descriptors(),
        }
    }

    fn line(&self, agg: &Aggregator, elapsed: Duration) -> String {
        let reg = &agg.registry;
        let defs = reg.metrics();
        let series = reg.all_series();
        let last = agg.last();
        // The most VUs busy during the last second (a sample at its end
        // misses iterations shorter than a second), and VUs allocated.
        let (mut vus, mut vus_max) = (0.0, 0.0);
        let mut per_metric: Vec<(String, u64)> = Vec::new();
        if let Some(iv) = last {
            for (id, p) in &iv.points {
                let info = &series[*id as usize];
                let name = &*defs[info.metric as usize].name;
                match p {
                    Point::Gauge { max, .. } if name == "vus" && info.tags.is_empty() => vus = *max,
                    Point::Gauge { max, .. } if name == "vus_max" && info.tags.is_empty() => {
                        vus_max = *max
                    }
                    Point::Counter { count } => {
                        match per_metric.iter_mut().find(|(n, _)| n == name) {
                            Some(e) => e.1 += count,
                            None => per_metric.push((name.to_string(), *count)),
                        }
                    }
                    _ => {}
                }
            }
        }
        let mut parts = vec![
            format!(
                "{} / {}",
                format_duration(elapsed.min(self.total.max(elapsed))),
                format_duration(self.total)
            ),
            if vus_max > vus {
                format!("{vus:.0}/{vus_max:.0} VUs")
            } else {
                format!("{vus:.0} VUs")
            },
        ];
        let rates = self.drivers.iter().map(|d| d.headline.throughput.as_str());
        if let Some((name, n)) = rates
            .chain(["iterations"])
            .find_map(|m| per_metric.iter().find(|(n, _)| n == m).cloned())
        {
            // http_reqs -> "http req/s", webhook_deliveries -> "webhook delivery/s".
            let unit = match name.strip_suffix("ies") {
                Some(stem) => format!("{stem}y"),
                None => name.trim_end_matches('s').to_string(),
            };
            parts.push(format!("{n} {}/s", unit.replace('_', " ")));
        }
        // The first driver's latency and failures that the plan records.
        let first = |metric: fn(&'static Descriptor) -> &'static str| {
            self.drivers
                .iter()
                .find(|d| reg.metric_id(metric(d)).is_some())
        };
        if let Some(d) = first(|d| &d.headline.latency) {
            let slot = agg.total(&d.headline.latency, &Tags::default());
            let st = Stats::new(
                volley_protocols::metrics::MetricKind::Trend,
                volley_protocols::metrics::Unit::Time,
                &slot,
                elapsed,
            );
            if st.count > 0 {
                parts.push(format!(
                    "p95 {}",
                    volley_model::units::ms(st.quantile(95.0))
                ));
            }
        }
        if let Some(d) = first(|d| &d.headline.errors) {
            let slot = agg.total(&d.headline.errors, &Tags::default());
            if let volley_protocols::metrics::Slot::Rate { hits, total } = slot
                && total > 0
            {
                parts.push(format!(
                    "{} {:.2}%",
                    d.headline.errors_word,
                    hits as f64 * 100.0 / total as f64
                ));
            }
        }
        if let Some(m) = crate::monitor::live_text(agg) {
            parts.push(m);
        }
        parts.join(" | ")
    }
}

impl Observer for Progress {
    fn on_interval(&mut self, agg: &Aggregator, elapsed: Duration) -> Option<String> {
        if self.quiet {
            return None;
        }
        let line = self.line(agg, elapsed);
        match &self.bar {
            Some(b) => {
                b.set_position(elapsed.as_millis() as u64);
                b.set_message(line);
                b.tick();
            }
            None => {
                if elapsed >= self.last_plain + Duration::from_secs(5) {
                    self.last_plain = elapsed;
                    eprintln!("running: {line}");
                }
            }
        }
        None
    }

    fn on_end(&mut self, _agg: &Aggregator, _elapsed: Duration) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

/// `--start-at`: wait for the moment, counting down in the progress line
/// (a plain line every 10 s when stderr is not a terminal). Returns early
/// when `stop` is cancelled.
pub async fn countdown(
    at: std::time::SystemTime,
    quiet: bool,
    stop: &tokio_util::sync::CancellationToken,
) {
    let when = humantime::format_rfc3339_seconds(at);
    let wait = match at.duration_since(std::time::SystemTime::now()) {
        Ok(w) => w,
        Err(late) => {
            let late = late.duration();
            if late > Duration::from_secs(1) {
                eprintln!(
                    "warning: --start-at {when} passed {} ago: starting now, out of step with any other part started for that moment",
                    format_duration(Duration::from_millis(late.as_millis() as u64))
                );
            }
            return;
        }
    };
    let deadline = tokio::time::Instant::now() + wait;
    let left = || {
        let d = deadline.saturating_duration_since(tokio::time::Instant::now());
        // Whole seconds, rounded up: "starts in 1s" until the moment.
        format_duration(Duration::from_secs(d.as_millis().div_ceil(1000) as u64))
    };
    let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
        let b = ProgressBar::new_spinner();
        b.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("static template"));
        b
    });
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut last_plain: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break,
            _ = stop.cancelled() => break,
            _ = tick.tick() => {
                let msg = format!("waiting for --start-at {when}: starts in {}", left());
                match &bar {
                    Some(b) => b.set_message(msg),
                    None if !quiet && last_plain.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) => {
                        last_plain = Some(tokio::time::Instant::now());
                        eprintln!("{msg}");
                    }
                    None => {}
                }
            }
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::Progress;
    use crate::aggregate::{Aggregator, Flush};
    use std::time::Duration;
    use volley_protocols::metrics::{MetricKind, Recorder, Registry, Tags, Unit};

    /// One second of a chat plan: 10 messages sent, latencies 1..=20 ms,
    /// one session dropped of four.
    #[test]
    fn the_line_shows_the_most_vus_busy_in_the_second_of_those_allocated() {
        let reg = Registry::new();
        let mut agg = Aggregator::new(reg.clone(), 1, &["api".to_string()]);
        let rec = Recorder::new(reg.clone());
        // No VU busy at the flush, three at once during the second, ten pooled.
        let busy = crate::aggregate::VuSample {
            now: 0,
            low: 0,
            peak: 3,
        };
        agg.push(Flush {
            worker: 0,
            index: 0,
            shard: rec.take(),
            active: vec![busy],
            allocated: vec![crate::aggregate::VuSample::steady(10)],
            last: false,
        });
        let line = Progress::new(Duration::from_secs(10), true).line(&agg, Duration::from_secs(1));
        assert!(line.ends_with("| 3/10 VUs"), "{line}");
    }

    #[test]
    fn a_websocket_plan_shows_its_message_latency_and_drops() {
        let reg = Registry::new();
        let tags = Tags::new([("scenario", "chat")]);
        let sent = reg.metric("ws_msgs_sent", MetricKind::Counter, Unit::Default);
        let latency = reg.metric("ws_msg_latency", MetricKind::Trend, Unit::Time);
        let drops = reg.metric("ws_drop_rate", MetricKind::Rate, Unit::Default);
        let mut agg = Aggregator::new(reg.clone(), 1, &["chat".to_string()]);
        let rec = Recorder::new(reg.clone());
        rec.add(reg.series(sent, &tags), 10);
        for ms in 1..=20 {
            rec.time(reg.series(latency, &tags), Duration::from_millis(ms));
        }
        for hit in [true, false, false, false] {
            rec.rate(reg.series(drops, &tags), hit);
        }
        agg.push(Flush {
            worker: 0,
            index: 0,
            shard: rec.take(),
            active: vec![crate::aggregate::VuSample::steady(4)],
            allocated: vec![crate::aggregate::VuSample::steady(4)],
            last: true,
        });
        let line = Progress::new(Duration::from_secs(10), true).line(&agg, Duration::from_secs(1));
        assert!(line.contains("10 ws msgs sent/s"), "{line}");
        assert!(line.contains("p95 19"), "{line}");
        assert!(line.contains("drops 25.00%"), "{line}");
        assert!(!line.contains("errors"), "{line}");
    }
}
