//! `volley run` and `volley validate`.

use super::*;

/// Files and outputs a run writes besides the terminal summary.
#[derive(Args, Default)]
pub(super) struct ArtifactArgs {
    /// Write the end-of-run summary as JSON (k6 shape plus mergeable histograms); `-`: stdout.
    #[arg(long, value_name = "FILE")]
    pub(super) summary_export: Option<PathBuf>,
    /// Write a self-contained HTML report (charts, tables, verdict); `-`: stdout.
    #[arg(long, value_name = "FILE")]
    pub(super) report: Option<PathBuf>,
    /// Write the thresholds as JUnit XML test cases; `-`: stdout.
    #[arg(long, value_name = "FILE")]
    pub(super) junit: Option<PathBuf>,
    /// Stream time series while the run goes (repeatable): json=FILE, csv=FILE,
    /// prometheus=127.0.0.1:9464[,linger=30s], influxdb=http://127.0.0.1:8086/DB,
    /// prometheus-rw=http://127.0.0.1:9090/api/v1/write (both: http or https,
    /// [,push=1s][,timeout=5s][,tag=KEY:VALUE][,ca=FILE][,insecure]).
    /// FILE `-`: stdout.
    #[arg(long = "out", value_name = "KIND=TARGET")]
    pub(super) out: Vec<String>,
    /// Serve a live web page while the run goes (charts per scenario,
    /// thresholds, errors); ADDR defaults to 127.0.0.1:5665 (loopback).
    /// Written `--dashboard=ADDR`, so `--dashboard plan.toml` is the plan.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, require_equals = true, default_missing_value = "127.0.0.1:5665")]
    pub(super) dashboard: Option<String>,
    /// Keep the dashboard up this long after the run (e.g. 30s; Ctrl-C ends it).
    #[arg(long, value_name = "DURATION", requires = "dashboard")]
    pub(super) dashboard_linger: Option<String>,
}

#[derive(Args)]
pub(super) struct RunArgs {
    /// The plan file (TOML), or a URL to run without a plan.
    #[arg(value_name = "PLAN|URL")]
    pub(super) target: Option<String>,
    /// Set a variable for ${NAME} in the plan (repeatable).
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub(super) env: Vec<String>,
    /// Run the I-th of N interleaved shares of the plan (distributed runs).
    #[arg(long, value_name = "I/N")]
    pub(super) segment: Option<String>,
    #[command(flatten)]
    pub(super) quick: QuickArgs,
    #[command(flatten)]
    pub(super) shape: ShapeArgs,
    /// Add a threshold, METRIC{tags}=EXPRESSION (repeatable), e.g.
    /// 'http_req_duration=p(95)<3000'.
    #[arg(long = "threshold", value_name = "METRIC=EXPR")]
    pub(super) thresholds: Vec<String>,
    /// The trend statistics the summary and report show, e.g. avg,p(50),p(75),p(99.9).
    #[arg(long, value_name = "LIST", value_parser = parse_trend_stats)]
    pub(super) summary_trend_stats: Option<String>,
    #[command(flatten)]
    pub(super) artifacts: ArtifactArgs,
    /// No live progress line.
    #[arg(short, long)]
    pub(super) quiet: bool,
    /// Wait until this moment to start: RFC 3339 time or +DURATION (e.g. +30s).
    #[arg(long, value_name = "TIME")]
    pub(super) start_at: Option<String>,
    /// Worker threads, 1 to 1024 (default: one per available core).
    #[arg(long, value_parser = parse_workers)]
    pub(super) workers: Option<usize>,
    /// Seed for random template values, for repeatable runs.
    #[arg(long)]
    pub(super) seed: Option<u64>,
    /// Do not judge thresholds (no abort_on_fail, no exit 99); the summary
    /// still carries them. For the parts of a distributed run: `volley merge`
    /// judges the whole.
    #[arg(long)]
    pub(super) no_thresholds: bool,
    /// Distinct series (metric and tags) kept apart. Past it, new values of
    /// the tag that explodes (e.g. `name`) are counted under `other`, with a
    /// warning naming it: totals stay exact, memory stays bounded.
    #[arg(long, value_name = "N", env = "VOLLEY_MAX_SERIES",
          default_value_t = volley_protocols::metrics::DEFAULT_MAX_SERIES as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(super) max_series: u64,
    /// Points of per-series time series kept (in memory and in the summary's
    /// `intervals`): a long or many-series run keeps fewer, wider buckets.
    #[arg(long, value_name = "N", env = "VOLLEY_HISTORY_POINTS",
          default_value_t = volley_model::history::SERIES_POINTS as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(super) history_points: u64,
}

