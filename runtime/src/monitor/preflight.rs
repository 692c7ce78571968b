//! The check before any load that every monitor can be read.

use super::sample::{Sampler, read_pid_file};
use std::path::PathBuf;
use std::time::Duration;
use volley_config::monitor::{MonitorSpec, Source};
use volley_protocols::metrics::{MetricKind, Recorder, Registry, Unit};
use volley_protocols::procfs;

/// A monitor that cannot be read before the run.
#[derive(Debug, thiserror::Error)]
#[error("monitor {name:?} ({reads}): {why}")]
pub struct MonitorError {
    name: String,
    /// What it reads (`process 1234`, `http://...`).
    reads: String,
    why: Why,
}

#[derive(Debug, thiserror::Error)]
enum Why {
    #[error(
        "cannot read a process id from {}; start the target first (it should write its pid there)",
        .0.display()
    )]
    PidFile(PathBuf),
    #[error("no process with id {0} (/proc/{0} does not exist); start the target first or fix pid")]
    NoProcess(u32),
    #[error("cannot read /proc/{pid}: {e}")]
    Proc { pid: u32, e: std::io::Error },
    #[error("{0}")]
    Url(volley_protocols::http::BadUrl),
    /// The sampler's own advice.
    #[error("{0}")]
    Sample(String),
}

/// Before any load: every monitor can be read now, or the run does not start.
pub async fn prepare(monitors: &[MonitorSpec]) -> Result<(), MonitorError> {
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            for m in monitors {
                let fail = |why: Why| MonitorError {
                    name: m.name.clone(),
                    reads: m.describe(),
                    why,
                };
                match &m.source {
                    Source::Process {
                        pid,
                        pid_file,
                        plan_dir,
                    } => {
                        let pid = match (pid, pid_file) {
                            (Some(p), _) => *p,
                            (None, Some(f)) => read_pid_file(f, plan_dir)
                                .ok_or_else(|| fail(Why::PidFile(f.clone())))?,
                            (None, None) => unreachable!("a process monitor has pid or pid_file"),
                        };
                        if !procfs::exists(pid) {
                            return Err(fail(Why::NoProcess(pid)));
                        }
                        procfs::read(pid).map_err(|e| fail(Why::Proc { pid, e }))?;
                    }
                    _ => {
                        let registry = Registry::new();
                        let rec = Recorder::new(registry.clone());
                        for g in m.gauges() {
                            registry.metric(g, MetricKind::Gauge, Unit::Default);
                        }
                        let mut s = Sampler::new(m, &rec).map_err(|e| fail(Why::Url(e)))?;
                        let timeout = Duration::from_secs(5);
                        s.sample(&rec, timeout)
                            .await
                            .map_err(|e| fail(Why::Sample(e.advice(timeout))))?;
                    }
                }
            }
            Ok(())
        })
        .await
}
