//! Plan files: parse, substitute `${ENV}`, validate, build drivers.
//! Every error points at file:line:column before any traffic is sent.

use crate::drivers::AnyDriver;
use crate::env;
use crate::executor::{self, COMMON_KEYS, Common};
use crate::machine;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use volley_model::metrics::MetricTable;
use volley_model::schedule::Executor;
use volley_model::segment::Segment;
use volley_model::threshold::{self, ThresholdSet};
use volley_model::trend_stats::TrendStat;
use volley_protocols::data::{Feeder, Pick};
use volley_protocols::driver::DeclaredMetric;
use volley_protocols::duration::{Dur, DurRange};
use volley_protocols::http::{HttpDriver, HttpOptions};
use volley_protocols::metrics::{MetricKind, PHASE_SETUP, PHASE_TEARDOWN, Registry, Tags, Unit};
use volley_protocols::span::{self, Spot};
use volley_protocols::template::SetupVars;
use volley_protocols::{BuildCtx, ConfigError, ConfigErrorKind, Defaults};

/// A plan error, located in its file.
#[derive(Debug)]
pub struct PlanError {
    pub file: String,
    /// 1-based line and column, when known.
    pub position: Option<(usize, usize)>,
    pub message: String,
    /// The offending line, for display.
    pub snippet: Option<String>,
    /// For callers that add advice to some kinds.
    pub kind: ConfigErrorKind,
}

impl PlanError {
    pub fn new(file: &str, message: impl Into<String>) -> Self {
        Self {
            file: file.to_string(),
            position: None,
            message: message.into(),
            snippet: None,
            kind: ConfigErrorKind::Other,
        }
    }

    fn locate(file: &str, source: &str, e: ConfigError) -> Self {
        let Some(span) = e.span else {
            return Self {
                kind: e.kind,
                ..Self::new(file, e.message)
            };
        };
        let spot = Spot::of(source, span);
        Self {
            file: file.to_string(),
            position: Some((spot.line, spot.col)),
            message: e.message,
            snippet: Some(spot.excerpt),
            kind: e.kind,
        }
    }
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        span::render(
            f,
            &self.file,
            self.position,
            &self.message,
            self.snippet.as_deref(),
        )
    }
}

impl std::error::Error for PlanError {}

pub struct Scenario {
    pub name: String,
    pub driver_name: String,
    pub exec: Executor,
    pub start_time: Duration,
    pub graceful_stop: Duration,
    pub tags: Tags,
    pub think_time: Option<DurRange>,
    pub driver: AnyDriver,
    pub breaking_point: Option<Spanned<toml::Value>>,
    /// Breaking-point signals, spikes and how recovery is judged.
    pub capacity: crate::capacity::ScenarioCapacity,
}

impl Scenario {
    /// When this scenario stops scheduling work, from the start of the run.
    pub fn end(&self) -> Duration {
        self.start_time + self.exec.duration()
    }
}

/// `[setup]` or `[teardown]`: HTTP requests run once, in order, before
/// the first VU starts or after the last one stops (k6's setup() and
/// teardown()).
pub struct Phase {
    pub driver: Arc<HttpDriver>,
    /// The longest it may take (k6's setupTimeout, teardownTimeout).
    pub max_duration: Duration,
}

/// How long `[setup]` and `[teardown]` may take unless `max_duration` says.
pub const PHASE_MAX_DURATION: Duration = Duration::from_secs(60);

pub struct Plan {
    pub file: PathBuf,
    pub source: String,
    /// Identity of the plan text, so merged parts can be checked to come from one plan.
    pub digest: String,
    pub defaults: Defaults,
    pub feeders: Vec<Arc<Feeder>>,
    pub scenarios: Vec<Scenario>,
    pub thresholds: Vec<ThresholdSet>,
    /// The metrics its scenarios, capacity answers and monitors record, as
    /// its thresholds were checked against them. A run's series are the
    /// runtime's (see [`MetricTable::registry`]).
    pub metrics: MetricTable,
    pub env: HashMap<String, String>,
    pub segment: Segment,
    /// `[monitors.NAME]`: polled once per second beside the run.
    pub monitors: Arc<[crate::monitor::MonitorSpec]>,
    pub setup: Option<Phase>,
    pub teardown: Option<Phase>,
    /// What `[setup]` captures, read by every template as `setup.NAME`;
    /// the run sets the values once setup has run.
    pub setup_vars: SetupVars,
    /// `[options] summary_trend_stats`: the trend statistics the summary
    /// shows; None: the default.
    pub summary_trend_stats: Option<Vec<TrendStat>>,
}

impl Plan {
    /// Scheduled length of the whole run (without graceful stops).
    pub fn duration(&self) -> Duration {
        self.scenarios
            .iter()
            .map(Scenario::end)
            .max()
            .unwrap_or_default()
    }

