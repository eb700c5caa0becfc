//! Who may use the control API, and as whom: the node's cookie (the owner's
//! own tools, an admin that never times out), and the users of a shared
//! node, each with a role and a credential (`<name>:<secret>`, stored only
//! as a keyed hash, shown once when made). A user logs in with the
//! credential (`POST /login`) and gets a session token; a session that is
//! not used for the node's idle time locks (automatic logoff), and the user
//! logs in again. Removing a user ends their sessions at once.
//!
//! The book of users and sessions sits behind one mutex, held only for a
//! lookup or an update, never across an await or with another lock.
//! Users persist in `Column::Meta` under `user/` + name.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use qward_core::api::{Principal, UserCreated, UserInfo, UserRole};
use qward_core::codec;
use qward_core::storage::{Column, Store, WriteBatch};
use rand_core::Rng;
use serde::{Deserialize, Serialize};

use super::Cookie;

/// The name the cookie's holder goes by in logs.
pub const OWNER: &str = "owner";
/// Users a node keeps, at most.
pub const MAX_USERS: usize = 1000;
/// Open sessions, at most (the oldest idle one gives way).
pub const MAX_SESSIONS: usize = 4096;
/// Open sessions of one user, at most (their oldest gives way), so one user
/// logging in again and again cannot push out everyone else's.
pub const MAX_SESSIONS_PER_USER: usize = 32;
/// What starts a session token.
const SESSION_PREFIX: &str = "qws_";
const USER_PREFIX: &[u8] = b"user/";

/// A caller the gate let in: who, and the session it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub principal: Principal,
    /// The session's key, for a user (checked again at every call).
    pub session: Option<[u8; 32]>,
}

/// Why a credential or session is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error(
        "missing or wrong API credential: send the data directory's api.cookie in x-qward-cookie or as Authorization: Bearer, or a session token from POST /login"
    )]
    Missing,
    #[error("wrong credential for user '{0}'")]
    WrongCredential(String),
    #[error("a credential is <name>:<secret>, as `qward users add` printed it")]
    BadCredential,
    #[error("unknown or ended session: log in again")]
    UnknownSession,
    #[error(
        "session of '{user}' locked after {idle_s} s without use (automatic logoff): log in again"
    )]
    Locked { user: String, idle_s: u64 },
    #[error("user names are 1 to 32 of a-z, 0-9, '-', '_' and '.', and not 'owner'")]
    BadName,
    #[error("user '{0}' already exists")]
    Exists(String),
    #[error("no user '{0}'")]
    NoSuchUser(String),
    #[error("a node keeps at most {MAX_USERS} users")]
    TooManyUsers,
    #[error("storing users: {0}")]
    Store(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredUser {
    name: String,
    role: UserRole,
    secret_hash: [u8; 32],
    created_ms: u64,
}

#[derive(Debug, Clone)]
struct Session {
    user: String,
    role: UserRole,
    last_ms: u64,
}

#[derive(Debug, Default)]
struct Book {
    users: BTreeMap<String, StoredUser>,
    sessions: HashMap<[u8; 32], Session>,
}

/// The users, sessions and cookie of one node.
pub struct Auth {
    cookie: Cookie,
    store: Arc<dyn Store + Send + Sync>,
    idle: Duration,
    book: Mutex<Book>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("idle", &self.idle)
            .finish_non_exhaustive()
    }
}

fn secret_hash(secret: &[u8]) -> [u8; 32] {
    blake3::derive_key("qward api user credential v1", secret)
}

fn session_hash(token: &str) -> [u8; 32] {
    blake3::derive_key("qward api session v1", token.as_bytes())
}

fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name != OWNER
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
}

fn random_secret() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

