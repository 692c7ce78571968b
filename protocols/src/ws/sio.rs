//! Socket.IO (protocol v5) over Engine.IO v4, WebSocket transport only: the
//! handful of packets a chat participant sends and reads, framed by hand.
//! Each Engine.IO packet is one WebSocket text frame: a type digit, then its
//! data (`4` message packets carry one Socket.IO packet:
//! `<type>[<namespace>,][<ack id>][<JSON array>]`, the namespace omitted for "/").
//! Binary events and acks (types 5 and 6) are not chat and are skipped.

use serde::Deserialize;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// The packets of one namespace, written once per scenario.
pub(crate) struct Spec {
    /// "/" or "/chat".
    pub namespace: String,
    /// `40` CONNECT, `41` DISCONNECT, as sent.
    pub connect: Utf8Bytes,
    pub disconnect: Utf8Bytes,
    /// `42` EVENT up to where the ack id would go ("42" or "42/chat,").
    pub emit: String,
    /// Request an acknowledgement for every chat message (`ack = true`).
    pub ack: bool,
}

impl Spec {
    pub fn new(namespace: &str, ack: bool) -> Self {
        // "/" is written as nothing; others as "/chat," (the comma ends the namespace).
        let ns = if namespace == "/" {
            String::new()
        } else {
            format!("{namespace},")
        };
        Self {
            namespace: namespace.to_string(),
            connect: format!("40{ns}").into(),
            disconnect: format!("41{ns}").into(),
            emit: format!("42{ns}"),
            ack,
        }
    }
}

/// A Socket.IO namespace name the protocol cannot carry.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("namespace {0:?} must start with '/' (\"/\" is the main namespace), e.g. \"/{0}\"")]
    Slash(String),
    #[error("namespace {0:?} cannot contain ',', '?', '#' or control characters")]
    Character(String),
}

/// Why a namespace name is refused (`namespace = ...`), if it is.
pub fn check_namespace(ns: &str) -> Result<(), NamespaceError> {
    if !ns.starts_with('/') {
        return Err(NamespaceError::Slash(ns.into()));
    }
    if ns.contains([',', '?', '#']) || ns.chars().any(char::is_control) {
        return Err(NamespaceError::Character(ns.into()));
    }
    Ok(())
}

/// The Engine.IO open packet's data (`0{"sid":...,"pingInterval":25000,...}`).
#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Open {
    pub ping_interval: u64,
    pub ping_timeout: u64,
}

/// The open packet, if `text` is one.
pub fn parse_open(text: &str) -> Option<Open> {
    serde_json::from_str(text.strip_prefix('0')?).ok()
}

/// Acknowledgement id of the join emit; chat messages use their sequence number + 1.
pub const JOIN_ACK: u64 = 0;

/// One received frame, as far as a participant cares.
#[derive(Debug, PartialEq)]
pub enum Packet<'a> {
    /// Engine.IO ping from the server: answer `3`.
    Ping,
    /// Engine.IO close: the server ends the session.
    Close,
    /// CONNECT to our namespace (the answer to ours).
    Connect,
    /// DISCONNECT from our namespace: the server put us out.
    Disconnect,
    /// EVENT in our namespace: `["event", payload...]`.
    Event(&'a str),
    /// ACK in our namespace, with its id.
    Ack(u64),
    /// CONNECT_ERROR for our namespace, with its data (`{"message":"..."}`).
    ConnectError(&'a str),
    /// Anything else: another namespace, pong, noop, binary packets, garbage.
    Other,
}

/// Read one text frame of the session in `namespace`. No allocation.
pub fn parse<'a>(namespace: &str, text: &'a str) -> Packet<'a> {
    let b = text.as_bytes();
    match b.first() {
        Some(b'2') => return Packet::Ping,
        Some(b'1') => return Packet::Close,
        Some(b'4') => {}
        _ => return Packet::Other,
    }
    let Some(&ty) = b.get(1) else {
        return Packet::Other;
    };
    let mut rest = &text[2..];
    let ns = if rest.starts_with('/') {
        match rest.find(',') {
            Some(i) => {
                let ns = &rest[..i];
                rest = &rest[i + 1..];
                ns
            }
            None => std::mem::take(&mut rest),
        }
    } else {
        "/"
    };
    if ns != namespace {
        return Packet::Other;
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let id = rest[..digits].parse::<u64>().ok();
    let data = &rest[digits..];
    match ty {
        b'0' => Packet::Connect,
        b'1' => Packet::Disconnect,
        b'2' => Packet::Event(data),
        b'3' => id.map_or(Packet::Other, Packet::Ack),
        b'4' => Packet::ConnectError(data),
        _ => Packet::Other,
    }
}

/// The server's reason in a CONNECT_ERROR: `{"message":"Not authorized"}`
/// (the protocol's form), `"Unable to connect"` (python-socketio's), or the data as sent.
pub fn connect_error_message(data: &str) -> String {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum E {
        Object { message: String },
        Text(String),
    }
    match serde_json::from_str::<E>(data) {
        Ok(E::Object { message } | E::Text(message)) => message,
        Err(_) if data.is_empty() => "no reason given".into(),
        Err(_) => data.chars().take(200).collect(),
    }
}

