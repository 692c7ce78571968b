//! Before any load: connect once and PREPARE every statement, so a typo in
//! SQL, an unknown table, a wrong parameter count or a value that does not
//! fit its parameter's type stops the run (exit 2) with the query's name.

use super::conn::{ErrorKind, Failure, describe};
use super::value::{TextParam, can_capture};
use super::{PgDriver, Statement};
use crate::driver::VuState;
use crate::error::PrepareError;
use std::sync::Arc;
use tokio_postgres::Client;
use tokio_postgres::error::ErrorPosition;

pub(super) async fn validate(d: Arc<PgDriver>) -> Result<(), PrepareError> {
    let conn = d
        .target
        .connect(0)
        .await
        .map_err(|e| PrepareError::Connect(connect_error(&d, &e)))?;
    let client = &conn.client;
    warn_about_limits(&d, client).await;

    // Sample values for the params, from a VU that has captured nothing yet.
    let mut state = d.inputs.state(0, 0x5eed);
    state.begin(0);
    for q in &d.queries {
        for (slot, t) in &q.lets {
            let v = t.render_string(&mut state.scope(&[]));
            state.vars[*slot] = v;
        }
        for &si in &q.statements {
            check_statement(&d, client, &d.statements[si], &mut state)
                .await
                .map_err(|e| PrepareError::Refused(e.to_string()))?;
        }
    }
    for st in d.statements.iter().filter(|s| s.query.is_none()) {
        client
            .prepare(&st.sql)
            .await
            .map_err(|e| PrepareError::Refused(format!("{}: {}", st.sql, describe(&e))))?;
    }
    Ok(())
}

