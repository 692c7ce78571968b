//! Bad input on the command line and in summary files: a clear refusal
//! (exit 2, nothing sent) naming the flag or the field and the fix, never a
//! panic (exit 101) or an abort (134), whatever the number.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use volley_serve::ServeOptions;

/// Run `cmd` to its end, killed (and the test failed) if it takes over a minute.
fn within(cmd: &mut Command) -> Output {
    common::output_within(cmd, 60)
}

/// A refusal: exit 2, no panic, and every one of `expected` in what it says.
fn refused(out: &Output, expected: &[&str]) {
    let t = text(out);
    assert_eq!(code(out), 2, "{t}");
    assert!(!t.contains("panicked"), "{t}");
    for e in expected {
        assert!(t.contains(e), "expected {e:?} in: {t}");
    }
}

fn small_plan(d: &Dir, t: &Target) -> PathBuf {
    d.write(
        "plan.toml",
        &format!(
            "[scenarios.api]\ndriver = \"http\"\nexecutor = \"per-vu-iterations\"\nvus = 2\niterations = 5\nrequests = [{{ name = \"health\", url = \"{}/api/v1/health\" }}]\n\n[thresholds]\nhttp_req_failed = [\"rate==0\"]\n",
            t.url()
        ),
    )
}

#[test]
fn worker_counts_it_cannot_use_are_refused_before_anything_is_sent() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let plan = small_plan(&d, &t);
    for (workers, says) in [
        ("0", "at least one worker thread"),
        ("100000", "100000 threads is more than any machine can use"),
        ("18446744073709551616", "not a whole number"),
    ] {
        let out = within(
            volley()
                .args(["run", "--quiet", "--workers", workers])
                .arg(&plan),
        );
        refused(&out, &["--workers", says, "from 1 to 1024"]);
    }
    let out = within(volley().args(["serve", "--threads", "0"]));
    refused(&out, &["--threads", "at least one worker thread"]);
    assert_eq!(t.total(), 0, "nothing was sent");
    let out = within(
        volley()
            .args(["run", "--quiet", "--workers", "3"])
            .arg(&plan),
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(t.total(), 10);
}

#[test]
fn an_env_pair_needs_a_name() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let plan = small_plan(&d, &t);
    for pair in ["=x", "=", " A=x", "A B=x", "${A}=x"] {
        let out = within(volley().arg("validate").arg(&plan).args(["-e", pair]));
        refused(&out, &["is not a variable name", "letters, digits and _"]);
        let out = within(
            volley()
                .args(["k8s", "render", "--parts", "2"])
                .arg(&plan)
                .args(["-e", pair]),
        );
        refused(&out, &["is not a variable name"]);
    }
    let out = within(volley().arg("validate").arg(&plan).args(["-e", "A_1=x"]));
    assert_eq!(code(&out), 0, "{}", text(&out));
}

