//! The live watch: an engine observer over sliding windows of the run's
//! exact totals, finding breaking points and recoveries as intervals
//! complete, and turning them into answers and series once the run is over.

use super::window::Window;
use super::{ERROR_SLACK, P95_SLACK_MS};
use crate::aggregate::Aggregator;
use crate::engine::Observer;
use std::time::Duration;
use std::time::SystemTime;
use volley_config::capacity::{BreakingSpec, RecoverySpec};
use volley_model::capacity::{BreakingPoint, CapacitySummary, Recovery, WindowStats};
use volley_model::metrics::MetricTable;
use volley_model::schedule::{Executor, Spike};
use volley_model::schedule::{level_at, level_unit};
use volley_model::stats::Stats;
use volley_model::summary::SeriesRecord;
use volley_model::threshold::Agg;
use volley_model::units::level_text;
use volley_protocols::duration::format_duration;
use volley_protocols::metrics::new_histogram;
use volley_protocols::metrics::{MetricKind, Slot, Tags, Unit};

struct Signal {
    metric: String,
    kind: MetricKind,
    unit: Unit,
    filter: Tags,
    window: Window,
}

impl Signal {
    fn new(metrics: &MetricTable, metric: &str, filter: Tags, keep: u64) -> Self {
        let (kind, unit) = metrics
            .get(metric)
            .map(|d| (d.kind, d.unit))
            .unwrap_or((MetricKind::Counter, Unit::Default));
        Self {
            metric: metric.to_string(),
            kind,
            unit,
            filter,
            window: Window::new(keep),
        }
    }

    fn push(&mut self, agg: &Aggregator, k: u64) {
        // The run's total so far, as the judge adds it up (windows subtract).
        self.window.push(k, agg.total(&self.metric, &self.filter));
    }

    fn stats(&self, secs: u64) -> Stats {
        let (slot, covered) = self.window.last(secs);
        Stats::new(
            self.kind,
            self.unit,
            &slot,
            Duration::from_secs(covered.max(1)),
        )
    }
}

fn secs_of(d: Duration) -> u64 {
    d.as_secs_f64().ceil().max(1.0) as u64
}

struct BreakWatch {
    spec: BreakingSpec,
    signal: Signal,
    /// (level, whether that second alone stayed within the limit), until the break.
    seconds: Vec<(f64, bool)>,
    crossed: Option<(u64, f64, Option<f64>)>,
    peak: f64,
}

impl BreakWatch {
    fn eval(&self, s: &Stats) -> (Option<bool>, Option<f64>) {
        let v = self.spec.agg.of(s);
        (v.map(|v| self.spec.op.holds(v, self.spec.value)), v)
    }
}

struct SpikeWatch {
    spike: Spike,
    /// Absolute seconds from the run's start.
    start: f64,
    end: f64,
    deadline: f64,
    baseline: Option<WindowStats>,
    last: Option<WindowStats>,
    done: Option<Recovery>,
}

struct RecoveryWatch {
    spec: RecoverySpec,
    latency: Signal,
    errors: Option<Signal>,
    spikes: Vec<SpikeWatch>,
}

impl RecoveryWatch {
    fn current(&self) -> WindowStats {
        let secs = secs_of(self.spec.window);
        let lat = self.latency.stats(secs);
        let err = self.errors.as_ref().map(|e| e.stats(secs));
        let (_, covered) = self.latency.window.last(secs);
        WindowStats {
            p95_ms: (lat.count > 0).then(|| lat.quantile(95.0)),
            error_rate: err.filter(|e| e.total > 0).map(|e| e.rate),
            samples: lat.count,
            seconds: covered as f64,
        }
    }
}

fn within(base: &WindowStats, cur: &WindowStats, tol: f64) -> bool {
    if cur.samples == 0 {
        return false;
    }
    let p95_ok = match (base.p95_ms, cur.p95_ms) {
        (Some(b), Some(c)) => c <= b + (b * tol).max(P95_SLACK_MS),
        (Some(_), None) => false,
        (None, _) => true,
    };
    let err_ok = match (base.error_rate, cur.error_rate) {
        (Some(b), Some(c)) => c <= b + (b * tol).max(ERROR_SLACK),
        (None, Some(c)) => c <= ERROR_SLACK,
        _ => true,
    };
    p95_ok && err_ok
}

