//! Properties of the generated stream, on 100k events from the library: the 60/30/10 mix,
//! validity, transactions that follow their own checkout, determinism, catalogue changes and
//! the anomaly share.

use std::collections::HashMap;

use chrono::{DateTime, TimeZone, Utc};
use globalmart_core::event::{CartAction, Event, LineItem};
use globalmart_generator::mix::{Mix, MixSettings};
use globalmart_generator::timeline::{Period, Shape};
use rust_decimal::Decimal;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 12, 7, 12, 0, 0)
        .single()
        .expect("valid date")
}

fn settings(anomaly_share: f64) -> MixSettings {
    MixSettings {
        users: 2_000,
        products: 300,
        anomaly_share,
        catalogue_change_rate: 0.005,
        active_sessions: 200,
    }
}

/// `n` records (events and catalogue changes) from a fresh mix.
fn generate(seed: u64, anomaly_share: f64, n: usize) -> (Mix, Vec<Event>) {
    let mut mix = Mix::new(settings(anomaly_share), seed, seed, Period::instant(now()));
    let events = (0..n).map(|_| mix.next(now())).collect();
    (mix, events)
}

fn is_anomalous(lines: &[LineItem], total: Decimal) -> bool {
    total >= Decimal::from(3000) || lines.iter().any(|l| l.quantity >= 50)
}

#[test]
fn the_mix_stays_60_30_10_within_two_points() {
    let (_, records) = generate(1, 0.02, 100_000);
    let mut seen = [0u64; 3];
    for (i, record) in records.iter().enumerate() {
        match record {
            Event::ProductView(_) => seen[0] += 1,
            Event::Cart(_) => seen[1] += 1,
            Event::Transaction(_) => seen[2] += 1,
            Event::Product(_) | Event::User(_) => {}
        }
        let total: u64 = seen.iter().sum();
        // From the first thousand events on, at every point of the stream.
        if total >= 1_000 && i % 997 == 0 {
            for (count, target) in seen.iter().zip([60.0, 30.0, 10.0]) {
                let share = 100.0 * *count as f64 / total as f64;
                assert!(
                    (share - target).abs() <= 2.0,
                    "{share:.2} % vs {target} % after {total} events"
                );
            }
        }
    }
    assert!(seen.iter().sum::<u64>() > 99_000);
}

#[test]
fn every_record_passes_validation_and_reads_back_from_its_message() {
    let (mix, records) = generate(2, 0.02, 100_000);
    for record in records
        .iter()
        .chain(mix.catalogue.events().collect::<Vec<_>>().iter())
    {
        if let Err(reason) = record.validate(now()) {
            panic!("{reason}: {record:?}");
        }
        // What the stream will read: the message, parsed and validated.
        let json = record.to_json();
        match Event::parse(record.topic(), &json, now()) {
            Ok(parsed) => assert_eq!(&parsed, record, "{}", String::from_utf8_lossy(&json)),
            Err(reason) => panic!("{reason}: {}", String::from_utf8_lossy(&json)),
        }
    }
}

#[test]
fn every_transaction_follows_a_checkout_of_its_session_with_the_same_lines() {
    let (_, records) = generate(3, 0.02, 100_000);
    let mut checkouts: HashMap<(String, String), Vec<LineItem>> = HashMap::new();
    let mut transactions = 0;
    for record in &records {
        match record {
            Event::Cart(c) => {
                if let CartAction::Checkout(k) = &c.action {
                    let previous = checkouts
                        .insert((c.user_id.clone(), c.session_id.clone()), k.items.clone());
                    assert!(
                        previous.is_none(),
                        "session {} checked out twice",
                        c.session_id
                    );
                }
            }
            Event::Transaction(t) => {
                let session = t
                    .session_id
                    .clone()
                    .expect("our transactions name their session");
                let lines = checkouts
                    .remove(&(t.user_id.clone(), session.clone()))
                    .unwrap_or_else(|| {
                        panic!("transaction {} has no earlier checkout", t.transaction_id)
                    });
                assert_eq!(
                    t.products, lines,
                    "transaction {} differs from its checkout",
                    t.transaction_id
                );
                transactions += 1;
            }
            _ => {}
        }
    }
    assert!(transactions > 9_000, "{transactions}");
    // Checkouts not yet paid are at most the few still in the payment queue.
    assert!(
        checkouts.len() <= 5,
        "{} checkouts never paid",
        checkouts.len()
    );
}

#[test]
fn sessions_also_end_without_buying() {
    let (_, records) = generate(4, 0.02, 100_000);
    let mut carts: HashMap<String, bool> = HashMap::new();
    for record in &records {
        if let Event::Cart(c) = record {
            let checked_out = matches!(c.action, CartAction::Checkout(_));
            *carts.entry(c.session_id.clone()).or_default() |= checked_out;
        }
    }
    let abandoned = carts.values().filter(|bought| !**bought).count();
    assert!(
        abandoned > 100,
        "only {abandoned} of {} carts were abandoned",
        carts.len()
    );
}

