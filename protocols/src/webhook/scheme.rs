//! The signing schemes webhook senders use, both sides: which headers carry
//! what, what is signed and how it is encoded, the secret's format, and how
//! each provider's own library verifies a delivery.
//!
//! | scheme | signature | signed bytes | timestamp | duplicate key |
//! | --- | --- | --- | --- | --- |
//! | stripe | `Stripe-Signature: t=T,v1=HEX` | `T.body` | in the header; older than 300 s refused | the body's `id` |
//! | github | `X-Hub-Signature-256: sha256=HEX` | `body` | none | `X-GitHub-Delivery` |
//! | standard | `webhook-signature: v1,BASE64` | `ID.T.body` | `webhook-timestamp`; more than 300 s off refused | `webhook-id` |
//! | shopify | `X-Shopify-Hmac-Sha256: BASE64` | `body` | none | `X-Shopify-Webhook-Id` |
//! | slack | `X-Slack-Signature: v0=HEX` | `v0:T:body` | `X-Slack-Request-Timestamp`; more than 300 s off refused | the body's `event_id` |
//!
//! All are HMAC-SHA256. The key is the secret's bytes as written, except for
//! Standard Webhooks, whose secret is `whsec_` + the key in base64. The checks
//! follow the official verifiers (stripe-python's `WebhookSignature`,
//! `@octokit/webhooks-methods`' `verify`, the `standardwebhooks` libraries,
//! Shopify's documented HMAC check, `slack_sdk`'s `SignatureVerifier`),
//! including the order in which they look at the timestamp and signature.

use super::signature::{self, Key, VerifyError, format_int};
use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, PAD};
use http::HeaderMap;
use std::fmt::Write as _;

/// Standard base64; padding is optional when decoding (secrets are shown both
/// ways, and the Python library adds what is missing).
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    PAD.with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// How a sender signs its deliveries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Scheme {
    #[default]
    Stripe,
    Github,
    Standard,
    Shopify,
    Slack,
}

pub const SCHEMES: [Scheme; 5] = [
    Scheme::Stripe,
    Scheme::Github,
    Scheme::Standard,
    Scheme::Shopify,
    Scheme::Slack,
];

/// What a delivery's signature covers besides its body.
#[derive(Clone, Copy, Debug)]
pub struct Signed<'a> {
    /// The delivery id (signed by Standard Webhooks only).
    pub id: &'a [u8],
    /// The timestamp the signature covers (schemes with a timestamp).
    pub timestamp: i64,
    /// The timestamp written in the Stripe-Signature header: differs from
    /// `timestamp` only in a forgery that rewrote it after signing.
    pub shown: i64,
}

/// A Standard Webhooks secret that is not `whsec_` and base64.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "a Standard Webhooks secret is whsec_ followed by the key in base64 (standard alphabet A-Z a-z 0-9 + /, as the sender shows it, e.g. whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw){0}; copy it again from the sender, or make one with: echo \"whsec_$(head -c 32 /dev/urandom | base64)\""
    )]
    Base64(Where),
    #[error(
        "a Standard Webhooks secret needs a key after whsec_ (24 to 64 random bytes in base64)"
    )]
    Empty,
}

/// Where base64 decoding failed, as `: the character at 3 after whsec_ ...`.
#[derive(Debug)]
pub struct Where(base64::DecodeError);

impl std::fmt::Display for Where {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            base64::DecodeError::InvalidByte(i, _) => {
                write!(f, ": the character at {} after whsec_ is not base64", i + 1)
            }
            base64::DecodeError::InvalidLength(_) => {
                f.write_str(": its length is not that of base64 text")
            }
            _ => f.write_str(": it ends the way base64 text cannot"),
        }
    }
}

