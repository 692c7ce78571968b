//! Reports and outputs end to end: the `volley` binary against the embedded
//! target. Time-series lines and Prometheus scrapes must add up to the
//! summary; compare, JUnit and the HTML report are judged on real summaries.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use volley_protocols::duration::DurRange;
use volley_protocols::metrics::{decode_histogram, encode_histogram, new_histogram};
use volley_serve::ServeOptions;

fn plan(dir: &Dir, body: &str, base: &str) -> PathBuf {
    dir.write(
        "plan.toml",
        &format!("[defaults]\nbase_url = \"{base}\"\n\n{body}"),
    )
}

/// Two named requests at a fixed arrival rate, a few seconds long.
const MIX: &str = r#"
[scenarios.api]
driver = "http"
executor = "constant-arrival-rate"
rate = 60
time_unit = "1s"
duration = "3s"
pre_allocated_vus = 10
flow = "sequence"

[[scenarios.api.requests]]
name = "products"
url = "/api/products"
checks = { status = 200 }

[[scenarios.api.requests]]
name = "missing"
url = "/api/nope"
checks = { status = 404 }
"#;

/// Series key: metric plus its tags, as `metric{k:v,...}`.
fn key(metric: &str, tags: &Value) -> String {
    let tags: BTreeMap<String, String> = tags
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let parts: Vec<String> = tags.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    format!("{metric}{{{}}}", parts.join(","))
}

/// (count, total) per series from the summary's raw series: counters
/// count, rates (hits, total), trends their sample count.
fn summary_totals(s: &Value) -> BTreeMap<String, (u64, u64)> {
    let mut out = BTreeMap::new();
    for r in s["series"].as_array().unwrap() {
        let k = key(r["metric"].as_str().unwrap(), &r["tags"]);
        let v = match r["type"].as_str().unwrap() {
            "counter" => (r["count"].as_u64().unwrap(), 0),
            "rate" => (r["hits"].as_u64().unwrap(), r["total"].as_u64().unwrap()),
            "trend" => (
                decode_histogram(r["histogram"].as_str().unwrap())
                    .unwrap()
                    .len(),
                0,
            ),
            _ => continue,
        };
        out.insert(k, v);
    }
    out
}

#[test]
fn json_and_csv_lines_add_up_to_the_summary() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let p = plan(&d, MIX, &t.url());
    let (json, csv) = (d.join("out.jsonl"), d.join("out.csv"));
    let (out, s) = run_plan(
        &d,
        &p,
        &[
            "--out",
            &format!("json={}", json.display()),
            "--out",
            &format!("csv={}", csv.display()),
        ],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.unwrap();
    let want = summary_totals(&s);
    assert_eq!(value(&s, "http_reqs", "count") as u64, t.total());

    // JSON lines: one object per interval, metric and tag set.
    let mut got: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut seconds = std::collections::BTreeSet::new();
    let mut keys_per_second = std::collections::BTreeSet::new();
    for line in std::fs::read_to_string(&json).unwrap().lines() {
        let l: Value = serde_json::from_str(line).expect("every line is a JSON object");
        let k = key(l["metric"].as_str().unwrap(), &l["tags"]);
        assert!(
            keys_per_second.insert((l["t"].as_u64().unwrap(), k.clone())),
            "one line per interval and series: {line}"
        );
        seconds.insert(l["t"].as_u64().unwrap());
        assert!(l["time"].as_str().unwrap().ends_with('Z'), "{line}");
        match l["type"].as_str().unwrap() {
            "counter" | "trend" => got.entry(k).or_default().0 += l["count"].as_u64().unwrap(),
            "rate" => {
                let e = got.entry(k).or_default();
                e.0 += l["count"].as_u64().unwrap();
                e.1 += l["total"].as_u64().unwrap();
            }
            _ => {}
        }
        if l["metric"] == "http_req_duration" {
            let (p50, p99) = (l["p50"].as_f64().unwrap(), l["p99"].as_f64().unwrap());
            assert!(p50 > 0.0 && p50 <= p99, "time in ms, ordered: {line}");
        }
    }
    assert!(seconds.len() >= 3, "intervals streamed: {seconds:?}");
    let want_no_gauges: BTreeMap<_, _> = want
        .iter()
        .filter(|(k, _)| !k.starts_with("vus"))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    assert_eq!(got, want_no_gauges, "JSON lines add up to the summary");
    assert!(got.keys().any(|k| k.starts_with("http_reqs{")));

    // CSV: the same records.
    let mut r = csv::Reader::from_path(&csv).unwrap();
    let headers = r.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let mut got_csv: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for rec in r.records() {
        let rec = rec.unwrap();
        let tags: serde_json::Map<String, Value> = rec[col("tags")]
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap();
                (
                    k.to_string(),
                    Value::String(
                        v.replace("%3D", "=")
                            .replace("%26", "&")
                            .replace("%25", "%"),
                    ),
                )
            })
            .collect();
        let k = key(&rec[col("metric")], &Value::Object(tags));
        let n = |c: &str| rec[col(c)].parse::<u64>().unwrap_or(0);
        match &rec[col("type")] {
            "counter" | "trend" => got_csv.entry(k).or_default().0 += n("count"),
            "rate" => {
                let e = got_csv.entry(k).or_default();
                e.0 += n("count");
                e.1 += n("total");
            }
            _ => {}
        }
    }
    assert_eq!(got_csv, want_no_gauges, "CSV rows add up to the summary");
}

