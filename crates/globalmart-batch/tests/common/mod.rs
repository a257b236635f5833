//! What the batch's integration tests share: hand-made catalogue records and purchases, saved
//! into the realtime database by the stream's own savers.

#![allow(dead_code)] // each test file uses its own part of this

use std::sync::atomic::{AtomicI64, Ordering};

use anyhow::Result;
use chrono::{DateTime, Duration, TimeZone, Utc};
use globalmart_batch::etl::{Lane, Lanes};
use globalmart_core::config::Secret;
use globalmart_core::db::{Db, PgSettings};
use globalmart_core::domain::{CategoryGroup, Country, PaymentMethod};
use globalmart_core::event::{
    Event, LineItem, Product, ProductView, SessionEvent, Transaction, User, ViewAction,
};
use globalmart_generator::mix::{Mix, MixSettings};
use globalmart_generator::timeline::Period;
use globalmart_stream::{Batch, Received, Saved, Thresholds};
use globalmart_testkit::{Cli, TestStack};
use rust_decimal::Decimal;
use tokio_postgres::Client;

const BIN: &str = env!("CARGO_BIN_EXE_globalmart-batch");

/// The batch binary on the test's two databases, running `args`.
pub fn batch<const N: usize>(stack: &TestStack, args: [&str; N]) -> Cli {
    Cli::new(BIN)
        .database(Db::Realtime, &stack.realtime)
        .database(Db::Warehouse, &stack.warehouse)
        .args(args)
}

/// A client of the database `settings` names, as Grafana's read-only role.
pub async fn reader(settings: &PgSettings) -> Result<Client> {
    let mut as_reader = settings.clone();
    as_reader.user = "globalmart_reader".into();
    as_reader.password = Secret::new("reader_password");
    globalmart_testkit::connect(&as_reader).await
}

/// 10:00 on the test day.
pub fn ten() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 12, 7, 10, 0, 0)
        .single()
        .expect("valid date")
}

/// The connections of the ETL's other lanes ([`Lanes`]) on the test's databases.
pub struct OtherLanes {
    realtime: [Client; 2],
    warehouse: [Client; 2],
}

impl OtherLanes {
    pub async fn connect(stack: &TestStack) -> Result<OtherLanes> {
        Ok(OtherLanes {
            realtime: [
                stack.realtime_client().await?,
                stack.realtime_client().await?,
            ],
            warehouse: [
                stack.warehouse_client().await?,
                stack.warehouse_client().await?,
            ],
        })
    }

    pub fn lanes(&mut self) -> Lanes<'_> {
        let [views, carts] = &mut self.warehouse;
        [
            Lane {
                realtime: &self.realtime[0],
                warehouse: views,
            },
            Lane {
                realtime: &self.realtime[1],
                warehouse: carts,
            },
        ]
    }
}

/// The stream's default thresholds, the metrics counting every event of the test day (in the
/// past).
pub fn thresholds() -> Thresholds {
    Thresholds {
        metrics_retention: std::time::Duration::from_secs(10 * 365 * 86_400),
        ..Thresholds::default()
    }
}

/// Saves `records` into the realtime database the way the stream does.
pub async fn save(client: &mut Client, records: &[Event]) -> Result<()> {
    let saved = save_counting(client, records).await?;
    assert_eq!(saved.dead_letters, 0, "a test event is invalid");
    Ok(())
}

/// [`save`], returning what the saver did.
pub async fn save_counting(client: &mut Client, records: &[Event]) -> Result<Saved> {
    // Offsets only matter to the stream's bookkeeping; keep them growing across calls.
    static NEXT_OFFSET: AtomicI64 = AtomicI64::new(0);
    let mut batch = Batch::default();
    for record in records {
        let payload = record.to_json();
        let parsed = Event::parse(record.topic(), &payload, Utc::now());
        let message = Received {
            topic: record.topic().name().to_owned(),
            partition: 0,
            offset: NEXT_OFFSET.fetch_add(1, Ordering::Relaxed),
            key: None,
            payload: Some(payload),
        };
        batch.add(message, parsed);
    }
    let saved = batch.save(client, "etl-test", &thresholds()).await?;
    Ok(saved)
}

