//! What the HTTP driver shows of itself (see [`crate::descriptor`]).

use crate::descriptor::*;

pub fn descriptor() -> Descriptor {
    Descriptor {
        name: "http".into(),
        prefix: "http_".into(),
        noun: "requests".into(),
        headline: Headline {
            latency: "http_req_duration".into(),
            throughput: "http_reqs".into(),
            errors: "http_req_failed".into(),
            errors_word: "errors".into(),
        },
        latency: vec![labelled("http_req_duration", "HTTP request duration")],
        throughput: vec![labelled("http_reqs", "requests/s")],
        // The error table lists failed requests by status, below.
        errors: vec![error_line("http_req_failed", "failed requests/s", false)],
        breakdowns: vec![breakdown(
            "http_req_duration",
            "http_req_failed",
            "name",
            "Requests",
        )],
        subtotals: vec![Subtotal {
            metric: "http_req_duration".into(),
            tag: "expected_response".into(),
            value: "true".into(),
        }],
        recovery: Some(Recovery {
            latency: "http_req_duration".into(),
            errors: "http_req_failed".into(),
        }),
        facts: vec![
            Fact::Count {
                metric: "http_reqs".into(),
                label: "HTTP requests".into(),
            },
            Fact::Percent {
                metric: "http_req_failed".into(),
                label: "HTTP failures".into(),
            },
        ],
        // Requests by status over time; a transport error has no status.
        figures: vec![Figure::CountsBy {
            id: "http-status".into(),
            title: "Requests by status".into(),
            metric: "http_reqs".into(),
            lines: forms(&["{error}", "{status}"]),
        }],
        error_rows: vec![ErrorRow {
            metric: "http_reqs".into(),
            only: [("expected_response".to_string(), "false".to_string())].into(),
            text: forms(&["{error} ({name|-})", "status {status|?} ({name|-})"]),
            head: forms(&["{error}", "status {status|?}"]),
            hide: forms(&["error", "status", "expected_response", "method"]),
        }],
        compare: CompareDefaults {
            trends: forms(&["http_req_duration"]),
            throughput: forms(&["http_reqs"]),
        },
        ..Default::default()
    }
}
