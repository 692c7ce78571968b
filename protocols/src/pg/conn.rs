//! Reaching the server: the parsed URL, TLS by rustls (ring), one connection
//! with its per-connection statement cache, the pool manager, and how errors
//! are told apart (SQLSTATE from the server, or what failed on the way).

use rustls::pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

/// Where a scenario's connections go, and how.
/// A PostgreSQL server as libpq's URL and sslmode describe it: the
/// connection settings, the TLS that sslmode asks for, and a label.
pub struct Target {
    pub config: Config,
    pub tls: MakeRustlsConnect,
    /// `user@host:port/db`, for messages (never the password).
    pub label: String,
}

/// TLS as libpq's `sslmode` asks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verify {
    /// disable, prefer, require: encrypt when asked, trust any certificate.
    None,
    /// verify-ca (or require with sslrootcert): a trusted chain, any name.
    Chain,
    /// verify-full: a trusted chain for this host name.
    Full,
}

impl Target {
    /// Parse a URL (`postgres://user:pw@host:port/db?sslmode=require`) or a
    /// key=value string, as libpq takes them.
    pub fn parse(text: &str, connect_timeout: Duration) -> Result<Target, String> {
        let (rest, sslmode, rootcert) = take_ssl_options(text);
        let mut config: Config = rest.parse().map_err(|e: tokio_postgres::Error| {
            let why = std::error::Error::source(&e)
                .map(|s| s.to_string())
                .unwrap_or_else(|| e.to_string());
            format!(
                "not a valid PostgreSQL URL ({why}); write e.g. postgres://user:password@127.0.0.1:5432/dbname"
            )
        })?;
        let mut verify = Verify::None;
        match sslmode.as_deref() {
            None => {}
            // libpq's "allow" tries without TLS first; "prefer" is the nearest here.
            Some("allow") => {
                config.ssl_mode(SslMode::Prefer);
            }
            Some("verify-ca") => verify = Verify::Chain,
            Some("verify-full") => verify = Verify::Full,
            Some(other) => {
                return Err(format!(
                    "sslmode={other} is not known; use disable, prefer, require, verify-ca or verify-full"
                ));
            }
        }
        if verify != Verify::None {
            config.ssl_mode(SslMode::Require);
        } else if rootcert.is_some() && config.get_ssl_mode() == SslMode::Require {
            // libpq: require with a root certificate verifies the chain.
            verify = Verify::Chain;
        }
        if config.get_hosts().is_empty() {
            config.host("localhost");
        }
        if config.get_user().is_none() {
            // libpq's default: the operating-system user.
            if let Ok(user) = std::env::var("USER") {
                config.user(user);
            }
        }
        if config.get_application_name().is_none() {
            config.application_name("volley");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(connect_timeout);
        }
        let roots = match &rootcert {
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("cannot read sslrootcert {path}: {e}"))?;
                let mut store = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(&pem) {
                    let cert = cert.map_err(|e| format!("sslrootcert {path} is not PEM: {e:?}"))?;
                    store
                        .add(cert)
                        .map_err(|e| format!("sslrootcert {path}: {e}"))?;
                }
                if store.is_empty() {
                    return Err(format!("sslrootcert {path} holds no certificate"));
                }
                store
            }
            None => {
                rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned())
            }
        };
        let tls = MakeRustlsConnect::new(tls_config(verify, roots));
        let label = label(&config);
        Ok(Target { config, tls, label })
    }

    /// The same server under another application_name (the sampler's own
    /// session, told apart from the load in pg_stat_activity).
    pub(crate) fn named(&self, suffix: &str) -> Target {
        let mut config = self.config.clone();
        let app = format!(
            "{} {suffix}",
            self.config.get_application_name().unwrap_or("volley")
        );
        config.application_name(app);
        Target {
            config,
            tls: self.tls.clone(),
            label: self.label.clone(),
        }
    }

    /// Open a connection whose protocol runs as a task of its own on this
    /// thread's runtime (the sampler, validation).
    pub(crate) async fn connect(&self, statements: usize) -> Result<PgConn, tokio_postgres::Error> {
        let started = Instant::now();
        let (client, connection) = self.config.connect(self.tls.clone()).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("postgres connection ended: {e}");
            }
        });
        Ok(PgConn::new(client, None, statements, started))
    }

    /// Open a connection that its owner drives in its own task (per-vu,
    /// per-iteration): each query's request is written and its answer read
    /// in the VU's task, with no hop through another task.
    pub(crate) async fn connect_owned(
        &self,
        statements: usize,
    ) -> Result<PgConn, tokio_postgres::Error> {
        let started = Instant::now();
        let (client, connection) = self.config.connect(self.tls.clone()).await?;
        Ok(PgConn::new(client, Some(connection), statements, started))
    }
}

