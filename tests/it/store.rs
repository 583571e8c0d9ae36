//! The store on both databases it supports. Each test body runs twice: on a fresh SQLite file and
//! on a fresh schema of the PostgreSQL database at `SSPR_TEST_POSTGRES_URL` (set by
//! `scripts/test`), so no test sees another's rows, in this run or a concurrent one.

use std::net::TcpListener;

use sqlx::{AnyConnection, Connection};
use sspr_bridge::domain::ObjectGuid;
use sspr_bridge::domain::clock::Timestamp;
use sspr_bridge::domain::store::{
    AuditEvent, AuditKind, AuditLog, CodePurpose, CodeStore, EnrolledMethod, FlowStore, MethodKind,
    Notice, NoticeLog, Outcome, PendingCode, RegistrationStore, ResetFlow, Session, SessionKind,
    SessionStore, ThrottleStore,
};
use sspr_bridge::store::{Backend, FLOW_RETENTION_MS, Store, UNAVAILABLE};

const POSTGRES_URL_VAR: &str = "SSPR_TEST_POSTGRES_URL";

/// A database no other test uses, removed when the test passes. A failed test leaves its
/// directory or `sspr_test_*` schema behind for inspection.
struct TestDb {
    backend: Backend,
    url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Dir(tempfile::TempDir),
    Schema { server_url: String, schema: String },
}

impl TestDb {
    async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        TestDb {
            backend: Backend::Sqlite,
            url: format!("sqlite://{}/sspr.db", dir.path().display()),
            cleanup: Cleanup::Dir(dir),
        }
    }

    async fn postgres() -> TestDb {
        let (url, schema) = crate::harness::create_postgres_schema().await;
        TestDb {
            backend: Backend::Postgres,
            url,
            cleanup: Cleanup::Schema {
                server_url: crate::harness::env(POSTGRES_URL_VAR),
                schema,
            },
        }
    }

    /// A migrated store on this database; several may share it, like instances of the service.
    async fn store(&self) -> Store {
        let store = Store::connect(&self.url, 8).await.unwrap();
        assert_eq!(store.backend(), self.backend);
        store.migrate().await.unwrap();
        store
    }

    /// Reads one number with SQL the store does not expose.
    async fn scalar(&self, sql: &str) -> i64 {
        sqlx::any::install_default_drivers();
        let mut conn = AnyConnection::connect(&self.url).await.unwrap();
        let value = sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap();
        conn.close().await.unwrap();
        value
    }

    async fn remove(self) {
        match self.cleanup {
            Cleanup::Dir(dir) => dir.close().unwrap(),
            Cleanup::Schema { server_url, schema } => {
                crate::harness::drop_postgres_schema(&server_url, &schema, "30s")
                    .await
                    .unwrap();
            }
        }
    }
}

/// Declares each listed `async fn(&TestDb)` as a test on SQLite and one on PostgreSQL:
/// `store::sqlite::NAME` and `store::postgres::NAME`.
macro_rules! on_both_backends {
    ($($test:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $test() {
                    let db = super::TestDb::sqlite().await;
                    super::$test(&db).await;
                    db.remove().await;
                }
            )+
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $test() {
                    let db = super::TestDb::postgres().await;
                    super::$test(&db).await;
                    db.remove().await;
                }
            )+
        }
    };
}

on_both_backends!(
    migrating_again_changes_nothing,
    methods_round_trip_every_field,
    put_replaces_the_method_of_the_same_kind,
    remove_method_and_remove_all,
    totp_steps_only_move_forward,
    racing_instances_accept_a_totp_step_once,
    audit_events_come_back_by_time,
    ping_and_close,
    sessions_round_trip_every_field,
    sessions_are_never_returned_after_their_end,
    sessions_step_up_and_end_per_user,
    session_updates,
    racing_session_failures_are_all_counted,
    flows_round_trip_every_field,
    flow_updates,
    racing_flow_failures_are_all_counted,
    racing_instances_finish_a_flow_once,
    methods_verified_at_once_are_both_kept,
    codes_round_trip_and_a_resend_replaces,
    racing_instances_take_a_code_once,
    throttle_counts_hits_in_a_window,
    racing_hits_are_all_counted,
    blocks_extend_but_never_shorten,
    throttle_prune,
    prune_expired_keeps_what_is_still_needed,
    reconfirming_moves_only_the_confirmation,
    notices_are_claimed_once_per_interval,
    racing_runs_claim_a_notice_once,
);

fn guid() -> ObjectGuid {
    ObjectGuid(uuid::Uuid::new_v4())
}

fn totp() -> EnrolledMethod {
    EnrolledMethod {
        kind: MethodKind::Totp,
        address: None,
        // Every byte value, so no encoding step can hide a NUL, a high bit or a quote.
        secret_sealed: Some((0..=255).collect()),
        last_step: Some(58_000_000),
        confirmed_at: Some(Timestamp::from_millis(1_740_000_000_500)),
        created_at: Timestamp::from_millis(1_740_000_000_000),
    }
}

fn pending_email() -> EnrolledMethod {
    EnrolledMethod {
        kind: MethodKind::Email,
        address: Some("Jane.O'Doe+sspr@example.org".into()),
        secret_sealed: None,
        last_step: None,
        confirmed_at: None,
        created_at: Timestamp::from_millis(1_740_000_001_000),
    }
}

fn audit(at_ms: i64, event: AuditKind) -> AuditEvent {
    AuditEvent {
        at: Timestamp::from_millis(at_ms),
        event,
        outcome: Outcome::Success,
        object_guid: None,
        sam_account_name: None,
        actor: None,
        client_ip: None,
        method: None,
        reason: None,
        login_hash: None,
    }
}

