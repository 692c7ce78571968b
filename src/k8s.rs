//! `volley k8s render`: the Kubernetes objects of a distributed run of one
//! plan in N parts — results volume, plan ConfigMap, metrics Service, the
//! Indexed Job of runner pods and the merge Job — from the templates in
//! `deploy/k8s/templates/` (compiled in, so the binary renders anywhere).
//!
//! Templates are YAML with `{{ key }}` placeholders. Values are quoted here
//! for where they go (JSON strings are valid YAML scalars); names are checked
//! to be DNS labels so they are safe in shell lines too. A placeholder alone
//! on its line takes a block of lines (indented like it); an empty block
//! removes the line and the key above it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use volley_config::plan::Plan;
use volley_protocols::template::{TemplateEnv, TemplateError};

/// The templates, in the order the objects are applied.
pub const TEMPLATES: &[(&str, &str)] = &[
    ("pvc.yaml", include_str!("../deploy/k8s/templates/pvc.yaml")),
    (
        "configmap.yaml",
        include_str!("../deploy/k8s/templates/configmap.yaml"),
    ),
    (
        "service.yaml",
        include_str!("../deploy/k8s/templates/service.yaml"),
    ),
    (
        "job-parts.yaml",
        include_str!("../deploy/k8s/templates/job-parts.yaml"),
    ),
    (
        "job-merge.yaml",
        include_str!("../deploy/k8s/templates/job-merge.yaml"),
    ),
];

/// What a ConfigMap may hold, with room for the object around the data.
const CONFIGMAP_LIMIT: usize = 1_000_000;

pub struct RenderOptions {
    pub parts: u64,
    pub start_at: SystemTime,
    pub image: String,
    pub namespace: Option<String>,
    /// Prefix of every object's name (a DNS label).
    pub name: String,
    /// Environment of the runner pods (`-e KEY=VALUE`).
    pub env: Vec<(String, String)>,
    /// A Secret whose keys become environment variables of the runner pods.
    pub secret: Option<String>,
    /// Use this existing claim instead of rendering one.
    pub pvc: Option<String>,
    pub storage_class: Option<String>,
    pub storage: String,
    pub cpu: String,
    pub memory: String,
    /// `influxdb=URL` / `prometheus-rw=URL` outputs of every runner pod.
    pub push: Vec<String>,
}

/// Why the objects of a run cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum K8sError {
    #[error(
        "{what} {name:?} is not a Kubernetes name: lowercase letters, digits and '-', at most {max} characters, starting and ending with a letter or digit"
    )]
    Name {
        what: &'static str,
        name: String,
        max: usize,
    },
    #[error("{}: {e}", file.display())]
    Plan { file: PathBuf, e: toml::de::Error },
    #[error(
        "data.{name}: file {rel:?} is set from a variable; in the cluster the plan's files sit beside it under /plan, so give a path relative to the plan"
    )]
    DataVariable { name: String, rel: String },
    #[error(
        "data.{name}: file {rel:?} is outside the plan's folder; in the cluster the plan's files sit beside it under /plan: move the file next to the plan (or below it) and give a relative path"
    )]
    DataOutside { name: String, rel: String },
    #[error("data.{name}: cannot find {rel}")]
    DataMissing { name: String, rel: String },
    #[error("--parts must be at least 1")]
    NoParts,
    #[error("-e {0}=...: not an environment variable name")]
    EnvName(String),
    #[error("cannot read {} for the ConfigMap (text files only): {e}", path.display())]
    Read { path: PathBuf, e: std::io::Error },
    #[error(
        "the plan and its data files hold {0} bytes, more than a ConfigMap takes (1 MiB): put large CSV files in the image or on a volume"
    )]
    TooLarge(usize),
    #[error(
        "--push {0:?}: give influxdb=URL or prometheus-rw=URL (the pods already serve --out prometheus=0.0.0.0:9464)"
    )]
    PushKind(String),
    #[error(
        "--push {spec:?}: {opt} names a file on this machine, which the pods do not have; use a CA the image trusts, or insecure"
    )]
    PushCa { spec: String, opt: String },
    #[error(
        "--push {spec:?}: the pods tag their series instance=part-K themselves; leave out {opt}"
    )]
    PushTag { spec: String, opt: String },
    #[error("--push: {0}")]
    Push(volley_runtime::output::OutputError),
    #[error(
        "--push: the password in {0:?} would be written into the Job in plain text; write ${{NAME}} in its place (e.g. https://volley:${{INFLUX_PASSWORD}}@influx:8086/volley) and put NAME in the Secret named by --secret: the pod's shell fills it in"
    )]
    PushPassword(String),
    /// A compiled-in template is broken.
    #[error("{file}: {line:?}: {e}")]
    Template {
        file: &'static str,
        line: String,
        e: TemplateError,
    },
}

