//! One transaction per step, on the real databases (SQLite, and PostgreSQL with
//! `SSPR_TEST_DATABASE=postgres`): a step the database cannot finish leaves nothing behind. A
//! trigger refuses one audit row, as a full disk or a lost connection could refuse any
//! statement.

use axum::http::StatusCode;
use sqlx::{AnyConnection, Connection, Executor};
use sspr_bridge::domain::totp;
use sspr_bridge::store::Backend;

use crate::client::{TestApp, test_app};
use crate::harness::{bind, create_user, test_backend};
use crate::selfservice::{
    register_totp, set_password, settle_totp_step, sign_in, start_flow, verify,
};

const LICENSED: &str = "[licence]\nazure_ad_premium = true\n";

async fn run(app: &TestApp, statements: &[&str]) {
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect(&app.database.url).await.unwrap();
    for sql in statements {
        conn.execute(*sql).await.unwrap();
    }
    conn.close().await.unwrap();
}

/// Makes the insert of a successful verification's audit row fail.
async fn refuse_verifications(app: &TestApp) {
    match test_backend() {
        Backend::Sqlite => {
            run(
                app,
                &["CREATE TRIGGER refuse BEFORE INSERT ON audit_events
                   WHEN NEW.event = 'verification' AND NEW.outcome = 'success'
                   BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"],
            )
            .await;
        }
        Backend::Postgres => {
            run(
                app,
                &[
                    "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql
                     AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$",
                    "CREATE TRIGGER refuse BEFORE INSERT ON audit_events FOR EACH ROW
                     WHEN (NEW.event = 'verification' AND NEW.outcome = 'success')
                     EXECUTE FUNCTION refuse()",
                ],
            )
            .await;
        }
    }
}

async fn allow_verifications(app: &TestApp) {
    let drop = match test_backend() {
        Backend::Sqlite => "DROP TRIGGER refuse",
        Backend::Postgres => "DROP TRIGGER refuse ON audit_events",
    };
    run(app, &[drop]).await;
}

#[tokio::test]
async fn a_verification_the_database_cannot_record_spends_no_code_and_verifies_nothing() {
    let app = test_app(LICENSED).await;
    let user = create_user("step").await;
    let secret = register_totp(&app, &sign_in(&app, &user).await).await;
    let flow = start_flow(&app, &user.sam).await;
    let now = settle_totp_step().await;
    let code = totp::code_at(&secret, now);

    refuse_verifications(&app).await;
    let refused = verify(&app, &flow, "totp", &code)
        .await
        .expect(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.error().error, "storage_unavailable");
    // The flow was not marked verified with the code spent.
    let early = set_password(&app, &flow, "Step-Early-Pass-41")
        .await
        .expect(StatusCode::FORBIDDEN);
    assert_eq!(early.error().error, "not_verified");

    // Nor was the app's step: the same code verifies once the row can be written.
    allow_verifications(&app).await;
    let verified = verify(&app, &flow, "totp", &code)
        .await
        .expect(StatusCode::OK);
    assert_eq!(verified.json()["remaining"], 0, "{}", verified.body);
    set_password(&app, &flow, "Step-Final-Pass-42")
        .await
        .expect(StatusCode::NO_CONTENT);
    bind(&user.dn, "Step-Final-Pass-42")
        .await
        .expect("the new password binds");
    assert!(
        bind(&user.dn, &user.password).await.is_err(),
        "the old one fails"
    );
}
