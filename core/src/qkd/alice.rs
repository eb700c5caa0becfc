//! Alice's state machine: prepares and sends the qubits, answers sifting and
//! Cascade, and leads verification and privacy amplification.

use rand_core::{CryptoRng, Rng};
use zeroize::Zeroizing;

use super::amplify::toeplitz_hash;
use super::bits::PackedBits;
use super::cascade::CascadeAlice;
use super::channel::Source;
use super::error::QkdError;
use super::estimate::{sample_positions, split_sample};
use super::key::SecretKey;
use super::protocol::{
    Estimated, ProtocolParams, QkdMessage, final_length, finish_estimate, key_impossible,
    unexpected,
};
use super::qubit::{MAX_BATCH_QUBITS, PreparedRecord, QubitBatch};
use super::report::{AbortReason, Phase, QkdOutcome, QkdReport};
use super::sift::{matching_bases, sifted_key};
use super::verify;

#[derive(Debug)]
enum AliceState {
    Ready,
    AwaitAnnounce {
        record: PreparedRecord,
    },
    AwaitEstimate {
        key: Zeroizing<PackedBits>,
    },
    Correcting {
        cascade: CascadeAlice,
        est: Estimated,
    },
    AwaitVerified {
        key: Zeroizing<PackedBits>,
        key_bits: u64,
    },
    Finished,
}

/// Alice: prepares and sends the qubits, holds the reference key.
#[derive(Debug)]
pub struct Alice {
    params: ProtocolParams,
    state: AliceState,
    phase: Phase,
    report: QkdReport,
    key: Option<SecretKey>,
    cascade_seed: [u8; 32],
}

impl Alice {
    pub fn new(params: ProtocolParams) -> Result<Self, QkdError> {
        params.validate()?;
        Ok(Self {
            params,
            state: AliceState::Ready,
            phase: Phase::Preparing,
            report: QkdReport::default(),
            key: None,
            cascade_seed: [0; 32],
        })
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn report(&self) -> &QkdReport {
        &self.report
    }

    /// Names the photon source the qubits leave through, before [`start`]
    /// (the key length pays for its multi-photon pulses).
    ///
    /// [`start`]: Alice::start
    pub fn set_source(&mut self, source: Source) {
        if matches!(self.state, AliceState::Ready) {
            self.params.source = source;
        }
    }

    /// Prepares all qubits: returns `Start` followed by the `Qubits` batches.
    pub fn start<R: Rng + CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
    ) -> Result<Vec<QkdMessage>, QkdError> {
        if !matches!(self.state, AliceState::Ready) {
            return Err(QkdError::UnexpectedMessage {
                message: "start",
                phase: self.phase.as_str(),
            });
        }
        let n = self.params.qubits as usize;
        let mut out = vec![QkdMessage::Start {
            params: self.params,
        }];
        let mut record = PreparedRecord::default();
        let mut sent = 0;
        while sent < n {
            let len = (n - sent).min(MAX_BATCH_QUBITS);
            let (batch, rec) = QubitBatch::prepare(len, rng)?;
            record.values.extend(&rec.values);
            record.bases.extend(&rec.bases);
            out.push(QkdMessage::Qubits { batch });
            sent += len;
        }
        self.report.qubits_sent = n as u64;
        self.state = AliceState::AwaitAnnounce { record };
        self.phase = Phase::Sifting;
        Ok(out)
    }

