//! The HTTP driver: hyper 1.x, one keep-alive connection per VU, HTTP/1.1 and
//! HTTP/2 (ALPN over TLS, or prior knowledge), rustls.

mod check;
pub(crate) mod conn;
mod fetch;
mod h1;
pub(crate) mod link;
mod tcp;
mod vu;

pub use check::ChecksSpec;
pub use conn::ErrorKind;
pub use fetch::Fetcher;
pub use vu::HttpVu;

pub use crate::driver::HttpVersion;
use crate::driver::Inputs;
use crate::driver::{BuildCtx, Driver, VuEnv};
use crate::duration::{Dur, DurRange};
use crate::error::ConfigError;
use crate::metrics::{MetricId, MetricKind, Registry, Tags, Unit};
use crate::template::{Template, TemplateEnv};
use crate::weights::{Weighted, check_mix, weight};
use check::{Capture, Check};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use toml::Spanned;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flow {
    /// Every request in order, each iteration: a user flow.
    #[default]
    Sequence,
    /// One request per iteration, picked by `weight`: a traffic mix.
    Weighted,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpOptions {
    #[serde(default)]
    pub flow: Flow,
    pub requests: Vec<RequestSpec>,
    pub base_url: Option<Spanned<String>>,
    #[serde(default)]
    pub headers: BTreeMap<Spanned<String>, Spanned<String>>,
    pub timeout: Option<Dur>,
    pub insecure_skip_tls_verify: Option<bool>,
    pub http_version: Option<HttpVersion>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    pub name: Option<String>,
    pub method: Option<Spanned<String>>,
    pub url: Spanned<String>,
    #[serde(default)]
    pub headers: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub query: BTreeMap<String, Spanned<Value>>,
    pub json: Option<Spanned<Value>>,
    pub body: Option<Spanned<String>>,
    pub timeout: Option<Dur>,
    pub weight: Option<Spanned<f64>>,
    #[serde(default)]
    pub checks: ChecksSpec,
    #[serde(default)]
    pub captures: BTreeMap<String, Spanned<Value>>,
    pub think_time: Option<DurRange>,
}

/// Headers as written, lower-cased name -> (span of the key, value).
pub(crate) type HeaderSpecs = BTreeMap<String, (std::ops::Range<usize>, Spanned<String>)>;

/// Connection settings a scenario that speaks HTTP takes from its own keys,
/// else from `[defaults]`: shared by the HTTP and webhook drivers.
pub(crate) struct Client<'a> {
    pub base: Option<&'a Spanned<String>>,
    /// `[defaults]` headers, then the scenario's (which win).
    pub headers: HeaderSpecs,
    pub timeout: Duration,
    pub connector: conn::Connector,
}

impl<'a> Client<'a> {
    pub fn resolve(
        defaults: &'a crate::driver::Defaults,
        base_url: Option<&'a Spanned<String>>,
        headers: &BTreeMap<Spanned<String>, Spanned<String>>,
        timeout: Option<Dur>,
        version: Option<HttpVersion>,
        insecure: Option<bool>,
        default_timeout: Duration,
    ) -> Self {
        let mut specs = HeaderSpecs::new();
        for (k, v) in &defaults.headers {
            specs.insert(k.to_lowercase(), (v.span(), v.clone()));
        }
        for (k, v) in headers {
            specs.insert(k.get_ref().to_lowercase(), (k.span(), v.clone()));
        }
        let version = version.or(defaults.http_version).unwrap_or_default();
        let insecure = insecure
            .or(defaults.insecure_skip_tls_verify)
            .unwrap_or(false);
        Self {
            base: base_url.or(defaults.base_url.as_ref()),
            headers: specs,
            timeout: timeout
                .or(defaults.timeout)
                .map_or(default_timeout, |d| d.0),
            connector: conn::Connector::new(insecure, version),
        }
    }
}

