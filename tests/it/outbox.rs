//! The mail outbox (issue 11): codes and notifications are queued in the database and sent by a
//! background task, so no answer waits on the mail server. Against the shared SMTP server, on
//! the database `SSPR_TEST_DATABASE` names; the tests that stop a mail server are in faults.rs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::json;
use sspr_bridge::domain::notify::{OutboxRow, OutboxStore};

use crate::client::{TestApp, test_app, test_app_on};
use crate::harness::{TestDatabase, create_user, unique_name};
use crate::mail::{assert_no_mail, smtp_section, wait_for_mail};
use crate::selfservice::{register_email, register_totp, sign_in, start_flow, verify};

/// Self-service on; throttles out of the way of many sends from one address.
const LICENSED: &str = "[licence]\nazure_ad_premium = true\n\
    [throttle]\nip_max_starts = 1000\nip_max_verifications = 1000\nemail_max_sends = 100\n";

/// A sealed body: padded to 1 KiB, plus the 24-byte nonce and the 16-byte tag.
pub const SEALED_ROW_LEN: usize = 1024 + 24 + 16;

/// Where a decoy's row says it would go; nothing may ever arrive there.
const DECOY_ADDRESS: &str = "no-one.at.all@example.invalid";

pub async fn outbox_rows(app: &TestApp) -> Vec<OutboxRow> {
    let store = app.database.store().await;
    let rows = store.mails().await.expect("read the outbox");
    store.close().await;
    rows
}

