//! End to end: the webhook driver against the embedded receiver on loopback.
//! What volley says it delivered is compared with what the receiver counted.

mod common;

use common::*;
use volley::serve::ServeOptions;

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
