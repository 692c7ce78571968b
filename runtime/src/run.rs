//! `volley run`: load, prepare, drive, judge, report.

use crate::aggregate::Aggregator;
use crate::engine::{self, Control, Observer, RunOptions};
use crate::progress::Progress;
use crate::records;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use volley_config::plan::Plan;
use volley_model::judge;
use volley_model::summary::{RunInfo, ScenarioInfo, SeriesRecord, Summary, ThresholdSource};
use volley_protocols::PrepareError;
use volley_protocols::metrics::Slot;

pub struct Settings {
    pub quiet: bool,
    pub workers: usize,
    pub seed: u64,
    pub start_at: Option<SystemTime>,
    /// Do not judge thresholds (no abort_on_fail, no exit 99): the parts of a
    /// distributed run, judged together by `volley merge`.
    pub no_thresholds: bool,
    /// Distinct series kept apart; past it new tag values fold into `other`.
    pub max_series: usize,
    /// Points of per-series history kept (see `volley_model::history`).
    pub history_points: usize,
}

impl Settings {
    /// Defaults for everything but how the run is shown.
    pub fn new(quiet: bool) -> Self {
        Self {
            quiet,
            workers: 1,
            seed: 0,
            start_at: None,
            no_thresholds: false,
            max_series: volley_protocols::metrics::DEFAULT_MAX_SERIES,
            history_points: volley_model::history::SERIES_POINTS,
        }
    }
}