#[test]
fn k8s_render_says_how_to_give_a_plan_its_variables() {
    let d = Dir::new();
    let plan = d.write(
        "vars.toml",
        "[scenarios.a]\ndriver = \"http\"\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\n[[scenarios.a.requests]]\nurl = \"${VOLLEY_TEST_UNSET_BASE}/x\"\n",
    );
    let render = |extra: &[&str]| {
        within(
            volley()
                .args(["k8s", "render", "--parts", "2"])
                .arg(&plan)
                .args(extra)
                .env_remove("VOLLEY_TEST_UNSET_BASE"),
        )
    };
    refused(
        &render(&[]),
        &[
            "${VOLLEY_TEST_UNSET_BASE} is not set",
            "checked before it is rendered",
            "-e KEY=VALUE",
        ],
    );
    // Another plan error gets no advice about variables.
    let out = render(&["-e", "VOLLEY_TEST_UNSET_BASE=not a url"]);
    assert_ne!(code(&out), 0, "{}", text(&out));
    assert!(
        !text(&out).contains("checked before it is rendered"),
        "{}",
        text(&out)
    );
    let out = render(&["-e", "VOLLEY_TEST_UNSET_BASE=http://127.0.0.1:9"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    // A template's {{ env.NAME }} gets the same advice as ${NAME}.
    let plan = d.write(
        "env.toml",
        "[scenarios.a]\ndriver = \"http\"\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\n[[scenarios.a.requests]]\nurl = \"http://127.0.0.1:9/{{ env.VOLLEY_TEST_UNSET_PATH }}\"\n",
    );
    let out = within(
        volley()
            .args(["k8s", "render", "--parts", "2"])
            .arg(&plan)
            .env_remove("VOLLEY_TEST_UNSET_PATH"),
    );
    refused(
        &out,
        &[
            "env.VOLLEY_TEST_UNSET_PATH is not set",
            "checked before it is rendered",
        ],
    );
}

#[test]
fn an_empty_webhook_secret_is_refused() {
    let d = Dir::new();
    let payload = d.write("event.json", "{\"id\":\"evt_1\"}");
    for args in [&["--secret", ""][..], &["--secret", "whsec_a,"]] {
        let out = within(
            volley()
                .args(["webhook", "sign", "--payload"])
                .arg(&payload)
                .args(args),
        );
        refused(&out, &["--secret: a secret is empty", "whsec_"]);
    }
    let out = within(
        volley()
            .args(["webhook", "sign", "--payload"])
            .arg(&payload)
            .env("STRIPE_WEBHOOK_SECRET", ""),
    );
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(!text(&out).contains("Stripe-Signature"), "{}", text(&out));
    let out = within(
        volley()
            .args(["webhook", "send", "--to", "http://127.0.0.1:9/hooks"])
            .args(["--secret", ""]),
    );
    refused(&out, &["--secret: a secret is empty"]);
    let out = within(
        volley()
            .args(["webhook", "sign", "--payload"])
            .arg(&payload)
            .args(["--secret", "whsec_a"]),
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        text(&out).contains("Stripe-Signature: t="),
        "{}",
        text(&out)
    );
}

#[test]
fn a_start_time_past_what_a_clock_holds_is_refused() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let plan = small_plan(&d, &t);
    for at in ["+99999999999999h", "+18446744073709551616s"] {
        let out = within(
            volley()
                .args(["run", "--quiet", "--start-at", at])
                .arg(&plan),
        );
        refused(&out, &["--start-at", "longer than 100 years"]);
    }
    assert_eq!(t.total(), 0, "nothing was sent");
}

/// A real run's summary export.
fn summary(d: &Dir) -> Value {
    let t = Target::start(ServeOptions::default());
    let plan = small_plan(d, &t);
    let export = d.join("run.json");
    let out = within(
        volley()
            .args(["run", "--quiet", "--summary-export"])
            .arg(&export)
            .arg(&plan),
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    serde_json::from_slice(&std::fs::read(&export).unwrap()).unwrap()
}

fn write(d: &Dir, name: &str, v: &Value) -> PathBuf {
    d.write(name, &serde_json::to_string(v).unwrap())
}

/// report, compare (both ways) and merge (as part 1 of 2) of `damaged`.
fn every_reader(d: &Dir, damaged: &Path, good: &Path) -> Vec<(&'static str, Output)> {
    let _ = std::fs::remove_file(d.join("m.json"));
    vec![
        (
            "report",
            within(
                volley()
                    .arg("report")
                    .arg(damaged)
                    .arg("--out")
                    .arg(d.join("r.html"))
                    .arg("--junit")
                    .arg(d.join("r.xml")),
            ),
        ),
        (
            "compare",
            within(volley().arg("compare").arg(good).arg(damaged)),
        ),
        (
            "compare",
            within(volley().arg("compare").arg(damaged).arg(good)),
        ),
        (
            "merge",
            within(
                volley()
                    .arg("merge")
                    .arg(damaged)
                    .arg(good)
                    .arg("--summary-export")
                    .arg(d.join("m.json"))
                    .arg("--report")
                    .arg(d.join("m.html"))
                    .arg("--junit")
                    .arg(d.join("m.xml")),
            ),
        ),
    ]
}

/// A change made to a summary's JSON.
type Damage = Box<dyn Fn(&mut Value)>;

#[test]
fn damaged_summaries_are_refused_or_read_never_panicked_on() {
    let d = Dir::new();
    let base = summary(&d);
    let part = |s: &mut Value, seg: &str| s["volley"]["segment"] = Value::from(seg);
    let mut good = base.clone();
    part(&mut good, "2/2");
    let good = write(&d, "good.json", &good);

    // Times that are no times: refused, naming the file and the field.
    let times: Vec<(&str, Damage)> = vec![
        (
            "volley.duration_s",
            Box::new(|s| s["volley"]["duration_s"] = Value::from(1e300)),
        ),
        (
            "volley.duration_s",
            Box::new(|s| s["volley"]["duration_s"] = Value::from(-1.0)),
        ),
        (
            "volley.scenarios[0].graceful_stop_s",
            Box::new(|s| s["volley"]["scenarios"][0]["graceful_stop_s"] = Value::from(1e300)),
        ),
        (
            "volley.started_unix_ms",
            Box::new(|s| s["volley"]["started_unix_ms"] = Value::from(u64::MAX)),
        ),
        (
            "intervals[0].t",
            Box::new(|s| s["intervals"][0]["t"] = Value::from(u64::MAX)),
        ),
        (
            "rollup_intervals[0].t",
            Box::new(|s| s["rollup_intervals"][0]["t"] = Value::from(u64::MAX)),
        ),
        (
            "interval_s",
            Box::new(|s| s["interval_s"] = Value::from(u64::MAX)),
        ),
        ("interval_s", Box::new(|s| s["interval_s"] = Value::from(0))),
        ("rollup_s", Box::new(|s| s["rollup_s"] = Value::from(0))),
    ];
    for (field, damage) in &times {
        let mut s = base.clone();
        damage(&mut s);
        part(&mut s, "1/2");
        let damaged = write(&d, "damaged.json", &s);
        for (what, out) in every_reader(&d, &damaged, &good) {
            refused(&out, &["damaged.json", field, "damaged"]);
            assert!(!text(&out).contains("good.json"), "{what}: {}", text(&out));
        }
    }

    // Counts that overflow when added: read, and saturated, not wrapped or panicked on.
    let counts: Vec<Damage> = vec![
        Box::new(|s| {
            for r in s["series"].as_array_mut().unwrap() {
                for k in ["count", "hits", "total"] {
                    if r.get(k).is_some() {
                        r[k] = Value::from(u64::MAX);
                    }
                }
            }
        }),
        Box::new(move |s| {
            for records in ["intervals", "rollup_intervals"] {
                let last = s[records].as_array().unwrap().len() - 1;
                for iv in [0, last] {
                    for p in s[records][iv]["points"].as_array_mut().unwrap() {
                        for k in ["count", "hits", "total"] {
                            if p[1].get(k).is_some() {
                                p[1][k] = Value::from(u64::MAX);
                            }
                        }
                    }
                }
            }
        }),
        // More hits than attempts.
        Box::new(|s| {
            for r in s["series"].as_array_mut().unwrap() {
                if r.get("hits").is_some() {
                    r["hits"] = Value::from(u64::MAX);
                    r["total"] = Value::from(1);
                }
            }
        }),
    ];
    for damage in &counts {
        let mut s = base.clone();
        damage(&mut s);
        part(&mut s, "1/2");
        let damaged = write(&d, "damaged.json", &s);
        for (what, out) in every_reader(&d, &damaged, &good) {
            let t = text(&out);
            assert!(!t.contains("panicked"), "{what}: {t}");
            assert!(
                [0, 1, 2, 99].contains(&code(&out)),
                "{what}: exit {}: {t}",
                code(&out)
            );
        }
        let merged: Value =
            serde_json::from_slice(&std::fs::read(d.join("m.json")).unwrap()).unwrap();
        let reqs = merged["metrics"]["http_reqs"]["values"]["count"]
            .as_f64()
            .unwrap_or(0.0);
        assert!(
            reqs >= 10.0,
            "a merged count never wraps below a part's: {reqs}"
        );
    }
}
