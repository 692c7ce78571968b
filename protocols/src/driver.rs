//! The driver contract: what the engine needs from a protocol.
//!
//! The engine owns time (executors decide when an iteration starts and stops);
//! a driver owns the protocol work of one iteration and records what it saw.
//! Drivers are generic, not boxed: the engine is monomorphized per driver, so
//! an iteration costs no allocation or dynamic dispatch.

use crate::data::Feeder;
use crate::error::PrepareError;
use crate::metrics::{Recorder, Registry, Tags};
use crate::template::{Scope, SetupVars, TemplateEnv};
use serde::Deserialize;
use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

crate::connection::with_connection_keys! {
    /// Plan-wide settings drivers may fall back on (`[defaults]`).
    #[derive(Clone, Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Defaults<headers = String> {
        ..connection,
        /// Redirects followed per request (10 unless set; 0 follows none).
        pub max_redirects: Option<u32>,
    }
}

pub use crate::connection::HttpVersion;

/// A metric the plan declares (`[metrics.NAME]`) for drivers to feed.
#[derive(Clone, Debug)]
pub struct DeclaredMetric {
    pub name: String,
    pub kind: crate::metrics::MetricKind,
    pub unit: crate::metrics::Unit,
}

/// What a driver is built from, besides its own options.
pub struct BuildCtx<'a> {
    pub scenario: &'a str,
    /// `scenario` plus the plan's tags for this scenario.
    pub tags: Tags,
    pub env: &'a HashMap<String, String>,
    pub feeders: &'a [Arc<Feeder>],
    pub registry: &'a Arc<Registry>,
    pub defaults: &'a Defaults,
    /// Directory of the plan file: relative paths in options start here.
    pub base_dir: PathBuf,
    /// Most VUs this scenario will run at once (plan-wide, before segmenting).
    pub max_vus: u64,
    /// `[metrics.NAME]` the plan declares.
    pub metrics: &'a [DeclaredMetric],
    /// What `[setup]` captures (`{{ setup.NAME }}`); None while building
    /// `[setup]` itself.
    pub setup: Option<&'a SetupVars>,
}

impl BuildCtx<'_> {
    /// Templates of this scenario: its env, feeders and setup values.
    pub fn templates(&self) -> TemplateEnv<'_> {
        let mut env = TemplateEnv::new(self.env, self.feeders, self.scenario);
        env.setup = self.setup.cloned();
        env
    }
}

/// Given to each VU when it is created, on the worker thread that runs it.
pub struct VuEnv {
    /// 0-based, unique across the plan's VUs of this scenario (and across segments).
    pub index: u64,
    pub recorder: Recorder,
    pub seed: u64,
}

/// Fires when the run is stopped early (Ctrl-C, an abort_on_fail threshold):
/// a long-lived session should end now, as a planned end. Lane-local and
/// cheap to clone; drivers with short iterations can ignore it.
#[derive(Clone, Default)]
pub struct Stop(Rc<StopInner>);

#[derive(Default)]
struct StopInner {
    fired: Cell<bool>,
    notify: tokio::sync::Notify,
}

impl Stop {
    pub fn fire(&self) {
        self.0.fired.set(true);
        self.0.notify.notify_waiters();
    }

    pub fn is_fired(&self) -> bool {
        self.0.fired.get()
    }

    /// Completes when the stop fires (at once if it already has). Pin it
    /// outside a loop rather than calling it on every turn.
    pub async fn fired(&self) {
        let notified = self.0.notify.notified();
        if self.0.fired.get() {
            return;
        }
        notified.await;
    }
}

impl std::fmt::Debug for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Stop({})", self.is_fired())
    }
}

/// One iteration as the executor asks for it.
#[derive(Clone, Debug)]
pub struct Iteration {
    /// 0-based count of this VU's iterations.
    pub number: u64,
    /// Open-model executors: when this arrival was scheduled to start.
    /// Latency of the first request is measured from here, so a stalled
    /// target shows up in the percentiles (no coordinated omission).
    pub scheduled: Option<Instant>,
    /// When the executor wants the VU to wind down (end of the scenario or of
    /// its ramp). Long-lived sessions end themselves here; a session still
    /// running then ended as planned, not as a drop.
    pub deadline: Option<Instant>,
    /// The run is being stopped early.
    pub stop: Stop,
}

