//! Loading: binary COPY on --jobs connections, tables in dependency waves,
//! and all-or-nothing: a failure rolls back the open wave and removes the
//! rows that earlier waves of this run committed.

use crate::Error;
use crate::check::Target;
use crate::encode::{self, HEADER, TRAILER};
use crate::model::Model;
use crate::progress::Progress;
use crate::value::Value;
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::SinkExt as _;
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio_postgres::Client;
use volley_protocols::pg::describe;

/// Rows per COPY stream when a big table is split across connections.
/// Measured on PostgreSQL 15 with 2 cores (scripts/bench-seed.sh): two
/// streams into one table load 1.2-1.3x faster than one, for ~15% more
/// server CPU (they contend on relation extension; 16 reworked it).
pub const STREAM_ROWS: u64 = 100_000;

/// Rows per stream: the user's choice, else `STREAM_ROWS`.
pub fn stream_rows(choice: Option<u64>) -> u64 {
    choice.unwrap_or(STREAM_ROWS).max(1)
}
/// Bytes per chunk handed to the connection.
const CHUNK: usize = 256 * 1024;

struct Stream {
    target: usize,
    rows: Range<u64>,
}

/// What one connection committed in one wave: its transaction id and tables.
struct Committed {
    xid: i64,
    tables: Vec<usize>,
}

enum StreamError {
    /// Another stream failed first; this one stopped.
    Cancelled,
    Failed(String),
}

/// Where piece `p` of `pieces` starts in `rows` (no overflow for any count).
fn split(rows: u64, p: u64, pieces: u64) -> u64 {
    (u128::from(rows) * u128::from(p) / u128::from(pieces)) as u64
}

/// Wave of each table: 0 without parents, else one after its deepest parent.
fn waves(model: &Model, targets: &[Target]) -> Vec<Vec<usize>> {
    let mut level = vec![0usize; model.tables.len()];
    for &ti in &model.order {
        level[ti] = model.tables[ti]
            .parents
            .iter()
            .map(|&p| level[p] + 1)
            .max()
            .unwrap_or(0);
    }
    let max = level.iter().copied().max().unwrap_or(0);
    (0..=max)
        .map(|l| {
            model
                .order
                .iter()
                .filter(|&&ti| level[ti] == l)
                .filter_map(|&ti| targets.iter().position(|t| t.table == ti))
                .collect()
        })
        .filter(|w: &Vec<usize>| !w.is_empty())
        .collect()
}

pub async fn load(
    model: Arc<Model>,
    targets: Arc<Vec<Target>>,
    clients: &[Arc<Client>],
    progress: Arc<Progress>,
    disable_triggers: bool,
    stream_rows: u64,
) -> Result<(), Error> {
    let jobs = clients.len() as u64;
    let mut committed: Vec<Committed> = Vec::new();
    for wave in waves(&model, &targets) {
        let mut queue = VecDeque::new();
        for &ti in &wave {
            let t = &targets[ti];
            let rows = model.tables[t.table].rows;
            let pieces = (rows / stream_rows).clamp(1, jobs);
            progress.streams(t.table, pieces as usize);
            for p in 0..pieces {
                queue.push_back(Stream {
                    target: ti,
                    rows: split(rows, p, pieces)..split(rows, p + 1, pieces),
                });
            }
        }
        let workers = queue.len().min(clients.len());
        let queue = Arc::new(Mutex::new(queue));
        let failed = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::new();
        for client in clients.iter().take(workers) {
            handles.push(tokio::spawn(worker(
                client.clone(),
                model.clone(),
                targets.clone(),
                queue.clone(),
                failed.clone(),
                progress.clone(),
                disable_triggers,
            )));
        }
        let mut results = Vec::new();
        for h in handles {
            results.push(
                h.await.unwrap_or_else(|e| {
                    Err(StreamError::Failed(format!("a loader task died: {e}")))
                }),
            );
        }
        let first_error = results.iter().find_map(|r| match r {
            Err(StreamError::Failed(m)) => Some(m.clone()),
            _ => None,
        });
        if let Some(msg) = first_error {
            for c in clients.iter().take(workers) {
                let _ = c.batch_execute("ROLLBACK").await;
            }
            progress.abandon();
            return Err(Error::Load(
                undo(&model, &targets, clients, &committed, msg).await,
            ));
        }
        // Every stream of the wave is in; commit them all.
        for (c, r) in clients.iter().take(workers).zip(results) {
            let Ok((xid, tables)) = r else { continue };
            if let Err(e) = c.batch_execute("COMMIT").await {
                for c in clients.iter().take(workers) {
                    let _ = c.batch_execute("ROLLBACK").await;
                }
                let msg = format!("COMMIT failed: {}", describe(&e));
                return Err(Error::Load(
                    undo(&model, &targets, clients, &committed, msg).await,
                ));
            }
            committed.push(Committed { xid, tables });
        }
    }
    Ok(())
}

