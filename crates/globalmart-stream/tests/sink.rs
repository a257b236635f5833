//! Saving batches into a real realtime database: every generated event lands once, a replayed
//! batch adds nothing, bad messages become dead letters with their reason (once), the catalogue
//! keeps each record's newest version and every version's history, and offsets only move
//! forward.

mod common;

use std::collections::HashMap;

use anyhow::Result;
use chrono::{Duration, TimeZone, Utc};
use globalmart_core::domain::{Country, PaymentMethod};
use globalmart_core::event::{
    CartAction, CartItem, Checkout, Event, LineItem, Product, SessionEvent, Transaction,
};
use globalmart_core::topics::Topic;
use globalmart_generator::mix::{Mix, MixSettings};
use globalmart_generator::timeline::Period;
use globalmart_stream::{
    abandoned_carts, prune, refresh_statistics, stored_offsets, Batch, Received, Saved, Thresholds,
};
use globalmart_testkit::TestStack;
use rust_decimal::Decimal;

use common::assert_saved_as_modelled;

const GROUP: &str = "sink-test";

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 12, 7, 12, 0, 0)
        .single()
        .expect("valid date")
}

/// The default thresholds, the metrics counting every event of the test day (in the past).
fn thresholds() -> Thresholds {
    Thresholds {
        metrics_retention: std::time::Duration::from_secs(10 * 365 * 86_400),
        ..Thresholds::default()
    }
}

/// Messages as the broker would hand them over: JSON payloads, offsets per partition.
fn messages_of(records: &[Event]) -> Vec<Received> {
    let mut next: HashMap<(Topic, i32), i64> = HashMap::new();
    records
        .iter()
        .map(|record| {
            let partition = (record.key().bytes().map(i32::from).sum::<i32>()) % 3;
            let offset = next.entry((record.topic(), partition)).or_insert(0);
            *offset += 1;
            Received {
                topic: record.topic().name().to_owned(),
                partition,
                offset: *offset - 1,
                key: Some(record.key().as_bytes().to_vec()),
                payload: Some(record.to_json()),
            }
        })
        .collect()
}

fn batch_of(messages: &[Received]) -> Batch {
    let mut batch = Batch::default();
    for m in messages {
        let topic = Topic::from_name(&m.topic).expect("a platform topic");
        let parsed = Event::parse(topic, m.payload.as_deref().unwrap_or_default(), now());
        batch.add(m.clone(), parsed);
    }
    batch
}

/// 200 users and 50 products, whose records change at `catalogue_change_rate` per event.
fn small_shop(catalogue_change_rate: f64) -> MixSettings {
    MixSettings {
        users: 200,
        products: 50,
        anomaly_share: 0.02,
        catalogue_change_rate,
        active_sessions: 50,
    }
}

async fn count(client: &tokio_postgres::Client, table: &str) -> Result<i64> {
    Ok(client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await?
        .get(0))
}

#[tokio::test]
async fn generated_events_are_saved_once_and_a_replay_adds_nothing() -> Result<()> {
    let stack = TestStack::new().await?;
    let mut client = stack.realtime_client().await?;
    let mut mix = Mix::new(small_shop(0.01), 1, 1, Period::instant(now()));
    let mut records: Vec<Event> = mix.catalogue.events().collect();
    // About a second apart, over two hours and more (a metric window off by a second or a
    // minute shows); never at the same time: a catalogue change must not share its version's
    // time with the record it changes.
    records.extend((1..=5_000).map(|ms| mix.next(now() + Duration::milliseconds(ms * 1_001))));
    let messages = messages_of(&records);
    let batch = batch_of(&messages);
    assert_eq!(batch.len(), records.len());

    let first = batch.save(&mut client, GROUP, &thresholds()).await?;
    let lines: usize = records
        .iter()
        .map(|r| match r {
            Event::Transaction(t) => t.products.len(),
            _ => 0,
        })
        .sum();
    let of = |f: fn(&Event) -> bool| records.iter().filter(|r| f(r)).count() as i64;
    assert_eq!(count(&client, "transactions").await?, lines as i64);
    assert_eq!(
        count(&client, "product_view_events").await?,
        of(|r| matches!(r, Event::ProductView(_)))
    );
    assert_eq!(
        count(&client, "cart_events").await?,
        of(|r| matches!(r, Event::Cart(_)))
    );
    assert_eq!(
        count(&client, "product_history").await?,
        of(|r| matches!(r, Event::Product(_)))
    );
    assert_eq!(
        count(&client, "user_history").await?,
        of(|r| matches!(r, Event::User(_)))
    );
    assert_eq!(count(&client, "products").await?, 50);
    assert_eq!(count(&client, "users").await?, 200);
    assert_eq!(count(&client, "dead_letter_events").await?, 0);
    assert_eq!(first.duplicates, 0);
    assert_eq!(first.transaction_lines, lines as u64);

    // Every partition resumes right after its last message.
    let mut expected: HashMap<(String, i32), i64> = HashMap::new();
    for m in &messages {
        let next = expected.entry((m.topic.clone(), m.partition)).or_insert(0);
        *next = (*next).max(m.offset + 1);
    }
    assert_eq!(stored_offsets(&client, GROUP).await?, expected);

    // Money and timestamps survive exactly: the table's sum equals the events' sum.
    let revenue: rust_decimal::Decimal = client
        .query_one(
            "SELECT coalesce(sum(quantity * price), 0) FROM transactions",
            &[],
        )
        .await?
        .get(0);
    let expected_revenue: rust_decimal::Decimal = records
        .iter()
        .filter_map(|r| match r {
            Event::Transaction(t) => Some(t.total_amount),
            _ => None,
        })
        .sum();
    assert_eq!(revenue, expected_revenue);

    let replay = batch.save(&mut client, GROUP, &thresholds()).await?;
    let offered = first.transaction_lines
        + first.product_views
        + first.cart_events
        + first.catalogue_versions;
    assert_eq!(
        replay,
        Saved {
            duplicates: offered,
            ..Saved::default()
        }
    );
    assert_eq!(count(&client, "transactions").await?, lines as i64);
    assert_saved_as_modelled(&client, &records).await?;

    // A batch half replayed, half new: only the new half counts in the metrics.
    let mut all = records.clone();
    all.extend((5_001..=8_000).map(|ms| mix.next(now() + Duration::milliseconds(ms * 1_001))));
    let messages = messages_of(&all);
    let overlapping = batch_of(&messages[records.len() - 2_000..]);
    let saved = overlapping.save(&mut client, GROUP, &thresholds()).await?;
    assert_eq!(saved.duplicates, rows_of(&records[records.len() - 2_000..]));
    assert_saved_as_modelled(&client, &all).await?;
    Ok(())
}

