//! Error correction with Cascade, as two halves: Bob (who corrects his key and
//! drives the exchange) and Alice (who answers parity queries).
//!
//! The schedule follows Martinez-Mateo, Pacher, Peev, Ciurana and Martin
//! (2015, "Cascade opt. (8)"): block sizes that are powers of two (a
//! bisection then never wastes a query on an uneven split), about 1/QBER in
//! the first pass and 3/QBER in the second, then half the key; 16 passes.
//! The first pass is in key order, the second in a fresh public permutation,
//! the half-key passes in a fresh public random split ([`pass_order`]). See
//! [`BlockSchedule`]; the paper's own schedule, which leaks a little less for
//! many more round trips, is [`BlockSchedule::PaperOpt8`].
//! Two savings are applied and every bit Alice discloses is still counted:
//! - block parity inference: from the second pass on, Alice's parity of the
//!   whole key is known, so the last block's parity is inferred, not asked;
//! - reuse of known parities: Alice's key never changes, so every range whose
//!   parity she has disclosed (and its sibling, inferred from the parent) is
//!   remembered and never asked again when a later cascade step revisits it.
//!
//! Searches run in rounds: all odd blocks of one pass are bisected in parallel
//! (they are disjoint), so a round trip carries many queries.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Serialize};

use super::bits::PackedBits;
use super::error::QkdError;
use super::prng::PublicPrng;

/// A request for the parity of Alice's key over positions `start..end` of
/// pass `pass`'s permutation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParityRange {
    pub pass: u16,
    pub start: u32,
    pub end: u32,
}

/// Tunables of the Cascade schedule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CascadeConfig {
    /// Number of passes (the last ones, with blocks of half the key, cost about one bit each).
    pub passes: u16,
    /// How the block size of each pass follows from the estimated QBER.
    pub schedule: BlockSchedule,
}

/// The block sizes of the passes, as a function of the key length n and the
/// estimated QBER Q (at least 10^-4, at most 1/2). Every block size is at
/// most half the key.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum BlockSchedule {
    /// Powers of two, so that a bisection never wastes a query on an uneven
    /// split: with a = log2(1/Q) - 1/2, k1 = 2^ceil(a) (as in "Cascade opt.
    /// (8)" of Martinez-Mateo et al.), k2 = the power of two nearest to
    /// `second_block_factor` / Q but at least 2 k1, then n/2. A larger second
    /// block leaks less but lengthens the chains of corrections that run one
    /// after the other (more round trips).
    PowersOfTwo { second_block_factor: f64 },
    /// "Cascade opt. (8)" as published: k1 = 2^ceil(a), k2 = 2^ceil((a + 12) / 2),
    /// k3 = 4096, then n/2. The least leakage, at 10 to 50 times the round
    /// trips of the others.
    PaperOpt8,
    /// The earlier schedule: k1 = `first_block_factor` / Q (0.73 in the
    /// paper's "optimized" variant), 2 k1, then n/2.
    Proportional { first_block_factor: f64 },
}

impl Default for CascadeConfig {
    fn default() -> Self {
        Self {
            passes: 16,
            schedule: BlockSchedule::PowersOfTwo {
                second_block_factor: 3.0,
            },
        }
    }
}

impl CascadeConfig {
    pub fn validate(&self) -> Result<(), QkdError> {
        if !(1..=64).contains(&self.passes) {
            return Err(QkdError::InvalidParameter(format!(
                "cascade passes must be 1 to 64, not {}",
                self.passes
            )));
        }
        let factor = match self.schedule {
            BlockSchedule::PowersOfTwo {
                second_block_factor,
            } => Some(("second_block_factor", second_block_factor)),
            BlockSchedule::PaperOpt8 => None,
            BlockSchedule::Proportional { first_block_factor } => {
                Some(("first_block_factor", first_block_factor))
            }
        };
        if let Some((name, f)) = factor
            && !(f > 0.0 && f <= 10.0)
        {
            return Err(QkdError::InvalidParameter(format!(
                "cascade {name} must be in (0, 10], not {f}"
            )));
        }
        Ok(())
    }

