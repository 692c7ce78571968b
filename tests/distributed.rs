//! Distributed runs on loopback: N `volley run --segment I/N` processes with
//! one `--start-at`, then `volley merge`. Counts are compared with what the
//! server itself served, percentiles with one histogram of all samples.

mod common;

use common::*;
use hdrhistogram::Histogram;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use volley_model::schedule::{Executor, vu_intervals};
use volley_protocols::duration::DurRange;
use volley_protocols::metrics::decode_histogram;
use volley_serve::ServeOptions;

/// Run segments 1/N..N/N at once, all told to start at the same moment.
/// Returns each part's output and summary file.
fn run_parts(dir: &Dir, plan: &Path, n: u64, extra: &[&str]) -> Vec<(Output, PathBuf)> {
    let at = humantime::format_rfc3339_millis(SystemTime::now() + Duration::from_secs(4));
    let at = at.to_string();
    let children: Vec<_> = (1..=n)
        .map(|i| {
            let part = dir.join(&format!("part-{i}.json"));
            let _ = std::fs::remove_file(&part);
            let child = volley()
                .arg("run")
                .arg(plan)
                .args(["--quiet", "--workers", "2", "--start-at", &at])
                .args(["--segment", &format!("{i}/{n}")])
                .arg("--summary-export")
                .arg(&part)
                .args(extra)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("volley starts");
            (child, part)
        })
        .collect();
    children
        .into_iter()
        .map(|(c, part)| (wait_within(c, RUN_LIMIT, "a segment's volley run"), part))
        .collect()
}

fn merge(dir: &Dir, parts: &[&Path], extra: &[&str]) -> (Output, Option<serde_json::Value>) {
    let export = dir.join("merged.json");
    let _ = std::fs::remove_file(&export);
    let out = volley()
        .arg("merge")
        .args(parts)
        .arg("--summary-export")
        .arg(&export)
        .args(extra)
        .output_within(RUN_LIMIT);
    let summary = std::fs::read(&export)
        .ok()
        .map(|b| serde_json::from_slice(&b).expect("merged summary is JSON"));
    (out, summary)
}

fn read(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("part written")).expect("part is JSON")
}

/// One histogram of every series of `metric` in these summaries.
fn histogram_of(summaries: &[&serde_json::Value], metric: &str) -> Histogram<u64> {
    let mut all: Histogram<u64> = Histogram::new(3).unwrap();
    all.auto(true);
    for s in summaries {
        for r in series(s, metric, &[]) {
            let h = decode_histogram(r["histogram"].as_str().expect("trend")).unwrap();
            all.add(&h).unwrap();
        }
    }
    all
}

