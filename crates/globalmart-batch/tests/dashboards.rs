//! The Grafana dashboards without a Grafana server: every panel's SQL, with the PostgreSQL
//! macros expanded the way Grafana expands them, runs as the read-only role Grafana uses,
//! against empty databases and against databases filled by generator -> savers -> ETL ->
//! analytics; every datasource a panel names is provisioned; time series have a time column;
//! and on a shop small enough to count by hand, the panels show the figures counted by hand.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration as StdDuration;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Duration, Utc};
use globalmart_batch::analytics::{self, Basis};
use globalmart_batch::etl::{self, Settings};
use globalmart_core::db::PgSettings;
use globalmart_core::domain::{Country, PaymentMethod};
use globalmart_core::event::{
    Event, LineItem, Product, ProductView, SessionEvent, Transaction, ViewAction,
};
use globalmart_testkit::TestStack;
use rust_decimal::Decimal;
use serde_json::Value;
use tokio_postgres::Client;

use common::{save, shop, shopper, ten, OtherLanes};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A panel's SQL query: dashboard, panel title, datasource uid, panel type, SQL.
#[derive(Debug)]
struct Query {
    dashboard: String,
    title: String,
    uid: String,
    kind: String,
    sql: String,
}

/// Every panel target of every dashboard, and the datasource uids they name.
fn panels() -> Result<(Vec<Query>, Vec<String>)> {
    let mut queries = Vec::new();
    let mut uids = Vec::new();
    let dir = repository().join("grafana/dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.sort();
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "json"))
    {
        let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(file)?)
            .with_context(|| format!("{} is not JSON", file.display()))?;
        let name = dashboard["title"].as_str().unwrap_or_default().to_owned();
        for panel in dashboard["panels"].as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let uid = target["datasource"]["uid"]
                    .as_str()
                    .or(panel["datasource"]["uid"].as_str())
                    .with_context(|| format!("{name}: a panel names no datasource"))?;
                uids.push(uid.to_owned());
                if let Some(sql) = target["rawSql"].as_str() {
                    queries.push(Query {
                        dashboard: name.clone(),
                        title: panel["title"].as_str().unwrap_or_default().to_owned(),
                        uid: uid.to_owned(),
                        kind: panel["type"].as_str().unwrap_or_default().to_owned(),
                        sql: sql.to_owned(),
                    });
                }
            }
        }
    }
    Ok((queries, uids))
}

/// Seconds in a Grafana interval such as `1m`.
fn seconds(interval: &str) -> Result<i64> {
    let interval = interval.trim().trim_matches('\'');
    let (number, unit) = interval.split_at(interval.len() - 1);
    let n: i64 = number
        .parse()
        .with_context(|| format!("interval {interval}"))?;
    Ok(n * match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => bail!("interval {interval}"),
    })
}

