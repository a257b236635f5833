//! Saving a batch of consumed messages: the valid events into their realtime tables, the
//! invalid ones into `dead_letter_events` with their reason, and the next offset of every
//! partition the batch covers into `stream_offsets`, all in one transaction. Rows have natural
//! keys and are inserted with ON CONFLICT DO NOTHING, so saving a batch again (a replay after a
//! crash, or another instance that read the same messages) adds nothing; the stored offsets
//! are where the consumer resumes, so no message is skipped either. Each table is written by one
//! statement: a binary COPY for the events, or with their columns as arrays (`unnest`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use globalmart_core::db::INGEST_LOCK;
use globalmart_core::event::{
    CartAction, CartEvent, CartItem, Event, Product, ProductViewEvent, Rejection, SessionEvent,
    Transaction, User, ViewAction,
};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Error, Transaction as DbTransaction};
use tracing::debug;
use uuid::Uuid;

use crate::patterns;
use crate::stock;
use crate::tally::{was_inserted, Keys, Tally, Thresholds};

/// A message as read from Kafka.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// The topic's name on the broker (with any prefix).
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Key and payload: needed only when the message becomes a dead letter.
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
}

/// The messages of one batch, sorted by destination.
#[derive(Debug, Default)]
pub struct Batch {
    transactions: Vec<Transaction>,
    views: Vec<ProductViewEvent>,
    carts: Vec<CartEvent>,
    products: Vec<Product>,
    users: Vec<User>,
    /// Messages that could not become events, whole, with the reason.
    dead_letters: Vec<(Received, String)>,
    /// (topic, partition) -> the offset to resume from.
    next_offsets: BTreeMap<(String, i32), i64>,
    /// The ids of the events in the batch: the metrics count what the batch inserted, so an
    /// event may be in it once only.
    ids: HashSet<Uuid>,
    /// Rows of the messages left out as repeats.
    repeated: u64,
    messages: usize,
}

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

impl Saved {
    fn count(&mut self, (inserted, offered): (u64, u64), field: fn(&mut Saved) -> &mut u64) {
        *field(self) += inserted;
        self.duplicates += offered - inserted;
    }
}

impl Batch {
    /// Adds a message and what parsing it gave. A message already in the batch (read again
    /// after a seek back, when a partition is reassigned mid-batch) or an event already in it
    /// (the same event produced twice) is left out and counted as a duplicate.
    pub fn add(&mut self, message: Received, parsed: Result<Event, Rejection>) {
        self.messages += 1;
        let next = self
            .next_offsets
            .entry((message.topic.clone(), message.partition))
            .or_insert(0);
        let read_before = message.offset < *next;
        *next = (*next).max(message.offset + 1);
        let (id, rows) = match &parsed {
            Ok(Event::Transaction(t)) => (Some(t.transaction_id), t.products.len() as u64),
            Ok(Event::ProductView(v)) => (Some(v.event_id), 1),
            Ok(Event::Cart(c)) => (Some(c.event_id), 1),
            _ => (None, 1),
        };
        if read_before || id.is_some_and(|id| !self.ids.insert(id)) {
            self.repeated += rows;
            return;
        }
        match parsed {
            Ok(Event::Transaction(t)) => self.transactions.push(t),
            Ok(Event::ProductView(v)) => self.views.push(v),
            Ok(Event::Cart(c)) => self.carts.push(c),
            Ok(Event::Product(p)) => self.products.push(p),
            Ok(Event::User(u)) => self.users.push(u),
            Err(rejection) => self.dead_letters.push((message, rejection.to_string())),
        }
    }

    /// The timestamps of the batch's events (for end-to-end latency).
    pub fn event_times(&self) -> impl Iterator<Item = &DateTime<Utc>> {
        let transactions = self.transactions.iter().map(|t| &t.timestamp);
        let views = self.views.iter().map(|v| &v.timestamp);
        transactions
            .chain(views)
            .chain(self.carts.iter().map(|c| &c.timestamp))
    }

    /// The offset each (topic, partition) of the batch resumes from once it is saved.
    pub fn next_offsets(&self) -> impl Iterator<Item = (&(String, i32), &i64)> {
        self.next_offsets.iter()
    }

