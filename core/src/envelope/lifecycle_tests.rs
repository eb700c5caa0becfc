//! Every delivery state against everything that can happen, from a table
//! written apart from `step`'s match.

use super::*;
use crate::envelope::policy::{FIRST_RETRY_MS, MAX_RETRY_MS};

const STATES: [DeliveryState; 7] = [
    DeliveryState::Queued,
    DeliveryState::Sent,
    DeliveryState::Delivered,
    DeliveryState::Anchored,
    DeliveryState::Failed,
    DeliveryState::Received,
    DeliveryState::Erased,
];

fn everything() -> Vec<Happened<'static>> {
    vec![
        Happened::PolicyRefused("no consent"),
        Happened::NotSealed("no key"),
        Happened::Sealed("sealed under key k"),
        Happened::NoReceipt("not reached"),
        Happened::Receipt,
        Happened::Refused {
            reason: "busy",
            retry: Retry::Later,
        },
        Happened::Refused {
            reason: "unknown key",
            retry: Retry::Reseal,
        },
        Happened::Refused {
            reason: "no consent",
            retry: Retry::Never,
        },
        Happened::Anchored,
        Happened::AnchorRefused("revoked"),
    ]
}

/// When the next attempt is: now, after a backoff, or as it was.
#[derive(Debug, PartialEq, Eq)]
enum When {
    Now,
    Backoff,
    Unchanged,
}

/// The lifecycle as a table: (from, what happened) -> (to, when, drop
/// envelope, erase keys); anything not listed is illegal.
fn expected(from: DeliveryState, h: &Happened<'_>) -> Option<(DeliveryState, When, bool, bool)> {
    use DeliveryState::*;
    use When::*;
    Some(match (from, h) {
        (Queued, Happened::PolicyRefused(_)) => (Failed, Unchanged, true, false),
        (Sent, Happened::PolicyRefused(_)) => (Failed, Unchanged, true, false),
        (Queued, Happened::NotSealed(_)) => (Queued, Backoff, false, false),
        (Queued, Happened::Sealed(_)) => (Sent, Now, false, false),
        (Sent, Happened::NoReceipt(_)) => (Sent, Backoff, false, false),
        (Sent, Happened::Receipt) => (Delivered, Unchanged, false, false),
        (
            Sent,
            Happened::Refused {
                retry: Retry::Later,
                ..
            },
        ) => (Sent, Backoff, false, false),
        (
            Sent,
            Happened::Refused {
                retry: Retry::Reseal,
                ..
            },
        ) => (Queued, Backoff, true, true),
        (
            Sent,
            Happened::Refused {
                retry: Retry::Never,
                ..
            },
        ) => (Failed, Unchanged, false, false),
        (Delivered, Happened::Anchored) => (Anchored, Unchanged, false, false),
        (Delivered, Happened::AnchorRefused(_)) => (Failed, Unchanged, false, false),
        _ => return None,
    })
}

#[test]
fn every_state_against_everything_that_can_happen() {
    let now = 1_000_000;
    let mut legal = 0;
    for from in STATES {
        for h in everything() {
            let got = step(from, 3, h, now, 12345);
            match (expected(from, &h), got) {
                (None, Err(e)) => assert_eq!(e.state, from),
                (None, Ok(s)) => panic!("{from:?} + {h:?} should be illegal, got {s:?}"),
                (Some(_), Err(e)) => panic!("{from:?} + {h:?} should be legal: {e}"),
                (Some((to, when, drop, erase)), Ok(s)) => {
                    legal += 1;
                    assert_eq!(s.state, to, "{from:?} + {h:?}");
                    let got_when = match s.next_attempt_ms {
                        None => When::Unchanged,
                        Some(t) if t == now => When::Now,
                        Some(t) => {
                            assert!(t > now, "{from:?} + {h:?}: {t}");
                            When::Backoff
                        }
                    };
                    assert_eq!(got_when, when, "{from:?} + {h:?}");
                    assert_eq!(s.drop_envelope, drop, "{from:?} + {h:?}");
                    assert_eq!(s.erase_keys, erase, "{from:?} + {h:?}");
                    assert!(!s.detail.is_empty());
                }
            }
        }
    }
    assert_eq!(legal, 11, "the table's legal steps all ran");
}

#[test]
fn final_states_stay_final() {
    for from in [DeliveryState::Anchored, DeliveryState::Failed] {
        for h in everything() {
            assert!(step(from, 1, h, 0, 0).is_err(), "{from:?} + {h:?}");
        }
    }
}

#[test]
fn the_backoff_doubles_to_its_cap_with_jitter_and_the_reason_is_kept() {
    let now = 5_000;
    for attempts in 1..40u32 {
        let base = (FIRST_RETRY_MS << (attempts - 1).min(16)).min(MAX_RETRY_MS);
        let mut seen = std::collections::BTreeSet::new();
        for random in [0, 1, 7, 1_000, u64::MAX / 3, u64::MAX] {
            let s = step(
                DeliveryState::Sent,
                attempts,
                Happened::NoReceipt("recipient not reached: timeout"),
                now,
                random,
            )
            .expect("legal");
            let wait = s.next_attempt_ms.expect("a next attempt") - now;
            assert!(
                (base / 2..=base).contains(&wait),
                "attempt {attempts}: {wait} outside [{}, {base}]",
                base / 2
            );
            seen.insert(wait);
            assert_eq!(s.detail, "recipient not reached: timeout");
        }
        assert!(seen.len() > 1, "attempt {attempts}: jitter spreads retries");
    }
}
