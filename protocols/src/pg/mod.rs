//! The PostgreSQL driver: tokio-postgres, prepared statements cached per
//! connection, three ways to hold connections (a deadpool pool shared by the
//! scenario's VUs, one per VU, or one per iteration), transactions, and a
//! sampler that reads `pg_stat_activity` while the run lasts.

pub(crate) mod conn;
mod describe;
mod prepare;
mod sampler;
mod value;
mod vu;

pub use conn::{ErrorKind, Target, UrlError, describe, sqlstate_name};
pub use vu::PgVu;

use crate::driver::Inputs;
use crate::driver::{BuildCtx, Driver, VuEnv};
use crate::duration::{Dur, DurRange, format_duration};
use crate::error::ConfigError;
use crate::http::Flow;
use crate::metrics::{MetricId, MetricKind, Recorder, Registry, Tags, Unit};
use crate::template::{Template, TemplateEnv};
use crate::weights::{Weighted, check_mix, weight};
use conn::{Manager, Pool};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};
use toml::Spanned;

/// How VUs hold server connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Connections {
    /// A pool shared by the scenario's VUs (`pool_size`, `acquire_timeout`):
    /// the application's view, where VUs wait for a free connection.
    Pool,
    /// Each VU owns one connection for its life, as a pgbench client does.
    PerVu,
    /// Connect, run the iteration, disconnect: a connection storm.
    PerIteration,
}

