//! End to end: the `volley` binary against the embedded target on loopback.
//! Counts volley reports are compared with what the server itself served.

mod common;

use common::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use volley_protocols::duration::DurRange;
use volley_serve::ServeOptions;

fn plan(dir: &Dir, body: &str, base: &str) -> std::path::PathBuf {
    dir.write(
        "plan.toml",
        &format!("[defaults]\nbase_url = \"{base}\"\n\n{body}"),
    )
}

#[test]
fn request_counts_equal_the_servers_counts() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let p = plan(
        &d,
        r#"
[scenarios.mix]
driver = "http"
executor = "per-vu-iterations"
vus = 7
iterations = 30
flow = "sequence"

[[scenarios.mix.requests]]
name = "health"
url = "/api/v1/health"

[[scenarios.mix.requests]]
name = "products"
url = "/api/products"
query = { page = "{{ rand_int(1, 5) }}" }

[[scenarios.mix.requests]]
name = "missing"
url = "/api/nope"
checks = { status = 404 }
"#,
        &t.url(),
    );
    let (out, s) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.unwrap();
    assert_eq!(value(&s, "iterations", "count"), 210.0);
    assert_eq!(value(&s, "http_reqs", "count"), 630.0);
    assert_eq!(t.total(), 630);
    assert_eq!(
        counter(&s, "http_reqs", &[("name", "health")]),
        t.route("GET /api/v1/health")
    );
    assert_eq!(
        counter(&s, "http_reqs", &[("name", "products")]),
        t.route("GET /api/products")
    );
    assert_eq!(
        counter(&s, "http_reqs", &[("name", "missing"), ("status", "404")]),
        t.route("unmatched")
    );
    // 404 is what the check accepts, so it is not a failure.
    assert_eq!(value(&s, "http_req_failed", "passes"), 0.0);
    assert_eq!(value(&s, "checks", "passes"), 210.0);
    // Bytes on the wire: every response carries at least its status line.
    assert!(value(&s, "data_received", "count") > 630.0 * 17.0);
}

#[test]
fn arrival_rate_sends_rate_times_duration() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let p = plan(
        &d,
        r#"
[scenarios.api]
driver = "http"
executor = "constant-arrival-rate"
rate = 200
time_unit = "1s"
duration = "5s"
# Headroom: a stall of the (shared, busy) test machine must not drop arrivals.
pre_allocated_vus = 50
max_vus = 200

[[scenarios.api.requests]]
url = "/api/v1/health"
checks = { status = 200 }
"#,
        &t.url(),
    );
    let (out, s) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.unwrap();
    let sent = value(&s, "http_reqs", "count");
    assert!(
        (sent - 1000.0).abs() <= 10.0,
        "sent {sent}, want 1000 within 1%"
    );
    assert_eq!(sent as u64, t.total());
    // Every scheduled arrival is accounted for: run, or dropped for want of a free VU.
    assert_eq!(sent + value(&s, "dropped_iterations", "count"), 1000.0);
}

#[test]
fn ramping_arrival_rate_follows_the_integral() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    // 0 -> 100/s over 4s (200 arrivals), then 100/s for 2s (200 arrivals).
    let p = plan(
        &d,
        r#"
[scenarios.ramp]
driver = "http"
executor = "ramping-arrival-rate"
start_rate = 0
time_unit = "1s"
pre_allocated_vus = 10
max_vus = 30
stages = [{ duration = "4s", target = 100 }, { duration = "2s", target = 100 }]

[[scenarios.ramp.requests]]
url = "/api/v1/health"
"#,
        &t.url(),
    );
    let (out, s) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let sent = value(&s.unwrap(), "http_reqs", "count");
    assert!(
        (sent - 400.0).abs() <= 4.0,
        "sent {sent}, want 400 within 1%"
    );
    assert_eq!(sent as u64, t.total());
}

#[test]
fn ramping_vus_reach_their_targets() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let p = plan(
        &d,
        r#"
[scenarios.ramp]
driver = "http"
executor = "ramping-vus"
start_vus = 0
stages = [{ duration = "2s", target = 12 }, { duration = "3s", target = 12 }, { duration = "2s", target = 0 }]
think_time = "20ms"

[[scenarios.ramp.requests]]
url = "/api/v1/health"
"#,
        &t.url(),
    );
    let (out, s) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.unwrap();
    assert_eq!(value(&s, "vus", "max"), 12.0, "peak VUs");
    assert_eq!(value(&s, "vus_max", "max"), 12.0);
    // The plateau (seconds 2..5) holds exactly the target.
    let vus_series = s["interval_series"]
        .as_array()
        .unwrap()
        .iter()
        .position(|x| x[0] == "vus" && x[1].as_object().is_some_and(|m| m.is_empty()))
        .expect("vus series");
    let at = |sec: u64| -> f64 {
        s["intervals"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["t"] == sec)
            .and_then(|i| {
                i["points"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|p| p[0] == vus_series)
            })
            .map(|p| p[1]["value"].as_f64().unwrap())
            .unwrap_or(-1.0)
    };
    for sec in [2, 3] {
        assert_eq!(at(sec), 12.0, "VUs at the end of second {}", sec + 1);
    }
    assert!(at(0) > 0.0 && at(0) < 12.0, "ramping up at 1s: {}", at(0));
    assert_eq!(value(&s, "http_reqs", "count") as u64, t.total());
}

#[test]
fn shared_iterations_are_exact() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let p = plan(
        &d,
        r#"
[scenarios.once]
driver = "http"
executor = "shared-iterations"
vus = 9
iterations = 1001

[[scenarios.once.requests]]
url = "/api/v1/health"
"#,
        &t.url(),
    );
    let (out, s) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(value(&s.unwrap(), "iterations", "count"), 1001.0);
    assert_eq!(t.total(), 1001);
}

