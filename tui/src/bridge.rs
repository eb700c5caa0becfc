//! The bridge between the UI loop and whatever talks to the node: requests go
//! out on one channel, responses, events and connection changes come back on
//! another, so the UI never blocks on the network and needs no async runtime.

use std::sync::mpsc;

use qward_core::api::{Call, Event, Reply};

/// A call the UI asks the other end to make on the node's control API.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Chosen by the UI; echoed back in [`Incoming::Response`].
    pub id: u64,
    pub call: Call,
}

/// What the other end reports back to the UI.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// The answer to the request with this `id`: its typed result, or a
    /// message a person can read.
    Response {
        id: u64,
        result: Result<Reply, String>,
    },
    /// A subscribed event pushed by the node.
    Event(Event),
    /// An event the node pushed that did not decode: its `type` where that
    /// could be read, and why it did not decode. The views it touches must
    /// be asked for again.
    UnreadableEvent {
        kind: Option<String>,
        reason: String,
    },
    /// Events were lost (the subscription fell behind and was dropped, and
    /// has been made again): everything must be asked for again.
    EventsLost,
    /// The connection to the node is up (first time or again).
    Connected,
    /// The connection to the node is down; the other end keeps retrying.
    Disconnected(String),
}

/// The UI's end of the bridge.
#[derive(Debug)]
pub struct Bridge {
    pub requests: mpsc::Sender<Request>,
    pub incoming: mpsc::Receiver<Incoming>,
}

/// The other end of the bridge: the node client receives requests here and
/// sends what happens back.
#[derive(Debug)]
pub struct BridgeRemote {
    pub requests: mpsc::Receiver<Request>,
    pub incoming: mpsc::Sender<Incoming>,
}

impl Bridge {
    /// A connected pair: the UI keeps the [`Bridge`], the node client the
    /// [`BridgeRemote`].
    pub fn pair() -> (Bridge, BridgeRemote) {
        let (req_tx, req_rx) = mpsc::channel();
        let (in_tx, in_rx) = mpsc::channel();
        (
            Bridge {
                requests: req_tx,
                incoming: in_rx,
            },
            BridgeRemote {
                requests: req_rx,
                incoming: in_tx,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_carries_requests_out_and_incoming_back() {
        let (bridge, remote) = Bridge::pair();
        bridge
            .requests
            .send(Request {
                id: 4,
                call: Call::Status,
            })
            .expect("remote alive");
        let got = remote.requests.recv().expect("request arrives");
        assert_eq!((got.id, got.call), (4, Call::Status));
        remote.incoming.send(Incoming::Connected).expect("ui alive");
        assert_eq!(
            bridge.incoming.recv().expect("incoming arrives"),
            Incoming::Connected
        );
    }
}
