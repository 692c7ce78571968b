//! `[setup]` and `[teardown]` against the embedded target: setup runs once
//! before any VU and what it captured reaches every VU, teardown runs once
//! after the last VU (also after Ctrl-C), a failed setup starts no VU, and
//! their requests stay out of the scenarios' numbers. Every count is
//! compared with the server's own.

mod common;

use common::*;
use std::sync::atomic::Ordering;
use std::time::Duration;
use volley_serve::ServeOptions;

fn n(c: &std::sync::atomic::AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// A plan on the target: `[setup]` logs in and captures the session
/// token, `SCENARIO` reads it as a Bearer token, `[teardown]` logs out.
fn plan(d: &Dir, t: &Target, setup: &str, scenario: &str, rest: &str) -> std::path::PathBuf {
    d.write(
        "plan.toml",
        &format!(
            r#"[defaults]
base_url = "{}"

[setup]
{setup}

[scenarios.api]
driver = "http"
{scenario}

[[scenarios.api.requests]]
name = "me"
url = "/api/v1/session/me"
headers = {{ Authorization = "Bearer {{{{ setup.token }}}}" }}

[teardown]
[[teardown.requests]]
name = "logout"
method = "POST"
url = "/api/v1/session/logout"
headers = {{ Authorization = "Bearer {{{{ setup.token }}}}" }}
{rest}
"#,
            t.url()
        ),
    )
}

const LOGIN: &str = r#"[[setup.requests]]
name = "login"
method = "POST"
url = "/api/v1/session/login"
json = { email = "admin@example.test", password = "secret" }
captures = { token = "$.token" }
"#;

#[test]
fn setup_runs_once_before_the_vus_and_every_vu_sends_what_it_captured() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let p = plan(
        &d,
        &t,
        LOGIN,
        "executor = \"per-vu-iterations\"\nvus = 6\niterations = 5",
        // Setup's and teardown's requests are not the scenario's.
        "[thresholds]\nhttp_reqs = [\"count==30\"]\nhttp_req_failed = [\"rate==0\"]\n\"http_reqs{group:::setup}\" = [\"count==1\"]\n\"http_reqs{group:::teardown}\" = [\"count==1\"]\n",
    );
    // Two workers: the values reach VUs on every thread.
    let (out, s) = run_plan(&d, &p, &["--workers", "2"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.expect("a summary");
    let f = &t.server.state.flows;
    // One login; every VU request carried its token (a request before
    // setup, or after teardown's logout, would be refused).
    assert_eq!(n(&f.logins), 1);
    assert_eq!(n(&f.authorised), 30);
    assert_eq!(n(&f.unauthorised), 0);
    assert_eq!(n(&f.logouts), 1);
    assert_eq!(value(&s, "http_reqs", "count"), 30.0);
    assert_eq!(counter(&s, "http_reqs", &[("scenario", "api")]), 30);
    assert_eq!(counter(&s, "http_reqs", &[("group", "::setup")]), 1);
    assert_eq!(counter(&s, "http_reqs", &[("group", "::teardown")]), 1);
    assert!(text(&out).contains("SETUP AND TEARDOWN"), "{}", text(&out));
}

#[test]
fn teardown_runs_once_after_ctrl_c_and_the_summary_is_written() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let p = plan(
        &d,
        &t,
        LOGIN,
        "executor = \"constant-vus\"\nvus = 2\nduration = \"60s\"\nthink_time = \"10ms\"",
        "",
    );
    let (out, s) = run_signalled(&d, &p, &[Duration::from_millis(1500)]);
    assert_eq!(code(&out), 130, "{}", text(&out));
    let f = &t.server.state.flows;
    assert_eq!(n(&f.logins), 1);
    assert_eq!(n(&f.logouts), 1, "{}", text(&out));
    assert_eq!(n(&f.unauthorised), 0);
    assert!(n(&f.authorised) > 0);
    assert_eq!(
        counter(&s, "http_reqs", &[("scenario", "api")]),
        n(&f.authorised)
    );
    assert_eq!(counter(&s, "http_reqs", &[("group", "::teardown")]), 1);
}

#[test]
fn a_failed_setup_exits_1_and_no_vu_sends_anything() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let scenario = "executor = \"per-vu-iterations\"\nvus = 2\niterations = 3";
    for (setup, says) in [
        // Refused: 401 is not 2xx.
        (
            LOGIN.replace(", password = \"secret\"", ""),
            "request \"login\" (POST) was answered 401, not 2xx",
        ),
        // Answered, but without the value to capture.
        (
            LOGIN.replace("$.token", "$.nope"),
            "was answered 200 without the value it captures as \"token\"",
        ),
        // Nothing listens there.
        (
            LOGIN.replace(
                "url = \"/api/v1/session/login\"",
                "url = \"http://127.0.0.1:9/login\"",
            ),
            "failed: connection refused",
        ),
    ] {
        t.server.state.flows.reset();
        let p = plan(&d, &t, &setup, scenario, "");
        let (out, s) = run_plan(&d, &p, &[]);
        assert_eq!(code(&out), 1, "{}", text(&out));
        assert!(
            text(&out).contains("[setup] failed, so no VU started"),
            "{}",
            text(&out)
        );
        assert!(text(&out).contains(says), "{}", text(&out));
        assert!(s.is_none(), "no run, no summary");
        let f = &t.server.state.flows;
        assert_eq!(n(&f.authorised) + n(&f.unauthorised), 0);
        assert_eq!(n(&f.logouts), 0, "no teardown after a failed setup");
    }
    // A status the request accepts is not a failure.
    t.server.state.flows.reset();
    let accepted = "[[setup.requests]]\nname = \"probe\"\nurl = \"/api/v1/session/me\"\nchecks = { status = 401 }\n";
    let p = d.write(
        "plan.toml",
        &format!(
            "[defaults]\nbase_url = \"{}\"\n[setup]\n{accepted}\n[scenarios.api]\ndriver = \"http\"\n{scenario}\n[[scenarios.api.requests]]\nurl = \"/api/v1/session/me\"\nchecks = {{ status = 401 }}\n",
            t.url()
        ),
    );
    let (out, _) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(n(&t.server.state.flows.unauthorised), 7);
}

