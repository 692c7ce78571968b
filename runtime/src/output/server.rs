//! The HTTP server behind the live endpoints (`--dashboard`,
//! `--out prometheus`): bound before the run, so a busy port fails up front,
//! and served on its own thread until the endpoint is dropped.

use hyper::body::{Body, Incoming};
use hyper::{Request, Response};
use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio::sync::oneshot;

/// Why a live endpoint does not serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// `flag` is how the user asked for it (`--dashboard `).
    #[error("{flag}{addr}: cannot listen: {e}")]
    Listen {
        flag: &'static str,
        addr: SocketAddr,
        e: std::io::Error,
    },
    #[error("{0}")]
    Address(std::io::Error),
    /// `title` names it (`the dashboard`).
    #[error("cannot start {title}: {e}")]
    Thread {
        title: &'static str,
        e: std::io::Error,
    },
}

/// How an endpoint is named: in its errors, its thread and its logs.
pub(super) struct Names {
    /// The flag and the text before the address (`--out prometheus=`).
    pub flag: &'static str,
    /// In "cannot start ...": `the Prometheus endpoint`.
    pub title: &'static str,
    pub thread: &'static str,
    /// In the logs: `prometheus endpoint`.
    pub log: &'static str,
}

/// A listening socket, non-blocking as tokio wants it.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serves `respond` on its thread until dropped.
pub(super) struct Server {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Bind `addr` now (a busy port fails before the run) and serve every
    /// request with `respond` on a thread; the address it listens on.
    pub(super) fn start<F, B>(
        addr: SocketAddr,
        names: Names,
        respond: F,
    ) -> Result<(Self, SocketAddr), ServeError>
    where
        F: Fn(&Request<Incoming>) -> Response<B> + Send + Sync + 'static,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let listener = bind(addr).map_err(|e| ServeError::Listen {
            flag: names.flag,
            addr,
            e,
        })?;
        let addr = listener.local_addr().map_err(ServeError::Address)?;
        let (stop, stopped) = oneshot::channel();
        let log = names.log;
        let thread = std::thread::Builder::new()
            .name(names.thread.into())
            .spawn(move || serve(listener, log, Arc::new(respond), stopped))
            .map_err(|e| ServeError::Thread {
                title: names.title,
                e,
            })?;
        let server = Self {
            stop: Some(stop),
            thread: Some(thread),
        };
        Ok((server, addr))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve<F, B>(
    listener: TcpListener,
    what: &'static str,
    respond: Arc<F>,
    mut stopped: oneshot::Receiver<()>,
) where
    F: Fn(&Request<Incoming>) -> Response<B> + Send + Sync + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("{what}: cannot start a runtime: {e}");
            return;
        }
    };
    rt.block_on(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("{what}: {e}");
                return;
            }
        };
        loop {
            let stream = tokio::select! {
                _ = &mut stopped => break,
                r = listener.accept() => match r {
                    Ok((s, _)) => s,
                    Err(e) => {
                        tracing::warn!("{what}: accept: {e}");
                        continue;
                    }
                },
            };
            let respond = respond.clone();
            let service = hyper::service::service_fn(move |req| {
                let r = respond(&req);
                async move { Ok::<_, Infallible>(r) }
            });
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
}
