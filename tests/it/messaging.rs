//! Key agreement and record exchange between real `qward` processes over
//! libp2p on 127.0.0.1: the telehealth flow patient -> hospital -> doctor ->
//! patient under consent, eavesdropper aborts, refusals of bad envelopes,
//! and exactly-once delivery across crashes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use qward_core::api::{BlockSummary, DeliveryState, KeyInfo, KeySessionInfo, MessageInfo};
use qward_node::api::QwardApiClient;
use qward_tests::{TestNet, path_str, qward, qward_ok, wait_for, workspace_root};

const HOSPITALS: [&str; 4] = ["hospital-1", "hospital-2", "hospital-3", "hospital-4"];

fn example(name: &str) -> PathBuf {
    workspace_root().join("examples/records").join(name)
}

/// Runs `qward --data-dir <node> ARGS` and returns stdout; panics with the
/// node's log tail on failure.
fn cli(net: &TestNet, node: &str, args: &[&str]) -> String {
    let n = net.nodes.iter().find(|n| n.name == node).expect("node");
    let dir = path_str(&n.dir);
    let mut all = vec!["--data-dir", dir.as_str()];
    all.extend_from_slice(args);
    match qward_ok(&all) {
        Ok(out) => out,
        Err(e) => panic!("{e}\n--- {node} log ---\n{}", n.log_tail(30)),
    }
}

fn json_of<T: serde::de::DeserializeOwned>(text: &str) -> T {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("bad JSON ({e}): {text}"))
}

/// `qward send --json` from `from` to `to` of `kind` (`phr` or `report`)
/// read from `file`, with `--wait` for the anchor when `wait`: the outbox
/// entry as the command printed it.
fn send(net: &TestNet, from: &str, to: &str, kind: &str, file: &Path, wait: bool) -> MessageInfo {
    let file = path_str(file);
    let mut args = vec![
        "send", "--to", to, "--kind", kind, "--file", &file, "--json",
    ];
    if wait {
        args.push("--wait");
    }
    json_of(&cli(net, from, &args))
}

async fn start_net(hospitals_up: &[&str], others: &[&str], net: &mut TestNet) {
    for n in hospitals_up.iter().chain(others) {
        net.node(n).start().expect("start");
    }
    let h1 = hospitals_up[0];
    wait_for("the chain to start", Duration::from_secs(90), || async {
        let st = net
            .nodes
            .iter()
            .find(|n| n.name == h1)
            .unwrap()
            .status()
            .await?;
        Ok((st.height >= 2).then_some(()))
    })
    .await
    .expect("chain grows");
    // Every other node connected to someone and synced near the tip.
    for n in others {
        wait_for(&format!("{n} to join"), Duration::from_secs(60), || async {
            let st = net
                .nodes
                .iter()
                .find(|x| x.name == *n)
                .unwrap()
                .status()
                .await?;
            Ok((st.peers >= 2 && st.height >= 2).then_some(()))
        })
        .await
        .expect("joins");
    }
}

fn export(net: &TestNet, node: &str, record: &str, out: &Path) -> Vec<u8> {
    let said: serde_json::Value = json_of(&cli(
        net,
        node,
        &["inbox", "export", record, "--out", &path_str(out), "--json"],
    ));
    let bytes = std::fs::read(out).expect("exported file");
    assert_eq!(said["record_id"], record);
    assert_eq!(said["bytes"], bytes.len());
    bytes
}

fn inbox(net: &TestNet, node: &str) -> Vec<MessageInfo> {
    json_of(&cli(net, node, &["inbox", "--json"]))
}

async fn wait_anchor_verified(net: &TestNet, node: &str, record: &str) {
    wait_for(
        &format!("{node} to see the anchor of {record}"),
        Duration::from_secs(60),
        || async {
            Ok(inbox(net, node)
                .into_iter()
                .find(|m| m.record_id == record)
                .filter(|m| m.detail.as_deref().unwrap_or("").contains("matches"))
                .map(|_| ()))
        },
    )
    .await
    .expect("anchor verified");
}

