//! End to end: the webhook driver against the embedded receiver on loopback.
//! What volley says it delivered is compared with what the receiver counted.

mod common;

use common::*;
use std::collections::BTreeMap;
use volley_serve::ServeOptions;

const SECRET: &str = "whsec_volley_test_0123456789";

fn target(insecure: bool) -> Target {
    Target::start(ServeOptions {
        webhook_secret: Some(SECRET.into()),
        webhook_insecure: insecure,
        ..Default::default()
    })
}

fn plan(dir: &Dir, t: &Target, body: &str) -> std::path::PathBuf {
    dir.write(
        "plan.toml",
        &format!(
            "[scenarios.stripe]\ndriver = \"webhook\"\nendpoint = \"{}/webhooks/stripe\"\nsecret = \"{SECRET}\"\n{body}",
            t.url()
        ),
    )
}

fn count(s: &serde_json::Value, kind: &str) -> u64 {
    counter(s, "webhook_deliveries", &[("kind", kind)])
}

#[test]
fn a_burst_delivers_rate_times_duration_and_the_server_agrees() {
    let t = target(false);
    let d = Dir::new();
    let p = plan(
        &d,
        &t,
        r#"executor = "constant-arrival-rate"
rate = 100
time_unit = "1s"
duration = "4s"
pre_allocated_vus = 20
events = [{ type = "payment_intent.succeeded", weight = 3 }, { type = "invoice.paid", weight = 1 }, { type = "charge.refunded", weight = 1 }]
"#,
    );
    let (out, s) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.unwrap();
    let sent = value(&s, "webhook_deliveries", "count");
    let dropped = value(&s, "dropped_iterations", "count");
    // Every scheduled arrival is a delivery, or dropped for want of a free VU.
    assert_eq!(sent + dropped, 400.0, "{}", text(&out));
    assert!(sent >= 396.0, "delivered {sent} of 400");
    let w = &t.server.state.webhooks;
    assert_eq!(w.received(), sent as u64);
    assert_eq!(w.processed(), sent as u64);
    assert_eq!(w.rejected_total(), 0);
    assert_eq!(count(&s, "valid"), sent as u64);
    for ty in [
        "payment_intent.succeeded",
        "invoice.paid",
        "charge.refunded",
    ] {
        let ours = counter(&s, "webhook_deliveries", &[("event", ty)]);
        assert!(ours > 0, "{ty} was sent");
        assert_eq!(ours, w.processed_of(ty), "{ty}");
    }
    // 3:1:1 weights, within a generous margin.
    let pi = counter(
        &s,
        "webhook_deliveries",
        &[("event", "payment_intent.succeeded")],
    ) as f64;
    assert!(
        (pi / sent - 0.6).abs() < 0.1,
        "payment_intent share {}",
        pi / sent
    );
    assert_eq!(value(&s, "webhook_failed", "passes"), 0.0);
    assert_eq!(value(&s, "webhook_forgery_accepted", "count"), 0.0);
    assert!(value(&s, "webhook_duration", "p(95)") < 500.0);
    // The default threshold on forgeries is in force and passed.
    assert_eq!(
        s["metrics"]["webhook_forgery_accepted"]["thresholds"]["count==0"]["ok"],
        true
    );
    // Bodies are whole Stripe events: well over 1 kB each on the wire.
    assert!(value(&s, "data_sent", "count") > sent * 1000.0);
}

