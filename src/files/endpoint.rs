//! The HTTP side of file sharing, under `--files-path` (`/files`):
//!
//! - `POST /files?eventid=N` uploads one file, as `multipart/form-data` (the first part with a
//!   filename) or as the raw body (name in `?name=`, type in `Content-Type`). Answer 201
//!   `{file_id, name, size, content_type, sha256, url}`.
//! - `GET /files/{file_id}` downloads it (ranges, `ETag`), `GET /files/{file_id}/thumbnail` its
//!   thumbnail (images only, once made).
//!
//! Authentication is the socket's: `Authorization: Bearer <JWT>` with `--auth jwt`, `?userid=` with
//! `--auth trust`. Authorization is the join's: only a member of the chat (the directory's query
//! for either seat) uploads to it or downloads from it. Every refusal is a status and a JSON body
//! `{error}` saying what to do.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::{names, ChunkSource, FileError, FileRecord, Files, Uploader};
use crate::auth::AuthMode;
use crate::directory::{Directory, Role, Seat};
use crate::http::{self, Body};
use crate::server::{Endpoint, ResponseFuture};

pub struct FilesEndpoint {
    files: Arc<Files>,
    directory: Arc<dyn Directory>,
    auth: AuthMode,
    /// The same browser origins as the Socket.IO endpoint (`--cors-origin`): a web app served
    /// elsewhere uploads and downloads with CORS.
    origins: http::OriginPolicy,
}

impl FilesEndpoint {
    pub fn new(
        files: Arc<Files>,
        directory: Arc<dyn Directory>,
        auth: AuthMode,
        origins: http::OriginPolicy,
    ) -> Self {
        FilesEndpoint {
            files,
            directory,
            auth,
            origins,
        }
    }
}

impl Endpoint for FilesEndpoint {
    fn serve(self: Arc<Self>, req: Request<Incoming>, _remote: SocketAddr) -> ResponseFuture {
        Box::pin(async move {
            let origin = match self.origins.check(req.headers()) {
                Ok(origin) => origin.cloned(),
                Err(http::ForeignOrigin) => {
                    return http::response(
                        StatusCode::FORBIDDEN,
                        "application/json",
                        r#"{"error":"Forbidden: this origin may not use this server (--cors-origin)"}"#,
                    )
                }
            };
            let mut response = if req.method() == Method::OPTIONS {
                http::preflight(&req)
            } else {
                match self.route(req).await {
                    Ok(response) => response,
                    Err(e) => {
                        self.files.stats.refused.fetch_add(1, Ordering::Relaxed);
                        error_response(&e)
                    }
                }
            };
            if origin.is_some() {
                response.headers_mut().insert(
                    header::ACCESS_CONTROL_EXPOSE_HEADERS,
                    HeaderValue::from_static("Content-Disposition, Content-Range, ETag"),
                );
            }
            http::OriginPolicy::decorate(origin.as_ref(), &mut response);
            response
        })
    }
}

