//! What the PostgreSQL driver shows of itself (see [`crate::descriptor`]).

use crate::descriptor::*;

pub fn descriptor() -> Descriptor {
    Descriptor {
        name: "postgres".into(),
        prefix: "pg_".into(),
        noun: "queries".into(),
        headline: Headline {
            latency: "pg_query_duration".into(),
            throughput: "pg_queries".into(),
            errors: "pg_query_failed".into(),
            errors_word: "errors".into(),
        },
        latency: vec![
            labelled("pg_query_duration", "Query duration"),
            labelled("pg_pool_wait", "Pool wait (time to get a connection)"),
        ],
        throughput: vec![labelled("pg_query_duration", "queries/s")],
        errors: vec![
            error_line("pg_query_failed", "failed queries/s", true),
            error_line("pg_query_errors", "failed queries/s", true),
            error_line("pg_pool_timeouts", "pool timeouts/s", true),
        ],
        breakdowns: vec![breakdown(
            "pg_query_duration",
            "pg_query_failed",
            "name",
            "Queries",
        )],
        recovery: Some(Recovery {
            latency: "pg_query_duration".into(),
            errors: "pg_query_failed".into(),
        }),
        facts: vec![Fact::Count {
            metric: "pg_query_duration".into(),
            label: "Database queries".into(),
        }],
        // The scenario's sampler, or a run-wide one shown with every
        // postgres scenario.
        figures: vec![Figure::GaugesBy {
            id: "pg-connections".into(),
            title: "Server connections by state (pg_stat_activity)".into(),
            metric: "pg_connections".into(),
            tag: "state".into(),
        }],
        error_rows: vec![ErrorRow {
            metric: "pg_query_failed".into(),
            text: forms(&[
                "SQLSTATE {sqlstate} {sqlstate=} ({error|error}, {name|-})",
                "{error|error} ({name|-})",
            ]),
            ..Default::default()
        }],
        tag_names: [(
            "sqlstate".to_string(),
            super::conn::SQLSTATE_NAMES
                .iter()
                .map(|(c, n)| (c.to_string(), n.to_string()))
                .collect(),
        )]
        .into(),
        compare: CompareDefaults {
            trends: forms(&["pg_query_duration", "pg_pool_wait"]),
            throughput: forms(&["pg_queries"]),
        },
        ..Default::default()
    }
}
