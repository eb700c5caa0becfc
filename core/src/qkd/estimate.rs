//! Parameter estimation: a random sample of the sifted key is compared in the
//! open and discarded; the sample's error rate and a Serfling upper bound on
//! the error rate of the rest decide whether to abort.

use super::bits::PackedBits;
use super::error::QkdError;
use super::prng::PublicPrng;

/// Binary entropy h(q) in bits; h(0) = h(1) = 0.
pub fn binary_entropy(q: f64) -> f64 {
    if q <= 0.0 || q >= 1.0 {
        return 0.0;
    }
    -q * q.log2() - (1.0 - q) * (1.0 - q).log2()
}

/// The Serfling deviation: with `k` bits sampled without replacement from
/// `n + k`, the error rate of the `n` unsampled bits exceeds the sample's by
/// more than this with probability at most `eps`:
/// delta = sqrt((n + k)(k + 1) ln(1/eps) / (2 n k^2)).
pub fn serfling_delta(n: u64, k: u64, eps: f64) -> f64 {
    if n == 0 || k == 0 {
        return 0.5;
    }
    let (n, k) = (n as f64, k as f64);
    ((n + k) * (k + 1.0) * (1.0 / eps).ln() / (2.0 * n * k * k)).sqrt()
}

/// Upper confidence bound on the QBER of the unsampled key, capped at 1/2.
pub fn qber_upper_bound(sample_errors: u64, k: u64, n: u64, eps: f64) -> f64 {
    if k == 0 {
        return 0.5;
    }
    (sample_errors as f64 / k as f64 + serfling_delta(n, k, eps)).min(0.5)
}

/// The positions of the sifted key both parties compare, from a public seed.
pub fn sample_positions(seed: &[u8; 32], sifted_len: usize, k: usize) -> Vec<u32> {
    PublicPrng::new(seed, "qward qkd sample", 0).sample(sifted_len, k)
}

/// Splits `key` into (bits at `positions`, the rest in order). Positions must be
/// sorted, distinct and in range.
pub fn split_sample(
    key: &PackedBits,
    positions: &[u32],
) -> Result<(PackedBits, PackedBits), QkdError> {
    let mut mask = PackedBits::zeros(key.len());
    let mut last: Option<u32> = None;
    for &p in positions {
        if (p as usize) >= key.len() || last.is_some_and(|l| l >= p) {
            return Err(QkdError::Malformed(format!(
                "sample position {p} out of order or past the {}-bit key",
                key.len()
            )));
        }
        mask.flip(p as usize);
        last = Some(p);
    }
    let sample = key.select(&mask)?;
    for w in mask.words_mut() {
        *w = !*w;
    }
    mask.fix_tail();
    let rest = key.select(&mask)?;
    Ok((sample, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_values() {
        assert_eq!(binary_entropy(0.0), 0.0);
        assert!((binary_entropy(0.5) - 1.0).abs() < 1e-12);
        assert!((binary_entropy(0.11) - 0.4999).abs() < 1e-3);
    }

    #[test]
    fn bound_is_above_observation_and_shrinks_with_sample_size() {
        let small = qber_upper_bound(5, 100, 900, 1e-10);
        let large = qber_upper_bound(500, 10_000, 90_000, 1e-10);
        assert!(small > 0.05 && large > 0.05);
        assert!(large < small);
    }

    #[test]
    fn split_sample_partitions_the_key() {
        let key = PackedBits::from_bools(&[true, false, true, true, false]);
        let (s, r) = split_sample(&key, &[1, 3]).unwrap();
        assert_eq!(s.to_bools(), vec![false, true]);
        assert_eq!(r.to_bools(), vec![true, true, false]);
        assert!(split_sample(&key, &[3, 1]).is_err());
        assert!(split_sample(&key, &[7]).is_err());
    }
}
