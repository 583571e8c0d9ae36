//! The pages in a real browser: Debian's headless Chromium, driven through chromedriver, against
//! the app served on a loopback port over the real DC, database and SMTP server. Every flow runs
//! in every language, picked by the browser's own Accept-Language.
//!
//! Every page visited is saved as a full-page screenshot (at the desktop width, 375 and 320 px) to
//! `target/browser-screenshots/<lang>/<flow>-<NN>-<page>.png`, and [`Browser::check`] asserts
//! basic accessibility on it: fields and buttons have an accessible name, Tab reaches every
//! control in page order with a visible focus ring (3:1 against its background), and nothing
//! scrolls sideways at 375 or 320 px. After a wrong code, the error must sit in a live region
//! (`role="alert"` or `aria-live`) and the title must start with "Error:". On every page it also
//! runs axe-core, in the light and the dark colour scheme, and asserts no violation of WCAG 2.1
//! A and AA.
//!
//! Needs the Debian packages `chromium` and `chromium-driver` (scripts/lib/common.sh installs
//! them) and the npm package `axe-core` in tests/axe/node_modules (`npm ci --prefix tests/axe`,
//! which scripts/test runs; SSPR_AXE_CORE names another axe.min.js); without them these tests
//! fail, they do not skip.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::Method;
use base64::Engine;
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use sspr_bridge::domain::locale::Locale;
use totp_rs::{Algorithm, Secret, TOTP};

use crate::approval::{ANY_AGE, approval_link, ask, pair};
use crate::client::{TestApp, test_app};
use crate::harness::{
    TestUser, add_member, bind, create_group, create_user, read_attr, set_attr, unique_name,
};
use crate::helpdesk::{caller_with_totp, desk};
use crate::mail::unique_address;
use crate::mail::{assert_no_mail, smtp_section, wait_for_mail};
use crate::selfservice::{register_email, register_totp, settle_totp_step, sign_in};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The WCAG levels axe-core checks every page against.
const AXE_TAGS: [&str; 4] = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];

/// axe-core's browser bundle, read once per browser; see the module docs for where it comes from.
fn axe_source() -> String {
    let path = std::env::var_os("SSPR_AXE_CORE").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/axe/node_modules/axe-core/axe.min.js"),
        PathBuf::from,
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "axe-core is missing at {}: {e}; install it with `npm ci --prefix tests/axe` \
             (scripts/test does), or name its axe.min.js in SSPR_AXE_CORE",
            path.display()
        )
    })
}

/// How long to wait for chromedriver, a page or an element before failing.
const PATIENCE: Duration = Duration::from_secs(15);

/// The window the pages are used and screenshotted in; a common phone's width; and the
/// narrowest one they must fit (WCAG 1.4.10 reflow: 320 CSS px).
const DESKTOP: (u32, u32) = (1024, 768);
const PHONE: u32 = 375;
const NARROW: u32 = 320;

/// An https public URL makes cookies `Secure`, as in production; Chromium takes them from
/// loopback over plain http.
const PUBLIC_URL: &str = "https://sspr.example.test/";

/// Licensed, mailing through the test SMTP server.
fn config() -> String {
    format!(
        "[licence]\nazure_ad_premium = true\n[server]\npublic_url = {PUBLIC_URL:?}\n{}",
        smtp_section()
    )
}

// ------------------------------------------------------------------------------------ the tests

/// Every flow below has a test in each language. A language added to `Locale` stops compiling
/// here until its tests are added too.
const _: fn(Locale) = |locale| match locale {
    Locale::En | Locale::Nl | Locale::De | Locale::Fr => {}
};

#[tokio::test]
async fn register_an_authenticator_app_then_reset_the_password_in_english() {
    register_then_reset(Locale::En).await;
}

#[tokio::test]
async fn register_an_authenticator_app_then_reset_the_password_in_dutch() {
    register_then_reset(Locale::Nl).await;
}

#[tokio::test]
async fn register_an_authenticator_app_then_reset_the_password_in_german() {
    register_then_reset(Locale::De).await;
}

#[tokio::test]
async fn register_an_authenticator_app_then_reset_the_password_in_french() {
    register_then_reset(Locale::Fr).await;
}

#[tokio::test]
async fn unlock_a_locked_account_with_an_emailed_code_in_english() {
    unlock_with_an_emailed_code(Locale::En).await;
}

#[tokio::test]
async fn unlock_a_locked_account_with_an_emailed_code_in_dutch() {
    unlock_with_an_emailed_code(Locale::Nl).await;
}

#[tokio::test]
async fn unlock_a_locked_account_with_an_emailed_code_in_german() {
    unlock_with_an_emailed_code(Locale::De).await;
}

#[tokio::test]
async fn unlock_a_locked_account_with_an_emailed_code_in_french() {
    unlock_with_an_emailed_code(Locale::Fr).await;
}

#[tokio::test]
async fn helpdesk_resets_a_verified_caller_in_english() {
    helpdesk_reset(Locale::En).await;
}

#[tokio::test]
async fn helpdesk_resets_a_verified_caller_in_dutch() {
    helpdesk_reset(Locale::Nl).await;
}

#[tokio::test]
async fn helpdesk_resets_a_verified_caller_in_german() {
    helpdesk_reset(Locale::De).await;
}

#[tokio::test]
async fn helpdesk_resets_a_verified_caller_in_french() {
    helpdesk_reset(Locale::Fr).await;
}

#[tokio::test]
async fn a_second_visit_steps_up_with_the_authenticator_then_adds_an_email_in_english() {
    step_up_then_add_an_email(Locale::En).await;
}

#[tokio::test]
async fn a_second_visit_steps_up_with_the_authenticator_then_adds_an_email_in_dutch() {
    step_up_then_add_an_email(Locale::Nl).await;
}

#[tokio::test]
async fn a_second_visit_steps_up_with_the_authenticator_then_adds_an_email_in_german() {
    step_up_then_add_an_email(Locale::De).await;
}

#[tokio::test]
async fn a_second_visit_steps_up_with_the_authenticator_then_adds_an_email_in_french() {
    step_up_then_add_an_email(Locale::Fr).await;
}

#[tokio::test]
async fn a_must_change_password_is_sent_to_change_it_first_in_english() {
    must_change_password_first(Locale::En).await;
}

#[tokio::test]
async fn a_must_change_password_is_sent_to_change_it_first_in_dutch() {
    must_change_password_first(Locale::Nl).await;
}

#[tokio::test]
async fn a_must_change_password_is_sent_to_change_it_first_in_german() {
    must_change_password_first(Locale::De).await;
}

#[tokio::test]
async fn a_must_change_password_is_sent_to_change_it_first_in_french() {
    must_change_password_first(Locale::Fr).await;
}

#[tokio::test]
async fn a_manager_confirms_a_caller_in_english() {
    manager_approval(Locale::En).await;
}

#[tokio::test]
async fn a_manager_confirms_a_caller_in_dutch() {
    manager_approval(Locale::Nl).await;
}

#[tokio::test]
async fn a_manager_confirms_a_caller_in_german() {
    manager_approval(Locale::De).await;
}

#[tokio::test]
async fn a_manager_confirms_a_caller_in_french() {
    manager_approval(Locale::Fr).await;
}

/// The page behind the link a caller's manager is mailed when the helpdesk asks them to confirm
/// the caller: a wrong authenticator code, then the right one.
async fn manager_approval(locale: Locale) {
    let desk = desk(&format!("{ANY_AGE}\n[server]\npublic_url = {PUBLIC_URL:?}")).await;
    let pair = pair(&desk).await;
    let operator = desk.operator_token().await;
    ask(&desk, &operator, &pair.caller)
        .await
        .expect(axum::http::StatusCode::ACCEPTED);
    let link = approval_link(&pair.manager).await;
    let site = Site::serve(&desk.app).await;
    let mut browser = Browser::launch(&site, locale).await;

    browser.open("approve", &link).await;
    browser.check("approve").await;
    browser.fill("#approve-totp", "000000").await;
    browser.submit("form:has(#approve-totp) button").await;
    browser.check("wrong-code").await;
    browser.assert_error_announced("error_code_attempts").await;
    browser
        .fill("#approve-totp", &pair.authenticator.code().await)
        .await;
    browser.submit("form:has(#approve-totp) button").await;
    browser.check("approved").await;
    browser.assert_text("approve_done").await;
}

#[tokio::test]
async fn the_pages_off_the_flows_in_english() {
    pages_off_the_flows(Locale::En).await;
}

#[tokio::test]
async fn the_pages_off_the_flows_in_dutch() {
    pages_off_the_flows(Locale::Nl).await;
}

#[tokio::test]
async fn the_pages_off_the_flows_in_german() {
    pages_off_the_flows(Locale::De).await;
}

#[tokio::test]
async fn the_pages_off_the_flows_in_french() {
    pages_off_the_flows(Locale::Fr).await;
}

/// The pages no flow above passes through: the start page, the helpdesk where no group is
/// configured, and self-service without the licence flag.
async fn pages_off_the_flows(locale: Locale) {
    let licensed = test_app(&config()).await;
    let site = Site::serve(&licensed).await;
    let mut browser = Browser::launch(&site, locale).await;
    browser.open("home", "/").await;
    browser.check("home").await;
    browser.open("helpdesk-off", "/helpdesk").await;
    browser.check("helpdesk-off").await;

    let unlicensed = test_app(&format!(
        "[server]\npublic_url = {PUBLIC_URL:?}\n{}",
        smtp_section()
    ))
    .await;
    let other = Site::serve(&unlicensed).await;
    browser.base.clone_from(&other.base);
    browser.open("licence-off", "/reset").await;
    browser.check("licence-off").await;
}

