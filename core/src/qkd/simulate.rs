//! The in-memory simulator: runs the real Alice and Bob machines, carrying
//! their messages directly and the qubits through the channel model (and Eve).

use rand_core::{CryptoRng, Rng};
use serde::{Deserialize, Serialize};

use super::alice::Alice;
use super::bob::Bob;
use super::channel::{Channel, ChannelParams};
use super::error::QkdError;
use super::eve::InterceptResend;
use super::protocol::{ProtocolParams, QkdMessage};
use super::report::QkdReport;

/// Everything one simulated run needs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SimulationParams {
    pub protocol: ProtocolParams,
    pub channel: ChannelParams,
    /// Fraction of qubits Eve intercepts and resends (0 = no Eve).
    pub eve_fraction: f64,
}

impl Default for SimulationParams {
    fn default() -> Self {
        Self {
            protocol: ProtocolParams::default(),
            channel: ChannelParams::default(),
            eve_fraction: 0.0,
        }
    }
}

/// The result of one simulated run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimulationRun {
    /// Alice's report (Bob's agrees on every shared figure).
    pub report: QkdReport,
    pub bob_report: QkdReport,
    /// Both parties hold a key and the keys are bit-for-bit equal (compared, not assumed).
    pub keys_equal: bool,
    pub qubits_intercepted: u64,
    /// Messages exchanged on the classical channel (both directions).
    pub classical_messages: u64,
}

/// Runs one BB84 session between an in-memory Alice and Bob.
pub fn simulate<R: Rng + CryptoRng + ?Sized>(
    params: &SimulationParams,
    rng: &mut R,
) -> Result<SimulationRun, QkdError> {
    let mut channel = Channel::new(params.channel)?;
    let mut eve = if params.eve_fraction > 0.0 {
        Some(InterceptResend::new(params.eve_fraction)?)
    } else {
        InterceptResend::new(params.eve_fraction)?;
        None
    };
    let mut alice = Alice::new(params.protocol)?;
    // The source is the channel's: the key length pays for its multi-photon
    // pulses (GLLP) whatever the protocol parameters said.
    alice.set_source(params.channel.source);
    let mut bob = Bob::new();
    let mut to_bob = std::collections::VecDeque::new();
    let mut to_alice = std::collections::VecDeque::new();
    let mut classical = 0u64;
    for msg in alice.start(rng)? {
        to_bob.push_back(msg);
    }
    while !(to_bob.is_empty() && to_alice.is_empty()) {
        if let Some(msg) = to_bob.pop_front() {
            let msg = match msg {
                QkdMessage::Qubits { batch } => QkdMessage::Qubits {
                    batch: channel.transmit(batch, eve.as_mut(), rng),
                },
                other => {
                    classical += 1;
                    other
                }
            };
            to_alice.extend(bob.handle(msg, rng)?);
        }
        if let Some(msg) = to_alice.pop_front() {
            classical += 1;
            to_bob.extend(alice.handle(msg, rng)?);
        }
    }
    let (Some(a), Some(b)) = (alice.outcome(), bob.outcome()) else {
        return Err(QkdError::Malformed(
            "the session stopped before both parties finished".into(),
        ));
    };
    let keys_equal = match (&a.key, &b.key) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    };
    Ok(SimulationRun {
        report: a.report,
        bob_report: b.report,
        keys_equal,
        qubits_intercepted: eve.map_or(0, |e| e.intercepted()),
        classical_messages: classical,
    })
}
