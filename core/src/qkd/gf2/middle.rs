//! GF(2) middle products (Toeplitz matrix times vector) over 64-bit words:
//! transposed Karatsuba down to a few words, then PCLMULQDQ schoolbook.
//!
//! Compiled when the crate is built for x86_64 with `pclmulqdq` enabled (the
//! workspace's `.cargo/config.toml` does so). A direct call of a `core::arch`
//! intrinsic needs `unsafe` even then (rustc requires the feature in a
//! `#[target_feature]` attribute of the caller, and calling that caller is
//! unsafe again; rust-lang/rust#158241), and the workspace forbids `unsafe`,
//! so the intrinsics come through `safe_arch`, whose functions exist only when
//! their feature is enabled at compile time. The carry-less multiply takes
//! constant time, and the recursion's shape depends only on the lengths, so
//! the timing does not depend on the key or the seed.
//!
//! Word-level definition, for `b` of `l` words, `out` of `m` words and `a` of
//! `l + m` words: `out[t]` is word `l + t` of the polynomial product `a * b`.
//! Only words `0..l + m` of `a` reach those product words, so this is exactly
//! an (m x l)-word Toeplitz matrix built from `a`, applied to `b`.

use safe_arch::{
    byte_shr_imm_u128_m128i, get_i64_from_m128i_s, m128i, mul_i64_carryless_m128i, set_i64_m128i_s,
    zeroed_m128i,
};

/// Square sizes (in words) at or below which the schoolbook base case runs.
pub(super) const BASE_WORDS: usize = 16;

/// `out ^= ` the middle product of `a` (l + m words) and `b` (l words), m = `out.len()`.
///
/// Slices of other lengths are treated as if `a` were zero-padded or cut to
/// l + m words (this is internal code: the caller in `amplify.rs` builds them).
pub fn middle_product_acc(a: &[u64], b: &[u64], out: &mut [u64]) {
    let (mut l, mut m) = (b.len(), out.len());
    if l == 0 || m == 0 {
        return;
    }
    let mut padded;
    let a = if a.len() >= l + m {
        &a[..l + m]
    } else {
        padded = a.to_vec();
        padded.resize(l + m, 0);
        &padded[..]
    };
    let mut scratch = Vec::new();
    // Peel square middle products off the rectangle (Euclid on l and m): the
    // largest comes first, the others only shrink.
    let (mut a_off, mut b_off, mut o_off) = (0usize, 0usize, 0usize);
    while l > 0 && m > 0 {
        // (Odd sizes pad, so a smaller square may need more scratch.)
        let need = scratch_words(l.min(m));
        if scratch.len() < need {
            scratch.resize(need, 0);
        }
        if l >= m {
            // The first m words of b feed all m outputs through a[l - m .. l + m].
            square_acc(
                &a[a_off + l - m..a_off + l + m],
                &b[b_off..b_off + m],
                &mut out[o_off..o_off + m],
                &mut scratch,
            );
            b_off += m;
            l -= m;
        } else {
            // All of b feeds the first l outputs through a[0 .. 2l].
            square_acc(
                &a[a_off..a_off + 2 * l],
                &b[b_off..b_off + l],
                &mut out[o_off..o_off + l],
                &mut scratch,
            );
            a_off += l;
            o_off += l;
            m -= l;
        }
    }
}

/// Scratch words `square_acc` needs for size k.
fn scratch_words(k: usize) -> usize {
    let mut k = k;
    let mut total = 0;
    while k > BASE_WORDS {
        if k % 2 == 1 {
            // a' (2k + 2), b' (k + 1), out' (k + 1), then size k + 1.
            total += 4 * k + 4;
            k += 1;
        } else {
            // b0 + b1 (h), P (h), a window sum (2h), then size h.
            total += 2 * k;
            k /= 2;
        }
    }
    total
}

/// `out ^=` the middle product of `a` (2k words) and `b` (k words), k = `b.len()`.
///
/// Transposed Karatsuba (Hanrot, Quercia, Zimmermann): with k = 2h, b = (b0, b1)
/// and the h x h Toeplitz blocks T0 = a[0..2h], T1 = a[h..3h], T2 = a[2h..4h],
/// the top half of the output is T1 b0 + T0 b1 and the bottom half T2 b0 + T1 b1,
/// that is P + (T0 + T1) b1 and P + (T2 + T1) b0 with P = T1 (b0 + b1).
fn square_acc(a: &[u64], b: &[u64], out: &mut [u64], scratch: &mut [u64]) {
    let k = b.len();
    if k <= BASE_WORDS {
        base_acc(a, b, out);
        return;
    }
    if k % 2 == 1 {
        // Pad to k + 1: a' = 0, a, 0 and b' = b, 0 give the same first k outputs.
        let (ap, rest) = scratch.split_at_mut(2 * k + 2);
        let (bp, rest) = rest.split_at_mut(k + 1);
        let (op, rest) = rest.split_at_mut(k + 1);
        ap[0] = 0;
        ap[1..=2 * k].copy_from_slice(&a[..2 * k]);
        ap[2 * k + 1] = 0;
        bp[..k].copy_from_slice(b);
        bp[k] = 0;
        op.fill(0);
        square_acc(ap, bp, op, rest);
        xor_into(out, &op[..k]);
        return;
    }
    let h = k / 2;
    let (bs, rest) = scratch.split_at_mut(h);
    let (p, rest) = rest.split_at_mut(h);
    let (wsum, rest) = rest.split_at_mut(2 * h);
    let (b0, b1) = b.split_at(h);
    for ((s, &x), &y) in bs.iter_mut().zip(b0).zip(b1) {
        *s = x ^ y;
    }
    p.fill(0);
    square_acc(&a[h..3 * h], bs, p, rest);
    let (top, bottom) = out.split_at_mut(h);
    xor_into(top, p);
    xor_into(bottom, p);
    for ((w, &x), &y) in wsum.iter_mut().zip(&a[..2 * h]).zip(&a[h..3 * h]) {
        *w = x ^ y;
    }
    square_acc(wsum, b1, top, rest);
    for ((w, &x), &y) in wsum.iter_mut().zip(&a[2 * h..4 * h]).zip(&a[h..3 * h]) {
        *w = x ^ y;
    }
    square_acc(wsum, b0, bottom, rest);
}