/// `name{labels} value` lines of an exposition, summed per name over the
/// series whose labels contain every `k="v"` of `filter`.
fn scraped(text: &str, name: &str, filter: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, v) = l.rsplit_once(' ')?;
            let (n, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest),
                None => (series, ""),
            };
            (n == name
                && filter
                    .iter()
                    .all(|(k, v)| labels.contains(&format!("{k}=\"{v}\""))))
            .then(|| v.parse::<f64>().ok())?
        })
        .sum()
}

fn scrape(addr: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let (head, body) = buf.split_once("\r\n\r\n")?;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_lowercase().contains("application/openmetrics-text"));
    Some(body.to_string())
}

#[test]
fn prometheus_scrapes_during_the_run_end_at_the_summary_totals() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let p = plan(&d, MIX, &t.url());
    let export = d.join("summary.json");
    let mut child = volley()
        .arg("run")
        .arg(&p)
        .args(["--quiet", "--summary-export"])
        .arg(&export)
        .args(["--out", "prometheus=127.0.0.1:0,linger=30s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let watchdog = KillAfter::new(child.id(), RUN_LIMIT);
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "no address printed");
        if let Some(rest) = line.trim().strip_prefix("prometheus: serving http://") {
            break rest.trim_end_matches("/metrics").to_string();
        }
    };
    let drain = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = err.read_to_string(&mut rest);
        rest
    });
    let started = Instant::now();
    let mut during: Vec<f64> = Vec::new();
    let last = loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "run never ended"
        );
        if let Some(body) = scrape(&addr) {
            assert!(body.ends_with("# EOF\n"), "complete exposition");
            if scraped(&body, "volley_running", &[]) == 0.0 {
                break body;
            }
            during.push(scraped(&body, "volley_http_reqs_total", &[]));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = child.wait_with_output().unwrap();
    assert!(!watchdog.fired(), "volley run did not exit and was killed");
    let stderr = drain.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let s: Value = serde_json::from_slice(&std::fs::read(&export).unwrap()).unwrap();

    // Live: counters grew while the run went.
    assert!(
        during.iter().any(|n| *n > 0.0),
        "a scrape during the run saw requests: {during:?}"
    );
    let total = value(&s, "http_reqs", "count");
    assert!(during.iter().all(|n| *n <= total), "{during:?} <= {total}");
    assert!(
        during.iter().any(|n| *n < total),
        "some scrape came before the end: {during:?}"
    );
    // At the end: exactly the summary's totals.
    assert_eq!(scraped(&last, "volley_http_reqs_total", &[]), total);
    for name in ["products", "missing"] {
        assert_eq!(
            scraped(&last, "volley_http_reqs_total", &[("name", name)]),
            counter(&s, "http_reqs", &[("name", name)]) as f64,
            "{name}"
        );
    }
    assert_eq!(
        scraped(&last, "volley_http_req_duration_seconds_count", &[]),
        value(&s, "http_req_duration", "count")
    );
    let buckets_inf = scraped(
        &last,
        "volley_http_req_duration_seconds_bucket",
        &[("le", "+Inf")],
    );
    assert_eq!(buckets_inf, value(&s, "http_req_duration", "count"));
    assert_eq!(
        scraped(&last, "volley_checks_total", &[]),
        value(&s, "checks", "passes")
    );
    assert_eq!(
        scraped(&last, "volley_http_req_failed_observations_total", &[]),
        value(&s, "http_req_failed", "passes") + value(&s, "http_req_failed", "fails")
    );
    assert_eq!(
        scraped(&last, "volley_data_received_bytes_total", &[]),
        value(&s, "data_received", "count")
    );
    assert_eq!(
        scraped(&last, "volley_iterations_total", &[]),
        value(&s, "iterations", "count")
    );
}

#[test]
fn a_busy_prometheus_port_is_refused_before_the_run() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap();
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let p = plan(&d, MIX, &t.url());
    let (out, s) = run_plan(&d, &p, &["--out", &format!("prometheus={addr}")]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(text(&out).contains("cannot listen"), "{}", text(&out));
    assert!(s.is_none());
    assert_eq!(t.total(), 0, "no load was sent");
    let (out, _) = run_plan(&d, &p, &["--out", "xml=out.xml"]);
    assert_eq!(code(&out), 2);
    assert!(text(&out).contains("unknown output"), "{}", text(&out));
    let (out, _) = run_plan(&d, &p, &["--report", "/nonexistent-dir/r.html"]);
    assert_eq!(code(&out), 2);
    assert!(text(&out).contains("does not exist"), "{}", text(&out));
    assert_eq!(t.total(), 0, "no load was sent");
}

// ---- compare ----

/// A copy of a summary with every trend of `metric` multiplied by `f`.
fn scale_trend(s: &Value, metric: &str, f: f64) -> Value {
    let mut s = s.clone();
    for r in s["series"].as_array_mut().unwrap() {
        if r["metric"] == metric {
            let h = decode_histogram(r["histogram"].as_str().unwrap()).unwrap();
            let mut scaled = new_histogram();
            for v in h.iter_recorded() {
                let x = (h.median_equivalent(v.value_iterated_to()) as f64 * f).round() as u64;
                scaled.record_n(x, v.count_at_value()).unwrap();
            }
            r["histogram"] = Value::String(encode_histogram(&scaled));
        }
    }
    s
}

