//! Server-sent events read as they arrive (`stream = "sse"`): when each
//! event completes, the gaps between events, and each event's JSON for
//! `record` entries that read events.

use super::link::BodySink;
use super::record::Record;
use crate::metrics::{Recorder, SeriesId};
use std::time::Instant;

/// Parses the event stream of one response (the WHATWG `text/event-stream`
/// format: lines of `field: value`, events ended by a blank line).
pub struct Sse<'a> {
    rec: &'a Recorder,
    gap: SeriesId,
    /// `record` entries read on each event, with their series.
    records: &'a [(&'a Record, SeriesId)],
    /// The line being read (reused across responses).
    line: &'a mut Vec<u8>,
    /// The data of the event being read.
    data: &'a mut Vec<u8>,
    has_data: bool,
    /// The last byte was a CR (a CRLF's LF is not a second line end).
    after_cr: bool,
    pub events: u64,
    pub first: Option<Instant>,
    pub last: Option<Instant>,
}

impl<'a> Sse<'a> {
    pub fn new(
        rec: &'a Recorder,
        gap: SeriesId,
        records: &'a [(&'a Record, SeriesId)],
        line: &'a mut Vec<u8>,
        data: &'a mut Vec<u8>,
    ) -> Self {
        line.clear();
        data.clear();
        Self {
            rec,
            gap,
            records,
            line,
            data,
            has_data: false,
            after_cr: false,
            events: 0,
            first: None,
            last: None,
        }
    }

    fn end_line(&mut self, now: &mut Option<Instant>) {
        if self.line.is_empty() {
            if self.has_data {
                self.dispatch(now);
            }
            return;
        }
        let line = &self.line[..];
        if line[0] != b':' {
            let (field, value) = match line.iter().position(|&b| b == b':') {
                Some(i) => {
                    let v = &line[i + 1..];
                    (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
                }
                None => (line, &b""[..]),
            };
            if field == b"data" {
                self.data.extend_from_slice(value);
                self.data.push(b'\n');
                self.has_data = true;
            }
        }
        self.line.clear();
    }

    fn dispatch(&mut self, now: &mut Option<Instant>) {
        // One clock read per chunk: events that arrive together are one moment.
        let at = *now.get_or_insert_with(Instant::now);
        self.events += 1;
        if let Some(last) = self.last {
            self.rec.time(self.gap, at.saturating_duration_since(last));
        }
        self.first.get_or_insert(at);
        self.last = Some(at);
        if !self.records.is_empty() {
            let text = self.data.strip_suffix(b"\n").unwrap_or(self.data);
            let json = serde_json::from_slice::<serde_json::Value>(text).ok();
            for (r, id) in self.records {
                r.observe_event(self.rec, *id, json.as_ref());
            }
        }
        self.data.clear();
        self.has_data = false;
    }
}

impl BodySink for Sse<'_> {
    fn data(&mut self, bytes: &[u8]) {
        let mut now = None;
        for &b in bytes {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' => self.end_line(&mut now),
                b'\r' => {
                    self.after_cr = true;
                    self.end_line(&mut now);
                }
                b => {
                    self.after_cr = false;
                    self.line.push(b);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{MetricKind, Registry, Slot, Unit};

    #[test]
    fn events_are_counted_across_chunks_and_line_endings() {
        let reg = Registry::new();
        let m = reg.metric("gap", MetricKind::Trend, Unit::Time);
        let gap = reg.series(m, &Default::default());
        let rec = Recorder::new(reg);
        let (mut line, mut data) = (Vec::new(), Vec::new());
        let mut sse = Sse::new(&rec, gap, &[], &mut line, &mut data);
        for chunk in [
            &b": comment\n\ndata: {\"token\""[..],
            b":\"a\"}\n\nevent: x\r\ndata: one\r\ndata: two\r\n\r\ndata",
            b": [DONE]\r\r",
            b"id: 7\n\n",
            b"data: cut short",
        ] {
            sse.data(chunk);
        }
        // The comment block and the id-only block are not events; the last
        // event never ended.
        assert_eq!(sse.events, 3);
        assert!(sse.first.is_some());
        let Slot::Trend(h) = &rec.take().slots[gap as usize] else {
            panic!("gaps recorded")
        };
        assert_eq!(h.len(), 2);
    }
}
