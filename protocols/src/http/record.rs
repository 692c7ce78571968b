//! Custom metrics fed from responses: `record = { cache_hits = { header =
//! "X-Cache", equals = "HIT" }, tokens = { json = "$.usage.total_tokens" } }`
//! into metrics the plan declares with `[metrics.NAME]`.

use super::check::{Response, parse_path};
use crate::driver::DeclaredMetric;
use crate::error::ConfigError;
use crate::metrics::{MetricId, MetricKind, Recorder, Registry, SeriesId, Unit};
use http::HeaderName;
use serde::Deserialize;
use serde_json::Value;
use serde_json_path::JsonPath;
use std::collections::BTreeMap;
use std::time::Duration;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordSpec {
    pub header: Option<Spanned<String>>,
    pub json: Option<Spanned<String>>,
    pub status: Option<Spanned<bool>>,
    pub duration: Option<Spanned<bool>>,
    /// `"count"` or `"per_second"`, on `stream = "sse"` requests.
    pub events: Option<Spanned<String>>,
    /// Makes a yes/no value: equal or not.
    pub equals: Option<Spanned<Value>>,
    /// `"body"` or `"events"` (each SSE event's data).
    pub from: Option<Spanned<String>>,
}

#[derive(Debug)]
enum Source {
    Header(HeaderName),
    Json(JsonPath),
    Status,
    Duration,
    EventCount,
    EventsPerSecond,
}

/// One `record` entry, compiled.
#[derive(Debug)]
pub struct Record {
    pub metric: MetricId,
    kind: MetricKind,
    unit: Unit,
    source: Source,
    equals: Option<Value>,
    /// Read on each SSE event instead of once per response.
    pub per_event: bool,
}

/// What a source found in one response (or event), borrowed from it.
#[derive(Clone, Copy, Debug)]
enum Found<'a> {
    Missing,
    Text(&'a str),
    Json(&'a Value),
    Num(f64),
    Time(Duration),
}

/// A found value as a record sees it.
#[derive(Debug, PartialEq)]
enum Seen {
    Missing,
    Num(f64),
    Yes(bool),
    /// Something that is not a number (a string, an object).
    Other,
    Time(Duration),
}

impl Found<'_> {
    fn seen(self) -> Seen {
        match self {
            Found::Missing | Found::Json(Value::Null) => Seen::Missing,
            Found::Text(t) => text_value(t),
            Found::Json(Value::Bool(b)) => Seen::Yes(*b),
            Found::Json(Value::Number(n)) => n.as_f64().map_or(Seen::Other, Seen::Num),
            Found::Json(Value::String(s)) => text_value(s),
            Found::Json(_) => Seen::Other,
            Found::Num(n) => Seen::Num(n),
            Found::Time(d) => Seen::Time(d),
        }
    }

    /// `equals`: numbers by value, text as written, booleans as booleans.
    fn equals(self, want: &Value) -> bool {
        let text = match self {
            Found::Missing => return false,
            Found::Text(t) => t,
            Found::Json(Value::String(s)) => s.as_str(),
            Found::Json(v) => {
                return match (v.as_f64(), want.as_f64()) {
                    (Some(a), Some(b)) => a == b,
                    _ => v == want,
                };
            }
            Found::Num(n) => return want.as_f64() == Some(n),
            Found::Time(_) => return false,
        };
        match want {
            Value::String(w) => text == w,
            w => match (text.trim().parse::<f64>().ok(), w.as_f64()) {
                (Some(a), Some(b)) => a == b,
                _ => false,
            },
        }
    }
}

/// What an SSE response streamed, for the `events` sources.
#[derive(Clone, Copy, Debug, Default)]
pub struct Streamed {
    pub events: u64,
    /// From the first event to the last.
    pub span: Duration,
}

impl Record {
    pub fn needs_json(&self) -> bool {
        matches!(self.source, Source::Json(_)) && !self.per_event
    }

    pub fn needs_headers(&self) -> bool {
        matches!(self.source, Source::Header(_))
    }

