//! Post/Redirect/Get on the pages: a step that went through answers `303 See Other` with a
//! Location a GET shows, so Reload and Back repeat only that GET: no second mail, no attempt
//! spent, no form sent again.

use std::time::Duration;

use axum::http::{StatusCode, header};

use crate::client::Answer;
use crate::harness::{bind, create_user};
use crate::mail::{assert_no_mail, wait_for_mail};
use crate::pages::{Browser, alert, app, assert_page};
use crate::selfservice::{register_email, sign_in};

/// How long a reload is given to (wrongly) send a mail.
const NO_MAIL_WITHIN: Duration = Duration::from_secs(2);

/// The number in "N attempts left" of a wrong code's alert.
fn attempts_left(answer: &Answer) -> u32 {
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    let text = alert(answer);
    let before = &text[..text.find(" attempts left").expect("attempts left")];
    before
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{text}"))
}

/// Reloads the page the last form redirected to: the same page, with `text`.
async fn reload(browser: &mut Browser<'_>, text: &str) -> Answer {
    let location = browser.redirected.clone().expect("the form redirected");
    let again = browser.get(&location).await;
    assert_page(&again, StatusCode::OK, text);
    again
}

#[tokio::test]
async fn reset_steps_redirect_and_reloads_send_no_mail_and_cost_no_attempt() {
    let app = app("").await;
    let user = create_user("prg").await;
    let token = sign_in(&app, &user).await;
    let address = register_email(&app, &token).await;

    let mut browser = Browser::new(&app);
    let form = browser.get("/reset").await;
    let verify = browser
        .submit(&form, "/reset", &[("username", &user.sam)])
        .await;
    assert_eq!(browser.redirected.as_deref(), Some("/reset/verify"));
    assert_page(&verify, StatusCode::OK, "Prove who you are");
    reload(&mut browser, "Prove who you are").await;
    assert_no_mail(&address, NO_MAIL_WITHIN).await;

    let sent = browser.submit(&verify, "/reset/email", &[]).await;
    assert_eq!(browser.redirected.as_deref(), Some("/reset/verify"));
    assert_page(&sent, StatusCode::OK, "We sent a code to the email address");
    assert_page(&sent, StatusCode::OK, "that one then no longer works");
    let first = wait_for_mail(&address).await.code_in().expect("a code");
    // Reload twice: the code field stays, the one-shot notice does not, and no mail is sent.
    for _ in 0..2 {
        let again = reload(&mut browser, "autocomplete=\"one-time-code\"").await;
        assert!(!again.body.contains("We sent a code"), "{}", again.body);
    }
    assert_no_mail(&address, NO_MAIL_WITHIN).await;

    // Only the explicit button sends another code, which replaces the first.
    let resent = browser.submit(&sent, "/reset/email", &[]).await;
    assert_page(
        &resent,
        StatusCode::OK,
        "We sent a code to the email address",
    );
    let second = wait_for_mail(&address).await.code_in().expect("a code");
    assert_ne!(first, second);
    let replaced = browser
        .submit(
            &resent,
            "/reset/verify",
            &[("method", "email"), ("code", &first)],
        )
        .await;
    let left = attempts_left(&replaced);
    // A failed step answers directly. Reloading that answer sends the form again: it is seen
    // as answered and leads to the page, without a second attempt.
    let again = browser.post_again().await;
    assert_eq!(again.status, StatusCode::SEE_OTHER, "{}", again.body);
    assert_eq!(again.headers[header::LOCATION], "/reset/verify");
    for _ in 0..2 {
        let again = browser.get("/reset/verify").await;
        assert_page(&again, StatusCode::OK, "autocomplete=\"one-time-code\"");
    }
    let wrong = browser
        .submit(
            &replaced,
            "/reset/verify",
            &[("method", "email"), ("code", "00000000")],
        )
        .await;
    assert_eq!(attempts_left(&wrong), left - 1);

    let password = browser
        .submit(
            &wrong,
            "/reset/verify",
            &[("method", "email"), ("code", &second)],
        )
        .await;
    assert_eq!(browser.redirected.as_deref(), Some("/reset/password"));
    assert_page(&password, StatusCode::OK, "Choose a new password");
    reload(&mut browser, "Choose a new password").await;

    let done = browser
        .submit(
            &password,
            "/reset/password",
            &[
                ("new_password", "Redirected-Pass-31"),
                ("confirm_password", "Redirected-Pass-31"),
            ],
        )
        .await;
    assert_eq!(browser.redirected.as_deref(), Some("/reset/done"));
    assert_page(
        &done,
        StatusCode::OK,
        "You can now sign in with your new password",
    );
    reload(&mut browser, "You can now sign in with your new password").await;
    bind(&user.dn, "Redirected-Pass-31")
        .await
        .expect("new password binds");

    // Back: the earlier steps are GETs of a spent flow, which lead to the start.
    for step in ["/reset/password", "/reset/verify"] {
        let back = browser.get(step).await;
        assert_eq!(back.status, StatusCode::SEE_OTHER, "{step}");
        assert_eq!(back.headers[header::LOCATION], "/reset");
    }
    let notice = wait_for_mail(&address).await;
    assert!(notice.code_in().is_none(), "the reset notice, no code");
    assert_no_mail(&address, NO_MAIL_WITHIN).await;
}

