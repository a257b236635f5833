//! The records that travel through Kafka (docs/ARCHITECTURE.md, "The event contract"), one JSON object per message. Field
//! names follow the replaced platform so its producers and queries keep working. Money is
//! `Decimal` (written as a JSON number with its exact digits, `19.99`, and read the same way,
//! see [`crate::money`]) so sums are exact all the way into PostgreSQL `numeric` columns.
//! Records are read with serde and written by [`crate::encode`].

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{de, Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use crate::domain::{CategoryGroup, Country, PaymentMethod};
use crate::encode;
use crate::topics::Topic;
use crate::validate::{self, Invalid};
use crate::wire::WireSessionEvent;

/// One line of an order or a checkout: a product, how many, at what unit price.
/// Also `Serialize`: the stream stores a checkout's lines as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineItem {
    pub product_id: String,
    pub quantity: i32,
    #[serde(deserialize_with = "crate::money::deserialize")]
    pub price: Decimal,
}

/// `transactions-topic`: a completed order.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Transaction {
    pub transaction_id: Uuid,
    pub user_id: String,
    /// The shopping session that checked out; absent in the replaced platform's events.
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(deserialize_with = "crate::timestamp::deserialize")]
    pub timestamp: DateTime<Utc>,
    pub products: Vec<LineItem>,
    #[serde(deserialize_with = "crate::money::deserialize")]
    pub total_amount: Decimal,
    pub payment_method: PaymentMethod,
    pub country: Country,
}

impl Transaction {
    /// The realtime primary key of line `index`: a UUID v5 of the line number in the
    /// transaction's namespace. Derived, never random, so a replayed message maps to the same
    /// rows and `ON CONFLICT DO NOTHING` skips them.
    pub fn line_item_id(&self, index: usize) -> Uuid {
        Uuid::new_v5(&self.transaction_id, index.to_string().as_bytes())
    }
}

/// An event of a shopping session: who, when, where, and what happened (`action`, whose
/// `event_type` tag and fields sit beside these in the same JSON object; read through
/// [`WireSessionEvent`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionEvent<A> {
    pub event_id: Uuid,
    pub timestamp: DateTime<Utc>,
    pub user_id: String,
    pub session_id: String,
    pub country: Country,
    pub action: A,
}

/// `cart-events-topic`: something a user did to a cart.
pub type CartEvent = SessionEvent<CartAction>;

impl<'de> Deserialize<'de> for CartEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        WireSessionEvent::deserialize(deserializer)?
            .into_cart()
            .map_err(de::Error::custom)
    }
}

/// The kind of cart event, tagged by `event_type`.
#[derive(Debug, Clone, PartialEq)]
pub enum CartAction {
    AddToCart(CartItem),
    RemoveFromCart(CartItem),
    UpdateQuantity(QuantityChange),
    Checkout(Checkout),
}

impl CartAction {
    /// The `event_type` value.
    pub fn event_type(&self) -> &'static str {
        match self {
            CartAction::AddToCart(_) => "add_to_cart",
            CartAction::RemoveFromCart(_) => "remove_from_cart",
            CartAction::UpdateQuantity(_) => "update_quantity",
            CartAction::Checkout(_) => "checkout",
        }
    }
}

/// A product line in the cart, with the cart's size and value after the change.
#[derive(Debug, Clone, PartialEq)]
pub struct CartItem {
    pub product_id: String,
    pub product_name: String,
    pub category: String,
    pub price: Decimal,
    pub quantity: i32,
    pub cart_size: i32,
    pub cart_value: Decimal,
}

/// `update_quantity`: the line with its new quantity, and the quantity before.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantityChange {
    pub item: CartItem,
    pub old_quantity: i32,
    pub new_quantity: i32,
}

/// `checkout`: the cart's contents as they are ordered.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkout {
    pub items: Vec<LineItem>,
    pub total_items: i32,
    pub total_value: Decimal,
    pub cart_size: i32,
}

/// `product-views-topic`: browsing.
pub type ProductViewEvent = SessionEvent<ViewAction>;

impl<'de> Deserialize<'de> for ProductViewEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        WireSessionEvent::deserialize(deserializer)?
            .into_view()
            .map_err(de::Error::custom)
    }
}

/// The kind of browsing event, tagged by `event_type`.
#[derive(Debug, Clone, PartialEq)]
pub enum ViewAction {
    View(ProductView),
    Search(Search),
    Filter(Filter),
    Compare(Compare),
}

impl ViewAction {
    /// The `event_type` value.
    pub fn event_type(&self) -> &'static str {
        match self {
            ViewAction::View(_) => "view",
            ViewAction::Search(_) => "search",
            ViewAction::Filter(_) => "filter",
            ViewAction::Compare(_) => "compare",
        }
    }
}

/// A product page seen for `view_duration` seconds, maybe reached from a search.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductView {
    pub product_id: String,
    pub product_name: String,
    pub category: String,
    pub price: Decimal,
    pub view_duration: i32,
    pub search_query: Option<String>,
}

/// A search and how many products it found.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    pub search_query: String,
    pub results_count: i32,
}

/// A filter by category, by price range or both, and how many products it left. The replaced
/// platform's producers send the criteria a filter does not use as null.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub filter_category: Option<String>,
    pub min_price: Option<Decimal>,
    pub max_price: Option<Decimal>,
    pub results_count: i32,
}

/// Products compared side by side.
#[derive(Debug, Clone, PartialEq)]
pub struct Compare {
    pub product_ids: Vec<String>,
    pub category: String,
}