impl Auth {
    /// Loads the users of `store`; sessions lock after `idle` without use
    /// (zero: never).
    pub fn load(
        cookie: Cookie,
        store: Arc<dyn Store + Send + Sync>,
        idle: Duration,
    ) -> anyhow::Result<Self> {
        let mut book = Book::default();
        for (_, v) in store.prefix(Column::Meta, USER_PREFIX, MAX_USERS)? {
            let u: StoredUser =
                codec::decode(&v, 4096).map_err(|e| anyhow::anyhow!("a stored API user: {e}"))?;
            book.users.insert(u.name.clone(), u);
        }
        Ok(Auth {
            cookie,
            store,
            idle,
            book: Mutex::new(book),
        })
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Seconds of idleness after which a session locks (`None`: never).
    pub fn idle_logoff_s(&self) -> Option<u64> {
        (!self.idle.is_zero()).then_some(self.idle.as_secs())
    }

    fn owner(&self) -> Caller {
        Caller {
            principal: Principal {
                user: OWNER.into(),
                role: UserRole::Admin,
                idle_logoff_s: None,
            },
            session: None,
        }
    }

    /// Who presents `credential` (the cookie, or a session token) at `now_ms`.
    pub fn authenticate(&self, credential: Option<&str>, now_ms: u64) -> Result<Caller, AuthError> {
        let Some(credential) = credential else {
            return Err(AuthError::Missing);
        };
        if self.cookie.matches(credential) {
            return Ok(self.owner());
        }
        if !credential.starts_with(SESSION_PREFIX) {
            return Err(AuthError::Missing);
        }
        let key = session_hash(credential);
        let principal = self.touch(&key, now_ms)?;
        Ok(Caller {
            principal,
            session: Some(key),
        })
    }

    /// Checks that session `key` is still open at `now_ms` and marks it used.
    pub fn touch(&self, key: &[u8; 32], now_ms: u64) -> Result<Principal, AuthError> {
        let idle_ms = self.idle.as_millis() as u64;
        let mut book = self.book();
        let Some(s) = book.sessions.get_mut(key) else {
            return Err(AuthError::UnknownSession);
        };
        if idle_ms > 0 && now_ms.saturating_sub(s.last_ms) >= idle_ms {
            let user = s.user.clone();
            book.sessions.remove(key);
            return Err(AuthError::Locked {
                user,
                idle_s: idle_ms / 1000,
            });
        }
        s.last_ms = s.last_ms.max(now_ms);
        Ok(Principal {
            user: s.user.clone(),
            role: s.role,
            idle_logoff_s: self.idle_logoff_s(),
        })
    }

    /// Whether session `key` is still open at `now_ms` (not marking it used:
    /// events pushed to a subscription are no activity of the person).
    pub fn is_open(&self, key: &[u8; 32], now_ms: u64) -> bool {
        let idle_ms = self.idle.as_millis() as u64;
        self.book()
            .sessions
            .get(key)
            .is_some_and(|s| idle_ms == 0 || now_ms.saturating_sub(s.last_ms) < idle_ms)
    }

    /// Logs in with `<name>:<secret>`: a new session token and who it is.
    pub fn login(&self, credential: &str, now_ms: u64) -> Result<(String, Principal), AuthError> {
        let (name, secret) = credential.split_once(':').ok_or(AuthError::BadCredential)?;
        let secret = hex::decode(secret.trim()).map_err(|_| AuthError::BadCredential)?;
        let presented = blake3::Hash::from(secret_hash(&secret));
        let mut book = self.book();
        let Some(user) = book.users.get(name).cloned() else {
            return Err(AuthError::WrongCredential(name.to_string()));
        };
        // blake3::Hash compares in constant time.
        if presented != blake3::Hash::from(user.secret_hash) {
            return Err(AuthError::WrongCredential(name.to_string()));
        }
        let idle_ms = self.idle.as_millis() as u64;
        if idle_ms > 0 {
            book.sessions
                .retain(|_, s| now_ms.saturating_sub(s.last_ms) < idle_ms);
        }
        let mut mine: Vec<([u8; 32], u64)> = book
            .sessions
            .iter()
            .filter(|(_, s)| s.user == user.name)
            .map(|(k, s)| (*k, s.last_ms))
            .collect();
        if mine.len() >= MAX_SESSIONS_PER_USER {
            mine.sort_by_key(|(_, last)| *last);
            for (k, _) in mine.iter().take(mine.len() + 1 - MAX_SESSIONS_PER_USER) {
                book.sessions.remove(k);
            }
        }
        if book.sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = book
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.last_ms)
                .map(|(k, _)| *k)
        {
            book.sessions.remove(&oldest);
        }
        let token = format!("{SESSION_PREFIX}{}", hex::encode(random_secret()));
        book.sessions.insert(
            session_hash(&token),
            Session {
                user: user.name.clone(),
                role: user.role,
                last_ms: now_ms,
            },
        );
        Ok((
            token,
            Principal {
                user: user.name,
                role: user.role,
                idle_logoff_s: self.idle_logoff_s(),
            },
        ))
    }

