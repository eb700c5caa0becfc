//! The address book (`<data-dir>/contacts.toml`): person-readable names for
//! accounts, kept locally and never on the chain (a patient's name is health
//! data). `qward devnet` writes one for every node; names given on the command
//! line (`--to st-marys`) are resolved here.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use qward_core::identity::{AccountId, Role};
use serde::{Deserialize, Serialize};

/// One entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    pub name: String,
    pub account: String,
    pub role: Role,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    #[serde(default)]
    contact: Vec<Contact>,
}

/// Names by account and accounts by name.
#[derive(Debug, Clone, Default)]
pub struct Contacts {
    by_account: BTreeMap<AccountId, (String, Role)>,
    by_name: BTreeMap<String, AccountId>,
}

impl Contacts {
    /// Reads `path`; a missing file is an empty book.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let file: File = toml::from_str(&text)
            .with_context(|| format!("{} is not a valid contacts file", path.display()))?;
        let mut book = Contacts::default();
        for c in file.contact {
            let account = AccountId::from_hex(&c.account).with_context(|| {
                format!("{}: contact '{}' has a bad account", path.display(), c.name)
            })?;
            book.insert(&c.name, account, c.role);
        }
        Ok(book)
    }

    /// Writes the book to `path`.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let file = File {
            contact: self.entries(),
        };
        let text = format!(
            "# Names for accounts, kept on this node only.\n{}",
            toml::to_string(&file)?
        );
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
    }

    pub fn insert(&mut self, name: &str, account: AccountId, role: Role) {
        self.by_account.insert(account, (name.to_string(), role));
        self.by_name.insert(name.to_ascii_lowercase(), account);
    }

    pub fn name_of(&self, account: &AccountId) -> Option<&str> {
        self.by_account.get(account).map(|(n, _)| n.as_str())
    }

    /// An account as people know it: its name here, or its short id.
    pub fn label(&self, account: &AccountId) -> String {
        self.name_of(account)
            .map(str::to_string)
            .unwrap_or_else(|| account.short())
    }

    /// A peer as people know it: its account's name here, or the peer id.
    pub fn label_peer(&self, peer: &crate::net::PeerId) -> String {
        crate::net::account_from_peer_id(peer)
            .and_then(|a| self.name_of(&a).map(str::to_string))
            .unwrap_or_else(|| peer.to_string())
    }

    pub fn role_of(&self, account: &AccountId) -> Option<Role> {
        self.by_account.get(account).map(|(_, r)| *r)
    }

    /// A name, a 64-hex-digit account, or a libp2p peer id, to an account.
    pub fn resolve(&self, who: &str) -> anyhow::Result<AccountId> {
        let who = who.trim();
        if let Some(a) = self.by_name.get(&who.to_ascii_lowercase()) {
            return Ok(*a);
        }
        if let Ok(a) = AccountId::from_hex(who) {
            return Ok(a);
        }
        if let Ok(peer) = who.parse::<libp2p::PeerId>()
            && let Some(a) = crate::net::account_from_peer_id(&peer)
        {
            return Ok(a);
        }
        anyhow::bail!("'{who}' is not a known name, an account (64 hex digits) or a peer id")
    }

    /// Removes the entry named `name`; answers its account.
    pub fn remove(&mut self, name: &str) -> Option<AccountId> {
        let account = self.by_name.remove(&name.trim().to_ascii_lowercase())?;
        self.by_account.remove(&account);
        Some(account)
    }

    /// Every entry, by name.
    pub fn entries(&self) -> Vec<Contact> {
        let mut all: Vec<Contact> = self
            .by_account
            .iter()
            .map(|(a, (n, r))| Contact {
                name: n.clone(),
                account: a.to_hex(),
                role: *r,
            })
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    pub fn len(&self) -> usize {
        self.by_account.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_account.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("contacts.toml");
        let mut book = Contacts::default();
        let a = AccountId([7; 32]);
        book.insert("St-Marys", a, Role::Hospital);
        book.save(&path).unwrap();
        let back = Contacts::load(&path).unwrap();
        assert_eq!(back.resolve("st-marys").unwrap(), a);
        assert_eq!(back.resolve(&a.to_hex()).unwrap(), a);
        assert_eq!(back.name_of(&a), Some("St-Marys"));
        assert!(
            back.resolve("nobody")
                .unwrap_err()
                .to_string()
                .contains("not a known name")
        );
        assert!(
            Contacts::load(&dir.path().join("none.toml"))
                .unwrap()
                .is_empty()
        );
    }
}