#[test]
fn captures_flow_into_later_requests() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    d.write(
        "users.csv",
        "email,password\na@example.test,pa\nb@example.test,pb\n",
    );
    let p = plan(
        &d,
        r#"
[data.users]
file = "users.csv"

[scenarios.flow]
driver = "http"
executor = "per-vu-iterations"
vus = 4
iterations = 10

[[scenarios.flow.requests]]
name = "login"
method = "POST"
url = "/api/v1/auth/login"
json = { email = "{{ data.users.email }}", password = "{{ data.users.password }}" }
captures = { token = "$.token", uid = { json = "$.user_id" } }
checks = { status = 200 }

[[scenarios.flow.requests]]
name = "profile"
url = "/api/v1/users/profile"
headers = { Authorization = "Bearer {{ vars.token }}" }
checks = { status = 200, json = { "$.id" = "{{ vars.uid }}" }, json_exists = ["$.email"] }
"#,
        &t.url(),
    );
    let (out, s) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.unwrap();
    // Without the captured token the profile would be a 401.
    assert_eq!(t.route("GET /api/v1/users/profile"), 40);
    assert_eq!(
        counter(&s, "http_reqs", &[("name", "profile"), ("status", "200")]),
        40
    );
    assert_eq!(value(&s, "http_req_failed", "passes"), 0.0);
}

#[test]
fn checks_count_passes_and_failures() {
    let t = Target::start(ServeOptions {
        error_rate: 0.25,
        ..Default::default()
    });
    let d = Dir::new();
    let p = plan(
        &d,
        r#"
[scenarios.flaky]
driver = "http"
executor = "shared-iterations"
vus = 4
iterations = 400

[[scenarios.flaky.requests]]
name = "health"
url = "/api/v1/health"
checks = { status = 200, body_contains = "ok" }
"#,
        &t.url(),
    );
    let (out, s) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 0, "no thresholds, so exit 0: {}", text(&out));
    let s = s.unwrap();
    let injected = t.server.state.stats.to_json()["injected_errors"]
        .as_u64()
        .unwrap();
    assert!(
        injected > 40 && injected < 180,
        "about 25% of 400: {injected}"
    );
    // Two checks per request; each injected 500 fails both.
    assert_eq!(value(&s, "checks", "fails") as u64, 2 * injected);
    assert_eq!(value(&s, "checks", "passes") as u64, 2 * (400 - injected));
    assert_eq!(value(&s, "http_req_failed", "passes") as u64, injected);
    assert_eq!(counter(&s, "http_reqs", &[("status", "500")]), injected);
}

#[test]
fn latency_matches_the_injected_delay() {
    let fixed = DurRange::parse("20ms").unwrap();
    let t = Target::start(ServeOptions {
        latency: Some(fixed),
        ..Default::default()
    });
    let d = Dir::new();
    let p = plan(
        &d,
        r#"
[scenarios.slow]
driver = "http"
executor = "constant-arrival-rate"
rate = 50
time_unit = "1s"
duration = "3s"
pre_allocated_vus = 5

[[scenarios.slow.requests]]
url = "/api/v1/health"
"#,
        &t.url(),
    );
    let (out, s) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.unwrap();
    let min = value(&s, "http_req_duration", "min");
    // Never below the injected 20 ms. No upper bound: how far above it a
    // sample lands is this machine's load, not volley's (a wall-clock bound
    // failed at load 9).
    assert!(min >= 20.0, "min {min} ms");
    assert_eq!(
        counter(&s, "http_reqs", &[]),
        t.total(),
        "every request timed"
    );
}

#[test]
fn a_stalled_server_shows_in_open_model_latency() {
    // 5 VUs can serve at most 5 / 0.2 s = 25 requests/s; asked for 40/s the
    // rest queue up or are dropped. Latency must count from the scheduled start.
    let t = Target::start(ServeOptions {
        latency: Some(DurRange::parse("200ms").unwrap()),
        ..Default::default()
    });
    let d = Dir::new();
    let p = plan(
        &d,
        r#"
[scenarios.open]
driver = "http"
executor = "constant-arrival-rate"
rate = 40
time_unit = "1s"
duration = "3s"
pre_allocated_vus = 5
max_vus = 5

[[scenarios.open.requests]]
url = "/api/v1/health"
"#,
        &t.url(),
    );
    let (out, s) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.unwrap();
    let done = value(&s, "iterations", "count");
    let dropped = value(&s, "dropped_iterations", "count");
    assert_eq!(
        done + dropped,
        120.0,
        "every scheduled arrival is either run or dropped"
    );
    assert!(dropped > 0.0);
    assert_eq!(done as u64, t.total());
}

#[test]
fn a_failing_threshold_exits_99() {
    let t = Target::start(ServeOptions {
        error_rate: 0.5,
        ..Default::default()
    });
    let d = Dir::new();
    let p = plan(
        &d,
        r#"
[scenarios.api]
driver = "http"
executor = "shared-iterations"
vus = 2
iterations = 100

[[scenarios.api.requests]]
url = "/api/v1/health"

[thresholds]
http_req_failed = ["rate<0.01"]
http_req_duration = ["p(95)<5000"]
"#,
        &t.url(),
    );
    let (out, s) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 99, "{}", text(&out));
    let s = s.unwrap();
    assert_eq!(
        s["metrics"]["http_req_failed"]["thresholds"]["rate<0.01"]["ok"],
        false
    );
    assert_eq!(
        s["metrics"]["http_req_duration"]["thresholds"]["p(95)<5000"]["ok"],
        true
    );
    assert!(text(&out).contains("✗ 'rate<0.01'"));
}

#[test]
fn abort_on_fail_stops_the_run_early() {
    let t = Target::start(ServeOptions {
        error_rate: 1.0,
        ..Default::default()
    });
    let d = Dir::new();
    let p = plan(
        &d,
        r#"
[scenarios.api]
driver = "http"
executor = "constant-vus"
vus = 2
duration = "30s"
graceful_stop = "1s"

[[scenarios.api.requests]]
url = "/api/v1/health"
think_time = "10ms"

[thresholds]
http_req_failed = [{ threshold = "rate<0.5", abort_on_fail = true, delay_abort_eval = "1s" }]
"#,
        &t.url(),
    );
    let (out, s) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 99, "{}", text(&out));
    let s = s.unwrap();
    assert!(
        s["volley"]["aborted"]
            .as_str()
            .unwrap()
            .contains("abort_on_fail")
    );
    assert!(
        s["volley"]["duration_s"].as_f64().unwrap() < 10.0,
        "stopped long before 30s"
    );
}

#[test]
fn transport_errors_are_failed_requests_not_crashes() {
    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = Dir::new();
    let p = plan(
        &d,
        r#"
[scenarios.down]
driver = "http"
executor = "shared-iterations"
vus = 2
iterations = 20

[[scenarios.down.requests]]
url = "/api/v1/health"
"#,
        &format!("http://127.0.0.1:{port}"),
    );
    let (out, s) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.unwrap();
    assert_eq!(value(&s, "http_req_failed", "passes"), 20.0);
    assert_eq!(
        counter(&s, "http_reqs", &[("error", "connection refused")]),
        20
    );
}

