//! Faults (issue 7, the hostile suite): a part the service stands on fails under a running
//! instance and comes back. A DC killed while passwords are being written, or one that stops
//! answering; the SMTP server down; PostgreSQL restarted or killed; the SQLite file made
//! read-only. For each: a clear error for the user (never a 500, never a wait past the configured
//! timeouts), an audit row wherever the audit can still be written (the log where it cannot),
//! nothing half-written, and the same instance working again by itself once the part is back.
//!
//! Only parts of the test's own are broken: DC2 (under [`exclusive`]), an SMTP sink and a
//! PostgreSQL server started for the test (`scripts/smtp-ctl`, `scripts/pg-ctl`), and the test's
//! own SQLite file. The other tests keep DC1 and the shared sink and server meanwhile.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use ldap3::Mod;
use serde_json::json;
use sspr_bridge::domain::clock::Timestamp;
use sspr_bridge::domain::secrets::token_hash;
use sspr_bridge::domain::store::{AuditEvent, AuditLog, FlowStore};
use sspr_bridge::domain::totp;
use sspr_bridge::store::{ACQUIRE_TIMEOUT, Backend};
use tokio::sync::Notify;

use crate::client::{Answer, TestApp, test_app, test_app_on};
use crate::dcs::{Dc, bind_at, exclusive, freeze_dc, kill_dc, replicate, start_dc, thaw_dc};
use crate::harness::{TestDatabase, TestUser, admin_at, bind, create_user, env};
use crate::mail::{assert_no_mail, unique_address, wait_for_mail, wait_for_mail_within};
use crate::outbox::{SEALED_ROW_LEN, outbox_rows, wait_for_empty_outbox};
use crate::selfservice::{
    register_email, register_totp, set_password, settle_totp_step, sign_in, start_flow, verify,
};

/// Self-service on, and throttles out of the way of the many starts and sign-ins from one address.
const LICENSED: &str = "[licence]\nazure_ad_premium = true\n\
    [throttle]\nip_max_starts = 1000\nip_max_verifications = 1000\n";

/// `directory.timeout` and `directory.connect_timeout` of the apps on DC2: how long the service
/// may wait for a DC that does not answer.
const DC_TIMEOUT: Duration = Duration::from_secs(3);
const DC_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// `smtp.timeout` of the apps on the test's own sink.
const SMTP_TIMEOUT: Duration = Duration::from_secs(5);

/// Scheduling and TLS on a loaded test machine, on top of any timeout.
const SLACK: Duration = Duration::from_secs(2);

// ------------------------------------------------------------------------------------ the DC

/// An app whose only DC is DC2 (so a DC2 outage is the directory's outage), with short timeouts.
async fn app_on_dc2_only() -> TestApp {
    test_app(&format!(
        "{LICENSED}[directory]\nurls = [{:?}]\nretry_down_after = \"1s\"\n\
         timeout = \"{}s\"\nconnect_timeout = \"{}s\"\n",
        Dc::Dc2.url(),
        DC_TIMEOUT.as_secs(),
        DC_CONNECT_TIMEOUT.as_secs(),
    ))
    .await
}

/// `n` new users, made on DC1 and replicated to DC2.
async fn users_on_dc2(prefix: &str, n: usize) -> Vec<TestUser> {
    let mut users = Vec::with_capacity(n);
    for _ in 0..n {
        users.push(create_user(prefix).await);
    }
    replicate(Dc::Dc1, Dc::Dc2).await;
    users
}

/// Registers an authenticator app for each user, then starts a reset flow for each and verifies
/// it with the current code; returns the flows.
async fn verified_flows(app: &TestApp, users: &[TestUser]) -> Vec<String> {
    let mut secrets = Vec::with_capacity(users.len());
    for user in users {
        let token = sign_in(app, user).await;
        secrets.push(register_totp(app, &token).await);
    }
    let mut flows = Vec::with_capacity(users.len());
    for (user, secret) in users.iter().zip(&secrets) {
        let flow = start_flow(app, &user.sam).await;
        let now = settle_totp_step().await;
        verify(app, &flow, "totp", &totp::code_at(secret, now))
            .await
            .expect(StatusCode::OK);
        flows.push(flow);
    }
    flows
}

/// Bad binds on DC2 past the domain's lockout threshold (5); asserts the account is locked there.
async fn lock_out_on_dc2(user: &TestUser) {
    for _ in 0..6 {
        let _ = bind_at(&Dc::Dc2.url(), &user.dn, "Not-The-Password-0!").await;
    }
    let (rc, text) = bind_at(&Dc::Dc2.url(), &user.dn, &user.password)
        .await
        .expect_err("locked out");
    assert!(rc == 49 && text.contains("data 775"), "{rc} {text}");
}

