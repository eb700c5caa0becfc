//! The point-to-point protocols between members besides sync: key agreement
//! (`/qward/qkd/1`) and messaging (`/qward/msg/1`).

use super::context::Ctx;
use crate::net::{PeerId, RequestProtocol};

/// Answers an inbound key-agreement or messaging request.
pub async fn serve(ctx: &Ctx, protocol: RequestProtocol, peer: PeerId, data: Vec<u8>) -> Vec<u8> {
    match protocol {
        RequestProtocol::Qkd => ctx.agree.serve(peer, data).await,
        RequestProtocol::Msg => {
            let messaging = ctx.messaging.clone();
            // Opening and storing an 8 MiB record is blocking work.
            tokio::task::spawn_blocking(move || {
                super::messages::inbox::serve(&messaging, peer, &data)
            })
            .await
            .unwrap_or_default()
        }
        RequestProtocol::Sync => super::sync::serve(ctx, &data),
    }
}
