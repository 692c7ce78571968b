//! `--out influxdb=http://HOST:PORT/DB`: InfluxDB 1.x line protocol over
//! HTTP (`/write?db=DB&precision=s`), with k6's measurement and tag names
//! (`http_reqs`, `http_req_duration`, ... tagged `scenario`, `method`,
//! `status`, ...) so k6's dashboards read volley's data.
//!
//! k6 writes one point per sample; volley writes one point per series and
//! second, already reduced: `value` is what the k6 panels aggregate (the
//! count for counters, so `sum("value")` is the total; the mean for trends;
//! the share for rates; the last value for gauges), and further fields carry
//! the rest (`count`, `min`, `max`, `p50` .. `p99`, `hits`, `total`).

use super::push::{self, Pusher, Setup, Target};
use super::rows::Values;
use crate::aggregate::Aggregator;
use crate::engine::Observer;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use volley_model::point::Point;

#[derive(Clone, Debug, PartialEq)]
pub struct InfluxOptions {
    /// The URL as given (for messages).
    pub url: String,
    pub target: Target,
    pub db: String,
    /// Query parameters for authentication (`u`, `p`), from the URL's user info.
    pub auth: String,
    /// Tags added to every point (`tag=key:value`).
    pub tags: Vec<(String, String)>,
    pub push: Duration,
    pub timeout: Duration,
}

/// `http[s]://[user:pass@]host:port/db[,push=1s][,timeout=5s][,tag=k:v]...`
/// (and for https `ca=FILE`, `insecure`)
pub fn parse(spec: &str, arg: &str) -> Result<InfluxOptions, String> {
    let mut parts = arg.split(',');
    let url_text = parts.next().unwrap_or_default();
    let (url, authority) = push::parse_url(
        spec,
        url_text,
        "influxdb=http://127.0.0.1:8086/volley",
        8086,
    )?;
    // k6: the last path segment is the database, what is before it a prefix.
    let path = url.path().trim_end_matches('/');
    let (prefix, db) = path.rsplit_once('/').unwrap_or(("", path));
    let db = if db.is_empty() { "volley" } else { db };
    let mut auth = String::new();
    if !url.username().is_empty() {
        // The URL keeps them percent-encoded; the query wants form encoding.
        let form = |s: &str| {
            let raw: Vec<u8> = percent_encoding::percent_decode_str(s).collect();
            url::form_urlencoded::byte_serialize(&raw).collect::<String>()
        };
        let (user, pass) = (form(url.username()), form(url.password().unwrap_or("")));
        auth = format!("&u={user}&p={pass}");
    }
    let mut opts = InfluxOptions {
        url: push::shown(&url),
        target: Target {
            authority,
            path: format!(
                "{prefix}/write?db={}&precision=s{auth}",
                url::form_urlencoded::byte_serialize(db.as_bytes()).collect::<String>()
            ),
            headers: vec![],
            tls: None,
        },
        db: db.to_string(),
        auth,
        tags: vec![],
        push: Duration::from_secs(1),
        timeout: Duration::from_secs(5),
    };
    let o = push::parse_options(spec, &url, parts, &mut opts.push, |k| k.to_string())?;
    (opts.tags, opts.timeout, opts.target.tls) = (o.tags, o.timeout, o.tls);
    Ok(opts)
}

