//! The service over two real DCs of one domain (`directory.balance = "by_user"`): an account's
//! flow and the sign-in after it stay on one DC, accounts spread over both, a stopped DC's
//! accounts move to the other and come back.
//!
//! Nothing replicates between the test DCs unless a test calls [`replicate`], so a password that
//! binds on one DC and not on the other shows exactly which DC took a write.

use axum::http::StatusCode;
use serde_json::json;

use crate::client::{TestApp, test_app};
use crate::dcs::{Dc, bind_at, exclusive, replicate, set_password_at, start_dc, stop_dc};
use crate::harness::{TestUser, create_user};
use crate::selfservice::{
    register_totp, set_password, settle_totp_step, sign_in, start_flow, verify,
};
use sspr_bridge::domain::totp;

/// An app over both DCs; a DC that failed is retried after `retry` (short, for the tests).
async fn app_over_both(retry: &str) -> TestApp {
    test_app(&format!(
        "[licence]\nazure_ad_premium = true\n\
         [directory]\nurls = [\"{}\", \"{}\"]\nretry_down_after = \"{retry}\"\n\
         [throttle]\nip_max_starts = 1000\nip_max_verifications = 1000\n",
        Dc::Dc1.url(),
        Dc::Dc2.url(),
    ))
    .await
}

/// A user that exists on both DCs, registered with an authenticator app; its TOTP secret.
async fn registered_user(app: &TestApp, prefix: &str) -> (TestUser, Vec<u8>) {
    let user = create_user(prefix).await;
    replicate(Dc::Dc1, Dc::Dc2).await;
    let token = sign_in(app, &user).await;
    let secret = register_totp(app, &token).await;
    (user, secret)
}

/// A whole self-service reset through the API.
async fn reset(app: &TestApp, user: &TestUser, secret: &[u8], new_password: &str) -> StatusCode {
    let flow = start_flow(app, &user.sam).await;
    let step = settle_totp_step().await;
    verify(app, &flow, "totp", &totp::code_at(secret, step))
        .await
        .expect(StatusCode::OK);
    set_password(app, &flow, new_password).await.status
}

/// Which DCs `password` binds on for `user`.
async fn binds_on(user: &TestUser, password: &str) -> Vec<Dc> {
    let mut on = Vec::new();
    for dc in [Dc::Dc1, Dc::Dc2] {
        if bind_at(&dc.url(), &user.dn, password).await.is_ok() {
            on.push(dc);
        }
    }
    on
}

/// Signs in to the registration pages' API, which binds as the user through the service.
async fn signs_in(app: &TestApp, user: &TestUser, password: &str) -> bool {
    let answer = app
        .post(
            "/api/v1/enrollment/session",
            json!({"username": user.sam, "password": password}),
            None,
        )
        .await;
    match answer.status {
        StatusCode::OK => true,
        StatusCode::UNAUTHORIZED => false,
        other => panic!("sign-in answered {other}: {}", answer.body),
    }
}

/// Resets accounts until one lands on `dc`; returns it with its new password.
async fn user_homed_on(app: &TestApp, dc: Dc, prefix: &str) -> (TestUser, String) {
    for n in 0..24 {
        let (user, secret) = registered_user(app, prefix).await;
        let new_password = format!("Homed-{n}-Pass-9!");
        assert_eq!(
            reset(app, &user, &secret, &new_password).await,
            StatusCode::NO_CONTENT
        );
        let on = binds_on(&user, &new_password).await;
        assert_eq!(on.len(), 1, "one reset was written to {on:?}");
        if on[0] == dc {
            return (user, new_password);
        }
    }
    panic!("24 accounts in a row were homed on the other DC");
}

