//! `[ui]` branding end to end: the organisation's name and logo on the pages, the images served
//! from their stable URLs, the organisation as the authenticator apps' issuer and as the sender
//! of real mail.

use std::path::Path;

use axum::http::{StatusCode, header};
use serde_json::json;

use crate::client::{TestApp, test_app};
use crate::harness::create_user;
use crate::mail::{smtp_section, unique_address, wait_for_mail};
use crate::selfservice::sign_in;

const ORGANISATION: &str = "Contoso Test IT";
/// A PNG signature and a few bytes: the service checks the signature, browsers get the bytes.
const LOGO: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR-branding-test";
const FAVICON: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 1 1\"></svg>";

/// An app whose `[ui]` names the organisation, with a logo, a favicon and a colour, and whose
/// `smtp.from` is a bare address (so the sender's name is the organisation's).
async fn branded_app(dir: &Path) -> TestApp {
    let logo = dir.join("logo.png");
    std::fs::write(&logo, LOGO).unwrap();
    let favicon = dir.join("favicon.svg");
    std::fs::write(&favicon, FAVICON).unwrap();
    let smtp = smtp_section().replace(
        "\"sspr-bridge tests <no-reply@sspr.test>\"",
        "\"no-reply@sspr.test\"",
    );
    test_app(&format!(
        "[licence]\nazure_ad_premium = true\n{smtp}\n[ui]\norganisation = {ORGANISATION:?}\n\
         logo = {logo:?}\nfavicon = {favicon:?}\nprimary_colour = \"#1f4e79\"\n",
        logo = logo.display().to_string(),
        favicon = favicon.display().to_string(),
    ))
    .await
}

#[tokio::test]
async fn pages_show_the_organisation_and_serve_its_logo_favicon_and_colour() {
    let dir = tempfile::tempdir().unwrap();
    let app = branded_app(dir.path()).await;

    for path in ["/", "/reset?lang=nl", "/register"] {
        let page = app.get(path, None).await.expect(StatusCode::OK);
        assert!(
            page.body.contains(&format!(
                "<img class=\"logo\" src=\"&#x2f;static&#x2f;logo.png\" alt=\"{ORGANISATION}\">"
            )),
            "{path}: {}",
            page.body
        );
        assert!(
            page.body.contains(&format!(
                "<span class=\"organisation\" aria-hidden=\"true\">{ORGANISATION}</span>"
            )),
            "{path}: {}",
            page.body
        );
        assert!(
            page.body.contains(
                "<link rel=\"icon\" href=\"&#x2f;static&#x2f;favicon.svg\" type=\"image&#x2f;svg+xml\">"
            ),
            "{path}: {}",
            page.body
        );
    }

    let logo = app
        .get("/static/logo.png", None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(logo.headers[header::CONTENT_TYPE], "image/png");
    assert_eq!(logo.body, String::from_utf8_lossy(LOGO));
    let favicon = app
        .get("/static/favicon.svg", None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(favicon.headers[header::CONTENT_TYPE], "image/svg+xml");
    assert_eq!(favicon.body, FAVICON);
    // Only the configured files, under their own extension.
    for missing in [
        "/static/logo.svg",
        "/static/favicon.png",
        "/static/other.png",
    ] {
        let answer = app.get(missing, None).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{missing}");
    }

    let css = app
        .get("/static/style.css", None)
        .await
        .expect(StatusCode::OK);
    assert!(
        css.body.ends_with("\n:root { --brand: #1f4e79; }\n"),
        "{}",
        css.body
    );
}

#[tokio::test]
async fn authenticator_apps_and_mail_name_the_organisation() {
    let dir = tempfile::tempdir().unwrap();
    let app = branded_app(dir.path()).await;
    let user = create_user("brand").await;
    let token = sign_in(&app, &user).await;

    let totp = app
        .post("/api/v1/enrollment/totp", json!({}), Some(&token))
        .await
        .expect(StatusCode::OK);
    let uri = url::Url::parse(totp.json()["otpauth_uri"].as_str().unwrap()).unwrap();
    let issuer = uri
        .query_pairs()
        .find(|(k, _)| k == "issuer")
        .map(|(_, v)| v.into_owned());
    assert_eq!(issuer.as_deref(), Some(ORGANISATION), "{uri}");
    let label = percent_decode(uri.path());
    assert!(
        label.starts_with(&format!("/{ORGANISATION}:")),
        "the label names the issuer too: {label}"
    );

    let address = unique_address();
    app.post(
        "/api/v1/enrollment/email",
        json!({"address": address}),
        Some(&token),
    )
    .await
    .expect(StatusCode::ACCEPTED);
    let mail = wait_for_mail(&address).await;
    mail.code_in().expect("a code mail");
    assert_eq!(
        mail.header("From").as_deref(),
        Some(format!("\"{ORGANISATION}\" <no-reply@sspr.test>").as_str()),
        "{}",
        mail.raw
    );
    assert!(mail.text.contains(ORGANISATION), "{}", mail.text);
    assert!(mail.html.contains(ORGANISATION), "{}", mail.html);
}

fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}