/// A Socket.IO URL as the WebSocket transport wants it: http(s) becomes
/// ws(s), an empty path becomes `/socket.io/`, and `EIO=4&transport=websocket`
/// joins the query (unless the URL already has EIO). Works on the plan's
/// template text, before compiling.
pub fn url(src: &str) -> String {
    let src = if let Some(rest) = src.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = src.strip_prefix("https://") {
        format!("wss://{rest}")
    } else {
        src.to_string()
    };
    let (before, query) = match src.split_once('?') {
        Some((b, q)) => (b.to_string(), Some(q)),
        None => (src.clone(), None),
    };
    let authority_at = before.find("://").map_or(0, |i| i + 3);
    let mut out = match before[authority_at..].find('/') {
        Some(p) if authority_at + p + 1 < before.len() => before.clone(),
        Some(p) => format!("{}/socket.io/", &before[..authority_at + p]),
        None => format!("{before}/socket.io/"),
    };
    match query {
        Some(q) if q.contains("EIO=") => {
            out.push('?');
            out.push_str(q);
        }
        Some(q) if !q.is_empty() => {
            out.push('?');
            out.push_str(q);
            out.push_str("&EIO=4&transport=websocket");
        }
        _ => out.push_str("?EIO=4&transport=websocket"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_of_the_main_namespace() {
        assert_eq!(parse("/", "2"), Packet::Ping);
        assert_eq!(parse("/", "1"), Packet::Close);
        assert_eq!(parse("/", "3"), Packet::Other);
        assert_eq!(parse("/", r#"40{"sid":"x"}"#), Packet::Connect);
        assert_eq!(
            parse("/", r#"42["chat",{"a":1}]"#),
            Packet::Event(r#"["chat",{"a":1}]"#)
        );
        assert_eq!(parse("/", "4317[]"), Packet::Ack(17));
        assert_eq!(parse("/", "43[]"), Packet::Other, "an ack without id");
        assert_eq!(
            parse("/", r#"44{"message":"no"}"#),
            Packet::ConnectError(r#"{"message":"no"}"#)
        );
        assert_eq!(parse("/", "41"), Packet::Disconnect);
        // Another namespace's packets are not ours.
        assert_eq!(parse("/", r#"42/admin,["x"]"#), Packet::Other);
        assert_eq!(
            parse("/", "451-[\"x\",{\"_placeholder\":true,\"num\":0}]"),
            Packet::Other
        );
        assert_eq!(parse("/", ""), Packet::Other);
        assert_eq!(parse("/", "4"), Packet::Other);
    }

    #[test]
    fn packets_of_a_namespace() {
        let ns = "/chat";
        assert_eq!(parse(ns, r#"40/chat,{"sid":"s"}"#), Packet::Connect);
        assert_eq!(parse(ns, "40/chat,"), Packet::Connect);
        assert_eq!(
            parse(ns, r#"42/chat,["m","hi"]"#),
            Packet::Event(r#"["m","hi"]"#)
        );
        assert_eq!(parse(ns, r#"42/chat,7["m"]"#), Packet::Event(r#"["m"]"#));
        assert_eq!(parse(ns, "43/chat,12[]"), Packet::Ack(12));
        assert_eq!(parse(ns, "41/chat,"), Packet::Disconnect);
        assert_eq!(parse(ns, r#"42["m"]"#), Packet::Other, "the main namespace");
        assert_eq!(parse(ns, r#"42/chatter,["m"]"#), Packet::Other);
        assert_eq!(
            parse(ns, r#"44/chat,{"message":"Unable to connect"}"#),
            Packet::ConnectError(r#"{"message":"Unable to connect"}"#)
        );
        assert_eq!(
            connect_error_message(r#"{"message":"Unable to connect"}"#),
            "Unable to connect"
        );
        assert_eq!(connect_error_message(""), "no reason given");
        assert_eq!(
            connect_error_message(r#""Unable to connect""#),
            "Unable to connect"
        );
    }

    #[test]
    fn specs_write_what_the_protocol_says() {
        let s = Spec::new("/", true);
        assert_eq!(
            (s.connect.as_str(), s.disconnect.as_str(), s.emit.as_str()),
            ("40", "41", "42")
        );
        let s = Spec::new("/chat", false);
        assert_eq!(
            (s.connect.as_str(), s.disconnect.as_str(), s.emit.as_str()),
            ("40/chat,", "41/chat,", "42/chat,")
        );
        assert!(
            check_namespace("chat")
                .unwrap_err()
                .to_string()
                .contains("\"/chat\"")
        );
        assert!(check_namespace("/a,b").is_err());
        assert!(check_namespace("/").is_ok());
    }

    #[test]
    fn open_packets() {
        let o = parse_open(
            r#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#,
        );
        assert_eq!(
            o,
            Some(Open {
                ping_interval: 25000,
                ping_timeout: 20000
            })
        );
        assert_eq!(parse_open(r#"{"type":"joined"}"#), None);
        assert_eq!(parse_open("0"), None);
    }

    #[test]
    fn urls() {
        let w = "EIO=4&transport=websocket";
        assert_eq!(url("http://h:5000"), format!("ws://h:5000/socket.io/?{w}"));
        assert_eq!(url("ws://h:5000/"), format!("ws://h:5000/socket.io/?{w}"));
        assert_eq!(url("https://h"), format!("wss://h/socket.io/?{w}"));
        assert_eq!(url("ws://h/io/"), format!("ws://h/io/?{w}"));
        assert_eq!(
            url("ws://h/?token={{ user }}"),
            format!("ws://h/socket.io/?token={{{{ user }}}}&{w}")
        );
        assert_eq!(
            url("ws://h/x/?EIO=4&transport=websocket&a=1"),
            "ws://h/x/?EIO=4&transport=websocket&a=1"
        );
    }
}
