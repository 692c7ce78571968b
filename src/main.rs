//! volley: one binary, one plan file, one metrics pipeline.

use anyhow::{Context as _, anyhow};
use clap::{Args, Parser, Subcommand};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use volley::output::{OutputSpec, Outputs};
use volley::{compare, engine, junit, k8s, merge, plan, report, run, serve, summary};
use volley_protocols::duration::DurRange;

/// Exit codes, as k6 users know them.
const EXIT_OK: u8 = 0;
const EXIT_RUNTIME: u8 = 1;
/// `volley compare`: a statistic regressed beyond the limit.
const EXIT_REGRESSED: u8 = 1;
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
    /// Render the HTML report (and JUnit) from a saved summary export.
    Report(ReportArgs),
    /// Compare two summary exports; exit 1 when a statistic regressed beyond the limit.
    Compare(CompareArgs),
    /// Merge the summaries of a distributed run's parts (--segment I/N) into one,
    /// exactly, and judge the plan's thresholds on it. Exit 0, 99 or 2.
    Merge(MergeArgs),
    /// Distributed runs on Kubernetes.
    #[command(subcommand)]
    K8s(K8sCmd),
    /// Sign or send one Stripe webhook event, to debug a receiver.
    #[command(subcommand)]
    Webhook(WebhookCmd),
    /// Fill PostgreSQL with deterministic test data from a seed spec and write the CSV feeders plans read.
    /// Exit 0: done; 2: bad spec (nothing written); 1: runtime failure (rolled back).
    Seed(SeedArgs),
}

#[derive(Subcommand)]
enum K8sCmd {
    /// Print the manifests of a run in N parts: results volume, plan ConfigMap,
    /// metrics Service, an Indexed Job of N runner pods, a merge Job.
    Render(K8sRenderArgs),
}

#[derive(Args)]
struct K8sRenderArgs {
    /// The plan file (TOML); it is checked, and its [data.*] files go along.
    plan: PathBuf,
    /// How many runner pods: the plan is split in this many segments.
    #[arg(long, short = 'n')]
    parts: u64,
    /// When the load starts, from now (pods scheduled earlier wait for it).
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    start_in: String,
    /// When the load starts, as an RFC 3339 time (instead of --start-in).
    #[arg(long, value_name = "TIME", conflicts_with = "start_in")]
    start_at: Option<String>,
    /// The image with volley in it (see deploy/k8s/Containerfile).
    #[arg(long, default_value = concat!("volley:", env!("CARGO_PKG_VERSION")))]
    image: String,
    /// Namespace of every object (default: kubectl's current one).
    #[arg(long)]
    namespace: Option<String>,
    /// Prefix of the objects' names (default: volley-<plan name>).
    #[arg(long)]
    name: Option<String>,
    /// Environment of the runner pods, for ${NAME} in the plan (repeatable).
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// A Secret whose keys become the runner pods' environment (passwords, URLs).
    #[arg(long)]
    secret: Option<String>,
    /// An existing ReadWriteMany claim for the results (default: render one).
    #[arg(long)]
    pvc: Option<String>,
    /// Storage class of the rendered claim (it must offer ReadWriteMany).
    #[arg(long)]
    storage_class: Option<String>,
    /// Size of the rendered claim.
    #[arg(long, default_value = "1Gi")]
    storage: String,
    /// CPU requested by each runner pod.
    #[arg(long, default_value = "1")]
    cpu: String,
    /// Memory requested (and limit) of each runner pod.
    #[arg(long, default_value = "1Gi")]
    memory: String,
    /// Write one file per object into this folder instead of one stream to stdout.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum WebhookCmd {
    /// Print the Stripe-Signature header for a payload (use with curl -H).
    Sign(SignArgs),
    /// Send one signed Stripe event and print the answer. Exit 0 when the
    /// answer is the one its kind must get (2xx for valid, 4xx otherwise).
    Send(SendArgs),
}

#[derive(Args)]
struct SignArgs {
    /// The endpoint's signing secret (repeat while rotating: one v1 each).
    #[arg(
        long,
        required = true,
        env = "STRIPE_WEBHOOK_SECRET",
        value_delimiter = ','
    )]
    secret: Vec<String>,
    /// The raw body, signed byte for byte ('-': standard input).
    #[arg(long, value_name = "FILE")]
    payload: PathBuf,
    /// Unix seconds to sign with (default: now).
    #[arg(long)]
    timestamp: Option<i64>,
}

