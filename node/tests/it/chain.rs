//! Chain storage on RocksDB and the `qward chain` / `qward genesis` commands:
//! crash during import, tampering and removal, validator-set change, the
//! signing record across a restart, and a devnet that verifies out of the box.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use qward_core::chain::testkit::{TestChain, certify};
use qward_core::chain::{ChainStore, Hash, RecordAnchor, TxKind};
use qward_core::consensus::{
    Consensus, ConsensusApp, ConsensusMessage, ConsensusParams, Output, Proposal, VoteStep,
    load_safety, save_safety,
};
use qward_core::identity::{Identity, Role};
use qward_core::storage::{Column, Store};
use qward_node::db::RocksStore;

const CRASH_ENV: &str = "QWARD_TEST_CRASH_DB";
const SEED: u64 = 77;

fn anchor(chain: &mut TestChain, i: u64) -> qward_core::chain::SignedTransaction {
    let recipient = chain.keys[0].account();
    let patient = Identity::from_secret_bytes(chain.patient.secret_bytes().as_slice()).unwrap();
    chain.sign(
        &patient,
        TxKind::AnchorRecord(RecordAnchor {
            record_id: Hash::digest("it/record", &i.to_le_bytes()),
            ciphertext_hash: Hash::digest("it/ct", &i.to_le_bytes()),
            recipient,
        }),
    )
}

/// Writes a data directory with `blocks` blocks into `dir/db`.
fn write_chain(dir: &Path, blocks: u64) -> TestChain {
    let db = RocksStore::create(&dir.join("db")).unwrap();
    let mut chain = TestChain::new(SEED, 4);
    qward_genesis::init_chain(&db, &chain.genesis).unwrap();
    for i in 0..blocks {
        let txs = vec![anchor(&mut chain, 2 * i), anchor(&mut chain, 2 * i + 1)];
        let cb = chain.commit(txs).clone();
        ChainStore::new(&db).import(&cb).unwrap();
    }
    chain
}

fn qward(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_qward"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn verify_json(dir: &Path) -> (i32, serde_json::Value) {
    let (code, stdout, stderr) = qward(&[
        "--data-dir",
        dir.to_str().unwrap(),
        "chain",
        "verify",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout} {stderr}"));
    (code, v)
}

#[test]
fn chain_verify_names_the_height_of_a_flipped_byte_or_removed_block() {
    let dir = tempfile::tempdir().unwrap();
    write_chain(dir.path(), 6);
    let (code, v) = verify_json(dir.path());
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["height"], 6);
    assert_eq!(v["blocks_verified"], 6);

    let key = 3u64.to_be_bytes();
    let original = {
        let db = RocksStore::open(&dir.path().join("db")).unwrap();
        db.get(Column::Blocks, &key).unwrap().unwrap()
    };
    for pos in [0, 9, original.len() / 2, original.len() - 1] {
        {
            let db = RocksStore::open(&dir.path().join("db")).unwrap();
            let mut bytes = original.clone();
            bytes[pos] ^= 0x10;
            db.put(Column::Blocks, &key, &bytes).unwrap();
        }
        let (code, v) = verify_json(dir.path());
        assert_eq!(code, 2, "flip at {pos}: {v}");
        assert_eq!(v["ok"], false);
        assert_eq!(v["failed_height"], 3, "flip at {pos}: {v}");
        assert!(v["reason"].as_str().is_some_and(|r| !r.is_empty()));
    }
    {
        let db = RocksStore::open(&dir.path().join("db")).unwrap();
        db.put(Column::Blocks, &key, &original).unwrap();
        db.delete(Column::Blocks, &5u64.to_be_bytes()).unwrap();
    }
    let (code, v) = verify_json(dir.path());
    assert_eq!(code, 2);
    assert_eq!(v["failed_height"], 5, "{v}");
    let (code, stdout, _) = qward(&[
        "--data-dir",
        dir.path().to_str().unwrap(),
        "chain",
        "verify",
    ]);
    assert_eq!(code, 2);
    assert!(stdout.contains("INVALID at height 5"), "{stdout}");
}

