//! Gossip tests: delivery to every member, forwarding only after acceptance, scoring, size limits.

use super::*;
use crate::net::{GossipValidation, NetError, RequestProtocol};

const TOPIC: &str = "qward/test-chain/consensus";

#[tokio::test]
async fn three_members_gossip_reaches_the_others() {
    let mut n1 = TestNode::start(1, test_config(&[1, 2, 3])).await;
    let mut n2 = TestNode::start(2, test_config(&[1, 2, 3])).await;
    let mut n3 = TestNode::start(3, test_config(&[1, 2, 3])).await;
    connect(&mut n2, &mut n1).await;
    connect(&mut n3, &mut n1).await;
    connect(&mut n3, &mut n2).await;
    for n in [&n1, &n2, &n3] {
        assert!(n.client.subscribe(TOPIC).await.expect("subscribe"));
    }
    wait_topic(&n1, TOPIC, &[peer(2), peer(3)], false).await;
    wait_topic(&n2, TOPIC, &[peer(1), peer(3)], false).await;
    wait_topic(&n3, TOPIC, &[peer(1), peer(2)], false).await;

    let id = n1
        .client
        .publish(TOPIC, b"vote from 1".to_vec())
        .await
        .expect("publish");
    for n in [&mut n2, &mut n3] {
        let g = n.next_gossip().await.expect("gossip from node 1 arrives");
        assert_eq!(g.topic, TOPIC);
        assert_eq!(g.source, peer(1));
        assert_eq!(g.data, b"vote from 1");
        assert_eq!(
            g.message_id, id,
            "message id is the same everywhere (blake3 of data)"
        );
        let pending = n
            .client
            .report_validation(g.message_id, g.propagation_source, GossipValidation::Accept)
            .await
            .expect("report");
        assert!(pending, "the message was awaiting validation");
    }

    n3.client
        .publish(TOPIC, b"vote from 3".to_vec())
        .await
        .expect("publish");
    for n in [&mut n1, &mut n2] {
        let g = n.next_gossip().await.expect("gossip from node 3 arrives");
        assert_eq!(
            (g.source, g.data.as_slice()),
            (peer(3), &b"vote from 3"[..])
        );
    }

    assert_eq!(
        n1.client.publish(TOPIC, b"vote from 1".to_vec()).await,
        Err(NetError::DuplicateGossip),
        "same data, same id: refused as a duplicate"
    );
    let m1 = n1.client.metrics();
    assert_eq!(m1.gossip_published, 1);
    assert_eq!(m1.gossip_received, 1);
    let m2 = n2.client.metrics();
    assert_eq!(m2.gossip_accepted, 1);
    assert_eq!(m2.peers_connected, 2);
    for n in [n1, n2, n3] {
        n.stop().await;
    }
}

/// Line 1 - 2 - 3: node 2 rejects a message from 1, which must not reach 3,
/// and 1's score at node 2 drops; a message it accepts afterwards does reach 3.
#[tokio::test]
async fn rejected_gossip_is_not_forwarded_and_lowers_the_sender_score() {
    let mut n1 = TestNode::start(1, test_config(&[1, 2, 3])).await;
    let mut n2 = TestNode::start(2, test_config(&[1, 2, 3])).await;
    let mut n3 = TestNode::start(3, test_config(&[1, 2, 3])).await;
    connect(&mut n1, &mut n2).await;
    connect(&mut n3, &mut n2).await;
    for n in [&n1, &n2, &n3] {
        n.client.subscribe(TOPIC).await.expect("subscribe");
    }
    wait_topic(&n1, TOPIC, &[peer(2)], false).await;
    wait_topic(&n2, TOPIC, &[peer(1), peer(3)], true).await;

    n1.client
        .publish(TOPIC, b"invalid block".to_vec())
        .await
        .expect("publish");
    let bad = n2.next_gossip().await.expect("node 2 gets the message");
    assert_eq!(bad.data, b"invalid block");
    assert_eq!(bad.propagation_source, peer(1));
    assert!(
        n2.client
            .report_validation(
                bad.message_id,
                bad.propagation_source,
                GossipValidation::Reject
            )
            .await
            .expect("report")
    );
    let score = n2
        .client
        .peers()
        .await
        .expect("peers")
        .into_iter()
        .find(|p| p.peer_id == peer(1))
        .and_then(|p| p.gossip_score)
        .expect("node 1 is connected and scored");
    assert!(
        score < 0.0,
        "a rejected message lowers the sender's score, got {score}"
    );

    n1.client
        .publish(TOPIC, b"valid block".to_vec())
        .await
        .expect("publish");
    let good = n2
        .next_gossip()
        .await
        .expect("node 2 gets the second message");
    assert_eq!(good.data, b"valid block");
    n2.client
        .report_validation(
            good.message_id,
            good.propagation_source,
            GossipValidation::Accept,
        )
        .await
        .expect("report");
    // The rejected message was published first; had it been forwarded it
    // would be the first thing node 3 sees.
    let at3 = n3
        .next_gossip()
        .await
        .expect("the accepted message is forwarded to node 3");
    assert_eq!(at3.data, b"valid block");
    assert_eq!((at3.source, at3.propagation_source), (peer(1), peer(2)));
    let m2 = n2.client.metrics();
    assert_eq!((m2.gossip_rejected, m2.gossip_accepted), (1, 1));
    for n in [n1, n2, n3] {
        n.stop().await;
    }
}