#[test]
fn refused_kinds_are_refused_and_duplicates_processed_once() {
    let t = target(false);
    let d = Dir::new();
    let p = plan(
        &d,
        &t,
        r#"executor = "shared-iterations"
vus = 4
iterations = 600
forged_ratio = 0.15
stale_ratio = 0.1
unsigned_ratio = 0.1
duplicate_ratio = 0.15
out_of_order_ratio = 0.1
"#,
    );
    let (out, s) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.unwrap();
    let w = &t.server.state.webhooks;
    let (forged, stale, unsigned) = (
        count(&s, "forged"),
        count(&s, "stale"),
        count(&s, "unsigned"),
    );
    let (valid, dup, ooo) = (
        count(&s, "valid"),
        count(&s, "duplicate"),
        count(&s, "out_of_order"),
    );
    assert_eq!(forged + stale + unsigned + valid + dup + ooo, 600);
    for (kind, n) in [
        ("forged", forged),
        ("stale", stale),
        ("unsigned", unsigned),
        ("duplicate", dup),
        ("out_of_order", ooo),
    ] {
        assert!(n > 10, "{kind}: only {n} of 600");
    }
    // Each refused kind is refused, for its own reason.
    assert_eq!(w.rejected("signature_mismatch"), forged);
    assert_eq!(w.rejected("timestamp_outside_tolerance"), stale);
    assert_eq!(w.rejected("missing_header"), unsigned);
    assert_eq!(w.rejected_total(), forged + stale + unsigned);
    // Duplicates are acknowledged but processed once.
    assert_eq!(w.duplicates(), dup);
    assert_eq!(w.processed(), valid + ooo);
    assert_eq!(w.accepted(), valid + ooo + dup);
    // Every answer was the one its kind must get.
    assert_eq!(value(&s, "webhook_failed", "passes"), 0.0);
    assert_eq!(value(&s, "webhook_failed", "fails"), 600.0);
    assert_eq!(value(&s, "webhook_forgery_accepted", "count"), 0.0);
    assert_eq!(
        counter(
            &s,
            "webhook_deliveries",
            &[("kind", "forged"), ("status", "400")]
        ),
        forged
    );
}

#[test]
fn an_endpoint_that_takes_forgeries_fails_the_run() {
    let t = target(true);
    let d = Dir::new();
    let p = plan(
        &d,
        &t,
        r#"executor = "shared-iterations"
vus = 2
iterations = 100
forged_ratio = 0.2
stale_ratio = 0.1
unsigned_ratio = 0.1
"#,
    );
    let (out, s) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 99, "{}", text(&out));
    let s = s.unwrap();
    let refused_kinds = count(&s, "forged") + count(&s, "stale") + count(&s, "unsigned");
    assert!(refused_kinds > 0);
    // The insecure receiver took every one of them.
    assert_eq!(
        value(&s, "webhook_forgery_accepted", "count"),
        refused_kinds as f64
    );
    assert_eq!(t.server.state.webhooks.accepted(), 100);
    assert_eq!(
        s["metrics"]["webhook_forgery_accepted"]["thresholds"]["count==0"]["ok"],
        false
    );
    assert_eq!(value(&s, "webhook_failed", "passes"), refused_kinds as f64);
    assert!(String::from_utf8_lossy(&out.stdout).contains("webhook_forgery_accepted"));
}

#[test]
fn a_plan_can_override_the_forgery_threshold() {
    let t = target(true);
    let d = Dir::new();
    let p = plan(
        &d,
        &t,
        r#"executor = "shared-iterations"
vus = 1
iterations = 20
forged_ratio = 0.5

[thresholds]
webhook_forgery_accepted = ["count<1000"]
"#,
    );
    let (out, s) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(value(&s.unwrap(), "webhook_forgery_accepted", "count") > 0.0);
}

#[test]
fn rotating_secrets_sign_with_each() {
    // The receiver knows only the new secret; the old one comes first.
    let t = target(false);
    let d = Dir::new();
    let p = d.write(
        "plan.toml",
        &format!(
            r#"[defaults]
base_url = "{}"

[scenarios.rotate]
driver = "webhook"
executor = "shared-iterations"
vus = 1
iterations = 10
endpoint = "/webhooks/stripe"
secret = ["whsec_old_one", "{SECRET}"]
"#,
            t.url()
        ),
    );
    let (out, s) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(count(&s.unwrap(), "valid"), 10);
    assert_eq!(t.server.state.webhooks.processed(), 10);
}

