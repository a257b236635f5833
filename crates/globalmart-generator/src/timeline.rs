//! Simulated time: the event times of a past period (a backfill), as many as its volume and
//! traffic shape call for, generated as fast as they are consumed, never paced by the wall
//! clock. Traffic follows a daily curve (night trough, evening peak), a weekly one (weekend
//! uplift) and promotion days (docs/RUNNING.md, "History: a backfill on a simulated clock",
//! describes the defaults).
//!
//! Time is walked a minute at a time: a minute's expected events are the day's volume times
//! that minute's weight, its count that expectation rounded at random (so fractions add up),
//! its times spread uniformly inside it and sorted, so event time only moves forward.

use std::collections::VecDeque;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Timelike, Utc, Weekday};
use rand::RngExt;
use rand::SeedableRng;

use crate::Rng;

/// Relative traffic per UTC hour of the day: a night trough at 3-5 h, a midday plateau, an
/// evening peak at 19-21 h. [`Shape::weight`] divides by their mean.
const HOURLY: [f64; 24] = [
    0.45, 0.32, 0.24, 0.18, 0.16, 0.18, 0.30, 0.50, 0.75, 0.95, 1.10, 1.20, //
    1.25, 1.20, 1.15, 1.15, 1.20, 1.35, 1.60, 1.85, 1.95, 1.80, 1.35, 0.82,
];

/// Relative traffic per day of the week, Monday first (mean 1): weekends about 17 % above
/// weekdays.
const WEEKLY: [f64; 7] = [0.94, 0.92, 0.93, 0.96, 1.02, 1.15, 1.08];

/// A promotion day's traffic, relative to the same day without it.
pub const PROMOTION_UPLIFT: f64 = 2.0;

/// A span of simulated time: [start, end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Period {
    /// A period of one instant: a shop as of `at`.
    pub fn instant(at: DateTime<Utc>) -> Period {
        Period { start: at, end: at }
    }

    /// The shop of a live run at `at`: as of the start of its day (UTC), so that runs of one
    /// day publish the same catalogue, registration dates included.
    pub fn day_of(at: DateTime<Utc>) -> Period {
        Period::instant(midnight(at.date_naive()))
    }
}

/// The start of `day` (UTC).
pub fn midnight(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(NaiveTime::MIN).and_utc()
}

/// The traffic shape of a period.
#[derive(Debug, Clone, Default)]
pub struct Shape {
    /// Days with promotion traffic.
    pub promotions: Vec<NaiveDate>,
}

impl Shape {
    /// Relative traffic at `t`; its mean over an ordinary week is 1.
    pub fn weight(&self, t: DateTime<Utc>) -> f64 {
        let hourly_mean = HOURLY.iter().sum::<f64>() / 24.0;
        let weekly_mean = WEEKLY.iter().sum::<f64>() / 7.0;
        let day = t.weekday().num_days_from_monday() as usize;
        let promotion = if self.is_promotion(t.date_naive()) {
            PROMOTION_UPLIFT
        } else {
            1.0
        };
        HOURLY[t.hour() as usize] / hourly_mean * WEEKLY[day] / weekly_mean * promotion
    }

    /// Whether `day` is a promotion day.
    pub fn is_promotion(&self, day: NaiveDate) -> bool {
        self.promotions.contains(&day)
    }

    /// The configured relative traffic of each hour of a week starting on a Monday, for tests
    /// and documentation: hour 0 is Monday 00:00-01:00 UTC.
    pub fn week(&self) -> Vec<f64> {
        let monday = NaiveDate::from_isoywd_opt(2026, 1, Weekday::Mon)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc())
            .unwrap_or_default();
        (0..7 * 24)
            .map(|h| self.weight(monday + Duration::hours(h)))
            .collect()
    }
}

/// The event times of [`start`, `end`): an iterator, one time per event, in order.
#[derive(Debug)]
pub struct Timeline {
    rng: Rng,
    shape: Shape,
    /// Events of an ordinary day (weight 1 all day long).
    per_day: f64,
    /// The start of the next minute to fill.
    minute: DateTime<Utc>,
    end: DateTime<Utc>,
    pending: VecDeque<DateTime<Utc>>,
}

