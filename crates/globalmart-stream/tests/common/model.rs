//! The reference model: what every realtime table must hold for a list of events, computed here
//! from the events alone (not from our tables, not with the stream's SQL), one text per row; and
//! the comparison of that with what the stream saved, table by table, field by field.
//!
//! The rules are the documented ones (docs/ARCHITECTURE.md, "Metrics counted once", and the
//! user guide's thresholds), written again in plain Rust: event-time windows of one minute (ten
//! for high demand, an hour for the hourly views), anomaly bands, stock as the last restock less
//! the units sold since.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::Result;
use chrono::{DateTime, Utc};
use globalmart_core::event::{CartAction, CartItem, Event, LineItem, Product, ViewAction};
use rust_decimal::{Decimal, RoundingStrategy};

/// The stream's default thresholds, as the user guide states them: a transaction's total from
/// which it is an anomaly of each severity, highest first; the same for a line's quantity; the
/// units of one product in ten minutes that make high demand.
const HIGH_VALUE: [(i64, &str); 3] = [(10_000, "critical"), (6_500, "high"), (3_000, "medium")];
const HIGH_QUANTITY: [(i32, &str); 3] = [(100, "critical"), (75, "high"), (50, "medium")];
const HIGH_DEMAND_UNITS: i64 = 20;

const MINUTE: i64 = 60_000_000;
const TEN_MINUTES: i64 = 10 * MINUTE;
const HOUR: i64 = 60 * MINUTE;

/// A field PostgreSQL returns as NULL, and Rust as `None`.
const NULL: &str = "∅";

/// Each table as the model writes its rows: the SQL expression of each field, in order.
/// Timestamps as microseconds since the epoch, money with its two decimals.
const SAVED: [(&str, &[&str]); 18] = [
    (
        "transactions",
        &[
            "transaction_id",
            "line_number",
            "user_id",
            "session_id",
            "product_id",
            "quantity",
            "price",
            "total_amount",
            "payment_method",
            "country",
            MICROS_TIMESTAMP,
        ],
    ),
    (
        "product_view_events",
        &[
            "event_id",
            "event_type",
            MICROS_TIMESTAMP,
            "user_id",
            "session_id",
            "country",
            "product_id",
            "product_name",
            "category",
            "price",
            "view_duration",
            "search_query",
            "attributes->>'results_count'",
            "(attributes->>'min_price')::numeric(12, 2)",
            "(attributes->>'max_price')::numeric(12, 2)",
            "(SELECT string_agg(id, ';' ORDER BY n)
              FROM jsonb_array_elements_text(attributes->'product_ids') WITH ORDINALITY e(id, n))",
        ],
    ),
    (
        "cart_events",
        &[
            "event_id",
            "event_type",
            MICROS_TIMESTAMP,
            "user_id",
            "session_id",
            "country",
            "product_id",
            "product_name",
            "category",
            "price",
            "quantity",
            "cart_size",
            "cart_value",
            "attributes->>'old_quantity'",
            "attributes->>'new_quantity'",
            "(SELECT string_agg(concat_ws(':', i->>'product_id', i->>'quantity',
                  (i->>'price')::numeric(12, 2)), ';' ORDER BY n)
              FROM jsonb_array_elements(attributes->'items') WITH ORDINALITY e(i, n))",
        ],
    ),
    ("products", PRODUCT),
    ("product_history", PRODUCT),
    ("users", USER),
    ("user_history", USER),
    (
        "sales_per_minute",
        &[
            MICROS_WINDOW_START,
            MICROS_WINDOW_END,
            "transaction_count",
            "total_revenue",
            "total_items",
            "avg_order_value",
        ],
    ),
    (
        "sales_by_country",
        &[
            MICROS_WINDOW_START,
            MICROS_WINDOW_END,
            "country",
            "transaction_count",
            "total_revenue",
            "avg_order_value",
        ],
    ),
    (
        "sales_per_hour",
        &[
            MICROS_WINDOW_START,
            MICROS_WINDOW_END,
            "transaction_count",
            "total_revenue",
            "total_items",
            "avg_order_value",
        ],
    ),
    (
        "trending_products",
        &[
            MICROS_WINDOW_START,
            MICROS_WINDOW_END,
            "product_id",
            "view_count",
            "cart_add_count",
            "purchase_count",
            "units_sold",
            "revenue",
            "trend_score",
        ],
    ),
    (
        "category_performance",
        &[
            MICROS_WINDOW_START,
            MICROS_WINDOW_END,
            "category",
            "view_count",
            "cart_add_count",
            "purchase_count",
            "units_sold",
            "revenue",
        ],
    ),
    (
        "sales_by_category",
        &[
            MICROS_WINDOW_START,
            MICROS_WINDOW_END,
            "category",
            "order_lines",
            "units_sold",
            "revenue",
        ],
    ),
    (
        "cart_metrics",
        &[
            MICROS_WINDOW_START,
            MICROS_WINDOW_END,
            "country",
            "add_to_cart_count",
            "remove_from_cart_count",
            "update_quantity_count",
            "checkout_count",
            "active_sessions",
            "checkout_sessions",
        ],
    ),
    (
        "product_stock",
        &[
            "product_id",
            "stock",
            "catalogue_inventory",
            "units_sold",
            "(extract(epoch FROM restocked_at) * 1000000)::bigint",
        ],
    ),
    (
        "high_demand_alerts",
        &[
            "product_id",
            MICROS_WINDOW_START,
            MICROS_WINDOW_END,
            "units_sold",
            "order_count",
        ],
    ),
    (
        "high_value_anomalies",
        &[
            "transaction_id",
            "user_id",
            "total_amount",
            "severity",
            "country",
            "payment_method",
            "(extract(epoch FROM transaction_timestamp) * 1000000)::bigint",
        ],
    ),
    (
        "high_quantity_anomalies",
        &[
            "transaction_id",
            "user_id",
            "product_id",
            "quantity",
            "severity",
            "(extract(epoch FROM transaction_timestamp) * 1000000)::bigint",
        ],
    ),
];