#[derive(Args)]
struct SendArgs {
    /// The endpoint URL, e.g. http://127.0.0.1:8080/webhooks/stripe.
    #[arg(long)]
    to: String,
    /// The endpoint's signing secret (repeat while rotating).
    #[arg(long, env = "STRIPE_WEBHOOK_SECRET", value_delimiter = ',')]
    secret: Vec<String>,
    /// Event type, e.g. invoice.paid (a built-in template or one in --templates).
    #[arg(long, default_value = "payment_intent.succeeded")]
    event: String,
    /// A folder of event templates (*.json) beside the built-in ones.
    #[arg(long, value_name = "DIR")]
    templates: Option<PathBuf>,
    /// What to send: a valid delivery, or one the endpoint must refuse.
    #[arg(long, value_enum, default_value = "valid")]
    kind: SendKind,
    /// Give up after this long.
    #[arg(long, default_value = "30s")]
    timeout: String,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SendKind {
    Valid,
    Forged,
    Stale,
    Unsigned,
}

/// Files and outputs a run writes besides the terminal summary.
#[derive(Args, Default)]
struct ArtifactArgs {
    /// Write the end-of-run summary as JSON (k6 shape plus mergeable histograms).
    #[arg(long, value_name = "FILE")]
    summary_export: Option<PathBuf>,
    /// Write a self-contained HTML report (charts, tables, verdict).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Write the thresholds as JUnit XML test cases.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Stream time series while the run goes (repeatable): json=FILE, csv=FILE,
    /// prometheus=127.0.0.1:9464[,linger=30s].
    #[arg(long = "out", value_name = "KIND=TARGET")]
    out: Vec<String>,
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
    #[command(flatten)]
    artifacts: ArtifactArgs,
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
    /// Do not judge thresholds (no abort_on_fail, no exit 99); the summary
    /// still carries them. For the parts of a distributed run: `volley merge`
    /// judges the whole.
    #[arg(long)]
    no_thresholds: bool,
}

#[derive(Args)]
struct MergeArgs {
    /// The parts' summary exports (volley run --segment I/N --summary-export FILE).
    #[arg(required = true, value_name = "PART")]
    parts: Vec<PathBuf>,
    /// Write the merged summary as JSON (it can be merged, compared and reported on again).
    #[arg(long, value_name = "FILE")]
    summary_export: Option<PathBuf>,
    /// Write the HTML report of the merged run.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Write the thresholds of the merged run as JUnit XML.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Merge even when segments are missing; the merged summary lists them.
    #[arg(long)]
    allow_partial: bool,
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
    /// Share of chat sessions (/ws/chat) closed abruptly mid-session (0..1).
    #[arg(long, default_value_t = 0.0)]
    ws_drop_rate: f64,
    /// When a session picked by --ws-drop-rate is dropped after it opens: "2s" or "1s..5s".
    #[arg(long)]
    ws_drop_after: Option<String>,
    /// Share of chat deliveries (a message to one room member) silently withheld (0..1).
    #[arg(long, default_value_t = 0.0)]
    ws_loss_rate: f64,
    /// Delay before chat messages reach the other members: "100ms" or "50ms..150ms".
    #[arg(long)]
    ws_delay: Option<String>,
    /// Server threads (default: one per available core).
    #[arg(long)]
    threads: Option<usize>,
    /// Signing secret of POST /webhooks/stripe (whsec_...).
    #[arg(long, env = "STRIPE_WEBHOOK_SECRET")]
    webhook_secret: Option<String>,
    /// Accept every webhook unverified: an endpoint with a hole, so volley's
    /// forgery check can be seen to fire.
    #[arg(long)]
    webhook_insecure: bool,
    /// Serve at most N API requests at once; beyond that a short queue
    /// (--queue), then 503: a target with a breaking point.
    #[arg(long, value_name = "N")]
    capacity: Option<usize>,
    /// Requests that may wait for a slot beyond --capacity (default: a quarter of it).
    #[arg(long, value_name = "N", requires = "capacity")]
    queue: Option<usize>,
    /// How long a request may wait for a slot (default 100ms).
    #[arg(long, value_name = "DURATION", requires = "capacity")]
    queue_timeout: Option<String>,
    /// Grow resident memory by this many KiB per second, for ever: a leak to find.
    #[arg(long, value_name = "KB_PER_S", default_value_t = 0.0)]
    leak: f64,
    /// Write this process's id to FILE (for a monitor's pid_file).
    #[arg(long, value_name = "FILE")]
    pid_file: Option<PathBuf>,
}

#[derive(Args)]
struct DemoArgs {
    /// Write the summary as JSON.
    #[arg(long, value_name = "FILE")]
    summary_export: Option<PathBuf>,
    /// Where to write the HTML report.
    #[arg(long, value_name = "FILE", default_value = "volley-report.html")]
    report: PathBuf,
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Args)]
struct ReportArgs {
    /// A summary written by `volley run --summary-export` (or merge).
    summary: PathBuf,
    /// Where to write the HTML report.
    #[arg(long, value_name = "FILE", default_value = "report.html")]
    out: PathBuf,
    /// Also write the thresholds as JUnit XML.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
}

