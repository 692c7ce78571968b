//! Working with saved summaries: `volley report`, `compare`, `merge`.

use super::*;

#[derive(Args)]
pub(super) struct ReportArgs {
    /// A summary written by `volley run --summary-export` (or merge).
    pub(super) summary: PathBuf,
    /// Where to write the HTML report (`-`: stdout).
    #[arg(long, value_name = "FILE", default_value = "report.html")]
    pub(super) out: PathBuf,
    /// Also write the thresholds as JUnit XML.
    #[arg(long, value_name = "FILE")]
    pub(super) junit: Option<PathBuf>,
}

#[derive(Args)]
pub(super) struct CompareArgs {
    /// The reference summary export.
    pub(super) baseline: PathBuf,
    /// The summary export to judge.
    pub(super) current: PathBuf,
    /// Largest change for the worse allowed: latency or error rates up, throughput down.
    #[arg(long, value_name = "PERCENT", default_value = "10%")]
    pub(super) max_regression: String,
    /// Compare only these (repeatable): NAME, NAME:STAT, NAME{tag:value}:STAT,
    /// e.g. 'http_req_duration{scenario:api}:p(99)'. Default: headline latencies
    /// (p95), error rates and counts, throughput.
    #[arg(long, value_name = "SPEC")]
    pub(super) metric: Vec<String>,
    /// Also compare per value of this tag within each scenario (e.g. name).
    #[arg(long, value_name = "TAG")]
    pub(super) by: Vec<String>,
}

#[derive(Args)]
pub(super) struct MergeArgs {
    /// The parts' summary exports (volley run --segment I/N --summary-export FILE).
    #[arg(required = true, value_name = "PART")]
    pub(super) parts: Vec<PathBuf>,
    /// Write the merged summary as JSON (it can be merged, compared and reported on again).
    #[arg(long, value_name = "FILE")]
    pub(super) summary_export: Option<PathBuf>,
    /// Write the HTML report of the merged run.
    #[arg(long, value_name = "FILE")]
    pub(super) report: Option<PathBuf>,
    /// Write the thresholds of the merged run as JUnit XML.
    #[arg(long, value_name = "FILE")]
    pub(super) junit: Option<PathBuf>,
    /// Merge even when segments are missing; the merged summary lists them.
    #[arg(long)]
    pub(super) allow_partial: bool,
}

pub(super) fn cmd_report(a: ReportArgs) -> Result<u8, Failure> {
    let files = Artifacts {
        summary: None,
        report: Some(("--out", &a.out)),
        junit: a.junit.as_deref(),
    };
    files.check()?;
    let on_stdout = files.on_stdout();
    one_stdout(&on_stdout)?;
    let s = read_summary(&a.summary)?;
    check_histograms(&a.summary, &s)?;
    fail_all(files.write(&s))?;
    let notes = std::iter::once(("report", &a.out)).chain(a.junit.iter().map(|j| ("JUnit XML", j)));
    for (what, path) in notes.filter(|(_, p)| Dest::of(p) != Dest::Stdout) {
        println!("{what} written to {}", path.display());
    }
    Ok(EXIT_OK)
}

/// Refuse a summary whose histograms do not decode (bad input, exit 2),
/// naming the file and the series, before anything is written.
fn check_histograms(path: &Path, s: &Summary) -> Result<(), Failure> {
    for r in &s.series {
        r.to_slot().map_err(|e| {
            usage(anyhow!(
                "{}: series {}{}: {e}; the file is damaged, write it again with volley run --summary-export",
                path.display(),
                r.metric,
                r.tags
            ))
        })?;
    }
    Ok(())
}

pub(super) fn cmd_compare(a: CompareArgs) -> Result<u8, Failure> {
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

pub(super) fn cmd_merge(a: MergeArgs) -> Result<u8, Failure> {
    let files = Artifacts {
        summary: a.summary_export.as_deref(),
        report: a.report.as_deref().map(|p| ("--report", p)),
        junit: a.junit.as_deref(),
    };
    files.check()?;
    let on_stdout = files.on_stdout();
    one_stdout(&on_stdout)?;
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
    print_summary(
        &summary::render_text(&m.summary, &m.series),
        !on_stdout.is_empty(),
    );
    fail_all(files.write(&m.summary))?;
    Ok(if m.thresholds_ok {
        EXIT_OK
    } else {
        eprintln!("\nthresholds failed on the merged run: exit {EXIT_THRESHOLDS}");
        EXIT_THRESHOLDS
    })
}