const MICROS_TIMESTAMP: &str = "(extract(epoch FROM \"timestamp\") * 1000000)::bigint";
const MICROS_WINDOW_START: &str = "(extract(epoch FROM window_start) * 1000000)::bigint";
const MICROS_WINDOW_END: &str = "(extract(epoch FROM window_end) * 1000000)::bigint";
const PRODUCT: &[&str] = &[
    "product_id",
    "name",
    "category",
    "price",
    "inventory",
    "rating",
    "(extract(epoch FROM updated_at) * 1000000)::bigint",
];
const USER: &[&str] = &[
    "user_id",
    "email",
    "age",
    "country",
    "(extract(epoch FROM registration_date) * 1000000)::bigint",
    "array_to_string(preferences, ';')",
    "(extract(epoch FROM updated_at) * 1000000)::bigint",
];

/// Asserts that every realtime table holds exactly the rows the model computes from `events`
/// (the valid events that reached the stream, each once), naming the table and the rows that
/// differ.
pub async fn assert_saved_as_modelled(
    client: &tokio_postgres::Client,
    events: &[Event],
) -> Result<()> {
    let mut expected = model(events);
    for (table, fields) in SAVED {
        let cells: Vec<String> = fields
            .iter()
            .map(|f| format!("coalesce(({f})::text, '{NULL}')"))
            .collect();
        let query = format!("SELECT concat_ws('|', {}) FROM {table}", cells.join(", "));
        let mut saved: Vec<String> = client
            .query(&query, &[])
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        saved.sort();
        let mut modelled = expected.remove(table).unwrap_or_default();
        modelled.sort();
        if saved != modelled {
            let only = |a: &[String], b: &[String]| -> Vec<String> {
                let b: BTreeSet<&String> = b.iter().collect();
                a.iter()
                    .filter(|r| !b.contains(r))
                    .take(5)
                    .cloned()
                    .collect()
            };
            panic!(
                "{table} differs from the model of the events ({} rows saved, {} modelled; \
                 fields {fields:?}):\n  saved only: {:#?}\n  modelled only: {:#?}",
                saved.len(),
                modelled.len(),
                only(&saved, &modelled),
                only(&modelled, &saved)
            );
        }
    }
    Ok(())
}

