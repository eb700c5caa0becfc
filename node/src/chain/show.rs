//! How chain data is shown to people: blocks, transactions and validators as
//! JSON values, and a plain indented text form of the same values.

use qward_core::chain::{ChainState, CommittedBlock, SignedTransaction, TxKind};
use serde_json::{Value, json};

/// The validator set and the open governance proposals with their votes.
pub fn validators_json(state: &ChainState) -> Value {
    let validators: Vec<Value> = state
        .validators
        .validators()
        .iter()
        .map(|v| json!({ "account": v.account.to_hex(), "power": v.power }))
        .collect();
    let votes: Vec<Value> = state
        .proposals
        .iter()
        .map(|(action, open)| {
            json!({
                "change": action.describe(),
                "account": action.account().map(|a| a.to_hex()),
                "opened_at_height": open.opened_at,
                "expires_at_height": open.opened_at.saturating_add(state.proposal_ttl_blocks),
                "voting_power": state.tally_power(&open.voters),
                "votes": open.voters.iter().map(|a| a.to_hex()).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "block_time_ms": state.block_timing.block_time_ms,
        "empty_block_interval_ms": state.block_timing.empty_block_interval_ms,
        "total_power": state.validators.total_power(),
        "validator_set_hash": state.validators.hash().to_hex(),
        "validators": validators,
        "pending_votes": votes,
    })
}

/// A block header, its certificate and its transactions (summarised).
pub fn block_json(cb: &CommittedBlock) -> Value {
    let h = &cb.block.header;
    json!({
        "height": h.height,
        "hash": cb.block.hash().to_hex(),
        "parent_hash": h.parent_hash.to_hex(),
        "time_ms": h.time_ms,
        "proposer": h.proposer.to_hex(),
        "round": h.round,
        "tx_root": h.tx_root.to_hex(),
        "state_root": h.state_root.to_hex(),
        "validator_set_hash": h.validator_set_hash.to_hex(),
        "certificate": {
            "round": cb.cert.round,
            "signers": cb.cert.sigs.iter().map(|s| s.validator.to_hex()).collect::<Vec<_>>(),
        },
        "transactions": cb.block.txs.iter().map(|t| json!({
            "id": t.id().to_hex(),
            "kind": t.tx.kind.name(),
            "author": t.tx.author.to_hex(),
        })).collect::<Vec<_>>(),
    })
}

/// One transaction in full (it holds only ids, hashes and audit facts).
pub fn tx_json(tx: &SignedTransaction, height: u64, index: u32) -> Value {
    let details = match &tx.tx.kind {
        TxKind::RegisterMember { account, role } => {
            json!({ "account": account.to_hex(), "role": role.as_str() })
        }
        TxKind::RevokeMember { account } | TxKind::RemoveValidator { account } => {
            json!({ "account": account.to_hex() })
        }
        TxKind::AddValidator { account, power } => {
            json!({ "account": account.to_hex(), "power": power })
        }
        TxKind::SetBlockTiming(t) => json!({
            "block_time_ms": t.block_time_ms,
            "empty_block_interval_ms": t.empty_block_interval_ms,
        }),
        TxKind::GrantConsent(g) => json!({
            "grantee": g.grantee.to_hex(),
            "scope": g.scope.as_str(),
            "expires_at_ms": g.expires_at_ms,
        }),
        TxKind::RevokeConsent { grantee, scope } => {
            json!({ "grantee": grantee.to_hex(), "scope": scope.as_str() })
        }
        TxKind::AnchorRecord(a) => json!({
            "record_id": a.record_id.to_hex(),
            "ciphertext_hash": a.ciphertext_hash.to_hex(),
            "recipient": a.recipient.to_hex(),
        }),
        TxKind::AuditKeySession(a) => json!({
            "session_id": a.session_id.to_hex(),
            "peer_a": a.peer_a.to_hex(),
            "peer_b": a.peer_b.to_hex(),
            "qber_ppm": a.qber_ppm,
            "key_length_bits": a.key_length_bits,
            "outcome": format!("{:?}", a.outcome),
        }),
        TxKind::SubmitEvidence(e) => json!({
            "offender": e.offender().to_hex(),
            "height": e.height(),
            "round": e.first.vote.round,
            "step": format!("{:?}", e.first.vote.step),
        }),
        TxKind::DeclareEmergency(e) => json!({
            "patient": e.patient.to_hex(),
            "reason": e.reason,
            "expires_at_ms": e.expires_at_ms,
        }),
        TxKind::EraseRecord(e) => json!({ "record_id": e.record_id.to_hex() }),
        TxKind::RequestErasure(r) => json!({
            "holder": r.holder.to_hex(),
            "record_id": r.record_id.to_hex(),
        }),
        TxKind::AnchorAccessLog(a) => json!({
            "entries": a.entries,
            "head": a.head.to_hex(),
        }),
    };
    json!({
        "id": tx.id().to_hex(),
        "height": height,
        "index": index,
        "kind": tx.tx.kind.name(),
        "author": tx.tx.author.to_hex(),
        "nonce": tx.tx.nonce,
        "details": details,
    })
}

/// An indented `key: value` rendering of a JSON value.
pub fn to_text(value: &Value, indent: usize) -> String {
    let pad = "  ".repeat(indent);
    let mut out = String::new();
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    Value::Object(_) | Value::Array(_) => {
                        out.push_str(&format!("{pad}{k}:\n"));
                        out.push_str(&to_text(v, indent + 1));
                    }
                    _ => out.push_str(&format!("{pad}{k}: {}\n", scalar(v))),
                }
            }
        }
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str(&format!("{pad}(none)\n"));
            }
            for item in items {
                match item {
                    Value::Object(_) | Value::Array(_) => {
                        out.push_str(&format!("{pad}-\n"));
                        out.push_str(&to_text(item, indent + 1));
                    }
                    _ => out.push_str(&format!("{pad}- {}\n", scalar(item))),
                }
            }
        }
        _ => out.push_str(&format!("{pad}{}\n", scalar(value))),
    }
    out
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
