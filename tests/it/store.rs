//! The store on both databases it supports. Each test body runs twice: on a fresh SQLite file and
//! on a fresh schema of the PostgreSQL database at `SSPR_TEST_POSTGRES_URL` (set by
//! `scripts/test`), so no test sees another's rows, in this run or a concurrent one.

use std::net::TcpListener;

use sqlx::{AnyConnection, Connection, Executor, PgConnection};
use sspr_bridge::domain::ObjectGuid;
use sspr_bridge::domain::store::{
    AuditEvent, AuditLog, EnrolledMethod, MethodKind, RegistrationStore,
};
use sspr_bridge::store::{Backend, Store, UNAVAILABLE};

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
        let server_url = std::env::var(POSTGRES_URL_VAR).unwrap_or_else(|_| {
            panic!(
                "{POSTGRES_URL_VAR} is not set: run the PostgreSQL store tests through \
                 scripts/test, which starts PostgreSQL and sets it"
            )
        });
        let schema = format!("sspr_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(&server_url).await.unwrap();
        conn.execute(format!("CREATE SCHEMA {schema}").as_str())
            .await
            .unwrap();
        conn.close().await.unwrap();
        // Unqualified names, sqlx's `_sqlx_migrations` included, then resolve in the new schema.
        let mut url = url::Url::parse(&server_url).unwrap();
        url.query_pairs_mut()
            .append_pair("options", &format!("-c search_path={schema}"));
        TestDb {
            backend: Backend::Postgres,
            url: url.into(),
            cleanup: Cleanup::Schema { server_url, schema },
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
                let mut conn = PgConnection::connect(&server_url).await.unwrap();
                conn.execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
                    .await
                    .unwrap();
                conn.close().await.unwrap();
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
        confirmed_at_ms: Some(1_740_000_000_500),
        created_at_ms: 1_740_000_000_000,
    }
}

fn pending_email() -> EnrolledMethod {
    EnrolledMethod {
        kind: MethodKind::Email,
        address: Some("Jane.O'Doe+sspr@example.org".into()),
        secret_sealed: None,
        last_step: None,
        confirmed_at_ms: None,
        created_at_ms: 1_740_000_001_000,
    }
}

fn audit(at_ms: i64, event: &str) -> AuditEvent {
    AuditEvent {
        at_ms,
        event: event.into(),
        outcome: "success".into(),
        object_guid: None,
        sam_account_name: None,
        actor: None,
        client_ip: None,
        method: None,
        reason: None,
    }
}

async fn migrating_again_changes_nothing(db: &TestDb) {
    let store = db.store().await;
    let user = guid();
    store.put_method(&user, "jdoe", &totp()).await.unwrap();
    store.record(&audit(1, "enrollment_added")).await.unwrap();
    let applied = "SELECT COUNT(*) FROM _sqlx_migrations WHERE success";
    let before = db.scalar(applied).await;
    assert!(before >= 1);

    store.migrate().await.unwrap();
    // A second instance starting against the same database.
    db.store().await.migrate().await.unwrap();

    assert_eq!(db.scalar(applied).await, before);
    assert_eq!(store.methods(&user).await.unwrap(), [totp()]);
    assert_eq!(store.since(0, 10).await.unwrap().len(), 1);
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
        confirmed_at_ms: None,
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
        confirmed_at_ms: None,
        created_at_ms: 1_750_000_000_000,
        ..totp()
    };
    let confirmed_email = EnrolledMethod {
        address: Some("jdoe@example.net".into()),
        confirmed_at_ms: Some(1_750_000_000_000),
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
        outcome: "denied".into(),
        object_guid: Some(guid()),
        sam_account_name: Some("jdoe".into()),
        actor: Some("helpdesk.op".into()),
        client_ip: Some("2001:db8::7".into()),
        method: Some("email".into()),
        reason: Some("address 'not' registered; \"quoted\" ✓".into()),
        ..audit(2_000, "password_reset")
    };
    // Inserted out of time order, as instances with their own clocks may do.
    let inserted = [
        audit(3_000, "unlock"),
        audit(1_000, "sign_in"),
        everything.clone(),
        audit(2_000, "verification"),
        audit(999, "flow_started"),
    ];
    for event in &inserted {
        store.record(event).await.unwrap();
    }

    let all = store.since(i64::MIN, 100).await.unwrap();
    let by_insertion = {
        let mut records = all.clone();
        records.sort_by_key(|r| r.id);
        records.into_iter().map(|r| r.event).collect::<Vec<_>>()
    };
    assert_eq!(by_insertion, inserted, "ids follow insertion");
    let times: Vec<i64> = all.iter().map(|r| r.event.at_ms).collect();
    assert_eq!(times, [999, 1_000, 2_000, 2_000, 3_000]);
    assert!(all[2].id < all[3].id, "equal times keep insertion order");
    assert_eq!(all[2].event, everything);

    let from_2000: Vec<_> = store.since(2_000, 100).await.unwrap();
    assert_eq!(from_2000, all[2..]);
    assert_eq!(store.since(1_000, 2).await.unwrap(), all[1..3]);
    assert!(store.since(3_001, 100).await.unwrap().is_empty());
    assert!(store.since(0, 0).await.unwrap().is_empty());
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
