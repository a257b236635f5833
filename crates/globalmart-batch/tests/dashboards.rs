//! The Grafana dashboards without a Grafana server: every panel's SQL, with the PostgreSQL
//! macros expanded the way Grafana expands them, runs as the read-only role Grafana uses,
//! against empty databases and against databases filled by generator -> savers -> ETL ->
//! analytics; every datasource a panel names is provisioned; time series have a time column.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration as StdDuration;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Duration, Utc};
use globalmart_batch::analytics;
use globalmart_batch::etl::{self, Settings};
use globalmart_core::config::Secret;
use globalmart_core::db::PgSettings;
use globalmart_testkit::TestStack;
use serde_json::Value;
use tokio_postgres::Client;

use common::{save, shop, ten};

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
    let mut as_reader = settings.clone();
    as_reader.user = "globalmart_reader".into();
    as_reader.password = Secret::new("reader_password");
    globalmart_testkit::connect(&as_reader).await
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
    // Five and a half hours of the generator's shop, one event a second.
    save(&mut realtime, &shop(3, 0.01, 20_000, 1)).await?;
    let settings = Settings {
        chunk_rows: 100_000,
        lock_timeout: StdDuration::from_secs(5),
    };
    etl::run(&mut realtime, &mut warehouse, &settings).await?;
    analytics::run(&mut warehouse, ten().date_naive()).await?;
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
