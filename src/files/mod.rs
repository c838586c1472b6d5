//! File sharing (docs/FILES.md): bytes go over HTTP, never through the socket; a message carries
//! references. Built the way Matrix's media repository and Zulip's uploads are: upload first
//! (`POST /files`, answered with a `file_id`), then send a message naming it
//! (`send-message` `{attachments: [file_id]}`), download with the same authorization as the chat.
//!
//! - `endpoint`: the HTTP side (authentication, multipart, ranges, headers).
//! - `sniff`: what a file is, from its bytes; the allowlist.
//! - `names`: file names for display and `Content-Disposition`, never paths.
//! - `meta`: metadata in PostgreSQL or memory.
//! - `thumbnails`: small previews of images, made after the upload.
//!
//! The bytes live in an object store (`object_store`): a local directory by default, or any
//! S3-compatible service shared by the nodes of a cluster. Storage keys are `files/{file_id}` and
//! `thumbs/{file_id}`; ids are 128 random bits, so a key is never derived from anything a client
//! names.

pub mod endpoint;
mod meta;
pub mod names;
pub mod sniff;
mod thumbnails;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use serde::Serialize;
use sha2::Digest;
use tokio::sync::Semaphore;

pub use meta::{ClaimRefusal, FileRecord, MetaError};
use meta::{Inserted, Meta};
use sniff::{Kind, SniffError, TextCheck};

/// File sharing settings (`--files-*`, `--max-file-bytes`, ...).
#[derive(Debug, Clone)]
pub struct FilesConfig {
    /// Where the endpoint is mounted (`/files`); downloads are `{path}/{file_id}`.
    pub path: String,
    pub max_bytes: u64,
    /// Bytes one user may upload in 24 hours.
    pub quota_bytes: u64,
    pub max_attachments: usize,
    /// An upload that sends nothing for this long is cut off.
    pub idle_timeout: Duration,
    /// Files never attached to a message are deleted this long after their upload.
    pub grace: Duration,
    /// Images with more pixels are refused (and never decoded).
    pub max_image_pixels: u64,
    /// Uploads in progress at once, over all users.
    pub max_uploads: usize,
}

/// Where the bytes go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// A local directory (one node, or nodes sharing a network file system).
    Dir(std::path::PathBuf),
    /// An S3-compatible bucket; credentials from `--s3-access-key-id` and
    /// `--s3-secret-access-key` (or the standard `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`
    /// environment variables).
    S3 {
        bucket: String,
        endpoint: Option<String>,
        region: String,
        key_id: Option<String>,
        secret: Option<String>,
    },
}

impl std::str::FromStr for StoreConfig {
    type Err = String;

    /// `dir:PATH` or `s3://BUCKET`.
    fn from_str(s: &str) -> Result<StoreConfig, String> {
        if let Some(dir) = s.strip_prefix("dir:") {
            if dir.is_empty() {
                return Err("dir: needs a path, e.g. dir:/var/lib/chatgate/files".into());
            }
            return Ok(StoreConfig::Dir(dir.into()));
        }
        if let Some(bucket) = s.strip_prefix("s3://") {
            let bucket = bucket.trim_end_matches('/');
            if bucket.is_empty() || bucket.contains('/') {
                return Err(
                    "s3:// needs a bucket name and nothing else, e.g. s3://chat-files".into(),
                );
            }
            return Ok(StoreConfig::S3 {
                bucket: bucket.into(),
                endpoint: None,
                region: "us-east-1".into(),
                key_id: None,
                secret: None,
            });
        }
        Err(format!(
            "{s:?} is not a file store: use dir:PATH (a local directory) or s3://BUCKET"
        ))
    }
}

impl std::fmt::Display for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreConfig::Dir(dir) => write!(f, "directory {}", dir.display()),
            StoreConfig::S3 {
                bucket, endpoint, ..
            } => match endpoint {
                Some(e) => write!(f, "S3 bucket {bucket} at {e}"),
                None => write!(f, "S3 bucket {bucket}"),
            },
        }
    }
}

/// The store could not be opened at start.
#[derive(Debug)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot open the file store: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

