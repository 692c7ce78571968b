//! Checks (`checks = { status = 200, ... }`) and captures (`captures = { token = "$.token" }`).

use crate::duration::{Dur, format_duration};
use crate::error::ConfigError;
use http::{HeaderMap, HeaderName};
use regex::Regex;
use serde::Deserialize;
use serde_json::Value;
use serde_json_path::JsonPath;
use std::collections::BTreeMap;
use std::time::Duration;
use toml::Spanned;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChecksSpec {
    /// One status or a list of accepted statuses.
    pub status: Option<Spanned<Value>>,
    /// A string or a list of strings the body must contain.
    pub body_contains: Option<Spanned<Value>>,
    /// JSON path -> the value it must equal.
    #[serde(default)]
    pub json: BTreeMap<Spanned<String>, Value>,
    /// JSON paths that must match something.
    #[serde(default)]
    pub json_exists: Vec<Spanned<String>>,
    /// Header name -> text its value must contain.
    #[serde(default)]
    pub headers: BTreeMap<Spanned<String>, String>,
    pub max_duration: Option<Dur>,
}

pub struct Response<'a> {
    pub status: u16,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub json: Option<&'a Value>,
    pub duration: Duration,
}

enum Kind {
    Status(Vec<u16>),
    BodyContains(String),
    JsonEquals(JsonPath, Value),
    JsonExists(JsonPath),
    Header(HeaderName, String),
    MaxDuration(Duration),
}

pub struct Check {
    pub name: String,
    kind: Kind,
}

impl Check {
    pub fn eval(&self, r: &Response<'_>) -> bool {
        match &self.kind {
            Kind::Status(ok) => ok.contains(&r.status),
            Kind::BodyContains(s) => memmem(r.body, s.as_bytes()),
            Kind::JsonEquals(path, want) => r
                .json
                .and_then(|j| path.query(j).first().cloned())
                .is_some_and(|got| json_eq(&got, want)),
            Kind::JsonExists(path) => r.json.is_some_and(|j| !path.query(j).is_empty()),
            Kind::Header(name, want) => r
                .headers
                .get_all(name)
                .iter()
                .any(|v| v.to_str().is_ok_and(|v| v.contains(want.as_str()))),
            Kind::MaxDuration(max) => r.duration <= *max,
        }
    }

    pub fn needs_body(&self) -> bool {
        matches!(self.kind, Kind::BodyContains(_))
    }

    pub fn needs_json(&self) -> bool {
        matches!(self.kind, Kind::JsonEquals(..) | Kind::JsonExists(_))
    }

    pub fn needs_headers(&self) -> bool {
        matches!(self.kind, Kind::Header(..))
    }
}

// Numbers compare by value: a check for 2 accepts 2.0.
fn json_eq(got: &Value, want: &Value) -> bool {
    match (got.as_f64(), want.as_f64()) {
        (Some(a), Some(b)) => a == b,
        _ => got == want,
    }
}

