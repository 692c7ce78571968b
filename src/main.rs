//! volley: one binary, one plan file, one metrics pipeline.

use anyhow::{Context as _, anyhow};
use clap::{Args, Parser, Subcommand};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use volley::{engine, plan, run, serve, summary};
use volley_protocols::duration::DurRange;

/// Exit codes, as k6 users know them.
const EXIT_OK: u8 = 0;
const EXIT_RUNTIME: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_THRESHOLDS: u8 = 99;
const EXIT_INTERRUPTED: u8 = 130;

#[derive(Parser)]
#[command(
    name = "volley",
    version,
    about = "Load tests for HTTP APIs, WebSocket chat, Stripe webhooks and PostgreSQL, from one plan file"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a plan. Exit 0: thresholds passed; 99: a threshold failed; 2: bad plan; 1: runtime failure.
    Run(RunArgs),
    /// Check a plan and print its shape without sending anything.
    Validate(ValidateArgs),
    /// Start the embedded demo target on loopback.
    Serve(ServeArgs),
    /// Start the demo target on a free port and run the demo plan against it.
    Demo(DemoArgs),
    /// Fill PostgreSQL with deterministic test data from a seed spec and write the CSV feeders plans read.
    /// Exit 0: done; 2: bad spec (nothing written); 1: runtime failure (rolled back).
    Seed(SeedArgs),
}

#[derive(Args)]
struct SeedArgs {
    /// The seed spec (TOML): [tables.NAME] with rows and a generator per column.
    spec: PathBuf,
    /// The database to fill.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// The same seed gives byte-identical data.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Multiply every table's row count (0.01 for a quick run, 10 for a big one).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Print rows per table and the estimated size; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Empty the spec's tables before loading.
    #[arg(long)]
    truncate: bool,
    /// Delete exactly the rows this spec seeded (same --seed and --scale), nothing else.
    #[arg(long, conflicts_with_all = ["truncate", "dry_run"])]
    cleanup: bool,
    /// Connections loading at once (default: one per core).
    #[arg(long)]
    jobs: Option<usize>,
    /// Skip foreign-key checks and triggers while loading (session_replication_role = replica;
    /// needs a superuser). Refs always point at seeded parents, so the keys still hold.
    #[arg(long, conflicts_with = "cleanup")]
    disable_triggers: bool,
    /// Split big tables into COPY streams of N rows across the connections
    /// (default: 100000 on PostgreSQL 16+; before 16 a table loads as one stream).
    #[arg(long, value_name = "N")]
    stream_rows: Option<u64>,
    /// No progress bars or per-table lines while loading.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Args)]
struct PlanArgs {
    /// The plan file (TOML).
    plan: PathBuf,
    /// Set a variable for ${NAME} in the plan (repeatable).
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Run the I-th of N interleaved shares of the plan (distributed runs).
    #[arg(long, value_name = "I/N")]
    segment: Option<String>,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    plan: PlanArgs,
    /// Write the end-of-run summary as JSON (k6 shape plus mergeable histograms).
    #[arg(long, value_name = "FILE")]
    summary_export: Option<PathBuf>,
    /// No live progress line.
    #[arg(short, long)]
    quiet: bool,
    /// Wait until this moment to start: RFC 3339 time or +DURATION (e.g. +30s).
    #[arg(long, value_name = "TIME")]
    start_at: Option<String>,
    /// Worker threads (default: one per available core).
    #[arg(long)]
    workers: Option<usize>,
    /// Seed for random template values, for repeatable runs.
    #[arg(long)]
    seed: Option<u64>,
}

#[derive(Args)]
struct ValidateArgs {
    #[command(flatten)]
    plan: PlanArgs,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Delay added to every API response: "10ms" or a range "5ms..20ms".
    #[arg(long)]
    latency: Option<String>,
    /// Share of API requests answered with 500 (0..1).
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// Server threads (default: one per available core).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Args)]
struct DemoArgs {
    /// Write the summary as JSON.
    #[arg(long, value_name = "FILE")]
    summary_export: Option<PathBuf>,
    #[arg(short, long)]
    quiet: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VOLLEY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::Run(a) => cmd_run(a),
        Cmd::Validate(a) => cmd_validate(a),
        Cmd::Serve(a) => cmd_serve(a),
        Cmd::Demo(a) => cmd_demo(a),
        Cmd::Seed(a) => cmd_seed(a),
    };
    match code {
        Ok(c) => ExitCode::from(c),
        Err(Failure(code, e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(code)
        }
    }
}

/// An error with the exit code it earns.
struct Failure(u8, anyhow::Error);

fn usage(e: impl Into<anyhow::Error>) -> Failure {
    Failure(EXIT_USAGE, e.into())
}

fn runtime(e: impl Into<anyhow::Error>) -> Failure {
    Failure(EXIT_RUNTIME, e.into())
}

fn env_map(pairs: &[String]) -> Result<HashMap<String, String>, Failure> {
    let mut env: HashMap<String, String> = std::env::vars().collect();
    for p in pairs {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| usage(anyhow!("-e {p:?}: write KEY=VALUE")))?;
        env.insert(k.to_string(), v.to_string());
    }
    Ok(env)
}

fn load_plan(a: &PlanArgs, extra_env: &[(String, String)]) -> Result<plan::Plan, Failure> {
    let mut env = env_map(&a.env)?;
    for (k, v) in extra_env {
        env.insert(k.clone(), v.clone());
    }
    let segment = match &a.segment {
        Some(s) => plan::Segment::parse(s).map_err(|e| usage(anyhow!(e)))?,
        None => plan::Segment::default(),
    };
    plan::load(&a.plan, &plan::LoadOptions { env, segment }).map_err(usage)
}

fn main_runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .map_err(runtime)
}

