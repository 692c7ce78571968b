//! The example driver (protocols/src/echo) against an echo server on
//! 127.0.0.1: added as one folder and one line of registration, it gets a
//! live line, a summary breakdown, a report section and compare rows. A
//! driver this build does not know renders from its summary alone.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A line echo server on 127.0.0.1, counting the lines it sent back.
fn echo_server() -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let lines = Arc::new(AtomicU64::new(0));
    let seen = lines.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut out = conn.try_clone().unwrap();
                for line in BufReader::new(conn).lines() {
                    let Ok(line) = line else { return };
                    if out.write_all(format!("{line}\n").as_bytes()).is_err() {
                        return;
                    }
                    seen.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    (addr, lines)
}

fn fixture() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/plans/echo.toml")
}

#[test]
fn the_echo_driver_gets_a_live_line_breakdown_report_and_compare() {
    let (addr, lines) = echo_server();
    let d = Dir::new();
    let (summary, report) = (d.join("summary.json"), d.join("report.html"));
    // Not --quiet: without a terminal the live line is printed every 5 s,
    // and the plan runs 7 s.
    let out = volley()
        .arg("run")
        .arg(fixture())
        .args(["-e", &format!("ECHO_ADDR={addr}")])
        .arg("--summary-export")
        .arg(&summary)
        .arg("--report")
        .arg(&report)
        .output_within(RUN_LIMIT);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );

    let live = stderr
        .lines()
        .find(|l| l.starts_with("running:"))
        .unwrap_or_else(|| panic!("no live line: {stderr}"));
    for part in [" echo msg/s", "p95 ", "errors 0.00%"] {
        assert!(live.contains(part), "{part:?} not in {live:?}");
    }

    assert!(
        stdout.contains("█ echo_rtt BY SCENARIO AND NAME"),
        "{stdout}"
    );
    for row in ["bounce · short", "bounce · long"] {
        assert!(stdout.contains(row), "{row:?} not in {stdout}");
    }

    // Every echo counted is one the server sent back.
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    let echoed = counter(&s, "echo_msgs", &[]);
    assert!(echoed > 0, "{stdout}");
    assert_eq!(echoed, lines.load(Ordering::SeqCst));
    assert_eq!(s["volley"]["drivers"][0]["name"], "echo");

    let html = std::fs::read_to_string(&report).unwrap();
    for part in [
        "id=\"chart-bounce-latency-echo_rtt\"",
        "Echo round trip (echo_rtt)",
        "echoes/s",
        "Echoes by name",
        "<dt>Echoes</dt>",
    ] {
        assert!(html.contains(part), "{part:?} not in the report");
    }

    let cmp = volley()
        .arg("compare")
        .arg(&summary)
        .arg(&summary)
        .output_within(RUN_LIMIT);
    assert_eq!(code(&cmp), 0, "{}", text(&cmp));
    let table = String::from_utf8_lossy(&cmp.stdout);
    for row in ["echo_rtt ", "echo_failed ", "echo_msgs "] {
        assert!(table.contains(row), "{row:?} not in {table}");
    }
}

/// A summary of a driver this build lacks (the echo run's, renamed) still
/// renders: its descriptor travels in the summary.
#[test]
fn a_driver_unknown_to_this_build_renders_from_its_summary() {
    let (addr, _) = echo_server();
    let d = Dir::new();
    let (out, s) = run_plan(
        &d,
        &fixture(),
        &["-e", &format!("ECHO_ADDR={addr}"), "--no-thresholds"],
    );
    assert!(s.is_some(), "{}", text(&out));
    let text_of = std::fs::read_to_string(d.join("summary.json")).unwrap();
    let foreign = d.write("zest.json", &text_of.replace("echo", "zest"));

    let page = d.join("zest.html");
    let out = volley()
        .arg("report")
        .arg(&foreign)
        .arg("--out")
        .arg(&page)
        .output_within(RUN_LIMIT);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let html = std::fs::read_to_string(&page).unwrap();
    for part in [
        "id=\"chart-bounce-latency-zest_rtt\"",
        "Echo round trip (zest_rtt)",
        "zestes/s",
        "Echoes by name",
    ] {
        assert!(html.contains(part), "{part:?} not in the report");
    }

    let cmp = volley()
        .arg("compare")
        .arg(&foreign)
        .arg(&foreign)
        .output_within(RUN_LIMIT);
    assert_eq!(code(&cmp), 0, "{}", text(&cmp));
    let table = String::from_utf8_lossy(&cmp.stdout);
    assert!(table.contains("zest_rtt "), "{table}");
}
