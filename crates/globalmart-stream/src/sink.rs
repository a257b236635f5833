//! Saving a batch of consumed messages: the valid events into their realtime tables, the
//! invalid ones into `dead_letter_events` with their reason, and the next offset of every
//! partition the batch covers into `stream_offsets`, all in one transaction. Rows have natural
//! keys and are inserted with ON CONFLICT DO NOTHING, so saving a batch again (a replay after a
//! crash, or another instance that read the same messages) adds nothing; the stored offsets
//! are where the consumer resumes, so no message is skipped either. Each table is written by one
//! statement whose columns are arrays (`unnest`), whatever the batch size.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use globalmart_core::event::{
    CartAction, CartEvent, CartItem, Event, Product, ProductViewEvent, Rejection, Transaction,
    User, ViewAction,
};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Error, Transaction as DbTransaction};
use uuid::Uuid;

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
    /// Adds a message and what parsing it gave.
    pub fn add(&mut self, message: Received, parsed: Result<Event, Rejection>) {
        self.messages += 1;
        let next = self
            .next_offsets
            .entry((message.topic.clone(), message.partition))
            .or_insert(0);
        *next = (*next).max(message.offset + 1);
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
    /// transaction: all of it or, on any error, none of it.
    pub async fn save(&self, client: &mut Client, group: &str) -> Result<Saved, Error> {
        let tx = client.transaction().await?;
        let mut saved = Saved::default();
        saved.count(self.save_transactions(&tx).await?, |s| {
            &mut s.transaction_lines
        });
        saved.count(self.save_views(&tx).await?, |s| &mut s.product_views);
        saved.count(self.save_carts(&tx).await?, |s| &mut s.cart_events);
        saved.count(save_versions(&tx, &self.products).await?, |s| {
            &mut s.catalogue_versions
        });
        saved.count(save_versions(&tx, &self.users).await?, |s| {
            &mut s.catalogue_versions
        });
        saved.count(self.save_dead_letters(&tx).await?, |s| &mut s.dead_letters);
        self.save_offsets(&tx, group).await?;
        tx.commit().await?;
        Ok(saved)
    }

    /// One row per line item, keyed by the derived line_item_id. Returns (inserted, offered).
    async fn save_transactions(&self, tx: &DbTransaction<'_>) -> Result<(u64, u64), Error> {
        let mut c = LineColumns::default();
        for t in &self.transactions {
            for i in 0..t.products.len() {
                c.push(t, i);
            }
        }
        let inserted = tx
            .execute(
                "INSERT INTO transactions (line_item_id, transaction_id, line_number, user_id,
                     session_id, product_id, quantity, price, total_amount, payment_method, country,
                     \"timestamp\")
                 SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int2[], $4::text[], $5::text[],
                     $6::text[], $7::int4[], $8::numeric[], $9::numeric[], $10::text[], $11::text[],
                     $12::timestamptz[])
                 ON CONFLICT DO NOTHING",
                &[
                    &c.line_item_id,
                    &c.transaction_id,
                    &c.line_number,
                    &c.user_id,
                    &c.session_id,
                    &c.product_id,
                    &c.quantity,
                    &c.price,
                    &c.total_amount,
                    &c.payment_method,
                    &c.country,
                    &c.timestamp,
                ],
            )
            .await?;
        Ok((inserted, c.line_item_id.len() as u64))
    }

    async fn save_views(&self, tx: &DbTransaction<'_>) -> Result<(u64, u64), Error> {
        let mut c = EventColumns::default();
        for v in &self.views {
            c.envelope(
                v.event_id,
                v.action.event_type(),
                v.timestamp,
                &v.user_id,
                &v.session_id,
            );
            c.country.push(v.country.as_str());
            match &v.action {
                ViewAction::View(p) => c.details(
                    Some(p.product_id.clone()),
                    Some(p.product_name.clone()),
                    Some(p.category.clone()),
                    Some(p.price),
                    Some(p.view_duration),
                    p.search_query.clone(),
                    json!({}),
                ),
                ViewAction::Search(s) => c.details(
                    None,
                    None,
                    None,
                    None,
                    None,
                    Some(s.search_query.clone()),
                    json!({ "results_count": s.results_count }),
                ),
                ViewAction::Filter(f) => c.details(
                    None,
                    None,
                    Some(f.filter_category.clone()),
                    None,
                    None,
                    None,
                    json!({ "min_price": f.min_price, "max_price": f.max_price,
                            "results_count": f.results_count }),
                ),
                ViewAction::Compare(k) => c.details(
                    None,
                    None,
                    Some(k.category.clone()),
                    None,
                    None,
                    None,
                    json!({ "product_ids": k.product_ids }),
                ),
            }
        }
        let inserted = tx
            .execute(
                "INSERT INTO product_view_events (event_id, event_type, \"timestamp\", user_id,
                     session_id, country, product_id, product_name, category, price, view_duration,
                     search_query, attributes)
                 SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::text[],
                     $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::numeric[],
                     $11::int4[], $12::text[], $13::jsonb[])
                 ON CONFLICT DO NOTHING",
                &[
                    &c.event_id,
                    &c.event_type,
                    &c.timestamp,
                    &c.user_id,
                    &c.session_id,
                    &c.country,
                    &c.product_id,
                    &c.product_name,
                    &c.category,
                    &c.price,
                    &c.number,
                    &c.text,
                    &c.attributes,
                ],
            )
            .await?;
        Ok((inserted, c.event_id.len() as u64))
    }

    async fn save_carts(&self, tx: &DbTransaction<'_>) -> Result<(u64, u64), Error> {
        let mut c = EventColumns::default();
        for e in &self.carts {
            c.envelope(
                e.event_id,
                e.action.event_type(),
                e.timestamp,
                &e.user_id,
                &e.session_id,
            );
            c.country.push(e.country.as_str());
            let item = |c: &mut EventColumns, i: &CartItem, attributes: Value| {
                c.details(
                    Some(i.product_id.clone()),
                    Some(i.product_name.clone()),
                    Some(i.category.clone()),
                    Some(i.price),
                    Some(i.quantity),
                    None,
                    attributes,
                );
                c.cart_size.push(Some(i.cart_size));
                c.cart_value.push(Some(i.cart_value));
            };
            match &e.action {
                CartAction::AddToCart(i) | CartAction::RemoveFromCart(i) => {
                    item(&mut c, i, json!({}))
                }
                CartAction::UpdateQuantity(q) => item(
                    &mut c,
                    &q.item,
                    json!({ "old_quantity": q.old_quantity, "new_quantity": q.new_quantity }),
                ),
                // Checkout keeps total_items in quantity and total_value in cart_value, as
                // the replaced platform did; its lines go to attributes.
                CartAction::Checkout(k) => {
                    c.details(
                        None,
                        None,
                        None,
                        None,
                        Some(k.total_items),
                        None,
                        json!({ "items": k.items }),
                    );
                    c.cart_size.push(Some(k.cart_size));
                    c.cart_value.push(Some(k.total_value));
                }
            }
        }
        let inserted = tx
            .execute(
                "INSERT INTO cart_events (event_id, event_type, \"timestamp\", user_id, session_id,
                     country, product_id, product_name, category, price, quantity, cart_size,
                     cart_value, attributes)
                 SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::text[],
                     $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::numeric[],
                     $11::int4[], $12::int4[], $13::numeric[], $14::jsonb[])
                 ON CONFLICT DO NOTHING",
                &[
                    &c.event_id,
                    &c.event_type,
                    &c.timestamp,
                    &c.user_id,
                    &c.session_id,
                    &c.country,
                    &c.product_id,
                    &c.product_name,
                    &c.category,
                    &c.price,
                    &c.number,
                    &c.cart_size,
                    &c.cart_value,
                    &c.attributes,
                ],
            )
            .await?;
        Ok((inserted, c.event_id.len() as u64))
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