fn error_response(e: &FileError) -> Response<Body> {
    let body = serde_json::json!({ "error": e.to_string() }).to_string();
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut r = http::response(status, "application/json", body);
    if let FileError::RangeNotSatisfiable { size } = e {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
            r.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    if let FileError::Unauthenticated(_) = e {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r
}

impl FilesEndpoint {
    async fn route(&self, req: Request<Incoming>) -> Result<Response<Body>, FileError> {
        let base = self.files.config.path.trim_end_matches('/');
        let rest = req
            .uri()
            .path()
            .strip_prefix(base)
            .unwrap_or("")
            .trim_start_matches('/')
            .to_owned();
        let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
        match (req.method(), parts.as_slice()) {
            (&Method::POST, []) => self.upload(req).await,
            (&Method::GET | &Method::HEAD, [id]) => self.download(req, id, false).await,
            (&Method::GET | &Method::HEAD, [id, "thumbnail"]) => self.download(req, id, true).await,
            (_, [] | [_] | [_, "thumbnail"]) => Err(FileError::BadRequest(
                "Method not allowed: POST uploads, GET downloads".into(),
            )),
            _ => Err(FileError::NotFound),
        }
    }

    /// The user the request is from.
    fn user(&self, req: &Request<Incoming>) -> Result<i32, FileError> {
        match &self.auth {
            AuthMode::Jwt(verifier) => {
                let token = req
                    .headers()
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .ok_or(FileError::Unauthenticated(
                        "Authentication required: send Authorization: Bearer <token>",
                    ))?;
                verifier
                    .verify(token.trim())
                    .map_err(|e| FileError::Unauthenticated(e.message()))
            }
            AuthMode::Trust => query(req, "userid")
                .and_then(|u| u.parse::<i32>().ok())
                .ok_or_else(|| {
                    FileError::BadRequest(
                        "Missing userid: this server trusts the userid query parameter".into(),
                    )
                }),
        }
    }

    /// Whether `userid` holds either seat of `eventid`'s chat.
    async fn member(&self, eventid: i32, userid: i32) -> Result<(), FileError> {
        for role in [Role::Tutor, Role::Tutee] {
            match self.directory.seat(eventid, userid, role).await {
                Ok(Seat::Granted { .. }) => return Ok(()),
                Ok(Seat::EventNotFound) => return Err(FileError::EventNotFound),
                Ok(Seat::NotMember) => {}
                Err(e) => return Err(FileError::Unavailable(e.to_string())),
            }
        }
        Err(FileError::NotMember)
    }

    async fn upload(&self, req: Request<Incoming>) -> Result<Response<Body>, FileError> {
        let userid = self.user(&req)?;
        let eventid = query(&req, "eventid")
            .and_then(|e| e.parse::<i32>().ok())
            .ok_or_else(|| {
                FileError::BadRequest("Missing eventid: name the chat in ?eventid=".into())
            })?;
        self.member(eventid, userid).await?;
        let max = self.files.config.max_bytes;
        let declared_length = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        // A multipart body carries a little more than the file: allow for its headers.
        if declared_length.is_some_and(|n| n > max + 64 * 1024) {
            return Err(FileError::TooLarge { max });
        }
        self.files.check_quota(userid).await?;
        let _slot = self.files.upload_slot()?;
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let idle = self.files.config.idle_timeout;
        let who = Uploader { eventid, userid };
        let record = match content_type
            .as_deref()
            .filter(|t| t.to_ascii_lowercase().starts_with("multipart/form-data"))
        {
            Some(t) => {
                let boundary = multer::parse_boundary(t).map_err(|e| {
                    FileError::BadRequest(format!("Invalid multipart/form-data: {e}"))
                })?;
                let body = body_stream(req.into_body());
                let constraints = multer::Constraints::new()
                    .size_limit(multer::SizeLimit::new().whole_stream(max + 64 * 1024));
                let mut form = multer::Multipart::with_constraints(body, boundary, constraints);
                let mut part = file_part(&mut form, idle).await?;
                let name = part.file_name().unwrap_or("file").to_owned();
                let declared = part.content_type().map(|m| m.to_string());
                let mut source = PartSource {
                    part: &mut part,
                    idle,
                    max,
                };
                self.files
                    .upload(who, &name, declared.as_deref(), &mut source)
                    .await?
            }
            None => {
                let name = query(&req, "name").map(percent_decode).unwrap_or_default();
                let mut source = RawSource {
                    body: req.into_body(),
                    idle,
                };
                self.files
                    .upload(who, &name, content_type.as_deref(), &mut source)
                    .await?
            }
        };
        let body = serde_json::json!({
            "file_id": record.file_id,
            "name": record.name,
            "size": record.size,
            "content_type": record.content_type,
            "sha256": record.sha256,
            "url": self.files.url(&record.file_id),
        })
        .to_string();
        Ok(http::response(
            StatusCode::CREATED,
            "application/json",
            body,
        ))
    }

    async fn download(
        &self,
        req: Request<Incoming>,
        file_id: &str,
        thumbnail: bool,
    ) -> Result<Response<Body>, FileError> {
        if !super::is_file_id(file_id) {
            return Err(FileError::NotFound);
        }
        let userid = self.user(&req)?;
        let record = self
            .files
            .record(file_id)
            .await?
            .ok_or(FileError::NotFound)?;
        self.member(record.eventid, userid).await?;
        if thumbnail && !record.thumbnail {
            return Err(FileError::NotFound);
        }
        let etag = if thumbnail {
            format!("\"{}-thumbnail\"", record.sha256)
        } else {
            format!("\"{}\"", record.sha256)
        };
        let matches = req
            .headers()
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
        if matches {
            let mut r = http::response(StatusCode::NOT_MODIFIED, "text/plain", "");
            r.headers_mut().remove(header::CONTENT_TYPE);
            set(&mut r, header::ETAG, &etag);
            return Ok(r);
        }
        let range = if thumbnail {
            None
        } else {
            req.headers()
                .get(header::RANGE)
                .and_then(|v| v.to_str().ok())
                .map(|v| parse_range(v, record.size as u64))
                .transpose()
                .map_err(|()| FileError::RangeNotSatisfiable { size: record.size })?
                .flatten()
        };
        let got = self.files.open(file_id, thumbnail, range.clone()).await?;
        let total = got.meta.size;
        let served = got.range.clone();
        let length = served.end - served.start;
        let head_only = req.method() == Method::HEAD;
        let body: Body = if head_only {
            http::empty()
        } else {
            let stats = self.files.clone();
            let stream = got.into_stream().map(move |chunk| {
                chunk
                    .map(|bytes| {
                        stats
                            .stats
                            .downloaded_bytes
                            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                        Frame::data(bytes)
                    })
                    .map_err(std::io::Error::other)
            });
            BodyExt::boxed_unsync(StreamBody::new(stream))
        };
        self.files.stats.downloads.fetch_add(1, Ordering::Relaxed);
        let mut r = Response::new(body);
        if range.is_some() {
            *r.status_mut() = StatusCode::PARTIAL_CONTENT;
            set(
                &mut r,
                header::CONTENT_RANGE,
                &format!(
                    "bytes {}-{}/{total}",
                    served.start,
                    served.end.saturating_sub(1)
                ),
            );
        }
        headers(&mut r, &record, thumbnail, &etag, length);
        Ok(r)
    }
}

fn set(r: &mut Response<Body>, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}

/// The headers that keep a downloaded file inert: its own type, never sniffed; shown inline only
/// when it is an image a browser cannot run; a sandbox if it is opened anyway.
fn headers(r: &mut Response<Body>, f: &FileRecord, thumbnail: bool, etag: &str, length: u64) {
    let content_type = if thumbnail {
        "image/png"
    } else {
        f.content_type.as_str()
    };
    let inline = thumbnail
        || super::sniff::ALLOWED
            .iter()
            .any(|k| k.image && k.content_type == f.content_type);
    set(r, header::CONTENT_TYPE, content_type);
    set(r, header::CONTENT_LENGTH, &length.to_string());
    set(r, header::ETAG, etag);
    set(
        r,
        header::ACCEPT_RANGES,
        if thumbnail { "none" } else { "bytes" },
    );
    set(
        r,
        header::CONTENT_DISPOSITION,
        &names::disposition(inline, &f.name),
    );
    set(r, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(
        r,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; sandbox",
    );
    set(r, header::CACHE_CONTROL, "private, max-age=86400");
}

/// A request body's data frames as a stream of bytes.
fn body_stream(
    body: Incoming,
) -> impl futures_util::Stream<Item = Result<Bytes, hyper::Error>> + Send + 'static {
    http_body_util::BodyStream::new(body)
        .try_filter_map(|frame| async move { Ok(frame.into_data().ok()) })
}

/// The first part of the form that carries a file (other fields are skipped).
async fn file_part(
    form: &mut multer::Multipart<'static>,
    idle: Duration,
) -> Result<multer::Field<'static>, FileError> {
    loop {
        let next = tokio::time::timeout(idle, form.next_field())
            .await
            .map_err(|_| FileError::Stalled(idle))?
            .map_err(multipart_error)?;
        match next {
            Some(field) if field.file_name().is_some() => return Ok(field),
            Some(field) => {
                // A small text field: read and forget it.
                tokio::time::timeout(idle, field.bytes())
                    .await
                    .map_err(|_| FileError::Stalled(idle))?
                    .map_err(multipart_error)?;
            }
            None => {
                return Err(FileError::BadRequest(
                    "No file in the form: send the file as a part with a filename".into(),
                ))
            }
        }
    }
}

fn multipart_error(e: multer::Error) -> FileError {
    match e {
        multer::Error::IncompleteStream
        | multer::Error::IncompleteFieldData { .. }
        | multer::Error::IncompleteHeaders => {
            FileError::Incomplete("the multipart body ended before its closing boundary".into())
        }
        multer::Error::StreamReadFailed(e) => FileError::Incomplete(e.to_string()),
        e => FileError::BadRequest(format!("Invalid multipart/form-data: {e}")),
    }
}

struct PartSource<'a> {
    part: &'a mut multer::Field<'static>,
    idle: Duration,
    max: u64,
}