fn scale_counter(s: &Value, metric: &str, f: f64) -> Value {
    let mut s = s.clone();
    for r in s["series"].as_array_mut().unwrap() {
        if r["metric"] == metric {
            let n = r["count"].as_u64().unwrap() as f64 * f;
            r["count"] = Value::from(n.round() as u64);
        }
    }
    s
}

fn write_json(dir: &Dir, name: &str, v: &Value) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_vec(v).unwrap()).unwrap();
    p
}

fn compare(a: &Path, b: &Path, args: &[&str]) -> std::process::Output {
    volley()
        .arg("compare")
        .arg(a)
        .arg(b)
        .args(args)
        .output_within(RUN_LIMIT)
}

#[test]
fn compare_fails_a_twenty_percent_regression_at_a_ten_percent_limit() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let p = plan(&d, MIX, &t.url());
    let (out, s) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let base_v = s.unwrap();
    let base = write_json(&d, "base.json", &base_v);

    // Same run: no change at all.
    let out = compare(&base, &base, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(text(&out).contains("+0.0%"), "{}", text(&out));

    // Latency 20% up: regressed beyond 10%, within 25%.
    let slow = write_json(
        &d,
        "slow.json",
        &scale_trend(&base_v, "http_req_duration", 1.2),
    );
    let out = compare(&base, &slow, &["--max-regression", "10%"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let t_out = text(&out);
    let row = t_out
        .lines()
        .find(|l| l.trim_start().starts_with("http_req_duration "))
        .unwrap_or_else(|| panic!("{t_out}"));
    assert!(row.contains("p(95)") && row.contains("regressed"), "{row}");
    let change: f64 = row
        .split_whitespace()
        .find(|w| w.ends_with('%') && w.starts_with('+'))
        .and_then(|w| w.trim_matches(['+', '%']).parse().ok())
        .unwrap();
    assert!((19.0..=21.0).contains(&change), "{row}");
    let out = compare(&base, &slow, &["--max-regression", "25%"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    // 5% up is within 10%.
    let bit = write_json(
        &d,
        "bit.json",
        &scale_trend(&base_v, "http_req_duration", 1.05),
    );
    let out = compare(&base, &bit, &["--max-regression", "10%"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    // Faster is never a regression.
    let fast = write_json(
        &d,
        "fast.json",
        &scale_trend(&base_v, "http_req_duration", 0.5),
    );
    assert_eq!(code(&compare(&base, &fast, &[])), 0);

    // Throughput 20% down regresses; 20% up does not.
    let fewer = write_json(&d, "fewer.json", &scale_counter(&base_v, "http_reqs", 0.8));
    let out = compare(&base, &fewer, &["--metric", "http_reqs:rate"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let more = write_json(&d, "more.json", &scale_counter(&base_v, "http_reqs", 1.2));
    assert_eq!(code(&compare(&base, &more, &["--metric", "http_reqs"])), 0);

    // A chosen statistic and tag set.
    let out = compare(
        &base,
        &slow,
        &[
            "--metric",
            "http_req_duration{name:products}:p(99)",
            "--metric",
            "http_reqs",
        ],
    );
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        text(&out).contains("http_req_duration{name:products}"),
        "{}",
        text(&out)
    );
    let out = compare(&base, &slow, &["--metric", "http_reqs", "--by", "name"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(text(&out).contains("name:missing"), "{}", text(&out));

    // Bad input: exit 2 with the reason.
    let out = compare(&base, &d.join("nope.json"), &[]);
    assert_eq!(code(&out), 2);
    assert!(text(&out).contains("cannot read"), "{}", text(&out));
    let out = compare(&base, &base, &["--metric", "no_such_metric"]);
    assert_eq!(code(&out), 2);
    assert!(text(&out).contains("no such metric"), "{}", text(&out));
    let out = compare(&base, &p, &[]);
    assert_eq!(code(&out), 2);
    assert!(
        text(&out).contains("not a volley summary"),
        "{}",
        text(&out)
    );
}

#[test]
fn compare_sees_injected_latency_between_two_real_runs() {
    let d = Dir::new();
    let mut summaries = Vec::new();
    for (i, lat) in ["2ms", "20ms"].into_iter().enumerate() {
        let t = Target::start(ServeOptions {
            latency: Some(DurRange::parse(lat).unwrap()),
            ..Default::default()
        });
        let p = plan(&d, MIX, &t.url());
        let (out, s) = run_plan(&d, &p, &[]);
        assert_eq!(code(&out), 0, "{}", text(&out));
        summaries.push(write_json(&d, &format!("run{i}.json"), &s.unwrap()));
    }
    let out = compare(
        &summaries[0],
        &summaries[1],
        &["--metric", "http_req_duration{name:products}:med"],
    );
    assert_eq!(code(&out), 1, "{}", text(&out));
    // The other way round it is an improvement.
    let out = compare(
        &summaries[1],
        &summaries[0],
        &["--metric", "http_req_duration{name:products}:med"],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
}

// ---- JUnit and the HTML report ----

const JUDGED: &str = r#"
[thresholds]
http_req_duration = ["p(95)<5000"]
"http_req_duration{scenario:api}" = ["p(99)<0.001"]
http_req_failed = ["rate<0.01"]
checks = ["rate>0.1"]
"#;

/// A run with 2 of 4 thresholds failing (an impossible latency bound and
/// errors the target injects), written with --report and --junit.
fn judged_run(d: &Dir) -> (PathBuf, PathBuf, Value) {
    let t = Target::start(ServeOptions {
        error_rate: 0.3,
        ..Default::default()
    });
    let p = plan(d, &format!("{MIX}{JUDGED}"), &t.url());
    let (html, xml) = (d.join("report.html"), d.join("junit.xml"));
    let (out, s) = run_plan(
        d,
        &p,
        &[
            "--report",
            html.to_str().unwrap(),
            "--junit",
            xml.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&out), 99, "{}", text(&out));
    (html, xml, s.unwrap())
}

fn check_junit(xml: &str) {
    let doc = roxmltree::Document::parse(xml).expect("JUnit output is XML");
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .expect("a testsuite");
    assert_eq!(suite.attribute("tests"), Some("4"));
    assert_eq!(suite.attribute("failures"), Some("2"));
    let cases: Vec<_> = suite
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), 4);
    let failed: Vec<(String, String)> = cases
        .iter()
        .filter(|c| c.children().any(|f| f.has_tag_name("failure")))
        .map(|c| {
            (
                c.attribute("classname").unwrap().to_string(),
                c.attribute("name").unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        failed,
        vec![
            (
                "http_req_duration{scenario:api}".to_string(),
                "p(99)<0.001".to_string()
            ),
            ("http_req_failed".to_string(), "rate<0.01".to_string()),
        ]
    );
    let failures = doc
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .count();
    assert_eq!(failures, 2, "one failure per failed threshold");
    let msg = doc
        .descendants()
        .find(|n| n.has_tag_name("failure"))
        .and_then(|n| n.attribute("message"))
        .unwrap();
    assert!(msg.contains("p(99)="), "{msg}");
}

/// `<figure class="chart" id="...">` ids, each holding one drawn SVG.
fn charts(html: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for part in html.split("<figure class=\"chart\" id=\"").skip(1) {
        let id = part.split('"').next().unwrap().to_string();
        let fig = part.split("</figure>").next().unwrap();
        assert_eq!(fig.matches("<svg").count(), 1, "one SVG in {id}");
        assert!(fig.contains("<polyline"), "{id} draws a line");
        ids.push(id);
    }
    ids
}

#[test]
fn junit_has_one_failure_per_failed_threshold_and_the_report_shows_the_run() {
    let d = Dir::new();
    let (html_path, xml, s) = judged_run(&d);
    check_junit(&std::fs::read_to_string(&xml).unwrap());

    let html = std::fs::read_to_string(&html_path).unwrap();
    // The verdict, and which thresholds failed.
    let verdict = html
        .split("<section id=\"verdict\"")
        .nth(1)
        .and_then(|v| v.split("</section>").next())
        .expect("a verdict section");
    assert!(verdict.contains("FAILED"), "{verdict}");
    assert!(verdict.contains("2 of 4 thresholds failed"), "{verdict}");
    assert!(verdict.contains("p(99)&lt;0.001") && verdict.contains("rate&lt;0.01"));
    assert!(
        !verdict.contains("p(95)&lt;5000"),
        "passed ones are not listed"
    );
    // One SVG per expected chart.
    let mut ids = charts(&html);
    ids.sort();
    assert_eq!(
        ids,
        [
            "chart-api-distribution",
            "chart-api-errors",
            "chart-api-http-status",
            "chart-api-latency-http_req_duration",
            "chart-api-throughput",
            "chart-api-vus",
        ]
    );
    assert!(html.contains("data-charts=\"6\""));
    // The tables: per request name, and the errors the target injected.
    assert!(html.contains("<td>products</td>") && html.contains("<td>missing</td>"));
    assert!(html.contains("status 500"), "error breakdown");
    let total = value(&s, "http_reqs", "count") as u64;
    assert!(
        html.contains(&format!("{total} (")),
        "HTTP requests in the facts"
    );
    // Self-contained: no script, nothing fetched.
    assert!(!html.contains("<script"));
    assert!(!html.contains("src="));
    assert!(!html.contains("href=\"http"));

    // Rendered again later from the summary alone: the same page.
    let summary = write_json(&d, "saved.json", &s);
    let again = d.join("again.html");
    let xml2 = d.join("again.xml");
    let out = volley()
        .args(["report"])
        .arg(&summary)
        .arg("--out")
        .arg(&again)
        .arg("--junit")
        .arg(&xml2)
        .output_within(RUN_LIMIT);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&again).unwrap(), html);
    check_junit(&std::fs::read_to_string(&xml2).unwrap());
    let out = volley()
        .args(["report"])
        .arg(d.join("missing.json"))
        .output_within(RUN_LIMIT);
    assert_eq!(code(&out), 2, "{}", text(&out));
}

#[test]
fn demo_writes_the_report_and_prints_its_path() {
    let d = Dir::new();
    let out = Command::new(env!("CARGO_BIN_EXE_volley"))
        .arg("demo")
        .arg("--quiet")
        .current_dir(&d.path)
        .output_within(RUN_LIMIT);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let report = d.join("volley-report.html");
    let html = std::fs::read_to_string(&report).expect("volley-report.html written");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let shown = std::fs::canonicalize(&report).unwrap();
    assert!(
        stdout.contains(&format!("report: {}", shown.display())),
        "{stdout}"
    );
    assert!(html.contains("PASSED"));
    // At least latency, throughput, errors and VUs for every scenario of the demo.
    let plan = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/plans/demo.toml"
    ))
    .unwrap();
    let scenarios = plan
        .lines()
        .filter(|l| l.starts_with("[scenarios."))
        .count();
    assert!(scenarios >= 2);
    assert!(
        charts(&html).len() >= 4 * scenarios,
        "{} charts for {scenarios} scenarios",
        charts(&html).len()
    );
}

// ---- Where outputs go: write through what is not a regular file ----

/// Three requests, over in milliseconds.
const QUICK: &str = r#"
[scenarios.api]
driver = "http"
executor = "shared-iterations"
vus = 1
iterations = 3

[[scenarios.api.requests]]
url = "/api/products"
"#;

/// Run `cmd` in `dir` to its end; kill it and fail after `limit` (a test
/// must never hang).
fn bounded(cmd: &mut Command, dir: &Dir, limit: Duration) -> std::process::Output {
    common::output_within(cmd.current_dir(&dir.path), limit.as_secs())
}

/// `volley run PLAN --quiet ARGS`, at most a minute.
fn quick_run(d: &Dir, plan: &Path, args: &[&OsStr]) -> std::process::Output {
    bounded(
        volley().arg("run").arg(plan).arg("--quiet").args(args),
        d,
        Duration::from_secs(60),
    )
}

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().unwrap().success();
    assert!(ok, "mkfifo {}", path.display());
}

/// Read a FIFO on a thread: the first `upto` bytes (all of it when None),
/// then close it. The receiver gets them, or nothing if no writer came.
fn read_fifo(path: &Path, upto: Option<usize>) -> std::sync::mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = std::sync::mpsc::channel();
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Ok(f) = std::fs::File::open(&path) {
            let _ = match upto {
                Some(n) => f.take(n as u64).read_to_end(&mut buf),
                None => {
                    let mut f = f;
                    f.read_to_end(&mut buf)
                }
            };
        }
        let _ = tx.send(buf);
    });
    rx
}

fn is_link_to(path: &Path, to: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
        && std::fs::read_link(path).is_ok_and(|t| t == to)
}

use std::ffi::OsStr;
use std::os::unix::fs::{FileTypeExt, symlink};

#[test]
fn artifacts_go_through_a_fifo_keep_a_symlink_and_dash_is_stdout() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let p = plan(&d, QUICK, &t.url());
    let fifo = d.join("summary.fifo");
    mkfifo(&fifo);
    let got = read_fifo(&fifo, None);
    let real = d.write("real.html", "old");
    let link = d.join("report.html");
    symlink(&real, &link).unwrap();
    let out = quick_run(
        &d,
        &p,
        &[
            "--summary-export".as_ref(),
            fifo.as_ref(),
            "--report".as_ref(),
            link.as_ref(),
            "--junit".as_ref(),
            "-".as_ref(),
        ],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    let summary = got
        .recv_timeout(Duration::from_secs(30))
        .expect("the reader thread ends");
    let s: Value = serde_json::from_slice(&summary).expect("the summary came through the FIFO");
    assert_eq!(value(&s, "http_reqs", "count") as u64, t.total());
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert!(is_link_to(&link, &real), "the symlink is kept");
    let html = std::fs::read_to_string(&real).unwrap();
    assert!(
        html.starts_with("<!doctype html>"),
        "its target holds the report"
    );
    // stdout holds the JUnit XML alone; the text summary went to stderr.
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let doc = roxmltree::Document::parse(&stdout).expect("stdout is the JUnit XML alone");
    assert!(doc.descendants().any(|n| n.has_tag_name("testsuite")));
    assert!(String::from_utf8_lossy(&out.stderr).contains("TOTAL RESULTS"));
    assert!(!d.join("-").exists());
}

#[test]
fn a_path_to_stdout_and_out_dash_stream_to_stdout_alone() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let p = plan(&d, QUICK, &t.url());
    // What /dev/stdout points to; a link of our own, so that a volley that
    // replaced it would replace only this link.
    let stdout = d.join("stdout");
    symlink("/proc/self/fd/1", &stdout).unwrap();
    let out = quick_run(&d, &p, &["--summary-export".as_ref(), stdout.as_ref()]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s: Value = serde_json::from_slice(&out.stdout).expect("stdout is the summary alone");
    assert_eq!(value(&s, "http_reqs", "count") as u64, t.total());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TOTAL RESULTS"));
    assert!(is_link_to(&stdout, Path::new("/proc/self/fd/1")));

    let before = t.total();
    let out = quick_run(&d, &p, &["--out".as_ref(), "json=-".as_ref()]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let lines = String::from_utf8(out.stdout.clone()).unwrap();
    let reqs: u64 = lines
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("every stdout line is a JSON record"))
        .filter(|l| l["metric"] == "http_reqs")
        .map(|l| l["count"].as_u64().unwrap())
        .sum();
    assert_eq!(reqs, t.total() - before);
    assert!(String::from_utf8_lossy(&out.stderr).contains("TOTAL RESULTS"));
    assert!(!d.join("-").exists());

    // Two outputs cannot share stdout.
    let before = t.total();
    let out = quick_run(
        &d,
        &p,
        &[
            "--report".as_ref(),
            "-".as_ref(),
            "--out".as_ref(),
            "csv=-".as_ref(),
        ],
    );
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(text(&out).contains("stdout"), "{}", text(&out));
    assert_eq!(t.total(), before, "nothing was sent");
}

#[test]
fn a_write_error_is_reported_after_the_summary_and_exits_1() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let p = plan(&d, QUICK, &t.url());
    // A link of our own to /dev/full, so that a volley that replaced it
    // would replace only this link, never the device.
    let full = d.join("full");
    symlink("/dev/full", &full).unwrap();
    let html = d.join("r.html");
    let out = quick_run(
        &d,
        &p,
        &[
            "--summary-export".as_ref(),
            full.as_ref(),
            "--report".as_ref(),
            html.as_ref(),
        ],
    );
    assert_eq!(code(&out), 1, "{}", text(&out));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        stdout.contains("TOTAL RESULTS"),
        "the summary first: {stdout}"
    );
    assert!(
        stderr.contains(&full.display().to_string()) && stderr.contains("No space left"),
        "{stderr}"
    );
    assert!(is_link_to(&full, Path::new("/dev/full")));
    assert!(
        std::fs::read_to_string(&html)
            .unwrap()
            .starts_with("<!doctype html>"),
        "the other files are still written"
    );

    // The time series lost at the first write.
    let out = quick_run(
        &d,
        &p,
        &[
            "--out".as_ref(),
            format!("json={}", full.display()).as_ref(),
        ],
    );
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("TOTAL RESULTS"));
    assert!(text(&out).contains("No space left"), "{}", text(&out));
    assert!(is_link_to(&full, Path::new("/dev/full")));

    // The CSV lost mid-run: its reader goes away after the header.
    let longer = plan(
        &d,
        &QUICK
            .replace(
                "executor = \"shared-iterations\"",
                "executor = \"constant-vus\"\nduration = \"3s\"",
            )
            .replace("iterations = 3\n", ""),
        &t.url(),
    );
    let fifo = d.join("series.fifo");
    mkfifo(&fifo);
    let header = read_fifo(&fifo, Some(5));
    let out = quick_run(
        &d,
        &longer,
        &["--out".as_ref(), format!("csv={}", fifo.display()).as_ref()],
    );
    assert_eq!(
        header.recv_timeout(Duration::from_secs(30)).unwrap(),
        b"t,tim"
    );
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("TOTAL RESULTS"));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&fifo.display().to_string()),
        "{}",
        text(&out)
    );
}

