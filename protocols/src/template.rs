//! Templates in plan values: `"Bearer {{ vars.token }}"`, `"{{ rand_int(1, 100) }}"`.
//!
//! Compiled once at plan load into literal pieces and expressions resolved to
//! slots, so rendering is a walk over a short vector into a reused buffer.

use crate::data::Feeder;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// How an expression's text is escaped where it lands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escape {
    None,
    /// Inside a JSON string literal.
    Json,
    /// A URL query component.
    Query,
}

#[derive(Clone, Debug)]
enum Expr {
    VuId,
    Iter,
    Uuid,
    RandInt(i64, i64),
    RandFloat(f64, f64),
    RandString(usize),
    Choice(Vec<String>),
    Now,
    NowUnix,
    NowMs,
    Var(usize),
    Data {
        feeder: usize,
        column: usize,
    },
    Local(usize),
    /// A local that holds a number: bare (unquoted) in JSON bodies.
    LocalNum(usize),
    Const(String),
    /// A value `[setup]` captured: set once before any VU starts.
    Setup(Arc<OnceLock<Vec<String>>>, usize),
}

impl Expr {
    fn is_numeric(&self) -> bool {
        matches!(
            self,
            Expr::VuId
                | Expr::Iter
                | Expr::RandInt(..)
                | Expr::RandFloat(..)
                | Expr::NowUnix
                | Expr::NowMs
                | Expr::LocalNum(_)
        )
    }
}

#[derive(Clone, Debug)]
enum Piece {
    Lit(String),
    Expr(Expr, Escape),
}

#[derive(Clone, Debug, Default)]
pub struct Template {
    pieces: Vec<Piece>,
}

/// What `[setup]` captured, read by every VU as `{{ setup.NAME }}`: the
/// names are known when the plan loads, the values once setup has run,
/// before any VU starts. Shared read-only by every worker: reading is an
/// atomic load, no lock.
#[derive(Clone, Debug, Default)]
pub struct SetupVars {
    names: Arc<[String]>,
    values: Arc<OnceLock<Vec<String>>>,
}

impl SetupVars {
    pub fn new(names: Vec<String>) -> Self {
        Self {
            names: names.into(),
            values: Arc::default(),
        }
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Set the values, in the order of [`SetupVars::names`]; false when
    /// they were already set (a plan's setup runs once).
    pub fn set(&self, values: Vec<String>) -> bool {
        self.values.set(values).is_ok()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        let i = self.names.iter().position(|n| n == name)?;
        Some(self.values.get()?.get(i)?.as_str())
    }
}

/// Names a template may use, known at compile time.
pub struct TemplateEnv<'a> {
    pub env: &'a HashMap<String, String>,
    pub feeders: &'a [Arc<Feeder>],
    /// Variables captured somewhere in the scenario (`vars.NAME`).
    pub vars: Vec<String>,
    /// Driver-specific values such as `msg.id`, rendered from `Scope::locals`.
    pub locals: &'a [&'a str],
    /// Those of `locals` that always hold a number (rendered unquoted by
    /// `compile_json`, like `rand_int`).
    pub numeric_locals: &'a [&'a str],
    pub scenario: &'a str,
    /// Feeders referenced so far: VUs pick rows only for these.
    pub used_feeders: BTreeSet<usize>,
    /// `setup.NAME`: what `[setup]` captures; None inside `[setup]` itself.
    pub setup: Option<SetupVars>,
}

impl<'a> TemplateEnv<'a> {
    pub fn new(
        env: &'a HashMap<String, String>,
        feeders: &'a [Arc<Feeder>],
        scenario: &'a str,
    ) -> Self {
        Self {
            env,
            feeders,
            vars: Vec::new(),
            locals: &[],
            numeric_locals: &[],
            scenario,
            used_feeders: BTreeSet::new(),
            setup: None,
        }
    }

    /// Declare a captured variable; returns its slot.
    pub fn declare_var(&mut self, name: &str) -> usize {
        match self.vars.iter().position(|v| v == name) {
            Some(i) => i,
            None => {
                self.vars.push(name.to_string());
                self.vars.len() - 1
            }
        }
    }

