//! `volley run` without a plan (`volley run URL -c 50 -z 30s`, as oha, hey
//! and k6 users type it) and k6's overrides of any plan's schedule
//! (`--vus`, `--duration`, `--iterations`, `--stage`, `--rate`). A quick
//! run is a one-request plan built in memory: the same loader, run path,
//! summary, report and thresholds as a plan file.

use super::*;
use volley_model::schedule::{Executor, MAX_RATE_PER_CORE, Stage};
use volley_protocols::duration::{Dur, parse_duration};

/// The schedule flags, k6's meaning: they replace every scenario's own.
#[derive(Args, Default)]
pub(super) struct ShapeArgs {
    /// VUs: with --duration, constant VUs; with --iterations, the VUs that
    /// share them; with --stage, the VUs to start from; with --rate, the VUs
    /// allocated before the run.
    #[arg(short = 'c', long, value_name = "N", value_parser = parse_count("--vus"))]
    pub(super) vus: Option<u64>,
    /// How long to run (e.g. 30s, 5m): constant VUs, or the open model with --rate.
    #[arg(short = 'z', long, value_name = "DURATION", value_parser = parse_length("--duration"))]
    pub(super) duration: Option<Duration>,
    /// Iterations shared by the VUs (with --duration: the most it may take).
    #[arg(short = 'n', long, value_name = "N", value_parser = parse_count("--iterations"))]
    pub(super) iterations: Option<u64>,
    /// Open model: iterations started per second, whatever the latency
    /// (constant-arrival-rate). Needs --duration.
    #[arg(long, value_name = "PER_SECOND", value_parser = parse_rate)]
    pub(super) rate: Option<f64>,
    /// Ramping VUs: DURATION:TARGET, repeatable (e.g. --stage 30s:50 --stage 1m:50 --stage 30s:0).
    #[arg(long = "stage", value_name = "DURATION:TARGET", value_parser = parse_stage)]
    pub(super) stages: Vec<Stage>,
}

/// What a quick run sends.
#[derive(Args, Default)]
pub(super) struct QuickArgs {
    /// Run without a plan: one request to this URL, again and again.
    #[arg(long, value_name = "URL")]
    pub(super) url: Option<String>,
    /// Method of the quick run's request (default GET, POST with --body).
    #[arg(short = 'm', long, value_name = "METHOD")]
    pub(super) method: Option<String>,
    /// A header of the quick run's request, 'Name: value' (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub(super) headers: Vec<String>,
    /// Body of the quick run's request; @FILE sends a file's bytes.
    #[arg(short = 'd', long = "body", value_name = "BODY")]
    pub(super) body: Option<String>,
}

/// How long a quick run lasts when neither --duration nor --iterations says.
const QUICK_DURATION: Duration = Duration::from_secs(10);
/// Iterations with no --duration may take at most this long (k6's default).
const ITERATIONS_MAX_DURATION: Duration = Duration::from_secs(600);

fn parse_count(flag: &'static str) -> impl Fn(&str) -> Result<u64, String> + Clone {
    move |s| match s.trim().parse::<u64>() {
        Ok(0) => Err(format!("{flag} must be at least 1")),
        Ok(n) => Ok(n),
        Err(_) => Err(format!(
            "{s:?} is not a whole number; give {flag} a count such as 10"
        )),
    }
}

fn parse_length(flag: &'static str) -> impl Fn(&str) -> Result<Duration, String> + Clone {
    move |s| match parse_duration(s) {
        Ok(d) if d.is_zero() => Err(format!("{flag} must be longer than 0s, e.g. 30s")),
        Ok(d) => Ok(d),
        Err(e) => Err(format!("{e}; give {flag} a duration such as 30s or 5m")),
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let limit = MAX_RATE_PER_CORE * default_workers() as f64;
    match s.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 && r <= limit => Ok(r),
        Ok(r) if r.is_finite() && r > limit => Err(format!(
            "{r} iterations/s is beyond what this machine can start ({limit:e}/s); give a lower --rate"
        )),
        _ => Err(format!(
            "{s:?} is not a rate; give --rate the iterations to start per second, a number above 0 such as 100"
        )),
    }
}

