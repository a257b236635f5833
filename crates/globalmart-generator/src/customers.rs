//! The shop's customers, with a life: each user's attributes are derived from the catalogue
//! seed and their index (10 million users cost no memory; only changed users are held),
//! registrations run through the year before the generated period and the period itself (new
//! customers keep arriving), a few customers shop far more often than most (a heavy-tailed
//! activity), and some lapse and stop shopping. docs/RUNNING.md, "Customers", gives the
//! figures and the RFM segments they lead to.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use fake::locales::{Data, EN};
use globalmart_core::domain::{CategoryGroup, Country, IdKind};
use globalmart_core::event::User;
use rand::seq::IndexedRandom;
use rand::RngExt;
use rand::SeedableRng;

use crate::timeline::Period;
use crate::Rng;

/// How far before the generated period registrations begin.
pub const REGISTRATION_HISTORY: Duration = Duration::days(365);

/// The skew of activity: a session's shopper has rank ⌊N·u^ACTIVITY_SKEW⌋ for a uniform u, so
/// the top 1 % of customers start about a fifth of the sessions (0.01^(1/3)) and most of the
/// others shop rarely or never.
const ACTIVITY_SKEW: i32 = 3;

/// The share of customers who lapse, and the time after their registration within which they
/// do (uniformly): frequent buyers among them become "At Risk" or "Cannot Lose Them".
const LAPSE_SHARE: f64 = 0.4;
const LAPSE_WITHIN: Duration = Duration::days(90);

/// Draws of a shopper before settling for any registered customer.
const PICK_TRIES: usize = 16;

const EMAIL_DOMAINS: &[&str] = &[
    "example.com",
    "mail.example",
    "shop.example",
    "inbox.example",
];

/// Stream numbers of [`unit`]: independent draws per customer.
const REGISTRATION: u64 = 1;
const LAPSES: u64 = 2;
const LAPSE_AT: u64 = 3;

/// The customers of a shop.
#[derive(Debug, Clone)]
pub struct Customers {
    seed: u64,
    count: u32,
    /// Registrations run evenly over this window in index order (each at a random point of
    /// its slot).
    registrations: Period,
    /// The time of the first version of a customer registered before it.
    since: DateTime<Utc>,
    /// Rank r is customer (stride·r + offset) mod count: the busiest customers are spread over
    /// every registration date.
    stride: u64,
    offset: u64,
    /// Customers changed since the start (moved country, new email): their latest version.
    changed: HashMap<u32, User>,
}

impl Customers {
    /// `count` customers from `seed`, registered over `registrations`; `since` is the time of
    /// the catalogue (the first version of every customer registered before it).
    pub fn new(seed: u64, count: u32, registrations: Period, since: DateTime<Utc>) -> Customers {
        let n = u64::from(count.max(1));
        // A multiplier coprime with the count makes the map a permutation of 0..count.
        let mut stride = (n as f64 * 0.618) as u64 | 1;
        while gcd(stride, n) != 1 {
            stride += 2;
        }
        Customers {
            seed,
            count: count.max(1),
            registrations,
            since,
            stride,
            offset: mix64(seed) % n,
            changed: HashMap::new(),
        }
    }

    /// The latest version of customer `index`.
    pub fn user(&self, index: u32) -> User {
        match self.changed.get(&index) {
            Some(user) => user.clone(),
            None => self.first_version(index),
        }
    }

    /// Customers changed since the start, by index.
    pub fn changed(&self) -> &HashMap<u32, User> {
        &self.changed
    }

    /// What a session of customer `index` needs: their id, country and preferences (the latest
    /// version's), without the cost of deriving the rest.
    pub fn shopper(&self, index: u32) -> (String, Country, Vec<CategoryGroup>) {
        match self.changed.get(&index) {
            Some(user) => (user.user_id.clone(), user.country, user.preferences.clone()),
            None => {
                let (_, preferences, country) = self.traits(index);
                (IdKind::User.format(index + 1), country, preferences)
            }
        }
    }

    /// Customer `index` as first published: everything derived from the seed and the index.
    pub fn first_version(&self, index: u32) -> User {
        let (mut rng, preferences, country) = self.traits(index);
        let user_id = IdKind::User.format(index + 1);
        let registration_date = self.registration(index);
        User {
            age: rng.random_range(18..=80),
            email: email(&mut rng, &user_id),
            country,
            registration_date,
            preferences,
            updated_at: self.since.max(registration_date),
            user_id,
        }
    }

