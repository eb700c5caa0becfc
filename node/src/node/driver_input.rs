//! What the consensus driver reacts to: consensus messages (checked by the
//! gossip validator), its own timeouts, the start of the next height, and
//! blocks fetched by sync.

use qward_core::chain::CommittedBlock;
use qward_core::consensus::{ConsensusMessage, Timeout};
use tokio::sync::oneshot;

/// What the driver reacts to.
#[derive(Debug)]
pub enum DriverInput {
    /// A consensus message from the network, already signature-checked.
    Gossip(Box<ConsensusMessage>),
    /// A timeout the machine scheduled, now due.
    Timeout(Timeout),
    /// Time to start consensus on this height (after the block interval).
    StartNext(u64),
    /// Blocks fetched by sync, to verify and import in order. Answers how many were imported.
    Synced {
        blocks: Vec<CommittedBlock>,
        reply: oneshot::Sender<Result<u64, String>>,
    },
}
