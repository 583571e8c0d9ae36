//! What the audit keeps of a login that matched no account: only its keyed hash, since people
//! type passwords into username boxes; `sspr-bridge audit --login` finds the rows by the same
//! text. Known accounts stay audited by their sAMAccountName.

use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::{AnyConnection, Connection};
use sspr_bridge::domain::clock::Timestamp;
use sspr_bridge::domain::store::{AuditEvent, AuditLog};

use crate::client::{TestApp, test_app};
use crate::harness::{self, create_group, create_user, env, keys, remember_secret, unique_name};
use crate::mail::smtp_section;
use crate::selfservice::{start_flow, verify};

async fn app() -> TestApp {
    let group = create_group(&unique_name("Hdesk ")).await;
    test_app(&format!(
        "[licence]\nazure_ad_premium = true\n{}\n[helpdesk]\ngroup_dn = {group:?}\n",
        smtp_section()
    ))
    .await
}

/// `sspr-bridge audit --since 2000-01-01 ARGS` on the app's database; its standard output.
fn audit_cli(app: &TestApp, args: &[&str]) -> String {
    let output = harness::service_command()
        .args(["audit", "--since", "2000-01-01"])
        .args(args)
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
            (
                "SSPR__SECURITY__SECRET_KEY",
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".to_owned(),
            ),
        ])
        .output()
        .expect("run sspr-bridge");
    harness::keep_service_log("audit", &output.stderr);
    let out = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