fn parse_stage(s: &str) -> Result<Stage, String> {
    let fix = "write DURATION:TARGET, e.g. --stage 30s:50 (ramp to 50 VUs over 30 s)";
    let (d, t) = s.rsplit_once(':').ok_or_else(|| format!("{s:?}: {fix}"))?;
    let duration = parse_duration(d).map_err(|e| format!("{s:?}: {e}; {fix}"))?;
    let target = t
        .trim()
        .parse::<u64>()
        .map_err(|_| format!("{s:?}: the target {t:?} is not a whole number of VUs; {fix}"))?;
    Ok(Stage {
        duration: Dur(duration),
        target: target as f64,
        spike: false,
    })
}

impl ShapeArgs {
    /// The schedule these flags ask for; None when they ask for none (a
    /// plan keeps its own). A quick run always has one.
    pub(super) fn executor(&self, quick: bool) -> Result<Option<Executor>, Failure> {
        let bad = |m: &str| Err(usage(anyhow!("{m}")));
        if !self.stages.is_empty() {
            if self.duration.is_some() || self.iterations.is_some() || self.rate.is_some() {
                return bad(
                    "--stage gives the run's length itself: leave out --duration, --iterations and --rate, or the stages",
                );
            }
            if self.stages.iter().all(|s| s.duration.0.is_zero()) {
                return bad(
                    "every --stage lasts 0s: give at least one a duration, e.g. --stage 30s:50",
                );
            }
            return Ok(Some(Executor::RampingVus {
                start_vus: self.vus.unwrap_or(1),
                stages: self.stages.clone(),
                graceful_ramp_down: Duration::from_secs(30),
            }));
        }
        if let Some(rate) = self.rate {
            if self.iterations.is_some() {
                return bad(
                    "--rate starts iterations for a --duration; --iterations counts them: give one of the two",
                );
            }
            let duration = match (self.duration, quick) {
                (Some(d), _) => d,
                (None, true) => QUICK_DURATION,
                (None, false) => {
                    return bad("--rate needs --duration, e.g. --rate 100 --duration 30s");
                }
            };
            // VUs ready for 100 ms of latency at this rate, and room for a
            // full second of it before arrivals are dropped.
            let pre = self
                .vus
                .unwrap_or_else(|| (rate / 10.0).ceil().clamp(1.0, 1000.0) as u64);
            let max = pre.max(rate.ceil().clamp(1.0, 10_000.0) as u64);
            return Ok(Some(Executor::ConstantArrivalRate {
                rate,
                time_unit: Duration::from_secs(1),
                duration,
                pre_allocated_vus: pre,
                max_vus: max,
            }));
        }
        let vus = self.vus.unwrap_or(1);
        if let Some(iterations) = self.iterations {
            if iterations < vus {
                return bad(&format!(
                    "--iterations {iterations} cannot keep --vus {vus} busy: give at least {vus} iterations or fewer VUs"
                ));
            }
            return Ok(Some(Executor::SharedIterations {
                vus,
                iterations,
                max_duration: self.duration.unwrap_or(ITERATIONS_MAX_DURATION),
            }));
        }
        match (self.duration, quick) {
            (Some(duration), _) => Ok(Some(Executor::ConstantVus { vus, duration })),
            (None, true) => Ok(Some(Executor::ConstantVus {
                vus,
                duration: QUICK_DURATION,
            })),
            (None, false) if self.vus.is_some() => bad(
                "--vus needs --duration, --iterations or --stage to say how long, e.g. --vus 10 --duration 30s",
            ),
            (None, false) => Ok(None),
        }
    }
}

/// `volley run URL` and `volley run --url URL`: the URL, when the run has no plan.
pub(super) fn quick_url(target: Option<&str>, q: &QuickArgs) -> Result<Option<String>, Failure> {
    let positional = target.filter(|t| is_url(t));
    let url = match (positional, &q.url) {
        (Some(_), Some(_)) => {
            return Err(usage(anyhow!(
                "two URLs: give the URL once, as --url URL or as the first argument"
            )));
        }
        (Some(u), None) => Some(u.to_string()),
        (None, Some(u)) if target.is_some() => {
            return Err(usage(anyhow!(
                "--url {u} runs without a plan, but a plan ({}) is given too: give one of the two",
                target.unwrap_or_default()
            )));
        }
        (None, u) => u.clone(),
    };
    if url.is_none() && (q.method.is_some() || !q.headers.is_empty() || q.body.is_some()) {
        return Err(usage(anyhow!(
            "-m, -H and -d describe the request of a run without a plan: add --url URL (a plan's requests are in the plan)"
        )));
    }
    if let Some(u) = &url
        && !is_url(u)
    {
        return Err(usage(anyhow!(
            "--url {u:?}: give a full http:// or https:// URL, e.g. --url http://127.0.0.1:8080/api/v1/health"
        )));
    }
    Ok(url)
}

