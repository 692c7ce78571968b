//! Stripe's webhook signature scheme, both sides.
//!
//! `Stripe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`,
//! one `v1=` per signing secret while a secret rotates. The secret (the whole
//! `whsec_...` string) is the HMAC key as is. Verification follows Stripe's
//! libraries: any `v1` may match, compared in constant time, then the
//! timestamp must be within the tolerance (300 s by default).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::fmt::Write as _;

pub const HEADER: &str = "stripe-signature";

/// Stripe's default tolerance for the signed timestamp.
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;

type HmacSha256 = Hmac<Sha256>;

/// One signing secret with its HMAC key schedule done once.
#[derive(Clone)]
pub struct Key(HmacSha256);

impl Key {
    pub fn new(secret: &[u8]) -> Self {
        Self(HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length"))
    }

    fn mac(&self, timestamp: i64, payload: &[u8]) -> HmacSha256 {
        let mut mac = self.0.clone();
        let mut t = [0u8; 20];
        mac.update(format_int(timestamp, &mut t));
        mac.update(b".");
        mac.update(payload);
        mac
    }

    /// Lower-case hex of HMAC-SHA256(secret, "<timestamp>.<payload>").
    pub fn sign_hex(&self, timestamp: i64, payload: &[u8]) -> [u8; 64] {
        let digest = self.mac(timestamp, payload).finalize().into_bytes();
        let mut out = [0u8; 64];
        hex::encode_to_slice(digest, &mut out).expect("64 hex digits for 32 bytes");
        out
    }

    /// Constant-time check of one signature (raw bytes, decoded from hex).
    pub fn verify(&self, timestamp: i64, payload: &[u8], signature: &[u8]) -> bool {
        self.mac(timestamp, payload).verify_slice(signature).is_ok()
    }

    fn mac_of(&self, parts: &[&[u8]]) -> HmacSha256 {
        let mut mac = self.0.clone();
        for p in parts {
            mac.update(p);
        }
        mac
    }

    /// HMAC-SHA256 of `parts` one after the other, as the other schemes sign.
    pub fn digest(&self, parts: &[&[u8]]) -> [u8; 32] {
        self.mac_of(parts).finalize().into_bytes().into()
    }

    /// Constant-time check of a raw signature over `parts`.
    pub fn verify_parts(&self, parts: &[&[u8]], signature: &[u8]) -> bool {
        self.mac_of(parts).verify_slice(signature).is_ok()
    }
}

pub(crate) fn format_int(v: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    let _ = std::io::Write::write_fmt(&mut cursor, format_args!("{v}"));
    let n = cursor.position() as usize;
    &buf[..n]
}

/// Append the header value `t=<timestamp>,v1=<sig>[,v1=<sig>...]` to `out`.
pub fn write_header(out: &mut String, keys: &[Key], timestamp: i64, payload: &[u8]) {
    let _ = write!(out, "t={timestamp}");
    for k in keys {
        out.push_str(",v1=");
        let sig = k.sign_hex(timestamp, payload);
        out.push_str(std::str::from_utf8(&sig).expect("hex is ASCII"));
    }
}

/// The header value for `secrets` (one `v1` each), as Stripe would send it.
pub fn header(secrets: &[&str], timestamp: i64, payload: &[u8]) -> String {
    let keys: Vec<Key> = secrets.iter().map(|s| Key::new(s.as_bytes())).collect();
    let mut out = String::new();
    write_header(&mut out, &keys, timestamp, payload);
    out
}

/// Why a delivery was refused, in the words of Stripe's libraries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("no Stripe-Signature header")]
    Missing,
    #[error("unable to extract timestamp and signatures from header")]
    Malformed,
    #[error("no signatures found with expected scheme v1")]
    NoV1,
    #[error("no signatures found matching the expected signature for payload")]
    Mismatch,
    #[error("timestamp outside the tolerance zone")]
    Stale,
}

