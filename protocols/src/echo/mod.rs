//! A tiny example driver: each VU keeps a TCP connection to an echo server,
//! sends the scenario's messages in turn and times each round trip. It is
//! the worked example of docs/architecture.md ("Adding a driver"): this
//! folder plus one line in `lib.rs`, and volley's live line, summary,
//! report and compare show it.
//!
//! ```toml
//! [scenarios.ping]
//! driver = "echo"
//! executor = "constant-vus"
//! vus = 2
//! duration = "10s"
//! address = "127.0.0.1:7007"
//! messages = [{ name = "hello", text = "hello" }]
//! ```

use crate::descriptor::*;
use crate::driver::{BuildCtx, Driver, Iteration, Vu, VuEnv};
use crate::duration::Dur;
use crate::error::ConfigError;
use crate::metrics::{MetricKind, Recorder, SeriesId, Tags, Unit};
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EchoOptions {
    /// host:port of the echo server.
    pub address: String,
    /// Sent one after the other in each iteration, each as one line.
    pub messages: Vec<EchoMessage>,
    /// Longest wait for one echo (5s unless set).
    pub timeout: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EchoMessage {
    pub name: String,
    pub text: String,
}

pub struct EchoDriver {
    address: String,
    timeout: Duration,
    /// Each message as sent (with its newline) and its tags.
    messages: Vec<(Vec<u8>, Tags)>,
    metrics: [crate::metrics::MetricId; 4],
}

impl Driver for EchoDriver {
    type Vu = EchoVu;
    type Options = EchoOptions;
    const NAME: &'static str = "echo";

    fn descriptor() -> Descriptor {
        Descriptor {
            name: "echo".into(),
            prefix: "echo_".into(),
            noun: "echoes".into(),
            headline: Headline {
                latency: "echo_rtt".into(),
                throughput: "echo_msgs".into(),
                errors: "echo_failed".into(),
                errors_word: "errors".into(),
            },
            latency: vec![labelled("echo_rtt", "Echo round trip")],
            throughput: vec![labelled("echo_msgs", "echoes/s")],
            errors: vec![error_line("echo_failed", "failed echoes/s", false)],
            breakdowns: vec![breakdown("echo_rtt", "echo_failed", "name", "Echoes")],
            recovery: Some(Recovery {
                latency: "echo_rtt".into(),
                errors: "echo_failed".into(),
            }),
            facts: vec![Fact::Count {
                metric: "echo_msgs".into(),
                label: "Echoes".into(),
            }],
            error_rows: vec![ErrorRow {
                metric: "echo_errors".into(),
                text: forms(&["{error} ({name|-})"]),
                head: forms(&["{error}"]),
                hide: forms(&["error"]),
                ..Default::default()
            }],
            compare: CompareDefaults {
                trends: forms(&["echo_rtt"]),
                throughput: forms(&["echo_msgs"]),
            },
            ..Default::default()
        }
    }

    fn from_plan(
        o: EchoOptions,
        ctx: &BuildCtx<'_>,
        at: std::ops::Range<usize>,
    ) -> Result<Self, ConfigError> {
        if o.messages.is_empty() {
            return Err(ConfigError::at(
                at,
                format!(
                    "scenario {:?}: `messages` is empty; write e.g. messages = [{{ name = \"hello\", text = \"hello\" }}]",
                    ctx.scenario
                ),
            ));
        }
        if let Some(m) = o.messages.iter().find(|m| m.text.contains('\n')) {
            return Err(ConfigError::at(
                at,
                format!(
                    "scenario {:?}: message {:?} has a newline; each message is one line",
                    ctx.scenario, m.name
                ),
            ));
        }
        let r = ctx.registry;
        Ok(Self {
            address: o.address,
            timeout: o.timeout.map_or(Duration::from_secs(5), |t| t.0),
            messages: o
                .messages
                .into_iter()
                .map(|m| {
                    (
                        format!("{}\n", m.text).into_bytes(),
                        ctx.tags.with("name", m.name),
                    )
                })
                .collect(),
            metrics: [
                r.metric("echo_rtt", MetricKind::Trend, Unit::Time),
                r.metric("echo_msgs", MetricKind::Counter, Unit::Default),
                r.metric("echo_failed", MetricKind::Rate, Unit::Default),
                r.metric("echo_errors", MetricKind::Counter, Unit::Default),
            ],
        })
    }

    fn vu(self: &Arc<Self>, env: VuEnv) -> EchoVu {
        let [rtt, msgs, failed, _] = self.metrics;
        let series = self
            .messages
            .iter()
            .map(|(_, tags)| {
                let s = |m| env.recorder.series(m, tags);
                [s(rtt), s(msgs), s(failed)]
            })
            .collect();
        EchoVu {
            d: self.clone(),
            rec: env.recorder,
            conn: None,
            buf: vec![0; 4096],
            series,
        }
    }
}

pub struct EchoVu {
    d: Arc<EchoDriver>,
    rec: Recorder,
    conn: Option<TcpStream>,
    buf: Vec<u8>,
    /// Per message: rtt, msgs, failed.
    series: Vec<[SeriesId; 3]>,
}

impl EchoVu {
    /// One round trip: what went wrong, if anything.
    async fn echo(&mut self, i: usize, t0: Instant) -> Result<Duration, &'static str> {
        let conn = match &mut self.conn {
            Some(c) => c,
            None => {
                let c = TcpStream::connect(&self.d.address)
                    .await
                    .map_err(|_| "connect")?;
                self.conn.insert(c)
            }
        };
        let sent = &self.d.messages[i].0;
        conn.write_all(sent).await.map_err(|_| "write")?;
        let mut got = 0;
        while got < sent.len() {
            let upto = (sent.len() - got).min(self.buf.len());
            match conn.read(&mut self.buf[..upto]).await {
                Ok(0) => return Err("closed"),
                Ok(n) if self.buf[..n] == sent[got..got + n] => got += n,
                Ok(_) => return Err("mismatch"),
                Err(_) => return Err("read"),
            }
        }
        Ok(t0.elapsed())
    }
}

impl Vu for EchoVu {
    async fn iteration(&mut self, it: Iteration) {
        for i in 0..self.d.messages.len() {
            let now = Instant::now();
            // Open models: the first echo counts from the scheduled start.
            let t0 = if i == 0 {
                it.scheduled.filter(|s| *s < now).unwrap_or(now)
            } else {
                now
            };
            let [rtt, msgs, failed] = self.series[i];
            let r = match tokio::time::timeout(self.d.timeout, self.echo(i, t0)).await {
                Ok(r) => r,
                Err(_) => Err("timeout"),
            };
            self.rec.rate(failed, r.is_err());
            match r {
                Ok(d) => {
                    self.rec.time(rtt, d);
                    self.rec.add(msgs, 1);
                }
                Err(e) => {
                    // Rare: the series is looked up (once) when an error is first met.
                    let tags = self.d.messages[i].1.with("error", e);
                    let id = self.rec.series(self.d.metrics[3], &tags);
                    self.rec.add(id, 1);
                    self.conn = None;
                    return;
                }
            }
        }
    }

    async fn close(&mut self) {
        if let Some(mut c) = self.conn.take() {
            let _ = c.shutdown().await;
        }
    }
}
