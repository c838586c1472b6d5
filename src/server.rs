//! The listener: accepts TCP connections, serves HTTP/1.1 on each with hyper, and routes requests to
//! the endpoint that owns their path (an Engine.IO endpoint, the demo page, ...).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::engine::{Engine, Handler};
use crate::http::{self, Body};

pub type ResponseFuture = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;

/// Something that answers HTTP requests under a path prefix.
pub trait Endpoint: Send + Sync + 'static {
    fn serve(self: Arc<Self>, req: Request<Incoming>, remote: SocketAddr) -> ResponseFuture;
}

impl<H: Handler> Endpoint for Engine<H> {
    fn serve(self: Arc<Self>, req: Request<Incoming>, remote: SocketAddr) -> ResponseFuture {
        Box::pin(self.handle(req, remote))
    }
}

/// Path prefixes and their endpoints; the longest matching prefix wins.
#[derive(Default, Clone)]
pub struct Router {
    routes: Vec<(String, Arc<dyn Endpoint>)>,
}

impl Router {
    pub fn new() -> Self {
        Router::default()
    }

    /// Serves `prefix` (and everything under it) with `endpoint`.
    pub fn route(mut self, prefix: impl Into<String>, endpoint: Arc<dyn Endpoint>) -> Self {
        self.routes.push((prefix.into(), endpoint));
        self.routes.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        self
    }

    fn find(&self, path: &str) -> Option<Arc<dyn Endpoint>> {
        self.routes
            .iter()
            .find(|(prefix, _)| {
                path.starts_with(prefix.as_str()) || prefix.strip_suffix('/') == Some(path)
            })
            .map(|(_, e)| e.clone())
    }

    async fn dispatch(&self, req: Request<Incoming>, remote: SocketAddr) -> Response<Body> {
        match self.find(req.uri().path()) {
            Some(endpoint) => endpoint.serve(req, remote).await,
            None => http::response(StatusCode::NOT_FOUND, "text/plain", "Not Found"),
        }
    }
}

/// Listener settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Time a client has to send a request's headers; an idle or trickling connection is dropped.
    pub header_timeout: Duration,
}

/// Accepts connections on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) {
    let router = Arc::new(router);
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors or a transient error: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        // Chat frames are small and latency matters more than packet count.
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let header_timeout = config.header_timeout;
        tokio::spawn(async move {
            // The first request's headers must be complete within the header timeout, or the
            // connection is dropped: idle connections and trickled headers (slowloris) cannot pile
            // up. hyper's own timer covers later requests on a kept-alive connection.
            let first_request = Arc::new(AtomicBool::new(false));
            let seen = first_request.clone();
            let service = service_fn(move |req| {
                seen.store(true, Ordering::Release);
                let router = router.clone();
                async move { Ok::<_, std::convert::Infallible>(router.dispatch(req, remote).await) }
            });
            let conn = http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(conn);
            let deadline = tokio::time::sleep(header_timeout);
            tokio::pin!(deadline);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                () = &mut deadline => {
                    if !first_request.load(Ordering::Acquire) {
                        tracing::trace!(%remote, "no complete request within the header timeout");
                        return;
                    }
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::trace!(%remote, error = %e, "http connection ended with an error");
            }
        });
    }
}
