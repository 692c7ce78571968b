//! HTTP flows against real servers on loopback: cookie sessions, redirect
//! chains, once-per-VU requests, groups and tags, custom metrics from
//! responses and event streams, file and multipart bodies, mTLS, and
//! Retry-After. Every count is compared with what the server counted.

mod common;

use common::*;
use sha2::{Digest, Sha256};
use std::sync::atomic::Ordering;
use std::time::Duration;
use volley_serve::ServeOptions;

fn plan(dir: &Dir, body: &str, base: &str) -> std::path::PathBuf {
    dir.write(
        "plan.toml",
        &format!("[defaults]\nbase_url = \"{base}\"\n\n{body}"),
    )
}

fn n(c: &std::sync::atomic::AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

fn run_ok(d: &Dir, p: &std::path::Path) -> serde_json::Value {
    let (out, s) = run_plan(d, p, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    s.expect("a summary")
}

#[test]
fn a_cookie_session_logged_in_once_authorises_every_later_request() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let session = r#"
[scenarios.web]
driver = "http"
executor = "per-vu-iterations"
vus = 4
iterations = 5
COOKIES

[[scenarios.web.requests]]
name = "login"
method = "POST"
url = "/api/v1/session/login"
form = { email = "user{{ vu.id }}@example.test", password = "secret" }
once = true
checks = { status = 200 }

[[scenarios.web.requests]]
name = "me"
url = "/api/v1/session/me"

[[scenarios.web.requests]]
name = "me again"
url = "/api/v1/session/me"
"#;
    let s = run_ok(&d, &plan(&d, &session.replace("COOKIES", ""), &t.url()));
    let f = &t.server.state.flows;
    // One login per VU, every request after it authorised by the cookie.
    assert_eq!(n(&f.logins), 4);
    assert_eq!(counter(&s, "http_reqs", &[("name", "login")]), 4);
    assert_eq!(n(&f.authorised), 40);
    assert_eq!(n(&f.unauthorised), 0);
    assert_eq!(
        counter(&s, "http_reqs", &[("name", "me"), ("status", "200")]),
        20
    );
    assert_eq!(value(&s, "http_req_failed", "passes"), 0.0);

    // Without the jar the server's cookie is never sent back.
    t.server.state.flows.reset();
    let s = run_ok(
        &d,
        &plan(
            &d,
            &session.replace("COOKIES", "cookies = \"off\""),
            &t.url(),
        ),
    );
    assert_eq!(n(&f.logins), 4);
    assert_eq!(n(&f.authorised), 0);
    assert_eq!(n(&f.unauthorised), 40);
    assert_eq!(counter(&s, "http_reqs", &[("status", "401")]), 40);

    // A jar emptied each iteration keeps the login of the first one only.
    t.server.state.flows.reset();
    run_ok(
        &d,
        &plan(
            &d,
            &session.replace("COOKIES", "reset_cookies = \"iteration\""),
            &t.url(),
        ),
    );
    assert_eq!(n(&f.authorised), 8);
    assert_eq!(n(&f.unauthorised), 32);

    // A cookie the plan sets goes into the jar like one a server sets.
    t.server.state.flows.reset();
    let token = volley_serve::flows::session_for(42);
    let p = plan(
        &d,
        &format!(
            r#"
[scenarios.web]
driver = "http"
executor = "per-vu-iterations"
vus = 2
iterations = 3

[[scenarios.web.requests]]
name = "first"
url = "/api/v1/session/me"
cookies = {{ vsession = "{token}" }}
once = true

[[scenarios.web.requests]]
name = "later"
url = "/api/v1/session/me"
checks = {{ status = 200 }}
"#
        ),
        &t.url(),
    );
    let s = run_ok(&d, &p);
    assert_eq!(n(&f.authorised), 8);
    assert_eq!(n(&f.unauthorised), 0);
    assert_eq!(value(&s, "checks", "fails"), 0.0);
}

#[test]
fn once_requests_run_first_in_a_weighted_mix_too() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let p = plan(
        &d,
        r#"
[scenarios.mix]
driver = "http"
executor = "per-vu-iterations"
vus = 3
iterations = 10
flow = "weighted"

[[scenarios.mix.requests]]
name = "login"
method = "POST"
url = "/api/v1/session/login"
json = { email = "u{{ vu.id }}@example.test", password = "pw" }
once = true

[[scenarios.mix.requests]]
name = "me"
url = "/api/v1/session/me"
weight = 1
"#,
        &t.url(),
    );
    let s = run_ok(&d, &p);
    let f = &t.server.state.flows;
    assert_eq!(n(&f.logins), 3);
    assert_eq!(n(&f.authorised), 30);
    assert_eq!(counter(&s, "http_reqs", &[("name", "me")]), 30);
}

