//! One key running twice: a copy of this node's data directory started
//! beside the original (a restore or a migration gone wrong). Seen from the
//! chain (an imported block carrying a precommit of this key that this
//! process did not sign, or evidence of a double vote by this key), it
//! raises an alarm that stays up for the life of the process: logged loudly,
//! shown by `status` and the TUI; from then on the consensus machine signs
//! nothing (it follows the chain as a non-validator would) and the pool signs
//! no transaction, so the two copies never cast conflicting votes with one
//! validator's power. Only blocks from the height this process started
//! consensus at count: older certificates and evidence may be this key's
//! own past, which any member could replay.

use std::sync::OnceLock;

/// The alarm, raised at most once.
#[derive(Debug, Default)]
pub struct TwinAlarm {
    reason: OnceLock<String>,
}

impl TwinAlarm {
    /// Raises the alarm with `why`; true the first time (and logs it).
    pub fn raise(&self, why: String) -> bool {
        let first = self.reason.set(why).is_ok();
        if first {
            tracing::error!(
                "ANOTHER PROCESS IS RUNNING WITH THIS NODE'S KEY: {}. This node \
                 stops signing consensus messages until it is restarted; stop one \
                 of the two copies (a data directory restored or copied elsewhere).",
                self.reason().unwrap_or_default()
            );
        }
        first
    }

    pub fn is_raised(&self) -> bool {
        self.reason.get().is_some()
    }

    /// What was seen, once raised.
    pub fn reason(&self) -> Option<String> {
        self.reason.get().cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alarm_is_raised_once_and_stays_up() {
        let alarm = TwinAlarm::default();
        assert!(!alarm.is_raised());
        assert!(alarm.raise("a vote at 5/0 this process did not sign".into()));
        assert!(!alarm.raise("another".into()));
        assert!(alarm.is_raised());
        assert_eq!(
            alarm.reason().as_deref(),
            Some("a vote at 5/0 this process did not sign")
        );
    }
}
