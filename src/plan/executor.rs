//! The six k6 executors: their parameters, defaults and the shape of time
//! they produce (VUs over time, arrival times).

use serde::Deserialize;
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;
use volley_protocols::ConfigError;
use volley_protocols::duration::{Dur, DurRange};

#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    pub duration: Dur,
    pub target: f64,
    /// Marks the stage whose end starts the recovery clock.
    #[serde(default)]
    pub spike: bool,
}

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

#[derive(Clone, Debug, PartialEq)]
pub enum Executor {
    SharedIterations {
        vus: u64,
        iterations: u64,
        max_duration: Duration,
    },
    PerVuIterations {
        vus: u64,
        iterations: u64,
        max_duration: Duration,
    },
    ConstantVus {
        vus: u64,
        duration: Duration,
    },
    RampingVus {
        start_vus: u64,
        stages: Vec<Stage>,
        graceful_ramp_down: Duration,
    },
    ConstantArrivalRate {
        rate: f64,
        time_unit: Duration,
        duration: Duration,
        pre_allocated_vus: u64,
        max_vus: u64,
    },
    RampingArrivalRate {
        start_rate: f64,
        time_unit: Duration,
        stages: Vec<Stage>,
        pre_allocated_vus: u64,
        max_vus: u64,
    },
}

pub const EXECUTORS: &[&str] = &[
    "shared-iterations",
    "per-vu-iterations",
    "constant-vus",
    "ramping-vus",
    "constant-arrival-rate",
    "ramping-arrival-rate",
];

