//! What employees type as their name: `DOMAIN\user` and `domain.tld\user` name the same account
//! as `user` wherever a login is typed, against the real DC; and a failed sign-in offers the way
//! to unlock an account, alike for every failure.

use axum::http::StatusCode;
use serde_json::json;
use sspr_bridge::domain::totp;

use crate::harness::{bind, create_user};
use crate::helpdesk::{caller_with_totp, desk};
use crate::pages::{Browser, alert};
use crate::selfservice::{set_password, settle_totp_step, start_flow, verify};

#[tokio::test]
async fn domain_backslash_user_names_the_account_in_every_form() {
    let desk = desk("").await;
    let app = &desk.app;

    // Registration sign-in.
    let (caller, secret) = caller_with_totp(&desk).await;
    for typed in [
        format!("SSPR\\{}", caller.sam),
        format!("sspr.test\\{}", caller.sam.to_uppercase()),
    ] {
        let answer = app
            .post(
                "/api/v1/enrollment/session",
                json!({"username": typed, "password": caller.password}),
                None,
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{typed}: {}", answer.body);
    }

    // Reset: the flow is the account's own (its authenticator verifies it) and the new
    // password binds.
    let flow = start_flow(app, &format!("SSPR\\{}", caller.sam)).await;
    let now = settle_totp_step().await;
    verify(app, &flow, "totp", &totp::code_at(&secret, now))
        .await
        .expect(StatusCode::OK);
    let new_password = "Quartz-Harbor-91x".to_owned();
    set_password(app, &flow, &new_password)
        .await
        .expect(StatusCode::NO_CONTENT);
    bind(&caller.dn, &new_password).await.expect("new password");

    // Unlock of a real lockout.
    let (locked, locked_secret) = caller_with_totp(&desk).await;
    for _ in 0..6 {
        let _ = bind(&locked.dn, "wrong-password").await;
    }
    let (rc, text) = bind(&locked.dn, &locked.password)
        .await
        .expect_err("locked");
    assert!(rc == 49 && text.contains("775"), "{rc} {text}");
    let flow = start_flow(app, &format!("sspr.test\\{}", locked.sam)).await;
    let now = settle_totp_step().await;
    verify(app, &flow, "totp", &totp::code_at(&locked_secret, now))
        .await
        .expect(StatusCode::OK);
    app.post(&format!("/api/v1/reset/{flow}/unlock"), json!({}), None)
        .await
        .expect(StatusCode::NO_CONTENT);
    bind(&locked.dn, &locked.password)
        .await
        .expect("unlocked, same password");

    // The helpdesk: an operator signs in and looks the caller up by the down-level names.
    let code = desk.authenticator.code().await;
    let answer = app
        .post(
            "/api/v1/helpdesk/session",
            json!({
                "username": format!("SSPR\\{}", desk.operator.sam),
                "password": desk.operator.password,
                "code": code,
            }),
            None,
        )
        .await
        .expect(StatusCode::OK);
    let token = answer.json()["token"].as_str().unwrap().to_owned();
    for typed in [
        format!("SSPR%5C{}", caller.sam),
        format!("sspr.test%5C{}", caller.sam),
    ] {
        let card = app
            .get(&format!("/api/v1/helpdesk/users/{typed}"), Some(&token))
            .await
            .expect(StatusCode::OK)
            .json();
        assert_eq!(card["sam_account_name"], caller.sam.as_str(), "{typed}");
    }

    // Another domain's name is not this account.
    let other = app
        .post(
            "/api/v1/enrollment/session",
            json!({"username": format!("OTHER\\{}", caller.sam), "password": new_password}),
            None,
        )
        .await;
    assert_eq!(other.status, StatusCode::UNAUTHORIZED, "{}", other.body);
}

#[tokio::test]
async fn a_failed_sign_in_offers_the_unlock_page_alike_for_every_failure() {
    let app = crate::client::test_app(&format!(
        "[licence]\nazure_ad_premium = true\n{}",
        crate::mail::smtp_section()
    ))
    .await;
    let user = create_user("unlk").await;
    let mut shown = Vec::new();
    for (login, password) in [
        (user.sam.as_str(), "not-the-password"),
        ("nobody-has-this-name-x", "whatever-1"),
    ] {
        for lang in ["en", "nl"] {
            let mut browser = Browser::new(&app);
            let form = browser.get(&format!("/register?lang={lang}")).await;
            let refused = browser
                .submit(
                    &form,
                    "/register",
                    &[("username", login), ("password", password)],
                )
                .await;
            assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
            assert!(!alert(&refused).is_empty());
            let link = format!("href=\"/unlock?lang={lang}\"");
            assert!(refused.body.contains(&link), "{}", refused.body);
            let text = if lang == "en" {
                "If your account is locked, unlock it here"
            } else {
                "Is uw account geblokkeerd? Deblokkeer het hier"
            };
            assert!(refused.body.contains(text), "{}", refused.body);
            shown.push(alert(&refused));
        }
    }
    // The same words for a wrong password and an unknown name.
    assert_eq!(shown[0], shown[2]);
    assert_eq!(shown[1], shown[3]);
}

#[tokio::test]
async fn the_verify_page_says_what_a_code_that_never_arrives_means() {
    let app = crate::client::test_app(&format!(
        "[licence]\nazure_ad_premium = true\n{}",
        crate::mail::smtp_section()
    ))
    .await;
    // A name nobody has gets the same page as an account: the hint must serve both.
    for (lang, text) in [
        ("en", "Look in your spam or junk folder"),
        ("nl", "Kijk in uw map met ongewenste e-mail"),
    ] {
        let mut browser = Browser::new(&app);
        let form = browser.get(&format!("/reset?lang={lang}")).await;
        let verify = browser
            .submit(&form, "/reset", &[("username", "nobody-has-this-name-y")])
            .await;
        assert_eq!(verify.status, StatusCode::OK, "{}", verify.body);
        assert!(verify.body.contains(text), "{}", verify.body);
    }
}
