//! volley-seed: fills PostgreSQL with realistic, deterministic test data at
//! COPY speed, and writes the CSV feeders that load plans read.
//!
//! A spec (TOML) lists tables, row counts and a generator per column. Every
//! cell is a pure function of (seed, table, column, row), so the same seed
//! gives byte-identical data however the rows are split across --jobs, and
//! --cleanup can find the seeded rows again by regenerating their keys.

mod catalog;
mod check;
mod compile;
mod encode;
mod export;
mod fakes;
mod fit;
mod generator;
mod load;
mod manifest;
mod model;
mod progress;
mod rng;
mod spec;
mod value;

pub use spec::SpecError;

use check::Target;
use fit::human_bytes;
use model::Model;
use progress::{Progress, rate, thousands};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tokio_postgres::Client;
use volley_protocols::pg::describe;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec (or the DDL) is wrong: nothing was written.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Spec(Vec<SpecError>),
    /// The database could not be reached or refused a statement.
    #[error("{0}")]
    Db(String),
    /// Loading failed; the message says which table and row, and what was undone.
    #[error("{0}")]
    Load(String),
    #[error("{0}")]
    Io(String),
}

impl Error {
    /// A mistake in the spec or the command line (exit 2), not a runtime failure.
    pub fn is_usage(&self) -> bool {
        matches!(self, Error::Spec(_))
    }

    /// The spec errors' messages rewritten by `f` (the CLI puts serde's
    /// "expected u64" in words users know).
    pub fn map_spec_messages(self, f: impl Fn(&str) -> String) -> Self {
        match self {
            Error::Spec(errs) => Error::Spec(
                errs.into_iter()
                    .map(|e| SpecError {
                        message: f(&e.message),
                        ..e
                    })
                    .collect(),
            ),
            other => other,
        }
    }
}

/// The database to fill: connection settings with the TLS its sslmode asks
/// for (the CLI parses the URL as the postgres driver does), and a label
/// for messages that never shows the password.
#[derive(Clone)]
pub struct Database {
    pub config: tokio_postgres::Config,
    pub tls: tokio_postgres_rustls::MakeRustlsConnect,
    pub label: String,
}

#[derive(Clone)]
pub struct Options {
    /// None: only --dry-run works, with types inferred from the generators.
    pub database: Option<Database>,
    pub seed: u64,
    pub scale: f64,
    /// Connections loading at once.
    pub jobs: usize,
    pub dry_run: bool,
    pub truncate: bool,
    pub cleanup: bool,
    /// Load with session_replication_role = replica: no foreign-key checks
    /// and no triggers (the refs point at existing parents by construction).
    pub disable_triggers: bool,
    /// Split tables into COPY streams of this many rows across the
    /// connections (None: 100,000).
    pub stream_rows: Option<u64>,
    /// Progress bars on a terminal, one line per table otherwise.
    pub progress: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            database: None,
            seed: 42,
            scale: 1.0,
            jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
            dry_run: false,
            truncate: false,
            cleanup: false,
            disable_triggers: false,
            stream_rows: None,
            progress: false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Seed,
    DryRun,
    Cleanup,
}

#[derive(Debug, Clone)]
pub struct TableReport {
    pub name: String,
    pub rows: u64,
    /// Binary COPY bytes (estimated from a sample in dry runs; past u64
    /// for huge tables).
    pub bytes: u128,
    pub seconds: f64,
    /// --cleanup: rows deleted.
    pub deleted: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct ExportReport {
    pub name: String,
    pub file: PathBuf,
    pub rows: u64,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub mode: Mode,
    pub seed: u64,
    pub scale: f64,
    pub tables: Vec<TableReport>,
    pub exports: Vec<ExportReport>,
    pub seconds: f64,
    pub notes: Vec<String>,
}

impl Report {
    /// Past u64 when several tables hold up to i64::MAX rows each.
    pub fn total_rows(&self) -> u128 {
        self.tables.iter().map(|t| u128::from(t.rows)).sum()
    }

