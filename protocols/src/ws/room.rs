//! What each room member should receive, shared by the VUs of a room across
//! worker threads.
//!
//! Every message sent in a room takes the room's next sequence number (under
//! the room's lock: one lock per room, never a global one) and a log entry
//! (sender, send time). A member registers once the server has it in the room
//! and expects every message numbered from then on that another member sends,
//! until it leaves. It marks what it receives in a private bit window (no
//! lock) and, when its oldest unsettled message reaches its deadline, walks
//! the log from its lowest unsettled number: received, its own, or unsent is
//! settled; unreceived past the deadline is lost. The log is trimmed up to the
//! lowest position any present member still needs.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

#[derive(Clone, Copy)]
struct Entry {
    sent_at: Instant,
    sender: u32,
    failed: bool,
}

#[derive(Default)]
struct State {
    next_seq: u64,
    /// Sequence number of `log[0]`.
    base: u64,
    log: VecDeque<Entry>,
    /// Per member slot: lowest sequence number it has not settled, while present.
    cursors: Vec<Option<u64>>,
}

impl State {
    fn trim(&mut self) {
        let keep = self
            .cursors
            .iter()
            .flatten()
            .copied()
            .min()
            .unwrap_or(self.next_seq);
        while self.base < keep && self.log.pop_front().is_some() {
            self.base += 1;
        }
        if self.log.is_empty() {
            self.base = self.next_seq;
        }
    }
}

pub struct Room {
    pub index: u64,
    pub name: String,
    state: Mutex<State>,
    /// Metric series of this room, resolved by its first member.
    pub series: OnceLock<super::vu::RoomSeries>,
}

/// The outcome of settling a member's expected messages.
#[derive(Debug, Default, PartialEq)]
pub struct Settled {
    pub lost: u64,
    /// When the oldest unsettled message reaches its deadline.
    pub next: Option<Instant>,
    /// Nothing below the member's limit is left unsettled.
    pub done: bool,
}

/// One member's view: its slot, where it stands, and what it has received.
pub struct Member {
    pub slot: u32,
    pub low: u64,
    /// Set when the member leaves: messages from here on are not its concern.
    pub until: Option<u64>,
    window: SeqWindow,
}

impl Member {
    pub fn received(&mut self, seq: u64) {
        if seq >= self.low && self.until.is_none_or(|u| seq < u) {
            self.window.set(seq);
        }
    }
}