#[test]
fn redirect_hops_are_counted_on_both_sides() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let port = t.server.addr.port();
    let p = plan(
        &d,
        &format!(
            r#"
[scenarios.hops]
driver = "http"
executor = "per-vu-iterations"
vus = 2
iterations = 5
headers = {{ Authorization = "Bearer t0ken" }}

[[scenarios.hops.requests]]
name = "chain"
url = "/api/v1/redirect/3"
checks = {{ status = 200 }}

[[scenarios.hops.requests]]
name = "see other"
method = "POST"
url = "/api/v1/redirect/2?status=303"
json = {{ a = 1 }}
checks = {{ status = 200, json = {{ "$.method" = "GET" }} }}

[[scenarios.hops.requests]]
name = "temporary"
method = "POST"
url = "/api/v1/redirect/1?status=307"
json = {{ a = 1 }}
checks = {{ status = 200, json = {{ "$.method" = "POST" }} }}

[[scenarios.hops.requests]]
url = "/api/v1/redirect/loop"
max_redirects = 3

[[scenarios.hops.requests]]
name = "not followed"
url = "/api/v1/redirect/1"
max_redirects = 0
checks = {{ status = 302 }}

[[scenarios.hops.requests]]
name = "same origin"
url = "/api/v1/redirect/to?url=%2Fapi%2Fv1%2Fredirect%2F0"
checks = {{ json = {{ "$.authorization" = true }} }}

[[scenarios.hops.requests]]
name = "bad location"
url = "/api/v1/redirect/to?url=ftp%3A%2F%2Fexample.test%2F"

[[scenarios.hops.requests]]
name = "port zero"
url = "/api/v1/redirect/to?url=http%3A%2F%2F127.0.0.1%3A0%2F"

[[scenarios.hops.requests]]
name = "cross origin"
url = "/api/v1/redirect/to?url=http%3A%2F%2Flocalhost%3A{port}%2Fapi%2Fv1%2Fredirect%2F0"
checks = {{ json = {{ "$.authorization" = false }} }}
"#
        ),
        &t.url(),
    );
    let s = run_ok(&d, &p);
    let f = &t.server.state.flows;
    let its = 10;
    // Each hop is a sample of its own, tagged with its place in the chain.
    assert_eq!(counter(&s, "http_reqs", &[("name", "chain")]), 4 * its);
    for hop in ["1", "2", "3"] {
        assert_eq!(
            counter(&s, "http_reqs", &[("name", "chain"), ("redirect", hop)]),
            its
        );
    }
    // 303 turns the POST into a GET; 307 keeps it.
    assert_eq!(
        counter(
            &s,
            "http_reqs",
            &[("name", "see other"), ("method", "POST")]
        ),
        its
    );
    assert_eq!(
        counter(&s, "http_reqs", &[("name", "see other"), ("method", "GET")]),
        2 * its
    );
    assert_eq!(
        counter(
            &s,
            "http_reqs",
            &[("name", "temporary"), ("method", "POST")]
        ),
        2 * its
    );
    assert_eq!(n(&f.redirect_posts), its + 2 * its);
    // The loop stops at the limit, labelled; its hops are named by URL.
    let looped = format!("http://127.0.0.1:{port}/api/v1/redirect/loop");
    assert_eq!(
        counter(&s, "http_reqs", &[("name", "/api/v1/redirect/loop")]),
        its
    );
    assert_eq!(counter(&s, "http_reqs", &[("name", &looped)]), 3 * its);
    assert_eq!(
        counter(&s, "http_reqs", &[("error", "too many redirects")]),
        its
    );
    // A Location that is not http(s) ends the chain on that response.
    assert_eq!(counter(&s, "http_reqs", &[("name", "bad location")]), its);
    assert_eq!(counter(&s, "http_reqs", &[("name", "port zero")]), its);
    assert_eq!(
        counter(&s, "http_reqs", &[("error", "invalid redirect location")]),
        2 * its
    );
    assert_eq!(value(&s, "http_req_failed", "passes"), 3.0 * its as f64);
    // Credentials stay with their origin; every check held.
    assert_eq!(value(&s, "checks", "fails"), 0.0);
    // Both sides saw the same hops and the same ends.
    let redirects: u64 = series(&s, "http_reqs", &[])
        .iter()
        .filter(|r| {
            r["tags"]["status"]
                .as_str()
                .is_some_and(|x| x.starts_with('3'))
        })
        .map(|r| r["count"].as_u64().unwrap())
        .sum();
    assert_eq!(redirects, n(&f.redirect_hops));
    // chain, see other, temporary, same and cross origin end with a 200.
    assert_eq!(n(&f.redirect_ends), 5 * its);
    assert_eq!(
        counter(&s, "http_reqs", &[("status", "200")]),
        n(&f.redirect_ends)
    );
}

