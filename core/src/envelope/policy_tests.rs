//! The messaging policy over every case: record kind × sender's role ×
//! recipient's role × whom the record is about × the patient's consent for
//! the recipient (none, `Records`, `Reports`, `All`, expired). The expected
//! outcome of each case comes from `expected`, the rules written as a table
//! of patterns in priority order, independent of `policy::check`'s code.

use super::{Delivery, MAX_RETRY_MS, Refusal, check, retry_delay_ms};
use crate::chain::testkit::TestChain;
use crate::chain::{ConsentGrant, ConsentScope, TxKind};
use crate::envelope::RecordKind;
use crate::envelope::wire::Retry;
use crate::identity::{AccountId, Identity, Role};

/// The parties of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Hospital,
    OtherHospital,
    Doctor,
    OtherDoctor,
    /// The patient most records are about.
    Patient,
    OtherPatient,
    Auditor,
    /// A key that is no member.
    Stranger,
}

const EVERYONE: [Who; 8] = [
    Who::Hospital,
    Who::OtherHospital,
    Who::Doctor,
    Who::OtherDoctor,
    Who::Patient,
    Who::OtherPatient,
    Who::Auditor,
    Who::Stranger,
];

/// The consent both patients gave every member that may hold one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Consent {
    None,
    Records,
    Reports,
    All,
    /// `All`, expired before the delivery.
    Expired,
}

const CONSENTS: [Consent; 5] = [
    Consent::None,
    Consent::Records,
    Consent::Reports,
    Consent::All,
    Consent::Expired,
];

/// What the rules say, as patterns in priority order:
/// (kind, sender, recipient, about, consent) -> outcome.
fn expected(kind: RecordKind, from: Who, to: Who, about: Who, consent: Consent) -> &'static str {
    use Who::*;
    let member = |w: Who| w != Stranger;
    let covers = |needed: Consent| consent == needed || consent == Consent::All;
    match (kind, from, to, about) {
        _ if from == to => "to-self",
        _ if !member(from) => "sender-not-member",
        _ if !member(to) => "recipient-not-member",
        (_, _, Auditor, _) => "recipient-auditor",
        (_, _, _, about) if !matches!(about, Patient | OtherPatient) => "not-a-patient",
        // A patient's own PHR goes to any member but an auditor.
        (RecordKind::Phr, from, _, about) if from == about => "ok",
        (RecordKind::Phr, Doctor | OtherDoctor | Patient | OtherPatient | Auditor, _, _) => {
            "phr-sender"
        }
        (RecordKind::Report, Patient | OtherPatient | Auditor, _, _) => "report-sender",
        // From here the sender may send this kind: to the patient, or under consent.
        (_, _, to, about) if to == about => "ok",
        (RecordKind::Phr, ..) if covers(Consent::Records) => "ok",
        (RecordKind::Report, ..) if covers(Consent::Reports) => "ok",
        _ => "no-consent",
    }
}

fn outcome(r: &Result<(), Refusal>) -> &'static str {
    match r {
        Ok(()) => "ok",
        Err(Refusal::ToSelf) => "to-self",
        Err(Refusal::SenderNotMember(_)) => "sender-not-member",
        Err(Refusal::RecipientNotMember(_)) => "recipient-not-member",
        Err(Refusal::RecipientIsAuditor) => "recipient-auditor",
        Err(Refusal::NotAPatient(_)) => "not-a-patient",
        Err(Refusal::PhrSender(_)) => "phr-sender",
        Err(Refusal::ReportSender(_)) => "report-sender",
        Err(Refusal::NoConsent { .. }) => "no-consent",
    }
}

fn copy(id: &Identity) -> Identity {
    match Identity::from_secret_bytes(id.secret_bytes().as_slice()) {
        Ok(k) => k,
        Err(e) => unreachable!("{e}"),
    }
}

