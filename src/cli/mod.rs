//! The command line: one module per family of subcommands. Errors carry
//! the exit code they earn (k6's: 0, 99 thresholds, 2 usage, 1 runtime).

mod kube;
mod plans;
mod quick;
mod results;
mod seed;
mod target;
mod webhook;

use kube::*;
use plans::*;
use quick::*;
use results::*;
use seed::*;
use target::*;
use webhook::*;

use crate::k8s;
use anyhow::{Context as _, anyhow};
use clap::{Args, Parser, Subcommand};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use volley_config::plan;
use volley_model::segment::Segment;
use volley_model::summary::Summary;
use volley_model::trend_stats::TrendStat;
use volley_protocols::duration::DurRange;
use volley_results::text as summary;
use volley_results::{compare, junit, merge, report};
use volley_runtime::output::dest::{self, Dest};
use volley_runtime::output::{OutputSpec, Outputs};
use volley_runtime::{engine, run};
use volley_serve as serve;

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
    about = "Load tests for HTTP APIs, WebSocket chat, webhooks (Stripe, GitHub, Standard, Shopify, Slack) and PostgreSQL, from one plan file"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a plan, or one URL without a plan (volley run URL -c 50 -z 30s).
    /// Exit 0: thresholds passed; 99: a threshold failed; 2: bad plan or flags; 1: runtime failure.
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
    /// Sign or send one webhook event (stripe, github, standard, shopify, slack), to debug a receiver.
    #[command(subcommand)]
    Webhook(WebhookCmd),
    /// Fill PostgreSQL with deterministic test data from a seed spec and write the CSV feeders plans read.
    /// Exit 0: done; 2: bad spec (nothing written); 1: runtime failure (rolled back).
    Seed(SeedArgs),
    /// Print a shell completion script: `source <(volley completions bash)`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the JSON Schema of the plan format, for TOML editors (`#:schema` line).
    Schema,
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

pub fn main() -> ExitCode {
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
        Cmd::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "volley", &mut std::io::stdout());
            Ok(EXIT_OK)
        }
        Cmd::Schema => {
            print!("{}", volley_config::schema::plan_schema_text());
            Ok(EXIT_OK)
        }
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
        let (k, v) = env_pair(p)?;
        env.insert(k, v);
    }
    Ok(env)
}

/// `-e KEY=VALUE`, with a KEY that `${KEY}` in a plan can name.
fn env_pair(p: &str) -> Result<(String, String), Failure> {
    let (k, v) = p
        .split_once('=')
        .ok_or_else(|| usage(anyhow!("-e {p:?}: write KEY=VALUE")))?;
    if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(usage(anyhow!(
            "-e {p:?}: {k:?} is not a variable name; write KEY=VALUE with a KEY of letters, digits and _, e.g. -e BASE_URL=http://127.0.0.1:8080"
        )));
    }
    Ok((k.to_string(), v.to_string()))
}

/// More threads than this buys nothing on any machine volley runs on, and
/// spawning 100,000 of them fails half way.
const MAX_WORKERS: usize = 1024;

/// `--workers N` (`--threads N`): 1 to MAX_WORKERS.
fn parse_workers(s: &str) -> Result<usize, String> {
    let cores = default_workers();
    let fix = format!(
        "give a number from 1 to {MAX_WORKERS}, or leave it out for one per core ({cores} here)"
    );
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_WORKERS).contains(&n) => Ok(n),
        Ok(0) => Err(format!("at least one worker thread is needed; {fix}")),
        Ok(n) => Err(format!(
            "{n} threads is more than any machine can use; {fix}"
        )),
        Err(_) => Err(format!("{s:?} is not a whole number; {fix}")),
    }
}

fn load_plan(a: &PlanArgs, extra_env: &[(String, String)]) -> Result<plan::Plan, Failure> {
    let opts = LoadOpts {
        env: &a.env,
        segment: a.segment.as_deref(),
        extra_env,
        shape: None,
        thresholds: &[],
    };
    load_plan_with(&a.plan, &opts)
}

/// What a plan is loaded with, from the command line.
struct LoadOpts<'a> {
    env: &'a [String],
    segment: Option<&'a str>,
    extra_env: &'a [(String, String)],
    shape: Option<volley_model::schedule::Executor>,
    thresholds: &'a [String],
}

impl LoadOpts<'_> {
    fn options(&self) -> Result<plan::LoadOptions, Failure> {
        let mut env = env_map(self.env)?;
        for (k, v) in self.extra_env {
            env.insert(k.clone(), v.clone());
        }
        let segment = match self.segment {
            Some(s) => Segment::parse(s).map_err(|e| usage(anyhow!(e)))?,
            None => Segment::default(),
        };
        Ok(plan::LoadOptions {
            env,
            segment,
            shape: self.shape.clone(),
            thresholds: self.thresholds.to_vec(),
        })
    }
}

