//! The server's own view while the run lasts: once a second, on a connection
//! of its own, count the database's client sessions in pg_stat_activity by
//! state into `pg_connections{state}` (plus `state:total`).

use super::PgDriver;
use super::conn::PgConn;
use crate::metrics::{Recorder, SeriesId};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::time::MissedTickBehavior;

const SQL: &str = "SELECT coalesce(state, 'unknown'), count(*) FROM pg_stat_activity \
                   WHERE datname = current_database() AND backend_type = 'client backend' \
                   AND pid <> pg_backend_pid() GROUP BY 1";

/// "idle in transaction (aborted)" -> "idle_in_transaction_aborted": tag values
/// that read well in threshold keys.
fn tag(state: &str) -> String {
    state
        .replace(['(', ')'], "")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join("_")
}

pub(super) async fn run(d: Arc<PgDriver>, rec: Recorder, until: Instant) {
    if !d.sample {
        return;
    }
    let mut series: Vec<(String, SeriesId, i64)> =
        ["total", "active", "idle", "idle_in_transaction"]
            .iter()
            .map(|s| {
                let id = rec.series(d.metrics.connections, &d.tags.with("state", *s));
                (s.to_string(), id, 0)
            })
            .collect();
    let target = d.target.named("sampler");
    let mut conn: Option<PgConn> = None;
    let mut stmt = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if Instant::now() >= until {
            return;
        }
        if !conn.as_ref().is_some_and(PgConn::usable) {
            stmt = None;
            conn = match target.connect(0).await {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::debug!("pg_stat_activity sampler cannot connect: {e}");
                    None
                }
            };
        }
        let Some(c) = &conn else { continue };
        if stmt.is_none() {
            stmt = c.client.prepare(SQL).await.ok();
        }
        let Some(s) = &stmt else { continue };
        let rows = match c.client.query(s, &[]).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::debug!("pg_stat_activity sampler: {e}");
                continue;
            }
        };
        for entry in series.iter_mut() {
            entry.2 = 0;
        }
        let mut total = 0;
        for row in rows {
            let (state, n): (String, i64) = (row.get(0), row.get(1));
            let state = tag(&state);
            total += n;
            match series.iter_mut().find(|e| e.0 == state) {
                Some(e) => e.2 = n,
                None => {
                    let id = rec.series(d.metrics.connections, &d.tags.with("state", &state));
                    series.push((state, id, n));
                }
            }
        }
        series[0].2 = total;
        for (_, id, n) in &series {
            rec.gauge(*id, *n as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn states_become_tags() {
        assert_eq!(
            super::tag("idle in transaction (aborted)"),
            "idle_in_transaction_aborted"
        );
        assert_eq!(super::tag("active"), "active");
    }
}