/// Waits until `node`'s chain shows the consent for `grantee` as `active`.
async fn wait_consent(net: &TestNet, node: &str, grantee: &str, active: bool) {
    wait_for(
        &format!("{node} to see the consent for {grantee} active={active}"),
        Duration::from_secs(30),
        || async {
            let list: Vec<qward_core::api::ConsentInfo> =
                json_of(&cli(net, node, &["consent", "list", "--json"]));
            let on = list
                .iter()
                .any(|c| c.grantee_name.as_deref() == Some(grantee) && c.active);
            Ok((on == active).then_some(()))
        },
    )
    .await
    .expect("consent visible");
}

async fn tx_kinds(net: &TestNet, node: &str) -> Vec<(String, String)> {
    let n = net.nodes.iter().find(|n| n.name == node).unwrap();
    let client = n.client(Duration::from_secs(10)).await.unwrap();
    let blocks: Vec<BlockSummary> = client.chain_blocks(None, Some(500)).await.unwrap();
    blocks
        .into_iter()
        .flat_map(|b| b.txs.into_iter().map(|t| (t.kind, t.detail)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patient_hospital_doctor_flow_under_consent_is_byte_identical_and_anchored() {
    let mut net = TestNet::create(4, 1, 1, 1, 200).expect("devnet");
    start_net(&HOSPITALS, &["doctor-1", "patient-1"], &mut net).await;
    let tmp = tempfile::tempdir().unwrap();

    // A malformed record is refused before anything is queued, naming the problem.
    let bad = workspace_root().join("examples/records/invalid/phr-without-patient.json");
    let pdir = path_str(&net.node("patient-1").dir);
    let out = qward(&[
        "--data-dir",
        &pdir,
        "send",
        "--to",
        "hospital-1",
        "--kind",
        "phr",
        "--file",
        &path_str(&bad),
    ])
    .unwrap();
    assert_eq!(out.status.code(), Some(2), "invalid input: refused");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("$.entry") && err.contains("not sent"), "{err}");
    let outbox: Vec<MessageInfo> = json_of(&cli(&net, "patient-1", &["outbox", "--json"]));
    assert!(outbox.is_empty(), "{outbox:?}");

    // Without consent the hospital may not forward; it says so.
    let phr = example("phr-ada-quill.json");
    let sent: MessageInfo = send(&net, "patient-1", "hospital-1", "phr", &phr, true);
    assert_eq!(sent.state, DeliveryState::Anchored, "{sent:?}");
    let at_hospital = export(
        &net,
        "hospital-1",
        &sent.record_id,
        &tmp.path().join("h.json"),
    );
    assert_eq!(
        at_hospital,
        std::fs::read(&phr).unwrap(),
        "PHR changed on the way"
    );
    wait_anchor_verified(&net, "hospital-1", &sent.record_id).await;

    let dir = path_str(&net.node("hospital-1").dir);
    let refused = qward(&[
        "--data-dir",
        &dir,
        "forward",
        &sent.record_id,
        "--to",
        "doctor-1",
    ])
    .unwrap();
    assert!(!refused.status.success(), "forwarded without consent");
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("consent"), "{why}");

    // The patient grants consent; the forward goes through.
    cli(
        &net,
        "patient-1",
        &[
            "consent", "grant", "doctor-1", "--scope", "records", "--wait",
        ],
    );
    wait_consent(&net, "hospital-1", "doctor-1", true).await;
    wait_consent(&net, "doctor-1", "doctor-1", true).await;
    let fwd: MessageInfo = json_of(&cli(
        &net,
        "hospital-1",
        &[
            "forward",
            &sent.record_id,
            "--to",
            "doctor-1",
            "--wait",
            "--json",
        ],
    ));
    assert_eq!(fwd.state, DeliveryState::Anchored, "{fwd:?}");
    let at_doctor = export(&net, "doctor-1", &fwd.record_id, &tmp.path().join("d.json"));
    assert_eq!(
        at_doctor,
        std::fs::read(&phr).unwrap(),
        "forwarded PHR changed"
    );
    wait_anchor_verified(&net, "doctor-1", &fwd.record_id).await;

    // The doctor reports back to the patient.
    let report = example("report-chest-xray-ada.json");
    let rep: MessageInfo = send(&net, "doctor-1", "patient-1", "report", &report, true);
    assert_eq!(rep.state, DeliveryState::Anchored, "{rep:?}");
    // The doctor keeps the patient's signed receipt as proof of delivery.
    let shown: qward_core::api::OutboxDetail = json_of(&cli(
        &net,
        "doctor-1",
        &["outbox", "show", &rep.record_id, "--json"],
    ));
    let proof = shown.receipt.expect("a receipt kept");
    assert!(proof.verified, "{proof:?}");
    assert_eq!(proof.recipient_name.as_deref(), Some("patient-1"));
    assert_eq!(shown.message.anchor, rep.anchor);
    let text = cli(&net, "doctor-1", &["outbox", "show", &rep.record_id]);
    assert!(text.contains("verified  yes"), "{text}");
    let at_patient = export(
        &net,
        "patient-1",
        &rep.record_id,
        &tmp.path().join("p.json"),
    );
    assert_eq!(
        at_patient,
        std::fs::read(&report).unwrap(),
        "report changed"
    );
    wait_anchor_verified(&net, "patient-1", &rep.record_id).await;
    let shown = cli(&net, "patient-1", &["inbox", "show", &rep.record_id]);
    assert!(shown.contains("Medical report"), "{shown}");

    // Revoking consent stops further forwarding at once (once final).
    cli(
        &net,
        "patient-1",
        &[
            "consent", "revoke", "doctor-1", "--scope", "records", "--wait",
        ],
    );
    wait_consent(&net, "hospital-1", "doctor-1", false).await;
    let again = qward(&[
        "--data-dir",
        &dir,
        "forward",
        &sent.record_id,
        "--to",
        "doctor-1",
    ])
    .unwrap();
    assert!(!again.status.success(), "forwarded after revocation");

    // Every read of health data left an entry naming its user, in order,
    // and the access logs verify.
    let log: Vec<qward_core::api::AccessEntryInfo> =
        json_of(&cli(&net, "hospital-1", &["audit", "log", "--json"]));
    let actions: Vec<(&str, &str, Option<&str>)> = log
        .iter()
        .map(|e| (e.user.as_str(), e.action.as_str(), e.record_id.as_deref()))
        .collect();
    let sent_id = Some(sent.record_id.as_str());
    for wanted in [("owner", "export", sent_id), ("owner", "forward", sent_id)] {
        assert!(actions.contains(&wanted), "{wanted:?} not in {actions:?}");
    }
    let log: Vec<qward_core::api::AccessEntryInfo> =
        json_of(&cli(&net, "patient-1", &["audit", "log", "--json"]));
    let rep_id = Some(rep.record_id.as_str());
    assert!(
        log.iter()
            .any(|e| e.user == "owner" && e.action == "read" && e.record_id.as_deref() == rep_id),
        "{log:?}"
    );
    assert!(log.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    for node in ["hospital-1", "doctor-1", "patient-1"] {
        let report: qward_core::api::AuditVerifyReport =
            json_of(&cli(&net, node, &["audit", "verify", "--json"]));
        assert!(report.ok && report.entries >= 1, "{node}: {report:?}");
    }

    // Keys were agreed and used; their material is never shown.
    let keys: Vec<KeyInfo> = json_of(&cli(&net, "patient-1", &["keys", "--json"]));
    assert!(
        keys.iter().any(|k| k.uses >= 1 && k.qber < 0.05),
        "{keys:?}"
    );
    let text = cli(&net, "patient-1", &["keys"]);
    assert!(text.contains("fresh"), "{text}");

    // The chain holds anchors and key-session audits, no health data.
    let kinds = tx_kinds(&net, "hospital-2").await;
    let anchors = kinds.iter().filter(|(k, _)| k == "anchor-record").count();
    let audits = kinds
        .iter()
        .filter(|(k, _)| k == "audit-key-session")
        .count();
    assert!(anchors >= 3, "{kinds:?}");
    assert!(audits >= 3, "{kinds:?}");
    let phr_text = std::fs::read_to_string(&phr).unwrap();
    assert!(
        kinds.iter().all(|(_, d)| !d.contains("Quill")),
        "health data on the chain"
    );
    assert!(phr_text.contains("Quill"));

    // The auditor syncs and verifies everything from genesis.
    net.node("auditor-1").start().unwrap();
    let target = net
        .nodes
        .iter()
        .find(|n| n.name == "hospital-1")
        .unwrap()
        .status()
        .await
        .unwrap()
        .height;
    wait_for("the auditor to sync", Duration::from_secs(90), || async {
        let st = net
            .nodes
            .iter()
            .find(|n| n.name == "auditor-1")
            .unwrap()
            .status()
            .await?;
        Ok((st.height >= target).then_some(()))
    })
    .await
    .expect("auditor syncs");
    let out = cli(&net, "auditor-1", &["chain", "verify", "--json"]);
    let report: serde_json::Value = json_of(&out);
    assert_eq!(report["ok"], true, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eavesdropper_aborts_the_session_and_nothing_is_sealed_under_its_key() {
    let mut net = TestNet::create(4, 0, 1, 0, 200).expect("devnet");
    start_net(&HOSPITALS, &["patient-1"], &mut net).await;
    // The test is about Eve, not about dialling: wait for the connection.
    wait_for(
        "patient-1 to connect to hospital-1",
        Duration::from_secs(60),
        || async {
            let peers = net
                .nodes
                .iter()
                .find(|n| n.name == "patient-1")
                .unwrap()
                .peers()
                .await?;
            Ok(peers
                .iter()
                .any(|p| p.name.as_deref() == Some("hospital-1"))
                .then_some(()))
        },
    )
    .await
    .expect("connected");

    for (fraction, expected_qber) in [("1.0", 0.25), ("0.5", 0.125)] {
        // Eve is put on the link at the hospital's end.
        cli(
            &net,
            "hospital-1",
            &["link", "set", "patient-1", "--eve", fraction],
        );
        let s: KeySessionInfo = {
            let n = net.nodes.iter().find(|n| n.name == "patient-1").unwrap();
            let dir = path_str(&n.dir);
            let out =
                qward(&["--data-dir", &dir, "keys", "agree", "hospital-1", "--json"]).unwrap();
            assert_eq!(
                out.status.code(),
                Some(2),
                "session did not abort at eve {fraction}"
            );
            json_of(&String::from_utf8_lossy(&out.stdout))
        };
        assert!(s.eve_detected, "{s:?}");
        let q = s.qber.expect("QBER measured");
        assert!(
            (q - expected_qber).abs() < 0.05,
            "QBER {q} at eve {fraction}, expected about {expected_qber}"
        );
        assert_eq!(s.final_key_bits, 0);
    }
    let keys: Vec<KeyInfo> = json_of(&cli(&net, "patient-1", &["keys", "--json"]));
    assert!(keys.is_empty(), "a key from an aborted session: {keys:?}");

    // A record sent now waits: no key, nothing sealed.
    let phr = example("phr-tomas-ferrandt.json");
    let queued: MessageInfo = send(&net, "patient-1", "hospital-1", "phr", &phr, false);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let outbox: Vec<MessageInfo> = json_of(&cli(&net, "patient-1", &["outbox", "--json"]));
    let m = outbox
        .iter()
        .find(|m| m.record_id == queued.record_id)
        .unwrap();
    assert_eq!(m.state, DeliveryState::Queued, "{m:?}");
    assert!(inbox(&net, "hospital-1").is_empty());

    // The aborts are audited on the chain with their QBER.
    wait_for(
        "abort audits on the chain",
        Duration::from_secs(30),
        || async {
            let kinds = tx_kinds(&net, "hospital-3").await;
            let aborted = kinds
                .iter()
                .filter(|(k, d)| k == "audit-key-session" && d.contains("AbortedQber"))
                .count();
            Ok((aborted >= 2).then_some(()))
        },
    )
    .await
    .expect("audits");

    // Eve leaves: the next session succeeds and the record goes through.
    let link: serde_json::Value = json_of(&cli(
        &net,
        "hospital-1",
        &["link", "set", "patient-1", "--eve", "0", "--json"],
    ));
    assert_eq!(link["eve_fraction"], 0.0, "{link}");
    wait_for(
        "the queued record to arrive",
        Duration::from_secs(90),
        || async {
            Ok(inbox(&net, "hospital-1")
                .into_iter()
                .find(|m| m.record_id == queued.record_id)
                .map(|_| ()))
        },
    )
    .await
    .expect("delivered after Eve left");
    let keys: Vec<KeyInfo> = json_of(&cli(&net, "patient-1", &["keys", "--json"]));
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(
        keys[0].qber < 0.05,
        "the key in use came from a noisy session: {keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_survives_crashes_of_sender_and_recipient_exactly_once() {
    let mut net = TestNet::create(4, 0, 1, 0, 200).expect("devnet");
    start_net(
        &["hospital-2", "hospital-3", "hospital-4"],
        &["patient-1"],
        &mut net,
    )
    .await;
    let phr = example("phr-ada-quill.json");

    // The recipient is down: the record waits in the outbox.
    let first: MessageInfo = send(&net, "patient-1", "hospital-1", "phr", &phr, false);
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The sender crashes while retrying, and comes back.
    net.node("patient-1").kill();
    net.node("patient-1").start().unwrap();
    net.node("hospital-1").start().unwrap();

    // The largest record the sender accepts (12 MiB), while the recipient
    // may crash mid-delivery: every size accepted for sending is delivered.
    let big = qward_tests::phr_of_exact_size(&phr, qward_core::fhir::MAX_RECORD_BYTES);
    let big_path = net.root().join("big.json");
    std::fs::write(&big_path, &big).unwrap();
    wait_for("patient-1 API", Duration::from_secs(30), || async {
        Ok(net
            .nodes
            .iter()
            .find(|n| n.name == "patient-1")
            .unwrap()
            .status()
            .await
            .ok()
            .map(|_| ()))
    })
    .await
    .unwrap();
    let second: MessageInfo = send(&net, "patient-1", "hospital-1", "phr", &big_path, false);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    net.node("hospital-1").kill();
    tokio::time::sleep(Duration::from_secs(1)).await;
    net.node("hospital-1").start().unwrap();
    // Recovery after the crash replays RocksDB's log; wait for the API.
    wait_for("hospital-1 back", Duration::from_secs(60), || async {
        let n = net.nodes.iter().find(|n| n.name == "hospital-1").unwrap();
        Ok(n.status().await.ok().map(|_| ()))
    })
    .await
    .unwrap_or_else(|e| {
        let h1 = net.node("hospital-1");
        panic!("{e}\nrunning: {}\n{}", h1.is_running(), h1.log_tail(60))
    });

    for record in [&first.record_id, &second.record_id] {
        wait_for(
            &format!("{record} anchored"),
            Duration::from_secs(150),
            || async {
                let outbox: Vec<MessageInfo> =
                    json_of(&cli(&net, "patient-1", &["outbox", "--json"]));
                Ok(outbox
                    .into_iter()
                    .find(|m| &m.record_id == record && m.state == DeliveryState::Anchored)
                    .map(|_| ()))
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", net.node("patient-1").log_tail(30)));
    }
    let received = inbox(&net, "hospital-1");
    for record in [&first.record_id, &second.record_id] {
        let n = received.iter().filter(|m| &m.record_id == record).count();
        assert_eq!(n, 1, "{record} received {n} times");
    }
    assert_eq!(received.len(), 2, "{received:?}");
    let out = net.root().join("big-out.json");
    assert_eq!(export(&net, "hospital-1", &second.record_id, &out), big);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_replayed_misaddressed_and_unconsented_envelopes_are_refused() {
    use qward_core::envelope::wire::{MsgRequest, MsgResponse};
    use qward_core::envelope::{EnvelopeHeader, RecordId, RecordKind, seal};
    use qward_tests::{Impostor, account_of};

    let mut net = TestNet::create(4, 1, 1, 0, 200).expect("devnet");
    // hospital-2's key is used by an in-process impostor instead of its node.
    start_net(
        &["hospital-1", "hospital-3", "hospital-4"],
        &["doctor-1", "patient-1"],
        &mut net,
    )
    .await;
    let h1 = account_of(&net, "hospital-1");
    let h3 = account_of(&net, "hospital-3");
    let doctor = account_of(&net, "doctor-1");
    let patient = account_of(&net, "patient-1");
    let mallory = Impostor::start(&net, "hospital-2", &["hospital-1", "doctor-1"])
        .await
        .expect("impostor");
    for who in [&h1, &doctor] {
        mallory
            .connected_to(&qward_node::net::peer_id_from_account(who).unwrap())
            .await
            .expect("connected");
    }
    let key = mallory.agree_key(&h1).await.expect("key with hospital-1");
    let me = mallory.identity.account();
    let report = std::fs::read(example("report-lipid-panel-tomas.json")).unwrap();
    let phr = std::fs::read(example("phr-ada-quill.json")).unwrap();
    let header = |kind, to, sender| EnvelopeHeader {
        kind,
        record_id: RecordId::random(&mut rand::rng()),
        created_at_ms: qward_node::node::clock::now_ms(),
        sender,
        recipient: to,
        patient,
    };
    let refused = |r: &MsgResponse| match r {
        MsgResponse::Refused { reason, .. } => reason.clone(),
        MsgResponse::Receipt { .. } => panic!("accepted: {r:?}"),
    };

    // A report about the patient goes to a hospital only under the
    // patient's Reports consent (see the doctor's refusal below).
    cli(
        &net,
        "patient-1",
        &[
            "consent",
            "grant",
            "hospital-1",
            "--scope",
            "reports",
            "--wait",
        ],
    );
    wait_for(
        "hospital-1 to see its Reports consent",
        Duration::from_secs(30),
        || async {
            let list: Vec<qward_core::api::ConsentInfo> =
                json_of(&cli(&net, "hospital-1", &["consent", "list", "--json"]));
            Ok(list
                .iter()
                .any(|c| c.grantee == h1.to_hex() && c.scope == "reports" && c.active)
                .then_some(()))
        },
    )
    .await
    .expect("consent visible");

    // A valid report is stored once; its replay is acknowledged, not stored again.
    let env = seal(
        &key,
        header(RecordKind::Report, h1, me),
        &report,
        &mut rand::rng(),
    )
    .unwrap();
    let wire = MsgRequest::Deliver {
        envelope: env.clone(),
    }
    .encode();
    let r = mallory.deliver_raw(&h1, wire.clone()).await.unwrap();
    assert!(matches!(r, MsgResponse::Receipt { .. }), "{r:?}");
    let r = mallory.deliver_raw(&h1, wire).await.unwrap();
    assert!(matches!(r, MsgResponse::Receipt { .. }), "{r:?}");
    assert_eq!(inbox(&net, "hospital-1").len(), 1, "replay stored twice");

    // The same record sealed again under a new key (the sender lost the
    // receipt, and the key changed before it tried again): acknowledged,
    // still stored once. Other content under that record id is refused.
    let key2 = mallory.agree_key(&h1).await.expect("a second key");
    assert_ne!(key2.id(), key.id());
    let again = EnvelopeHeader {
        record_id: env.header.record_id,
        ..header(RecordKind::Report, h1, me)
    };
    let resealed = seal(&key2, again.clone(), &report, &mut rand::rng()).unwrap();
    let r = mallory
        .deliver_raw(&h1, MsgRequest::Deliver { envelope: resealed }.encode())
        .await
        .unwrap();
    assert!(matches!(r, MsgResponse::Receipt { .. }), "{r:?}");
    assert_eq!(
        inbox(&net, "hospital-1").len(),
        1,
        "resealed copy stored twice"
    );
    let other_report = std::fs::read(example("report-chest-xray-ada.json")).unwrap();
    let other = seal(&key2, again, &other_report, &mut rand::rng()).unwrap();
    let r = mallory
        .deliver_raw(&h1, MsgRequest::Deliver { envelope: other }.encode())
        .await
        .unwrap();
    assert!(refused(&r).contains("other content"), "{r:?}");

    // Seals `payload` under `key` with `header`, lets `spoil` change the
    // envelope, delivers it to `to`, and answers the refusal's reason.
    async fn refusal(
        mallory: &Impostor,
        key: &qward_core::hybrid::HybridKey,
        to: &qward_core::identity::AccountId,
        header: EnvelopeHeader,
        payload: &[u8],
        spoil: impl FnOnce(&mut qward_core::envelope::Envelope),
    ) -> String {
        let mut env = seal(key, header, payload, &mut rand::rng()).unwrap();
        spoil(&mut env);
        match mallory
            .deliver_raw(to, MsgRequest::Deliver { envelope: env }.encode())
            .await
            .unwrap()
        {
            MsgResponse::Refused { reason, .. } => reason,
            r @ MsgResponse::Receipt { .. } => panic!("accepted: {r:?}"),
        }
    }
    let keep = |_: &mut qward_core::envelope::Envelope| {};

    // One changed byte of ciphertext.
    let why = refusal(
        &mallory,
        &key,
        &h1,
        header(RecordKind::Report, h1, me),
        &report,
        |e| {
            let n = e.ciphertext.len();
            e.ciphertext[n / 2] ^= 0x01;
        },
    )
    .await;
    assert!(why.contains("authentication"), "{why}");
    // Addressed to another hospital.
    let why = refusal(
        &mallory,
        &key,
        &h1,
        header(RecordKind::Report, h3, me),
        &report,
        keep,
    )
    .await;
    assert!(why.contains("not this node"), "{why}");
    // Claiming to come from someone else.
    let why = refusal(
        &mallory,
        &key,
        &h1,
        header(RecordKind::Report, h1, h3),
        &report,
        keep,
    )
    .await;
    assert!(why.contains("claims sender"), "{why}");
    // A patient's PHR forwarded without their consent: the hospital and the
    // doctor both refuse it.
    let why = refusal(
        &mallory,
        &key,
        &h1,
        header(RecordKind::Phr, h1, me),
        &phr,
        keep,
    )
    .await;
    assert!(why.contains("consent"), "{why}");
    let dkey = mallory
        .agree_key(&doctor)
        .await
        .expect("key with the doctor");
    let why = refusal(
        &mallory,
        &dkey,
        &doctor,
        header(RecordKind::Phr, doctor, me),
        &phr,
        keep,
    )
    .await;
    assert!(why.contains("consent"), "{why}");
    // A report about the patient, who gave the doctor no Reports consent.
    let why = refusal(
        &mallory,
        &dkey,
        &doctor,
        header(RecordKind::Report, doctor, me),
        &report,
        keep,
    )
    .await;
    assert!(why.contains("consent"), "{why}");
    assert!(inbox(&net, "doctor-1").is_empty());

    // Garbage and an oversized frame.
    let r = mallory.deliver_raw(&h1, vec![7u8; 100]).await.unwrap();
    assert!(refused(&r).contains("malformed"), "{r:?}");
    assert!(mallory.deliver_raw(&h1, vec![0u8; 13 << 20]).await.is_err());

    // The node kept running and said why, line by line.
    assert!(net.node("hospital-1").is_running());
    net.nodes
        .iter()
        .find(|n| n.name == "hospital-1")
        .unwrap()
        .status()
        .await
        .expect("still answers");
    let log = std::fs::read_to_string(net.node("hospital-1").dir.join("logs/node.log")).unwrap();
    for reason in [
        "replay",
        "authentication",
        "not this node",
        "claims sender",
        "consent",
        "malformed",
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains("refused an envelope") && l.contains(reason))
                || (reason == "replay" && log.contains("replay of a record already received")),
            "no logged refusal for {reason}"
        );
    }
    assert_eq!(inbox(&net, "hospital-1").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_after_their_use_limit_and_the_oldest_is_erased() {
    let mut net = TestNet::create(4, 0, 1, 0, 200).expect("devnet");
    // The patient's keys may seal two records each.
    let dd = qward_node::datadir::DataDir::new(&net.node("patient-1").dir);
    let mut cfg = dd.load_config().unwrap();
    cfg.key_agreement.key_max_uses = 2;
    std::fs::write(dd.config_file(), cfg.to_documented_toml()).unwrap();
    start_net(&HOSPITALS, &["patient-1"], &mut net).await;
    let phr = example("phr-ada-quill.json");
    let mut key_ids = Vec::new();
    for _ in 0..5 {
        let m: MessageInfo = send(&net, "patient-1", "hospital-1", "phr", &phr, true);
        assert_eq!(m.state, DeliveryState::Anchored, "{m:?}");
        let keys: Vec<KeyInfo> = json_of(&cli(&net, "patient-1", &["keys", "--json"]));
        assert!(
            keys.len() <= 2,
            "more than current and previous kept: {keys:?}"
        );
        key_ids.extend(keys.into_iter().map(|k| k.key_id));
    }
    key_ids.sort();
    key_ids.dedup();
    // Five records at two per key: three keys agreed in turn.
    assert_eq!(key_ids.len(), 3, "{key_ids:?}");
    let sessions: Vec<KeySessionInfo> =
        json_of(&cli(&net, "patient-1", &["keys", "sessions", "--json"]));
    assert_eq!(
        sessions
            .iter()
            .filter(|s| s.phase == qward_core::api::SessionPhase::Done)
            .count(),
        3,
        "{sessions:?}"
    );
    assert_eq!(inbox(&net, "hospital-1").len(), 5);
}

/// The sender crashes after the recipient's receipt and before its anchor is
/// final (the chain is stalled: two of four validators are down). Back up,
/// it offers the anchor transaction it signed before the crash, never a
/// second one, and once the chain moves the record is anchored exactly once,
/// by that transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_is_anchored_exactly_once_across_a_restart_between_delivery_and_anchor() {
    let mut net = TestNet::create(4, 0, 1, 0, 200).expect("devnet");
    start_net(&HOSPITALS, &["patient-1"], &mut net).await;
    // Without 3 of 4 validators no block is final from here on.
    net.node("hospital-3").stop();
    net.node("hospital-4").stop();
    let stalled_at = net.node("hospital-1").status().await.unwrap().height;

    let phr = example("phr-ada-quill.json");
    let sent: MessageInfo = send(&net, "patient-1", "hospital-1", "phr", &phr, false);
    let outbox_row = |net: &TestNet| -> Option<MessageInfo> {
        let rows: Vec<MessageInfo> = json_of(&cli(net, "patient-1", &["outbox", "--json"]));
        rows.into_iter().find(|m| m.record_id == sent.record_id)
    };
    let signed_before = wait_for(
        "the record delivered with its anchor transaction signed",
        Duration::from_secs(90),
        || async {
            Ok(outbox_row(&net)
                .filter(|m| m.state == DeliveryState::Delivered)
                .and_then(|m| m.anchor))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", net.node("patient-1").log_tail(30)));
    let height = net.node("hospital-1").status().await.unwrap().height;
    assert!(
        height <= stalled_at + 1,
        "the chain moved on ({stalled_at} -> {height}): the test needs it stalled"
    );

    net.node("patient-1").kill();
    net.node("patient-1").start().unwrap();
    wait_for("patient-1 back", Duration::from_secs(60), || async {
        let n = net.nodes.iter().find(|n| n.name == "patient-1").unwrap();
        Ok(n.status().await.ok().map(|_| ()))
    })
    .await
    .unwrap();
    // Its anchor check runs at start and on every block; give it a few.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        outbox_row(&net).and_then(|m| m.anchor).as_deref(),
        Some(signed_before.as_str()),
        "the same anchor transaction after the restart"
    );

    net.node("hospital-3").start().unwrap();
    net.node("hospital-4").start().unwrap();
    wait_for("the record anchored", Duration::from_secs(120), || async {
        Ok(outbox_row(&net)
            .filter(|m| m.state == DeliveryState::Anchored)
            .map(|_| ()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", net.node("patient-1").log_tail(30)));
    // Two more blocks, in case a second anchor were on its way.
    let anchored_at = net.node("hospital-1").status().await.unwrap().height;
    let hospital_1 = net.nodes.iter().find(|n| n.name == "hospital-1").unwrap();
    wait_for("two more blocks", Duration::from_secs(60), || async {
        let h = hospital_1.status().await?.height;
        Ok((h >= anchored_at + 2).then_some(()))
    })
    .await
    .unwrap();

    let n = net.nodes.iter().find(|n| n.name == "hospital-1").unwrap();
    let client = n.client(Duration::from_secs(10)).await.unwrap();
    let anchors: Vec<String> = client
        .chain_blocks(None, Some(500))
        .await
        .unwrap()
        .into_iter()
        .flat_map(|b| b.txs)
        .filter(|t| t.kind == "anchor-record")
        .map(|t| t.id)
        .collect();
    assert_eq!(
        anchors,
        vec![signed_before],
        "exactly one anchor, the one signed before the crash"
    );
    let outbox = outbox_row(&net).unwrap();
    assert_eq!(outbox.anchor, Some(anchors[0].clone()));
}
