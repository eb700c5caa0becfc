//! What a QKD session reports: its phase, the per-run figures, why it aborted,
//! and the outcome (report plus key, if any).

use serde::{Deserialize, Serialize};

use super::key::SecretKey;

/// Where a party is in the protocol (for progress displays).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    Preparing,
    Sifting,
    Estimating,
    Correcting,
    Verifying,
    Amplifying,
    Done,
    Aborted,
}

impl Phase {
    pub const fn as_str(self) -> &'static str {
        match self {
            Phase::Preparing => "preparing",
            Phase::Sifting => "sifting",
            Phase::Estimating => "estimating",
            Phase::Correcting => "correcting",
            Phase::Verifying => "verifying",
            Phase::Amplifying => "amplifying",
            Phase::Done => "done",
            Phase::Aborted => "aborted",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a session ended without a key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AbortReason {
    /// The observed QBER exceeds the tolerance: an eavesdropper (or a channel
    /// too noisy to tell from one) is present. (The upper bound is reported;
    /// it sets the key length, not the abort.)
    QberTooHigh {
        qber: f64,
        qber_upper_bound: f64,
        threshold: f64,
    },
    /// Too few sifted bits to sample and keep a key.
    TooFewSiftedBits { sifted: u64 },
    /// The finite-key bound leaves no secret bits.
    NoSecretKey { key_bits_before_amplification: u64 },
    /// The corrected keys differ (verification tags do not match).
    VerificationFailed,
    /// The peer sent something invalid or out of order.
    ProtocolViolation { detail: String },
}

impl std::fmt::Display for AbortReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AbortReason::QberTooHigh {
                qber,
                qber_upper_bound,
                threshold,
            } => write!(
                f,
                "observed QBER {:.2}% exceeds the {:.2}% tolerance (upper bound {:.2}%): eavesdropper detected",
                qber * 100.0,
                threshold * 100.0,
                qber_upper_bound * 100.0
            ),
            AbortReason::TooFewSiftedBits { sifted } => {
                write!(
                    f,
                    "only {sifted} sifted bits: too few to estimate and keep a key"
                )
            }
            AbortReason::NoSecretKey {
                key_bits_before_amplification,
            } => write!(
                f,
                "the finite-key bound leaves no secret key from {key_bits_before_amplification} bits"
            ),
            AbortReason::VerificationFailed => {
                f.write_str("verification tags differ: error correction left errors")
            }
            AbortReason::ProtocolViolation { detail } => write!(f, "protocol violation: {detail}"),
        }
    }
}

/// The figures of one session, as one party saw them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QkdReport {
    pub qubits_sent: u64,
    pub detected: u64,
    pub sifted: u64,
    pub sample_size: u64,
    pub sample_errors: u64,
    /// Error rate observed in the sample.
    pub qber: f64,
    /// Serfling upper bound on the QBER of the kept key.
    pub qber_upper_bound: f64,
    /// Sifted bits kept after the sample is discarded.
    pub key_bits_before_amplification: u64,
    /// Parity bits disclosed by Cascade.
    pub cascade_parity_bits: u64,
    /// Every bit disclosed about the key: Cascade parities plus the verification tag.
    pub leaked_bits: u64,
    /// Bits Bob corrected (zero in Alice's report).
    pub corrected_bits: u64,
    pub final_key_bits: u64,
    pub eve_detected: bool,
    pub aborted: bool,
    pub abort_reason: Option<AbortReason>,
}

/// How a session ended: the report, and the key unless it aborted.
#[derive(Debug)]
pub struct QkdOutcome {
    pub report: QkdReport,
    pub key: Option<SecretKey>,
}
