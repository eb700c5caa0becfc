//! What the API shows of outbox and inbox entries, and the message events
//! sent to subscribers.

use qward_core::api::{DeliveryState, MessageInfo};
use qward_core::identity::AccountId;

use super::Messaging;
use super::{AnchorCheck, InboxEntry, OutboxEntry, kind_name};

fn name(ctx: &Messaging, a: &AccountId) -> Option<String> {
    ctx.contacts.name_of(a).map(str::to_string)
}

/// The API view of an outbox entry.
pub fn outbox_info(ctx: &Messaging, e: &OutboxEntry) -> MessageInfo {
    MessageInfo {
        record_id: e.record_id.to_hex(),
        kind: kind_name(e.kind),
        from: ctx.account.to_hex(),
        from_name: Some(ctx.name.clone()),
        to: e.to.to_hex(),
        to_name: name(ctx, &e.to),
        created_ms: e.created_ms,
        state: e.state,
        bytes: e.bytes,
        anchor: e.anchor_tx.map(hex::encode),
        detail: e.detail.clone(),
    }
}

/// The API view of an inbox entry.
pub fn inbox_info(ctx: &Messaging, e: &InboxEntry) -> MessageInfo {
    let detail = match e.anchor {
        AnchorCheck::Pending => "received; anchor not on the chain yet".to_string(),
        AnchorCheck::Verified => "received; anchor on the chain matches".to_string(),
        AnchorCheck::Mismatch => {
            "ANCHOR MISMATCH: the chain holds another hash for this record".to_string()
        }
    };
    let patient = if e.patient == e.from {
        String::new()
    } else {
        format!(
            "; about patient {}",
            name(ctx, &e.patient).unwrap_or_else(|| e.patient.short())
        )
    };
    MessageInfo {
        record_id: e.record_id.to_hex(),
        kind: kind_name(e.kind),
        from: e.from.to_hex(),
        from_name: name(ctx, &e.from),
        to: ctx.account.to_hex(),
        to_name: Some(ctx.name.clone()),
        created_ms: e.created_ms,
        state: if e.erased_ms.is_some() {
            DeliveryState::Erased
        } else {
            DeliveryState::Received
        },
        bytes: e.bytes,
        anchor: e.anchor_tx.map(hex::encode),
        detail: Some(match e.erased_ms {
            Some(t) => format!(
                "erased {} UTC: its key is destroyed{patient}",
                qward_core::calendar::utc_date(t)
            ),
            None => format!("{detail}{patient}"),
        }),
    }
}

/// Sends a message event to API subscribers.
pub fn emit(ctx: &Messaging, info: &MessageInfo) {
    ctx.emit(qward_core::api::Event::Message(info.clone()));
}
