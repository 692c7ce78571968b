//! One PostgreSQL VU: gets a connection (pool, its own, or a fresh one),
//! runs its queries with prepared statements, records what it saw.

use super::conn::{ErrorKind, Failure, PgConn, drive};
use super::value::{Raw, TextParam, write_text};
use super::{Mode, PgDriver, Query};
use crate::driver::{Iteration, Vu, VuEnv, VuState};
use crate::http::Flow;
use crate::metrics::{Recorder, SeriesId};
use futures_util::StreamExt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Series ids of one query, resolved once.
struct QuerySeries {
    queries: SeriesId,
    duration: SeriesId,
    tx: SeriesId,
    rows: SeriesId,
    ok: SeriesId,
    /// `pg_query_failed` with error and sqlstate tags, added as they occur.
    failures: Vec<(Failure, SeriesId)>,
}

/// A connection as this iteration holds it.
enum Held {
    Pooled(deadpool::managed::Object<super::conn::Manager>),
    Owned(PgConn),
}

impl Deref for Held {
    type Target = PgConn;
    fn deref(&self) -> &PgConn {
        match self {
            Held::Pooled(o) => o,
            Held::Owned(c) => c,
        }
    }
}

impl DerefMut for Held {
    fn deref_mut(&mut self) -> &mut PgConn {
        match self {
            Held::Pooled(o) => o,
            Held::Owned(c) => c,
        }
    }
}

const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

pub struct PgVu {
    d: Arc<PgDriver>,
    v: Inner,
}

/// The VU's own state; its methods take the driver beside it, so the hot
/// path clones no Arc.
struct Inner {
    rec: Recorder,
    state: VuState,
    /// per-vu: the VU's own connection between iterations.
    conn: Option<PgConn>,
    series: Vec<QuerySeries>,
    /// Per statement: one `checks` series per check, then one per capture.
    check_series: Vec<Vec<SeriesId>>,
    pool_wait: SeriesId,
    pool_timeouts: SeriesId,
    connect: SeriesId,
    params: Vec<String>,
    scratch: String,
    /// Pause after a failed connect (per-vu, pool), so a server that is down
    /// is retried, not hammered.
    backoff: Duration,
}

impl PgVu {
    pub(super) fn new(d: Arc<PgDriver>, env: VuEnv) -> Self {
        let v = Inner::new(&d, env);
        PgVu { d, v }
    }
}

impl Inner {
    fn new(d: &PgDriver, env: VuEnv) -> Self {
        let rec = env.recorder;
        let m = &d.metrics;
        let series = d
            .queries
            .iter()
            .map(|q| {
                let tags = d.tags.with("name", q.name.clone());
                QuerySeries {
                    queries: rec.series(m.queries, &tags),
                    duration: rec.series(m.duration, &tags),
                    tx: rec.series(m.tx, &tags),
                    rows: rec.series(m.rows, &tags),
                    ok: rec.series(m.failed, &tags),
                    failures: Vec::new(),
                }
            })
            .collect();
        let check_series = d
            .statements
            .iter()
            .map(|st| match st.query {
                Some(q) => {
                    let tags = d.tags.with("name", d.queries[q].name.clone());
                    st.check_names
                        .iter()
                        .map(|c| rec.series(m.checks, &tags.with("check", c.clone())))
                        .collect()
                }
                None => Vec::new(),
            })
            .collect();
        Self {
            state: d.inputs.state(env.index, env.seed),
            series,
            check_series,
            pool_wait: rec.series(m.pool_wait, &d.tags),
            pool_timeouts: rec.series(m.pool_timeouts, &d.tags),
            connect: rec.series(m.connect, &d.tags),
            conn: None,
            params: vec![String::new(); d.max_params],
            scratch: String::new(),
            backoff: BACKOFF_MIN,
            rec,
        }
    }

    fn fail(&mut self, d: &PgDriver, qi: usize, f: Failure) {
        let s = &mut self.series[qi];
        let id = match s.failures.iter().find(|(k, _)| *k == f) {
            Some((_, id)) => *id,
            None => {
                let q = &d.queries[qi];
                let mut tags = d
                    .tags
                    .with("name", q.name.clone())
                    .with("error", f.kind.tag());
                if let Some(code) = &f.sqlstate {
                    tags = tags.with("sqlstate", code.code());
                }
                let id = self.rec.series(d.metrics.failed, &tags);
                s.failures.push((f, id));
                id
            }
        };
        self.rec.rate(id, true);
    }

