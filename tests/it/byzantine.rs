//! A Byzantine validator on real processes: hospital-4 runs `qward run
//! --byzantine mixed` (invalid proposals, vote floods, withholding,
//! selective sending, equivocation, then corrupted signatures and relayed
//! copies of honest proposals with a flipped transaction-signature byte) against three
//! honest validators for minutes while transactions flow. The honest nodes
//! keep finalizing, agree on every block, equivocation costs hospital-4 its
//! voting power, and `qward chain verify` passes on each.
//!
//! `QWARD_BYZANTINE_SECS` sets how long the attack runs (default 150 s).

use std::time::{Duration, Instant};

use qward_core::api::{BlockSummary, TxRequest};
use qward_core::identity::{Identity, Role};
use qward_node::api::QwardApiClient;
use qward_tests::{TestNet, path_str, qward};

const HONEST: [&str; 3] = ["hospital-1", "hospital-2", "hospital-3"];
const ATTACKER: &str = "hospital-4";

async fn height(net: &TestNet, name: &str) -> u64 {
    let node = net.nodes.iter().find(|n| n.name == name).expect("node");
    node.status().await.map(|s| s.height).unwrap_or(0)
}

async fn block_hash(net: &TestNet, name: &str, h: u64) -> String {
    let node = net.nodes.iter().find(|n| n.name == name).expect("node");
    let client = node.client(Duration::from_secs(10)).await.expect("client");
    let b: BlockSummary = client
        .chain_block(h)
        .await
        .unwrap_or_else(|e| panic!("{name} has no block {h}: {e}"));
    b.hash
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_validators_keep_one_history_against_a_byzantine_validator() {
    let secs: u64 = std::env::var("QWARD_BYZANTINE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(150);
    let mut net = TestNet::create(4, 0, 0, 0, 300).expect("devnet");
    for n in HONEST {
        net.node(n).start().expect("start");
    }
    net.node(ATTACKER)
        .start_with_env(&["--byzantine", "mixed"], &[("QWARD_BYZANTINE_TEST", "1")])
        .expect("start the Byzantine validator");

    let start = Instant::now();
    let mut submitted = 0u64;
    let mut last_heights = [0u64; 3];
    let mut last_progress = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        // Transactions keep flowing, so proposals carry signatures to corrupt.
        let client = net.nodes[0].client(Duration::from_secs(10)).await;
        if let Ok(client) = client {
            let account = Identity::from_secret_bytes(&[(submitted % 250) as u8 + 1; 32])
                .expect("seed")
                .account();
            let sent = client
                .tx_submit(TxRequest::RegisterMember {
                    member: account.to_hex(),
                    role: Role::Doctor,
                })
                .await;
            if sent.is_ok() {
                submitted += 1;
            }
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mut heights = [0u64; 3];
        for (i, n) in HONEST.iter().enumerate() {
            heights[i] = height(&net, n).await;
        }
        if heights.iter().zip(&last_heights).all(|(h, l)| h > l) {
            last_progress = Instant::now();
            last_heights = heights;
        }
        assert!(
            last_progress.elapsed() < Duration::from_secs(45),
            "the honest validators stopped finalizing at {heights:?}\n--- hospital-1 ---\n{}",
            net.node("hospital-1").log_tail(40)
        );
    }
    assert!(submitted > 0, "no transaction was submitted");
    let top = last_heights.iter().copied().min().unwrap_or(0);
    assert!(
        top >= 30,
        "only {top} blocks in {secs} s with a Byzantine validator"
    );
    // Every honest node has the same block at every height.
    for h in 1..=top {
        let reference = block_hash(&net, HONEST[0], h).await;
        for n in &HONEST[1..] {
            assert_eq!(
                block_hash(&net, n, h).await,
                reference,
                "{n} disagrees at height {h}"
            );
        }
    }
    net.node(ATTACKER).stop();
    for n in HONEST {
        net.node(n).stop();
    }
    // Equivocation (played at heights 32 to 39) was proven on the chain and
    // cost hospital-4 its voting power.
    let dir = path_str(&net.node(HONEST[0]).dir);
    if top > 50 {
        let out = qward(&["--data-dir", &dir, "chain", "show", "validators", "--json"])
            .expect("chain show");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(
            v["total_power"], 3,
            "the equivocating validator kept its power: {v}"
        );
    }
    for n in HONEST {
        let dir = path_str(&net.node(n).dir);
        let out = qward(&["--data-dir", &dir, "chain", "verify", "--json"]).expect("verify");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(report["ok"], true, "{n}: {report}");
    }
}
