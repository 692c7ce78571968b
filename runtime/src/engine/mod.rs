//! The engine: worker threads (one current-thread runtime each), lanes per
//! scenario, a flush every second to the aggregator, observers on the totals.

mod lanes;
mod timer;

use crate::aggregate::{Aggregator, Flush, VuSample};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use volley_config::plan::Plan;
use volley_config::with_driver;
use volley_protocols::metrics::{MetricKind, Recorder, Registry, Tags, Unit};

/// VUs busy and allocated, per scenario on one worker.
type VuCounts = (Rc<lanes::VuGauge>, Rc<lanes::VuGauge>);

pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Stops a run from outside: `stop` winds down gracefully, `kill` at once.
#[derive(Clone, Default)]
pub struct Control {
    pub stop: CancellationToken,
    pub kill: CancellationToken,
}

/// Watches the run as intervals complete (progress line, outputs,
/// abort-on-fail thresholds). Returning Some(reason) stops the run.
pub trait Observer {
    /// The moment interval 0 starts (wall clock), before any interval completes.
    fn on_start(&mut self, _started: SystemTime) {}
    fn on_interval(&mut self, agg: &Aggregator, elapsed: Duration) -> Option<String>;
    fn on_end(&mut self, _agg: &Aggregator, _elapsed: Duration) {}
}

pub struct RunOptions {
    pub workers: usize,
    pub seed: u64,
    /// Points of per-series history kept (see `volley_model::history`).
    pub history_points: usize,
}

pub struct RunResult {
    pub agg: Aggregator,
    pub started: SystemTime,
    pub elapsed: Duration,
    /// Why the run stopped early, if it did.
    pub aborted: Option<String>,
}

/// A worker thread the system would not start.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot start worker thread {worker} of {workers}: {e}; lower --workers or free resources (threads, open files, memory)"
)]
pub struct StartError {
    worker: usize,
    workers: usize,
    e: std::io::Error,
}

/// Run `plan`; its series are registered in `registry`, the run's own
/// (made from the plan's metrics: `plan.metrics.registry()`).
pub async fn run(
    plan: Arc<Plan>,
    registry: Arc<Registry>,
    opts: RunOptions,
    control: Control,
    observers: &mut [&mut dyn Observer],
) -> Result<RunResult, StartError> {
    let workers = opts.workers.max(1);
    let names: Vec<String> = plan.scenarios.iter().map(|s| s.name.clone()).collect();
    let mut agg = Aggregator::new(registry.clone(), workers, &names);
    agg.set_history_points(opts.history_points);
    // Gauges whose slope the summary reports, fitted as the run goes.
    crate::monitor::track(&plan.monitors, &mut agg);
    for set in &plan.thresholds {
        for t in &set.items {
            if let volley_model::threshold::Agg::Slope { after, .. } = t.agg {
                agg.track(&set.metric, &set.filter, after.as_secs_f64());
            }
        }
    }
    // A short lead so every worker starts on the same clock.
    let t0 = Instant::now() + Duration::from_millis(20);
    let started = SystemTime::now() + Duration::from_millis(20);
    let shared_counters: Vec<Arc<AtomicU64>> =
        plan.scenarios.iter().map(|_| Arc::default()).collect();
    let (tx, mut rx) = mpsc::unbounded_channel::<Flush>();
    let mut threads = Vec::new();
    for w in 0..workers {
        let (wplan, wregistry, wtx, wcontrol, counters) = (
            plan.clone(),
            registry.clone(),
            tx.clone(),
            control.clone(),
            shared_counters.clone(),
        );
        let seed = opts.seed;
        // The runtime is built here, so that a machine out of threads, file
        // descriptors or memory is an error of the run, not a panic in a thread.
        let spawned = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .and_then(|rt| {
                std::thread::Builder::new()
                    .name(format!("volley-worker-{w}"))
                    .spawn(move || {
                        let local = tokio::task::LocalSet::new();
                        local.block_on(
                            &rt,
                            worker(
                                w, workers, wplan, wregistry, t0, wcontrol, counters, seed, wtx,
                            ),
                        );
                    })
            });
        match spawned {
            Ok(handle) => threads.push(handle),
            Err(e) => {
                // The workers already started stop before their first iteration.
                control.stop.cancel();
                control.kill.cancel();
                drop(tx);
                for t in threads {
                    let _ = t.join();
                }
                return Err(StartError {
                    worker: w + 1,
                    workers,
                    e,
                });
            }
        }
    }
    for o in observers.iter_mut() {
        o.on_start(started);
    }
    drop(tx);

    let mut aborted = None;
    while let Some(flush) = rx.recv().await {
        let completed = agg.push(flush);
        for _ in 0..completed {
            let elapsed = t0.elapsed();
            for o in observers.iter_mut() {
                if let Some(reason) = o.on_interval(&agg, elapsed)
                    && aborted.is_none()
                {
                    aborted = Some(reason);
                    control.stop.cancel();
                }
            }
        }
    }
    agg.finish();
    for t in threads {
        let _ = t.join();
    }
    let elapsed = t0.elapsed();
    for o in observers.iter_mut() {
        o.on_end(&agg, elapsed);
    }
    if aborted.is_none() && control.stop.is_cancelled() {
        aborted = Some("stopped by the user".into());
    }
    Ok(RunResult {
        agg,
        started,
        elapsed,
        aborted,
    })
}