/// The `alert_key` of every alert the events raise besides the stock alerts: each critical
/// high-value transaction, each critical line quantity (its line_item_id is derived from the
/// transaction id and the line number) and each high-demand window.
pub fn alert_keys(events: &[Event]) -> Vec<String> {
    let mut keys = Vec::new();
    let mut demand: BTreeMap<(&str, i64), i64> = BTreeMap::new();
    for event in events {
        let Event::Transaction(t) = event else {
            continue;
        };
        if t.total_amount >= Decimal::from(HIGH_VALUE[0].0) {
            keys.push(format!("high_value:{}", t.transaction_id));
        }
        for (n, line) in t.products.iter().enumerate() {
            if line.quantity >= HIGH_QUANTITY[0].0 {
                let id = uuid::Uuid::new_v5(&t.transaction_id, n.to_string().as_bytes());
                keys.push(format!("high_quantity:{id}"));
            }
            let window = floor(micros(t.timestamp), TEN_MINUTES);
            *demand.entry((&line.product_id, window)).or_default() += i64::from(line.quantity);
        }
    }
    for ((product, window), units) in demand {
        if units >= HIGH_DEMAND_UNITS {
            let start = DateTime::from_timestamp_micros(window).unwrap_or_default();
            keys.push(format!(
                "high_demand:{product}:{}",
                start.format("%Y-%m-%dT%H:%M:%SZ")
            ));
        }
    }
    keys
}