/// An attribute of `dn` on DC2, read as Administrator.
async fn read_on_dc2(dn: &str, attr: &str) -> Option<String> {
    crate::harness::read_attr_at(&Dc::Dc2.url(), dn, attr).await
}

/// Unlocks `dn` on DC2 as Administrator (lockoutTime = 0), leaving its password alone.
async fn unlock_on_dc2(dn: &str) {
    let mut ldap = admin_at(&Dc::Dc2.url()).await;
    ldap.modify(
        dn,
        vec![Mod::Replace(
            b"lockoutTime".to_vec(),
            std::collections::HashSet::from([b"0".to_vec()]),
        )],
    )
    .await
    .and_then(ldap3::LdapResult::success)
    .expect("unlock on DC2");
    let _ = ldap.unbind().await;
}

/// Which of `old` and `new` the account takes on DC2: exactly one, or the test fails. A reset
/// writes the password and `lockoutTime = 0` in one modify, so an account still locked must
/// still have `old` (a locked account refuses every bind, so it is unlocked to check), and one
/// with `new` must be unlocked.
async fn password_on_dc2(user: &TestUser, old: &str, new: &str, was_locked: bool) -> Which {
    let url = Dc::Dc2.url();
    let lockout = read_on_dc2(&user.dn, "lockoutTime").await;
    let unlocked = lockout.as_deref().is_none_or(|t| t == "0");
    if was_locked && !unlocked {
        unlock_on_dc2(&user.dn).await;
    }
    let takes_new = bind_at(&url, &user.dn, new).await.is_ok();
    let takes_old = bind_at(&url, &user.dn, old).await.is_ok();
    match (takes_old, takes_new) {
        (false, true) => {
            assert!(
                unlocked,
                "{}: the new password without the unlock",
                user.sam
            );
            Which::New
        }
        (true, false) => Which::Old,
        (old, new) => panic!(
            "{}: the old password binds: {old}, the new one: {new}; want exactly one",
            user.sam
        ),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    Old,
    New,
}

/// The new password a user's reset asks for.
fn new_password(i: usize) -> String {
    format!("Crash-Write-{i}-Zebra-7!")
}

#[tokio::test]
async fn a_dc_killed_mid_write_leaves_each_password_whole_and_the_same_instance_recovers() {
    let _dc2 = exclusive().await;
    let app = Arc::new(app_on_dc2_only().await);
    // Eight resets race the kill; a ninth is asked for once the DC is gone; a tenth once it is
    // back.
    let users = users_on_dc2("crash", 10).await;
    let flows = verified_flows(&app, &users).await;
    // Half of them are locked out: their reset also unlocks, in the same modify.
    let locked: Vec<bool> = (0..users.len()).map(|i| i % 2 == 1).collect();
    for (user, _) in users.iter().zip(&locked).filter(|(_, l)| **l) {
        lock_out_on_dc2(user).await;
    }

    // Resets, 25 ms apart; DC2 is killed the moment the first one has been written.
    let written = Arc::new(Notify::new());
    let racing: Vec<_> = (0..8)
        .map(|i| {
            let (app, written, flow) = (app.clone(), written.clone(), flows[i].clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(25 * i as u64)).await;
                let started = Instant::now();
                let answer = set_password(&app, &flow, &new_password(i)).await;
                if answer.status == StatusCode::NO_CONTENT {
                    written.notify_one();
                }
                (answer, started.elapsed())
            })
        })
        .collect();
    let _ = tokio::time::timeout(Duration::from_secs(30), written.notified()).await;
    kill_dc(Dc::Dc2).await;
    let mut answers: Vec<(Answer, Duration)> = Vec::new();
    for task in racing {
        answers.push(task.await.expect("no panic"));
    }
    let started = Instant::now();
    let late = set_password(&app, &flows[8], &new_password(8)).await;
    answers.push((late, started.elapsed()));

    // Every answer is a success or a clear 503, in time: at most a new connection's handshake
    // and bind, and one operation that gets no answer.
    for (i, (answer, took)) in answers.iter().enumerate() {
        assert!(
            *took < DC_CONNECT_TIMEOUT + DC_TIMEOUT + DC_TIMEOUT + SLACK,
            "reset {i} took {took:?}"
        );
        match answer.status {
            StatusCode::NO_CONTENT => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                let error = answer.error();
                assert!(
                    ["directory_unavailable", "write_unconfirmed"].contains(&error.error.as_str()),
                    "reset {i}: {}",
                    answer.body
                );
                assert!(error.message.contains("directory"), "{}", error.message);
            }
            other => panic!("reset {i} answered {other}: {}", answer.body),
        }
    }
    assert_eq!(answers[8].0.error().error, "directory_unavailable");

    start_dc(Dc::Dc2).await;
    // The same instance, no restart: a reset asked for now goes through.
    let back = Instant::now();
    set_password(&app, &flows[9], &new_password(9))
        .await
        .expect(StatusCode::NO_CONTENT);
    eprintln!(
        "a reset through the same instance went through {:?} after DC2 was back",
        back.elapsed()
    );

    // Each account has its old password or its new one, whole, as its answer and audit row say.
    let audit = audit_rows(&app).await;
    let mut seen = Vec::new();
    for (i, user) in users.iter().enumerate().take(answers.len()) {
        let (answer, _) = &answers[i];
        let rows = rows_of(&audit, &user.sam, "password_reset");
        assert_eq!(
            rows.len(),
            1,
            "{}: one audit row per attempt: {rows:?}",
            user.sam
        );
        let which = password_on_dc2(user, &user.password, &new_password(i), locked[i]).await;
        let code = (answer.status != StatusCode::NO_CONTENT).then(|| answer.error().error);
        match code.as_deref() {
            None => {
                assert_eq!(which, Which::New, "{}: 204 but not written", user.sam);
                assert_eq!(rows[0].outcome.as_str(), "success");
            }
            Some("directory_unavailable") => {
                assert_eq!(which, Which::Old, "{}: refused but written", user.sam);
                assert_eq!(rows[0].outcome.as_str(), "failure");
            }
            Some(_) => assert_eq!(rows[0].outcome.as_str(), "unknown", "{}", user.sam),
        }
        seen.push(format!(
            "{} ({which:?})",
            code.as_deref().unwrap_or("written")
        ));
    }
    eprintln!("racing a kill of DC2, resets answered: {seen:?}");

    // A refused reset succeeds on its own flow (the failed write gave it back); a written one
    // is single use.
    for (i, user) in users.iter().enumerate().take(answers.len()) {
        let retry = set_password(&app, &flows[i], &new_password(i)).await;
        if answers[i].0.status == StatusCode::NO_CONTENT {
            assert_eq!(
                retry.expect(StatusCode::NOT_FOUND).error().error,
                "flow_not_found"
            );
            continue;
        }
        retry.expect(StatusCode::NO_CONTENT);
        assert_eq!(
            password_on_dc2(user, &user.password, &new_password(i), false).await,
            Which::New
        );
        assert_eq!(
            read_on_dc2(&user.dn, "lockoutTime").await.as_deref(),
            Some("0")
        );
    }
    let audit = audit_rows(&app).await;
    for user in &users {
        let rows = rows_of(&audit, &user.sam, "password_reset");
        assert_eq!(
            rows.iter()
                .filter(|r| r.outcome.as_str() == "success")
                .count(),
            1,
            "{}: {rows:?}",
            user.sam
        );
    }
}

