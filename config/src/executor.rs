//! The scenario keys the engine owns (executor, timing, tags, capacity),
//! read from a plan into the schedule volley-model computes with.

use serde::Deserialize;
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;
use volley_model::schedule::{EXECUTORS, Executor, MAX_RATE_PER_CORE, Stage};
use volley_protocols::ConfigError;
use volley_protocols::duration::{Dur, DurRange};
use volley_protocols::size::format_bytes as bytes;

/// The scenario keys the engine owns; everything else belongs to the driver.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Common {
    pub driver: Option<Spanned<String>>,
    pub executor: Option<Spanned<String>>,
    pub start_time: Option<Dur>,
    pub graceful_stop: Option<Dur>,
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, String>,
    pub think_time: Option<DurRange>,
    pub vus: Option<Spanned<u64>>,
    pub iterations: Option<Spanned<u64>>,
    pub duration: Option<Spanned<Dur>>,
    pub max_duration: Option<Spanned<Dur>>,
    pub start_vus: Option<Spanned<u64>>,
    pub stages: Option<Spanned<Vec<Stage>>>,
    pub graceful_ramp_down: Option<Spanned<Dur>>,
    pub rate: Option<Spanned<f64>>,
    pub start_rate: Option<Spanned<f64>>,
    pub time_unit: Option<Spanned<Dur>>,
    pub pre_allocated_vus: Option<Spanned<u64>>,
    pub max_vus: Option<Spanned<u64>>,
    pub breaking_point: Option<Spanned<toml::Value>>,
    /// How recovery after `spike = true` stages is judged (window, tolerance).
    pub recovery: Option<Spanned<toml::Value>>,
}

pub const COMMON_KEYS: &[&str] = &[
    "driver",
    "executor",
    "start_time",
    "graceful_stop",
    "tags",
    "think_time",
    "vus",
    "iterations",
    "duration",
    "max_duration",
    "start_vus",
    "stages",
    "graceful_ramp_down",
    "rate",
    "start_rate",
    "time_unit",
    "pre_allocated_vus",
    "max_vus",
    "breaking_point",
    "recovery",
];

