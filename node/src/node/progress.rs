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
    /// validator goes without a message) plus 2 s.
    pub quiet_after_ms: u64,
    /// When this driver started (unix ms): a validator never heard from is
    /// missing once `quiet_after_ms` has passed since.
    pub driver_started_ms: u64,
    /// The height the network is at when this node is behind.
    pub sync_target: Option<u64>,
    /// While the next height waits for a transaction: when its heartbeat
    /// (an empty block) is due, unix ms.
    pub idle_until_ms: Option<u64>,
    /// When the current height started, unix ms.
    pub height_started_ms: u64,
}

impl ConsensusProgress {
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
