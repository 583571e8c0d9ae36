//! Manager approval links.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::ObjectGuid;
use crate::domain::clock::Timestamp;

/// One approval link, as stored (never the token itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagerApproval {
    /// SHA-256 of the link's token; also the id of the manager's verification flow.
    pub id_hash: Vec<u8>,
    /// The operator's `manager` check of the caller, marked verified on approval.
    pub check_id_hash: Vec<u8>,
    /// The operator's sAMAccountName.
    pub operator: String,
    pub caller: ObjectGuid,
    pub caller_sam: String,
    pub caller_name: Option<String>,
    pub manager: ObjectGuid,
    pub manager_sam: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

#[async_trait]
pub trait ApprovalStore: Send + Sync {
    async fn create_approval(&self, approval: &ManagerApproval) -> Result<(), StoreError>;
    async fn approval(&self, id_hash: &[u8]) -> Result<Option<ManagerApproval>, StoreError>;
    /// Records that `user`'s `manager` is `manager_dn` at `now`, and returns since when the
    /// service has seen that value: `now` for a value new to it (first sight, or a change).
    async fn manager_seen_since(
        &self,
        user: &ObjectGuid,
        manager_dn: &str,
        now: Timestamp,
    ) -> Result<Timestamp, StoreError>;
}
