//! The users and products the events are about, built from the seed, and their changes over
//! time (price changes, restocks, renames; users moving country or changing email), which the
//! warehouse turns into SCD2 history.

use chrono::{DateTime, Duration, Utc};
use fake::faker::company::en::CompanyName;
use fake::faker::name::en::{FirstName, LastName};
use fake::Fake;
use globalmart_core::domain::{CategoryGroup, Country, IdKind};
use globalmart_core::event::{Event, Product, User};
use rand::seq::IndexedRandom;
use rand::RngExt;
use rust_decimal::Decimal;

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
const EMAIL_DOMAINS: &[&str] = &[
    "example.com",
    "mail.example",
    "shop.example",
    "inbox.example",
];

/// The catalogue as the generator currently knows it (the latest version of each record).
#[derive(Debug, Clone)]
pub struct Catalogue {
    pub users: Vec<User>,
    pub products: Vec<Product>,
    /// Product indexes per category group, for preference-driven browsing.
    by_group: Vec<(CategoryGroup, Vec<usize>)>,
    /// Product indexes per category (a product never changes category), and where each
    /// product's category is in it: comparisons draw from these.
    by_category: Vec<Vec<usize>>,
    category_of: Vec<usize>,
}

impl Catalogue {
    /// Builds `users` users and `products` products. Only timestamps depend on `now`.
    pub fn build(rng: &mut Rng, users: u32, products: u32, now: DateTime<Utc>) -> Catalogue {
        let products: Vec<Product> = (1..=products).map(|n| product(rng, n, now)).collect();
        let users = (1..=users).map(|n| user(rng, n, now)).collect();
        let by_group = CategoryGroup::ALL
            .into_iter()
            .map(|group| {
                let members = products
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| CategoryGroup::of_category(&p.category) == Some(group))
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
        Catalogue {
            users,
            products,
            by_group,
            by_category,
            category_of,
        }
    }

    /// Every record, for publishing the catalogue at start.
    pub fn events(&self) -> impl Iterator<Item = Event> + '_ {
        let products = self.products.iter().cloned().map(Event::Product);
        products.chain(self.users.iter().cloned().map(Event::User))
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

    /// Products of the same category as product `index` (itself included), in index order.
    pub fn same_category(&self, index: usize) -> &[usize] {
        &self.by_category[self.category_of[index]]
    }

    /// Changes one product or user and returns its new version.
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
            let i = rng.random_range(0..self.users.len());
            let u = &mut self.users[i];
            if rng.random_bool(0.5) {
                let others: Vec<Country> = Country::ALL
                    .into_iter()
                    .filter(|c| *c != u.country)
                    .collect();
                u.country = *others.choose(rng).unwrap_or(&u.country);
            } else {
                u.email = email(rng, &u.user_id);
            }
            u.updated_at = next_version(u.updated_at, now);
            Event::User(u.clone())
        }
    }
}

/// The time of a record's next version: `now`, or a microsecond after its last version when the
/// clock has not moved since (live runs read it once per 64 events). Two versions with one time
/// would leave "the latest" undefined, and the stream keeps only the first of them.
fn next_version(last: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
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

fn user(rng: &mut Rng, n: u32, now: DateTime<Utc>) -> User {
    let user_id = IdKind::User.format(n);
    let wanted = rng.random_range(1..=3);
    let mut preferences: Vec<CategoryGroup> =
        CategoryGroup::ALL.sample(rng, wanted).copied().collect();
    preferences.sort_by_key(|g| CategoryGroup::ALL.iter().position(|x| x == g));
    User {
        email: email(rng, &user_id),
        age: rng.random_range(18..=80),
        country: *Country::ALL.choose(rng).unwrap_or(&Country::Usa),
        registration_date: now - Duration::days(rng.random_range(1..=1500)),
        preferences,
        updated_at: now,
        user_id,
    }
}

/// A plausible, unique address: the user's number keeps it unique whatever the names are.
fn email(rng: &mut Rng, user_id: &str) -> String {
    let first: String = FirstName().fake_with_rng(rng);
    let last: String = LastName().fake_with_rng(rng);
    let number = user_id.trim_start_matches("USER_").trim_start_matches('0');
    let domain = EMAIL_DOMAINS.choose(rng).unwrap_or(&"example.com");
    let local: String = format!("{first}.{last}{number}")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
        .collect();
    format!("{}@{domain}", local.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn every_version_of_a_record_has_a_later_time_than_the_one_before() {
        let now = Utc::now();
        let mut rng = Rng::seed_from_u64(5);
        let mut catalogue = Catalogue::build(&mut rng, 1, 1, now);
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
        let catalogue = Catalogue::build(&mut Rng::seed_from_u64(3), 10, 500, Utc::now());
        for (index, product) in catalogue.products.iter().enumerate() {
            let scanned: Vec<usize> = (catalogue.products.iter().enumerate())
                .filter(|(_, p)| p.category == product.category)
                .map(|(i, _)| i)
                .collect();
            assert_eq!(catalogue.same_category(index), scanned.as_slice());
        }
    }
}
