//! Multi-process network tests over real libp2p on 127.0.0.1: finality with 4
//! hospital validators, crash and recovery, late auditors, permissioning.

use std::time::Duration;

use qward_core::api::{BlockSummary, TxRequest, TxStatus, TxSubmitted};
use qward_core::identity::Role;
use qward_node::api::QwardApiClient;
use qward_tests::{TestNet, path_str, qward, qward_ok, wait_for};

const HOSPITALS: [&str; 4] = ["hospital-1", "hospital-2", "hospital-3", "hospital-4"];

async fn height(net: &TestNet, name: &str) -> anyhow::Result<u64> {
    let node = net.nodes.iter().find(|n| n.name == name).expect("node");
    Ok(node.status().await?.height)
}

async fn wait_height(
    net: &TestNet,
    name: &str,
    target: u64,
    timeout: Duration,
) -> anyhow::Result<u64> {
    wait_for(
        &format!("{name} to reach height {target}"),
        timeout,
        || async {
            let h = height(net, name).await?;
            Ok((h >= target).then_some(h))
        },
    )
    .await
}

async fn block_hash(net: &TestNet, name: &str, h: u64) -> anyhow::Result<String> {
    let node = net.nodes.iter().find(|n| n.name == name).expect("node");
    let client = node.client(Duration::from_secs(10)).await?;
    let b: BlockSummary = client.chain_block(h).await?;
    Ok(b.hash)
}