#[tokio::test]
async fn step_pages_without_a_flow_lead_back_to_the_start() {
    let app = app("").await;
    let mut browser = Browser::new(&app);
    for (step, start) in [
        ("/reset/verify", "/reset"),
        ("/reset/password", "/reset"),
        ("/reset/done", "/reset"),
        ("/unlock/verify", "/unlock"),
        ("/unlock/confirm", "/unlock"),
        ("/unlock/done", "/unlock"),
    ] {
        let answer = browser.get(step).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{step}");
        assert_eq!(answer.headers[header::LOCATION], start, "{step}");
    }
    // A flow without the state its redirect left (another browser's cookie): the start too.
    let form = browser.get("/reset").await;
    browser
        .submit(&form, "/reset", &[("username", "nobody-prg")])
        .await;
    browser.jar.remove("sspr_page");
    let answer = browser.get("/reset/verify").await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn registration_steps_redirect_to_the_overview_and_reloads_repeat_nothing() {
    let app = app("").await;
    let user = create_user("prr").await;
    let mut browser = Browser::new(&app);
    let form = browser.get("/register").await;
    let overview = browser
        .submit(
            &form,
            "/register",
            &[("username", &user.sam), ("password", &user.password)],
        )
        .await;
    assert_eq!(browser.redirected.as_deref(), Some("/register"));
    assert_page(&overview, StatusCode::OK, "Your verification methods");
    reload(&mut browser, "Your verification methods").await;

    let address = crate::mail::unique_address();
    let form = browser.get("/register/email").await;
    let sent = browser
        .submit(&form, "/register/email", &[("address", &address)])
        .await;
    assert_eq!(
        browser.redirected.as_deref(),
        Some("/register/email/confirm")
    );
    assert_page(&sent, StatusCode::OK, "We sent a code. Type it below.");
    assert_page(&sent, StatusCode::OK, &address);
    let code = wait_for_mail(&address).await.code_in().expect("a code");
    let again = reload(&mut browser, &address).await;
    assert!(
        !again.body.contains("We sent a code."),
        "the notice is shown once"
    );
    assert_no_mail(&address, NO_MAIL_WITHIN).await;

    let added = browser
        .submit(&again, "/register/email/confirm", &[("code", &code)])
        .await;
    assert_eq!(browser.redirected.as_deref(), Some("/register"));
    assert_page(&added, StatusCode::OK, "Your email address is set up.");
    let again = reload(&mut browser, "***@mail.test").await;
    assert!(!again.body.contains("Your email address is set up."));
    wait_for_mail(&address).await; // "a method was added", once
    assert_no_mail(&address, NO_MAIL_WITHIN).await;

    let confirm = browser.get("/register/remove/email").await;
    let removed = browser
        .submit(&confirm, "/register/remove/email", &[])
        .await;
    assert_eq!(browser.redirected.as_deref(), Some("/register"));
    assert_page(&removed, StatusCode::OK, "The method was removed.");
    reload(&mut browser, "No address set up.").await;

    let signed_out = browser.submit(&removed, "/register/sign-out", &[]).await;
    assert_eq!(browser.redirected.as_deref(), Some("/register"));
    assert_page(&signed_out, StatusCode::OK, "You are signed out.");
    let again = reload(&mut browser, "autocomplete=\"current-password\"").await;
    assert!(!again.body.contains("You are signed out."));
    // Back to a step page of the ended session: the sign-in form.
    let back = browser.get("/register/email/confirm").await;
    assert_eq!(back.status, StatusCode::SEE_OTHER);
}

/// Signs in on `/register` as `user`; returns the overview.
async fn signed_in<'a>(browser: &mut Browser<'a>, user: &crate::harness::TestUser) -> Answer {
    let form = browser.get("/register").await;
    browser
        .submit(
            &form,
            "/register",
            &[("username", &user.sam), ("password", &user.password)],
        )
        .await
}