    /// Record what this response holds into `id`.
    pub fn observe(&self, rec: &Recorder, id: SeriesId, r: &Response<'_>, s: &Streamed) {
        let found = match &self.source {
            Source::Header(name) => match r.headers.get(name).and_then(|v| v.to_str().ok()) {
                Some(text) => Found::Text(text),
                None => Found::Missing,
            },
            Source::Json(path) => json_found(r.json, path),
            Source::Status if r.status == 0 => Found::Missing,
            Source::Status => Found::Num(r.status as f64),
            Source::Duration => Found::Time(r.duration),
            Source::EventCount => Found::Num(s.events as f64),
            // Over the span between the first event and the last; one
            // event has no rate.
            Source::EventsPerSecond if s.events < 2 || s.span.is_zero() => Found::Missing,
            Source::EventsPerSecond => Found::Num((s.events - 1) as f64 / s.span.as_secs_f64()),
        };
        self.put(rec, id, found);
    }

    /// Record what one SSE event's JSON data holds (`from = "events"`).
    pub fn observe_event(&self, rec: &Recorder, id: SeriesId, json: Option<&Value>) {
        if let Source::Json(path) = &self.source {
            let found = json_found(json, path);
            // An event the path does not reach (a token when the usage is
            // wanted) is not an observation.
            if found.seen() != Seen::Missing {
                self.put(rec, id, found);
            }
        }
    }

    fn put(&self, rec: &Recorder, id: SeriesId, found: Found<'_>) {
        let seen = match &self.equals {
            Some(want) => Seen::Yes(found.equals(want)),
            None => found.seen(),
        };
        match self.kind {
            MetricKind::Counter => match seen {
                Seen::Num(n) if n.is_finite() && n >= 0.0 => rec.add(id, n.round() as u64),
                Seen::Yes(b) => rec.add(id, b as u64),
                // Counting what is there: e.g. events that carry a token.
                Seen::Other => rec.add(id, 1),
                _ => {}
            },
            MetricKind::Rate => match seen {
                Seen::Num(n) => rec.rate(id, n != 0.0),
                Seen::Yes(b) => rec.rate(id, b),
                Seen::Other => rec.rate(id, true),
                Seen::Missing => rec.rate(id, false),
                Seen::Time(d) => rec.rate(id, !d.is_zero()),
            },
            MetricKind::Trend => match seen {
                Seen::Time(d) => rec.time(id, d),
                Seen::Num(n) if n.is_finite() && n >= 0.0 => rec.trend(
                    id,
                    (n * crate::metrics::trend_scale(self.unit)).round() as u64,
                ),
                Seen::Yes(b) => {
                    rec.trend(id, b as u64 * crate::metrics::trend_scale(self.unit) as u64)
                }
                _ => {}
            },
            MetricKind::Gauge => match seen {
                Seen::Num(n) if n.is_finite() => rec.gauge(id, n),
                Seen::Yes(b) => rec.gauge(id, b as u8 as f64),
                Seen::Time(d) => rec.gauge(id, d.as_secs_f64() * 1000.0),
                _ => {}
            },
        }
    }
}

fn text_value(text: &str) -> Seen {
    match text.trim().parse::<f64>() {
        Ok(n) if n.is_finite() => Seen::Num(n),
        _ => Seen::Other,
    }
}

fn json_found<'a>(json: Option<&'a Value>, path: &JsonPath) -> Found<'a> {
    match json.and_then(|j| path.query(j).first()) {
        Some(v) => Found::Json(v),
        None => Found::Missing,
    }
}

