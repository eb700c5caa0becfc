//! ETSI GS QKD 014 key delivery, both ways.
//!
//! - As a **KME** (`qward kme serve`): local applications (SAEs) ask this
//!   node for keys to share with an SAE at another qward node's KME. Each
//!   `enc_keys` request runs one key agreement with that node (simulated
//!   BB84 + X25519 + ML-KEM-768, purpose `Kme`), and both nodes derive the
//!   request's keys from its confirmed key (`qward_core::etsi014`); the
//!   master gets them at once, the peer keeps them for its slave SAE's
//!   `dec_keys`. `server.rs` is the HTTPS front (mutual TLS) and the running
//!   node is its [`server::Backend`], through the control API.
//! - As a **key source**: a link named in `[[kme_source]]` takes the QKD
//!   part of its hybrid key from a KME instead of simulated BB84: the
//!   initiator calls `enc_keys` and sends the key id in its `Open`; the
//!   responder calls `dec_keys` on its own KME (`client.rs`).
//!
//! `tls.rs` reads the PEM files and names a client's SAE id; `certs.rs`
//! makes a CA and certificates for a deployment without a PKI.

pub mod certs;
pub mod client;
pub mod server;
pub mod tls;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use qward_core::identity::AccountId;

use crate::config::{KmeConfig, KmeSourceConfig};
use crate::contacts::Contacts;
use client::KmeClient;
use tls::TlsFiles;

/// `[kme]` with the nodes resolved to accounts.
#[derive(Debug, Clone, Default)]
pub struct KmeSettings {
    /// SAEs attached to this node's KME.
    pub local: BTreeSet<String>,
    /// SAEs attached to other nodes' KMEs, and which node.
    pub remote: BTreeMap<String, AccountId>,
}

impl KmeSettings {
    pub fn resolve(config: &KmeConfig, contacts: &Contacts) -> anyhow::Result<Self> {
        let mut remote = BTreeMap::new();
        for (sae, node) in &config.remote_saes {
            let account = contacts
                .resolve(node)
                .with_context(|| format!("[kme] remote SAE {sae}: node {node}"))?;
            remote.insert(sae.clone(), account);
        }
        Ok(KmeSettings {
            local: config.local_saes.iter().cloned().collect(),
            remote,
        })
    }
}

/// A link keyed by a KME: the peer's SAE id and this node's KME client.
#[derive(Debug, Clone)]
pub struct KmeSource {
    pub peer_sae: String,
    pub client: KmeClient,
}

/// The links of `[[kme_source]]`, by peer; relative paths from `root`.
pub fn resolve_sources(
    configs: &[KmeSourceConfig],
    root: &Path,
    contacts: &Contacts,
) -> anyhow::Result<HashMap<AccountId, Arc<KmeSource>>> {
    let mut out = HashMap::new();
    for c in configs {
        let peer = contacts
            .resolve(&c.peer)
            .with_context(|| format!("kme_source: peer {}", c.peer))?;
        let files = TlsFiles {
            ca: root.join(&c.ca),
            cert: root.join(&c.cert),
            key: root.join(&c.key),
        };
        let client =
            KmeClient::new(&c.url, &files).with_context(|| format!("kme_source for {}", c.peer))?;
        out.insert(
            peer,
            Arc::new(KmeSource {
                peer_sae: c.peer_sae.clone(),
                client,
            }),
        );
    }
    Ok(out)
}

/// The bits of the key a KME-keyed link asks for per session.
pub const LINK_KEY_BITS: u32 = 256;

impl KmeSource {
    /// A new key for the link (this node as master SAE): `enc_keys`.
    pub async fn new_key(&self) -> Result<qward_core::keyagree::ExternalKey, String> {
        let req = qward_core::etsi014::KeyRequest {
            number: Some(1),
            size: Some(LINK_KEY_BITS),
            ..Default::default()
        };
        let keys = self
            .client
            .enc_keys(&self.peer_sae, &req)
            .await
            .map_err(|e| format!("enc_keys for {}: {e}", self.peer_sae))?;
        one_key(keys, None)
    }

    /// The key the peer's `Open` names (this node as slave SAE): `dec_keys`.
    pub async fn key(
        &self,
        id: qward_core::etsi014::KeyId,
    ) -> Result<qward_core::keyagree::ExternalKey, String> {
        let ids = qward_core::etsi014::KeyIds {
            key_IDs: vec![qward_core::etsi014::KeyIdRef {
                key_ID: id.to_string(),
                key_ID_extension: None,
            }],
            key_IDs_extension: None,
        };
        let keys = self
            .client
            .dec_keys(&self.peer_sae, &ids)
            .await
            .map_err(|e| format!("dec_keys {id} from {}: {e}", self.peer_sae))?;
        one_key(keys, Some(id))
    }
}

/// The one key of a KME's answer (with the id asked for, if one was).
fn one_key(
    container: qward_core::etsi014::KeyContainer,
    want: Option<qward_core::etsi014::KeyId>,
) -> Result<qward_core::keyagree::ExternalKey, String> {
    let [key] = <[_; 1]>::try_from(container.keys)
        .map_err(|k: Vec<_>| format!("the KME answered {} keys, not 1", k.len()))?;
    let id = qward_core::etsi014::KeyId::parse(&key.key_ID).map_err(|e| e.message)?;
    if want.is_some_and(|w| w != id) {
        return Err(format!("the KME answered key {id}, not the one asked for"));
    }
    let bytes = qward_core::etsi014::base64::decode(&key.key)
        .ok_or_else(|| format!("the KME's key {id} is not base64"))?;
    Ok(qward_core::keyagree::ExternalKey {
        id,
        bytes: zeroize::Zeroizing::new(bytes),
    })
}
