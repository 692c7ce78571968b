//! The chat driver against chat servers that no one here wrote, started by
//! the tests on loopback (tests/peers/, Python packages from PyPI that
//! `.ci/run` installs): a Socket.IO server on python-socketio, and a server
//! on `websockets` that gives messages ids of its own and echoes at most a
//! client nonce. What volley counts is compared with what each server counted.

mod common;

use common::*;
use std::io::{BufRead, Read, Write};
use std::process::{Child, Command, Stdio};
use volley_protocols::metrics::decode_histogram;
use volley_serve::ServeOptions;

/// Peers run at most this long (they also exit when the test drops them).
const PEER_LIMIT: u64 = 240;

/// A chat server from tests/peers/, on a free loopback port.
struct Peer {
    child: Child,
    port: u16,
    _watchdog: KillAfter,
}

impl Peer {
    fn start(script: &str, args: &[&str]) -> Peer {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers");
        let mut cmd = Command::new("python3");
        // Where .ci/run installs the packages; what is installed elsewhere is found too.
        let mut path = dir.join("python_modules").into_os_string();
        if let Some(p) = std::env::var_os("PYTHONPATH") {
            path.push(":");
            path.push(p);
        }
        cmd.arg(dir.join(script))
            .args(args)
            .args(["--lifetime", &PEER_LIMIT.to_string()])
            .env("PYTHONPATH", path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let what = format!("{cmd:?}");
        let mut child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start {what}: {e}; it needs python3 (.ci/run installs what the peers need)"
            )
        });
        let watchdog = KillAfter::new(child.id(), PEER_LIMIT);
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_default();
        let port = line
            .strip_prefix("listening ")
            .and_then(|p| p.trim().parse().ok());
        let Some(port) = port else {
            let _ = child.kill();
            let _ = child.wait();
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!(
                "the chat server did not start ({what}): {}",
                if err.is_empty() { line } else { err }
            );
        };
        Peer {
            child,
            port,
            _watchdog: watchdog,
        }
    }

    /// What the server counted: GET /stats.
    fn stats(&self) -> serde_json::Value {
        let mut s =
            std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("the peer listens");
        s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        write!(
            s,
            "GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).expect("the peer answers");
        let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        serde_json::from_str(body).unwrap_or_else(|e| panic!("stats: {e}: {answer}"))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn n(stats: &serde_json::Value, key: &str) -> u64 {
    stats[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} in {stats}"))
}

/// A counter's count, or a trend's number of samples, in one scenario.
fn of(s: &serde_json::Value, metric: &str, scenario: &str) -> u64 {
    series(s, metric, &[("scenario", scenario)])
        .iter()
        .map(|x| match x["histogram"].as_str() {
            Some(h) => decode_histogram(h).expect("a histogram").len(),
            None => x["count"].as_u64().unwrap_or(0),
        })
        .sum()
}

/// 12 participants in 3 rooms of 4, two messages a second each: the first
/// comes at least 0.25 s after joining, when the whole room is in.
fn scenario(name: &str, url: &str, duration: &str, extra: &str) -> String {
    format!(
        r#"
[scenarios.{name}]
driver = "websocket"
executor = "constant-vus"
vus = 12
duration = "{duration}"
url = "{url}"
room_size = 4
messages_per_minute = 120
deadline = "1s"
{extra}
"#
    )
}

#[test]
fn socketio_chat_counts_equal_the_python_socketio_servers() {
    // The server pings every second and drops a client that has not answered
    // within a second: a 4 s run with no drop shows the Engine.IO heartbeat.
    let peer = Peer::start(
        "socketio_chat.py",
        &[
            "--namespace",
            "/chat",
            "--ping-interval",
            "1",
            "--ping-timeout",
            "1",
        ],
    );
    let d = Dir::new();
    let url = format!("http://127.0.0.1:{}", peer.port);
    let p = d.write(
        "plan.toml",
        &scenario(
            "sio",
            &url,
            "4s",
            r#"protocol = "socket.io"
namespace = "/chat"
ack = true
join = { event = "join", data = { room = "{{ room }}", user = "{{ user }}" } }
message = { event = "chat", data = { text = "{{ rand_string(16) }}", nonce = "{{ msg.id }}" } }
correlate = "/nonce"
receive = { sender = "/user" }

[thresholds]
ws_msgs_lost = ["count==0"]
ws_acks_missing = ["count==0"]
ws_drop_rate = ["rate==0"]
"#,
        ),
    );
    let (out, s) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.unwrap();
    let server = peer.stats();
    let sent = value(&s, "ws_msgs_sent", "count") as u64;
    let received = value(&s, "ws_msgs_received", "count") as u64;
    assert!(sent > 50, "sent {sent}");
    assert_eq!(sent, n(&server, "messages"), "{server}");
    assert_eq!(received, n(&server, "deliveries"), "{server}");
    assert_eq!(value(&s, "ws_msgs_lost", "count"), 0.0);
    assert_eq!(value(&s, "ws_msg_latency", "count") as u64, received);
    // Every message acknowledged, and timed.
    assert_eq!(value(&s, "ws_ack_latency", "count") as u64, sent);
    assert_eq!(n(&server, "acks"), sent);
    assert_eq!(value(&s, "ws_acks_missing", "count"), 0.0);
    // Connected, joined, left: the server saw each participant once.
    assert_eq!(value(&s, "ws_sessions", "count"), 12.0);
    assert_eq!(value(&s, "ws_drop_rate", "passes"), 0.0);
    for k in ["connects", "joins", "disconnects"] {
        assert_eq!(n(&server, k), 12, "{k}: {server}");
    }
    assert_eq!(series(&s, "ws_errors", &[]).len(), 0, "{}", text(&out));
}

#[test]
fn socketio_main_namespace_text_tokens_and_refused_namespaces() {
    // The main namespace, a join answered by an event, the payload a string
    // with volley's token inside; and a namespace the server does not have.
    let peer = Peer::start(
        "socketio_chat.py",
        &["--namespace", "/", "--joined-event", "joined"],
    );
    let d = Dir::new();
    let url = format!("ws://127.0.0.1:{}/socket.io/", peer.port);
    let plan = [
        scenario(
            "main",
            &url,
            "3s",
            r#"protocol = "socket.io"
joined_event = "joined"
join = { event = "join", data = { room = "{{ room }}", user = "{{ user }}" } }
message = { event = "chat", data = "hello from {{ user }}" }
correlate = { text_token = true, message_text = "" }
"#,
        ),
        scenario(
            "nope",
            &url,
            "3s",
            "protocol = \"socket.io\"\nnamespace = \"/nope\"\nreconnect = \"never\"",
        ),
    ]
    .concat();
    let p = d.write("plan.toml", &plan);
    let (out, s) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.unwrap();
    let server = peer.stats();
    let sent = of(&s, "ws_msgs_sent", "main");
    let received = of(&s, "ws_msgs_received", "main");
    assert!(sent > 30, "sent {sent}");
    assert_eq!(sent, n(&server, "messages"), "{server}");
    assert_eq!(received, n(&server, "deliveries"), "{server}");
    assert_eq!(of(&s, "ws_msgs_lost", "main"), 0);
    assert_eq!(n(&server, "joins"), 12);
    // The other namespace: refused by the server (CONNECT_ERROR), said so.
    let refused = counter(
        &s,
        "ws_errors",
        &[("scenario", "nope"), ("error", "socket.io connect_error")],
    );
    assert_eq!(refused, 12, "{}", text(&out));
    assert!(
        text(&out).contains("refused to connect to Socket.IO namespace \"/nope\""),
        "{}",
        text(&out)
    );
}

#[test]
fn server_assigned_ids_correlate_by_echoed_nonce_or_text_token() {
    // Three servers that replace message ids with their own: volley finds its
    // messages by the nonce they echo, by a token in the text, and (as before
    // `correlate`) not at all. The second withholds every 5th acknowledgement.
    let peers = [
        Peer::start("nonce_chat.py", &[]),
        Peer::start("nonce_chat.py", &["--withhold-ack-every", "5"]),
        Peer::start("nonce_chat.py", &[]),
    ];
    let common = r#"join = { op = "join", room = "{{ room }}", user = "{{ user }}" }
receive = { type = "/op", joined_type = "joined", sender = "/data/from", ack_type = "ack" }"#;
    let url = |i: usize| format!("ws://127.0.0.1:{}/", peers[i].port);
    let plan = [
        scenario(
            "nonce",
            &url(0),
            "3s",
            &format!(
                "{common}\nmessage = {{ op = \"send\", text = \"{{{{ rand_string(16) }}}}\", nonce = \"{{{{ msg.id }}}}\" }}\ncorrelate = \"/data/client_nonce\""
            ),
        ),
        scenario(
            "token",
            &url(1),
            "3s",
            &format!(
                "{common}\nmessage = {{ op = \"send\", text = \"hello {{{{ rand_string(16) }}}}\" }}\ncorrelate = {{ text_token = true, text = \"/data/text\" }}"
            ),
        ),
        // Before correlate: the only id is the server's, and none is ours.
        scenario(
            "server_id",
            &url(2),
            "3s",
            r#"join = { op = "join", room = "{{ room }}", user = "{{ user }}" }
message = { op = "send", text = "{{ rand_string(16) }}", nonce = "{{ msg.id }}" }
receive = { type = "/op", joined_type = "joined", sender = "/data/from", id = "/data/id", sent_at = "/data/created_at" }"#,
        ),
    ]
    .concat();
    let d = Dir::new();
    let p = d.write("plan.toml", &plan);
    let (out, s) = run_plan(&d, &p, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let s = s.unwrap();
    for (i, sc) in ["nonce", "token", "server_id"].into_iter().enumerate() {
        let server = peers[i].stats();
        let sent = of(&s, "ws_msgs_sent", sc);
        let received = of(&s, "ws_msgs_received", sc);
        assert!(sent > 30, "{sc}: sent {sent}");
        assert_eq!(sent, n(&server, "messages"), "{sc}: {server}");
        assert_eq!(received, n(&server, "deliveries"), "{sc}: {server}");
        assert_eq!(of(&s, "ws_msg_latency", sc), received, "{sc}");
        let lost = of(&s, "ws_msgs_lost", sc);
        if sc == "server_id" {
            assert_eq!(lost, received, "{sc}: every message counted lost");
            continue;
        }
        assert_eq!(lost, 0, "{sc}");
        // The server's acknowledgements each timed, those it withheld missing.
        let (acks, withheld) = (n(&server, "acks"), n(&server, "acks_withheld"));
        assert_eq!(acks + withheld, sent, "{sc}: {server}");
        assert_eq!(withheld, if sc == "token" { sent / 5 } else { 0 }, "{sc}");
        assert_eq!(of(&s, "ws_ack_latency", sc), acks, "{sc}");
        assert_eq!(of(&s, "ws_acks_missing", sc), withheld, "{sc}");
    }
}

#[test]
fn socketio_against_a_plain_websocket_server_fails_the_engine_io_handshake() {
    // volley serve's chat is plain WebSocket: it says nothing until joined
    // (no open packet), or, with the room in the URL, answers the join first.
    let t = Target::start(ServeOptions::default());
    let d = Dir::new();
    let ws = t.server.ws_url();
    let plan = [
        scenario(
            "silent",
            &ws,
            "3s",
            "protocol = \"socket.io\"\nconnect_timeout = \"1s\"\nreconnect = \"never\"",
        ),
        scenario(
            "chatty",
            &format!("{ws}?room=r{{{{ room.index }}}}"),
            "3s",
            "protocol = \"socket.io\"\nconnect_timeout = \"1s\"\nreconnect = \"never\"",
        ),
    ]
    .concat();
    let p = d.write("plan.toml", &plan);
    let (out, s) = run_plan(&d, &p, &[]);
    let printed = text(&out);
    assert_eq!(code(&out), 0, "{printed}");
    let s = s.unwrap();
    let errors =
        |sc: &str, kind: &str| counter(&s, "ws_errors", &[("scenario", sc), ("error", kind)]);
    // Every participant failed to connect, with the handshake named.
    assert_eq!(
        errors("silent", "engine.io handshake: no open packet"),
        12,
        "{printed}"
    );
    assert_eq!(
        errors(
            "chatty",
            "engine.io handshake: first frame not an open packet"
        ),
        12,
        "{printed}"
    );
    assert_eq!(value(&s, "ws_drop_rate", "rate"), 1.0);
    assert_eq!(value(&s, "ws_msgs_sent", "count"), 0.0);
    for hint in [
        "sent no Engine.IO open packet within connect_timeout (1s)",
        "not an Engine.IO open packet",
        "For a plain WebSocket server, remove protocol = \"socket.io\"",
    ] {
        assert!(printed.contains(hint), "{hint}: {printed}");
    }
    assert!(
        s["volley"]["duration_s"].as_f64().unwrap() < 10.0,
        "no hang: {printed}"
    );
}
