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