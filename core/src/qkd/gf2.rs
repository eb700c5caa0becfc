//! Multiplication of polynomials over GF(2) held as packed bits: a software
//! carry-less 64x64 multiply and Karatsuba on top of it.
//!
//! The crate forbids `unsafe`, so the hardware carry-less instruction
//! (PCLMULQDQ / PMULL) is out of reach; the base case is a 4-bit-window table
//! multiply. Timing depends on the data through the table lookups; this is a
//! simulator and says so (docs/qkd.md).

/// Words at or below which Karatsuba falls back to the schoolbook method.
const KARATSUBA_THRESHOLD: usize = 2;

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
        schoolbook(a, b, &mut out[..2 * l]);
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

        #[test]
        fn karatsuba_matches_naive(a in proptest::collection::vec(any::<u64>(), 0..12),
                                   b in proptest::collection::vec(any::<u64>(), 0..20)) {
            prop_assert_eq!(mul(&a, &b), mul_naive(&a, &b));
        }
    }
}
