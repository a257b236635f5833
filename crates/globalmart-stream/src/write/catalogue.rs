//! The catalogue tables: every product and user version received goes to its history table
//! (`product_history`, `user_history`, keyed by id and updated_at), and each record's newest
//! version to its latest-version table (`products`, `users`) when newer than what that has.
//! History rows go in by binary COPY, as the raw events do (`events.rs`): a version saved
//! before (a replay) fails it on its key, and the batch is saved again with
//! [`Insert::SkipExisting`]. Upserts, and the history of such a replay, send their columns as
//! arrays (`unnest`), one statement per table.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use globalmart_core::event::{Product, User};
use rust_decimal::Decimal;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Error, Transaction as DbTransaction};
use tracing::debug;

use crate::write::events::Insert;

/// Key of the advisory lock between catalogue versions and the sales they affect ("gmst").
const CATALOGUE_LOCK: i64 = 0x676d_7374;
const HOLD_EXCLUSIVE: &str = "SELECT pg_advisory_xact_lock($1)";
const HOLD_SHARED: &str = "SELECT pg_advisory_xact_lock_shared($1)";

/// Holds the catalogue lock until the transaction ends: exclusively when it applies product
/// versions, shared when it saves sales only, not at all with neither (cart events alone, and
/// the stream's views lane). The stock comes from both a product's catalogue record and its
/// sales (a restock recounts the sales saved so far, a sale takes its units off the stock row):
/// in two instances side by side, a version would not see a sale committing beside it, nor that
/// sale the version, and the sale would be missed by both. Taken before the transaction writes
/// any row, so a save waiting for it holds nothing another save needs.
pub async fn hold(tx: &DbTransaction<'_>, products: bool, sales: bool) -> Result<(), Error> {
    let lock = match (products, sales) {
        (true, _) => HOLD_EXCLUSIVE,
        (false, true) => HOLD_SHARED,
        (false, false) => return Ok(()),
    };
    tx.execute(lock, &[&CATALOGUE_LOCK]).await?;
    Ok(())
}

/// The columns both product tables have, in the order of [`ProductColumns`].
macro_rules! product_columns {
    () => {
        "product_id, name, category, price, inventory, rating, updated_at"
    };
}

/// A SELECT over the product column arrays $1..$7.
macro_rules! product_rows {
    () => {
        "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::numeric[], $5::int4[],
             $6::numeric[], $7::timestamptz[])"
    };
}

/// The columns both user tables have, in the order of [`UserColumns`].
macro_rules! user_columns {
    () => {
        "user_id, email, age, country, registration_date, preferences, updated_at"
    };
}

/// A SELECT over the user column arrays $1..$7. Preferences travel as array literals
/// ([`array_literal`]), one per user, cast back per row: unnest cannot take an array of text
/// arrays of different lengths. (They travelled as JSON arrays, taken apart by a subquery per
/// row: that doubled the cost of both statements, half of the stream's time on the 10 million
/// users of the course's catalogue, docs/PERFORMANCE.md.)
macro_rules! user_rows {
    () => {
        "SELECT u, e, a, c, r, p::text[], t
         FROM unnest($1::text[], $2::text[], $3::int4[], $4::text[], $5::timestamptz[],
             $6::text[], $7::timestamptz[]) AS x(u, e, a, c, r, p, t)"
    };
}

/// Adds every product or user version offered to its history table; returns (history rows
/// inserted, versions offered). Sends nothing when there are none.
pub(crate) async fn history<T: Versioned>(
    tx: &DbTransaction<'_>,
    records: &[T],
    how: Insert,
) -> Result<(u64, u64), Error> {
    if records.is_empty() {
        return Ok((0, 0));
    }
    let inserted = match how {
        Insert::Copy => copy(tx, T::COPY_HISTORY, records.iter()).await?,
        Insert::SkipExisting => {
            let all = T::Columns::from(records.iter().collect());
            tx.execute(T::HISTORY, &T::params(&all)).await?
        }
    };
    Ok((inserted, records.len() as u64))
}

/// Savepoint of the COPY into a latest-version table.
const SAVEPOINT: &str = "SAVEPOINT latest_versions";
const RELEASE: &str = "RELEASE SAVEPOINT latest_versions";
/// Back to before the COPY, and out of the savepoint (rolling back to it keeps it open, and the
/// rest of the batch would run in its subtransaction).
const ROLLBACK_TO: &str =
    "ROLLBACK TO SAVEPOINT latest_versions; RELEASE SAVEPOINT latest_versions";