#[tokio::test]
async fn a_message_read_twice_into_one_batch_is_saved_and_counted_once() -> Result<()> {
    let stack = TestStack::new().await?;
    let mut client = stack.realtime_client().await?;
    let settings = MixSettings {
        users: 100,
        products: 20,
        anomaly_share: 0.05,
        catalogue_change_rate: 0.0,
        active_sessions: 20,
    };
    let mut mix = Mix::new(settings, 3, 3, Period::instant(now()));
    let mut records: Vec<Event> = mix.catalogue.events().collect();
    records.extend((1..=2_000).map(|ms| mix.next(now() + Duration::milliseconds(ms * 1_001))));
    let messages = messages_of(&records);
    let mut twice = messages.clone();
    // Read again after a seek back (a partition reassigned mid-batch): the same offsets...
    twice.extend_from_slice(&messages[messages.len() - 500..]);
    // ...and the same events produced twice: new offsets, same payloads.
    let mut next: HashMap<(String, i32), i64> = HashMap::new();
    for m in &messages {
        let at = next.entry((m.topic.clone(), m.partition)).or_insert(0);
        *at = (*at).max(m.offset + 1);
    }
    for m in &messages[messages.len() - 300..] {
        let at = next.entry((m.topic.clone(), m.partition)).or_insert(0);
        twice.push(Received {
            offset: *at,
            ..m.clone()
        });
        *at += 1;
    }
    let saved = batch_of(&twice)
        .save(&mut client, GROUP, &thresholds())
        .await?;
    assert_eq!(
        count(&client, "product_view_events").await?,
        records
            .iter()
            .filter(|r| matches!(r, Event::ProductView(_)))
            .count() as i64
    );
    let n = records.len();
    assert_eq!(
        saved.duplicates,
        rows_of(&records[n - 500..]) + rows_of(&records[n - 300..]),
        "every repeat is reported as a duplicate"
    );
    assert_saved_as_modelled(&client, &records).await?;
    Ok(())
}

/// The rows `records` become: one per transaction line, one per other event or version.
fn rows_of(records: &[Event]) -> u64 {
    records
        .iter()
        .map(|r| match r {
            Event::Transaction(t) => t.products.len() as u64,
            _ => 1,
        })
        .sum()
}

#[tokio::test]
async fn bad_messages_become_dead_letters_with_their_reason_once() -> Result<()> {
    let stack = TestStack::new().await?;
    let mut client = stack.realtime_client().await?;
    let bad: Vec<(&[u8], &str)> = vec![
        (b"{\"transaction_id\": ", "malformed JSON"),
        (b"\xff\xfe not utf-8", "payload is not valid UTF-8"),
        (b"{\"user_id\": 42}", "invalid transaction"),
    ];
    let messages: Vec<Received> = bad
        .iter()
        .enumerate()
        .map(|(i, (payload, _))| Received {
            topic: "transactions-topic".into(),
            partition: 1,
            offset: 100 + i as i64,
            key: Some(b"USER_00000001".to_vec()),
            payload: Some(payload.to_vec()),
        })
        .collect();
    let batch = batch_of(&messages);
    assert_eq!(
        batch
            .save(&mut client, GROUP, &thresholds())
            .await?
            .dead_letters,
        3
    );
    let rows = client
        .query(
            "SELECT \"offset\", payload, reason FROM dead_letter_events ORDER BY \"offset\"",
            &[],
        )
        .await?;
    assert_eq!(rows.len(), 3);
    for (row, (payload, reason)) in rows.iter().zip(&bad) {
        assert_eq!(
            row.get::<_, Vec<u8>>(1),
            payload.to_vec(),
            "the message is kept whole"
        );
        let stored: String = row.get(2);
        assert!(
            stored.starts_with(reason),
            "{stored:?} should start with {reason:?}"
        );
    }
    assert_eq!(
        batch
            .save(&mut client, GROUP, &thresholds())
            .await?
            .dead_letters,
        0
    );
    assert_eq!(count(&client, "dead_letter_events").await?, 3);
    assert_eq!(
        stored_offsets(&client, GROUP)
            .await?
            .get(&("transactions-topic".into(), 1)),
        Some(&103)
    );
    Ok(())
}

