//! Keeps the configured rate: an absolute schedule (event n is due at n / rate seconds after
//! the start), served in batches of whatever is due, so the rate holds from 1 to tens of
//! thousands of events per second without a timer per event and without drifting.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::Rate;

/// The schedule of a run.
#[derive(Debug)]
pub struct Pacer {
    rate: Rate,
    start: Instant,
    released: u64,
}

/// The most events released at once under `--rate max`, so the loop still checks for
/// shutdown and prints statistics.
const MAX_BATCH: u64 = 10_000;

impl Pacer {
    /// Starts the schedule now.
    pub fn new(rate: Rate) -> Pacer {
        Pacer {
            rate,
            start: Instant::now(),
            released: 0,
        }
    }

    /// Waits until at least one event is due and returns how many are due now.
    pub async fn due(&mut self) -> u64 {
        let Rate::PerSecond(rate) = self.rate else {
            self.released += MAX_BATCH;
            return MAX_BATCH;
        };
        // Integer nanoseconds: at the instant slept until, event `released + 1` is due exactly
        // (floating point could land one short and spin).
        let rate = u128::from(rate);
        loop {
            let due = (self.start.elapsed().as_nanos() * rate / NANOS) as u64;
            if due > self.released {
                let batch = due - self.released;
                self.released = due;
                return batch;
            }
            let next = (u128::from(self.released + 1) * NANOS).div_ceil(rate);
            let next = Duration::from_nanos(u64::try_from(next).unwrap_or(u64::MAX));
            tokio::time::sleep_until(self.start + next).await;
        }
    }
}

const NANOS: u128 = 1_000_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn releases_events_on_an_absolute_schedule() {
        let mut pacer = Pacer::new(Rate::PerSecond(1000));
        let mut released = 0;
        while released < 5000 {
            released += pacer.due().await;
        }
        // With the clock paused, time only moves when the pacer sleeps: 5000 events at
        // 1000/s end at 5 s, give or take the last millisecond.
        let elapsed = pacer.start.elapsed().as_secs_f64();
        assert!((4.99..=5.01).contains(&elapsed), "{elapsed}");
        assert_eq!(released, 5000);
    }

    #[tokio::test(start_paused = true)]
    async fn slow_rates_release_one_event_at_a_time() {
        let mut pacer = Pacer::new(Rate::PerSecond(2));
        assert_eq!(pacer.due().await, 1);
        assert_eq!(pacer.due().await, 1);
        let elapsed = pacer.start.elapsed().as_secs_f64();
        assert!((0.99..=1.01).contains(&elapsed), "{elapsed}");
    }
}
