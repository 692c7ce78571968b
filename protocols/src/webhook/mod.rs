//! The webhook driver: events from templates, signed as Stripe, GitHub,
//! Standard Webhooks (Svix), Shopify or Slack sign them (`scheme`), POSTed
//! over one keep-alive connection per VU, plus the deliveries an endpoint
//! must refuse (forged, stale, unsigned) and the ones it must take without
//! doing the work twice (duplicates, out of order).

mod describe;
pub mod scheme;
pub mod signature;
pub mod templates;
mod vu;

pub use vu::WebhookVu;

use crate::driver::Inputs;
use crate::driver::{BuildCtx, Driver, VuEnv, VuState};
use crate::duration::Dur;
use crate::error::ConfigError;
use crate::http::Client;
use crate::http::conn::{ConnectTimes, Connector, Target};
use crate::http::link::Link;
use crate::metrics::{MetricId, MetricKind, Registry, Tags, Unit};
use crate::template::{Template, TemplateEnv};
use crate::weights::{Weighted, check_mix, weight};
use ::http::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;
use scheme::Scheme;
use serde::Deserialize;
use serde_json::Value;
use signature::Key;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use templates::{LOCALS, NUMERIC_LOCALS, TemplateSet};
use toml::Spanned;

crate::connection::with_connection_keys! {
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct WebhookOptions {
        /// How deliveries are signed: stripe (default), github, standard, shopify, slack.
        pub scheme: Option<Spanned<String>>,
        /// The URL the provider would POST to; relative paths join `base_url`.
        pub endpoint: Option<Spanned<String>>,
        /// The endpoint's signing secret, or a list while rotating (Stripe and
        /// Standard Webhooks carry one signature per secret).
        pub secret: Option<Spanned<Value>>,
        /// Weighted event types; default: every template, equally.
        pub events: Option<Spanned<Vec<EventSpec>>>,
        /// A folder of event templates (`*.json`) added to the built-in ones.
        pub templates: Option<Spanned<String>>,
        pub forged_ratio: Option<Spanned<f64>>,
        pub stale_ratio: Option<Spanned<f64>>,
        pub unsigned_ratio: Option<Spanned<f64>>,
        pub duplicate_ratio: Option<Spanned<f64>>,
        pub out_of_order_ratio: Option<Spanned<f64>>,
        /// The endpoint's timestamp tolerance; stale deliveries are older than this.
        pub tolerance: Option<Spanned<Dur>>,
        ..connection,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    #[serde(rename = "type")]
    pub kind: Spanned<String>,
    pub weight: Option<Spanned<f64>>,
}

/// What a delivery is, and so what the endpoint must answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Fresh event, correctly signed: 2xx.
    Valid,
    /// An event already delivered and acknowledged, sent again (as Stripe
    /// retries) with a fresh signature: 2xx, and not processed twice.
    Duplicate,
    /// An event created before others this VU has delivered since: 2xx.
    OutOfOrder,
    /// Wrong secret, body altered after signing, or timestamp rewritten after
    /// signing: 4xx.
    Forged,
    /// Correctly signed, but longer ago than the tolerance (a replay): 4xx.
    Stale,
    /// No signature header: 4xx.
    Unsigned,
}

pub const KINDS: [Kind; 6] = [
    Kind::Valid,
    Kind::Duplicate,
    Kind::OutOfOrder,
    Kind::Forged,
    Kind::Stale,
    Kind::Unsigned,
];

impl Kind {
    pub fn tag(self) -> &'static str {
        match self {
            Kind::Valid => "valid",
            Kind::Duplicate => "duplicate",
            Kind::OutOfOrder => "out_of_order",
            Kind::Forged => "forged",
            Kind::Stale => "stale",
            Kind::Unsigned => "unsigned",
        }
    }

    fn index(self) -> usize {
        KINDS.iter().position(|k| *k == self).unwrap_or(0)
    }

    /// The endpoint must take it (2xx) rather than refuse it (4xx).
    pub fn must_accept(self) -> bool {
        matches!(self, Kind::Valid | Kind::Duplicate | Kind::OutOfOrder)
    }

    /// Whether `status` is the answer this kind of delivery must get.
    pub fn answered_right(self, status: u16) -> bool {
        if self.must_accept() {
            (200..300).contains(&status)
        } else {
            (400..500).contains(&status)
        }
    }
}

