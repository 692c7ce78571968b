//! `volley webhook sign|send`: debugging a receiver by hand.

use super::*;
use volley_protocols::webhook::scheme::Scheme;

#[derive(Subcommand)]
pub(super) enum WebhookCmd {
    /// Print the headers that sign a payload, one per line (use with curl -H).
    Sign(SignArgs),
    /// Send one signed event and print the answer. Exit 0 when the answer is
    /// the one its kind must get (2xx for valid, 4xx otherwise).
    Send(SendArgs),
}

/// The signing schemes, as `--scheme` takes them.
#[derive(Clone, Copy, Default, clap::ValueEnum)]
pub(super) enum SchemeArg {
    /// Stripe-Signature: t=...,v1=<hex>
    #[default]
    Stripe,
    /// X-Hub-Signature-256: sha256=<hex>
    Github,
    /// Standard Webhooks (Svix): webhook-id, webhook-timestamp, webhook-signature: v1,<base64>
    Standard,
    /// X-Shopify-Hmac-Sha256: <base64>
    Shopify,
    /// X-Slack-Request-Timestamp, X-Slack-Signature: v0=<hex>
    Slack,
}

impl SchemeArg {
    fn scheme(self) -> Scheme {
        match self {
            SchemeArg::Stripe => Scheme::Stripe,
            SchemeArg::Github => Scheme::Github,
            SchemeArg::Standard => Scheme::Standard,
            SchemeArg::Shopify => Scheme::Shopify,
            SchemeArg::Slack => Scheme::Slack,
        }
    }
}

#[derive(Args)]
pub(super) struct SignArgs {
    /// How the sender signs.
    #[arg(long, value_enum, default_value = "stripe")]
    pub(super) scheme: SchemeArg,
    /// The endpoint's signing secret (default: $STRIPE_WEBHOOK_SECRET,
    /// $GITHUB_WEBHOOK_SECRET, $WEBHOOK_SECRET for standard,
    /// $SHOPIFY_API_SECRET or $SLACK_SIGNING_SECRET); stripe and standard
    /// take several while a secret rotates (a,b: one signature each).
    #[arg(long, value_delimiter = ',')]
    pub(super) secret: Vec<String>,
    /// The raw body, signed byte for byte ('-': standard input).
    #[arg(long, value_name = "FILE")]
    pub(super) payload: PathBuf,
    /// Unix seconds to sign with (default: now; stripe, standard, slack).
    #[arg(long)]
    pub(super) timestamp: Option<i64>,
    /// The webhook-id to sign (standard only; default: a fresh msg_ id).
    #[arg(long)]
    pub(super) id: Option<String>,
}

#[derive(Args)]
pub(super) struct SendArgs {
    /// How the sender signs.
    #[arg(long, value_enum, default_value = "stripe")]
    pub(super) scheme: SchemeArg,
    /// The endpoint URL, e.g. http://127.0.0.1:8080/webhooks/stripe.
    #[arg(long)]
    pub(super) to: String,
    /// The endpoint's signing secret (default from the scheme's variable, as
    /// for `sign`; repeat while rotating, for stripe and standard).
    #[arg(long, value_delimiter = ',')]
    pub(super) secret: Vec<String>,
    /// Event type, e.g. invoice.paid, push, orders/create (a built-in
    /// template of the scheme or one in --templates; default: the first
    /// built-in).
    #[arg(long)]
    pub(super) event: Option<String>,
    /// A folder of event templates (*.json) beside the built-in ones.
    #[arg(long, value_name = "DIR")]
    pub(super) templates: Option<PathBuf>,
    /// What to send: a valid delivery, or one the endpoint must refuse
    /// (stale only for schemes with a timestamp).
    #[arg(long, value_enum, default_value = "valid")]
    pub(super) kind: SendKind,
    /// Give up after this long.
    #[arg(long, default_value = "30s")]
    pub(super) timeout: String,
    /// Trust this PEM CA beside the public roots (a staging or private CA).
    #[arg(long, value_name = "FILE")]
    pub(super) ca_file: Option<String>,
    /// Present this PEM certificate (mTLS); needs --client-key.
    #[arg(long, value_name = "FILE", requires = "client_key")]
    pub(super) client_cert: Option<String>,
    /// The PEM private key of --client-cert.
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    pub(super) client_key: Option<String>,
    /// Accept any server certificate (k6's --insecure-skip-tls-verify).
    #[arg(long)]
    pub(super) insecure_skip_tls_verify: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub(super) enum SendKind {
    Valid,
    Forged,
    Stale,
    Unsigned,
}

/// `--secret`, or the scheme's variable when it is not given.
fn secrets_of(scheme: Scheme, given: Vec<String>, required: bool) -> Result<Vec<String>, Failure> {
    let var = scheme.secret_var();
    let secrets = if given.is_empty() {
        std::env::var(var).map(|s| vec![s]).unwrap_or_default()
    } else {
        given
    };
    if secrets.iter().any(String::is_empty) {
        return Err(usage(anyhow!(
            "--secret: a secret is empty (is {var} set?); give the endpoint's signing secret, e.g. --secret {}{}",
            if scheme == Scheme::Stripe {
                "whsec_..."
            } else {
                "..."
            },
            if scheme.signs_with_many() {
                ", and several as --secret a,b while it rotates"
            } else {
                ""
            }
        )));
    }
    if required && secrets.is_empty() {
        return Err(usage(anyhow!(
            "--secret is required: give the endpoint's signing secret ({}), or set {var}",
            scheme.secret_example()
        )));
    }
    if secrets.len() > 1 && !scheme.signs_with_many() {
        return Err(usage(anyhow!(
            "--secret: {} sends one signature ({}), so give one secret",
            scheme.title(),
            scheme.signature_header()
        )));
    }
    for s in &secrets {
        scheme.key(s).map_err(|e| usage(anyhow!("--secret: {e}")))?;
    }
    Ok(secrets)
}

pub(super) fn cmd_webhook_sign(a: SignArgs) -> Result<u8, Failure> {
    let scheme = a.scheme.scheme();
    let secrets = secrets_of(scheme, a.secret, true)?;
    if a.timestamp.is_some() && !scheme.has_timestamp() {
        return Err(usage(anyhow!(
            "--timestamp: {} signs no timestamp (only the body); leave it out",
            scheme.title()
        )));
    }
    if a.id.is_some() && scheme != Scheme::Standard {
        return Err(usage(anyhow!(
            "--id: only standard signs the delivery id; leave it out"
        )));
    }
    use std::io::Read as _;
    let payload = if a.payload.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("cannot read the payload from standard input")
            .map_err(runtime)?;
        buf
    } else {
        std::fs::read(&a.payload)
            .with_context(|| format!("cannot read the payload {}", a.payload.display()))
            .map_err(usage)?
    };
    let t = a.timestamp.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    });
    let id = a.id.unwrap_or_else(|| {
        let mut rng = fastrand::Rng::new();
        let mut id = String::from("msg_");
        id.extend((0..27).map(|_| rng.alphanumeric()));
        id
    });
    if id.is_empty()
        || id.contains(['.', ' '])
        || !id.is_ascii()
        || id.chars().any(char::is_control)
    {
        return Err(usage(anyhow!(
            "--id {id:?}: an id is ASCII without dots or spaces (the signed text is id.timestamp.body), e.g. msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
        )));
    }
    let keys: Vec<_> = secrets
        .iter()
        .map(|s| scheme.key(s).map_err(|e| usage(anyhow!("--secret: {e}"))))
        .collect::<Result<_, _>>()?;
    for (name, value) in scheme.sign_headers(&keys, &id, t, &payload) {
        println!("{name}: {value}");
    }
    Ok(EXIT_OK)
}

