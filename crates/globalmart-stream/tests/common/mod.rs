//! What the stream's integration tests share: the binary pointed at a test's stack, generated
//! records produced to a broker, and the realtime tables summed up for comparison.

#![allow(dead_code)] // each test file uses its own part of this

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};
use chrono::Utc;
use globalmart_core::db::Db;
use globalmart_core::event::Event;
use globalmart_generator::mix::{Mix, MixSettings};
use globalmart_testkit::{database_env, TestStack};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

const BIN: &str = env!("CARGO_BIN_EXE_globalmart-stream");

/// Longest a stream run may take in a test before it counts as hung.
const RUN_LIMIT: Duration = Duration::from_secs(180);

/// The stream binary on the stack's broker, topics, group and realtime database, exiting once
/// idle for 3 s.
pub fn stream(stack: &TestStack) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("METRICS_ADDR", "127.0.0.1:0")
        .env("KAFKA_BOOTSTRAP_SERVERS", &stack.bootstrap_servers)
        .env("KAFKA_TOPIC_PREFIX", stack.topic_prefix())
        .env("STREAM_CONSUMER_GROUP", &stack.group_id)
        .envs(database_env(Db::Realtime, &stack.realtime))
        .env("STREAM_EXIT_WHEN_IDLE", "3")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// Waits (blocking) for a stream run to end, and returns its log; an error when it failed or
/// ran past [`RUN_LIMIT`] (then it is killed).
pub fn finish(mut child: Child) -> Result<String> {
    // Read the log while it runs: a full pipe would stop the process.
    let mut pipe = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut log = String::new();
        if let Some(pipe) = pipe.as_mut() {
            let _ = pipe.read_to_string(&mut log);
        }
        log
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if started.elapsed() > RUN_LIMIT {
            child.kill()?;
            child.wait()?;
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = reader.join().unwrap_or_default();
    match status {
        None => bail!("the stream ran longer than {RUN_LIMIT:?}: {log}"),
        Some(status) => ensure!(status.success(), "the stream failed ({status}): {log}"),
    }
    Ok(log)
}

/// Runs `command` to its end, off the async runtime.
pub async fn run(mut command: Command) -> Result<String> {
    let child = command.spawn()?;
    tokio::task::spawn_blocking(move || finish(child)).await?
}

pub fn producer(bootstrap_servers: &str) -> Result<FutureProducer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap_servers)
        .set("enable.idempotence", "true")
        .set("message.max.bytes", "2000000")
        .create()?)
}

pub async fn send(
    producer: &FutureProducer,
    topic: &str,
    key: &[u8],
    payload: &[u8],
) -> Result<()> {
    producer
        .send(
            FutureRecord::to(topic).key(key).payload(payload),
            Duration::from_secs(60),
        )
        .await
        .map_err(|(e, _)| anyhow::anyhow!("producing to {topic}: {e}"))?;
    Ok(())
}

/// Produces every record to its topic under `prefix` on `bootstrap_servers`, all in flight at
/// once.
pub async fn produce_to(bootstrap_servers: &str, prefix: &str, records: &[Event]) -> Result<()> {
    let producer = producer(bootstrap_servers)?;
    let topics: Vec<String> = records
        .iter()
        .map(|r| format!("{prefix}{}", r.topic().name()))
        .collect();
    let payloads: Vec<Vec<u8>> = records.iter().map(Event::to_json).collect();
    let deliveries = records
        .iter()
        .zip(&topics)
        .zip(&payloads)
        .map(|((record, topic), payload)| send(&producer, topic, record.key().as_bytes(), payload));
    futures::future::try_join_all(deliveries).await?;
    Ok(())
}

/// Produces every record to the stack's topics.
pub async fn produce_all(stack: &TestStack, records: &[Event]) -> Result<()> {
    produce_to(&stack.bootstrap_servers, &stack.topic_prefix(), records).await
}

/// The catalogue (300 users, 60 products) then `n` generated events.
pub fn events(n: usize) -> Vec<Event> {
    let settings = MixSettings {
        users: 300,
        products: 60,
        anomaly_share: 0.02,
        catalogue_change_rate: 0.005,
        active_sessions: 50,
    };
    let mut mix = Mix::new(settings, 5, 5, Utc::now());
    let mut records: Vec<Event> = mix.catalogue.events().collect();
    for _ in 0..n {
        records.push(mix.next(globalmart_core::timestamp::to_micros(Utc::now())));
    }
    records
}