#[tokio::test]
async fn a_dc_that_stops_answering_costs_the_timeout_not_a_hang() {
    let _dc2 = exclusive().await;
    let app = app_on_dc2_only().await;
    let users = users_on_dc2("frozen", 1).await;
    let user = &users[0];
    let flows = verified_flows(&app, &users).await;

    // SIGSTOP: the DC keeps its connections and its port, and answers nothing.
    freeze_dc(Dc::Dc2).await;
    let started = Instant::now();
    let frozen = set_password(&app, &flows[0], "Frozen-Write-Zebra-7!").await;
    let took_reset = started.elapsed();
    let started = Instant::now();
    let start = app
        .post("/api/v1/reset", json!({"username": user.sam}), None)
        .await;
    let took_start = started.elapsed();
    thaw_dc(Dc::Dc2).await;
    let back = Instant::now();

    // A pooled connection waits `timeout` for its answer; a new one `connect_timeout` for its
    // handshake, then `timeout` for its bind.
    let most = DC_CONNECT_TIMEOUT + DC_TIMEOUT + SLACK;
    for (answer, took) in [(&frozen, took_reset), (&start, took_start)] {
        assert_eq!(
            answer.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            answer.body
        );
        assert_eq!(answer.error().error, "directory_unavailable");
        assert!(took < most, "answered after {took:?}");
    }
    eprintln!("a frozen DC2: answered 503 after {took_reset:?} (reset), {took_start:?} (start)");
    let audit = audit_rows(&app).await;
    let rows = rows_of(&audit, &user.sam, "password_reset");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].outcome.as_str(), "failure");
    assert!(
        rows[0]
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("unavailable"),
        "{rows:?}"
    );

    // Thawed, the same flow goes through on the same instance.
    set_password(&app, &flows[0], "Thawed-Write-Zebra-7!")
        .await
        .expect(StatusCode::NO_CONTENT);
    eprintln!(
        "reset through the same instance succeeded {:?} after DC2 was thawed",
        back.elapsed()
    );
    assert_eq!(
        password_on_dc2(user, &user.password, "Thawed-Write-Zebra-7!", false).await,
        Which::New
    );
}