/// The protocol half of a tokio-postgres connection.
pub(crate) type Io = tokio_postgres::Connection<
    tokio_postgres::Socket,
    <MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>>::Stream,
>;

/// Await `fut` (a request on the connection's client) while driving the
/// connection's I/O in this same task, when this task owns it: read and
/// dispatch what arrived, let the request go on, write what it queued.
pub(crate) async fn drive<F: Future>(io: &mut Option<Box<Io>>, fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut first = true;
    std::future::poll_fn(|cx| {
        // The first time through, nothing can have arrived for this request yet.
        if !std::mem::take(&mut first) {
            poll_io(io, cx);
        }
        let out = fut.as_mut().poll(cx);
        if out.is_pending() {
            poll_io(io, cx);
        }
        out
    })
    .await
}

/// Poll the connection once; when it has ended, drop it, so its client reports closed.
fn poll_io(io: &mut Option<Box<Io>>, cx: &mut std::task::Context<'_>) {
    if let Some(c) = io.as_mut()
        && let std::task::Poll::Ready(r) = std::pin::Pin::new(&mut **c).poll(cx)
    {
        if let Err(e) = r {
            tracing::debug!("postgres connection ended: {e}");
        }
        *io = None;
    }
}

/// A thread of its own for the protocol tasks of pooled connections. Pooled
/// connections are shared by VUs on every worker, so they cannot live on one
/// worker's runtime: that runtime ends when its own VUs are done, and would
/// take connections that other workers still use with it.
pub(crate) struct IoThread {
    handle: tokio::runtime::Handle,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl IoThread {
    fn start() -> std::io::Result<IoThread> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = rt.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("volley-pg-pool".into())
            .spawn(move || {
                // Runs until the driver (and with it `stop`) is dropped.
                let _ = rt.block_on(stopped);
            })?;
        Ok(IoThread {
            handle,
            _stop: stop,
        })
    }
}

impl PgConn {
    fn new(client: Client, io: Option<Io>, statements: usize, started: Instant) -> Self {
        PgConn {
            client,
            // Boxed: a connection's protocol state is kilobytes, and VU
            // futures that hold a PgConn should stay small.
            io: io.map(Box::new),
            statements: vec![None; statements],
            connected_in: Some(started.elapsed()),
            dirty: false,
        }
    }

    /// Owned connections: take in what the server sent while nobody was
    /// looking (e.g. it ended the session), without waiting.
    pub fn refreshed(mut self) -> Self {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        poll_io(&mut self.io, &mut cx);
        self
    }

    /// End the session politely: Terminate, then close the socket.
    pub async fn close(self) {
        let PgConn {
            client,
            io,
            statements,
            ..
        } = self;
        drop(statements);
        drop(client);
        if let Some(io) = io {
            // With its client gone the connection says Terminate and shuts down
            // without waiting for the server; the bound is for a stuck socket.
            let _ = tokio::time::timeout(Duration::from_secs(1), *io).await;
        }
    }
}

fn label(c: &Config) -> String {
    let host = match c.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = c.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}@{host}:{port}/{}",
        c.get_user().unwrap_or("?"),
        c.get_dbname().or(c.get_user()).unwrap_or("?")
    )
}