fn is_url(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// The one-request plan a quick run is, as TOML for the plan loader.
pub(super) fn quick_plan(url: &str, q: &QuickArgs) -> Result<String, Failure> {
    use std::fmt::Write as _;
    // A TOML basic string; the shell already expanded variables, so `${`
    // is kept literal. (`{{ }}` stays a template, as in a plan.)
    let s = |v: &str| serde_json::to_string(&v.replace("${", "$${")).unwrap_or_default();
    let method = match (&q.method, &q.body) {
        (Some(m), _) => m.trim().to_ascii_uppercase(),
        (None, Some(_)) => "POST".to_string(),
        (None, None) => "GET".to_string(),
    };
    if method.is_empty() || !method.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(usage(anyhow!(
            "-m {:?} is not an HTTP method; give e.g. -m POST",
            q.method.as_deref().unwrap_or_default()
        )));
    }
    let mut text = String::from(
        "[scenarios.quick]\ndriver = \"http\"\nexecutor = \"constant-vus\"\nduration = \"1s\"\n\n[[scenarios.quick.requests]]\n",
    );
    let _ = writeln!(text, "url = {}\nmethod = {}", s(url), s(&method));
    if !q.headers.is_empty() {
        let mut pairs = Vec::new();
        for h in &q.headers {
            let (k, v) = h
                .split_once(':')
                .filter(|(k, _)| !k.trim().is_empty())
                .ok_or_else(|| {
                    usage(anyhow!(
                        "-H {h:?}: write 'Name: value', e.g. -H 'Authorization: Bearer abc'"
                    ))
                })?;
            pairs.push(format!("{} = {}", s(k.trim()), s(v.trim())));
        }
        let _ = writeln!(text, "headers = {{ {} }}", pairs.join(", "));
    }
    match q.body.as_deref() {
        Some(b) if b.starts_with('@') => {
            let path = &b[1..];
            if !Path::new(path).is_file() {
                return Err(usage(anyhow!(
                    "-d {b}: no file {path:?}; give -d @FILE with a file that exists, or -d 'TEXT' for the body itself"
                )));
            }
            let _ = writeln!(text, "body_file = {}\nbody_file_raw = true", s(path));
        }
        Some(b) => {
            let _ = writeln!(text, "body = {}", s(b));
        }
        None => {}
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_and_counts_name_the_flag_and_the_fix() {
        assert_eq!(parse_stage("30s:50").unwrap().target, 50.0);
        assert!(parse_stage("1m30s:0").is_ok());
        assert!(parse_stage("30s").unwrap_err().contains("DURATION:TARGET"));
        assert!(parse_stage("30s:1.5").unwrap_err().contains("whole number"));
        assert!(parse_count("--vus")("0").unwrap_err().contains("--vus"));
        assert!(
            parse_count("--vus")("18446744073709551616")
                .unwrap_err()
                .contains("--vus")
        );
        for bad in ["NaN", "inf", "-1", "0", "1e300"] {
            assert!(parse_rate(bad).unwrap_err().contains("rate"), "{bad}");
        }
        assert!(
            parse_length("--duration")("0s")
                .unwrap_err()
                .contains("--duration")
        );
    }

    #[test]
    fn the_flags_make_k6s_executors() {
        let shape = |f: fn(&mut ShapeArgs)| {
            let mut a = ShapeArgs::default();
            f(&mut a);
            a.executor(false)
        };
        let e = shape(|a| {
            a.vus = Some(3);
            a.duration = Some(Duration::from_secs(2));
        });
        assert!(matches!(e, Ok(Some(Executor::ConstantVus { vus: 3, .. }))));
        let e = shape(|a| a.iterations = Some(5));
        assert!(matches!(
            e,
            Ok(Some(Executor::SharedIterations {
                vus: 1,
                iterations: 5,
                ..
            }))
        ));
        assert!(shape(|a| a.vus = Some(3)).is_err());
        assert!(matches!(shape(|_| {}), Ok(None)));
        let e = shape(|a| {
            a.rate = Some(200.0);
            a.duration = Some(Duration::from_secs(1));
        });
        assert!(matches!(
            e,
            Ok(Some(Executor::ConstantArrivalRate {
                pre_allocated_vus: 20,
                max_vus: 200,
                ..
            }))
        ));
    }
}
