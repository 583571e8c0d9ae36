//! The batch reminders (`remind`, `notify-expiry`) and `registration.reconfirm_days`, against
//! the real DC and SMTP server. The DC is shared with every other test, so each run here is
//! restricted to a group holding only this test's users.

use std::collections::HashSet;
use std::time::Duration;

use axum::http::StatusCode;
use ldap3::Mod;
use serde_json::json;
use sqlx::{AnyConnection, Connection};
use sspr_bridge::cli::reminders::{self, Batch, BatchArgs};
use sspr_bridge::config::Config;
use sspr_bridge::directory::codec::unicode_pwd_value;
use sspr_bridge::domain::reminders::Report;
use sspr_bridge::domain::totp;

use crate::client::{TestApp, test_app};
use crate::harness::{
    self, TestUser, add_member, bind, create_group, create_user, env, unique_name,
};
use crate::mail::{assert_no_mail, smtp_section, wait_for_mail};
use crate::pages::{Browser, assert_page};
use crate::policy::Pso;
use crate::selfservice::{register_email, register_totp, set_password, settle_totp_step, sign_in};

const LICENSED: &str = "[licence]\nazure_ad_premium = true\n";
const PUBLIC_URL: &str = "https://sspr.example.test/";

async fn app(extra: &str) -> TestApp {
    test_app(&format!("{LICENSED}{}\n{extra}", smtp_section())).await
}

/// The configuration the commands run with: the app's database, the test SMTP server.
fn config(app: &TestApp, extra: &str) -> Config {
    harness::config_layers(&[
        &format!("[server]\npublic_url = {PUBLIC_URL:?}\n"),
        &app.database.section(),
        &smtp_section(),
        extra,
    ])
}

async fn run(
    config: &Config,
    batch: Batch,
    group: Option<&str>,
    dry_run: bool,
) -> (Report, String) {
    let args = BatchArgs {
        dry_run,
        group: group.map(str::to_owned),
        lang: "en".to_owned(),
    };
    let mut out = Vec::new();
    let report = reminders::run(config, &batch, &args, &mut out)
        .await
        .unwrap_or_else(|e| panic!("{batch:?}: {e}"));
    (report, String::from_utf8(out).unwrap())
}

fn sent_to(report: &Report) -> Vec<&str> {
    let mut sams: Vec<&str> = report
        .sent
        .iter()
        .map(|r| r.sam_account_name.as_str())
        .collect();
    sams.sort_unstable();
    sams
}

/// A group of new users, `prefixes` naming them.
async fn group_of(prefixes: &[&str]) -> (String, Vec<TestUser>) {
    let group = create_group(&unique_name("ntcgrp")).await;
    let mut users = Vec::new();
    for prefix in prefixes {
        let user = create_user(prefix).await;
        add_member(&group, &user.dn).await;
        users.push(user);
    }
    (group, users)
}

/// The AD `mail` create_user gave the user: unique, like the user.
fn ad_mail(user: &TestUser) -> String {
    format!("{}@mail.test", user.sam)
}

async fn modify(dn: &str, change: Mod<Vec<u8>>) {
    let mut ldap = harness::admin().await;
    ldap.modify(dn, vec![change])
        .await
        .and_then(ldap3::LdapResult::success)
        .unwrap_or_else(|e| panic!("modify {dn}: {e}"));
    let _ = ldap.unbind().await;
}

#[tokio::test]
async fn users_are_read_a_page_at_a_time_enabled_only() {
    use sspr_bridge::domain::directory::Directory;

    let (group, users) = group_of(&["lsta", "lstd"]).await;
    harness::set_attr(&users[1].dn, "userAccountControl", "514").await;
    let directory = sspr_bridge::directory::LdapDirectory::new(&harness::config("").directory)
        .expect("directory");
    let members = directory.users(Some(&group)).await.unwrap();
    let sams: Vec<&str> = members
        .iter()
        .map(|u| u.sam_account_name.as_str())
        .collect();
    assert_eq!(
        sams,
        [users[0].sam.as_str()],
        "disabled accounts are left out"
    );
    assert_eq!(
        members[0].mail.as_deref(),
        Some(ad_mail(&users[0]).as_str())
    );

    // Everyone, however many pages that takes (the shared test DC holds more than one page
    // of users once a few test runs have made theirs): as many as an independent count finds
    // just before and just after, give or take what other tests change meanwhile.
    let before = count_enabled_users().await;
    let everyone = directory.users(None).await.unwrap();
    let after = count_enabled_users().await;
    assert!(everyone.iter().any(|u| u.sam_account_name == users[0].sam));
    assert!(!everyone.iter().any(|u| u.sam_account_name == users[1].sam));
    assert!(
        before.min(after) <= everyone.len() + 10 && everyone.len() <= before.max(after) + 10,
        "{} users read, {before} before and {after} after",
        everyone.len()
    );
}