    /// Longest possible run, graceful stops included.
    pub fn max_duration(&self) -> Duration {
        self.scenarios
            .iter()
            .map(|s| s.end() + s.graceful_stop)
            .max()
            .unwrap_or_default()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DataSpec {
    file: Spanned<String>,
    pick: Option<Spanned<Pick>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Top {
    #[serde(default)]
    defaults: Defaults,
    #[serde(default)]
    data: BTreeMap<String, DataSpec>,
    #[serde(default)]
    options: Options,
}

/// `[options]`: how the run is reported.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    summary_trend_stats: Option<Spanned<Vec<Spanned<String>>>>,
}

pub const TOP_KEYS: &[&str] = &[
    "defaults",
    "options",
    "data",
    "scenarios",
    "thresholds",
    "monitors",
    "metrics",
    "setup",
    "teardown",
];

#[derive(Default)]
pub struct LoadOptions {
    pub env: HashMap<String, String>,
    pub segment: Segment,
    /// `--vus/--duration/--iterations/--stage`: every scenario runs this
    /// schedule instead of its own, from the start of the run.
    pub shape: Option<Executor>,
    /// `--threshold 'METRIC{tags}=EXPR'`: added to the plan's thresholds.
    pub thresholds: Vec<String>,
}

pub fn load(path: &Path, opts: &LoadOptions) -> Result<Plan, PlanError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path)
        .map_err(|e| PlanError::new(&file, format!("cannot read the plan: {e}")))?;
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    from_bytes(&file, &bytes, &base_dir, opts)
}

/// A plan from its text as read from `file`; relative data files are looked
/// up in `base_dir`.
pub fn from_bytes(
    file: &str,
    bytes: &[u8],
    base_dir: &Path,
    opts: &LoadOptions,
) -> Result<Plan, PlanError> {
    let source = std::str::from_utf8(bytes).map_err(|e| not_utf8(file, bytes, &e))?;
    parse(file, source, base_dir, opts).map_err(|e| PlanError::locate(file, source, e))
}

/// Where the text stops being UTF-8: line and column (in characters) of the
/// first bad byte, and its offset in the file.
fn not_utf8(file: &str, bytes: &[u8], e: &std::str::Utf8Error) -> PlanError {
    let at = e.valid_up_to();
    let spot = Spot::not_utf8(bytes, at);
    PlanError {
        file: file.to_string(),
        position: Some((spot.line, spot.col)),
        message: format!(
            "byte {at} (0x{:02x}) is not UTF-8; a plan is UTF-8 text: save it as UTF-8 (e.g. iconv -f latin1 -t utf-8)",
            bytes[at]
        ),
        snippet: Some(spot.excerpt),
        kind: ConfigErrorKind::Other,
    }
}

fn de<'a, T: Deserialize<'a>>(span: Range<usize>, table: DeTable<'a>) -> Result<T, ConfigError> {
    T::deserialize(ValueDeserializer::from(Spanned::new(
        span,
        DeValue::Table(table),
    )))
    .map_err(ConfigError::from)
}

