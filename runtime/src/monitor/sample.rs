//! One monitor's sampler: what it keeps between polls, one poll into the
//! run's recorder, and why a poll gave no sample.

use serde_json_path::JsonPath;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use volley_config::monitor::{MonitorSpec, Source, prom};
use volley_model::monitor::{CPU, RSS};
use volley_protocols::http::{BadUrl, FetchError, Fetcher};
use volley_protocols::metrics::{MetricKind, Recorder, SeriesId, Tags, Unit};
use volley_protocols::procfs;

/// What one monitor keeps between polls.
pub(super) enum Sampler {
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
pub(super) enum SampleError {
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
    pub(super) fn tag(self) -> String {
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
    pub(super) fn advice(self, timeout: Duration) -> String {
        match self {
            SampleError::Unreachable => "cannot connect; is the target up?".into(),
            SampleError::Timeout => format!("no answer within {timeout:?}"),
            SampleError::NoNumber => "the answer has no number at json_path".into(),
            SampleError::NoSample => "the answer has no sample of that metric (and labels)".into(),
            other => other.tag(),
        }
    }
}

pub(super) fn read_pid_file(p: &Path, plan_dir: &Path) -> Option<u32> {
    let text = if p.is_relative() {
        std::fs::read_to_string(plan_dir.join(p)).or_else(|_| std::fs::read_to_string(p))
    } else {
        std::fs::read_to_string(p)
    };
    text.ok()?.trim().parse().ok()
}

impl Sampler {
    pub(super) fn new(m: &MonitorSpec, rec: &Recorder) -> Result<Self, BadUrl> {
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
    pub(super) async fn sample(
        &mut self,
        rec: &Recorder,
        timeout: Duration,
    ) -> Result<(), SampleError> {
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
