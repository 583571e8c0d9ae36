//! The names the self-service flows' shared parts had before they got modules of their own,
//! kept for the callers outside the domain until they import from those modules.

pub use super::audit::Audit;
pub use super::clock::ms;
pub use super::deps::{Client, Deps};
pub use super::error::FlowError;
pub use super::notifier::mask_email;
pub use super::settings::{HelpdeskSettings, Settings};
pub use super::throttle::throttle_address;
