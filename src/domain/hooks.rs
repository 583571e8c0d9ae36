//! Hooks after an action (`hooks.after_*`): an event about what was done to an account, handed to
//! whatever the administrator configured (a signed webhook, a command). The flows call
//! [`Hooks::after`] once the directory took the change; delivery happens in the background and
//! never fails or slows the request.

use std::sync::Arc;

use secrecy::SecretString;
use serde::Serialize;

use super::ObjectGuid;
use super::clock::Timestamp;
use super::directory::DirectoryUser;

/// What was done. Each has its own hook, `hooks.<name>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HookAction {
    /// A password reset: self-service, or a helpdesk temporary password.
    Reset,
    Unlock,
    /// A recovery method added, removed or cleared.
    RegistrationChange,
    /// A password change by a user who knew the current one.
    Change,
}

impl HookAction {
    pub const ALL: [HookAction; 4] = [
        Self::Reset,
        Self::Unlock,
        Self::RegistrationChange,
        Self::Change,
    ];

    /// The configuration key of its hook, and what the outbox records.
    pub fn hook_name(self) -> &'static str {
        match self {
            Self::Reset => "after_reset",
            Self::Unlock => "after_unlock",
            Self::RegistrationChange => "after_registration_change",
            Self::Change => "after_change",
        }
    }

    pub fn from_hook_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.hook_name() == name)
    }
}

/// Who did it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// The account's owner, through self-service.
    #[serde(rename = "self")]
    Owner,
    /// A helpdesk operator, by sAMAccountName.
    Helpdesk { operator: String },
}

/// The account acted on, as far as it is known (the DN and UPN may be missing when the directory
/// could not be read after the action).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HookAccount {
    pub sam_account_name: String,
    pub user_principal_name: Option<String>,
    pub distinguished_name: Option<String>,
    pub object_guid: String,
}

impl HookAccount {
    pub fn of(user: &DirectoryUser) -> Self {
        Self {
            sam_account_name: user.sam_account_name.clone(),
            user_principal_name: user.user_principal_name.clone(),
            distinguished_name: Some(user.dn.clone()),
            object_guid: user.guid.to_string(),
        }
    }

    /// Only what the service's own records hold.
    pub fn known(guid: ObjectGuid, sam_account_name: &str) -> Self {
        Self {
            sam_account_name: sam_account_name.to_owned(),
            user_principal_name: None,
            distinguished_name: None,
            object_guid: guid.to_string(),
        }
    }
}

/// The event a hook receives: the webhook's JSON body, a command's standard input. It has no
/// password field: a command allowed to see the password gets it added on its way in (see
/// [`HookDelivery`]), so nothing that stores or logs events can hold one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HookEvent {
    /// Random, so a receiver can tell a retry from a second action.
    pub id: String,
    pub action: HookAction,
    pub account: HookAccount,
    pub actor: Actor,
    /// RFC 3339, UTC.
    pub time: String,
    /// The reset or unlock flow (a hash of its id, which is a secret), when there was one.
    pub flow_id: Option<String>,
}

/// Where events go: the adapter that calls webhooks and runs commands. `deliver` returns at once;
/// the work, and its failures, are the adapter's.
pub trait HookDelivery: Send + Sync {
    /// Whether any hook is configured for `action` (so no event is built for nothing).
    fn wants(&self, action: HookAction) -> bool;
    /// `password` is the new password, for a command hook with `hooks.include_password`; it is
    /// kept in memory only and never retried after a restart.
    fn deliver(&self, event: HookEvent, password: Option<SecretString>);
}

/// The flows' side of the hooks. Without a configured adapter (`Default`) it does nothing.
#[derive(Clone, Default)]
pub struct Hooks {
    delivery: Option<Arc<dyn HookDelivery>>,
}

impl Hooks {
    pub fn new(delivery: Arc<dyn HookDelivery>) -> Self {
        Self {
            delivery: Some(delivery),
        }
    }

