//! Key-agreement sessions run in memory, through the wire encoding: equal
//! confirmed keys on a clean link, aborts with no key under Eve, and refusal
//! of tampered, foreign and out-of-policy messages.

use rand_chacha::ChaCha12Rng;
use rand_core::SeedableRng;

use super::initiator::InitiatorStep;
use super::responder::ResponderPolicy;
use super::*;
use crate::identity::Identity;
use crate::qkd::ProtocolParams;

fn params() -> ProtocolParams {
    ProtocolParams {
        qubits: 100_000,
        ..ProtocolParams::default()
    }
}

fn eve(fraction: f64) -> LinkModel {
    LinkModel {
        eve_fraction: fraction,
        ..LinkModel::default()
    }
}

struct Run {
    initiator: AgreementOutcome,
    responder: Option<AgreementOutcome>,
    requests: usize,
}

/// A messaging session from `from` to `to` on the default link, simulated
/// BB84: the initiator and its `Open`.
fn start(
    from: &Identity,
    to: &Identity,
    params: ProtocolParams,
    rng: &mut ChaCha12Rng,
) -> (Initiator, AgreeRequest) {
    Initiator::new(
        from,
        to.account(),
        params,
        LinkModel::default(),
        Purpose::Messaging,
        None,
        rng,
    )
    .unwrap()
}

/// A responder with the default link and policy answering `open` from `from`.
fn open_default(
    to: &Identity,
    from: &Identity,
    open: AgreeRequest,
    rng: &mut ChaCha12Rng,
) -> Result<(Responder, AgreeResponse), AgreeError> {
    Responder::open(
        to,
        from.account(),
        open,
        LinkModel::default(),
        ResponderPolicy::default(),
        None,
        rng,
    )
}

/// Carries one session between fresh identities through the codec, letting
/// `tamper` change each encoded request before the responder reads it.
fn run_with(
    seed: u64,
    link_i: LinkModel,
    link_r: LinkModel,
    mut tamper: impl FnMut(usize, &mut Vec<u8>),
) -> Run {
    let mut rng = ChaCha12Rng::seed_from_u64(seed);
    let alice_id = Identity::generate(&mut rng);
    let bob_id = Identity::generate(&mut rng);
    let (mut init, open) = Initiator::new(
        &alice_id,
        bob_id.account(),
        params(),
        link_i,
        Purpose::Messaging,
        None,
        &mut rng,
    )
    .unwrap();
    let open = AgreeRequest::decode(&open.encode().unwrap()).unwrap();
    let (mut resp, opened) = Responder::open(
        &bob_id,
        alice_id.account(),
        open,
        link_r,
        ResponderPolicy::default(),
        None,
        &mut rng,
    )
    .unwrap();
    let mut response = AgreeResponse::decode(&opened.encode().unwrap()).unwrap();
    let mut responder_outcome = None;
    let mut requests = 1;
    loop {
        match init.on_response(response, &mut rng) {
            InitiatorStep::Finished(outcome) => {
                return Run {
                    initiator: outcome,
                    responder: responder_outcome,
                    requests,
                };
            }
            InitiatorStep::Send(request) => {
                let mut bytes = request.encode().unwrap();
                tamper(requests, &mut bytes);
                requests += 1;
                assert!(requests < 10_000, "session does not end");
                let (r, outcome) = match AgreeRequest::decode(&bytes) {
                    Ok(req) => resp.on_request(req, &mut rng),
                    Err(e) => (
                        AgreeResponse::Refused {
                            reason: e.to_string(),
                        },
                        None,
                    ),
                };
                if outcome.is_some() {
                    responder_outcome = outcome;
                }
                response = AgreeResponse::decode(&r.encode().unwrap()).unwrap();
            }
        }
    }
}

fn run(seed: u64, link_i: LinkModel, link_r: LinkModel) -> Run {
    run_with(seed, link_i, link_r, |_, _| {})
}