#[test]
fn bad_plans_exit_2_with_file_line_and_column() {
    let d = Dir::new();
    let cases: &[(&str, &str, &str)] = &[
        (
            "[scenarios.a]\ndriver = \"http\"\nexecutor = \"constant-vus\"\nvus = 1\nduraton = \"1s\"\n[[scenarios.a.requests]]\nurl = \"http://127.0.0.1:1/\"\n",
            ":5:1:",
            "duraton",
        ),
        (
            "[scenarios.a]\ndriver = \"http\"\nexecutor = \"constant-vus\"\nvus = \"ten\"\nduration = \"1s\"\n[[scenarios.a.requests]]\nurl = \"http://127.0.0.1:1/\"\n",
            ":4:7:",
            "whole number",
        ),
        (
            "[scenarios.a]\ndriver = \"http\"\nexecutor = \"ramping-vus\"\nstages = [{ duration = \"1s\", target = -5 }]\n[[scenarios.a.requests]]\nurl = \"http://127.0.0.1:1/\"\n",
            ":4:",
            "target",
        ),
        (
            "[scenarios.a]\ndriver = \"http\"\nexecutor = \"constant-vus\"\nduration = \"1s\"\n[[scenarios.a.requests]]\nurl = \"http://127.0.0.1:1/\"\n[thresholds]\nhttp_req_duration = [\"p95<200\"]\n",
            ":8:",
            "p95",
        ),
        (
            "[data.users]\nfile = \"missing.csv\"\n[scenarios.a]\ndriver = \"http\"\nexecutor = \"constant-vus\"\nduration = \"1s\"\n[[scenarios.a.requests]]\nurl = \"http://127.0.0.1:1/\"\n",
            ":2:8:",
            "missing.csv",
        ),
        (
            "[scenarios.a]\ndriver = \"http\"\nexecutor = \"constant-vus\"\nduration = \"1s\"\n[[scenarios.a.requests]]\nurl = \"http://127.0.0.1:1/{{ vars.token }}\"\n",
            ":6:7:",
            "never captured",
        ),
        (
            "[scenarios.a]\ndriver = \"http\"\nexecutor = \"constant-vus\"\nduration = \"5\"\n[[scenarios.a.requests]]\nurl = \"http://127.0.0.1:1/\"\n",
            ":4:12:",
            "no unit",
        ),
    ];
    for (body, position, word) in cases {
        let p = d.write("bad.toml", body);
        let out = volley()
            .arg("run")
            .arg(&p)
            .arg("--quiet")
            .output_within(RUN_LIMIT);
        let msg = text(&out);
        assert_eq!(code(&out), 2, "{msg}");
        assert!(
            msg.contains(&format!("bad.toml{position}")),
            "want {position} in: {msg}"
        );
        assert!(msg.contains(word), "want {word:?} in: {msg}");
        assert!(!msg.contains("panicked"), "{msg}");
        // validate refuses it the same way.
        let v = volley().arg("validate").arg(&p).output_within(RUN_LIMIT);
        assert_eq!(code(&v), 2);
    }
}

#[test]
fn validate_prints_the_shape() {
    let d = Dir::new();
    let p = d.write(
        "plan.toml",
        r#"
[scenarios.a]
driver = "http"
executor = "ramping-vus"
stages = [{ duration = "30s", target = 50 }, { duration = "1m", target = 500 }]

[[scenarios.a.requests]]
url = "http://127.0.0.1:1/"

[scenarios.b]
driver = "http"
executor = "constant-arrival-rate"
rate = 350
duration = "90s"
pre_allocated_vus = 40
max_vus = 100

[[scenarios.b.requests]]
url = "http://127.0.0.1:1/"
"#,
    );
    let out = volley().arg("validate").arg(&p).output_within(RUN_LIMIT);
    let msg = text(&out);
    assert_eq!(code(&out), 0, "{msg}");
    assert!(msg.contains("total duration: 1m30s"), "{msg}");
    assert!(msg.contains("peak VUs: 600"), "{msg}");
    assert!(msg.contains("peak arrival rate: 350.00"), "{msg}");
    let seg = volley()
        .args(["validate", "--segment", "2/3"])
        .arg(&p)
        .output_within(RUN_LIMIT);
    assert!(
        text(&seg).contains("share: 167 of 500 VUs"),
        "{}",
        text(&seg)
    );
}

#[test]
fn ctrl_c_stops_gracefully_and_prints_the_summary() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let p = plan(
        &d,
        r#"
[scenarios.long]
driver = "http"
executor = "constant-vus"
vus = 3
duration = "60s"

[[scenarios.long.requests]]
url = "/api/v1/health"
think_time = "10ms"
"#,
        &t.url(),
    );
    let (out, s) = run_interrupted(&d, &p, Duration::from_secs(2));
    assert_eq!(code(&out), 130, "{}", text(&out));
    assert!(text(&out).contains("TOTAL RESULTS"));
    assert_eq!(value(&s, "http_reqs", "count") as u64, t.total());
    assert!(s["volley"]["duration_s"].as_f64().unwrap() < 30.0);
}

#[test]
fn http2_prior_knowledge_counts_match_too() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let p = plan(
        &d,
        r#"
[scenarios.h2]
driver = "http"
executor = "per-vu-iterations"
vus = 3
iterations = 20
http_version = "2"

[[scenarios.h2.requests]]
name = "login"
method = "POST"
url = "/api/v1/auth/login"
json = { email = "h2@example.test", password = "pw" }
captures = { token = "$.token" }
checks = { status = 200, headers = { "content-type" = "json" } }

[[scenarios.h2.requests]]
name = "balance"
url = "/api/v1/wallet/balance"
headers = { Authorization = "Bearer {{ vars.token }}" }
checks = { status = 200 }
"#,
        &t.url(),
    );
    let (out, s) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.unwrap();
    assert_eq!(value(&s, "http_reqs", "count"), 120.0);
    assert_eq!(t.route("GET /api/v1/wallet/balance"), 60);
    assert_eq!(value(&s, "checks", "fails"), 0.0);
    // One connection per VU, multiplexed: three handshakes in all.
    let connects = series(&s, "http_req_connecting", &[])
        .iter()
        .map(|x| {
            volley_protocols::metrics::decode_histogram(x["histogram"].as_str().unwrap()).unwrap()
        })
        .map(|h| {
            h.iter_recorded()
                .filter(|v| v.value_iterated_to() > 0)
                .map(|v| v.count_at_value())
                .sum::<u64>()
        })
        .sum::<u64>();
    assert_eq!(connects, 3);
}

