//! What a k6, oha or hey user types on day one: `volley run URL -c N -z D`,
//! schedule overrides of any plan, `${VAR:-default}` numbers, added and
//! impossible thresholds, thresholds with no data, `summary_trend_stats`.
//! Against the embedded target; counts are compared with the server's own.

mod common;

use common::*;
use std::process::Output;
use volley_serve::ServeOptions;

fn load_toml() -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/plans/load.toml")
        .display()
        .to_string()
}

/// `volley run ARGS --quiet --summary-export DIR/summary.json`.
fn run(dir: &Dir, args: &[&str]) -> (Output, Option<serde_json::Value>) {
    let export = dir.join("summary.json");
    let _ = std::fs::remove_file(&export);
    let out = volley()
        .arg("run")
        .args(args)
        .arg("--quiet")
        .arg("--summary-export")
        .arg(&export)
        .output_within(RUN_LIMIT);
    let summary = std::fs::read(&export)
        .ok()
        .map(|b| serde_json::from_slice(&b).expect("summary is JSON"));
    (out, summary)
}

#[test]
fn a_quick_run_sends_what_the_server_counts() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let url = format!("{}/api/v1/health", t.url());
    // By iterations: exact.
    let (out, s) = run(&d, &[&url, "-c", "4", "-n", "57"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.expect("a summary");
    assert_eq!(value(&s, "http_reqs", "count"), 57.0);
    assert_eq!(t.route("GET /api/v1/health"), 57);
    assert_eq!(s["volley"]["scenarios"][0]["executor"], "shared-iterations");
    // By duration, with --url, a header, a method and a body from a file.
    let body = d.write("body.json", "{\"q\":1}");
    let body_arg = format!("@{}", body.display());
    let (out, s) = run(
        &d,
        &[
            "--url",
            &url,
            "-c",
            "3",
            "-z",
            "1s",
            "-m",
            "get",
            "-H",
            "X-Test: yes",
            "-d",
            &body_arg,
        ],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.expect("a summary");
    let sent = value(&s, "http_reqs", "count");
    assert!(sent > 0.0, "{}", text(&out));
    assert_eq!(sent as u64 + 57, t.route("GET /api/v1/health"));
    assert_eq!(value(&s, "vus_max", "max"), 3.0);
    assert_eq!(s["volley"]["scenarios"][0]["executor"], "constant-vus");
    // The open model: a rate for a duration.
    let before = t.total();
    let (out, s) = run(&d, &[&url, "--rate", "40", "-z", "1s"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.expect("a summary");
    assert_eq!(value(&s, "http_reqs", "count") as u64, t.total() - before);
    assert_eq!(
        s["volley"]["scenarios"][0]["executor"],
        "constant-arrival-rate"
    );
}

#[test]
fn bad_quick_flags_name_the_flag_and_send_nothing() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let url = format!("{}/api/v1/health", t.url());
    for (args, says) in [
        (vec![url.as_str(), "-c", "0"], "--vus"),
        (vec![url.as_str(), "-z", "soon"], "--duration"),
        (vec![url.as_str(), "--rate", "NaN"], "--rate"),
        (vec![url.as_str(), "--rate", "1e300"], "--rate"),
        (
            vec![url.as_str(), "-n", "18446744073709551616"],
            "--iterations",
        ),
        (vec![url.as_str(), "-n", "2", "-c", "5"], "--iterations"),
        (vec![url.as_str(), "--stage", "30s"], "DURATION:TARGET"),
        (vec![url.as_str(), "-H", "no colon"], "-H"),
        (vec![url.as_str(), "-d", "@/nonexistent/file"], "-d"),
        (vec!["--url", "localhost:1"], "--url"),
        (vec![url.as_str(), "--threshold", "nope"], "--threshold"),
        (
            vec![url.as_str(), "--threshold", "no_such_metric=count>0"],
            "no metric named",
        ),
        (
            vec![url.as_str(), "--summary-trend-stats", "avg,p95"],
            "p(N)",
        ),
    ] {
        let (out, _) = run(&d, &args);
        assert_eq!(code(&out), 2, "{args:?}: {}", text(&out));
        assert!(text(&out).contains(says), "{args:?}: {}", text(&out));
    }
    assert_eq!(t.total(), 0, "nothing is sent when the flags are bad");
}

#[test]
fn vus_and_duration_replace_a_plans_schedule() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let (out, s) = run(
        &d,
        &[
            &load_toml(),
            "-e",
            &format!("BASE_URL={}", t.url()),
            "--vus",
            "3",
            "--duration",
            "2s",
        ],
    );
    // load.toml alone is a 20-minute ramp to 500 VUs.
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.expect("a summary");
    let sc = &s["volley"]["scenarios"][0];
    assert_eq!(sc["executor"], "constant-vus");
    assert_eq!(sc["max_vus"], 3);
    assert_eq!(sc["duration_s"], 2.0);
    assert_eq!(value(&s, "vus_max", "max"), 3.0);
    assert_eq!(value(&s, "vus", "max"), 3.0);
    // Every VU logged in once before its pages, all within the run.
    assert_eq!(value(&s, "http_reqs", "count") as u64, t.total());
    assert_eq!(
        counter(&s, "http_reqs", &[("name", "login")]),
        t.route("POST /api/v1/auth/login")
    );
    assert!(t.route("POST /api/v1/auth/login") >= 3);
    // Stages ramp VUs instead.
    let (out, s) = run(
        &d,
        &[
            &load_toml(),
            "-e",
            &format!("BASE_URL={}", t.url()),
            "--stage",
            "1s:2",
            "--stage",
            "1s:0",
        ],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.expect("a summary");
    assert_eq!(s["volley"]["scenarios"][0]["executor"], "ramping-vus");
    assert_eq!(value(&s, "vus_max", "max"), 2.0);
    // --vus alone says nothing of how long.
    let (out, _) = run(
        &d,
        &[
            &load_toml(),
            "-e",
            "BASE_URL=http://127.0.0.1:1",
            "--vus",
            "3",
        ],
    );
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(text(&out).contains("--duration"), "{}", text(&out));
}

#[test]
fn validate_takes_the_run_overrides_and_blames_the_flag() {
    let d = Dir::new();
    let validate = |extra: &[&str]| {
        volley()
            .args([
                "validate",
                &load_toml(),
                "-e",
                "BASE_URL=http://127.0.0.1:1",
            ])
            .args(extra)
            .output_within(RUN_LIMIT)
    };
    let out = validate(&[
        "--vus",
        "7",
        "--duration",
        "45s",
        "--threshold",
        "http_req_duration=p(99)<900",
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("constant-vus]: 7 VUs for 45s"), "{said}");
    assert!(said.contains("p(99)<900"), "{said}");
    assert!(
        !said.contains("ramping-vus"),
        "the plan's stages are replaced: {said}"
    );
    // More VUs than memory holds: the flag is to blame, not a line of the file.
    for (args, blamed) in [
        (
            vec!["--vus", "100000000000", "--duration", "5s"],
            "lower --vus",
        ),
        (
            vec!["--stage", "5s:100000000000"],
            "lower the --stage targets",
        ),
    ] {
        let out = validate(&args);
        assert_eq!(code(&out), 2, "{args:?}: {}", text(&out));
        assert!(text(&out).contains(blamed), "{args:?}: {}", text(&out));
        let at_line = text(&out)
            .split("load.toml:")
            .skip(1)
            .any(|rest| rest.starts_with(|c: char| c.is_ascii_digit()));
        assert!(!at_line, "no line of the file: {}", text(&out));
    }
    // The same plan run with the same flags sends nothing either.
    let (out, _) = run(
        &d,
        &[
            &load_toml(),
            "-e",
            "BASE_URL=http://127.0.0.1:1",
            "--vus",
            "100000000000",
            "--duration",
            "5s",
        ],
    );
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(text(&out).contains("lower --vus"), "{}", text(&out));
}

const ENV_PLAN: &str = r#"
[scenarios.api]
driver = "http"
executor = "shared-iterations"
vus = "${VUS:-2}"
iterations = "${N:-6}"

[[scenarios.api.requests]]
name = "me"
url = "${BASE_URL}/api/v1/health"
"#;

#[test]
fn numbers_come_from_variables_with_defaults() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let p = d.write("plan.toml", ENV_PLAN);
    let base = format!("BASE_URL={}", t.url());
    let p = p.to_str().unwrap();
    let (out, s) = run(&d, &[p, "-e", &base]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.expect("a summary");
    assert_eq!(value(&s, "http_reqs", "count"), 6.0);
    assert_eq!(s["volley"]["scenarios"][0]["max_vus"], 2);
    assert_eq!(t.total(), 6);
    // From the environment, and from -e.
    let out = volley()
        .args(["run", p, "-e", &base, "--quiet"])
        .env("N", "9")
        .output_within(RUN_LIMIT);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(t.total(), 15);
    let (out, _) = run(&d, &[p, "-e", &base, "-e", "N=4", "-e", "VUS=4"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(t.total(), 19);
    // Not a number: refused where it is written.
    let (out, _) = run(&d, &[p, "-e", &base, "-e", "VUS=many"]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(
        text(&out).contains("plan.toml:5:7: `vus` is a number"),
        "{}",
        text(&out)
    );
    assert_eq!(t.total(), 19);
}

#[test]
fn a_tag_filter_nothing_can_match_is_refused_with_a_hint() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let p = d.write(
        "plan.toml",
        &format!("{ENV_PLAN}\n[thresholds]\n\"http_req_duration{{name:mee}}\" = [\"p(95)<500\"]\n"),
    );
    let p = p.to_str().unwrap();
    let base = format!("BASE_URL={}", t.url());
    for cmd in ["validate", "run"] {
        let out = volley()
            .args([cmd, p, "-e", &base])
            .output_within(RUN_LIMIT);
        assert_eq!(code(&out), 2, "{cmd}: {}", text(&out));
        let msg = text(&out);
        assert!(msg.contains("plan.toml:13:1:"), "{msg}");
        assert!(msg.contains("did you mean `me`?"), "{msg}");
    }
    // The same on the command line, and for a scenario.
    let (out, _) = run(
        &d,
        &[
            "--threshold",
            "http_reqs{scenario:apii}=count>0",
            d.write("plain.toml", ENV_PLAN).to_str().unwrap(),
            "-e",
            &base,
        ],
    );
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(text(&out).contains("did you mean `api`?"), "{}", text(&out));
    assert_eq!(t.total(), 0, "nothing is sent");
}

#[test]
fn a_rate_or_trend_threshold_with_no_data_fails_unless_allowed() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let base = format!("BASE_URL={}", t.url());
    // Every answer is 200: no sample is tagged expected_response:false.
    let judged = d.write(
        "judged.toml",
        &format!(
            "{ENV_PLAN}\n[thresholds]\n\"http_req_duration{{expected_response:false}}\" = [\"p(95)<500\"]\nhttp_reqs = [\"count>0\"]\n"
        ),
    );
    let (out, s) = run(&d, &[judged.to_str().unwrap(), "-e", &base]);
    assert_eq!(code(&out), 99, "{}", text(&out));
    assert!(
        text(&out).contains("✗ 'p(95)<500' no data"),
        "{}",
        text(&out)
    );
    let r = &s.expect("a summary")["metrics"]["http_req_duration{expected_response:false}"]["thresholds"]
        ["p(95)<500"];
    assert_eq!(
        (r["ok"].as_bool(), r["no_data"].as_bool()),
        (Some(false), Some(true))
    );
    let allowed = d.write(
        "allowed.toml",
        &format!(
            "{ENV_PLAN}\n[thresholds]\n\"http_req_duration{{expected_response:false}}\" = [{{ threshold = \"p(95)<500\", allow_empty = true }}]\n"
        ),
    );
    let (out, _) = run(&d, &[allowed.to_str().unwrap(), "-e", &base]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(t.total(), 12);
}

#[test]
fn an_added_threshold_fails_the_run_when_violated() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let url = format!("{}/api/v1/health", t.url());
    let (out, s) = run(
        &d,
        &[
            &url,
            "-n",
            "5",
            "--threshold",
            "http_reqs=count<3",
            "--threshold",
            "http_req_duration=p(95)<60000",
        ],
    );
    assert_eq!(code(&out), 99, "{}", text(&out));
    let s = s.expect("a summary");
    assert_eq!(
        s["metrics"]["http_reqs"]["thresholds"]["count<3"]["ok"],
        false
    );
    assert_eq!(
        s["metrics"]["http_req_duration"]["thresholds"]["p(95)<60000"]["ok"],
        true
    );
    assert_eq!(t.total(), 5);
    let (out, _) = run(&d, &[&url, "-n", "5", "--threshold", "http_reqs=count==5"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
}

#[test]
fn summary_trend_stats_choose_the_columns() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let p = d.write(
        "plan.toml",
        &format!("[options]\nsummary_trend_stats = [\"avg\", \"p(75)\"]\n{ENV_PLAN}"),
    );
    let base = format!("BASE_URL={}", t.url());
    let out = volley()
        .args(["run", p.to_str().unwrap(), "-e", &base])
        .output_within(RUN_LIMIT);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let line = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.contains("http_req_duration..."))
        .map(str::to_string)
        .expect("a http_req_duration line");
    assert!(line.contains("avg=") && line.contains("p(75)="), "{line}");
    assert!(!line.contains("p(95)="), "{line}");
    // The command line wins, and the report and export carry the same.
    let report = d.join("report.html");
    let (out, s) = run(
        &d,
        &[
            p.to_str().unwrap(),
            "-e",
            &base,
            "--summary-trend-stats",
            "med,p(99.9)",
            "--report",
            report.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.expect("a summary");
    assert!(s["metrics"]["http_req_duration"]["values"]["p(99.9)"].is_number());
    assert_eq!(s["volley"]["summary_trend_stats"][1], "p(99.9)");
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("p(99.9)="), "the report's values column");
    assert!(
        html.contains("<th>p99.9</th>"),
        "the report's per-name columns"
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    let heading = summary
        .lines()
        .find(|l| l.contains("scenario / name"))
        .expect("a per-name table");
    assert!(
        heading.contains("med") && heading.contains("p99.9"),
        "{heading}"
    );
    assert!(!heading.contains("p95"), "{heading}");
    // A statistic that does not exist is refused where written.
    let bad = d.write(
        "bad.toml",
        &format!("[options]\nsummary_trend_stats = [\"avg\", \"p99\"]\n{ENV_PLAN}"),
    );
    let out = volley()
        .args(["validate", bad.to_str().unwrap(), "-e", &base])
        .output_within(RUN_LIMIT);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(text(&out).contains("bad.toml:2:31:"), "{}", text(&out));
    assert!(text(&out).contains("p(N)"), "{}", text(&out));
}