/// Saves each record's newest version offered into its latest-version table, unless that holds
/// a newer one. Sends nothing when there are none. Most records of a large batch are new (a
/// catalogue's first publication), so with [`Insert::Copy`] they go in by COPY, under a
/// savepoint: a record there already (a change, a replay) fails it on its key, and the
/// versions are upserted instead (`LATEST`). The course's 10 million users took 23 s by COPY
/// against 49 s by upsert (docs/PERFORMANCE.md). Not pipelined with other queries: rolling back
/// to the savepoint would undo theirs too.
pub(crate) async fn latest<T: Versioned>(
    tx: &DbTransaction<'_>,
    records: &[T],
    how: Insert,
) -> Result<(), Error> {
    if records.is_empty() {
        return Ok(());
    }
    // DO UPDATE may touch a row once per statement: only each record's newest version.
    let newest = newest_by(records, T::id_and_time);
    if how == Insert::Copy {
        tx.batch_execute(SAVEPOINT).await?;
        match copy(tx, T::COPY_LATEST, newest.iter().copied()).await {
            Ok(_) => return tx.batch_execute(RELEASE).await,
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                debug!("the batch changes saved catalogue records: upserting its versions");
                tx.batch_execute(ROLLBACK_TO).await?;
            }
            Err(e) => return Err(e),
        }
    }
    let newest = T::Columns::from(newest);
    tx.execute(T::LATEST, &T::params(&newest)).await?;
    Ok(())
}

/// Copies `records` by `statement` (a binary COPY of the column list both tables have);
/// returns the rows copied.
async fn copy<'a, T: Versioned + 'a>(
    tx: &DbTransaction<'_>,
    statement: &str,
    records: impl Iterator<Item = &'a T>,
) -> Result<u64, Error> {
    let writer = BinaryCopyInWriter::new(tx.copy_in(statement).await?, &T::TYPES);
    tokio::pin!(writer);
    for record in records {
        record.copy(writer.as_mut()).await?;
    }
    writer.finish().await
}

/// A catalogue record: every version goes to its history table, each record's newest version
/// to its latest-version table (only when newer than what the table has).
pub(crate) trait Versioned: Sized {
    /// The columns of both tables.
    type Columns: for<'a> From<Vec<&'a Self>>;
    /// Copies rows into the history table, in the order of [`Versioned::TYPES`].
    const COPY_HISTORY: &'static str;
    /// Copies rows into the latest-version table, in the same order.
    const COPY_LATEST: &'static str;
    /// The types of the columns, in the order of the column list.
    const TYPES: [Type; 7];
    /// Inserts every version offered (columns as arrays $1..$7) into the history table,
    /// skipping those there already.
    const HISTORY: &'static str;
    /// Upserts each record's newest version into the latest-version table, unless older.
    const LATEST: &'static str;
    fn id_and_time(&self) -> (&String, DateTime<Utc>);
    fn params(columns: &Self::Columns) -> [&(dyn ToSql + Sync); 7];
    /// Writes the record's row of either COPY.
    fn copy(
        &self,
        writer: Pin<&mut BinaryCopyInWriter>,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

impl Versioned for Product {
    type Columns = ProductColumns;
    const COPY_HISTORY: &'static str = concat!(
        "COPY product_history (",
        product_columns!(),
        ") FROM STDIN (FORMAT binary)"
    );
    const COPY_LATEST: &'static str = concat!(
        "COPY products (",
        product_columns!(),
        ") FROM STDIN (FORMAT binary)"
    );
    const TYPES: [Type; 7] = [
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::NUMERIC,
        Type::INT4,
        Type::NUMERIC,
        Type::TIMESTAMPTZ,
    ];
    const HISTORY: &'static str = concat!(
        "INSERT INTO product_history (",
        product_columns!(),
        ") ",
        product_rows!(),
        " ON CONFLICT DO NOTHING"
    );
    const LATEST: &'static str = concat!(
        "INSERT INTO products (",
        product_columns!(),
        ") ",
        product_rows!(),
        " ON CONFLICT (product_id) DO UPDATE SET name = EXCLUDED.name,
             category = EXCLUDED.category, price = EXCLUDED.price,
             inventory = EXCLUDED.inventory, rating = EXCLUDED.rating,
             updated_at = EXCLUDED.updated_at
         WHERE products.updated_at < EXCLUDED.updated_at"
    );
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
    async fn copy(&self, writer: Pin<&mut BinaryCopyInWriter>) -> Result<(), Error> {
        (writer.write(&[
            &self.product_id,
            &self.name,
            &self.category,
            &self.price,
            &self.inventory,
            &self.rating,
            &self.updated_at,
        ]))
        .await
    }
}