/// HTTP/2 over TLS, negotiated by ALPN: every request is answered once, on
/// one connection per VU, each of which agreed on "h2".
#[test]
fn http2_over_tls_negotiates_h2_by_alpn_and_counts_match() {
    let t = Target::start(ServeOptions::default());
    let front = tls_front::Front::start(t.server.addr);
    let d = Dir::new();
    let p = plan(
        &d,
        r#"
insecure_skip_tls_verify = true
http_version = "2"

[scenarios.h2]
driver = "http"
executor = "per-vu-iterations"
vus = 3
iterations = 15

[[scenarios.h2.requests]]
name = "health"
url = "/api/v1/health"
checks = { status = 200 }

[[scenarios.h2.requests]]
name = "products"
url = "/api/products/search?q=lamp"
checks = { status = 200 }
"#,
        &format!("https://localhost:{}", front.addr.port()),
    );
    let (out, s) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.unwrap();
    assert_eq!(value(&s, "http_reqs", "count"), 90.0);
    assert_eq!(value(&s, "http_reqs", "count") as u64, t.total());
    assert_eq!(value(&s, "checks", "fails"), 0.0);
    assert_eq!(value(&s, "http_req_failed", "passes"), 0.0);
    assert_eq!(front.h2_sessions(), 3, "one h2 connection per VU");
    assert_eq!(
        front.other_sessions(),
        0,
        "no connection fell back to HTTP/1.1"
    );
}

