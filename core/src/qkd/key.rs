//! The final secret key: zeroized on drop, never printed.

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::bits::PackedBits;

/// A QKD output key. `Debug` shows only its length.
#[derive(PartialEq, Eq)]
pub struct SecretKey {
    bits: PackedBits,
}

impl SecretKey {
    pub(crate) fn new(bits: PackedBits) -> Self {
        Self { bits }
    }

    /// Length in bits.
    pub fn len_bits(&self) -> usize {
        self.bits.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bits.is_empty()
    }

    /// The key bytes (little-endian words, the last one truncated to the length).
    pub fn to_bytes(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let mut out = Vec::with_capacity(self.bits.len().div_ceil(8));
        for w in self.bits.words() {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.truncate(self.bits.len().div_ceil(8));
        zeroize::Zeroizing::new(out)
    }

    /// The key as packed bits (for hashing it onward).
    pub fn bits(&self) -> &PackedBits {
        &self.bits
    }
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        self.bits.zeroize();
    }
}

impl ZeroizeOnDrop for SecretKey {}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({} bits, redacted)", self.bits.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_does_not_show_key_bits() {
        let k = SecretKey::new(PackedBits::from_bools(&[true, false, true, true]));
        let s = format!("{k:?}");
        assert!(s.contains("4 bits") && s.contains("redacted"));
        assert_eq!(k.to_bytes().as_slice(), &[0b1101]);
    }
}