/// A registered account on both DCs, homed on DC2, found without a write by the service: DC2
/// alone gets another password, and the service's sign-in tells whether it asked DC2.
async fn registered_user_homed_on_dc2(app: &TestApp, prefix: &str) -> (TestUser, Vec<u8>) {
    for _ in 0..24 {
        let (user, secret) = registered_user(app, prefix).await;
        let on_dc2_only = "Only-On-Dc2-Pass-3!";
        set_password_at(&Dc::Dc2.url(), &user.dn, on_dc2_only).await;
        if signs_in(app, &user, on_dc2_only).await {
            // Back to one password on both DCs.
            set_password_at(&Dc::Dc2.url(), &user.dn, &user.password).await;
            return (user, secret);
        }
    }
    panic!("24 accounts in a row were homed on DC1");
}

#[tokio::test]
async fn a_flow_and_the_sign_in_after_it_stay_on_the_dc_that_took_the_password() {
    let _dcs = exclusive().await;
    let app = app_over_both("30s").await;
    let mut took = Vec::new();
    for n in 0..8 {
        let (user, secret) = registered_user(&app, "affine").await;
        let new_password = format!("Affine-{n}-Pass-4!");
        assert_eq!(
            reset(&app, &user, &secret, &new_password).await,
            StatusCode::NO_CONTENT
        );
        // Written to exactly one DC; the other still has the old password (no replication yet).
        let on = binds_on(&user, &new_password).await;
        assert_eq!(on.len(), 1, "{} written to {on:?}", user.sam);
        let other = if on[0] == Dc::Dc1 { Dc::Dc2 } else { Dc::Dc1 };
        assert!(
            bind_at(&other.url(), &user.dn, &user.password)
                .await
                .is_ok()
        );
        // The sign-in right after goes to the DC that took the write, so the new password works
        // although the other DC would refuse it, and the old one no longer does.
        assert!(signs_in(&app, &user, &new_password).await, "{}", user.sam);
        assert!(!signs_in(&app, &user, &user.password).await, "{}", user.sam);
        took.push(on[0]);
    }
    // The accounts, and so the load, spread over both DCs (each is homed on one with chance ½).
    assert!(
        took.contains(&Dc::Dc1) && took.contains(&Dc::Dc2),
        "8 accounts all homed on one DC: {took:?}"
    );
}

#[tokio::test]
async fn a_stopped_dcs_accounts_move_to_the_other_and_come_back_when_it_returns() {
    let _dcs = exclusive().await;
    let app = app_over_both("1s").await;
    // Homed on DC2; DC2 has its new password, DC1 still the old one.
    let (user, on_dc2) = user_homed_on(&app, Dc::Dc2, "mover").await;
    let (other, other_secret) = registered_user_homed_on_dc2(&app, "stayer").await;
    assert!(signs_in(&app, &user, &on_dc2).await);

    stop_dc(Dc::Dc2).await;
    // Failover: the account's work goes to DC1, which knows only the old password.
    assert!(signs_in(&app, &user, &user.password).await);
    assert!(!signs_in(&app, &user, &on_dc2).await);
    // Resets keep working while DC2 is down: the password lands whole on DC1.
    let during = "Written-While-Down-7!";
    assert_eq!(
        reset(&app, &other, &other_secret, during).await,
        StatusCode::NO_CONTENT
    );
    assert!(bind_at(&Dc::Dc1.url(), &other.dn, during).await.is_ok());

    start_dc(Dc::Dc2).await;
    // Nothing half-written on DC2: it still has the password it had before it stopped.
    assert!(
        bind_at(&Dc::Dc2.url(), &other.dn, &other.password)
            .await
            .is_ok()
    );
    assert!(bind_at(&Dc::Dc2.url(), &other.dn, during).await.is_err());
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    // Back home: DC2's password works again, DC1's old one does not.
    assert!(signs_in(&app, &user, &on_dc2).await);
    assert!(!signs_in(&app, &user, &user.password).await);
    // The account written during the outage stays with the DC that took that write
    // (directory.write_affinity), which DC2 has not received yet.
    assert!(signs_in(&app, &other, during).await);
}