/// The `transactions` columns.
#[derive(Default)]
struct LineColumns {
    line_item_id: Vec<Uuid>,
    transaction_id: Vec<Uuid>,
    line_number: Vec<i16>,
    user_id: Vec<String>,
    session_id: Vec<Option<String>>,
    product_id: Vec<String>,
    quantity: Vec<i32>,
    price: Vec<Decimal>,
    total_amount: Vec<Decimal>,
    payment_method: Vec<&'static str>,
    country: Vec<&'static str>,
    timestamp: Vec<DateTime<Utc>>,
}

impl LineColumns {
    fn push(&mut self, t: &Transaction, i: usize) {
        let line = &t.products[i];
        self.line_item_id.push(t.line_item_id(i));
        self.transaction_id.push(t.transaction_id);
        // Validation allows no more lines than fit (at most 100 units per line, far fewer lines).
        self.line_number.push(i16::try_from(i).unwrap_or(i16::MAX));
        self.user_id.push(t.user_id.clone());
        self.session_id.push(t.session_id.clone());
        self.product_id.push(line.product_id.clone());
        self.quantity.push(line.quantity);
        self.price.push(line.price);
        self.total_amount.push(t.total_amount);
        self.payment_method.push(t.payment_method.as_str());
        self.country.push(t.country.as_str());
        self.timestamp.push(t.timestamp);
    }
}

/// The columns of `product_view_events` and `cart_events`.
#[derive(Default)]
struct EventColumns {
    event_id: Vec<Uuid>,
    event_type: Vec<&'static str>,
    timestamp: Vec<DateTime<Utc>>,
    user_id: Vec<String>,
    session_id: Vec<String>,
    country: Vec<&'static str>,
    product_id: Vec<Option<String>>,
    product_name: Vec<Option<String>>,
    category: Vec<Option<String>>,
    price: Vec<Option<Decimal>>,
    /// view_duration of views, quantity of cart events.
    number: Vec<Option<i32>>,
    /// search_query of views.
    text: Vec<Option<String>>,
    cart_size: Vec<Option<i32>>,
    cart_value: Vec<Option<Decimal>>,
    attributes: Vec<Value>,
}

impl EventColumns {
    fn envelope(
        &mut self,
        id: Uuid,
        kind: &'static str,
        at: DateTime<Utc>,
        user: &str,
        session: &str,
    ) {
        self.event_id.push(id);
        self.event_type.push(kind);
        self.timestamp.push(at);
        self.user_id.push(user.to_owned());
        self.session_id.push(session.to_owned());
    }

    #[allow(clippy::too_many_arguments)]
    fn details(
        &mut self,
        product_id: Option<String>,
        product_name: Option<String>,
        category: Option<String>,
        price: Option<Decimal>,
        number: Option<i32>,
        text: Option<String>,
        attributes: Value,
    ) {
        self.product_id.push(product_id);
        self.product_name.push(product_name);
        self.category.push(category);
        self.price.push(price);
        self.number.push(number);
        self.text.push(text);
        self.attributes.push(attributes);
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