impl Connections {
    fn name(self) -> &'static str {
        match self {
            Connections::Pool => "pool",
            Connections::PerVu => "per-vu",
            Connections::PerIteration => "per-iteration",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum Isolation {
    #[serde(rename = "read committed")]
    ReadCommitted,
    #[serde(rename = "repeatable read")]
    RepeatableRead,
    #[serde(rename = "serializable")]
    Serializable,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgOptions {
    /// postgres://user:password@host:port/db?sslmode=require (default: $DATABASE_URL).
    pub database_url: Option<Spanned<String>>,
    pub connections: Option<Spanned<Connections>>,
    pub pool_size: Option<Spanned<u64>>,
    pub acquire_timeout: Option<Spanned<Dur>>,
    pub connect_timeout: Option<Dur>,
    /// Client-side limit per query (or transaction); none by default.
    pub timeout: Option<Dur>,
    #[serde(default)]
    pub flow: Flow,
    #[serde(default)]
    pub queries: Vec<QuerySpec>,
    /// Sample pg_stat_activity every second into pg_connections{state} (default true).
    pub sample_activity: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuerySpec {
    pub name: Option<Spanned<String>>,
    pub sql: Option<Spanned<String>>,
    #[serde(default)]
    pub params: Vec<Spanned<Value>>,
    #[serde(default)]
    pub checks: ChecksSpec,
    /// Variable name -> column of the first row.
    #[serde(default)]
    pub captures: BTreeMap<String, Spanned<String>>,
    /// Several statements, run in order; in one transaction unless `transaction = false`.
    pub statements: Option<Spanned<Vec<StatementSpec>>>,
    pub transaction: Option<bool>,
    pub isolation: Option<Isolation>,
    /// Values set once per run of this query, read as {{ vars.NAME }} by its
    /// statements (pgbench's \set).
    #[serde(default)]
    pub vars: BTreeMap<String, Spanned<Value>>,
    pub weight: Option<Spanned<f64>>,
    pub timeout: Option<Dur>,
    pub think_time: Option<DurRange>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatementSpec {
    pub sql: Spanned<String>,
    #[serde(default)]
    pub params: Vec<Spanned<Value>>,
    #[serde(default)]
    pub checks: ChecksSpec,
    #[serde(default)]
    pub captures: BTreeMap<String, Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChecksSpec {
    /// Exactly this many rows (returned, or affected for INSERT/UPDATE/DELETE).
    pub rows: Option<u64>,
    pub min_rows: Option<u64>,
    pub max_rows: Option<u64>,
    pub no_error: Option<bool>,
    pub max_duration: Option<Dur>,
}

#[derive(Clone, Debug)]
pub(crate) enum Check {
    Rows(u64),
    MinRows(u64),
    MaxRows(u64),
    NoError,
    MaxDuration(Duration),
}

impl Check {
    fn name(&self) -> String {
        match self {
            Check::Rows(n) => format!("rows == {n}"),
            Check::MinRows(n) => format!("rows >= {n}"),
            Check::MaxRows(n) => format!("rows <= {n}"),
            Check::NoError => "no error".into(),
            Check::MaxDuration(d) => format!("duration <= {}", format_duration(*d)),
        }
    }

    /// `rows` is None when the statement failed.
    pub fn eval(&self, rows: Option<u64>, took: Duration) -> bool {
        match (self, rows) {
            (_, None) => false,
            (Check::Rows(n), Some(r)) => r == *n,
            (Check::MinRows(n), Some(r)) => r >= *n,
            (Check::MaxRows(n), Some(r)) => r <= *n,
            (Check::NoError, Some(_)) => true,
            (Check::MaxDuration(d), Some(_)) => took <= *d,
        }
    }
}

pub(crate) struct Capture {
    pub var: usize,
    pub name: String,
    pub column: Spanned<String>,
}

/// One SQL statement, prepared once per connection.
pub(crate) struct Statement {
    pub sql: String,
    pub params: Vec<Template>,
    /// Param sources, for validation messages; true when a param reads a captured var.
    pub param_src: Vec<(String, Range<usize>, bool)>,
    pub checks: Vec<Check>,
    pub check_names: Vec<String>,
    pub captures: Vec<Capture>,
    /// Index of the query it belongs to (BEGIN/COMMIT: none).
    pub query: Option<usize>,
    /// 1-based position in its query, for messages.
    pub position: usize,
}

pub(crate) struct Query {
    pub name: String,
    pub statements: Vec<usize>,
    /// BEGIN and COMMIT statements when the query is a transaction.
    pub tx: Option<(usize, usize)>,
    pub lets: Vec<(usize, Template)>,
    pub timeout: Option<Duration>,
    pub think_time: Option<DurRange>,
}

pub(crate) struct Metrics {
    pub queries: MetricId,
    pub duration: MetricId,
    pub tx: MetricId,
    pub pool_wait: MetricId,
    pub pool_timeouts: MetricId,
    pub connect: MetricId,
    pub failed: MetricId,
    pub rows: MetricId,
    pub checks: MetricId,
    pub connections: MetricId,
}

impl Metrics {
    fn register(r: &Registry) -> Self {
        use MetricKind::*;
        Self {
            queries: r.metric("pg_queries", Counter, Unit::Default),
            duration: r.metric("pg_query_duration", Trend, Unit::Time),
            tx: r.metric("pg_tx_duration", Trend, Unit::Time),
            pool_wait: r.metric("pg_pool_wait", Trend, Unit::Time),
            pool_timeouts: r.metric("pg_pool_timeouts", Counter, Unit::Default),
            connect: r.metric("pg_connect_duration", Trend, Unit::Time),
            failed: r.metric("pg_query_failed", Rate, Unit::Default),
            rows: r.metric("pg_rows", Counter, Unit::Default),
            checks: r.metric("checks", Rate, Unit::Default),
            connections: r.metric("pg_connections", Gauge, Unit::Default),
        }
    }
}

pub(crate) enum Mode {
    Pool(Pool),
    PerVu,
    PerIteration,
}

pub struct PgDriver {
    scenario: String,
    tags: Tags,
    flow: Flow,
    queries: Vec<Query>,
    statements: Vec<Statement>,
    weights: Weighted,
    target: Arc<Target>,
    mode: Mode,
    /// Most server connections this scenario may hold at once.
    max_connections: u64,
    sample: bool,
    inputs: Inputs,
    max_params: usize,
    metrics: Metrics,
}

fn value_text(v: &Spanned<Value>, what: &str) -> Result<String, ConfigError> {
    match v.get_ref() {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(ConfigError::at(
            v.span(),
            format!(
                "{what} must be a string, number or boolean (write arrays as PostgreSQL text, e.g. \"{{1,2,3}}\")"
            ),
        )),
    }
}

impl PgDriver {
    pub fn build(o: PgOptions, ctx: &BuildCtx<'_>) -> Result<Self, ConfigError> {
        let sc = ctx.scenario;
        if o.queries.is_empty() {
            return Err(ConfigError::new(format!(
                "scenario {sc:?} has no queries: add at least one [[scenarios.{sc}.queries]] with name and sql"
            )));
        }
        let connect_timeout = o
            .connect_timeout
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(10));
        let target = match &o.database_url {
            Some(u) => Target::parse(u.get_ref(), connect_timeout)
                .map_err(|e| ConfigError::at(u.span(), format!("database_url: {e}")))?,
            None => match ctx.env.get("DATABASE_URL") {
                Some(u) => Target::parse(u, connect_timeout).map_err(|e| {
                    ConfigError::new(format!("scenario {sc:?}: $DATABASE_URL: {e}"))
                })?,
                None => {
                    return Err(ConfigError::new(format!(
                        "scenario {sc:?} has no database_url: add database_url = \"${{DATABASE_URL}}\" (or a postgres:// URL) to [scenarios.{sc}]"
                    )));
                }
            },
        };
        let target = Arc::new(target);

        let pool_opts = o
            .pool_size
            .as_ref()
            .map(|s| s.span())
            .or(o.acquire_timeout.as_ref().map(|s| s.span()));
        let connections = match &o.connections {
            Some(c) => {
                if *c.get_ref() != Connections::Pool
                    && let Some(span) = pool_opts.clone()
                {
                    return Err(ConfigError::at(
                        span,
                        format!(
                            "pool_size and acquire_timeout apply to connections = \"pool\", not \"{}\"",
                            c.get_ref().name()
                        ),
                    ));
                }
                *c.get_ref()
            }
            None if pool_opts.is_some() => Connections::Pool,
            None => Connections::PerVu,
        };

        // Vars: captured values and per-query `vars`, declared before any template reads them.
        let mut env = ctx.templates();
        let mut captured = Vec::new();
        for q in &o.queries {
            let stmt_caps = q
                .statements
                .iter()
                .flat_map(|s| s.get_ref().iter().flat_map(|s| s.captures.keys()));
            for name in q.captures.keys().chain(stmt_caps) {
                env.declare_var(name);
                if !captured.contains(name) {
                    captured.push(name.clone());
                }
            }
        }
        for q in &o.queries {
            for name in q.vars.keys() {
                env.declare_var(name);
            }
        }

        let default_timeout = o.timeout.map(|d| d.0);
        let mut statements: Vec<Statement> = Vec::new();
        let mut queries = Vec::new();
        let mut weights = Weighted::default();
        let mut names = HashSet::new();
        for (qi, q) in o.queries.iter().enumerate() {
            let name = match &q.name {
                Some(n) if n.get_ref().trim().is_empty() => {
                    return Err(ConfigError::at(n.span(), "a query name cannot be empty"));
                }
                Some(n) => n.get_ref().clone(),
                None => format!("query {}", qi + 1),
            };
            if !names.insert(name.clone()) {
                let span = q.name.as_ref().map(|n| n.span());
                let msg = format!(
                    "two queries are named {name:?} in scenario {sc:?}: give each a unique name (it tags their metrics)"
                );
                return Err(match span {
                    Some(s) => ConfigError::at(s, msg),
                    None => ConfigError::new(msg),
                });
            }
            let mut lets = Vec::new();
            for (var, v) in &q.vars {
                let text = value_text(v, "a var")?;
                let t = env.compile(&text).map_err(|e| e.at(v.span()))?;
                lets.push((env.declare_var(var), t));
            }
            let mut mine = Vec::new();
            match (&q.sql, &q.statements) {
                (Some(sql), None) => {
                    mine.push(compile_statement(
                        sql,
                        &q.params,
                        &q.checks,
                        &q.captures,
                        qi,
                        1,
                        &captured,
                        &mut env,
                    )?);
                }
                (None, Some(list)) => {
                    if !q.params.is_empty() || !q.captures.is_empty() || has_checks(&q.checks) {
                        return Err(ConfigError::at(
                            list.span(),
                            format!(
                                "query {name:?} has statements: put params, checks and captures on each statement"
                            ),
                        ));
                    }
                    if list.get_ref().is_empty() {
                        return Err(ConfigError::at(
                            list.span(),
                            format!(
                                "query {name:?}: statements is empty; add {{ sql = \"...\" }} entries"
                            ),
                        ));
                    }
                    for (k, s) in list.get_ref().iter().enumerate() {
                        mine.push(compile_statement(
                            &s.sql,
                            &s.params,
                            &s.checks,
                            &s.captures,
                            qi,
                            k + 1,
                            &captured,
                            &mut env,
                        )?);
                    }
                }
                (Some(sql), Some(_)) => {
                    return Err(ConfigError::at(
                        sql.span(),
                        format!(
                            "query {name:?} has both sql and statements: use sql for one statement, statements for several"
                        ),
                    ));
                }
                (None, None) => {
                    let msg = format!(
                        "query {name:?} has no sql: add sql = \"SELECT ...\" (or statements = [...] for a transaction)"
                    );
                    return Err(match &q.name {
                        Some(n) => ConfigError::at(n.span(), msg),
                        None => ConfigError::new(msg),
                    });
                }
            }
            let in_tx = q
                .transaction
                .unwrap_or(q.statements.is_some() || q.isolation.is_some());
            if q.transaction == Some(false) && q.isolation.is_some() {
                return Err(ConfigError::new(format!(
                    "query {name:?}: isolation needs a transaction; remove transaction = false"
                )));
            }
            let first = statements.len();
            statements.extend(mine);
            let tx = in_tx.then(|| {
                let begin = match q.isolation {
                    None => "BEGIN".to_string(),
                    Some(Isolation::ReadCommitted) => "BEGIN ISOLATION LEVEL READ COMMITTED".into(),
                    Some(Isolation::RepeatableRead) => {
                        "BEGIN ISOLATION LEVEL REPEATABLE READ".into()
                    }
                    Some(Isolation::Serializable) => "BEGIN ISOLATION LEVEL SERIALIZABLE".into(),
                };
                (
                    internal(&mut statements, &begin),
                    internal(&mut statements, "COMMIT"),
                )
            });
            weights.push(weight(q.weight.as_ref(), o.flow == Flow::Weighted)?);
            queries.push(Query {
                name,
                statements: (first..first + q.statements.as_ref().map_or(1, |l| l.get_ref().len()))
                    .collect(),
                tx,
                lets,
                timeout: q.timeout.map(|d| d.0).or(default_timeout),
                think_time: q.think_time,
            });
        }
        if o.flow == Flow::Weighted {
            let first = o
                .queries
                .iter()
                .find_map(|q| q.weight.as_ref().map(Spanned::span));
            check_mix(&weights, first, "query", sc)?;
        }

        let (mode, max_connections) = match connections {
            Connections::Pool => {
                let size = match &o.pool_size {
                    Some(s) if *s.get_ref() == 0 || *s.get_ref() > 100_000 => {
                        return Err(ConfigError::at(
                            s.span(),
                            "pool_size must be between 1 and 100000",
                        ));
                    }
                    Some(s) => *s.get_ref(),
                    None => 10,
                };
                let wait = o
                    .acquire_timeout
                    .as_ref()
                    .map(|d| d.get_ref().0)
                    .unwrap_or(Duration::from_secs(30));
                let manager = Manager {
                    target: target.clone(),
                    statements: statements.len(),
                    io: std::sync::OnceLock::new(),
                };
                let pool = Pool::builder(manager)
                    .max_size(size as usize)
                    .wait_timeout(Some(wait))
                    .runtime(deadpool::Runtime::Tokio1)
                    .build()
                    .map_err(|e| ConfigError::new(format!("cannot build the pool: {e}")))?;
                (Mode::Pool(pool), size)
            }
            Connections::PerVu => (Mode::PerVu, ctx.max_vus),
            Connections::PerIteration => (Mode::PerIteration, ctx.max_vus),
        };
        let max_params = statements.iter().map(|s| s.params.len()).max().unwrap_or(0);
        Ok(Self {
            scenario: sc.to_string(),
            tags: ctx.tags.clone(),
            flow: o.flow,
            queries,
            statements,
            weights,
            target,
            mode,
            max_connections,
            sample: o.sample_activity.unwrap_or(true),
            inputs: Inputs::of(&env),
            max_params,
            metrics: Metrics::register(ctx.registry),
        })
    }

    /// "query \"name\"" or "query \"name\", statement 2", for messages.
    fn where_(&self, st: &Statement) -> String {
        match st.query {
            Some(q) if self.queries[q].statements.len() > 1 => {
                format!(
                    "query {:?}, statement {}",
                    self.queries[q].name, st.position
                )
            }
            Some(q) => format!("query {:?}", self.queries[q].name),
            None => format!("statement {:?}", st.sql),
        }
    }
}

fn has_checks(c: &ChecksSpec) -> bool {
    c.rows.is_some()
        || c.min_rows.is_some()
        || c.max_rows.is_some()
        || c.no_error.is_some()
        || c.max_duration.is_some()
}

/// BEGIN / COMMIT: one shared statement per distinct text.
fn internal(statements: &mut Vec<Statement>, sql: &str) -> usize {
    if let Some(i) = statements
        .iter()
        .position(|s| s.query.is_none() && s.sql == sql)
    {
        return i;
    }
    statements.push(Statement {
        sql: sql.to_string(),
        params: Vec::new(),
        param_src: Vec::new(),
        checks: Vec::new(),
        check_names: Vec::new(),
        captures: Vec::new(),
        query: None,
        position: 0,
    });
    statements.len() - 1
}

#[allow(clippy::too_many_arguments)]
fn compile_statement(
    sql: &Spanned<String>,
    params: &[Spanned<Value>],
    checks: &ChecksSpec,
    captures: &BTreeMap<String, Spanned<String>>,
    query: usize,
    position: usize,
    captured: &[String],
    env: &mut TemplateEnv<'_>,
) -> Result<Statement, ConfigError> {
    if sql.get_ref().trim().is_empty() {
        return Err(ConfigError::at(sql.span(), "sql is empty"));
    }
    if sql.get_ref().contains("{{") {
        return Err(ConfigError::at(
            sql.span(),
            "sql is sent as written and prepared once: put values in params as $1, $2, ... (params = [\"{{ ... }}\"])",
        ));
    }
    let mut templates = Vec::new();
    let mut src = Vec::new();
    for p in params {
        let text = value_text(p, "a param")?;
        templates.push(env.compile(&text).map_err(|e| e.at(p.span()))?);
        let reads_capture = captured.iter().any(|c| text.contains(&format!("vars.{c}")));
        src.push((text, p.span(), reads_capture));
    }
    let mut list = Vec::new();
    if let Some(n) = checks.rows {
        list.push(Check::Rows(n));
    }
    if let Some(n) = checks.min_rows {
        list.push(Check::MinRows(n));
    }
    if let Some(n) = checks.max_rows {
        list.push(Check::MaxRows(n));
    }
    if let (Some(lo), Some(hi)) = (checks.min_rows, checks.max_rows)
        && lo > hi
    {
        return Err(ConfigError::at(
            sql.span(),
            format!("checks: min_rows ({lo}) is above max_rows ({hi})"),
        ));
    }
    if checks.no_error == Some(true) {
        list.push(Check::NoError);
    }
    if let Some(d) = checks.max_duration {
        list.push(Check::MaxDuration(d.0));
    }
    let mut caps = Vec::new();
    for (name, column) in captures {
        if column.get_ref().trim().is_empty() {
            return Err(ConfigError::at(
                column.span(),
                format!("capture {name:?}: name the column to read, e.g. {name} = \"id\""),
            ));
        }
        caps.push(Capture {
            var: env.declare_var(name),
            name: name.clone(),
            column: column.clone(),
        });
    }
    let check_names = list
        .iter()
        .map(Check::name)
        .chain(caps.iter().map(|c| format!("captured {}", c.name)))
        .collect();
    Ok(Statement {
        sql: sql.get_ref().clone(),
        params: templates,
        param_src: src,
        checks: list,
        check_names,
        captures: caps,
        query: Some(query),
        position,
    })
}

impl Driver for PgDriver {
    type Vu = PgVu;
    type Options = PgOptions;
    const NAME: &'static str = "postgres";

    fn descriptor() -> crate::descriptor::Descriptor {
        describe::descriptor()
    }

    fn from_plan(
        options: PgOptions,
        ctx: &BuildCtx<'_>,
        at: std::ops::Range<usize>,
    ) -> Result<Self, ConfigError> {
        let _ = at;
        Self::build(options, ctx)
    }

    fn tag_values(&self, key: &str) -> Option<Vec<String>> {
        Some(match key {
            "name" => self.queries.iter().map(|q| q.name.clone()).collect(),
            _ => self.tags.get(key).map(str::to_string).into_iter().collect(),
        })
    }

    fn vu(self: &Arc<Self>, env: VuEnv) -> PgVu {
        PgVu::new(self.clone(), env)
    }

    fn used_feeders(&self) -> &[usize] {
        &self.inputs.used
    }

    fn background(self: &Arc<Self>, rec: Recorder, until: Instant) -> impl Future<Output = ()> {
        sampler::run(self.clone(), rec, until)
    }

    fn prepare(self: &Arc<Self>) -> impl Future<Output = Result<(), crate::PrepareError>> + Send {
        prepare::validate(self.clone())
    }
}
