//! Runs that always stop, and plans that fit the machine (issue 19): lanes
//! whose iterations never wait, arrival rates far beyond the clock, VU
//! counts beyond memory, a second Ctrl-C, a machine that cannot start the
//! workers. Against the embedded target on loopback; counts are compared
//! with the target's own.

mod common;

use common::*;
use std::time::Duration;
use volley_protocols::duration::DurRange;
use volley_serve::ServeOptions;

/// A run that should take seconds: anything near this is a hang.
const HANG: u64 = 60;

fn run_within(
    d: &Dir,
    plan: &std::path::Path,
    args: &[&str],
) -> (std::process::Output, serde_json::Value) {
    let export = d.join("summary.json");
    let _ = std::fs::remove_file(&export);
    let out = output_within(
        volley()
            .arg("run")
            .arg(plan)
            .arg("--quiet")
            .arg("--summary-export")
            .arg(&export)
            .args(args),
        HANG,
    );
    let summary =
        std::fs::read(&export).unwrap_or_else(|e| panic!("no summary ({e}): {}", text(&out)));
    (
        out,
        serde_json::from_slice(&summary).expect("summary is JSON"),
    )
}

fn arrival_plan(d: &Dir, url: &str, rate: &str, duration: &str) -> std::path::PathBuf {
    d.write(
        "rate.toml",
        &format!(
            r#"[scenarios.fast]
driver = "http"
executor = "constant-arrival-rate"
rate = {rate}
duration = "{duration}"
pre_allocated_vus = 20
max_vus = 50

[[scenarios.fast.requests]]
url = "{url}/api/v1/health"
"#
        ),
    )
}

/// Iterations that finish without ever waiting: requests to URLs that do
/// not parse (a path from data with a space) fail before any I/O, and
/// sessions shorter than the driver's 1 ms floor never open. The lanes must
/// still notice their end, for every executor. Such plans used to spin at
/// 100% CPU for ever, deaf to the end of the schedule and to Ctrl-C.
#[test]
fn iterations_that_never_wait_still_end_on_time() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let url = t.server.ws_url();
    d.write("paths.csv", "path\nnot a path\n");
    let p = d.write(
        "plan.toml",
        &format!(
            r#"[data.paths]
file = "paths.csv"

[scenarios.http]
driver = "http"
executor = "constant-vus"
vus = 2
duration = "2s"

[[scenarios.http.requests]]
url = "http://127.0.0.1:1/{{{{ data.paths.path }}}}"

[scenarios.constant]
driver = "websocket"
executor = "constant-vus"
vus = 2
duration = "2s"
url = "{url}"
session_duration = "0s..1ms"

[scenarios.ramping]
driver = "websocket"
executor = "ramping-vus"
start_vus = 2
stages = [{{ duration = "2s", target = 2 }}]
url = "{url}"
session_duration = "0s..1ms"

[scenarios.open]
driver = "websocket"
executor = "constant-arrival-rate"
rate = 500
duration = "2s"
pre_allocated_vus = 2
url = "{url}"
session_duration = "0s..1ms"
"#
        ),
    );
    let (out, s) = run_within(&d, &p, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    for sc in ["http", "constant", "ramping", "open"] {
        assert!(
            counter(&s, "iterations", &[("scenario", sc)]) > 0,
            "{sc}: {}",
            text(&out)
        );
    }
    // Every arrival of the open scenario was run or dropped.
    let open = counter(&s, "iterations", &[("scenario", "open")])
        + counter(&s, "dropped_iterations", &[("scenario", "open")]);
    assert_eq!(open, 1000);
    // Not one session, not one request: each failed or ended before it began.
    assert_eq!(value(&s, "ws_sessions", "count"), 0.0);
    assert_eq!(t.total(), 0);
    let failed = counter(&s, "http_reqs", &[("error", "invalid url")]);
    assert_eq!(
        failed as f64,
        value(&s, "http_reqs", "count"),
        "{}",
        text(&out)
    );
}

