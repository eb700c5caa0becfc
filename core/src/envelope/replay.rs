//! Replay rules for received envelopes: a pure decision over a seen-set that
//! the node keeps (and persists) for one acceptance window.
//!
//! An envelope is identified by its replay key, `blake3::derive_key("qward
//! replay v1", sender || record id || nonce)`. Envelopes whose creation time
//! lies outside the window are refused, so the node only has to remember the
//! keys of the last `max_age_ms` and may prune the rest
//! ([`ReplayPolicy::forget_after_ms`]). A duplicate is not an attack to
//! report but a retry whose receipt was lost: acknowledge it again, store
//! nothing.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::Envelope;
use crate::codec;

/// The blake3 context of a replay key.
pub const REPLAY_CONTEXT: &str = "qward replay v1";

/// The identity of one delivery, for the seen-set.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReplayKey(pub [u8; 32]);

impl ReplayKey {
    pub fn of(envelope: &Envelope) -> Self {
        let material = codec::encode_infallible(&(
            &envelope.sender,
            &envelope.header.record_id,
            &envelope.nonce,
        ));
        ReplayKey(blake3::derive_key(REPLAY_CONTEXT, &material))
    }
}

impl fmt::Debug for ReplayKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReplayKey({}..)", hex::encode(&self.0[..8]))
    }
}

/// What to do with a received, authenticated envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayCheck {
    /// New: store it, remember the key until `forget_after_ms`, send a receipt.
    Fresh {
        key: ReplayKey,
        forget_after_ms: u64,
    },
    /// Seen before: send the receipt again, store nothing.
    Duplicate { key: ReplayKey },
    /// Created before the window opened: drop it (the sender re-seals).
    TooOld { age_ms: u64, max_age_ms: u64 },
    /// Created further in the future than clock skew explains: drop it.
    FromTheFuture { ahead_ms: u64, max_skew_ms: u64 },
}

/// The acceptance window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayPolicy {
    /// Oldest accepted envelope, by its `created_at_ms` (default 30 days:
    /// patients' devices go offline for long stretches).
    pub max_age_ms: u64,
    /// Largest accepted clock lead of the sender (default 5 minutes).
    pub max_future_skew_ms: u64,
}

impl Default for ReplayPolicy {
    fn default() -> Self {
        ReplayPolicy {
            max_age_ms: 30 * 24 * 60 * 60 * 1000,
            max_future_skew_ms: 5 * 60 * 1000,
        }
    }
}

impl ReplayPolicy {
    /// When the seen-set may forget this envelope: after that, its age alone
    /// refuses it.
    pub fn forget_after_ms(&self, envelope: &Envelope) -> u64 {
        envelope
            .header
            .created_at_ms
            .saturating_add(self.max_age_ms)
            .saturating_add(self.max_future_skew_ms)
    }

    /// Decides on `envelope` at `now_ms`, given whether the caller's seen-set
    /// holds a key. Call after [`super::open`] succeeded, so that forged
    /// envelopes never enter the seen-set.
    pub fn check(
        &self,
        envelope: &Envelope,
        now_ms: u64,
        seen: impl FnOnce(&ReplayKey) -> bool,
    ) -> ReplayCheck {
        let created = envelope.header.created_at_ms;
        if created > now_ms.saturating_add(self.max_future_skew_ms) {
            return ReplayCheck::FromTheFuture {
                ahead_ms: created - now_ms,
                max_skew_ms: self.max_future_skew_ms,
            };
        }
        let age_ms = now_ms.saturating_sub(created);
        if age_ms > self.max_age_ms {
            return ReplayCheck::TooOld {
                age_ms,
                max_age_ms: self.max_age_ms,
            };
        }
        let key = ReplayKey::of(envelope);
        if seen(&key) {
            ReplayCheck::Duplicate { key }
        } else {
            ReplayCheck::Fresh {
                key,
                forget_after_ms: self.forget_after_ms(envelope),
            }
        }
    }
}
