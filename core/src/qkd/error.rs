//! The QKD engine's one error type: bad parameters, malformed or out-of-order
//! messages, and misuse of the state machines.

/// Why a QKD operation could not proceed. (An *abort* because of a high QBER
/// or a failed verification is not an error: it is an outcome, see
/// [`super::AbortReason`].)
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QkdError {
    /// A parameter is out of range; the message names it and the valid range.
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// The block is too small for the finite-key bound to leave any key.
    #[error(
        "{qubits} qubits are too few for the finite-key bound to leave any key even with no errors; use at least {min_qubits}"
    )]
    BlockTooSmall { qubits: u64, min_qubits: u64 },
    /// A message or value from the peer is structurally invalid.
    #[error("malformed input: {0}")]
    Malformed(String),
    /// A message arrived that this party does not expect in its current phase.
    #[error("unexpected message {message} in phase {phase}")]
    UnexpectedMessage {
        message: &'static str,
        phase: &'static str,
    },
}