/// Every table's rows for `events`, as [`SAVED`] reads them.
fn model(events: &[Event]) -> HashMap<&'static str, Vec<String>> {
    let mut tables: HashMap<&'static str, Vec<String>> = HashMap::new();
    let catalogue = Catalogue::of(events);
    let mut activity = Activity::default();
    let mut carts: BTreeMap<(i64, &str), CartWindow> = BTreeMap::new();
    for event in events {
        match event {
            Event::Transaction(t) => {
                let at = micros(t.timestamp);
                for (n, line) in t.products.iter().enumerate() {
                    tables.entry("transactions").or_default().push(row([
                        t.transaction_id.to_string(),
                        n.to_string(),
                        t.user_id.clone(),
                        opt(t.session_id.as_ref()),
                        line.product_id.clone(),
                        line.quantity.to_string(),
                        money(line.price),
                        money(t.total_amount),
                        t.payment_method.as_str().to_owned(),
                        t.country.as_str().to_owned(),
                        at.to_string(),
                    ]));
                    if let Some((_, severity)) =
                        HIGH_QUANTITY.iter().find(|(q, _)| line.quantity >= *q)
                    {
                        tables
                            .entry("high_quantity_anomalies")
                            .or_default()
                            .push(row([
                                t.transaction_id.to_string(),
                                t.user_id.clone(),
                                line.product_id.clone(),
                                line.quantity.to_string(),
                                severity.to_string(),
                                at.to_string(),
                            ]));
                    }
                }
                if let Some((_, severity)) = HIGH_VALUE
                    .iter()
                    .find(|(v, _)| t.total_amount >= Decimal::from(*v))
                {
                    tables.entry("high_value_anomalies").or_default().push(row([
                        t.transaction_id.to_string(),
                        t.user_id.clone(),
                        money(t.total_amount),
                        severity.to_string(),
                        t.country.as_str().to_owned(),
                        t.payment_method.as_str().to_owned(),
                        at.to_string(),
                    ]));
                }
                activity.sale(at, t.country.as_str(), &t.products, t.total_amount);
            }
            Event::ProductView(v) => {
                let common = [
                    v.event_id.to_string(),
                    v.action.event_type().to_owned(),
                    micros(v.timestamp).to_string(),
                    v.user_id.clone(),
                    v.session_id.clone(),
                    v.country.as_str().to_owned(),
                ];
                // product_id, product_name, category, price, view_duration, search_query,
                // results_count, min_price, max_price, product_ids
                let own: [Option<String>; 10] = match &v.action {
                    ViewAction::View(p) => {
                        activity.view(micros(v.timestamp), &p.product_id, &p.category);
                        [
                            Some(p.product_id.clone()),
                            Some(p.product_name.clone()),
                            Some(p.category.clone()),
                            Some(money(p.price)),
                            Some(p.view_duration.to_string()),
                            p.search_query.clone(),
                            None,
                            None,
                            None,
                            None,
                        ]
                    }
                    ViewAction::Search(s) => [
                        None,
                        None,
                        None,
                        None,
                        None,
                        Some(s.search_query.clone()),
                        Some(s.results_count.to_string()),
                        None,
                        None,
                        None,
                    ],
                    ViewAction::Filter(f) => [
                        None,
                        None,
                        f.filter_category.clone(),
                        None,
                        None,
                        None,
                        Some(f.results_count.to_string()),
                        f.min_price.map(money),
                        f.max_price.map(money),
                        None,
                    ],
                    ViewAction::Compare(c) => [
                        None,
                        None,
                        Some(c.category.clone()),
                        None,
                        None,
                        None,
                        None,
                        None,
                        None,
                        Some(c.product_ids.join(";")),
                    ],
                };
                tables
                    .entry("product_view_events")
                    .or_default()
                    .push(row(common.into_iter().chain(own.map(|f| opt(f.as_ref())))));
            }
            Event::Cart(c) => {
                let at = micros(c.timestamp);
                let window = carts
                    .entry((floor(at, MINUTE), c.country.as_str()))
                    .or_default();
                window.sessions.insert(&c.session_id);
                let item = |i: &CartItem| {
                    [
                        Some(i.product_id.clone()),
                        Some(i.product_name.clone()),
                        Some(i.category.clone()),
                        Some(money(i.price)),
                        Some(i.quantity.to_string()),
                        Some(i.cart_size.to_string()),
                        Some(money(i.cart_value)),
                    ]
                };
                // product_id .. cart_value, old_quantity, new_quantity, items
                let (fields, changed, items) = match &c.action {
                    CartAction::AddToCart(i) => {
                        window.counts[0] += 1;
                        activity.cart_add(at, &i.product_id, &i.category);
                        (item(i), [None, None], None)
                    }
                    CartAction::RemoveFromCart(i) => {
                        window.counts[1] += 1;
                        (item(i), [None, None], None)
                    }
                    CartAction::UpdateQuantity(q) => {
                        window.counts[2] += 1;
                        let quantities = [Some(q.old_quantity), Some(q.new_quantity)];
                        (
                            item(&q.item),
                            quantities.map(|n| n.map(|n| n.to_string())),
                            None,
                        )
                    }
                    CartAction::Checkout(k) => {
                        window.counts[3] += 1;
                        window.checkouts.insert(&c.session_id);
                        let lines = k
                            .items
                            .iter()
                            .map(|l| format!("{}:{}:{}", l.product_id, l.quantity, money(l.price)));
                        let fields = [
                            None,
                            None,
                            None,
                            None,
                            Some(k.total_items.to_string()),
                            Some(k.cart_size.to_string()),
                            Some(money(k.total_value)),
                        ];
                        (
                            fields,
                            [None, None],
                            Some(lines.collect::<Vec<_>>().join(";")),
                        )
                    }
                };
                let cells = [
                    c.event_id.to_string(),
                    c.action.event_type().to_owned(),
                    at.to_string(),
                    c.user_id.clone(),
                    c.session_id.clone(),
                    c.country.as_str().to_owned(),
                ]
                .into_iter()
                .chain(
                    fields
                        .iter()
                        .chain(&changed)
                        .chain([&items])
                        .map(|f| opt(f.as_ref())),
                );
                tables.entry("cart_events").or_default().push(row(cells));
            }
            Event::Product(_) | Event::User(_) => {}
        }
    }
    catalogue.rows(&mut tables);
    activity.rows(&catalogue, &mut tables);
    tables.insert(
        "cart_metrics",
        carts
            .iter()
            .map(|((start, country), w)| {
                row([
                    start.to_string(),
                    (start + MINUTE).to_string(),
                    country.to_string(),
                ]
                .into_iter()
                .chain(w.counts.map(|n| n.to_string()))
                .chain([w.sessions.len().to_string(), w.checkouts.len().to_string()]))
            })
            .collect(),
    );
    tables.insert("product_stock", catalogue.stock(events));
    tables
}