/// Waits (up to `patience`) until the outbox is empty.
pub async fn wait_for_empty_outbox(app: &TestApp, patience: Duration) {
    let started = Instant::now();
    loop {
        let rows = outbox_rows(app).await;
        if rows.is_empty() {
            return;
        }
        assert!(
            started.elapsed() < patience,
            "{} outbox rows left after {patience:?}: {rows:?}",
            rows.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn app() -> TestApp {
    test_app(&format!("{LICENSED}{}", smtp_section())).await
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

#[tokio::test]
async fn a_reset_code_leaves_at_once_and_its_row_is_deleted() {
    let app = app().await;
    let user = create_user("outbox").await;
    let token = sign_in(&app, &user).await;
    let address = register_email(&app, &token).await;
    wait_for_empty_outbox(&app, Duration::from_secs(2)).await;

    let flow = start_flow(&app, &user.sam).await;
    let asked = Instant::now();
    app.post(&format!("/api/v1/reset/{flow}/email"), json!({}), None)
        .await
        .expect(StatusCode::ACCEPTED);
    let answered = asked.elapsed();
    let mail = wait_for_mail(&address).await;
    let arrived = asked.elapsed();
    eprintln!("a reset code: answered after {answered:?}, in the Maildir after {arrived:?}");
    // Woken when the row commits, not by the 2 s poll (the Maildir is polled every 50 ms).
    assert!(arrived < Duration::from_secs(1), "{arrived:?}");
    let code = mail.code_in().expect("a code");
    verify(&app, &flow, "email", &code)
        .await
        .expect(StatusCode::OK);
    wait_for_empty_outbox(&app, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_decoy_writes_an_equal_row_that_is_never_sent() {
    let app = app().await;
    // A real user's code mail, for the times to compare with.
    let user = create_user("outbox").await;
    let token = sign_in(&app, &user).await;
    let address = register_email(&app, &token).await;
    wait_for_empty_outbox(&app, Duration::from_secs(2)).await;

    let unknown = unique_name("nobody");
    let flow = start_flow(&app, &unknown).await;
    app.post(&format!("/api/v1/reset/{flow}/email"), json!({}), None)
        .await
        .expect(StatusCode::ACCEPTED);
    let rows = outbox_rows(&app).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let decoy = rows[0].clone();
    assert_eq!(decoy.body_sealed.len(), SEALED_ROW_LEN);
    assert_eq!(decoy.attempts, 0);
    let body = String::from_utf8_lossy(&decoy.body_sealed);
    assert!(!body.contains(&unknown), "sealed");

    // The sender has seen it (it was woken), and left it, unsent, until its code expires.
    assert_no_mail(DECOY_ADDRESS, Duration::from_millis(800)).await;
    let rows = outbox_rows(&app).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].id.as_str(), rows[0].attempts),
        (decoy.id.as_str(), 0)
    );
    assert_eq!(rows[0].send_by_ms, decoy.send_by_ms);
    assert!(
        rows[0].next_attempt_at_ms >= decoy.send_by_ms,
        "parked until the code expires: {rows:?}"
    );

    // A real user's code and a decoy's take the same time to answer (no wait on SMTP).
    let real_flow = start_flow(&app, &user.sam).await;
    let (mut real, mut unknown_times) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        for (flow, times) in [(&real_flow, &mut real), (&flow, &mut unknown_times)] {
            let asked = Instant::now();
            app.post(&format!("/api/v1/reset/{flow}/email"), json!({}), None)
                .await
                .expect(StatusCode::ACCEPTED);
            times.push(asked.elapsed());
        }
        wait_for_mail(&address).await.code_in().expect("a code");
    }
    let (real, unknown_time) = (median(real), median(unknown_times));
    eprintln!("sending a code, median of 7: real {real:?}, decoy {unknown_time:?}");
    // The last real row goes once its mail is handed over; the decoys' rows stay.
    let started = Instant::now();
    while outbox_rows(&app).await.len() != 8 {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            outbox_rows(&app).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_no_mail(DECOY_ADDRESS, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn two_instances_over_one_database_send_each_mail_once() {
    let database = Arc::new(TestDatabase::from_env().await);
    let config = format!("{LICENSED}{}", smtp_section());
    let apps = [
        test_app_on(database.clone(), &config).await,
        test_app_on(database.clone(), &config).await,
    ];
    let mut addresses = Vec::new();
    for i in 0..3 {
        let user = create_user("outbox2").await;
        let app = &apps[i % 2];
        let token = sign_in(app, &user).await;
        register_totp(app, &token).await;
        let address = register_email(app, &token).await;
        let flow = start_flow(app, &user.sam).await;
        for app in &apps {
            app.post(&format!("/api/v1/reset/{flow}/email"), json!({}), None)
                .await
                .expect(StatusCode::ACCEPTED);
        }
        addresses.push(address);
    }
    for address in &addresses {
        for _ in &apps {
            wait_for_mail(address).await.code_in().expect("a code");
        }
    }
    wait_for_empty_outbox(&apps[0], Duration::from_secs(3)).await;
    // Past the other instance's poll: nothing is sent twice.
    tokio::time::sleep(sspr_bridge::mail::POLL + Duration::from_millis(500)).await;
    for address in &addresses {
        assert_no_mail(address, Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_outbox_shows_in_metrics() {
    const TOKEN: &str = "scrape-the-outbox-4c1e";
    crate::harness::remember_secret("metrics-token", TOKEN);
    let app = test_app(&format!(
        "{LICENSED}{}[metrics]\ntoken = \"{TOKEN}\"\n",
        smtp_section()
    ))
    .await;
    let sent = |text: &str| {
        text.lines()
            .filter(|l| {
                l.starts_with("sspr_mails_total{")
                    && l.contains("kind=\"reset_code\"")
                    && l.contains("outcome=\"sent\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    let scrape = async || {
        app.get("/metrics", Some(TOKEN))
            .await
            .expect(StatusCode::OK)
            .body
    };
    let before = scrape().await;
    let user = create_user("outboxm").await;
    let token = sign_in(&app, &user).await;
    let address = register_email(&app, &token).await;
    let flow = start_flow(&app, &user.sam).await;
    app.post(&format!("/api/v1/reset/{flow}/email"), json!({}), None)
        .await
        .expect(StatusCode::ACCEPTED);
    wait_for_mail(&address).await.code_in().expect("a code");
    // Counted once the server's answer is in, which may come just after the mail is stored.
    let started = Instant::now();
    let mut after = scrape().await;
    while sent(&after) <= sent(&before) {
        assert!(started.elapsed() < Duration::from_secs(2), "{after}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        after = scrape().await;
    }
    // The gauge is the process's (the suite runs many apps): its value is another test's too.
    assert!(
        after.contains("\n# TYPE sspr_outbox_pending gauge\nsspr_outbox_pending "),
        "{after}"
    );
}