    /// The first draws of customer `index`, preferences and country (what a session needs),
    /// and the generator that draws the rest.
    fn traits(&self, index: u32) -> (Rng, Vec<CategoryGroup>, Country) {
        let mut rng = Rng::seed_from_u64(mix64(self.seed ^ mix64(u64::from(index))));
        let wanted = rng.random_range(1..=3);
        let mut preferences: Vec<CategoryGroup> = CategoryGroup::ALL
            .sample(&mut rng, wanted)
            .copied()
            .collect();
        preferences.sort_by_key(|g| CategoryGroup::ALL.iter().position(|x| x == g));
        let country = *Country::ALL.choose(&mut rng).unwrap_or(&Country::Usa);
        (rng, preferences, country)
    }

    /// Every customer's first version, in index order.
    pub fn first_versions(&self) -> impl Iterator<Item = User> + '_ {
        (0..self.count).map(|i| self.first_version(i))
    }

    /// When customer `index` registers.
    pub fn registration(&self, index: u32) -> DateTime<Utc> {
        let slot =
            (f64::from(index) + unit(self.seed, index, REGISTRATION)) / f64::from(self.count);
        let span = (self.registrations.end - self.registrations.start).num_microseconds();
        self.registrations.start + Duration::microseconds((span.unwrap_or(0) as f64 * slot) as i64)
    }

    /// When customer `index`, registered at `registration`, stops shopping, if they do.
    fn lapse(&self, index: u32, registration: DateTime<Utc>) -> Option<DateTime<Utc>> {
        (unit(self.seed, index, LAPSES) < LAPSE_SHARE).then(|| {
            let within = LAPSE_WITHIN.num_microseconds().unwrap_or(0) as f64;
            registration
                + Duration::microseconds((within * unit(self.seed, index, LAPSE_AT)) as i64)
        })
    }

    /// Whether customer `index` shops at `at`: registered and not lapsed.
    fn shops(&self, index: u32, at: DateTime<Utc>) -> bool {
        let registration = self.registration(index);
        registration <= at
            && self
                .lapse(index, registration)
                .is_none_or(|lapse| at < lapse)
    }

    /// How many customers (the first, in index order) surely registered by `at`.
    fn registered(&self, at: DateTime<Utc>) -> u32 {
        let span = (self.registrations.end - self.registrations.start).num_microseconds();
        let done = (at - self.registrations.start).num_microseconds();
        let share = match (done, span) {
            (Some(done), Some(span)) if span > 0 => done as f64 / span as f64,
            _ => 1.0,
        };
        // Customer i has registered once share ≥ (i + 1) / count.
        ((share.clamp(0.0, 1.0) * f64::from(self.count)) as u32).max(1)
    }

    /// The shopper of a session starting at `at`: by activity rank among those who shop then,
    /// or (after [`PICK_TRIES`] misses) any registered customer.
    pub fn pick(&self, rng: &mut Rng, at: DateTime<Utc>) -> u32 {
        let n = u64::from(self.count);
        for _ in 0..PICK_TRIES {
            let rank = (n as f64 * rng.random::<f64>().powi(ACTIVITY_SKEW)) as u64;
            let index = ((self.stride * rank.min(n - 1) + self.offset) % n) as u32;
            if self.shops(index, at) {
                return index;
            }
        }
        rng.random_range(0..self.registered(at))
    }

    /// Changes a registered customer (a move to another country or a new email) and returns
    /// the new version, a microsecond after the last at least.
    pub fn change(&mut self, rng: &mut Rng, at: DateTime<Utc>) -> User {
        let index = rng.random_range(0..self.registered(at));
        let mut user = self.user(index);
        if rng.random_bool(0.5) {
            let others: Vec<Country> = Country::ALL
                .into_iter()
                .filter(|c| *c != user.country)
                .collect();
            user.country = *others.choose(rng).unwrap_or(&user.country);
        } else {
            user.email = email(rng, &user.user_id);
        }
        user.updated_at = crate::catalogue::next_version(user.updated_at, at);
        self.changed.insert(index, user.clone());
        user
    }
}