#[test]
fn clean_link_gives_both_sides_the_same_confirmed_key() {
    let r = run(1, LinkModel::default(), LinkModel::default());
    let a = r.initiator.key.as_ref().expect("initiator key");
    let b = r
        .responder
        .as_ref()
        .and_then(|o| o.key.as_ref())
        .expect("responder key");
    assert_eq!(a.secret_bytes(), b.secret_bytes());
    assert_eq!(a.id(), b.id());
    assert!(r.initiator.report.final_key_bits >= 256);
    assert!(
        r.initiator.report.qber < 0.05,
        "{}",
        r.initiator.report.qber
    );
    let audit = r.initiator.audit();
    assert_eq!(audit.outcome, crate::chain::SessionOutcome::Established);
    assert_eq!(
        audit.key_length_bits as u64,
        r.initiator.report.final_key_bits
    );
    assert!(r.requests > 3);
}

#[test]
fn two_sessions_give_different_keys() {
    let a = run(2, LinkModel::default(), LinkModel::default());
    let b = run(3, LinkModel::default(), LinkModel::default());
    assert_ne!(
        a.initiator.key.unwrap().secret_bytes(),
        b.initiator.key.unwrap().secret_bytes()
    );
}

#[test]
fn eve_on_every_qubit_aborts_with_qber_near_a_quarter_and_no_key() {
    // Eve set at the responder's end is on the link for both.
    let r = run(4, LinkModel::default(), eve(1.0));
    assert_eq!(r.initiator.link.eve_fraction, 1.0);
    assert!(r.initiator.key.is_none());
    let resp = r.responder.expect("responder outcome");
    assert!(resp.key.is_none());
    let q = r.initiator.report.qber;
    assert!((q - 0.25).abs() < 0.04, "QBER {q}");
    assert!(r.initiator.report.eve_detected);
    let audit = r.initiator.audit();
    assert_eq!(audit.outcome, crate::chain::SessionOutcome::AbortedQber);
    assert_eq!(audit.key_length_bits, 0);
    assert!(audit.qber_ppm > 200_000);
}

#[test]
fn eve_on_half_the_qubits_aborts_too() {
    let r = run(5, eve(0.5), LinkModel::default());
    assert!(r.initiator.key.is_none());
    let q = r.initiator.report.qber;
    assert!((q - 0.125 - 0.01).abs() < 0.04, "QBER {q}");
    assert!(matches!(
        r.initiator.report.abort_reason,
        Some(crate::qkd::AbortReason::QberTooHigh { .. })
    ));
}

#[test]
fn a_changed_classical_message_fails_confirmation_not_silently() {
    // Flip one byte in the last request before Confirm (Alice's Amplify
    // message carries the Toeplitz seed): the keys differ, and confirmation
    // catches it on the responder, which refuses.
    let clean = run(6, LinkModel::default(), LinkModel::default());
    assert!(clean.initiator.key.is_some());
    // Requests are numbered from 1 (Open); the last is Confirm, before it Amplify.
    let amplify_index = clean.requests - 2;
    let r = run_with(6, LinkModel::default(), LinkModel::default(), |i, bytes| {
        if i == amplify_index {
            let n = bytes.len();
            bytes[n - 40] ^= 1;
        }
    });
    assert!(r.initiator.key.is_none(), "a key despite a changed message");
    assert!(r.responder.map(|o| o.key.is_none()).unwrap_or(true));
}

#[test]
fn responder_refuses_a_laxer_threshold_and_foreign_sessions() {
    let mut rng = ChaCha12Rng::seed_from_u64(7);
    let a = Identity::generate(&mut rng);
    let b = Identity::generate(&mut rng);
    let lax = ProtocolParams {
        max_qber: 0.2,
        ..params()
    };
    assert_start_refused_as_laxer(lax, &mut rng);

    // A message of another session is refused.
    let (mut init2, open2) = start(&a, &b, params(), &mut rng);
    let (mut resp2, opened2) = open_default(&b, &a, open2, &mut rng).unwrap();
    let InitiatorStep::Send(AgreeRequest::Qkd { msg, .. }) = init2.on_response(opened2, &mut rng)
    else {
        panic!("expected a Qkd request");
    };
    let foreign = AgreeRequest::Qkd {
        session: SessionId([9; 16]),
        msg,
    };
    let (answer, _) = resp2.on_request(foreign, &mut rng);
    assert!(matches!(answer, AgreeResponse::Refused { .. }));
}

