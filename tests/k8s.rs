//! The Kubernetes manifests of a distributed run: rendered by
//! `scripts/k8s-run.sh` (no cluster), parsed as Kubernetes objects, then the
//! pods' own shell lines run here on loopback, as the kubelet would run them,
//! with the ConfigMap laid out as the kubelet mounts it.

mod common;
#[path = "common/tsdb.rs"]
mod tsdb;

use common::*;
use serde_yaml_ng::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use volley_serve::ServeOptions;

fn yaml_docs(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).expect("each document parses"))
        .collect()
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/k8s-run.sh")
}

fn render(args: &[&str]) -> std::process::Output {
    Command::new("bash")
        .arg(script())
        .args(args)
        .env("VOLLEY", env!("CARGO_BIN_EXE_volley"))
        .output_within(RUN_LIMIT)
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v:?}"))
}

fn kind<'a>(docs: &'a [Value], k: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == k).collect()
}

#[test]
fn rendered_manifests_are_kubernetes_objects_and_their_pods_run() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let users: String = (0..40).map(|i| format!("u{i}@example.test\n")).collect();
    let csv = format!("email\n{users}");
    d.write("plans/data/users.csv", &csv);
    let plan_text = r#"# A plan, as a user writes it.
[defaults]
base_url = "${BASE_URL}"

[data.users]
file = "data/users.csv"
pick = "unique"

[scenarios.api]
driver = "http"
executor = "constant-arrival-rate"
rate = 60
time_unit = "1s"
duration = "2s"
pre_allocated_vus = 12

[[scenarios.api.requests]]
url = "/api/v1/health"
query = { who = "{{ data.users.email }}" }