/// tokio-postgres knows disable/prefer/require; take libpq's verify-ca,
/// verify-full and sslrootcert out and handle them here.
fn take_ssl_options(text: &str) -> (String, Option<String>, Option<String>) {
    let mut sslmode = None;
    let mut rootcert = None;
    let url = text.starts_with("postgres://") || text.starts_with("postgresql://");
    if url {
        let Some((base, query)) = text.split_once('?') else {
            return (text.to_string(), None, None);
        };
        let mut kept = Vec::new();
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "sslmode" if v.starts_with("verify-") || !is_known_mode(v) => {
                    sslmode = Some(v.to_string())
                }
                "sslrootcert" => rootcert = Some(percent_decode(v)),
                _ => kept.push(pair),
            }
        }
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return (rest, sslmode, rootcert);
    }
    let mut kept = Vec::new();
    for word in text.split_whitespace() {
        match word.split_once('=') {
            Some(("sslmode", v)) if v.starts_with("verify-") || !is_known_mode(v) => {
                sslmode = Some(v.to_string())
            }
            Some(("sslrootcert", v)) => rootcert = Some(v.trim_matches('\'').to_string()),
            _ => kept.push(word),
        }
    }
    (kept.join(" "), sslmode, rootcert)
}

fn is_known_mode(v: &str) -> bool {
    matches!(v, "disable" | "prefer" | "require")
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(hi << 4 | lo);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn tls_config(verify: Verify, roots: rustls::RootCertStore) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions");
    let mut config = match verify {
        Verify::None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(crate::http::conn::AcceptAny(provider)))
            .with_no_client_auth(),
        Verify::Full => builder.with_root_certificates(roots).with_no_client_auth(),
        Verify::Chain => {
            let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .expect("a root store with certificates");
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyName(inner)))
                .with_no_client_auth()
        }
    };
    // PostgreSQL 17 checks ALPN; older servers ignore it.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    config
}

/// verify-ca: the chain must be trusted; the name need not match.
#[derive(Debug)]
struct AnyName(Arc<rustls::client::WebPkiServerVerifier>);

impl rustls::client::danger::ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use rustls::CertificateError as C;
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                C::NotValidForName | C::NotValidForNameContext { .. },
            )) => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// One server session and the statements prepared on it.
pub(crate) struct PgConn {
    pub client: Client,
    /// The protocol half, when the owner drives it (see `drive`); None when
    /// it runs as a task of its own.
    pub io: Option<Box<Io>>,
    /// Indexed like the driver's statements; prepared on first use.
    pub statements: Vec<Option<Statement>>,
    /// How long connecting took, until someone records it.
    pub connected_in: Option<Duration>,
    /// A query or transaction was cut off midway: the session's state is unknown.
    pub dirty: bool,
}

impl PgConn {
    pub fn usable(&self) -> bool {
        !self.dirty && !self.client.is_closed()
    }
}

/// deadpool's view of a connection: made by connecting, reused while usable.
pub(crate) struct Manager {
    pub target: Arc<Target>,
    pub statements: usize,
    pub io: std::sync::OnceLock<std::io::Result<IoThread>>,
}

impl deadpool::managed::Manager for Manager {
    type Type = PgConn;
    type Error = tokio_postgres::Error;

    async fn create(&self) -> Result<PgConn, tokio_postgres::Error> {
        let io = match self.io.get_or_init(IoThread::start) {
            Ok(io) => io,
            Err(e) => {
                tracing::warn!(
                    "cannot start the pool's I/O thread ({e}); connections stay on the worker that opens them"
                );
                return Box::pin(self.target.connect(self.statements)).await;
            }
        };
        let started = Instant::now();
        let target = self.target.clone();
        let client = io
            .handle
            .spawn(async move {
                let (client, connection) = target.config.connect(target.tls.clone()).await?;
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!("postgres connection ended: {e}");
                    }
                });
                Ok::<Client, tokio_postgres::Error>(client)
            })
            .await
            .expect("the pool's I/O thread runs until the driver is dropped")?;
        Ok(PgConn::new(client, None, self.statements, started))
    }

    async fn recycle(
        &self,
        conn: &mut PgConn,
        _: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<tokio_postgres::Error> {
        if conn.usable() {
            Ok(())
        } else {
            Err(deadpool::managed::RecycleError::message(
                "connection closed or left mid-query",
            ))
        }
    }
}

pub type Pool = deadpool::managed::Pool<Manager>;

