//! `volley k8s render`: manifests for a distributed run.

use super::*;

#[derive(Subcommand)]
pub(super) enum K8sCmd {
    /// Print the manifests of a run in N parts: results volume, plan ConfigMap,
    /// metrics Service, an Indexed Job of N runner pods, a merge Job.
    Render(K8sRenderArgs),
}

#[derive(Args)]
pub(super) struct K8sRenderArgs {
    /// The plan file (TOML); it is checked, and its [data.*] files go along.
    pub(super) plan: PathBuf,
    /// How many runner pods: the plan is split in this many segments.
    #[arg(long, short = 'n')]
    pub(super) parts: u64,
    /// When the load starts, from now (pods scheduled earlier wait for it).
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub(super) start_in: String,
    /// When the load starts, as an RFC 3339 time (instead of --start-in).
    #[arg(long, value_name = "TIME", conflicts_with = "start_in")]
    pub(super) start_at: Option<String>,
    /// The image with volley in it (see deploy/k8s/Containerfile).
    #[arg(long, default_value = concat!("volley:", env!("CARGO_PKG_VERSION")))]
    pub(super) image: String,
    /// Namespace of every object (default: kubectl's current one).
    #[arg(long)]
    pub(super) namespace: Option<String>,
    /// Prefix of the objects' names (default: volley-<plan name>).
    #[arg(long)]
    pub(super) name: Option<String>,
    /// Environment of the runner pods, for ${NAME} in the plan (repeatable).
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub(super) env: Vec<String>,
    /// A Secret whose keys become the runner pods' environment (passwords, URLs).
    #[arg(long)]
    pub(super) secret: Option<String>,
    /// An existing ReadWriteMany claim for the results (default: render one).
    #[arg(long)]
    pub(super) pvc: Option<String>,
    /// Storage class of the rendered claim (it must offer ReadWriteMany).
    #[arg(long)]
    pub(super) storage_class: Option<String>,
    /// Size of the rendered claim.
    #[arg(long, default_value = "1Gi")]
    pub(super) storage: String,
    /// CPU requested by each runner pod.
    #[arg(long, default_value = "1")]
    pub(super) cpu: String,
    /// Memory requested (and limit) of each runner pod.
    #[arg(long, default_value = "1Gi")]
    pub(super) memory: String,
    /// Also push each pod's series to InfluxDB or Prometheus remote write
    /// (influxdb=URL or prometheus-rw=URL, options as for --out); every pod
    /// tags its own with instance=part-K (repeatable).
    #[arg(long, value_name = "OUTPUT")]
    pub(super) push: Vec<String>,
    /// Write one file per object into this folder instead of one stream to stdout.
    #[arg(long, value_name = "DIR")]
    pub(super) out_dir: Option<PathBuf>,
}

pub(super) fn cmd_k8s_render(a: K8sRenderArgs) -> Result<u8, Failure> {
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
        pod_env.push(env_pair(p)?);
    }
    // Checked here, with the pods' variables over this shell's, so a bad
    // plan fails now and not in N pods.
    let plan_args = PlanArgs {
        plan: a.plan.clone(),
        env: a.env.clone(),
        segment: Some(format!("1/{}", a.parts)),
    };
    let plan = load_plan(&plan_args, &[]).map_err(|Failure(code, e)| {
        let unset = e
            .downcast_ref::<plan::PlanError>()
            .is_some_and(|p| p.kind == volley_protocols::ConfigErrorKind::UnsetVariable);
        if unset {
            Failure(
                code,
                e.context("the plan is checked before it is rendered: give its variables with -e KEY=VALUE (they go to the pods too), or export them in this shell for the check only and give the pods a --secret"),
            )
        } else {
            Failure(code, e)
        }
    })?;
    let opts = k8s::RenderOptions {
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
        push: a.push,
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
                )
                .map_err(runtime)?;
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