/// Opens the store; with it, the size of the parts uploads are written in (S3 needs parts of at
/// least 5 MiB but the last; a directory takes any size, and smaller parts hold less memory per
/// upload).
pub fn open_store(config: &StoreConfig) -> Result<(Arc<dyn ObjectStore>, usize), StoreError> {
    match config {
        StoreConfig::Dir(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError(format!("cannot create {}: {e}", dir.display())))?;
            let store = object_store::local::LocalFileSystem::new_with_prefix(dir)
                .map_err(|e| StoreError(e.to_string()))?
                .with_automatic_cleanup(true);
            Ok((Arc::new(store), 256 * 1024))
        }
        StoreConfig::S3 {
            bucket,
            endpoint,
            region,
            key_id,
            secret,
        } => {
            let mut builder = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_region(region);
            if let (Some(key_id), Some(secret)) = (key_id, secret) {
                builder = builder
                    .with_access_key_id(key_id)
                    .with_secret_access_key(secret);
            }
            if let Some(endpoint) = endpoint {
                builder = builder
                    .with_endpoint(endpoint)
                    .with_allow_http(endpoint.starts_with("http://"));
            }
            let store = builder.build().map_err(|e| StoreError(e.to_string()))?;
            Ok((Arc::new(store), 5 * 1024 * 1024))
        }
    }
}

/// An attachment as messages carry it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Attachment {
    pub file_id: String,
    pub name: String,
    pub size: i64,
    pub content_type: String,
    pub url: String,
}

/// Why an upload or a download failed; each maps to an HTTP status and a message a user can act
/// on.
#[derive(Debug)]
pub enum FileError {
    Unauthenticated(&'static str),
    BadRequest(String),
    NotMember,
    EventNotFound,
    NotFound,
    TooLarge { max: u64 },
    ImageTooLarge { width: u32, height: u32, max: u64 },
    QuotaExceeded { quota: u64, used: i64 },
    Busy,
    Type(SniffError),
    Empty,
    Incomplete(String),
    Stalled(Duration),
    Unavailable(String),
    RangeNotSatisfiable { size: i64 },
}

impl FileError {
    pub fn status(&self) -> u16 {
        match self {
            FileError::Unauthenticated(_) => 401,
            FileError::BadRequest(_) | FileError::Empty | FileError::Incomplete(_) => 400,
            FileError::NotMember => 403,
            FileError::EventNotFound | FileError::NotFound => 404,
            FileError::Stalled(_) => 408,
            FileError::TooLarge { .. } | FileError::ImageTooLarge { .. } => 413,
            FileError::Type(_) => 415,
            FileError::RangeNotSatisfiable { .. } => 416,
            FileError::QuotaExceeded { .. } => 429,
            FileError::Busy | FileError::Unavailable(_) => 503,
        }
    }
}

fn mib(bytes: u64) -> String {
    if bytes.is_multiple_of(1024 * 1024) {
        format!("{} MiB", bytes / (1024 * 1024))
    } else {
        format!("{bytes} bytes")
    }
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileError::Unauthenticated(why) => f.write_str(why),
            FileError::BadRequest(why) => f.write_str(why),
            FileError::NotMember => f.write_str("Unauthorized: You are not part of this event"),
            FileError::EventNotFound => f.write_str("Event not found"),
            FileError::NotFound => f.write_str("File not found"),
            FileError::TooLarge { max } => write!(f, "File too large: at most {}", mib(*max)),
            FileError::ImageTooLarge { width, height, max } => write!(
                f,
                "Image too large: {width}x{height} pixels, at most {max} pixels are accepted"
            ),
            FileError::QuotaExceeded { quota, used } => write!(
                f,
                "Upload quota exceeded: {} per 24 hours, {} used; try again later",
                mib(*quota),
                mib((*used).max(0) as u64)
            ),
            FileError::Busy => f.write_str("Too many uploads at once: try again in a moment"),
            FileError::Type(e) => write!(f, "File type refused: {e}"),
            FileError::Empty => f.write_str("Empty file: nothing to upload"),
            FileError::Incomplete(why) => write!(f, "Upload incomplete: {why}"),
            FileError::Stalled(after) => {
                write!(f, "Upload stalled: no data for {} seconds", after.as_secs())
            }
            FileError::Unavailable(_) => {
                f.write_str("File storage unavailable: try again in a moment")
            }
            FileError::RangeNotSatisfiable { size } => {
                write!(f, "Range not satisfiable: the file has {size} bytes")
            }
        }
    }
}