impl ChunkSource for PartSource<'_> {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, FileError> {
        match tokio::time::timeout(self.idle, self.part.chunk()).await {
            Err(_) => Err(FileError::Stalled(self.idle)),
            Ok(Ok(chunk)) => Ok(chunk),
            Ok(Err(multer::Error::StreamSizeExceeded { .. })) => {
                Err(FileError::TooLarge { max: self.max })
            }
            Ok(Err(e)) => Err(multipart_error(e)),
        }
    }
}

struct RawSource {
    body: Incoming,
    idle: Duration,
}

impl ChunkSource for RawSource {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, FileError> {
        loop {
            match tokio::time::timeout(self.idle, self.body.frame()).await {
                Err(_) => return Err(FileError::Stalled(self.idle)),
                Ok(None) => return Ok(None),
                Ok(Some(Err(e))) => {
                    return Err(FileError::Incomplete(format!(
                        "the body ended early or was malformed ({e})"
                    )))
                }
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        if !data.is_empty() {
                            return Ok(Some(data));
                        }
                    }
                }
            }
        }
    }
}

fn query<'r>(req: &'r Request<Incoming>, name: &str) -> Option<&'r str> {
    http::query_param(req.uri().query()?, name)
}

/// A query parameter's value, `%XX` and `+` decoded (invalid UTF-8 replaced).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let digit = |b: u8| (b as char).to_digit(16);
                match (digit(bytes[i + 1]), digit(bytes[i + 2])) {
                    (Some(hi), Some(lo)) => {
                        out.push((hi * 16 + lo) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The one byte range a `Range` header asks for: `Ok(None)` to serve the whole file (no `bytes=`
/// unit, several ranges, or a malformed header, which RFC 9110 says to ignore), `Err` when it
/// cannot be satisfied.
fn parse_range(header: &str, size: u64) -> Result<Option<std::ops::Range<u64>>, ()> {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (first, last) = (first.trim(), last.trim());
    let number = |s: &str| s.parse::<u64>().ok();
    let range = match (first.is_empty(), last.is_empty()) {
        (true, false) => {
            let Some(n) = number(last) else {
                return Ok(None);
            };
            if n == 0 || size == 0 {
                return Err(());
            }
            size.saturating_sub(n)..size
        }
        (false, true) => {
            let Some(start) = number(first) else {
                return Ok(None);
            };
            start..size
        }
        (false, false) => {
            let (Some(start), Some(end)) = (number(first), number(last)) else {
                return Ok(None);
            };
            if end < start {
                return Ok(None);
            }
            start..end.saturating_add(1).min(size)
        }
        (true, true) => return Ok(None),
    };
    if range.start >= size {
        return Err(());
    }
    Ok(Some(range))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-99", 1000), Ok(Some(0..100)));
        assert_eq!(parse_range("bytes=900-", 1000), Ok(Some(900..1000)));
        assert_eq!(parse_range("bytes=-100", 1000), Ok(Some(900..1000)));
        assert_eq!(parse_range("bytes=-5000", 1000), Ok(Some(0..1000)));
        assert_eq!(parse_range("bytes=990-5000", 1000), Ok(Some(990..1000)));
        assert_eq!(parse_range("bytes=1000-", 1000), Err(()));
        assert_eq!(parse_range("bytes=-0", 1000), Err(()));
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), Ok(None));
        assert_eq!(parse_range("items=0-1", 1000), Ok(None));
        assert_eq!(parse_range("bytes=x-y", 1000), Ok(None));
        assert_eq!(parse_range("bytes=5-1", 1000), Ok(None));
    }

    #[test]
    fn query_values_are_decoded() {
        assert_eq!(percent_decode("%C3%9Cbung+1.pdf"), "Übung 1.pdf");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