// ---------------------------------------------------------------------------------- the mail

/// An SMTP sink of the test's own (`scripts/smtp-ctl`), delivering into the shared Maildir so
/// [`wait_for_mail`] reads its mail; stopped when dropped.
struct SmtpSink {
    dir: tempfile::TempDir,
    port: u16,
}

impl SmtpSink {
    async fn start() -> SmtpSink {
        let sink = SmtpSink {
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
        };
        sink.up().await;
        sink
    }

    async fn up(&self) {
        let certs = Path::new(&env("SSPR_TEST_CA_FILE"))
            .parent()
            .expect("the CA file is in the certificates' directory")
            .to_owned();
        ctl(
            "smtp-ctl",
            &[
                "start",
                &self.dir.path().display().to_string(),
                &self.port.to_string(),
                &certs.display().to_string(),
                &env("SSPR_TEST_MAILDIR"),
            ],
        )
        .await;
    }

    async fn down(&self) {
        ctl(
            "smtp-ctl",
            &["stop", &self.dir.path().display().to_string()],
        )
        .await;
    }

    fn section(&self) -> String {
        format!(
            "[smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"starttls\"\nca_file = {:?}\n\
             from = \"sspr-bridge tests <no-reply@sspr.test>\"\ntimeout = \"{}s\"\n",
            self.port,
            env("SSPR_TEST_CA_FILE"),
            SMTP_TIMEOUT.as_secs()
        )
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        ctl_blocking(
            "smtp-ctl",
            &["stop", &self.dir.path().display().to_string()],
        );
    }
}

#[tokio::test]
async fn with_the_mail_server_down_codes_are_accepted_queued_and_sent_once_it_is_back() {
    let sink = SmtpSink::start().await;
    // Two instances over one database: both retry the queued mails, each is sent once.
    let database = Arc::new(TestDatabase::from_env().await);
    let config = format!("{LICENSED}{}", sink.section());
    let app = test_app_on(database.clone(), &config).await;
    let other_instance = test_app_on(database, &config).await;
    let user = create_user("nomail").await;
    let token = sign_in(&app, &user).await;
    register_totp(&app, &token).await;
    // Two mails through the sink: the transport's pool keeps the connection.
    let address = register_email(&app, &token).await;
    let send_code = |flow: &str| format!("/api/v1/reset/{flow}/email");

    // A restart between two mails: the pooled connection is dead, and replaced rather than used.
    sink.down().await;
    sink.up().await;
    let flow = start_flow(&app, &user.sam).await;
    app.post(&send_code(&flow), json!({}), None)
        .await
        .expect(StatusCode::ACCEPTED);
    let code = wait_for_mail(&address).await.code_in().expect("a code");
    verify(&app, &flow, "email", &code)
        .await
        .expect(StatusCode::OK);
    wait_for_empty_outbox(&app, SLACK).await;

    sink.down().await;
    // The answer does not depend on the mail server: the code is queued, sealed.
    let other = start_flow(&other_instance, &user.sam).await;
    let started = Instant::now();
    other_instance
        .post(&send_code(&other), json!({}), None)
        .await
        .expect(StatusCode::ACCEPTED);
    let took = started.elapsed();
    eprintln!("a code with the SMTP server down: answered 202 after {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    let rows = outbox_rows(&app).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        rows[0].body_sealed.len(),
        SEALED_ROW_LEN,
        "as large as a decoy's"
    );
    // So is a new address's confirmation.
    let new_address = unique_address();
    app.post(
        "/api/v1/enrollment/email",
        json!({"address": new_address}),
        Some(&token),
    )
    .await
    .expect(StatusCode::ACCEPTED);
    // A reset whose only mail is the notification goes through.
    set_password(&app, &flow, "Mailless-Reset-Zebra-7!")
        .await
        .expect(StatusCode::NO_CONTENT);
    bind(&user.dn, "Mailless-Reset-Zebra-7!")
        .await
        .expect("the new password binds");
    let audit = audit_rows(&app).await;
    let reset = rows_of(&audit, &user.sam, "password_reset");
    assert_eq!(reset.len(), 1);
    assert_eq!(reset[0].outcome.as_str(), "success");
    // Retried meanwhile, with backoff.
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The code, the new address's code, and the reset notice to the confirmed address and to AD
    // mail.
    let rows = outbox_rows(&app).await;
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert!(rows.iter().any(|r| r.attempts >= 1), "{rows:?}");

    // Back: the queued mails leave by themselves, each once, whichever instance takes them.
    sink.up().await;
    let back = Instant::now();
    let patience = Duration::from_secs(30);
    let first = wait_for_mail_within(&address, patience).await;
    let second = wait_for_mail_within(&address, patience).await;
    let new_code = wait_for_mail_within(&new_address, patience).await;
    let ad_mail = format!("{}@mail.test", user.sam);
    let at_ad_mail = wait_for_mail_within(&ad_mail, patience).await;
    assert!(at_ad_mail.code_in().is_none(), "{at_ad_mail:?}");
    eprintln!(
        "queued mails delivered {:?} after the SMTP server was back",
        back.elapsed()
    );
    let (code_mail, notice) = match first.code_in() {
        Some(_) => (first, second),
        None => (second, first),
    };
    assert!(notice.code_in().is_none(), "the reset notice: {notice:?}");
    new_code.code_in().expect("the new address's code");
    let code = code_mail.code_in().expect("the reset code");
    verify(&other_instance, &other, "email", &code)
        .await
        .expect(StatusCode::OK);
    wait_for_empty_outbox(&app, SLACK).await;
    tokio::time::sleep(sspr_bridge::mail::POLL).await;
    assert_no_mail(&address, Duration::from_millis(300)).await;
    assert_no_mail(&new_address, Duration::from_millis(100)).await;
    let audit = audit_rows(&app).await;
    for event in ["code_sent", "notification"] {
        let failed: Vec<_> = rows_of(&audit, &user.sam, event)
            .into_iter()
            .filter(|r| r.outcome.as_str() == "failure")
            .collect();
        assert!(failed.is_empty(), "{failed:?}");
    }
}