#[test]
fn groups_time_their_requests_and_templated_tags_are_rendered() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let p = plan(
        &d,
        r#"
[scenarios.shop]
driver = "http"
executor = "per-vu-iterations"
vus = 3
iterations = 4

[[scenarios.shop.requests]]
name = "browse"
url = "/api/products"
group = "checkout"
tags = { tenant = "t{{ vu.id }}", tier = "gold" }

[[scenarios.shop.requests]]
name = "order"
method = "POST"
url = "/api/orders"
json = { product_id = 500, quantity = 1 }
group = "checkout"

[[scenarios.shop.requests]]
name = "health"
url = "/api/v1/health"
"#,
        &t.url(),
    );
    let s = run_ok(&d, &p);
    // One group_duration per iteration, tagged like k6's.
    let g = series(&s, "group_duration", &[("group", "::checkout")]);
    assert_eq!(g.len(), 1, "{g:?}");
    assert_eq!(value(&s, "group_duration", "count"), 12.0);
    assert_eq!(
        counter(&s, "http_reqs", &[("group", "::checkout")]),
        t.route("GET /api/products") + t.route("POST /api/orders")
    );
    assert_eq!(counter(&s, "http_reqs", &[("group", "::checkout")]), 24);
    for vu in 1..=3 {
        assert_eq!(
            counter(
                &s,
                "http_reqs",
                &[("tenant", &format!("t{vu}")), ("tier", "gold")]
            ),
            4
        );
    }
    assert_eq!(counter(&s, "http_reqs", &[("name", "health")]), 12);
    assert!(
        series(&s, "http_reqs", &[("name", "health")])
            .iter()
            .all(|r| r["tags"].get("group").is_none())
    );
}

