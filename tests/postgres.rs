//! End to end: the `volley` binary against the throwaway PostgreSQL cluster
//! of scripts/with-postgres.sh (scripts/test.sh starts it). Each test makes
//! its own database, so tests running side by side do not see each other's
//! sessions, and compares what volley reports with what the server counted.

mod common;

use common::*;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

fn server_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "DATABASE_URL is not set: the PostgreSQL tests need the throwaway cluster; run them with scripts/test.sh \
             (or scripts/with-postgres.sh cargo test --test postgres)"
        )
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime")
    })
}

/// The same server, another database.
fn url_for(db: &str) -> String {
    let url = server_url();
    let base = url.split('?').next().unwrap_or(&url);
    let (head, _) = base.rsplit_once('/').expect("DATABASE_URL has a /database");
    format!("{head}/{db}")
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
    tokio::spawn(conn);
    client
}

/// A database of the test's own, dropped at the end.
struct Db {
    name: String,
    url: String,
}

impl Db {
    fn new(tag: &str) -> Db {
        Self::with_options(tag, "")
    }

    fn with_options(tag: &str, options: &str) -> Db {
        let name = format!("volley_{tag}_{}", std::process::id());
        runtime().block_on(async {
            let admin = connect(&server_url()).await;
            admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await
                .unwrap();
            admin
                .batch_execute(&format!("CREATE DATABASE {name} {options}"))
                .await
                .unwrap();
        });
        let url = url_for(&name);
        Db { name, url }
    }