    /// Announces that `action` was done to `account` by `actor` at `at`.
    pub fn after(
        &self,
        action: HookAction,
        account: HookAccount,
        actor: Actor,
        at: Timestamp,
        flow_id: Option<&[u8]>,
        password: Option<&SecretString>,
    ) {
        let Some(delivery) = self.delivery.as_ref().filter(|d| d.wants(action)) else {
            return;
        };
        let event = HookEvent {
            id: uuid::Uuid::new_v4().to_string(),
            action,
            account,
            actor,
            time: humantime::format_rfc3339_millis(at.to_system_time()).to_string(),
            flow_id: flow_id.map(|hash| hash.iter().take(16).map(|b| format!("{b:02x}")).collect()),
        };
        delivery.deliver(event, password.cloned());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use secrecy::ExposeSecret;

    use super::*;

    #[derive(Default)]
    struct Recorded {
        only: Option<HookAction>,
        events: Mutex<Vec<(HookEvent, Option<String>)>>,
    }

    impl HookDelivery for Recorded {
        fn wants(&self, action: HookAction) -> bool {
            self.only.is_none_or(|a| a == action)
        }

        fn deliver(&self, event: HookEvent, password: Option<SecretString>) {
            let password = password.map(|p| p.expose_secret().to_owned());
            self.events.lock().unwrap().push((event, password));
        }
    }

    fn account() -> HookAccount {
        HookAccount::known(ObjectGuid(uuid::Uuid::nil()), "jdoe")
    }

    #[test]
    fn an_event_names_the_action_account_actor_and_time_and_never_a_password() {
        let recorded = Arc::new(Recorded::default());
        let hooks = Hooks::new(recorded.clone());
        let password = SecretString::from("Not-In-The-Event-1".to_owned());
        hooks.after(
            HookAction::Reset,
            account(),
            Actor::Owner,
            Timestamp::from_millis(1_793_491_200_123),
            Some(&[0xab; 32]),
            Some(&password),
        );
        let events = recorded.events.lock().unwrap();
        let (event, given) = &events[0];
        let json = serde_json::to_value(event).unwrap();
        assert_eq!(json["action"], "reset");
        assert_eq!(json["account"]["sam_account_name"], "jdoe");
        assert_eq!(json["actor"], serde_json::json!({"kind": "self"}));
        assert_eq!(json["time"], "2026-11-01T00:00:00.123Z");
        assert_eq!(json["flow_id"], "ab".repeat(16));
        assert!(!json.to_string().contains("Not-In-The-Event-1"));
        assert_eq!(given.as_deref(), Some("Not-In-The-Event-1"));

        let helpdesk = serde_json::to_value(Actor::Helpdesk {
            operator: "op1".to_owned(),
        })
        .unwrap();
        assert_eq!(
            helpdesk,
            serde_json::json!({"kind": "helpdesk", "operator": "op1"})
        );
    }

    #[test]
    fn no_event_for_an_action_without_a_hook() {
        let recorded = Arc::new(Recorded {
            only: Some(HookAction::Unlock),
            ..Recorded::default()
        });
        let hooks = Hooks::new(recorded.clone());
        let at = Timestamp::from_millis(0);
        hooks.after(HookAction::Reset, account(), Actor::Owner, at, None, None);
        hooks.after(HookAction::Unlock, account(), Actor::Owner, at, None, None);
        let events = recorded.events.lock().unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].0.action, HookAction::Unlock);
        // Hooks without an adapter do nothing at all.
        Hooks::default().after(HookAction::Reset, account(), Actor::Owner, at, None, None);
    }

    #[test]
    fn hook_names_round_trip() {
        for action in HookAction::ALL {
            assert_eq!(HookAction::from_hook_name(action.hook_name()), Some(action));
        }
        assert_eq!(HookAction::from_hook_name("after_nothing"), None);
    }
}