#[test]
fn custom_metrics_from_a_token_stream_equal_what_the_server_sent() {
    let delay = Duration::from_millis(30);
    let t = Target::start(ServeOptions {
        llm_delay: Some(delay),
        ..Default::default()
    });
    let d = Dir::new();
    let report = d.join("report.html");
    let p = plan(
        &d,
        r#"
[metrics.cache_hits]
kind = "rate"
[metrics.tokens_total]
kind = "counter"
[metrics.tokens_per_request]
kind = "trend"
[metrics.cost_per_request]
kind = "trend"
[metrics.llm_latency]
kind = "trend"
unit = "time"
[metrics.token_events]
kind = "counter"

[scenarios.llm]
driver = "http"
executor = "per-vu-iterations"
vus = 3
iterations = 4

[[scenarios.llm.requests]]
name = "chat"
method = "POST"
url = "/api/v1/llm/chat"
json = { prompt = "tell me about load {{ vu.id }} {{ iter }}" }
stream = "sse"
checks = { status = 200 }

[scenarios.llm.requests.record]
cache_hits = { header = "X-Cache", equals = "HIT" }
tokens_total = { json = "$.usage.total_tokens" }
tokens_per_request = { json = "$.usage.total_tokens" }
cost_per_request = { json = "$.usage.cost" }
llm_latency = { duration = true }
token_events = { json = "$.token" }

[thresholds]
tokens_total = ["count>0"]
cost_per_request = ["avg<0.01"]
"#,
        &t.url(),
    );
    let (out, s) = run_plan(&d, &p, &["--report", report.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.unwrap();
    let llm = &t.server.state.llm;
    assert_eq!(n(&llm.requests), 12);
    assert_eq!(n(&llm.completed), 12);
    assert_eq!(
        value(&s, "tokens_total", "count") as u64,
        n(&llm.total_tokens)
    );
    assert_eq!(
        value(&s, "token_events", "count") as u64,
        n(&llm.token_events)
    );
    assert_eq!(value(&s, "cache_hits", "passes") as u64, n(&llm.cache_hits));
    assert_eq!(
        value(&s, "cache_hits", "passes") + value(&s, "cache_hits", "fails"),
        12.0
    );
    assert_eq!(value(&s, "tokens_per_request", "count"), 12.0);
    // Each response streamed its tokens, the usage block and [DONE].
    assert_eq!(
        value(&s, "http_stream_events", "count") as u64,
        n(&llm.token_events) + 2 * 12
    );
    assert_eq!(
        value(&s, "http_stream_gap", "count") as u64,
        n(&llm.token_events) + 12
    );
    // The first token comes after at least the server's delay.
    assert!(
        value(&s, "http_stream_first_event", "min") >= delay.as_millis() as f64,
        "{}",
        value(&s, "http_stream_first_event", "min")
    );
    assert_eq!(value(&s, "http_stream_first_event", "count"), 12.0);
    // Costs are fractions of a cent and keep their digits.
    let avg_cost = value(&s, "cost_per_request", "avg");
    let server_avg = n(&llm.cost_micro_dollars) as f64 / 1e6 / 12.0;
    assert!(
        (avg_cost - server_avg).abs() <= server_avg * 0.01,
        "{avg_cost} vs {server_avg}"
    );
    // Shown like volley's own metrics: summary, report, compare.
    let printed = text(&out);
    for m in ["tokens_per_request", "cost_per_request", "cache_hits"] {
        assert!(printed.contains(m), "{m} in the summary: {printed}");
    }
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("<code>tokens_per_request</code>"));
    let export = d.join("summary.json");
    let cmp = volley()
        .arg("compare")
        .arg(&export)
        .arg(&export)
        .output_within(RUN_LIMIT);
    assert_eq!(code(&cmp), 0, "{}", text(&cmp));
    assert!(text(&cmp).contains("tokens_per_request"), "{}", text(&cmp));

    // A threshold on a custom metric fails the run like any other.
    let strict = std::fs::read_to_string(&p)
        .unwrap()
        .replace("count>0", "count>1000000");
    let p = d.write("plan.toml", &strict);
    let (out, _) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 99, "{}", text(&out));
}