/// The SQL Grafana's PostgreSQL datasource sends for `sql` over [from, to] with a 1-minute
/// interval: $__timeFilter, $__timeGroup, $__timeGroupAlias, $__timeFrom, $__timeTo,
/// $__interval.
fn expand(sql: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<String> {
    let quote = |t: DateTime<Utc>| format!("'{}'", t.format("%Y-%m-%dT%H:%M:%SZ"));
    let mut text = sql.replace("$__interval", "1m");
    while let Some(start) = text.find("$__") {
        let open = text[start..]
            .find('(')
            .map(|i| start + i)
            .context("a macro without arguments")?;
        let close = text[open..]
            .find(')')
            .map(|i| open + i)
            .context("an unclosed macro")?;
        let name = &text[start + 3..open];
        let args: Vec<&str> = text[open + 1..close].split(',').map(str::trim).collect();
        let group = |args: &[&str]| -> Result<String> {
            let n = seconds(args.get(1).context("$__timeGroup needs an interval")?)?;
            Ok(format!("floor(extract(epoch from {})/{n})*{n}", args[0]))
        };
        let expanded = match name {
            "timeFilter" => format!("{} BETWEEN {} AND {}", args[0], quote(from), quote(to)),
            "timeFrom" => quote(from),
            "timeTo" => quote(to),
            "timeGroup" => group(&args)?,
            "timeGroupAlias" => format!("{} AS \"time\"", group(&args)?),
            other => bail!("unknown macro $__{other}"),
        };
        text.replace_range(start..=close, &expanded);
    }
    Ok(text)
}

/// The test database of `uid`, as Grafana's read-only role.
async fn reader(stack: &TestStack, uid: &str) -> Result<Client> {
    let settings: &PgSettings = match uid {
        "postgres-warehouse" => &stack.warehouse,
        "postgres-realtime" => &stack.realtime,
        other => bail!("no database for datasource {other}"),
    };
    common::reader(settings).await
}

/// Runs every SQL panel; returns each panel's row count, or fails naming the panel.
async fn run_all(
    stack: &TestStack,
    queries: &[Query],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(String, usize)>> {
    let mut counts = Vec::new();
    for q in queries {
        let client = reader(stack, &q.uid).await?;
        // Pipeline Health is about the runs themselves: viewed around now, not the data's time.
        let (from, to) = if q.dashboard == "Pipeline Health" {
            (
                Utc::now() - Duration::hours(1),
                Utc::now() + Duration::hours(1),
            )
        } else {
            (from, to)
        };
        let sql = expand(&q.sql, from, to)?;
        let rows = client
            .query(sql.as_str(), &[])
            .await
            .with_context(|| format!("{} / {}: {sql}", q.dashboard, q.title))?;
        if q.kind == "timeseries" {
            if let Some(row) = rows.first() {
                let first = row.columns().first().map(|c| c.name());
                assert_eq!(first, Some("time"), "{} / {}", q.dashboard, q.title);
                assert!(
                    row.len() >= 2,
                    "{} / {}: no value column",
                    q.dashboard,
                    q.title
                );
            }
        }
        counts.push((format!("{} / {}", q.dashboard, q.title), rows.len()));
    }
    Ok(counts)
}

#[test]
fn every_datasource_a_panel_names_is_provisioned() -> Result<()> {
    let provisioned = std::fs::read_to_string(
        repository().join("grafana/provisioning/datasources/datasources.yml"),
    )?;
    let provisioned: serde_yaml::Value = serde_yaml::from_str(&provisioned)?;
    let known: Vec<&str> = provisioned["datasources"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|d| d["uid"].as_str())
        .collect();
    let (queries, uids) = panels()?;
    // The guide's 20 executive and 6 real-time panels, and the 2 SQL ones of Pipeline Health.
    assert!(queries.len() >= 28, "only {} SQL panels", queries.len());
    for uid in uids {
        assert!(known.contains(&uid.as_str()), "{uid} is not provisioned");
    }
    Ok(())
}

#[test]
fn macros_expand_as_grafana_does() -> Result<()> {
    let from = ten();
    let to = ten() + Duration::hours(1);
    assert_eq!(
        expand(
            "SELECT $__timeGroupAlias(ts, $__interval), 1 FROM t WHERE $__timeFilter(ts) AND x < $__timeTo()",
            from,
            to
        )?,
        "SELECT floor(extract(epoch from ts)/60)*60 AS \"time\", 1 FROM t WHERE ts BETWEEN \
         '2025-12-07T10:00:00Z' AND '2025-12-07T11:00:00Z' AND x < '2025-12-07T11:00:00Z'"
    );
    Ok(())
}

#[tokio::test]
async fn every_panel_query_runs_on_empty_and_on_filled_databases() -> Result<()> {
    let stack = TestStack::new().await?;
    let (queries, _) = panels()?;
    let (from, to) = (ten() - Duration::hours(1), ten() + Duration::hours(7));
    run_all(&stack, &queries, from, to).await?;

    let mut realtime = stack.realtime_client().await?;
    let mut warehouse = stack.warehouse_client().await?;
    let mut extra = OtherLanes::connect(&stack).await?;
    // Five and a half hours of the generator's shop, one event a second.
    save(&mut realtime, &shop(3, 0.01, 20_000, 1)).await?;
    let settings = Settings {
        chunk_rows: 100_000,
        lock_timeout: StdDuration::from_secs(5),
    };
    etl::run(&mut realtime, &mut warehouse, extra.lanes(), &settings).await?;
    analytics::run(&mut warehouse, ten().date_naive(), Basis::Totals).await?;
    let counts = run_all(&stack, &queries, from, to).await?;
    // The closing note lists these; a panel without rows on a filled database is a bug.
    for (panel, rows) in &counts {
        println!("{rows:6} rows  {panel}");
    }
    let empty: Vec<&String> = counts
        .iter()
        .filter(|(_, rows)| *rows == 0)
        .map(|(panel, _)| panel)
        .collect();
    assert!(empty.is_empty(), "no rows on filled data: {empty:?}");

    // The guide's custom-dashboard example runs too.
    let example = expand(
        "SELECT
             DATE_TRUNC('hour', transaction_timestamp) as time,
             SUM(total_amount) as revenue
         FROM fact_sales
         WHERE $__timeFilter(transaction_timestamp)
         GROUP BY time
         ORDER BY time",
        from,
        to,
    )?;
    let rows = reader(&stack, "postgres-warehouse")
        .await?
        .query(example.as_str(), &[])
        .await?;
    assert!(!rows.is_empty());
    Ok(())
}

/// A shop small enough to count by hand: a laptop (100) and a novel (20), Anna in the USA and
/// Ben in the UK, three orders and four product views. Each panel below must show the figures
/// counted from them by hand.
#[tokio::test]
async fn the_panels_show_the_hand_counted_figures_of_a_small_shop() -> Result<()> {
    let stack = TestStack::new().await?;
    let (anna, ben) = ("USER_00000001", "USER_00000002");
    let laptop = ("PROD_00000001", "Laptop", "Laptops", 100);
    let novel = ("PROD_00000002", "Novel", "Fiction", 20);
    let mut events = vec![
        item(laptop),
        item(novel),
        shopper(anna, Country::Usa, 0),
        shopper(ben, Country::Uk, 0),
    ];
    // Anna views the laptop twice, Ben the laptop once and the novel once.
    for (user, country, product, minutes) in [
        (anna, Country::Usa, laptop, 1),
        (anna, Country::Usa, laptop, 2),
        (ben, Country::Uk, laptop, 3),
        (ben, Country::Uk, novel, 18),
    ] {
        events.push(looked(user, country, product, minutes));
    }
    // 10:05 Anna: 2 laptops and a novel, 220. 10:20 Ben: 3 novels, 60. 11:05 Anna: a laptop, 100.
    events.push(order(anna, Country::Usa, &[(laptop, 2), (novel, 1)], 5));
    events.push(order(ben, Country::Uk, &[(novel, 3)], 20));
    events.push(order(anna, Country::Usa, &[(laptop, 1)], 65));
    let mut realtime = stack.realtime_client().await?;
    let mut warehouse = stack.warehouse_client().await?;
    let mut extra = OtherLanes::connect(&stack).await?;
    save(&mut realtime, &events).await?;
    let settings = Settings {
        chunk_rows: 100_000,
        lock_timeout: StdDuration::from_secs(5),
    };
    etl::run(&mut realtime, &mut warehouse, extra.lanes(), &settings).await?;
    analytics::run(&mut warehouse, ten().date_naive(), Basis::Totals).await?;

    let minute = |m: i64| (ten() + Duration::minutes(m)).timestamp().to_string();
    let expected: [(&str, Vec<String>); 13] = [
        ("Total Revenue", vec!["380.00".into()]),
        ("Total Orders", vec!["3".into()]),
        // 380 / 3
        ("Average Order Value", vec!["126.67".into()]),
        ("Total Customers", vec!["2".into()]),
        ("Total Units Sold", vec!["7".into()]),
        (
            "Revenue by Country",
            vec!["USA|320.00".into(), "UK|60.00".into()],
        ),
        (
            "Orders Over Time",
            vec![
                format!("{}|1", minute(5)),
                format!("{}|1", minute(20)),
                format!("{}|1", minute(65)),
            ],
        ),
        // Units: laptops 2 + 1, novels 1 + 3.
        (
            "Sales by Category",
            vec!["Fiction|4".into(), "Laptops|3".into()],
        ),
        (
            "Revenue by Category",
            vec!["Laptops|300.00".into(), "Fiction|80.00".into()],
        ),
        // Conversion: of the laptop's viewers (Anna, Ben) Anna bought it, 50 %; of the novel's
        // (Ben) Ben bought it, 100 %.
        (
            "Top Products by Revenue",
            vec![
                "PROD_00000001|Laptop|Laptops|2|300.00|50.00".into(),
                "PROD_00000002|Novel|Fiction|2|80.00|100.00".into(),
            ],
        ),
        ("Average Conversion Rate (Latest)", vec!["75.00".into()]),
        (
            "Sales per Minute",
            vec![
                format!("{}|220.00|1", minute(5)),
                format!("{}|60.00|1", minute(20)),
                format!("{}|100.00|1", minute(65)),
            ],
        ),
        (
            "Transactions by Country",
            vec!["USA|2|320.00".into(), "UK|1|60.00".into()],
        ),
    ];
    let (queries, _) = panels()?;
    let (from, to) = (ten() - Duration::hours(1), ten() + Duration::hours(7));
    for (title, figures) in expected {
        let query = (queries.iter().find(|q| q.title == title))
            .with_context(|| format!("no panel {title:?}"))?;
        let sql = expand(&query.sql, from, to)?;
        let rows = reader(&stack, &query.uid)
            .await?
            .query(sql.as_str(), &[])
            .await?;
        let shown = rows.iter().map(cells).collect::<Result<Vec<_>>>()?;
        assert_eq!(shown, figures, "{} / {title}", query.dashboard);
    }
    Ok(())
}

/// A product as (id, name, category, price).
type Item = (&'static str, &'static str, &'static str, i64);

fn item((id, name, category, price): Item) -> Event {
    Event::Product(Product {
        product_id: id.into(),
        name: name.into(),
        category: category.into(),
        price: Decimal::from(price),
        inventory: 100,
        rating: Decimal::from(4),
        updated_at: ten(),
    })
}

/// `user` in `country` viewing `product` at `minutes` after 10:00.
fn looked(user: &str, country: Country, (id, name, category, price): Item, minutes: i64) -> Event {
    Event::ProductView(SessionEvent {
        event_id: uuid::Uuid::new_v4(),
        timestamp: ten() + Duration::minutes(minutes),
        user_id: user.into(),
        session_id: format!("SESS_{user}"),
        country,
        action: ViewAction::View(ProductView {
            product_id: id.into(),
            product_name: name.into(),
            category: category.into(),
            price: Decimal::from(price),
            view_duration: 30,
            search_query: None,
        }),
    })
}

/// An order of (product, quantity) lines at list price, `minutes` after 10:00.
fn order(user: &str, country: Country, lines: &[(Item, i32)], minutes: i64) -> Event {
    let products: Vec<LineItem> = lines
        .iter()
        .map(|((id, _, _, price), quantity)| LineItem {
            product_id: (*id).into(),
            quantity: *quantity,
            price: Decimal::from(*price),
        })
        .collect();
    Event::Transaction(Transaction {
        transaction_id: uuid::Uuid::new_v4(),
        user_id: user.into(),
        session_id: None,
        timestamp: ten() + Duration::minutes(minutes),
        total_amount: products
            .iter()
            .map(|l| l.price * Decimal::from(l.quantity))
            .sum(),
        products,
        payment_method: PaymentMethod::CreditCard,
        country,
    })
}

/// A row as the panel shows it: cells joined by `|`, numbers to the cent, NULL as `NULL`.
fn cells(row: &tokio_postgres::Row) -> Result<String> {
    use tokio_postgres::types::Type;
    let mut shown = Vec::new();
    for (i, column) in row.columns().iter().enumerate() {
        let cell = match *column.type_() {
            Type::INT4 => row.get::<_, Option<i32>>(i).map(|v| v.to_string()),
            Type::INT8 => row.get::<_, Option<i64>>(i).map(|v| v.to_string()),
            Type::FLOAT8 => row.get::<_, Option<f64>>(i).map(|v| format!("{v:.2}")),
            Type::NUMERIC => row
                .get::<_, Option<Decimal>>(i)
                .map(|v| v.round_dp(2).to_string()),
            Type::TEXT | Type::VARCHAR => row.get::<_, Option<String>>(i),
            ref other => bail!("{}: a column of type {other}", column.name()),
        };
        shown.push(cell.unwrap_or_else(|| "NULL".into()));
    }
    Ok(shown.join("|"))
}
