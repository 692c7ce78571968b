//! Capacity answers against real targets on loopback: the breaking point of
//! a capacity-limited server, recovery after a spike (and "never
//! recovered"), and a memory leak found by a monitor's slope.

mod common;

use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use volley_protocols::duration::DurRange;
use volley_serve::ServeOptions;

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/plans")
        .join(name)
}

fn limited(capacity: usize) -> Target {
    Target::start(ServeOptions {
        capacity: Some(capacity),
        latency: Some(DurRange::parse("10ms").unwrap()),
        ..Default::default()
    })
}

fn env_args(pairs: &[(&str, String)]) -> Vec<String> {
    pairs
        .iter()
        .flat_map(|(k, v)| ["-e".to_string(), format!("{k}={v}")])
        .collect()
}

fn run(d: &Dir, plan: &std::path::Path, args: &[String]) -> (std::process::Output, Value) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (out, s) = run_plan(d, plan, &args);
    let s = s.unwrap_or_else(|| panic!("no summary: {}", text(&out)));
    (out, s)
}

#[test]
fn ramping_vus_break_where_the_capacity_says() {
    // 20 requests in flight and 5 queued (a quarter): 25 VUs are all served,
    // 30 are not. The staircase climbs 5 VUs every 2 s.
    let t = limited(20);
    let (implied, step) = (25.0, 5.0);
    let d = Dir::new();
    let report = d.join("report.html");
    let mut args = env_args(&[
        ("BASE_URL", t.url()),
        ("STEP", "2s".into()),
        ("WINDOW", "2s".into()),
    ]);
    args.extend(["--report".into(), report.display().to_string()]);
    let (out, s) = run(&d, &fixture("stress-breaking-point.toml"), &args);
    assert_eq!(code(&out), 0, "capacity_held>=20 passes: {}", text(&out));

    let bps = s["capacity"]["breaking_points"].as_array().unwrap();
    let failed = bps
        .iter()
        .find(|b| b["signal"] == "http_req_failed{scenario:stress}")
        .unwrap();
    assert_eq!(failed["broke"], true, "{failed}");
    let broke = failed["broke_at"].as_f64().unwrap();
    let held = failed["held"].as_f64().unwrap();
    assert!(
        broke > implied - 1e-9 && broke <= implied + step,
        "broke at {broke}, capacity implies {implied}"
    );
    assert!(
        held >= implied - step && held < broke,
        "held {held}, broke {broke}"
    );
    assert_eq!(failed["unit"], "VUs");
    assert!(failed["at"].as_str().unwrap().ends_with('Z'));
    // Latency never crossed 1 s: that signal did not break.
    let slow = bps
        .iter()
        .find(|b| b["signal"] == "http_req_duration{scenario:stress}")
        .unwrap();
    assert_eq!(slow["broke"], false, "{slow}");
    // abort = true: the run stopped at the breaking point, the answer kept.
    let aborted = s["volley"]["aborted"].as_str().unwrap();
    assert!(aborted.contains("breaking point"), "{aborted}");
    assert!(s["volley"]["duration_s"].as_f64().unwrap() < 2.0 * 8.0);
    assert_eq!(value(&s, "capacity_broke", "value"), broke);
    assert_eq!(value(&s, "capacity_held", "value"), held);
    // Numbers are the product: every 503 volley counted, the server sent.
    let rejected = counter(&s, "http_reqs", &[("status", "503")]);
    assert!(rejected > 0);
    assert_eq!(rejected, t.server.state.load.rejected());
    assert_eq!(value(&s, "http_reqs", "count") as u64, t.total());
    let txt = text(&out);
    assert!(
        txt.contains(&format!("held {held} VUs, broke at {broke} VUs,")),
        "{txt}"
    );
    // The report marks it on the scenario's charts and lists it.
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("id=\"breaking-points\""));
    let latency = html
        .split("id=\"chart-stress-latency-http_req_duration\"")
        .nth(1)
        .unwrap();
    let latency = latency.split("</figure>").next().unwrap();
    assert!(
        latency.contains(&format!("broke at {broke} VUs")),
        "mark on the chart"
    );

    // Summaries from before capacity answers still render.
    let mut old = s.clone();
    old.as_object_mut().unwrap().remove("capacity");
    let old_path = d.write("old.json", &old.to_string());
    let out = volley()
        .arg("report")
        .arg(&old_path)
        .arg("--out")
        .arg(d.join("old.html"))
        .output_within(RUN_LIMIT);
    assert_eq!(code(&out), 0, "{}", text(&out));
}

const SPIKE_PLAN: &str = r#"
[defaults]
base_url = "${BASE_URL}"

[scenarios.spike]
driver = "http"
executor = "ramping-vus"
start_vus = 5
stages = [
  { duration = "3s", target = 5 },
  { duration = "0s", target = 40, spike = true },
  { duration = "2s", target = 40, spike = true },
  { duration = "0s", target = AFTER },
  { duration = "4s", target = AFTER },
]
recovery = { window = "2s", tolerance = "100%" }

