//! One record per interval, metric and tag set, written as JSON lines or CSV
//! while the run goes.

use crate::aggregate::Aggregator;
use crate::engine::Observer;
use serde::Serialize;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use volley_model::point::Point;
use volley_protocols::metrics::{MetricKind, Tags, Unit};

/// Values of one series over one interval. Time values are in milliseconds
/// (as in the summary); `rate` is per second for counters and trends (count
/// over the interval's length), the share of true observations for rates.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Values {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avg: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p90: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p95: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99: Option<f64>,
}

impl Values {
    /// `span`: seconds the interval covered (1, less for the last one).
    pub fn of(point: &Point, unit: Unit, span: f64) -> Self {
        // Trends are stored in µs (time) or millionths (plain values).
        let scale = |v: f64| v / volley_protocols::metrics::trend_scale(unit);
        let per_s = |n: u64| n as f64 / span.max(1e-3);
        match *point {
            Point::Counter { count } => Values {
                count: Some(count),
                rate: Some(per_s(count)),
                ..Default::default()
            },
            Point::Rate { hits, total } => Values {
                count: Some(hits),
                total: Some(total),
                rate: Some(if total > 0 {
                    hits as f64 / total as f64
                } else {
                    0.0
                }),
                ..Default::default()
            },
            Point::Gauge { value, min, max } => Values {
                value: Some(value),
                min: Some(min),
                max: Some(max),
                ..Default::default()
            },
            Point::Trend {
                count,
                min,
                max,
                mean,
                p50,
                p90,
                p95,
                p99,
            } => Values {
                count: Some(count),
                rate: Some(per_s(count)),
                min: Some(scale(min as f64)),
                max: Some(scale(max as f64)),
                avg: Some(scale(mean)),
                p50: Some(scale(p50 as f64)),
                p90: Some(scale(p90 as f64)),
                p95: Some(scale(p95 as f64)),
                p99: Some(scale(p99 as f64)),
                ..Default::default()
            },
        }
    }
}

/// One JSON line.
#[derive(Clone, Debug, Serialize)]
pub struct Line {
    /// Seconds from the start of the run at which the interval began.
    pub t: u64,
    /// The interval's start, RFC 3339.
    pub time: String,
    pub metric: String,
    #[serde(rename = "type")]
    pub kind: MetricKind,
    pub unit: Unit,
    pub tags: Tags,
    #[serde(flatten)]
    pub values: Values,
}

/// The lines of the intervals completed after the first `from`.
pub fn interval_lines(
    agg: &Aggregator,
    from: u64,
    started: SystemTime,
    elapsed: Duration,
) -> Vec<Line> {
    let defs = agg.registry.metrics();
    let series = agg.registry.all_series();
    let mut out = Vec::new();
    for iv in agg.since(from) {
        // Every interval lasts a second but the run's last one.
        let span = (elapsed.as_secs_f64() - iv.index as f64).clamp(1e-3, 1.0);
        let time =
            humantime::format_rfc3339_millis(started + Duration::from_secs(iv.index)).to_string();
        for (id, point) in &iv.points {
            let Some(info) = series.get(*id as usize) else {
                continue;
            };
            let def = &defs[info.metric as usize];
            out.push(Line {
                t: iv.index,
                time: time.clone(),
                metric: def.name.to_string(),
                kind: def.kind,
                unit: def.unit,
                tags: info.tags.clone(),
                values: Values::of(point, def.unit, span),
            });
        }
    }
    out
}

pub const CSV_HEADER: [&str; 17] = [
    "t", "time", "metric", "type", "unit", "tags", "count", "total", "rate", "value", "min", "max",
    "avg", "p50", "p90", "p95", "p99",
];