pub(crate) struct Event {
    name: String,
    template: Template,
    /// The event type as the scheme's type header says it (GitHub, Shopify).
    type_value: Option<HeaderValue>,
}

pub(crate) struct Metrics {
    deliveries: MetricId,
    duration: MetricId,
    failed: MetricId,
    forgery: MetricId,
    sent: MetricId,
    received: MetricId,
}

impl Metrics {
    fn register(r: &Registry) -> Self {
        use MetricKind::*;
        Self {
            deliveries: r.metric("webhook_deliveries", Counter, Unit::Default),
            duration: r.metric("webhook_duration", Trend, Unit::Time),
            failed: r.metric("webhook_failed", Rate, Unit::Default),
            forgery: r.metric("webhook_forgery_accepted", Counter, Unit::Default),
            sent: r.metric("data_sent", Counter, Unit::Data),
            received: r.metric("data_received", Counter, Unit::Data),
        }
    }
}

pub struct WebhookDriver {
    scheme: Scheme,
    tags: Tags,
    target: Target,
    headers: HeaderMap,
    events: Vec<Event>,
    /// Cumulative event weights.
    weights: Weighted,
    /// Cumulative delivery-kind shares, in `MIX` order; the rest is valid.
    mix: [f64; 5],
    out_of_order: bool,
    keys: Vec<Key>,
    tolerance: u64,
    timeout: Duration,
    connector: Connector,
    inputs: Inputs,
    metrics: Metrics,
}

/// The kinds with a ratio option, in the order their shares are stacked.
const MIX: [Kind; 5] = [
    Kind::Forged,
    Kind::Stale,
    Kind::Unsigned,
    Kind::Duplicate,
    Kind::OutOfOrder,
];