fn parse(
    file: &str,
    source: &str,
    base_dir: &Path,
    opts: &LoadOptions,
) -> Result<Plan, ConfigError> {
    let root = DeTable::parse(source)?;
    let root_span = root.span();
    let mut root = Spanned::new(root_span.clone(), DeValue::Table(root.into_inner()));
    env::substitute(&mut root, &opts.env)?;
    let DeValue::Table(mut table) = root.into_inner() else {
        unreachable!("a document is a table")
    };
    for (k, _) in table.iter() {
        if !TOP_KEYS.contains(&k.get_ref().as_ref()) {
            return Err(ConfigError::at(
                k.span(),
                format!(
                    "unknown section `{}`; a plan has [defaults], [options], [data.NAME], [setup], [scenarios.NAME], [teardown], [metrics.NAME], [monitors.NAME] and [thresholds]",
                    k.get_ref()
                ),
            ));
        }
    }
    let scenarios_entry = table.remove("scenarios");
    let thresholds_entry = table.remove("thresholds");
    let monitors_entry = table.remove("monitors");
    let metrics_entry = table.remove("metrics");
    let setup_entry = table.remove("setup");
    let teardown_entry = table.remove("teardown");
    let top: Top = de(root_span.clone(), table)?;

    let mut feeders = Vec::new();
    for (name, spec) in top.data {
        // Relative to the plan's folder, as k6 resolves open(); else to the
        // current directory, so `file = "fixtures/data/users.csv"` works from the repo root.
        let rel = Path::new(spec.file.get_ref());
        let p = [base_dir.join(rel), rel.to_path_buf()]
            .into_iter()
            .find(|p| p.exists())
            .unwrap_or_else(|| base_dir.join(rel));
        let pick = spec.pick.as_ref().map(|p| *p.get_ref()).unwrap_or_default();
        let pick_span = spec
            .pick
            .as_ref()
            .map(Spanned::span)
            .unwrap_or(spec.file.span());
        let mut f = Feeder::load(&name, &p, pick).map_err(|e| {
            ConfigError::at(
                spec.file.span(),
                format!("{e} (a relative path is looked up in the plan's folder, then in the current directory)"),
            )
        })?;
        f.set_segment(opts.segment.index as usize, opts.segment.count as usize);
        feeders.push((Arc::new(f), pick_span));
    }
    let feeder_arcs: Vec<Arc<Feeder>> = feeders.iter().map(|(f, _)| f.clone()).collect();

    // Metrics are registered here while the plan is read; its series are
    // a run's, in a registry of its own.
    let registry = Registry::new();
    volley_model::metrics::register_engine(&registry);
    let declared = match metrics_entry {
        Some(entry) => declare_metrics(entry, &registry)?,
        None => Vec::new(),
    };

    let phase_ctx = |name: &'static str| BuildCtx {
        scenario: name,
        tags: Tags::new([(
            "group",
            if name == "setup" {
                PHASE_SETUP
            } else {
                PHASE_TEARDOWN
            },
        )]),
        env: &opts.env,
        feeders: &feeder_arcs,
        registry: &registry,
        defaults: &top.defaults,
        base_dir: base_dir.to_path_buf(),
        max_vus: 1,
        metrics: &declared,
        setup: None,
    };
    let setup = match setup_entry {
        Some(entry) => Some(phase("setup", entry, &phase_ctx("setup"))?),
        None => None,
    };
    let setup_vars = SetupVars::new(
        setup
            .as_ref()
            .map(|p| p.driver.captures().to_vec())
            .unwrap_or_default(),
    );
    let teardown = match teardown_entry {
        Some(entry) => {
            let mut ctx = phase_ctx("teardown");
            ctx.setup = Some(&setup_vars);
            Some(phase("teardown", entry, &ctx)?)
        }
        None => None,
    };

    let Some(scenarios_entry) = scenarios_entry else {
        return Err(ConfigError::at(
            0..0,
            "the plan has no scenarios: add e.g. [scenarios.api] with driver = \"http\" and an executor",
        ));
    };
    let scen_span = scenarios_entry.span();
    let DeValue::Table(scen_table) = scenarios_entry.into_inner() else {
        return Err(ConfigError::at(
            scen_span,
            "`scenarios` must be a table of [scenarios.NAME] sections",
        ));
    };
    if scen_table.is_empty() {
        return Err(ConfigError::at(
            scen_span,
            "no scenarios: add [scenarios.NAME] sections",
        ));
    }

    let machine = machine::Machine::detect();
    let mut scenarios = Vec::new();
    let mut scenario_tags = Vec::new();
    let trend_stats = match &top.options.summary_trend_stats {
        None => None,
        Some(list) => {
            if list.get_ref().is_empty() {
                return Err(ConfigError::at(
                    list.span(),
                    "summary_trend_stats is empty: list some of avg, min, med, max, count, p(N), or leave it out",
                ));
            }
            let mut out = Vec::new();
            for s in list.get_ref() {
                out.push(
                    TrendStat::parse(s.get_ref()).map_err(|e| {
                        ConfigError::at(s.span(), format!("summary_trend_stats: {e}"))
                    })?,
                );
            }
            Some(out)
        }
    };
    for (name, value) in scen_table {
        let name_text = name.get_ref().to_string();
        let span = value.span();
        let DeValue::Table(t) = value.into_inner() else {
            return Err(ConfigError::at(
                name.span(),
                format!("scenario {name_text:?} must be a table"),
            ));
        };
        let (mut common_t, mut driver_t) = (DeTable::new(), DeTable::new());
        for (k, v) in t {
            if COMMON_KEYS.contains(&k.get_ref().as_ref()) {
                common_t.insert(k, v);
            } else {
                driver_t.insert(k, v);
            }
        }
        // A typo of an engine key would otherwise surface as a confusing
        // "missing duration" or as an unknown driver option.
        for (k, _) in driver_t.iter() {
            if let Some(near) = COMMON_KEYS
                .iter()
                .find(|c| strsim::levenshtein(c, k.get_ref()) <= 2)
            {
                return Err(ConfigError::at(
                    k.span(),
                    format!(
                        "unknown key `{}` in scenario {name_text:?}; did you mean `{near}`?",
                        k.get_ref()
                    ),
                ));
            }
        }
        let mut common: Common = de(span.clone(), common_t)?;
        let exec = match &opts.shape {
            // The command line's schedule replaces the plan's, from the
            // start of the run; capacity questions belong to the plan's stages.
            Some(shape) => {
                common.start_time = None;
                common.breaking_point = None;
                common.recovery = None;
                shape.clone()
            }
            None => executor::executor(&common, name.span())?,
        };
        let driver_name = common.driver.as_ref().ok_or_else(|| {
            ConfigError::at(
                name.span(),
                format!(
                    "scenario {name_text:?} needs `driver`: one of {}",
                    crate::drivers::DRIVERS.join(", ")
                ),
            )
        })?;
        // Before the driver is built: refuse what cannot fit, having allocated nothing.
        executor::check_fits(
            &exec,
            &common,
            name.span(),
            driver_name.get_ref(),
            crate::drivers::vu_bytes(driver_name.get_ref()),
            opts.segment.count,
            &machine,
            opts.shape.is_some(),
        )?;
        let mut tags = Tags::new([("scenario", name_text.as_str())]);
        for (k, v) in &common.tags {
            tags = tags.with(k, v.clone());
        }
        let ctx = BuildCtx {
            scenario: &name_text,
            tags: tags.clone(),
            env: &opts.env,
            feeders: &feeder_arcs,
            registry: &registry,
            defaults: &top.defaults,
            base_dir: base_dir.to_path_buf(),
            max_vus: exec.max_vus(),
            metrics: &declared,
            setup: Some(&setup_vars),
        };
        // Where the scenario's own keys start: an unknown one of these may
        // be an engine key misplaced, one inside a request may not.
        let own_keys: Vec<usize> = driver_t.iter().map(|(k, _)| k.span().start).collect();
        let options = Spanned::new(span.clone(), DeValue::Table(driver_t));
        let driver = crate::drivers::build(driver_name, options, &ctx).map_err(|e| {
            // What a driver cannot place in the text is the scenario's.
            let e = e.or_at(name.span());
            let own = e.span.as_ref().is_some_and(|s| own_keys.contains(&s.start));
            if e.kind == ConfigErrorKind::UnknownKey && own {
                ConfigError {
                    message: format!(
                        "{}; the engine's scenario keys are {}",
                        e.message,
                        COMMON_KEYS.join(", ")
                    ),
                    ..e
                }
            } else {
                e
            }
        })?;
        for &fi in driver.used_feeders() {
            let (f, pick_span) = &feeders[fi];
            if f.pick == Pick::Unique && exec.max_vus() > f.len() as u64 {
                return Err(ConfigError::at(
                    pick_span.clone(),
                    format!(
                        "data.{} picks unique rows per VU, but scenario {name_text:?} runs up to {} VUs and {} has {} rows: add rows or use pick = \"round-robin\"",
                        f.name,
                        exec.max_vus(),
                        f.file,
                        f.len()
                    ),
                ));
            }
        }
        let capacity = crate::capacity::parse_scenario(
            &name_text,
            &exec,
            common.breaking_point.as_ref(),
            common.recovery.as_ref(),
            &registry,
        )
        .map_err(|e| e.or_at(name.span()))?;
        scenario_tags.push(common.tags.clone());
        scenarios.push(Scenario {
            capacity,
            name: name_text,
            driver_name: driver_name.get_ref().clone(),
            exec,
            start_time: common.start_time.map(|d: Dur| d.0).unwrap_or_default(),
            graceful_stop: common
                .graceful_stop
                .map(|d| d.0)
                .unwrap_or(Duration::from_secs(30)),
            tags,
            think_time: common.think_time,
            driver,
            breaking_point: common.breaking_point,
        });
    }

    let caps: Vec<&crate::capacity::ScenarioCapacity> =
        scenarios.iter().map(|s| &s.capacity).collect();
    crate::capacity::register_metrics(&registry, &caps);
    let monitors: Arc<[crate::monitor::MonitorSpec]> = match monitors_entry {
        Some(entry) => {
            let span = entry.span();
            crate::monitor::parse(entry, base_dir, &registry)
                .map_err(|e| e.or_at(span))?
                .into()
        }
        None => Arc::from([]),
    };

    let phases: Vec<&str> = [
        (setup.is_some(), PHASE_SETUP),
        (teardown.is_some(), PHASE_TEARDOWN),
    ]
    .into_iter()
    .filter_map(|(on, group)| on.then_some(group))
    .collect();
    let mut thresholds = Vec::new();
    let threshold_table = match thresholds_entry.map(|t| (t.span(), t.into_inner())) {
        None => DeTable::new(),
        Some((_, DeValue::Table(t))) => t,
        Some((span, _)) => {
            return Err(ConfigError::at(
                span,
                "[thresholds] must be a table of metric = [\"expression\", ...]",
            ));
        }
    };
    for (key, value) in threshold_table {
        let value_span = value.span();
        let items: Vec<Spanned<serde_json::Value>> =
            Deserialize::deserialize(ValueDeserializer::from(value))
                .map_err(|e| ConfigError::from(e).or_at(value_span.clone()))
                .map_err(|e| ConfigError {
                    message: format!("{}; thresholds are lists, e.g. [\"p(95)<200\"]", e.message),
                    ..e
                })?;
        let list: Vec<(serde_json::Value, Range<usize>)> = items
            .iter()
            .map(|i| (i.get_ref().clone(), i.span()))
            .collect();
        if list.is_empty() {
            return Err(ConfigError::at(
                value_span,
                "empty threshold list: add e.g. \"p(95)<200\"",
            ));
        }
        let key = Spanned::new(key.span(), key.get_ref().to_string());
        let set = threshold::parse_set(key.get_ref(), key.span(), &list)?;
        check_threshold(&set, &registry, &scenarios, &scenario_tags, &phases)?;
        thresholds.push(set);
    }
    for raw in &opts.thresholds {
        let set = command_line_threshold(raw)
            .and_then(|set| {
                check_threshold(&set, &registry, &scenarios, &scenario_tags, &phases)?;
                Ok(set)
            })
            .map_err(|e| {
                ConfigError::new(format!(
                    "--threshold {raw:?}: {}; write METRIC=EXPRESSION, e.g. --threshold 'http_req_duration=p(95)<3000'",
                    e.message
                ))
            })?;
        match thresholds.iter_mut().find(|t| t.key == set.key) {
            Some(t) => t.items.extend(set.items),
            None => thresholds.push(set),
        }
    }

    // Thresholds the plan's drivers set themselves (e.g. no forged webhook
    // accepted), unless the plan sets its own on the metric.
    for sc in &scenarios {
        for t in &sc.driver.descriptor().thresholds {
            if thresholds.iter().any(|s| s.metric == t.metric) {
                continue;
            }
            let list = [(serde_json::Value::from(t.expression.as_str()), 0..0)];
            thresholds.push(threshold::parse_set(&t.metric, 0..0, &list)?);
        }
    }
    let _ = file;

    Ok(Plan {
        file: PathBuf::from(file),
        source: source.to_string(),
        digest: digest(source),
        defaults: top.defaults,
        feeders: feeder_arcs,
        scenarios,
        thresholds,
        metrics: MetricTable::of(&registry),
        env: opts.env.clone(),
        segment: opts.segment,
        monitors,
        setup,
        teardown,
        setup_vars,
        summary_trend_stats: trend_stats,
    })
}

