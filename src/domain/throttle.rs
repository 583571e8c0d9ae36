//! Limits on how often an address, a user or a login may try: per-address counts, and the block
//! a user earns by wrong codes.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::ObjectGuid;
use super::audit::{Audit, AuditKind, Auditor, Outcome};
use super::client::Client;
use super::clock::{Clock, Timestamp};
use super::error::FlowError;
use super::settings::ThrottleSettings;
use super::store::{Person, StoreError, ThrottleKey, ThrottleStore};

/// How many events a key may count within a window, and the limit named when it is passed.
pub struct Quota {
    pub key: ThrottleKey,
    pub max: i64,
    pub window: Duration,
    pub limit: Limit,
}

/// A limit whose hit is audited (as a `throttled` row whose reason starts with its name) and
/// counted in `sspr_throttle_hits_total` by that name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// Reset and registration starts per client address (`throttle.ip_max_starts`).
    IpStart,
    /// Code checks per client address (`throttle.ip_max_verifications`).
    IpVerify,
    /// Wrong codes for one user: the user is blocked.
    UserBlocked,
    /// Failed sign-ins with one typed login, by a user or an operator.
    SignInUser,
    SignInOperator,
    /// Code mails to one address (`throttle.email_max_sends`).
    EmailSends,
    /// An operator's sign-ins and requests (`helpdesk.operator_max_*`).
    OperatorSignIns,
    OperatorActions,
    /// Approval mails to a caller's manager.
    ManagerApprovalMails,
}

impl Limit {
    pub const ALL: [Limit; 9] = [
        Limit::IpStart,
        Limit::IpVerify,
        Limit::UserBlocked,
        Limit::SignInUser,
        Limit::SignInOperator,
        Limit::EmailSends,
        Limit::OperatorSignIns,
        Limit::OperatorActions,
        Limit::ManagerApprovalMails,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Limit::IpStart => "ip_start",
            Limit::IpVerify => "ip_verify",
            Limit::UserBlocked => "user_blocked",
            Limit::SignInUser => "signin_user",
            Limit::SignInOperator => "signin_operator",
            Limit::EmailSends => "email_sends",
            Limit::OperatorSignIns => "operator_sign_ins",
            Limit::OperatorActions => "operator_actions",
            Limit::ManagerApprovalMails => "manager_approval_mails",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == s)
    }

    /// The audit reason of a hit: the limit's name, then the throttled key if there is one.
    pub fn reason(self, key: Option<&str>) -> String {
        match key {
            Some(key) => format!("{} {key}", self.as_str()),
            None => self.as_str().to_owned(),
        }
    }

    /// The limit of a `throttled` row's reason, read back from its first word.
    pub fn of_reason(reason: &str) -> Option<Self> {
        reason.split_whitespace().next().and_then(Self::parse)
    }
}

/// What a per-address limit counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PerAddress {
    Starts,
    Verifications,
}

impl PerAddress {
    fn key(self, address: String) -> ThrottleKey {
        match self {
            PerAddress::Starts => ThrottleKey::AddressStarts(address),
            PerAddress::Verifications => ThrottleKey::AddressVerifications(address),
        }
    }

    fn limit(self) -> Limit {
        match self {
            PerAddress::Starts => Limit::IpStart,
            PerAddress::Verifications => Limit::IpVerify,
        }
    }
}

/// What a per-address throttle counts `ip` as: an IPv4 address (also when it comes IPv4-mapped,
/// `::ffff:a.b.c.d`, from a dual-stack socket) on its own, an IPv6 address by its first
/// `ipv6_prefix` bits, written `network/prefix`.
pub fn throttle_address(ip: IpAddr, ipv6_prefix: u8) -> String {
    let v6 = match ip {
        IpAddr::V4(v4) => return v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => return v4.to_string(),
            None => v6,
        },
    };
    let prefix = ipv6_prefix.clamp(1, 128);
    let mask = u128::MAX << (128 - u32::from(prefix));
    let network = std::net::Ipv6Addr::from(u128::from(v6) & mask);
    format!("{network}/{prefix}")
}

