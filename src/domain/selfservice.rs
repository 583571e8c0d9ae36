//! What the self-service flows share: their dependencies, settings, errors and the audit and
//! throttle helpers.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::ObjectGuid;
use super::clock::Clock;
use super::directory::{Directory, DirectoryError, DirectoryUser};
use super::notify::{About, Mail, MailKind, Mailer, Outbox, Purpose, Queued};
use super::policy::{PasswordRules, Violation};
use super::scope::{Eligibility, Exclusion, StandIn};
use super::secrets::{Keys, new_token};
use super::signin::SignInSettings;
use super::store::{
    AuditEvent, AuditLog, CodeStore, EnrolledMethod, FlowStore, MethodKind, PendingCode,
    RegistrationStore, Session, SessionKind, SessionStore, StoreError, ThrottleStore,
};

/// Settings of the flows, taken from the configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    pub session_lifetime: Duration,
    pub totp_issuer: String,
    pub methods_required: usize,
    pub unlock_on_reset: bool,
    pub flow_lifetime: Duration,
    pub code_lifetime: Duration,
    pub flow_max_failures: i64,
    pub user_max_failures: i64,
    pub user_window: Duration,
    pub user_block: Duration,
    pub ip_max_starts: i64,
    pub ip_max_verifications: i64,
    pub ip_window: Duration,
    pub email_max_sends: i64,
    pub email_window: Duration,
    pub helpdesk: HelpdeskSettings,
    /// What a new password is checked against besides the directory's policy.
    pub password_rules: PasswordRules,
    /// A method confirmed longer ago than this no longer counts for a reset
    /// (`registration.reconfirm_days`); `None`: confirmations never go stale.
    pub reconfirm_after: Option<Duration>,
    /// Who may use self-service.
    pub eligibility: Eligibility,
    /// Who is told of each self-service reset of a (allow-listed) protected account.
    pub admin_addresses: Vec<String>,
    /// How long a one-time registration code stays valid (`registration.code_lifetime`).
    pub registration_code_lifetime: Duration,
    /// Where a first method needs only the AD password (`registration.allowed_networks`);
    /// empty: anywhere.
    pub registration_networks: Vec<super::network::Cidr>,
    /// `licence.azure_ad_premium`: without it, only helpdesk operators may register (their own
    /// authenticator app).
    pub self_service_licensed: bool,
    /// How long a notification is retried before it is given up.
    pub notice_lifetime: Duration,
    /// Sign-ins with the AD password (`throttle.signin_*`).
    pub signin: SignInSettings,
    /// Per-address throttles count an IPv6 client by this prefix (`throttle.ipv6_prefix`):
    /// one subscriber or host usually holds a whole /64.
    pub ipv6_prefix: u8,
}

#[derive(Clone, Debug, Default)]
pub struct HelpdeskSettings {
    /// `None`: the helpdesk is off.
    pub group_dn: Option<String>,
    pub require_verification: bool,
    pub allow_protected: Vec<String>,
    pub session_idle: Duration,
    pub session_lifetime: Duration,
    pub verification_lifetime: Duration,
    pub temporary_password_length: usize,
    /// Operators sign in with their own registered authenticator app besides their password.
    pub operator_second_factor: bool,
    /// Sign-in attempts per typed operator login, and requests per operator account, within
    /// `operator_window`: operators' own limits, apart from the users' per-address ones.
    pub operator_max_sign_ins: i64,
    pub operator_max_actions: i64,
    pub operator_window: Duration,
    /// How operators may verify callers (`helpdesk.verification_methods`).
    pub verification_methods: Vec<super::helpdesk::CallerCheck>,
    /// How often a live operator session checks again that its operator is still in the group.
    pub membership_recheck: Duration,
    /// A caller's `manager` set (or first seen) less than this ago cannot approve.
    pub manager_min_age: Duration,
}