/// `[setup]` or `[teardown]`: the HTTP driver's keys (base_url, headers,
/// TLS, `requests` with their captures and checks) and `max_duration`.
fn phase(
    name: &str,
    entry: Spanned<DeValue<'_>>,
    ctx: &BuildCtx<'_>,
) -> Result<Phase, ConfigError> {
    let span = entry.span();
    let DeValue::Table(mut t) = entry.into_inner() else {
        return Err(ConfigError::at(
            span,
            format!("[{name}] is a table: [[{name}.requests]] with url, method, captures, checks"),
        ));
    };
    let max_duration = match t.remove("max_duration") {
        Some(v) => {
            let vspan = v.span();
            let d = Dur::deserialize(ValueDeserializer::from(v))
                .map_err(|e| ConfigError::from(e).or_at(vspan.clone()))?;
            if d.0.is_zero() {
                return Err(ConfigError::at(
                    vspan,
                    format!("[{name}] max_duration must be above 0, e.g. \"30s\""),
                ));
            }
            d.0
        }
        None => PHASE_MAX_DURATION,
    };
    let options: HttpOptions = de(span.clone(), t).map_err(|e| {
        let e = e.or_at(span.clone());
        if e.kind == ConfigErrorKind::UnknownKey {
            ConfigError {
                message: format!(
                    "[{name}]: {}; [{name}] takes the HTTP driver's keys and max_duration",
                    e.message
                ),
                ..e
            }
        } else {
            e
        }
    })?;
    let driver = HttpDriver::build_phase(name, options, ctx).map_err(|e| e.or_at(span))?;
    Ok(Phase {
        driver: Arc::new(driver),
        max_duration,
    })
}