/// One rendered object: its file name and YAML text.
pub struct Object {
    pub file: String,
    pub yaml: String,
}

/// A DNS-1123 label: what Kubernetes accepts as a name.
pub fn check_name(what: &'static str, s: &str, max: usize) -> Result<(), K8sError> {
    let ok = !s.is_empty()
        && s.len() <= max
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(K8sError::Name {
            what,
            name: s.into(),
            max,
        })
    }
}

/// `volley-<plan file stem>`, made a valid name.
pub fn default_name(plan_file: &Path) -> String {
    let stem = plan_file
        .file_stem()
        .map(|s| s.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let mut out = String::from("volley-");
    for c in stem.chars() {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if !(c == '-' && out.ends_with('-')) {
            out.push(c);
        }
    }
    let mut out: String = out.chars().take(40).collect();
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// A YAML block scalar (`|`) when the text allows one, else a JSON string.
/// Either way the value parses back byte for byte.
fn yaml_text(text: &str, indent: usize) -> String {
    let printable = text
        .chars()
        .all(|c| c == '\n' || c == '\t' || !(c.is_control() || c == '\u{feff}'));
    let first = text.lines().find(|l| !l.trim().is_empty());
    let leading_space = first.is_some_and(|l| l.starts_with([' ', '\t']));
    if !printable || leading_space || text.trim().is_empty() {
        return serde_json::to_string(text).expect("a string serializes");
    }
    let chomp = if text.ends_with("\n\n") {
        "+"
    } else if text.ends_with('\n') {
        ""
    } else {
        "-"
    };
    let pad = " ".repeat(indent);
    let mut out = format!("|{chomp}");
    let body = text.strip_suffix('\n').unwrap_or(text);
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            out.push_str(&pad);
            out.push_str(line);
        }
    }
    out
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// ConfigMap key for a data file: `[-._a-zA-Z0-9]`, unique.
fn key_for(rel: &str, taken: &[String]) -> String {
    let base: String = rel
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let base = format!("data-{}", base.trim_matches(['-', '.']));
    let mut key = base.clone();
    let mut n = 2;
    while taken.contains(&key) {
        key = format!("{base}-{n}");
        n += 1;
    }
    key
}

/// The plan's `[data.*] file` paths as written, with the local file each reads.
fn data_files(plan: &Plan) -> Result<Vec<(String, PathBuf)>, K8sError> {
    let doc: toml::Table = plan.source.parse().map_err(|e| K8sError::Plan {
        file: plan.file.clone(),
        e,
    })?;
    let base = plan.file.parent().unwrap_or(Path::new(""));
    let mut out = Vec::new();
    let Some(data) = doc.get("data").and_then(|d| d.as_table()) else {
        return Ok(out);
    };
    for (name, spec) in data {
        let Some(rel) = spec.get("file").and_then(|f| f.as_str()) else {
            continue;
        };
        if rel.contains("${") {
            return Err(K8sError::DataVariable {
                name: name.clone(),
                rel: rel.into(),
            });
        }
        let p = Path::new(rel);
        if p.is_absolute()
            || p.components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(K8sError::DataOutside {
                name: name.clone(),
                rel: rel.into(),
            });
        }
        let local = [base.join(p), p.to_path_buf()]
            .into_iter()
            .find(|p| p.exists())
            .ok_or_else(|| K8sError::DataMissing {
                name: name.clone(),
                rel: rel.into(),
            })?;
        out.push((rel.trim_start_matches("./").to_string(), local));
    }
    Ok(out)
}

