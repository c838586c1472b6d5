//! The PostgreSQL directory: reads the host application's `users` and `requested_event` tables (or
//! whatever the configured queries read), through a deadpool connection pool.
//!
//! Per join it runs two prepared statements, pipelined on one pooled connection, so a join costs one
//! network round trip. It never writes to the host's tables.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use super::{decide, Directory, DirectoryError, LatencyHistogram, Role, Seat, SeatFuture};

/// The default event query: `$1` is the event id; it returns the tutor's and the tutee's user ids.
pub const DEFAULT_EVENT_QUERY: &str =
    "SELECT userid_tutor, userid_tutee FROM requested_event WHERE eventid = $1";
/// The default user query: `$1` is the user id; it returns the display name.
pub const DEFAULT_USER_QUERY: &str = "SELECT name FROM users WHERE userid = $1";

#[derive(Debug, Clone)]
pub struct PostgresConfig {
    pub url: String,
    /// Most connections the pool opens.
    pub pool_size: usize,
    /// How long a join may wait for a connection from the pool, or for a new one to open.
    pub connect_timeout: Duration,
    /// How long the whole authorization (both queries) may take before the join fails.
    pub query_timeout: Duration,
    pub event_query: String,
    pub user_query: String,
}

pub struct PostgresDirectory {
    pool: Pool,
    /// With the default queries: seats read in batches (see `batched`).
    batched: Option<super::batched::SeatReader>,
    event_query: String,
    user_query: String,
    query_timeout: Duration,
    latency: LatencyHistogram,
}

impl PostgresDirectory {
    /// Builds the pool; no connection is opened until the first query.
    pub fn new(config: &PostgresConfig) -> Result<PostgresDirectory, DirectoryError> {
        let pool = pool(&config.url, config.pool_size, config.connect_timeout)?;
        let defaults =
            config.event_query == DEFAULT_EVENT_QUERY && config.user_query == DEFAULT_USER_QUERY;
        Ok(PostgresDirectory {
            batched: defaults.then(|| super::batched::SeatReader::new(pool.clone())),
            pool,
            event_query: config.event_query.clone(),
            user_query: config.user_query.clone(),
            query_timeout: config.query_timeout,
            latency: LatencyHistogram::default(),
        })
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    async fn lookup(&self, eventid: i32, userid: i32, role: Role) -> Result<Seat, DirectoryError> {
        if let Some(batched) = &self.batched {
            let (slots, name) = batched.find(eventid, userid).await?;
            return Ok(decide(slots, name, userid, role));
        }
        let fail = |what: &str, e: &dyn std::fmt::Display| DirectoryError(format!("{what}: {e}"));
        let client = self
            .pool
            .get()
            .await
            .map_err(|e| fail("no connection", &e))?;
        let event_stmt = client
            .prepare_cached(&self.event_query)
            .await
            .map_err(|e| fail("event query", &e))?;
        let user_stmt = client
            .prepare_cached(&self.user_query)
            .await
            .map_err(|e| fail("user query", &e))?;
        // Both queries go out before either answer is read: one round trip.
        let event_params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&eventid];
        let user_params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&userid];
        let (event, user) = tokio::try_join!(
            client.query_opt(&event_stmt, &event_params),
            client.query_opt(&user_stmt, &user_params),
        )
        .map_err(|e| fail("query", &e))?;
        let slots = match event {
            Some(row) => Some((
                row.try_get::<_, Option<i32>>(0)
                    .map_err(|e| fail("event row", &e))?,
                row.try_get::<_, Option<i32>>(1)
                    .map_err(|e| fail("event row", &e))?,
            )),
            None => None,
        };
        let name = match user {
            Some(row) => Some(
                row.try_get::<_, String>(0)
                    .map_err(|e| fail("user row", &e))?,
            ),
            None => None,
        };
        Ok(decide(slots, name, userid, role))
    }
}

/// A deadpool pool of `size` connections to `url`; waiting for a connection, opening one and
/// checking one all time out after `connect_timeout`. Opens nothing until first used.
pub fn pool(url: &str, size: usize, connect_timeout: Duration) -> Result<Pool, DirectoryError> {
    let pg: tokio_postgres::Config = url
        .parse()
        .map_err(|e| DirectoryError(format!("invalid database URL: {e}")))?;
    let manager = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(connect_timeout))
        .create_timeout(Some(connect_timeout))
        .recycle_timeout(Some(connect_timeout))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| DirectoryError(format!("cannot build the connection pool: {e}")))
}

impl Directory for PostgresDirectory {
    fn seat(&self, eventid: i32, userid: i32, role: Role) -> SeatFuture<'_> {
        Box::pin(async move {
            let started = std::time::Instant::now();
            let outcome =
                tokio::time::timeout(self.query_timeout, self.lookup(eventid, userid, role)).await;
            self.latency.record(started.elapsed());
            match outcome {
                Ok(result) => result,
                Err(_) => Err(DirectoryError(format!(
                    "no answer within {:?}",
                    self.query_timeout
                ))),
            }
        })
    }

    fn latency(&self) -> Option<&LatencyHistogram> {
        Some(&self.latency)
    }

    fn members(&self, eventid: i32) -> super::MembersFuture<'_> {
        Box::pin(async move {
            let fail = |e: &dyn std::fmt::Display| DirectoryError(format!("event query: {e}"));
            let lookup = async {
                let client = self.pool.get().await.map_err(|e| fail(&e))?;
                let statement = client
                    .prepare_cached(&self.event_query)
                    .await
                    .map_err(|e| fail(&e))?;
                let row = client
                    .query_opt(&statement, &[&eventid])
                    .await
                    .map_err(|e| fail(&e))?;
                match row {
                    None => Ok(None),
                    Some(row) => Ok(Some((
                        row.try_get::<_, Option<i32>>(0).map_err(|e| fail(&e))?,
                        row.try_get::<_, Option<i32>>(1).map_err(|e| fail(&e))?,
                    ))),
                }
            };
            tokio::time::timeout(self.query_timeout, lookup)
                .await
                .unwrap_or_else(|_| Err(DirectoryError("event query: no answer in time".into())))
        })
    }

    fn ready(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + '_>> {
        Box::pin(async move {
            let check = async {
                let client = self.pool.get().await.ok()?;
                client.simple_query("SELECT 1").await.ok()
            };
            matches!(
                tokio::time::timeout(self.query_timeout, check).await,
                Ok(Some(_))
            )
        })
    }
}