fn load_plan_with(path: &Path, o: &LoadOpts<'_>) -> Result<plan::Plan, Failure> {
    plan::load(path, &o.options()?).map_err(usage)
}

/// A plan from text built here (a quick run's), named `name` in messages.
fn load_text(name: &str, text: &str, o: &LoadOpts<'_>) -> Result<plan::Plan, Failure> {
    // Positions in text the user never wrote would not help: the message alone.
    plan::from_bytes(name, text.as_bytes(), Path::new("."), &o.options()?)
        .map_err(|e| usage(anyhow!("{name}: {}", e.message)))
}

fn main_runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .map_err(runtime)
}

fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(MAX_WORKERS)
}

fn random_seed() -> u64 {
    fastrand::u64(..)
}

/// Refuse before the run a file we could not write after it.
fn check_writable(flag: &str, path: &Path) -> Result<(), Failure> {
    if Dest::of(path) == Dest::Stdout {
        return Ok(());
    }
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

/// Refuse two outputs on stdout (`-`): they would interleave.
fn one_stdout(flags: &[&str]) -> Result<(), Failure> {
    if flags.len() > 1 {
        return Err(usage(anyhow!(
            "{} would all write to stdout (-); give all but one of them a file",
            flags.join(" and ")
        )));
    }
    Ok(())
}

/// The terminal summary goes to stdout, or to stderr when an output
/// (`-`) takes stdout, so the two never mix.
fn print_summary(text: &str, stdout_taken: bool) {
    if stdout_taken {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
}

/// Print every error but the last, which is returned (exit 1).
fn fail_all(mut errors: Vec<anyhow::Error>) -> Result<(), Failure> {
    let last = errors.pop();
    for e in errors {
        eprintln!("error: {e:#}");
    }
    last.map_or(Ok(()), |e| Err(runtime(e)))
}

/// The files a finished run (or merge) writes beside the terminal summary.
struct Artifacts<'a> {
    summary: Option<&'a Path>,
    report: Option<(&'static str, &'a Path)>,
    junit: Option<&'a Path>,
}

impl Artifacts<'_> {
    fn each(&self) -> [(&'static str, Option<&Path>); 3] {
        let report = self
            .report
            .map_or(("--report", None), |(flag, p)| (flag, Some(p)));
        [
            ("--summary-export", self.summary),
            report,
            ("--junit", self.junit),
        ]
    }

    /// Refuse paths that cannot be written, before any work is done.
    fn check(&self) -> Result<(), Failure> {
        for (flag, path) in self.each() {
            if let Some(p) = path {
                check_writable(flag, p)?;
            }
        }
        Ok(())
    }

    /// The flags whose file is stdout.
    fn on_stdout(&self) -> Vec<&'static str> {
        self.each()
            .into_iter()
            .filter(|(_, p)| p.is_some_and(|p| Dest::of(p) == Dest::Stdout))
            .map(|(flag, _)| flag)
            .collect()
    }

    /// Write every file asked for (a regular file whole or not at all, see
    /// `output::dest`); the errors of those that failed.
    fn write(&self, s: &Summary) -> Vec<anyhow::Error> {
        let mut errors = Vec::new();
        if let Some(path) = self.summary {
            // Compact: a soak's per-second series make pretty JSON several times larger.
            let json = serde_json::to_vec(s).map_err(Into::into);
            errors.extend(json.and_then(|j| write_file("summary", path, &j)).err());
        }
        if let Some((_, path)) = self.report {
            let html = report::render(s).map_err(|e| anyhow!("cannot render the report: {e}"));
            errors.extend(
                html.and_then(|h| write_file("report", path, h.as_bytes()))
                    .err(),
            );
        }
        if let Some(path) = self.junit {
            let xml = junit::render(s).map_err(|e| anyhow!(e));
            errors.extend(
                xml.and_then(|x| write_file("JUnit XML", path, x.as_bytes()))
                    .err(),
            );
        }
        errors
    }
}

fn write_file(what: &str, path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    dest::write(path, bytes)
        .with_context(|| format!("cannot write the {what} to {}", path.display()))
}

fn read_summary(path: &Path) -> Result<Summary, Failure> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read {}", path.display()))
        .map_err(usage)?;
    let s: Summary = serde_json::from_slice(&bytes).map_err(|e| {
        usage(anyhow!(
            "{} is not a volley summary export ({e}); write one with `volley run PLAN --summary-export FILE`",
            path.display()
        ))
    })?;
    s.check_times().map_err(|e| {
        usage(anyhow!(
            "{}: {e}: the file is damaged; export it again with `volley run PLAN --summary-export FILE`",
            path.display()
        ))
    })?;
    Ok(s)
}
