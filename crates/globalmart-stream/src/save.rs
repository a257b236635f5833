//! Saving a batch: its valid events into their realtime tables, the invalid ones into
//! `dead_letter_events` with their reason, and the next offset of every partition the batch
//! covers into `stream_offsets`, all in one transaction together with the realtime metrics,
//! anomalies, stock, patterns and alerts of the events it inserted. Rows have natural keys, so
//! saving a batch again (a replay after a crash, or another instance that read the same
//! messages) adds nothing; the stored offsets are where the consumer resumes, so no message is
//! skipped either (docs/ARCHITECTURE.md, "Effectively-once savers"). Each table group is
//! written by its module under `write/`.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use globalmart_core::db::{INGEST_LOCK, RAW_HORIZON};
use globalmart_core::event::Transaction;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Error};
use tracing::debug;

use crate::batcher::Batch;
use crate::config::Thresholds;
use crate::retention;
use crate::write::anomalies::Anomalies;
use crate::write::events::{self, was_inserted, Insert};
use crate::write::metrics::Tally;
use crate::write::{alerts, catalogue, dead_letters, offsets, patterns, stock};

/// What saving a batch did: rows inserted per destination, and rows already there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Saved {
    pub transaction_lines: u64,
    pub product_views: u64,
    pub cart_events: u64,
    /// Product and user versions added to the history tables.
    pub catalogue_versions: u64,
    pub dead_letters: u64,
    /// Rows the tables already had (replays, or the same message twice).
    pub duplicates: u64,
}

impl std::ops::AddAssign for Saved {
    fn add_assign(&mut self, other: Saved) {
        self.transaction_lines += other.transaction_lines;
        self.product_views += other.product_views;
        self.cart_events += other.cart_events;
        self.catalogue_versions += other.catalogue_versions;
        self.dead_letters += other.dead_letters;
        self.duplicates += other.duplicates;
    }
}

impl Saved {
    fn count(&mut self, (inserted, offered): (u64, u64), field: fn(&mut Saved) -> &mut u64) {
        *field(self) += inserted;
        self.duplicates += offered - inserted;
    }
}

/// Holds the ingest lock shared until the transaction ends, so the batch ETL never sets its
/// watermark past a row still in flight (see [`INGEST_LOCK`]).
const HOLD_INGEST_LOCK: &str = "SELECT pg_advisory_xact_lock_shared($1)";

impl Batch {
    /// Saves the batch and the offsets it reaches for consumer group `group`, in one
    /// transaction: all of it or, on any error, none of it. The partitions of its events' days
    /// are made first (outside the transaction: creating one locks its table), and its events
    /// from before the raw horizon become dead letters ([`Batch::retired`]). Events go in by
    /// binary COPY; when some of them are there already (a replay after a crash or a
    /// rebalance), that fails on their keys and the batch is saved again skipping them.
    pub async fn save(
        &self,
        client: &mut Client,
        group: &str,
        thresholds: &Thresholds,
    ) -> Result<Saved, Error> {
        loop {
            let horizon = retention::ensure(client, &self.days()).await?;
            let retired = self.retired(horizon);
            if let Some(saved) = retired.save_at(client, group, thresholds, horizon).await? {
                return Ok(saved);
            }
            debug!("raw retention moved the horizon while saving: the batch is retired again");
        }
    }

