//! The node's key hierarchy: one data-encryption key (`DataKey`) wraps every
//! key the node stores (session keys, per-record at-rest keys), and is itself
//! stored only sealed (`SealedDataKey`) under a key-encryption key derived
//! from a passphrase with Argon2id (RFC 9106). Changing the passphrase seals
//! the same data key again, so no stored record or key is touched.
//!
//! Wrapping is XChaCha20-Poly1305 with a random nonce; the associated data
//! names what is wrapped (a store key), so a wrapped key moved to another
//! slot does not open.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand_core::CryptoRng;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// The associated-data context of a wrapped key.
const WRAP_CONTEXT: &[u8] = b"qward wrapped key v1";
/// The first bytes of a sealed data key file.
const SEALED_MAGIC: &[u8; 8] = b"QWARDDEK";
const SEALED_VERSION: u8 = 1;
const NONCE_BYTES: usize = 24;
const TAG_BYTES: usize = 16;
const SALT_BYTES: usize = 16;
/// magic, version, three u32 parameters, salt, nonce, sealed key and tag.
const SEALED_BYTES: usize = 8 + 1 + 12 + SALT_BYTES + NONCE_BYTES + 32 + TAG_BYTES;
/// The shortest passphrase accepted for a new or changed passphrase.
pub const MIN_PASSPHRASE_CHARS: usize = 10;
/// The longest passphrase accepted (bytes), so a file or variable cannot
/// make the key derivation read without bound.
pub const MAX_PASSPHRASE_BYTES: usize = 1024;

/// Why a key could not be wrapped, unwrapped, sealed or opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VaultError {
    #[error("wrong passphrase: it does not open this node's data key")]
    WrongPassphrase,
    #[error(
        "a stored key does not open with this node's data key (the database belongs to another data key, or was changed)"
    )]
    Unwrap,
    #[error("the data key file is damaged or not a qward data key file: {0}")]
    BadFile(&'static str),
    #[error("the data key file asks for Argon2id parameters out of range: {0}")]
    BadParams(String),
    #[error("the passphrase is empty")]
    EmptyPassphrase,
    #[error("the passphrase is shorter than {MIN_PASSPHRASE_CHARS} characters")]
    ShortPassphrase,
    #[error("the passphrase is longer than {MAX_PASSPHRASE_BYTES} bytes")]
    LongPassphrase,
}

/// A passphrase, zeroized on drop and never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Passphrase(String);

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(..)")
    }
}

impl Passphrase {
    /// A passphrase to open an existing data key: anything non-empty and
    /// bounded.
    pub fn new(text: String) -> Result<Self, VaultError> {
        let p = Passphrase(text);
        if p.0.is_empty() {
            return Err(VaultError::EmptyPassphrase);
        }
        if p.0.len() > MAX_PASSPHRASE_BYTES {
            return Err(VaultError::LongPassphrase);
        }
        Ok(p)
    }

    /// A passphrase to seal a data key with: also at least
    /// [`MIN_PASSPHRASE_CHARS`] characters.
    pub fn new_for_sealing(text: String) -> Result<Self, VaultError> {
        let p = Self::new(text)?;
        if p.0.chars().count() < MIN_PASSPHRASE_CHARS {
            return Err(VaultError::ShortPassphrase);
        }
        Ok(p)
    }

    fn bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// The Argon2id cost of deriving the key-encryption key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    pub memory_kib: u32,
    pub passes: u32,
    pub lanes: u32,
}

impl KdfParams {
    /// RFC 9106's second recommended option: 64 MiB, 3 passes (one lane, as
    /// the derivation runs single-threaded).
    pub const RECOMMENDED: KdfParams = KdfParams {
        memory_kib: 64 * 1024,
        passes: 3,
        lanes: 1,
    };
    /// The most a data key file may ask for (1 GiB, 64 passes, 16 lanes): a
    /// damaged or hostile file cannot make opening take unbounded memory.
    const MAX: KdfParams = KdfParams {
        memory_kib: 1024 * 1024,
        passes: 64,
        lanes: 16,
    };