impl Room {
    pub fn new(index: u64, name: String, size: usize) -> Self {
        Self {
            index,
            name,
            state: Mutex::new(State {
                cursors: vec![None; size],
                ..State::default()
            }),
            series: OnceLock::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking VU cannot leave the state half-updated in a way that
        // matters more than stopping the run would.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Register a member (the server has it in the room): it expects what is sent from now on.
    pub fn join(&self, slot: u32) -> Member {
        let mut st = self.lock();
        let low = st.next_seq;
        if let Some(c) = st.cursors.get_mut(slot as usize) {
            *c = Some(low);
        }
        Member {
            slot,
            low,
            until: None,
            window: SeqWindow::new(low),
        }
    }

    /// Number a message about to be sent, unless `end` has already come:
    /// checked under the lock, so that a member leaving at `end` and a message
    /// numbered before `end` are ordered the same way for everyone.
    pub fn send(&self, slot: u32, end: Instant) -> Option<u64> {
        let mut st = self.lock();
        let now = Instant::now();
        if now >= end {
            return None;
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        st.log.push_back(Entry {
            sent_at: now,
            sender: slot,
            failed: false,
        });
        Some(seq)
    }

    /// The message never left: nobody should expect it.
    pub fn failed(&self, seq: u64) {
        let mut st = self.lock();
        let base = st.base;
        if seq >= base
            && let Some(e) = st.log.get_mut((seq - base) as usize)
        {
            e.failed = true;
        }
    }

    /// Stop expecting what is sent from now on (the member still settles what came before).
    pub fn leave(&self, m: &mut Member) {
        if m.until.is_none() {
            m.until = Some(self.lock().next_seq);
        }
    }

    /// Settle what `m` expects: received, own and unsent messages are done,
    /// those past `deadline` (or all, when `gone`: the connection is closed) are lost.
    pub fn settle(&self, m: &mut Member, now: Instant, deadline: Duration, gone: bool) -> Settled {
        let mut st = self.lock();
        let limit = m.until.unwrap_or(st.next_seq);
        let mut out = Settled::default();
        while m.low < limit {
            let Some(e) = st
                .log
                .get((m.low.saturating_sub(st.base)) as usize)
                .filter(|_| m.low >= st.base)
                .copied()
            else {
                // Trimmed: can only happen to a member that was not registered.
                m.low = limit;
                break;
            };
            if e.sender == m.slot || e.failed || m.window.has(m.low) {
                m.low += 1;
                continue;
            }
            if gone || now.saturating_duration_since(e.sent_at) >= deadline {
                out.lost += 1;
                m.low += 1;
                continue;
            }
            out.next = Some(e.sent_at + deadline);
            break;
        }
        out.done = m.low >= limit && m.until.is_some();
        if let Some(c) = st.cursors.get_mut(m.slot as usize) {
            *c = Some(m.low);
        }
        st.trim();
        drop(st);
        m.window.advance(m.low);
        out
    }

    /// The member is gone: it no longer holds the log.
    pub fn remove(&self, slot: u32) {
        let mut st = self.lock();
        if let Some(c) = st.cursors.get_mut(slot as usize) {
            *c = None;
        }
        st.trim();
    }

    #[cfg(test)]
    fn log_len(&self) -> usize {
        self.lock().log.len()
    }
}

/// Which sequence numbers from `start` on were received, one bit each.
struct SeqWindow {
    /// Sequence number of bit 0 of `words[0]`; a multiple of 64.
    start: u64,
    words: VecDeque<u64>,
}

/// A message numbered further ahead than this is not ours (a confused server).
const MAX_AHEAD_WORDS: u64 = 1 << 14;

impl SeqWindow {
    fn new(low: u64) -> Self {
        Self {
            start: low - low % 64,
            words: VecDeque::new(),
        }
    }

    fn set(&mut self, seq: u64) {
        if seq < self.start {
            return;
        }
        let w = (seq - self.start) / 64;
        if w >= MAX_AHEAD_WORDS {
            return;
        }
        while self.words.len() as u64 <= w {
            self.words.push_back(0);
        }
        self.words[w as usize] |= 1 << (seq % 64);
    }

    fn has(&self, seq: u64) -> bool {
        if seq < self.start {
            return false;
        }
        let w = ((seq - self.start) / 64) as usize;
        self.words
            .get(w)
            .is_some_and(|word| word & (1 << (seq % 64)) != 0)
    }

    fn advance(&mut self, low: u64) {
        while self.start + 64 <= low {
            self.words.pop_front();
            self.start += 64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = Duration::from_millis(100);

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[test]
    fn members_expect_what_others_send_while_present() {
        let room = Room::new(0, "r".into(), 3);
        let before = room.send(0, far()).unwrap();
        let mut a = room.join(0);
        let mut b = room.join(1);
        let s1 = room.send(0, far()).unwrap();
        let s2 = room.send(1, far()).unwrap();
        let s3 = room.send(1, far()).unwrap();
        assert_eq!((before, s1, s2, s3), (0, 1, 2, 3));
        b.received(s1);
        a.received(s2);
        // a never gets s3; nothing is past the deadline yet.
        let now = Instant::now();
        let r = room.settle(&mut a, now, D, false);
        assert_eq!((r.lost, r.done), (0, false));
        assert!(r.next.is_some());
        assert_eq!(room.settle(&mut b, now, D, false).lost, 0);
        // Past the deadline: a lost s3; b received s1 and sent s2, s3.
        let later = now + D * 2;
        assert_eq!(room.settle(&mut a, later, D, false).lost, 1);
        assert_eq!(room.settle(&mut b, later, D, false).lost, 0);
        assert_eq!(room.log_len(), 0, "settled entries are trimmed");
    }

    #[test]
    fn leaving_bounds_what_is_expected() {
        let room = Room::new(0, "r".into(), 2);
        let mut a = room.join(0);
        let s0 = room.send(1, far()).unwrap();
        room.leave(&mut a);
        let _after = room.send(1, far()).unwrap();
        a.received(s0);
        let r = room.settle(&mut a, Instant::now() + D * 2, D, false);
        assert_eq!(
            r,
            Settled {
                lost: 0,
                next: None,
                done: true
            }
        );
    }

    #[test]
    fn gone_members_lose_what_is_in_flight_but_not_unsent() {
        let room = Room::new(0, "r".into(), 2);
        let mut a = room.join(0);
        let s0 = room.send(1, far()).unwrap();
        let s1 = room.send(1, far()).unwrap();
        room.failed(s1);
        let _ = s0;
        room.leave(&mut a);
        let r = room.settle(&mut a, Instant::now(), D, true);
        assert_eq!((r.lost, r.done), (1, true));
        room.remove(0);
        assert_eq!(room.log_len(), 0);
    }

    #[test]
    fn no_message_is_numbered_at_or_after_the_end() {
        let room = Room::new(0, "r".into(), 2);
        assert_eq!(room.send(0, Instant::now()), None);
    }

    #[test]
    fn window_spans_many_words() {
        let mut w = SeqWindow::new(130);
        w.set(129);
        w.set(130);
        w.set(1000);
        assert!(w.has(129), "the word of 129 is kept");
        assert!(w.has(130) && w.has(1000) && !w.has(999));
        w.advance(900);
        assert!(w.has(1000));
        assert_eq!(w.start, 896);
    }
}