#[test]
fn validator_set_change_by_vote_passes_chain_verify() {
    let dir = tempfile::tempdir().unwrap();
    let db = RocksStore::create(&dir.path().join("db")).unwrap();
    let mut chain = TestChain::new(SEED, 4);
    let cs = ChainStore::new(&db);
    cs.init(&chain.genesis).unwrap();
    let new = chain.add_key(1);
    let acc = chain.keys[new].account();
    // Admitting a hospital and adding a validator each need votes of more than 2/3 of the power.
    let admit = (0..3)
        .map(|i| {
            chain.sign_by(
                i,
                TxKind::RegisterMember {
                    account: acc,
                    role: Role::Hospital,
                },
            )
        })
        .collect();
    let cb = chain.commit(admit).clone();
    cs.import(&cb).unwrap();
    let votes = (0..3)
        .map(|i| {
            chain.sign_by(
                i,
                TxKind::AddValidator {
                    account: acc,
                    power: 1,
                },
            )
        })
        .collect();
    let cb = chain.commit(votes).clone();
    cs.import(&cb).unwrap();
    assert!(chain.state.validators.contains(&acc));
    let cb = chain.commit(vec![]).clone();
    assert_eq!(cb.cert.sigs.len(), 5);
    cs.import(&cb).unwrap();
    // A certificate of the old four after the change lacks a quorum of five? It has 4/5 > 2/3,
    // so instead check that a certificate of only three of the new five is refused.
    let mut weak = chain.commit(vec![]).clone();
    let three: Vec<&Identity> = chain.keys[..3].iter().collect();
    weak.cert = certify(
        &chain.state.genesis_hash,
        chain.genesis.chain_id,
        &weak.block,
        0,
        &three,
    );
    assert!(cs.import(&weak).is_err());
    drop(db);
    let (code, v) = verify_json(dir.path());
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["blocks_verified"], 3);
    let (code, stdout, _) = qward(&[
        "--data-dir",
        dir.path().to_str().unwrap(),
        "chain",
        "show",
        "validators",
        "--json",
    ]);
    assert_eq!(code, 0);
    let shown: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(shown["validators"].as_array().unwrap().len(), 5);
}

/// The child half of the crash test: imports blocks until it is killed, and
/// sometimes aborts itself while a block import is being written.
#[test]
#[ignore = "run by crash_during_block_import_leaves_a_database_that_opens_and_verifies"]
fn crash_child() {
    let Ok(path) = std::env::var(CRASH_ENV) else {
        return;
    };
    let db = RocksStore::create(Path::new(&path)).unwrap();
    let mut chain = TestChain::new(SEED, 4);
    qward_genesis::init_chain(&db, &chain.genesis).unwrap();
    let start = ChainStore::new(&db).tip().unwrap().height;
    let db = std::sync::Arc::new(db);
    for i in 0..100_000u64 {
        let txs = vec![anchor(&mut chain, 2 * i), anchor(&mut chain, 2 * i + 1)];
        let cb = chain.commit(txs).clone();
        if cb.block.header.height <= start {
            continue;
        }
        if cb.block.header.height == start + 40 {
            // Abort while another thread is writing this import.
            let (db2, cb2, state) = (db.clone(), cb.clone(), chain.state.clone());
            std::thread::spawn(move || ChainStore::new(&*db2).import_verified(&cb2, &state));
            std::process::abort();
        }
        ChainStore::new(&*db).import(&cb).unwrap();
    }
}

#[test]
fn crash_during_block_import_leaves_a_database_that_opens_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut last_height = 0;
    for (round, wait_ms) in [150u64, 400, 90, 700, 250].into_iter().enumerate() {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["chain::crash_child", "--exact", "--ignored", "--nocapture"])
            .env(CRASH_ENV, &path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(wait_ms));
        let _ = child.kill(); // SIGKILL, unless it aborted itself already.
        child.wait().unwrap();
        let db = RocksStore::open(&path).unwrap_or_else(|e| panic!("round {round}: {e}"));
        let report = ChainStore::new(&db).verify_chain();
        assert!(report.ok, "round {round}: {report:?}");
        assert!(
            report.height >= last_height,
            "round {round}: the chain went back"
        );
        last_height = report.height;
    }
    assert!(last_height > 0, "the child never imported a block");
}

struct FixedApp {
    block: qward_core::chain::Block,
}

impl ConsensusApp for FixedApp {
    fn build_block(&mut self, _: u64, _: u32) -> qward_core::chain::Block {
        self.block.clone()
    }
    fn validate_block(&mut self, _: &qward_core::chain::Block) -> bool {
        true
    }
}

