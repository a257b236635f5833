//! The generator's settings: the replaced platform's `DATA_GEN_*` keys plus the shared Kafka and
//! metrics settings, all read by the one loader in globalmart-core.

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use clap::Parser;
use globalmart_core::config::{parse_duration, KafkaArgs};
use globalmart_core::timestamp;

use crate::timeline::{midnight, Period, Shape};

/// How fast to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    /// This many events per second.
    PerSecond(u32),
    /// As fast as the broker takes them.
    Max,
}

impl Rate {
    fn parse(text: &str) -> Result<Rate, String> {
        if text.eq_ignore_ascii_case("max") {
            return Ok(Rate::Max);
        }
        match text.trim().parse::<u32>() {
            Ok(n) if n > 0 => Ok(Rate::PerSecond(n)),
            _ => Err("expected a positive whole number of events per second, or \"max\"".into()),
        }
    }
}

/// Generates realistic e-commerce events (product views, cart events, transactions) and the
/// product and user catalogue into Kafka.
#[derive(Debug, Parser)]
#[command(name = "globalmart-generator", version, about)]
pub struct Config {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// Events per second, or "max" for as fast as the broker takes them.
    #[arg(long = "rate", env = "DATA_GEN_EVENTS_PER_SECOND", default_value = "50", value_parser = Rate::parse)]
    pub rate: Rate,

    /// The shop's size: "small" (10,000 users, 1,000 products, 2,000 orders a day) or
    /// "course", the course's scenario (10,000,000 users, 250,000 products, 100,000 orders a
    /// day). Both have 100 categories and 5 countries; --users, --products and
    /// --orders-per-day override the profile's figure.
    #[arg(long, env = "GENERATOR_PROFILE", value_enum, default_value = "small")]
    pub profile: Profile,

    /// Number of users in the catalogue (default: the profile's).
    #[arg(long = "users", env = "DATA_GEN_NUM_USERS",
          value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub users: Option<u32>,

    /// Number of products in the catalogue (default: the profile's).
    #[arg(long = "products", env = "DATA_GEN_NUM_PRODUCTS",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub products: Option<u32>,

    /// Seed of the catalogue and the event sequence: the same seed gives the same catalogue and
    /// the same events (timestamps aside). Without it the catalogue is the default shop (seed 42)
    /// and the events are new each run, so reruns never repeat event ids.
    #[arg(long, env = "GENERATOR_SEED")]
    pub seed: Option<u64>,

    /// Stop after this many events (views, cart events and transactions; the catalogue is extra).
    #[arg(long, env = "GENERATOR_COUNT")]
    pub count: Option<u64>,

    /// Stop after this long: 90, 90s, 15m or 2h.
    #[arg(long, env = "GENERATOR_DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Print the events as JSON lines ({"topic":..,"key":..,"value":{..}}) instead of producing.
    #[arg(long, env = "GENERATOR_DRY_RUN")]
    pub dry_run: bool,

    /// Share of transactions that are anomalies (total >= 3000 or a line of 50+ units).
    #[arg(long, env = "GENERATOR_ANOMALY_SHARE", default_value = "0.02", value_parser = share)]
    pub anomaly_share: f64,

    /// Catalogue changes (price change, restock, rename, user moves or changes email) per event.
    #[arg(long, env = "GENERATOR_CATALOGUE_CHANGE_RATE", default_value = "0.005", value_parser = share)]
    pub catalogue_change_rate: f64,

    /// Shopping sessions in progress at the same time.
    #[arg(long, env = "GENERATOR_ACTIVE_SESSIONS", default_value = "200",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub active_sessions: u32,

    /// How long a record may wait for the broker (retried meanwhile) before it counts as lost.
    #[arg(long, env = "GENERATOR_DELIVERY_TIMEOUT", default_value = "5m", value_parser = parse_duration)]
    pub delivery_timeout: Duration,

    /// How many records may wait in the producer's queue for the broker (what an outage holds
    /// in memory); when it is full, generation waits for room and counts it in
    /// globalmart_generator_queue_full_total.
    #[arg(long, env = "GENERATOR_QUEUE_RECORDS", default_value = "500000",
          value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub queue_records: u32,

    /// How often to print the statistics line: 5s, 1m ...
    #[arg(long, env = "GENERATOR_STATS_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub stats_interval: Duration,

    /// Where to serve Prometheus metrics (GET /metrics).
    #[arg(long, env = "METRICS_ADDR", default_value = "127.0.0.1:9101")]
    pub metrics_addr: SocketAddr,

    /// Backfill: generate the history from this day (YYYY-MM-DD, 00:00 UTC) with event times on
    /// a simulated clock, as fast as the broker takes them (--rate applies to --then-live only).
    #[arg(long, env = "GENERATOR_FROM", value_parser = day, conflicts_with = "days")]
    pub from: Option<NaiveDate>,