pub(crate) struct Request {
    name: String,
    method: Method,
    url: Template,
    static_target: Option<conn::Target>,
    static_headers: HeaderMap,
    dynamic_headers: Vec<(HeaderName, Template)>,
    body: Option<Template>,
    timeout: Duration,
    checks: Vec<Check>,
    captures: Vec<Capture>,
    /// Statuses that do not count in http_req_failed.
    expected: Vec<u16>,
    needs_body: bool,
    needs_json: bool,
    /// Response headers are read by a check or capture.
    needs_headers: bool,
    think_time: Option<DurRange>,
    /// A rendered URL was invalid and the user was told.
    told_invalid_url: AtomicBool,
}

impl Request {
    /// Says once per request that its URL rendered to an invalid one: every
    /// such request counts as failed (`error="invalid url"`), nothing sent.
    fn tell_invalid_url(&self, url: &str) {
        if !self.told_invalid_url.swap(true, Ordering::Relaxed) {
            let why = conn::Target::from_url(url).err().unwrap_or_default();
            tracing::warn!(
                "request {:?}: {why}; each such request counts as failed (error=\"invalid url\") and is not sent",
                self.name
            );
        }
    }

    fn is_expected(&self, status: u16) -> bool {
        if self.expected.is_empty() {
            (200..400).contains(&status)
        } else {
            self.expected.contains(&status)
        }
    }
}

pub(crate) struct Metrics {
    reqs: MetricId,
    duration: MetricId,
    waiting: MetricId,
    connecting: MetricId,
    tls: MetricId,
    receiving: MetricId,
    failed: MetricId,
    sent: MetricId,
    received: MetricId,
    checks: MetricId,
}

impl Metrics {
    fn register(r: &Registry) -> Self {
        use MetricKind::*;
        Self {
            reqs: r.metric("http_reqs", Counter, Unit::Default),
            duration: r.metric("http_req_duration", Trend, Unit::Time),
            waiting: r.metric("http_req_waiting", Trend, Unit::Time),
            connecting: r.metric("http_req_connecting", Trend, Unit::Time),
            tls: r.metric("http_req_tls_handshaking", Trend, Unit::Time),
            receiving: r.metric("http_req_receiving", Trend, Unit::Time),
            failed: r.metric("http_req_failed", Rate, Unit::Default),
            sent: r.metric("data_sent", Counter, Unit::Data),
            received: r.metric("data_received", Counter, Unit::Data),
            checks: r.metric("checks", Rate, Unit::Default),
        }
    }
}

pub struct HttpDriver {
    tags: Tags,
    flow: Flow,
    requests: Vec<Request>,
    /// Cumulative weights for the weighted flow.
    weights: Weighted,
    connector: conn::Connector,
    inputs: Inputs,
    metrics: Metrics,
}

impl HttpDriver {
    pub fn build(options: HttpOptions, ctx: &BuildCtx<'_>) -> Result<Self, ConfigError> {
        if options.requests.is_empty() {
            return Err(ConfigError::new(format!(
                "scenario {:?} has no requests: add at least one [[scenarios.{}.requests]] with a url",
                ctx.scenario, ctx.scenario
            )));
        }
        let defaults = ctx.defaults;
        let mut env = TemplateEnv::new(ctx.env, ctx.feeders, ctx.scenario);
        for r in &options.requests {
            for name in r.captures.keys() {
                env.declare_var(name);
            }
        }
        let client = Client::resolve(
            defaults,
            options.base_url.as_ref(),
            &options.headers,
            options.timeout,
            options.http_version,
            options.insecure_skip_tls_verify,
            Duration::from_secs(60),
        );
        let mut requests = Vec::new();
        let mut weights = Weighted::default();
        for (i, spec) in options.requests.iter().enumerate() {
            let req = compile_request(
                spec,
                i,
                client.base,
                &client.headers,
                client.timeout,
                &mut env,
            )?;
            weights.push(weight(
                spec.weight.as_ref(),
                options.flow == Flow::Weighted,
            )?);
            requests.push(req);
        }
        if options.flow == Flow::Weighted {
            let first = options
                .requests
                .iter()
                .find_map(|r| r.weight.as_ref().map(Spanned::span));
            check_mix(&weights, first, "request", ctx.scenario)?;
        }
        Ok(Self {
            tags: ctx.tags.clone(),
            flow: options.flow,
            requests,
            weights,
            connector: client.connector,
            inputs: Inputs::of(&env),
            metrics: Metrics::register(ctx.registry),
        })
    }
}

