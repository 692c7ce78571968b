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

/// A listening socket, non-blocking as tokio wants it.
pub(super) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
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
    /// Serve every request on `listener` with `respond`, on a thread named
    /// `thread`; `what` names the endpoint in the logs.
    pub(super) fn start<F, B>(
        listener: TcpListener,
        thread: &str,
        what: &'static str,
        respond: F,
    ) -> std::io::Result<Self>
    where
        F: Fn(&Request<Incoming>) -> Response<B> + Send + Sync + 'static,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(thread.into())
            .spawn(move || serve(listener, what, Arc::new(respond), stopped))?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
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