#[derive(Args)]
struct CompareArgs {
    /// The reference summary export.
    baseline: PathBuf,
    /// The summary export to judge.
    current: PathBuf,
    /// Largest change for the worse allowed: latency or error rates up, throughput down.
    #[arg(long, value_name = "PERCENT", default_value = "10%")]
    max_regression: String,
    /// Compare only these (repeatable): NAME, NAME:STAT, NAME{tag:value}:STAT,
    /// e.g. 'http_req_duration{scenario:api}:p(99)'. Default: headline latencies
    /// (p95), error rates and counts, throughput.
    #[arg(long, value_name = "SPEC")]
    metric: Vec<String>,
    /// Also compare per value of this tag within each scenario (e.g. name).
    #[arg(long, value_name = "TAG")]
    by: Vec<String>,
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
        Cmd::Report(a) => cmd_report(a),
        Cmd::Compare(a) => cmd_compare(a),
        Cmd::Merge(a) => cmd_merge(a),
        Cmd::K8s(K8sCmd::Render(a)) => cmd_k8s_render(a),
        Cmd::Webhook(WebhookCmd::Sign(a)) => cmd_webhook_sign(a),
        Cmd::Webhook(WebhookCmd::Send(a)) => cmd_webhook_send(a),
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
        no_thresholds: a.no_thresholds,
    };
    run_and_report(plan, settings, &a.artifacts)
}

fn random_seed() -> u64 {
    fastrand::u64(..)
}

/// Refuse before the run a file we could not write after it.
fn check_writable(flag: &str, path: &Path) -> Result<(), Failure> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(usage(anyhow!(
            "{flag} {}: the folder {} does not exist; create it or choose another path",
            path.display(),
            dir.display()
        )));
    }
    if path.is_dir() {
        return Err(usage(anyhow!(
            "{flag} {}: that is a folder; give a file name",
            path.display()
        )));
    }
    Ok(())
}

fn write_file(what: &str, path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    run::write_atomic(path, bytes)
        .with_context(|| format!("cannot write the {what} to {}", path.display()))
        .map_err(runtime)
}

fn write_report(s: &summary::Summary, path: &Path) -> Result<(), Failure> {
    let html = report::render(s).map_err(|e| runtime(anyhow!("cannot render the report: {e}")))?;
    write_file("report", path, html.as_bytes())
}

fn write_junit(s: &summary::Summary, path: &Path) -> Result<(), Failure> {
    let xml = junit::render(s).map_err(|e| runtime(anyhow!(e)))?;
    write_file("JUnit XML", path, xml.as_bytes())
}