#[test]
fn user_templates_take_values_from_feeders() {
    let t = target(false);
    let d = Dir::new();
    d.write(
        "data/customers.csv",
        "customer,plan\ncus_A1,pro\ncus_B2,team\n",
    );
    d.write(
        "events/order.shipped.json",
        r#"{
  "id": "{{ event.id }}",
  "object": "event",
  "api_version": "2024-06-20",
  "created": "{{ event.created }}",
  "data": { "object": { "id": "ord_{{ iter }}", "object": "order", "customer": "{{ data.customers.customer }}", "amount": "{{ amount }}" } },
  "livemode": false,
  "pending_webhooks": 1,
  "request": { "id": null, "idempotency_key": null },
  "type": "order.shipped"
}"#,
    );
    let p = plan(
        &d,
        &t,
        r#"executor = "shared-iterations"
vus = 2
iterations = 30
templates = "events"
events = [{ type = "order.shipped", weight = 2 }, { type = "invoice.paid" }]

[data.customers]
file = "data/customers.csv"
"#,
    );
    let (out, s) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.unwrap();
    let w = &t.server.state.webhooks;
    let shipped = counter(&s, "webhook_deliveries", &[("event", "order.shipped")]);
    assert!(shipped > 0);
    assert_eq!(w.processed_of("order.shipped"), shipped);
    assert_eq!(w.processed_of("invoice.paid"), 30 - shipped);
}

#[test]
fn bad_webhook_plans_are_refused_with_the_fix() {
    let d = Dir::new();
    let cases: &[(&str, &str)] = &[
        ("secret = \"\"\n", "secret is empty"),
        ("secret = 5\n", "a list of strings"),
        (
            "secret = \"s\"\nevents = [{ type = \"payment_intent.suceeded\" }]\n",
            "known: charge.refunded",
        ),
        (
            "secret = \"s\"\nforged_ratio = 0.7\nduplicate_ratio = 0.5\n",
            "add up to",
        ),
        ("secret = \"s\"\nstale_ratio = 2\n", "between 0 and 1"),
        ("secret = \"s\"\ntemplates = \"nowhere\"\n", "nowhere"),
        ("secret = \"s\"\nsigned = true\n", "unknown key"),
    ];
    for (extra, want) in cases {
        let p = d.write(
            "bad.toml",
            &format!(
                "[scenarios.w]\ndriver = \"webhook\"\nexecutor = \"shared-iterations\"\niterations = 1\nendpoint = \"http://127.0.0.1:1/webhooks/stripe\"\n{extra}"
            ),
        );
        let out = volley().arg("validate").arg(&p).output_within(RUN_LIMIT);
        assert_eq!(code(&out), 2, "{extra}: {}", text(&out));
        let msg = text(&out);
        assert!(msg.contains("bad.toml:"), "{extra}: {msg}");
        assert!(msg.contains(want), "{extra}: want {want:?} in {msg}");
    }
    // No secret at all: the error says where to put it.
    let p = d.write(
        "nosecret.toml",
        "[scenarios.w]\ndriver = \"webhook\"\nexecutor = \"shared-iterations\"\niterations = 1\nendpoint = \"http://127.0.0.1:1/x\"\n",
    );
    let out = volley().arg("validate").arg(&p).output_within(RUN_LIMIT);
    assert_eq!(code(&out), 2);
    assert!(
        text(&out).contains("STRIPE_WEBHOOK_SECRET"),
        "{}",
        text(&out)
    );
}

#[test]
fn the_sign_helper_matches_an_independent_vector() {
    let d = Dir::new();
    let payload = d.write("event.json", r#"{"id":"evt_test","object":"event"}"#);
    // printf '%s' '1700000000.{"id":"evt_test","object":"event"}' | openssl dgst -sha256 -hmac whsec_test_secret
    let out = volley()
        .args([
            "webhook",
            "sign",
            "--secret",
            "whsec_test_secret",
            "--timestamp",
            "1700000000",
            "--payload",
        ])
        .arg(&payload)
        .output_within(RUN_LIMIT);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Stripe-Signature: t=1700000000,v1=8042376f6ca064adbe037642a718227dfd59047137eb49497a54c49eb0cfb724"
    );
}

