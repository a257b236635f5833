//! The event source: a pool of concurrent sessions driven so that the overall mix stays
//! 60 % views, 30 % cart events, 10 % transactions. Each step serves the kind furthest below its
//! share that some session can produce, so the mix holds at any count while every transaction
//! still follows its own session's checkout. A configured share of checkouts first gets an
//! anomalous line (high value or high quantity); catalogue changes are interleaved at their own
//! rate. Everything is drawn from one seeded generator: the same seed gives the same sequence.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use globalmart_core::event::{Event, LineItem};
use rand::RngExt;
use rand::SeedableRng;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use crate::catalogue::Catalogue;
use crate::session::{Session, NORMAL_CART_LIMIT};
use crate::timeline::{Period, Shape};
use crate::Rng;

/// Target shares of views, cart events and transactions.
const SHARES: [f64; 3] = [0.6, 0.3, 0.1];
/// The share of transactions among the events: orders a day x 10 = events a day.
pub const TRANSACTION_SHARE: f64 = SHARES[2];
/// What a promotion day takes off the list price of what goes into a cart: 15 %.
pub const PROMOTION_DISCOUNT: Decimal = Decimal::from_parts(15, 0, 0, false, 2);
/// Chance that a session with a cart is abandoned when it is picked for a cart step.
const ABANDON_CHANCE: f64 = 0.06;

/// What shapes the stream.
#[derive(Debug, Clone)]
pub struct MixSettings {
    pub users: u32,
    pub products: u32,
    /// Share of transactions that are anomalies (0..=1).
    pub anomaly_share: f64,
    /// Catalogue changes per event (0..=1).
    pub catalogue_change_rate: f64,
    /// Sessions browsing at the same time.
    pub active_sessions: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    View,
    Cart,
    Transaction,
}

/// Counts of what was generated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub views: u64,
    pub cart_events: u64,
    pub transactions: u64,
    pub anomalies: u64,
    pub catalogue_changes: u64,
}

impl Counts {
    /// Events on the three event topics.
    pub fn events(&self) -> u64 {
        self.views + self.cart_events + self.transactions
    }
}

/// The generator of the whole event stream.
#[derive(Debug)]
pub struct Mix {
    rng: Rng,
    pub catalogue: Catalogue,
    settings: MixSettings,
    sessions: Vec<Session>,
    /// Its promotion days give carts the promotion discount.
    shape: Shape,
    /// Sessions that checked out, with their lines, waiting to pay (in checkout order).
    awaiting_payment: VecDeque<(Session, Vec<LineItem>)>,
    /// Indexes (into `sessions`) of sessions whose anomalous line was added: they check out next.
    anomalous: Vec<usize>,
    counts: Counts,
}

impl Mix {
    /// Builds the catalogue of `shop` (see [`Catalogue::build`]) from `catalogue_seed` and the
    /// event sequence from `seed`.
    pub fn new(settings: MixSettings, catalogue_seed: u64, seed: u64, shop: Period) -> Mix {
        let mut catalogue_rng = Rng::seed_from_u64(catalogue_seed);
        let catalogue =
            Catalogue::build(&mut catalogue_rng, settings.users, settings.products, shop);
        Mix {
            rng: Rng::seed_from_u64(seed),
            catalogue,
            settings,
            sessions: Vec::new(),
            shape: Shape::default(),
            awaiting_payment: VecDeque::new(),
            anomalous: Vec::new(),
            counts: Counts::default(),
        }
    }

    /// Carts put together on the promotion days of `shape` get [`PROMOTION_DISCOUNT`] off the
    /// list price.
    pub fn promoting(mut self, shape: Shape) -> Mix {
        self.shape = shape;
        self
    }

    /// The share of the list price a cart pays at `at`.
    fn discount(&self, at: DateTime<Utc>) -> Decimal {
        if self.shape.is_promotion(at.date_naive()) {
            Decimal::ONE - PROMOTION_DISCOUNT
        } else {
            Decimal::ONE
        }
    }

