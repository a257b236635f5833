//! The products and customers the events are about, built from the seed, and their changes
//! over time (price changes, restocks, renames; customers moving country or changing email,
//! in customers.rs), which the warehouse turns into SCD2 history.

use chrono::{DateTime, Duration, Utc};
use fake::faker::company::en::CompanyName;
use fake::Fake;
use globalmart_core::domain::{CategoryGroup, IdKind};
use globalmart_core::event::{Event, Product};
use rand::seq::IndexedRandom;
use rand::RngExt;
use rust_decimal::Decimal;

use crate::customers::{mix64, Customers, REGISTRATION_HISTORY};
use crate::timeline::Period;
use crate::Rng;

const ADJECTIVES: &[&str] = &[
    "Pro",
    "Ultra",
    "Classic",
    "Eco",
    "Smart",
    "Premium",
    "Compact",
    "Deluxe",
    "Essential",
    "Max",
    "Lite",
    "Prime",
];
/// Bumped when the records a seed gives change (a new field, another derivation), so that a
/// catalogue published by an earlier generator is published again (publication.rs).
const FORMAT: u64 = 1;

/// What identifies the records [`Catalogue::build`] makes from these arguments: equal
/// fingerprints, equal catalogues (timestamps included).
pub fn fingerprint(seed: u64, users: u32, products: u32, shop: Period) -> String {
    let parts = [
        FORMAT,
        seed,
        u64::from(users),
        u64::from(products),
        shop.start.timestamp_micros() as u64,
        shop.end.timestamp_micros() as u64,
    ];
    let hash = parts.iter().fold(0, |hash, part| mix64(hash ^ part));
    format!("{hash:016x}")
}

/// The catalogue as the generator currently knows it (the latest version of each record).
#[derive(Debug, Clone)]
pub struct Catalogue {
    pub customers: Customers,
    pub products: Vec<Product>,
    /// Product indexes per category group, for preference-driven browsing.
    by_group: Vec<(CategoryGroup, Vec<usize>)>,
    /// Product indexes per category (a product never changes category), and where each
    /// product's category is in it: comparisons draw from these.
    by_category: Vec<Vec<usize>>,
    category_of: Vec<usize>,
    /// Products listed at 500 or more when built: the high-value anomalies' lines.
    expensive: Vec<usize>,
}

impl Catalogue {
    /// Builds `products` products and `users` customers for the events of `shop` (a backfill's
    /// period, or a live run's day): the catalogue is as of its start, and customers register
    /// over the year before it and during it.
    pub fn build(rng: &mut Rng, users: u32, products: u32, shop: Period) -> Catalogue {
        let now = shop.start;
        let products: Vec<Product> = (1..=products).map(|n| product(rng, n, now)).collect();
        let registrations = Period {
            start: shop.start - REGISTRATION_HISTORY,
            end: shop.end,
        };
        let customers = Customers::new(rng.random(), users, registrations, now);
        let groups: Vec<Option<CategoryGroup>> = (products.iter())
            .map(|p| CategoryGroup::of_category(&p.category))
            .collect();
        let by_group = CategoryGroup::ALL
            .into_iter()
            .map(|group| {
                let members = (groups.iter().enumerate())
                    .filter(|(_, g)| **g == Some(group))
                    .map(|(i, _)| i)
                    .collect();
                (group, members)
            })
            .collect();
        let mut by_category: Vec<Vec<usize>> = Vec::new();
        let mut slots = std::collections::HashMap::new();
        let category_of = (products.iter().enumerate())
            .map(|(i, p)| {
                let slot = *slots.entry(p.category.as_str()).or_insert_with(|| {
                    by_category.push(Vec::new());
                    by_category.len() - 1
                });
                by_category[slot].push(i);
                slot
            })
            .collect();
        let expensive = (products.iter().enumerate())
            .filter(|(_, p)| p.price >= Decimal::from(500))
            .map(|(i, _)| i)
            .collect();
        Catalogue {
            customers,
            expensive,
            products,
            by_group,
            by_category,
            category_of,
        }
    }