fn compile_request(
    spec: &RequestSpec,
    index: usize,
    base: Option<&Spanned<String>>,
    scenario_headers: &HeaderSpecs,
    default_timeout: Duration,
    env: &mut TemplateEnv<'_>,
) -> Result<Request, ConfigError> {
    let at = |s: &Spanned<String>| {
        let span = s.span();
        move |e: String| ConfigError::at(span.clone(), e)
    };
    let method = match &spec.method {
        Some(m) => {
            let method =
                Method::from_bytes(m.get_ref().to_uppercase().as_bytes()).map_err(|_| {
                    ConfigError::at(m.span(), format!("{:?} is not an HTTP method", m.get_ref()))
                })?;
            // CONNECT asks a proxy for a tunnel: its target is host:port, not
            // a URL, and what follows is not HTTP.
            if method == Method::CONNECT {
                return Err(ConfigError::at(
                    m.span(),
                    "method CONNECT opens a tunnel through a proxy, which the HTTP driver does not do; use GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS",
                ));
            }
            method
        }
        None => Method::GET,
    };
    let raw_url = spec.url.get_ref();
    let absolute = raw_url.starts_with("http://") || raw_url.starts_with("https://");
    let mut url = if absolute {
        check_origin(raw_url).map_err(at(&spec.url))?;
        env.compile(raw_url).map_err(at(&spec.url))?
    } else {
        let base = base.ok_or_else(|| {
            ConfigError::at(
                spec.url.span(),
                format!(
                    "url {raw_url:?} is relative but there is no base_url: set base_url in [defaults] or on the scenario, or write a full http:// URL"
                ),
            )
        })?;
        let b = base.get_ref().trim_end_matches('/');
        if !(b.starts_with("http://") || b.starts_with("https://")) {
            return Err(ConfigError::at(
                base.span(),
                format!("base_url {b:?} must start with http:// or https://"),
            ));
        }
        check_origin(b).map_err(|e| ConfigError::at(base.span(), format!("base_url: {e}")))?;
        let path = if raw_url.starts_with('/') || raw_url.is_empty() {
            raw_url.to_string()
        } else {
            format!("/{raw_url}")
        };
        Template::concat([
            env.compile(b).map_err(at(base))?,
            env.compile(&path).map_err(at(&spec.url))?,
        ])
    };
    if !spec.query.is_empty() {
        let mut pairs = Vec::new();
        for (k, v) in &spec.query {
            let text = match v.get_ref() {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => {
                    return Err(ConfigError::at(
                        v.span(),
                        format!("query value {k:?} must be a string, number or boolean"),
                    ));
                }
            };
            pairs.push((k.clone(), text));
        }
        let sep = if raw_url.contains('?') { "&" } else { "?" };
        let q = env
            .compile_query(&pairs)
            .map_err(|e| ConfigError::at(spec.url.span(), e))?;
        url = Template::concat([url, Template::literal(sep), q]);
    }
    let static_target = match url.as_static() {
        Some(text) => {
            let bad = |e: String| {
                ConfigError::at(spec.url.span(), format!("{text:?} is not a valid URL: {e}"))
            };
            let uri = Uri::try_from(text.as_str()).map_err(|e| bad(e.to_string()))?;
            Some(conn::Target::checked(uri).map_err(|e| bad(e.into()))?)
        }
        None => None,
    };

    let mut static_headers = HeaderMap::new();
    let mut dynamic_headers = Vec::new();
    let mut all: BTreeMap<String, (std::ops::Range<usize>, Spanned<String>)> =
        scenario_headers.clone();
    for (k, v) in &spec.headers {
        all.insert(k.get_ref().to_lowercase(), (k.span(), v.clone()));
    }
    let has_content_type = all.contains_key("content-type");
    for (name, (key_span, value)) in &all {
        let hn = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            ConfigError::at(
                key_span.clone(),
                format!("{name:?} is not a valid header name"),
            )
        })?;
        let t = env.compile(value.get_ref()).map_err(at(value))?;
        match t.as_static() {
            Some(text) => {
                let hv = HeaderValue::from_str(&text).map_err(|_| {
                    ConfigError::at(
                        value.span(),
                        format!("{text:?} is not a valid header value"),
                    )
                })?;
                static_headers.insert(hn, hv);
            }
            None => dynamic_headers.push((hn, t)),
        }
    }
    if !static_headers.contains_key(http::header::USER_AGENT) {
        static_headers.insert(
            http::header::USER_AGENT,
            HeaderValue::from_static(concat!("volley/", env!("CARGO_PKG_VERSION"))),
        );
    }
    let body = match (&spec.json, &spec.body) {
        (Some(_), Some(b)) => {
            return Err(ConfigError::at(
                b.span(),
                "a request has either json or body, not both",
            ));
        }
        (Some(j), None) => {
            if !has_content_type {
                static_headers.insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
            }
            Some(
                env.compile_json(j.get_ref())
                    .map_err(|e| ConfigError::at(j.span(), e))?,
            )
        }
        (None, Some(b)) => Some(env.compile(b.get_ref()).map_err(at(b))?),
        (None, None) => None,
    };

    let checks = check::compile_checks(&spec.checks)?;
    let expected = match &spec.checks.status {
        Some(s) => check::statuses(s)?,
        None => Vec::new(),
    };
    let mut captures = Vec::new();
    for (name, v) in &spec.captures {
        let var = env.declare_var(name);
        captures.push(check::compile_capture(name, var, v)?);
    }
    let needs_json =
        checks.iter().any(Check::needs_json) || captures.iter().any(Capture::needs_json);
    let needs_headers =
        checks.iter().any(Check::needs_headers) || captures.iter().any(Capture::needs_headers);
    let needs_body = needs_json
        || checks.iter().any(Check::needs_body)
        || captures.iter().any(Capture::needs_body);
    let name = spec.name.clone().unwrap_or_else(|| {
        // Unnamed requests are tagged by their URL template, as k6 tags by URL.
        if spec.url.get_ref().is_empty() {
            format!("request {}", index + 1)
        } else {
            spec.url.get_ref().clone()
        }
    });
    Ok(Request {
        name,
        method,
        url,
        static_target,
        static_headers,
        dynamic_headers,
        body,
        timeout: spec.timeout.map(|d| d.0).unwrap_or(default_timeout),
        checks,
        captures,
        expected,
        needs_body,
        needs_json,
        needs_headers,
        think_time: spec.think_time,
        told_invalid_url: AtomicBool::new(false),
    })
}

/// Checks the scheme, host and port of a URL as written whenever no template
/// is among them (`http://api:8080/{{ x }}` is checked, `http://{{ host }}/`
/// is not): a typo then fails the plan at load with its position instead
/// of failing every request of the run.
pub(crate) fn check_origin(url: &str) -> Result<(), String> {
    let literal = url.split("{{").next().unwrap_or_default();
    let templated = literal.len() < url.len();
    let Some(scheme_len) = ["http://", "https://"]
        .iter()
        .find(|s| literal.starts_with(*s))
        .map(|s| s.len())
    else {
        return Ok(());
    };
    let origin = match literal[scheme_len..].find(['/', '?', '#']) {
        Some(end) => &literal[..scheme_len + end],
        None if !templated => literal,
        None => return Ok(()),
    };
    conn::Target::from_url(origin).map(|_| ())
}

impl Driver for HttpDriver {
    type Vu = HttpVu;

    fn vu(self: &Arc<Self>, env: VuEnv) -> HttpVu {
        HttpVu::new(self.clone(), env)
    }

    fn used_feeders(&self) -> &[usize] {
        &self.inputs.used
    }
}
