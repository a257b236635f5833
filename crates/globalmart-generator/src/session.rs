//! One user's shopping session: it browses (view, search, filter, compare), changes its cart
//! (add, remove, update quantity) and either checks out, and then pays with exactly the cart's
//! lines, or is abandoned. Each method emits the event of one step and updates the state.

use chrono::{DateTime, Utc};
use globalmart_core::domain::{CategoryGroup, Country, PaymentMethod};
use globalmart_core::event::{
    CartAction, CartEvent, CartItem, Checkout, Compare, Filter, LineItem, ProductView,
    ProductViewEvent, QuantityChange, Search, SessionEvent, Transaction, ViewAction,
};
use globalmart_core::validate::line_total;
use rand::seq::IndexedRandom;
use rand::RngExt;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::catalogue::Catalogue;
use crate::Rng;

/// A normal cart stays below the high-value threshold (3,000), so only injected anomalies
/// cross it.
pub const NORMAL_CART_LIMIT: Decimal = Decimal::from_parts(2900, 0, 0, false, 0);

/// A product line in a session's cart.
#[derive(Debug, Clone, PartialEq)]
pub struct CartLine {
    pub product: usize,
    pub quantity: i32,
    pub price: Decimal,
}

/// The state of one session.
#[derive(Debug, Clone)]
pub struct Session {
    /// The shopper, as of the session's start.
    pub user_id: String,
    pub preferences: Vec<CategoryGroup>,
    pub session_id: String,
    pub country: Country,
    /// Products looked at, most recent last (the candidates for the cart).
    pub viewed: Vec<usize>,
    pub cart: Vec<CartLine>,
    /// Views left before a session that never fills a cart ends.
    pub views_left: u32,
}

/// A UUID v4 drawn from the seeded generator, so ids repeat with the seed.
pub fn uuid_v4(rng: &mut Rng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.random()).into_uuid()
}

impl Session {
    /// Starts a session of customer `user`.
    pub fn start(rng: &mut Rng, catalogue: &Catalogue, user: u32) -> Session {
        let (user_id, country, preferences) = catalogue.customers.shopper(user);
        Session {
            user_id,
            preferences,
            session_id: uuid_v4(rng).to_string(),
            country,
            viewed: Vec::new(),
            cart: Vec::new(),
            views_left: rng.random_range(3..=15),
        }
    }

    /// Σ quantity × price of the cart.
    pub fn cart_value(&self) -> Decimal {
        self.cart
            .iter()
            .map(|l| Decimal::from(l.quantity) * l.price)
            .sum()
    }

    /// Units in the cart.
    pub fn cart_units(&self) -> i32 {
        self.cart.iter().map(|l| l.quantity).sum()
    }

    fn envelope<A>(&self, rng: &mut Rng, now: DateTime<Utc>, action: A) -> SessionEvent<A> {
        SessionEvent {
            event_id: uuid_v4(rng),
            timestamp: now,
            user_id: self.user_id.clone(),
            session_id: self.session_id.clone(),
            country: self.country,
            action,
        }
    }

    /// One browsing step: mostly product views (which feed the cart), some searches, filters
    /// and comparisons.
    pub fn browse(
        &mut self,
        rng: &mut Rng,
        catalogue: &Catalogue,
        now: DateTime<Utc>,
    ) -> ProductViewEvent {
        self.views_left = self.views_left.saturating_sub(1);
        let index = catalogue.pick_product(rng, &self.preferences);
        let product = &catalogue.products[index];
        let action = match rng.random_range(0..100) {
            0..=69 => {
                self.viewed.push(index);
                if self.viewed.len() > 10 {
                    self.viewed.remove(0);
                }
                ViewAction::View(ProductView {
                    product_id: product.product_id.clone(),
                    product_name: product.name.clone(),
                    category: product.category.clone(),
                    price: product.price,
                    view_duration: rng.random_range(5..=300),
                    search_query: rng
                        .random_bool(0.3)
                        .then(|| product.category.to_lowercase()),
                })
            }
            70..=84 => ViewAction::Search(Search {
                search_query: product.name.to_lowercase(),
                results_count: rng.random_range(0..=120),
            }),
            85..=94 => {
                let (low, high) = (
                    product.price * Decimal::new(5, 1),
                    product.price * Decimal::TWO,
                );
                ViewAction::Filter(Filter {
                    filter_category: Some(product.category.clone()),
                    min_price: Some(low.round_dp(2)),
                    max_price: Some(high.round_dp(2).min(Decimal::from(10_000))),
                    results_count: rng.random_range(0..=60),
                })
            }
            _ => {
                let peers = catalogue.same_category(index);
                let wanted = rng.random_range(2..=4).min(peers.len().max(2));
                let mut product_ids: Vec<String> = peers
                    .sample(rng, wanted)
                    .map(|&i| catalogue.products[i].product_id.clone())
                    .collect();
                if product_ids.len() < 2 {
                    // A category with a single product: compare it with a random other one.
                    let other = rng.random_range(0..catalogue.products.len());
                    product_ids.push(catalogue.products[other].product_id.clone());
                }
                ViewAction::Compare(Compare {
                    product_ids,
                    category: product.category.clone(),
                })
            }
        };
        self.envelope(rng, now, action)
    }

