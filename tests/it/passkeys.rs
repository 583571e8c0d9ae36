//! Passkeys through the HTTP API with a software authenticator, against the real DC and the
//! database `SSPR_TEST_DATABASE` names: registration, a reset with one, a cloned authenticator,
//! another user's passkey, decoy options, the limit, removal, and an IP address as public URL.

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::authenticator::{RP_ID, SoftAuthenticator};
use crate::client::{TestApp, test_app};
use crate::harness::{TestUser, bind, create_user};
use crate::mail::{smtp_section, wait_for_mail};
use crate::selfservice::{audit_events, set_password, sign_in, start_flow};

async fn app() -> TestApp {
    test_app(&format!(
        "[licence]\nazure_ad_premium = true\n[server]\npublic_url = \"http://localhost:8080\"\n{}",
        smtp_section()
    ))
    .await
}

async fn begin(app: &TestApp, token: &str, name: &str) -> Value {
    app.post(
        "/api/v1/enrollment/passkey",
        json!({"name": name}),
        Some(token),
    )
    .await
    .expect(StatusCode::OK)
    .json()
}

/// Registers a new software passkey named `name`; returns its authenticator.
async fn register(app: &TestApp, token: &str, name: &str) -> SoftAuthenticator {
    let options = begin(app, token, name).await;
    let mut authenticator = SoftAuthenticator::new();
    let credential = authenticator.create(&options);
    app.post(
        "/api/v1/enrollment/passkey/confirm",
        json!({"name": name, "credential": credential}),
        Some(token),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    authenticator
}

async fn options(app: &TestApp, flow: &str) -> Value {
    app.post(&format!("/api/v1/reset/{flow}/passkey"), json!({}), None)
        .await
        .expect(StatusCode::OK)
        .json()
}

async fn verify(app: &TestApp, flow: &str, credential: Value) -> crate::client::Answer {
    app.post(
        &format!("/api/v1/reset/{flow}/verify"),
        json!({"method": "passkey", "credential": credential}),
        None,
    )
    .await
}

fn allowed_ids(options: &Value) -> Vec<Vec<u8>> {
    options["publicKey"]["allowCredentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| URL_SAFE_NO_PAD.decode(c["id"].as_str().unwrap()).unwrap())
        .collect()
}

fn keys(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn a_passkey_registers_resets_the_password_and_a_clone_is_refused() {
    let app = app().await;
    let user = create_user("pkr").await;
    let token = sign_in(&app, &user).await;
    let creation = begin(&app, &token, "  Work phone ").await;
    let public_key = &creation["publicKey"];
    assert_eq!(
        public_key["authenticatorSelection"]["userVerification"],
        "required"
    );
    assert_eq!(public_key["attestation"], "none");
    assert_eq!(public_key["rp"]["id"], RP_ID);
    for field in ["challenge", "pubKeyCredParams", "timeout", "user"] {
        assert!(!public_key[field].is_null(), "{field} in {creation}");
    }
    // The user handle is a keyed hash, not the objectGUID in clear.
    let guid = crate::harness::read_binary_attr(&user.dn, "objectGUID")
        .await
        .and_then(|b| sspr_bridge::domain::ObjectGuid::from_ad_bytes(&b))
        .expect("an objectGUID");
    let handle = URL_SAFE_NO_PAD
        .decode(public_key["user"]["id"].as_str().unwrap())
        .unwrap();
    assert_eq!(handle.len(), 16);
    assert_ne!(handle, guid.0.as_bytes().to_vec());
    let mut authenticator = SoftAuthenticator::new();
    // A standard, padded base64 answer is accepted too.
    let mut credential = authenticator.create(&creation);
    let attestation = credential["response"]["attestationObject"]
        .as_str()
        .unwrap();
    let standard = STANDARD.encode(URL_SAFE_NO_PAD.decode(attestation).unwrap());
    credential["response"]["attestationObject"] = json!(standard);
    app.post(
        "/api/v1/enrollment/passkey/confirm",
        json!({"name": "  Work phone ", "credential": credential}),
        Some(&token),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    let status = app
        .get("/api/v1/enrollment", Some(&token))
        .await
        .expect(StatusCode::OK)
        .json();
    let listed = &status["passkeys"];
    assert_eq!(listed.as_array().unwrap().len(), 1, "{status}");
    assert_eq!(listed[0]["name"], "Work phone");
    assert!(listed[0]["last_used_at"].is_null());
    // The owner hears of it at AD `mail`.
    let notice = wait_for_mail(&format!("{}@mail.test", user.sam)).await;
    assert!(notice.subject.contains("was added"), "{}", notice.subject);
    assert!(
        notice.text.contains("the passkey “Work phone”"),
        "{}",
        notice.text
    );

    let (status, body) = {
        let a = app
            .post("/api/v1/reset", json!({"username": user.sam}), None)
            .await;
        (a.status, a.json())
    };
    assert_eq!(status, StatusCode::CREATED);
    assert!(
        body["methods"]
            .as_array()
            .unwrap()
            .contains(&json!("passkey"))
    );
    let flow = body["flow"].as_str().unwrap().to_owned();
    let request = options(&app, &flow).await;
    assert_eq!(request["publicKey"]["userVerification"], "required");
    assert_eq!(request["publicKey"]["rpId"], RP_ID);
    assert_eq!(
        allowed_ids(&request),
        vec![authenticator.credential_id.clone()]
    );
    assert!(
        request["publicKey"]["allowCredentials"][0]
            .get("transports")
            .is_none(),
        "no transports: {request}"
    );
    let before_clone = authenticator.clone();
    let answer = authenticator.get(&request);
    let verified = verify(&app, &flow, answer).await.expect(StatusCode::OK);
    assert_eq!(verified.json(), json!({"verified": true, "remaining": 0}));
    set_password(&app, &flow, "Passkey-Reset-Pass-7")
        .await
        .expect(StatusCode::NO_CONTENT);
    bind(&user.dn, "Passkey-Reset-Pass-7")
        .await
        .expect("the new password binds");
    assert!(bind(&user.dn, &user.password).await.is_err(), "old fails");

    // The clone answers a new flow's challenge with the counter the original already used.
    let flow = start_flow(&app, &user.sam).await;
    let request = options(&app, &flow).await;
    let mut clone = before_clone;
    let refused = verify(&app, &flow, clone.get(&request))
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert_eq!(refused.error().error, "invalid_code");
    // The original, with a counter that goes up, still works.
    let request = options(&app, &flow).await;
    verify(&app, &flow, authenticator.get(&request))
        .await
        .expect(StatusCode::OK);
    // A challenge is answered once.
    let replay = verify(&app, &flow, authenticator.get(&request))
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert_eq!(replay.error().error, "invalid_code");

    let store = app.database.store().await;
    let rows = {
        use sspr_bridge::domain::store::AuditLog;
        store
            .since(
                sspr_bridge::domain::clock::Timestamp::from_millis(0),
                10_000,
            )
            .await
            .unwrap()
    };
    store.close().await;
    assert!(
        rows.iter()
            .any(|r| r.event.reason.as_deref() == Some("possible_clone")
                && r.event.sam_account_name.as_deref() == Some(&*user.sam)),
        "the clone is audited"
    );
    let events = audit_events(&app).await;
    assert!(events.iter().any(|(e, o, sam)| e == "enrollment_added"
        && o == "success"
        && sam.as_deref() == Some(&*user.sam)));
}

#[tokio::test]
async fn a_passkey_of_another_user_cannot_verify_a_flow() {
    let app = app().await;
    let (alice, bob) = (create_user("pka").await, create_user("pkb").await);
    let mut alices = register(&app, &sign_in(&app, &alice).await, "Alice's").await;
    register(&app, &sign_in(&app, &bob).await, "Bob's").await;
    let flow = start_flow(&app, &bob.sam).await;
    let request = options(&app, &flow).await;
    // Alice's authenticator signs Bob's challenge with her own credential.
    let refused = verify(&app, &flow, alices.get(&request))
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert_eq!(refused.error().error, "invalid_code");
    // Her credential with Bob's user handle too.
    let request = options(&app, &flow).await;
    let mut forged = alices.get(&request);
    let bobs_handle = URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes());
    forged["response"]["userHandle"] = json!(bobs_handle);
    verify(&app, &flow, forged)
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert!(bind(&bob.dn, &bob.password).await.is_ok(), "untouched");
}

#[tokio::test]
async fn decoy_options_look_like_a_real_users() {
    let app = app().await;
    let user = create_user("pkd").await;
    register(&app, &sign_in(&app, &user).await, "Phone").await;
    let without: TestUser = create_user("pkn").await;
    let real = options(&app, &start_flow(&app, &user.sam).await).await;
    let unknown = format!("nobody-{}", uuid::Uuid::new_v4().simple());
    for login in [unknown.as_str(), without.sam.as_str()] {
        let first = options(&app, &start_flow(&app, login).await).await;
        let again = options(&app, &start_flow(&app, login).await).await;
        assert_eq!(
            keys(&first["publicKey"]),
            keys(&real["publicKey"]),
            "{first}"
        );
        assert_eq!(first["publicKey"]["timeout"], real["publicKey"]["timeout"]);
        assert_eq!(first["publicKey"]["userVerification"], "required");
        let ids = allowed_ids(&first);
        assert_eq!(ids, allowed_ids(&again), "stable across requests");
        assert_ne!(
            first["publicKey"]["challenge"],
            again["publicKey"]["challenge"]
        );
        assert!((1..=2).contains(&ids.len()));
        assert!(
            ids.iter().all(|id| [16, 20, 32, 64].contains(&id.len())),
            "{ids:?}"
        );
        for (decoy, real) in first["publicKey"]["allowCredentials"]
            .as_array()
            .unwrap()
            .iter()
            .zip(real["publicKey"]["allowCredentials"].as_array().unwrap())
        {
            assert_eq!(keys(decoy), keys(real), "same fields, no transports");
        }
        // A decoy's verification fails as any wrong answer.
        let flow = start_flow(&app, login).await;
        let request = options(&app, &flow).await;
        let refused = verify(&app, &flow, SoftAuthenticator::new().get(&request))
            .await
            .expect(StatusCode::BAD_REQUEST);
        assert_eq!(refused.error().error, "invalid_code");
    }
}

#[tokio::test]
async fn five_passkeys_at_most_and_each_can_be_removed() {
    let app = app().await;
    let user = create_user("pkl").await;
    let token = sign_in(&app, &user).await;
    // An answer that does not check out, or with no challenge waiting, registers nothing.
    begin(&app, &token, "Broken").await;
    let broken = app
        .post(
            "/api/v1/enrollment/passkey/confirm",
            json!({"name": "Broken", "credential": {"id": "AAAA", "type": "public-key"}}),
            Some(&token),
        )
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert_eq!(broken.error().error, "invalid_credential");
    let options = begin(&app, &token, "Late").await;
    let credential = SoftAuthenticator::new().create(&options);
    let answer = json!({"name": "Late", "credential": credential});
    app.post(
        "/api/v1/enrollment/passkey/confirm",
        answer.clone(),
        Some(&token),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    let again = app
        .post("/api/v1/enrollment/passkey/confirm", answer, Some(&token))
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert_eq!(
        again.error().error,
        "invalid_credential",
        "a challenge is answered once"
    );
    for n in 0..4 {
        register(&app, &token, &format!("Key {n}")).await;
    }
    let full = app
        .post(
            "/api/v1/enrollment/passkey",
            json!({"name": "Sixth"}),
            Some(&token),
        )
        .await
        .expect(StatusCode::CONFLICT);
    assert_eq!(full.error().error, "limit_reached");
    app.post(
        "/api/v1/enrollment/passkey",
        json!({"name": " "}),
        Some(&token),
    )
    .await
    .expect(StatusCode::BAD_REQUEST);
    let status = app
        .get("/api/v1/enrollment", Some(&token))
        .await
        .expect(StatusCode::OK)
        .json();
    let id = status["passkeys"][0]["id"].as_str().unwrap().to_owned();
    let other = create_user("pko").await;
    let others = sign_in(&app, &other).await;
    let not_theirs = app
        .delete(&format!("/api/v1/enrollment/passkey/{id}"), Some(&others))
        .await
        .expect(StatusCode::NOT_FOUND);
    assert_eq!(not_theirs.error().error, "not_found");
    app.delete(&format!("/api/v1/enrollment/passkey/{id}"), Some(&token))
        .await
        .expect(StatusCode::NO_CONTENT);
    app.delete(&format!("/api/v1/enrollment/passkey/{id}"), Some(&token))
        .await
        .expect(StatusCode::NOT_FOUND);
    let status = app
        .get("/api/v1/enrollment", Some(&token))
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(status["passkeys"].as_array().unwrap().len(), 4);
    register(&app, &token, "Replacement").await;
    let events = audit_events(&app).await;
    assert!(events.iter().any(|(e, o, sam)| e == "enrollment_removed"
        && o == "success"
        && sam.as_deref() == Some(&*user.sam)));
    let ad_mail = format!("{}@mail.test", user.sam);
    let mut removed = false;
    for _ in 0..8 {
        let mail = wait_for_mail(&ad_mail).await;
        if mail.subject.contains("was removed") {
            removed = mail.text.contains("the passkey “");
            break;
        }
    }
    assert!(removed, "the removal is mailed to the owner");
}

#[tokio::test]
async fn an_ip_address_as_public_url_turns_passkeys_off() {
    let extra =
        "[licence]\nazure_ad_premium = true\n[server]\npublic_url = \"http://127.0.0.1:8080\"\n";
    let app = test_app(extra).await;
    let user = create_user("pki").await;
    let body = app
        .post("/api/v1/reset", json!({"username": user.sam}), None)
        .await
        .expect(StatusCode::CREATED)
        .json();
    assert!(
        !body["methods"]
            .as_array()
            .unwrap()
            .contains(&json!("passkey")),
        "{body}"
    );
    let token = sign_in(&app, &user).await;
    app.post(
        "/api/v1/enrollment/passkey",
        json!({"name": "Phone"}),
        Some(&token),
    )
    .await
    .expect(StatusCode::BAD_REQUEST);

    let config = crate::harness::config(extra);
    let lines = sspr_bridge::cli::check::run(&config, |_| {}).await;
    let line = lines
        .iter()
        .find(|l| l.subject == "passkeys")
        .expect("a passkeys line");
    assert_eq!(line.status, sspr_bridge::cli::check::Status::Warn, "{line}");
    // A relying-party id the host is not in is a configuration error.
    let wrong = crate::harness::try_config(
        "[server]\npublic_url = \"https://sspr.corp.example.com\"\n[passkey]\nrp_id = \"example.org\"\n",
    );
    assert!(wrong.unwrap_err().mentions("passkey.rp_id"));
}