/// Why a run did not happen or could not finish.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The plan cannot run against its target (e.g. a statement does not
    /// prepare): a bad plan, nothing was sent.
    #[error(transparent)]
    Monitor(#[from] crate::monitor::MonitorError),
    /// A scenario's driver found its target cannot run the plan.
    #[error("scenario {scenario:?}: {problem}")]
    Prepare {
        scenario: String,
        problem: PrepareError,
    },
    /// The machine could not run it: no worker thread could start.
    #[error(transparent)]
    Workers(#[from] engine::StartError),
    /// `[setup]` failed, so no VU started.
    #[error("{0}")]
    Runtime(String),
}

pub struct Report {
    pub summary: Summary,
    pub series: Vec<(SeriesRecord, Slot)>,
    pub thresholds_ok: bool,
    pub interrupted: bool,
    /// Why `[teardown]` failed, if it did: the run is a failure (exit 1)
    /// though its summary stands.
    pub teardown_failed: Option<String>,
}

/// Stops the run when a threshold marked abort_on_fail fails.
struct AbortOnFail {
    plan: Arc<Plan>,
    enabled: bool,
}

impl Observer for AbortOnFail {
    fn on_interval(&mut self, agg: &Aggregator, elapsed: Duration) -> Option<String> {
        if !self.enabled {
            return None;
        }
        for set in &self.plan.thresholds {
            let armed: Vec<_> = set
                .items
                .iter()
                .filter(|t| t.abort_on_fail && elapsed >= t.delay_abort_eval)
                .collect();
            if armed.is_empty() {
                continue;
            }
            // The judge of the summary's verdicts, on the totals so far.
            let stats = judge::threshold_stats(&agg.totals(), set, elapsed);
            for t in armed {
                if t.eval(&stats).0 == Some(false) {
                    return Some(format!(
                        "threshold {} '{}' failed (abort_on_fail)",
                        set.key, t.source
                    ));
                }
            }
        }
        None
    }
}

/// Run the plan to the end (or until stopped) and build its summary.
pub async fn execute(
    plan: Arc<Plan>,
    s: &Settings,
    control: Control,
    extra: &mut [&mut dyn Observer],
) -> Result<Report, RunError> {
    for sc in &plan.scenarios {
        sc.driver
            .prepare()
            .await
            .map_err(|problem| RunError::Prepare {
                scenario: sc.name.clone(),
                problem,
            })?;
    }
    crate::monitor::prepare(&plan.monitors).await?;
    // The run's series table: the plan's metrics, no series yet.
    let registry = plan.metrics.registry();
    registry.set_max_series(s.max_series);
    // [setup] before any VU (and before a distributed start's countdown);
    // its samples join the totals at the end, apart from the scenarios'.
    let mut phase_shards = Vec::new();
    if let Some(setup) = &plan.setup {
        let out = crate::phase::run(setup, registry.clone(), s.seed, control.stop.clone()).await;
        let values = out
            .result
            .map_err(|e| RunError::Runtime(format!("[setup] failed, so no VU started: {e}")))?;
        phase_shards.push(out.shard);
        if !plan.setup_vars.set(values) {
            return Err(RunError::Runtime(
                "[setup] values were already set: a plan runs once".into(),
            ));
        }
    }
    if let Some(at) = s.start_at {
        crate::progress::countdown(at, s.quiet, &control.stop).await;
    }
    let mut progress = Progress::new(plan.duration(), s.quiet);
    let mut abort = AbortOnFail {
        plan: plan.clone(),
        enabled: !s.no_thresholds,
    };
    let mut capacity = crate::capacity::Watch::new(&plan);
    let mut observers: Vec<&mut dyn Observer> = vec![&mut progress, &mut abort, &mut capacity];
    for o in extra.iter_mut() {
        observers.push(&mut **o);
    }
    let mut result = engine::run(
        plan.clone(),
        registry.clone(),
        RunOptions {
            workers: s.workers,
            seed: s.seed,
            history_points: s.history_points,
        },
        control.clone(),
        &mut observers,
    )
    .await?;
    // [teardown] after the last VU, also after a stop; a second Ctrl-C cuts it.
    let mut teardown_failed = None;
    if let Some(teardown) = &plan.teardown {
        let out = crate::phase::run(teardown, registry.clone(), s.seed, control.kill.clone()).await;
        teardown_failed = out.result.err();
        phase_shards.push(out.shard);
    }
    for shard in phase_shards {
        let totals = &mut result.agg.totals;
        for (id, slot) in shard.slots.iter().enumerate() {
            if id >= totals.len() {
                totals.resize_with(id + 1, Slot::default);
            }
            totals[id].merge(slot);
        }
    }
    let mut series = records::collect_series(&result.agg);
    // Parts of a distributed run carry their thresholds but leave judging to the merge.
    let judged = if s.no_thresholds {
        &[][..]
    } else {
        &plan.thresholds[..]
    };
    let records = records::interval_records(&result.agg);
    let (mut answers, answer_series) = capacity.finish(&result.agg);
    let trend_stats = plan
        .summary_trend_stats
        .as_deref()
        .unwrap_or(volley_model::trend_stats::DEFAULT);
    series.extend(answer_series);
    answers.monitors = crate::monitor::reports(&plan.monitors, &result.agg, &series);
    let (metrics, thresholds_ok) = volley_model::derive::derive_with(
        &series,
        judged,
        result.elapsed,
        trend_stats,
        &|set, after| {
            result
                .agg
                .tracked(&set.metric, &set.filter, after.as_secs_f64())
                .and_then(|t| t.slope_per_hour())
        },
    );
    let started_ms = result
        .started
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    let info = RunInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        plan: plan.file.display().to_string(),
        plan_digest: plan.digest.clone(),
        segment: plan.segment.to_string(),
        started: humantime::format_rfc3339_millis(result.started).to_string(),
        started_unix_ms: started_ms,
        duration_s: result.elapsed.as_secs_f64(),
        aborted: result.aborted.clone(),
        scenarios: plan
            .scenarios
            .iter()
            .map(|sc| ScenarioInfo {
                name: sc.name.clone(),
                driver: sc.driver_name.clone(),
                executor: sc.exec.name().to_string(),
                description: sc.exec.describe(),
                max_vus: sc.exec.max_vus(),
                duration_s: sc.exec.duration().as_secs_f64(),
                graceful_stop_s: sc.graceful_stop.as_secs_f64(),
            })
            .collect(),
        thresholds: plan
            .thresholds
            .iter()
            .map(|t| ThresholdSource {
                key: t.key.clone(),
                expressions: t.items.iter().map(|i| i.source.clone()).collect(),
                allow_empty: t
                    .items
                    .iter()
                    .filter(|i| i.allow_empty)
                    .map(|i| i.source.clone())
                    .collect(),
            })
            .collect(),
        merge: None,
        folded: registry.folded(),
        summary_trend_stats: plan
            .summary_trend_stats
            .iter()
            .flatten()
            .map(|t| t.key())
            .collect(),
        drivers: {
            let mut drivers: Vec<volley_protocols::descriptor::Descriptor> = Vec::new();
            for sc in &plan.scenarios {
                let d = sc.driver.descriptor();
                if !drivers.iter().any(|o| o.name == d.name) {
                    drivers.push(d.clone());
                }
            }
            drivers
        },
    };
    let interrupted =
        control.stop.is_cancelled() && result.aborted.as_deref() == Some("stopped by the user");
    Ok(Report {
        summary: Summary {
            volley: info,
            metrics,
            series: series.iter().map(|(r, _)| r.clone()).collect(),
            interval_series: records.series,
            rollup_series: records.rollups,
            interval_s: records.interval_s,
            intervals: records.intervals,
            rollup_s: records.rollup_s,
            rollup_intervals: records.rollup_intervals,
            capacity: answers,
        },
        series,
        thresholds_ok,
        interrupted,
        teardown_failed,
    })
}

/// Ctrl-C (or SIGTERM, as container runtimes and CI send) once: graceful
/// stop; twice: stop now. Abort the handle once the run is over, so a later
/// signal is not taken for a stop.
pub fn install_ctrl_c(control: &Control) -> tokio::task::JoinHandle<()> {
    let control = control.clone();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        if stop_signal(&mut term).await {
            eprintln!(
                "\nstopping: letting iterations finish (graceful_stop); Ctrl-C again to stop now"
            );
            control.stop.cancel();
            if stop_signal(&mut term).await {
                control.kill.cancel();
            }
        }
    })
}

/// The next Ctrl-C or SIGTERM; false when signals cannot be watched.
async fn stop_signal(term: &mut Option<tokio::signal::unix::Signal>) -> bool {
    let sigterm = async {
        match term {
            Some(t) => t.recv().await.is_some(),
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.is_ok(),
        r = sigterm => r,
    }
}
