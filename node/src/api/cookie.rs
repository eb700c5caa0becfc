//! The API cookie: a random secret written to `<data-dir>/api.cookie` (mode
//! 0600) at each start; a client proves it may use the API by presenting it.

use std::path::Path;

use anyhow::Context;
use rand_core::Rng;

/// The secret as 64 hex digits.
#[derive(Clone, PartialEq, Eq)]
pub struct Cookie(String);

impl std::fmt::Debug for Cookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cookie(..)")
    }
}

impl Cookie {
    /// A fresh random cookie.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Cookie(hex::encode(bytes))
    }

    /// Writes the cookie, replacing any previous one, readable by the owner only.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let tmp = path.with_extension("cookie.tmp");
        let _ = std::fs::remove_file(&tmp);
        crate::datadir::write_secret_file(&tmp, self.0.as_bytes())?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
    }

    /// Reads a cookie file.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read the API cookie {} (is the node running?)",
                path.display()
            )
        })?;
        let text = text.trim();
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            anyhow::bail!("{} is not a qward API cookie", path.display());
        }
        Ok(Cookie(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Compares in time independent of where the strings differ.
    pub fn matches(&self, presented: &str) -> bool {
        let a = self.0.as_bytes();
        let b = presented.as_bytes();
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_read_and_match() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.cookie");
        let c = Cookie::generate();
        c.write(&path).unwrap();
        let c2 = Cookie::generate();
        c2.write(&path).unwrap();
        let back = Cookie::read(&path).unwrap();
        assert_eq!(back, c2);
        assert!(back.matches(c2.as_str()));
        assert!(!back.matches(c.as_str()));
        assert!(!back.matches(""));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!format!("{back:?}").contains(back.as_str()));
    }
}
