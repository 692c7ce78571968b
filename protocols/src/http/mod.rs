//! The HTTP driver: one keep-alive connection per VU, HTTP/1.1 (our own,
//! h1.rs) and HTTP/2 (the h2 crate; ALPN over TLS, or prior knowledge), rustls.

mod body;
mod check;
pub(crate) mod conn;
mod cookies;
mod describe;
mod fetch;
mod h1;
pub(crate) mod link;
mod record;
mod sse;
mod tcp;
mod vu;

pub use check::ChecksSpec;
pub use conn::{BadUrl, Connector, ErrorKind, TlsFiles};
pub use fetch::{FetchError, Fetcher};
pub use record::RecordSpec;
pub use vu::HttpVu;

use crate::connection::ConnKeys;
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

crate::connection::with_connection_keys! {
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct HttpOptions {
        #[serde(default)]
        pub flow: Flow,
        pub requests: Vec<RequestSpec>,
        ..connection,
        /// A cookie jar per VU: `"on"` (the default, as in k6) or `"off"`.
        pub cookies: Option<Switch>,
        /// `"iteration"`: each iteration starts with an empty jar.
        pub reset_cookies: Option<ResetCookies>,
        /// Redirects followed per request (10 unless set; 0 follows none).
        pub max_redirects: Option<u32>,
        /// What a 429 does: `"count"` (the default) or `"honor"` its Retry-After.
        pub on_429: Option<On429>,
        /// The longest Retry-After honored (60s unless set).
        pub max_retry_after: Option<Dur>,
        /// HTTP/2: how many VUs (of this scenario, on one worker thread) share a
        /// connection, each with its own stream (1 unless set: a VU owns its
        /// connection).
        pub vus_per_connection: Option<Spanned<i64>>,
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Switch {
    #[default]
    On,
    Off,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResetCookies {
    /// The jar lives as long as the VU.
    #[default]
    Never,
    Iteration,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum On429 {
    /// A 429 is a response like any other (tagged status:429).
    #[default]
    Count,
    /// The VU waits the Retry-After before its next request.
    Honor,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamKind {
    /// Server-sent events (`text/event-stream`), as LLM APIs stream tokens.
    Sse,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    pub name: Option<Spanned<String>>,
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
    /// A file as the body (relative to the plan), templated unless
    /// `body_file_raw = true`.
    pub body_file: Option<Spanned<String>>,
    pub body_file_raw: Option<bool>,
    /// application/x-www-form-urlencoded fields.
    pub form: Option<Spanned<Value>>,
    /// multipart/form-data fields and files.
    pub multipart: Option<Spanned<Value>>,
    /// Cookies put in the VU's jar (for this request's site) before it is sent.
    #[serde(default)]
    pub cookies: BTreeMap<Spanned<String>, Spanned<String>>,
    pub max_redirects: Option<u32>,
    /// Run in the VU's first iteration only (log in once, then loop).
    #[serde(default)]
    pub once: bool,
    pub group: Option<Spanned<String>>,
    /// Tags on this request's samples; values are templates.
    #[serde(default)]
    pub tags: BTreeMap<Spanned<String>, Spanned<String>>,
    /// Custom metrics fed from the response.
    #[serde(default)]
    pub record: BTreeMap<Spanned<String>, Spanned<RecordSpec>>,
    pub stream: Option<StreamKind>,
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
    pub version: HttpVersion,
    pub insecure: bool,
    pub connector: conn::Connector,
}

/// The certificates of a PEM file, parsed as X.509 now rather than at the
/// first handshake; the error says what is wrong and what to give.
pub fn pem_certificates(
    bytes: &[u8],
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let hint = "give a PEM file with -----BEGIN CERTIFICATE----- blocks";
    let list = rustls::pki_types::CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not PEM ({e}); {hint}"))?;
    if list.is_empty() {
        return Err(format!("holds no certificate; {hint}"));
    }
    for c in &list {
        rustls::RootCertStore::empty()
            .add(c.clone())
            .map_err(|e| format!("a certificate does not parse ({e}); {hint}"))?;
    }
    Ok(list)
}

/// What the TLS files are called where they are given: a plan's keys, or
/// the command line's flags.
pub struct TlsNames {
    pub cert: &'static str,
    pub key: &'static str,
    pub ca: &'static str,
}

const PLAN_TLS_NAMES: TlsNames = TlsNames {
    cert: "client_cert",
    key: "client_key",
    ca: "ca_file",
};

/// `client_cert`, `client_key` and `ca_file` (the scenario's, else
/// `[defaults]`), read and checked at load.
fn tls_files(
    base_dir: &std::path::Path,
    cert: Option<&Spanned<String>>,
    key: Option<&Spanned<String>>,
    ca: Option<&Spanned<String>>,
    names: &TlsNames,
) -> Result<conn::TlsFiles, ConfigError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs =
        |key: &str, path: &Spanned<String>| -> Result<Vec<CertificateDer<'static>>, ConfigError> {
            let (p, bytes) = body::read_file(base_dir, key, path)?;
            pem_certificates(&bytes).map_err(|why| {
                ConfigError::at(
                    path.span(),
                    format!("{key} {:?} ({}): {why}", path.get_ref(), p.display()),
                )
            })
        };
    let mut files = conn::TlsFiles::default();
    if let Some(ca) = ca {
        files.roots = certs(names.ca, ca)?;
    }
    match (cert, key) {
        (None, None) => {}
        (Some(c), None) => {
            return Err(ConfigError::at(
                c.span(),
                format!(
                    "{} needs {} (the PEM private key of that certificate)",
                    names.cert, names.key
                ),
            ));
        }
        (None, Some(k)) => {
            return Err(ConfigError::at(
                k.span(),
                format!(
                    "{} needs {} (the PEM certificate of that key)",
                    names.key, names.cert
                ),
            ));
        }
        (Some(c), Some(k)) => {
            let chain = certs(names.cert, c)?;
            let (p, bytes) = body::read_file(base_dir, names.key, k)?;
            let key = PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
                ConfigError::at(
                    k.span(),
                    format!(
                        "{} {:?} ({}): no PEM private key ({e}); give a file with a -----BEGIN PRIVATE KEY----- (or RSA/EC PRIVATE KEY) block",
                        names.key,
                        k.get_ref(),
                        p.display()
                    ),
                )
            })?;
            files.client = Some((chain, key));
        }
    }
    Ok(files)
}

/// A connector with TLS files named on the command line (`volley webhook
/// send --ca-file ...`); errors name the flags.
pub fn cli_connector(
    insecure: bool,
    cert: Option<&str>,
    key: Option<&str>,
    ca: Option<&str>,
    names: &TlsNames,
) -> Result<conn::Connector, ConfigError> {
    for (flag, path) in [(names.cert, cert), (names.key, key), (names.ca, ca)] {
        if let Some(path) = path
            && let Err(e) = std::fs::metadata(path)
        {
            return Err(ConfigError::new(format!(
                "{flag} {path:?}: cannot read it: {e}"
            )));
        }
    }
    let at = |p: Option<&str>| p.map(|p| Spanned::new(0..0, p.to_string()));
    let files = tls_files(
        std::path::Path::new("."),
        at(cert).as_ref(),
        at(key).as_ref(),
        at(ca).as_ref(),
        names,
    )
    .map_err(|e| ConfigError::new(e.message))?;
    conn::Connector::with_tls(insecure, HttpVersion::Auto, &files).map_err(ConfigError::new)
}

impl<'a> Client<'a> {
    /// `client_cert`, `client_key` and `ca_file`, the scenario's else
    /// `[defaults]`', read and checked at load into the connector.
    pub fn with_tls_files(
        &mut self,
        base_dir: &std::path::Path,
        defaults: &crate::driver::Defaults,
        keys: ConnKeys<'_>,
    ) -> Result<(), ConfigError> {
        let cert = keys.client_cert.or(defaults.client_cert.as_ref());
        let key = keys.client_key.or(defaults.client_key.as_ref());
        let ca = keys.ca_file.or(defaults.ca_file.as_ref());
        let files = tls_files(base_dir, cert, key, ca, &PLAN_TLS_NAMES)?;
        if files.is_empty() {
            return Ok(());
        }
        self.connector =
            conn::Connector::with_tls(self.insecure, self.version, &files).map_err(|e| {
                let span = cert.or(ca).map(Spanned::span).unwrap_or_default();
                ConfigError::at(span, e)
            })?;
        Ok(())
    }

    pub fn resolve(
        defaults: &'a crate::driver::Defaults,
        keys: ConnKeys<'a>,
        default_timeout: Duration,
    ) -> Self {
        let mut specs = HeaderSpecs::new();
        for (k, v) in &defaults.headers {
            specs.insert(k.to_lowercase(), (v.span(), v.clone()));
        }
        for (k, v) in keys.headers {
            specs.insert(k.get_ref().to_lowercase(), (k.span(), v.clone()));
        }
        let version = keys
            .http_version
            .or(defaults.http_version)
            .unwrap_or_default();
        let insecure = keys
            .insecure_skip_tls_verify
            .or(defaults.insecure_skip_tls_verify)
            .unwrap_or(false);
        Self {
            base: keys.base_url.or(defaults.base_url.as_ref()),
            headers: specs,
            timeout: keys
                .timeout
                .or(defaults.timeout)
                .map_or(default_timeout, |d| d.0),
            version,
            insecure,
            connector: conn::Connector::new(insecure, version),
        }
    }
}

pub(crate) struct Request {
    name: String,
    /// `name` was written; else it is the URL template and redirect hops
    /// are named by their own URL, as k6 names unnamed requests.
    named: bool,
    method: Method,
    url: Template,
    static_target: Option<conn::Target>,
    /// The static URL as the cookie jar keys it.
    static_url: Option<url::Url>,
    static_headers: HeaderMap,
    dynamic_headers: Vec<(HeaderName, Template)>,
    body: body::Body,
    timeout: Duration,
    checks: Vec<Check>,
    captures: Vec<Capture>,
    /// Statuses that do not count in http_req_failed.
    expected: Vec<u16>,
    needs_body: bool,
    needs_json: bool,
    /// Response headers are read by a check, capture or record.
    needs_headers: bool,
    think_time: Option<DurRange>,
    /// A rendered URL was invalid and the user was told.
    told_invalid_url: AtomicBool,
    max_redirects: u32,
    once: bool,
    /// Index into `HttpDriver::groups`.
    group: Option<usize>,
    /// The scenario's tags with name, group and the request's fixed tags.
    tags: Tags,
    /// Request tags whose values are templates, rendered per request.
    dynamic_tags: Vec<(String, Template)>,
    cookies: Vec<(String, Template)>,
    records: Vec<record::Record>,
    stream: bool,
}

impl Request {
    /// Says once per request that its URL rendered to an invalid one: every
    /// such request counts as failed (`error="invalid url"`), nothing sent.
    fn tell_invalid_url(&self, url: &str) {
        if !self.told_invalid_url.swap(true, Ordering::Relaxed) {
            let why = conn::Target::from_url(url)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
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
    throttled: MetricId,
    group_duration: MetricId,
    first_event: MetricId,
    events: MetricId,
    gap: MetricId,
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
            throttled: r.metric("http_req_throttled", Trend, Unit::Time),
            group_duration: r.metric("group_duration", Trend, Unit::Time),
            first_event: r.metric("http_stream_first_event", Trend, Unit::Time),
            events: r.metric("http_stream_events", Counter, Unit::Default),
            gap: r.metric("http_stream_gap", Trend, Unit::Time),
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
    cookies: bool,
    reset_cookies: bool,
    /// `on_429 = "honor"`: the longest Retry-After waited.
    honor_429: Option<Duration>,
    /// Group tag values (`::checkout`), indexed by `Request::group`.
    groups: Vec<String>,
    /// `[setup]` and `[teardown]`: the first request that fails (an error,
    /// a status not accepted, a capture missing) ends the phase.
    strict: bool,
    /// Names of the captured vars, in slot order.
    var_names: Vec<String>,
    /// `vus_per_connection` above 1: VUs share HTTP/2 connections.
    sharing: Option<link::Sharing>,
}

/// The most VUs one HTTP/2 connection takes (servers allow 100 to 256
/// concurrent streams; nginx 128 by default).
const MAX_VUS_PER_CONNECTION: i64 = 1000;

impl HttpDriver {
    pub fn build(options: HttpOptions, ctx: &BuildCtx<'_>) -> Result<Self, ConfigError> {
        if options.requests.is_empty() {
            return Err(ConfigError::new(format!(
                "scenario {:?} has no requests: add at least one [[scenarios.{}.requests]] with a url",
                ctx.scenario, ctx.scenario
            )));
        }
        let defaults = ctx.defaults;
        let mut env = ctx.templates();
        for r in &options.requests {
            for name in r.captures.keys() {
                env.declare_var(name);
            }
        }
        let keys = options.connection();
        let mut client = Client::resolve(defaults, keys, Duration::from_secs(60));
        client.with_tls_files(&ctx.base_dir, defaults, keys)?;
        let sharing = match &options.vus_per_connection {
            None => None,
            Some(v) if !(1..=MAX_VUS_PER_CONNECTION).contains(v.get_ref()) => {
                return Err(ConfigError::at(
                    v.span(),
                    format!(
                        "vus_per_connection = {} is out of range: give 1 to {MAX_VUS_PER_CONNECTION} (VUs sharing one HTTP/2 connection, a stream each), e.g. vus_per_connection = 10",
                        v.get_ref()
                    ),
                ));
            }
            Some(v) if *v.get_ref() > 1 && client.version == HttpVersion::Http1 => {
                return Err(ConfigError::at(
                    v.span(),
                    "vus_per_connection shares HTTP/2 connections, and this scenario speaks HTTP/1.1: set http_version = \"2\" (or \"auto\" for https://), or remove vus_per_connection",
                ));
            }
            Some(v) => (*v.get_ref() > 1).then(|| link::Sharing::new(*v.get_ref() as usize)),
        };
        let redirects = options
            .max_redirects
            .or(defaults.max_redirects)
            .unwrap_or(10);
        let mut groups: Vec<String> = Vec::new();
        let mut requests = Vec::new();
        let mut weights = Weighted::default();
        let weighted = options.flow == Flow::Weighted;
        let at = RequestCtx {
            base: client.base,
            headers: &client.headers,
            timeout: client.timeout,
            redirects,
            tags: &ctx.tags,
            build: ctx,
        };
        for (i, spec) in options.requests.iter().enumerate() {
            let req = compile_request(spec, i, &at, &mut env, &mut groups)?;
            if spec.once && weighted {
                // Run before the mix in the VU's first iteration, never picked.
                if let Some(w) = &spec.weight {
                    return Err(ConfigError::at(
                        w.span(),
                        "a once = true request runs first in the VU's first iteration, not by weight: remove its weight",
                    ));
                }
                weights.push(0.0);
            } else {
                weights.push(weight(spec.weight.as_ref(), weighted)?);
            }
            requests.push(req);
        }
        if weighted {
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
            cookies: options.cookies.unwrap_or_default() == Switch::On,
            reset_cookies: options.reset_cookies.unwrap_or_default() == ResetCookies::Iteration,
            honor_429: (options.on_429.unwrap_or_default() == On429::Honor).then(|| {
                options
                    .max_retry_after
                    .map_or(Duration::from_secs(60), |d| d.0)
            }),
            groups,
            strict: false,
            var_names: env.vars.clone(),
            sharing,
        })
    }

    /// `[setup]` or `[teardown]` (`phase`): requests run once, in order,
    /// by one VU, each of which must succeed. Its samples carry the
    /// `group` tag `::setup` or `::teardown` (as k6 tags its setup), so
    /// scenario thresholds never see them.
    pub fn build_phase(
        phase: &str,
        options: HttpOptions,
        ctx: &BuildCtx<'_>,
    ) -> Result<Self, ConfigError> {
        if options.requests.is_empty() {
            return Err(ConfigError::new(format!(
                "[{phase}] has no requests: add at least one [[{phase}.requests]] with a url"
            )));
        }
        if options.flow != Flow::Sequence {
            return Err(ConfigError::new(format!(
                "[{phase}] runs its requests once, in order: remove flow = \"weighted\""
            )));
        }
        for r in &options.requests {
            let refuse = |key: &str, span: std::ops::Range<usize>| {
                Err(ConfigError::at(
                    span,
                    format!("[{phase}] runs each request once, in order: remove {key}"),
                ))
            };
            if let Some(w) = &r.weight {
                return refuse("weight", w.span());
            }
            if r.once {
                return refuse("once", r.url.span());
            }
            if let Some(g) = &r.group {
                return refuse(
                    &format!("group (its requests are in the group ::{phase})"),
                    g.span(),
                );
            }
        }
        let mut d = Self::build(options, ctx)?;
        d.strict = true;
        Ok(d)
    }

    /// Run the requests of a `[setup]` or `[teardown]` once, recording
    /// into `rec`: the captured values (named by [`HttpDriver::captures`]),
    /// or why a request failed.
    pub async fn run_phase(
        self: &Arc<Self>,
        rec: crate::metrics::Recorder,
        seed: u64,
    ) -> Result<Vec<String>, String> {
        let mut vu = HttpVu::new(
            self.clone(),
            VuEnv {
                index: 0,
                recorder: rec,
                seed,
            },
        );
        vu.run_phase().await
    }

    /// Names of the values the requests capture, in the order
    /// [`HttpDriver::run_phase`] returns them.
    pub fn captures(&self) -> &[String] {
        &self.var_names
    }

    pub fn request_count(&self) -> usize {
        self.requests.len()
    }
}

/// What every request of a scenario is compiled against.
struct RequestCtx<'a> {
    base: Option<&'a Spanned<String>>,
    headers: &'a HeaderSpecs,
    timeout: Duration,
    redirects: u32,
    tags: &'a Tags,
    build: &'a BuildCtx<'a>,
}

/// Tag keys volley sets itself; a request's `tags` cannot take them.
const RESERVED_TAGS: &[&str] = &[
    "scenario",
    "name",
    "method",
    "status",
    "error",
    "expected_response",
    "group",
    "check",
    "redirect",
];

fn compile_request(
    spec: &RequestSpec,
    index: usize,
    cx: &RequestCtx<'_>,
    env: &mut TemplateEnv<'_>,
    groups: &mut Vec<String>,
) -> Result<Request, ConfigError> {
    let base = cx.base;
    let scenario_headers = cx.headers;
    fn at(s: &Spanned<String>) -> impl Fn(crate::template::TemplateError) -> ConfigError {
        let span = s.span();
        move |e| e.at(span.clone())
    }
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
    if let Some(n) = &spec.name
        && n.get_ref().contains("{{")
    {
        return Err(ConfigError::at(
            n.span(),
            format!(
                "name {:?} has a template: a name must be one fixed label (each distinct name is a series of its own); put per-request values in tags = {{ .. }}, or leave name out to group by the URL as written",
                n.get_ref()
            ),
        ));
    }
    let raw_url = spec.url.get_ref();
    let absolute = raw_url.starts_with("http://") || raw_url.starts_with("https://");
    let mut url = if absolute {
        check_origin(raw_url).map_err(|e| ConfigError::at(spec.url.span(), e))?;
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
    let (static_target, static_url) = match url.as_static() {
        Some(text) => {
            let bad = |e: String| {
                ConfigError::at(spec.url.span(), format!("{text:?} is not a valid URL: {e}"))
            };
            let uri = Uri::try_from(text.as_str()).map_err(|e| bad(e.to_string()))?;
            let target = conn::Target::checked(uri).map_err(|e| bad(e.into()))?;
            // The jar's and redirects' view of it; parsed again per request
            // in the rare case the two parsers disagree.
            let parsed = url::Url::parse(&target.full.to_string()).ok();
            (Some(target), parsed)
        }
        None => (None, None),
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
    let base_dir = &cx.build.base_dir;
    let mut given: Vec<(&str, std::ops::Range<usize>)> = Vec::new();
    if let Some(j) = &spec.json {
        given.push(("json", j.span()));
    }
    if let Some(b) = &spec.body {
        given.push(("body", b.span()));
    }
    if let Some(b) = &spec.body_file {
        given.push(("body_file", b.span()));
    }
    if let Some(f) = &spec.form {
        given.push(("form", f.span()));
    }
    if let Some(m) = &spec.multipart {
        given.push(("multipart", m.span()));
    }
    if given.len() > 1 {
        return Err(ConfigError::at(
            given[1].1.clone(),
            format!(
                "a request has one body: {} and {} are both given; keep one of json, body, body_file, form, multipart",
                given[0].0, given[1].0
            ),
        ));
    }
    let content_type = |v: &str, h: &mut HeaderMap| {
        if !has_content_type && let Ok(v) = HeaderValue::from_str(v) {
            h.insert(http::header::CONTENT_TYPE, v);
        }
    };
    let body = if let Some(j) = &spec.json {
        content_type("application/json", &mut static_headers);
        body::Body::Text(
            env.compile_json(j.get_ref())
                .map_err(|e| ConfigError::at(j.span(), e))?,
        )
    } else if let Some(b) = &spec.body {
        body::Body::Text(env.compile(b.get_ref()).map_err(at(b))?)
    } else if let Some(f) = &spec.body_file {
        let (p, bytes) = body::read_file(base_dir, "body_file", f)?;
        content_type(body::content_type_of(&p), &mut static_headers);
        if spec.body_file_raw == Some(true) {
            body::Body::Raw(bytes::Bytes::from(bytes))
        } else {
            let text = String::from_utf8(bytes).map_err(|_| {
                ConfigError::at(
                    f.span(),
                    format!(
                        "body_file {:?} is not UTF-8 text, so it cannot be a template: add body_file_raw = true to send its bytes as they are",
                        f.get_ref()
                    ),
                )
            })?;
            let t = env.compile(&text).map_err(|e| {
                ConfigError::at(
                    f.span(),
                    format!(
                        "body_file {:?}: {e} (its text is a template; add body_file_raw = true to send it as it is)",
                        f.get_ref()
                    ),
                )
            })?;
            match t.as_static() {
                Some(text) => body::Body::Raw(bytes::Bytes::from(text)),
                None => body::Body::Text(t),
            }
        }
    } else if let Some(f) = &spec.form {
        content_type("application/x-www-form-urlencoded", &mut static_headers);
        body::Body::Text(body::form(env, f)?)
    } else if let Some(m) = &spec.multipart {
        let (b, ct) = body::multipart(env, m, base_dir)?;
        // The boundary is in the Content-Type: it is always ours.
        static_headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_str(&ct).expect("a boundary of letters and digits"),
        );
        b
    } else {
        body::Body::None
    };
    if let Some(raw) = spec.body_file_raw
        && spec.body_file.is_none()
        && raw
    {
        return Err(ConfigError::new(
            "body_file_raw = true applies to body_file: add body_file = \"...\" or remove it",
        ));
    }

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
    let stream = spec.stream == Some(StreamKind::Sse);
    let records = record::compile(&spec.record, cx.build.metrics, cx.build.registry, stream)?;
    let needs_json = checks.iter().any(Check::needs_json)
        || captures.iter().any(Capture::needs_json)
        || records.iter().any(record::Record::needs_json);
    let needs_headers = checks.iter().any(Check::needs_headers)
        || captures.iter().any(Capture::needs_headers)
        || records.iter().any(record::Record::needs_headers);
    let needs_body = needs_json
        || checks.iter().any(Check::needs_body)
        || captures.iter().any(Capture::needs_body);
    if stream && needs_body {
        let span = spec
            .checks
            .body_contains
            .as_ref()
            .map(Spanned::span)
            .unwrap_or(spec.url.span());
        return Err(ConfigError::at(
            span,
            "a streamed request (stream = \"sse\") is read event by event, not kept whole: read its events with record = { .. } (json paths apply to each event), not body checks or captures",
        ));
    }
    let named = spec.name.is_some();
    let name = match &spec.name {
        Some(n) => n.get_ref().clone(),
        // Unnamed requests are tagged by their URL template, as k6 tags by URL.
        None if spec.url.get_ref().is_empty() => format!("request {}", index + 1),
        None => spec.url.get_ref().clone(),
    };
    let group = match &spec.group {
        Some(g) => {
            let text = g.get_ref();
            if text.is_empty() || text.contains("{{") || text.contains("::") {
                return Err(ConfigError::at(
                    g.span(),
                    format!(
                        "group {text:?}: a group is one fixed, non-empty label without templates or \"::\""
                    ),
                ));
            }
            if text == "setup" || text == "teardown" {
                return Err(ConfigError::at(
                    g.span(),
                    format!(
                        "group {text:?} is the group of [{text}]'s requests (::{text}), counted apart from the scenarios: pick another name"
                    ),
                ));
            }
            let tag = format!("::{text}");
            Some(match groups.iter().position(|x| *x == tag) {
                Some(i) => i,
                None => {
                    groups.push(tag);
                    groups.len() - 1
                }
            })
        }
        None => None,
    };
    let mut tags = cx.tags.with("name", name.clone());
    if let Some(g) = group {
        tags = tags.with("group", groups[g].clone());
    }
    let mut dynamic_tags = Vec::new();
    for (k, v) in &spec.tags {
        if RESERVED_TAGS.contains(&k.get_ref().as_str()) {
            return Err(ConfigError::at(
                k.span(),
                format!(
                    "tag {:?} is set by volley; use another key (volley sets {})",
                    k.get_ref(),
                    RESERVED_TAGS.join(", ")
                ),
            ));
        }
        let t = env.compile(v.get_ref()).map_err(at(v))?;
        match t.as_static() {
            Some(text) => tags = tags.with(k.get_ref(), text),
            None => dynamic_tags.push((k.get_ref().clone(), t)),
        }
    }
    let mut cookies = Vec::new();
    for (k, v) in &spec.cookies {
        let ok = !k.get_ref().is_empty()
            && k.get_ref()
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
        if !ok {
            return Err(ConfigError::at(
                k.span(),
                format!(
                    "{:?} is not a cookie name (letters, digits and !#$%&'*+-.^_`|~)",
                    k.get_ref()
                ),
            ));
        }
        cookies.push((
            k.get_ref().clone(),
            env.compile(v.get_ref()).map_err(at(v))?,
        ));
    }
    Ok(Request {
        name,
        named,
        method,
        url,
        static_target,
        static_url,
        static_headers,
        dynamic_headers,
        body,
        timeout: spec.timeout.map(|d| d.0).unwrap_or(cx.timeout),
        checks,
        captures,
        expected,
        needs_body,
        needs_json,
        needs_headers,
        think_time: spec.think_time,
        told_invalid_url: AtomicBool::new(false),
        max_redirects: spec.max_redirects.unwrap_or(cx.redirects),
        once: spec.once,
        group,
        tags,
        dynamic_tags,
        cookies,
        records,
        stream,
    })
}

/// Checks the scheme, host and port of a URL as written whenever no template
/// is among them (`http://api:8080/{{ x }}` is checked, `http://{{ host }}/`
/// is not): a typo then fails the plan at load with its position instead
/// of failing every request of the run.
pub(crate) fn check_origin(url: &str) -> Result<(), conn::BadUrl> {
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
    type Options = HttpOptions;
    const NAME: &'static str = "http";

    fn descriptor() -> crate::descriptor::Descriptor {
        describe::descriptor()
    }

    fn from_plan(
        options: HttpOptions,
        ctx: &BuildCtx<'_>,
        at: std::ops::Range<usize>,
    ) -> Result<Self, ConfigError> {
        let _ = at;
        Self::build(options, ctx)
    }

    fn tag_values(&self, key: &str) -> Option<Vec<String>> {
        let mut out = Vec::new();
        for r in &self.requests {
            // Unnamed requests name their redirect hops by the URL they reach.
            let unknown =
                (key == "name" && !r.named) || r.dynamic_tags.iter().any(|(k, _)| k == key);
            if unknown {
                return None;
            }
            out.extend(r.tags.get(key).map(str::to_string));
        }
        Some(out)
    }

    fn vu(self: &Arc<Self>, env: VuEnv) -> HttpVu {
        HttpVu::new(self.clone(), env)
    }

    fn used_feeders(&self) -> &[usize] {
        &self.inputs.used
    }
}