#[test]
fn an_offer_signed_by_someone_else_is_refused() {
    let mut rng = ChaCha12Rng::seed_from_u64(8);
    let a = Identity::generate(&mut rng);
    let b = Identity::generate(&mut rng);
    let mallory = Identity::generate(&mut rng);
    // Mallory opens a session claiming to be... herself, but the carrier says a.
    let (_, open) = start(&mallory, &b, params(), &mut rng);
    let err = open_default(&b, &a, open, &mut rng).unwrap_err();
    assert!(matches!(err, AgreeError::Hybrid(_)), "{err}");
}

#[test]
fn the_effective_link_is_the_worse_of_both_ends() {
    let mut a = LinkModel::default();
    a.channel.distance_km = 30.0;
    let mut b = LinkModel::default();
    b.channel.misalignment = 0.03;
    b.eve_fraction = 0.25;
    let c = a.combine(&b);
    assert_eq!(c.channel.distance_km, 30.0);
    assert_eq!(c.channel.misalignment, 0.03);
    assert_eq!(c.eve_fraction, 0.25);
    assert_eq!(c, b.combine(&a));
    let bad = LinkModel {
        eve_fraction: 1.5,
        ..LinkModel::default()
    };
    assert!(bad.validate().is_err());
}

#[test]
fn garbage_never_panics_the_decoders() {
    for len in 0..64usize {
        let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + len) as u8).collect();
        let _ = AgreeRequest::decode(&bytes);
        let _ = AgreeResponse::decode(&bytes);
    }
}

#[test]
fn a_changed_ml_kem_key_or_ciphertext_on_the_wire_ends_the_session() {
    let mut rng = ChaCha12Rng::seed_from_u64(21);
    let a = Identity::generate(&mut rng);
    let b = Identity::generate(&mut rng);
    let (init, open) = start(&a, &b, params(), &mut rng);
    // The initiator's encapsulation key changed in transit: the responder
    // refuses the offer (its signature covers the key).
    let copy = AgreeRequest::decode(&open.encode().unwrap()).unwrap();
    let AgreeRequest::Open {
        session,
        mut offer,
        link,
        purpose,
        source,
    } = copy
    else {
        unreachable!()
    };
    offer.kem[100] ^= 1;
    let changed = AgreeRequest::Open {
        session,
        offer,
        link,
        purpose,
        source,
    };
    let refused = open_default(&b, &a, changed, &mut rng);
    assert!(refused.is_err(), "a changed ML-KEM key is refused");
    // The responder's ciphertext changed in transit: the initiator refuses
    // it and ends the session with no key.
    let (_, opened) = open_default(&b, &a, open, &mut rng).unwrap();
    let AgreeResponse::Opened { mut offer, link } = opened else {
        unreachable!()
    };
    offer.kem[7] ^= 1;
    let mut init = init;
    match init.on_response(AgreeResponse::Opened { offer, link }, &mut rng) {
        InitiatorStep::Finished(outcome) => assert!(outcome.key.is_none()),
        InitiatorStep::Send(_) => panic!("a changed ML-KEM ciphertext must end the session"),
    }
}

/// Runs an initiator with `proposed` up to its `Start`, and checks that a
/// responder with the default policy refuses it as laxer than its own.
fn assert_start_refused_as_laxer(proposed: ProtocolParams, rng: &mut ChaCha12Rng) {
    let a = Identity::generate(rng);
    let b = Identity::generate(rng);
    let (mut init, open) = start(&a, &b, proposed, rng);
    let (mut resp, opened) = open_default(&b, &a, open, rng).unwrap();
    let InitiatorStep::Send(start) = init.on_response(opened, rng) else {
        panic!("expected Start");
    };
    let (answer, outcome) = resp.on_request(start, rng);
    assert!(
        matches!(answer, AgreeResponse::Refused { ref reason } if reason.contains("laxer")),
        "{answer:?}"
    );
    assert!(outcome.expect("ended").key.is_none());
}

