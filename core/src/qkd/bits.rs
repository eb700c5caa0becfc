//! Packed bit vectors (64 bits per machine word) and fast Bernoulli bit masks.
//!
//! Everything the QKD engine moves in bulk (qubit values, bases, detection
//! masks, keys, hash seeds) is a [`PackedBits`]: bit `i` lives in word `i / 64`
//! at position `i % 64`, and bits past `len` are always zero.

use rand_core::Rng;
use serde::{Deserialize, Serialize};

use super::error::QkdError;

/// Number of 64-bit words needed for `len` bits.
pub const fn words_for(len: usize) -> usize {
    len.div_ceil(64)
}

/// A vector of bits packed into `u64` words; bits past `len` are zero.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PackedBitsWire")]
pub struct PackedBits {
    len: usize,
    words: Vec<u64>,
}

#[derive(Deserialize)]
struct PackedBitsWire {
    len: usize,
    words: Vec<u64>,
}

impl TryFrom<PackedBitsWire> for PackedBits {
    type Error = QkdError;
    fn try_from(w: PackedBitsWire) -> Result<Self, QkdError> {
        PackedBits::from_words(w.words, w.len)
    }
}

impl zeroize::Zeroize for PackedBits {
    fn zeroize(&mut self) {
        self.words.zeroize();
        self.len = 0;
    }
}

impl std::fmt::Debug for PackedBits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PackedBits({} bits)", self.len)
    }
}

impl Default for PackedBits {
    fn default() -> Self {
        PackedBits::zeros(0)
    }
}

impl PackedBits {
    /// `len` zero bits.
    pub fn zeros(len: usize) -> Self {
        Self {
            len,
            words: vec![0; words_for(len)],
        }
    }

    /// `len` uniformly random bits.
    pub fn random<R: Rng + ?Sized>(len: usize, rng: &mut R) -> Self {
        let mut words: Vec<u64> = (0..words_for(len)).map(|_| rng.next_u64()).collect();
        mask_tail(&mut words, len);
        Self { len, words }
    }

    /// Wraps words; refuses a word count that does not match `len` or set bits past `len`.
    pub fn from_words(words: Vec<u64>, len: usize) -> Result<Self, QkdError> {
        if words.len() != words_for(len) {
            return Err(QkdError::Malformed(format!(
                "{} words cannot hold exactly {len} bits",
                words.len()
            )));
        }
        let mut checked = words.clone();
        mask_tail(&mut checked, len);
        if checked != words {
            return Err(QkdError::Malformed("bits set past the end".into()));
        }
        Ok(Self { len, words })
    }

    /// Wraps words for `len` bits: resized to the right word count and with
    /// the bits past `len` cleared (for results computed word-wise).
    pub(crate) fn from_words_masked(mut words: Vec<u64>, len: usize) -> Self {
        words.resize(words_for(len), 0);
        mask_tail(&mut words, len);
        Self { len, words }
    }

    /// Builds from a slice of booleans (for tests and small inputs).
    pub fn from_bools(bits: &[bool]) -> Self {
        let mut out = Self::zeros(bits.len());
        for (i, &b) in bits.iter().enumerate() {
            if b {
                out.words[i / 64] |= 1 << (i % 64);
            }
        }
        out
    }