/// Enabled users under the base DN, counted over a paged search of the test's own.
async fn count_enabled_users() -> usize {
    use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};

    let mut ldap = harness::admin().await;
    let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![
        Box::new(EntriesOnly::new()),
        Box::new(PagedResults::new(200)),
    ];
    let mut stream = ldap
        .streaming_search_with(
            adapters,
            &env("SSPR_TEST_BASE_DN"),
            ldap3::Scope::Subtree,
            "(&(objectCategory=person)(objectClass=user)\
             (!(userAccountControl:1.2.840.113556.1.4.803:=2)))",
            vec!["1.1"],
        )
        .await
        .unwrap();
    let mut count = 0;
    while stream.next().await.unwrap().is_some() {
        count += 1;
    }
    stream.finish().await.success().unwrap();
    let _ = ldap.unbind().await;
    count
}

#[tokio::test]
async fn remind_mails_unregistered_users_once_per_interval() {
    let app = app("").await;
    let (group, users) = group_of(&["remu", "remr", "remn"]).await;
    let [unregistered, registered, no_mail] = &users[..] else {
        unreachable!()
    };
    let token = sign_in(&app, registered).await;
    register_totp(&app, &token).await;
    // Every method change is announced at AD `mail` too.
    let added = wait_for_mail(&ad_mail(registered)).await;
    assert!(added.subject.contains("added"), "{}", added.subject);
    modify(&no_mail.dn, Mod::Delete(b"mail".to_vec(), HashSet::new())).await;
    // Long enough that the runs within it finish inside it on a loaded machine.
    let config = config(&app, "[registration]\nremind_interval = \"10s\"\n");

    // A dry run lists who would get one, masked, and sends nothing.
    let (report, out) = run(&config, Batch::Remind, Some(&group), true).await;
    assert_eq!(sent_to(&report), [unregistered.sam.as_str()], "{out}");
    let masked = format!("{}***@mail.test", &unregistered.sam[..1]);
    assert!(
        out.contains(&format!("would send  {:<20}  {masked}\n", unregistered.sam)),
        "{out}"
    );
    assert!(out.contains("1 without an address"), "{out}");
    assert!(!out.contains(&ad_mail(unregistered)), "{out}");
    assert_no_mail(&ad_mail(unregistered), Duration::from_millis(500)).await;

    let (report, out) = run(&config, Batch::Remind, Some(&group), false).await;
    assert_eq!(sent_to(&report), [unregistered.sam.as_str()], "{out}");
    assert_eq!(
        (report.skipped, report.no_address, report.failed),
        (0, 1, 0)
    );
    assert!(out.contains("1 sent, 0 skipped"), "{out}");
    let mail = wait_for_mail(&ad_mail(unregistered)).await;
    assert_eq!(
        mail.subject,
        "Set up password self-service for your account"
    );
    assert_eq!(
        mail.to_name.as_deref(),
        Some(format!("Test {}", unregistered.sam).as_str())
    );
    let register = format!("{PUBLIC_URL}register");
    assert!(mail.text.contains(&register), "{}", mail.text);
    assert!(
        mail.html.contains(&format!("<a href=\"{register}\"")),
        "{}",
        mail.html
    );

    // Within the interval: nobody again, and a dry run says so too.
    let (report, out) = run(&config, Batch::Remind, Some(&group), false).await;
    assert!(report.sent.is_empty(), "{out}");
    assert_eq!(report.skipped, 1);
    assert!(out.contains("0 sent, 1 skipped"), "{out}");
    let (report, _) = run(&config, Batch::Remind, Some(&group), true).await;
    assert!(report.sent.is_empty());
    assert_no_mail(&ad_mail(unregistered), Duration::from_millis(300)).await;
    assert_no_mail(&ad_mail(registered), Duration::from_millis(300)).await;

    // Once the interval has passed, the next reminder.
    tokio::time::sleep(Duration::from_millis(10_100)).await;
    let (report, _) = run(&config, Batch::Remind, Some(&group), false).await;
    assert_eq!(sent_to(&report), [unregistered.sam.as_str()]);
    wait_for_mail(&ad_mail(unregistered)).await;
    assert_no_mail(&ad_mail(registered), Duration::from_millis(300)).await;
}