/// [`events`], produced to the stack's topics.
pub async fn produce_events(stack: &TestStack, n: usize) -> Result<Vec<Event>> {
    let records = events(n);
    produce_all(stack, &records).await?;
    Ok(records)
}

/// (table, row count, checksum) of the realtime tables: what "the same tables" means here.
pub async fn tables(stack: &TestStack) -> Result<Vec<(String, i64, String)>> {
    tables_in(&stack.realtime_client().await?).await
}

/// [`tables`] of the realtime database `client` is connected to.
pub async fn tables_in(client: &tokio_postgres::Client) -> Result<Vec<(String, i64, String)>> {
    let mut out = Vec::new();
    for (table, key) in [
        ("transactions", "line_item_id::text || quantity || price"),
        ("product_view_events", "event_id::text"),
        (
            "cart_events",
            "event_id::text || coalesce(cart_value::text, '')",
        ),
        ("products", "product_id || price || updated_at"),
        ("users", "user_id || email || country"),
        ("dead_letter_events", "topic || \"offset\" || reason"),
    ] {
        let row = client
            .query_one(
                &format!("SELECT count(*), coalesce(md5(string_agg({key}, ',' ORDER BY {key})), '') FROM {table}"),
                &[],
            )
            .await?;
        out.push((table.to_owned(), row.get(0), row.get(1)));
    }
    Ok(out)
}

/// The row counts every table must reach for `records`: line items per transaction, one row
/// per view and cart event, the latest version of each product and user, no dead letter.
pub fn expected_counts(records: &[Event]) -> Vec<(String, i64)> {
    let of = |f: fn(&Event) -> bool| records.iter().filter(|r| f(r)).count() as i64;
    let distinct = |f: fn(&Event) -> Option<&str>| {
        records
            .iter()
            .filter_map(f)
            .collect::<std::collections::HashSet<_>>()
            .len() as i64
    };
    vec![
        ("transactions".into(), lines(records)),
        (
            "product_view_events".into(),
            of(|r| matches!(r, Event::ProductView(_))),
        ),
        ("cart_events".into(), of(|r| matches!(r, Event::Cart(_)))),
        (
            "products".into(),
            distinct(|r| match r {
                Event::Product(p) => Some(p.product_id.as_str()),
                _ => None,
            }),
        ),
        (
            "users".into(),
            distinct(|r| match r {
                Event::User(u) => Some(u.user_id.as_str()),
                _ => None,
            }),
        ),
        ("dead_letter_events".into(), 0),
    ]
}

/// The row counts of [`tables`].
pub async fn counts(stack: &TestStack) -> Result<Vec<(String, i64)>> {
    counts_in(&stack.realtime_client().await?).await
}

/// [`counts`] of the realtime database `client` is connected to.
pub async fn counts_in(client: &tokio_postgres::Client) -> Result<Vec<(String, i64)>> {
    Ok(tables_in(client)
        .await?
        .into_iter()
        .map(|(table, n, _)| (table, n))
        .collect())
}

/// Line items in the records' transactions.
pub fn lines(records: &[Event]) -> i64 {
    records
        .iter()
        .map(|r| match r {
            Event::Transaction(t) => t.products.len() as i64,
            _ => 0,
        })
        .sum()
}

/// Rows in `table` of the stack's realtime database.
pub async fn rows(client: &tokio_postgres::Client, table: &str) -> Result<i64> {
    Ok(client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await?
        .get(0))
}