fn run_and_report(
    plan: plan::Plan,
    settings: run::Settings,
    artifacts: &ArtifactArgs,
) -> Result<u8, Failure> {
    for (flag, path) in [
        ("--summary-export", &artifacts.summary_export),
        ("--report", &artifacts.report),
        ("--junit", &artifacts.junit),
    ] {
        if let Some(p) = path {
            check_writable(flag, p)?;
        }
    }
    let specs = artifacts
        .out
        .iter()
        .map(|s| OutputSpec::parse(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| usage(anyhow!(e)))?;
    let mut outputs = Outputs::open(&specs).map_err(|e| usage(anyhow!(e)))?;
    raise_nofile(&plan);
    let plan = Arc::new(plan);
    let rt = main_runtime()?;
    let report = rt.block_on(async {
        let control = engine::Control::default();
        let ctrl_c = run::install_ctrl_c(&control);
        let mut observers = outputs.observers();
        let report = run::execute(plan.clone(), &settings, control, &mut observers).await;
        ctrl_c.abort();
        report
    });
    let report = report.map_err(|e| usage(anyhow!(e)))?;
    print!("{}", summary::render_text(&report.summary, &report.series));
    if settings.no_thresholds && !report.summary.volley.thresholds.is_empty() {
        eprintln!(
            "\nthresholds not judged (--no-thresholds): `volley merge` judges them on the merged parts"
        );
    }
    let mut written = Ok(());
    if let Some(path) = &artifacts.summary_export {
        let json = serde_json::to_vec_pretty(&report.summary).map_err(runtime)?;
        written = written.and(write_file("summary", path, &json));
    }
    if let Some(path) = &artifacts.report {
        written = written.and(write_report(&report.summary, path));
    }
    if let Some(path) = &artifacts.junit {
        written = written.and(write_junit(&report.summary, path));
    }
    if let Some(linger) = outputs.linger() {
        eprintln!(
            "prometheus: serving the final values until scraped, at most {} (Ctrl-C to exit now)",
            volley_protocols::duration::format_duration(linger)
        );
        rt.block_on(async {
            tokio::select! {
                _ = outputs.final_scraped() => {}
                _ = tokio::time::sleep(linger) => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        });
    }
    outputs.finish();
    written?;
    Ok(if report.interrupted {
        EXIT_INTERRUPTED
    } else if !report.thresholds_ok {
        eprintln!("\nthresholds failed: exit {EXIT_THRESHOLDS}");
        EXIT_THRESHOLDS
    } else {
        EXIT_OK
    })
}

fn read_summary(path: &Path) -> Result<summary::Summary, Failure> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read {}", path.display()))
        .map_err(usage)?;
    serde_json::from_slice(&bytes).map_err(|e| {
        usage(anyhow!(
            "{} is not a volley summary export ({e}); write one with `volley run PLAN --summary-export FILE`",
            path.display()
        ))
    })
}

fn cmd_report(a: ReportArgs) -> Result<u8, Failure> {
    check_writable("--out", &a.out)?;
    if let Some(j) = &a.junit {
        check_writable("--junit", j)?;
    }
    let s = read_summary(&a.summary)?;
    write_report(&s, &a.out)?;
    println!("report written to {}", a.out.display());
    if let Some(j) = &a.junit {
        write_junit(&s, j)?;
        println!("JUnit XML written to {}", j.display());
    }
    Ok(EXIT_OK)
}

fn cmd_compare(a: CompareArgs) -> Result<u8, Failure> {
    let max_regression =
        compare::parse_percent(&a.max_regression).map_err(|e| usage(anyhow!(e)))?;
    let metrics = a
        .metric
        .iter()
        .map(|m| compare::MetricSpec::parse(m))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| usage(anyhow!(e)))?;
    let base = read_summary(&a.baseline)?;
    let cur = read_summary(&a.current)?;
    let opts = compare::Options {
        max_regression,
        metrics,
        by: a.by,
    };
    let c = compare::compare(&base, &cur, &opts).map_err(|e| usage(anyhow!(e)))?;
    println!(
        "\n  baseline: {} ({})\n  current:  {} ({})\n",
        a.baseline.display(),
        base.volley.started,
        a.current.display(),
        cur.volley.started
    );
    print!("{}", compare::render_table(&c));
    Ok(if c.regressed() > 0 {
        EXIT_REGRESSED
    } else {
        EXIT_OK
    })
}