#[tokio::test]
async fn a_code_that_expires_before_its_mail_can_leave_is_dropped_unsent_and_audited() {
    let sink = SmtpSink::start().await;
    let app = test_app(&format!(
        "{LICENSED}{}[reset]\ncode_lifetime = \"3s\"\n",
        sink.section()
    ))
    .await;
    let user = create_user("expired").await;
    let token = sign_in(&app, &user).await;
    let address = register_email(&app, &token).await;
    wait_for_empty_outbox(&app, SLACK).await;

    sink.down().await;
    let flow = start_flow(&app, &user.sam).await;
    app.post(&format!("/api/v1/reset/{flow}/email"), json!({}), None)
        .await
        .expect(StatusCode::ACCEPTED);
    assert_eq!(outbox_rows(&app).await.len(), 1);
    // Dropped when the code expires, 3 s on.
    wait_for_empty_outbox(&app, Duration::from_secs(3) + SLACK).await;
    sink.up().await;
    assert_no_mail(&address, sspr_bridge::mail::POLL + Duration::from_secs(1)).await;

    let audit = audit_rows(&app).await;
    let failed: Vec<_> = rows_of(&audit, &user.sam, "code_sent")
        .into_iter()
        .filter(|r| r.outcome.as_str() == "failure")
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].reason.as_deref(), Some("mail_unavailable"));
    let metrics = sspr_bridge::metrics::render();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("sspr_outbox_dropped_total{")
                && l.contains("kind=\"reset_code\"")
                && l.contains("reason=\"expired\"")),
        "{metrics}"
    );
}

// ------------------------------------------------------------------------------ the database

/// A PostgreSQL server of the test's own (`scripts/pg-ctl`), stopped and removed when dropped.
struct OwnPostgres {
    dir: tempfile::TempDir,
    port: u16,
}

impl OwnPostgres {
    async fn start() -> OwnPostgres {
        let pg = OwnPostgres {
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
        };
        pg.up().await;
        pg
    }

    /// One that commits as production does (`synchronous_commit = on`, `fsync = on`), unlike the
    /// shared test server: a commit it has confirmed survives a crash.
    async fn start_durable() -> OwnPostgres {
        let pg = OwnPostgres {
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
        };
        let dir = pg.dir.path().display().to_string();
        ctl("pg-ctl", &["start", &dir, &pg.port.to_string(), "durable"]).await;
        pg
    }