/// Everything the flows talk to, as traits.
#[derive(Clone)]
pub struct Deps {
    pub directory: Arc<dyn Directory>,
    pub registrations: Arc<dyn RegistrationStore>,
    pub sessions: Arc<dyn SessionStore>,
    pub flows: Arc<dyn FlowStore>,
    pub codes: Arc<dyn CodeStore>,
    pub throttle: Arc<dyn ThrottleStore>,
    pub audit: Arc<dyn AuditLog>,
    pub approvals: Arc<dyn super::helpdesk::ApprovalStore>,
    /// `None` when no SMTP server is configured: email methods are then unavailable. Only for
    /// what must not be stored (the helpdesk's temporary password) and the batch commands.
    pub mailer: Option<Arc<dyn Mailer>>,
    /// Where codes and notifications go (when `mailer` is set): sent in the background.
    pub outbox: Arc<dyn Outbox>,
    pub clock: Arc<dyn Clock>,
    pub keys: Arc<Keys>,
    pub settings: Settings,
    /// What a reset start for an unknown login judges in its place.
    pub stand_in: Arc<StandIn>,
}

/// Who is asking: for throttles, the audit and the language of mails.
#[derive(Clone, Debug)]
pub struct Client {
    pub ip: Option<IpAddr>,
    /// `en` or `nl`.
    pub locale: String,
}

#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// Wrong password, unknown user and disabled user alike.
    #[error("the username or password is wrong")]
    InvalidCredentials,
    /// No session, or it expired.
    #[error("the session has expired; sign in again")]
    Unauthorized,
    #[error("the code is wrong or has expired")]
    InvalidCode { remaining_attempts: i64 },
    /// Unknown, expired, used up or ended by too many wrong codes.
    #[error("this reset has expired or ended; please start again")]
    FlowNotFound,
    #[error("verify your identity first")]
    NotVerified,
    /// Not allowed, whatever the reason (a helpdesk sign-in by a non-member, a protected target).
    #[error("{0}")]
    Forbidden(String),
    /// The password was right, but self-service is not for this account.
    #[error("{0}")]
    NotInScope(Exclusion),
    #[error("no such user")]
    NotFound,
    #[error("too many attempts; try again later")]
    Throttled { retry_after: Duration },
    #[error("{0}")]
    InvalidInput(String),
    /// The new password breaks these rules (checked before anything is sent to AD, or, for
    /// history and minimum age, refused by AD). Never empty.
    #[error("the new password breaks the password policy: {}", rule_ids(.0))]
    PasswordRejected(Vec<Violation>),
    /// An email method was asked for but no mail server is configured.
    #[error("email is not available right now")]
    MailUnavailable,
    /// The password was right but AD requires a new one first (773 must change, 532 expired):
    /// a temporary password set by the helpdesk must not become a way to register methods.
    #[error(
        "your password must be changed before you can register methods; change it first (for \
         example at your next Windows sign-in), then come back with the new one"
    )]
    PasswordChangeRequired,
    /// The user has a confirmed method (or, from outside `registration.allowed_networks`, none
    /// yet): this session must prove one, or redeem a registration code, before changing any.
    #[error("confirm it is you with a method you already registered first")]
    StepUpRequired,
    /// Self-service is off (`licence.azure_ad_premium`), and this is not a helpdesk operator
    /// registering their own authenticator.
    #[error(transparent)]
    LicenceRequired(#[from] super::licence::LicenceRequired),
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Too many failed sign-ins for this login (`throttle.signin_max_failures`), whether or not
    /// it names an account.
    #[error("too many failed sign-ins for this name; try again later, or reset or unlock")]
    SignInThrottled { retry_after: Duration },
    /// A helpdesk operator whose password was right has no authenticator app registered, which
    /// `helpdesk.operator_second_factor` requires.
    #[error(
        "operators sign in with a code from their own authenticator app: register one at /register first"
    )]
    SecondFactorRequired,
    /// The helpdesk cannot ask the caller's manager to approve, for this reason.
    #[error("{}", .0.message())]
    ManagerRefused(super::helpdesk::ManagerRefusal),
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

fn rule_ids(broken: &[Violation]) -> String {
    broken
        .iter()
        .map(Violation::rule)
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// One audit row. Built with what is known; never a password, code or secret.
pub struct Audit<'a> {
    pub event: &'a str,
    pub outcome: &'a str,
    pub user: Option<ObjectGuid>,
    pub sam_account_name: Option<&'a str>,
    pub method: Option<MethodKind>,
    pub reason: Option<&'a str>,
}