    pub fn compile(&mut self, text: &str) -> Result<Template, TemplateError> {
        self.compile_escaped(text, Escape::None)
    }

    pub fn compile_escaped(
        &mut self,
        text: &str,
        escape: Escape,
    ) -> Result<Template, TemplateError> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                pieces.push(Piece::Lit(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| TemplateError::Unclosed(text.to_string()))?;
            let expr = self.expr(after[..end].trim())?;
            pieces.push(Piece::Expr(expr, escape));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Lit(rest.to_string()));
        }
        Ok(Template { pieces })
    }

    fn expr(&mut self, src: &str) -> Result<Expr, TemplateError> {
        if src.is_empty() {
            return Err(TemplateError::Empty);
        }
        if let Some(open) = src.find('(') {
            let name = src[..open].trim();
            let inner = src[open + 1..]
                .strip_suffix(')')
                .ok_or_else(|| TemplateError::MissingParen(src.to_string()))?;
            let args = parse_args(inner).map_err(|problem| TemplateError::Arguments {
                src: format!("{src:?}"),
                problem,
            })?;
            return self.call(name, &args, src);
        }
        if let Some(i) = self.locals.iter().position(|l| *l == src) {
            if self.numeric_locals.contains(&src) {
                return Ok(Expr::LocalNum(i));
            }
            return Ok(Expr::Local(i));
        }
        let parts: Vec<&str> = src.split('.').map(str::trim).collect();
        match parts.as_slice() {
            ["vu"] | ["vu", "id"] => Ok(Expr::VuId),
            ["iter"] | ["iteration"] => Ok(Expr::Iter),
            ["uuid"] => Ok(Expr::Uuid),
            ["now"] => Ok(Expr::Now),
            ["scenario"] => Ok(Expr::Const(self.scenario.to_string())),
            ["vars", name] => match self.vars.iter().position(|v| v == name) {
                Some(i) => Ok(Expr::Var(i)),
                None => Err(TemplateError::NotCaptured {
                    name: name.to_string(),
                    captured: list_or_none(&self.vars),
                }),
            },
            ["setup", name] => match &self.setup {
                Some(s) => match s.names.iter().position(|n| n == name) {
                    Some(i) => Ok(Expr::Setup(s.values.clone(), i)),
                    None => Err(TemplateError::NotSetUp {
                        name: name.to_string(),
                        captured: list_or_none(&s.names),
                    }),
                },
                None => Err(TemplateError::SetupHere(name.to_string())),
            },
            ["env", name] => self
                .env
                .get(*name)
                .map(|v| Expr::Const(v.clone()))
                .ok_or_else(|| TemplateError::EnvUnset(name.to_string())),
            ["data", feeder, column] => {
                let (fi, f) = self
                    .feeders
                    .iter()
                    .enumerate()
                    .find(|(_, f)| f.name == *feeder)
                    .ok_or_else(|| {
                        let names: Vec<String> =
                            self.feeders.iter().map(|f| f.name.clone()).collect();
                        TemplateError::NoFeeder {
                            feeder: feeder.to_string(),
                            known: list_or_none(&names),
                        }
                    })?;
                let column = f.column(column).ok_or_else(|| TemplateError::NoColumn {
                    file: f.file.to_string(),
                    column: column.to_string(),
                    columns: f.columns.join(", "),
                })?;
                self.used_feeders.insert(fi);
                Ok(Expr::Data { feeder: fi, column })
            }
            _ => {
                let mut known = vec![
                    "vu.id",
                    "iter",
                    "scenario",
                    "now",
                    "uuid()",
                    "rand_int(a, b)",
                    "rand_float(a, b)",
                    "rand_string(n)",
                    "choice(\"a\", \"b\")",
                    "now_unix()",
                    "now_ms()",
                    "vars.NAME",
                    "setup.NAME",
                    "data.FEEDER.COLUMN",
                    "env.NAME",
                ];
                known.extend(self.locals.iter());
                Err(TemplateError::UnknownValue {
                    src: src.to_string(),
                    known: known.join(", "),
                })
            }
        }
    }

    fn call(&mut self, name: &str, args: &[Arg], src: &str) -> Result<Expr, TemplateError> {
        let bad = |problem: String| TemplateError::Arguments {
            src: src.to_string(),
            problem,
        };
        let ints = || -> Result<(i64, i64), TemplateError> {
            match args {
                [Arg::Int(a), Arg::Int(b)] if a <= b => Ok((*a, *b)),
                [Arg::Int(_), Arg::Int(_)] => {
                    Err(bad("the first bound must not exceed the second".into()))
                }
                _ => Err(bad(format!("expects two integers, e.g. {name}(1, 100)"))),
            }
        };
        match name {
            "uuid" if args.is_empty() => Ok(Expr::Uuid),
            "now" if args.is_empty() => Ok(Expr::Now),
            "now_unix" if args.is_empty() => Ok(Expr::NowUnix),
            "now_ms" if args.is_empty() => Ok(Expr::NowMs),
            "rand_int" => ints().map(|(a, b)| Expr::RandInt(a, b)),
            "rand_float" => {
                let f = |a: &Arg| match a {
                    Arg::Int(i) => Some(*i as f64),
                    Arg::Float(f) => Some(*f),
                    Arg::Str(_) => None,
                };
                match args {
                    [a, b] => match (f(a), f(b)) {
                        (Some(a), Some(b)) if a <= b => Ok(Expr::RandFloat(a, b)),
                        _ => Err(bad("expects two numbers, low then high".into())),
                    },
                    _ => Err(bad("expects two numbers, e.g. rand_float(0, 1)".into())),
                }
            }
            "rand_string" => match args {
                [Arg::Int(n)] if *n > 0 && *n <= 65536 => Ok(Expr::RandString(*n as usize)),
                _ => Err(bad("expects a length, e.g. rand_string(12)".into())),
            },
            "choice" => {
                let mut values = Vec::new();
                for a in args {
                    values.push(match a {
                        Arg::Str(s) => s.clone(),
                        Arg::Int(i) => i.to_string(),
                        Arg::Float(f) => f.to_string(),
                    });
                }
                if values.is_empty() {
                    return Err(bad(
                        "give at least one value, e.g. choice(\"a\", \"b\")".into()
                    ));
                }
                Ok(Expr::Choice(values))
            }
            _ => Err(TemplateError::UnknownFunction(name.to_string())),
        }
    }
}