fn parse_start_at(s: &str) -> Result<SystemTime, Failure> {
    if let Some(rel) = s.strip_prefix('+') {
        let d = volley_protocols::duration::parse_duration(rel)
            .map_err(|e| usage(anyhow!("--start-at: {e}")))?;
        return Ok(SystemTime::now() + d);
    }
    humantime::parse_rfc3339_weak(s).map_err(|e| {
        usage(anyhow!(
            "--start-at {s:?}: {e}; write e.g. 2026-01-01T12:00:00Z or +30s"
        ))
    })
}

/// Raise the open-file limit and say so when the plan needs more than is allowed.
fn raise_nofile(plan: &plan::Plan) {
    let want: u64 = plan.scenarios.iter().map(|s| s.exec.max_vus()).sum::<u64>() + 256;
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < want => eprintln!(
            "warning: this plan may hold up to {want} connections but the open-file limit is {limit}; raise the hard limit (ulimit -Hn) or lower the VUs"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!("cannot raise the open-file limit: {e}"),
    }
}

fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn cmd_run(a: RunArgs) -> Result<u8, Failure> {
    let plan = load_plan(&a.plan, &[])?;
    let start_at = a.start_at.as_deref().map(parse_start_at).transpose()?;
    let settings = run::Settings {
        quiet: a.quiet,
        workers: a.workers.unwrap_or_else(default_workers),
        seed: a.seed.unwrap_or_else(random_seed),
        start_at,
    };
    run_and_report(plan, settings, a.summary_export.as_deref())
}

fn random_seed() -> u64 {
    fastrand::u64(..)
}

