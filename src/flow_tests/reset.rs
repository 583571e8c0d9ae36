use std::time::Duration;

use super::*;
use crate::domain::clock::Timestamp;
use crate::domain::directory::{DirectoryError, DirectoryUser};
use crate::domain::error::FlowError;
use crate::domain::notify::{MailKind, Purpose};
use crate::domain::secrets::token_hash;
use crate::domain::store::{
    AuditKind, CodePurpose, CodeStore, FlowStore, Outcome, Person, ThrottleKey,
};

const OLD: &str = "Old-Harbor-2718";
const NEW: &str = "Blue-Harbor-7391";

/// Everything a start and an emailed code leave behind or answer that an observer could compare,
/// minus what must differ (the account, the address the code goes to).
#[derive(Debug, PartialEq, Eq)]
struct Shape {
    methods: Vec<MethodKind>,
    methods_required: usize,
    flow_token_len: usize,
    directory_calls: Vec<&'static str>,
    flow_row: (i64, i64, i64, Option<i64>, String),
    code_row_lifetime_ms: i64,
    queued: (&'static str, Purpose, i64),
}

#[tokio::test]
async fn a_decoy_start_writes_the_same_rows_and_answers_the_same_shape() {
    let f = Fakes::new().await;
    let ann = f.directory.add_user("ann", OLD);
    f.register_totp(&ann).await;
    f.register_email(&ann, "ann@home.test").await;
    let bob = f.directory.add_user("bob", OLD);
    f.register_totp(&bob).await;
    f.register_email(&bob, "bob@home.test").await;
    f.directory.disable(&bob);
    f.directory.add_user("cid", OLD);
    let reset = Reset::new(&f.deps);
    let client = f.client();

    let mut shapes = Vec::new();
    let mut flows = Vec::new();
    for login in ["ann", "nobody-here", "bob", "cid"] {
        f.directory.take_calls();
        let started = reset.start(login, &client).await.unwrap();
        // The same directory work for every login, in whatever order.
        let mut directory_calls = f.directory.take_calls();
        directory_calls.sort_unstable();
        let id_hash = token_hash(&started.flow);
        let row = f.store.flow(&id_hash).await.unwrap().expect("a flow row");
        reset.send_email_code(&started.flow, &client).await.unwrap();
        let code = f
            .store
            .code(CodePurpose::ResetEmail, &id_hash)
            .await
            .unwrap()
            .expect("a code row");
        let (queued, send_by) = f.outbox.queued().pop().expect("a queued mail");
        shapes.push(Shape {
            methods: started.methods,
            methods_required: started.methods_required,
            flow_token_len: started.flow.len(),
            directory_calls,
            flow_row: (
                row.expires_at.as_millis() - row.created_at.as_millis(),
                row.methods_required,
                row.failures,
                row.finished_at.map(Timestamp::as_millis),
                row.locale.tag().to_owned(),
            ),
            code_row_lifetime_ms: code.expires_at.as_millis() - code.created_at.as_millis(),
            queued: (
                queued.mail.kind.label(),
                queued.purpose,
                send_by - f.deps.now().as_millis(),
            ),
        });
        flows.push((row, queued, code.address));
    }
    // One search that finds an account, one that finds none, one read with the groups.
    assert_eq!(
        shapes[0].directory_calls,
        ["find_user", "find_user", "read_account"],
        "{:?}",
        shapes[0]
    );
    for (shape, login) in shapes.iter().zip(["ann", "nobody-here", "bob", "cid"]) {
        assert_eq!(shape, &shapes[0], "{login} differs from a real start");
    }
    assert_eq!(
        shapes[0].methods,
        [
            MethodKind::Totp,
            MethodKind::Email,
            MethodKind::Passkey,
            MethodKind::RecoveryCode
        ]
    );

    // Only the real one can ever succeed, and only it is mailed.
    let users: Vec<_> = flows.iter().map(|(row, _, _)| row.user).collect();
    assert_eq!(users, [Some(ann.guid), None, None, None]);
    let decoys: Vec<_> = flows.iter().map(|(_, q, _)| q.decoy).collect();
    assert_eq!(decoys, [false, true, true, true]);
    assert_eq!(flows[0].1.mail.to, "ann@home.test");
    assert_eq!(flows[0].2, "ann@home.test");
    assert!(flows[1..].iter().all(|(_, _, address)| address.is_empty()));
    assert!(
        f.mailer.sent().is_empty(),
        "codes go through the outbox only"
    );

    let audit = f.audit().await;
    let started: Vec<_> = audit
        .iter()
        .filter(|e| e.event == AuditKind::FlowStarted)
        .map(|e| (e.outcome.as_str(), e.reason.as_deref()))
        .collect();
    assert_eq!(
        started,
        [
            ("success", None),
            ("decoy", Some("unknown_user")),
            ("decoy", Some("disabled")),
            ("decoy", Some("not_registered")),
        ]
    );
    let sent: Vec<_> = audit
        .iter()
        .filter(|e| e.event == AuditKind::CodeSent)
        .map(|e| e.outcome.as_str())
        .collect();
    assert_eq!(sent, ["success", "decoy", "decoy", "decoy"]);
}

#[tokio::test]
async fn a_decoy_answers_a_code_like_a_real_flow_and_never_verifies() {
    let f = Fakes::new().await;
    let ann = f.directory.add_user("ann", OLD);
    let totp = f.register_totp(&ann).await;
    let reset = Reset::new(&f.deps);
    let client = f.client();
    let real = reset.start("ann", &client).await.unwrap();
    let decoy = reset.start("nobody-here", &client).await.unwrap();

    let wrong = wrong_totp(&f, &totp);
    for flow in [&real.flow, &decoy.flow] {
        let answer = reset.verify(flow, MethodKind::Totp, &wrong, &client).await;
        assert!(
            matches!(
                answer,
                Err(FlowError::InvalidCode {
                    remaining_attempts: 4
                })
            ),
            "{answer:?}"
        );
    }
    // Not even ann's right code opens the decoy, and the decoy cannot set a password.
    let answer = reset
        .verify(&decoy.flow, MethodKind::Totp, &f.totp_code(&totp), &client)
        .await;
    assert!(
        matches!(answer, Err(FlowError::InvalidCode { .. })),
        "{answer:?}"
    );
    let answer = reset.set_password(&decoy.flow, &secret(NEW), &client).await;
    assert!(matches!(answer, Err(FlowError::NotVerified)), "{answer:?}");
    assert!(f.directory.writes().is_empty());
}

#[tokio::test]
async fn a_failed_write_reopens_the_flow_for_another_attempt() {
    let f = Fakes::new().await;
    let ann = f.directory.add_user("ann", OLD);
    f.register_email(&ann, "ann@home.test").await;
    let totp = f.register_totp(&ann).await;
    let flow = verified_flow(&f, "ann", &totp).await;
    let reset = Reset::new(&f.deps);
    let client = f.client();
    let id_hash = token_hash(&flow);

    f.directory.fail_next_write(DirectoryError::Unavailable {
        detail: "dc1 went away".to_owned(),
    });
    let answer = reset.set_password(&flow, &secret(NEW), &client).await;
    assert!(
        matches!(
            answer,
            Err(FlowError::Directory(DirectoryError::Unavailable { .. }))
        ),
        "{answer:?}"
    );
    assert!(f.directory.writes().is_empty());
    assert!(f.directory.has_password(&ann, OLD));
    let row = f.store.flow(&id_hash).await.unwrap().unwrap();
    assert_eq!(row.finished_at, None, "the claim was given back");
    let failed = f.audit().await.pop().unwrap();
    assert_eq!(
        (
            failed.event.as_str(),
            failed.outcome.as_str(),
            failed.object_guid
        ),
        ("password_reset", "failure", Some(ann.guid))
    );

    // A write whose answer was lost is on record as unknown; the flow is open again all the same.
    f.directory
        .fail_next_write(DirectoryError::WriteUnconfirmed {
            detail: "connection reset".to_owned(),
        });
    assert!(
        reset
            .set_password(&flow, &secret(NEW), &client)
            .await
            .is_err()
    );
    assert_eq!(f.audit().await.pop().unwrap().outcome, Outcome::Unknown);

    f.clock.advance(Duration::from_secs(5));
    reset
        .set_password(&flow, &secret(NEW), &client)
        .await
        .unwrap();
    assert!(f.directory.has_password(&ann, NEW));
    assert_eq!(f.directory.writes().len(), 1);
    assert!(f.directory.writes()[0].unlock, "reset.unlock_on_reset");
    let row = f.store.flow(&id_hash).await.unwrap().unwrap();
    assert_eq!(row.finished_at, Some(f.deps.now()));
    assert_eq!(row.dc.as_deref(), Some("dc1.sspr.test"));
    let told: Vec<_> = f
        .outbox
        .queued()
        .into_iter()
        .filter(|(q, _)| matches!(q.mail.kind, MailKind::PasswordReset))
        .map(|(q, _)| q.mail.to)
        .collect();
    assert_eq!(told, ["ann@home.test", "ann@mail.sspr.test"]);

    // Single use from here on.
    let again = reset
        .set_password(&flow, &secret("Other-Harbor-1234"), &client)
        .await;
    assert!(matches!(again, Err(FlowError::FlowNotFound)), "{again:?}");
    assert!(f.directory.has_password(&ann, NEW));
}

#[tokio::test]
async fn of_two_racing_password_writes_one_wins() {
    let f = Fakes::new().await;
    let ann = f.directory.add_user("ann", OLD);
    let totp = f.register_totp(&ann).await;
    let flow = verified_flow(&f, "ann", &totp).await;
    // Long enough for the second request to reach its claim while the first is writing.
    f.directory.set_write_delay(Duration::from_millis(50));
    let reset = Reset::new(&f.deps);
    let client = f.client();

    let first = "Blue-Harbor-7391";
    let second = "Green-Meadow-4826";
    let (first_secret, second_secret) = (secret(first), secret(second));
    let (a, b) = tokio::join!(
        reset.set_password(&flow, &first_secret, &client),
        reset.set_password(&flow, &second_secret, &client),
    );
    let winner = match (&a, &b) {
        (Ok(()), Err(FlowError::FlowNotFound)) => first,
        (Err(FlowError::FlowNotFound), Ok(())) => second,
        other => panic!("not exactly one winner: {other:?}"),
    };
    let writes = f.directory.writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].new_password.as_deref(), Some(winner));
    assert!(f.directory.has_password(&ann, winner));
    let resets = f
        .audit()
        .await
        .into_iter()
        .filter(|e| e.event == AuditKind::PasswordReset && e.outcome == Outcome::Success)
        .count();
    assert_eq!(resets, 1);
}