impl Versioned for User {
    type Columns = UserColumns;
    const COPY_HISTORY: &'static str = concat!(
        "COPY user_history (",
        user_columns!(),
        ") FROM STDIN (FORMAT binary)"
    );
    const COPY_LATEST: &'static str = concat!(
        "COPY users (",
        user_columns!(),
        ") FROM STDIN (FORMAT binary)"
    );
    const TYPES: [Type; 7] = [
        Type::TEXT,
        Type::TEXT,
        Type::INT4,
        Type::TEXT,
        Type::TIMESTAMPTZ,
        Type::TEXT_ARRAY,
        Type::TIMESTAMPTZ,
    ];
    const HISTORY: &'static str = concat!(
        "INSERT INTO user_history (",
        user_columns!(),
        ") ",
        user_rows!(),
        " ON CONFLICT DO NOTHING"
    );
    const LATEST: &'static str = concat!(
        "INSERT INTO users (",
        user_columns!(),
        ") ",
        user_rows!(),
        " ON CONFLICT (user_id) DO UPDATE SET email = EXCLUDED.email, age = EXCLUDED.age,
             country = EXCLUDED.country, registration_date = EXCLUDED.registration_date,
             preferences = EXCLUDED.preferences, updated_at = EXCLUDED.updated_at
         WHERE users.updated_at < EXCLUDED.updated_at"
    );
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
    async fn copy(&self, writer: Pin<&mut BinaryCopyInWriter>) -> Result<(), Error> {
        let preferences: Vec<&str> = self.preferences.iter().map(|g| g.name()).collect();
        (writer.write(&[
            &self.user_id,
            &self.email,
            &self.age,
            &self.country.as_str(),
            &self.registration_date,
            &preferences,
            &self.updated_at,
        ]))
        .await
    }
}

/// The newest record per id, by its time, in the order of their ids: the tables' key order, so
/// two savers writing the same records take their row locks in the same order.
fn newest_by<'a, T>(
    records: &'a [T],
    id_and_time: impl Fn(&'a T) -> (&'a String, DateTime<Utc>),
) -> Vec<&'a T> {
    let mut newest: BTreeMap<&String, (DateTime<Utc>, &T)> = BTreeMap::new();
    for record in records {
        let (id, at) = id_and_time(record);
        if newest.get(id).is_none_or(|(seen, _)| *seen < at) {
            newest.insert(id, (at, record));
        }
    }
    newest.into_values().map(|(_, record)| record).collect()
}

/// The columns of `products` and `product_history`.
pub(crate) struct ProductColumns {
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
pub(crate) struct UserColumns {
    user_id: Vec<String>,
    email: Vec<String>,
    age: Vec<i32>,
    country: Vec<&'static str>,
    registration_date: Vec<DateTime<Utc>>,
    preferences: Vec<String>,
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
            c.preferences
                .push(array_literal(u.preferences.iter().map(|g| g.name())));
            c.updated_at.push(u.updated_at);
        }
        c
    }
}

/// A PostgreSQL text array literal of `items`, each quoted (`{"Books & Media","Toys & Games"}`),
/// as `array_in` reads it back.
fn array_literal<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::from("{");
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        for ch in item.chars() {
            if matches!(ch, '"' | '\\') {
                out.push('\\');
            }
            out.push(ch);
        }
        out.push('"');
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::array_literal;

    #[test]
    fn array_literals_quote_every_item_and_escape_quotes_and_backslashes() {
        assert_eq!(array_literal([].into_iter()), "{}");
        assert_eq!(
            array_literal(["Books & Media", "Toys & Games"].into_iter()),
            r#"{"Books & Media","Toys & Games"}"#
        );
        assert_eq!(
            array_literal([r#"a "b" \ c"#, "NULL", ""].into_iter()),
            r#"{"a \"b\" \\ c","NULL",""}"#
        );
    }
}
