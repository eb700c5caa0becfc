//! The chain's errors: why a transaction, a certificate or a block was
//! rejected, and why the chain store failed. Messages name what to fix.

use crate::codec::CodecError;
use crate::identity::{AccountId, Role};
use crate::storage::StoreError;

use super::hash::Hash;

/// Why a transaction was rejected by the state machine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("{0} is not a registered patient")]
    NotPatient(AccountId),
    #[error(
        "an emergency declaration needs a reason of 1 to {max} bytes without control characters (public on the chain: no diagnosis)"
    )]
    BadEmergencyReason { max: usize },
    #[error(
        "an emergency declaration must expire after the block time ({block_time_ms}) and within {max_ms} ms of it; it says {expires_at_ms}"
    )]
    BadEmergencyExpiry {
        expires_at_ms: u64,
        block_time_ms: u64,
        max_ms: u64,
    },
    #[error("an access-log anchor must cover at least one entry")]
    EmptyAccessLog,
    #[error("a patient erases its own copies itself (`qward records erase`), without a request")]
    SelfErasureRequest,
    #[error("transaction is for chain {found}, this chain is {expected}")]
    WrongChain { expected: u64, found: u64 },
    #[error("transaction signature does not verify for author {0}")]
    BadSignature(AccountId),
    #[error(
        "nonce {found} from {author} is not the next one ({expected}): replayed or out of order"
    )]
    BadNonce {
        author: AccountId,
        expected: u64,
        found: u64,
    },
    #[error("author {0} is not a member of this chain")]
    UnknownAuthor(AccountId),
    #[error("author {0} has been revoked")]
    AuthorRevoked(AccountId),
    #[error("{action} needs a {needed} author, but {author} is a {actual}")]
    WrongRole {
        action: &'static str,
        needed: Role,
        actual: Role,
        author: AccountId,
    },
    #[error("{0} is already a member")]
    AlreadyMember(AccountId),
    #[error("{0} is not an active member")]
    NotMember(AccountId),
    #[error("{0} is a validator; remove it from the validator set before revoking it")]
    RevokeValidator(AccountId),
    #[error("{0} is already a validator")]
    AlreadyValidator(AccountId),
    #[error("{0} is not a validator")]
    NotValidator(AccountId),
    #[error("{0} is not an active hospital; only hospitals can validate")]
    ValidatorNotHospital(AccountId),
    #[error("validator power must be between 1 and {max}, got {found}")]
    BadPower { found: u64, max: u64 },
    #[error("block timing: {0}")]
    BadBlockTiming(String),
    #[error("the chain already has this block timing")]
    BlockTimingUnchanged,
    #[error("removing {0} would leave no validator")]
    LastValidator(AccountId),
    #[error("{0} already voted for this proposal")]
    AlreadyVoted(AccountId),
    #[error(
        "{0} is not a validator: admitting a hospital, changing the validator set and revoking \
         a member another hospital registered need votes from validators holding more than 2/3 \
         of the voting power"
    )]
    VoterNotValidator(AccountId),
    #[error("{0} is not a valid ed25519 public key")]
    BadKey(AccountId),
    #[error("a validator may have at most {max} open proposals; wait for some to pass or expire")]
    TooManyProposals { max: usize },
    #[error("a patient may hold at most {max} consents; revoke some first")]
    TooManyConsents { max: usize },
    #[error("consent expiry {expires_at_ms} is not after the block time {block_time_ms}")]
    ConsentExpiryInPast {
        expires_at_ms: u64,
        block_time_ms: u64,
    },
    #[error("a patient cannot grant consent to themselves")]
    SelfConsent,
    #[error("no consent for {grantee} with scope {scope} to revoke")]
    NoSuchConsent {
        grantee: AccountId,
        scope: &'static str,
    },
    #[error("record {0} is already anchored")]
    DuplicateAnchor(Hash),
    #[error("the author of a key-session audit must be one of its two distinct peers")]
    AuditAuthorNotPeer,
    #[error("QBER of {0} ppm is above 1,000,000 ppm (100%)")]
    QberOutOfRange(u32),
    #[error("key-session {0} is already audited")]
    DuplicateAudit(Hash),
    #[error("invalid evidence: {0}")]
    BadEvidence(String),
    #[error("this evidence is already on the chain")]
    DuplicateEvidence,
}

/// Why a commit certificate does not prove a block final.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("certificate is for height {found}, block is at {expected}")]
    WrongHeight { expected: u64, found: u64 },
    #[error("certificate signs block {found:?}, not this block {expected:?}")]
    WrongBlock { expected: Hash, found: Hash },
    #[error("certificate signer {0} is not in the validator set")]
    UnknownValidator(AccountId),
    #[error("certificate signers must be unique and sorted; {0} breaks that")]
    UnsortedOrDuplicate(AccountId),
    #[error("precommit signature of {0} does not verify")]
    BadSignature(AccountId),
    #[error("certificate has {have} of {total} voting power; more than 2/3 is needed")]
    NoQuorum { have: u64, total: u64 },
}

/// Why a block is not a valid next block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    #[error("block is at height {found}, expected {expected}")]
    WrongHeight { expected: u64, found: u64 },
    #[error("parent hash {found:?} is not the previous block {expected:?}")]
    WrongParent { expected: Hash, found: Hash },
    #[error("block time {found} ms is not after the parent's {parent} ms")]
    TimeNotIncreasing { parent: u64, found: u64 },
    #[error("block time {found} ms is too far ahead of local time {now} ms")]
    TimeInFuture { now: u64, found: u64 },
    #[error("proposer {found} is not the proposer for this height and round ({expected})")]
    WrongProposer {
        expected: AccountId,
        found: AccountId,
    },
    #[error("validator-set hash does not match the chain's validator set")]
    ValidatorSetHash,
    #[error("transactions root does not match the transactions")]
    TxRoot,
    #[error("state root does not match the state after the transactions")]
    StateRoot,
    #[error("block has {found} transactions; the limit is {max}")]
    TooManyTxs { found: usize, max: usize },
    #[error("transaction {index} ({id:?}) is invalid: {source}")]
    Tx {
        index: usize,
        id: Hash,
        #[source]
        source: TxError,
    },
    #[error("the certificate's round {cert_round} is before the block's round {block_round}")]
    CertBeforeProposal { cert_round: u32, block_round: u32 },
    #[error("commit certificate invalid: {0}")]
    Certificate(#[from] CertError),
}

/// Why the chain store failed.
#[derive(Debug, thiserror::Error)]
pub enum ChainStoreError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored {what} cannot be decoded: {source}")]
    Decode {
        what: String,
        #[source]
        source: CodecError,
    },
    #[error("the database holds no chain; initialise it from a genesis file first")]
    NotInitialised,
    #[error(
        "the database belongs to genesis {stored:?}, not {given:?}; use a fresh data directory"
    )]
    GenesisMismatch { stored: Hash, given: Hash },
    #[error("block {height} is missing from the database")]
    MissingBlock { height: u64 },
    #[error("block {height} is invalid: {source}")]
    InvalidBlock {
        height: u64,
        #[source]
        source: BlockError,
    },
    #[error("genesis is invalid: {0}")]
    InvalidGenesis(String),
}