/// The axe-core check itself: on a page made to break WCAG (grey text on white at 1.1:1, an
/// image without alternative text) it names both rules, so no violations on the real pages means
/// something.
#[tokio::test]
async fn axe_core_reports_violations_where_a_page_has_them() {
    let app = test_app(&config()).await;
    let site = Site::serve(&app).await;
    let mut browser = Browser::launch(&site, Locale::En).await;
    browser.open("axe", "/reset").await;
    assert_eq!(browser.axe("light").await, json!([]), "the page as served");
    browser.js(BREAK_WCAG, vec![]).await;
    let violations = browser.axe("light").await;
    let rules: Vec<&str> = violations
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["rule"].as_str())
        .collect();
    assert!(
        rules.contains(&"color-contrast") && rules.contains(&"image-alt"),
        "{violations}"
    );
}

#[tokio::test]
async fn reload_and_back_after_a_mailed_code_send_nothing_again() {
    reload_and_back(Locale::En).await;
}

/// Post/Redirect/Get as a browser lives it: after a code was mailed, Reload and Back show the
/// verify page again without posting (no second mail, the first code still works), and Back
/// after the reset leads to the start instead of sending the password form again.
async fn reload_and_back(locale: Locale) {
    let app = test_app(&config()).await;
    let site = Site::serve(&app).await;
    let user = create_user("brp").await;
    let token = sign_in(&app, &user).await;
    let address = register_email(&app, &token).await;
    let mut browser = Browser::launch(&site, locale).await;

    browser.open("reload", "/reset").await;
    browser.fill("#username", &user.sam).await;
    browser.submit("form[action='/reset'] button").await;
    assert_eq!(browser.path().await, "/reset/verify");
    browser.submit("form[action='/reset/email'] button").await;
    assert_eq!(browser.path().await, "/reset/verify");
    browser.check("code-sent").await;
    browser.assert_text("notice_reset_code_sent").await;
    browser.assert_text("email_resend_note").await;
    let code = wait_for_mail(&address)
        .await
        .code_in()
        .expect("a code mailed");

    browser.reload().await;
    assert_eq!(browser.path().await, "/reset/verify");
    browser.element("#email-code").await;
    browser.back().await;
    assert_eq!(browser.path().await, "/reset/verify");
    browser.reload().await;
    assert_no_mail(&address, Duration::from_secs(2)).await;

    // The first code still works: nothing replaced it, and no attempt was spent.
    browser.fill("#email-code", &code).await;
    browser.submit("form:has(#email-code) button").await;
    assert_eq!(browser.path().await, "/reset/password");
    browser.reload().await;
    assert_eq!(browser.path().await, "/reset/password");
    let new_password = format!("Reloaded-{}-Pw7!", locale.tag());
    browser.fill("#new-password", &new_password).await;
    browser.fill("#confirm-password", &new_password).await;
    browser
        .submit("form[action='/reset/password'] button[type='submit']")
        .await;
    assert_eq!(browser.path().await, "/reset/done");
    browser.reload().await;
    browser.assert_text("reset_done_title").await;
    browser.back().await;
    assert_eq!(
        browser.path().await,
        "/reset",
        "the spent flow's steps lead to the start"
    );
    bind(&user.dn, &new_password)
        .await
        .expect("the new password binds");
    let notice = wait_for_mail(&address).await;
    assert!(notice.code_in().is_none(), "the reset notice");
    assert_no_mail(&address, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn reload_and_back_on_the_app_set_up_page_start_no_new_secret() {
    let app = test_app(&config()).await;
    let site = Site::serve(&app).await;
    let user = create_user("brq").await;
    let mut browser = Browser::launch(&site, Locale::En).await;

    browser.open("totp-reload", "/register").await;
    browser.fill("#username", &user.sam).await;
    browser.fill("#password", &user.password).await;
    browser.submit("form[action='/register'] button").await;
    browser.check("overview").await;
    browser.submit("form[action='/register/totp'] button").await;
    assert_eq!(
        browser.path().await,
        "/register/totp",
        "a redirect to a GET"
    );
    browser.check("totp-setup").await;
    let secret = browser.text("#totp-secret").await;

    // Reload, Back and Forward repeat GETs: the same secret, none started anew.
    browser.reload().await;
    assert_eq!(browser.path().await, "/register/totp");
    assert_eq!(browser.text("#totp-secret").await, secret);
    browser.back().await;
    assert_eq!(browser.path().await, "/register");
    browser.forward().await;
    assert_eq!(browser.path().await, "/register/totp");
    assert_eq!(browser.text("#totp-secret").await, secret);

    browser.fill("#code", "000000").await;
    browser
        .submit("form[action='/register/totp/confirm'] button")
        .await;
    browser.check("wrong-code").await;
    browser.assert_error_announced("error_code_attempts").await;

    // The secret the page showed first is the one that is confirmed.
    let raw = Secret::Encoded(secret.split_whitespace().collect())
        .to_bytes()
        .unwrap();
    let totp = TOTP::new(Algorithm::SHA1, 6, 1, 30, raw, None, String::new()).unwrap();
    let now = settle_totp_step().await;
    browser.fill("#code", &totp.generate(now)).await;
    browser
        .submit("form[action='/register/totp/confirm'] button")
        .await;
    browser.check("registered").await;
    browser.assert_text("notice_totp_added").await;
}

/// Registration controls that must not be offered before a step-up (or at all, to a refused
/// sign-in).
const CHANGING_CONTROLS: [&str; 7] = [
    "form[action='/register/totp']",
    "a[href='/register/email']",
    "a[href^='/register/remove']",
    "form[action='/register/email']",
    "form[action='/register/totp/confirm']",
    "form[action='/register/passkey/confirm']",
    "form[action='/register/passkey/remove']",
];

/// A user who registered an authenticator app (through the API, in an earlier visit) comes back
/// to /register: the overview asks for a step-up and offers no change; a wrong authenticator
/// code is announced; the current one steps up, after which an email address is added with the
/// code read from the Maildir. AD `mail` (the only address known before) hears of it.
async fn step_up_then_add_an_email(locale: Locale) {
    let app = test_app(&config()).await;
    let site = Site::serve(&app).await;
    let user = create_user("brs").await;
    let ad_mail = format!("{}@mail.test", user.sam);
    let first = sign_in(&app, &user).await;
    let secret = register_totp(&app, &first).await;
    // A TOTP-only user is told at AD `mail`; taken here so the next notice there is the new one.
    let totp_notice = wait_for_mail(&ad_mail).await;
    assert!(totp_notice.code_in().is_none());
    let totp = TOTP::new(Algorithm::SHA1, 6, 1, 30, secret, None, String::new()).unwrap();
    let mut browser = Browser::launch(&site, locale).await;

    browser.open("stepup", "/register").await;
    browser.check("signin").await;
    browser.fill("#username", &user.sam).await;
    browser.fill("#password", &user.password).await;
    browser.submit("form[action='/register'] button").await;
    browser.check("step-up").await;
    browser.assert_text("stepup_title").await;
    browser.assert_text("status_totp_yes").await;
    browser.assert_absent(&CHANGING_CONTROLS).await;

    browser.fill("#stepup-totp", "000000").await;
    browser.submit("form:has(#stepup-totp) button").await;
    browser.check("wrong-code").await;
    browser.assert_error_announced("error_code_attempts").await;
    browser.assert_absent(&CHANGING_CONTROLS).await;

    let now = settle_totp_step().await;
    let code = totp.generate(now);
    // Typed in the browser, so the in-process client never sees it to list it.
    crate::harness::remember_secret("code", &code);
    browser.fill("#stepup-totp", &code).await;
    browser.submit("form:has(#stepup-totp) button").await;
    browser.check("stepped-up").await;
    browser.assert_text("notice_stepped_up").await;

    browser.submit("a[href='/register/email']").await;
    browser.check("email").await;
    let address = unique_address();
    browser.fill("#address", &address).await;
    browser
        .submit("form[action='/register/email'] button")
        .await;
    browser.check("email-code").await;
    let code = wait_for_mail(&address)
        .await
        .code_in()
        .expect("a confirmation code mailed to the new address");
    browser.fill("#code", &code).await;
    browser
        .submit("form[action='/register/email/confirm'] button")
        .await;
    browser.check("registered").await;
    browser.assert_text("notice_email_added").await;
    browser.assert_text("status_email_yes").await;

    let token = sign_in(&app, &user).await;
    let overview = app.get("/api/v1/enrollment", Some(&token)).await.json();
    // The overview masks the address: its first letter and the domain stay.
    let (local, domain) = address.split_once('@').unwrap();
    let masked = format!("{}***@{domain}", &local[..1]);
    assert_eq!(
        (&overview["totp"], &overview["email"]),
        (&json!(true), &json!(masked)),
        "both methods registered: {overview}"
    );
    let notice = wait_for_mail(&ad_mail).await;
    assert!(notice.code_in().is_none(), "a notice carries no code");
    assert_ne!(
        notice.text, totp_notice.text,
        "AD mail hears of the added address"
    );
    let confirmation = wait_for_mail(&address).await;
    assert!(confirmation.code_in().is_none());
}

/// A user whose password must be changed at next logon (pwdLastSet = 0, AD's 773) is told to
/// change it first and gets no registration controls; nothing is registered.
async fn must_change_password_first(locale: Locale) {
    let app = test_app(&config()).await;
    let site = Site::serve(&app).await;
    let user = create_user("brm").await;
    set_attr(&user.dn, "pwdLastSet", "0").await;
    let mut browser = Browser::launch(&site, locale).await;

    browser.open("must-change", "/register").await;
    browser.check("signin").await;
    browser.fill("#username", &user.sam).await;
    browser.fill("#password", &user.password).await;
    browser.submit("form[action='/register'] button").await;
    browser.check("refused").await;
    browser
        .assert_error_announced("error_password_change_required")
        .await;
    browser.assert_absent(&CHANGING_CONTROLS).await;
    browser
        .assert_absent(&["form[action^='/register/step-up']", "#stepup-totp"])
        .await;
    let cookies = browser.client.get_all_cookies().await.unwrap();
    assert!(
        cookies.iter().all(|c| c.name() != "sspr_session"),
        "no registration session: {cookies:?}"
    );

    let (rc, text) = bind(&user.dn, &user.password)
        .await
        .expect_err("AD still wants the password changed");
    assert!(rc == 49 && text.contains("data 773"), "{rc} {text}");
    let answer = app
        .post(
            "/api/v1/enrollment/session",
            json!({"username": user.sam, "password": user.password}),
            None,
        )
        .await
        .expect(axum::http::StatusCode::FORBIDDEN);
    assert_eq!(answer.error().error, "password_change_required");
}

/// Registration of an authenticator app (its key read off the page, the code computed with
/// totp-rs), then a reset with it in a fresh visit.
async fn register_then_reset(locale: Locale) {
    let app = test_app(&config()).await;
    let site = Site::serve(&app).await;
    let user = create_user("brw").await;
    let mut browser = Browser::launch(&site, locale).await;

    browser.open("register", "/register").await;
    browser.check("signin").await;
    browser.fill("#username", &user.sam).await;
    browser.fill("#password", &user.password).await;
    browser.submit("form[action='/register'] button").await;
    browser.check("overview").await;
    browser.assert_text("status_totp_no").await;
    let cookies = browser.client.get_all_cookies().await.unwrap();
    let session = cookies
        .iter()
        .find(|c| c.name() == "sspr_session")
        .expect("a session cookie");
    assert_eq!(
        (session.secure(), session.http_only()),
        (Some(true), Some(true)),
        "kept although Secure on plain http (loopback): {session}"
    );
    // Behind https the CSRF cookie is host-only, so a sibling host cannot plant it.
    assert!(
        cookies.iter().any(|c| c.name() == "__Host-sspr_csrf"),
        "{cookies:?}"
    );
    assert!(
        cookies.iter().all(|c| c.name() != "sspr_csrf"),
        "{cookies:?}"
    );

    browser.submit("form[action='/register/totp'] button").await;
    browser.check("totp-setup").await;
    let manual = browser.text("#totp-secret").await;
    let secret = Secret::Encoded(manual.split_whitespace().collect())
        .to_bytes()
        .unwrap_or_else(|e| panic!("the key on the page is base32: {manual:?}: {e:?}"));
    let totp = TOTP::new(Algorithm::SHA1, 6, 1, 30, secret, None, String::new()).unwrap();
    let uri = browser.attr("a[href^='otpauth:']", "href").await;
    assert_eq!(
        TOTP::from_url(&uri).expect("an otpauth URI").secret,
        totp.secret,
        "the link and the typed key are the same key"
    );

    browser.fill("#code", "000000").await;
    browser
        .submit("form[action='/register/totp/confirm'] button")
        .await;
    browser.check("wrong-code").await;
    browser.assert_error_announced("error_code_attempts").await;

    // The previous step's code, so that the current one stays free for the reset below.
    let now = settle_totp_step().await;
    browser.fill("#code", &totp.generate(now - totp.step)).await;
    browser
        .submit("form[action='/register/totp/confirm'] button")
        .await;
    browser.check("registered").await;
    browser.assert_text("notice_totp_added").await;
    browser.assert_text("status_totp_yes").await;
    let token = sign_in(&app, &user).await;
    let enrollment = app.get("/api/v1/enrollment", Some(&token)).await;
    assert_eq!(
        enrollment.json()["totp"],
        json!(true),
        "{}",
        enrollment.body
    );

    // The reset, in a new visit (the registration session is not needed).
    browser.forget_cookies().await;
    browser.open("reset", "/reset").await;
    browser.check("start").await;
    browser.fill("#username", &user.sam).await;
    browser.submit("form[action='/reset'] button").await;
    browser.check("verify").await;
    browser.fill("#totp-code", "000000").await;
    browser.submit("form[action='/reset/verify'] button").await;
    browser.check("wrong-code").await;
    browser.assert_error_announced("error_code_attempts").await;

    let now = settle_totp_step().await;
    browser.fill("#totp-code", &totp.generate(now)).await;
    browser.submit("form[action='/reset/verify'] button").await;
    browser.check("password").await;
    // Refused before AD sees it: the page again, with what is wrong.
    browser.fill("#new-password", "abc").await;
    browser.fill("#confirm-password", "abc").await;
    browser
        .submit("form[action='/reset/password'] button[type='submit']")
        .await;
    browser.check("password-refused").await;
    let new_password = format!("Browser-{}-Pw7!", locale.tag());
    browser.fill("#new-password", &new_password).await;
    browser.fill("#confirm-password", &new_password).await;
    browser
        .submit("form[action='/reset/password'] button[type='submit']")
        .await;
    browser.check("done").await;
    browser.assert_text("reset_done_title").await;

    bind(&user.dn, &new_password)
        .await
        .expect("the new password binds");
    let (rc, _) = bind(&user.dn, &user.password)
        .await
        .expect_err("the old password fails");
    assert_eq!(rc, 49);
}

/// A real lockout (bad binds past the DC's threshold of 5), unlocked through the pages with a
/// code mailed to the registered address and read back from the Maildir.
async fn unlock_with_an_emailed_code(locale: Locale) {
    let app = test_app(&config()).await;
    let site = Site::serve(&app).await;
    let user = create_user("brl").await;
    let token = sign_in(&app, &user).await;
    let address = register_email(&app, &token).await;
    lock_out(&user).await;
    let mut browser = Browser::launch(&site, locale).await;

    browser.open("unlock", "/unlock").await;
    browser.check("start").await;
    browser.fill("#username", &user.upn).await;
    browser.submit("form[action='/unlock'] button").await;
    browser.check("verify").await;
    browser.submit("form[action='/unlock/email'] button").await;
    browser.check("code-sent").await;
    browser.assert_text("notice_reset_code_sent").await;
    let code = wait_for_mail(&address)
        .await
        .code_in()
        .expect("a code mailed");

    browser.fill("#email-code", "00000000").await;
    browser.submit("form:has(#email-code) button").await;
    browser.check("wrong-code").await;
    browser.assert_error_announced("error_code_attempts").await;
    browser.fill("#email-code", &code).await;
    browser.submit("form:has(#email-code) button").await;
    browser.check("confirm").await;
    let (_, text) = bind(&user.dn, &user.password)
        .await
        .expect_err("still locked until confirmed");
    assert!(text.contains("data 775"), "{text}");
    browser
        .submit("form[action='/unlock/confirm'] button")
        .await;
    browser.check("done").await;
    browser.assert_text("unlock_done_title").await;

    bind(&user.dn, &user.password)
        .await
        .expect("unlocked, with the same password");
    assert_eq!(
        read_attr(&user.dn, "lockoutTime").await.as_deref(),
        Some("0")
    );
    let notice = wait_for_mail(&address).await;
    assert!(
        notice.code_in().is_none(),
        "the unlock notice carries no code"
    );
}

/// An operator signs in on the helpdesk page, finds the caller, verifies their authenticator
/// code (a wrong one first) and resets to a temporary password that must be changed.
async fn helpdesk_reset(locale: Locale) {
    // desk() licenses the app and adds the SMTP server; this lands after its [helpdesk].
    let desk = desk(&format!("[server]\npublic_url = {PUBLIC_URL:?}")).await;
    let (caller, secret) = caller_with_totp(&desk).await;
    let site = Site::serve(&desk.app).await;
    let mut browser = Browser::launch(&site, locale).await;

    browser.open("helpdesk", "/helpdesk").await;
    browser.check("signin").await;
    browser.fill("#username", &desk.operator.sam).await;
    browser.fill("#password", "not-the-password").await;
    browser.fill("#code", "000000").await;
    browser.submit("form[action='/helpdesk'] button").await;
    browser.check("signin-refused").await;
    browser.fill("#username", &desk.operator.sam).await;
    browser.fill("#password", &desk.operator.password).await;
    browser
        .fill("#code", &desk.authenticator.code().await)
        .await;
    browser.submit("form[action='/helpdesk'] button").await;
    browser.check("search").await;
    browser.fill("#caller-id", &caller.sam).await;
    browser.submit("form[action='/helpdesk/user'] button").await;
    browser.check("card").await;
    browser.assert_text("helpdesk_verify_first").await;

    browser.fill("#caller-totp", "000000").await;
    browser
        .submit("form[action='/helpdesk/user/verify'] button")
        .await;
    browser.check("wrong-code").await;
    browser.assert_error_announced("error_code_attempts").await;
    let totp = TOTP::new(Algorithm::SHA1, 6, 1, 30, secret, None, String::new()).unwrap();
    let now = settle_totp_step().await;
    browser.fill("#caller-totp", &totp.generate(now)).await;
    browser
        .submit("form[action='/helpdesk/user/verify'] button")
        .await;
    browser.check("verified").await;
    browser.assert_text("helpdesk_verified_totp").await;

    browser
        .submit("form[action='/helpdesk/user/reset'] button")
        .await;
    browser.check("confirm").await;
    assert_eq!(
        browser.prop("#deliver-operator", "checked").await,
        "true",
        "shown to the operator unless they choose otherwise"
    );
    browser
        .submit("form[action='/helpdesk/user/reset/confirm'] button")
        .await;
    browser.check("temporary-password").await;
    browser.assert_text("helpdesk_password_hint").await;
    let temporary = browser.prop("#temporary-password", "value").await;
    assert!(crate::helpdesk::reads_aloud(&temporary), "{temporary}");

    let (rc, text) = bind(&caller.dn, &temporary)
        .await
        .expect_err("the temporary password must be changed first");
    assert!(
        rc == 49 && text.contains("data 773"),
        "right password, must change at next logon: {rc} {text}"
    );
    let (rc, text) = bind(&caller.dn, &caller.password)
        .await
        .expect_err("the old password fails");
    assert!(rc == 49 && text.contains("data 52e"), "{rc} {text}");
}

/// Bad binds past the test DC's lockout threshold (5); asserts the account is locked.
async fn lock_out(user: &TestUser) {
    for _ in 0..6 {
        let _ = bind(&user.dn, "wrong-password").await;
    }
    let (rc, text) = bind(&user.dn, &user.password)
        .await
        .expect_err("locked out");
    assert!(rc == 49 && text.contains("data 775"), "{rc} {text}");
}

#[tokio::test]
async fn the_password_page_ticks_rules_while_typing_shows_the_password_and_the_server_still_refuses()
 {
    let app = test_app(&config()).await;
    let site = Site::serve(&app).await;
    let user = create_user("brpw").await;
    let token = sign_in(&app, &user).await;
    let secret = register_totp(&app, &token).await;
    let totp = TOTP::new(Algorithm::SHA1, 6, 1, 30, secret, None, String::new()).unwrap();
    let mut browser = Browser::launch(&site, Locale::En).await;

    browser.open("password-page", "/reset").await;
    browser.fill("#username", &user.sam).await;
    browser.submit("form[action='/reset'] button").await;
    let now = settle_totp_step().await;
    browser.fill("#totp-code", &totp.generate(now)).await;
    browser.submit("form[action='/reset/verify'] button").await;
    browser.check("password").await;
    let class = async |browser: &Browser, rule: &str| {
        browser
            .js(
                "return document.querySelector(arguments[0]).className",
                vec![json!(format!("#password-rules li[data-rule='{rule}']"))],
            )
            .await
    };
    // The test DC's policy: at least 7 characters and complexity. Nothing is marked yet.
    assert_eq!(class(&browser, "length").await, json!(""));
    assert_eq!(class(&browser, "complexity").await, json!(""));
    assert_eq!(browser.attr("#password-strength", "hidden").await, "true");

    let field = browser.element("#new-password").await;
    field.send_keys("ab").await.unwrap();
    assert_eq!(class(&browser, "length").await, json!("fail"));
    assert_eq!(class(&browser, "complexity").await, json!("fail"));
    field.send_keys("Cd-2024x").await.unwrap();
    assert_eq!(class(&browser, "length").await, json!("pass"));
    assert_eq!(class(&browser, "complexity").await, json!("pass"));
    // Rules only the server can judge keep no mark.
    assert_eq!(class(&browser, "banned").await, json!(""));
    let strength = browser.text("#password-strength").await;
    assert!(
        strength.starts_with(browser.t("strength_label")),
        "{strength}"
    );

    // The toggle is a real button that says whether it is pressed, and shows both fields.
    assert_eq!(
        browser.attr("#show-password", "aria-pressed").await,
        "false"
    );
    assert_eq!(browser.prop("#new-password", "type").await, "password");
    browser
        .element("#show-password")
        .await
        .click()
        .await
        .unwrap();
    assert_eq!(browser.attr("#show-password", "aria-pressed").await, "true");
    assert_eq!(browser.prop("#new-password", "type").await, "text");
    assert_eq!(browser.prop("#confirm-password", "type").await, "text");
    browser
        .element("#show-password")
        .await
        .click()
        .await
        .unwrap();
    assert_eq!(browser.prop("#new-password", "type").await, "password");

    // The same page in the dark scheme, for the artefacts.
    browser
        .client
        .issue_cmd(Cdp(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": "dark"}]}),
        ))
        .await
        .unwrap();
    browser
        .screenshot("password-page-01-password-dark.png")
        .await;

    // Without its script the page still works, and the server refuses a weak password, marking
    // which listed rule it broke.
    browser
        .client
        .issue_cmd(Cdp(
            "Emulation.setScriptExecutionDisabled",
            json!({"value": true}),
        ))
        .await
        .unwrap();
    browser.fill("#new-password", "Ab1!").await;
    browser.fill("#confirm-password", "Ab1!").await;
    browser
        .submit("form[action='/reset/password'] button[type='submit']")
        .await;
    browser.assert_error_announced("error_password_rules").await;
    assert_eq!(
        browser.attr("#show-password", "hidden").await,
        "true",
        "no script ran"
    );
    assert_eq!(class(&browser, "length").await, json!("fail"));
    assert_eq!(class(&browser, "complexity").await, json!("pass"));
    // Even with the refusal above it, the field is on a phone's first screen (375 x 667).
    browser
        .client
        .issue_cmd(Cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 375, "height": 667, "deviceScaleFactor": 2, "mobile": true}),
        ))
        .await
        .unwrap();
    let bottom = browser
        .js(
            "return document.getElementById('new-password').getBoundingClientRect().bottom \
             + window.scrollY",
            vec![],
        )
        .await;
    let viewport = browser.js("return window.innerHeight", vec![]).await;
    assert!(
        bottom.as_f64().unwrap() <= viewport.as_f64().unwrap(),
        "the field ends at {bottom} px, below the first {viewport} px"
    );
    // The keyboard checks need scripts, which stay off on this page: a screenshot only.
    browser
        .screenshot("password-page-02-refused-without-script-375px.png")
        .await;
    bind(&user.dn, &user.password)
        .await
        .expect("the old password still binds");
}