fn run_and_report(
    plan: plan::Plan,
    settings: run::Settings,
    export: Option<&Path>,
) -> Result<u8, Failure> {
    raise_nofile(&plan);
    let plan = Arc::new(plan);
    let rt = main_runtime()?;
    let report = rt.block_on(async {
        let control = engine::Control::default();
        run::install_ctrl_c(&control);
        run::execute(plan.clone(), &settings, control, &mut []).await
    });
    let report = report.map_err(|e| usage(anyhow!(e)))?;
    print!("{}", summary::render_text(&report.summary, &report.series));
    if let Some(path) = export {
        let json = serde_json::to_vec_pretty(&report.summary).map_err(runtime)?;
        run::write_atomic(path, &json)
            .with_context(|| format!("cannot write the summary to {}", path.display()))
            .map_err(runtime)?;
    }
    Ok(if report.interrupted {
        EXIT_INTERRUPTED
    } else if !report.thresholds_ok {
        eprintln!("\nthresholds failed: exit {EXIT_THRESHOLDS}");
        EXIT_THRESHOLDS
    } else {
        EXIT_OK
    })
}

fn cmd_validate(a: ValidateArgs) -> Result<u8, Failure> {
    let plan = load_plan(&a.plan, &[])?;
    print!("{}", describe(&plan));
    Ok(EXIT_OK)
}

fn describe(plan: &plan::Plan) -> String {
    use std::fmt::Write as _;
    use volley_protocols::duration::format_duration as f;
    let mut out = String::new();
    let _ = writeln!(out, "plan {}: OK", plan.file.display());
    let seg = plan.segment;
    if seg.count > 1 {
        let _ = writeln!(
            out,
            "segment {seg}: this instance runs its interleaved share of every scenario"
        );
    }
    let _ = writeln!(out, "scenarios:");
    for s in &plan.scenarios {
        let _ = writeln!(
            out,
            "  {} [{} / {}]: {}\n      starts at {}, ends by {}, graceful stop {}",
            s.name,
            s.driver_name,
            s.exec.name(),
            s.exec.describe(),
            f(s.start_time),
            f(s.end()),
            f(s.graceful_stop)
        );
        if seg.count > 1 {
            let mut share = format!(
                "      share: {} of {} VUs",
                seg.share(s.exec.max_vus()),
                s.exec.max_vus()
            );
            if let Some(r) = s.exec.peak_rate() {
                let _ = write!(
                    share,
                    ", {:.2}/s of {:.2}/s peak rate",
                    r / seg.count as f64,
                    r
                );
            }
            if let plan::executor::Executor::SharedIterations { iterations, .. } = s.exec {
                let _ = write!(
                    share,
                    ", {} of {iterations} iterations",
                    seg.share(iterations)
                );
            }
            let _ = writeln!(out, "{share}");
        }
    }
    // Peak VUs: the most that overlap in time.
    let peak_vus = plan
        .scenarios
        .iter()
        .map(|s| {
            plan.scenarios
                .iter()
                .filter(|o| {
                    o.start_time <= s.start_time
                        && s.start_time < o.end().max(o.start_time + Duration::from_millis(1))
                })
                .map(|o| o.exec.max_vus())
                .sum::<u64>()
        })
        .max()
        .unwrap_or(0);
    let peak_rate: f64 = plan
        .scenarios
        .iter()
        .filter_map(|s| s.exec.peak_rate())
        .sum();
    let _ = writeln!(
        out,
        "total duration: {} ({} with graceful stops)\npeak VUs: {peak_vus}",
        f(plan.duration()),
        f(plan.max_duration())
    );
    if peak_rate > 0.0 {
        let _ = writeln!(out, "peak arrival rate: {peak_rate:.2} iterations/s");
    }
    if !plan.feeders.is_empty() {
        let _ = writeln!(out, "data:");
        for fd in &plan.feeders {
            let _ = writeln!(
                out,
                "  {}: {} rows from {} ({:?})",
                fd.name,
                fd.len(),
                fd.file,
                fd.pick
            );
        }
    }
    if !plan.thresholds.is_empty() {
        let _ = writeln!(out, "thresholds:");
        for t in &plan.thresholds {
            let items: Vec<String> = t
                .items
                .iter()
                .map(|i| {
                    if i.abort_on_fail {
                        format!("{} (abort on fail)", i.source)
                    } else {
                        i.source.clone()
                    }
                })
                .collect();
            let _ = writeln!(out, "  {}: {}", t.key, items.join(", "));
        }
    }
    out
}

