//! What the WebSocket driver shows of itself (see [`crate::descriptor`]).

use crate::descriptor::*;

pub fn descriptor() -> Descriptor {
    Descriptor {
        name: "websocket".into(),
        prefix: "ws_".into(),
        noun: "messages".into(),
        headline: Headline {
            latency: "ws_msg_latency".into(),
            throughput: "ws_msgs_sent".into(),
            errors: "ws_drop_rate".into(),
            errors_word: "drops".into(),
        },
        latency: vec![labelled(
            "ws_msg_latency",
            "Message latency, sender to each receiver",
        )],
        throughput: vec![
            labelled("ws_msgs_sent", "messages sent/s"),
            labelled("ws_msgs_received", "messages received/s"),
        ],
        errors: vec![
            error_line("ws_drop_rate", "sessions dropped/s", true),
            error_line("ws_errors", "WebSocket errors/s", true),
            error_line("ws_msgs_lost", "messages lost/s", true),
        ],
        breakdowns: vec![breakdown(
            "ws_msg_latency",
            "ws_msgs_lost",
            "room",
            "Messages",
        )],
        recovery: Some(Recovery {
            latency: "ws_msg_latency".into(),
            errors: "ws_drop_rate".into(),
        }),
        facts: vec![
            Fact::Count {
                metric: "ws_msgs_sent".into(),
                label: "WebSocket messages sent".into(),
            },
            Fact::Count {
                metric: "ws_msgs_received".into(),
                label: "WebSocket messages received".into(),
            },
        ],
        figures: vec![Figure::Rates {
            id: "ws-sessions".into(),
            title: "WebSocket sessions".into(),
            lines: vec![
                RateLine {
                    metric: "ws_sessions".into(),
                    label: "sessions started/s".into(),
                    error: false,
                },
                RateLine {
                    metric: "ws_drop_rate".into(),
                    label: "sessions dropped/s".into(),
                    error: true,
                },
            ],
            note: Some(
                "Dropped: ended by the peer or the network before their planned end.".into(),
            ),
        }],
        error_rows: vec![ErrorRow {
            metric: "ws_errors".into(),
            text: forms(&["{error|?} (websocket {scenario|-})"]),
            ..Default::default()
        }],
        compare: CompareDefaults {
            trends: forms(&["ws_msg_latency"]),
            throughput: forms(&["ws_msgs_received"]),
        },
        ..Default::default()
    }
}