#[tokio::test]
async fn the_binary_lists_reminders_in_a_dry_run_and_sends_none() {
    let app = app("").await;
    let (group, users) = group_of(&["remb"]).await;
    let output = harness::service_command()
        .args(["remind", "--dry-run", "--group", &group, "--lang", "nl"])
        .envs([
            ("SSPR__DIRECTORY__URLS", env("SSPR_TEST_LDAPS_URL")),
            ("SSPR__DIRECTORY__CA_FILE", env("SSPR_TEST_CA_FILE")),
            ("SSPR__DIRECTORY__BASE_DN", env("SSPR_TEST_BASE_DN")),
            ("SSPR__DIRECTORY__BIND_DN", env("SSPR_TEST_SERVICE_DN")),
            (
                "SSPR__DIRECTORY__BIND_PASSWORD",
                env("SSPR_TEST_SERVICE_PASSWORD"),
            ),
            ("SSPR__DATABASE__URL", app.database.url.clone()),
            ("SSPR__SMTP__HOST", env("SSPR_TEST_SMTP_HOST")),
            ("SSPR__SMTP__PORT", env("SSPR_TEST_SMTP_PORT")),
            ("SSPR__SMTP__CA_FILE", env("SSPR_TEST_CA_FILE")),
            ("SSPR__SMTP__FROM", "no-reply@sspr.test".to_owned()),
            (
                "SSPR__SECURITY__SECRET_KEY",
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".to_owned(),
            ),
        ])
        .output()
        .expect("run sspr-bridge");
    harness::keep_service_log("remind", &output.stderr);
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        out.starts_with(&format!("would send  {:<20}  ", users[0].sam)),
        "{out}"
    );
    assert!(
        out.contains("1 would be sent (dry run: nothing sent)"),
        "{out}"
    );
    assert_no_mail(&ad_mail(&users[0]), Duration::from_millis(500)).await;

    let bad = harness::service_command()
        .args(["notify-expiry", "--days", "14,0"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("1 to 365"));
}

