//! Node identity: the ed25519 key that is both a node's libp2p peer id and its
//! chain account, the four roles, and signatures under domain-separation tags.

use std::fmt;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// What a member of the network is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// An authority: registers members, may validate blocks.
    Hospital,
    /// A clinician: receives records under consent, writes reports.
    Doctor,
    /// Owns their records and their consent.
    Patient,
    /// Syncs and verifies the chain; sends no records.
    Auditor,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Hospital, Role::Doctor, Role::Patient, Role::Auditor];

    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Hospital => "hospital",
            Role::Doctor => "doctor",
            Role::Patient => "patient",
            Role::Auditor => "auditor",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "hospital" => Ok(Role::Hospital),
            "doctor" => Ok(Role::Doctor),
            "patient" => Ok(Role::Patient),
            "auditor" => Ok(Role::Auditor),
            other => Err(format!(
                "unknown role '{other}': expected hospital, doctor, patient or auditor"
            )),
        }
    }
}

/// A chain account: an ed25519 public key (32 bytes). Same key as the peer id.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AccountId(pub [u8; 32]);

impl AccountId {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Result<Self, IdentityError> {
        let bytes = hex::decode(s.trim()).map_err(|_| IdentityError::BadAccountHex)?;
        let arr: [u8; 32] = bytes.try_into().map_err(|_| IdentityError::BadAccountHex)?;
        Ok(AccountId(arr))
    }

    /// The verifying key, if these bytes are a valid curve point.
    pub fn verifying_key(&self) -> Result<VerifyingKey, IdentityError> {
        VerifyingKey::from_bytes(&self.0).map_err(|_| IdentityError::BadPublicKey)
    }

    /// A short form for people: the first 8 hex digits.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

impl fmt::Debug for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountId({})", self.short())
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// An ed25519 signature (64 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Sig(#[serde(with = "sig_bytes")] pub [u8; 64]);

impl fmt::Debug for Sig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sig({}..)", hex::encode(&self.0[..4]))
    }
}

mod sig_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        let (a, b) = v.split_at(32);
        let a: [u8; 32] = a.try_into().map_err(serde::ser::Error::custom)?;
        let b: [u8; 32] = b.try_into().map_err(serde::ser::Error::custom)?;
        serde::Serialize::serialize(&(a, b), s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
        let (a, b): ([u8; 32], [u8; 32]) = Deserialize::deserialize(d)?;
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&a);
        out[32..].copy_from_slice(&b);
        Ok(out)
    }
}

/// Identity and signature failures.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    #[error("account id must be 64 hex digits (an ed25519 public key)")]
    BadAccountHex,
    #[error("bytes are not a valid ed25519 public key")]
    BadPublicKey,
    #[error("signature does not verify")]
    BadSignature,
    #[error("identity key file must hold exactly 32 bytes, found {0}")]
    BadKeyLength(usize),
}

/// A node's secret identity. The secret is zeroized on drop and never
/// printed: `Debug` shows only the public account.
pub struct Identity {
    signing: SigningKey,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("account", &self.account())
            .finish_non_exhaustive()
    }
}

impl Identity {
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Identity {
            signing: SigningKey::generate(rng),
        }
    }

    /// Restores an identity from its 32-byte secret seed.
    pub fn from_secret_bytes(bytes: &[u8]) -> Result<Self, IdentityError> {
        let seed: [u8; 32] = bytes
            .try_into()
            .map_err(|_| IdentityError::BadKeyLength(bytes.len()))?;
        let seed = Zeroizing::new(seed);
        Ok(Identity {
            signing: SigningKey::from_bytes(&seed),
        })
    }

    /// The 32-byte secret seed, for writing to the key file (mode 0600).
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signing.to_bytes())
    }

    pub fn account(&self) -> AccountId {
        AccountId(self.signing.verifying_key().to_bytes())
    }

    /// Signs `message` under `domain`: the signed bytes are
    /// `len(domain) || domain || message`, so a signature made for one purpose
    /// never verifies for another.
    pub fn sign(&self, domain: &str, message: &[u8]) -> Sig {
        Sig(self
            .signing
            .sign(&domain_separated(domain, message))
            .to_bytes())
    }
}

/// The bytes that are actually signed for `message` under `domain`.
pub fn domain_separated(domain: &str, message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + domain.len() + message.len());
    out.extend_from_slice(&(domain.len() as u64).to_le_bytes());
    out.extend_from_slice(domain.as_bytes());
    out.extend_from_slice(message);
    out
}