/// (event, outcome) of each exported JSON row, checking every row with `each`.
fn exported(json: &str, each: impl Fn(&Value)) -> Vec<(String, String)> {
    let rows: Vec<Value> = serde_json::from_str(json).unwrap();
    rows.iter()
        .inspect(|r| each(r))
        .map(|r| {
            (
                r["event"].as_str().unwrap().to_owned(),
                r["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn audit_rows(app: &TestApp) -> Vec<AuditEvent> {
    let store = app.database.store().await;
    let rows = store
        .since(Timestamp::from_millis(0), 10_000)
        .await
        .unwrap();
    store.close().await;
    rows.into_iter().map(|r| r.event).collect()
}

async fn throttle_keys(app: &TestApp) -> Vec<String> {
    let mut conn = AnyConnection::connect(&app.database.url).await.unwrap();
    let mut keys: Vec<String> = sqlx::query_scalar("SELECT key FROM throttle_events")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    keys.extend(
        sqlx::query_scalar::<_, String>("SELECT key FROM throttle_blocks")
            .fetch_all(&mut conn)
            .await
            .unwrap(),
    );
    conn.close().await.unwrap();
    keys
}

#[tokio::test]
async fn an_unknown_login_is_kept_as_its_keyed_hash_and_found_by_the_same_text() {
    sqlx::any::install_default_drivers();
    let app = app().await;
    // What people type into the username box by mistake; unique to this run.
    let at_reset = format!("Hunter2-{}-Secret!", unique_name("r"));
    // Typed at sign-ins only, which keep nothing of it in clear anywhere (a reset flow keeps the
    // login it was started with until it expires), so the secret scan may look for it in every
    // log and table.
    let at_sign_in = format!("Winter-{}-Pass!", unique_name("s"));
    remember_secret("typed-login", &at_sign_in);
    remember_secret("typed-login", &at_sign_in.to_lowercase());

    let flow = start_flow(&app, &at_reset).await;
    let wrong = verify(&app, &flow, "totp", "000000").await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST, "{}", wrong.body);
    for (path, refused) in [
        ("/api/v1/enrollment/session", StatusCode::UNAUTHORIZED),
        ("/api/v1/helpdesk/session", StatusCode::FORBIDDEN),
    ] {
        app.post(
            path,
            json!({"username": at_sign_in.to_uppercase(), "password": "Wrong-Password-1!"}),
            None,
        )
        .await
        .expect(refused);
    }
    let known = create_user("aud").await;
    start_flow(&app, &known.sam.to_uppercase()).await;

    let keys = keys();
    let (reset_hash, sign_in_hash) = (keys.login_hash(&at_reset), keys.login_hash(&at_sign_in));
    let rows = audit_rows(&app).await;
    for row in &rows {
        let text = format!("{row:?}").to_lowercase();
        for typed in [&at_reset, &at_sign_in] {
            assert!(!text.contains(&typed.to_lowercase()), "{row:?}");
        }
    }
    let about = |hash: &str| -> Vec<(&str, &str)> {
        rows.iter()
            .filter(|r| r.login_hash.as_deref() == Some(hash))
            .inspect(|r| assert_eq!((r.sam_account_name.as_ref(), r.object_guid), (None, None)))
            .map(|r| (r.event.as_str(), r.outcome.as_str()))
            .collect()
    };
    assert_eq!(
        about(&reset_hash),
        [("flow_started", "decoy"), ("verification", "failure")]
    );
    assert_eq!(
        about(&sign_in_hash),
        [("sign_in", "failure"), ("helpdesk_sign_in", "failure")]
    );
    let started = rows
        .iter()
        .find(|r| r.sam_account_name.as_deref() == Some(&known.sam))
        .expect("the known account's start");
    assert_eq!(
        (started.event.as_str(), &started.login_hash),
        ("flow_started", &None)
    );
    assert!(started.object_guid.is_some());

    // Nor do the throttles keep typed text: the decoy's failure and the sign-ins count under the
    // hash.
    let throttle = throttle_keys(&app).await;
    assert!(
        throttle.iter().any(|k| k.contains(&reset_hash)),
        "{throttle:?}"
    );
    assert!(
        throttle.iter().any(|k| k.contains(&sign_in_hash)),
        "{throttle:?}"
    );
    for key in &throttle {
        assert!(!key.contains(&at_reset.to_lowercase()), "{key}");
        assert!(!key.contains(&at_sign_in.to_lowercase()), "{key}");
    }
    let everything = String::from_utf8_lossy(&app.database.contents().await).to_lowercase();
    assert!(!everything.contains(&at_sign_in.to_lowercase()));

    // The operator types what the user typed, in any case, and finds the rows.
    let json = audit_cli(
        &app,
        &["--format", "json", "--login", &at_reset.to_lowercase()],
    );
    let found = exported(&json, |r| {
        assert_eq!(r["login_hash"], reset_hash.as_str(), "{r}");
        assert_eq!(r["sam_account_name"], "", "{r}");
    });
    assert_eq!(
        found,
        [
            ("flow_started".to_owned(), "decoy".to_owned()),
            ("verification".to_owned(), "failure".to_owned())
        ]
    );
    let json = audit_cli(&app, &["--format", "json", "--login", &at_sign_in]);
    assert_eq!(
        exported(&json, |r| assert_eq!(
            r["login_hash"],
            sign_in_hash.as_str()
        ))
        .len(),
        2
    );
    // A known account by its sAMAccountName, in any case.
    let json = audit_cli(
        &app,
        &["--format", "json", "--login", &known.sam.to_uppercase()],
    );
    let found = exported(&json, |r| {
        assert_eq!(r["sam_account_name"], known.sam.as_str(), "{r}");
        assert_eq!(r["login_hash"], "", "{r}");
    });
    assert_eq!(found, [("flow_started".to_owned(), "decoy".to_owned())]);
    // Text nobody typed finds nothing; without --login every row is exported, hashes included.
    assert_eq!(
        audit_cli(&app, &["--format", "json", "--login", "Hunter2-Secret"]),
        "[\n]\n"
    );
    let empty = harness::service_command()
        .args(["audit", "--since", "2000-01-01", "--login", " "])
        .output()
        .unwrap();
    assert_eq!(empty.status.code(), Some(2));
    let err = String::from_utf8_lossy(&empty.stderr);
    assert!(err.contains("--login jdoe"), "{err}");
    let csv = audit_cli(&app, &["--format", "csv"]);
    let header = csv.lines().next().unwrap();
    assert!(header.ends_with(",reason,login_hash"), "{header}");
    assert_eq!(csv.lines().count(), 1 + rows.len(), "{csv}");
    assert_eq!(csv.matches(&reset_hash).count(), 2, "{csv}");
    assert_eq!(csv.matches(&sign_in_hash).count(), 2, "{csv}");
}