pub trait Driver: Send + Sync + Sized + 'static {
    type Vu: Vu;
    /// The scenario's options, read from its table in the plan.
    type Options: serde::de::DeserializeOwned;

    /// The name plans use: `driver = "NAME"`.
    const NAME: &'static str;
    /// Memory one VU takes at least (measured: README, "How fast,
    /// measured"), so that plans needing more than the machine has are
    /// refused before anything is allocated.
    const VU_BYTES: u64 = 8_000;

    /// What the live line, summary, report, compare and capacity watch
    /// show of this driver (see [`crate::descriptor`]).
    fn descriptor() -> crate::descriptor::Descriptor;

    /// Build the scenario's driver from its options. `at` is where the plan
    /// names the driver, for errors that have no place of their own.
    fn from_plan(
        options: Self::Options,
        ctx: &BuildCtx<'_>,
        at: std::ops::Range<usize>,
    ) -> Result<Self, crate::ConfigError>;

    /// Make a VU. Cheap: connections are opened on first use.
    fn vu(self: &Arc<Self>, env: VuEnv) -> Self::Vu;

    /// Feeders this scenario reads (indexes into the plan's feeders), so the
    /// plan can check that `pick = "unique"` has a row for every VU.
    fn used_feeders(&self) -> &[usize] {
        &[]
    }

    /// Work beside the VUs while the scenario runs, such as sampling the
    /// server's own view of the load. Runs once per run (on the first worker
    /// of the first segment), from the scenario's start until `until`, when
    /// it is dropped. Record through `rec` like a VU does.
    fn background(self: &Arc<Self>, rec: Recorder, until: Instant) -> impl Future<Output = ()> {
        let _ = (rec, until);
        async {}
    }

    /// Every value this scenario's samples can carry for tag `key` (of the
    /// names a threshold filter may use: `name`, `group`, `event`), so a
    /// filter no sample can match is refused before the run. None: it cannot
    /// tell (a templated tag, a name only known while running).
    fn tag_values(&self, key: &str) -> Option<Vec<String>> {
        let _ = key;
        None
    }

    /// Checks that need the target (e.g. PREPARE every statement), run once
    /// before any load. An error here stops the run with exit code 2.
    fn prepare(self: &Arc<Self>) -> impl Future<Output = Result<(), PrepareError>> + Send {
        async { Ok(()) }
    }
}

pub trait Vu: 'static {
    fn iteration(&mut self, it: Iteration) -> impl Future<Output = ()>;

    /// Called when the VU retires, to close sessions politely.
    fn close(&mut self) -> impl Future<Output = ()> {
        async {}
    }
}

/// What a scenario's templates read, shared by its VUs: the plan's feeders,
/// the ones the templates use, and how many captured vars there are.
#[derive(Clone, Default)]
pub struct Inputs {
    pub vars: usize,
    pub feeders: Arc<[Arc<Feeder>]>,
    pub used: Arc<[usize]>,
}

impl Inputs {
    /// From the templates compiled for a scenario.
    pub fn of(env: &TemplateEnv) -> Self {
        Self {
            vars: env.vars.len(),
            feeders: env.feeders.into(),
            used: env.used_feeders.iter().copied().collect(),
        }
    }

    /// A VU's own state: its first feeder rows picked, its vars empty.
    pub fn state(&self, index: u64, seed: u64) -> VuState {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut rows = vec![0; self.feeders.len()];
        for &f in self.used.iter() {
            rows[f] = self.feeders[f].pick_row(index, &mut rng);
        }
        VuState {
            index,
            iter: 0,
            vars: vec![String::new(); self.vars],
            rows,
            rng,
            feeders: self.feeders.clone(),
            used: self.used.clone(),
        }
    }
}

/// Per-VU template state shared by drivers: captured vars, feeder rows, rng.
pub struct VuState {
    pub index: u64,
    pub iter: u64,
    pub vars: Vec<String>,
    pub rows: Vec<usize>,
    pub rng: fastrand::Rng,
    feeders: Arc<[Arc<Feeder>]>,
    used: Arc<[usize]>,
}

impl VuState {
    /// Start an iteration: pick the next feeder rows.
    pub fn begin(&mut self, iter: u64) {
        self.iter = iter;
        if iter > 0 {
            for &f in self.used.iter() {
                self.rows[f] = self.feeders[f].pick_row(self.index, &mut self.rng);
            }
        }
    }

    pub fn scope<'a>(&'a mut self, locals: &'a [&'a str]) -> Scope<'a> {
        Scope {
            vu: self.index + 1,
            iter: self.iter,
            vars: &self.vars,
            feeders: &self.feeders,
            rows: &self.rows,
            locals,
            rng: &mut self.rng,
        }
    }
}

/// The size of a VU's iteration future, for a scenario with `options` (its
/// keys in TOML): the engine creates and moves one per iteration, so each
/// driver's tests keep it small.
#[cfg(test)]
pub(crate) fn iteration_future_size<D: Driver>(options: &str) -> usize {
    let env = HashMap::new();
    let reg = Registry::new();
    let defaults = Defaults::default();
    let ctx = BuildCtx {
        scenario: "s",
        tags: Tags::default(),
        env: &env,
        feeders: &[],
        registry: &reg,
        defaults: &defaults,
        base_dir: ".".into(),
        max_vus: 1,
        metrics: &[],
        setup: None,
    };
    let o: D::Options = toml::from_str(options).expect("the test's options");
    let d = Arc::new(D::from_plan(o, &ctx, 0..0).expect("the test's driver"));
    let mut vu = d.vu(VuEnv {
        index: 0,
        recorder: Recorder::new(reg.clone()),
        seed: 1,
    });
    let f = vu.iteration(Iteration {
        number: 0,
        scheduled: None,
        deadline: None,
        stop: Stop::default(),
    });
    std::mem::size_of_val(&f)
}