    /// Every record, for publishing the catalogue at start (customers derived one by one).
    pub fn events(&self) -> impl Iterator<Item = Event> + '_ {
        let products = self.products.iter().cloned().map(Event::Product);
        products.chain(self.customers.first_versions().map(Event::User))
    }

    /// A product a user with these preferences might look at: mostly from a preferred group,
    /// and skewed towards each group's first products so some products trend.
    pub fn pick_product(&self, rng: &mut Rng, preferences: &[CategoryGroup]) -> usize {
        let group = match preferences.choose(rng) {
            Some(g) if rng.random_bool(0.7) => *g,
            _ => *CategoryGroup::ALL
                .choose(rng)
                .unwrap_or(&CategoryGroup::Electronics),
        };
        let members = self
            .by_group
            .iter()
            .find(|(g, members)| *g == group && !members.is_empty())
            .map(|(_, members)| members.as_slice());
        match members {
            Some(members) => {
                let skewed = rng.random::<f64>().powi(2) * members.len() as f64;
                members[(skewed as usize).min(members.len() - 1)]
            }
            None => rng.random_range(0..self.products.len()),
        }
    }

    /// Products listed at 500 or more when the catalogue was built.
    pub fn expensive(&self) -> &[usize] {
        &self.expensive
    }

    /// Products of the same category as product `index` (itself included), in index order.
    pub fn same_category(&self, index: usize) -> &[usize] {
        &self.by_category[self.category_of[index]]
    }

    /// Changes one product or customer and returns its new version.
    pub fn change(&mut self, rng: &mut Rng, now: DateTime<Utc>) -> Event {
        if rng.random_bool(0.6) && !self.products.is_empty() {
            let i = rng.random_range(0..self.products.len());
            let p = &mut self.products[i];
            match rng.random_range(0..10) {
                // Price change: -20 % .. +20 %, kept in the group's range.
                0..=3 => {
                    let factor = Decimal::new(rng.random_range(80..=120), 2);
                    let (low, high) = group_of(&p.category).price_range();
                    p.price = (p.price * factor).round_dp(2).clamp(low, high);
                }
                // Restock.
                4..=7 => p.inventory = rng.random_range(100..=1000),
                // Rename: a new model name.
                _ => p.name = product_name(rng, &p.category),
            }
            p.updated_at = next_version(p.updated_at, now);
            Event::Product(p.clone())
        } else {
            Event::User(self.customers.change(rng, now))
        }
    }
}

/// The time of a record's next version: `now`, or a microsecond after its last version when the
/// clock has not moved since (live runs read it once per 64 events). Two versions with one time
/// would leave "the latest" undefined, and the stream keeps only the first of them.
pub fn next_version(last: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
    now.max(last + Duration::microseconds(1))
}

fn group_of(category: &str) -> CategoryGroup {
    CategoryGroup::of_category(category).unwrap_or(CategoryGroup::Electronics)
}

fn product(rng: &mut Rng, n: u32, now: DateTime<Utc>) -> Product {
    let group = *CategoryGroup::ALL
        .choose(rng)
        .unwrap_or(&CategoryGroup::Electronics);
    let category = *group.categories().choose(rng).unwrap_or(&"Smartphones");
    let (low, high) = group.price_range();
    let cents = rng.random_range(cents(low)..=cents(high));
    Product {
        product_id: IdKind::Product.format(n),
        name: product_name(rng, category),
        category: category.to_owned(),
        price: Decimal::new(cents, 2),
        inventory: rng.random_range(20..=500),
        rating: Decimal::new(rng.random_range(10..=50), 1),
        updated_at: now,
    }
}

fn cents(dollars: Decimal) -> i64 {
    (dollars * Decimal::ONE_HUNDRED).trunc().mantissa() as i64
}

fn product_name(rng: &mut Rng, category: &str) -> String {
    let brand: String = CompanyName().fake_with_rng(rng);
    let brand = brand
        .split([' ', ',', '-'])
        .next()
        .unwrap_or("Generic")
        .to_owned();
    let adjective = ADJECTIVES.choose(rng).unwrap_or(&"Classic");
    format!("{brand} {adjective} {category}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn every_version_of_a_record_has_a_later_time_than_the_one_before() {
        let now = Utc::now();
        let mut rng = Rng::seed_from_u64(5);
        let mut catalogue = Catalogue::build(&mut rng, 1, 1, Period::instant(now));
        let mut last = std::collections::HashMap::new();
        for _ in 0..50 {
            let (id, at) = match catalogue.change(&mut rng, now) {
                Event::Product(p) => (p.product_id, p.updated_at),
                Event::User(u) => (u.user_id, u.updated_at),
                other => panic!("not a catalogue record: {other:?}"),
            };
            if let Some(before) = last.insert(id.clone(), at) {
                assert!(at > before, "{id}: version at {at} after one at {before}");
            }
        }
        assert_eq!(last.len(), 2, "both records changed");
    }

    #[test]
    fn same_category_lists_exactly_the_products_of_that_category_in_order() {
        let catalogue = Catalogue::build(
            &mut Rng::seed_from_u64(3),
            10,
            500,
            Period::instant(Utc::now()),
        );
        for (index, product) in catalogue.products.iter().enumerate() {
            let scanned: Vec<usize> = (catalogue.products.iter().enumerate())
                .filter(|(_, p)| p.category == product.category)
                .map(|(i, _)| i)
                .collect();
            assert_eq!(catalogue.same_category(index), scanned.as_slice());
        }
    }
}
