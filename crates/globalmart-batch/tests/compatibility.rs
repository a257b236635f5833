//! A shop moving from the replaced platform (docs/COMPATIBILITY.md): the events its producers
//! send, written by hand from reading its generators, saved by the stream's savers and loaded by
//! the ETL, keep their meaning and give useful dimensions without catalogue topics; and every
//! name of the mapping table in docs/COMPATIBILITY.md answers the read-only role with rows.

mod common;

use std::time::Duration as StdDuration;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Duration, Utc};
use globalmart_batch::analytics::{self, Basis};
use globalmart_batch::etl::{self, Settings};
use globalmart_core::event::Event;
use globalmart_core::topics::Topic;
use globalmart_stream::{Batch, Received, Saved};
use globalmart_testkit::TestStack;
use tokio_postgres::Client;

use common::{reader, save, shop, ten, thresholds, OtherLanes};

const SETTINGS: Settings = Settings {
    chunk_rows: 100_000,
    lock_timeout: StdDuration::from_secs(5),
};

/// Naive ISO time, as its producers write `datetime.utcnow().isoformat()`.
fn naive(at: DateTime<Utc>) -> String {
    at.naive_utc().format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

/// One of its cart or browsing events: `rest` holds the type's own fields.
fn session_event(n: u32, event_type: &str, user: &str, at: DateTime<Utc>, rest: &str) -> String {
    let country = if user.ends_with('1') {
        "Germany"
    } else {
        "Japan"
    };
    format!(
        r#"{{"event_id": "{}", "event_type": "{event_type}", "timestamp": "{}", "user_id": "{user}",
        "session_id": "5d3c1b2a-0f9e-4d8c-b7a6-{n:012}", {rest}, "country": "{country}"}}"#,
        uuid::Uuid::new_v4(),
        naive(at)
    )
}

const ANNA: &str = "USER_00000101";
const BEN: &str = "USER_00000102";
/// Its product fields as its generators copy them into every view and cart event.
const LAPTOP: &str = r#""product_id": "PROD_00000201", "product_name": "Acme Laptops Pro", "category": "Laptops", "price": 1299.99"#;
const BLANKET: &str = r#""product_id": "PROD_00000202", "product_name": "Cozy Blankets Plus", "category": "Blankets", "price": 49.95"#;

