//! The access log as data: who read which health record, when, and why,
//! as a hash chain. Each entry names the hash of the one before it, so an
//! entry changed, removed, inserted or moved breaks the chain at that
//! point; the latest head anchored on the chain (`TxKind::AnchorAccessLog`)
//! pins every entry up to it, so even a rewrite of the whole log (heads
//! included) is caught. The node stores and appends; this module decides.

use serde::{Deserialize, Serialize};

use crate::chain::Hash;
use crate::codec;
use crate::envelope::RecordId;

/// The hash an empty log starts from.
pub const GENESIS: Hash = Hash([0; 32]);
/// The largest encoded entry.
pub const MAX_ENTRY_BYTES: usize = 4096;
/// The longest user name, action or detail kept (longer ones are cut).
const MAX_FIELD_BYTES: usize = 512;

/// One access.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessEntry {
    /// 0 for the first entry, then +1.
    pub seq: u64,
    pub time_ms: u64,
    /// A user's name, or `owner` for the node's own cookie.
    pub user: String,
    /// `read`, `export`, `forward`, `erase`, `emergency`, `login`,
    /// `refused-credential`, ...
    pub action: String,
    pub record: Option<RecordId>,
    pub detail: String,
    /// The hash of the entry before ([`GENESIS`] for the first).
    pub prev: Hash,
}

fn cut(mut s: String) -> String {
    if s.len() > MAX_FIELD_BYTES {
        let mut end = MAX_FIELD_BYTES;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

impl AccessEntry {
    /// The entry that follows `head` (entries so far, last hash).
    pub fn next(
        head: &Head,
        time_ms: u64,
        user: String,
        action: String,
        record: Option<RecordId>,
        detail: String,
    ) -> Self {
        AccessEntry {
            seq: head.entries,
            time_ms,
            user: cut(user),
            action: cut(action),
            record,
            detail: cut(detail),
            prev: head.hash,
        }
    }

    /// This entry's hash, which the next entry names.
    pub fn hash(&self) -> Hash {
        Hash::digest("qward/access-log/v1", &codec::encode_infallible(self))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode_infallible(self)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, codec::CodecError> {
        codec::decode(bytes, MAX_ENTRY_BYTES)
    }
}

/// Where the log stands: how many entries, and the last one's hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub entries: u64,
    pub hash: Hash,
}

impl Head {
    pub const EMPTY: Head = Head {
        entries: 0,
        hash: GENESIS,
    };

    /// The head after `entry`.
    pub fn after(entry: &AccessEntry) -> Head {
        Head {
            entries: entry.seq + 1,
            hash: entry.hash(),
        }
    }
}

/// Why a log does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Broken {
    #[error("entry {at} is unreadable: {reason}")]
    Unreadable { at: u64, reason: String },
    #[error("entry {at} says it is entry {found}: an entry is missing, added or moved")]
    Sequence { at: u64, found: u64 },
    #[error(
        "entry {at} does not chain to the entry before it: the entry before was changed, removed or moved"
    )]
    Chain { at: u64 },
    #[error(
        "the log ends at {entries} entries with hash {found}, but its head says {head_entries} entries with {head_hash}: entries were removed or changed at the end"
    )]
    Head {
        entries: u64,
        found: Hash,
        head_entries: u64,
        head_hash: Hash,
    },
    #[error(
        "the chain anchors {anchored} entries with hash {anchored_hash}, but the log has {found}: the log was changed before its last anchor"
    )]
    Anchor {
        anchored: u64,
        anchored_hash: Hash,
        found: String,
    },
}

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub entries: u64,
    pub head: Head,
}