/// Verifies a signature made by [`Identity::sign`] (strict: no malleability).
pub fn verify(
    account: &AccountId,
    domain: &str,
    message: &[u8],
    sig: &Sig,
) -> Result<(), IdentityError> {
    let key = account.verifying_key()?;
    let sig = ed25519_dalek::Signature::from_bytes(&sig.0);
    key.verify_strict(&domain_separated(domain, message), &sig)
        .map_err(|_| IdentityError::BadSignature)
}

/// One signature to check in a batch: who signed, under which domain, what, and the signature.
#[derive(Debug, Clone, Copy)]
pub struct SignedItem<'a> {
    pub account: &'a AccountId,
    pub domain: &'a str,
    pub message: &'a [u8],
    pub sig: &'a Sig,
}

/// Verifies many signatures at once (ed25519 batch verification). Accepts
/// exactly what [`verify`] (`verify_strict`, cofactorless) accepts: weak
/// (small-order) keys and small-order `R` are refused up front as the strict
/// check does, and an item whose key or `R` has a torsion component (where
/// the cofactored batch equation and the cofactorless strict one can
/// disagree) is decided by the strict check alone; only items whose key and
/// `R` are in the prime-order subgroup, where the two equations agree, are
/// batched. On failure it falls back to one-by-one checks and returns the
/// index of the first bad signature, so a caller can name it.
pub fn verify_batch(items: &[SignedItem<'_>]) -> Result<(), (usize, IdentityError)> {
    if items.is_empty() {
        return Ok(());
    }
    let mut keys = Vec::with_capacity(items.len());
    let mut sigs = Vec::with_capacity(items.len());
    let mut messages = Vec::with_capacity(items.len());
    let mut batched = Vec::with_capacity(items.len());
    let mut key_torsion_free: std::collections::BTreeMap<&AccountId, bool> =
        std::collections::BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        let key = item.account.verifying_key().map_err(|e| (i, e))?;
        let Some(r) = r_point(item.sig) else {
            return Err((i, IdentityError::BadSignature));
        };
        if key.is_weak() || r.is_small_order() {
            return Err((i, IdentityError::BadSignature));
        }
        let key_ok = *key_torsion_free
            .entry(item.account)
            .or_insert_with(|| key.to_edwards().is_torsion_free());
        if !(key_ok && r.is_torsion_free()) {
            verify(item.account, item.domain, item.message, item.sig).map_err(|e| (i, e))?;
            continue;
        }
        keys.push(key);
        sigs.push(ed25519_dalek::Signature::from_bytes(&item.sig.0));
        messages.push(domain_separated(item.domain, item.message));
        batched.push(i);
    }
    if batched.is_empty() {
        return Ok(());
    }
    let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    if ed25519_dalek::verify_batch(&refs, &sigs, &keys).is_ok() {
        return Ok(());
    }
    for &i in &batched {
        if let Some(item) = items.get(i) {
            verify(item.account, item.domain, item.message, item.sig).map_err(|e| (i, e))?;
        }
    }
    // The batch failed but every single check passed: treat as invalid anyway
    // (cannot happen for honest signatures; refuse rather than guess).
    Err((
        batched.first().copied().unwrap_or(0),
        IdentityError::BadSignature,
    ))
}