/// The limits the flows are held to: owns the throttle's counters and blocks, and audits each
/// refusal.
#[derive(Clone)]
pub struct Throttle {
    store: Arc<dyn ThrottleStore>,
    clock: Arc<dyn Clock>,
    audit: Auditor,
    settings: ThrottleSettings,
}

impl Throttle {
    pub fn new(
        store: Arc<dyn ThrottleStore>,
        clock: Arc<dyn Clock>,
        audit: Auditor,
        settings: ThrottleSettings,
    ) -> Self {
        Self {
            store,
            clock,
            audit,
            settings,
        }
    }

    /// Counts one event under `quota.key`; once more than `quota.max` fall in `quota.window`,
    /// audits the refusal (about `user`) and refuses with the window as the wait.
    pub async fn take(
        &self,
        client: &Client,
        quota: Quota,
        user: Option<(ObjectGuid, &str)>,
    ) -> Result<(), FlowError> {
        let now = self.clock.now();
        let count = self.hit(&quota.key, now, now - quota.window).await?;
        if count > quota.max {
            self.refused(client, user, quota.limit, None).await?;
            return Err(FlowError::Throttled {
                retry_after: quota.window,
            });
        }
        Ok(())
    }

    /// The code mails `person` may be sent (`throttle.email_max_sends` per `email_window`),
    /// refused as `limit`.
    pub fn code_mails(&self, person: Person, limit: Limit) -> Quota {
        Quota {
            key: ThrottleKey::CodeMails(person),
            max: self.settings.email_max_sends,
            window: self.settings.email_window,
            limit,
        }
    }

    /// Counts one event against a per-IP limit; refuses once the limit is passed.
    pub async fn ip_limit(
        &self,
        client: &Client,
        what: PerAddress,
        max: i64,
    ) -> Result<(), FlowError> {
        let Some(ip) = client.ip else { return Ok(()) };
        let now = self.clock.now();
        let window = self.settings.ip_window;
        let count = self
            .store
            .hit(
                &what
                    .key(throttle_address(ip, self.settings.ipv6_prefix))
                    .to_string(),
                now,
                now - window,
            )
            .await?;
        if count > max {
            self.refused(client, None, what.limit(), None).await?;
            return Err(FlowError::Throttled {
                retry_after: window,
            });
        }
        Ok(())
    }

    /// Whether `person` (a user, or the login of a decoy) is blocked now. A block is met
    /// silently (a start answers as always, a verification as a wrong code), so that a blocked
    /// account answers like a name that has none, under every spelling.
    pub async fn is_blocked(&self, person: &Person) -> Result<bool, StoreError> {
        Ok(self.blocked_until(person).await?.is_some())
    }

    /// When the block on `person` ends, if it is blocked now.
    pub async fn blocked_until(&self, person: &Person) -> Result<Option<Timestamp>, StoreError> {
        self.store
            .blocked_until(
                &ThrottleKey::Blocked(person.clone()).to_string(),
                self.clock.now(),
            )
            .await
    }