/// Checks a whole log: `entries` in store order (each a decode result),
/// the stored `head`, and the anchors found on the chain (entries, hash),
/// in any order. Stops at the first break.
pub fn verify<I>(entries: I, head: Head, anchors: &[Head]) -> Result<Verified, (u64, Broken)>
where
    I: IntoIterator<Item = Result<AccessEntry, String>>,
{
    let mut at = Head::EMPTY;
    let mut seen_at: std::collections::BTreeMap<u64, Hash> = std::collections::BTreeMap::new();
    let wanted: std::collections::BTreeSet<u64> = anchors.iter().map(|a| a.entries).collect();
    for (i, e) in entries.into_iter().enumerate() {
        let i = i as u64;
        let e = e.map_err(|reason| (i, Broken::Unreadable { at: i, reason }))?;
        if e.seq != i {
            return Err((
                i,
                Broken::Sequence {
                    at: i,
                    found: e.seq,
                },
            ));
        }
        if e.prev != at.hash {
            return Err((i, Broken::Chain { at: i }));
        }
        at = Head::after(&e);
        if wanted.contains(&at.entries) {
            seen_at.insert(at.entries, at.hash);
        }
    }
    for a in anchors {
        match seen_at.get(&a.entries) {
            Some(h) if *h == a.hash => {}
            other => {
                return Err((
                    a.entries.saturating_sub(1),
                    Broken::Anchor {
                        anchored: a.entries,
                        anchored_hash: a.hash,
                        found: match other {
                            Some(h) => format!("hash {h} there"),
                            None => format!("only {} entries", at.entries),
                        },
                    },
                ));
            }
        }
    }
    if at != head {
        return Err((
            at.entries,
            Broken::Head {
                entries: at.entries,
                found: at.hash,
                head_entries: head.entries,
                head_hash: head.hash,
            },
        ));
    }
    Ok(Verified {
        entries: at.entries,
        head: at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(n: u64) -> (Vec<AccessEntry>, Head) {
        let mut head = Head::EMPTY;
        let mut out = Vec::new();
        for i in 0..n {
            let e = AccessEntry::next(
                &head,
                1000 + i,
                format!("user-{}", i % 3),
                "read".into(),
                Some(RecordId([i as u8; 16])),
                String::new(),
            );
            head = Head::after(&e);
            out.push(e);
        }
        (out, head)
    }

    fn check(entries: &[AccessEntry], head: Head, anchors: &[Head]) -> Result<Verified, Broken> {
        verify(entries.iter().cloned().map(Ok), head, anchors).map_err(|(_, b)| b)
    }

    #[test]
    fn an_untouched_log_verifies() {
        let (entries, head) = log(10);
        let anchor = Head::after(&entries[4]);
        let v = check(&entries, head, &[anchor, head]).unwrap();
        assert_eq!(v.entries, 10);
        assert!(check(&[], Head::EMPTY, &[]).is_ok());
    }

    #[test]
    fn a_changed_entry_is_found() {
        let (mut entries, head) = log(10);
        entries[3].user = "someone-else".into();
        assert_eq!(check(&entries, head, &[]), Err(Broken::Chain { at: 4 }));
        // The last entry changed: only the head (or an anchor) shows it.
        let (mut entries, head) = log(10);
        entries[9].detail = "nothing to see".into();
        assert!(matches!(
            check(&entries, head, &[]),
            Err(Broken::Head { .. })
        ));
    }

    #[test]
    fn a_removed_entry_is_found() {
        let (mut entries, head) = log(10);
        entries.remove(5);
        assert_eq!(
            check(&entries, head, &[]),
            Err(Broken::Sequence { at: 5, found: 6 })
        );
        // Removing the last entries is a head mismatch.
        let (mut entries, head) = log(10);
        entries.truncate(8);
        assert!(matches!(
            check(&entries, head, &[]),
            Err(Broken::Head { entries: 8, .. })
        ));
    }

    #[test]
    fn reordered_entries_are_found() {
        let (mut entries, head) = log(10);
        entries.swap(2, 3);
        assert_eq!(
            check(&entries, head, &[]),
            Err(Broken::Sequence { at: 2, found: 3 })
        );
        // Renumbered to hide the swap: the hashes still break.
        let (mut entries, head) = log(10);
        entries.swap(2, 3);
        entries[2].seq = 2;
        entries[3].seq = 3;
        assert_eq!(check(&entries, head, &[]), Err(Broken::Chain { at: 2 }));
    }

    #[test]
    fn a_rewritten_log_with_a_new_head_is_caught_by_its_anchor() {
        let (entries, _) = log(10);
        let anchor = Head::after(&entries[6]);
        // The attacker rebuilds the log from entry 3 on, consistently.
        let mut forged = entries[..3].to_vec();
        let mut h = Head::after(&forged[2]);
        for i in 3..10u64 {
            let e = AccessEntry::next(
                &h,
                2000 + i,
                "owner".into(),
                "read".into(),
                None,
                String::new(),
            );
            h = Head::after(&e);
            forged.push(e);
        }
        assert!(
            check(&forged, h, &[]).is_ok(),
            "without the anchor it passes"
        );
        assert!(matches!(
            check(&forged, h, &[anchor]),
            Err(Broken::Anchor { anchored: 7, .. })
        ));
        // Cut below the anchor: caught too.
        assert!(matches!(
            check(&entries[..5], Head::after(&entries[4]), &[anchor]),
            Err(Broken::Anchor { .. })
        ));
    }

    #[test]
    fn unreadable_entries_are_named_and_long_fields_are_cut() {
        let (entries, head) = log(3);
        let mut items: Vec<Result<AccessEntry, String>> = entries.into_iter().map(Ok).collect();
        items[1] = Err("garbage".into());
        assert_eq!(
            verify(items, head, &[]).map_err(|(_, b)| b),
            Err(Broken::Unreadable {
                at: 1,
                reason: "garbage".into()
            })
        );
        let e = AccessEntry::next(
            &Head::EMPTY,
            1,
            "é".repeat(400),
            "x".into(),
            None,
            String::new(),
        );
        assert!(e.user.len() <= MAX_FIELD_BYTES);
        assert!(e.to_bytes().len() <= MAX_ENTRY_BYTES);
        assert_eq!(AccessEntry::from_bytes(&e.to_bytes()).unwrap(), e);
    }
}
