//! The delivery lifecycle of one sent record, as pure code: what each thing
//! that can happen to it does to its state. The node's delivery task does
//! the work (agrees a key, seals, sends, anchors) and asks [`step`] what
//! follows; nothing here does I/O or reads a clock.
//!
//! ```text
//! Queued --sealed--> Sent --receipt--> Delivered --anchored--> Anchored
//!   |  ^               |  ^                |
//!   |  '--(reseal,-----'  '-(no receipt,   '--anchor refused--> Failed
//!   |      later)            refused later)
//!   '--(not sealed yet: later)
//! Queued | Sent --policy refuses, refused for good--> Failed
//! ```
//!
//! A record waits between attempts for [`retry_delay_ms`]: doubling from
//! half a second to 30 s, with equal jitter. A recipient that no longer
//! holds the envelope's key asks for a reseal: the envelope is dropped,
//! every key with the recipient erased, and the record is `Queued` again,
//! to be sealed under a newly agreed key after the same backoff (a
//! recipient answering `Reseal` every time costs a key agreement per
//! backoff, not a stream of them). `Anchored` and `Failed` are final.

use crate::api::DeliveryState;

use super::policy::retry_delay_ms;
use super::wire::Retry;

/// What happened to a record in one step of its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Happened<'a> {
    /// The messaging policy refuses it now (checked before every attempt:
    /// a revoked consent or membership stops a queued record at once).
    PolicyRefused(&'a str),
    /// No key with the recipient yet, or sealing failed.
    NotSealed(&'a str),
    /// Sealed under a key; the detail names it.
    Sealed(&'a str),
    /// No valid receipt: the recipient not reached, its answer unreadable,
    /// or a receipt that does not verify against the envelope.
    NoReceipt(&'a str),
    /// A signed receipt that verifies against the envelope.
    Receipt,
    /// The recipient refused it, and said what the sender should do.
    Refused { reason: &'a str, retry: Retry },
    /// Its anchor is on the chain.
    Anchored,
    /// The chain refuses its anchor (a rule changed since it was delivered).
    AnchorRefused(&'a str),
}

/// The record after a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub state: DeliveryState,
    /// When to attempt it next (unix ms); `None` keeps the time it had.
    pub next_attempt_ms: Option<u64>,
    /// What the record's owner is shown.
    pub detail: String,
    /// Drop the stored envelope: it is sealed again, or never sent.
    pub drop_envelope: bool,
    /// Erase every key with the recipient before sealing again.
    pub erase_keys: bool,
}

/// A step that cannot happen in the record's state (a bug of the caller).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a record that is {state:?} cannot take {happened}")]
pub struct Illegal {
    pub state: DeliveryState,
    pub happened: String,
}

impl Step {
    fn to(state: DeliveryState, detail: String) -> Self {
        Step {
            state,
            next_attempt_ms: None,
            detail,
            drop_envelope: false,
            erase_keys: false,
        }
    }

    fn at(mut self, ms: u64) -> Self {
        self.next_attempt_ms = Some(ms);
        self
    }

    fn dropping_envelope(mut self) -> Self {
        self.drop_envelope = true;
        self
    }
}

/// What follows when `happened` to a record in `state` after `attempts`
/// delivery attempts, at `now_ms`; `random` is drawn uniformly by the
/// caller for the retry jitter.
pub fn step(
    state: DeliveryState,
    attempts: u32,
    happened: Happened<'_>,
    now_ms: u64,
    random: u64,
) -> Result<Step, Illegal> {
    use DeliveryState::{Anchored, Delivered, Failed, Queued, Sent};
    let later = || now_ms.saturating_add(retry_delay_ms(attempts, random));
    let step = match (state, happened) {
        (Queued | Sent, Happened::PolicyRefused(why)) => {
            Step::to(Failed, why.to_string()).dropping_envelope()
        }
        (Queued, Happened::NotSealed(why)) => {
            Step::to(Queued, format!("not sealed yet: {why}")).at(later())
        }
        (Queued, Happened::Sealed(detail)) => Step::to(Sent, detail.to_string()).at(now_ms),
        (Sent, Happened::NoReceipt(why)) => Step::to(Sent, why.to_string()).at(later()),
        (Sent, Happened::Receipt) => {
            Step::to(Delivered, "delivered; signed receipt received".into())
        }
        (Sent, Happened::Refused { reason, retry }) => match retry {
            Retry::Later => Step::to(Sent, format!("refused for now: {reason}")).at(later()),
            // After a backoff like any failed attempt: a recipient that
            // answers `Reseal` every time would otherwise make this node
            // run key agreement after key agreement (and audit each on the
            // chain) as fast as they complete.
            Retry::Reseal => Step {
                erase_keys: true,
                ..Step::to(Queued, format!("sealing again: {reason}"))
                    .at(later())
                    .dropping_envelope()
            },
            Retry::Never => Step::to(Failed, format!("refused by the recipient: {reason}")),
        },
        (Delivered, Happened::Anchored) => {
            Step::to(Anchored, "delivered; anchored on the chain".into())
        }
        (Delivered, Happened::AnchorRefused(why)) => Step::to(
            Failed,
            format!("delivered; the chain refuses its anchor: {why}"),
        ),
        (state, happened) => {
            return Err(Illegal {
                state,
                happened: format!("{happened:?}"),
            });
        }
    };
    Ok(step)
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;
