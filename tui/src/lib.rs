//! qward's terminal UI: a ratatui client of the node's control API, built as
//! The Elm Architecture (`State`, `Message`, `update`, `view`). It talks to
//! the node only through a [`Bridge`] of channels, so it needs no async
//! runtime and does not depend on the node crate.

pub mod bridge;
pub mod effect;
pub mod fhir_view;
pub mod forms;
pub mod message;
pub mod run;
pub mod state;
pub mod theme;
pub mod update;
pub mod view;

#[cfg(test)]
mod fixtures;

pub use bridge::{Bridge, BridgeRemote, Incoming, Request};
pub use effect::Effect;
pub use message::Message;
pub use run::{Options, Unlocker, run};
pub use state::{Screen, State};
pub use theme::Theme;
pub use update::update;
pub use view::view;

/// Every topic the UI subscribes to.
pub const TOPICS: [qward_core::api::Topic; 6] = [
    qward_core::api::Topic::Blocks,
    qward_core::api::Topic::Peers,
    qward_core::api::Topic::Transactions,
    qward_core::api::Topic::KeySessions,
    qward_core::api::Topic::Messages,
    qward_core::api::Topic::Logs,
];