/// What `/metrics` shows of file sharing.
#[derive(Default)]
pub struct FileStats {
    pub uploads: std::sync::atomic::AtomicU64,
    pub uploaded_bytes: std::sync::atomic::AtomicU64,
    pub refused: std::sync::atomic::AtomicU64,
    pub downloads: std::sync::atomic::AtomicU64,
    pub downloaded_bytes: std::sync::atomic::AtomicU64,
    pub deleted: std::sync::atomic::AtomicU64,
    pub thumbnails: std::sync::atomic::AtomicU64,
}

pub struct Files {
    pub config: FilesConfig,
    store: Arc<dyn ObjectStore>,
    part_size: usize,
    meta: Meta,
    uploads: Semaphore,
    /// Decoding images is CPU and memory heavy: one at a time.
    thumbnails: Semaphore,
    pub stats: FileStats,
}

fn file_key(file_id: &str) -> StorePath {
    StorePath::from(format!("files/{file_id}"))
}

fn thumb_key(file_id: &str) -> StorePath {
    StorePath::from(format!("thumbs/{file_id}"))
}

/// A new file id: 128 random bits as 32 lowercase hex digits.
fn new_id() -> String {
    let bits: u128 = rand::random();
    format!("{bits:032x}")
}

/// Whether `s` can be a file id (before any lookup).
pub fn is_file_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What an upload is for, once authorized.
pub struct Uploader {
    pub eventid: i32,
    pub userid: i32,
}

/// The next chunk of an upload's bytes: `Ok(None)` at the end.
pub trait ChunkSource {
    fn next_chunk(
        &mut self,
    ) -> impl std::future::Future<Output = Result<Option<Bytes>, FileError>> + Send;
}

impl Files {
    /// File sharing with metadata in PostgreSQL (`pool`) or, without one, in memory.
    pub fn new(
        config: FilesConfig,
        store: Arc<dyn ObjectStore>,
        part_size: usize,
        pool: Option<deadpool_postgres::Pool>,
    ) -> Files {
        let meta = match pool {
            Some(pool) => Meta::Postgres(pool),
            None => Meta::Memory(std::sync::Mutex::default()),
        };
        Files {
            uploads: Semaphore::new(config.max_uploads.max(1)),
            thumbnails: Semaphore::new(1),
            config,
            store,
            part_size,
            meta,
            stats: FileStats::default(),
        }
    }

    pub fn url(&self, file_id: &str) -> String {
        format!("{}/{file_id}", self.config.path.trim_end_matches('/'))
    }

    /// Refuses an upload early when the user's quota is already used up.
    pub async fn check_quota(&self, userid: i32) -> Result<(), FileError> {
        let used = self
            .meta
            .used(userid, Utc::now())
            .await
            .map_err(|e| FileError::Unavailable(e.to_string()))?;
        if used >= self.config.quota_bytes as i64 {
            return Err(FileError::QuotaExceeded {
                quota: self.config.quota_bytes,
                used,
            });
        }
        Ok(())
    }

    /// Parts an upload may have in flight to the store besides the one it fills: with small
    /// parts (a directory) two keep the disk busy; S3's parts are at least 5 MiB, so one at a time
    /// keeps an upload under two parts (10 MiB) of memory.
    fn in_flight(&self) -> usize {
        if self.part_size > 1024 * 1024 {
            0
        } else {
            2
        }
    }

    /// A place among the uploads in progress, or `Busy`.
    pub fn upload_slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, FileError> {
        self.uploads.try_acquire().map_err(|_| FileError::Busy)
    }

