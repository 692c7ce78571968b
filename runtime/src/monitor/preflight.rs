//! The check before any load that every monitor can be read.

use super::sample::{Sampler, read_pid_file};
use std::time::Duration;
use volley_config::monitor::{MonitorSpec, Source};
use volley_protocols::metrics::{MetricKind, Recorder, Registry, Unit};
use volley_protocols::procfs;

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