async fn migrating_again_changes_nothing(db: &TestDb) {
    let store = db.store().await;
    let user = guid();
    store.put_method(&user, "jdoe", &totp()).await.unwrap();
    store
        .record(&audit(1, AuditKind::EnrollmentAdded))
        .await
        .unwrap();
    let applied = "SELECT COUNT(*) FROM _sqlx_migrations WHERE success";
    let before = db.scalar(applied).await;
    assert!(before >= 1);

    store.migrate().await.unwrap();
    // A second instance starting against the same database.
    db.store().await.migrate().await.unwrap();

    assert_eq!(db.scalar(applied).await, before);
    assert_eq!(store.methods(&user).await.unwrap(), [totp()]);
    assert_eq!(
        store
            .since(Timestamp::from_millis(0), 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn methods_round_trip_every_field(db: &TestDb) {
    let store = db.store().await;
    let (user, other) = (guid(), guid());
    assert!(store.methods(&user).await.unwrap().is_empty());

    store.put_method(&user, "jdoe", &totp()).await.unwrap();
    store
        .put_method(&user, "jdoe", &pending_email())
        .await
        .unwrap();
    let bare_totp = EnrolledMethod {
        secret_sealed: Some(Vec::new()),
        last_step: None,
        confirmed_at: None,
        ..totp()
    };
    store.put_method(&other, "other", &bare_totp).await.unwrap();

    assert_eq!(
        store.methods(&user).await.unwrap(),
        [pending_email(), totp()]
    );
    assert_eq!(store.methods(&other).await.unwrap(), [bare_totp]);
    let guids_in_canonical_form = format!(
        "SELECT COUNT(*) FROM enrollment_methods WHERE object_guid IN ('{user}', '{other}')"
    );
    assert_eq!(db.scalar(&guids_in_canonical_form).await, 3);
}

async fn put_replaces_the_method_of_the_same_kind(db: &TestDb) {
    let store = db.store().await;
    let user = guid();
    store.put_method(&user, "jdoe", &totp()).await.unwrap();
    store
        .put_method(&user, "jdoe", &pending_email())
        .await
        .unwrap();

    // A new TOTP enrolment: new secret, no step yet, pending again.
    let reenrolled = EnrolledMethod {
        secret_sealed: Some(vec![9; 60]),
        last_step: None,
        confirmed_at: None,
        created_at: Timestamp::from_millis(1_750_000_000_000),
        ..totp()
    };
    let confirmed_email = EnrolledMethod {
        address: Some("jdoe@example.net".into()),
        confirmed_at: Some(Timestamp::from_millis(1_750_000_000_000)),
        ..pending_email()
    };
    store.put_method(&user, "jane", &reenrolled).await.unwrap();
    store
        .put_method(&user, "jane", &confirmed_email)
        .await
        .unwrap();

    assert_eq!(
        store.methods(&user).await.unwrap(),
        [confirmed_email, reenrolled]
    );
    let renamed = format!(
        "SELECT COUNT(*) FROM enrollment_methods \
         WHERE object_guid = '{user}' AND sam_account_name = 'jane'"
    );
    assert_eq!(db.scalar(&renamed).await, 2);
}

async fn remove_method_and_remove_all(db: &TestDb) {
    let store = db.store().await;
    let (user, other) = (guid(), guid());
    for who in [&user, &other] {
        store.put_method(who, "jdoe", &totp()).await.unwrap();
        store
            .put_method(who, "jdoe", &pending_email())
            .await
            .unwrap();
    }

    assert!(store.remove_method(&user, MethodKind::Totp).await.unwrap());
    assert!(!store.remove_method(&user, MethodKind::Totp).await.unwrap());
    assert_eq!(store.methods(&user).await.unwrap(), [pending_email()]);

    store.put_method(&user, "jdoe", &totp()).await.unwrap();
    assert_eq!(store.remove_all(&user).await.unwrap(), 2);
    assert_eq!(store.remove_all(&user).await.unwrap(), 0);
    assert!(store.methods(&user).await.unwrap().is_empty());
    assert!(!store.remove_method(&user, MethodKind::Email).await.unwrap());

    assert_eq!(store.methods(&other).await.unwrap().len(), 2);
}

async fn totp_steps_only_move_forward(db: &TestDb) {
    let store = db.store().await;
    let user = guid();
    assert!(
        !store.advance_totp_step(&user, 1).await.unwrap(),
        "no methods"
    );
    store
        .put_method(&user, "jdoe", &pending_email())
        .await
        .unwrap();
    assert!(!store.advance_totp_step(&user, 1).await.unwrap(), "no TOTP");

    let fresh = EnrolledMethod {
        last_step: None,
        ..totp()
    };
    store.put_method(&user, "jdoe", &fresh).await.unwrap();
    assert!(
        store.advance_totp_step(&user, 0).await.unwrap(),
        "first step"
    );
    assert!(!store.advance_totp_step(&user, 0).await.unwrap());
    assert!(store.advance_totp_step(&user, 58_000_000).await.unwrap());
    assert!(!store.advance_totp_step(&user, 58_000_000).await.unwrap());
    assert!(!store.advance_totp_step(&user, 57_999_999).await.unwrap());
    assert!(!store.advance_totp_step(&user, -1).await.unwrap());
    assert!(store.advance_totp_step(&user, 58_000_001).await.unwrap());
    assert!(store.advance_totp_step(&user, i64::MAX).await.unwrap());
    assert!(!store.advance_totp_step(&user, i64::MAX).await.unwrap());

    let methods = store.methods(&user).await.unwrap();
    let expected = EnrolledMethod {
        last_step: Some(i64::MAX),
        ..fresh
    };
    assert_eq!(methods, [pending_email(), expected]);
}

async fn racing_instances_accept_a_totp_step_once(db: &TestDb) {
    // Two pools stand for two instances of the service behind a load balancer.
    let instances = [db.store().await, db.store().await];
    let user = guid();
    instances[0]
        .put_method(&user, "jdoe", &totp())
        .await
        .unwrap();

    for round in 1..=10 {
        let step = totp().last_step.unwrap() + round;
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(8));
        let racers: Vec<_> = (0..8)
            .map(|i| {
                let store = instances[i % 2].clone();
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.advance_totp_step(&user, step).await.unwrap()
                })
            })
            .collect();
        let mut accepted = 0;
        for racer in racers {
            accepted += usize::from(racer.await.unwrap());
        }
        assert_eq!(
            accepted, 1,
            "round {round}: step {step} accepted {accepted} times"
        );
    }
    let last_step = instances[1].methods(&user).await.unwrap()[0].last_step;
    assert_eq!(last_step, Some(totp().last_step.unwrap() + 10));
}

