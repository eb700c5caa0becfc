//! The point-to-point protocols between members besides sync: key agreement
//! (`/qward/qkd/1`) and messaging (`/qward/msg/1`).

use super::context::Ctx;
use crate::net::{PeerId, RequestProtocol};

/// Answers an inbound key-agreement or messaging request.
pub async fn serve(_ctx: &Ctx, protocol: RequestProtocol, peer: PeerId, _data: Vec<u8>) -> Vec<u8> {
    tracing::debug!("{protocol} request from {peer}: not served by this node");
    b"unsupported".to_vec()
}
