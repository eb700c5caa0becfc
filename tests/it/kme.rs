//! ETSI GS QKD 014 on real processes: two nodes, each with `qward kme
//! serve` in front (HTTPS, mutual TLS, certificates from `qward kme
//! certs`). Every endpoint, by GET and POST, and every error case of the
//! specification (unknown SAE, key size not supported, too many keys,
//! unknown key_ID, extensions, malformed bodies, a caller not attached to
//! the KME); certificates from another CA, and none, are refused. Then the
//! two nodes take their own link's QKD key from each other's KMEs
//! (`[[kme_source]]`) and agree a key end to end with no BB84 in it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use qward_core::etsi014::{KeyIdRef, KeyIds, KeyRequest, MAX_KEYS_PER_REQUEST};
use qward_node::api::QwardApiClient;
use qward_node::kme::client::{KmeClient, KmeError};
use qward_node::kme::tls::TlsFiles;
use qward_tests::{TestNet, path_str, qward_bin, qward_ok, wait_for};

/// A `qward kme serve` process, killed on drop.
struct Kme(Child);

impl Drop for Kme {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(node_dir: &Path, pki: &Path, name: &str, port: u16) -> Kme {
    let log = std::fs::File::create(node_dir.join("logs").join("kme.log")).expect("kme log");
    let child = Command::new(qward_bin())
        .arg("--data-dir")
        .arg(node_dir)
        .args(["kme", "serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--ca")
        .arg(pki.join("ca.pem"))
        .arg("--cert")
        .arg(pki.join(format!("kme-{name}.pem")))
        .arg("--key")
        .arg(pki.join(format!("kme-{name}.key")))
        .env_remove("QWARD_CREDENTIAL")
        .env_remove("QWARD_CREDENTIAL_FILE")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("qward kme serve starts");
    Kme(child)
}

fn files(pki: &Path, sae: &str) -> TlsFiles {
    TlsFiles {
        ca: pki.join("ca.pem"),
        cert: pki.join(format!("sae-{sae}.pem")),
        key: pki.join(format!("sae-{sae}.key")),
    }
}

fn client(port: u16, pki: &Path, sae: &str) -> KmeClient {
    KmeClient::new(&format!("https://127.0.0.1:{port}"), &files(pki, sae)).expect("a client")
}

fn ids(keys: &qward_core::etsi014::KeyContainer) -> KeyIds {
    KeyIds {
        key_IDs: keys
            .keys
            .iter()
            .map(|k| KeyIdRef {
                key_ID: k.key_ID.clone(),
                key_ID_extension: None,
            })
            .collect(),
        key_IDs_extension: None,
    }
}

#[track_caller]
fn assert_error<T: std::fmt::Debug>(r: Result<T, KmeError>, status: u16, words: &str) {
    match r {
        Err(KmeError::Http { status: s, message }) => {
            assert_eq!(s, status, "{message}");
            assert!(message.contains(words), "{words:?} not in {message:?}");
        }
        other => panic!("expected HTTP {status} ({words}), got {other:?}"),
    }
}

fn append(dir: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("config.toml"))
        .expect("config.toml");
    f.write_all(text.as_bytes()).expect("write config");
}

/// Sets up two KMEs (hospital-1's `h`, doctor-1's `d`) with SAEs `app-h`,
/// `qward-h` at h and `app-d`, `qward-d` at d; each node's own link to the
/// other takes its key from its KME (as SAE `qward-*`).
fn configure(net: &TestNet, pki: &Path, ports: (u16, u16)) {
    let h = &net
        .nodes
        .iter()
        .find(|n| n.name == "hospital-1")
        .unwrap()
        .dir;
    let d = &net.nodes.iter().find(|n| n.name == "doctor-1").unwrap().dir;
    let pki = path_str(pki);
    for (dir, me, other, other_node, port) in [
        (h, "h", "d", "doctor-1", ports.0),
        (d, "d", "h", "hospital-1", ports.1),
    ] {
        append(
            dir,
            &format!(
                "\n[kme]\nlocal_saes = [\"app-{me}\", \"qward-{me}\"]\n\
                 remote_saes = {{ \"app-{other}\" = \"{other_node}\", \"qward-{other}\" = \"{other_node}\" }}\n\
                 \n[[kme_source]]\npeer = \"{other_node}\"\nurl = \"https://127.0.0.1:{port}\"\n\
                 peer_sae = \"qward-{other}\"\nca = \"{pki}/ca.pem\"\n\
                 cert = \"{pki}/sae-qward-{me}.pem\"\nkey = \"{pki}/sae-qward-{me}.key\"\n"
            ),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etsi_014_endpoints_errors_mutual_tls_and_a_link_keyed_by_each_others_kmes() {
    let mut net = TestNet::create(1, 1, 0, 0, 200).expect("devnet");
    let root = net.root();
    let pki: PathBuf = root.join("pki");
    let other_pki: PathBuf = root.join("other-pki");
    qward_ok(&[
        "kme",
        "certs",
        "--out",
        &path_str(&pki),
        "--kme",
        "h",
        "--kme",
        "d",
        "--sae",
        "app-h",
        "--sae",
        "app-d",
        "--sae",
        "qward-h",
        "--sae",
        "qward-d",
        "--sae",
        "stranger",
    ])
    .expect("certs");
    qward_ok(&[
        "kme",
        "certs",
        "--out",
        &path_str(&other_pki),
        "--kme",
        "h",
        "--sae",
        "app-h",
    ])
    .expect("other certs");
    let ports = (net.ports.base + 290, net.ports.base + 291);
    configure(&net, &pki, ports);
    for n in ["hospital-1", "doctor-1"] {
        net.node(n).start().expect("start");
    }
    for n in ["hospital-1", "doctor-1"] {
        let node = net.nodes.iter().find(|x| x.name == n).unwrap();
        wait_for(&format!("{n} up"), Duration::from_secs(90), || async {
            let st = node.status().await?;
            Ok((st.height >= 2 && st.peers >= 1).then_some(()))
        })
        .await
        .expect("up");
    }
    let h_dir = net.node("hospital-1").dir.clone();
    let d_dir = net.node("doctor-1").dir.clone();
    let _kme_h = serve(&h_dir, &pki, "h", ports.0);
    let _kme_d = serve(&d_dir, &pki, "d", ports.1);
    let app_h = client(ports.0, &pki, "app-h");
    let app_d = client(ports.1, &pki, "app-d");
    let first = wait_for("KME h up", Duration::from_secs(30), || async {
        Ok(app_h.status("app-d").await.ok())
    })
    .await
    .expect("status");

    // Status: the pair, this KME's limits.
    let h_account = qward_tests::account_of(&net, "hospital-1").to_hex();
    let d_account = qward_tests::account_of(&net, "doctor-1").to_hex();
    assert_eq!(first.source_KME_ID, h_account);
    assert_eq!(first.target_KME_ID, d_account);
    assert_eq!(
        (first.master_SAE_ID.as_str(), first.slave_SAE_ID.as_str()),
        ("app-h", "app-d")
    );
    assert_eq!(first.key_size, 256);
    assert_eq!(first.max_key_per_request, MAX_KEYS_PER_REQUEST);
    assert_eq!((first.min_key_size, first.max_key_size), (64, 256));
    assert_eq!(first.max_SAE_ID_count, 0);

    // enc_keys (POST) at h, then dec_keys (POST) of the same ids at d.
    let req = KeyRequest {
        number: Some(3),
        size: Some(128),
        ..KeyRequest::default()
    };
    let sent = app_h.enc_keys("app-d", &req).await.expect("enc_keys");
    assert_eq!(sent.keys.len(), 3);
    for k in &sent.keys {
        let bytes = qward_core::etsi014::base64::decode(&k.key).expect("base64");
        assert_eq!(bytes.len(), 16, "128 bits");
    }
    let waiting = app_d.status("app-h").await.expect("status at d");
    assert_eq!(waiting.stored_key_count, 3, "d keeps the keys for app-d");
    let got = app_d
        .dec_keys("app-h", &ids(&sent))
        .await
        .expect("dec_keys");
    assert_eq!(got.keys, sent.keys, "both SAEs hold the same keys");
    assert_eq!(app_d.status("app-h").await.unwrap().stored_key_count, 0);
    // Each key is delivered once.
    assert_error(
        app_d.dec_keys("app-h", &ids(&sent)).await,
        400,
        "unknown key_ID",
    );
    // GET forms of both.
    let one = app_h
        .enc_keys_get("app-d", Some(1), None)
        .await
        .expect("GET enc_keys");
    assert_eq!(one.keys.len(), 1);
    assert_eq!(
        qward_core::etsi014::base64::decode(&one.keys[0].key).map(|k| k.len()),
        Some(32)
    );
    let back = app_d
        .dec_keys_get("app-h", &one.keys[0].key_ID)
        .await
        .expect("GET dec_keys");
    assert_eq!(back.keys, one.keys);

    // Every error case of the specification.
    assert_error(app_h.status("nobody").await, 400, "unknown SAE");
    assert_error(
        app_h.enc_keys("nobody", &KeyRequest::default()).await,
        400,
        "unknown SAE",
    );
    assert_error(
        app_d.dec_keys_get("nobody", &one.keys[0].key_ID).await,
        400,
        "unknown SAE",
    );
    for size in [100, 512, 8] {
        let bad = KeyRequest {
            size: Some(size),
            ..KeyRequest::default()
        };
        assert_error(
            app_h.enc_keys("app-d", &bad).await,
            400,
            "key size not supported",
        );
    }
    assert_error(
        app_h.enc_keys_get("app-d", None, Some(1000)).await,
        400,
        "key size not supported",
    );
    let many = KeyRequest {
        number: Some(MAX_KEYS_PER_REQUEST + 1),
        ..KeyRequest::default()
    };
    assert_error(app_h.enc_keys("app-d", &many).await, 400, "too many keys");
    assert_error(
        app_h.enc_keys_get("app-d", Some(65), None).await,
        400,
        "too many keys",
    );
    let unknown = KeyIds {
        key_IDs: vec![KeyIdRef {
            key_ID: "550e8400-e29b-41d4-a716-446655440000".into(),
            key_ID_extension: None,
        }],
        key_IDs_extension: None,
    };
    assert_error(
        app_d.dec_keys("app-h", &unknown).await,
        400,
        "unknown key_ID",
    );
    assert_error(
        app_d.dec_keys_get("app-h", "not-a-uuid").await,
        400,
        "not a UUID",
    );
    let multicast = KeyRequest {
        additional_slave_SAE_IDs: Some(vec!["app-x".into()]),
        ..KeyRequest::default()
    };
    assert_error(
        app_h.enc_keys("app-d", &multicast).await,
        400,
        "additional_slave_SAE_IDs",
    );
    let mandatory = KeyRequest {
        extension_mandatory: Some(vec![serde_json::json!({"route": "x"})]),
        ..KeyRequest::default()
    };
    assert_error(app_h.enc_keys("app-d", &mandatory).await, 400, "extension");
    // A slave SAE at this same KME: qward serves keys between two nodes.
    assert_error(
        app_h.enc_keys("qward-h", &KeyRequest::default()).await,
        400,
        "attached to this KME too",
    );
    // Malformed requests: a body that is not JSON, an SAE id that is not
    // one, a path or a method the API has not.
    let (status, body) = app_h
        .raw(
            "POST",
            "/api/v1/keys/app-d/enc_keys",
            Some(b"{not json".to_vec()),
        )
        .await
        .expect("an answer");
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let (status, _) = app_h
        .raw("GET", "/api/v1/keys/a%2Fb/status", None)
        .await
        .expect("an answer");
    assert_eq!(status, 400);
    let (status, _) = app_h
        .raw("GET", "/api/v1/keys/app-d/other", None)
        .await
        .unwrap();
    assert_eq!(status, 404);
    let (status, _) = app_h
        .raw("POST", "/api/v1/keys/app-d/status", None)
        .await
        .unwrap();
    assert_eq!(status, 405);
    let (status, _) = app_h
        .raw(
            "POST",
            "/api/v1/keys/app-d/dec_keys",
            Some(vec![b' '; 70 * 1024]),
        )
        .await
        .unwrap();
    assert_eq!(status, 400, "a body over the limit");

    // Unauthorized: a certificate from the right CA, but an SAE not
    // attached to this KME (a stranger, or the other KME's SAE).
    let stranger = client(ports.0, &pki, "stranger");
    assert_error(stranger.status("app-d").await, 401, "not attached");
    assert_error(
        stranger.enc_keys("app-d", &KeyRequest::default()).await,
        401,
        "not attached",
    );
    assert_error(
        stranger.dec_keys("app-d", &unknown).await,
        401,
        "not attached",
    );
    let wrong_kme = client(ports.0, &pki, "app-d");
    assert_error(
        wrong_kme.dec_keys("app-h", &unknown).await,
        401,
        "not attached",
    );

    // Bad certificates: another CA's, or none, are refused in the handshake;
    // a client that trusts another CA refuses the KME's.
    let foreign = client(ports.0, &other_pki, "app-h");
    assert!(
        matches!(foreign.status("app-d").await, Err(KmeError::Transport(_))),
        "a certificate from another CA is refused"
    );
    let roots = {
        let mut r = rustls::RootCertStore::empty();
        for c in
            <rustls_pki_types::CertificateDer as rustls_pki_types::pem::PemObject>::pem_file_iter(
                pki.join("ca.pem"),
            )
            .unwrap()
        {
            r.add(c.unwrap()).unwrap();
        }
        r
    };
    let anonymous = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let anonymous = KmeClient::with_config(
        &format!("https://127.0.0.1:{}", ports.0),
        Arc::new(anonymous),
    )
    .unwrap();
    assert!(
        matches!(anonymous.status("app-d").await, Err(KmeError::Transport(_))),
        "no client certificate is refused"
    );
    let log = std::fs::read_to_string(h_dir.join("logs").join("kme.log")).unwrap_or_default();
    assert!(log.contains("refused a TLS connection"), "{log}");

    // The nodes' own link, keyed by each other's KMEs: hospital-1 asks its
    // KME (as SAE qward-h) for a key for qward-d, sends its id; doctor-1
    // fetches it from its KME. No BB84 in the session itself.
    let h = net.nodes.iter().find(|n| n.name == "hospital-1").unwrap();
    let api = h.client(Duration::from_secs(30)).await.expect("api");
    let info = api
        .key_agree("doctor-1".into(), Some(true))
        .await
        .expect("key agreement")
        .expect("a session");
    assert_eq!(
        info.phase,
        qward_core::api::SessionPhase::Done,
        "{:?}",
        info.abort_reason
    );
    assert_eq!(info.qubits_sent, 0, "the QKD part came from the KME");
    assert_eq!(info.final_key_bits, 256);
    let d = net.nodes.iter().find(|n| n.name == "doctor-1").unwrap();
    let d_api = d.client(Duration::from_secs(30)).await.expect("api");
    let h_keys = api.keys().await.unwrap();
    let d_keys = wait_for(
        "doctor-1 to hold the key",
        Duration::from_secs(10),
        || async {
            let keys = d_api.keys().await?;
            Ok(keys
                .iter()
                .any(|k| h_keys.iter().any(|x| x.key_id == k.key_id))
                .then_some(keys))
        },
    )
    .await
    .expect("the same key at both ends");
    assert!(!d_keys.is_empty());
    let d_log = d.log_tail(200);
    assert!(
        d_log.contains("KME: 1 keys from SAE qward-h delivered to SAE qward-d"),
        "{d_log}"
    );
}