/// A template that does not compile; each says what was written and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unclosed '{{{{' in {0:?}: add the closing '}}}}'")]
    Unclosed(String),
    #[error("empty '{{{{ }}}}': put a value inside, e.g. {{{{ vu.id }}}}")]
    Empty,
    #[error("{0:?}: missing ')'")]
    MissingParen(String),
    /// The arguments of a call do not parse, or do not suit the function.
    #[error("{src}: {problem}")]
    Arguments { src: String, problem: String },
    #[error("vars.{name} is never captured in this scenario; captured: {captured}")]
    NotCaptured { name: String, captured: String },
    #[error(
        "setup.{name} is never captured by [setup]; it captures: {captured} (add captures = {{ {name} = {{ json = \"$.{name}\" }} }} to a [[setup.requests]])"
    )]
    NotSetUp { name: String, captured: String },
    #[error(
        "setup.{0} is not known here: [setup] values reach scenarios and [teardown] once setup ran; within [setup] read its own captures as vars.{0}"
    )]
    SetupHere(String),
    #[error("env.{0} is not set: export {0}=... or pass -e {0}=...")]
    EnvUnset(String),
    #[error("data.{feeder} is not a feeder; add [data.{feeder}] with a CSV file (known: {known})")]
    NoFeeder { feeder: String, known: String },
    #[error("{file} has no column {column:?}; its columns are {columns}")]
    NoColumn {
        file: String,
        column: String,
        columns: String,
    },
    #[error("unknown template value {src:?}; known: {known}")]
    UnknownValue { src: String, known: String },
    #[error(
        "unknown template function {0}(); known: uuid(), rand_int(a, b), rand_float(a, b), rand_string(n), choice(...), now(), now_unix(), now_ms()"
    )]
    UnknownFunction(String),
}

