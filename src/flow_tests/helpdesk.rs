use std::time::Duration;

use secrecy::ExposeSecret;

use super::*;
use crate::domain::error::FlowError;
use crate::domain::helpdesk::{Action, CallerCheck, Helpdesk};
use crate::domain::settings::{HelpdeskSettings, Settings};

const GROUP: &str = "CN=Helpdesk,OU=Groups,DC=sspr,DC=test";
const PASSWORD: &str = "Old-Harbor-2718";

fn with_helpdesk() -> Settings {
    Settings {
        helpdesk: HelpdeskSettings {
            group_dn: Some(GROUP.to_owned()),
            require_verification: true,
            session_idle: Duration::from_secs(15 * 60),
            session_lifetime: Duration::from_secs(8 * 60 * 60),
            verification_lifetime: Duration::from_secs(10 * 60),
            temporary_password_length: 16,
            operator_max_sign_ins: 20,
            operator_max_actions: 1_000,
            operator_window: Duration::from_secs(60 * 60),
            verification_methods: vec![CallerCheck::Registered],
            membership_recheck: Duration::from_secs(60),
            ..HelpdeskSettings::default()
        },
        ..crate::domain::fakes::settings()
    }
}

#[tokio::test]
async fn an_operator_cannot_verify_a_caller_with_a_code_a_reset_already_spent() {
    let f = Fakes::with(with_helpdesk()).await;
    let op = f.directory.add_user("op", PASSWORD);
    f.directory.add_to_group(&op, GROUP);
    let ann = f.directory.add_user("ann", PASSWORD);
    let totp = f.register_totp(&ann).await;
    let helpdesk = Helpdesk::new(&f.deps);
    let client = f.client();
    let token = helpdesk
        .sign_in("op", &secret(PASSWORD), None, &client)
        .await
        .unwrap();

    let code = f.totp_code(&totp);
    verified_flow(&f, "ann", &totp).await;
    let replay = helpdesk
        .verify(&token, "ann", MethodKind::Totp, &code, &client)
        .await;
    assert!(
        matches!(replay, Err(FlowError::InvalidCode { .. })),
        "{replay:?}"
    );
    let unverified = helpdesk
        .act(
            &token,
            "ann",
            Action::Reset {
                deliver_by_email: false,
            },
            None,
            &client,
        )
        .await;
    assert!(
        matches!(unverified, Err(FlowError::NotVerified)),
        "{unverified:?}"
    );
    assert!(f.directory.writes().is_empty());

    f.clock.advance(Duration::from_secs(30));
    helpdesk
        .verify(
            &token,
            "ann",
            MethodKind::Totp,
            &f.totp_code(&totp),
            &client,
        )
        .await
        .unwrap();
    let temporary = helpdesk
        .act(
            &token,
            "ann",
            Action::Reset {
                deliver_by_email: false,
            },
            None,
            &client,
        )
        .await
        .unwrap()
        .expect("shown to the operator");
    assert!(f.directory.has_password(&ann, temporary.expose_secret()));
    let writes = f.directory.writes();
    assert_eq!(
        writes
            .iter()
            .map(|w| (w.user, w.unlock, w.must_change))
            .collect::<Vec<_>>(),
        [(ann.guid, true, true)],
        "a temporary password must be changed at next logon"
    );
    let done = f.audit().await.pop().unwrap();
    assert_eq!(
        (
            done.event.as_str(),
            done.outcome.as_str(),
            done.actor.as_deref()
        ),
        ("helpdesk_reset", "success", Some("op"))
    );
}

#[tokio::test]
async fn only_group_members_sign_in_and_a_removed_operator_loses_the_session() {
    let f = Fakes::with(with_helpdesk()).await;
    let op = f.directory.add_user("op", PASSWORD);
    f.directory.add_user("ann", PASSWORD);
    let helpdesk = Helpdesk::new(&f.deps);
    let client = f.client();
    let outsider = helpdesk
        .sign_in("op", &secret(PASSWORD), None, &client)
        .await;
    assert!(
        matches!(outsider, Err(FlowError::Forbidden(_))),
        "{outsider:?}"
    );
    let denied = f.audit().await.pop().unwrap();
    assert_eq!(denied.reason.as_deref(), Some("not_in_helpdesk_group"));

    f.directory.add_to_group(&op, GROUP);
    let token = helpdesk
        .sign_in("op", &secret(PASSWORD), None, &client)
        .await
        .unwrap();
    helpdesk.lookup(&token, "ann", &client).await.unwrap();

    // Within helpdesk.membership_recheck the session stands; after it, the group is asked again.
    f.directory.remove_from_group(&op, GROUP);
    helpdesk.lookup(&token, "ann", &client).await.unwrap();
    f.clock.advance(Duration::from_secs(61));
    let gone = helpdesk.lookup(&token, "ann", &client).await;
    assert!(matches!(gone, Err(FlowError::Unauthorized)), "{gone:?}");
    let ended = f.audit().await.pop().unwrap();
    assert_eq!(
        (ended.event.as_str(), ended.reason.as_deref()),
        ("helpdesk_session_ended", Some("not_in_helpdesk_group"))
    );
    f.directory.add_to_group(&op, GROUP);
    let still_gone = helpdesk.lookup(&token, "ann", &client).await;
    assert!(
        matches!(still_gone, Err(FlowError::Unauthorized)),
        "the session was deleted"
    );
}
