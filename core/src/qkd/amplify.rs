//! Privacy amplification with Toeplitz hashing, computed as a GF(2)
//! polynomial product (Karatsuba), plus the naive reference it is tested against.
//!
//! The m x n Toeplitz matrix is T[i][j] = s[i - j + n - 1] for a seed s of
//! n + m - 1 bits, and the hash of x is T x. Since (s * x)_k = sum_j s[k - j] x_j,
//! output bit i is coefficient n - 1 + i of the product s * x.

use super::bits::PackedBits;
use super::error::QkdError;
use super::gf2;

fn check(seed: &PackedBits, input: &PackedBits, out_len: usize) -> Result<(), QkdError> {
    if input.is_empty() || out_len == 0 || out_len > input.len() {
        return Err(QkdError::InvalidParameter(format!(
            "Toeplitz hashing maps n > 0 bits to 1..=n bits, not {} to {out_len}",
            input.len()
        )));
    }
    if seed.len() != input.len() + out_len - 1 {
        return Err(QkdError::Malformed(format!(
            "Toeplitz seed of {} bits for {} input and {out_len} output bits (need {})",
            seed.len(),
            input.len(),
            input.len() + out_len - 1
        )));
    }
    Ok(())
}

/// Hashes `input` (n bits) to `out_len` bits with the Toeplitz matrix of `seed`
/// (n + out_len - 1 bits).
pub fn toeplitz_hash(
    seed: &PackedBits,
    input: &PackedBits,
    out_len: usize,
) -> Result<PackedBits, QkdError> {
    check(seed, input, out_len)?;
    let product = gf2::mul(seed.words(), input.words());
    let start = input.len() - 1;
    let mut out = PackedBits::zeros(out_len);
    let shift = start % 64;
    let base = start / 64;
    for (k, w) in out.words_mut().iter_mut().enumerate() {
        let lo = product.get(base + k).copied().unwrap_or(0);
        let hi = product.get(base + k + 1).copied().unwrap_or(0);
        *w = if shift == 0 {
            lo
        } else {
            (lo >> shift) | (hi << (64 - shift))
        };
    }
    out.fix_tail();
    Ok(out)
}

/// The definition, bit by bit: O(n m). For tests only.
pub fn toeplitz_hash_naive(
    seed: &PackedBits,
    input: &PackedBits,
    out_len: usize,
) -> Result<PackedBits, QkdError> {
    check(seed, input, out_len)?;
    let n = input.len();
    let mut out = PackedBits::zeros(out_len);
    for i in 0..out_len {
        let mut bit = false;
        for j in 0..n {
            bit ^= seed.get_unchecked_len(i + n - 1 - j) & input.get_unchecked_len(j);
        }
        if bit {
            out.flip(i);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand_chacha::ChaCha8Rng;
    use rand_core::SeedableRng;

    proptest! {
        #[test]
        fn fast_toeplitz_matches_naive(n in 1usize..700, frac in 0.0f64..1.0, seed in any::<u64>()) {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let m = ((n as f64 * frac) as usize).clamp(1, n);
            let x = PackedBits::random(n, &mut rng);
            let s = PackedBits::random(n + m - 1, &mut rng);
            prop_assert_eq!(toeplitz_hash(&s, &x, m).unwrap(), toeplitz_hash_naive(&s, &x, m).unwrap());
        }

        /// Linearity over GF(2): T(x ^ y) = T x ^ T y.
        #[test]
        fn toeplitz_is_linear(n in 1usize..400, seed in any::<u64>()) {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let m = n.div_ceil(2);
            let x = PackedBits::random(n, &mut rng);
            let y = PackedBits::random(n, &mut rng);
            let s = PackedBits::random(n + m - 1, &mut rng);
            let mut xy = x.clone();
            for (a, b) in xy.words_mut().iter_mut().zip(y.words()) { *a ^= b; }
            let hx = toeplitz_hash(&s, &x, m).unwrap();
            let hy = toeplitz_hash(&s, &y, m).unwrap();
            let mut want = hx.clone();
            for (a, b) in want.words_mut().iter_mut().zip(hy.words()) { *a ^= b; }
            prop_assert_eq!(toeplitz_hash(&s, &xy, m).unwrap(), want);
        }
    }

    #[test]
    fn wrong_seed_length_or_output_is_an_error() {
        let x = PackedBits::zeros(10);
        assert!(toeplitz_hash(&PackedBits::zeros(10), &x, 2).is_err());
        assert!(toeplitz_hash(&PackedBits::zeros(10), &x, 0).is_err());
        assert!(toeplitz_hash(&PackedBits::zeros(20), &x, 11).is_err());
    }
}
