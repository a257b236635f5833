//! Retrying database work: a failure is logged and tried again with backoff, never dropped;
//! only a refused connection (a password changed under the running stream, say), which waiting
//! will not mend, stops it.

use std::future::Future;
use std::time::Duration;

use anyhow::Result;
use deadpool_postgres::Pool;
use globalmart_core::db::{self, Db, DbError};
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// Runs `job` on a pooled connection, describing a database error the way people can act on.
pub async fn on_client<T, F, Fut>(pool: &Pool, job: F) -> Result<T>
where
    F: FnOnce(deadpool_postgres::Object) -> Fut,
    Fut: Future<Output = Result<T, tokio_postgres::Error>>,
{
    let client = db::get(pool, Db::Realtime).await?;
    job(client)
        .await
        .map_err(|e| anyhow::anyhow!(db::describe(&e)))
}

/// Runs `attempt` until it succeeds, logging each failure and waiting with backoff (0.1 s,
/// doubling up to 10 s) while the database is unreachable; at shutdown the error is returned.
pub async fn retrying<T, F, Fut>(
    what: &str,
    shutdown: &CancellationToken,
    mut attempt: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut pause = Duration::from_millis(100);
    loop {
        match attempt().await {
            Ok(done) => return Ok(done),
            Err(e) if shutdown.is_cancelled() => return Err(e),
            Err(e) if matches!(e.downcast_ref(), Some(DbError::Refused { .. })) => return Err(e),
            Err(e) => {
                warn!(error = %format!("{e:#}"), retry_in = ?pause, "{what} failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(10));
            }
        }
    }
}
