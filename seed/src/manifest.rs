//! A small table, `volley_seed_manifest`, that remembers with which --seed
//! and --scale each table was seeded, so --cleanup with other flags (which
//! would regenerate other keys, maybe those of rows users made) is refused.

use crate::check::Target;
use crate::model::Model;
use tokio_postgres::Client;
use volley_protocols::pg::describe;

const CREATE: &str = "CREATE TABLE IF NOT EXISTS volley_seed_manifest (
    table_name text PRIMARY KEY,
    seed bigint NOT NULL,
    scale float8 NOT NULL,
    rows bigint NOT NULL,
    seeded_at timestamptz NOT NULL DEFAULT now())";

/// After a successful load. Failing to record is a note, not an error
/// (e.g. a role that may not create tables).
pub async fn record(
    model: &Model,
    targets: &[Target],
    c: &Client,
    seed: u64,
    scale: f64,
) -> Option<String> {
    let result: Result<(), tokio_postgres::Error> = async {
        c.batch_execute(CREATE).await?;
        for t in targets {
            c.execute(
                "INSERT INTO volley_seed_manifest (table_name, seed, scale, rows) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (table_name) DO UPDATE SET seed = $2, scale = $3, rows = $4, seeded_at = now()",
                &[
                    &t.sql_name,
                    &(seed as i64),
                    &scale,
                    &(model.tables[t.table].rows as i64),
                ],
            )
            .await?;
        }
        Ok(())
    }
    .await;
    result.err().map(|e| {
        format!(
            "could not record the seed in volley_seed_manifest ({}); --cleanup will trust its flags",
            describe(&e)
        )
    })
}

/// Before --cleanup: the tables this spec seeded with other flags.
pub async fn mismatches(
    model: &Model,
    targets: &[Target],
    c: &Client,
    seed: u64,
    scale: f64,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let exists = manifest_exists(c).await?;
    if !exists {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for t in targets {
        let row = c
            .query_opt(
                "SELECT seed, scale FROM volley_seed_manifest WHERE table_name = $1",
                &[&t.sql_name],
            )
            .await?;
        if let Some(r) = row {
            let (s, sc): (i64, f64) = (r.get(0), r.get(1));
            if s as u64 != seed || sc != scale {
                out.push(format!(
                    "{} was seeded with --seed {s} --scale {sc}, not --seed {seed} --scale {scale}",
                    model.tables[t.table].name
                ));
            }
        }
    }
    Ok(out)
}

/// In the cleanup's transaction: the tables are no longer seeded.
pub async fn forget(targets: &[Target], c: &Client) -> Result<(), tokio_postgres::Error> {
    let exists = manifest_exists(c).await?;
    if exists {
        let names: Vec<&str> = targets.iter().map(|t| t.sql_name.as_str()).collect();
        c.execute(
            "DELETE FROM volley_seed_manifest WHERE table_name = ANY($1)",
            &[&names],
        )
        .await?;
    }
    Ok(())
}

async fn manifest_exists(c: &Client) -> Result<bool, tokio_postgres::Error> {
    Ok(c.query_one(
        "SELECT to_regclass('volley_seed_manifest') IS NOT NULL",
        &[],
    )
    .await?
    .get(0))
}