#[tokio::test]
async fn notify_expiry_warns_once_per_threshold_and_password() {
    let app = app("").await;
    let (group, users) = group_of(&["expr", "expu", "expn", "expm"]).await;
    let [registered, unregistered, never, must_change] = &users[..] else {
        unreachable!()
    };
    // The registered user's confirmed address wins over AD `mail`.
    let token = sign_in(&app, registered).await;
    let confirmed = register_email(&app, &token).await;
    let added = wait_for_mail(&ad_mail(registered)).await;
    assert!(added.subject.contains("added"), "{}", added.subject);
    // DONT_EXPIRE_PASSWORD, and must change at next logon: no expiry to warn of.
    harness::set_attr(&never.dn, "userAccountControl", "66048").await;
    harness::set_attr(&must_change.dn, "pwdLastSet", "0").await;
    // Their passwords were set moments ago and now expire in five days.
    let pso = Pso::for_group(&group, &["--max-pwd-age=5", "--min-pwd-age=0"]).await;
    let config = config(
        &app,
        &format!("{LICENSED}[policy]\nscope = \"group\"\ngroup_dn = {group:?}\n"),
    );
    let expiry = |days: &[u32]| Batch::NotifyExpiry {
        days: days.to_vec(),
    };
    let both = {
        let mut v = vec![registered.sam.as_str(), unregistered.sam.as_str()];
        v.sort_unstable();
        v
    };

    let (report, out) = run(&config, expiry(&[14]), None, true).await;
    assert_eq!(sent_to(&report), both, "{out}");
    assert!(out.contains("(5 days left)"), "{out}");
    // --group narrows the scope, never widens it.
    let narrow = create_group(&unique_name("ntcnar")).await;
    add_member(&narrow, &registered.dn).await;
    add_member(&narrow, &create_user("expo").await.dn).await;
    let (report, out) = run(&config, expiry(&[14]), Some(&narrow), true).await;
    assert_eq!(sent_to(&report), [registered.sam.as_str()], "{out}");
    assert_no_mail(&confirmed, Duration::from_millis(300)).await;

    let (report, out) = run(&config, expiry(&[14]), None, false).await;
    assert_eq!(sent_to(&report), both, "{out}");
    assert!(report.sent.iter().all(|r| r.days_left == Some(5)), "{out}");
    let mail = wait_for_mail(&confirmed).await;
    assert_eq!(mail.subject, "Your password expires soon");
    assert!(
        mail.text
            .contains("The password of your account expires in 5 days, at "),
        "{}",
        mail.text
    );
    assert!(
        mail.text.contains(&format!("{PUBLIC_URL}reset")),
        "{}",
        mail.text
    );
    assert!(mail.code_in().is_none());
    wait_for_mail(&ad_mail(unregistered)).await;
    assert_no_mail(&ad_mail(registered), Duration::from_millis(200)).await;

    // Each threshold once: again nothing; a nearer threshold is a new warning.
    let (report, _) = run(&config, expiry(&[14]), None, false).await;
    assert!(report.sent.is_empty());
    assert_eq!(report.skipped, 2);
    let (report, _) = run(&config, expiry(&[14, 7]), None, false).await;
    assert_eq!(sent_to(&report), both);
    wait_for_mail(&confirmed).await;
    wait_for_mail(&ad_mail(unregistered)).await;
    let (report, _) = run(&config, expiry(&[14, 7, 1]), None, false).await;
    assert!(report.sent.is_empty(), "the 7-day warning is the one due");
    assert_eq!(report.skipped, 2);
    assert_no_mail(&confirmed, Duration::from_millis(300)).await;
    assert_no_mail(&ad_mail(unregistered), Duration::from_millis(300)).await;

    // A new password starts the warnings again.
    modify(
        &unregistered.dn,
        Mod::Replace(
            b"unicodePwd".to_vec(),
            HashSet::from([unicode_pwd_value("Changed-Since-1!")]),
        ),
    )
    .await;
    let (report, _) = run(&config, expiry(&[14, 7]), None, false).await;
    assert_eq!(sent_to(&report), [unregistered.sam.as_str()]);
    assert_eq!(report.skipped, 1);
    wait_for_mail(&ad_mail(unregistered)).await;
    for user in [never, must_change] {
        assert_no_mail(&ad_mail(user), Duration::from_millis(200)).await;
    }
    drop(pso);
}

