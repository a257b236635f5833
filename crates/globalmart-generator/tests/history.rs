//! A backfill on the simulated clock (--from/--to): the same seed gives the same history, every
//! event lies in the period, each session's time moves forward, and over a week the hourly
//! counts follow the configured daily and weekly curves, weekends above weekdays.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc};
use globalmart_generator::timeline::Shape;
use globalmart_testkit::Cli;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_globalmart-generator");

/// A week from Monday 2026-10-05 at 1,000 orders a day, printed.
fn week(seed: &str) -> Result<String> {
    let out = Cli::new(BIN)
        .args([
            "--dry-run",
            "--seed",
            seed,
            "--users",
            "500",
            "--products",
            "100",
        ])
        .args([
            "--from",
            "2026-10-05",
            "--to",
            "2026-10-11",
            "--orders-per-day",
            "1000",
        ])
        .run()?;
    anyhow::ensure!(out.code == Some(0), "{}", out.stderr);
    Ok(out.stdout)
}

/// (topic, session or transaction id, event time) of every event line.
fn events(stdout: &str) -> Result<Vec<(String, String, DateTime<Utc>)>> {
    let mut events = Vec::new();
    for line in stdout.lines() {
        let record: Value = serde_json::from_str(line).with_context(|| line.to_owned())?;
        let topic = record["topic"].as_str().unwrap_or_default().to_owned();
        let value = &record["value"];
        let Some(at) = value["timestamp"].as_str() else {
            continue; // a catalogue record
        };
        let id = value["session_id"]
            .as_str()
            .or(value["transaction_id"].as_str())
            .unwrap_or_default()
            .to_owned();
        let at = DateTime::parse_from_rfc3339(at)?.with_timezone(&Utc);
        events.push((topic, id, at));
    }
    Ok(events)
}

fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

#[test]
fn a_backfilled_week_follows_the_daily_and_weekly_curves() -> Result<()> {
    let printed = week("11")?;
    assert_eq!(
        printed,
        week("11")?,
        "the same seed must give the same history"
    );
    assert_ne!(printed, week("12")?);

    let events = events(&printed)?;
    let monday = Utc
        .with_ymd_and_hms(2026, 10, 5, 0, 0, 0)
        .single()
        .context("a date")?;
    let end = monday + Duration::days(7);
    assert!(events.iter().all(|(_, _, at)| *at >= monday && *at < end));
    // 1,000 orders a day on an ordinary day: 7,000 in the week, within 3 %.
    let orders = events
        .iter()
        .filter(|(topic, _, _)| topic == "transactions-topic")
        .count();
    assert!((6_790..=7_210).contains(&orders), "{orders} orders");
    // Within a session, time moves forward.
    let mut last: BTreeMap<&str, DateTime<Utc>> = BTreeMap::new();
    for (topic, id, at) in &events {
        if topic != "transactions-topic" {
            let before = last.insert(id, *at);
            assert!(
                before.is_none_or(|b| b <= *at),
                "session {id} went back in time"
            );
        }
    }

    let mut hourly = vec![0.0; 7 * 24];
    for (_, _, at) in &events {
        let hour = at.weekday().num_days_from_monday() * 24 + at.hour();
        hourly[hour as usize] += 1.0;
    }
    let r = correlation(&hourly, &Shape::default().week());
    println!("{orders} orders; hourly counts correlate {r:.3} with the configured curve");
    assert!(
        r >= 0.9,
        "hourly counts correlate {r:.3} with the configured curve"
    );
    let day = |d: usize| hourly[d * 24..(d + 1) * 24].iter().sum::<f64>();
    let weekdays = (0..5).map(day).sum::<f64>() / 5.0;
    let weekend = (5..7).map(day).sum::<f64>() / 2.0;
    println!("weekend days {:.3}x weekdays", weekend / weekdays);
    assert!(
        weekend / weekdays > 1.1,
        "weekend {weekend} vs weekday {weekdays} events a day"
    );
    Ok(())
}

#[test]
fn a_backfill_that_would_end_before_it_starts_names_the_key() -> Result<()> {
    let out = Cli::new(BIN)
        .env("METRICS_ADDR", "127.0.0.1:0")
        .args(["--dry-run", "--from", "2999-01-01"])
        .run()?;
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("GENERATOR_FROM"), "{}", out.stderr);
    Ok(())
}

#[test]
fn then_live_carries_on_at_the_wall_clock_after_the_last_day() -> Result<()> {
    let started = Utc::now();
    let out = Cli::new(BIN)
        .env("METRICS_ADDR", "127.0.0.1:0")
        .args([
            "--dry-run",
            "--seed",
            "5",
            "--users",
            "100",
            "--products",
            "50",
        ])
        .args(["--days", "1", "--orders-per-day", "20", "--then-live"])
        .args(["--rate", "1000", "--count", "300"])
        .run()?;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let times: Vec<DateTime<Utc>> = events(&out.stdout)?.into_iter().map(|e| e.2).collect();
    assert_eq!(times.len(), 300);
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "time went back");
    // The backfill starts a day back; the live part is stamped with the wall clock.
    let first = *times.first().context("events")?;
    assert!(
        first < started - Duration::hours(12),
        "first event at {first}"
    );
    let live = times.iter().filter(|t| **t >= started).count();
    assert!(
        (1..300).contains(&live),
        "{live} of 300 events at or after the start of the run"
    );
    Ok(())
}
