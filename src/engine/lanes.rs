//! Executors, as run by one lane (one worker thread's share of a scenario).
//!
//! A lane owns the plan-wide indices `i` with `i % stride == offset`, both
//! for VUs and for arrivals, so the lanes of all workers (and of all segments
//! of a distributed run) together make exactly the plan's schedule.

use super::timer::Timer;
use crate::plan::executor::{Arrivals, Executor, vu_intervals};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::time::{sleep, sleep_until};
use tokio_util::sync::CancellationToken;
use volley_protocols::duration::DurRange;
use volley_protocols::metrics::{Recorder, SeriesId};
use volley_protocols::{Driver, Iteration, Vu, VuEnv};

pub struct LaneCtx<D: Driver> {
    pub driver: Arc<D>,
    pub rec: Recorder,
    pub exec: Executor,
    pub think: Option<DurRange>,
    /// Scenario start and the end of its schedule.
    pub start: Instant,
    pub end: Instant,
    pub graceful_stop: Duration,
    pub stride: u64,
    pub offset: u64,
    /// Iterations this instance runs for shared-iterations (its segment's share).
    pub shared_total: u64,
    pub shared_counter: Arc<AtomicU64>,
    /// Run-wide: stop starting iterations (abort, Ctrl-C); and drop in-flight ones.
    pub stop: CancellationToken,
    pub kill: CancellationToken,
    pub active: Rc<Cell<u64>>,
    pub allocated: Rc<Cell<u64>>,
    pub iterations: SeriesId,
    pub iteration_duration: SeriesId,
    pub dropped: SeriesId,
    pub seed: u64,
}

struct Lane<D: Driver> {
    c: LaneCtx<D>,
    /// No new iterations in this lane.
    graceful: CancellationToken,
    /// Drop iterations still running.
    hard: CancellationToken,
}

