//! The QKD engine: BB84 with a physical channel model, an intercept-resend
//! eavesdropper, and full post-processing (sifting, estimation, Cascade,
//! verification, Toeplitz privacy amplification, finite-key length).
//!
//! Sans-IO: randomness comes in as an RNG argument, nothing touches the clock,
//! the network or the disk. The simulation gives no physical security: it
//! models the physics to test the protocol and the post-processing.

pub mod alice;
pub mod amplify;
pub mod bits;
pub mod bob;
pub mod cascade;
pub mod channel;
pub mod decoy;
pub mod error;
pub mod estimate;
pub mod eve;
pub mod finite_key;
pub mod gf2;
pub mod key;
pub mod paper;
pub mod prng;
pub mod protocol;
pub mod qubit;
pub mod report;
pub mod sift;
pub mod simulate;
pub mod sweep;
pub mod verify;

pub use alice::Alice;
pub use bits::PackedBits;
pub use bob::Bob;
pub use cascade::{BlockSchedule, CascadeConfig};
pub use channel::{Channel, ChannelParams, Source};
pub use error::QkdError;
pub use eve::InterceptResend;
pub use finite_key::SecurityParams;
pub use key::SecretKey;
pub use protocol::{ProtocolParams, QkdMessage};
pub use qubit::QubitBatch;
pub use report::{AbortReason, Phase, QkdOutcome, QkdReport};
pub use simulate::{SimulationParams, SimulationRun, simulate};

#[cfg(test)]
mod tests;