[[scenarios.spike.requests]]
name = "health"
url = "/api/v1/health"

[thresholds]
recovery_time = ["max<30s"]
"#;

#[test]
fn a_spike_recovers_or_never_does() {
    // 40 VUs against 25 places: 503s during the spike. Back at 5 VUs the
    // target is as it was before; at 30 it stays degraded.
    let t = limited(20);
    let d = Dir::new();
    let env = env_args(&[("BASE_URL", t.url())]);

    let plan = d.write("spike.toml", &SPIKE_PLAN.replace("AFTER", "5"));
    let (out, s) = run(&d, &plan, &env);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let r = &s["capacity"]["recoveries"][0];
    assert_eq!(r["recovered"], true, "{r}");
    assert_eq!(r["stages"], serde_json::json!([2, 3]));
    assert_eq!(r["end_s"].as_f64().unwrap(), 5.0);
    let time = r["recovery_time_s"].as_f64().unwrap();
    // Judged within the 4 s after the spike, by 2 s windows.
    assert!((0.0..=2.0).contains(&time), "{time}");
    let base = &r["baseline"];
    assert_eq!(base["error_rate"].as_f64(), Some(0.0), "{r}");
    assert!(
        counter(&s, "http_reqs", &[("status", "503")]) > 0,
        "the spike hurt"
    );
    assert_eq!(value(&s, "recovery_time", "count"), 1.0);
    assert!((value(&s, "recovery_time", "max") - time * 1000.0).abs() < 5.0);
    assert!(text(&out).contains("recovered in"), "{}", text(&out));

    let plan = d.write("stuck.toml", &SPIKE_PLAN.replace("AFTER", "30"));
    let (out, s) = run(&d, &plan, &env);
    assert_eq!(
        code(&out),
        99,
        "never recovered fails max<30s: {}",
        text(&out)
    );
    let r = &s["capacity"]["recoveries"][0];
    assert_eq!(r["recovered"], false, "{r}");
    assert!(r.get("recovery_time_s").is_none(), "{r}");
    assert!(r["watched_s"].as_f64().unwrap() > 0.0);
    assert!(r["last"]["error_rate"].as_f64().unwrap() > 0.05, "{r}");
    let m = &s["metrics"]["recovery_time"];
    assert_eq!(m["values"]["never_recovered"], 1.0);
    assert_eq!(m["thresholds"]["max<30s"]["ok"], false);
    let txt = text(&out);
    assert!(txt.contains("NEVER RECOVERED"), "{txt}");
    assert!(txt.contains("'max<30s' max=never recovered"), "{txt}");
}

