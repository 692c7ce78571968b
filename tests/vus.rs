//! The VU gauges against known schedules: `vus` is the VUs busy in an
//! iteration, `vus_max` the VUs allocated (pre-allocated ones included), in
//! the summary and in its header line.

mod common;

use common::*;
use volley_serve::ServeOptions;

fn plan(dir: &Dir, body: &str, base: &str) -> std::path::PathBuf {
    dir.write(
        "plan.toml",
        &format!("[defaults]\nbase_url = \"{base}\"\n\n{body}"),
    )
}

/// The summary's header line ("scenarios: 1 scenario, 20 VUs at most ...").
fn header(out: &std::process::Output) -> String {
    text(out)
        .lines()
        .find(|l| l.trim_start().starts_with("scenarios:"))
        .unwrap_or_else(|| panic!("no header line in:\n{}", text(out)))
        .to_string()
}

/// Every per-second `vus` (no tags) point of a summary: (value, min, max).
fn vus_points(s: &serde_json::Value, metric: &str) -> Vec<(f64, f64, f64)> {
    let id = s["interval_series"]
        .as_array()
        .unwrap()
        .iter()
        .position(|x| x[0] == metric && x[1].as_object().is_none_or(|o| o.is_empty()))
        .unwrap_or_else(|| panic!("no {metric} series"));
    s["intervals"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|iv| {
            let p = iv["points"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p[0].as_u64() == Some(id as u64))?;
            let g = &p[1];
            Some((
                g["value"].as_f64().unwrap(),
                g["min"].as_f64().unwrap(),
                g["max"].as_f64().unwrap(),
            ))
        })
        .collect()
}

#[test]
fn arrival_rate_counts_its_pre_allocated_vus_and_the_busy_ones() {
    // Iterations of about a millisecond at 20/s: a VU is rarely busy at the
    // moment of a flush, and the pool never needs more than it was given.
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let p = plan(
        &d,
        r#"
[scenarios.api]
driver = "http"
executor = "constant-arrival-rate"
rate = 20
time_unit = "1s"
duration = "3s"
pre_allocated_vus = 20
max_vus = 60

[[scenarios.api.requests]]
url = "/api/v1/health"
"#,
        &t.url(),
    );
    let (out, s) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.unwrap();
    assert_eq!(counter(&s, "http_reqs", &[]), t.total());

    let allocated = value(&s, "vus_max", "max");
    // The 20 pre-allocated VUs exist from the start to the end: the last
    // value is not lowered by VUs retiring as the run ends.
    assert!(
        (20.0..=60.0).contains(&allocated),
        "vus_max max {allocated}"
    );
    assert!(value(&s, "vus_max", "value") >= 20.0, "{s:#}");
    assert!(value(&s, "vus_max", "min") >= 20.0, "{s:#}");
    for (v, lo, hi) in vus_points(&s, "vus_max") {
        assert!(
            v >= 20.0 && lo >= 20.0 && hi >= 20.0,
            "vus_max point {v} {lo} {hi}"
        );
    }
    // Some VU was busy in every second the arrivals ran: the peak shows it.
    let busy = value(&s, "vus", "max");
    assert!(busy >= 1.0 && busy <= allocated, "vus max {busy}, {s:#}");
    // The header names the VUs the run had, and the plan's limit apart.
    let h = header(&out);
    assert!(
        h.contains(&format!("{allocated:.0} VUs at most (limit 60)")),
        "{h}"
    );
}

#[test]
fn ramping_vus_peak_at_the_stages_target() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let p = plan(
        &d,
        r#"
[scenarios.ramp]
driver = "http"
executor = "ramping-vus"
start_vus = 0
think_time = "50ms"
stages = [
  { duration = "500ms", target = 6 },
  { duration = "1500ms", target = 6 },
  { duration = "1s", target = 0 },
]

[[scenarios.ramp.requests]]
url = "/api/v1/health"
"#,
        &t.url(),
    );
    let (out, s) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.unwrap();
    assert_eq!(counter(&s, "http_reqs", &[]), t.total());
    assert_eq!(value(&s, "vus", "max"), 6.0, "{s:#}");
    assert_eq!(value(&s, "vus_max", "max"), 6.0, "{s:#}");
    for (v, lo, hi) in vus_points(&s, "vus") {
        assert!(lo <= v && v <= hi && hi <= 6.0, "vus point {v} {lo} {hi}");
    }
    let h = header(&out);
    assert!(h.contains("1 scenario, 6 VUs at most, ran"), "{h}");
}

#[test]
fn shared_iterations_over_in_under_a_second_still_show_their_vus() {
    // 50 quick iterations end before the first flush: the gauges must still
    // say 5 VUs ran (a sample taken when the run is over sees none).
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let p = plan(
        &d,
        r#"
[scenarios.burst]
driver = "http"
executor = "shared-iterations"
vus = 5
iterations = 50

[[scenarios.burst.requests]]
url = "/api/v1/health"
"#,
        &t.url(),
    );
    let (out, s) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.unwrap();
    assert_eq!(counter(&s, "http_reqs", &[]), 50);
    assert_eq!(t.total(), 50);
    assert_eq!(value(&s, "vus", "max"), 5.0, "{s:#}");
    assert_eq!(value(&s, "vus_max", "max"), 5.0, "{s:#}");
    assert_eq!(value(&s, "vus_max", "value"), 5.0, "{s:#}");
    let h = header(&out);
    assert!(h.contains("1 scenario, 5 VUs at most, ran"), "{h}");
}