/// What happens to an account in AD between the verification and the password step.
type Change = fn(&Fakes, &DirectoryUser);

#[tokio::test]
async fn a_renamed_replaced_or_disabled_account_is_refused_at_the_password_step() {
    let f = Fakes::new().await;
    let client = f.client();
    let reset = Reset::new(&f.deps);
    let change: [(&str, Change); 3] = [
        ("renamed", |f, user| f.directory.rename(user, "renamed")),
        ("disabled", |f, user| f.directory.disable(user)),
        ("replaced", |f, user| {
            f.directory.rename(user, "gone");
            f.directory.add_user(&user.sam_account_name, OLD);
        }),
    ];
    for (n, (what, change)) in change.into_iter().enumerate() {
        let sam = format!("user{n}");
        let user = f.directory.add_user(&sam, OLD);
        let totp = f.register_totp(&user).await;
        let flow = verified_flow(&f, &sam, &totp).await;
        change(&f, &user);

        let answer = reset.set_password(&flow, &secret(NEW), &client).await;
        assert!(
            matches!(answer, Err(FlowError::FlowNotFound)),
            "{what}: {answer:?}"
        );
        let answer = reset.unlock(&flow, &client).await;
        assert!(
            matches!(answer, Err(FlowError::FlowNotFound)),
            "{what}: {answer:?}"
        );
        assert!(f.directory.writes().is_empty(), "{what}");
        assert!(f.directory.has_password(&user, OLD), "{what}");
    }
}

