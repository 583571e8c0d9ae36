//! One transaction per step: a step the database cannot finish leaves nothing behind, however
//! far it got. Each test makes one insert fail with a trigger, as a full disk or a lost
//! connection would make any of them fail.

use super::*;
use crate::domain::directory::DirectoryUser;
use crate::domain::error::FlowError;
use crate::domain::secrets::token_hash;
use crate::domain::store::{AuditKind, FlowStore, Outcome, Person, ThrottleKey, ThrottleStore};

/// Makes inserts of audit rows of `event` with `outcome` fail.
async fn refuse_audit(f: &Fakes, event: &str, outcome: &str) {
    f.store
        .execute_sql(&format!(
            "CREATE TRIGGER refuse BEFORE INSERT ON audit_events
             WHEN NEW.event = '{event}' AND NEW.outcome = '{outcome}'
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        ))
        .await;
}

async fn allow_audit(f: &Fakes) {
    f.store.execute_sql("DROP TRIGGER refuse").await;
}

/// ann, with an authenticator app (its secret), and a reset flow she started.
async fn ann_started(f: &Fakes) -> (DirectoryUser, Vec<u8>, String) {
    let ann = f.directory.add_user("ann", "Old-Harbor-2718");
    let totp = f.register_totp(&ann).await;
    let started = Reset::new(&f.deps).start("ann", &f.client()).await;
    (ann, totp, started.unwrap().flow)
}

/// ann, with an authenticator app, and a reset flow she started and verified with it.
async fn ann_verified(f: &Fakes) -> (DirectoryUser, String) {
    let ann = f.directory.add_user("ann", "Old-Harbor-2718");
    let totp = f.register_totp(&ann).await;
    let flow = verified_flow(f, "ann", &totp).await;
    (ann, flow)
}

#[tokio::test]
async fn a_right_code_the_database_cannot_record_is_not_spent() {
    let f = Fakes::new().await;
    let (_, totp, flow) = ann_started(&f).await;
    let (reset, client) = (Reset::new(&f.deps), f.client());
    let code = f.totp_code(&totp);

    refuse_audit(&f, "verification", "success").await;
    let refused = reset.verify(&flow, MethodKind::Totp, &code, &client).await;
    assert!(matches!(refused, Err(FlowError::Store(_))), "{refused:?}");
    let row = f.store.flow(&token_hash(&flow)).await.unwrap().unwrap();
    assert_eq!((row.verified_totp_at, row.failures), (None, 0));

    // The app's step was not spent with it: the same code verifies once the row can be written.
    allow_audit(&f).await;
    let verified = reset
        .verify(&flow, MethodKind::Totp, &code, &client)
        .await
        .unwrap();
    assert_eq!(verified.remaining, 0);
    // And is spent now.
    let again = reset.start("ann", &client).await.unwrap();
    let replayed = reset
        .verify(&again.flow, MethodKind::Totp, &code, &client)
        .await;
    assert!(
        matches!(replayed, Err(FlowError::InvalidCode { .. })),
        "{replayed:?}"
    );
}

#[tokio::test]
async fn a_wrong_code_the_database_cannot_record_counts_nowhere() {
    let f = Fakes::new().await;
    let (ann, totp, flow) = ann_started(&f).await;
    let (reset, client) = (Reset::new(&f.deps), f.client());

    refuse_audit(&f, "verification", "failure").await;
    let refused = reset
        .verify(&flow, MethodKind::Totp, &wrong_totp(&f, &totp), &client)
        .await;
    assert!(matches!(refused, Err(FlowError::Store(_))), "{refused:?}");
    let row = f.store.flow(&token_hash(&flow)).await.unwrap().unwrap();
    assert_eq!(row.failures, 0, "the flow's count");
    let wrong_codes = ThrottleKey::WrongCodes(Person::User(ann.guid)).to_string();
    let counted = f
        .store
        .count(
            &wrong_codes,
            crate::domain::clock::Timestamp::from_millis(0),
        )
        .await
        .unwrap();
    assert_eq!(counted, 0, "the user's count");
}

