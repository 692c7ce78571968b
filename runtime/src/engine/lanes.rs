//! Executors, as run by one lane (one worker thread's share of a scenario).
//!
//! A lane owns the plan-wide indices `i` with `i % stride == offset`, both
//! for VUs and for arrivals, so the lanes of all workers (and of all segments
//! of a distributed run) together make exactly the plan's schedule.
//!
//! Nothing here runs per request: an iteration costs a flag check and two
//! metric records. Hard stops abort the VU tasks instead of every iteration
//! racing a cancellation future.

use super::timer::Timer;
use crate::aggregate::VuSample;
use std::cell::{Cell, RefCell};
use std::future::{Future, poll_fn};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::{sleep, sleep_until};
use tokio_util::sync::CancellationToken;
use volley_model::schedule::{Arrivals, Executor, vu_intervals};
use volley_protocols::duration::DurRange;
use volley_protocols::metrics::{Recorder, SeriesId};
use volley_protocols::{Driver, Iteration, Stop, Vu, VuEnv};

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
    /// VUs busy in an iteration (think time after it included), and VUs allocated.
    pub active: Rc<VuGauge>,
    pub allocated: Rc<VuGauge>,
    pub iterations: SeriesId,
    pub iteration_duration: SeriesId,
    pub dropped: SeriesId,
    pub interrupted: SeriesId,
    pub seed: u64,
}

struct Lane<D: Driver> {
    c: LaneCtx<D>,
    /// No new iterations in this lane (checked per iteration: a plain flag).
    winding_down: Cell<bool>,
    /// The same, for waits that sleep (think time, ramps).
    graceful: CancellationToken,
    /// Every task of this lane, aborted when graceful_stop runs out.
    tasks: RefCell<Vec<AbortHandle>>,
    /// Tells running iterations the run is stopping early.
    stop: Stop,
}

/// An iteration that has not finished; dropped armed, it counts as interrupted.
struct Unfinished<'a> {
    rec: &'a Recorder,
    id: SeriesId,
    armed: bool,
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.rec.add(self.id, 1);
        }
    }
}

/// A count of VUs on one worker, with its highest and lowest value since
/// the last flush: an iteration shorter than the flush interval is seen in
/// the peak even when no VU is busy at the moment of the flush.
#[derive(Default)]
pub struct VuGauge {
    now: Cell<u64>,
    peak: Cell<u64>,
    low: Cell<u64>,
}

impl VuGauge {
    /// The count now, and its fewest and most since the last call, which
    /// starts a new interval.
    pub fn take(&self) -> VuSample {
        let now = self.now.get();
        VuSample {
            now,
            low: self.low.replace(now).min(now),
            peak: self.peak.replace(now).max(now),
        }
    }
}

/// Counts one unit in a VU gauge for as long as it lives (also when a
/// task is aborted mid-iteration).
struct Held<'a>(&'a VuGauge);

impl<'a> Held<'a> {
    fn new(g: &'a VuGauge) -> Self {
        let n = g.now.get() + 1;
        g.now.set(n);
        if n > g.peak.get() {
            g.peak.set(n);
        }
        Held(g)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let n = self.0.now.get() - 1;
        self.0.now.set(n);
        if n < self.0.low.get() {
            self.0.low.set(n);
        }
    }
}