#[derive(Args)]
pub(super) struct ValidateArgs {
    #[command(flatten)]
    pub(super) plan: PlanArgs,
    /// The same overrides `volley run` takes, so the plan is checked and
    /// described as that run would be.
    #[command(flatten)]
    pub(super) shape: ShapeArgs,
    /// Add a threshold, METRIC{tags}=EXPRESSION (repeatable), as `volley run --threshold`.
    #[arg(long = "threshold", value_name = "METRIC=EXPR")]
    pub(super) thresholds: Vec<String>,
}

/// Checked as clap reads it; kept as text (clap reads `Option<Vec<_>>` as a list of flags).
fn parse_trend_stats(s: &str) -> Result<String, volley_model::trend_stats::TrendStatError> {
    TrendStat::parse_list(s).map(|_| s.to_string())
}

pub(super) fn cmd_run(a: RunArgs) -> Result<u8, Failure> {
    let url = quick_url(a.target.as_deref(), &a.quick)?;
    let shape = a.shape.executor(url.is_some())?;
    let opts = LoadOpts {
        env: &a.env,
        segment: a.segment.as_deref(),
        extra_env: &[],
        shape,
        thresholds: &a.thresholds,
    };
    let mut plan = match (&url, &a.target) {
        (Some(url), _) => {
            let text = quick_plan(url, &a.quick)?;
            load_text(url, &text, &opts)?
        }
        (None, Some(path)) => load_plan_with(Path::new(path), &opts)?,
        (None, None) => {
            return Err(usage(anyhow!(
                "give a plan file (volley run plan.toml) or a URL (volley run http://127.0.0.1:8080/ -c 10 -z 30s)"
            )));
        }
    };
    if let Some(stats) = &a.summary_trend_stats {
        let list = TrendStat::parse_list(stats)
            .map_err(|e| usage(anyhow!("--summary-trend-stats: {e}")))?;
        plan.summary_trend_stats = Some(list);
    }
    let start_at = a.start_at.as_deref().map(parse_start_at).transpose()?;
    let settings = run::Settings {
        workers: a.workers.unwrap_or_else(default_workers),
        seed: a.seed.unwrap_or_else(random_seed),
        start_at,
        no_thresholds: a.no_thresholds,
        max_series: usize::try_from(a.max_series).unwrap_or(usize::MAX),
        history_points: usize::try_from(a.history_points).unwrap_or(usize::MAX),
        ..run::Settings::new(a.quiet)
    };
    run_and_report(plan, settings, &a.artifacts)
}

