//! End to end: the WebSocket chat driver against the embedded chat server
//! (and a few misbehaving servers) on loopback. What volley counts is
//! compared with what the server itself saw.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use volley_protocols::duration::DurRange;
use volley_serve::ServeOptions;

fn chat(t: &Target, what: &str) -> u64 {
    let s = &t.server.state.chat.stats;
    let c = match what {
        "sessions" => &s.sessions,
        "drops" => &s.drops,
        "messages" => &s.messages,
        "deliveries" => &s.deliveries,
        "withheld" => &s.withheld,
        "joins" => &s.joins,
        "open" => &s.open,
        _ => panic!("{what}"),
    };
    c.load(Ordering::Relaxed)
}

fn range(text: &str) -> Option<DurRange> {
    Some(DurRange::parse(text).unwrap())
}

/// 12 participants in 3 rooms of 4, four messages a second each, for 3 s.
fn chat_plan(dir: &Dir, url: &str, extra: &str) -> std::path::PathBuf {
    chat_plan_with(dir, url, "3s", 240, extra)
}

fn chat_plan_with(
    dir: &Dir,
    url: &str,
    duration: &str,
    per_minute: u32,
    extra: &str,
) -> std::path::PathBuf {
    dir.write(
        "plan.toml",
        &format!(
            r#"
[scenarios.chat]
driver = "websocket"
executor = "constant-vus"
vus = 12
duration = "{duration}"
url = "{url}"
room_size = 4
messages_per_minute = {per_minute}
{extra}
"#
        ),
    )
}

fn rate(s: &serde_json::Value, metric: &str, key: &str) -> u64 {
    value(s, metric, key) as u64
}

#[test]
fn a_clean_run_has_no_drops_and_no_loss_and_matches_the_server() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let p = chat_plan(
        &d,
        &t.server.ws_url(),
        r#"
[thresholds]
ws_drop_rate = ["rate<0.01"]
ws_msgs_lost = ["count==0"]
ws_msg_latency = ["p(95)<1000"]
"#,
    );
    let (out, s) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.unwrap();
    // One session per participant: the run is shorter than a session.
    assert_eq!(value(&s, "ws_sessions", "count"), 12.0);
    assert_eq!(chat(&t, "sessions"), 12);
    assert_eq!(chat(&t, "joins"), 12);
    assert_eq!(rate(&s, "ws_drop_rate", "passes"), 0);
    assert_eq!(rate(&s, "ws_drop_rate", "fails"), 12);
    assert_eq!(value(&s, "ws_msgs_lost", "count"), 0.0);
    let sent = value(&s, "ws_msgs_sent", "count") as u64;
    let received = value(&s, "ws_msgs_received", "count") as u64;
    assert!(sent > 50, "sent {sent}");
    assert_eq!(sent, chat(&t, "messages"));
    // Every delivery the server made reached its participant, and was timed.
    assert_eq!(received, chat(&t, "deliveries"));
    assert_eq!(value(&s, "ws_msg_latency", "count") as u64, received);
    // Three others in each room hear every message.
    assert!(
        received <= 3 * sent && received >= 3 * sent - 12,
        "sent {sent}, received {received}"
    );
    // Tagged by room: three rooms, each with its own traffic.
    for room in ["chat-0", "chat-1", "chat-2"] {
        assert!(
            counter(&s, "ws_msgs_received", &[("room", room)]) > 0,
            "{room}"
        );
    }
    assert!(value(&s, "data_sent", "count") > 0.0);
    assert_eq!(chat(&t, "open"), 0, "every session was closed");
}

#[test]
fn lost_messages_are_what_the_server_withheld() {
    let t = Target::start(ServeOptions {
        ws_loss_rate: 0.2,
        ..ServeOptions::default()
    });
    let d = Dir::new();
    // Participants wait up to the deadline for what was withheld before they
    // leave. One message a second each: the first comes at least 0.5 s after
    // joining, when the whole room is in (a message crossing a join at the
    // server could be counted differently on the two sides).
    let p = chat_plan_with(&d, &t.server.ws_url(), "5s", 60, "deadline = \"1s\"");
    let (out, s) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.unwrap();
    let withheld = chat(&t, "withheld");
    assert!(withheld > 10, "withheld {withheld}");
    assert_eq!(value(&s, "ws_msgs_lost", "count") as u64, withheld);
    assert_eq!(
        value(&s, "ws_msgs_received", "count") as u64,
        chat(&t, "deliveries")
    );
    assert_eq!(rate(&s, "ws_drop_rate", "passes"), 0);
}