pub async fn run_lane<D: Driver>(c: LaneCtx<D>) {
    let lane = Rc::new(Lane {
        winding_down: Cell::new(false),
        graceful: c.stop.child_token(),
        tasks: RefCell::default(),
        stop: Stop::default(),
        c,
    });
    tokio::select! {
        _ = sleep_until(lane.c.start.into()) => {}
        _ = lane.c.stop.cancelled() => return,
    }
    let supervisor = tokio::task::spawn_local(supervise(lane.clone()));
    // One lane in the whole (possibly distributed) run owns the driver's background work.
    if lane.c.offset == 0 {
        let (driver, rec, end) = (lane.c.driver.clone(), lane.c.rec.clone(), lane.c.end);
        lane.spawn(async move {
            tokio::select! {
                _ = driver.background(rec, end) => {}
                _ = sleep_until(end.into()) => {}
            }
        });
    }
    let mut tasks = Vec::new();
    let owned = |n: u64| (lane.c.offset..n).step_by(lane.c.stride as usize);
    match lane.c.exec.clone() {
        Executor::ConstantVus { vus, .. } => {
            for i in owned(vus) {
                tasks.push(lane.spawn(closed_vu(lane.clone(), i, None, false)));
            }
        }
        Executor::PerVuIterations {
            vus, iterations, ..
        } => {
            for i in owned(vus) {
                tasks.push(lane.spawn(closed_vu(lane.clone(), i, Some(iterations), false)));
            }
        }
        Executor::SharedIterations { vus, .. } => {
            for i in owned(vus) {
                tasks.push(lane.spawn(closed_vu(lane.clone(), i, None, true)));
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
                    let ramp = ramping_vu(lane.clone(), i, iv, graceful_ramp_down, total);
                    tasks.push(lane.spawn(ramp));
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
            tasks = open_lane(lane.clone(), pre_allocated_vus, max_vus).await;
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    supervisor.abort();
    for t in lane.tasks.borrow().iter() {
        t.abort();
    }
}

/// End of schedule (or abort): no new iterations; after graceful_stop, drop the rest.
async fn supervise<D: Driver>(lane: Rc<Lane<D>>) {
    tokio::select! {
        _ = sleep_until(lane.c.end.into()) => {}
        _ = lane.c.stop.cancelled() => {}
    }
    lane.wind_down();
    tokio::select! {
        _ = sleep(lane.c.graceful_stop) => {}
        _ = lane.c.kill.cancelled() => {}
    }
    for t in lane.tasks.borrow().iter() {
        t.abort();
    }
}

impl<D: Driver> Lane<D> {
    fn spawn<F: Future<Output = ()> + 'static>(&self, f: F) -> JoinHandle<()> {
        let h = tokio::task::spawn_local(f);
        self.tasks.borrow_mut().push(h.abort_handle());
        h
    }

    fn wind_down(&self) {
        self.winding_down.set(true);
        self.graceful.cancel();
        if self.c.stop.is_cancelled() {
            self.stop.fire();
        }
    }

    fn new_vu(&self, index: u64) -> D::Vu {
        self.c.driver.vu(VuEnv {
            index,
            recorder: self.c.rec.clone(),
            seed: self.c.seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        })
    }

    /// Run one iteration; false when it was cut off at `cutoff`.
    async fn run_one(&self, vu: &mut D::Vu, it: Iteration, cutoff: Option<Instant>) -> bool {
        let began = Instant::now();
        let scheduled = it.scheduled;
        // Counts the iteration as interrupted if it does not finish: cut off
        // here, or its task aborted (graceful_stop ran out, a second Ctrl-C).
        let mut unfinished = Unfinished {
            rec: &self.c.rec,
            id: self.c.interrupted,
            armed: true,
        };
        let finished = match cutoff {
            None => {
                vu.iteration(it).await;
                true
            }
            Some(t) => tokio::select! {
                biased;
                () = vu.iteration(it) => true,
                _ = sleep_until(t.into()) => false,
            },
        };
        if finished {
            unfinished.armed = false;
            let rec = &self.c.rec;
            rec.add(self.c.iterations, 1);
            // Open models count from the scheduled start.
            let from = scheduled.filter(|s| *s < began).unwrap_or(began);
            rec.time(self.c.iteration_duration, from.elapsed());
        }
        finished
    }

    /// Pause between iterations; false when the lane is winding down.
    async fn think(&self, until: Option<Instant>) -> bool {
        let Some(t) = &self.c.think else {
            // An iteration may finish without ever waiting (a request whose
            // URL does not parse fails before any I/O): without a yield now
            // and then, the loop would keep this thread, and the supervisor
            // that ends the lane would never run. Costs a counter (tokio's
            // cooperative budget) until the budget is spent.
            tokio::task::coop::consume_budget().await;
            return !self.winding_down.get();
        };
        let d = t.pick(&mut fastrand::Rng::new());
        let limit = async {
            match until {
                Some(u) => sleep_until(u.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep(d) => !self.winding_down.get(),
            _ = self.graceful.cancelled() => false,
            _ = limit => false,
        }
    }
}

async fn closed_vu<D: Driver>(lane: Rc<Lane<D>>, index: u64, per_vu: Option<u64>, shared: bool) {
    let _alloc = Held::new(&lane.c.allocated);
    let mut vu = lane.new_vu(index);
    let busy = Held::new(&lane.c.active);
    let mut n = 0u64;
    loop {
        if lane.winding_down.get() || per_vu.is_some_and(|k| n >= k) {
            break;
        }
        if shared && lane.c.shared_counter.fetch_add(1, Ordering::Relaxed) >= lane.c.shared_total {
            break;
        }
        let it = Iteration {
            number: n,
            scheduled: None,
            deadline: Some(lane.c.end),
            stop: lane.stop.clone(),
        };
        lane.run_one(&mut vu, it, None).await;
        n += 1;
        if !lane.think(None).await {
            break;
        }
    }
    drop(busy);
    vu.close().await;
}

async fn ramping_vu<D: Driver>(
    lane: Rc<Lane<D>>,
    index: u64,
    intervals: Vec<(Duration, Duration)>,
    graceful_ramp_down: Duration,
    total: Duration,
) {
    let mut vu: Option<D::Vu> = None;
    let mut _alloc = None;
    let mut n = 0u64;
    for (a, b) in intervals {
        tokio::select! {
            _ = sleep_until((lane.c.start + a).into()) => {}
            _ = lane.graceful.cancelled() => break,
        }
        let until = lane.c.start + b;
        // Ramped down before the end: graceful_ramp_down applies; at the end, graceful_stop.
        let cutoff = (b < total).then_some(until + graceful_ramp_down);
        if vu.is_none() {
            _alloc = Some(Held::new(&lane.c.allocated));
            vu = Some(lane.new_vu(index));
        }
        let v = vu.as_mut().expect("created above");
        let busy = Held::new(&lane.c.active);
        let mut interrupted = false;
        while Instant::now() < until && !lane.winding_down.get() {
            let it = Iteration {
                number: n,
                scheduled: None,
                deadline: Some(until),
                stop: lane.stop.clone(),
            };
            if !lane.run_one(v, it, cutoff).await {
                interrupted = true;
                break;
            }
            n += 1;
            if !lane.think(Some(until)).await {
                break;
            }
        }
        drop(busy);
        if interrupted {
            // Its protocol state was cut mid-iteration: start afresh if it comes back.
            vu = None;
            _alloc = None;
        }
    }
    if let Some(mut v) = vu {
        v.close().await;
    }
}

/// Hands one arrival to an idle pooled VU, without locks (single thread).
#[derive(Default)]
struct Slot {
    job: Cell<Option<Instant>>,
    given: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Slot {
    /// `None` tells the VU to retire.
    fn give(&self, job: Option<Instant>) {
        self.job.set(job);
        self.given.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    async fn wait(&self) -> Option<Instant> {
        poll_fn(|cx| {
            if self.given.replace(false) {
                return Poll::Ready(self.job.take());
            }
            let mut w = self.waker.borrow_mut();
            if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *w = Some(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }
}

/// The idle VUs of an open lane, and the scheduler waiting for one while
/// every VU is busy.
#[derive(Default)]
struct Pool {
    idle: RefCell<Vec<Rc<Slot>>>,
    scheduler: RefCell<Option<Waker>>,
}

impl Pool {
    fn push(&self, slot: Rc<Slot>) {
        self.idle.borrow_mut().push(slot);
        if let Some(w) = self.scheduler.borrow_mut().take() {
            w.wake();
        }
    }

    fn pop(&self) -> Option<Rc<Slot>> {
        self.idle.borrow_mut().pop()
    }

    /// Completes once a VU is idle.
    async fn freed(&self) {
        poll_fn(|cx| {
            if !self.idle.borrow().is_empty() {
                return Poll::Ready(());
            }
            *self.scheduler.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

/// Arrivals handed out back to back (the schedule is behind) before the
/// scheduler yields, so the VUs it woke and the supervisor get to run.
const BURST: u32 = 64;
/// While every VU is busy and arrivals are due, how often missed ones are counted.
const DROP_TICK: Duration = Duration::from_millis(1);

/// This lane's arrival indices in `from..to`, `from` being one of them.
fn owned_in(from: u64, to: u64, stride: u64) -> u64 {
    if to > from {
        (to - from).div_ceil(stride)
    } else {
        0
    }
}

async fn open_lane<D: Driver>(lane: Rc<Lane<D>>, pre: u64, max: u64) -> Vec<JoinHandle<()>> {
    let pool: Rc<Pool> = Rc::default();
    let stride = lane.c.stride;
    let mut vu_indices = (lane.c.offset..max).step_by(stride as usize).peekable();
    let mut tasks = Vec::new();
    while let Some(&i) = vu_indices.peek() {
        if i >= pre {
            break;
        }
        vu_indices.next();
        // Idle from the start, before its task first runs: the first arrival
        // may be due at once, and must not be dropped for want of a VU.
        let slot = Rc::new(Slot::default());
        pool.push(slot.clone());
        tasks.push(lane.spawn(pool_vu(lane.clone(), pool.clone(), i, None, slot)));
    }
    let mut arrivals = Arrivals::new(&lane.c.exec).expect("open executor");
    let mut timer = Timer::new();
    let graceful = lane.graceful.clone();
    let mut stopping = std::pin::pin!(graceful.cancelled());
    let mut k = lane.c.offset;
    let mut burst = 0u32;
    let mut ran_out = false;
    // Every pass either waits, or hands out one arrival, or counts every
    // arrival due by now in one step: however high the rate, the loop stays
    // at the pace of the clock and of its VUs, and hears the stop.
    while let Some(t) = arrivals.time_of(k) {
        let at = lane.c.start + t;
        if at > Instant::now() {
            tokio::select! {
                _ = timer.sleep_until(at) => {}
                _ = &mut stopping => {
                    ran_out = true;
                    break;
                }
            }
            burst = 0;
        } else if burst >= BURST {
            tokio::task::yield_now().await;
            burst = 0;
        }
        if lane.winding_down.get() {
            ran_out = true;
            break;
        }
        if let Some(slot) = pool.pop() {
            slot.give(Some(at));
        } else if let Some(i) = vu_indices.next() {
            let vu = pool_vu(lane.clone(), pool.clone(), i, Some(at), Rc::default());
            tasks.push(lane.spawn(vu));
        } else {
            // No VU free: this arrival and every other one due by now are
            // dropped, counted at once; then wait for a VU or the next tick.
            let due = arrivals.due_by(Instant::now().saturating_duration_since(lane.c.start));
            let n = owned_in(k, due, stride).max(1);
            lane.c.rec.add(lane.c.dropped, n);
            k = k.saturating_add(n.saturating_mul(stride));
            tokio::select! {
                biased;
                _ = &mut stopping => {
                    ran_out = true;
                    break;
                }
                _ = pool.freed() => {}
                _ = sleep(DROP_TICK) => {}
            }
            burst = 0;
            continue;
        }
        burst += 1;
        k += stride;
    }
    // The schedule's time ran out (not a stop) with arrivals not yet handed
    // out: they were due, and no VU took them.
    if ran_out && !lane.c.stop.is_cancelled() {
        lane.c
            .rec
            .add(lane.c.dropped, owned_in(k, arrivals.total(), stride));
    }
    // No more arrivals: idle VUs retire now, busy ones after their iteration
    // (within graceful_stop).
    lane.wind_down();
    for slot in pool.idle.borrow_mut().drain(..) {
        slot.give(None);
    }
    tasks
}

/// A pooled VU of an open model. It starts with its first arrival, or (pre-allocated)
/// with its slot already in the idle list.
async fn pool_vu<D: Driver>(
    lane: Rc<Lane<D>>,
    pool: Rc<Pool>,
    index: u64,
    first: Option<Instant>,
    slot: Rc<Slot>,
) {
    let _alloc = Held::new(&lane.c.allocated);
    let mut vu = lane.new_vu(index);
    let mut queued = first.is_none();
    let mut job = first;
    let mut n = 0u64;
    loop {
        let at = match job.take() {
            Some(at) => at,
            None => {
                // A queued slot always hears back: a job, or None at wind-down.
                if !std::mem::take(&mut queued) {
                    if lane.winding_down.get() {
                        break;
                    }
                    pool.push(slot.clone());
                }
                match slot.wait().await {
                    Some(at) => at,
                    None => break,
                }
            }
        };
        let busy = Held::new(&lane.c.active);
        let it = Iteration {
            number: n,
            scheduled: Some(at),
            deadline: Some(lane.c.end),
            stop: lane.stop.clone(),
        };
        lane.run_one(&mut vu, it, None).await;
        n += 1;
        // Thinking, the VU is not free for an arrival: still busy.
        let go_on = lane.think(None).await;
        drop(busy);
        if !go_on {
            break;
        }
    }
    vu.close().await;
}