fn start_all(net: &mut TestNet, names: &[&str]) {
    for n in names {
        net.node(n).start().expect("start");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_validators_finalize_thirty_identical_blocks() {
    let mut net = TestNet::create(4, 0, 0, 0, 200).expect("devnet");
    start_all(&mut net, &HOSPITALS);
    for name in HOSPITALS {
        if let Err(e) = wait_height(&net, name, 30, Duration::from_secs(120)).await {
            panic!("{e}\n--- {name} log ---\n{}", net.node(name).log_tail(40));
        }
    }
    for h in 1..=30 {
        let reference = block_hash(&net, HOSPITALS[0], h).await.expect("block");
        for name in &HOSPITALS[1..] {
            assert_eq!(
                block_hash(&net, name, h).await.expect("block"),
                reference,
                "block {h} differs on {name}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validators_survive_one_crash_and_stall_safely_with_two_down() {
    let mut net = TestNet::create(4, 0, 0, 0, 200).expect("devnet");
    start_all(&mut net, &HOSPITALS);
    wait_height(&net, "hospital-1", 5, Duration::from_secs(90))
        .await
        .expect("start");

    // One of four down: the other three keep finalizing.
    net.node("hospital-4").kill();
    let before = height(&net, "hospital-1").await.expect("height");
    wait_height(&net, "hospital-1", before + 5, Duration::from_secs(90))
        .await
        .expect("3 of 4 finalize");

    // It restarts and catches up.
    net.node("hospital-4").start().expect("restart");
    let target = height(&net, "hospital-1").await.expect("height");
    wait_height(&net, "hospital-4", target, Duration::from_secs(90))
        .await
        .expect("restarted node catches up");

    // Two of four down: no block is finalized...
    net.node("hospital-3").kill();
    net.node("hospital-4").kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stalled = height(&net, "hospital-1").await.expect("height");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let still = height(&net, "hospital-1").await.expect("height");
    assert!(
        still <= stalled + 1,
        "finalized without a 2/3 quorum: {stalled} -> {still}"
    );
    // The stall explains itself: the round and step it is stuck in, the
    // two validators it has heard nothing from, the newest block's age.
    let st = net.nodes[0].status().await.expect("status");
    assert_eq!(st.name, "hospital-1");
    let c = st.consensus.expect("consensus status");
    assert_eq!(c.height, still + 1, "{c:?}");
    assert_ne!(c.step, "decided", "{c:?}");
    let mut waiting = c.waiting_for.clone();
    waiting.sort();
    assert_eq!(waiting, vec!["hospital-3", "hospital-4"], "{c:?}");
    assert!(c.newest_block_age_ms >= 5_000, "{c:?}");
    let text = qward_ok(&["--data-dir", &path_str(&net.nodes[0].dir), "status"]).expect("status");
    assert!(
        text.contains("waiting for     hospital-3, hospital-4"),
        "{text}"
    );
    let h2 = height(&net, "hospital-2").await.expect("height");
    // ...and none is lost: both survivors keep every block they had.
    for h in 1..=still.min(h2) {
        assert_eq!(
            block_hash(&net, "hospital-1", h).await.unwrap(),
            block_hash(&net, "hospital-2", h).await.unwrap()
        );
    }

    // They return and the chain goes on.
    net.node("hospital-3").start().expect("restart");
    net.node("hospital-4").start().expect("restart");
    wait_height(&net, "hospital-1", still + 3, Duration::from_secs(120))
        .await
        .expect("chain resumes");
    wait_height(&net, "hospital-3", still + 3, Duration::from_secs(120))
        .await
        .expect("returning node follows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_auditor_syncs_and_verifies_the_whole_chain() {
    let mut net = TestNet::create(4, 0, 0, 1, 200).expect("devnet");
    start_all(&mut net, &HOSPITALS);
    wait_height(&net, "hospital-1", 20, Duration::from_secs(120))
        .await
        .expect("chain grows");
    net.node("auditor-1").start().expect("auditor");
    let target = height(&net, "hospital-1").await.expect("height");
    if let Err(e) = wait_height(&net, "auditor-1", target, Duration::from_secs(90)).await {
        panic!("{e}\n{}", net.node("auditor-1").log_tail(40));
    }
    net.node("auditor-1").stop();
    let dir = path_str(&net.node("auditor-1").dir);
    let out = qward(&["--data-dir", &dir, "chain", "verify", "--json"]).expect("verify");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["ok"], true);
    assert!(
        report["blocks_verified"].as_u64().unwrap() >= target,
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregistered_node_is_kept_out_until_a_hospital_registers_it() {
    let mut net = TestNet::create(4, 0, 0, 0, 300).expect("devnet");
    // An outsider with the same genesis, not a member.
    let outsider_dir = net.root().join("outsider");
    let genesis = net.node("hospital-1").dir.join("genesis.toml");
    qward_ok(&[
        "--data-dir",
        &path_str(&outsider_dir),
        "init",
        "--role",
        "doctor",
        "--name",
        "outsider",
        "--genesis",
        &path_str(&genesis),
        "--passphrase-file",
        &path_str(&net.root().join("passphrase")),
    ])
    .expect("init outsider");
    let h1_config = qward_node::datadir::DataDir::new(&net.node("hospital-1").dir)
        .load_config()
        .unwrap();
    let mut cfg = qward_node::datadir::DataDir::new(&outsider_dir)
        .load_config()
        .unwrap();
    let base = h1_config.api_port + 250;
    cfg.listen = vec![format!("/ip4/127.0.0.1/tcp/{}", base)];
    cfg.api_port = base + 1;
    cfg.bootstrap = h1_config.bootstrap.clone();
    cfg.passphrase_file = h1_config.passphrase_file.clone();
    std::fs::write(outsider_dir.join("config.toml"), cfg.to_documented_toml()).unwrap();
    let account = qward_node::datadir::DataDir::new(&outsider_dir)
        .load_identity()
        .unwrap()
        .account();
    let mut outsider = qward_tests::TestNode::at("outsider", &outsider_dir, cfg.api_port);

    start_all(&mut net, &HOSPITALS);
    outsider.start().unwrap();
    wait_height(&net, "hospital-1", 5, Duration::from_secs(90))
        .await
        .expect("chain grows");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let st = outsider.status().await.expect("outsider status");
    assert_eq!(st.peers, 0, "a non-member got a connection");
    assert_eq!(st.height, 0, "a non-member received blocks");

    // A hospital registers it; it gets in without a restart.
    let client = net
        .node("hospital-1")
        .client(Duration::from_secs(10))
        .await
        .unwrap();
    let sub: TxSubmitted = client
        .tx_submit(TxRequest::RegisterMember {
            member: account.to_hex(),
            role: Role::Doctor,
        })
        .await
        .expect("submit");
    wait_for(
        "registration to be final",
        Duration::from_secs(60),
        || async {
            let st: TxStatus = client.chain_tx(sub.id.clone()).await?;
            Ok(st.height)
        },
    )
    .await
    .expect("final");
    let target = height(&net, "hospital-1").await.unwrap();
    wait_for(
        "the outsider to connect and sync",
        Duration::from_secs(90),
        || async {
            let st = outsider.status().await?;
            Ok((st.peers > 0 && st.height >= target).then_some(()))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", outsider.log_tail(30)));
}

/// One hospital cannot admit a hospital: `qward tx register KEY --role
/// hospital` leaves KEY a pending proposal, and the CLI says so, until
/// validators holding more than 2/3 of the voting power have voted for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admitting_a_hospital_needs_votes_of_more_than_two_thirds_of_the_power() {
    let mut net = TestNet::create(4, 0, 0, 0, 200).expect("devnet");
    start_all(&mut net, &HOSPITALS);
    wait_height(&net, "hospital-1", 2, Duration::from_secs(90))
        .await
        .expect("chain grows");
    let key = qward_core::identity::Identity::from_secret_bytes(&[77; 32])
        .expect("seed")
        .account()
        .to_hex();
    let vote = |name: &str| {
        let dir = path_str(&net.nodes.iter().find(|n| n.name == name).unwrap().dir);
        let out = qward(&[
            "--data-dir",
            &dir,
            "tx",
            "register",
            &key,
            "--role",
            "hospital",
            "--wait",
        ])
        .expect("qward tx register");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{name}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let first = vote("hospital-1");
    assert!(
        first.contains("is pending") && first.contains("1 of 4 voting power"),
        "{first}"
    );
    let dir = path_str(
        &net.nodes
            .iter()
            .find(|n| n.name == "hospital-1")
            .unwrap()
            .dir,
    );
    let validators = || {
        let out = qward(&["--data-dir", &dir, "chain", "show", "validators", "--json"])
            .expect("chain show");
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("json")
    };
    let shown = validators();
    assert_eq!(
        shown["pending_votes"].as_array().map(Vec::len),
        Some(1),
        "{shown}"
    );
    assert_eq!(
        shown["pending_votes"][0]["account"],
        key.as_str(),
        "{shown}"
    );
    let second = vote("hospital-2");
    assert!(second.contains("2 of 4 voting power"), "{second}");
    let third = vote("hospital-3");
    assert!(third.contains("passed and is in effect"), "{third}");
    let shown = validators();
    assert_eq!(
        shown["pending_votes"].as_array().map(Vec::len),
        Some(0),
        "{shown}"
    );
}

/// Members named by host: a doctor dials its hospital at
/// `/dns4/localhost/...`, and the hospital, whose `external_addresses` say
/// where to reach it, is reached by a patient that was given no address of
/// it at all (only the doctor's): the patient dials what the hospital
/// announced, a DNS address, so both the resolver and the announcement of
/// external addresses are in use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_reach_each_other_by_host_name_and_announced_external_addresses() {
    use qward_node::config::{BootstrapPeer, Config};
    use qward_node::datadir::DataDir;
    let mut net = TestNet::create(1, 1, 1, 0, 200).expect("devnet");
    let load = |net: &TestNet, n: &str| {
        let node = net.nodes.iter().find(|x| x.name == n).unwrap();
        (
            node.dir.clone(),
            DataDir::new(&node.dir).load_config().unwrap(),
        )
    };
    let save = |dir: &std::path::Path, c: &Config| {
        std::fs::write(DataDir::new(dir).config_file(), c.to_documented_toml()).unwrap();
    };
    let by_name = |addr: &str| addr.replace("/ip4/127.0.0.1/", "/dns4/localhost/");
    let (h_dir, mut h) = load(&net, "hospital-1");
    let (d_dir, mut d) = load(&net, "doctor-1");
    let (p_dir, mut p) = load(&net, "patient-1");
    // Nobody dials the patient or the doctor: the hospital has no bootstrap.
    h.bootstrap.clear();
    h.external_addresses = h.listen.iter().map(|a| by_name(a)).collect();
    for b in &mut d.bootstrap {
        b.addr = by_name(&b.addr);
    }
    assert!(
        d.bootstrap
            .iter()
            .all(|b| b.addr.starts_with("/dns4/localhost/"))
    );
    // The patient announces an address where nothing listens, so the
    // hospital cannot be the one that dials.
    p.external_addresses = vec!["/ip4/127.0.0.1/tcp/1".into()];
    p.bootstrap = vec![BootstrapPeer {
        account: d.account.clone().expect("the doctor's account"),
        addr: by_name(&d.listen[0]),
    }];
    save(&h_dir, &h);
    save(&d_dir, &d);
    save(&p_dir, &p);
    start_all(&mut net, &["hospital-1", "doctor-1", "patient-1"]);
    let patient = net.nodes.iter().find(|x| x.name == "patient-1").unwrap();
    let doctor = net.nodes.iter().find(|x| x.name == "doctor-1").unwrap();
    wait_for(
        "the doctor to reach the hospital by name",
        Duration::from_secs(60),
        || async {
            let st = doctor.status().await?;
            Ok((st.height >= 2).then_some(()))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", doctor.log_tail(30)));
    // The patient knows the hospital only from its announcement (a DNS
    // name): a key agreement makes it dial there.
    let api = patient.client(Duration::from_secs(30)).await.expect("api");
    let agreed = wait_for(
        "the patient to reach the hospital",
        Duration::from_secs(60),
        || async {
            Ok(api
                .key_agree("hospital-1".into(), Some(true))
                .await
                .ok()
                .flatten())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", patient.log_tail(30)));
    assert_eq!(
        agreed.phase,
        qward_core::api::SessionPhase::Done,
        "{agreed:?}"
    );
    let peers = patient.peers().await.expect("peers");
    assert!(
        peers
            .iter()
            .any(|x| x.name.as_deref() == Some("hospital-1")),
        "{peers:?}"
    );
}