    fn argon2(&self) -> Result<argon2::Argon2<'static>, VaultError> {
        self.hasher(&[], &[])
    }

    /// Argon2id v1.3 with these costs, a 32-byte output and, for the
    /// RFC 9106 known answer only, a secret and associated data.
    fn hasher<'k>(&self, secret: &'k [u8], data: &[u8]) -> Result<argon2::Argon2<'k>, VaultError> {
        if self.memory_kib > Self::MAX.memory_kib
            || self.passes > Self::MAX.passes
            || self.lanes > Self::MAX.lanes
        {
            return Err(VaultError::BadParams(format!(
                "{} KiB, {} passes, {} lanes (at most {} KiB, {} passes, {} lanes)",
                self.memory_kib,
                self.passes,
                self.lanes,
                Self::MAX.memory_kib,
                Self::MAX.passes,
                Self::MAX.lanes
            )));
        }
        let bad = |e: argon2::Error| VaultError::BadParams(e.to_string());
        let mut builder = argon2::ParamsBuilder::new();
        builder
            .m_cost(self.memory_kib)
            .t_cost(self.passes)
            .p_cost(self.lanes)
            .output_len(32);
        if !data.is_empty() {
            builder.data(argon2::AssociatedData::new(data).map_err(bad)?);
        }
        let params = builder.build().map_err(bad)?;
        let (algorithm, version) = (argon2::Algorithm::Argon2id, argon2::Version::V0x13);
        if secret.is_empty() {
            Ok(argon2::Argon2::new(algorithm, version, params))
        } else {
            argon2::Argon2::new_with_secret(secret, algorithm, version, params).map_err(bad)
        }
    }
}

/// The node's data-encryption key. Zeroized on drop, never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DataKey([u8; 32]);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

fn wrap_aad(label: &[u8]) -> Vec<u8> {
    [WRAP_CONTEXT, label].concat()
}

impl DataKey {
    pub fn random<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut k = [0u8; 32];
        rng.fill_bytes(&mut k);
        DataKey(k)
    }

    /// The key bytes, for tests that look for them in files.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0)
    }

    /// Wraps `secret`, stored under `label`: nonce, then ciphertext and tag.
    pub fn wrap<R: CryptoRng + ?Sized>(&self, label: &[u8], secret: &[u8], rng: &mut R) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_BYTES];
        rng.fill_bytes(&mut nonce);
        let aad = wrap_aad(label);
        // Encryption of an in-memory buffer fails only beyond 256 GiB.
        let ct = XChaCha20Poly1305::new(&Key::from(self.0))
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: secret,
                    aad: &aad,
                },
            )
            .unwrap_or_default();
        [&nonce[..], &ct].concat()
    }

    /// Opens what [`DataKey::wrap`] made under the same `label`.
    pub fn unwrap(&self, label: &[u8], wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        if wrapped.len() < NONCE_BYTES + TAG_BYTES {
            return Err(VaultError::Unwrap);
        }
        let (nonce, ct) = wrapped.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| VaultError::Unwrap)?;
        let aad = wrap_aad(label);
        XChaCha20Poly1305::new(&Key::from(self.0))
            .decrypt(&XNonce::from(nonce), Payload { msg: ct, aad: &aad })
            .map(Zeroizing::new)
            .map_err(|_| VaultError::Unwrap)
    }

    /// Seals this key under a key-encryption key derived from `passphrase`
    /// with a fresh salt.
    pub fn seal<R: CryptoRng + ?Sized>(
        &self,
        passphrase: &Passphrase,
        params: KdfParams,
        rng: &mut R,
    ) -> Result<SealedDataKey, VaultError> {
        let mut salt = [0u8; SALT_BYTES];
        rng.fill_bytes(&mut salt);
        let mut nonce = [0u8; NONCE_BYTES];
        rng.fill_bytes(&mut nonce);
        let header = header(params, &salt);
        let kek = derive_kek(passphrase, params, &salt)?;
        let ct = XChaCha20Poly1305::new(&Key::from(*kek))
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &self.0,
                    aad: &header,
                },
            )
            .map_err(|_| VaultError::BadFile("cannot seal"))?;
        let mut sealed = [0u8; 32 + TAG_BYTES];
        sealed.copy_from_slice(&ct);
        Ok(SealedDataKey {
            params,
            salt,
            nonce,
            sealed,
        })
    }
}