impl Deps {
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Writes an audit row. An audit failure fails the request: acting without a record is
    /// worse than not acting.
    pub async fn audit(&self, client: &Client, a: Audit<'_>) -> Result<(), StoreError> {
        self.audit_as(client, None, a).await
    }

    /// An audit row for something `actor` (a helpdesk operator) did, when it was not the user.
    /// A row the database does not take (it is down or read-only) is written to the log instead,
    /// at error level, so the event is on record somewhere.
    pub async fn audit_as(
        &self,
        client: &Client,
        actor: Option<&str>,
        a: Audit<'_>,
    ) -> Result<(), StoreError> {
        self.write_audit(client, actor, a, None).await
    }

    /// An audit row about a login someone typed that matched no account: it names no account,
    /// and the typed text is kept only as its keyed hash, `login_hash` (people type passwords
    /// into username boxes). `a.sam_account_name` is not used. Callers hash every login they
    /// are given, known or not, so one without an account takes no longer (~9 µs a hash in a
    /// debug build).
    pub async fn audit_typed_login(
        &self,
        client: &Client,
        actor: Option<&str>,
        login_hash: String,
        a: Audit<'_>,
    ) -> Result<(), StoreError> {
        let a = Audit {
            sam_account_name: None,
            ..a
        };
        self.write_audit(client, actor, a, Some(login_hash)).await
    }

    async fn write_audit(
        &self,
        client: &Client,
        actor: Option<&str>,
        a: Audit<'_>,
        login_hash: Option<String>,
    ) -> Result<(), StoreError> {
        let event = AuditEvent {
            at_ms: self.now_ms(),
            event: a.event.to_owned(),
            outcome: a.outcome.to_owned(),
            object_guid: a.user,
            sam_account_name: a.sam_account_name.map(str::to_owned),
            actor: actor.map(str::to_owned),
            client_ip: client.ip.map(|ip| ip.to_string()),
            method: a.method.map(|m| m.as_str().to_owned()),
            reason: a.reason.map(str::to_owned),
            login_hash,
        };
        let written = self.audit.record(&event).await;
        if let Err(e) = &written {
            tracing::error!(
                audit.at_ms = event.at_ms,
                audit.event = %event.event,
                audit.outcome = %event.outcome,
                audit.object_guid = event.object_guid.map(|g| g.to_string()),
                audit.sam_account_name = event.sam_account_name,
                audit.login_hash = event.login_hash,
                audit.actor = event.actor,
                audit.client_ip = event.client_ip,
                audit.method = event.method,
                audit.reason = event.reason,
                error = %e,
                "audit row not written; the event is recorded in this log line instead"
            );
        }
        written
    }

    /// Audits what AD has already done. A failure to write the row cannot undo it, so it is not
    /// passed on (the event goes to the log, see [`Self::audit_as`]): the user is told the truth,
    /// that the change was made.
    pub async fn audit_done(&self, client: &Client, actor: Option<&str>, a: Audit<'_>) {
        // Logged by audit_as; nothing else to do.
        let _ = self.audit_as(client, actor, a).await;
    }

    /// The audit row of a throttle hit.
    pub async fn audit_throttled(
        &self,
        client: &Client,
        user: Option<(ObjectGuid, &str)>,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.audit(
            client,
            Audit {
                event: "throttled",
                outcome: "denied",
                user: user.map(|(guid, _)| guid),
                sam_account_name: user.map(|(_, sam)| sam),
                method: None,
                reason: Some(reason),
            },
        )
        .await
    }

    /// Counts one event against a per-IP limit; refuses once the limit is passed.
    pub async fn ip_limit(&self, client: &Client, what: &str, max: i64) -> Result<(), FlowError> {
        let Some(ip) = client.ip else { return Ok(()) };
        let now = self.now_ms();
        let window = self.settings.ip_window;
        let count = self
            .throttle
            .hit(
                &format!(
                    "ip:{what}:{}",
                    throttle_address(ip, self.settings.ipv6_prefix)
                ),
                now,
                now - ms(window),
            )
            .await?;
        if count > max {
            self.audit_throttled(client, None, &format!("ip_{what}"))
                .await?;
            return Err(FlowError::Throttled {
                retry_after: window,
            });
        }
        Ok(())
    }

