//! Effects: what `update` asks the outside world to do. `update` stays pure;
//! the run loop performs effects and feeds their outcomes back as messages.

use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

/// A request from `update` to the run loop.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Call a control-API method; the answer comes back as
    /// [`crate::Message::Response`] carrying the same method name.
    Call { method: String, params: Value },
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
    /// A call with parameters serialized to JSON (`null` when they cannot be).
    pub fn call(method: &str, params: impl Serialize) -> Effect {
        Effect::Call {
            method: method.to_string(),
            params: serde_json::to_value(params).unwrap_or(Value::Null),
        }
    }

    /// A call without parameters.
    pub fn call_bare(method: &str) -> Effect {
        Effect::Call {
            method: method.to_string(),
            params: Value::Null,
        }
    }

    /// The method name, if this is a call.
    pub fn method(&self) -> Option<&str> {
        match self {
            Effect::Call { method, .. } => Some(method),
            _ => None,
        }
    }
}
