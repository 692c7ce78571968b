//! Memory bounded by design: a run's per-series history coarsens to stay
//! under its budget and distinct series stop at a cap, while every count
//! still equals what the server saw. Also: summaries written before bucket
//! widths existed still report and merge.

mod common;

use common::*;
use serde_json::Value;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Output;
use volley_serve::ServeOptions;

/// No run here takes a minute; one that does is stuck.
const LIMIT_S: u64 = 90;

/// `volley ARGS` with `env`; killed, and the test failed, past [`LIMIT_S`].
fn volley_within(args: &[&OsStr], env: &[(&str, &str)]) -> Output {
    output_within(volley().args(args).envs(env.iter().copied()), LIMIT_S)
}

/// `volley run PLAN --quiet --summary-export DIR/NAME [args]` with `env`.
fn run(dir: &Dir, plan: &Path, name: &str, args: &[&str], env: &[(&str, &str)]) -> (Output, Value) {
    let export = dir.join(name);
    let mut all: Vec<&OsStr> = vec!["run".as_ref(), plan.as_os_str(), "--quiet".as_ref()];
    all.extend(["--summary-export".as_ref(), export.as_os_str()]);
    all.extend(args.iter().map(|a| OsStr::new(*a)));
    let out = volley_within(&all, env);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let summary = serde_json::from_slice(&std::fs::read(&export).unwrap()).unwrap();
    (out, summary)
}

/// One iteration requests `names` different products (one request name
/// each): seven series per name.
fn many_names(dir: &Dir, base: &str, names: usize, rate: u32, duration: &str) -> PathBuf {
    let mut plan = format!(
        r#"
[scenarios.api]
driver = "http"
executor = "constant-arrival-rate"
rate = {rate}
duration = "{duration}"
pre_allocated_vus = 20
max_vus = 40
graceful_stop = "10s"
base_url = "{base}"
"#
    );
    for i in 1..=names {
        plan.push_str(&format!(
            "\n[[scenarios.api.requests]]\nurl = \"/api/products/{i}\"\n"
        ));
    }
    dir.write("many.toml", &plan)
}

/// (series index -> (metric, tags)) of a summary's `interval_series` or
/// `rollup_series`.
fn names(s: &Value, key: &str) -> Vec<(String, Value)> {
    s[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n[0].as_str().unwrap().to_string(), n[1].clone()))
        .collect()
}

/// The `count` of `metric`'s points in `records`, over the series `keep` picks.
fn counted(s: &Value, names_key: &str, records: &str, keep: impl Fn(&str, &Value) -> bool) -> u64 {
    let names = names(s, names_key);
    s[records]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|iv| iv["points"].as_array().unwrap())
        .filter(|p| {
            let (m, tags) = &names[p[0].as_u64().unwrap() as usize];
            keep(m, tags)
        })
        .map(|p| p[1]["count"].as_u64().unwrap())
        .sum()
}

