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