/// Over TLS with `http_version = "auto"`, VUs share the connections ALPN
/// made HTTP/2: 6 VUs, 3 a connection, are 2 TLS sessions, and the
/// server's count of requests is volley's.
#[test]
fn http2_vus_share_tls_connections_negotiated_by_alpn() {
    let t = Target::start(ServeOptions::default());
    let front = tls_front::Front::start(t.server.addr);
    let d = Dir::new();
    let p = plan(
        &d,
        r#"
insecure_skip_tls_verify = true

[scenarios.h2]
driver = "http"
executor = "per-vu-iterations"
vus = 6
iterations = 10
vus_per_connection = 3

[[scenarios.h2.requests]]
url = "/api/v1/health"
checks = { status = 200 }
"#,
        &format!("https://localhost:{}", front.addr.port()),
    );
    let (out, s) = run_plan(&d, &p, &["--workers", "1"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.unwrap();
    assert_eq!(value(&s, "http_reqs", "count"), 60.0);
    assert_eq!(value(&s, "http_reqs", "count") as u64, t.total());
    assert_eq!(value(&s, "http_req_failed", "passes"), 0.0);
    assert_eq!(front.h2_sessions(), 2, "3 VUs on each h2 connection");
    assert_eq!(front.other_sessions(), 0);
}

/// A server that caps the requests per connection (nginx's
/// keepalive_requests) ends each HTTP/2 connection with a GOAWAY, here while
/// the VU thinks: the VU's next request meets the closed connection before
/// it leaves and goes on a new one; none fails, none is sent twice.
#[test]
fn http2_requests_after_a_goaway_go_on_a_new_connection() {
    let peer = h2peer::Peer::start(3);
    let d = Dir::new();
    let p = plan(
        &d,
        r#"
[scenarios.h2]
driver = "http"
executor = "per-vu-iterations"
vus = 2
iterations = 10
http_version = "2"

[[scenarios.h2.requests]]
url = "/capped"
checks = { status = 200, body_contains = "ok" }
think_time = "100ms"
"#,
        &format!("http://{}", peer.addr),
    );
    let (out, s) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.unwrap();
    assert_eq!(value(&s, "http_reqs", "count"), 20.0);
    assert_eq!(peer.answered(), 20, "the server answered each request once");
    assert_eq!(
        value(&s, "http_req_failed", "passes"),
        0.0,
        "{}",
        text(&out)
    );
    assert_eq!(value(&s, "checks", "fails"), 0.0);
    // Three answers per connection (a fourth request may beat the GOAWAY
    // and be answered): three or four connections per VU.
    let connections = peer.connections();
    assert!((6..=8).contains(&connections), "{connections} connections");
}

/// A server that PINGs its HTTP/2 connections and closes those that do not
/// answer (hyper's keep-alive) keeps a VU's connection through the VU's
/// think time: the connection is read while no request waits on it, so
/// every request goes on the one connection. (When only a waiting request
/// read the connection, each think time cost the connection and the next
/// request found it closed: one connection per request.)
#[test]
fn http2_pings_are_answered_while_the_vu_thinks() {
    let peer = h2peer::Peer::pinging(Duration::from_millis(100));
    let d = Dir::new();
    let p = plan(
        &d,
        r#"
[scenarios.h2]
driver = "http"
executor = "per-vu-iterations"
vus = 1
iterations = 4
http_version = "2"

[[scenarios.h2.requests]]
url = "/pinged"
checks = { status = 200 }
think_time = "700ms"
"#,
        &format!("http://{}", peer.addr),
    );
    let (out, s) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.unwrap();
    assert_eq!(value(&s, "http_reqs", "count"), 4.0);
    assert_eq!(peer.answered(), 4, "the server answered each request once");
    assert_eq!(value(&s, "http_req_failed", "passes"), 0.0);
    assert_eq!(peer.connections(), 1, "one connection for the whole run");
}

/// `vus_per_connection` shares each HTTP/2 connection among that many VUs, a
/// stream each (as h2load's -m): 6 VUs, 3 a connection, open 2 connections,
/// and every request is answered once.
#[test]
fn http2_vus_share_connections_when_asked() {
    let peer = h2peer::Peer::start(u64::MAX);
    let d = Dir::new();
    let p = plan(
        &d,
        r#"
[scenarios.h2]
driver = "http"
executor = "per-vu-iterations"
vus = 6
iterations = 5
http_version = "2"
vus_per_connection = 3

[[scenarios.h2.requests]]
url = "/shared"
checks = { status = 200, body_contains = "ok" }
"#,
        &format!("http://{}", peer.addr),
    );
    let (out, s) = run_plan(&d, &p, &["--workers", "1"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.unwrap();
    assert_eq!(value(&s, "http_reqs", "count"), 30.0);
    assert_eq!(peer.answered(), 30, "the server answered each request once");
    assert_eq!(value(&s, "http_req_failed", "passes"), 0.0);
    assert_eq!(value(&s, "checks", "fails"), 0.0);
    assert_eq!(peer.connections(), 2, "3 VUs on each connection");
    // Each byte of a shared connection is counted once, by one of its VUs:
    // the sums are what the server read and wrote, short of at most the
    // few frames that move after the last request ends (window updates).
    let (read, written) = peer.wire_when_closed().expect("the connections end");
    let sent = value(&s, "data_sent", "count");
    let received = value(&s, "data_received", "count");
    assert!(
        sent <= read as f64 && sent >= 0.8 * read as f64,
        "data_sent {sent}, the server read {read}"
    );
    assert!(
        received <= written as f64 && received >= 0.8 * written as f64,
        "data_received {received}, the server wrote {written}"
    );
}

/// A vus_per_connection volley cannot use is refused before anything is
/// sent, at its place in the plan, with what to write instead.
#[test]
fn vus_per_connection_out_of_range_or_on_http1_is_refused() {
    let d = Dir::new();
    for (value, version, want) in [
        (
            "0",
            "2",
            "vus_per_connection = 0 is out of range: give 1 to 1000",
        ),
        (
            "100000",
            "2",
            "vus_per_connection = 100000 is out of range: give 1 to 1000",
        ),
        (
            "-3",
            "2",
            "vus_per_connection = -3 is out of range: give 1 to 1000",
        ),
        (
            "4",
            "1.1",
            "vus_per_connection shares HTTP/2 connections, and this scenario speaks HTTP/1.1",
        ),
    ] {
        let p = plan(
            &d,
            &format!(
                r#"
[scenarios.h2]
driver = "http"
executor = "per-vu-iterations"
vus = 1
iterations = 1
http_version = "{version}"
vus_per_connection = {value}

[[scenarios.h2.requests]]
url = "/never"
"#
            ),
            "http://127.0.0.1:9",
        );
        let (out, _) = run_plan(&d, &p, &[]);
        assert_eq!(code(&out), 2, "{}", text(&out));
        let t = text(&out);
        assert!(t.contains(want), "{value}: {t}");
        assert!(
            t.contains("plan.toml:11:22"),
            "{value}: the place in the plan: {t}"
        );
    }
}

/// An HTTP/2 request the server read and then closed the connection on
/// (FIN, no GOAWAY) is one failed sample, tagged as HTTP/1.1 tags it, and is
/// never sent again: the server's count of requests is volley's.
#[test]
fn an_http2_request_the_server_read_and_dropped_is_one_closed_sample() {
    let peer = h2peer::Peer::dropping(1);
    let d = Dir::new();
    let p = plan(
        &d,
        r#"
[scenarios.h2]
driver = "http"
executor = "per-vu-iterations"
vus = 1
iterations = 10
http_version = "2"

[[scenarios.h2.requests]]
url = "/dropped"
"#,
        &format!("http://{}", peer.addr),
    );
    let (out, s) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.unwrap();
    assert_eq!(peer.answered(), 5);
    assert_eq!(peer.dropped(), 5);
    assert_eq!(
        value(&s, "http_reqs", "count") as u64,
        peer.answered() + peer.dropped()
    );
    assert_eq!(
        counter(
            &s,
            "http_reqs",
            &[("error", "connection closed before response")]
        ),
        peer.dropped(),
        "{:?}",
        series(&s, "http_reqs", &[])
            .iter()
            .map(|x| x["tags"].clone())
            .collect::<Vec<_>>()
    );
    assert_eq!(
        value(&s, "http_req_failed", "passes") as u64,
        peer.dropped()
    );
}

/// `volley ARGS`, killed (and the test failed) if it outlives `limit`.
fn bounded(args: &[&std::ffi::OsStr], _d: &Dir, limit: Duration) -> std::process::Output {
    common::output_within(volley().args(args), limit.as_secs())
}

/// `volley run PLAN --quiet --summary-export ...` within 60 s.
fn run_bounded(d: &Dir, plan: &std::path::Path) -> (std::process::Output, serde_json::Value) {
    let export = d.join("summary.json");
    let _ = std::fs::remove_file(&export);
    let args = [
        "run".as_ref(),
        plan.as_os_str(),
        "--quiet".as_ref(),
        "--summary-export".as_ref(),
        export.as_os_str(),
    ];
    let out = bounded(&args, d, Duration::from_secs(60));
    let summary = std::fs::read(&export).unwrap_or_else(|_| panic!("no summary: {}", text(&out)));
    (
        out,
        serde_json::from_slice(&summary).expect("summary is JSON"),
    )
}

fn one_request(peer: &peer::Peer, vus: u32, iterations: u32) -> String {
    format!(
        "[defaults]\nbase_url = \"http://{}\"\n\n[scenarios.s]\ndriver = \"http\"\nexecutor = \"per-vu-iterations\"\nvus = {vus}\niterations = {iterations}\n\n[[scenarios.s.requests]]\nname = \"r\"\nurl = \"/r\"\n",
        peer.addr
    )
}

#[test]
fn a_connection_the_server_closes_after_its_answer_is_not_written_to() {
    // Every third answer is the connection's last (no `Connection: close`):
    // volley sees the close before its next request and opens a new
    // connection, so no request goes into a closed one.
    let peer = peer::Peer::start(3, peer::Then::CloseWithLastAnswer, usize::MAX);
    let d = Dir::new();
    let p = d.write("plan.toml", &one_request(&peer, 2, 15));
    let (out, s) = run_bounded(&d, &p);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(value(&s, "http_reqs", "count"), 30.0, "{}", text(&out));
    assert_eq!(peer.reads(), 30);
    assert_eq!(
        value(&s, "http_req_failed", "passes"),
        0.0,
        "{}",
        text(&out)
    );
}

#[test]
fn a_request_the_server_read_and_dropped_is_one_failed_sample_not_a_silent_retry() {
    // One answer per connection; the next request is read, then the
    // connection closed unanswered. Sending it again would be a second
    // request on the server for one sample in volley.
    let peer = peer::Peer::start(1, peer::Then::CloseUnanswered, usize::MAX);
    let d = Dir::new();
    let p = d.write("plan.toml", &one_request(&peer, 1, 10));
    let (out, s) = run_bounded(&d, &p);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(value(&s, "http_reqs", "count") as u64, peer.reads());
    assert_eq!(peer.reads(), 10);
    let dropped = peer.unanswered();
    assert_eq!(dropped, 5);
    assert_eq!(
        counter(
            &s,
            "http_reqs",
            &[("error", "connection closed before response")]
        ),
        dropped
    );
    assert_eq!(value(&s, "http_req_failed", "passes") as u64, dropped);
}

#[test]
fn a_request_in_flight_when_the_server_dies_is_reset_not_refused() {
    // The server answers once, stops listening, reads the next request and
    // resets the connection (SO_LINGER 0), as a killed process would.
    let peer = peer::Peer::start(1, peer::Then::ResetUnanswered, 1);
    let d = Dir::new();
    let p = d.write("plan.toml", &one_request(&peer, 1, 2));
    let (out, s) = run_bounded(&d, &p);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(value(&s, "http_reqs", "count") as u64, peer.reads());
    assert_eq!(peer.reads(), 2);
    assert_eq!(
        counter(&s, "http_reqs", &[("error", "connection reset")]),
        1,
        "{}",
        text(&out)
    );
    assert_eq!(
        counter(&s, "http_reqs", &[("error", "connection refused")]),
        0
    );
}

#[test]
fn an_empty_path_is_sent_as_slash() {
    let peer = peer::Peer::start(usize::MAX, peer::Then::CloseWithLastAnswer, usize::MAX);
    let d = Dir::new();
    let p = d.write(
        "plan.toml",
        &format!(
            r#"[defaults]
base_url = "http://{addr}"

[scenarios.s]
driver = "http"
executor = "per-vu-iterations"
vus = 1
iterations = 1

[[scenarios.s.requests]]
url = ""
query = {{ q = "lamp" }}

[[scenarios.s.requests]]
url = ""
query = {{ q = "{{{{ rand_int(7, 7) }}}}" }}

[[scenarios.s.requests]]
url = "http://{addr}?q=abs"
"#,
            addr = peer.addr
        ),
    );
    let (out, s) = run_bounded(&d, &p);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(value(&s, "http_req_failed", "passes"), 0.0);
    assert_eq!(
        peer.lines(),
        [
            "GET /?q=lamp HTTP/1.1",
            "GET /?q=7 HTTP/1.1",
            "GET /?q=abs HTTP/1.1"
        ]
    );
}

#[test]
fn a_bad_host_or_port_is_refused_at_load_with_its_position() {
    let d = Dir::new();
    let http = "[scenarios.a]\ndriver = \"http\"\nexecutor = \"shared-iterations\"\niterations = 1\n[[scenarios.a.requests]]\n";
    let webhook = "[scenarios.w]\ndriver = \"webhook\"\nexecutor = \"shared-iterations\"\niterations = 1\nsecret = \"s\"\n";
    let cases: Vec<(String, &str, &str)> = vec![
        // The request URL holds a template, the base_url's origin does not.
        (
            format!(
                "[defaults]\nbase_url = \"http://[::1\"\n{http}url = \"/x/{{{{ rand_int(1, 5) }}}}\"\n"
            ),
            ":2:12:",
            "invalid authority",
        ),
        (
            format!(
                "[defaults]\nbase_url = \"http://127.0.0.1:65536\"\n{http}url = \"/x/{{{{ rand_int(1, 5) }}}}\"\n"
            ),
            ":2:12:",
            "1 to 65535",
        ),
        (
            format!("{http}url = \"http://127.0.0.1:70000/x\"\n"),
            ":6:7:",
            "1 to 65535",
        ),
        (
            format!("{http}url = \"http://127.0.0.1:99999/{{{{ rand_int(1, 2) }}}}\"\n"),
            ":6:7:",
            "1 to 65535",
        ),
        (
            format!("{http}url = \"http://127.0.0.1:0/\"\n"),
            ":6:7:",
            "1 to 65535",
        ),
        (
            format!("{webhook}endpoint = \"http://127.0.0.1:70000/hook\"\n"),
            ":6:12:",
            "1 to 65535",
        ),
        (
            format!("[defaults]\nbase_url = \"http://[::1\"\n{webhook}endpoint = \"/hook\"\n"),
            ":2:12:",
            "invalid authority",
        ),
    ];
    for (body, position, word) in &cases {
        let p = d.write("bad.toml", body);
        for cmd in ["validate", "run"] {
            let out = bounded(&[cmd.as_ref(), p.as_os_str()], &d, Duration::from_secs(30));
            let msg = text(&out);
            assert_eq!(code(&out), 2, "{cmd} {body}: {msg}");
            assert!(
                msg.contains(&format!("bad.toml{position}")),
                "{cmd} {body}: want {position} in: {msg}"
            );
            assert!(msg.contains(word), "{cmd} {body}: want {word:?} in: {msg}");
            assert!(!msg.contains("panicked"), "{msg}");
        }
    }
}

#[test]
fn a_templated_host_that_renders_invalid_fails_every_request_out_loud() {
    let d = Dir::new();
    d.write("hosts.csv", "host\n[::1\n");
    let p = d.write(
        "plan.toml",
        r#"[data.hosts]
file = "hosts.csv"

[scenarios.s]
driver = "http"
executor = "shared-iterations"
vus = 1
iterations = 3

[[scenarios.s.requests]]
name = "r"
url = "http://{{ data.hosts.host }}/x"
"#,
    );
    let (out, s) = run_bounded(&d, &p);
    let msg = text(&out);
    assert_eq!(code(&out), 0, "{msg}");
    assert_eq!(counter(&s, "http_reqs", &[("error", "invalid url")]), 3);
    assert_eq!(value(&s, "http_req_failed", "passes"), 3.0);
    // Said once, with the URL it rendered to and why it is not one.
    assert_eq!(msg.matches("is not a valid URL").count(), 1, "{msg}");
    assert!(msg.contains("\"http://[::1/x\""), "{msg}");
}

/// A raw HTTP/1.1 server on loopback that misbehaves on purpose, counting
/// every request head it read.
mod peer {
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

    /// What a connection does once it answered its share of requests.
    #[derive(Clone, Copy)]
    pub enum Then {
        /// The last answer and the close leave as one segment (keep-alive,
        /// no `Connection: close`), as from a server that closes right after
        /// writing: the client can see the close before its next request.
        CloseWithLastAnswer,
        /// Read the next request, then close (FIN) without answering.
        CloseUnanswered,
        /// Read the next request, then reset (RST via SO_LINGER 0).
        ResetUnanswered,
    }

    pub struct Peer {
        pub addr: SocketAddr,
        lines: Arc<Mutex<Vec<String>>>,
        unanswered: Arc<AtomicU64>,
        _rt: tokio::runtime::Runtime,
    }

    impl Peer {
        /// Answers `answers` requests per connection, then does `then`; stops
        /// listening (connects are refused) after `connections` accepts.
        pub fn start(answers: usize, then: Then, connections: usize) -> Self {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            let l = rt
                .block_on(TcpListener::bind("127.0.0.1:0"))
                .expect("a loopback port");
            let addr = l.local_addr().unwrap();
            let lines = Arc::new(Mutex::new(Vec::new()));
            let unanswered = Arc::new(AtomicU64::new(0));
            let (ls, un) = (lines.clone(), unanswered.clone());
            rt.spawn(async move {
                for _ in 0..connections {
                    let Ok((s, _)) = l.accept().await else { return };
                    tokio::spawn(serve(s, answers, then, ls.clone(), un.clone()));
                }
            });
            Self {
                addr,
                lines,
                unanswered,
                _rt: rt,
            }
        }

        /// Request heads read.
        pub fn reads(&self) -> u64 {
            self.lines.lock().unwrap().len() as u64
        }

        /// Their request lines, in order.
        pub fn lines(&self) -> Vec<String> {
            self.lines.lock().unwrap().clone()
        }

        /// Requests read and never answered.
        pub fn unanswered(&self) -> u64 {
            self.unanswered.load(Ordering::Relaxed)
        }
    }

    async fn serve(
        mut s: TcpStream,
        answers: usize,
        then: Then,
        lines: Arc<Mutex<Vec<String>>>,
        unanswered: Arc<AtomicU64>,
    ) {
        let mut buf = Vec::new();
        let mut answered = 0;
        while let Some(line) = read_head(&mut s, &mut buf).await {
            lines.lock().unwrap().push(line);
            if answered == answers {
                unanswered.fetch_add(1, Ordering::Relaxed);
                if let Then::ResetUnanswered = then {
                    s.set_zero_linger().unwrap();
                }
                return;
            }
            answered += 1;
            if answered == answers && matches!(then, Then::CloseWithLastAnswer) {
                // Corked: the answer waits for the FIN and goes with it.
                socket2::SockRef::from(&s).set_tcp_cork(true).unwrap();
                let _ = s.write_all(OK).await;
                return;
            }
            if s.write_all(OK).await.is_err() {
                return;
            }
        }
    }

    /// The next request head's first line (GETs: no body), None at EOF.
    async fn read_head(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                buf.drain(..end + 4);
                return head.lines().next().map(str::to_string);
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// An HTTP/2 server (hyper's) that answers `per_connection` requests on a
/// connection, then, 20 ms later, shuts it down gracefully (GOAWAY,
/// in-flight streams finish, close).
mod h2peer {
    use bytes::Bytes;
    use http_body_util::Full;
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio::net::TcpListener;

    pub struct Peer {
        pub addr: SocketAddr,
        answered: Arc<AtomicU64>,
        dropped: Arc<AtomicU64>,
        connections: Arc<AtomicU64>,
        wire: Arc<Wire>,
        _rt: tokio::runtime::Runtime,
    }

    /// Bytes the peer read and wrote on all its connections, and how many
    /// of them have ended (the client closed, or the peer did).
    #[derive(Default)]
    pub struct Wire {
        read: AtomicU64,
        written: AtomicU64,
        ended: AtomicU64,
    }

    /// A connection counting its bytes into `Wire`.
    struct Counted {
        tcp: tokio::net::TcpStream,
        wire: Arc<Wire>,
    }

    impl tokio::io::AsyncRead for Counted {
        fn poll_read(
            self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            let me = self.get_mut();
            let before = buf.filled().len();
            let r = std::pin::Pin::new(&mut me.tcp).poll_read(cx, buf);
            let n = (buf.filled().len() - before) as u64;
            me.wire.read.fetch_add(n, Ordering::Relaxed);
            r
        }
    }

    impl tokio::io::AsyncWrite for Counted {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            let me = self.get_mut();
            let r = std::pin::Pin::new(&mut me.tcp).poll_write(cx, buf);
            if let std::task::Poll::Ready(Ok(n)) = r {
                me.wire.written.fetch_add(n as u64, Ordering::Relaxed);
            }
            r
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
        }

        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
        }
    }

    impl Peer {
        pub fn start(per_connection: u64) -> Self {
            Self::with(per_connection, false, None)
        }

        /// Answers every request, and PINGs each connection every `every`,
        /// closing it when a PING goes unanswered for as long (hyper's
        /// keep-alive, as servers and load balancers use to find dead peers).
        pub fn pinging(every: std::time::Duration) -> Self {
            Self::with(u64::MAX, false, Some(every))
        }

        /// Answers `per_connection` requests, reads the next one and closes
        /// the connection (FIN) without answering it.
        pub fn dropping(per_connection: u64) -> Self {
            Self::with(per_connection, true, None)
        }

        fn with(per_connection: u64, drop_next: bool, ping: Option<std::time::Duration>) -> Self {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            let l = rt
                .block_on(TcpListener::bind("127.0.0.1:0"))
                .expect("a loopback port");
            let addr = l.local_addr().expect("bound");
            let answered = Arc::new(AtomicU64::new(0));
            let dropped = Arc::new(AtomicU64::new(0));
            let connections = Arc::new(AtomicU64::new(0));
            let wire = Arc::new(Wire::default());
            let (a, dr, c) = (answered.clone(), dropped.clone(), connections.clone());
            let w = wire.clone();
            rt.spawn(async move {
                while let Ok((tcp, _)) = l.accept().await {
                    c.fetch_add(1, Ordering::Relaxed);
                    let counts = (a.clone(), dr.clone());
                    let tcp = Counted {
                        tcp,
                        wire: w.clone(),
                    };
                    let w = w.clone();
                    tokio::spawn(async move {
                        serve(tcp, per_connection, drop_next, ping, counts).await;
                        w.ended.fetch_add(1, Ordering::Relaxed);
                    });
                }
            });
            Peer {
                addr,
                answered,
                dropped,
                connections,
                wire,
                _rt: rt,
            }
        }

        /// (read, written) once every connection has ended, so no byte is
        /// still on its way; None if they have not within 10 s.
        pub fn wire_when_closed(&self) -> Option<(u64, u64)> {
            let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while self.wire.ended.load(Ordering::Relaxed) < self.connections() {
                if std::time::Instant::now() > until {
                    return None;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Some((
                self.wire.read.load(Ordering::Relaxed),
                self.wire.written.load(Ordering::Relaxed),
            ))
        }

        pub fn answered(&self) -> u64 {
            self.answered.load(Ordering::Relaxed)
        }

        /// Requests read and never answered (the connection closed instead).
        pub fn dropped(&self) -> u64 {
            self.dropped.load(Ordering::Relaxed)
        }

        pub fn connections(&self) -> u64 {
            self.connections.load(Ordering::Relaxed)
        }
    }

    async fn serve(
        tcp: Counted,
        per_connection: u64,
        drop_next: bool,
        ping: Option<std::time::Duration>,
        (answered, dropped): (Arc<AtomicU64>, Arc<AtomicU64>),
    ) {
        let count = Arc::new(AtomicU64::new(0));
        let capped = Arc::new(tokio::sync::Notify::new());
        let kill = Arc::new(tokio::sync::Notify::new());
        let (n, cap, k) = (count.clone(), capped.clone(), kill.clone());
        let svc = hyper::service::service_fn(move |_req| {
            let nth = n.fetch_add(1, Ordering::Relaxed) + 1;
            let drop_this = drop_next && nth > per_connection;
            if drop_this {
                dropped.fetch_add(1, Ordering::Relaxed);
                k.notify_one();
            } else {
                answered.fetch_add(1, Ordering::Relaxed);
            }
            if nth == per_connection && !drop_next {
                cap.notify_one();
            }
            async move {
                if drop_this {
                    std::future::pending::<()>().await;
                }
                Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                    Bytes::from_static(b"ok"),
                )))
            }
        });
        let mut builder =
            hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
        if let Some(every) = ping {
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .keep_alive_interval(every)
                .keep_alive_timeout(every);
        }
        let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(tcp), svc);
        tokio::pin!(conn);
        if drop_next {
            // Dropping the connection closes the socket: no GOAWAY, no answer.
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = kill.notified() => {}
            }
            return;
        }
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = capped.notified() => {}
        }
        // The last answer is out first: the GOAWAY comes while the client idles.
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = tokio::time::sleep(std::time::Duration::from_millis(20)) => {}
        }
        conn.as_mut().graceful_shutdown();
        let _ = conn.await;
    }
}