    /// SIGKILLs the postmaster and its backends: a crash, recovered from the WAL by `up`.
    async fn crash(&self) {
        ctl("pg-ctl", &["crash", &self.dir.path().display().to_string()]).await;
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    fn url(&self) -> String {
        format!("postgres://sspr@127.0.0.1:{}/sspr", self.port)
    }

    async fn up(&self) {
        let dir = self.dir.path().display().to_string();
        ctl("pg-ctl", &["start", &dir, &self.port.to_string()]).await;
    }

    async fn down(&self) {
        ctl("pg-ctl", &["stop", &self.dir.path().display().to_string()]).await;
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        ctl_blocking("pg-ctl", &["stop", &self.dir.path().display().to_string()]);
    }
}

#[tokio::test]
async fn postgres_restarted_under_the_service_refuses_cleanly_and_is_used_again() {
    let pg = OwnPostgres::start().await;
    let database = Arc::new(TestDatabase::on_own_server(pg.url()));
    let app = test_app_on(database, LICENSED).await;
    let user = create_user("pgdown").await;
    let flows = verified_flows(&app, std::slice::from_ref(&user)).await;
    let unverified = start_flow(&app, &user.sam).await;
    let logs = LogLines::default();
    let _capture = logs.capture();

    pg.down().await;
    // Every step needs the database first; all are refused before anything is done.
    let timed = |answer: Answer, started: Instant| (answer, started.elapsed());
    let now = Instant::now();
    let (reset, start, check, sign) = tokio::join!(
        async { timed(set_password(&app, &flows[0], "Pg-Down-Zebra-7!").await, now) },
        async {
            timed(
                app.post("/api/v1/reset", json!({"username": user.sam}), None)
                    .await,
                now,
            )
        },
        async { timed(verify(&app, &unverified, "totp", "123456").await, now) },
        async {
            let body = json!({"username": user.sam, "password": user.password});
            timed(
                app.post("/api/v1/enrollment/session", body, None).await,
                now,
            )
        },
    );
    for (what, (answer, took)) in [
        ("reset", reset),
        ("start", start),
        ("verify", check),
        ("sign-in", sign),
    ] {
        assert_eq!(
            answer.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{what}: {}",
            answer.body
        );
        let error = answer.error();
        assert_eq!(error.error, "storage_unavailable", "{what}");
        assert!(error.message.contains("database"), "{}", error.message);
        assert!(
            took < ACQUIRE_TIMEOUT + SLACK,
            "{what} answered after {took:?}"
        );
        eprintln!("PostgreSQL down: {what} answered 503 after {took:?}");
    }
    bind(&user.dn, &user.password)
        .await
        .expect("AD untouched while the database was down");
    // The audit cannot be written now; what was refused is in the log.
    let logged = logs.text();
    assert!(
        logged.matches("request failed").count() >= 4
            && logged.contains("the database is unavailable"),
        "{logged}"
    );

    pg.up().await;
    let back = Instant::now();
    // The same instance, no restart: the reset goes through on its flow, which the failed
    // attempt left as it was.
    set_password(&app, &flows[0], "Pg-Back-Zebra-7!")
        .await
        .expect(StatusCode::NO_CONTENT);
    eprintln!(
        "a reset went through {:?} after PostgreSQL was back",
        back.elapsed()
    );
    bind(&user.dn, "Pg-Back-Zebra-7!").await.expect("written");
    let store = app.database.store().await;
    let flow = store.flow(&token_hash(&unverified)).await.unwrap().unwrap();
    assert_eq!(
        (flow.verified().len(), flow.failures, flow.finished_at),
        (0, 0, None)
    );
    store.close().await;
    let audit = audit_rows(&app).await;
    let outcomes: Vec<_> = rows_of(&audit, &user.sam, "password_reset")
        .iter()
        .map(|r| r.outcome.as_str())
        .collect();
    assert_eq!(outcomes, ["success"]);
}

#[tokio::test]
async fn postgres_killed_mid_flow_leaves_nothing_half_written_and_the_same_instance_recovers() {
    const RESETS: usize = 6;
    const APART: Duration = Duration::from_millis(40);
    let pg = OwnPostgres::start_durable().await;
    let database = Arc::new(TestDatabase::on_own_server(pg.url()));
    let app = test_app_on(database, LICENSED).await;
    let mut users = Vec::with_capacity(RESETS);
    for _ in 0..RESETS {
        users.push(create_user("pgcrash").await);
    }
    let flows = verified_flows(&app, &users).await;
    let new = |i: usize| format!("Pg-Crash-{i}-Zebra-7!");
    let retry = |i: usize| format!("Pg-Retry-{i}-Zebra-7!");
    let logs = LogLines::default();
    let _capture = logs.capture();

    // Resets set off APART from each other, the crash among them: some are done before it, some
    // are caught in the middle (database or AD); the last two start once it is dead.
    let (crashed, crash_seen) = tokio::sync::watch::channel(false);
    let resets = futures::future::join_all(flows.iter().enumerate().map(|(i, flow)| {
        let app = &app;
        let password = new(i);
        let mut crash_seen = crash_seen.clone();
        async move {
            if i >= RESETS - 2 {
                crash_seen.wait_for(|c| *c).await.unwrap();
            } else {
                tokio::time::sleep(APART * u32::try_from(i).unwrap()).await;
            }
            let started = Instant::now();
            let answer = set_password(app, flow, &password).await;
            (answer, started.elapsed())
        }
    }));
    let crash = async {
        tokio::time::sleep(APART * 2 + APART / 2).await;
        pg.crash().await;
        crashed.send(true).unwrap();
    };
    let (answers, ()) = tokio::join!(resets, crash);
    let mut refused = Vec::new();
    for (i, (answer, took)) in answers.iter().enumerate() {
        eprintln!("reset {i}: {} after {took:?}", answer.status);
        assert!(
            *took < ACQUIRE_TIMEOUT + SLACK,
            "reset {i} answered after {took:?}"
        );
        match answer.status {
            StatusCode::NO_CONTENT => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(
                    answer.error().error,
                    "storage_unavailable",
                    "{}",
                    answer.body
                );
                refused.push(i);
            }
            other => panic!("reset {i}: {other} {}", answer.body),
        }
    }

