//! The network event handler in-process (testkit: a real store and pool, a
//! fake network): every gossiped message gets a verdict, forgeries are
//! rejected (the relaying peer penalised), honest duplicates ignored.

use libp2p::gossipsub::MessageId;
use qward_core::chain::{RecordAnchor, Transaction, TxKind};
use tokio::sync::mpsc;

use super::*;
use crate::net::{GossipValidation, PeerId};
use crate::node::testkit::{self, Seen};

fn gossip(topic: String, data: Vec<u8>) -> NetworkEvent {
    let peer = PeerId::random();
    NetworkEvent::Gossip {
        topic,
        source: peer,
        propagation_source: peer,
        message_id: MessageId::new(&data),
        data,
    }
}

async fn verdict(seen: &mut mpsc::UnboundedReceiver<Seen>) -> GossipValidation {
    loop {
        match seen.recv().await.expect("the node reports a verdict") {
            Seen::Verdict(v) => return v,
            _ => continue,
        }
    }
}

#[tokio::test]
async fn gossiped_transactions_are_judged_and_forgeries_rejected() {
    let mut node = testkit::hospital(1, 0);
    let mut seen = node.capture_network();
    let topic = node.ctx.view().tx_topic();
    let patient = qward_core::identity::Identity::from_secret_bytes(
        node.chain.patient.secret_bytes().as_slice(),
    )
    .unwrap();
    let hospital = node.chain.keys[0].account();
    let genuine = node.chain.sign(
        &patient,
        TxKind::AnchorRecord(RecordAnchor {
            record_id: qward_core::chain::Hash([1; 32]),
            ciphertext_hash: qward_core::chain::Hash([2; 32]),
            recipient: hospital,
        }),
    );

    handle(&node.ctx, gossip(topic.clone(), genuine.encode())).await;
    assert_eq!(verdict(&mut seen).await, GossipValidation::Accept);
    assert!(node.ctx.pool.contains(genuine.id()).await);

    // The same transaction again: an honest relay's duplicate, no penalty.
    handle(&node.ctx, gossip(topic.clone(), genuine.encode())).await;
    assert_eq!(verdict(&mut seen).await, GossipValidation::Ignore);

    // Signed by the hospital in the patient's name.
    let forged = Transaction {
        nonce: genuine.tx.nonce + 1,
        ..genuine.tx.clone()
    }
    .sign(&node.chain.state.genesis_hash, &node.chain.keys[0]);
    handle(&node.ctx, gossip(topic.clone(), forged.encode())).await;
    assert_eq!(verdict(&mut seen).await, GossipValidation::Reject);

    handle(&node.ctx, gossip(topic, vec![0xff; 40])).await;
    assert_eq!(verdict(&mut seen).await, GossipValidation::Reject);
    assert!(!node.ctx.pool.contains(forged.id()).await);
}

#[tokio::test]
async fn consensus_gossip_for_another_chain_or_garbage_is_rejected() {
    let mut node = testkit::hospital(1, 0);
    let mut seen = node.capture_network();
    let topic = node.ctx.view().consensus_topic();
    handle(&node.ctx, gossip(topic.clone(), vec![1, 2, 3])).await;
    assert_eq!(verdict(&mut seen).await, GossipValidation::Reject);
    handle(&node.ctx, gossip("qward/elsewhere".into(), vec![1])).await;
    assert_eq!(verdict(&mut seen).await, GossipValidation::Reject);
}

/// A prevote for height 1 by `signer`, on `chain_id`, signed for `genesis`.
fn prevote(
    chain_id: u64,
    genesis: &qward_core::chain::Hash,
    signer: &qward_core::identity::Identity,
) -> Vec<u8> {
    use qward_core::consensus::{Vote, VoteStep};
    ConsensusMessage::Vote(
        Vote {
            chain_id,
            height: 1,
            round: 0,
            step: VoteStep::Prevote,
            block_hash: None,
            validator: signer.account(),
        }
        .sign(genesis, signer),
    )
    .encode()
}

#[tokio::test]
async fn consensus_votes_are_judged_by_chain_signature_and_signer() {
    let mut node = testkit::hospital(2, 0);
    let mut seen = node.capture_network();
    let topic = node.ctx.view().consensus_topic();
    let (chain_id, genesis) = (node.chain.genesis.chain_id, node.chain.state.genesis_hash);
    let validator = &node.chain.keys[1];

    // A genuine vote of another validator for the next height: accepted and
    // handed to the driver.
    handle(
        &node.ctx,
        gossip(topic.clone(), prevote(chain_id, &genesis, validator)),
    )
    .await;
    assert_eq!(verdict(&mut seen).await, GossipValidation::Accept);
    assert!(matches!(node.driver.try_recv(), Ok(DriverInput::Gossip(_))));

    // Another chain's vote, a vote signed for another genesis, and a vote by
    // a key that is no validator: rejected, and the driver never sees them.
    let other_genesis = qward_core::chain::Hash([7; 32]);
    let stranger = &node.chain.patient;
    for bad in [
        prevote(chain_id + 1, &genesis, validator),
        prevote(chain_id, &other_genesis, validator),
        prevote(chain_id, &genesis, stranger),
    ] {
        handle(&node.ctx, gossip(topic.clone(), bad)).await;
        assert_eq!(verdict(&mut seen).await, GossipValidation::Reject);
    }
    assert!(
        node.driver.try_recv().is_err(),
        "nothing more reached the driver"
    );
}