/// TLS in front of the embedded target offering h2 and http/1.1 by ALPN,
/// counting the sessions that agreed on each.
mod tls_front {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    pub struct Front {
        pub addr: SocketAddr,
        h2: Arc<AtomicU64>,
        other: Arc<AtomicU64>,
        _rt: tokio::runtime::Runtime,
    }

    impl Front {
        pub fn start(backend: SocketAddr) -> Self {
            use rustls::pki_types::pem::PemObject;
            use rustls::pki_types::{CertificateDer, PrivateKeyDer};
            let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
            let cert = CertificateDer::from_pem_file(format!("{dir}localhost.crt")).unwrap();
            let key = PrivateKeyDer::from_pem_file(format!("{dir}localhost.key")).unwrap();
            let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            let l = rt
                .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .expect("a loopback port");
            let addr = l.local_addr().expect("bound");
            let (h2, other) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
            let (h, o) = (h2.clone(), other.clone());
            rt.spawn(async move {
                while let Ok((tcp, _)) = l.accept().await {
                    let (acceptor, h, o) = (acceptor.clone(), h.clone(), o.clone());
                    tokio::spawn(async move {
                        let Ok(mut tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                            h.fetch_add(1, Ordering::Relaxed);
                        } else {
                            o.fetch_add(1, Ordering::Relaxed);
                        }
                        if let Ok(mut up) = tokio::net::TcpStream::connect(backend).await {
                            let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                        }
                    });
                }
            });
            Front {
                addr,
                h2,
                other,
                _rt: rt,
            }
        }