#[tokio::test]
async fn an_unlock_clears_the_lockout_and_nothing_else() {
    let f = Fakes::new().await;
    let ann = f.directory.add_user("ann", OLD);
    let totp = f.register_totp(&ann).await;
    f.directory.lock_out(&ann);
    let flow = verified_flow(&f, "ann", &totp).await;
    Reset::new(&f.deps)
        .unlock(&flow, &f.client())
        .await
        .unwrap();
    let now = f.directory.user(&ann);
    assert_eq!((now.lockout_time, now.is_locked()), (0, false));
    assert!(f.directory.has_password(&ann, OLD));
    let writes = f.directory.writes();
    assert_eq!(
        writes
            .iter()
            .map(|w| (w.new_password.is_some(), w.unlock, w.must_change))
            .collect::<Vec<_>>(),
        [(false, true, false)]
    );
}

#[tokio::test]
async fn an_unknown_login_is_audited_and_throttled_only_as_its_keyed_hash() {
    use crate::domain::store::ThrottleStore;
    let f = Fakes::new().await;
    f.directory.add_user("ann", OLD);
    let reset = Reset::new(&f.deps);
    let client = f.client();
    // A password typed into the username box.
    let decoy = reset.start(" Hunter2-Secret! ", &client).await.unwrap();
    let answer = reset
        .verify(&decoy.flow, MethodKind::Totp, "123456", &client)
        .await;
    assert!(
        matches!(answer, Err(FlowError::InvalidCode { .. })),
        "{answer:?}"
    );
    reset.start("ANN", &client).await.unwrap();

    let hash = f.deps.keys.login_hash("hunter2-secret!");
    let audit = f.audit().await;
    for row in &audit {
        assert!(
            !format!("{row:?}").to_lowercase().contains("hunter2"),
            "{row:?}"
        );
    }
    let rows: Vec<_> = audit
        .iter()
        .map(|r| {
            (
                r.event.as_str(),
                r.sam_account_name.as_deref(),
                r.login_hash.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("flow_started", None, Some(hash.as_str())),
            ("verification", None, Some(hash.as_str())),
            ("flow_started", Some("ann"), None),
        ]
    );
    // The decoy's failure counts under the hash, for every spelling of the same text.
    let key = ThrottleKey::WrongCodes(Person::Login(f.deps.keys.login_hash("HUNTER2-SECRET!")));
    assert_eq!(
        f.store
            .count(&key.to_string(), Timestamp::from_millis(0))
            .await
            .unwrap(),
        1
    );
}
