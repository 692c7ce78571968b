//! Shared by the integration tests: the embedded target in-process on a free
//! loopback port, the real `volley` binary, plan files in a temp dir.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use volley::serve::{ServeOptions, Server};

/// The demo target on 127.0.0.1, on its own runtime, for the test's lifetime.
pub struct Target {
    pub server: Server,
    _rt: tokio::runtime::Runtime,
}

impl Target {
    pub fn start(opts: ServeOptions) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let server = rt
            .block_on(Server::start("127.0.0.1:0".parse().unwrap(), opts))
            .expect("the demo target binds a loopback port");
        Self { server, _rt: rt }
    }

    pub fn url(&self) -> String {
        self.server.base_url()
    }

    pub fn total(&self) -> u64 {
        self.server.state.stats.total()
    }

    pub fn route(&self, label: &str) -> u64 {
        self.server.state.stats.route(label)
    }
}

pub struct Dir {
    pub path: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        Self {
            path: tmp.path().to_path_buf(),
            _tmp: tmp,
        }
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

pub fn volley() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_volley"));
    c.env_remove("BASE_URL");
    c
}

/// `volley run PLAN --quiet --summary-export DIR/summary.json [args]`.
pub fn run_plan(dir: &Dir, plan: &Path, args: &[&str]) -> (Output, Option<serde_json::Value>) {
    let export = dir.join("summary.json");
    let _ = std::fs::remove_file(&export);
    let out = volley()
        .arg("run")
        .arg(plan)
        .arg("--quiet")
        .arg("--summary-export")
        .arg(&export)
        .args(args)
        .output()
        .expect("volley runs");
    let summary = std::fs::read(&export)
        .ok()
        .map(|b| serde_json::from_slice(&b).expect("summary is JSON"));
    (out, summary)
}

/// `volley run PLAN --quiet --summary-export ...`, interrupted with SIGINT
/// (Ctrl-C) after `after`: its output and the summary it still wrote.
pub fn run_interrupted(
    dir: &Dir,
    plan: &Path,
    after: std::time::Duration,
) -> (Output, serde_json::Value) {
    let export = dir.join("summary.json");
    let child = volley()
        .arg("run")
        .arg(plan)
        .arg("--quiet")
        .arg("--summary-export")
        .arg(&export)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("volley runs");
    std::thread::sleep(after);
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().expect("volley exits");
    let summary = std::fs::read(&export).expect("the summary is written on Ctrl-C");
    (
        out,
        serde_json::from_slice(&summary).expect("summary is JSON"),
    )
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `metrics.<name>.values.<key>` of a summary, 0 when absent.
pub fn value(summary: &serde_json::Value, metric: &str, key: &str) -> f64 {
    summary["metrics"][metric]["values"][key]
        .as_f64()
        .unwrap_or(0.0)
}

/// Sum of a counter over the series whose tags include all of `tags`.
pub fn counter(summary: &serde_json::Value, metric: &str, tags: &[(&str, &str)]) -> u64 {
    series(summary, metric, tags)
        .iter()
        .map(|s| s["count"].as_u64().unwrap_or(0))
        .sum()
}

pub fn series<'a>(
    summary: &'a serde_json::Value,
    metric: &str,
    tags: &[(&str, &str)],
) -> Vec<&'a serde_json::Value> {
    summary["series"]
        .as_array()
        .expect("series")
        .iter()
        .filter(|s| s["metric"] == metric && tags.iter().all(|(k, v)| s["tags"][*k] == *v))
        .collect()
}

pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}
