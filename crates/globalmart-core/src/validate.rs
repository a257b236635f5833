//! The validation rules of the event contract (docs/ARCHITECTURE.md, "The event contract"), shared by the generator (which must never emit an
//! invalid event) and the stream (which dead-letters one with the reason). Types and known enum
//! values are already enforced by deserialisation; these are the rules a type cannot express.
//! Each reason is a stable, human-readable sentence naming the field and the offending value.

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use std::fmt::Display;
use uuid::Uuid;

use crate::domain::IdKind;
use crate::event::{
    CartAction, CartEvent, CartItem, LineItem, Product, ProductViewEvent, SessionEvent,
    Transaction, User, ViewAction,
};

/// A broken rule; its `Display` is the dead-letter reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Invalid {
    #[error("{field} \"{value}\" does not match {pattern}")]
    BadId {
        field: &'static str,
        value: String,
        pattern: &'static str,
    },
    #[error("{field} {value} is not a UUID v4")]
    NotUuidV4 { field: &'static str, value: Uuid },
    #[error("{field} {value} is out of range {min}..={max}")]
    OutOfRange {
        field: &'static str,
        value: String,
        min: String,
        max: String,
    },
    #[error("{field} {value} has more than 2 decimal places")]
    TooPrecise { field: &'static str, value: Decimal },
    #[error("{field} must not be empty")]
    Empty { field: &'static str },
    #[error("{field} {stated} differs from the sum of its lines {computed}")]
    SumMismatch {
        field: &'static str,
        stated: String,
        computed: String,
    },
    #[error("{field} {value} is more than 1 day in the future")]
    InFuture { field: &'static str, value: String },
    #[error("a filter event needs filter_category, min_price or max_price")]
    NoFilter,
    #[error("min_price {min} is above max_price {max}")]
    InvertedPriceRange { min: Decimal, max: Decimal },
    #[error("quantity {quantity} differs from new_quantity {new_quantity}")]
    QuantityChangeMismatch { quantity: i32, new_quantity: i32 },
}

/// Quantity of one line (1..=100).
pub const QUANTITY: (i32, i32) = (1, 100);
/// Any price or unit price, in dollars.
pub const PRICE: (Decimal, Decimal) = (Decimal::ZERO, Decimal::from_parts(10_000, 0, 0, false, 0));
/// Seconds a product page was looked at.
pub const VIEW_DURATION: (i32, i32) = (0, 3600);
/// How far ahead of the consumer's clock an event may be dated (producer clock skew).
pub const MAX_FUTURE: Duration = Duration::days(1);
/// Allowed difference between a stated total and the sum of its lines.
pub const TOTAL_TOLERANCE: Decimal = Decimal::from_parts(1, 0, 0, false, 2);

/// An order's or a cart's total: far above any real cart, low enough to catch garbage.
const TOTAL: (Decimal, Decimal) = (
    Decimal::ZERO,
    Decimal::from_parts(10_000_000, 0, 0, false, 0),
);
const AGE: (i32, i32) = (13, 120);
const RATING: (Decimal, Decimal) = (Decimal::ZERO, Decimal::from_parts(5, 0, 0, false, 0));
const COUNT: (i32, i32) = (0, 1_000_000);
const COMPARED_PRODUCTS: (usize, usize) = (2, 10);
const PREFERENCES: (usize, usize) = (1, 3);

type Check = Result<(), Invalid>;

/// Checks a transaction.
pub fn transaction(e: &Transaction, now: DateTime<Utc>) -> Check {
    uuid_v4("transaction_id", e.transaction_id)?;
    id("user_id", &e.user_id, IdKind::User)?;
    if let Some(session) = &e.session_id {
        not_empty("session_id", session)?;
    }
    not_future("timestamp", e.timestamp, now)?;
    lines("products", &e.products)?;
    money("total_amount", e.total_amount, TOTAL)?;
    sum_matches("total_amount", e.total_amount, line_total(&e.products))
}

/// Checks a cart event.
pub fn cart_event(e: &CartEvent, now: DateTime<Utc>) -> Check {
    session(e, now)?;
    match &e.action {
        CartAction::AddToCart(item) | CartAction::RemoveFromCart(item) => cart_item(item),
        CartAction::UpdateQuantity(change) => {
            cart_item(&change.item)?;
            range("old_quantity", change.old_quantity, QUANTITY)?;
            range("new_quantity", change.new_quantity, QUANTITY)?;
            if change.item.quantity != change.new_quantity {
                return Err(Invalid::QuantityChangeMismatch {
                    quantity: change.item.quantity,
                    new_quantity: change.new_quantity,
                });
            }
            Ok(())
        }
        CartAction::Checkout(checkout) => {
            lines("items", &checkout.items)?;
            range("cart_size", checkout.cart_size, COUNT)?;
            let units: i32 = checkout.items.iter().map(|l| l.quantity).sum();
            if checkout.total_items != units {
                return Err(Invalid::SumMismatch {
                    field: "total_items",
                    stated: checkout.total_items.to_string(),
                    computed: units.to_string(),
                });
            }
            money("total_value", checkout.total_value, TOTAL)?;
            sum_matches(
                "total_value",
                checkout.total_value,
                line_total(&checkout.items),
            )
        }
    }
}

/// Checks a browsing event.
pub fn product_view(e: &ProductViewEvent, now: DateTime<Utc>) -> Check {
    session(e, now)?;
    match &e.action {
        ViewAction::View(v) => {
            id("product_id", &v.product_id, IdKind::Product)?;
            not_empty("product_name", &v.product_name)?;
            not_empty("category", &v.category)?;
            money("price", v.price, PRICE)?;
            range("view_duration", v.view_duration, VIEW_DURATION)
        }
        ViewAction::Search(s) => {
            not_empty("search_query", &s.search_query)?;
            range("results_count", s.results_count, COUNT)
        }
        ViewAction::Filter(f) => {
            if f.filter_category.is_none() && f.min_price.is_none() && f.max_price.is_none() {
                return Err(Invalid::NoFilter);
            }
            if let Some(category) = &f.filter_category {
                not_empty("filter_category", category)?;
            }
            if let Some(min) = f.min_price {
                money("min_price", min, PRICE)?;
            }
            if let Some(max) = f.max_price {
                money("max_price", max, PRICE)?;
            }
            if let (Some(min), Some(max)) = (f.min_price, f.max_price) {
                if min > max {
                    return Err(Invalid::InvertedPriceRange { min, max });
                }
            }
            range("results_count", f.results_count, COUNT)
        }
        ViewAction::Compare(c) => {
            not_empty("category", &c.category)?;
            range("product_ids", c.product_ids.len(), COMPARED_PRODUCTS)?;
            c.product_ids
                .iter()
                .try_for_each(|p| id("product_ids", p, IdKind::Product))
        }
    }
}

/// Checks a catalogue product.
pub fn product(p: &Product, now: DateTime<Utc>) -> Check {
    id("product_id", &p.product_id, IdKind::Product)?;
    not_empty("name", &p.name)?;
    not_empty("category", &p.category)?;
    money("price", p.price, PRICE)?;
    range("inventory", p.inventory, COUNT)?;
    range("rating", p.rating, RATING)?;
    not_future("updated_at", p.updated_at, now)
}

/// Checks a catalogue user.
pub fn user(u: &User, now: DateTime<Utc>) -> Check {
    id("user_id", &u.user_id, IdKind::User)?;
    if !u.email.contains('@') {
        return Err(Invalid::BadId {
            field: "email",
            value: u.email.clone(),
            pattern: "name@domain",
        });
    }
    range("age", u.age, AGE)?;
    range("preferences", u.preferences.len(), PREFERENCES)?;
    not_future("registration_date", u.registration_date, now)?;
    not_future("updated_at", u.updated_at, now)
}

/// The fields every session event has.
fn session<A>(e: &SessionEvent<A>, now: DateTime<Utc>) -> Check {
    uuid_v4("event_id", e.event_id)?;
    id("user_id", &e.user_id, IdKind::User)?;
    not_empty("session_id", &e.session_id)?;
    not_future("timestamp", e.timestamp, now)
}

fn cart_item(item: &CartItem) -> Check {
    id("product_id", &item.product_id, IdKind::Product)?;
    not_empty("product_name", &item.product_name)?;
    not_empty("category", &item.category)?;
    money("price", item.price, PRICE)?;
    range("quantity", item.quantity, QUANTITY)?;
    range("cart_size", item.cart_size, COUNT)?;
    money("cart_value", item.cart_value, TOTAL)
}

fn lines(field: &'static str, lines: &[LineItem]) -> Check {
    if lines.is_empty() {
        return Err(Invalid::Empty { field });
    }
    lines.iter().try_for_each(|line| {
        id("product_id", &line.product_id, IdKind::Product)?;
        range("quantity", line.quantity, QUANTITY)?;
        money("price", line.price, PRICE)
    })
}

/// Σ quantity × price of the lines.
pub fn line_total(lines: &[LineItem]) -> Decimal {
    lines
        .iter()
        .map(|l| Decimal::from(l.quantity) * l.price)
        .sum()
}

fn sum_matches(field: &'static str, stated: Decimal, computed: Decimal) -> Check {
    if (stated - computed).abs() > TOTAL_TOLERANCE {
        return Err(Invalid::SumMismatch {
            field,
            stated: stated.to_string(),
            computed: computed.to_string(),
        });
    }
    Ok(())
}

fn id(field: &'static str, value: &str, kind: IdKind) -> Check {
    if kind.matches(value) {
        Ok(())
    } else {
        Err(Invalid::BadId {
            field,
            value: value.to_owned(),
            pattern: kind.pattern(),
        })
    }
}

fn uuid_v4(field: &'static str, value: Uuid) -> Check {
    if value.get_version_num() == 4 {
        Ok(())
    } else {
        Err(Invalid::NotUuidV4 { field, value })
    }
}

fn not_empty(field: &'static str, value: &str) -> Check {
    if value.trim().is_empty() {
        Err(Invalid::Empty { field })
    } else {
        Ok(())
    }
}

fn range<T: PartialOrd + Display>(field: &'static str, value: T, (min, max): (T, T)) -> Check {
    if value < min || value > max {
        return Err(Invalid::OutOfRange {
            field,
            value: value.to_string(),
            min: min.to_string(),
            max: max.to_string(),
        });
    }
    Ok(())
}

fn money(field: &'static str, value: Decimal, bounds: (Decimal, Decimal)) -> Check {
    range(field, value, bounds)?;
    if value.round_dp(2) != value {
        return Err(Invalid::TooPrecise { field, value });
    }
    Ok(())
}

fn not_future(field: &'static str, value: DateTime<Utc>, now: DateTime<Utc>) -> Check {
    if value > now + MAX_FUTURE {
        return Err(Invalid::InFuture {
            field,
            value: crate::timestamp::format(&value),
        });
    }
    Ok(())
}