impl WebhookDriver {
    pub fn build(o: WebhookOptions, ctx: &BuildCtx<'_>) -> Result<Self, ConfigError> {
        let defaults = ctx.defaults;
        let scheme = match &o.scheme {
            None => Scheme::Stripe,
            Some(name) => Scheme::parse(name.get_ref()).ok_or_else(|| {
                ConfigError::at(
                    name.span(),
                    format!(
                        "unknown scheme {:?}; known: {} (standard is Standard Webhooks, as Svix signs)",
                        name.get_ref(),
                        Scheme::names()
                    ),
                )
            })?,
        };
        let endpoint = o.endpoint.as_ref().ok_or_else(|| {
            ConfigError::new(format!(
                "scenario {:?} needs endpoint, the URL {} would POST to, e.g. endpoint = \"${{BASE_URL}}/webhooks/{}\"",
                ctx.scenario,
                scheme.title(),
                scheme.name()
            ))
        })?;
        let conn = o.connection();
        let mut client = Client::resolve(defaults, conn, Duration::from_secs(30));
        client.with_tls_files(&ctx.base_dir, defaults, conn)?;
        let url = join_url(endpoint, client.base)?;
        let target = Target::from_url(&url).map_err(|e| ConfigError::at(endpoint.span(), e))?;

        let keys = keys(scheme, o.secret.as_ref(), ctx.scenario)?;

        let mut set = TemplateSet::builtin_for(scheme);
        if let Some(dir) = &o.templates {
            let rel = Path::new(dir.get_ref());
            let p = [ctx.base_dir.join(rel), rel.to_path_buf()]
                .into_iter()
                .find(|p| p.is_dir())
                .unwrap_or_else(|| ctx.base_dir.join(rel));
            set.add_folder(&p)
                .map_err(|e| ConfigError::at(dir.span(), e))?;
        }

        let mut env = ctx.templates();
        env.locals = LOCALS;
        env.numeric_locals = NUMERIC_LOCALS;
        let wanted: Vec<(String, f64, Option<std::ops::Range<usize>>)> = match &o.events {
            Some(list) if list.get_ref().is_empty() => {
                return Err(ConfigError::at(
                    list.span(),
                    "events is empty: list at least one, e.g. events = [{ type = \"payment_intent.succeeded\", weight = 1 }]",
                ));
            }
            Some(list) => {
                let mut v = Vec::new();
                for e in list.get_ref() {
                    let w = weight(e.weight.as_ref(), true)?;
                    v.push((e.kind.get_ref().clone(), w, Some(e.kind.span())));
                }
                v
            }
            None => set.by_type.keys().map(|k| (k.clone(), 1.0, None)).collect(),
        };
        let mut events = Vec::new();
        let mut weights = Weighted::default();
        for (name, w, span) in wanted {
            let src = set.by_type.get(&name).ok_or_else(|| {
                ConfigError::at(
                    span.clone().unwrap_or(0..0),
                    format!(
                        "no {} template for event type {name:?}; known: {} (add {} to a folder named by `templates`)",
                        scheme.title(),
                        set.known(),
                        templates::how_typed(scheme, &name)
                    ),
                )
            })?;
            let template = env.compile_json(&src.value).map_err(|e| {
                let msg = format!("{}: {e}", src.origin);
                match (&span, &o.templates) {
                    (Some(s), _) => ConfigError::at(s.clone(), msg),
                    (None, Some(t)) => ConfigError::at(t.span(), msg),
                    _ => ConfigError::new(msg),
                }
            })?;
            let type_value = match scheme.type_header() {
                Some(_) => Some(HeaderValue::from_str(&name).map_err(|_| {
                    ConfigError::at(
                        span.clone().unwrap_or(0..0),
                        format!(
                            "event type {name:?} cannot be a header value (no control characters)"
                        ),
                    )
                })?),
                None => None,
            };
            weights.push(w);
            events.push(Event {
                name,
                template,
                type_value,
            });
        }
        let first = o.events.as_ref().and_then(|list| {
            list.get_ref()
                .iter()
                .find_map(|e| e.weight.as_ref().map(Spanned::span))
        });
        check_mix(&weights, first, "event", ctx.scenario)?;

        if let Some(r) = &o.stale_ratio
            && !scheme.has_timestamp()
            && *r.get_ref() != 0.0
        {
            return Err(ConfigError::at(
                r.span(),
                format!(
                    "{} deliveries carry no timestamp, so none can be stale: remove stale_ratio (an old delivery sent again is a duplicate here: duplicate_ratio; only the receiver's check of {} stops it)",
                    scheme.title(),
                    scheme.id_header().unwrap_or("the delivery id")
                ),
            ));
        }
        if let Some(t) = &o.tolerance
            && !scheme.has_timestamp()
        {
            return Err(ConfigError::at(
                t.span(),
                format!(
                    "{} deliveries carry no timestamp, so there is no tolerance to set: remove tolerance",
                    scheme.title()
                ),
            ));
        }
        let mut mix = [0.0; 5];
        let mut sum = 0.0;
        let ratios = [
            &o.forged_ratio,
            &o.stale_ratio,
            &o.unsigned_ratio,
            &o.duplicate_ratio,
            &o.out_of_order_ratio,
        ];
        for (i, r) in ratios.iter().enumerate() {
            if let Some(r) = r {
                let v = *r.get_ref();
                if !(0.0..=1.0).contains(&v) {
                    return Err(ConfigError::at(
                        r.span(),
                        format!("{}_ratio must be between 0 and 1", MIX[i].tag()),
                    ));
                }
                sum += v;
                if sum > 1.0 + 1e-9 {
                    return Err(ConfigError::at(
                        r.span(),
                        format!(
                            "the delivery ratios add up to {sum:.3}; they must add up to at most 1 (the rest are valid deliveries)"
                        ),
                    ));
                }
            }
            mix[i] = sum;
        }
        let tolerance = o
            .tolerance
            .as_ref()
            .map(|d| d.get_ref().0)
            .unwrap_or(Duration::from_secs(signature::DEFAULT_TOLERANCE_SECS));
        if let Some(t) = &o.tolerance
            && tolerance < Duration::from_secs(1)
        {
            return Err(ConfigError::at(
                t.span(),
                format!(
                    "tolerance must be at least 1s ({}'s libraries use 300s)",
                    scheme.title()
                ),
            ));
        }

        let mut headers = HeaderMap::new();
        for (name, (key_span, value)) in client.headers {
            let hn = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                ConfigError::at(key_span, format!("{name:?} is not a valid header name"))
            })?;
            if let Some(h) = scheme
                .delivery_headers()
                .into_iter()
                .find(|h| h.eq_ignore_ascii_case(hn.as_str()))
            {
                return Err(ConfigError::at(
                    value.span(),
                    format!(
                        "the driver sets {h} on every {} delivery: remove the {h} header",
                        scheme.title()
                    ),
                ));
            }
            let hv = HeaderValue::from_str(value.get_ref()).map_err(|_| {
                ConfigError::at(
                    value.span(),
                    format!("{:?} is not a valid header value", value.get_ref()),
                )
            })?;
            headers.insert(hn, hv);
        }
        default_headers(&mut headers, scheme);

        let timeout = client.timeout;
        Ok(Self {
            scheme,
            tags: ctx.tags.clone(),
            target,
            headers,
            events,
            weights,
            out_of_order: mix[4] > mix[3],
            mix,
            keys,
            tolerance: tolerance.as_secs(),
            timeout,
            connector: client.connector,
            inputs: Inputs::of(&env),
            metrics: Metrics::register(ctx.registry),
        })
    }

    fn pick_kind(&self, rng: &mut fastrand::Rng) -> Kind {
        let x = rng.f64();
        MIX.iter()
            .zip(self.mix)
            .find(|(_, c)| x < *c)
            .map(|(k, _)| *k)
            .unwrap_or(Kind::Valid)
    }
}