fn cmd_serve(a: ServeArgs) -> Result<u8, Failure> {
    let latency = a
        .latency
        .as_deref()
        .map(DurRange::parse)
        .transpose()
        .map_err(|e| usage(anyhow!("--latency: {e}")))?;
    if !(0.0..=1.0).contains(&a.error_rate) {
        return Err(usage(anyhow!(
            "--error-rate {} must be between 0 and 1",
            a.error_rate
        )));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.threads.unwrap_or_else(default_workers).max(1))
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .map_err(runtime)?;
    rt.block_on(async {
        let opts = serve::ServeOptions {
            latency,
            error_rate: a.error_rate,
        };
        let server = serve::Server::start(a.addr, opts)
            .await
            .with_context(|| format!("cannot listen on {}", a.addr))
            .map_err(runtime)?;
        println!("volley serve: listening on {}", server.base_url());
        println!(
            "  API: {0}/api/v1/health  stats: {0}/__volley/stats",
            server.base_url()
        );
        let _ = tokio::signal::ctrl_c().await;
        server.shutdown();
        Ok(EXIT_OK)
    })
}

fn cmd_seed(a: SeedArgs) -> Result<u8, Failure> {
    if a.jobs == Some(0) {
        return Err(usage(anyhow!("--jobs must be at least 1")));
    }
    if !(a.scale > 0.0 && a.scale.is_finite()) {
        return Err(usage(anyhow!("--scale {} must be above 0", a.scale)));
    }
    let opts = volley_seed::Options {
        database_url: a.database_url.filter(|u| !u.is_empty()),
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
        Err(e) if e.is_usage() => Err(usage(e)),
        Err(e) => Err(runtime(e)),
    }
}

const DEMO_PLAN: &str = include_str!("../fixtures/plans/demo.toml");
const DEMO_USERS: &str = include_str!("../fixtures/data/users.csv");

fn cmd_demo(a: DemoArgs) -> Result<u8, Failure> {
    // The demo target runs in this process on its own runtime threads.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .map_err(runtime)?;
    let server = server_rt
        .block_on(serve::Server::start(
            "127.0.0.1:0".parse().expect("valid address"),
            serve::ServeOptions::default(),
        ))
        .context("cannot start the demo target on loopback")
        .map_err(runtime)?;
    let base = server.base_url();
    eprintln!("demo target listening on {base}");

    let local = Path::new("fixtures/plans/demo.toml");
    let (plan_path, _tmp) = if local.exists() {
        (local.to_path_buf(), None)
    } else {
        let dir = std::env::temp_dir().join(format!("volley-demo-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("plans")).map_err(runtime)?;
        std::fs::create_dir_all(dir.join("data")).map_err(runtime)?;
        std::fs::write(dir.join("plans/demo.toml"), DEMO_PLAN).map_err(runtime)?;
        std::fs::write(dir.join("data/users.csv"), DEMO_USERS).map_err(runtime)?;
        (dir.join("plans/demo.toml"), Some(dir))
    };
    eprintln!("running {}", plan_path.display());
    let args = PlanArgs {
        plan: plan_path,
        env: vec![],
        segment: None,
    };
    let plan = load_plan(&args, &[("BASE_URL".to_string(), base)])?;
    let settings = run::Settings {
        quiet: a.quiet,
        workers: default_workers(),
        seed: random_seed(),
        start_at: None,
    };
    let code = run_and_report(plan, settings, a.summary_export.as_deref());
    let served = server.state.stats.total();
    eprintln!("the demo target answered {served} requests");
    if let Some(dir) = _tmp {
        let _ = std::fs::remove_dir_all(dir);
    }
    code
}
