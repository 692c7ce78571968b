//! volley's message ids, `NONCE-ROOM-SLOT-SEQ-SENT` (`{{ msg.id }}`): the
//! run's nonce (8 hex digits), the room, the sender's slot in it, the room's
//! sequence number, and the send time (microseconds since the epoch, hex).
//! A receiver reads everything it needs from the id alone, so a server may
//! drop every other field, replace the message's id with its own and echo
//! ours in any field (`correlate = "/pointer"`), or keep only the text with
//! ours inside it (`correlate = { text_token = true }`). Reading one
//! allocates nothing.

use std::fmt::Write as _;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OurId {
    pub room: u64,
    pub slot: u32,
    pub seq: u64,
    /// Microseconds since the Unix epoch.
    pub sent_at: u64,
}

/// Write the id of a message into `out` (cleared first).
pub fn write(out: &mut String, nonce: &str, id: OurId) {
    out.clear();
    let _ = write!(
        out,
        "{nonce}-{}-{}-{}-{:x}",
        id.room, id.slot, id.seq, id.sent_at
    );
}

/// Read `ROOM-SLOT-SEQ-SENT` at the start of `s`: the id and the bytes it took.
fn tail(s: &str) -> Option<(OurId, usize)> {
    let b = s.as_bytes();
    let mut at = 0;
    let mut field = |hex: bool, last: bool| -> Option<u64> {
        let start = at;
        while at < b.len() && (b[at].is_ascii_digit() || (hex && b[at].is_ascii_hexdigit())) {
            at += 1;
        }
        let text = &s[start..at];
        let v = if hex {
            u64::from_str_radix(text, 16).ok()?
        } else {
            text.parse().ok()?
        };
        if !last {
            (b.get(at) == Some(&b'-')).then_some(())?;
            at += 1;
        }
        Some(v)
    };
    let room = field(false, false)?;
    let slot = u32::try_from(field(false, false)?).ok()?;
    let seq = field(false, false)?;
    let sent_at = field(true, true)?;
    Some((
        OurId {
            room,
            slot,
            seq,
            sent_at,
        },
        at,
    ))
}

/// `s` is exactly one of this run's ids.
pub fn parse_exact(nonce: &str, s: &str) -> Option<OurId> {
    let rest = s.strip_prefix(nonce)?.strip_prefix('-')?;
    match tail(rest) {
        Some((id, used)) if used == rest.len() => Some(id),
        _ => None,
    }
}

/// The first of this run's ids anywhere in `text` (a token inside a message's text).
pub fn find(nonce: &str, text: &str) -> Option<OurId> {
    text.match_indices(nonce).find_map(|(i, _)| {
        let rest = text[i + nonce.len()..].strip_prefix('-')?;
        tail(rest).map(|(id, _)| id)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: OurId = OurId {
        room: 3,
        slot: 1,
        seq: 42,
        sent_at: 1_700_000_000_123_456,
    };

    #[test]
    fn ids_round_trip() {
        let mut s = String::from("old");
        write(&mut s, "0badcafe", ID);
        assert_eq!(s, "0badcafe-3-1-42-60a2418202240");
        assert_eq!(parse_exact("0badcafe", &s), Some(ID));
        assert_eq!(parse_exact("00000000", &s), None, "another run's");
        assert_eq!(parse_exact("0badcafe", &format!("{s}x")), None);
        assert_eq!(parse_exact("0badcafe", "0badcafe-3-1-42"), None);
        assert_eq!(parse_exact("0badcafe", "0badcafe-x"), None);
        assert_eq!(parse_exact("0badcafe", "0badcafe-3-99999999999-1-1"), None);
    }

    #[test]
    fn tokens_are_found_inside_text() {
        let mut s = String::new();
        write(&mut s, "0badcafe", ID);
        for text in [
            format!("hello there {s}"),
            s.clone(),
            format!("<p>hi {s}</p>"),
            format!("0badcafe but then {s}."),
        ] {
            assert_eq!(find("0badcafe", &text), Some(ID), "{text}");
        }
        assert_eq!(find("0badcafe", "hello 0badcafe-3-"), None);
        assert_eq!(find("0badcafe", "no token"), None);
    }
}