/// The catalogue records: every version, and the newest of each product and user.
struct Catalogue<'a> {
    products: BTreeMap<&'a str, Vec<&'a Product>>,
    users: Vec<(String, DateTime<Utc>, String)>,
}

impl<'a> Catalogue<'a> {
    fn of(events: &'a [Event]) -> Catalogue<'a> {
        let mut products: BTreeMap<&str, Vec<&Product>> = BTreeMap::new();
        let mut users = Vec::new();
        for event in events {
            match event {
                Event::Product(p) => products.entry(&p.product_id).or_default().push(p),
                Event::User(u) => {
                    let preferences: Vec<&str> = u.preferences.iter().map(|g| g.name()).collect();
                    let text = row([
                        u.user_id.clone(),
                        u.email.clone(),
                        u.age.to_string(),
                        u.country.as_str().to_owned(),
                        micros(u.registration_date).to_string(),
                        preferences.join(";"),
                        micros(u.updated_at).to_string(),
                    ]);
                    users.push((u.user_id.clone(), u.updated_at, text));
                }
                _ => {}
            }
        }
        for versions in products.values_mut() {
            versions.sort_by_key(|p| p.updated_at);
        }
        Catalogue { products, users }
    }

    /// The category the catalogue gives `product_id`.
    fn category(&self, product_id: &str) -> Option<&'a str> {
        let versions = self.products.get(product_id)?;
        versions.last().map(|p| p.category.as_str())
    }

    fn rows(&self, tables: &mut HashMap<&'static str, Vec<String>>) {
        let text = |p: &Product| {
            row([
                p.product_id.clone(),
                p.name.clone(),
                p.category.clone(),
                money(p.price),
                p.inventory.to_string(),
                format!("{:.1}", p.rating),
                micros(p.updated_at).to_string(),
            ])
        };
        let versions = self.products.values().flatten();
        tables.insert("product_history", versions.map(|p| text(p)).collect());
        let newest = self.products.values().filter_map(|v| v.last());
        tables.insert("products", newest.map(|p| text(p)).collect());

        let mut newest: BTreeMap<&str, (DateTime<Utc>, &str)> = BTreeMap::new();
        for (id, updated_at, text) in &self.users {
            let entry = newest.entry(id).or_insert((*updated_at, text));
            if *updated_at > entry.0 {
                *entry = (*updated_at, text);
            }
        }
        tables.insert(
            "user_history",
            self.users.iter().map(|(_, _, t)| t.clone()).collect(),
        );
        tables.insert(
            "users",
            newest.values().map(|(_, t)| t.to_string()).collect(),
        );
    }