#[allow(clippy::too_many_arguments)]
async fn worker(
    w: usize,
    workers: usize,
    plan: Arc<Plan>,
    registry: Arc<Registry>,
    t0: Instant,
    control: Control,
    shared_counters: Vec<Arc<AtomicU64>>,
    seed: u64,
    tx: mpsc::UnboundedSender<Flush>,
) {
    let rec = Recorder::new(registry.clone());
    let reg = &registry;
    let (it_m, itd_m, drop_m, int_m) = (
        reg.metric("iterations", MetricKind::Counter, Unit::Default),
        reg.metric("iteration_duration", MetricKind::Trend, Unit::Time),
        reg.metric("dropped_iterations", MetricKind::Counter, Unit::Default),
        reg.metric("interrupted_iterations", MetricKind::Counter, Unit::Default),
    );
    let seg = plan.segment;
    let mut counts = Vec::new();
    let mut handles = Vec::new();
    for (si, sc) in plan.scenarios.iter().enumerate() {
        let active: Rc<lanes::VuGauge> = Rc::default();
        let allocated: Rc<lanes::VuGauge> = Rc::default();
        counts.push((active.clone(), allocated.clone()));
        let shared_total = match &sc.exec {
            volley_model::schedule::Executor::SharedIterations { iterations, .. } => {
                seg.share(*iterations)
            }
            _ => 0,
        };
        let start = t0 + sc.start_time;
        let tags: &Tags = &sc.tags;
        macro_rules! ctx {
            ($d:expr) => {
                lanes::LaneCtx {
                    driver: $d.clone(),
                    rec: rec.clone(),
                    exec: sc.exec.clone(),
                    think: sc.think_time,
                    start,
                    end: start + sc.exec.duration(),
                    graceful_stop: sc.graceful_stop,
                    stride: seg.count * workers as u64,
                    offset: seg.index + w as u64 * seg.count,
                    shared_total,
                    shared_counter: shared_counters[si].clone(),
                    stop: control.stop.clone(),
                    kill: control.kill.clone(),
                    active,
                    allocated,
                    iterations: rec.series(it_m, tags),
                    iteration_duration: rec.series(itd_m, tags),
                    dropped: rec.series(drop_m, tags),
                    interrupted: rec.series(int_m, tags),
                    seed: seed ^ (si as u64).wrapping_mul(0xA24B_AED4_963E_E407),
                }
            };
        }
        let h = with_driver!(&sc.driver, d => tokio::task::spawn_local(lanes::run_lane(ctx!(d))));
        handles.push(h);
    }
    // Monitors poll beside the VUs of one worker (and one segment of a
    // distributed run), recording into its shard: one pipeline, exact seconds.
    if w == 0 && seg.index == 0 && !plan.monitors.is_empty() {
        tokio::task::spawn_local(crate::monitor::poll_all(
            plan.monitors.clone(),
            rec.clone(),
            t0,
        ));
    }
    let all_done = async {
        for h in handles {
            let _ = h.await;
        }
    };
    tokio::pin!(all_done);
    let mut tick = tokio::time::interval_at((t0 + FLUSH_INTERVAL).into(), FLUSH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let snapshot = |counts: &[VuCounts]| {
        (
            counts
                .iter()
                .map(|(a, _)| a.take())
                .collect::<Vec<VuSample>>(),
            counts
                .iter()
                .map(|(_, b)| b.take())
                .collect::<Vec<VuSample>>(),
        )
    };
    let mut index = 0u64;
    loop {
        tokio::select! {
            _ = &mut all_done => break,
            _ = tick.tick() => {
                let (active, allocated) = snapshot(&counts);
                let _ = tx.send(Flush { worker: w, index, shard: rec.take(), active, allocated, last: false });
                index += 1;
            }
        }
    }
    let (active, allocated) = snapshot(&counts);
    let _ = tx.send(Flush {
        worker: w,
        index,
        shard: rec.take(),
        active,
        allocated,
        last: true,
    });
}