async fn worker(
    client: Arc<Client>,
    model: Arc<Model>,
    targets: Arc<Vec<Target>>,
    queue: Arc<Mutex<VecDeque<Stream>>>,
    failed: Arc<AtomicBool>,
    progress: Arc<Progress>,
    disable_triggers: bool,
) -> Result<(i64, Vec<usize>), StreamError> {
    let fail = |m: String| {
        failed.store(true, Ordering::Relaxed);
        StreamError::Failed(m)
    };
    if let Err(e) = client.batch_execute("BEGIN").await {
        return Err(fail(format!(
            "cannot begin a transaction: {}",
            describe(&e)
        )));
    }
    if disable_triggers
        && let Err(e) = client
            .batch_execute("SET LOCAL session_replication_role = replica")
            .await
    {
        return Err(fail(format!(
            "--disable-triggers: {} (it needs a superuser, or a role allowed to SET session_replication_role)",
            describe(&e)
        )));
    }
    let xid: i64 = match client
        .query_one(
            "SELECT (pg_current_xact_id()::text::bigint % 4294967296)",
            &[],
        )
        .await
    {
        Ok(r) => r.get(0),
        Err(e) => {
            return Err(fail(format!(
                "cannot begin a transaction: {}",
                describe(&e)
            )));
        }
    };
    let mut tables = Vec::new();
    loop {
        if failed.load(Ordering::Relaxed) {
            return Err(StreamError::Cancelled);
        }
        let Some(s) = queue.lock().expect("queue lock").pop_front() else {
            break;
        };
        let t = targets[s.target].table;
        if !tables.contains(&t) {
            tables.push(t);
        }
        progress.start(t);
        match copy(&client, &model, &targets, &s, &failed, &progress).await {
            Ok(()) => progress.stream_done(t),
            Err(StreamError::Failed(m)) => return Err(fail(m)),
            Err(c) => return Err(c),
        }
    }
    Ok((xid, tables))
}

/// One COPY stream: rows are generated and encoded on a blocking thread,
/// chunks go to the server as they are ready.
async fn copy(
    client: &Client,
    model: &Arc<Model>,
    targets: &Arc<Vec<Target>>,
    s: &Stream,
    failed: &Arc<AtomicBool>,
    progress: &Arc<Progress>,
) -> Result<(), StreamError> {
    let target = &targets[s.target];
    let tname = model.tables[target.table].name.clone();
    let failed_row = |e: &tokio_postgres::Error| -> String {
        let row = e
            .as_db_error()
            .and_then(|d| d.where_())
            .and_then(copy_line)
            .map(|line| s.rows.start + line);
        match row {
            Some(r) => format!("table {tname}, row {r}: {}", describe(e)),
            None => format!("table {tname}: {}", describe(e)),
        }
    };
    let sink = client
        .copy_in::<_, Bytes>(target.copy_sql.as_str())
        .await
        .map_err(|e| StreamError::Failed(failed_row(&e)))?;
    futures_util::pin_mut!(sink);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let (m, ts, fl, pr) = (
        model.clone(),
        targets.clone(),
        failed.clone(),
        progress.clone(),
    );
    let (ti, range) = (s.target, s.rows.clone());
    let producer = tokio::task::spawn_blocking(move || generate(&m, &ts[ti], range, &tx, &fl, &pr));
    let mut send_error = None;
    while let Some(chunk) = rx.recv().await {
        if let Err(e) = sink.send(chunk).await {
            send_error = Some(e);
            break;
        }
    }
    drop(rx);
    let _ = producer.await;
    if let Some(e) = send_error {
        return Err(StreamError::Failed(failed_row(&e)));
    }
    if failed.load(Ordering::Relaxed) {
        return Err(StreamError::Cancelled); // dropping the sink aborts the COPY
    }
    sink.finish()
        .await
        .map_err(|e| StreamError::Failed(failed_row(&e)))?;
    Ok(())
}

