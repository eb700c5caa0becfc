//! BB84 as two state machines, Alice and Bob, that exchange typed messages.
//!
//! The same machines run in the in-memory simulator and, in the node, over
//! libp2p: a party is fed each message from its peer through `handle` and
//! returns the messages to send back. The quantum channel is itself a message
//! stream ([`QkdMessage::Qubits`]) from Alice to Bob, on which the carrier
//! applies the channel model (and Eve, in a simulation) in transit.
//!
//! Flow (A = Alice, B = Bob):
//! A->B `Start`, `Qubits`... ; B->A `SiftAnnounce` (detections and bases);
//! A->B `SiftReply` (matching bases, sample seed, Alice's sample bits);
//! B->A `Estimate` (sample error count, first Cascade query) or `Abort`;
//! A<->B `CascadeReply` / `CascadeQuery` ... B->A `CascadeDone`;
//! A->B `Verify` (tag seed, tag) or `Abort`; B->A `Verified` or `Abort`;
//! A->B `Amplify` (Toeplitz seed, final length). Both hold the key.

use serde::{Deserialize, Serialize};

use super::bits::PackedBits;
use super::cascade::{CascadeConfig, ParityRange};
use super::channel::Source;
use super::error::QkdError;
use super::estimate::qber_upper_bound;
use super::finite_key::{
    SecurityParams, expected_key_length, multiphoton_share_finite, secure_key_length,
    secure_key_length_gllp,
};
use super::qubit::QubitBatch;
use super::report::{AbortReason, Phase, QkdReport};
use super::verify;

/// The most qubits one session may send (2^26: 8 MiB per announcement mask).
pub const MAX_QUBITS: u64 = 1 << 26;

/// What Alice proposes and Bob checks: the session's protocol parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProtocolParams {
    /// Qubits Alice sends.
    pub qubits: u64,
    /// Fraction of the sifted key compared in the open for estimation.
    pub sample_fraction: f64,
    /// Abort when the observed QBER exceeds this (0.11 by default); the
    /// QBER's upper bound sets the key length.
    pub max_qber: f64,
    pub security: SecurityParams,
    pub cascade: CascadeConfig,
    /// Alice's photon source: with weak coherent pulses (and no decoy
    /// states) the key length pays for multi-photon pulses (GLLP).
    pub source: Source,
}

impl Default for ProtocolParams {
    fn default() -> Self {
        Self {
            qubits: 1_000_000,
            sample_fraction: 0.1,
            max_qber: 0.11,
            security: SecurityParams::default(),
            cascade: CascadeConfig::default(),
            source: Source::SinglePhoton,
        }
    }
}

impl ProtocolParams {
    /// Checks every parameter, and that the block can yield a key at all.
    pub fn validate(&self) -> Result<(), QkdError> {
        if self.qubits == 0 || self.qubits > MAX_QUBITS {
            return Err(QkdError::InvalidParameter(format!(
                "qubits must be 1 to {MAX_QUBITS}, not {}",
                self.qubits
            )));
        }
        if !(self.sample_fraction > 0.0 && self.sample_fraction <= 0.5) {
            return Err(QkdError::InvalidParameter(format!(
                "sample_fraction must be in (0, 0.5], not {}",
                self.sample_fraction
            )));
        }
        if !(self.max_qber > 0.0 && self.max_qber < 0.5) {
            return Err(QkdError::InvalidParameter(format!(
                "max_qber must be in (0, 0.5), not {}",
                self.max_qber
            )));
        }
        self.security.validate()?;
        self.cascade.validate()?;
        let best =
            |q: u64| expected_key_length(q / 2, self.sample_fraction, 0.0, 1.0, &self.security);
        if best(self.qubits) == 0 {
            let mut min = self.qubits.max(1);
            while best(min) == 0 && min < MAX_QUBITS {
                min *= 2;
            }
            let (mut lo, mut hi) = (min / 2, min);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if best(mid) == 0 { lo = mid } else { hi = mid }
            }
            return Err(QkdError::BlockTooSmall {
                qubits: self.qubits,
                min_qubits: hi,
            });
        }
        Ok(())
    }

    /// Sample size for a sifted key of `sifted` bits.
    pub fn sample_size(&self, sifted: u64) -> u64 {
        ((sifted as f64 * self.sample_fraction).ceil() as u64).min(sifted)
    }
}

