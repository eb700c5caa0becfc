//! Key verification after error correction: a 64-bit tag from a random
//! Toeplitz matrix (a universal family, collision probability 2^-64 for any
//! two different keys), so eps_cor = 2^-64.

use rand_core::Rng;

use super::amplify::toeplitz_hash;
use super::bits::PackedBits;
use super::error::QkdError;

/// Bits of the verification tag.
pub const TAG_BITS: usize = 64;

/// A fresh random seed for a key of `key_len` bits (see [`seed_len`]).
pub fn random_seed<R: Rng + ?Sized>(key_len: usize, rng: &mut R) -> PackedBits {
    PackedBits::random(seed_len(key_len), rng)
}

/// The tag of `key` under `seed`. Keys shorter than the tag are zero-padded.
pub fn tag(seed: &PackedBits, key: &PackedBits) -> Result<u64, QkdError> {
    let mut padded = key.clone();
    while padded.len() < TAG_BITS {
        padded.push(false);
    }
    if seed.len() != padded.len() + TAG_BITS - 1 {
        return Err(QkdError::Malformed(format!(
            "verification seed of {} bits for a {}-bit key",
            seed.len(),
            key.len()
        )));
    }
    let h = toeplitz_hash(seed, &padded, TAG_BITS)?;
    Ok(h.words().first().copied().unwrap_or(0))
}

/// A seed for `key_len` bits, accounting for the zero padding of short keys.
pub fn seed_len(key_len: usize) -> usize {
    key_len.max(TAG_BITS) + TAG_BITS - 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha8Rng;
    use rand_core::SeedableRng;

    #[test]
    fn equal_keys_agree_and_a_single_flip_is_caught() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for len in [1usize, 63, 64, 1000, 10_000] {
            let key = PackedBits::random(len, &mut rng);
            let seed = PackedBits::random(seed_len(len), &mut rng);
            let t = tag(&seed, &key).unwrap();
            assert_eq!(t, tag(&seed, &key).unwrap());
            let mut other = key.clone();
            other.flip(len / 2);
            assert_ne!(t, tag(&seed, &other).unwrap(), "len {len}");
        }
    }
}
