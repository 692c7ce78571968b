//! `--out influxdb` and `--out prometheus-rw` against real servers (a
//! throwaway `influxd` and `prometheus`, see tests/common/tsdb.rs): what they
//! hold after a run equals the summary; a dead InfluxDB costs points, never
//! the run; every query of the Grafana dashboards in deploy/grafana returns
//! data.

mod common;
#[path = "common/tsdb.rs"]
mod tsdb;

use common::*;
use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;
use volley_serve::ServeOptions;

fn plan(dir: &Dir, base: &str, duration: &str) -> std::path::PathBuf {
    dir.write(
        "plan.toml",
        &format!(
            r#"[defaults]
base_url = "{base}"

[scenarios.api]
driver = "http"
executor = "constant-arrival-rate"
rate = 40
time_unit = "1s"
duration = "{duration}"
pre_allocated_vus = 10
flow = "sequence"

[[scenarios.api.requests]]
name = "products"
url = "/api/products"
checks = {{ status = 200 }}

[[scenarios.api.requests]]
name = "missing"
url = "/api/nope"
checks = {{ status = 404 }}
"#
        ),
    )
}

/// The single number an InfluxQL aggregate answered (0 when no rows).
fn influx_number(v: &Value) -> f64 {
    v["results"][0]["series"][0]["values"][0][1]
        .as_f64()
        .unwrap_or(0.0)
}

