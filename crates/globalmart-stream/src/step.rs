//! The lanes in step by event time: a lane behind its partitions does not read further ahead in
//! event time than the slowest other lane behind its own, but waits for it to come close.
//! Left alone, a backlog's cheap views ran ahead of its sales and cart events, so the dashboards
//! showed a minute's views long before its orders, and the backlog ended on one lane alone with
//! the machine's work on the dearest events (docs/ARCHITECTURE.md, "The stream's lanes").
//! A lane keeping up never waits and never holds another back: live traffic is not delayed.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How far in event time a lane behind may run ahead of the slowest other one before it waits:
/// well within what one cut of a backlog spans (20,000 messages of the course's traffic are about
/// an hour of its events), so the lanes reach each minute together, a cut apart at most.
const SLACK: TimeDelta = TimeDelta::minutes(1);

/// The longest a lane waits for another's cut: a lane whose saves are being retried (the
/// database away) holds the others back no longer than this per cut.
const MOST_WAIT: Duration = Duration::from_secs(5);

/// Where each lane's last cut reached: the earliest, over the cut's partitions, of each one's
/// latest event time; `None` when the lane keeps up (its cut was not full) or its cut held no
/// event.
type Reach = Option<DateTime<Utc>>;

/// One lane's view of every lane's reach.
#[derive(Debug, Clone)]
pub struct InStep {
    lanes: Arc<watch::Sender<Vec<Reach>>>,
    me: usize,
}

impl InStep {
    /// One handle per lane, in the lanes' order.
    pub fn lanes(count: usize) -> Vec<InStep> {
        let lanes = Arc::new(watch::Sender::new(vec![None; count]));
        (0..count)
            .map(|me| InStep {
                lanes: Arc::clone(&lanes),
                me,
            })
            .collect()
    }

    /// Records where this lane's cut reached when the lane is behind, `None` when it keeps up.
    pub fn cut(&self, reach: Reach) {
        self.lanes.send_modify(|lanes| lanes[self.me] = reach);
    }

    /// Waits while this lane is more than [`SLACK`] ahead of the slowest other lane behind, at
    /// most [`MOST_WAIT`] or until shutdown; how long it waited.
    pub async fn wait_for_slowest(&self, shutdown: &CancellationToken) -> Duration {
        let mut watched = self.lanes.subscribe();
        if !ahead(&watched.borrow_and_update(), self.me) {
            return Duration::ZERO;
        }
        let started = Instant::now();
        let caught_up = watched.wait_for(|lanes| !ahead(lanes, self.me));
        tokio::select! {
            _ = tokio::time::timeout(MOST_WAIT, caught_up) => {}
            () = shutdown.cancelled() => {}
        }
        started.elapsed()
    }
}

/// Whether lane `me`, behind, reached more than [`SLACK`] past the slowest other lane behind.
fn ahead(lanes: &[Reach], me: usize) -> bool {
    let Some(mine) = lanes.get(me).copied().flatten() else {
        return false;
    };
    (lanes.iter().enumerate())
        .filter(|(lane, _)| *lane != me)
        .filter_map(|(_, reach)| *reach)
        .min()
        .is_some_and(|slowest| slowest + SLACK < mine)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reach(minute: Option<i64>) -> Reach {
        minute.map(|m| DateTime::<Utc>::UNIX_EPOCH + TimeDelta::minutes(m))
    }

    #[test]
    fn a_lane_ahead_of_the_slowest_behind_waits() {
        let lanes = [reach(Some(90)), reach(Some(30)), reach(Some(60))];
        assert!(ahead(&lanes, 0));
        assert!(ahead(&lanes, 2));
        // The slowest waits for nobody, and a lane within the slack neither.
        assert!(!ahead(&lanes, 1));
        assert!(!ahead(&[reach(Some(31)), reach(Some(30))], 0));
    }

    #[test]
    fn a_lane_keeping_up_neither_waits_nor_holds_back() {
        let lanes = [reach(None), reach(Some(30))];
        assert!(!ahead(&lanes, 0));
        assert!(!ahead(&lanes, 1));
    }

    #[tokio::test]
    async fn the_wait_ends_once_the_slowest_lane_is_close() {
        let lanes = InStep::lanes(2);
        let (ahead, slow) = (lanes[0].clone(), lanes[1].clone());
        let start = DateTime::<Utc>::UNIX_EPOCH;
        slow.cut(Some(start));
        ahead.cut(Some(start + TimeDelta::hours(1)));
        let shutdown = CancellationToken::new();
        let waiting = tokio::spawn(async move { ahead.wait_for_slowest(&shutdown).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "the lane ahead did not wait");
        // A cut that is still far behind does not end the wait; one within the slack does.
        slow.cut(Some(start + TimeDelta::minutes(20)));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiting.is_finished(),
            "the wait ended with the slowest lane still behind"
        );
        slow.cut(Some(start + TimeDelta::minutes(59)));
        let waited = tokio::time::timeout(Duration::from_secs(1), waiting).await;
        assert!(
            matches!(waited, Ok(Ok(w)) if w >= Duration::from_millis(100) && w < MOST_WAIT),
            "{waited:?}"
        );
    }
}