    /// Take a connection for this iteration; on failure the query is counted
    /// as failed and None returned.
    async fn acquire(
        &mut self,
        d: &PgDriver,
        qi: usize,
        deadline: Option<Instant>,
    ) -> Option<Held> {
        let result = match &d.mode {
            Mode::Pool(pool) => {
                let started = Instant::now();
                let got = pool.get().await;
                self.rec.time(self.pool_wait, started.elapsed());
                match got {
                    Ok(obj) => Ok(Held::Pooled(obj)),
                    Err(deadpool::managed::PoolError::Timeout(_)) => {
                        self.rec.add(self.pool_timeouts, 1);
                        self.rec.add(self.series[qi].queries, 1);
                        self.fail(d, qi, Failure::kind(ErrorKind::PoolTimeout));
                        return None;
                    }
                    Err(deadpool::managed::PoolError::Backend(e)) => Err(Failure::of(&e, true)),
                    Err(_) => Err(Failure::kind(ErrorKind::Other)),
                }
            }
            // Boxed: a connect future is kilobytes, and would otherwise make
            // every iteration's future (moved on each start) that large.
            Mode::PerVu => match self.conn.take().map(PgConn::refreshed) {
                Some(c) if c.usable() => Ok(Held::Owned(c)),
                _ => Box::pin(d.target.connect_owned(d.statements.len()))
                    .await
                    .map(Held::Owned)
                    .map_err(|e| Failure::of(&e, true)),
            },
            Mode::PerIteration => Box::pin(d.target.connect_owned(d.statements.len()))
                .await
                .map(Held::Owned)
                .map_err(|e| Failure::of(&e, true)),
        };
        match result {
            Ok(mut held) => {
                if let Some(t) = held.connected_in.take() {
                    self.rec.time(self.connect, t);
                }
                self.backoff = BACKOFF_MIN;
                Some(held)
            }
            Err(f) => {
                self.rec.add(self.series[qi].queries, 1);
                self.fail(d, qi, f);
                if !matches!(d.mode, Mode::PerIteration) {
                    let until = Instant::now() + self.backoff;
                    let until = deadline.map_or(until, |dl| until.min(dl));
                    tokio::time::sleep_until(until.into()).await;
                    self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                }
                None
            }
        }
    }

    /// Run query `qi` on `conn` and record it; true when it succeeded.
    async fn query(
        &mut self,
        d: &PgDriver,
        conn: &mut PgConn,
        qi: usize,
        t0: Option<Instant>,
    ) -> bool {
        let q = &d.queries[qi];
        for (slot, t) in &q.lets {
            self.scratch.clear();
            t.render(&mut self.state.scope(&[]), &mut self.scratch);
            std::mem::swap(&mut self.state.vars[*slot], &mut self.scratch);
        }
        let started = Instant::now();
        let result = match q.timeout {
            None => self.run(d, conn, q).await,
            Some(limit) => match tokio::time::timeout(limit, self.run(d, conn, q)).await {
                Ok(r) => r,
                Err(_) => {
                    // Cut off mid-query: ask the server to stop, do not reuse the session.
                    conn.dirty = true;
                    let token = conn.client.cancel_token();
                    let tls = d.target.tls.clone();
                    tokio::spawn(async move {
                        let _ = token.cancel_query(tls).await;
                    });
                    Err(Failure::kind(ErrorKind::Timeout))
                }
            },
        };
        let end = Instant::now();
        let s = &self.series[qi];
        self.rec.add(s.queries, 1);
        self.rec.time(s.duration, end - t0.unwrap_or(started));
        if q.tx.is_some() {
            self.rec.time(s.tx, end - started);
        }
        match result {
            Ok(rows) => {
                self.rec.add(s.rows, rows);
                self.rec.rate(s.ok, false);
                true
            }
            Err(f) => {
                if f.ends_session() {
                    conn.dirty = true;
                }
                self.fail(d, qi, f);
                false
            }
        }
    }

    /// The query's statements, in a transaction when it is one. Ok: rows.
    async fn run(&mut self, d: &PgDriver, conn: &mut PgConn, q: &Query) -> Result<u64, Failure> {
        let Some((begin, commit)) = q.tx else {
            return self.statement(d, conn, q.statements[0]).await;
        };
        conn.dirty = true;
        self.statement(d, conn, begin).await?;
        let mut rows = 0;
        for &si in &q.statements {
            match self.statement(d, conn, si).await {
                Ok(n) => rows += n,
                Err(f) => {
                    if !conn.client.is_closed()
                        && drive(&mut conn.io, conn.client.batch_execute("ROLLBACK"))
                            .await
                            .is_ok()
                    {
                        conn.dirty = false;
                    }
                    return Err(f);
                }
            }
        }
        let done = self.statement(d, conn, commit).await;
        if !conn.client.is_closed() {
            conn.dirty = false;
        }
        done.map(|_| rows)
    }