/// Tags as `key=value&key=value` (k6's CSV `extra_tags` form), with `%`, `&`
/// and `=` percent-encoded so the cell splits back unambiguously.
pub fn csv_tags(tags: &Tags) -> String {
    let enc = |s: &str| {
        s.replace('%', "%25")
            .replace('&', "%26")
            .replace('=', "%3D")
    };
    tags.iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn csv_record(l: &Line) -> [String; 17] {
    let n = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    let f = |v: Option<f64>| v.map(|v| format!("{v}")).unwrap_or_default();
    let kind = match l.kind {
        MetricKind::Counter => "counter",
        MetricKind::Gauge => "gauge",
        MetricKind::Rate => "rate",
        MetricKind::Trend => "trend",
    };
    let unit = match l.unit {
        Unit::Default => "default",
        Unit::Time => "time",
        Unit::Data => "data",
    };
    let v = &l.values;
    [
        l.t.to_string(),
        l.time.clone(),
        l.metric.clone(),
        kind.into(),
        unit.into(),
        csv_tags(&l.tags),
        n(v.count),
        n(v.total),
        f(v.rate),
        f(v.value),
        f(v.min),
        f(v.max),
        f(v.avg),
        f(v.p50),
        f(v.p90),
        f(v.p95),
        f(v.p99),
    ]
}

type Sink = Box<dyn Write + Send>;

enum Format {
    Json(BufWriter<Sink>),
    Csv(Box<csv::Writer<Sink>>),
}

/// `--out json=FILE` / `--out csv=FILE`: written and flushed every interval,
/// so `tail -f` shows the run as it goes. `-` is stdout.
pub struct FileOutput {
    /// `json=PATH` or `csv=PATH`, as given.
    spec: String,
    format: Option<Format>,
    started: SystemTime,
    written: u64,
    /// Why the output stopped early, if it did: the run then exits 1.
    pub failed: Option<String>,
}

/// An `--out json=` or `csv=` file that cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("--out {what}={}: cannot create the file: {e}", path.display())]
    Create {
        what: &'static str,
        path: PathBuf,
        e: std::io::Error,
    },
    #[error("--out csv={}: {e}", path.display())]
    Header { path: PathBuf, e: csv::Error },
}

/// Why a write to an open file failed.
#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Csv(#[from] csv::Error),
}

fn create(path: &Path, what: &'static str) -> Result<Sink, FileError> {
    super::dest::stream(path).map_err(|e| FileError::Create {
        what,
        path: path.to_path_buf(),
        e,
    })
}

impl FileOutput {
    pub fn json(path: &Path) -> Result<Self, FileError> {
        let f = create(path, "json")?;
        Ok(Self::new("json", path, Format::Json(BufWriter::new(f))))
    }

    pub fn csv(path: &Path) -> Result<Self, FileError> {
        let f = create(path, "csv")?;
        let mut w = csv::Writer::from_writer(f);
        w.write_record(CSV_HEADER)
            .and_then(|_| w.flush().map_err(Into::into))
            .map_err(|e| FileError::Header {
                path: path.to_path_buf(),
                e,
            })?;
        Ok(Self::new("csv", path, Format::Csv(Box::new(w))))
    }

    fn new(kind: &str, path: &Path, format: Format) -> Self {
        Self {
            spec: format!("{kind}={}", path.display()),
            format: Some(format),
            started: SystemTime::now(),
            written: 0,
            failed: None,
        }
    }

    fn write(&mut self, agg: &Aggregator, elapsed: Duration) {
        let Some(format) = &mut self.format else {
            return;
        };
        let lines = interval_lines(agg, self.written, self.started, elapsed);
        self.written = agg.completed();
        let result: Result<(), WriteError> = (|| {
            match format {
                Format::Json(w) => {
                    for l in &lines {
                        serde_json::to_writer(&mut *w, l)?;
                        w.write_all(b"\n")?;
                    }
                    w.flush()?;
                }
                Format::Csv(w) => {
                    for l in &lines {
                        w.write_record(csv_record(l))?;
                    }
                    w.flush()?;
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            let e = format!("--out {}: cannot write: {e}", self.spec);
            eprintln!("warning: {e}; this output stops here");
            self.failed = Some(e);
            self.format = None;
        }
    }
}

impl Observer for FileOutput {
    fn on_start(&mut self, started: SystemTime) {
        self.started = started;
    }

    fn on_interval(&mut self, agg: &Aggregator, elapsed: Duration) -> Option<String> {
        self.write(agg, elapsed);
        None
    }

    fn on_end(&mut self, agg: &Aggregator, elapsed: Duration) {
        self.write(agg, elapsed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_scale_time_and_rate_per_second() {
        let p = Point::Trend {
            count: 10,
            min: 1000,
            max: 9000,
            mean: 2500.0,
            p50: 2000,
            p90: 5000,
            p95: 8000,
            p99: 9000,
        };
        let v = Values::of(&p, Unit::Time, 0.5);
        assert_eq!(v.count, Some(10));
        assert_eq!(v.rate, Some(20.0));
        assert_eq!(v.p95, Some(8.0));
        let r = Values::of(&Point::Rate { hits: 1, total: 4 }, Unit::Default, 1.0);
        assert_eq!((r.count, r.total, r.rate), (Some(1), Some(4), Some(0.25)));
    }

    #[test]
    fn csv_tags_escape_separators() {
        let t = Tags::new([("name", "a&b=c"), ("scenario", "api")]);
        assert_eq!(csv_tags(&t), "name=a%26b%3Dc&scenario=api");
    }
}