    fn exec(&self, sql: &str) {
        runtime().block_on(async {
            connect(&self.url)
                .await
                .batch_execute(sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        })
    }

    fn count(&self, sql: &str) -> i64 {
        runtime().block_on(async {
            let row = connect(&self.url)
                .await
                .query_one(sql, &[])
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
            row.get::<_, i64>(0)
        })
    }

    /// Watch pg_stat_activity from another database while the run lasts:
    /// the most load sessions (application_name volley) seen at once.
    /// Run a plan while watching pg_stat_activity: also the most sessions seen.
    fn run_watched(
        &self,
        d: &Dir,
        plan: &std::path::Path,
    ) -> (std::process::Output, Option<serde_json::Value>, i64) {
        let watch = self.watch_sessions();
        let (out, s) = run_plan(d, plan, &[]);
        (out, s, watch.finish())
    }

    fn watch_sessions(&self) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let max = Arc::new(AtomicI64::new(0));
        let (s, m, name) = (stop.clone(), max.clone(), self.name.clone());
        let handle = runtime().spawn(async move {
            let admin = connect(&server_url()).await;
            let sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'volley'";
            while !s.load(Ordering::Relaxed) {
                if let Ok(row) = admin.query_one(sql, &[&name]).await {
                    m.fetch_max(row.get::<_, i64>(0), Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Watcher { stop, max, handle }
    }

    /// Terminate the load's sessions, as a server restart does.
    fn terminate_sessions(&self) -> i64 {
        runtime().block_on(async {
            let admin = connect(&server_url()).await;
            let row = admin
                .query_one(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'volley'",
                    &[&self.name],
                )
                .await
                .unwrap();
            row.get::<_, i64>(0)
        })
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let name = self.name.clone();
        runtime().block_on(async {
            let admin = connect(&server_url()).await;
            let _ = admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
        });
    }
}

struct Watcher {
    stop: Arc<AtomicBool>,
    max: Arc<AtomicI64>,
    handle: tokio::task::JoinHandle<()>,
}

impl Watcher {
    fn finish(self) -> i64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = runtime().block_on(self.handle);
        self.max.load(Ordering::Relaxed)
    }
}

fn scenario(url: &str, head: &str) -> String {
    format!(
        "[scenarios.db]\ndriver = \"postgres\"\ndatabase_url = \"{url}\"\n{}\n",
        head.trim()
    )
}

/// A scenario whose every iteration is a 10 ms `pg_sleep`.
fn naps(url: &str, head: &str) -> String {
    format!(
        "{}\n[[scenarios.db.queries]]\nname = \"nap\"\nsql = \"SELECT pg_sleep(0.01)\"\n",
        scenario(url, head)
    )
}

/// Sum of a rate's hits over the series whose tags include all of `tags`.
fn hits(summary: &serde_json::Value, metric: &str, tags: &[(&str, &str)]) -> u64 {
    series(summary, metric, tags)
        .iter()
        .map(|s| s["hits"].as_u64().unwrap_or(0))
        .sum()
}

fn gauge_max(summary: &serde_json::Value, metric: &str, tags: &[(&str, &str)]) -> f64 {
    series(summary, metric, tags)
        .iter()
        .map(|s| s["max"].as_f64().unwrap_or(0.0))
        .fold(0.0, f64::max)
}

const MIX: &str = r#"
[[scenarios.db.queries]]
name = "read"
weight = 5
sql = "SELECT v FROM items WHERE id = $1"
params = ["{{ rand_int(1, 100) }}"]
checks = { rows = 1 }

[[scenarios.db.queries]]
name = "write"
weight = 3
sql = "INSERT INTO hits (vu, q) VALUES ($1, 'write')"
params = ["{{ vu.id }}"]
checks = { rows = 1 }

[[scenarios.db.queries]]
name = "tx"
weight = 2
vars = { item = "{{ rand_int(1, 100) }}" }
statements = [
  { sql = "INSERT INTO hits (vu, q) VALUES ($1, 'tx') RETURNING id", params = ["{{ vu.id }}"], captures = { hit = "id" } },
  { sql = "UPDATE items SET v = v + 1 WHERE id = $1", params = ["{{ vars.item }}"], checks = { rows = 1 } },
  { sql = "UPDATE hits SET q = 'tx-done' WHERE id = $1", params = ["{{ vars.hit }}"], checks = { rows = 1 } },
]
"#;

fn mix_db(tag: &str) -> Db {
    let db = Db::new(tag);
    db.exec(
        "CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
         CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL DEFAULT 0);
         INSERT INTO items (id) SELECT generate_series(1, 100);
         CREATE TABLE hits (id bigserial PRIMARY KEY, vu int NOT NULL, q text NOT NULL);",
    );
    db
}

/// The statement's executions in this database, as pg_stat_statements counted them.
fn calls(db: &Db, query: &str) -> i64 {
    db.count(&format!(
        "SELECT coalesce(sum(calls), 0)::int8 FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid \
         WHERE d.datname = '{}' AND s.query = '{query}'",
        db.name
    ))
}

#[test]
fn query_counts_equal_the_servers_counts_in_every_connection_mode() {
    for (mode, connections, flow, vus, iterations) in [
        ("pool", "\"pool\"\npool_size = 3", "weighted", 6, 40),
        ("per-vu", "\"per-vu\"", "weighted", 4, 50),
        ("per-iteration", "\"per-iteration\"", "sequence", 3, 15),
    ] {
        let db = mix_db(&format!("counts_{}", mode.replace('-', "")));
        let d = Dir::new();
        let mix = if flow == "sequence" {
            MIX.lines()
                .filter(|l| !l.starts_with("weight"))
                .collect::<Vec<_>>()
                .join("\n")
        } else {
            MIX.to_string()
        };
        let head = format!(
            "executor = \"per-vu-iterations\"\nvus = {vus}\niterations = {iterations}\nconnections = {connections}\nflow = \"{flow}\""
        );
        let plan = d.write("plan.toml", &format!("{}{mix}", scenario(&db.url, &head)));
        let (out, s) = run_plan(&d, &plan, &[]);
        assert_eq!(code(&out), 0, "{mode}: {}", text(&out));
        let s = s.unwrap();
        let iters = (vus * iterations) as f64;
        assert_eq!(value(&s, "iterations", "count"), iters, "{mode}");
        let per_iteration = if flow == "sequence" { 3.0 } else { 1.0 };
        assert_eq!(
            value(&s, "pg_queries", "count"),
            iters * per_iteration,
            "{mode}"
        );
        assert_eq!(value(&s, "pg_query_failed", "passes"), 0.0, "{mode}");
        assert_eq!(value(&s, "checks", "fails"), 0.0, "{mode}: {}", text(&out));

        let read = counter(&s, "pg_queries", &[("name", "read")]) as i64;
        let write = counter(&s, "pg_queries", &[("name", "write")]) as i64;
        let tx = counter(&s, "pg_queries", &[("name", "tx")]) as i64;
        assert!(
            read > 0 && write > 0 && tx > 0,
            "{mode}: {read} {write} {tx}"
        );
        assert_eq!(
            calls(&db, "SELECT v FROM items WHERE id = $1"),
            read,
            "{mode}"
        );
        assert_eq!(
            db.count("SELECT count(*) FROM hits WHERE q = 'write'"),
            write,
            "{mode}"
        );
        // Every transaction committed, and its captured id found its row.
        assert_eq!(
            db.count("SELECT count(*) FROM hits WHERE q = 'tx-done'"),
            tx,
            "{mode}"
        );
        assert_eq!(db.count("SELECT count(*) FROM hits WHERE q = 'tx'"), 0);
        assert_eq!(
            db.count("SELECT sum(v)::int8 FROM items"),
            tx,
            "{mode}: one update per transaction"
        );
        assert_eq!(value(&s, "pg_tx_duration", "count") as i64, tx, "{mode}");
        // Rows: 1 per read and per write, 3 per transaction.
        assert_eq!(
            value(&s, "pg_rows", "count") as i64,
            read + write + 3 * tx,
            "{mode}"
        );
        let connects = value(&s, "pg_connect_duration", "count");
        match mode {
            "per-vu" => assert_eq!(connects, vus as f64, "one connection per VU"),
            "per-iteration" => assert_eq!(connects, iters, "one connection per iteration"),
            _ => assert!(connects <= 3.0, "a pool of 3 connects at most 3 times"),
        }
    }
}

#[test]
fn a_pool_never_holds_more_than_its_size() {
    let db = Db::new("poolsize");
    let d = Dir::new();
    let plan = d.write("plan.toml", &naps(&db.url, "executor = \"constant-vus\"\nvus = 20\nduration = \"3s\"\nconnections = \"pool\"\npool_size = 4\nacquire_timeout = \"10s\""));
    let (out, s, most) = db.run_watched(&d, &plan);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.unwrap();
    assert_eq!(
        most, 4,
        "pg_stat_activity: at most (and, under contention, exactly) 4 sessions"
    );
    // The sampler saw the same from inside the run.
    assert_eq!(gauge_max(&s, "pg_connections", &[("state", "total")]), 4.0);
    assert!(value(&s, "pg_connect_duration", "count") <= 4.0);
    // Every query waited for its connection, and waiting was measured.
    assert_eq!(
        value(&s, "pg_pool_wait", "count"),
        value(&s, "pg_queries", "count")
    );
    assert!(value(&s, "pg_pool_wait", "p(95)") > 0.0);
    assert_eq!(value(&s, "pg_pool_timeouts", "count"), 0.0);

    // per-vu: one session per VU.
    let plan = d.write(
        "plan.toml",
        &naps(
            &db.url,
            "executor = \"constant-vus\"\nvus = 6\nduration = \"2s\"\nconnections = \"per-vu\"",
        ),
    );
    let (out, s, most) = db.run_watched(&d, &plan);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.unwrap();
    assert_eq!(most, 6);
    assert_eq!(value(&s, "pg_connect_duration", "count"), 6.0);
    assert_eq!(gauge_max(&s, "pg_connections", &[("state", "total")]), 6.0);
}

#[test]
fn an_exhausted_pool_waits_up_to_the_acquire_timeout_then_counts_timeouts() {
    let db = Db::new("exhaust");
    let d = Dir::new();
    // 100 VUs want a 50 ms query each; 10 connections serve 200/s: most wait
    // the full 300 ms and give up.
    let plan = d.write(
        "plan.toml",
        &format!(
            "{}\n[[scenarios.db.queries]]\nname = \"slow\"\nsql = \"SELECT pg_sleep(0.05)\"\n\n[thresholds]\npg_pool_timeouts = [\"count==0\"]\n",
            scenario(
                &db.url,
                "executor = \"constant-vus\"\nvus = 100\nduration = \"3s\"\nconnections = \"pool\"\npool_size = 10\nacquire_timeout = \"300ms\""
            )
        ),
    );
    let (out, s, most) = db.run_watched(&d, &plan);
    assert_eq!(
        code(&out),
        99,
        "the threshold on timeouts fails: {}",
        text(&out)
    );
    let s = s.unwrap();
    let timeouts = value(&s, "pg_pool_timeouts", "count");
    assert!(timeouts > 0.0, "{}", text(&out));
    assert_eq!(
        hits(&s, "pg_query_failed", &[("error", "pool_timeout")]) as f64,
        timeouts
    );
    let p95 = value(&s, "pg_pool_wait", "p(95)");
    assert!(
        (290.0..1300.0).contains(&p95),
        "pg_pool_wait p95 {p95}ms should sit near the 300ms acquire timeout"
    );
    assert!(most <= 10, "{most} sessions from a pool of 10");
    // The connections that were had did their work.
    assert!(counter(&s, "pg_queries", &[]) as f64 > timeouts);
    assert!(text(&out).contains("pool_timeout (slow)"), "{}", text(&out));
}

#[test]
fn a_connection_storm_counts_53300_and_ends_by_its_thresholds() {
    // A database that takes 4 sessions (superusers are exempt from the limit,
    // so the load logs in as a role of its own). The server-wide
    // max_connections is left alone: other tests share the cluster.
    let role = format!("volley_storm_{}", std::process::id());
    let db = Db::with_options("storm", "CONNECTION LIMIT 4");
    db.exec(&format!(
        "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN;"
    ));
    let url = db.url.replacen("postgres@", &format!("{role}@"), 1);
    assert!(
        url.contains(&role),
        "DATABASE_URL names the user postgres: {url}"
    );
    let d = Dir::new();
    let plan = d.write(
        "plan.toml",
        &format!(
            "{}\n[[scenarios.db.queries]]\nname = \"hello\"\nsql = \"SELECT pg_sleep(0.02)\"\n\n[thresholds]\npg_query_failed = [\"rate<0.01\"]\n",
            scenario(
                &url,
                "executor = \"constant-vus\"\nvus = 16\nduration = \"2s\"\nconnections = \"per-iteration\""
            )
        ),
    );
    let (out, s) = run_plan(&d, &plan, &[]);
    db.exec(&format!("DROP ROLE IF EXISTS {role}"));
    let s = s.unwrap_or_else(|| panic!("a summary, not a crash: {}", text(&out)));
    assert_eq!(code(&out), 99, "{}", text(&out));
    let refused = hits(&s, "pg_query_failed", &[("sqlstate", "53300")]);
    assert!(refused > 0, "{}", text(&out));
    assert_eq!(
        hits(
            &s,
            "pg_query_failed",
            &[("error", "connect"), ("sqlstate", "53300")]
        ),
        refused
    );
    let failed = value(&s, "pg_query_failed", "passes") as u64;
    let queries = value(&s, "pg_queries", "count") as u64;
    assert!(
        queries > failed,
        "some sessions got in and ran: {queries} {failed}"
    );
    assert!(
        text(&out).contains("53300 too_many_connections"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("✗ 'rate<0.01'"), "{}", text(&out));
}

#[test]
fn bad_statements_and_unreachable_servers_fail_before_any_load() {
    let db = mix_db("validate");
    let d = Dir::new();
    let write_then = |bad: &str| {
        d.write(
            "plan.toml",
            &format!(
                "{}\n[[scenarios.db.queries]]\nname = \"write\"\nsql = \"INSERT INTO hits (vu, q) VALUES (1, 'early')\"\n\n{bad}",
                scenario(
                    &db.url,
                    "executor = \"per-vu-iterations\"\nvus = 2\niterations = 5"
                )
            ),
        )
    };
    let cases = [
        (
            "[[scenarios.db.queries]]\nname = \"broken\"\nsql = \"SELEC v FROM items\"\n",
            &[
                "scenario \"db\"",
                "query \"broken\"",
                "syntax error",
                "42601",
            ][..],
        ),
        (
            "[[scenarios.db.queries]]\nname = \"nowhere\"\nsql = \"SELECT * FROM missing_table\"\n",
            &["query \"nowhere\"", "missing_table", "42P01"][..],
        ),
        (
            "[[scenarios.db.queries]]\nname = \"typed\"\nsql = \"SELECT v FROM items WHERE id = $1\"\nparams = [\"{{ choice('seven') }}\"]\n",
            &["query \"typed\"", "param 1", "int4", "22P02"][..],
        ),
        (
            "[[scenarios.db.queries]]\nname = \"counted\"\nsql = \"SELECT v FROM items WHERE id = $1 AND v > $2\"\nparams = [\"1\"]\n",
            &["query \"counted\"", "2 parameters", "gives 1 value"][..],
        ),
        (
            "[[scenarios.db.queries]]\nname = \"tx\"\nstatements = [{ sql = \"UPDATE items SET v = 0 WHERE id = 1\" }, { sql = \"UPDATE nope SET v = 0\" }]\n",
            &["query \"tx\", statement 2", "\"nope\""][..],
        ),
        (
            "[[scenarios.db.queries]]\nname = \"cap\"\nsql = \"SELECT v FROM items WHERE id = 1\"\ncaptures = { x = \"w\" }\n",
            &["capture \"x\"", "column \"w\"", "returns v"][..],
        ),
    ];
    for (bad, expected) in cases {
        let plan = write_then(bad);
        let (out, _) = run_plan(&d, &plan, &[]);
        let t = text(&out);
        assert_eq!(code(&out), 2, "{t}");
        for e in expected {
            assert!(t.contains(e), "expected {e:?} in: {t}");
        }
    }
    assert_eq!(
        db.count("SELECT count(*) FROM hits WHERE q = 'early'"),
        0,
        "nothing ran before validation failed"
    );

    // Nothing listens there; a user that does not exist; a URL that does not parse.
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let server = url_for("x");
    let unreachable = format!("postgres://postgres@127.0.0.1:{closed_port}/x");
    let stranger = server.replacen("postgres@", "nobody_here@", 1);
    for (url, expected) in [
        (unreachable.as_str(), "connection refused"),
        (stranger.as_str(), "28000"),
        (
            "postgres://127.0.0.1:notaport/x",
            "not a valid PostgreSQL URL",
        ),
    ] {
        let plan = d.write(
            "plan.toml",
            &format!(
                "{}\n[[scenarios.db.queries]]\nsql = \"SELECT 1\"\n",
                scenario(
                    url,
                    "executor = \"per-vu-iterations\"\nvus = 1\niterations = 1"
                )
            ),
        );
        let (out, _) = run_plan(&d, &plan, &[]);
        let t = text(&out);
        assert_eq!(code(&out), 2, "{t}");
        assert!(t.contains(expected), "expected {expected:?} in: {t}");
    }
}

#[test]
fn sessions_killed_mid_run_are_counted_and_reopened() {
    let db = Db::new("restart");
    let d = Dir::new();
    let body = "\n[[scenarios.db.queries]]\nname = \"nap\"\nsql = \"SELECT pg_sleep(0.05)\"\n";
    for (mode, connections) in [
        ("per-vu", "\"per-vu\""),
        ("pool", "\"pool\"\npool_size = 4"),
    ] {
        let head = format!(
            "executor = \"constant-vus\"\nvus = 4\nduration = \"4s\"\nconnections = {connections}"
        );
        let plan = d.write("plan.toml", &format!("{}{body}", scenario(&db.url, &head)));
        // What a restart does to each session (SIGTERM to the backends), twice.
        let kill = {
            let name = db.name.clone();
            std::thread::spawn(move || {
                let db = Db {
                    name,
                    url: String::new(),
                };
                let mut killed = 0;
                for _ in 0..2 {
                    std::thread::sleep(Duration::from_millis(1300));
                    killed += db.terminate_sessions();
                }
                std::mem::forget(db);
                killed
            })
        };
        let (out, s) = run_plan(&d, &plan, &[]);
        let killed = kill.join().unwrap();
        assert_eq!(code(&out), 0, "{mode}: {}", text(&out));
        let s = s.unwrap();
        assert!(killed >= 4, "{mode}: terminated {killed}");
        let failed = value(&s, "pg_query_failed", "passes");
        assert!(
            failed > 0.0,
            "{mode}: in-flight queries fail: {}",
            text(&out)
        );
        assert!(
            failed <= killed as f64,
            "{mode}: one failure per killed session at most: {failed} > {killed}: {}",
            text(&out)
        );
        // 57P01 admin_shutdown for a query in flight, or a closed connection.
        let by_kind = hits(&s, "pg_query_failed", &[("sqlstate", "57P01")])
            + hits(&s, "pg_query_failed", &[("error", "closed")])
            + hits(&s, "pg_query_failed", &[("error", "io")]);
        assert_eq!(by_kind as f64, failed, "{mode}: {}", text(&out));
        assert!(
            value(&s, "pg_connect_duration", "count") >= 8.0,
            "{mode}: sessions were opened again"
        );
        // Work went on after the second kill: the last second saw queries.
        let ids: Vec<usize> = s["interval_series"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .filter(|(_, v)| v[0] == "pg_queries")
            .map(|(i, _)| i)
            .collect();
        let last = s["intervals"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|iv| iv["t"].as_u64() == Some(3))
            .expect("an interval at 3s");
        let late: u64 = last["points"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| ids.contains(&(p[0].as_u64().unwrap() as usize)))
            .map(|p| p[1]["count"].as_u64().unwrap_or(0))
            .sum();
        assert!(late > 0, "{mode}: queries after the restart");
    }
}

/// A front for the server on a port of its own. The first session (volley's
/// check before the load) goes through to the server; every later one is
/// treated as by a server going down in a restart: reset at once (it was
/// in the queue of a postmaster that exited), or closed after its first
/// packet without a word (a backend that ended while starting).
struct GoingDown {
    port: u16,
    stop: Arc<AtomicBool>,
    accepts: Option<std::thread::JoinHandle<()>>,
}

impl GoingDown {
    fn start(server: String, reset: bool) -> GoingDown {
        use std::io::{Read, Write};
        use std::net::{Shutdown, TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let accepts = std::thread::spawn(move || {
            for (n, conn) in listener.incoming().enumerate() {
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = conn else { continue };
                if n == 0 {
                    let upstream = TcpStream::connect(&server).unwrap();
                    let (mut c2, mut u2) =
                        (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                    let (mut c, mut u) = (client, upstream);
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut c2, &mut u2);
                        let _ = u2.shutdown(Shutdown::Write);
                    });
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut u, &mut c);
                        let _ = c.shutdown(Shutdown::Write);
                    });
                } else if reset {
                    // Linger 0: close sends RST.
                    let s = socket2::Socket::from(client);
                    let _ = s.set_linger(Some(Duration::ZERO));
                } else {
                    let mut client = client;
                    let _ = client.set_read_timeout(Some(Duration::from_millis(200)));
                    let mut buf = [0u8; 1024];
                    let _ = client.read(&mut buf);
                    let _ = client.flush();
                    // FIN, then wait for the client's: nothing unread, so no RST.
                    let _ = client.shutdown(Shutdown::Write);
                    while matches!(client.read(&mut buf), Ok(n) if n > 0) {}
                }
            }
        });
        GoingDown {
            port,
            stop,
            accepts: Some(accepts),
        }
    }
}

impl Drop for GoingDown {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the stop.
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(h) = self.accepts.take() {
            let _ = h.join();
        }
    }
}

