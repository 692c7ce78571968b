//! A progress bar per table with rows/s on a terminal; plain lines otherwise.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use std::io::IsTerminal as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub struct TableProgress {
    pub name: String,
    pub rows: u64,
    done: AtomicU64,
    streams_left: AtomicUsize,
    started: Mutex<Option<Instant>>,
    finished: Mutex<Option<Instant>>,
    bar: Option<ProgressBar>,
}

pub struct Progress {
    pub tables: Vec<TableProgress>,
    plain: bool,
    _multi: Option<MultiProgress>,
}

impl Progress {
    /// `show`: print anything at all; bars only when stderr is a terminal.
    pub fn new(tables: &[(String, u64)], show: bool) -> Self {
        let tty = show && std::io::stderr().is_terminal();
        let multi = tty.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        let width = tables.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
        let style = ProgressStyle::with_template(&format!(
            "{{prefix:<{width}}} [{{bar:30}}] {{human_pos:>11}}/{{human_len}} rows {{rps:>16}} {{elapsed:>4}}"
        ))
        .expect("valid template")
        .with_key("rps", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{} rows/s", thousands(s.per_sec() as u64));
        })
        .progress_chars("=> ");
        let tables = tables
            .iter()
            .map(|(name, rows)| TableProgress {
                name: name.clone(),
                rows: *rows,
                done: AtomicU64::new(0),
                streams_left: AtomicUsize::new(0),
                started: Mutex::new(None),
                finished: Mutex::new(None),
                bar: multi.as_ref().map(|m| {
                    let b = m.add(ProgressBar::new(*rows));
                    b.set_style(style.clone());
                    b.set_prefix(name.clone());
                    b
                }),
            })
            .collect();
        Self {
            tables,
            plain: show && !tty,
            _multi: multi,
        }
    }

    pub fn streams(&self, t: usize, n: usize) {
        self.tables[t].streams_left.store(n, Ordering::Relaxed);
    }

    pub fn start(&self, t: usize) {
        let tp = &self.tables[t];
        let mut s = tp.started.lock().expect("progress lock");
        if s.is_none() {
            *s = Some(Instant::now());
            if let Some(b) = &tp.bar {
                b.reset_elapsed();
                b.reset_eta();
            }
        }
    }

    #[inline]
    pub fn rows(&self, t: usize, n: u64) {
        let tp = &self.tables[t];
        tp.done.fetch_add(n, Ordering::Relaxed);
        if let Some(b) = &tp.bar {
            b.inc(n);
        }
    }

    /// One stream of table t has finished; the table is done with its last.
    pub fn stream_done(&self, t: usize) {
        let tp = &self.tables[t];
        if tp.streams_left.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        *tp.finished.lock().expect("progress lock") = Some(Instant::now());
        if let Some(b) = &tp.bar {
            b.finish();
        }
        if self.plain {
            let secs = self.seconds(t);
            eprintln!(
                "  {:<16} {:>12} rows {:>8.2} s {:>14} rows/s",
                tp.name,
                thousands(tp.rows),
                secs,
                thousands(rate(tp.rows, secs))
            );
        }
    }

    pub fn seconds(&self, t: usize) -> f64 {
        let tp = &self.tables[t];
        let s = *tp.started.lock().expect("progress lock");
        let f = *tp.finished.lock().expect("progress lock");
        match (s, f) {
            (Some(s), Some(f)) => f.duration_since(s).as_secs_f64(),
            (Some(s), None) => s.elapsed().as_secs_f64(),
            _ => 0.0,
        }
    }

    pub fn abandon(&self) {
        for t in &self.tables {
            if let Some(b) = &t.bar
                && !b.is_finished()
            {
                b.abandon();
            }
        }
    }

    pub fn plain(&self) -> bool {
        self.plain
    }
}

pub fn rate(rows: impl Into<u128>, secs: f64) -> u64 {
    if secs <= 0.0 {
        0
    } else {
        (rows.into() as f64 / secs.max(Duration::from_micros(1).as_secs_f64())) as u64
    }
}

/// 1234567 -> "1,234,567"
pub fn thousands(n: impl Into<u128>) -> String {
    let s = n.into().to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
