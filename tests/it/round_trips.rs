//! How many LDAP searches a reset flow costs the DC, counted from the service's own metrics on
//! a DC URL no other test uses, with the domain's policy in the cache: 3 at the start, for an
//! unknown login as for a known one (one search that finds an account, one that finds none, one
//! read with the groups: the same work whether the account exists), and 1 at the password step,
//! 4 per flow. Issue 18 asked for at most 3; the fourth keeps the start's timing alike.

use axum::http::StatusCode;
use serde_json::json;
use sspr_bridge::domain::totp;

use crate::client::{TestApp, test_app};
use crate::harness::{bind, create_user, env, unique_name};
use crate::mail::{smtp_section, wait_for_mail};
use crate::selfservice::{
    register_email, register_totp, set_password, settle_totp_step, sign_in, start_flow, verify,
};

/// The searches the service has made through `url`, from `/metrics`' histogram count.
fn searches(url: &str) -> u64 {
    let label = format!("dc=\"{url}\"");
    sspr_bridge::metrics::render()
        .lines()
        .filter(|l| l.starts_with("sspr_directory_operation_seconds_count"))
        .filter(|l| l.contains(&label) && l.contains("operation=\"search\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// An app whose DC URL is its own (the fragment is not sent anywhere), so its searches are
/// counted apart from every other test's. The policy is kept for the whole test, so every flow
/// but the first meets it in the cache, as flows of a busy service do.
async fn counted_app() -> (TestApp, String) {
    let url = format!("{}/#{}", env("SSPR_TEST_LDAPS_URL"), unique_name("rt"));
    let app = test_app(&format!(
        "[licence]\nazure_ad_premium = true\n{}\n[directory]\nurls = [{url:?}]\n\
         policy_cache = \"10m\"\n",
        smtp_section()
    ))
    .await;
    (app, url)
}

#[tokio::test]
async fn a_reset_flow_makes_four_searches_and_a_decoy_start_as_many_as_a_real_one() {
    let (app, url) = counted_app().await;
    let warm = create_user("rtw").await;
    let warm_secret = register_totp(&app, &sign_in(&app, &warm).await).await;
    let totp_only = create_user("rtt").await;
    let secret = register_totp(&app, &sign_in(&app, &totp_only).await).await;
    let both = create_user("rtb").await;
    let token = sign_in(&app, &both).await;
    let both_secret = register_totp(&app, &token).await;
    let address = register_email(&app, &token).await;
    // A first flow reads the domain's policy (and the domain head's DN) into the cache.
    let flow = start_flow(&app, &warm.sam).await;
    let now = settle_totp_step().await;
    verify(&app, &flow, "totp", &totp::code_at(&warm_secret, now))
        .await
        .expect(StatusCode::OK);
    set_password(&app, &flow, "Warm-Cache-Pass-31")
        .await
        .expect(StatusCode::NO_CONTENT);

    // TOTP, no mail to the user: start, verify, password.
    let before = searches(&url);
    let flow = start_flow(&app, &totp_only.sam).await;
    let start = searches(&url) - before;
    let now = settle_totp_step().await;
    verify(&app, &flow, "totp", &totp::code_at(&secret, now))
        .await
        .expect(StatusCode::OK);
    set_password(&app, &flow, "Counted-Totp-Pass-32")
        .await
        .expect(StatusCode::NO_CONTENT);
    let totp_flow = searches(&url) - before;
    bind(&totp_only.dn, "Counted-Totp-Pass-32")
        .await
        .expect("the new password binds");

    // TOTP for a user with an email address: the reset notice is mailed too.
    let before = searches(&url);
    let flow = start_flow(&app, &both.sam).await;
    let now = settle_totp_step().await;
    verify(&app, &flow, "totp", &totp::code_at(&both_secret, now))
        .await
        .expect(StatusCode::OK);
    set_password(&app, &flow, "Counted-Notice-Pass-33")
        .await
        .expect(StatusCode::NO_CONTENT);
    let noticed_flow = searches(&url) - before;
    let notice = wait_for_mail(&address).await;
    assert!(notice.code_in().is_none(), "the reset notice");

    // Email: start, mail a code, verify, password.
    let before = searches(&url);
    let flow = start_flow(&app, &both.sam).await;
    app.post(&format!("/api/v1/reset/{flow}/email"), json!({}), None)
        .await
        .expect(StatusCode::ACCEPTED);
    let code = wait_for_mail(&address).await.code_in().expect("a code");
    verify(&app, &flow, "email", &code)
        .await
        .expect(StatusCode::OK);
    set_password(&app, &flow, "Counted-Email-Pass-34")
        .await
        .expect(StatusCode::NO_CONTENT);
    let email_flow = searches(&url) - before;
    bind(&both.dn, "Counted-Email-Pass-34")
        .await
        .expect("the new password binds");

    // A login no account has: its start reads another account in its place.
    let before = searches(&url);
    let flow = start_flow(&app, &unique_name("rtnobody")).await;
    let decoy_start = searches(&url) - before;
    verify(&app, &flow, "totp", "000000")
        .await
        .expect(StatusCode::BAD_REQUEST);

    let counts = format!(
        "start {start}, TOTP flow {totp_flow}, with a notice {noticed_flow}, email flow \
         {email_flow}, decoy start {decoy_start}"
    );
    println!("LDAP searches: {counts}");
    assert_eq!(start, 3, "{counts}");
    assert!(
        totp_flow == 4 && noticed_flow == 4 && email_flow == 4,
        "{counts}"
    );
    assert_eq!(decoy_start, start, "{counts}");
}
