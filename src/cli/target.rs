//! `volley serve` (the embedded target) and `volley demo`.

use super::*;

#[derive(Args)]
pub(super) struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub(super) addr: SocketAddr,
    /// Delay added to every API response: "10ms" or a range "5ms..20ms".
    #[arg(long)]
    pub(super) latency: Option<String>,
    /// Share of API requests answered with 500 (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub(super) error_rate: f64,
    /// Share of chat sessions (/ws/chat) closed abruptly mid-session (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub(super) ws_drop_rate: f64,
    /// When a session picked by --ws-drop-rate is dropped after it opens: "2s" or "1s..5s".
    #[arg(long)]
    pub(super) ws_drop_after: Option<String>,
    /// Share of chat deliveries (a message to one room member) silently withheld (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub(super) ws_loss_rate: f64,
    /// Delay before chat messages reach the other members: "100ms" or "50ms..150ms".
    #[arg(long)]
    pub(super) ws_delay: Option<String>,
    /// Server threads, 1 to 1024 (default: one per available core).
    #[arg(long, value_parser = parse_workers)]
    pub(super) threads: Option<usize>,
    /// Signing secret of POST /webhooks/<scheme>, one route per scheme
    /// (stripe, github, standard, shopify, slack); standard needs it as
    /// whsec_ + base64.
    #[arg(long, env = "STRIPE_WEBHOOK_SECRET")]
    pub(super) webhook_secret: Option<String>,
    /// Accept every webhook unverified: an endpoint with a hole, so volley's
    /// forgery check can be seen to fire.
    #[arg(long)]
    pub(super) webhook_insecure: bool,
    /// Serve at most N API requests at once; beyond that a short queue
    /// (--queue), then 503: a target with a breaking point.
    #[arg(long, value_name = "N")]
    pub(super) capacity: Option<usize>,
    /// Requests that may wait for a slot beyond --capacity (default: a quarter of it).
    #[arg(long, value_name = "N", requires = "capacity")]
    pub(super) queue: Option<usize>,
    /// How long a request may wait for a slot (default 100ms).
    #[arg(long, value_name = "DURATION", requires = "capacity")]
    pub(super) queue_timeout: Option<String>,
    /// Grow resident memory by this many KiB per second, for ever: a leak to find.
    #[arg(long, value_name = "KB_PER_S", default_value_t = 0.0)]
    pub(super) leak: f64,
    /// Write this process's id to FILE (for a monitor's pid_file).
    #[arg(long, value_name = "FILE")]
    pub(super) pid_file: Option<PathBuf>,
    /// Delay before each token POST /api/v1/llm/chat streams (default 20ms).
    #[arg(long, value_name = "DURATION")]
    pub(super) llm_delay: Option<String>,
}

#[derive(Args)]
pub(super) struct DemoArgs {
    /// Write the summary as JSON.
    #[arg(long, value_name = "FILE")]
    pub(super) summary_export: Option<PathBuf>,
    /// Where to write the HTML report.
    #[arg(long, value_name = "FILE", default_value = "volley-report.html")]
    pub(super) report: PathBuf,
    #[arg(short, long)]
    pub(super) quiet: bool,
    /// Stream time series while the demo runs, as `volley run --out` does
    /// (e.g. influxdb=http://127.0.0.1:8086/volley).
    #[arg(long = "out", value_name = "KIND=TARGET")]
    pub(super) out: Vec<String>,
}

pub(super) fn cmd_serve(a: ServeArgs) -> Result<u8, Failure> {
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
    let llm_delay = a
        .llm_delay
        .as_deref()
        .map(volley_protocols::duration::parse_duration)
        .transpose()
        .map_err(|e| usage(anyhow!("--llm-delay: {e}")))?;
    if let Some(p) = &a.pid_file {
        write_file(
            "pid file",
            p,
            format!("{}\n", std::process::id()).as_bytes(),
        )
        .map_err(runtime)?;
    }
    // Every client connection is a file descriptor.
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!("cannot raise the open-file limit: {e}");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.threads.unwrap_or_else(default_workers))
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
            llm_delay,
        };
        let server = serve::Server::start(a.addr, opts)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} (choose another --addr; port 0 picks a free one)",
                    a.addr
                )
            })
            .map_err(runtime)?;
        println!("volley serve: listening on {}", server.base_url());
        println!(
            "  API: {0}/api/v1/health  chat: {1}  stats: {0}/__volley/stats",
            server.base_url(),
            server.ws_url()
        );
        println!(
            "  flows: {0}/api/v1/session/login, /api/v1/redirect/N, /api/v1/limited, /api/v1/upload  LLM (SSE): POST {0}/api/v1/llm/chat",
            server.base_url()
        );
        let mode = match (&a.webhook_secret, a.webhook_insecure) {
            (_, true) => "accepts everything (--webhook-insecure)",
            (Some(_), _) => "verifies signatures",
            (None, _) => "needs --webhook-secret",
        };
        println!(
            "  webhooks: {}/webhooks/{{stripe,github,standard,shopify,slack}} ({mode})",
            server.base_url(),
        );
        if let (Some(why), false) = (
            server.state.webhooks.standard_unusable(),
            a.webhook_insecure,
        ) {
            println!("  /webhooks/standard answers 500: {why}");
        }
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

pub(super) const DEMO_PLAN: &str = include_str!("../../fixtures/plans/demo.toml");

pub(super) const DEMO_USERS: &str = include_str!("../../fixtures/data/users.csv");

pub(super) fn cmd_demo(a: DemoArgs) -> Result<u8, Failure> {
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
        workers: default_workers(),
        seed: random_seed(),
        ..run::Settings::new(a.quiet)
    };
    let artifacts = ArtifactArgs {
        summary_export: a.summary_export,
        report: Some(a.report.clone()),
        out: a.out,
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
    if code.is_ok() && Dest::of(&a.report) != Dest::Stdout {
        let shown = std::fs::canonicalize(&a.report).unwrap_or(a.report.clone());
        println!("\nreport: {}", shown.display());
    }
    if let Some(dir) = _tmp {
        let _ = std::fs::remove_dir_all(dir);
    }
    code
}