    /// The end-of-run text for the terminal.
    pub fn render(&self, per_table: bool) -> String {
        let mut out = String::new();
        for n in &self.notes {
            let _ = writeln!(out, "note: {n}");
        }
        match self.mode {
            Mode::DryRun => {
                let _ = writeln!(
                    out,
                    "dry run (seed {}, scale {}): nothing written",
                    self.seed, self.scale
                );
                let mut bytes = 0;
                for t in &self.tables {
                    bytes += t.bytes;
                    let _ = writeln!(
                        out,
                        "  {:<16} {:>12} rows  ~{}",
                        t.name,
                        thousands(t.rows),
                        human_bytes(t.bytes)
                    );
                }
                let _ = writeln!(
                    out,
                    "  {:<16} {:>12} rows  ~{} of COPY data (the tables take more on disk: row headers, indexes)",
                    "total",
                    thousands(self.total_rows()),
                    human_bytes(bytes)
                );
            }
            Mode::Cleanup => {
                let _ = writeln!(
                    out,
                    "cleanup (seed {}, scale {}): deleted the seeded rows",
                    self.seed, self.scale
                );
                for t in &self.tables {
                    let _ = writeln!(
                        out,
                        "  {:<16} {:>12} of {} rows deleted",
                        t.name,
                        thousands(t.deleted.unwrap_or(0)),
                        thousands(t.rows)
                    );
                }
            }
            Mode::Seed => {
                if per_table {
                    for t in &self.tables {
                        let _ = writeln!(
                            out,
                            "  {:<16} {:>12} rows {:>8.2} s {:>14} rows/s",
                            t.name,
                            thousands(t.rows),
                            t.seconds,
                            thousands(rate(t.rows, t.seconds))
                        );
                    }
                }
                let _ = writeln!(
                    out,
                    "seeded {} tables, {} rows in {:.2} s ({} rows/s), seed {}, scale {}",
                    self.tables.len(),
                    thousands(self.total_rows()),
                    self.seconds,
                    thousands(rate(self.total_rows(), self.seconds)),
                    self.seed,
                    self.scale
                );
                for e in &self.exports {
                    let _ = writeln!(
                        out,
                        "  wrote {} ({} rows) for export.{}",
                        e.file.display(),
                        thousands(e.rows),
                        e.name
                    );
                }
            }
        }
        out
    }
}

/// Check a spec without touching any database: parse it, compile every
/// generator, order the tables. Returns the table names and row counts.
pub fn validate(spec: &Path, seed: u64, scale: f64) -> Result<Vec<(String, u64)>, Error> {
    let m = build(spec, seed, scale, false)?;
    Ok(m.order
        .iter()
        .map(|&t| (m.tables[t].name.clone(), m.tables[t].rows))
        .collect())
}

fn build(spec: &Path, seed: u64, scale: f64, full: bool) -> Result<Model, Error> {
    let s = spec::SpecFile::load(spec).map_err(|e| Error::Spec(vec![e]))?;
    Model::build(s, seed, scale, full).map_err(|e| Error::Spec(vec![e]))
}

/// Seed (or dry-run, or clean up) the database described by `opts` from `spec`.
pub fn run(spec: &Path, opts: &Options) -> Result<Report, Error> {
    let model = Arc::new(build(spec, opts.seed, opts.scale, !opts.dry_run)?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Io(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(run_async(model, opts))
}

async fn connect(db: &Database) -> Result<Client, Error> {
    let (client, conn) = db.config.connect(db.tls.clone()).await.map_err(|e| {
        // No answer at all: say where the address came from.
        let hint = if e.as_db_error().is_none() {
            " (is PostgreSQL running there? the address comes from --database-url or DATABASE_URL)"
        } else {
            ""
        };
        Error::Db(format!(
            "cannot connect to {}: {}{hint}",
            db.label,
            describe(&e)
        ))
    })?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("seed connection closed: {e}");
        }
    });
    Ok(client)
}

async fn read_catalog(model: &Model, c: &Client) -> Result<Vec<Option<catalog::TableInfo>>, Error> {
    let mut out = Vec::new();
    for t in &model.tables {
        out.push(catalog::read(c, &t.name).await.map_err(|e| {
            Error::Db(format!(
                "cannot read the catalog for {}: {}",
                t.name,
                describe(&e)
            ))
        })?);
    }
    Ok(out)
}

