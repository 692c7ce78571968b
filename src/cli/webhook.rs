//! `volley webhook sign|send`: debugging a receiver by hand.

use super::*;

#[derive(Subcommand)]
pub(super) enum WebhookCmd {
    /// Print the Stripe-Signature header for a payload (use with curl -H).
    Sign(SignArgs),
    /// Send one signed Stripe event and print the answer. Exit 0 when the
    /// answer is the one its kind must get (2xx for valid, 4xx otherwise).
    Send(SendArgs),
}

#[derive(Args)]
pub(super) struct SignArgs {
    /// The endpoint's signing secret (repeat while rotating: one v1 each).
    #[arg(
        long,
        required = true,
        env = "STRIPE_WEBHOOK_SECRET",
        value_delimiter = ','
    )]
    pub(super) secret: Vec<String>,
    /// The raw body, signed byte for byte ('-': standard input).
    #[arg(long, value_name = "FILE")]
    pub(super) payload: PathBuf,
    /// Unix seconds to sign with (default: now).
    #[arg(long)]
    pub(super) timestamp: Option<i64>,
}

#[derive(Args)]
pub(super) struct SendArgs {
    /// The endpoint URL, e.g. http://127.0.0.1:8080/webhooks/stripe.
    #[arg(long)]
    pub(super) to: String,
    /// The endpoint's signing secret (repeat while rotating).
    #[arg(long, env = "STRIPE_WEBHOOK_SECRET", value_delimiter = ',')]
    pub(super) secret: Vec<String>,
    /// Event type, e.g. invoice.paid (a built-in template or one in --templates).
    #[arg(long, default_value = "payment_intent.succeeded")]
    pub(super) event: String,
    /// A folder of event templates (*.json) beside the built-in ones.
    #[arg(long, value_name = "DIR")]
    pub(super) templates: Option<PathBuf>,
    /// What to send: a valid delivery, or one the endpoint must refuse.
    #[arg(long, value_enum, default_value = "valid")]
    pub(super) kind: SendKind,
    /// Give up after this long.
    #[arg(long, default_value = "30s")]
    pub(super) timeout: String,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub(super) enum SendKind {
    Valid,
    Forged,
    Stale,
    Unsigned,
}

pub(super) fn cmd_webhook_sign(a: SignArgs) -> Result<u8, Failure> {
    check_secrets(&a.secret)?;
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
    let secrets: Vec<&str> = a.secret.iter().map(String::as_str).collect();
    let header = volley_protocols::webhook::signature::header(&secrets, t, &payload);
    println!("Stripe-Signature: {header}");
    Ok(EXIT_OK)
}

/// An empty secret signs with an empty key: nothing a receiver could check.
fn check_secrets(secrets: &[String]) -> Result<(), Failure> {
    if secrets.iter().any(String::is_empty) {
        return Err(usage(anyhow!(
            "--secret: a secret is empty (is STRIPE_WEBHOOK_SECRET set?); give the endpoint's signing secret, e.g. --secret whsec_..., and several as --secret a,b while it rotates"
        )));
    }
    Ok(())
}

pub(super) fn cmd_webhook_send(a: SendArgs) -> Result<u8, Failure> {
    use volley_protocols::webhook::{Kind, send_one};
    check_secrets(&a.secret)?;
    let timeout = volley_protocols::duration::parse_duration(&a.timeout)
        .map_err(|e| usage(anyhow!("--timeout: {e}")))?;
    let kind = match a.kind {
        SendKind::Valid => Kind::Valid,
        SendKind::Forged => Kind::Forged,
        SendKind::Stale => Kind::Stale,
        SendKind::Unsigned => Kind::Unsigned,
    };
    let rt = main_runtime()?;
    let local = tokio::task::LocalSet::new();
    let sent = local.block_on(
        &rt,
        send_one(
            &a.to,
            &a.secret,
            &a.event,
            a.templates.as_deref(),
            kind,
            timeout,
        ),
    );
    let out = sent.map_err(|e| runtime(anyhow!(e)))?;
    let id = serde_json::from_slice::<serde_json::Value>(&out.payload)
        .ok()
        .and_then(|v| v["id"].as_str().map(str::to_string))
        .unwrap_or_default();
    eprintln!("sent {} {id} ({} delivery)", a.event, kind.tag());
    match &out.signature {
        Some(h) => eprintln!("Stripe-Signature: {h}"),
        None => eprintln!("(no Stripe-Signature header)"),
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
