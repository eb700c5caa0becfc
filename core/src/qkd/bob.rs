//! Bob's state machine: measures the qubits, announces detections and bases,
//! estimates the QBER, drives Cascade, checks the verification tag and
//! applies privacy amplification.

use rand_core::{CryptoRng, Rng};
use zeroize::Zeroizing;

use super::amplify::toeplitz_hash;
use super::bits::PackedBits;
use super::cascade::CascadeBob;
use super::error::QkdError;
use super::estimate::{sample_positions, split_sample};
use super::finite_key::secure_key_length_gllp;
use super::key::SecretKey;
use super::protocol::{
    Estimated, ProtocolParams, QkdMessage, final_length, finish_estimate, key_impossible,
    multiphoton, unexpected,
};
use super::report::{AbortReason, Phase, QkdOutcome, QkdReport};
use super::sift::sifted_key;
use super::verify;

#[derive(Debug)]
enum BobState {
    AwaitStart,
    Receiving {
        detected: PackedBits,
        bases: PackedBits,
        results: Zeroizing<PackedBits>,
    },
    AwaitSiftReply {
        detected: PackedBits,
        results: Zeroizing<PackedBits>,
    },
    Correcting {
        cascade: CascadeBob,
        est: Estimated,
    },
    AwaitVerify {
        key: Zeroizing<PackedBits>,
        key_bits: u64,
    },
    AwaitAmplify {
        key: Zeroizing<PackedBits>,
        key_bits: u64,
    },
    Finished,
}

/// Bob: measures, corrects his key towards Alice's, and checks it.
#[derive(Debug)]
pub struct Bob {
    params: Option<ProtocolParams>,
    state: BobState,
    phase: Phase,
    report: QkdReport,
    key: Option<SecretKey>,
}

impl Default for Bob {
    fn default() -> Self {
        Self::new()
    }
}

