//! The six k6 executors and the shape of time they produce: durations,
//! VUs over time, arrival times. Pure maths over a parsed schedule;
//! reading one from a plan is volley-config's.

use serde::Deserialize;
use std::time::Duration;
use volley_protocols::duration::{Dur, format_duration};

#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    pub duration: Dur,
    pub target: f64,
    /// Marks the stage whose end starts the recovery clock.
    #[serde(default)]
    pub spike: bool,
}

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

/// Arrivals one worker thread can start per second, at most: one a
/// microsecond, already faster than any driver's iteration (a request costs
/// tens of microseconds of CPU); past it the scheduler could only count drops.
pub const MAX_RATE_PER_CORE: f64 = 1e6;
/// From this rate per core on, expect dropped iterations: warn.
pub const HIGH_RATE_PER_CORE: f64 = 1e5;

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

/// One spike: consecutive stages marked `spike = true`.
#[derive(Clone, Debug, PartialEq)]
pub struct Spike {
    /// 1-based stage numbers, first and last.
    pub stages: (usize, usize),
    /// From the scenario's start.
    pub start: Duration,
    pub end: Duration,
}

/// Runs of consecutive `spike = true` stages.
pub fn spikes_of(exec: &Executor) -> Vec<Spike> {
    let stages: &[Stage] = match exec {
        Executor::RampingVus { stages, .. } | Executor::RampingArrivalRate { stages, .. } => stages,
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

/// The planned load of a scenario at `t` seconds into it: VUs (ramping-vus,
/// constant-vus) or arrivals per time unit (arrival-rate executors).
pub fn level_at(exec: &Executor, t: f64) -> Option<f64> {
    let d = volley_protocols::duration::secs(t);
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

    fn st_spike(secs: u64, target: f64, spike: bool) -> Stage {
        Stage {
            spike,
            ..st(secs, target)
        }
    }

    #[test]
    fn consecutive_spike_stages_are_one_spike() {
        let exec = Executor::RampingVus {
            start_vus: 0,
            stages: vec![
                st_spike(10, 5.0, false),
                st_spike(2, 50.0, true),
                st_spike(5, 50.0, true),
                st_spike(3, 5.0, false),
                st_spike(4, 60.0, true),
                st_spike(6, 5.0, false),
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
}
