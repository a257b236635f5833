//! The event contract (docs/ARCHITECTURE.md, "The event contract"): every kind round-trips through JSON, the replaced
//! platform's naive timestamps are read as UTC, and every validation rule rejects with its
//! stable reason.

use chrono::{Duration, TimeZone, Utc};
use globalmart_core::domain::{CategoryGroup, Country, PaymentMethod};
use globalmart_core::event::*;
use globalmart_core::topics::Topic;
use rust_decimal::Decimal;
use uuid::Uuid;

mod common;

use common::{dec, now};

fn id(n: u128) -> Uuid {
    // A fixed v4 UUID per n, so failures are reproducible.
    uuid::Builder::from_random_bytes(n.to_be_bytes()).into_uuid()
}

fn line(product: &str, quantity: i32, price: &str) -> LineItem {
    LineItem {
        product_id: product.into(),
        quantity,
        price: dec(price),
    }
}

fn transaction() -> Transaction {
    Transaction {
        transaction_id: id(1),
        user_id: "USER_00000042".into(),
        session_id: Some("sess-42-1".into()),
        timestamp: now(),
        products: vec![
            line("PROD_00000007", 2, "19.99"),
            line("PROD_00000100", 1, "90.01"),
        ],
        total_amount: dec("129.99"),
        payment_method: PaymentMethod::ApplePay,
        country: Country::Japan,
    }
}

fn cart_item() -> CartItem {
    CartItem {
        product_id: "PROD_00000007".into(),
        product_name: "Trail Running Shoe".into(),
        category: "Running".into(),
        price: dec("19.99"),
        quantity: 2,
        cart_size: 1,
        cart_value: dec("39.98"),
    }
}

fn cart(action: CartAction) -> CartEvent {
    CartEvent {
        event_id: id(2),
        timestamp: now(),
        user_id: "USER_00000042".into(),
        session_id: "sess-42-1".into(),
        country: Country::Germany,
        action,
    }
}

fn checkout() -> Checkout {
    Checkout {
        items: transaction().products,
        total_items: 3,
        total_value: dec("129.99"),
        cart_size: 2,
    }
}

fn view(action: ViewAction) -> ProductViewEvent {
    ProductViewEvent {
        event_id: id(3),
        timestamp: now(),
        user_id: "USER_00000042".into(),
        session_id: "sess-42-1".into(),
        country: Country::Uk,
        action,
    }
}

fn product_view() -> ProductView {
    ProductView {
        product_id: "PROD_00000007".into(),
        product_name: "Trail Running Shoe".into(),
        category: "Running".into(),
        price: dec("19.99"),
        view_duration: 45,
        search_query: Some("running shoes".into()),
    }
}

fn filter() -> Filter {
    Filter {
        filter_category: Some("Running".into()),
        min_price: Some(dec("10.00")),
        max_price: Some(dec("50.00")),
        results_count: 17,
    }
}

fn product() -> Product {
    Product {
        product_id: "PROD_00000007".into(),
        name: "Trail Running Shoe".into(),
        category: "Running".into(),
        price: dec("19.99"),
        inventory: 250,
        rating: dec("4.5"),
        updated_at: now(),
    }
}

fn user() -> User {
    User {
        user_id: "USER_00000042".into(),
        email: "ada@example.com".into(),
        age: 36,
        country: Country::France,
        registration_date: now() - Duration::days(400),
        preferences: vec![CategoryGroup::SportsOutdoors, CategoryGroup::BooksMedia],
        updated_at: now(),
    }
}

/// One valid event of every kind and subtype.
fn every_kind() -> Vec<Event> {
    vec![
        Event::Transaction(transaction()),
        Event::Cart(cart(CartAction::AddToCart(cart_item()))),
        Event::Cart(cart(CartAction::RemoveFromCart(cart_item()))),
        Event::Cart(cart(CartAction::UpdateQuantity(QuantityChange {
            item: CartItem {
                quantity: 3,
                ..cart_item()
            },
            old_quantity: 2,
            new_quantity: 3,
        }))),
        Event::Cart(cart(CartAction::Checkout(checkout()))),
        Event::ProductView(view(ViewAction::View(product_view()))),
        Event::ProductView(view(ViewAction::View(ProductView {
            search_query: None,
            ..product_view()
        }))),
        Event::ProductView(view(ViewAction::Search(Search {
            search_query: "tent".into(),
            results_count: 0,
        }))),
        Event::ProductView(view(ViewAction::Filter(filter()))),
        Event::ProductView(view(ViewAction::Compare(Compare {
            product_ids: vec!["PROD_00000001".into(), "PROD_00000002".into()],
            category: "Camping".into(),
        }))),
        Event::Product(product()),
        Event::User(user()),
    ]
}