impl VerifyError {
    /// Short name, as the receiver counts rejections.
    pub fn reason(self) -> &'static str {
        match self {
            VerifyError::Missing => "missing_header",
            VerifyError::Malformed => "malformed_header",
            VerifyError::NoV1 => "no_v1_signature",
            VerifyError::Mismatch => "signature_mismatch",
            VerifyError::Stale => "timestamp_outside_tolerance",
        }
    }
}

/// Verify a delivery as Stripe's libraries do; returns the signed timestamp.
/// `header` is the Stripe-Signature value (None when absent), `now` unix seconds.
pub fn verify(
    header: Option<&[u8]>,
    payload: &[u8],
    key: &Key,
    tolerance_secs: u64,
    now: i64,
) -> Result<i64, VerifyError> {
    let header = header.ok_or(VerifyError::Missing)?;
    let header = std::str::from_utf8(header).map_err(|_| VerifyError::Malformed)?;
    let mut timestamp = None;
    let mut any_v1 = false;
    let mut matched = false;
    // The timestamp may come after the signatures: find it first.
    for item in header.split(',') {
        if let Some(t) = item.trim().strip_prefix("t=") {
            timestamp = Some(t.parse::<i64>().map_err(|_| VerifyError::Malformed)?);
        }
    }
    let timestamp = timestamp.ok_or(VerifyError::Malformed)?;
    let mut raw = [0u8; 32];
    for item in header.split(',') {
        let Some(sig) = item.trim().strip_prefix("v1=") else {
            continue;
        };
        any_v1 = true;
        // A v1 that is not 64 hex digits cannot match; keep looking.
        if hex::decode_to_slice(sig, &mut raw).is_ok() && key.verify(timestamp, payload, &raw) {
            matched = true;
        }
    }
    if !any_v1 {
        return Err(VerifyError::NoV1);
    }
    if !matched {
        return Err(VerifyError::Mismatch);
    }
    if tolerance_secs > 0 && now.saturating_sub(timestamp) > tolerance_secs as i64 {
        return Err(VerifyError::Stale);
    }
    Ok(timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors computed outside this code, with Python's hmac module:
    //   python3 -c 'import hmac,hashlib; print(hmac.new(SECRET.encode(),
    //     b"<t>." + PAYLOAD, hashlib.sha256).hexdigest())'
    // and cross-checked with OpenSSL:
    //   printf '%s' '<t>.<payload>' | openssl dgst -sha256 -hmac SECRET
    const PAYLOAD: &[u8] = br#"{"id":"evt_test","object":"event"}"#;

    #[test]
    fn signs_like_stripe_fixed_vectors() {
        // printf '%s' '1700000000.{"id":"evt_test","object":"event"}' | openssl dgst -sha256 -hmac whsec_test_secret
        assert_eq!(
            header(&["whsec_test_secret"], 1_700_000_000, PAYLOAD),
            "t=1700000000,v1=8042376f6ca064adbe037642a718227dfd59047137eb49497a54c49eb0cfb724"
        );
        // printf '%s' '1609459200.{}' | openssl dgst -sha256 -hmac whsec_plMj3rBbBwnbXKdQWdbXV7mDfQ1LIfFd
        assert_eq!(
            header(
                &["whsec_plMj3rBbBwnbXKdQWdbXV7mDfQ1LIfFd"],
                1_609_459_200,
                b"{}"
            ),
            "t=1609459200,v1=ad78fdc5145755a2a55d337400db0377077d4afadf0be7f03c19434e1a31d955"
        );
        // An empty body (python3 hmac.new(b"whsec_test_secret", b"1700000000.", sha256)).
        assert_eq!(
            header(&["whsec_test_secret"], 1_700_000_000, b""),
            "t=1700000000,v1=316b9ab98c15bfa039d243f3196acee619cf29749a91a634e6a8154e2f7b6727"
        );
        // UTF-8 and a trailing newline are signed byte for byte:
        // printf '1700000123.{"name":"Zoë","amount":1999}\n' | openssl dgst -sha256 -hmac whsec_test_secret
        assert_eq!(
            header(
                &["whsec_test_secret"],
                1_700_000_123,
                "{\"name\":\"Zoë\",\"amount\":1999}\n".as_bytes()
            ),
            "t=1700000123,v1=a11770a36109ad8ac9771b6e3a3934d5d5bae85414c1968a4a273c765b05623b"
        );
    }

    #[test]
    fn one_v1_per_secret_while_rotating() {
        // python3: hmac.new(b"whsec_rotated_2", b"1700000000." + PAYLOAD, sha256)
        assert_eq!(
            header(
                &["whsec_test_secret", "whsec_rotated_2"],
                1_700_000_000,
                PAYLOAD
            ),
            "t=1700000000,v1=8042376f6ca064adbe037642a718227dfd59047137eb49497a54c49eb0cfb724,\
             v1=468c4fe62c4d899f628f8a16901c7f6b27fcdb2bf63f176c423d2e69d5b2fb9c"
        );
    }

    #[test]
    fn verifies_as_stripe_libraries_do() {
        let key = Key::new(b"whsec_test_secret");
        let now = 1_700_000_100;
        let good = header(&["whsec_test_secret"], 1_700_000_000, PAYLOAD);
        assert_eq!(
            verify(Some(good.as_bytes()), PAYLOAD, &key, 300, now),
            Ok(1_700_000_000)
        );
        // Any matching v1 will do (the old secret's signature first).
        let rotated = header(&["whsec_old", "whsec_test_secret"], 1_700_000_000, PAYLOAD);
        assert!(verify(Some(rotated.as_bytes()), PAYLOAD, &key, 300, now).is_ok());
        // Order of the items does not matter; unknown schemes are ignored.
        let reordered = format!(
            "v0=abc,{}",
            good.replace("t=1700000000,", "") + ",t=1700000000"
        );
        assert!(verify(Some(reordered.as_bytes()), PAYLOAD, &key, 300, now).is_ok());

        let err = |h: &str, body: &[u8], now| verify(Some(h.as_bytes()), body, &key, 300, now);
        assert_eq!(
            verify(None, PAYLOAD, &key, 300, now),
            Err(VerifyError::Missing)
        );
        assert_eq!(err("v1=00", PAYLOAD, now), Err(VerifyError::Malformed));
        assert_eq!(
            err("t=soon,v1=00", PAYLOAD, now),
            Err(VerifyError::Malformed)
        );
        assert_eq!(err("t=1700000000", PAYLOAD, now), Err(VerifyError::NoV1));
        // Wrong secret, altered body, or a timestamp changed after signing.
        let forged = header(&["whsec_guess"], 1_700_000_000, PAYLOAD);
        assert_eq!(err(&forged, PAYLOAD, now), Err(VerifyError::Mismatch));
        assert_eq!(
            err(&good, b"{\"id\":\"evt_other\"}", now),
            Err(VerifyError::Mismatch)
        );
        let replayed = good.replace("t=1700000000", "t=1700000090");
        assert_eq!(err(&replayed, PAYLOAD, now), Err(VerifyError::Mismatch));
        assert_eq!(
            err("t=1700000000,v1=zz", PAYLOAD, now),
            Err(VerifyError::Mismatch)
        );
        // Older than the tolerance: refused; exactly at it: accepted.
        assert_eq!(err(&good, PAYLOAD, 1_700_000_301), Err(VerifyError::Stale));
        assert!(err(&good, PAYLOAD, 1_700_000_300).is_ok());
        // Tolerance 0 turns the age check off, as in Stripe's libraries.
        assert!(verify(Some(good.as_bytes()), PAYLOAD, &key, 0, now + 10_000).is_ok());
    }
}