/// The pods' `--out` arguments for `--push`: each output gets the tag
/// `instance=part-K` (K the pod's completion index, as in its part file), so
/// pods never write the same series: InfluxDB would keep one pod's point
/// per second and Prometheus refuse the others' samples.
fn push_args(specs: &[String]) -> Result<String, K8sError> {
    let mut out = String::new();
    for spec in specs {
        let kind = spec.split_once('=').map_or("", |(k, _)| k);
        if kind != "influxdb" && kind != "prometheus-rw" {
            return Err(K8sError::PushKind(spec.clone()));
        }
        for opt in spec.split(',').skip(1) {
            if opt.starts_with("ca=") {
                return Err(K8sError::PushCa {
                    spec: spec.clone(),
                    opt: opt.into(),
                });
            }
            if opt.starts_with("tag=instance:") {
                return Err(K8sError::PushTag {
                    spec: spec.clone(),
                    opt: opt.into(),
                });
            }
        }
        let tagged = format!("{spec},tag=instance:part-0");
        volley_runtime::output::OutputSpec::parse(&tagged).map_err(K8sError::Push)?;
        if let Some(password) = url_password(spec)
            && !is_reference(&password)
        {
            return Err(K8sError::PushPassword(spec.replace(&password, "***")));
        }
        // Double-quoted for the pod's shell: ${NAME} (from --secret) and the
        // index are expanded by it, nothing else.
        out.push_str(&format!(
            " --out \"{},tag=instance:part-$JOB_COMPLETION_INDEX\"",
            shell_quote_keeping_refs(spec)
        ));
    }
    Ok(out)
}

/// The password of the URL in a push spec (`KIND=URL,options`), as written.
fn url_password(spec: &str) -> Option<String> {
    let url = spec.split_once('=')?.1.split(',').next()?;
    let authority = url.split_once("://")?.1.split('/').next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    Some(userinfo.split_once(':')?.1.to_string()).filter(|p| !p.is_empty())
}

/// `${NAME}`, one reference and nothing else.
fn is_reference(text: &str) -> bool {
    text.strip_prefix("${")
        .and_then(|r| r.strip_suffix('}'))
        .is_some_and(is_env_name)
}