fn memmem(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

pub fn parse_path(p: &Spanned<String>) -> Result<JsonPath, ConfigError> {
    JsonPath::parse(p.get_ref()).map_err(|e| {
        ConfigError::at(
            p.span(),
            format!(
                "{:?} is not a JSON path ({e}); write e.g. \"$.token\" or \"$.items[0].id\"",
                p.get_ref()
            ),
        )
    })
}

/// Statuses as written: `200` or `[200, 429]`.
pub fn statuses(v: &Spanned<Value>) -> Result<Vec<u16>, ConfigError> {
    let bad = || {
        ConfigError::at(
            v.span(),
            "status must be a status code or a list of them, e.g. 200 or [200, 429]",
        )
    };
    let one = |x: &Value| -> Result<u16, ConfigError> {
        x.as_u64()
            .filter(|s| (100..=599).contains(s))
            .map(|s| s as u16)
            .ok_or_else(bad)
    };
    match v.get_ref() {
        Value::Array(items) if !items.is_empty() => items.iter().map(one).collect(),
        Value::Array(_) => Err(bad()),
        x => Ok(vec![one(x)?]),
    }
}

pub fn compile_checks(spec: &ChecksSpec) -> Result<Vec<Check>, ConfigError> {
    let mut out = Vec::new();
    if let Some(s) = &spec.status {
        let list = statuses(s)?;
        let name = match list.as_slice() {
            [one] => format!("status is {one}"),
            many => format!(
                "status in [{}]",
                many.iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        out.push(Check {
            name,
            kind: Kind::Status(list),
        });
    }
    if let Some(b) = &spec.body_contains {
        let items: Vec<String> = match b.get_ref() {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) if a.iter().all(Value::is_string) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => {
                return Err(ConfigError::at(
                    b.span(),
                    "body_contains must be a string or a list of strings",
                ));
            }
        };
        for s in items {
            out.push(Check {
                name: format!("body contains {s:?}"),
                kind: Kind::BodyContains(s),
            });
        }
    }
    for (path, want) in &spec.json {
        out.push(Check {
            name: format!("{} == {}", path.get_ref(), want),
            kind: Kind::JsonEquals(parse_path(path)?, want.clone()),
        });
    }
    for path in &spec.json_exists {
        out.push(Check {
            name: format!("{} exists", path.get_ref()),
            kind: Kind::JsonExists(parse_path(path)?),
        });
    }
    for (name, want) in &spec.headers {
        let header = HeaderName::from_bytes(name.get_ref().as_bytes()).map_err(|_| {
            ConfigError::at(
                name.span(),
                format!("{:?} is not a header name", name.get_ref()),
            )
        })?;
        out.push(Check {
            name: format!("header {} contains {want:?}", name.get_ref()),
            kind: Kind::Header(header, want.clone()),
        });
    }
    if let Some(d) = spec.max_duration {
        out.push(Check {
            name: format!("duration <= {}", format_duration(d.0)),
            kind: Kind::MaxDuration(d.0),
        });
    }
    Ok(out)
}

pub enum CaptureKind {
    Json(JsonPath),
    Header(HeaderName),
    Regex(Regex),
}

pub struct Capture {
    pub var: usize,
    pub name: String,
    pub kind: CaptureKind,
}

impl Capture {
    pub fn needs_body(&self) -> bool {
        matches!(self.kind, CaptureKind::Regex(_))
    }

    pub fn needs_json(&self) -> bool {
        matches!(self.kind, CaptureKind::Json(_))
    }

    pub fn needs_headers(&self) -> bool {
        matches!(self.kind, CaptureKind::Header(_))
    }

    /// The captured text, or None when nothing matched.
    pub fn extract(&self, r: &Response<'_>) -> Option<String> {
        match &self.kind {
            CaptureKind::Json(path) => {
                r.json.and_then(|j| path.query(j).first()).map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
            }
            CaptureKind::Header(name) => r
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            CaptureKind::Regex(re) => {
                let text = std::str::from_utf8(r.body).ok()?;
                let caps = re.captures(text)?;
                caps.get(1)
                    .or_else(|| caps.get(0))
                    .map(|m| m.as_str().to_string())
            }
        }
    }
}

/// `"$.token"`, `{ json = "$.token" }`, `{ header = "X-Id" }` or `{ regex = "id=(\\d+)" }`.
pub fn compile_capture(name: &str, var: usize, v: &Spanned<Value>) -> Result<Capture, ConfigError> {
    let span = v.span();
    let hint = "a capture is a JSON path (\"$.token\") or one of { json = \"$.path\" }, { header = \"Name\" }, { regex = \"id=(\\\\d+)\" }";
    let (kind, text) = match v.get_ref() {
        Value::String(s) => ("json", s.as_str()),
        Value::Object(m) if m.len() == 1 => {
            let (k, val) = m.iter().next().expect("one entry");
            let text = val
                .as_str()
                .ok_or_else(|| ConfigError::at(span.clone(), hint))?;
            (k.as_str(), text)
        }
        _ => return Err(ConfigError::at(span, hint)),
    };
    let kind = match kind {
        "json" => CaptureKind::Json(parse_path(&Spanned::new(span.clone(), text.to_string()))?),
        "header" => CaptureKind::Header(HeaderName::from_bytes(text.as_bytes()).map_err(|_| {
            ConfigError::at(span.clone(), format!("{text:?} is not a header name"))
        })?),
        "regex" => CaptureKind::Regex(Regex::new(text).map_err(|e| {
            ConfigError::at(span.clone(), format!("capture {name}: bad regex: {e}"))
        })?),
        _ => return Err(ConfigError::at(span, hint)),
    };
    Ok(Capture {
        var,
        name: name.to_string(),
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp<T>(v: T) -> Spanned<T> {
        Spanned::new(0..1, v)
    }

    #[test]
    fn checks_evaluate() {
        let spec = ChecksSpec {
            status: Some(sp(serde_json::json!([200, 429]))),
            body_contains: Some(sp(serde_json::json!("ok"))),
            json: BTreeMap::from([(sp("$.n".to_string()), serde_json::json!(2))]),
            json_exists: vec![sp("$.token".to_string())],
            headers: BTreeMap::from([(sp("content-type".to_string()), "json".to_string())]),
            max_duration: Some(Dur(Duration::from_millis(10))),
        };
        let checks = compile_checks(&spec).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "application/json".parse().unwrap());
        let body = br#"{"ok":1,"n":2.0,"token":"t"}"#;
        let json: Value = serde_json::from_slice(body).unwrap();
        let r = Response {
            status: 429,
            headers: &headers,
            body,
            json: Some(&json),
            duration: Duration::from_millis(5),
        };
        for c in &checks {
            assert!(c.eval(&r), "{}", c.name);
        }
        let slow = Response {
            status: 500,
            duration: Duration::from_millis(50),
            ..r
        };
        assert!(!checks[0].eval(&slow));
        assert!(!checks.last().unwrap().eval(&slow));
        assert_eq!(checks[0].name, "status in [200, 429]");
    }

    #[test]
    fn captures_extract() {
        let headers = HeaderMap::new();
        let body = br#"{"token":"abc","id":7}"#;
        let json: Value = serde_json::from_slice(body).unwrap();
        let r = Response {
            status: 200,
            headers: &headers,
            body,
            json: Some(&json),
            duration: Duration::ZERO,
        };
        let c = compile_capture("t", 0, &sp(serde_json::json!("$.token"))).unwrap();
        assert_eq!(c.extract(&r).as_deref(), Some("abc"));
        let c = compile_capture("i", 0, &sp(serde_json::json!({"json": "$.id"}))).unwrap();
        assert_eq!(c.extract(&r).as_deref(), Some("7"));
        let c =
            compile_capture("r", 0, &sp(serde_json::json!({"regex": "\"id\":(\\d+)"}))).unwrap();
        assert_eq!(c.extract(&r).as_deref(), Some("7"));
        assert!(compile_capture("x", 0, &sp(serde_json::json!({"nope": "a"}))).is_err());
        assert!(compile_capture("x", 0, &sp(serde_json::json!("$[[["))).is_err());
    }
}
