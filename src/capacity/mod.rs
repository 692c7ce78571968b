//! Capacity answers: at what level does the target break (`breaking_point`
//! on a ramping scenario), how fast does it recover after a spike (stages
//! marked `spike = true`), and does it leak (`slope` thresholds on gauges,
//! see [`slope`]). Monitors that feed the gauges live in `crate::monitor`.
//!
//! Breaking points and recoveries are watched live, as an engine observer
//! over sliding windows of the run's exact totals (histograms subtract), so
//! `abort = true` can stop the run at the breaking point with the answer
//! kept. After the run their answers become summary fields and metrics
//! (`capacity_held`, `capacity_broke`, `recovery_time`) that thresholds judge.

pub mod slope;
pub mod window;

use crate::aggregate::Aggregator;
use crate::engine::Observer;
use crate::plan::executor::{Executor, Stage, ramp_value};
use crate::stats::Stats;
use crate::summary::SeriesRecord;
use crate::threshold::{self, Agg, Op, Threshold};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::ops::Range;
use std::time::{Duration, SystemTime};
use toml::Spanned;
use volley_protocols::ConfigError;
use volley_protocols::duration::{Dur, format_duration};
use volley_protocols::metrics::{
    MetricId, MetricKind, Registry, Slot, Tags, Unit, new_histogram,
};
use window::Window;

/// Metrics whose values exist only once the run is over.
pub const POST_RUN_METRICS: &[&str] = &["recovery_time", "capacity_held", "capacity_broke"];

const DEFAULT_WINDOW: Duration = Duration::from_secs(10);
const DEFAULT_TOLERANCE: f64 = 0.10;
/// Below these, a difference from the baseline is noise, not degradation:
/// p95 within 1 ms, error rate within 0.1 percentage points.
const P95_SLACK_MS: f64 = 1.0;
const ERROR_SLACK: f64 = 0.001;

/// (latency metric, error-rate metric) each driver records, in order of preference.
const RECOVERY_SIGNALS: &[(&str, &str)] = &[
    ("http_req_duration", "http_req_failed"),
    ("webhook_duration", "webhook_failed"),
    ("pg_query_duration", "pg_query_failed"),
    ("ws_msg_latency", "ws_drop_rate"),
];

/// When the target counts as broken: `expr` over `signal` in the last `window`.
#[derive(Clone, Debug)]
pub struct BreakingSpec {
    /// As written, e.g. `http_req_failed` or `http_req_duration{name:login}`.
    pub signal: String,
    pub metric: String,
    /// The written filter plus the scenario.
    pub filter: Tags,
    pub expr: String,
    pub agg: Agg,
    pub op: Op,
    pub value: f64,
    pub window: Duration,
    pub abort: bool,
}

/// How a spike's recovery is judged.
#[derive(Clone, Debug)]
pub struct RecoverySpec {
    pub window: Duration,
    /// Relative: 0.1 = p95 and error rate within 10% of the pre-spike window.
    pub tolerance: f64,
    pub latency: String,
    pub errors: Option<String>,
}

/// One spike: consecutive stages marked `spike = true`.
#[derive(Clone, Debug, PartialEq)]
pub struct Spike {
    /// 1-based stage numbers, first and last.
    pub stages: (usize, usize),
    /// From the scenario's start.
    pub start: Duration,
    pub end: Duration,
}

#[derive(Clone, Debug, Default)]
pub struct ScenarioCapacity {
    pub breaking: Vec<BreakingSpec>,
    pub spikes: Vec<Spike>,
    pub recovery: Option<RecoverySpec>,
}

