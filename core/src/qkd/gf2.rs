//! Multiplication of polynomials over GF(2) held as packed bits: the portable
//! product (Karatsuba down to 32-word operands, multiplied there by the 4-bit
//! comb method), a software carry-less 64x64 multiply (the tests' reference),
//! and, on x86_64 with PCLMULQDQ, the hardware middle product in `middle`.
//!
//! The portable product's timing depends on the data through the comb's table
//! lookups; this is a simulator and says so (docs/qkd.md). The PCLMULQDQ path
//! is constant-time.

#[cfg(all(target_arch = "x86_64", target_feature = "pclmulqdq"))]
pub mod middle;

/// Words at or below which Karatsuba falls back to the comb method.
const KARATSUBA_THRESHOLD: usize = 32;

/// The 128-bit carry-less product of `a` and `b`, as (low, high) words.
#[inline]
pub fn clmul64(a: u64, b: u64) -> (u64, u64) {
    // The table holds a' * u for u < 16 with a' = a without its top 3 bits, so
    // no entry overflows 64 bits; the top 3 bits of a are added afterwards.
    let a3 = a & (u64::MAX >> 3);
    let mut t = [0u64; 16];
    t[1] = a3;
    t[2] = a3 << 1;
    t[3] = t[2] ^ a3;
    t[4] = a3 << 2;
    t[5] = t[4] ^ a3;
    t[6] = t[4] ^ t[2];
    t[7] = t[6] ^ a3;
    t[8] = a3 << 3;
    t[9] = t[8] ^ a3;
    t[10] = t[8] ^ t[2];
    t[11] = t[10] ^ a3;
    t[12] = t[8] ^ t[4];
    t[13] = t[12] ^ a3;
    t[14] = t[12] ^ t[2];
    t[15] = t[14] ^ a3;
    let mut lo = t[(b & 15) as usize];
    let mut hi = 0u64;
    let mut i = 4;
    while i < 64 {
        let v = t[((b >> i) & 15) as usize];
        lo ^= v << i;
        hi ^= v >> (64 - i);
        i += 4;
    }
    for j in 61..64 {
        let m = 0u64.wrapping_sub((a >> j) & 1);
        lo ^= (b << j) & m;
        hi ^= (b >> (64 - j)) & m;
    }
    (lo, hi)
}

/// out (2L words) = a * b for a, b of L <= KARATSUBA_THRESHOLD words, by the
/// left-to-right comb method (Lopez and Dahab): the 16 multiples a * u
/// (u < 16) are tabulated once, then for each 4-bit window position, high to
/// low, every word of b adds the row of its nibble (a slice XOR, which the
/// compiler vectorises) and the accumulator shifts by 4 bits (Horner).
fn comb(a: &[u64], b: &[u64], out: &mut [u64]) {
    const ROW: usize = KARATSUBA_THRESHOLD + 1;
    let l = a.len();
    let w = l + 1;
    let mut tab = [0u64; 16 * ROW];
    tab[ROW..ROW + l].copy_from_slice(a);
    for u in 2..16 {
        let (done, rest) = tab.split_at_mut(u * ROW);
        let row = &mut rest[..w];
        if u % 2 == 0 {
            // a * u = (a * u/2) << 1
            let half = &done[(u / 2) * ROW..(u / 2) * ROW + w];
            let mut carry = 0u64;
            for (r, &h) in row.iter_mut().zip(half) {
                *r = (h << 1) | carry;
                carry = h >> 63;
            }
        } else {
            // a * u = a * (u - 1) + a
            let prev = &done[(u - 1) * ROW..(u - 1) * ROW + w];
            let one = &done[ROW..ROW + w];
            for ((r, &p), &o) in row.iter_mut().zip(prev).zip(one) {
                *r = p ^ o;
            }
        }
    }
    let out = &mut out[..2 * l];
    out.iter_mut().for_each(|x| *x = 0);
    for i in (0..16).rev() {
        for (j, &y) in b.iter().enumerate() {
            let u = ((y >> (4 * i)) & 15) as usize;
            let row = &tab[u * ROW..u * ROW + w];
            for (o, &r) in out[j..j + w].iter_mut().zip(row) {
                *o ^= r;
            }
        }
        if i > 0 {
            let mut carry = 0u64;
            for o in out.iter_mut() {
                let next = *o >> 60;
                *o = (*o << 4) | carry;
                carry = next;
            }
        }
    }
}

#[cfg(test)]
fn schoolbook(a: &[u64], b: &[u64], out: &mut [u64]) {
    out.iter_mut().for_each(|w| *w = 0);
    for (i, &x) in a.iter().enumerate() {
        if x == 0 {
            continue;
        }
        for (j, &y) in b.iter().enumerate() {
            let (lo, hi) = clmul64(x, y);
            out[i + j] ^= lo;
            out[i + j + 1] ^= hi;
        }
    }
}