/// New catalogue records beside changes of saved ones: the latest-version tables' COPY fails on
/// a saved key and the batch upserts them instead (`write/catalogue.rs`), keeping the history's
/// rows and the events copied before it.
#[tokio::test]
async fn new_records_and_changes_of_saved_ones_in_one_batch_keep_the_newest_and_every_version(
) -> Result<()> {
    let stack = TestStack::new().await?;
    let mut client = stack.realtime_client().await?;
    let mut mix = Mix::new(small_shop(0.05), 7, 7, Period::instant(now()));
    let mut records: Vec<Event> = mix.catalogue.events().collect();
    // The products and the first 75 users, then the other users beside events that change
    // catalogue records, saved and not.
    let saved_first = 125;
    let catalogue = records.len();
    records.extend((1..=2_000).map(|ms| mix.next(now() + Duration::milliseconds(ms * 1_001))));
    let users_saved_first: Vec<&str> = (records[..saved_first].iter())
        .filter_map(|r| match r {
            Event::User(u) => Some(u.user_id.as_str()),
            _ => None,
        })
        .collect();
    let changes_of_saved = (records[catalogue..].iter())
        .filter(|r| match r {
            Event::User(u) => users_saved_first.contains(&u.user_id.as_str()),
            Event::Product(_) => true,
            _ => false,
        })
        .count();
    assert!(
        changes_of_saved > 10,
        "{changes_of_saved} changes of saved records"
    );

    let messages = messages_of(&records);
    let first = batch_of(&messages[..saved_first])
        .save(&mut client, GROUP, &thresholds())
        .await?;
    assert_eq!(first.catalogue_versions, saved_first as u64);
    let saved = batch_of(&messages[saved_first..])
        .save(&mut client, GROUP, &thresholds())
        .await?;
    let versions = records[saved_first..]
        .iter()
        .filter(|r| matches!(r, Event::User(_) | Event::Product(_)))
        .count();
    assert_eq!(saved.catalogue_versions, versions as u64);
    assert_eq!(saved.duplicates, 0);
    assert_saved_as_modelled(&client, &records).await?;
    Ok(())
}