async fn audit_events_come_back_by_time(db: &TestDb) {
    let store = db.store().await;
    let everything = AuditEvent {
        outcome: Outcome::Denied,
        object_guid: Some(guid()),
        sam_account_name: Some("jdoe".into()),
        actor: Some("helpdesk.op".into()),
        client_ip: Some("2001:db8::7".into()),
        method: Some("email".into()),
        reason: Some("address 'not' registered; \"quoted\" ✓".into()),
        login_hash: Some("00112233445566778899aabbccddeeff".into()),
        ..audit(2_000, AuditKind::PasswordReset)
    };
    // Inserted out of time order, as instances with their own clocks may do.
    let inserted = [
        audit(3_000, AuditKind::Unlock),
        audit(1_000, AuditKind::SignIn),
        everything.clone(),
        audit(2_000, AuditKind::Verification),
        audit(999, AuditKind::FlowStarted),
    ];
    for event in &inserted {
        store.record(event).await.unwrap();
    }

    let all = store
        .since(Timestamp::from_millis(i64::MIN), 100)
        .await
        .unwrap();
    let by_insertion = {
        let mut records = all.clone();
        records.sort_by_key(|r| r.id);
        records.into_iter().map(|r| r.event).collect::<Vec<_>>()
    };
    assert_eq!(by_insertion, inserted, "ids follow insertion");
    let times: Vec<i64> = all.iter().map(|r| r.event.at.as_millis()).collect();
    assert_eq!(times, [999, 1_000, 2_000, 2_000, 3_000]);
    assert!(all[2].id < all[3].id, "equal times keep insertion order");
    assert_eq!(all[2].event, everything);

    let from_2000: Vec<_> = store
        .since(Timestamp::from_millis(2_000), 100)
        .await
        .unwrap();
    assert_eq!(from_2000, all[2..]);
    assert_eq!(
        store.since(Timestamp::from_millis(1_000), 2).await.unwrap(),
        all[1..3]
    );
    assert!(
        store
            .since(Timestamp::from_millis(3_001), 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .since(Timestamp::from_millis(0), 0)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn ping_and_close(db: &TestDb) {
    let store = db.store().await;
    store.ping().await.unwrap();
    store.close().await;
    let message = store.ping().await.unwrap_err().message;
    assert!(message.starts_with(UNAVAILABLE), "{message}");
}

#[tokio::test]
async fn a_refused_port_is_reported_unavailable_without_the_password() {
    // A port that was free a moment ago, so nothing should be listening on it.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://sspr:s3cret-pw@127.0.0.1:{port}/sspr");
    let message = Store::connect(&url, 2).await.unwrap_err().message;
    assert!(message.contains(UNAVAILABLE), "{message}");
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(!message.contains("s3cret-pw"), "{message}");
}

#[tokio::test]
async fn an_unsupported_scheme_names_the_supported_ones() {
    let message = Store::connect("mysql://root:s3cret-pw@db/sspr", 2)
        .await
        .unwrap_err()
        .message;
    for scheme in ["sqlite://", "postgres://", "postgresql://"] {
        assert!(message.contains(scheme), "{message}");
    }
    assert!(!message.contains("s3cret-pw"), "{message}");
}

#[tokio::test]
async fn an_sqlite_directory_that_cannot_be_created_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, b"").unwrap();
    let url = format!("sqlite://{}/sspr.db", file.display());
    let message = Store::connect(&url, 2).await.unwrap_err().message;
    assert!(message.contains("cannot create the directory"), "{message}");
}

/// A 32-byte hash that differs per `seed`, with a NUL and high bits in it.
fn hash(seed: u8) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..32).map(|i: u8| i.wrapping_mul(37) ^ seed).collect();
    bytes[0] = 0;
    bytes[31] = 0xff;
    bytes
}

const T0: i64 = 1_750_000_000_000;

fn session(seed: u8) -> Session {
    Session {
        token_hash: hash(seed),
        kind: SessionKind::Enrollment,
        user: guid(),
        sam_account_name: "jdoe".into(),
        created_at: Timestamp::from_millis(T0),
        expires_at: Timestamp::from_millis(T0 + 3_600_000),
        last_seen_at: Timestamp::from_millis(T0 + 10),
        pending_totp: Some((0..=255).rev().collect()),
        failures: 2,
        stepped_up_at: Some(Timestamp::from_millis(T0 + 20)),
    }
}

fn flow(seed: u8) -> ResetFlow {
    ResetFlow {
        id_hash: hash(seed),
        user: Some(guid()),
        login: "jane.o'doe@example.org".into(),
        sam_account_name: Some("jodoe".into()),
        methods_required: 2,
        verified_totp_at: Some(Timestamp::from_millis(T0 + 1)),
        verified_email_at: Some(Timestamp::from_millis(T0 + 2)),
        verified_passkey_at: Some(Timestamp::from_millis(T0 + 4)),
        failures: 1,
        created_at: Timestamp::from_millis(T0),
        expires_at: Timestamp::from_millis(T0 + 900_000),
        finished_at: Some(Timestamp::from_millis(T0 + 3)),
        dc: Some("dc1.example.org".into()),
        locale: sspr_bridge::domain::locale::Locale::Nl,
    }
}

/// A flow as it starts: nothing verified, failed or finished yet.
fn fresh_flow(seed: u8) -> ResetFlow {
    ResetFlow {
        verified_totp_at: None,
        verified_email_at: None,
        verified_passkey_at: None,
        failures: 0,
        finished_at: None,
        dc: None,
        ..flow(seed)
    }
}