// ------------------------------------------------------------------------------ passkeys

#[tokio::test]
async fn register_a_passkey_then_reset_the_password_with_it_in_english() {
    passkey_register_then_reset(Locale::En).await;
}

#[tokio::test]
async fn register_a_passkey_then_reset_the_password_with_it_in_dutch() {
    passkey_register_then_reset(Locale::Nl).await;
}

/// The app served at `http://localhost:PORT`, its `server.public_url` naming that origin:
/// WebAuthn takes no IP address as relying party id.
async fn passkey_site() -> (TestApp, Site) {
    let (listener, base) = Site::localhost().await;
    let app = test_app(&format!(
        "[licence]\nazure_ad_premium = true\n[server]\npublic_url = \"{base}/\"\n{}",
        smtp_section()
    ))
    .await;
    let site = Site::serve_on(listener, base, app.router.clone());
    (app, site)
}

/// Signs `user` in on /register and adds a passkey named `name` with the browser's virtual
/// authenticator; the overview confirms it and lists it.
async fn add_passkey_on_the_page(browser: &mut Browser, user: &TestUser, name: &str) {
    browser.open("passkey-register", "/register").await;
    browser.check("signin").await;
    browser.fill("#username", &user.sam).await;
    browser.fill("#password", &user.password).await;
    browser.submit("form[action='/register'] button").await;
    browser.check("overview").await;
    browser.assert_text("status_passkey_no").await;
    assert_eq!(
        browser.prop("form[data-passkey='create']", "hidden").await,
        "false",
        "shown where the browser has WebAuthn"
    );
    browser.fill("#passkey-name", name).await;
    browser.submit("form[data-passkey='create'] button").await;
    assert_eq!(
        browser.path().await,
        "/register",
        "a redirect to the overview"
    );
    browser.check("passkey-added").await;
    browser.assert_text("notice_passkey_added").await;
    assert_eq!(browser.text(".passkeys li span").await, name);
}

