use axum::extract::Request;

use super::*;

#[test]
fn every_language_has_every_text() {
    let pages = Pages::new(None, false, false);
    let mut keys: Vec<Vec<&String>> = Locale::ALL
        .iter()
        .map(|l| {
            let mut k: Vec<&String> = pages.texts[l].keys().collect();
            k.sort();
            k
        })
        .collect();
    let first = keys.remove(0);
    for other in keys {
        assert_eq!(first, other);
    }
}

/// Every template renders in every language with the variables its handlers give it; with
/// `SemiStrict`, a text missing from a catalog fails here.
#[test]
fn every_page_renders_in_every_language() {
    let pages = Pages::new(Some("mailto:help@example.test".into()), true, true);
    for locale in Locale::ALL {
        for (name, _) in TEMPLATES.iter().filter(|(n, _)| *n != "base.html") {
            for flag in [false, true] {
                let page = context! {
                    csrf => "token", here => "/reset", username => "jdoe", totp => flag,
                    reconfirm_due => flag,
                    email => flag.then_some("j***@example.test"), setup => flag,
                    qr => "data:image/svg+xml;base64,", otpauth_uri => "otpauth://totp/x",
                    secret => "ABCD EFGH", step => if flag { "code" } else { "address" },
                    address => "j@example.test", method => if flag { "totp" } else { "email" },
                    unlock => flag, methods => ["totp", "email", "recovery_code"], offered => "totp,email",
                    email_sent => flag, heading => flag.then_some("flow_ended_title"),
                    alert => context! { kind => "error", text => "x", restart => "/reset", helpdesk => true, broken => ["length"] },
                    id => "jdoe", verified => flag.then_some("totp"), require_verification => flag,
                    action => if flag { "reset" } else { "clear-registrations" }, reason => "",
                    password => "Tmp-Pass-23456789", card => helpdesk::sample_card(flag),
                    rules => flag.then_some([context! { key => "length", text => "Use at least 7 characters.", n => 7 }]),
                    code => "ABCD-EFGH-JKMN-PQRS", register_authenticator => flag,
                    checks => if flag { vec!["registered", "ad_mail", "manager"] } else { vec![] },
                    operator => "op-anna", caller => "Jan Jansen (jjansen)", token => "t0ken",
                    title => "error_page_404_title", body => "error_page_404_body",
                    server_error => flag,
                    apps => if flag { vec![context! { id => "a1", name => "Work phone" }, context! { id => "a2" }] } else { vec![] },
                    max_apps => 5, app_id => flag.then_some("a1"), app_name => flag.then_some("Work phone"),
                    days => 30, days_offered => [7, 30, 90, 365], per => "week",
                    report => admin::sample_report(flag),
                    codes => ["k7m2p-qx9vd", "3hq8w-zt5nr"], recovery_codes => flag,
                    recovery_codes_left => if flag { 7 } else { 0 }, recovery_codes_total => 10,
                };
                let response = pages.render(StatusCode::OK, name, locale, page);
                assert_eq!(response.status(), StatusCode::OK, "{name} in {locale:?}");
            }
        }
    }
}

/// Texts chosen in code (messages and notices) exist in the catalogs.
#[test]
fn every_text_named_in_code_exists() {
    let pages = Pages::new(None, true, false);
    let sources = [
        include_str!("register.rs"),
        include_str!("reset.rs"),
        include_str!("reply.rs"),
        include_str!("helpdesk/mod.rs"),
        include_str!("helpdesk/card.rs"),
        include_str!("helpdesk/caller.rs"),
        include_str!("helpdesk/actions.rs"),
        include_str!("approval.rs"),
        include_str!("admin.rs"),
    ];
    let mut named = 0;
    for source in sources {
        for piece in source.split('"').skip(1).step_by(2) {
            if piece.starts_with("error_")
                || piece.starts_with("notice_")
                || piece.ends_with("_title")
            {
                named += 1;
                for locale in Locale::ALL {
                    assert!(
                        pages.texts[&locale].contains_key(piece),
                        "{piece} in {locale:?}"
                    );
                }
            }
        }
    }
    assert!(named > 30, "{named}");
}

