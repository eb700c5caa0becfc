//! Tests of the genesis crate: spec to canonical genesis, hash checks on
//! load, idempotent store initialisation and the devnet layout.

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use qward_core::chain::{ChainStore, InitOutcome};
use qward_core::identity::{Identity, Role};
use qward_core::storage::MemStore;

use super::*;

fn plan_small(seed: u64) -> DevnetPlan {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    devnet::plan(&DevnetOptions::new(1_764_000_000_000), &mut rng).unwrap()
}

#[test]
fn spec_builds_a_canonical_genesis_and_file_round_trips() {
    let plan = plan_small(1);
    assert_eq!(plan.genesis.validators.len(), 4);
    assert_eq!(plan.genesis.members.len(), 9);
    let text = genesis_toml(&plan.genesis, &|_| None).unwrap();
    let back = parse_genesis(&text).unwrap();
    assert_eq!(back, plan.genesis);
    assert_eq!(back.hash(), plan.genesis.hash());
    // The spec (no hash) builds the same genesis.
    let spec = plan.spec_toml().unwrap();
    assert_eq!(parse_genesis(&spec).unwrap(), plan.genesis);
}

#[test]
fn an_edited_genesis_file_is_refused() {
    let plan = plan_small(2);
    let text = genesis_toml(&plan.genesis, &|_| None).unwrap();
    let edited = text.replace("chain_id = 1", "chain_id = 2");
    assert_ne!(edited, text);
    let err = parse_genesis(&edited).unwrap_err();
    assert!(matches!(err, GenesisError::HashMismatch { .. }), "{err}");
    assert!(err.to_string().contains("edited"));
}

#[test]
fn bad_specs_get_clear_errors() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let id = Identity::generate(&mut rng);
    let base = format!(
        "network = \"t\"\nchain_id = 1\ngenesis_time_ms = 5\n[[hospitals]]\naccount = \"{}\"\n",
        id.account().to_hex()
    );
    let g = parse_genesis(&base).unwrap();
    assert_eq!(g.validators.len(), 1);
    assert_eq!(g.members[0].role, Role::Hospital);
    let err = parse_genesis(&base.replace(&id.account().to_hex(), "abcd")).unwrap_err();
    assert!(err.to_string().contains("hospital 1"), "{err}");
    let err = parse_genesis(&format!(
        "{base}[[members]]\naccount = \"{}\"\nrole = \"nurse\"\n",
        id.account().to_hex()
    ))
    .unwrap_err();
    assert!(err.to_string().contains("nurse"), "{err}");
    let err =
        parse_genesis(&base.replace("network = \"t\"", "network = \"Bad Name\"")).unwrap_err();
    assert!(err.to_string().contains("network name"), "{err}");
    let err = parse_genesis(&format!("{base}extra = 1\n")).unwrap_err();
    assert!(matches!(err, GenesisError::Toml(_)), "{err}");
}

#[test]
fn init_chain_is_idempotent() {
    let plan = plan_small(4);
    let store = MemStore::new();
    assert_eq!(
        init_chain(&store, &plan.genesis).unwrap(),
        InitOutcome::Initialised
    );
    assert_eq!(
        init_chain(&store, &plan.genesis).unwrap(),
        InitOutcome::AlreadyInitialised
    );
    assert!(init_chain(&store, &plan_small(5).genesis).is_err());
    assert!(ChainStore::new(&store).verify_chain().ok);
}

#[test]
fn devnet_writes_a_data_directory_per_participant() {
    let plan = plan_small(6);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("net");
    let mut inited = Vec::new();
    plan.write(&out, &mut |db, g| {
        std::fs::create_dir_all(db).map_err(|e| e.to_string())?;
        inited.push((db.to_path_buf(), g.hash()));
        Ok(())
    })
    .unwrap();
    assert_eq!(inited.len(), 9);
    assert!(out.join("spec.toml").exists());
    let g = load_genesis(&out.join("genesis.toml")).unwrap();
    assert_eq!(g, plan.genesis);
    let mut ports = std::collections::BTreeSet::new();
    for p in &plan.participants {
        let d = out.join(&p.name);
        let key = std::fs::read(d.join("keys/identity.key")).unwrap();
        assert_eq!(
            Identity::from_secret_bytes(&key).unwrap().account(),
            p.identity.account()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(d.join("keys/identity.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(
            load_genesis(&d.join("genesis.toml")).unwrap().hash(),
            plan.genesis.hash()
        );
        let cfg: NodeConfig =
            toml::from_str(&std::fs::read_to_string(d.join("config.toml")).unwrap()).unwrap();
        assert_eq!(cfg.name, p.name);
        assert_eq!(cfg.role, p.role.as_str());
        assert!(ports.insert(cfg.listen.clone()));
        assert!(ports.insert(cfg.api_port.to_string()));
        let hospitals_other = if p.role == Role::Hospital { 3 } else { 4 };
        assert_eq!(cfg.bootstrap.len(), hospitals_other);
        assert!(
            cfg.bootstrap
                .iter()
                .all(|b| b.addr.starts_with("/ip4/127.0.0.1/tcp/"))
        );
    }
    // A second run into the same directory refuses to overwrite keys.
    assert!(plan.write(&out, &mut |_, _| Ok(())).is_err());
}