    /// Adds a user; the answer holds its credential, which is kept nowhere.
    pub fn add_user(
        &self,
        name: &str,
        role: UserRole,
        now_ms: u64,
    ) -> Result<UserCreated, AuthError> {
        if !valid_name(name) {
            return Err(AuthError::BadName);
        }
        let mut book = self.book();
        if book.users.contains_key(name) {
            return Err(AuthError::Exists(name.into()));
        }
        if book.users.len() >= MAX_USERS {
            return Err(AuthError::TooManyUsers);
        }
        let secret = random_secret();
        let user = StoredUser {
            name: name.into(),
            role,
            secret_hash: secret_hash(&secret),
            created_ms: now_ms,
        };
        let mut batch = WriteBatch::new();
        batch.put(
            Column::Meta,
            [USER_PREFIX, name.as_bytes()].concat(),
            codec::encode_infallible(&user),
        );
        batch.set_sync(true);
        self.store
            .write(batch)
            .map_err(|e| AuthError::Store(e.to_string()))?;
        book.users.insert(name.into(), user);
        Ok(UserCreated {
            name: name.into(),
            role,
            credential: format!("{name}:{}", hex::encode(secret)),
        })
    }

    /// Removes a user and ends their sessions.
    pub fn remove_user(&self, name: &str) -> Result<(), AuthError> {
        let mut book = self.book();
        if !book.users.contains_key(name) {
            return Err(AuthError::NoSuchUser(name.into()));
        }
        let mut batch = WriteBatch::new();
        batch.delete(Column::Meta, [USER_PREFIX, name.as_bytes()].concat());
        batch.set_sync(true);
        self.store
            .write(batch)
            .map_err(|e| AuthError::Store(e.to_string()))?;
        book.users.remove(name);
        book.sessions.retain(|_, s| s.user != name);
        Ok(())
    }

    pub fn users(&self) -> Vec<UserInfo> {
        self.book()
            .users
            .values()
            .map(|u| UserInfo {
                name: u.name.clone(),
                role: u.role,
                created_ms: u.created_ms,
            })
            .collect()
    }
}