    pg.up().await;
    assert!(
        pg.log().contains("was not properly shut down"),
        "no crash recovery: {}",
        pg.log()
    );
    let audit = audit_rows(&app).await;
    for (i, user) in users.iter().enumerate() {
        let takes_new = bind(&user.dn, &new(i)).await.is_ok();
        let takes_old = bind(&user.dn, &user.password).await.is_ok();
        assert!(
            takes_new != takes_old,
            "reset {i}: old password binds {takes_old}, new {takes_new}"
        );
        let succeeded = rows_of(&audit, &user.sam, "password_reset")
            .iter()
            .filter(|r| r.outcome.as_str() == "success")
            .count();
        if !refused.contains(&i) {
            assert!(
                takes_new,
                "reset {i} answered 204 but AD has the old password"
            );
            // AD took it before the crash: the row is in the database, or, when the crash came
            // between the write and the row, in the log at error level.
            let logged = logs
                .text()
                .lines()
                .filter(|l| {
                    l.contains("audit row not written")
                        && l.contains("password_reset")
                        && l.contains(&user.sam)
                })
                .count();
            assert_eq!(
                (succeeded + logged, succeeded.min(logged)),
                (1, 0),
                "reset {i} answered 204: its audit row ({succeeded} stored, {logged} logged)"
            );
            eprintln!("reset {i}: 204, audit row stored {succeeded}, logged {logged}");
            continue;
        }
        // Refused: the same flow goes through now, on the same instance.
        set_password(&app, &flows[i], &retry(i))
            .await
            .expect(StatusCode::NO_CONTENT);
        bind(&user.dn, &retry(i))
            .await
            .unwrap_or_else(|e| panic!("reset {i} retried: {e:?}"));
        eprintln!("reset {i}: refused (AD touched: {takes_new}), completed after recovery");
    }

    // And a flow begun after the crash, from start to end.
    let fresh = create_user("pgcrash").await;
    let flows = verified_flows(&app, std::slice::from_ref(&fresh)).await;
    set_password(&app, &flows[0], "Pg-Fresh-Zebra-7!")
        .await
        .expect(StatusCode::NO_CONTENT);
    bind(&fresh.dn, "Pg-Fresh-Zebra-7!").await.expect("written");
    let audit = audit_rows(&app).await;
    assert_eq!(rows_of(&audit, &fresh.sam, "password_reset").len(), 1);
}

/// Marks files immutable (`chattr +i`), which even root cannot write; undone when dropped.
struct Immutable(Vec<PathBuf>);

