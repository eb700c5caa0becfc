//! Who may send which health record to whom, under the chain's membership
//! and consents at a given time: one rule set, checked by the sender before
//! it agrees a key or seals anything, and by the recipient before it stores
//! a record. Both read the same chain, so a sender refuses at once what its
//! recipient would refuse; they differ only when one of them is behind the
//! other on the chain, which [`Refusal::retry`] accounts for.
//!
//! The rules, in the order they are checked:
//! 1. a node does not send to itself;
//! 2. sender and recipient are active members, and the recipient is no
//!    auditor (auditors read the chain, never health records);
//! 3. the record is about a registered patient;
//! 4. a personal health record (PHR) comes from its patient (to any member
//!    but an auditor), or from a hospital: to the patient, or to a member
//!    the patient consented to for `Records`;
//! 5. a medical report comes from a doctor or a hospital: to the patient, or
//!    to a member the patient consented to for `Reports`.
//!
//! A consent counts while it has not expired at `now_ms`; `All` covers both
//! scopes. An emergency the recipient declared for the patient on the
//! chain (break-glass, `TxKind::DeclareEmergency`) counts as consent for
//! both scopes while it has not expired.

use crate::chain::{ChainState, ConsentScope};
use crate::identity::{AccountId, Role};

use super::RecordKind;
use super::wire::Retry;

/// One record's delivery, as the policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub kind: RecordKind,
    pub sender: AccountId,
    pub recipient: AccountId,
    /// Whom the record is about.
    pub patient: AccountId,
}

/// Why a delivery is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    ToSelf,
    SenderNotMember(AccountId),
    RecipientNotMember(AccountId),
    RecipientIsAuditor,
    NotAPatient(AccountId),
    PhrSender(Role),
    ReportSender(Role),
    NoConsent {
        patient: AccountId,
        recipient: AccountId,
        scope: ConsentScope,
    },
}

impl Refusal {
    /// What a recipient refusing with this tells the sender. What the chain
    /// grants (a consent, a membership, a patient's registration) may be
    /// missing only at the recipient so far (a block behind the sender, who
    /// checked it): the sender may try again, and does while its own chain
    /// still allows the delivery (it checks before every attempt). What no
    /// block can change (sending to oneself, an auditor as recipient, a
    /// role that never sends this kind) is final.
    pub fn retry(&self) -> Retry {
        match self {
            Refusal::NoConsent { .. }
            | Refusal::SenderNotMember(_)
            | Refusal::RecipientNotMember(_)
            | Refusal::NotAPatient(_) => Retry::Later,
            Refusal::ToSelf
            | Refusal::RecipientIsAuditor
            | Refusal::PhrSender(_)
            | Refusal::ReportSender(_) => Retry::Never,
        }
    }

    /// The reason in words, naming accounts with `name` (a node passes its
    /// contact names; `Display` uses short account ids).
    pub fn explain(&self, name: impl Fn(&AccountId) -> String) -> String {
        match self {
            Refusal::ToSelf => "a node does not send records to itself".into(),
            Refusal::SenderNotMember(a) => {
                format!("the sender {} is not an active member", name(a))
            }
            Refusal::RecipientNotMember(a) => {
                format!("the recipient {} is not an active member", name(a))
            }
            Refusal::RecipientIsAuditor => "auditors read the chain, not health records".into(),
            Refusal::NotAPatient(a) => format!("{} is not a registered patient", name(a)),
            Refusal::PhrSender(role) => format!(
                "a {role} does not send others' personal health records: only the patient or a hospital does"
            ),
            Refusal::ReportSender(role) => {
                format!("a {role} does not issue medical reports: only a doctor or a hospital does")
            }
            Refusal::NoConsent {
                patient,
                recipient,
                scope,
            } => format!(
                "no consent from patient {} for {} to receive their {}, and no emergency declared by {}",
                name(patient),
                name(recipient),
                match scope {
                    ConsentScope::Records => "records",
                    ConsentScope::Reports => "reports",
                    ConsentScope::All => "records and reports",
                },
                name(recipient)
            ),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.explain(|a| a.short()))
    }
}

impl std::error::Error for Refusal {}

/// Checks `delivery` against `state` at `now_ms` (see the module docs).
pub fn check(state: &ChainState, delivery: &Delivery, now_ms: u64) -> Result<(), Refusal> {
    let Delivery {
        kind,
        sender,
        recipient,
        patient,
    } = *delivery;
    if sender == recipient {
        return Err(Refusal::ToSelf);
    }
    let sender_role = state
        .role_of(&sender)
        .ok_or(Refusal::SenderNotMember(sender))?;
    match state.role_of(&recipient) {
        None => return Err(Refusal::RecipientNotMember(recipient)),
        Some(Role::Auditor) => return Err(Refusal::RecipientIsAuditor),
        Some(_) => {}
    }
    if state.role_of(&patient) != Some(Role::Patient) {
        return Err(Refusal::NotAPatient(patient));
    }
    let scope = match kind {
        RecordKind::Phr => {
            if sender == patient {
                return Ok(());
            }
            if sender_role != Role::Hospital {
                return Err(Refusal::PhrSender(sender_role));
            }
            ConsentScope::Records
        }
        RecordKind::Report => {
            if !matches!(sender_role, Role::Doctor | Role::Hospital) {
                return Err(Refusal::ReportSender(sender_role));
            }
            ConsentScope::Reports
        }
    };
    if recipient == patient
        || state.consent_allows(&patient, &recipient, scope, now_ms)
        || state.emergency_allows(&patient, &recipient, now_ms)
    {
        Ok(())
    } else {
        Err(Refusal::NoConsent {
            patient,
            recipient,
            scope,
        })
    }
}

/// The first wait between two delivery attempts.
pub const FIRST_RETRY_MS: u64 = 500;
/// The longest wait between two delivery attempts.
pub const MAX_RETRY_MS: u64 = 30_000;

/// How long to wait after failed attempt number `attempts` (1 for the
/// first): a base that doubles from [`FIRST_RETRY_MS`] up to
/// [`MAX_RETRY_MS`], of which a random part is waited ("equal jitter":
/// between half the base and all of it, `random` drawn uniformly by the
/// caller). Without the jitter every node that failed to reach a hospital
/// while it was down would retry it at the same moments.
pub fn retry_delay_ms(attempts: u32, random: u64) -> u64 {
    let base = (FIRST_RETRY_MS << attempts.saturating_sub(1).min(16)).min(MAX_RETRY_MS);
    let half = base / 2;
    half + random % (base - half + 1)
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