/// What the server refuses of one statement; `at` names its query.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("{at} does not prepare: {db}{pointer}")]
    Prepare {
        at: String,
        db: String,
        pointer: String,
    },
    #[error(
        "{at}: the SQL has {want} parameter{} ({}) but params gives {given} value{}; give one value per $N",
        plural(*.want),
        numbered(*.want),
        plural(*.given)
    )]
    Params {
        at: String,
        want: usize,
        given: usize,
    },
    #[error(
        "{at}: capture {capture:?} reads column {column:?}, which the query does not return; it returns {returns}"
    )]
    NoColumn {
        at: String,
        capture: String,
        column: String,
        returns: String,
    },
    #[error(
        "{at}: capture {capture:?} reads column {column:?} of type {ty}, which volley does not turn into text; cast it in the SQL, e.g. {column}::text AS {column}"
    )]
    ColumnType {
        at: String,
        capture: String,
        column: String,
        ty: String,
    },
    #[error("{at}: param {n} ({src:?}, e.g. {sample:?}) does not fit ${n} of type {ty}: {db}")]
    Param {
        at: String,
        n: usize,
        src: String,
        sample: String,
        ty: String,
        db: String,
    },
    #[error("{at}: {db}")]
    Db { at: String, db: String },
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `$1, $2`, or `none`.
fn numbered(n: usize) -> String {
    if n == 0 {
        return "none".into();
    }
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn check_statement(
    d: &PgDriver,
    client: &Client,
    st: &Statement,
    state: &mut VuState,
) -> Result<(), Refusal> {
    let at = d.where_(st);
    let stmt = client
        .prepare(&st.sql)
        .await
        .map_err(|e| Refusal::Prepare {
            at: at.clone(),
            db: describe(&e),
            pointer: pointer(&st.sql, &e),
        })?;
    let want = stmt.params().len();
    if want != st.params.len() {
        return Err(Refusal::Params {
            at,
            want,
            given: st.params.len(),
        });
    }
    for c in &st.captures {
        let col = c.column.get_ref();
        let Some(column) = stmt.columns().iter().find(|k| k.name() == col) else {
            let names: Vec<&str> = stmt.columns().iter().map(|k| k.name()).collect();
            return Err(Refusal::NoColumn {
                at,
                capture: c.name.clone(),
                column: col.clone(),
                returns: if names.is_empty() {
                    "no columns (add RETURNING ... to capture from a write)".to_string()
                } else {
                    names.join(", ")
                },
            });
        };
        if !can_capture(column.type_()) {
            return Err(Refusal::ColumnType {
                at,
                capture: c.name.clone(),
                column: col.clone(),
                ty: column.type_().to_string(),
            });
        }
    }
    // Does a sample value parse as the parameter's type? The server says,
    // without running the statement.
    for (i, ((src, _, reads_capture), t)) in st.param_src.iter().zip(&st.params).enumerate() {
        if *reads_capture {
            continue;
        }
        let sample = t.render_string(&mut state.scope(&[]));
        let ty = stmt.params()[i].clone();
        let probe = client
            .prepare_typed("SELECT $1", std::slice::from_ref(&ty))
            .await
            .map_err(|e| Refusal::Db {
                at: at.clone(),
                db: describe(&e),
            })?;
        if let Err(e) = client.query(&probe, &[&TextParam(&sample)]).await {
            let f = Failure::of(&e, false);
            if f.kind == ErrorKind::Db {
                return Err(Refusal::Param {
                    at,
                    n: i + 1,
                    src: src.clone(),
                    sample,
                    ty: ty.to_string(),
                    db: describe(&e),
                });
            }
            return Err(Refusal::Db {
                at,
                db: describe(&e),
            });
        }
    }
    Ok(())
}

/// The line of SQL an error points at, with a caret under the spot.
fn pointer(sql: &str, e: &tokio_postgres::Error) -> String {
    let Some(ErrorPosition::Original(pos)) = e.as_db_error().and_then(|d| d.position()) else {
        return String::new();
    };
    let pos = (*pos as usize).saturating_sub(1);
    let mut line_start = 0;
    let mut col = 0;
    for (i, (byte, ch)) in sql.char_indices().enumerate() {
        if i == pos {
            break;
        }
        if ch == '\n' {
            line_start = byte + 1;
            col = 0;
        } else {
            col += 1;
        }
    }
    let line = sql[line_start..].lines().next().unwrap_or("");
    format!("\n    {line}\n    {}^", " ".repeat(col))
}

fn connect_error(d: &PgDriver, e: &tokio_postgres::Error) -> String {
    let f = Failure::of(e, true);
    let base = format!("cannot connect to PostgreSQL at {}", d.target.label);
    let code = f.sqlstate.as_ref().map(|c| c.code());
    match (f.kind, code) {
        (ErrorKind::ConnectRefused, _) => {
            format!("{base}: connection refused; is the server running and listening there?")
        }
        (ErrorKind::ConnectTimeout, _) => format!(
            "{base}: no answer within connect_timeout; check the host and port, or raise connect_timeout"
        ),
        (_, Some("28P01" | "28000")) => format!(
            "{base}: {}; check the user and password in database_url",
            describe(e)
        ),
        (_, Some("3D000")) => format!(
            "{base}: {}; create the database or fix the name in database_url",
            describe(e)
        ),
        (ErrorKind::ConnectTls, _) => format!(
            "{base}: TLS failed ({}); check sslmode and sslrootcert in database_url",
            describe(e)
        ),
        _ => format!("{base}: {}", describe(e)),
    }
}

/// Say so when the plan will hold more connections than the server allows.
async fn warn_about_limits(d: &PgDriver, client: &Client) {
    let sql = "SELECT current_setting('max_connections')::int \
               - current_setting('superuser_reserved_connections')::int, \
               (SELECT datconnlimit FROM pg_database WHERE datname = current_database())";
    let Ok(row) = client.query_one(sql, &[]).await else {
        return;
    };
    let (server, db): (i32, i32) = (row.get(0), row.get(1));
    let allowed = if db >= 0 { server.min(db) } else { server };
    if d.max_connections > allowed.max(0) as u64 {
        eprintln!(
            "warning: scenario {:?} may hold up to {} connections but {} allows {allowed}: expect SQLSTATE 53300 too_many_connections errors",
            d.scenario, d.max_connections, d.target.label
        );
    }
}