#[test]
fn multipart_parts_and_file_bodies_arrive_intact() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    // Bytes a naive encoder would trip on: CR, LF, dashes, NUL.
    let mut blob: Vec<u8> = (0..70_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    blob.extend_from_slice(b"\r\n--\r\n--volley-\0");
    std::fs::write(d.join("photo.png"), &blob).unwrap();
    d.write(
        "login.json",
        "{\"email\": \"file{{ vu.id }}@example.test\", \"password\": \"pw\"}",
    );
    let p = plan(
        &d,
        r#"
[scenarios.up]
driver = "http"
executor = "per-vu-iterations"
vus = 2
iterations = 3

[[scenarios.up.requests]]
name = "upload"
method = "POST"
url = "/api/v1/upload"
multipart = { note = "from vu {{ vu.id }}", photo = { path = "photo.png", filename = "me.png" } }
checks = { status = 200 }

[[scenarios.up.requests]]
name = "login from a file"
method = "POST"
url = "/api/v1/session/login"
body_file = "login.json"
checks = { status = 200 }
"#,
        &t.url(),
    );
    let s = run_ok(&d, &p);
    assert_eq!(value(&s, "checks", "fails"), 0.0);
    let f = &t.server.state.flows;
    assert_eq!(n(&f.upload_requests), 6);
    assert_eq!(n(&f.upload_failures), 0);
    assert_eq!(n(&f.logins), 6);
    let parts = f.uploads();
    assert_eq!(parts.len(), 12);
    let sha = |b: &[u8]| {
        Sha256::digest(b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
    };
    let photos: Vec<_> = parts.iter().filter(|p| p.name == "photo").collect();
    assert_eq!(photos.len(), 6);
    for p in photos {
        assert_eq!(p.size, blob.len());
        assert_eq!(p.sha256, sha(&blob));
        assert_eq!(p.filename.as_deref(), Some("me.png"));
        assert_eq!(p.content_type.as_deref(), Some("image/png"));
    }
    let notes: Vec<_> = parts.iter().filter(|p| p.name == "note").collect();
    assert_eq!(notes.len(), 6);
    for vu in 1..=2 {
        let want = sha(format!("from vu {vu}").as_bytes());
        assert_eq!(notes.iter().filter(|p| p.sha256 == want).count(), 3);
    }
}

#[test]
fn honoring_retry_after_keeps_a_vu_at_the_servers_pace() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let limited = |extra: &str, duration: &str| {
        plan(
            &d,
            &format!(
                r#"
[scenarios.limited]
driver = "http"
executor = "constant-vus"
vus = 1
duration = "{duration}"
{extra}

[[scenarios.limited.requests]]
url = "/api/v1/limited"
"#
            ),
            &t.url(),
        )
    };
    let f = &t.server.state.flows;
    let s = run_ok(&d, &limited("on_429 = \"honor\"", "4s"));
    // One answer per second is allowed: a VU that waits the Retry-After
    // sends at most one more (the one told to wait) per window.
    assert!(f.limited_peak() <= 2, "peak {}", f.limited_peak());
    assert_eq!(value(&s, "http_reqs", "count") as u64, f.limited_total());
    let throttled = counter(&s, "http_reqs", &[("status", "429")]);
    assert_eq!(throttled, n(&f.throttled));
    assert!(throttled >= 2, "{throttled}");
    assert_eq!(value(&s, "http_req_throttled", "count") as u64, throttled);

    // Counted only (the default), the same VU hammers the limit.
    f.reset();
    let s = run_ok(&d, &limited("", "1s"));
    assert!(f.limited_peak() > 10, "peak {}", f.limited_peak());
    assert_eq!(
        counter(&s, "http_reqs", &[("status", "429")]),
        n(&f.throttled)
    );
    assert_eq!(value(&s, "http_req_throttled", "count"), 0.0);
}

/// TLS that demands a client certificate signed by the test CA, in front
/// of the embedded target; returns its port.
fn mtls_front(d: &Dir, backend: std::net::SocketAddr, rt: &tokio::runtime::Runtime) -> u16 {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(d.join("ca.pem")).unwrap())
        .unwrap();
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider.clone())
            .build()
            .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
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
    rt.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await
                    && let Ok(mut up) = tokio::net::TcpStream::connect(backend).await
                {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                }
            });
        }
    });
    port
}