/// What a request's `record` table asks for, checked against `[metrics]`.
pub fn compile(
    specs: &BTreeMap<Spanned<String>, Spanned<RecordSpec>>,
    declared: &[DeclaredMetric],
    registry: &Registry,
    stream: bool,
) -> Result<Vec<Record>, ConfigError> {
    let mut out = Vec::new();
    for (name, spec) in specs {
        let at = |msg: String| ConfigError::at(spec.span(), msg);
        let Some(decl) = declared.iter().find(|d| d.name == *name.get_ref()) else {
            let known: Vec<&str> = declared.iter().map(|d| d.name.as_str()).collect();
            return Err(ConfigError::at(
                name.span(),
                format!(
                    "record feeds metric {:?}, which the plan does not declare: add [metrics.{}] with kind = \"trend\", \"counter\", \"rate\" or \"gauge\" (declared: {})",
                    name.get_ref(),
                    name.get_ref(),
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        };
        let s = spec.get_ref();
        let mut sources = Vec::new();
        if let Some(h) = &s.header {
            let hn = HeaderName::from_bytes(h.get_ref().as_bytes()).map_err(|_| {
                ConfigError::at(h.span(), format!("{:?} is not a header name", h.get_ref()))
            })?;
            sources.push((h.span(), Source::Header(hn)));
        }
        if let Some(j) = &s.json {
            sources.push((j.span(), Source::Json(parse_path(j)?)));
        }
        if let Some(b) = &s.status {
            if !*b.get_ref() {
                return Err(ConfigError::at(
                    b.span(),
                    "status = false records nothing: write status = true or remove it",
                ));
            }
            sources.push((b.span(), Source::Status));
        }
        if let Some(b) = &s.duration {
            if !*b.get_ref() {
                return Err(ConfigError::at(
                    b.span(),
                    "duration = false records nothing: write duration = true or remove it",
                ));
            }
            sources.push((b.span(), Source::Duration));
        }
        if let Some(e) = &s.events {
            let src = match e.get_ref().as_str() {
                "count" => Source::EventCount,
                "per_second" => Source::EventsPerSecond,
                other => {
                    return Err(ConfigError::at(
                        e.span(),
                        format!(
                            "events = {other:?}: write \"count\" (events in the response) or \"per_second\" (events per second, first to last)"
                        ),
                    ));
                }
            };
            if !stream {
                return Err(ConfigError::at(
                    e.span(),
                    "events are counted on streamed responses: add stream = \"sse\" to the request",
                ));
            }
            sources.push((e.span(), src));
        }
        let source = match sources.len() {
            1 => sources.pop().expect("one").1,
            0 => {
                return Err(at(format!(
                    "record {:?} reads nothing: give one of header = \"Name\", json = \"$.path\", status = true, duration = true, events = \"count\"",
                    name.get_ref()
                )));
            }
            _ => {
                return Err(ConfigError::at(
                    sources[1].0.clone(),
                    format!(
                        "record {:?} reads from more than one place: keep one of header, json, status, duration, events",
                        name.get_ref()
                    ),
                ));
            }
        };
        let per_event = match &s.from {
            None => stream && matches!(source, Source::Json(_)),
            Some(f) => match (f.get_ref().as_str(), &source) {
                ("body", _) => false,
                ("events", Source::Json(_)) if stream => true,
                ("events", Source::Json(_)) => {
                    return Err(ConfigError::at(
                        f.span(),
                        "from = \"events\" reads SSE events: add stream = \"sse\" to the request",
                    ));
                }
                ("events", _) => {
                    return Err(ConfigError::at(
                        f.span(),
                        "from = \"events\" applies to json paths (each event's data is JSON)",
                    ));
                }
                (other, _) => {
                    return Err(ConfigError::at(
                        f.span(),
                        format!("from = {other:?}: write \"body\" or \"events\""),
                    ));
                }
            },
        };
        let kind_name = |k: MetricKind| match k {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Rate => "rate",
            MetricKind::Trend => "trend",
        };
        let mismatch = |why: &str, span: std::ops::Range<usize>| {
            ConfigError::at(
                span,
                format!(
                    "record {:?}: {why}, but [metrics.{}] is a {}; change its kind or what is recorded",
                    name.get_ref(),
                    name.get_ref(),
                    kind_name(decl.kind)
                ),
            )
        };
        if let Some(eq) = &s.equals {
            if matches!(decl.kind, MetricKind::Trend | MetricKind::Gauge) {
                return Err(mismatch(
                    "equals makes a yes/no value (a rate counts the share of yes, a counter the yeses)",
                    eq.span(),
                ));
            }
            if matches!(
                source,
                Source::Duration | Source::EventCount | Source::EventsPerSecond
            ) {
                return Err(ConfigError::at(
                    eq.span(),
                    "equals compares a header, a json value or the status",
                ));
            }
        }
        match source {
            Source::Duration
                if !matches!(decl.kind, MetricKind::Trend | MetricKind::Gauge)
                    || decl.unit != Unit::Time =>
            {
                return Err(mismatch(
                    "duration is a time (declare kind = \"trend\", unit = \"time\")",
                    spec.span(),
                ));
            }
            Source::EventsPerSecond
                if !matches!(decl.kind, MetricKind::Trend | MetricKind::Gauge) =>
            {
                return Err(mismatch(
                    "events per second is a measurement (declare kind = \"trend\")",
                    spec.span(),
                ));
            }
            _ => {}
        }
        out.push(Record {
            metric: registry.metric(&decl.name, decl.kind, decl.unit),
            kind: decl.kind,
            unit: decl.unit,
            source,
            equals: s.equals.as_ref().map(|e| e.get_ref().clone()),
            per_event,
        });
    }
    Ok(out)
}