fn generate(
    model: &Model,
    target: &Target,
    rows: Range<u64>,
    tx: &tokio::sync::mpsc::Sender<Bytes>,
    failed: &AtomicBool,
    progress: &Progress,
) {
    let t = &model.tables[target.table];
    let writer = RowWriter::new(t, &target.cols);
    let mut vals = vec![Value::Null; t.columns.len()];
    let mut buf = BytesMut::with_capacity(CHUNK + 4096);
    buf.put_slice(HEADER);
    let mut pending = 0u64;
    for row in rows {
        writer.write(t, row, &mut vals, &mut buf);
        pending += 1;
        if buf.len() >= CHUNK {
            if failed.load(Ordering::Relaxed) || tx.blocking_send(buf.split().freeze()).is_err() {
                return;
            }
            buf.reserve(CHUNK + 4096);
            progress.rows(target.table, pending);
            pending = 0;
        }
    }
    buf.put_slice(TRAILER);
    let _ = tx.blocking_send(buf.freeze());
    progress.rows(target.table, pending);
}

/// Writes rows for COPY. Constants are encoded once and sequences straight
/// into the buffer; only the other columns go through `Value`s. The bytes are
/// the same as `encode::row` of the evaluated row (the tests compare).
pub struct RowWriter {
    fields: Vec<Field>,
    /// Evaluation order of the columns that need evaluating.
    order: Vec<usize>,
}

enum Field {
    Fixed(Vec<u8>),
    Seq {
        start: i64,
        step: i64,
        repeat: u64,
        enc: encode::Enc,
    },
    Value(usize, encode::Enc),
}

impl RowWriter {
    pub fn new(t: &crate::model::Table, cols: &[(usize, encode::Enc)]) -> Self {
        use crate::generator::Gen;
        use encode::Enc;
        let mut slow = Vec::new();
        let fields = cols
            .iter()
            .map(|&(c, enc)| {
                let col = &t.columns[c];
                if col.null_ratio > 0.0 {
                    slow.push(c);
                    return Field::Value(c, enc);
                }
                match &col.generator {
                    Gen::Const(v) => {
                        let mut b = BytesMut::new();
                        encode::field(&mut b, v, enc);
                        Field::Fixed(b.to_vec())
                    }
                    Gen::Seq {
                        start,
                        step,
                        repeat,
                    } if matches!(enc, Enc::Int2 | Enc::Int4 | Enc::Int8) => Field::Seq {
                        start: *start,
                        step: *step,
                        repeat: *repeat,
                        enc,
                    },
                    _ => {
                        slow.push(c);
                        Field::Value(c, enc)
                    }
                }
            })
            .collect();
        Self {
            fields,
            order: t.needed(&slow),
        }
    }

    #[inline]
    pub fn write(&self, t: &crate::model::Table, row: u64, vals: &mut [Value], buf: &mut BytesMut) {
        if !self.order.is_empty() {
            t.eval(row, &self.order, vals, false);
        }
        buf.put_i16(self.fields.len() as i16);
        for f in &self.fields {
            match f {
                Field::Fixed(b) => buf.put_slice(b),
                Field::Seq {
                    start,
                    step,
                    repeat,
                    enc,
                } => {
                    let k = if *repeat == 1 { row } else { row / repeat };
                    let v = start.wrapping_add((k as i64).wrapping_mul(*step));
                    encode::field(buf, &Value::Int(v), *enc);
                }
                Field::Value(c, enc) => encode::field(buf, &vals[*c], *enc),
            }
        }
    }
}

