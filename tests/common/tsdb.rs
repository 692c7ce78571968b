//! Throwaway time-series databases for the output tests: a real `influxd`
//! (InfluxDB 1.x) and a real `prometheus` with its remote-write receiver, on
//! free loopback ports with their data in a temp dir, killed on drop. The
//! Debian packages `influxdb` and `prometheus` provide them (`.ci/run`
//! installs them).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn require(bin: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {bin}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{bin} is not installed: apt-get install {package} (.ci/run installs it)"
    );
}

/// A server process, killed (SIGKILL) and reaped on drop.
pub struct Peer {
    child: Option<Child>,
    pub addr: String,
    dir: tempfile::TempDir,
}

impl Peer {
    fn start(cmd: &mut Command, addr: String, dir: tempfile::TempDir, ready: &str) -> Self {
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let mut peer = Peer {
            child: Some(child),
            addr,
            dir,
        };
        let started = Instant::now();
        loop {
            if get(&peer.addr, ready).is_some_and(|(s, _)| s < 300) {
                return peer;
            }
            if let Some(st) = peer.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("{cmd:?} exited ({st}) before it was ready:\n{}", peer.log());
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{cmd:?} not ready within 60s:\n{}",
                peer.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `influxd` with HTTP on a free port (the RPC port too: two runs may overlap).
pub fn influxdb() -> Peer {
    require("influxd", "influxdb");
    let dir = tempfile::tempdir().unwrap();
    let (http, rpc) = (free_port(), free_port());
    let d = dir.path().display();
    let conf = format!(
        "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc}\"\n\
         [meta]\n  dir = \"{d}/meta\"\n\
         [data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n\
         [http]\n  bind-address = \"127.0.0.1:{http}\"\n  log-enabled = false\n\
         [monitor]\n  store-enabled = false\n"
    );
    let path = dir.path().join("influxdb.conf");
    std::fs::write(&path, conf).unwrap();
    Peer::start(
        Command::new("influxd").arg("-config").arg(&path),
        format!("127.0.0.1:{http}"),
        dir,
        "/ping",
    )
}

/// `prometheus` with its remote-write receiver and nothing to scrape.
pub fn prometheus() -> Peer {
    require("prometheus", "prometheus");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = dir.path().join("prometheus.yml");
    std::fs::write(&conf, "global:\n  scrape_interval: 1h\n").unwrap();
    let data = dir.path().join("data");
    Peer::start(
        Command::new("prometheus")
            .arg(format!("--config.file={}", conf.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-remote-write-receiver"),
        format!("127.0.0.1:{port}"),
        dir,
        "/-/ready",
    )
}

/// GET `path` (already encoded): status and body; None if nobody answers.
pub fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let buf = String::from_utf8_lossy(&buf);
    let (head, body) = buf.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

pub fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// An InfluxQL query's JSON answer.
pub fn influxql(peer: &Peer, db: &str, q: &str) -> serde_json::Value {
    let (status, body) = get(
        &peer.addr,
        &format!("/query?db={}&q={}", encode(db), encode(q)),
    )
    .expect("influxd answers");
    assert_eq!(status, 200, "{q}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// A PromQL instant query's JSON answer.
pub fn promql(peer: &Peer, q: &str) -> serde_json::Value {
    let (status, body) =
        get(&peer.addr, &format!("/api/v1/query?query={}", encode(q))).expect("prometheus answers");
    assert_eq!(status, 200, "{q}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Where the dashboards are, from the repository root.
pub fn dashboards(kind: &str) -> Vec<std::path::PathBuf> {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("deploy/grafana/dashboards/{kind}"));
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    v.sort();
    v
}
