//! The events the replaced platform's producers send (docs/COMPATIBILITY.md), written by hand
//! from reading its generators: naive timestamps, no session on a transaction, null filter
//! criteria, an `update_quantity` without `quantity`, money summed in binary doubles. Each
//! valid shape parses with the meaning it has there; its invalid shapes keep a reason that
//! quotes the payload's text.

use chrono::{TimeZone, Utc};
use globalmart_core::event::*;
use globalmart_core::topics::Topic;

mod common;

use common::{dec, now};

/// The fields every one of its cart and browsing events has, then `rest`.
fn session(event_type: &str, rest: &str) -> String {
    format!(
        r#"{{"event_id":"0b9f3a6e-1c2d-4e5f-8a9b-0c1d2e3f4a5b","event_type":"{event_type}",
        "timestamp":"2025-12-07T10:15:30.123456","user_id":"USER_00000042",
        "session_id":"6f1c8a4e-2b7d-4c1a-9e3f-5a6b7c8d9e0f",{rest},"country":"Germany"}}"#
    )
}

fn parse(topic: Topic, json: &str) -> Event {
    Event::parse(topic, json.as_bytes(), now()).unwrap_or_else(|e| panic!("{e}: {json}"))
}

fn cart(event_type: &str, rest: &str) -> CartAction {
    match parse(Topic::CartEvents, &session(event_type, rest)) {
        Event::Cart(e) => e.action,
        other => panic!("not a cart event: {other:?}"),
    }
}

fn browse(event_type: &str, rest: &str) -> ViewAction {
    match parse(Topic::ProductViews, &session(event_type, rest)) {
        Event::ProductView(e) => e.action,
        other => panic!("not a browsing event: {other:?}"),
    }
}

fn rejection(topic: Topic, json: &str) -> String {
    match Event::parse(topic, json.as_bytes(), now()) {
        Ok(event) => panic!("expected a dead letter, parsed {event:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_transaction_keyed_by_its_id_with_float_noise_in_its_total_is_saved_in_cents() {
    // round(sum, 2) in Python still prints the nearest double, and a total of floats may not
    // be rounded at all.
    let json = r#"{"transaction_id":"1e0c6f0a-3b2a-4c9d-8e7f-6a5b4c3d2e1f","user_id":"USER_00000042",
        "timestamp":"2025-12-07T10:15:30","products":[{"product_id":"PROD_00000007","quantity":3,
        "price":174.81},{"product_id":"PROD_00000100","quantity":1,"price":0.1}],
        "total_amount":524.5300000000001,"payment_method":"Google Pay","country":"Japan"}"#;
    let Event::Transaction(t) = parse(Topic::Transactions, json) else {
        panic!("not a transaction");
    };
    assert_eq!(t.total_amount, dec("524.53"));
    assert_eq!(t.total_amount.to_string(), "524.53");
    assert_eq!(t.session_id, None);
    assert_eq!(
        t.timestamp,
        Utc.with_ymd_and_hms(2025, 12, 7, 10, 15, 30)
            .single()
            .expect("date")
    );
}

#[test]
fn a_view_with_its_extra_fields_and_a_null_search_query() {
    let action = browse(
        "view",
        r#""product_id":"PROD_00000007","product_name":"Acme Laptops Pro","category":"Laptops",
        "price":1299.99,"view_duration":37,"from_search":false,"search_query":null,
        "previously_viewed_count":2"#,
    );
    let ViewAction::View(v) = action else {
        panic!("not a view: {action:?}");
    };
    assert_eq!(
        (
            v.category.as_str(),
            v.price,
            v.view_duration,
            v.search_query
        ),
        ("Laptops", dec("1299.99"), 37, None)
    );
}

#[test]
fn filters_by_category_only_price_only_or_both() {
    let by_category = browse(
        "filter",
        r#""filter_category":"Laptops","min_price":null,"max_price":null,"results_count":12"#,
    );
    assert_eq!(
        by_category,
        ViewAction::Filter(Filter {
            filter_category: Some("Laptops".into()),
            min_price: None,
            max_price: None,
            results_count: 12,
        })
    );
    // Its price ranges are integers.
    let by_price = browse(
        "filter",
        r#""filter_category":null,"min_price":50,"max_price":100,"results_count":340"#,
    );
    assert_eq!(
        by_price,
        ViewAction::Filter(Filter {
            filter_category: None,
            min_price: Some(dec("50")),
            max_price: Some(dec("100")),
            results_count: 340,
        })
    );
    let both = browse(
        "filter",
        r#""filter_category":"Mice","min_price":0,"max_price":50,"results_count":3"#,
    );
    let ViewAction::Filter(f) = both else {
        panic!("not a filter");
    };
    assert_eq!(f.filter_category.as_deref(), Some("Mice"));
    assert_eq!(
        (f.min_price, f.max_price),
        (Some(dec("0")), Some(dec("50")))
    );
}

#[test]
fn a_search_and_a_mixed_compare() {
    assert_eq!(
        browse("search", r#""search_query":"laptop","results_count":0"#),
        ViewAction::Search(Search {
            search_query: "laptop".into(),
            results_count: 0,
        })
    );
    assert_eq!(
        browse(
            "compare",
            r#""product_ids":["PROD_00000001","PROD_00000002"],"product_names":["A","B"],
            "prices":[10.5,20.25],"category":"mixed""#,
        ),
        ViewAction::Compare(Compare {
            product_ids: vec!["PROD_00000001".into(), "PROD_00000002".into()],
            category: "mixed".into(),
        })
    );
}

#[test]
fn an_update_quantity_without_quantity_has_its_new_quantity() {
    let action = cart(
        "update_quantity",
        r#""product_id":"PROD_00000007","product_name":"Acme Mice","category":"Mice",
        "price":174.81,"old_quantity":1,"new_quantity":3,"cart_size":2,
        "cart_value":524.4300000000001"#,
    );
    let CartAction::UpdateQuantity(change) = action else {
        panic!("not an update: {action:?}");
    };
    assert_eq!(
        (
            change.item.quantity,
            change.old_quantity,
            change.new_quantity
        ),
        (3, 1, 3)
    );
    assert_eq!(change.item.cart_value, dec("524.43"));
}

#[test]
fn adds_removes_and_checkouts_with_float_noise_values() {
    let CartAction::AddToCart(added) = cart(
        "add_to_cart",
        r#""product_id":"PROD_00000007","product_name":"Acme Mice","category":"Mice",
        "price":0.1,"quantity":3,"cart_size":1,"cart_value":0.30000000000000004"#,
    ) else {
        panic!("not an add");
    };
    assert_eq!(added.cart_value, dec("0.30"));
    // The last line removed: an empty cart worth the integer 0.
    let CartAction::RemoveFromCart(removed) = cart(
        "remove_from_cart",
        r#""product_id":"PROD_00000007","product_name":"Acme Mice","category":"Mice",
        "price":0.1,"quantity":3,"cart_size":0,"cart_value":0"#,
    ) else {
        panic!("not a remove");
    };
    assert_eq!((removed.cart_size, removed.cart_value), (0, dec("0")));
    let CartAction::Checkout(checkout) = cart(
        "checkout",
        r#""items":[{"product_id":"PROD_00000007","product_name":"Acme Mice","category":"Mice",
        "price":174.81,"quantity":3},{"product_id":"PROD_00000100","product_name":"Pens",
        "category":"Office","price":0.1,"quantity":1}],"total_items":4,
        "total_value":524.5300000000001,"cart_size":2"#,
    ) else {
        panic!("not a checkout");
    };
    assert_eq!(checkout.total_value, dec("524.53"));
    assert_eq!(checkout.items[1].price, dec("0.1"));
}