/// A passkey added on /register with Chromium's virtual authenticator, then a reset in a fresh
/// visit with it: the new password binds over LDAPS and the old one fails.
async fn passkey_register_then_reset(locale: Locale) {
    let (app, site) = passkey_site().await;
    let user = create_user("brk").await;
    let mut browser = Browser::launch(&site, locale).await;
    let authenticator = browser.add_authenticator().await;

    add_passkey_on_the_page(&mut browser, &user, "Work phone").await;
    let held = browser.authenticator_credentials(&authenticator).await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["rpId"], "localhost");
    let token = sign_in(&app, &user).await;
    let enrollment = app.get("/api/v1/enrollment", Some(&token)).await.json();
    assert_eq!(
        enrollment["passkeys"][0]["name"],
        json!("Work phone"),
        "{enrollment}"
    );
    let notice = wait_for_mail(&format!("{}@mail.test", user.sam)).await;
    assert!(notice.code_in().is_none(), "the owner is told, no code");

    browser.forget_cookies().await;
    browser.open("passkey-reset", "/reset").await;
    browser.check("start").await;
    browser.fill("#username", &user.sam).await;
    browser.submit("form[action='/reset'] button").await;
    browser.check("verify").await;
    browser.submit("form[data-passkey='get'] button").await;
    assert_eq!(browser.path().await, "/reset/password");
    browser.check("password").await;
    let new_password = format!("Passkey-{}-Pw7!", locale.tag());
    browser.fill("#new-password", &new_password).await;
    browser.fill("#confirm-password", &new_password).await;
    browser
        .submit("form[action='/reset/password'] button[type='submit']")
        .await;
    browser.check("done").await;
    browser.assert_text("reset_done_title").await;
    browser.remove_authenticator(&authenticator).await;

    bind(&user.dn, &new_password)
        .await
        .expect("the new password binds");
    let (rc, _) = bind(&user.dn, &user.password)
        .await
        .expect_err("the old password fails");
    assert_eq!(rc, 49);
}

