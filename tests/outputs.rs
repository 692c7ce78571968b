//! `--out influxdb` and `--out prometheus-rw` against real servers (a
//! throwaway `influxd` and `prometheus`, see tests/common/tsdb.rs): what they
//! hold after a run equals the summary; a dead InfluxDB costs points, never
//! the run; every query of the Grafana dashboards in deploy/grafana returns
//! data after a demo run and a PostgreSQL run with monitors (the latter need
//! the throwaway cluster of scripts/with-postgres.sh: DATABASE_URL).

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
        influx_number(&q(
            r#"SELECT sum("value") FROM "iterations" WHERE "testid" = 'ci'"#
        )) as u64,
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
    assert_eq!(
        counter(&s, "http_reqs", &[]),
        t.total(),
        "the summary is whole"
    );
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
        (
            "influxdb=https://127.0.0.1:1/db,ca=/nonexistent/ca.pem",
            "ca=/nonexistent/ca.pem: cannot read the file",
        ),
        ("influxdb=http://127.0.0.1:1/db,insecure", "is for https://"),
        ("influxdb=127.0.0.1:8086", "is not a URL"),
        ("influxdb=http://127.0.0.1:1/db,push=1e12s", "push"),
        ("prometheus-rw=http://127.0.0.1:1/w,tag=x", "tag=KEY:VALUE"),
        (
            "prometheus-rw=http://127.0.0.1:1/w,nope=1",
            "unknown option",
        ),
    ] {
        let (out, s) = run_plan(&d, &p, &["--out", arg]);
        assert_eq!(code(&out), 2, "{arg}: {}", text(&out));
        assert!(text(&out).contains(says), "{arg}: {}", text(&out));
        assert!(s.is_none());
    }
    assert_eq!(t.total(), 0, "no load was sent");
}

// ---- https:// push URLs ----

/// TLS on a loopback port in front of `backend` (plain HTTP); its port.
fn tls_front(d: &Dir, backend: &str, rt: &tokio::runtime::Runtime) -> u16 {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from_pem_file(d.join("server.pem")).unwrap()],
            PrivateKeyDer::from_pem_file(d.join("server.key")).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let backend = backend.to_string();
    rt.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, backend) = (acceptor.clone(), backend.clone());
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await
                    && let Ok(mut up) = tokio::net::TcpStream::connect(&backend).await
                {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                }
            });
        }
    });
    port
}

#[test]
fn https_push_urls_reach_both_databases_and_check_the_certificate() {
    let influx = tsdb::influxdb();
    let prom = tsdb::prometheus();
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    test_certificates(&d, false);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let influx_tls = tls_front(&d, &influx.addr, &rt);
    let prom_tls = tls_front(&d, &prom.addr, &rt);
    let ca = d.join("ca.pem");
    let p = plan(&d, &t.url(), "2s");
    let (out, s) = run_plan(
        &d,
        &p,
        &[
            "--out",
            &format!(
                "influxdb=https://localhost:{influx_tls}/volley,ca={}",
                ca.display()
            ),
            "--out",
            &format!(
                "prometheus-rw=https://localhost:{prom_tls}/api/v1/write,push=1s,ca={}",
                ca.display()
            ),
        ],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(!text(&out).contains("points dropped"), "{}", text(&out));
    let reqs = counter(&s.unwrap(), "http_reqs", &[]);
    assert_eq!(reqs, t.total());
    assert_eq!(
        influx_number(&tsdb::influxql(
            &influx,
            "volley",
            r#"SELECT sum("value") FROM "http_reqs""#
        )) as u64,
        reqs
    );
    let v = tsdb::promql(&prom, "sum(k6_http_reqs_total)");
    assert_eq!(
        v["data"]["result"][0]["value"][1].as_str(),
        Some(reqs.to_string().as_str()),
        "{v}"
    );
    // Without the CA the certificate is refused: every point is dropped,
    // and said why; `insecure` skips the check.
    let (out, _) = run_plan(
        &d,
        &p,
        &[
            "--out",
            &format!("influxdb=https://localhost:{influx_tls}/untrusted"),
        ],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        text(&out).contains("points dropped") && text(&out).contains("UnknownIssuer"),
        "{}",
        text(&out)
    );
    let (out, s) = run_plan(
        &d,
        &p,
        &[
            "--out",
            &format!("influxdb=https://localhost:{influx_tls}/insecure,insecure"),
        ],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(
        influx_number(&tsdb::influxql(
            &influx,
            "insecure",
            r#"SELECT sum("value") FROM "http_reqs""#
        )) as u64,
        counter(&s.unwrap(), "http_reqs", &[])
    );
    assert!(
        tsdb::influxql(
            &influx,
            "untrusted",
            r#"SELECT sum("value") FROM "http_reqs""#
        )["results"][0]["series"]
            .is_null()
    );
}

// ---- PostgreSQL and monitors ----

fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "DATABASE_URL is not set: the PostgreSQL output tests need the throwaway cluster; run them with scripts/test.sh \
             (or scripts/with-postgres.sh cargo test --test outputs)"
        )
    })
}