    /// Adds `quantity` of `product` at `price` (merging with a line of the same product, whose
    /// price stays).
    pub fn add(
        &mut self,
        rng: &mut Rng,
        catalogue: &Catalogue,
        now: DateTime<Utc>,
        product: usize,
        (quantity, price): (i32, Decimal),
    ) -> CartEvent {
        match self.cart.iter_mut().find(|l| l.product == product) {
            Some(line) => line.quantity = (line.quantity + quantity).min(100),
            None => self.cart.push(CartLine {
                product,
                quantity,
                price,
            }),
        }
        let item = self.item(catalogue, product, quantity, price);
        self.envelope(rng, now, CartAction::AddToCart(item))
    }

    /// Removes a random line; None when the cart is empty.
    pub fn remove(
        &mut self,
        rng: &mut Rng,
        catalogue: &Catalogue,
        now: DateTime<Utc>,
    ) -> Option<CartEvent> {
        if self.cart.is_empty() {
            return None;
        }
        let line = self.cart.remove(rng.random_range(0..self.cart.len()));
        let item = self.item(catalogue, line.product, line.quantity, line.price);
        Some(self.envelope(rng, now, CartAction::RemoveFromCart(item)))
    }

    /// Changes the quantity of a random line to another in 1..=5, keeping the cart below
    /// [`NORMAL_CART_LIMIT`]; None when the cart is empty or the line cannot change.
    pub fn update(
        &mut self,
        rng: &mut Rng,
        catalogue: &Catalogue,
        now: DateTime<Utc>,
    ) -> Option<CartEvent> {
        if self.cart.is_empty() {
            return None;
        }
        let i = rng.random_range(0..self.cart.len());
        let (old_quantity, price) = (self.cart[i].quantity, self.cart[i].price);
        let rest = self.cart_value() - Decimal::from(old_quantity) * price;
        let affordable = ((NORMAL_CART_LIMIT - rest) / price.max(Decimal::ONE))
            .floor()
            .to_i32()
            .unwrap_or(1);
        let most = affordable.clamp(1, 5);
        let mut new_quantity = rng.random_range(1..=most);
        if new_quantity == old_quantity {
            new_quantity = if old_quantity > 1 {
                old_quantity - 1
            } else {
                2
            };
        }
        if new_quantity > most {
            return None;
        }
        self.cart[i].quantity = new_quantity;
        let line = self.cart[i].clone();
        let item = self.item(catalogue, line.product, new_quantity, line.price);
        let change = QuantityChange {
            item,
            old_quantity,
            new_quantity,
        };
        Some(self.envelope(rng, now, CartAction::UpdateQuantity(change)))
    }

    /// Checks the cart out; returns the event and the lines the transaction will carry.
    pub fn checkout(
        &mut self,
        rng: &mut Rng,
        catalogue: &Catalogue,
        now: DateTime<Utc>,
    ) -> (CartEvent, Vec<LineItem>) {
        let items = self.lines(catalogue);
        let checkout = Checkout {
            total_items: self.cart_units(),
            total_value: line_total(&items),
            cart_size: self.cart.len() as i32,
            items: items.clone(),
        };
        let event = self.envelope(rng, now, CartAction::Checkout(checkout));
        (event, items)
    }

    /// The order for lines that were checked out.
    pub fn pay(&self, rng: &mut Rng, now: DateTime<Utc>, lines: Vec<LineItem>) -> Transaction {
        Transaction {
            transaction_id: uuid_v4(rng),
            user_id: self.user_id.clone(),
            session_id: Some(self.session_id.clone()),
            timestamp: now,
            total_amount: line_total(&lines),
            products: lines,
            payment_method: *PaymentMethod::ALL
                .choose(rng)
                .unwrap_or(&PaymentMethod::CreditCard),
            country: self.country,
        }
    }

    fn lines(&self, catalogue: &Catalogue) -> Vec<LineItem> {
        self.cart
            .iter()
            .map(|l| LineItem {
                product_id: catalogue.products[l.product].product_id.clone(),
                quantity: l.quantity,
                price: l.price,
            })
            .collect()
    }

    fn item(
        &self,
        catalogue: &Catalogue,
        product: usize,
        quantity: i32,
        price: Decimal,
    ) -> CartItem {
        let p = &catalogue.products[product];
        CartItem {
            product_id: p.product_id.clone(),
            product_name: p.name.clone(),
            category: p.category.clone(),
            price,
            quantity,
            cart_size: self.cart.len() as i32,
            cart_value: self.cart_value(),
        }
    }
}
