//! A registered member turned hostile: hospital-4's key on a bare libp2p swarm
//! (its node not running) attacks three running validators of a 4-validator
//! devnet with malformed, oversized, forged and replayed gossip on the
//! consensus and transaction topics, and with malformed, oversized,
//! out-of-range and flooding `/qward/sync/1` requests. The validators must
//! keep finalizing the same chain, stay up, refuse every bad message with a
//! logged reason, penalise the attacker's gossip score, and admit no replay.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use qward_core::api::{TxRequest, TxStatus, TxSubmitted};
use qward_core::chain::{Hash, Transaction, TxKind};
use qward_core::codec;
use qward_core::consensus::{ConsensusMessage, Vote, VoteStep};
use qward_core::identity::{AccountId, Identity, Role};
use qward_node::api::QwardApiClient;
use qward_node::net::{MessageLimits, PeerId, peer_id_from_account};
use qward_node::node::sync::{MAX_BLOCKS_PER_RESPONSE, SyncRequest, SyncResponse};
use qward_tests::{Impostor, TestNet, account_of, wait_for};

const HONEST: [&str; 3] = ["hospital-1", "hospital-2", "hospital-3"];
const ATTACKER: &str = "hospital-4";
const MIB: usize = 1024 * 1024;
/// Transactions submitted (and later replayed) by the test.
const REAL_TXS: usize = 5;
/// How long gossipsub remembers a message id (its `duplicate_cache_time`), plus
/// a margin: a replay after this reaches the node's own checks instead of
/// being dropped as a network duplicate.
const GOSSIP_DEDUP_WINDOW: Duration = Duration::from_secs(66);

/// Log reasons each honest node must give for the attacker's gossip.
const REJECTION_REASONS: [&str; 5] = [
    "message exceeds the gossip size limit",
    "malformed consensus message",
    "consensus message refused: the signature does not verify",
    "malformed transaction",
    "signature does not verify",
];

fn node<'a>(net: &'a TestNet, name: &str) -> &'a qward_tests::TestNode {
    net.nodes.iter().find(|n| n.name == name).expect("node")
}

async fn height(net: &TestNet, name: &str) -> anyhow::Result<u64> {
    Ok(node(net, name).status().await?.height)
}

async fn wait_all_height(net: &TestNet, target: u64, timeout: Duration) {
    for name in HONEST {
        let reached = wait_for(
            &format!("{name} to reach height {target}"),
            timeout,
            || async { Ok((height(net, name).await? >= target).then_some(())) },
        )
        .await;
        if let Err(e) = reached {
            panic!("{e}\n--- {name} log ---\n{}", node(net, name).log_tail(60));
        }
    }
}

async fn metric(net: &TestNet, name: &str, key: &str) -> f64 {
    let m = node(net, name).metrics().await.expect("metrics");
    *m.get(key)
        .unwrap_or_else(|| panic!("{name} has no metric {key}"))
}

/// "devnet (1234)" -> 1234.
fn chain_id_of(status_chain_id: &str) -> u64 {
    status_chain_id
        .rsplit_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("chain id not in {status_chain_id:?}"))
}

fn fresh_account(seed: u8) -> AccountId {
    Identity::from_secret_bytes(&[seed; 32])
        .expect("seed")
        .account()
}