    /// Whether `key` (a user, or the login of a decoy) is blocked now. A block is met silently
    /// (a start answers as always, a verification as a wrong code), so that a blocked account
    /// answers like a name that has none, under every spelling.
    pub async fn is_blocked(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self
            .throttle
            .blocked_until(key, self.now_ms())
            .await?
            .is_some())
    }

    /// Counts a failed verification for a user; blocks the user once past the limit. True when
    /// this failure started the block.
    pub async fn user_failure(&self, key: &str, client: &Client) -> Result<bool, StoreError> {
        let now = self.now_ms();
        let count = self
            .throttle
            .hit(
                &format!("{key}:fail"),
                now,
                now - ms(self.settings.user_window),
            )
            .await?;
        if count >= self.settings.user_max_failures {
            self.throttle
                .block(key, now + ms(self.settings.user_block))
                .await?;
            self.audit_throttled(client, None, &format!("user_blocked {key}"))
                .await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Queues a notification about `user` (its objectGUID and sAMAccountName) if a mail server
    /// is configured. A failure is not fatal (the change itself already happened and was
    /// audited) but is logged and audited as a failed `notification`, so an owner who was never
    /// told of a change to their account shows up in the audit; the outbox's sender does the
    /// same for a notice it could not deliver within `mail::NOTICE_LIFETIME`.
    pub async fn notify(
        &self,
        client: &Client,
        user: (ObjectGuid, &str),
        to: Option<&str>,
        display_name: Option<&str>,
        locale: &str,
        kind: MailKind,
    ) {
        let (Some(_), Some(to)) = (&self.mailer, to) else {
            return;
        };
        let label = kind.label();
        let queued = Queued {
            mail: Mail {
                to: to.to_owned(),
                display_name: display_name.map(str::to_owned),
                locale: locale.to_owned(),
                kind,
            },
            purpose: Purpose::Notice,
            about: About::new(Some(user.0), user.1, None, client.ip),
            decoy: false,
        };
        let send_by = self.now_ms() + ms(self.settings.notice_lifetime);
        if let Err(e) = self.outbox.enqueue(&queued, send_by).await {
            tracing::warn!(error = %e, kind = label, "notification not queued");
            let failed = Audit {
                event: "notification",
                outcome: "failure",
                user: Some(user.0),
                sam_account_name: Some(user.1),
                method: None,
                reason: Some(label),
            };
            self.audit_done(client, None, failed).await;
        }
    }

    /// Tells the owner of `user` about a change to their account: at their confirmed address and
    /// at AD's `mail` (so a user who registered only an authenticator app hears of it too), and at
    /// `also` (an address that was just replaced or removed, so its owner learns of it). Each
    /// address once, whatever its case. A failure to read the confirmed address still lets the
    /// others be told.
    pub async fn notify_owner(
        &self,
        client: &Client,
        user: &DirectoryUser,
        also: Option<&str>,
        locale: &str,
        kind: MailKind,
    ) {
        let confirmed = self.confirmed_email(&user.guid).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the confirmed address cannot be read; told elsewhere");
            None
        });
        let candidates = [confirmed.as_deref(), user.mail.as_deref(), also];
        for to in owner_addresses(&candidates) {
            self.notify(
                client,
                (user.guid, &user.sam_account_name),
                Some(to),
                user.display_name.as_deref(),
                locale,
                kind.clone(),
            )
            .await;
        }
    }

    /// Queues the mail of `code` to `to`, or, with no address (an unknown login, or a user
    /// without a confirmed address), an equal row that is never sent, so both cost the same.
    /// The mail is dropped unsent once the code expired. `who` is the user's objectGUID (of a
    /// real user) and name, for the audit row of a mail that never left.
    pub async fn queue_code(
        &self,
        code: &PendingCode,
        to: Option<String>,
        mail: Mail,
        who: (Option<ObjectGuid>, &str),
        client: &Client,
        actor: Option<&str>,
    ) -> Result<(), StoreError> {
        let decoy = to.is_none();
        let queued = Queued {
            mail: Mail {
                // As long as a typical address, so the sealed row is the same size.
                to: to.unwrap_or_else(|| "no-one.at.all@example.invalid".to_owned()),
                ..mail
            },
            purpose: Purpose::Code,
            about: About::new(who.0, who.1, actor, client.ip),
            decoy,
        };
        self.outbox.enqueue(&queued, code.expires_at_ms).await
    }

    /// After a code's mail failed to be sent directly (the outbox has its own audit, see
    /// [`Self::queue_code`]): withdraws the code, so none is left that nobody received (it
    /// replaced the previous one, as every resend does, and the user is told to ask again), and
    /// audits the failed `code_sent` for `who` (objectGUID, if a real user, and name).
    pub async fn code_not_sent(
        &self,
        code: &PendingCode,
        who: (Option<ObjectGuid>, &str),
        client: &Client,
        actor: Option<&str>,
    ) {
        let withdrawn = self
            .codes
            .take_code(code.purpose, &code.subject, &code.code_hash)
            .await;
        if let Err(e) = withdrawn {
            tracing::warn!(error = %e, "an unsent code could not be withdrawn");
        }
        let failed = Audit {
            event: "code_sent",
            outcome: "failure",
            user: who.0,
            sam_account_name: Some(who.1),
            method: Some(MethodKind::Email),
            reason: Some("mail_unavailable"),
        };
        self.audit_done(client, actor, failed).await;
    }

    /// The user's methods that count for a reset now: confirmed, and not due for
    /// re-confirmation.
    pub async fn current_methods(
        &self,
        user: &ObjectGuid,
    ) -> Result<Vec<EnrolledMethod>, StoreError> {
        let now = self.now_ms();
        let mut methods = self.registrations.methods(user).await?;
        methods.retain(|m| m.is_current(now, self.settings.reconfirm_after));
        Ok(methods)
    }

    /// Opens a session of `kind` for `user`, ending after `lifetime`; returns the bearer token
    /// (only its hash is stored).
    pub async fn open_session(
        &self,
        kind: SessionKind,
        user: &DirectoryUser,
        lifetime: Duration,
    ) -> Result<String, StoreError> {
        let now = self.now_ms();
        let (token, hash) = new_token();
        self.sessions
            .create_session(&Session {
                token_hash: hash,
                kind,
                user: user.guid,
                sam_account_name: user.sam_account_name.clone(),
                created_at_ms: now,
                expires_at_ms: now + ms(lifetime),
                last_seen_at_ms: now,
                pending_totp: None,
                failures: 0,
                stepped_up_at_ms: None,
            })
            .await?;
        Ok(token)
    }

    /// The user's confirmed email address, if any.
    pub async fn confirmed_email(&self, user: &ObjectGuid) -> Result<Option<String>, StoreError> {
        Ok(self
            .registrations
            .methods(user)
            .await?
            .into_iter()
            .find(|m| m.kind == MethodKind::Email && m.confirmed_at_ms.is_some())
            .and_then(|m| m.address))
    }
}

/// The distinct non-empty addresses among `candidates`, in order, compared without case.
fn owner_addresses<'a>(candidates: &[Option<&'a str>]) -> Vec<&'a str> {
    let mut seen: Vec<&str> = Vec::new();
    for address in candidates.iter().flatten().map(|a| a.trim()) {
        if !address.is_empty() && !seen.iter().any(|s| s.eq_ignore_ascii_case(address)) {
            seen.push(address);
        }
    }
    seen
}

/// `a***@example.com`: enough for the user to recognise, too little to harvest.
pub fn mask_email(address: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn the_owner_is_told_once_at_each_address() {
        let candidates = [
            Some("alice@example.com"),
            Some("Alice@Example.com"),
            None,
            Some(" "),
            Some("old@example.com"),
        ];
        assert_eq!(
            owner_addresses(&candidates),
            ["alice@example.com", "old@example.com"]
        );
    }

    #[test]
    fn masked_addresses_keep_the_first_letter_and_the_domain() {
        assert_eq!(mask_email("alice@example.com"), "a***@example.com");
        assert_eq!(mask_email("ä@x.nl"), "ä***@x.nl");
        assert_eq!(mask_email("nonsense"), "***");
    }
}