    /// Block size of each pass for a key of `n` bits at estimated QBER `qber`.
    pub fn block_sizes(&self, n: usize, qber: f64) -> Vec<usize> {
        let half = n.div_ceil(2).max(1);
        // A NaN estimate is treated as the floor (as a zero one is).
        let q = if qber.is_nan() {
            1e-4
        } else {
            qber.clamp(1e-4, 0.5)
        };
        // a is in [0.5, 12.8], so 2^ceil(a) is 2 to 2^13.
        let a = (1.0 / q).log2() - 0.5;
        let pow2 = |e: f64| 1usize << (e.clamp(0.0, 40.0) as u32);
        let (k1, k2, k3) = match self.schedule {
            BlockSchedule::PowersOfTwo {
                second_block_factor,
            } => {
                let k1 = pow2(a.ceil());
                let k2 = pow2((second_block_factor / q).log2().round()).max(2 * k1);
                (k1, k2, half)
            }
            BlockSchedule::PaperOpt8 => (pow2(a.ceil()), pow2(((a + 12.0) / 2.0).ceil()), 4096),
            BlockSchedule::Proportional { first_block_factor } => {
                let k1 = ((first_block_factor / q).round() as usize).clamp(2, half.max(2));
                // From the third pass on, blocks of half the key: about one
                // parity bit per pass (the other is inferred from the whole
                // key's parity), where doubling would cost n/(4 k1) + ...
                (k1, 2 * k1, half)
            }
        };
        (0..self.passes)
            .map(|pass| {
                let k = match pass {
                    0 => k1,
                    1 => k2,
                    2 => k3,
                    _ => half,
                };
                k.min(half).min(n.max(1))
            })
            .collect()
    }
}

impl CascadeConfig {
    /// The first pass whose order is a random split ([`pass_order`]): the
    /// passes whose blocks are half the key.
    fn first_split_pass(&self) -> u16 {
        match self.schedule {
            BlockSchedule::PaperOpt8 => 3,
            BlockSchedule::PowersOfTwo { .. } | BlockSchedule::Proportional { .. } => 2,
        }
    }
}

/// The order of pass `pass` over a key of `n` bits: position j of the pass
/// holds key bit `perm[j]`. Returns the order and, for a split pass, its
/// block size.
///
/// Pass 0 keeps the key's order; the next passes are uniformly random
/// permutations (Fisher–Yates). From `first_split` on (the passes with blocks
/// of half the key) the order is a random split instead: each key bit joins
/// a set S with probability 1/2 (public random bits), the larger of S and its
/// complement comes first, both in increasing key order, and the pass has
/// two blocks, the larger part and the smaller. For a two-block pass only the
/// split matters (a residual error pattern shows in the first block's parity
/// with probability exactly 1/2 whatever it is; the order inside a block only
/// steers the bisection), and it is built in sequential passes over words
/// instead of n random swaps.
fn pass_order(seed: &[u8; 32], n: usize, pass: u16, first_split: u16) -> (Vec<u32>, Option<usize>) {
    if pass == 0 {
        return ((0..n as u32).collect(), None);
    }
    if pass < first_split {
        let perm =
            PublicPrng::new(seed, "qward cascade permutation", u64::from(pass)).permutation(n);
        return (perm, None);
    }
    let mut prng = PublicPrng::new(seed, "qward cascade split", u64::from(pass));
    let mut mask: Vec<u64> = (0..n.div_ceil(64)).map(|_| prng.next_u64()).collect();
    if !n.is_multiple_of(64)
        && let Some(last) = mask.last_mut()
    {
        *last &= (1u64 << (n % 64)) - 1;
    }
    let ones: usize = mask.iter().map(|w| w.count_ones() as usize).sum();
    // `first` selects the larger part: S itself, or its complement.
    let first_is_s = 2 * ones >= n;
    let mut perm = Vec::with_capacity(n);
    for take_s in [first_is_s, !first_is_s] {
        for (w, &m) in mask.iter().enumerate() {
            let valid = if (w + 1) * 64 <= n {
                u64::MAX
            } else {
                (1u64 << (n % 64)) - 1
            };
            let mut bits = if take_s { m } else { !m & valid };
            while bits != 0 {
                perm.push((w * 64) as u32 + bits.trailing_zeros());
                bits &= bits - 1;
            }
        }
    }
    let larger = ones.max(n - ones).max(1);
    (perm, Some(larger))
}