#[test]
fn many_series_keep_a_bounded_history_with_exact_counts() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let plan = many_names(&d, &t.url(), 100, 4, "6s");
    let report = d.join("report.html");
    // 100 names, ~700 series a second, against a budget of 1,000 points.
    let (_, s) = run(
        &d,
        &plan,
        "summary.json",
        &["--report", report.to_str().unwrap()],
        &[("VOLLEY_HISTORY_POINTS", "1000")],
    );
    let served = t.total();
    assert!(served >= 2000, "{served}");
    assert_eq!(value(&s, "http_reqs", "count") as u64, served);

    // The per-series history coarsened to a few buckets of several seconds.
    let buckets = s["intervals"].as_array().unwrap();
    assert!(buckets.len() <= 4, "{} buckets", buckets.len());
    let width = s["interval_s"].as_u64().unwrap();
    assert!(width >= 2, "interval_s {width}");
    assert!(
        buckets
            .iter()
            .all(|b| b["t"].as_u64().unwrap() % width == 0)
    );
    let points: usize = buckets
        .iter()
        .map(|b| b["points"].as_array().unwrap().len())
        .sum();
    assert!(points <= 4 * names(&s, "interval_series").len());

    // Its counts are still every request, per name too.
    let reqs = counted(&s, "interval_series", "intervals", |m, _| m == "http_reqs");
    assert_eq!(reqs, served);
    let name = "/api/products/7";
    let of_name = counted(&s, "interval_series", "intervals", |m, tags| {
        m == "http_reqs" && tags["name"] == name
    });
    assert_eq!(of_name, counter(&s, "http_reqs", &[("name", name)]));
    assert!(of_name > 0);

    // The scenario's rollups stay per second, with the same total.
    assert_eq!(s["rollup_s"], 1);
    let seconds = s["rollup_intervals"].as_array().unwrap().len();
    assert!(seconds >= 6, "{seconds} rollup seconds");
    let rolled = counted(&s, "rollup_series", "rollup_intervals", |m, tags| {
        m == "http_reqs" && tags["scenario"] == "api"
    });
    assert_eq!(rolled, served);

    // The report draws throughput per second from the rollups.
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("id=\"chart-api-throughput\""));
    assert!(html.contains("id=\"chart-api-latency-http_req_duration\""));
}

#[test]
fn past_the_series_cap_new_names_count_under_other() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let plan = many_names(&d, &t.url(), 100, 4, "3s");
    let (out, s) = run(
        &d,
        &plan,
        "summary.json",
        &[],
        &[("VOLLEY_MAX_SERIES", "300")],
    );
    let served = t.total();
    assert!(served >= 1000, "{served}");

    // Distinct series stop near the cap...
    let series = s["series"].as_array().unwrap().len();
    assert!(series <= 320, "{series} series");
    // ...the overflow is one `name:other` series per metric and status...
    let other = series_of(&s, "http_reqs", "other");
    assert_eq!(other.len(), 1, "{other:?}");
    assert_eq!(other[0]["tags"]["status"], "200");
    // ...and every request still counts.
    assert_eq!(counter(&s, "http_reqs", &[]), served);
    assert_eq!(value(&s, "http_reqs", "count") as u64, served);
    let hist = value(&s, "http_req_duration", "count") as u64;
    assert_eq!(hist, served);

    // A warning names the tag, the values it took and what to do.
    let said = text(&out);
    assert!(said.contains("more than 300 series"), "{said}");
    assert!(said.contains("tag `name`"), "{said}");
    assert!(said.contains("\"/api/products/1\""), "{said}");
    assert!(said.contains("--max-series"), "{said}");
    let folded = &s["volley"]["folded"][0];
    assert_eq!(folded["tag"], "name");
    assert!(
        folded["metrics"]
            .as_array()
            .unwrap()
            .contains(&"http_reqs".into())
    );
}

fn series_of<'a>(s: &'a Value, metric: &str, name: &str) -> Vec<&'a Value> {
    series(s, metric, &[("name", name)])
}

#[test]
fn parts_with_different_bucket_widths_merge_with_exact_counts() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let plan = many_names(&d, &t.url(), 100, 4, "5s");
    let (_, coarse) = run(
        &d,
        &plan,
        "part-1.json",
        &["--segment", "1/2"],
        &[("VOLLEY_HISTORY_POINTS", "1000")],
    );
    let (_, fine) = run(&d, &plan, "part-2.json", &["--segment", "2/2"], &[]);
    assert!(coarse["interval_s"].as_u64().unwrap() >= 2);
    assert_eq!(fine["interval_s"], 1);
    let merged = d.join("merged.json");
    let out = volley_within(
        &[
            "merge".as_ref(),
            d.join("part-1.json").as_os_str(),
            d.join("part-2.json").as_os_str(),
            "--summary-export".as_ref(),
            merged.as_os_str(),
        ],
        &[],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    let m: Value = serde_json::from_slice(&std::fs::read(&merged).unwrap()).unwrap();
    let served = t.total();
    assert_eq!(m["interval_s"], coarse["interval_s"]);
    assert_eq!(value(&m, "http_reqs", "count") as u64, served);
    let reqs = counted(&m, "interval_series", "intervals", |m, _| m == "http_reqs");
    assert_eq!(reqs, served);
    let rolled = counted(&m, "rollup_series", "rollup_intervals", |m, _| {
        m == "http_reqs"
    });
    assert_eq!(rolled, served);
}