impl TemplateError {
    /// This error at `span` of the plan, with its kind (an unset
    /// `env.NAME` is one that callers advise on).
    pub fn at(self, span: std::ops::Range<usize>) -> crate::ConfigError {
        let kind = match self {
            TemplateError::EnvUnset(_) => crate::ConfigErrorKind::UnsetVariable,
            _ => crate::ConfigErrorKind::Other,
        };
        crate::ConfigError::at(span, self).with_kind(kind)
    }
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

#[derive(Clone, Debug)]
enum Arg {
    Int(i64),
    Float(f64),
    Str(String),
}

fn parse_args(s: &str) -> Result<Vec<Arg>, String> {
    let mut args = Vec::new();
    let mut chars = s.trim().chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&c) = chars.peek() else { break };
        if c == '"' || c == '\'' {
            chars.next();
            let mut out = String::new();
            loop {
                match chars.next() {
                    Some(ch) if ch == c => break,
                    Some('\\') => out.extend(chars.next()),
                    Some(ch) => out.push(ch),
                    None => return Err("unterminated string".into()),
                }
            }
            args.push(Arg::Str(out));
        } else {
            let mut tok = String::new();
            while chars.peek().is_some_and(|c| *c != ',') {
                tok.push(chars.next().unwrap_or(' '));
            }
            let tok = tok.trim();
            if let Ok(i) = tok.parse::<i64>() {
                args.push(Arg::Int(i));
            } else if let Ok(f) = tok.parse::<f64>() {
                args.push(Arg::Float(f));
            } else {
                return Err(format!("{tok:?} is not a number; quote strings"));
            }
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.next() {
            None => break,
            Some(',') => continue,
            Some(c) => return Err(format!("unexpected {c:?}; separate arguments with ','")),
        }
    }
    Ok(args)
}

/// Values a template reads while rendering.
pub struct Scope<'a> {
    pub vu: u64,
    pub iter: u64,
    pub vars: &'a [String],
    pub feeders: &'a [Arc<Feeder>],
    /// Current row per feeder (indexed like `feeders`).
    pub rows: &'a [usize],
    pub locals: &'a [&'a str],
    pub rng: &'a mut fastrand::Rng,
}

impl Template {
    /// A template of fixed text.
    pub fn literal(text: &str) -> Self {
        Template {
            pieces: if text.is_empty() {
                vec![]
            } else {
                vec![Piece::Lit(text.to_string())]
            },
        }
    }

    /// The text, when it has no expressions.
    pub fn as_static(&self) -> Option<String> {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Lit(s) => out.push_str(s),
                Piece::Expr(..) => return None,
            }
        }
        Some(out)
    }

    pub fn is_static(&self) -> bool {
        self.pieces.iter().all(|p| matches!(p, Piece::Lit(_)))
    }

    /// Append the rendered text to `out`.
    pub fn render(&self, scope: &mut Scope<'_>, out: &mut String) {
        for p in &self.pieces {
            match p {
                Piece::Lit(s) => out.push_str(s),
                Piece::Expr(e, Escape::None) => eval(e, scope, out),
                Piece::Expr(e, esc) => {
                    let start = out.len();
                    eval(e, scope, out);
                    // Most values need no escaping: only then copy them aside.
                    let clean = match esc {
                        Escape::Json => !out.as_bytes()[start..]
                            .iter()
                            .any(|&b| b == b'"' || b == b'\\' || b < 0x20),
                        _ => out.as_bytes()[start..].iter().all(|&b| unreserved(b)),
                    };
                    if !clean {
                        let raw = out.split_off(start);
                        match esc {
                            Escape::Json => json_escape_into(&raw, out),
                            _ => query_escape_into(&raw, out),
                        }
                    }
                }
            }
        }
    }

    pub fn render_string(&self, scope: &mut Scope<'_>) -> String {
        let mut s = String::new();
        self.render(scope, &mut s);
        s
    }

    /// Render with nothing but `locals` (no VU, vars or data rows): a
    /// room's name, a manifest's line.
    pub fn render_locals(&self, locals: &[&str], rng: &mut fastrand::Rng) -> String {
        let mut scope = Scope {
            vu: 0,
            iter: 0,
            vars: &[],
            feeders: &[],
            rows: &[],
            locals,
            rng,
        };
        self.render_string(&mut scope)
    }

    fn push(&mut self, piece: Piece) {
        if let (Piece::Lit(new), Some(Piece::Lit(last))) = (&piece, self.pieces.last_mut()) {
            last.push_str(new);
            return;
        }
        self.pieces.push(piece);
    }

    fn append(&mut self, other: Template) {
        for p in other.pieces {
            self.push(p);
        }
    }
}

