//! Effects: what `update` asks the outside world to do. `update` stays pure;
//! the run loop performs effects and feeds their outcomes back as messages.

use std::path::PathBuf;

use qward_core::api::Call;

/// A request from `update` to the run loop.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Call the node's control API; the typed answer comes back as
    /// [`crate::Message::Response`] carrying the call's method name.
    Call(Call),
    /// Read a FHIR file for the compose form; the content comes back as
    /// [`crate::Message::FileRead`].
    ReadFile { path: PathBuf },
    /// List the `.json` files of a directory for the file picker; the names
    /// come back as [`crate::Message::DirListed`].
    ListDir { dir: PathBuf },
    /// Check the secret typed on the lock screen; the outcome comes back
    /// as [`crate::Message::Unlocked`].
    Unlock(Secret),
    /// Leave the UI.
    Quit,
}

impl Effect {
    /// The method name, if this is a call.
    pub fn method(&self) -> Option<&'static str> {
        match self {
            Effect::Call(call) => Some(call.method()),
            _ => None,
        }
    }
}

/// A secret typed by a person: zeroized when dropped, never printed.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(zeroize::Zeroizing<String>);

impl Secret {
    pub fn new(text: String) -> Self {
        Secret(zeroize::Zeroizing::new(text))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn push(&mut self, c: char) {
        self.0.push(c);
    }

    pub fn pop(&mut self) {
        self.0.pop();
    }

    pub fn clear(&mut self) {
        zeroize::Zeroize::zeroize(&mut *self.0);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many characters, for showing dots.
    pub fn chars(&self) -> usize {
        self.0.chars().count()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}
