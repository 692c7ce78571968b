//! `volley seed`: test data into PostgreSQL.

use super::*;

#[derive(Args)]
pub(super) struct SeedArgs {
    /// The seed spec (TOML): [tables.NAME] with rows and a generator per column.
    pub(super) spec: PathBuf,
    /// The database to fill.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub(super) database_url: Option<String>,
    /// The same seed gives byte-identical data.
    #[arg(long, default_value_t = 42)]
    pub(super) seed: u64,
    /// Multiply every table's row count (0.01 for a quick run, 10 for a big one).
    #[arg(long, default_value_t = 1.0)]
    pub(super) scale: f64,
    /// Print rows per table and the estimated size; write nothing.
    #[arg(long)]
    pub(super) dry_run: bool,
    /// Empty the spec's tables before loading.
    #[arg(long)]
    pub(super) truncate: bool,
    /// Delete exactly the rows this spec seeded (same --seed and --scale), nothing else.
    #[arg(long, conflicts_with_all = ["truncate", "dry_run"])]
    pub(super) cleanup: bool,
    /// Connections loading at once (default: one per core).
    #[arg(long)]
    pub(super) jobs: Option<usize>,
    /// Skip foreign-key checks and triggers while loading (session_replication_role = replica;
    /// needs a superuser). Refs always point at seeded parents, so the keys still hold.
    #[arg(long, conflicts_with = "cleanup")]
    pub(super) disable_triggers: bool,
    /// Split big tables into COPY streams of N rows across the connections
    /// (default: 100000; a huge value loads each table as one stream).
    #[arg(long, value_name = "N")]
    pub(super) stream_rows: Option<u64>,
    /// No progress bars or per-table lines while loading.
    #[arg(short, long)]
    pub(super) quiet: bool,
}

pub(super) fn cmd_seed(a: SeedArgs) -> Result<u8, Failure> {
    if a.jobs == Some(0) {
        return Err(usage(anyhow!("--jobs must be at least 1")));
    }
    if !(a.scale > 0.0 && a.scale.is_finite()) {
        return Err(usage(anyhow!("--scale {} must be above 0", a.scale)));
    }
    let opts = volley_seed::Options {
        database: a
            .database_url
            .filter(|u| !u.is_empty())
            .map(|u| database(&u))
            .transpose()?,
        seed: a.seed,
        scale: a.scale,
        jobs: a.jobs.unwrap_or_else(default_workers),
        dry_run: a.dry_run,
        truncate: a.truncate,
        cleanup: a.cleanup,
        disable_triggers: a.disable_triggers,
        stream_rows: a.stream_rows,
        progress: !a.quiet,
    };
    match volley_seed::run(&a.spec, &opts) {
        Ok(report) => {
            print!("{}", report.render(a.quiet));
            Ok(EXIT_OK)
        }
        Err(e) if e.is_usage() => Err(usage(e.map_spec_messages(volley_protocols::error::plain))),
        Err(e) => Err(runtime(e)),
    }
}

/// The URL parsed as the postgres driver parses it: libpq's sslmode
/// (verify-ca, verify-full, sslrootcert) included.
fn database(url: &str) -> Result<volley_seed::Database, Failure> {
    let t = volley_protocols::pg::Target::parse(url, std::time::Duration::from_secs(10))
        .map_err(|e| usage(anyhow!("--database-url: {e}")))?;
    Ok(volley_seed::Database {
        config: t.config,
        tls: t.tls,
        label: t.label,
    })
}
