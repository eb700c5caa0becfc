//! Where the consensus machine is, as the driver last left it: published on
//! a `watch` after every input, read by `status` to explain a stall (which
//! round, which step, who has not been heard from, syncing or not).

use qward_core::consensus::Step;
use qward_core::identity::AccountId;

/// One snapshot of the driver's consensus machine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsensusProgress {
    pub height: u64,
    pub round: u32,
    /// `None` until the driver has started its first height.
    pub step: Option<Step>,
    pub decided: bool,
    /// When each validator's newest consensus message arrived (unix ms).
    pub last_heard: Vec<(AccountId, u64)>,
    /// How long a validator may stay silent in this round before `status`
    /// names it as missing: the round's propose timeout (the longest a live
    /// validator goes without a message) plus 1 s.
    pub quiet_after_ms: u64,
    /// Silence counts from here at the earliest (unix ms): the driver's
    /// start, or the end of its last idle wait (nobody speaks while the
    /// chain rests, so no one is missing for that).
    pub counting_since_ms: u64,
    /// The height the network is at when this node is behind.
    pub sync_target: Option<u64>,
    /// While the next height waits for a transaction: when its heartbeat
    /// (an empty block) is due, unix ms.
    pub idle_until_ms: Option<u64>,
    /// When the current height started, unix ms.
    pub height_started_ms: u64,
}

impl ConsensusProgress {
    /// Whether `validator` has said nothing for longer than `quiet_after_ms`
    /// at `now_ms`, counting from `counting_since_ms` at the earliest.
    pub fn is_silent(&self, validator: &AccountId, now_ms: u64) -> bool {
        if self.idle_until_ms.is_some() {
            return false;
        }
        let since = self
            .last_heard
            .iter()
            .find(|(who, _)| who == validator)
            .map_or(self.counting_since_ms, |(_, at)| {
                (*at).max(self.counting_since_ms)
            });
        now_ms.saturating_sub(since) > self.quiet_after_ms
    }

    pub fn step_name(&self) -> &'static str {
        if self.idle_until_ms.is_some() {
            return "idle";
        }
        match (self.decided, self.step) {
            (true, _) => "decided",
            (_, Some(Step::Propose) | None) => "propose",
            (_, Some(Step::Prevote)) => "prevote",
            (_, Some(Step::Precommit)) => "precommit",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_validator_is_silent_within_five_seconds_and_a_live_one_is_not() {
        let (live, stopped, never) = (AccountId([1; 32]), AccountId([2; 32]), AccountId([3; 32]));
        let t0 = 1_000_000;
        // Round 0 with the default 3 s propose timeout: silent after 4 s.
        let p = ConsensusProgress {
            last_heard: vec![(live, t0 + 3_900), (stopped, t0)],
            quiet_after_ms: 3_000 + 1_000,
            counting_since_ms: t0 - 60_000,
            ..ConsensusProgress::default()
        };
        let at = t0 + 4_500;
        assert!(p.is_silent(&stopped, at), "stopped 4.5 s ago");
        assert!(!p.is_silent(&live, at));
        assert!(p.is_silent(&never, at), "never heard since the start");
        assert!(
            !p.is_silent(&stopped, t0 + 3_000),
            "3 s is a live validator's pause"
        );
        // Nobody is silent while the chain rests, nor just after: silence
        // counts from the end of the idle wait.
        let idle = ConsensusProgress {
            idle_until_ms: Some(at + 5_000),
            ..p.clone()
        };
        assert!(!idle.is_silent(&stopped, at));
        let woke = ConsensusProgress {
            counting_since_ms: at - 100,
            ..p
        };
        assert!(!woke.is_silent(&stopped, at));
        assert!(woke.is_silent(&stopped, at + 4_000));
    }
}
