//! Analytics over facts built from hand-made events whose right answers are known: RFM
//! quintiles, every segment of the map and the tie rule, conversion, performance tiers and
//! ranks, growth across a year boundary, reruns and history.

mod common;

use std::time::Duration as StdDuration;

use anyhow::Result;
use chrono::NaiveDate;
use globalmart_batch::analytics::{self, Basis};
use globalmart_batch::etl::{self, Settings};
use globalmart_core::domain::Country;
use globalmart_core::event::{Event, Product};
use globalmart_core::topics::Topic;
use globalmart_testkit::TestStack;
use rust_decimal::Decimal;
use tokio_postgres::Client;

use common::{kettle, purchase, save, shopper, view, OtherLanes};

const MINUTES_PER_DAY: i64 = 24 * 60;

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
}

/// Minutes after 2025-12-07 10:00 of noon on `day`.
fn noon(day: NaiveDate) -> i64 {
    (day - date(2025, 12, 7)).num_days() * MINUTES_PER_DAY + 120
}

fn user(i: i64) -> String {
    format!("USER_{i:08}")
}

/// Saves `events`, then loads them into the warehouse.
async fn facts(stack: &TestStack, events: &[Event]) -> Result<()> {
    let mut realtime = stack.realtime_client().await?;
    let mut warehouse = stack.warehouse_client().await?;
    let mut extra = OtherLanes::connect(stack).await?;
    save(&mut realtime, events).await?;
    let settings = Settings {
        chunk_rows: 10_000,
        lock_timeout: StdDuration::from_secs(5),
    };
    etl::run(&mut realtime, &mut warehouse, extra.lanes(), &settings).await?;
    Ok(())
}

async fn analyse(stack: &TestStack, day: NaiveDate) -> Result<()> {
    let mut warehouse = stack.warehouse_client().await?;
    analytics::run(&mut warehouse, day, Basis::Totals).await?;
    Ok(())
}

async fn rows<T>(
    client: &Client,
    query: &str,
    row: impl Fn(&tokio_postgres::Row) -> T,
) -> Result<Vec<T>> {
    Ok(client.query(query, &[]).await?.iter().map(row).collect())
}

/// Ten customers: customer i has i orders of 10 × i each, the last one 10 − i days before
/// 2025-12-31. So recency, frequency and money all rank the same way and each pair of
/// customers shares one quintile: scores 1,1,2,2,3,3,4,4,5,5.
fn ten_customers() -> Vec<Event> {
    let mut events = vec![kettle(10, 4, 0)];
    for i in 1..=10 {
        events.push(shopper(&user(i), Country::Germany, 0));
        let last = date(2025, 12, 31) - chrono::Duration::days(10 - i);
        for j in 0..i {
            let day = last - chrono::Duration::days(j);
            events.push(purchase(&user(i), "PROD_00000001", 10 * i, noon(day)));
        }
    }
    events
}