    /// Counts a failed verification for a user; blocks the user once past the limit. True when
    /// this failure started the block.
    pub async fn user_failure(&self, person: &Person, client: &Client) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let key = ThrottleKey::Blocked(person.clone()).to_string();
        let count = self
            .store
            .hit(
                &ThrottleKey::WrongCodes(person.clone()).to_string(),
                now,
                now - self.settings.user_window,
            )
            .await?;
        if count >= self.settings.user_max_failures {
            self.store
                .block(&key, now + self.settings.user_block)
                .await?;
            self.refused(client, None, Limit::UserBlocked, Some(&key))
                .await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Lifts the block on `person` and forgets its wrong codes. Whether a block was in force.
    pub async fn lift_block(&self, person: &Person) -> Result<bool, StoreError> {
        self.store
            .lift_block(
                &ThrottleKey::Blocked(person.clone()).to_string(),
                &ThrottleKey::WrongCodes(person.clone()).to_string(),
                self.clock.now(),
            )
            .await
    }

    /// Records one event under `key` at `at`; how many the key has at or after `since`,
    /// this one included.
    pub async fn hit(
        &self,
        key: &ThrottleKey,
        at: Timestamp,
        since: Timestamp,
    ) -> Result<i64, StoreError> {
        self.store.hit(&key.to_string(), at, since).await
    }

    /// How many events `key` has at or after `since`.
    pub async fn count(&self, key: &ThrottleKey, since: Timestamp) -> Result<i64, StoreError> {
        self.store.count(&key.to_string(), since).await
    }

    /// The audit row of a hit on `limit`, about `user` if known, for `key` when the row should
    /// say which one.
    pub async fn refused(
        &self,
        client: &Client,
        user: Option<(ObjectGuid, &str)>,
        limit: Limit,
        key: Option<&str>,
    ) -> Result<(), StoreError> {
        let reason = limit.reason(key);
        self.audit
            .record(
                client,
                Audit {
                    event: AuditKind::Throttled,
                    outcome: Outcome::Denied,
                    user: user.map(|(guid, _)| guid),
                    sam_account_name: user.map(|(_, sam)| sam),
                    method: None,
                    reason: Some(&reason),
                },
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_is_read_back_from_its_reason_without_the_key() {
        for limit in Limit::ALL {
            assert_eq!(Limit::parse(limit.as_str()), Some(limit));
            assert_eq!(Limit::of_reason(&limit.reason(None)), Some(limit));
            let reason = limit.reason(Some("user:4f1d-guid"));
            assert_eq!(reason, format!("{} user:4f1d-guid", limit.as_str()));
            assert_eq!(Limit::of_reason(&reason), Some(limit));
        }
        assert_eq!(Limit::of_reason(""), None);
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_prefix() {
        let key = |ip: &str, prefix| throttle_address(ip.parse().unwrap(), prefix);
        assert_eq!(key("2001:db8:1:2:aaaa::1", 64), "2001:db8:1:2::/64");
        assert_eq!(
            key("2001:db8:1:2:ffff:ffff:ffff:ffff", 64),
            "2001:db8:1:2::/64"
        );
        assert_ne!(key("2001:db8:1:3::1", 64), key("2001:db8:1:2::1", 64));
        // A prefix that does not end on a group boundary.
        assert_eq!(key("2001:db8:1:2ff::1", 56), "2001:db8:1:200::/56");
        assert_eq!(key("2001:db8:1:1ff::1", 56), "2001:db8:1:100::/56");
        assert_eq!(key("2001:db8::1", 48), "2001:db8::/48");
        // The bounds: one address, and half the address space.
        assert_eq!(key("2001:db8::1", 128), "2001:db8::1/128");
        assert_eq!(key("2001:db8::2", 128), "2001:db8::2/128");
        assert_eq!(key("2001:db8::1", 1), "::/1");
        assert_eq!(key("8001:db8::1", 1), "8000::/1");
        // IPv4 stays per address, also when it comes IPv4-mapped from a dual-stack socket.
        assert_eq!(key("192.0.2.7", 64), "192.0.2.7");
        assert_eq!(key("::ffff:192.0.2.7", 64), "192.0.2.7");
        assert_eq!(key("::ffff:192.0.2.7", 1), "192.0.2.7");
        assert_ne!(key("192.0.2.8", 64), key("192.0.2.7", 64));
        // The IPv4-compatible form (deprecated) is an IPv6 address like any other.
        assert_eq!(key("::192.0.2.7", 64), "::/64");
        assert_eq!(key("::1", 64), "::/64");
    }
}
