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
//!
//! This module reads the sections; the runtime polls them.

pub mod prom;

use serde::Deserialize;
use serde_json_path::JsonPath;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;
use toml::de::{DeValue, ValueDeserializer};
use volley_model::monitor::{CPU, ERRORS, RSS};
use volley_protocols::ConfigError;
use volley_protocols::duration::Dur;
use volley_protocols::http::{BadUrl, Fetcher};
use volley_protocols::metrics::{MetricKind, Registry, Unit};

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
        check_url(url).map_err(|e| at(url.span(), e.to_string()))?;
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
        check_url(url).map_err(|e| at(url.span(), e.to_string()))?;
        if raw.json_path.is_some() {
            return Err(at(span, "json_path is for url monitors answering JSON; a Prometheus monitor takes metric = NAME".into()));
        }
        let m = raw.metric.as_ref().ok_or_else(|| {
            at(url.span(), "a Prometheus monitor needs metric = \"process_resident_memory_bytes\" (labels optional)".into())
        })?;
        let (metric, mut labels) =
            prom::parse_selector(m.get_ref()).map_err(|e| at(m.span(), e.to_string()))?;
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

fn check_url(url: &Spanned<String>) -> Result<(), BadUrl> {
    Fetcher::new(url.get_ref()).map(|_| ())
}