#[test]
fn the_same_seed_gives_the_same_stream_and_another_seed_does_not() {
    let json = |records: &[Event]| records.iter().map(Event::to_json).collect::<Vec<_>>();
    let (_, first) = generate(5, 0.02, 20_000);
    let (_, again) = generate(5, 0.02, 20_000);
    let (_, other) = generate(6, 0.02, 20_000);
    assert_eq!(json(&first), json(&again));
    assert_ne!(json(&first), json(&other));
    let catalogue = |seed| {
        Mix::new(settings(0.02), seed, 1, Period::instant(now()))
            .catalogue
            .events()
            .map(|e| e.to_json())
            .collect::<Vec<_>>()
    };
    assert_eq!(catalogue(9), catalogue(9));
    assert_ne!(catalogue(9), catalogue(10));
}

#[test]
fn catalogue_changes_appear_and_change_something() {
    let (mix, records) = generate(7, 0.02, 100_000);
    let initial = Mix::new(settings(0.02), 7, 7, Period::instant(now())).catalogue;
    let products = records
        .iter()
        .filter(|r| matches!(r, Event::Product(_)))
        .count();
    let users = records
        .iter()
        .filter(|r| matches!(r, Event::User(_)))
        .count();
    assert!(
        products > 100 && users > 100,
        "{products} product and {users} user changes"
    );
    let changed_products = mix
        .catalogue
        .products
        .iter()
        .zip(&initial.products)
        .filter(|(now, then)| {
            now.price != then.price || now.inventory != then.inventory || now.name != then.name
        })
        .count();
    // Customers are derived from the seed; the changed ones are held with their latest version.
    let changed = mix.catalogue.customers.changed();
    let first = |i: &u32| initial.customers.first_version(*i);
    let moved_users = changed
        .iter()
        .filter(|(i, now)| now.country != first(i).country)
        .count();
    let new_emails = changed
        .iter()
        .filter(|(i, now)| now.email != first(i).email)
        .count();
    assert!(changed_products > 50, "{changed_products}");
    assert!(
        moved_users > 20 && new_emails > 20,
        "{moved_users} moved, {new_emails} new emails"
    );
}

#[test]
fn anomalies_arrive_at_the_configured_share_and_only_there() {
    for share in [0.02, 0.10] {
        let (mix, records) = generate(8, share, 100_000);
        let mut anomalous = 0;
        let mut transactions = 0;
        for record in &records {
            if let Event::Transaction(t) = record {
                transactions += 1;
                if is_anomalous(&t.products, t.total_amount) {
                    anomalous += 1;
                }
            }
        }
        let observed = anomalous as f64 / transactions as f64;
        assert!(
            (observed - share).abs() <= share * 0.2 + 0.002,
            "{observed:.4} vs {share}"
        );
        // Every anomalous order is one the generator meant: normal carts stay below both
        // thresholds. (An injected one may still be waiting to pay at the end.)
        let injected = mix.counts().anomalies;
        assert!(
            anomalous <= injected && injected - anomalous <= 2,
            "{anomalous} seen, {injected} injected"
        );
    }
}

#[test]
fn carts_of_a_promotion_day_pay_the_discounted_price_and_other_days_the_list_price() {
    let mut settings = settings(0.0);
    // No price changes: every line can be held against the product's one list price.
    settings.catalogue_change_rate = 0.0;
    let promotion = now().date_naive();
    let shape = Shape {
        promotions: vec![promotion],
    };
    let mut mix = Mix::new(settings, 4, 4, Period::instant(now())).promoting(shape);
    let next_day = now() + chrono::Duration::days(1);
    let records: Vec<(bool, Event)> = (0..20_000)
        .map(|i| {
            let promoted = i < 10_000;
            (promoted, mix.next(if promoted { now() } else { next_day }))
        })
        .collect();
    let list: HashMap<&str, Decimal> = (mix.catalogue.products.iter())
        .map(|p| (p.product_id.as_str(), p.price))
        .collect();
    let share = Decimal::ONE - globalmart_generator::mix::PROMOTION_DISCOUNT;
    let mut checked = [0, 0];
    for (promoted, record) in &records {
        let Event::Cart(event) = record else { continue };
        let CartAction::AddToCart(item) = &event.action else {
            continue;
        };
        let list = list[item.product_id.as_str()];
        let expected = if *promoted {
            (list * share).round_dp(2)
        } else {
            list
        };
        assert_eq!(
            item.price, expected,
            "{} on {}",
            item.product_id, event.timestamp
        );
        checked[usize::from(*promoted)] += 1;
    }
    assert!(
        checked.iter().all(|&n| n > 500),
        "{checked:?} additions checked"
    );
}