fn cmd_merge(a: MergeArgs) -> Result<u8, Failure> {
    for (flag, path) in [
        ("--summary-export", &a.summary_export),
        ("--report", &a.report),
        ("--junit", &a.junit),
    ] {
        if let Some(p) = path {
            check_writable(flag, p)?;
        }
    }
    let parts = a
        .parts
        .iter()
        .map(|p| {
            Ok(merge::Part {
                file: p.clone(),
                summary: read_summary(p)?,
            })
        })
        .collect::<Result<Vec<_>, Failure>>()?;
    let opts = merge::Options {
        allow_partial: a.allow_partial,
    };
    let m = merge::merge(&parts, &opts).map_err(|e| usage(anyhow!("cannot merge: {e}")))?;
    for line in merge::describe(&m.summary) {
        eprintln!("{line}");
    }
    print!("{}", summary::render_text(&m.summary, &m.series));
    let mut written = Ok(());
    if let Some(path) = &a.summary_export {
        let json = serde_json::to_vec_pretty(&m.summary).map_err(runtime)?;
        written = written.and(write_file("merged summary", path, &json));
    }
    if let Some(path) = &a.report {
        written = written.and(write_report(&m.summary, path));
    }
    if let Some(path) = &a.junit {
        written = written.and(write_junit(&m.summary, path));
    }
    written?;
    Ok(if m.thresholds_ok {
        EXIT_OK
    } else {
        eprintln!("\nthresholds failed on the merged run: exit {EXIT_THRESHOLDS}");
        EXIT_THRESHOLDS
    })
}