/// What went wrong with a query, as tagged on `pg_query_failed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The server answered with an error (see the SQLSTATE).
    Db,
    /// The connection was gone (server restarted, backend terminated).
    Closed,
    /// Reading or writing the socket failed.
    Io,
    /// The query's `timeout` passed.
    Timeout,
    /// Could not get a connection from the pool within `acquire_timeout`.
    PoolTimeout,
    /// The server refused the session (SQLSTATE tells why, e.g. 53300).
    Connect,
    ConnectRefused,
    ConnectTimeout,
    ConnectTls,
    /// Reset while connecting: the server went down (a restart) with the
    /// connection in its queue, or aborted it.
    ConnectReset,
    /// Closed by the server before the session was up, without a word.
    ConnectClosed,
    /// No route to the server's host or network.
    ConnectUnreachable,
    Other,
}

impl ErrorKind {
    pub fn tag(self) -> &'static str {
        match self {
            ErrorKind::Db => "db",
            ErrorKind::Closed => "closed",
            ErrorKind::Io => "io",
            ErrorKind::Timeout => "timeout",
            ErrorKind::PoolTimeout => "pool_timeout",
            ErrorKind::Connect => "connect",
            ErrorKind::ConnectRefused => "connect_refused",
            ErrorKind::ConnectTimeout => "connect_timeout",
            ErrorKind::ConnectTls => "connect_tls",
            ErrorKind::ConnectReset => "connect_reset",
            ErrorKind::ConnectClosed => "connect_closed",
            ErrorKind::ConnectUnreachable => "connect_unreachable",
            ErrorKind::Other => "other",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub kind: ErrorKind,
    pub sqlstate: Option<SqlState>,
}

impl Failure {
    /// The session cannot go on after this: the server is shutting it down
    /// (57P01 admin_shutdown and the rest of class 57P) or the link broke
    /// (class 08), even if the socket has not been seen closing yet.
    pub fn ends_session(&self) -> bool {
        match &self.sqlstate {
            Some(code) => {
                let c = code.code();
                c.starts_with("57P") || c.starts_with("08")
            }
            None => !matches!(self.kind, ErrorKind::Db | ErrorKind::PoolTimeout),
        }
    }

    pub fn kind(kind: ErrorKind) -> Self {
        Failure {
            kind,
            sqlstate: None,
        }
    }

