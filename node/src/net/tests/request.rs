//! Request-response tests: round trips on every protocol, size limits on both ends, malformed frames.

use std::io;

use futures::StreamExt;
use futures::prelude::*;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{StreamProtocol, Swarm, SwarmBuilder, noise, tcp, yamux};

use super::*;
use crate::net::{NetError, RequestProtocol};

/// Answers the next inbound request on `node`, checking what it carried.
async fn answer_next(
    node: &mut TestNode,
    expect: (RequestProtocol, PeerId, &[u8]),
    answer: Vec<u8>,
) {
    let (id, protocol, from, data) = node
        .wait_for(|e| match e {
            NetworkEvent::InboundRequest {
                id,
                protocol,
                peer,
                data,
            } => Some((*id, *protocol, *peer, data.clone())),
            _ => None,
        })
        .await
        .expect("an inbound request arrives");
    assert_eq!((protocol, from, data.as_slice()), expect);
    assert_eq!(id.protocol(), protocol);
    node.client.respond(id, answer).await.expect("respond");
}

#[tokio::test]
async fn request_response_round_trip_on_every_protocol() {
    let mut n1 = TestNode::start(1, test_config(&[1, 2])).await;
    let mut n2 = TestNode::start(2, test_config(&[1, 2])).await;
    connect(&mut n1, &mut n2).await;
    for protocol in RequestProtocol::ALL {
        let body = format!("request on {protocol}").into_bytes();
        let call = tokio::spawn({
            let (c, body) = (n1.client.clone(), body.clone());
            async move { c.request(protocol, peer(2), body).await }
        });
        let answer = format!("answer on {protocol}").into_bytes();
        answer_next(
            &mut n2,
            (protocol, peer(1), body.as_slice()),
            answer.clone(),
        )
        .await;
        assert_eq!(call.await.expect("task").expect("response"), answer);
    }
    // Requests to a non-member never leave the node.
    assert_eq!(
        n1.client
            .request(RequestProtocol::Msg, peer(5), b"hi".to_vec())
            .await,
        Err(NetError::NotMember(peer(5)))
    );
    let (m1, m2) = (n1.client.metrics(), n2.client.metrics());
    assert_eq!(
        (m1.requests_out, m2.requests_in, m2.responses_sent),
        (3, 3, 3)
    );
    assert!(m1.bytes_out > 0 && m2.bytes_in > 0);
    let peers = n1.client.peers().await.expect("peers");
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].peer_id, peer(2));
    assert!(!peers[0].addrs.is_empty());
    n1.stop().await;
    n2.stop().await;
}

#[tokio::test]
async fn oversized_requests_and_responses_are_refused_on_both_ends() {
    let mut big = test_config(&[1, 2]);
    big.limits.sync_bytes = 1024 * 1024;
    let mut small = test_config(&[1, 2]);
    small.limits.sync_bytes = 64 * 1024;
    let mut n1 = TestNode::start(1, big).await;
    let mut n2 = TestNode::start(2, small).await;
    connect(&mut n1, &mut n2).await;

    // The sender refuses above its own limit, before sending.
    assert_eq!(
        n2.client
            .request(RequestProtocol::Sync, peer(1), vec![0; 100 * 1024])
            .await,
        Err(NetError::RequestTooLarge {
            protocol: RequestProtocol::Sync,
            len: 100 * 1024,
            limit: 64 * 1024
        })
    );
    // The receiver refuses above its limit: the request fails, nothing is delivered.
    let result = n1
        .client
        .request(RequestProtocol::Sync, peer(2), vec![0; 100 * 1024])
        .await;
    assert!(
        matches!(
            result,
            Err(NetError::RequestFailed {
                protocol: RequestProtocol::Sync,
                ..
            })
        ),
        "oversized request must fail, got {result:?}"
    );
    assert!(
        metrics_eventually(&n2.client, |m| m.requests_in_rejected >= 1).await,
        "the receiver counts the rejected request"
    );

    // Node 2 is still serving; a response above its limit is refused and the
    // request stays open for a proper answer.
    let call = tokio::spawn({
        let c = n1.client.clone();
        async move {
            c.request(RequestProtocol::Sync, peer(2), b"blocks 1..10".to_vec())
                .await
        }
    });
    let id = n2
        .wait_for(|e| match e {
            NetworkEvent::InboundRequest { id, data, .. } => Some((*id, data.clone())),
            _ => None,
        })
        .await
        .map(|(id, data)| {
            assert_eq!(
                data, b"blocks 1..10",
                "the first request delivered is the small one"
            );
            id
        })
        .expect("the small request arrives");
    assert_eq!(
        n2.client.respond(id, vec![0; 65 * 1024]).await,
        Err(NetError::ResponseTooLarge {
            protocol: RequestProtocol::Sync,
            len: 65 * 1024,
            limit: 64 * 1024
        })
    );
    n2.client
        .respond(id, b"blocks".to_vec())
        .await
        .expect("respond within limit");
    assert_eq!(call.await.expect("task").expect("response"), b"blocks");
    assert_eq!(
        n2.client.respond(id, b"again".to_vec()).await,
        Err(NetError::UnknownRequest),
        "a request is answered once"
    );
    assert_eq!(n2.client.metrics().requests_in, 1);
    n1.stop().await;
    n2.stop().await;
}

