//! `reset`: the warehouse emptied and migrated again, for a fresh start.

use globalmart_core::db::{migrate, Db, DbError};
use tokio_postgres::Client;

/// Drops every warehouse table and its data, then applies the migrations again.
pub async fn reset(warehouse: &mut Client) -> Result<(), DbError> {
    warehouse
        .batch_execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        .await?;
    migrate(warehouse, Db::Warehouse).await?;
    Ok(())
}