    /// Classify a tokio-postgres error; `connecting` when it came from opening a session.
    pub fn of(e: &tokio_postgres::Error, connecting: bool) -> Self {
        if let Some(code) = e.code() {
            return Failure {
                kind: if connecting {
                    ErrorKind::Connect
                } else {
                    ErrorKind::Db
                },
                sqlstate: Some(code.clone()),
            };
        }
        let io = std::error::Error::source(e).and_then(|s| s.downcast_ref::<std::io::Error>());
        // tokio-postgres names its error kinds only in their text.
        if connecting && e.to_string().contains("TLS") {
            return Failure::kind(ErrorKind::ConnectTls);
        }
        let kind = match (connecting, io.map(std::io::Error::kind)) {
            (true, Some(io)) => connect_cause(io),
            (false, _) if e.is_closed() => ErrorKind::Closed,
            (false, Some(_)) => ErrorKind::Io,
            (c, None) => {
                let text = e.to_string();
                if text.starts_with("timeout") {
                    if c {
                        ErrorKind::ConnectTimeout
                    } else {
                        ErrorKind::Timeout
                    }
                } else if text.contains("TLS") {
                    ErrorKind::ConnectTls
                } else if c && e.is_closed() {
                    ErrorKind::ConnectClosed
                } else if c {
                    ErrorKind::Connect
                } else if e.is_closed() {
                    ErrorKind::Closed
                } else {
                    ErrorKind::Other
                }
            }
        };
        Failure {
            kind,
            sqlstate: None,
        }
    }
}

/// Why connecting failed, from the socket's error: what a summary can say
/// about a server that restarts (refused while down, reset or closed while
/// going down or coming up).
fn connect_cause(io: std::io::ErrorKind) -> ErrorKind {
    use std::io::ErrorKind as Io;
    match io {
        Io::ConnectionRefused => ErrorKind::ConnectRefused,
        Io::TimedOut => ErrorKind::ConnectTimeout,
        Io::ConnectionReset | Io::ConnectionAborted => ErrorKind::ConnectReset,
        Io::UnexpectedEof | Io::BrokenPipe => ErrorKind::ConnectClosed,
        Io::HostUnreachable | Io::NetworkUnreachable => ErrorKind::ConnectUnreachable,
        _ => ErrorKind::Connect,
    }
}

/// Names of the SQLSTATEs a load test meets most, for the report.
pub const SQLSTATE_NAMES: &[(&str, &str)] = &[
    ("08000", "connection_exception"),
    ("08006", "connection_failure"),
    ("22P02", "invalid_text_representation"),
    ("22003", "numeric_value_out_of_range"),
    ("23502", "not_null_violation"),
    ("23503", "foreign_key_violation"),
    ("23505", "unique_violation"),
    ("25P02", "in_failed_sql_transaction"),
    ("28000", "invalid_authorization_specification"),
    ("28P01", "invalid_password"),
    ("3D000", "invalid_catalog_name"),
    ("40001", "serialization_failure"),
    ("40P01", "deadlock_detected"),
    ("42501", "insufficient_privilege"),
    ("42601", "syntax_error"),
    ("42703", "undefined_column"),
    ("42804", "datatype_mismatch"),
    ("42883", "undefined_function"),
    ("42P01", "undefined_table"),
    ("53100", "disk_full"),
    ("53200", "out_of_memory"),
    ("53300", "too_many_connections"),
    ("55P03", "lock_not_available"),
    ("57014", "query_canceled"),
    ("57P01", "admin_shutdown"),
    ("57P02", "crash_shutdown"),
    ("57P03", "cannot_connect_now"),
];

/// The condition name of a SQLSTATE this table knows.
pub fn sqlstate_name(code: &str) -> Option<&'static str> {
    SQLSTATE_NAMES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, n)| *n)
}

/// A tokio-postgres error in words, with the server's message, code and hint.
pub fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let mut s = format!("{} (SQLSTATE {code}", db.message());
        if let Some(name) = sqlstate_name(code) {
            s.push(' ');
            s.push_str(name);
        }
        s.push(')');
        if let Some(d) = db.detail() {
            s.push_str("; ");
            s.push_str(d);
        }
        if let Some(h) = db.hint() {
            s.push_str("; hint: ");
            s.push_str(h);
        }
        return s;
    }
    match std::error::Error::source(e) {
        Some(src) => format!("{e}: {src}"),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_modes_are_taken_out_of_the_url() {
        let (rest, mode, root) = take_ssl_options(
            "postgres://u@h/db?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem&x=1",
        );
        assert_eq!(rest, "postgres://u@h/db?x=1");
        assert_eq!(mode.as_deref(), Some("verify-full"));
        assert_eq!(root.as_deref(), Some("/tmp/ca.pem"));
        let (rest, mode, _) = take_ssl_options("postgres://u@h/db?sslmode=require");
        assert_eq!(rest, "postgres://u@h/db?sslmode=require");
        assert_eq!(mode, None);
        let (rest, mode, _) = take_ssl_options("host=h sslmode=verify-ca user=u");
        assert_eq!(rest, "host=h user=u");
        assert_eq!(mode.as_deref(), Some("verify-ca"));
    }

    #[test]
    fn urls_parse_or_explain() {
        let t = Target::parse(
            "postgres://bob:secret@127.0.0.1:6543/shop?sslmode=require",
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(t.label, "bob@127.0.0.1:6543/shop");
        assert_eq!(t.config.get_ssl_mode(), SslMode::Require);
        assert_eq!(t.config.get_application_name(), Some("volley"));
        let e = Target::parse("postgres://h:notaport/db", Duration::from_secs(5))
            .err()
            .unwrap();
        assert!(e.contains("not a valid PostgreSQL URL"), "{e}");
        let e = Target::parse("postgres://h/db?sslmode=sometimes", Duration::from_secs(5))
            .err()
            .unwrap();
        assert!(e.contains("sslmode=sometimes"), "{e}");
    }
}