/// Whether `role` may call `method`. Read-only users read; clinicians also
/// send, forward, erase, consent and declare emergencies; only admins (and
/// the owner's cookie) manage users, submit other transactions, change
/// links or stop the node.
pub fn allowed(role: UserRole, method: &str) -> bool {
    use qward_core::api::method as m;
    const READ: &[&str] = &[
        m::STATUS,
        m::PEERS,
        m::SUBSCRIBE,
        m::UNSUBSCRIBE,
        m::CHAIN_TX,
        m::CHAIN_HEAD,
        m::CHAIN_BLOCK,
        m::CHAIN_BLOCKS,
        m::CHAIN_MEMBERS,
        m::CHAIN_CONSENT,
        m::CHAIN_VERIFY,
        m::CHAIN_EMERGENCIES,
        m::LOGS,
        m::KEYS,
        m::KEY_SESSIONS,
        m::LINK_GET,
        m::INBOX,
        m::OUTBOX,
        m::OUTBOX_SHOW,
        m::RECORD,
        m::AUDIT_LOG,
        m::AUDIT_VERIFY,
        m::WHOAMI,
    ];
    const CLINICAL: &[&str] = &[
        m::SEND,
        m::FORWARD,
        m::RECORD_ERASE,
        m::RECORD_ERASE_REQUEST,
        m::EMERGENCY_DECLARE,
        m::CONSENT_GRANT,
        m::CONSENT_REVOKE,
        m::KEY_AGREE,
    ];
    match role {
        UserRole::Admin => true,
        UserRole::Clinician => READ.contains(&method) || CLINICAL.contains(&method),
        UserRole::ReadOnly => READ.contains(&method),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qward_core::storage::MemStore;

    fn auth(idle_s: u64) -> (Auth, Cookie) {
        let cookie = Cookie::generate();
        let store: Arc<dyn Store + Send + Sync> = Arc::new(MemStore::new());
        let a = Auth::load(cookie.clone(), store, Duration::from_secs(idle_s)).unwrap();
        (a, cookie)
    }

    #[test]
    fn a_user_logs_in_with_the_credential_and_a_session_locks_when_idle() {
        let (a, cookie) = auth(60);
        let made = a.add_user("nurse-kim", UserRole::ReadOnly, 0).unwrap();
        assert!(made.credential.starts_with("nurse-kim:"));
        // The credential itself is no API credential: only a session is.
        assert_eq!(
            a.authenticate(Some(&made.credential), 0),
            Err(AuthError::Missing)
        );
        let (token, who) = a.login(&made.credential, 1_000).unwrap();
        assert_eq!(
            (who.user.as_str(), who.role),
            ("nurse-kim", UserRole::ReadOnly)
        );
        let caller = a.authenticate(Some(&token), 30_000).unwrap();
        assert_eq!(caller.principal.user, "nurse-kim");
        // Used at 30 s, so still open at 89 s; then idle for 60 s: locked.
        assert!(a.authenticate(Some(&token), 89_000).is_ok());
        assert_eq!(
            a.authenticate(Some(&token), 149_000),
            Err(AuthError::Locked {
                user: "nurse-kim".into(),
                idle_s: 60
            })
        );
        // Locked for good: logging in again is the way back.
        assert_eq!(
            a.authenticate(Some(&token), 149_001),
            Err(AuthError::UnknownSession)
        );
        assert!(a.login(&made.credential, 150_000).is_ok());
        // The owner's cookie never locks.
        assert_eq!(
            a.authenticate(Some(cookie.as_str()), u64::MAX)
                .unwrap()
                .principal
                .user,
            OWNER
        );
    }

    #[test]
    fn wrong_missing_and_removed_credentials_are_refused() {
        let (a, _) = auth(0);
        let made = a.add_user("dr-ito", UserRole::Clinician, 0).unwrap();
        let (name, secret) = made.credential.split_once(':').unwrap();
        let mut wrong = secret.to_string();
        wrong.replace_range(..1, if secret.starts_with('0') { "1" } else { "0" });
        assert_eq!(
            a.login(&format!("{name}:{wrong}"), 0),
            Err(AuthError::WrongCredential("dr-ito".into()))
        );
        assert_eq!(
            a.login(&format!("nobody:{secret}"), 0),
            Err(AuthError::WrongCredential("nobody".into()))
        );
        assert_eq!(a.login("no-colon", 0), Err(AuthError::BadCredential));
        assert_eq!(a.authenticate(None, 0), Err(AuthError::Missing));
        assert_eq!(
            a.authenticate(Some("qws_00"), 0),
            Err(AuthError::UnknownSession)
        );
        let (token, _) = a.login(&made.credential, 0).unwrap();
        a.remove_user("dr-ito").unwrap();
        assert_eq!(
            a.authenticate(Some(&token), 1),
            Err(AuthError::UnknownSession),
            "removing a user ends their sessions"
        );
        assert!(a.login(&made.credential, 2).is_err());
        assert_eq!(
            a.remove_user("dr-ito"),
            Err(AuthError::NoSuchUser("dr-ito".into()))
        );
        for bad in ["", "owner", "Dr Ito", &"x".repeat(33)] {
            assert_eq!(
                a.add_user(bad, UserRole::Admin, 0),
                Err(AuthError::BadName),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn users_persist_without_their_secret() {
        let store: Arc<dyn Store + Send + Sync> = Arc::new(MemStore::new());
        let a = Auth::load(Cookie::generate(), store.clone(), Duration::ZERO).unwrap();
        let made = a.add_user("clerk", UserRole::ReadOnly, 5).unwrap();
        let secret = made.credential.split_once(':').unwrap().1.to_string();
        for (_, v) in store.prefix(Column::Meta, USER_PREFIX, 10).unwrap() {
            assert!(!hex::encode(&v).contains(&secret));
            assert!(!v.windows(32).any(|w| w == hex::decode(&secret).unwrap()));
        }
        let again = Auth::load(Cookie::generate(), store, Duration::ZERO).unwrap();
        assert_eq!(again.users().len(), 1);
        assert!(again.login(&made.credential, 6).is_ok());
    }

    #[test]
    fn a_read_only_user_cannot_send_forward_or_erase() {
        use qward_core::api::method as m;
        for method in [
            m::SEND,
            m::FORWARD,
            m::RECORD_ERASE,
            m::EMERGENCY_DECLARE,
            m::TX_SUBMIT,
            m::USER_ADD,
            m::SHUTDOWN,
        ] {
            assert!(!allowed(UserRole::ReadOnly, method), "{method}");
        }
        for method in [m::RECORD, m::INBOX, m::WHOAMI] {
            assert!(allowed(UserRole::ReadOnly, method), "{method}");
        }
        for method in [m::SEND, m::FORWARD, m::RECORD_ERASE] {
            assert!(allowed(UserRole::Clinician, method), "{method}");
        }
        for method in [
            m::USER_ADD,
            m::USER_REMOVE,
            m::TX_SUBMIT,
            m::SHUTDOWN,
            m::LINK_SET,
        ] {
            assert!(!allowed(UserRole::Clinician, method), "{method}");
            assert!(allowed(UserRole::Admin, method), "{method}");
        }
    }
}