/// A threshold's metric exists and takes its aggregations, and each value
/// of its tag filter can occur (a filter no sample matches would judge
/// nothing).
fn check_threshold(
    set: &ThresholdSet,
    registry: &Registry,
    scenarios: &[Scenario],
    scenario_tags: &[BTreeMap<String, String>],
    phases: &[&str],
) -> Result<(), ConfigError> {
    let Some(id) = registry.metric_id(&set.metric) else {
        let mut names: Vec<String> = registry
            .metrics()
            .iter()
            .map(|m| m.name.to_string())
            .collect();
        names.sort();
        return Err(ConfigError::at(
            set.span.clone(),
            format!(
                "no metric named {:?} in this plan; its metrics are {}",
                set.metric,
                names.join(", ")
            ),
        ));
    };
    let def = registry.metrics()[id as usize].clone();
    for t in &set.items {
        threshold::check_fits(t, def.kind, &set.metric)?;
        threshold::check_unit(t, def.unit, &set.metric)?;
        if t.abort_on_fail && volley_model::metrics::POST_RUN_METRICS.contains(&set.metric.as_str())
        {
            return Err(ConfigError::at(
                t.span.clone(),
                format!(
                    "{} is known once the run is over; abort_on_fail does not apply to it (to stop at the breaking point, write abort = true in breaking_point)",
                    set.metric
                ),
            ));
        }
    }
    for (key, value) in set.filter.iter() {
        // [setup]'s and [teardown]'s samples carry group ::setup / ::teardown.
        if key == "group" && phases.contains(&value) {
            continue;
        }
        let Some(known) = tag_values(key, scenarios, scenario_tags) else {
            continue;
        };
        if known.iter().any(|k| k == value) {
            continue;
        }
        let what = match key {
            "scenario" => "scenario",
            "group" => "group",
            "event" => "event",
            _ => "request, query or event",
        };
        let near = known
            .iter()
            .map(|k| (strsim::levenshtein(k, value), k))
            .filter(|(d, k)| *d <= 2.max(k.chars().count() / 3))
            .min_by_key(|(d, _)| *d)
            .map(|(_, k)| format!("; did you mean `{k}`?"))
            .unwrap_or_default();
        let list = if known.is_empty() {
            format!("nothing in this plan sets the tag {key}")
        } else {
            let mut names: Vec<&str> = known.iter().map(String::as_str).collect();
            names.sort();
            names.dedup();
            format!(
                "the {key} values this plan can record are {}",
                names.join(", ")
            )
        };
        return Err(ConfigError::at(
            set.span.clone(),
            format!(
                "{}: no {what} is tagged {key}:{value}, so this threshold would judge nothing{near} ({list})",
                set.key
            ),
        ));
    }
    Ok(())
}