fn xor_into(dst: &mut [u64], src: &[u64]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d ^= s;
    }
}

#[inline]
fn lo(v: m128i) -> u64 {
    get_i64_from_m128i_s(v) as u64
}

#[inline]
fn word(x: u64) -> m128i {
    set_i64_m128i_s(x as i64)
}

/// The 128-bit carry-less product of two words, as (low, high).
#[inline]
pub fn clmul64(a: u64, b: u64) -> (u64, u64) {
    let p = mul_i64_carryless_m128i::<0>(word(a), word(b));
    (lo(p), lo(byte_shr_imm_u128_m128i::<8>(p)))
}

/// Schoolbook base case, k = `b.len()` <= BASE_WORDS: `acc[w]` collects the
/// 128-bit products a[i] b[u] with i + u = k - 1 + w (w = 0..=k), and output
/// word t is the low half of acc[t + 1] plus the high half of acc[t].
#[inline]
fn base_acc(a: &[u64], b: &[u64], out: &mut [u64]) {
    let k = b.len();
    let mut va = [zeroed_m128i(); 2 * BASE_WORDS];
    for (v, &x) in va.iter_mut().zip(&a[..2 * k]) {
        *v = word(x);
    }
    let mut acc = [zeroed_m128i(); BASE_WORDS + 1];
    for (u, &y) in b.iter().enumerate() {
        let vb = word(y);
        // i = k - 1 - u + w for w = 0..=k.
        let row = &va[k - 1 - u..2 * k - u];
        for (c, &x) in acc[..=k].iter_mut().zip(row) {
            *c ^= mul_i64_carryless_m128i::<0>(x, vb);
        }
    }
    for (t, o) in out.iter_mut().enumerate().take(k) {
        *o ^= lo(acc[t + 1] ^ byte_shr_imm_u128_m128i::<8>(acc[t]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Words l..l+m of the schoolbook product a * b with the software clmul.
    fn middle_reference(a: &[u64], b: &[u64], m: usize) -> Vec<u64> {
        let mut full = vec![0u64; a.len() + b.len() + 1];
        for (i, &x) in a.iter().enumerate() {
            for (j, &y) in b.iter().enumerate() {
                let (lo, hi) = super::super::clmul64(x, y);
                full[i + j] ^= lo;
                full[i + j + 1] ^= hi;
            }
        }
        full[b.len()..b.len() + m].to_vec()
    }

    fn words(n: usize, seed: u64) -> Vec<u64> {
        (0..n as u64)
            .map(|i| {
                (seed ^ i.wrapping_mul(0xD129_0B9A_9E4E_3D37)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    ^ (seed >> 7)
            })
            .collect()
    }

    proptest! {
        #[test]
        fn hardware_clmul_matches_software(a in any::<u64>(), b in any::<u64>()) {
            prop_assert_eq!(clmul64(a, b), super::super::clmul64(a, b));
        }

        /// Rectangles of every shape: tiny, below and above the base case,
        /// odd sizes (the padding path), l much larger or smaller than m.
        #[test]
        fn middle_product_matches_schoolbook(l in 1usize..160, m in 1usize..160, seed in any::<u64>()) {
            let a = words(l + m, seed);
            let b = words(l, seed.rotate_left(17) ^ 1);
            let mut got = vec![0u64; m];
            middle_product_acc(&a, &b, &mut got);
            prop_assert_eq!(got, middle_reference(&a, &b, m));
        }

        /// Square sizes deep into the Karatsuba recursion, odd levels included.
        #[test]
        fn large_square_middle_products_match(k in 200usize..700, seed in any::<u64>()) {
            let a = words(2 * k, seed);
            let b = words(k, !seed);
            let mut got = vec![0u64; k];
            middle_product_acc(&a, &b, &mut got);
            prop_assert_eq!(got, middle_reference(&a, &b, k));
        }

        /// The result is accumulated into `out`, not written over it.
        #[test]
        fn middle_product_accumulates(l in 1usize..80, m in 1usize..80, seed in any::<u64>()) {
            let a = words(l + m, seed);
            let b = words(l, seed ^ 0x55);
            let start = words(m, seed ^ 0xAA);
            let mut got = start.clone();
            middle_product_acc(&a, &b, &mut got);
            let want: Vec<u64> = middle_reference(&a, &b, m).iter().zip(&start).map(|(x, y)| x ^ y).collect();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn empty_operands_leave_out_unchanged() {
        let mut out = vec![7u64; 3];
        middle_product_acc(&[1, 2, 3], &[], &mut out);
        assert_eq!(out, vec![7, 7, 7]);
        middle_product_acc(&[1, 2], &[5], &mut []);
    }

    #[test]
    fn short_a_is_zero_padded() {
        let b = words(5, 3);
        let a = words(6, 4);
        let mut padded = a.clone();
        padded.resize(5 + 4, 0);
        let mut got = vec![0u64; 4];
        middle_product_acc(&a, &b, &mut got);
        assert_eq!(got, middle_reference(&padded, &b, 4));
    }
}