impl Bob {
    /// A Bob waiting for Alice's `Start` (whose parameters he validates).
    pub fn new() -> Self {
        Self {
            params: None,
            state: BobState::AwaitStart,
            phase: Phase::Preparing,
            report: QkdReport::default(),
            key: None,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn report(&self) -> &QkdReport {
        &self.report
    }

    /// Handles one message from Alice; returns the replies. An error ends the session.
    pub fn handle<R: Rng + CryptoRng + ?Sized>(
        &mut self,
        msg: QkdMessage,
        rng: &mut R,
    ) -> Result<Vec<QkdMessage>, QkdError> {
        match self.step(msg, rng) {
            Ok(out) => Ok(out),
            Err(e) => {
                self.abort(AbortReason::ProtocolViolation {
                    detail: e.to_string(),
                });
                Err(e)
            }
        }
    }

    fn abort(&mut self, reason: AbortReason) {
        self.report.eve_detected = matches!(reason, AbortReason::QberTooHigh { .. });
        self.report.aborted = true;
        self.report.abort_reason = Some(reason);
        self.report.final_key_bits = 0;
        self.key = None;
        self.state = BobState::Finished;
        self.phase = Phase::Aborted;
    }

    fn abort_and_tell(&mut self, reason: AbortReason) -> Vec<QkdMessage> {
        self.abort(reason.clone());
        vec![QkdMessage::Abort { reason }]
    }

    fn params(&self) -> Result<ProtocolParams, QkdError> {
        self.params.ok_or(QkdError::UnexpectedMessage {
            message: "any",
            phase: "before Start",
        })
    }

    fn step<R: Rng + CryptoRng + ?Sized>(
        &mut self,
        msg: QkdMessage,
        rng: &mut R,
    ) -> Result<Vec<QkdMessage>, QkdError> {
        if let QkdMessage::Abort { reason } = msg {
            if !matches!(self.state, BobState::Finished) {
                self.abort(reason);
            }
            return Ok(Vec::new());
        }
        let state = std::mem::replace(&mut self.state, BobState::Finished);
        match (state, msg) {
            (BobState::AwaitStart, QkdMessage::Start { params }) => {
                params.validate()?;
                self.params = Some(params);
                self.state = BobState::Receiving {
                    detected: PackedBits::zeros(0),
                    bases: PackedBits::zeros(0),
                    results: Zeroizing::new(PackedBits::zeros(0)),
                };
                Ok(Vec::new())
            }
            (
                BobState::Receiving {
                    mut detected,
                    mut bases,
                    mut results,
                },
                QkdMessage::Qubits { batch },
            ) => {
                let params = self.params()?;
                let total = detected.len() as u64 + batch.len() as u64;
                if total > params.qubits {
                    return Err(QkdError::Malformed(format!(
                        "received {total} qubits, more than the {} announced",
                        params.qubits
                    )));
                }
                let m = batch.measure(rng);
                detected.extend(&m.detected);
                bases.extend(&m.bases);
                results.extend(&m.results);
                let mut m = m;
                zeroize::Zeroize::zeroize(&mut m.results);
                self.report.qubits_sent = total;
                if total < params.qubits {
                    self.state = BobState::Receiving {
                        detected,
                        bases,
                        results,
                    };
                    return Ok(Vec::new());
                }
                self.report.detected = detected.count_ones();
                let announced = bases.select(&detected)?;
                let reply = QkdMessage::SiftAnnounce {
                    detected: detected.clone(),
                    bases: announced,
                };
                self.state = BobState::AwaitSiftReply { detected, results };
                self.phase = Phase::Sifting;
                Ok(vec![reply])
            }
            (
                BobState::AwaitSiftReply { detected, results },
                QkdMessage::SiftReply {
                    matches,
                    sample_seed,
                    alice_sample,
                },
            ) => {
                let params = self.params()?;
                let sifted = Zeroizing::new(sifted_key(&results, &detected, &matches)?);
                drop(results);
                self.report.sifted = sifted.len() as u64;
                let k = params.sample_size(sifted.len() as u64);
                self.report.sample_size = k;
                if alice_sample.len() as u64 != k {
                    return Err(QkdError::Malformed(format!(
                        "Alice sent {} sample bits, the parameters call for {k}",
                        alice_sample.len()
                    )));
                }
                let key_len = sifted.len() as u64 - k;
                if k == 0 || key_len == 0 || key_impossible(&params, key_len, k) {
                    return Err(QkdError::Malformed(
                        "Alice continued a session that cannot yield a key".into(),
                    ));
                }
                let positions = sample_positions(&sample_seed, sifted.len(), k as usize);
                let (sample, rest) = split_sample(&sifted, &positions)?;
                let rest = Zeroizing::new(rest);
                let errors = sample.hamming_distance(&alice_sample)?;
                let est = finish_estimate(&mut self.report, &params, errors, key_len);
                self.phase = Phase::Estimating;
                // The observed QBER against the tolerance decides whether
                // someone is on the link; the bound only sets how much key is
                // left (comparing the bound itself with the tolerance called
                // every honest short run an eavesdropper: the bound of a
                // small sample is far above its observed rate).
                if self.report.qber > params.max_qber {
                    return Ok(self.abort_and_tell(AbortReason::QberTooHigh {
                        qber: self.report.qber,
                        qber_upper_bound: est.qber_upper,
                        threshold: params.max_qber,
                    }));
                }
                if secure_key_length_gllp(
                    key_len,
                    est.qber_upper,
                    verify::TAG_BITS as u64,
                    &params.security,
                    multiphoton(&params, &self.report),
                ) == 0
                {
                    return Ok(self.abort_and_tell(AbortReason::NoSecretKey {
                        key_bits_before_amplification: key_len,
                    }));
                }
                let mut rest = rest;
                let (cascade, query) = CascadeBob::start(
                    std::mem::take(&mut *rest),
                    self.report.qber,
                    sample_seed,
                    &params.cascade,
                )?;
                self.state = BobState::Correcting { cascade, est };
                self.phase = Phase::Correcting;
                Ok(vec![QkdMessage::Estimate {
                    sample_errors: errors,
                    query,
                }])
            }
            (BobState::Correcting { mut cascade, est }, QkdMessage::CascadeReply { parities }) => {
                let params = self.params()?;
                match cascade.on_reply(&parities)? {
                    Some(ranges) => {
                        self.state = BobState::Correcting { cascade, est };
                        Ok(vec![QkdMessage::CascadeQuery { ranges }])
                    }
                    None => {
                        let key_bits =
                            final_length(&mut self.report, &params, est, cascade.leaked_bits());
                        self.report.corrected_bits = cascade.corrections();
                        self.state = BobState::AwaitVerify {
                            key: Zeroizing::new(cascade.into_key()),
                            key_bits,
                        };
                        self.phase = Phase::Verifying;
                        Ok(vec![QkdMessage::CascadeDone])
                    }
                }
            }
            (BobState::AwaitVerify { key, key_bits }, QkdMessage::Verify { seed, tag }) => {
                if verify::tag(&seed, &key)? != tag {
                    return Ok(self.abort_and_tell(AbortReason::VerificationFailed));
                }
                self.state = BobState::AwaitAmplify { key, key_bits };
                self.phase = Phase::Amplifying;
                Ok(vec![QkdMessage::Verified])
            }
            (
                BobState::AwaitAmplify { key, key_bits },
                QkdMessage::Amplify { seed, key_bits: l },
            ) => {
                if l != key_bits {
                    return Err(QkdError::Malformed(format!(
                        "Alice asks for a {l}-bit key; the finite-key bound allows {key_bits}"
                    )));
                }
                let final_key = toeplitz_hash(&seed, &key, l as usize)?;
                self.key = Some(SecretKey::new(final_key));
                self.report.final_key_bits = l;
                self.phase = Phase::Done;
                Ok(Vec::new())
            }
            (state, msg) => {
                self.state = state;
                Err(unexpected(&msg, self.phase))
            }
        }
    }

    /// The outcome once the session is over (`None` before). Hands the key
    /// over: a second call returns the report without it.
    pub fn outcome(&mut self) -> Option<QkdOutcome> {
        match self.phase {
            Phase::Done | Phase::Aborted => Some(QkdOutcome {
                report: self.report.clone(),
                key: self.key.take(),
            }),
            _ => None,
        }
    }
}