/// Alice's half: answers parity queries on her (reference) key.
#[derive(Debug)]
pub struct CascadeAlice {
    key: PackedBits,
    seed: [u8; 32],
    passes: u16,
    first_split: u16,
    /// Alice's key in each pass's order (built on first use): a range parity
    /// is then a popcount over words.
    permuted: Vec<Option<PackedBits>>,
    disclosed: u64,
}

impl CascadeAlice {
    pub fn new(key: PackedBits, seed: [u8; 32], config: &CascadeConfig) -> Self {
        Self {
            key,
            seed,
            passes: config.passes,
            first_split: config.first_split_pass(),
            permuted: (0..config.passes).map(|_| None).collect(),
            disclosed: 0,
        }
    }

    /// Alice's parities for `ranges`; refuses ranges outside the key or the schedule.
    pub fn answer(&mut self, ranges: &[ParityRange]) -> Result<PackedBits, QkdError> {
        let n = self.key.len();
        let mut out = PackedBits::zeros(0);
        for r in ranges {
            if r.pass >= self.passes || r.start >= r.end || r.end as usize > n {
                return Err(QkdError::Malformed(format!(
                    "parity query {r:?} is outside the {n}-bit key or the {}-pass schedule",
                    self.passes
                )));
            }
            let (key, seed, first_split) = (&self.key, &self.seed, self.first_split);
            let permuted = self.permuted[r.pass as usize]
                .get_or_insert_with(|| key.permuted(&pass_order(seed, n, r.pass, first_split).0));
            out.push(permuted.parity_range(r.start as usize, r.end as usize));
        }
        self.disclosed += ranges.len() as u64;
        Ok(out)
    }

    /// Parity bits disclosed so far.
    pub fn disclosed_bits(&self) -> u64 {
        self.disclosed
    }

    pub fn into_key(self) -> PackedBits {
        self.key
    }
}

#[derive(Debug)]
struct Pass {
    perm: Vec<u32>,
    pos: Vec<u32>,
    /// Bob's current key in this pass's order (kept in step with `flip`).
    permuted: PackedBits,
    block: usize,
    alice: Vec<bool>,
    bob: Vec<bool>,
    odd: usize,
    known: KnownParities,
}

#[derive(Debug, Clone, Copy)]
struct Search {
    pass: usize,
    lo: usize,
    hi: usize,
    parity: bool,
}

#[derive(Debug)]
enum Pending {
    Blocks { pass: usize, asked: usize },
    Bisect { asked: Vec<usize> },
    Done,
}

/// Alice's known parities of one pass, by range (`key_of`).
type KnownParities = HashMap<u64, bool, BuildHasherDefault<RangeHasher>>;

/// A multiply-xorshift hash for range keys. Bob derives the keys himself
/// (Alice's answers are only the values), so nobody can choose colliding
/// keys, and SipHash's protection is not needed.
#[derive(Debug, Default, Clone, Copy)]
struct RangeHasher(u64);

impl Hasher for RangeHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, x: u64) {
        let h = (self.0 ^ x ^ (x >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = h ^ (h >> 32);
    }
}

fn key_of(lo: usize, hi: usize) -> u64 {
    ((lo as u64) << 32) | hi as u64
}

/// Bob's half: corrects his key by asking Alice for parities.
#[derive(Debug)]
pub struct CascadeBob {
    key: PackedBits,
    seed: [u8; 32],
    sizes: Vec<usize>,
    /// The first pass ordered by a random split ([`pass_order`]).
    first_split: u16,
    passes: Vec<Pass>,
    searches: Vec<Search>,
    pending: Pending,
    total_parity: Option<bool>,
    asked: u64,
    rounds: u64,
    flips: u64,
}

impl CascadeBob {
    /// Prepares to correct `key`, given the estimated QBER, and returns the first query.
    pub fn start(
        key: PackedBits,
        qber_estimate: f64,
        seed: [u8; 32],
        config: &CascadeConfig,
    ) -> Result<(Self, Vec<ParityRange>), QkdError> {
        config.validate()?;
        if key.is_empty() || key.len() > u32::MAX as usize / 2 {
            return Err(QkdError::InvalidParameter(format!(
                "cascade needs 1 to {} key bits, not {}",
                u32::MAX / 2,
                key.len()
            )));
        }
        let sizes = config.block_sizes(key.len(), qber_estimate);
        let mut bob = Self {
            key,
            seed,
            sizes,
            first_split: config.first_split_pass(),
            passes: Vec::new(),
            searches: Vec::new(),
            pending: Pending::Done,
            total_parity: None,
            asked: 0,
            rounds: 0,
            flips: 0,
        };
        let q = bob.open_pass();
        Ok((bob, q))
    }