fn cmd_k8s_render(a: K8sRenderArgs) -> Result<u8, Failure> {
    let now = SystemTime::now();
    let start_at = match &a.start_at {
        Some(t) => parse_start_at(t)?,
        None => {
            now + volley_protocols::duration::parse_duration(&a.start_in)
                .map_err(|e| usage(anyhow!("--start-in: {e}")))?
        }
    };
    if a.parts == 0 {
        return Err(usage(anyhow!("--parts must be at least 1")));
    }
    if start_at < now + Duration::from_secs(30) {
        eprintln!(
            "warning: the load starts in less than 30 s: pods still being scheduled or pulling the image then will start late, out of step (--start-in 60s gives them time)"
        );
    }
    let mut pod_env = Vec::new();
    for p in &a.env {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| usage(anyhow!("-e {p:?}: write KEY=VALUE")))?;
        pod_env.push((k.to_string(), v.to_string()));
    }
    // Checked here, with the pods' variables over this shell's, so a bad
    // plan fails now and not in N pods.
    let plan_args = PlanArgs {
        plan: a.plan.clone(),
        env: a.env.clone(),
        segment: Some(format!("1/{}", a.parts)),
    };
    let plan = load_plan(&plan_args, &[]).map_err(|Failure(code, e)| {
        if e.to_string().contains("is not set") {
            Failure(
                code,
                e.context("the plan is checked before it is rendered: give its variables with -e KEY=VALUE (they go to the pods too), or export them in this shell for the check only and give the pods a --secret"),
            )
        } else {
            Failure(code, e)
        }
    })?;
    let opts = k8s::RenderOptions {
        plan_file: a.plan.clone(),
        parts: a.parts,
        start_at,
        image: a.image,
        namespace: a.namespace,
        name: a.name.unwrap_or_else(|| k8s::default_name(&a.plan)),
        env: pod_env,
        secret: a.secret,
        pvc: a.pvc,
        storage_class: a.storage_class,
        storage: a.storage,
        cpu: a.cpu,
        memory: a.memory,
    };
    let objects = k8s::render(&plan, &opts, now).map_err(|e| usage(anyhow!(e)))?;
    let when = humantime::format_rfc3339_seconds(start_at);
    let next = format!(
        "the load starts at {when}; follow the merge with: kubectl logs -f job/{}-merge{}",
        opts.name,
        opts.namespace
            .as_deref()
            .map(|n| format!(" -n {n}"))
            .unwrap_or_default()
    );
    match &a.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))
                .map_err(runtime)?;
            for (i, o) in objects.iter().enumerate() {
                write_file(
                    "manifest",
                    &dir.join(format!("{}-{}", i + 1, o.file)),
                    o.yaml.as_bytes(),
                )?;
            }
            eprintln!(
                "{} objects for {} parts written to {}: kubectl apply -f {}\n{next}",
                objects.len(),
                a.parts,
                dir.display(),
                dir.display()
            );
        }
        None => {
            print!("{}", k8s::stream(&objects));
            eprintln!(
                "{} objects for {} parts: pipe them to kubectl apply -f -\n{next}",
                objects.len(),
                a.parts
            );
        }
    }
    Ok(EXIT_OK)
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
    out.push_str(&volley::capacity::describe(plan));
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
    for (flag, v) in [
        ("--error-rate", a.error_rate),
        ("--ws-drop-rate", a.ws_drop_rate),
        ("--ws-loss-rate", a.ws_loss_rate),
    ] {
        if !(0.0..=1.0).contains(&v) {
            return Err(usage(anyhow!("{flag} {v} must be between 0 and 1")));
        }
    }
    let range = |flag: &str, v: &Option<String>| {
        v.as_deref()
            .map(DurRange::parse)
            .transpose()
            .map_err(|e| usage(anyhow!("{flag}: {e}")))
    };
    let ws_drop_after = range("--ws-drop-after", &a.ws_drop_after)?;
    let ws_delay = range("--ws-delay", &a.ws_delay)?;
    // Thousands of chat sessions need thousands of descriptors.
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!("cannot raise the open-file limit: {e}");
    }
    if a.capacity == Some(0) {
        return Err(usage(anyhow!("--capacity must be at least 1")));
    }
    if !(a.leak.is_finite() && a.leak >= 0.0) {
        return Err(usage(anyhow!(
            "--leak {} must be a number of KiB per second >= 0",
            a.leak
        )));
    }
    let queue_timeout = a
        .queue_timeout
        .as_deref()
        .map(volley_protocols::duration::parse_duration)
        .transpose()
        .map_err(|e| usage(anyhow!("--queue-timeout: {e}")))?;
    if let Some(p) = &a.pid_file {
        write_file(
            "pid file",
            p,
            format!("{}\n", std::process::id()).as_bytes(),
        )?;
    }
    // Every client connection is a file descriptor.
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!("cannot raise the open-file limit: {e}");
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
            webhook_secret: a.webhook_secret.clone(),
            webhook_insecure: a.webhook_insecure,
            ws_drop_rate: a.ws_drop_rate,
            ws_drop_after,
            ws_loss_rate: a.ws_loss_rate,
            ws_delay,
            capacity: a.capacity,
            queue: a.queue,
            queue_timeout,
            leak_kb_per_s: a.leak,
        };
        let server = serve::Server::start(a.addr, opts)
            .await
            .with_context(|| format!("cannot listen on {}", a.addr))
            .map_err(runtime)?;
        println!("volley serve: listening on {}", server.base_url());
        println!(
            "  API: {0}/api/v1/health  chat: {1}  stats: {0}/__volley/stats",
            server.base_url(),
            server.ws_url()
        );
        let mode = match (&a.webhook_secret, a.webhook_insecure) {
            (_, true) => "accepts everything (--webhook-insecure)",
            (Some(_), _) => "verifies signatures",
            (None, _) => "needs --webhook-secret",
        };
        println!(
            "  webhooks: {}{} ({mode})",
            server.base_url(),
            serve::webhook::PATH
        );
        println!(
            "  metrics: {0}/api/metrics (JSON)  {0}/metrics (Prometheus)  pid {1}",
            server.base_url(),
            std::process::id()
        );
        if let Some(c) = a.capacity {
            let q = a.queue.unwrap_or(c / 4);
            println!(
                "  capacity: {c} requests in flight, {q} more may wait {}, then 503",
                a.queue_timeout.as_deref().unwrap_or("100ms")
            );
        }
        if a.leak > 0.0 {
            println!("  leaking {} KiB/s of resident memory (--leak)", a.leak);
        }
        let _ = tokio::signal::ctrl_c().await;
        server.shutdown();
        if let Some(p) = &a.pid_file {
            let _ = std::fs::remove_file(p);
        }
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
    let secret = format!("whsec_demo_{}", fastrand::u64(..));
    let server = server_rt
        .block_on(serve::Server::start(
            "127.0.0.1:0".parse().expect("valid address"),
            serve::ServeOptions {
                webhook_secret: Some(secret.clone()),
                ..Default::default()
            },
        ))
        .context("cannot start the demo target on loopback")
        .map_err(runtime)?;
    let base = server.base_url();
    let ws = server.ws_url();
    eprintln!("demo target listening on {base} (chat: {ws})");

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
    let plan = load_plan(
        &args,
        &[
            ("BASE_URL".to_string(), base),
            ("STRIPE_WEBHOOK_SECRET".to_string(), secret),
            ("WS_URL".to_string(), ws),
        ],
    )?;
    let settings = run::Settings {
        quiet: a.quiet,
        workers: default_workers(),
        seed: random_seed(),
        start_at: None,
        no_thresholds: false,
    };
    let artifacts = ArtifactArgs {
        summary_export: a.summary_export,
        report: Some(a.report.clone()),
        ..Default::default()
    };
    let code = run_and_report(plan, settings, &artifacts);
    let served = server.state.stats.total();
    let w = &server.state.webhooks;
    let chat = &server.state.chat.stats;
    eprintln!(
        "\nthe demo target, by its own count: {served} HTTP requests (webhooks included); {} chat messages relayed in {} sessions; \
         {} webhooks received ({} rejected, {} duplicates, {} processed)",
        chat.messages.load(std::sync::atomic::Ordering::Relaxed),
        chat.sessions.load(std::sync::atomic::Ordering::Relaxed),
        w.received(),
        w.rejected_total(),
        w.duplicates(),
        w.processed()
    );
    if code.is_ok() {
        let shown = std::fs::canonicalize(&a.report).unwrap_or(a.report.clone());
        println!("\nreport: {}", shown.display());
    }
    if let Some(dir) = _tmp {
        let _ = std::fs::remove_dir_all(dir);
    }
    code
}

