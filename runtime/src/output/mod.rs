//! Time-series outputs (`--out`): observers that see every completed
//! interval of the run. JSON lines and CSV stream one record per interval,
//! metric and tag set; Prometheus serves the running totals on `/metrics`;
//! InfluxDB and Prometheus remote write get them pushed, off the run's
//! threads (`push`).

mod dashboard;
pub mod dest;
mod influx;
mod prometheus;
mod push;
mod remote_write;
mod rows;
mod server;

pub use dashboard::{AddrError, Dashboard, parse_addr as parse_dashboard_addr};
pub use influx::{InfluxOptions, InfluxOutput};
pub use prometheus::{Endpoint, PrometheusOptions};
pub use remote_write::{RemoteWriteOptions, RemoteWriteOutput};
pub use rows::{FileError, Line, Values, interval_lines};
pub use server::ServeError;

use crate::engine::Observer;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use volley_model::monitor::MonitorReport;
use volley_model::summary::SeriesRecord;
use volley_protocols::metrics::{Slot, Tags, Unit};

/// The capacity answers' series, found when the run ends.
const ANSWERS: [&str; 3] = ["capacity_held", "capacity_broke", "recovery_time"];

/// One end-of-run answer, as a series.
pub(crate) struct Answer {
    pub metric: String,
    pub unit: Unit,
    pub tags: Tags,
    pub slot: Slot,
}

/// An `--out` that cannot be read or opened.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error(
        "--out {0:?}: write json=FILE, csv=FILE, prometheus=127.0.0.1:9464, influxdb=http://127.0.0.1:8086/volley or prometheus-rw=http://127.0.0.1:9090/api/v1/write"
    )]
    Shape(String),
    #[error("--out {spec:?}: the value after {kind}= is empty")]
    Empty { spec: String, kind: String },
    #[error(
        "--out {spec:?}: {addr:?} is not an address to listen on; write e.g. prometheus=127.0.0.1:9464"
    )]
    Address { spec: String, addr: String },
    #[error("--out {spec:?}: linger: {e}")]
    Linger {
        spec: String,
        e: volley_protocols::duration::DurationError,
    },
    #[error(
        "--out {spec:?}: unknown option {opt:?}; the one option is linger=DURATION (e.g. linger=30s)"
    )]
    Option { spec: String, opt: String },
    #[error(
        "--out {spec:?}: unknown output {kind:?}; use json=FILE, csv=FILE, prometheus=ADDR, influxdb=URL or prometheus-rw=URL"
    )]
    Unknown { spec: String, kind: String },
    /// The pushing outputs (InfluxDB, remote write) say it in their words.
    #[error("{0}")]
    Push(String),
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// One `--out` argument.
#[derive(Clone, Debug, PartialEq)]
pub enum OutputSpec {
    Json(PathBuf),
    Csv(PathBuf),
    Prometheus(PrometheusOptions),
    InfluxDb(InfluxOptions),
    PrometheusRw(RemoteWriteOptions),
}

impl OutputSpec {
    /// Whether it streams to stdout (`json=-`, `csv=-`, `json=/dev/stdout`).
    pub fn to_stdout(&self) -> bool {
        match self {
            OutputSpec::Json(p) | OutputSpec::Csv(p) => dest::Dest::of(p) == dest::Dest::Stdout,
            _ => false,
        }
    }

    /// `json=FILE`, `csv=FILE`, `prometheus=ADDR[,linger=DURATION]`,
    /// `influxdb=URL[,options]`, `prometheus-rw=URL[,options]`.
    pub fn parse(s: &str) -> Result<Self, OutputError> {
        let spec = || s.to_string();
        let (kind, arg) = s
            .split_once('=')
            .ok_or_else(|| OutputError::Shape(spec()))?;
        if arg.is_empty() {
            return Err(OutputError::Empty {
                spec: spec(),
                kind: kind.into(),
            });
        }
        match kind {
            "json" => Ok(OutputSpec::Json(arg.into())),
            "csv" => Ok(OutputSpec::Csv(arg.into())),
            "influxdb" => Ok(OutputSpec::InfluxDb(
                influx::parse(s, arg).map_err(OutputError::Push)?,
            )),
            "prometheus-rw" => Ok(OutputSpec::PrometheusRw(
                remote_write::parse(s, arg).map_err(OutputError::Push)?,
            )),
            "prometheus" => {
                let mut parts = arg.split(',');
                let addr_text = parts.next().unwrap_or_default();
                let addr: SocketAddr = addr_text.parse().map_err(|_| OutputError::Address {
                    spec: spec(),
                    addr: addr_text.into(),
                })?;
                let mut linger = Duration::ZERO;
                for opt in parts {
                    match opt.split_once('=') {
                        Some(("linger", v)) => {
                            linger = volley_protocols::duration::parse_duration(v)
                                .map_err(|e| OutputError::Linger { spec: spec(), e })?
                        }
                        _ => {
                            return Err(OutputError::Option {
                                spec: spec(),
                                opt: opt.into(),
                            });
                        }
                    }
                }
                Ok(OutputSpec::Prometheus(PrometheusOptions { addr, linger }))
            }
            other => Err(OutputError::Unknown {
                spec: spec(),
                kind: other.into(),
            }),
        }
    }
}

/// The outputs of one run, opened before any load is sent so that a bad path
/// or a busy port stops the run up front.
#[derive(Default)]
pub struct Outputs {
    files: Vec<rows::FileOutput>,
    endpoints: Vec<Endpoint>,
    influx: Vec<InfluxOutput>,
    remote_write: Vec<RemoteWriteOutput>,
}

