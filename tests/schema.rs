//! Editor help: `volley schema` is the committed docs/plan.schema.json,
//! every fixture plan points at it and validates against it, and it refuses
//! what the loader refuses (an unknown key, a wrong type);
//! `volley completions bash` loads in bash.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn schema() -> serde_json::Value {
    let out = volley().arg("schema").output_within(60);
    assert_eq!(code(&out), 0, "{}", text(&out));
    serde_json::from_slice(&out.stdout).expect("volley schema prints JSON")
}

fn validator() -> jsonschema::Validator {
    jsonschema::draft202012::new(&schema()).expect("the schema is a valid JSON Schema")
}

/// A TOML plan as the JSON a schema validator reads.
fn as_json(path: &Path, text: &str) -> serde_json::Value {
    let v: toml::Value = toml::from_str(text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::to_value(v).unwrap()
}

fn plans() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("fixtures/plans"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    assert!(v.len() >= 10, "fixture plans: {v:?}");
    v
}

/// Every message of the validator about `doc`, one per line.
fn errors(v: &jsonschema::Validator, doc: &serde_json::Value) -> String {
    v.iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_committed_schema_is_what_volley_schema_prints() {
    let out = volley().arg("schema").output_within(60);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let committed = std::fs::read_to_string(root().join("docs/plan.schema.json"))
        .expect("docs/plan.schema.json is committed");
    assert!(
        committed == String::from_utf8_lossy(&out.stdout),
        "docs/plan.schema.json is stale: run `cargo run -- schema > docs/plan.schema.json`"
    );
}

#[test]
fn every_fixture_plan_names_the_schema_and_validates_against_it() {
    let v = validator();
    for p in plans() {
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(
            text.lines().next(),
            Some("#:schema ../../docs/plan.schema.json"),
            "{}: the first line names the schema for TOML editors",
            p.display()
        );
        let doc = as_json(&p, &text);
        let errs = errors(&v, &doc);
        assert!(errs.is_empty(), "{}:\n{errs}", p.display());
    }
}

#[test]
fn the_schema_refuses_unknown_keys_and_wrong_types() {
    let v = validator();
    let base = r#"
[defaults]
base_url = "http://127.0.0.1:1"

[scenarios.api]
driver = "http"
executor = "constant-vus"
vus = 2
duration = "1s"

[[scenarios.api.requests]]
url = "/api/v1/health"
"#;
    let ok = as_json(Path::new("base"), base);
    assert_eq!(errors(&v, &ok), "");
    for (what, plan) in [
        ("a misspelt scenario key", base.replace("vus = 2", "vu = 2")),
        ("a misspelt request key", base.replace("url = ", "ulr = ")),
        (
            "an unknown section",
            format!("{base}\n[threshold]\nchecks = [\"rate==1\"]\n"),
        ),
        ("a number as text", base.replace("vus = 2", "vus = \"two\"")),
        ("a negative VU count", base.replace("vus = 2", "vus = -2")),
        (
            "an unknown executor",
            base.replace("constant-vus", "constant-users"),
        ),
        (
            "a key of another driver",
            base.replace("vus = 2", "vus = 2\nroom_size = 4"),
        ),
        (
            "a wrong http_version",
            base.replace("base_url", "http_version = \"3\"\nbase_url"),
        ),
    ] {
        let doc = as_json(Path::new(what), &plan);
        assert!(!v.is_valid(&doc), "the schema accepts {what}:\n{plan}");
        // The loader refuses it too (exit 2), so the schema is no stricter
        // than volley.
        let d = Dir::new();
        let file = d.write("plan.toml", &plan);
        let out = volley().arg("validate").arg(&file).output_within(60);
        assert_eq!(code(&out), 2, "volley accepts {what}: {}", text(&out));
    }
    // `${VAR}` stands for a number where one is expected.
    let env = as_json(
        Path::new("env"),
        &base.replace("vus = 2", "vus = \"${VUS:-2}\""),
    );
    assert_eq!(errors(&v, &env), "");
}

#[test]
fn the_schema_names_every_section_and_scenario_key_the_loader_reads() {
    let s = schema();
    for key in volley_config::plan::TOP_KEYS {
        assert!(
            s["properties"][key]["description"].is_string(),
            "section [{key}] is not in the schema (with a description)"
        );
    }
    let scenario = &s["properties"]["scenarios"]["additionalProperties"];
    for key in volley_config::executor::COMMON_KEYS {
        assert!(
            scenario["properties"][key]["description"].is_string(),
            "scenario key {key} is not in the schema (with a description)"
        );
    }
}

#[test]
fn bash_completions_parse_and_load() {
    let out = volley().args(["completions", "bash"]).output_within(60);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let d = Dir::new();
    let script = d.write("volley.bash", &String::from_utf8_lossy(&out.stdout));
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output_within(60);
    assert!(syntax.status.success(), "bash -n: {}", text(&syntax));
    let loaded = Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p volley", script.display()))
        .output_within(60);
    assert!(loaded.status.success(), "{}", text(&loaded));
    assert!(
        String::from_utf8_lossy(&loaded.stdout).contains("volley"),
        "{}",
        text(&loaded)
    );
    for shell in ["zsh", "fish"] {
        let out = volley().args(["completions", shell]).output_within(60);
        assert_eq!(code(&out), 0, "{}", text(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains("schema"));
    }
}