#[test]
fn mtls_is_refused_without_the_client_certificate_and_accepted_with_it() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    test_certificates(&d, true);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let port = mtls_front(&d, t.server.addr, &rt);
    let tls_plan = |extra: &str| {
        plan(
            &d,
            &format!(
                r#"
[scenarios.secure]
driver = "http"
executor = "per-vu-iterations"
vus = 2
iterations = 5
http_version = "1.1"
{extra}

[[scenarios.secure.requests]]
url = "/api/v1/health"
"#
            ),
            &format!("https://localhost:{port}"),
        )
    };
    // With the certificate and the private CA: every request answered.
    let s = run_ok(
        &d,
        &tls_plan(
            "ca_file = \"ca.pem\"\nclient_cert = \"client.pem\"\nclient_key = \"client.key\"",
        ),
    );
    assert_eq!(counter(&s, "http_reqs", &[("status", "200")]), 10);
    assert_eq!(t.route("GET /api/v1/health"), 10);
    // Without it the server refuses the session: nothing reaches the API.
    let s = run_ok(&d, &tls_plan("ca_file = \"ca.pem\""));
    assert_eq!(value(&s, "http_req_failed", "passes"), 10.0);
    assert_eq!(counter(&s, "http_reqs", &[("status", "0")]), 10);
    assert_eq!(t.route("GET /api/v1/health"), 10);
    // Without the private CA the server's certificate is not trusted.
    let s = run_ok(
        &d,
        &tls_plan("client_cert = \"client.pem\"\nclient_key = \"client.key\""),
    );
    assert_eq!(
        counter(&s, "http_reqs", &[("error", "tls handshake failed")]),
        10
    );
    assert_eq!(t.route("GET /api/v1/health"), 10);
}