/// Reloads the answer of the last (refused) form: it was answered, so the browser is sent to
/// `page` without the form being judged again.
async fn reload_refused(browser: &mut Browser<'_>, page: &str) {
    let again = browser.post_again().await;
    assert_eq!(again.status, StatusCode::SEE_OTHER, "{}", again.body);
    assert_eq!(again.headers[header::LOCATION], page);
}

#[tokio::test]
async fn the_app_setup_is_a_redirect_and_reloads_start_no_secret_and_cost_no_attempt() {
    let app = app("").await;
    let user = create_user("prt").await;
    let mut browser = Browser::new(&app);
    let overview = signed_in(&mut browser, &user).await;
    // The registration flow shows where the user is: signed in, choosing, then confirming.
    let step = |n: u32, label: &str| {
        format!("aria-current=\"step\"><span class=\"num\" aria-hidden=\"true\">{n}</span> {label}")
    };
    assert_page(&overview, StatusCode::OK, &step(2, "Choose a method"));
    assert_page(
        &overview,
        StatusCode::OK,
        "class=\"past\"><span class=\"num\" aria-hidden=\"true\">1</span> Sign in",
    );
    let setup = browser.submit(&overview, "/register/totp", &[]).await;
    assert_eq!(browser.redirected.as_deref(), Some("/register/totp"));
    assert_page(&setup, StatusCode::OK, &step(3, "Confirm with a code"));
    let secret = crate::pages::text_of(&setup.body, "totp-secret");
    assert!(!secret.is_empty());
    assert!(
        !browser
            .redirected
            .as_deref()
            .unwrap_or("")
            .contains(&secret),
        "the secret is in no URL"
    );
    // The page state cookie holds no secret either: it is sealed, and the secret is not in it.
    let page_cookie = browser.jar.get("sspr_page").cloned().unwrap_or_default();
    assert!(!page_cookie.contains(&secret.replace(' ', "")));

    // Reload and Back (a GET of the page) show the same secret; no new one is started.
    for _ in 0..2 {
        let again = reload(&mut browser, "src=\"data:image/svg+xml;base64,").await;
        assert_eq!(crate::pages::text_of(&again.body, "totp-secret"), secret);
    }

    let wrong = browser
        .submit(&setup, "/register/totp/confirm", &[("code", "000000")])
        .await;
    let left = attempts_left(&wrong);
    reload_refused(&mut browser, "/register/totp").await;
    let page = browser.get("/register/totp").await;
    assert_eq!(crate::pages::text_of(&page.body, "totp-secret"), secret);
    let wrong = browser
        .submit(&page, "/register/totp/confirm", &[("code", "000000")])
        .await;
    assert_eq!(attempts_left(&wrong), left - 1, "the reload cost nothing");

    let raw = crate::selfservice::decode_base32(&secret.replace(' ', ""));
    let now = crate::selfservice::settle_totp_step().await;
    let code = sspr_bridge::domain::totp::code_at(&raw, now);
    let page = browser.get("/register/totp").await;
    let added = browser
        .submit(&page, "/register/totp/confirm", &[("code", &code)])
        .await;
    assert_eq!(browser.redirected.as_deref(), Some("/register"));
    assert_page(&added, StatusCode::OK, "Your authenticator app is set up.");
    // Nothing is pending any more: the set-up page leads to the overview; without a session,
    // to the sign-in there.
    let back = browser.get("/register/totp").await;
    assert_eq!(back.status, StatusCode::SEE_OTHER);
    assert_eq!(back.headers[header::LOCATION], "/register");
    browser.jar.remove("sspr_session");
    let back = browser.get("/register/totp").await;
    assert_eq!(back.status, StatusCode::SEE_OTHER);
    assert_eq!(back.headers[header::LOCATION], "/register");
}