fn decode_sync(bytes: &[u8]) -> SyncResponse {
    codec::decode(bytes, 32 * MIB).expect("a sync response")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_member_cannot_stop_finality_or_get_bad_gossip_or_requests_accepted() {
    let mut net = TestNet::create(4, 0, 0, 0, 300).expect("devnet");
    for n in HONEST {
        net.node(n).start_with(&["--metrics"]).expect("start");
    }
    wait_all_height(&net, 3, Duration::from_secs(120)).await;
    let chain_id = chain_id_of(&node(&net, "hospital-1").status().await.unwrap().chain_id);
    let genesis = qward_genesis::load_genesis(&net.node("hospital-1").dir.join("genesis.toml"))
        .expect("genesis")
        .hash();
    let consensus_topic = format!("qward/{chain_id}/consensus");
    let tx_topic = format!("qward/{chain_id}/tx");

    // The attacker may send what honest nodes refuse to send.
    let limits = MessageLimits {
        gossip_bytes: 8 * MIB,
        sync_bytes: 20 * MIB,
        ..MessageLimits::default()
    };
    let attacker = Impostor::start_with_limits(&net, ATTACKER, &HONEST, limits)
        .await
        .expect("impostor");
    let attacker_peer = attacker.client.local_peer_id();
    let honest: Vec<PeerId> = HONEST
        .iter()
        .map(|n| peer_id_from_account(&account_of(&net, n)).unwrap())
        .collect();
    for p in &honest {
        attacker.connected_to(p).await.expect("connected");
    }
    attacker
        .subscribe(&consensus_topic, &honest)
        .await
        .expect("consensus topic");
    attacker
        .subscribe(&tx_topic, &honest)
        .await
        .expect("tx topic");

    // Real traffic to capture: transactions through hospital-1's API, and
    // the votes and proposals of the blocks that finalize them.
    let h1 = node(&net, "hospital-1")
        .client(Duration::from_secs(10))
        .await
        .unwrap();
    let mut submitted = Vec::new();
    for i in 0..REAL_TXS {
        let member = fresh_account(100 + i as u8).to_hex();
        let sub: TxSubmitted = h1
            .tx_submit(TxRequest::RegisterMember {
                member,
                role: Role::Doctor,
            })
            .await
            .expect("submit");
        submitted.push(sub);
    }
    let mut final_heights = HashMap::new();
    for sub in &submitted {
        let h = wait_for(
            "a transaction to be final",
            Duration::from_secs(60),
            || async {
                let st: TxStatus = h1.chain_tx(sub.id.clone()).await?;
                Ok(st.height)
            },
        )
        .await
        .expect("final");
        final_heights.insert(sub.id.clone(), h);
    }
    let tip = height(&net, "hospital-1").await.unwrap();
    wait_all_height(&net, tip + 2, Duration::from_secs(60)).await;
    let captured = attacker.take_gossip().await;
    let captured_at = Instant::now();
    let real_txs: Vec<Vec<u8>> = captured
        .iter()
        .filter(|g| g.topic == tx_topic)
        .map(|g| g.data.clone())
        .collect();
    let real_consensus: Vec<Vec<u8>> = captured
        .iter()
        .filter(|g| g.topic == consensus_topic && ConsensusMessage::decode(&g.data).is_ok())
        .map(|g| g.data.clone())
        .take(30)
        .collect();
    assert_eq!(
        real_txs.len(),
        REAL_TXS,
        "the attacker did not capture every transaction"
    );
    assert!(
        real_consensus.len() >= 3,
        "captured {} consensus messages",
        real_consensus.len()
    );

    let mut rejected_before = HashMap::new();
    for n in HONEST {
        rejected_before.insert(n, metric(&net, n, "qward_gossip_rejected_total").await);
    }
    let attack_start = height(&net, "hospital-1").await.unwrap();

    // Gossip attacks, one a second so each is judged before the attacker's
    // score falls below the graylist threshold and its gossip is dropped unread.
    let next_height = attack_start + 1;
    let forged_vote = ConsensusMessage::Vote(
        Vote {
            chain_id,
            height: next_height,
            round: 0,
            step: VoteStep::Prevote,
            block_hash: Some(Hash([7; 32])),
            // Claims to be hospital-1's vote; signed with hospital-4's key.
            validator: account_of(&net, "hospital-1"),
        }
        .sign(&genesis, &attacker.identity),
    );
    let forged_tx = Transaction {
        chain_id,
        author: account_of(&net, "hospital-1"),
        nonce: submitted.last().unwrap().nonce + 1,
        kind: TxKind::RegisterMember {
            account: fresh_account(200),
            role: Role::Doctor,
        },
    }
    .sign(&genesis, &attacker.identity);
    let attacks: [(&str, Vec<u8>); 5] = [
        (&tx_topic, vec![0x5a; 4 * MIB + 1]),
        (
            &consensus_topic,
            b"\xff\xfe\xfd not a consensus message".to_vec(),
        ),
        (&consensus_topic, forged_vote.encode()),
        (&tx_topic, b"\x01\x02\x03 not a transaction at all".to_vec()),
        (&tx_topic, forged_tx.encode()),
    ];
    for (topic, data) in attacks {
        attacker.publish(topic, data).await.expect("publish");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    for n in HONEST {
        let honest_node = node(&net, n);
        let seen = wait_for(
            &format!("{n} to log every rejection"),
            Duration::from_secs(30),
            || async {
                let log = honest_node.log_tail(usize::MAX);
                Ok(REJECTION_REASONS
                    .iter()
                    .all(|r| log.contains(r))
                    .then_some(()))
            },
        )
        .await;
        if let Err(e) = seen {
            let log = honest_node.log_tail(usize::MAX);
            let missing: Vec<_> = REJECTION_REASONS
                .iter()
                .filter(|r| !log.contains(*r))
                .collect();
            panic!(
                "{e}: {n} never logged {missing:?}\n{}",
                honest_node.log_tail(60)
            );
        }
        // The four refused by the node itself are counted (the oversized one
        // is refused by the network layer before the node sees it).
        let rejected = metric(&net, n, "qward_gossip_rejected_total").await;
        assert!(
            rejected >= rejected_before[n] + 4.0,
            "{n}: gossip_rejected {} -> {rejected}",
            rejected_before[n]
        );
        let peers = honest_node.peers().await.expect("peers");
        let seen_attacker = peers
            .iter()
            .find(|p| p.peer_id == attacker_peer.to_string())
            .unwrap_or_else(|| panic!("{n} does not list the attacker: {peers:?}"));
        let score = seen_attacker.gossip_score.expect("gossip score");
        assert!(score < 0.0, "{n} scores the attacker {score}");
    }

    // Sync attacks against every honest node.
    for (name, peer) in HONEST.iter().zip(&honest) {
        let garbage = attacker
            .sync_raw(*peer, vec![0xff; 40])
            .await
            .expect("answer to garbage");
        assert!(
            matches!(decode_sync(&garbage), SyncResponse::Error(ref e) if e.contains("malformed")),
            "{name}: {:?}",
            decode_sync(&garbage)
        );
        // Longer than any sync request may be, yet within the frame limit.
        let mut long = codec::encode(&SyncRequest::Status).unwrap();
        long.resize(4096, 0);
        let answer = attacker.sync_raw(*peer, long).await.expect("answer");
        assert!(
            matches!(decode_sync(&answer), SyncResponse::Error(_)),
            "{name} served an over-long request: {:?}",
            decode_sync(&answer)
        );
        // Above the 16 MiB frame limit: refused before the body is read.
        let huge = attacker.sync_raw(*peer, vec![0; 17 * MIB]).await;
        assert!(huge.is_err(), "{name} answered a 17 MiB request");

        let tip = height(&net, name).await.unwrap();
        for (from, max) in [
            (u64::MAX, u32::MAX),
            (tip + 1_000_000, 10),
            (u64::MAX - 1, 1),
        ] {
            let req = codec::encode(&SyncRequest::Blocks { from, max }).unwrap();
            let answer = attacker.sync_raw(*peer, req).await.expect("answer");
            assert_eq!(
                decode_sync(&answer),
                SyncResponse::Blocks(Vec::new()),
                "{name}: blocks from {from}"
            );
        }
        let req = codec::encode(&SyncRequest::Blocks {
            from: 0,
            max: u32::MAX,
        })
        .unwrap();
        let answer = attacker.sync_raw(*peer, req).await.expect("answer");
        let SyncResponse::Blocks(blocks) = decode_sync(&answer) else {
            panic!("{name}: no blocks for a full-range request");
        };
        assert!(!blocks.is_empty() && blocks.len() <= MAX_BLOCKS_PER_RESPONSE as usize);
        for (i, b) in blocks.iter().enumerate() {
            assert_eq!(
                b.block.header.height,
                i as u64 + 1,
                "{name}: blocks out of order"
            );
        }

        // A flood of full-range requests at once.
        let mut flood = tokio::task::JoinSet::new();
        for _ in 0..64 {
            let (client, req) = (
                attacker.client.clone(),
                codec::encode(&SyncRequest::Blocks {
                    from: 0,
                    max: u32::MAX,
                })
                .unwrap(),
            );
            let peer = *peer;
            flood.spawn(async move {
                client
                    .request(qward_node::net::RequestProtocol::Sync, peer, req)
                    .await
            });
        }
        while flood.join_next().await.is_some() {}
        let status = attacker
            .sync_raw(*peer, codec::encode(&SyncRequest::Status).unwrap())
            .await
            .expect("status after the flood");
        assert!(
            matches!(decode_sync(&status), SyncResponse::Status { .. }),
            "{name}: {:?}",
            decode_sync(&status)
        );
    }

    // Finality went on through all of it.
    wait_all_height(&net, attack_start + 5, Duration::from_secs(90)).await;

    // Replays of real transactions and votes, once gossipsub has forgotten
    // their ids, so the nodes' own replay checks are what refuses them.
    let wait = GOSSIP_DEDUP_WINDOW.saturating_sub(captured_at.elapsed());
    tokio::time::sleep(wait).await;
    let mut ignored_before = HashMap::new();
    for n in HONEST {
        ignored_before.insert(n, metric(&net, n, "qward_txs_ignored_total").await);
    }
    // A validly signed vote for an old height (dropped without penalty) first:
    // gossipsub forgets expired ids only when it records a new one.
    let stale_vote = ConsensusMessage::Vote(
        Vote {
            chain_id,
            height: 1,
            round: 0,
            step: VoteStep::Precommit,
            block_hash: Some(Hash([9; 32])),
            validator: attacker.identity.account(),
        }
        .sign(&genesis, &attacker.identity),
    );
    attacker
        .publish(&consensus_topic, stale_vote.encode())
        .await
        .expect("publish");
    for data in real_txs.iter().chain(&real_consensus) {
        let topic = if real_txs.contains(data) {
            &tx_topic
        } else {
            &consensus_topic
        };
        attacker
            .publish(topic, data.clone())
            .await
            .expect("replay published");
    }
    for n in HONEST {
        let replays_seen = wait_for(
            &format!("{n} to drop the replayed transactions"),
            Duration::from_secs(30),
            || async {
                let ignored = metric(&net, n, "qward_txs_ignored_total").await;
                Ok((ignored >= ignored_before[n] + REAL_TXS as f64).then_some(()))
            },
        )
        .await;
        if let Err(e) = replays_seen {
            panic!("{e}\n{}", node(&net, n).log_tail(40));
        }
    }
    let after_replay = height(&net, "hospital-1").await.unwrap();
    wait_all_height(&net, after_replay + 3, Duration::from_secs(60)).await;
    for n in HONEST {
        assert_eq!(
            node(&net, n).status().await.unwrap().mempool,
            0,
            "{n} holds a replay"
        );
        assert_eq!(
            metric(&net, n, "qward_txs_finalized_total").await,
            REAL_TXS as f64,
            "{n}: a replayed transaction was finalized again"
        );
        let client = node(&net, n).client(Duration::from_secs(10)).await.unwrap();
        for (id, h) in &final_heights {
            let st: TxStatus = client.chain_tx(id.clone()).await.unwrap();
            assert_eq!(st.height, Some(*h), "{n}: transaction {id} moved");
        }
    }

    // Last, a gossip frame above every node's transmit limit.
    attacker
        .publish(&consensus_topic, vec![0x33; 5 * MIB])
        .await
        .expect("publish");
    let end = height(&net, "hospital-1").await.unwrap();
    wait_all_height(&net, end + 3, Duration::from_secs(60)).await;

    // Up, on one chain, and no panic anywhere.
    let common = {
        let mut hs = Vec::new();
        for n in HONEST {
            hs.push(height(&net, n).await.unwrap());
        }
        hs.into_iter().min().unwrap()
    };
    for h in [1, common / 2, common] {
        let mut hashes = Vec::new();
        for n in HONEST {
            let client = node(&net, n).client(Duration::from_secs(10)).await.unwrap();
            let b: qward_core::api::BlockSummary = client.chain_block(h).await.unwrap();
            hashes.push(b.hash);
        }
        assert!(
            hashes.windows(2).all(|w| w[0] == w[1]),
            "block {h} differs: {hashes:?}"
        );
    }
    for n in HONEST {
        assert!(net.node(n).is_running(), "{n} stopped");
        let log = node(&net, n).log_tail(usize::MAX);
        assert!(!log.contains("panicked"), "{n} panicked:\n{log}");
    }
}