/// A message between Alice and Bob (the quantum channel included).
#[derive(Debug, Serialize, Deserialize)]
pub enum QkdMessage {
    /// A->B: the session's parameters.
    Start { params: ProtocolParams },
    /// A->B, quantum channel: the next batch of qubits.
    Qubits { batch: QubitBatch },
    /// B->A: which slots clicked, and Bob's bases on those slots.
    SiftAnnounce {
        detected: PackedBits,
        bases: PackedBits,
    },
    /// A->B: one bit per detected slot, set where the bases match; the public
    /// seed choosing the sample; Alice's bits at the sampled positions.
    SiftReply {
        matches: PackedBits,
        sample_seed: [u8; 32],
        alice_sample: PackedBits,
    },
    /// B->A: errors found in the sample, and Cascade's first query.
    Estimate {
        sample_errors: u64,
        query: Vec<ParityRange>,
    },
    /// B->A: more parities, please.
    CascadeQuery { ranges: Vec<ParityRange> },
    /// A->B: Alice's parities, in query order.
    CascadeReply { parities: PackedBits },
    /// B->A: Bob has finished correcting.
    CascadeDone,
    /// A->B: the verification seed and Alice's tag.
    Verify { seed: PackedBits, tag: u64 },
    /// B->A: the tags match.
    Verified,
    /// A->B: the Toeplitz seed and the final key length.
    Amplify { seed: PackedBits, key_bits: u64 },
    /// Either way: the session is over without a key.
    Abort { reason: AbortReason },
}

impl QkdMessage {
    pub fn name(&self) -> &'static str {
        match self {
            QkdMessage::Start { .. } => "Start",
            QkdMessage::Qubits { .. } => "Qubits",
            QkdMessage::SiftAnnounce { .. } => "SiftAnnounce",
            QkdMessage::SiftReply { .. } => "SiftReply",
            QkdMessage::Estimate { .. } => "Estimate",
            QkdMessage::CascadeQuery { .. } => "CascadeQuery",
            QkdMessage::CascadeReply { .. } => "CascadeReply",
            QkdMessage::CascadeDone => "CascadeDone",
            QkdMessage::Verify { .. } => "Verify",
            QkdMessage::Verified => "Verified",
            QkdMessage::Amplify { .. } => "Amplify",
            QkdMessage::Abort { .. } => "Abort",
        }
    }
}

pub(super) fn unexpected(msg: &QkdMessage, phase: Phase) -> QkdError {
    QkdError::UnexpectedMessage {
        message: msg.name(),
        phase: phase.as_str(),
    }
}

/// Numbers both parties derive after estimation.
#[derive(Debug, Clone, Copy)]
pub(super) struct Estimated {
    pub(super) key_len: u64,
    pub(super) qber_upper: f64,
}

pub(super) fn finish_estimate(
    report: &mut QkdReport,
    params: &ProtocolParams,
    errors: u64,
    key_len: u64,
) -> Estimated {
    let k = report.sample_size;
    report.sample_errors = errors;
    report.qber = if k > 0 { errors as f64 / k as f64 } else { 0.0 };
    let qu = qber_upper_bound(errors, k, key_len, params.security.eps_pe);
    report.qber_upper_bound = qu;
    report.key_bits_before_amplification = key_len;
    Estimated {
        key_len,
        qber_upper: qu,
    }
}

pub(super) fn final_length(
    report: &mut QkdReport,
    params: &ProtocolParams,
    est: Estimated,
    parity_bits: u64,
) -> u64 {
    report.cascade_parity_bits = parity_bits;
    report.leaked_bits = parity_bits + verify::TAG_BITS as u64;
    secure_key_length_gllp(
        est.key_len,
        est.qber_upper,
        report.leaked_bits,
        &params.security,
        multiphoton(params, report),
    )
}

/// The share of detections that multi-photon pulses may explain (GLLP), from
/// the pulses sent and detected as both parties count them, with the
/// multi-photon count bounded at eps_pe.
pub(super) fn multiphoton(params: &ProtocolParams, report: &QkdReport) -> f64 {
    multiphoton_share_finite(
        params.source,
        report.qubits_sent,
        report.detected,
        params.security.eps_pe,
    )
}

/// Early abort when even an error-free key would be consumed by the bound.
pub(super) fn key_impossible(params: &ProtocolParams, key_len: u64, sample: u64) -> bool {
    let qu = qber_upper_bound(0, sample, key_len, params.security.eps_pe);
    secure_key_length(key_len, qu, verify::TAG_BITS as u64, &params.security) == 0
}