/// `volley serve` as its own process (its memory is what we watch).
struct Served {
    child: Child,
    url: String,
    /// Kept open: the server prints a few more lines, and a closed pipe would end it.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Served {
    fn start(args: &[&str]) -> Self {
        let mut child = volley()
            .args(["serve", "--addr", "127.0.0.1:0", "--threads", "1"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("volley serve starts");
        let mut first = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let watchdog = KillAfter::new(child.id(), RUN_LIMIT);
        stdout.read_line(&mut first).unwrap();
        assert!(
            !watchdog.fired(),
            "volley serve printed no address and was killed"
        );
        let url = first
            .split_whitespace()
            .last()
            .expect("listening on URL")
            .to_string();
        Self {
            child,
            url,
            _stdout: stdout,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const LEAK_PLAN: &str = r#"
[defaults]
base_url = "${BASE_URL}"

[monitors.srv]
pid = "${PID}"

[scenarios.soak]
driver = "http"
executor = "constant-vus"
vus = 1
duration = "6s"
think_time = "100ms"

[[scenarios.soak.requests]]
name = "health"
url = "/api/v1/health"

[thresholds]
"target_rss{monitor:srv}" = [{ threshold = "slope<300MB/h", after = "1s" }]
"#;

#[test]
fn a_monitor_finds_the_leak_by_its_slope() {
    let d = Dir::new();
    let plan = d.write("leak.toml", LEAK_PLAN);
    let leak_kib_s = 512.0;
    let per_hour = leak_kib_s * 1024.0 * 3600.0;
    for (leak, want_code) in [(leak_kib_s, 99), (0.0, 0)] {
        let srv = Served::start(&["--leak", &leak.to_string()]);
        let env = env_args(&[
            ("BASE_URL", srv.url.clone()),
            ("PID", srv.pid().to_string()),
        ]);
        let report = d.join("leak.html");
        let mut args = env.clone();
        args.extend(["--report".into(), report.display().to_string()]);
        let (out, s) = run(&d, &plan, &args);
        assert_eq!(code(&out), want_code, "leak {leak}: {}", text(&out));
        let th = &s["metrics"]["target_rss{monitor:srv}"]["thresholds"]["slope<300MB/h"];
        let slope = th["value"].as_f64().unwrap();
        let g = &s["capacity"]["monitors"][0]["gauges"][0];
        assert_eq!(g["metric"], "target_rss");
        assert!(g["samples"].as_u64().unwrap() >= 5, "{g}");
        if leak > 0.0 {
            assert!(
                (slope - per_hour).abs() < 0.2 * per_hour,
                "slope {slope} B/h, leak {per_hour} B/h"
            );
            assert_eq!(th["ok"], false);
            assert!(text(&out).contains("slope=+"), "{}", text(&out));
        } else {
            assert!(slope.abs() < 0.2 * per_hour, "no leak, slope {slope}");
            assert_eq!(th["ok"], true);
        }
        // RSS and CPU per second in the time series, charted in the report.
        let names = s["interval_series"].as_array().unwrap();
        for metric in ["target_rss", "target_cpu"] {
            assert!(
                names
                    .iter()
                    .any(|n| n[0] == metric && n[1]["monitor"] == "srv"),
                "{metric}"
            );
        }
        let html = std::fs::read_to_string(&report).unwrap();
        assert!(html.contains("id=\"chart-monitor-srv-target_rss\""));
        assert!(html.contains("trend +"));
    }
}

#[test]
fn json_and_prometheus_monitors_record_gauges() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let plan = d.write(
        "mon.toml",
        r#"
[defaults]
base_url = "${BASE_URL}"

[monitors.api]
url = "${BASE_URL}/api/metrics"
json_path = "$.requests.total"
gauge = "served"

[monitors.prom]
prometheus = "${BASE_URL}/metrics"
metric = "process_resident_memory_bytes"
unit = "bytes"

[scenarios.load]
driver = "http"
executor = "constant-arrival-rate"
rate = 50
time_unit = "1s"
duration = "3s"
pre_allocated_vus = 5

[[scenarios.load.requests]]
name = "health"
url = "/api/v1/health"

[thresholds]
"served{monitor:api}" = ["max>0", "slope>0"]
"#,
    );
    let (out, s) = run(&d, &plan, &env_args(&[("BASE_URL", t.url())]));
    assert_eq!(code(&out), 0, "{}", text(&out));
    let served = &s["metrics"]["served"]["values"];
    let max = served["max"].as_f64().unwrap();
    // The monitor saw the server's own count while the load went on: more
    // than nothing, never more than it served in the end.
    assert!(
        max > 0.0 && max <= t.total() as f64,
        "{max} of {}",
        t.total()
    );
    let rss = value(&s, "process_resident_memory_bytes", "value");
    assert!(rss > 1e6, "{rss}");
    let mons = s["capacity"]["monitors"].as_array().unwrap();
    assert_eq!(mons.len(), 2);
    assert_eq!(mons[0]["errors"], 0);
}

#[test]
fn bad_capacity_plans_are_refused_before_any_load() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let base = r#"
[defaults]
base_url = "${BASE_URL}"

[scenarios.s]
driver = "http"
executor = "ramping-vus"
stages = [{ duration = "1s", target = 1 }]
EXTRA

[[scenarios.s.requests]]
url = "/api/v1/health"
"#;
    let cases = [
        (
            "breaking_point = { signal = \"http_req_failed\", expr = \"rate>0.05\", windw = \"2s\" }",
            "unknown field `windw`",
        ),
        (
            "breaking_point = { signal = \"nope\", expr = \"rate>0.05\" }",
            "no metric named \"nope\"",
        ),
        (
            "recovery = { window = \"2s\" }",
            "mark a stage with spike = true",
        ),
        (
            "[thresholds]\nhttp_req_duration = [\"slope<1MB/h\"]",
            "slope is for gauges",
        ),
        (
            "[monitors.m]\npid = 1\nurl = \"http://127.0.0.1:9/\"",
            "watch exactly one thing",
        ),
        (
            "[monitors.m]\npid = 4000000000",
            "no process with id 4000000000",
        ),
        // Nothing listens on port 9 here: a refused connection, in words.
        (
            "[monitors.m]\nurl = \"http://127.0.0.1:9/\"\njson_path = \"$.x\"",
            "cannot connect; is the target up?",
        ),
        (
            "[monitors.m]\nurl = \"${BASE_URL}/api/metrics\"\njson_path = \"$.nothing.here\"",
            "the answer has no number at json_path",
        ),
    ];
    for (extra, want) in cases {
        let plan = d.write("bad.toml", &base.replace("EXTRA", extra));
        let (out, _) = run_plan(&d, &plan, &["-e", &format!("BASE_URL={}", t.url())]);
        assert_eq!(code(&out), 2, "{extra}: {}", text(&out));
        assert!(text(&out).contains(want), "{extra}: {}", text(&out));
    }
    assert_eq!(t.total(), 0, "nothing was sent");
}