/// The executor of a scenario, from its keys; `scenario_span` locates
/// errors about missing keys.
pub fn executor(c: &Common, scenario_span: Range<usize>) -> Result<Executor, ConfigError> {
    let name = c.executor.as_ref().ok_or_else(|| {
        ConfigError::at(
            scenario_span.clone(),
            format!("missing `executor`: one of {}", EXECUTORS.join(", ")),
        )
    })?;
    let kind = name.get_ref().as_str();
    let allowed: &[&str] = match kind {
        "shared-iterations" | "per-vu-iterations" => &["vus", "iterations", "max_duration"],
        "constant-vus" => &["vus", "duration"],
        "ramping-vus" => &[
            "start_vus",
            "stages",
            "graceful_ramp_down",
            "breaking_point",
            "recovery",
        ],
        "constant-arrival-rate" => &[
            "rate",
            "time_unit",
            "duration",
            "pre_allocated_vus",
            "max_vus",
        ],
        "ramping-arrival-rate" => &[
            "start_rate",
            "time_unit",
            "stages",
            "pre_allocated_vus",
            "max_vus",
            "breaking_point",
            "recovery",
        ],
        other => {
            return Err(ConfigError::at(
                name.span(),
                format!(
                    "unknown executor {other:?}; use one of {}",
                    EXECUTORS.join(", ")
                ),
            ));
        }
    };
    let given: [(&str, Option<Range<usize>>); 12] = [
        ("vus", c.vus.as_ref().map(Spanned::span)),
        ("iterations", c.iterations.as_ref().map(Spanned::span)),
        ("duration", c.duration.as_ref().map(Spanned::span)),
        ("max_duration", c.max_duration.as_ref().map(Spanned::span)),
        ("start_vus", c.start_vus.as_ref().map(Spanned::span)),
        ("stages", c.stages.as_ref().map(Spanned::span)),
        (
            "graceful_ramp_down",
            c.graceful_ramp_down.as_ref().map(Spanned::span),
        ),
        ("rate", c.rate.as_ref().map(Spanned::span)),
        ("start_rate", c.start_rate.as_ref().map(Spanned::span)),
        ("time_unit", c.time_unit.as_ref().map(Spanned::span)),
        (
            "pre_allocated_vus",
            c.pre_allocated_vus.as_ref().map(Spanned::span),
        ),
        ("max_vus", c.max_vus.as_ref().map(Spanned::span)),
    ];
    for (key, span) in given {
        if let Some(span) = span
            && !allowed.contains(&key)
        {
            return Err(ConfigError::at(
                span,
                format!(
                    "`{key}` is not a parameter of the {kind} executor; it takes {}",
                    allowed.join(", ")
                ),
            ));
        }
    }
    if let Some(bp) = &c.breaking_point
        && !allowed.contains(&"breaking_point")
    {
        return Err(ConfigError::at(
            bp.span(),
            "breaking_point needs a ramping executor (ramping-vus or ramping-arrival-rate)",
        ));
    }
    if let Some(r) = &c.recovery
        && !allowed.contains(&"recovery")
    {
        return Err(ConfigError::at(
            r.span(),
            "recovery is measured after stages marked spike = true: it needs ramping-vus or ramping-arrival-rate",
        ));
    }
    let required =
        |key: &str| ConfigError::at(name.span(), format!("the {kind} executor needs `{key}`"));
    let positive =
        |v: &Option<Spanned<u64>>, key: &str, default: Option<u64>| -> Result<u64, ConfigError> {
            match v {
                Some(s) if *s.get_ref() == 0 => Err(ConfigError::at(
                    s.span(),
                    format!("`{key}` must be at least 1"),
                )),
                Some(s) => Ok(*s.get_ref()),
                None => default.ok_or_else(|| required(key)),
            }
        };
    let nonzero = |d: &Option<Spanned<Dur>>,
                   key: &str,
                   default: Option<Duration>|
     -> Result<Duration, ConfigError> {
        match d {
            Some(s) if s.get_ref().0.is_zero() => Err(ConfigError::at(
                s.span(),
                format!("`{key}` must be longer than 0s"),
            )),
            Some(s) => Ok(s.get_ref().0),
            None => default.ok_or_else(|| required(key)),
        }
    };
    let stages = |min_target: f64| -> Result<Vec<Stage>, ConfigError> {
        let s = c.stages.as_ref().ok_or_else(|| required("stages"))?;
        if s.get_ref().is_empty() {
            return Err(ConfigError::at(
                s.span(),
                "`stages` is empty: add e.g. { duration = \"30s\", target = 50 }",
            ));
        }
        for (i, st) in s.get_ref().iter().enumerate() {
            if !(st.target.is_finite() && st.target >= min_target) {
                return Err(ConfigError::at(
                    s.span(),
                    format!(
                        "stage {} has target {}; a target must be a number >= 0",
                        i + 1,
                        st.target
                    ),
                ));
            }
        }
        if s.get_ref().iter().all(|st| st.duration.0.is_zero()) {
            return Err(ConfigError::at(
                s.span(),
                "every stage lasts 0s: give at least one stage a duration",
            ));
        }
        Ok(s.get_ref().clone())
    };
    let time_unit = nonzero(&c.time_unit, "time_unit", Some(Duration::from_secs(1)))?;
    let rate_of =
        |r: &Option<Spanned<f64>>, key: &str, default: Option<f64>| -> Result<f64, ConfigError> {
            match r {
                Some(s) if !(s.get_ref().is_finite() && *s.get_ref() >= 0.0) => Err(
                    ConfigError::at(s.span(), format!("`{key}` must be a number >= 0")),
                ),
                Some(s) => Ok(*s.get_ref()),
                None => default.ok_or_else(|| required(key)),
            }
        };
    let vus_pair = || -> Result<(u64, u64), ConfigError> {
        let pre = positive(&c.pre_allocated_vus, "pre_allocated_vus", None)?;
        let max = positive(&c.max_vus, "max_vus", Some(pre))?;
        if max < pre {
            let span = c.max_vus.as_ref().map(Spanned::span).unwrap_or(name.span());
            return Err(ConfigError::at(
                span,
                format!("max_vus ({max}) is below pre_allocated_vus ({pre})"),
            ));
        }
        Ok((pre, max))
    };
    let ten_minutes = Some(Duration::from_secs(600));
    Ok(match kind {
        "shared-iterations" | "per-vu-iterations" => {
            let vus = positive(&c.vus, "vus", Some(1))?;
            let iterations = positive(&c.iterations, "iterations", Some(1))?;
            let max_duration = nonzero(&c.max_duration, "max_duration", ten_minutes)?;
            if kind == "shared-iterations" {
                if iterations < vus {
                    let span = c
                        .iterations
                        .as_ref()
                        .map(Spanned::span)
                        .unwrap_or(name.span());
                    return Err(ConfigError::at(
                        span,
                        format!(
                            "shared-iterations with {iterations} iterations cannot keep {vus} VUs busy; lower vus or raise iterations"
                        ),
                    ));
                }
                Executor::SharedIterations {
                    vus,
                    iterations,
                    max_duration,
                }
            } else {
                Executor::PerVuIterations {
                    vus,
                    iterations,
                    max_duration,
                }
            }
        }
        "constant-vus" => Executor::ConstantVus {
            vus: positive(&c.vus, "vus", Some(1))?,
            duration: nonzero(&c.duration, "duration", None)?,
        },
        "ramping-vus" => {
            let start_vus = c.start_vus.as_ref().map(|s| *s.get_ref()).unwrap_or(1);
            let stages = stages(0.0)?;
            for st in &stages {
                if st.target.fract() != 0.0 {
                    let span = c.stages.as_ref().map(Spanned::span).unwrap_or(name.span());
                    return Err(ConfigError::at(
                        span,
                        format!("VU targets are whole numbers; {} is not", st.target),
                    ));
                }
            }
            Executor::RampingVus {
                start_vus,
                stages,
                graceful_ramp_down: c
                    .graceful_ramp_down
                    .as_ref()
                    .map(|d| d.get_ref().0)
                    .unwrap_or(Duration::from_secs(30)),
            }
        }
        "constant-arrival-rate" => {
            let rate = rate_of(&c.rate, "rate", None)?;
            if rate == 0.0 {
                let span = c.rate.as_ref().map(Spanned::span).unwrap_or(name.span());
                return Err(ConfigError::at(span, "`rate` must be above 0"));
            }
            let (pre_allocated_vus, max_vus) = vus_pair()?;
            Executor::ConstantArrivalRate {
                rate,
                time_unit,
                duration: nonzero(&c.duration, "duration", None)?,
                pre_allocated_vus,
                max_vus,
            }
        }
        _ => {
            let (pre_allocated_vus, max_vus) = vus_pair()?;
            Executor::RampingArrivalRate {
                start_rate: rate_of(&c.start_rate, "start_rate", Some(0.0))?,
                time_unit,
                stages: stages(0.0)?,
                pre_allocated_vus,
                max_vus,
            }
        }
    })
}