impl Scheme {
    /// As written in plans and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Stripe => "stripe",
            Scheme::Github => "github",
            Scheme::Standard => "standard",
            Scheme::Shopify => "shopify",
            Scheme::Slack => "slack",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        SCHEMES.into_iter().find(|s| s.name() == name)
    }

    /// "stripe, github, standard, shopify, slack".
    pub fn names() -> String {
        SCHEMES.map(Scheme::name).join(", ")
    }

    /// As the provider calls itself, for messages.
    pub fn title(self) -> &'static str {
        match self {
            Scheme::Stripe => "Stripe",
            Scheme::Github => "GitHub",
            Scheme::Standard => "Standard Webhooks",
            Scheme::Shopify => "Shopify",
            Scheme::Slack => "Slack",
        }
    }

    /// Whether deliveries carry a signed timestamp (and so can be stale).
    pub fn has_timestamp(self) -> bool {
        matches!(self, Scheme::Stripe | Scheme::Standard | Scheme::Slack)
    }

    /// Whether one delivery may carry a signature per secret (rotation).
    pub fn signs_with_many(self) -> bool {
        matches!(self, Scheme::Stripe | Scheme::Standard)
    }

    /// The header whose absence makes a delivery unsigned.
    pub fn signature_header(self) -> &'static str {
        match self {
            Scheme::Stripe => "Stripe-Signature",
            Scheme::Github => "X-Hub-Signature-256",
            Scheme::Standard => "webhook-signature",
            Scheme::Shopify => "X-Shopify-Hmac-Sha256",
            Scheme::Slack => "X-Slack-Signature",
        }
    }

    /// The header with the signed timestamp, when it has one of its own.
    pub fn timestamp_header(self) -> Option<&'static str> {
        match self {
            Scheme::Standard => Some("webhook-timestamp"),
            Scheme::Slack => Some("X-Slack-Request-Timestamp"),
            _ => None,
        }
    }

    /// The header with the delivery id, the same on every redelivery (the
    /// duplicate key); Stripe and Slack put it in the body.
    pub fn id_header(self) -> Option<&'static str> {
        match self {
            Scheme::Github => Some("X-GitHub-Delivery"),
            Scheme::Standard => Some("webhook-id"),
            Scheme::Shopify => Some("X-Shopify-Webhook-Id"),
            _ => None,
        }
    }

    /// The header naming the event type, when the body does not.
    pub fn type_header(self) -> Option<&'static str> {
        match self {
            Scheme::Github => Some("X-GitHub-Event"),
            Scheme::Shopify => Some("X-Shopify-Topic"),
            _ => None,
        }
    }

    /// Every header the driver sets per delivery (a plan may not set them).
    pub fn delivery_headers(self) -> Vec<&'static str> {
        let mut v = vec![self.signature_header()];
        v.extend(self.timestamp_header());
        v.extend(self.id_header());
        v.extend(self.type_header());
        match self {
            Scheme::Shopify => v.extend(["X-Shopify-Event-Id", "X-Shopify-Triggered-At"]),
            Scheme::Slack => v.extend(["X-Slack-Retry-Num", "X-Slack-Retry-Reason"]),
            _ => {}
        }
        v
    }

    /// The environment variable the docs and messages suggest for the secret.
    pub fn secret_var(self) -> &'static str {
        match self {
            Scheme::Stripe => "STRIPE_WEBHOOK_SECRET",
            Scheme::Github => "GITHUB_WEBHOOK_SECRET",
            Scheme::Standard => "WEBHOOK_SECRET",
            Scheme::Shopify => "SHOPIFY_API_SECRET",
            Scheme::Slack => "SLACK_SIGNING_SECRET",
        }
    }

    /// What the secret looks like, for messages.
    pub fn secret_example(self) -> &'static str {
        match self {
            Scheme::Stripe => "whsec_...",
            Scheme::Standard => "whsec_ + the key in base64",
            Scheme::Github => "the webhook's secret",
            Scheme::Shopify => "the app's client secret",
            Scheme::Slack => "the app's signing secret",
        }
    }

    /// The HMAC key of `secret` as this scheme reads it.
    pub fn key(self, secret: &str) -> Result<Key, SecretError> {
        if self != Scheme::Standard {
            return Ok(Key::new(secret.as_bytes()));
        }
        let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
        let key = B64
            .decode(encoded)
            .map_err(|e| SecretError::Base64(Where(e)))?;
        if key.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Key::new(&key))
    }

    /// Append the signature header's value to `out`: one signature per key
    /// for the schemes that carry several, the first key's for the others.
    pub fn write_signature(self, out: &mut String, keys: &[Key], s: Signed<'_>, body: &[u8]) {
        let mut t = [0u8; 20];
        let ts = format_int(s.timestamp, &mut t);
        let first = keys.first();
        match self {
            Scheme::Stripe => {
                let _ = write!(out, "t={}", s.shown);
                for k in keys {
                    out.push_str(",v1=");
                    let sig = k.sign_hex(s.timestamp, body);
                    out.push_str(std::str::from_utf8(&sig).expect("hex is ASCII"));
                }
            }
            Scheme::Github => {
                if let Some(k) = first {
                    out.push_str("sha256=");
                    push_hex(out, &k.digest(&[body]));
                }
            }
            Scheme::Standard => {
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str("v1,");
                    B64.encode_string(k.digest(&[s.id, b".", ts, b".", body]), out);
                }
            }
            Scheme::Shopify => {
                if let Some(k) = first {
                    B64.encode_string(k.digest(&[body]), out);
                }
            }
            Scheme::Slack => {
                if let Some(k) = first {
                    out.push_str("v0=");
                    push_hex(out, &k.digest(&[b"v0:", ts, b":", body]));
                }
            }
        }
    }

    /// The headers that sign `body`, as (name, value), in the order a
    /// provider sends them: what `volley webhook sign` prints.
    pub fn sign_headers(
        self,
        keys: &[Key],
        id: &str,
        timestamp: i64,
        body: &[u8],
    ) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(h) = self.id_header()
            && self == Scheme::Standard
        {
            out.push((h, id.to_string()));
        }
        if let Some(h) = self.timestamp_header() {
            out.push((h, timestamp.to_string()));
        }
        let mut sig = String::new();
        let signed = Signed {
            id: id.as_bytes(),
            timestamp,
            shown: timestamp,
        };
        self.write_signature(&mut sig, keys, signed, body);
        out.push((self.signature_header(), sig));
        out
    }

    /// Verify a delivery as the provider's own library does. `tolerance_secs`
    /// applies to the schemes with a timestamp (0 turns the check off).
    pub fn verify(
        self,
        headers: &HeaderMap,
        body: &[u8],
        key: &Key,
        tolerance_secs: u64,
        now: i64,
    ) -> Result<(), VerifyError> {
        let get = |name: &str| headers.get(name).map(|v| v.as_bytes());
        let sig = get(self.signature_header());
        match self {
            Scheme::Stripe => signature::verify(sig, body, key, tolerance_secs, now).map(|_| ()),
            // @octokit/webhooks-methods compares "sha256=<hex>" as a whole.
            Scheme::Github => {
                let sig = sig.ok_or(VerifyError::Missing)?;
                let hex_sig = sig.strip_prefix(b"sha256=").ok_or(VerifyError::Mismatch)?;
                let mut raw = [0u8; 32];
                let ok = hex::decode_to_slice(hex_sig, &mut raw).is_ok()
                    && hex_sig.iter().all(|b| !b.is_ascii_uppercase())
                    && key.verify_parts(&[body], &raw);
                ok.then_some(()).ok_or(VerifyError::Mismatch)
            }
            // The libraries want all three headers, then a timestamp within
            // the tolerance either way, then any matching "v1,".
            Scheme::Standard => {
                let (Some(id), Some(ts), Some(sig)) =
                    (get("webhook-id"), get("webhook-timestamp"), sig)
                else {
                    return Err(VerifyError::Missing);
                };
                let ts = parse_ts(ts)?;
                fresh(ts, tolerance_secs, now)?;
                let mut t = [0u8; 20];
                let ts = format_int(ts, &mut t);
                let mut raw = [0u8; 64];
                let matched = sig.split(|b| *b == b' ').any(|item| {
                    let Some(b64) = item.strip_prefix(b"v1,") else {
                        return false;
                    };
                    matches!(B64.decode_slice(b64, &mut raw), Ok(32))
                        && key.verify_parts(&[id, b".", ts, b".", body], &raw[..32])
                });
                matched.then_some(()).ok_or(VerifyError::Mismatch)
            }
            // Shopify's documented check: base64 of the HMAC of the raw body.
            Scheme::Shopify => {
                let sig = sig.ok_or(VerifyError::Missing)?;
                let mut raw = [0u8; 64];
                let ok = matches!(B64.decode_slice(sig, &mut raw), Ok(32))
                    && key.verify_parts(&[body], &raw[..32]);
                ok.then_some(()).ok_or(VerifyError::Mismatch)
            }
            // slack_sdk: both headers, the timestamp within 5 minutes either
            // way, then "v0=<hex>" compared as a whole.
            Scheme::Slack => {
                let (Some(ts), Some(sig)) = (get("X-Slack-Request-Timestamp"), sig) else {
                    return Err(VerifyError::Missing);
                };
                let ts = parse_ts(ts)?;
                fresh(ts, tolerance_secs, now)?;
                let mut t = [0u8; 20];
                let ts = format_int(ts, &mut t);
                let hex_sig = sig.strip_prefix(b"v0=").ok_or(VerifyError::Mismatch)?;
                let mut raw = [0u8; 32];
                let ok = hex::decode_to_slice(hex_sig, &mut raw).is_ok()
                    && hex_sig.iter().all(|b| !b.is_ascii_uppercase())
                    && key.verify_parts(&[b"v0:", ts, b":", body], &raw);
                ok.then_some(()).ok_or(VerifyError::Mismatch)
            }
        }
    }
}