    /// What was generated so far.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// The next record: an event, or now and then a catalogue change.
    pub fn next(&mut self, now: DateTime<Utc>) -> Event {
        if self.rng.random_bool(self.settings.catalogue_change_rate) {
            self.counts.catalogue_changes += 1;
            return self.catalogue.change(&mut self.rng, now);
        }
        for kind in self.by_deficit() {
            let event = match kind {
                Kind::Transaction => self.transaction(now),
                Kind::Cart => self.cart_step(now),
                Kind::View => Some(self.view(now)),
            };
            if let Some(event) = event {
                match kind {
                    Kind::View => self.counts.views += 1,
                    Kind::Cart => self.counts.cart_events += 1,
                    Kind::Transaction => self.counts.transactions += 1,
                }
                return event;
            }
        }
        // Unreachable in practice: a view can always be produced.
        self.counts.views += 1;
        self.view(now)
    }

    /// How far each kind is below its share of the next event (negative: above it).
    fn deficits(&self) -> [(Kind, f64); 3] {
        let c = &self.counts;
        let n = (c.events() + 1) as f64;
        [
            (Kind::View, SHARES[0] * n - c.views as f64),
            (Kind::Cart, SHARES[1] * n - c.cart_events as f64),
            (Kind::Transaction, SHARES[2] * n - c.transactions as f64),
        ]
    }

    /// The kinds, the one furthest below its share first.
    fn by_deficit(&self) -> [Kind; 3] {
        let mut kinds = self.deficits();
        kinds.sort_by(|a, b| b.1.total_cmp(&a.1));
        kinds.map(|(kind, _)| kind)
    }

    fn view(&mut self, now: DateTime<Utc>) -> Event {
        if self.sessions.len() < self.settings.active_sessions || self.sessions.is_empty() {
            let user = self.catalogue.customers.pick(&mut self.rng, now);
            self.sessions
                .push(Session::start(&mut self.rng, &self.catalogue, user));
        }
        let i = self.rng.random_range(0..self.sessions.len());
        let event = self.sessions[i].browse(&mut self.rng, &self.catalogue, now);
        // A session that only browsed ends after its views.
        if self.sessions[i].views_left == 0 && self.sessions[i].cart.is_empty() {
            self.end_session(i);
        }
        Event::ProductView(event)
    }

    fn transaction(&mut self, now: DateTime<Utc>) -> Option<Event> {
        let (session, lines) = self.awaiting_payment.pop_front()?;
        let order = session.pay(&mut self.rng, now, lines);
        Some(Event::Transaction(order))
    }

    /// A cart step: checkout when transactions need feeding (or a cart is full), else add,
    /// update or remove; sometimes a cart is abandoned instead.
    fn cart_step(&mut self, now: DateTime<Utc>) -> Option<Event> {
        if let Some(i) = self.anomalous.pop() {
            return Some(self.checkout(i, now));
        }
        let [_, _, (_, transactions_behind)] = self.deficits();
        let needs_checkout = self.awaiting_payment.is_empty() && transactions_behind > 0.0;
        if needs_checkout {
            if let Some(i) = self.find(|s| !s.cart.is_empty()) {
                if self.rng.random_bool(self.settings.anomaly_share) {
                    return Some(self.add_anomaly(i, now));
                }
                return Some(self.checkout(i, now));
            }
        }
        let i = self.find(|s| !s.viewed.is_empty() || !s.cart.is_empty())?;
        if !self.sessions[i].cart.is_empty() && self.rng.random_bool(ABANDON_CHANCE) {
            self.end_session(i);
            return self.cart_step(now);
        }
        let roll = self.rng.random_range(0..100);
        let discount = self.discount(now);
        let session = &mut self.sessions[i];
        let (rng, catalogue) = (&mut self.rng, &self.catalogue);
        let event = match roll {
            0..=14 if !session.cart.is_empty() => session.update(rng, catalogue, now),
            15..=24 if !session.cart.is_empty() => session.remove(rng, catalogue, now),
            _ => {
                let Some(product) = session.viewed.pop() else {
                    return session.update(rng, catalogue, now).map(Event::Cart);
                };
                if session.cart.iter().any(|l| l.product == product) {
                    // Seen again: change its quantity rather than pile units onto one line.
                    return session.update(rng, catalogue, now).map(Event::Cart);
                }
                let quantity = *[1, 1, 1, 1, 1, 1, 1, 2, 2, 3]
                    .get(rng.random_range(0..10))
                    .unwrap_or(&1);
                let price = sale_price(catalogue.products[product].price, discount);
                let over =
                    session.cart_value() + price * Decimal::from(quantity) >= NORMAL_CART_LIMIT;
                if over && !session.cart.is_empty() {
                    // The cart is full enough: check it out rather than cross the threshold.
                    return Some(self.checkout(i, now));
                }
                // One unit of any product (at most 2,000) stays below the threshold.
                let quantity = if over { 1 } else { quantity };
                Some(session.add(rng, catalogue, now, product, (quantity, price)))
            }
        };
        event.map(Event::Cart)
    }