/// The kettle's catalogue record as of `minutes` after 10:00.
pub fn kettle(price: i64, rating: i64, minutes: i64) -> Event {
    Event::Product(Product {
        product_id: "PROD_00000001".into(),
        name: "Kettle".into(),
        category: "Kitchen Utensils".into(),
        price: Decimal::from(price),
        inventory: 100,
        rating: Decimal::from(rating),
        updated_at: ten() + Duration::minutes(minutes),
    })
}

/// A user's record as of `minutes` after 10:00.
pub fn shopper(user: &str, country: Country, minutes: i64) -> Event {
    Event::User(User {
        user_id: user.into(),
        email: format!("{}@example.com", user.to_lowercase()),
        age: 30,
        country,
        registration_date: ten() - Duration::days(100),
        preferences: vec![CategoryGroup::HomeKitchen],
        updated_at: ten() + Duration::minutes(minutes),
    })
}

/// One unit of `product` bought by `user` at `minutes` after 10:00.
pub fn purchase(user: &str, product: &str, price: i64, minutes: i64) -> Event {
    Event::Transaction(Transaction {
        transaction_id: uuid::Uuid::new_v4(),
        user_id: user.into(),
        session_id: None,
        timestamp: ten() + Duration::minutes(minutes),
        products: vec![LineItem {
            product_id: product.into(),
            quantity: 1,
            price: Decimal::from(price),
        }],
        total_amount: Decimal::from(price),
        payment_method: PaymentMethod::CreditCard,
        country: Country::Germany,
    })
}

/// `user` viewing `product` at `minutes` after 10:00.
pub fn view(user: &str, product: &str, minutes: i64) -> Event {
    Event::ProductView(SessionEvent {
        event_id: uuid::Uuid::new_v4(),
        timestamp: ten() + Duration::minutes(minutes),
        user_id: user.into(),
        session_id: format!("SESS_{user}"),
        country: Country::Germany,
        action: ViewAction::View(ProductView {
            product_id: product.into(),
            product_name: "Kettle".into(),
            category: "Kitchen Utensils".into(),
            price: Decimal::from(10),
            view_duration: 30,
            search_query: None,
        }),
    })
}

/// The generator's shop (200 users, 50 products, 2 % anomalies, `changes` catalogue changes per
/// event) from `seed`: its catalogue, then `events` events `every` seconds apart from 10:00.
pub fn shop(seed: u64, changes: f64, events: i64, every: i64) -> Vec<Event> {
    let settings = MixSettings {
        users: 200,
        products: 50,
        anomaly_share: 0.02,
        catalogue_change_rate: changes,
        active_sessions: 50,
    };
    let mut mix = Mix::new(settings, seed, seed, Period::instant(ten()));
    let mut records: Vec<Event> = mix.catalogue.events().collect();
    records.extend((1..=events).map(|s| mix.next(ten() + Duration::seconds(every * s))));
    records
}

/// The guide's seven Common Queries, verbatim, from the file `scripts/demo.sh` runs.
pub fn guide_queries() -> Result<Vec<String>> {
    Ok(statements(&repo_file("scripts/demo_queries.sql")?))
}

/// The text of `path`, relative to the repository.
pub fn repo_file(path: &str) -> Result<String> {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    Ok(std::fs::read_to_string(&file)?)
}

/// The statements of an SQL script, each without the indentation its lines share (blocks
/// inside a list are indented); psql meta-commands (`\echo`, `\di`) and comment lines left
/// out.
pub fn statements(script: &str) -> Vec<String> {
    let sql: Vec<&str> = script
        .lines()
        .filter(|l| !l.trim_start().starts_with('\\') && !l.trim_start().starts_with("--"))
        .collect();
    sql.join("\n")
        .split(';')
        .map(dedent)
        .filter(|s| !s.is_empty())
        .collect()
}

/// `text` without the indentation its lines share, trimmed.
fn dedent(text: &str) -> String {
    let indent = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let lines: Vec<&str> = text
        .lines()
        .map(|l| l.get(indent..).unwrap_or(l.trim_start()).trim_end())
        .collect();
    lines.join("\n").trim().to_owned()
}
