//! Several instances of the service over one PostgreSQL database, as behind a load balancer with
//! no session affinity: whatever a reset flow needs between two requests (the flow, the accepted
//! TOTP step, the throttle counters) is in the database, so any instance may serve the next
//! request and an instance may die at any point. Always on PostgreSQL, whatever
//! `SSPR_TEST_DATABASE` says: SQLite serves a single instance. That the throttles count across
//! instances (wrong codes per flow and per account, requests per address) is shown by the
//! guessing runs of `hostile.rs`, on a [`Cluster`] of two.

use std::sync::Arc;

use axum::http::StatusCode;
use sspr_bridge::domain::totp;
use sspr_bridge::store::Backend;

use crate::client::{TestApp, test_app_on};
use crate::harness::{TestDatabase, TestUser, bind, create_user};
use crate::mail::smtp_section;
use crate::selfservice::{
    register_totp, set_password, settle_totp_step, sign_in, start_flow, verify,
};

const LICENSED: &str = "[licence]\nazure_ad_premium = true\n";

/// One database and the client address every instance sees the requests come from.
pub struct Cluster {
    database: Arc<TestDatabase>,
    extra: String,
    pub ip: std::net::SocketAddr,
}

impl Cluster {
    pub async fn new(extra: &str) -> Cluster {
        Cluster {
            database: Arc::new(TestDatabase::fresh(Backend::Postgres).await),
            extra: format!("{LICENSED}{}\n{extra}", smtp_section()),
            ip: std::net::SocketAddr::from((
                [127, 0, 0, 1],
                40000 + rand::random_range(0..20000u16),
            )),
        }
    }

    /// A new instance: its own state, pools and router, over the shared database.
    pub async fn instance(&self) -> TestApp {
        let mut app = test_app_on(Arc::clone(&self.database), &self.extra).await;
        app.ip = self.ip;
        app
    }
}

/// A new user with an authenticator app registered through `app`; returns its secret.
pub async fn registered_user(app: &TestApp, prefix: &str) -> (TestUser, Vec<u8>) {
    let user = create_user(prefix).await;
    let token = sign_in(app, &user).await;
    let secret = register_totp(app, &token).await;
    (user, secret)
}

pub async fn current_code(secret: &[u8]) -> String {
    totp::code_at(secret, settle_totp_step().await)
}

async fn assert_password_changed(user: &TestUser, new_password: &str) {
    bind(&user.dn, new_password)
        .await
        .expect("the new password binds");
    assert!(
        bind(&user.dn, &user.password).await.is_err(),
        "the old password fails"
    );
}

#[tokio::test]
async fn a_flow_started_on_one_instance_is_finished_on_another() {
    let cluster = Cluster::new("").await;
    let (a, b) = (cluster.instance().await, cluster.instance().await);
    let (user, secret) = registered_user(&a, "sca").await;

    let flow = start_flow(&a, &user.sam).await;
    let code = current_code(&secret).await;
    verify(&b, &flow, "totp", &code)
        .await
        .expect(StatusCode::OK);
    set_password(&b, &flow, "Scaled-Out-Pass-1!")
        .await
        .expect(StatusCode::NO_CONTENT);
    assert_password_changed(&user, "Scaled-Out-Pass-1!").await;

    // Used up on every instance, not just the one that finished it.
    let reused = set_password(&a, &flow, "Another-Pass-2!")
        .await
        .expect(StatusCode::NOT_FOUND);
    assert_eq!(reused.error().error, "flow_not_found");
    // The TOTP step B accepted is spent for A too.
    let flow2 = start_flow(&a, &user.sam).await;
    let replay = verify(&a, &flow2, "totp", &code)
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert_eq!(replay.error().error, "invalid_code");
}

#[tokio::test]
async fn an_instance_killed_mid_flow_loses_nothing() {
    let cluster = Cluster::new("").await;
    let a = cluster.instance().await;
    let (user, secret) = registered_user(&a, "sck").await;
    let flow = start_flow(&a, &user.sam).await;
    verify(&a, &flow, "totp", &current_code(&secret).await)
        .await
        .expect(StatusCode::OK);
    drop(a);

    // A replacement started afterwards, with nothing but the database in common.
    let c = cluster.instance().await;
    set_password(&c, &flow, "Survived-Pass-3!")
        .await
        .expect(StatusCode::NO_CONTENT);
    assert_password_changed(&user, "Survived-Pass-3!").await;
}