    /// Stock per catalogued product: the inventory of its last restock (a version whose
    /// inventory differs from the one before, or its first), less the units sold from then on.
    fn stock(&self, events: &[Event]) -> Vec<String> {
        self.products
            .iter()
            .filter_map(|(id, versions)| {
                let restock = versions
                    .iter()
                    .enumerate()
                    .rfind(|(n, p)| *n == 0 || versions[n - 1].inventory != p.inventory)?
                    .1;
                let sold: i64 = events
                    .iter()
                    .filter_map(|e| match e {
                        Event::Transaction(t) if t.timestamp >= restock.updated_at => Some(t),
                        _ => None,
                    })
                    .flat_map(|t| &t.products)
                    .filter(|l| l.product_id == *id)
                    .map(|l| i64::from(l.quantity))
                    .sum();
                Some(row([
                    id.to_string(),
                    (i64::from(restock.inventory) - sold).to_string(),
                    restock.inventory.to_string(),
                    sold.to_string(),
                    micros(restock.updated_at).to_string(),
                ]))
            })
            .collect()
    }
}

/// The windows sales, views and cart adds are counted in.
#[derive(Default)]
struct Activity<'a> {
    /// Per minute, per minute and country, per hour.
    minutes: BTreeMap<i64, Sales>,
    countries: BTreeMap<(i64, &'a str), Sales>,
    hours: BTreeMap<i64, Sales>,
    /// Per minute and product, with a category the events name for it.
    products: BTreeMap<(i64, &'a str), Counts>,
    named: HashMap<&'a str, &'a str>,
    /// Per product and ten minutes: units and lines.
    demand: BTreeMap<(&'a str, i64), (i64, i64)>,
}

#[derive(Default, Clone, Copy)]
struct Sales {
    count: i64,
    revenue: Decimal,
    items: i64,
}

/// Views, cart adds, order lines, units and revenue.
#[derive(Default, Clone, Copy)]
struct Counts {
    views: i64,
    adds: i64,
    lines: i64,
    units: i64,
    revenue: Decimal,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, other: Counts) {
        self.views += other.views;
        self.adds += other.adds;
        self.lines += other.lines;
        self.units += other.units;
        self.revenue += other.revenue;
    }
}

#[derive(Default)]
struct CartWindow<'a> {
    /// add_to_cart, remove_from_cart, update_quantity, checkout.
    counts: [i64; 4],
    sessions: BTreeSet<&'a str>,
    checkouts: BTreeSet<&'a str>,
}

impl<'a> Activity<'a> {
    fn sale(&mut self, at: i64, country: &'a str, lines: &'a [LineItem], total: Decimal) {
        let items: i64 = lines.iter().map(|l| i64::from(l.quantity)).sum();
        for sales in [
            self.minutes.entry(floor(at, MINUTE)).or_default(),
            self.countries
                .entry((floor(at, MINUTE), country))
                .or_default(),
            self.hours.entry(floor(at, HOUR)).or_default(),
        ] {
            sales.count += 1;
            sales.revenue += total;
            sales.items += items;
        }
        for line in lines {
            let units = i64::from(line.quantity);
            *self.counted(at, &line.product_id) += Counts {
                lines: 1,
                units,
                revenue: line.price * Decimal::from(line.quantity),
                ..Counts::default()
            };
            let demand = self
                .demand
                .entry((&line.product_id, floor(at, TEN_MINUTES)))
                .or_default();
            demand.0 += units;
            demand.1 += 1;
        }
    }

    fn view(&mut self, at: i64, product_id: &'a str, category: &'a str) {
        self.named.insert(product_id, category);
        self.counted(at, product_id).views += 1;
    }

    fn cart_add(&mut self, at: i64, product_id: &'a str, category: &'a str) {
        self.named.insert(product_id, category);
        self.counted(at, product_id).adds += 1;
    }

    fn counted(&mut self, at: i64, product_id: &'a str) -> &mut Counts {
        self.products
            .entry((floor(at, MINUTE), product_id))
            .or_default()
    }