/// Every value the plan's samples can carry for tag `key`, for the tags a
/// threshold filter names things by; None when it cannot tell.
fn tag_values(
    key: &str,
    scenarios: &[Scenario],
    scenario_tags: &[BTreeMap<String, String>],
) -> Option<Vec<String>> {
    if !["scenario", "name", "group", "event"].contains(&key) {
        return None;
    }
    let mut out = Vec::new();
    for (s, tags) in scenarios.iter().zip(scenario_tags) {
        out.extend(tags.get(key).cloned());
        match key {
            "scenario" => out.push(s.name.clone()),
            _ => out.extend(s.driver.tag_values(key)?),
        }
    }
    Some(out)
}

/// `--threshold 'METRIC{tags}=EXPRESSION'`.
fn command_line_threshold(raw: &str) -> Result<ThresholdSet, ConfigError> {
    let (key, expr) = raw
        .split_once('=')
        .filter(|(k, e)| !k.trim().is_empty() && !e.trim().is_empty())
        .ok_or_else(|| ConfigError::new("no metric and expression"))?;
    let list = [(serde_json::Value::from(expr.trim()), 0..0)];
    threshold::parse_set(key.trim(), 0..0, &list).map_err(|e| ConfigError::new(e.message))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricSpec {
    kind: MetricKind,
    unit: Option<Unit>,
}

/// `[metrics.NAME] kind = "trend", unit = "time"`: metrics requests feed
/// with `record`, registered so thresholds can name them.
fn declare_metrics(
    entry: Spanned<DeValue<'_>>,
    registry: &Registry,
) -> Result<Vec<DeclaredMetric>, ConfigError> {
    let span = entry.span();
    let DeValue::Table(t) = entry.into_inner() else {
        return Err(ConfigError::at(
            span,
            "`metrics` is a table of [metrics.NAME] sections with kind = \"trend\", \"counter\", \"rate\" or \"gauge\"",
        ));
    };
    let mut out = Vec::new();
    for (name, value) in t {
        let text = name.get_ref().to_string();
        let valid = text.len() <= 128
            && text.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(ConfigError::at(
                name.span(),
                format!(
                    "metric name {text:?}: use letters, digits and _ (starting with a letter), at most 128 characters, e.g. tokens_per_request"
                ),
            ));
        }
        if let Some(p) = volley_protocols::drivers::built_in_prefix(&text) {
            return Err(ConfigError::at(
                name.span(),
                format!(
                    "metric name {text:?} starts with {p:?}, which volley's own metrics use: pick another name, e.g. my_{text}"
                ),
            ));
        }
        let vspan = value.span();
        let DeValue::Table(body) = value.into_inner() else {
            return Err(ConfigError::at(
                name.span(),
                format!(
                    "[metrics.{text}] is a table: kind = \"trend\" (and unit = \"time\" for durations)"
                ),
            ));
        };
        let spec: MetricSpec = de(vspan, body).map_err(|e| ConfigError {
            message: format!(
                "[metrics.{text}]: {}; write kind = \"trend\" | \"counter\" | \"rate\" | \"gauge\" and optionally unit = \"time\" | \"data\" | \"default\"",
                e.message
            ),
            ..e
        })?;
        let unit = spec.unit.unwrap_or(Unit::Default);
        registry.metric(&text, spec.kind, unit);
        out.push(DeclaredMetric {
            name: text,
            kind: spec.kind,
            unit,
        });
    }
    Ok(out)
}