/// "COPY users, line 57, column email: ..." -> 57
fn copy_line(where_: &str) -> Option<u64> {
    let rest = &where_[where_.find("line ")? + 5..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// After a failure: remove the rows that earlier waves of this run committed
/// (their transactions' ids mark exactly those rows), children first.
async fn undo(
    model: &Model,
    targets: &[Target],
    clients: &[Arc<Client>],
    committed: &[Committed],
    msg: String,
) -> String {
    if committed.is_empty() {
        return format!("{msg}\nnothing was written: every table is as it was before this run");
    }
    let c = &clients[0];
    let mut order: Vec<usize> = committed.iter().flat_map(|c| c.tables.clone()).collect();
    order.sort_by_key(|t| std::cmp::Reverse(model.order.iter().position(|o| o == t)));
    order.dedup();
    let mut result = c.batch_execute("BEGIN").await.map_err(|e| describe(&e));
    let mut removed = Vec::new();
    for ti in &order {
        if result.is_err() {
            break;
        }
        let xids: Vec<i64> = committed
            .iter()
            .filter(|c| c.tables.contains(ti))
            .map(|c| c.xid)
            .collect();
        let Some(target) = targets.iter().find(|t| t.table == *ti) else {
            continue;
        };
        let sql = format!(
            "DELETE FROM {} WHERE xmin::text::bigint = ANY($1)",
            target.sql_name
        );
        match c.execute(sql.as_str(), &[&xids]).await {
            Ok(n) => removed.push(format!("{} ({n} rows)", model.tables[*ti].name)),
            Err(e) => result = Err(describe(&e)),
        }
    }
    match result {
        Ok(()) => match c.batch_execute("COMMIT").await {
            Ok(()) => format!(
                "{msg}\nrolled back: the rows this run had already committed were removed from {}; every table is as it was before this run",
                removed.join(", ")
            ),
            Err(e) => format!(
                "{msg}\ncould not remove the rows committed earlier in this run: {}",
                describe(&e)
            ),
        },
        Err(e) => {
            let _ = c.batch_execute("ROLLBACK").await;
            format!(
                "{msg}\ncould not remove the rows committed earlier in this run ({e}); run volley seed --cleanup with the same spec, --seed and --scale"
            )
        }
    }
}

/// Move sequences behind seeded id columns past the largest seeded value, so
/// the application's next insert does not collide.
pub async fn bump_sequences(model: &Model, targets: &[Target], c: &Client) -> Result<(), Error> {
    for t in targets {
        for (col, seq) in &t.sequences {
            let sql = format!(
                "SELECT setval($1::text::regclass, m) FROM (SELECT max({}) AS m FROM {}) s WHERE m IS NOT NULL",
                crate::catalog::ident(&model.tables[t.table].columns[*col].name),
                t.sql_name
            );
            c.query(sql.as_str(), &[seq])
                .await
                .map_err(|e| Error::Db(format!("cannot move sequence {seq}: {}", describe(&e))))?;
        }
    }
    Ok(())
}

/// --cleanup: regenerate each table's key (primary key, or a unique key) and
/// delete exactly those rows, children first, in one transaction.
pub async fn cleanup(
    model: Arc<Model>,
    targets: Arc<Vec<Target>>,
    c: &Client,
) -> Result<Vec<(usize, u64)>, Error> {
    for t in targets.iter() {
        if t.key.is_none() {
            let tb = &model.tables[t.table];
            return Err(Error::Spec(vec![model.error(
                Some(tb.span.clone()),
                format!(
                    "table {}: --cleanup finds seeded rows by their primary key (or a unique key), and the spec generates none of {}'s keys; add a generator for its primary key",
                    tb.name, tb.name
                ),
            )]));
        }
    }
    let tx_err = |e: tokio_postgres::Error| Error::Db(describe(&e));
    c.batch_execute("BEGIN").await.map_err(tx_err)?;
    let mut out = Vec::new();
    let mut order = model.order.clone();
    order.reverse();
    for (n, ti) in order.into_iter().enumerate() {
        let Some(target) = targets.iter().find(|t| t.table == ti) else {
            continue;
        };
        let tb = &model.tables[ti];
        let key = target.key.clone().expect("checked above");
        let cols: Vec<(usize, encode::Enc)> = key
            .iter()
            .map(|k| {
                *target
                    .cols
                    .iter()
                    .find(|(c, _)| c == k)
                    .expect("key column is loaded")
            })
            .collect();
        let names: Vec<String> = key
            .iter()
            .map(|k| crate::catalog::ident(&tb.columns[*k].name))
            .collect();
        let tmp = format!("volley_seed_keys_{n}");
        let result: Result<u64, String> = async {
            let db = |e: tokio_postgres::Error| describe(&e);
            c.batch_execute(&format!(
                "CREATE TEMP TABLE {tmp} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA",
                names.join(", "),
                target.sql_name
            ))
            .await
            .map_err(db)?;
            let (m, k) = (model.clone(), key.clone());
            let chunks = tokio::task::spawn_blocking(move || {
                let t = &m.tables[ti];
                let order = t.needed(&k);
                let mut vals = vec![Value::Null; t.columns.len()];
                let mut out = Vec::new();
                let mut buf = BytesMut::with_capacity(CHUNK);
                buf.put_slice(HEADER);
                for row in 0..t.rows {
                    t.eval(row, &order, &mut vals, false);
                    encode::row(&mut buf, &vals, &cols);
                    if buf.len() >= CHUNK {
                        out.push(buf.split().freeze());
                    }
                }
                buf.put_slice(TRAILER);
                out.push(buf.freeze());
                out
            })
            .await
            .map_err(|e| format!("generating the keys failed: {e}"))?;
            let sink = c
                .copy_in::<_, Bytes>(
                    format!(
                        "COPY {tmp} ({}) FROM STDIN (FORMAT binary)",
                        names.join(", ")
                    )
                    .as_str(),
                )
                .await
                .map_err(db)?;
            futures_util::pin_mut!(sink);
            for ch in chunks {
                sink.send(ch).await.map_err(db)?;
            }
            sink.finish().await.map_err(db)?;
            c.batch_execute(&format!("ANALYZE {tmp}"))
                .await
                .map_err(db)?;
            let on: Vec<String> = names.iter().map(|n| format!("t.{n} = k.{n}")).collect();
            c.execute(
                format!(
                    "DELETE FROM {} t USING {tmp} k WHERE {}",
                    target.sql_name,
                    on.join(" AND ")
                )
                .as_str(),
                &[],
            )
            .await
            .map_err(db)
        }
        .await;
        match result {
            Ok(deleted) => out.push((ti, deleted)),
            Err(e) => {
                let _ = c.batch_execute("ROLLBACK").await;
                return Err(Error::Load(format!(
                    "cleanup of table {}: {e}\nnothing was deleted",
                    tb.name
                )));
            }
        }
    }
    crate::manifest::forget(&targets, c).await.map_err(tx_err)?;
    c.batch_execute("COMMIT").await.map_err(tx_err)?;
    out.reverse();
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_row_writer_writes_what_encode_row_writes() {
        use crate::check::Target;
        use crate::value::Value;
        use bytes::BytesMut;
        let text = r#"
[tables.t]
rows = 500
[tables.t.columns]
id = { gen = "seq", start = 7, step = 3 }
branch = { gen = "seq", repeat = 100 }
zero = { gen = "const", value = 0 }
pad = { gen = "const", value = "" }
maybe = { gen = "const", value = "x", null_ratio = 0.5 }
at = { gen = "timestamp", from = "2025-01-01", to = "2025-02-01" }
later = { gen = "timestamp", at = "at + 1h..2h" }
"#;
        let spec =
            crate::spec::SpecFile::parse(std::path::Path::new("t.toml"), text.into()).unwrap();
        let m = crate::model::Model::build(spec, 1, 1.0, true).unwrap();
        let target = Target::inferred(&m, 0);
        let t = &m.tables[0];
        let w = super::RowWriter::new(t, &target.cols);
        let all = t.needed(&(0..t.columns.len()).collect::<Vec<_>>());
        let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
        let mut va = vec![Value::Null; t.columns.len()];
        let mut vb = va.clone();
        for row in 0..t.rows {
            w.write(t, row, &mut va, &mut a);
            t.eval(row, &all, &mut vb, false);
            crate::encode::row(&mut b, &vb, &target.cols);
        }
        assert_eq!(a, b);
    }

    #[test]
    fn copy_line_reads_the_row() {
        assert_eq!(
            super::copy_line("COPY users, line 57, column email: \"x\""),
            Some(57)
        );
        assert_eq!(super::copy_line("COPY users, line 3"), Some(3));
        assert_eq!(super::copy_line("SQL function"), None);
    }
}