#[test]
fn drop_rate_is_the_servers_drops_over_the_sessions() {
    // Every 4th session is dropped 300-800 ms after it opens; dropped
    // participants come back once, 200 ms later, as new sessions.
    let t = Target::start(ServeOptions {
        ws_drop_rate: 0.25,
        ws_drop_after: range("300ms..800ms"),
        ..ServeOptions::default()
    });
    let d = Dir::new();
    let p = chat_plan(
        &d,
        &t.server.ws_url(),
        "reconnect = \"on-drop\"\nreconnect_delay = \"200ms\"",
    );
    let (out, s) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.unwrap();
    let (drops, sessions) = (chat(&t, "drops"), chat(&t, "sessions"));
    // 12 first sessions: 3 dropped; their 3 reconnections are not (the 16th would be).
    assert_eq!((drops, sessions), (3, 15));
    assert_eq!(value(&s, "ws_sessions", "count") as u64, sessions);
    assert_eq!(rate(&s, "ws_drop_rate", "passes"), drops);
    assert_eq!(
        rate(&s, "ws_drop_rate", "passes") + rate(&s, "ws_drop_rate", "fails"),
        sessions
    );
    assert_eq!(value(&s, "ws_drop_rate", "rate"), 0.2);
    assert_eq!(
        counter(&s, "ws_errors", &[("error", "connection reset")]),
        drops
    );
}

#[test]
fn latency_rises_by_the_injected_delay() {
    let clean = Target::start(ServeOptions::default());
    let slow = Target::start(ServeOptions {
        ws_delay: range("150ms"),
        ..ServeOptions::default()
    });
    let d = Dir::new();
    let p50 = |t: &Target| {
        let p = chat_plan(&d, &t.server.ws_url(), "");
        let (out, s) = run_plan(&d, &p, &[]);
        assert_eq!(code(&out), 0, "{}", text(&out));
        let s = s.unwrap();
        assert_eq!(value(&s, "ws_msgs_lost", "count"), 0.0);
        (
            value(&s, "ws_msg_latency", "med"),
            value(&s, "ws_msg_latency", "min"),
        )
    };
    let (fast, _) = p50(&clean);
    let (delayed, delayed_min) = p50(&slow);
    // The server holds every delivery 150 ms: no sample can be faster.
    assert!(delayed_min >= 150.0, "min {delayed_min}ms");
    assert!(
        delayed - fast >= 100.0 && delayed - fast < 1000.0,
        "median {fast}ms -> {delayed}ms"
    );
}

#[test]
fn alternative_protocol_settings_work_too() {
    // Room from the URL (no join frame), the server's "joined" answer as the
    // join barrier, a subprotocol, a header template, a string message template.
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let url = format!(
        "{}?room={{{{ room }}}}&user={{{{ user }}}}",
        t.server.ws_url()
    );
    let p = chat_plan(
        &d,
        &url,
        r#"join = ""
room = "r{{ room.index }}"
user = "p{{ vu.id }}"
subprotocols = ["chat.v1"]
headers = { Authorization = "Bearer {{ user }}" }
message = '{"type":"message","id":"{{ msg.id }}","sent_at":{{ msg.sent_at }},"n":{{ msg.seq }}}'
receive = { joined_type = "joined", sent_at = "/sent_at", sender = "/sender" }
"#,
    );
    let (out, s) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.unwrap();
    assert_eq!(chat(&t, "joins"), 12);
    assert_eq!(value(&s, "ws_msgs_lost", "count"), 0.0);
    assert_eq!(
        value(&s, "ws_msgs_received", "count") as u64,
        chat(&t, "deliveries")
    );
    assert!(counter(&s, "ws_msgs_received", &[("room", "r2")]) > 0);
    assert_eq!(series(&s, "ws_errors", &[]).len(), 0, "no errors");
}

