//! The helpdesk page end to end, as an operator's browser without JavaScript uses it, against the
//! real Samba DC and SMTP server: sign in as a member of a nested helpdesk group, find a caller,
//! verify them, confirm an action.

use std::time::Duration;

use axum::http::{StatusCode, header};
use sspr_bridge::domain::store::AuditLog;
use sspr_bridge::domain::totp;

use crate::client::{Answer, test_app};
use crate::harness::{add_member, bind, create_group, create_user, read_attr, unique_name};
use crate::helpdesk::{Authenticator, Desk, caller_with_totp, desk};
use crate::mail::{assert_no_mail, wait_for_mail};
use crate::pages::{Browser, alert, assert_page, attr_of_tag, csrf_field, unescape};
use crate::selfservice::{register_email, settle_totp_step, sign_in};

/// Signs in on `/helpdesk` as `user`; returns the answer.
/// Signs in on `/helpdesk` as `user` with an authenticator `code`; returns the answer.
async fn sign_in_as(browser: &mut Browser<'_>, login: &str, password: &str, code: &str) -> Answer {
    let form = browser.get("/helpdesk").await;
    assert_page(&form, StatusCode::OK, "autocomplete=\"current-password\"");
    assert_page(&form, StatusCode::OK, "autocomplete=\"one-time-code\"");
    browser
        .submit(
            &form,
            "/helpdesk",
            &[("username", login), ("password", password), ("code", code)],
        )
        .await
}

/// Signs `desk`'s operator in at `/helpdesk` with the operator's authenticator code; the search
/// page it lands on.
pub(crate) async fn operator_signs_in<'a>(desk: &'a Desk) -> (Browser<'a>, Answer) {
    let mut browser = Browser::new(&desk.app);
    let code = desk.authenticator.code().await;
    let search = sign_in_as(
        &mut browser,
        &desk.operator.sam,
        &desk.operator.password,
        &code,
    )
    .await;
    assert_eq!(browser.redirected.as_deref(), Some("/helpdesk"));
    assert_page(&search, StatusCode::OK, "Find a user");
    (browser, search)
}

async fn find(browser: &mut Browser<'_>, page: &Answer, id: &str) -> Answer {
    let card = browser.submit(page, "/helpdesk/user", &[("id", id)]).await;
    assert_eq!(browser.redirected.as_deref(), Some("/helpdesk/user"));
    assert_eq!(card.status, StatusCode::OK, "{}", card.body);
    card
}

/// The text of the card's fact (`<dd id>`), tags removed.
fn fact(html: &str, id: &str) -> String {
    let at = html
        .find(&format!("<dd id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no #{id}: {html}"));
    let dd = &html[at..at + html[at..].find("</dd>").unwrap()];
    let mut text = String::new();
    for piece in dd.split('<').skip(1) {
        text.push_str(piece.split_once('>').map_or("", |(_, t)| t));
    }
    unescape(&text)
}