fn is_env_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `text` for a double-quoted shell word: `${NAME}` stays a reference the
/// shell expands; every other `$`, `` ` ``, `"` and `\` is literal.
fn shell_quote_keeping_refs(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("${")
            && let Some(end) = after.find('}')
            && is_env_name(&after[..end])
        {
            out.push_str(&rest[..end + 3]);
            rest = &after[end + 1..];
            continue;
        }
        if matches!(c, '$' | '`' | '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// Render every object for `plan` (loaded and checked by the caller).
pub fn render(plan: &Plan, o: &RenderOptions, now: SystemTime) -> Result<Vec<Object>, K8sError> {
    check_name("--name", &o.name, 40)?;
    if let Some(ns) = &o.namespace {
        check_name("--namespace", ns, 63)?;
    }
    if let Some(pvc) = &o.pvc {
        check_name("--pvc", pvc, 63)?;
    }
    if let Some(secret) = &o.secret {
        check_name("--secret", secret, 253)?;
    }
    if o.parts == 0 {
        return Err(K8sError::NoParts);
    }
    for (k, _) in &o.env {
        let ok = !k.is_empty()
            && !k.starts_with(|c: char| c.is_ascii_digit())
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
        if !ok {
            return Err(K8sError::EnvName(k.clone()));
        }
    }
    let push = push_args(&o.push)?;
    let start = unix(o.start_at);
    let wait = o.start_at.duration_since(now).unwrap_or(Duration::ZERO);
    // Longest a part may take: its wait, the plan with graceful stops, slack.
    let run_s = plan.max_duration().as_secs() + 1;
    let parts_deadline = wait.as_secs() + run_s + 600;
    let merge_wait_until = start + run_s + 300;
    let merge_deadline = wait.as_secs() + run_s + 900;
    let start_text = humantime::format_rfc3339_seconds(o.start_at).to_string();
    let run_id: String = start_text
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_lowercase();
    let run = format!("{}/{run_id}", o.name);
    let pvc = o
        .pvc
        .clone()
        .unwrap_or_else(|| format!("{}-results", o.name));

    // The plan and its data files.
    let mut files: Vec<(String, String, String)> =
        vec![("plan.toml".into(), "plan.toml".into(), plan.source.clone())];
    for (rel, local) in data_files(plan)? {
        let text = std::fs::read_to_string(&local).map_err(|e| K8sError::Read {
            path: local.clone(),
            e,
        })?;
        let taken: Vec<String> = files.iter().map(|f| f.0.clone()).collect();
        if files.iter().any(|f| f.1 == rel) {
            continue;
        }
        files.push((key_for(&rel, &taken), rel, text));
    }
    let size: usize = files.iter().map(|f| f.2.len()).sum();
    if size > CONFIGMAP_LIMIT {
        return Err(K8sError::TooLarge(size));
    }
    let files_block: Vec<String> = files
        .iter()
        .map(|(key, _, text)| format!("{key}: {}", yaml_text(text, 2)))
        .collect();
    let items_block: Vec<String> = files
        .iter()
        .map(|(key, rel, _)| format!("- key: {key}\n  path: {}", quote(rel)))
        .collect();
    let env_block: Vec<String> = o
        .env
        .iter()
        .map(|(k, v)| format!("- name: {k}\n  value: {}", quote(v)))
        .collect();
    let env_from: Vec<String> = o
        .secret
        .iter()
        .map(|s| format!("- secretRef:\n    name: {s}"))
        .collect();

    let mut scalars: HashMap<&str, Option<String>> = HashMap::new();
    scalars.insert("name", Some(o.name.clone()));
    scalars.insert("namespace", o.namespace.clone());
    scalars.insert("pvc", Some(pvc));
    scalars.insert("storage_class", o.storage_class.as_deref().map(quote));
    scalars.insert("storage", Some(quote(&o.storage)));
    scalars.insert("image", Some(quote(&o.image)));
    scalars.insert("cpu", Some(quote(&o.cpu)));
    scalars.insert("memory", Some(quote(&o.memory)));
    scalars.insert("parts", Some(o.parts.to_string()));
    scalars.insert("start_at", Some(start_text));
    scalars.insert("run", Some(run));
    scalars.insert("push", Some(push));
    scalars.insert("parts_deadline_s", Some(parts_deadline.to_string()));
    scalars.insert("merge_deadline_s", Some(merge_deadline.to_string()));
    scalars.insert("merge_wait_until_unix", Some(merge_wait_until.to_string()));
    let mut blocks: HashMap<&str, Vec<String>> = HashMap::new();
    blocks.insert("files", files_block);
    blocks.insert("items", items_block);
    blocks.insert("env", env_block);
    blocks.insert("env_from", env_from);

    let mut out = Vec::new();
    for (file, template) in TEMPLATES {
        if *file == "pvc.yaml" && o.pvc.is_some() {
            continue;
        }
        out.push(Object {
            file: file.to_string(),
            yaml: fill(template, &scalars, &blocks).map_err(|e| K8sError::Template {
                file,
                line: e.0,
                e: e.1,
            })?,
        });
    }
    Ok(out)
}

/// Fill `template`: a placeholder alone on its line takes a block (see the
/// module's comment); the others are locals of volley's template engine
/// (`volley_protocols::template`), and a line whose placeholder has no
/// value (an option not given) is left out.
fn fill(
    template: &str,
    scalars: &HashMap<&str, Option<String>>,
    blocks: &HashMap<&str, Vec<String>>,
) -> Result<String, (String, TemplateError)> {
    let given: Vec<(&str, &str)> = scalars
        .iter()
        .filter_map(|(k, v)| Some((*k, v.as_deref()?)))
        .collect();
    let names: Vec<&str> = given.iter().map(|(k, _)| *k).collect();
    let values: Vec<&str> = given.iter().map(|(_, v)| *v).collect();
    let every: Vec<&str> = scalars.keys().copied().collect();
    let no_env = HashMap::new();
    let mut filled = TemplateEnv::new(&no_env, &[], "k8s");
    filled.locals = &names;
    let mut known = TemplateEnv::new(&no_env, &[], "k8s");
    known.locals = &every;
    // Nothing random is rendered: the engine's scope wants a generator.
    let mut rng = fastrand::Rng::with_seed(0);
    let mut lines: Vec<String> = Vec::new();
    for line in template.lines() {
        let trimmed = line.trim();
        if let Some(key) = trimmed
            .strip_prefix("{{")
            .and_then(|r| r.strip_suffix("}}"))
            .map(str::trim)
            && let Some(block) = blocks.get(key)
        {
            if block.is_empty() {
                if lines.last().is_some_and(|l| l.trim_end().ends_with(':')) {
                    lines.pop();
                }
                continue;
            }
            let pad = &line[..line.len() - line.trim_start().len()];
            for item in block {
                for l in item.split('\n') {
                    lines.push(if l.is_empty() {
                        String::new()
                    } else {
                        format!("{pad}{l}")
                    });
                }
            }
            continue;
        }
        let t = match filled.compile(line) {
            Ok(t) => t,
            // Its placeholder is known but has no value: no line.
            Err(_) if known.compile(line).is_ok() => continue,
            Err(e) => return Err((line.to_string(), e)),
        };
        lines.push(t.render_locals(&values, &mut rng));
    }
    let mut text = lines.join("\n");
    text.push('\n');
    Ok(text)
}

/// All objects as one YAML stream (for `kubectl apply -f -`).
pub fn stream(objects: &[Object]) -> String {
    objects
        .iter()
        .map(|o| o.yaml.as_str())
        .collect::<Vec<_>>()
        .join("---\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_through_yaml() {
        for text in [
            "a = 1\n",
            "a = 1",
            "a = 1\n\n\n",
            "# plan\n\n[x]\n  indented = \"{{ vu.id }}\"\n\ttab = '${A}'\n",
            "  leading space\nnext\n",
            "\r\nwindows\r\n",
            "",
            "key: value # not yaml\n- list\n",
        ] {
            let doc = format!("data:\n  plan.toml: {}\n", yaml_text(text, 4));
            let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&doc).expect(&doc);
            assert_eq!(v["data"]["plan.toml"].as_str(), Some(text), "{doc}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(
            default_name(Path::new("plans/Load Test.toml")),
            "volley-load-test"
        );
        assert_eq!(default_name(Path::new("x/__.toml")), "volley");
        assert!(check_name("--name", "volley-api", 40).is_ok());
        assert!(check_name("--name", "Volley", 40).is_err());
        assert!(check_name("--name", "a-", 40).is_err());
        assert_eq!(key_for("data/users.csv", &[]), "data-data-users.csv");
        assert_eq!(
            key_for("data/users.csv", &["data-data-users.csv".into()]),
            "data-data-users.csv-2"
        );
    }
}
