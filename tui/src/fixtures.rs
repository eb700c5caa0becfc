//! Test fixtures: a devnet-like state (a patient node with hospital, doctor
//! and auditor peers, sessions, messages, blocks, consent, logs) built by
//! feeding API answers through `update`, as the node would.

use qward_core::api::{
    BlockSummary, ConsentInfo, DeliveryState, KeyInfo, KeySessionInfo, LogLine, MemberInfo,
    MessageInfo, NodeStatus, PeerSummary, RecordKindName, Reply, SessionPhase, TxSummary,
};
use qward_core::identity::Role;

use crate::message::Message;
use crate::state::{Connection, State};
use crate::theme::Theme;
use crate::update::update;

/// Fixed "now": 2026-11-18, some time in the afternoon (UTC).
pub const NOW_MS: u64 = 1_795_000_000_000;

pub const ME: &str = "acc-amara-0000000000000000000000000000000000000000000000000000";
pub const HOSPITAL: &str = "acc-stmarys-00000000000000000000000000000000000000000000000000";
pub const DOCTOR: &str = "acc-okafor-000000000000000000000000000000000000000000000000000";
pub const AUDITOR: &str = "acc-audit-0000000000000000000000000000000000000000000000000000";

pub fn member(account: &str, name: &str, role: Role, is_validator: bool) -> MemberInfo {
    MemberInfo {
        account: account.into(),
        peer_id: format!("12D3Koo{name}"),
        name: name.into(),
        role,
        is_validator,
    }
}

pub fn members() -> Vec<MemberInfo> {
    vec![
        member(HOSPITAL, "st-marys", Role::Hospital, true),
        member(ME, "amara", Role::Patient, false),
        member(DOCTOR, "dr-okafor", Role::Doctor, false),
        member(AUDITOR, "audit-office", Role::Auditor, false),
    ]
}

pub fn status() -> NodeStatus {
    NodeStatus {
        name: "amara".into(),
        peer_id: "12D3Kooamara".into(),
        account: ME.into(),
        role: Role::Patient,
        chain_id: "qward-devnet".into(),
        height: 42,
        finalized_height: 42,
        peers: 3,
        is_validator: false,
        validators: 1,
        mempool: 2,
        listen: vec!["/ip4/127.0.0.1/tcp/7101".into()],
        uptime_ms: 3_723_000,
        version: "0.1.0".into(),
        key_twin: None,
        consensus: None,
    }
}

pub fn peers() -> Vec<PeerSummary> {
    members()
        .into_iter()
        .filter(|m| m.account != ME)
        .enumerate()
        .map(|(i, m)| PeerSummary {
            peer_id: m.peer_id,
            account: Some(m.account),
            name: Some(m.name),
            role: Some(m.role),
            addrs: vec![format!("/ip4/127.0.0.1/tcp/710{i}")],
            rtt_ms: Some(3 + i as u64),
            gossip_score: Some(0.0),
        })
        .collect()
}

pub fn session(
    id: &str,
    peer: &str,
    phase: SessionPhase,
    qber: Option<f64>,
    eve: bool,
) -> KeySessionInfo {
    KeySessionInfo {
        session_id: id.into(),
        peer: format!("12D3Koo{peer}"),
        peer_name: Some(peer.into()),
        started_ms: NOW_MS - 60_000,
        phase,
        qubits_sent: 100_000,
        sifted: 24_800,
        qber,
        qber_upper_bound: qber.map(|q| q + 0.004),
        abort_threshold: 0.11,
        final_key_bits: if phase == SessionPhase::Done {
            8_192
        } else {
            0
        },
        eve_detected: eve,
        abort_reason: eve.then(|| "QBER bound above the 11% threshold".to_string()),
    }
}

pub fn sessions() -> Vec<KeySessionInfo> {
    let mut v = vec![
        session("s1", "st-marys", SessionPhase::Done, Some(0.021), false),
        session("s2", "dr-okafor", SessionPhase::Done, Some(0.034), false),
        session("s3", "st-marys", SessionPhase::Done, Some(0.028), false),
        session(
            "s4",
            "dr-okafor",
            SessionPhase::Correcting,
            Some(0.031),
            false,
        ),
    ];
    for (i, s) in v.iter_mut().enumerate() {
        s.started_ms = NOW_MS - 600_000 + i as u64 * 60_000;
    }
    v
}

pub fn message(
    id: &str,
    kind: RecordKindName,
    from: &str,
    to: &str,
    state: DeliveryState,
    age_ms: u64,
) -> MessageInfo {
    let name = |a: &str| {
        members()
            .into_iter()
            .find(|m| m.account == a)
            .map(|m| m.name)
    };
    MessageInfo {
        record_id: id.into(),
        kind,
        from: from.into(),
        from_name: name(from),
        to: to.into(),
        to_name: name(to),
        created_ms: NOW_MS - age_ms,
        state,
        bytes: 2_048,
        anchor: None,
        detail: (state == DeliveryState::Failed).then(|| "no consent".to_string()),
    }
}

