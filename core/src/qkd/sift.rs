//! Sifting: Bob announces which slots clicked and his bases there; Alice
//! answers which bases match. Only bases and detection flags cross the
//! classical channel, never a bit value.

use super::bits::PackedBits;
use super::error::QkdError;

/// Alice's answer to Bob's announcement: one bit per detected slot, one where
/// Alice's basis equals Bob's.
pub fn matching_bases(
    alice_bases: &PackedBits,
    detected: &PackedBits,
    bob_bases_on_detected: &PackedBits,
) -> Result<PackedBits, QkdError> {
    let alice_on_detected = alice_bases.select(detected)?;
    if alice_on_detected.len() != bob_bases_on_detected.len() {
        return Err(QkdError::Malformed(format!(
            "Bob announced {} bases for {} detected slots",
            bob_bases_on_detected.len(),
            alice_on_detected.len()
        )));
    }
    let mut out = PackedBits::zeros(alice_on_detected.len());
    for ((o, a), b) in out
        .words_mut()
        .iter_mut()
        .zip(alice_on_detected.words())
        .zip(bob_bases_on_detected.words())
    {
        *o = !(a ^ b);
    }
    out.fix_tail();
    Ok(out)
}

/// A party's sifted key: its bits at detected slots whose bases matched.
pub fn sifted_key(
    bits: &PackedBits,
    detected: &PackedBits,
    matches: &PackedBits,
) -> Result<PackedBits, QkdError> {
    bits.select(detected)?.select(matches)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qkd::qubit::QubitBatch;
    use proptest::prelude::*;
    use rand_chacha::ChaCha8Rng;
    use rand_core::SeedableRng;

    proptest! {
        /// Packed sifting equals the per-qubit definition, and both parties'
        /// sifted keys agree on a noiseless channel.
        #[test]
        fn packed_sifting_matches_naive(len in 1usize..500, seed in any::<u64>(), lose in any::<u64>()) {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let (batch, rec) = QubitBatch::prepare(len, &mut rng).unwrap();
            let mut m = batch.measure(&mut rng);
            // Knock out some detections to exercise the detected mask.
            let lost = PackedBits::from_bools(&(0..len).map(|i| (lose >> (i % 64)) & 1 == 1).collect::<Vec<_>>());
            for (d, l) in m.detected.words_mut().iter_mut().zip(lost.words()) { *d &= !l; }
            let bob_bases = m.bases.select(&m.detected).unwrap();
            let matches = matching_bases(&rec.bases, &m.detected, &bob_bases).unwrap();
            let a = sifted_key(&rec.values, &m.detected, &matches).unwrap();
            let b = sifted_key(&m.results, &m.detected, &matches).unwrap();
            let naive: Vec<bool> = (0..len)
                .filter(|&i| m.detected.get(i) == Some(true) && rec.bases.get(i) == m.bases.get(i))
                .map(|i| rec.values.get(i) == Some(true))
                .collect();
            prop_assert_eq!(a.to_bools(), naive);
            prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn wrong_announcement_length_is_an_error() {
        let bases = PackedBits::from_bools(&[true, false, true]);
        let det = PackedBits::from_bools(&[true, true, false]);
        let bob = PackedBits::from_bools(&[true]);
        assert!(matching_bases(&bases, &det, &bob).is_err());
    }
}