#[test]
fn sessions_refused_by_a_restarting_server_say_why() {
    let db = Db::new("going_down");
    let d = Dir::new();
    // host:port of the server, from postgres://user@host:port/db.
    let server = db
        .url
        .split_once('@')
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(addr, _)| addr.to_string())
        .expect("a postgres://user@host:port/db URL");
    for (reset, query, tag) in [
        (true, "", "connect_reset"),
        (false, "", "connect_closed"),
        (false, "?sslmode=disable", "connect_closed"),
    ] {
        let front = GoingDown::start(server.clone(), reset);
        let url = format!(
            "{}{query}",
            db.url
                .replacen(&server, &format!("127.0.0.1:{}", front.port), 1)
        );
        let plan = d.write(
            "plan.toml",
            &format!(
                "{}\n[[scenarios.db.queries]]\nname = \"one\"\nsql = \"SELECT 1\"\n",
                scenario(
                    &url,
                    "executor = \"per-vu-iterations\"\nvus = 1\niterations = 3\nconnections = \"per-iteration\"\nsample_activity = false"
                )
            ),
        );
        let (out, s) = run_plan(&d, &plan, &[]);
        drop(front);
        let t = text(&out);
        assert_eq!(code(&out), 0, "{tag}{query}: {t}");
        let s = s.unwrap();
        assert_eq!(
            hits(&s, "pg_query_failed", &[("error", tag)]),
            3,
            "{tag}{query}: {t}"
        );
        let unexplained: Vec<_> = series(&s, "pg_query_failed", &[("error", "connect")])
            .into_iter()
            .filter(|r| r["tags"].get("sqlstate").is_none())
            .collect();
        assert!(unexplained.is_empty(), "{tag}{query}: {unexplained:?}");
        assert!(t.contains(&format!("3 × {tag} (one)")), "{tag}{query}: {t}");
    }
}