/// A plausible, unique address: the user's number keeps it unique whatever the names are.
/// Built in one allocation (ten million of them make a course catalogue).
fn email(rng: &mut Rng, user_id: &str) -> String {
    let first = EN::NAME_FIRST_NAME.choose(rng).unwrap_or(&"alex");
    let last = EN::NAME_LAST_NAME.choose(rng).unwrap_or(&"smith");
    let number = user_id.trim_start_matches("USER_").trim_start_matches('0');
    let domain = EMAIL_DOMAINS.choose(rng).unwrap_or(&"example.com");
    let mut address =
        String::with_capacity(first.len() + last.len() + number.len() + domain.len() + 2);
    let local = (first.chars().chain(['.']).chain(last.chars())).chain(number.chars());
    address.extend(
        local
            .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
            .map(|c| c.to_ascii_lowercase()),
    );
    address.push('@');
    address.push_str(domain);
    address
}

/// SplitMix64's finaliser: a well-mixed 64-bit hash of `z`.
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A number in [0, 1) determined by the seed, a customer and a stream.
fn unit(seed: u64, index: u32, stream: u64) -> f64 {
    let hash = mix64(seed ^ mix64(u64::from(index) | stream << 32));
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn october() -> Period {
        let start = Utc
            .with_ymd_and_hms(2026, 10, 1, 0, 0, 0)
            .single()
            .expect("a date");
        Period {
            start,
            end: start + Duration::days(30),
        }
    }

    fn customers(count: u32) -> Customers {
        let period = october();
        let registrations = Period {
            start: period.start - REGISTRATION_HISTORY,
            end: period.end,
        };
        Customers::new(7, count, registrations, period.start)
    }

    #[test]
    fn ranks_map_to_every_customer_once() {
        for count in [1, 2, 10, 1000, 9973] {
            let c = customers(count);
            let n = u64::from(count);
            let mut seen: Vec<u64> = (0..n).map(|r| (c.stride * r + c.offset) % n).collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..n).collect::<Vec<_>>(), "{count} customers");
        }
    }

    #[test]
    fn registrations_spread_over_the_window_and_nobody_shops_before_theirs() {
        let c = customers(10_000);
        let period = october();
        let during = (0..10_000)
            .filter(|&i| c.registration(i) >= period.start)
            .count();
        // 30 of the window's 395 days: 7.6 % of the customers register during the period.
        assert!((700..=820).contains(&during), "{during}");
        let mut rng = Rng::seed_from_u64(1);
        for day in 0..30 {
            let at = period.start + Duration::days(day);
            for _ in 0..200 {
                let i = c.pick(&mut rng, at);
                assert!(
                    c.registration(i) <= at,
                    "customer {i} shops before registering"
                );
            }
        }
    }

    #[test]
    fn a_few_customers_start_most_sessions_and_lapsed_ones_none() {
        let c = customers(10_000);
        let at = october().end - Duration::hours(1);
        let mut rng = Rng::seed_from_u64(2);
        let mut sessions = vec![0u32; 10_000];
        for _ in 0..100_000 {
            sessions[c.pick(&mut rng, at) as usize] += 1;
        }
        let mut busiest = sessions.clone();
        busiest.sort_unstable_by(|a, b| b.cmp(a));
        let top: u32 = busiest[..100].iter().sum();
        assert!(
            top > 15_000,
            "the busiest 1 % started {top} of 100,000 sessions"
        );
        let lapsed = (0..10_000u32)
            .filter(|&i| c.lapse(i, c.registration(i)).is_some_and(|l| l <= at))
            .collect::<Vec<_>>();
        assert!(lapsed.len() > 3_000, "{} lapsed", lapsed.len());
        assert!(lapsed.iter().all(|&i| sessions[i as usize] == 0));
    }

    #[test]
    fn a_customer_is_the_same_whenever_derived_and_changes_are_kept() {
        let mut c = customers(1_000);
        assert_eq!(c.first_version(123), customers(1_000).first_version(123));
        assert_ne!(c.first_version(123), c.first_version(124));
        let user = c.first_version(123);
        assert_eq!(
            c.shopper(123),
            (user.user_id, user.country, user.preferences)
        );
        let mut rng = Rng::seed_from_u64(3);
        let at = october().end;
        let changed = c.change(&mut rng, at);
        let index = changed
            .user_id
            .trim_start_matches("USER_")
            .parse::<u32>()
            .expect("a number")
            - 1;
        assert_eq!(c.user(index), changed);
        assert_ne!(c.first_version(index), changed);
        let shopper = (changed.user_id, changed.country, changed.preferences);
        assert_eq!(c.shopper(index), shopper);
    }
}
