//! This node as an ETSI GS QKD 014 KME: the answers behind the API's
//! `kme_*` methods, which `qward kme serve` puts on HTTPS. The caller's
//! SAE id is the one its client certificate names (the serve process read
//! it); this node decides what that SAE may have.
//!
//! - `enc_keys` (caller = master): runs one key agreement with the node
//!   the slave SAE is attached to, for just this request (purpose `Kme`),
//!   and answers the keys both nodes derive from its confirmed key; the
//!   other node keeps them for its slave SAE.
//! - `dec_keys` (caller = slave): hands out keys kept here for the caller
//!   from that master, all or none, and deletes them as it does (each key
//!   is delivered once).
//! - `status`: the pair's figures; `stored_key_count` counts the keys kept
//!   here for the caller from that SAE (`enc_keys` makes keys on demand, so
//!   none wait the other way).

use qward_core::etsi014::{
    self, EtsiError, Key, KeyContainer, KeyId, MAX_KEY_COUNT, MAX_KEY_SIZE, MAX_KEYS_PER_REQUEST,
    MAX_SAE_ID_COUNT, MIN_KEY_SIZE, Status,
};
use qward_core::identity::AccountId;
use qward_core::keyagree::KmeGrant;

use super::clock::now_ms;
use super::context::Ctx;
use super::keys::KmeKey;
use crate::kme::KmeSettings;

fn settings(ctx: &Ctx) -> Result<&KmeSettings, EtsiError> {
    ctx.kme.as_deref().ok_or_else(|| {
        EtsiError::unavailable("this node serves no KME: add [kme] to its config.toml")
    })
}

/// Checks that `caller` is an SAE of this KME and `other` one of another
/// node's; answers that node.
fn pair(kme: &KmeSettings, caller: &str, other: &str) -> Result<AccountId, EtsiError> {
    etsi014::check_sae_id(other)?;
    if !kme.local.contains(caller) {
        return Err(EtsiError::unauthorized(format!(
            "SAE {caller} is not attached to this KME"
        )));
    }
    if kme.local.contains(other) {
        return Err(EtsiError::bad_request(format!(
            "SAE {other} is attached to this KME too: qward's KME serves keys between SAEs of \
             two nodes"
        )));
    }
    kme.remote
        .get(other)
        .copied()
        .ok_or_else(|| EtsiError::bad_request(format!("unknown SAE {other}")))
}

fn container(keys: Vec<KmeKey>) -> KeyContainer {
    KeyContainer {
        keys: keys
            .into_iter()
            .map(|(id, bytes)| Key {
                key_ID: id.to_string(),
                key_ID_extension: None,
                key: etsi014::base64::encode(&bytes),
                key_extension: None,
            })
            .collect(),
        key_container_extension: None,
    }
}

fn internal(e: anyhow::Error) -> EtsiError {
    EtsiError::unavailable(format!("{e:#}"))
}

pub async fn status(ctx: &Ctx, caller: &str, slave: &str) -> Result<Status, EtsiError> {
    let kme = settings(ctx)?;
    let peer = pair(kme, caller, slave)?;
    let stored = ctx
        .keys
        .kme_count(&ctx.store, caller, slave, now_ms())
        .map_err(internal)?;
    Ok(Status {
        source_KME_ID: ctx.account.to_hex(),
        target_KME_ID: peer.to_hex(),
        master_SAE_ID: caller.to_string(),
        slave_SAE_ID: slave.to_string(),
        key_size: etsi014::DEFAULT_KEY_SIZE,
        stored_key_count: stored,
        max_key_count: MAX_KEY_COUNT,
        max_key_per_request: MAX_KEYS_PER_REQUEST,
        max_key_size: MAX_KEY_SIZE,
        min_key_size: MIN_KEY_SIZE,
        max_SAE_ID_count: MAX_SAE_ID_COUNT,
        status_extension: None,
    })
}

pub async fn enc_keys(
    ctx: &Ctx,
    caller: &str,
    slave: &str,
    number: u32,
    size: u32,
) -> Result<KeyContainer, EtsiError> {
    let kme = settings(ctx)?;
    let peer = pair(kme, caller, slave)?;
    let grant = KmeGrant {
        master_sae: caller.to_string(),
        slave_sae: slave.to_string(),
        number,
        size_bits: size,
    };
    grant.check()?;
    if ctx.view().state.role_of(&peer).is_none() {
        return Err(EtsiError::unavailable(format!(
            "the node of SAE {slave} is not a member of the chain"
        )));
    }
    let keys = ctx
        .agree
        .kme_keys(peer, grant)
        .await
        .map_err(|e| EtsiError::unavailable(e.to_string()))?;
    tracing::info!("KME: {number} keys of {size} bits delivered to SAE {caller} for {slave}");
    Ok(container(keys))
}

pub async fn dec_keys(
    ctx: &Ctx,
    caller: &str,
    master: &str,
    key_ids: &[String],
) -> Result<KeyContainer, EtsiError> {
    let kme = settings(ctx)?;
    pair(kme, caller, master)?;
    let ids = etsi014::KeyIds {
        key_IDs: key_ids
            .iter()
            .map(|id| etsi014::KeyIdRef {
                key_ID: id.clone(),
                key_ID_extension: None,
            })
            .collect(),
        key_IDs_extension: None,
    }
    .checked()?;
    match ctx
        .keys
        .kme_take(&ctx.store, caller, master, &ids, now_ms())
        .map_err(internal)?
    {
        Ok(keys) => {
            tracing::info!(
                "KME: {} keys from SAE {master} delivered to SAE {caller}",
                keys.len()
            );
            Ok(container(keys))
        }
        Err(missing) => Err(unknown(missing, master)),
    }
}

fn unknown(id: KeyId, master: &str) -> EtsiError {
    EtsiError::bad_request(format!(
        "unknown key_ID {id}: no such key from SAE {master} is kept for this SAE (never made, \
         or delivered already)"
    ))
}