fn derive_kek(
    passphrase: &Passphrase,
    params: KdfParams,
    salt: &[u8; SALT_BYTES],
) -> Result<Zeroizing<[u8; 32]>, VaultError> {
    let mut kek = Zeroizing::new([0u8; 32]);
    params
        .argon2()?
        .hash_password_into(passphrase.bytes(), salt, &mut kek[..])
        .map_err(|e| VaultError::BadParams(e.to_string()))?;
    Ok(kek)
}

/// The bytes the seal authenticates besides the key: magic, version, the
/// Argon2id parameters and the salt (so none can be changed in the file).
fn header(params: KdfParams, salt: &[u8; SALT_BYTES]) -> Vec<u8> {
    let mut h = Vec::with_capacity(8 + 1 + 12 + SALT_BYTES);
    h.extend_from_slice(SEALED_MAGIC);
    h.push(SEALED_VERSION);
    h.extend_from_slice(&params.memory_kib.to_le_bytes());
    h.extend_from_slice(&params.passes.to_le_bytes());
    h.extend_from_slice(&params.lanes.to_le_bytes());
    h.extend_from_slice(salt);
    h
}

/// A data key sealed under a passphrase: what `keys/data.key` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedDataKey {
    pub params: KdfParams,
    salt: [u8; SALT_BYTES],
    nonce: [u8; NONCE_BYTES],
    sealed: [u8; 32 + TAG_BYTES],
}