    /// Messages in the batch.
    pub fn len(&self) -> usize {
        self.messages
    }

    /// Whether the batch has no message.
    pub fn is_empty(&self) -> bool {
        self.messages == 0
    }

    /// Saves the batch and the offsets it reaches for consumer group `group`, in one
    /// transaction: all of it or, on any error, none of it. Events go in by binary COPY; when
    /// some of them are there already (a replay after a crash or a rebalance), that fails on
    /// their keys and the batch is saved again skipping them.
    /// The realtime metrics of the events it inserts are added in the same transaction.
    pub async fn save(
        &self,
        client: &mut Client,
        group: &str,
        thresholds: &Thresholds,
    ) -> Result<Saved, Error> {
        match self.save_as(client, group, thresholds, Insert::Copy).await {
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                debug!("the batch holds events saved before (a replay): skipping them");
                self.save_as(client, group, thresholds, Insert::SkipExisting)
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
        how: Insert,
    ) -> Result<Saved, Error> {
        let tx = client.transaction().await?;
        // Before anything else (not pipelined with the rest: a query's statement is prepared
        // first, so pipelined queries may run in any order): no ingest_seq is taken without it.
        hold_ingest_lock(&tx).await?;
        // Sent together (tokio-postgres pipelines concurrent queries on one connection), so
        // the round trips overlap; a COPY holds the connection, so those go one after another.
        let (products, users, dead_letters, ()) = tokio::try_join!(
            save_versions(&tx, &self.products),
            save_versions(&tx, &self.users),
            self.save_dead_letters(&tx),
            self.save_offsets(&tx, group),
        )?;
        // Restocks before this batch's sales are saved: a restock recounts the sales saved
        // until now, and the new ones are then taken off like any other.
        let restocked: BTreeSet<&str> = self
            .products
            .iter()
            .map(|p| p.product_id.as_str())
            .collect();
        stock::restock(&tx, &restocked.into_iter().collect::<Vec<_>>()).await?;
        let lines = insert(&tx, &Lines(&self.transactions), how).await?;
        let views = insert(&tx, &Sessions(&self.views), how).await?;
        let carts = insert(&tx, &Sessions(&self.carts), how).await?;
        // Only what this batch inserted counts; a transaction's lines are saved together, so
        // its first line says for all.
        let inserted = was_inserted(&lines.keys);
        let new_orders: Vec<&Transaction> = (self.transactions.iter())
            .filter(|t| !t.products.is_empty() && inserted(&t.line_item_id(0)))
            .collect();
        let mut tally = Tally::default();
        tally.transactions(&new_orders, thresholds);
        tally.views(&self.views, was_inserted(&views.keys));
        tally.carts(&self.carts, was_inserted(&carts.keys));
        tally.save(&tx).await?;
        stock::sell(&tx, &stock::lines(&new_orders), thresholds).await?;
        patterns::recount(&tx, &new_orders, thresholds).await?;
        tx.commit().await?;
        let mut saved = Saved::default();
        saved.count(lines.counts(), |s| &mut s.transaction_lines);
        saved.count(views.counts(), |s| &mut s.product_views);
        saved.count(carts.counts(), |s| &mut s.cart_events);
        saved.count(products, |s| &mut s.catalogue_versions);
        saved.count(users, |s| &mut s.catalogue_versions);
        saved.count(dead_letters, |s| &mut s.dead_letters);
        saved.duplicates += self.repeated;
        Ok(saved)
    }

    /// Keyed by (topic, partition, offset): a replayed bad message is not stored twice.
    async fn save_dead_letters(&self, tx: &DbTransaction<'_>) -> Result<(u64, u64), Error> {
        let letters = &self.dead_letters;
        let topic: Vec<&str> = letters.iter().map(|(m, _)| m.topic.as_str()).collect();
        let partition: Vec<i32> = letters.iter().map(|(m, _)| m.partition).collect();
        let offset: Vec<i64> = letters.iter().map(|(m, _)| m.offset).collect();
        let key: Vec<Option<&[u8]>> = letters.iter().map(|(m, _)| m.key.as_deref()).collect();
        let payload: Vec<Option<&[u8]>> =
            letters.iter().map(|(m, _)| m.payload.as_deref()).collect();
        let reason: Vec<&str> = letters.iter().map(|(_, r)| r.as_str()).collect();
        let inserted = tx
            .execute(
                "INSERT INTO dead_letter_events (topic, \"partition\", \"offset\", key, payload, reason)
                 SELECT * FROM unnest($1::text[], $2::int4[], $3::int8[], $4::bytea[], $5::bytea[],
                     $6::text[])
                 ON CONFLICT DO NOTHING",
                &[&topic, &partition, &offset, &key, &payload, &reason],
            )
            .await?;
        Ok((inserted, letters.len() as u64))
    }

    /// Offsets only move forward: an instance that lost a partition in a rebalance cannot set
    /// its new owner back.
    async fn save_offsets(&self, tx: &DbTransaction<'_>, group: &str) -> Result<(), Error> {
        let topic: Vec<&str> = self.next_offsets.keys().map(|(t, _)| t.as_str()).collect();
        let partition: Vec<i32> = self.next_offsets.keys().map(|(_, p)| *p).collect();
        let offset: Vec<i64> = self.next_offsets.values().copied().collect();
        tx.execute(
            "INSERT INTO stream_offsets (consumer_group, topic, \"partition\", next_offset)
             SELECT $1, * FROM unnest($2::text[], $3::int4[], $4::int8[])
             ON CONFLICT (consumer_group, topic, \"partition\") DO UPDATE
                 SET next_offset = GREATEST(stream_offsets.next_offset, EXCLUDED.next_offset),
                     updated_at = now()",
            &[&group, &topic, &partition, &offset],
        )
        .await?;
        Ok(())
    }
}

/// A catalogue record: every version goes to its history table, each record's newest version
/// to its latest-version table (only when newer than what the table has).
trait Versioned: Sized {
    /// The columns of both tables.
    type Columns: for<'a> From<Vec<&'a Self>>;
    const LATEST: &'static str;
    const HISTORY: &'static str;
    const KEY: &'static str;
    const COLUMNS: &'static str;
    /// A SELECT over the column arrays $1..$7.
    const ROWS: &'static str;
    /// The SET list of the upsert.
    const UPDATES: &'static str;
    fn id_and_time(&self) -> (&String, DateTime<Utc>);
    fn params(columns: &Self::Columns) -> [&(dyn ToSql + Sync); 7];
}

impl Versioned for Product {
    type Columns = ProductColumns;
    const LATEST: &'static str = "products";
    const HISTORY: &'static str = "product_history";
    const KEY: &'static str = "product_id";
    const COLUMNS: &'static str =
        "product_id, name, category, price, inventory, rating, updated_at";
    const ROWS: &'static str = "SELECT * FROM unnest($1::text[], $2::text[], $3::text[],
        $4::numeric[], $5::int4[], $6::numeric[], $7::timestamptz[])";
    const UPDATES: &'static str = "name = EXCLUDED.name, category = EXCLUDED.category,
        price = EXCLUDED.price, inventory = EXCLUDED.inventory, rating = EXCLUDED.rating,
        updated_at = EXCLUDED.updated_at";
    fn id_and_time(&self) -> (&String, DateTime<Utc>) {
        (&self.product_id, self.updated_at)
    }
    fn params(c: &ProductColumns) -> [&(dyn ToSql + Sync); 7] {
        [
            &c.product_id,
            &c.name,
            &c.category,
            &c.price,
            &c.inventory,
            &c.rating,
            &c.updated_at,
        ]
    }
}

impl Versioned for User {
    type Columns = UserColumns;
    const LATEST: &'static str = "users";
    const HISTORY: &'static str = "user_history";
    const KEY: &'static str = "user_id";
    const COLUMNS: &'static str =
        "user_id, email, age, country, registration_date, preferences, updated_at";
    // Preferences travel as JSON arrays: unnest cannot take an array of text arrays.
    const ROWS: &'static str = "SELECT u, e, a, c, r, ARRAY(SELECT jsonb_array_elements_text(p)), t
        FROM unnest($1::text[], $2::text[], $3::int4[], $4::text[], $5::timestamptz[],
             $6::jsonb[], $7::timestamptz[]) AS x(u, e, a, c, r, p, t)";
    const UPDATES: &'static str = "email = EXCLUDED.email, age = EXCLUDED.age,
        country = EXCLUDED.country, registration_date = EXCLUDED.registration_date,
        preferences = EXCLUDED.preferences, updated_at = EXCLUDED.updated_at";
    fn id_and_time(&self) -> (&String, DateTime<Utc>) {
        (&self.user_id, self.updated_at)
    }
    fn params(c: &UserColumns) -> [&(dyn ToSql + Sync); 7] {
        [
            &c.user_id,
            &c.email,
            &c.age,
            &c.country,
            &c.registration_date,
            &c.preferences,
            &c.updated_at,
        ]
    }
}

/// Holds the ingest lock shared until the transaction ends, so the batch ETL never sets its
/// watermark past a row still in flight (see [`INGEST_LOCK`]).
async fn hold_ingest_lock(tx: &DbTransaction<'_>) -> Result<(), Error> {
    tx.execute("SELECT pg_advisory_xact_lock_shared($1)", &[&INGEST_LOCK])
        .await?;
    Ok(())
}

/// Saves catalogue records; returns (history rows inserted, records offered). The statements
/// are built from the constants above, never from input.
async fn save_versions<T: Versioned>(
    tx: &DbTransaction<'_>,
    records: &[T],
) -> Result<(u64, u64), Error> {
    let all = T::Columns::from(records.iter().collect());
    let inserted = tx
        .execute(
            &format!(
                "INSERT INTO {} ({}) {} ON CONFLICT DO NOTHING",
                T::HISTORY,
                T::COLUMNS,
                T::ROWS
            ),
            &T::params(&all),
        )
        .await?;
    // DO UPDATE may touch a row once per statement: only each record's newest version.
    let newest = T::Columns::from(newest_by(records, T::id_and_time));
    tx.execute(
        &format!(
            "INSERT INTO {latest} ({columns}) {rows}
             ON CONFLICT ({key}) DO UPDATE SET {updates}
             WHERE {latest}.updated_at < EXCLUDED.updated_at",
            latest = T::LATEST,
            columns = T::COLUMNS,
            rows = T::ROWS,
            key = T::KEY,
            updates = T::UPDATES,
        ),
        &T::params(&newest),
    )
    .await?;
    Ok((inserted, records.len() as u64))
}

/// The stored next offsets of consumer group `group`, per (topic, partition): where its
/// consumers resume.
pub async fn stored_offsets(
    client: &Client,
    group: &str,
) -> Result<HashMap<(String, i32), i64>, Error> {
    let rows = client
        .query(
            "SELECT topic, \"partition\", next_offset FROM stream_offsets WHERE consumer_group = $1",
            &[&group],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect())
}

/// The newest record per id, by its time.
fn newest_by<'a, T>(
    records: &'a [T],
    id_and_time: impl Fn(&'a T) -> (&'a String, DateTime<Utc>),
) -> Vec<&'a T> {
    let mut newest: HashMap<&String, (DateTime<Utc>, &T)> = HashMap::new();
    for record in records {
        let (id, at) = id_and_time(record);
        if newest.get(id).is_none_or(|(seen, _)| *seen < at) {
            newest.insert(id, (at, record));
        }
    }
    newest.into_values().map(|(_, record)| record).collect()
}