#[test]
fn responder_refuses_laxer_security_parameters() {
    // eps_pe = 0.99 would shrink the bound to almost nothing: a link whose
    // observed QBER is well above the tolerance could then pass.
    let mut rng = ChaCha12Rng::seed_from_u64(22);
    let mut lax = params();
    lax.security.eps_pe = 0.99;
    assert_start_refused_as_laxer(lax, &mut rng);
    let mut lax = params();
    lax.security.eps_pa = 0.5;
    assert_start_refused_as_laxer(lax, &mut rng);
}

fn external(id: u8, byte: u8) -> ExternalKey {
    ExternalKey {
        id: crate::etsi014::KeyId([id; 16]),
        bytes: zeroize::Zeroizing::new(vec![byte; 32]),
    }
}

/// Runs a session keyed by a KME: the initiator holds `mine`, the responder
/// `theirs` (what its own KME answered for the id); answers both outcomes.
fn run_external(
    mine: ExternalKey,
    theirs: ExternalKey,
    tamper_open: impl FnOnce(&mut AgreeRequest),
) -> Result<(AgreementOutcome, Option<AgreementOutcome>), AgreeError> {
    let mut rng = ChaCha12Rng::seed_from_u64(31);
    let a = Identity::generate(&mut rng);
    let b = Identity::generate(&mut rng);
    let (mut init, mut open) = Initiator::new(
        &a,
        b.account(),
        params(),
        LinkModel::default(),
        Purpose::Messaging,
        Some(mine),
        &mut rng,
    )?;
    tamper_open(&mut open);
    let (mut resp, opened) = Responder::open(
        &b,
        a.account(),
        open,
        LinkModel::default(),
        ResponderPolicy::default(),
        Some(theirs),
        &mut rng,
    )?;
    let InitiatorStep::Send(confirm) = init.on_response(opened, &mut rng) else {
        panic!("a KME-keyed session goes straight to confirmation");
    };
    assert!(
        matches!(confirm, AgreeRequest::Confirm { .. }),
        "{confirm:?}"
    );
    let (answer, theirs) = resp.on_request(confirm, &mut rng);
    let InitiatorStep::Finished(mine) = init.on_response(answer, &mut rng) else {
        panic!("the session ends after confirmation");
    };
    Ok((mine, theirs))
}

#[test]
fn a_kme_key_replaces_bb84_and_both_ends_confirm_the_same_hybrid_key() {
    let (a, b) = run_external(external(1, 5), external(1, 5), |_| {}).unwrap();
    let b = b.expect("responder outcome");
    let (ka, kb) = (
        a.key.as_ref().expect("initiator key"),
        b.key.as_ref().expect("responder key"),
    );
    assert_eq!(ka.secret_bytes(), kb.secret_bytes());
    assert_eq!(a.report.final_key_bits, 256);
    assert_eq!(a.report.qubits_sent, 0, "no BB84 ran");
    assert_eq!(
        a.source,
        KeySource::Etsi014 {
            key_id: crate::etsi014::KeyId([1; 16])
        }
    );
    assert_eq!(a.audit().key_length_bits, 256);
}

#[test]
fn different_kme_keys_under_one_id_fail_key_confirmation() {
    // The two KMEs disagree on the key's bits (or one is lying): no key.
    let (a, b) = run_external(external(1, 5), external(1, 6), |_| {}).unwrap();
    assert!(a.key.is_none());
    assert!(b.is_some_and(|b| b.key.is_none()));
}

