//! The consensus driver's timeouts: one queue the driver owns, waited on as
//! one deadline (the earliest), instead of a sleeping task per timeout that
//! nothing cancels. Timeouts of rounds the machine has left are dropped as
//! soon as it moves on, so the queue holds a few entries at most.

use std::collections::BTreeMap;

use qward_core::consensus::Timeout;
use tokio::time::Instant;

#[derive(Debug, Default)]
pub struct ConsensusTimers {
    /// By deadline, then insertion order.
    queue: BTreeMap<(Instant, u64), Timeout>,
    seq: u64,
}

impl ConsensusTimers {
    /// Schedules `timeout` at `at`, first dropping every timeout of a
    /// (height, round) before `current` (the machine's), which it ignores.
    pub fn schedule(&mut self, at: Instant, timeout: Timeout, current: (u64, u32)) {
        self.queue.retain(|_, t| (t.height, t.round) >= current);
        self.seq += 1;
        self.queue.insert((at, self.seq), timeout);
    }

    /// The earliest deadline, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.queue.keys().next().map(|(at, _)| *at)
    }

    /// Removes and returns the timeouts due at `now`, earliest first.
    pub fn take_due(&mut self, now: Instant) -> Vec<Timeout> {
        let later = self.queue.split_off(&(now, u64::MAX));
        std::mem::replace(&mut self.queue, later)
            .into_values()
            .collect()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qward_core::consensus::TimeoutStep;
    use std::time::Duration;

    fn t(height: u64, round: u32, step: TimeoutStep) -> Timeout {
        Timeout {
            height,
            round,
            step,
        }
    }

    #[test]
    fn one_deadline_earliest_first_and_left_rounds_are_dropped() {
        let start = Instant::now();
        let ms = |n| start + Duration::from_millis(n);
        let mut timers = ConsensusTimers::default();
        assert_eq!(timers.next_deadline(), None);
        timers.schedule(ms(300), t(5, 0, TimeoutStep::Propose), (5, 0));
        timers.schedule(ms(100), t(5, 0, TimeoutStep::Prevote), (5, 0));
        timers.schedule(ms(100), t(5, 0, TimeoutStep::Precommit), (5, 0));
        assert_eq!(timers.next_deadline(), Some(ms(100)));
        // Due at 100 ms: the two scheduled for then, in the order scheduled.
        let due = timers.take_due(ms(100));
        assert_eq!(
            due,
            vec![
                t(5, 0, TimeoutStep::Prevote),
                t(5, 0, TimeoutStep::Precommit)
            ]
        );
        assert_eq!(timers.next_deadline(), Some(ms(300)));
        // The machine moved to round 1: round 0's propose timeout is dropped
        // when the next one is scheduled, not left to fire.
        timers.schedule(ms(900), t(5, 1, TimeoutStep::Propose), (5, 1));
        assert_eq!(timers.len(), 1);
        assert_eq!(timers.next_deadline(), Some(ms(900)));
        // And a new height drops the old height's.
        timers.schedule(ms(950), t(6, 0, TimeoutStep::Propose), (6, 0));
        assert_eq!(
            timers.take_due(ms(10_000)),
            vec![t(6, 0, TimeoutStep::Propose)]
        );
        assert!(timers.is_empty());
    }
}
