//! Permissioning tests: non-members are refused, admitted without a restart, disconnected on removal,
//! and gossip they author is rejected even when a member relays it.

use super::*;
use crate::net::{GossipValidation, NetError};

const TOPIC: &str = "qward/test-chain/tx";

fn connected_to(events: &[NetworkEvent], who: PeerId) -> bool {
    events
        .iter()
        .any(|e| matches!(e, NetworkEvent::PeerConnected(p) if *p == who))
}

#[tokio::test]
async fn non_member_is_refused_then_admitted_without_restart_then_removed() {
    let mut n1 = TestNode::start(1, test_config(&[1, 2])).await;
    // Node 3 believes node 1 is a member and keeps dialling it.
    let mut c3 = test_config(&[1, 3]);
    c3.bootstrap = vec![n1.addr.clone()];
    let n3 = TestNode::start(3, c3).await;
    n1.client.subscribe(TOPIC).await.expect("subscribe");
    n3.client.subscribe(TOPIC).await.expect("subscribe");

    // Refused: node 1 denies every attempt and never reports node 3.
    assert!(
        metrics_eventually(&n1.client, |m| m.connections_denied >= 2).await,
        "node 3's dials reach node 1 and are denied"
    );
    assert!(
        !connected_to(&n1.queued_events(), peer(3)),
        "a non-member was reported connected"
    );
    assert!(n1.client.peers().await.expect("peers").is_empty());
    let _ = n3.client.publish(TOPIC, b"spam".to_vec()).await;
    assert_eq!(
        n1.client.metrics().gossip_received,
        0,
        "no gossip from a non-member"
    );
    assert!(
        peers_eventually(&n3.client, |p| p.is_empty()).await,
        "node 3 holds no connection to node 1"
    );

    // Admitted: node 1 adds node 3; node 3's redial connects, no restart.
    n1.client
        .set_members(members(&[1, 2, 3]))
        .await
        .expect("set members");
    assert!(
        n1.wait_for(|e| matches!(e, NetworkEvent::PeerConnected(p) if *p == peer(3)).then_some(()))
            .await
            .is_some(),
        "node 3 connects once it is a member"
    );
    wait_topic(&n3, TOPIC, &[peer(1)], false).await;
    n3.client
        .publish(TOPIC, b"tx from 3".to_vec())
        .await
        .expect("publish");
    let g = n1
        .next_gossip()
        .await
        .expect("gossip from the new member arrives");
    assert_eq!((g.source, g.data.as_slice()), (peer(3), &b"tx from 3"[..]));

    // Removed: node 1 disconnects node 3 and keeps refusing its redials.
    let denied_before = n1.client.metrics().connections_denied;
    n1.client
        .set_members(members(&[1, 2]))
        .await
        .expect("set members");
    assert!(
        n1.wait_for(
            |e| matches!(e, NetworkEvent::PeerDisconnected(p) if *p == peer(3)).then_some(())
        )
        .await
        .is_some(),
        "a removed member is disconnected"
    );
    assert!(
        metrics_eventually(&n1.client, |m| m.connections_denied > denied_before).await,
        "the removed member's redials are denied"
    );
    assert!(!connected_to(&n1.queued_events(), peer(3)));
    assert!(n1.client.peers().await.expect("peers").is_empty());
    assert_eq!(
        n1.client
            .request(crate::net::RequestProtocol::Msg, peer(3), b"x".to_vec())
            .await,
        Err(NetError::NotMember(peer(3)))
    );
    n1.stop().await;
    n3.stop().await;
}

#[tokio::test]
async fn dialling_a_non_member_is_refused_locally() {
    let n1 = TestNode::start(1, test_config(&[1])).await;
    let n2 = TestNode::start(2, test_config(&[1, 2])).await;
    let result = n1.client.dial(n2.addr.clone()).await;
    assert!(
        matches!(result, Err(NetError::Dial { .. })),
        "got {result:?}"
    );
    assert_eq!(
        n1.client.metrics().connections_denied,
        0,
        "refused before any connection"
    );
    n1.stop().await;
    n2.stop().await;
}

/// Node 2 (stale membership) accepts and forwards gossip authored by node 3,
/// which node 1 does not count as a member: node 1 must reject it.
#[tokio::test]
async fn gossip_authored_by_a_non_member_is_rejected_even_when_relayed() {
    let mut n1 = TestNode::start(1, test_config(&[1, 2])).await;
    let mut n2 = TestNode::start(2, test_config(&[1, 2, 3])).await;
    let mut n3 = TestNode::start(3, test_config(&[2, 3])).await;
    connect(&mut n1, &mut n2).await;
    connect(&mut n3, &mut n2).await;
    for n in [&n1, &n2, &n3] {
        n.client.subscribe(TOPIC).await.expect("subscribe");
    }
    wait_topic(&n2, TOPIC, &[peer(1)], true).await;
    wait_topic(&n3, TOPIC, &[peer(2)], false).await;

    n3.client
        .publish(TOPIC, b"tx from outsider".to_vec())
        .await
        .expect("publish");
    let g = n2.next_gossip().await.expect("node 2 receives it");
    assert_eq!(g.source, peer(3));
    n2.client
        .report_validation(g.message_id, g.propagation_source, GossipValidation::Accept)
        .await
        .expect("report");
    assert!(
        metrics_eventually(&n1.client, |m| m.gossip_rejected_non_member >= 1).await,
        "node 1 rejects gossip authored by a non-member"
    );

    n2.client
        .publish(TOPIC, b"tx from member".to_vec())
        .await
        .expect("publish");
    let first = n1.next_gossip().await.expect("member gossip arrives");
    assert_eq!(
        first.data, b"tx from member",
        "the outsider's message was delivered"
    );
    assert_eq!(first.source, peer(2));
    for n in [n1, n2, n3] {
        n.stop().await;
    }
}