fn push_hex(out: &mut String, digest: &[u8; 32]) {
    let mut buf = [0u8; 64];
    hex::encode_to_slice(digest, &mut buf).expect("64 hex digits for 32 bytes");
    out.push_str(std::str::from_utf8(&buf).expect("hex is ASCII"));
}

fn parse_ts(v: &[u8]) -> Result<i64, VerifyError> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .ok_or(VerifyError::Malformed)
}

/// Within the tolerance of `now`, before or after (Standard Webhooks, Slack).
fn fresh(ts: i64, tolerance_secs: u64, now: i64) -> Result<(), VerifyError> {
    let tol = i64::try_from(tolerance_secs).unwrap_or(i64::MAX);
    if tolerance_secs > 0 && now.saturating_sub(ts).saturating_abs() > tol {
        return Err(VerifyError::Stale);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    // Vectors computed outside this code, with Python's hmac, hashlib and
    // base64 modules (commands beside each), and for Standard Webhooks and
    // Slack with the providers' own libraries (standardwebhooks 1.1.0's
    // Webhook.sign, slack_sdk 3's SignatureVerifier.generate_signature).
    const BODY: &[u8] = br#"{"id":"evt_test","object":"event"}"#;
    const TS: i64 = 1_700_000_000;

    fn sign(scheme: Scheme, secret: &str, id: &str) -> Vec<(&'static str, String)> {
        let key = scheme.key(secret).unwrap();
        scheme.sign_headers(&[key], id, TS, BODY)
    }

    #[test]
    fn each_scheme_signs_as_its_provider() {
        // hmac.new(b"whsec_test_secret", b"1700000000." + BODY, sha256).hexdigest()
        assert_eq!(
            sign(Scheme::Stripe, "whsec_test_secret", ""),
            [(
                "Stripe-Signature",
                "t=1700000000,v1=8042376f6ca064adbe037642a718227dfd59047137eb49497a54c49eb0cfb724"
                    .to_string()
            )]
        );
        // @octokit/webhooks-methods: await sign("It's a Secret to Everybody", "Hello, World!")
        // (the example of GitHub's docs on validating deliveries).
        let k = Scheme::Github.key("It's a Secret to Everybody").unwrap();
        assert_eq!(
            Scheme::Github.sign_headers(&[k], "", 0, b"Hello, World!"),
            [(
                "X-Hub-Signature-256",
                "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
                    .to_string()
            )]
        );
        // standardwebhooks.Webhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        //   .sign("msg_p5jXN8AQM9LWM0D4loKWxJek", datetime(1614265330), BODY)
        assert_eq!(
            Scheme::Standard.sign_headers(
                &[Scheme::Standard
                    .key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
                    .unwrap()],
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                br#"{"test": 2432232314}"#
            ),
            [
                ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek".to_string()),
                ("webhook-timestamp", "1614265330".to_string()),
                (
                    "webhook-signature",
                    "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=".to_string()
                )
            ]
        );
        // base64.b64encode(hmac.new(b"hush", BODY, sha256).digest())
        assert_eq!(
            sign(Scheme::Shopify, "hush", ""),
            [(
                "X-Shopify-Hmac-Sha256",
                "Z3rSOdt652m4AqThbPp+bkJcHut0VS6qyaNgmDxWvVs=".to_string()
            )]
        );
        // slack_sdk SignatureVerifier("8f742231b10e8888abcd99yyyzzz85a5")
        //   .generate_signature(timestamp="1531420618", body=<Slack's docs example>)
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let k = Scheme::Slack
            .key("8f742231b10e8888abcd99yyyzzz85a5")
            .unwrap();
        assert_eq!(
            Scheme::Slack.sign_headers(&[k], "", 1_531_420_618, body),
            [
                ("X-Slack-Request-Timestamp", "1531420618".to_string()),
                (
                    "X-Slack-Signature",
                    "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
                        .to_string()
                )
            ]
        );
    }

    #[test]
    fn standard_secrets_are_base64_after_the_prefix() {
        assert!(
            Scheme::Standard
                .key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
                .is_ok()
        );
        // Without the prefix, and unpadded, as the libraries take them.
        assert!(
            Scheme::Standard
                .key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
                .is_ok()
        );
        assert!(Scheme::Standard.key("whsec_c2VjcmV0").is_ok());
        assert!(Scheme::Standard.key("whsec_b2xkIGtleQ").is_ok());
        for bad in [
            "whsec_volley_test",
            "whsec_not base64",
            "whsec_",
            "whsec_abcde",
        ] {
            let e = Scheme::Standard
                .key(bad)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_else(|| panic!("{bad}"));
            assert!(
                e.contains("base64") || e.contains("needs a key"),
                "{bad}: {e}"
            );
        }
        // Other schemes take any bytes as the key.
        assert!(Scheme::Github.key("whsec_volley_test").is_ok());
    }

    fn headers(pairs: &[(&str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn each_scheme_verifies_what_it_signs_and_refuses_the_rest() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        for scheme in SCHEMES {
            let key = scheme.key(secret).unwrap();
            let now = TS + 10;
            let good = headers(&scheme.sign_headers(std::slice::from_ref(&key), "msg_1", TS, BODY));
            assert_eq!(
                scheme.verify(&good, BODY, &key, 300, now),
                Ok(()),
                "{scheme:?}"
            );
            // Another secret, or another body.
            let other = scheme.key("whsec_c2VjcmV0").unwrap();
            let forged = headers(&scheme.sign_headers(&[other], "msg_1", TS, BODY));
            assert_eq!(
                scheme.verify(&forged, BODY, &key, 300, now),
                Err(VerifyError::Mismatch),
                "{scheme:?}"
            );
            assert_eq!(
                scheme.verify(&good, b"{}", &key, 300, now),
                Err(VerifyError::Mismatch),
                "{scheme:?}"
            );
            // No signature header.
            let mut unsigned = good.clone();
            unsigned.remove(scheme.signature_header());
            assert_eq!(
                scheme.verify(&unsigned, BODY, &key, 300, now),
                Err(VerifyError::Missing),
                "{scheme:?}"
            );
            // Signed longer ago than the tolerance: refused where there is a
            // timestamp; the others cannot tell.
            let late = scheme.verify(&good, BODY, &key, 300, TS + 301);
            if scheme.has_timestamp() {
                assert_eq!(late, Err(VerifyError::Stale), "{scheme:?}");
                assert!(scheme.verify(&good, BODY, &key, 300, TS + 300).is_ok());
            } else {
                assert_eq!(late, Ok(()), "{scheme:?}");
            }
        }
    }

    #[test]
    fn timestamps_in_their_own_header_are_checked_both_ways_and_signed() {
        for scheme in [Scheme::Standard, Scheme::Slack] {
            let key = scheme.key("whsec_c2VjcmV0").unwrap();
            let good = headers(&scheme.sign_headers(std::slice::from_ref(&key), "msg_1", TS, BODY));
            // Too far in the future is refused too.
            assert_eq!(
                scheme.verify(&good, BODY, &key, 300, TS - 301),
                Err(VerifyError::Stale)
            );
            // The timestamp rewritten after signing.
            let mut moved = good.clone();
            let h = scheme.timestamp_header().unwrap();
            moved.insert(h, HeaderValue::from(TS + 5));
            assert_eq!(
                scheme.verify(&moved, BODY, &key, 300, TS),
                Err(VerifyError::Mismatch)
            );
            moved.insert(h, HeaderValue::from_static("soon"));
            assert_eq!(
                scheme.verify(&moved, BODY, &key, 300, TS),
                Err(VerifyError::Malformed)
            );
        }
        // Standard Webhooks signs the id too, and takes any matching v1 of a
        // space-separated list.
        let s = Scheme::Standard;
        let key = s.key("whsec_c2VjcmV0").unwrap();
        let old = s.key("whsec_b2xkIGtleQ==").unwrap();
        let both = headers(&s.sign_headers(&[old, key.clone()], "msg_1", TS, BODY));
        assert!(both["webhook-signature"].to_str().unwrap().contains(" v1,"));
        assert_eq!(s.verify(&both, BODY, &key, 300, TS), Ok(()));
        let mut other_id = both.clone();
        other_id.insert("webhook-id", HeaderValue::from_static("msg_2"));
        assert_eq!(
            s.verify(&other_id, BODY, &key, 300, TS),
            Err(VerifyError::Mismatch)
        );
        let mut no_id = both;
        no_id.remove("webhook-id");
        assert_eq!(
            s.verify(&no_id, BODY, &key, 300, TS),
            Err(VerifyError::Missing)
        );
    }

    #[test]
    fn names_parse_and_list() {
        for s in SCHEMES {
            assert_eq!(Scheme::parse(s.name()), Some(s));
        }
        assert_eq!(Scheme::parse("svix"), None);
        assert_eq!(Scheme::names(), "stripe, github, standard, shopify, slack");
        assert_eq!(Scheme::default(), Scheme::Stripe);
    }
}