impl Executor {
    /// Build from the scenario's keys; `scenario_span` locates errors about missing keys.
    pub fn from_common(c: &Common, scenario_span: Range<usize>) -> Result<Self, ConfigError> {
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
        let positive = |v: &Option<Spanned<u64>>,
                        key: &str,
                        default: Option<u64>|
         -> Result<u64, ConfigError> {
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
        let rate_of = |r: &Option<Spanned<f64>>,
                       key: &str,
                       default: Option<f64>|
         -> Result<f64, ConfigError> {
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

    pub fn name(&self) -> &'static str {
        match self {
            Executor::SharedIterations { .. } => "shared-iterations",
            Executor::PerVuIterations { .. } => "per-vu-iterations",
            Executor::ConstantVus { .. } => "constant-vus",
            Executor::RampingVus { .. } => "ramping-vus",
            Executor::ConstantArrivalRate { .. } => "constant-arrival-rate",
            Executor::RampingArrivalRate { .. } => "ramping-arrival-rate",
        }
    }

    pub fn is_open(&self) -> bool {
        matches!(
            self,
            Executor::ConstantArrivalRate { .. } | Executor::RampingArrivalRate { .. }
        )
    }

    /// How long the executor schedules work (iteration executors: at most).
    pub fn duration(&self) -> Duration {
        match self {
            Executor::SharedIterations { max_duration, .. }
            | Executor::PerVuIterations { max_duration, .. } => *max_duration,
            Executor::ConstantVus { duration, .. }
            | Executor::ConstantArrivalRate { duration, .. } => *duration,
            Executor::RampingVus { stages, .. } | Executor::RampingArrivalRate { stages, .. } => {
                stages.iter().map(|s| s.duration.0).sum()
            }
        }
    }

    /// The most VUs alive at once.
    pub fn max_vus(&self) -> u64 {
        match self {
            Executor::SharedIterations { vus, .. }
            | Executor::PerVuIterations { vus, .. }
            | Executor::ConstantVus { vus, .. } => *vus,
            Executor::RampingVus {
                start_vus, stages, ..
            } => stages
                .iter()
                .map(|s| s.target as u64)
                .fold(*start_vus, u64::max),
            Executor::ConstantArrivalRate { max_vus, .. }
            | Executor::RampingArrivalRate { max_vus, .. } => *max_vus,
        }
    }

    /// Peak arrival rate per second, for open models.
    pub fn peak_rate(&self) -> Option<f64> {
        match self {
            Executor::ConstantArrivalRate {
                rate, time_unit, ..
            } => Some(rate / time_unit.as_secs_f64()),
            Executor::RampingArrivalRate {
                start_rate,
                time_unit,
                stages,
                ..
            } => Some(
                stages.iter().map(|s| s.target).fold(*start_rate, f64::max)
                    / time_unit.as_secs_f64(),
            ),
            _ => None,
        }
    }

    /// One line for `volley validate`.
    pub fn describe(&self) -> String {
        use volley_protocols::duration::format_duration as f;
        match self {
            Executor::SharedIterations {
                vus,
                iterations,
                max_duration,
            } => {
                format!(
                    "{iterations} iterations shared by {vus} VUs (max {})",
                    f(*max_duration)
                )
            }
            Executor::PerVuIterations {
                vus,
                iterations,
                max_duration,
            } => {
                format!(
                    "{iterations} iterations for each of {vus} VUs (max {})",
                    f(*max_duration)
                )
            }
            Executor::ConstantVus { vus, duration } => format!("{vus} VUs for {}", f(*duration)),
            Executor::RampingVus {
                start_vus, stages, ..
            } => {
                let parts: Vec<String> = stages
                    .iter()
                    .map(|s| format!("{} over {}", s.target, f(s.duration.0)))
                    .collect();
                format!("{start_vus} VUs -> {}", parts.join(" -> "))
            }
            Executor::ConstantArrivalRate {
                rate,
                time_unit,
                duration,
                pre_allocated_vus,
                max_vus,
            } => format!(
                "{rate} iterations per {} for {} ({pre_allocated_vus} pre-allocated VUs, max {max_vus})",
                f(*time_unit),
                f(*duration)
            ),
            Executor::RampingArrivalRate {
                start_rate,
                time_unit,
                stages,
                pre_allocated_vus,
                max_vus,
            } => {
                let parts: Vec<String> = stages
                    .iter()
                    .map(|s| format!("{} over {}", s.target, f(s.duration.0)))
                    .collect();
                format!(
                    "{start_rate} -> {} iterations per {} ({pre_allocated_vus} pre-allocated VUs, max {max_vus})",
                    parts.join(" -> "),
                    f(*time_unit)
                )
            }
        }
    }
}

/// Arrivals one worker thread can start per second, at most: one a
/// microsecond, already faster than any driver's iteration (a request costs
/// tens of microseconds of CPU); past it the scheduler could only count drops.
pub const MAX_RATE_PER_CORE: f64 = 1e6;
/// From this rate per core on, expect dropped iterations: warn.
pub const HIGH_RATE_PER_CORE: f64 = 1e5;

fn bytes(n: f64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = n;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    format!("{v:.1} {}", units[u])
}

impl Executor {
    /// Refuse what this machine cannot run: more VUs than its memory holds
    /// (at `vu_bytes` each, the driver's measured floor), or arrivals faster
    /// than its cores can start. `segments` instances share the plan.
    pub fn check_fits(
        &self,
        c: &Common,
        scenario_span: Range<usize>,
        driver: &str,
        vu_bytes: u64,
        segments: u64,
        machine: &super::machine::Machine,
    ) -> Result<(), ConfigError> {
        let span_of = |keys: &[(&str, Option<Range<usize>>)]| -> (String, Range<usize>) {
            keys.iter()
                .find_map(|(k, s)| s.clone().map(|s| (k.to_string(), s)))
                .unwrap_or_else(|| (keys[0].0.to_string(), scenario_span.clone()))
        };
        let spans = |v: &Option<Spanned<u64>>| v.as_ref().map(Spanned::span);
        let rates = |v: &Option<Spanned<f64>>| v.as_ref().map(Spanned::span);
        let max = self.max_vus();
        let here = max.div_ceil(segments);
        if let Some(memory) = machine.memory {
            let need = here as f64 * vu_bytes as f64;
            if need > memory as f64 {
                let (key, span) = match self {
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
                return Err(ConfigError::at(
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
        if let Some(per_s) = self.peak_rate() {
            let limit = MAX_RATE_PER_CORE * machine.cores as f64 * segments as f64;
            if per_s > limit {
                let (unit, key, span) = match self {
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
                            span_of(&[(
                                "the stages' `target`",
                                c.stages.as_ref().map(Spanned::span),
                            )])
                        };
                        (*time_unit, k, s)
                    }
                    _ => unreachable!("only open executors have a rate"),
                };
                let per_unit = (limit * unit.as_secs_f64()).floor();
                return Err(ConfigError::at(
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

    /// A warning when the arrival rate is high enough that iterations will
    /// likely be dropped rather than run.
    pub fn rate_warning(&self, segments: u64, cores: u64) -> Option<String> {
        let per_s = self.peak_rate()? / segments as f64;
        let high = HIGH_RATE_PER_CORE * cores as f64;
        (per_s >= high).then(|| {
            format!(
                "{per_s:.0} arrivals/s on this instance is {:.1} µs apart per core: expect dropped_iterations unless every iteration takes less; split the run across machines (--segment) for more",
                1e6 * cores as f64 / per_s
            )
        })
    }
}

/// The VU target of a ramp at `t` (linear between stages).
pub fn ramp_value(start: f64, stages: &[Stage], t: Duration) -> f64 {
    let mut from = start;
    let mut at = Duration::ZERO;
    for s in stages {
        let end = at + s.duration.0;
        if t < end {
            let frac = (t - at).as_secs_f64() / s.duration.0.as_secs_f64();
            return from + (s.target - from) * frac;
        }
        from = s.target;
        at = end;
    }
    from
}

/// When VU `index` (0-based) is active in a ramping-vus scenario: VU i runs
/// while the target is above i, so the number running is ceil(target).
pub fn vu_intervals(start_vus: u64, stages: &[Stage], index: u64) -> Vec<(Duration, Duration)> {
    let i = index as f64;
    let mut out: Vec<(Duration, Duration)> = Vec::new();
    let mut push = |a: Duration, b: Duration| {
        if b <= a {
            return;
        }
        match out.last_mut() {
            Some(last) if last.1 >= a => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    };
    let mut from = start_vus as f64;
    let mut at = Duration::ZERO;
    for s in stages {
        let d = s.duration.0;
        let end = at + d;
        let to = s.target;
        if d.is_zero() {
            from = to;
            continue;
        }
        let secs = d.as_secs_f64();
        // Portion of [at, end) where from + (to - from) * x / secs > i.
        if from > i && to > i {
            push(at, end);
        } else if from > i {
            let x = (from - i) / (from - to) * secs;
            push(at, at + Duration::from_secs_f64(x));
        } else if to > i {
            let x = (i - from) / (to - from) * secs;
            // Just after the crossing the target is above i.
            push(at + Duration::from_secs_f64(x), end);
        }
        from = to;
        at = end;
    }
    out
}

/// Arrival times of an open-model executor, from scenario start.
pub struct Arrivals {
    start_rate: f64,
    /// (duration s, from rate/s, to rate/s) per stage.
    stages: Vec<(f64, f64, f64)>,
    stage: usize,
    stage_start: f64,
    /// Arrivals before the current stage.
    before: f64,
}

impl Arrivals {
    pub fn new(exec: &Executor) -> Option<Self> {
        match exec {
            Executor::ConstantArrivalRate {
                rate,
                time_unit,
                duration,
                ..
            } => {
                let r = rate / time_unit.as_secs_f64();
                Some(Self::from_stages(r, vec![(duration.as_secs_f64(), r, r)]))
            }
            Executor::RampingArrivalRate {
                start_rate,
                time_unit,
                stages,
                ..
            } => {
                let u = time_unit.as_secs_f64();
                let mut from = start_rate / u;
                let mut v = Vec::new();
                for s in stages {
                    let to = s.target / u;
                    v.push((s.duration.0.as_secs_f64(), from, to));
                    from = to;
                }
                Some(Self::from_stages(start_rate / u, v))
            }
            _ => None,
        }
    }

    fn from_stages(start_rate: f64, stages: Vec<(f64, f64, f64)>) -> Self {
        Self {
            start_rate,
            stages,
            stage: 0,
            stage_start: 0.0,
            before: 0.0,
        }
    }

    /// Total arrivals the schedule makes.
    pub fn total(&self) -> u64 {
        let n: f64 = self.stages.iter().map(|(d, a, b)| d * (a + b) / 2.0).sum();
        // Arrival k happens at cumulative count k, so counts 0..ceil(n) fit.
        (n - 1e-9).ceil().max(0.0) as u64
    }

    /// How many arrivals are due by `t` from the start (those at or before
    /// it), in one step however many there are.
    pub fn due_by(&self, t: Duration) -> u64 {
        let t = t.as_secs_f64();
        let (mut n, mut at) = (0.0, 0.0);
        for &(d, a, b) in &self.stages {
            if t < at + d {
                let x = t - at;
                n += a * x + (b - a) / (2.0 * d) * x * x;
                // Arrival j is due once the count reaches j: 0..=floor(n)
                // (with time_of's tolerance).
                return (((n + 1e-9).floor() + 1.0) as u64).min(self.total());
            }
            n += d * (a + b) / 2.0;
            at += d;
        }
        self.total()
    }

    /// Time of arrival `k` (0-based), or None when the schedule ends first.
    /// Calls must come with non-decreasing `k`.
    pub fn time_of(&mut self, k: u64) -> Option<Duration> {
        let _ = self.start_rate;
        let k = k as f64;
        while self.stage < self.stages.len() {
            let (d, a, b) = self.stages[self.stage];
            let in_stage = d * (a + b) / 2.0;
            if k < self.before + in_stage - 1e-9 {
                let need = k - self.before;
                // Solve a*t + (b-a)/(2d)*t^2 = need, in its numerically stable form.
                let disc = a * a + 2.0 * (b - a) * need / d;
                let t = if need <= 0.0 {
                    0.0
                } else {
                    2.0 * need / (a + disc.max(0.0).sqrt())
                };
                return Some(Duration::from_secs_f64(self.stage_start + t.min(d)));
            }
            self.before += in_stage;
            self.stage_start += d;
            self.stage += 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(secs: u64, target: f64) -> Stage {
        Stage {
            duration: Dur(Duration::from_secs(secs)),
            target,
            spike: false,
        }
    }

    #[test]
    fn constant_arrivals_are_exact() {
        let exec = Executor::ConstantArrivalRate {
            rate: 200.0,
            time_unit: Duration::from_secs(1),
            duration: Duration::from_secs(5),
            pre_allocated_vus: 1,
            max_vus: 1,
        };
        let mut a = Arrivals::new(&exec).unwrap();
        assert_eq!(a.total(), 1000);
        assert_eq!(a.time_of(0), Some(Duration::ZERO));
        assert_eq!(a.time_of(200), Some(Duration::from_secs(1)));
        assert!(a.time_of(999).is_some());
        assert_eq!(a.time_of(1000), None);
    }

    #[test]
    fn ramping_arrivals_follow_the_integral() {
        // 0 -> 100/s over 10s: 500 arrivals, half of them in the last ~2.93s.
        let exec = Executor::RampingArrivalRate {
            start_rate: 0.0,
            time_unit: Duration::from_secs(1),
            stages: vec![st(10, 100.0)],
            pre_allocated_vus: 1,
            max_vus: 1,
        };
        let mut a = Arrivals::new(&exec).unwrap();
        assert_eq!(a.total(), 500);
        let t = a.time_of(250).unwrap().as_secs_f64();
        assert!((t - 50f64.sqrt()).abs() < 1e-6, "{t}");
        let mut count = 0;
        let mut k = 0;
        let mut a = Arrivals::new(&exec).unwrap();
        while a.time_of(k).is_some() {
            count += 1;
            k += 1;
        }
        assert_eq!(count, 500);
    }

    #[test]
    fn due_by_counts_what_time_of_schedules() {
        let exec = Executor::RampingArrivalRate {
            start_rate: 10.0,
            time_unit: Duration::from_secs(1),
            stages: vec![st(10, 100.0), st(0, 5.0), st(5, 5.0)],
            pre_allocated_vus: 1,
            max_vus: 1,
        };
        let mut a = Arrivals::new(&exec).unwrap();
        assert_eq!(a.due_by(Duration::ZERO), 1);
        let times: Vec<Duration> = (0..).map_while(|k| a.time_of(k)).collect();
        assert_eq!(times.len() as u64, a.total());
        for (k, w) in times.windows(2).enumerate() {
            let k = k as u64;
            // Arrival k is due from its time (to the nanosecond it was
            // rounded to); the next one not before its own.
            assert!(a.due_by(w[0] + Duration::from_nanos(1)) > k, "{k}");
            if w[1] > w[0] + Duration::from_micros(1) {
                assert_eq!(a.due_by(w[0] + (w[1] - w[0]) / 2), k + 1, "{k}");
            }
        }
        assert_eq!(a.due_by(Duration::from_secs(3600)), a.total());
        // A billion a second for a minute: counted in one step.
        let fast = Executor::ConstantArrivalRate {
            rate: 1e9,
            time_unit: Duration::from_secs(1),
            duration: Duration::from_secs(60),
            pre_allocated_vus: 1,
            max_vus: 1,
        };
        let f = Arrivals::new(&fast).unwrap();
        assert_eq!(f.due_by(Duration::from_secs(30)), 30_000_000_001);
    }

    #[test]
    fn vu_intervals_sum_to_the_ramp() {
        let stages = vec![st(10, 10.0), st(5, 10.0), st(10, 0.0)];
        let all: Vec<_> = (0..10).map(|i| vu_intervals(0, &stages, i)).collect();
        assert_eq!(all[0], vec![(Duration::ZERO, Duration::from_secs(25))]);
        assert_eq!(all[9][0].0, Duration::from_secs(9));
        assert_eq!(all[9][0].1, Duration::from_secs(16));
        for t in [0.5, 3.2, 9.9, 12.0, 17.5, 24.9] {
            let at = Duration::from_secs_f64(t);
            let running = all
                .iter()
                .filter(|iv| iv.iter().any(|(a, b)| *a <= at && at < *b))
                .count();
            let want = ramp_value(0.0, &stages, at).ceil() as usize;
            assert_eq!(running, want, "at {t}s");
        }
    }

    #[test]
    fn spike_back_up_reactivates() {
        let stages = vec![st(1, 5.0), st(1, 1.0), st(1, 5.0)];
        let iv = vu_intervals(0, &stages, 3);
        assert_eq!(iv.len(), 2, "{iv:?}");
    }
}