pub async fn run_lane<D: Driver>(c: LaneCtx<D>) {
    let lane = Rc::new(Lane {
        graceful: c.stop.child_token(),
        hard: c.kill.child_token(),
        c,
    });
    tokio::select! {
        _ = sleep_until(lane.c.start.into()) => {}
        _ = lane.c.stop.cancelled() => return,
    }
    let supervisor = tokio::task::spawn_local(supervise(lane.clone()));
    // One lane in the whole (possibly distributed) run owns the driver's background work.
    let background = (lane.c.offset == 0).then(|| {
        let (driver, rec) = (lane.c.driver.clone(), lane.c.rec.clone());
        let stop = lane.hard.clone();
        let end = lane.c.end;
        tokio::task::spawn_local(async move {
            let work = driver.background(rec, end);
            tokio::select! {
                _ = work => {}
                _ = sleep_until(end.into()) => {}
                _ = stop.cancelled() => {}
            }
        })
    });
    let mut tasks = Vec::new();
    let owned = |n: u64| (lane.c.offset..n).step_by(lane.c.stride as usize);
    match lane.c.exec.clone() {
        Executor::ConstantVus { vus, .. } => {
            for i in owned(vus) {
                tasks.push(tokio::task::spawn_local(closed_vu(
                    lane.clone(),
                    i,
                    None,
                    false,
                )));
            }
        }
        Executor::PerVuIterations {
            vus, iterations, ..
        } => {
            for i in owned(vus) {
                tasks.push(tokio::task::spawn_local(closed_vu(
                    lane.clone(),
                    i,
                    Some(iterations),
                    false,
                )));
            }
        }
        Executor::SharedIterations { vus, .. } => {
            for i in owned(vus) {
                tasks.push(tokio::task::spawn_local(closed_vu(
                    lane.clone(),
                    i,
                    None,
                    true,
                )));
            }
        }
        Executor::RampingVus {
            start_vus,
            stages,
            graceful_ramp_down,
        } => {
            let max = lane.c.exec.max_vus();
            let total = lane.c.exec.duration();
            for i in owned(max) {
                let iv = vu_intervals(start_vus, &stages, i);
                if !iv.is_empty() {
                    tasks.push(tokio::task::spawn_local(ramping_vu(
                        lane.clone(),
                        i,
                        iv,
                        graceful_ramp_down,
                        total,
                    )));
                }
            }
        }
        Executor::ConstantArrivalRate {
            pre_allocated_vus,
            max_vus,
            ..
        }
        | Executor::RampingArrivalRate {
            pre_allocated_vus,
            max_vus,
            ..
        } => {
            open_lane(lane.clone(), pre_allocated_vus, max_vus).await;
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    supervisor.abort();
    if let Some(b) = background {
        b.abort();
    }
}

/// End of schedule (or abort): no new iterations; graceful_stop later: drop the rest.
async fn supervise<D: Driver>(lane: Rc<Lane<D>>) {
    tokio::select! {
        _ = sleep_until(lane.c.end.into()) => {}
        _ = lane.c.stop.cancelled() => {}
    }
    lane.graceful.cancel();
    tokio::select! {
        _ = sleep(lane.c.graceful_stop) => {}
        _ = lane.c.kill.cancelled() => {}
    }
    lane.hard.cancel();
}

impl<D: Driver> Lane<D> {
    fn new_vu(&self, index: u64) -> D::Vu {
        self.c.allocated.set(self.c.allocated.get() + 1);
        self.c.driver.vu(VuEnv {
            index,
            recorder: self.c.rec.clone(),
            seed: self.c.seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        })
    }

    /// Run one iteration; false when it was cut off.
    async fn run_one(&self, vu: &mut D::Vu, it: Iteration, hard_at: Option<Instant>) -> bool {
        let began = Instant::now();
        let cutoff = async {
            match hard_at {
                Some(t) => sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        let finished = tokio::select! {
            biased;
            () = vu.iteration(it) => true,
            _ = self.hard.cancelled() => false,
            _ = cutoff => false,
        };
        if finished {
            let rec = &self.c.rec;
            rec.add(self.c.iterations, 1);
            rec.time(
                self.c.iteration_duration,
                began.elapsed() + began.saturating_duration_since(it.scheduled.unwrap_or(began)),
            );
        }
        finished
    }

    /// Pause between iterations; false when the lane is winding down.
    async fn think(&self, until: Option<Instant>) -> bool {
        let Some(t) = &self.c.think else { return true };
        let d = t.pick(&mut fastrand::Rng::new());
        let limit = async {
            match until {
                Some(u) => sleep_until(u.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep(d) => true,
            _ = self.graceful.cancelled() => false,
            _ = limit => false,
        }
    }

    fn busy(&self, delta: i64) {
        let a = &self.c.active;
        a.set((a.get() as i64 + delta) as u64);
    }

    async fn retire(&self, vu: &mut D::Vu) {
        tokio::select! {
            _ = vu.close() => {}
            _ = self.hard.cancelled() => {}
        }
        self.c.allocated.set(self.c.allocated.get() - 1);
    }
}

async fn closed_vu<D: Driver>(lane: Rc<Lane<D>>, index: u64, per_vu: Option<u64>, shared: bool) {
    let mut vu = lane.new_vu(index);
    lane.busy(1);
    let mut n = 0u64;
    loop {
        if lane.graceful.is_cancelled() || per_vu.is_some_and(|k| n >= k) {
            break;
        }
        if shared && lane.c.shared_counter.fetch_add(1, Ordering::Relaxed) >= lane.c.shared_total {
            break;
        }
        let it = Iteration {
            number: n,
            scheduled: None,
            deadline: Some(lane.c.end),
        };
        if !lane.run_one(&mut vu, it, None).await {
            break;
        }
        n += 1;
        if !lane.think(None).await {
            break;
        }
    }
    lane.busy(-1);
    lane.retire(&mut vu).await;
}

async fn ramping_vu<D: Driver>(
    lane: Rc<Lane<D>>,
    index: u64,
    intervals: Vec<(Duration, Duration)>,
    graceful_ramp_down: Duration,
    total: Duration,
) {
    let mut vu: Option<D::Vu> = None;
    let mut n = 0u64;
    for (a, b) in intervals {
        tokio::select! {
            _ = sleep_until((lane.c.start + a).into()) => {}
            _ = lane.graceful.cancelled() => break,
        }
        let until = lane.c.start + b;
        // Ramped down before the end: graceful_ramp_down applies; at the end, graceful_stop.
        let hard_at = (b < total).then_some(until + graceful_ramp_down);
        if vu.is_none() {
            vu = Some(lane.new_vu(index));
        }
        let v = vu.as_mut().expect("created above");
        lane.busy(1);
        let mut interrupted = false;
        while Instant::now() < until && !lane.graceful.is_cancelled() {
            let it = Iteration {
                number: n,
                scheduled: None,
                deadline: Some(until),
            };
            if !lane.run_one(v, it, hard_at).await {
                interrupted = true;
                break;
            }
            n += 1;
            if !lane.think(Some(until)).await {
                break;
            }
        }
        lane.busy(-1);
        if interrupted {
            // Its protocol state was cut mid-iteration: start afresh if it comes back.
            if let Some(mut old) = vu.take() {
                lane.retire(&mut old).await;
            }
        }
        if lane.hard.is_cancelled() {
            break;
        }
    }
    if let Some(mut v) = vu {
        lane.retire(&mut v).await;
    }
}

#[derive(Default)]
struct Slot {
    job: Cell<Option<Instant>>,
    wake: Notify,
}

async fn open_lane<D: Driver>(lane: Rc<Lane<D>>, pre: u64, max: u64) {
    let idle: Rc<RefCell<Vec<Rc<Slot>>>> = Rc::default();
    let stride = lane.c.stride as usize;
    let mut vu_indices = (lane.c.offset..max).step_by(stride).peekable();
    let mut tasks = Vec::new();
    while let Some(&i) = vu_indices.peek() {
        if i >= pre {
            break;
        }
        vu_indices.next();
        tasks.push(tokio::task::spawn_local(pool_vu(
            lane.clone(),
            idle.clone(),
            i,
            None,
        )));
    }
    let mut arrivals = Arrivals::new(&lane.c.exec).expect("open executor");
    let mut timer = Timer::new();
    let mut k = lane.c.offset;
    while let Some(t) = arrivals.time_of(k) {
        let at = lane.c.start + t;
        if at > Instant::now() {
            tokio::select! {
                _ = timer.sleep_until(at) => {}
                _ = lane.graceful.cancelled() => break,
            }
        }
        if lane.graceful.is_cancelled() {
            break;
        }
        let free = idle.borrow_mut().pop();
        match free {
            Some(slot) => {
                slot.job.set(Some(at));
                slot.wake.notify_one();
            }
            None => match vu_indices.next() {
                Some(i) => tasks.push(tokio::task::spawn_local(pool_vu(
                    lane.clone(),
                    idle.clone(),
                    i,
                    Some(at),
                ))),
                None => lane.c.rec.add(lane.c.dropped, 1),
            },
        }
        k += lane.c.stride;
    }
    // No more arrivals: idle VUs may go; busy ones finish within graceful_stop.
    lane.graceful.cancel();
    for t in tasks {
        let _ = t.await;
    }
}

async fn pool_vu<D: Driver>(
    lane: Rc<Lane<D>>,
    idle: Rc<RefCell<Vec<Rc<Slot>>>>,
    index: u64,
    first: Option<Instant>,
) {
    let mut vu = lane.new_vu(index);
    let slot = Rc::new(Slot::default());
    let mut job = first;
    let mut n = 0u64;
    loop {
        let at = match job.take() {
            Some(at) => at,
            None => {
                idle.borrow_mut().push(slot.clone());
                tokio::select! {
                    biased;
                    _ = slot.wake.notified() => match slot.job.take() {
                        Some(at) => at,
                        None => continue,
                    },
                    _ = lane.graceful.cancelled() => break,
                }
            }
        };
        lane.busy(1);
        let it = Iteration {
            number: n,
            scheduled: Some(at),
            deadline: Some(lane.c.end),
        };
        let ok = lane.run_one(&mut vu, it, None).await;
        lane.busy(-1);
        n += 1;
        if !ok || !lane.think(None).await {
            break;
        }
    }
    lane.retire(&mut vu).await;
}