#[test]
fn validator_never_signs_twice_for_one_height_and_round_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut chain = TestChain::new(SEED, 4);
    let state = chain.state.clone();
    let set = state.validators.clone();
    // Two different valid-looking blocks for height 1, round 0.
    let a = chain.commit(vec![]).block.clone();
    let mut b = a.clone();
    b.header.time_ms += 1;
    let proposer_acc = set.proposer(1, 0);
    let proposer = chain
        .keys
        .iter()
        .find(|k| k.account() == proposer_acc)
        .unwrap();
    let me_index = chain
        .keys
        .iter()
        .position(|k| k.account() != proposer_acc)
        .unwrap();
    let proposal = |block: &qward_core::chain::Block| {
        ConsensusMessage::Proposal(Box::new(
            Proposal {
                chain_id: chain.genesis.chain_id,
                height: 1,
                round: 0,
                valid_round: None,
                proposer: proposer_acc,
                block: block.clone(),
            }
            .sign(&chain.genesis.hash(), proposer),
        ))
    };
    let me =
        || Identity::from_secret_bytes(chain.keys[me_index].secret_bytes().as_slice()).unwrap();
    let prevotes = |outputs: &[Output]| -> Vec<Option<Hash>> {
        outputs
            .iter()
            .filter_map(|o| match o {
                Output::Broadcast(ConsensusMessage::Vote(v))
                    if v.vote.step == VoteStep::Prevote =>
                {
                    Some(v.vote.block_hash)
                }
                _ => None,
            })
            .collect()
    };
    // Run 1: prevote for A, persisting the record before "sending".
    {
        let db = RocksStore::create(&path).unwrap();
        let mut app = FixedApp { block: a.clone() };
        let mut c = Consensus::new(
            chain.genesis.chain_id,
            chain.genesis.hash(),
            ConsensusParams::default(),
            set.clone(),
            Some(me()),
            load_safety(&db).unwrap(),
        );
        let mut outputs = c.start_height(1, set.clone(), &mut app);
        outputs.extend(c.on_message(proposal(&a), &mut app));
        let mut sent = Vec::new();
        for o in outputs {
            match o {
                Output::PersistSafety(s) => save_safety(&db, &s).unwrap(),
                other => sent.push(other),
            }
        }
        assert_eq!(prevotes(&sent), vec![Some(a.hash())]);
    }
    // Run 2, after a restart: the proposer equivocates with B. The validator
    // must not sign a prevote for B at (1, 0); it may only re-send the vote for A.
    let db = RocksStore::open(&path).unwrap();
    let safety = load_safety(&db).unwrap();
    assert_eq!(
        (safety.height, safety.round, safety.step),
        (1, 0, VoteStep::Prevote.code())
    );
    let mut app = FixedApp { block: b.clone() };
    let mut c = Consensus::new(
        chain.genesis.chain_id,
        chain.genesis.hash(),
        ConsensusParams::default(),
        set.clone(),
        Some(me()),
        safety,
    );
    let mut outputs = c.start_height(1, set.clone(), &mut app);
    outputs.extend(c.on_message(proposal(&b), &mut app));
    let votes = prevotes(&outputs);
    assert!(
        !votes.contains(&Some(b.hash())),
        "signed a second prevote at (1, 0)"
    );
    assert!(votes.iter().all(|v| *v == Some(a.hash())));
    assert!(!outputs.iter().any(|o| matches!(o, Output::PersistSafety(s) if s.step == VoteStep::Prevote.code() && s.round == 0 && s.signed.iter().any(|m| matches!(m, ConsensusMessage::Vote(v) if v.vote.block_hash == Some(b.hash()))))));
}

#[test]
fn genesis_devnet_writes_data_directories_that_verify() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("net");
    let (code, stdout, stderr) = qward(&[
        "genesis",
        "devnet",
        "--out",
        out.to_str().unwrap(),
        "--hospitals",
        "4",
        "--doctors",
        "2",
        "--patients",
        "2",
        "--auditors",
        "1",
        "--insecure-seed",
        "5",
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let names = [
        "hospital-1",
        "hospital-4",
        "doctor-2",
        "patient-1",
        "auditor-1",
    ];
    for name in names {
        let d = out.join(name);
        assert!(d.join("keys/identity.key").exists());
        assert!(d.join("config.toml").exists());
        let (code, v) = verify_json(&d);
        assert_eq!(code, 0, "{name}: {v}");
        assert_eq!(v["height"], 0);
    }
    let (code, stdout, _) = qward(&[
        "--data-dir",
        out.join("auditor-1").to_str().unwrap(),
        "chain",
        "show",
    ]);
    assert_eq!(code, 0);
    assert!(stdout.contains("validators: 4"), "{stdout}");
    // `genesis build` from the devnet's spec gives the same genesis hash.
    let built = dir.path().join("genesis.toml");
    let (code, stdout, stderr) = qward(&[
        "genesis",
        "build",
        out.join("spec.toml").to_str().unwrap(),
        "--out",
        built.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let a = qward_genesis::load_genesis(&built).unwrap();
    let b = qward_genesis::load_genesis(&out.join("genesis.toml")).unwrap();
    assert_eq!(a.hash(), b.hash());
}