    fn rows(&self, catalogue: &Catalogue, tables: &mut HashMap<&'static str, Vec<String>>) {
        let sales = |start: i64, length: i64, key: Option<&str>, s: &Sales, items: bool| {
            let average = (s.revenue / Decimal::from(s.count))
                .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
            let mut cells = vec![start.to_string(), (start + length).to_string()];
            cells.extend(key.map(str::to_owned));
            cells.extend([s.count.to_string(), money(s.revenue)]);
            cells.extend(items.then(|| s.items.to_string()));
            cells.push(money(average));
            row(cells)
        };
        let minutes = self.minutes.iter();
        tables.insert(
            "sales_per_minute",
            minutes
                .map(|(w, s)| sales(*w, MINUTE, None, s, true))
                .collect(),
        );
        let countries = self.countries.iter();
        tables.insert(
            "sales_by_country",
            countries
                .map(|((w, c), s)| sales(*w, MINUTE, Some(c), s, false))
                .collect(),
        );
        let hours = self.hours.iter();
        tables.insert(
            "sales_per_hour",
            hours.map(|(w, s)| sales(*w, HOUR, None, s, true)).collect(),
        );

        let mut categories: BTreeMap<(i64, &str), Counts> = BTreeMap::new();
        let mut trending = Vec::new();
        for ((start, product), c) in &self.products {
            let score = Decimal::from(c.views + 3 * c.adds + 5 * c.lines);
            trending.push(row([
                start.to_string(),
                (start + MINUTE).to_string(),
                product.to_string(),
                c.views.to_string(),
                c.adds.to_string(),
                c.lines.to_string(),
                c.units.to_string(),
                money(c.revenue),
                money(score),
            ]));
            let category = (catalogue.category(product))
                .or_else(|| self.named.get(product).copied())
                .unwrap_or("unknown");
            *categories.entry((*start, category)).or_default() += *c;
        }
        tables.insert("trending_products", trending);

        let mut hourly: BTreeMap<(i64, &str), Counts> = BTreeMap::new();
        let mut performance = Vec::new();
        for ((start, category), c) in &categories {
            performance.push(row([
                start.to_string(),
                (start + MINUTE).to_string(),
                category.to_string(),
                c.views.to_string(),
                c.adds.to_string(),
                c.lines.to_string(),
                c.units.to_string(),
                money(c.revenue),
            ]));
            *hourly.entry((floor(*start, HOUR), category)).or_default() += *c;
        }
        tables.insert("category_performance", performance);
        tables.insert(
            "sales_by_category",
            (hourly.iter().filter(|(_, c)| c.lines > 0))
                .map(|((start, category), c)| {
                    row([
                        start.to_string(),
                        (start + HOUR).to_string(),
                        category.to_string(),
                        c.lines.to_string(),
                        c.units.to_string(),
                        money(c.revenue),
                    ])
                })
                .collect(),
        );
        tables.insert(
            "high_demand_alerts",
            (self
                .demand
                .iter()
                .filter(|(_, (units, _))| *units >= HIGH_DEMAND_UNITS))
            .map(|((product, start), (units, lines))| {
                row([
                    product.to_string(),
                    start.to_string(),
                    (start + TEN_MINUTES).to_string(),
                    units.to_string(),
                    lines.to_string(),
                ])
            })
            .collect(),
        );
    }
}

fn row(cells: impl IntoIterator<Item = String>) -> String {
    cells.into_iter().collect::<Vec<_>>().join("|")
}

fn opt(value: Option<&String>) -> String {
    value.cloned().unwrap_or_else(|| NULL.to_owned())
}

fn money(value: Decimal) -> String {
    format!("{:.2}", value)
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// The start of the window of `length` microseconds `at` falls in.
fn floor(at: i64, length: i64) -> i64 {
    at - at.rem_euclid(length)
}