#[test]
fn a_slow_teardown_is_cut_at_its_max_duration() {
    let t = Target::start(ServeOptions {
        latency: Some(volley_protocols::duration::DurRange::parse("1s").unwrap()),
        ..Default::default()
    });
    let d = Dir::new();
    let p = d.write(
        "plan.toml",
        &format!(
            "[defaults]\nbase_url = \"{}\"\n[scenarios.api]\ndriver = \"http\"\nexecutor = \"per-vu-iterations\"\nvus = 1\niterations = 1\n[[scenarios.api.requests]]\nurl = \"/api/v1/health\"\n[teardown]\nmax_duration = \"100ms\"\n[[teardown.requests]]\nurl = \"/api/v1/health\"\n",
            t.url()
        ),
    );
    let (out, s) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        text(&out).contains("[teardown] failed: did not finish within max_duration = \"100ms\""),
        "{}",
        text(&out)
    );
    assert!(s.is_some(), "the summary stands");
}

#[test]
fn bad_setup_input_exits_2_with_its_place() {
    let d = Dir::new();
    let base = "[scenarios.api]\ndriver = \"http\"\nexecutor = \"per-vu-iterations\"\nvus = 1\niterations = 1\n";
    for (text_, says) in [
        (
            format!(
                "[setup]\n[[setup.requests]]\nurl = \"http://127.0.0.1:9/\"\ncaptures = {{ token = \"$.t\" }}\n{base}[[scenarios.api.requests]]\nurl = \"http://127.0.0.1:9/{{{{ setup.tokn }}}}\"\n"
            ),
            "plan.toml:11:7: setup.tokn is never captured by [setup]; it captures: token",
        ),
        (
            format!(
                "{base}[[scenarios.api.requests]]\nurl = \"http://127.0.0.1:9/{{{{ setup.token }}}}\"\n"
            ),
            "setup.token is never captured by [setup]; it captures: none",
        ),
        (
            format!(
                "[setup]\n[[setup.requests]]\nurl = \"http://127.0.0.1:9/{{{{ setup.x }}}}\"\n{base}[[scenarios.api.requests]]\nurl = \"http://127.0.0.1:9/\"\n"
            ),
            "within [setup] read its own captures as vars.x",
        ),
        (
            format!(
                "[setup]\n[[setup.requests]]\nurl = \"http://127.0.0.1:9/\"\nweight = 2\n{base}[[scenarios.api.requests]]\nurl = \"http://127.0.0.1:9/\"\n"
            ),
            "plan.toml:4:10: [setup] runs each request once, in order: remove weight",
        ),
        (
            format!(
                "[teardown]\nmax_duration = \"0s\"\n[[teardown.requests]]\nurl = \"http://127.0.0.1:9/\"\n{base}[[scenarios.api.requests]]\nurl = \"http://127.0.0.1:9/\"\n"
            ),
            "plan.toml:2:16: [teardown] max_duration must be above 0",
        ),
        (
            format!(
                "[setup]\nflow = \"weighted\"\n[[setup.requests]]\nurl = \"http://127.0.0.1:9/\"\n{base}[[scenarios.api.requests]]\nurl = \"http://127.0.0.1:9/\"\n"
            ),
            "[setup] runs its requests once, in order: remove flow = \"weighted\"",
        ),
        (
            format!(
                "{base}[[scenarios.api.requests]]\nurl = \"http://127.0.0.1:9/\"\ngroup = \"setup\"\n"
            ),
            "plan.toml:8:9: group \"setup\" is the group of [setup]'s requests",
        ),
        // The advice reads the error's kind: it was missing while it
        // matched serde's "unknown field", which the message no longer says.
        (
            format!(
                "[setup]\nurl = \"http://127.0.0.1:9/\"\n[[setup.requests]]\nurl = \"http://127.0.0.1:9/\"\n{base}[[scenarios.api.requests]]\nurl = \"http://127.0.0.1:9/\"\n"
            ),
            "plan.toml:2:1: [setup]: unknown key `url`, expected one of `flow`, `requests`, `base_url`, `headers`, `timeout`, `insecure_skip_tls_verify`, `http_version`, `client_cert`, `client_key`, `ca_file`, `cookies`, `reset_cookies`, `max_redirects`, `on_429`, `max_retry_after`, `vus_per_connection`; [setup] takes the HTTP driver's keys and max_duration",
        ),
    ] {
        let p = d.write("plan.toml", &text_);
        let out = volley().arg("validate").arg(&p).output_within(RUN_LIMIT);
        assert_eq!(code(&out), 2, "{text_}\n{}", text(&out));
        assert!(text(&out).contains(says), "{text_}\n{}", text(&out));
    }
}