impl<'a> TemplateEnv<'a> {
    /// Compile a TOML value (e.g. a `json = {...}` body) into one template that
    /// renders JSON text. A string that is exactly one numeric expression
    /// (`"{{ rand_int(1, 5) }}"`) renders as a JSON number.
    pub fn compile_json(&mut self, value: &serde_json::Value) -> Result<Template, TemplateError> {
        let mut t = Template::default();
        self.json_into(value, &mut t)?;
        Ok(t)
    }

    fn json_into(
        &mut self,
        value: &serde_json::Value,
        t: &mut Template,
    ) -> Result<(), TemplateError> {
        use serde_json::Value as V;
        match value {
            V::String(s) => {
                let inner = self.compile_escaped(s, Escape::Json)?;
                if let [Piece::Expr(e, _)] = inner.pieces.as_slice()
                    && e.is_numeric()
                {
                    t.push(Piece::Expr(e.clone(), Escape::None));
                    return Ok(());
                }
                t.push(Piece::Lit("\"".into()));
                for p in inner.pieces {
                    t.push(match p {
                        Piece::Lit(s) => {
                            let mut esc = String::new();
                            json_escape_into(&s, &mut esc);
                            Piece::Lit(esc)
                        }
                        e => e,
                    });
                }
                t.push(Piece::Lit("\"".into()));
            }
            V::Array(items) => {
                t.push(Piece::Lit("[".into()));
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        t.push(Piece::Lit(",".into()));
                    }
                    self.json_into(item, t)?;
                }
                t.push(Piece::Lit("]".into()));
            }
            V::Object(map) => {
                t.push(Piece::Lit("{".into()));
                for (i, (k, v)) in map.iter().enumerate() {
                    if i > 0 {
                        t.push(Piece::Lit(",".into()));
                    }
                    t.push(Piece::Lit(
                        serde_json::to_string(k).unwrap_or_default() + ":",
                    ));
                    self.json_into(v, t)?;
                }
                t.push(Piece::Lit("}".into()));
            }
            other => t.push(Piece::Lit(other.to_string())),
        }
        Ok(())
    }

    /// Compile `key=value&...` with each value URL-encoded.
    pub fn compile_query(&mut self, pairs: &[(String, String)]) -> Result<Template, TemplateError> {
        let mut t = Template::default();
        for (i, (k, v)) in pairs.iter().enumerate() {
            if i > 0 {
                t.push(Piece::Lit("&".into()));
            }
            let mut key = String::new();
            query_escape_into(k, &mut key);
            key.push('=');
            t.push(Piece::Lit(key));
            let value = self.compile_escaped(v, Escape::Query)?;
            for p in value.pieces {
                t.push(match p {
                    Piece::Lit(s) => {
                        let mut esc = String::new();
                        query_escape_into(&s, &mut esc);
                        Piece::Lit(esc)
                    }
                    e => e,
                });
            }
        }
        Ok(t)
    }
}

impl Template {
    /// Concatenate templates (e.g. base URL + path + query).
    pub fn concat(parts: impl IntoIterator<Item = Template>) -> Template {
        let mut t = Template::default();
        for p in parts {
            t.append(p);
        }
        t
    }
}

