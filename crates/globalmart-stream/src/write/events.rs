//! The raw event tables: `transactions` (one row per line item), `product_view_events` and
//! `cart_events` (one row per event), written straight from the events into a binary COPY.
//! Rows have natural keys (a derived line_item_id, the event_id), so a replay finds them there:
//! COPY then fails on the first key and the batch is saved again with
//! [`Insert::SkipExisting`], which says exactly which rows were new.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;

use globalmart_core::event::{
    CartAction, CartEvent, CartItem, ProductViewEvent, SessionEvent, Transaction, ViewAction,
};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Error, Transaction as DbTransaction};
use uuid::Uuid;

/// How a table's rows go in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    /// Binary COPY into the table: the fastest way, failing on the first key already there.
    Copy,
    /// Binary COPY into a staging table, then INSERT ... ON CONFLICT DO NOTHING from it:
    /// skips the keys already there.
    SkipExisting,
}

/// Keys of rows an insert added, when not all of them.
pub type Keys = Option<HashSet<Uuid>>;

/// Whether `key` was inserted: every key when `keys` is None.
pub fn was_inserted(keys: &Keys) -> impl Fn(&Uuid) -> bool + '_ {
    move |key| keys.as_ref().is_none_or(|k| k.contains(key))
}

/// What an insert added.
#[derive(Debug)]
pub struct Inserted {
    rows: u64,
    offered: u64,
    /// The keys of the rows added, when not every row offered was.
    pub keys: Keys,
}

impl Inserted {
    /// (inserted, offered).
    pub fn counts(&self) -> (u64, u64) {
        (self.rows, self.offered)
    }
}

/// The statements that write one event table, from its name, key and column list.
#[derive(Debug)]
struct Statements {
    copy: &'static str,
    stage: &'static str,
    copy_staged: &'static str,
    /// From the staging table, skipping keys there already; returns the keys added.
    merge: &'static str,
}

macro_rules! statements {
    ($table:literal, $key:literal, $columns:expr) => {
        Statements {
            copy: concat!(
                "COPY ",
                $table,
                " (",
                $columns,
                ") FROM STDIN (FORMAT binary)"
            ),
            stage: concat!(
                "CREATE TEMP TABLE staging ON COMMIT DROP AS SELECT ",
                $columns,
                " FROM ",
                $table,
                " WITH NO DATA"
            ),
            copy_staged: concat!("COPY staging (", $columns, ") FROM STDIN (FORMAT binary)"),
            merge: concat!(
                "INSERT INTO ",
                $table,
                " (",
                $columns,
                ") SELECT ",
                $columns,
                " FROM staging ON CONFLICT DO NOTHING RETURNING ",
                $key
            ),
        }
    };
}

/// The columns both session tables start with.
macro_rules! session_columns {
    () => {
        "event_id, event_type, \"timestamp\", user_id, session_id, country, product_id, \
         product_name, category, price"
    };
}

/// Types of the columns of [`session_columns`].
const SESSION_TYPES: [Type; 10] = [
    Type::UUID,
    Type::TEXT,
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::NUMERIC,
];

/// A table's new rows, written straight from the events into a binary COPY.
trait Rows {
    /// How the table is written; its column list matches [`Rows::types`] and [`Rows::write`].
    const STATEMENTS: Statements;
    /// The type of each column, in the order rows are written.
    fn types() -> Vec<Type>;
    /// Rows offered.
    fn count(&self) -> usize;
    fn write(
        &self,
        writer: Pin<&mut BinaryCopyInWriter>,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Saves the line items of `transactions`.
pub async fn transactions(
    tx: &DbTransaction<'_>,
    transactions: &[Transaction],
    how: Insert,
) -> Result<Inserted, Error> {
    insert(tx, &Lines(transactions), how).await
}

/// Saves product views, searches, filters and comparisons.
pub async fn views(
    tx: &DbTransaction<'_>,
    views: &[ProductViewEvent],
    how: Insert,
) -> Result<Inserted, Error> {
    insert(tx, &Sessions(views), how).await
}

/// Saves cart events.
pub async fn carts(
    tx: &DbTransaction<'_>,
    carts: &[CartEvent],
    how: Insert,
) -> Result<Inserted, Error> {
    insert(tx, &Sessions(carts), how).await
}

/// Inserts the rows.
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
    let statements = &R::STATEMENTS;
    let copy = match how {
        Insert::Copy => statements.copy,
        Insert::SkipExisting => {
            tx.batch_execute(statements.stage).await?;
            statements.copy_staged
        }
    };
    let sink = tx.copy_in(copy).await?;
    let writer = BinaryCopyInWriter::new(sink, &R::types());
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
            let keys: HashSet<Uuid> = tx
                .query(statements.merge, &[])
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
    const STATEMENTS: Statements = statements!(
        "transactions",
        "line_item_id",
        "line_item_id, transaction_id, line_number, user_id, session_id, product_id, quantity, \
         price, total_amount, payment_method, country, \"timestamp\""
    );
    fn types() -> Vec<Type> {
        vec![
            Type::UUID,
            Type::UUID,
            Type::INT2,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::INT4,
            Type::NUMERIC,
            Type::NUMERIC,
            Type::TEXT,
            Type::TEXT,
            Type::TIMESTAMPTZ,
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
    /// How its table is written: the session columns, then its own.
    const STATEMENTS: Statements;
    /// The types of the table's columns after the ones both tables have.
    fn own_types() -> Vec<Type>;
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
    const STATEMENTS: Statements = A::STATEMENTS;
    fn types() -> Vec<Type> {
        let mut types = SESSION_TYPES.to_vec();
        types.extend(A::own_types());
        types
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
    const STATEMENTS: Statements = statements!(
        "product_view_events",
        "event_id",
        concat!(
            session_columns!(),
            ", view_duration, search_query, attributes"
        )
    );
    fn own_types() -> Vec<Type> {
        vec![Type::INT4, Type::TEXT, Type::JSONB]
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
                category: f.filter_category.as_deref(),
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
    const STATEMENTS: Statements = statements!(
        "cart_events",
        "event_id",
        concat!(
            session_columns!(),
            ", quantity, cart_size, cart_value, attributes"
        )
    );
    fn own_types() -> Vec<Type> {
        vec![Type::INT4, Type::INT4, Type::NUMERIC, Type::JSONB]
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
