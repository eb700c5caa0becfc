//! What key agreement keeps between sessions: this node's per-peer link
//! settings, the recent sessions shown by the API, the responder sessions in
//! progress, and one guard per peer so that this node starts one session
//! with a peer at a time.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use qward_core::api::KeySessionInfo;
use qward_core::hybrid::SessionId;
use qward_core::identity::AccountId;
use qward_core::keyagree::{LinkModel, Responder};

/// Sessions kept for `key_sessions`.
const RECENT_SESSIONS: usize = 100;

pub(crate) struct Serving {
    pub(crate) responder: Responder,
    pub(crate) last_seen: Instant,
    pub(crate) info: KeySessionInfo,
}

/// Key-agreement state shared by the node's tasks.
#[derive(Default)]
pub struct Agreements {
    pub(crate) links: Mutex<HashMap<AccountId, LinkModel>>,
    pub(crate) recent: Mutex<VecDeque<KeySessionInfo>>,
    pub(crate) serving: Mutex<HashMap<(AccountId, SessionId), Serving>>,
    /// One session this node starts per peer at a time.
    pub(crate) starting: tokio::sync::Mutex<HashMap<AccountId, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for Agreements {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agreements").finish_non_exhaustive()
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Agreements {
    /// Recent sessions, both roles, oldest first.
    pub fn recent(&self) -> Vec<KeySessionInfo> {
        lock(&self.recent).iter().cloned().collect()
    }

    pub(crate) fn note(&self, info: &KeySessionInfo) {
        let mut recent = lock(&self.recent);
        if let Some(s) = recent.iter_mut().find(|s| s.session_id == info.session_id) {
            *s = info.clone();
        } else {
            recent.push_back(info.clone());
            while recent.len() > RECENT_SESSIONS {
                recent.pop_front();
            }
        }
    }
}