/// Every shape its producers send, for two users and two products, from `start` on; then three
/// it sends that stay invalid. Anna's first cart is checked out; Ben's keeps a blanket.
fn its_events(start: DateTime<Utc>) -> (Vec<(Topic, String)>, usize) {
    let at = |minutes: i64| start + Duration::minutes(minutes);
    let views = Topic::ProductViews;
    let carts = Topic::CartEvents;
    let valid = vec![
        (
            views,
            session_event(
                1,
                "view",
                ANNA,
                at(0),
                &format!(
                    r#"{LAPTOP}, "view_duration": 37, "from_search": false, "search_query": null, "previously_viewed_count": 0"#
                ),
            ),
        ),
        (
            views,
            session_event(
                2,
                "view",
                BEN,
                at(1),
                &format!(
                    r#"{BLANKET}, "view_duration": 12, "from_search": true, "search_query": "blanket", "previously_viewed_count": 3"#
                ),
            ),
        ),
        (
            views,
            session_event(
                1,
                "search",
                ANNA,
                at(2),
                r#""search_query": "laptop", "results_count": 4"#,
            ),
        ),
        (
            views,
            session_event(
                1,
                "filter",
                ANNA,
                at(3),
                r#""filter_category": "Laptops", "min_price": null, "max_price": null, "results_count": 2"#,
            ),
        ),
        (
            views,
            session_event(
                2,
                "filter",
                BEN,
                at(4),
                r#""filter_category": null, "min_price": 0, "max_price": 50, "results_count": 30"#,
            ),
        ),
        (
            views,
            session_event(
                1,
                "compare",
                ANNA,
                at(5),
                r#""product_ids": ["PROD_00000201", "PROD_00000202"], "product_names": ["Acme Laptops Pro", "Cozy Blankets Plus"], "prices": [1299.99, 49.95], "category": "mixed""#,
            ),
        ),
        (
            carts,
            session_event(
                1,
                "add_to_cart",
                ANNA,
                at(6),
                &format!(r#"{LAPTOP}, "quantity": 1, "cart_size": 1, "cart_value": 1299.99"#),
            ),
        ),
        (
            carts,
            session_event(
                1,
                "add_to_cart",
                ANNA,
                at(7),
                &format!(
                    r#"{BLANKET}, "quantity": 2, "cart_size": 2, "cart_value": 1399.8899999999999"#
                ),
            ),
        ),
        (
            carts,
            session_event(
                1,
                "update_quantity",
                ANNA,
                at(8),
                &format!(
                    r#"{BLANKET}, "old_quantity": 2, "new_quantity": 3, "cart_size": 2, "cart_value": 1449.8400000000001"#
                ),
            ),
        ),
        (
            carts,
            session_event(
                1,
                "checkout",
                ANNA,
                at(9),
                r#""items": [{"product_id": "PROD_00000201", "product_name": "Acme Laptops Pro", "category": "Laptops", "price": 1299.99, "quantity": 1}, {"product_id": "PROD_00000202", "product_name": "Cozy Blankets Plus", "category": "Blankets", "price": 49.95, "quantity": 3}], "total_items": 4, "total_value": 1449.8400000000001, "cart_size": 2"#,
            ),
        ),
        (
            carts,
            session_event(
                2,
                "add_to_cart",
                BEN,
                at(10),
                &format!(r#"{BLANKET}, "quantity": 1, "cart_size": 1, "cart_value": 49.95"#),
            ),
        ),
        (
            carts,
            session_event(
                2,
                "remove_from_cart",
                BEN,
                at(11),
                &format!(r#"{BLANKET}, "quantity": 1, "cart_size": 0, "cart_value": 0"#),
            ),
        ),
        (
            carts,
            session_event(
                2,
                "add_to_cart",
                BEN,
                at(12),
                &format!(r#"{BLANKET}, "quantity": 1, "cart_size": 1, "cart_value": 49.95"#),
            ),
        ),
        // Anna again, 33 minutes after Ben's last cart activity: the stream judges abandonment
        // in event time, so by this event Ben's cart is abandoned.
        (
            carts,
            session_event(
                3,
                "add_to_cart",
                ANNA,
                at(45),
                &format!(r#"{BLANKET}, "quantity": 1, "cart_size": 1, "cart_value": 49.95"#),
            ),
        ),
        (
            Topic::Transactions,
            format!(
                r#"{{"transaction_id": "{}", "user_id": "{ANNA}", "timestamp": "{}", "products": [{{"product_id": "PROD_00000201", "quantity": 1, "price": 1299.99}}, {{"product_id": "PROD_00000202", "quantity": 3, "price": 49.95}}], "total_amount": 1449.84, "payment_method": "Apple Pay", "country": "Germany"}}"#,
                uuid::Uuid::new_v4(),
                naive(at(9)).split('.').next().unwrap_or_default()
            ),
        ),
        (
            Topic::Transactions,
            format!(
                r#"{{"transaction_id": "{}", "user_id": "{BEN}", "timestamp": "{}", "products": [{{"product_id": "PROD_00000202", "quantity": 1, "price": 49.95}}], "total_amount": 49.95, "payment_method": "PayPal", "country": "Japan"}}"#,
                uuid::Uuid::new_v4(),
                naive(at(13))
            ),
        ),
    ];
    let count = valid.len();
    let mut all = valid;
    all.extend([
        // Its injected high-value anomaly: a random total its lines do not add up to.
        (Topic::Transactions, format!(
            r#"{{"transaction_id": "{}", "user_id": "{BEN}", "timestamp": "{}", "products": [{{"product_id": "PROD_00000202", "quantity": 1, "price": 49.95}}], "total_amount": 7340.123456789012, "payment_method": "PayPal", "country": "Japan"}}"#,
            uuid::Uuid::new_v4(), naive(at(14)))),
        (carts, session_event(2, "update_quantity", BEN, at(15), &format!(
            r#"{BLANKET}, "old_quantity": 1, "cart_size": 1, "cart_value": 49.95"#))),
        (carts, session_event(2, "cart_abandonment", BEN, at(16),
            r#""items": [], "cart_size": 1, "cart_value": 49.95"#)),
    ]);
    (all, count)
}

/// Saves raw messages through the stream's savers, as the stream receives them.
async fn save_raw(client: &mut Client, messages: &[(Topic, String)]) -> Result<Saved> {
    let mut batch = Batch::default();
    for (offset, (topic, json)) in messages.iter().enumerate() {
        let payload = json.as_bytes().to_vec();
        let parsed = Event::parse(*topic, &payload, Utc::now());
        let message = Received {
            topic: topic.name().to_owned(),
            partition: 0,
            offset: i64::try_from(offset)?,
            key: None,
            payload: Some(payload),
        };
        batch.add(message, parsed);
    }
    let saved = batch
        .save(client, "compatibility-test", &thresholds())
        .await?;
    Ok(saved)
}

async fn texts(client: &Client, sql: &str) -> Result<Vec<String>> {
    Ok(client
        .query(sql, &[])
        .await
        .with_context(|| sql.to_owned())?
        .iter()
        .map(|r| {
            r.get::<_, Option<String>>(0)
                .unwrap_or_else(|| "NULL".into())
        })
        .collect())
}

#[tokio::test]
async fn its_producers_events_keep_their_meaning_and_fill_the_dimensions() -> Result<()> {
    let stack = TestStack::new().await?;
    let mut realtime = stack.realtime_client().await?;
    let mut warehouse = stack.warehouse_client().await?;
    let mut extra = OtherLanes::connect(&stack).await?;
    let (messages, valid) = its_events(Utc::now() - Duration::hours(2));
    let saved = save_raw(&mut realtime, &messages).await?;
    assert_eq!(saved.dead_letters, (messages.len() - valid) as u64);
    assert_eq!(
        (
            saved.product_views,
            saved.cart_events,
            saved.transaction_lines
        ),
        (6, 8, 3)
    );
    let reasons = texts(
        &realtime,
        "SELECT reason FROM dead_letter_events ORDER BY reason",
    )
    .await?;
    assert_eq!(
        reasons,
        [
            "invalid cart event: missing field `new_quantity`",
            "invalid cart event: unknown variant `cart_abandonment`, expected one of \
             `add_to_cart`, `remove_from_cart`, `update_quantity`, `checkout`",
            "total_amount 7340.123456789012 has more than 2 decimal places",
        ]
    );

    // Each variant with its meaning: the update's quantity is its new_quantity, float noise
    // is cents, a filter's null criteria are NULL.
    assert_eq!(
        texts(
            &realtime,
            "SELECT event_type || ' ' || coalesce(quantity::text, '-') || ' ' || cart_value::text
             FROM cart_events WHERE user_id = 'USER_00000101' ORDER BY \"timestamp\""
        )
        .await?,
        [
            "add_to_cart 1 1299.99",
            "add_to_cart 2 1399.89",
            "update_quantity 3 1449.84",
            "checkout 4 1449.84",
            "add_to_cart 1 49.95",
        ]
    );
    assert_eq!(
        texts(
            &realtime,
            "SELECT coalesce(category, 'NULL') || ' ' || coalesce(attributes->>'min_price', 'NULL')
                 || '-' || coalesce(attributes->>'max_price', 'NULL')
             FROM product_view_events WHERE event_type = 'filter' ORDER BY \"timestamp\""
        )
        .await?,
        ["Laptops NULL-NULL", "NULL 0-50"]
    );
    assert_eq!(
        texts(
            &realtime,
            "SELECT DISTINCT total_amount::text FROM transactions ORDER BY 1"
        )
        .await?,
        ["1449.84", "49.95"]
    );

    // No catalogue topics: the dimensions hold what the events tell.
    etl::run(&mut realtime, &mut warehouse, extra.lanes(), &SETTINGS).await?;
    assert_eq!(
        texts(
            &warehouse,
            "SELECT product_id || ' ' || product_name || ' ' || category || ' '
                 || coalesce(category_group, '-') || ' ' || price::text || ' ' || is_inferred::text
             FROM dim_products ORDER BY product_id"
        )
        .await?,
        // Blankets is one of its categories that ours (crates/globalmart-core/src/domain.rs)
        // do not have, so it has no group.
        [
            "PROD_00000201 Acme Laptops Pro Laptops Electronics 1299.99 true",
            "PROD_00000202 Cozy Blankets Plus Blankets - 49.95 true",
        ]
    );
    assert_eq!(
        texts(
            &warehouse,
            "SELECT user_id || ' ' || country FROM dim_customers ORDER BY user_id"
        )
        .await?,
        ["USER_00000101 Germany", "USER_00000102 Japan"]
    );
    // The guide's query 4 has a row per category, not one blank row.
    assert_eq!(
        texts(
            &warehouse,
            "SELECT p.category || ' ' || COUNT(DISTINCT fpv.event_id) || ' '
                 || COUNT(DISTINCT fs.transaction_id)
             FROM dim_products p
             LEFT JOIN fact_product_views fpv
                 ON p.product_id_pk = fpv.product_id_pk AND p.is_current = TRUE
             LEFT JOIN fact_sales fs ON p.product_id_pk = fs.product_id_pk
             GROUP BY p.category ORDER BY 1"
        )
        .await?,
        ["Blankets 1 2", "Laptops 1 1"]
    );
    // And query 1 shows each product's category.
    analytics::run(&mut warehouse, Utc::now().date_naive(), Basis::Totals).await?;
    assert_eq!(
        texts(
            &warehouse,
            "SELECT product_id || ' ' || category || ' ' || total_revenue::text
             FROM product_performance
             WHERE analysis_date = (SELECT MAX(analysis_date) FROM product_performance)
             ORDER BY total_revenue DESC"
        )
        .await?,
        [
            "PROD_00000201 Laptops 1299.99",
            "PROD_00000202 Blankets 199.80"
        ]
    );

    // A catalogue record arriving later completes the inferred member, as for any other.
    let record = r#"{"product_id": "PROD_00000201", "name": "Acme Laptops Pro 15", "category": "Laptops",
        "price": 1249.99, "inventory": 40, "rating": 4.6, "updated_at": "2025-12-07T09:00:00"}"#;
    let saved = save_raw(&mut realtime, &[(Topic::Products, record.into())]).await?;
    assert_eq!(saved.dead_letters, 0);
    etl::run(&mut realtime, &mut warehouse, extra.lanes(), &SETTINGS).await?;
    assert_eq!(
        texts(
            &warehouse,
            "SELECT product_name || ' ' || price::text || ' ' || is_inferred::text
             FROM dim_products WHERE product_id = 'PROD_00000201' AND is_current"
        )
        .await?,
        ["Acme Laptops Pro 15 1249.99 false"]
    );
    Ok(())
}

/// Rows of the mapping table in docs/COMPATIBILITY.md: database, table, columns.
fn mapping() -> Result<Vec<(String, String, Vec<String>)>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/COMPATIBILITY.md");
    let text = std::fs::read_to_string(&path)?;
    let unquote = |cell: &str| cell.trim().trim_matches('`').to_owned();
    let mut rows = Vec::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.split('|').collect();
        if cells.len() < 5 || !matches!(cells[1].trim(), "realtime" | "warehouse") {
            continue;
        }
        let columns = cells[3].split(',').map(unquote).collect();
        rows.push((cells[1].trim().to_owned(), unquote(cells[2]), columns));
    }
    if rows.len() < 30 {
        bail!(
            "only {} rows in the mapping table of {}",
            rows.len(),
            path.display()
        );
    }
    Ok(rows)
}

#[tokio::test]
async fn every_name_of_the_mapping_table_answers_the_read_only_role() -> Result<()> {
    let stack = TestStack::new().await?;
    let mut realtime = stack.realtime_client().await?;
    let mut warehouse = stack.warehouse_client().await?;
    let mut extra = OtherLanes::connect(&stack).await?;
    // Five and a half hours of the generator's shop, one event a second, then its producers'
    // events from two hours ago; Ben's cart is abandoned by now.
    save(&mut realtime, &shop(3, 0.01, 20_000, 1)).await?;
    let (messages, _) = its_events(Utc::now() - Duration::hours(2));
    save_raw(&mut realtime, &messages).await?;
    let abandoned =
        globalmart_stream::abandoned_carts(&realtime, StdDuration::from_secs(30 * 60), None)
            .await?
            .recorded;
    assert!(abandoned >= 1, "Ben's cart was not found abandoned");
    etl::run(&mut realtime, &mut warehouse, extra.lanes(), &SETTINGS).await?;
    analytics::run(&mut warehouse, ten().date_naive(), Basis::Totals).await?;

    let clients = [
        ("realtime", reader(&stack.realtime).await?),
        ("warehouse", reader(&stack.warehouse).await?),
    ];
    let mut names = 0;
    for (database, table, columns) in mapping()? {
        let client = &clients
            .iter()
            .find(|(name, _)| *name == database)
            .context("a database of the mapping table")?
            .1;
        let counts: Vec<String> = columns.iter().map(|c| format!("count(\"{c}\")")).collect();
        let sql = format!("SELECT count(*), {} FROM {table}", counts.join(", "));
        let row = client
            .query_one(sql.as_str(), &[])
            .await
            .with_context(|| format!("{database}: {sql}"))?;
        assert!(row.get::<_, i64>(0) > 0, "{database}.{table} has no rows");
        for (i, column) in columns.iter().enumerate() {
            // A growth rate needs a previous period: the shop's history is one day.
            if column == "growth_rate" {
                continue;
            }
            let filled: i64 = row.get(i + 1);
            assert!(
                filled > 0,
                "{database}.{table}.{column} is NULL in every row"
            );
            names += 1;
        }
    }
    assert!(names >= 100, "only {names} names checked");
    Ok(())
}