#[test]
fn the_send_helper_delivers_one_event() {
    let t = target(false);
    let url = format!("{}/webhooks/stripe", t.url());
    let send = |kind: &str| {
        volley()
            .args([
                "webhook",
                "send",
                "--to",
                &url,
                "--secret",
                SECRET,
                "--event",
                "invoice.paid",
                "--kind",
                kind,
            ])
            .env_remove("STRIPE_WEBHOOK_SECRET")
            .output_within(RUN_LIMIT)
    };
    let ok = send("valid");
    assert_eq!(code(&ok), 0, "{}", text(&ok));
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("200"));
    let forged = send("forged");
    assert_eq!(
        code(&forged),
        0,
        "a refused forgery is the right answer: {}",
        text(&forged)
    );
    assert!(String::from_utf8_lossy(&forged.stdout).starts_with("400"));
    let w = &t.server.state.webhooks;
    assert_eq!(w.processed_of("invoice.paid"), 1);
    assert_eq!(w.rejected("signature_mismatch"), 1);
}

#[test]
fn an_unreachable_endpoint_fails_every_delivery() {
    // A port nobody listens on: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = Dir::new();
    let p = d.write(
        "plan.toml",
        &format!(
            r#"[scenarios.down]
driver = "webhook"
executor = "shared-iterations"
vus = 1
iterations = 5
endpoint = "http://127.0.0.1:{port}/webhooks/stripe"
secret = "{SECRET}"
forged_ratio = 0.5

[thresholds]
webhook_failed = ["rate<0.5"]
"#
        ),
    );
    let (out, s) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 99, "{}", text(&out));
    let s = s.unwrap();
    assert_eq!(value(&s, "webhook_failed", "passes"), 5.0);
    assert_eq!(
        counter(&s, "webhook_deliveries", &[("error", "connection refused")]),
        5
    );
    // No answer is not an accepted forgery.
    assert_eq!(value(&s, "webhook_forgery_accepted", "count"), 0.0);
}

// ---- The other signing schemes ----------------------------------------------

use std::io::{BufRead as _, Read as _, Write as _};
use std::process::{Child, Command, Stdio};
use volley_protocols::webhook::scheme::{SCHEMES, Scheme};

/// Valid for every scheme: Standard Webhooks wants whsec_ + base64.
const ANY_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// How long a peer may live: far beyond any run here.
const PEER_LIMIT: u64 = 240;

/// A webhook receiver built on a provider's own verifier (tests/peers/):
/// stripe-python, standardwebhooks, slack_sdk, Shopify's documented HMAC
/// (Python), @octokit/webhooks-methods (Node). `.ci/run` installs them.
struct Peer {
    child: Child,
    port: u16,
    _watchdog: KillAfter,
}

