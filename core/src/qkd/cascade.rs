//! Error correction with Cascade, as two halves: Bob (who corrects his key and
//! drives the exchange) and Alice (who answers parity queries).
//!
//! The variant is the "optimized Cascade" of Martinez-Mateo, Pacher, Peev,
//! Ciurana and Martin (2015): first block size 0.73/QBER, twice that in the
//! second pass, half the key from the third pass on, 16 passes, each pass a
//! fresh public permutation. Two
//! savings are applied and every bit Alice discloses is still counted:
//! - block parity inference: from the second pass on, Alice's parity of the
//!   whole key is known, so the last block's parity is inferred, not asked;
//! - reuse of known parities: Alice's key never changes, so every range whose
//!   parity she has disclosed (and its sibling, inferred from the parent) is
//!   remembered and never asked again when a later cascade step revisits it.
//!
//! Searches run in rounds: all odd blocks of one pass are bisected in parallel
//! (they are disjoint), so a round trip carries many queries.

use std::collections::HashMap;

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
    /// First block size = this / estimated QBER (0.73 in the optimized variant).
    pub first_block_factor: f64,
}

impl Default for CascadeConfig {
    fn default() -> Self {
        Self {
            passes: 16,
            first_block_factor: 0.73,
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
        if !(self.first_block_factor > 0.0 && self.first_block_factor <= 10.0) {
            return Err(QkdError::InvalidParameter(format!(
                "cascade first_block_factor must be in (0, 10], not {}",
                self.first_block_factor
            )));
        }
        Ok(())
    }

    /// Block size of each pass for a key of `n` bits at estimated QBER `qber`.
    pub fn block_sizes(&self, n: usize, qber: f64) -> Vec<usize> {
        let half = n.div_ceil(2).max(1);
        let q = qber.max(1e-4);
        let k1 = ((self.first_block_factor / q).round() as usize).clamp(2, half.max(2));
        (0..self.passes)
            .map(|pass| {
                let k = match pass {
                    0 => k1,
                    1 => (2 * k1).min(half),
                    // From the third pass on, blocks of half the key: about one
                    // parity bit per pass (the other is inferred from the whole
                    // key's parity), where doubling would cost n/(4 k1) + ...
                    _ => half,
                };
                k.min(n.max(1))
            })
            .collect()
    }
}

fn permutation(seed: &[u8; 32], n: usize, pass: u16) -> Vec<u32> {
    if pass == 0 {
        (0..n as u32).collect()
    } else {
        PublicPrng::new(seed, "qward cascade permutation", u64::from(pass)).permutation(n)
    }
}

fn range_parity(key: &PackedBits, perm: &[u32], start: usize, end: usize) -> bool {
    let mut p = false;
    for &i in &perm[start..end] {
        p ^= key.get_unchecked_len(i as usize);
    }
    p
}

/// Alice's half: answers parity queries on her (reference) key.
#[derive(Debug)]
pub struct CascadeAlice {
    key: PackedBits,
    seed: [u8; 32],
    passes: u16,
    perms: Vec<Option<Vec<u32>>>,
    disclosed: u64,
}

impl CascadeAlice {
    pub fn new(key: PackedBits, seed: [u8; 32], config: &CascadeConfig) -> Self {
        Self {
            key,
            seed,
            passes: config.passes,
            perms: (0..config.passes).map(|_| None).collect(),
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
            let perm = self.perms[r.pass as usize]
                .get_or_insert_with(|| permutation(&self.seed, n, r.pass));
            out.push(range_parity(
                &self.key,
                perm,
                r.start as usize,
                r.end as usize,
            ));
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
    block: usize,
    alice: Vec<bool>,
    bob: Vec<bool>,
    odd: usize,
    known: HashMap<u64, bool>,
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

fn key_of(lo: usize, hi: usize) -> u64 {
    ((lo as u64) << 32) | hi as u64
}

/// Bob's half: corrects his key by asking Alice for parities.
#[derive(Debug)]
pub struct CascadeBob {
    key: PackedBits,
    seed: [u8; 32],
    sizes: Vec<usize>,
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
        let block = self.sizes[p];
        let perm = permutation(&self.seed, n, p as u16);
        let mut pos = vec![0u32; n];
        for (j, &i) in perm.iter().enumerate() {
            pos[i as usize] = j as u32;
        }
        let blocks = n.div_ceil(block);
        let bob: Vec<bool> = (0..blocks)
            .map(|b| range_parity(&self.key, &perm, b * block, ((b + 1) * block).min(n)))
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
            block,
            alice: vec![false; blocks],
            bob,
            odd: 0,
            known: HashMap::new(),
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
                            let bob_left = range_parity(&self.key, &pass.perm, srch.lo, mid);
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