fn cmd_webhook_sign(a: SignArgs) -> Result<u8, Failure> {
    use std::io::Read as _;
    let payload = if a.payload.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("cannot read the payload from standard input")
            .map_err(runtime)?;
        buf
    } else {
        std::fs::read(&a.payload)
            .with_context(|| format!("cannot read the payload {}", a.payload.display()))
            .map_err(usage)?
    };
    let t = a.timestamp.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    });
    let secrets: Vec<&str> = a.secret.iter().map(String::as_str).collect();
    let header = volley_protocols::webhook::signature::header(&secrets, t, &payload);
    println!("Stripe-Signature: {header}");
    Ok(EXIT_OK)
}

fn cmd_webhook_send(a: SendArgs) -> Result<u8, Failure> {
    use volley_protocols::webhook::{Kind, send_one};
    let timeout = volley_protocols::duration::parse_duration(&a.timeout)
        .map_err(|e| usage(anyhow!("--timeout: {e}")))?;
    let kind = match a.kind {
        SendKind::Valid => Kind::Valid,
        SendKind::Forged => Kind::Forged,
        SendKind::Stale => Kind::Stale,
        SendKind::Unsigned => Kind::Unsigned,
    };
    let rt = main_runtime()?;
    let local = tokio::task::LocalSet::new();
    let sent = local.block_on(
        &rt,
        send_one(
            &a.to,
            &a.secret,
            &a.event,
            a.templates.as_deref(),
            kind,
            timeout,
        ),
    );
    let out = sent.map_err(|e| runtime(anyhow!(e)))?;
    let id = serde_json::from_slice::<serde_json::Value>(&out.payload)
        .ok()
        .and_then(|v| v["id"].as_str().map(str::to_string))
        .unwrap_or_default();
    eprintln!("sent {} {id} ({} delivery)", a.event, kind.tag());
    match &out.signature {
        Some(h) => eprintln!("Stripe-Signature: {h}"),
        None => eprintln!("(no Stripe-Signature header)"),
    }
    println!("{}", out.status);
    if !out.body.is_empty() {
        println!("{}", out.body);
    }
    Ok(if kind.answered_right(out.status) {
        EXIT_OK
    } else {
        eprintln!(
            "the endpoint answered {} to a {} delivery; it must answer {}",
            out.status,
            kind.tag(),
            if kind.must_accept() { "2xx" } else { "4xx" }
        );
        EXIT_RUNTIME
    })
}