/// TLS on the shared cluster for as long as it lives: a CA, a server
/// certificate for DNS:localhost only, `ssl = on` by ALTER SYSTEM + reload.
/// Connections that do not ask for TLS are unaffected; it is reset on drop.
struct ServerTls {
    dir: Dir,
}

impl ServerTls {
    fn enable() -> ServerTls {
        let dir = Dir::new();
        test_certificates(&dir, false);
        // The server reads these as its own user (postgres, when the tests run as root).
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir.path, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(
            dir.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        std::fs::set_permissions(
            dir.join("server.pem"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        if is_root() {
            let id = std::process::Command::new("id")
                .args(["-u", "postgres"])
                .output()
                .unwrap();
            let uid: u32 = String::from_utf8_lossy(&id.stdout)
                .trim()
                .parse()
                .expect("a postgres user");
            for f in ["server.key", "server.pem"] {
                std::os::unix::fs::chown(dir.join(f), Some(uid), None).unwrap();
            }
        }
        let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
        runtime().block_on(async {
            let admin = connect(&server_url()).await;
            for sql in [
                format!("ALTER SYSTEM SET ssl_cert_file = '{}'", cert.display()),
                format!("ALTER SYSTEM SET ssl_key_file = '{}'", key.display()),
                "ALTER SYSTEM SET ssl = on".to_string(),
                "SELECT pg_reload_conf()".to_string(),
            ] {
                admin.batch_execute(&sql).await.unwrap();
            }
            for _ in 0..50 {
                let on: String = connect(&server_url()).await.query_one("SHOW ssl", &[]).await.unwrap().get(0);
                if on == "on" {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("the server did not turn ssl on; see its log for why (certificate files unreadable?)");
        });
        ServerTls { dir }
    }

    fn ca(&self) -> String {
        self.dir.join("ca.pem").display().to_string()
    }
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl Drop for ServerTls {
    fn drop(&mut self) {
        runtime().block_on(async {
            let admin = connect(&server_url()).await;
            for sql in [
                "ALTER SYSTEM RESET ssl",
                "ALTER SYSTEM RESET ssl_cert_file",
                "ALTER SYSTEM RESET ssl_key_file",
                "SELECT pg_reload_conf()",
            ] {
                let _ = admin.batch_execute(sql).await;
            }
        });
    }
}

#[test]
fn tls_as_the_url_asks_for_it() {
    let db = Db::new("tls");
    let tls = ServerTls::enable();
    let d = Dir::new();
    let port_part = db.url.split('@').nth(1).unwrap().to_string(); // 127.0.0.1:PORT/db
    let at = |host: &str, query: &str| {
        let rest = port_part.replacen("127.0.0.1", host, 1);
        format!("postgres://postgres@{rest}?{query}")
    };
    let ca = tls.ca();
    // The query returns a row only on an encrypted session.
    let plan_for = |url: &str| {
        d.write(
            "plan.toml",
            &format!(
                "{}\n[[scenarios.db.queries]]\nname = \"ssl\"\nsql = \"SELECT 1 FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl\"\nchecks = {{ rows = 1 }}\n",
                scenario(url, "executor = \"per-vu-iterations\"\nvus = 2\niterations = 3")
            ),
        )
    };
    for url in [
        at("127.0.0.1", "sslmode=require"),
        // verify-ca: the chain is checked, the name (DNS:localhost) is not.
        at("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={ca}")),
        at(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        ),
    ] {
        let (out, s) = run_plan(&d, &plan_for(&url), &[]);
        assert_eq!(code(&out), 0, "{url}: {}", text(&out));
        let s = s.unwrap();
        assert_eq!(
            value(&s, "checks", "passes"),
            6.0,
            "{url}: encrypted sessions: {}",
            text(&out)
        );
    }
    // disable: plain sessions, the check fails.
    let (out, s) = run_plan(&d, &plan_for(&at("127.0.0.1", "sslmode=disable")), &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(value(&s.unwrap(), "checks", "fails"), 6.0);
    // verify-full refuses a name the certificate does not have, and an unknown CA.
    for url in [
        at(
            "127.0.0.1",
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        ),
        at("localhost", "sslmode=verify-full"),
    ] {
        let (out, _) = run_plan(&d, &plan_for(&url), &[]);
        let t = text(&out);
        assert_eq!(code(&out), 2, "{url}: {t}");
        assert!(t.contains("TLS failed"), "{url}: {t}");
    }
}

#[test]
fn the_example_plans_are_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for plan in [
        "pg-query-mix.toml",
        "pg-pool-exhaustion.toml",
        "pg-connection-storm.toml",
    ] {
        let out = volley()
            .arg("validate")
            .arg(root.join("fixtures/plans").join(plan))
            .args(["-e", &format!("DATABASE_URL={}", server_url())])
            .output_within(RUN_LIMIT);
        assert_eq!(code(&out), 0, "{plan}: {}", text(&out));
        assert!(text(&out).contains("[postgres /"), "{plan}: {}", text(&out));
    }
}