/// Writes request bytes verbatim (no framing), to send malformed frames.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, _: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        Err(io::Error::other("the raw peer serves nothing"))
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut out = Vec::new();
        io.take(1024).read_to_end(&mut out).await?;
        if out.is_empty() {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "no response"));
        }
        Ok(out)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&req).await?;
        io.flush().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
        _: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        Ok(())
    }
}

fn raw_swarm(id: u8) -> Swarm<request_response::Behaviour<RawCodec>> {
    SwarmBuilder::with_existing_identity(keypair(id))
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .expect("transport")
        .with_behaviour(|_| {
            request_response::Behaviour::with_codec(
                RawCodec,
                [(
                    StreamProtocol::new(RequestProtocol::Sync.name()),
                    ProtocolSupport::Outbound,
                )],
                request_response::Config::default().with_request_timeout(Duration::from_secs(5)),
            )
        })
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(30)))
        .build()
}

/// Sends `bytes` raw and drives the swarm until that request resolves.
async fn raw_request(
    swarm: &mut Swarm<request_response::Behaviour<RawCodec>>,
    to: PeerId,
    bytes: &[u8],
) -> Result<Vec<u8>, String> {
    let id = swarm.behaviour_mut().send_request(&to, bytes.to_vec());
    let deadline = Instant::now() + WAIT;
    loop {
        let event = tokio::time::timeout_at(deadline, swarm.select_next_some())
            .await
            .map_err(|_| "raw request never resolved".to_owned())?;
        match event {
            SwarmEvent::Behaviour(request_response::Event::Message {
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            }) if request_id == id => return Ok(response),
            SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                request_id,
                error,
                ..
            }) if request_id == id => return Err(error.to_string()),
            _ => {}
        }
    }
}

#[tokio::test]
async fn malformed_request_frames_do_not_crash_the_node() {
    let mut node = TestNode::start(1, test_config(&[1, 9])).await;
    let mut raw = raw_swarm(9);
    raw.add_peer_address(peer(1), node.addr.clone());

    let malformed: [&[u8]; 4] = [
        &[0xff, 0xff, 0xff, 0xff, 1, 2, 3], // announces 4 GiB
        &[0, 0],                            // truncated length prefix
        &[0, 0, 0, 100, 1, 2, 3, 4, 5],     // body shorter than announced
        &[],                                // nothing at all
    ];
    for bytes in malformed {
        let result = raw_request(&mut raw, peer(1), bytes).await;
        assert!(
            result.is_err(),
            "malformed frame {bytes:?} got a response: {result:?}"
        );
    }
    assert!(
        metrics_eventually(&node.client, |m| m.requests_in_rejected >= 4).await,
        "each malformed request is counted as rejected, got {:?}",
        node.client.metrics()
    );

    // The node is alive and the same peer can still make a proper request.
    let handle = tokio::spawn(async move {
        let result = raw_request(&mut raw, peer(1), &[0, 0, 0, 2, b'o', b'k']).await;
        (raw, result)
    });
    let (id, data) = node
        .wait_for(|e| match e {
            NetworkEvent::InboundRequest { id, data, .. } => Some((*id, data.clone())),
            _ => None,
        })
        .await
        .expect("a well-formed request is delivered");
    assert_eq!(data, b"ok", "no malformed frame was delivered before it");
    node.client
        .respond(id, b"fine".to_vec())
        .await
        .expect("respond");
    let (_raw, result) = handle.await.expect("task");
    assert_eq!(
        result.expect("framed response"),
        [0, 0, 0, 4, b'f', b'i', b'n', b'e']
    );
    assert_eq!(node.client.metrics().requests_in, 1);
    node.stop().await;
}