async fn run_async(model: Arc<Model>, opts: &Options) -> Result<Report, Error> {
    let started = Instant::now();
    let mut notes = Vec::new();
    let Some(db) = &opts.database else {
        if opts.dry_run {
            let targets: Vec<Target> = (0..model.tables.len())
                .map(|t| Target::inferred(&model, t))
                .collect();
            notes.push("no database given: column types are inferred from the generators".into());
            return dry_run(model, targets, opts, notes).await;
        }
        return Err(Error::Spec(vec![model.error(
            None,
            "no database: pass --database-url postgres://... or set DATABASE_URL",
        )]));
    };
    let client = connect(db).await?;
    let mut infos = read_catalog(&model, &client).await?;
    let mut in_ddl = false;
    if let Some(ddl) = &model.ddl
        && infos.iter().any(Option::is_none)
        && !opts.cleanup
    {
        let text = std::fs::read_to_string(ddl).map_err(|e| {
            Error::Spec(vec![
                model.error(None, format!("ddl {}: {e}", ddl.display())),
            ])
        })?;
        client
            .batch_execute("BEGIN")
            .await
            .map_err(|e| Error::Db(describe(&e)))?;
        in_ddl = true;
        if let Err(e) = client.batch_execute(&text).await {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(Error::Spec(vec![
                model.error(None, format!("ddl {}: {}", ddl.display(), describe(&e))),
            ]));
        }
        infos = read_catalog(&model, &client).await?;
        notes.push(format!("created the schema from {}", ddl.display()));
    }
    let targets = match check::check(&model, &infos) {
        Ok(t) => t,
        Err(errs) => {
            if in_ddl {
                let _ = client.batch_execute("ROLLBACK").await;
            }
            return Err(Error::Spec(errs));
        }
    };
    if opts.dry_run {
        if in_ddl {
            let _ = client.batch_execute("ROLLBACK").await;
            notes.push("the ddl ran in a transaction that was rolled back".into());
            notes.retain(|n| !n.starts_with("created"));
        }
        return dry_run(model, targets, opts, notes).await;
    }
    if in_ddl {
        client
            .batch_execute("COMMIT")
            .await
            .map_err(|e| Error::Db(describe(&e)))?;
    }
    let targets = Arc::new(targets);

    // Parent columns that children reference, passwords: made once, up front.
    let m = model.clone();
    tokio::task::spawn_blocking(move || m.prepare_refs(None))
        .await
        .map_err(|e| Error::Io(format!("preparing references failed: {e}")))?;

    if opts.cleanup {
        let wrong = manifest::mismatches(&model, &targets, &client, opts.seed, opts.scale)
            .await
            .map_err(|e| Error::Db(describe(&e)))?;
        if !wrong.is_empty() {
            return Err(Error::Spec(vec![model.error(
                None,
                format!(
                    "--cleanup regenerates the seeded keys from --seed and --scale, and {}: pass the flags of the seed run (nothing was deleted)",
                    wrong.join("; ")
                ),
            )]));
        }
        let deleted = load::cleanup(model.clone(), targets.clone(), &client).await?;
        return Ok(Report {
            mode: Mode::Cleanup,
            seed: opts.seed,
            scale: opts.scale,
            tables: deleted
                .into_iter()
                .map(|(ti, n)| TableReport {
                    name: model.tables[ti].name.clone(),
                    rows: model.tables[ti].rows,
                    bytes: 0,
                    seconds: 0.0,
                    deleted: Some(n),
                })
                .collect(),
            exports: Vec::new(),
            seconds: started.elapsed().as_secs_f64(),
            notes,
        });
    }

    // No more connections than COPY streams could use at once.
    let stream_rows = load::stream_rows(opts.stream_rows);
    let streams: u64 = model
        .tables
        .iter()
        .map(|t| (t.rows / stream_rows).max(1))
        .fold(0, u64::saturating_add);
    let jobs = opts.jobs.max(1).min(streams.min(1024) as usize);
    let mut clients = vec![Arc::new(client)];
    for _ in 1..jobs {
        clients.push(Arc::new(connect(db).await?));
    }
    if opts.truncate {
        let names: Vec<&str> = targets.iter().map(|t| t.sql_name.as_str()).collect();
        clients[0]
            .batch_execute(&format!("TRUNCATE {}", names.join(", ")))
            .await
            .map_err(|e| {
                Error::Db(format!(
                    "--truncate: {} (tables outside the spec reference these; add them to the spec or empty them first)",
                    describe(&e)
                ))
            })?;
    }
    let rows: Vec<(String, u64)> = model
        .tables
        .iter()
        .map(|t| (t.name.clone(), t.rows))
        .collect();
    let progress = Arc::new(Progress::new(&rows, opts.progress));
    let load_started = Instant::now();
    load::load(
        model.clone(),
        targets.clone(),
        &clients,
        progress.clone(),
        opts.disable_triggers,
        stream_rows,
    )
    .await?;
    let load_secs = load_started.elapsed().as_secs_f64();
    load::bump_sequences(&model, &targets, &clients[0]).await?;
    if let Some(note) = manifest::record(&model, &targets, &clients[0], opts.seed, opts.scale).await
    {
        notes.push(note);
    }

    let mut exports = Vec::new();
    for ex in &model.exports {
        let n = export::write(&model, ex, Some(&clients[0])).await?;
        exports.push(ExportReport {
            name: ex.name.clone(),
            file: ex.file.clone(),
            rows: n,
        });
    }
    let tables = model
        .order
        .iter()
        .map(|&ti| TableReport {
            name: model.tables[ti].name.clone(),
            rows: model.tables[ti].rows,
            bytes: 0,
            seconds: progress.seconds(ti),
            deleted: None,
        })
        .collect();
    if !progress.plain() && opts.progress {
        // Bars already showed each table.
    }
    Ok(Report {
        mode: Mode::Seed,
        seed: opts.seed,
        scale: opts.scale,
        tables,
        exports,
        seconds: load_secs,
        notes,
    })
}