pub(super) fn cmd_webhook_send(a: SendArgs) -> Result<u8, Failure> {
    use volley_protocols::webhook::{Kind, SendOne, send_one};
    let scheme = a.scheme.scheme();
    let kind = match a.kind {
        SendKind::Valid => Kind::Valid,
        SendKind::Forged => Kind::Forged,
        SendKind::Stale => Kind::Stale,
        SendKind::Unsigned => Kind::Unsigned,
    };
    let secrets = secrets_of(scheme, a.secret, kind != Kind::Unsigned)?;
    if kind == Kind::Stale && !scheme.has_timestamp() {
        return Err(usage(anyhow!(
            "--kind stale: {} deliveries carry no timestamp, so none can be stale; send valid, forged or unsigned",
            scheme.title()
        )));
    }
    let timeout = volley_protocols::duration::parse_duration(&a.timeout)
        .map_err(|e| usage(anyhow!("--timeout: {e}")))?;
    let connector = volley_protocols::http::cli_connector(
        a.insecure_skip_tls_verify,
        a.client_cert.as_deref(),
        a.client_key.as_deref(),
        a.ca_file.as_deref(),
        &volley_protocols::http::TlsNames {
            cert: "--client-cert",
            key: "--client-key",
            ca: "--ca-file",
        },
    )
    .map_err(|e| usage(anyhow!(e.message)))?;
    let rt = main_runtime()?;
    let local = tokio::task::LocalSet::new();
    let sent = local.block_on(
        &rt,
        send_one(SendOne {
            scheme,
            url: &a.to,
            secrets: &secrets,
            event: a.event.as_deref(),
            templates_dir: a.templates.as_deref(),
            kind,
            timeout,
            connector: &connector,
        }),
    );
    let out = sent.map_err(|e| runtime(anyhow!(e)))?;
    let body = serde_json::from_slice::<serde_json::Value>(&out.payload).ok();
    let id = scheme
        .id_header()
        .and_then(|h| out.headers.iter().find(|(n, _)| n == h))
        .map(|(_, v)| v.clone())
        .or_else(|| {
            let b = body.as_ref()?;
            b["id"]
                .as_str()
                .or(b["event_id"].as_str())
                .map(str::to_string)
        })
        .unwrap_or_default();
    eprintln!(
        "sent {} {} {id} ({} delivery)",
        scheme.name(),
        out.event,
        kind.tag()
    );
    for (name, value) in &out.headers {
        eprintln!("{name}: {value}");
    }
    if kind == Kind::Unsigned {
        eprintln!("(no {} header)", scheme.signature_header());
    }
    println!("{}", out.status);
    if !out.body.is_empty() {
        println!("{}", out.body);
    }
    Ok(if kind.answered_right(out.status) {
        EXIT_OK
    } else {
        eprintln!(
            "the endpoint answered {} to a {} delivery; it must answer {}",
            out.status,
            kind.tag(),
            if kind.must_accept() { "2xx" } else { "4xx" }
        );
        EXIT_RUNTIME
    })
}