/// Servers that misbehave, each on its own port.
struct Faults {
    rt: tokio::runtime::Runtime,
}

impl Faults {
    fn new() -> Self {
        Self {
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap(),
        }
    }

    fn listen(&self) -> TcpListener {
        self.rt
            .block_on(async { TcpListener::bind("127.0.0.1:0").await.unwrap() })
    }

    /// Accept connections and run `f` on each.
    fn serve<F, Fut>(&self, f: F) -> SocketAddr
    where
        F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let l = self.listen();
        let addr = l.local_addr().unwrap();
        self.rt.spawn(async move {
            while let Ok((tcp, _)) = l.accept().await {
                tokio::spawn(f(tcp));
            }
        });
        addr
    }
}

#[test]
fn faults_are_counted_by_kind_and_the_run_ends_on_time() {
    let t = Target::start(ServeOptions::default());
    let f = Faults::new();
    // Accepts the upgrade, then closes at once.
    let closes = f.serve(|tcp| async move {
        if let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await {
            let bye = CloseFrame {
                code: CloseCode::Away,
                reason: "bye".into(),
            };
            let _ = ws.close(Some(bye)).await;
            while ws.next().await.is_some() {}
        }
    });
    // Speaks WebSocket, but not JSON.
    let babbles = f.serve(|tcp| async move {
        if let Ok(ws) = tokio_tungstenite::accept_async(tcp).await {
            let (mut tx, mut rx) = ws.split();
            tokio::spawn(async move { while let Some(Ok(_)) = rx.next().await {} });
            loop {
                if tx.send(Message::text("hello")).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    // Accepts TCP and never says a word.
    let silent = f.serve(|tcp| async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(tcp);
    });
    // Answers for a moment, then stops reading: pings go unanswered.
    let stalls = f.serve(|tcp| async move {
        if let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await {
            let until = tokio::time::Instant::now() + Duration::from_millis(300);
            while let Ok(Some(Ok(_))) = tokio::time::timeout_at(until, ws.next()).await {}
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
    });
    let refused = f.listen().local_addr().unwrap(); // bound, and closed again at once
    let d = Dir::new();
    let scenario = |name: &str, url: &str, extra: &str| {
        format!(
            r#"
[scenarios.{name}]
driver = "websocket"
executor = "constant-vus"
vus = 2
duration = "3s"
url = "{url}"
room_size = 2
messages_per_minute = 120
connect_timeout = "500ms"
reconnect_delay = "100ms"
deadline = "1s"
{extra}
"#
        )
    };
    let plan = [
        scenario(
            "upgrade",
            &format!("ws://{}/api/v1/health", t.server.addr),
            "",
        ),
        scenario("closes", &format!("ws://{closes}/"), ""),
        scenario(
            "babbles",
            &format!("ws://{babbles}/"),
            "ping_interval = \"0s\"\nreceive = { joined_type = \"\" }",
        ),
        scenario("silent", &format!("ws://{silent}/"), ""),
        scenario(
            "stalls",
            &format!("ws://{stalls}/"),
            "ping_interval = \"200ms\"\npong_timeout = \"300ms\"",
        ),
        scenario("refused", &format!("ws://{refused}/"), ""),
    ]
    .concat();
    let p = d.write("plan.toml", &plan);
    let (out, s) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.unwrap();
    let errors =
        |sc: &str, kind: &str| counter(&s, "ws_errors", &[("scenario", sc), ("error", kind)]);
    assert!(errors("upgrade", "handshake status 200") > 0);
    assert!(errors("closes", "closed by peer (1001)") > 0);
    assert!(errors("babbles", "non-json message") > 10);
    assert!(errors("silent", "connect timeout") > 0);
    assert!(errors("stalls", "pong timeout") > 0);
    assert!(errors("refused", "connection refused") > 0);
    // A server that babbles still holds the session: no drop there.
    let drops = |sc: &str| -> Vec<(u64, u64)> {
        series(&s, "ws_drop_rate", &[("scenario", sc)])
            .iter()
            .map(|x| (x["hits"].as_u64().unwrap(), x["total"].as_u64().unwrap()))
            .collect()
    };
    assert!(drops("babbles").iter().all(|(h, _)| *h == 0));
    for sc in ["upgrade", "closes", "silent", "stalls", "refused"] {
        // Each of the 2 participants' last attempt may be cut by the planned end instead.
        let (hits, total) = drops(sc)
            .iter()
            .fold((0, 0), |(h, t), (a, b)| (h + a, t + b));
        assert!(
            hits > 0 && hits + 2 >= total,
            "{sc}: sessions failed or dropped: {hits} of {total}"
        );
    }
    // Ended on time: nothing waited for the 30 s graceful stop.
    let ran = s["volley"]["duration_s"].as_f64().unwrap();
    assert!(ran < 10.0, "ran {ran}s");
    // The summary names the errors.
    assert!(text(&out).contains("pong timeout (websocket stalls)"));
}

#[test]
fn bad_templates_and_pointers_stop_before_connecting() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    for (extra, want) in [
        (
            "message = { id = \"{{ msg.id }}\", at = \"{{ msg.when }}\" }",
            "unknown template value \"msg.when\"",
        ),
        ("receive = { type = \"type\" }", "must start with '/'"),
        ("message = { text = \"hi\" }", "no {{ msg.id }}"),
        ("room = \"lobby\"", "include {{ room.index }}"),
        ("reconnect = \"sometimes\"", "unknown value"),
        (
            "protocol = \"mqtt\"",
            "unknown value `mqtt`, expected `websocket` or `socket.io`",
        ),
        ("namespace = \"/chat\"", "namespace is a Socket.IO setting"),
        (
            "protocol = \"socket.io\"\nnamespace = \"chat\"",
            "must start with '/'",
        ),
        (
            "protocol = \"socket.io\"\nmessage = { data = \"{{ msg.id }}\" }",
            "needs its event name",
        ),
        (
            "protocol = \"socket.io\"\nreceive = { message_type = \"chat\" }",
            "write message_event",
        ),
        ("correlate = \"data\"", "must start with '/'"),
        ("correlate = { text_token = false }", "asks for nothing"),
        (
            "correlate = \"/nonce\"\nreceive = { id = \"/id\" }",
            "correlate and receive.id",
        ),
        (
            "message = '{\"t\":\"hi\"}'\ncorrelate = { text_token = true }",
            "no text at",
        ),
        (
            "receive = { ack_id = \"/nonce\" }",
            "needs receive.ack_type",
        ),
    ] {
        let p = chat_plan(&d, &t.server.ws_url(), extra);
        let (out, _) = run_plan(&d, &p, &[]);
        let msg = text(&out);
        assert_eq!(code(&out), 2, "{extra}: {msg}");
        assert!(msg.contains(want), "{extra}: {msg}");
        assert!(msg.contains("plan.toml:"), "located: {msg}");
    }
    assert_eq!(chat(&t, "sessions"), 0, "nothing connected");
}

/// TLS in front of the embedded target: wss:// through rustls end to end.
fn tls_terminator(f: &Faults, backend: SocketAddr) -> SocketAddr {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
    let cert = CertificateDer::from_pem_file(format!("{dir}localhost.crt")).unwrap();
    let key = PrivateKeyDer::from_pem_file(format!("{dir}localhost.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    f.serve(move |tcp| {
        let acceptor = acceptor.clone();
        async move {
            if let Ok(mut tls) = acceptor.accept(tcp).await
                && let Ok(mut up) = tokio::net::TcpStream::connect(backend).await
            {
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
            }
        }
    })
}

#[test]
fn wss_goes_through_rustls() {
    let t = Target::start(ServeOptions::default());
    let f = Faults::new();
    let tls = tls_terminator(&f, t.server.addr);
    let d = Dir::new();
    let url = format!("wss://localhost:{}/ws/chat", tls.port());
    let p = chat_plan(&d, &url, "insecure_skip_tls_verify = true");
    let (out, s) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.unwrap();
    assert_eq!(value(&s, "ws_sessions", "count"), 12.0);
    assert_eq!(value(&s, "ws_msgs_lost", "count"), 0.0);
    assert!(value(&s, "ws_msgs_received", "count") > 0.0);
    assert_eq!(
        value(&s, "ws_msgs_received", "count") as u64,
        chat(&t, "deliveries")
    );
    // The certificate is self-signed: without the opt-out, the handshake fails.
    let p = chat_plan(&d, &url, "reconnect = \"never\"");
    let (out, s) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.unwrap();
    assert_eq!(
        counter(&s, "ws_errors", &[("error", "tls handshake failed")]),
        12
    );
}

#[test]
fn ctrl_c_ends_open_sessions_at_once() {
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    // Sessions planned for a minute; graceful_stop would allow 30 s more.
    let p = chat_plan_with(&d, &t.server.ws_url(), "60s", 60, "");
    let (out, s) = run_interrupted(&d, &p, std::time::Duration::from_secs(2));
    assert_eq!(code(&out), 130, "{}", text(&out));
    assert!(
        s["volley"]["duration_s"].as_f64().unwrap() < 20.0,
        "sessions ended with the stop, not after graceful_stop"
    );
    // Ended by the user, not by the peer: no drops.
    assert_eq!(rate(&s, "ws_drop_rate", "passes"), 0);
    assert_eq!(rate(&s, "ws_sessions", "count"), 12);
}

/// Past the ephemeral ports of one source address: in a network namespace
/// of its own with 100 ephemeral ports, 250 chat sessions all connect (from
/// 127.0.0.1, then .2 and .3), and the server sees every one. Needs
/// `unshare -n` (root), as CI runs.
#[test]
fn sessions_outnumber_the_ephemeral_ports_of_one_address() {
    let allowed = std::process::Command::new("unshare")
        .args(["-n", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !allowed {
        eprintln!("skipped: `unshare -n` is not allowed here (it needs root)");
        return;
    }
    let d = Dir::new();
    let plan = d.write(
        "plan.toml",
        r#"
[scenarios.chat]
driver = "websocket"
executor = "constant-vus"
vus = 250
duration = "3s"
url = "ws://127.0.0.1:18090/ws/chat"
room_size = 5
messages_per_minute = 60
"#,
    );
    let summary = d.join("summary.json");
    let script = r#"
set -e
ip link set lo up
echo "60000 60099" > /proc/sys/net/ipv4/ip_local_port_range
"$VOLLEY" serve --addr 127.0.0.1:18090 >/dev/null 2>&1 &
server=$!
until (echo >/dev/tcp/127.0.0.1/18090) 2>/dev/null; do sleep 0.1; done
"$VOLLEY" run "$PLAN" --quiet --summary-export "$SUMMARY" >/dev/null &
run=$!
sleep 2
ss -tn state established | awk '$4 ~ /:18090$/ { split($3, a, ":"); print a[1] }' | sort -u | tr '\n' ' '
echo
wait $run
python3 -c 'import json, urllib.request; c = json.load(urllib.request.urlopen("http://127.0.0.1:18090/__volley/stats"))["chat"]; print(c["sessions"], c["joins"])'
kill $server
"#;
    let out = std::process::Command::new("unshare")
        .args(["-n", "bash", "-c", script])
        .env("VOLLEY", env!("CARGO_BIN_EXE_volley"))
        .env("PLAN", &plan)
        .env("SUMMARY", &summary)
        .output_within(RUN_LIMIT);
    let printed = text(&out);
    assert!(out.status.success(), "{printed}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = stdout.lines();
    let sources: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    // The server's own count: every session arrived and joined its room.
    assert_eq!(lines.next(), Some("250 250"), "{printed}");
    assert!(
        sources.len() >= 3 && sources.contains(&"127.0.0.2"),
        "connections came from {sources:?}: {printed}"
    );
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(value(&s, "ws_sessions", "count"), 250.0, "{printed}");
    assert_eq!(rate(&s, "ws_drop_rate", "passes"), 0, "{printed}");
    assert_eq!(value(&s, "ws_msgs_lost", "count"), 0.0);
}