pub(super) fn parse_start_at(s: &str) -> Result<SystemTime, Failure> {
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

/// Say so when a scenario's arrival rate is likely beyond this machine.
pub(super) fn warn_rates(plan: &plan::Plan) {
    let cores = volley_config::machine::Machine::detect().cores;
    for s in &plan.scenarios {
        if let Some(w) = s.exec.rate_warning(plan.segment.count, cores) {
            eprintln!("warning: scenario {:?}: {w}", s.name);
        }
    }
}

/// Raise the open-file limit and say so when the plan needs more than is allowed.
pub(super) fn raise_nofile(plan: &plan::Plan) {
    let want: u64 = plan.scenarios.iter().map(|s| s.exec.max_vus()).sum::<u64>() + 256;
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < want => eprintln!(
            "warning: this plan may hold up to {want} connections but the open-file limit is {limit}; raise the hard limit (ulimit -Hn) or lower the VUs"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!("cannot raise the open-file limit: {e}"),
    }
}

pub(super) fn run_and_report(
    plan: plan::Plan,
    settings: run::Settings,
    artifacts: &ArtifactArgs,
) -> Result<u8, Failure> {
    let files = Artifacts {
        summary: artifacts.summary_export.as_deref(),
        report: artifacts.report.as_deref().map(|p| ("--report", p)),
        junit: artifacts.junit.as_deref(),
    };
    files.check()?;
    let specs = artifacts
        .out
        .iter()
        .map(|s| OutputSpec::parse(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| usage(anyhow!(e)))?;
    let mut on_stdout = files.on_stdout();
    on_stdout.extend(specs.iter().filter(|s| s.to_stdout()).map(|_| "--out"));
    one_stdout(&on_stdout)?;
    let dashboard_linger = artifacts
        .dashboard_linger
        .as_deref()
        .map(|d| {
            volley_protocols::duration::parse_duration(d)
                .map_err(|e| usage(anyhow!("--dashboard-linger {d:?}: {e}")))
        })
        .transpose()?
        .unwrap_or_default();
    let dashboard_addr = artifacts
        .dashboard
        .as_deref()
        .map(|a| parse_dashboard_addr(a).map_err(|e| usage(anyhow!(e))))
        .transpose()?;
    let mut outputs = Outputs::open(&specs).map_err(|e| usage(anyhow!(e)))?;
    let mut dashboard = dashboard_addr
        .map(|a| Dashboard::start(a, dashboard_linger, plan.thresholds.clone()))
        .transpose()
        .map_err(|e| usage(anyhow!(e)))?;
    raise_nofile(&plan);
    warn_rates(&plan);
    let plan = Arc::new(plan);
    let rt = main_runtime()?;
    let report = rt.block_on(async {
        let control = engine::Control::default();
        let ctrl_c = run::install_ctrl_c(&control);
        let mut observers = outputs.observers();
        if let Some(d) = dashboard.as_mut() {
            observers.push(d);
        }
        let report = run::execute(plan.clone(), &settings, control, &mut observers).await;
        ctrl_c.abort();
        report
    });
    let report = report.map_err(|e| match e {
        e @ (run::RunError::Monitor(_) | run::RunError::Prepare { .. }) => usage(anyhow!(e)),
        e @ run::RunError::Workers(_) => runtime(anyhow!(e)),
        run::RunError::Runtime(m) => runtime(anyhow!(m)),
    })?;
    print_summary(
        &summary::render_text(&report.summary, &report.series),
        !on_stdout.is_empty(),
    );
    if settings.no_thresholds && !report.summary.volley.thresholds.is_empty() {
        eprintln!(
            "\nthresholds not judged (--no-thresholds): `volley merge` judges them on the merged parts"
        );
    }
    outputs.answers(&report.series, &report.summary.capacity.monitors);
    let mut errors = files.write(&report.summary);
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
    if let Some(d) = dashboard.as_ref().filter(|d| !d.linger.is_zero()) {
        eprintln!(
            "dashboard: http://{}/ stays up for {} (Ctrl-C to exit now)",
            d.addr,
            volley_protocols::duration::format_duration(d.linger)
        );
        rt.block_on(async {
            tokio::select! {
                _ = tokio::time::sleep(d.linger) => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        });
    }
    drop(dashboard);
    errors.extend(outputs.finish().into_iter().map(|e| anyhow!(e)));
    fail_all(errors)?;
    if let Some(why) = &report.teardown_failed {
        eprintln!("\n[teardown] failed: {why}");
    }
    Ok(if report.interrupted {
        EXIT_INTERRUPTED
    } else if report.teardown_failed.is_some() {
        EXIT_RUNTIME
    } else if !report.thresholds_ok {
        eprintln!("\nthresholds failed: exit {EXIT_THRESHOLDS}");
        EXIT_THRESHOLDS
    } else {
        EXIT_OK
    })
}

pub(super) fn cmd_validate(a: ValidateArgs) -> Result<u8, Failure> {
    let opts = LoadOpts {
        env: &a.plan.env,
        segment: a.plan.segment.as_deref(),
        extra_env: &[],
        shape: a.shape.executor(false)?,
        thresholds: &a.thresholds,
    };
    let plan = load_plan_with(&a.plan.plan, &opts)?;
    warn_rates(&plan);
    print!("{}", describe(&plan));
    Ok(EXIT_OK)
}

pub(super) fn describe(plan: &plan::Plan) -> String {
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
    for (name, phase) in [("setup", &plan.setup), ("teardown", &plan.teardown)] {
        if let Some(p) = phase {
            let n = p.driver.request_count();
            let caps = p.driver.captures();
            let _ = writeln!(
                out,
                "{name}: {n} request{} once, at most {}{}",
                if n == 1 { "" } else { "s" },
                f(p.max_duration),
                if caps.is_empty() || name != "setup" {
                    String::new()
                } else {
                    format!("; captures {}", caps.join(", "))
                }
            );
        }
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
            if let volley_model::schedule::Executor::SharedIterations { iterations, .. } = s.exec {
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
    out.push_str(&volley_config::describe::capacity(plan));
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
