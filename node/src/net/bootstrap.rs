//! `Bootstrap`: keeps the configured bootstrap peers connected, redialling with bounded backoff.
//!
//! Pure bookkeeping over `Instant`s (the event loop passes the time and asks
//! which addresses are due), so the schedule is unit-tested without a network.

use std::time::{Duration, Instant};

use libp2p::multiaddr::Protocol as AddrPart;
use libp2p::{Multiaddr, PeerId};

/// The peer id at the end of `/.../p2p/<peer>`, if any.
pub fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    match addr.iter().last() {
        Some(AddrPart::P2p(peer)) => Some(peer),
        _ => None,
    }
}

/// `addr` without a trailing `/p2p/<peer>`.
pub fn without_peer(addr: &Multiaddr) -> Multiaddr {
    let mut addr = addr.clone();
    if let Some(AddrPart::P2p(_)) = addr.iter().last() {
        addr.pop();
    }
    addr
}

#[derive(Debug)]
struct Entry {
    addr: Multiaddr,
    /// Known from the address or learnt from the first connection to it.
    peer: Option<PeerId>,
    backoff: Duration,
    next_attempt: Instant,
}

/// The bootstrap peers and when each is next redialled.
#[derive(Debug)]
pub struct Bootstrap {
    entries: Vec<Entry>,
    initial: Duration,
    max: Duration,
}

impl Bootstrap {
    /// All entries are due immediately.
    pub fn new(addrs: &[Multiaddr], initial: Duration, max: Duration, now: Instant) -> Self {
        Bootstrap {
            entries: addrs
                .iter()
                .map(|addr| Entry {
                    addr: addr.clone(),
                    peer: peer_of(addr),
                    backoff: initial,
                    next_attempt: now,
                })
                .collect(),
            initial,
            max,
        }
    }

    /// The addresses to dial now. A connected entry has its backoff reset; a
    /// due one is scheduled again after its backoff, which then doubles up to
    /// the ceiling.
    pub fn due(&mut self, now: Instant, is_connected: impl Fn(&PeerId) -> bool) -> Vec<Multiaddr> {
        let mut out = Vec::new();
        for e in &mut self.entries {
            if e.peer.as_ref().is_some_and(&is_connected) {
                e.backoff = self.initial;
                e.next_attempt = now + self.initial;
                continue;
            }
            if now >= e.next_attempt {
                out.push(e.addr.clone());
                e.next_attempt = now + e.backoff;
                e.backoff = (e.backoff * 2).min(self.max);
            }
        }
        out
    }

    /// A connection to `peer` was established by dialling `addr`: an entry for
    /// that address without a peer id learns it.
    pub fn learn(&mut self, addr: &Multiaddr, peer: PeerId) {
        let addr = without_peer(addr);
        for e in &mut self.entries {
            if e.peer.is_none() && without_peer(&e.addr) == addr {
                e.peer = Some(peer);
            }
        }
    }

    /// `peer` just became a member: dial its entries at the next tick.
    pub fn reset(&mut self, peer: &PeerId, now: Instant) {
        for e in &mut self.entries {
            if e.peer.as_ref() == Some(peer) {
                e.backoff = self.initial;
                e.next_attempt = now;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> PeerId {
        super::super::keypair_from_seed(&[3; 32])
            .expect("seed")
            .public()
            .to_peer_id()
    }

    fn addr(with_peer: bool) -> Multiaddr {
        let a: Multiaddr = "/ip4/127.0.0.1/tcp/7400".parse().expect("valid multiaddr");
        if with_peer {
            a.with(AddrPart::P2p(peer()))
        } else {
            a
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_ceiling_while_disconnected() {
        let s = Duration::from_secs(1);
        let t0 = Instant::now();
        let mut b = Bootstrap::new(&[addr(true)], s, 4 * s, t0);
        let never = |_: &PeerId| false;
        assert_eq!(b.due(t0, never).len(), 1, "due at start");
        assert!(b.due(t0, never).is_empty(), "not again before the backoff");
        // Attempts at +1s, +3s (after 2s), +7s (after 4s), +11s (capped at 4s).
        let mut attempts = Vec::new();
        for ms in (0..=12_000).step_by(250) {
            let now = t0 + Duration::from_millis(ms);
            if !b.due(now, never).is_empty() {
                attempts.push(ms);
            }
        }
        assert_eq!(attempts, vec![1000, 3000, 7000, 11000]);
    }

    #[test]
    fn connected_peer_is_not_dialled_and_backoff_resets() {
        let s = Duration::from_secs(1);
        let t0 = Instant::now();
        let mut b = Bootstrap::new(&[addr(true)], s, 8 * s, t0);
        assert_eq!(b.due(t0, |_| false).len(), 1);
        assert_eq!(b.due(t0 + s, |_| false).len(), 1); // backoff now 4s
        assert!(b.due(t0 + 10 * s, |p| *p == peer()).is_empty());
        // Disconnected again: redialled after the initial delay, not 4s.
        assert_eq!(b.due(t0 + 11 * s, |_| false).len(), 1);
    }

    #[test]
    fn entry_without_peer_id_learns_it_and_reset_makes_it_due() {
        let s = Duration::from_secs(1);
        let t0 = Instant::now();
        let mut b = Bootstrap::new(&[addr(false)], s, 60 * s, t0);
        assert_eq!(b.due(t0, |_| true).len(), 1, "unknown peer: dial");
        b.learn(&addr(true), peer());
        assert!(
            b.due(t0 + 5 * s, |p| *p == peer()).is_empty(),
            "now known and connected"
        );
        b.reset(&peer(), t0 + 6 * s);
        assert_eq!(b.due(t0 + 6 * s, |_| false).len(), 1);
    }

    #[test]
    fn address_helpers() {
        assert_eq!(peer_of(&addr(true)), Some(peer()));
        assert_eq!(peer_of(&addr(false)), None);
        assert_eq!(without_peer(&addr(true)), addr(false));
    }
}