    /// Saves the batch, which holds no event from before `horizon`; `None`, saving nothing,
    /// when raw retention has moved the horizon past some of its events since.
    async fn save_at(
        &self,
        client: &mut Client,
        group: &str,
        thresholds: &Thresholds,
        horizon: NaiveDate,
    ) -> Result<Option<Saved>, Error> {
        match self
            .save_as(client, group, thresholds, horizon, Insert::Copy)
            .await
        {
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                debug!("the batch holds events saved before (a replay): skipping them");
                self.save_as(client, group, thresholds, horizon, Insert::SkipExisting)
                    .await
            }
            saved => saved,
        }
    }

    async fn save_as(
        &self,
        client: &mut Client,
        group: &str,
        thresholds: &Thresholds,
        horizon: NaiveDate,
        how: Insert,
    ) -> Result<Option<Saved>, Error> {
        let tx = client.transaction().await?;
        // Before anything else (not pipelined with the rest: a query's statement is prepared
        // first, so pipelined queries may run in any order): no ingest_seq is taken without it.
        tx.execute(HOLD_INGEST_LOCK, &[&INGEST_LOCK]).await?;
        // Retention moves the horizon under the same lock, held exclusively: read now, it
        // stays until the commit.
        let current: NaiveDate = tx.query_one(RAW_HORIZON, &[]).await?.try_get(0)?;
        if current > horizon && self.days().first().is_some_and(|day| *day < current) {
            return Ok(None);
        }
        catalogue::hold(
            &tx,
            !self.products.is_empty(),
            !self.transactions.is_empty(),
        )
        .await?;
        // One after another: a COPY holds the connection, the error of one that fails must be
        // the one returned (pipelined, another query's "transaction is aborted" may come
        // first), and the latest versions' savepoint must hold nothing else.
        let products = catalogue::history(&tx, &self.products, how).await?;
        let users = catalogue::history(&tx, &self.users, how).await?;
        catalogue::latest(&tx, &self.products, how).await?;
        catalogue::latest(&tx, &self.users, how).await?;
        // Sent together (tokio-postgres pipelines concurrent queries on one connection), so
        // the round trips overlap.
        let (dead_letters, ()) = tokio::try_join!(
            dead_letters::save(&tx, &self.dead_letters),
            offsets::save(&tx, group, &self.next_offsets, &self.event_times),
        )?;
        // Restocks before this batch's sales are saved: a restock recounts the sales saved
        // until now, and the new ones are then taken off like any other.
        let catalogued: BTreeSet<&str> = self
            .products
            .iter()
            .map(|p| p.product_id.as_str())
            .collect();
        let catalogued: Vec<&str> = catalogued.into_iter().collect();
        stock::restock(&tx, &catalogued).await?;
        let lines = events::transactions(&tx, &self.transactions, how).await?;
        let views = events::views(&tx, &self.views, how).await?;
        let carts = events::carts(&tx, &self.carts, how).await?;
        // Only what this batch inserted counts; a transaction's lines are saved together, so
        // its first line says for all.
        let inserted = was_inserted(&lines.keys);
        let new_orders: Vec<&Transaction> = (self.transactions.iter())
            .filter(|t| !t.products.is_empty() && inserted(&t.line_item_id(0)))
            .collect();
        // The metrics' retention: older windows are not written, so neither read.
        let kept = TimeDelta::from_std(thresholds.metrics_retention).unwrap_or(TimeDelta::MAX);
        let since = (Utc::now().checked_sub_signed(kept)).unwrap_or(DateTime::<Utc>::MIN_UTC);
        let mut tally = Tally::since(since);
        tally.transactions(&new_orders);
        tally.save(&tx).await?;
        let mut raised = Anomalies::detect(&new_orders, thresholds).save(&tx).await?;
        raised.extend(stock::sell(&tx, &new_orders, thresholds, since).await?);
        patterns::suspicious(&tx, &new_orders, thresholds.suspicious_amount).await?;
        alerts::record(&tx, &raised).await?;
        tx.commit().await?;
        let mut saved = Saved::default();
        saved.count(lines.counts(), |s| &mut s.transaction_lines);
        saved.count(views.counts(), |s| &mut s.product_views);
        saved.count(carts.counts(), |s| &mut s.cart_events);
        saved.count(products, |s| &mut s.catalogue_versions);
        saved.count(users, |s| &mut s.catalogue_versions);
        saved.count(dead_letters, |s| &mut s.dead_letters);
        saved.duplicates += self.repeated;
        Ok(Some(saved))
    }
}