/// Node 1 allows 1 MiB gossip, node 2 only 16 KiB: node 2 refuses to send
/// above its limit and drops what node 1 sends above it, and keeps working.
#[tokio::test]
async fn oversized_gossip_is_refused_locally_and_dropped_by_the_receiver() {
    let mut big = test_config(&[1, 2, 3]);
    big.limits.gossip_bytes = 1024 * 1024;
    let mut small = test_config(&[1, 2, 3]);
    small.limits.gossip_bytes = 16 * 1024;
    let mut n1 = TestNode::start(1, big).await;
    let mut n2 = TestNode::start(2, small).await;
    let mut n3 = TestNode::start(3, test_config(&[1, 2, 3])).await;
    connect(&mut n1, &mut n2).await;
    connect(&mut n3, &mut n2).await;
    for n in [&n1, &n2, &n3] {
        n.client.subscribe(TOPIC).await.expect("subscribe");
    }
    wait_topic(&n1, TOPIC, &[peer(2)], false).await;
    wait_topic(&n3, TOPIC, &[peer(2)], false).await;

    assert_eq!(
        n2.client.publish(TOPIC, vec![7; 100 * 1024]).await,
        Err(NetError::GossipTooLarge {
            len: 100 * 1024,
            limit: 16 * 1024
        }),
        "node 2 refuses to send above its own limit"
    );
    n1.client
        .publish(TOPIC, vec![7; 100 * 1024])
        .await
        .expect("within node 1's limit");
    // Published after the oversized one: if node 2 had delivered the
    // oversized message, it would come first.
    n3.client
        .publish(TOPIC, b"small from 3".to_vec())
        .await
        .expect("publish");
    let g = n2
        .next_gossip()
        .await
        .expect("node 2 still delivers gossip");
    assert_eq!(
        (g.source, g.data.as_slice()),
        (peer(3), &b"small from 3"[..])
    );
    // The two messages travel on different connections, so also give the
    // oversized one a bounded window to (wrongly) show up.
    let late = tokio::time::timeout(Duration::from_secs(1), n2.next_gossip()).await;
    assert!(
        late.is_err(),
        "the oversized message was delivered: {late:?}"
    );
    assert_eq!(n2.client.metrics().gossip_received, 1);

    // The connection to the peer that sent it still serves requests.
    let req = tokio::spawn({
        let c = n1.client.clone();
        async move {
            c.request(RequestProtocol::Sync, peer(2), b"ping".to_vec())
                .await
        }
    });
    let id = n2
        .wait_for(|e| match e {
            NetworkEvent::InboundRequest { id, .. } => Some(*id),
            _ => None,
        })
        .await
        .expect("request arrives");
    n2.client
        .respond(id, b"pong".to_vec())
        .await
        .expect("respond");
    assert_eq!(req.await.expect("task").expect("response"), b"pong");
    for n in [n1, n2, n3] {
        n.stop().await;
    }
}