/// The record as the JSON tree its message holds.
fn json_value(event: Event) -> serde_json::Value {
    serde_json::from_slice(&event.to_json()).expect("the JSON we write parses")
}

fn reason(event: Event) -> String {
    match event.validate(now()) {
        Ok(()) => panic!("expected {event:?} to be rejected"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_kind_round_trips_through_json_and_is_valid() {
    for event in every_kind() {
        assert_eq!(event.validate(now()), Ok(()), "{event:?}");
        let json = event.to_json();
        let parsed = Event::parse(event.topic(), &json, now())
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&json)));
        assert_eq!(parsed, event);
    }
}

#[test]
fn json_uses_the_replaced_platform_field_names() -> Result<(), serde_json::Error> {
    let value: serde_json::Value =
        serde_json::from_slice(&Event::Transaction(transaction()).to_json())?;
    assert_eq!(value["user_id"], "USER_00000042");
    assert_eq!(value["payment_method"], "Apple Pay");
    assert_eq!(value["timestamp"], "2025-12-07T12:00:00.000000Z");
    assert_eq!(value["total_amount"], serde_json::json!(129.99));
    assert_eq!(value["products"][0]["price"], serde_json::json!(19.99));

    let value: serde_json::Value =
        serde_json::from_slice(&Event::Cart(cart(CartAction::Checkout(checkout()))).to_json())?;
    assert_eq!(value["event_type"], "checkout");
    assert_eq!(value["total_items"], 3);
    assert_eq!(value["items"].as_array().map(Vec::len), Some(2));

    let value: serde_json::Value = serde_json::from_slice(
        &Event::ProductView(view(ViewAction::View(ProductView {
            search_query: None,
            ..product_view()
        })))
        .to_json(),
    )?;
    assert_eq!(value["event_type"], "view");
    assert!(
        value["search_query"].is_null(),
        "search_query is written as null"
    );
    Ok(())
}

#[test]
fn naive_timestamps_from_the_replaced_platform_mean_utc() {
    let json = r#"{"transaction_id":"6f1c8a4e-2b7d-4c1a-9e3f-5a6b7c8d9e0f","user_id":"USER_00000001",
        "timestamp":"2025-12-07T10:15:30.123456","products":[{"product_id":"PROD_00000001","quantity":1,"price":5.5}],
        "total_amount":5.5,"payment_method":"PayPal","country":"USA"}"#;
    let Ok(Event::Transaction(t)) = Event::parse(Topic::Transactions, json.as_bytes(), now())
    else {
        panic!("a replaced-platform transaction must parse");
    };
    assert_eq!(
        t.timestamp,
        Utc.with_ymd_and_hms(2025, 12, 7, 10, 15, 30)
            .single()
            .expect("date")
            + Duration::microseconds(123_456)
    );
    assert_eq!(t.session_id, None);
}

#[test]
fn line_item_ids_are_deterministic_and_distinct() {
    let t = transaction();
    assert_eq!(t.line_item_id(0), transaction().line_item_id(0));
    assert_ne!(t.line_item_id(0), t.line_item_id(1));
    let other = Transaction {
        transaction_id: id(99),
        ..transaction()
    };
    assert_ne!(t.line_item_id(0), other.line_item_id(0));
}

#[test]
fn ids_must_match_their_pattern() {
    let t = Transaction {
        user_id: "U456".into(),
        ..transaction()
    };
    assert_eq!(
        reason(Event::Transaction(t)),
        "user_id \"U456\" does not match USER_%08d"
    );
    let mut t = transaction();
    t.products[1].product_id = "P012".into();
    assert_eq!(
        reason(Event::Transaction(t)),
        "product_id \"P012\" does not match PROD_%08d"
    );
    let p = Product {
        product_id: "PROD_7".into(),
        ..product()
    };
    assert_eq!(
        reason(Event::Product(p)),
        "product_id \"PROD_7\" does not match PROD_%08d"
    );
    let compare = view(ViewAction::Compare(Compare {
        product_ids: vec!["PROD_00000001".into(), "phone".into()],
        category: "Smartphones".into(),
    }));
    assert_eq!(
        reason(Event::ProductView(compare)),
        "product_ids \"phone\" does not match PROD_%08d"
    );
    let u = User {
        email: "not-an-email".into(),
        ..user()
    };
    assert_eq!(
        reason(Event::User(u)),
        "email \"not-an-email\" does not match name@domain"
    );
}

#[test]
fn event_ids_must_be_uuid_v4() {
    let nil = Transaction {
        transaction_id: Uuid::nil(),
        ..transaction()
    };
    assert_eq!(
        reason(Event::Transaction(nil)),
        "transaction_id 00000000-0000-0000-0000-000000000000 is not a UUID v4"
    );
    let mut e = cart(CartAction::AddToCart(cart_item()));
    e.event_id = Uuid::new_v5(&Uuid::NAMESPACE_OID, b"x");
    assert!(reason(Event::Cart(e)).starts_with("event_id "));
}

