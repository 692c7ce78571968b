//! Capacity questions as a plan asks them: at what level does the target
//! break (`breaking_point` on a ramping scenario) and how fast does it
//! recover after a spike (stages marked `spike = true`), checked against the
//! metrics the scenario's driver records. The runtime watches for the
//! answers; leaks are `slope` thresholds on monitor gauges.

use serde::Deserialize;
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;
use volley_model::schedule::{Executor, Spike, spikes_of};
use volley_model::threshold::{self, Agg, Op, Threshold};
use volley_protocols::ConfigError;
use volley_protocols::duration::Dur;
use volley_protocols::metrics::{MetricKind, Registry, Tags, Unit};

const DEFAULT_WINDOW: Duration = Duration::from_secs(10);
const DEFAULT_TOLERANCE: f64 = 0.10;

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
    let (metric, filter) = threshold::parse_key(&raw.signal)
        .map_err(|e| err(format!("breaking_point signal: {e}")))?;
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
        allow_empty: false,
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
        Some(v) => v
            .get_ref()
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| {
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
                err(format!(
                    "recovery tolerance {s:?}: write e.g. \"10%\" or 0.1"
                ))
            })?,
            None => s.trim().parse::<f64>().map_err(|_| {
                err(format!(
                    "recovery tolerance {s:?}: write e.g. \"10%\" or 0.1"
                ))
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
            // The first driver's recovery signal that the plan records.
            let (l, d) = volley_protocols::drivers::descriptors()
                .iter()
                .filter_map(|d| d.recovery.as_ref())
                .find(|r| known(&r.latency))
                .map(|r| (r.latency.clone(), Some(r.errors.clone())))
                .unwrap_or_else(|| ("iteration_duration".to_string(), None));
            (l, e.clone().or(d.filter(|d| known(d))))
        }
    };
    for (what, m) in [("latency", Some(&latency)), ("errors", errors.as_ref())] {
        let Some(m) = m else { continue };
        let Some(id) = registry.metric_id(m) else {
            return Err(err(format!(
                "recovery {what}: no metric named {m:?} in this plan"
            )));
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