impl SealedDataKey {
    /// Derives the key-encryption key from `passphrase` and opens the data
    /// key; a wrong passphrase is [`VaultError::WrongPassphrase`].
    pub fn open(&self, passphrase: &Passphrase) -> Result<DataKey, VaultError> {
        let kek = derive_kek(passphrase, self.params, &self.salt)?;
        let header = header(self.params, &self.salt);
        let plain = Zeroizing::new(
            XChaCha20Poly1305::new(&Key::from(*kek))
                .decrypt(
                    &XNonce::from(self.nonce),
                    Payload {
                        msg: &self.sealed,
                        aad: &header,
                    },
                )
                .map_err(|_| VaultError::WrongPassphrase)?,
        );
        let mut k = [0u8; 32];
        k.copy_from_slice(&plain);
        Ok(DataKey(k))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = header(self.params, &self.salt);
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&self.sealed);
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, VaultError> {
        if bytes.len() != SEALED_BYTES {
            return Err(VaultError::BadFile("wrong length"));
        }
        if &bytes[..8] != SEALED_MAGIC {
            return Err(VaultError::BadFile("no QWARDDEK header"));
        }
        if bytes[8] != SEALED_VERSION {
            return Err(VaultError::BadFile("unknown version"));
        }
        let u32_at = |at: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&bytes[at..at + 4]);
            u32::from_le_bytes(b)
        };
        let params = KdfParams {
            memory_kib: u32_at(9),
            passes: u32_at(13),
            lanes: u32_at(17),
        };
        params.argon2()?;
        let mut salt = [0u8; SALT_BYTES];
        salt.copy_from_slice(&bytes[21..21 + SALT_BYTES]);
        let at = 21 + SALT_BYTES;
        let mut nonce = [0u8; NONCE_BYTES];
        nonce.copy_from_slice(&bytes[at..at + NONCE_BYTES]);
        let mut sealed = [0u8; 32 + TAG_BYTES];
        sealed.copy_from_slice(&bytes[at + NONCE_BYTES..]);
        Ok(SealedDataKey {
            params,
            salt,
            nonce,
            sealed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    /// Cheap parameters: the tests check the construction, not the cost.
    const FAST: KdfParams = KdfParams {
        memory_kib: 64,
        passes: 1,
        lanes: 1,
    };

    fn pass(s: &str) -> Passphrase {
        Passphrase::new(s.to_string()).unwrap()
    }

    #[test]
    fn argon2id_matches_rfc9106_test_vector() {
        // RFC 9106 section 5.3: Argon2id v1.3, 32 KiB, 3 passes, 4 lanes.
        let p = KdfParams {
            memory_kib: 32,
            passes: 3,
            lanes: 4,
        };
        let mut out = [0u8; 32];
        p.hasher(&[0x03; 8], &[0x04; 12])
            .unwrap()
            .hash_password_into(&[0x01; 32], &[0x02; 16], &mut out)
            .unwrap();
        assert_eq!(
            hex::encode(out),
            "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659"
        );
    }

    #[test]
    fn the_right_passphrase_opens_the_data_key_and_a_wrong_one_does_not() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let dek = DataKey::random(&mut rng);
        let sealed = dek
            .seal(&pass("correct horse battery"), FAST, &mut rng)
            .unwrap();
        let bytes = sealed.to_bytes();
        let back = SealedDataKey::from_bytes(&bytes).unwrap();
        assert_eq!(back, sealed);
        let opened = back.open(&pass("correct horse battery")).unwrap();
        assert_eq!(*opened.to_bytes(), *dek.to_bytes());
        assert_eq!(
            back.open(&pass("correct horse batterY")).unwrap_err(),
            VaultError::WrongPassphrase
        );
        // The file never holds the key's bytes.
        let key = dek.to_bytes();
        assert!(!bytes.windows(32).any(|w| w == &key[..]));
    }

    #[test]
    fn a_changed_byte_anywhere_in_the_file_is_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let dek = DataKey::random(&mut rng);
        let p = pass("a long enough passphrase");
        let bytes = dek.seal(&p, FAST, &mut rng).unwrap().to_bytes();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            let opened = SealedDataKey::from_bytes(&bad).and_then(|s| s.open(&p));
            assert!(opened.is_err(), "byte {i} changed and still opened");
        }
        assert!(SealedDataKey::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        assert!(SealedDataKey::from_bytes(&[]).is_err());
    }

    #[test]
    fn a_file_asking_for_unbounded_memory_is_refused_before_deriving() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let dek = DataKey::random(&mut rng);
        let mut bytes = dek
            .seal(&pass("a long enough passphrase"), FAST, &mut rng)
            .unwrap()
            .to_bytes();
        bytes[9..13].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = SealedDataKey::from_bytes(&bytes).unwrap_err();
        assert!(matches!(err, VaultError::BadParams(_)), "{err}");
    }

    #[test]
    fn resealing_under_a_new_passphrase_keeps_the_same_data_key() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let dek = DataKey::random(&mut rng);
        let old = dek
            .seal(&pass("the old passphrase"), FAST, &mut rng)
            .unwrap();
        let opened = old.open(&pass("the old passphrase")).unwrap();
        let new = opened
            .seal(&pass("the new passphrase"), FAST, &mut rng)
            .unwrap();
        assert_eq!(
            *new.open(&pass("the new passphrase")).unwrap().to_bytes(),
            *dek.to_bytes()
        );
        assert!(new.open(&pass("the old passphrase")).is_err());
    }

    #[test]
    fn a_wrapped_key_opens_only_under_its_label_and_data_key() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let dek = DataKey::random(&mut rng);
        let other = DataKey::random(&mut rng);
        let secret = [0x5a; 32];
        let wrapped = dek.wrap(b"slot-1", &secret, &mut rng);
        assert!(!wrapped.windows(32).any(|w| w == secret));
        assert_eq!(&dek.unwrap(b"slot-1", &wrapped).unwrap()[..], &secret);
        assert_eq!(
            dek.unwrap(b"slot-2", &wrapped).unwrap_err(),
            VaultError::Unwrap
        );
        assert_eq!(
            other.unwrap(b"slot-1", &wrapped).unwrap_err(),
            VaultError::Unwrap
        );
        assert_eq!(
            dek.unwrap(b"slot-1", &wrapped[..10]).unwrap_err(),
            VaultError::Unwrap
        );
    }

    #[test]
    fn passphrase_rules() {
        assert_eq!(
            Passphrase::new(String::new()).unwrap_err(),
            VaultError::EmptyPassphrase
        );
        assert_eq!(
            Passphrase::new_for_sealing("short".into()).unwrap_err(),
            VaultError::ShortPassphrase
        );
        assert_eq!(
            Passphrase::new("x".repeat(MAX_PASSPHRASE_BYTES + 1)).unwrap_err(),
            VaultError::LongPassphrase
        );
        assert!(Passphrase::new_for_sealing("ten chars!".into()).is_ok());
        assert_eq!(format!("{:?}", pass("secret words")), "Passphrase(..)");
        let dek = DataKey::random(&mut ChaCha20Rng::seed_from_u64(6));
        assert_eq!(format!("{dek:?}"), "DataKey(..)");
    }
}