/// A summary as volley wrote it before bucket widths: no `interval_s`,
/// `rollup_s` or `rollup_intervals`; rollups of trends only, inside each
/// interval.
fn older_form(s: &Value) -> Value {
    let mut old = s.clone();
    let rollup_names = names(s, "rollup_series");
    let trend = |m: &str| s["metrics"][m]["type"] == "trend";
    // Old index of each kept rollup -> its new index.
    let kept: Vec<usize> = (0..rollup_names.len())
        .filter(|i| trend(&rollup_names[*i].0))
        .collect();
    let renumber = |i: u64| kept.iter().position(|k| *k as u64 == i);
    let rollups: Vec<(u64, Vec<Value>)> = s["rollup_intervals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let pts = r["points"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|p| Some(serde_json::json!([renumber(p[0].as_u64()?)?, p[1]])))
                .collect();
            (r["t"].as_u64().unwrap(), pts)
        })
        .collect();
    let o = old.as_object_mut().unwrap();
    for k in ["interval_s", "rollup_s", "rollup_intervals"] {
        assert!(o.remove(k).is_some(), "{k}");
    }
    o["rollup_series"] = kept
        .iter()
        .map(|i| s["rollup_series"][*i].clone())
        .collect::<Vec<_>>()
        .into();
    for iv in o["intervals"].as_array_mut().unwrap() {
        let t = iv["t"].as_u64().unwrap();
        if let Some((_, pts)) = rollups.iter().find(|(rt, _)| *rt == t) {
            iv["rollups"] = pts.clone().into();
        }
    }
    old
}

#[test]
fn summaries_from_before_bucket_widths_still_report_and_merge() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let plan = many_names(&d, &t.url(), 3, 20, "2s");
    let (_, s) = run(&d, &plan, "new.json", &[], &[]);
    let old = older_form(&s);
    let old_file = d.write("old.json", &old.to_string());

    let report = d.join("old.html");
    let out = volley_within(
        &[
            "report".as_ref(),
            old_file.as_os_str(),
            "--out".as_ref(),
            report.as_os_str(),
        ],
        &[],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("id=\"chart-api-latency-http_req_duration\""));
    // Its per-second percentiles were found (no upper-bound note).
    assert!(
        !html.contains("no per-scenario percentiles"),
        "rollups read"
    );

    let merged = d.join("merged.json");
    let out = volley_within(
        &[
            "merge".as_ref(),
            old_file.as_os_str(),
            "--summary-export".as_ref(),
            merged.as_os_str(),
        ],
        &[],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    let m: Value = serde_json::from_slice(&std::fs::read(&merged).unwrap()).unwrap();
    assert_eq!(m["interval_s"], 1);
    assert_eq!(
        m["rollup_intervals"].as_array().unwrap().len(),
        s["rollup_intervals"].as_array().unwrap().len()
    );
    let served = t.total();
    let rolled = counted(&m, "rollup_series", "rollup_intervals", |m, _| {
        m == "http_req_duration"
    });
    assert_eq!(rolled, served);

    // A bucket width of 0 is refused, naming the field.
    let mut bad = s.clone();
    bad["interval_s"] = 0.into();
    let bad_file = d.write("bad.json", &bad.to_string());
    let out = volley_within(
        &[
            "report".as_ref(),
            bad_file.as_os_str(),
            "--out".as_ref(),
            report.as_os_str(),
        ],
        &[],
    );
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(text(&out).contains("interval_s"), "{}", text(&out));
}
