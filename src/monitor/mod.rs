//! Monitors: `[monitors.NAME]` sections polled once per second during the
//! run into gauge metrics tagged `{monitor:NAME}`:
//!
//! - a local process (`pid` or `pid_file`): `target_rss` (bytes) and
//!   `target_cpu` (percent of one core) from /proc;
//! - an HTTP endpoint answering JSON (`url` + `json_path`): one gauge, named
//!   by `gauge` or after the path's last field;
//! - a Prometheus text endpoint (`prometheus` + `metric`, with optional
//!   labels): one gauge, named by `gauge` or after the metric.
//!
//! The pollers run on worker 0 beside its VUs and record into that worker's
//! shard, so their values travel the one metrics pipeline: per-second
//! intervals, totals, thresholds (`slope<100MB/h`), outputs, the report.
//! Each sample is taken in the middle of its second.

pub mod prom;

use crate::aggregate::Aggregator;
use serde::Deserialize;
use serde_json_path::JsonPath;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use toml::Spanned;
use toml::de::{DeValue, ValueDeserializer};
use volley_model::monitor::{CPU, ERRORS, GaugeReport, MonitorReport, RSS, gauge_text, short};
use volley_model::point::Point;
use volley_model::summary::SeriesRecord;
use volley_protocols::ConfigError;
use volley_protocols::duration::Dur;
use volley_protocols::http::Fetcher;
use volley_protocols::metrics::{MetricKind, Recorder, Registry, SeriesId, Slot, Tags, Unit};
use volley_protocols::procfs;

/// Longest wait for one sample: it must land in its own second.
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(400);

#[derive(Clone, Debug)]
pub struct MonitorSpec {
    pub name: String,
    pub source: Source,
    pub timeout: Duration,
}

#[derive(Clone, Debug)]
pub enum Source {
    Process {
        pid: Option<u32>,
        /// Read at every poll, so a restarted target is followed. A
        /// relative path is looked up in the plan's folder, then in the
        /// current directory.
        pid_file: Option<PathBuf>,
        plan_dir: PathBuf,
    },
    Json {
        url: String,
        path_text: String,
        path: JsonPath,
        gauge: String,
        scale: f64,
        unit: Unit,
    },
    Prometheus {
        url: String,
        metric: String,
        labels: Vec<(String, String)>,
        gauge: String,
        scale: f64,
        unit: Unit,
    },
}

impl MonitorSpec {
    /// The gauges this monitor records.
    pub fn gauges(&self) -> Vec<&str> {
        match &self.source {
            Source::Process { .. } => vec![RSS, CPU],
            Source::Json { gauge, .. } | Source::Prometheus { gauge, .. } => vec![gauge.as_str()],
        }
    }