#[tokio::test]
async fn the_catalogue_keeps_the_newest_version_and_every_version_in_history() -> Result<()> {
    let stack = TestStack::new().await?;
    let mut client = stack.realtime_client().await?;
    let product = |price: &str, hours: i64| Product {
        product_id: "PROD_00000001".into(),
        name: "Kettle".into(),
        category: "Small Appliances".into(),
        price: price.parse().expect("decimal"),
        inventory: 10,
        rating: "4.0".parse().expect("decimal"),
        updated_at: now() - Duration::hours(hours),
    };
    let one = |p: Product, offset: i64| {
        let mut batch = Batch::default();
        let message = Received {
            topic: "products-topic".into(),
            partition: 0,
            offset,
            key: Some(p.product_id.as_bytes().to_vec()),
            payload: None,
        };
        batch.add(message, Ok(Event::Product(p)));
        batch
    };
    // The newer version arrives first, the older one after it (a late message).
    one(product("25.00", 1), 0)
        .save(&mut client, GROUP, &thresholds())
        .await?;
    one(product("20.00", 2), 1)
        .save(&mut client, GROUP, &thresholds())
        .await?;
    let price: rust_decimal::Decimal = client
        .query_one(
            "SELECT price FROM products WHERE product_id = 'PROD_00000001'",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(price.to_string(), "25.00");
    assert_eq!(count(&client, "product_history").await?, 2);
    Ok(())
}

#[tokio::test]
async fn stored_offsets_only_move_forward() -> Result<()> {
    let stack = TestStack::new().await?;
    let mut client = stack.realtime_client().await?;
    let at = |offset: i64| {
        let mut batch = Batch::default();
        let message = Received {
            topic: "cart-events-topic".into(),
            partition: 2,
            offset,
            key: None,
            payload: Some(b"not json".to_vec()),
        };
        let parsed = Event::parse(Topic::CartEvents, b"not json", now());
        batch.add(message, parsed);
        batch
    };
    at(10).save(&mut client, GROUP, &thresholds()).await?;
    // An instance that lost the partition saves an older batch late.
    at(5).save(&mut client, GROUP, &thresholds()).await?;
    assert_eq!(
        stored_offsets(&client, GROUP)
            .await?
            .get(&("cart-events-topic".into(), 2)),
        Some(&11)
    );
    Ok(())
}

/// A cart event of `session` at `minutes` after 10:00 (UTC, on the test day).
fn cart(session: &str, minutes: i64, action: CartAction) -> Event {
    Event::Cart(SessionEvent {
        event_id: uuid::Uuid::new_v4(),
        timestamp: now() - Duration::hours(2) + Duration::minutes(minutes),
        user_id: "USER_00000001".into(),
        session_id: session.into(),
        country: Country::Germany,
        action,
    })
}

fn item(cart_size: i32) -> CartItem {
    CartItem {
        product_id: "PROD_00000001".into(),
        product_name: "Kettle".into(),
        category: "Kitchen".into(),
        price: Decimal::from(20),
        quantity: 1,
        cart_size,
        cart_value: Decimal::from(20 * cart_size),
    }
}

/// The checkout of a cart holding [`item`]'s one kettle.
fn checkout_of_item() -> Checkout {
    Checkout {
        items: vec![LineItem {
            product_id: "PROD_00000001".into(),
            quantity: 1,
            price: Decimal::from(20),
        }],
        total_items: 1,
        total_value: Decimal::from(20),
        cart_size: 1,
    }
}

#[tokio::test]
async fn an_abandoned_cart_is_recorded_once_and_a_checkout_in_time_never() -> Result<()> {
    let stack = TestStack::new().await?;
    let mut client = stack.realtime_client().await?;
    let checkout = checkout_of_item();
    let records = vec![
        // Abandoned: an item, then nothing for 45 minutes.
        cart("abandoned", 0, CartAction::AddToCart(item(1))),
        // Checked out 10 minutes after adding: within the 30-minute timeout.
        cart("bought", 0, CartAction::AddToCart(item(1))),
        cart("bought", 10, CartAction::Checkout(checkout)),
        // Emptied again: nothing left to abandon.
        cart("emptied", 0, CartAction::AddToCart(item(1))),
        cart("emptied", 1, CartAction::RemoveFromCart(item(0))),
        // Still shopping: the newest event, 45 minutes on, is "now" for the sweep.
        cart("shopping", 45, CartAction::AddToCart(item(1))),
    ];
    batch_of(&messages_of(&records))
        .save(&mut client, GROUP, &thresholds())
        .await?;

    let timeout = std::time::Duration::from_secs(30 * 60);
    assert_eq!(abandoned_carts(&client, timeout, None).await?.recorded, 1);
    assert_eq!(
        abandoned_carts(&client, timeout, None).await?.recorded,
        0,
        "a second sweep adds nothing"
    );
    let recorded = carts_and_items(&client).await?;
    assert_eq!(
        recorded,
        vec![("abandoned".to_owned(), serde_json::json!(["PROD_00000001"]))]
    );
    // Counted in the window of its last activity: 1 of the 3 sessions active then.
    let (abandoned, active, rate): (i64, i64, Decimal) = client
        .query_one(
            "SELECT abandoned_sessions, active_sessions, abandonment_rate_pct FROM cart_metrics
             WHERE window_start = $1 AND country = 'Germany'",
            &[&(now() - Duration::hours(2))],
        )
        .await
        .map(|r| (r.get(0), r.get(1), r.get(2)))?;
    assert_eq!((abandoned, active), (1, 3));
    assert_eq!(rate, Decimal::new(3333, 2));
    Ok(())
}

/// `event` as `user`'s: another key, so (in [`messages_of`]) another partition.
fn of_user(mut event: Event, user: &str) -> Event {
    if let Event::Cart(cart) = &mut event {
        cart.user_id = user.into();
    }
    event
}

/// The sessions in abandoned_carts with the items recorded.
async fn carts_and_items(
    client: &tokio_postgres::Client,
) -> Result<Vec<(String, serde_json::Value)>> {
    let rows = client
        .query(
            "SELECT session_id, items FROM abandoned_carts ORDER BY 1",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The sessions in abandoned_carts.
async fn abandoned(client: &tokio_postgres::Client) -> Result<Vec<String>> {
    let rows = (client.query("SELECT session_id FROM abandoned_carts ORDER BY 1", &[])).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

#[tokio::test]
async fn abandonment_waits_for_the_slowest_partition_and_judges_a_backfill_jump_whole() -> Result<()>
{
    let stack = TestStack::new().await?;
    let mut client = stack.realtime_client().await?;
    let timeout = std::time::Duration::from_secs(30 * 60);
    let checkout = checkout_of_item();
    // Three days back (minutes before 12:00 on the test day), as a backfill replays them.
    let day = 24 * 60;
    let other = "USER_00000002";
    let records = vec![
        // 1. USER_00000001's partition has reached -3 days + 120 min, the other's -3 days: its
        // session "paying" has a cart, and its checkout (10 minutes later) is not saved yet.
        cart("ahead", 120 - 3 * day, CartAction::AddToCart(item(1))),
        of_user(
            cart("paying", -3 * day, CartAction::AddToCart(item(1))),
            other,
        ),
        // 2. The other partition catches up: "paying" checks out, "quiet" stops at +20.
        of_user(
            cart("paying", 10 - 3 * day, CartAction::Checkout(checkout)),
            other,
        ),
        of_user(
            cart("quiet", 20 - 3 * day, CartAction::AddToCart(item(1))),
            other,
        ),
        of_user(
            cart("busy", 120 - 3 * day, CartAction::AddToCart(item(1))),
            other,
        ),
        // 3. Three days of event time between two sweeps, in both partitions.
        cart("later", 200 - 3 * day, CartAction::AddToCart(item(1))),
        cart("today", 120, CartAction::AddToCart(item(1))),
        of_user(
            cart("today-too", 120, CartAction::AddToCart(item(1))),
            other,
        ),
    ];
    let messages = messages_of(&records);
    assert_ne!(
        messages[0].partition, messages[1].partition,
        "the two users share a partition"
    );
    let thresholds = thresholds();
    batch_of(&messages[0..2])
        .save(&mut client, GROUP, &thresholds)
        .await?;
    assert_eq!(
        abandoned_carts(&client, timeout, None).await?.recorded,
        0,
        "the newest cart event is 2 hours after \"paying\", but its partition is not"
    );
    batch_of(&messages[2..5])
        .save(&mut client, GROUP, &thresholds)
        .await?;
    abandoned_carts(&client, timeout, None).await?;
    assert_eq!(abandoned(&client).await?, ["quiet"]);
    batch_of(&messages[5..8])
        .save(&mut client, GROUP, &thresholds)
        .await?;
    abandoned_carts(&client, timeout, None).await?;
    assert_eq!(
        abandoned(&client).await?,
        ["ahead", "busy", "later", "quiet"],
        "the sessions quiet for more than a day before the sweep are judged too"
    );
    Ok(())
}

/// The event time of a cart event.
fn time_of(event: &Event) -> chrono::DateTime<Utc> {
    match event {
        Event::Cart(cart) => cart.timestamp,
        _ => unreachable!("a cart event"),
    }
}

#[tokio::test]
async fn a_sweep_judges_the_sessions_quiet_since_the_one_before_and_a_late_one_at_a_full_sweep(
) -> Result<()> {
    let stack = TestStack::new().await?;
    let mut client = stack.realtime_client().await?;
    let timeout = std::time::Duration::from_secs(30 * 60);
    let thresholds = thresholds();
    // "shopping" goes on all along: its newest event is "now" for every sweep.
    let rounds = [
        vec![
            cart("first", 0, CartAction::AddToCart(item(1))),
            cart("shopping", 40, CartAction::AddToCart(item(1))),
        ],
        vec![
            cart("second", 20, CartAction::AddToCart(item(1))),
            cart("shopping", 70, CartAction::AddToCart(item(2))),
        ],
        // "late" comes after a sweep's cutoff has passed its time.
        vec![
            cart("late", 5, CartAction::AddToCart(item(1))),
            cart("shopping", 100, CartAction::AddToCart(item(3))),
        ],
    ];
    let cutoffs: Vec<_> = rounds
        .iter()
        .map(|round| time_of(&round[1]) - Duration::minutes(30))
        .collect();
    // One partition's messages (two a round), offsets following on from one round to the next.
    let messages = messages_of(&rounds.concat());
    let mut sweeps = Vec::new();
    let mut after = None;
    for round in messages.chunks(2) {
        batch_of(round)
            .save(&mut client, GROUP, &thresholds)
            .await?;
        let sweep = abandoned_carts(&client, timeout, after).await?;
        after = sweep.judged_to;
        sweeps.push(sweep);
    }
    assert_eq!(
        sweeps.iter().map(|s| s.recorded).collect::<Vec<_>>(),
        [1, 1, 0],
        "a full sweep, then two from the cutoff before"
    );
    assert_eq!(
        sweeps.iter().map(|s| s.judged_to).collect::<Vec<_>>(),
        cutoffs.into_iter().map(Some).collect::<Vec<_>>()
    );
    assert_eq!(abandoned(&client).await?, ["first", "second"]);
    assert_eq!(
        abandoned_carts(&client, timeout, None).await?.recorded,
        1,
        "a full sweep judges the late session"
    );
    assert_eq!(abandoned(&client).await?, ["first", "late", "second"]);
    Ok(())
}

#[tokio::test]
async fn a_backfill_of_older_days_is_judged_in_its_own_time_not_as_of_the_newer_events(
) -> Result<()> {
    let stack = TestStack::new().await?;
    let mut client = stack.realtime_client().await?;
    let timeout = std::time::Duration::from_secs(30 * 60);
    let thresholds = thresholds();
    // One partition (one user): events of now, then a backfill of ten hours before, in order.
    let records = vec![
        cart("recent", 120, CartAction::AddToCart(item(1))),
        cart("first", -700, CartAction::AddToCart(item(1))),
        cart("paying", -600, CartAction::AddToCart(item(1))),
        cart("quiet", -600, CartAction::AddToCart(item(1))),
        cart("clock", -590, CartAction::AddToCart(item(1))),
        // Read after the sweep below: by then the partition had reached -590 only.
        cart("paying", -580, CartAction::Checkout(checkout_of_item())),
        cart("clock", -500, CartAction::AddToCart(item(1))),
    ];
    let messages = messages_of(&records);
    assert!(
        messages
            .iter()
            .all(|m| m.partition == messages[0].partition),
        "one partition"
    );
    let mut after = None;
    for (batch, abandoned_by_then) in [
        (0..1, vec![]),
        // The cutoff is behind the one before: the sweep looks back and judges "first" (quiet
        // for 110 minutes by the backfill's time), not "paying" (its checkout is yet to come).
        (1..5, vec!["first"]),
        (5..7, vec!["first", "quiet"]),
    ] {
        batch_of(&messages[batch])
            .save(&mut client, GROUP, &thresholds)
            .await?;
        after = abandoned_carts(&client, timeout, after).await?.judged_to;
        assert_eq!(abandoned(&client).await?, abandoned_by_then);
    }
    Ok(())
}

#[tokio::test]
async fn a_session_is_judged_by_its_cart_events_from_a_day_before_the_sweeps_window() -> Result<()>
{
    let stack = TestStack::new().await?;
    let mut client = stack.realtime_client().await?;
    let timeout = std::time::Duration::from_secs(30 * 60);
    let toaster = CartItem {
        product_id: "PROD_00000002".into(),
        ..item(1)
    };
    let day = 24 * 60;
    // "returned" bought a toaster three days ago and comes back to a kettle it leaves in its
    // cart; "paid" checks out within the day, before its last cart event.
    let records = vec![
        cart("returned", -3 * day, CartAction::AddToCart(toaster)),
        cart(
            "returned",
            5 - 3 * day,
            CartAction::Checkout(checkout_of_item()),
        ),
        cart("paid", -120, CartAction::AddToCart(item(1))),
        cart("paid", -110, CartAction::Checkout(checkout_of_item())),
        cart("paid", 0, CartAction::AddToCart(item(1))),
        cart("returned", 0, CartAction::AddToCart(item(1))),
        cart("shopping", 45, CartAction::AddToCart(item(1))),
    ];
    batch_of(&messages_of(&records))
        .save(&mut client, GROUP, &thresholds())
        .await?;
    // A sweep from the cutoff of one a minute before the sessions' last events.
    let before = time_of(&records[5]) - Duration::minutes(1);
    let sweep = abandoned_carts(&client, timeout, Some(before)).await?;
    assert_eq!(sweep.recorded, 1);
    let recorded = carts_and_items(&client).await?;
    assert_eq!(
        recorded,
        vec![("returned".to_owned(), serde_json::json!(["PROD_00000001"]))],
        "the checkout and the toaster of three days before are another visit's"
    );
    Ok(())
}

#[tokio::test]
async fn the_cart_events_are_analysed_until_they_have_statistics_then_once_a_day() -> Result<()> {
    let stack = TestStack::new().await?;
    let mut client = stack.realtime_client().await?;
    assert!(refresh_statistics(&client).await?, "never analysed");
    let records: Vec<Event> = (0..20)
        .map(|i| {
            cart(
                &format!("session-{}", i % 5),
                i,
                CartAction::AddToCart(item(1)),
            )
        })
        .collect();
    batch_of(&messages_of(&records))
        .save(&mut client, GROUP, &thresholds())
        .await?;
    let sessions = "SELECT count(*) FROM pg_stats WHERE tablename = 'cart_events'
                    AND attname = 'session_id' AND inherited AND n_distinct <> 0";
    assert_eq!(client.query_one(sessions, &[]).await?.get::<_, i64>(0), 0);
    assert!(
        refresh_statistics(&client).await?,
        "analysed while empty: no statistics yet"
    );
    assert_eq!(
        client.query_one(sessions, &[]).await?.get::<_, i64>(0),
        1,
        "the sessions of the cart events as a whole"
    );
    assert!(
        !refresh_statistics(&client).await?,
        "analysed less than a day ago"
    );
    Ok(())
}

/// Kettle's catalogue record with `inventory`, as of `minutes` after 10:00.
fn kettle(inventory: i32, minutes: i64) -> Event {
    Event::Product(Product {
        product_id: "PROD_00000001".into(),
        name: "Kettle".into(),
        category: "Kitchen".into(),
        price: Decimal::from(20),
        inventory,
        rating: Decimal::from(4),
        updated_at: now() - Duration::hours(2) + Duration::minutes(minutes),
    })
}

/// A sale of `units` kettles at `minutes` after 10:00.
fn sale(units: i32, minutes: i64) -> Event {
    Event::Transaction(Transaction {
        transaction_id: uuid::Uuid::new_v4(),
        user_id: "USER_00000001".into(),
        session_id: None,
        timestamp: now() - Duration::hours(2) + Duration::minutes(minutes),
        products: vec![LineItem {
            product_id: "PROD_00000001".into(),
            quantity: units,
            price: Decimal::from(20),
        }],
        total_amount: Decimal::from(20 * units),
        payment_method: PaymentMethod::PayPal,
        country: Country::Germany,
    })
}

#[tokio::test]
async fn stock_is_the_last_restock_less_the_units_sold_since_and_low_stock_fires_once_per_crossing(
) -> Result<()> {
    let stack = TestStack::new().await?;
    let mut client = stack.realtime_client().await?;
    let thresholds = thresholds(); // low stock below 10
    let mut history = vec![kettle(12, 0), sale(2, 1)];
    let save = |records: &[Event]| batch_of(&messages_of(records));
    save(&history).save(&mut client, GROUP, &thresholds).await?;
    let level = |row: tokio_postgres::Row| (row.get::<_, i32>(0), row.get::<_, i64>(1));
    let query = "SELECT stock, (SELECT count(*) FROM restock_alerts WHERE alert_type = 'low_stock')
                 FROM product_stock WHERE product_id = 'PROD_00000001'";
    assert_eq!(
        level(client.query_one(query, &[]).await?),
        (10, 0),
        "at 10: not below"
    );

    // Crossing below 10 fires once; selling further does not fire again.
    history.extend([sale(3, 2), sale(1, 3)]);
    save(&history).save(&mut client, GROUP, &thresholds).await?;
    assert_eq!(level(client.query_one(query, &[]).await?), (6, 1));
    // The whole history again (a replay) changes nothing.
    save(&history).save(&mut client, GROUP, &thresholds).await?;
    assert_eq!(level(client.query_one(query, &[]).await?), (6, 1));

    // A restock to 50, a sale before it arriving late (already in the 50), then one after it:
    // 50 - 45; crossing again fires a second alert.
    history.extend([kettle(50, 5), sale(4, 4), sale(45, 6)]);
    save(&history).save(&mut client, GROUP, &thresholds).await?;
    assert_eq!(level(client.query_one(query, &[]).await?), (5, 2));

    // A restock to 12, then all 12 sold at once: from not low straight to empty is one
    // out-of-stock alert (critical), not a low-stock one.
    history.extend([kettle(12, 8), sale(12, 9)]);
    save(&history).save(&mut client, GROUP, &thresholds).await?;
    assert_eq!(level(client.query_one(query, &[]).await?), (0, 2));
    let out: Vec<(String, i32)> = client
        .query(
            "SELECT a.severity, r.current_stock FROM restock_alerts r
             JOIN alerts a ON a.alert_key LIKE 'out_of_stock:' || r.product_id || ':%'
             WHERE r.alert_type = 'out_of_stock'",
            &[],
        )
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(out, [("critical".to_owned(), 0)]);
    Ok(())
}

#[tokio::test]
async fn a_sales_pace_that_would_empty_the_stock_within_the_horizon_warns_once_per_restock(
) -> Result<()> {
    let stack = TestStack::new().await?;
    let mut client = stack.realtime_client().await?;
    let thresholds = thresholds(); // 24 hours
    let alerts = "SELECT current_stock, units_per_hour, hours_until_stockout, threshold
                  FROM restock_alerts WHERE alert_type = 'restock_needed' ORDER BY triggered_at";
    let warned = |rows: Vec<tokio_postgres::Row>| -> Vec<(i32, Decimal, Decimal, i32)> {
        rows.iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect()
    };
    // 100 in stock; 2 sold in the last hour: 98 left lasts 49 hours, no warning.
    let mut history = vec![kettle(100, 0), sale(2, 1)];
    batch_of(&messages_of(&history))
        .save(&mut client, GROUP, &thresholds)
        .await?;
    assert!(warned(client.query(alerts, &[]).await?).is_empty());

    // 5 in the last hour: 95 left lasts 19 hours, one warning; a later sale does not repeat it,
    // nor does saving everything again.
    for next in [Some(sale(3, 2)), Some(sale(5, 3)), None] {
        history.extend(next);
        batch_of(&messages_of(&history))
            .save(&mut client, GROUP, &thresholds)
            .await?;
        assert_eq!(
            warned(client.query(alerts, &[]).await?),
            vec![(95, Decimal::from(5), Decimal::new(1900, 2), 120)]
        );
    }

    // After a restock to 200, selling 10 more (20 in the last hour, 190 left: 9.5 hours) warns
    // again.
    history.extend([kettle(200, 5), sale(10, 6)]);
    batch_of(&messages_of(&history))
        .save(&mut client, GROUP, &thresholds)
        .await?;
    assert_eq!(
        warned(client.query(alerts, &[]).await?),
        vec![
            (95, Decimal::from(5), Decimal::new(1900, 2), 120),
            (190, Decimal::from(20), Decimal::new(950, 2), 480)
        ]
    );
    let published: i64 = client
        .query_one(
            "SELECT count(*) FROM alerts WHERE alert_type = 'restock_needed' AND severity = 'medium'",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(published, 2);
    Ok(())
}

/// The pace and the demand of a product's sales are counted from its sale lines saved, this
/// batch's among them: the same warning and demand whether its sales come in one batch or one
/// batch each.
#[tokio::test]
async fn stock_alerts_are_the_same_whether_a_products_sales_come_in_one_batch_or_one_each(
) -> Result<()> {
    // 24 hours, 20 units in 10 minutes. 300 in stock since 06:00; 2, 3, 4 and 12 sold from
    // 10:01 to 10:08: 21 units in the hour and in the 10:00 window, and 279 left, which lasts
    // 13.3 hours (only after the fourth sale is it under 24); one more at 10:15, in a batch of
    // its own.
    let thresholds = thresholds();
    let sales = [sale(2, 1), sale(3, 2), sale(4, 5), sale(12, 8)];
    let alerts = "SELECT alert_type || ' ' || current_stock || ' ' || units_per_hour || ' '
                      || to_char(triggered_at AT TIME ZONE 'UTC', 'HH24:MI')
                  FROM restock_alerts
                  UNION ALL
                  SELECT 'demand ' || to_char(window_start AT TIME ZONE 'UTC', 'HH24:MI') || ' '
                      || units_sold || ' ' || order_count
                  FROM high_demand_alerts ORDER BY 1";
    for one_batch in [true, false] {
        let stack = TestStack::new().await?;
        let mut client = stack.realtime_client().await?;
        let mut history = vec![kettle(300, -240)];
        let batches: Vec<&[Event]> = if one_batch {
            vec![&sales[..]]
        } else {
            sales.chunks(1).collect()
        };
        for batch in batches {
            history.extend(batch.iter().cloned());
            batch_of(&messages_of(&history))
                .save(&mut client, GROUP, &thresholds)
                .await?;
        }
        history.push(sale(1, 15));
        batch_of(&messages_of(&history))
            .save(&mut client, GROUP, &thresholds)
            .await?;
        assert_eq!(
            common::texts(&client, alerts).await?,
            ["demand 10:00 21 4", "restock_needed 279 21.00 10:08"],
            "sales in one batch: {one_batch}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn two_big_orders_in_a_minute_are_one_suspicious_pattern_however_often_saved() -> Result<()> {
    let stack = TestStack::new().await?;
    let mut client = stack.realtime_client().await?;
    let thresholds = thresholds(); // orders of 1000 or more
    let query = "SELECT order_count, cardinality(transaction_ids) FROM suspicious_patterns";
    let patterns = |rows: Vec<tokio_postgres::Row>| -> Vec<(i32, i32)> {
        rows.iter().map(|r| (r.get(0), r.get(1))).collect()
    };
    // 1000 and 1000 in one minute; 980 (too small) in it too; 1000 in the next minute.
    let mut history = vec![sale(50, 20), sale(50, 20), sale(49, 20), sale(50, 21)];
    batch_of(&messages_of(&history))
        .save(&mut client, GROUP, &thresholds)
        .await?;
    assert_eq!(patterns(client.query(query, &[]).await?), vec![(2, 2)]);
    // Saved again: the same one pattern.
    batch_of(&messages_of(&history))
        .save(&mut client, GROUP, &thresholds)
        .await?;
    assert_eq!(patterns(client.query(query, &[]).await?), vec![(2, 2)]);
    // A third big order in the same minute joins it.
    history.push(sale(60, 20));
    batch_of(&messages_of(&history))
        .save(&mut client, GROUP, &thresholds)
        .await?;
    assert_eq!(patterns(client.query(query, &[]).await?), vec![(3, 3)]);
    Ok(())
}

#[tokio::test]
async fn metric_windows_past_the_retention_are_pruned_and_the_newer_kept() -> Result<()> {
    let stack = TestStack::new().await?;
    let mut client = stack.realtime_client().await?;
    let history = vec![sale(2, 0), sale(3, 90)]; // at 10:00 and 11:30
    batch_of(&messages_of(&history))
        .save(&mut client, GROUP, &thresholds())
        .await?;
    // Windows that started before 11:00 are past the retention.
    let eleven = now() - Duration::hours(1);
    let retention = (Utc::now() - eleven).to_std()?;
    // The 10:00 rows of sales and sales by country.
    assert_eq!(prune(&client, retention).await?, 2);
    assert_only_window(&client, eleven + Duration::minutes(30)).await?;
    // The product activity is read from the sale lines, which raw retention keeps by the day.
    let ten = eleven - Duration::hours(1);
    assert_windows_from_events(&client, &[ten, eleven + Duration::minutes(30)]).await
}

/// Asserts that every metric table a sale counts in holds one window, `at`.
async fn assert_only_window(
    client: &tokio_postgres::Client,
    at: chrono::DateTime<Utc>,
) -> Result<()> {
    for table in ["sales_per_minute", "sales_by_country"] {
        assert_eq!(windows(client, table).await?, vec![at], "{table}");
    }
    Ok(())
}

/// Asserts that the product activity's views hold the windows `at`, those of the sale lines
/// saved.
async fn assert_windows_from_events(
    client: &tokio_postgres::Client,
    at: &[chrono::DateTime<Utc>],
) -> Result<()> {
    for table in ["trending_products", "category_performance"] {
        assert_eq!(windows(client, table).await?, at, "{table}");
    }
    Ok(())
}

/// The window starts of `table`, earliest first.
async fn windows(
    client: &tokio_postgres::Client,
    table: &str,
) -> Result<Vec<chrono::DateTime<Utc>>> {
    let query = format!("SELECT window_start FROM {table} ORDER BY window_start");
    Ok((client.query(&query, &[]).await?)
        .iter()
        .map(|r| r.get(0))
        .collect())
}

#[tokio::test]
async fn an_event_older_than_the_metrics_retention_is_saved_and_counted_in_no_tallied_window(
) -> Result<()> {
    let stack = TestStack::new().await?;
    let mut client = stack.realtime_client().await?;
    // Windows from 11:00 on are kept: the sale at 10:00 is older, the one at 11:30 is not; a
    // restock of 100 at 9:50.
    let thresholds = Thresholds {
        metrics_retention: (Utc::now() - (now() - Duration::hours(1))).to_std()?,
        ..Thresholds::default()
    };
    let history = vec![kettle(100, -10), sale(2, 0), sale(3, 90)];
    let saved = batch_of(&messages_of(&history))
        .save(&mut client, GROUP, &thresholds)
        .await?;
    assert_eq!(saved.transaction_lines, 2);
    assert_only_window(&client, now() - Duration::minutes(30)).await?;
    // The product activity, read from the sale lines saved, has both.
    let (ten, half_past_eleven) = (now() - Duration::hours(2), now() - Duration::minutes(30));
    assert_windows_from_events(&client, &[ten, half_past_eleven]).await?;
    // Stock counts every sale, whatever its age.
    let stock = client
        .query_one("SELECT stock, units_sold FROM product_stock", &[])
        .await?;
    assert_eq!((stock.get::<_, i32>(0), stock.get::<_, i64>(1)), (95, 5));
    Ok(())
}

#[tokio::test]
async fn sales_saved_before_their_product_count_under_its_category_once_it_arrives() -> Result<()> {
    let stack = TestStack::new().await?;
    let mut client = stack.realtime_client().await?;
    let thresholds = thresholds();
    // Kettles sold before the kettle's catalogue record reached the stream (another partition,
    // another topic: nothing orders them).
    let sales = [sale(2, 1), sale(3, 62)];
    batch_of(&messages_of(&sales))
        .save(&mut client, GROUP, &thresholds)
        .await?;
    let categories = "SELECT DISTINCT category FROM category_performance";
    assert_eq!(common::texts(&client, categories).await?, ["unknown"]);
    // A cart add in the first sale's minute names the kettle's category: that minute's counts
    // move to it, the other minute's stay under 'unknown' until the catalogue says.
    let named = [cart("s1", 1, CartAction::AddToCart(item(1)))];
    batch_of(&messages_of(&named))
        .save(&mut client, GROUP, &thresholds)
        .await?;
    let per_window = "SELECT category || ' ' || purchase_count || ' ' || cart_add_count
                      FROM category_performance ORDER BY window_start";
    assert_eq!(
        common::texts(&client, per_window).await?,
        ["Kitchen 1 1", "unknown 1 0"]
    );
    let record = [kettle(12, 0)];
    batch_of(&messages_of(&record))
        .save(&mut client, GROUP, &thresholds)
        .await?;
    let all: Vec<Event> = sales.into_iter().chain(named).chain(record).collect();
    assert_saved_as_modelled(&client, &all).await?;
    Ok(())
}
