//! The key-agreement task in-process: two nodes of a test chain whose
//! `/qward/qkd/1` requests reach each other's task through a fake network
//! (testkit: real stores and pools, no swarm, no socket).

use qward_core::api::SessionPhase;
use qward_core::keyagree::{AgreeResponse, Initiator};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;
use crate::node::testkit::{self, TestNode};

fn pair() -> (TestNode, TestNode) {
    let mut a = testkit::hospital(2, 0);
    let b = testkit::hospital(2, 1);
    let _seen = a.connect(vec![b.reachable()]);
    (a, b)
}

fn key_ids(node: &TestNode) -> Vec<qward_core::hybrid::KeyId> {
    node.ctx.keys.records().iter().map(|r| r.key_id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_agreed_once_for_concurrent_callers_and_held_at_both_ends() {
    let (a, b) = pair();
    let peer = b.ctx.account;
    // Three callers at once: one session runs, all three get its key.
    let (x, y, z) = tokio::join!(
        a.ctx.agree.ensure_key(peer),
        a.ctx.agree.ensure_key(peer),
        a.ctx.agree.ensure_key(peer)
    );
    for r in [x, y, z] {
        r.expect("a key is agreed");
    }
    let sessions = a.ctx.agree.recent().await;
    assert_eq!(
        sessions.len(),
        1,
        "one session for three callers: {sessions:?}"
    );
    assert_eq!(sessions[0].phase, SessionPhase::Done);
    assert!(a.ctx.keys.has_fresh_key(&peer, now_ms()));
    assert!(b.ctx.keys.has_fresh_key(&a.ctx.account, now_ms()));
    assert_eq!(key_ids(&a), key_ids(&b), "both ends hold the same key");
    // The responder shows the same session, done.
    let served = b.ctx.agree.recent().await;
    assert_eq!(served.len(), 1);
    assert_eq!(served[0].session_id, sessions[0].session_id);
    assert_eq!(served[0].phase, SessionPhase::Done);
    // A fresh key is there: no new session.
    a.ctx.agree.ensure_key(peer).await.expect("still a key");
    assert_eq!(a.ctx.agree.recent().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eavesdropper_on_the_link_aborts_the_session_and_no_key_is_kept() {
    let (a, b) = pair();
    let peer = b.ctx.account;
    let mut link = link_params(&a.ctx.agree.link(peer).await.expect("a link"), "b".into());
    link.eve_fraction = 1.0;
    a.ctx
        .agree
        .set_link(peer, link)
        .await
        .expect("a valid link");
    let info = a.ctx.agree.agree(peer).await.expect("the session runs");
    assert_eq!(info.phase, SessionPhase::Aborted);
    assert!(info.eve_detected, "{info:?}");
    let qber = info.qber.expect("a QBER was estimated");
    assert!(
        qber > 0.15,
        "intercept-resend on every qubit gives ~25%: {qber}"
    );
    assert!(key_ids(&a).is_empty() && key_ids(&b).is_empty());
    match a.ctx.agree.ensure_key(peer).await {
        Err(KeyUnavailable::Aborted { .. }) => {}
        other => panic!("an eavesdropped link gives no key: {other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_peer_is_a_failure_not_an_aborted_session() {
    let mut a = testkit::hospital(2, 0);
    let b = testkit::hospital(2, 1);
    let _seen = a.connect(Vec::new());
    match a.ctx.agree.agree(b.ctx.account).await {
        Err(KeyUnavailable::Failed { reason, .. }) => {
            assert!(reason.contains("not reached"), "{reason}");
        }
        other => panic!("no answer is a failure: {other:?}"),
    }
    let shown = a.ctx.agree.recent().await;
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].phase, SessionPhase::Aborted, "{shown:?}");
}

#[tokio::test]
async fn responder_sessions_are_bounded_per_peer_and_in_all_and_a_session_opens_once() {
    let chain_size = MAX_RESPONDERS + 2;
    let b = testkit::hospital(chain_size, 0);
    let keys = &b.chain.keys;
    let open = |from: usize, seed: u64| {
        let mut rng = StdRng::seed_from_u64(seed);
        let (_, open) = Initiator::new(
            &keys[from],
            b.ctx.account,
            b.ctx.config.key_agreement.protocol(),
            b.ctx.config.key_agreement.link(),
            qward_core::keyagree::Purpose::Messaging,
            None,
            &mut rng,
        )
        .expect("an initiator");
        open.encode().expect("an encoded open")
    };
    let peer = |i: usize| crate::net::peer_id_from_account(&keys[i].account()).expect("a peer id");
    let refused = |bytes: &[u8]| match AgreeResponse::decode(bytes).expect("an answer") {
        AgreeResponse::Refused { reason } => Some(reason),
        _ => None,
    };
    // One peer gets its share of sessions, and no more.
    for seed in 0..MAX_RESPONDERS_PER_PEER as u64 {
        let answer = b.ctx.agree.serve(peer(1), open(1, seed)).await;
        assert_eq!(refused(&answer), None, "session {seed} opens");
    }
    let again = b.ctx.agree.serve(peer(1), open(1, 0)).await;
    assert!(
        refused(&again).is_some_and(|r| r.contains("already open")),
        "the same session twice"
    );
    let greedy = b.ctx.agree.serve(peer(1), open(1, 99)).await;
    assert!(
        refused(&greedy).is_some_and(|r| r.contains("with this node")),
        "one peer cannot take every slot"
    );
    // Others fill the rest, up to the bound over all peers.
    let mut open_now = MAX_RESPONDERS_PER_PEER;
    let mut from = 2;
    while open_now < MAX_RESPONDERS {
        let answer = b.ctx.agree.serve(peer(from), open(from, 7)).await;
        assert_eq!(refused(&answer), None, "peer {from} opens");
        open_now += 1;
        from += 1;
    }
    let one_more = b.ctx.agree.serve(peer(from), open(from, 7)).await;
    assert!(
        refused(&one_more).is_some_and(|r| r.contains("too many key-agreement sessions at once")),
        "the bound holds"
    );
    let garbage = b.ctx.agree.serve(peer(2), vec![0xff; 64]).await;
    assert!(
        refused(&garbage).is_some(),
        "garbage is refused, not a panic"
    );
}