/// A passkey added on the page is removed there: the overview says so, and the user has none.
#[tokio::test]
async fn a_passkey_is_removed_on_the_registration_page() {
    let (app, site) = passkey_site().await;
    let user = create_user("brkr").await;
    let mut browser = Browser::launch(&site, Locale::En).await;
    let authenticator = browser.add_authenticator().await;
    add_passkey_on_the_page(&mut browser, &user, "Old laptop").await;

    browser
        .submit("form[action='/register/passkey/remove'] button")
        .await;
    browser.check("passkey-removed").await;
    browser.assert_text("notice_passkey_removed").await;
    browser.assert_text("status_passkey_no").await;
    browser
        .assert_absent(&["form[action='/register/passkey/remove']"])
        .await;
    browser.remove_authenticator(&authenticator).await;
    let token = sign_in(&app, &user).await;
    let enrollment = app.get("/api/v1/enrollment", Some(&token)).await.json();
    assert_eq!(enrollment["passkeys"], json!([]), "{enrollment}");
}

/// Where `server.public_url` names an IP address, passkeys are off: neither the registration
/// overview nor the reset's methods page shows anything about them.
#[tokio::test]
async fn nothing_about_passkeys_shows_where_the_public_url_is_an_ip_address() {
    let (listener, base) = Site::localhost().await;
    let port = listener.local_addr().unwrap().port();
    let app = test_app(&format!(
        "[licence]\nazure_ad_premium = true\n[server]\npublic_url = \"http://127.0.0.1:{port}/\"\n{}",
        smtp_section()
    ))
    .await;
    let site = Site::serve_on(listener, base, app.router.clone());
    let user = create_user("brko").await;
    let token = sign_in(&app, &user).await;
    register_email(&app, &token).await;
    let mut browser = Browser::launch(&site, Locale::En).await;
    let passkey_parts = ["[data-passkey-section]", "form[data-passkey]"];

    browser.open("passkeys-off", "/register").await;
    browser.fill("#username", &user.sam).await;
    browser.fill("#password", &user.password).await;
    browser.submit("form[action='/register'] button").await;
    browser.check("overview").await;
    browser.assert_absent(&passkey_parts).await;
    browser.forget_cookies().await;
    browser.open("passkeys-off", "/reset").await;
    browser.fill("#username", &user.sam).await;
    browser.submit("form[action='/reset'] button").await;
    browser.check("verify").await;
    browser.assert_absent(&passkey_parts).await;
}

// ------------------------------------------------------------------ the passkey script alone

/// What the page of [`script_page`] was sent: the options requests' and the forms' fields.
#[derive(Clone, Default)]
struct Posted(Arc<Mutex<Vec<Post>>>);

/// Where a post went ("options create", "form done") and its fields.
type Post = (String, HashMap<String, String>);

impl Posted {
    fn take(&self) -> Vec<Post> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

const SCRIPT_USER_ID: &[u8] = b"a user handle, not a GUID";
const SCRIPT_CHALLENGE: &[u8] = b"a challenge of thirty-two bytes!";

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A page of the test's own with one passkey form of `kind` ("create" or "get"), served with the
/// service's own script and Content-Security-Policy, whose options endpoint answers options of
/// the shape webauthn-rs writes. `allow` is the credential id the "get" options allow.
fn script_page(
    script: String,
    csp: String,
    posted: Posted,
    allow: Arc<Mutex<String>>,
) -> axum::Router {
    use axum::extract::{Form, Path as UrlPath};
    use axum::response::IntoResponse;
    use axum::routing::{get, post};
    let page = move |UrlPath(kind): UrlPath<String>| {
        let csp = csp.clone();
        async move {
            let html = format!(
                r#"<!doctype html><html lang="en"><head><title>Passkey</title>
<script src="/static/passkey.js" defer></script></head><body><main><h1>Passkey</h1>
<div data-passkey-section hidden>
<form method="post" action="/done" data-passkey="{kind}" data-passkey-options="/options/{kind}"
 data-passkey-status="status" data-passkey-cancelled="Cancelled." data-passkey-failed="Failed.">
<input type="hidden" name="csrf" value="t0k3n">
<input type="hidden" name="credential" value="">
<label for="name">Name</label><input id="name" name="name" value="Work phone">
<button type="submit">Go</button></form>
<p id="status" role="alert"></p></div></main></body></html>"#
            );
            (
                [(axum::http::header::CONTENT_SECURITY_POLICY, csp)],
                axum::response::Html(html),
            )
        }
    };
    let record = |posted: Posted, what: &'static str| {
        move |UrlPath(kind): UrlPath<String>, Form(fields): Form<HashMap<String, String>>| {
            let posted = posted.clone();
            async move {
                posted
                    .0
                    .lock()
                    .unwrap()
                    .push((format!("{what} {kind}"), fields));
            }
        }
    };
    let options = {
        let record = record(posted.clone(), "options");
        move |kind: UrlPath<String>, fields| {
            let allow = allow.lock().unwrap().clone();
            async move {
                let create = kind.0 == "create";
                record(UrlPath(kind.0.clone()), fields).await;
                let public_key = if create {
                    json!({
                        "rp": {"id": "localhost", "name": "sspr-bridge"},
                        "user": {"id": b64url(SCRIPT_USER_ID), "name": "jdoe", "displayName": "J. Doe"},
                        "challenge": b64url(SCRIPT_CHALLENGE),
                        "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
                        "timeout": 60000,
                        "excludeCredentials": [],
                        "authenticatorSelection": {"requireResidentKey": false, "userVerification": "required"},
                        "attestation": "none",
                    })
                } else {
                    json!({
                        "challenge": b64url(SCRIPT_CHALLENGE),
                        "timeout": 5000,
                        "rpId": "localhost",
                        "allowCredentials": [{"type": "public-key", "id": allow}],
                        "userVerification": "required",
                    })
                };
                axum::Json(json!({ "publicKey": public_key }))
            }
        }
    };
    let done = record(posted, "form");
    axum::Router::new()
        .route("/page/{kind}", get(page))
        .route("/options/{kind}", post(options))
        .route(
            "/done",
            post(move |fields| done(UrlPath("done".to_owned()), fields)),
        )
        .route(
            "/static/passkey.js",
            get(move || async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "text/javascript")],
                    script,
                )
                    .into_response()
            }),
        )
}

/// static/passkey.js on its own, under the service's CSP, with a virtual authenticator: it
/// shows its form only where WebAuthn exists, posts the form's fields for options, runs both
/// ceremonies with them, and posts the result in the shape of `PublicKeyCredential.toJSON()`,
/// also where the browser lacks `toJSON`; a failed ceremony is told in the live region.
#[tokio::test]
async fn the_passkey_script_runs_both_ceremonies_with_a_virtual_authenticator() {
    let app = test_app(&config()).await;
    let script = app.get("/static/passkey.js", None).await;
    assert_eq!(script.status, axum::http::StatusCode::OK);
    let home = app.get("/", None).await;
    let csp = home.headers[axum::http::header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    let posted = Posted::default();
    let allow = Arc::new(Mutex::new(String::new()));
    let (listener, base) = Site::localhost().await;
    let site = Site::serve_on(
        listener,
        base.clone(),
        script_page(script.body, csp, posted.clone(), allow.clone()),
    );
    let mut browser = Browser::launch(&site, Locale::En).await;
    let authenticator = browser.add_authenticator().await;

    browser.open("passkey-script", "/page/create").await;
    assert_eq!(
        browser.prop("[data-passkey-section]", "hidden").await,
        "false"
    );
    browser.submit("form[data-passkey] button").await;
    let sent = posted.take();
    assert_eq!(sent.len(), 2, "options, then the form: {:?}", sent);
    assert_eq!(sent[0].0, "options create");
    assert_eq!(
        (
            sent[0].1.get("csrf"),
            sent[0].1.get("name"),
            sent[0].1.get("credential")
        ),
        (
            Some(&"t0k3n".to_owned()),
            Some(&"Work phone".to_owned()),
            None
        ),
        "the form's fields, without the credential"
    );
    let form = &sent[1].1;
    assert_eq!(form["csrf"], "t0k3n");
    let created: Value = serde_json::from_str(&form["credential"]).unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["rawId"], json!(id), "{created}");
    assert_eq!(created["type"], "public-key");
    assert!(
        created["response"]["attestationObject"].is_string(),
        "{created}"
    );
    assert!(created["response"]["transports"].is_array(), "{created}");
    let created_data = client_data(&created);
    assert_eq!(created_data["type"], "webauthn.create");
    assert_eq!(created_data["challenge"], json!(b64url(SCRIPT_CHALLENGE)));
    assert_eq!(created_data["origin"], json!(base));
    let held = browser.authenticator_credentials(&authenticator).await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["credentialId"], json!(id));
    assert_eq!(held[0]["rpId"], "localhost");

    // The same, built by hand, where a browser has no toJSON.
    *allow.lock().unwrap() = id.clone();
    browser.open("passkey-script", "/page/get").await;
    browser
        .js("delete PublicKeyCredential.prototype.toJSON", vec![])
        .await;
    browser.submit("form[data-passkey] button").await;
    let sent = posted.take();
    assert_eq!(sent.len(), 2, "options, then the form: {:?}", sent);
    let asserted: Value = serde_json::from_str(&sent[1].1["credential"]).unwrap();
    assert_eq!(
        (&asserted["id"], &asserted["rawId"]),
        (&json!(id), &json!(id))
    );
    assert_eq!(asserted["type"], "public-key");
    // Null: a credential made as webauthn-rs asks (no resident key) carries no user handle.
    assert!(
        [json!(null), json!(b64url(SCRIPT_USER_ID))].contains(&asserted["response"]["userHandle"])
            && asserted["response"].get("userHandle").is_some(),
        "{asserted}"
    );
    for field in ["authenticatorData", "signature"] {
        assert!(
            asserted["response"][field].is_string(),
            "{field}: {asserted}"
        );
    }
    assert!(asserted["clientExtensionResults"].is_object(), "{asserted}");
    let asserted_data = client_data(&asserted);
    assert_eq!(asserted_data["type"], "webauthn.get");
    assert_eq!(asserted_data["challenge"], json!(b64url(SCRIPT_CHALLENGE)));

    // Without the authenticator the ceremony fails: said in the live region, nothing posted.
    browser.remove_authenticator(&authenticator).await;
    browser.open("passkey-script", "/page/get").await;
    browser.click("form[data-passkey] button").await;
    let told = wait_for_text(&browser, "#status").await;
    assert!(told == "Cancelled." || told == "Failed.", "{told}");
    assert_eq!(browser.path().await, "/page/get");
    let sent = posted.take();
    assert_eq!(sent.len(), 1, "only the options: {:?}", sent);

    // Without scripts nothing about passkeys shows.
    browser
        .client
        .issue_cmd(Cdp(
            "Emulation.setScriptExecutionDisabled",
            json!({"value": true}),
        ))
        .await
        .unwrap();
    browser.open("passkey-script", "/page/create").await;
    assert_eq!(
        browser.attr("[data-passkey-section]", "hidden").await,
        "true"
    );
}