fn default_headers(headers: &mut HeaderMap, scheme: Scheme) {
    if !headers.contains_key(::http::header::CONTENT_TYPE) {
        // What each provider sends.
        let ty = match scheme {
            Scheme::Stripe => "application/json; charset=utf-8",
            _ => "application/json",
        };
        headers.insert(::http::header::CONTENT_TYPE, HeaderValue::from_static(ty));
    }
    if scheme == Scheme::Shopify {
        for (name, value) in [
            ("x-shopify-shop-domain", "volley-test.myshopify.com"),
            ("x-shopify-api-version", "2025-07"),
        ] {
            if !headers.contains_key(name) {
                headers.insert(name, HeaderValue::from_static(value));
            }
        }
    }
    if !headers.contains_key(::http::header::USER_AGENT) {
        headers.insert(
            ::http::header::USER_AGENT,
            HeaderValue::from_static(concat!("volley/", env!("CARGO_PKG_VERSION"))),
        );
    }
}

fn join_url(
    endpoint: &Spanned<String>,
    base: Option<&Spanned<String>>,
) -> Result<String, ConfigError> {
    let raw = endpoint.get_ref();
    if raw.contains("{{") {
        return Err(ConfigError::at(
            endpoint.span(),
            "endpoint is a fixed URL (no {{ }} templates)",
        ));
    }
    if raw.starts_with("http://") || raw.starts_with("https://") {
        return Ok(raw.clone());
    }
    let base = base.ok_or_else(|| {
        ConfigError::at(
            endpoint.span(),
            format!(
                "endpoint {raw:?} is relative but there is no base_url: set base_url in [defaults] or write a full http:// URL"
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
    crate::http::check_origin(b)
        .map_err(|e| ConfigError::at(base.span(), format!("base_url: {e}")))?;
    Ok(format!("{b}/{}", raw.trim_start_matches('/')))
}

/// The signing keys of `secret` (a string, or a list while it rotates), as
/// `scheme` reads them.
fn keys(
    scheme: Scheme,
    v: Option<&Spanned<Value>>,
    scenario: &str,
) -> Result<Vec<Key>, ConfigError> {
    let var = scheme.secret_var();
    let v = v.ok_or_else(|| {
        ConfigError::new(format!(
            "scenario {scenario:?} needs secret, the endpoint's signing secret ({}), e.g. secret = \"${{{var}}}\"{}",
            scheme.secret_example(),
            if scheme.signs_with_many() {
                " (a list while it rotates)"
            } else {
                ""
            }
        ))
    })?;
    let list: Vec<&Value> = match v.get_ref() {
        Value::Array(items) => items.iter().collect(),
        one => vec![one],
    };
    let mut out = Vec::new();
    for item in &list {
        match item {
            Value::String(s) if !s.is_empty() => {
                out.push(scheme.key(s).map_err(|e| ConfigError::at(v.span(), e))?)
            }
            Value::String(_) => {
                return Err(ConfigError::at(
                    v.span(),
                    format!(
                        "secret is empty: is the variable it comes from set? (e.g. -e {var}=...)"
                    ),
                ));
            }
            _ => {
                return Err(ConfigError::at(
                    v.span(),
                    format!(
                        "secret is a string ({}){}",
                        scheme.secret_example(),
                        if scheme.signs_with_many() {
                            " or a list of strings while a secret rotates"
                        } else {
                            ""
                        }
                    ),
                ));
            }
        }
    }
    if out.is_empty() {
        return Err(ConfigError::at(
            v.span(),
            "secret lists no secrets: give at least one",
        ));
    }
    if out.len() > 1 && !scheme.signs_with_many() {
        return Err(ConfigError::at(
            v.span(),
            format!(
                "{} sends one signature ({}), so one secret: give the one the endpoint has (only stripe and standard carry a signature per secret while one rotates)",
                scheme.title(),
                scheme.signature_header()
            ),
        ));
    }
    Ok(out)
}

impl Driver for WebhookDriver {
    type Vu = WebhookVu;
    type Options = WebhookOptions;
    const NAME: &'static str = "webhook";

    fn descriptor() -> crate::descriptor::Descriptor {
        describe::descriptor()
    }

    fn from_plan(
        options: WebhookOptions,
        ctx: &BuildCtx<'_>,
        at: std::ops::Range<usize>,
    ) -> Result<Self, ConfigError> {
        Self::build(options, ctx).map_err(|e| e.or_at(at))
    }

    fn tag_values(&self, key: &str) -> Option<Vec<String>> {
        Some(match key {
            "event" => self.events.iter().map(|e| e.name.clone()).collect(),
            _ => self.tags.get(key).map(str::to_string).into_iter().collect(),
        })
    }

    fn vu(self: &Arc<Self>, env: VuEnv) -> WebhookVu {
        WebhookVu::new(self.clone(), env)
    }

    fn used_feeders(&self) -> &[usize] {
        &self.inputs.used
    }
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Values of `LOCALS` for one rendering, in reused buffers.
#[derive(Default)]
pub(crate) struct Locals {
    id: String,
    created: String,
    amount: String,
    period_end: String,
}

impl Locals {
    /// Render event `template` of type `name` into `out`, with a fresh
    /// `event.id` shaped as `scheme`'s senders make them.
    fn render(
        &mut self,
        scheme: Scheme,
        name: &str,
        template: &Template,
        state: &mut VuState,
        out: &mut String,
    ) {
        use std::fmt::Write as _;
        let now = unix_now();
        self.id.clear();
        let rng = &mut state.rng;
        match scheme {
            Scheme::Stripe => {
                self.id.push_str("evt_1");
                for _ in 0..23 {
                    self.id.push(rng.alphanumeric());
                }
            }
            // A GUID, as X-GitHub-Delivery and X-Shopify-Webhook-Id are.
            Scheme::Github | Scheme::Shopify => {
                let mut bytes = [0u8; 16];
                rng.fill(&mut bytes);
                let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
                let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
                self.id.push_str(id.hyphenated().encode_lower(&mut buf));
            }
            // Svix's message ids: msg_ and 27 base62 characters.
            Scheme::Standard => {
                self.id.push_str("msg_");
                for _ in 0..27 {
                    self.id.push(rng.alphanumeric());
                }
            }
            // Slack's event ids: Ev and upper-case letters and digits.
            Scheme::Slack => {
                self.id.push_str("Ev");
                for _ in 0..10 {
                    let c = rng.alphanumeric();
                    self.id.push(c.to_ascii_uppercase());
                }
            }
        }
        self.created.clear();
        let _ = write!(self.created, "{now}");
        self.amount.clear();
        let _ = write!(self.amount, "{}", state.rng.u64(5..=5000) * 100 - 1);
        self.period_end.clear();
        let _ = write!(self.period_end, "{}", now + 30 * 86_400);
        let locals = [
            self.id.as_str(),
            name,
            self.created.as_str(),
            self.amount.as_str(),
            self.period_end.as_str(),
        ];
        out.clear();
        template.render(&mut state.scope(&locals), out);
    }
}

/// What `send_one` got back.
pub struct SendOutcome {
    pub status: u16,
    pub body: String,
    /// The headers the scheme set on the delivery (signature, id, ...).
    pub headers: Vec<(String, String)>,
    /// The event type sent.
    pub event: String,
    pub payload: Bytes,
}

/// Why `volley webhook send` delivered nothing.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Url(#[from] crate::http::BadUrl),
    #[error("give the endpoint's signing secret with --secret ({})", .0.secret_example())]
    NoSecret(Scheme),
    #[error(
        "{} deliveries carry no timestamp, so none can be stale: send --kind valid, forged or unsigned",
        .0.title()
    )]
    NoTimestamp(Scheme),
    #[error("{} sends one signature ({}): give one --secret", .0.title(), .0.signature_header())]
    OneSecret(Scheme),
    #[error("--secret: {0}")]
    Secret(#[from] scheme::SecretError),
    #[error(transparent)]
    Templates(#[from] templates::TemplatesError),
    #[error(
        "no {} template for event type {event:?}; known: {known} (add {add} to a folder named by --templates)",
        scheme.title()
    )]
    NoTemplate {
        scheme: Scheme,
        event: String,
        known: String,
        add: String,
    },
    #[error("{origin}: {e}")]
    Template {
        origin: String,
        e: crate::template::TemplateError,
    },
    #[error("event type {0:?} cannot be a header value")]
    TypeHeader(String),
    #[error("no answer from {url} within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("cannot deliver to {url}: {error}")]
    Deliver { url: String, error: &'static str },
}

/// One delivery sent by hand (`volley webhook send`).
pub struct SendOne<'a> {
    pub scheme: Scheme,
    pub url: &'a str,
    pub secrets: &'a [String],
    /// Default: the scheme's first built-in event type.
    pub event: Option<&'a str>,
    pub templates_dir: Option<&'a Path>,
    pub kind: Kind,
    pub timeout: Duration,
    /// TLS as the command line set it.
    pub connector: &'a Connector,
}

/// Render one event of type `event`, sign it as `scheme` and `kind` say,
/// POST it to `url` and return the answer. Runs on a `LocalSet` (the
/// connection task is spawned locally).
pub async fn send_one(one: SendOne<'_>) -> Result<SendOutcome, SendError> {
    let SendOne {
        scheme,
        url,
        secrets,
        event,
        templates_dir,
        kind,
        timeout,
        connector,
    } = one;
    let target = Target::from_url(url)?;
    if secrets.is_empty() && kind != Kind::Unsigned {
        return Err(SendError::NoSecret(scheme));
    }
    if kind == Kind::Stale && !scheme.has_timestamp() {
        return Err(SendError::NoTimestamp(scheme));
    }
    if secrets.len() > 1 && !scheme.signs_with_many() {
        return Err(SendError::OneSecret(scheme));
    }
    let keys = secrets
        .iter()
        .map(|s| scheme.key(s))
        .collect::<Result<Vec<Key>, _>>()?;
    let mut set = TemplateSet::builtin_for(scheme);
    if let Some(dir) = templates_dir {
        set.add_folder(dir)?;
    }
    let event = event.unwrap_or(templates::builtin_of(scheme)[0].0);
    let src = set
        .by_type
        .get(event)
        .ok_or_else(|| SendError::NoTemplate {
            scheme,
            event: event.into(),
            known: set.known(),
            add: templates::how_typed(scheme, event),
        })?;
    let env_vars = std::collections::HashMap::new();
    let mut env = TemplateEnv::new(&env_vars, &[], "webhook");
    env.locals = LOCALS;
    env.numeric_locals = NUMERIC_LOCALS;
    let template = env
        .compile_json(&src.value)
        .map_err(|e| SendError::Template {
            origin: src.origin.clone(),
            e,
        })?;
    let type_value = match scheme.type_header() {
        Some(_) => {
            Some(HeaderValue::from_str(event).map_err(|_| SendError::TypeHeader(event.into()))?)
        }
        None => None,
    };
    let mut state = Inputs::default().state(0, fastrand::u64(..));
    let mut text = String::new();
    let mut locals = Locals::default();
    locals.render(scheme, event, &template, &mut state, &mut text);
    let delivery = vu::Delivery::new(scheme, 0, Bytes::from(text), &locals.id);
    let mut headers = HeaderMap::new();
    default_headers(&mut headers, scheme);
    let mut signer = vu::Signer::new(scheme, &mut state.rng);
    let body = signer.prepare(
        &mut headers,
        &keys,
        kind,
        &delivery,
        type_value.as_ref(),
        signature::DEFAULT_TOLERANCE_SECS,
        &mut state.rng,
    );
    let shown = scheme
        .delivery_headers()
        .into_iter()
        .filter_map(|h| {
            headers
                .get(h)
                .map(|v| (h.to_string(), v.to_str().unwrap_or_default().to_string()))
        })
        .collect();
    let mut link = Link::default();
    let mut answer = Vec::new();
    let mut times = ConnectTimes::default();
    let exchanged = link.exchange(
        connector,
        &::http::Method::POST,
        &target,
        &headers,
        &body,
        false,
        Some(&mut answer),
        &mut times,
    );
    let status = tokio::time::timeout(timeout, exchanged)
        .await
        .map_err(|_| SendError::Timeout {
            url: url.into(),
            timeout,
        })?
        .map_err(|e| SendError::Deliver {
            url: url.into(),
            error: e.tag(),
        })?
        .status;
    Ok(SendOutcome {
        status,
        body: String::from_utf8_lossy(&answer).into_owned(),
        headers: shown,
        event: event.to_string(),
        payload: body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn render_all() -> Vec<(String, Value)> {
        let set = TemplateSet::builtin();
        let vars = std::collections::HashMap::new();
        let mut env = TemplateEnv::new(&vars, &[], "s");
        env.locals = LOCALS;
        env.numeric_locals = NUMERIC_LOCALS;
        let mut state = Inputs::default().state(0, 42);
        let mut locals = Locals::default();
        let mut out = String::new();
        set.by_type
            .iter()
            .map(|(ty, src)| {
                let t = env.compile_json(&src.value).unwrap();
                locals.render(Scheme::Stripe, ty, &t, &mut state, &mut out);
                let v: Value = serde_json::from_str(&out)
                    .unwrap_or_else(|e| panic!("{ty} renders invalid JSON: {e}\n{out}"));
                (ty.clone(), v)
            })
            .collect()
    }

    #[test]
    fn every_template_renders_a_stripe_event() {
        let now = unix_now();
        let mut ids = HashSet::new();
        for (ty, v) in render_all() {
            let id = v["id"].as_str().unwrap();
            assert!(id.starts_with("evt_") && id.len() == 28, "{ty}: {id}");
            assert!(ids.insert(id.to_string()), "ids are unique");
            assert_eq!(v["type"], ty.as_str());
            assert_eq!(v["object"], "event");
            let created = v["created"].as_i64().expect("created is a number");
            assert!((created - now).abs() <= 2);
            let obj = &v["data"]["object"];
            // Amounts are numbers, and the same amount throughout one event.
            let amounts: Vec<i64> = ["amount", "amount_received", "amount_total", "amount_due"]
                .iter()
                .filter_map(|k| obj[k].as_i64())
                .filter(|a| *a > 0)
                .collect();
            if ty.starts_with("payment_intent")
                || ty.starts_with("charge")
                || ty.starts_with("invoice")
                || ty.starts_with("checkout")
            {
                assert!(!amounts.is_empty(), "{ty} has an amount");
            }
            assert!(
                amounts.windows(2).all(|w| w[0] == w[1]),
                "{ty}: {amounts:?}"
            );
            // Field order as Stripe sends it.
            let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
            assert_eq!(keys[0], "id");
            assert_eq!(keys[1], "object");
        }
    }

    #[test]
    fn kinds_expect_their_answers() {
        assert!(Kind::Valid.answered_right(200) && Kind::Duplicate.answered_right(204));
        assert!(!Kind::Valid.answered_right(400) && !Kind::OutOfOrder.answered_right(500));
        assert!(Kind::Forged.answered_right(400) && Kind::Stale.answered_right(401));
        assert!(!Kind::Unsigned.answered_right(200) && !Kind::Forged.answered_right(500));
    }
}
