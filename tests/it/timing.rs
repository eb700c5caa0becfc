//! The block timing on the chain: an idle network makes no empty blocks
//! before its heartbeat, a transaction still gets a block at once, and a
//! validators' vote changes the block time of the running chain.

use std::time::Duration;

use qward_core::consensus::BlockTiming;
use qward_tests::{TestNet, path_str, qward_ok, wait_for};

const HOSPITALS: [&str; 4] = ["hospital-1", "hospital-2", "hospital-3", "hospital-4"];

async fn height(net: &TestNet, name: &str) -> u64 {
    let node = net.nodes.iter().find(|n| n.name == name).expect("node");
    node.status().await.expect("status").height
}

fn dir(net: &TestNet, name: &str) -> String {
    let node = net.nodes.iter().find(|n| n.name == name).expect("node");
    path_str(&node.dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_chain_waits_for_its_heartbeat_and_a_vote_changes_the_block_time() {
    // Blocks 200 ms apart while there is work; with none, one a minute.
    let mut net = TestNet::create_with_timing(
        4,
        0,
        0,
        0,
        BlockTiming {
            block_time_ms: 200,
            empty_block_interval_ms: 60_000,
        },
    )
    .expect("devnet");
    for n in HOSPITALS {
        net.node(n).start().expect("start");
    }
    // Every validator connected and idle: nothing to commit, heartbeat ahead.
    wait_for(
        "every validator idle with 3 peers",
        Duration::from_secs(60),
        || async {
            let mut all = true;
            for node in &net.nodes {
                let s = node.status().await?;
                let idle = s.consensus.as_ref().is_some_and(|c| c.step == "idle");
                all &= idle && s.peers >= 3;
            }
            Ok(all.then_some(()))
        },
    )
    .await
    .expect("idle");
    let start = height(&net, "hospital-1").await;
    // Five seconds at 200 ms a block would be 25 empty blocks.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        height(&net, "hospital-1").await,
        start,
        "an idle chain made empty blocks before its heartbeat"
    );
    let s = net.nodes[0].status().await.expect("status");
    let c = s.consensus.expect("consensus");
    assert_eq!(c.step, "idle", "{c:?}");
    assert_eq!((c.block_time_ms, c.empty_block_interval_ms), (200, 60_000));
    assert!(c.heartbeat_in_ms.is_some_and(|ms| ms <= 60_000), "{c:?}");
    let text = qward_ok(&["--data-dir", &dir(&net, "hospital-1"), "status"]).expect("status");
    assert!(text.contains("idle at height"), "{text}");

    // Three of four validators vote a block every 300 ms, empty or not. Each
    // vote is work: it is finalized without waiting for the heartbeat (the
    // wait below ends long before a minute has passed for three votes).
    for voter in &HOSPITALS[..3] {
        let out = qward_ok(&[
            "--data-dir",
            &dir(&net, voter),
            "tx",
            "set-block-timing",
            "--block-time-ms",
            "300",
            "--empty-block-interval-ms",
            "300",
            "--wait",
            "--json",
        ])
        .expect("vote");
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert!(v["height"].as_u64().is_some(), "{out}");
    }
    let shown = qward_ok(&[
        "--data-dir",
        &dir(&net, "hospital-4"),
        "chain",
        "show",
        "validators",
        "--json",
    ])
    .expect("show");
    let v: serde_json::Value = serde_json::from_str(&shown).expect("json");
    assert_eq!(v["block_time_ms"], 300, "{shown}");
    assert_eq!(v["empty_block_interval_ms"], 300, "{shown}");

    // Now the chain makes blocks with nothing to commit.
    let voted = height(&net, "hospital-1").await;
    let reached = wait_for("ten empty blocks", Duration::from_secs(60), || async {
        let h = height(&net, "hospital-1").await;
        Ok((h >= voted + 10).then_some(h))
    })
    .await;
    if let Err(e) = reached {
        panic!("{e}\n{}", net.node("hospital-1").log_tail(40));
    }
    let s = net.nodes[3].status().await.expect("status");
    let c = s.consensus.expect("consensus");
    assert_ne!(c.step, "idle", "{c:?}");
    assert_eq!(c.block_time_ms, 300);
}