#[test]
fn quantities_must_be_between_1_and_100() {
    let mut t = transaction();
    t.products[0].quantity = 0;
    assert_eq!(
        reason(Event::Transaction(t)),
        "quantity 0 is out of range 1..=100"
    );
    let item = CartItem {
        quantity: 101,
        ..cart_item()
    };
    assert_eq!(
        reason(Event::Cart(cart(CartAction::AddToCart(item)))),
        "quantity 101 is out of range 1..=100"
    );
    let change = QuantityChange {
        item: cart_item(),
        old_quantity: -1,
        new_quantity: 2,
    };
    assert_eq!(
        reason(Event::Cart(cart(CartAction::UpdateQuantity(change)))),
        "old_quantity -1 is out of range 1..=100"
    );
    let change = QuantityChange {
        item: cart_item(),
        old_quantity: 1,
        new_quantity: 3,
    };
    assert_eq!(
        reason(Event::Cart(cart(CartAction::UpdateQuantity(change)))),
        "quantity 2 differs from new_quantity 3"
    );
}

#[test]
fn prices_must_be_between_0_and_10000_with_2_decimals() {
    let mut t = transaction();
    t.products[0].price = dec("-1.00");
    assert_eq!(
        reason(Event::Transaction(t)),
        "price -1.00 is out of range 0..=10000"
    );
    let p = Product {
        price: dec("10000.01"),
        ..product()
    };
    assert_eq!(
        reason(Event::Product(p)),
        "price 10000.01 is out of range 0..=10000"
    );
    let v = ProductView {
        price: dec("19.999"),
        ..product_view()
    };
    assert_eq!(
        reason(Event::ProductView(view(ViewAction::View(v)))),
        "price 19.999 has more than 2 decimal places"
    );
    let f = Filter {
        min_price: Some(dec("60.00")),
        ..filter()
    };
    assert_eq!(
        reason(Event::ProductView(view(ViewAction::Filter(f)))),
        "min_price 60.00 is above max_price 50.00"
    );
}

#[test]
fn totals_must_equal_the_sum_of_lines_within_a_cent() {
    let t = Transaction {
        total_amount: dec("129.97"),
        ..transaction()
    };
    assert_eq!(
        reason(Event::Transaction(t)),
        "total_amount 129.97 differs from the sum of its lines 129.99"
    );
    let within_a_cent = Transaction {
        total_amount: dec("129.98"),
        ..transaction()
    };
    assert_eq!(Event::Transaction(within_a_cent).validate(now()), Ok(()));
    let c = Checkout {
        total_items: 4,
        ..checkout()
    };
    assert_eq!(
        reason(Event::Cart(cart(CartAction::Checkout(c)))),
        "total_items 4 differs from the sum of its lines 3"
    );
    let c = Checkout {
        total_value: dec("1.00"),
        ..checkout()
    };
    assert_eq!(
        reason(Event::Cart(cart(CartAction::Checkout(c)))),
        "total_value 1.00 differs from the sum of its lines 129.99"
    );
}

#[test]
fn orders_and_checkouts_need_at_least_one_line() {
    let t = Transaction {
        products: vec![],
        total_amount: Decimal::ZERO,
        ..transaction()
    };
    assert_eq!(reason(Event::Transaction(t)), "products must not be empty");
    let c = Checkout {
        items: vec![],
        ..checkout()
    };
    assert_eq!(
        reason(Event::Cart(cart(CartAction::Checkout(c)))),
        "items must not be empty"
    );
}

#[test]
fn view_duration_must_be_between_0_and_3600_seconds() {
    let v = ProductView {
        view_duration: 3601,
        ..product_view()
    };
    assert_eq!(
        reason(Event::ProductView(view(ViewAction::View(v)))),
        "view_duration 3601 is out of range 0..=3600"
    );
}

#[test]
fn timestamps_may_be_at_most_one_day_ahead() {
    let ahead = Transaction {
        timestamp: now() + Duration::days(1) + Duration::seconds(1),
        ..transaction()
    };
    assert_eq!(
        reason(Event::Transaction(ahead)),
        "timestamp 2025-12-08T12:00:01.000000Z is more than 1 day in the future"
    );
    let skewed = Transaction {
        timestamp: now() + Duration::hours(23),
        ..transaction()
    };
    assert_eq!(Event::Transaction(skewed).validate(now()), Ok(()));
    let p = Product {
        updated_at: now() + Duration::days(2),
        ..product()
    };
    assert!(reason(Event::Product(p)).starts_with("updated_at "));
}