#[test]
fn three_segments_of_an_arrival_rate_merge_exactly() {
    // Latency spread over 1..15 ms, so the parts' percentiles differ.
    let t = Target::start(ServeOptions {
        latency: Some(DurRange::parse("1ms..15ms").unwrap()),
        ..Default::default()
    });
    let d = Dir::new();
    let plan = d.write(
        "plan.toml",
        &format!(
            r#"
[defaults]
base_url = "{}"

[scenarios.api]
driver = "http"
executor = "constant-arrival-rate"
rate = 300
time_unit = "1s"
duration = "5s"
pre_allocated_vus = 60
graceful_stop = "5s"

[[scenarios.api.requests]]
name = "health"
url = "/api/v1/health"

[thresholds]
# A third of the run cannot pass this; the whole run does.
iterations = ["count>=1400"]
http_req_failed = ["rate<0.01"]
"#,
            t.url()
        ),
    );
    let parts = run_parts(&d, &plan, 3, &[]);
    for (out, _) in &parts {
        // Each part judged alone fails the count threshold.
        assert_eq!(code(out), 99, "{}", text(out));
    }
    let files: Vec<&Path> = parts.iter().map(|(_, p)| p.as_path()).collect();
    let summaries: Vec<serde_json::Value> = files.iter().map(|p| read(p)).collect();
    let starts: Vec<u64> = summaries
        .iter()
        .map(|s| s["volley"]["started_unix_ms"].as_u64().unwrap())
        .collect();
    let skew = starts.iter().max().unwrap() - starts.iter().min().unwrap();
    assert!(skew < 1000, "parts started {skew} ms apart");

    let (out, merged) = merge(
        &d,
        &files,
        &[
            "--report",
            d.join("report.html").to_str().unwrap(),
            "--junit",
            d.join("junit.xml").to_str().unwrap(),
        ],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    let m = merged.unwrap();

    // Counts: what the server saw, and rate x duration.
    let reqs = value(&m, "http_reqs", "count");
    assert_eq!(reqs as u64, t.total());
    assert!((reqs - 1500.0).abs() <= 15.0, "{reqs}");
    // The first arrival is due at once: a pre-allocated VU must take it.
    assert_eq!(value(&m, "dropped_iterations", "count"), 0.0);
    assert_eq!(value(&m, "iterations", "count"), reqs);
    let part_sum: f64 = summaries
        .iter()
        .map(|s| value(s, "http_reqs", "count"))
        .sum();
    assert_eq!(reqs, part_sum);
    assert!(
        m["metrics"]["iterations"]["thresholds"]["count>=1400"]["ok"]
            .as_bool()
            .unwrap()
    );

    // Percentiles: those of one histogram of all samples, not an average.
    let all = histogram_of(&summaries.iter().collect::<Vec<_>>(), "http_req_duration");
    assert_eq!(all.len() as f64, value(&m, "http_req_duration", "count"));
    for (key, q) in [("med", 0.5), ("p(95)", 0.95), ("p(99)", 0.99)] {
        let want = all.value_at_quantile(q) as f64 / 1000.0;
        assert_eq!(value(&m, "http_req_duration", key), want, "{key}");
    }
    let merged_h = histogram_of(&[&m], "http_req_duration");
    assert_eq!(merged_h, all);

    // Rates per second over the union of the parts' windows.
    let dur = m["volley"]["duration_s"].as_f64().unwrap();
    let longest = summaries
        .iter()
        .map(|s| s["volley"]["duration_s"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert!(dur >= longest - 0.001 && dur <= longest + skew as f64 / 1000.0 + 0.001);
    let rate = value(&m, "http_reqs", "rate");
    assert!((rate - reqs / dur).abs() < 1e-6, "{rate}");

    // The per-second series add up to the totals, second by second.
    let ids: Vec<usize> = m["interval_series"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .filter(|(_, s)| s[0] == "http_reqs")
        .map(|(i, _)| i)
        .collect();
    let per_second: u64 = m["intervals"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|iv| iv["points"].as_array().unwrap())
        .filter(|p| ids.contains(&(p[0].as_u64().unwrap() as usize)))
        .map(|p| p[1]["count"].as_u64().unwrap())
        .sum();
    assert_eq!(per_second as f64, reqs);
    assert_eq!(
        m["volley"]["merge"]["segments"],
        serde_json::json!([1, 2, 3])
    );
    assert_eq!(m["volley"]["segment"], "1/1");
    assert!(
        std::fs::read_to_string(d.join("report.html"))
            .unwrap()
            .contains("Merged from")
    );
    assert!(
        std::fs::read_to_string(d.join("junit.xml"))
            .unwrap()
            .contains("count&gt;=1400")
    );

    // Refusals: exit 2 with the reason.
    let (out, _) = merge(&d, &[files[0], files[0], files[1], files[2]], &[]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(
        text(&out).contains("segment 1/3 appears twice"),
        "{}",
        text(&out)
    );

    let (out, _) = merge(&d, &[files[0], files[2]], &[]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(text(&out).contains("segment 2/3 missing"), "{}", text(&out));
    assert!(text(&out).contains("--allow-partial"), "{}", text(&out));

    let other = d.write(
        "other.toml",
        &format!(
            "[defaults]\nbase_url = \"{}\"\n[scenarios.x]\ndriver = \"http\"\nexecutor = \"shared-iterations\"\nvus = 1\niterations = 1\n[[scenarios.x.requests]]\nurl = \"/api/v1/health\"\n",
            t.url()
        ),
    );
    let foreign = d.join("foreign.json");
    let out = volley()
        .arg("run")
        .arg(&other)
        .args(["--quiet", "--segment", "2/3", "--summary-export"])
        .arg(&foreign)
        .output_within(RUN_LIMIT);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let (out, _) = merge(&d, &[files[0], &foreign, files[2]], &[]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(text(&out).contains("another plan"), "{}", text(&out));

    // Partial, on purpose: judged on what is there, and says what is missing.
    let (out, partial) = merge(&d, &[files[0], files[2]], &["--allow-partial"]);
    assert_eq!(code(&out), 99, "{}", text(&out));
    assert!(text(&out).contains("segment 2/3 missing"), "{}", text(&out));
    let partial = partial.unwrap();
    assert_eq!(
        partial["volley"]["merge"]["missing"],
        serde_json::json!([2])
    );
    assert_eq!(partial["volley"]["segment"], "1,3/3");
    let partial_file = d.join("partial.json");
    std::fs::write(&partial_file, partial.to_string()).unwrap();
    // ... and the missing part can be merged in later, with the same result.
    let (out, again) = merge(&d, &[&partial_file, files[1]], &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let again = again.unwrap();
    for (metric, key) in [
        ("http_reqs", "count"),
        ("http_req_duration", "p(99)"),
        ("http_req_duration", "avg"),
    ] {
        assert_eq!(
            value(&again, metric, key),
            value(&m, metric, key),
            "{metric}"
        );
    }
}

/// The number of VUs of a ramping-vus scenario running at `t`, counting only
/// indices `i` with `keep(i)`; None when a VU starts or stops within `margin`.
fn running_at(
    start_vus: u64,
    stages: &[volley_model::schedule::Stage],
    max: u64,
    t: Duration,
    margin: Duration,
    keep: impl Fn(u64) -> bool,
) -> Option<u64> {
    let mut n = 0;
    for i in 0..max {
        for (a, b) in vu_intervals(start_vus, stages, i) {
            if a.abs_diff(t) < margin || b.abs_diff(t) < margin {
                return None;
            }
            if a <= t && t < b && keep(i) {
                n += 1;
            }
        }
    }
    Some(n)
}

/// `vus` gauge (no tags) per interval of a summary: (t, value).
fn vus_points(s: &serde_json::Value) -> Vec<(u64, f64)> {
    let id = s["interval_series"]
        .as_array()
        .unwrap()
        .iter()
        .position(|x| x[0] == "vus" && x[1].as_object().is_none_or(|o| o.is_empty()))
        .expect("vus series");
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
            Some((iv["t"].as_u64().unwrap(), p[1]["value"].as_f64().unwrap()))
        })
        .collect()
}

#[test]
fn ramping_vus_split_in_three_sum_to_the_plan_at_every_moment() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    // Short ramps between plateaus; the flush moments (whole seconds) fall
    // on plateaus and in the middle of a ramp.
    let plan = d.write(
        "plan.toml",
        &format!(
            r#"
[defaults]
base_url = "{}"

[scenarios.ramp]
driver = "http"
executor = "ramping-vus"
think_time = "100ms"
stages = [
  {{ duration = "250ms", target = 0 }},
  {{ duration = "500ms", target = 6 }},
  {{ duration = "1s", target = 6 }},
  {{ duration = "500ms", target = 15 }},
  {{ duration = "1s", target = 15 }},
  {{ duration = "500ms", target = 4 }},
  {{ duration = "1s", target = 4 }},
  {{ duration = "500ms", target = 0 }},
]

[[scenarios.ramp.requests]]
url = "/api/v1/health"

[thresholds]
# Only the three parts together reach 15 VUs.
vus = ["max>=15"]
"#,
            t.url()
        ),
    );
    let loaded = volley_config::plan::load(
        &plan,
        &volley_config::plan::LoadOptions {
            env: Default::default(),
            segment: Default::default(),
            ..Default::default()
        },
    )
    .unwrap();
    let Executor::RampingVus {
        start_vus,
        ref stages,
        ..
    } = loaded.scenarios[0].exec
    else {
        panic!("ramping-vus")
    };
    let max = loaded.scenarios[0].exec.max_vus();

    // Parts do not judge thresholds: the merge does.
    let parts = run_parts(&d, &plan, 3, &["--no-thresholds"]);
    for (out, _) in &parts {
        assert_eq!(code(out), 0, "{}", text(out));
        assert!(text(out).contains("thresholds not judged"), "{}", text(out));
    }
    let page = d.join("part.html");
    let out = volley()
        .arg("report")
        .arg(&parts[0].1)
        .arg("--out")
        .arg(&page)
        .output_within(RUN_LIMIT);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        std::fs::read_to_string(&page)
            .unwrap()
            .contains("NOT JUDGED")
    );
    let summaries: Vec<serde_json::Value> = parts.iter().map(|(_, p)| read(p)).collect();
    for s in &summaries {
        assert!(
            s["metrics"]["vus"]["thresholds"]
                .as_object()
                .is_none_or(|o| o.is_empty())
        );
    }
    let files: Vec<&Path> = parts.iter().map(|(_, p)| p.as_path()).collect();
    let (out, merged) = merge(&d, &files, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let m = merged.unwrap();
    assert!(
        m["metrics"]["vus"]["thresholds"]["max>=15"]["ok"]
            .as_bool()
            .unwrap()
    );
    assert_eq!(value(&m, "vus", "max"), 15.0);

    // Interval k's gauge is sampled at k+1 seconds from the start. The last
    // interval of a run is sampled at its end: skipped.
    let margin = Duration::from_millis(150);
    let total = loaded.scenarios[0].exec.duration();
    let mut checked = 0;
    let merged_vus = vus_points(&m);
    for (k, v) in &merged_vus {
        let at = Duration::from_secs(k + 1);
        if at >= total {
            continue;
        }
        let Some(want) = running_at(start_vus, stages, max, at, margin, |_| true) else {
            continue;
        };
        assert_eq!(*v, want as f64, "merged VUs at {at:?}");
        checked += 1;
        // Each part runs its interleaved share: VU i belongs to segment i % 3.
        for (seg, s) in summaries.iter().enumerate() {
            let share =
                running_at(start_vus, stages, max, at, margin, |i| i % 3 == seg as u64).unwrap();
            let got = vus_points(s)
                .into_iter()
                .find(|(t, _)| t == k)
                .map(|(_, v)| v);
            assert_eq!(got, Some(share as f64), "segment {} at {at:?}", seg + 1);
        }
    }
    assert!(
        checked >= 3,
        "only {checked} moments checked: {merged_vus:?}"
    );
}

#[test]
fn shared_iterations_and_csv_rows_are_partitioned() {
    // A recording server: every request path, and which segment sent it.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let rec = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { break };
            let rec = rec.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split(' ').nth(1).unwrap_or("").to_string();
                    // Headers up to the blank line; these requests have no body.
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        if h == "\r\n" {
                            break;
                        }
                    }
                    rec.lock().unwrap().push(path);
                    if conn
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    let d = Dir::new();
    let users: String = (0..6).map(|i| format!("u{i}@x\n")).collect();
    d.write("users.csv", &format!("email\n{users}"));
    let items: String = (0..12).map(|i| format!("i{i}\n")).collect();
    d.write("items.csv", &format!("item\n{items}"));
    let plan = d.write(
        "plan.toml",
        &format!(
            r#"
[defaults]
base_url = "{base}"

[data.users]
file = "users.csv"
pick = "unique"

[data.items]
file = "items.csv"
pick = "round-robin"

[scenarios.per_user]
driver = "http"
executor = "per-vu-iterations"
vus = 6
iterations = 2

[[scenarios.per_user.requests]]
url = "/user/${{SEG}}/{{{{ data.users.email }}}}"

[scenarios.items]
driver = "http"
executor = "shared-iterations"
vus = 4
iterations = 12

[[scenarios.items.requests]]
url = "/item/${{SEG}}/{{{{ data.items.item }}}}"
"#
        ),
    );
    let out = volley()
        .args(["validate"])
        .arg(&plan)
        .args(["--segment", "1/3", "-e", "SEG=1"])
        .output_within(RUN_LIMIT);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(text(&out).contains("4 of 12 iterations"), "{}", text(&out));
    assert!(text(&out).contains("share: 2 of 6 VUs"), "{}", text(&out));

    let children: Vec<_> = (1..=3)
        .map(|i| {
            volley()
                .arg("run")
                .arg(&plan)
                .args(["--quiet", "--workers", "2", "--segment"])
                .arg(format!("{i}/3"))
                .args(["-e", &format!("SEG={i}")])
                .output_within(RUN_LIMIT)
        })
        .collect();
    for out in &children {
        assert_eq!(code(out), 0, "{}", text(out));
    }
    let seen = seen.lock().unwrap().clone();
    // Shared iterations: 12 in all, each item once (interleaved by segment).
    let mut items: Vec<&str> = seen
        .iter()
        .filter_map(|p| p.strip_prefix("/item/"))
        .collect();
    items.sort();
    let mut want: Vec<String> = (1..=3)
        .flat_map(|seg| {
            (0..12)
                .filter(move |i| i % 3 == seg - 1)
                .map(move |i| format!("{seg}/i{i}"))
        })
        .collect();
    want.sort();
    assert_eq!(items, want);
    // Unique rows: every user row used by exactly one VU (two iterations),
    // so by exactly one segment.
    let users: Vec<&str> = seen
        .iter()
        .filter_map(|p| p.strip_prefix("/user/"))
        .collect();
    assert_eq!(users.len(), 12);
    for u in 0..6 {
        let by: Vec<&&str> = users
            .iter()
            .filter(|p| p.ends_with(&format!("/u{u}@x")))
            .collect();
        assert_eq!(by.len(), 2, "{users:?}");
        assert_eq!(by[0], by[1], "{users:?}");
    }
}