/// out (2L words) = a * b for a, b of L words; scratch must hold 4L + 4 log2(L) words.
fn karatsuba(a: &[u64], b: &[u64], out: &mut [u64], scratch: &mut [u64]) {
    let l = a.len();
    if l <= KARATSUBA_THRESHOLD {
        comb(a, b, out);
        return;
    }
    let h = l / 2;
    let hh = l - h;
    {
        let (lo, hi) = out.split_at_mut(2 * h);
        karatsuba(&a[..h], &b[..h], lo, scratch);
        karatsuba(&a[h..], &b[h..], &mut hi[..2 * hh], scratch);
    }
    let (t, rest) = scratch.split_at_mut(2 * hh);
    let (t1, t2) = t.split_at_mut(hh);
    t1.copy_from_slice(&a[h..]);
    t2.copy_from_slice(&b[h..]);
    for (t, x) in t1.iter_mut().zip(&a[..h]) {
        *t ^= x;
    }
    for (t, y) in t2.iter_mut().zip(&b[..h]) {
        *t ^= y;
    }
    let (z1, rest2) = rest.split_at_mut(2 * hh);
    karatsuba(t1, t2, z1, rest2);
    for (z, o) in z1.iter_mut().zip(&out[..2 * h]) {
        *z ^= o;
    }
    for (z, o) in z1.iter_mut().zip(&out[2 * h..2 * h + 2 * hh]) {
        *z ^= o;
    }
    for (o, z) in out[h..h + 2 * hh].iter_mut().zip(z1.iter()) {
        *o ^= z;
    }
}

/// The product of two polynomials given as words (bit i of word w is the
/// coefficient of x^(64 w + i)); the result has `a.len() + b.len()` words.
pub fn mul(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = vec![0u64; a.len() + b.len()];
    if a.is_empty() || b.is_empty() {
        return out;
    }
    // Multiply the longer operand in pieces of the shorter one's length.
    let (long, short) = if a.len() >= b.len() { (a, b) } else { (b, a) };
    let l = short.len();
    let mut scratch = vec![0u64; 4 * l + 256];
    let mut piece = vec![0u64; l];
    let mut prod = vec![0u64; 2 * l];
    let mut off = 0;
    while off < long.len() {
        let take = (long.len() - off).min(l);
        piece[..take].copy_from_slice(&long[off..off + take]);
        piece[take..].iter_mut().for_each(|w| *w = 0);
        karatsuba(&piece, short, &mut prod, &mut scratch);
        for (i, &w) in prod.iter().enumerate() {
            if let Some(o) = out.get_mut(off + i) {
                *o ^= w;
            }
        }
        off += l;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn clmul_naive(a: u64, b: u64) -> u128 {
        (0..64)
            .filter(|i| (b >> i) & 1 == 1)
            .fold(0u128, |r, i| r ^ (u128::from(a) << i))
    }

    fn mul_naive(a: &[u64], b: &[u64]) -> Vec<u64> {
        let mut out = vec![0u64; a.len() + b.len()];
        for i in 0..a.len() * 64 {
            if (a[i / 64] >> (i % 64)) & 1 == 1 {
                for j in 0..b.len() * 64 {
                    if (b[j / 64] >> (j % 64)) & 1 == 1 {
                        out[(i + j) / 64] ^= 1 << ((i + j) % 64);
                    }
                }
            }
        }
        out
    }

    proptest! {
        #[test]
        fn clmul_matches_naive(a in any::<u64>(), b in any::<u64>()) {
            let (lo, hi) = clmul64(a, b);
            prop_assert_eq!(u128::from(lo) | (u128::from(hi) << 64), clmul_naive(a, b));
        }

        /// The comb base case against the word-by-word schoolbook product.
        #[test]
        fn comb_matches_schoolbook(a in proptest::collection::vec(any::<u64>(), 1..=KARATSUBA_THRESHOLD),
                                   seed in any::<u64>()) {
            let b: Vec<u64> = (0..a.len() as u64).map(|i| (seed ^ i).wrapping_mul(0x9E37_79B9_7F4A_7C15)).collect();
            let mut got = vec![0u64; 2 * a.len()];
            let mut want = vec![0u64; 2 * a.len()];
            comb(&a, &b, &mut got);
            schoolbook(&a, &b, &mut want);
            prop_assert_eq!(got, want);
        }

        /// Karatsuba recursion (operands far past the threshold, odd lengths)
        /// against the schoolbook product of clmul64 (itself checked bit by bit).
        #[test]
        fn large_products_match_schoolbook(a in proptest::collection::vec(any::<u64>(), 1..300),
                                           b in proptest::collection::vec(any::<u64>(), 1..140)) {
            let mut want = vec![0u64; a.len() + b.len()];
            for (i, &x) in a.iter().enumerate() {
                for (j, &y) in b.iter().enumerate() {
                    let (lo, hi) = clmul64(x, y);
                    want[i + j] ^= lo;
                    want[i + j + 1] ^= hi;
                }
            }
            prop_assert_eq!(mul(&a, &b), want);
        }

        #[test]
        fn karatsuba_matches_naive(a in proptest::collection::vec(any::<u64>(), 0..12),
                                   b in proptest::collection::vec(any::<u64>(), 0..20)) {
            prop_assert_eq!(mul(&a, &b), mul_naive(&a, &b));
        }
    }
}