#[tokio::test]
async fn notify_expiry_sends_those_who_cannot_reset_to_change_and_tells_an_expired_user_once() {
    let app = app("").await;
    let (group, users) = group_of(&["exlr", "exlu", "exlx"]).await;
    let [registered, unregistered, expired] = &users[..] else {
        unreachable!()
    };
    let token = sign_in(&app, registered).await;
    register_totp(&app, &token).await;
    let added = wait_for_mail(&ad_mail(registered)).await;
    assert!(added.subject.contains("added"), "{}", added.subject);
    let pso = Pso::for_group(&group, &["--max-pwd-age=5", "--min-pwd-age=0"]).await;
    crate::change::expire_password(expired).await;
    let scope = format!("[policy]\nscope = \"group\"\ngroup_dn = {group:?}\n");
    let licensed = config(&app, &format!("{LICENSED}{scope}"));
    let expiry = |days: &[u32]| Batch::NotifyExpiry {
        days: days.to_vec(),
    };

    let (report, out) = run(&licensed, expiry(&[14]), None, false).await;
    let mut all = vec![
        registered.sam.as_str(),
        unregistered.sam.as_str(),
        expired.sam.as_str(),
    ];
    all.sort_unstable();
    assert_eq!(sent_to(&report), all, "{out}");
    assert!(out.contains("(expired)"), "{out}");
    let link = |page: &str| format!("{PUBLIC_URL}{page}\n");
    let mail = wait_for_mail(&ad_mail(registered)).await;
    assert!(mail.text.contains(&link("reset")), "{}", mail.text);
    let mail = wait_for_mail(&ad_mail(unregistered)).await;
    assert_eq!(mail.subject, "Your password expires soon");
    assert!(
        mail.text.contains(&link("change")) && !mail.text.contains("/reset"),
        "nothing registered: {}",
        mail.text
    );
    let mail = wait_for_mail(&ad_mail(expired)).await;
    assert_eq!(mail.subject, "Your password has expired");
    assert!(
        mail.text.contains(&link("change")) && !mail.text.contains("/reset"),
        "{}",
        mail.text
    );

    // The expired notice once per password, whatever the thresholds.
    let (report, _) = run(&licensed, expiry(&[14, 7]), None, false).await;
    assert_eq!(
        sent_to(&report),
        {
            let mut v = vec![registered.sam.as_str(), unregistered.sam.as_str()];
            v.sort_unstable();
            v
        },
        "the 7-day warnings, no second expired notice"
    );
    assert_eq!(report.skipped, 1);
    assert_no_mail(&ad_mail(expired), Duration::from_millis(300)).await;
    wait_for_mail(&ad_mail(unregistered)).await;
    // Without the licence, nobody is sent to /reset.
    let unlicensed = config(&app, &scope);
    let mail = wait_for_mail(&ad_mail(registered)).await;
    assert!(mail.text.contains(&link("reset")), "{}", mail.text);
    let (report, _) = run(&unlicensed, expiry(&[14, 7, 1]), None, true).await;
    assert!(report.sent.is_empty(), "nothing new is due");
    let (report, _) = run(&unlicensed, expiry(&[14, 7, 6]), None, false).await;
    assert_eq!(sent_to(&report).len(), 2);
    let mail = wait_for_mail(&ad_mail(registered)).await;
    assert!(
        mail.text.contains(&link("change")) && !mail.text.contains("/reset"),
        "licence off: {}",
        mail.text
    );
    drop(pso);
}

#[tokio::test]
async fn remind_sends_a_password_that_must_change_to_change_first() {
    let app = app("").await;
    let (group, users) = group_of(&["rcpl", "rcmc", "rcex"]).await;
    let [plain, must_change, expired] = &users[..] else {
        unreachable!()
    };
    harness::set_attr(&must_change.dn, "pwdLastSet", "0").await;
    crate::change::expire_password(expired).await;
    let config = config(&app, "");
    let (report, out) = run(&config, Batch::Remind, Some(&group), false).await;
    assert_eq!(report.sent.len(), 3, "{out}");
    let register = format!("{PUBLIC_URL}register");
    let change = format!("{PUBLIC_URL}change");
    let mail = wait_for_mail(&ad_mail(plain)).await;
    assert!(
        mail.text.contains(&register) && !mail.text.contains(&change),
        "{}",
        mail.text
    );
    for user in [must_change, expired] {
        let mail = wait_for_mail(&ad_mail(user)).await;
        assert!(
            mail.text.contains("your password must be changed")
                && mail
                    .text
                    .contains(&format!("Change your password at:\n{change}\n"))
                && mail.text.contains(&register),
            "{}: {}",
            user.sam,
            mail.text
        );
    }
}

/// Moves every confirmation of the user's methods `days` into the past, as time would.
pub(crate) async fn age_registration(app: &TestApp, user: &TestUser, days: i64) {
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect(&app.database.url).await.unwrap();
    let done = sqlx::query(
        "UPDATE enrollment_methods SET confirmed_at_ms = confirmed_at_ms - $1
         WHERE sam_account_name = $2",
    )
    .bind(days * 86_400_000)
    .bind(user.sam.as_str())
    .execute(&mut conn)
    .await
    .unwrap();
    assert_eq!(done.rows_affected(), 1);
    conn.close().await.unwrap();
}

async fn verify_totp(app: &TestApp, flow: &str, code: &str) -> StatusCode {
    app.post(
        &format!("/api/v1/reset/{flow}/verify"),
        json!({"method": "totp", "code": code}),
        None,
    )
    .await
    .status
}