#[tokio::test]
async fn a_start_or_a_code_the_database_cannot_record_leaves_no_row() {
    let f = Fakes::new().await;
    let ann = f.directory.add_user("ann", "Old-Harbor-2718");
    f.register_email(&ann, "ann@home.test").await;
    let reset = Reset::new(&f.deps);
    let client = f.client();

    refuse_audit(&f, "flow_started", "success").await;
    let refused = reset.start("ann", &client).await;
    assert!(matches!(refused, Err(FlowError::Store(_))), "{refused:?}");
    assert_eq!(f.store.rows_in("reset_flows").await, 0);
    allow_audit(&f).await;

    let flow = reset.start("ann", &client).await.unwrap().flow;
    refuse_audit(&f, "code_sent", "success").await;
    let refused = reset.send_email_code(&flow, &client).await;
    assert!(matches!(refused, Err(FlowError::Store(_))), "{refused:?}");
    assert_eq!(f.store.rows_in("pending_codes").await, 0);
    allow_audit(&f).await;
    reset.send_email_code(&flow, &client).await.unwrap();
    assert_eq!(f.store.rows_in("pending_codes").await, 1);
}

#[tokio::test]
async fn a_password_step_whose_request_goes_away_still_ends_and_is_audited() {
    let f = Fakes::new().await;
    let (ann, flow) = ann_verified(&f).await;
    let reset = Reset::new(&f.deps);

    // Polled once, then dropped, as a request is when its client goes away.
    let (password, client) = (secret("Blue-Harbor-7391"), f.client());
    let asked = reset.set_password(&flow, &password, &client);
    let dropped = tokio::time::timeout(std::time::Duration::ZERO, asked).await;
    assert!(
        dropped.is_err(),
        "the request was dropped before its answer"
    );

    let mut audited = None;
    for _ in 0..500 {
        audited = f
            .audit()
            .await
            .into_iter()
            .find(|e| e.event == AuditKind::PasswordReset);
        if audited.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let audited = audited.expect("the reset was audited");
    assert_eq!(
        (audited.outcome, audited.object_guid),
        (Outcome::Success, Some(ann.guid))
    );
    assert!(f.directory.has_password(&ann, "Blue-Harbor-7391"));
    let row = f.store.flow(&token_hash(&flow)).await.unwrap().unwrap();
    assert!(row.finished_at.is_some() && row.dc.is_some(), "{row:?}");
}

/// What is logged on this test's thread (`#[tokio::test]` runs every task on it).
#[derive(Clone, Default)]
struct Logged(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logged {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_reset_whose_records_cannot_commit_stands_and_its_audit_row_is_logged() {
    let f = Fakes::new().await;
    let (ann, flow) = ann_verified(&f).await;
    // The reset's audit row brings a row that no commit accepts.
    for sql in [
        "CREATE TABLE parent (id INTEGER PRIMARY KEY)",
        "CREATE TABLE orphan (parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)",
        "CREATE TRIGGER orphaned AFTER INSERT ON audit_events WHEN NEW.event = 'password_reset'
         BEGIN INSERT INTO orphan VALUES (1); END",
    ] {
        f.store.execute_sql(sql).await;
    }
    let logged = Logged::default();
    let writer = logged.clone();
    let _capture = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish(),
    );

    Reset::new(&f.deps)
        .set_password(&flow, &secret("Blue-Harbor-7391"), &f.client())
        .await
        .expect("the change stands, and the user hears so");
    assert!(f.directory.has_password(&ann, "Blue-Harbor-7391"));
    let row = f.store.flow(&token_hash(&flow)).await.unwrap().unwrap();
    assert!(row.finished_at.is_some(), "claimed before the write");
    assert_eq!(row.dc, None, "recorded in the step that did not commit");
    assert!(
        f.audit()
            .await
            .iter()
            .all(|e| e.event != AuditKind::PasswordReset)
    );
    let text = String::from_utf8(logged.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<_> = text
        .lines()
        .filter(|l| l.contains("audit row not written") && l.contains("password_reset"))
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(
        lines[0].contains("ann") && lines[0].contains("ERROR"),
        "{text}"
    );
}
