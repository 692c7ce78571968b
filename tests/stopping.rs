//! Runs that always stop, and plans that fit the machine (issue 19): lanes
//! whose iterations never wait, arrival rates far beyond the clock, VU
//! counts beyond memory, a second Ctrl-C, a machine that cannot start the
//! workers. Against the embedded target on loopback; counts are compared
//! with the target's own.

mod common;

use common::*;
use std::time::Duration;
use volley::serve::ServeOptions;
use volley_protocols::duration::DurRange;

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