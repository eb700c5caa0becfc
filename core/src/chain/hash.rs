//! The 32-byte blake3 hash used for block, transaction and state ids, and the
//! Merkle root over a block's transactions.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A blake3 hash: block hash, transaction id, state root, record id.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    pub const ZERO: Hash = Hash([0; 32]);

    /// Hashes `bytes` under a domain tag, so hashes of different kinds never collide.
    pub fn digest(domain: &str, bytes: &[u8]) -> Hash {
        let mut h = blake3::Hasher::new();
        h.update(&(domain.len() as u64).to_le_bytes());
        h.update(domain.as_bytes());
        h.update(bytes);
        Hash(*h.finalize().as_bytes())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Option<Hash> {
        let bytes = hex::decode(s.trim()).ok()?;
        Some(Hash(bytes.try_into().ok()?))
    }

    /// The first 8 hex digits, for people.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.short())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

const LEAF: &str = "qward/merkle/leaf/v1";
const NODE: &str = "qward/merkle/node/v1";
const EMPTY: &str = "qward/merkle/empty/v1";

/// The Merkle root of `leaves` (binary tree; an odd node is promoted). Leaves
/// and inner nodes are hashed under different tags (no second-preimage trick).
pub fn merkle_root(leaves: &[Hash]) -> Hash {
    if leaves.is_empty() {
        return Hash::digest(EMPTY, &[]);
    }
    let mut level: Vec<Hash> = leaves.iter().map(|l| Hash::digest(LEAF, &l.0)).collect();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [a, b] => {
                    let mut buf = [0u8; 64];
                    buf[..32].copy_from_slice(&a.0);
                    buf[32..].copy_from_slice(&b.0);
                    Hash::digest(NODE, &buf)
                }
                [a] => *a,
                _ => Hash::ZERO,
            })
            .collect();
    }
    level.first().copied().unwrap_or(Hash::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merkle_root_depends_on_every_leaf_and_order() {
        let leaves: Vec<Hash> = (0..5u8).map(|i| Hash([i; 32])).collect();
        let root = merkle_root(&leaves);
        for i in 0..leaves.len() {
            let mut changed = leaves.clone();
            changed[i].0[0] ^= 1;
            assert_ne!(merkle_root(&changed), root);
        }
        let mut swapped = leaves.clone();
        swapped.swap(0, 1);
        assert_ne!(merkle_root(&swapped), root);
        assert_ne!(merkle_root(&leaves[..4]), root);
        assert_ne!(merkle_root(&[]), merkle_root(&leaves[..1]));
    }

    #[test]
    fn hex_round_trip() {
        let h = Hash::digest("t", b"x");
        assert_eq!(Hash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(Hash::from_hex("abc"), None);
    }
}
