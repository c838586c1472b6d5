//! Operator routes: `GET /health` (the process is up) and `GET /ready` (it can serve joins: the
//! directory answers and the gateway is not shutting down), for load balancers and orchestrators.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};

use crate::directory::Directory;
use crate::http;
use crate::server::{Endpoint, ResponseFuture};

pub struct Admin {
    directory: Arc<dyn Directory>,
    shutting_down: Arc<AtomicBool>,
}

impl Admin {
    pub fn new(directory: Arc<dyn Directory>, shutting_down: Arc<AtomicBool>) -> Admin {
        Admin {
            directory,
            shutting_down,
        }
    }
}

impl Endpoint for Admin {
    fn serve(self: Arc<Self>, req: Request<Incoming>, _remote: SocketAddr) -> ResponseFuture {
        Box::pin(async move {
            match req.uri().path() {
                "/health" => http::response(StatusCode::OK, "text/plain", "ok\n"),
                "/ready" => {
                    if self.shutting_down.load(Ordering::Acquire) {
                        http::response(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "text/plain",
                            "shutting down\n",
                        )
                    } else if self.directory.ready().await {
                        http::response(StatusCode::OK, "text/plain", "ready\n")
                    } else {
                        http::response(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "text/plain",
                            "directory unavailable\n",
                        )
                    }
                }
                _ => http::response(StatusCode::NOT_FOUND, "text/plain", "Not Found"),
            }
        })
    }
}