fn eval(e: &Expr, s: &mut Scope<'_>, out: &mut String) {
    match e {
        Expr::VuId => {
            let _ = write!(out, "{}", s.vu);
        }
        Expr::Iter => {
            let _ = write!(out, "{}", s.iter);
        }
        Expr::Uuid => {
            let mut bytes = [0u8; 16];
            s.rng.fill(&mut bytes);
            let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
            let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
            out.push_str(id.hyphenated().encode_lower(&mut buf));
        }
        Expr::RandInt(a, b) => {
            let _ = write!(out, "{}", s.rng.i64(*a..=*b));
        }
        Expr::RandFloat(a, b) => {
            let v = a + (b - a) * s.rng.f64();
            let _ = write!(out, "{v:.4}");
        }
        Expr::RandString(n) => {
            for _ in 0..*n {
                out.push(s.rng.alphanumeric());
            }
        }
        Expr::Choice(values) => out.push_str(&values[s.rng.usize(0..values.len())]),
        Expr::Now => {
            let _ = write!(
                out,
                "{}",
                humantime::format_rfc3339_millis(SystemTime::now())
            );
        }
        Expr::NowUnix => {
            let _ = write!(out, "{}", unix().as_secs());
        }
        Expr::NowMs => {
            let _ = write!(out, "{}", unix().as_millis());
        }
        Expr::Var(i) => out.push_str(s.vars.get(*i).map(String::as_str).unwrap_or("")),
        Expr::Data { feeder, column } => {
            let f = &s.feeders[*feeder];
            out.push_str(f.value(s.rows[*feeder], *column));
        }
        Expr::Local(i) | Expr::LocalNum(i) => out.push_str(s.locals.get(*i).copied().unwrap_or("")),
        Expr::Const(v) => out.push_str(v),
        Expr::Setup(values, i) => {
            if let Some(v) = values.get().and_then(|v| v.get(*i)) {
                out.push_str(v);
            }
        }
    }
}

fn unix() -> std::time::Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

