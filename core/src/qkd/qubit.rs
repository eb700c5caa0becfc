//! Qubits in packed batches: Alice prepares them, the channel acts on them,
//! Bob measures them. A batch is not `Clone` and measuring consumes it
//! (no-cloning, enforced by the type system).
//!
//! A qubit is a BB84 state: a bit value in a basis, Z (rectilinear, stored as 0)
//! or X (diagonal, stored as 1). The batch also carries the physical fate of
//! each pulse as the channel model decides it: the `clicks` mask says which
//! slots make one of Bob's detectors click. Alice prepares every slot with its
//! bit set; the channel clears lost pulses and adds dark counts.

use rand_core::Rng;
use serde::{Deserialize, Serialize};

use super::bits::PackedBits;
use super::error::QkdError;

/// The largest batch (one quantum-channel message): 2^20 qubits, 384 KiB encoded.
pub const MAX_BATCH_QUBITS: usize = 1 << 20;

/// A batch of prepared (or transmitted) qubits. Deliberately not `Clone`.
#[derive(Serialize, Deserialize)]
#[serde(try_from = "QubitBatchWire")]
pub struct QubitBatch {
    values: PackedBits,
    bases: PackedBits,
    clicks: PackedBits,
}

#[derive(Deserialize)]
struct QubitBatchWire {
    values: PackedBits,
    bases: PackedBits,
    clicks: PackedBits,
}

impl TryFrom<QubitBatchWire> for QubitBatch {
    type Error = QkdError;
    fn try_from(w: QubitBatchWire) -> Result<Self, QkdError> {
        let n = w.values.len();
        if w.bases.len() != n || w.clicks.len() != n {
            return Err(QkdError::Malformed(
                "qubit batch fields have different lengths".into(),
            ));
        }
        if n > MAX_BATCH_QUBITS {
            return Err(QkdError::Malformed(format!(
                "qubit batch of {n} exceeds the {MAX_BATCH_QUBITS}-qubit limit"
            )));
        }
        Ok(Self {
            values: w.values,
            bases: w.bases,
            clicks: w.clicks,
        })
    }
}

impl std::fmt::Debug for QubitBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QubitBatch({} qubits)", self.values.len())
    }
}

/// What Alice remembers of the qubits she sent: her bits and bases.
#[derive(Debug, Default)]
pub struct PreparedRecord {
    pub values: PackedBits,
    pub bases: PackedBits,
}

/// What Bob's detectors recorded for one batch.
#[derive(Debug)]
pub struct Measurement {
    /// Slots where a detector clicked.
    pub detected: PackedBits,
    /// Bob's measurement basis for every slot (chosen at random).
    pub bases: PackedBits,
    /// The outcome in Bob's basis (zero where nothing clicked).
    pub results: PackedBits,
}

impl QubitBatch {
    /// Alice prepares `len` qubits with uniformly random bits and bases.
    pub fn prepare<R: Rng + ?Sized>(
        len: usize,
        rng: &mut R,
    ) -> Result<(QubitBatch, PreparedRecord), QkdError> {
        if len == 0 || len > MAX_BATCH_QUBITS {
            return Err(QkdError::InvalidParameter(format!(
                "a batch holds 1 to {MAX_BATCH_QUBITS} qubits, not {len}"
            )));
        }
        let values = PackedBits::random(len, rng);
        let bases = PackedBits::random(len, rng);
        let mut clicks = PackedBits::zeros(len);
        for w in clicks.words_mut() {
            *w = u64::MAX;
        }
        clicks.fix_tail();
        let record = PreparedRecord {
            values: values.clone(),
            bases: bases.clone(),
        };
        Ok((
            QubitBatch {
                values,
                bases,
                clicks,
            },
            record,
        ))
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The words of (values, bases, clicks), for the channel model to act on.
    pub(crate) fn parts_mut(&mut self) -> (&mut [u64], &mut [u64], &mut [u64]) {
        (
            self.values.words_mut(),
            self.bases.words_mut(),
            self.clicks.words_mut(),
        )
    }

    pub(crate) fn fix_tails(&mut self) {
        self.values.fix_tail();
        self.bases.fix_tail();
        self.clicks.fix_tail();
    }

    /// Bob measures every slot in a uniformly random basis. Consumes the batch.
    ///
    /// Where the bases agree the outcome is the qubit's value; where they differ
    /// it is a fair coin; where no detector clicked it is zero and not detected.
    pub fn measure<R: Rng + ?Sized>(self, rng: &mut R) -> Measurement {
        let n = self.values.len();
        let bases = PackedBits::random(n, rng);
        let mut results = PackedBits::zeros(n);
        let out = results.words_mut();
        let (v, b, c) = (self.values.words(), self.bases.words(), self.clicks.words());
        for ((((o, &v), &b), &c), &mine) in out.iter_mut().zip(v).zip(b).zip(c).zip(bases.words()) {
            let differ = b ^ mine;
            let coin = if differ & c != 0 { rng.next_u64() } else { 0 };
            *o = ((v & !differ) | (coin & differ)) & c;
        }
        results.fix_tail();
        Measurement {
            detected: self.clicks,
            bases,
            results,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand_chacha::ChaCha8Rng;
    use rand_core::SeedableRng;

    proptest! {
        /// Packed measurement agrees qubit by qubit with the textbook rule.
        #[test]
        fn measurement_matches_per_qubit_rule(len in 1usize..400, seed in any::<u64>()) {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let (batch, rec) = QubitBatch::prepare(len, &mut rng).unwrap();
            let m = batch.measure(&mut rng);
            prop_assert_eq!(m.detected.count_ones(), len as u64);
            for i in 0..len {
                if rec.bases.get(i) == m.bases.get(i) {
                    prop_assert_eq!(rec.values.get(i), m.results.get(i));
                }
            }
        }

        /// A batch survives the canonical codec unchanged.
        #[test]
        fn batch_round_trips_through_codec(len in 1usize..300, seed in any::<u64>()) {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let (batch, rec) = QubitBatch::prepare(len, &mut rng).unwrap();
            let bytes = crate::codec::encode(&batch).unwrap();
            let back: QubitBatch = crate::codec::decode(&bytes, 1 << 20).unwrap();
            prop_assert_eq!(back.values, rec.values);
            prop_assert_eq!(back.bases, rec.bases);
        }
    }

    #[test]
    fn zero_or_oversized_batches_are_refused() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert!(QubitBatch::prepare(0, &mut rng).is_err());
        assert!(QubitBatch::prepare(MAX_BATCH_QUBITS + 1, &mut rng).is_err());
    }
}
