//! Limits on how often an address, a user or a login may try: per-address counts, and the block
//! a user earns by wrong codes.

use std::net::IpAddr;

use super::deps::{Client, Deps};
use super::error::FlowError;
use super::store::{Person, StoreError, ThrottleKey};

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

impl Deps {
    /// Counts one event against a per-IP limit; refuses once the limit is passed.
    pub async fn ip_limit(
        &self,
        client: &Client,
        what: PerAddress,
        max: i64,
    ) -> Result<(), FlowError> {
        let Some(ip) = client.ip else { return Ok(()) };
        let now = self.now();
        let window = self.settings.ip_window;
        let count = self
            .throttle
            .hit(
                &what
                    .key(throttle_address(ip, self.settings.ipv6_prefix))
                    .to_string(),
                now,
                now - window,
            )
            .await?;
        if count > max {
            self.audit_throttled(client, None, what.limit(), None)
                .await?;
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
        Ok(self
            .throttle
            .blocked_until(
                &ThrottleKey::Blocked(person.clone()).to_string(),
                self.now(),
            )
            .await?
            .is_some())
    }

    /// Counts a failed verification for a user; blocks the user once past the limit. True when
    /// this failure started the block.
    pub async fn user_failure(&self, person: &Person, client: &Client) -> Result<bool, StoreError> {
        let now = self.now();
        let key = ThrottleKey::Blocked(person.clone()).to_string();
        let count = self
            .throttle
            .hit(
                &ThrottleKey::WrongCodes(person.clone()).to_string(),
                now,
                now - self.settings.user_window,
            )
            .await?;
        if count >= self.settings.user_max_failures {
            self.throttle
                .block(&key, now + self.settings.user_block)
                .await?;
            self.audit_throttled(client, None, Limit::UserBlocked, Some(&key))
                .await?;
            return Ok(true);
        }
        Ok(false)
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
