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
    /// Validators heard from in this round.
    pub heard: Vec<AccountId>,
    /// The height the network is at when this node is behind.
    pub sync_target: Option<u64>,
}

impl ConsensusProgress {
    pub fn step_name(&self) -> &'static str {
        match (self.decided, self.step) {
            (true, _) => "decided",
            (_, Some(Step::Propose) | None) => "propose",
            (_, Some(Step::Prevote)) => "prevote",
            (_, Some(Step::Precommit)) => "precommit",
        }
    }
}