impl Outputs {
    pub fn open(specs: &[OutputSpec]) -> Result<Self, OutputError> {
        let mut out = Outputs::default();
        for spec in specs {
            match spec {
                OutputSpec::Json(path) => {
                    out.files.push(rows::FileOutput::json(path)?);
                }
                OutputSpec::Csv(path) => {
                    out.files.push(rows::FileOutput::csv(path)?);
                }
                OutputSpec::Prometheus(opts) => out.endpoints.push(Endpoint::start(opts)?),
                OutputSpec::InfluxDb(opts) => out
                    .influx
                    .push(InfluxOutput::start(opts.clone()).map_err(OutputError::Push)?),
                OutputSpec::PrometheusRw(opts) => out
                    .remote_write
                    .push(RemoteWriteOutput::start(opts.clone()).map_err(OutputError::Push)?),
            }
        }
        Ok(out)
    }

    pub fn observers(&mut self) -> Vec<&mut dyn Observer> {
        let mut v: Vec<&mut dyn Observer> = Vec::new();
        for f in self.files.iter_mut() {
            v.push(f);
        }
        for e in self.endpoints.iter_mut() {
            v.push(e);
        }
        for o in self.influx.iter_mut() {
            v.push(o);
        }
        for o in self.remote_write.iter_mut() {
            v.push(o);
        }
        v
    }

    /// How long to keep serving the final values after the run, if at all.
    pub fn linger(&self) -> Option<Duration> {
        self.endpoints
            .iter()
            .map(|e| e.linger)
            .max()
            .filter(|l| !l.is_zero())
    }

    /// Resolves once every lingering endpoint has served its final values.
    pub async fn final_scraped(&self) {
        while !self
            .endpoints
            .iter()
            .all(|e| e.linger.is_zero() || e.final_scraped())
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Let the response that carried them leave the socket.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    /// Push the run's end-of-run answers once more after its last second:
    /// `capacity_held`, `capacity_broke`, `recovery_time` and each monitored
    /// gauge's least-squares slope (`monitor_slope_per_hour{monitor,gauge}`),
    /// so dashboards show volley's verdicts beside the series.
    pub fn answers(&mut self, series: &[(SeriesRecord, Slot)], monitors: &[MonitorReport]) {
        let mut items: Vec<Answer> = series
            .iter()
            .filter(|(r, _)| ANSWERS.contains(&r.metric.as_str()))
            .map(|(r, slot)| Answer {
                metric: r.metric.clone(),
                unit: r.unit,
                tags: r.tags.clone(),
                slot: slot.clone(),
            })
            .collect();
        for m in monitors {
            for g in &m.gauges {
                let Some(v) = g.slope_per_hour.filter(|v| v.is_finite()) else {
                    continue;
                };
                items.push(Answer {
                    metric: "monitor_slope_per_hour".into(),
                    unit: Unit::Default,
                    tags: Tags::new([("monitor", m.name.as_str()), ("gauge", g.metric.as_str())]),
                    slot: Slot::Gauge {
                        last: v,
                        min: v,
                        max: v,
                    },
                });
            }
        }
        if items.is_empty() {
            return;
        }
        for o in &mut self.influx {
            o.answers(&items);
        }
        for o in &mut self.remote_write {
            o.answers(&items);
        }
    }

    /// Points the pushing outputs dropped so far (a slow or dead database).
    pub fn dropped(&self) -> u64 {
        self.influx.iter().map(|o| o.dropped()).sum::<u64>()
            + self.remote_write.iter().map(|o| o.dropped()).sum::<u64>()
    }

    /// Close everything; the outputs that stopped early, and why. The pushing
    /// outputs get a bounded time to deliver their last points; what they
    /// dropped is said on stderr (the run's numbers are whole regardless).
    pub fn finish(self) -> Vec<String> {
        drop(self.endpoints);
        let pushed = self.influx.into_iter().filter_map(|o| o.finish());
        let pushed = pushed.chain(self.remote_write.into_iter().filter_map(|o| o.finish()));
        for warning in pushed {
            eprintln!("warning: {warning}");
        }
        self.files.into_iter().filter_map(|f| f.failed).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        assert_eq!(
            OutputSpec::parse("json=out.jsonl").unwrap(),
            OutputSpec::Json("out.jsonl".into())
        );
        assert_eq!(
            OutputSpec::parse("csv=a=b.csv").unwrap(),
            OutputSpec::Csv("a=b.csv".into())
        );
        assert_eq!(
            OutputSpec::parse("prometheus=127.0.0.1:9464,linger=30s").unwrap(),
            OutputSpec::Prometheus(PrometheusOptions {
                addr: "127.0.0.1:9464".parse().unwrap(),
                linger: Duration::from_secs(30)
            })
        );
        // In a cluster the endpoint listens on every interface, for the scraper.
        assert_eq!(
            OutputSpec::parse("prometheus=0.0.0.0:9464").unwrap(),
            OutputSpec::Prometheus(PrometheusOptions {
                addr: "0.0.0.0:9464".parse().unwrap(),
                linger: Duration::ZERO
            })
        );
        for bad in [
            "json",
            "json=",
            "xml=a",
            "prometheus=localhost",
            "prometheus=127.0.0.1:1,x=1",
        ] {
            assert!(OutputSpec::parse(bad).is_err(), "{bad}");
        }
    }
}