fn body(response: Response) -> String {
    let bytes = futures::executor::block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[test]
fn a_file_in_templates_dir_replaces_only_its_own_template() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("home.html"),
        "Our own home page: {{ t('approve_decline_body', caller='<Jan>') }}",
    )
    .unwrap();
    std::fs::write(dir.path().join("style.css"), "body { color: teal; }").unwrap();
    let overrides = Overrides::new(dir.path()).unwrap();
    let pages = Pages::new(None, true, false)
        .with_overrides(&overrides)
        .unwrap();
    let home = body(pages.render(StatusCode::OK, "home.html", Locale::En, Value::UNDEFINED));
    assert_eq!(
        home,
        "Our own home page: Decline if you cannot confirm the caller is &lt;Jan&gt;. The \
         helpdesk will not rely on you, and &lt;Jan&gt; is told by email."
    );
    assert_eq!(pages.stylesheet, "body { color: teal; }");
    let built_in = Pages::new(None, true, false);
    let licence = |pages: &Pages| body(pages.licence_required(Locale::Nl));
    assert_eq!(licence(&pages), licence(&built_in));
    assert_eq!(built_in.stylesheet, STYLESHEET);

    std::fs::write(dir.path().join("done.html"), "{% if %}").unwrap();
    let broken = Pages::new(None, true, false).with_overrides(&overrides);
    assert!(
        broken.is_err_and(|e| e.to_string().contains("done.html")),
        "a broken override stops the start"
    );
}

#[test]
fn pages_show_the_brand_and_flows_their_step() {
    let branding = Branding {
        organisation: Some("Contoso <IT>".into()),
        logo: Some(crate::config::Image {
            bytes: b"<svg></svg>".to_vec(),
            content_type: "image/svg+xml",
            extension: "svg",
        }),
        favicon: None,
        primary_colour: crate::config::Colour::parse("#1f4e79"),
    };
    let pages = Pages::new(None, true, false).with_branding(branding);
    let page = context! {
        here => "/reset", csrf => "x",
        rules => [context! { key => "length", text => "Use at least 7 characters.", n => 7 }],
    };
    let html = body(pages.render(StatusCode::OK, "reset_password.html", Locale::En, page));
    assert!(
        html.contains(
            "<img class=\"logo\" src=\"&#x2f;static&#x2f;logo.svg\" alt=\"Contoso &lt;IT&gt;\">"
        ),
        "{html}"
    );
    assert!(
        html.contains("Choose a new password – Password self-service – Contoso &lt;IT&gt;</title>"),
        "{html}"
    );
    assert!(
        html.contains("<li aria-current=\"step\"><span class=\"num\" aria-hidden=\"true\">2</span> New password</li>"),
        "{html}"
    );
    assert!(
        !html.contains("rel=\"icon\""),
        "no favicon configured: {html}"
    );
    let start = body(pages.render(
        StatusCode::OK,
        "reset_start.html",
        Locale::Nl,
        context! { here => "/unlock", unlock => true, username => "", csrf => "x" },
    ));
    assert!(start.contains("<li aria-current=\"step\"><span class=\"num\" aria-hidden=\"true\">1</span> Controle</li>"), "{start}");
    assert!(start.contains("2</span> Ontgrendelen</li>"), "{start}");
    let home = body(pages.render(StatusCode::OK, "home.html", Locale::En, Value::UNDEFINED));
    assert!(!home.contains("class=\"progress\""), "{home}");
    assert!(Branding::default().stylesheet_rules().is_empty());
    assert_eq!(
        pages.branding.stylesheet_rules(),
        "\n:root { --brand: #1f4e79; }\n"
    );
}

#[test]
fn the_language_switch_beats_the_cookie_which_beats_the_header() {
    let request = |uri: &str, cookie: &str| {
        Request::builder()
            .uri(uri)
            .header(header::COOKIE, cookie)
            .header(header::ACCEPT_LANGUAGE, "nl")
            .body(axum::body::Body::empty())
            .unwrap()
    };
    assert_eq!(
        Locale::negotiate(&request("/?lang=en", "lang=nl")),
        Locale::En
    );
    assert_eq!(Locale::negotiate(&request("/", "a=b; lang=en")), Locale::En);
    assert_eq!(Locale::negotiate(&request("/", "")), Locale::Nl);
}

/// The helpdesk link in the footer is for employees: an operator's own pages don't show it.
#[test]
fn the_footer_sends_employees_to_the_helpdesk_but_not_the_helpdesk_itself() {
    let pages = Pages::new(Some("mailto:help@example.test".into()), true, false);
    let footer = |here: &str| {
        let page = context! { csrf => "token", here };
        body(pages.render(StatusCode::OK, "home.html", Locale::En, page)).contains("<footer>")
    };
    assert!(footer("/reset"));
    assert!(footer("/register"));
    assert!(!footer("/helpdesk"));
}

/// Pages rendered outside any section (the licence page, error pages) have no `here`: the
/// footer still renders.
#[test]
fn a_page_without_a_section_keeps_its_footer() {
    let pages = Pages::new(Some("mailto:help@example.test".into()), false, false);
    let response = pages.licence_required(Locale::En);
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(body(response).contains("<footer>"));
}