#[test]
fn a_kme_session_refuses_a_missing_or_other_key_and_bb84_messages() {
    // The responder's KME gave a key under another id.
    let err = run_external(external(1, 5), external(2, 5), |_| {}).unwrap_err();
    assert!(err.to_string().contains("has not got"), "{err}");
    // The Open's source was changed on the way to say BB84: the responder,
    // whose link takes KME keys, refuses.
    let err = run_external(external(1, 5), external(1, 5), |open| {
        if let AgreeRequest::Open { source, .. } = open {
            *source = KeySource::Simulated;
        }
    })
    .unwrap_err();
    assert!(err.to_string().contains("from its KME"), "{err}");
    // A key too short to count.
    let short = ExternalKey {
        id: crate::etsi014::KeyId([1; 16]),
        bytes: zeroize::Zeroizing::new(vec![1; 8]),
    };
    let err = run_external(short, external(1, 5), |_| {}).unwrap_err();
    assert!(err.to_string().contains("64 bits"), "{err}");
    // After opening, a BB84 message is out of place.
    let mut rng = ChaCha12Rng::seed_from_u64(32);
    let a = Identity::generate(&mut rng);
    let b = Identity::generate(&mut rng);
    let (_, open) = Initiator::new(
        &a,
        b.account(),
        params(),
        LinkModel::default(),
        Purpose::Messaging,
        Some(external(1, 5)),
        &mut rng,
    )
    .unwrap();
    let (mut resp, _) = Responder::open(
        &b,
        a.account(),
        open,
        LinkModel::default(),
        ResponderPolicy::default(),
        Some(external(1, 5)),
        &mut rng,
    )
    .unwrap();
    let session = resp.session();
    let (answer, outcome) = resp.on_request(
        AgreeRequest::Qkd {
            session,
            msg: QkdMessage::Abort {
                reason: AbortReason::VerificationFailed,
            },
        },
        &mut rng,
    );
    assert!(
        matches!(answer, AgreeResponse::Refused { .. }),
        "{answer:?}"
    );
    assert!(outcome.is_some_and(|o| o.key.is_none()));
}

#[test]
fn a_changed_purpose_gives_the_ends_different_keys() {
    // Both ends bind what the session is for into the transcript: a grant
    // changed on the way (another slave SAE, more keys) fails confirmation.
    let grant = |slave: &str| {
        Purpose::Kme(KmeGrant {
            master_sae: "sae-a".into(),
            slave_sae: slave.into(),
            number: 2,
            size_bits: 256,
        })
    };
    let mut rng = ChaCha12Rng::seed_from_u64(33);
    let a = Identity::generate(&mut rng);
    let b = Identity::generate(&mut rng);
    let (mut init, open) = Initiator::new(
        &a,
        b.account(),
        params(),
        LinkModel::default(),
        grant("sae-b"),
        None,
        &mut rng,
    )
    .unwrap();
    let AgreeRequest::Open {
        session,
        offer,
        link,
        source,
        ..
    } = open
    else {
        unreachable!()
    };
    let changed = AgreeRequest::Open {
        session,
        offer,
        link,
        purpose: grant("sae-mallory"),
        source,
    };
    let (mut resp, mut response) = open_default(&b, &a, changed, &mut rng).unwrap();
    assert_eq!(resp.purpose(), &grant("sae-mallory"));
    let outcome = loop {
        match init.on_response(response, &mut rng) {
            InitiatorStep::Finished(o) => break o,
            InitiatorStep::Send(req) => response = resp.on_request(req, &mut rng).0,
        }
    };
    assert!(outcome.key.is_none(), "confirmation must fail");
    // A grant out of the specification's bounds is refused at once.
    let err = Initiator::new(
        &a,
        b.account(),
        params(),
        LinkModel::default(),
        Purpose::Kme(KmeGrant {
            master_sae: "sae-a".into(),
            slave_sae: "sae-b".into(),
            number: 1000,
            size_bits: 256,
        }),
        None,
        &mut rng,
    )
    .unwrap_err();
    assert!(err.to_string().contains("too many keys"), "{err}");
}