    fn open_pass(&mut self) -> Vec<ParityRange> {
        let p = self.passes.len();
        let n = self.key.len();
        let (perm, split_block) = pass_order(&self.seed, n, p as u16, self.first_split);
        let block = split_block.unwrap_or(self.sizes[p]);
        let mut pos = vec![0u32; n];
        for (j, &i) in perm.iter().enumerate() {
            pos[i as usize] = j as u32;
        }
        let blocks = n.div_ceil(block);
        let permuted = self.key.permuted(&perm);
        let bob: Vec<bool> = (0..blocks)
            .map(|b| permuted.parity_range(b * block, ((b + 1) * block).min(n)))
            .collect();
        let asked = if self.total_parity.is_some() && blocks > 1 {
            blocks - 1
        } else {
            blocks
        };
        let query = (0..asked)
            .map(|b| ParityRange {
                pass: p as u16,
                start: (b * block) as u32,
                end: ((b + 1) * block).min(n) as u32,
            })
            .collect();
        self.passes.push(Pass {
            perm,
            pos,
            permuted,
            block,
            alice: vec![false; blocks],
            bob,
            odd: 0,
            known: KnownParities::default(),
        });
        self.pending = Pending::Blocks { pass: p, asked };
        self.asked += asked as u64;
        self.rounds += 1;
        query
    }

    /// Takes Alice's reply; returns the next query, or `None` when Cascade is finished.
    pub fn on_reply(
        &mut self,
        parities: &PackedBits,
    ) -> Result<Option<Vec<ParityRange>>, QkdError> {
        match std::mem::replace(&mut self.pending, Pending::Done) {
            Pending::Done => {
                return Err(QkdError::UnexpectedMessage {
                    message: "CascadeReply",
                    phase: "cascade finished",
                });
            }
            Pending::Blocks { pass, asked } => {
                if parities.len() != asked {
                    return Err(QkdError::Malformed(format!(
                        "{} parities for {asked} blocks",
                        parities.len()
                    )));
                }
                let p = &mut self.passes[pass];
                for (b, a) in p.alice.iter_mut().take(asked).enumerate() {
                    *a = parities.get_unchecked_len(b);
                }
                if asked < p.alice.len() {
                    let total = self.total_parity.unwrap_or(false);
                    let others = p.alice[..asked].iter().fold(false, |a, &b| a ^ b);
                    p.alice[asked] = total ^ others;
                }
                if pass == 0 {
                    self.total_parity = Some(p.alice.iter().fold(false, |a, &b| a ^ b));
                }
                p.odd = p.alice.iter().zip(&p.bob).filter(|(a, b)| a != b).count();
            }
            Pending::Bisect { asked } => {
                if parities.len() != asked.len() {
                    return Err(QkdError::Malformed(format!(
                        "{} parities for {} bisection queries",
                        parities.len(),
                        asked.len()
                    )));
                }
                for (j, &s) in asked.iter().enumerate() {
                    let srch = self.searches[s];
                    let mid = (srch.lo + srch.hi) / 2;
                    let left = parities.get_unchecked_len(j);
                    let known = &mut self.passes[srch.pass].known;
                    known.insert(key_of(srch.lo, mid), left);
                    known.insert(key_of(mid, srch.hi), left ^ srch.parity);
                }
            }
        }
        Ok(self.advance())
    }