/// Rows a dry run encodes per table to estimate its size.
const DRY_RUN_SAMPLE: u64 = 2000;

/// Rows per table and the size, estimated by encoding a sample of rows. No
/// memory or time in proportion to the row counts: refs hold a sample of
/// their parents' values, passwords are not hashed.
async fn dry_run(
    model: Arc<Model>,
    targets: Vec<Target>,
    opts: &Options,
    notes: Vec<String>,
) -> Result<Report, Error> {
    let m = model.clone();
    let tables = tokio::task::spawn_blocking(move || {
        for t in &m.tables {
            for c in &t.columns {
                c.generator.stand_in_hashes();
            }
        }
        m.prepare_refs(Some(DRY_RUN_SAMPLE));
        m.order
            .iter()
            .filter_map(|&ti| {
                let target = targets.iter().find(|t| t.table == ti)?;
                let t = &m.tables[ti];
                let sample = t.rows.min(DRY_RUN_SAMPLE);
                let want: Vec<usize> = target.cols.iter().map(|c| c.0).collect();
                let order = t.needed(&want);
                let mut vals = vec![value::Value::Null; t.columns.len()];
                let mut buf = bytes::BytesMut::new();
                let mut encoded: u128 = 0;
                for i in 0..sample {
                    // Spread the sample over the whole table.
                    let row = (u128::from(i) * u128::from(t.rows) / u128::from(sample)) as u64;
                    t.eval(row, &order, &mut vals, false);
                    encode::row(&mut buf, &vals, &target.cols);
                    encoded += buf.len() as u128;
                    buf.clear();
                }
                let bytes = if sample == 0 {
                    0
                } else {
                    encoded * u128::from(t.rows) / u128::from(sample)
                };
                Some(TableReport {
                    name: t.name.clone(),
                    rows: t.rows,
                    bytes,
                    seconds: 0.0,
                    deleted: None,
                })
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| Error::Io(format!("dry run failed: {e}")))?;
    Ok(Report {
        mode: Mode::DryRun,
        seed: opts.seed,
        scale: opts.scale,
        tables,
        exports: Vec::new(),
        seconds: 0.0,
        notes,
    })
}