#[tokio::test]
async fn verified_by_totp_an_operator_resets_and_reads_the_temporary_password_once() {
    let desk = desk("").await;
    let (caller, secret) = caller_with_totp(&desk).await;
    let (mut browser, search) = operator_signs_in(&desk).await;
    let cookie = browser
        .set_cookies
        .iter()
        .find(|c| c.starts_with("sspr_helpdesk="))
        .expect("helpdesk session cookie")
        .clone();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "public_url is http here");
    let session = browser.jar["sspr_helpdesk"].clone();

    let card = find(&mut browser, &search, &caller.upn).await;
    assert_eq!(fact(&card.body, "card-sam"), caller.sam);
    assert_eq!(fact(&card.body, "card-enabled"), "Enabled");
    assert_eq!(fact(&card.body, "card-locked"), "No");
    assert_eq!(fact(&card.body, "card-totp"), "Yes");
    assert_eq!(fact(&card.body, "card-verified"), "Not yet");
    assert_page(&card, StatusCode::OK, &format!("Test {}", caller.sam));
    assert_page(&card, StatusCode::OK, "Method added");
    assert_page(&card, StatusCode::OK, "<time datetime=\"");
    assert_page(&card, StatusCode::OK, "Verify the caller first");
    assert!(
        !card.body.contains("action=\"/helpdesk/user/reset\""),
        "no action before verification"
    );

    // Forged past the hidden buttons: refused, AD untouched.
    let csrf = csrf_field(&card, "/helpdesk/user/verify");
    for path in ["/helpdesk/user/reset", "/helpdesk/user/reset/confirm"] {
        let refused = browser
            .post(
                path,
                &[
                    ("csrf", &csrf),
                    ("id", &caller.sam),
                    ("deliver", "operator"),
                ],
            )
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path}");
        assert!(
            alert(&refused).contains("Verify the caller first."),
            "{path}"
        );
    }
    bind(&caller.dn, &caller.password).await.expect("untouched");

    let wrong = browser
        .submit(
            &card,
            "/helpdesk/user/verify",
            &[("method", "totp"), ("code", "000000")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert!(alert(&wrong).contains("attempts left"), "{}", alert(&wrong));
    let now = settle_totp_step().await;
    let verified = browser
        .submit(
            &wrong,
            "/helpdesk/user/verify",
            &[("method", "totp"), ("code", &totp::code_at(&secret, now))],
        )
        .await;
    assert_page(&verified, StatusCode::OK, "The caller is verified.");
    assert!(verified.body.contains("role=\"status\""));
    assert_eq!(
        fact(&verified.body, "card-verified"),
        "Yes, with the authenticator app"
    );

    let confirm = browser.submit(&verified, "/helpdesk/user/reset", &[]).await;
    assert_page(&confirm, StatusCode::OK, "Are you sure?");
    assert_page(&confirm, StatusCode::OK, "Reset the password of");
    assert!(
        !confirm.body.contains("id=\"reason\""),
        "verified: no reason"
    );
    bind(&caller.dn, &caller.password)
        .await
        .expect("nothing happens before the confirmation");

    let shown = browser
        .submit(
            &confirm,
            "/helpdesk/user/reset/confirm",
            &[("deliver", "operator")],
        )
        .await;
    assert_page(&shown, StatusCode::OK, "Shown only this once");
    assert_eq!(shown.headers[header::CACHE_CONTROL], "no-store");
    let csp = shown.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(
        shown
            .body
            .contains("<script src=\"/static/copy.js\" defer></script>")
    );
    assert_eq!(shown.body.matches("<script").count(), 1, "no inline script");
    assert!(
        shown
            .body
            .contains("class=\"temporary\" type=\"text\" readonly")
    );
    let temporary = attr_of_tag(&shown.body, "id=\"temporary-password\"", "value");
    // Words and two digits, shown in the groups an operator reads out.
    assert!(temporary.len() >= 16, "{temporary}");
    let groups: Vec<&str> = temporary.split('-').collect();
    assert_eq!(groups.len(), 5, "{temporary}");
    for group in &groups {
        assert!(
            shown.body.contains(&format!("<kbd>{group}</kbd>")),
            "{}",
            shown.body
        );
    }
    assert!(
        browser.seen_urls.iter().all(|u| !u.contains(&temporary)),
        "the password is in no URL"
    );
    assert!(shown.headers.get(header::LOCATION).is_none());

    let (rc, text) = bind(&caller.dn, &temporary)
        .await
        .expect_err("must change first");
    assert!(
        rc == 49 && text.contains("data 773"),
        "the temporary password is right but must change: {text}"
    );
    assert_eq!(
        read_attr(&caller.dn, "pwdLastSet").await.as_deref(),
        Some("0")
    );

    // Reload of the password's page sends the confirmation again: it leads to the card, and
    // no second reset replaces the password the operator read out.
    let again = browser.post_again().await;
    assert_eq!(again.status, StatusCode::SEE_OTHER, "{}", again.body);
    assert_eq!(again.headers[header::LOCATION], "/helpdesk/user");
    let card_again = browser.follow(again).await;
    assert!(!card_again.body.contains(&temporary));
    let (_, text) = bind(&caller.dn, &temporary)
        .await
        .expect_err("still the same temporary password");
    assert!(text.contains("data 773"), "{text}");

    // Back on the card: must change; the password is not shown again.
    let back = browser.submit(&shown, "/helpdesk/user", &[]).await;
    assert_eq!(fact(&back.body, "card-must-change"), "Yes");
    // AD's pwdLastSet is 0 now: not "Never".
    assert_eq!(
        fact(&back.body, "card-password-set"),
        "Must be changed at next sign-in"
    );
    // Events by name, never as the codes the audit stores.
    assert_page(&back, StatusCode::OK, "Password reset by the helpdesk");
    for raw in [
        "<code>",
        "helpdesk_reset",
        "code_sent",
        "flow_started",
        "enrollment_added",
    ] {
        assert!(!back.body.contains(raw), "{raw}: {}", back.body);
    }
    assert!(!back.body.contains(&temporary));
    browser.accept_language = Some("nl");
    let dutch = browser.submit(&shown, "/helpdesk/user", &[]).await;
    assert_eq!(
        fact(&dutch.body, "card-password-set"),
        "Moet bij de volgende aanmelding worden gewijzigd"
    );
    assert_page(
        &dutch,
        StatusCode::OK,
        "Wachtwoord opnieuw ingesteld door de helpdesk",
    );
    assert!(!dutch.body.contains("<code>"), "{}", dutch.body);
    browser.accept_language = None;

    let script = desk.app.get("/static/copy.js", None).await;
    assert_eq!(script.status, StatusCode::OK);
    assert!(
        script.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(script.body.contains("clipboard"));

    browser.assert_bearers_stay_in_cookies(&[&session], &[&search, &card, &confirm, &shown]);
    let signed_out = browser.submit(&back, "/helpdesk/sign-out", &[]).await;
    assert_eq!(browser.redirected.as_deref(), Some("/helpdesk"));
    assert_page(&signed_out, StatusCode::OK, "You are signed out.");
    assert!(!browser.jar.contains_key("sspr_helpdesk"));
    // Back to the card: without a session it leads to the sign-in.
    let back_to_card = browser.get("/helpdesk/user").await;
    assert_eq!(back_to_card.status, StatusCode::SEE_OTHER);
    assert_eq!(back_to_card.headers[header::LOCATION], "/helpdesk");

    // The old token is worth nothing, even when replayed: back to sign in.
    browser.jar.insert("sspr_helpdesk".into(), session);
    let ended = browser.submit(&back, "/helpdesk/user", &[]).await;
    assert_eq!(ended.status, StatusCode::UNAUTHORIZED);
    assert!(alert(&ended).contains("Your session has ended"));
    assert!(ended.body.contains("autocomplete=\"current-password\""));
}

#[tokio::test]
async fn verified_by_an_emailed_code_an_operator_unlocks_a_real_lockout() {
    let desk = desk("").await;
    let caller = create_user("hlk").await;
    let token = sign_in(&desk.app, &caller).await;
    let address = register_email(&desk.app, &token).await;
    for _ in 0..6 {
        let _ = bind(&caller.dn, "wrong-password").await;
    }
    let (rc, text) = bind(&caller.dn, &caller.password)
        .await
        .expect_err("locked");
    assert!(rc == 49 && text.contains("775"), "{rc} {text}");

    let (mut browser, search) = operator_signs_in(&desk).await;
    let card = find(&mut browser, &search, &caller.sam).await;
    let locked = fact(&card.body, "card-locked");
    assert!(locked.starts_with("Yes"), "{locked}");
    assert_page(&card, StatusCode::OK, "***@mail.test");
    assert!(
        card.body.contains("since <time datetime=\""),
        "{}",
        card.body
    );

    let sent = browser
        .submit(&card, "/helpdesk/user/email-code", &[])
        .await;
    assert_eq!(browser.redirected.as_deref(), Some("/helpdesk/user"));
    assert_page(&sent, StatusCode::OK, "A code was emailed to the user.");
    assert_page(&sent, StatusCode::OK, "The code the caller reads to you");
    let code = wait_for_mail(&address)
        .await
        .code_in()
        .expect("code mailed");
    // Reload: the card with the code field again, the notice once, and no second mail.
    let reloaded = browser.get("/helpdesk/user").await;
    assert_page(
        &reloaded,
        StatusCode::OK,
        "The code the caller reads to you",
    );
    assert!(!reloaded.body.contains("A code was emailed to the user."));
    assert_no_mail(&address, Duration::from_secs(2)).await;
    let verified = browser
        .submit(
            &sent,
            "/helpdesk/user/verify",
            &[("method", "email"), ("code", &code)],
        )
        .await;
    assert_page(&verified, StatusCode::OK, "Yes, with an emailed code");

    let confirm = browser
        .submit(&verified, "/helpdesk/user/unlock", &[])
        .await;
    assert_page(&confirm, StatusCode::OK, "Unlock the account of");
    let done = browser
        .submit(&confirm, "/helpdesk/user/unlock/confirm", &[])
        .await;
    assert_eq!(browser.redirected.as_deref(), Some("/helpdesk/user"));
    assert_page(&done, StatusCode::OK, "The account is unlocked.");
    assert_eq!(fact(&done.body, "card-locked"), "No");
    let reloaded = browser.get("/helpdesk/user").await;
    assert_eq!(fact(&reloaded.body, "card-locked"), "No");
    bind(&caller.dn, &caller.password)
        .await
        .expect("unlocked, password unchanged");
    assert!(wait_for_mail(&address).await.code_in().is_none(), "notice");

    // A temporary password can go to the confirmed address instead of the operator.
    let confirm = browser.submit(&done, "/helpdesk/user/reset", &[]).await;
    assert!(confirm.body.contains("<label for=\"deliver-email\">"));
    let mailed = browser
        .submit(
            &confirm,
            "/helpdesk/user/reset/confirm",
            &[("deliver", "email")],
        )
        .await;
    assert_page(
        &mailed,
        StatusCode::OK,
        "temporary password emailed to the user",
    );
    assert!(
        !mailed.body.contains("id=\"temporary-password\""),
        "not shown"
    );
    let mail = wait_for_mail(&address).await;
    let temporary = mail
        .text
        .lines()
        .map(str::trim)
        .find(|l| crate::helpdesk::reads_aloud(l))
        .expect("the temporary password, alone on its line");
    let (rc, text) = bind(&caller.dn, temporary).await.expect_err("must change");
    assert!(rc == 49 && text.contains("data 773"), "{text}");
}

#[tokio::test]
async fn a_non_member_sees_the_same_refusal_as_a_wrong_password() {
    let desk = desk("").await;
    let outsider = create_user("hout").await;
    let mut texts = Vec::new();
    for (login, password) in [
        (outsider.sam.as_str(), outsider.password.as_str()),
        (desk.operator.sam.as_str(), "wrong-password"),
        ("nobody-here", "x"),
    ] {
        let mut browser = Browser::new(&desk.app);
        let code = desk.authenticator.code().await;
        let refused = sign_in_as(&mut browser, login, password, &code).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{login}");
        assert!(!browser.jar.contains_key("sspr_helpdesk"));
        texts.push(alert(&refused));
    }
    assert!(texts[0].contains("Sign-in refused"), "{}", texts[0]);
    assert!(texts.windows(2).all(|w| w[0] == w[1]), "{texts:?}");

    // A protected account: the card explains, and offers no action.
    let (mut browser, search) = operator_signs_in(&desk).await;
    let card = find(&mut browser, &search, "Administrator").await;
    assert_page(&card, StatusCode::OK, "This account is protected");
    for action in ["reset", "unlock", "clear-registrations"] {
        assert!(!card.body.contains(&format!("/helpdesk/user/{action}\"")));
    }
    let unknown = browser
        .submit(&card, "/helpdesk/user", &[("id", "no-such-user-x")])
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(alert(&unknown).contains("No user has this username"));
}

#[tokio::test]
async fn helpdesk_posts_need_the_csrf_token_and_unverified_actions_a_reason() {
    let desk = desk("require_verification = false").await;
    let (caller, _) = caller_with_totp(&desk).await;

    // A sign-in without the token: refused before anything happens.
    let mut forger = Browser::new(&desk.app);
    let refused = forger
        .post(
            "/helpdesk",
            &[
                ("username", &desk.operator.sam),
                ("password", &desk.operator.password),
                ("code", &desk.authenticator.code().await),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(alert(&refused).contains("Nothing was changed"));
    assert!(!forger.jar.contains_key("sspr_helpdesk"));

    let (mut browser, search) = operator_signs_in(&desk).await;
    let fields = [
        ("id", caller.sam.as_str()),
        ("reason", "forged"),
        ("deliver", "operator"),
    ];
    let mut forged = fields.to_vec();
    forged.push(("csrf", "A-forged-token"));
    for attempt in [&fields[..], &forged[..]] {
        let answer = browser
            .post("/helpdesk/user/clear-registrations/confirm", attempt)
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{attempt:?}");
    }
    let card = find(&mut browser, &search, &caller.sam).await;
    assert_eq!(fact(&card.body, "card-totp"), "Yes", "not cleared");

    // Unverified, where allowed: the confirmation asks for the reason, and insists on it.
    assert_page(&card, StatusCode::OK, "you will be asked for the reason");
    let confirm = browser
        .submit(&card, "/helpdesk/user/clear-registrations", &[])
        .await;
    assert_page(
        &confirm,
        StatusCode::OK,
        "Remove all verification methods of",
    );
    assert!(
        confirm
            .body
            .contains("<label for=\"reason\">Reason</label>")
    );
    let missing = browser
        .submit(
            &confirm,
            "/helpdesk/user/clear-registrations/confirm",
            &[("reason", " ")],
        )
        .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert!(alert(&missing).contains("write the reason"));
    let cleared = browser
        .submit(
            &missing,
            "/helpdesk/user/clear-registrations/confirm",
            &[("reason", "lost phone, ID checked at the desk")],
        )
        .await;
    assert_page(
        &cleared,
        StatusCode::OK,
        "The verification methods were removed.",
    );
    assert_eq!(fact(&cleared.body, "card-totp"), "No");
}

#[tokio::test]
async fn the_dutch_page_renders_dutch_and_works_without_the_licence() {
    let group = create_group(&unique_name("Helpdesk ")).await;
    let operator = create_user("hnl").await;
    add_member(&group, &operator.dn).await;
    let app = test_app(&format!("[helpdesk]\ngroup_dn = {group:?}")).await;
    let mut browser = Browser::new(&app);
    browser.accept_language = Some("nl-NL,nl;q=0.9,en;q=0.5");
    let form = browser.get("/helpdesk").await;
    assert_page(&form, StatusCode::OK, "Meld u aan met uw eigen account.");
    assert!(form.body.contains("<html lang=\"nl\">"));
    assert!(
        form.body
            .contains("<label for=\"password\">Uw wachtwoord</label>")
    );
    let refused = browser
        .submit(
            &form,
            "/helpdesk",
            &[("username", &operator.sam), ("password", "wrong")],
        )
        .await;
    assert!(alert(&refused).contains("Aanmelden geweigerd."));
    // The right password, but no authenticator app of their own: sent to register one.
    let unregistered = browser
        .submit(
            &form,
            "/helpdesk",
            &[
                ("username", &operator.sam),
                ("password", &operator.password),
                ("code", "123456"),
            ],
        )
        .await;
    assert_eq!(unregistered.status, StatusCode::FORBIDDEN);
    assert!(
        alert(&unregistered).contains("eigen authenticator-app"),
        "{}",
        alert(&unregistered)
    );
    assert!(unregistered.body.contains("href=\"/register\""));
    assert!(!browser.jar.contains_key("sspr_helpdesk"));
    let authenticator = Authenticator::new(&operator).await;
    authenticator.register_in(&app.database).await;
    let search = browser
        .submit(
            &form,
            "/helpdesk",
            &[
                ("username", &operator.sam),
                ("password", &operator.password),
                ("code", &authenticator.code().await),
            ],
        )
        .await;
    assert_page(&search, StatusCode::OK, "Gebruiker zoeken");
    let card = find(&mut browser, &search, &operator.sam).await;
    assert_page(&card, StatusCode::OK, "Geblokkeerd");
    assert_page(&card, StatusCode::OK, "Recente gebeurtenissen");
    // A fellow helpdesk member is protected.
    assert_page(&card, StatusCode::OK, "Dit account is beschermd");

    // Without a group, the page says the helpdesk is not configured.
    let off = test_app("").await;
    let mut browser = Browser::new(&off);
    let page = browser.get("/helpdesk").await;
    assert_page(
        &page,
        StatusCode::NOT_FOUND,
        "The helpdesk is not configured",
    );
    let post = browser.post("/helpdesk", &[("csrf", "x")]).await;
    assert_eq!(post.status, StatusCode::FORBIDDEN, "CSRF first");
}

#[tokio::test]
async fn a_blocked_caller_shows_on_the_card_and_the_operator_lifts_the_block() {
    let desk = desk("[throttle]\nflow_max_failures = 3\nuser_max_failures = 3").await;
    let (caller, _) = caller_with_totp(&desk).await;
    let flow = crate::selfservice::start_flow(&desk.app, &caller.sam).await;
    for _ in 0..3 {
        crate::selfservice::verify(&desk.app, &flow, "totp", "000000").await;
    }
    let (mut browser, search) = operator_signs_in(&desk).await;
    let card = find(&mut browser, &search, &caller.sam).await;
    assert!(
        fact(&card.body, "card-blocked").starts_with("until "),
        "{}",
        fact(&card.body, "card-blocked")
    );
    assert_page(
        &card,
        StatusCode::OK,
        "action=\"/helpdesk/user/lift-block\"",
    );

    let lifted = browser
        .submit(
            &card,
            "/helpdesk/user/lift-block",
            &[("id", &caller.sam), ("reason", "ticket 4712")],
        )
        .await;
    assert_page(&lifted, StatusCode::OK, "The block is lifted");
    assert_eq!(fact(&lifted.body, "card-blocked"), "No");
    assert!(!lifted.body.contains("action=\"/helpdesk/user/lift-block\""));
}

/// Signs in, finds a caller who registered nothing and verifies them by a code mailed to their
/// AD `mail`; returns the browser and the card that says so.
async fn verified_by_ad_mail<'a>(desk: &'a Desk) -> (Browser<'a>, Answer) {
    let caller = create_user("hadm").await;
    let (mut browser, search) = operator_signs_in(desk).await;
    let card = find(&mut browser, &search, &caller.sam).await;
    assert_page(
        &card,
        StatusCode::OK,
        "This user has registered no verification method.",
    );
    assert_page(&card, StatusCode::OK, "Email a code to the address in AD");
    let sent = browser
        .submit(&card, "/helpdesk/user/email-code", &[("to", "ad_mail")])
        .await;
    assert_page(&sent, StatusCode::OK, "A code was emailed to the user.");
    let code = wait_for_mail(&format!("{}@mail.test", caller.sam))
        .await
        .code_in()
        .expect("code mailed to AD mail");
    let verified = browser
        .submit(
            &sent,
            "/helpdesk/user/verify",
            &[("method", "email"), ("code", &code)],
        )
        .await;
    (browser, verified)
}

#[tokio::test]
async fn a_caller_who_registered_nothing_is_verified_by_a_code_to_the_address_in_ad() {
    let desk = desk("").await;
    let (_, verified) = verified_by_ad_mail(&desk).await;
    assert_page(
        &verified,
        StatusCode::OK,
        "Yes, with a code mailed to the address in AD",
    );
    assert!(verified.body.contains("action=\"/helpdesk/user/reset\""));
}

#[tokio::test]
async fn a_verified_caller_is_shown_a_registration_code_once() {
    let desk = desk("").await;
    let (mut browser, verified) = verified_by_ad_mail(&desk).await;
    let issued = browser
        .submit(&verified, "/helpdesk/user/registration-code", &[])
        .await;
    assert_page(&issued, StatusCode::OK, "A registration code was issued.");
    let code = attr_of_tag(&issued.body, "id=\"registration-code\"", "value");
    assert_eq!(code.len(), 19, "{code}");
    let back = browser.submit(&issued, "/helpdesk/user", &[]).await;
    assert!(!back.body.contains(&code), "shown only once");
}

#[tokio::test]
async fn a_registration_code_is_a_redirect_and_a_reload_issues_no_new_code() {
    let desk = desk("").await;
    let (mut browser, verified) = verified_by_ad_mail(&desk).await;
    let issued = browser
        .submit(&verified, "/helpdesk/user/registration-code", &[])
        .await;
    assert_eq!(
        browser.redirected.as_deref(),
        Some("/helpdesk/user/registration-code")
    );
    assert_page(&issued, StatusCode::OK, "A registration code was issued.");
    let code = attr_of_tag(&issued.body, "id=\"registration-code\"", "value");
    assert!(
        !browser.jar.values().any(|v| v.contains(&code)),
        "the code rides in no cookie"
    );
    for _ in 0..2 {
        let again = browser.get("/helpdesk/user/registration-code").await;
        assert_eq!(again.status, StatusCode::OK, "{}", again.body);
        assert_eq!(
            attr_of_tag(&again.body, "id=\"registration-code\"", "value"),
            code,
            "a reload shows the same code and issues none"
        );
        assert!(!again.body.contains("A registration code was issued."));
    }
    // One code was issued (a new one would have replaced the one shown).
    let caller = fact(&verified.body, "card-sam");
    let store = desk.app.database.store().await;
    let rows = store
        .since(
            sspr_bridge::domain::clock::Timestamp::from_millis(0),
            10_000,
        )
        .await
        .unwrap();
    store.close().await;
    let issued = rows
        .iter()
        .filter(|r| {
            r.event.event.as_str() == "registration_code_issued"
                && r.event.sam_account_name.as_deref() == Some(caller.as_str())
        })
        .count();
    assert_eq!(issued, 1);
}

#[tokio::test]
async fn a_reloaded_wrong_caller_code_costs_no_attempt() {
    let desk = desk("").await;
    let (caller, _) = caller_with_totp(&desk).await;
    let (mut browser, search) = operator_signs_in(&desk).await;
    let card = find(&mut browser, &search, &caller.sam).await;
    let fields = [("method", "totp"), ("code", "000000")];
    let wrong = browser
        .submit(&card, "/helpdesk/user/verify", &fields)
        .await;
    let first = alert(&wrong);
    let again = browser.post_again().await;
    assert_eq!(again.status, StatusCode::SEE_OTHER, "{}", again.body);
    assert_eq!(again.headers[header::LOCATION], "/helpdesk/user");
    let card = browser.get("/helpdesk/user").await;
    assert_eq!(fact(&card.body, "card-sam"), caller.sam);
    let wrong = browser
        .submit(&card, "/helpdesk/user/verify", &fields)
        .await;
    let left = |text: &str| -> u32 {
        let before = &text[..text.find(" attempts left").expect("attempts left")];
        before.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(
        left(&alert(&wrong)),
        left(&first) - 1,
        "the reload cost nothing"
    );
}

#[tokio::test]
async fn the_card_and_the_mails_tell_times_in_the_configured_zone() {
    // Tokyo keeps no summer time: JST all year, so the test reads the same in any season.
    let desk = desk("[ui]\ntimezone = \"Asia/Tokyo\"").await;
    let (caller, _) = caller_with_totp(&desk).await;
    let added = wait_for_mail(&format!("{}@mail.test", caller.sam)).await;
    assert!(added.text.contains(" JST on "), "{}", added.text);
    assert!(!added.text.contains(" UTC "), "{}", added.text);

    let (mut browser, search) = operator_signs_in(&desk).await;
    let card = find(&mut browser, &search, &caller.sam).await;
    assert_page(&card, StatusCode::OK, " JST on ");
    assert!(!card.body.contains(" UTC on "), "{}", card.body);

    let dutch = browser.get("/helpdesk/user?lang=nl").await;
    assert_page(&dutch, StatusCode::OK, " JST</time>");
    assert!(unescape(&dutch.body).contains(" om "), "{}", dutch.body);
}
