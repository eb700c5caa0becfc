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

/// Hospital 1 and its patient, each reaching the other, their delivery
/// tasks running; what the hospital asks of the network.
fn started_pair() -> (TestNode, TestNode, mpsc::UnboundedReceiver<Seen>) {
    let mut hospital = testkit::hospital(1, 0);
    let mut patient = testkit::patient(1);
    let seen = hospital.connect(vec![patient.reachable()]);
    // The patient's own requests are not looked at.
    drop(patient.connect(vec![hospital.reachable()]));
    start(&mut hospital);
    start(&mut patient);
    (hospital, patient, seen)
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
    let (hospital, patient, mut seen) = started_pair();
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

/// Every file under `dir`, read whole.
fn files_of(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("a readable directory") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                out.push((path, bytes));
            }
        }
    }
    out
}

/// The files (of a copy of `db/`) that hold `needle`.
fn holding(files: &[(std::path::PathBuf, Vec<u8>)], needle: &[u8]) -> Vec<String> {
    files
        .iter()
        .filter(|(_, bytes)| bytes.windows(needle.len()).any(|w| w == needle))
        .map(|(p, _)| p.display().to_string())
        .collect()
}

/// Copies `node`'s `db/` as a backup or a thief would, while it runs.
fn copy_db(node: &TestNode) -> (tempfile::TempDir, Vec<(std::path::PathBuf, Vec<u8>)>) {
    let to = tempfile::tempdir().expect("a temp dir");
    for (path, bytes) in files_of(&node.dir().join("db")) {
        let name = path.file_name().expect("a file name");
        std::fs::write(to.path().join(name), bytes).expect("a copy");
    }
    let files = files_of(to.path());
    assert!(files.len() > 3, "the copy holds RocksDB's files");
    (to, files)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_of_db_holds_no_plaintext_and_no_key_and_erasure_leaves_no_trace() {
    let (hospital, patient, mut seen) = started_pair();
    // A report with a marker no other byte string would hold.
    let marker = format!(
        "qward-at-rest-marker-{}",
        hex::encode(rand::random::<[u8; 12]>())
    );
    let report = String::from_utf8(REPORT.to_vec()).expect("utf-8").replacen(
        "No acute cardiopulmonary abnormality.",
        &format!("No acute cardiopulmonary abnormality ({marker})."),
        1,
    );
    assert!(report.contains(&marker), "the marker is in the report");
    let m = &hospital.ctx.messaging;
    let queued = outbox::send(
        m,
        patient.ctx.account,
        RecordKind::Report,
        report.as_bytes(),
        None,
    )
    .expect("queued");
    anchor_gossiped(&mut seen).await;
    let record = queued.record_id;
    let pm = &patient.ctx.messaging;
    let got = find_inbox(&pm.store, &record)
        .expect("the store reads")
        .expect("received");
    assert_eq!(
        inbox::plaintext(pm, &got).expect("readable").as_slice(),
        report.as_bytes()
    );

    // Every key either node holds: session keys, per-record keys, data keys.
    let mut keys: Vec<(String, Vec<u8>)> = Vec::new();
    for node in [&hospital, &patient] {
        let ks = &node.ctx.keys;
        for r in ks.records() {
            let secret = ks
                .with_opening_key(&r.peer, &r.key_id, |k| k.secret_bytes().to_vec())
                .expect("a held key opens");
            keys.push((format!("session key {}", r.key_id), secret));
        }
        keys.push((
            format!("{}'s data key", node.ctx.config.name),
            node.data_key.to_bytes().to_vec(),
        ));
    }
    assert!(
        keys.len() >= 4,
        "both ends hold a session key: {}",
        keys.len()
    );
    let sent_key = hospital
        .ctx
        .keys
        .at_rest(&m.store, crate::node::keys::RecordSlot::Sent(&record))
        .expect("reads")
        .expect("the sent copy's key");
    let received_slot = crate::node::keys::RecordSlot::Received {
        sender: &m.account,
        record: &record,
    };
    let received_key = patient
        .ctx
        .keys
        .at_rest(&pm.store, received_slot)
        .expect("reads")
        .expect("the received copy's key");
    keys.push(("the sent copy's key".into(), sent_key.to_bytes().to_vec()));
    keys.push((
        "the received copy's key".into(),
        received_key.to_bytes().to_vec(),
    ));

    for node in [&hospital, &patient] {
        let (_copy, files) = copy_db(node);
        // The scan sees what is stored: the wrapped key of the record is there.
        let wrapped_slot = match node.ctx.config.role {
            qward_core::identity::Role::Hospital => crate::node::keys::RecordSlot::Sent(&record),
            _ => received_slot,
        };
        let wrapped = node
            .ctx
            .store
            .get(qward_core::storage::Column::Keys, &wrapped_slot.key())
            .expect("reads")
            .expect("the wrapped key is stored");
        assert!(
            !holding(&files, &wrapped).is_empty(),
            "the scan finds a stored value, so it can find a key"
        );
        assert_eq!(
            holding(&files, marker.as_bytes()),
            Vec::<String>::new(),
            "plaintext in {}'s db",
            node.ctx.config.name
        );
        for (what, bytes) in &keys {
            assert_eq!(
                holding(&files, bytes),
                Vec::<String>::new(),
                "{what} in {}'s db",
                node.ctx.config.name
            );
        }
    }

    // Erase the patient's copy: its key is gone, from the store and from
    // every file, and the record cannot be opened.
    let wrapped = pm
        .store
        .get(qward_core::storage::Column::Keys, &received_slot.key())
        .expect("reads")
        .expect("stored");
    let erased = erase::erase_local(pm, &record, erase::Copies::All).expect("erased");
    assert!(erased.received && !erased.sent);
    assert_eq!(
        erased.chain_ids,
        vec![anchor_record_id(&m.account, &record)],
        "the erasure names the record as its sender anchored it"
    );
    let entry = find_inbox(&pm.store, &record)
        .expect("reads")
        .expect("kept");
    assert!(entry.erased_ms.is_some());
    let err = inbox::plaintext(pm, &entry).expect_err("erased");
    assert!(err.to_string().contains("erased"), "{err}");
    assert_eq!(
        info::inbox_info(pm, &entry).state,
        DeliveryState::Erased,
        "listed as erased"
    );
    let (_copy, files) = copy_db(&patient);
    assert_eq!(
        holding(&files, &wrapped),
        Vec::<String>::new(),
        "the wrapped key left the files"
    );
    assert_eq!(
        holding(&files, received_key.to_bytes().as_slice()),
        Vec::<String>::new()
    );
    // Erasing twice is refused; the sender's copy is its own to erase.
    assert!(erase::erase_local(pm, &record, erase::Copies::All).is_err());
    let sent_key_held = || {
        hospital
            .ctx
            .keys
            .at_rest(&m.store, crate::node::keys::RecordSlot::Sent(&record))
            .expect("reads")
            .is_some()
    };
    assert!(sent_key_held());

    // A request to erase the hospital's copy from anyone but the patient the
    // record is about changes nothing; the patient's own request erases it.
    let id = anchor_record_id(&m.account, &record);
    let stranger = qward_core::identity::AccountId([0x5a; 32]);
    erase::on_request(m.clone(), hospital.ctx.access.clone(), stranger, id, true).await;
    assert!(sent_key_held(), "erased at a stranger's request");
    erase::on_request(
        m.clone(),
        hospital.ctx.access.clone(),
        patient.ctx.account,
        id,
        false,
    )
    .await;
    assert!(
        sent_key_held(),
        "erased though the operator decides by hand"
    );
    // (Erasure waits for the anchor, which no block includes here: mark it.)
    let mut sent = outbox_entry(&m.store, &record)
        .expect("reads")
        .expect("sent");
    sent.state = DeliveryState::Anchored;
    let mut batch = qward_core::storage::WriteBatch::new();
    batch.put(
        qward_core::storage::Column::Outbox,
        okey(b'e', &record),
        qward_core::codec::encode_infallible(&sent),
    );
    qward_core::storage::Store::write(&*m.store, batch).expect("stored");
    erase::on_request(
        m.clone(),
        hospital.ctx.access.clone(),
        patient.ctx.account,
        id,
        true,
    )
    .await;
    assert!(!sent_key_held(), "the patient's request erases the copy");
}
