//! The delivery task in-process: a hospital sends a report to its patient
//! through a fake network that carries key agreement and messaging to the
//! patient's own tasks (testkit: real stores, pools and agreement tasks).

use std::collections::HashSet;
use std::time::Duration;

use qward_core::api::DeliveryState;
use qward_core::chain::{SignedTransaction, TxKind};
use qward_core::envelope::RecordKind;
use qward_core::envelope::wire::anchor_record_id;
use tokio::sync::mpsc;

use super::*;
use crate::node::testkit::{self, Seen, TestNode};

const REPORT: &[u8] = include_bytes!("../../../../examples/records/report-chest-xray-ada.json");

fn start(node: &mut TestNode) {
    let index = node.index.take().expect("the index");
    let notes = node.notes.take().expect("the notes");
    tokio::spawn(outbox::run(
        node.ctx.messaging.clone(),
        index,
        notes,
        node.ctx.shutdown.subscribe(),
    ));
}

/// The first anchor transaction the node gossips.
async fn anchor_gossiped(seen: &mut mpsc::UnboundedReceiver<Seen>) -> SignedTransaction {
    let wait = async {
        loop {
            if let Some(Seen::Published(topic, data)) = seen.recv().await
                && topic.ends_with("/tx")
                && let Ok(tx) = SignedTransaction::decode(&data)
                && matches!(tx.tx.kind, TxKind::AnchorRecord(_))
            {
                return tx;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .expect("an anchor is gossiped")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_report_is_keyed_sealed_delivered_receipted_and_anchored() {
    let mut hospital = testkit::hospital(1, 0);
    let mut patient = testkit::patient(1);
    let mut seen = hospital.connect(vec![patient.reachable()]);
    let _patient_seen = patient.connect(vec![hospital.reachable()]);
    start(&mut hospital);
    start(&mut patient);
    let to = patient.ctx.account;
    let m = &hospital.ctx.messaging;
    let queued = outbox::send(m, to, RecordKind::Report, REPORT, None).expect("queued");
    assert_eq!(queued.state, DeliveryState::Queued);
    assert_eq!(queued.patient, to, "a report to a patient is about them");

    let anchor = anchor_gossiped(&mut seen).await;
    let TxKind::AnchorRecord(a) = &anchor.tx.kind else {
        unreachable!()
    };
    assert_eq!(a.record_id, anchor_record_id(&m.account, &queued.record_id));
    assert_eq!(a.recipient, to);

    let sent = outbox_entry(&m.store, &queued.record_id)
        .expect("the store reads")
        .expect("the entry");
    assert_eq!(sent.state, DeliveryState::Delivered);
    assert_eq!(sent.ciphertext_hash, Some(a.ciphertext_hash.0));
    assert_eq!(
        sent.anchor_tx,
        Some(anchor.id().0),
        "the anchor is stored before it leaves"
    );
    // The receipt is kept, and checks against the envelope sent.
    let receipt = outbox_receipt(&m.store, &queued.record_id)
        .expect("the store reads")
        .expect("a receipt");
    let envelope = outbox_envelope(&m.store, &queued.record_id)
        .expect("the store reads")
        .expect("the envelope");
    receipt.verify(&envelope).expect("a valid receipt");
    // The patient holds the record as it was sent.
    let pm = &patient.ctx.messaging;
    let got = find_inbox(&pm.store, &queued.record_id)
        .expect("the store reads")
        .expect("received");
    assert_eq!(got.from, m.account);
    assert_eq!(got.ciphertext_hash, a.ciphertext_hash.0);
    assert_eq!(
        inbox::plaintext(pm, &got).expect("readable").as_slice(),
        REPORT
    );
}

#[tokio::test]
async fn what_a_recipient_would_refuse_is_refused_before_any_key_session() {
    let mut hospital = testkit::hospital(2, 0);
    let other = testkit::hospital(2, 1);
    let patient = hospital.chain.patient.account();
    let mut seen = hospital.capture_network();
    start(&mut hospital);
    let m = &hospital.ctx.messaging;
    // A report about the patient to another hospital, with no consent.
    match outbox::send(
        m,
        other.ctx.account,
        RecordKind::Report,
        REPORT,
        Some(patient),
    ) {
        Err(outbox::SendError::Refused(why)) => assert!(why.contains("consent"), "{why}"),
        other => panic!("no consent, no report: {other:?}"),
    }
    assert!(
        outbox_entries(&m.store)
            .expect("the store reads")
            .is_empty()
    );
    assert!(
        hospital.ctx.agree.recent().await.is_empty(),
        "no key session"
    );
    assert!(seen.try_recv().is_err(), "nothing reached the network");
}

#[test]
fn the_index_tracks_each_state_and_due_time() {
    let mut index = Index::default();
    let (a, b) = (RecordId([1; 16]), RecordId([2; 16]));
    let note = |record, state, next_ms| Note::Outbox {
        record,
        state,
        next_ms,
    };
    let queued = outbox::apply(&mut index, note(a, DeliveryState::Queued, 500));
    let sent = outbox::apply(&mut index, note(b, DeliveryState::Sent, 100));
    assert_eq!((queued, sent), (None, None), "nothing to anchor yet");
    let none = HashSet::new();
    assert_eq!(index.due(400, 10, &none), vec![b]);
    assert_eq!(index.due(1000, 10, &none), vec![b, a], "soonest first");
    assert_eq!(index.due(1000, 1, &none), vec![b], "at most the limit");
    assert_eq!(index.next_due(&none), Some(100));
    // A record with an attempt under way is neither due nor waited for.
    let b_running = HashSet::from([b]);
    assert_eq!(index.due(1000, 10, &b_running), vec![a]);
    assert_eq!(index.next_due(&b_running), Some(500));
    // An attempt that failed before storing anything is put off.
    index.defer(&a, 5_000);
    assert_eq!(index.due(1000, 10, &b_running), Vec::<RecordId>::new());
    assert_eq!(index.next_due(&b_running), Some(5_000));
    // Delivered: no longer due, its anchor awaited (and anchored now).
    let delivered = outbox::apply(&mut index, note(b, DeliveryState::Delivered, 0));
    assert_eq!(delivered, Some(b));
    assert_eq!(index.due(u64::MAX, 10, &none), vec![a]);
    assert_eq!(index.unanchored(), vec![b]);
    // Anchored or failed: forgotten.
    outbox::apply(&mut index, note(b, DeliveryState::Anchored, 0));
    outbox::apply(&mut index, note(a, DeliveryState::Failed, 0));
    assert!(index.due(u64::MAX, 10, &none).is_empty() && index.unanchored().is_empty());
    // A received record is checked until its anchor is found.
    let sender = AccountId([9; 32]);
    assert_eq!(outbox::apply(&mut index, Note::Received(sender, a)), None);
    assert_eq!(index.unchecked(), vec![(sender, a)]);
    index.set_checked(&(sender, a), true);
    assert!(index.unchecked().is_empty());
}