fn r_point(sig: &Sig) -> Option<curve25519_dalek::edwards::EdwardsPoint> {
    let mut r = [0u8; 32];
    r.copy_from_slice(&sig.0[..32]);
    curve25519_dalek::edwards::CompressedEdwardsY(r).decompress()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn sign_verify_and_domain_separation() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let id = Identity::generate(&mut rng);
        let sig = id.sign("qward/test", b"hello");
        verify(&id.account(), "qward/test", b"hello", &sig).unwrap();
        assert_eq!(
            verify(&id.account(), "qward/other", b"hello", &sig),
            Err(IdentityError::BadSignature)
        );
        assert_eq!(
            verify(&id.account(), "qward/test", b"hellO", &sig),
            Err(IdentityError::BadSignature)
        );
        let other = Identity::generate(&mut rng);
        assert_eq!(
            verify(&other.account(), "qward/test", b"hello", &sig),
            Err(IdentityError::BadSignature)
        );
    }

    #[test]
    fn secret_round_trip_and_debug_hides_secret() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let id = Identity::generate(&mut rng);
        let back = Identity::from_secret_bytes(id.secret_bytes().as_slice()).unwrap();
        assert_eq!(back.account(), id.account());
        let dbg = format!("{id:?}");
        assert!(!dbg.contains(&hex::encode(id.secret_bytes().as_slice())));
        assert_eq!(
            Identity::from_secret_bytes(&[0; 31]).unwrap_err(),
            IdentityError::BadKeyLength(31)
        );
    }

    #[test]
    fn account_hex_round_trip() {
        let a = AccountId([0xab; 32]);
        assert_eq!(AccountId::from_hex(&a.to_hex()).unwrap(), a);
        assert!(AccountId::from_hex("zz").is_err());
        assert!(AccountId::from_hex("abab").is_err());
    }

    #[test]
    fn batch_verify_accepts_good_and_names_the_bad_one() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let ids: Vec<Identity> = (0..8).map(|_| Identity::generate(&mut rng)).collect();
        let accounts: Vec<AccountId> = ids.iter().map(Identity::account).collect();
        let msgs: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 10]).collect();
        let mut sigs: Vec<Sig> = ids
            .iter()
            .zip(&msgs)
            .map(|(id, m)| id.sign("qward/test", m))
            .collect();
        let items = |sigs: &[Sig]| -> Result<(), (usize, IdentityError)> {
            let items: Vec<SignedItem<'_>> = (0..8)
                .map(|i| SignedItem {
                    account: &accounts[i],
                    domain: "qward/test",
                    message: &msgs[i],
                    sig: &sigs[i],
                })
                .collect();
            verify_batch(&items)
        };
        items(&sigs).unwrap();
        sigs[5].0[40] ^= 1;
        assert_eq!(items(&sigs), Err((5, IdentityError::BadSignature)));
    }

    /// A signature whose `R` has a torsion component passes the cofactored
    /// batch equation but not the strict (cofactorless) check; so does one by
    /// a key with a torsion component. Both must get the strict answer.
    #[test]
    fn batch_verification_agrees_with_strict_on_torsion_components() {
        use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT as B, EIGHT_TORSION};
        use curve25519_dalek::scalar::Scalar;
        use sha2::{Digest, Sha512};

        let domain = "qward/test";
        let message = b"torsion".as_slice();
        let signed = domain_separated(domain, message);
        let scalar = |tag: &[u8]| Scalar::from_bytes_mod_order(*blake3::hash(tag).as_bytes());
        // s = r + H(R || A || M) a, with R and A as given (R = rB + t_r, A = aB + t_a).
        let forge = |t_r: usize, t_a: usize| -> (AccountId, Sig) {
            let (a, r) = (scalar(b"a"), scalar(b"r"));
            let public = (a * B + EIGHT_TORSION[t_a]).compress();
            let big_r = (r * B + EIGHT_TORSION[t_r]).compress();
            let mut h = Sha512::new();
            h.update(big_r.as_bytes());
            h.update(public.as_bytes());
            h.update(&signed);
            let k = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
            let s = r + k * a;
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(big_r.as_bytes());
            sig[32..].copy_from_slice(s.as_bytes());
            (AccountId(public.to_bytes()), Sig(sig))
        };
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let honest = Identity::generate(&mut rng);
        let honest_sig = honest.sign(domain, message);
        let honest_acc = honest.account();
        for (t_r, t_a) in [(0, 0), (1, 0), (4, 0), (0, 1), (0, 2), (3, 5)] {
            let (account, sig) = forge(t_r, t_a);
            let strict = verify(&account, domain, message, &sig);
            if (t_r, t_a) == (0, 0) {
                assert_eq!(strict, Ok(()), "the forge helper signs correctly");
            }
            if t_r != 0 && t_a == 0 {
                assert!(strict.is_err(), "strict accepted a torsion R");
            }
            let items = [
                SignedItem {
                    account: &honest_acc,
                    domain,
                    message,
                    sig: &honest_sig,
                },
                SignedItem {
                    account: &account,
                    domain,
                    message,
                    sig: &sig,
                },
            ];
            let batch = verify_batch(&items).map_err(|(_, e)| e);
            assert_eq!(
                batch, strict,
                "batch and strict disagree for torsion ({t_r}, {t_a})"
            );
        }
    }

    #[test]
    fn roles_parse() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("nurse".parse::<Role>().is_err());
    }
}