/// Line protocol escaping: measurement names escape commas and spaces; tag
/// keys, tag values and field keys also escape `=`.
fn escape(out: &mut String, s: &str, equals: bool) {
    for c in s.chars() {
        match c {
            ',' | ' ' | '\\' => out.push('\\'),
            '=' if equals => out.push('\\'),
            '\n' | '\r' => {
                out.push(' ');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
}

/// The fields of one point, `value` first (k6's field).
fn fields(point: &Point, values: &Values) -> Vec<(&'static str, f64)> {
    let v = values;
    let mut f = Vec::with_capacity(10);
    match point {
        Point::Counter { count } => f.push(("value", *count as f64)),
        Point::Rate { hits, total } => {
            f.push(("value", v.rate.unwrap_or(0.0)));
            f.push(("hits", *hits as f64));
            f.push(("total", *total as f64));
        }
        Point::Gauge { .. } => {
            f.push(("value", v.value.unwrap_or(0.0)));
            f.push(("min", v.min.unwrap_or(0.0)));
            f.push(("max", v.max.unwrap_or(0.0)));
        }
        Point::Trend { count, .. } => {
            f.push(("value", v.avg.unwrap_or(0.0)));
            f.push(("count", *count as f64));
            for (k, x) in [
                ("min", v.min),
                ("max", v.max),
                ("p50", v.p50),
                ("p90", v.p90),
                ("p95", v.p95),
                ("p99", v.p99),
            ] {
                f.push((k, x.unwrap_or(0.0)));
            }
        }
    }
    f.retain(|(_, x)| x.is_finite());
    f
}

/// One point: `tags` holds the series' own, `extra` is added to them.
fn line<'a>(
    out: &mut String,
    name: &str,
    tags: &mut Vec<(&'a str, &'a str)>,
    extra: &'a [(String, String)],
    fields: &[(&str, f64)],
    ts: u64,
) {
    escape(out, name, false);
    // InfluxDB wants tags sorted by key and refuses empty values.
    tags.extend(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    tags.sort_by(|a, b| a.0.cmp(b.0));
    tags.dedup_by(|a, b| a.0 == b.0);
    for (k, v) in tags.iter() {
        if k.is_empty() || v.is_empty() {
            continue;
        }
        out.push(',');
        escape(out, k, true);
        out.push('=');
        escape(out, v, true);
    }
    for (i, (k, x)) in fields.iter().enumerate() {
        out.push(if i == 0 { ' ' } else { ',' });
        let _ = write!(out, "{k}={x}");
    }
    let _ = writeln!(out, " {ts}");
}

/// The lines of the intervals completed after the first `from`; how many.
pub fn lines(
    agg: &Aggregator,
    from: u64,
    started: SystemTime,
    elapsed: Duration,
    extra: &[(String, String)],
    out: &mut String,
) -> u64 {
    let defs = agg.registry.metrics();
    let series = agg.registry.all_series();
    let base = started
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut n = 0;
    let mut tags: Vec<(&str, &str)> = Vec::new();
    for iv in agg.since(from) {
        let span = (elapsed.as_secs_f64() - iv.index as f64).clamp(1e-3, 1.0);
        for (id, point) in &iv.points {
            let Some(info) = series.get(*id as usize) else {
                continue;
            };
            let def = &defs[info.metric as usize];
            let values = Values::of(point, def.unit, span);
            let f = fields(point, &values);
            if f.is_empty() {
                continue;
            }
            tags.clear();
            tags.extend(info.tags.iter());
            line(out, &def.name, &mut tags, extra, &f, base + iv.index);
            n += 1;
        }
    }
    n
}

/// The observer: lines for each completed second, pushed every `push`.
pub struct InfluxOutput {
    opts: InfluxOptions,
    pusher: Option<Pusher>,
    started: SystemTime,
    written: u64,
    pending: String,
    pending_points: u64,
    last_push: Duration,
}

impl InfluxOutput {
    pub fn start(opts: InfluxOptions) -> Result<Self, String> {
        let prefix = opts
            .target
            .path
            .split_once("/write?")
            .map(|p| p.0)
            .unwrap_or("");
        let q = format!("CREATE DATABASE \"{}\"", opts.db.replace('"', "\\\""));
        let setup = Setup {
            path: format!("{prefix}/query?{}", opts.auth.trim_start_matches('&')),
            body: format!(
                "q={}",
                url::form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
            )
            .into_bytes(),
            content_type: "application/x-www-form-urlencoded",
        };
        let pusher = Pusher::start(
            format!("influxdb={}", opts.url),
            opts.target.clone(),
            Some(setup),
            opts.timeout,
        )?;
        Ok(Self {
            opts,
            pusher: Some(pusher),
            started: SystemTime::now(),
            written: 0,
            pending: String::new(),
            pending_points: 0,
            last_push: Duration::ZERO,
        })
    }

    fn collect(&mut self, agg: &Aggregator, elapsed: Duration, last: bool) {
        self.pending_points += lines(
            agg,
            self.written,
            self.started,
            elapsed,
            &self.opts.tags,
            &mut self.pending,
        );
        self.written = agg.completed();
        if last || elapsed.saturating_sub(self.last_push) >= self.opts.push {
            self.last_push = elapsed;
            if let Some(p) = &self.pusher {
                let body = std::mem::take(&mut self.pending).into_bytes();
                p.send(body, std::mem::take(&mut self.pending_points));
            }
        }
    }

    /// The end-of-run answers, as one more batch stamped now.
    pub(super) fn answers(&mut self, items: &[super::Answer]) {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut body = String::new();
        let mut n = 0;
        for a in items {
            let Some(point) = Point::of(&a.slot) else {
                continue;
            };
            let f = fields(&point, &Values::of(&point, a.unit, 1.0));
            if f.is_empty() {
                continue;
            }
            let mut tags: Vec<(&str, &str)> = a.tags.iter().collect();
            line(&mut body, &a.metric, &mut tags, &self.opts.tags, &f, ts);
            n += 1;
        }
        if let Some(p) = &self.pusher {
            p.send(body.into_bytes(), n);
        }
    }

    /// Points dropped so far (a slow or dead InfluxDB).
    pub fn dropped(&self) -> u64 {
        self.pusher.as_ref().map_or(0, |p| p.dropped())
    }

    /// Drain the queue (bounded); a warning if points were dropped.
    pub fn finish(mut self) -> Option<String> {
        self.pusher.take().and_then(|p| p.finish())
    }
}

impl Observer for InfluxOutput {
    fn on_start(&mut self, started: SystemTime) {
        self.started = started;
    }

    fn on_interval(&mut self, agg: &Aggregator, elapsed: Duration) -> Option<String> {
        self.collect(agg, elapsed, false);
        None
    }

    fn on_end(&mut self, agg: &Aggregator, elapsed: Duration) {
        self.collect(agg, elapsed, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_k6_style_urls() {
        let o = parse("x", "http://127.0.0.1:8086/k6").unwrap();
        assert_eq!(o.target.authority, "127.0.0.1:8086");
        assert_eq!(o.target.path, "/write?db=k6&precision=s");
        assert_eq!(o.db, "k6");
        let o = parse("x", "http://u:p%40@h/prefix/db,push=2s,tag=env:ci").unwrap();
        assert_eq!(o.target.authority, "h:8086");
        assert_eq!(o.target.path, "/prefix/write?db=db&precision=s&u=u&p=p%40");
        assert_eq!(o.push, Duration::from_secs(2));
        assert_eq!(o.tags, [("env".to_string(), "ci".to_string())]);
        for bad in [
            "127.0.0.1:8086",
            "ftp://h/db",
            "http://h/db,insecure",
            "https://h/db,ca=/nonexistent.pem",
            "https://h/db,insecure=maybe",
            "http://h/db,push=0s",
            "http://h/db,push=1e12s",
            "http://h/db,tag=x",
            "http://h/db,nope=1",
        ] {
            assert!(parse("x", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_default_port_written_out_is_kept() {
        let o = parse("influxdb=x", "http://db:80/k6").unwrap();
        assert_eq!(o.target.authority, "db:80");
        let o = parse("influxdb=x", "http://db/k6").unwrap();
        assert_eq!(o.target.authority, "db:8086");
    }

    #[test]
    fn escapes_line_protocol() {
        let mut s = String::new();
        escape(&mut s, "a b,c=d", true);
        assert_eq!(s, "a\\ b\\,c\\=d");
        s.clear();
        escape(&mut s, "m=1", false);
        assert_eq!(s, "m=1");
        s.clear();
        // A trailing backslash would escape the separator after it.
        escape(&mut s, "C:\\", true);
        assert_eq!(s, "C:\\\\");
    }
}