#[tokio::test]
async fn reloads_of_a_wrong_step_up_or_email_code_cost_no_attempt_and_send_no_mail() {
    let app = app("").await;
    let user = create_user("prs").await;
    let token = sign_in(&app, &user).await;
    let address = register_email(&app, &token).await;

    // A new session must prove a registered method first.
    let mut browser = Browser::new(&app);
    let overview = signed_in(&mut browser, &user).await;
    assert_page(&overview, StatusCode::OK, "action=\"/register/step-up\"");
    let sent = browser
        .submit(&overview, "/register/step-up/email", &[])
        .await;
    assert_eq!(browser.redirected.as_deref(), Some("/register"));
    let code = wait_for_mail(&address).await.code_in().expect("a code");
    let fields = [("method", "email"), ("code", "00000000")];
    let wrong = browser.submit(&sent, "/register/step-up", &fields).await;
    let left = attempts_left(&wrong);
    reload_refused(&mut browser, "/register").await;
    let overview = browser.get("/register").await;
    let wrong = browser
        .submit(&overview, "/register/step-up", &fields)
        .await;
    assert_eq!(attempts_left(&wrong), left - 1, "the reload cost nothing");
    assert_no_mail(&address, NO_MAIL_WITHIN).await;
    let stepped_up = browser
        .submit(
            &wrong,
            "/register/step-up",
            &[("method", "email"), ("code", &code)],
        )
        .await;
    assert_page(&stepped_up, StatusCode::OK, "action=\"/register/totp\"");

    // A new address: a wrong code's answer reloaded is not judged again either.
    let other = crate::mail::unique_address();
    let form = browser.get("/register/email").await;
    let sent = browser
        .submit(&form, "/register/email", &[("address", &other)])
        .await;
    let code = wait_for_mail(&other).await.code_in().expect("a code");
    let wrong = browser
        .submit(&sent, "/register/email/confirm", &[("code", "00000000")])
        .await;
    let left = attempts_left(&wrong);
    reload_refused(&mut browser, "/register/email/confirm").await;
    let page = browser.get("/register/email/confirm").await;
    assert_page(&page, StatusCode::OK, &other);
    let wrong = browser
        .submit(&page, "/register/email/confirm", &[("code", "00000000")])
        .await;
    assert_eq!(attempts_left(&wrong), left - 1, "the reload cost nothing");
    assert_no_mail(&other, NO_MAIL_WITHIN).await;
    let added = browser
        .submit(&wrong, "/register/email/confirm", &[("code", &code)])
        .await;
    assert_page(&added, StatusCode::OK, "Your email address is set up.");
}
