//! Shared by the integration tests: the embedded target in-process on a free
//! loopback port, the real `volley` binary, plan files in a temp dir.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use volley_serve::{ServeOptions, Server};

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

    /// API requests that reached the target, answered or not.
    pub fn arrived(&self) -> u64 {
        self.server.state.stats.arrived()
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

/// How long a test lets one `volley run` of its short plans take before it
/// kills it: far beyond any plan here (a few seconds, plus graceful stops),
/// so only a hang reaches it.
pub const RUN_LIMIT: u64 = 180;

/// Run `cmd` to its end and take its output; past `secs`, kill it (SIGKILL)
/// and fail the test saying so. Every test runs volley through this (or
/// `wait_within`), so none can hang.
pub fn output_within(cmd: &mut Command, secs: u64) -> Output {
    let what = format!("{cmd:?}");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    wait_within(child, secs, &what)
}

/// `cmd.output_within(secs)`: `output_within` as a method, for builder chains.
pub trait Within {
    fn output_within(&mut self, secs: u64) -> Output;
}

impl Within for Command {
    fn output_within(&mut self, secs: u64) -> Output {
        output_within(self, secs)
    }
}

/// Kills process `pid` (SIGKILL) once `secs` have passed, unless stopped
/// first: guards a child through blocking reads and waits.
pub struct KillAfter {
    done: Option<mpsc::Sender<()>>,
    watchdog: Option<std::thread::JoinHandle<bool>>,
}

impl KillAfter {
    pub fn new(pid: u32, secs: u64) -> Self {
        let (done, finished) = mpsc::channel::<()>();
        let watchdog = std::thread::spawn(move || {
            if finished.recv_timeout(Duration::from_secs(secs))
                != Err(mpsc::RecvTimeoutError::Timeout)
            {
                return false;
            }
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            true
        });
        Self {
            done: Some(done),
            watchdog: Some(watchdog),
        }
    }

    /// Stop watching (call before the child is reaped); true if it had to kill.
    pub fn fired(mut self) -> bool {
        self.stop()
    }

    fn stop(&mut self) -> bool {
        drop(self.done.take());
        self.watchdog
            .take()
            .is_some_and(|w| w.join().unwrap_or(false))
    }
}

impl Drop for KillAfter {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Wait for a started child (stdout and stderr piped) and take its output;
/// past `secs`, kill it (SIGKILL) and fail the test naming `what`.
pub fn wait_within(child: Child, secs: u64, what: &str) -> Output {
    // The child is not reaped before wait_with_output returns, so its pid
    // cannot have been reused when the watchdog kills.
    let watchdog = KillAfter::new(child.id(), secs);
    let out = child
        .wait_with_output()
        .expect("the child can be waited for");
    if watchdog.fired() {
        panic!(
            "{what} did not exit within {secs}s and was killed (SIGKILL); its output:\n{}",
            text(&out)
        );
    }
    out
}

/// `volley run PLAN --quiet --summary-export DIR/summary.json [args]`.
pub fn run_plan(dir: &Dir, plan: &Path, args: &[&str]) -> (Output, Option<serde_json::Value>) {
    let export = dir.join("summary.json");
    let _ = std::fs::remove_file(&export);
    let out = output_within(
        volley()
            .arg("run")
            .arg(plan)
            .arg("--quiet")
            .arg("--summary-export")
            .arg(&export)
            .args(args),
        RUN_LIMIT,
    );
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
    run_signalled(dir, plan, &[after])
}

/// `volley run PLAN --quiet --summary-export ...`, sent SIGINT (Ctrl-C) at
/// each of `at` (from its start): its output and the summary it still wrote.
pub fn run_signalled(dir: &Dir, plan: &Path, at: &[Duration]) -> (Output, serde_json::Value) {
    let export = dir.join("summary.json");
    let _ = std::fs::remove_file(&export);
    let mut cmd = volley();
    cmd.arg("run")
        .arg(plan)
        .arg("--quiet")
        .arg("--summary-export")
        .arg(&export)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let what = format!("{cmd:?}");
    let child = cmd.spawn().expect("volley runs");
    let started = std::time::Instant::now();
    for t in at {
        std::thread::sleep(t.saturating_sub(started.elapsed()));
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
    }
    let out = wait_within(child, RUN_LIMIT, &what);
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

/// Test certificates in `d`, made by the openssl command: a CA (`ca.pem`,
/// `ca.key`), a server certificate for DNS:localhost (`server.pem`,
/// `server.key`) and, with `client`, a client certificate (`client.pem`,
/// `client.key`), all signed by the CA, valid for two days.
pub fn test_certificates(d: &Dir, client: bool) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&d.path)
            .output_within(60);
        assert!(
            out.status.success(),
            "openssl {args:?} (the openssl command makes the test certificates): {}",
            text(&out)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let days = ["-days", "2"];
    run(&[
        &["req", "-x509", "-keyout", "ca.key", "-out", "ca.pem"][..],
        &ec,
        &days,
        &["-subj", "/CN=volley test CA"],
    ]
    .concat());
    let server = "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n";
    let client_ext =
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n";
    let mut whom = vec![("server", "localhost", server)];
    if client {
        whom.push(("client", "client", client_ext));
    }
    for (who, cn, ext) in whom {
        let (key, csr, pem, cnf) = (
            format!("{who}.key"),
            format!("{who}.csr"),
            format!("{who}.pem"),
            format!("{who}.cnf"),
        );
        run(&[
            &["req", "-keyout", &key, "-out", &csr][..],
            &ec,
            &["-subj", &format!("/CN={cn}")],
        ]
        .concat());
        d.write(&cnf, ext);
        run(&[
            &[
                "x509", "-req", "-in", &csr, "-CA", "ca.pem", "-CAkey", "ca.key",
            ][..],
            &["-CAcreateserial", "-out", &pem, "-extfile", &cnf],
            &days,
        ]
        .concat());
    }
}