        pub fn h2_sessions(&self) -> u64 {
            self.h2.load(Ordering::Relaxed)
        }

        pub fn other_sessions(&self) -> u64 {
            self.other.load(Ordering::Relaxed)
        }
    }
}

/// A server that speaks HTTP/1.1 only: it answers anything, the HTTP/2
/// preface included, with `400 Bad Request` and closes, as nginx does on a
/// plain listener. Returns its base URL and how many connections it took.
fn http1_only_server() -> (String, std::sync::Arc<AtomicU64>) {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    let accepted = std::sync::Arc::new(AtomicU64::new(0));
    let n = accepted.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            n.fetch_add(1, Ordering::Relaxed);
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nConnection: close\r\n\r\nBad Request",
            );
            // A lingering close, as nginx's: read what the client still
            // sends until it closes, so the answer is not lost to a reset.
            let _ = s.shutdown(std::net::Shutdown::Write);
            while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
        }
    });
    (base, accepted)
}

#[test]
fn http2_against_an_http1_only_server_says_so() {
    let (base, accepted) = http1_only_server();
    let d = Dir::new();
    let p = plan(
        &d,
        r#"
[scenarios.h2]
driver = "http"
executor = "per-vu-iterations"
vus = 1
iterations = 3
http_version = "2"

[[scenarios.h2.requests]]
url = "/api/v1/health"
"#,
        &base,
    );
    let (out, s) = run_plan(&d, &p, &[]);
    let s = s.unwrap_or_else(|| panic!("no summary: {}", text(&out)));
    let want = "server does not speak HTTP/2 (h2c prior knowledge): use http_version = \"1.1\"";
    let errors: Vec<String> = series(&s, "http_reqs", &[])
        .iter()
        .map(|x| x["tags"]["error"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(errors.iter().all(|e| e == want), "error tags: {errors:?}");
    assert_eq!(counter(&s, "http_reqs", &[("error", want)]), 3);
    // Each failed request opened its own connection: the server saw them all.
    assert_eq!(accepted.load(Ordering::Relaxed), 3);
    assert!(text(&out).contains(want), "{}", text(&out));
}