/// Rates no machine can schedule are refused before anything is sent, with
/// the rate that would work; they used to spin for a minute (1e9/s) or for
/// ever, deaf to Ctrl-C (1e12/s).
#[test]
fn absurd_rates_are_refused_with_the_rate_that_would_work() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    for rate in ["1000000000000", "1e9"] {
        let p = arrival_plan(&d, &t.url(), rate, "2s");
        for cmd in ["validate", "run"] {
            let out = output_within(volley().arg(cmd).arg(&p), HANG);
            let msg = text(&out);
            assert_eq!(code(&out), 2, "{cmd} {rate}: {msg}");
            assert!(msg.contains("rate.toml:4:8"), "{msg}");
            assert!(msg.contains("lower `rate` to at most"), "{msg}");
            assert!(!msg.contains("panicked"), "{msg}");
        }
    }
    // A ramp to such a rate, or a rate per nanosecond, the same.
    let p = d.write(
        "ramp.toml",
        "[scenarios.r]\ndriver = \"http\"\nexecutor = \"ramping-arrival-rate\"\npre_allocated_vus = 1\nstages = [{ duration = \"1s\", target = 1e15 }]\n[[scenarios.r.requests]]\nurl = \"http://127.0.0.1:1/\"\n",
    );
    let out = output_within(volley().arg("validate").arg(&p), HANG);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(text(&out).contains("ramp.toml:5:10"), "{}", text(&out));
    let p = d.write(
        "ns.toml",
        "[scenarios.r]\ndriver = \"http\"\nexecutor = \"constant-arrival-rate\"\nrate = 1\ntime_unit = \"1ns\"\nduration = \"1s\"\npre_allocated_vus = 1\n[[scenarios.r.requests]]\nurl = \"http://127.0.0.1:1/\"\n",
    );
    let out = output_within(volley().arg("validate").arg(&p), HANG);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert_eq!(t.total(), 0, "nothing was sent");
}

/// At a million arrivals a second (accepted on any machine) the run keeps
/// its duration, counts every arrival as run or dropped, and its VUs are
/// not starved by the scheduler (they used to run one iteration each, 50
/// requests in 2 s); a long one stops at Ctrl-C.
#[test]
fn a_very_high_rate_keeps_time_and_hears_the_stop() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let p = arrival_plan(&d, &t.url(), "1e6", "2s");
    let (out, s) = run_within(&d, &p, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let done = value(&s, "iterations", "count");
    assert_eq!(done + value(&s, "dropped_iterations", "count"), 2e6);
    assert_eq!(value(&s, "http_reqs", "count") as u64, t.total());
    assert!(done > 100.0, "50 VUs ran only {done} iterations in 2 s");
    assert!(
        s["volley"]["duration_s"].as_f64().unwrap() < 2.0 + 30.0,
        "ran past duration + graceful_stop"
    );

    // Ten minutes planned: Ctrl-C ends it, with its summary.
    let p = arrival_plan(&d, &t.url(), "1e6", "10m");
    let (out, s) = run_signalled(&d, &p, &[Duration::from_millis(1500)]);
    assert_eq!(code(&out), 130, "{}", text(&out));
    assert!(value(&s, "dropped_iterations", "count") > 0.0);
}

/// VU counts that cannot fit in memory are refused with the count that
/// would, before anything is allocated; they used to pass validation and
/// abort the run ("memory allocation failed").
#[test]
fn vu_counts_beyond_memory_are_refused_with_the_count_that_fits() {
    let d = Dir::new();
    let huge = "100000000000";
    let cases = [
        (
            "executor = \"constant-vus\"\nduration = \"1s\"\nvus = ",
            ":5:7:",
            "`vus`",
        ),
        (
            "executor = \"ramping-vus\"\nstages = [{ duration = \"1s\", target = 1 }]\nstart_vus = ",
            ":5:13:",
            "`start_vus`",
        ),
        (
            "executor = \"constant-arrival-rate\"\nrate = 1\nduration = \"1s\"\npre_allocated_vus = 1\nmax_vus = ",
            ":7:11:",
            "`max_vus`",
        ),
    ];
    for (exec, position, key) in cases {
        let p = d.write(
            "vus.toml",
            &format!(
                "[scenarios.s]\ndriver = \"http\"\n{exec}{huge}\n[[scenarios.s.requests]]\nurl = \"http://127.0.0.1:1/\"\n"
            ),
        );
        let out = output_within(volley().arg("validate").arg(&p), HANG);
        let msg = text(&out);
        assert_eq!(code(&out), 2, "{msg}");
        assert!(msg.contains(&format!("vus.toml{position}")), "{msg}");
        assert!(msg.contains("cannot fit"), "{msg}");
        assert!(msg.contains(&format!("lower {key}")), "{msg}");
        let fit: u64 = msg
            .split("at most ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no count that fits in: {msg}"));
        assert!(fit > 0 && fit < 100_000_000_000, "{msg}");
    }
    // A stage target, and a WebSocket plan (whose validation itself used to
    // allocate 37.8 GB for this one).
    let p = d.write(
        "stage.toml",
        "[scenarios.s]\ndriver = \"http\"\nexecutor = \"ramping-vus\"\nstages = [{ duration = \"1s\", target = 1e11 }]\n[[scenarios.s.requests]]\nurl = \"http://127.0.0.1:1/\"\n",
    );
    let out = output_within(volley().arg("validate").arg(&p), HANG);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(text(&out).contains("stage.toml:4:10"), "{}", text(&out));
    let p = d.write(
        "ws.toml",
        "[scenarios.s]\ndriver = \"websocket\"\nexecutor = \"constant-vus\"\nduration = \"1s\"\nvus = 2147483648\nurl = \"ws://127.0.0.1:1/\"\n",
    );
    let out = output_within(volley().arg("validate").arg(&p), HANG);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(text(&out).contains("cannot fit"), "{}", text(&out));
}