    /// Streams an upload into the store: the size cap as bytes arrive, the type from the first
    /// bytes, the SHA-256 on the way; recorded only once completely stored. On any failure
    /// nothing is left behind.
    pub async fn upload(
        self: &Arc<Self>,
        who: Uploader,
        name: &str,
        declared: Option<&str>,
        source: &mut impl ChunkSource,
    ) -> Result<FileRecord, FileError> {
        let max = self.config.max_bytes;
        let mut hasher = sha2::Sha256::new();
        let mut size: u64 = 0;
        // The first bytes, to learn what the file is before anything is written.
        let mut head = Vec::new();
        let mut ended = false;
        while head.len() < sniff::WINDOW {
            match source.next_chunk().await? {
                Some(chunk) => {
                    size += chunk.len() as u64;
                    if size > max {
                        return Err(FileError::TooLarge { max });
                    }
                    head.extend_from_slice(&chunk);
                }
                None => {
                    ended = true;
                    break;
                }
            }
        }
        if head.is_empty() {
            return Err(FileError::Empty);
        }
        let window = &head[..head.len().min(sniff::WINDOW)];
        let kind = sniff::sniff(window, ended && head.len() <= sniff::WINDOW, declared)
            .map_err(FileError::Type)?;
        if kind.image {
            self.check_dimensions(&head)?;
        }
        let mut text = (kind.content_type == "text/plain").then(TextCheck::default);
        if let Some(check) = &mut text {
            if !check.push(&head) {
                return Err(FileError::Type(SniffError::Unrecognised));
            }
        }
        let file_id = new_id();
        let key = file_key(&file_id);
        let upload = self
            .store
            .put_multipart(&key)
            .await
            .map_err(|e| FileError::Unavailable(e.to_string()))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, self.part_size);
        hasher.update(&head);
        writer.put(Bytes::from(head));
        let streamed = async {
            while !ended {
                let Some(chunk) = source.next_chunk().await? else {
                    ended = true;
                    continue;
                };
                size += chunk.len() as u64;
                if size > max {
                    return Err(FileError::TooLarge { max });
                }
                if let Some(check) = &mut text {
                    if !check.push(&chunk) {
                        return Err(FileError::Type(SniffError::Unrecognised));
                    }
                }
                hasher.update(&chunk);
                writer.put(chunk);
                // Bounded memory per upload, whatever the file's size: the part being filled plus
                // the parts in flight (see `in_flight`).
                writer
                    .wait_for_capacity(self.in_flight())
                    .await
                    .map_err(|e| FileError::Unavailable(e.to_string()))?;
            }
            if text.as_ref().is_some_and(|c| !c.finish()) {
                return Err(FileError::Type(SniffError::Unrecognised));
            }
            Ok(())
        }
        .await;
        if let Err(e) = streamed {
            let _ = writer.abort().await;
            return Err(e);
        }
        writer
            .finish()
            .await
            .map_err(|e| FileError::Unavailable(e.to_string()))?;
        let record = FileRecord {
            file_id: file_id.clone(),
            eventid: who.eventid,
            userid: who.userid,
            name: names::clean(name),
            size: size as i64,
            content_type: kind.content_type.to_owned(),
            sha256: hex(&hasher.finalize()),
            created_at: now(),
            attached: false,
            thumbnail: false,
        };
        let inserted = self
            .meta
            .insert(&record, self.config.quota_bytes as i64)
            .await;
        match inserted {
            Ok(Inserted::Yes) => {}
            Ok(Inserted::OverQuota { used }) => {
                let _ = self.store.delete(&key).await;
                return Err(FileError::QuotaExceeded {
                    quota: self.config.quota_bytes,
                    used,
                });
            }
            Err(e) => {
                let _ = self.store.delete(&key).await;
                return Err(FileError::Unavailable(e.to_string()));
            }
        }
        self.stats
            .uploads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.stats
            .uploaded_bytes
            .fetch_add(size, std::sync::atomic::Ordering::Relaxed);
        if kind.image {
            let files = self.clone();
            let id = file_id.clone();
            tokio::spawn(async move { files.make_thumbnail(&id, kind).await });
        }
        Ok(record)
    }

    /// Refuses an image whose header announces more pixels than allowed (a decompression bomb is
    /// a small file with a huge canvas), without decoding it.
    fn check_dimensions(&self, head: &[u8]) -> Result<(), FileError> {
        if let Some((width, height)) = thumbnails::dimensions(head) {
            let max = self.config.max_image_pixels;
            if u64::from(width) * u64::from(height) > max {
                return Err(FileError::ImageTooLarge { width, height, max });
            }
        }
        Ok(())
    }

    async fn make_thumbnail(&self, file_id: &str, kind: Kind) {
        let Ok(_turn) = self.thumbnails.acquire().await else {
            return;
        };
        let bytes = match self.store.get(&file_key(file_id)).await {
            Ok(got) => match got.bytes().await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(file_id, error = %e, "thumbnail: cannot read the file");
                    return;
                }
            },
            Err(e) => {
                tracing::warn!(file_id, error = %e, "thumbnail: cannot read the file");
                return;
            }
        };
        let max_pixels = self.config.max_image_pixels;
        let made =
            tokio::task::spawn_blocking(move || thumbnails::make(&bytes, max_pixels, kind)).await;
        let png = match made {
            Ok(Ok(png)) => png,
            Ok(Err(e)) => {
                tracing::info!(file_id, error = %e, "no thumbnail");
                return;
            }
            Err(e) => {
                tracing::warn!(file_id, error = %e, "thumbnail task failed");
                return;
            }
        };
        if let Err(e) = self.store.put(&thumb_key(file_id), png.into()).await {
            tracing::warn!(file_id, error = %e, "thumbnail: cannot store it");
            return;
        }
        match self.meta.set_thumbnail(file_id).await {
            Ok(()) => {
                self.stats
                    .thumbnails
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Err(e) => tracing::warn!(file_id, error = %e, "thumbnail: cannot record it"),
        }
    }

    pub async fn record(&self, file_id: &str) -> Result<Option<FileRecord>, FileError> {
        self.meta
            .get(file_id)
            .await
            .map_err(|e| FileError::Unavailable(e.to_string()))
    }

    /// The bytes of a file (or of its thumbnail), whole or a range.
    pub async fn open(
        &self,
        file_id: &str,
        thumbnail: bool,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<object_store::GetResult, FileError> {
        let key = if thumbnail {
            thumb_key(file_id)
        } else {
            file_key(file_id)
        };
        let options = object_store::GetOptions {
            range: range.map(object_store::GetRange::Bounded),
            ..Default::default()
        };
        self.store
            .get_opts(&key, options)
            .await
            .map_err(|e| match e {
                object_store::Error::NotFound { .. } => FileError::NotFound,
                e => FileError::Unavailable(e.to_string()),
            })
    }

    /// Attaches files to a message being sent by `userid` in `eventid`'s chat: every one must
    /// have been uploaded by them to this chat and not be attached yet.
    pub async fn claim(
        &self,
        eventid: i32,
        userid: i32,
        ids: &[String],
    ) -> Result<Result<Vec<Attachment>, ClaimRefusal>, MetaError> {
        Ok(self
            .meta
            .claim(eventid, userid, ids, now())
            .await?
            .map(|records| {
                records
                    .into_iter()
                    .map(|f| Attachment {
                        url: self.url(&f.file_id),
                        file_id: f.file_id,
                        name: f.name,
                        size: f.size,
                        content_type: f.content_type,
                    })
                    .collect()
            }))
    }

    /// Deletes files: bytes first, then metadata, so no row ever names missing bytes for long.
    pub async fn delete(&self, ids: &[String]) {
        for id in ids {
            for key in [file_key(id), thumb_key(id)] {
                match self.store.delete(&key).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => {
                        tracing::warn!(file_id = %id, error = %e, "cannot delete a file's bytes");
                    }
                }
            }
        }
        match self.meta.remove(ids).await {
            Ok(()) => {
                self.stats
                    .deleted
                    .fetch_add(ids.len() as u64, std::sync::atomic::Ordering::Relaxed);
            }
            Err(e) => tracing::warn!(error = %e, "cannot forget deleted files"),
        }
    }

    /// Deletes files never attached within the grace period, now and then, until the process
    /// ends.
    pub fn start_collector(self: &Arc<Self>) {
        let files = Arc::downgrade(self);
        let every =
            (self.config.grace / 2).clamp(Duration::from_millis(200), Duration::from_secs(60));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(files) = files.upgrade() else { return };
                files.collect().await;
            }
        });
    }

    async fn collect(&self) {
        let grace =
            chrono::TimeDelta::from_std(self.config.grace).unwrap_or(chrono::TimeDelta::MAX);
        let cutoff = now()
            .checked_sub_signed(grace)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        match self.meta.unattached_before(cutoff, 500).await {
            Ok(ids) if !ids.is_empty() => {
                tracing::info!(
                    count = ids.len(),
                    "deleting files never attached to a message"
                );
                self.delete(&ids).await;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot look for unattached files"),
        }
    }
}

/// The file ids of an attachments JSON array as messages carry it.
pub fn attachment_ids(json: &str) -> Vec<String> {
    serde_json::from_str::<Vec<serde_json::Value>>(json)
        .unwrap_or_default()
        .iter()
        .filter_map(|a| a.get("file_id")?.as_str().map(str::to_owned))
        .collect()
}

fn now() -> DateTime<Utc> {
    crate::history::now()
}