    /// One statement: prepare on first use on this connection, bind the
    /// rendered params as text, read the rows. Ok: rows returned or affected.
    async fn statement(
        &mut self,
        d: &PgDriver,
        conn: &mut PgConn,
        si: usize,
    ) -> Result<u64, Failure> {
        let st = &d.statements[si];
        let started = Instant::now();
        if conn.statements[si].is_none() {
            match drive(&mut conn.io, conn.client.prepare(&st.sql)).await {
                Ok(s) => conn.statements[si] = Some(s),
                Err(e) => {
                    self.checks(d, si, None, started.elapsed());
                    return Err(Failure::of(&e, false));
                }
            }
        }
        let prepared = conn.statements[si].as_ref().expect("prepared above");
        for (buf, t) in self.params.iter_mut().zip(&st.params) {
            buf.clear();
            t.render(&mut self.state.scope(&[]), buf);
        }
        let params = self.params[..st.params.len()]
            .iter()
            .map(|s| TextParam(s.as_str()));
        let (vars, scratch) = (&mut self.state.vars, &mut self.scratch);
        let was_dirty = conn.dirty;
        conn.dirty = true;
        let client = &conn.client;
        let work = async {
            let stream = client.query_raw(prepared, params).await?;
            let mut stream = std::pin::pin!(stream);
            let mut n = 0u64;
            while let Some(row) = stream.next().await {
                let row = row?;
                if n == 0 && !st.captures.is_empty() {
                    capture(st, &row, vars, scratch);
                }
                n += 1;
            }
            Ok::<u64, tokio_postgres::Error>(stream.rows_affected().unwrap_or(n))
        };
        let result = drive(&mut conn.io, work).await;
        conn.dirty = was_dirty;
        let took = started.elapsed();
        match result {
            Ok(n) => {
                if n == 0 && !st.captures.is_empty() {
                    for c in &st.captures {
                        self.state.vars[c.var].clear();
                    }
                }
                self.checks(d, si, Some(n), took);
                Ok(n)
            }
            Err(e) => {
                self.checks(d, si, None, took);
                Err(Failure::of(&e, false))
            }
        }
    }

    fn checks(&mut self, d: &PgDriver, si: usize, rows: Option<u64>, took: Duration) {
        let st = &d.statements[si];
        let ids = &self.check_series[si];
        for (c, id) in st.checks.iter().zip(ids) {
            self.rec.rate(*id, c.eval(rows, took));
        }
        for (c, id) in st.captures.iter().zip(&ids[st.checks.len()..]) {
            let got = rows.is_some_and(|n| n > 0) && !self.state.vars[c.var].is_empty();
            self.rec.rate(*id, got);
        }
    }

    async fn release(&mut self, d: &PgDriver, held: Held) {
        match held {
            Held::Owned(c) if matches!(d.mode, Mode::PerVu) && c.usable() => self.conn = Some(c),
            // Boxed, as connecting is: closing holds the connection by value.
            Held::Owned(c) => Box::pin(c.close()).await,
            // Back to the pool, which checks it on the next get.
            Held::Pooled(_) => {}
        }
    }
}

/// Captured columns of the first row into their vars.
fn capture(
    st: &super::Statement,
    row: &tokio_postgres::Row,
    vars: &mut [String],
    scratch: &mut String,
) {
    for c in &st.captures {
        let var = &mut vars[c.var];
        var.clear();
        let col = c.column.get_ref();
        let Some(i) = row.columns().iter().position(|k| k.name() == col) else {
            continue;
        };
        let ty = row.columns()[i].type_();
        if let Ok(Raw(raw)) = row.try_get::<_, Raw<'_>>(i) {
            scratch.clear();
            if write_text(ty, raw, scratch) {
                var.push_str(scratch);
            }
        }
    }
}

impl Vu for PgVu {
    async fn iteration(&mut self, it: Iteration) {
        let (d, v) = (&*self.d, &mut self.v);
        v.state.begin(it.number);
        let start = Instant::now();
        // Open models: the first query's latency counts from the scheduled
        // start, pool wait and connect included.
        let scheduled = it.scheduled.filter(|s| *s < start);
        let (first, count) = match d.flow {
            Flow::Sequence => (0, d.queries.len()),
            Flow::Weighted => (d.weights.pick(&mut v.state.rng), 1),
        };
        let Some(mut held) = v.acquire(d, first, it.deadline).await else {
            return;
        };
        for qi in first..first + count {
            let t0 = if qi == first { scheduled } else { None };
            let ok = v.query(d, &mut held, qi, t0).await;
            if !ok && !held.usable() {
                break;
            }
            if let Some(tt) = &d.queries[qi].think_time {
                tokio::time::sleep(tt.pick(&mut v.state.rng)).await;
            }
        }
        v.release(d, held).await;
    }

    async fn close(&mut self) {
        if let Some(c) = self.v.conn.take() {
            c.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every iteration's future is created and moved into the engine's
    /// select: the rare, large parts (connecting) are boxed so it stays small.
    #[test]
    fn an_iteration_future_stays_small() {
        for connections in ["pool", "per-vu", "per-iteration"] {
            let size = crate::driver::iteration_future_size::<PgDriver>(&format!(
                "database_url = \"postgres://u@127.0.0.1/x\"\nconnections = \"{connections}\"\n[[queries]]\nsql = \"SELECT 1\"\n"
            ));
            assert!(size < 4096, "{connections}: {size} bytes");
        }
    }
}