/// `products-topic` (key product_id): the latest version of a product, re-sent on change.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Product {
    pub product_id: String,
    pub name: String,
    pub category: String,
    #[serde(deserialize_with = "crate::money::deserialize")]
    pub price: Decimal,
    /// Units in stock.
    pub inventory: i32,
    pub rating: Decimal,
    #[serde(deserialize_with = "crate::timestamp::deserialize")]
    pub updated_at: DateTime<Utc>,
}

/// `users-topic` (key user_id): the latest version of a user, re-sent on change.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct User {
    pub user_id: String,
    pub email: String,
    pub age: i32,
    pub country: Country,
    #[serde(deserialize_with = "crate::timestamp::deserialize")]
    pub registration_date: DateTime<Utc>,
    pub preferences: Vec<CategoryGroup>,
    #[serde(deserialize_with = "crate::timestamp::deserialize")]
    pub updated_at: DateTime<Utc>,
}

/// Any record of the platform, as read from or written to its topic.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Transaction(Transaction),
    ProductView(ProductViewEvent),
    Cart(CartEvent),
    Product(Product),
    User(User),
}

/// Why a message could not become an [`Event`]: the reason stored with a dead letter.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    #[error("payload of {size} bytes exceeds the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("payload is not valid UTF-8")]
    NotUtf8,
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    #[error("invalid {record}: {detail}")]
    WrongShape {
        record: &'static str,
        detail: String,
    },
    #[error("{0} is not an event topic")]
    UnknownTopic(String),
    #[error(transparent)]
    Invalid(#[from] Invalid),
}

/// Messages larger than this are rejected before parsing: no valid event comes near it, and a
/// flood of huge payloads must not exhaust memory.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;

impl Event {
    /// The topic this record belongs on.
    pub fn topic(&self) -> Topic {
        match self {
            Event::Transaction(_) => Topic::Transactions,
            Event::ProductView(_) => Topic::ProductViews,
            Event::Cart(_) => Topic::CartEvents,
            Event::Product(_) => Topic::Products,
            Event::User(_) => Topic::Users,
        }
    }

    /// When it happened: the time of a transaction, view or cart event; none for a catalogue
    /// record.
    pub fn time(&self) -> Option<DateTime<Utc>> {
        match self {
            Event::Transaction(e) => Some(e.timestamp),
            Event::ProductView(e) => Some(e.timestamp),
            Event::Cart(e) => Some(e.timestamp),
            Event::Product(_) | Event::User(_) => None,
        }
    }

    /// The message key: user_id for events, the record's id for the catalogue.
    pub fn key(&self) -> &str {
        match self {
            Event::Transaction(e) => &e.user_id,
            Event::ProductView(e) => &e.user_id,
            Event::Cart(e) => &e.user_id,
            Event::Product(p) => &p.product_id,
            Event::User(u) => &u.user_id,
        }
    }

    /// The JSON payload of the message.
    pub fn to_json(&self) -> Vec<u8> {
        // Records are about 360 bytes (p99 440): one allocation instead of growing from 128.
        let mut json = Vec::with_capacity(640);
        self.write_json(&mut json);
        json
    }

    /// [`Event::to_json`] appended to `out`, for a writer that reuses one buffer for every
    /// record.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        encode::event(self, out);
    }

    /// Parses a message of `topic` and validates it against `now`; the error is the reason a
    /// dead letter is stored with.
    pub fn parse(topic: Topic, payload: &[u8], now: DateTime<Utc>) -> Result<Event, Rejection> {
        if payload.len() > MAX_EVENT_BYTES {
            return Err(Rejection::TooLarge {
                size: payload.len(),
                limit: MAX_EVENT_BYTES,
            });
        }
        let text = std::str::from_utf8(payload).map_err(|_| Rejection::NotUtf8)?;
        let event = match topic {
            Topic::Transactions => Event::Transaction(from_json(text, "transaction")?),
            Topic::ProductViews => Event::ProductView(from_json(text, "product view event")?),
            Topic::CartEvents => Event::Cart(from_json(text, "cart event")?),
            Topic::Products => Event::Product(from_json(text, "product")?),
            Topic::Users => Event::User(from_json(text, "user")?),
            Topic::Alerts => return Err(Rejection::UnknownTopic(topic.name().to_owned())),
        };
        event.validate(now)?;
        Ok(event)
    }

    /// Checks the event contract's rules; see [`crate::validate`].
    pub fn validate(&self, now: DateTime<Utc>) -> Result<(), Invalid> {
        match self {
            Event::Transaction(e) => validate::transaction(e, now),
            Event::ProductView(e) => validate::product_view(e, now),
            Event::Cart(e) => validate::cart_event(e, now),
            Event::Product(p) => validate::product(p, now),
            Event::User(u) => validate::user(u, now),
        }
    }
}

/// Deserialises `text`, telling syntax errors (not JSON at all) from shape errors (JSON, but a
/// missing field, a wrong type or an unknown enum value). Positions are left out of the reason
/// so equal defects get equal reasons.
fn from_json<T: serde::de::DeserializeOwned>(
    text: &str,
    record: &'static str,
) -> Result<T, Rejection> {
    serde_json::from_str(text).map_err(|e| {
        let message = e.to_string();
        let detail = match message.rsplit_once(" at line ") {
            Some((head, _)) => head.to_owned(),
            None => message,
        };
        match e.classify() {
            serde_json::error::Category::Data => Rejection::WrongShape { record, detail },
            _ => Rejection::MalformedJson(detail),
        }
    })
}
