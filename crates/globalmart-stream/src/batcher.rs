//! The batcher: consumed messages sorted by destination into one [`Batch`], the unit saved in
//! one transaction. A batch keeps each (partition, offset) and each event id once: a partition
//! reassigned mid-batch is sought back to the database's offset, so messages already in the
//! batch can be read again, and the same event may have been produced twice. The metrics count
//! what a batch inserted, so a repeat inside one batch must not reach them
//! (docs/ARCHITECTURE.md, "Metrics counted once").

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use globalmart_core::event::{
    CartEvent, Event, Product, ProductViewEvent, Rejection, Transaction, User,
};
use tracing::error;
use uuid::Uuid;

/// A message as read from Kafka.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// The topic's name on the broker (with any prefix).
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Key and payload: needed only when the message becomes a dead letter.
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
}

/// The messages of one batch, sorted by destination.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    pub(crate) transactions: Vec<Transaction>,
    pub(crate) views: Vec<ProductViewEvent>,
    pub(crate) carts: Vec<CartEvent>,
    pub(crate) products: Vec<Product>,
    pub(crate) users: Vec<User>,
    /// Messages that could not become events, whole, with the reason.
    pub(crate) dead_letters: Vec<(Received, String)>,
    /// (topic, partition) -> the offset to resume from.
    pub(crate) next_offsets: BTreeMap<(String, i32), i64>,
    /// (topic, partition) -> the latest event time among its events in the batch.
    pub(crate) event_times: BTreeMap<(String, i32), DateTime<Utc>>,
    /// The ids of the events in the batch: an event may be in it once only.
    ids: HashSet<Uuid>,
    /// Rows of the messages left out as repeats.
    pub(crate) repeated: u64,
    messages: usize,
    /// The messages of events older than a day, by event id: such an event becomes a dead
    /// letter when raw retention removed its day ([`Batch::retired`]).
    aged: HashMap<Uuid, Received>,
}

impl Batch {
    /// Adds a message and what parsing it gave. A message already in the batch (read again
    /// after a seek back, when a partition is reassigned mid-batch) or an event already in it
    /// (the same event produced twice) is left out and counted as a duplicate.
    pub fn add(&mut self, message: Received, parsed: Result<Event, Rejection>) {
        self.messages += 1;
        let next = self
            .next_offsets
            .entry((message.topic.clone(), message.partition))
            .or_insert(0);
        let read_before = message.offset < *next;
        *next = (*next).max(message.offset + 1);
        let (id, rows) = match &parsed {
            Ok(Event::Transaction(t)) => (Some(t.transaction_id), t.products.len() as u64),
            Ok(Event::ProductView(v)) => (Some(v.event_id), 1),
            Ok(Event::Cart(c)) => (Some(c.event_id), 1),
            _ => (None, 1),
        };
        if let Some(at) = parsed.as_ref().ok().and_then(Event::time) {
            let latest = (self.event_times)
                .entry((message.topic.clone(), message.partition))
                .or_insert(at);
            *latest = (*latest).max(at);
        }
        if read_before || id.is_some_and(|id| !self.ids.insert(id)) {
            self.repeated += rows;
            return;
        }
        let event = match parsed {
            Ok(event) => event,
            Err(rejection) => {
                self.dead_letters.push((message, rejection.to_string()));
                return;
            }
        };
        // An event that kept its message (older than a day: source.rs) keeps it here.
        if let (Some(id), Some(_)) = (id, &message.payload) {
            self.aged.insert(id, message);
        }
        match event {
            Event::Transaction(t) => self.transactions.push(t),
            Event::ProductView(v) => self.views.push(v),
            Event::Cart(c) => self.carts.push(c),
            Event::Product(p) => self.products.push(p),
            Event::User(u) => self.users.push(u),
        }
    }

    /// The batch without its events from before `horizon`, the first day the raw tables keep
    /// (raw retention removed the days before): those become dead letters instead, so an event
    /// replayed after its day was removed is not saved a second time, and a very late one is
    /// kept with its reason. The batch itself when it has none.
    pub fn retired(&self, horizon: NaiveDate) -> Cow<'_, Batch> {
        let before = |at: &DateTime<Utc>| at.date_naive() < horizon;
        let any = self.transactions.iter().any(|t| before(&t.timestamp))
            || self.views.iter().any(|v| before(&v.timestamp))
            || self.carts.iter().any(|c| before(&c.timestamp));
        if !any {
            return Cow::Borrowed(self);
        }
        let mut kept = self.clone();
        let mut retire = |id: &Uuid, at: &DateTime<Utc>| {
            if !before(at) {
                return false;
            }
            // Present by construction: every event older than a day keeps its message, and the
            // horizon is at least a day old (STREAM_RAW_RETENTION). Were it missing, the event
            // stays, and its save fails on the missing day (retried, logged): never dropped.
            let Some(message) = self.aged.get(id) else {
                error!(%id, "an event of a removed day has no message to keep as a dead letter");
                return false;
            };
            let reason = format!(
                "event time {} is before {horizon}, the first day the realtime database keeps \
                 (STREAM_RAW_RETENTION); that day is in the warehouse",
                at.to_rfc3339()
            );
            kept.dead_letters.push((message.clone(), reason));
            true
        };
        let transactions = (self.transactions.iter())
            .filter(|t| !retire(&t.transaction_id, &t.timestamp))
            .cloned()
            .collect();
        let views = (self.views.iter())
            .filter(|v| !retire(&v.event_id, &v.timestamp))
            .cloned()
            .collect();
        let carts = (self.carts.iter())
            .filter(|c| !retire(&c.event_id, &c.timestamp))
            .cloned()
            .collect();
        kept.transactions = transactions;
        kept.views = views;
        kept.carts = carts;
        Cow::Owned(kept)
    }

    /// The days of the batch's events.
    pub fn days(&self) -> BTreeSet<NaiveDate> {
        self.event_times().map(DateTime::date_naive).collect()
    }

    /// The timestamps of the batch's events (for end-to-end latency).
    pub fn event_times(&self) -> impl Iterator<Item = &DateTime<Utc>> {
        let transactions = self.transactions.iter().map(|t| &t.timestamp);
        let views = self.views.iter().map(|v| &v.timestamp);
        transactions
            .chain(views)
            .chain(self.carts.iter().map(|c| &c.timestamp))
    }

    /// The offset each (topic, partition) of the batch resumes from once it is saved.
    pub fn next_offsets(&self) -> impl Iterator<Item = (&(String, i32), &i64)> {
        self.next_offsets.iter()
    }

    /// Messages in the batch.
    pub fn len(&self) -> usize {
        self.messages
    }

    /// Whether the batch has no message.
    pub fn is_empty(&self) -> bool {
        self.messages == 0
    }
}
