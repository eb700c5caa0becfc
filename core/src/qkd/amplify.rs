//! Privacy amplification with Toeplitz hashing, computed as a GF(2) middle
//! product with PCLMULQDQ on x86_64 (`gf2::middle`) or as the middle of the
//! portable full product elsewhere, plus the naive reference both are tested
//! against.
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
    #[cfg(all(target_arch = "x86_64", target_feature = "pclmulqdq"))]
    let out = toeplitz_middle_product(seed, input, out_len);
    #[cfg(not(all(target_arch = "x86_64", target_feature = "pclmulqdq")))]
    let out = toeplitz_full_product(seed, input, out_len);
    Ok(out)
}

/// The hash as the middle of the portable full product `seed * input`
/// (Karatsuba and comb, [`gf2::mul`]); arguments already checked.
#[cfg_attr(
    all(target_arch = "x86_64", target_feature = "pclmulqdq"),
    allow(dead_code, reason = "the portable path, compiled for its tests")
)]
fn toeplitz_full_product(seed: &PackedBits, input: &PackedBits, out_len: usize) -> PackedBits {
    let product = gf2::mul(seed.words(), input.words());
    let start = input.len() - 1;
    let shift = start % 64;
    let base = start / 64;
    let out = (0..super::bits::words_for(out_len))
        .map(|k| {
            let lo = product.get(base + k).copied().unwrap_or(0);
            let hi = product.get(base + k + 1).copied().unwrap_or(0);
            if shift == 0 {
                lo
            } else {
                (lo >> shift) | (hi << (64 - shift))
            }
        })
        .collect();
    PackedBits::from_words_masked(out, out_len)
}

/// The hash as a word-level middle product ([`gf2::middle`], PCLMULQDQ);
/// arguments already checked.
///
/// With L = words of the input and N = 64 L, output bit i is coefficient
/// n - 1 + i of s * x, which is coefficient N + i of (s X^d) * x for
/// d = N - n + 1 (1 to 64): shifting the seed up by d bits makes the output
/// start at word L of the product, which is what the middle product computes.
#[cfg(all(target_arch = "x86_64", target_feature = "pclmulqdq"))]
fn toeplitz_middle_product(seed: &PackedBits, input: &PackedBits, out_len: usize) -> PackedBits {
    let x = input.words();
    let l = x.len();
    let m = super::bits::words_for(out_len);
    let d = 64 * l - input.len() + 1;
    let (q, r) = (d / 64, d % 64);
    let s = seed.words();
    let mut a = vec![0u64; l + m];
    for (w, slot) in a.iter_mut().enumerate().skip(q) {
        let cur = s.get(w - q).copied().unwrap_or(0);
        *slot = if r == 0 {
            cur
        } else {
            let below = match w - q {
                0 => 0,
                j => s.get(j - 1).copied().unwrap_or(0),
            };
            (cur << r) | (below >> (64 - r))
        };
    }
    let mut out = vec![0u64; m];
    gf2::middle::middle_product_acc(&a, x, &mut out);
    PackedBits::from_words_masked(out, out_len)
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
            let want = toeplitz_hash_naive(&s, &x, m).unwrap();
            prop_assert_eq!(toeplitz_full_product(&s, &x, m), want.clone());
            prop_assert_eq!(toeplitz_hash(&s, &x, m).unwrap(), want);
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

    /// A 1 Mbit block (the benchmark's size) against the portable product,
    /// and an odd size whose seed shift is not a whole word.
    #[test]
    fn large_blocks_agree_with_the_portable_product() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for (n, m) in [
            (1usize << 20, 1usize << 19),
            (100_003, 40_001),
            (70_001, 64),
        ] {
            let x = PackedBits::random(n, &mut rng);
            let s = PackedBits::random(n + m - 1, &mut rng);
            assert_eq!(
                toeplitz_hash(&s, &x, m).unwrap(),
                toeplitz_full_product(&s, &x, m),
                "n={n} m={m}"
            );
        }
    }

    /// `.cargo/config.toml` enables PCLMULQDQ on x86_64, so the hardware path
    /// is the one built and tested there.
    #[test]
    #[cfg(target_arch = "x86_64")]
    #[allow(
        clippy::assertions_on_constants,
        reason = "the constant is the build configuration under test"
    )]
    fn x86_64_builds_use_pclmulqdq() {
        assert!(cfg!(target_feature = "pclmulqdq"));
    }

    #[test]
    fn wrong_seed_length_or_output_is_an_error() {
        let x = PackedBits::zeros(10);
        assert!(toeplitz_hash(&PackedBits::zeros(10), &x, 2).is_err());
        assert!(toeplitz_hash(&PackedBits::zeros(10), &x, 0).is_err());
        assert!(toeplitz_hash(&PackedBits::zeros(20), &x, 11).is_err());
    }
}
