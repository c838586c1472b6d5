//! The demo page served at `/`: plain HTML and JavaScript, no build step. Two browser tabs can join
//! the same event as tutor and tutee and chat. `/demo/events.json` lists the events it offers (those
//! of the embedded demo directory).

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde_json::json;

use crate::directory::demo::{EVENTS, USERS};
use crate::http;
use crate::server::{Endpoint, ResponseFuture};

const PAGE: &str = include_str!("index.html");

pub struct DemoPage;

fn events_json() -> String {
    let user = |id: i32| {
        let name = USERS
            .iter()
            .find(|(u, _)| *u == id)
            .map_or("?", |(_, n)| *n);
        json!({ "userid": id, "name": name })
    };
    let events: Vec<_> = EVENTS
        .iter()
        .map(|(e, t, s)| json!({ "eventid": e, "tutor": user(*t), "tutee": user(*s) }))
        .collect();
    serde_json::Value::Array(events).to_string()
}

impl Endpoint for DemoPage {
    fn serve(self: Arc<Self>, req: Request<Incoming>, _remote: SocketAddr) -> ResponseFuture {
        let response = match (req.method(), req.uri().path()) {
            (&Method::GET | &Method::HEAD, "/" | "/index.html") => {
                http::response(StatusCode::OK, "text/html; charset=utf-8", PAGE)
            }
            (&Method::GET, "/demo/events.json") => {
                http::response(StatusCode::OK, "application/json", events_json())
            }
            _ => http::response(StatusCode::NOT_FOUND, "text/plain", "Not Found"),
        };
        Box::pin(std::future::ready(response))
    }
}
