//! The plan's words for what the chat driver sends and how it recognises
//! its messages: `correlate`, Socket.IO emits, keys that belong to one
//! protocol only. Checked where written, at plan load.

use crate::error::ConfigError;
use crate::ws::extract;
use serde_json::Value;
use std::ops::Range;
use toml::Spanned;

/// `correlate`, as the plan writes it.
pub(super) enum CorrSpec {
    /// Where the sender's `{{ msg.id }}` comes back: `receive.id`, else "/id".
    Default,
    /// `correlate = "/data/client_nonce"`.
    Pointer(Spanned<String>),
    /// `correlate = { text_token = true, text = "/text", message_text = "/text" }`.
    Token {
        text: Spanned<String>,
        message_text: Option<String>,
        span: Range<usize>,
    },
}

pub(super) fn correlate_spec(v: &Option<Spanned<Value>>) -> Result<CorrSpec, ConfigError> {
    let Some(v) = v else {
        return Ok(CorrSpec::Default);
    };
    let span = v.span();
    let bad = |m: &str| ConfigError::at(span.clone(), m.to_string());
    match v.get_ref() {
        Value::String(p) => {
            extract::parse_pointer(p).map_err(|e| bad(&format!("correlate: {e}")))?;
            Ok(CorrSpec::Pointer(Spanned::new(span.clone(), p.clone())))
        }
        Value::Object(map) => {
            let mut text = "/text".to_string();
            let mut message_text = None;
            let mut token = false;
            for (k, val) in map {
                match (k.as_str(), val) {
                    ("text_token", Value::Bool(b)) => token = *b,
                    ("text", Value::String(p)) => text = p.clone(),
                    ("message_text", Value::String(p)) => message_text = Some(p.clone()),
                    ("text_token", _) => return Err(bad("correlate: text_token is true or false")),
                    ("text" | "message_text", _) => {
                        return Err(bad(&format!(
                            "correlate: {k} is a JSON pointer, e.g. \"/text\""
                        )));
                    }
                    _ => {
                        return Err(bad(&format!(
                            "correlate: unknown key {k:?}; write correlate = {{ text_token = true, text = \"/text\" }} (text: where the received text is; message_text: where it is in the message sent, if elsewhere)"
                        )));
                    }
                }
            }
            if !token {
                return Err(bad(
                    "correlate: text_token = false asks for nothing; write correlate = \"/pointer\" (where the server echoes {{ msg.id }}), or leave correlate out",
                ));
            }
            for p in std::iter::once(&text).chain(message_text.as_ref()) {
                extract::parse_pointer(p).map_err(|e| bad(&format!("correlate: {e}")))?;
            }
            Ok(CorrSpec::Token {
                text: Spanned::new(span.clone(), text),
                message_text,
                span,
            })
        }
        _ => Err(bad(
            "correlate is a JSON pointer to where the server echoes {{ msg.id }} (correlate = \"/data/client_nonce\"), or { text_token = true } to find it inside the text",
        )),
    }
}

/// A Socket.IO emit as the plan writes it: `{ event = "chat", data = ... }`.
pub(super) fn sio_emit(
    v: &Spanned<Value>,
    what: &str,
) -> Result<(String, Option<Value>), ConfigError> {
    let err = |m: String| ConfigError::at(v.span(), m);
    let Value::Object(map) = v.get_ref() else {
        return Err(err(format!(
            "with protocol = \"socket.io\", {what} is an event: {what} = {{ event = \"{what}\", data = {{ ... }} }}{}",
            if what == "join" {
                " (or \"\" to send none)"
            } else {
                ""
            }
        )));
    };
    if let Some(k) = map.keys().find(|k| *k != "event" && *k != "data") {
        return Err(err(format!(
            "{what}: unknown key {k:?}; a Socket.IO event has event (its name) and data (its payload)"
        )));
    }
    match map.get("event") {
        Some(Value::String(e)) if !e.is_empty() => Ok((e.clone(), map.get("data").cloned())),
        _ => Err(err(format!(
            "{what} needs its event name: {what} = {{ event = \"{what}\", data = {{ ... }} }}"
        ))),
    }
}

/// The array a Socket.IO emit sends: `["event", data]`.
pub(super) fn sio_array(event: &str, data: Option<Value>) -> Value {
    Value::Array(
        std::iter::once(Value::String(event.to_string()))
            .chain(data)
            .collect(),
    )
}

/// Put `{{ msg.id }}` at the end of the text at `ptr`, unless it is there;
/// false when there is no text there.
pub(super) fn append_token(v: &mut Value, ptr: &str) -> bool {
    match v.pointer_mut(ptr) {
        Some(Value::String(s)) => {
            if !s.contains("msg.id") {
                s.push_str(" {{ msg.id }}");
            }
            true
        }
        _ => false,
    }
}

/// A key that only Socket.IO has, given for a plain WebSocket scenario.
pub(super) fn sio_only(key: &str, span: Option<Range<usize>>) -> Result<(), ConfigError> {
    match span {
        Some(span) => Err(ConfigError::at(
            span,
            format!("{key} is a Socket.IO setting: add protocol = \"socket.io\", or remove {key}"),
        )),
        None => Ok(()),
    }
}

/// A `receive` key that Socket.IO replaces.
pub(super) fn ws_only(
    key: &str,
    instead: &str,
    span: Option<Range<usize>>,
) -> Result<(), ConfigError> {
    match span {
        Some(span) => Err(ConfigError::at(
            span,
            format!("receive.{key} does not apply with protocol = \"socket.io\": {instead}"),
        )),
        None => Ok(()),
    }
}