impl ScenarioCapacity {
    pub fn is_empty(&self) -> bool {
        self.breaking.is_empty() && self.spikes.is_empty()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BreakingRaw {
    signal: String,
    expr: String,
    window: Option<Dur>,
    abort: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecoveryRaw {
    window: Option<Dur>,
    tolerance: Option<toml::Value>,
    latency: Option<String>,
    errors: Option<String>,
}

/// The scenario's `breaking_point` and `recovery` keys and its spike stages,
/// checked against the metrics its driver records.
pub fn parse_scenario(
    scenario: &str,
    exec: &Executor,
    breaking_point: Option<&Spanned<toml::Value>>,
    recovery: Option<&Spanned<toml::Value>>,
    registry: &Registry,
) -> Result<ScenarioCapacity, ConfigError> {
    let mut out = ScenarioCapacity::default();
    if let Some(bp) = breaking_point {
        let span = bp.span();
        let items: Vec<toml::Value> = match bp.get_ref() {
            toml::Value::Array(a) => a.clone(),
            v => vec![v.clone()],
        };
        if items.is_empty() {
            return Err(ConfigError::at(
                span,
                "breaking_point is empty; write e.g. { signal = \"http_req_failed\", expr = \"rate>0.05\" }",
            ));
        }
        for item in items {
            out.breaking
                .push(parse_breaking(scenario, item, span.clone(), registry)?);
        }
    }
    out.spikes = spikes_of(exec);
    if let Some(r) = recovery {
        if out.spikes.is_empty() {
            return Err(ConfigError::at(
                r.span(),
                "recovery is measured after a spike: mark a stage with spike = true",
            ));
        }
        out.recovery = Some(parse_recovery(Some(r), registry)?);
    } else if !out.spikes.is_empty() {
        out.recovery = Some(parse_recovery(None, registry)?);
    }
    Ok(out)
}

fn parse_breaking(
    scenario: &str,
    item: toml::Value,
    span: Range<usize>,
    registry: &Registry,
) -> Result<BreakingSpec, ConfigError> {
    let err = |m: String| ConfigError::at(span.clone(), m);
    let raw: BreakingRaw = item.try_into().map_err(|e: toml::de::Error| {
        err(format!(
            "breaking_point: {}; write {{ signal = \"http_req_failed\", expr = \"rate>0.05\", window = \"10s\", abort = false }}",
            e.message().trim()
        ))
    })?;
    let (metric, filter) =
        threshold::parse_key(&raw.signal).map_err(|e| err(format!("breaking_point signal: {e}")))?;
    let (agg, op, value) =
        threshold::parse_expr(&raw.expr).map_err(|e| err(format!("breaking_point expr: {e}")))?;
    if matches!(agg, Agg::Slope { .. }) {
        return Err(err(
            "breaking_point expr: a slope is judged over the whole run, not a window".into(),
        ));
    }
    let id = registry.metric_id(&metric).ok_or_else(|| {
        err(format!(
            "breaking_point signal: no metric named {metric:?} in this scenario; use e.g. http_req_failed or http_req_duration"
        ))
    })?;
    let kind = registry.metrics()[id as usize].kind;
    let probe = Threshold {
        source: raw.expr.clone(),
        agg,
        op,
        value,
        abort_on_fail: false,
        delay_abort_eval: Duration::ZERO,
        span: span.clone(),
    };
    threshold::check_fits(&probe, kind, &metric)?;
    let window = raw.window.map(|d| d.0).unwrap_or(DEFAULT_WINDOW);
    if window < Duration::from_secs(1) {
        return Err(err(
            "breaking_point window: at least 1s (the run is measured per second)".into(),
        ));
    }
    Ok(BreakingSpec {
        signal: raw.signal.trim().to_string(),
        metric,
        filter: filter.with("scenario", scenario),
        expr: raw.expr.trim().to_string(),
        agg,
        op,
        value,
        window,
        abort: raw.abort.unwrap_or(false),
    })
}

fn parse_recovery(
    r: Option<&Spanned<toml::Value>>,
    registry: &Registry,
) -> Result<RecoverySpec, ConfigError> {
    let span = r.map(Spanned::span).unwrap_or(0..0);
    let err = |m: String| ConfigError::at(span.clone(), m);
    let raw = match r {
        Some(v) => v.get_ref().clone().try_into().map_err(|e: toml::de::Error| {
            err(format!(
                "recovery: {}; write {{ window = \"10s\", tolerance = \"10%\" }}",
                e.message().trim()
            ))
        })?,
        None => RecoveryRaw {
            window: None,
            tolerance: None,
            latency: None,
            errors: None,
        },
    };
    let window = raw.window.map(|d| d.0).unwrap_or(DEFAULT_WINDOW);
    if window < Duration::from_secs(1) {
        return Err(err("recovery window: at least 1s".into()));
    }
    let tolerance = match &raw.tolerance {
        None => DEFAULT_TOLERANCE,
        Some(toml::Value::Float(f)) => *f,
        Some(toml::Value::Integer(i)) => *i as f64,
        Some(toml::Value::String(s)) => match s.trim().strip_suffix('%') {
            Some(p) => p.trim().parse::<f64>().map(|p| p / 100.0).map_err(|_| {
                err(format!("recovery tolerance {s:?}: write e.g. \"10%\" or 0.1"))
            })?,
            None => s.trim().parse::<f64>().map_err(|_| {
                err(format!("recovery tolerance {s:?}: write e.g. \"10%\" or 0.1"))
            })?,
        },
        Some(_) => return Err(err("recovery tolerance: write e.g. \"10%\" or 0.1".into())),
    };
    if !(tolerance.is_finite() && tolerance >= 0.0) {
        return Err(err("recovery tolerance must be 0 or more".into()));
    }
    let known = |m: &str| registry.metric_id(m).is_some();
    let (latency, errors) = match (&raw.latency, &raw.errors) {
        (Some(l), e) => (l.clone(), e.clone()),
        (None, e) => {
            let (l, d) = RECOVERY_SIGNALS
                .iter()
                .find(|(l, _)| known(l))
                .map(|(l, e)| (l.to_string(), Some(e.to_string())))
                .unwrap_or_else(|| ("iteration_duration".to_string(), None));
            (l, e.clone().or(d.filter(|d| known(d))))
        }
    };
    for (what, m) in [("latency", Some(&latency)), ("errors", errors.as_ref())] {
        let Some(m) = m else { continue };
        let Some(id) = registry.metric_id(m) else {
            return Err(err(format!("recovery {what}: no metric named {m:?} in this plan")));
        };
        let kind = registry.metrics()[id as usize].kind;
        let fits = match what {
            "latency" => kind == MetricKind::Trend,
            _ => kind == MetricKind::Rate,
        };
        if !fits {
            return Err(err(format!(
                "recovery {what}: {m} is a {kind:?} metric; latency needs a trend (e.g. http_req_duration), errors a rate (e.g. http_req_failed)"
            )
            .to_lowercase()));
        }
    }
    Ok(RecoverySpec {
        window,
        tolerance,
        latency,
        errors,
    })
}

/// Runs of consecutive `spike = true` stages.
pub fn spikes_of(exec: &Executor) -> Vec<Spike> {
    let stages: &[Stage] = match exec {
        Executor::RampingVus { stages, .. } | Executor::RampingArrivalRate { stages, .. } => {
            stages
        }
        _ => return Vec::new(),
    };
    let mut out: Vec<Spike> = Vec::new();
    let mut at = Duration::ZERO;
    let mut prev_spike = false;
    for (i, s) in stages.iter().enumerate() {
        let end = at + s.duration.0;
        if s.spike {
            match out.last_mut() {
                Some(last) if prev_spike => {
                    last.stages.1 = i + 1;
                    last.end = end;
                }
                _ => out.push(Spike {
                    stages: (i + 1, i + 1),
                    start: at,
                    end,
                }),
            }
        }
        prev_spike = s.spike;
        at = end;
    }
    out
}

/// Register the post-run metrics the plan's capacity answers produce, so
/// thresholds can name them.
pub fn register_metrics(registry: &Registry, scenarios: &[&ScenarioCapacity]) {
    if scenarios.iter().any(|s| !s.spikes.is_empty()) {
        registry.metric("recovery_time", MetricKind::Trend, Unit::Time);
    }
    if scenarios.iter().any(|s| !s.breaking.is_empty()) {
        registry.metric("capacity_held", MetricKind::Gauge, Unit::Default);
        registry.metric("capacity_broke", MetricKind::Gauge, Unit::Default);
    }
}

/// The planned load of a scenario at `t` seconds into it: VUs (ramping-vus,
/// constant-vus) or arrivals per time unit (arrival-rate executors).
pub fn level_at(exec: &Executor, t: f64) -> Option<f64> {
    let d = Duration::from_secs_f64(t.max(0.0));
    match exec {
        Executor::RampingVus {
            start_vus, stages, ..
        } => Some(ramp_value(*start_vus as f64, stages, d).ceil()),
        Executor::RampingArrivalRate {
            start_rate, stages, ..
        } => Some(ramp_value(*start_rate, stages, d)),
        Executor::ConstantVus { vus, .. } => Some(*vus as f64),
        Executor::ConstantArrivalRate { rate, .. } => Some(*rate),
        _ => None,
    }
}

/// What a level counts: "VUs" or "iterations/s".
pub fn level_unit(exec: &Executor) -> String {
    match exec {
        Executor::RampingArrivalRate { time_unit, .. }
        | Executor::ConstantArrivalRate { time_unit, .. } => match time_unit.as_secs_f64() {
            1.0 => "iterations/s".into(),
            60.0 => "iterations/m".into(),
            3600.0 => "iterations/h".into(),
            _ => format!("iterations per {}", format_duration(*time_unit)),
        },
        _ => "VUs".into(),
    }
}

// ---------------------------------------------------------------------------
// Results (in the summary)

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CapacitySummary {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub breaking_points: Vec<BreakingPoint>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recoveries: Vec<Recovery>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub monitors: Vec<crate::monitor::MonitorReport>,
}

impl CapacitySummary {
    pub fn is_empty(&self) -> bool {
        self.breaking_points.is_empty() && self.recoveries.is_empty() && self.monitors.is_empty()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BreakingPoint {
    pub scenario: String,
    /// The signal with its filter, e.g. `http_req_failed{scenario:ramp}`.
    pub signal: String,
    pub expr: String,
    pub window_s: f64,
    /// What levels count: "VUs", "iterations/s".
    pub unit: String,
    pub broke: bool,
    /// The level in the second the signal first crossed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broke_at: Option<f64>,
    /// That second, from the start of the run, and as a UTC time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// The signal over the window that crossed (ms for time), and as shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<f64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub observed_text: String,
    /// The highest level before the break at which a second of load stayed
    /// within the signal's limit; without a break, the highest level reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<f64>,
    /// The highest level the scenario reached while watched.
    pub peak: f64,
    /// The run stopped here (`abort = true`).
    #[serde(default)]
    pub aborted: bool,
}

/// p95 latency and error rate over one window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowStats {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    pub samples: u64,
    pub seconds: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Recovery {
    pub scenario: String,
    /// 1-based, per scenario.
    pub spike: usize,
    /// First and last stage of the spike (1-based).
    pub stages: (usize, usize),
    /// The spike's start and end, from the start of the run.
    pub start_s: f64,
    pub end_s: f64,
    pub window_s: f64,
    pub tolerance: f64,
    pub latency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<String>,
    /// The window before the spike; `None`: no traffic then to compare with.
    pub baseline: Option<WindowStats>,
    pub recovered: bool,
    /// From the end of the spike to the start of the first window back
    /// within tolerance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_time_s: Option<f64>,
    /// How long after the spike it was watched (until recovery, the next
    /// spike, or the end of the scenario or run).
    pub watched_s: f64,
    /// The window that recovered, or the last one seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<WindowStats>,
}

// ---------------------------------------------------------------------------
// The live watch

struct Signal {
    id: Option<MetricId>,
    kind: MetricKind,
    unit: Unit,
    filter: Tags,
    window: Window,
}

impl Signal {
    fn new(registry: &Registry, metric: &str, filter: Tags, keep: u64) -> Self {
        let id = registry.metric_id(metric);
        let (kind, unit) = id
            .map(|i| {
                let d = &registry.metrics()[i as usize];
                (d.kind, d.unit)
            })
            .unwrap_or((MetricKind::Counter, Unit::Default));
        Self {
            id,
            kind,
            unit,
            filter,
            window: Window::new(keep),
        }
    }

    fn push(&mut self, agg: &Aggregator, k: u64) {
        let cum = match self.id {
            Some(id) => agg.total(id, &self.filter),
            None => Slot::Empty,
        };
        self.window.push(k, cum);
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
    pub fn new(plan: &crate::plan::Plan) -> Self {
        let registry = &plan.registry;
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
        if let Some(iv) = agg.intervals.last()
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
                        humantime::format_rfc3339_seconds(started + Duration::from_secs_f64(s))
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
                    push_series(&mut series, "capacity_held", Unit::Default, &scoped, gauge(h));
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

fn level_text(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
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
        Agg::Count => crate::summary::value_text(Unit::Default, v),
        _ => crate::summary::value_text(unit, v),
    };
    format!("{agg}={shown}")
}

impl Observer for Watch {
    fn on_start(&mut self, started: SystemTime) {
        self.started = Some(started);
    }

    fn on_interval(&mut self, agg: &Aggregator, _elapsed: Duration) -> Option<String> {
        let k = agg.intervals.last()?.index;
        // Several intervals completing at once are taken as one step.
        if self.last.is_some_and(|l| l >= k) {
            return None;
        }
        self.last = Some(k);
        self.step(agg, k)
    }
}

// ---------------------------------------------------------------------------
// Text

fn clock(rfc3339: &str) -> &str {
    rfc3339.get(11..19).unwrap_or(rfc3339)
}

fn secs_text(s: f64) -> String {
    format_duration(Duration::from_secs_f64(s.max(0.0)))
}

fn window_text(w: &WindowStats) -> String {
    let mut parts = Vec::new();
    if let Some(p) = w.p95_ms {
        parts.push(format!("p95 {}", crate::summary::ms_text(p)));
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
pub fn render_text(s: &crate::summary::Summary) -> String {
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
    out.push_str(&crate::monitor::render_text(&cap.monitors));
    out
}

pub fn breaking_line(b: &BreakingPoint) -> String {
    let signal = format!(
        "{} {} over {}",
        b.signal,
        b.expr,
        secs_text(b.window_s)
    );
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
                if b.aborted { "; the run stopped there" } else { "" }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn st(secs: u64, target: f64, spike: bool) -> Stage {
        Stage {
            duration: Dur(Duration::from_secs(secs)),
            target,
            spike,
        }
    }

    #[test]
    fn consecutive_spike_stages_are_one_spike() {
        let exec = Executor::RampingVus {
            start_vus: 0,
            stages: vec![
                st(10, 5.0, false),
                st(2, 50.0, true),
                st(5, 50.0, true),
                st(3, 5.0, false),
                st(4, 60.0, true),
                st(6, 5.0, false),
            ],
            graceful_ramp_down: Duration::ZERO,
        };
        let spikes = spikes_of(&exec);
        assert_eq!(spikes.len(), 2);
        assert_eq!(spikes[0].stages, (2, 3));
        assert_eq!(spikes[0].start, Duration::from_secs(10));
        assert_eq!(spikes[0].end, Duration::from_secs(17));
        assert_eq!(spikes[1].stages, (5, 5));
        assert_eq!(spikes[1].start, Duration::from_secs(20));
        // Levels: VUs are whole, mid-second.
        assert_eq!(level_at(&exec, 5.5), Some(3.0));
        assert_eq!(level_unit(&exec), "VUs");
    }

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

/// What `volley validate` says about breaking points, spikes and monitors.
pub fn describe(plan: &crate::plan::Plan) -> String {
    let mut out = String::new();
    let with: Vec<&crate::plan::Scenario> = plan
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
                if b.abort { " (stops the run there)" } else { "" }
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