/// Validation allocates nothing per VU: a WebSocket plan of 1e8 VUs split
/// over 1000 machines (1e5 here) validates under a 1 GB address-space limit.
/// Its rooms used to be built for all 1e8 VUs up front: 3.7 GB, 13 s.
#[test]
fn validation_does_not_allocate_per_vu() {
    let d = Dir::new();
    let p = d.write(
        "ws.toml",
        "[scenarios.s]\ndriver = \"websocket\"\nexecutor = \"constant-vus\"\nduration = \"1s\"\nvus = 100000000\nroom_size = 10\nurl = \"ws://127.0.0.1:1/ws/chat\"\n",
    );
    let out = output_within(
        std::process::Command::new("prlimit")
            .arg("--as=1000000000")
            .arg(env!("CARGO_BIN_EXE_volley"))
            .args(["validate", "--segment", "1/1000"])
            .arg(&p),
        HANG,
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(text(&out).contains("peak VUs: 100000000"), "{}", text(&out));
}

/// A second Ctrl-C aborts the iterations in flight: what they had recorded
/// still reaches the summary, and each is counted in interrupted_iterations,
/// so volley's requests plus its interrupted ones are what the target saw
/// arrive. The summary used to show neither.
#[test]
fn a_second_ctrl_c_counts_what_was_in_flight() {
    let t = Target::start(ServeOptions {
        latency: Some(DurRange::parse("2s").unwrap()),
        ..ServeOptions::default()
    });
    let d = Dir::new();
    // Each iteration: a 404 (no latency) that completes, then a 2 s request.
    let p = d.write(
        "slow.toml",
        &format!(
            r#"[scenarios.slow]
driver = "http"
executor = "constant-vus"
vus = 10
duration = "30s"
flow = "sequence"

[[scenarios.slow.requests]]
name = "fast"
url = "{0}/nope"

[[scenarios.slow.requests]]
name = "slow"
url = "{0}/api/v1/health"
"#,
            t.url()
        ),
    );
    let (out, s) = run_signalled(
        &d,
        &p,
        &[Duration::from_millis(1000), Duration::from_millis(1300)],
    );
    assert_eq!(code(&out), 130, "{}", text(&out));
    let reqs = value(&s, "http_reqs", "count") as u64;
    let interrupted = counter(&s, "interrupted_iterations", &[("scenario", "slow")]);
    assert!(interrupted > 0, "{}", text(&out));
    assert!(reqs > 0, "the completed requests of aborted iterations");
    assert_eq!(reqs + interrupted, t.arrived(), "{}", text(&out));
    assert!(
        text(&out).contains("interrupted_iterations"),
        "{}",
        text(&out)
    );
}

/// A machine that cannot start the worker runtimes (here: too few file
/// descriptors for their event loops) fails the run with exit 1 and a
/// message saying what to do, not a panic in a worker thread.
#[test]
fn workers_that_cannot_start_are_an_error_not_a_panic() {
    let d = Dir::new();
    let p = d.write(
        "one.toml",
        "[scenarios.s]\ndriver = \"http\"\nexecutor = \"per-vu-iterations\"\n[[scenarios.s.requests]]\nurl = \"http://127.0.0.1:1/\"\n",
    );
    let out = output_within(
        std::process::Command::new("prlimit")
            .arg("--nofile=32:32")
            .arg(env!("CARGO_BIN_EXE_volley"))
            .args(["run", "--quiet", "--workers", "64"])
            .arg(&p),
        HANG,
    );
    let msg = text(&out);
    assert_eq!(code(&out), 1, "{msg}");
    assert!(msg.contains("cannot start worker thread"), "{msg}");
    assert!(msg.contains("lower --workers"), "{msg}");
    assert!(!msg.contains("panicked"), "{msg}");
}
