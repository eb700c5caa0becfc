//! One validator key running twice: a backup of hospital-4's data directory
//! restored and started beside the running original (a common operator
//! mistake after a restore or a migration). The copy must notice from the
//! chain it syncs (precommits of its key that its signing record never
//! made), say so in its log and `status`, and sign nothing: the key must
//! never vote twice, so no evidence of a double vote may reach the chain
//! and hospital-4 keeps its voting power.

use std::path::Path;
use std::time::Duration;

use qward_node::api::QwardApiClient;
use qward_node::config::Config;
use qward_tests::{TestNet, TestNode, wait_for};

/// Copies a data directory as a careful restore does: directories private
/// (0700, or the node refuses to start), files with their modes.
fn copy_dir(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700)).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_copy_of_a_validator_notices_its_key_running_and_never_signs() {
    let mut net = TestNet::create(4, 0, 0, 0, 300).expect("devnet");
    for h in ["hospital-1", "hospital-2", "hospital-3", "hospital-4"] {
        net.node(h).start().unwrap();
    }
    wait_for("the chain to start", Duration::from_secs(90), || async {
        Ok((net.nodes[0].status().await?.height >= 3).then_some(()))
    })
    .await
    .unwrap();

    // The backup: hospital-4's directory while it is stopped, on other ports.
    net.node("hospital-4").stop();
    let copy = net.root().join("hospital-4-restored");
    copy_dir(&net.node("hospital-4").dir.clone(), &copy);
    let _ = std::fs::remove_file(copy.join("api.cookie"));
    let config_file = copy.join("config.toml");
    let mut config = Config::load(&config_file).unwrap();
    let port = net.ports.base + 280;
    config.listen = vec![format!("/ip4/127.0.0.1/tcp/{port}")];
    config.api_port = port + 1;
    config.metrics_port = None;
    std::fs::write(&config_file, config.to_documented_toml()).unwrap();

    // The original goes on validating past the backup.
    let backup_height = net.nodes[0].status().await.unwrap().height;
    net.node("hospital-4").start().unwrap();
    let original = net.nodes.iter().find(|n| n.name == "hospital-4").unwrap();
    let hospital_4 = wait_for("hospital-4 back", Duration::from_secs(60), || async {
        Ok(original.status().await.ok().map(|s| s.account))
    })
    .await
    .unwrap();
    let client = net.nodes[0].client(Duration::from_secs(10)).await.unwrap();
    // Signers are shown by name where the node knows one.
    let signed_by_4 = |b: &qward_core::api::BlockSummary| {
        b.signers
            .iter()
            .any(|s| s == "hospital-4" || *s == hospital_4)
    };
    wait_for(
        "hospital-4 to precommit blocks after the backup",
        Duration::from_secs(90),
        || async {
            let blocks = client.chain_blocks(None, Some(100)).await?;
            Ok(blocks
                .iter()
                .any(|b| b.height > backup_height && signed_by_4(b))
                .then_some(()))
        },
    )
    .await
    .unwrap_or_else(|e| {
        let node = net.nodes.iter().find(|n| n.name == "hospital-4").unwrap();
        let log = node.log_tail(2000);
        let interesting: Vec<&str> = log
            .lines()
            .filter(|l| !l.contains("finalized block"))
            .collect();
        panic!("{e}\n{}", interesting.join("\n"))
    });

    let mut restored = TestNode::at("hospital-4-restored", &copy, port + 1);
    restored.start().unwrap();
    let seen = wait_for(
        "the restored copy to see its key running elsewhere",
        Duration::from_secs(90),
        || async { Ok(restored.status().await?.key_twin) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", restored.log_tail(40)));
    assert!(seen.contains("this node's key"), "{seen}");
    assert!(
        restored
            .log_tail(1000)
            .contains("ANOTHER PROCESS IS RUNNING WITH THIS NODE'S KEY"),
        "{}",
        restored.log_tail(40)
    );

    // Three turns of the proposer rotation with both copies up: hospital-4's
    // key proposes and votes (the original), and never twice.
    let from = net.nodes[0].status().await.unwrap().height;
    wait_for("twelve more blocks", Duration::from_secs(120), || async {
        Ok((net.nodes[0].status().await?.height >= from + 12).then_some(()))
    })
    .await
    .unwrap();
    let blocks = client.chain_blocks(None, Some(500)).await.unwrap();
    let evidence: Vec<_> = blocks
        .iter()
        .flat_map(|b| &b.txs)
        .filter(|t| t.kind == "submit-evidence")
        .collect();
    assert!(
        evidence.is_empty(),
        "hospital-4's key voted twice: {evidence:?}"
    );
    assert!(
        blocks.iter().filter(|b| b.height > from).any(signed_by_4),
        "the original kept validating"
    );
    assert!(
        restored.status().await.unwrap().key_twin.is_some(),
        "the alarm stays up"
    );
    // The copy stopped signing: its machine follows the chain without a key.
    assert!(
        restored
            .log_tail(5000)
            .contains("consensus: this node signs nothing from now on (its key runs twice)"),
        "{}",
        restored.log_tail(40)
    );
    restored.stop();
}