/// How a table's rows go in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Insert {
    /// Binary COPY into the table: the fastest way, failing on the first key already there.
    Copy,
    /// Binary COPY into a staging table, then INSERT ... ON CONFLICT DO NOTHING from it:
    /// skips the keys already there.
    SkipExisting,
}

/// What an insert added.
struct Inserted {
    rows: u64,
    offered: u64,
    /// The keys of the rows added, when not every row offered was.
    keys: Keys,
}

impl Inserted {
    /// (inserted, offered).
    fn counts(&self) -> (u64, u64) {
        (self.rows, self.offered)
    }
}

/// A table's new rows, written straight from the events into a binary COPY.
trait Rows {
    const TABLE: &'static str;
    /// The key column (a uuid).
    const KEY: &'static str;
    /// Name and type of each column, in the order rows are written.
    fn columns() -> Vec<(&'static str, Type)>;
    /// Rows offered.
    fn count(&self) -> usize;
    fn write(
        &self,
        writer: Pin<&mut BinaryCopyInWriter>,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Inserts the rows. The statements are built from the constants of [`Rows`], never from
/// input.
async fn insert<R: Rows + Sync>(
    tx: &DbTransaction<'_>,
    rows: &R,
    how: Insert,
) -> Result<Inserted, Error> {
    let offered = rows.count() as u64;
    if offered == 0 {
        return Ok(Inserted {
            rows: 0,
            offered,
            keys: None,
        });
    }
    let columns = R::columns();
    let names: Vec<String> = columns.iter().map(|(n, _)| format!("\"{n}\"")).collect();
    let names = names.join(", ");
    let into = match how {
        Insert::Copy => R::TABLE,
        Insert::SkipExisting => {
            tx.batch_execute(&format!(
                "CREATE TEMP TABLE staging ON COMMIT DROP AS SELECT {names} FROM {} WITH NO DATA",
                R::TABLE
            ))
            .await?;
            "staging"
        }
    };
    let sink = tx
        .copy_in(&format!("COPY {into} ({names}) FROM STDIN (FORMAT binary)"))
        .await?;
    let types: Vec<Type> = columns.into_iter().map(|(_, t)| t).collect();
    let writer = BinaryCopyInWriter::new(sink, &types);
    tokio::pin!(writer);
    rows.write(writer.as_mut()).await?;
    let copied = writer.finish().await?;
    match how {
        Insert::Copy => Ok(Inserted {
            rows: copied,
            offered,
            keys: None,
        }),
        Insert::SkipExisting => {
            let statement = format!(
                "INSERT INTO {} ({names}) SELECT {names} FROM staging ON CONFLICT DO NOTHING
                 RETURNING {}",
                R::TABLE,
                R::KEY
            );
            let keys: HashSet<Uuid> = tx
                .query(&statement, &[])
                .await?
                .iter()
                .map(|row| row.get(0))
                .collect();
            tx.batch_execute("DROP TABLE staging").await?;
            Ok(Inserted {
                rows: keys.len() as u64,
                offered,
                keys: Some(keys),
            })
        }
    }
}

/// `transactions`: one row per line item, keyed by the derived line_item_id.
struct Lines<'a>(&'a [Transaction]);

impl Rows for Lines<'_> {
    const TABLE: &'static str = "transactions";
    const KEY: &'static str = "line_item_id";
    fn columns() -> Vec<(&'static str, Type)> {
        vec![
            ("line_item_id", Type::UUID),
            ("transaction_id", Type::UUID),
            ("line_number", Type::INT2),
            ("user_id", Type::TEXT),
            ("session_id", Type::TEXT),
            ("product_id", Type::TEXT),
            ("quantity", Type::INT4),
            ("price", Type::NUMERIC),
            ("total_amount", Type::NUMERIC),
            ("payment_method", Type::TEXT),
            ("country", Type::TEXT),
            ("timestamp", Type::TIMESTAMPTZ),
        ]
    }
    fn count(&self) -> usize {
        self.0.iter().map(|t| t.products.len()).sum()
    }
    async fn write(&self, mut writer: Pin<&mut BinaryCopyInWriter>) -> Result<(), Error> {
        for t in self.0 {
            let (method, country) = (t.payment_method.as_str(), t.country.as_str());
            for (i, line) in t.products.iter().enumerate() {
                // Validation allows no more lines than fit.
                let number = i16::try_from(i).unwrap_or(i16::MAX);
                let id = t.line_item_id(i);
                writer
                    .as_mut()
                    .write(&[
                        &id,
                        &t.transaction_id,
                        &number,
                        &t.user_id,
                        &t.session_id,
                        &line.product_id,
                        &line.quantity,
                        &line.price,
                        &t.total_amount,
                        &method,
                        &country,
                        &t.timestamp,
                    ])
                    .await?;
            }
        }
        Ok(())
    }
}

/// `product_view_events` or `cart_events`: one row per event.
struct Sessions<'a, A>(&'a [SessionEvent<A>]);