    /// Handles one message from Bob; returns the replies. An error ends the session.
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
        // Bob aborts on the estimate before telling Alice his error count; his
        // reason carries the estimate, so both reports show the same QBER.
        if let AbortReason::QberTooHigh {
            qber,
            qber_upper_bound,
            ..
        } = reason
        {
            self.report.qber = qber;
            self.report.qber_upper_bound = qber_upper_bound;
            self.report.sample_errors = (qber * self.report.sample_size as f64).round() as u64;
        }
        self.report.aborted = true;
        self.report.abort_reason = Some(reason);
        self.report.final_key_bits = 0;
        self.key = None;
        self.state = AliceState::Finished;
        self.phase = Phase::Aborted;
    }

    fn abort_and_tell(&mut self, reason: AbortReason) -> Vec<QkdMessage> {
        self.abort(reason.clone());
        vec![QkdMessage::Abort { reason }]
    }

    fn step<R: Rng + CryptoRng + ?Sized>(
        &mut self,
        msg: QkdMessage,
        rng: &mut R,
    ) -> Result<Vec<QkdMessage>, QkdError> {
        if let QkdMessage::Abort { reason } = msg {
            if !matches!(self.state, AliceState::Finished) {
                self.abort(reason);
            }
            return Ok(Vec::new());
        }
        let state = std::mem::replace(&mut self.state, AliceState::Finished);
        match (state, msg) {
            (
                AliceState::AwaitAnnounce { record },
                QkdMessage::SiftAnnounce { detected, bases },
            ) => {
                if detected.len() != record.bases.len() {
                    return Err(QkdError::Malformed(format!(
                        "detection mask of {} slots for {} qubits",
                        detected.len(),
                        record.bases.len()
                    )));
                }
                self.report.detected = detected.count_ones();
                let matches = matching_bases(&record.bases, &detected, &bases)?;
                let sifted = Zeroizing::new(sifted_key(&record.values, &detected, &matches)?);
                drop(record);
                self.report.sifted = sifted.len() as u64;
                let k = self.params.sample_size(sifted.len() as u64);
                self.report.sample_size = k;
                let key_len = sifted.len() as u64 - k;
                if k == 0 || key_len == 0 {
                    return Ok(self.abort_and_tell(AbortReason::TooFewSiftedBits {
                        sifted: sifted.len() as u64,
                    }));
                }
                if key_impossible(&self.params, key_len, k) {
                    return Ok(self.abort_and_tell(AbortReason::NoSecretKey {
                        key_bits_before_amplification: key_len,
                    }));
                }
                let mut sample_seed = [0u8; 32];
                rng.fill_bytes(&mut sample_seed);
                let positions = sample_positions(&sample_seed, sifted.len(), k as usize);
                let (sample, rest) = split_sample(&sifted, &positions)?;
                self.state = AliceState::AwaitEstimate {
                    key: Zeroizing::new(rest),
                };
                self.phase = Phase::Estimating;
                self.cascade_seed = sample_seed;
                Ok(vec![QkdMessage::SiftReply {
                    matches,
                    sample_seed,
                    alice_sample: sample,
                }])
            }
            (
                AliceState::AwaitEstimate { mut key },
                QkdMessage::Estimate {
                    sample_errors,
                    query,
                },
            ) => {
                if sample_errors > self.report.sample_size {
                    return Err(QkdError::Malformed(format!(
                        "{sample_errors} errors in a sample of {}",
                        self.report.sample_size
                    )));
                }
                let est = finish_estimate(
                    &mut self.report,
                    &self.params,
                    sample_errors,
                    key.len() as u64,
                );
                let mut cascade = CascadeAlice::new(
                    std::mem::take(&mut *key),
                    self.cascade_seed,
                    &self.params.cascade,
                );
                let parities = cascade.answer(&query)?;
                self.state = AliceState::Correcting { cascade, est };
                self.phase = Phase::Correcting;
                Ok(vec![QkdMessage::CascadeReply { parities }])
            }
            (AliceState::Correcting { mut cascade, est }, QkdMessage::CascadeQuery { ranges }) => {
                let parities = cascade.answer(&ranges)?;
                self.state = AliceState::Correcting { cascade, est };
                Ok(vec![QkdMessage::CascadeReply { parities }])
            }
            (AliceState::Correcting { cascade, est }, QkdMessage::CascadeDone) => {
                let l = final_length(
                    &mut self.report,
                    &self.params,
                    est,
                    cascade.disclosed_bits(),
                );
                let key = Zeroizing::new(cascade.into_key());
                if l == 0 {
                    return Ok(self.abort_and_tell(AbortReason::NoSecretKey {
                        key_bits_before_amplification: est.key_len,
                    }));
                }
                let seed = verify::random_seed(key.len(), rng);
                let tag = verify::tag(&seed, &key)?;
                self.state = AliceState::AwaitVerified { key, key_bits: l };
                self.phase = Phase::Verifying;
                Ok(vec![QkdMessage::Verify { seed, tag }])
            }
            (AliceState::AwaitVerified { key, key_bits }, QkdMessage::Verified) => {
                self.phase = Phase::Amplifying;
                let seed = PackedBits::random(key.len() + key_bits as usize - 1, rng);
                let final_key = toeplitz_hash(&seed, &key, key_bits as usize)?;
                self.key = Some(SecretKey::new(final_key));
                self.report.final_key_bits = key_bits;
                self.phase = Phase::Done;
                Ok(vec![QkdMessage::Amplify { seed, key_bits }])
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