/// A chain with every party and the consent `consent` from both patients to
/// every other member that may hold one; the accounts by `Who`.
fn world(consent: Consent) -> (TestChain, impl Fn(Who) -> AccountId) {
    let mut chain = TestChain::new(21, 4);
    let keys: Vec<Identity> = (0..5)
        .map(|_| {
            let i = chain.add_key(21);
            copy(&chain.keys[i])
        })
        .collect();
    let [doctor, other_doctor, other_patient, auditor, stranger] =
        [0, 1, 2, 3, 4].map(|i| copy(&keys[i]));
    for (key, role) in [
        (&doctor, Role::Doctor),
        (&other_doctor, Role::Doctor),
        (&other_patient, Role::Patient),
        (&auditor, Role::Auditor),
    ] {
        let tx = chain.sign_by(
            0,
            TxKind::RegisterMember {
                account: key.account(),
                role,
            },
        );
        assert_eq!(chain.apply_one(tx), Ok(None), "register {role}");
    }
    let patient = copy(&chain.patient);
    let accounts = [
        chain.keys[0].account(),
        chain.keys[1].account(),
        doctor.account(),
        other_doctor.account(),
        patient.account(),
        other_patient.account(),
        auditor.account(),
        stranger.account(),
    ];
    let now = chain.tip.time_ms;
    let scope = match consent {
        Consent::None => None,
        Consent::Records => Some((ConsentScope::Records, u64::MAX / 2)),
        Consent::Reports => Some((ConsentScope::Reports, u64::MAX / 2)),
        Consent::All => Some((ConsentScope::All, u64::MAX / 2)),
        Consent::Expired => Some((ConsentScope::All, now + 5_000)),
    };
    if let Some((scope, expires_at_ms)) = scope {
        for granter in [&patient, &other_patient] {
            for (i, grantee) in accounts.iter().enumerate() {
                let who = EVERYONE[i];
                if *grantee == granter.account() || matches!(who, Who::Auditor | Who::Stranger) {
                    continue;
                }
                let tx = chain.sign(
                    granter,
                    TxKind::GrantConsent(ConsentGrant {
                        grantee: *grantee,
                        scope,
                        expires_at_ms,
                    }),
                );
                assert_eq!(chain.apply_one(tx), Ok(None), "consent for {who:?}");
            }
        }
    }
    let account = move |w: Who| accounts[EVERYONE.iter().position(|&e| e == w).unwrap_or(0)];
    (chain, account)
}

#[test]
fn every_role_kind_and_consent_case_follows_the_rules() {
    let mut cases = 0;
    let mut allowed = 0;
    for consent in CONSENTS {
        let (chain, account) = world(consent);
        // Well after the expired consent's end, well before the others'.
        let now = chain.tip.time_ms + 60_000;
        for kind in [RecordKind::Phr, RecordKind::Report] {
            for from in EVERYONE {
                for to in EVERYONE {
                    for about in [Who::Patient, Who::OtherPatient, Who::Doctor] {
                        let d = Delivery {
                            kind,
                            sender: account(from),
                            recipient: account(to),
                            patient: account(about),
                        };
                        let got = outcome(&check(&chain.state, &d, now));
                        let want = expected(kind, from, to, about, consent);
                        assert_eq!(
                            got, want,
                            "{kind:?} from {from:?} to {to:?} about {about:?} under {consent:?}"
                        );
                        cases += 1;
                        allowed += usize::from(want == "ok");
                    }
                }
            }
        }
    }
    assert_eq!(cases, 5 * 2 * 8 * 8 * 3);
    // The table is not all refusals (nor all allowed).
    assert!(allowed > 50 && allowed < cases / 2, "{allowed} of {cases}");
}

#[test]
fn the_cases_the_two_old_copies_disagreed_on_are_refused() {
    let (chain, account) = world(Consent::All);
    let now = chain.tip.time_ms + 1;
    // A doctor queueing a consented patient's PHR: no doctor sends PHRs.
    let phr_by_doctor = Delivery {
        kind: RecordKind::Phr,
        sender: account(Who::Doctor),
        recipient: account(Who::OtherHospital),
        patient: account(Who::Patient),
    };
    assert_eq!(
        check(&chain.state, &phr_by_doctor, now),
        Err(Refusal::PhrSender(Role::Doctor))
    );
    // A patient queueing a report: patients issue none.
    let report_by_patient = Delivery {
        kind: RecordKind::Report,
        sender: account(Who::Patient),
        recipient: account(Who::Doctor),
        patient: account(Who::Patient),
    };
    assert_eq!(
        check(&chain.state, &report_by_patient, now),
        Err(Refusal::ReportSender(Role::Patient))
    );
}