async fn flow_for(app: &TestApp, user: &TestUser) -> String {
    let answer = app
        .post("/api/v1/reset", json!({"username": user.sam}), None)
        .await
        .expect(StatusCode::CREATED);
    answer.json()["flow"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_stale_registration_counts_again_once_reconfirmed() {
    let app = app("[registration]\nreconfirm_days = 1\n").await;
    let user = create_user("rcf").await;
    let token = sign_in(&app, &user).await;
    let secret = register_totp(&app, &token).await;
    let status = app.get("/api/v1/enrollment", Some(&token)).await.json();
    assert_eq!(status["reconfirm_due"], false, "{status}");

    age_registration(&app, &user, 2).await;
    let status = app.get("/api/v1/enrollment", Some(&token)).await.json();
    assert_eq!(
        (&status["totp"], &status["reconfirm_due"]),
        (&json!(true), &json!(true))
    );

    // Stale: the start is a decoy, and the right code does not verify.
    let flow = flow_for(&app, &user).await;
    let now = settle_totp_step().await;
    assert_eq!(
        verify_totp(&app, &flow, &totp::code_at(&secret, now)).await,
        StatusCode::BAD_REQUEST
    );
    let events = crate::selfservice::audit_events(&app).await;
    assert!(
        events.iter().any(|(e, o, sam)| e == "flow_started"
            && o == "decoy"
            && sam.as_deref() == Some(&*user.sam)),
        "{events:?}"
    );

    // A wrong code does not re-confirm; the current one does, once.
    let reconfirm = |code: String| {
        let app = &app;
        let token = &token;
        async move {
            app.post(
                "/api/v1/enrollment/totp/reconfirm",
                json!({"code": code}),
                Some(token),
            )
            .await
        }
    };
    let wrong = reconfirm("000000".into())
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert_eq!(wrong.error().error, "invalid_code");
    let now = settle_totp_step().await;
    reconfirm(totp::code_at(&secret, now))
        .await
        .expect(StatusCode::NO_CONTENT);
    reconfirm(totp::code_at(&secret, now))
        .await
        .expect(StatusCode::BAD_REQUEST);
    let status = app.get("/api/v1/enrollment", Some(&token)).await.json();
    assert_eq!(status["reconfirm_due"], false, "{status}");

    // The reconfirming step is spent: the reset uses the next one.
    let flow = flow_for(&app, &user).await;
    assert_eq!(
        verify_totp(&app, &flow, &totp::code_at(&secret, now + totp::STEP_SECS)).await,
        StatusCode::OK
    );
    set_password(&app, &flow, "Reconfirmed-Pass-4")
        .await
        .expect(StatusCode::NO_CONTENT);
    bind(&user.dn, "Reconfirmed-Pass-4")
        .await
        .expect("new password binds");
}

#[tokio::test]
async fn the_registration_page_asks_for_a_reconfirmation_when_due() {
    let app = app("[registration]\nreconfirm_days = 1\n").await;
    let user = create_user("rcp").await;
    let token = sign_in(&app, &user).await;
    let secret = register_totp(&app, &token).await;
    age_registration(&app, &user, 2).await;

    let mut browser = Browser::new(&app);
    let start = browser.get("/register").await;
    let page = browser
        .submit(
            &start,
            "/register",
            &[("username", &user.sam), ("password", &user.password)],
        )
        .await;
    assert_page(
        &page,
        StatusCode::OK,
        "Please confirm your verification methods again",
    );
    let wrong = browser
        .submit(&page, "/register/totp/reconfirm", &[("code", "000000")])
        .await;
    assert_page(&wrong, StatusCode::BAD_REQUEST, "The code is wrong");
    let now = settle_totp_step().await;
    let done = browser
        .submit(
            &wrong,
            "/register/totp/reconfirm",
            &[("code", &totp::code_at(&secret, now))],
        )
        .await;
    assert_page(&done, StatusCode::OK, "Confirmed. Thank you.");
    assert!(!done.body.contains("reconfirm"), "{}", done.body);
    let status = app.get("/api/v1/enrollment", Some(&token)).await.json();
    assert_eq!(status["reconfirm_due"], false, "{status}");
}