#[test]
fn required_text_must_not_be_blank() {
    let mut e = cart(CartAction::AddToCart(cart_item()));
    e.session_id = " ".into();
    assert_eq!(reason(Event::Cart(e)), "session_id must not be empty");
    let s = Search {
        search_query: String::new(),
        results_count: 3,
    };
    assert_eq!(
        reason(Event::ProductView(view(ViewAction::Search(s)))),
        "search_query must not be empty"
    );
    let p = Product {
        name: String::new(),
        ..product()
    };
    assert_eq!(reason(Event::Product(p)), "name must not be empty");
}

#[test]
fn counts_ages_ratings_and_list_sizes_have_bounds() {
    let s = Search {
        search_query: "tent".into(),
        results_count: -1,
    };
    assert_eq!(
        reason(Event::ProductView(view(ViewAction::Search(s)))),
        "results_count -1 is out of range 0..=1000000"
    );
    let compare = view(ViewAction::Compare(Compare {
        product_ids: vec!["PROD_00000001".into()],
        category: "Camping".into(),
    }));
    assert_eq!(
        reason(Event::ProductView(compare)),
        "product_ids 1 is out of range 2..=10"
    );
    assert_eq!(
        reason(Event::User(User { age: 7, ..user() })),
        "age 7 is out of range 13..=120"
    );
    assert_eq!(
        reason(Event::User(User {
            preferences: vec![],
            ..user()
        })),
        "preferences 0 is out of range 1..=3"
    );
    assert_eq!(
        reason(Event::Product(Product {
            rating: dec("5.5"),
            ..product()
        })),
        "rating 5.5 is out of range 0..=5"
    );
    assert_eq!(
        reason(Event::Product(Product {
            inventory: -5,
            ..product()
        })),
        "inventory -5 is out of range 0..=1000000"
    );
}

#[test]
fn malformed_messages_are_rejected_with_a_reason() {
    let parse = |topic: Topic, payload: &[u8]| match Event::parse(topic, payload, now()) {
        Ok(e) => panic!("expected a rejection, parsed {e:?}"),
        Err(e) => e.to_string(),
    };
    assert_eq!(
        parse(Topic::Transactions, br#"{"transaction_id": "#),
        "malformed JSON: EOF while parsing a value"
    );
    assert_eq!(
        parse(Topic::CartEvents, b"\xff\xfe{}"),
        "payload is not valid UTF-8"
    );
    let huge = vec![b' '; MAX_EVENT_BYTES + 1];
    assert_eq!(
        parse(Topic::ProductViews, &huge),
        format!(
            "payload of {} bytes exceeds the {MAX_EVENT_BYTES}-byte limit",
            MAX_EVENT_BYTES + 1
        )
    );
    let mut wrong_type = json_value(Event::Transaction(transaction()));
    wrong_type["products"][0]["quantity"] = serde_json::json!("two");
    let reason = parse(Topic::Transactions, wrong_type.to_string().as_bytes());
    assert!(
        reason.starts_with("invalid transaction: invalid type: string \"two\", expected i32"),
        "{reason}"
    );
    let mut unknown = json_value(Event::Cart(cart(CartAction::AddToCart(cart_item()))));
    unknown["event_type"] = serde_json::json!("wishlist");
    let reason = parse(Topic::CartEvents, unknown.to_string().as_bytes());
    assert!(
        reason.starts_with("invalid cart event: unknown variant `wishlist`"),
        "{reason}"
    );
    let mut bad_country = json_value(Event::User(user()));
    bad_country["country"] = serde_json::json!("Narnia");
    let reason = parse(Topic::Users, bad_country.to_string().as_bytes());
    assert!(
        reason.starts_with("invalid user: unknown variant `Narnia`"),
        "{reason}"
    );
    let mut missing = json_value(Event::Product(product()));
    missing.as_object_mut().map(|o| o.remove("price"));
    assert_eq!(
        parse(Topic::Products, missing.to_string().as_bytes()),
        "invalid product: missing field `price`"
    );
    assert_eq!(
        parse(Topic::Alerts, b"{}"),
        "alerts-topic is not an event topic"
    );
}

#[test]
fn money_survives_json_without_float_noise() {
    let t = transaction();
    let back: Transaction =
        serde_json::from_slice(&Event::Transaction(t.clone()).to_json()).expect("json");
    assert_eq!(back.total_amount.to_string(), "129.99");
    assert_eq!(back.products[0].price.to_string(), "19.99");
    let parsed: LineItem =
        serde_json::from_str(r#"{"product_id":"PROD_00000001","quantity":3,"price":0.1}"#)
            .expect("json");
    assert_eq!(
        (Decimal::from(parsed.quantity) * parsed.price).to_string(),
        "0.3"
    );
}