/// What the two event tables need of an event's action.
trait Action: Sync {
    const TABLE: &'static str;
    /// The table's columns after the ones both tables have.
    fn own_columns() -> Vec<(&'static str, Type)>;
    fn event_type(&self) -> &'static str;
    fn row(&self) -> EventRow<'_>;
    /// The values of [`Action::own_columns`].
    fn own<'r>(row: &'r EventRow<'_>) -> Vec<&'r (dyn ToSql + Sync)>;
}

/// The columns of an event row that depend on its action; NULL where it has none.
#[derive(Default)]
struct EventRow<'a> {
    product_id: Option<&'a str>,
    product_name: Option<&'a str>,
    category: Option<&'a str>,
    price: Option<Decimal>,
    /// view_duration of a view, quantity of a cart event.
    number: Option<i32>,
    search_query: Option<&'a str>,
    cart_size: Option<i32>,
    cart_value: Option<Decimal>,
    attributes: Value,
}

impl<A: Action> Rows for Sessions<'_, A> {
    const TABLE: &'static str = A::TABLE;
    const KEY: &'static str = "event_id";
    fn columns() -> Vec<(&'static str, Type)> {
        let mut columns = vec![
            ("event_id", Type::UUID),
            ("event_type", Type::TEXT),
            ("timestamp", Type::TIMESTAMPTZ),
            ("user_id", Type::TEXT),
            ("session_id", Type::TEXT),
            ("country", Type::TEXT),
            ("product_id", Type::TEXT),
            ("product_name", Type::TEXT),
            ("category", Type::TEXT),
            ("price", Type::NUMERIC),
        ];
        columns.extend(A::own_columns());
        columns
    }
    fn count(&self) -> usize {
        self.0.len()
    }
    async fn write(&self, mut writer: Pin<&mut BinaryCopyInWriter>) -> Result<(), Error> {
        for e in self.0 {
            let row = e.action.row();
            let (kind, country) = (e.action.event_type(), e.country.as_str());
            let mut values: Vec<&(dyn ToSql + Sync)> = vec![
                &e.event_id,
                &kind,
                &e.timestamp,
                &e.user_id,
                &e.session_id,
                &country,
                &row.product_id,
                &row.product_name,
                &row.category,
                &row.price,
            ];
            values.extend(A::own(&row));
            writer.as_mut().write(&values).await?;
        }
        Ok(())
    }
}