impl Immutable {
    /// `Err` with the reason when the file system has no such flag (tmpfs, overlayfs).
    fn make(files: &[PathBuf]) -> Result<Immutable, String> {
        let out = std::process::Command::new("chattr")
            .arg("+i")
            .args(files)
            .output()
            .map_err(|e| format!("chattr: {e}"))?;
        let made = Immutable(files.to_vec());
        if out.status.success() {
            Ok(made)
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let undone = std::process::Command::new("chattr")
            .arg("-i")
            .args(&self.0)
            .status();
        if !undone.is_ok_and(|s| s.success()) {
            eprintln!("chattr -i {:?} failed: remove the flag by hand", self.0);
        }
    }
}

/// Ignored in the normal runs because it needs `chattr +i` on the file system of the temporary
/// directory (ext4, xfs, btrfs; not tmpfs or overlayfs). scripts/test probes for that and runs
/// it with the other tests that must run alone, or says plainly that it was skipped.
#[tokio::test]
#[ignore = "needs chattr +i on the temp dir's file system; scripts/test runs it after a probe"]
async fn sqlite_made_read_only_stops_each_step_before_it_acts_and_recovers() {
    // A SQLite fault whatever SSPR_TEST_DATABASE says.
    let app = test_app_on(
        Arc::new(TestDatabase::fresh(Backend::Sqlite).await),
        LICENSED,
    )
    .await;
    let user = create_user("rodb").await;
    let flows = verified_flows(&app, std::slice::from_ref(&user)).await;
    let file = PathBuf::from(app.database.url.strip_prefix("sqlite://").unwrap());
    // Not the -shm file: SQLite maps it into memory, and a write there to an immutable file is
    // a SIGBUS for the whole process. The database and its log are what hold the data.
    let wal = file.with_extension("db-wal");
    assert!(wal.exists(), "WAL mode");
    let logs = LogLines::default();
    let _capture = logs.capture();
    let read_only = Immutable::make(&[file, wal])
        .unwrap_or_else(|why| panic!("cannot make the SQLite file immutable here: {why}"));

    // Reads work and writes fail: each step is stopped at its first write, before AD.
    let reset = set_password(&app, &flows[0], "Read-Only-Zebra-7!").await;
    let start = app
        .post("/api/v1/reset", json!({"username": user.sam}), None)
        .await;
    for (what, answer) in [("reset", reset), ("start", start)] {
        assert_eq!(
            answer.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{what}: {}",
            answer.body
        );
        assert_eq!(answer.error().error, "storage_unavailable", "{what}");
    }
    bind(&user.dn, &user.password)
        .await
        .expect("AD untouched while the database took no writes");
    let logged = logs.text();
    assert!(logged.matches("request failed").count() >= 2, "{logged}");

    drop(read_only);
    let back = Instant::now();
    set_password(&app, &flows[0], "Writable-Again-Zebra-7!")
        .await
        .expect(StatusCode::NO_CONTENT);
    eprintln!(
        "a reset went through {:?} after the SQLite file was writable again",
        back.elapsed()
    );
    start_flow(&app, &user.sam).await;
    let audit = audit_rows(&app).await;
    let outcomes: Vec<_> = rows_of(&audit, &user.sam, "password_reset")
        .iter()
        .map(|r| r.outcome.as_str())
        .collect();
    assert_eq!(outcomes, ["success"]);
}

// ------------------------------------------------------------------------------- the helpers

async fn audit_rows(app: &TestApp) -> Vec<AuditEvent> {
    let store = app.database.store().await;
    let rows = store
        .since(Timestamp::from_millis(0), 10_000)
        .await
        .unwrap();
    store.close().await;
    rows.into_iter().map(|r| r.event).collect()
}

fn rows_of<'a>(rows: &'a [AuditEvent], sam: &str, event: &str) -> Vec<&'a AuditEvent> {
    rows.iter()
        .filter(|r| r.event.as_str() == event && r.sam_account_name.as_deref() == Some(sam))
        .collect()
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
}

/// Runs `scripts/NAME ARGS` and asserts it succeeded.
async fn ctl(name: &str, args: &[&str]) {
    let out = tokio::process::Command::new(script(name))
        .args(args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("run {name}: {e}"));
    assert!(
        out.status.success(),
        "{name} {args:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// [`ctl`] from a destructor, which cannot fail.
fn ctl_blocking(name: &str, args: &[&str]) {
    match std::process::Command::new(script(name)).args(args).output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => eprintln!("{name} {args:?}: {}", String::from_utf8_lossy(&out.stderr)),
        Err(e) => eprintln!("run {name}: {e}"),
    }
}

/// What the service logs (warnings and errors) on this test's thread, where its in-process app
/// runs (`#[tokio::test]` is single-threaded): for what goes to the log instead of the audit.
#[derive(Clone, Default)]
struct LogLines(Arc<Mutex<Vec<u8>>>);

impl LogLines {
    fn capture(&self) -> tracing::subscriber::DefaultGuard {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(self.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogLines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogLines {
    type Writer = LogLines;

    fn make_writer(&'a self) -> LogLines {
        self.clone()
    }
}