pub fn json_escape_into(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

fn unreserved(b: u8) -> bool {
    matches!(b, b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~')
}

pub fn query_escape_into(s: &str, out: &mut String) {
    for b in s.bytes() {
        match b {
            b if unreserved(b) => out.push(b as char),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Pick;

    fn render(env: &mut TemplateEnv<'_>, t: &str, vars: &[String]) -> String {
        let t = env.compile(t).unwrap();
        let mut rng = fastrand::Rng::with_seed(7);
        let rows = vec![1usize; env.feeders.len()];
        let mut scope = Scope {
            vu: 3,
            iter: 9,
            vars,
            feeders: env.feeders,
            rows: &rows,
            locals: &[],
            rng: &mut rng,
        };
        t.render_string(&mut scope)
    }

    #[test]
    fn renders_values() {
        let envs = HashMap::from([("HOST".to_string(), "h".to_string())]);
        let feeders = vec![Arc::new(Feeder::from_rows(
            "users",
            "users.csv",
            Pick::RoundRobin,
            vec!["email".into(), "password".into()],
            vec![
                vec!["a@x".into(), "pa".into()],
                vec!["b@x".into(), "pb".into()],
            ],
        ))];
        let mut env = TemplateEnv::new(&envs, &feeders, "api");
        env.declare_var("token");
        assert_eq!(
            render(
                &mut env,
                "vu={{ vu.id }} it={{iter}} {{ scenario }} {{ env.HOST }}",
                &[]
            ),
            "vu=3 it=9 api h"
        );
        assert_eq!(
            render(&mut env, "Bearer {{ vars.token }}", &["abc".into()]),
            "Bearer abc"
        );
        assert_eq!(render(&mut env, "{{ data.users.email }}", &[]), "b@x");
        let n: i64 = render(&mut env, "{{ rand_int(5, 6) }}", &[])
            .parse()
            .unwrap();
        assert!((5..=6).contains(&n));
        assert_eq!(render(&mut env, "{{ uuid() }}", &[]).len(), 36);
        assert_eq!(render(&mut env, "{{ choice('x') }}", &[]), "x");
        assert_eq!(env.used_feeders.len(), 1);
    }

    #[test]
    fn refuses_unknown_names_with_a_hint() {
        let envs = HashMap::new();
        let mut env = TemplateEnv::new(&envs, &[], "api");
        let err = |env: &mut TemplateEnv, t: &str| env.compile(t).unwrap_err();
        assert_eq!(
            err(&mut env, "{{ vars.token }}").to_string(),
            "vars.token is never captured in this scenario; captured: none"
        );
        assert!(
            err(&mut env, "{{ data.users.email }}")
                .to_string()
                .contains("add [data.users] with a CSV file")
        );
        assert!(matches!(
            err(&mut env, "{{ bogus }}"),
            TemplateError::UnknownValue { src, .. } if src == "bogus"
        ));
        assert_eq!(
            err(&mut env, "{{ rand_int(5, 1) }}").to_string(),
            "rand_int(5, 1): the first bound must not exceed the second"
        );
        assert_eq!(
            err(&mut env, "{{ rand_int(1, x) }}").to_string(),
            "\"rand_int(1, x)\": \"x\" is not a number; quote strings"
        );
        assert_eq!(
            err(&mut env, "{{ vu.id ").to_string(),
            "unclosed '{{' in \"{{ vu.id \": add the closing '}}'"
        );
        assert_eq!(err(&mut env, "{{ }}"), TemplateError::Empty);
        assert_eq!(
            err(&mut env, "{{ env.NOPE }}").to_string(),
            "env.NOPE is not set: export NOPE=... or pass -e NOPE=..."
        );
        assert_eq!(
            err(&mut env, "{{ nope() }}"),
            TemplateError::UnknownFunction("nope".into())
        );
    }

    #[test]
    fn setup_values_render_once_set() {
        let envs = HashMap::new();
        let mut env = TemplateEnv::new(&envs, &[], "api");
        assert!(
            env.compile("{{ setup.token }}")
                .unwrap_err()
                .to_string()
                .contains("within [setup] read its own captures as vars.token")
        );
        let setup = SetupVars::new(vec!["tenant".into(), "token".into()]);
        env.setup = Some(setup.clone());
        let t = env
            .compile("Bearer {{ setup.token }} of {{ setup.tenant }}")
            .unwrap();
        assert!(
            env.compile("{{ setup.nope }}")
                .unwrap_err()
                .to_string()
                .contains("it captures: tenant, token")
        );
        // Before setup ran the values are empty; then every template sees them.
        assert_eq!(render_template(&t), "Bearer  of ");
        assert!(setup.set(vec!["t1".into(), "abc".into()]));
        assert_eq!(render_template(&t), "Bearer abc of t1");
        assert!(!setup.set(vec![]), "set once");
        assert_eq!(setup.get("token"), Some("abc"));
    }

    #[test]
    fn json_bodies_escape_and_type() {
        let envs = HashMap::new();
        let mut env = TemplateEnv::new(&envs, &[], "api");
        let v =
            serde_json::json!({"n": "{{ rand_int(2, 2) }}", "s": "a\"{{ vu.id }}", "k": [1, true]});
        let out = render_template(&env.compile_json(&v).unwrap());
        let back: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            back,
            serde_json::json!({"n": 2, "s": "a\"3", "k": [1, true]})
        );
        // A value that needs escaping is escaped where it lands.
        let v = serde_json::json!({"q": "{{ choice('say \\\"hi\\\"\\\\') }}"});
        let out = render_template(&env.compile_json(&v).unwrap());
        let back: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(back["q"], "say \"hi\"\\");
    }

    #[test]
    fn query_values_are_encoded() {
        let envs = HashMap::new();
        let mut env = TemplateEnv::new(&envs, &[], "api");
        let t = env
            .compile_query(&[("q".into(), "a b&{{ choice('c d') }}".into())])
            .unwrap();
        assert_eq!(render_template(&t), "q=a%20b%26c%20d");
    }

    fn render_template(t: &Template) -> String {
        let mut rng = fastrand::Rng::with_seed(1);
        let mut scope = Scope {
            vu: 3,
            iter: 0,
            vars: &[],
            feeders: &[],
            rows: &[],
            locals: &[],
            rng: &mut rng,
        };
        t.render_string(&mut scope)
    }
}