#[test]
fn its_invalid_shapes_are_still_dead_lettered_quoting_the_payload() {
    const MICE: &str =
        r#""product_id":"PROD_00000007","product_name":"Acme Mice","category":"Mice""#;
    let cases = [
        // Neither quantity nor new_quantity.
        (
            Topic::CartEvents,
            session(
                "update_quantity",
                &format!(r#"{MICE},"price":1.5,"old_quantity":1,"cart_size":1,"cart_value":1.5"#),
            ),
            "invalid cart event: missing field `new_quantity`",
        ),
        // A third decimal is not noise; the reason has the payload's digits, not a float's.
        (
            Topic::CartEvents,
            session(
                "add_to_cart",
                &format!(
                    r#"{MICE},"price":204.66,"quantity":1,"cart_size":1,
                    "cart_value":204.66100000000004"#
                ),
            ),
            "cart_value 204.66100000000004 has more than 2 decimal places",
        ),
        // Its injected high-value anomaly: a random total that its lines do not add up to.
        (
            Topic::Transactions,
            r#"{"transaction_id":"1e0c6f0a-3b2a-4c9d-8e7f-6a5b4c3d2e1f",
            "user_id":"USER_00000042","timestamp":"2025-12-07T10:15:30.5","products":[{
            "product_id":"PROD_00000007","quantity":1,"price":20.0}],
            "total_amount":7340.123456789012,"payment_method":"PayPal","country":"UK"}"#
                .to_owned(),
            "total_amount 7340.123456789012 has more than 2 decimal places",
        ),
        (
            Topic::ProductViews,
            session(
                "filter",
                r#""filter_category":null,"min_price":null,"max_price":null,"results_count":1"#,
            ),
            "a filter event needs filter_category, min_price or max_price",
        ),
        (
            Topic::CartEvents,
            session(
                "cart_abandonment",
                r#""items":[],"cart_size":0,"cart_value":0"#,
            ),
            "invalid cart event: unknown variant `cart_abandonment`, expected one of \
             `add_to_cart`, `remove_from_cart`, `update_quantity`, `checkout`",
        ),
        (
            Topic::CartEvents,
            session(
                "add_to_cart",
                &format!(r#"{MICE},"price":true,"quantity":1,"cart_size":1,"cart_value":1.5"#),
            ),
            "invalid cart event: invalid type: boolean `true`, expected a Decimal type \
             representing a fixed-point number",
        ),
    ];
    for (topic, json, reason) in cases {
        assert_eq!(rejection(topic, &json), reason, "{json}");
    }
}
