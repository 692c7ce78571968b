//! What the webhook driver shows of itself (see [`crate::descriptor`]).

use crate::descriptor::*;

pub fn descriptor() -> Descriptor {
    Descriptor {
        name: "webhook".into(),
        prefix: "webhook_".into(),
        noun: "deliveries".into(),
        headline: Headline {
            latency: "webhook_duration".into(),
            throughput: "webhook_deliveries".into(),
            errors: "webhook_failed".into(),
            errors_word: "errors".into(),
        },
        latency: vec![labelled("webhook_duration", "Webhook delivery duration")],
        throughput: vec![labelled("webhook_duration", "deliveries/s")],
        errors: vec![
            error_line("webhook_failed", "failed deliveries/s", true),
            error_line("webhook_forgery_accepted", "forgeries accepted/s", true),
        ],
        // By event type, then by delivery kind (valid, forged, stale, ...):
        // "failed" is the share not answered as the kind must be.
        breakdowns: vec![
            breakdown(
                "webhook_duration",
                "webhook_failed",
                "event",
                "Webhook deliveries",
            ),
            breakdown(
                "webhook_duration",
                "webhook_failed",
                "kind",
                "Webhook deliveries",
            ),
        ],
        // A forged or stale delivery taken with 2xx is a security hole, not a
        // slow response: webhook plans fail on it unless they say otherwise.
        thresholds: vec![BuiltInThreshold {
            metric: "webhook_forgery_accepted".into(),
            expression: "count==0".into(),
        }],
        recovery: Some(Recovery {
            latency: "webhook_duration".into(),
            errors: "webhook_failed".into(),
        }),
        facts: vec![Fact::Count {
            metric: "webhook_duration".into(),
            label: "Webhook deliveries".into(),
        }],
        figures: vec![
            Figure::RatesBy {
                id: "webhook-kinds".into(),
                title: "Webhook deliveries by kind".into(),
                metric: "webhook_duration".into(),
                tags: forms(&["kind", "delivery", "delivery_kind"]),
            },
            Figure::CountsBy {
                id: "webhook-status".into(),
                title: "Webhook deliveries by status".into(),
                metric: "webhook_deliveries".into(),
                lines: forms(&["{error}", "{status}"]),
            },
        ],
        compare: CompareDefaults {
            trends: forms(&["webhook_duration"]),
            throughput: forms(&["webhook_deliveries"]),
        },
        ..Default::default()
    }
}