impl Timeline {
    /// The times of `per_day` events a day (on an ordinary day) in `period`, drawn from `seed`.
    pub fn new(seed: u64, shape: Shape, per_day: f64, period: Period) -> Timeline {
        Timeline {
            // Its own stream of numbers: the events drawn from the run's seed stay the same
            // sequence whatever the times.
            rng: Rng::seed_from_u64(seed ^ 0x7469_6d65_6c69_6e65),
            shape,
            per_day,
            minute: period.start,
            end: period.end,
            pending: VecDeque::new(),
        }
    }

    /// Fills `pending` with the next minute that has events; false at the end.
    fn fill(&mut self) -> bool {
        while self.pending.is_empty() {
            if self.minute >= self.end {
                return false;
            }
            let next = (self.minute + Duration::minutes(1)).min(self.end);
            let span = (next - self.minute).num_microseconds().unwrap_or(0);
            let expected =
                self.per_day / 1440.0 * self.shape.weight(self.minute) * span as f64 / 60e6;
            let mut count = expected.floor() as u64;
            if self
                .rng
                .random_bool((expected - expected.floor()).clamp(0.0, 1.0))
            {
                count += 1;
            }
            let mut offsets: Vec<i64> = (0..count)
                .map(|_| self.rng.random_range(0..span.max(1)))
                .collect();
            offsets.sort_unstable();
            let start = self.minute;
            self.pending.extend(
                offsets
                    .into_iter()
                    .map(|o| start + Duration::microseconds(o)),
            );
            self.minute = next;
        }
        true
    }
}

impl Iterator for Timeline {
    type Item = DateTime<Utc>;

    fn next(&mut self) -> Option<DateTime<Utc>> {
        if self.fill() {
            self.pending.pop_front()
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn monday() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 10, 5, 0, 0, 0)
            .single()
            .expect("a date")
    }

    fn period(end: DateTime<Utc>) -> Period {
        Period {
            start: monday(),
            end,
        }
    }

    #[test]
    fn an_ordinary_week_averages_to_one() {
        let week = Shape::default().week();
        let mean = week.iter().sum::<f64>() / week.len() as f64;
        assert!((mean - 1.0).abs() < 1e-9, "{mean}");
    }

    #[test]
    fn times_move_forward_and_stay_in_the_period() {
        let end = monday() + Duration::days(2);
        let times: Vec<_> = Timeline::new(1, Shape::default(), 20_000.0, period(end)).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        assert!(times.iter().all(|t| *t >= monday() && *t < end));
        // Two ordinary weekdays: 2 x 20,000 x (Monday and Tuesday's weight), within 2 %.
        let expected = 20_000.0 * (WEEKLY[0] + WEEKLY[1]) / (WEEKLY.iter().sum::<f64>() / 7.0);
        let ratio = times.len() as f64 / expected;
        assert!(
            (0.98..=1.02).contains(&ratio),
            "{} vs {expected}",
            times.len()
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_times() {
        let end = monday() + Duration::hours(6);
        let a: Vec<_> = Timeline::new(9, Shape::default(), 5_000.0, period(end)).collect();
        let b: Vec<_> = Timeline::new(9, Shape::default(), 5_000.0, period(end)).collect();
        let c: Vec<_> = Timeline::new(10, Shape::default(), 5_000.0, period(end)).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn a_promotion_day_doubles_its_traffic() {
        let day = monday().date_naive();
        let shape = Shape {
            promotions: vec![day],
        };
        let end = monday() + Duration::days(1);
        let promoted = Timeline::new(3, shape, 10_000.0, period(end)).count() as f64;
        let ordinary = Timeline::new(3, Shape::default(), 10_000.0, period(end)).count() as f64;
        let ratio = promoted / ordinary;
        assert!((1.9..=2.1).contains(&ratio), "{ratio}");
    }
}