    fn advance(&mut self) -> Option<Vec<ParityRange>> {
        loop {
            // Bisect every active search as far as known parities allow.
            let mut asked = Vec::new();
            let mut query = Vec::new();
            let mut s = 0;
            while s < self.searches.len() {
                let mut srch = self.searches[s];
                let mut resolved = false;
                loop {
                    if srch.hi - srch.lo == 1 {
                        let bit = self.passes[srch.pass].perm[srch.lo] as usize;
                        self.flip(bit);
                        resolved = true;
                        break;
                    }
                    let mid = (srch.lo + srch.hi) / 2;
                    let pass = &self.passes[srch.pass];
                    match pass.known.get(&key_of(srch.lo, mid)) {
                        Some(&left) => {
                            let bob_left = pass.permuted.parity_range(srch.lo, mid);
                            if bob_left != left {
                                srch.hi = mid;
                                srch.parity = left;
                            } else {
                                srch.lo = mid;
                                srch.parity ^= left;
                            }
                        }
                        None => {
                            query.push(ParityRange {
                                pass: srch.pass as u16,
                                start: srch.lo as u32,
                                end: mid as u32,
                            });
                            break;
                        }
                    }
                }
                if resolved {
                    self.searches.swap_remove(s);
                } else {
                    self.searches[s] = srch;
                    asked.push(s);
                    s += 1;
                }
            }
            if !query.is_empty() {
                self.asked += query.len() as u64;
                self.rounds += 1;
                self.pending = Pending::Bisect { asked };
                return Some(query);
            }
            // No search in flight: bisect every odd block of the lowest pass that has one.
            if let Some(pi) = self.passes.iter().position(|p| p.odd > 0) {
                let p = &self.passes[pi];
                let n = self.key.len();
                for (b, (a, o)) in p.alice.iter().zip(&p.bob).enumerate() {
                    if a != o {
                        self.searches.push(Search {
                            pass: pi,
                            lo: b * p.block,
                            hi: ((b + 1) * p.block).min(n),
                            parity: *a,
                        });
                    }
                }
                continue;
            }
            if self.passes.len() < self.sizes.len() {
                return Some(self.open_pass());
            }
            self.pending = Pending::Done;
            return None;
        }
    }

    fn flip(&mut self, bit: usize) {
        self.key.flip(bit);
        self.flips += 1;
        for p in &mut self.passes {
            p.permuted.flip(p.pos[bit] as usize);
            let b = p.pos[bit] as usize / p.block;
            p.bob[b] ^= true;
            if p.bob[b] == p.alice[b] {
                p.odd -= 1;
            } else {
                p.odd += 1;
            }
        }
    }

    /// Parity bits asked of Alice so far (each one is leaked).
    pub fn leaked_bits(&self) -> u64 {
        self.asked
    }

    /// Round trips so far.
    pub fn rounds(&self) -> u64 {
        self.rounds
    }

    /// Bits Bob has flipped.
    pub fn corrections(&self) -> u64 {
        self.flips
    }

    pub fn is_done(&self) -> bool {
        matches!(self.pending, Pending::Done)
    }

    /// The corrected key.
    pub fn into_key(self) -> PackedBits {
        self.key
    }
}

/// The outcome of running both halves in memory.
#[derive(Debug)]
pub struct Reconciled {
    pub corrected: PackedBits,
    pub leaked_bits: u64,
    pub rounds: u64,
}

/// Runs Cascade between two keys in memory (benchmarks, tests, the simulator's
/// efficiency sweep). The protocol state machines use the two halves directly.
pub fn reconcile(
    alice_key: PackedBits,
    bob_key: PackedBits,
    qber_estimate: f64,
    seed: [u8; 32],
    config: &CascadeConfig,
) -> Result<Reconciled, QkdError> {
    if alice_key.len() != bob_key.len() {
        return Err(QkdError::InvalidParameter(format!(
            "keys of {} and {} bits",
            alice_key.len(),
            bob_key.len()
        )));
    }
    let mut alice = CascadeAlice::new(alice_key, seed, config);
    let (mut bob, mut query) = CascadeBob::start(bob_key, qber_estimate, seed, config)?;
    loop {
        let reply = alice.answer(&query)?;
        match bob.on_reply(&reply)? {
            Some(q) => query = q,
            None => break,
        }
    }
    debug_assert_eq!(alice.disclosed_bits(), bob.leaked_bits());
    Ok(Reconciled {
        leaked_bits: alice.disclosed_bits(),
        rounds: bob.rounds(),
        corrected: bob.into_key(),
    })
}

#[cfg(test)]
mod tests;