#[tokio::test]
async fn rfm_scores_by_quintile_and_names_segments_from_the_map() -> Result<()> {
    let stack = TestStack::new().await?;
    let warehouse = stack.warehouse_client().await?;
    facts(&stack, &ten_customers()).await?;
    analyse(&stack, date(2025, 12, 31)).await?;

    let scored = rows(
        &warehouse,
        "SELECT user_id, recency_days, frequency_count, monetary_value, rfm_score, rfm_segment
         FROM rfm_analysis ORDER BY user_id",
        |r| {
            (
                r.get::<_, String>(0),
                r.get::<_, i32>(1),
                r.get::<_, i32>(2),
                r.get::<_, Decimal>(3),
                r.get::<_, String>(4),
                r.get::<_, String>(5),
            )
        },
    )
    .await?;
    let quintile = [1, 1, 2, 2, 3, 3, 4, 4, 5, 5];
    let segment = [
        "Lost",
        "Lost",
        "Hibernating",
        "Hibernating",
        "Potential Loyalists",
        "Potential Loyalists",
        "Champions",
        "Champions",
        "Champions",
        "Champions",
    ];
    let expected: Vec<_> = (1..=10i64)
        .map(|i| {
            let q = quintile[(i - 1) as usize];
            (
                user(i),
                (10 - i) as i32,
                i as i32,
                Decimal::from(10 * i * i),
                format!("{q}{q}{q}"),
                segment[(i - 1) as usize].to_owned(),
            )
        })
        .collect();
    assert_eq!(scored, expected);

    // The score is on the customer's current row.
    let score: String = warehouse
        .query_one(
            "SELECT rfm_score FROM dim_customers WHERE user_id = $1 AND is_current",
            &[&user(10)],
        )
        .await?
        .get(0);
    assert_eq!(score, "555");

    // Segments: one row each, counts summing to the customers analysed, revenue per order.
    let segments = rows(
        &warehouse,
        "SELECT segment_name, customer_count, total_revenue, avg_order_value
         FROM customer_segments ORDER BY segment_name",
        |r| {
            (
                r.get::<_, String>(0),
                r.get::<_, i64>(1),
                r.get::<_, Decimal>(2),
                r.get::<_, Decimal>(3),
            )
        },
    )
    .await?;
    // Champions: customers 7-10, 34 orders worth 490 + 640 + 810 + 1000 = 2940; and so on.
    assert_eq!(
        segments,
        vec![
            (
                "Champions".to_owned(),
                4,
                Decimal::from(2940),
                Decimal::new(8647, 2)
            ),
            (
                "Hibernating".to_owned(),
                2,
                Decimal::from(250),
                Decimal::new(3571, 2)
            ),
            (
                "Lost".to_owned(),
                2,
                Decimal::from(50),
                Decimal::new(1667, 2)
            ),
            (
                "Potential Loyalists".to_owned(),
                2,
                Decimal::from(610),
                Decimal::new(5545, 2)
            ),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn conversion_is_the_share_of_viewers_who_bought_and_stays_within_0_and_100() -> Result<()> {
    let stack = TestStack::new().await?;
    let warehouse = stack.warehouse_client().await?;
    let mut events = vec![kettle(10, 4, 0)];
    // Four viewers, two of whom buy (one twice); a fifth customer buys without viewing.
    for i in 1..=5 {
        events.push(shopper(&user(i), Country::Germany, 0));
    }
    for i in 1..=4 {
        events.push(view(&user(i), "PROD_00000001", 10));
        events.push(view(&user(i), "PROD_00000001", 11));
    }
    events.extend([
        purchase(&user(1), "PROD_00000001", 10, 20),
        purchase(&user(1), "PROD_00000001", 10, 21),
        purchase(&user(2), "PROD_00000001", 10, 22),
        purchase(&user(5), "PROD_00000001", 10, 23),
    ]);
    facts(&stack, &events).await?;
    analyse(&stack, date(2025, 12, 7)).await?;
    let (views, orders, conversion, tier): (i64, i64, Decimal, String) = warehouse
        .query_one(
            "SELECT total_views, total_sales, conversion_rate, performance_tier
             FROM product_performance WHERE product_id = 'PROD_00000001'",
            &[],
        )
        .await
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))?;
    assert_eq!((views, orders), (8, 4));
    assert_eq!(conversion, Decimal::from(50));
    assert_eq!(tier, "Top Performer");
    Ok(())
}

#[tokio::test]
async fn growth_compares_each_period_with_the_one_before_across_the_year_boundary() -> Result<()> {
    let stack = TestStack::new().await?;
    let warehouse = stack.warehouse_client().await?;
    let buyer = user(1);
    facts(
        &stack,
        &[
            kettle(10, 4, 0),
            shopper(&buyer, Country::Germany, 0),
            purchase(&buyer, "PROD_00000001", 100, noon(date(2025, 12, 31))),
            purchase(&buyer, "PROD_00000001", 150, noon(date(2026, 1, 1))),
        ],
    )
    .await?;
    analyse(&stack, date(2026, 1, 1)).await?;
    let trends = rows(
        &warehouse,
        "SELECT period_type, period_value, total_revenue, growth_rate FROM sales_trends
         WHERE category = 'All' ORDER BY period_type, period_start",
        |r| {
            (
                r.get::<_, String>(0),
                r.get::<_, String>(1),
                r.get::<_, Decimal>(2),
                r.get::<_, Option<Decimal>>(3),
            )
        },
    )
    .await?;
    let row = |t: &str, v: &str, revenue: i64, growth: Option<i64>| {
        (
            t.to_owned(),
            v.to_owned(),
            Decimal::from(revenue),
            growth.map(Decimal::from),
        )
    };
    assert_eq!(
        trends,
        vec![
            row("daily", "2025-12-31", 100, None),
            row("daily", "2026-01-01", 150, Some(50)),
            row("monthly", "2025-12", 100, None),
            row("monthly", "2026-01", 150, Some(50)),
            row("quarterly", "2025-Q4", 100, None),
            row("quarterly", "2026-Q1", 150, Some(50)),
            // 2025-12-29 to 2026-01-04 is ISO week 1 of 2026.
            row("weekly", "2026-W01", 250, None),
        ]
    );
    let categories: i64 = warehouse
        .query_one(
            "SELECT count(*) FROM sales_trends WHERE category = 'Kitchen Utensils'",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(categories, 7);
    Ok(())
}

/// A late sale is looked up in its own periods only: a customer who bought on 2026-01-01 and
/// then, loaded later, on 2025-12-30 (the same ISO week, another month and quarter) is new to
/// December and to the fourth quarter, not to the week.
#[tokio::test]
async fn a_late_sale_makes_its_customer_new_to_its_month_and_quarter_not_to_its_week() -> Result<()>
{
    let stack = TestStack::new().await?;
    let warehouse = stack.warehouse_client().await?;
    let buyer = user(1);
    facts(
        &stack,
        &[
            kettle(10, 4, 0),
            shopper(&buyer, Country::Germany, 0),
            purchase(&buyer, "PROD_00000001", 100, noon(date(2026, 1, 1))),
        ],
    )
    .await?;
    facts(
        &stack,
        &[purchase(
            &buyer,
            "PROD_00000001",
            150,
            noon(date(2025, 12, 30)),
        )],
    )
    .await?;
    analyse(&stack, date(2026, 1, 1)).await?;
    let customers = rows(
        &warehouse,
        "SELECT period_value, unique_customers FROM sales_trends
         WHERE category = 'All' ORDER BY period_type, period_start",
        |r| (r.get::<_, String>(0), r.get::<_, i64>(1)),
    )
    .await?;
    let row = |v: &str, n: i64| (v.to_owned(), n);
    assert_eq!(
        customers,
        vec![
            row("2025-12-30", 1),
            row("2026-01-01", 1),
            row("2025-12", 1),
            row("2026-01", 1),
            row("2025-Q4", 1),
            row("2026-Q1", 1),
            row("2026-W01", 1),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn a_rerun_on_the_same_day_replaces_it_and_the_next_day_keeps_history() -> Result<()> {
    let stack = TestStack::new().await?;
    let mut warehouse = stack.warehouse_client().await?;
    facts(&stack, &ten_customers()).await?;
    let snapshot = "SELECT (SELECT count(*) FROM product_performance)
                        || '/' || (SELECT count(*) FROM rfm_analysis)
                        || '/' || (SELECT string_agg(rfm_segment || rfm_score, ',' ORDER BY user_id)
                                   FROM rfm_analysis)
                        || '/' || (SELECT count(*) FROM sales_trends)
                        || '/' || (SELECT count(*) FROM customer_segments)
                        || '/' || (SELECT count(*) FROM customer_segments_history)";
    let text = |row: &tokio_postgres::Row| row.get::<_, String>(0);
    analyse(&stack, date(2025, 12, 31)).await?;
    let once = rows(&warehouse, snapshot, text).await?;
    let untouched = "SELECT (SELECT count(*) FROM rfm_analysis WHERE created_at = '2000-01-01')
                         || '/' || (SELECT count(*) FROM product_performance
                                    WHERE created_at <> '2000-01-01')";
    // Every row dated long ago: a rerun with nothing new (which rescores only the customers
    // whose totals changed, none) rewrites nothing.
    warehouse
        .batch_execute(
            "UPDATE rfm_analysis SET created_at = '2000-01-01';
             UPDATE product_performance SET created_at = '2000-01-01';",
        )
        .await?;
    analyse(&stack, date(2025, 12, 31)).await?;
    assert_eq!(rows(&warehouse, untouched, text).await?, ["10/0"]);
    // A row spoiled and a row of nobody: the audit (`--recompute`), which compares every row,
    // mends the first, removes the second and rewrites nothing else.
    warehouse
        .batch_execute(
            "UPDATE rfm_analysis SET rfm_segment = 'Spoiled'
                 WHERE user_id = (SELECT min(user_id) FROM rfm_analysis);
             INSERT INTO rfm_analysis (analysis_date, user_id, recency_days, frequency_count,
                 monetary_value, recency_score, frequency_score, monetary_score, rfm_score,
                 rfm_segment)
             VALUES ('2025-12-31', 'USER_NOBODY', 1, 1, 1, 1, 1, 1, '111', 'Lost');",
        )
        .await?;
    analytics::run(&mut warehouse, date(2025, 12, 31), Basis::Recompute).await?;
    assert_eq!(rows(&warehouse, snapshot, text).await?, once);
    assert_eq!(rows(&warehouse, untouched, text).await?, ["9/0"]);
    // A customer's new version (another country) starts with the score of the version before:
    // a rerun of the date, which only copies the scores of the rows it rewrote, leaves it so.
    facts(&stack, &[shopper(&user(3), Country::France, 60)]).await?;
    analyse(&stack, date(2025, 12, 31)).await?;
    let score = format!(
        "SELECT rfm_score FROM rfm_analysis
         WHERE user_id = '{}' AND analysis_date = '2025-12-31'",
        user(3)
    );
    let score = rows(&warehouse, &score, text).await?.concat();
    let versions = format!(
        "SELECT string_agg(is_current || ':' || coalesce(rfm_score, '-'), ',' ORDER BY is_current)
         FROM dim_customers WHERE user_id = '{}'",
        user(3)
    );
    assert_eq!(
        rows(&warehouse, &versions, text).await?,
        [format!("false:{score},true:{score}")]
    );

    analyse(&stack, date(2026, 1, 1)).await?;
    let dates = rows(
        &warehouse,
        "SELECT analysis_date::text || ':' || count(*) FROM rfm_analysis
         GROUP BY analysis_date ORDER BY analysis_date",
        text,
    )
    .await?;
    assert_eq!(dates, vec!["2025-12-31:10", "2026-01-01:10"]);
    let latest = rows(
        &warehouse,
        "SELECT DISTINCT analysis_date::text FROM customer_segments",
        text,
    )
    .await?;
    assert_eq!(latest, vec!["2026-01-01"]);
    let kept = rows(
        &warehouse,
        "SELECT DISTINCT analysis_date::text FROM customer_segments_history ORDER BY 1",
        text,
    )
    .await?;
    assert_eq!(kept, vec!["2025-12-31", "2026-01-01"]);
    Ok(())
}

#[tokio::test]
async fn a_day_before_any_sale_gives_every_product_no_sales_and_no_customer() -> Result<()> {
    let stack = TestStack::new().await?;
    facts(
        &stack,
        &[
            kettle(10, 4, 0),
            shopper(&user(1), Country::Usa, 0),
            purchase(&user(1), "PROD_00000001", 10, 60),
        ],
    )
    .await?;
    // The day before the first sale: products exist, facts up to then do not.
    analyse(&stack, date(2025, 12, 6)).await?;
    let warehouse = stack.warehouse_client().await?;
    let products = rows(
        &warehouse,
        "SELECT product_id, total_sales, total_revenue, performance_tier FROM product_performance
         WHERE analysis_date = '2025-12-06'",
        |r| {
            (
                r.get::<_, String>(0),
                r.get::<_, i64>(1),
                r.get::<_, Decimal>(2),
                r.get::<_, String>(3),
            )
        },
    )
    .await?;
    assert_eq!(
        products,
        [(
            "PROD_00000001".to_owned(),
            0,
            Decimal::ZERO,
            "No Sales".to_owned()
        )]
    );
    let customers: i64 = warehouse
        .query_one(
            "SELECT count(*) FROM rfm_analysis WHERE analysis_date = '2025-12-06'",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(customers, 0);
    Ok(())
}

#[tokio::test]
async fn tiers_and_ranks_follow_revenue_within_the_shop_and_each_category() -> Result<()> {
    let stack = TestStack::new().await?;
    let warehouse = stack.warehouse_client().await?;
    // Product i sells once for 10 × i; even ones are laptops, odd ones kitchen utensils.
    let mut events = vec![shopper(&user(1), Country::Germany, 0)];
    for i in 1..=10 {
        let category = if i % 2 == 0 {
            "Laptops"
        } else {
            "Kitchen Utensils"
        };
        events.push(Event::Product(Product {
            product_id: format!("PROD_{i:08}"),
            name: format!("Product {i}"),
            category: category.into(),
            price: Decimal::from(10 * i),
            inventory: 100,
            rating: Decimal::from(4),
            updated_at: common::ten(),
        }));
        events.push(purchase(&user(1), &format!("PROD_{i:08}"), 10 * i, i));
    }
    facts(&stack, &events).await?;
    analyse(&stack, date(2025, 12, 7)).await?;
    let shown = rows(
        &warehouse,
        "SELECT product_id, overall_rank, category_rank, performance_tier
         FROM product_performance ORDER BY overall_rank",
        |r| {
            (
                r.get::<_, String>(0),
                r.get::<_, i32>(1),
                r.get::<_, i32>(2),
                r.get::<_, String>(3),
            )
        },
    )
    .await?;
    // By revenue: the top 20 % of the ten (2), the next 30 % (3), the next 30 % (3), the rest.
    let tiers = [
        "Top Performer",
        "Top Performer",
        "Strong",
        "Strong",
        "Strong",
        "Average",
        "Average",
        "Average",
        "Underperformer",
        "Underperformer",
    ];
    let expected: Vec<(String, i32, i32, String)> = (1..=10)
        .map(|rank: i32| {
            let i = 11 - rank; // the product with the rank-th highest revenue
                               // Within its category (every other product), ranks 1 to 5.
            let in_category = (rank + 1) / 2;
            (
                format!("PROD_{i:08}"),
                rank,
                in_category,
                tiers[rank as usize - 1].to_owned(),
            )
        })
        .collect();
    assert_eq!(shown, expected);
    Ok(())
}

#[tokio::test]
async fn every_segment_of_the_map_is_reached_by_its_scores() -> Result<()> {
    let stack = TestStack::new().await?;
    let warehouse = stack.warehouse_client().await?;
    // Ten customers, two per quintile in each of R, F and M, so the scores are the ones set
    // here: (customer, recency score, frequency score, monetary score, segment by the map).
    let plan = [
        (1, 1, 5, 5, "Cannot Lose Them"),
        (2, 1, 2, 2, "Lost"),
        (3, 2, 3, 4, "At Risk"),
        (4, 2, 2, 2, "Hibernating"),
        (5, 3, 4, 4, "Loyal Customers"),
        (6, 3, 1, 1, "Promising"),
        (7, 4, 1, 1, "New Customers"),
        (8, 4, 3, 3, "Potential Loyalists"),
        (9, 5, 5, 5, "Champions"),
        (10, 5, 4, 3, "Loyal Customers"),
    ];
    // Recency: customer i's last order is on December 10 + i, so the order of i is the order
    // of recency. Frequency: orders by rank within the plan's F pairs; money likewise.
    let orders = [9, 3, 5, 4, 7, 1, 2, 6, 10, 8];
    let money = [9, 3, 7, 4, 8, 1, 2, 5, 10, 6];
    let mut events = vec![kettle(10, 4, 0)];
    for (i, ..) in plan {
        let (n, m) = (orders[i as usize - 1], money[i as usize - 1]);
        events.push(shopper(&user(i), Country::Germany, 0));
        let last = date(2025, 12, 10) + chrono::Duration::days(i);
        for j in 0..n {
            let day = last - chrono::Duration::days(j);
            // 2520 is divisible by every order count here: m × 2520 in n equal orders.
            events.push(purchase(&user(i), "PROD_00000001", m * 2520 / n, noon(day)));
        }
    }
    facts(&stack, &events).await?;
    analyse(&stack, date(2025, 12, 31)).await?;
    let scored = rows(
        &warehouse,
        "SELECT user_id, rfm_score, rfm_segment FROM rfm_analysis ORDER BY user_id",
        |r| {
            (
                r.get::<_, String>(0),
                r.get::<_, String>(1),
                r.get::<_, String>(2),
            )
        },
    )
    .await?;
    let expected: Vec<_> = plan
        .iter()
        .map(|(i, r, f, m, segment)| (user(*i), format!("{r}{f}{m}"), segment.to_string()))
        .collect();
    assert_eq!(scored, expected);
    Ok(())
}

#[tokio::test]
async fn tied_customers_share_the_score_of_their_middle_position() -> Result<()> {
    let stack = TestStack::new().await?;
    let warehouse = stack.warehouse_client().await?;
    // Ten customers with one order each: all tied on frequency, positions 1 to 10, middle 5.5,
    // which is in the third fifth: F = 3 for all. Recency and money differ: 1 to 5 in pairs.
    let mut events = vec![kettle(10, 4, 0)];
    for i in 1..=10 {
        events.push(shopper(&user(i), Country::Germany, 0));
        let day = date(2025, 12, 10) + chrono::Duration::days(i);
        events.push(purchase(&user(i), "PROD_00000001", 10 * i, noon(day)));
    }
    facts(&stack, &events).await?;
    analyse(&stack, date(2025, 12, 31)).await?;
    let scores = rows(
        &warehouse,
        "SELECT rfm_score FROM rfm_analysis ORDER BY user_id",
        |r| r.get::<_, String>(0),
    )
    .await?;
    let expected: Vec<String> = (1..=10)
        .map(|i| {
            let q = (i + 1) / 2;
            format!("{q}3{q}")
        })
        .collect();
    assert_eq!(scores, expected);
    Ok(())
}

/// Every snapshot of `day` as text, without the time it was written: what two runs of the
/// same analysis must agree on.
async fn snapshots(warehouse: &Client, day: NaiveDate) -> Result<Vec<String>> {
    let mut all = Vec::new();
    for table in [
        "product_performance",
        "rfm_analysis",
        "customer_segments_history",
        "sales_trends",
    ] {
        let query = format!(
            "SELECT '{table} ' || (to_jsonb(t) - 'created_at')::text FROM {table} t
             WHERE analysis_date = $1 ORDER BY 1"
        );
        for row in warehouse.query(&query, &[&day]).await? {
            all.push(row.get(0));
        }
    }
    let scores = "SELECT 'dim_customers ' || user_id || ' ' || coalesce(rfm_score, '-') || ' '
                      || coalesce(customer_segment, '-')
                  FROM dim_customers WHERE is_current ORDER BY 1";
    for row in warehouse.query(scores, &[]).await? {
        all.push(row.get(0));
    }
    Ok(all)
}

/// The first line where two snapshots differ, for the failure message.
fn first_difference(a: &[String], b: &[String]) -> String {
    a.iter()
        .zip(b)
        .find(|(x, y)| x != y)
        .map(|(x, y)| format!("totals:    {x}\nrecompute: {y}"))
        .unwrap_or_else(|| format!("{} rows against {}", a.len(), b.len()))
}

#[tokio::test]
async fn running_totals_after_many_small_runs_with_late_events_equal_the_recompute() -> Result<()> {
    let stack = TestStack::new().await?;
    let mut realtime = stack.realtime_client().await?;
    let mut warehouse = stack.warehouse_client().await?;
    let mut extra = OtherLanes::connect(&stack).await?;
    // 27 days from Sunday 2025-12-07 (weeks, a month and a quarter end), catalogue changes on
    // the way (new SCD2 versions, categories that change); one event in five held back to a
    // later run, so days, weeks and months already loaded get late sales, views and adds.
    let events = common::shop(19, 0.02, 4000, 600);
    let (mut on_time, mut late) = (Vec::new(), Vec::new());
    for (i, event) in events.into_iter().enumerate() {
        let catalogue = matches!(event.topic(), Topic::Products | Topic::Users);
        if !catalogue && i % 5 == 0 {
            late.push(event);
        } else {
            on_time.push(event);
        }
    }
    let (early, rest) = on_time.split_at(on_time.len() / 2);
    // Five products move to another category from the second half on: their sales before
    // count in the old category, after in the new.
    let products: Vec<Product> = early
        .iter()
        .filter_map(|e| match e {
            Event::Product(p) => Some(p.clone()),
            _ => None,
        })
        .collect();
    let moved_at = early
        .iter()
        .filter_map(|e| match e {
            Event::Transaction(t) => Some(t.timestamp),
            _ => None,
        })
        .max()
        .expect("sales in the first half");
    let other = |p: &Product| {
        products
            .iter()
            .map(|o| o.category.clone())
            .find(|c| *c != p.category)
            .expect("two categories")
    };
    let mut second = products[..5]
        .iter()
        .map(|p| {
            Event::Product(Product {
                category: other(p),
                updated_at: moved_at + chrono::Duration::minutes(1),
                ..p.clone()
            })
        })
        .collect::<Vec<_>>();
    second.extend_from_slice(rest);
    let slices = [
        early.to_vec(),
        late[..late.len() / 2].to_vec(),
        second,
        late[late.len() / 2..].to_vec(),
    ];
    // Chunks of 37 rows: orders' lines fall into different chunks of one run.
    let settings = Settings {
        chunk_rows: 37,
        lock_timeout: StdDuration::from_secs(5),
    };
    let day = date(2026, 1, 5);
    // Customers the RFM scored, and the most it rescored in a run that did not score them all.
    let (mut customers, mut rescored) = (0, 0);
    for (n, slice) in slices.iter().enumerate() {
        // Three runs a slice: the first after the audit scores every customer, the others
        // rescore only those whose score can have changed.
        for (k, part) in slice.chunks(slice.len().div_ceil(3)).enumerate() {
            save(&mut realtime, part).await?;
            // Once, every watermark goes back 50 rows: that run's first chunks hold facts
            // loaded before, alone and beside new ones, which are merged (each counted once)
            // instead of inserted as they are.
            let rewound = n == 2 && k == 0;
            if rewound {
                warehouse
                    .execute(
                        "UPDATE etl_watermarks SET last_ingest_seq = greatest(last_ingest_seq - 50, 0)",
                        &[],
                    )
                    .await?;
            }
            let loaded = etl::run(&mut realtime, &mut warehouse, extra.lanes(), &settings).await?;
            let (skipped, new) = (loaded
                .iter()
                .filter(|(table, _)| table.starts_with("fact_")))
            .fold((0, 0), |(s, l), (_, f)| (s + f.skipped, l + f.loaded));
            assert_eq!(skipped > 0, rewound, "facts skipped: {skipped}");
            assert!(new > 0, "no fact loaded by run {k} of slice {n}");
            let jobs = analytics::run(&mut warehouse, day, Basis::Totals).await?;
            let scored = (jobs.iter().find(|(table, _)| *table == "rfm_analysis"))
                .map_or(0, |(_, figures)| figures.extracted);
            customers = warehouse
                .query_one("SELECT count(*) FROM agg_customer_totals", &[])
                .await?
                .get::<_, i64>(0) as usize;
            if scored < customers {
                rescored = rescored.max(scored);
            }
        }
        let totals = snapshots(&warehouse, day).await?;
        analytics::run(&mut warehouse, day, Basis::Recompute).await?;
        let recomputed = snapshots(&warehouse, day).await?;
        assert!(
            totals == recomputed,
            "{}",
            first_difference(&totals, &recomputed)
        );
    }
    assert!(
        rescored > 0 && customers > 0,
        "no rerun rescored part of the {customers} customers"
    );
    let count = |query: &'static str| {
        let warehouse = &warehouse;
        async move { Ok::<i64, anyhow::Error>(warehouse.query_one(query, &[]).await?.get(0)) }
    };
    // What was compared is not trivially equal: sales on many days, converted viewers, orders
    // of several lines, products whose category changed.
    assert!(count("SELECT count(*) FROM sales_trends WHERE period_type = 'daily'").await? > 40);
    assert!(count("SELECT sum(buyers)::bigint FROM agg_product_totals").await? > 0);
    assert!(
        count(
            "SELECT count(*) FROM (SELECT transaction_id FROM fact_sales
             GROUP BY 1 HAVING count(*) > 1) t"
        )
        .await?
            > 10
    );
    assert!(
        count(
            "SELECT count(*) FROM (SELECT product_id FROM dim_products
             GROUP BY 1 HAVING count(DISTINCT category) > 1) t"
        )
        .await?
            > 0
    );
    // And the totals are what the analysis read: a product's or a customer's changed, the
    // snapshot differs from the recompute (then the change is undone).
    let product = "product_id = (SELECT min(product_id) FROM agg_product_views)";
    let customer = "user_id = (SELECT min(user_id) FROM agg_customer_totals)";
    for (table, set, undo, row) in [
        (
            "agg_product_views",
            "views = views + 1",
            "views = views - 1",
            product,
        ),
        (
            "agg_customer_totals",
            "spent = spent + 1000",
            "spent = spent - 1000",
            customer,
        ),
    ] {
        warehouse
            .batch_execute(&format!("UPDATE {table} SET {set} WHERE {row}"))
            .await?;
        analytics::run(&mut warehouse, day, Basis::Totals).await?;
        let tampered = snapshots(&warehouse, day).await?;
        analytics::run(&mut warehouse, day, Basis::Recompute).await?;
        assert_ne!(tampered, snapshots(&warehouse, day).await?, "{table}");
        warehouse
            .batch_execute(&format!("UPDATE {table} SET {undo} WHERE {row}"))
            .await?;
    }
    Ok(())
}
