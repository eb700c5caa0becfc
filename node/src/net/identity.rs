//! Node key to libp2p identity: the keypair from the ed25519 seed, and `PeerId` <-> `AccountId`.
//!
//! A qward peer id is the libp2p peer id of the node's ed25519 key, which is also
//! its chain account, so membership on the chain maps one to one onto peer ids.
//! For ed25519 the peer id is an identity multihash of the protobuf-encoded
//! public key, so the account can be read back out of it.

use libp2p::PeerId;
use libp2p::identity::{Keypair, PublicKey, ed25519};
use qward_core::identity::{AccountId, Identity};
use zeroize::Zeroizing;

use super::NetError;

/// Multihash code of the identity hash (the digest is the input itself).
const IDENTITY_MULTIHASH: u64 = 0x00;

/// The libp2p keypair for a 32-byte ed25519 secret seed (the node key file).
pub fn keypair_from_seed(seed: &[u8; 32]) -> Result<Keypair, NetError> {
    // `ed25519_from_bytes` zeroizes the buffer it is given; ours is a copy
    // that is zeroized on drop as well.
    let mut copy = Zeroizing::new(*seed);
    Keypair::ed25519_from_bytes(&mut *copy).map_err(|_| NetError::InvalidKey)
}

/// The libp2p keypair for a node identity: same key, same account.
pub fn keypair_from_identity(identity: &Identity) -> Result<Keypair, NetError> {
    keypair_from_seed(&identity.secret_bytes())
}

/// The peer id of a chain account. Fails if the 32 bytes are not a valid
/// ed25519 public key (no one could ever authenticate as such a peer).
pub fn peer_id_from_account(account: &AccountId) -> Result<PeerId, NetError> {
    let key = ed25519::PublicKey::try_from_bytes(&account.0)
        .map_err(|_| NetError::InvalidAccount(account.to_hex()))?;
    Ok(PeerId::from_public_key(&PublicKey::from(key)))
}

/// The chain account of a peer id, if it is the peer id of an ed25519 key
/// (peer ids of other key types, or hashed ones, have no account).
pub fn account_from_peer_id(peer: &PeerId) -> Option<AccountId> {
    let multihash: &libp2p::multihash::Multihash<64> = peer.as_ref();
    if multihash.code() != IDENTITY_MULTIHASH {
        return None;
    }
    let key = PublicKey::try_decode_protobuf(multihash.digest()).ok()?;
    let key = key.try_into_ed25519().ok()?;
    Some(AccountId(key.to_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_id_of_seed_matches_the_chain_account_both_ways() {
        let seed = [7u8; 32];
        let identity = Identity::from_secret_bytes(&seed).expect("32-byte seed");
        let keypair = keypair_from_identity(&identity).expect("valid seed");
        let peer = keypair.public().to_peer_id();
        assert_eq!(
            peer_id_from_account(&identity.account()).expect("valid key"),
            peer
        );
        assert_eq!(account_from_peer_id(&peer), Some(identity.account()));
        assert_eq!(
            keypair_from_seed(&seed)
                .expect("valid seed")
                .public()
                .to_peer_id(),
            peer
        );
    }

    #[test]
    fn different_seeds_give_different_peers() {
        let a = keypair_from_seed(&[1; 32])
            .expect("seed")
            .public()
            .to_peer_id();
        let b = keypair_from_seed(&[2; 32])
            .expect("seed")
            .public()
            .to_peer_id();
        assert_ne!(a, b);
    }

    #[test]
    fn non_ed25519_peer_id_has_no_account() {
        // A hashed (sha256) peer id carries no key.
        let mut hashed = vec![0x12, 0x20];
        hashed.extend_from_slice(&[0xab; 32]);
        let peer = PeerId::from_bytes(&hashed).expect("valid sha256 peer id");
        assert_eq!(account_from_peer_id(&peer), None);
        // An identity multihash whose digest is not a protobuf public key.
        let peer = PeerId::from_bytes(&[0x00, 0x03, 1, 2, 3]).expect("valid identity peer id");
        assert_eq!(account_from_peer_id(&peer), None);
    }

    #[test]
    fn invalid_curve_point_is_refused() {
        // Not every 32-byte string is an ed25519 point; find one that is not.
        let bad = (0u8..=255)
            .map(|b| {
                let mut bytes = [b; 32];
                bytes[31] = 0xff;
                AccountId(bytes)
            })
            .find(|a| a.verifying_key().is_err())
            .expect("some byte pattern is not a curve point");
        assert!(matches!(
            peer_id_from_account(&bad),
            Err(NetError::InvalidAccount(_))
        ));
    }
}