/// A process for a monitor to lose mid-run: killed and reaped on demand (or drop).
struct Sleeper(Option<std::process::Child>);

impl Sleeper {
    fn start() -> Self {
        let child = std::process::Command::new("sleep")
            .arg(RUN_LIMIT.to_string())
            .spawn()
            .unwrap();
        Sleeper(Some(child))
    }
    fn pid(&self) -> u32 {
        self.0.as_ref().map_or(0, |c| c.id())
    }
    /// Killed and reaped: /proc no longer has it.
    fn stop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A PostgreSQL run pushed to both databases: a pool of 2 for 4 VUs (pool
/// wait), a query that fails with SQLSTATE 22012, pg_stat_activity sampled;
/// and three monitors, one of whose process dies mid-run (monitor_errors).
/// The run's summary.
fn pg_run(influx: &tsdb::Peer, prom: &tsdb::Peer) -> Value {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let mut sleeper = Sleeper::start();
    let p = d.write(
        "pg.toml",
        &format!(
            r#"[scenarios.db]
driver = "postgres"
database_url = "{db}"
executor = "constant-vus"
vus = 4
duration = "6s"
connections = "pool"
pool_size = 2
flow = "weighted"

[[scenarios.db.queries]]
name = "nap"
sql = "SELECT pg_sleep(0.01), 1 AS one"
weight = 3

[[scenarios.db.queries]]
name = "div0"
sql = "SELECT 1/0"
weight = 1

[monitors.srv]
pid = {me}

[monitors.api]
url = "{base}/api/metrics"
json_path = "$.process.memory_usage_mb"

[monitors.gone]
pid = {gone}
"#,
            db = database_url(),
            me = std::process::id(),
            base = t.url(),
            gone = sleeper.pid(),
        ),
    );
    let export = d.join("summary.json");
    let child = volley()
        .arg("run")
        .arg(&p)
        .args(["--quiet", "--summary-export"])
        .arg(&export)
        .args(["--out", &format!("influxdb=http://{}/volley", influx.addr)])
        .args([
            "--out",
            &format!("prometheus-rw=http://{}/api/v1/write,push=1s", prom.addr),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let watchdog = KillAfter::new(child.id(), RUN_LIMIT);
    // Once the run's first points are in, the monitored process goes away.
    let started = std::time::Instant::now();
    while influx_number(&tsdb::influxql(
        influx,
        "volley",
        r#"SELECT sum("value") FROM "pg_queries""#,
    )) == 0.0
    {
        assert!(
            started.elapsed() < Duration::from_secs(RUN_LIMIT),
            "no pg points reached InfluxDB"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    sleeper.stop();
    let out = wait_within(child, RUN_LIMIT, "volley run pg.toml --out ...");
    drop(watchdog);
    // 99: a failing query may fail a default threshold; the data is whole.
    assert!([0, 99].contains(&code(&out)), "{}", text(&out));
    assert!(!text(&out).contains("points dropped"), "{}", text(&out));
    serde_json::from_slice(&std::fs::read(&export).unwrap())
        .unwrap_or_else(|e| panic!("summary: {e}: {}", text(&out)))
}

/// A spike against a target with room for 25 requests (20 in flight, 5
/// queued), pushed to both databases: it breaks at 40 VUs (held 5) and
/// recovers once back at 5. Its summary.
fn capacity_run(influx: &tsdb::Peer, prom: &tsdb::Peer) -> Value {
    let t = Target::start(ServeOptions {
        capacity: Some(20),
        latency: Some(volley_protocols::duration::DurRange::parse("10ms").unwrap()),
        ..Default::default()
    });
    let d = Dir::new();
    let p = d.write(
        "spike.toml",
        &format!(
            r#"[defaults]
base_url = "{base}"

[scenarios.spike]
driver = "http"
executor = "ramping-vus"
start_vus = 5
stages = [
  {{ duration = "3s", target = 5 }},
  {{ duration = "0s", target = 40, spike = true }},
  {{ duration = "2s", target = 40, spike = true }},
  {{ duration = "0s", target = 5 }},
  {{ duration = "4s", target = 5 }},
]
recovery = {{ window = "2s", tolerance = "100%" }}
breaking_point = {{ signal = "http_req_failed", expr = "rate>0.05", window = "1s" }}

[[scenarios.spike.requests]]
url = "/api/v1/health"
"#,
            base = t.url()
        ),
    );
    let (out, s) = run_plan(
        &d,
        &p,
        &[
            "--out",
            &format!("influxdb=http://{}/volley", influx.addr),
            "--out",
            &format!("prometheus-rw=http://{}/api/v1/write,push=1s", prom.addr),
        ],
    );
    assert!([0, 99].contains(&code(&out)), "{}", text(&out));
    assert!(!text(&out).contains("points dropped"), "{}", text(&out));
    let s = s.unwrap();
    // The answers as pushed are the summary's.
    for g in ["capacity_held", "capacity_broke"] {
        let want = value(&s, g, "value");
        assert!(want > 0.0, "{g}: {}", s["capacity"]);
        let v = tsdb::influxql(
            influx,
            "volley",
            &format!(r#"SELECT last("value") FROM "{g}""#),
        );
        assert_eq!(influx_number(&v), want, "{g}");
    }
    let v = tsdb::influxql(
        influx,
        "volley",
        r#"SELECT last("max") FROM "recovery_time""#,
    );
    assert_eq!(
        influx_number(&v),
        value(&s, "recovery_time", "max"),
        "{}",
        s["capacity"]
    );
    s
}

/// `tag -> sum` of a rate's true observations, from the summary.
fn summary_hits_by(s: &Value, metric: &str, tag: &str) -> Vec<(String, f64)> {
    let mut m = std::collections::BTreeMap::<String, f64>::new();
    for r in series(s, metric, &[]) {
        let Some(k) = r["tags"][tag].as_str() else {
            continue;
        };
        *m.entry(k.to_string()).or_default() += r["hits"].as_f64().unwrap_or(0.0);
    }
    m.into_iter().collect()
}

#[test]
fn postgres_points_equal_the_summary() {
    let influx = tsdb::influxdb();
    let prom = tsdb::prometheus();
    let s = pg_run(&influx, &prom);
    let q = |q: &str| tsdb::influxql(&influx, "volley", q);
    let queries = counter(&s, "pg_queries", &[]);
    assert!(queries > 0, "{s}");
    assert_eq!(
        influx_number(&q(r#"SELECT sum("value") FROM "pg_queries""#)) as u64,
        queries
    );
    assert_eq!(
        influx_number(&q(r#"SELECT sum("count") FROM "pg_query_duration""#)),
        value(&s, "pg_query_duration", "count"),
        "{}",
        s["metrics"]["pg_query_duration"]
    );
    assert_eq!(
        influx_number(&q(r#"SELECT sum("count") FROM "pg_pool_wait""#)),
        value(&s, "pg_pool_wait", "count"),
    );
    // Errors by SQLSTATE: every failed query of the one that divides by zero.
    let by_state = summary_hits_by(&s, "pg_query_failed", "sqlstate");
    assert!(
        by_state.iter().any(|(k, n)| k == "22012" && *n > 0.0),
        "{by_state:?}"
    );
    assert_eq!(
        influx_by(
            &q(
                r#"SELECT sum("hits") FROM "pg_query_failed" WHERE "sqlstate" =~ /.+/ GROUP BY "sqlstate""#
            ),
            "sqlstate"
        ),
        by_state
    );
    // Server connections: the same highest count the summary kept.
    let total = series(&s, "pg_connections", &[("state", "total")]);
    let max = total
        .iter()
        .map(|r| r["max"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert!(max >= 1.0, "the pool's sessions were seen: {total:?}");
    assert_eq!(
        influx_number(&q(
            r#"SELECT max("max") FROM "pg_connections" WHERE "state" = 'total'"#
        )),
        max
    );
    // Prometheus remote write: the totals, and the failures by SQLSTATE
    // (the rate's counts, beside k6's share).
    let number = |q: &str| -> f64 {
        let v = tsdb::promql(&prom, q);
        v["data"]["result"][0]["value"][1]
            .as_str()
            .unwrap_or("0")
            .parse()
            .unwrap()
    };
    assert_eq!(number("sum(k6_pg_queries_total)") as u64, queries);
    for (state, n) in &by_state {
        assert_eq!(
            number(&format!(
                r#"sum(k6_pg_query_failed_total{{sqlstate="{state}"}})"#
            )),
            *n,
            "SQLSTATE {state}"
        );
    }
    let failed = series(&s, "pg_query_failed", &[]);
    let all: f64 = failed.iter().map(|r| r["total"].as_f64().unwrap()).sum();
    assert_eq!(number("sum(k6_pg_query_failed_observations_total)"), all);
    // Monitors: a gauge per second each, and the lost process's errors.
    assert!(
        influx_number(&q(
            r#"SELECT count("value") FROM "target_rss" WHERE "monitor" = 'srv'"#
        )) >= 2.0
    );
    // volley's own slope, pushed when the run ends, is the summary's.
    let slope = s["capacity"]["monitors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "srv")
        .and_then(|m| {
            m["gauges"]
                .as_array()
                .unwrap()
                .iter()
                .find(|g| g["metric"] == "target_rss")
        })
        .and_then(|g| g["slope_per_hour"].as_f64())
        .unwrap_or_else(|| panic!("a slope: {}", s["capacity"]));
    assert_eq!(
        influx_number(&q(
            r#"SELECT last("value") FROM "monitor_slope_per_hour" WHERE "monitor" = 'srv' AND "gauge" = 'target_rss'"#
        )),
        slope
    );
    let errors = counter(&s, "monitor_errors", &[("monitor", "gone")]);
    assert!(errors > 0, "{}", s["monitors"]);
    assert_eq!(
        influx_number(&q(
            r#"SELECT sum("value") FROM "monitor_errors" WHERE "monitor" = 'gone'"#
        )) as u64,
        errors
    );
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
    // 99: the demo's thresholds may fail on a busy machine; the data is there.
    assert!([0, 99].contains(&code(&out)), "{}", text(&out));
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

/// The capacity dashboards repeat a panel per monitored gauge (`$gauge`):
/// the query once for each gauge pg_run's monitors report.
fn each_gauge(q: &str, prefix: &str) -> Vec<String> {
    if !q.contains("$gauge") {
        return vec![q.to_string()];
    }
    ["target_rss", "target_cpu", "memory_usage_mb"]
        .iter()
        .map(|g| q.replace("$gauge", &format!("{prefix}{g}")))
        .collect()
}

fn targets(path: &std::path::Path) -> Vec<(String, String)> {
    let d: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let mut out = Vec::new();
    for panel in d["panels"].as_array().unwrap() {
        for t in panel["targets"]
            .as_array()
            .map(|a| a.as_slice())
            .unwrap_or_default()
        {
            let q = t["query"]
                .as_str()
                .or(t["expr"].as_str())
                .unwrap_or_default();
            out.push((
                panel["title"].as_str().unwrap_or_default().to_string(),
                q.to_string(),
            ));
        }
    }
    out
}

#[test]
fn every_dashboard_query_returns_data() {
    let influx = tsdb::influxdb();
    let prom = tsdb::prometheus();
    demo_run(&influx, &prom);
    pg_run(&influx, &prom);
    capacity_run(&influx, &prom);
    let mut checked = 0;
    for path in tsdb::dashboards("influxdb") {
        for (title, q) in targets(&path) {
            assert!(!q.is_empty(), "{}: {title}: a raw query", path.display());
            // A repeated panel: once per monitored gauge, as Grafana shows it.
            for q in each_gauge(&q, "") {
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
    }
    for path in tsdb::dashboards("prometheus") {
        for (title, q) in targets(&path) {
            assert!(!q.is_empty(), "{}: {title}: an expr", path.display());
            for q in each_gauge(&q, "k6_") {
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
    }
    assert!(checked >= 30, "only {checked} queries found");
    // The variables' queries too: the scenarios and the monitored gauges.
    for kind in ["influxdb", "prometheus"] {
        for path in tsdb::dashboards(kind) {
            let d: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            for var in d["templating"]["list"].as_array().unwrap() {
                let q = var["query"]["query"]
                    .as_str()
                    .or(var["query"].as_str())
                    .unwrap();
                let values: Vec<String> = if kind == "influxdb" {
                    let v = tsdb::influxql(&influx, "volley", q);
                    v["results"][0]["series"][0]["values"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .map(|r| r[r.as_array().unwrap().len() - 1].to_string())
                                .collect()
                        })
                        .unwrap_or_default()
                } else {
                    // Grafana's label_values(SELECTOR, LABEL).
                    let args = q
                        .strip_prefix("label_values(")
                        .and_then(|r| r.strip_suffix(')'))
                        .unwrap_or_else(|| panic!("{}: {q}", path.display()));
                    let (selector, label) = args.rsplit_once(',').unwrap();
                    let url = format!(
                        "/api/v1/label/{}/values?match[]={}",
                        label.trim(),
                        tsdb::encode(selector.trim())
                    );
                    let (_, body) = tsdb::get(&prom.addr, &url).unwrap();
                    let v: Value = serde_json::from_str(&body).unwrap();
                    v["data"]
                        .as_array()
                        .map(|a| a.iter().map(|x| x.to_string()).collect())
                        .unwrap_or_default()
                };
                // Grafana keeps the values its `regex` (JavaScript) matches.
                let values: Vec<String> = match var["regex"].as_str().unwrap_or("") {
                    "" => values,
                    re => {
                        let re = fancy_regex::Regex::new(re.trim_matches('/')).unwrap();
                        values
                            .into_iter()
                            .filter(|v| re.is_match(v.trim_matches('"')).unwrap())
                            .collect()
                    }
                };
                assert!(
                    !values.is_empty(),
                    "{}: variable {}: no values for {q}",
                    path.display(),
                    var["name"]
                );
                if var["name"] == "gauge" {
                    let all = values.join(" ");
                    assert!(
                        all.contains("target_rss") && all.contains("memory_usage_mb"),
                        "{all}"
                    );
                    // Only monitored gauges: a panel is repeated per value.
                    for not_a_gauge in ["monitor_errors", "monitor_slope_per_hour", "volley_"] {
                        assert!(
                            !all.contains(not_a_gauge),
                            "{}: variable gauge lists {not_a_gauge}: {all}",
                            path.display()
                        );
                    }
                }
            }
        }
    }
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
            assert!(
                packed.contains(&path),
                "{} is not in kustomization.yaml",
                path.display()
            );
        }
    }
    let compose = yaml("compose.yaml");
    let prom = compose["services"]["prometheus"]["command"]
        .as_sequence()
        .unwrap();
    assert!(
        prom.iter()
            .any(|a| a == "--web.enable-remote-write-receiver")
    );
}

// ---- --dashboard ----

/// A run with `--dashboard 127.0.0.1:0 --dashboard-linger 60s`: the child,
/// the dashboard's address and the rest of stderr (read on a thread).
struct LiveRun {
    child: std::process::Child,
    addr: String,
    err: std::sync::mpsc::Receiver<String>,
    export: std::path::PathBuf,
    _watchdog: KillAfter,
}

fn live_run(d: &Dir, p: &std::path::Path) -> LiveRun {
    use std::io::BufRead;
    let export = d.join("summary.json");
    let mut child = volley()
        .arg("run")
        .arg(p)
        .args(["--quiet", "--summary-export"])
        .arg(&export)
        .args(["--dashboard=127.0.0.1:0", "--dashboard-linger", "60s"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let watchdog = KillAfter::new(child.id(), RUN_LIMIT);
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "no dashboard address printed"
        );
        if let Some(rest) = line.trim().strip_prefix("dashboard: http://") {
            break rest.trim_end_matches('/').to_string();
        }
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in err.lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let err = rx;
    LiveRun {
        child,
        addr,
        err,
        export,
        _watchdog: watchdog,
    }
}

impl LiveRun {
    /// Once the run has ended and the page lingers, Ctrl-C ends the
    /// linger: the run's exit, its stderr and its summary.
    fn stop(self) -> (i32, String, Value) {
        let mut err = String::new();
        loop {
            let line = self
                .err
                .recv_timeout(Duration::from_secs(RUN_LIMIT))
                .unwrap_or_else(|_| panic!("the dashboard never lingered: {err}"));
            err.push_str(&line);
            err.push('\n');
            if line.contains("stays up for") {
                break;
            }
        }
        let _ = std::process::Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let out = self.child.wait_with_output().unwrap();
        err.extend(self.err.iter().map(|l| l + "\n"));
        let s: Value = serde_json::from_slice(&std::fs::read(&self.export).unwrap())
            .unwrap_or_else(|e| panic!("summary: {e}: {err}"));
        (out.status.code().unwrap_or(-1), err, s)
    }
}

/// Reads `/events` until the `end` event (bounded): each event's kind and data.
fn read_events(addr: &str) -> Vec<(String, Value)> {
    use std::io::{BufRead, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET /events HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut r = std::io::BufReader::new(s);
    let mut events = Vec::new();
    let mut kind = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        let n = r
            .read_line(&mut line)
            .expect("the stream goes on until the end");
        assert!(n > 0, "the stream closed before the end event: {events:?}");
        // Chunked framing lines are hex sizes: only SSE fields matter here.
        if let Some(k) = line.trim().strip_prefix("event: ") {
            kind = k.to_string();
        } else if let Some(data) = line.trim().strip_prefix("data: ") {
            events.push((kind.clone(), serde_json::from_str(data).unwrap()));
            if kind == "end" {
                return events;
            }
        }
    }
}

#[test]
fn the_dashboard_streams_every_second_and_ends_at_the_summary_totals() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let p = plan(&d, &t.url(), "3s");
    let run = live_run(&d, &p);
    let events = read_events(&run.addr);
    // A page opened after the run (it lingers) replays the whole run.
    let again = read_events(&run.addr);
    assert_eq!(again, events);
    let (code, err, s) = run.stop();
    assert_eq!(code, 0, "{err}");
    let points: Vec<&Value> = events
        .iter()
        .filter(|(k, _)| k == "point")
        .map(|(_, v)| v)
        .collect();
    assert!(points.len() >= 2, "{events:?}");
    // Every second once, in order.
    let ts: Vec<u64> = events
        .iter()
        .map(|(_, v)| v["t"].as_u64().unwrap())
        .collect();
    assert_eq!(ts, (0..ts.len() as u64).collect::<Vec<_>>());
    let per_second: u64 = events
        .iter()
        .map(|(_, v)| {
            v["scenarios"]["api"]["m"]["http_reqs"]["count"]
                .as_u64()
                .unwrap_or(0)
        })
        .sum();
    let reqs = counter(&s, "http_reqs", &[]);
    assert_eq!(per_second, reqs, "the seconds add up to the summary");
    let end = &events.last().unwrap().1;
    assert_eq!(end["running"], false);
    assert_eq!(end["totals"]["http_reqs"]["count"].as_u64(), Some(reqs));
    assert_eq!(reqs, t.total());
    // A gauge's total is its untagged series, not that plus each
    // scenario's: the dashboard showed twice the busy VUs before.
    for g in ["vus", "vus_max"] {
        assert_eq!(
            end["totals"][g]["value"].as_f64(),
            Some(value(&s, g, "value")),
            "{g}: {}",
            end["totals"]
        );
    }
}

/// `chromium --headless --dump-dom` of the dashboard page (None without chromium).
fn chromium_dom(addr: &str) -> Option<String> {
    let found = std::process::Command::new("sh")
        .args(["-c", "command -v chromium"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("SKIPPED: chromium is not installed (apt-get install chromium; .ci/run does)");
        return None;
    }
    let out = output_within(
        std::process::Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
            ])
            // The page carries the seconds so far: dumped as it loads.
            .arg("--dump-dom")
            .arg(format!("http://{addr}/")),
        120,
    );
    assert!(out.status.success(), "chromium: {}", text(&out));
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `data-points` of every chart in a dumped page.
fn chart_points(dom: &str) -> Vec<u64> {
    dom.split("data-points=\"")
        .skip(1)
        .map(|r| r.split('"').next().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn the_dashboard_page_draws_the_run_in_chromium() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    // Long enough for Chromium to start on a busy machine while it goes.
    let p = plan(&d, &t.url(), "20s");
    let run = live_run(&d, &p);
    // Wait for two seconds of the run on the stream, then look at the page.
    {
        use std::io::{BufRead, Write};
        let mut s = std::net::TcpStream::connect(&run.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(s, "GET /events HTTP/1.1\r\nHost: {}\r\n\r\n", run.addr).unwrap();
        let mut r = std::io::BufReader::new(s);
        let (mut seen, mut line) = (0, String::new());
        while seen < 2 {
            line.clear();
            assert!(r.read_line(&mut line).unwrap() > 0);
            seen += line.starts_with("event: point") as u32;
        }
    }
    let Some(during) = chromium_dom(&run.addr) else {
        let _ = read_events(&run.addr);
        run.stop();
        return;
    };
    let points = chart_points(&during);
    assert!(points.len() >= 4, "charts on the page: {during}");
    assert!(
        points.iter().all(|n| *n >= 2),
        "seconds so far in every chart: {points:?}"
    );
    assert!(
        !during.contains("data-ended=\"true\""),
        "the run was still going"
    );
    // After the run (the page lingers): the totals are the summary's.
    let _ = read_events(&run.addr);
    let after = chromium_dom(&run.addr).unwrap();
    let (code, err, s) = run.stop();
    assert_eq!(code, 0, "{err}");
    assert!(after.contains("data-ended=\"true\""), "{after}");
    let reqs = counter(&s, "http_reqs", &[]);
    assert!(
        after.contains(&format!("id=\"total-http_reqs\">{reqs}<")),
        "total {reqs} on the page: {after}"
    );
}