/// The `clientDataJSON` of a credential in `toJSON()` shape, decoded.
fn client_data(credential: &Value) -> Value {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(credential["response"]["clientDataJSON"].as_str().unwrap())
        .unwrap();
    serde_json::from_slice(&raw).unwrap()
}

/// The text of `css` once it has any, within [`PATIENCE`].
async fn wait_for_text(browser: &Browser, css: &str) -> String {
    let started = Instant::now();
    loop {
        let text = browser.text(css).await;
        if !text.is_empty() {
            return text;
        }
        assert!(started.elapsed() < PATIENCE, "{css} stays empty");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------- the app served

/// The app on a loopback TCP port, as `serve` runs it (with the peer address as connect info).
struct Site {
    base: String,
    server: tokio::task::JoinHandle<()>,
}

impl Site {
    async fn serve(app: &TestApp) -> Site {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        Site::serve_on(listener, base, app.router.clone())
    }

    /// A loopback port to be served as `http://localhost:PORT` (that base), taken before the
    /// app is built so its `server.public_url` can name it: WebAuthn takes no IP address as
    /// relying party id, and localhost is a secure context over plain http.
    async fn localhost() -> (tokio::net::TcpListener, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://localhost:{}", listener.local_addr().unwrap().port());
        (listener, base)
    }

    fn serve_on(listener: tokio::net::TcpListener, base: String, router: axum::Router) -> Site {
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        let server = tokio::spawn(async move {
            axum::serve(listener, service).await.expect("serve");
        });
        Site { base, server }
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.server.abort();
    }
}

// ----------------------------------------------------------------------------- the browser

/// chromedriver in a process group of its own, with the Chromium it starts: the whole group is
/// killed on drop, also when a test panics.
struct Driver {
    child: Child,
    port: u16,
    /// Chromium's profile; removed after the processes are gone.
    profile: tempfile::TempDir,
}

impl Driver {
    fn start() -> Driver {
        for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: the browser tests need the Debian packages chromium and \
                 chromium-driver (apt-get install chromium chromium-driver; scripts/test \
                 installs them); {package} provides {path}"
            );
        }
        let profile = tempfile::tempdir().unwrap();
        let mut child = std::os::unix::process::CommandExt::process_group(
            Command::new(CHROMEDRIVER)
                .arg("--port=0")
                .arg(format!(
                    "--log-path={}",
                    profile.path().join("chromedriver.log").display()
                ))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
            0,
        )
        .spawn()
        .unwrap_or_else(|e| panic!("start {CHROMEDRIVER}: {e}"));
        // chromedriver announces the port it picked; the rest of its output is drained so that
        // it never blocks on a full pipe.
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if let Some(port) = line
                    .trim()
                    .strip_prefix("ChromeDriver was started successfully on port ")
                {
                    let _ = tx.send(port.trim_end_matches('.').parse::<u16>());
                }
            }
        });
        let port = match rx.recv_timeout(PATIENCE) {
            Ok(Ok(port)) => port,
            other => {
                let _ = child.kill();
                panic!("chromedriver did not announce its port: {other:?}");
            }
        };
        Driver {
            child,
            port,
            profile,
        }
    }

    fn capabilities(&self, locale: Locale) -> Capabilities {
        let accept_language = match locale {
            Locale::En => "en-GB,en",
            Locale::Nl => "nl-NL,nl",
            Locale::De => "de-DE,de",
            Locale::Fr => "fr-FR,fr",
        };
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            // Containers often give /dev/shm 64 MB, too little for Chromium.
            "--disable-dev-shm-usage",
        ]
        .map(String::from)
        .into_iter()
        .chain([
            format!(
                "--user-data-dir={}",
                self.profile.path().join("chromium").display()
            ),
            format!("--lang={}", locale.tag()),
            format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
        ])
        .collect::<Vec<_>>();
        let capabilities = json!({
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": args,
                "prefs": {
                    "intl": {"accept_languages": accept_language},
                    // No password manager: its prompts and leak checks are not the pages'.
                    "credentials_enable_service": false,
                    "profile": {
                        "password_manager_enabled": false,
                        "password_manager_leak_detection": false,
                    },
                },
            },
        });
        capabilities.as_object().unwrap().clone()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group's id is chromedriver's pid (process_group(0)); Chromium runs in it too.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Chromium session on [`Site`], in one language, naming its screenshots after the flow.
struct Browser {
    client: Client,
    base: String,
    locale: Locale,
    texts: HashMap<String, String>,
    /// axe-core's source, injected into every page checked.
    axe: String,
    flow: &'static str,
    pages: u32,
    /// Declared last: dropped (killed) after the client.
    _driver: Driver,
}

impl Browser {
    async fn launch(site: &Site, locale: Locale) -> Browser {
        let axe = axe_source();
        let driver = Driver::start();
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(driver.capabilities(locale))
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .unwrap_or_else(|e| panic!("a Chromium session through chromedriver: {e}"));
        // A headless window may not count as focused yet when the first key arrives, and then
        // `:focus` styles do not apply; the checks need them.
        client
            .issue_cmd(Cdp(
                "Emulation.setFocusEmulationEnabled",
                json!({"enabled": true}),
            ))
            .await
            .unwrap();
        Browser {
            client,
            base: site.base.clone(),
            locale,
            texts: sspr_bridge::i18n::catalog(locale)
                .page
                .clone()
                .into_iter()
                .collect(),
            axe,
            flow: "",
            pages: 0,
            _driver: driver,
        }
    }

    /// The catalog text `key` in the browser's language.
    fn t(&self, key: &str) -> &str {
        self.texts
            .get(key)
            .unwrap_or_else(|| panic!("no text {key}"))
    }

    /// Starts `flow` (for the screenshots' names) by opening `path`.
    async fn open(&mut self, flow: &'static str, path: &str) {
        self.flow = flow;
        self.pages = 0;
        let dir = self.screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(&format!("{flow}-"))
            {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
        self.wait_for_load().await;
    }

    /// The path of the page shown.
    async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_owned()
    }

    /// The browser's Reload: the page's request again.
    async fn reload(&self) {
        self.js("document.documentElement.dataset.leaving = '1'", vec![])
            .await;
        self.client.refresh().await.unwrap();
        self.wait_for_load().await;
    }

    /// The browser's Back button.
    async fn back(&self) {
        self.js("document.documentElement.dataset.leaving = '1'", vec![])
            .await;
        self.client.back().await.unwrap();
        self.wait_for_load().await;
    }

    /// The browser's Forward button.
    async fn forward(&self) {
        self.js("document.documentElement.dataset.leaving = '1'", vec![])
            .await;
        self.client.forward().await.unwrap();
        self.wait_for_load().await;
    }

    async fn forget_cookies(&self) {
        self.client.delete_all_cookies().await.unwrap();
    }

    async fn element(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on {}: {e}", self.flow))
    }