    /// Where the values come from, for people.
    pub fn describe(&self) -> String {
        match &self.source {
            Source::Process {
                pid: Some(p),
                pid_file: None,
                ..
            } => format!("pid {p}"),
            Source::Process { pid_file, .. } => format!(
                "pid in {}",
                pid_file.as_deref().unwrap_or(Path::new("?")).display()
            ),
            Source::Json { url, path_text, .. } => format!("GET {url} {path_text}"),
            Source::Prometheus {
                url,
                metric,
                labels,
                ..
            } => {
                let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                if l.is_empty() {
                    format!("GET {url} {metric}")
                } else {
                    format!("GET {url} {metric}{{{}}}", l.join(","))
                }
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MonitorRaw {
    pid: Option<Spanned<toml::Value>>,
    pid_file: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    json_path: Option<Spanned<String>>,
    prometheus: Option<Spanned<String>>,
    metric: Option<Spanned<String>>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    gauge: Option<Spanned<String>>,
    unit: Option<Spanned<String>>,
    scale: Option<f64>,
    timeout: Option<Spanned<Dur>>,
}

/// Parse the plan's `[monitors]` table and register the gauges it records.
pub fn parse(
    entry: Spanned<DeValue<'_>>,
    base_dir: &Path,
    registry: &Registry,
) -> Result<Vec<MonitorSpec>, ConfigError> {
    let span = entry.span();
    let DeValue::Table(table) = entry.into_inner() else {
        return Err(ConfigError::at(
            span,
            "`monitors` must be a table of [monitors.NAME] sections",
        ));
    };
    let mut out = Vec::new();
    for (name, value) in table {
        let name_text = name.get_ref().to_string();
        let vspan = value.span();
        if !matches!(value.get_ref(), DeValue::Table(_)) {
            return Err(ConfigError::at(
                name.span(),
                format!(
                    "monitor {name_text:?} must be a table, e.g. [monitors.{name_text}] with pid = 1234"
                ),
            ));
        }
        let raw = MonitorRaw::deserialize(ValueDeserializer::from(value))
            .map_err(|e| ConfigError::from(e).or_at(vspan.clone()))?;
        let spec = build(&name_text, raw, vspan, base_dir)?;
        for g in spec.gauges() {
            let unit = match (&spec.source, g) {
                (Source::Process { .. }, RSS) => Unit::Data,
                (Source::Process { .. }, _) => Unit::Default,
                _ => spec_unit(&spec),
            };
            if let Some(id) = registry.metric_id(g) {
                let def = &registry.metrics()[id as usize];
                if def.kind != MetricKind::Gauge || def.unit != unit {
                    return Err(ConfigError::at(
                        name.span(),
                        format!(
                            "monitor {name_text:?}: a metric named {g:?} already exists ({:?}); name this monitor's gauge otherwise with gauge = \"...\"",
                            def.kind
                        )
                        .replace("(Counter)", "(a counter)")
                        .replace("(Trend)", "(a trend)")
                        .replace("(Rate)", "(a rate)")
                        .replace("(Gauge)", "(a gauge of another unit)"),
                    ));
                }
            }
            registry.metric(g, MetricKind::Gauge, unit);
        }
        out.push(spec);
    }
    if !out.is_empty() {
        registry.metric(ERRORS, MetricKind::Counter, Unit::Default);
    }
    Ok(out)
}

/// Unit of a url/prometheus gauge (`unit = "bytes"`).
fn spec_unit(spec: &MonitorSpec) -> Unit {
    match &spec.source {
        Source::Json { unit, .. } | Source::Prometheus { unit, .. } => *unit,
        Source::Process { .. } => Unit::Default,
    }
}

fn valid_gauge(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn build(
    name: &str,
    raw: MonitorRaw,
    span: std::ops::Range<usize>,
    base_dir: &Path,
) -> Result<MonitorSpec, ConfigError> {
    let at =
        |s: std::ops::Range<usize>, m: String| ConfigError::at(s, format!("monitor {name:?}: {m}"));
    let timeout = match &raw.timeout {
        Some(t) if t.get_ref().0.is_zero() || t.get_ref().0 > Duration::from_millis(900) => {
            return Err(at(
                t.span(),
                "timeout is between 1ms and 900ms: a sample must land in its own second".into(),
            ));
        }
        Some(t) => t.get_ref().0,
        None => DEFAULT_TIMEOUT,
    };
    let unit = match &raw.unit {
        None => Unit::Default,
        Some(u) => match u.get_ref().as_str() {
            "bytes" | "B" => Unit::Data,
            "" | "count" | "none" => Unit::Default,
            other => {
                return Err(at(
                    u.span(),
                    format!("unit {other:?}: use \"bytes\" (shown as KB, MB...) or leave it out"),
                ));
            }
        },
    };
    let scale = raw.scale.unwrap_or(1.0);
    if !scale.is_finite() || scale == 0.0 {
        return Err(at(span.clone(), "scale must be a non-zero number".into()));
    }
    let sources = [
        raw.pid.is_some() || raw.pid_file.is_some(),
        raw.url.is_some(),
        raw.prometheus.is_some(),
    ];
    let how = "give one of: pid = 1234 (or pid_file = \"server.pid\"); url = \"http://...\" with json_path = \"$.memory_mb\"; prometheus = \"http://.../metrics\" with metric = \"process_resident_memory_bytes\"";
    if sources.iter().filter(|s| **s).count() != 1 {
        return Err(at(span, format!("watch exactly one thing; {how}")));
    }
    let gauge_name = |default: String| -> Result<String, ConfigError> {
        let g = match &raw.gauge {
            Some(g) => g.get_ref().clone(),
            None => default,
        };
        if !valid_gauge(&g) {
            let s = raw
                .gauge
                .as_ref()
                .map(Spanned::span)
                .unwrap_or(span.clone());
            return Err(at(
                s,
                format!(
                    "{g:?} is not a metric name; set gauge = \"memory_mb\" (letters, digits, _)"
                ),
            ));
        }
        Ok(g)
    };
    let source = if sources[0] {
        for (k, present) in [
            ("json_path", raw.json_path.is_some()),
            ("metric", raw.metric.is_some()),
            ("gauge", raw.gauge.is_some()),
            ("unit", raw.unit.is_some()),
        ] {
            if present {
                return Err(at(
                    span,
                    format!(
                        "{k} does not apply to a process monitor (it records target_rss and target_cpu)"
                    ),
                ));
            }
        }
        if raw.pid.is_some() && raw.pid_file.is_some() {
            return Err(at(span, "give pid or pid_file, not both".into()));
        }
        let pid = match &raw.pid {
            None => None,
            Some(p) => {
                let n = match p.get_ref() {
                    toml::Value::Integer(i) => u32::try_from(*i).ok(),
                    toml::Value::String(s) => s.trim().parse::<u32>().ok(),
                    _ => None,
                };
                Some(n.filter(|n| *n > 0).ok_or_else(|| {
                    at(
                        p.span(),
                        "pid is a process id such as 12345 (or \"${PID}\")".into(),
                    )
                })?)
            }
        };
        let pid_file = raw.pid_file.as_ref().map(|f| PathBuf::from(f.get_ref()));
        Source::Process {
            pid,
            pid_file,
            plan_dir: base_dir.to_path_buf(),
        }
    } else if let Some(url) = &raw.url {
        check_url(url).map_err(|m| at(url.span(), m))?;
        if raw.metric.is_some() {
            return Err(at(
                span,
                "metric names a Prometheus sample; for a Prometheus endpoint write prometheus = URL, for JSON give json_path".into(),
            ));
        }
        let p = raw.json_path.as_ref().ok_or_else(|| {
            at(url.span(), "a url monitor needs json_path = \"$.field\" (for a Prometheus endpoint write prometheus = URL and metric = NAME)".into())
        })?;
        let path = JsonPath::parse(p.get_ref())
            .map_err(|e| at(p.span(), format!("json_path {:?}: {e}", p.get_ref())))?;
        let last: String = p
            .get_ref()
            .trim_end_matches([']', '\'', '"'])
            .rsplit(['.', '[', '\'', '"'])
            .next()
            .unwrap_or("")
            .to_string();
        Source::Json {
            url: url.get_ref().clone(),
            path_text: p.get_ref().clone(),
            path,
            gauge: gauge_name(last)?,
            scale,
            unit,
        }
    } else {
        let url = raw.prometheus.as_ref().expect("one source");
        check_url(url).map_err(|m| at(url.span(), m))?;
        if raw.json_path.is_some() {
            return Err(at(span, "json_path is for url monitors answering JSON; a Prometheus monitor takes metric = NAME".into()));
        }
        let m = raw.metric.as_ref().ok_or_else(|| {
            at(url.span(), "a Prometheus monitor needs metric = \"process_resident_memory_bytes\" (labels optional)".into())
        })?;
        let (metric, mut labels) =
            prom::parse_selector(m.get_ref()).map_err(|e| at(m.span(), e))?;
        for (k, v) in &raw.labels {
            labels.push((k.clone(), v.clone()));
        }
        Source::Prometheus {
            url: url.get_ref().clone(),
            gauge: gauge_name(metric.replace(':', "_"))?,
            metric,
            labels,
            scale,
            unit,
        }
    };
    Ok(MonitorSpec {
        name: name.to_string(),
        source,
        timeout,
    })
}

fn check_url(url: &Spanned<String>) -> Result<(), String> {
    Fetcher::new(url.get_ref()).map(|_| ())
}

// ---------------------------------------------------------------------------
// Polling

/// What one monitor keeps between polls.
enum Sampler {
    Process {
        pid: Option<u32>,
        pid_file: Option<PathBuf>,
        plan_dir: PathBuf,
        last: Option<(f64, Instant)>,
        rss: SeriesId,
        cpu: SeriesId,
    },
    Json {
        fetcher: Fetcher,
        path: JsonPath,
        id: SeriesId,
        scale: f64,
    },
    Prometheus {
        fetcher: Fetcher,
        metric: String,
        labels: Vec<(String, String)>,
        id: SeriesId,
        scale: f64,
    },
}

fn read_pid_file(p: &Path, plan_dir: &Path) -> Option<u32> {
    let text = if p.is_relative() {
        std::fs::read_to_string(plan_dir.join(p)).or_else(|_| std::fs::read_to_string(p))
    } else {
        std::fs::read_to_string(p)
    };
    text.ok()?.trim().parse().ok()
}

impl Sampler {
    fn new(m: &MonitorSpec, rec: &Recorder) -> Result<Self, String> {
        let reg = rec.registry();
        let tags = Tags::new([("monitor", m.name.as_str())]);
        let series = |g: &str| {
            let id = reg
                .metric_id(g)
                .unwrap_or_else(|| reg.metric(g, MetricKind::Gauge, Unit::Default));
            rec.series(id, &tags)
        };
        Ok(match &m.source {
            Source::Process {
                pid,
                pid_file,
                plan_dir,
            } => {
                let pid =
                    pid.or_else(|| pid_file.as_deref().and_then(|f| read_pid_file(f, plan_dir)));
                let last = pid
                    .and_then(|p| procfs::read(p).ok())
                    .map(|s| (s.cpu_seconds, Instant::now()));
                Sampler::Process {
                    pid,
                    pid_file: pid_file.clone(),
                    plan_dir: plan_dir.clone(),
                    last,
                    rss: series(RSS),
                    cpu: series(CPU),
                }
            }
            Source::Json {
                url,
                path,
                gauge,
                scale,
                ..
            } => Sampler::Json {
                fetcher: Fetcher::new(url)?,
                path: path.clone(),
                id: series(gauge),
                scale: *scale,
            },
            Source::Prometheus {
                url,
                metric,
                labels,
                gauge,
                scale,
                ..
            } => Sampler::Prometheus {
                fetcher: Fetcher::new(url)?,
                metric: metric.clone(),
                labels: labels.clone(),
                id: series(gauge),
                scale: *scale,
            },
        })
    }

    /// Take one sample into `rec`; on failure, what went wrong (a tag value).
    async fn sample(&mut self, rec: &Recorder, timeout: Duration) -> Result<(), String> {
        match self {
            Sampler::Process {
                pid,
                pid_file,
                plan_dir,
                last,
                rss,
                cpu,
            } => {
                let mut read = pid.and_then(|p| procfs::read(p).ok());
                if read.is_none()
                    && let Some(f) = pid_file.as_deref()
                {
                    // Restarted (or not started yet): follow the pid file.
                    *pid = read_pid_file(f, plan_dir);
                    *last = None;
                    read = pid.and_then(|p| procfs::read(p).ok());
                }
                let s = read.ok_or("process gone")?;
                let now = Instant::now();
                rec.gauge(*rss, s.rss_bytes as f64);
                if let Some((cpu0, t0)) = *last {
                    let wall = now.duration_since(t0).as_secs_f64();
                    if wall > 0.0 {
                        rec.gauge(*cpu, ((s.cpu_seconds - cpu0) / wall * 100.0).max(0.0));
                    }
                }
                *last = Some((s.cpu_seconds, now));
                Ok(())
            }
            Sampler::Json {
                fetcher,
                path,
                id,
                scale,
            } => {
                let body = fetch(fetcher, timeout).await?;
                let v: serde_json::Value =
                    serde_json::from_slice(&body).map_err(|_| "not JSON".to_string())?;
                let n = path
                    .query(&v)
                    .first()
                    .and_then(number)
                    .ok_or("no number at json_path")?;
                rec.gauge(*id, n * *scale);
                Ok(())
            }
            Sampler::Prometheus {
                fetcher,
                metric,
                labels,
                id,
                scale,
            } => {
                let body = fetch(fetcher, timeout).await?;
                let text = String::from_utf8_lossy(&body);
                let n = prom::find(&text, metric, labels).ok_or("no such sample")?;
                rec.gauge(*id, n * *scale);
                Ok(())
            }
        }
    }
}

fn number(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

async fn fetch(f: &mut Fetcher, timeout: Duration) -> Result<Vec<u8>, String> {
    let (status, body) = f.get(timeout).await.map_err(|e| {
        if e.starts_with("no answer") {
            "timeout".to_string()
        } else {
            "unreachable".to_string()
        }
    })?;
    if !(200..300).contains(&status) {
        return Err(format!("status {status}"));
    }
    Ok(body)
}

/// Poll every monitor of the plan once per second, from `t0` on, into
/// `rec` (worker 0's shard). Runs until the worker drops it.
pub async fn poll_all(monitors: Arc<[MonitorSpec]>, rec: Recorder, t0: Instant) {
    for i in 0..monitors.len() {
        tokio::task::spawn_local(poll_one(monitors.clone(), i, rec.clone(), t0));
    }
}

async fn poll_one(monitors: Arc<[MonitorSpec]>, i: usize, rec: Recorder, t0: Instant) {
    let m = &monitors[i];
    let mut sampler = match Sampler::new(m, &rec) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("monitor {}: {e}", m.name);
            return;
        }
    };
    let reg = rec.registry().clone();
    let errors = reg.metric(ERRORS, MetricKind::Counter, Unit::Default);
    let tags = Tags::new([("monitor", m.name.as_str())]);
    let mut error_ids: Vec<(String, SeriesId)> = Vec::new();
    let mut warned = false;
    let mut k: u64 = 0;
    loop {
        let due = t0 + Duration::from_secs(k) + Duration::from_millis(500);
        tokio::time::sleep_until(due.into()).await;
        if let Err(what) = sampler.sample(&rec, m.timeout).await {
            let id = match error_ids.iter().find(|(w, _)| *w == what) {
                Some((_, id)) => *id,
                None => {
                    let id = rec.series(errors, &tags.with("error", what.clone()));
                    error_ids.push((what.clone(), id));
                    id
                }
            };
            rec.add(id, 1);
            if !warned {
                warned = true;
                tracing::warn!("monitor {} ({}): {what}", m.name, m.describe());
            }
        }
        // One sample per second; after a stall, resume with the current second.
        k = (k + 1).max(t0.elapsed().as_secs());
    }
}

/// Before any load: every monitor can be read now, or the run does not start.
pub async fn prepare(monitors: &[MonitorSpec]) -> Result<(), String> {
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            for m in monitors {
                let fail = |e: String| format!("monitor {:?} ({}): {e}", m.name, m.describe());
                match &m.source {
                    Source::Process {
                        pid,
                        pid_file,
                        plan_dir,
                    } => {
                        let pid = match (pid, pid_file) {
                            (Some(p), _) => *p,
                            (None, Some(f)) => read_pid_file(f, plan_dir).ok_or_else(|| {
                                fail(format!(
                                    "cannot read a process id from {}; start the target first (it should write its pid there)",
                                    f.display()
                                ))
                            })?,
                            (None, None) => unreachable!("a process monitor has pid or pid_file"),
                        };
                        if !procfs::exists(pid) {
                            return Err(fail(format!(
                                "no process with id {pid} (/proc/{pid} does not exist); start the target first or fix pid"
                            )));
                        }
                        procfs::read(pid).map_err(|e| fail(format!("cannot read /proc/{pid}: {e}")))?;
                    }
                    _ => {
                        let registry = Registry::new();
                        let rec = Recorder::new(registry.clone());
                        for g in m.gauges() {
                            registry.metric(g, MetricKind::Gauge, Unit::Default);
                        }
                        let mut s = Sampler::new(m, &rec).map_err(fail)?;
                        s.sample(&rec, Duration::from_secs(5)).await.map_err(|e| {
                            fail(match e.as_str() {
                                "unreachable" => "cannot connect; is the target up?".into(),
                                "timeout" => "no answer within 5s".into(),
                                "no number at json_path" => "the answer has no number at json_path".into(),
                                "no such sample" => "the answer has no sample of that metric (and labels)".into(),
                                other => other.to_string(),
                            })
                        })?;
                    }
                }
            }
            Ok(())
        })
        .await
}

// ---------------------------------------------------------------------------
// Showing them

/// `srv rss 45.2 MB cpu 12.0%` for the live line, from the last second.
pub fn live_text(agg: &Aggregator) -> Option<String> {
    // Registered only by plans with monitors.
    agg.registry.metric_id(ERRORS)?;
    let iv = agg.last()?;
    let series = agg.registry.all_series();
    let defs = agg.registry.metrics();
    let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (id, p) in &iv.points {
        let Point::Gauge { value, .. } = p else {
            continue;
        };
        let Some(info) = series.get(*id as usize) else {
            continue;
        };
        let Some(name) = info.tags.get("monitor") else {
            continue;
        };
        let def = &defs[info.metric as usize];
        by.entry(name.to_string()).or_default().push(format!(
            "{} {}",
            short(&def.name),
            gauge_text(&def.name, def.unit, *value)
        ));
    }
    if by.is_empty() {
        return None;
    }
    Some(
        by.into_iter()
            .map(|(n, parts)| format!("{n} {}", parts.join(" ")))
            .collect::<Vec<_>>()
            .join(" | "),
    )
}

/// What the aggregator fits for the monitors (see `crate::track`).
pub fn track(monitors: &[MonitorSpec], agg: &mut Aggregator) {
    for m in monitors {
        let tags = Tags::new([("monitor", m.name.as_str())]);
        for g in m.gauges() {
            agg.track(g, &tags, 0.0);
        }
    }
}

/// The monitors' summary, from the run's gauge tracks and totals.
pub fn reports(
    monitors: &[MonitorSpec],
    agg: &Aggregator,
    series: &[(SeriesRecord, Slot)],
) -> Vec<MonitorReport> {
    let registry = &agg.registry;
    let defs = registry.metrics();
    monitors
        .iter()
        .map(|m| {
            let tags = Tags::new([("monitor", m.name.as_str())]);
            let gauges = m
                .gauges()
                .into_iter()
                .map(|g| {
                    let unit = registry
                        .metric_id(g)
                        .map(|i| defs[i as usize].unit)
                        .unwrap_or(Unit::Default);
                    let t = agg.tracked(g, &tags, 0.0);
                    GaugeReport {
                        metric: g.to_string(),
                        unit,
                        samples: t.map_or(0, |t| t.samples),
                        value: t.and_then(|t| t.last),
                        min: t.and_then(|t| t.min),
                        max: t.and_then(|t| t.max),
                        slope_per_hour: t.and_then(|t| t.slope_per_hour()),
                    }
                })
                .collect();
            let errors = series
                .iter()
                .filter(|(r, _)| r.metric == ERRORS && r.tags.get("monitor") == Some(&m.name))
                .map(|(_, s)| match s {
                    Slot::Counter(n) => *n,
                    _ => 0,
                })
                .sum();
            MonitorReport {
                name: m.name.clone(),
                source: m.describe(),
                gauges,
                errors,
            }
        })
        .collect()
}

/// The terminal's MONITORS section.
pub fn render_text(monitors: &[MonitorReport]) -> String {
    if monitors.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n  █ MONITORS\n\n");
    for m in monitors {
        let errors = if m.errors > 0 {
            format!(", {} polls without a value", m.errors)
        } else {
            String::new()
        };
        let _ = writeln!(out, "    {} ({}{errors})", m.name, m.source);
        for g in &m.gauges {
            let v = |x: Option<f64>| {
                x.map(|x| gauge_text(&g.metric, g.unit, x))
                    .unwrap_or_else(|| "–".into())
            };
            let slope = g
                .slope_per_hour
                .map(|s| {
                    format!(
                        "slope {}",
                        volley_model::slope::format_rate(s, g.unit == Unit::Data)
                    )
                })
                .unwrap_or_else(|| "slope –".into());
            let _ = writeln!(
                out,
                "      {:<22} {:<10} min={:<10} max={:<10} {slope} ({} samples)",
                g.metric,
                v(g.value),
                v(g.min),
                v(g.max),
                g.samples
            );
        }
    }
    out
}