[thresholds]
http_reqs = ["count>=100"]
"#;
    let plan = d.write("plans/load.toml", plan_text);

    let out = render(&[
        plan.to_str().unwrap(),
        "3",
        "--start-in",
        "4s",
        "-e",
        &format!("BASE_URL={}", t.url()),
        "--namespace",
        "load-tests",
        "--image",
        "registry.example/volley:test",
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let docs = yaml_docs(&String::from_utf8(out.stdout.clone()).unwrap());
    let kinds: Vec<&str> = docs.iter().map(|d| s(&d["kind"])).collect();
    assert_eq!(
        kinds,
        [
            "PersistentVolumeClaim",
            "ConfigMap",
            "Service",
            "Job",
            "Job"
        ]
    );
    for doc in &docs {
        assert_eq!(doc["metadata"]["namespace"], "load-tests");
        assert!(doc["apiVersion"].is_string());
    }
    let pvc = kind(&docs, "PersistentVolumeClaim")[0];
    assert_eq!(pvc["spec"]["accessModes"][0], "ReadWriteMany");
    let cm = kind(&docs, "ConfigMap")[0];
    // The plan byte for byte, so every part has the same digest.
    assert_eq!(s(&cm["data"]["plan.toml"]), plan_text);

    let jobs = kind(&docs, "Job");
    let (parts, merge) = (jobs[0], jobs[1]);
    let spec = &parts["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    assert_eq!(spec["parallelism"].as_u64(), Some(3));
    assert_eq!(spec["completions"].as_u64(), Some(3));
    assert_eq!(spec["backoffLimit"].as_u64(), Some(0));
    let pod = &spec["template"];
    assert_eq!(pod["spec"]["restartPolicy"], "Never");
    assert_eq!(
        pod["metadata"]["annotations"]["prometheus.io/scrape"],
        "true"
    );
    assert_eq!(pod["metadata"]["annotations"]["prometheus.io/port"], "9464");
    let c = &pod["spec"]["containers"][0];
    assert_eq!(c["image"], "registry.example/volley:test");
    assert_eq!(c["ports"][0]["containerPort"].as_u64(), Some(9464));
    assert_eq!(c["command"][0], "/bin/sh");
    let part_script = s(&c["args"][0]).to_string();
    for want in [
        "volley run /plan/plan.toml --segment $((JOB_COMPLETION_INDEX+1))/3 --start-at ",
        "--summary-export /results/",
        "/part-$JOB_COMPLETION_INDEX.json",
        "--out prometheus=0.0.0.0:9464",
    ] {
        assert!(part_script.contains(want), "{want}: {part_script}");
    }
    assert_eq!(c["env"][0]["name"], "BASE_URL");
    assert_eq!(s(&c["env"][0]["value"]), t.url());
    let mounts: Vec<(&str, &str)> = c["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|m| (s(&m["name"]), s(&m["mountPath"])))
        .collect();
    assert_eq!(mounts, [("plan", "/plan"), ("results", "/results")]);
    let volumes = pod["spec"]["volumes"].as_sequence().unwrap();
    let plan_vol = volumes.iter().find(|v| v["name"] == "plan").unwrap();
    assert_eq!(plan_vol["configMap"]["name"], cm["metadata"]["name"]);
    let results = volumes.iter().find(|v| v["name"] == "results").unwrap();
    assert_eq!(
        results["persistentVolumeClaim"]["claimName"],
        pvc["metadata"]["name"]
    );
    let svc = kind(&docs, "Service")[0];
    for (k, v) in svc["spec"]["selector"].as_mapping().unwrap() {
        assert_eq!(&pod["metadata"]["labels"][s(k)], v, "selector {k:?}");
    }

    let m = &merge["spec"]["template"]["spec"];
    let merge_script = s(&m["containers"][0]["args"][0]).to_string();
    assert!(merge_script.contains("volley merge \"$dir\"/part-*.json"));
    assert_eq!(
        m["volumes"][0]["persistentVolumeClaim"]["claimName"],
        pvc["metadata"]["name"]
    );
    assert_eq!(
        m["containers"][0]["volumeMounts"][0]["mountPath"],
        "/results"
    );

    // The pods, here: the ConfigMap laid out as the kubelet mounts it (its
    // items), /plan and /results moved into a temp dir, and the metrics port
    // made a free loopback one so three "pods" share this machine.
    let root = d.join("pod");
    for item in plan_vol["configMap"]["items"].as_sequence().unwrap() {
        let path = root.join("plan").join(s(&item["path"]));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, s(&cm["data"][s(&item["key"])])).unwrap();
    }
    assert_eq!(
        std::fs::read_to_string(root.join("plan/data/users.csv")).unwrap(),
        csv
    );
    std::fs::create_dir_all(root.join("results")).unwrap();
    let bin = d.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_volley"), bin.join("volley")).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let local = |script: &str| {
        script
            .replace("/plan/", &format!("{}/plan/", root.display()))
            .replace("/results/", &format!("{}/results/", root.display()))
            .replace("0.0.0.0:9464", "127.0.0.1:0")
    };
    let pods: Vec<_> = (0..3)
        .map(|i| {
            Command::new("sh")
                .arg("-c")
                .arg(local(&part_script))
                .env("PATH", &path)
                .env("JOB_COMPLETION_INDEX", i.to_string())
                .env(s(&c["env"][0]["name"]), s(&c["env"][0]["value"]))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for p in pods {
        let out = wait_within(p, RUN_LIMIT, "a part's script");
        // Parts do not judge thresholds (each alone has a third of the requests).
        assert_eq!(code(&out), 0, "{}", text(&out));
        // The wait for --start-at shows in the progress output.
        assert!(
            text(&out).contains("waiting for --start-at"),
            "{}",
            text(&out)
        );
    }
    let out = Command::new("sh")
        .arg("-c")
        .arg(local(&merge_script))
        .env("PATH", &path)
        .output_within(RUN_LIMIT);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(text(&out).contains("merged 3 parts"), "{}", text(&out));
    let run_dir = std::fs::read_dir(root.join("results"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let run_dir = std::fs::read_dir(run_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for f in ["merged.json", "report.html", "junit.xml"] {
        assert!(run_dir.join(f).exists(), "{f} in {}", run_dir.display());
    }
    let merged: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("merged.json")).unwrap()).unwrap();
    assert_eq!(value(&merged, "http_reqs", "count") as u64, t.total());
    assert_eq!(t.total(), 120);

    // One file per object, in apply order; an existing claim is not rendered.
    let dir = d.join("manifests");
    let out = render(&[
        plan.to_str().unwrap(),
        "2",
        "-e",
        "BASE_URL=http://api.internal:8080",
        "--pvc",
        "shared-results",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "1-configmap.yaml",
            "2-service.yaml",
            "3-job-parts.yaml",
            "4-job-merge.yaml"
        ]
    );
    let job = &yaml_docs(&std::fs::read_to_string(dir.join("3-job-parts.yaml")).unwrap())[0];
    assert_eq!(job["spec"]["parallelism"].as_u64(), Some(2));
    assert!(job["metadata"]["namespace"].is_null());

    // A plan that cannot load is refused before anything is rendered.
    let out = render(&[plan.to_str().unwrap(), "3"]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    assert!(text(&out).contains("BASE_URL"), "{}", text(&out));
    assert!(out.stdout.is_empty());
}

/// The pods' push outputs (`--push`): each pod tags its series with its part,
/// so two pods writing the same second keep both their points; the sum per
/// part in InfluxDB and Prometheus is that part's summary count.
#[test]
fn pushing_pods_tag_their_series_with_their_part() {
    let influx = tsdb::influxdb();
    let prom = tsdb::prometheus();
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let plan = d.write(
        "plan.toml",
        r#"[defaults]
base_url = "${BASE_URL}"

[scenarios.api]
driver = "http"
executor = "constant-arrival-rate"
rate = 40
time_unit = "1s"
duration = "3s"
pre_allocated_vus = 6

[[scenarios.api.requests]]
url = "/api/v1/health"
"#,
    );
    let out = render(&[
        plan.to_str().unwrap(),
        "2",
        "--start-in",
        "4s",
        "-e",
        &format!("BASE_URL={}", t.url()),
        "--push",
        // The pod's shell fills ${NAME} in from its environment (--secret).
        &format!(
            "influxdb=http://volley:${{INFLUX_PASSWORD}}@{}/${{VOLLEY_DB}}",
            influx.addr
        ),
        "--push",
        &format!("prometheus-rw=http://{}/api/v1/write,push=1s", prom.addr),
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let docs = yaml_docs(&String::from_utf8(out.stdout.clone()).unwrap());
    let job = kind(&docs, "Job")[0];
    let c = &job["spec"]["template"]["spec"]["containers"][0];
    let script = s(&c["args"][0]).to_string();
    assert!(
        script.contains(",tag=instance:part-$JOB_COMPLETION_INDEX\""),
        "{script}"
    );
    assert!(script.contains("volley:${INFLUX_PASSWORD}@"), "{script}");
    // A password written out would land in the Job in plain text: refused.
    let refused = render(&[
        plan.to_str().unwrap(),
        "2",
        "-e",
        "BASE_URL=http://127.0.0.1:1",
        "--push",
        "influxdb=https://volley:s3cret@influx:8086/volley",
    ]);
    assert_eq!(code(&refused), 2, "{}", text(&refused));
    assert!(text(&refused).contains("${NAME}"), "{}", text(&refused));
    assert!(!text(&refused).contains("s3cret"), "{}", text(&refused));
    let root = d.join("pod");
    std::fs::create_dir_all(root.join("plan")).unwrap();
    std::fs::copy(&plan, root.join("plan/plan.toml")).unwrap();
    std::fs::create_dir_all(root.join("results")).unwrap();
    let bin = d.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_volley"), bin.join("volley")).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let script = script
        .replace("/plan/", &format!("{}/plan/", root.display()))
        .replace("/results/", &format!("{}/results/", root.display()))
        .replace("0.0.0.0:9464", "127.0.0.1:0");
    let pods: Vec<_> = (0..2)
        .map(|i| {
            Command::new("sh")
                .arg("-c")
                .arg(&script)
                .env("PATH", &path)
                .env("JOB_COMPLETION_INDEX", i.to_string())
                .env("BASE_URL", t.url())
                .env("VOLLEY_DB", "volley")
                .env("INFLUX_PASSWORD", "ignored-auth-is-off")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for p in pods {
        let out = wait_within(p, RUN_LIMIT, "a part's script");
        assert_eq!(code(&out), 0, "{}", text(&out));
        assert!(!text(&out).contains("points dropped"), "{}", text(&out));
    }
    // results/NAME/RUN/part-K.json
    let name_dir = std::fs::read_dir(root.join("results"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let run_dir = std::fs::read_dir(name_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut total = 0;
    for k in 0..2 {
        let part: serde_json::Value =
            serde_json::from_slice(&std::fs::read(run_dir.join(format!("part-{k}.json"))).unwrap())
                .unwrap();
        let n = counter(&part, "http_reqs", &[]);
        assert!(n > 0);
        total += n;
        let v = tsdb::influxql(
            &influx,
            "volley",
            &format!(r#"SELECT sum("value") FROM "http_reqs" WHERE "instance" = 'part-{k}'"#),
        );
        assert_eq!(
            v["results"][0]["series"][0]["values"][0][1].as_f64(),
            Some(n as f64),
            "part-{k}: {v}"
        );
        let v = tsdb::promql(
            &prom,
            &format!(r#"sum(k6_http_reqs_total{{instance="part-{k}"}})"#),
        );
        assert_eq!(
            v["data"]["result"][0]["value"][1].as_str(),
            Some(n.to_string().as_str()),
            "part-{k}: {v}"
        );
    }
    assert_eq!(total, t.total());
    // A push the pods cannot make is refused when rendering.
    for (arg, says) in [
        ("json=out.jsonl", "influxdb=URL or prometheus-rw=URL"),
        ("influxdb=https://db/x,ca=ca.pem", "the pods do not have"),
        ("influxdb=http://db/x,tag=instance:a", "leave out"),
        ("influxdb=http://db/x,nope=1", "unknown option"),
    ] {
        let out = render(&[
            plan.to_str().unwrap(),
            "2",
            "-e",
            "BASE_URL=http://x",
            "--push",
            arg,
        ]);
        assert_eq!(code(&out), 2, "{arg}: {}", text(&out));
        assert!(text(&out).contains(says), "{arg}: {}", text(&out));
    }
}