impl Peer {
    fn start(scheme: Scheme, secret: &str) -> Peer {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers");
        let mut cmd = if scheme == Scheme::Github {
            let mut c = Command::new("node");
            c.arg(dir.join("github_peer.mjs"));
            c
        } else {
            let mut c = Command::new("python3");
            c.arg(dir.join("webhook_peer.py"))
                .args(["--scheme", scheme.name()]);
            // Where .ci/run installs the packages; what is installed
            // elsewhere is found too.
            let mut path = dir.join("python_modules").into_os_string();
            if let Some(p) = std::env::var_os("PYTHONPATH") {
                path.push(":");
                path.push(p);
            }
            c.env("PYTHONPATH", path);
            c
        };
        cmd.args(["--secret", secret, "--lifetime", &PEER_LIMIT.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let what = format!("{cmd:?}");
        let mut child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start the {} peer ({what}): {e}; it needs {} (.ci/run installs what the peers need)",
                scheme.name(),
                if scheme == Scheme::Github { "Node.js" } else { "python3" }
            )
        });
        let watchdog = KillAfter::new(child.id(), PEER_LIMIT);
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_default();
        let port = line
            .strip_prefix("listening ")
            .and_then(|p| p.trim().parse().ok());
        let Some(port) = port else {
            let _ = child.kill();
            let _ = child.wait();
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!(
                "the {} peer did not start ({what}): {}",
                scheme.name(),
                if err.is_empty() { line } else { err }
            );
        };
        Peer {
            child,
            port,
            _watchdog: watchdog,
        }
    }

    /// What the peer counted: GET /stats.
    fn stats(&self) -> serde_json::Value {
        let mut s =
            std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("the peer listens");
        s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        write!(
            s,
            "GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).expect("the peer answers");
        let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        serde_json::from_str(body).unwrap_or_else(|e| panic!("stats: {e}: {answer}"))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Drive `url` with every delivery kind the scheme has (stale only where
/// there is a timestamp) and return volley's counts per kind, keyed by tag.
fn drive(scheme: Scheme, url: &str, d: &Dir) -> BTreeMap<&'static str, u64> {
    let stale = if scheme.has_timestamp() {
        "stale_ratio = 0.1\n"
    } else {
        ""
    };
    let p = d.write(
        "plan.toml",
        &format!(
            r#"[scenarios.hooks]
driver = "webhook"
scheme = "{}"
endpoint = "{url}"
secret = "{ANY_SECRET}"
executor = "shared-iterations"
vus = 4
iterations = 300
forged_ratio = 0.15
{stale}unsigned_ratio = 0.1
duplicate_ratio = 0.15
out_of_order_ratio = 0.1
"#,
            scheme.name()
        ),
    );
    let (out, s) = run_plan(d, &p, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.unwrap();
    // Every answer was the one its kind must get; no forgery was taken.
    assert_eq!(value(&s, "webhook_failed", "passes"), 0.0, "{}", text(&out));
    assert_eq!(value(&s, "webhook_forgery_accepted", "count"), 0.0);
    let counts: BTreeMap<&str, u64> = [
        "valid",
        "duplicate",
        "out_of_order",
        "forged",
        "stale",
        "unsigned",
    ]
    .into_iter()
    .map(|k| (k, count(&s, k)))
    .collect();
    assert_eq!(counts.values().sum::<u64>(), 300, "{counts:?}");
    for (k, n) in &counts {
        let expected = *k != "stale" || scheme.has_timestamp();
        assert_eq!(*n > 10, expected, "{}: {k} {n} of 300", scheme.name());
    }
    counts
}

/// The peer's counts equal volley's, kind by kind.
fn agree(scheme: Scheme, v: &BTreeMap<&str, u64>, peer: &serde_json::Value) {
    let n = |k: &str| peer[k].as_u64().unwrap_or(0);
    let rejected = |r: &str| peer["rejected"][r].as_u64().unwrap_or(0);
    let name = scheme.name();
    assert_eq!(n("errors"), 0, "{name}: {peer}");
    assert_eq!(n("received"), 300, "{name}: {peer}");
    assert_eq!(
        n("accepted"),
        v["valid"] + v["duplicate"] + v["out_of_order"],
        "{name}: {v:?} {peer}"
    );
    assert_eq!(
        n("rejected_total"),
        v["forged"] + v["stale"] + v["unsigned"],
        "{name}: {v:?} {peer}"
    );
    assert_eq!(n("duplicates"), v["duplicate"], "{name}: {v:?} {peer}");
    assert_eq!(
        n("processed"),
        v["valid"] + v["out_of_order"],
        "{name}: {peer}"
    );
    assert_eq!(
        rejected("signature_mismatch"),
        v["forged"],
        "{name}: {peer}"
    );
    assert_eq!(
        rejected("timestamp_outside_tolerance"),
        v["stale"],
        "{name}: {peer}"
    );
    assert_eq!(rejected("missing_header"), v["unsigned"], "{name}: {peer}");
}

fn against_the_official_verifier(scheme: Scheme) {
    let peer = Peer::start(scheme, ANY_SECRET);
    let d = Dir::new();
    let url = format!("http://127.0.0.1:{}/hooks", peer.port);
    let v = drive(scheme, &url, &d);
    agree(scheme, &v, &peer.stats());
}

#[test]
fn stripe_python_verifies_stripe_deliveries() {
    against_the_official_verifier(Scheme::Stripe);
}

#[test]
fn octokit_verifies_github_deliveries() {
    against_the_official_verifier(Scheme::Github);
}

#[test]
fn standardwebhooks_verifies_standard_deliveries() {
    against_the_official_verifier(Scheme::Standard);
}

#[test]
fn shopifys_documented_hmac_verifies_shopify_deliveries() {
    against_the_official_verifier(Scheme::Shopify);
}

#[test]
fn slack_sdk_verifies_slack_deliveries() {
    against_the_official_verifier(Scheme::Slack);
}

#[test]
fn the_embedded_receiver_verifies_every_scheme_on_its_own_route() {
    let t = Target::start(ServeOptions {
        webhook_secret: Some(ANY_SECRET.into()),
        ..Default::default()
    });
    for scheme in SCHEMES {
        let d = Dir::new();
        let url = format!("{}/webhooks/{}", t.url(), scheme.name());
        let v = drive(scheme, &url, &d);
        let w = t.server.state.webhooks.of(scheme);
        agree(scheme, &v, &w.to_json());
    }
    // Each route counted its own scheme's deliveries only.
    assert_eq!(
        t.server.state.webhooks.received(),
        300 * SCHEMES.len() as u64
    );
}

#[test]
fn the_event_type_travels_as_each_scheme_says_it() {
    let t = Target::start(ServeOptions {
        webhook_secret: Some(ANY_SECRET.into()),
        ..Default::default()
    });
    for (scheme, events) in [
        (Scheme::Github, ["push", "issues"]),
        (Scheme::Shopify, ["orders/create", "products/update"]),
        (Scheme::Slack, ["app_mention", "message"]),
        (Scheme::Standard, ["user.created", "invoice.paid"]),
    ] {
        let d = Dir::new();
        let p = d.write(
            "plan.toml",
            &format!(
                r#"[scenarios.types]
driver = "webhook"
scheme = "{}"
endpoint = "{}/webhooks/{}"
secret = "{ANY_SECRET}"
executor = "shared-iterations"
vus = 2
iterations = 40
events = [{{ type = "{}" }}, {{ type = "{}" }}]
"#,
                scheme.name(),
                t.url(),
                scheme.name(),
                events[0],
                events[1]
            ),
        );
        let (out, s) = run_plan(&d, &p, &[]);
        assert_eq!(code(&out), 0, "{}", text(&out));
        let s = s.unwrap();
        let w = t.server.state.webhooks.of(scheme);
        for ty in events {
            let ours = counter(&s, "webhook_deliveries", &[("event", ty)]);
            assert!(ours > 0, "{ty}");
            // The receiver read the type where the scheme puts it.
            assert_eq!(w.processed_of(ty), ours, "{}: {ty}", scheme.name());
        }
    }
}

#[test]
fn bad_scheme_plans_are_refused_where_written() {
    let d = Dir::new();
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "scheme = \"svix\"\nsecret = \"s\"\n",
            "bad.toml:6:10",
            &[
                "unknown scheme \"svix\"",
                "stripe, github, standard, shopify, slack",
            ],
        ),
        (
            "scheme = \"standard\"\nsecret = \"whsec_volley_test\"\n",
            "bad.toml:7:10",
            &["whsec_ followed by the key in base64", "not base64"],
        ),
        (
            "scheme = \"github\"\nsecret = \"s\"\nstale_ratio = 0.1\n",
            "bad.toml:8:15",
            &["carry no timestamp", "remove stale_ratio"],
        ),
        (
            "scheme = \"shopify\"\nsecret = \"s\"\nstale_ratio = 1e12\n",
            "bad.toml:8:15",
            &["carry no timestamp"],
        ),
        (
            "scheme = \"shopify\"\nsecret = \"s\"\ntolerance = \"5m\"\n",
            "bad.toml:8:13",
            &["no tolerance to set"],
        ),
        (
            "scheme = \"slack\"\nsecret = [\"a\", \"b\"]\n",
            "bad.toml:7:10",
            &["one secret", "X-Slack-Signature"],
        ),
        (
            "scheme = \"github\"\nsecret = \"s\"\nheaders = { \"x-github-delivery\" = \"1\" }\n",
            "bad.toml:8:35",
            &["the driver sets X-GitHub-Delivery"],
        ),
        (
            "scheme = \"github\"\nsecret = \"s\"\nevents = [{ type = \"payment_intent.succeeded\" }]\n",
            "bad.toml:8:20",
            &[
                "no GitHub template",
                "known: issues, pull_request, push",
                "payment_intent.succeeded.json",
            ],
        ),
        (
            "scheme = 7\nsecret = \"s\"\n",
            "bad.toml:6:10",
            &["expected a string"],
        ),
    ];
    for (extra, at, wants) in cases {
        let p = d.write(
            "bad.toml",
            &format!(
                "[scenarios.w]\ndriver = \"webhook\"\nexecutor = \"shared-iterations\"\niterations = 1\nendpoint = \"http://127.0.0.1:1/hooks\"\n{extra}"
            ),
        );
        let out = volley().arg("validate").arg(&p).output_within(RUN_LIMIT);
        assert_eq!(code(&out), 2, "{extra}: {}", text(&out));
        let msg = text(&out);
        assert!(msg.contains(at), "{extra}: want {at} in {msg}");
        for want in *wants {
            assert!(msg.contains(want), "{extra}: want {want:?} in {msg}");
        }
    }
    // A zero stale ratio asks for nothing stale: accepted.
    let p = d.write(
        "ok.toml",
        "[scenarios.w]\ndriver = \"webhook\"\nexecutor = \"shared-iterations\"\niterations = 1\nendpoint = \"http://127.0.0.1:1/hooks\"\nscheme = \"github\"\nsecret = \"s\"\nstale_ratio = 0\n",
    );
    let out = volley().arg("validate").arg(&p).output_within(RUN_LIMIT);
    assert_eq!(code(&out), 0, "{}", text(&out));
}

#[test]
fn the_sign_helper_signs_every_scheme_as_its_library_does() {
    let d = Dir::new();
    let sign = |args: &[&str], body: &str| {
        let payload = d.write("body", body);
        volley()
            .args(["webhook", "sign", "--payload"])
            .arg(&payload)
            .args(args)
            .env_remove("STRIPE_WEBHOOK_SECRET")
            .env_remove("GITHUB_WEBHOOK_SECRET")
            .output_within(RUN_LIMIT)
    };
    // Vectors from the providers' libraries (tests/peers/ installs them):
    // @octokit/webhooks-methods sign("It's a Secret to Everybody", "Hello, World!"),
    // the example of GitHub's docs.
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &[
                "--scheme",
                "github",
                "--secret",
                "It's a Secret to Everybody",
            ],
            "Hello, World!",
            "X-Hub-Signature-256: sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        ),
        // standardwebhooks.Webhook(secret).sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
        (
            &[
                "--scheme",
                "standard",
                "--secret",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "--id",
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                "--timestamp",
                "1614265330",
            ],
            r#"{"test": 2432232314}"#,
            "webhook-id: msg_p5jXN8AQM9LWM0D4loKWxJek\nwebhook-timestamp: 1614265330\nwebhook-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        ),
        // base64.b64encode(hmac.new(b"hush", body, sha256).digest()), as Shopify's docs compute it
        (
            &["--scheme", "shopify", "--secret", "hush"],
            r#"{"id":"evt_test","object":"event"}"#,
            "X-Shopify-Hmac-Sha256: Z3rSOdt652m4AqThbPp+bkJcHut0VS6qyaNgmDxWvVs=",
        ),
        // slack_sdk SignatureVerifier(secret).generate_signature(timestamp="1531420618", body=...)
        (
            &[
                "--scheme",
                "slack",
                "--secret",
                "8f742231b10e8888abcd99yyyzzz85a5",
                "--timestamp",
                "1531420618",
            ],
            "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c",
            "X-Slack-Request-Timestamp: 1531420618\nX-Slack-Signature: v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
        ),
    ];
    for (args, body, want) in cases {
        let out = sign(args, body);
        assert_eq!(code(&out), 0, "{args:?}: {}", text(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            *want,
            "{args:?}"
        );
    }
    // The secret may come from the scheme's variable.
    let payload = d.write("body", "Hello, World!");
    let out = volley()
        .args(["webhook", "sign", "--scheme", "github", "--payload"])
        .arg(&payload)
        .env("GITHUB_WEBHOOK_SECRET", "It's a Secret to Everybody")
        .env("STRIPE_WEBHOOK_SECRET", "whsec_not_this_one")
        .output_within(RUN_LIMIT);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("sha256=757107ea"));
    // Refused, with the fix.
    let refusals: &[(&[&str], &[&str])] = &[
        (
            &["--scheme", "svix", "--secret", "s"],
            &[
                "invalid value 'svix'",
                "stripe, github, standard, shopify, slack",
            ],
        ),
        (
            &["--scheme", "standard", "--secret", "whsec_volley_test"],
            &["--secret: a Standard Webhooks secret is whsec_ followed by the key in base64"],
        ),
        (
            &["--scheme", "github", "--secret", "s", "--timestamp", "1"],
            &["GitHub signs no timestamp"],
        ),
        (
            &["--scheme", "shopify", "--secret", "a,b"],
            &["Shopify sends one signature"],
        ),
        (
            &["--scheme", "slack"],
            &["--secret is required", "SLACK_SIGNING_SECRET"],
        ),
    ];
    for (args, wants) in refusals {
        let out = sign(args, "{}");
        assert_eq!(code(&out), 2, "{args:?}: {}", text(&out));
        for want in *wants {
            assert!(
                text(&out).contains(want),
                "{args:?}: want {want:?} in {}",
                text(&out)
            );
        }
    }
}

#[test]
fn the_send_helper_delivers_every_scheme() {
    let t = Target::start(ServeOptions {
        webhook_secret: Some(ANY_SECRET.into()),
        ..Default::default()
    });
    for scheme in SCHEMES {
        let url = format!("{}/webhooks/{}", t.url(), scheme.name());
        let send = |kind: &str| {
            volley()
                .args(["webhook", "send", "--scheme", scheme.name(), "--to", &url])
                .args(["--secret", ANY_SECRET, "--kind", kind])
                .output_within(RUN_LIMIT)
        };
        let ok = send("valid");
        assert_eq!(code(&ok), 0, "{}", text(&ok));
        assert!(String::from_utf8_lossy(&ok.stdout).starts_with("200"));
        // The scheme's headers are shown.
        assert!(
            text(&ok).contains(&format!("{}: ", scheme.signature_header())),
            "{}",
            text(&ok)
        );
        let forged = send("forged");
        assert_eq!(code(&forged), 0, "{}", text(&forged));
        assert!(String::from_utf8_lossy(&forged.stdout).starts_with("400"));
        let stale = send("stale");
        if scheme.has_timestamp() {
            assert_eq!(code(&stale), 0, "{}", text(&stale));
        } else {
            assert_eq!(code(&stale), 2, "{}", text(&stale));
            assert!(text(&stale).contains("carry no timestamp"));
        }
        let w = t.server.state.webhooks.of(scheme);
        assert_eq!(w.processed(), 1, "{}", scheme.name());
        assert_eq!(w.rejected("signature_mismatch"), 1, "{}", scheme.name());
        assert_eq!(
            w.rejected("timestamp_outside_tolerance"),
            u64::from(scheme.has_timestamp())
        );
    }
}