    /// The bits as booleans (for tests and small outputs).
    pub fn to_bools(&self) -> Vec<bool> {
        (0..self.len).map(|i| self.get_unchecked_len(i)).collect()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// Mutable words; the caller must keep bits past `len` zero (see [`Self::fix_tail`]).
    pub(crate) fn words_mut(&mut self) -> &mut [u64] {
        &mut self.words
    }

    pub(crate) fn fix_tail(&mut self) {
        mask_tail(&mut self.words, self.len);
    }

    /// Bit `i`, or `None` past the end.
    pub fn get(&self, i: usize) -> Option<bool> {
        (i < self.len).then(|| self.get_unchecked_len(i))
    }

    /// Bit `i` for an index the caller has checked against `len`.
    #[inline]
    pub(crate) fn get_unchecked_len(&self, i: usize) -> bool {
        (self.words[i >> 6] >> (i & 63)) & 1 == 1
    }

    #[inline]
    pub(crate) fn flip(&mut self, i: usize) {
        self.words[i >> 6] ^= 1 << (i & 63);
    }

    /// Parity of bits `start..end` (word by word), for a range the caller has
    /// checked (`start <= end <= len`).
    pub(crate) fn parity_range(&self, start: usize, end: usize) -> bool {
        if start >= end {
            return false;
        }
        let (first, last) = (start >> 6, (end - 1) >> 6);
        let lo_mask = u64::MAX << (start & 63);
        let hi_mask = u64::MAX >> (63 - ((end - 1) & 63));
        let ones = if first == last {
            (self.words[first] & lo_mask & hi_mask).count_ones()
        } else {
            let middle: u32 = self.words[first + 1..last]
                .iter()
                .map(|w| w.count_ones())
                .sum();
            (self.words[first] & lo_mask).count_ones()
                + middle
                + (self.words[last] & hi_mask).count_ones()
        };
        ones & 1 == 1
    }

    /// The bits in the order `perm` gives: bit j of the result is bit `perm[j]`.
    ///
    /// Each output word is gathered in a register and stored once (setting
    /// the bits one by one in memory chains every store to the next load).
    /// Positions past the end read as zero.
    pub(crate) fn permuted(&self, perm: &[u32]) -> PackedBits {
        let words = perm
            .chunks(64)
            .map(|chunk| {
                chunk.iter().enumerate().fold(0u64, |acc, (k, &i)| {
                    let i = i as usize;
                    let w = self.words.get(i >> 6).copied().unwrap_or(0);
                    acc | (((w >> (i & 63)) & 1) << k)
                })
            })
            .collect();
        PackedBits {
            len: perm.len(),
            words,
        }
    }

    /// Number of ones.
    pub fn count_ones(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// Appends one bit.
    pub fn push(&mut self, bit: bool) {
        if self.len.is_multiple_of(64) {
            self.words.push(0);
        }
        if bit {
            let i = self.len;
            self.words[i >> 6] |= 1 << (i & 63);
        }
        self.len += 1;
    }

    /// Appends all bits of `other` (word-wise).
    pub fn extend(&mut self, other: &PackedBits) {
        let shift = self.len % 64;
        if shift == 0 {
            self.words.extend_from_slice(&other.words);
        } else {
            for &w in &other.words {
                if let Some(last) = self.words.last_mut() {
                    *last |= w << shift;
                }
                self.words.push(w >> (64 - shift));
            }
        }
        self.len += other.len;
        self.words.truncate(words_for(self.len));
    }

    /// The bits of `self` at the positions where `mask` is one, in order
    /// (a software `pext` over the whole vector).
    pub fn select(&self, mask: &PackedBits) -> Result<PackedBits, QkdError> {
        if mask.len != self.len {
            return Err(QkdError::Malformed(format!(
                "mask of {} bits for a vector of {} bits",
                mask.len, self.len
            )));
        }
        let mut out = Vec::with_capacity(words_for(mask.count_ones() as usize));
        let mut acc = 0u64;
        let mut fill = 0u32;
        for (&w, &m) in self.words.iter().zip(&mask.words) {
            let (bits, n) = pext64(w, m);
            if n == 0 {
                continue;
            }
            acc |= bits << fill;
            let total = fill + n;
            if total >= 64 {
                out.push(acc);
                let used = 64 - fill;
                acc = if used >= 64 { 0 } else { bits >> used };
                fill = total - 64;
            } else {
                fill = total;
            }
        }
        let len = out.len() * 64 + fill as usize;
        if fill > 0 {
            out.push(acc);
        }
        Ok(PackedBits { len, words: out })
    }

    /// Number of positions where `self` and `other` differ (same length required).
    pub fn hamming_distance(&self, other: &PackedBits) -> Result<u64, QkdError> {
        if self.len != other.len {
            return Err(QkdError::Malformed(format!(
                "comparing {} bits with {} bits",
                self.len, other.len
            )));
        }
        Ok(self
            .words
            .iter()
            .zip(&other.words)
            .map(|(a, b)| u64::from((a ^ b).count_ones()))
            .sum())
    }
}

/// Compresses the bits of `w` selected by `m` into the low bits; returns them and their count.
#[inline]
fn pext64(w: u64, m: u64) -> (u64, u32) {
    if m == u64::MAX {
        return (w, 64);
    }
    let mut out = 0u64;
    let mut k = 0u32;
    let mut m = m;
    while m != 0 {
        let t = m.trailing_zeros();
        out |= ((w >> t) & 1) << k;
        k += 1;
        m &= m - 1;
    }
    (out, k)
}

fn mask_tail(words: &mut [u64], len: usize) {
    if !len.is_multiple_of(64)
        && let Some(last) = words.last_mut()
    {
        *last &= (1u64 << (len % 64)) - 1;
    }
}

/// Draws words whose bits are independently one with a fixed probability.
///
/// Probabilities of at least 1/32 use the binary-expansion method (at most 32
/// random words per 64 bits, exact to 2^-32); smaller ones jump from one set bit
/// to the next with geometric gaps, so the cost follows the number of ones.
#[derive(Debug, Clone)]
pub struct BernoulliWords {
    kind: BernoulliKind,
}

#[derive(Debug, Clone)]
enum BernoulliKind {
    Never,
    Always,
    Dense { fraction: u32 },
    Sparse { ln_q: f64, gap: u64 },
}

impl BernoulliWords {
    /// A sampler for probability `p`, which must lie in [0, 1].
    pub fn new(p: f64) -> Result<Self, QkdError> {
        if !(0.0..=1.0).contains(&p) {
            return Err(QkdError::InvalidParameter(format!(
                "probability {p} is outside [0, 1]"
            )));
        }
        let kind = if p == 0.0 {
            BernoulliKind::Never
        } else if p == 1.0 {
            BernoulliKind::Always
        } else if p < 1.0 / 32.0 {
            BernoulliKind::Sparse {
                ln_q: (-p).ln_1p(),
                gap: u64::MAX,
            }
        } else {
            let f = (p * 4_294_967_296.0).round();
            if f >= 4_294_967_296.0 {
                BernoulliKind::Always
            } else {
                BernoulliKind::Dense { fraction: f as u32 }
            }
        };
        Ok(Self { kind })
    }

    /// The next 64 independent Bernoulli bits.
    #[inline]
    pub fn next_word<R: Rng + ?Sized>(&mut self, rng: &mut R) -> u64 {
        match &mut self.kind {
            BernoulliKind::Never => 0,
            BernoulliKind::Always => u64::MAX,
            BernoulliKind::Dense { fraction } => {
                let f = *fraction;
                let mut m = 0u64;
                for j in f.trailing_zeros()..32 {
                    let r = rng.next_u64();
                    m = if (f >> j) & 1 == 1 { m | r } else { m & r };
                }
                m
            }
            BernoulliKind::Sparse { ln_q, gap } => {
                // `gap` is the number of zeros before the next one, carried across words.
                let mut m = 0u64;
                let mut pos = 0u64;
                loop {
                    if *gap == u64::MAX {
                        *gap = geometric(rng, *ln_q);
                    }
                    if pos + *gap >= 64 {
                        *gap -= 64 - pos;
                        return m;
                    }
                    pos += *gap;
                    m |= 1 << pos;
                    pos += 1;
                    *gap = u64::MAX;
                    if pos == 64 {
                        return m;
                    }
                }
            }
        }
    }
}

/// Number of failures before the first success, success probability `1 - e^ln_q`.
fn geometric<R: Rng + ?Sized>(rng: &mut R, ln_q: f64) -> u64 {
    // u in (0, 1]: 53 random bits, shifted away from zero.
    let u = ((rng.next_u64() >> 11) as f64 + 1.0) * (1.0 / 9_007_199_254_740_992.0);
    let g = (u.ln() / ln_q).floor();
    if g >= 1.0e18 {
        1_000_000_000_000_000_000
    } else {
        g as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand_chacha::ChaCha8Rng;
    use rand_core::SeedableRng;

    proptest! {
        #[test]
        fn select_matches_naive(bits in proptest::collection::vec(any::<bool>(), 0..300),
                                seed in any::<u64>()) {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let v = PackedBits::from_bools(&bits);
            let mask = PackedBits::random(bits.len(), &mut rng);
            let got = v.select(&mask).unwrap().to_bools();
            let want: Vec<bool> = bits.iter().zip(mask.to_bools()).filter(|(_, m)| *m).map(|(b, _)| *b).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn parity_range_matches_naive(bits in proptest::collection::vec(any::<bool>(), 0..300),
                                      a in any::<usize>(), b in any::<usize>()) {
            let v = PackedBits::from_bools(&bits);
            let (mut s, mut e) = (a % (bits.len() + 1), b % (bits.len() + 1));
            if s > e { std::mem::swap(&mut s, &mut e); }
            let want = bits[s..e].iter().fold(false, |p, &x| p ^ x);
            prop_assert_eq!(v.parity_range(s, e), want);
        }

        #[test]
        fn permuted_matches_naive(bits in proptest::collection::vec(any::<bool>(), 0..300), seed in any::<u64>()) {
            let v = PackedBits::from_bools(&bits);
            let perm = crate::qkd::prng::PublicPrng::new(&[7; 32], "test", seed).permutation(bits.len());
            let want: Vec<bool> = perm.iter().map(|&i| bits[i as usize]).collect();
            prop_assert_eq!(v.permuted(&perm).to_bools(), want);
        }

        #[test]
        fn extend_matches_concatenation(a in proptest::collection::vec(any::<bool>(), 0..200),
                                        b in proptest::collection::vec(any::<bool>(), 0..200)) {
            let mut v = PackedBits::from_bools(&a);
            v.extend(&PackedBits::from_bools(&b));
            let want: Vec<bool> = a.iter().chain(&b).copied().collect();
            prop_assert_eq!(v.clone(), PackedBits::from_bools(&want));
            prop_assert_eq!(v.to_bools(), want);
        }

        #[test]
        fn bools_round_trip_and_serde(bits in proptest::collection::vec(any::<bool>(), 0..300)) {
            let v = PackedBits::from_bools(&bits);
            prop_assert_eq!(v.to_bools(), bits.clone());
            let bytes = crate::codec::encode(&v).unwrap();
            let back: PackedBits = crate::codec::decode(&bytes, 1 << 20).unwrap();
            prop_assert_eq!(back, v);
        }
    }

    #[test]
    fn decode_refuses_bits_past_len() {
        assert!(PackedBits::from_words(vec![0b100], 2).is_err());
        assert!(PackedBits::from_words(vec![0, 0], 64).is_err());
        assert!(PackedBits::from_words(vec![0b11], 2).is_ok());
    }

    #[test]
    fn bernoulli_rates_within_four_sigma() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for p in [0.001, 0.02, 0.03125, 0.1, 0.5, 0.77] {
            let mut s = BernoulliWords::new(p).unwrap();
            let words = 20_000;
            let ones: u64 = (0..words)
                .map(|_| u64::from(s.next_word(&mut rng).count_ones()))
                .sum();
            let n = (words * 64) as f64;
            let sd = (n * p * (1.0 - p)).sqrt();
            assert!(
                (ones as f64 - n * p).abs() < 4.0 * sd,
                "p={p}: {ones} of {n}"
            );
        }
        assert!(BernoulliWords::new(1.5).is_err());
        assert!(BernoulliWords::new(-0.1).is_err());
    }
}