#[test]
fn a_report_about_a_patient_goes_only_to_the_patient_or_under_reports_consent() {
    let (chain, account) = world(Consent::Records);
    let now = chain.tip.time_ms + 1;
    let report = |to: Who| Delivery {
        kind: RecordKind::Report,
        sender: account(Who::Doctor),
        recipient: account(to),
        patient: account(Who::Patient),
    };
    assert_eq!(check(&chain.state, &report(Who::Patient), now), Ok(()));
    let refused = check(&chain.state, &report(Who::OtherDoctor), now);
    assert_eq!(
        refused,
        Err(Refusal::NoConsent {
            patient: account(Who::Patient),
            recipient: account(Who::OtherDoctor),
            scope: ConsentScope::Reports,
        })
    );
    // A missing consent may be missing only at the recipient so far.
    assert_eq!(refused.map_err(|e| e.retry()), Err(Retry::Later));
    let stranger = AccountId([0xee; 32]);
    assert_eq!(Refusal::SenderNotMember(stranger).retry(), Retry::Later);
    assert_eq!(Refusal::NotAPatient(stranger).retry(), Retry::Later);
    assert_eq!(Refusal::RecipientIsAuditor.retry(), Retry::Never);
    assert_eq!(Refusal::ReportSender(Role::Patient).retry(), Retry::Never);
    let (chain, account) = world(Consent::Reports);
    let report = Delivery {
        kind: RecordKind::Report,
        sender: account(Who::Doctor),
        recipient: account(Who::OtherDoctor),
        patient: account(Who::Patient),
    };
    assert_eq!(check(&chain.state, &report, now), Ok(()));
}

#[test]
fn retries_back_off_to_30_s_and_spread_over_the_upper_half() {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut draw = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for (attempts, base) in [(1, 500), (2, 1_000), (3, 2_000), (7, 30_000), (60, 30_000)] {
        let waits: Vec<u64> = (0..2_000)
            .map(|_| retry_delay_ms(attempts, draw()))
            .collect();
        let (lo, hi) = (waits.iter().min().copied(), waits.iter().max().copied());
        assert!(
            lo >= Some(base / 2) && hi <= Some(base),
            "attempt {attempts}: {lo:?}..{hi:?}"
        );
        // Spread: the draws cover most of [base/2, base], not one moment.
        let mut distinct = waits.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(
            distinct.len() > 200,
            "attempt {attempts}: {} distinct waits",
            distinct.len()
        );
        assert!(
            hi.unwrap_or(0) - lo.unwrap_or(0) > base * 2 / 5,
            "attempt {attempts}"
        );
    }
    assert_eq!(retry_delay_ms(1, 0), 250);
    assert!(retry_delay_ms(u32::MAX, u64::MAX) <= MAX_RETRY_MS);
}

#[test]
fn an_emergency_counts_as_consent_for_its_declarer_alone_until_it_expires() {
    use crate::chain::EmergencyAccess;
    let (mut chain, account) = world(Consent::None);
    let doctor_key = chain
        .keys
        .iter()
        .position(|k| k.account() == account(Who::Doctor))
        .expect("the doctor's key");
    let start = chain.tip.time_ms + 1;
    let expires = start + 60_000;
    let phr = |to: Who, about: Who| Delivery {
        kind: RecordKind::Phr,
        sender: account(Who::Hospital),
        recipient: account(to),
        patient: account(about),
    };
    // Before the declaration the hospital may not forward the PHR.
    assert_eq!(
        outcome(&check(&chain.state, &phr(Who::Doctor, Who::Patient), start)),
        "no-consent"
    );
    let tx = chain.sign_by(
        doctor_key,
        TxKind::DeclareEmergency(EmergencyAccess {
            patient: account(Who::Patient),
            reason: "unconscious in A&E".into(),
            expires_at_ms: expires,
        }),
    );
    assert_eq!(chain.apply_one(tx), Ok(None));
    let at = |d: Delivery, now: u64| outcome(&check(&chain.state, &d, now));
    assert_eq!(at(phr(Who::Doctor, Who::Patient), start), "ok");
    assert_eq!(at(phr(Who::Doctor, Who::Patient), expires - 1), "ok");
    // Reports too (the declaration covers both scopes).
    let report = Delivery {
        kind: RecordKind::Report,
        sender: account(Who::OtherDoctor),
        recipient: account(Who::Doctor),
        patient: account(Who::Patient),
    };
    assert_eq!(at(report, start), "ok");
    // Not another patient, not another doctor, not after it expires.
    assert_eq!(at(phr(Who::Doctor, Who::OtherPatient), start), "no-consent");
    assert_eq!(at(phr(Who::OtherDoctor, Who::Patient), start), "no-consent");
    assert_eq!(at(phr(Who::Doctor, Who::Patient), expires), "no-consent");
}