impl Action for ViewAction {
    const TABLE: &'static str = "product_view_events";
    fn own_columns() -> Vec<(&'static str, Type)> {
        vec![
            ("view_duration", Type::INT4),
            ("search_query", Type::TEXT),
            ("attributes", Type::JSONB),
        ]
    }
    fn event_type(&self) -> &'static str {
        ViewAction::event_type(self)
    }
    fn row(&self) -> EventRow<'_> {
        match self {
            ViewAction::View(p) => EventRow {
                product_id: Some(&p.product_id),
                product_name: Some(&p.product_name),
                category: Some(&p.category),
                price: Some(p.price),
                number: Some(p.view_duration),
                search_query: p.search_query.as_deref(),
                attributes: json!({}),
                ..EventRow::default()
            },
            ViewAction::Search(s) => EventRow {
                search_query: Some(&s.search_query),
                attributes: json!({ "results_count": s.results_count }),
                ..EventRow::default()
            },
            ViewAction::Filter(f) => EventRow {
                category: Some(&f.filter_category),
                attributes: json!({ "min_price": f.min_price, "max_price": f.max_price,
                                    "results_count": f.results_count }),
                ..EventRow::default()
            },
            ViewAction::Compare(k) => EventRow {
                category: Some(&k.category),
                attributes: json!({ "product_ids": k.product_ids }),
                ..EventRow::default()
            },
        }
    }
    fn own<'r>(row: &'r EventRow<'_>) -> Vec<&'r (dyn ToSql + Sync)> {
        vec![&row.number, &row.search_query, &row.attributes]
    }
}