/// A 64 KiB tmpfs, unmounted on drop.
struct TinyDisk(PathBuf);

impl TinyDisk {
    /// None when this user may not mount (not root, or in a container that forbids it).
    fn mount(at: PathBuf) -> Option<Self> {
        std::fs::create_dir_all(&at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(&at)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Self(at))
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_leaves_no_temp_files() {
    let d = Dir::new();
    let Some(disk) = TinyDisk::mount(d.join("disk")) else {
        eprintln!(
            "skipped: cannot mount a tmpfs here (needs root); src/output/dest.rs tests the clean-up without one"
        );
        return;
    };
    let t = Target::start(ServeOptions::default());
    let p = plan(&d, QUICK, &t.url());
    // Leave one 4 KiB page: the JUnit XML fits, the summary and report do not.
    std::fs::write(disk.0.join("fill"), vec![0u8; 60 * 1024]).unwrap();
    let at = |n: &str| disk.0.join(n);
    let out = quick_run(
        &d,
        &p,
        &[
            "--summary-export".as_ref(),
            at("s.json").as_ref(),
            "--report".as_ref(),
            at("r.html").as_ref(),
            "--junit".as_ref(),
            at("j.xml").as_ref(),
        ],
    );
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(text(&out).contains("No space left"), "{}", text(&out));
    let mut left: Vec<String> = std::fs::read_dir(&disk.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["fill", "j.xml"], "no temp files left behind");
}

#[test]
fn report_of_a_damaged_histogram_is_bad_input() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let p = plan(&d, QUICK, &t.url());
    let export = d.join("s.json");
    let out = quick_run(&d, &p, &["--summary-export".as_ref(), export.as_ref()]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let mut s: Value = serde_json::from_slice(&std::fs::read(&export).unwrap()).unwrap();
    for r in s["series"].as_array_mut().unwrap() {
        if r["metric"] == "http_req_duration" {
            r["histogram"] = Value::String("HISTFAAAAdamaged".into());
        }
    }
    let damaged = write_json(&d, "damaged.json", &s);
    let html = d.join("r.html");
    let out = bounded(
        volley().arg("report").arg(&damaged).arg("--out").arg(&html),
        &d,
        Duration::from_secs(60),
    );
    assert_eq!(code(&out), 2, "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("damaged.json") && err.contains("http_req_duration"),
        "{err}"
    );
    assert!(!html.exists());
}

/// The errors table's rows: (metric, what, count).
fn error_rows(html: &str) -> Vec<(String, String, u64)> {
    let start = html
        .find("<section id=\"errors\">")
        .expect("an errors section");
    let section = &html[start..];
    let section = &section[..section.find("</section>").unwrap()];
    let cell = |s: &str| s.split("</td>").next().unwrap_or("").to_string();
    section
        .split("<tr><td>")
        .skip(1)
        .map(|row| {
            let cells: Vec<&str> = row.split("<td").collect();
            let metric = cell(cells[1].trim_start_matches("><code>")).replace("</code>", "");
            let what = cell(cells[2].trim_start_matches('>'));
            let n = cell(cells[3].trim_start_matches(" class=\"r\">"));
            (metric, what, n.parse().unwrap())
        })
        .collect()
}

#[test]
fn a_status_that_fails_a_check_is_one_error() {
    let d = Dir::new();
    let (html, _, s) = judged_run(&d);
    let html = std::fs::read_to_string(html).unwrap();
    let rows = error_rows(&html);
    let failed = counter(&s, "http_reqs", &[("expected_response", "false")]);
    assert!(failed > 0);
    // Every 500 once: under its status, naming the check it failed...
    let statuses: u64 = rows
        .iter()
        .filter(|(m, w, _)| m == "http_reqs" && w.contains("status 500"))
        .map(|r| r.2)
        .sum();
    assert_eq!(statuses, failed, "{rows:?}");
    assert!(
        rows.iter()
            .any(|(m, w, _)| m == "http_reqs" && w.contains("failed check status is 200")),
        "{rows:?}"
    );
    // ...and not again as a failed check.
    assert!(
        !rows
            .iter()
            .any(|(m, w, _)| m == "checks" && w.contains("status is 200")),
        "{rows:?}"
    );
}

#[test]
fn arrival_rate_vus_are_counted_while_busy() {
    // Quick requests at a low rate: a VU is busy for a millisecond or so at a
    // time, so the count sampled at each flush instant alone reads 0.
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let p = plan(
        &d,
        r#"
[scenarios.api]
driver = "http"
executor = "constant-arrival-rate"
rate = 10
time_unit = "1s"
duration = "3s"
pre_allocated_vus = 5

[[scenarios.api.requests]]
url = "/api/products"
"#,
        &t.url(),
    );
    let html = d.join("report.html");
    let (out, s) = run_plan(&d, &p, &["--report", html.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.unwrap();
    assert!(t.total() > 0);
    assert!(
        value(&s, "vus", "max") >= 1.0,
        "busy VUs seen: {}",
        s["metrics"]["vus"]
    );
    let html = std::fs::read_to_string(html).unwrap();
    assert!(!html.contains("VUs <b>peak 0</b>"), "the Active VUs chart");
}

/// A summary exported before drivers described themselves (no
/// `volley.drivers`) renders with this build's descriptors: the same
/// charts, breakdown, error rows and compare rows as it did then.
#[test]
fn a_summary_from_before_descriptors_still_reports_and_compares() {
    let old = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/summary-before-descriptors.json");
    let s: Value = serde_json::from_slice(&std::fs::read(&old).unwrap()).unwrap();
    assert!(
        s["volley"].get("drivers").is_none(),
        "the fixture predates descriptors"
    );
    let d = Dir::new();
    let page = d.join("old.html");
    let out = volley()
        .arg("report")
        .arg(&old)
        .arg("--out")
        .arg(&page)
        .output_within(RUN_LIMIT);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let html = std::fs::read_to_string(&page).unwrap();
    for part in [
        "id=\"chart-api-latency-http_req_duration\"",
        "HTTP request duration (http_req_duration)",
        "requests/s",
        "failed requests/s",
        "Requests by name",
        "<dt>HTTP requests</dt><dd>80 (",
        "<dt>HTTP failures</dt><dd>50.00%</dd>",
        "status 404 · name=missing",
    ] {
        assert!(html.contains(part), "{part:?} not in the report");
    }
    let out = compare(&old, &old, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    for row in [
        "http_req_duration  p(95)",
        "http_req_failed    rate",
        "http_reqs          rate",
        "iterations         rate",
    ] {
        assert!(table.contains(row), "{row:?} not in {table}");
    }
}

// ---- Latency distribution and requests by status ----

/// MIX, plus a request to a port nothing listens on: answers 200 and 404,
/// 500s the target injects, and transport errors without a status.
fn outcomes_run(d: &Dir) -> (Target, String, Value) {
    let t = Target::start(ServeOptions {
        error_rate: 0.3,
        latency: Some(DurRange::parse("1ms..20ms").unwrap()),
        ..Default::default()
    });
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let body = format!(
        "{MIX}\n[[scenarios.api.requests]]\nname = \"down\"\nurl = \"http://127.0.0.1:{closed}/api/products\"\n"
    );
    let p = plan(d, &body, &t.url());
    let html = d.join("report.html");
    let (out, s) = run_plan(d, &p, &["--report", html.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let html = std::fs::read_to_string(html).unwrap();
    (t, html, s.unwrap())
}

/// The `<figure>` with this id, up to its end.
fn figure<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("<figure class=\"chart\" id=\"{id}\""))
        .unwrap_or_else(|| panic!("no {id} in the report: {:?}", charts(html)));
    let fig = &html[start..];
    &fig[..fig.find("</figure>").unwrap()]
}

/// Every `name="..."` attribute value in `text`, in order.
fn attrs<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    let pat = format!(" {name}=\"");
    text.split(pat.as_str())
        .skip(1)
        .map(|p| p.split('"').next().unwrap())
        .collect()
}

#[test]
fn requests_by_status_add_up_to_the_summary_and_the_server() {
    let d = Dir::new();
    let (t, html, s) = outcomes_run(&d);
    let fig = figure(&html, "chart-api-http-status");
    assert!(fig.contains("Requests by status"), "{fig}");
    assert_eq!(fig.matches("<svg").count(), 1);
    // The chart's lines and their totals over the run.
    let lines = attrs(fig, "data-line");
    let totals: Vec<u64> = attrs(fig, "data-total")
        .iter()
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(lines.len(), totals.len());
    let shown: BTreeMap<String, u64> = lines.iter().map(|l| l.to_string()).zip(totals).collect();
    // The summary's http_reqs by status, a transport error by its error.
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for r in series(&s, "http_reqs", &[("scenario", "api")]) {
        let line = match r["tags"]["error"].as_str() {
            Some(e) => e.to_string(),
            None => r["tags"]["status"].as_str().unwrap().to_string(),
        };
        *want.entry(line).or_default() += r["count"].as_u64().unwrap();
    }
    assert_eq!(shown, want, "chart totals against the summary");
    for status in ["200", "404", "500"] {
        assert!(
            shown.get(status).is_some_and(|n| *n > 0),
            "{status}: {shown:?}"
        );
    }
    assert!(
        shown.get("connection refused").is_some_and(|n| *n > 0),
        "a transport error has its own line: {shown:?}"
    );
    // What the server answered, status by status.
    let served = t.server.state.stats.to_json()["statuses"].clone();
    let served: BTreeMap<String, u64> = served
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect();
    let answered: BTreeMap<String, u64> = shown
        .iter()
        .filter(|(k, _)| k.parse::<u16>().is_ok())
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    assert_eq!(answered, served, "chart totals against the server");
    assert_eq!(
        shown.values().sum::<u64>(),
        value(&s, "http_reqs", "count") as u64
    );
}

#[test]
fn the_latency_distribution_agrees_with_the_summary() {
    let d = Dir::new();
    let (_t, html, s) = outcomes_run(&d);
    let fig = figure(&html, "chart-api-distribution");
    assert_eq!(attrs(fig, "data-metric"), ["http_req_duration"]);
    assert!(fig.contains("percentile"), "the x axis is named");
    // Every request counted: the histogram holds one sample per request.
    let count: u64 = attrs(fig, "data-count")[0].parse().unwrap();
    assert_eq!(count, value(&s, "http_req_duration", "count") as u64);
    assert_eq!(count, value(&s, "http_reqs", "count") as u64);
    // The curve: quantiles rising, values never falling, ending at the max.
    let points: Vec<(f64, f64)> = attrs(fig, "data-points")[0]
        .split(' ')
        .map(|p| {
            let (q, v) = p.split_once(':').unwrap();
            (q.parse().unwrap(), v.parse().unwrap())
        })
        .collect();
    assert!(points.len() > 10, "{points:?}");
    assert!(
        points
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
    );
    // The 3 significant digits the histogram keeps.
    let close = |a: f64, b: f64| (a - b).abs() <= b.abs() * 1e-3 + 1e-6;
    let last = points.last().unwrap();
    assert_eq!(last.0, 1.0);
    assert!(
        close(last.1, value(&s, "http_req_duration", "max")),
        "{last:?}"
    );
    // p50 is a point of the curve; p99 lies between the points around it.
    let med = value(&s, "http_req_duration", "med");
    let p99 = value(&s, "http_req_duration", "p(99)");
    assert!(med > 0.0 && p99 >= med);
    let at_half = points.iter().find(|p| (p.0 - 0.5).abs() < 1e-9).unwrap();
    assert!(close(at_half.1, med), "{at_half:?} against med {med}");
    let below = points.iter().rev().find(|p| p.0 <= 0.99).unwrap();
    let above = points.iter().find(|p| p.0 >= 0.99).unwrap();
    assert!(
        below.1 <= p99 * (1.0 + 1e-3) && p99 <= above.1 * (1.0 + 1e-3),
        "p99 {p99} between {below:?} and {above:?}"
    );
    // The quoted percentiles are the summary's.
    let quoted: Vec<(f64, f64)> = attrs(fig, "data-p")
        .iter()
        .zip(attrs(fig, "data-value"))
        .map(|(p, v)| (p.parse().unwrap(), v.parse().unwrap()))
        .collect();
    let q = |p: f64| quoted.iter().find(|x| x.0 == p).unwrap().1;
    assert!(close(q(50.0), med) && close(q(99.0), p99), "{quoted:?}");
    assert!(close(q(90.0), value(&s, "http_req_duration", "p(90)")));
    // The SVG draws every point of the curve.
    let curves: Vec<&str> = fig
        .split("<polyline")
        .skip(1)
        .filter(|l| l.contains("stroke-width=\"2\""))
        .collect();
    assert_eq!(curves.len(), 1, "one curve (the grid is drawn thinner)");
    let drawn = attrs(curves[0], "points");
    assert_eq!(drawn[0].split_whitespace().count(), points.len());
}
