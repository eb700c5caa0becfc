//! A homomorphic multiset hash over the chain state's entries, so the state
//! root is updated per changed entry instead of re-encoding the whole state
//! every block.
//!
//! LtHash (Bellare and Micciancio 1997; Lewi, Kim, Maykov and Weis, "Securing
//! Update Propagation with Homomorphic Hashing", 2019): each entry is
//! expanded by blake3's extendable output to 1024 lanes of 16 bits, and the
//! multiset's hash is the lane-wise sum modulo 2^16. Adding or removing an
//! entry adds or subtracts its lanes; the 2 KiB sum is then hashed to 32
//! bytes for the header. 1024 lanes of 16 bits are the parameters the 2019
//! paper proposes (its lthash16); finding two multisets with one sum is a
//! short-vector problem in a lattice of that size, unlike a sum of 256-bit
//! hashes, which generalized-birthday attacks (Wagner 2002) break.

use super::hash::Hash;

/// Lanes of the accumulator.
pub const LANES: usize = 1024;
const KEY_CONTEXT: &str = "qward/state-entry/lthash/v1";

/// The lane-wise sum of every entry's expansion.
#[derive(Clone, PartialEq, Eq)]
pub struct LtHash(Box<[u16; LANES]>);

impl Default for LtHash {
    fn default() -> Self {
        LtHash(Box::new([0; LANES]))
    }
}

impl std::fmt::Debug for LtHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LtHash({})", self.digest().short())
    }
}

fn expand(entry: &[u8]) -> [u16; LANES] {
    let mut hasher = blake3::Hasher::new_derive_key(KEY_CONTEXT);
    hasher.update(entry);
    let mut bytes = [0u8; LANES * 2];
    hasher.finalize_xof().fill(&mut bytes);
    let mut lanes = [0u16; LANES];
    for (lane, pair) in lanes.iter_mut().zip(bytes.chunks_exact(2)) {
        *lane = u16::from_le_bytes([pair[0], pair[1]]);
    }
    lanes
}

impl LtHash {
    /// Adds one entry (its encoded key and value).
    pub fn add(&mut self, entry: &[u8]) {
        for (acc, x) in self.0.iter_mut().zip(expand(entry)) {
            *acc = acc.wrapping_add(x);
        }
    }

    /// Removes one entry added before.
    pub fn remove(&mut self, entry: &[u8]) {
        for (acc, x) in self.0.iter_mut().zip(expand(entry)) {
            *acc = acc.wrapping_sub(x);
        }
    }

    /// The 32-byte digest of the accumulator.
    pub fn digest(&self) -> Hash {
        let mut bytes = [0u8; LANES * 2];
        for (pair, lane) in bytes.chunks_exact_mut(2).zip(self.0.iter()) {
            pair.copy_from_slice(&lane.to_le_bytes());
        }
        Hash::digest("qward/state-entries/v1", &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_does_not_matter_and_removal_undoes_addition() {
        let mut a = LtHash::default();
        let mut b = LtHash::default();
        for e in [b"one".as_slice(), b"two", b"three"] {
            a.add(e);
        }
        for e in [b"three".as_slice(), b"one", b"two"] {
            b.add(e);
        }
        assert_eq!(a.digest(), b.digest());
        a.remove(b"two");
        assert_ne!(a.digest(), b.digest());
        let mut c = LtHash::default();
        c.add(b"one");
        c.add(b"three");
        assert_eq!(a, c);
        // A multiset: an entry added twice is not the entry added once.
        let mut d = c.clone();
        d.add(b"one");
        assert_ne!(d.digest(), c.digest());
        assert_ne!(LtHash::default().digest(), c.digest());
    }
}