/// The webhook driver takes its TLS files from [defaults] as the HTTP
/// driver does (it ignored them: every delivery failed the handshake).
#[test]
fn webhooks_reach_an_mtls_endpoint_with_the_defaults_certificates() {
    let secret = "whsec_volley_mtls_0123456789";
    let t = Target::start(ServeOptions {
        webhook_secret: Some(secret.into()),
        ..Default::default()
    });
    let d = Dir::new();
    test_certificates(&d, true);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let port = mtls_front(&d, t.server.addr, &rt);
    let p = d.write(
        "plan.toml",
        &format!(
            r#"[defaults]
base_url = "https://localhost:{port}"
ca_file = "ca.pem"
client_cert = "client.pem"
client_key = "client.key"

[scenarios.hooks]
driver = "webhook"
executor = "shared-iterations"
vus = 1
iterations = 5
endpoint = "/webhooks/stripe"
secret = "{secret}"
"#
        ),
    );
    let s = run_ok(&d, &p);
    assert_eq!(
        counter(&s, "webhook_deliveries", &[("kind", "valid")]),
        5,
        "{s}"
    );
    assert_eq!(t.server.state.webhooks.processed(), 5);
    // `volley webhook send` takes the same files as flags.
    let send = |tls: &[&str]| {
        volley()
            .current_dir(&d.path)
            .args(["webhook", "send", "--secret", secret, "--timeout", "10s"])
            .args(["--to", &format!("https://localhost:{port}/webhooks/stripe")])
            .args(tls)
            .output_within(RUN_LIMIT)
    };
    let out = send(&[
        "--ca-file",
        "ca.pem",
        "--client-cert",
        "client.pem",
        "--client-key",
        "client.key",
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(t.server.state.webhooks.processed(), 6);
    // Without the client certificate the endpoint refuses the session.
    let out = send(&["--ca-file", "ca.pem"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    // A missing file names its flag; nothing is sent.
    let out = send(&["--ca-file", "nope.pem"]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(
        text(&out).contains("--ca-file \"nope.pem\""),
        "{}",
        text(&out)
    );
    let out = send(&["--client-cert", "client.pem"]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(text(&out).contains("--client-key"), "{}", text(&out));
    assert_eq!(t.server.state.webhooks.processed(), 6);
}

#[test]
fn bad_flow_input_exits_2_with_its_place_and_sends_nothing() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    d.write(
        "garbage.pem",
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
    );
    d.write("key.pem", "not a key");
    let head = "[scenarios.api]\ndriver = \"http\"\nexecutor = \"per-vu-iterations\"\nvus = 1\niterations = 1\n";
    for (body, want, line) in [
        (
            "[[scenarios.api.requests]]\nmethod = \"POST\"\nurl = \"/api/v1/upload\"\nbody_file = \"missing.json\"\n",
            "cannot read",
            12,
        ),
        (
            "[[scenarios.api.requests]]\nurl = \"/api/v1/health\"\nrecord = { tokens = { json = \"$.n\" } }\n",
            "add [metrics.tokens]",
            11,
        ),
        (
            "[[scenarios.api.requests]]\nurl = \"/api/v1/health\"\nmultipart = { f = { path = \"nope.png\" } }\n",
            "cannot read",
            11,
        ),
        (
            "[[scenarios.api.requests]]\nname = \"user {{ vu.id }}\"\nurl = \"/api/v1/health\"\n",
            "tags = { .. }",
            10,
        ),
        (
            "client_cert = \"garbage.pem\"\nclient_key = \"key.pem\"\n[[scenarios.api.requests]]\nurl = \"/api/v1/health\"\n",
            "does not parse",
            9,
        ),
        (
            "ca_file = \"garbage.pem\"\n[[scenarios.api.requests]]\nurl = \"/api/v1/health\"\n",
            "does not parse",
            9,
        ),
    ] {
        let p = plan(&d, &format!("{head}{body}"), &t.url());
        let (out, _) = run_plan(&d, &p, &[]);
        let msg = text(&out);
        assert_eq!(code(&out), 2, "{body}: {msg}");
        assert!(msg.contains(want), "{body}: want {want:?} in {msg}");
        assert!(msg.contains(&format!("plan.toml:{line}:")), "{body}: {msg}");
    }
    // A kind that does not fit what is recorded, and an unknown kind.
    for (metric, record, want) in [
        (
            "kind = \"trend\"",
            "{ header = \"X-Cache\", equals = \"HIT\" }",
            "equals makes a yes/no value",
        ),
        (
            "kind = \"counter\"",
            "{ duration = true }",
            "duration is a time",
        ),
        ("kind = \"histogram\"", "{ status = true }", "kind"),
        (
            "kind = \"trend\"\nunit = \"bytes\"",
            "{ status = true }",
            "unit",
        ),
        (
            "kind = \"trend\"",
            "{ json = \"$.n\", from = \"events\" }",
            "stream = \"sse\"",
        ),
    ] {
        let p = plan(
            &d,
            &format!(
                "[metrics.m]\n{metric}\n\n{head}[[scenarios.api.requests]]\nurl = \"/api/v1/health\"\nrecord = {{ m = {record} }}\n"
            ),
            &t.url(),
        );
        let (out, _) = run_plan(&d, &p, &[]);
        let msg = text(&out);
        assert_eq!(code(&out), 2, "{metric} {record}: {msg}");
        assert!(
            msg.contains(want),
            "{metric} {record}: want {want:?} in {msg}"
        );
        assert!(msg.contains("plan.toml:"), "{msg}");
    }
    let p = plan(
        &d,
        &format!(
            "[metrics.http_custom]\nkind = \"trend\"\n\n{head}[[scenarios.api.requests]]\nurl = \"/api/v1/health\"\n"
        ),
        &t.url(),
    );
    let (out, _) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(
        text(&out).contains("volley's own metrics"),
        "{}",
        text(&out)
    );
    assert_eq!(t.total(), 0, "nothing was sent");
    assert_eq!(
        t.server.state.flows.upload_requests.load(Ordering::Relaxed),
        0
    );
}

#[test]
fn the_llm_fixture_streams_what_the_server_counted() {
    let t = Target::start(ServeOptions {
        llm_delay: Some(Duration::from_millis(5)),
        ..Default::default()
    });
    let d = Dir::new();
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/plans/llm-load.toml");
    let base = format!("BASE_URL={}", t.url());
    let (out, s) = run_plan(&d, &fixture, &["-e", &base, "-e", "STAGE=1s"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.unwrap();
    let llm = &t.server.state.llm;
    assert!(n(&llm.completed) > 0);
    assert_eq!(
        value(&s, "tokens_total", "count") as u64,
        n(&llm.total_tokens)
    );
    assert_eq!(value(&s, "cache_hits", "passes") as u64, n(&llm.cache_hits));
    assert_eq!(
        counter(&s, "http_reqs", &[("name", "chat")]),
        n(&llm.requests)
    );
}