    /// Backfill up to the end of this day (YYYY-MM-DD, UTC; default: now). Event time never
    /// passes the wall clock: a later end stops at now.
    #[arg(long, env = "GENERATOR_TO", value_parser = day, requires = "from")]
    pub to: Option<NaiveDate>,

    /// Backfill the last N days, ending now.
    #[arg(long, env = "GENERATOR_DAYS", value_parser = clap::value_parser!(u32).range(1..=3660))]
    pub days: Option<u32>,

    /// After the backfill reaches now, carry on in real time at --rate.
    #[arg(long, env = "GENERATOR_THEN_LIVE")]
    pub then_live: bool,

    /// Backfill volume: orders a day on an ordinary day (default: the profile's); views and
    /// cart events follow at 60/30/10, the daily and weekly curves and promotion days shape it.
    #[arg(long, env = "GENERATOR_ORDERS_PER_DAY",
          value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub orders_per_day: Option<u32>,

    /// The catalogue at start: "auto" publishes it unless products-topic and users-topic hold
    /// this run's catalogue already; "skip" never does (the topics hold the shop's catalogue from
    /// an earlier run of another period: a backfill in parts, an increment). Catalogue changes
    /// during the run are published either way.
    #[arg(long, env = "GENERATOR_CATALOGUE", value_enum, default_value = "auto")]
    pub catalogue: Publish,

    /// Promotion days (YYYY-MM-DD, comma separated): twice the traffic in a backfill, and 15 %
    /// off what goes into a cart that day.
    #[arg(long, env = "GENERATOR_PROMOTION_DAYS", value_parser = day, value_delimiter = ',')]
    pub promotion_days: Vec<NaiveDate>,
}

/// Whether to publish the catalogue at start (--catalogue).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Publish {
    /// Unless the topics hold this run's catalogue already.
    Auto,
    /// Never: the topics hold the shop's catalogue.
    Skip,
}

/// A shop's size (--profile).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// 10,000 users, 1,000 products, 2,000 orders a day.
    Small,
    /// The course's scenario: 10,000,000 users, 250,000 products, 100,000 orders a day.
    Course,
}

impl Profile {
    /// Users, products and orders a day.
    fn size(self) -> (u32, u32, u32) {
        match self {
            Profile::Small => (10_000, 1_000, 2_000),
            Profile::Course => (10_000_000, 250_000, 100_000),
        }
    }
}

impl Config {
    /// Users in the catalogue: --users, or the profile's.
    pub fn users(&self) -> u32 {
        self.users.unwrap_or(self.profile.size().0)
    }

    /// Products in the catalogue: --products, or the profile's.
    pub fn products(&self) -> u32 {
        self.products.unwrap_or(self.profile.size().1)
    }

    /// Orders a day of a backfill: --orders-per-day, or the profile's.
    pub fn orders_per_day(&self) -> u32 {
        self.orders_per_day.unwrap_or(self.profile.size().2)
    }

    /// The period to backfill as of `now`, if any; it ends at `now` at the latest.
    pub fn backfill(&self, now: DateTime<Utc>) -> Result<Option<Period>, String> {
        let start = match (self.from, self.days) {
            (Some(from), _) => midnight(from),
            (None, Some(days)) => now - chrono::Duration::days(i64::from(days)),
            (None, None) => return Ok(None),
        };
        let end = self
            .to
            .map_or(now, |to| midnight(to + chrono::Duration::days(1)).min(now));
        if start >= end {
            return Err(format!(
                "GENERATOR_FROM / --from {} is not before the end of the backfill {} (event time \
                 never passes the wall clock)",
                timestamp::format(&start),
                timestamp::format(&end)
            ));
        }
        Ok(Some(Period { start, end }))
    }

    /// The traffic shape of the backfill.
    pub fn shape(&self) -> Shape {
        Shape {
            promotions: self.promotion_days.clone(),
        }
    }

    /// The shop and session settings of this run's [`crate::mix::Mix`].
    pub fn mix_settings(&self) -> crate::mix::MixSettings {
        crate::mix::MixSettings {
            users: self.users(),
            products: self.products(),
            anomaly_share: self.anomaly_share,
            catalogue_change_rate: self.catalogue_change_rate,
            active_sessions: self.active_sessions as usize,
        }
    }
}

/// The seed of the default shop, used when no --seed is given.
pub const DEFAULT_CATALOGUE_SEED: u64 = 42;

fn day(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|_| "expected a day as YYYY-MM-DD, such as 2026-10-01".into())
}

fn share(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err("expected a fraction from 0 to 1, such as 0.02".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_fractions() {
        assert_eq!(share("0.02"), Ok(0.02));
        for bad in ["2", "-0.1", "two"] {
            assert!(share(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn rate_accepts_positive_numbers_and_max() {
        assert_eq!(Rate::parse("500"), Ok(Rate::PerSecond(500)));
        assert_eq!(Rate::parse("MAX"), Ok(Rate::Max));
        for bad in ["0", "-5", "fast", "1.5", ""] {
            assert!(Rate::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }
}