    async fn fill(&self, css: &str, value: &str) {
        let field = self.element(css).await;
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    async fn text(&self, css: &str) -> String {
        self.element(css).await.text().await.unwrap()
    }

    async fn attr(&self, css: &str, name: &str) -> String {
        self.element(css)
            .await
            .attr(name)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{css} has no {name}"))
    }

    async fn prop(&self, css: &str, name: &str) -> String {
        self.element(css)
            .await
            .prop(name)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{css} has no {name}"))
    }

    /// Clicks the button and waits until the page it leads to has loaded.
    async fn submit(&self, button: &str) {
        let button = self.element(button).await;
        self.js("document.documentElement.dataset.leaving = '1'", vec![])
            .await;
        button.click().await.unwrap();
        self.wait_for_load().await;
    }

    async fn wait_for_load(&self) {
        let started = Instant::now();
        loop {
            // Fails while the next document is being committed: just ask again.
            let loaded = self
                .client
                .execute(
                    "return document.readyState === 'complete' \
                     && document.documentElement.dataset.leaving === undefined",
                    vec![],
                )
                .await;
            if matches!(loaded, Ok(Value::Bool(true))) {
                return;
            }
            if started.elapsed() > PATIENCE {
                let url = self.client.current_url().await;
                panic!(
                    "{}: no page loaded within {PATIENCE:?} after page {} ({url:?}): {loaded:?}",
                    self.flow, self.pages
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Asserts that the page shows the catalog text `key` (placeholders cut off).
    async fn assert_text(&self, key: &str) {
        let wanted = self.t(key).split('{').next().unwrap().trim().to_owned();
        let shown = self.js("return document.body.innerText", vec![]).await;
        assert!(
            shown.as_str().unwrap().contains(&wanted),
            "{key} ({wanted:?}) not on the page: {shown}"
        );
    }

    /// Asserts that none of the elements matching `css` is on the page.
    async fn assert_absent(&self, css: &[&str]) {
        for selector in css {
            let found = self
                .js(
                    "return [...document.querySelectorAll(arguments[0])].map(e => e.outerHTML.slice(0, 200))",
                    vec![json!(selector)],
                )
                .await;
            assert_eq!(found, json!([]), "{}: {selector} is offered", self.flow);
        }
    }

    /// Asserts that the error `key` is shown in a live region, so a screen reader announces it,
    /// and that the page's title starts with "Error:".
    async fn assert_error_announced(&self, key: &str) {
        let wanted = self.t(key).split('{').next().unwrap().trim().to_owned();
        let announced = self.js(ANNOUNCED, vec![json!(wanted)]).await;
        assert_eq!(
            announced,
            json!(true),
            "{key} ({wanted:?}) not in a visible role=alert / aria-live region"
        );
        // A live region present at load is not announced by every screen reader; the title is.
        let title = self.js("return document.title", vec![]).await;
        let prefix = self.t("error_title_prefix");
        assert!(
            title.as_str().unwrap().starts_with(prefix),
            "the title says there was an error: {title}"
        );
    }

    fn screenshot_dir(&self) -> PathBuf {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
            .join("browser-screenshots")
            .join(self.locale.tag())
    }

    /// A full-page PNG of what the browser shows now.
    async fn screenshot(&self, name: &str) {
        // At least the window's width: capturing beyond the viewport drops the scrollbar.
        let size = self
            .js(
                "const d = document.documentElement; \
                 return [Math.max(d.scrollWidth, window.innerWidth), d.scrollHeight]",
                vec![],
            )
            .await;
        let shot = self
            .client
            .issue_cmd(Cdp(
                "Page.captureScreenshot",
                json!({
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1},
                }),
            ))
            .await
            .unwrap();
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .unwrap();
        std::fs::write(self.screenshot_dir().join(name), png).unwrap();
    }

    /// axe-core's WCAG 2.1 A and AA violations on the page as shown with `prefers-color-scheme:
    /// scheme`: rule, impact, and where.
    async fn axe(&self, scheme: &str) -> Value {
        self.client
            .issue_cmd(Cdp(
                "Emulation.setEmulatedMedia",
                json!({"features": [{"name": "prefers-color-scheme", "value": scheme}]}),
            ))
            .await
            .unwrap();
        let injected = self
            .js("return typeof window.axe === 'object'", vec![])
            .await;
        if injected != json!(true) {
            self.js(&self.axe, vec![]).await;
        }
        let violations = self
            .client
            .execute_async(AXE_RUN, vec![json!(AXE_TAGS)])
            .await
            .unwrap_or_else(|e| panic!("{}: axe-core did not run: {e}", self.flow));
        self.client
            .issue_cmd(Cdp("Emulation.setEmulatedMedia", json!({"features": []})))
            .await
            .unwrap();
        violations
    }

    /// Adds a virtual authenticator (see [`WebAuthn::Add`]); its id.
    async fn add_authenticator(&self) -> String {
        let id = self
            .client
            .issue_cmd(WebAuthn::Add)
            .await
            .unwrap_or_else(|e| panic!("chromedriver adds no virtual authenticator: {e}"));
        id.as_str().expect("an authenticator id").to_owned()
    }

    async fn remove_authenticator(&self, id: &str) {
        self.client
            .issue_cmd(WebAuthn::Remove(id.to_owned()))
            .await
            .unwrap();
    }

    /// The credentials the virtual authenticator `id` holds, as chromedriver tells them
    /// (`credentialId` base64url, `rpId`, `signCount`, …).
    async fn authenticator_credentials(&self, id: &str) -> Vec<Value> {
        let held = self
            .client
            .issue_cmd(WebAuthn::Credentials(id.to_owned()))
            .await
            .unwrap();
        held.as_array().expect("a list of credentials").clone()
    }

    /// Clicks the button without waiting for another page: for a form whose script may keep
    /// the page.
    async fn click(&self, button: &str) {
        self.element(button).await.click().await.unwrap();
    }

    /// Screenshots the page and asserts the accessibility basics on it (see the module docs).
    async fn check(&mut self, page: &str) {
        self.pages += 1;
        let name = format!("{}-{:02}-{page}", self.flow, self.pages);
        let lang = self
            .js("return document.documentElement.lang", vec![])
            .await;
        assert_eq!(
            lang,
            json!(self.locale.tag()),
            "{name}: the page's language"
        );
        self.screenshot(&format!("{name}.png")).await;

        let problems = self.js(STATIC_CHECKS, vec![]).await;
        assert_eq!(problems, json!([]), "{name}: accessibility problems");
        for scheme in ["light", "dark"] {
            let violations = self.axe(scheme).await;
            assert_eq!(
                violations,
                json!([]),
                "{name}: axe-core finds WCAG 2.1 AA violations in the {scheme} colour scheme"
            );
        }

        // Tab through the page from its start; every control must get the focus, visibly, in
        // the order of the page.
        let stops = self.js(MARK_TAB_STOPS, vec![]).await.as_u64().unwrap();
        let mut tabs = KeyActions::new("keyboard".into());
        for _ in 0..stops + 2 {
            tabs = tabs
                .then(KeyAction::Down {
                    value: Key::Tab.into(),
                })
                .then(KeyAction::Up {
                    value: Key::Tab.into(),
                });
        }
        self.client.perform_actions(tabs).await.unwrap();
        self.client.release_actions().await.unwrap();
        let focus = self.js(FOCUS_PROBLEMS, vec![]).await;
        assert_eq!(focus, json!([]), "{name}: keyboard problems");

        // Readable on a phone and at 320 px: nothing wider than the window.
        for width in [PHONE, NARROW] {
            self.client.set_window_size(width, DESKTOP.1).await.unwrap();
            let fit = self.js(FITS, vec![]).await;
            assert_eq!(
                fit["width"],
                json!(width),
                "{name}: the window is {width} px wide"
            );
            assert_eq!(
                fit["scrolls"],
                json!(false),
                "{name}: scrolls sideways at {width} px: {fit}"
            );
            self.screenshot(&format!("{name}-{width}px.png")).await;
        }
        self.client
            .set_window_size(DESKTOP.0, DESKTOP.1)
            .await
            .unwrap();
    }
}

/// A Chrome DevTools command through chromedriver: full-page screenshots, focus emulation.
#[derive(Debug)]
struct Cdp(&'static str, Value);

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.expect("a session")
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (Method, Option<String>) {
        let body = json!({"cmd": self.0, "params": self.1});
        (Method::POST, Some(body.to_string()))
    }
}

/// WebDriver's WebAuthn commands (W3C WebAuthn Level 2, §11), which chromedriver implements
/// with Chromium's virtual authenticators: a passkey held in the test, nothing plugged in.
#[derive(Debug)]
enum WebAuthn {
    /// A platform authenticator that keeps discoverable credentials and verifies its user
    /// (as a phone's or a laptop's passkey store does), so ceremonies that require user
    /// verification succeed without a prompt.
    Add,
    Remove(String),
    Credentials(String),
}

impl WebDriverCompatibleCommand for WebAuthn {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        let session = session.expect("a session");
        base.join(&match self {
            WebAuthn::Add => format!("session/{session}/webauthn/authenticator"),
            WebAuthn::Remove(id) => format!("session/{session}/webauthn/authenticator/{id}"),
            WebAuthn::Credentials(id) => {
                format!("session/{session}/webauthn/authenticator/{id}/credentials")
            }
        })
    }

    fn method_and_body(&self, _: &url::Url) -> (Method, Option<String>) {
        match self {
            WebAuthn::Add => {
                let options = json!({
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": true,
                    "hasUserVerification": true,
                    "isUserVerified": true,
                });
                (Method::POST, Some(options.to_string()))
            }
            WebAuthn::Remove(_) => (Method::DELETE, None),
            WebAuthn::Credentials(_) => (Method::GET, None),
        }
    }
}

/// Page-wide checks: every visible field, button and link has an accessible name (label for,
/// wrapping label, aria-label, aria-labelledby; text for buttons and links), images have alt
/// text, ids are unique (labels point at them), one h1, a title. Returns the problems found.
const STATIC_CHECKS: &str = r#"
const visible = el => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
const text = el => (el ? el.textContent.replace(/\s+/g, ' ').trim() : '');
const tag = el => el.outerHTML.slice(0, 200);
const ariaName = el => (el.getAttribute('aria-label') || '').trim()
  || (el.getAttribute('aria-labelledby') || '').split(/\s+/).filter(Boolean)
       .map(id => text(document.getElementById(id))).join('');
const problems = [];
for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
  if (!visible(el)) continue;
  const byFor = el.id && [...document.querySelectorAll('label')].some(l => l.htmlFor === el.id && text(l));
  if (!(byFor || text(el.closest('label')) || ariaName(el))) problems.push('no accessible name: ' + tag(el));
}
for (const el of document.querySelectorAll('button, a[href]')) {
  if (visible(el) && !text(el) && !ariaName(el)) problems.push('no accessible name: ' + tag(el));
}
for (const img of document.querySelectorAll('img:not([alt])')) problems.push('image without alt: ' + tag(img));
const ids = new Map();
for (const el of document.querySelectorAll('[id]')) ids.set(el.id, (ids.get(el.id) || 0) + 1);
for (const [id, n] of ids) if (n > 1) problems.push('id used ' + n + ' times: ' + id);
const h1 = document.querySelectorAll('h1').length;
if (h1 !== 1) problems.push(h1 + ' h1 headings');
if (!document.title.trim()) problems.push('no title');
return problems;
"#;

/// Numbers the page's tab stops in page order (a radio group is one stop) and starts a log of
/// focus changes. Returns the number of stops. Run on a freshly loaded page, where nothing has
/// had the focus yet, so the first Tab goes to the first stop.
const MARK_TAB_STOPS: &str = r#"
const visible = el => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
// Controls count whatever their tabindex (-1 takes one out of keyboard reach); anything else
// only when made focusable.
const controls = [...document.querySelectorAll('a[href], button, input:not([type=hidden]), select, textarea, [tabindex]')]
  .filter(el => visible(el) && !el.disabled
    && (el.matches('a[href], button, input, select, textarea') || el.tabIndex >= 0));
const groups = new Map();
let stops = 0;
for (const el of controls) {
  const group = el.type === 'radio' && el.name ? el.name : null;
  if (group && groups.has(group)) { el.dataset.tabStop = groups.get(group); continue; }
  el.dataset.tabStop = stops;
  if (group) groups.set(group, stops);
  stops += 1;
}
// WCAG 1.4.11: a focus outline must contrast 3:1 with the background around it.
const rgb = color => (color.match(/[\d.]+/g) || []).map(Number);
const luminance = ([r, g, b]) => {
  const linear = v => (v /= 255) <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
  return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b);
};
const contrast = (a, b) => {
  const [light, dark] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (light + 0.05) / (dark + 0.05);
};
const backdrop = el => {
  for (let node = el.parentElement; node; node = node.parentElement) {
    const color = rgb(getComputedStyle(node).backgroundColor);
    if (color.length === 3 || color[3] > 0) return color;
  }
  return [255, 255, 255];
};
window.__focusLog = [];
document.addEventListener('focusin', event => {
  const el = event.target;
  const style = getComputedStyle(el);
  const outline = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0;
  const ratio = outline ? contrast(rgb(style.outlineColor), backdrop(el)) : 0;
  window.__focusLog.push({
    stop: el.dataset.tabStop === undefined ? null : Number(el.dataset.tabStop),
    tag: el.outerHTML.slice(0, 200),
    visible: visible(el),
    ring: outline ? ratio >= 3 : style.boxShadow !== 'none',
    ratio: Math.round(ratio * 10) / 10,
    focused: el.matches(':focus'),
  });
});
window.__tabStops = stops;
return stops;
"#;

/// What the Tab presses revealed: stops never reached, reached out of page order, focused
/// without a visible focus ring, or focus on something invisible.
const FOCUS_PROBLEMS: &str = r#"
const log = window.__focusLog;
const problems = [];
const first = [];
for (const entry of log) {
  if (!entry.visible) problems.push('focus on an invisible element: ' + entry.tag);
  if (entry.stop === null) continue;
  if (!entry.ring) problems.push('no visible focus (outline contrast ' + entry.ratio + ':1): ' + entry.tag + (entry.focused ? '' : ' (:focus did not apply)'));
  if (!first.includes(entry.stop)) first.push(entry.stop);
}
for (let stop = 0; stop < window.__tabStops; stop++) {
  if (!first.includes(stop)) {
    const el = document.querySelector('[data-tab-stop="' + stop + '"]');
    problems.push('never reached with Tab: ' + el.outerHTML.slice(0, 200));
  }
}
if (first.some((stop, i) => i > 0 && stop < first[i - 1])) problems.push('focus order ' + first.join(',') + ' is not the page order');
document.activeElement && document.activeElement.blur();
return [...new Set(problems)];
"#;

/// The window's width, whether the page scrolls sideways in it, and (to say why) the elements
/// that reach past its right edge.
const FITS: &str = r#"
const page = document.documentElement;
const scrolls = page.scrollWidth > page.clientWidth;
const wider = scrolls
  ? [...document.body.querySelectorAll('*')]
      .filter(el => el.getBoundingClientRect().right > page.clientWidth)
      .map(el => el.outerHTML.slice(0, 120))
  : [];
return {width: window.innerWidth, scrollWidth: page.scrollWidth, clientWidth: page.clientWidth, scrolls, wider};
"#;

/// Runs axe-core on the document with the WCAG tags given; answers its violations, each with
/// the nodes it found them on and why, or the error it failed with.
const AXE_RUN: &str = r#"
const done = arguments[arguments.length - 1];
axe.run(document, {runOnly: {type: 'tag', values: arguments[0]}, resultTypes: ['violations']})
  .then(result => done(result.violations.map(v => ({
    rule: v.id,
    impact: v.impact,
    help: v.help,
    nodes: v.nodes.map(n => ({target: n.target.join(' '), html: n.html.slice(0, 200), why: n.failureSummary})),
  }))))
  .catch(error => done([{error: String(error)}]));
"#;

/// Adds what WCAG forbids to the page: text at 1.1:1 contrast, an image without alt text.
const BREAK_WCAG: &str = r#"
const text = document.createElement('p');
text.textContent = 'Hard to read';
text.style.color = '#eeeeee';
text.style.background = '#ffffff';
const image = document.createElement('img');
image.src = 'data:image/gif;base64,R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==';
(document.querySelector('main') || document.body).append(text, image);
"#;

/// Whether a visible `role="alert"` or `aria-live` region contains the text.
const ANNOUNCED: &str = r#"
const wanted = arguments[0];
return [...document.querySelectorAll('[role=alert], [aria-live]')]
  .filter(el => el.getAttribute('aria-live') !== 'off' && el.getClientRects().length > 0)
  .some(el => el.textContent.replace(/\s+/g, ' ').includes(wanted));
"#;

#[tokio::test]
async fn helpdesk_lists_and_admin_figures_in_english() {
    lists_and_admin(Locale::En).await;
}

#[tokio::test]
async fn helpdesk_lists_and_admin_figures_in_dutch() {
    lists_and_admin(Locale::Nl).await;
}

#[tokio::test]
async fn helpdesk_lists_and_admin_figures_in_german() {
    lists_and_admin(Locale::De).await;
}

#[tokio::test]
async fn helpdesk_lists_and_admin_figures_in_french() {
    lists_and_admin(Locale::Fr).await;
}

/// An operator who is also in `admin.group_dn` opens the helpdesk's lists, with a locked-out
/// and a must-change account of the scope group on them, and the rollout figures.
async fn lists_and_admin(locale: Locale) {
    let admins = create_group(&unique_name("bradm")).await;
    let scope = create_group(&unique_name("brscope")).await;
    let locked = create_user("brlock").await;
    let must_change = create_user("brmust").await;
    for user in [&locked, &must_change] {
        add_member(&scope, &user.dn).await;
    }
    lock_out(&locked).await;
    set_attr(&must_change.dn, "pwdLastSet", "0").await;
    let desk = desk(&format!(
        "[server]\npublic_url = {PUBLIC_URL:?}\n[admin]\ngroup_dn = {admins:?}\n\
         [policy]\nscope = \"group\"\ngroup_dn = {scope:?}"
    ))
    .await;
    add_member(&admins, &desk.operator.dn).await;
    let site = Site::serve(&desk.app).await;
    let mut browser = Browser::launch(&site, locale).await;

    browser.open("lists", "/helpdesk").await;
    browser.fill("#username", &desk.operator.sam).await;
    browser.fill("#password", &desk.operator.password).await;
    browser
        .fill("#code", &desk.authenticator.code().await)
        .await;
    browser.submit("form[action='/helpdesk'] button").await;
    browser.open("lists", "/helpdesk/lists").await;
    browser.check("lists").await;
    browser.assert_text("helpdesk_lists_unlock").await;
    browser.assert_text("helpdesk_lists_must_change").await;

    browser.open("admin", "/admin").await;
    browser.check("admin").await;
    browser.assert_text("admin_in_scope").await;
}