pub fn blocks() -> Vec<BlockSummary> {
    (40..=42)
        .map(|h| BlockSummary {
            height: h,
            hash: format!("b1a4e{h}c0ffee00112233445566778899aabbccddeeff"),
            parent: format!("b1a4e{}c0ffee", h - 1),
            time_ms: NOW_MS - (43 - h) * 2_000,
            // The node names people in block summaries (its contacts' names).
            proposer: "st-marys".into(),
            round: 0,
            signers: vec!["st-marys".into()],
            txs: if h == 42 {
                vec![TxSummary {
                    id: "tx1".into(),
                    kind: "grant_consent".into(),
                    author: "amara".into(),
                    detail: "grant consent to dr-okafor for records until 2026-12-18".into(),
                }]
            } else {
                Vec::new()
            },
        })
        .collect()
}

pub fn consents() -> Vec<ConsentInfo> {
    vec![
        ConsentInfo {
            patient: ME.into(),
            patient_name: Some("amara".into()),
            grantee: DOCTOR.into(),
            grantee_name: Some("dr-okafor".into()),
            scope: "records".into(),
            expires_at_ms: Some(NOW_MS + 30 * 86_400_000),
            active: true,
        },
        ConsentInfo {
            patient: ME.into(),
            patient_name: Some("amara".into()),
            grantee: HOSPITAL.into(),
            grantee_name: Some("st-marys".into()),
            scope: "records".into(),
            // Revoked grants leave the chain; an inactive one has expired.
            expires_at_ms: Some(NOW_MS - 86_400_000),
            active: false,
        },
    ]
}

pub fn logs() -> Vec<LogLine> {
    // As the node serves them: the formatter's timestamp and level first.
    let line = |i: u64, level: &str, text: &str| LogLine {
        time_ms: NOW_MS - 10_000 + i * 1000,
        level: level.into(),
        line: format!(
            "2026-11-18T20:26:{:02}.000000Z {:>5} {text}",
            30 + i,
            level.to_uppercase()
        ),
    };
    vec![
        line(
            0,
            "info",
            "node started, listening on /ip4/127.0.0.1/tcp/7101",
        ),
        line(1, "info", "connected to st-marys"),
        line(2, "debug", "gossip: block 41 received"),
        line(3, "warn", "peer audit-office slow to answer ping (900 ms)"),
        line(4, "info", "key agreement with dr-okafor: 8192-bit key"),
        line(5, "error", "delivery of record r-3 failed: no consent"),
    ]
}

pub fn keys() -> Vec<KeyInfo> {
    vec![KeyInfo {
        key_id: "k1".into(),
        peer: "12D3Koost-marys".into(),
        peer_name: Some("st-marys".into()),
        created_ms: NOW_MS - 500_000,
        qber: 0.021,
        bits: 8192,
        uses: 1,
        retired: false,
    }]
}

/// Feeds an answer to `method` through `update`.
pub fn answer(state: &mut State, method: &'static str, reply: Reply) {
    update(
        state,
        Message::Response {
            method,
            result: Ok(reply),
        },
    );
}

/// A connected state with nothing loaded yet.
pub fn empty_state() -> State {
    let mut s = State::new(Theme::plain());
    update(&mut s, Message::Tick { now_ms: NOW_MS });
    update(&mut s, Message::Connected);
    s
}

/// A connected patient node with everything loaded.
pub fn full_state() -> State {
    let mut s = empty_state();
    answer(&mut s, "chain_members", Reply::Members(members()));
    answer(&mut s, "status", Reply::Status(status()));
    answer(&mut s, "peers", Reply::Peers(peers()));
    answer(&mut s, "key_sessions", Reply::KeySessions(sessions()));
    answer(&mut s, "keys", Reply::Keys(keys()));
    answer(
        &mut s,
        "inbox",
        Reply::Inbox(vec![
            message(
                "r-1",
                RecordKindName::Report,
                DOCTOR,
                ME,
                DeliveryState::Received,
                120_000,
            ),
            message(
                "r-2",
                RecordKindName::Phr,
                HOSPITAL,
                ME,
                DeliveryState::Received,
                7_200_000,
            ),
        ]),
    );
    answer(
        &mut s,
        "outbox",
        Reply::Outbox(vec![
            message(
                "r-3",
                RecordKindName::Phr,
                ME,
                DOCTOR,
                DeliveryState::Failed,
                30_000,
            ),
            message(
                "r-4",
                RecordKindName::Phr,
                ME,
                HOSPITAL,
                DeliveryState::Anchored,
                3_600_000,
            ),
        ]),
    );
    answer(&mut s, "chain_blocks", Reply::Blocks(blocks()));
    answer(&mut s, "chain_consent", Reply::Consents(consents()));
    answer(&mut s, "logs", Reply::Logs(logs()));
    s.notice = None;
    s
}

/// The full state after the node went away.
pub fn disconnected_state() -> State {
    let mut s = full_state();
    update(&mut s, Message::Disconnected("connection refused".into()));
    assert_eq!(s.connection, Connection::Down("connection refused".into()));
    s
}
