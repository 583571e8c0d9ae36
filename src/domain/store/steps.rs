//! One transaction per step of a flow.

use futures::future::BoxFuture;

use super::StoreError;

/// Runs the store calls of one step of a flow as one transaction, so a step leaves all of its
/// rows or none: a TOTP step is never spent without the flow marked verified and the audit row
/// written, and a database that fails half-way leaves nothing behind.
///
/// Two kinds of write are made outside a step, each committed on its own, because other requests
/// and other instances must see them at once: the throttle's counters (a limit is counted before
/// the work it limits) and the claim of a flow before the directory is written.
pub trait Transactions: Send + Sync {
    /// Runs `work`; every store call it makes shares one transaction, committed when `work`
    /// returns `true` and rolled back when it returns `false` (or is dropped before it ends).
    /// What the store was asked to do after the commit during `work` (waking the outbox's
    /// sender) runs once the commit succeeded.
    /// Within a step of the same store, `work` joins that step.
    fn run<'a>(&'a self, work: BoxFuture<'a, bool>) -> BoxFuture<'a, Result<(), StoreError>>;
}