struct ScenarioWatch {
    name: String,
    exec: Executor,
    unit: String,
    start: f64,
    duration: f64,
    breaks: Vec<BreakWatch>,
    recovery: Option<RecoveryWatch>,
}

/// The engine observer that finds breaking points and recoveries.
pub struct Watch {
    started: Option<SystemTime>,
    last: Option<u64>,
    scenarios: Vec<ScenarioWatch>,
}

impl Watch {
    pub fn new(plan: &volley_config::plan::Plan) -> Self {
        let registry = &plan.metrics;
        let mut scenarios = Vec::new();
        for sc in &plan.scenarios {
            let cap = &sc.capacity;
            if cap.is_empty() {
                continue;
            }
            let start = sc.start_time.as_secs_f64();
            let duration = sc.exec.duration().as_secs_f64();
            let breaks = cap
                .breaking
                .iter()
                .map(|b| BreakWatch {
                    signal: Signal::new(registry, &b.metric, b.filter.clone(), secs_of(b.window)),
                    spec: b.clone(),
                    seconds: Vec::new(),
                    crossed: None,
                    peak: 0.0,
                })
                .collect();
            let recovery = cap.recovery.as_ref().map(|r| {
                let scoped = Tags::new([("scenario", sc.name.as_str())]);
                let keep = secs_of(r.window);
                let starts: Vec<f64> = cap
                    .spikes
                    .iter()
                    .map(|s| start + s.start.as_secs_f64())
                    .collect();
                RecoveryWatch {
                    latency: Signal::new(registry, &r.latency, scoped.clone(), keep),
                    errors: r
                        .errors
                        .as_ref()
                        .map(|e| Signal::new(registry, e, scoped.clone(), keep)),
                    spikes: cap
                        .spikes
                        .iter()
                        .enumerate()
                        .map(|(i, s)| SpikeWatch {
                            spike: s.clone(),
                            start: starts[i],
                            end: start + s.end.as_secs_f64(),
                            deadline: starts.get(i + 1).copied().unwrap_or(start + duration),
                            baseline: None,
                            last: None,
                            done: None,
                        })
                        .collect(),
                    spec: r.clone(),
                }
            });
            scenarios.push(ScenarioWatch {
                name: sc.name.clone(),
                unit: level_unit(&sc.exec),
                exec: sc.exec.clone(),
                start,
                duration,
                breaks,
                recovery,
            });
        }
        Self {
            started: None,
            last: None,
            scenarios,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.scenarios.is_empty()
    }

    /// Take in interval `k` (all intervals up to it are complete).
    fn step(&mut self, agg: &Aggregator, k: u64) -> Option<String> {
        let mut abort = None;
        let end_k = k as f64 + 1.0;
        for sw in &mut self.scenarios {
            let t = k as f64 + 0.5 - sw.start;
            if t < 0.0 {
                continue;
            }
            let active = t <= sw.duration;
            let level = level_at(&sw.exec, t.min(sw.duration)).unwrap_or(0.0);
            for b in &mut sw.breaks {
                if b.crossed.is_some() || !active {
                    continue;
                }
                b.signal.push(agg, k);
                b.peak = b.peak.max(level);
                let win = b.signal.stats(secs_of(b.spec.window));
                let (crossed, observed) = b.eval(&win);
                if crossed == Some(true) {
                    b.crossed = Some((k, level, observed));
                    if b.spec.abort && abort.is_none() {
                        abort = Some(format!(
                            "scenario {} reached its breaking point at {} {} ({} {} over {})",
                            sw.name,
                            level_text(level),
                            sw.unit,
                            b.spec.signal,
                            b.spec.expr,
                            format_duration(b.spec.window)
                        ));
                    }
                } else {
                    let one = b.signal.stats(1);
                    let ok = b.eval(&one).0 == Some(false);
                    b.seconds.push((level, ok));
                }
            }
            let Some(r) = &mut sw.recovery else { continue };
            if r.spikes.iter().all(|s| s.done.is_some()) {
                continue;
            }
            r.latency.push(agg, k);
            if let Some(e) = &mut r.errors {
                e.push(agg, k);
            }
            let cur = r.current();
            let tol = r.spec.tolerance;
            for (i, s) in r.spikes.iter_mut().enumerate() {
                if s.done.is_some() {
                    continue;
                }
                if end_k <= s.start + 1e-9 {
                    s.baseline = Some(cur.clone());
                    continue;
                }
                if end_k < s.end - 1e-9 {
                    continue;
                }
                if end_k > s.deadline + 1e-9 {
                    let watched = (s.deadline - s.end).max(0.0);
                    s.done = Some(verdict(&sw.name, i, s, &r.spec, None, watched));
                    continue;
                }
                s.last = Some(cur.clone());
                let ok = s
                    .baseline
                    .as_ref()
                    .filter(|b| b.samples > 0)
                    .is_some_and(|b| within(b, &cur, tol));
                if ok {
                    let window_start = end_k - cur.seconds;
                    let time = (window_start - s.end).max(0.0);
                    s.done = Some(verdict(&sw.name, i, s, &r.spec, Some(time), time));
                }
            }
        }
        abort
    }

    /// The answers, once the run is over.
    pub fn finish(&mut self, agg: &Aggregator) -> (CapacitySummary, Vec<(SeriesRecord, Slot)>) {
        if let Some(iv) = agg.last()
            && self.last.is_none_or(|l| iv.index > l)
        {
            self.last = Some(iv.index);
            self.step(agg, iv.index);
        }
        let end = self.last.map(|k| k as f64 + 1.0).unwrap_or(0.0);
        let started = self.started.unwrap_or_else(SystemTime::now);
        let mut out = CapacitySummary::default();
        let mut series = Vec::new();
        for sw in &mut self.scenarios {
            let scoped = Tags::new([("scenario", sw.name.as_str())]);
            let mut first: Option<(u64, f64, Option<f64>)> = None;
            for b in &sw.breaks {
                let (held, broke_at, at_s, observed) = match b.crossed {
                    Some((k, level, observed)) => {
                        let held = b
                            .seconds
                            .iter()
                            .filter(|(l, ok)| *ok && *l < level)
                            .map(|(l, _)| *l)
                            .fold(None, |m: Option<f64>, l| Some(m.map_or(l, |m| m.max(l))));
                        if first.is_none_or(|f| k < f.0) {
                            first = Some((k, level, held));
                        }
                        (held, Some(level), Some(k as f64), observed)
                    }
                    None => (
                        (b.peak > 0.0 || !b.seconds.is_empty()).then_some(b.peak),
                        None,
                        None,
                        None,
                    ),
                };
                let observed_text = observed
                    .map(|v| observed_text(&b.spec, b.signal.kind, b.signal.unit, v))
                    .unwrap_or_default();
                out.breaking_points.push(BreakingPoint {
                    scenario: sw.name.clone(),
                    signal: format!("{}{}", b.spec.metric, b.spec.filter),
                    expr: b.spec.expr.clone(),
                    window_s: b.spec.window.as_secs_f64(),
                    unit: sw.unit.clone(),
                    broke: b.crossed.is_some(),
                    broke_at,
                    at_s,
                    at: at_s.map(|s| {
                        humantime::format_rfc3339_seconds(
                            started + volley_protocols::duration::secs(s),
                        )
                        .to_string()
                    }),
                    observed,
                    observed_text,
                    held,
                    peak: b.peak,
                    aborted: b.spec.abort && b.crossed.is_some(),
                });
            }
            if !sw.breaks.is_empty() {
                let gauge = |v: f64| Slot::Gauge {
                    last: v,
                    min: v,
                    max: v,
                };
                let held = match first {
                    Some((_, _, held)) => held,
                    None => sw.breaks.iter().map(|b| b.peak).reduce(f64::max),
                };
                if let Some(h) = held {
                    push_series(
                        &mut series,
                        "capacity_held",
                        Unit::Default,
                        &scoped,
                        gauge(h),
                    );
                }
                if let Some((_, level, _)) = first {
                    push_series(
                        &mut series,
                        "capacity_broke",
                        Unit::Default,
                        &scoped,
                        gauge(level),
                    );
                }
            }
            let Some(r) = &mut sw.recovery else { continue };
            for (i, s) in r.spikes.iter_mut().enumerate() {
                let done = match s.done.take() {
                    Some(d) => d,
                    // The run ended after the spike but before a verdict.
                    None if end >= s.end - 1e-9 => {
                        let watched = (end.min(s.deadline) - s.end).max(0.0);
                        verdict(&sw.name, i, s, &r.spec, None, watched)
                    }
                    // The run never reached the end of this spike.
                    None => continue,
                };
                let mut h = new_histogram();
                let micros = (done.recovery_time_s.unwrap_or(done.watched_s) * 1e6) as u64;
                let _ = h.record(micros);
                let tags = scoped
                    .with("spike", (i + 1).to_string())
                    .with("recovered", done.recovered.to_string());
                push_series(
                    &mut series,
                    "recovery_time",
                    Unit::Time,
                    &tags,
                    Slot::Trend(Box::new(h)),
                );
                out.recoveries.push(done);
            }
        }
        (out, series)
    }
}

/// The recovery answer for spike `i` (0-based): recovered after `time`
/// seconds, or (`None`) not within `watched` seconds.
fn verdict(
    scenario: &str,
    i: usize,
    s: &SpikeWatch,
    spec: &RecoverySpec,
    time: Option<f64>,
    watched: f64,
) -> Recovery {
    Recovery {
        scenario: scenario.to_string(),
        spike: i + 1,
        stages: s.spike.stages,
        start_s: s.start,
        end_s: s.end,
        window_s: spec.window.as_secs_f64(),
        tolerance: spec.tolerance,
        latency: spec.latency.clone(),
        errors: spec.errors.clone(),
        baseline: s.baseline.clone().filter(|b| b.samples > 0),
        recovered: time.is_some(),
        recovery_time_s: time,
        watched_s: watched,
        last: s.last.clone(),
    }
}

fn push_series(
    out: &mut Vec<(SeriesRecord, Slot)>,
    metric: &str,
    unit: Unit,
    tags: &Tags,
    slot: Slot,
) {
    if let Some(r) = SeriesRecord::from_slot(metric, unit, tags, &slot) {
        out.push((r, slot));
    }
}

fn observed_text(spec: &BreakingSpec, kind: MetricKind, unit: Unit, v: f64) -> String {
    let agg = spec
        .expr
        .split(['<', '>', '=', '!'])
        .next()
        .unwrap_or("")
        .trim();
    let shown = match spec.agg {
        Agg::Rate if kind == MetricKind::Rate => format!("{:.2}%", v * 100.0),
        Agg::Rate => format!("{v:.2}/s"),
        Agg::Count => volley_model::units::value(Unit::Default, v),
        _ => volley_model::units::value(unit, v),
    };
    format!("{agg}={shown}")
}

impl Observer for Watch {
    fn on_start(&mut self, started: SystemTime) {
        self.started = Some(started);
    }

    fn on_interval(&mut self, agg: &Aggregator, _elapsed: Duration) -> Option<String> {
        let k = agg.last()?.index;
        // Several intervals completing at once are taken as one step.
        if self.last.is_some_and(|l| l >= k) {
            return None;
        }
        self.last = Some(k);
        self.step(agg, k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_tolerance_has_a_floor() {
        let base = WindowStats {
            p95_ms: Some(0.3),
            error_rate: Some(0.0),
            samples: 100,
            seconds: 10.0,
        };
        let mut cur = base.clone();
        cur.p95_ms = Some(1.2);
        assert!(within(&base, &cur, 0.1), "within 1 ms of a fast baseline");
        cur.p95_ms = Some(1.4);
        assert!(!within(&base, &cur, 0.1));
        cur.p95_ms = Some(0.3);
        cur.error_rate = Some(0.0005);
        assert!(within(&base, &cur, 0.1));
        cur.error_rate = Some(0.01);
        assert!(!within(&base, &cur, 0.1));
        cur.error_rate = Some(0.0);
        cur.samples = 0;
        assert!(!within(&base, &cur, 0.1), "no traffic is no evidence");
    }
}