/// `tag -> value` of an InfluxQL answer grouped by one tag.
fn influx_by(v: &Value, tag: &str) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = v["results"][0]["series"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|s| {
            (
                s["tags"][tag].as_str().unwrap_or_default().to_string(),
                s["values"][0][1].as_f64().unwrap_or(0.0),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn summary_by(s: &Value, metric: &str, tag: &str) -> Vec<(String, f64)> {
    let mut m = std::collections::BTreeMap::<String, f64>::new();
    for r in series(s, metric, &[]) {
        let k = r["tags"][tag].as_str().unwrap_or_default().to_string();
        *m.entry(k).or_default() += r["count"].as_f64().unwrap_or(0.0);
    }
    m.into_iter().collect()
}

#[test]
fn influxdb_holds_the_runs_counts() {
    let db = tsdb::influxdb();
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let p = plan(&d, &t.url(), "3s");
    let url = format!("influxdb=http://{}/volley,tag=testid:ci", db.addr);
    let (out, s) = run_plan(&d, &p, &["--out", &url]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.unwrap();
    let reqs = counter(&s, "http_reqs", &[]);
    assert!(reqs > 0);
    assert_eq!(reqs, t.total(), "the summary counts what the target saw");
    let q = |q: &str| tsdb::influxql(&db, "volley", q);
    assert_eq!(
        influx_number(&q(r#"SELECT sum("value") FROM "http_reqs""#)) as u64,
        reqs,
        "{}",
        text(&out)
    );
    assert_eq!(
        influx_by(
            &q(r#"SELECT sum("value") FROM "http_reqs" GROUP BY "status""#),
            "status"
        ),
        summary_by(&s, "http_reqs", "status")
    );
    assert_eq!(
        influx_number(&q(r#"SELECT sum("count") FROM "http_req_duration""#)) as u64,
        reqs
    );
    assert_eq!(
        influx_number(&q(r#"SELECT sum("value") FROM "iterations" WHERE "testid" = 'ci'"#))
            as u64,
        counter(&s, "iterations", &[])
    );
    // One point per series and second, at the second's start.
    let per_second = q(r#"SELECT count("value") FROM "http_reqs" GROUP BY time(1s), "status""#);
    assert!(
        per_second["results"][0]["series"].as_array().unwrap().len() >= 2,
        "{per_second}"
    );
}

#[test]
fn prometheus_remote_write_holds_the_runs_totals() {
    let prom = tsdb::prometheus();
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let p = plan(&d, &t.url(), "3s");
    let url = format!(
        "prometheus-rw=http://{}/api/v1/write,push=1s,tag=testid:ci",
        prom.addr
    );
    let (out, s) = run_plan(&d, &p, &["--out", &url]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.unwrap();
    let reqs = counter(&s, "http_reqs", &[]);
    assert_eq!(reqs, t.total());
    let number = |q: &str| -> f64 {
        let v = tsdb::promql(&prom, q);
        v["data"]["result"][0]["value"][1]
            .as_str()
            .unwrap_or("0")
            .parse()
            .unwrap()
    };
    assert_eq!(
        number(r#"sum(k6_http_reqs_total{testid="ci"})"#) as u64,
        reqs
    );
    for (status, n) in summary_by(&s, "http_reqs", "status") {
        assert_eq!(
            number(&format!(r#"sum(k6_http_reqs_total{{status="{status}"}})"#)),
            n,
            "status {status}"
        );
    }
    assert_eq!(
        number("sum(k6_http_req_duration_count)") as u64,
        reqs,
        "trends carry their count"
    );
    let p95 = number(r#"max(k6_http_req_duration_p95{name="products"})"#);
    assert!(p95 > 0.0 && p95 < 10.0, "p95 in seconds: {p95}");
}

#[test]
fn a_dead_influxdb_costs_points_not_the_run() {
    let mut db = tsdb::influxdb();
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let p = plan(&d, &t.url(), "6s");
    let export = d.join("summary.json");
    let child = volley()
        .arg("run")
        .arg(&p)
        .args(["--quiet", "--summary-export"])
        .arg(&export)
        .args(["--out", &format!("influxdb=http://{}/volley", db.addr)])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Some points have arrived: then the database dies mid-run.
    let started = std::time::Instant::now();
    loop {
        let v = tsdb::influxql(&db, "volley", r#"SELECT sum("value") FROM "http_reqs""#);
        if influx_number(&v) > 0.0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no points reached InfluxDB"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    db.kill();
    let out = wait_within(child, RUN_LIMIT, "volley run --out influxdb");
    let err = text(&out);
    assert_eq!(code(&out), 0, "{err}");
    let s: Value = serde_json::from_slice(&std::fs::read(&export).unwrap()).unwrap();
    assert_eq!(counter(&s, "http_reqs", &[]), t.total(), "the summary is whole");
    let line = err
        .lines()
        .find(|l| l.contains("points dropped"))
        .unwrap_or_else(|| panic!("the dropped points are shown: {err}"));
    let dropped: u64 = line
        .split("--out influxdb=")
        .nth(1)
        .and_then(|r| r.split(": ").nth(1))
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a count in {line:?}"));
    assert!(dropped > 0, "{line}");
}

#[test]
fn bad_push_outputs_are_refused_before_any_load() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let p = plan(&d, &t.url(), "1s");
    for (arg, says) in [
        ("influxdb=https://127.0.0.1:1/db", "only http://"),
        ("influxdb=127.0.0.1:8086", "is not a URL"),
        ("influxdb=http://127.0.0.1:1/db,push=1e12s", "push"),
        ("prometheus-rw=http://127.0.0.1:1/w,tag=x", "tag=KEY:VALUE"),
        ("prometheus-rw=http://127.0.0.1:1/w,nope=1", "unknown option"),
    ] {
        let (out, s) = run_plan(&d, &p, &["--out", arg]);
        assert_eq!(code(&out), 2, "{arg}: {}", text(&out));
        assert!(text(&out).contains(says), "{arg}: {}", text(&out));
        assert!(s.is_none());
    }
    assert_eq!(t.total(), 0, "no load was sent");
}

// ---- Grafana dashboards (deploy/grafana) ----

/// `volley demo` (HTTP, webhooks, WebSocket chat) pushed to both databases.
fn demo_run(influx: &tsdb::Peer, prom: &tsdb::Peer) {
    let d = Dir::new();
    let out = output_within(
        volley()
            .current_dir(&d.path)
            .args(["demo", "--quiet", "--report", "report.html"])
            .args(["--out", &format!("influxdb=http://{}/volley", influx.addr)])
            .args([
                "--out",
                &format!("prometheus-rw=http://{}/api/v1/write,push=1s", prom.addr),
            ]),
        RUN_LIMIT,
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(!text(&out).contains("points dropped"), "{}", text(&out));
}

/// Grafana's macros as Grafana would fill them for the last hour.
fn fill(q: &str) -> String {
    q.replace("$timeFilter", "time > now() - 1h")
        .replace("$__interval_ms", "1000")
        .replace("$__interval", "1s")
        .replace("$__rate_interval", "1m")
        .replace("$__range", "1h")
        .replace("$scenario", ".*")
}

fn targets(path: &std::path::Path) -> Vec<(String, String)> {
    let d: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let mut out = Vec::new();
    for panel in d["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().map(|a| a.as_slice()).unwrap_or_default() {
            let q = t["query"].as_str().or(t["expr"].as_str()).unwrap_or_default();
            out.push((panel["title"].as_str().unwrap_or_default().to_string(), q.to_string()));
        }
    }
    out
}

#[test]
fn every_dashboard_query_returns_data() {
    let influx = tsdb::influxdb();
    let prom = tsdb::prometheus();
    demo_run(&influx, &prom);
    let mut checked = 0;
    for path in tsdb::dashboards("influxdb") {
        for (title, q) in targets(&path) {
            assert!(!q.is_empty(), "{}: {title}: a raw query", path.display());
            let v = tsdb::influxql(&influx, "volley", &fill(&q));
            let series = v["results"][0]["series"].as_array().map(|a| a.len());
            assert!(
                series.unwrap_or(0) > 0,
                "{}: {title}: no data for {q}: {v}",
                path.display()
            );
            checked += 1;
        }
    }
    for path in tsdb::dashboards("prometheus") {
        for (title, q) in targets(&path) {
            assert!(!q.is_empty(), "{}: {title}: an expr", path.display());
            let v = tsdb::promql(&prom, &fill(&q));
            let n = v["data"]["result"].as_array().map(|a| a.len());
            assert!(
                n.unwrap_or(0) > 0,
                "{}: {title}: no data for {q}: {v}",
                path.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} queries found");
}

#[test]
fn grafana_files_agree_with_each_other() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana");
    let yaml = |p: &str| -> serde_yaml_ng::Value {
        serde_yaml_ng::from_slice(&std::fs::read(root.join(p)).unwrap())
            .unwrap_or_else(|e| panic!("{p}: {e}"))
    };
    let sources = yaml("provisioning/datasources/volley.yaml");
    let uids: Vec<&str> = sources["datasources"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|d| d["uid"].as_str().unwrap())
        .collect();
    for kind in ["influxdb", "prometheus"] {
        for path in tsdb::dashboards(kind) {
            let d: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            for p in d["panels"].as_array().unwrap() {
                let uid = p["datasource"]["uid"].as_str().unwrap();
                assert!(uids.contains(&uid), "{}: {uid}", path.display());
                assert_eq!(p["datasource"]["type"], kind, "{}", path.display());
            }
        }
    }
    // Kubernetes: every file kustomize packs exists, and every dashboard is packed.
    let k = yaml("kustomization.yaml");
    let mut packed = Vec::new();
    for g in k["configMapGenerator"].as_sequence().unwrap() {
        for f in g["files"].as_sequence().unwrap() {
            let f = f.as_str().unwrap();
            let f = f.split_once('=').map_or(f, |(_, f)| f);
            assert!(root.join(f).is_file(), "kustomization.yaml: {f}");
            packed.push(root.join(f));
        }
    }
    for r in k["resources"].as_sequence().unwrap() {
        let r = r.as_str().unwrap();
        let text = std::fs::read_to_string(root.join(r)).unwrap();
        for doc in text.split("\n---\n") {
            let _: serde_yaml_ng::Value =
                serde_yaml_ng::from_str(doc).unwrap_or_else(|e| panic!("{r}: {e}"));
        }
    }
    for kind in ["influxdb", "prometheus"] {
        for path in tsdb::dashboards(kind) {
            assert!(packed.contains(&path), "{} is not in kustomization.yaml", path.display());
        }
    }
    let compose = yaml("compose.yaml");
    let prom = compose["services"]["prometheus"]["command"].as_sequence().unwrap();
    assert!(prom.iter().any(|a| a == "--web.enable-remote-write-receiver"));
}