/// Refuse what this machine cannot run: more VUs than its memory holds
/// (at `vu_bytes` each, the driver's measured floor), or arrivals faster
/// than its cores can start. `segments` instances share the plan.
/// `from_flags`: the schedule came from --vus/--stage/--rate, so the error
/// names those flags and points at no line of the file.
#[allow(clippy::too_many_arguments)]
pub fn check_fits(
    exec: &Executor,
    c: &Common,
    scenario_span: Range<usize>,
    driver: &str,
    vu_bytes: u64,
    segments: u64,
    machine: &crate::machine::Machine,
    from_flags: bool,
) -> Result<(), ConfigError> {
    let span_of = |keys: &[(&str, Option<Range<usize>>)]| -> (String, Range<usize>) {
        keys.iter()
            .find_map(|(k, s)| s.clone().map(|s| (k.to_string(), s)))
            .unwrap_or_else(|| (keys[0].0.to_string(), scenario_span.clone()))
    };
    let error = |span: Range<usize>, message: String| {
        if from_flags {
            ConfigError::new(message)
        } else {
            ConfigError::at(span, message)
        }
    };
    let spans = |v: &Option<Spanned<u64>>| v.as_ref().map(Spanned::span);
    let rates = |v: &Option<Spanned<f64>>| v.as_ref().map(Spanned::span);
    let max = exec.max_vus();
    let here = max.div_ceil(segments);
    if let Some(memory) = machine.memory {
        let need = here as f64 * vu_bytes as f64;
        if need > memory as f64 {
            let (key, span) = match exec {
                _ if from_flags => match exec {
                    Executor::RampingVus { start_vus, .. } if *start_vus != max => {
                        ("the --stage targets".to_string(), scenario_span.clone())
                    }
                    _ => ("--vus".to_string(), scenario_span.clone()),
                },
                Executor::RampingVus { start_vus, .. } if *start_vus == max => {
                    span_of(&[("`start_vus`", spans(&c.start_vus))])
                }
                Executor::RampingVus { .. } => {
                    span_of(&[("the stages' `target`", c.stages.as_ref().map(Spanned::span))])
                }
                Executor::ConstantArrivalRate { .. } | Executor::RampingArrivalRate { .. } => {
                    span_of(&[
                        ("`max_vus`", spans(&c.max_vus)),
                        ("`pre_allocated_vus`", spans(&c.pre_allocated_vus)),
                    ])
                }
                _ => span_of(&[("`vus`", spans(&c.vus))]),
            };
            let fit = (memory / vu_bytes.max(1)).saturating_mul(segments);
            return Err(error(
                span,
                format!(
                    "{max} VUs cannot fit: at ~{} per {driver} VU they need {} on this instance, and this machine has {} of memory available; at most {fit} VUs fit: lower {key}, or split the run across machines (--segment, docs/distributed.md)",
                    bytes(vu_bytes as f64),
                    bytes(need),
                    bytes(memory as f64),
                ),
            ));
        }
    }
    if let Some(per_s) = exec.peak_rate() {
        let limit = MAX_RATE_PER_CORE * machine.cores as f64 * segments as f64;
        if per_s > limit {
            let (unit, key, span) = match exec {
                _ if from_flags => (
                    Duration::from_secs(1),
                    "--rate".to_string(),
                    scenario_span.clone(),
                ),
                Executor::ConstantArrivalRate { time_unit, .. } => {
                    let (k, s) = span_of(&[("`rate`", rates(&c.rate))]);
                    (*time_unit, k, s)
                }
                Executor::RampingArrivalRate {
                    time_unit,
                    start_rate,
                    stages,
                    ..
                } => {
                    let start_is_peak = stages.iter().all(|s| s.target <= *start_rate);
                    let (k, s) = if start_is_peak {
                        span_of(&[("`start_rate`", rates(&c.start_rate))])
                    } else {
                        span_of(&[("the stages' `target`", c.stages.as_ref().map(Spanned::span))])
                    };
                    (*time_unit, k, s)
                }
                _ => unreachable!("only open executors have a rate"),
            };
            let per_unit = (limit * unit.as_secs_f64()).floor();
            return Err(error(
                span,
                format!(
                    "{per_s:e} arrivals/s cannot be scheduled: volley starts at most {MAX_RATE_PER_CORE:e} arrivals/s per core (one a microsecond), {limit:e}/s on this machine's {} cores{}; lower {key} to at most {per_unit} per {}, or split the run across machines (--segment, docs/distributed.md)",
                    machine.cores,
                    if segments > 1 {
                        format!(" times {segments} segments")
                    } else {
                        String::new()
                    },
                    volley_protocols::duration::format_duration(unit),
                ),
            ));
        }
    }
    Ok(())
}