    /// Adds the anomalous line to session `i`'s cart; the session checks out at its next step.
    fn add_anomaly(&mut self, i: usize, now: DateTime<Utc>) -> Event {
        self.counts.anomalies += 1;
        let discount = self.discount(now);
        let (rng, catalogue) = (&mut self.rng, &self.catalogue);
        let session = &mut self.sessions[i];
        let expensive = catalogue.expensive();
        let event = if rng.random_bool(0.5) && !expensive.is_empty() {
            // High value: an order total between 3,000 and 15,000.
            let product = expensive[rng.random_range(0..expensive.len())];
            let price = sale_price(catalogue.products[product].price, discount);
            let target = Decimal::from(rng.random_range(3_000..=15_000));
            let needed = ((target - session.cart_value()) / price).ceil();
            let quantity = needed.to_i32().unwrap_or(100).clamp(1, 100);
            session.add(rng, catalogue, now, product, (quantity, price))
        } else {
            // High quantity: one line of 50..=100 units.
            let product = rng.random_range(0..catalogue.products.len());
            let price = sale_price(catalogue.products[product].price, discount);
            let quantity = rng.random_range(50..=100);
            session.add(rng, catalogue, now, product, (quantity, price))
        };
        self.anomalous.push(i);
        Event::Cart(event)
    }

    /// Checks session `i` out and moves it to the payment queue.
    fn checkout(&mut self, i: usize, now: DateTime<Utc>) -> Event {
        let (event, lines) = self.sessions[i].checkout(&mut self.rng, &self.catalogue, now);
        let session = self.end_session(i);
        self.awaiting_payment.push_back((session, lines));
        Event::Cart(event)
    }

    /// Removes session `i` from the pool (keeping the anomaly marks pointing right).
    fn end_session(&mut self, i: usize) -> Session {
        let last = self.sessions.len() - 1;
        self.anomalous.retain(|&a| a != i);
        for a in &mut self.anomalous {
            if *a == last {
                *a = i;
            }
        }
        self.sessions.swap_remove(i)
    }

    /// A random session matching `wanted`: a few random probes, then a scan.
    fn find(&mut self, wanted: impl Fn(&Session) -> bool) -> Option<usize> {
        if self.sessions.is_empty() {
            return None;
        }
        for _ in 0..8 {
            let i = self.rng.random_range(0..self.sessions.len());
            if wanted(&self.sessions[i]) {
                return Some(i);
            }
        }
        self.sessions.iter().position(wanted)
    }
}

/// `list` times `share` (of [`Mix::discount`]), in cents.
fn sale_price(list: Decimal, share: Decimal) -> Decimal {
    if share == Decimal::ONE {
        list
    } else {
        (list * share).round_dp(2).max(Decimal::new(1, 2))
    }
}
