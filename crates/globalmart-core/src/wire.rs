//! Reading a session event (a cart or browsing event) from its JSON object: one flat record of
//! every field any `event_type` carries, then the fields that type requires.
//!
//! Why not serde's internally tagged enum with a flattened action: serde buffers such an
//! object's fields before it knows the type, and a buffered number is a float, so a money value
//! lost its own digits (a dead letter quoted `204.66000000000005` for the payload's
//! `204.66000000000004`); the flat record also skips a map per event.
//!
//! What the replaced platform's producers send is read with the meaning it has there
//! (docs/COMPATIBILITY.md): an `update_quantity` without `quantity` has `new_quantity` as its
//! quantity, a filter's unused criteria are null.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use uuid::Uuid;

use crate::domain::Country;
use crate::event::{
    CartAction, CartEvent, CartItem, Checkout, Compare, Filter, LineItem, ProductView,
    ProductViewEvent, QuantityChange, Search, SessionEvent, ViewAction,
};

/// Every field of every session event type, as the JSON object has them.
#[derive(Deserialize)]
pub(crate) struct WireSessionEvent {
    event_id: Uuid,
    #[serde(deserialize_with = "crate::timestamp::deserialize")]
    timestamp: DateTime<Utc>,
    user_id: String,
    session_id: String,
    country: Country,
    event_type: String,
    product_id: Option<String>,
    product_name: Option<String>,
    category: Option<String>,
    #[serde(default, deserialize_with = "crate::money::deserialize_option")]
    price: Option<Decimal>,
    quantity: Option<i32>,
    old_quantity: Option<i32>,
    new_quantity: Option<i32>,
    cart_size: Option<i32>,
    #[serde(default, deserialize_with = "crate::money::deserialize_option")]
    cart_value: Option<Decimal>,
    items: Option<Vec<LineItem>>,
    total_items: Option<i32>,
    #[serde(default, deserialize_with = "crate::money::deserialize_option")]
    total_value: Option<Decimal>,
    view_duration: Option<i32>,
    search_query: Option<String>,
    results_count: Option<i32>,
    filter_category: Option<String>,
    #[serde(default, deserialize_with = "crate::money::deserialize_option")]
    min_price: Option<Decimal>,
    #[serde(default, deserialize_with = "crate::money::deserialize_option")]
    max_price: Option<Decimal>,
    product_ids: Option<Vec<String>>,
}

const CART_TYPES: &str = "`add_to_cart`, `remove_from_cart`, `update_quantity`, `checkout`";
const VIEW_TYPES: &str = "`view`, `search`, `filter`, `compare`";

/// A field the event's type requires, or serde's own wording for its absence.
fn required<T>(value: Option<T>, field: &str) -> Result<T, String> {
    value.ok_or_else(|| format!("missing field `{field}`"))
}

impl WireSessionEvent {
    /// The cart event this object is, or why it is none.
    pub(crate) fn into_cart(mut self) -> Result<CartEvent, String> {
        let action = match self.event_type.as_str() {
            "add_to_cart" => CartAction::AddToCart(self.cart_item(None)?),
            "remove_from_cart" => CartAction::RemoveFromCart(self.cart_item(None)?),
            "update_quantity" => {
                let new_quantity = required(self.new_quantity, "new_quantity")?;
                CartAction::UpdateQuantity(QuantityChange {
                    old_quantity: required(self.old_quantity, "old_quantity")?,
                    item: self.cart_item(Some(new_quantity))?,
                    new_quantity,
                })
            }
            "checkout" => CartAction::Checkout(Checkout {
                items: required(self.items.take(), "items")?,
                total_items: required(self.total_items, "total_items")?,
                total_value: required(self.total_value, "total_value")?,
                cart_size: required(self.cart_size, "cart_size")?,
            }),
            other => return Err(unknown(other, CART_TYPES)),
        };
        Ok(self.with(action))
    }

    /// The browsing event this object is, or why it is none.
    pub(crate) fn into_view(mut self) -> Result<ProductViewEvent, String> {
        let action = match self.event_type.as_str() {
            "view" => ViewAction::View(ProductView {
                product_id: required(self.product_id.take(), "product_id")?,
                product_name: required(self.product_name.take(), "product_name")?,
                category: required(self.category.take(), "category")?,
                price: required(self.price, "price")?,
                view_duration: required(self.view_duration, "view_duration")?,
                search_query: self.search_query.take(),
            }),
            "search" => ViewAction::Search(Search {
                search_query: required(self.search_query.take(), "search_query")?,
                results_count: required(self.results_count, "results_count")?,
            }),
            "filter" => ViewAction::Filter(Filter {
                filter_category: self.filter_category.take(),
                min_price: self.min_price,
                max_price: self.max_price,
                results_count: required(self.results_count, "results_count")?,
            }),
            "compare" => ViewAction::Compare(Compare {
                product_ids: required(self.product_ids.take(), "product_ids")?,
                category: required(self.category.take(), "category")?,
            }),
            other => return Err(unknown(other, VIEW_TYPES)),
        };
        Ok(self.with(action))
    }

    /// The product line of an add, remove or update; an update's quantity is `new_quantity`
    /// when the object has no `quantity` of its own.
    fn cart_item(&mut self, new_quantity: Option<i32>) -> Result<CartItem, String> {
        Ok(CartItem {
            product_id: required(self.product_id.take(), "product_id")?,
            product_name: required(self.product_name.take(), "product_name")?,
            category: required(self.category.take(), "category")?,
            price: required(self.price, "price")?,
            quantity: required(self.quantity.or(new_quantity), "quantity")?,
            cart_size: required(self.cart_size, "cart_size")?,
            cart_value: required(self.cart_value, "cart_value")?,
        })
    }

    fn with<A>(self, action: A) -> SessionEvent<A> {
        SessionEvent {
            event_id: self.event_id,
            timestamp: self.timestamp,
            user_id: self.user_id,
            session_id: self.session_id,
            country: self.country,
            action,
        }
    }
}

fn unknown(event_type: &str, expected: &str) -> String {
    format!("unknown variant `{event_type}`, expected one of {expected}")
}
