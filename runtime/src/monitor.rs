//! Monitors at run time: the pollers that sample each `[monitors.NAME]`
//! once per second into worker 0's shard, the check before any load that
//! every monitor can be read, the live line's part and the summary's.

use crate::aggregate::Aggregator;
use serde_json_path::JsonPath;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use volley_config::monitor::{MonitorSpec, Source, prom};
use volley_model::monitor::{CPU, ERRORS, GaugeReport, MonitorReport, RSS, gauge_text, short};
use volley_model::point::Point;
use volley_model::summary::SeriesRecord;
use volley_protocols::http::{BadUrl, FetchError, Fetcher};
use volley_protocols::metrics::{MetricKind, Recorder, Registry, SeriesId, Slot, Tags, Unit};
use volley_protocols::procfs;

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

/// Why one poll gave no sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SampleError {
    ProcessGone,
    Unreachable,
    Timeout,
    Status(u16),
    NotJson,
    NoNumber,
    NoSample,
}

impl SampleError {
    /// The `error` tag of the monitor's error counter.
    fn tag(self) -> String {
        match self {
            SampleError::ProcessGone => "process gone".into(),
            SampleError::Unreachable => "unreachable".into(),
            SampleError::Timeout => "timeout".into(),
            SampleError::Status(s) => format!("status {s}"),
            SampleError::NotJson => "not JSON".into(),
            SampleError::NoNumber => "no number at json_path".into(),
            SampleError::NoSample => "no such sample".into(),
        }
    }

    /// What the check before the run says, given `timeout`.
    fn advice(self, timeout: Duration) -> String {
        match self {
            SampleError::Unreachable => "cannot connect; is the target up?".into(),
            SampleError::Timeout => format!("no answer within {timeout:?}"),
            SampleError::NoNumber => "the answer has no number at json_path".into(),
            SampleError::NoSample => "the answer has no sample of that metric (and labels)".into(),
            other => other.tag(),
        }
    }
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
    fn new(m: &MonitorSpec, rec: &Recorder) -> Result<Self, BadUrl> {
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

    /// Take one sample into `rec`; on failure, what went wrong.
    async fn sample(&mut self, rec: &Recorder, timeout: Duration) -> Result<(), SampleError> {
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
                let s = read.ok_or(SampleError::ProcessGone)?;
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
                    serde_json::from_slice(&body).map_err(|_| SampleError::NotJson)?;
                let n = path
                    .query(&v)
                    .first()
                    .and_then(number)
                    .ok_or(SampleError::NoNumber)?;
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
                let n = prom::find(&text, metric, labels).ok_or(SampleError::NoSample)?;
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

async fn fetch(f: &mut Fetcher, timeout: Duration) -> Result<Vec<u8>, SampleError> {
    let (status, body) = f.get(timeout).await.map_err(|e| match e {
        FetchError::Timeout(_) => SampleError::Timeout,
        FetchError::Failed(_) | FetchError::TooLarge => SampleError::Unreachable,
    })?;
    if !(200..300).contains(&status) {
        return Err(SampleError::Status(status));
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
    let mut error_ids: Vec<(SampleError, SeriesId)> = Vec::new();
    let mut warned = false;
    let mut k: u64 = 0;
    loop {
        let due = t0 + Duration::from_secs(k) + Duration::from_millis(500);
        tokio::time::sleep_until(due.into()).await;
        if let Err(what) = sampler.sample(&rec, m.timeout).await {
            let id = match error_ids.iter().find(|(w, _)| *w == what) {
                Some((_, id)) => *id,
                None => {
                    let id = rec.series(errors, &tags.with("error", what.tag()));
                    error_ids.push((what, id));
                    id
                }
            };
            rec.add(id, 1);
            if !warned {
                warned = true;
                tracing::warn!("monitor {} ({}): {}", m.name, m.describe(), what.tag());
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
                        let mut s = Sampler::new(m, &rec).map_err(|e| fail(e.to_string()))?;
                        let timeout = Duration::from_secs(5);
                        s.sample(&rec, timeout)
                            .await
                            .map_err(|e| fail(e.advice(timeout)))?;
                    }
                }
            }
            Ok(())
        })
        .await
}

/// `srv rss 45.2 MiB cpu 12.0%` for the live line, from the last second.
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