/// FNV-1a: stable across builds, enough to tell two plan texts apart.
fn digest(s: &str) -> String {
    let mut h = fnv::FnvHasher::default();
    std::hash::Hasher::write(&mut h, s.as_bytes());
    format!("{:016x}", std::hash::Hasher::finish(&h))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HTTP: &str = "[scenarios.api]\ndriver = \"http\"\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\n";

    /// The error a plan text earns, as the CLI prints it.
    fn refusal(text: impl AsRef<[u8]>) -> String {
        let opts = LoadOptions {
            env: HashMap::new(),
            segment: Segment::default(),
            ..Default::default()
        };
        match from_bytes("plan.toml", text.as_ref(), Path::new("."), &opts) {
            Ok(_) => panic!("accepted: {}", String::from_utf8_lossy(text.as_ref())),
            Err(e) => e.to_string(),
        }
    }

    fn accepted(text: &str) -> Plan {
        let opts = LoadOptions {
            env: HashMap::new(),
            segment: Segment::default(),
            ..Default::default()
        };
        from_bytes("plan.toml", text.as_bytes(), Path::new("."), &opts)
            .unwrap_or_else(|e| panic!("refused: {e}"))
    }

    #[test]
    fn invalid_utf8_is_located_by_line_column_and_byte() {
        let mut text = HTTP.as_bytes().to_vec();
        text.extend_from_slice(b"requests = [{ url = \"http://127.0.0.1:1/caf\xe9\" }]\n");
        let e = refusal(&text);
        assert!(
            e.starts_with("plan.toml:6:44: byte 125 (0xe9) is not UTF-8"),
            "{e}"
        );
        assert!(e.contains("save it as UTF-8"), "{e}");
        assert!(
            e.contains("6 | requests = [{ url = \"http://127.0.0.1:1/caf\u{fffd}\" }]"),
            "{e}"
        );
    }

    #[test]
    fn durations_past_what_a_clock_holds_are_refused_where_written() {
        for (key, value) in [
            ("duration", "18446744073709551616s"),
            ("think_time", "99999999999999h"),
        ] {
            let text = HTTP.replace("duration = \"1s\"", &format!("{key} = \"{value}\""));
            let text = if key == "duration" {
                text
            } else {
                text + "duration = \"1s\"\n"
            };
            let e = refusal(text + "requests = [{ url = \"http://127.0.0.1:1/\" }]\n");
            assert!(e.contains("longer than 100 years"), "{e}");
            assert!(e.starts_with("plan.toml:"), "{e}");
        }
        let e = refusal(format!(
            "{HTTP}requests = [{{ url = \"http://127.0.0.1:1/\" }}]\n[thresholds]\nhttp_reqs = [{{ threshold = \"count>0\", abort_on_fail = true, delay_abort_eval = \"18446744073709551616s\" }}]\n"
        ));
        assert!(e.contains("longer than 100 years"), "{e}");
    }

    #[test]
    fn a_key_no_driver_knows_lists_the_engines_keys_and_a_typo_of_one_names_it() {
        // The driver refuses `sleepy`; the engine adds its own keys.
        let e = refusal(format!(
            "{HTTP}sleepy = 1\nrequests = [{{ url = \"http://127.0.0.1:1/\" }}]\n"
        ));
        assert!(e.contains("plan.toml:6:1"), "{e}");
        assert!(e.contains("unknown key `sleepy`"), "{e}");
        assert!(e.contains("the engine's scenario keys are"), "{e}");
        // Within two edits of an engine key: that key is named.
        let e = refusal(format!(
            "{HTTP}tgas = {{ team = \"a\" }}\nrequests = [{{ url = \"http://127.0.0.1:1/\" }}]\n"
        ));
        assert!(e.contains("did you mean `tags`?"), "{e}");
        // An unknown key inside a request is the driver's alone.
        let e = refusal(format!(
            "{HTTP}requests = [{{ url = \"http://127.0.0.1:1/\", bogus = 1 }}]\n"
        ));
        assert!(e.contains("unknown key `bogus`"), "{e}");
        assert!(!e.contains("the engine's scenario keys are"), "{e}");
    }

    #[test]
    fn a_plan_metric_may_not_take_a_registered_driver_prefix() {
        for (name, prefix) in [("pg_cost", "pg_"), ("echo_cost", "echo_"), ("vus_x", "vus")] {
            let e = refusal(format!(
                "{HTTP}requests = [{{ url = \"http://127.0.0.1:1/\" }}]\n[metrics.{name}]\nkind = \"counter\"\n"
            ));
            assert!(e.contains(&format!("starts with {prefix:?}")), "{e}");
        }
        accepted(&format!(
            "{HTTP}requests = [{{ url = \"http://127.0.0.1:1/\" }}]\n[metrics.my_cost]\nkind = \"counter\"\n"
        ));
        let e = refusal(HTTP.replace("\"http\"", "\"gopher\""));
        assert!(
            e.contains("this build has http, webhook, postgres, websocket, echo"),
            "{e}"
        );
    }

    #[test]
    fn connect_is_refused_as_a_method() {
        let e = refusal(format!(
            "{HTTP}requests = [{{ url = \"http://127.0.0.1:1/\", method = \"CONNECT\" }}]\n"
        ));
        assert!(e.starts_with("plan.toml:6:53: method CONNECT"), "{e}");
        assert!(e.contains("use GET, POST"), "{e}");
    }

    #[test]
    fn all_zero_weights_point_at_the_weights() {
        let e = refusal(format!(
            "{HTTP}flow = \"weighted\"\nrequests = [\n  {{ url = \"http://127.0.0.1:1/a\", weight = 0 }},\n  {{ url = \"http://127.0.0.1:1/b\", weight = 0 }},\n]\n"
        ));
        assert!(
            e.starts_with("plan.toml:8:44: scenario \"api\": all request weights are 0"),
            "{e}"
        );
        let e = refusal(format!(
            "{HTTP}flow = \"weighted\"\nrequests = [\n  {{ url = \"http://127.0.0.1:1/a\", weight = 1e308 }},\n  {{ url = \"http://127.0.0.1:1/b\", weight = 1e308 }},\n]\n"
        ));
        assert!(e.starts_with("plan.toml:8:44:"), "{e}");
        assert!(e.contains("more than a number can hold"), "{e}");
        let pg = "[scenarios.db]\ndriver = \"postgres\"\ndatabase_url = \"postgres://u@127.0.0.1:1/db\"\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\nflow = \"weighted\"\n[[scenarios.db.queries]]\nname = \"a\"\nsql = \"SELECT 1\"\nweight = 0\n";
        let e = refusal(pg);
        assert!(
            e.starts_with("plan.toml:11:10: scenario \"db\": all query weights are 0"),
            "{e}"
        );
        let hook = "[scenarios.hooks]\ndriver = \"webhook\"\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\nendpoint = \"http://127.0.0.1:1/hooks\"\nsecret = \"whsec_x\"\nevents = [{ type = \"invoice.paid\", weight = 0 }]\n";
        let e = refusal(hook);
        assert!(
            e.starts_with("plan.toml:8:45: scenario \"hooks\": all event weights are 0"),
            "{e}"
        );
    }

    #[test]
    fn thresholds_that_judge_nothing_are_refused_where_written() {
        let plan =
            format!("{HTTP}requests = [{{ url = \"http://127.0.0.1:1/\" }}]\n[thresholds]\n");
        let e = refusal(format!("{plan}http_req_duration = [\"max<NaN\"]\n"));
        assert!(
            e.starts_with("plan.toml:8:22: \"max<NaN\": \"NaN\" is not a limit"),
            "{e}"
        );
        let e = refusal(format!("{plan}http_req_duration = [\"avg<inf\"]\n"));
        assert!(e.contains("finite number"), "{e}");
        let e = refusal(format!(
            "{plan}\"http_req_duration{{name:x}}{{{{ü}}}}\" = [\"p(95)<200\"]\n"
        ));
        assert!(e.starts_with("plan.toml:8:1:"), "{e}");
        assert!(e.contains("one tag filter"), "{e}");
    }

    #[test]
    fn what_a_driver_cannot_place_points_at_its_scenario() {
        let e = refusal(
            "[scenarios.db]\ndriver = \"postgres\"\ndatabase_url = \"postgres://u@127.0.0.1:1/db\"\nexecutor = \"constant-vus\"\nduration = \"1s\"\n",
        );
        assert!(
            e.starts_with("plan.toml:1:12: scenario \"db\" has no queries"),
            "{e}"
        );
        let e = refusal(
            "[scenarios.db]\ndriver = \"postgres\"\ndatabase_url = \"postgres://u@127.0.0.1:1/db\"\nexecutor = \"constant-vus\"\nduration = \"1s\"\n[[scenarios.db.queries]]\nparams = []\n",
        );
        assert!(
            e.starts_with("plan.toml:1:12: query \"query 1\" has no sql"),
            "{e}"
        );
        let e = refusal(format!("{HTTP}requests = []\n"));
        assert!(
            e.starts_with("plan.toml:1:12: scenario \"api\" has no requests"),
            "{e}"
        );
    }

    #[test]
    fn a_room_larger_than_every_vu_holds_them_all() {
        let plan = accepted(
            "[scenarios.chat]\ndriver = \"websocket\"\nexecutor = \"constant-vus\"\nvus = 3\nduration = \"1s\"\nurl = \"ws://127.0.0.1:1/ws\"\nroom_size = 18446744073709551615\n",
        );
        assert_eq!(plan.scenarios[0].exec.max_vus(), 3);
    }
}