impl Action for CartAction {
    const TABLE: &'static str = "cart_events";
    fn own_columns() -> Vec<(&'static str, Type)> {
        vec![
            ("quantity", Type::INT4),
            ("cart_size", Type::INT4),
            ("cart_value", Type::NUMERIC),
            ("attributes", Type::JSONB),
        ]
    }
    fn event_type(&self) -> &'static str {
        CartAction::event_type(self)
    }
    fn row(&self) -> EventRow<'_> {
        fn item(i: &CartItem, attributes: Value) -> EventRow<'_> {
            EventRow {
                product_id: Some(&i.product_id),
                product_name: Some(&i.product_name),
                category: Some(&i.category),
                price: Some(i.price),
                number: Some(i.quantity),
                cart_size: Some(i.cart_size),
                cart_value: Some(i.cart_value),
                attributes,
                ..EventRow::default()
            }
        }
        match self {
            CartAction::AddToCart(i) | CartAction::RemoveFromCart(i) => item(i, json!({})),
            CartAction::UpdateQuantity(q) => item(
                &q.item,
                json!({ "old_quantity": q.old_quantity, "new_quantity": q.new_quantity }),
            ),
            // Checkout keeps total_items in quantity and total_value in cart_value, as the
            // replaced platform did; its lines go to attributes.
            CartAction::Checkout(k) => EventRow {
                number: Some(k.total_items),
                cart_size: Some(k.cart_size),
                cart_value: Some(k.total_value),
                attributes: json!({ "items": k.items }),
                ..EventRow::default()
            },
        }
    }
    fn own<'r>(row: &'r EventRow<'_>) -> Vec<&'r (dyn ToSql + Sync)> {
        vec![
            &row.number,
            &row.cart_size,
            &row.cart_value,
            &row.attributes,
        ]
    }
}