/// Waits until `table` has rows (the stream is mid-flow), at most 60 s.
pub async fn wait_for_rows(client: &tokio_postgres::Client, table: &str) -> Result<()> {
    let started = Instant::now();
    while rows(client, table).await? == 0 {
        ensure!(
            started.elapsed() < Duration::from_secs(60),
            "the stream saved nothing into {table} in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// The /metrics text of a binary listening on `port`.
pub fn scrape(port: u16) -> Result<String> {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

/// (metric table query, recount over the raw tables): each returns one text per row, ordered.
const ORACLES: [(&str, &str, &str); 11] = [
    (
        "sales_per_minute",
        "SELECT concat_ws('|', window_start, window_end - window_start, transaction_count,
             total_revenue, total_items, avg_order_value)
         FROM sales_per_minute ORDER BY window_start",
        "SELECT concat_ws('|', w, interval '1 minute', count(*), sum(total), sum(items),
             round(sum(total) / count(*), 2))
         FROM (SELECT date_trunc('minute', min(\"timestamp\")) AS w, min(total_amount) AS total,
                   sum(quantity) AS items
               FROM transactions GROUP BY transaction_id) t
         GROUP BY w ORDER BY w",
    ),
    (
        "sales_by_country",
        "SELECT concat_ws('|', window_start, country, transaction_count, total_revenue,
             avg_order_value)
         FROM sales_by_country ORDER BY window_start, country",
        "SELECT concat_ws('|', w, country, count(*), sum(total), round(sum(total) / count(*), 2))
         FROM (SELECT date_trunc('minute', min(\"timestamp\")) AS w, min(country) AS country,
                   min(total_amount) AS total
               FROM transactions GROUP BY transaction_id) t
         GROUP BY w, country ORDER BY w, country",
    ),
    (
        "trending_products",
        "SELECT concat_ws('|', window_start, product_id, view_count, cart_add_count,
             purchase_count, units_sold, revenue, trend_score)
         FROM trending_products ORDER BY window_start, product_id",
        "SELECT concat_ws('|', w, p, sum(v), sum(a), sum(b), sum(u), sum(r),
             (sum(v) + 3 * sum(a) + 5 * sum(b))::numeric(14, 2))
         FROM (SELECT date_trunc('minute', \"timestamp\") AS w, product_id AS p, 1 AS v, 0 AS a,
                   0 AS b, 0 AS u, 0::numeric(16, 2) AS r
               FROM product_view_events WHERE event_type = 'view'
               UNION ALL
               SELECT date_trunc('minute', \"timestamp\"), product_id, 0, 1, 0, 0, 0
               FROM cart_events WHERE event_type = 'add_to_cart'
               UNION ALL
               SELECT date_trunc('minute', \"timestamp\"), product_id, 0, 0, 1, quantity,
                   price * quantity
               FROM transactions) x
         GROUP BY w, p ORDER BY w, p",
    ),
    (
        "category_performance",
        "SELECT concat_ws('|', window_start, category, view_count, cart_add_count,
             purchase_count, units_sold, revenue)
         FROM category_performance ORDER BY window_start, category",
        "SELECT concat_ws('|', w, c, sum(v), sum(a), sum(b), sum(u), sum(r))
         FROM (SELECT date_trunc('minute', x.\"timestamp\") AS w,
                   coalesce(p.category, x.category, 'unknown') AS c, v, a, b, u, r
               FROM (SELECT \"timestamp\", product_id, category, 1 AS v, 0 AS a, 0 AS b,
                         0 AS u, 0::numeric(16, 2) AS r
                     FROM product_view_events WHERE event_type = 'view'
                     UNION ALL
                     SELECT \"timestamp\", product_id, category, 0, 1, 0, 0, 0
                     FROM cart_events WHERE event_type = 'add_to_cart'
                     UNION ALL
                     SELECT \"timestamp\", product_id, NULL, 0, 0, 1, quantity, price * quantity
                     FROM transactions) x
               LEFT JOIN products p USING (product_id)) y
         GROUP BY w, c ORDER BY w, c",
    ),
    (
        "cart_metrics",
        "SELECT concat_ws('|', window_start, country, add_to_cart_count, remove_from_cart_count,
             update_quantity_count, checkout_count, active_sessions, checkout_sessions)
         FROM cart_metrics ORDER BY window_start, country",
        "SELECT concat_ws('|', date_trunc('minute', \"timestamp\"), country,
             count(*) FILTER (WHERE event_type = 'add_to_cart'),
             count(*) FILTER (WHERE event_type = 'remove_from_cart'),
             count(*) FILTER (WHERE event_type = 'update_quantity'),
             count(*) FILTER (WHERE event_type = 'checkout'),
             count(DISTINCT session_id),
             count(DISTINCT session_id) FILTER (WHERE event_type = 'checkout'))
         FROM cart_events GROUP BY date_trunc('minute', \"timestamp\"), country
         ORDER BY date_trunc('minute', \"timestamp\"), country",
    ),
    (
        "product_stock",
        "SELECT concat_ws('|', product_id, stock, catalogue_inventory, units_sold, restocked_at)
         FROM product_stock ORDER BY product_id",
        "WITH versions AS (
             SELECT product_id, inventory, updated_at,
                 lag(inventory) OVER (PARTITION BY product_id ORDER BY updated_at) AS before
             FROM product_history
         ), restocked AS (
             SELECT DISTINCT ON (product_id) product_id, inventory, updated_at
             FROM versions WHERE before IS NULL OR before <> inventory
             ORDER BY product_id, updated_at DESC
         )
         SELECT concat_ws('|', r.product_id, r.inventory - coalesce(sum(t.quantity), 0),
             r.inventory, coalesce(sum(t.quantity), 0), r.updated_at)
         FROM restocked r
         LEFT JOIN transactions t ON t.product_id = r.product_id AND t.\"timestamp\" >= r.updated_at
         GROUP BY r.product_id, r.inventory, r.updated_at ORDER BY r.product_id",
    ),
    (
        "sales_per_hour",
        "SELECT concat_ws('|', window_start, transaction_count, total_revenue, total_items,
             avg_order_value)
         FROM sales_per_hour ORDER BY window_start",
        "SELECT concat_ws('|', w, count(*), sum(total), sum(items),
             round(sum(total) / count(*), 2))
         FROM (SELECT date_trunc('hour', min(\"timestamp\")) AS w, min(total_amount) AS total,
                   sum(quantity) AS items
               FROM transactions GROUP BY transaction_id) t
         GROUP BY w ORDER BY w",
    ),
    (
        "sales_by_category",
        "SELECT concat_ws('|', window_start, category, order_lines, units_sold, revenue)
         FROM sales_by_category ORDER BY window_start, category",
        "SELECT concat_ws('|', h, c, count(*), sum(quantity), sum(price * quantity))
         FROM (SELECT date_trunc('hour', t.\"timestamp\") AS h,
                   coalesce(p.category, 'unknown') AS c, t.quantity, t.price
               FROM transactions t LEFT JOIN products p USING (product_id)) x
         GROUP BY h, c ORDER BY h, c",
    ),
    (
        "high_demand_alerts",
        "SELECT concat_ws('|', product_id, window_start, window_end - window_start, units_sold,
             order_count)
         FROM high_demand_alerts ORDER BY product_id, window_start",
        "SELECT concat_ws('|', product_id, w, interval '10 minutes', sum(quantity), count(*))
         FROM (SELECT *, date_bin('10 minutes', \"timestamp\", '2000-01-01') AS w
               FROM transactions) t
         GROUP BY product_id, w HAVING sum(quantity) >= 20 ORDER BY product_id, w",
    ),
    (
        "high_value_anomalies",
        "SELECT concat_ws('|', transaction_id, total_amount, severity)
         FROM high_value_anomalies ORDER BY transaction_id",
        "SELECT concat_ws('|', transaction_id, total,
             CASE WHEN total >= 10000 THEN 'critical' WHEN total >= 6500 THEN 'high'
                  ELSE 'medium' END)
         FROM (SELECT transaction_id, min(total_amount) AS total FROM transactions
               GROUP BY transaction_id) t
         WHERE total >= 3000 ORDER BY transaction_id",
    ),
    (
        "high_quantity_anomalies",
        "SELECT concat_ws('|', line_item_id, quantity, severity)
         FROM high_quantity_anomalies ORDER BY line_item_id",
        "SELECT concat_ws('|', line_item_id, quantity,
             CASE WHEN quantity >= 100 THEN 'critical' WHEN quantity >= 75 THEN 'high'
                  ELSE 'medium' END)
         FROM transactions WHERE quantity >= 50 ORDER BY line_item_id",
    ),
];

pub async fn texts(client: &tokio_postgres::Client, query: &str) -> Result<Vec<String>> {
    Ok(client
        .query(query, &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect())
}

/// Asserts that every metric table has rows and equals its recount over the raw tables.
pub async fn assert_metrics_match_recounts(client: &tokio_postgres::Client) -> Result<()> {
    client.batch_execute("SET TIME ZONE 'UTC'").await?;
    for (table, metric, recount) in ORACLES {
        let saved = texts(client, metric).await?;
        assert!(!saved.is_empty(), "{table} is empty");
        let recounted = texts(client, recount).await?;
        if saved != recounted {
            // Thousands of rows: show only where they differ.
            let only = |a: &[String], b: &[String]| -> Vec<String> {
                let b: std::collections::HashSet<&String> = b.iter().collect();
                a.iter()
                    .filter(|r| !b.contains(r))
                    .take(10)
                    .cloned()
                    .collect()
            };
            panic!(
                "{table} differs from its recount:\n  saved only: {:?}\n  recount only: {:?}",
                only(&saved, &recounted),
                only(&recounted, &saved)
            );
        }
    }
    Ok(())
}