fn code(purpose: CodePurpose, subject: Vec<u8>) -> PendingCode {
    PendingCode {
        purpose,
        subject,
        code_hash: hash(200),
        address: "Jane.O'Doe+sspr@example.org".into(),
        created_at: Timestamp::from_millis(T0),
        expires_at: Timestamp::from_millis(T0 + 600_000),
    }
}

/// Runs `n` copies of `task` at once, spread over `instances`, and returns their results.
async fn race<T, F, Fut>(instances: &[Store], n: usize, task: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(Store, usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(n));
    let racers: Vec<_> = (0..n)
        .map(|i| {
            let barrier = barrier.clone();
            let run = task(instances[i % instances.len()].clone(), i);
            tokio::spawn(async move {
                barrier.wait().await;
                run.await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(n);
    for racer in racers {
        results.push(racer.await.unwrap());
    }
    results
}

async fn sessions_round_trip_every_field(db: &TestDb) {
    let store = db.store().await;
    let enrollment = session(1);
    let helpdesk = Session {
        kind: SessionKind::Helpdesk,
        sam_account_name: "helpdesk.op".into(),
        pending_totp: None,
        failures: 0,
        stepped_up_at: None,
        ..session(2)
    };
    store.create_session(&enrollment).await.unwrap();
    store.create_session(&helpdesk).await.unwrap();

    let now = T0 + 60_000;
    assert_eq!(
        store
            .session(&hash(1), Timestamp::from_millis(now))
            .await
            .unwrap(),
        Some(enrollment.clone())
    );
    assert_eq!(
        store
            .session(&hash(2), Timestamp::from_millis(now))
            .await
            .unwrap(),
        Some(helpdesk)
    );
    assert_eq!(
        store
            .session(&hash(3), Timestamp::from_millis(now))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .session(&[], Timestamp::from_millis(now))
            .await
            .unwrap(),
        None
    );
    // A prefix of a token hash is not the token hash.
    assert_eq!(
        store
            .session(&hash(1)[..31], Timestamp::from_millis(now))
            .await
            .unwrap(),
        None
    );

    let message = store.create_session(&session(1)).await.unwrap_err().message;
    assert!(
        message.contains("refused"),
        "a token hash is unique: {message}"
    );
    let stored = format!(
        "SELECT COUNT(*) FROM sessions WHERE object_guid = '{}' AND kind = 'enrollment'",
        enrollment.user
    );
    assert_eq!(db.scalar(&stored).await, 1);
}

async fn sessions_step_up_and_end_per_user(db: &TestDb) {
    let store = db.store().await;
    let fresh = Session {
        stepped_up_at: None,
        ..session(1)
    };
    let same_user_other = Session {
        token_hash: hash(2),
        ..fresh.clone()
    };
    let same_user_helpdesk = Session {
        token_hash: hash(3),
        kind: SessionKind::Helpdesk,
        ..fresh.clone()
    };
    let someone_else = session(4);
    for s in [&fresh, &same_user_other, &same_user_helpdesk, &someone_else] {
        store.create_session(s).await.unwrap();
    }
    let now = T0 + 60_000;
    store
        .set_stepped_up(&hash(1), Timestamp::from_millis(now))
        .await
        .unwrap();
    let read = store
        .session(&hash(1), Timestamp::from_millis(now))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.stepped_up_at, Some(Timestamp::from_millis(now)));
    let other = store
        .session(&hash(2), Timestamp::from_millis(now))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(other.stepped_up_at, None, "one session's step-up only");

    let ended = store
        .delete_user_sessions(&fresh.user, SessionKind::Enrollment)
        .await
        .unwrap();
    assert_eq!(ended, 2);
    assert_eq!(
        store
            .session(&hash(1), Timestamp::from_millis(now))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .session(&hash(2), Timestamp::from_millis(now))
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .session(&hash(3), Timestamp::from_millis(now))
            .await
            .unwrap()
            .is_some(),
        "other kind kept"
    );
    assert!(
        store
            .session(&hash(4), Timestamp::from_millis(now))
            .await
            .unwrap()
            .is_some(),
        "other user kept"
    );
}

async fn sessions_are_never_returned_after_their_end(db: &TestDb) {
    let store = db.store().await;
    let s = session(1);
    store.create_session(&s).await.unwrap();
    let end = s.expires_at;
    assert!(
        store
            .session(&s.token_hash, Timestamp::from_millis(i64::MIN))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .session(&s.token_hash, end - std::time::Duration::from_millis(1))
            .await
            .unwrap()
            .is_some()
    );
    assert!(store.session(&s.token_hash, end).await.unwrap().is_none());
    assert!(
        store
            .session(&s.token_hash, end + std::time::Duration::from_millis(1))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .session(&s.token_hash, Timestamp::from_millis(i64::MAX))
            .await
            .unwrap()
            .is_none()
    );
}

async fn session_updates(db: &TestDb) {
    let store = db.store().await;
    let (s, other) = (session(1), session(2));
    store.create_session(&s).await.unwrap();
    store.create_session(&other).await.unwrap();
    let now = T0 + 1_000;
    let get = |token: Vec<u8>| {
        let store = store.clone();
        async move {
            store
                .session(&token, Timestamp::from_millis(now))
                .await
                .unwrap()
                .unwrap()
        }
    };

    store
        .touch_session(&s.token_hash, Timestamp::from_millis(T0 + 500))
        .await
        .unwrap();
    assert_eq!(
        get(hash(1)).await.last_seen_at,
        Timestamp::from_millis(T0 + 500)
    );
    store
        .touch_session(&s.token_hash, Timestamp::from_millis(T0 + 400))
        .await
        .unwrap();
    assert_eq!(
        get(hash(1)).await.last_seen_at,
        Timestamp::from_millis(T0 + 500),
        "a late touch does not move it back"
    );

    store.set_pending_totp(&s.token_hash, None).await.unwrap();
    assert_eq!(get(hash(1)).await.pending_totp, None);
    store
        .set_pending_totp(&s.token_hash, Some(&[0, 7, 0]))
        .await
        .unwrap();
    assert_eq!(get(hash(1)).await.pending_totp, Some(vec![0, 7, 0]));

    assert_eq!(store.add_session_failure(&s.token_hash).await.unwrap(), 3);
    assert_eq!(store.add_session_failure(&s.token_hash).await.unwrap(), 4);

    let expected = Session {
        last_seen_at: Timestamp::from_millis(T0 + 500),
        pending_totp: Some(vec![0, 7, 0]),
        failures: 4,
        ..s.clone()
    };
    assert_eq!(get(hash(1)).await, expected);
    assert_eq!(get(hash(2)).await, other, "other sessions are untouched");

    store.delete_session(&s.token_hash).await.unwrap();
    store.delete_session(&s.token_hash).await.unwrap();
    assert!(
        store
            .session(&s.token_hash, Timestamp::from_millis(now))
            .await
            .unwrap()
            .is_none()
    );
    // Updates of a session that is gone change nothing and are not errors...
    store
        .touch_session(&s.token_hash, Timestamp::from_millis(now))
        .await
        .unwrap();
    store.set_pending_totp(&s.token_hash, None).await.unwrap();
    // ...except a failure, which has no count to return.
    assert!(store.add_session_failure(&s.token_hash).await.is_err());
    assert_eq!(db.scalar("SELECT COUNT(*) FROM sessions").await, 1);
}

async fn racing_session_failures_are_all_counted(db: &TestDb) {
    let instances = [db.store().await, db.store().await];
    let s = Session {
        failures: 0,
        ..session(1)
    };
    instances[0].create_session(&s).await.unwrap();
    let mut counts = race(&instances, 20, |store, _| async move {
        store.add_session_failure(&hash(1)).await.unwrap()
    })
    .await;
    counts.sort_unstable();
    assert_eq!(counts, (1..=20).collect::<Vec<_>>());
    let stored = instances[1]
        .session(&hash(1), Timestamp::from_millis(T0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.failures, 20);
}

async fn flows_round_trip_every_field(db: &TestDb) {
    let store = db.store().await;
    let full = flow(1);
    // A decoy: no user behind the login.
    let decoy = ResetFlow {
        user: None,
        login: "nobody".into(),
        sam_account_name: None,
        methods_required: 1,
        ..fresh_flow(2)
    };
    store.create_flow(&full).await.unwrap();
    store.create_flow(&decoy).await.unwrap();

    assert_eq!(store.flow(&hash(1)).await.unwrap(), Some(full.clone()));
    assert_eq!(store.flow(&hash(2)).await.unwrap(), Some(decoy.clone()));
    assert_eq!(store.flow(&hash(3)).await.unwrap(), None);
    assert_eq!(
        full.verified(),
        [MethodKind::Totp, MethodKind::Email, MethodKind::Passkey]
    );
    assert!(decoy.verified().is_empty());

    assert!(store.create_flow(&flow(1)).await.is_err(), "ids are unique");
    let stored = format!(
        "SELECT COUNT(*) FROM reset_flows WHERE object_guid = '{}'",
        full.user.unwrap()
    );
    assert_eq!(db.scalar(&stored).await, 1);
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM reset_flows WHERE object_guid IS NULL")
            .await,
        1
    );
}

async fn flow_updates(db: &TestDb) {
    let store = db.store().await;
    let (f, other) = (fresh_flow(1), fresh_flow(2));
    store.create_flow(&f).await.unwrap();
    store.create_flow(&other).await.unwrap();

    store
        .mark_verified(
            &f.id_hash,
            MethodKind::Email,
            Timestamp::from_millis(T0 + 10),
        )
        .await
        .unwrap();
    let got = store.flow(&f.id_hash).await.unwrap().unwrap();
    assert_eq!(got.verified(), [MethodKind::Email]);
    store
        .mark_verified(
            &f.id_hash,
            MethodKind::Totp,
            Timestamp::from_millis(T0 + 20),
        )
        .await
        .unwrap();
    store
        .set_flow_dc(&f.id_hash, "dc2.example.org")
        .await
        .unwrap();
    assert_eq!(store.add_flow_failure(&f.id_hash).await.unwrap(), 1);
    assert_eq!(store.add_flow_failure(&f.id_hash).await.unwrap(), 2);
    assert!(
        store
            .finish_flow(&f.id_hash, Timestamp::from_millis(T0 + 30))
            .await
            .unwrap()
    );
    assert!(
        !store
            .finish_flow(&f.id_hash, Timestamp::from_millis(T0 + 40))
            .await
            .unwrap()
    );

    let expected = ResetFlow {
        verified_email_at: Some(Timestamp::from_millis(T0 + 10)),
        verified_totp_at: Some(Timestamp::from_millis(T0 + 20)),
        dc: Some("dc2.example.org".into()),
        failures: 2,
        finished_at: Some(Timestamp::from_millis(T0 + 30)),
        ..f.clone()
    };
    assert_eq!(store.flow(&f.id_hash).await.unwrap(), Some(expected));
    assert_eq!(store.flow(&other.id_hash).await.unwrap(), Some(other));

    // A flow that does not exist cannot be finished and has no failure count.
    assert!(
        !store
            .finish_flow(&hash(9), Timestamp::from_millis(T0))
            .await
            .unwrap()
    );
    assert!(store.add_flow_failure(&hash(9)).await.is_err());
    store
        .mark_verified(&hash(9), MethodKind::Totp, Timestamp::from_millis(T0))
        .await
        .unwrap();
    store.set_flow_dc(&hash(9), "dc1").await.unwrap();
    assert_eq!(db.scalar("SELECT COUNT(*) FROM reset_flows").await, 2);
}

async fn racing_flow_failures_are_all_counted(db: &TestDb) {
    let instances = [db.store().await, db.store().await];
    instances[0].create_flow(&fresh_flow(1)).await.unwrap();
    let mut counts = race(&instances, 20, |store, _| async move {
        store.add_flow_failure(&hash(1)).await.unwrap()
    })
    .await;
    counts.sort_unstable();
    assert_eq!(counts, (1..=20).collect::<Vec<_>>());
    let stored = instances[1].flow(&hash(1)).await.unwrap().unwrap();
    assert_eq!(stored.failures, 20);
}

async fn racing_instances_finish_a_flow_once(db: &TestDb) {
    let instances = [db.store().await, db.store().await];
    for round in 0..10u8 {
        instances[0].create_flow(&fresh_flow(round)).await.unwrap();
        let finished = race(&instances, 8, move |store, i| async move {
            let at = T0 + 100 + i as i64;
            (
                store
                    .finish_flow(&hash(round), Timestamp::from_millis(at))
                    .await
                    .unwrap(),
                at,
            )
        })
        .await;
        let winners: Vec<i64> = finished.iter().filter(|f| f.0).map(|f| f.1).collect();
        assert_eq!(winners.len(), 1, "round {round}: {finished:?}");
        let stored = instances[1].flow(&hash(round)).await.unwrap().unwrap();
        assert_eq!(
            stored.finished_at,
            Some(Timestamp::from_millis(winners[0])),
            "round {round}"
        );
    }
}

async fn methods_verified_at_once_are_both_kept(db: &TestDb) {
    let instances = [db.store().await, db.store().await];
    for round in 0..10u8 {
        instances[0].create_flow(&fresh_flow(round)).await.unwrap();
        race(&instances, 2, move |store, i| async move {
            let method = [MethodKind::Totp, MethodKind::Email][i];
            store
                .mark_verified(&hash(round), method, Timestamp::from_millis(T0 + i as i64))
                .await
                .unwrap();
        })
        .await;
        let stored = instances[1].flow(&hash(round)).await.unwrap().unwrap();
        assert_eq!(
            (stored.verified_totp_at, stored.verified_email_at),
            (
                Some(Timestamp::from_millis(T0)),
                Some(Timestamp::from_millis(T0 + 1))
            ),
            "round {round}"
        );
    }
}

async fn codes_round_trip_and_a_resend_replaces(db: &TestDb) {
    let store = db.store().await;
    let first = code(CodePurpose::ResetEmail, hash(1));
    store.put_code(&first).await.unwrap();
    // The same subject under another purpose is another code.
    let enroll = PendingCode {
        code_hash: hash(201),
        ..code(CodePurpose::EnrollEmail, hash(1))
    };
    store.put_code(&enroll).await.unwrap();
    let helpdesk = code(CodePurpose::HelpdeskEmail, hash(2));
    store.put_code(&helpdesk).await.unwrap();

    let get = |purpose, subject: Vec<u8>| {
        let store = store.clone();
        async move { store.code(purpose, &subject).await.unwrap() }
    };
    assert_eq!(
        get(CodePurpose::ResetEmail, hash(1)).await,
        Some(first.clone())
    );
    assert_eq!(
        get(CodePurpose::EnrollEmail, hash(1)).await,
        Some(enroll.clone())
    );
    assert_eq!(
        get(CodePurpose::HelpdeskEmail, hash(2)).await,
        Some(helpdesk.clone())
    );
    assert_eq!(get(CodePurpose::ResetEmail, hash(2)).await, None);

    let resent = PendingCode {
        code_hash: hash(202),
        address: "other@example.net".into(),
        created_at: Timestamp::from_millis(T0 + 60_000),
        expires_at: Timestamp::from_millis(T0 + 660_000),
        ..first.clone()
    };
    store.put_code(&resent).await.unwrap();
    assert_eq!(get(CodePurpose::ResetEmail, hash(1)).await, Some(resent));
    assert_eq!(get(CodePurpose::EnrollEmail, hash(1)).await, Some(enroll));
    assert_eq!(db.scalar("SELECT COUNT(*) FROM pending_codes").await, 3);
}

async fn racing_instances_take_a_code_once(db: &TestDb) {
    let instances = [db.store().await, db.store().await];
    for round in 0..10u8 {
        let subject = hash(round);
        instances[0]
            .put_code(&code(CodePurpose::ResetEmail, subject.clone()))
            .await
            .unwrap();
        instances[0]
            .put_code(&code(CodePurpose::EnrollEmail, subject.clone()))
            .await
            .unwrap();
        let taken = race(&instances, 8, move |store, _| async move {
            store
                .take_code(CodePurpose::ResetEmail, &hash(round), &hash(200))
                .await
                .unwrap()
        })
        .await;
        let takers = taken.iter().filter(|t| **t).count();
        assert_eq!(takers, 1, "round {round}: {taken:?}");
        let store = &instances[1];
        assert_eq!(
            store.code(CodePurpose::ResetEmail, &subject).await.unwrap(),
            None
        );
        assert!(
            !store
                .take_code(CodePurpose::ResetEmail, &subject, &hash(200))
                .await
                .unwrap()
        );
        assert!(
            store
                .code(CodePurpose::EnrollEmail, &subject)
                .await
                .unwrap()
                .is_some(),
            "round {round}: only the code of that purpose is taken"
        );
    }
}

async fn throttle_counts_hits_in_a_window(db: &TestDb) {
    let store = db.store().await;
    let key = "login:jane.o'doe";
    assert_eq!(
        store
            .count(key, Timestamp::from_millis(i64::MIN))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .hit(
                key,
                Timestamp::from_millis(1_000),
                Timestamp::from_millis(0)
            )
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .hit(
                key,
                Timestamp::from_millis(2_000),
                Timestamp::from_millis(0)
            )
            .await
            .unwrap(),
        2
    );
    // Two events in the same millisecond are two events.
    assert_eq!(
        store
            .hit(
                key,
                Timestamp::from_millis(2_000),
                Timestamp::from_millis(0)
            )
            .await
            .unwrap(),
        3
    );
    // The window starts at `since_ms`, inclusive, and the new event is counted.
    assert_eq!(
        store
            .hit(
                key,
                Timestamp::from_millis(3_000),
                Timestamp::from_millis(2_000)
            )
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        store
            .hit(
                key,
                Timestamp::from_millis(4_000),
                Timestamp::from_millis(4_000)
            )
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .hit(
                "ip:2001:db8::1",
                Timestamp::from_millis(4_000),
                Timestamp::from_millis(0)
            )
            .await
            .unwrap(),
        1
    );

    assert_eq!(
        store
            .count(key, Timestamp::from_millis(i64::MIN))
            .await
            .unwrap(),
        5
    );
    assert_eq!(
        store
            .count(key, Timestamp::from_millis(1_000))
            .await
            .unwrap(),
        5
    );
    assert_eq!(
        store
            .count(key, Timestamp::from_millis(1_001))
            .await
            .unwrap(),
        4
    );
    assert_eq!(
        store
            .count(key, Timestamp::from_millis(2_001))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .count(key, Timestamp::from_millis(4_000))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .count(key, Timestamp::from_millis(4_001))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .count("LOGIN:JANE.O'DOE", Timestamp::from_millis(0))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .count("ip:2001:db8::1", Timestamp::from_millis(0))
            .await
            .unwrap(),
        1
    );
}

async fn racing_hits_are_all_counted(db: &TestDb) {
    let instances = [db.store().await, db.store().await];
    let counts = race(&instances, 20, |store, i| async move {
        store
            .hit(
                "ip:192.0.2.1",
                Timestamp::from_millis(T0 + i as i64),
                Timestamp::from_millis(T0),
            )
            .await
            .unwrap()
    })
    .await;
    // Each sees at least its own event, and whoever counted last saw them all: no number of
    // concurrent attempts stays under a limit.
    assert!(counts.iter().all(|c| (1..=20).contains(c)), "{counts:?}");
    assert_eq!(counts.iter().max(), Some(&20), "{counts:?}");
    assert_eq!(
        instances[0]
            .count("ip:192.0.2.1", Timestamp::from_millis(T0))
            .await
            .unwrap(),
        20
    );
}

async fn blocks_extend_but_never_shorten(db: &TestDb) {
    let instances = [db.store().await, db.store().await];
    let store = &instances[0];
    let key = "login:jdoe";
    assert_eq!(
        store
            .blocked_until(key, Timestamp::from_millis(T0))
            .await
            .unwrap(),
        None
    );

    store
        .block(key, Timestamp::from_millis(T0 + 1_000))
        .await
        .unwrap();
    assert_eq!(
        store
            .blocked_until(key, Timestamp::from_millis(T0))
            .await
            .unwrap(),
        Some(Timestamp::from_millis(T0 + 1_000))
    );
    assert_eq!(
        store
            .blocked_until(key, Timestamp::from_millis(T0 + 999))
            .await
            .unwrap(),
        Some(Timestamp::from_millis(T0 + 1_000))
    );
    assert_eq!(
        store
            .blocked_until(key, Timestamp::from_millis(T0 + 1_000))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .blocked_until("login:other", Timestamp::from_millis(T0))
            .await
            .unwrap(),
        None
    );

    store
        .block(key, Timestamp::from_millis(T0 + 500))
        .await
        .unwrap();
    assert_eq!(
        store
            .blocked_until(key, Timestamp::from_millis(T0))
            .await
            .unwrap(),
        Some(Timestamp::from_millis(T0 + 1_000)),
        "an earlier end does not shorten"
    );
    store
        .block(key, Timestamp::from_millis(T0 + 5_000))
        .await
        .unwrap();
    assert_eq!(
        store
            .blocked_until(key, Timestamp::from_millis(T0 + 1_000))
            .await
            .unwrap(),
        Some(Timestamp::from_millis(T0 + 5_000)),
        "a later end extends"
    );

    // Instances blocking at once: the latest end wins whatever the order.
    let racing_key = "ip:198.51.100.7";
    race(&instances, 8, |store, i| async move {
        store
            .block(racing_key, Timestamp::from_millis(T0 + 100 * i as i64))
            .await
            .unwrap()
    })
    .await;
    assert_eq!(
        store
            .blocked_until(racing_key, Timestamp::from_millis(T0))
            .await
            .unwrap(),
        Some(Timestamp::from_millis(T0 + 700))
    );
}

async fn throttle_prune(db: &TestDb) {
    let store = db.store().await;
    for at in [1_000, 2_000, 2_999, 3_000, 4_000] {
        store
            .hit("a", Timestamp::from_millis(at), Timestamp::from_millis(0))
            .await
            .unwrap();
    }
    store
        .hit(
            "b",
            Timestamp::from_millis(1_000),
            Timestamp::from_millis(0),
        )
        .await
        .unwrap();
    store
        .block("a", Timestamp::from_millis(2_000))
        .await
        .unwrap();
    store
        .block("b", Timestamp::from_millis(3_000))
        .await
        .unwrap();
    store
        .block("c", Timestamp::from_millis(9_000))
        .await
        .unwrap();

    // Events at or after 3 000 and blocks ending at or after it stay.
    assert_eq!(
        store.prune(Timestamp::from_millis(3_000)).await.unwrap(),
        4 + 1
    );
    assert_eq!(
        store
            .count("a", Timestamp::from_millis(i64::MIN))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .count("b", Timestamp::from_millis(i64::MIN))
            .await
            .unwrap(),
        0
    );
    assert_eq!(db.scalar("SELECT COUNT(*) FROM throttle_blocks").await, 2);
    assert_eq!(
        store
            .blocked_until("c", Timestamp::from_millis(3_000))
            .await
            .unwrap(),
        Some(Timestamp::from_millis(9_000))
    );
    assert_eq!(store.prune(Timestamp::from_millis(3_000)).await.unwrap(), 0);
    assert_eq!(
        store.prune(Timestamp::from_millis(i64::MAX)).await.unwrap(),
        4
    );
}

async fn prune_expired_keeps_what_is_still_needed(db: &TestDb) {
    let store = db.store().await;
    let now = T0 + 10 * FLOW_RETENTION_MS;
    for (seed, expires) in [(1, now - 1), (2, now), (3, now + 1)] {
        let s = Session {
            expires_at: Timestamp::from_millis(expires),
            ..session(seed)
        };
        store.create_session(&s).await.unwrap();
        let c = PendingCode {
            expires_at: Timestamp::from_millis(expires),
            ..code(CodePurpose::EnrollEmail, hash(seed))
        };
        store.put_code(&c).await.unwrap();
    }
    let horizon = now - FLOW_RETENTION_MS;
    for (seed, expires) in [(1, horizon - 1), (2, horizon), (3, now - 1), (4, now + 1)] {
        let f = ResetFlow {
            expires_at: Timestamp::from_millis(expires),
            ..flow(seed)
        };
        store.create_flow(&f).await.unwrap();
    }
    store
        .hit("a", Timestamp::from_millis(0), Timestamp::from_millis(0))
        .await
        .unwrap();

    // Sessions and codes that ended at `now`, flows that ended more than a day before.
    assert_eq!(
        store
            .prune_expired(Timestamp::from_millis(now))
            .await
            .unwrap(),
        2 + 2 + 1
    );
    assert!(
        store
            .session(&hash(3), Timestamp::from_millis(now))
            .await
            .unwrap()
            .is_some()
    );
    for (purpose, seed, kept) in [
        (CodePurpose::EnrollEmail, 2, false),
        (CodePurpose::EnrollEmail, 3, true),
    ] {
        assert_eq!(
            store.code(purpose, &hash(seed)).await.unwrap().is_some(),
            kept,
            "code {seed}"
        );
    }
    for (seed, kept) in [(1, false), (2, true), (3, true), (4, true)] {
        assert_eq!(
            store.flow(&hash(seed)).await.unwrap().is_some(),
            kept,
            "flow {seed}"
        );
    }
    assert_eq!(db.scalar("SELECT COUNT(*) FROM sessions").await, 1);
    assert_eq!(
        store
            .count("a", Timestamp::from_millis(i64::MIN))
            .await
            .unwrap(),
        1,
        "not throttles"
    );
    assert_eq!(
        store
            .prune_expired(Timestamp::from_millis(now))
            .await
            .unwrap(),
        0
    );
}

async fn reconfirming_moves_only_the_confirmation(db: &TestDb) {
    let store = db.store().await;
    let user = guid();
    assert!(
        !store
            .reconfirm_method(&user, MethodKind::Totp, Timestamp::from_millis(T0))
            .await
            .unwrap()
    );
    store.put_method(&user, "jdoe", &totp()).await.unwrap();
    store
        .put_method(&user, "jdoe", &pending_email())
        .await
        .unwrap();
    assert!(
        !store
            .reconfirm_method(&user, MethodKind::Email, Timestamp::from_millis(T0))
            .await
            .unwrap(),
        "a pending method is confirmed by its code, not reconfirmed"
    );
    assert!(
        store
            .reconfirm_method(&user, MethodKind::Totp, Timestamp::from_millis(T0))
            .await
            .unwrap()
    );
    let methods = store.methods(&user).await.unwrap();
    assert_eq!(methods[0], pending_email());
    assert_eq!(
        methods[1],
        EnrolledMethod {
            confirmed_at: Some(Timestamp::from_millis(T0)),
            ..totp()
        }
    );
}

fn notice(user: ObjectGuid, key: &str, sent_at: i64) -> Notice {
    Notice {
        user,
        kind: "password_expiry".into(),
        key: key.into(),
        sent_at: Timestamp::from_millis(sent_at),
    }
}

async fn notices_are_claimed_once_per_interval(db: &TestDb) {
    let store = db.store().await;
    let (user, other) = (guid(), guid());
    let sent_at = |user, key: &'static str| {
        let store = store.clone();
        async move {
            store
                .notice_sent_at(&user, "password_expiry", key)
                .await
                .unwrap()
        }
    };
    assert_eq!(sent_at(user, "7:1").await, None);
    assert!(
        store
            .claim_notice(&notice(user, "7:1", T0), Timestamp::from_millis(i64::MIN))
            .await
            .unwrap()
    );
    assert_eq!(sent_at(user, "7:1").await, Some(Timestamp::from_millis(T0)));
    // Once ever (i64::MIN): never again; other keys and users are their own.
    assert!(
        !store
            .claim_notice(
                &notice(user, "7:1", T0 + 1),
                Timestamp::from_millis(i64::MIN)
            )
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_notice(&notice(user, "7:2", T0), Timestamp::from_millis(i64::MIN))
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_notice(&notice(other, "7:1", T0), Timestamp::from_millis(i64::MIN))
            .await
            .unwrap()
    );
    // Once per interval: again only when the last one is older than `since`.
    assert!(
        !store
            .claim_notice(&notice(user, "7:1", T0 + 10), Timestamp::from_millis(T0))
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_notice(
                &notice(user, "7:1", T0 + 10),
                Timestamp::from_millis(T0 + 1)
            )
            .await
            .unwrap()
    );
    assert_eq!(
        sent_at(user, "7:1").await,
        Some(Timestamp::from_millis(T0 + 10))
    );
    // A release takes back only the claim it names.
    store
        .release_notice(&notice(user, "7:1", T0))
        .await
        .unwrap();
    assert_eq!(
        sent_at(user, "7:1").await,
        Some(Timestamp::from_millis(T0 + 10))
    );
    store
        .release_notice(&notice(user, "7:1", T0 + 10))
        .await
        .unwrap();
    assert_eq!(sent_at(user, "7:1").await, None);
    assert_eq!(
        sent_at(other, "7:1").await,
        Some(Timestamp::from_millis(T0))
    );
}

async fn racing_runs_claim_a_notice_once(db: &TestDb) {
    let instances = [db.store().await, db.store().await];
    let user = guid();
    let claimed = race(&instances, 8, move |store, i| async move {
        store
            .claim_notice(
                &notice(user, "14:1", T0 + i as i64),
                Timestamp::from_millis(T0),
            )
            .await
            .unwrap()
    })
    .await;
    assert_eq!(claimed.iter().filter(|c| **c).count(), 1, "{claimed:?}");
}