/// The columns of `products` and `product_history`.
struct ProductColumns {
    product_id: Vec<String>,
    name: Vec<String>,
    category: Vec<String>,
    price: Vec<Decimal>,
    inventory: Vec<i32>,
    rating: Vec<Decimal>,
    updated_at: Vec<DateTime<Utc>>,
}

impl From<Vec<&Product>> for ProductColumns {
    fn from(products: Vec<&Product>) -> Self {
        let mut c = ProductColumns {
            product_id: Vec::new(),
            name: Vec::new(),
            category: Vec::new(),
            price: Vec::new(),
            inventory: Vec::new(),
            rating: Vec::new(),
            updated_at: Vec::new(),
        };
        for p in products {
            c.product_id.push(p.product_id.clone());
            c.name.push(p.name.clone());
            c.category.push(p.category.clone());
            c.price.push(p.price);
            c.inventory.push(p.inventory);
            c.rating.push(p.rating);
            c.updated_at.push(p.updated_at);
        }
        c
    }
}

/// The columns of `users` and `user_history`.
struct UserColumns {
    user_id: Vec<String>,
    email: Vec<String>,
    age: Vec<i32>,
    country: Vec<&'static str>,
    registration_date: Vec<DateTime<Utc>>,
    preferences: Vec<Value>,
    updated_at: Vec<DateTime<Utc>>,
}

impl From<Vec<&User>> for UserColumns {
    fn from(users: Vec<&User>) -> Self {
        let mut c = UserColumns {
            user_id: Vec::new(),
            email: Vec::new(),
            age: Vec::new(),
            country: Vec::new(),
            registration_date: Vec::new(),
            preferences: Vec::new(),
            updated_at: Vec::new(),
        };
        for u in users {
            c.user_id.push(u.user_id.clone());
            c.email.push(u.email.clone());
            c.age.push(u.age);
            c.country.push(u.country.as_str());
            c.registration_date.push(u.registration_date);
            c.preferences.push(json!(u.preferences));
            c.updated_at.push(u.updated_at);
        }
        c
    }
}
