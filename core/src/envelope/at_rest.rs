//! Records at rest: each stored record (outbox payload, inbox plaintext) is
//! encrypted with XChaCha20-Poly1305 under a key of its own, kept apart from
//! the record. Erasing that key erases the record (crypto-shredding), without
//! touching the ciphertext or the chain's anchor of it.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand_core::CryptoRng;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::{EnvelopeError, MAX_PAYLOAD_BYTES, RecordId, TAG_BYTES};

/// The associated-data context of a record at rest.
const AT_REST_CONTEXT: &[u8] = b"qward record at rest v1";

/// One record's storage key. Zeroized on drop, never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct AtRestKey([u8; 32]);

impl std::fmt::Debug for AtRestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AtRestKey(..)")
    }
}

impl AtRestKey {
    pub fn random<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut k = [0u8; 32];
        rng.fill_bytes(&mut k);
        AtRestKey(k)
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        AtRestKey(bytes)
    }

    /// The key bytes, to store (zeroized when dropped).
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0)
    }
}

fn aad(record: &RecordId) -> Vec<u8> {
    let mut a = AT_REST_CONTEXT.to_vec();
    a.extend_from_slice(&record.0);
    a
}

/// Encrypts `plaintext` of `record` under `key`: nonce (24 bytes) then
/// ciphertext and tag.
pub fn seal_at_rest<R: CryptoRng + ?Sized>(
    key: &AtRestKey,
    record: &RecordId,
    plaintext: &[u8],
    rng: &mut R,
) -> Result<Vec<u8>, EnvelopeError> {
    if plaintext.len() > MAX_PAYLOAD_BYTES {
        return Err(EnvelopeError::TooLarge {
            len: plaintext.len(),
            limit: MAX_PAYLOAD_BYTES,
        });
    }
    let mut nonce = [0u8; 24];
    rng.fill_bytes(&mut nonce);
    let ct = XChaCha20Poly1305::new(&Key::from(key.0))
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: &aad(record),
            },
        )
        .map_err(|_| EnvelopeError::TooLarge {
            len: plaintext.len(),
            limit: MAX_PAYLOAD_BYTES,
        })?;
    let mut out = Vec::with_capacity(24 + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Decrypts what [`seal_at_rest`] wrote for `record`.
pub fn open_at_rest(
    key: &AtRestKey,
    record: &RecordId,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    if sealed.len() < 24 + TAG_BYTES || sealed.len() > 24 + TAG_BYTES + MAX_PAYLOAD_BYTES {
        return Err(EnvelopeError::Tampered);
    }
    let (nonce, ct) = sealed.split_at(24);
    let mut n = [0u8; 24];
    n.copy_from_slice(nonce);
    XChaCha20Poly1305::new(&Key::from(key.0))
        .decrypt(
            &XNonce::from(n),
            Payload {
                msg: ct,
                aad: &aad(record),
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| EnvelopeError::Tampered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha12Rng;
    use rand_core::SeedableRng;

    #[test]
    fn round_trips_and_refuses_other_keys_records_and_changes() {
        let mut rng = ChaCha12Rng::seed_from_u64(1);
        let key = AtRestKey::random(&mut rng);
        let rec = RecordId([1; 16]);
        let sealed = seal_at_rest(&key, &rec, b"{\"resourceType\":\"Bundle\"}", &mut rng).unwrap();
        assert_eq!(
            &open_at_rest(&key, &rec, &sealed).unwrap()[..],
            b"{\"resourceType\":\"Bundle\"}"
        );
        let other = AtRestKey::random(&mut rng);
        assert!(open_at_rest(&other, &rec, &sealed).is_err());
        assert!(open_at_rest(&key, &RecordId([2; 16]), &sealed).is_err());
        let mut changed = sealed.clone();
        changed[30] ^= 1;
        assert!(open_at_rest(&key, &rec, &changed).is_err());
        assert!(open_at_rest(&key, &rec, &sealed[..10]).is_err());
        assert_eq!(format!("{key:?}"), "AtRestKey(..)");
    }
}
